/* SPDX-License-Identifier: MIT */
/* What qga prints: replies as JSON (-r, -p), escaped text lines,
 * tables, and base64. */
#include "qga.h"

static void
indent(int depth)
{
	putc('\n', stdout);
	while (depth-- > 0)
		fwrite("  ", 1, 2, stdout);
}

/* Prints a valid JSON text with two-space indentation. */
static void
print_pretty(const char *s, size_t n)
{
	size_t i, j;
	int depth = 0;

	for (i = 0; i < n; i++) {
		char c = s[i];
		switch (c) {
		case ' ': case '\t': case '\n': case '\r':
			break;
		case '"':
			for (j = i + 1; s[j] != '"'; j++)
				j += s[j] == '\\';
			fwrite(s + i, 1, j + 1 - i, stdout);
			i = j;
			break;
		case '{': case '[':
			for (j = i + 1; j < n && strchr(" \t\r\n", s[j]); j++)
				;
			if (s[j] == (c == '{' ? '}' : ']')) {
				putc(c, stdout);
				putc(s[j], stdout);
				i = j;
				break;
			}
			putc(c, stdout);
			indent(++depth);
			break;
		case '}': case ']':
			indent(--depth);
			putc(c, stdout);
			break;
		case ',':
			putc(',', stdout);
			indent(depth);
			break;
		case ':':
			fwrite(": ", 1, 2, stdout);
			break;
		default:
			putc(c, stdout);
		}
	}
}

void
print_json(const char *s, size_t n)
{
	/* A child of several targets writes a reply a line: its parent
	 * indents them. */
	if (opt.pretty && !many.tag)
		print_pretty(s, n);
	else
		fwrite(s, 1, n, stdout);
	putc('\n', stdout);
}

/* Prints the reply, or with -r its return value. */
void
print_result(const struct reply *r)
{
	const char *v;
	size_t n;

	if (opt.ret && r->ret >= 0) {
		v = tok_text(r->js, &r->tok[r->ret], &n);
		print_json(v, n);
	} else
		print_json(r->js, r->len);
}

/* Prints the reply's return value indented, as -r -p would: what the
 * built-ins that show a value as JSON show. */
void
print_value(const struct reply *r)
{
	const char *v = r->js;
	size_t n = r->len;

	if (r->ret >= 0)
		v = tok_text(r->js, &r->tok[r->ret], &n);
	print_pretty(v, n);
	putc('\n', stdout);
}

/* Prints a reply as asked; returns 0, or EX_AGENT for an error reply. */
int
print_reply(const struct reply *r, const char *name, int batch)
{
	int s = 0;

	if (r->err >= 0) {
		s = reply_error(r, name);
		say();
		if (!batch)
			return s;
	}
	print_result(r);
	return s;
}

/* A copy of s with its control characters escaped (see escape). */
char *
escaped(const char *s)
{
	size_t n = strlen(s);
	char *e = xrealloc(NULL, 4 * n + 1);

	escape(e, 4 * n + 1, s, n);
	return e;
}

/* Prints a line of text that holds the guest's words, escaped. */
PRINTF(1, 2) void
text_line(const char *fmt, ...)
{
	va_list ap;
	char *s, *e;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	s = xrealloc(NULL, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	puts(e = escaped(s));
	free(s);
	free(e);
}

void
table_cell(struct table *t, const char *s)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16 * t->ncol;
		t->cell = xrealloc(t->cell, (size_t)t->cap * sizeof *t->cell);
	}
	t->cell[t->n++] = escaped(s);
}

void
table_add(struct table *t, ...)
{
	va_list ap;
	int i;

	va_start(ap, t);
	for (i = 0; i < t->ncol; i++)
		table_cell(t, va_arg(ap, char *));
	va_end(ap);
}

void
table_print(struct table *t)
{
	int w[12] = {0}, i, j, last, len;
	char **row;

	for (i = 0; i < t->n; i++)
		if ((len = (int)strlen(t->cell[i])) > w[i % t->ncol])
			w[i % t->ncol] = len;
	for (i = 0; i < t->n; i += t->ncol) {
		row = t->cell + i;
		for (last = t->ncol - 1; last > 0 && !*row[last]; last--)
			;
		for (j = 0; j < t->ncol; j++) {
			if (j < last)
				printf("%-*s  ", w[j], row[j]);
			else if (j == last)
				printf("%s\n", row[j]);
			free(row[j]);
		}
	}
	free(t->cell);
}

