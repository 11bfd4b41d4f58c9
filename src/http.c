/* SPDX-License-Identifier: MIT */
/* HTTP for serve: replies, the token, and the parsers of a head, a
 * chunked body and a query, pure functions of their bytes. */
#include "qga.h"

void
http_reply(int i, int code, const char *body, size_t len, int keep, int text)
{
	static const char *const reasons[] = {
		"200 OK", "204 No Content", "400 Bad Request", "401 Unauthorized", "403 Forbidden",
		"404 Not Found", "405 Method Not Allowed", "411 Length Required",
		"413 Content Too Large", "415 Unsupported Media Type",
		"431 Request Header Fields Too Large",
		"501 Not Implemented", "502 Bad Gateway", "503 Service Unavailable",
		"504 Gateway Timeout"};
	struct client *c = &sv.cl[i];
	char head[256], err[128];
	const char *reason = "500 Internal Server Error";
	size_t k;

	for (k = 0; k < sizeof reasons / sizeof *reasons; k++)
		if (num(reasons[k], NULL, 10, 999) == code)
			reason = reasons[k];
	/* An error of the server's own has a JSON body too. */
	if (!len && code >= 400) {
		len = (size_t)snprintf(err, sizeof err, "{\"error\": {\"class\": "
		                       "\"GenericError\", \"desc\": \"%s\"}}", reason + 4);
		body = err;
	}
	snprintf(head, sizeof head, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu"
	         "\r\n%s%s\r\n", reason, text == 2 ? "text/html; charset=utf-8" :
	         text ? "text/plain; version=0.0.4; charset=utf-8" : "application/json", len,
	         code == 401 ? "WWW-Authenticate: Bearer\r\n" : "",
	         keep ? "" : "Connection: close\r\n");
	buf_str(&c->out, head);
	buf_add(&c->out, body, len);
	client_flush(i);
	if (!keep && c->fd >= 0 && c->outoff == c->out.len && !c->drain)
		client_close(i, "done");
}

/* Reads the token HTTP clients must send, the file's first line. */
void
read_token(const char *path)
{
	FILE *f = fopen(path, "re");

	if (!f || !fgets(sv.token, sizeof sv.token, f))
		die(EX_USAGE, "%s: read --token-file %s:", cur->name, path);
	fclose(f);
	sv.token[strcspn(sv.token, "\r\n")] = 0;
	if (strlen(sv.token) < 16)
		die(EX_USAGE, "%s: the token in %s is shorter than 16 bytes", cur->name, path);
}

/* Whether an Authorization value, v[0..n), carries the token, compared in
 * a time that does not depend on where they differ. */
static int
authorized(const char *token, const char *v, size_t n)
{
	size_t i, k = strlen(token);
	unsigned char d = 0;

	if (n != k + 7 || strncmp(v, "Bearer ", 7))
		return 0;
	for (i = 0; i < k; i++)
		d |= (unsigned char)(v[7 + i] ^ token[i]);
	return !d;
}

#define HTTP_HEAD_MAX 16384

/* Whether the header line at h, whose name ends at colon, is name. */
static int
header_is(const char *h, const char *colon, const char *name)
{
	return (size_t)(colon - h) == strlen(name) && !strncasecmp(h, name, strlen(name));
}

/* Whether s[0..n) is a token (RFC 9110, 5.6.2), as a field name must be. */
static int
http_token(const char *s, size_t n)
{
	for (; n; s++, n--)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || (*s && strchr("!#$%&'*+-.^_`|~", *s))))
			return 0;
	return 1;
}

/* Parses the head of the HTTP request at the start of s[0..n), a pure
 * function of those bytes (and of the token a request must carry, if
 * any): 1 with *r filled once the head is all there, 0 while more bytes
 * are needed, else the status that refuses it (400, 431, 501), after
 * which the connection ends. Its body, if any, follows the head. A line
 * ends in CRLF and nothing else; a NUL, a CR or LF alone, a field name
 * that is not a token, and two Hosts or Origins, which two readers could
 * take each its own, are a 400 (RFC 9112, 2.2 and 5). */
