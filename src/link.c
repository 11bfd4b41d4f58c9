/* SPDX-License-Identifier: MIT */
#include "qga.h"

/* Adds an address of the agent's to try. */
static void
agent_addr(int family, const void *sa, socklen_t len)
{
	sv.aa = xrealloc(sv.aa, (size_t)(sv.naa + 1) * sizeof *sv.aa);
	sv.aa[sv.naa].family = family;
	sv.aa[sv.naa].len = len;
	memcpy(&sv.aa[sv.naa++].sa, sa, len);
}

/* Works out where the agent is, once, from -s, as conn_open() takes it: a
 * name resolved now, since the loop waits for nothing. */
void
agent_where(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct vsock_addr va = {.family = AF_VSOCK};
	struct addrinfo *res, *a;
	char spec[300], *host, *port, *end;
	const char *addr = opt.addr, *path = NULL, *colon;
	int s;

	copy(sv.aname, sizeof sv.aname, addr);
	if (strlen(addr) >= sizeof spec)
		die(EX_USAGE, "address too long: %.40s...", addr);
	strcpy(spec, addr);
	if (!strncmp(addr, "unix:", 5))
		path = addr + 5;
	else if (!strncmp(addr, "serial:", 7))
		copy(sv.dev, sizeof sv.dev, addr + 7);
	else if (!strncmp(addr, "vsock:", 6)) {
		if (parse_u32(addr + 6, &end, &va.cid) < 0 || *end != ':' ||
		    parse_u32(end + 1, &end, &va.port) < 0 || *end)
			die(EX_USAGE, "bad address '%s': expected vsock:CID:PORT", addr);
		agent_addr(AF_VSOCK, &va, sizeof va);
	} else if (!strncmp(addr, "hvsock:", 7)) {
		colon = strrchr(spec, ':');
		if (colon == spec + 6 || parse_u32(colon + 1, &end, &sv.vmmport) < 0 || *end)
			die(EX_USAGE, "bad address '%s': expected hvsock:PATH:PORT", addr);
		spec[colon - spec] = 0;
		path = spec + 7;
	} else if (!strncmp(addr, "pve:", 4)) {
		if (!addr[4] || addr[4 + strspn(addr + 4, "0123456789")])
			die(EX_USAGE, "bad address '%s': expected pve:VMID", addr);
		snprintf(sv.aname, sizeof sv.aname, "/var/run/qemu-server/%s.qga", addr + 4);
		path = sv.aname;
	} else if (!strncmp(addr, "tcp:", 4)) {
		if (split_hostport(spec + 4, &host, &port) < 0)
			die(EX_USAGE, "bad address '%s': expected tcp:HOST:PORT", addr);
		if ((s = resolve(addr, host, port, 0, &res)))
			quit(s);
		for (a = res; a; a = a->ai_next)
			agent_addr(a->ai_family, a->ai_addr, a->ai_addrlen);
		freeaddrinfo(res);
	} else if (!*addr)
		die(EX_USAGE, "empty address");
	else {
		/* A bare path: a socket, or a character device. */
		path = addr;
		copy(sv.dev, sizeof sv.dev, addr);
	}
	if (path && strlen(path) >= sizeof sun.sun_path)
		die(EX_USAGE, "socket path too long: %s", path);
	if (path) {
		strcpy(sun.sun_path, path);
		agent_addr(AF_UNIX, &sun, sizeof sun);
	}
}

/* The agent is out of reach, or gone: what it was asked fails. Once it
 * has served, what is queued goes to the next connection, tried at once;
 * a try that fails before that fails what waits for it too, and the
 * backoff spaces the tries. */
static void
agent_lost(const char *why)
{
	char desc[sizeof errmsg + 64];
	size_t k;
	int up = sv.agent == AGENT_UP;

	snprintf(sv.why, sizeof sv.why, "%s", why);
	note("agent %s: %s", opt.addr, sv.why);
	snprintf(desc, sizeof desc, up ? "the guest agent went away: %s" :
	         "the guest agent is unavailable: %s", sv.why);
	for (k = sv.qhead; k < sv.qhead + sv.qlen; k++)
		if (sv.q[k].state == SENT || sv.q[k].state == WAIT ||
		    (!up && sv.q[k].state == QUEUED))
			item_fail(&sv.q[k], 503, "AgentUnavailable", desc);
	/* A reply half read or a request half sent is dealt with as a
	 * client's would be: the agent survives both. */
	sess.owed = sv.agent > AGENT_CONNECTING;
	sess.partial = sv.aoff > 0 && sv.aoff < sv.aout.len;
	conn_close(&sess);
	if (up)
		sv.retry_at = 0;
	sv.agent = AGENT_DOWN;
}

