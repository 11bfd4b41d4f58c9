/* SPDX-License-Identifier: MIT */
/* json.h: a strict JSON tokenizer with caller-owned tokens.
 *
 * Two calls do the work: json_init() and json_parse(). Tokens hold byte
 * offsets into the caller's text; nothing is allocated, printed or exited.
 * Unlike jsmn the grammar is RFC 8259's exactly: trailing commas, bare
 * words, single quotes, control characters and bad UTF-8 are rejected.
 * Errors are negative and leave the offending byte offset in p->pos.
 */
#ifndef QGA_JSON_H
#define QGA_JSON_H

#include <stddef.h>

#define JSON_MAXDEPTH 1024 /* the guest agent's own nesting limit */

enum json_type {
	JSON_OBJECT = 1, JSON_ARRAY, JSON_STRING, JSON_NUMBER,
	JSON_TRUE, JSON_FALSE, JSON_NULL
};

enum json_err {
	JSON_EINVAL = -1, /* not JSON */
	JSON_ENOMEM = -2, /* more tokens than the caller gave room for */
	JSON_EPART = -3,  /* the text ends inside a value */
	JSON_EDEPTH = -4  /* nested deeper than JSON_MAXDEPTH */
};

struct json_tok {
	unsigned char type;
	size_t start, end; /* strings exclude their quotes */
	unsigned size;     /* members of an object, elements of an array */
	unsigned next;     /* index of the first token after this value */
};

struct json_parser {
	size_t pos;        /* where parsing stopped, or the offending byte */
	unsigned ntok;     /* tokens stored */
	unsigned keep;     /* store only this many levels of nesting; 0: all */
};

void json_init(struct json_parser *p);
/* Parse the JSON text that fills js[0..len). With tok NULL it only checks
 * and counts. Returns the number of tokens the text needs (all of them,
 * or those within p->keep levels), or a negative enum json_err. */
int json_parse(struct json_parser *p, const char *js, size_t len,
               struct json_tok *tok, unsigned ntok);

/* The value of key in the object tok[obj], as a token index, or -1. */
int json_get(const char *js, const struct json_tok *tok, int obj,
             const char *key);
/* Whether the string token t equals s once unescaped. */
int json_eq(const char *js, const struct json_tok *t, const char *s);
/* Unescape the string token t into out as UTF-8 (lone surrogates become
 * U+FFFD). Returns its length, or -1 if it needs more than outsize bytes.
 * With out NULL it only measures. */
long json_unescape(const char *js, const struct json_tok *t, char *out,
                   size_t outsize);
/* The length of the UTF-8 sequence at s (at most n bytes, n > 0): 0 if
 * it is not well formed (overlong, a surrogate, past U+10FFFF), -1 if it
 * is cut short by the end. */
int json_utf8len(const char *s, size_t n);
/* The number token t as an integer; -1 if it is not one or overflows. */
int json_int(const char *js, const struct json_tok *t, long long *v);

/* Stream framing: finding where each value ends in a byte stream, before
 * it is parsed, so that a reader never waits for bytes that will not come.
 * Between values, whitespace is skipped and a 0xFF byte (which no JSON
 * text contains) is reported as a sentinel: the guest agent's delimiter. */
struct json_scan {
	size_t pos;        /* next byte to look at */
	size_t start;      /* first byte of the value being framed */
	unsigned depth;
	unsigned char state;
};

enum json_scan_ret {
	JSON_SCAN_MORE = 0,     /* no complete value yet: read more bytes */
	JSON_SCAN_VALUE = 1,    /* a value spans js[start..pos) */
	JSON_SCAN_SENTINEL = 2, /* a 0xFF byte ended at pos */
	JSON_SCAN_GARBAGE = -1, /* the byte at pos cannot start a value */
	JSON_SCAN_DEPTH = -4    /* nested deeper than JSON_MAXDEPTH */
};

void json_scan_init(struct json_scan *s, size_t pos);
/* Whether the scanner is between values, so that what it passed can go. */
#define json_scan_between(s) ((s)->state == 0)
/* Continue framing js[0..len); len may grow between calls. Objects,
 * arrays and strings are framed; other values are refused as garbage,
 * since none of the protocols spoken here sends them at the top level. */
int json_scan(struct json_scan *s, const char *js, size_t len);

#endif
