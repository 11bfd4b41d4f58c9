/* SPDX-License-Identifier: MIT */
/* serve: one agent shared by many clients: listeners, clients, the
 * queue of their requests, --allow and --deny, and the loop. */
#include "qga.h"

/* The agent serves one client at a time, keeps its parser state between
 * clients and exits when one leaves a reply unread. serve holds the one
 * connection to it, a descriptor of its single-threaded poll loop like
 * the clients' own, and nothing in the loop waits for the agent.
 *
 * Every client request becomes an item in one queue, in the order they
 * came. An agent request is rewritten with an id of the proxy's own and
 * sent at once, behind the others (the agent answers them in turn); its
 * reply is found by that id and goes back with the client's own id, or
 * none, as the client sent it. A reply whose id matches nothing (a late
 * one, after its request's deadline gave the client an error) or that
 * has none (the agent's answer to something it could not read as a
 * request; serve sends only requests it has parsed) is dropped, so that
 * no reply is ever given to the wrong request. guest-shutdown and
 * guest-suspend-* reply only when they fail: each is followed by a
 * guest-ping of its own id, whose reply first means that it was taken.
 * A client gets its replies in the order of its requests; an item waits
 * only for those of its own client before it. */

const char *const outcomes[NOUT] = {
	"ok", "error", "denied", "bad", "unavailable", "timeout"};
/* Latency buckets in ms, as Prometheus' le labels say them in seconds. */
const int buckets[6] = {1, 10, 100, 1000, 10000, 0};
#define STATS_MAX 128

/* A client may have this many requests queued before it is read again. */
#define CLIENT_PENDING_MAX 64

struct serve sv;

static volatile sig_atomic_t stopping;

static void
on_stop(int sig)
{
	stopping = sig;
}

PRINTF(1, 2) void
note(const char *fmt, ...)
{
	char msg[MSG_MAX];
	va_list ap;

	if (sv.quiet)
		return;
	va_start(ap, fmt);
	vformat(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "qga %s: %s\n", cur->name, msg);
}

static void
add_name(char ***list, int *n, const char *name, size_t len)
{
	char *s = memcpy(xrealloc(NULL, len + 1), name, len);

	s[len] = 0;
	*list = xrealloc(*list, (size_t)(*n + 1) * sizeof **list);
	(*list)[(*n)++] = s;
}

/* Adds the comma-separated command names of --allow or --deny (opt) to
 * list. A built-in command's name stands for the agent's commands it
 * sends, so that --deny exec keeps guest-exec out; any other name must be
 * one the agent or QMP could have. */
static void
add_names(const char *opt_name, char *s, char ***list, int *n)
{
	const struct cmd *c;
	const char *u;
	char *p;
	size_t k;

	for (; *s; s = p) {
		p = s + strcspn(s, ",");
		if (*p)
			*p++ = 0;
		if (!*s)
			continue;
		if ((c = find_cmd(s))) {
			if (!(u = c->uses))
				die(EX_USAGE, "serve: %s %s: that command sends nothing to "
				    "the agent", opt_name, s);
			for (; *u; u += k + !!u[k]) {
				k = strcspn(u, ",");
				add_name(list, n, u, k);
			}
		} else if (strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-_") != strlen(s) ||
		           *s < 'a' || *s > 'z')
			die(EX_USAGE, "serve: %s '%s': neither a built-in command nor "
			    "the name of an agent or QMP command", opt_name, s);
		else
			add_name(list, n, s, strlen(s));
	}
}

static int
listed(char **list, int n, const char *name)
{
	while (n-- > 0)
		if (!strcmp(list[n], name))
			return 1;
	return 0;
}

int
denied(const char *name)
{
	return (sv.nallow && !listed(sv.allow, sv.nallow, name)) ||
	       listed(sv.deny, sv.ndeny, name);
}

/* Says which names of --allow and --deny the agent does not know, as
 * its guest-info reply r lists them, once, when it first comes up: a name
 * mistyped there protects nothing. */
void
check_names(const struct reply *r)
{
	struct buf names = {0};
	const char *list, *n;
	char on[160], off[160];
	int j;

	if (command_list(r, 0, &names))
		note("warning: the agent's guest-info is not as expected: %s", failure.msg);
	list = names.p;
	for (j = 0; j < sv.nallow + sv.ndeny; j++) {
		n = j < sv.nallow ? sv.allow[j] : sv.deny[j - sv.nallow];
		snprintf(on, sizeof on, ",%s,", n);
		snprintf(off, sizeof off, ",!%s,", n);
		if (!strstr(list, on) && !strstr(list, off))
			note("warning: %s %s: the agent has no such command",
			     j < sv.nallow ? "--allow" : "--deny", n);
	}
	free(names.p);
}