/* Connected: the VMM is asked for the guest's port, QMP is waited for,
 * or the agent gets the sync. */
static void
agent_reached(void)
{
	buf_need(&sv.aout, 128);
	if (sv.vmmport && sv.agent == AGENT_CONNECTING) {
		sv.aout.len = (size_t)snprintf(sv.aout.p, 128, "CONNECT %u\n", sv.vmmport);
		sv.agent = AGENT_VMM;
		return;
	}
	sv.reconnects++;
	if (opt.qmp) {
		sv.agent = AGENT_GREETING;
		return;
	}
	sv.sync_id = random_id();
	sv.aout.len = (size_t)snprintf(sv.aout.p, 128, "\xff{\"execute\":\"guest-sync-delimited\","
	                               "\"arguments\":{\"id\":%lld}}", sv.sync_id);
	sv.agent = AGENT_SYNCING;
}

/* Connected to the agent's address sv.ai: a unix socket is taken only
 * from a listener unix_trusted() trusts. */
static void
agent_checked(void)
{
	const struct agent_addr *a = &sv.aa[sv.ai];

	if (a->family == AF_UNIX &&
	    unix_trusted(sess.fd, ((const struct sockaddr_un *)(const void *)&a->sa)->sun_path))
		agent_lost(errmsg);
	else
		agent_reached();
}

/* Connects to the next of the agent's addresses, without waiting: a
 * connection under way is seen through in the loop. */
