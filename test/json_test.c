/* SPDX-License-Identifier: MIT */
/* Unit tests for json.c, and the JSONTestSuite corpus when a folder of it
 * is named: every y_ file must parse, every n_ file must fail, every i_
 * file must merely come back. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../json.h"

static int passed, failed;

static void
check(int ok, const char *what, int line)
{
	if (ok) {
		passed++;
		return;
	}
	failed++;
	fprintf(stderr, "json_test.c:%d: FAIL: %s\n", line, what);
}
#define CHECK(e) check(!!(e), #e, __LINE__)

static int
parse(const char *s, struct json_tok *t, unsigned n)
{
	struct json_parser p;

	json_init(&p);
	return json_parse(&p, s, strlen(s), t, n);
}

static size_t
errpos(const char *s)
{
	struct json_parser p;

	json_init(&p);
	json_parse(&p, s, strlen(s), NULL, 0);
	return p.pos;
}

static void
test_tokens(void)
{
	const char *s = "{\"return\": {\"pid\": 7, \"a\": [1, [2], {}]}, \"id\": \"x\"}";
	struct json_tok t[16];
	int r, v;
	long long n;

	r = parse(s, t, 16);
	CHECK(r == 13);
	CHECK(t[0].type == JSON_OBJECT && t[0].size == 2 && t[0].next == 13);
	CHECK(t[0].start == 0 && t[0].end == strlen(s));
	v = json_get(s, t, 0, "return");
	CHECK(v == 2 && t[v].type == JSON_OBJECT && t[v].size == 2);
	CHECK(json_int(s, &t[json_get(s, t, v, "pid")], &n) == 0 && n == 7);
	r = json_get(s, t, v, "a");
	CHECK(r > 0 && t[r].type == JSON_ARRAY && t[r].size == 3);
	CHECK(json_get(s, t, 0, "id") == 12 && json_eq(s, &t[12], "x"));
	CHECK(json_get(s, t, 0, "nope") == -1);
	CHECK(json_get(s, t, 11, "x") == -1);
	CHECK(parse(s, t, 5) == JSON_ENOMEM);
	CHECK(parse(s, NULL, 0) == 13);
}

static void
test_keep(void)
{
	const char *s = "{\"error\": {\"class\": \"C\", \"desc\": [1, 2]}, \"id\": 3}";
	struct json_parser p;
	struct json_tok t[16];
	int e;

	json_init(&p);
	p.keep = 2;
	CHECK(json_parse(&p, s, strlen(s), t, 16) == 5);
	e = json_get(s, t, 0, "error");
	CHECK(e == 2 && t[e].size == 2 && t[e].next == 3);
	CHECK(json_get(s, t, e, "class") == -1);
	CHECK(json_get(s, t, 0, "id") == 4);
	json_init(&p);
	p.keep = 3;
	CHECK(json_parse(&p, s, strlen(s), t, 16) == 9);
	e = json_get(s, t, 0, "error");
	CHECK(json_eq(s, &t[json_get(s, t, e, "class")], "C"));
	CHECK(t[json_get(s, t, e, "desc")].size == 2);
}

static void
test_strict(void)
{
	struct json_tok t[8];

	CHECK(parse("{\"a\":1,}", t, 8) == JSON_EINVAL);
	CHECK(errpos("{\"a\":1,}") == 7);
	CHECK(parse("[1,]", t, 8) == JSON_EINVAL);
	CHECK(parse("{'a':1}", t, 8) == JSON_EINVAL);
	CHECK(parse("{\"a\" 1}", t, 8) == JSON_EINVAL);
	CHECK(parse("01", t, 8) == JSON_EINVAL);
	CHECK(parse("1.", t, 8) == JSON_EPART);
	CHECK(parse("{\"a\":tru", t, 8) == JSON_EPART);
	CHECK(parse("{\"a\":trux}", t, 8) == JSON_EINVAL);
	CHECK(parse("\"a\tb\"", t, 8) == JSON_EINVAL);
	CHECK(parse("\"\\x\"", t, 8) == JSON_EINVAL);
	CHECK(parse("\"\xc3\"", t, 8) == JSON_EINVAL);
	CHECK(parse("\"\xed\xa0\x80\"", t, 8) == JSON_EINVAL);
	CHECK(parse("\"\xff\"", t, 8) == JSON_EINVAL);
	CHECK(parse("{} {}", t, 8) == JSON_EINVAL);
	CHECK(errpos("{} {}") == 3);
	CHECK(parse("", t, 8) == JSON_EPART);
	CHECK(parse(" [true, false, null, -0.5e+3, \"\\u00e9\"] ", t, 8) == 6);
}

static void
test_depth(void)
{
	static char s[2 * JSON_MAXDEPTH + 4];
	size_t n;

	for (n = 0; n < JSON_MAXDEPTH; n++) {
		s[n] = '[';
		s[2 * JSON_MAXDEPTH - 1 - n] = ']';
	}
	s[2 * JSON_MAXDEPTH] = 0;
	CHECK(parse(s, NULL, 0) == JSON_MAXDEPTH);
	memmove(s + 1, s, 2 * JSON_MAXDEPTH + 1);
	s[0] = '[';
	strcat(s, "]");
	CHECK(parse(s, NULL, 0) == JSON_EDEPTH);
	CHECK(errpos(s) == JSON_MAXDEPTH);
}

static void
test_unescape(void)
{
	const char *s = "[\"h\\u00e9\\ud83d\\ude00\\n\\/\", \"\\udc00x\\ud800\"]";
	struct json_tok t[4];
	char out[32];
	long n;

	CHECK(parse(s, t, 4) == 3);
	n = json_unescape(s, &t[1], out, sizeof out);
	CHECK(n == 9 && !memcmp(out, "h\xc3\xa9\xf0\x9f\x98\x80\n/", 9));
	CHECK(json_unescape(s, &t[1], out, 3) == -1);
	CHECK(json_unescape(s, &t[1], NULL, 0) == 11 - 2);
	n = json_unescape(s, &t[2], out, sizeof out);
	CHECK(n == 7 && !memcmp(out, "\xef\xbf\xbdx\xef\xbf\xbd", 7));
	CHECK(parse("\"ke\\u0079\"", t, 4) == 1 && json_eq("\"ke\\u0079\"", &t[0], "key"));
}

static void
test_int(void)
{
	const char *s = "[9223372036854775807, -9223372036854775808, 9223372036854775808, 1.0, 1e3, -0]";
	struct json_tok t[8];
	long long v;

	CHECK(parse(s, t, 8) == 7);
	CHECK(json_int(s, &t[1], &v) == 0 && v == 9223372036854775807LL);
	CHECK(json_int(s, &t[2], &v) == 0 && v == -9223372036854775807LL - 1);
	CHECK(json_int(s, &t[3], &v) == -1);
	CHECK(json_int(s, &t[4], &v) == -1);
	CHECK(json_int(s, &t[5], &v) == -1);
	CHECK(json_int(s, &t[6], &v) == 0 && v == 0);
	CHECK(json_int(s, &t[0], &v) == -1);
}

static void
test_scan(void)
{
	const char *s = " \n{\"a\": \"}\\\"{\"}\xff\r\n[1]\"s\\\"\"x{";
	size_t len = strlen(s), k;
	struct json_scan sc;

	json_scan_init(&sc, 0);
	CHECK(json_scan(&sc, s, len) == JSON_SCAN_VALUE);
	CHECK(sc.start == 2 && sc.pos == 15);
	CHECK(json_scan(&sc, s, len) == JSON_SCAN_SENTINEL && sc.pos == 16);
	CHECK(json_scan(&sc, s, len) == JSON_SCAN_VALUE && sc.start == 18 && sc.pos == 21);
	CHECK(json_scan(&sc, s, len) == JSON_SCAN_VALUE && sc.pos == 26);
	CHECK(json_scan(&sc, s, len) == JSON_SCAN_GARBAGE && sc.pos == 26);
	sc.pos++;
	CHECK(json_scan(&sc, s, len) == JSON_SCAN_MORE && sc.pos == len);

	/* Byte by byte, as a slow channel delivers it. */
	json_scan_init(&sc, 0);
	for (k = 1; k <= 15; k++)
		if (json_scan(&sc, s, k) != JSON_SCAN_MORE)
			break;
	CHECK(k == 15 && sc.start == 2 && sc.pos == 15);

	/* A sentinel abandons a value in progress. */
	json_scan_init(&sc, 0);
	CHECK(json_scan(&sc, "{\"a\":\xff{}", 8) == JSON_SCAN_SENTINEL && sc.pos == 6);
	CHECK(json_scan(&sc, "{\"a\":\xff{}", 8) == JSON_SCAN_VALUE && sc.start == 6);
}