/* Marks in the agent's guest-info reply the commands the proxy refuses:
 * "enabled": false, and "denied": true beside it. -1 for a reply that is
 * not guest-info's, whose failure is recorded. */
int
mark_denied(struct buf *b, const struct reply *r)
{
	const struct json_tok *t = &r->tok[r->ret];
	struct doc d;
	size_t from = 0, at;
	int list, i, k, v;
	char *n;

	if (doc_parse(&d, r->js + t->start, t->end - t->start, SHAPE_INFO, "guest-info")) {
		free(d.t);
		return -1;
	}
	list = dget(&d, 0, "supported_commands");
	each(&d, list, i, k) {
		n = dstr(&d, dget(&d, i, "name"));
		if (denied(n) && (v = dget(&d, i, "enabled")) >= 0) {
			at = (size_t)(d.js - r->js) + d.t[v].start;
			buf_add(b, r->js + from, at - from);
			buf_str(b, "false, \"denied\": true");
			from = (size_t)(d.js - r->js) + d.t[v].end;
		}
		free(n);
	}
	buf_add(b, r->js + from, r->len - from);
	free(d.t);
	return 0;
}

/* Binds a unix socket at path, replacing only a stale socket there. It
 * is made under a umask that leaves it --mode: a chmod after bind would
 * leave it wider for a moment. */
static int
listen_unix(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	mode_t old;
	int fd, r = -1;

	if (strlen(path) >= sizeof sun.sun_path)
		die(EX_USAGE, "socket path too long: %s", path);
	strcpy(sun.sun_path, path);
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
		die(EX_USAGE, "listen on %s: it exists and is not a socket", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die(EX_IO, "socket:");
	/* A socket nobody answers on is stale; a live one is not ours. */
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0)
		die(EX_USAGE, "%s: another server listens there", path);
	if (errno == ECONNREFUSED)
		unlink(path);
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		old = umask(~sv.mode & 0777);
		r = bind(fd, (struct sockaddr *)&sun, sizeof sun);
		umask(old);
	}
	if (r < 0)
		die(EX_IO, "listen on %s:", path);
	return fd;
}

/* Starts listening on fd, which serves HTTP or plain QGA clients. */
static void
add_listener(int fd, const char *addr, int http)
{
	if (listen(fd, 64) < 0)
		die(EX_IO, "listen on %s:", addr);
	if (sv.nl == 16)
		die(EX_USAGE, "%s: at most 16 listening sockets", cur->name);
	sv.lfd[sv.nl] = fd;
	sv.lhttp[sv.nl++] = http;
}

/* Listens on every address of HOST:PORT, and says where: with port 0 the
 * system chooses the port. */
static void
listen_tcp(const char *addr, char *host, char *port, int http)
{
	struct addrinfo *res, *a;
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} u;
	socklen_t len;
	char h[INET6_ADDRSTRLEN];
	int fd, one = 1, s, v6;
	in_port_t chosen = 0;

	if ((s = resolve(addr, host, port, 1, &res)))
		quit(s);
	for (a = res; a; a = a->ai_next) {
		/* Off loopback, anyone on the network could run programs as root
		 * in the guest: only HTTP with a token may listen there. */
		v6 = a->ai_family == AF_INET6;
		if (!(v6 ? IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)(void *)a->ai_addr)->sin6_addr) :
		      ntohl(((struct sockaddr_in *)(void *)a->ai_addr)->sin_addr.s_addr) >> 24 == 127) &&
		    (!http || !*sv.token))
			die(EX_USAGE, "%s: %s is not a loopback address: %s", cur->name, addr, http ?
			    "HTTP there needs --token-file" : "QGA clients cannot authenticate, "
			    "use --http with --token-file, a unix socket or loopback");
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die(EX_IO, "socket for %s:", addr);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (a->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
		/* Port 0 is chosen for the first address; the others take it.
		 * Both kinds of address keep their port at the same place. */
		if (chosen)
			((struct sockaddr_in *)(void *)a->ai_addr)->sin_port = chosen;
		len = sizeof u;
		if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 ||
		    getsockname(fd, &u.sa, &len) < 0)
			die(EX_IO, "listen on %s:", addr);
		add_listener(fd, addr, http);
		v6 = u.sa.sa_family == AF_INET6;
		inet_ntop(u.sa.sa_family, v6 ? (void *)&u.in6.sin6_addr :
		          (void *)&u.in.sin_addr, h, sizeof h);
		/* The names a request's Host may give it. */
		sv.lport[sv.nl - 1] = ntohs(u.in.sin_port);
		snprintf(sv.laddr[sv.nl - 1], sizeof *sv.laddr, "%s%s%s", v6 ? "[" : "", h, v6 ? "]" : "");
		snprintf(sv.lname[sv.nl - 1], sizeof *sv.lname, "%s", host);
		note("listening on tcp:%s:%u%s", sv.laddr[sv.nl - 1],
		     ntohs(u.in.sin_port), http ? " (HTTP)" : "");
		chosen = u.in.sin_port;
	}
	freeaddrinfo(res);
}