int
http_parse(const char *s, size_t n, const char *token, struct http_req *r)
{
	const char *end, *line, *eol, *colon, *v, *sp;
	long long len = -1, k;
	size_t vn, m, j;
	char *e;

	memset(r, 0, sizeof *r);
	end = memmem(s, n < HTTP_HEAD_MAX ? n : HTTP_HEAD_MAX, "\r\n\r\n", 4);
	m = end ? (size_t)(end - s) + 4 : n < HTTP_HEAD_MAX ? n : HTTP_HEAD_MAX;
	for (j = 0; j < m; j++)
		if (!s[j] || (s[j] == '\n' && (!j || s[j - 1] != '\r')) ||
		    (s[j] == '\r' && j + 1 < m && s[j + 1] != '\n'))
			return 400;
	if (!end)
		return n >= HTTP_HEAD_MAX ? 431 : 0;
	r->head = (size_t)(end - s) + 4;
	/* METHOD SP TARGET SP HTTP/1.0 or HTTP/1.1 */
	eol = memchr(s, '\r', r->head);
	if (!(sp = memchr(s, ' ', (size_t)(eol - s))) || sp == s)
		return 400;
	r->method = s;
	r->mlen = (size_t)(sp - s);
	r->target = sp + 1;
	if (!(sp = memchr(r->target, ' ', (size_t)(eol - r->target))) || sp == r->target ||
	    eol - sp != 9 || memcmp(sp + 1, "HTTP/1.", 7) || (sp[8] != '0' && sp[8] != '1'))
		return 400;
	r->tlen = (size_t)(sp - r->target);
	r->keep = r->v11 = sp[8] == '1';
	for (line = eol + 2; line < end; line = eol + 2) {
		eol = memchr(line, '\r', (size_t)(end - line) + 1);
		if (eol[1] != '\n' || !(colon = memchr(line, ':', (size_t)(eol - line))) ||
		    colon == line || !http_token(line, (size_t)(colon - line)))
			return 400;
		v = colon + 1 + strspn(colon + 1, " \t");
		for (vn = v < eol ? (size_t)(eol - v) : 0; vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'); vn--)
			;
		if (header_is(line, colon, "content-length")) {
			/* Two lengths that differ would let two readers of one
			 * stream disagree on where a request ends. */
			if ((k = num(v, &e, 10, 1LL << 50)) < 0 || e != v + vn || (len >= 0 && k != len))
				return 400;
			len = k;
		} else if (header_is(line, colon, "connection"))
			r->keep = vn == 5 && !strncasecmp(v, "close", 5) ? 0 :
			          vn == 10 && !strncasecmp(v, "keep-alive", 10) ? 1 : r->keep;
		else if (header_is(line, colon, "transfer-encoding")) {
			if (vn != 7 || strncasecmp(v, "chunked", 7))
				return 501;
			r->chunked = 1;
		} else if (header_is(line, colon, "expect"))
			r->expect = vn == 12 && !strncasecmp(v, "100-continue", 12);
		else if (header_is(line, colon, "authorization"))
			r->auth |= *token && authorized(token, v, vn);
		else if (header_is(line, colon, "host")) {
			if (r->host)
				return 400;
			r->host = v;
			r->hostlen = vn;
		} else if (header_is(line, colon, "origin")) {
			if (r->origin)
				return 400;
			r->origin = v;
			r->originlen = vn;
		} else if (header_is(line, colon, "content-type")) {
			/* Its parameters, a charset, say nothing here. */
			for (k = 0; (size_t)k < vn && v[k] != ';' && v[k] != ' ' && v[k] != '\t'; k++)
				;
			r->json = k == 16 && !strncasecmp(v, "application/json", 16);
		} else if (header_is(line, colon, "sec-fetch-site"))
			r->xsite = !(vn == 11 && !strncasecmp(v, "same-origin", 11)) &&
			           !(vn == 4 && !strncasecmp(v, "none", 4));
	}
	/* Both would be the same ambiguity. */
	if (r->chunked && len >= 0)
		return 400;
	r->haslen = len >= 0;
	r->body = len > 0 ? (unsigned long long)len : 0;
	return 1;
}

static int
hexval(char c)
{
	return !isxdigit((unsigned char)c) ? -1 : isdigit((unsigned char)c) ? c - '0' :
	       tolower((unsigned char)c) - 'a' + 10;
}

/* The chunk-size line of a chunked body (RFC 9112, 7.1) at s[0..n), after
 * the CRLF that ends the data of the chunk before when after is set: its
 * length, with the chunk's size in *size; 0 while more bytes are needed;
 * -1 if it is not one. For the last chunk, of size 0, the length takes in
 * the trailer section too, which ends the body. Extensions are ignored. */
long
http_chunk(const char *s, size_t n, int after, unsigned long long *size)
{
	const char *p = s, *e = s + n, *eol;
	unsigned long long v = 0;
	int d, digits = 0;

	if (after) {
		if (n < 2)
			return n && *s != '\r' ? -1 : 0;
		if (memcmp(s, "\r\n", 2))
			return -1;
		p += 2;
	}
	if (!(eol = memmem(p, (size_t)(e - p), "\r\n", 2)))
		return e - p > 1024 ? -1 : 0;
	for (; p < eol && (d = hexval(*p)) >= 0; p++, digits++) {
		if (v >> 56)
			return -1;
		v = v * 16 + (unsigned)d;
	}
	if (!digits || (p < eol && *p != ';' && *p != ' ' && *p != '\t'))
		return -1;
	for (p = eol + 2; !v; p = eol + 2) {
		if (!(eol = memmem(p, (size_t)(e - p), "\r\n", 2)))
			return e - s > HTTP_HEAD_MAX ? -1 : 0;
		if (eol == p) {
			p += 2;
			break;
		}
	}
	if (p - s > 1024 + HTTP_HEAD_MAX)
		return -1;
	*size = v;
	return p - s;
}

/* The value of key in the query of an HTTP request's target, its %XX and
 * + decoded, into out[0..size): its length; -1 when it is not there, -2
 * when it is not well formed (a byte that is not printable, a % not of
 * two hex digits), does not fit, or would hold a NUL byte. */
long
http_query(const struct http_req *r, const char *key, char *out, size_t size)
{
	const char *p = memchr(r->target, '?', r->tlen), *e = r->target + r->tlen, *amp;
	size_t k = strlen(key), n = 0;
	int hi = 0, lo = 0;

	for (; p && p < e; p = amp) {
		p++;
		if (!(amp = memchr(p, '&', (size_t)(e - p))))
			amp = e;
		if ((size_t)(amp - p) <= k || memcmp(p, key, k) || p[k] != '=')
			continue;
		for (p += k + 1; p < amp; p++) {
			if ((unsigned char)*p <= ' ' || (*p == '%' && (amp - p < 3 ||
			    (hi = hexval(p[1])) < 0 || (lo = hexval(p[2])) < 0 || !(hi | lo))))
				return -2;
			if (n + 1 >= size)
				return -2;
			out[n++] = *p == '+' ? ' ' : *p == '%' ? (char)(hi * 16 + lo) : *p;
			p += *p == '%' ? 2 : 0;
		}
		out[n] = 0;
		return (long)n;
	}
	return -1;
}
