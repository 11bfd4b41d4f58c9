/* SPDX-License-Identifier: MIT */
/* json.c: see json.h. */
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "json.h"

/* Tests on eight bytes at once: whether any is zero, or below n. */
#define ONES 0x0101010101010101ULL
#define HIGH 0x8080808080808080ULL
#define HASZERO(w) (((w) - ONES) & ~(w) & HIGH)
#define HASLESS(w, n) (((w) - ONES * (n)) & ~(w) & HIGH)

enum { VALUE, VALUE_OR_END, KEY, KEY_OR_END, COLON, NEXT, DONE };

void
json_init(struct json_parser *p)
{
	p->pos = 0;
	p->ntok = 0;
	p->keep = 0;
}

int
json_utf8len(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned c = s[0], lo = 0x80, hi = 0xbf;
	int len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else
		return 0;
	for (i = 1; i < len; i++, lo = 0x80, hi = 0xbf) {
		if ((size_t)i >= n)
			return -1;
		if (s[i] < lo || s[i] > hi)
			return 0;
	}
	return len;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Ends a string starting after its quote at i: returns the offset of the
 * closing quote, or a negative error with the bad offset in *at. */
static long
endstring(const char *js, size_t len, size_t i, size_t *at)
{
	const unsigned char *s = (const unsigned char *)js;
	int k, n;

	while (i < len) {
		/* Most of a long string is plain ASCII: skip it sixteen bytes at
		 * a time, or eight without SSE2. A signed compare with 0x20 also
		 * stops at bytes from 0x80, which the loop below checks. */
#ifdef __SSE2__
		while (i + 16 <= len) {
			__m128i v = _mm_loadu_si128((const __m128i *)(s + i));
			int m = _mm_movemask_epi8(_mm_or_si128(
			    _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
			                 _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
			    _mm_cmplt_epi8(v, _mm_set1_epi8(0x20))));
			if (m) {
				i += (size_t)__builtin_ctz((unsigned)m);
				break;
			}
			i += 16;
		}
#else
		while (i + 8 <= len) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			if ((w & HIGH) | HASLESS(w, 0x20) | HASZERO(w ^ (ONES * '"')) |
			    HASZERO(w ^ (ONES * '\\')))
				break;
			i += 8;
		}
#endif
		if (i == len)
			break;
		if (s[i] == '"')
			return (long)i;
		if (s[i] == '\\') {
			if (++i == len)
				break;
			if (s[i] == 'u') {
				for (k = 1; k <= 4; k++) {
					if (i + k >= len)
						goto part;
					if (hexval(s[i + k]) < 0) {
						*at = i + k;
						return JSON_EINVAL;
					}
				}
				i += 5;
			} else if (s[i] && strchr("\"\\/bfnrt", s[i])) {
				i++;
			} else {
				*at = i;
				return JSON_EINVAL;
			}
			continue;
		}
		if (s[i] < 0x20) {
			*at = i;
			return JSON_EINVAL;
		}
		n = json_utf8len((const char *)s + i, len - i);
		if (n < 0)
			break;
		if (n == 0) {
			*at = i;
			return JSON_EINVAL;
		}
		i += n;
	}
part:
	*at = len;
	return JSON_EPART;
}

static int
isdigit_(int c)
{
	return c >= '0' && c <= '9';
}

/* Ends a number starting at i; same returns as endstring(), the end
 * being the offset just past the number. */