/* The socket path of a listen address, unix:PATH or a bare path (one
 * with a slash, as -s takes it); NULL for any other. */
static const char *
unix_path(const char *addr)
{
	return !strncmp(addr, "unix:", 5) ? addr + 5 :
	       strchr(addr, '/') && !strchr(addr, ':') ? addr : NULL;
}

/* Listens on unix:PATH (or a path) or tcp:[HOST:]PORT. */
void
serve_listen(const char *addr, int http)
{
	char spec[300], loopback[] = "127.0.0.1", *host, *port;

	if (unix_path(addr)) {
		add_listener(listen_unix(unix_path(addr)), addr, http);
		note("listening on %s%s", addr, http ? " (HTTP)" : "");
	} else if (!strncmp(addr, "tcp:", 4) && strlen(addr) < sizeof spec + 4) {
		strcpy(spec, addr + 4);
		/* tcp:PORT listens on loopback only. */
		if (!strchr(spec, ':')) {
			host = loopback;
			port = spec;
		} else if (split_hostport(spec, &host, &port) < 0)
			die(EX_USAGE, "bad address '%s': expected tcp:[HOST:]PORT", addr);
		listen_tcp(addr, host, port, http);
	} else
		die(EX_USAGE, "bad listen address '%s': expected unix:PATH or "
		    "tcp:[HOST:]PORT", addr);
}

void
client_close(int i, const char *why)
{
	struct client *c = &sv.cl[i];

	if (c->fd < 0)
		return;
	note("%s: %s", c->name, why);
	close(c->fd);
	c->fd = -1;
	free(c->in.p);
	free(c->out.p);
	memset(&c->in, 0, sizeof c->in);
	memset(&c->out, 0, sizeof c->out);
}

void
client_flush(int i)
{
	struct client *c = &sv.cl[i];
	ssize_t w;

	while (c->fd >= 0 && c->outoff < c->out.len) {
		w = send(c->fd, c->out.p + c->outoff, c->out.len - c->outoff,
		         MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w <= 0) {
			client_close(i, "gone");
			return;
		}
		c->outoff += (size_t)w;
	}
	if (c->outoff == c->out.len)
		c->out.len = c->outoff = 0;
	/* A refused HTTP client gets its answer and the end of the stream, and
	 * what it still sends is read, so that its kernel does not drop the
	 * answer for a reset. */
	if (c->outoff == c->out.len && c->eof && !c->pending && c->drain)
		shutdown(c->fd, SHUT_WR);
	else if (c->outoff == c->out.len && c->eof && !c->pending)
		client_close(i, "disconnected");
	else if (c->out.len - c->outoff > sv.maxout)
		client_close(i, "cut off: it does not read its replies");
}

/* Counts a request that is done, for /metrics, and logs it for --log:
 * when, who, what, how it ended and how long it took; never its
 * arguments, which may be passwords, file data or a program's input. A
 * request that named no command is counted as "(none)". */
