/* SPDX-License-Identifier: MIT */
/* Connections to an agent or monitor: addresses (unix, tcp, vsock,
 * hvsock, serial, pve), the socket rule, reads and writes with deadlines,
 * framing, and closing without harm to the agent. */
#include "qga.h"

/* The deadline of a wait of timeout ms on c, which its messages name. */
long long
conn_deadline(struct conn *c, long long timeout)
{
	c->tmo = timeout;
	return deadline_in(timeout);
}

int
set_raw(int fd, const char *path)
{
	struct termios t;

	if (tcgetattr(fd, &t) < 0)
		return errno == ENOTTY ? 0 : fail(EX_IO, "tcgetattr %s:", path);
	cfmakeraw(&t);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &t) < 0)
		return fail(EX_IO, "tcsetattr %s:", path);
	return 0;
}

static int conn_wait(struct conn *c, int out, long long deadline, const char *what);

/* Connects c to sa. The socket blocks from the start (see conn_wait): its
 * send timeout, the time left, bounds connect() too, which then says
 * EINPROGRESS (TCP) or EAGAIN (a unix socket's full backlog). */
static int
connect_sa(struct conn *c, int family, const void *sa, socklen_t salen,
           long long deadline)
{
	int r;

	c->fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return fail(EX_IO, "socket for %s:", c->name);
	c->sock = 1;
	c->rcvto = c->sndto = -1;
	if ((r = conn_wait(c, 1, deadline, "connection")))
		return r;
	if (connect(c->fd, sa, salen) == 0)
		return 0;
	if (errno == EINPROGRESS || errno == EAGAIN)
		return fail(EX_TIMEOUT, "connect %s: timed out", c->name);
	if (errno == EINTR && interrupted)
		return fail_at(EX_IO, c->name, "interrupted");
	return fail(EX_IO, "connect %s:", c->name);
}

/* Whether the folder dir and each one above it can be changed only by
 * root, this user or uid: owned by one of them, writable by no group and
 * nobody else. */
static int
path_kept(const char *dir, uid_t uid)
{
	char real[PATH_MAX], *slash;
	struct stat st;

	if (!realpath(dir, real))
		return 0;
	for (;;) {
		if (stat(real, &st) < 0 || (st.st_mode & 022) ||
		    (st.st_uid && st.st_uid != geteuid() && st.st_uid != uid))
			return 0;
		if (!strcmp(real, "/"))
			return 1;
		slash = strrchr(real, '/');
		slash[slash == real] = 0;
	}
}

/* A socket where others can write, as in /tmp, may be anyone's: whoever
 * binds the name first plays the guest, and is sent what qga sends (a
 * password among it). So a socket is used when the process listening on
 * it is root's or this user's, or else when no folder on its way can be
 * changed by anyone but them and that process's user. SO_PEERCRED tells
 * who listens: no swap of the file between a look and the connect can
 * change that. */
int
unix_trusted(int fd, const char *path)
{
	char dir[sizeof ((struct sockaddr_un *)0)->sun_path], who[64];
	struct ucred cr;
	socklen_t len = sizeof cr;
	struct passwd *pw;
	char *slash;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return fail_at(EX_IO, path, "who listens:");
	if (cr.uid == 0 || cr.uid == geteuid())
		return 0;
	copy(dir, sizeof dir, path);
	if (!(slash = strrchr(dir, '/')))
		strcpy(dir, ".");
	else
		slash[slash == dir] = 0;
	if (path_kept(dir, cr.uid))
		return 0;
	if ((pw = getpwuid(cr.uid)))
		snprintf(who, sizeof who, "%s's", pw->pw_name);
	else
		snprintf(who, sizeof who, "uid %u's", (unsigned)cr.uid);
	return fail_at(EX_IO, path, "not used: it is %s, where others can write (only root's or "
	               "your own is)", who);
}

static int
open_unix(struct conn *c, const char *path, long long deadline)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int r;

	if (strlen(path) >= sizeof sun.sun_path)
		return fail(EX_USAGE, "socket path too long: %s", path);
	strcpy(sun.sun_path, path);
	if ((r = connect_sa(c, AF_UNIX, &sun, sizeof sun, deadline)))
		return r;
	return unix_trusted(c->fd, path);
}

static int
open_serial(struct conn *c, const char *path)
{
	c->fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (c->fd < 0)
		return fail(EX_IO, "open %s:", c->name);
	return set_raw(c->fd, c->name);
}