static long
endnumber(const char *js, size_t len, size_t i, size_t *at)
{
	if (js[i] == '-')
		i++;
	if (i == len)
		goto part;
	if (js[i] == '0')
		i++;
	else if (isdigit_(js[i]))
		while (i < len && isdigit_(js[i]))
			i++;
	else
		goto inval;
	if (i < len && js[i] == '.') {
		if (++i == len)
			goto part;
		if (!isdigit_(js[i]))
			goto inval;
		while (i < len && isdigit_(js[i]))
			i++;
	}
	if (i < len && (js[i] == 'e' || js[i] == 'E')) {
		if (++i < len && (js[i] == '+' || js[i] == '-'))
			i++;
		if (i == len)
			goto part;
		if (!isdigit_(js[i]))
			goto inval;
		while (i < len && isdigit_(js[i]))
			i++;
	}
	return (long)i;
part:
	*at = len;
	return JSON_EPART;
inval:
	*at = i;
	return JSON_EINVAL;
}

int
json_parse(struct json_parser *p, const char *js, size_t len,
           struct json_tok *tok, unsigned ntok)
{
	/* The open containers: their kind and, when stored, their token. */
	unsigned char kind[JSON_MAXDEPTH];
	unsigned idx[JSON_MAXDEPTH];
	unsigned depth = 0, count = 0, n;
	size_t i = 0, at = 0;
	int st = VALUE, c, stored;
	struct json_tok *t;
	long end;

	for (;;) {
		while (i < len && (js[i] == ' ' || js[i] == '\t' ||
		                   js[i] == '\n' || js[i] == '\r'))
			i++;
		if (i == len) {
			p->pos = i;
			return st == DONE ? (int)count : JSON_EPART;
		}
		c = (unsigned char)js[i];
		switch (st) {
		case DONE:
			goto inval;
		case COLON:
			if (c != ':')
				goto inval;
			i++;
			st = VALUE;
			continue;
		case NEXT:
			if (c == ',') {
				i++;
				st = kind[depth - 1] == JSON_OBJECT ? KEY : VALUE;
				continue;
			}
			if (c != (kind[depth - 1] == JSON_OBJECT ? '}' : ']'))
				goto inval;
			goto close;
		case KEY_OR_END:
			if (c == '}')
				goto close;
			/* fall through */
		case KEY:
			if (c != '"')
				goto inval;
			break;
		case VALUE_OR_END:
			if (c == ']')
				goto close;
			break;
		}

		/* A value, or an object's key, starts at i. */
		stored = tok && (!p->keep || depth < p->keep);
		if (!p->keep || depth < p->keep)
			count++;
		t = NULL;
		if (stored) {
			if (p->ntok >= ntok) {
				p->pos = i;
				return JSON_ENOMEM;
			}
			t = &tok[p->ntok++];
			t->start = i;
			t->size = 0;
			t->next = p->ntok;
		}
		if (depth && tok && (!p->keep || depth - 1 < p->keep) &&
		    (st == KEY || st == KEY_OR_END ||
		     kind[depth - 1] == JSON_ARRAY))
			tok[idx[depth - 1]].size++;

		if (c == '{' || c == '[') {
			if (depth == JSON_MAXDEPTH) {
				p->pos = i;
				return JSON_EDEPTH;
			}
			kind[depth] = c == '{' ? JSON_OBJECT : JSON_ARRAY;
			idx[depth] = p->ntok - 1;
			if (t)
				t->type = kind[depth];
			depth++;
			i++;
			st = c == '{' ? KEY_OR_END : VALUE_OR_END;
			continue;
		}
		if (c == '"') {
			end = endstring(js, len, i + 1, &at);
			if (end < 0)
				goto fail;
			if (t) {
				t->type = JSON_STRING;
				t->start = i + 1;
				t->end = (size_t)end;
			}
			i = (size_t)end + 1;
			st = st == KEY || st == KEY_OR_END ? COLON : NEXT;
		} else if (c == '-' || isdigit_(c)) {
			end = endnumber(js, len, i, &at);
			if (end < 0)
				goto fail;
			if (t) {
				t->type = JSON_NUMBER;
				t->end = (size_t)end;
			}
			i = (size_t)end;
			st = NEXT;
		} else {
			static const char *const words[] = {"true", "false", "null"};
			for (n = 0; n < 3; n++)
				if (c == words[n][0])
					break;
			if (n == 3)
				goto inval;
			for (at = 1; words[n][at]; at++) {
				if (i + at == len) {
					at = len;
					end = JSON_EPART;
					goto fail;
				}
				if (js[i + at] != words[n][at]) {
					i += at;
					goto inval;
				}
			}
			if (t) {
				t->type = JSON_TRUE + n;
				t->end = i + at;
			}
			i += at;
			st = NEXT;
		}
		if (!depth)
			st = DONE;
		continue;
close:
		depth--;
		if (tok && (!p->keep || depth < p->keep)) {
			tok[idx[depth]].end = i + 1;
			tok[idx[depth]].next = p->ntok;
		}
		i++;
		st = depth ? NEXT : DONE;
	}
inval:
	p->pos = i;
	return JSON_EINVAL;
fail:
	p->pos = at;
	return (int)end;
}