static void
account(const struct item *it)
{
	int o = it->code == 400 ? OUT_BAD : it->kind == ITEM_DENIED ? OUT_DENIED :
	        it->code == 503 ? OUT_UNAVAILABLE : it->code == 504 ? OUT_TIMEOUT :
	        it->code < 300 ? OUT_OK : OUT_ERROR;
	const char *name = *it->name ? it->name : "(none)";
	long long ms = now_ms() - it->t0;
	struct timespec ts;
	int k;

	for (k = 0; k < sv.nstats && strcmp(sv.stats[k].name, name); k++)
		;
	if (k == sv.nstats && k < STATS_MAX) {
		sv.stats = xrealloc(sv.stats, (size_t)++sv.nstats * sizeof *sv.stats);
		memset(&sv.stats[k], 0, sizeof sv.stats[k]);
		/* Names come from clients: past a bound they count as one. */
		snprintf(sv.stats[k].name, sizeof sv.stats[k].name, "%s",
		         k < STATS_MAX - 1 ? name : "other");
	}
	sv.stats[k < STATS_MAX ? k : STATS_MAX - 1].n[o]++;
	for (k = 0; k < 6; k++)
		sv.le[k] += !buckets[k] || ms <= buckets[k];
	sv.seconds += (double)ms / 1000;
	if (!sv.log)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	fprintf(sv.log, "{\"time\": \"%s\", \"client\": %u, \"command\": \"%s\", "
	        "\"outcome\": \"%s\", \"status\": %d, \"ms\": %lld}\n",
	        iso_time(ts.tv_sec, ts.tv_nsec), it->gen, it->name, outcomes[o], it->code, ms);
	fflush(sv.log);
}

/* Queues work for the client, in its order among the others': a request
 * for the agent, or a reply of the proxy's own, done at once. */
struct item *
enqueue(int i, int kind, const char *req, size_t len, const char *name, int keep)
{
	struct item *it;
	size_t k;

	if (sv.qhead + sv.qlen == sv.qcap) {
		if (sv.qhead) {
			memmove(sv.q, sv.q + sv.qhead, sv.qlen * sizeof *sv.q);
			sv.qhead = 0;
		} else {
			sv.qcap = sv.qcap ? 2 * sv.qcap : 64;
			sv.q = xrealloc(sv.q, sv.qcap * sizeof *sv.q);
		}
	}
	it = &sv.q[sv.qhead + sv.qlen++];
	memset(it, 0, sizeof *it);
	it->cl = i;
	it->gen = sv.cl[i].gen;
	it->kind = kind;
	it->keep = keep;
	/* A client's name for /metrics' labels and the log: on one line,
	 * within its quotes. */
	for (k = 0; name[k] && k < sizeof it->name - 1; k++)
		it->name[k] = (unsigned char)name[k] < ' ' || name[k] == '"' || name[k] == '\\' ?
		              '?' : name[k];
	it->name[k] = 0;
	it->t0 = now_ms();
	sv.cl[i].pending++;
	if (kind == ITEM_FILE)
		it->state = RUNNING;
	else if (kind == ITEM_SCRAPE)
		it->state = COLLECTING;
	else if (kind == ITEM_AGENT || kind == ITEM_NOREPLY || kind == ITEM_EXEC) {
		it->req = memcpy(xrealloc(NULL, len + 1), req, len);
		it->len = len;
		it->state = QUEUED;
	} else {
		buf_add(&it->reply, req, len);
		it->state = DONE;
		it->code = kind == ITEM_BAD ? 400 : kind == ITEM_DENIED ? 403 : 200;
		if (kind != ITEM_LOCAL || !strncmp(name, "guest-sync", 10))
			account(it);
	}
	return it;
}

/* The client's id of a reply, id[0..idlen), as it wrote it, if any. */
void
add_id(struct buf *b, const char *id, size_t idlen)
{
	if (idlen) {
		buf_str(b, ", \"id\": ");
		buf_add(b, id, idlen);
	}
}

/* An error reply as the agent gives it, the request's id echoed. */
void
error_reply(struct buf *b, const char *cls, const char *desc, const char *id,
            size_t idlen)
{
	b->len = 0;
	buf_str(b, "{\"error\": {\"class\": \"");
	buf_str(b, cls);
	buf_str(b, "\", \"desc\": ");
	buf_jstr(b, desc, strlen(desc));
	buf_str(b, "}");
	add_id(b, id, idlen);
	buf_str(b, "}\n");
}

/* The error a command --allow or --deny keeps out gets. */
void
refusal(struct buf *b, const char *name, const char *id, size_t idlen)
{
	char desc[160];

	snprintf(desc, sizeof desc, "Command %s has been refused by the proxy "
	         "(qga serve --allow/--deny)", name);
	error_reply(b, "CommandNotFound", desc, id, idlen);
}

void
item_done(struct item *it, int code, const char *reply, size_t len)
{
	it->state = DONE;
	it->code = code;
	it->reply.len = 0;
	buf_add(&it->reply, reply, len);
	account(it);
}

