/* SPDX-License-Identifier: MIT */
/* A libFuzzer target for serve's HTTP request parser, http_parse(), which
 * is a pure function of the bytes a client sent: whatever they are, it
 * must say "more", refuse with a status, or describe a request that lies
 * within them. qga.c is included whole, its main renamed, since the
 * parser is one of its own functions. Linked with fuzz_main.c it replays
 * a corpus, which is how make check runs it. */
#define main qga_main
#include "../qga.c"
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct http_req r;
	size_t off = 0;
	int st;

	/* As client_http does: one request after another, pipelined. */
	while (off < size && (st = http_parse(s + off, size - off, 1 << 20,
	                                      "0123456789abcdef", &r)) == 1) {
		if (r.head + r.body > size - off || r.head < 4 || !r.mlen || !r.tlen ||
		    r.method != s + off || r.target < r.method || r.target + r.tlen > s + off + r.head)
			abort();
		off += r.head + r.body;
	}
	return 0;
}
