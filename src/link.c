/* SPDX-License-Identifier: MIT */
/* A link to one agent or QMP monitor that never blocks, for a loop that
 * polls many things: it connects, asks a VMM for the guest's port, greets
 * QMP or resynchronises the agent, sends what it is given and frames what
 * comes back, each step taken when poll says it can be. What the peer
 * says goes to the owner through the link's hooks. */
#include "qga.h"

/* Adds an address to try. */
static void
link_addr(struct link *l, int family, const void *sa, socklen_t len)
{
	l->aa = xrealloc(l->aa, (size_t)(l->naa + 1) * sizeof *l->aa);
	l->aa[l->naa].family = family;
	l->aa[l->naa].len = len;
	memcpy(&l->aa[l->naa++].sa, sa, len);
}

/* Works out where the peer is, once, from addr as conn_open() takes it: a
 * name is resolved now, since the loop waits for nothing. Returns 0 or an
 * exit status, with the failure recorded. */
int
link_init(struct link *l, const char *addr, int qmp, long long timeout, size_t maxreply)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct vsock_addr va = {.family = AF_VSOCK};
	struct addrinfo *res, *a;
	char spec[300], *host, *port, *end;
	const char *path = NULL, *colon;
	int s;

	memset(l, 0, sizeof *l);
	l->fd = -1;
	l->addr = addr;
	l->qmp = qmp;
	l->timeout = timeout;
	l->maxreply = maxreply;
	copy(l->name, sizeof l->name, addr);
	if (strlen(addr) >= sizeof spec)
		return fail(EX_USAGE, "address too long: %.40s...", addr);
	strcpy(spec, addr);
	if (!strncmp(addr, "unix:", 5))
		path = addr + 5;
	else if (!strncmp(addr, "serial:", 7))
		copy(l->dev, sizeof l->dev, addr + 7);
	else if (!strncmp(addr, "vsock:", 6)) {
		if (parse_u32(addr + 6, &end, &va.cid) < 0 || *end != ':' ||
		    parse_u32(end + 1, &end, &va.port) < 0 || *end)
			return fail(EX_USAGE, "bad address '%s': expected vsock:CID:PORT", addr);
		link_addr(l, AF_VSOCK, &va, sizeof va);
	} else if (!strncmp(addr, "hvsock:", 7)) {
		colon = strrchr(spec, ':');
		if (colon == spec + 6 || parse_u32(colon + 1, &end, &l->vmmport) < 0 || *end)
			return fail(EX_USAGE, "bad address '%s': expected hvsock:PATH:PORT", addr);
		spec[colon - spec] = 0;
		path = spec + 7;
	} else if (!strncmp(addr, "pve:", 4)) {
		if (!addr[4] || addr[4 + strspn(addr + 4, "0123456789")])
			return fail(EX_USAGE, "bad address '%s': expected pve:VMID", addr);
		snprintf(l->name, sizeof l->name, "/var/run/qemu-server/%s.qga", addr + 4);
		path = l->name;
	} else if (!strncmp(addr, "tcp:", 4)) {
		if (split_hostport(spec + 4, &host, &port) < 0)
			return fail(EX_USAGE, "bad address '%s': expected tcp:HOST:PORT", addr);
		if ((s = resolve(addr, host, port, 0, &res)))
			return s;
		for (a = res; a; a = a->ai_next)
			link_addr(l, a->ai_family, a->ai_addr, a->ai_addrlen);
		freeaddrinfo(res);
	} else if (!*addr)
		return fail(EX_USAGE, "empty address");
	else {
		/* A bare path: a socket, or a character device. */
		path = addr;
		copy(l->dev, sizeof l->dev, addr);
	}
	if (path && strlen(path) >= sizeof sun.sun_path)
		return fail(EX_USAGE, "socket path too long: %s", path);
	if (path) {
		strcpy(sun.sun_path, path);
		link_addr(l, AF_UNIX, &sun, sizeof sun);
	}
	return 0;
}

/* Closes the link without harm to the peer: a reply it owes is drained
 * and a request cut short ended, as a client's would be. */
void
link_close(struct link *l)
{
	if (l->fd >= 0)
		fd_release(l->fd, l->sock, l->state > LINK_CONNECTING,
		           l->outoff > 0 && l->outoff < l->out.len);
	l->fd = -1;
	l->state = LINK_DOWN;
}