/* An error of the proxy's own, as the agent words one. AgentUnavailable
 * and AgentTimeout are classes of qga's: a qga client exits 3 and 4 on
 * them, as it would had it asked the agent itself. */
void
item_fail(struct item *it, int code, const char *cls, const char *desc)
{
	struct buf b = {0};

	error_reply(&b, cls, desc, it->cid, it->cidlen);
	item_done(it, code, b.p, b.len);
	free(b.p);
}

/* Sorts one request from a client into the queue. */
void
take_request(int i, const char *js, size_t len, int keep)
{
	struct json_parser p;
	struct json_tok t[64], a[64];
	struct buf b = {0};
	struct item *it;
	const char *id = "", *v;
	char name[64];
	size_t idlen = 0, n;
	long long sid;
	int ntok, ex, args, k, kind = ITEM_AGENT;
	long m = -1;

	/* The request's members, each value whole: its own tokens stay. */
	json_init(&p);
	p.keep = 2;
	ntok = json_parse(&p, js, len, t, 64);
	if (ntok > 0 && t[0].type == JSON_OBJECT) {
		if ((k = json_get(js, t, 0, "id")) >= 0)
			id = tok_text(js, &t[k], &idlen);
		if ((ex = json_get(js, t, 0, "execute")) >= 0 && t[ex].type == JSON_STRING)
			m = json_unescape(js, &t[ex], name, sizeof name - 1);
	}
	name[m >= 0 ? m : 0] = 0;
	args = ntok > 0 ? json_get(js, t, 0, "arguments") : -1;
	if (ntok < 0) {
		error_reply(&b, "GenericError", ntok == JSON_ENOMEM ? "Too many members "
		            "in the request" : "JSON parse error", "", 0);
		kind = ITEM_BAD;
	} else if (m < 0) {
		error_reply(&b, "GenericError",
		            "Expecting the request to be an object with 'execute'",
		            id, idlen);
		kind = ITEM_BAD;
	} else if (memchr(name, 0, (size_t)m)) {
		/* A name with a NUL in it is no agent's command; the one before
		 * the NUL is not the one asked for. */
		error_reply(&b, "CommandNotFound", "The command's name holds a NUL byte",
		            id, idlen);
		kind = ITEM_BAD;
	} else if (args >= 0 && t[args].type != JSON_OBJECT) {
		/* The agent's own words: it would refuse it so. */
		error_reply(&b, "GenericError", "QMP input member 'arguments' must be an object",
		            id, idlen);
		kind = ITEM_BAD;
	} else if (!strcmp(name, "guest-sync") || !strcmp(name, "guest-sync-delimited")) {
		/* Every client syncs with the proxy, which is always in sync
		 * with the agent, whatever --allow and --deny say. */
		json_init(&p);
		p.keep = 2;
		k = -1;
		if (args >= 0 && t[args].type == JSON_OBJECT &&
		    json_parse(&p, js + t[args].start, t[args].end - t[args].start, a, 64) > 0)
			k = json_get(js + t[args].start, a, 0, "id");
		kind = ITEM_LOCAL;
		if (k < 0 || json_int(js + t[args].start, &a[k], &sid) < 0) {
			error_reply(&b, "GenericError", "Parameter 'id' is missing", id, idlen);
			kind = ITEM_BAD;
		} else {
			buf_str(&b, name[10] ? "\xff{\"return\": " : "{\"return\": ");
			buf_add(&b, js + t[args].start + a[k].start, a[k].end - a[k].start);
			add_id(&b, id, idlen);
			buf_str(&b, "}\n");
		}
	} else if (denied(name)) {
		refusal(&b, name, id, idlen);
		kind = ITEM_DENIED;
	} else if (!strcmp(name, "guest-shutdown") || !strncmp(name, "guest-suspend-", 14))
		kind = ITEM_NOREPLY;
	if (kind != ITEM_AGENT && kind != ITEM_NOREPLY) {
		enqueue(i, kind, b.p, b.len, name, keep);
		free(b.p);
		return;
	}
	/* The agent gets the request under the proxy's id, with the name that
	 * was checked. */
	req_begin(&b, name);
	if (args >= 0) {
		v = tok_text(js, &t[args], &n);
		req_members(&b, v, n);
	}
	req_end(&b, ++sv.next_id);
	it = enqueue(i, kind, b.p, b.len, name, keep);
	it->id = sv.next_id;
	it->cid = memcpy(xrealloc(NULL, idlen + 1), id, idlen);
	it->cidlen = idlen;
	free(b.p);
}