/* Long strings are skipped many bytes at a time: what stops the skip must
 * be found at every offset, in the tokenizer and in the framer. */
static void
test_long(void)
{
	static const char *const mark[] = {"\\n", "\xc3\xa9", "\x1f", "\x01", "\xff",
	                                   "\""};
	char s[128];
	struct json_tok t[2];
	struct json_parser p;
	struct json_scan sc;
	size_t at, m, len, bad = 0;
	int r, want;

	for (m = 0; m < sizeof mark / sizeof *mark; m++)
		for (at = 1; at < 70; at++) {
			memset(s, 'a', sizeof s);
			s[0] = '"';
			memcpy(s + at, mark[m], strlen(mark[m]));
			len = at + strlen(mark[m]) + 40;
			s[len - 1] = '"';
			/* An escape and UTF-8 pass; a control byte and 0xFF fail
			 * where they are, and a quote ends the string early. */
			json_init(&p);
			r = json_parse(&p, s, len, t, 2);
			want = m < 2 ? r == 1 && t[0].end == len - 1 :
			       r < 0 && p.pos == at + (m == 5);
			json_scan_init(&sc, 0);
			r = json_scan(&sc, s, len);
			want &= m == 4 ? r == JSON_SCAN_SENTINEL && sc.pos == at + 1 :
			        m == 5 ? r == JSON_SCAN_VALUE && sc.pos == at + 1 :
			        r == JSON_SCAN_VALUE && sc.pos == len;
			bad += !want;
		}
	CHECK(bad == 0);
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
	    fread(buf, 1, (size_t)n, f) == (size_t)n)
		*len = (size_t)n;
	else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

static void
test_corpus(const char *dir)
{
	struct json_parser p;
	struct dirent *d;
	char path[4096], *buf;
	size_t len;
	int r;
	DIR *dp = opendir(dir);

	if (!dp) {
		perror(dir);
		failed++;
		return;
	}
	while ((d = readdir(dp))) {
		if (d->d_name[0] == '.' || d->d_name[1] != '_')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, d->d_name);
		if (!(buf = slurp(path, &len))) {
			perror(path);
			failed++;
			continue;
		}
		json_init(&p);
		r = json_parse(&p, buf, len, NULL, 0);
		if (d->d_name[0] == 'y')
			check(r > 0, path, __LINE__);
		else if (d->d_name[0] == 'n')
			check(r < 0, path, __LINE__);
		else
			check(r >= JSON_EDEPTH, path, __LINE__);
		free(buf);
	}
	closedir(dp);
}

int
main(int argc, char **argv)
{
	test_tokens();
	test_keep();
	test_strict();
	test_depth();
	test_unescape();
	test_int();
	test_scan();
	test_long();
	if (argc > 1)
		test_corpus(argv[1]);
	printf("json: %d passed, %d failed\n", passed, failed);
	return failed != 0;
}
