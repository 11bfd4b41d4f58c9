/* SPDX-License-Identifier: MIT */
/* The session the built-in commands share, calls to the agent, requests
 * built by key, replies parsed whole and checked for their shape, and
 * what an agent lacks. */
#include "qga.h"

/* The session the built-in commands share, opened on first use. */
struct conn sess;

/* Opens the session to this process's target. A command has taken its
 * fan-out step before: the parent of several targets has none. */
void
need_session(void)
{
	int s;

	assert(many.fanned || many.tag);
	if (!sess.up && (s = session_open(&sess, target_addr(), opt.timeout))) {
		if (opt.addr_default && s == EX_IO)
			fail(s, "%s (the default address: give the agent's with -s ADDR "
			     "or QGA_SOCKET)", failure.msg);
		quit(s);
	}
}

/* The session is the socket fd, connected already (serve's /file hands
 * its child one end of a socket pair). */
void
session_adopt(int fd)
{
	conn_init(&sess, opt.timeout);
	copy(sess.name, sizeof sess.name, target_addr());
	sess.fd = fd;
	sess.sock = 1;
	sess.rcvto = sess.sndto = -1;
}

/* At exit, the memory and the descriptor go with the process, unless a
 * reply is still owed. */
void
session_end(void)
{
	if (sess.owed || sess.partial)
		conn_shut(&sess);
}

/* The agent's commands, as QEMU's schema names them: the version (its
 * "since") that has one older agents lack, or "Windows" for one only
 * Windows guests have; and the shape (see shape_at) of the reply that a
 * built-in command checks and shows as text. Which built-ins send each is
 * in their rows of cmds[] (uses). */
const struct agent_cmd agent_cmds[] = {
	{"guest-exec", NULL, SHAPE_EXEC},
	{"guest-exec-status", NULL, SHAPE_STATUS},
	{"guest-file-close", NULL, NULL},
	{"guest-file-flush", NULL, NULL},
	{"guest-file-open", NULL, NULL},
	{"guest-file-read", NULL, NULL},
	{"guest-file-seek", NULL, NULL},
	{"guest-file-write", NULL, NULL},
	{"guest-fsfreeze-freeze", NULL, NULL},
	{"guest-fsfreeze-freeze-list", NULL, NULL},
	{"guest-fsfreeze-status", NULL, "s"},
	{"guest-fsfreeze-thaw", NULL, NULL},
	{"guest-fstrim", NULL, "{paths:[{path:s,error:s,trimmed:i}]}"},
	{"guest-get-cpustats", "7.1", "[{type:s,cpu:i,user:i,nice:i,system:i,idle:i,iowait:i,"
	 "irq:i,softirq:i,steal:i,guest:i,guestnice:i}]"},
	{"guest-get-devices", "Windows", NULL},
	{"guest-get-disks", NULL, "[{name:s,partition:b,dependencies:[s],alias:s,"
	 "address:{bus-type:s,serial:s}}]"},
	{"guest-get-diskstats", "7.1", "[{name:s,major:i,minor:i,stats:{read-sectors:i,"
	 "read-ios:i,write-sectors:i,write-ios:i,total-ticks:i}}]"},
	{"guest-get-fsinfo", NULL, "[{name:s,mountpoint:s,type:s,used-bytes:i,total-bytes:i,"
	 "total-bytes-privileged:i,disk:[{dev:s}]}]"},
	{"guest-get-host-name", NULL, "{host-name:s}"},
	{"guest-get-load", "10.0", "{load1m:n,load5m:n,load15m:n}"},
	{"guest-get-memory-block-info", NULL, NULL},
	{"guest-get-memory-blocks", NULL, NULL},
	{"guest-get-osinfo", NULL, SHAPE_OSINFO},
	{"guest-get-time", NULL, "i"},
	{"guest-get-timezone", NULL, "{zone:s,offset:i}"},
	{"guest-get-users", NULL, "[{user:s,domain:s,login-time:n}]"},
	{"guest-get-vcpus", NULL, "[{logical-id:i,online:b,can-offline:b}]"},
	{"guest-info", NULL, SHAPE_INFO},
	{"guest-network-get-interfaces", NULL, "[{name:s,hardware-address:s,"
	 "ip-addresses:[{ip-address:s,ip-address-type:s,prefix:i}],statistics:{rx-bytes:i,"
	 "rx-packets:i,rx-errs:i,rx-dropped:i,tx-bytes:i,tx-packets:i,tx-errs:i,tx-dropped:i}}]"},
	{"guest-network-get-route", "9.1", "[{iface:s,destination:s,gateway:s,mask:s,"
	 "desprefixlen:s,nexthop:s,metric:i,flags:n,version:i}]"},
	{"guest-ping", NULL, NULL},
	{"guest-set-memory-blocks", NULL, NULL},
	{"guest-set-time", NULL, NULL},
	{"guest-set-user-password", NULL, NULL},
	{"guest-set-vcpus", NULL, NULL},
	{"guest-shutdown", NULL, NULL},
	{"guest-ssh-add-authorized-keys", NULL, NULL},
	{"guest-ssh-get-authorized-keys", NULL, "{keys:[s]}"},
	{"guest-ssh-remove-authorized-keys", NULL, NULL},
	{"guest-suspend-disk", NULL, NULL},
	{"guest-suspend-hybrid", NULL, NULL},
	{"guest-suspend-ram", NULL, NULL},
	{"guest-sync", NULL, NULL},
	{"guest-sync-delimited", NULL, NULL},
};
const size_t nagent_cmds = sizeof agent_cmds / sizeof *agent_cmds;

