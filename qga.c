/* qga: a client for the QEMU Guest Agent and QEMU's QMP monitor.
 *
 * One connection, resynchronised the way QEMU documents (0xFF, then
 * guest-sync-delimited with a fresh id), then requests and their replies.
 * See README for the interface; the exit statuses are part of it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "json.h"

#define VERSION "0.1"

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

enum {
	EX_OK = 0,      /* success */
	EX_AGENT = 1,   /* the agent answered with an error */
	EX_USAGE = 2,   /* bad command line or request */
	EX_IO = 3,      /* connection or I/O failure */
	EX_TIMEOUT = 4, /* no reply in time */
	EX_PROTO = 5    /* the peer broke the protocol */
};

/* The last failure, kept so that callers that retry can drop it. */
static char errmsg[512];

static int
vfail(int status, const char *fmt, va_list ap)
{
	int saved = errno;
	size_t n;

	vsnprintf(errmsg, sizeof errmsg, fmt, ap);
	n = strlen(errmsg);
	if (n && errmsg[n - 1] == ':')
		snprintf(errmsg + n, sizeof errmsg - n, " %s", strerror(saved));
	return status;
}

/* Records a failure and returns its exit status. A message ending in ':'
 * gets the system error appended. */
static int
fail(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(status, fmt, ap);
	va_end(ap);
	return status;
}

/* Prints the recorded failure. */
static void
say(void)
{
	fflush(stdout);
	fprintf(stderr, "qga: %s\n", errmsg);
}

static void
quit(int status)
{
	say();
	exit(status);
}

static void
die(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(status, fmt, ap);
	va_end(ap);
	quit(status);
}

/* The first bytes of s[0..n) for a message, printable and on one line. */
static const char *
excerpt(const char *s, size_t n)
{
	static char out[64];
	size_t i;

	for (i = 0; i < n && i < sizeof out - 4; i++)
		out[i] = s[i] >= ' ' && s[i] < 127 ? s[i] : '?';
	strcpy(out + i, i < n ? "..." : "");
	return out;
}

static void *
xrealloc(void *p, size_t n)
{
	if (!(p = realloc(p, n)))
		die(EX_IO, "out of memory (%zu bytes)", n);
	return p;
}

/* ------------------------------------------------------------------ */
/* Options and numbers                                                 */
/* ------------------------------------------------------------------ */

static struct {
	const char *addr;
	long long timeout;   /* milliseconds; 0: none */
	size_t maxreply;
	int qmp, nosync, ret, pretty;
} opt = {
	NULL, 10000, 80 << 20, 0, 0, 0, 0
};

/* Parses "N" or "N.FFF" seconds into milliseconds. */
static int
parse_seconds(const char *s, long long *ms)
{
	char *end;
	long n;
	int k;

	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	n = strtol(s, &end, 10);
	if (errno || n > 1000000000L)
		return -1;
	*ms = (long long)n * 1000;
	if (*end == '.') {
		for (k = 100, end++; *end >= '0' && *end <= '9'; end++, k /= 10)
			*ms += k * (*end - '0');
	}
	return *end ? -1 : 0;
}