/* Splits "HOST:PORT" or "[V6]:PORT" in place. */
int
split_hostport(char *s, char **host, char **port)
{
	char *colon;

	if (*s == '[') {
		if (!(colon = strchr(s, ']')) || colon[1] != ':')
			return -1;
		*colon = 0;
		*host = s + 1;
		*port = colon + 2;
	} else {
		if (!(colon = strrchr(s, ':')))
			return -1;
		*colon = 0;
		*host = s;
		*port = colon + 1;
	}
	return **host && **port ? 0 : -1;
}

/* Resolves HOST and PORT as the system does: /etc/hosts, then DNS as
 * /etc/resolv.conf says. localhost is loopback even where neither knows
 * it, as RFC 6761 asks. *res is for freeaddrinfo. */
int
resolve(const char *spec, const char *host, const char *port, int passive,
        struct addrinfo **res)
{
	struct addrinfo hints;
	char *end;
	int e;

	if (num(port, &end, 10, 65535) < 0 || *end)
		return fail(EX_USAGE, "bad port in '%s'", spec);
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	if (!(e = getaddrinfo(host, port, &hints, res)))
		return 0;
	if (!strncasecmp(host, "localhost", 10)) {
		hints.ai_flags = AI_NUMERICSERV;
		if (!getaddrinfo(NULL, port, &hints, res))
			return 0;
	}
	if (e == EAI_SYSTEM)
		return fail(EX_IO, "resolve %s:", spec);
	return fail(EX_IO, "resolve %s: %s", spec, gai_strerror(e));
}

static int
open_tcp(struct conn *c, char *hostport, long long deadline)
{
	struct addrinfo *res, *a;
	char *host, *port;
	int r, one = 1;

	if (split_hostport(hostport, &host, &port) < 0)
		return fail(EX_USAGE, "bad address '%s': expected tcp:HOST:PORT",
		            c->name);
	if ((r = resolve(c->name, host, port, 0, &res)))
		return r;
	/* Every address of the name is tried in turn. */
	for (a = res; a; a = a->ai_next) {
		if ((r = connect_sa(c, a->ai_family, a->ai_addr, a->ai_addrlen,
		                    deadline)) == 0)
			break;
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
	}
	freeaddrinfo(res);
	if (r == 0)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return r;
}

int
parse_u32(const char *s, char **end, unsigned *v)
{
	long long n = num(s, end, 10, 0xffffffffLL);

	if (n < 0 || n > 0xffffffffLL)
		return -1;
	*v = (unsigned)n;
	return 0;
}

static int
open_vsock(struct conn *c, const char *spec, long long deadline)
{
	struct vsock_addr va = {.family = AF_VSOCK};
	char *end;

	if (parse_u32(spec, &end, &va.cid) < 0 || *end != ':' ||
	    parse_u32(end + 1, &end, &va.port) < 0 || *end)
		return fail(EX_USAGE, "bad address '%s': expected vsock:CID:PORT",
		            c->name);
	return connect_sa(c, AF_VSOCK, &va, sizeof va, deadline);
}

/* Connects to addr: unix:PATH, tcp:HOST:PORT, vsock:CID:PORT, serial:PATH,
 * or a bare path, which is a socket or a character device. */
static int open_hvsock(struct conn *c, const char *spec, long long deadline);

/* Readies c, not yet connected, for a session within timeout. */
void
conn_init(struct conn *c, long long timeout)
{
	memset(c, 0, offsetof(struct conn, first));
	c->in = (struct buf){c->first, 0, sizeof c->first, 1};
	c->up = 1;
	c->fd = -1;
	c->timeout = timeout;
	c->fresh = 1;
}

int
conn_open(struct conn *c, const char *addr, long long timeout)
{
	long long deadline;
	char spec[300];
	struct stat st;
	int r;

	conn_init(c, timeout);
	deadline = conn_deadline(c, timeout);
	if (strlen(addr) >= sizeof spec)
		return fail(EX_USAGE, "address too long: %.40s...", addr);
	strcpy(c->name, addr);
	if (!strncmp(addr, "unix:", 5))
		return open_unix(c, addr + 5, deadline);
	if (!strncmp(addr, "serial:", 7))
		return open_serial(c, addr + 7);
	if (!strncmp(addr, "vsock:", 6))
		return open_vsock(c, addr + 6, deadline);
	if (!strncmp(addr, "hvsock:", 7))
		return open_hvsock(c, addr + 7, deadline);
	/* Proxmox VE keeps each VM's agent socket by its id. */
	if (!strncmp(addr, "pve:", 4)) {
		if (!addr[4] || addr[4 + strspn(addr + 4, "0123456789")])
			return fail(EX_USAGE, "bad address '%s': expected pve:VMID", addr);
		snprintf(c->name, sizeof c->name, "/var/run/qemu-server/%s.qga", addr + 4);
		return open_unix(c, c->name, deadline);
	}
	if (!strncmp(addr, "tcp:", 4)) {
		strcpy(spec, addr + 4);
		return open_tcp(c, spec, deadline);
	}
	if (!*addr)
		return fail(EX_USAGE, "empty address");
	/* A bare path is a socket, or else a character device: connecting
	 * first spares the usual case a stat. */
	if (!(r = open_unix(c, addr, deadline)) || errno != ECONNREFUSED)
		return r;
	close(c->fd);
	c->fd = -1;
	c->sock = 0;
	if (stat(addr, &st) == 0 && S_ISCHR(st.st_mode))
		return open_serial(c, addr);
	if (stat(addr, &st) == 0 && !S_ISSOCK(st.st_mode))
		return fail_at(EX_USAGE, addr, "not a socket or character device");
	return r;
}