/* The row of the agent's command name, or NULL. */
const struct agent_cmd *
agent_cmd(const char *name)
{
	size_t i;

	for (i = 0; i < nagent_cmds; i++)
		if (!strcmp(agent_cmds[i].name, name))
			return &agent_cmds[i];
	return NULL;
}

/* The shape of the reply to the agent's command name, which a built-in
 * checks before it shows it. */
const char *
shape_of(const char *name)
{
	const struct agent_cmd *a = agent_cmd(name);

	return a ? a->shape : NULL;
}

/* Why an agent may lack name, or NULL when qga knows no reason. */
const char *
missing_why(const char *name)
{
	static char why[64];
	const struct agent_cmd *a = agent_cmd(name);

	if (!a || !a->since)
		return NULL;
	if (!strcmp(a->since, "Windows"))
		return "Windows guests only";
	snprintf(why, sizeof why, "qemu-ga %s on", a->since);
	return why;
}

int
disabled(const char *name)
{
	return fail(EX_AGENT, "%s is disabled in the guest agent (by its "
	            "configuration, or while frozen)", name);
}

/* Records an error reply, saying plainly when the command is disabled or
 * is one an older agent lacks. */
int
agent_error(const struct reply *r, const char *name)
{
	char desc[400];
	const char *why;

	member_str(r->js, &r->tok[r->err], "desc", desc, sizeof desc);
	why = missing_why(name);
	/* Agents before 10.0 list what the guest's system lacks as disabled. */
	if (why && (strstr(desc, "has not been found") ||
	            (*why == 'W' && strstr(desc, "has been disabled"))))
		return fail(EX_AGENT, "%s is not in this guest agent (%s)", name, why);
	if (strstr(desc, "has been disabled"))
		return disabled(name);
	return reply_error(r, name);
}

/* Sends a request and returns its reply, which may be an error, waiting
 * timeout ms for it. */
void
call_any(const struct buf *req, const char *name, struct reply *r,
         long long timeout)
{
	int s;

	need_session();
	if (sess.qmp && !strncmp(name, "guest-", 6))
		die(EX_USAGE, "%s is a QMP monitor, not a guest agent: %s is the "
		    "guest agent's", sess.name, name);
	if ((s = transact(&sess, req->p, req->len, r, name, timeout)))
		quit(s);
}

/* Sends a request and returns its successful reply; an error ends qga. */
void
call_for(const struct buf *req, const char *name, struct reply *r,
         long long timeout)
{
	call_any(req, name, r, timeout);
	if (r->err >= 0)
		quit(agent_error(r, name));
}

void
call(const struct buf *req, const char *name, struct reply *r)
{
	call_for(req, name, r, opt.timeout);
}

/* The reply timeout of a command whose default is dflt: -t overrides. */
long long
timeout_or(long long dflt)
{
	return opt.timeout_set ? opt.timeout : dflt;
}

/* The most tokens a value of len bytes may take: a few thousand, and one
 * for each 16 bytes past that, so that a reply of small numbers, two
 * bytes a token, cannot cost sixteen times its size in memory. */
#define DOC_TOKENS(len) (4096 + (len) / 16)

/* Where the last shape mismatch was, as a path from the value, and the
 * shape that was wanted there. */
static char shape_where[128], shape_want;