/* Base64, as the agent's buf-b64, input-data and out-data use it. */
static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void
b64_encode(struct buf *b, const unsigned char *s, size_t n)
{
	char *o;
	size_t i;

	buf_need(b, (n + 2) / 3 * 4);
	o = b->p + b->len;
	for (i = 0; i + 2 < n; i += 3) {
		*o++ = b64[s[i] >> 2];
		*o++ = b64[(s[i] & 3) << 4 | s[i + 1] >> 4];
		*o++ = b64[(s[i + 1] & 15) << 2 | s[i + 2] >> 6];
		*o++ = b64[s[i + 2] & 63];
	}
	if (i < n) {
		*o++ = b64[s[i] >> 2];
		*o++ = b64[(s[i] & 3) << 4 | (i + 1 < n ? s[i + 1] >> 4 : 0)];
		*o++ = i + 1 < n ? b64[(s[i + 1] & 15) << 2] : '=';
		*o++ = '=';
	}
	b->len = (size_t)(o - b->p);
}

/* Decodes the base64 string token t into b; -1 if it is not base64. Two
 * characters at a time are looked up in a table built on first use. */
int
b64_decode(struct buf *b, const char *js, const struct json_tok *t)
{
	/* A character's six bits, already in their place among a group's
	 * 24, by its place in the group; bit 24 marks a non-base64 one. */
	static uint32_t dec[4][256];
	const unsigned char *s = (const unsigned char *)js;
	uint32_t x, y;
	unsigned acc = 0;
	int bits = 0, c, k;
	uint64_t w;
	size_t i;
	char *o;

	if (!dec[0][0]) {
		for (c = 0; c < 256; c++)
			for (k = 0; k < 4; k++)
				dec[k][c] = strchr(b64, c) && c ?
				    (uint32_t)(strchr(b64, c) - b64) << (18 - 6 * k) : 1u << 24;
	}
	b->len = 0;
	buf_need(b, (t->end - t->start) / 4 * 3 + 8);
	o = b->p;
	/* Eight characters make six bytes, written from one 48-bit word. */
	for (i = t->start; i + 8 <= t->end; i += 8, o += 6) {
		x = dec[0][s[i]] | dec[1][s[i + 1]] | dec[2][s[i + 2]] | dec[3][s[i + 3]];
		y = dec[0][s[i + 4]] | dec[1][s[i + 5]] | dec[2][s[i + 6]] |
		    dec[3][s[i + 7]];
		if ((x | y) >> 24)
			break; /* padding, or not base64: the loop below tells */
		w = (uint64_t)x << 24 | y;
		for (k = 0; k < 6; k++)
			o[k] = (char)(w >> (40 - 8 * k));
	}
	for (; i < t->end && js[i] != '='; i++) {
		if ((x = dec[3][s[i]]) >> 24)
			return -1;
		acc = acc << 6 | x;
		if ((bits += 6) >= 8) {
			bits -= 8;
			*o++ = (char)(acc >> bits);
		}
	}
	b->len = (size_t)(o - b->p);
	return 0;
}

/* Prometheus' text: appends key="value" to b, after a comma unless it is
 * the first label, with the value as the format wants it: \, " and newline escaped, other
 * control characters and what is not UTF-8 (a file name may not be, a
 * character cut at PROM_LABEL_MAX bytes neither) made '?'. */
void
prom_label(struct buf *b, const char *key, const char *v)
{
	size_t n = strlen(v) < PROM_LABEL_MAX ? strlen(v) : PROM_LABEL_MAX, i;
	const unsigned char *p = (const unsigned char *)v;
	int len;

	if (!b->len || b->p[b->len - 1] != '{')
		buf_str(b, ",");
	buf_str(b, key);
	buf_str(b, "=\"");
	for (i = 0; i < n; i += len > 0 ? (size_t)len : 1) {
		len = json_utf8len(v + i, n - i);
		if (p[i] == '\\' || p[i] == '"')
			buf_add(b, "\\", 1);
		if (p[i] == '\n')
			buf_str(b, "\\n");
		else if (len <= 0 || p[i] < 0x20 || p[i] == 0x7f || (p[i] == 0xc2 && p[i + 1] < 0xa0))
			buf_add(b, "?", 1);
		else
			buf_add(b, v + i, (size_t)len);
	}
	buf_str(b, "\"");
}

/* Prometheus' text: the HELP and TYPE lines of the family qga_NAME. */
void
prom_family(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_str(b, "# HELP qga_");
	buf_str(b, name);
	buf_str(b, " ");
	buf_str(b, help);
	buf_str(b, "\n# TYPE qga_");
	buf_str(b, name);
	buf_str(b, " ");
	buf_str(b, type);
	buf_str(b, "\n");
}