int
json_get(const char *js, const struct json_tok *tok, int obj, const char *key)
{
	unsigned i, m;

	if (obj < 0 || tok[obj].type != JSON_OBJECT)
		return -1;
	for (i = (unsigned)obj + 1, m = 0; m < tok[obj].size; m++) {
		if (i >= tok[obj].next)
			return -1; /* members beyond the stored depth */
		if (json_eq(js, &tok[i], key))
			return (int)i + 1;
		i = tok[i + 1].next;
	}
	return -1;
}

/* Decodes the escape after a backslash at s[*i] into a code point. */
static unsigned long
unescape1(const char *s, size_t *i, size_t end)
{
	static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";
	unsigned long cp, lo;
	const char *q;
	int k;

	if (s[*i] != 'u') {
		q = strchr(from, s[*i]);
		cp = q ? (unsigned char)to[q - from] : (unsigned char)s[*i];
		(*i)++;
		return cp;
	}
	for (cp = 0, k = 1; k <= 4; k++)
		cp = cp << 4 | (unsigned)hexval(s[*i + k]);
	*i += 5;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return 0xfffd;
	if (cp < 0xd800 || cp > 0xdbff)
		return cp;
	if (*i + 6 > end || s[*i] != '\\' || s[*i + 1] != 'u')
		return 0xfffd;
	for (lo = 0, k = 2; k <= 5; k++)
		lo = lo << 4 | (unsigned)hexval(s[*i + k]);
	if (lo < 0xdc00 || lo > 0xdfff)
		return 0xfffd;
	*i += 6;
	return 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
}

/* Appends src[0..len) to out (when there is one) at *n; 0, or -1 when
 * it does not fit. */
static int
emit(char *out, size_t outsize, size_t *n, const void *src, size_t len)
{
	if (out) {
		if (*n + len > outsize)
			return -1;
		memcpy(out + *n, src, len);
	}
	*n += len;
	return 0;
}

long
json_unescape(const char *js, const struct json_tok *t, char *out,
              size_t outsize)
{
	unsigned char u[4];
	size_t i = t->start, n = 0, len;
	unsigned long cp;
	const char *bs;
	int k;

	while (i < t->end) {
		if (js[i] != '\\') {
			/* Copy up to the next escape at once. */
			bs = memchr(js + i, '\\', t->end - i);
			len = (bs ? (size_t)(bs - js) : t->end) - i;
			if (emit(out, outsize, &n, js + i, len) < 0)
				return -1;
			i += len;
			continue;
		}
		i++;
		cp = unescape1(js, &i, t->end);
		len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
		/* The lead byte: 0xxxxxxx, 110xxxxx, 1110xxxx or 11110xxx. */
		u[0] = (unsigned char)(len == 1 ? cp : (0xf00u >> len & 0xf0) | cp >> 6 * (len - 1));
		for (k = (int)len - 1; k > 0; k--, cp >>= 6)
			u[k] = (unsigned char)(0x80 | (cp & 0x3f));
		if (emit(out, outsize, &n, u, len) < 0)
			return -1;
	}
	return (long)n;
}

