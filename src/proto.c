/* SPDX-License-Identifier: MIT */
/* The protocol: replies parsed and checked, the resync with 0xFF and
 * guest-sync-delimited, QMP's greeting and negotiation, one request and
 * its reply, and requests built from the command line. */
#include "qga.h"

/* A value's text as it stands in js, a string's quotes included. */
const char *
tok_text(const char *js, const struct json_tok *t, size_t *n)
{
	size_t q = t->type == JSON_STRING;

	*n = t->end - t->start + 2 * q;
	return js + t->start - q;
}

int
reply_text(struct reply *r, const char *js, size_t len, const char *who)
{
	struct json_parser p;
	int n;

	r->js = js;
	r->len = len;
	/* Three levels hold a small return object's members, so that a file
	 * read's megabytes of base64 need no second parse; a larger reply
	 * keeps two, the object, its members and their values. */
	json_init(&p);
	p.keep = 3;
	if ((n = json_parse(&p, r->js, r->len, r->tok, 64)) == JSON_ENOMEM) {
		json_init(&p);
		p.keep = 2;
		n = json_parse(&p, r->js, r->len, r->tok, 64);
	}
	if (n == JSON_ENOMEM)
		return fail_at(EX_PROTO, who, "reply has too many members");
	if (n < 0)
		return fail_at(EX_PROTO, who, "invalid JSON in reply at offset %zu: "
		            "%s", p.pos, excerpt(r->js, r->len));
	if (r->tok[0].type != JSON_OBJECT)
		return fail_at(EX_PROTO, who, "reply is not an object: %s", excerpt(r->js, r->len));
	r->ret = json_get(r->js, r->tok, 0, "return");
	r->err = json_get(r->js, r->tok, 0, "error");
	r->id = json_get(r->js, r->tok, 0, "id");
	return 0;
}

/* Parses c's bytes [start..end) as a reply object; returns 0, or an exit
 * status if it is not JSON or not an object. */
static int
reply_parse(struct conn *c, struct reply *r, size_t start, size_t end)
{
	return reply_text(r, c->in.p + start, end - start, c->name);
}

/* The unescaped string member key of the object token o, or "?". */
const char *
member_str(const char *js, const struct json_tok *o, const char *key,
           char *out, size_t size)
{
	struct json_parser p;
	struct json_tok t[32];
	long n;
	int v;

	json_init(&p);
	p.keep = 2;
	if (json_parse(&p, js + o->start, o->end - o->start, t, 32) < 0 ||
	    (v = json_get(js + o->start, t, 0, key)) < 0 ||
	    t[v].type != JSON_STRING ||
	    (n = json_unescape(js + o->start, &t[v], out, size - 1)) < 0)
		return "?";
	out[n] = 0;
	return out;
}

/* Records the agent's error reply as the failure: "NAME: CLASS: desc". */
int
reply_error(const struct reply *r, const char *name)
{
	char cls[64], desc[400];
	const struct json_tok *e = &r->tok[r->err];

	member_str(r->js, e, "class", cls, sizeof cls);
	/* qga serve's own: the agent behind it is out of reach, or late. */
	return fail(!strcmp(cls, "AgentUnavailable") ? EX_IO : !strcmp(cls, "AgentTimeout") ?
	            EX_TIMEOUT : EX_AGENT, "%s: %s: %s", name, cls,
	            member_str(r->js, e, "desc", desc, sizeof desc));
}

/* Resynchronisation and QMP */

/* An id for the sync that no other client's sync has: the clock's
 * nanoseconds mixed with where this process's stack lies, which address
 * space randomisation moves (the vDSO's clock costs no system call). */