/* Closes the link and frees what it holds. */
void
link_free(struct link *l)
{
	link_close(l);
	free(l->aa);
	free(l->in.p);
	free(l->out.p);
	l->aa = NULL;
	l->in = l->out = (struct buf){0};
}

/* The peer is out of reach, or gone. Once it has served, the next try may
 * come at once; a try that fails before that waits for the backoff. */
void
link_lose(struct link *l, int status, const char *why)
{
	int up = l->state == LINK_UP;

	l->status = status;
	snprintf(l->why, sizeof l->why, "%s", why);
	link_close(l);
	if (up)
		l->retry_at = 0;
	l->on_lost(l, up);
}

static void
link_ready(struct link *l)
{
	l->state = LINK_UP;
	l->backoff = 0;
	l->on_up(l);
}

/* The owner, which held the link after the sync (see on_synced), lets
 * it be used. */
void
link_up(struct link *l)
{
	if (l->state == LINK_SYNCED)
		link_ready(l);
}

/* Queues p[0..n) to be sent. */
void
link_send(struct link *l, const char *p, size_t n)
{
	buf_add(&l->out, p, n);
}

/* Sends a request without arguments, with id unless it is negative. */
void
link_request(struct link *l, const char *name, long long id)
{
	struct buf req = {0};

	req_begin(&req, name);
	req_end(&req, id);
	link_send(l, req.p, req.len);
	free(req.p);
}

/* Connected: the VMM is asked for the guest's port, QMP is waited for,
 * or the agent gets the sync. */
static void
link_reached(struct link *l)
{
	struct buf req = {0};
	char b[128];

	if (l->vmmport && l->state == LINK_CONNECTING) {
		link_send(l, b, (size_t)snprintf(b, sizeof b, "CONNECT %u\n", l->vmmport));
		l->state = LINK_VMM;
		return;
	}
	l->connects++;
	if (l->qmp) {
		l->state = LINK_GREETING;
		return;
	}
	l->sync_id = random_id();
	req_sync(&req, 1, l->sync_id);
	link_send(l, req.p, req.len);
	free(req.p);
	l->state = LINK_SYNCING;
}

/* Connected to the address l->ai: a unix socket is taken only from a
 * listener unix_trusted() trusts. */
static void
link_checked(struct link *l)
{
	const struct link_addr *a = &l->aa[l->ai];

	if (a->family == AF_UNIX &&
	    unix_trusted(l->fd, ((const struct sockaddr_un *)(const void *)&a->sa)->sun_path))
		link_lose(l, failure.status, failure.msg);
	else
		link_reached(l);
}

/* Connects to the next of the addresses, without waiting: a connection
 * under way is seen through by link_io(). */
static void
link_try(struct link *l)
{
	const struct link_addr *a;
	int one = 1;

	for (; l->ai < l->naa; l->ai++) {
		a = &l->aa[l->ai];
		if ((l->fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
			fail(EX_IO, "socket for %s:", l->name);
			continue;
		}
		l->sock = 1;
		if (a->family == AF_INET || a->family == AF_INET6)
			setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		l->state = LINK_CONNECTING;
		if (connect(l->fd, (const struct sockaddr *)&a->sa, a->len) == 0) {
			link_checked(l);
			return;
		}
		if (errno == EINPROGRESS)
			return;
		/* A unix socket's backlog full is no reason to wait either. */
		fail(EX_IO, errno == EAGAIN ? "connect %s: its backlog is full" : "connect %s:",
		     l->name);
		close(l->fd);
		l->fd = -1;
	}
	l->state = LINK_CONNECTING;
	link_lose(l, failure.status, failure.msg);
}

/* A connection under way has ended, one way or the other. */
static void
link_connected(struct link *l)
{
	int e = 0;
	socklen_t n = sizeof e;

	if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &e, &n) == 0 && !e) {
		link_checked(l);
		return;
	}
	errno = e;
	fail(EX_IO, "connect %s:", l->name);
	close(l->fd);
	l->fd = -1;
	l->ai++;
	link_try(l);
}

/* Starts a try to reach the peer, each of its steps taken in the loop
 * within the link's timeout; the next may not start before the backoff,
 * which doubles up to 2 s. */