/* Closes c's descriptor without harming the agent, whatever was left in
 * flight. qemu-ga exits when a client's socket is closed with reply bytes
 * unread in it: the kernel then reports ECONNRESET to the agent. So when a
 * reply is owed, the read side is shut down first, after which a reply
 * still to come fails to be sent (EPIPE, which the agent survives, as
 * tested on 7.2 and 10.0), and what has already arrived is read and
 * dropped: the socket closes empty. A request cut short is ended with
 * 0xFF, which resets the agent's parser for the next client. */
void
conn_shut(struct conn *c)
{
	if (!c->up)
		return;
	c->up = 0;
	if (c->fd >= 0)
		fd_release(c->fd, c->sock, c->owed, c->partial);
	c->fd = -1;
}

/* Closes fd, a connection to a peer, as conn_shut() says: a socket (sock)
 * whose peer owes replies (owed) or was sent part of a request (partial)
 * is drained or ended first. */
void
fd_release(int fd, int sock, int owed, int partial)
{
	char sink[16384];

	if (sock && (owed || partial)) {
		ioctl(fd, FIONBIO, &(int){1});
		if (partial)
			(void)!write(fd, "\xff", 1);
		shutdown(fd, SHUT_RD);
		while (read(fd, sink, sizeof sink) > 0)
			;
	}
	close(fd);
}

void
conn_close(struct conn *c)
{
	conn_shut(c);
	if (!c->in.fixed)
		free(c->in.p);
	c->in = (struct buf){0};
}

/* Reading and writing with deadlines */

static int
wait_fd(struct conn *c, short events, long long deadline, const char *what)
{
	struct pollfd pfd = {c->fd, events, 0};
	int r;

	while ((r = poll(&pfd, 1, ms_left(deadline))) < 0 && errno == EINTR)
		if (interrupted) {
			c->dirty = 1;
			return fail_at(EX_IO, c->name, "interrupted");
		}
	if (r < 0)
		return fail(EX_IO, "poll %s:", c->name);
	if (r == 0) {
		c->dirty = 1;
		return fail_at(EX_TIMEOUT, c->name, "no %s within %s", what,
		            seconds(c->tmo));
	}
	return 0;
}

/* Readies c for a read (out = 0) or a write. A device is polled. A socket
 * blocks instead, with the time left as its SO_RCVTIMEO or SO_SNDTIMEO,
 * so that a request costs a write and a read and not a poll as well; the
 * timeout is set again only when the time left has moved 10 ms from it. */
static int
conn_wait(struct conn *c, int out, long long deadline, const char *what)
{
	long long left, *set = out ? &c->sndto : &c->rcvto;
	struct timeval tv;

	if (!c->sock)
		return wait_fd(c, out ? POLLOUT : POLLIN, deadline, what);
	left = deadline < 0 ? 0 : deadline - now_ms();
	if (interrupted) {
		c->dirty = 1;
		return fail_at(EX_IO, c->name, "interrupted");
	}
	if (deadline >= 0 && left <= 0) {
		c->dirty = 1;
		return fail_at(EX_TIMEOUT, c->name, "no %s within %s", what,
		            seconds(c->tmo));
	}
	if (*set < 0 || left > *set + 10 || left < *set - 10) {
		tv.tv_sec = (time_t)(left / 1000);
		tv.tv_usec = (suseconds_t)(left % 1000 * 1000);
		setsockopt(c->fd, SOL_SOCKET, out ? SO_SNDTIMEO : SO_RCVTIMEO,
		           &tv, sizeof tv);
		*set = left;
	}
	return 0;
}

int
conn_write(struct conn *c, const char *p, size_t n, long long deadline)
{
	size_t total = n;
	ssize_t w;
	int r = 0;

	while (n && !r) {
		if (c->sock && (r = conn_wait(c, 1, deadline, "room to send")))
			break;
		w = write(c->fd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && errno == EAGAIN && !c->sock)
			r = wait_fd(c, POLLOUT, deadline, "room to send");
		else if (w < 0 && errno != EINTR && errno != EAGAIN)
			r = fail(EX_IO, "send to %s:", c->name);
	}
	c->partial = n && n < total;
	c->owed += !r;
	return r;
}

