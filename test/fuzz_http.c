/* SPDX-License-Identifier: MIT */
/* A libFuzzer target for serve's HTTP parsers: http_parse() of a request's
 * head, http_chunk() of a chunked body and http_query() of its target,
 * pure functions of the bytes a client sent. Whatever those are, each
 * must say "more", refuse them, or describe what lies within them. qga.c
 * is included whole, its main renamed, since the parsers are its own
 * functions. Linked with fuzz_main.c it replays a corpus, which is how
 * make check runs it. */
#define main qga_main
#include "../qga.c"
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A chunked body at s[0..n), as serve reads it: chunk-size lines and
 * data, pieces of it at a time. */
static void
chunks(const char *s, size_t n)
{
	unsigned long long size = 0, left = 0;
	size_t off = 0;
	int after = 0;
	long k;

	while (off < n) {
		if (!left) {
			if ((k = http_chunk(s + off, n - off, after, &size)) <= 0)
				return;
			if ((size_t)k > n - off)
				abort();
			off += (size_t)k;
			after = 1;
			if (!(left = size))
				return;
		}
		k = (long)(n - off < left ? n - off : left);
		off += (size_t)k;
		left -= (unsigned long long)k;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char v[64];
	struct http_req r;
	size_t off = 0;
	long n;

	/* As client_http does: one request after another, pipelined. */
	while (off < size && http_parse(s + off, size - off, "0123456789abcdef", &r) == 1) {
		if (r.head > size - off || r.head < 4 || !r.mlen || !r.tlen ||
		    r.method != s + off || r.target < r.method || r.target + r.tlen > s + off + r.head ||
		    (r.host && (r.host < s + off || r.host + r.hostlen > s + off + r.head)) ||
		    (r.origin && (r.origin < s + off || r.origin + r.originlen > s + off + r.head)) ||
		    memchr(s + off, 0, r.head))
			abort();
		if ((n = http_query(&r, "path", v, sizeof v)) >= (long)sizeof v ||
		    (n >= 0 && (strlen(v) != (size_t)n)))
			abort();
		off += r.head;
		if (r.chunked) {
			chunks(s + off, size - off);
			return 0;
		}
		if (r.body > size - off)
			return 0;
		off += r.body;
	}
	return 0;
}