void
link_start(struct link *l)
{
	struct stat st;

	l->backoff = l->backoff ? (l->backoff * 2 > 2000 ? 2000 : l->backoff * 2) : 100;
	l->retry_at = now_ms() + l->backoff;
	link_close(l);
	l->sock = 0;
	l->in.len = l->out.len = l->outoff = 0;
	l->heard = 0;
	json_scan_init(&l->sc, 0);
	l->try_deadline = deadline_in(l->timeout);
	l->ai = 0;
	l->state = LINK_CONNECTING;
	/* A device is there at once, or not at all. */
	if (*l->dev && (!l->naa || (stat(l->dev, &st) == 0 && S_ISCHR(st.st_mode)))) {
		l->fd = open(l->dev, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		if (l->fd < 0 ? fail(EX_IO, "open %s:", l->name) : set_raw(l->fd, l->name))
			link_lose(l, failure.status, failure.msg);
		else
			link_reached(l);
		return;
	}
	link_try(l);
}

/* A framed value from the peer, js[0..len): the handshake's, or the
 * owner's. */
static void
link_value(struct link *l, const char *js, size_t len)
{
	struct reply r;
	long long id;

	if (reply_text(&r, js, len, "agent")) {
		l->on_note(l, failure.msg);
		return;
	}
	/* QMP: its greeting first, then its answer to qmp_capabilities, each
	 * where it must come and nowhere else; events go by. */
	if (l->state == LINK_GREETING && json_get(js, r.tok, 0, "QMP") < 0) {
		fail(EX_PROTO, "no QMP greeting: %s", excerpt(js, len));
		link_lose(l, failure.status, failure.msg);
	} else if (l->state == LINK_GREETING) {
		link_request(l, "qmp_capabilities", -1);
		l->state = LINK_CAPS;
	} else if (l->state == LINK_CAPS && r.err >= 0) {
		reply_error(&r, "qmp_capabilities");
		fail(EX_PROTO, "QMP negotiation failed: %s", failure.msg);
		link_lose(l, failure.status, failure.msg);
	} else if (l->state == LINK_CAPS && r.ret >= 0)
		link_ready(l);
	else if (l->state == LINK_CAPS)
		return;
	else if (l->state == LINK_SYNCING) {
		/* Before the sync's reply, what comes is a previous client's. */
		if (r.ret >= 0 && json_int(js, &r.tok[r.ret], &id) == 0 && id == l->sync_id) {
			l->state = LINK_SYNCED;
			if (!l->on_synced(l))
				link_ready(l);
		} else if (json_get(js, r.tok, 0, "QMP") >= 0 && l->qmp_detect) {
			l->qmp = 1;
			l->state = LINK_QMPSYNC;
		} else if (json_get(js, r.tok, 0, "QMP") >= 0)
			/* Taken for one, it would be trusted as one. */
			link_lose(l, EX_PROTO, "it greets as QMP does, where a guest agent's sync was "
			          "expected: for a QMP monitor, give --qmp");
	} else if (l->state == LINK_QMPSYNC) {
		/* The monitor's error to the sync echoes its id; then it is
		 * negotiated with, as --qmp would have it. */
		if (r.id >= 0 && json_int(js, &r.tok[r.id], &id) == 0 && id == l->sync_id) {
			link_request(l, "qmp_capabilities", -1);
			l->state = LINK_CAPS;
		}
	} else
		l->on_reply(l, js, len, &r);
}

/* The VMM's answer to CONNECT, at the start of what came: "OK HOSTPORT\n",
 * after which the agent's bytes follow; 0 while it is not all there, -1
 * when it is not OK, as when the VMM closes (closed). */
static int
vmm_answer(struct link *l, int closed)
{
	const char *nl = memchr(l->in.p, '\n', l->in.len);
	size_t n = nl ? (size_t)(nl - l->in.p) : l->in.len;

	if (!nl && n < 64 && !closed)
		return 0;
	if (!nl || n < 4 || strncmp(l->in.p, "OK ", 3)) {
		fail(EX_IO, "the VMM answered '%s' to CONNECT %u, not OK (is the guest's "
		     "agent listening on vsock port %u?)", excerpt(l->in.p, n),
		     l->vmmport, l->vmmport);
		link_lose(l, failure.status, failure.msg);
		return -1;
	}
	memmove(l->in.p, nl + 1, l->in.len - n - 1);
	l->in.len -= n + 1;
	link_reached(l);
	return 1;
}

/* Reads what the peer sent and takes each value in it. Into the link's
 * buffer when it has room, else by way of 64 KiB here: a loop that holds
 * many links keeps each one's buffer the size of its replies. */
static void
link_read(struct link *l)
{
	char chunk[65536];
	ssize_t n;
	int r, direct;

	/* Never NULL, even when nothing came: vmm_answer() reads it. */
	buf_need(&l->in, 1);
	direct = l->in.cap - l->in.len >= 4096;

	n = read(l->fd, direct ? l->in.p + l->in.len : chunk,
	         direct ? l->in.cap - l->in.len : sizeof chunk);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 && l->state == LINK_VMM)
		vmm_answer(l, 1);
	else if (n <= 0)
		link_lose(l, EX_IO, n ? strerror(errno) : "it closed the connection");
	if (n <= 0)
		return;
	l->heard = 1;
	if (direct)
		l->in.len += (size_t)n;
	else
		buf_add(&l->in, chunk, (size_t)n);
	if (l->state == LINK_VMM && vmm_answer(l, 0) <= 0)
		return;
	while ((r = frame(&l->sc, &l->in, l->maxreply)) != JSON_SCAN_MORE) {
		if (r == FRAME_LARGE) {
			link_lose(l, EX_PROTO, "a reply larger than --max-reply");
			return;
		}
		if (r < 0) {
			link_lose(l, EX_PROTO, "it sent bytes that are not JSON");
			return;
		}
		if (r == JSON_SCAN_VALUE)
			link_value(l, l->in.p + l->sc.start, l->sc.pos - l->sc.start);
		if (l->state == LINK_DOWN)
			return;
	}
	scan_compact(&l->in, &l->sc);
	/* Between replies a lean link holds no buffer. */
	if (l->lean && !l->in.len) {
		free(l->in.p);
		l->in = (struct buf){0};
	}
}