/* Parses a byte count with an optional K, M or G suffix. */
static int
parse_size(const char *s, size_t *v)
{
	char *end;
	long long n;
	int shift = 0;

	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	n = strtoll(s, &end, 10);
	if (errno)
		return -1;
	if (*end && !end[1] && strchr("KMG", *end))
		shift = *end == 'K' ? 10 : *end == 'M' ? 20 : 30;
	else if (*end)
		return -1;
	if (n > (1LL << 40) >> shift)
		return -1;
	*v = (size_t)n << shift;
	return 0;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds as seconds for messages: "10 s", "0.250 s". */
static const char *
seconds(long long ms)
{
	static char s[32];

	if (ms % 1000)
		snprintf(s, sizeof s, "%lld.%03lld s", ms / 1000, ms % 1000);
	else
		snprintf(s, sizeof s, "%lld s", ms / 1000);
	return s;
}

/* A deadline timeout milliseconds from now; -1 for none. */
static long long
deadline_in(long long timeout)
{
	return timeout > 0 ? now_ms() + timeout : -1;
}

/* Milliseconds left for poll(), at least 0; -1 for no deadline. */
static int
ms_left(long long deadline)
{
	long long left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	return left < 0 ? 0 : left > 1 << 30 ? 1 << 30 : (int)left;
}

/* ------------------------------------------------------------------ */
/* Growing buffers                                                     */
/* ------------------------------------------------------------------ */

struct buf {
	char *p;
	size_t len, cap;
};

static void
buf_need(struct buf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return;
	b->cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n + 256;
	b->p = xrealloc(b->p, b->cap);
}

static void
buf_add(struct buf *b, const void *s, size_t n)
{
	buf_need(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* Appends s as a JSON string, quotes included. */
static void
buf_jstr(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char esc[6] = "\\u00";
	size_t i;

	buf_add(b, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			esc[1] = (char)c;
			buf_add(b, esc, 2);
			esc[1] = 'u';
		} else if (c < 0x20) {
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			buf_add(b, esc, 6);
		} else
			buf_add(b, &s[i], 1);
	}
	buf_add(b, "\"", 1);
}

/* ------------------------------------------------------------------ */
/* Addresses and connecting                                            */
/* ------------------------------------------------------------------ */

/* The kernel's struct sockaddr_vm, spelt out because musl ships no
 * <linux/vm_sockets.h>. */
struct vsock_addr {
	unsigned short family, reserved;
	unsigned int port, cid;
	unsigned char flags, zero[3];
};
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

struct conn {
	int fd;
	char name[300];        /* the address, as messages show it */
	struct buf in;         /* bytes received and not yet consumed */
	size_t off;            /* the first byte not consumed */
	struct json_scan sc;
	int qmp;               /* the peer is a QMP monitor */
	int dirty;             /* a timeout left replies in flight: resync */
	int fresh;             /* nothing received yet: a greeting may come */
};

static int
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

/* Waits for a non-blocking connect() on fd to finish. */
static int
connect_wait(int fd, const char *name, long long deadline)
{
	struct pollfd pfd = {fd, POLLOUT, 0};
	socklen_t len = sizeof(int);
	int r, err = 0;

	while ((r = poll(&pfd, 1, ms_left(deadline))) < 0 && errno == EINTR)
		;
	if (r == 0)
		return fail(EX_TIMEOUT, "connect %s: timed out", name);
	if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return fail(EX_IO, "connect %s:", name);
	if (err) {
		errno = err;
		return fail(EX_IO, "connect %s:", name);
	}
	return 0;
}

static int
connect_sa(struct conn *c, int family, const void *sa, socklen_t salen,
           long long deadline)
{
	struct timespec nap = {0, 10000000};

	c->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return fail(EX_IO, "socket for %s:", c->name);
	for (;;) {
		if (connect(c->fd, sa, salen) == 0)
			return 0;
		if (errno == EINPROGRESS)
			return connect_wait(c->fd, c->name, deadline);
		/* A unix socket whose backlog is full says EAGAIN: retry. */
		if (errno != EAGAIN || family != AF_UNIX)
			break;
		if (deadline >= 0 && now_ms() >= deadline)
			return fail(EX_TIMEOUT, "connect %s: timed out", c->name);
		nanosleep(&nap, NULL);
	}
	return fail(EX_IO, "connect %s:", c->name);
}

static int
open_unix(struct conn *c, const char *path, long long deadline)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	if (strlen(path) >= sizeof sun.sun_path)
		return fail(EX_USAGE, "socket path too long: %s", path);
	strcpy(sun.sun_path, path);
	return connect_sa(c, AF_UNIX, &sun, sizeof sun, deadline);
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
static int
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

static int
open_tcp(struct conn *c, char *hostport, long long deadline)
{
	struct addrinfo hints = {0}, *res, *ai;
	char *host, *port;
	int r, one = 1;

	if (split_hostport(hostport, &host, &port) < 0)
		return fail(EX_USAGE, "bad address '%s': expected tcp:HOST:PORT",
		            c->name);
	hints.ai_socktype = SOCK_STREAM;
	if ((r = getaddrinfo(host, port, &hints, &res)))
		return fail(EX_IO, "resolve %s: %s", c->name, gai_strerror(r));
	r = EX_IO;
	for (ai = res; ai; ai = ai->ai_next) {
		if ((r = connect_sa(c, ai->ai_family, ai->ai_addr, ai->ai_addrlen,
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

static int
parse_u32(const char *s, char **end, unsigned *v)
{
	unsigned long n;

	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	n = strtoul(s, end, 10);
	if (errno || n > 0xffffffffUL)
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
static int
conn_open(struct conn *c, const char *addr, long long timeout)
{
	long long deadline = deadline_in(timeout);
	char spec[300];
	struct stat st;

	memset(c, 0, sizeof *c);
	c->fd = -1;
	c->fresh = 1;
	if (strlen(addr) >= sizeof spec)
		return fail(EX_USAGE, "address too long: %.40s...", addr);
	strcpy(c->name, addr);
	if (!strncmp(addr, "unix:", 5))
		return open_unix(c, addr + 5, deadline);
	if (!strncmp(addr, "serial:", 7))
		return open_serial(c, addr + 7);
	if (!strncmp(addr, "vsock:", 6))
		return open_vsock(c, addr + 6, deadline);
	if (!strncmp(addr, "tcp:", 4)) {
		strcpy(spec, addr + 4);
		return open_tcp(c, spec, deadline);
	}
	if (!*addr)
		return fail(EX_USAGE, "empty address");
	if (stat(addr, &st) == 0 && S_ISCHR(st.st_mode))
		return open_serial(c, addr);
	if (stat(addr, &st) == 0 && !S_ISSOCK(st.st_mode))
		return fail(EX_USAGE, "%s: not a socket or character device", addr);
	return open_unix(c, addr, deadline);
}

static void
conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->in.p);
	c->in.p = NULL;
}

/* ------------------------------------------------------------------ */
/* Reading and writing with deadlines                                  */
/* ------------------------------------------------------------------ */

static int
wait_fd(struct conn *c, short events, long long deadline, const char *what)
{
	struct pollfd pfd = {c->fd, events, 0};
	int r;

	while ((r = poll(&pfd, 1, ms_left(deadline))) < 0 && errno == EINTR)
		;
	if (r < 0)
		return fail(EX_IO, "poll %s:", c->name);
	if (r == 0) {
		c->dirty = 1;
		return fail(EX_TIMEOUT, "%s: no %s within %s", c->name, what,
		            seconds(opt.timeout));
	}
	return 0;
}

static int
conn_write(struct conn *c, const char *p, size_t n, long long deadline)
{
	ssize_t w;
	int r;

	while (n) {
		w = write(c->fd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && errno == EAGAIN) {
			if ((r = wait_fd(c, POLLOUT, deadline, "room to send")))
				return r;
		} else if (w < 0 && errno != EINTR)
			return fail(EX_IO, "send to %s:", c->name);
	}
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

/* Reads until the scanner frames something: a value (buf[sc.start,
 * sc.pos)), a sentinel or garbage (at sc.pos), which *got says. Returns 0,
 * or an exit status. */
static int
conn_next(struct conn *c, long long deadline, const char *what, int *got)
{
	size_t room;
	ssize_t n;
	int r;

	for (;;) {
		*got = json_scan(&c->sc, c->in.p, c->in.len);
		if (*got == JSON_SCAN_DEPTH)
			return fail(EX_PROTO, "%s: reply nested deeper than %d",
			            c->name, JSON_MAXDEPTH);
		if (*got != JSON_SCAN_MORE)
			return 0;
		/* Nothing framed: whitespace seen can go, and a value in
		 * progress must stay within the limit. */
		if (json_scan_between(&c->sc))
			c->off = c->sc.pos;
		else if (c->in.len - c->sc.start > opt.maxreply)
			return fail(EX_PROTO, "%s: reply larger than %zu bytes "
			             "(see --max-reply)", c->name, opt.maxreply);
		conn_compact(c);
		room = c->in.cap - c->in.len;
		if (room < 4096) {
			room = c->in.cap < 65536 ? 65536 : c->in.cap;
			buf_need(&c->in, room);
			room = c->in.cap - c->in.len;
		}
		n = read(c->fd, c->in.p + c->in.len, room);
		if (n > 0) {
			c->in.len += (size_t)n;
			continue;
		}
		if (n == 0)
			return fail(EX_IO, "%s: connection closed while waiting "
			             "for %s", c->name, what);
		if (errno == EAGAIN) {
			if ((r = wait_fd(c, POLLIN, deadline, what)))
				return r;
		} else if (errno != EINTR)
			return fail(EX_IO, "read from %s:", c->name);
	}
}

/* Marks the framed value or sentinel as consumed. */
static void
conn_consume(struct conn *c)
{
	c->off = c->sc.pos;
	c->fresh = 0;
}

/* ------------------------------------------------------------------ */
/* Replies                                                             */
/* ------------------------------------------------------------------ */

/* A reply, as offsets into the connection's buffer, parsed two levels
 * deep: the object, its members and their values. */
struct reply {
	const char *js;
	size_t len;
	struct json_tok tok[64];
	int ret, err, id;
};

/* Parses buf[start..end) as a reply object; returns 0, or an exit status
 * if it is not JSON or not an object. */
static int
reply_parse(struct conn *c, struct reply *r, size_t start, size_t end)
{
	struct json_parser p;
	int n;

	r->js = c->in.p + start;
	r->len = end - start;
	json_init(&p);
	p.keep = 2;
	n = json_parse(&p, r->js, r->len, r->tok, 64);
	if (n == JSON_ENOMEM)
		return fail(EX_PROTO, "%s: reply has too many members", c->name);
	if (n < 0)
		return fail(EX_PROTO, "%s: invalid JSON in reply at offset %zu: "
		            "%s", c->name, p.pos, excerpt(r->js, r->len));
	if (r->tok[0].type != JSON_OBJECT)
		return fail(EX_PROTO, "%s: reply is not an object: %s",
		            c->name, excerpt(r->js, r->len));
	r->ret = json_get(r->js, r->tok, 0, "return");
	r->err = json_get(r->js, r->tok, 0, "error");
	r->id = json_get(r->js, r->tok, 0, "id");
	return 0;
}

/* The unescaped string member key of the object token o, or "?". */
static const char *
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
static int
reply_error(const struct reply *r, const char *name)
{
	char cls[64], desc[400];
	const struct json_tok *e = &r->tok[r->err];

	return fail(EX_AGENT, "%s: %s: %s", name,
	            member_str(r->js, e, "class", cls, sizeof cls),
	            member_str(r->js, e, "desc", desc, sizeof desc));
}

/* ------------------------------------------------------------------ */
/* Resynchronisation and QMP                                           */
/* ------------------------------------------------------------------ */

static unsigned
random_id(void)
{
	unsigned v;

	if (getrandom(&v, sizeof v, GRND_NONBLOCK) != sizeof v)
		v = (unsigned)now_ms() ^ (unsigned)getpid() << 16;
	return (v & 0x7fffffff) | 1;
}

/* Reads the next reply that is not a QMP event or greeting. */
static int
read_reply(struct conn *c, struct reply *r, long long deadline,
           const char *what)
{
	int s, got;

	for (;;) {
		if ((s = conn_next(c, deadline, what, &got)))
			return s;
		if (got == JSON_SCAN_GARBAGE)
			return fail(EX_PROTO, "%s: garbage instead of %s: %s",
			            c->name, what, excerpt(c->in.p + c->sc.pos,
			                                   c->in.len - c->sc.pos));
		if (got == JSON_SCAN_SENTINEL)
			return fail(EX_PROTO, "%s: unexpected 0xFF delimiter "
			            "instead of %s", c->name, what);
		if ((s = reply_parse(c, r, c->sc.start, c->sc.pos)))
			return s;
		conn_consume(c);
		if (r->ret >= 0 || r->err >= 0)
			return 0;
		if (json_get(r->js, r->tok, 0, "event") < 0 &&
		    json_get(r->js, r->tok, 0, "QMP") < 0)
			return fail(EX_PROTO, "%s: reply without return or error: "
			            "%s", c->name, excerpt(r->js, r->len));
	}
}

static int
qmp_negotiate(struct conn *c, long long deadline)
{
	static const char req[] = "{\"execute\":\"qmp_capabilities\"}";
	struct reply r;
	int s;

	if ((s = conn_write(c, req, sizeof req - 1, deadline)) ||
	    (s = read_reply(c, &r, deadline, "reply to qmp_capabilities")))
		return s;
	if (r.err >= 0) {
		reply_error(&r, "qmp_capabilities");
		return fail(EX_PROTO, "%s: QMP negotiation failed: %s", c->name,
		            errmsg);
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
		return fail(EX_PROTO, "%s: no QMP greeting: %s", c->name,
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

/* Brings the channel to a known state. For the guest agent: 0xFF, then
 * guest-sync-delimited with a fresh id; everything up to a 0xFF followed
 * by the reply carrying that id is somebody else's. A QMP monitor shows
 * itself by greeting first: then the errors it gives the sync are read
 * (up to the one echoing the id) and capabilities are negotiated. */
static int
resync(struct conn *c)
{
	long long deadline = deadline_in(opt.timeout);
	unsigned id = random_id();
	char req[128];
	int n, s, got, expect = 0;
	long long v;
	struct reply r;

	if (c->qmp)
		return 0;
	n = snprintf(req, sizeof req, "\xff{\"execute\":\"guest-sync-delimited\","
	             "\"arguments\":{\"id\":%u},\"id\":%u}", id, id);
	if ((s = conn_write(c, req, (size_t)n, deadline)))
		return s;
	for (;;) {
		if ((s = conn_next(c, deadline, "reply to guest-sync-delimited",
		                   &got)))
			return s;
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
		if (expect && !reply_parse(c, &r, c->sc.start, c->sc.pos) &&
		    r.ret >= 0 && !json_int(r.js, &r.tok[r.ret], &v) && v == id) {
			conn_consume(c);
			c->dirty = 0;
			return 0;
		}
		conn_consume(c);
		expect = 0;
	}
	do {
		if ((s = read_reply(c, &r, deadline, "QMP's reply to the sync")))
			return s;
	} while (r.id < 0 || json_int(r.js, &r.tok[r.id], &v) || v != id);
	return qmp_negotiate(c, deadline);
}

/* Opens addr and readies the session as the options say. */
static int
session_open(struct conn *c, const char *addr)
{
	long long deadline;
	int s;

	if ((s = conn_open(c, addr, opt.timeout)))
		return s;
	if (opt.qmp) {
		deadline = deadline_in(opt.timeout);
		if ((s = qmp_greeting(c, deadline)))
			return s;
		return qmp_negotiate(c, deadline);
	}
	return opt.nosync ? 0 : resync(c);
}

/* Sends one request and reads its reply into r. */
static int
transact(struct conn *c, const char *req, size_t len, struct reply *r,
         const char *name)
{
	long long deadline;
	char what[128];
	int s;

	if (c->dirty && (s = resync(c)))
		return s;
	deadline = deadline_in(opt.timeout);
	snprintf(what, sizeof what, "reply to %s", name);
	if ((s = conn_write(c, req, len, deadline)))
		return s;
	return read_reply(c, r, deadline, what);
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

static int
is_json(const char *s, size_t n)
{
	struct json_parser p;

	json_init(&p);
	return json_parse(&p, s, n, NULL, 0) > 0;
}

/* Builds a request from a command name and key=value words. A value that
 * parses as JSON is sent as that JSON, anything else as a string. */
static int
build_request(struct buf *b, char **words, int n)
{
	const char *eq;
	int i;

	b->len = 0;
	buf_str(b, "{\"execute\":");
	buf_jstr(b, words[0], strlen(words[0]));
	for (i = 1; i < n; i++) {
		if (!(eq = strchr(words[i], '=')) || eq == words[i])
			return fail(EX_USAGE, "%s: expected key=value, got '%s'",
			            words[0], words[i]);
		buf_str(b, i == 1 ? ",\"arguments\":{" : ",");
		buf_jstr(b, words[i], (size_t)(eq - words[i]));
		buf_add(b, ":", 1);
		eq++;
		if (is_json(eq, strlen(eq)))
			buf_str(b, eq);
		else
			buf_jstr(b, eq, strlen(eq));
	}
	buf_str(b, n > 1 ? "}}" : "}");
	if (!is_json(b->p, b->len))
		return fail(EX_USAGE, "%s: arguments are not valid UTF-8",
		            words[0]);
	return 0;
}

/* Checks a request given as JSON and finds its command's name. */
static int
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

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

static void
indent(int depth)
{
	putchar('\n');
	while (depth-- > 0)
		fputs("  ", stdout);
}

/* Prints a valid JSON text with two-space indentation. */
static void
print_pretty(const char *s, size_t n)
{
	size_t i, j;
	int depth = 0;

	for (i = 0; i < n; i++) {
		char c = s[i];
		switch (c) {
		case ' ': case '\t': case '\n': case '\r':
			break;
		case '"':
			for (j = i + 1; s[j] != '"'; j++)
				j += s[j] == '\\';
			fwrite(s + i, 1, j + 1 - i, stdout);
			i = j;
			break;
		case '{': case '[':
			for (j = i + 1; j < n && strchr(" \t\r\n", s[j]); j++)
				;
			if (s[j] == (c == '{' ? '}' : ']')) {
				putchar(c);
				putchar(s[j]);
				i = j;
				break;
			}
			putchar(c);
			indent(++depth);
			break;
		case '}': case ']':
			indent(--depth);
			putchar(c);
			break;
		case ',':
			putchar(',');
			indent(depth);
			break;
		case ':':
			fputs(": ", stdout);
			break;
		default:
			putchar(c);
		}
	}
}

static void
print_json(const char *s, size_t n)
{
	if (opt.pretty)
		print_pretty(s, n);
	else
		fwrite(s, 1, n, stdout);
	putchar('\n');
}

/* Prints a reply as asked; returns 0, or EX_AGENT for an error reply. */
static int
print_reply(const struct reply *r, const char *name, int batch)
{
	const struct json_tok *v;
	int s = 0;

	if (r->err >= 0) {
		s = reply_error(r, name);
		say();
		if (!batch)
			return s;
	}
	if (opt.ret && r->ret >= 0) {
		v = &r->tok[r->ret];
		if (v->type == JSON_STRING)
			print_json(r->js + v->start - 1, v->end - v->start + 2);
		else
			print_json(r->js + v->start, v->end - v->start);
	} else
		print_json(r->js, r->len);
	return s;
}

/* ------------------------------------------------------------------ */
/* Raw commands and batches                                            */
/* ------------------------------------------------------------------ */

/* Turns one batch line into a request: a JSON object, or a name and
 * key=value words, where a JSON value may hold spaces. */
static int
line_request(struct buf *b, char *line, char *name, size_t size)
{
	char *words[256], *p = line;
	struct json_scan sc;
	int n = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '{') {
		b->len = 0;
		buf_str(b, p);
		return check_request(p, strlen(p), name, size);
	}
	while (*p) {
		if (n == 256)
			return fail(EX_USAGE, "too many words");
		words[n++] = p;
		if (n > 1 && p[strcspn(p, " \t=")] == '=')
			p += strcspn(p, " \t=") + 1;
		json_scan_init(&sc, 0);
		if (n > 1 && (*p == '"' || *p == '{' || *p == '[') &&
		    json_scan(&sc, p, strlen(p)) == JSON_SCAN_VALUE)
			p += sc.pos;
		p += strcspn(p, " \t");
		if (*p)
			*p++ = 0;
		while (*p == ' ' || *p == '\t')
			p++;
	}
	snprintf(name, size, "%s", words[0]);
	return build_request(b, words, n);
}

/* Standard input, read in large blocks and split into lines. */
struct lines {
	struct buf b;
	size_t off, scanned, lineno;
	int eof;
};

/* The next line, NUL terminated and without its newline (or CR LF), or
 * NULL at the end. A line may be as long as the largest reply. */
static char *
next_line(struct lines *l)
{
	char *line, *nl = NULL;
	ssize_t n;

	for (;;) {
		if (l->scanned < l->b.len &&
		    (nl = memchr(l->b.p + l->scanned, '\n', l->b.len - l->scanned)))
			break;
		l->scanned = l->b.len;
		if (l->eof)
			break;
		if (l->b.len - l->off > opt.maxreply)
			die(EX_USAGE, "stdin line %zu: longer than %zu bytes",
			    l->lineno + 1, opt.maxreply);
		if (l->off) {
			memmove(l->b.p, l->b.p + l->off, l->b.len - l->off);
			l->b.len -= l->off;
			l->scanned -= l->off;
			l->off = 0;
		}
		buf_need(&l->b, 65536 + 1);
		n = read(0, l->b.p + l->b.len, l->b.cap - l->b.len - 1);
		if (n < 0 && errno != EINTR)
			die(EX_IO, "read stdin:");
		l->eof = n == 0;
		l->b.len += n > 0 ? (size_t)n : 0;
	}
	if (!nl) {
		if (l->off == l->b.len)
			return NULL;
		nl = l->b.p + l->b.len; /* the last line has no newline */
		l->b.len++;
	}
	line = l->b.p + l->off;
	*nl = 0;
	if (nl > line && nl[-1] == '\r')
		nl[-1] = 0;
	l->off = l->scanned = (size_t)(nl + 1 - l->b.p);
	l->lineno++;
	return line;
}

static int
run_batch(struct conn *c)
{
	struct lines in = {0};
	struct buf req = {0};
	struct reply r;
	char name[128], *p;
	int s, status = 0;

	while ((p = next_line(&in))) {
		p += strspn(p, " \t");
		if (!*p || *p == '#')
			continue;
		if ((s = line_request(&req, p, name, sizeof name))) {
			char why[sizeof errmsg];
			strcpy(why, errmsg);
			die(s, "stdin line %zu: %s", in.lineno, why);
		}
		if ((s = transact(c, req.p, req.len, &r, name)))
			quit(s);
		if (print_reply(&r, name, 1))
			status = EX_AGENT;
		if (fflush(stdout) == EOF)
			die(EX_IO, "write stdout:");
	}
	free(in.b.p);
	free(req.p);
	return status;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static const char usage_text[] =
"usage: qga [OPTIONS] COMMAND [KEY=VALUE]...\n"
"       qga [OPTIONS] '{\"execute\": ...}'\n"
"       qga [OPTIONS] [-]            (a batch: one request per line of stdin)\n"
"\n"
"Sends a request to a QEMU Guest Agent (or a QMP monitor) and prints the\n"
"reply. A value that parses as JSON is sent as JSON, anything else as a\n"
"string.\n"
"\n"
"options:\n"
"  -s, --socket ADDR     unix:PATH, tcp:HOST:PORT, vsock:CID:PORT, serial:PATH\n"
"                        or a bare path (default: $QGA_SOCKET, else\n"
"                        /tmp/qga.sock)\n"
"  -t, --timeout SECS    bound on connecting and on each reply; fractions\n"
"                        allowed, 0 for none (default 10)\n"
"  -r, --return          print only the reply's return value\n"
"  -p, --pretty          indent what is printed\n"
"      --qmp             the peer is a QMP monitor (else detected by its\n"
"                        greeting)\n"
"      --no-sync         skip the 0xFF + guest-sync-delimited resync\n"
"      --max-reply BYTES largest reply accepted, K/M/G allowed (default 80M)\n"
"  -h, --help            this text\n"
"  -V, --version         the version\n"
"\n"
"exit status: 0 success; 1 the agent answered with an error; 2 usage;\n"
"3 connection or I/O failure; 4 timeout; 5 protocol error.\n";

static void
usage(int status)
{
	fputs(usage_text, status ? stderr : stdout);
	exit(status);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"timeout", required_argument, NULL, 't'},
		{"return", no_argument, NULL, 'r'},
		{"pretty", no_argument, NULL, 'p'},
		{"qmp", no_argument, NULL, 'Q'},
		{"no-sync", no_argument, NULL, 'N'},
		{"max-reply", required_argument, NULL, 'M'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	struct conn c;
	struct buf req = {0};
	struct reply r;
	char name[128];
	int ch, s, batch;

	while ((ch = getopt_long(argc, argv, "+s:t:rphV", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			opt.addr = optarg;
			break;
		case 't':
			if (parse_seconds(optarg, &opt.timeout) < 0)
				die(EX_USAGE, "bad timeout '%s': expected seconds", optarg);
			break;
		case 'r':
			opt.ret = 1;
			break;
		case 'p':
			opt.pretty = 1;
			break;
		case 'Q':
			opt.qmp = 1;
			break;
		case 'N':
			opt.nosync = 1;
			break;
		case 'M':
			if (parse_size(optarg, &opt.maxreply) < 0 || opt.maxreply < 64)
				die(EX_USAGE, "bad --max-reply '%s': expected bytes "
				    "(at least 64)", optarg);
			break;
		case 'h':
			usage(0);
			break;
		case 'V':
			puts("qga " VERSION);
			return 0;
		default:
			usage(EX_USAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (!opt.addr && !(opt.addr = getenv("QGA_SOCKET")))
		opt.addr = "/tmp/qga.sock";

	batch = argc == 0 || (argc == 1 && !strcmp(argv[0], "-"));
	if (argc == 0 && isatty(0))
		usage(EX_USAGE);
	if (!batch) {
		if (argv[0][0] == '{') {
			if (argc > 1)
				die(EX_USAGE, "nothing may follow a JSON request");
			if ((s = check_request(argv[0], strlen(argv[0]), name,
			                       sizeof name)))
				quit(s);
			buf_str(&req, argv[0]);
		} else if ((s = build_request(&req, argv, argc)))
			quit(s);
		else
			snprintf(name, sizeof name, "%s", argv[0]);
	}

	if ((s = session_open(&c, opt.addr)))
		quit(s);
	if (batch)
		s = run_batch(&c);
	else if ((s = transact(&c, req.p, req.len, &r, name)))
		quit(s);
	else
		s = print_reply(&r, name, 0);
	conn_close(&c);
	free(req.p);
	if (fflush(stdout) == EOF || ferror(stdout))
		die(EX_IO, "write stdout:");
	return s;
}