static void
agent_try(void)
{
	const struct agent_addr *a;
	int one = 1;

	for (; sv.ai < sv.naa; sv.ai++) {
		a = &sv.aa[sv.ai];
		if ((sess.fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
			fail(EX_IO, "socket for %s:", sess.name);
			continue;
		}
		sess.sock = 1;
		if (a->family == AF_INET || a->family == AF_INET6)
			setsockopt(sess.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		sv.agent = AGENT_CONNECTING;
		if (connect(sess.fd, (const struct sockaddr *)&a->sa, a->len) == 0) {
			agent_checked();
			return;
		}
		if (errno == EINPROGRESS)
			return;
		/* A unix socket's backlog full is no reason to wait either. */
		fail(EX_IO, errno == EAGAIN ? "connect %s: its backlog is full" : "connect %s:",
		     sess.name);
		close(sess.fd);
		sess.fd = -1;
	}
	sv.agent = AGENT_CONNECTING;
	agent_lost(errmsg);
}

/* A connection under way has ended, one way or the other. */
void
agent_connected(void)
{
	int e = 0;
	socklen_t n = sizeof e;

	if (getsockopt(sess.fd, SOL_SOCKET, SO_ERROR, &e, &n) == 0 && !e) {
		agent_checked();
		return;
	}
	errno = e;
	fail(EX_IO, "connect %s:", sess.name);
	close(sess.fd);
	sess.fd = -1;
	sv.ai++;
	agent_try();
}

/* Starts a try to reach the agent, each of its steps taken in the loop
 * within one -t. */
void
agent_connect(void)
{
	struct stat st;

	sv.retry_at = now_ms() + (sv.backoff = sv.backoff ? (sv.backoff * 2 > 2000 ? 2000 :
	                                       sv.backoff * 2) : 100);
	conn_close(&sess);
	conn_init(&sess, opt.timeout);
	copy(sess.name, sizeof sess.name, sv.aname);
	sv.ain.len = sv.aout.len = sv.aoff = 0;
	json_scan_init(&sv.asc, 0);
	sv.try_deadline = deadline_in(opt.timeout);
	sv.ai = 0;
	sv.agent = AGENT_CONNECTING;
	/* A device is there at once, or not at all. */
	if (*sv.dev && (!sv.naa || (stat(sv.dev, &st) == 0 && S_ISCHR(st.st_mode)))) {
		sess.fd = open(sv.dev, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		if (sess.fd < 0 ? fail(EX_IO, "open %s:", sess.name) : set_raw(sess.fd, sess.name))
			agent_lost(errmsg);
		else
			agent_reached();
		return;
	}
	agent_try();
}

/* The HTTP status of the agent's error reply: 404 for a command or device
 * it does not have, 403 for one disabled, 500 for any other failure. */
static int
error_status(const struct reply *r)
{
	char cls[64], desc[200];

	member_str(r->js, &r->tok[r->err], "class", cls, sizeof cls);
	member_str(r->js, &r->tok[r->err], "desc", desc, sizeof desc);
	return !strcmp(cls, "CommandNotFound") || !strcmp(cls, "DeviceNotFound") ? 404 :
	       strstr(desc, "has been disabled") ? 403 : 500;
}

/* The next step of a POST /exec the agent answered: after guest-exec,
 * the status of its pid is asked for at once, and while the program runs
 * again, 50 times as soon as each answer comes (so that a short program
 * is answered at once, as exec's 0.2 ms naps do; the loop's timers count
 * whole ms), then from 1 ms on, less and less often, down to ten times a
 * second; once it has ended, the client gets its end as exec -j prints
 * it. */
static void
exec_step(struct item *it, const struct reply *r)
{
	const struct json_tok *t = &r->tok[r->ret];
	struct buf b = {0};
	struct doc d;

	if (doc_parse(&d, r->js + t->start - (t->type == JSON_STRING),
	              t->end - t->start + 2 * (t->type == JSON_STRING),
	              it->pid ? SHAPE_STATUS : SHAPE_EXEC,
	              it->pid ? "guest-exec-status" : "guest-exec"))
		item_fail(it, 502, "GenericError", errmsg);
	else if (!it->pid && (it->pid = dint(&d, dget(&d, 0, "pid"), -1)) < 0)
		item_fail(it, 500, "GenericError", "guest-exec: no pid in the reply");
	else if (it->polls && dtrue(&d, dget(&d, 0, "exited"))) {
		if (exec_json(&b, &d) < 0)
			item_fail(it, 500, "GenericError", "guest-exec-status: output not base64");
		else {
			buf_add(&b, "\n", 1);
			item_done(it, 200, b.p, b.len);
		}
	} else {
		it->delay = it->polls < 50 ? 0 : it->delay ? (it->delay * 2 > 100 ? 100 :
		            it->delay * 2) : 1;
		it->polls++;
		it->next = now_ms() + it->delay;
		it->state = WAIT;
		buf_need(&b, 128);
		b.len = (size_t)snprintf(b.p, 128, "{\"execute\": \"guest-exec-status\", "
		                         "\"arguments\": {\"pid\": %lld}, \"id\": %lld}", it->pid,
		                         it->id = ++sv.next_id);
		free(it->req);
		it->req = b.p;
		it->len = b.len;
		b.p = NULL;
	}
	free(b.p);
	free(d.t);
}

/* A reply from the agent, js[0..len): the sync's, or an item's. */
static void
agent_reply(const char *js, size_t len)
{
	struct buf b = {0}, marked = {0};
	struct reply r;
	struct item *it = NULL;
	const char *v;
	long long id;
	int synced, info;
	size_t k, n;

	if (reply_text(&r, js, len, "agent")) {
		note("agent %s: %s, dropped", opt.addr, errmsg);
		return;
	}
	/* QMP: its greeting first, then its answer to qmp_capabilities, each
	 * where it must come and nowhere else; events go by. */
	if (sv.agent == AGENT_GREETING && json_get(js, r.tok, 0, "QMP") < 0) {
		fail(EX_PROTO, "no QMP greeting: %s", excerpt(js, len));
		agent_lost(errmsg);
		return;
	}
	if (sv.agent == AGENT_GREETING) {
		buf_str(&sv.aout, "{\"execute\":\"qmp_capabilities\"}");
		sv.agent = AGENT_CAPS;
		return;
	}
	if (sv.agent == AGENT_CAPS && r.err >= 0) {
		reply_error(&r, "qmp_capabilities");
		fail(EX_PROTO, "QMP negotiation failed: %s", errmsg);
		agent_lost(errmsg);
		return;
	}
	if (sv.agent == AGENT_CAPS && r.ret >= 0) {
		sv.agent = AGENT_UP;
		sv.backoff = 0;
		note("agent %s: connected", opt.addr);
		return;
	}
	if (sv.agent == AGENT_CAPS)
		return;
	if (sv.agent == AGENT_SYNCING) {
		/* Before the sync's reply, what comes is a previous client's.
		 * The first time, guest-info follows it, within the same
		 * deadline, so that the names of --allow and --deny are
		 * checked before any request is sent. */
		synced = r.ret >= 0 && json_int(js, &r.tok[r.ret], &id) == 0 && id == sv.sync_id;
		info = sv.info_id && r.id >= 0 && json_int(js, &r.tok[r.id], &id) == 0 &&
		       id == sv.info_id;
		if (synced && !sv.checked && (sv.nallow || sv.ndeny)) {
			sv.checked = 1;
			buf_need(&sv.aout, 64);
			sv.aout.len += (size_t)snprintf(sv.aout.p + sv.aout.len, 64,
			                                "{\"execute\": \"guest-info\", \"id\": %lld}",
			                                sv.info_id = ++sv.next_id);
		} else if (synced || info) {
			if (info && r.ret >= 0)
				check_names(&r);
			sv.info_id = 0;
			sv.agent = AGENT_UP;
			sv.backoff = 0;
			note("agent %s: connected", opt.addr);
		} else if (json_get(js, r.tok, 0, "QMP") >= 0)
			/* Taken for one, it would be trusted as one. */
			agent_lost("it greets as QMP does, where a guest agent's sync was "
			           "expected: for a QMP monitor, give --qmp");
		return;
	}
	if (r.id < 0 || json_int(js, &r.tok[r.id], &id) < 0 || (r.ret < 0 && r.err < 0)) {
		if (json_get(js, r.tok, 0, "event") < 0)
			note("agent %s: a reply to no request, dropped: %s", opt.addr, excerpt(js, len));
		return;
	}
	for (k = sv.qhead; k < sv.qhead + sv.qlen && !it; k++)
		if (sv.q[k].state == SENT && (sv.q[k].id == id || sv.q[k].mark == id))
			it = &sv.q[k];
	if (!it)
		return;
	if (it->kind == ITEM_NOREPLY && id == it->mark && r.err < 0) {
		item_done(it, 204, "", 0);
		return;
	}
	if (it->kind == ITEM_EXEC && r.err < 0) {
		exec_step(it, &r);
		return;
	}
	if (r.ret >= 0 && !strcmp(it->name, "guest-info") && (sv.nallow || sv.ndeny)) {
		if (mark_denied(&marked, &r) < 0) {
			item_fail(it, 502, "GenericError", errmsg);
			free(marked.p);
			return;
		}
		reply_text(&r, marked.p, marked.len, "agent");
	}
	buf_str(&b, r.ret >= 0 ? "{\"return\": " : "{\"error\": ");
	v = tok_text(r.js, &r.tok[r.ret >= 0 ? r.ret : r.err], &n);
	buf_add(&b, v, n);
	add_id(&b, it->cid, it->cidlen);
	buf_str(&b, "}\n");
	item_done(it, r.err >= 0 && r.ret < 0 ? error_status(&r) : 200, b.p, b.len);
	free(b.p);
	free(marked.p);
}

/* The VMM's answer to CONNECT, at the start of what came: "OK HOSTPORT\n",
 * after which the agent's bytes follow; 0 while it is not all there, -1
 * when it is not OK, as when the VMM closes (closed). */
static int
vmm_answer(int closed)
{
	const char *nl = memchr(sv.ain.p, '\n', sv.ain.len);
	size_t n = nl ? (size_t)(nl - sv.ain.p) : sv.ain.len;

	if (!nl && n < 64 && !closed)
		return 0;
	if (!nl || n < 4 || strncmp(sv.ain.p, "OK ", 3)) {
		fail(EX_IO, "the VMM answered '%s' to CONNECT %u, not OK (is the guest's "
		     "agent listening on vsock port %u?)", excerpt(sv.ain.p, n),
		     sv.vmmport, sv.vmmport);
		agent_lost(errmsg);
		return -1;
	}
	memmove(sv.ain.p, nl + 1, sv.ain.len - n - 1);
	sv.ain.len -= n + 1;
	agent_reached();
	return 1;
}

/* Reads what the agent sent and takes each reply in it. */
void
agent_read(void)
{
	ssize_t n;
	int r;

	buf_need(&sv.ain, 65536);
	n = read(sess.fd, sv.ain.p + sv.ain.len, sv.ain.cap - sv.ain.len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 && sv.agent == AGENT_VMM)
		vmm_answer(1);
	else if (n <= 0)
		agent_lost(n ? strerror(errno) : "it closed the connection");
	if (n <= 0)
		return;
	sv.ain.len += (size_t)n;
	if (sv.agent == AGENT_VMM && vmm_answer(0) <= 0)
		return;
	while ((r = json_scan(&sv.asc, sv.ain.p, sv.ain.len)) != JSON_SCAN_MORE) {
		if (r < 0) {
			agent_lost("it sent bytes that are not JSON");
			return;
		}
		if (r == JSON_SCAN_VALUE)
			agent_reply(sv.ain.p + sv.asc.start, sv.asc.pos - sv.asc.start);
		if (sv.agent == AGENT_DOWN)
			return;
	}
	if (!json_scan_between(&sv.asc) && sv.ain.len - sv.asc.start > opt.maxreply)
		agent_lost("a reply larger than --max-reply");
	else
		scan_compact(&sv.ain, &sv.asc);
}

/* Sends what the agent can take now. */
void
agent_write(void)
{
	ssize_t w;

	if (sv.agent <= AGENT_CONNECTING)
		return;
	while (sv.aoff < sv.aout.len) {
		w = write(sess.fd, sv.aout.p + sv.aoff, sv.aout.len - sv.aoff);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (w <= 0) {
			agent_lost(strerror(errno));
			return;
		}
		sv.aoff += (size_t)w;
	}
	sv.aout.len = sv.aoff = 0;
}

/* How long the agent may take over a reply to name, as the built-in
 * command that sends it waits. */
static long long
reply_timeout(const char *name)
{
	return timeout_or(!strncmp(name, "guest-fsfreeze-freeze", 21) ? FREEZE_TIMEOUT :
	                  !strcmp(name, "guest-fsfreeze-thaw") ? THAW_TIMEOUT :
	                  !strcmp(name, "guest-fstrim") ? TRIM_TIMEOUT :
	                  !strcmp(name, "guest-shutdown") || !strncmp(name, "guest-suspend-", 14) ?
	                  POWER_WAIT : opt.timeout);
}

/* Moves the queue on: connects the agent when something waits for it,
 * sends what is queued, fails what waited too long. Returns the ms until
 * the next deadline, or -1. */
int
agent_pump(void)
{
	char desc[sizeof errmsg + 64];
	long long now = now_ms(), next = -1, left;
	struct item *it;
	size_t k;
	int want = 0;

	for (k = sv.qhead; k < sv.qhead + sv.qlen; k++)
		want |= sv.q[k].state == QUEUED;
	if (want && sv.agent == AGENT_DOWN && now >= sv.retry_at)
		agent_connect();
	if (sv.agent != AGENT_DOWN && sv.agent != AGENT_UP && sv.try_deadline >= 0 &&
	    now >= sv.try_deadline) {
		snprintf(desc, sizeof desc, "no %s within %s", sv.agent == AGENT_CONNECTING ?
		         "connection" : sv.agent == AGENT_VMM ? "answer to CONNECT from the VMM" :
		         sv.agent == AGENT_GREETING ? "QMP greeting" : sv.agent == AGENT_CAPS ?
		         "answer to qmp_capabilities" : "answer to guest-sync-delimited",
		         seconds(opt.timeout));
		agent_lost(desc);
	}
	for (k = sv.qhead; k < sv.qhead + sv.qlen; k++) {
		it = &sv.q[k];
		if (it->kind == ITEM_EXEC && it->until >= 0 && it->state < DONE && now >= it->until) {
			snprintf(desc, sizeof desc, "the program still runs in the guest as pid %lld",
			         it->pid);
			item_fail(it, 504, "AgentTimeout", desc);
		}
		if (it->state == WAIT && now >= it->next)
			it->state = QUEUED;
		else if (it->state == WAIT && (next < 0 || it->next - now < next))
			next = it->next - now;
		if (it->kind == ITEM_EXEC && it->until >= 0 && it->state < DONE &&
		    (next < 0 || it->until - now < next))
			next = it->until - now;
		if (it->state == QUEUED && sv.agent == AGENT_UP) {
			buf_add(&sv.aout, it->req, it->len);
			if (it->kind == ITEM_NOREPLY) {
				it->mark = ++sv.next_id;
				buf_need(&sv.aout, 64);
				sv.aout.len += (size_t)snprintf(sv.aout.p + sv.aout.len, 64,
				                                "{\"execute\": \"guest-ping\", \"id\": %lld}",
				                                it->mark);
			}
			it->state = SENT;
			it->deadline = deadline_in(reply_timeout(it->name));
		}
		if (it->state != SENT || it->deadline < 0)
			continue;
		if ((left = it->deadline - now) <= 0 && it->kind == ITEM_NOREPLY)
			item_done(it, 204, "", 0);  /* no error came in time: taken */
		else if (left <= 0) {
			snprintf(desc, sizeof desc, "no reply from the guest agent within %s",
			         seconds(reply_timeout(it->name)));
			item_fail(it, 504, "AgentTimeout", desc);
		} else if (next < 0 || left < next)
			next = left;
	}
	agent_write();
	if (sv.agent != AGENT_DOWN && sv.agent != AGENT_UP && sv.try_deadline >= 0 &&
	    (next < 0 || sv.try_deadline - now < next))
		next = sv.try_deadline - now;
	if (want && sv.agent == AGENT_DOWN && (next < 0 || sv.retry_at - now < next))
		next = sv.retry_at - now;
	return next < 0 ? -1 : (int)(next > 0 ? next : 0);
}