/* Drops from b what the scanner has passed, keeping a value under way,
 * so that what a peer sends holds no more memory than that value. */
void
scan_compact(struct buf *b, struct json_scan *sc)
{
	size_t k = json_scan_between(sc) ? sc->pos : sc->start;

	if (!k)
		return;
	memmove(b->p, b->p + k, b->len - k);
	b->len -= k;
	sc->pos -= k;
	sc->start = sc->start > k ? sc->start - k : 0;
}

static const char parse_error_ff[] = "{\"error\": {\"class\": \"GenericError\", "
	"\"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n";

/* Frames the QGA requests a client sent. */
static void
client_qga(int i)
{
	struct client *c = &sv.cl[i];
	int r;

	for (;;) {
		r = frame(&c->sc, &c->in, sv.maxreq);
		if (r == JSON_SCAN_MORE)
			break;
		if (r == FRAME_LARGE) {
			client_close(i, "cut off: its request is too large");
			return;
		}
		if (r == JSON_SCAN_VALUE)
			take_request(i, c->in.p + c->sc.start, c->sc.pos - c->sc.start, 1);
		else if (r == JSON_SCAN_SENTINEL)
			enqueue(i, ITEM_LOCAL, parse_error_ff, sizeof parse_error_ff - 1,
			        "0xFF", 1);
		else {
			client_close(i, "cut off: it sent bytes that are not JSON");
			return;
		}
	}
	scan_compact(&c->in, &c->sc);
}

/* A free client slot, or -1 when --max-clients are there. */
int
client_slot(void)
{
	int i;

	for (i = 0; i < sv.ncl && sv.cl[i].fd >= 0; i++)
		;
	return i < sv.max ? i : -1;
}

/* Takes a client of the loop in a free slot, fd non-blocking already: its
 * slot, or -1 when --max-clients are there. */
int
client_add(int fd, int http, const char *what)
{
	static unsigned gen;
	int i = client_slot();

	if (i < 0)
		return -1;
	if (i == sv.ncl)
		sv.ncl++;
	memset(&sv.cl[i], 0, sizeof sv.cl[i]);
	sv.cl[i].fd = fd;
	sv.cl[i].http = http;
	sv.cl[i].gen = ++gen;
	json_scan_init(&sv.cl[i].sc, 0);
	snprintf(sv.cl[i].name, sizeof sv.cl[i].name, "%s %u", what, gen);
	note("%s: connected", sv.cl[i].name);
	return i;
}

static void
client_read(int i)
{
	struct client *c = &sv.cl[i];
	ssize_t n;

	if (c->drain) {
		char sink[16384];
		if ((n = read(c->fd, sink, sizeof sink)) <= 0 && (n == 0 || errno != EAGAIN))
			client_close(i, "done");
		return;
	}
	buf_need(&c->in, 65536);
	n = read(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len - 1);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	/* A client's end waits for the replies it is owed, and for those
	 * not yet sent: client_flush() closes it once they are. */
	if (n <= 0 && (c->pending || c->outoff < c->out.len)) {
		c->eof = 1;
		return;
	}
	if (n <= 0) {
		client_close(i, "disconnected");
		return;
	}
	c->in.len += (size_t)n;
	if (c->http)
		client_http(i);
	else
		client_qga(i);
}

static void
client_accept(int l)
{
	int fd = accept4(sv.lfd[l], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), i;

	if (fd < 0)
		return;
	if ((i = client_add(fd, sv.lhttp[l], sv.lhttp[l] ? "HTTP client" : "QGA client")) < 0) {
		note("refused a client: already %d (--max-clients)", sv.max);
		close(fd);
	} else
		sv.cl[i].ln = l;
}

/* Gives the reply to the client that asked, if it is still there. */
static void
deliver(struct item *it)
{
	struct client *c = &sv.cl[it->cl];

	if (c->fd < 0 || c->gen != it->gen)
		return;
	c->pending--;
	if (c->http && !it->raw)
		http_reply(it->cl, it->code, it->reply.p, it->reply.len, it->keep, it->text);
	else {
		buf_add(&c->out, it->reply.p, it->reply.len);
		client_flush(it->cl);
	}
}

static void
item_free(struct item *it)
{
	it->state = GONE;
	free(it->req);
	free(it->cid);
	free(it->reply.p);
}

/* Gives back each item that is done, in the order its client sent them:
 * an item waits for the client's earlier ones, not for other clients'.
 * The replies that wait so count against the client's bound, as those it
 * has not read do. */