unsigned
random_id(void)
{
	struct timespec ts;
	uint64_t v;

	clock_gettime(CLOCK_REALTIME, &ts);
	v = ((uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec) ^
	    (uint64_t)(uintptr_t)&ts;
	v *= 0x9e3779b97f4a7c15u;
	return ((unsigned)(v >> 33) & 0x7fffffff) | 1;
}

/* Reads the next reply that is not a QMP event or greeting. */
int
read_reply(struct conn *c, struct reply *r, long long deadline,
           const char *what)
{
	int s, got;

	for (;;) {
		if ((s = conn_next(c, deadline, what, &got)))
			return s;
		if (got == JSON_SCAN_GARBAGE)
			return fail_at(EX_PROTO, c->name, "garbage instead of %s: %s", what,
			               excerpt(c->in.p + c->sc.pos, c->in.len - c->sc.pos));
		if (got == JSON_SCAN_SENTINEL)
			return fail_at(EX_PROTO, c->name, "unexpected 0xFF delimiter "
			            "instead of %s", what);
		if ((s = reply_parse(c, r, c->sc.start, c->sc.pos)))
			return s;
		conn_consume(c);
		if (r->ret >= 0 || r->err >= 0) {
			c->owed -= c->owed > 0;
			return 0;
		}
		if (json_get(r->js, r->tok, 0, "event") < 0 &&
		    json_get(r->js, r->tok, 0, "QMP") < 0)
			return fail_at(EX_PROTO, c->name, "reply without return or error: "
			            "%s", excerpt(r->js, r->len));
	}
}

static int
qmp_negotiate(struct conn *c, long long deadline)
{
	struct buf req = {0};
	struct reply r;
	int s;

	req_begin(&req, "qmp_capabilities");
	req_end(&req, -1);
	s = conn_write(c, req.p, req.len, deadline);
	free(req.p);
	if (s || (s = read_reply(c, &r, deadline, "reply to qmp_capabilities")))
		return s;
	if (r.err >= 0) {
		reply_error(&r, "qmp_capabilities");
		return fail_at(EX_PROTO, c->name, "QMP negotiation failed: %s",
		            failure.msg);
	}
	c->qmp = 1;
	return 0;
}

/* Reads the QMP greeting that --qmp promises. */
static int
qmp_greeting(struct conn *c, long long deadline)
{
	struct reply r;
	int s, got;

	if ((s = conn_next(c, deadline, "QMP greeting", &got)))
		return s;
	if (got != JSON_SCAN_VALUE ||
	    reply_parse(c, &r, c->sc.start, c->sc.pos) ||
	    json_get(r.js, r.tok, 0, "QMP") < 0)
		return fail_at(EX_PROTO, c->name, "no QMP greeting: %s",
		            excerpt(c->in.p + c->sc.start, c->sc.pos - c->sc.start));
	conn_consume(c);
	return 0;
}

/* Whether the value just framed is a QMP greeting. */
static int
is_greeting(struct conn *c)
{
	struct reply r;

	return c->fresh && c->in.p[c->sc.start] == '{' &&
	       !reply_parse(c, &r, c->sc.start, c->sc.pos) &&
	       json_get(r.js, r.tok, 0, "QMP") >= 0;
}

/* For an agent that refuses guest-sync-delimited: guest-sync with a fresh
 * id, everything before the reply returning it skipped. When that is
 * refused too, no sync at all, which is said once. */
static int
sync_plain(struct conn *c, long long deadline)
{
	static int said;
	unsigned id = random_id();
	struct buf req = {0};
	struct reply r;
	long long v;
	int s;

	req_sync(&req, 0, id);
	s = conn_write(c, req.p, req.len, deadline);
	free(req.p);
	if (s)
		return s;
	for (;;) {
		if ((s = read_reply(c, &r, deadline, "reply to guest-sync")))
			return s;
		if (r.ret >= 0 && !json_int(r.js, &r.tok[r.ret], &v) && v == id)
			break;
		if (r.err >= 0 && r.id >= 0 && !json_int(r.js, &r.tok[r.id], &v) &&
		    v == id) {
			if (!said++)
				warn("%s: the agent refuses guest-sync-delimited and "
				     "guest-sync: going on without a resync", c->name);
			break;
		}
	}
	c->dirty = 0;
	c->owed = 0;
	return 0;
}

/* Silence from the start, at name, for timeout ms: says what it usually
 * means, and returns EX_TIMEOUT. */
int
silent_agent(const char *name, long long timeout, int sock)
{
	return fail(EX_TIMEOUT, "no answer from a guest agent at %s within %s: is "
	            "qemu-guest-agent running in the guest?%s", name, seconds(timeout),
	            sock ? " another client (libvirtd, qga serve) may hold this socket" : "");
}

/* Brings the channel to a known state. For the guest agent: 0xFF, then
 * guest-sync-delimited with a fresh id; everything up to a 0xFF followed
 * by the reply carrying that id is somebody else's. A QMP monitor shows
 * itself by greeting first: then the errors it gives the sync are read
 * (up to the one echoing the id) and capabilities are negotiated. */
static int
resync(struct conn *c)
{
	long long deadline = conn_deadline(c, c->timeout);
	unsigned id = random_id();
	struct buf req = {0};
	int s, got, expect = 0;
	long long v;
	struct reply r;

	if (c->qmp)
		return 0;
	req_sync(&req, 1, id);
	s = conn_write(c, req.p, req.len, deadline);
	free(req.p);
	if (s)
		return s;
	for (;;) {
		if ((s = conn_next(c, deadline, "reply to guest-sync-delimited",
		                   &got))) {
			if (s == EX_TIMEOUT && c->fresh && !interrupted)
				return silent_agent(c->name, c->tmo, c->sock);
			return s;
		}
		if (got == JSON_SCAN_GARBAGE) {
			c->sc.pos++;
			conn_consume(c);
			expect = 0;
			continue;
		}
		if (got == JSON_SCAN_SENTINEL) {
			conn_consume(c);
			expect = 1;
			continue;
		}
		if (is_greeting(c)) {
			conn_consume(c);
			break;
		}
		if (!reply_parse(c, &r, c->sc.start, c->sc.pos)) {
			if (expect && r.ret >= 0 && !json_int(r.js, &r.tok[r.ret], &v) &&
			    v == id) {
				conn_consume(c);
				c->dirty = 0;
				c->owed = 0;
				return 0;
			}
			/* Our request's own id on an error: the agent refuses
			 * guest-sync-delimited (its allow or block list). */
			if (r.err >= 0 && r.id >= 0 && !json_int(r.js, &r.tok[r.id], &v) &&
			    v == id) {
				conn_consume(c);
				return sync_plain(c, deadline);
			}
		}
		conn_consume(c);
		expect = 0;
	}
	do {
		if ((s = read_reply(c, &r, deadline, "QMP's reply to the sync")))
			return s;
	} while (r.id < 0 || json_int(r.js, &r.tok[r.id], &v) || v != id);
	c->owed = 0;
	return qmp_negotiate(c, deadline);
}

/* Opens addr and readies the session as the options say, each step
 * bounded by timeout. */
int
session_open(struct conn *c, const char *addr, long long timeout)
{
	long long deadline;
	int s;

	if ((s = conn_open(c, addr, timeout)))
		return s;
	if (opt.qmp) {
		deadline = conn_deadline(c, timeout);
		if ((s = qmp_greeting(c, deadline)))
			return s;
		return qmp_negotiate(c, deadline);
	}
	return opt.nosync ? 0 : resync(c);
}

/* Sends one request and reads its reply into r, within timeout ms. */
int
transact(struct conn *c, const char *req, size_t len, struct reply *r,
         const char *name, long long timeout)
{
	long long deadline;
	char what[128];
	int s;

	if (c->dirty && (s = resync(c)))
		return s;
	deadline = conn_deadline(c, timeout);
	/* Per request in a batch, so not through printf. */
	memcpy(what, "reply to ", 9);
	copy(what + 9, sizeof what - 9, name);
	if ((s = conn_write(c, req, len, deadline)))
		return s;
	return read_reply(c, r, deadline, what);
}

/* Requests are built one way: req_begin(), a req_* call for each
 * argument, req_end(). Each writes JSON valid as it stands: names and
 * strings escaped, the arguments object opened by its first member and
 * left out when there is none. */
void
req_begin(struct buf *b, const char *name)
{
	b->len = 0;
	buf_str(b, "{\"execute\":");
	buf_jstr(b, name, strlen(name));
	buf_str(b, ",\"arguments\":{");
}

void
req_key(struct buf *b, const char *key)
{
	if (b->p[b->len - 1] != '{')
		buf_add(b, ",", 1);
	buf_jstr(b, key, strlen(key));
	buf_add(b, ":", 1);
}

void
req_str(struct buf *b, const char *key, const char *val)
{
	req_key(b, key);
	buf_jstr(b, val, strlen(val));
}

void
req_int(struct buf *b, const char *key, long long v)
{
	char n[24];

	snprintf(n, sizeof n, "%lld", v);
	req_key(b, key);
	buf_str(b, n);
}

void
req_bool(struct buf *b, const char *key, int v)
{
	req_key(b, key);
	buf_str(b, v ? "true" : "false");
}

/* A value already JSON: a caller's, or one from a peer that parsed. */
void
req_json(struct buf *b, const char *key, const char *js, size_t n)
{
	req_key(b, key);
	buf_add(b, js, n);
}

/* n bytes as a base64 string. */
void
req_b64(struct buf *b, const char *key, const void *p, size_t n)
{
	req_key(b, key);
	buf_add(b, "\"", 1);
	b64_encode(b, p, n);
	buf_add(b, "\"", 1);
}

/* The strings v[0] to v[n - 1] as an array. */
void
req_strv(struct buf *b, const char *key, const char *const *v, int n)
{
	int i;

	req_key(b, key);
	buf_add(b, "[", 1);
	for (i = 0; i < n; i++) {
		buf_add(b, ",", i > 0);
		buf_jstr(b, v[i], strlen(v[i]));
	}
	buf_add(b, "]", 1);
}

/* An array of items, JSON values each after a comma. */
void
req_list(struct buf *b, const char *key, const struct buf *items)
{
	req_key(b, key);
	buf_add(b, "[", 1);
	if (items->len)
		buf_add(b, items->p + 1, items->len - 1);
	buf_add(b, "]", 1);
}

/* The members of obj, an object's JSON text that parsed, as arguments. */
void
req_members(struct buf *b, const char *obj, size_t n)
{
	size_t i = 1 + strspn(obj + 1, " \t\r\n");

	if (obj[i] == '}')
		return;
	buf_add(b, ",", b->p[b->len - 1] != '{');
	buf_add(b, obj + i, n - i - 1);
}

/* Ends the request, with the id a reply is to carry when id >= 0. */
void
req_end(struct buf *b, long long id)
{
	char n[32];

	if (b->p[b->len - 1] == '{')
		b->len -= sizeof ",\"arguments\":{" - 1;
	else
		buf_add(b, "}", 1);
	if (id >= 0) {
		snprintf(n, sizeof n, ",\"id\":%lld", id);
		buf_str(b, n);
	}
	buf_add(b, "}", 1);
}

/* guest-sync-delimited (after the 0xFF that tells the agent to drop what
 * it holds) or guest-sync, with id as its argument and its own. */
void
req_sync(struct buf *b, int delimited, long long id)
{
	req_begin(b, delimited ? "guest-sync-delimited" : "guest-sync");
	req_int(b, "id", id);
	req_end(b, id);
	if (delimited) {
		buf_add(b, "", 1);
		memmove(b->p + 1, b->p, b->len - 1);
		b->p[0] = (char)0xff;
	}
}

int
is_json(const char *s, size_t n)
{
	struct json_parser p;

	json_init(&p);
	return json_parse(&p, s, n, NULL, 0) > 0;
}

/* Builds a request from a command name and key=value words. A value that
 * parses as JSON is sent as that JSON, anything else as a string. */
int
build_request(struct buf *b, const char *name, char **words, int n)
{
	char key[256];
	const char *eq;
	int i;

	req_begin(b, name);
	for (i = 0; i < n; i++) {
		if (!(eq = strchr(words[i], '=')) || eq == words[i])
			return fail_at(EX_USAGE, name, "expected key=value, got '%s'", words[i]);
		if ((size_t)(eq - words[i]) >= sizeof key)
			return fail_at(EX_USAGE, name, "key too long: %.40s...", words[i]);
		memcpy(key, words[i], (size_t)(eq - words[i]));
		key[eq - words[i]] = 0;
		eq++;
		if (is_json(eq, strlen(eq)))
			req_json(b, key, eq, strlen(eq));
		else
			req_str(b, key, eq);
	}
	req_end(b, -1);
	if (!is_json(b->p, b->len))
		return fail_at(EX_USAGE, name, "arguments are not valid UTF-8");
	return 0;
}

/* Checks a request given as JSON and finds its command's name. */
int
check_request(const char *s, size_t n, char *name, size_t size)
{
	struct json_parser p;
	struct json_tok t[64];
	int r, v;
	long k;

	json_init(&p);
	p.keep = 2;
	r = json_parse(&p, s, n, t, 64);
	if (r < 0 && r != JSON_ENOMEM)
		return fail(EX_USAGE, "invalid JSON at offset %zu: %s", p.pos,
		            excerpt(s, n));
	if (t[0].type != JSON_OBJECT)
		return fail(EX_USAGE, "a request must be a JSON object: %s",
		            excerpt(s, n));
	strcpy(name, "request");
	if (r > 0 && ((v = json_get(s, t, 0, "execute")) >= 0 ||
	              (v = json_get(s, t, 0, "exec-oob")) >= 0) &&
	    t[v].type == JSON_STRING &&
	    (k = json_unescape(s, &t[v], name, size - 1)) >= 0)
		name[k] = 0;
	return 0;
}