/* The end of the shape at s. */
static const char *
shape_skip(const char *s)
{
	int depth = 0;

	do
		depth += (*s == '[' || *s == '{') - (*s == ']' || *s == '}');
	while (*s++ && depth);
	return s;
}

/* Checks the value at token i of d against the shape s: 0, or -1 with
 * shape_where saying where it differs and shape_want what it should be.
 * Shapes: s a string, i an integer in 64 bits, n a number, b true or
 * false, * anything, [X] an array of X, {KEY:X,KEY:X} an object whose
 * members of those names, where present, have those shapes (others are
 * let be; {} is any object). */
static int
shape_at(const struct doc *d, int i, const char *s)
{
	const struct json_tok *t = &d->t[i];
	size_t at = strlen(shape_where), k;
	char key[40];
	long long v;
	int e, ok;

	switch (*s) {
	case 's': ok = t->type == JSON_STRING; break;
	case 'n': ok = t->type == JSON_NUMBER; break;
	case 'i': ok = !json_int(d->js, t, &v); break;
	case 'b': ok = t->type == JSON_TRUE || t->type == JSON_FALSE; break;
	case '[': ok = t->type == JSON_ARRAY; break;
	case '{': ok = t->type == JSON_OBJECT; break;
	default: ok = 1;
	}
	if (!ok) {
		shape_want = *s;
		return -1;
	}
	if (*s == '[')
		for (k = 0, e = i + 1; k < t->size; k++, e = (int)d->t[e].next) {
			snprintf(shape_where + at, sizeof shape_where - at, "[%zu]", k);
			if (shape_at(d, e, s + 1) < 0)
				return -1;
		}
	else if (*s == '{')
		for (s++; *s != '}'; s = shape_skip(s) + (*shape_skip(s) == ',')) {
			k = strcspn(s, ":");
			snprintf(key, sizeof key, "%.*s", (int)k, s);
			s += k + 1;
			snprintf(shape_where + at, sizeof shape_where - at, ".%s", key);
			if ((e = json_get(d->js, d->t, i, key)) >= 0 && shape_at(d, e, s) < 0)
				return -1;
		}
	shape_where[at] = 0;
	return 0;
}

/* Parses a return value, js[0..len), whole into d, and checks that it has
 * the shape (see shape_at): 0, or the failure's status, recorded. */
int
doc_parse(struct doc *d, const char *js, size_t len, const char *shape, const char *name)
{
	struct json_parser p;
	int n;

	/* A reply is used only in a shape qga knows. */
	if (!shape)
		return fail_at(EX_PROTO, name, "qga knows no shape for its reply");
	/* One pass for the usual small value; a large one is counted first. */
	d->js = js;
	d->t = xrealloc(NULL, 64 * sizeof *d->t);
	json_init(&p);
	if ((n = json_parse(&p, js, len, d->t, 64)) == JSON_ENOMEM) {
		json_init(&p);
		n = json_parse(&p, js, len, NULL, 0);
		if (n > 0 && (size_t)n > DOC_TOKENS(len))
			return fail_at(EX_PROTO, name, "a reply of %d values in %zu bytes, more "
			            "than qga takes", n, len);
		if (n > 0) {
			d->t = xrealloc(d->t, (size_t)n * sizeof *d->t);
			json_init(&p);
			n = json_parse(&p, js, len, d->t, (unsigned)n);
		}
	}
	if (n <= 0)
		return fail_at(EX_PROTO, name, "invalid JSON in reply");
	shape_where[0] = 0;
	if (shape_at(d, 0, shape) < 0)
		return fail_at(EX_PROTO, name, "unexpected reply: return%s is not %s",
		            shape_where, shape_want == 's' ? "a string" :
		            shape_want == 'i' ? "an integer" : shape_want == 'n' ? "a number" :
		            shape_want == 'b' ? "true or false" : shape_want == '[' ?
		            "an array" : "an object");
	return 0;
}

/* Parses the return value of the reply r to the command name, which must
 * have the shape: 0, or the failure's status, recorded. */
int
doc_return(struct doc *d, const struct reply *r, const char *name, const char *shape)
{
	const struct json_tok *v = &r->tok[r->ret];
	size_t q = v->type == JSON_STRING;

	return doc_parse(d, r->js + v->start - q, v->end - v->start + 2 * q, shape, name);
}

/* As doc_return(), but a reply of another shape ends qga. */
void
doc_reply(struct doc *d, const struct reply *r, const char *name, const char *shape)
{
	int s;

	if ((s = doc_return(d, r, name, shape)))
		quit(s);
}