/* Sends what the peer can take now. */
void
link_flush(struct link *l)
{
	ssize_t w;

	if (l->state <= LINK_CONNECTING)
		return;
	while (l->outoff < l->out.len) {
		w = write(l->fd, l->out.p + l->outoff, l->out.len - l->outoff);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (w <= 0) {
			link_lose(l, EX_IO, strerror(errno));
			return;
		}
		l->outoff += (size_t)w;
	}
	l->out.len = l->outoff = 0;
}

/* What the link waits for in poll. */
short
link_events(const struct link *l)
{
	return l->state == LINK_DOWN ? 0 : l->state == LINK_CONNECTING ? POLLOUT :
	       (short)(POLLIN | (l->outoff < l->out.len ? POLLOUT : 0));
}

/* Takes what poll saw on the link's descriptor, and sends what it can. */
void
link_io(struct link *l, short revents)
{
	if (l->state == LINK_CONNECTING && revents)
		link_connected(l);
	else if (l->state > LINK_CONNECTING) {
		if (revents & POLLOUT)
			link_flush(l);
		if (l->state > LINK_CONNECTING && revents & (POLLIN | POLLHUP | POLLERR))
			link_read(l);
	}
}

/* Gives up a try that took longer than the timeout. Returns the ms until
 * the try's deadline, or -1 when none runs. */
long long
link_tick(struct link *l, long long now)
{
	char desc[128];

	if (l->state == LINK_DOWN || l->state == LINK_UP || l->try_deadline < 0)
		return -1;
	if (now < l->try_deadline)
		return l->try_deadline - now;
	if (l->state == LINK_SYNCING && !l->heard) {
		silent_agent(l->name, l->timeout, l->sock);
		link_lose(l, EX_TIMEOUT, failure.msg);
		return -1;
	}
	snprintf(desc, sizeof desc, "no %s within %s", l->state == LINK_CONNECTING ?
	         "connection" : l->state == LINK_VMM ? "answer to CONNECT from the VMM" :
	         l->state == LINK_GREETING ? "QMP greeting" : l->state == LINK_CAPS ?
	         "answer to qmp_capabilities" : l->state == LINK_QMPSYNC ?
	         "answer to the sync from the QMP monitor" : "answer to guest-sync-delimited",
	         seconds(l->timeout));
	link_lose(l, EX_TIMEOUT, desc);
	return -1;
}