static void
deliver_done(void)
{
	static unsigned pass;
	struct item *it;
	struct client *c;
	size_t k;
	int i;

	pass++;
	for (i = 0; i < sv.ncl; i++)
		sv.cl[i].held = 0;
	for (k = sv.qhead; k < sv.qhead + sv.qlen; k++) {
		it = &sv.q[k];
		c = &sv.cl[it->cl];
		if (it->state == GONE)
			continue;
		/* A gone client's request stays until its reply is read. */
		if (c->fd < 0 || c->gen != it->gen) {
			if (it->state != SENT)
				item_free(it);
			continue;
		}
		if (it->state != DONE || c->seen == pass) {
			c->held += it->state == DONE ? it->reply.len : 0;
			c->seen = pass;
			continue;
		}
		deliver(it);
		item_free(it);
	}
	for (i = 0; i < sv.ncl; i++)
		if (sv.cl[i].fd >= 0 && sv.cl[i].held + sv.cl[i].out.len - sv.cl[i].outoff > sv.maxout)
			client_close(i, "cut off: its replies waiting pass --max-request "
			             "plus --max-reply");
	while (sv.qlen && sv.q[sv.qhead].state == GONE) {
		sv.qhead++;
		sv.qlen--;
	}
}

const struct option serve_longs[] = {
	{"listen", required_argument, NULL, 'l'},
	{"http", required_argument, NULL, O_HTTP},
	{"allow", required_argument, NULL, O_ALLOW},
	{"deny", required_argument, NULL, O_DENY},
	{"max-clients", required_argument, NULL, O_MAXCLIENTS},
	{"max-request", required_argument, NULL, O_MAXREQUEST},
	{"mode", required_argument, NULL, O_MODE},
	{"token-file", required_argument, NULL, O_TOKEN},
	{"log", required_argument, NULL, O_LOG},
	{"quiet", no_argument, NULL, 'q'},
	{NULL, 0, NULL, 0}
};

/* serve's options, into sv; its listen addresses into addrs, each with
 * whether it is HTTP's in http. Returns how many, none for a usage error. */
static int
serve_options(int argc, char **argv, char **addrs, int *http)
{
	int ch, na = 0;
	long long v;
	char *end;

	sv.max = 64;
	sv.maxreq = 8 << 20;
	sv.mode = 0600;
	while ((ch = cmdopt(argc, argv)) != -1) {
		switch (ch) {
		case 'l': case O_HTTP:
			if (na == 16)
				die(EX_USAGE, "serve: at most 16 listen addresses");
			http[na] = ch == O_HTTP;
			addrs[na++] = optarg;
			break;
		case O_ALLOW: add_names("--allow", optarg, &sv.allow, &sv.nallow); break;
		case O_DENY: add_names("--deny", optarg, &sv.deny, &sv.ndeny); break;
		case O_MAXCLIENTS:
			v = num(optarg, &end, 10, 4096);
			if (*end || v < 1)
				die(EX_USAGE, "serve: bad --max-clients '%s'", optarg);
			sv.max = (int)v;
			break;
		case O_MAXREQUEST:
			if (parse_size(optarg, &sv.maxreq) < 0 || sv.maxreq < 64)
				die(EX_USAGE, "serve: bad --max-request '%s'", optarg);
			break;
		case O_MODE:
			v = num(optarg, &end, 8, 0777);
			if (*end || v < 0)
				die(EX_USAGE, "serve: bad --mode '%s': expected octal", optarg);
			sv.mode = (mode_t)v;
			break;
		case 'q': sv.quiet = 1; break;
		case O_TOKEN: read_token(optarg); break;
		case O_LOG:
			if (!(sv.log = strcmp(optarg, "-") ? fopen(optarg, "ae") : stderr))
				die(EX_USAGE, "serve: open --log %s:", optarg);
			break;
		}
	}
	/* On a 32-bit machine the sum can pass what size_t holds. */
	sv.maxout = sv.maxreq > SIZE_MAX - opt.maxreply ? SIZE_MAX : sv.maxreq + opt.maxreply;
	return optind == argc ? na : 0;
}

/* One turn of serve's loop: the queue moved on, then a poll of the
 * listeners, the clients, the agent and the transfers, each served. pfd
 * has room for all. Returns 0 once serve stops and nothing is left. */
