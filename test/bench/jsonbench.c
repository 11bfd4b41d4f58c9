/* SPDX-License-Identifier: MIT */
/* jsonbench: json.c against cJSON on the same reply: a guest-exec-status
 * with 16 MiB of output (22 MiB of JSON). Each tokenizes it, finds
 * out-data and has its string decoded into memory of its own (json.c
 * unescapes it; cJSON's parse copies it, and it is copied out). Prints
 * MB/s for each, best of 5, and the base64 decoding that follows in qga. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../json.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static signed char val[256];

static size_t
unb64(const char *s, size_t n, unsigned char *out)
{
	unsigned acc = 0;
	int bits = 0;
	size_t i, o = 0;

	for (i = 0; i < n && s[i] != '='; i++) {
		acc = acc << 6 | (unsigned)val[(unsigned char)s[i]];
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return o;
}

int
main(void)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = 16 << 20, enc = (n + 2) / 3 * 4, len, i, got = 0;
	char *js = malloc(enc + 256), *p;
	unsigned char *out = malloc(n + enc);
	double t, best[2] = {1e9, 1e9};
	int round, r, v;

	for (i = 0; i < 64; i++)
		val[(unsigned char)b64[i]] = (signed char)i;
	p = js + sprintf(js, "{\"return\": {\"exitcode\": 0, \"out-data\": \"");
	for (i = 0; i < enc; i++)
		*p++ = b64[(i * 7 + i / 64) & 63];
	p += sprintf(p, "\", \"out-truncated\": false, \"exited\": true}}");
	len = (size_t)(p - js);

	for (round = 0; round < 5; round++) {
		struct json_parser jp;
		struct json_tok t2[32];
		cJSON *root, *ret, *data;

		t = now();
		json_init(&jp);
		r = json_parse(&jp, js, len, t2, 32);
		v = json_get(js, t2, json_get(js, t2, 0, "return"), "out-data");
		if (r < 0 || v < 0)
			return 1;
		got = (size_t)json_unescape(js, &t2[v], (char *)out, n + enc);
		t = now() - t;
		if (t < best[0])
			best[0] = t;

		t = now();
		root = cJSON_ParseWithLength(js, len);
		ret = cJSON_GetObjectItemCaseSensitive(root, "return");
		data = cJSON_GetObjectItemCaseSensitive(ret, "out-data");
		if (!cJSON_IsString(data))
			return 1;
		got = strlen(data->valuestring);
		memcpy(out, data->valuestring, got);
		cJSON_Delete(root);
		t = now() - t;
		if (t < best[1])
			best[1] = t;
	}
	t = now();
	i = unb64(js + 40, enc, out);
	t = now() - t;
	printf("reply %zu bytes, out-data %zu bytes; base64 decoding %.0f MB/s\n",
	       len, got, enc / t / 1e6);
	printf("json.c  %7.0f MB/s\ncJSON   %7.0f MB/s\nratio   %7.2f (json.c / cJSON)\n",
	       len / best[0] / 1e6, len / best[1] / 1e6, best[1] / best[0]);
	return 0;
}