/* A Firecracker or Cloud Hypervisor guest's vsock, which the VMM serves
 * on a unix socket: "CONNECT PORT\n", then "OK HOSTPORT\n", then the
 * guest's listener. The answer is read a byte at a time, so that nothing
 * of the agent's is read with it. */
static int
open_hvsock(struct conn *c, const char *spec, long long deadline)
{
	const char *colon = strrchr(spec, ':');
	char path[300], line[64];
	unsigned port;
	size_t n;
	char *end;
	int r;

	if (!colon || colon == spec || parse_u32(colon + 1, &end, &port) < 0 || *end)
		return fail(EX_USAGE, "bad address '%s': expected hvsock:PATH:PORT", c->name);
	snprintf(path, sizeof path, "%.*s", (int)(colon - spec), spec);
	if ((r = open_unix(c, path, deadline)))
		return r;
	n = (size_t)snprintf(line, sizeof line, "CONNECT %u\n", (unsigned)port);
	if ((r = conn_write(c, line, n, deadline)))
		return r;
	c->owed = 0;
	for (n = 0; n < sizeof line - 1; n++)
		if ((r = wait_fd(c, POLLIN, deadline, "answer to CONNECT")) ||
		    read(c->fd, line + n, 1) != 1 || line[n] == '\n')
			break;
	if (r)
		return r;
	if (n < 4 || strncmp(line, "OK ", 3))
		return fail_at(EX_IO, c->name, "the VMM answered '%s' to CONNECT %u, not OK "
		               "(is the guest's agent listening on vsock port %u?)",
		               excerpt(line, n), (unsigned)port, (unsigned)port);
	return 0;
}

/* Drops the bytes before c->off, keeping the scanner's offsets. */
static void
conn_compact(struct conn *c)
{
	size_t k = c->off;

	if (!k)
		return;
	memmove(c->in.p, c->in.p + k, c->in.len - k);
	c->in.len -= k;
	c->sc.pos -= k;
	c->sc.start = c->sc.start > k ? c->sc.start - k : 0;
	c->off = 0;
}

/* Frames the next value of b with sc, as json_scan() does, but for a
 * value under way already longer than max: FRAME_LARGE. Clients, agents
 * and serve's link are framed here alike. */
int
frame(struct json_scan *sc, const struct buf *b, size_t max)
{
	int r = json_scan(sc, b->p, b->len);

	if (r == JSON_SCAN_MORE && !json_scan_between(sc) && b->len - sc->start > max)
		return FRAME_LARGE;
	return r;
}

/* Reads until the scanner frames something: a value (buf[sc.start,
 * sc.pos)), a sentinel or garbage (at sc.pos), which *got says. Returns 0,
 * or an exit status. */
int
conn_next(struct conn *c, long long deadline, const char *what, int *got)
{
	size_t room;
	ssize_t n;
	int r;

	for (;;) {
		*got = frame(&c->sc, &c->in, opt.maxreply);
		if (*got == JSON_SCAN_DEPTH)
			return fail_at(EX_PROTO, c->name, "reply nested deeper than %d", JSON_MAXDEPTH);
		if (*got == FRAME_LARGE)
			return fail_at(EX_PROTO, c->name, "reply larger than %zu bytes "
			             "(see --max-reply)", opt.maxreply);
		if (*got != JSON_SCAN_MORE)
			return 0;
		/* Nothing framed: whitespace seen can go. */
		if (json_scan_between(&c->sc))
			c->off = c->sc.pos;
		conn_compact(c);
		room = c->in.cap - c->in.len;
		if (room < 4096) {
			room = c->in.cap < 65536 ? 65536 : c->in.cap;
			buf_need(&c->in, room);
			room = c->in.cap - c->in.len;
		}
		/* A reply is never there the moment it is asked for: wait first. */
		if ((r = conn_wait(c, 0, deadline, what)))
			return r;
		n = read(c->fd, c->in.p + c->in.len, room);
		if (n > 0) {
			c->in.len += (size_t)n;
			continue;
		}
		if (n == 0)
			return fail_at(EX_IO, c->name, "connection closed while waiting "
			             "for %s", what);
		if (errno != EAGAIN && errno != EINTR)
			return fail(EX_IO, "read from %s:", c->name);
	}
}

/* Marks the framed value or sentinel as consumed. */
void
conn_consume(struct conn *c)
{
	c->off = c->sc.pos;
	c->fresh = 0;
}
