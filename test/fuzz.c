/* SPDX-License-Identifier: MIT */
/* A libFuzzer target for json.c: the stream framer that reads replies off
 * the wire, and the strict parser and helpers run on what it frames, as
 * qga does. Built with -fsanitize=fuzzer it is a fuzzer; linked with
 * fuzz_main.c it replays a corpus, which is how make check runs it. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
walk(const char *js, size_t len, unsigned keep)
{
	struct json_parser p;
	struct json_tok t[256];
	char out[512];
	long long v;
	int n, i;

	json_init(&p);
	p.keep = keep;
	n = json_parse(&p, js, len, t, 256);
	if (n > 256 || n == JSON_ENOMEM)
		n = (int)p.ntok;
	if (n < 0)
		return;
	for (i = 0; i < n; i++) {
		if (t[i].type == JSON_STRING)
			json_unescape(js, &t[i], out, sizeof out);
		else if (t[i].type == JSON_NUMBER)
			json_int(js, &t[i], &v);
		else if (t[i].type == JSON_OBJECT && (unsigned)n == p.ntok)
			json_get(js, t, i, "return");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *js = (const char *)data;
	struct json_parser p;
	struct json_scan sc;
	size_t k;
	int r;

	json_init(&p);
	json_parse(&p, js, size, NULL, 0);
	walk(js, size, 0);

	/* Frame the input as a stream arriving in uneven pieces. */
	json_scan_init(&sc, 0);
	for (k = size < 7 ? size : 7;; k = k + 13 < size ? k + 13 : size) {
		while ((r = json_scan(&sc, js, k)) != JSON_SCAN_MORE) {
			if (r == JSON_SCAN_VALUE)
				walk(js + sc.start, sc.pos - sc.start, 2);
			else if (r == JSON_SCAN_GARBAGE || r == JSON_SCAN_DEPTH)
				json_scan_init(&sc, sc.pos + 1);
		}
		if (k == size)
			break;
	}
	return 0;
}