static int
serve_turn(struct pollfd *pfd)
{
	int i, k, n, m, wait, left = 0;

	wait = exporter_tick(xfer_pump(http_deadlines(agent_pump())));
	deliver_done();
	if (stopping && !(left = transfers_stop()))
		return 0;
	if (stopping && (wait < 0 || wait > left))
		wait = left;
	for (n = 0; n < sv.nl; n++)
		pfd[n] = (struct pollfd){stopping ? -1 : sv.lfd[n], POLLIN, 0};
	/* A client with many requests waiting is not read until they are
	 * answered, nor one whose file transfer has not taken what it sent. */
	for (i = 0; i < sv.ncl; i++)
		pfd[n + i] = (struct pollfd){sv.cl[i].fd, (short)((sv.cl[i].pending <
			CLIENT_PENDING_MAX && (!sv.cl[i].eof || sv.cl[i].drain) &&
			(!sv.cl[i].xf || sv.cl[i].in.len < 65536) ? POLLIN : 0) |
			(sv.cl[i].outoff < sv.cl[i].out.len ? POLLOUT : 0)), 0};
	pfd[n + sv.ncl] = (struct pollfd){sv.link.state ? sv.link.fd : -1,
		link_events(&sv.link), 0};
	xfer_poll(pfd + n + sv.ncl + 1);
	m = exporter_poll(pfd + n + sv.ncl + 1 + 2 * sv.nxf);
	if (poll(pfd, (nfds_t)(n + sv.ncl + 1 + 2 * sv.nxf + m), wait) < 0 && errno != EINTR)
		die(EX_IO, "poll:");
	exporter_io(pfd + n + sv.ncl + 1 + 2 * sv.nxf, m);
	for (k = 0; k < sv.nl; k++)
		if (pfd[k].revents & POLLIN)
			client_accept(k);
	xfer_io(pfd + n + sv.ncl + 1);
	for (i = 0; i < sv.ncl; i++) {
		if (sv.cl[i].fd < 0 || pfd[n + i].fd != sv.cl[i].fd)
			continue;
		if (pfd[n + i].revents & POLLOUT)
			client_flush(i);
		if (sv.cl[i].fd >= 0 && (!sv.cl[i].eof || sv.cl[i].drain) &&
		    pfd[n + i].revents & (POLLIN | POLLHUP | POLLERR))
			client_read(i);
	}
	if (pfd[n + sv.ncl].fd >= 0 && pfd[n + sv.ncl].fd == sv.link.fd)
		link_io(&sv.link, pfd[n + sv.ncl].revents);
	return 1;
}

/* After a signal: every request under way fails, every client is told,
 * the sockets made go. */
static void
serve_stop(char **addrs, int na)
{
	int i, k;

	note("stopping on signal %d", (int)stopping);
	for (k = (int)sv.qhead; k < (int)(sv.qhead + sv.qlen); k++)
		if (sv.q[k].state < DONE)
			item_fail(&sv.q[k], 503, "AgentUnavailable", "qga serve is stopping");
	deliver_done();
	for (i = 0; i < sv.ncl; i++) {
		client_flush(i);
		client_close(i, "closed: the server stops");
	}
	for (i = 0; i < na; i++)
		if (unix_path(addrs[i]))
			unlink(unix_path(addrs[i]));
	link_close(&sv.link);
	exporter_stop();
}

/* Serves the clients of the listeners made until a signal stops it: addrs
 * are their addresses, na of them; extra is the room the exporter needs
 * in poll's array. */
int
serve_run(char **addrs, int na, int extra)
{
	struct sigaction sa;
	struct pollfd *pfd;

	sv.cl = xrealloc(NULL, (size_t)sv.max * sizeof *sv.cl);
	/* Untouched until used, as --max-clients may be large. */
	if (!(sv.xf = calloc((size_t)sv.max, sizeof *sv.xf)))
		die(EX_IO, "out of memory");
	pfd = xrealloc(NULL, (size_t)(16 + 3 * sv.max + 1 + extra) * sizeof *pfd);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	if (!sv.exporter)
		link_start(&sv.link);
	while (serve_turn(pfd))
		;
	serve_stop(addrs, na);
	free(pfd);
	return 0;
}

int
cmd_serve(int argc, char **argv)
{
	char *addrs[16];
	int http[16], na, i;

	if (!(na = serve_options(argc, argv, addrs, http)))
		return -1;
	one_target("serve");
	agent_init();
	for (i = 0; i < na; i++)
		serve_listen(addrs[i], http[i]);
	return serve_run(addrs, na, 0);
}

/* Built-in commands: the table, help and completion */