int
json_eq(const char *js, const struct json_tok *t, const char *s)
{
	char buf[256];
	size_t n = strlen(s);
	long got;

	if (t->type != JSON_STRING)
		return 0;
	if (!memchr(js + t->start, '\\', t->end - t->start))
		return t->end - t->start == n && !memcmp(js + t->start, s, n);
	got = json_unescape(js, t, buf, sizeof buf);
	return got >= 0 && (size_t)got == n && !memcmp(buf, s, n);
}

int
json_int(const char *js, const struct json_tok *t, long long *v)
{
	size_t i = t->start;
	unsigned long long u = 0, lim = 9223372036854775807ULL;
	int neg = 0;

	if (t->type != JSON_NUMBER)
		return -1;
	if (js[i] == '-') {
		neg = 1;
		lim++;
		i++;
	}
	for (; i < t->end; i++) {
		if (!isdigit_(js[i]) || u > (lim - (unsigned)(js[i] - '0')) / 10)
			return -1;
		u = u * 10 + (unsigned)(js[i] - '0');
	}
	*v = neg ? (long long)(0 - u) : (long long)u;
	return 0;
}

void
json_scan_init(struct json_scan *s, size_t pos)
{
	s->pos = s->start = pos;
	s->depth = 0;
	s->state = 0;
}

int
json_scan(struct json_scan *s, const char *js, size_t len)
{
	enum { BETWEEN, INSIDE, STRING, ESCAPE };
	unsigned char c;

	for (; s->pos < len; s->pos++) {
		/* Inside a string only a quote, a backslash or 0xFF matter. */
#ifdef __SSE2__
		while (s->state == STRING && s->pos + 16 <= len) {
			__m128i v = _mm_loadu_si128((const __m128i *)(js + s->pos));
			int m = _mm_movemask_epi8(_mm_or_si128(
			    _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
			                 _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
			    _mm_cmpeq_epi8(v, _mm_set1_epi8(-1))));
			if (m) {
				s->pos += (size_t)__builtin_ctz((unsigned)m);
				break;
			}
			s->pos += 16;
		}
#else
		while (s->state == STRING && s->pos + 8 <= len) {
			uint64_t w;
			memcpy(&w, js + s->pos, 8);
			if (HASZERO(w ^ (ONES * '"')) | HASZERO(w ^ (ONES * '\\')) |
			    HASZERO(~w))
				break;
			s->pos += 8;
		}
#endif
		if (s->pos == len)
			break;
		c = (unsigned char)js[s->pos];
		if (c == 0xff) {
			s->state = BETWEEN;
			s->depth = 0;
			s->start = ++s->pos;
			return JSON_SCAN_SENTINEL;
		}
		switch (s->state) {
		case BETWEEN:
			if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
				break;
			s->start = s->pos;
			if (c == '"') {
				s->state = STRING;
			} else if (c == '{' || c == '[') {
				s->depth = 1;
				s->state = INSIDE;
			} else
				return JSON_SCAN_GARBAGE;
			break;
		case INSIDE:
			if (c == '"')
				s->state = STRING;
			else if (c == '{' || c == '[') {
				if (++s->depth > JSON_MAXDEPTH)
					return JSON_SCAN_DEPTH;
			} else if ((c == '}' || c == ']') && !--s->depth) {
				s->state = BETWEEN;
				s->pos++;
				return JSON_SCAN_VALUE;
			}
			break;
		case STRING:
			if (c == '\\')
				s->state = ESCAPE;
			else if (c == '"') {
				s->state = s->depth ? INSIDE : BETWEEN;
				if (!s->depth) {
					s->pos++;
					return JSON_SCAN_VALUE;
				}
			}
			break;
		case ESCAPE:
			s->state = STRING;
			break;
		}
	}
	return JSON_SCAN_MORE;
}