int
dget(const struct doc *d, int obj, const char *key)
{
	return obj < 0 ? -1 : json_get(d->js, d->t, obj, key);
}

/* The string at token i, unescaped into a new buffer; "" if it is not one. */
char *
dstr(const struct doc *d, int i)
{
	long n = i >= 0 && d->t[i].type == JSON_STRING ?
	         json_unescape(d->js, &d->t[i], NULL, 0) : 0;
	char *s = xrealloc(NULL, (size_t)n + 1);

	if (n)
		json_unescape(d->js, &d->t[i], s, (size_t)n);
	s[n] = 0;
	return s;
}

/* The text of token i: a string unescaped, a number or literal as it came,
 * "-" for a member the agent left out. */
char *
dtext(const struct doc *d, int i)
{
	size_t n;
	char *s;

	if (i < 0 || d->t[i].type == JSON_STRING)
		return i < 0 ? xstrdup("-") : dstr(d, i);
	n = d->t[i].end - d->t[i].start;
	s = xrealloc(NULL, n + 1);
	memcpy(s, d->js + d->t[i].start, n);
	s[n] = 0;
	return s;
}

long long
dint(const struct doc *d, int i, long long dflt)
{
	long long v;

	return i >= 0 && !json_int(d->js, &d->t[i], &v) ? v : dflt;
}

int
dtrue(const struct doc *d, int i)
{
	return i >= 0 && d->t[i].type == JSON_TRUE;
}

/* The commands of guest-info's reply r (query-commands' for qmp) as
 * ",a,!b,...,", a disabled one marked with "!", into names: 0, or the
 * failure's status for a reply of another shape (names then lists none). */
int
command_list(const struct reply *r, int qmp, struct buf *names)
{
	struct doc d;
	char *n;
	int l, i, k, s = 0;

	buf_add(names, ",", 1);
	if (r->ret >= 0 && !(s = doc_return(&d, r, qmp ? "query-commands" : "guest-info",
	                                    qmp ? "[{name:s}]" : SHAPE_INFO))) {
		l = qmp ? 0 : dget(&d, 0, "supported_commands");
		each(&d, l, i, k) {
			n = dstr(&d, dget(&d, i, "name"));
			if (!qmp && !dtrue(&d, dget(&d, i, "enabled")))
				buf_add(names, "!", 1);
			buf_str(names, n);
			buf_add(names, ",", 1);
			free(n);
		}
		free(d.t);
	}
	buf_add(names, "", 1);
	return s;
}

/* The peer's commands, as command_list() has them, asked once in a
 * process. */
int
peer_commands(struct conn *c, const char **list)
{
	static struct buf names;
	const char *q = c->qmp ? "query-commands" : "guest-info";
	struct buf req = {0};
	struct reply r;
	int s;

	if (!names.len) {
		req_begin(&req, q);
		req_end(&req, -1);
		s = transact(c, req.p, req.len, &r, q, opt.timeout);
		free(req.p);
		if (s)
			return s;
		if ((s = command_list(&r, c->qmp, &names)))
			quit(s);
	}
	*list = names.p;
	return 0;
}

/* Waits up to total ms for a ping's answer: 0, or a failure's status. */
int
wait_agent(long long total)
{
	struct timespec nap = {0, 100000000};
	long long deadline, left, try;
	struct buf ping = {0};
	struct reply r;
	int s;

	req_begin(&ping, "guest-ping");
	req_end(&ping, -1);
	deadline = deadline_in(total);
	for (;;) {
		left = deadline < 0 ? 1000 : deadline - now_ms();
		try = left < 1000 ? (left > 0 ? left : 1) : 1000;
		s = session_open(&sess, target_addr(), try);
		if (!s)
			s = transact(&sess, ping.p, ping.len, &r, "guest-ping", try);
		conn_close(&sess);
		if (!s || s == EX_USAGE)
			break;
		if (deadline >= 0 && now_ms() >= deadline) {
			s = fail_at(EX_TIMEOUT, target_addr(), "no agent answered within %s",
			            seconds(total));
			break;
		}
		if (s != EX_TIMEOUT)
			nanosleep(&nap, NULL);
	}
	free(ping.p);
	return s;
}

/* Whether the agent lists name among its enabled commands. */
int
enabled(const char *name)
{
	const char *list;
	char key[160];
	int s;

	need_session();
	if ((s = peer_commands(&sess, &list)))
		quit(s);
	snprintf(key, sizeof key, ",%s,", name);
	return strstr(list, key) != NULL;
}
