/* SPDX-License-Identifier: MIT */
/* qga: a client for the QEMU Guest Agent and QEMU's QMP monitor.
 *
 * One connection, resynchronised the way QEMU documents (0xFF, then
 * guest-sync-delimited with a fresh id), then requests and their replies.
 * See README and qga.1 for the interface; the exit statuses are part of it.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "json.h"

extern char **environ;

#define VERSION "0.2"
#define PRINTF(f, a) __attribute__((format(printf, f, a)))

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
static int exec_mode;                     /* our failures exit 255, as ssh's */
static volatile sig_atomic_t interrupted; /* by this signal */
static volatile sig_atomic_t signals;     /* how many came, never reset */
static int progress_shown; /* a progress line is on the terminal, unended */

/* The first signal is taken as a request to end in good order; a second
 * one, when that order waits on a guest that never answers, ends qga at
 * once, as the signal does by default. */
static void
on_signal(int sig)
{
	interrupted = sig;
	if (signals++) {
		signal(sig, SIG_DFL);
		raise(sig);
	}
}

/* SIGINT, SIGTERM and SIGHUP interrupt the wait under way, which then ends
 * through leave(), so that nothing is left in flight to harm the agent;
 * a second one ends qga there and then. A closed stdout is a write error,
 * not a death by SIGPIPE. */
static void
catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/* Holds those signals back (hold) or lets them in, for a step that must
 * not be left half done. */
static void
hold_signals(int hold)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(hold ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

/* Waits for input on fd, which has no deadline (a pipe), or a signal:
 * -1 then. The signals are held until ppoll lets them in, so that one
 * that comes just before the wait cannot leave it waiting for ever. */
static int
wait_input(int fd)
{
	struct pollfd p = {fd, POLLIN, 0};
	sigset_t none;
	int r;

	hold_signals(1);
	sigemptyset(&none);
	if (interrupted) {
		errno = EINTR;
		r = -1;
	} else
		r = ppoll(&p, 1, NULL, &none);
	hold_signals(0);
	return r;
}

/* Starts argv[0] here, found in PATH, with in and out (unless -1) as its
 * stdin and stdout: its pid, or -1. vfork: the child only execs (fork
 * would link in what threads need). It gets SIGPIPE's default, which
 * exec keeps. */
static pid_t
spawn(const char *const *argv, int in, int out)
{
	struct sigaction sa = {0}, was;
	pid_t pid;

	fflush(stdout);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGPIPE, &sa, &was);
	if ((pid = vfork()) == 0) {
		if ((in < 0 || dup2(in, 0) == 0) && (out < 0 || dup2(out, 1) == 1))
			execvp(argv[0], (char *const *)argv);
		_exit(errno == ENOENT ? 127 : 126);
	}
	sigaction(SIGPIPE, &was, NULL);
	return pid;
}

/* Waits for the child pid: its status as a shell tells it. */
static int
reap(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return 255;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Copies s[0..n) into out (size bytes, at least 1) with every control
 * character escaped: C0 and DEL as \xHH, C1 (U+0080 to U+009F, in UTF-8)
 * as \u00HH. A guest's strings are printed through here, so that none
 * can retitle, clear or rewrite the terminal or forge a line of output.
 * An escape is never cut; returns the length written. */
static size_t
escape(char *out, size_t size, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i, k, len = 0;
	char e[8];

	for (i = 0; i < n; i++) {
		if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] < 0xa0)
			k = (size_t)snprintf(e, sizeof e, "\\u%04x", p[++i]);
		else if (p[i] < 0x20 || p[i] == 0x7f)
			k = (size_t)snprintf(e, sizeof e, "\\x%02x", p[i]);
		else {
			e[0] = (char)p[i];
			k = 1;
		}
		if (len + k >= size)
			break;
		memcpy(out + len, e, k);
		len += k;
	}
	out[len] = 0;
	return len;
}

/* Formats a message once, into a buffer of its own, so that the failure
 * before it may be one of its arguments. A message ending in ':' gets the
 * system error appended, as in sbase's eprintf. Control characters are
 * escaped: a message may quote the guest (serve's notes are made here
 * too). */
static PRINTF(3, 0) void
vformat(char *out, size_t size, const char *fmt, va_list ap)
{
	int saved = errno;
	char buf[sizeof errmsg];
	size_t n;

	vsnprintf(buf, sizeof buf, fmt, ap);
	n = strlen(buf);
	if (n && buf[n - 1] == ':')
		snprintf(buf + n, sizeof buf - n, " %s", strerror(saved));
	escape(out, size, buf, strlen(buf));
	errno = saved;
}

/* Records a failure and returns its exit status. */
static PRINTF(2, 3) int
fail(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vformat(errmsg, sizeof errmsg, fmt, ap);
	va_end(ap);
	return status;
}

/* Prints a message without recording it. */
static PRINTF(1, 2) void
warn(const char *fmt, ...)
{
	char msg[sizeof errmsg];
	va_list ap;

	va_start(ap, fmt);
	vformat(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fflush(stdout);
	/* A progress line is ended first, so that the message has its own. */
	fprintf(stderr, "%sqga: %s\n", progress_shown ? "\n" : "", msg);
	progress_shown = 0;
}

/* Prints the recorded failure. */
static void
say(void)
{
	warn("%s", errmsg);
}

static void (*on_leave)(void); /* undoes what a command left in the guest */
static void session_end(void);

static _Noreturn void die(int status, const char *fmt, ...) PRINTF(2, 3);

/* Every exit goes through here: the hook, the session closed without
 * harm to the agent, then standard output, whose failure to be written is
 * a failure of the command. */
static _Noreturn void
leave(int status)
{
	void (*hook)(void) = on_leave;

	on_leave = NULL;
	if (hook)
		hook();
	session_end();
	if ((fflush(stdout) == EOF || ferror(stdout)) && !status) {
		clearerr(stdout);
		die(EX_IO, "write stdout:");
	}
	exit(status);
}

static _Noreturn void
quit(int status)
{
	say();
	leave(interrupted ? 128 + interrupted :
	      exec_mode && status != EX_USAGE ? 255 : status);
}

static _Noreturn void
die(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vformat(errmsg, sizeof errmsg, fmt, ap);
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

/* Copies s into out, cut to fit. */
static void
copy(char *out, size_t size, const char *s)
{
	size_t n = strnlen(s, size - 1);

	memcpy(out, s, n);
	out[n] = 0;
}

static void *
xrealloc(void *p, size_t n)
{
	if (!(p = realloc(p, n ? n : 1)))
		die(EX_IO, "out of memory (%zu bytes)", n);
	return p;
}

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		die(EX_IO, "out of memory (%zu bytes)", strlen(s) + 1);
	return p;
}

/* Writes all of p[0..n) to fd. */
static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n) {
		if ((w = write(fd, p, n)) < 0 && errno == EINTR && !interrupted)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Options and numbers                                                 */
/* ------------------------------------------------------------------ */

static struct {
	const char *addr;
	long long timeout;   /* milliseconds; 0: none */
	size_t maxreply;
	unsigned long long maxsize; /* the most a get, cat or get -r takes; 0: no bound */
	int timeout_set;     /* -t was given: it overrides every default */
	int addr_default;    /* neither -s nor QGA_SOCKET said where */
	int qmp, nosync, ret, pretty, json;
} opt = {
	NULL, 10000, 80 << 20, 0, 0, 0, 0, 0, 0, 0, 0
};

/* Parses the whole number at s in base, at most max, leaving *end after
 * its digits. Returns -1 when s does not start with a digit, or for a
 * number over max. */
static long long
num(const char *s, char **end, int base, long long max)
{
	long long v;
	char *e;

	if (*s < '0' || *s > '9') {
		if (end)
			*end = (char *)s;
		return -1;
	}
	errno = 0;
	v = strtoll(s, &e, base);
	if (end)
		*end = e;
	return errno == ERANGE || v > max ? -1 : v;
}

/* Parses "N" or "N.FFF" seconds into milliseconds. */
static int
parse_seconds(const char *s, long long *ms)
{
	char *end;
	long long n;
	int k;

	if ((n = num(s, &end, 10, 1000000000)) < 0)
		return -1;
	*ms = n * 1000;
	if (*end == '.') {
		for (k = 100, end++; *end >= '0' && *end <= '9'; end++, k /= 10)
			*ms += k * (*end - '0');
	}
	return *end ? -1 : 0;
}

/* Parses a byte count with an optional K, M or G suffix, up to 1 TiB. */
static int
parse_bytes(const char *s, unsigned long long *v)
{
	char *end;
	long long n;
	int shift = 0;

	if ((n = num(s, &end, 10, 1LL << 40)) < 0)
		return -1;
	if (*end && !end[1] && strchr("KMG", *end))
		shift = *end == 'K' ? 10 : *end == 'M' ? 20 : 30;
	else if (*end)
		return -1;
	if (n > (1LL << 40) >> shift)
		return -1;
	*v = (unsigned long long)n << shift;
	return 0;
}

/* The same, for a size that memory holds. */
static int
parse_size(const char *s, size_t *v)
{
	unsigned long long n;

	if (parse_bytes(s, &n) < 0 || n > SIZE_MAX)
		return -1;
	*v = (size_t)n;
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
	int fixed;  /* p is not malloc's: it is copied when it must grow */
};

static void
buf_need(struct buf *b, size_t n)
{
	char *p;

	if (b->cap - b->len >= n)
		return;
	b->cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n + 256;
	if (b->fixed) {
		p = memcpy(xrealloc(NULL, b->cap), b->p, b->len);
		b->p = p;
		b->fixed = 0;
	} else
		b->p = xrealloc(b->p, b->cap);
}

static void
buf_add(struct buf *b, const void *s, size_t n)
{
	if (!n)
		return;
	buf_need(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* Reads fd to its end, refusing more than max bytes. */
static int
read_all(int fd, struct buf *b, size_t max)
{
	ssize_t n;

	for (;;) {
		buf_need(b, 65536);
		if ((n = read(fd, b->p + b->len, b->cap - b->len)) < 0 &&
		    errno == EINTR)
			continue;
		if (n <= 0)
			return (int)n;
		b->len += (size_t)n;
		if (b->len > max)
			return -2;
	}
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
	int up;                /* opened, and not yet closed */
	int fd;
	char name[300];        /* the address, as messages show it */
	struct buf in;         /* bytes received and not yet consumed */
	size_t off;            /* the first byte not consumed */
	struct json_scan sc;
	int qmp;               /* the peer is a QMP monitor */
	int dirty;             /* a timeout left replies in flight: resync */
	int fresh;             /* nothing received yet: a greeting may come */
	int sock;              /* a socket, which blocks; else it is polled */
	int partial;           /* a request was cut short: its rest never comes */
	int owed;              /* requests sent whose replies are not read */
	long long rcvto, sndto; /* the socket's timeouts, in ms; -1: not set */
	long long timeout;     /* for connecting and resynchronising */
	long long tmo;         /* the timeout of the wait under way, for messages */
	/* The first 64 KiB received go here: a short exchange then needs
	 * no allocation at all, which a whole process's ping feels. Last,
	 * so that resetting the rest does not touch its pages. */
	char first[65536];
};

/* The deadline of a wait of timeout ms on c, which its messages name. */
static long long
conn_deadline(struct conn *c, long long timeout)
{
	c->tmo = timeout;
	return deadline_in(timeout);
}

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
		return fail(EX_IO, "%s: interrupted", c->name);
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
static int
unix_trusted(int fd, const char *path)
{
	char dir[sizeof ((struct sockaddr_un *)0)->sun_path], who[64];
	struct ucred cr;
	socklen_t len = sizeof cr;
	struct passwd *pw;
	char *slash;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return fail(EX_IO, "%s: who listens:", path);
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
	return fail(EX_IO, "%s: not used: it is %s, where others can write (only root's or "
	            "your own is)", path, who);
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

/* Resolves HOST and PORT as the system does: /etc/hosts, then DNS as
 * /etc/resolv.conf says. localhost is loopback even where neither knows
 * it, as RFC 6761 asks. *res is for freeaddrinfo. */
static int
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

static int
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
static void
conn_init(struct conn *c, long long timeout)
{
	memset(c, 0, offsetof(struct conn, first));
	c->in = (struct buf){c->first, 0, sizeof c->first, 1};
	c->up = 1;
	c->fd = -1;
	c->timeout = timeout;
	c->fresh = 1;
}

static int
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
		return fail(EX_USAGE, "%s: not a socket or character device", addr);
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
static void
conn_shut(struct conn *c)
{
	char sink[16384];

	if (!c->up)
		return;
	c->up = 0;
	if (c->fd >= 0 && c->sock && (c->owed || c->partial)) {
		ioctl(c->fd, FIONBIO, &(int){1});
		if (c->partial)
			(void)!write(c->fd, "\xff", 1);
		shutdown(c->fd, SHUT_RD);
		while (read(c->fd, sink, sizeof sink) > 0)
			;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static void
conn_close(struct conn *c)
{
	conn_shut(c);
	if (!c->in.fixed)
		free(c->in.p);
	c->in = (struct buf){0};
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
		if (interrupted) {
			c->dirty = 1;
			return fail(EX_IO, "%s: interrupted", c->name);
		}
	if (r < 0)
		return fail(EX_IO, "poll %s:", c->name);
	if (r == 0) {
		c->dirty = 1;
		return fail(EX_TIMEOUT, "%s: no %s within %s", c->name, what,
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
	long long left, *cur = out ? &c->sndto : &c->rcvto;
	struct timeval tv;

	if (!c->sock)
		return wait_fd(c, out ? POLLOUT : POLLIN, deadline, what);
	left = deadline < 0 ? 0 : deadline - now_ms();
	if (interrupted) {
		c->dirty = 1;
		return fail(EX_IO, "%s: interrupted", c->name);
	}
	if (deadline >= 0 && left <= 0) {
		c->dirty = 1;
		return fail(EX_TIMEOUT, "%s: no %s within %s", c->name, what,
		            seconds(c->tmo));
	}
	if (*cur < 0 || left > *cur + 10 || left < *cur - 10) {
		tv.tv_sec = (time_t)(left / 1000);
		tv.tv_usec = (suseconds_t)(left % 1000 * 1000);
		setsockopt(c->fd, SOL_SOCKET, out ? SO_SNDTIMEO : SO_RCVTIMEO,
		           &tv, sizeof tv);
		*cur = left;
	}
	return 0;
}

static int
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
		return fail(EX_IO, "%s: the VMM answered '%s' to CONNECT %u, not OK (is the "
		            "guest's agent listening on vsock port %u?)", c->name,
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
		/* A reply is never there the moment it is asked for: wait first. */
		if ((r = conn_wait(c, 0, deadline, what)))
			return r;
		n = read(c->fd, c->in.p + c->in.len, room);
		if (n > 0) {
			c->in.len += (size_t)n;
			continue;
		}
		if (n == 0)
			return fail(EX_IO, "%s: connection closed while waiting "
			             "for %s", c->name, what);
		if (errno != EAGAIN && errno != EINTR)
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
 * deep, the object, its members and their values, or three when they fit
 * (see reply_parse). */
struct reply {
	const char *js;
	size_t len;
	struct json_tok tok[64];
	int ret, err, id;
};

/* Parses buf[start..end) as a reply object; returns 0, or an exit status
 * if it is not JSON or not an object. */
/* A value's text as it stands in js, a string's quotes included. */
static const char *
tok_text(const char *js, const struct json_tok *t, size_t *n)
{
	size_t q = t->type == JSON_STRING;

	*n = t->end - t->start + 2 * q;
	return js + t->start - q;
}

static int
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
		return fail(EX_PROTO, "%s: reply has too many members", who);
	if (n < 0)
		return fail(EX_PROTO, "%s: invalid JSON in reply at offset %zu: "
		            "%s", who, p.pos, excerpt(r->js, r->len));
	if (r->tok[0].type != JSON_OBJECT)
		return fail(EX_PROTO, "%s: reply is not an object: %s",
		            who, excerpt(r->js, r->len));
	r->ret = json_get(r->js, r->tok, 0, "return");
	r->err = json_get(r->js, r->tok, 0, "error");
	r->id = json_get(r->js, r->tok, 0, "id");
	return 0;
}

static int
reply_parse(struct conn *c, struct reply *r, size_t start, size_t end)
{
	return reply_text(r, c->in.p + start, end - start, c->name);
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

	member_str(r->js, e, "class", cls, sizeof cls);
	/* qga serve's own: the agent behind it is out of reach, or late. */
	return fail(!strcmp(cls, "AgentUnavailable") ? EX_IO : !strcmp(cls, "AgentTimeout") ?
	            EX_TIMEOUT : EX_AGENT, "%s: %s: %s", name, cls,
	            member_str(r->js, e, "desc", desc, sizeof desc));
}

/* ------------------------------------------------------------------ */
/* Resynchronisation and QMP                                           */
/* ------------------------------------------------------------------ */

/* An id for the sync that no other client's sync has: the clock's
 * nanoseconds mixed with where this process's stack lies, which address
 * space randomisation moves (the vDSO's clock costs no system call). */
static unsigned
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
		if (r->ret >= 0 || r->err >= 0) {
			c->owed -= c->owed > 0;
			return 0;
		}
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

/* For an agent that refuses guest-sync-delimited: guest-sync with a fresh
 * id, everything before the reply returning it skipped. When that is
 * refused too, no sync at all, which is said once. */
static int
sync_plain(struct conn *c, long long deadline)
{
	static int said;
	unsigned id = random_id();
	struct reply r;
	char req[128];
	long long v;
	int n, s;

	n = snprintf(req, sizeof req, "{\"execute\":\"guest-sync\","
	             "\"arguments\":{\"id\":%u},\"id\":%u}", id, id);
	if ((s = conn_write(c, req, (size_t)n, deadline)))
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
		                   &got))) {
			/* Silence from the start: say what it usually means. */
			if (s == EX_TIMEOUT && c->fresh && !interrupted)
				return fail(s, "no answer from a guest agent at %s within "
				            "%s: is qemu-guest-agent running in the guest?%s",
				            c->name, seconds(c->tmo), c->sock ? " another "
				            "client (libvirtd, qga serve) may hold this socket" : "");
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
static int
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
static int
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
	putc('\n', stdout);
	while (depth-- > 0)
		fwrite("  ", 1, 2, stdout);
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
				putc(c, stdout);
				putc(s[j], stdout);
				i = j;
				break;
			}
			putc(c, stdout);
			indent(++depth);
			break;
		case '}': case ']':
			indent(--depth);
			putc(c, stdout);
			break;
		case ',':
			putc(',', stdout);
			indent(depth);
			break;
		case ':':
			fwrite(": ", 1, 2, stdout);
			break;
		default:
			putc(c, stdout);
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
	putc('\n', stdout);
}

/* Prints the reply, or with -r its return value. */
static void
print_result(const struct reply *r)
{
	const char *v;
	size_t n;

	if (opt.ret && r->ret >= 0) {
		v = tok_text(r->js, &r->tok[r->ret], &n);
		print_json(v, n);
	} else
		print_json(r->js, r->len);
}

/* Prints a reply as asked; returns 0, or EX_AGENT for an error reply. */
static int
print_reply(const struct reply *r, const char *name, int batch)
{
	int s = 0;

	if (r->err >= 0) {
		s = reply_error(r, name);
		say();
		if (!batch)
			return s;
	}
	print_result(r);
	return s;
}

/* ------------------------------------------------------------------ */
/* Raw commands and batches                                            */
/* ------------------------------------------------------------------ */

static int raw_request(struct conn *c, const struct buf *req, const char *name,
                       int named, int batch);

/* Turns one batch line into a request: a JSON object, or a name and
 * key=value words, where a JSON value may hold spaces; *named says which. */
static int
line_request(struct buf *b, char *line, char *name, size_t size, int *named)
{
	char *words[256], *p = line;
	struct json_scan sc;
	int n = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	*named = *p != '{';
	if (!*named) {
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
	copy(name, size, words[0]);
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
		/* The replies so far are shown before waiting for more input. */
		if (fflush(stdout) < 0)
			die(EX_IO, "write stdout:");
		n = read(0, l->b.p + l->b.len, l->b.cap - l->b.len - 1);
		if (interrupted)
			die(EX_IO, "stdin line %zu: interrupted", l->lineno + 1);
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
	char name[128], *p;
	int s, named, status = 0;

	while ((p = next_line(&in))) {
		p += strspn(p, " \t");
		if (!*p || *p == '#')
			continue;
		if ((s = line_request(&req, p, name, sizeof name, &named)))
			die(s, "stdin line %zu: %s", in.lineno, errmsg);
		if (raw_request(c, &req, name, named, 1))
			status = EX_AGENT;
	}
	free(in.b.p);
	free(req.p);
	return status;
}

/* ------------------------------------------------------------------ */
/* Many targets                                                        */
/* ------------------------------------------------------------------ */

/* With several targets the command runs on each in a child process of
 * its own, forked when it first needs the agent: every built-in works as
 * it does on one, and a dead agent costs its timeout to its own child
 * alone. The parent relays the children's output a whole line at a time,
 * tagged with the target. */
static struct {
	const char **addr;
	int n, max, notag, quiet, json;
	int reads_stdin;  /* the command reads stdin: each child gets a copy */
	struct buf *held; /* when not NULL, where each target's stdout goes */
	const char *tag;  /* in a child: its target, and its index */
	int index;
} many = {NULL, 0, 64, 0, 0, 0, 0, NULL, NULL, 0};

struct target {
	const char *name;
	pid_t pid;
	int fd[3];          /* its stdout and stderr, and its stdin */
	size_t fed;         /* how much of stdin it has been given */
	struct buf part[2]; /* what came after the last newline of each */
	struct buf js;      /* -j: its replies, held until it ends */
	char err[256];      /* its last message */
};

/* The most of stdin the parent holds for its children, and of a line. */
#define MANY_STDIN_MAX (256 << 20)
#define MANY_LINE_MAX 65536

static void
add_target(const char *a)
{
	many.addr = xrealloc(many.addr, (size_t)(many.n + 1) * sizeof *many.addr);
	many.addr[many.n++] = a;
}

/* --targets FILE: an address a line, its first word; # starts a comment. */
static void
read_targets(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[4096], *p;

	if (!f)
		die(EX_IO, "open %s:", path);
	while (fgets(line, sizeof line, f)) {
		p = line + strspn(line, " \t");
		p[strcspn(p, " \t\r\n#")] = 0;
		if (*p)
			add_target(xstrdup(p));
	}
	fclose(f);
}

/* For what works on one agent alone. */
static void
one_target(const char *what)
{
	if (many.n > 1)
		die(EX_USAGE, "%s works on one agent: give one -s", what);
}

/* Starts t's child, which returns 1 here; the parent gets 0, or -1 when
 * no child could be started now. */
static int
start_target(struct target *t, struct target *all, int n)
{
	int p[6] = {-1, -1, -1, -1, -1, -1}, i, k;

	fflush(stdout);
	if (pipe2(p, O_CLOEXEC) || pipe2(p + 2, O_CLOEXEC) ||
	    (many.reads_stdin && pipe2(p + 4, O_CLOEXEC)) ||
	    (t->pid = fork()) < 0) {
		for (i = 0; i < 6; i++)
			if (p[i] >= 0)
				close(p[i]);
		return -1;
	}
	if (t->pid == 0) {
		/* Signals reach the children through the parent alone, once. */
		setpgid(0, 0);
		dup2(p[1], 1);
		dup2(p[3], 2);
		if (p[4] >= 0)
			dup2(p[4], 0);
		for (i = 0; i < 6; i++)
			if (p[i] >= 0)
				close(p[i]);
		for (i = 0; i < n; i++)
			for (k = 0; all[i].pid > 0 && k < 3; k++)
				if (all[i].fd[k] >= 0)
					close(all[i].fd[k]);
		many.tag = opt.addr = t->name;
		many.index = (int)(t - all);
		if (many.json)
			opt.pretty = 0;
		return 1;
	}
	close(p[1]);
	close(p[3]);
	if (p[4] >= 0) {
		fcntl(p[5], F_SETFL, O_NONBLOCK);
		close(p[4]);
	}
	t->fd[0] = p[0];
	t->fd[1] = p[2];
	t->fd[2] = p[5];
	return 0;
}

/* One line of t's stdout (k 0) or stderr (1), without its newline. */
static void
relay_line(struct target *t, int k, const char *s, size_t n)
{
	const char *m = s;

	if (k && n > 5 && !memcmp(s, "qga: ", 5))
		m += 5;
	if (k)
		snprintf(t->err, sizeof t->err, "%.*s", (int)(n - (size_t)(m - s)), m);
	if (k == 0 && (many.json || many.held)) {
		buf_add(&t->js, s, n);
		buf_add(&t->js, "\n", 1);
		return;
	}
	if (!many.notag)
		fprintf(k ? stderr : stdout, "%s\t", t->name);
	fwrite(s, 1, n, k ? stderr : stdout);
	putc('\n', k ? stderr : stdout);
}

/* Reads what t's child wrote on its stdout (k 0) or stderr (1) and relays
 * each whole line; a line longer than MANY_LINE_MAX goes in pieces. At the
 * end, the last line goes too, ended, and the descriptor is closed. */
static void
relay(struct target *t, int k)
{
	struct buf *b = &t->part[k];
	size_t off = 0;
	ssize_t n;
	char *nl;

	buf_need(b, 4096);
	if ((n = read(t->fd[k], b->p + b->len, b->cap - b->len)) < 0 && errno == EINTR)
		return;
	b->len += n > 0 ? (size_t)n : 0;
	while ((nl = memchr(b->p + off, '\n', b->len - off))) {
		relay_line(t, k, b->p + off, (size_t)(nl - b->p) - off);
		off = (size_t)(nl + 1 - b->p);
	}
	if ((n <= 0 || b->len - off >= MANY_LINE_MAX) && b->len > off) {
		relay_line(t, k, b->p + off, b->len - off);
		off = b->len;
	}
	memmove(b->p, b->p + off, b->len - off);
	b->len -= off;
	if (n <= 0) {
		close(t->fd[k]);
		t->fd[k] = -1;
		free(b->p);
		*b = (struct buf){0};
	}
}

/* Gives t's child more of stdin, in, or closes its stdin once it has it
 * all, or when it reads no more. */
static void
feed(struct target *t, const struct buf *in)
{
	ssize_t n = 0;

	if (t->fed < in->len &&
	    (n = write(t->fd[2], in->p + t->fed, in->len - t->fed)) > 0)
		t->fed += (size_t)n;
	if (t->fed >= in->len || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		close(t->fd[2]);
		t->fd[2] = -1;
	}
}

/* Ends t's child and returns its status; with -j prints its replies, each
 * with its target and that status, or else one object that says why
 * there were none. */
static int
end_target(struct target *t)
{
	struct buf o = {0};
	char *p = t->js.p, *nl;
	int s = reap(t->pid);

	t->pid = 0;
	if (many.held) {
		many.held[many.index] = t->js;
		return s;
	}
	while (many.json) {
		nl = p ? memchr(p, '\n', t->js.len - (size_t)(p - t->js.p)) : NULL;
		if (!nl && o.len)
			break;
		buf_str(&o, "{\"target\":");
		buf_jstr(&o, t->name, strlen(t->name));
		buf_need(&o, 32);
		o.len += (size_t)snprintf(o.p + o.len, 32, ",\"status\":%d", s);
		if (nl) {
			buf_str(&o, is_json(p, (size_t)(nl - p)) ? ",\"reply\":" : ",\"output\":");
			if (is_json(p, (size_t)(nl - p)))
				buf_add(&o, p, (size_t)(nl - p));
			else
				buf_jstr(&o, p, (size_t)(nl - p));
			p = nl + 1;
		} else if (s && *t->err) {
			buf_str(&o, ",\"error\":");
			buf_jstr(&o, t->err, strlen(t->err));
		}
		buf_str(&o, "}\n");
		if (!nl)
			break;
	}
	if (o.len)
		fwrite(o.p, 1, o.len, stdout);
	free(o.p);
	free(t->js.p);
	return s;
}

/* Runs the rest of the command in a child per target, at most -P at once.
 * Returns -1 in each child; in the parent, the highest status among
 * theirs, as pdsh does, after a line that names the targets that failed. */
static int
run_targets(void)
{
	struct target *t;
	struct pollfd *pfd;
	struct buf in = {0};
	char bad[512] = "";
	int *who, i, j, k, n, next = 0, running = 0, nbad = 0, worst = 0, sig = 0, broken = 0;
	void (*hook)(void);

	if (many.reads_stdin && (k = read_all(0, &in, MANY_STDIN_MAX)) < 0) {
		if (k == -2)
			die(EX_USAGE, "stdin is over %d MiB: for several targets, "
			    "give a file", MANY_STDIN_MAX >> 20);
		die(EX_IO, "read stdin:");
	}
	t = xrealloc(NULL, (size_t)many.n * sizeof *t);
	memset(t, 0, (size_t)many.n * sizeof *t);
	k = 3 * (many.max < many.n ? many.max : many.n);
	pfd = xrealloc(NULL, (size_t)k * sizeof *pfd);
	who = xrealloc(NULL, (size_t)k * sizeof *who);
	for (i = 0; i < many.n; i++)
		t[i].name = many.addr[i];
	/* What a command left to undo in a guest is its children's to undo. */
	hook = on_leave;
	on_leave = NULL;
	for (;;) {
		while (!sig && next < many.n && running < many.max) {
			if ((k = start_target(&t[next], t, next)) > 0) {
				on_leave = hook;
				free(t);
				free(pfd);
				free(who);
				free(in.p);
				return -1;
			}
			if (k < 0 && !running)
				die(EX_IO, "start qga for %s:", t[next].name);
			if (k < 0)
				break;
			next++;
			running++;
		}
		if (!running)
			break;
		for (i = n = 0; i < next; i++)
			for (k = 0; k < 3; k++) {
				if (k == 2 && t[i].fd[2] >= 0 && t[i].fed >= in.len)
					feed(&t[i], &in);
				if (t[i].pid > 0 && t[i].fd[k] >= 0) {
					pfd[n] = (struct pollfd){t[i].fd[k], k < 2 ? POLLIN : POLLOUT, 0};
					who[n++] = 3 * i + k;
				}
			}
		if (poll(pfd, (nfds_t)n, -1) < 0 && errno != EINTR)
			die(EX_IO, "poll:");
		if ((interrupted || broken) && !sig) {
			sig = interrupted ? interrupted : SIGTERM;
			for (i = 0; i < next; i++)
				if (t[i].pid > 0)
					kill(t[i].pid, sig);
		}
		for (j = 0; j < n; j++) {
			i = who[j] / 3;
			if (t[i].pid <= 0 || !pfd[j].revents)
				continue;
			if (who[j] % 3 == 2)
				feed(&t[i], &in);
			else
				relay(&t[i], who[j] % 3);
			if (t[i].fd[0] >= 0 || t[i].fd[1] >= 0)
				continue;
			if (t[i].fd[2] >= 0)
				close(t[i].fd[2]);
			running--;
			many.index = i;
			if (!(k = end_target(&t[i])))
				continue;
			worst = k > worst ? k : worst;
			if (nbad++ < 10)
				snprintf(bad + strlen(bad), sizeof bad - strlen(bad), "%s%s (%d)",
				         nbad > 1 ? ", " : "", t[i].name, k);
		}
		broken |= fflush(stdout) == EOF;
	}
	free(t);
	free(pfd);
	free(who);
	free(in.p);
	if (broken)
		die(EX_IO, "write stdout:");
	if (nbad && !many.quiet)
		warn("%d of %d failed: %s%s", nbad, many.n, bad, nbad > 10 ? ", ..." : "");
	return sig ? 128 + sig : worst;
}

/* Goes on in a child per target when there are several. */
static void
fan_out(void)
{
	int s;

	if (many.n > 1 && !many.tag && (s = run_targets()) >= 0)
		leave(s);
}

/* ------------------------------------------------------------------ */
/* Built-in commands: plumbing                                         */
/* ------------------------------------------------------------------ */

/* The session the built-in commands share, opened on first use. */
static struct conn sess;

static void
need_session(void)
{
	int s;

	if (!sess.up)
		fan_out();
	if (!sess.up && (s = session_open(&sess, opt.addr, opt.timeout))) {
		if (opt.addr_default && s == EX_IO)
			fail(s, "%s (the default address: give the agent's with -s ADDR "
			     "or QGA_SOCKET)", errmsg);
		quit(s);
	}
}

/* At exit, the memory and the descriptor go with the process, unless a
 * reply is still owed. */
static void
session_end(void)
{
	if (sess.owed || sess.partial)
		conn_shut(&sess);
}

/* The agent's commands that older agents lack, and the version (QEMU's
 * schema's "since") that has them; NULL: Windows guests only. */
static const char *const newer[] = {
	"guest-get-cpustats", "7.1", "guest-get-diskstats", "7.1",
	"guest-network-get-route", "9.1", "guest-get-load", "10.0",
	"guest-get-devices", NULL,
};
#define NNEWER (sizeof newer / sizeof *newer)

/* Why an agent may lack name, or NULL when qga knows no reason. */
static const char *
missing_why(const char *name)
{
	static char why[64];
	size_t i;

	for (i = 0; i < NNEWER; i += 2)
		if (!strcmp(newer[i], name)) {
			if (!newer[i + 1])
				return "Windows guests only";
			snprintf(why, sizeof why, "qemu-ga %s on", newer[i + 1]);
			return why;
		}
	return NULL;
}

static int
disabled(const char *name)
{
	return fail(EX_AGENT, "%s is disabled in the guest agent (by its "
	            "configuration, or while frozen)", name);
}

/* Records an error reply, saying plainly when the command is disabled or
 * is one an older agent lacks. */
static int
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
static void
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
static void
call_for(const struct buf *req, const char *name, struct reply *r,
         long long timeout)
{
	call_any(req, name, r, timeout);
	if (r->err >= 0)
		quit(agent_error(r, name));
}

static void
call(const struct buf *req, const char *name, struct reply *r)
{
	call_for(req, name, r, opt.timeout);
}

/* The reply timeout of a command whose default is dflt: -t overrides. */
static long long
timeout_or(long long dflt)
{
	return opt.timeout_set ? opt.timeout : dflt;
}

/* Requests are built as {"execute":NAME,"arguments":{...}}. */
static void
req_begin(struct buf *b, const char *name)
{
	b->len = 0;
	buf_str(b, "{\"execute\":\"");
	buf_str(b, name);
	buf_str(b, "\",\"arguments\":{");
}

static void
req_key(struct buf *b, const char *key)
{
	if (b->p[b->len - 1] != '{')
		buf_add(b, ",", 1);
	buf_jstr(b, key, strlen(key));
	buf_add(b, ":", 1);
}

static void
req_str(struct buf *b, const char *key, const char *val)
{
	req_key(b, key);
	buf_jstr(b, val, strlen(val));
}

static void
req_int(struct buf *b, const char *key, long long v)
{
	char n[24];

	snprintf(n, sizeof n, "%lld", v);
	req_key(b, key);
	buf_str(b, n);
}

static void
req_end(struct buf *b)
{
	buf_str(b, "}}");
}

/* A reply's return value, parsed whole. */
struct doc {
	const char *js;
	struct json_tok *t;
};

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
static int
doc_parse(struct doc *d, const char *js, size_t len, const char *shape, const char *name)
{
	struct json_parser p;
	int n;

	/* One pass for the usual small value; a large one is counted first. */
	d->js = js;
	d->t = xrealloc(NULL, 64 * sizeof *d->t);
	json_init(&p);
	if ((n = json_parse(&p, js, len, d->t, 64)) == JSON_ENOMEM) {
		json_init(&p);
		n = json_parse(&p, js, len, NULL, 0);
		if (n > 0 && (size_t)n > DOC_TOKENS(len))
			return fail(EX_PROTO, "%s: a reply of %d values in %zu bytes, more "
			            "than qga takes", name, n, len);
		if (n > 0) {
			d->t = xrealloc(d->t, (size_t)n * sizeof *d->t);
			json_init(&p);
			n = json_parse(&p, js, len, d->t, (unsigned)n);
		}
	}
	if (n <= 0)
		return fail(EX_PROTO, "%s: invalid JSON in reply", name);
	shape_where[0] = 0;
	if (shape_at(d, 0, shape) < 0)
		return fail(EX_PROTO, "%s: unexpected reply: return%s is not %s", name,
		            shape_where, shape_want == 's' ? "a string" :
		            shape_want == 'i' ? "an integer" : shape_want == 'n' ? "a number" :
		            shape_want == 'b' ? "true or false" : shape_want == '[' ?
		            "an array" : "an object");
	return 0;
}

/* Parses the return value of the reply r to the command name, which must
 * have the shape: a reply of another shape ends qga. */
static void
doc_reply(struct doc *d, const struct reply *r, const char *name, const char *shape)
{
	const struct json_tok *v = &r->tok[r->ret];
	size_t q = v->type == JSON_STRING;
	int s;

	if ((s = doc_parse(d, r->js + v->start - q, v->end - v->start + 2 * q, shape, name)))
		quit(s);
}

/* The shapes of the replies that more than one command reads. */
#define SHAPE_INFO "{version:s,supported_commands:[{name:s,enabled:b,success-response:b}]}"
#define SHAPE_OSINFO "{kernel-release:s,kernel-version:s,machine:s,id:s,name:s," \
	"pretty-name:s,version:s,version-id:s,variant:s,variant-id:s}"
#define SHAPE_EXEC "{pid:i}"
#define SHAPE_STATUS "{exited:b,exitcode:i,signal:i,out-data:s,err-data:s," \
	"out-truncated:b,err-truncated:b}"

static int
dget(const struct doc *d, int obj, const char *key)
{
	return obj < 0 ? -1 : json_get(d->js, d->t, obj, key);
}

/* The string at token i, unescaped into a new buffer; "" if it is not one. */
static char *
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
static char *
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

static long long
dint(const struct doc *d, int i, long long dflt)
{
	long long v;

	return i >= 0 && !json_int(d->js, &d->t[i], &v) ? v : dflt;
}

static int
dtrue(const struct doc *d, int i)
{
	return i >= 0 && d->t[i].type == JSON_TRUE;
}

/* Iterates over the elements of the array token arr. */
#define each(d, arr, i, k) \
	for ((k) = 0, (i) = (arr) + 1; (arr) >= 0 && \
	     (unsigned)(k) < (d)->t[arr].size; (k)++, (i) = (int)(d)->t[i].next)

/* A copy of s with its control characters escaped (see escape). */
static char *
escaped(const char *s)
{
	size_t n = strlen(s);
	char *e = xrealloc(NULL, 4 * n + 1);

	escape(e, 4 * n + 1, s, n);
	return e;
}

/* Prints a line of text that holds the guest's words, escaped. */
static PRINTF(1, 2) void
text_line(const char *fmt, ...)
{
	va_list ap;
	char *s, *e;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	s = xrealloc(NULL, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	puts(e = escaped(s));
	free(s);
	free(e);
}

/* Rows of text printed as aligned columns, the last one unpadded. */
struct table {
	char **cell;
	int ncol, n, cap;
};

static void
table_cell(struct table *t, const char *s)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16 * t->ncol;
		t->cell = xrealloc(t->cell, (size_t)t->cap * sizeof *t->cell);
	}
	t->cell[t->n++] = escaped(s);
}

static void
table_add(struct table *t, ...)
{
	va_list ap;
	int i;

	va_start(ap, t);
	for (i = 0; i < t->ncol; i++)
		table_cell(t, va_arg(ap, char *));
	va_end(ap);
}

static void
table_print(struct table *t)
{
	int w[12] = {0}, i, j, last, len;
	char **row;

	for (i = 0; i < t->n; i++)
		if ((len = (int)strlen(t->cell[i])) > w[i % t->ncol])
			w[i % t->ncol] = len;
	for (i = 0; i < t->n; i += t->ncol) {
		row = t->cell + i;
		for (last = t->ncol - 1; last > 0 && !*row[last]; last--)
			;
		for (j = 0; j < t->ncol; j++) {
			if (j < last)
				printf("%-*s  ", w[j], row[j]);
			else if (j == last)
				printf("%s\n", row[j]);
			free(row[j]);
		}
	}
	free(t->cell);
}

/* Base64, as the agent's buf-b64, input-data and out-data use it. */
static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
b64_encode(struct buf *b, const unsigned char *s, size_t n)
{
	char *o;
	size_t i;

	buf_need(b, (n + 2) / 3 * 4);
	o = b->p + b->len;
	for (i = 0; i + 2 < n; i += 3) {
		*o++ = b64[s[i] >> 2];
		*o++ = b64[(s[i] & 3) << 4 | s[i + 1] >> 4];
		*o++ = b64[(s[i + 1] & 15) << 2 | s[i + 2] >> 6];
		*o++ = b64[s[i + 2] & 63];
	}
	if (i < n) {
		*o++ = b64[s[i] >> 2];
		*o++ = b64[(s[i] & 3) << 4 | (i + 1 < n ? s[i + 1] >> 4 : 0)];
		*o++ = i + 1 < n ? b64[(s[i + 1] & 15) << 2] : '=';
		*o++ = '=';
	}
	b->len = (size_t)(o - b->p);
}

/* Decodes the base64 string token t into b; -1 if it is not base64. Two
 * characters at a time are looked up in a table built on first use. */
static int
b64_decode(struct buf *b, const char *js, const struct json_tok *t)
{
	/* A character's six bits, already in their place among a group's
	 * 24, by its place in the group; bit 24 marks a non-base64 one. */
	static uint32_t dec[4][256];
	const unsigned char *s = (const unsigned char *)js;
	uint32_t x, y;
	unsigned acc = 0;
	int bits = 0, c, k;
	uint64_t w;
	size_t i;
	char *o;

	if (!dec[0][0]) {
		for (c = 0; c < 256; c++)
			for (k = 0; k < 4; k++)
				dec[k][c] = strchr(b64, c) && c ?
				    (uint32_t)(strchr(b64, c) - b64) << (18 - 6 * k) : 1u << 24;
	}
	b->len = 0;
	buf_need(b, (t->end - t->start) / 4 * 3 + 8);
	o = b->p;
	/* Eight characters make six bytes, stored as eight with the next two
	 * overwritten later: one store in place of six. */
	for (i = t->start; i + 8 <= t->end; i += 8, o += 6) {
		x = dec[0][s[i]] | dec[1][s[i + 1]] | dec[2][s[i + 2]] | dec[3][s[i + 3]];
		y = dec[0][s[i + 4]] | dec[1][s[i + 5]] | dec[2][s[i + 6]] |
		    dec[3][s[i + 7]];
		if ((x | y) >> 24)
			break; /* padding, or not base64: the loop below tells */
		w = (uint64_t)x << 40 | (uint64_t)y << 16;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		w = __builtin_bswap64(w);
#endif
		memcpy(o, &w, 8);
	}
	for (; i < t->end && js[i] != '='; i++) {
		if ((x = dec[3][s[i]]) >> 24)
			return -1;
		acc = acc << 6 | x;
		if ((bits += 6) >= 8) {
			bits -= 8;
			*o++ = (char)(acc >> bits);
		}
	}
	b->len = (size_t)(o - b->p);
	return 0;
}

/* The commands of guest-info's reply r (query-commands' for qmp) as
 * ",a,!b,...,", a disabled one marked with "!", into names. */
static void
command_list(const struct reply *r, int qmp, struct buf *names)
{
	struct doc d;
	char *n;
	int l, i, k;

	buf_add(names, ",", 1);
	if (r->ret >= 0) {
		doc_reply(&d, r, qmp ? "query-commands" : "guest-info",
		          qmp ? "[{name:s}]" : SHAPE_INFO);
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
}

/* The peer's commands, as command_list() has them, asked once in a
 * process. */
static int
peer_commands(struct conn *c, const char **list)
{
	static struct buf names;
	const char *q = c->qmp ? "query-commands" : "guest-info";
	struct reply r;
	char req[40];
	int s;

	if (!names.len) {
		snprintf(req, sizeof req, "{\"execute\":\"%s\"}", q);
		if ((s = transact(c, req, strlen(req), &r, q, opt.timeout)))
			return s;
		command_list(&r, c->qmp, &names);
	}
	*list = names.p;
	return 0;
}

/* Waits up to total ms for a ping's answer: 0, or a failure's status. */
static int
wait_agent(long long total)
{
	static const char ping[] = "{\"execute\":\"guest-ping\"}";
	struct timespec nap = {0, 100000000};
	long long deadline, left, try;
	struct reply r;
	int s;

	fan_out();
	deadline = deadline_in(total);
	for (;;) {
		left = deadline < 0 ? 1000 : deadline - now_ms();
		try = left < 1000 ? (left > 0 ? left : 1) : 1000;
		s = session_open(&sess, opt.addr, try);
		if (!s)
			s = transact(&sess, ping, sizeof ping - 1, &r, "guest-ping", try);
		conn_close(&sess);
		if (!s || s == EX_USAGE)
			return s;
		if (deadline >= 0 && now_ms() >= deadline)
			return fail(EX_TIMEOUT, "%s: no agent answered within %s", opt.addr,
			            seconds(total));
		if (s != EX_TIMEOUT)
			nanosleep(&nap, NULL);
	}
}

/* Whether the guest runs Windows (guest-get-osinfo's id), asked once and
 * only by what needs to know. */
static int
guest_windows(void)
{
	static const char req[] = "{\"execute\":\"guest-get-osinfo\"}";
	static int win = -1;
	struct buf b = {(char *)req, sizeof req - 1, sizeof req, 1};
	struct reply r;
	struct doc d;
	int v;

	if (win < 0) {
		call_any(&b, "guest-get-osinfo", &r, opt.timeout);
		win = 0;
		if (r.err < 0) {
			doc_reply(&d, &r, "guest-get-osinfo", SHAPE_OSINFO);
			win = (v = dget(&d, 0, "id")) >= 0 && json_eq(d.js, &d.t[v], "mswindows");
			free(d.t);
		}
	}
	return win;
}

/* The last part of a guest path: after a backslash too on Windows. */
static const char *
guest_base(const char *path)
{
	const char *b = strrchr(path, '/');

	if (strchr(path, '\\') && guest_windows() && (!b || strrchr(path, '\\') > b))
		b = strrchr(path, '\\');
	return b ? b + 1 : path;
}

/* Whether the agent lists name among its enabled commands. */
static int
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

/* ------------------------------------------------------------------ */
/* Built-in commands: options                                          */
/* ------------------------------------------------------------------ */

/* Long options without a letter: their values stay clear of letters. */
enum {
	O_QMP = 256, O_NOSYNC, O_MAXREPLY, O_NOWAIT, O_MERGE, O_HTTP, O_ALLOW,
	O_DENY, O_MAXCLIENTS, O_MAXREQUEST, O_MODE, O_INPLACE, O_PS, O_RUN, O_MAX,
	O_STREAM, O_NOSTREAM, O_VERIFY, O_TOKEN, O_TARGETS, O_NOTAG, O_LOG, O_MAXSIZE
};

/* The options every command takes, before its name or after it. */
#define GLOBAL_SHORTS "s:t:rpjP:qhV"
static const struct option global_longs[] = {
	{"socket", required_argument, NULL, 's'},
	{"timeout", required_argument, NULL, 't'},
	{"return", no_argument, NULL, 'r'},
	{"pretty", no_argument, NULL, 'p'},
	{"json", no_argument, NULL, 'j'},
	{"qmp", no_argument, NULL, O_QMP},
	{"no-sync", no_argument, NULL, O_NOSYNC},
	{"max-reply", required_argument, NULL, O_MAXREPLY},
	{"max-size", required_argument, NULL, O_MAXSIZE},
	{"targets", required_argument, NULL, O_TARGETS},
	{"parallel", required_argument, NULL, 'P'},
	{"no-tag", no_argument, NULL, O_NOTAG},
	{"quiet", no_argument, NULL, 'q'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0}
};

/* A built-in command: fn runs it, or else the command uses names is sent
 * (without arguments) and its return value shown with show. shorts and
 * longs are its own options; text is its usage (after the name), a
 * newline and its help; uses names the agent's commands it sends, which
 * serve's --allow and --deny take its name for; json says that it can
 * print the agent's reply (-j), and 2 that what it shows is the reply's
 * value as indented JSON. */
struct cmd {
	const char *name;
	int (*fn)(int, char **);
	void (*show)(const struct doc *);
	const char *shorts;
	const struct option *longs;
	const char *text, *uses;
	char json;
};

static const struct cmd *cur; /* the built-in command being run */

static void
cmd_usage(const struct cmd *c, FILE *f)
{
	fprintf(f, "usage: qga [OPTIONS] %s%s%.*s\n", c->name, *c->text != '\n' ? " " : "",
	        (int)strcspn(c->text, "\n"), c->text);
}

/* The usage line, the help, and the agent's commands the command sends
 * (which serve's --allow and --deny take its name for). */
static void
cmd_help_text(const struct cmd *c)
{
	const char *u = c->uses;

	cmd_usage(c, stdout);
	printf("\n%s", strchr(c->text, '\n') + 1);
	if (u)
		printf("It sends %s.\n", u);
}

/* Takes a global option; returns 0 if ch is not one. */
static int
global_opt(int ch, const char *arg)
{
	char *end;

	switch (ch) {
	case 's':
		add_target(arg);
		break;
	case O_TARGETS:
		read_targets(arg);
		break;
	case 'P':
		if ((many.max = (int)num(arg, &end, 10, 100000)) < 1 || *end)
			die(EX_USAGE, "bad -P '%s': expected a number of targets", arg);
		break;
	case O_NOTAG: many.notag = 1; break;
	case 'q': many.quiet = 1; break;
	case 't':
		if (parse_seconds(arg, &opt.timeout) < 0)
			die(EX_USAGE, "bad timeout '%s': expected seconds", arg);
		opt.timeout_set = 1;
		break;
	case 'r': opt.ret = 1; break;
	case 'p': opt.pretty = many.json = 1; break;
	case 'j': opt.json = many.json = 1; break;
	case O_QMP: opt.qmp = 1; break;
	case O_NOSYNC: opt.nosync = 1; break;
	case 'V':
		puts("qga " VERSION);
		leave(0);
	case O_MAXREPLY:
		if (parse_size(arg, &opt.maxreply) < 0 || opt.maxreply < 64)
			die(EX_USAGE, "bad --max-reply '%s': expected bytes "
			    "(at least 64)", arg);
		break;
	case O_MAXSIZE:
		if (parse_bytes(arg, &opt.maxsize) < 0 || !opt.maxsize)
			die(EX_USAGE, "bad --max-size '%s': expected bytes", arg);
		break;
	default:
		return 0;
	}
	return 1;
}

static int
known_opt(const char *shorts, const struct option *lo, int ch)
{
	if (ch > 0 && ch < 256 && ch != ':' && ch != '+' && strchr(shorts, ch))
		return 1;
	for (; lo->name; lo++)
		if (lo->val == ch)
			return 1;
	return 0;
}

/* Says what getopt_long refused (ch is '?' or ':') and ends qga with the
 * usage line of the command, or of qga. A missing value can only be the
 * last word's; a long option's error leaves optind just past its word. */
static _Noreturn void
badopt(int argc, char **argv, const char *shorts, const struct option *lo, int ch)
{
	const char *w = ch == ':' ? argv[argc - 1] : argv[optind - 1];
	int islong = !strncmp(w, "--", 2) &&
	             (ch == ':' || !optopt || known_opt(shorts, lo, optopt));
	char what[64];

	if (islong)
		snprintf(what, sizeof what, "%.*s", (int)strcspn(w, "="), w);
	else
		snprintf(what, sizeof what, "-%c", optopt);
	fflush(stdout);
	fprintf(stderr, "qga: %s%s", cur ? cur->name : "", cur ? ": " : "");
	fprintf(stderr, ch == ':' ? "option '%s' needs a value\n" : islong && optopt ?
	        "option '%s' takes no value\n" : "unknown option '%s'\n", what);
	if (cur)
		cmd_usage(cur, stderr);
	else
		fputs("usage: qga [OPTIONS] COMMAND [ARG]...  (qga --help says more)\n",
		      stderr);
	leave(EX_USAGE);
}

/* Checks what the options ask for, once they are all read. */
static void
options_done(void)
{
	if (many.n)
		opt.addr = many.addr[0];
	if (!opt.addr && !(opt.addr = getenv("QGA_SOCKET"))) {
		opt.addr = "/tmp/qga.sock";
		opt.addr_default = 1;
	}
	if (!cur || !(opt.ret || opt.pretty || opt.json))
		return;
	if (!cur->json) {
		fprintf(stderr, "qga: %s: -r, -p and -j apply to the agent's JSON "
		        "reply, which %s does not print\n", cur->name, cur->name);
		cmd_usage(cur, stderr);
		leave(EX_USAGE);
	}
	opt.json = 1; /* -r and -p show the reply, so they ask for it */
}

/* The next option of the command cur, whose name is argv[0]: one of its
 * own, returned, or a global one, taken here, up to the first operand or
 * "--". Returns -1 after the last; a bad option ends qga. */
static int
cmdopt(int argc, char **argv)
{
	static struct option lo[32];
	static char so[64];
	static const struct cmd *ready;
	int ch, n = 0, k;

	if (ready != cur) {
		ready = cur;
		snprintf(so, sizeof so, "+:%s" GLOBAL_SHORTS, cur->shorts ? cur->shorts : "");
		for (k = 0; cur->longs && cur->longs[k].name; k++)
			lo[n++] = cur->longs[k];
		for (k = 0; global_longs[k].name; k++)
			lo[n++] = global_longs[k];
		memset(&lo[n], 0, sizeof lo[n]);
		opterr = 0;
		optind = 0;
	}
	while ((ch = getopt_long(argc, argv, so, lo, NULL)) != -1) {
		if (ch == '?' || ch == ':')
			badopt(argc, argv, so, lo, ch);
		if (ch == 'h') {
			cmd_help_text(cur);
			leave(0);
		}
		/* A command's own letter wins over the global one (get -r). */
		if ((ch < 256 && cur->shorts && strchr(cur->shorts, ch)) || !global_opt(ch, optarg))
			return ch;
	}
	options_done();
	return -1;
}

/* For a command without options of its own: takes the global ones, then
 * leaves argv as the command's name followed by its operands. */
static void
plain_operands(int *argc, char ***argv)
{
	cmdopt(*argc, *argv);
	(*argv)[optind - 1] = (*argv)[0];
	*argc -= optind - 1;
	*argv += optind - 1;
}

/* ------------------------------------------------------------------ */
/* Built-in commands: exec                                             */
/* ------------------------------------------------------------------ */

/* The most stdin -i sends: its base64 must stay under the agent's 64 MiB
 * token limit. */
#define EXEC_INPUT_MAX 50331645
/* The most output of a stream the agent keeps. */
#define EXEC_OUTPUT_MAX (16 << 20)

/* Windows' NTSTATUS codes of a crash that people meet most, 0xC000xxxx. */
static const unsigned short nt_codes[] = {
	0x0005, 0x001d, 0x0094, 0x00fd, 0x013a, 0x0135, 0x0374, 0x0409};
static const char nt_names[] =
	"ACCESS_VIOLATION\0ILLEGAL_INSTRUCTION\0INTEGER_DIVIDE_BY_ZERO\0"
	"STACK_OVERFLOW\0CONTROL_C_EXIT\0DLL_NOT_FOUND\0HEAP_CORRUPTION\0"
	"STACK_BUFFER_OVERRUN";

/* The program's status as qga's: a POSIX signal N is 128+N; a Windows
 * guest's "signal" is the NTSTATUS that ended the program and its exit
 * code 32 bits wide. A status outside 0-255 is said in full, and qga
 * exits with its low byte, or 1 where that would read as success. */
static int
exit_code(const struct doc *d, const char *prog)
{
	unsigned long st;
	const char *name = nt_names;
	int v, i;

	if ((v = dget(d, 0, "signal")) >= 0 && (st = (unsigned long)dint(d, v, 0)) - 1 < 127)
		return 128 + (int)st;
	st = (unsigned long)dint(d, v >= 0 ? v : dget(d, 0, "exitcode"), 0) & 0xffffffff;
	if (v >= 0) {
		for (i = 0; i < 8 && (st >> 16 != 0xc000 || (st & 0xffff) != nt_codes[i]); i++)
			name += strlen(name) + 1;
		warn("%s ended with status 0x%08lX%s%s", prog, st, i < 8 ? " STATUS_" : "",
		     i < 8 ? name : "");
	} else if (st > 255)
		warn("%s exited with status %lu", prog, st);
	return st < 256 ? (int)st : st & 255 ? (int)(st & 255) : 1;
}

/* Appends ,"key":value to a JSON object being built. */
static void
json_member(struct buf *b, const char *key, const char *val)
{
	buf_add(b, ",", 1);
	buf_jstr(b, key, strlen(key));
	buf_add(b, ":", 1);
	buf_str(b, val);
}

static const char *const streams[2][3] = {
	{"out-data", "out-truncated", "out-data-b64"},
	{"err-data", "err-truncated", "err-data-b64"}};

/* Whether stream i of the ended program d was cut, its data len bytes. */
static int
exec_cut(const struct doc *d, int i, size_t len)
{
	/* Some agents (10.0.2 among them) cut a stream at exactly 16 MiB and
	 * say nothing: that size is taken as cut. */
	return len == EXEC_OUTPUT_MAX || dtrue(d, dget(d, 0, streams[i][1]));
}

/* The end of a program as one object with the keys of Proxmox's `qm
 * guest exec`: out-data and err-data as text, or base64 in out-data-b64
 * and err-data-b64 when not UTF-8, the truncated flags, exitcode or
 * signal. Returns -1, with js unfinished, when a stream is not base64. */
static int
exec_json(struct buf *js, const struct doc *d)
{
	struct buf data = {0}, text = {0};
	size_t len[2] = {0, 0};
	int i, v, bad = 0;
	char n[24];

	buf_str(js, "{\"exited\":true");
	for (i = 0; i < 2 && !bad; i++) {
		if ((v = dget(d, 0, streams[i][0])) < 0)
			continue;
		data.len = text.len = 0;
		if ((bad = b64_decode(&data, d->js, &d->t[v]) < 0))
			break;
		len[i] = data.len;
		buf_jstr(&text, data.p, data.len);
		buf_add(&text, "", 1);
		if (is_json(text.p, text.len - 1)) {
			json_member(js, streams[i][0], text.p);
		} else {
			buf_add(js, ",", 1);
			buf_jstr(js, streams[i][2], strlen(streams[i][2]));
			buf_add(js, ":", 1);
			buf_add(js, d->js + d->t[v].start - 1, d->t[v].end - d->t[v].start + 2);
		}
	}
	for (i = 0; i < 2; i++)
		json_member(js, streams[i][1], exec_cut(d, i, len[i]) ? "true" : "false");
	for (i = 0; i < 2; i++)
		if ((v = dget(d, 0, i ? "signal" : "exitcode")) >= 0) {
			snprintf(n, sizeof n, "%lld", dint(d, v, 0));
			json_member(js, i ? "signal" : "exitcode", n);
		}
	buf_add(js, "}", 1);
	free(data.p);
	free(text.p);
	return bad ? -1 : 0;
}

/* Writes what the program wrote, and returns its exit status. With -j,
 * prints instead its end as exec_json says it, and returns 0. */
static int
exec_finish(const struct doc *dp, const char *prog)
{
	struct buf data = {0}, js = {0};
	struct doc d = *dp;
	size_t len[2] = {0, 0};
	int i, v, code = 0;

	if (opt.json && exec_json(&js, &d) < 0)
		die(EX_PROTO, "%s: the output is not base64", prog);
	if (opt.json)
		print_json(js.p, js.len);
	for (i = 0; i < 2 && !opt.json; i++) {
		data.len = 0;
		if ((v = dget(&d, 0, streams[i][0])) >= 0 && b64_decode(&data, d.js, &d.t[v]) < 0)
			die(EX_PROTO, "%s: %s is not base64", prog, streams[i][0]);
		fflush(stdout);
		if (write_all(i + 1, data.p, len[i] = data.len) < 0)
			die(EX_IO, "write %s:", i ? "stderr" : "stdout");
	}
	for (i = 0; i < 2 && !opt.json; i++)
		if (exec_cut(&d, i, len[i]))
			warn("%s: the agent truncated the program's %s", prog,
			     i ? "stderr" : "stdout");
	if (!opt.json)
		code = exit_code(&d, prog);
	free(data.p);
	free(js.p);
	free(d.t);
	return code;
}

static const struct option exec_longs[] = {
	{"input", no_argument, NULL, 'i'},
	{"env", required_argument, NULL, 'e'},
	{"timeout", required_argument, NULL, 'T'},
	{"no-wait", no_argument, NULL, O_NOWAIT},
	{"merge", no_argument, NULL, O_MERGE},
	{"ps", no_argument, NULL, O_PS},
	{"stream", no_argument, NULL, O_STREAM},
	{"no-stream", no_argument, NULL, O_NOSTREAM},
	{NULL, 0, NULL, 0}
};

/* Appends the UTF-8 text s as base64 of UTF-16LE, as PowerShell's
 * -EncodedCommand takes a script: no quoting can go wrong in it. */
static void
buf_ps(struct buf *b, const char *s)
{
	struct buf u = {0};
	const unsigned char *p = (const unsigned char *)s;
	unsigned long c;
	char w[4];
	int n;

	while (*p) {
		n = *p < 0x80 ? 0 : *p < 0xe0 ? 1 : *p < 0xf0 ? 2 : 3;
		for (c = *p++ & (0x7fu >> n); n-- && *p; p++)
			c = c << 6 | (*p & 0x3f);
		if (c > 0xffff) {
			c -= 0x10000;
			w[0] = (char)(c >> 10 & 0xff);
			w[1] = (char)(0xd8 | c >> 18);
			buf_add(&u, w, 2);
			c = 0xdc00 | (c & 0x3ff);
		}
		w[0] = (char)(c & 0xff);
		w[1] = (char)(c >> 8);
		buf_add(&u, w, 2);
	}
	buf_add(b, "\"", 1);
	b64_encode(b, (unsigned char *)u.p, u.len);
	buf_add(b, "\"", 1);
	free(u.p);
}

static long long stream_pid = -1; /* a streamed program to stop on exit */

/* Builds guest-exec's request for path: its arg is the words of pre (up
 * to a NULL), then args, whose every word has a comma before it; more
 * and in hold the members after arg. */
static void
exec_request(struct buf *req, const char *path, const char *const *pre,
             const struct buf *args, const struct buf *more, const struct buf *in,
             const char *capture)
{
	size_t skip = 1;

	req_begin(req, "guest-exec");
	req_str(req, "path", path);
	req_key(req, "arg");
	buf_add(req, "[", 1);
	for (; pre && *pre; pre++, skip = 0) {
		buf_add(req, ",", !skip);
		buf_jstr(req, *pre, strlen(*pre));
	}
	if (args->len)
		buf_add(req, args->p + skip, args->len - skip);
	buf_add(req, "]", 1);
	buf_add(req, more->p, more->len);
	buf_add(req, in->p, in->len);
	req_key(req, "capture-output");
	buf_str(req, capture);
	req_end(req);
}

/* Asks for the program's status: whether it has ended, with it in *d. */
static int
exec_ended(const struct buf *req, struct doc *d)
{
	struct reply r;

	call(req, "guest-exec-status", &r);
	doc_reply(d, &r, "guest-exec-status", SHAPE_STATUS);
	if (dtrue(d, dget(d, 0, "exited")))
		return 1;
	free(d->t);
	return 0;
}

/* Waits ns before the next look at the program; -T and a signal end qga
 * here. */
static void
exec_nap(long long deadline, long long ns, const char *prog, long long pid)
{
	struct timespec nap = {0, (long)ns};
	int late = deadline >= 0 && now_ms() >= deadline;

	if (!late)
		nanosleep(&nap, NULL);
	if (!late && !interrupted)
		return;
	warn(stream_pid < 0 ? "%s still runs in the guest as pid %lld" :
	     "%s stopped in the guest (pid %lld): a streamed program ends with qga, "
	     "--no-stream leaves it running", prog, pid);
	leave(late ? 124 : 128 + interrupted);
}

static int exec_stream(const struct buf *args, const struct buf *env, const struct buf *in,
                       const char *prog, int merge, long long deadline, int asked, int out);

static int
cmd_exec(int argc, char **argv)
{
	struct buf req = {0}, args = {0}, more = {0}, env = {0}, envw = {0}, in = {0}, inb = {0};
	struct reply r;
	struct doc d;
	long long pid, wait = 0, deadline, delay = 200000;
	int polls = 0, stream = 1;
	int ch, i, input = 0, nowait = 0, merge = 0, path = 0, root = 0, ps = 0, win = 0;
	int sh = !strcmp(argv[0], "sh");
	const char *prog;
	char desc[256];

	exec_mode = 1;
	while ((ch = cmdopt(argc, argv)) != -1) {
		switch (ch) {
		case 'i': input = 1; break;
		case 'e':
			if (!strchr(optarg, '=') || *optarg == '=')
				die(EX_USAGE, "exec: -e wants NAME=VALUE, got '%s'", optarg);
			buf_add(&env, ",", 1);
			buf_jstr(&env, optarg, strlen(optarg));
			path |= !strncasecmp(optarg, "PATH=", 5);
			root |= !strncasecmp(optarg, "SystemRoot=", 11);
			break;
		case 'T':
			if (parse_seconds(optarg, &wait) < 0)
				die(EX_USAGE, "exec: bad -T '%s': expected seconds", optarg);
			break;
		case O_NOWAIT: nowait = 1; break;
		case O_MERGE: merge = 1; break;
		case O_STREAM: stream = 2; break;
		case O_NOSTREAM: stream = 0; break;
		case O_PS:
			if (!sh)
				die(EX_USAGE, "exec: --ps is sh's: qga sh --ps 'SCRIPT'");
			ps = 1;
			break;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		return -1;
	many.reads_stdin = input;
	if (sh || env.len)
		win = guest_windows();
	if ((win || ps) && sh && argc > 1)
		die(EX_USAGE, "sh: ARGs need /bin/sh: put them in the line");
	if (win && sh && !ps && strchr(argv[0], '"'))
		die(EX_USAGE, "sh: the agent escapes a double quote as \\\" for cmd.exe, "
		    "which keeps the backslash: use --ps");
	prog = !sh ? argv[0] : ps ? (win ? "powershell.exe" : "pwsh") :
	       win ? "cmd.exe" : "/bin/sh";
	if (ps) {
		buf_str(&args, ",\"-NoProfile\",\"-NonInteractive\",\"-EncodedCommand\",");
		buf_ps(&args, argv[0]);
	} else if (sh && win) {
		/* cmd /s takes the line as it is, between the quotes the agent
		 * puts around it; cmd itself merges stderr into stdout. */
		buf_str(&args, ",\"/s\",\"/c\",");
		buf_jstr(&args, argv[0], strlen(argv[0]));
		if (merge) {
			args.len--;
			buf_str(&args, " 2>&1\"");
		}
		merge = 0;
	} else {
		/* sh gets -c 'COMMAND LINE', then $0 and the positional ARGs. */
		buf_str(&args, sh ? ",\"-c\"" : "");
		for (i = !sh; i < argc; i++) {
			buf_add(&args, ",", 1);
			buf_jstr(&args, argv[i], strlen(argv[i]));
			if (sh && i == 0 && argc > 1)
				buf_str(&args, ",\"sh\"");
		}
	}
	if (env.len) {
		/* The agent's env replaces the whole environment. */
		if (!root && win)
			buf_str(&envw, ",\"SystemRoot=C:\\\\Windows\"");
		if (!path)
			buf_str(&envw, win ? ",\"PATH=C:\\\\Windows\\\\system32;C:\\\\Windows;"
			        "C:\\\\Windows\\\\System32\\\\WindowsPowerShell\\\\v1.0\""
			        : ",\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"");
		buf_add(&envw, env.p, env.len);
		buf_str(&more, ",\"env\":[");
		buf_add(&more, envw.p + 1, envw.len - 1);
		buf_add(&more, "]", 1);
	}
	if (input) {
		if ((i = read_all(0, &in, EXEC_INPUT_MAX)) == -2)
			die(EX_USAGE, "exec -i: stdin is larger than the agent "
			    "accepts (%d bytes)", EXEC_INPUT_MAX);
		if (i < 0)
			die(EX_IO, "read stdin:");
		inb.len = 0;
		buf_str(&inb, ",\"input-data\":\"");
		b64_encode(&inb, (unsigned char *)in.p, in.len);
		buf_add(&inb, "\"", 1);
		free(in.p);
	}
	exec_request(&req, prog, NULL, &args, &more, &inb, merge ? "\"merged\"" : "true");
	if (!is_json(req.p, req.len))
		die(EX_USAGE, "exec: arguments are not valid UTF-8");
	deadline = deadline_in(wait);
	/* A program is streamed unless its output is wanted at the end
	 * anyway, or the guest is known to run Windows. */
	if (stream && !nowait && !opt.json && !win && !ps &&
	    (i = exec_stream(&args, &envw, &inb, prog, merge, deadline, stream > 1, 1)) >= 0)
		return i;

	call_any(&req, "guest-exec", &r, opt.timeout);
	if (r.err >= 0) {
		if (merge && strstr(member_str(r.js, &r.tok[r.err], "desc", desc,
		                               sizeof desc), "capture-output"))
			die(EX_AGENT, guest_windows() ? "exec --merge: a Windows guest has no "
			    "merged output (sh --merge merges through cmd.exe)" :
			    "exec --merge needs qemu-ga 8.0 or later");
		agent_error(&r, "guest-exec");
		member_str(r.js, &r.tok[r.err], "desc", desc, sizeof desc);
		/* As ssh and docker do: 127 when there is no such program,
		 * 126 when it cannot be run. */
		say();
		leave(strstr(desc, "No such file") ? 127 : strstr(desc, "Permission denied") ||
		      strstr(desc, "Exec format error") ? 126 : 255);
	}
	doc_reply(&d, &r, "guest-exec", SHAPE_EXEC);
	pid = dint(&d, dget(&d, 0, "pid"), -1);
	free(d.t);
	if (pid < 0)
		die(EX_PROTO, "guest-exec: no pid in the reply");
	if (nowait) {
		printf("%lld\n", pid);
		return 0;
	}
	req_begin(&req, "guest-exec-status");
	req_int(&req, "pid", pid);
	req_end(&req);
	/* Poll every 0.2 ms for the first 50 polls, so that a short program
	 * returns at once, then back off to a tenth of a second. */
	while (!exec_ended(&req, &d)) {
		exec_nap(deadline, delay, prog, pid);
		if (++polls > 50)
			delay = delay * 2 > 100000000 ? 100000000 : delay * 2;
	}
	i = exec_finish(&d, prog);
	free(req.p);
	free(args.p);
	free(more.p);
	free(env.p);
	free(envw.p);
	free(inb.p);
	return i;
}

/* The end of a program started with exec --no-wait, as exec shows it. */
static int
cmd_exec_status(int argc, char **argv)
{
	struct buf req = {0};
	struct reply r;
	struct doc d;
	long long pid;
	char *end;

	exec_mode = 1;
	if (argc != 2)
		return -1;
	pid = num(argv[1], &end, 10, 1LL << 31);
	if (*end || pid < 0 || pid >> 31)
		die(EX_USAGE, "exec-status: bad pid '%s'", argv[1]);
	req_begin(&req, "guest-exec-status");
	req_int(&req, "pid", pid);
	req_end(&req);
	call_any(&req, "guest-exec-status", &r, opt.timeout);
	free(req.p);
	/* The agent's words for it vary: 7.2 "Invalid parameter 'pid'",
	 * 10.0 "PID ld does not exist". */
	if (r.err >= 0 && !strcmp(member_str(r.js, &r.tok[r.err], "class", (char[16]){0}, 16),
	                         "GenericError"))
		die(EX_AGENT, "exec-status: no program of pid %lld in the guest agent "
		    "(not started by it, or its end already read)", pid);
	if (r.err >= 0)
		quit(agent_error(&r, "guest-exec-status"));
	if (opt.json) {
		print_result(&r);
		return 0;
	}
	doc_reply(&d, &r, "guest-exec-status", SHAPE_STATUS);
	if (!dtrue(&d, dget(&d, 0, "exited"))) {
		warn("pid %lld still runs in the guest", pid);
		leave(124);
	}
	return exec_finish(&d, argv[1]);
}

/* ------------------------------------------------------------------ */
/* Built-in commands: a guest's folder unpacked here                   */
/* ------------------------------------------------------------------ */

/* get -r reads the guest's tar stream itself rather than giving it to
 * the host's tar, which as root keeps the archive's owners, setuid bits
 * and device nodes, and writes through a symbolic link that the archive,
 * or an earlier copy, put in its way. Here only files, folders and
 * symbolic links are made, in a fresh folder that nobody else can enter,
 * each name walked from that folder one part at a time with O_NOFOLLOW,
 * files made with O_EXCL. Links are made last, after every file, so that
 * nothing is written through one; a hard link is made only to a file
 * this archive made. Owners are the user's; modes keep only the
 * permission bits that umask allows. The folder takes its place once
 * the archive has ended well. */

/* What a tar header block says, pax's and GNU's long names applied. */
struct tar_head {
	char type;
	unsigned mode;
	long long mtime;
	unsigned long long size;
	char name[257];      /* ustar's prefix, '/' and name */
	char link[101];
};

/* The most a pax header or a GNU long name may hold, and the most the
 * folders and links kept for the end may take. */
#define TAR_META_MAX (64 << 10)
#define TAR_DEFER_MAX (64 << 20)

/* A header's number field p[0..n): octal digits between spaces and NULs,
 * or base-256 (GNU's, for sizes past 8 GiB) when its first bit is set.
 * Returns -1 for anything else or a value past 2^63. */
static int
tar_num(const unsigned char *p, size_t n, unsigned long long *v)
{
	size_t i = 0;

	*v = 0;
	if (*p == 0xff) {
		/* Negative, for a time before 1970: two's complement. */
		for (*v = ~0ULL, i = 1; i < n; i++) {
			if (*v >> 55 != 0x1ff)
				return -1;
			*v = *v << 8 | p[i];
		}
		return 0;
	}
	if (*p == 0x80) {
		for (i = 1; i < n; i++) {
			if (*v >> 55)
				return -1;
			*v = *v << 8 | p[i];
		}
		return 0;
	}
	while (i < n && p[i] == ' ')
		i++;
	for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
		if (*v >> 60)
			return -1;
		*v = *v << 3 | (unsigned)(p[i] - '0');
	}
	for (; i < n; i++)
		if (p[i] != ' ' && p[i])
			return -1;
	return 0;
}

/* Parses the 512-byte header block b, a pure function of its bytes:
 * 0, 1 for a block of zeros (the archive's end), -1 for one that is not
 * a header (its checksum is not the sum of its bytes). */
static int
tar_head_parse(const unsigned char *b, struct tar_head *h)
{
	unsigned long long sum, v;
	unsigned long mine = 0;
	long theirs = 0;
	int i, ustar;

	for (i = 0; i < 512 && !b[i]; i++)
		;
	if (i == 512)
		return 1;
	for (i = 0; i < 512; i++) {
		mine += i >= 148 && i < 156 ? ' ' : b[i];
		theirs += i >= 148 && i < 156 ? ' ' : (signed char)b[i];
	}
	if (tar_num(b + 148, 8, &sum) < 0 || (sum != mine && (long long)sum != theirs))
		return -1;
	memset(h, 0, sizeof *h);
	h->type = b[156] ? (char)b[156] : '0';
	if (tar_num(b + 100, 8, &v) < 0 || v >> 63)
		return -1;
	h->mode = (unsigned)(v & 07777);
	if (tar_num(b + 124, 12, &h->size) < 0 || h->size >> 63 || tar_num(b + 136, 12, &v) < 0)
		return -1;
	h->mtime = (long long)v;
	/* POSIX ustar has a prefix; GNU's "ustar  " keeps times there. */
	ustar = !memcmp(b + 257, "ustar", 6);
	if (ustar && b[345])
		snprintf(h->name, sizeof h->name, "%.155s/%.100s", (const char *)b + 345,
		         (const char *)b);
	else
		snprintf(h->name, sizeof h->name, "%.100s", (const char *)b);
	snprintf(h->link, sizeof h->link, "%.100s", (const char *)b + 157);
	return 0;
}

/* What a pax extended header changes of the next entry. */
struct tar_pax {
	struct buf path, link;    /* NUL-terminated when set */
	unsigned long long size;
	long long mtime;
	int has_size, has_mtime, sparse;
};

/* Takes the pax records of s[0..n), each "LEN KEY=VALUE\n" where LEN
 * counts the whole record, a pure function of the bytes: 0, or -1 when
 * they are not records. Keys other than path, linkpath, size and mtime
 * change nothing, but GNU's sparse files are told, since their data
 * would be wrong. */
static int
tar_pax_parse(const char *s, size_t n, struct tar_pax *x)
{
	size_t len, k, off = 0;
	const char *r, *eq, *val;
	char *end;
	long long v;

	while (off < n) {
		r = s + off;
		len = 0;
		for (k = 0; off + k < n && r[k] >= '0' && r[k] <= '9' && k < 9; k++)
			len = len * 10 + (size_t)(r[k] - '0');
		if (!k || off + k >= n || r[k] != ' ' || len <= k + 1 || len > n - off ||
		    r[len - 1] != '\n' || !(eq = memchr(r + k + 1, '=', len - k - 1)))
			return -1;
		val = eq + 1;
		k++;
#define KEY(name) ((size_t)(eq - r) - k == sizeof name - 1 && !memcmp(r + k, name, sizeof name - 1))
		if (KEY("path") || KEY("linkpath")) {
			struct buf *b = KEY("path") ? &x->path : &x->link;
			b->len = 0;
			buf_add(b, val, (size_t)(r + len - 1 - val));
			buf_add(b, "", 1);
		} else if (KEY("size") || KEY("mtime")) {
			if ((*val < '0' || *val > '9') && (!KEY("mtime") || *val != '-' ||
			    val[1] < '0' || val[1] > '9'))
				return -1;
			errno = 0;
			v = strtoll(val, &end, 10);
			if (errno || (end != r + len - 1 && *end != '.'))
				return -1;
			if (KEY("size")) {
				x->size = (unsigned long long)v;
				x->has_size = 1;
			} else {
				x->mtime = v;
				x->has_mtime = 1;
			}
		} else if ((size_t)(eq - r) - k > 11 && !memcmp(r + k, "GNU.sparse.", 11))
			x->sparse = 1;
#undef KEY
		off += len;
	}
	return 0;
}

/* An archive's name made safe to make below the folder: "." and empty
 * parts dropped, in place. -1 for an absolute name or one with "..",
 * which could reach outside it. "" is the folder itself. */
static int
tar_clean(char *name)
{
	char *in = name, *out = name, *part;
	size_t n;

	if (*name == '/')
		return -1;
	for (part = name; *part; part += n + (part[n] == '/'))
		if ((n = strcspn(part, "/")) == 2 && part[0] == '.' && part[1] == '.')
			return -1;
	while (*in) {
		part = in;
		n = strcspn(in, "/");
		in += n + (in[n] == '/');
		if (!n || (n == 1 && *part == '.'))
			continue;
		if (out != name)
			*out++ = '/';
		memmove(out, part, n);
		out += n;
	}
	*out = 0;
	return 0;
}

/* A folder or a symbolic link kept for the end: a folder gets its mode
 * and time once all within it is made; a link is made after every file,
 * in the place of an empty file that holds its name meanwhile (as GNU
 * tar does), so that no later entry can go through it, and only if that
 * file is still there: a later entry of the same name wins, as in tar. */
struct tar_late {
	char *path, *link;   /* link: the target; NULL for a folder */
	unsigned mode;
	long long mtime;
	struct stat st;      /* the link's placeholder */
};

struct untar {
	int in, root;
	const char *what;              /* the guest's folder, for messages */
	unsigned long long got, max;   /* bytes read; --max-size, 0 for none */
	mode_t mask;
	struct tar_late *late;
	size_t nlate, cap, bytes;
};

/* The most parts a name may have: deeper ones are skipped, so that the
 * folders open at once to remove a copy stay few. */
#define TAR_DEPTH_MAX 256

/* Reads n bytes of the archive into p, or skips them (p NULL). 0, or a
 * failure's status; EX_PROTO without a message for an early end, which
 * the guest's tar status may explain. */
static int
tar_read(struct untar *u, void *p, unsigned long long n)
{
	char skip[65536];
	ssize_t r;
	size_t step;

	while (n) {
		step = n < sizeof skip ? (size_t)n : sizeof skip;
		if ((r = read(u->in, p ? p : skip, step)) < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail(EX_IO, "get -r: read the archive:");
		if (!r)
			return EX_PROTO;
		u->got += (unsigned long long)r;
		if (u->max && u->got > u->max)
			return fail(EX_IO, "get -r: %s: more than --max-size (%llu bytes)", u->what,
			            u->max);
		if (p)
			p = (char *)p + r;
		n -= (unsigned long long)r;
	}
	return 0;
}

/* Opens the folder below root that holds path, a clean name that is not
 * "", making the folders missing on the way when make is set; *leaf is
 * the name's last part. -1 where a part is not a folder: a symbolic link
 * is never followed. The caller closes what is not root. */
static int
tar_parent(int root, char *path, const char **leaf, int make)
{
	char *s = path, *slash;
	int fd = root, next;

	while ((slash = strchr(s, '/'))) {
		*slash = 0;
		next = openat(fd, s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && errno == ENOENT && make && !mkdirat(fd, s, 0777))
			next = openat(fd, s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		*slash = '/';
		if (fd != root)
			close(fd);
		if (next < 0)
			return -1;
		fd = next;
		s = slash + 1;
	}
	*leaf = s;
	return fd;
}

/* Makes room for leaf in dir: a file or link of an earlier entry of the
 * same name goes, as tar replaces it; a folder stays. */
static int
tar_unlink(int dir, const char *leaf)
{
	return unlinkat(dir, leaf, 0) < 0 && errno != ENOENT ? -1 : 0;
}

/* Writes the entry's size bytes of data into the new file leaf of dir. */
static int
tar_file(struct untar *u, int dir, const char *leaf, const struct tar_head *h, int *made)
{
	char data[65536];
	unsigned long long left = h->size;
	size_t step;
	int fd, s, tries;

	for (tries = 0; (fd = openat(dir, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	                             O_CLOEXEC, 0600)) < 0 && errno == EEXIST && tries < 1; tries++)
		if (tar_unlink(dir, leaf) < 0)
			break;
	if (fd < 0) {
		tries = errno;
		s = tar_read(u, NULL, h->size);
		errno = tries;
		return s;
	}
	while (left) {
		step = left < sizeof data ? (size_t)left : sizeof data;
		if ((s = tar_read(u, data, step))) {
			close(fd);
			return s;
		}
		if (write_all(fd, data, step) < 0) {
			close(fd);
			return fail(EX_IO, "get -r: write %s:", h->name);
		}
		left -= step;
	}
	fchmod(fd, h->mode & 0777 & ~u->mask);
	futimens(fd, (struct timespec[2]){{0, UTIME_OMIT}, {(time_t)h->mtime, 0}});
	if (close(fd) < 0)
		return fail(EX_IO, "get -r: write %s:", h->name);
	*made = 1;
	return 0;
}

/* Keeps a folder (link NULL) or a symbolic link, whose placeholder is
 * st, for the end. */
static int
tar_keep(struct untar *u, const char *path, const char *link, const struct tar_head *h,
         const struct stat *st)
{
	/* What malloc and the array's doubling take counts too. */
	size_t more = 2 * sizeof *u->late + strlen(path) + 33 + (link ? strlen(link) + 33 : 0);

	if ((u->bytes += more) > TAR_DEFER_MAX)
		return fail(EX_IO, "get -r: %s: more folders and links than qga keeps (%d MiB "
		            "of names)", u->what, TAR_DEFER_MAX >> 20);
	if (u->nlate == u->cap) {
		u->cap = u->cap ? 2 * u->cap : 64;
		u->late = xrealloc(u->late, u->cap * sizeof *u->late);
	}
	u->late[u->nlate++] = (struct tar_late){xstrdup(path), link ? xstrdup(link) : NULL,
	                                        h->mode, h->mtime, *st};
	return 0;
}

/* A hard link: made only to a file this archive made, within the copy. */
static int
tar_hardlink(int root, int dir, const char *leaf, char *target)
{
	const char *tleaf;
	struct stat st;
	int tdir, r = -1;

	if (tar_clean(target) < 0 || !*target || (tdir = tar_parent(root, target, &tleaf, 0)) < 0)
		return -1;
	if (!fstatat(tdir, tleaf, &st, AT_SYMLINK_NOFOLLOW) && S_ISREG(st.st_mode) &&
	    !tar_unlink(dir, leaf))
		r = linkat(tdir, tleaf, dir, leaf, 0);
	if (tdir != root)
		close(tdir);
	return r;
}

/* Why an entry of kind type is not made, or NULL when it can be. */
static const char *
tar_refused(const struct tar_head *h, const char *name, int sparse)
{
	const char *s;
	int depth = 1;

	for (s = name; *s; s++)
		depth += *s == '/';
	if (depth > TAR_DEPTH_MAX || strlen(name) >= 4096)
		return "a name too long or too deep";
	if (sparse)
		return "a sparse file, which qga does not unpack";
	switch (h->type) {
	case '0': case '7': case '5': case '2': case '1': return NULL;
	case '3': return "a character device";
	case '4': return "a block device";
	case '6': return "a FIFO";
	default: return "an entry of a kind qga does not unpack";
	}
}

/* The bytes of data that follow the header h: none for a link, a device,
 * a FIFO or a folder, whatever its size says (as POSIX has it). */
static unsigned long long
tar_data(const struct tar_head *h)
{
	return strchr("123456", h->type) ? 0 : h->size;
}

/* Makes the entry h, named name (clean), whose data comes next. */
static int
tar_entry(struct untar *u, struct tar_head *h, char *name, char *link, int sparse)
{
	const char *why = tar_refused(h, name, sparse), *leaf;
	struct stat st = {0};
	int dir, fd, s = 0, made = 0;

	if (!why && !*name && h->type != '5')
		why = "not a folder, as the copy's own name";
	if (why || !*name) {
		if (why)
			warn("get -r: %s: skipped: %s", name, why);
		else if ((s = tar_keep(u, "", NULL, h, &st)))
			return s;
		return tar_read(u, NULL, tar_data(h));
	}
	if ((dir = tar_parent(u->root, name, &leaf, 1)) < 0) {
		warn("get -r: %s: skipped: a part of its name is not a folder", name);
		return tar_read(u, NULL, tar_data(h));
	}
	switch (h->type) {
	case '5':
		if (mkdirat(dir, leaf, 0700) < 0 && (errno != EEXIST ||
		    fstatat(dir, leaf, &st, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(st.st_mode)))
			break;
		made = !(s = tar_keep(u, name, NULL, h, &st));
		break;
	case '2':
		if (tar_unlink(dir, leaf) < 0 || (fd = openat(dir, leaf, O_WRONLY | O_CREAT |
		    O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0)) < 0)
			break;
		made = !fstat(fd, &st) && !(s = tar_keep(u, name, link, h, &st));
		close(fd);
		break;
	case '1':
		made = !tar_hardlink(u->root, dir, leaf, link);
		break;
	default:
		s = tar_file(u, dir, leaf, h, &made);
	}
	if (dir != u->root)
		close(dir);
	if (!s && !made)
		warn("get -r: %s: skipped: %s", name, h->type == '1' ?
		     "a hard link to no file of this copy" : strerror(errno));
	return s;
}

/* The end: the links, then each folder's mode and time, the deepest
 * first (a folder's time changes as things are made in it). The copy's
 * own folder keeps the mode it was made with. */
static void
tar_finish(struct untar *u)
{
	struct tar_late *l;
	const char *leaf;
	struct stat st;
	int dir, fd;
	size_t i;

	/* The last link of a name is made first: its placeholder is the one
	 * that is there, and an earlier one's finds a link in its place. */
	for (i = u->nlate; i-- > 0;) {
		l = &u->late[i];
		if (!l->link || (dir = tar_parent(u->root, l->path, &leaf, 0)) < 0)
			continue;
		if (!fstatat(dir, leaf, &st, AT_SYMLINK_NOFOLLOW) && S_ISREG(st.st_mode) &&
		    !st.st_size && !(st.st_mode & 07777) && st.st_dev == l->st.st_dev &&
		    st.st_ino == l->st.st_ino && st.st_ctim.tv_sec == l->st.st_ctim.tv_sec &&
		    st.st_ctim.tv_nsec == l->st.st_ctim.tv_nsec && !unlinkat(dir, leaf, 0)) {
			if (symlinkat(l->link, dir, leaf) < 0)
				warn("get -r: %s: skipped:", l->path);
			else
				utimensat(dir, leaf, (struct timespec[2]){{0, UTIME_OMIT},
				          {(time_t)l->mtime, 0}}, AT_SYMLINK_NOFOLLOW);
		}
		if (dir != u->root)
			close(dir);
	}
	for (i = u->nlate; i-- > 0;) {
		l = &u->late[i];
		if (l->link)
			continue;
		fd = u->root;
		if (*l->path && (dir = tar_parent(u->root, l->path, &leaf, 0)) >= 0) {
			fd = openat(dir, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (dir != u->root)
				close(dir);
			if (fd < 0)
				continue;
			fchmod(fd, l->mode & 0777 & ~u->mask);
		} else if (*l->path)
			continue;
		futimens(fd, (struct timespec[2]){{0, UTIME_OMIT}, {(time_t)l->mtime, 0}});
		if (fd != u->root)
			close(fd);
	}
}

/* Removes name in dirfd, a folder with all it holds, following no link. */
static void
rm_tree(int dirfd, const char *name)
{
	struct dirent *e;
	DIR *d;
	int fd;

	if (!unlinkat(dirfd, name, 0) || (errno != EISDIR && errno != EPERM))
		return;
	/* A folder the archive gave no permission to is given it back. */
	if ((fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 &&
	    errno == EACCES && !fchmodat(dirfd, name, 0700, 0))
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	fchmod(fd, 0700);
	if (!(d = fdopendir(fd))) {
		close(fd);
		return;
	}
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			rm_tree(fd, e->d_name);
	closedir(d);
	unlinkat(dirfd, name, AT_REMOVEDIR);
}

/* Unpacks the archive read from u->in into the folder u->root: 0, or a
 * failure's status (with its message recorded, but for an early end). */
static int
untar(struct untar *u)
{
	unsigned char b[512];
	struct tar_head h;
	struct tar_pax x = {0};
	struct buf meta = {0};
	unsigned long long end;
	char *name, *link;
	ssize_t n;
	int r, s = 0;

	while (!(s = tar_read(u, b, 512))) {
		if ((r = tar_head_parse(b, &h)) < 0) {
			s = fail(EX_PROTO, "get -r: %s: not a tar archive from the guest", u->what);
			break;
		}
		if (r)
			break;
		if (strchr("xLKg", h.type)) {
			/* What describes the next entry: its size is bounded. */
			if (h.size > TAR_META_MAX) {
				s = fail(EX_PROTO, "get -r: %s: an archive header of %llu bytes",
				         u->what, h.size);
				break;
			}
			meta.len = 0;
			buf_need(&meta, (size_t)h.size + 1);
			if ((s = tar_read(u, meta.p, h.size)) ||
			    (s = tar_read(u, NULL, -h.size & 511)))
				break;
			meta.len = (size_t)h.size;
			meta.p[meta.len] = 0;
			if (h.type == 'x' && tar_pax_parse(meta.p, meta.len, &x) < 0) {
				s = fail(EX_PROTO, "get -r: %s: a pax header that is not one", u->what);
				break;
			}
			if (h.type == 'L' || h.type == 'K') {
				struct buf *to = h.type == 'L' ? &x.path : &x.link;
				to->len = 0;
				buf_add(to, meta.p, strlen(meta.p) + 1);
			}
			continue;
		}
		if (x.has_size)
			h.size = x.size;
		if (x.has_mtime)
			h.mtime = x.mtime;
		name = x.path.len ? x.path.p : h.name;
		link = x.link.len ? x.link.p : h.link;
		if (tar_clean(name) < 0) {
			warn("get -r: %s: skipped: a name outside the folder", name);
			s = tar_read(u, NULL, tar_data(&h));
		} else
			s = tar_entry(u, &h, name, link, x.sparse);
		if (!s)
			s = tar_read(u, NULL, -tar_data(&h) & 511);
		x.path.len = x.link.len = 0;
		x.has_size = x.has_mtime = x.sparse = 0;
		if (s)
			break;
	}
	/* tar pads its output to whole records, 10 KiB by default: what
	 * follows the end is read, up to 1 MiB. */
	end = u->got + (1 << 20);
	while (!s && (n = read(u->in, b, sizeof b)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (u->got += (unsigned long long)n) > end ||
		    (u->max && u->got > u->max))
			s = fail(EX_PROTO, "get -r: %s: more data after the archive's end", u->what);
	}
	if (!s)
		tar_finish(u);
	free(meta.p);
	free(x.path.p);
	free(x.link.p);
	return s;
}

/* ------------------------------------------------------------------ */
/* Built-in commands: files                                            */
/* ------------------------------------------------------------------ */

/* SHA-256 (FIPS 180-4), for --verify: what qga copied, as it went. */
struct sha256 {
	uint32_t h[8];
	uint64_t len;
	unsigned char blk[64];
};

static const uint32_t sha_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
	0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
	0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
	0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
	0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
	0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
	0xc67178f2};

#define ROR(x, n) ((x) >> (n) | (x) << (32 - (n)))

static void
sha_block(struct sha256 *c, const unsigned char *p)
{
	uint32_t w[64], v[8], t1, t2;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (; i < 64; i++)
		w[i] = w[i - 16] + w[i - 7] +
		       (ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ w[i - 15] >> 3) +
		       (ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ w[i - 2] >> 10);
	memcpy(v, c->h, sizeof v);
	for (i = 0; i < 64; i++) {
		t1 = v[7] + (ROR(v[4], 6) ^ ROR(v[4], 11) ^ ROR(v[4], 25)) +
		     ((v[4] & v[5]) ^ (~v[4] & v[6])) + sha_k[i] + w[i];
		t2 = (ROR(v[0], 2) ^ ROR(v[0], 13) ^ ROR(v[0], 22)) +
		     ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
		memmove(v + 1, v, 7 * sizeof *v);
		v[4] += t1;
		v[0] = t1 + t2;
	}
	for (i = 0; i < 8; i++)
		c->h[i] += v[i];
}

static void
sha_init(struct sha256 *c)
{
	static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

	memcpy(c->h, h0, sizeof h0);
	c->len = 0;
}

static void
sha_add(struct sha256 *c, const void *data, size_t n)
{
	const unsigned char *p = data;
	size_t k;

	for (; c && n; n -= k, p += k) {
		k = 64 - c->len % 64 < n ? 64 - c->len % 64 : n;
		memcpy(c->blk + c->len % 64, p, k);
		c->len += k;
		if (c->len % 64 == 0)
			sha_block(c, c->blk);
	}
}

/* Ends the hash and writes it in hex to hex[65]. */
static void
sha_hex(struct sha256 *c, char *hex)
{
	uint64_t bits = c->len * 8;
	unsigned char pad[72] = {0x80};
	int i;

	for (i = 0; i < 8; i++)
		pad[71 - i] = (unsigned char)(bits >> 8 * i);
	sha_add(c, pad, 1 + (119 - c->len % 64) % 64);
	sha_add(c, pad + 64, 8);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned)(c->h[i / 4] >> (24 - 8 * (i % 4)) & 0xff));
}

/* Bytes per guest-file-read or -write: the agent allows 48 MiB; 4 MiB
 * keeps memory small and the round trips few. */
#define CHUNK (4 << 20)

/* Guest files to close on exit: a file command's, and a streamed
 * program's stdout and stderr. */
static long long handles[2] = {-1, -1};
static char tmpname[4096];          /* a partial download, removed on exit */
static pid_t untar_pid = -1;        /* get -r's child, which unpacks into it */
static void file_close(int quiet);

static char remote_tmp[4096];    /* a partial upload, removed on exit */
static int guest_run(const char *const *argv);
static long long guest_start(const char *const *argv, int capture);
static int guest_wait(long long pid, struct buf *out, long long ms);
/* The longest wait for a program that qga runs in the guest for its own
 * ends (rm, mv, tar), which a guest that never says it ended would make
 * endless. */
#define RUN_TIMEOUT 600000
static unsigned long long put_data(int fd, long long at, const char *local, const char *remote,
                                   struct sha256 *sha);
static long long guest_seek(long long h, long long off, const char *whence);
static int put_win;              /* put: the guest runs Windows */
static char stream_tmp[32];      /* the start of exec's files, removed on exit */
static const char *const stream_rm[] = {"/bin/sh", "-c", "rm -f -- \"$1.1\" \"$1.2\"",
                                        "sh", stream_tmp, NULL};

/* Undoes what a file command left: the local temporary file, the guest's
 * open handle, the guest's temporary file. */
static void
cleanup(void)
{
	const char *rm[] = {"/bin/sh", "-c", "rm -f -- \"$1\"", "sh", remote_tmp, NULL};
	const char *del[] = {"cmd.exe", "/c", "del", "/q", remote_tmp, NULL};
	char pid[24];

	if (untar_pid > 0) {
		kill(untar_pid, SIGKILL);
		reap(untar_pid);
		untar_pid = -1;
	}
	if (tmpname[0])
		rm_tree(AT_FDCWD, tmpname);
	/* The channel is brought back even after a signal, to undo. */
	sess.dirty = 1;
	interrupted = 0;
	file_close(1);
	if (*stream_tmp)
		guest_run(stream_rm);
	if (stream_pid >= 0) {
		snprintf(pid, sizeof pid, "%lld", stream_pid);
		guest_run((const char *[]){"/bin/sh", "-c",
		          "kill -TERM -\"$1\" 2>/dev/null || kill -TERM \"$1\"", "sh", pid, NULL});
	}
	if (remote_tmp[0])
		guest_run(put_win ? del : rm);
}

/* Opens a guest file and returns its handle; when soft, -1 where it
 * cannot be opened. */
static long long
file_open(const char *path, const char *mode, int soft)
{
	struct buf req = {0};
	struct reply r;
	long long h;

	req_begin(&req, "guest-file-open");
	req_str(&req, "path", path);
	req_str(&req, "mode", mode);
	req_end(&req);
	call_any(&req, "guest-file-open", &r, opt.timeout);
	free(req.p);
	if (r.err >= 0 && soft)
		return -1;
	if (r.err >= 0)
		quit(agent_error(&r, "guest-file-open"));
	if (json_int(r.js, &r.tok[r.ret], &h) < 0)
		die(EX_PROTO, "guest-file-open: no handle in the reply");
	return h;
}

/* Closes the guest files left open. After an interruption or a timeout
 * the channel is resynchronised first, which drops the reply in flight.
 * Failures here are not reported over the one that led here. */
static void
file_close(int quiet)
{
	struct buf req = {0};
	struct reply r;
	int i;

	for (i = 0; i < 2 && sess.up; i++) {
		if (handles[i] < 0)
			continue;
		interrupted = 0;
		req_begin(&req, "guest-file-close");
		req_int(&req, "handle", handles[i]);
		req_end(&req);
		handles[i] = -1;
		if (!quiet)
			call(&req, "guest-file-close", &r);
		else if (transact(&sess, req.p, req.len, &r, "guest-file-close", opt.timeout))
			break;
	}
	free(req.p);
}

/* Shows bytes and rate on a terminal, for transfers worth watching, with
 * the share done and the time left when the size is known (size > 0). */
static void
progress(const char *what, unsigned long long bytes, unsigned long long size,
         long long t0, int last)
{
	static int tty = -1;
	long long ms = now_ms() - t0;
	unsigned long long rate;

	if (tty < 0)
		tty = isatty(2);
	if (!tty || (bytes < (16u << 20) && !last) || (last && ms < 1000))
		return;
	rate = ms > 0 ? (bytes >> 10) * 1000 / 1024 / (unsigned long long)ms : 0;
	fprintf(stderr, "\rqga: %s: %llu MiB", what, bytes >> 20);
	if (size >= bytes && size)
		fprintf(stderr, " of %llu (%llu%%), %llu s left", size >> 20, bytes * 100 / size,
		        ms > 0 && bytes ? (size - bytes) * (unsigned long long)ms / bytes / 1000 : 0);
	fprintf(stderr, ", %llu MiB/s   %s", rate, last ? "\n" : "");
	progress_shown = !last;
}

/* Copies the guest file at path, from off on, to fd; sha (unless NULL)
 * hashes what was copied. */
static void
file_read_to(const char *path, int fd, const char *fdname, long long off, struct sha256 *sha)
{
	struct buf req = {0}, data = {0};
	struct reply r;
	unsigned long long total = 0;
	long long t0 = now_ms(), size = 0;
	int eof, v, s;

	handles[0] = file_open(path, "r", 0);
	/* A terminal's progress line says how much is left. */
	if ((isatty(2) || off) && (size = guest_seek(handles[0], 0, "end")) > 0)
		guest_seek(handles[0], off, "set");
	if (size < off)
		die(EX_USAGE, "get -c: %s is longer here than %s in the guest", fdname, path);
	req_begin(&req, "guest-file-read");
	req_int(&req, "handle", handles[0]);
	req_int(&req, "count", CHUNK);
	req_end(&req);
	/* The next read is asked for before this one's data is decoded and
	 * written, so that the agent reads while qga writes. */
	if ((s = conn_write(&sess, req.p, req.len, conn_deadline(&sess, opt.timeout))))
		quit(s);
	do {
		if ((s = read_reply(&sess, &r, conn_deadline(&sess, opt.timeout),
		                    "reply to guest-file-read")))
			quit(s);
		if (r.err >= 0)
			quit(agent_error(&r, "guest-file-read"));
		eof = (v = json_get(r.js, r.tok, r.ret, "eof")) >= 0 &&
		      r.tok[v].type == JSON_TRUE;
		if ((v = json_get(r.js, r.tok, r.ret, "buf-b64")) < 0 ||
		    r.tok[v].type != JSON_STRING)
			die(EX_PROTO, "guest-file-read: no base64 data in the reply");
		if (!eof && r.tok[v].end > r.tok[v].start && !interrupted &&
		    (s = conn_write(&sess, req.p, req.len,
		                    conn_deadline(&sess, opt.timeout))))
			quit(s);
		if (b64_decode(&data, r.js, &r.tok[v]) < 0)
			die(EX_PROTO, "guest-file-read: no base64 data in the reply");
		if (interrupted)
			die(EX_IO, "%s: interrupted", path);
		if (opt.maxsize && data.len > opt.maxsize - total)
			die(EX_IO, "%s: more than --max-size (%llu bytes)", path, opt.maxsize);
		if (write_all(fd, data.p, data.len) < 0)
			die(EX_IO, "write %s:", fdname);
		sha_add(sha, data.p, data.len);
		total += data.len;
		progress(path, total, size > 0 ? (unsigned long long)size : 0, t0, 0);
	} while (!eof && data.len);
	progress(path, total, size > 0 ? (unsigned long long)size : 0, t0, 1);
	file_close(0);
	free(req.p);
	free(data.p);
}

/* Hashes the first n bytes of the local file fd into sha. */
static void
sha_file(struct sha256 *sha, int fd, long long n, const char *name)
{
	char b[65536];
	ssize_t k;
	long long at;

	for (at = 0; at < n; at += k) {
		if ((k = pread(fd, b, n - at < (long long)sizeof b ? (size_t)(n - at) : sizeof b,
		               at)) <= 0)
			die(EX_IO, "read %s:", name);
		sha_add(sha, b, (size_t)k);
	}
}

/* --verify: the guest's SHA-256 of path (sha256sum, or PowerShell's
 * Get-FileHash on Windows) against what qga copied. */
static void
verify(const char *what, const char *path, struct sha256 *sha)
{
	const char *sh[] = {"/bin/sh", "-c", "exec sha256sum -- \"$1\"", "sh", path, NULL};
	const char *ps[] = {"powershell.exe", "-NoProfile", "-NonInteractive", "-EncodedCommand",
	                    NULL, NULL};
	struct buf out = {0}, line = {0}, enc = {0};
	char mine[65];
	const char *q;
	int st, win = guest_windows();
	/* A minute, and the time to read the file at 20 MB/s. */
	long long ms = timeout_or(60000 + (long long)(sha->len / 20000));

	sha_hex(sha, mine);
	if (win) {
		/* PowerShell quotes a ' inside '...' by doubling it. */
		buf_str(&line, "(Get-FileHash -Algorithm SHA256 -LiteralPath '");
		for (q = path; *q; q++)
			buf_add(&line, *q == '\'' ? "''" : q, 1 + (*q == '\''));
		buf_str(&line, "').Hash");
		buf_add(&line, "", 1);
		buf_ps(&enc, line.p);
		enc.p[enc.len - 1] = 0;
		ps[4] = enc.p + 1;
	}
	st = guest_wait(guest_start(win ? ps : sh, 1), &out, ms);
	if (interrupted)
		die(EX_IO, "%s --verify: interrupted", what);
	if (st == -2)
		die(EX_TIMEOUT, "%s --verify: %s in the guest did not end within %s", what,
		    win ? "Get-FileHash" : "sha256sum", seconds(ms));
	if (st || out.len < 64)
		die(EX_AGENT, "%s --verify: no %s in the guest for %s", what,
		    win ? "Get-FileHash" : "sha256sum", path);
	if (strncasecmp(out.p, mine, 64))
		die(EX_IO, "%s --verify: %s differs: SHA-256 %s here, %.64s in the guest", what,
		    path, mine, out.p);
	free(out.p);
	free(line.p);
	free(enc.p);
}

static int
cmd_cat(int argc, char **argv)
{
	int i;

	if (argc < 2)
		return -1;
	on_leave = cleanup;
	for (i = 1; i < argc; i++) {
		fflush(stdout);
		file_read_to(argv[i], 1, "stdout", 0, NULL);
	}
	return 0;
}

/* Creates local's temporary sibling, named in tmpname, with the mode a
 * new file gets (mkstemp makes it 0600). */
static int
create_temp(const char *local)
{
	mode_t mask = umask(0);
	int fd;

	umask(mask);
	if ((size_t)snprintf(tmpname, sizeof tmpname, "%s.qga-XXXXXX", local) >=
	    sizeof tmpname)
		die(EX_USAGE, "get: local name too long: %s", local);
	if ((fd = mkostemp(tmpname, O_CLOEXEC)) >= 0 && fchmod(fd, 0666 & ~mask) < 0) {
		close(fd);
		unlink(tmpname);
		return -1;
	}
	return fd;
}

/* Ends get -r or put -r by tar's statuses: the guest's, then this side's. */
static void
tree_status(const char *what, int guest, int here, const char *name)
{
	if (guest)
		die(EX_AGENT, "%s: tar in the guest failed on %s (%s %d)", what, name,
		    guest == 127 ? "not found:" : "status", guest);
	if (here)
		die(EX_IO, "%s: tar here failed on %s (%s %d)", what, name,
		    here == 127 ? "not found:" : "status", here);
}

/* get -r's copy: LOCAL when it is not there, else the guest folder's
 * name in LOCAL, as cp -r has it; never one that is there already, so
 * that no copy is ever mixed with another. */
static const char *
tree_target(const char *remote, const char *local, char *path, size_t size)
{
	char base[1024];
	struct stat st;
	size_t n = strlen(remote);

	if (!stat(local, &st) && S_ISDIR(st.st_mode)) {
		while (n > 1 && (remote[n - 1] == '/' || remote[n - 1] == '\\'))
			n--;
		snprintf(base, sizeof base, "%.*s", (int)n, remote);
		if (!*guest_base(base) || !strcmp(guest_base(base), ".") ||
		    !strcmp(guest_base(base), ".."))
			die(EX_USAGE, "get -r: name the local folder for '%s'", remote);
		if ((size_t)snprintf(path, size, "%s/%s", local, guest_base(base)) >= size)
			die(EX_USAGE, "get -r: local name too long: %s", local);
		local = path;
	}
	if (!lstat(local, &st))
		die(EX_USAGE, "get -r: %s is there already: a copy never goes into "
		    "another (name a new folder)", local);
	return local;
}

/* Renames from to to, which must not exist: a copy never replaces what
 * came meanwhile. Without renameat2 (Linux before 3.15, or a filesystem
 * without RENAME_NOREPLACE) a look comes first. */
static int
rename_new(const char *from, const char *to)
{
	struct stat st;

	if (!syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 1 /* RENAME_NOREPLACE */))
		return 0;
	if (errno != ENOSYS && errno != EINVAL)
		return -1;
	if (!lstat(to, &st)) {
		errno = EEXIST;
		return -1;
	}
	return rename(from, to);
}

/* get -r's child stopped reading before the archive's end: it said why. */
static _Noreturn void
untar_ended(void)
{
	int st = reap(untar_pid);

	untar_pid = -1;
	leave(st ? st : EX_PROTO);
}

/* get -r: tar in the guest writes the folder, streamed as exec streams
 * it, to a child of qga's that unpacks it (untar) into a fresh folder
 * beside the copy's place, which it takes when the archive is whole. */
static void
get_tree(const char *remote, const char *local)
{
	struct untar u = {0};
	struct buf args = {0}, none = {0};
	char path[4096], keep[sizeof tmpname];
	int p[2], st, here;

	local = tree_target(remote, local, path, sizeof path);
	if ((size_t)snprintf(tmpname, sizeof tmpname, "%s.qga-XXXXXX", local) >=
	    sizeof tmpname || !mkdtemp(tmpname)) {
		tmpname[0] = 0;
		die(EX_IO, "get -r: make a folder beside %s:", local);
	}
	u = (struct untar){.what = remote, .max = opt.maxsize, .mask = umask(0)};
	umask(u.mask);
	if ((u.root = open(tmpname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    pipe2(p, O_CLOEXEC) < 0)
		die(EX_IO, "get -r: %s:", tmpname);
	buf_str(&args, ",\"-c\",\"cd -- \\\"$1\\\" && exec tar -cf - .\",\"sh\",");
	buf_jstr(&args, remote, strlen(remote));
	fflush(stdout);
	/* The child only unpacks: a signal ends it as it is, the session is
	 * not its own, and it undoes nothing (qga does). */
	hold_signals(1);
	if ((untar_pid = fork()) < 0)
		die(EX_IO, "get -r: fork:");
	if (!untar_pid) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		hold_signals(0);
		on_leave = NULL;
		close(sess.fd);
		sess.owed = sess.partial = 0;
		close(p[1]);
		u.in = p[0];
		*errmsg = 0;
		if ((st = untar(&u)) && !*errmsg)
			fail(st, "get -r: %s: the archive from the guest ended early", remote);
		if (st)
			say();
		_exit(st);
	}
	hold_signals(0);
	close(p[0]);
	st = exec_stream(&args, &none, &none, "/bin/sh", 0, -1, 1, p[1]);
	/* A guest's tar that failed says why: the child's words would not. */
	if (st)
		kill(untar_pid, SIGKILL);
	close(p[1]);
	here = reap(untar_pid);
	untar_pid = -1;
	if (st < 0)
		die(EX_AGENT, "get -r: the guest cannot stream tar's output");
	if (st)
		die(EX_AGENT, "get -r: tar in the guest failed on %s (%s %d)", remote,
		    st == 127 ? "not found:" : "status", st);
	if (here > 128)
		die(EX_IO, "get -r: the unpacking was ended by signal %d", here - 128);
	if (here)
		leave(here);
	if (fchmod(u.root, 0777 & ~u.mask) < 0)
		die(EX_IO, "get -r: %s:", tmpname);
	if (rename_new(tmpname, local) < 0) {
		if (errno != EEXIST && errno != ENOTEMPTY)
			die(EX_IO, "get -r: rename to %s:", local);
		/* The copy is whole: it stays, under its temporary name. */
		copy(keep, sizeof keep, tmpname);
		tmpname[0] = 0;
		die(EX_IO, "get -r: %s came there meanwhile: the copy is in %s", local, keep);
	}
	tmpname[0] = 0;
	close(u.root);
	free(args.p);
}

/* put -r: tar here writes the folder into a temporary file beside remote,
 * which tar in the guest unpacks into remote and removes. */
static void
put_tree(const char *local, const char *remote)
{
	static const char unpack[] = "mkdir -p -- \"$2\" && tar -xpf \"$1\" -C \"$2\"; "
	                             "s=$?; rm -f -- \"$1\"; exit $s";
	const char *mktar[] = {"tar", "-cf", "-", "-C", local, ".", NULL};
	const char *run[] = {"/bin/sh", "-c", unpack, "sh", remote_tmp, remote, NULL};
	struct buf args = {0}, none = {0};
	unsigned long long total;
	size_t n;
	int p[2], st;
	pid_t pid;

	if (guest_run((const char *[]){"/bin/sh", "-c", "command -v tar", NULL}))
		die(EX_AGENT, "put -r: the guest has no tar (or no /bin/sh or guest-exec)");
	n = strlen(remote);
	snprintf(remote_tmp, sizeof remote_tmp, "%.*s.qga-put-%08x.tar",
	         (int)(n - (n > 1 && remote[n - 1] == '/')), remote, random_id());
	if (pipe2(p, O_CLOEXEC) < 0 || (pid = spawn(mktar, -1, p[1])) < 0)
		die(EX_IO, "put -r: start tar here:");
	close(p[1]);
	handles[0] = file_open(remote_tmp, "w", 0);
	total = put_data(p[0], -1, local, remote, NULL);
	close(p[0]);
	if ((st = reap(pid)))
		tree_status("put -r", 0, st, local);
	if (guest_seek(handles[0], 0, "end") != (long long)total)
		die(EX_PROTO, "put -r: the archive in the guest is not as long as written");
	file_close(0);
	for (st = 1; st < 6; st++) {
		buf_add(&args, ",", 1);
		buf_jstr(&args, run[st], strlen(run[st]));
	}
	if ((st = exec_stream(&args, &none, &none, "/bin/sh", 0, -1, 0, 1)) < 0)
		st = guest_run(run);
	tree_status("put -r", st, 0, remote);
	remote_tmp[0] = 0;
	free(args.p);
}

/* With several targets, get puts each one's copy in a folder of its own
 * in dir, named after the target: the name of that folder, once the
 * child of the target runs. */
static const char *
target_dir(const char *dir)
{
	static char path[2048];
	const char *s;
	size_t n;

	need_session();
	if (mkdir(dir, 0777) < 0 && errno != EEXIST)
		die(EX_IO, "mkdir %s:", dir);
	n = (size_t)snprintf(path, sizeof path - 256, "%s/", dir);
	for (s = many.tag + strspn(many.tag, "/"); *s && n < sizeof path - 1; s++)
		path[n++] = *s == '/' ? '_' : *s;
	path[n] = 0;
	if (mkdir(path, 0777) < 0 && errno != EEXIST)
		die(EX_IO, "mkdir %s:", path);
	return path;
}

static int
cmd_get(int argc, char **argv)
{
	const char *remote, *base, *local;
	char path[4096];
	struct stat st;
	struct sha256 sha;
	long long off = 0;
	int ch, fd, tree = 0, cont = 0, check = 0;

	while ((ch = cmdopt(argc, argv)) != -1)
		*(ch == 'r' ? &tree : ch == 'c' ? &cont : &check) = 1;
	argc -= optind - 1;
	argv += optind - 1;
	if (argc < 2 || argc > 3)
		return -1;
	remote = argv[1];
	base = guest_base(remote);
	local = argc == 3 ? argv[2] : base;
	if (!*local)
		die(EX_USAGE, "get: name the local file for '%s'", remote);
	on_leave = cleanup;
	sha_init(&sha);
	if (tree && (cont || check))
		die(EX_USAGE, "get -r copies a folder whole: not with -c or --verify");
	if (many.n > 1 && strcmp(local, "-"))
		local = target_dir(argc == 3 ? argv[2] : ".");
	if (tree) {
		get_tree(remote, local);
		return 0;
	}
	if (!strcmp(local, "-")) {
		if (cont)
			die(EX_USAGE, "get -c: name the local file to continue");
		file_read_to(remote, 1, "stdout", 0, check ? &sha : NULL);
		if (check)
			verify("get", remote, &sha);
		return 0;
	}
	if (stat(local, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (!*base)
			die(EX_USAGE, "get: name the local file for '%s'", remote);
		snprintf(path, sizeof path, "%s/%s", local, base);
		local = path;
	}
	/* -c continues local in place, from where it ends. */
	if (cont && ((fd = open(local, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0666)) < 0 ||
	             (off = lseek(fd, 0, SEEK_END)) < 0))
		die(EX_IO, "open %s:", local);
	if (!cont && (fd = create_temp(local)) < 0) {
		tmpname[0] = 0;
		die(EX_IO, "create %s:", local);
	}
	if (check)
		sha_file(&sha, fd, off, local);
	file_read_to(remote, fd, local, off, check ? &sha : NULL);
	if (check)
		verify("get", remote, &sha);
	if (close(fd) < 0 || (!cont && rename(tmpname, local) < 0))
		die(EX_IO, "write %s:", local);
	tmpname[0] = 0;
	return 0;
}

/* Starts argv[0] with the arguments after it in the guest, its stdout
 * captured when asked: its pid, or -1 when it could not be run. Failures
 * are not reported: the caller says what they mean. */
static long long
guest_start(const char *const *argv, int capture)
{
	struct buf req = {0};
	struct reply r;
	struct doc d;
	long long pid = -1;

	need_session();
	req_begin(&req, "guest-exec");
	req_str(&req, "path", *argv);
	req_key(&req, "arg");
	buf_add(&req, "[", 1);
	while (*++argv) {
		buf_jstr(&req, *argv, strlen(*argv));
		buf_add(&req, ",", argv[1] != NULL);
	}
	buf_str(&req, capture ? "],\"capture-output\":true}}" : "]}}");
	if (!transact(&sess, req.p, req.len, &r, "guest-exec", opt.timeout) && r.ret >= 0) {
		doc_reply(&d, &r, "guest-exec", SHAPE_EXEC);
		pid = dint(&d, dget(&d, 0, "pid"), -1);
		free(d.t);
	}
	free(req.p);
	return pid;
}

/* Waits up to ms for the program of pid to end: its exit status, -1
 * when it did not run or a signal ended it or the wait, -2 when it still
 * runs at the deadline; its captured stdout in out, unless NULL. The
 * status is asked for at once, then less and less often. */
static int
guest_wait(long long pid, struct buf *out, long long ms)
{
	struct timespec nap = {0, 2000000};
	long long deadline = deadline_in(ms);
	struct buf req = {0};
	struct reply r;
	struct doc d;
	int code = -1, ended = 0, polls = 0;

	if (pid < 0)
		return -1;
	req_begin(&req, "guest-exec-status");
	req_int(&req, "pid", pid);
	req_end(&req);
	while (!ended && !interrupted &&
	       !transact(&sess, req.p, req.len, &r, "guest-exec-status", opt.timeout) &&
	       r.ret >= 0) {
		doc_reply(&d, &r, "guest-exec-status", SHAPE_STATUS);
		if ((ended = dtrue(&d, dget(&d, 0, "exited")))) {
			code = dget(&d, 0, "signal") >= 0 ? -1 :
			       (int)dint(&d, dget(&d, 0, "exitcode"), -1);
			if (out && dget(&d, 0, "out-data") >= 0)
				b64_decode(out, d.js, &d.t[dget(&d, 0, "out-data")]);
		} else if (now_ms() >= deadline) {
			code = -2;
			ended = 1;
		} else {
			nanosleep(&nap, NULL);
			if (++polls > 50 && nap.tv_nsec < 100000000)
				nap.tv_nsec *= 2;
		}
		free(d.t);
	}
	free(req.p);
	return code;
}

/* Runs a program in the guest as guest_start does, and waits for it up
 * to RUN_TIMEOUT (-t overrides it); after a signal, what undoes a command
 * waits no longer than a reply. */
static int
guest_run(const char *const *argv)
{
	return guest_wait(guest_start(argv, 0), NULL, signals ? opt.timeout :
	                  timeout_or(RUN_TIMEOUT));
}

/* Sends fd's bytes to the open guest file; returns how many. sha (unless
 * NULL) hashes them. */
static unsigned long long
put_data(int fd, long long at, const char *local, const char *remote, struct sha256 *sha)
{
	struct buf req = {0}, data = {0};
	unsigned long long total = 0, size = 0;
	long long t0 = now_ms(), count;
	struct reply r;
	struct stat st;
	struct doc d;
	size_t off;
	ssize_t n;

	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		size = (unsigned long long)st.st_size;
	else
		at = -1;
	buf_need(&data, CHUNK);
	for (;;) {
		/* A file is read at its own offsets, which the children of
		 * several targets do not share. */
		for (data.len = 0; data.len < CHUNK; data.len += (size_t)n) {
			n = at >= 0 ? pread(fd, data.p + data.len, CHUNK - data.len, at) :
			    wait_input(fd) < 0 ? -1 : read(fd, data.p + data.len, CHUNK - data.len);
			at += at < 0 || n <= 0 ? 0 : n;
			if (n < 0 && errno == EINTR && !interrupted)
				n = 0;
			else if (n < 0)
				die(EX_IO, "read %s:", local);
			else if (n == 0)
				break;
		}
		sha_add(sha, data.p, data.len);
		/* The agent may write less than it was given: send the rest. */
		for (off = 0; off < data.len; off += (size_t)count) {
			if (interrupted)
				die(EX_IO, "%s: interrupted", remote);
			req_begin(&req, "guest-file-write");
			req_int(&req, "handle", handles[0]);
			req_key(&req, "buf-b64");
			buf_add(&req, "\"", 1);
			b64_encode(&req, (unsigned char *)data.p + off, data.len - off);
			buf_add(&req, "\"", 1);
			req_end(&req);
			call(&req, "guest-file-write", &r);
			doc_reply(&d, &r, "guest-file-write", "{count:i,eof:b}");
			count = dint(&d, dget(&d, 0, "count"), -1);
			free(d.t);
			if (count <= 0 || (size_t)count > data.len - off)
				die(EX_PROTO, "%s: the agent wrote %lld of %zu bytes",
				    remote, count, data.len - off);
			total += (unsigned long long)count;
			progress(remote, total, size, t0, 0);
		}
		if (data.len < CHUNK)
			break;
	}
	progress(remote, total, size, t0, 1);
	free(req.p);
	free(data.p);
	return total;
}

/* Moves the guest file h's position to off from its start, its end, or
 * where it is ("cur", which also clears the end-of-file mark); returns it. */
static long long
guest_seek(long long h, long long off, const char *whence)
{
	struct buf req = {0};
	struct reply r;
	long long pos;
	int v;

	req_begin(&req, "guest-file-seek");
	req_int(&req, "handle", h);
	req_int(&req, "offset", off);
	req_str(&req, "whence", whence);
	req_end(&req);
	call(&req, "guest-file-seek", &r);
	free(req.p);
	v = json_get(r.js, r.tok, r.ret, "position");
	return v >= 0 && !json_int(r.js, &r.tok[v], &pos) ? pos : -1;
}

/* Copies what the guest file h gained since the last read to fd; at the
 * program's end (last) the agent's end-of-file mark is cleared first, as
 * a C library may keep it once set. Returns whether anything came. */
static int
stream_copy(long long h, int fd, int last)
{
	struct buf req = {0}, data = {0};
	struct reply r;
	int v, eof, got = 0;

	if (last)
		guest_seek(h, 0, "cur");
	req_begin(&req, "guest-file-read");
	req_int(&req, "handle", h);
	req_int(&req, "count", CHUNK);
	req_end(&req);
	do {
		call(&req, "guest-file-read", &r);
		eof = (v = json_get(r.js, r.tok, r.ret, "eof")) >= 0 && r.tok[v].type == JSON_TRUE;
		if ((v = json_get(r.js, r.tok, r.ret, "buf-b64")) < 0 ||
		    b64_decode(&data, r.js, &r.tok[v]) < 0)
			die(EX_PROTO, "guest-file-read: no base64 data in the reply");
		if (write_all(fd, data.p, data.len) < 0) {
			if (errno == EPIPE && untar_pid > 0)
				untar_ended();
			die(EX_IO, "write %s:", fd == 1 ? "stdout" : "stderr");
		}
		got |= data.len > 0;
	} while (!eof && data.len);
	free(req.p);
	free(data.p);
	return got;
}

/* Streams a program's output: a wrapper shell (sh -c WRAP sh F PROG
 * ARG...) sends stdout and stderr into new files F.1 and F.2 in /tmp,
 * made with O_EXCL (noclobber), so that no link can be planted there,
 * and readable by root alone; then it becomes PROG, in a process group of
 * its own where the agent's PATH has setsid(1). qga opens both files, has
 * them removed at once (the open files live on, so nothing is left in the
 * guest whatever happens next) and reads each from where it stopped while
 * it polls the program's status. A program whose output nobody
 * would read any more, after -T or a signal, is stopped with its group,
 * not left to fill the guest's disk. stdout goes to out. Returns the exit
 * status, or -1 when the guest cannot stream; PROG has not run then. */
static int
exec_stream(const struct buf *args, const struct buf *env, const struct buf *in,
            const char *prog, int merge, long long deadline, int asked, int out)
{
	struct buf req = {0}, st = {0}, words = {0};
	struct reply r;
	struct doc d;
	const char *why = "guest-file-read is not enabled in the guest agent";
	char path[sizeof stream_tmp + 12], wrap[224], *keep = NULL;
	const char *pre[] = {"-c", wrap, "sh", stream_tmp, NULL};
	void (*was)(void) = on_leave;
	long long delay = 200000, rm;
	int i, got;

	if (!enabled("guest-file-read"))
		goto cannot;
	snprintf(stream_tmp, sizeof stream_tmp, "/tmp/qga-exec.%08x", random_id());
	snprintf(wrap, sizeof wrap, "f=$1; shift; u=$(umask); umask 077; set -C; "
	         "exec >\"$f.1\" 2>%s; umask $u; command -v setsid >/dev/null && "
	         "exec setsid \"$@\"; exec \"$@\"", merge ? "&1" : "\"$f.2\"");
	/* The environment -e gives is the program's alone, through env -i,
	 * not the wrapper's, to which sh adds its own. */
	if (env->len)
		buf_str(&words, ",\"env\",\"-i\"");
	buf_add(&words, env->p, env->len);
	buf_add(&words, ",", 1);
	buf_jstr(&words, prog, strlen(prog));
	buf_add(&words, args->p, args->len);
	exec_request(&req, "/bin/sh", pre, &words, &(struct buf){0}, in, "true");
	free(words.p);
	/* A signal waits until qga knows the pid it would stop. */
	hold_signals(1);
	call_any(&req, "guest-exec", &r, opt.timeout);
	hold_signals(0);
	why = "the guest has no /bin/sh";
	if (r.err >= 0)
		goto cannot;
	doc_reply(&d, &r, "guest-exec", SHAPE_EXEC);
	req_begin(&st, "guest-exec-status");
	req_int(&st, "pid", stream_pid = dint(&d, dget(&d, 0, "pid"), -1));
	req_end(&st);
	free(d.t);
	on_leave = cleanup;
	for (i = 0; i < 2 - merge; i++) {
		snprintf(path, sizeof path, "%s.%d", stream_tmp, i + 1);
		while ((handles[i] = file_open(path, "r", 1)) < 0) {
			why = "the guest cannot make files in /tmp";
			if (exec_ended(&st, &d))
				goto cannot;
			exec_nap(deadline, delay, prog, stream_pid);
		}
	}
	rm = guest_start(stream_rm, 0);
	stream_tmp[0] = 0;
	for (;;) {
		/* The status is kept from the reads that follow it; the program
		 * that ended is not one to stop any more. */
		if ((i = exec_ended(&st, &d))) {
			d.js = keep = memcpy(xrealloc(NULL, d.t[0].end), d.js, d.t[0].end);
			stream_pid = -1;
		}
		got = stream_copy(handles[0], out, i);
		if (!merge)
			got |= stream_copy(handles[1], 2, i);
		if (i)
			break;
		/* Soon again after output, else less and less often, down to
		 * 25 times a second. */
		delay = got ? 200000 : delay * 2 > 40000000 ? 40000000 : delay * 2;
		exec_nap(deadline, delay, prog, stream_pid);
	}
	on_leave = was;
	file_close(0);
	guest_wait(rm, NULL, timeout_or(RUN_TIMEOUT));
	free(req.p);
	free(st.p);
	i = exec_finish(&d, prog);
	free(keep);
	return i;
cannot:
	/* The wrapper ended before its files were made: what it made goes. */
	if (stream_pid >= 0) {
		free(d.t);
		stream_pid = -1;
		guest_run(stream_rm);
	}
	stream_tmp[0] = 0;
	on_leave = was;
	if (asked)
		warn("exec: not streaming: %s", why);
	free(req.p);
	free(st.p);
	return -1;
}

static const struct option get_longs[] = {
	{"recursive", no_argument, NULL, 'r'},
	{"continue", no_argument, NULL, 'c'},
	{"verify", no_argument, NULL, O_VERIFY},
	{NULL, 0, NULL, 0}
};

static const struct option put_longs[] = {
	{"append", no_argument, NULL, 'a'},
	{"recursive", no_argument, NULL, 'r'},
	{"continue", no_argument, NULL, 'c'},
	{"verify", no_argument, NULL, O_VERIFY},
	{"inplace", no_argument, NULL, O_INPLACE},
	{"mode", required_argument, NULL, 'm'},
	{NULL, 0, NULL, 0}
};

/* put writes a temporary file beside the target, named for what it is,
 * checks its size, gives it its mode and renames it over the target with
 * guest-exec, so that the target is the old file or the new one, never
 * part of either. Without guest-exec (or with --inplace, or -a) it writes
 * in place, and says so. */
static int
cmd_put(int argc, char **argv)
{
	static const char finish[] =
		"m=$1; if [ -e \"$3\" ]; then m=$(stat -c %a -- \"$3\" 2>/dev/null || "
		"echo \"$1\"); chown \"$(stat -c %u:%g -- \"$3\")\" \"$2\" 2>/dev/null; fi; "
		"chmod \"$m\" \"$2\" && mv -f -- \"$2\" \"$3\"";
	const char *local, *remote, *base;
	const char *run[8] = {"/bin/sh", "-c", "rm -f -- \"$1\"????????", "sh"};
	char prefix[4080], mstr[24], pat[4096], into[4096];
	unsigned long long total;
	long long mode = -1, size, off = 0;
	int ch, fd = 0, append = 0, inplace = 0, exec, isnew = 0, tree = 0, cont = 0, check = 0;
	struct sha256 sha;
	struct stat st;
	char *end;

	while ((ch = cmdopt(argc, argv)) != -1) {
		if (ch == 'a')
			append = 1;
		else if (ch == 'r')
			tree = 1;
		else if (ch == 'c')
			cont = 1;
		else if (ch == O_VERIFY)
			check = 1;
		else if (ch == O_INPLACE)
			inplace = 1;
		else if ((mode = num(optarg, &end, 8, 07777)) < 0 || *end)
			die(EX_USAGE, "put: bad --mode '%s': expected octal", optarg);
	}
	argc -= optind;
	argv += optind;
	if (argc != 2)
		die(EX_USAGE, "put: name the local file, or - for stdin, and the "
		    "guest file: qga put LOCAL|- REMOTE");
	local = argv[0];
	remote = argv[1];
	if (tree && (cont || check || append))
		die(EX_USAGE, "put -r copies a folder whole: not with -a, -c or --verify");
	if (cont && (append || !strcmp(local, "-")))
		die(EX_USAGE, "put -c continues a file from where the guest's copy ends: "
		    "not with -a or stdin");
	if (check && append)
		die(EX_USAGE, "put --verify checks the whole file: not with -a");
	if (tree) {
		on_leave = cleanup;
		put_tree(local, remote);
		return 0;
	}
	if (!strcmp(local, "-") && isatty(0))
		die(EX_USAGE, "put: stdin is a terminal: pipe the data in, or name a file");
	many.reads_stdin = !strcmp(local, "-");
	if (strcmp(local, "-") && ((fd = open(local, O_RDONLY | O_CLOEXEC)) < 0 ||
	                           fstat(fd, &st) < 0))
		die(EX_IO, "open %s:", local);
	if (mode < 0)
		mode = fd ? st.st_mode & 0777 : 0644;
	snprintf(mstr, sizeof mstr, "%llo", (unsigned long long)mode);
	on_leave = cleanup;
	exec = enabled("guest-exec") && enabled("guest-exec-status");
	inplace |= cont;
	if (!append && !inplace && !exec)
		warn("put: guest-exec is disabled in the guest agent: writing %s in "
		     "place, not atomically", remote);
	if (append || inplace || !exec) {
		/* Whether the file is new, for its mode. */
		struct buf req = {0};
		struct reply r;
		req_begin(&req, "guest-file-open");
		req_str(&req, "path", remote);
		req_str(&req, "mode", "r");
		req_end(&req);
		call_any(&req, "guest-file-open", &r, opt.timeout);
		if (!(isnew = r.err >= 0) && json_int(r.js, &r.tok[r.ret], &handles[0]) == 0)
			file_close(0);
		free(req.p);
	}
	if (!append && !inplace && exec) {
		/* A leftover of an earlier put that was killed goes first. A
		 * folder as the target takes the file in it under its own name,
		 * as cp does (mv would put the temporary file in it). */
		put_win = guest_windows();
		for (;;) {
			base = guest_base(remote);
			if ((size_t)snprintf(prefix, sizeof prefix, "%.*s.%s.qga-put-",
			                     (int)(base - remote), remote, base) >= sizeof prefix - 16)
				die(EX_USAGE, "put: guest path too long: %s", remote);
			snprintf(pat, sizeof pat, "%s????????", prefix);
			run[2] = "[ ! -d \"$2\" ] || exit 21; rm -f -- \"$1\"????????";
			run[4] = prefix;
			run[5] = remote;
			if (put_win) {
				guest_run((const char *[]){"cmd.exe", "/c", "del", "/q", pat, NULL});
				break;
			}
			if (guest_run(run) != 21)
				break;
			if (!strcmp(local, "-") || remote == into)
				die(EX_USAGE, "put: %s is a folder in the guest: name the file to "
				    "write in it", remote);
			if ((size_t)snprintf(into, sizeof into, "%s%s%s", remote, *base ? "/" : "",
			                     strrchr(local, '/') ? strrchr(local, '/') + 1 : local) >=
			    sizeof into)
				die(EX_USAGE, "put: guest path too long: %s/...", remote);
			remote = into;
		}
		snprintf(remote_tmp, sizeof remote_tmp, "%s%08x", prefix, random_id());
	}
	handles[0] = file_open(*remote_tmp ? remote_tmp : remote, append || cont ? "a" : "w", 0);
	/* A new file written in place gets its mode before its data, so that
	 * it is never world-writable, even when interrupted. */
	if (isnew && exec) {
		run[2] = "chmod \"$1\" \"$2\"";
		run[4] = mstr;
		run[5] = remote;
		guest_run(run);
	}
	/* -c sends what comes after the guest's copy, which it appends to. */
	if (cont && (off = guest_seek(handles[0], 0, "end")) > st.st_size)
		die(EX_USAGE, "put -c: %s is longer in the guest than %s here", remote, local);
	sha_init(&sha);
	if (check)
		sha_file(&sha, fd, off, local);
	total = put_data(fd, fd ? off : lseek(0, 0, SEEK_CUR), local, remote, check ? &sha : NULL);
	size = guest_seek(handles[0], 0, "end");
	if (append ? size < (long long)total : size != off + (long long)total)
		die(EX_PROTO, "put: %s holds %lld bytes after %llu were written", remote,
		    size, total);
	file_close(0);
	/* The temporary file is checked before it takes the target's place. */
	if (check)
		verify("put", *remote_tmp ? remote_tmp : remote, &sha);
	if (*remote_tmp) {
		run[2] = finish;
		run[4] = mstr;
		run[5] = remote_tmp;
		run[6] = remote;
		if (guest_run(put_win ? (const char *[]){"cmd.exe", "/c", "move", "/y", remote_tmp,
		                                     remote, NULL} : run))
			die(EX_AGENT, "put: %s could not be put in place: it is unchanged",
			    remote);
		remote_tmp[0] = 0;
	} else if (isnew && !exec)
		warn("put: %s is new, and the agent made it world-writable (0666): "
		     "guest-exec, which would set its mode, is disabled", remote);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Built-in commands: information                                      */
/* ------------------------------------------------------------------ */

/* The shape (see shape_at) of each reply that a command shows as text. */
static const char *const shapes[][2] = {
	{"guest-info", SHAPE_INFO},
	{"guest-get-osinfo", SHAPE_OSINFO},
	{"guest-get-host-name", "{host-name:s}"},
	{"guest-get-time", "i"},
	{"guest-get-timezone", "{zone:s,offset:i}"},
	{"guest-get-users", "[{user:s,domain:s,login-time:n}]"},
	{"guest-network-get-interfaces", "[{name:s,hardware-address:s,"
	 "ip-addresses:[{ip-address:s,ip-address-type:s,prefix:i}]}]"},
	{"guest-get-fsinfo", "[{name:s,mountpoint:s,type:s,used-bytes:i,total-bytes:i,"
	 "total-bytes-privileged:i,disk:[{dev:s}]}]"},
	{"guest-get-vcpus", "[{logical-id:i,online:b,can-offline:b}]"},
	{"guest-get-disks", "[{name:s,partition:b,dependencies:[s],alias:s,"
	 "address:{bus-type:s,serial:s}}]"},
	{"guest-network-get-route", "[{iface:s,destination:s,gateway:s,mask:s,"
	 "desprefixlen:s,nexthop:s,metric:i,flags:n,version:i}]"},
	{"guest-get-load", "{load1m:n,load5m:n,load15m:n}"},
	{"guest-fsfreeze-status", "s"},
	{"guest-fstrim", "{paths:[{path:s,error:s,trimmed:i}]}"},
	{"guest-ssh-get-authorized-keys", "{keys:[s]}"},
};

static const char *
shape_of(const char *name)
{
	size_t i;

	for (i = 0; strcmp(shapes[i][0], name); i++)
		;
	return shapes[i][1];
}

/* Runs a command without arguments; with -j prints its reply and ends. */
static void
simple_call(const char *name, struct reply *r, struct doc *d)
{
	char text[128];
	struct buf req = {text, 0, sizeof text, 1};

	req.len = (size_t)snprintf(text, sizeof text, "{\"execute\":\"%s\"}", name);
	call(&req, name, r);
	if (opt.json) {
		print_result(r);
		leave(0);
	}
	if (d)
		doc_reply(d, r, name, shape_of(name));
}

/* Formats Unix time as ISO 8601 UTC, with nanoseconds unless nsec < 0. */
static const char *
iso_time(long long secs, long nsec)
{
	static char s[80];
	time_t t = (time_t)secs;
	struct tm tm;
	int n;

	if (!gmtime_r(&t, &tm))
		return "-";
	n = snprintf(s, sizeof s, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
	             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	snprintf(s + n, sizeof s - (size_t)n, nsec >= 0 ? ".%09ldZ" : "Z", nsec);
	return s;
}

/* Sizes as df -h shows them, rounded up: 17G, 9.5M, 512. */
static const char *
human(long long v, char *s, size_t n)
{
	static const char units[] = "KMGTPE";
	unsigned long long x = (unsigned long long)v, d = 1, q, r;
	int u = -1;

	if (v < 0)
		return "-";
	while (x / d >= 1024 && u < 5) {
		d *= 1024;
		u++;
	}
	q = x / d;
	r = x % d;
	if (u >= 0 && q < 10) {
		/* Tenths, rounded up through 1/1024ths to stay in range. */
		q = q * 10 + ((r + d / 1024 - 1) / (d / 1024) * 10 + 1023) / 1024;
		if (q < 100) {
			snprintf(s, n, "%llu.%llu%c", q / 10, q % 10, units[u]);
			return s;
		}
		q /= 10;
	} else
		q += r > 0;
	if (q == 1024 && u < 5)
		snprintf(s, n, "1.0%c", units[u + 1]);
	else if (u < 0)
		snprintf(s, n, "%llu", q);
	else
		snprintf(s, n, "%llu%c", q, units[u]);
	return s;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
by_number(const void *a, const void *b)
{
	long long x = num(*(char *const *)a, NULL, 10, 1LL << 40);
	long long y = num(*(char *const *)b, NULL, 10, 1LL << 40);

	return (x > y) - (x < y);
}

static int
listed_in(const struct doc *d, int cmds, const char *name)
{
	int i, k, v;

	each(d, cmds, i, k)
		if ((v = dget(d, i, "name")) >= 0 && json_eq(d->js, &d->t[v], name))
			return 1;
	return 0;
}

static void
show_info(const struct doc *d)
{
	char **names, *version;
	int cmds, i, k, n = 0, off = 0;

	cmds = dget(d, 0, "supported_commands");
	names = xrealloc(NULL, (cmds >= 0 ? d->t[cmds].size : 0) * sizeof *names + 1);
	each(d, cmds, i, k) {
		char *nm = dstr(d, dget(d, i, "name")), *line;
		int en = dtrue(d, dget(d, i, "enabled"));
		int sr = dtrue(d, dget(d, i, "success-response"));
		int de = dtrue(d, dget(d, i, "denied"));
		line = xrealloc(NULL, strlen(nm) + 64);
		snprintf(line, strlen(nm) + 64, "%-34s %s%s", nm, de ? "denied by the proxy" :
		         en ? "enabled" : "disabled", sr ? "" : ", no reply on success");
		off += !en;
		names[n++] = line;
		free(nm);
	}
	qsort(names, (size_t)n, sizeof *names, by_name);
	version = dstr(d, dget(d, 0, "version"));
	text_line("qemu-ga %s: %d commands, %d disabled", version, n, off);
	for (i = 0; i < n; i++) {
		text_line("%s", names[i]);
		free(names[i]);
	}
	for (i = 0; i < (int)NNEWER; i += 2)
		if (!listed_in(d, cmds, newer[i]))
			printf("%-34s not in this agent (%s)\n", newer[i], missing_why(newer[i]));
	free(names);
	free(version);
}

static void
show_osinfo(const struct doc *d)
{
	int i, k;
	char *key, *s;

	for (k = 0, i = 1; (unsigned)k < d->t[0].size; k++, i = (int)d->t[i + 1].next) {
		key = dstr(d, i);
		s = dtext(d, i + 1);
		text_line("%s: %s", key, s);
		free(key);
		free(s);
	}
}

/* A reply that is a string, as fsfreeze status has it. */
static void
show_text(const struct doc *d)
{
	char *s;

	text_line("%s", s = dtext(d, 0));
	free(s);
}

static void
show_hostname(const struct doc *d)
{
	char *s;

	text_line("%s", s = dstr(d, dget(d, 0, "host-name")));
	free(s);
}

static void
show_time(const struct doc *d)
{
	long long ns;

	ns = dint(d, 0, 0);
	printf("%s\n", iso_time(ns / 1000000000, (long)(ns % 1000000000)));
}

static void
show_timezone(const struct doc *d)
{
	long long off;
	unsigned long long a;
	char *zone;

	off = dint(d, dget(d, 0, "offset"), 0);
	/* Unsigned, so that the most negative offset has a size too. */
	a = off < 0 ? 0 - (unsigned long long)off : (unsigned long long)off;
	zone = dstr(d, dget(d, 0, "zone"));
	text_line("%s%s%c%02llu%02llu", zone, *zone ? " " : "", off < 0 ? '-' : '+',
	          a / 3600, a / 60 % 60);
	free(zone);
}

static void
show_ifconfig(const struct doc *d)
{
	struct table t = {NULL, 3, 0, 0};
	struct buf addrs = {0};
	int i, k, a, j, ips;
	char *name, *mac, *ip, pfx[16];

	each(d, 0, i, k) {
		name = dstr(d, dget(d, i, "name"));
		mac = dstr(d, dget(d, i, "hardware-address"));
		addrs.len = 0;
		ips = dget(d, i, "ip-addresses");
		each(d, ips, a, j) {
			ip = dstr(d, dget(d, a, "ip-address"));
			snprintf(pfx, sizeof pfx, "/%lld", dint(d, dget(d, a, "prefix"), 0));
			buf_str(&addrs, addrs.len ? " " : "");
			buf_str(&addrs, ip);
			buf_str(&addrs, pfx);
			free(ip);
		}
		buf_add(&addrs, "", 1);
		table_add(&t, name, *mac ? mac : "-", addrs.p);
		free(name);
		free(mac);
	}
	table_print(&t);
	free(addrs.p);
}

/* Whether ip is loopback or link-local, which ip leaves out unless -a.
 * Agents write addresses in the canonical form (a Windows link-local one
 * with %ZONE after it). */
static int
local_ip(const char *ip)
{
	return !strncmp(ip, "127.", 4) || !strncmp(ip, "169.254.", 8) ||
	       !strcmp(ip, "::1") || !strncmp(ip, "fe80:", 5);
}

/* Whether the guest's ip is an address, which may be put on a command
 * line: what inet_pton takes, an IPv6 one with a zone of letters, digits
 * and ._- after a %. */
static int
is_ip(const char *ip)
{
	unsigned char a[16];
	char s[INET6_ADDRSTRLEN + 1];
	size_t n = strcspn(ip, "%");

	if (n >= sizeof s)
		return 0;
	memcpy(s, ip, n);
	s[n] = 0;
	if (!ip[n])
		return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
	return ip[n + 1] && !ip[n + 1 + strspn(ip + n + 1, "abcdefghijklmnopqrstuvwxyz"
	       "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")] && inet_pton(AF_INET6, s, a) == 1;
}

/* Counts the addresses of the interfaces named iface (all for NULL) of
 * family fam ("ipv4", "ipv6" or NULL), printing them unless quiet. What
 * is not an address is left out, and said. */
static int
print_ips(const struct doc *d, const char *iface, const char *fam, int all,
          int quiet)
{
	int i, k, a, j, n = 0, v;
	char *ip;

	each(d, 0, i, k) {
		v = dget(d, i, "name");
		if (iface && (v < 0 || !json_eq(d->js, &d->t[v], iface)))
			continue;
		each(d, dget(d, i, "ip-addresses"), a, j) {
			v = dget(d, a, "ip-address-type");
			if (fam && (v < 0 || !json_eq(d->js, &d->t[v], fam)))
				continue;
			ip = dstr(d, dget(d, a, "ip-address"));
			if (*ip && !is_ip(ip) && !quiet)
				warn("ip: '%s' is not an address: left out", ip);
			else if (*ip && (all || !local_ip(ip)) && ++n && !quiet)
				printf("%s\n", ip);
			free(ip);
		}
	}
	return n;
}

static const struct option ip_longs[] = {
	{"all", no_argument, NULL, 'a'},
	{"wait", required_argument, NULL, 'w'},
	{NULL, 0, NULL, 0}
};

/* The guest's addresses, one a line; with --wait, until there is one. */
static int
cmd_ip(int argc, char **argv)
{
	static const char req[] = "{\"execute\":\"guest-network-get-interfaces\"}";
	struct timespec nap = {1, 0};
	struct buf b = {(char *)req, sizeof req - 1, sizeof req, 1};
	long long wait = -1, deadline;
	const char *fam = NULL;
	struct reply r;
	struct doc d;
	int ch, n, s, all = 0;

	while ((ch = cmdopt(argc, argv)) != -1) {
		if (ch == '4' || ch == '6')
			fam = ch == '4' ? "ipv4" : "ipv6";
		else if (ch == 'a')
			all = 1;
		else if (parse_seconds(optarg, &wait) < 0)
			die(EX_USAGE, "ip: bad --wait '%s': expected seconds", optarg);
	}
	if (argc - optind > 1)
		return -1;
	deadline = deadline_in(wait);
	if (wait > 0 && (s = wait_agent(wait)))
		quit(s);
	for (;;) {
		call(&b, "guest-network-get-interfaces", &r);
		doc_reply(&d, &r, "guest-network-get-interfaces",
		          shape_of("guest-network-get-interfaces"));
		n = print_ips(&d, argv[optind], fam, all, opt.json);
		free(d.t);
		if (n || wait <= 0 || now_ms() >= deadline)
			break;
		nanosleep(&nap, NULL);
	}
	if (!n && wait > 0)
		die(EX_TIMEOUT, "ip: no address within %s", seconds(wait));
	if (opt.json)
		print_result(&r);
	return !n;
}

/* 100 * part / whole rounded up, for whole > 0 and part >= 0; sizes
 * near 2^63 are taken in units of 128 bytes, so that nothing overflows. */
static long long
percent(long long part, long long whole)
{
	while (part > LLONG_MAX / 200 || whole > LLONG_MAX / 200) {
		part /= 128;
		whole /= 128;
	}
	return whole ? (part * 100 + whole - 1) / whole : 100;
}

/* What df(1) shows: Size is the whole filesystem (total-bytes-privileged,
 * 9.1 on), Avail what an unprivileged user may still use (total-bytes is
 * that plus Used) and Use% Used of Used plus Avail, rounded up. */
static void
show_df(const struct doc *d)
{
	struct table t = {NULL, 7, 0, 0};
	long long used, total, size;
	int i, k, disks;
	char *mnt, *type, *dev, u[24], s[24], a[24], pct[24];

	table_add(&t, "Mounted on", "Type", "Device", "Size", "Used", "Avail", "Use%");
	each(d, 0, i, k) {
		mnt = dstr(d, dget(d, i, "mountpoint"));
		type = dstr(d, dget(d, i, "type"));
		disks = dget(d, i, "disk");
		dev = dstr(d, disks >= 0 && d->t[disks].size ?
		          dget(d, disks + 1, "dev") : dget(d, i, "name"));
		used = dint(d, dget(d, i, "used-bytes"), -1);
		total = dint(d, dget(d, i, "total-bytes"), -1);
		size = dint(d, dget(d, i, "total-bytes-privileged"), total);
		if (used >= 0 && total > 0)
			snprintf(pct, sizeof pct, "%lld%%", percent(used, total));
		else
			strcpy(pct, "-");
		table_add(&t, mnt, type, *dev ? dev : "-", human(size, s, sizeof s),
		          human(used, u, sizeof u),
		          human(used >= 0 && total >= used ? total - used : -1, a, sizeof a), pct);
		free(mnt);
		free(type);
		free(dev);
	}
	table_print(&t);
}

/* Disks with the serial that maps a guest disk to a host drive. */
static void
show_disks(const struct doc *d)
{
	static const char *const keys[] = {"bus-type", "serial", "alias"};
	struct table t = {NULL, 6, 0, 0};
	struct buf deps = {0};
	int i, k, a, j, dv;
	char *name, *dep, *more[3];

	table_add(&t, "NAME", "TYPE", "BUS", "SERIAL", "ALIAS", "DEPENDS ON");
	each(d, 0, i, k) {
		name = dstr(d, dget(d, i, "name"));
		deps.len = 0;
		dv = dget(d, i, "dependencies");
		each(d, dv, a, j) {
			dep = dstr(d, a);
			buf_str(&deps, deps.len ? " " : "");
			buf_str(&deps, dep);
			free(dep);
		}
		if (!deps.len)
			buf_str(&deps, "-");
		buf_add(&deps, "", 1);
		for (j = 0; j < 3; j++)
			more[j] = dtext(d, dget(d, j < 2 ? dget(d, i, "address") : i, keys[j]));
		table_add(&t, name, dtrue(d, dget(d, i, "partition")) ? "partition" : "disk",
		          more[0], more[1], more[2], deps.p);
		for (j = 0; j < 3; j++)
			free(more[j]);
		free(name);
	}
	table_print(&t);
	free(deps.p);
}

/* A column of a table made of an array of objects: its heading, the
 * member it shows and how: as it came (0), yes or no ('y'),
 * as a time in seconds ('T'). */
struct col {
	const char *head, *key;
	char how;
};

/* Prints the table, its rows sorted by their first cell's number when
 * sort is set (some lists come in no set order). */
static void
show_cols(const struct doc *d, const struct col *c, int ncol, int sort)
{
	struct table t = {NULL, ncol, 0, 0};
	int i, j, k, v;
	char *s, x[32];

	for (j = 0; j < ncol; j++)
		table_cell(&t, c[j].head);
	each(d, 0, i, k) {
		for (j = 0; j < ncol; j++) {
			v = dget(d, i, c[j].key);
			s = NULL;
			if (v < 0 || !c[j].how)
				s = dtext(d, v);
			else if (c[j].how == 'y')
				strcpy(x, dtrue(d, v) ? "yes" : "no");
			else
				copy(x, sizeof x, iso_time(num(d->js + d->t[v].start, NULL,
				                               10, 1LL << 40), -1));
			table_cell(&t, s ? s : x);
			free(s);
		}
	}
	if (sort)
		qsort(t.cell + ncol, (size_t)(t.n / ncol - 1), (size_t)ncol * sizeof *t.cell,
		      by_number);
	table_print(&t);
}

static void
show_users(const struct doc *d)
{
	static const struct col c[] = {
		{"USER", "user", 0}, {"DOMAIN", "domain", 0}, {"LOGIN (UTC)", "login-time", 'T'}};

	if (!d->t[0].size)
		puts("nobody is logged in");
	else
		show_cols(d, c, 3, 0);
}

static void
show_vcpus(const struct doc *d)
{
	static const struct col c[] = {
		{"CPU", "logical-id", 0}, {"ONLINE", "online", 'y'},
		{"CAN-OFFLINE", "can-offline", 'y'}};

	show_cols(d, c, 3, 1);
}

/* A load average as uptime(1) shows it, rounded to hundredths from the
 * agent's decimal text (which has no exponent: the kernel's load is a
 * multiple of 1/2048). */
static void
show_load(const struct doc *d)
{
	static const char *const keys[] = {"load1m", "load5m", "load15m"};
	long long h;
	char *s, *p;
	int i;

	printf("load average:");
	for (i = 0; i < 3; i++) {
		s = dtext(d, dget(d, 0, keys[i]));
		if ((h = num(s, &p, 10, 1LL << 40)) >= 0 && *p == '.' &&
		    p[1] >= '0' && p[1] <= '9') {
			h = h * 100 + (p[1] - '0') * 10;
			if (p[2] >= '0' && p[2] <= '9')
				h += p[2] - '0' + (p[3] >= '5' && p[3] <= '9');
		} else if (h >= 0)
			h *= 100;
		if (h < 0)
			printf(" -");
		else
			printf(" %lld.%02lld", h / 100, h % 100);
		putc(i < 2 ? ',' : '\n', stdout);
		free(s);
	}
}

/* Routes as ip(8) shows them: the kernel's local and unreachable entries
 * and IPv6 multicast are left out. */
static void
show_routes(const struct doc *d)
{
	struct table t = {NULL, 4, 0, 0};
	unsigned char mask[4];
	char *dst, *gw, *pfx, *dev, *met, where[80];
	int i, k, bits, b, v6, skip;

	table_add(&t, "DESTINATION", "GATEWAY", "IFACE", "METRIC");
	each(d, 0, i, k) {
		v6 = dint(d, dget(d, i, "version"), 4) == 6;
		dst = dtext(d, dget(d, i, "flags"));
		/* RTF_LOCAL and RTF_REJECT, in a number over 2^63. */
		skip = (strtoull(dst, NULL, 10) & 0x80000200) != 0;
		free(dst);
		dst = dtext(d, dget(d, i, "destination"));
		if (skip || (v6 && !strncmp(dst, "ff", 2))) {
			free(dst);
			continue;
		}
		gw = dtext(d, dget(d, i, v6 ? "nexthop" : "gateway"));
		pfx = dtext(d, dget(d, i, v6 ? "desprefixlen" : "mask"));
		if (!v6 && inet_pton(AF_INET, pfx, mask) == 1)
			for (bits = b = 0; b < 32; b++)
				bits += mask[b / 8] >> (7 - b % 8) & 1;
		else
			bits = (int)num(pfx, NULL, 10, 128);
		if (bits)
			snprintf(where, sizeof where, "%s/%d", dst, bits);
		else
			strcpy(where, "default");
		dev = dtext(d, dget(d, i, "iface"));
		met = dtext(d, dget(d, i, "metric"));
		table_add(&t, where, strcmp(gw, "0.0.0.0") && strcmp(gw, "::") ? gw : "-",
		          dev, met);
		free(dst);
		free(gw);
		free(pfx);
		free(dev);
		free(met);
	}
	table_print(&t);
}

/* ------------------------------------------------------------------ */
/* Built-in commands: power, freeze, trim, credentials, wait           */
/* ------------------------------------------------------------------ */

/* How long shutdown waits for the reply that tells acceptance apart from
 * refusal, when the guest goes down too fast to give it. */
#define POWER_WAIT 3000

/* Sends a command that never replies on success (guest-shutdown,
 * guest-suspend-*) with a guest-ping behind it. An error reply before the
 * ping's is a refusal: it is copied into refusal, the ping's reply is read
 * too, and EX_AGENT returned. The ping's reply, or silence, or the
 * connection closing as the guest goes down, means accepted: 0. Any other
 * status is a failure to send. */
static int
send_noreply(struct conn *c, const char *req, size_t len, const char *name,
             struct buf *refusal)
{
	char why[sizeof errmsg];
	struct buf b = {0};
	struct reply r;
	int s;

	buf_add(&b, req, len);
	buf_str(&b, "{\"execute\":\"guest-ping\"}");
	s = conn_write(c, b.p, b.len, conn_deadline(c, opt.timeout));
	free(b.p);
	if (s)
		return s;
	s = read_reply(c, &r, conn_deadline(c, POWER_WAIT), "reply");
	if (s == EX_IO || s == EX_TIMEOUT)
		return 0;
	if (s || r.err < 0)
		return s;
	refusal->len = 0;
	buf_add(refusal, r.js, r.len);
	buf_add(refusal, "\n", 1);
	agent_error(&r, name);
	strcpy(why, errmsg);
	read_reply(c, &r, conn_deadline(c, opt.timeout), "reply to guest-ping");
	strcpy(errmsg, why);
	return EX_AGENT;
}

/* shutdown, reboot, halt and suspend: none replies on success. */
static int
cmd_power(int argc, char **argv)
{
	const char *mode = !strcmp(argv[0], "shutdown") ? "powerdown" : argv[0];
	struct buf req = {0}, refusal = {0};
	char name[32];
	int s;

	if (argc != 1 + (*mode == 's'))
		return -1;
	if (*mode == 's') {
		if (strcmp(argv[1], "ram") && strcmp(argv[1], "disk") && strcmp(argv[1], "hybrid"))
			return -1;
		snprintf(name, sizeof name, "guest-suspend-%s", argv[1]);
		req_begin(&req, name);
	} else {
		strcpy(name, "guest-shutdown");
		req_begin(&req, name);
		req_str(&req, "mode", mode);
	}
	req_end(&req);
	need_session();
	s = send_noreply(&sess, req.p, req.len, name, &refusal);
	free(req.p);
	free(refusal.p);
	if (s)
		quit(s);
	return 0;
}

static const struct option settime_longs[] = {
	{"now", no_argument, NULL, 'n'},
	{NULL, 0, NULL, 0}
};

/* Sets the guest's clock to this machine's (--now), to SECONDS since the
 * epoch, or with neither to the guest's own hardware clock. */
static int
cmd_set_time(int argc, char **argv)
{
	struct buf req = {0};
	struct reply r;
	struct timespec ts;
	long long ns = -1, k;
	char *p;

	while (cmdopt(argc, argv) != -1) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ns = (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
	}
	if (argc - optind > (ns < 0))
		return -1;
	if (optind < argc) {
		if ((ns = num(argv[optind], &p, 10, 1LL << 33)) < 0)
			die(EX_USAGE, "set-time: bad time '%s': expected seconds since 1970",
			    argv[optind]);
		ns *= 1000000000;
		for (k = 100000000, p += *p == '.'; *p >= '0' && *p <= '9'; p++, k /= 10)
			ns += k * (*p - '0');
		if (*p)
			die(EX_USAGE, "set-time: bad time '%s': expected seconds since 1970",
			    argv[optind]);
	}
	req_begin(&req, "guest-set-time");
	if (ns >= 0)
		req_int(&req, "time", ns);
	req_end(&req);
	call(&req, "guest-set-time", &r);
	free(req.p);
	return 0;
}

/* The reply timeouts of what takes long, as Proxmox's agent client has
 * them (-t overrides them): a freeze first syncs every filesystem. */
#define FREEZE_TIMEOUT 3600000
#define THAW_TIMEOUT 180000
#define TRIM_TIMEOUT 600000

/* Sends guest-fsfreeze-freeze, -freeze-list (the n mountpoints) or -thaw
 * and returns the count of filesystems in its reply. */
static long long
freeze_call(const char *name, char **mounts, int n)
{
	struct buf req = {0};
	struct reply r;
	long long count;
	int i;

	req_begin(&req, name);
	for (i = 0; i < n; i++) {
		if (!i)
			req_key(&req, "mountpoints");
		buf_add(&req, i ? "," : "[", 1);
		buf_jstr(&req, mounts[i], strlen(mounts[i]));
		buf_add(&req, "]", i == n - 1);
	}
	req_end(&req);
	call_for(&req, name, &r, timeout_or(name[15] == 't' ? THAW_TIMEOUT : FREEZE_TIMEOUT));
	free(req.p);
	if (opt.json) {
		print_result(&r);
		return 0;
	}
	if (json_int(r.js, &r.tok[r.ret], &count) < 0)
		die(EX_PROTO, "%s: no count in the reply", name);
	return count;
}

/* Thaws the guest, reconnecting for up to a minute when the connection
 * broke. Signals wait until it is done: a second one would end qga with
 * the guest frozen. */
static void
thaw_always(void)
{
	static const char req[] = "{\"execute\":\"guest-fsfreeze-thaw\"}";
	struct timespec nap = {1, 0};
	long long until = now_ms() + 60000, n;
	struct reply r;
	int s;

	hold_signals(1);
	for (;;) {
		interrupted = 0;
		if (!(s = session_open(&sess, opt.addr, opt.timeout)))
			s = transact(&sess, req, sizeof req - 1, &r, "guest-fsfreeze-thaw",
			             timeout_or(THAW_TIMEOUT));
		if (!s && r.err >= 0)
			s = agent_error(&r, "guest-fsfreeze-thaw");
		else if (!s) {
			if (json_int(r.js, &r.tok[r.ret], &n))
				n = -1;
			fprintf(stderr, "qga: fsfreeze --run: thawed %lld filesystem%s\n", n,
			        n == 1 ? "" : "s");
			hold_signals(0);
			return;
		}
		conn_close(&sess);
		if (s == EX_AGENT || now_ms() >= until)
			die(s, "fsfreeze --run: the guest may still be frozen (qga fsfreeze "
			    "thaw): %s", errmsg);
		nanosleep(&nap, NULL);
	}
}

/* Freezes the guest, runs argv here, and thaws the guest whatever happens:
 * the program fails, qga gets SIGINT, SIGTERM or SIGHUP (passed on to the
 * program), the connection breaks, max ms pass (the program gets SIGTERM).
 * The channel is let go while the program runs, so that it can ask the
 * agent itself: QGA_SOCKET names it. The program's status is qga's. */
static int
freeze_run(char **argv, long long max)
{
	static char socket_var[4096];
	struct timespec nap = {0, 10000000};
	long long deadline = deadline_in(max), n;
	int status = 0, sig = 0, late = 0, i;
	char **env;
	pid_t pid;

	if (guest_windows() && max > 10000)
		warn("fsfreeze --run: Windows (VSS) thaws by itself after about 10 s, "
		     "before --max %s", seconds(max));
	n = freeze_call("guest-fsfreeze-freeze", NULL, 0);
	fprintf(stderr, "qga: fsfreeze --run: froze %lld filesystem%s\n", n, n == 1 ? "" : "s");
	conn_close(&sess);
	for (i = 0; environ[i]; i++)
		;
	env = xrealloc(NULL, (size_t)(i + 2) * sizeof *env);
	env[0] = socket_var;
	snprintf(socket_var, sizeof socket_var, "QGA_SOCKET=%s", opt.addr);
	for (i = n = 0; environ[i]; i++)
		if (strncmp(environ[i], "QGA_SOCKET=", 11))
			env[++n] = environ[i];
	env[n + 1] = NULL;
	environ = env;
	pid = spawn((const char *const *)argv, -1, -1);
	while (pid > 0 && waitpid(pid, &status, WNOHANG) == 0) {
		if ((sig = interrupted) || (late = deadline >= 0 && now_ms() >= deadline)) {
			if (late)
				warn("fsfreeze --run: %s still runs after --max %s: thawing",
				     argv[0], seconds(max));
			kill(pid, sig ? sig : SIGTERM);
			break;
		}
		nanosleep(&nap, NULL);
	}
	if (pid < 0)
		warn("fsfreeze --run: fork:");
	thaw_always();
	if (pid < 0)
		return 255;
	if (sig || late)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	if (WIFEXITED(status) && WEXITSTATUS(status) >= 126 && !sig && !late)
		warn("fsfreeze --run: %s exited %d (%s, or its own status)", argv[0],
		     WEXITSTATUS(status), WEXITSTATUS(status) == 127 ? "not found" : "not runnable");
	return sig ? 128 + sig : late ? 124 : WIFEXITED(status) ? WEXITSTATUS(status) :
	       128 + WTERMSIG(status);
}

static const struct option fsfreeze_longs[] = {
	{"run", no_argument, NULL, O_RUN},
	{"max", required_argument, NULL, O_MAX},
	{NULL, 0, NULL, 0}
};

static int
cmd_fsfreeze(int argc, char **argv)
{
	struct reply r;
	struct doc d;
	long long n, max = 60000;
	int ch, run = 0;

	while ((ch = cmdopt(argc, argv)) != -1) {
		if (ch == O_RUN)
			run = 1;
		else if (parse_seconds(optarg, &max) < 0 || !max)
			die(EX_USAGE, "fsfreeze: bad --max '%s': expected seconds", optarg);
	}
	argc -= optind;
	argv += optind;
	if (run)
		one_target("fsfreeze --run");
	if (run)
		return argc ? freeze_run(argv, max) : -1;
	if (argc < 1 || max != 60000)
		return -1;
	if (!strcmp(argv[0], "status") && argc == 1) {
		simple_call("guest-fsfreeze-status", &r, &d);
		show_text(&d);
		free(d.t);
		return 0;
	}
	if (!strcmp(argv[0], "thaw") && argc == 1)
		n = freeze_call("guest-fsfreeze-thaw", NULL, 0);
	else if (!strcmp(argv[0], "freeze"))
		n = freeze_call(argc > 1 ? "guest-fsfreeze-freeze-list" : "guest-fsfreeze-freeze",
		                argv + 1, argc - 1);
	else
		return -1;
	if (opt.json)
		return 0;
	printf("%s %lld filesystem%s\n", argv[0][0] == 'f' ? "froze" : "thawed",
	       n, n == 1 ? "" : "s");
	if (argv[0][0] == 'f' && guest_windows())
		warn("fsfreeze: Windows (VSS) thaws by itself after about 10 s");
	return 0;
}

static void
show_fstrim(const struct doc *d)
{
	struct table t = {NULL, 2, 0, 0};
	char *path, *err, n[32];
	int i, k, v;

	each(d, dget(d, 0, "paths"), i, k) {
		path = dstr(d, dget(d, i, "path"));
		err = dstr(d, dget(d, i, "error"));
		/* A Windows guest's trim says no count. */
		if ((v = dget(d, i, "trimmed")) < 0)
			strcpy(n, "trimmed");
		else
			snprintf(n, sizeof n, "%lld bytes trimmed", dint(d, v, 0));
		table_add(&t, path, *err ? err : n);
		free(path);
		free(err);
	}
	table_print(&t);
}

static int
cmd_fstrim(int argc, char **argv)
{
	struct buf req = {0};
	struct reply r;
	struct doc d;
	long long min = 0;
	char *end;

	if (argc > 2)
		return -1;
	if (argc == 2 && ((min = num(argv[1], &end, 10, 1LL << 40)) < 0 || *end))
		die(EX_USAGE, "fstrim: bad minimum '%s': expected bytes", argv[1]);
	req_begin(&req, "guest-fstrim");
	if (argc == 2)
		req_int(&req, "minimum", min);
	req_end(&req);
	call_for(&req, "guest-fstrim", &r, timeout_or(TRIM_TIMEOUT));
	free(req.p);
	if (opt.json) {
		print_result(&r);
		return 0;
	}
	doc_reply(&d, &r, "guest-fstrim", shape_of("guest-fstrim"));
	show_fstrim(&d);
	free(d.t);
	return 0;
}

/* Reads a line into pw, without echo from a terminal after prompt. */
static size_t
read_line(char *pw, size_t size, int tty, const char *prompt, const char *user)
{
	struct termios t, quiet;
	size_t len = 0;

	if (tty && tcgetattr(0, &t) == 0) {
		fprintf(stderr, "%s %s: ", prompt, user);
		quiet = t;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(0, TCSAFLUSH, &quiet);
	}
	while (len < size - 1 && read(0, pw + len, 1) == 1 && pw[len] != '\n')
		len++;
	if (tty) {
		tcsetattr(0, TCSAFLUSH, &t);
		putc('\n', stderr);
	}
	pw[len] = 0;
	if (len && pw[len - 1] == '\r')
		pw[--len] = 0;
	return len;
}

/* Reads a password: stdin's first line, or on a terminal twice, without
 * echo, for a typo not to set a password nobody knows. */
static char *
read_password(const char *user)
{
	static char pw[1024], again[1024];
	int tty = isatty(0);

	if (!read_line(pw, sizeof pw, tty, "Password for", user))
		die(EX_USAGE, "passwd: no password given on stdin");
	if (tty) {
		read_line(again, sizeof again, tty, "Again, for", user);
		if (strcmp(pw, again))
			die(EX_USAGE, "passwd: the two passwords differ: nothing was set");
		memset(again, 0, sizeof again);
	}
	return pw;
}


static const struct option passwd_longs[] = {
	{"crypted", no_argument, NULL, 'c'},
	{NULL, 0, NULL, 0}
};

static int
cmd_passwd(int argc, char **argv)
{
	struct buf req = {0};
	struct reply r;
	char *pw;
	int ch, crypted = 0;

	while ((ch = cmdopt(argc, argv)) != -1)
		crypted = ch == 'c';
	if (argc - optind != 1)
		return -1;
	if (isatty(0))
		one_target("passwd with a password typed in");
	many.reads_stdin = 1;
	/* Nobody is asked for a password the agent would not take. */
	if (!enabled("guest-set-user-password"))
		quit(disabled("guest-set-user-password"));
	pw = read_password(argv[optind]);
	req_begin(&req, "guest-set-user-password");
	req_str(&req, "username", argv[optind]);
	req_key(&req, "password");
	buf_add(&req, "\"", 1);
	b64_encode(&req, (unsigned char *)pw, strlen(pw));
	buf_add(&req, "\"", 1);
	req_key(&req, "crypted");
	buf_str(&req, crypted ? "true" : "false");
	req_end(&req);
	memset(pw, 0, strlen(pw));
	call(&req, "guest-set-user-password", &r);
	memset(req.p, 0, req.len);
	free(req.p);
	return 0;
}

static void
show_keys(const struct doc *d)
{
	char *key;
	int i, k;

	each(d, dget(d, 0, "keys"), i, k) {
		text_line("%s", key = dstr(d, i));
		free(key);
	}
}

static int
cmd_ssh_keys(int argc, char **argv)
{
	struct buf req = {0}, in = {0};
	struct reply r;
	struct doc d;
	const char *name, *file, *user;
	char *line, *next, desc[400];
	int n = 0, fd = 0, reset;

	if (argc < 3)
		return -1;
	if (!strcmp(argv[1], "list") && argc == 3) {
		req_begin(&req, "guest-ssh-get-authorized-keys");
		req_str(&req, "username", argv[2]);
		req_end(&req);
		call_any(&req, "guest-ssh-get-authorized-keys", &r, opt.timeout);
		free(req.p);
		/* A user without the file has no keys. */
		if (r.err >= 0 && strstr(member_str(r.js, &r.tok[r.err], "desc", desc,
		                                    sizeof desc), "No such file"))
			return 0;
		if (r.err >= 0)
			quit(agent_error(&r, "guest-ssh-get-authorized-keys"));
		if (opt.json) {
			print_result(&r);
			return 0;
		}
		doc_reply(&d, &r, "guest-ssh-get-authorized-keys",
		          shape_of("guest-ssh-get-authorized-keys"));
		show_keys(&d);
		free(d.t);
		return 0;
	}
	if (!strcmp(argv[1], "add"))
		name = "guest-ssh-add-authorized-keys";
	else if (!strcmp(argv[1], "remove"))
		name = "guest-ssh-remove-authorized-keys";
	else
		return -1;
	reset = *argv[1] == 'a' && argc > 3 && !strcmp(argv[2], "--reset");
	if (argc > 4 + reset)
		return -1;
	user = argv[2 + reset];
	file = argc == 4 + reset ? argv[3 + reset] : "-";
	if (strcmp(file, "-") && (fd = open(file, O_RDONLY | O_CLOEXEC)) < 0)
		die(EX_IO, "open %s:", file);
	if (read_all(fd, &in, 1 << 20) < 0)
		die(EX_IO, "read %s: too large or unreadable", file);
	buf_add(&in, "", 1);
	req_begin(&req, name);
	req_str(&req, "username", user);
	if (reset)
		buf_str(&req, ",\"reset\":true");
	req_key(&req, "keys");
	buf_add(&req, "[", 1);
	for (line = in.p; line; line = next) {
		if ((next = strchr(line, '\n')))
			*next++ = 0;
		line += strspn(line, " \t");
		if (!*line || *line == '#')
			continue;
		buf_add(&req, ",", n++ > 0);
		buf_jstr(&req, line, strcspn(line, "\r"));
	}
	buf_add(&req, "]", 1);
	req_end(&req);
	if (!n)
		die(EX_USAGE, "ssh-keys %s: no keys in %s", argv[1], file);
	call(&req, name, &r);
	free(req.p);
	free(in.p);
	return 0;
}

/* Waits for the agent: the socket may not exist yet, the agent may not be
 * up, a chardev may accept and stay silent. Each try is bounded by a
 * second (or what is left), so a late agent is found soon after it starts. */
static const struct option ls_longs[] = {
	{"dir", required_argument, NULL, 'd'},
	{NULL, 0, NULL, 0}
};
static const struct option wait_longs[] = {
	{"timeout", required_argument, NULL, 'T'},
	{NULL, 0, NULL, 0}
};

static int
cmd_wait(int argc, char **argv)
{
	long long total = 60000;
	int s;

	while (cmdopt(argc, argv) != -1)
		if (parse_seconds(optarg, &total) < 0)
			die(EX_USAGE, "wait: bad -T '%s': expected seconds", optarg);
	if (optind != argc)
		return -1;
	if ((s = wait_agent(total)))
		quit(s);
	return 0;
}

/* ------------------------------------------------------------------ */
/* ls: the agents of this host                                         */
/* ------------------------------------------------------------------ */

/* Where hosts keep agents' sockets: Proxmox VE's VMID.qga; libvirt's
 * channel folders, with a folder per domain (domain-ID-NAME, or ID-NAME
 * under /run) holding org.qemu.guest_agent.0, or in older releases
 * NAME.org.qemu.guest_agent.0 itself. */
#define LIBVIRT_AGENT "org.qemu.guest_agent.0"
static const char *const host_dirs[] = {
	"/var/run/qemu-server", "/var/lib/libvirt/qemu/channel/target",
	"/run/libvirt/qemu/channel",
};

struct found {
	char *addr, *name;
	dev_t dev;
	ino_t ino;
	int libvirt, held;
};

static struct found *found;
static int nfound;

/* Adds path when it is a socket, under name (n bytes of it). */
static void
add_found(const char *path, const char *name, size_t n, int libvirt)
{
	struct stat st;
	int i;

	if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return;
	/* One socket found twice, through a link, is probed once. */
	for (i = 0; i < nfound; i++)
		if (found[i].dev == st.st_dev && found[i].ino == st.st_ino)
			return;
	found = xrealloc(found, (size_t)(nfound + 1) * sizeof *found);
	found[nfound].dev = st.st_dev;
	found[nfound].ino = st.st_ino;
	found[nfound].addr = xstrdup(path);
	found[nfound].name = xstrdup(name);
	found[nfound].name[n] = 0;
	found[nfound].held = 0;
	found[nfound++].libvirt = libvirt;
}

/* A folder's sockets: any in a folder given with --dir (kind 0), those
 * named as Proxmox (1) or libvirt (2) name agents' in theirs. */
static void
scan_dir(const char *dir, int kind)
{
	static const char suffix[] = "." LIBVIRT_AGENT;
	char path[4096];
	struct dirent *e;
	const char *n, *p;
	size_t len;
	DIR *d;

	if (!(d = opendir(dir))) {
		if (!kind)
			warn("ls: open %s:", dir);
		return;
	}
	while ((e = readdir(d))) {
		n = e->d_name;
		len = strlen(n);
		snprintf(path, sizeof path, "%s/%s", dir, n);
		if (*n == '.')
			continue;
		if (!kind)
			add_found(path, n, len, 0);
		else if (kind == 1 && len > 4 && !strcmp(n + len - 4, ".qga"))
			add_found(path, n, len - 4, 0);
		else if (kind == 2 && len > sizeof suffix && !strcmp(n + len - (sizeof suffix - 1), suffix))
			add_found(path, n, len - (sizeof suffix - 1), 1);
		else if (kind == 2) {
			p = n + (strncmp(n, "domain-", 7) ? 0 : 7);
			if (p[strspn(p, "0123456789")] == '-' && p[0] != '-')
				p += strspn(p, "0123456789") + 1;
			snprintf(path, sizeof path, "%s/%s/" LIBVIRT_AGENT, dir, n);
			add_found(path, p, strlen(p), 1);
		}
	}
	closedir(d);
}

/* Marks the sockets another client holds: the kernel's table of unix
 * sockets shows a connected one under a name that is theirs. Read once,
 * before any probe connects. */
static void
mark_held(void)
{
	char line[4352], *w, *st = NULL;
	FILE *p = fopen("/proc/net/unix", "r");
	struct stat s;
	int i, k;

	while (p && fgets(line, sizeof line, p))
		for (i = 0, w = strtok(line, " \n"); w; w = strtok(NULL, " \n"), i++) {
			st = i == 5 ? w : st;
			if (i != 7 || strcmp(st, "03") || stat(w, &s))
				continue;
			for (k = 0; k < nfound; k++)
				found[k].held |= found[k].dev == s.st_dev && found[k].ino == s.st_ino;
		}
	if (p)
		fclose(p);
}

static int
by_addr(const void *a, const void *b)
{
	return strcmp(((const struct found *)a)->addr, ((const struct found *)b)->addr);
}

/* In the child for f: a line of tab-separated fields, its state, the
 * agent's version and the guest's system. */
static _Noreturn void
probe(const struct found *f)
{
	struct buf req = {0};
	struct reply r;
	struct doc d;
	char *ver, *os = NULL, *m;
	int s, i;

	if (f->held) {
		printf("held by %s\n", f->libvirt ? "libvirtd" : "another client");
		leave(0);
	}
	if (!opt.timeout_set)
		opt.timeout = 1000;
	if ((s = session_open(&sess, opt.addr, opt.timeout))) {
		m = strrchr(errmsg, ':');
		printf("%s\n", s == EX_TIMEOUT ? "no answer" : m ? m + 2 : errmsg);
		leave(0);
	}
	simple_call("guest-info", &r, &d);
	m = dstr(&d, dget(&d, 0, "version"));
	ver = escaped(m);
	free(m);
	free(d.t);
	buf_str(&req, "{\"execute\":\"guest-get-osinfo\"}");
	call_any(&req, "guest-get-osinfo", &r, opt.timeout);
	if (r.err < 0) {
		doc_reply(&d, &r, "guest-get-osinfo", SHAPE_OSINFO);
		if ((i = dget(&d, 0, "pretty-name")) < 0)
			i = dget(&d, 0, "name");
		m = dstr(&d, i);
		os = escaped(m);
		free(m);
		free(d.t);
	}
	/* Escaped, the guest's words hold no tab or newline of this line. */
	printf("up\t%s\t%s\n", ver, os && *os ? os : "-");
	free(ver);
	free(os);
	free(req.p);
	leave(0);
}

static int
cmd_ls(int argc, char **argv)
{
	static const char *const key[] = {"address", "name", "agent", "version", "os"};
	struct table t = {NULL, 5, 0, 0};
	struct buf o = {0}, *out;
	const char *env = getenv("QGA_SOCKET"), *v[5];
	int ch, i, k, virsh = -1;

	while ((ch = cmdopt(argc, argv)) != -1)
		scan_dir(optarg, 0);
	if (optind != argc)
		return -1;
	for (i = 0; i < (int)(sizeof host_dirs / sizeof *host_dirs); i++)
		scan_dir(host_dirs[i], i ? 2 : 1);
	for (i = 0; i < many.n; i++)
		add_found(many.addr[i], "", 0, 0);
	if (env)
		add_found(env, "", 0, 0);
	add_found("/tmp/qga.sock", "", 0, 0);
	if (!nfound)
		die(EX_AGENT, "ls: no agent socket in Proxmox's or libvirt's folders, "
		    "QGA_SOCKET or /tmp/qga.sock");
	qsort(found, (size_t)nfound, sizeof *found, by_addr);
	mark_held();
	many.addr = xrealloc(many.addr, (size_t)nfound * sizeof *many.addr);
	for (i = 0; i < nfound; i++)
		many.addr[i] = found[i].addr;
	many.n = nfound;
	many.quiet = 1;
	many.held = out = xrealloc(NULL, (size_t)nfound * sizeof *out);
	memset(out, 0, (size_t)nfound * sizeof *out);
	if (run_targets() < 0) {
		opt.json = 0;
		probe(&found[many.index]);
	}
	if (!many.json)
		table_add(&t, "ADDRESS", "NAME", "AGENT", "VERSION", "OS");
	for (i = 0; i < nfound; i++) {
		buf_add(&out[i], "", 1);
		v[0] = found[i].addr;
		v[1] = *found[i].name ? found[i].name : "-";
		v[2] = strtok(out[i].p, "\t\n");
		v[3] = strtok(NULL, "\t\n");
		v[4] = strtok(NULL, "\t\n");
		if (v[2] && !strcmp(v[2], "held by libvirtd"))
			virsh = i;
		for (k = 0; k < 5; k++) {
			v[k] = v[k] ? v[k] : "-";
			if (!many.json) {
				table_cell(&t, v[k]);
				continue;
			}
			buf_str(&o, k ? ",\"" : "{\"");
			buf_str(&o, key[k]);
			buf_str(&o, "\":");
			if (strcmp(v[k], "-"))
				buf_jstr(&o, v[k], strlen(v[k]));
			else
				buf_str(&o, "null");
		}
		if (many.json)
			buf_str(&o, "}\n");
		free(out[i].p);
	}
	if (o.len)
		fwrite(o.p, 1, o.len, stdout);
	if (!many.json)
		table_print(&t);
	if (virsh >= 0)
		warn("ls: libvirtd holds an agent: ask it through libvirt, as in "
		     "virsh qemu-agent-command %s '{\"execute\":\"guest-ping\"}'",
		     found[virsh].name);
	free(o.p);
	free(out);
	return 0;
}

/* ------------------------------------------------------------------ */
/* serve: one agent shared by many clients                             */
/* ------------------------------------------------------------------ */

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

struct client {
	int fd, http;
	unsigned gen;         /* tells a reused slot from the client gone */
	struct buf in, out;
	size_t outoff;
	struct json_scan sc;
	int pending;          /* its items not yet given back */
	int eof;              /* it sent all it will: it goes once answered */
	int last;             /* HTTP: its last request is taken */
	long long since;      /* HTTP: when its unfinished request began */
	int drain;            /* HTTP: refused, its bytes are read and dropped */
	unsigned seen;        /* the delivery pass that last found one waiting */
	int xf;               /* HTTP: its /file transfer's slot + 1, or 0 */
	int ln;               /* the listener it came through */
	size_t held;          /* its replies done, waiting behind an earlier one */
	char name[64];
};

/* A GET or PUT /file under way. */
struct xfer {
	pid_t pid;            /* the child that runs get or put; 0: a free slot */
	int cl, put, keep;
	unsigned gen;
	int data, err;        /* the data's pipe (to the child for PUT), its stderr */
	int status;           /* the child's exit status; -1 until it is known */
	int started, v11;     /* GET: the head has gone out; in chunks, for HTTP/1.1 */
	int chunked, after;   /* PUT: a chunked body; a chunk's CRLF comes next */
	int whole, bad;       /* PUT: all the body taken; why it is refused */
	int blocked, killed;  /* PUT: the pipe is full; the child was told to stop */
	unsigned long long left, bytes; /* PUT: the rest of the body or chunk; all given */
	struct buf msg;       /* the child's stderr, its first KiB */
};

/* A local reply is answered by the proxy itself: ITEM_LOCAL (HTTP 200,
 * or the status it is given), ITEM_BAD for what is not a request (400),
 * ITEM_DENIED (403); ITEM_NOREPLY goes to the agent, which answers it
 * only when it fails. */
enum { ITEM_AGENT, ITEM_LOCAL, ITEM_NOREPLY, ITEM_EXEC, ITEM_FILE, ITEM_BAD, ITEM_DENIED };
/* WAIT: a POST /exec between two polls of its program's status; RUNNING:
 * a /file transfer, whose child talks to the agent as a client. */
enum { QUEUED, SENT, WAIT, RUNNING, DONE, GONE };
/* The steps of reaching the agent, each a state of the loop: connecting,
 * a VMM's answer to CONNECT (hvsock), QMP's greeting and its answer to
 * qmp_capabilities (--qmp), the sync (the guest agent). */
enum { AGENT_DOWN, AGENT_CONNECTING, AGENT_VMM, AGENT_GREETING, AGENT_CAPS, AGENT_SYNCING,
       AGENT_UP };

/* An address of the agent's, one of those to try in turn. */
struct agent_addr {
	int family;
	socklen_t len;
	struct sockaddr_storage sa;
};

struct item {
	int cl, kind, keep;   /* keep: HTTP keep-alive */
	int raw;              /* its reply is HTTP already */
	int text;             /* its reply is Prometheus' text, not JSON */
	int state, code;      /* code: the HTTP status of the reply */
	unsigned gen;
	long long id, mark;   /* the proxy's ids: the request's, its guest-ping's */
	long long deadline, t0;
	long long pid, until, next, delay; /* POST /exec: its program, its end */
	int polls;            /* POST /exec: its status asked for so far */
	char *req;            /* the request as the agent gets it */
	size_t len;
	char *cid;            /* the client's id, as it wrote it */
	size_t cidlen;
	struct buf reply;     /* what the client gets */
	char name[64];
};

/* What /metrics counts of each command: its requests by outcome. */
enum { OUT_OK, OUT_ERROR, OUT_DENIED, OUT_BAD, OUT_UNAVAILABLE, OUT_TIMEOUT, NOUT };
static const char *const outcomes[NOUT] = {
	"ok", "error", "denied", "bad", "unavailable", "timeout"};
struct stat_row {
	char name[64];
	unsigned long long n[NOUT];
};
/* Latency buckets in ms, as Prometheus' le labels say them in seconds. */
static const int buckets[6] = {1, 10, 100, 1000, 10000, 0};
#define STATS_MAX 128

/* A client may have this many requests queued before it is read again. */
#define CLIENT_PENDING_MAX 64

static struct {
	struct client *cl;
	int ncl, max;
	struct item *q;
	size_t qhead, qlen, qcap;
	struct xfer *xf;      /* as many as clients */
	int nxf;              /* the slots up to the last one in use */
	int lfd[16], lhttp[16], nl;
	unsigned lport[16];   /* a TCP listener's port; 0 for a unix socket */
	char laddr[16][64], lname[16][64]; /* its address, as Host says it; its name */
	int quiet;
	mode_t mode;
	int agent;            /* AGENT_DOWN to AGENT_UP */
	struct agent_addr *aa; /* where the agent is, worked out once */
	int naa, ai;          /* how many, the one being tried */
	char aname[300];      /* the agent's address, as messages say it */
	char dev[300];        /* a character device's path; a bare path's */
	unsigned vmmport;     /* hvsock: the guest's port, after CONNECT */
	struct buf ain, aout; /* from the agent, not yet framed; to it, unsent */
	size_t aoff;
	struct json_scan asc;
	long long next_id, sync_id;
	long long try_deadline; /* of a try to reach the agent, all its steps */
	long long info_id;    /* the guest-info that checks --allow and --deny */
	int checked;          /* that guest-info was sent */
	long long retry_at, backoff;
	char why[sizeof errmsg]; /* why the agent is down */
	size_t maxreq;
	char **allow, **deny;
	int nallow, ndeny;
	char token[256];  /* what HTTP clients must send, when not empty */
	FILE *log;        /* --log: a line per request */
	struct stat_row *stats;
	int nstats, reconnects;
	unsigned long long le[6]; /* requests answered within each bucket */
	double seconds;           /* their time, in all */
} sv;

static volatile sig_atomic_t stopping;

static void
on_stop(int sig)
{
	stopping = sig;
}

static PRINTF(1, 2) void
note(const char *fmt, ...)
{
	char msg[sizeof errmsg];
	va_list ap;

	if (sv.quiet)
		return;
	va_start(ap, fmt);
	vformat(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "qga serve: %s\n", msg);
}

static const struct cmd *find_cmd(const char *name);

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

static int
denied(const char *name)
{
	return (sv.nallow && !listed(sv.allow, sv.nallow, name)) ||
	       listed(sv.deny, sv.ndeny, name);
}

/* Says which names of --allow and --deny the agent does not know, as
 * its guest-info reply r lists them, once, when it first comes up: a name
 * mistyped there protects nothing. */
static void
check_names(const struct reply *r)
{
	struct buf names = {0};
	const char *list, *n;
	char on[160], off[160];
	int j;

	command_list(r, 0, &names);
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
static int
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
		die(EX_USAGE, "serve: at most 16 listening sockets");
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
			die(EX_USAGE, "serve: %s is not a loopback address: %s", addr, http ?
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
static void
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

static void
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

static void
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
	else if (c->out.len - c->outoff > sv.maxreq + opt.maxreply)
		client_close(i, "cut off: it does not read its replies");
}

/* Counts a request that is done, for /metrics, and logs it for --log:
 * when, who, what, how it ended and how long it took; never its
 * arguments, which may be passwords, file data or a program's input. */
static void
account(const struct item *it)
{
	int o = it->code == 400 ? OUT_BAD : it->kind == ITEM_DENIED ? OUT_DENIED :
	        it->code == 503 ? OUT_UNAVAILABLE : it->code == 504 ? OUT_TIMEOUT :
	        it->code < 300 ? OUT_OK : OUT_ERROR;
	long long ms = now_ms() - it->t0;
	struct timespec ts;
	int k;

	for (k = 0; k < sv.nstats && strcmp(sv.stats[k].name, it->name); k++)
		;
	if (k == sv.nstats && k < STATS_MAX) {
		sv.stats = xrealloc(sv.stats, (size_t)++sv.nstats * sizeof *sv.stats);
		memset(&sv.stats[k], 0, sizeof sv.stats[k]);
		/* Names come from clients: past a bound they count as one. */
		snprintf(sv.stats[k].name, sizeof sv.stats[k].name, "%s",
		         k < STATS_MAX - 1 ? it->name : "other");
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
static struct item *
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
static void
add_id(struct buf *b, const char *id, size_t idlen)
{
	if (idlen) {
		buf_str(b, ", \"id\": ");
		buf_add(b, id, idlen);
	}
}

/* An error reply as the agent gives it, the request's id echoed. */
static void
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
static void
refusal(struct buf *b, const char *name, const char *id, size_t idlen)
{
	char desc[160];

	snprintf(desc, sizeof desc, "Command %s has been refused by the proxy "
	         "(qga serve --allow/--deny)", name);
	error_reply(b, "CommandNotFound", desc, id, idlen);
}

static void
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
static void
item_fail(struct item *it, int code, const char *cls, const char *desc)
{
	struct buf b = {0};

	error_reply(&b, cls, desc, it->cid, it->cidlen);
	item_done(it, code, b.p, b.len);
	free(b.p);
}

/* Sorts one request from a client into the queue. */
static void
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
	/* The agent gets the request under the proxy's id. */
	buf_str(&b, "{\"execute\": ");
	v = tok_text(js, &t[ex], &n);
	buf_add(&b, v, n);
	if (args >= 0) {
		buf_str(&b, ", \"arguments\": ");
		v = tok_text(js, &t[args], &n);
		buf_add(&b, v, n);
	}
	buf_need(&b, 32);
	b.len += (size_t)snprintf(b.p + b.len, 32, ", \"id\": %lld}", ++sv.next_id);
	it = enqueue(i, kind, b.p, b.len, name, keep);
	it->id = sv.next_id;
	it->cid = memcpy(xrealloc(NULL, idlen + 1), id, idlen);
	it->cidlen = idlen;
	free(b.p);
}

/* Drops from b what the scanner has passed, keeping a value under way,
 * so that what a peer sends holds no more memory than that value. */
static void
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
		r = json_scan(&c->sc, c->in.p, c->in.len);
		if (r == JSON_SCAN_MORE)
			break;
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
	if (!json_scan_between(&c->sc) && c->in.len - c->sc.start > sv.maxreq)
		client_close(i, "cut off: its request is too large");
	else
		scan_compact(&c->in, &c->sc);
}

static void
http_reply(int i, int code, const char *body, size_t len, int keep, int text)
{
	static const char *const reasons[] = {
		"200 OK", "204 No Content", "400 Bad Request", "401 Unauthorized", "403 Forbidden",
		"404 Not Found", "405 Method Not Allowed", "411 Length Required",
		"413 Content Too Large", "415 Unsupported Media Type",
		"431 Request Header Fields Too Large",
		"501 Not Implemented", "502 Bad Gateway", "503 Service Unavailable",
		"504 Gateway Timeout"};
	struct client *c = &sv.cl[i];
	char head[256], err[128];
	const char *reason = "500 Internal Server Error";
	size_t k;

	for (k = 0; k < sizeof reasons / sizeof *reasons; k++)
		if (num(reasons[k], NULL, 10, 999) == code)
			reason = reasons[k];
	/* An error of the server's own has a JSON body too. */
	if (!len && code >= 400) {
		len = (size_t)snprintf(err, sizeof err, "{\"error\": {\"class\": "
		                       "\"GenericError\", \"desc\": \"%s\"}}", reason + 4);
		body = err;
	}
	snprintf(head, sizeof head, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu"
	         "\r\n%s%s\r\n", reason, text ? "text/plain; version=0.0.4" : "application/json", len,
	         code == 401 ? "WWW-Authenticate: Bearer\r\n" : "",
	         keep ? "" : "Connection: close\r\n");
	buf_str(&c->out, head);
	buf_add(&c->out, body, len);
	client_flush(i);
	if (!keep && c->fd >= 0 && c->outoff == c->out.len && !c->drain)
		client_close(i, "done");
}

/* Reads the token HTTP clients must send, the file's first line. */
static void
read_token(const char *path)
{
	FILE *f = fopen(path, "re");

	if (!f || !fgets(sv.token, sizeof sv.token, f))
		die(EX_USAGE, "serve: read --token-file %s:", path);
	fclose(f);
	sv.token[strcspn(sv.token, "\r\n")] = 0;
	if (strlen(sv.token) < 16)
		die(EX_USAGE, "serve: the token in %s is shorter than 16 bytes", path);
}

/* Whether an Authorization value, v[0..n), carries the token, compared in
 * a time that does not depend on where they differ. */
static int
authorized(const char *token, const char *v, size_t n)
{
	size_t i, k = strlen(token);
	unsigned char d = 0;

	if (n != k + 7 || strncmp(v, "Bearer ", 7))
		return 0;
	for (i = 0; i < k; i++)
		d |= (unsigned char)(v[7 + i] ^ token[i]);
	return !d;
}

/* What serve needs of an HTTP request's head. */
struct http_req {
	const char *method, *target;
	size_t mlen, tlen;
	size_t head;          /* its bytes, the blank line included */
	unsigned long long body; /* Content-Length, or 0 */
	int keep, haslen, chunked, expect, auth;
	int v11;              /* HTTP/1.1, which chunked replies need */
	const char *host, *origin; /* Host and Origin, when sent */
	size_t hostlen, originlen;
	int json;             /* Content-Type: application/json */
	int xsite;            /* Sec-Fetch-Site names another origin */
};

#define HTTP_HEAD_MAX 16384

/* Whether the header line at h, whose name ends at colon, is name. */
static int
header_is(const char *h, const char *colon, const char *name)
{
	return (size_t)(colon - h) == strlen(name) && !strncasecmp(h, name, strlen(name));
}

/* Whether s[0..n) is a token (RFC 9110, 5.6.2), as a field name must be. */
static int
http_token(const char *s, size_t n)
{
	for (; n; s++, n--)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || (*s && strchr("!#$%&'*+-.^_`|~", *s))))
			return 0;
	return 1;
}

/* Parses the head of the HTTP request at the start of s[0..n), a pure
 * function of those bytes (and of the token a request must carry, if
 * any): 1 with *r filled once the head is all there, 0 while more bytes
 * are needed, else the status that refuses it (400, 431, 501), after
 * which the connection ends. Its body, if any, follows the head. A line
 * ends in CRLF and nothing else; a NUL, a CR or LF alone, a field name
 * that is not a token, and two Hosts or Origins, which two readers could
 * take each its own, are a 400 (RFC 9112, 2.2 and 5). */
static int
http_parse(const char *s, size_t n, const char *token, struct http_req *r)
{
	const char *end, *line, *eol, *colon, *v, *sp;
	long long len = -1, k;
	size_t vn, m, j;
	char *e;

	memset(r, 0, sizeof *r);
	end = memmem(s, n < HTTP_HEAD_MAX ? n : HTTP_HEAD_MAX, "\r\n\r\n", 4);
	m = end ? (size_t)(end - s) + 4 : n < HTTP_HEAD_MAX ? n : HTTP_HEAD_MAX;
	for (j = 0; j < m; j++)
		if (!s[j] || (s[j] == '\n' && (!j || s[j - 1] != '\r')) ||
		    (s[j] == '\r' && j + 1 < m && s[j + 1] != '\n'))
			return 400;
	if (!end)
		return n >= HTTP_HEAD_MAX ? 431 : 0;
	r->head = (size_t)(end - s) + 4;
	/* METHOD SP TARGET SP HTTP/1.0 or HTTP/1.1 */
	eol = memchr(s, '\r', r->head);
	if (!(sp = memchr(s, ' ', (size_t)(eol - s))) || sp == s)
		return 400;
	r->method = s;
	r->mlen = (size_t)(sp - s);
	r->target = sp + 1;
	if (!(sp = memchr(r->target, ' ', (size_t)(eol - r->target))) || sp == r->target ||
	    eol - sp != 9 || memcmp(sp + 1, "HTTP/1.", 7) || (sp[8] != '0' && sp[8] != '1'))
		return 400;
	r->tlen = (size_t)(sp - r->target);
	r->keep = r->v11 = sp[8] == '1';
	for (line = eol + 2; line < end; line = eol + 2) {
		eol = memchr(line, '\r', (size_t)(end - line) + 1);
		if (eol[1] != '\n' || !(colon = memchr(line, ':', (size_t)(eol - line))) ||
		    colon == line || !http_token(line, (size_t)(colon - line)))
			return 400;
		v = colon + 1 + strspn(colon + 1, " \t");
		for (vn = v < eol ? (size_t)(eol - v) : 0; vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'); vn--)
			;
		if (header_is(line, colon, "content-length")) {
			/* Two lengths that differ would let two readers of one
			 * stream disagree on where a request ends. */
			if ((k = num(v, &e, 10, 1LL << 50)) < 0 || e != v + vn || (len >= 0 && k != len))
				return 400;
			len = k;
		} else if (header_is(line, colon, "connection"))
			r->keep = vn == 5 && !strncasecmp(v, "close", 5) ? 0 :
			          vn == 10 && !strncasecmp(v, "keep-alive", 10) ? 1 : r->keep;
		else if (header_is(line, colon, "transfer-encoding")) {
			if (vn != 7 || strncasecmp(v, "chunked", 7))
				return 501;
			r->chunked = 1;
		} else if (header_is(line, colon, "expect"))
			r->expect = vn == 12 && !strncasecmp(v, "100-continue", 12);
		else if (header_is(line, colon, "authorization"))
			r->auth |= *token && authorized(token, v, vn);
		else if (header_is(line, colon, "host")) {
			if (r->host)
				return 400;
			r->host = v;
			r->hostlen = vn;
		} else if (header_is(line, colon, "origin")) {
			if (r->origin)
				return 400;
			r->origin = v;
			r->originlen = vn;
		} else if (header_is(line, colon, "content-type")) {
			/* Its parameters, a charset, say nothing here. */
			for (k = 0; (size_t)k < vn && v[k] != ';' && v[k] != ' ' && v[k] != '\t'; k++)
				;
			r->json = k == 16 && !strncasecmp(v, "application/json", 16);
		} else if (header_is(line, colon, "sec-fetch-site"))
			r->xsite = !(vn == 11 && !strncasecmp(v, "same-origin", 11)) &&
			           !(vn == 4 && !strncasecmp(v, "none", 4));
	}
	/* Both would be the same ambiguity. */
	if (r->chunked && len >= 0)
		return 400;
	r->haslen = len >= 0;
	r->body = len > 0 ? (unsigned long long)len : 0;
	return 1;
}

static int
hexval(char c)
{
	return !isxdigit((unsigned char)c) ? -1 : isdigit((unsigned char)c) ? c - '0' :
	       tolower((unsigned char)c) - 'a' + 10;
}

/* The chunk-size line of a chunked body (RFC 9112, 7.1) at s[0..n), after
 * the CRLF that ends the data of the chunk before when after is set: its
 * length, with the chunk's size in *size; 0 while more bytes are needed;
 * -1 if it is not one. For the last chunk, of size 0, the length takes in
 * the trailer section too, which ends the body. Extensions are ignored. */
static long
http_chunk(const char *s, size_t n, int after, unsigned long long *size)
{
	const char *p = s, *e = s + n, *eol;
	unsigned long long v = 0;
	int d, digits = 0;

	if (after) {
		if (n < 2)
			return n && *s != '\r' ? -1 : 0;
		if (memcmp(s, "\r\n", 2))
			return -1;
		p += 2;
	}
	if (!(eol = memmem(p, (size_t)(e - p), "\r\n", 2)))
		return e - p > 1024 ? -1 : 0;
	for (; p < eol && (d = hexval(*p)) >= 0; p++, digits++) {
		if (v >> 56)
			return -1;
		v = v * 16 + (unsigned)d;
	}
	if (!digits || (p < eol && *p != ';' && *p != ' ' && *p != '\t'))
		return -1;
	for (p = eol + 2; !v; p = eol + 2) {
		if (!(eol = memmem(p, (size_t)(e - p), "\r\n", 2)))
			return e - s > HTTP_HEAD_MAX ? -1 : 0;
		if (eol == p) {
			p += 2;
			break;
		}
	}
	if (p - s > 1024 + HTTP_HEAD_MAX)
		return -1;
	*size = v;
	return p - s;
}

/* The value of key in the query of an HTTP request's target, its %XX and
 * + decoded, into out[0..size): its length; -1 when it is not there, -2
 * when it is not well formed (a byte that is not printable, a % not of
 * two hex digits), does not fit, or would hold a NUL byte. */
static long
http_query(const struct http_req *r, const char *key, char *out, size_t size)
{
	const char *p = memchr(r->target, '?', r->tlen), *e = r->target + r->tlen, *amp;
	size_t k = strlen(key), n = 0;
	int hi = 0, lo = 0;

	for (; p && p < e; p = amp) {
		p++;
		if (!(amp = memchr(p, '&', (size_t)(e - p))))
			amp = e;
		if ((size_t)(amp - p) <= k || memcmp(p, key, k) || p[k] != '=')
			continue;
		for (p += k + 1; p < amp; p++) {
			if ((unsigned char)*p <= ' ' || (*p == '%' && (amp - p < 3 ||
			    (hi = hexval(p[1])) < 0 || (lo = hexval(p[2])) < 0 || !(hi | lo))))
				return -2;
			if (n + 1 >= size)
				return -2;
			out[n++] = *p == '+' ? ' ' : *p == '%' ? (char)(hi * 16 + lo) : *p;
			p += *p == '%' ? 2 : 0;
		}
		out[n] = 0;
		return (long)n;
	}
	return -1;
}

/* POST /exec: {"path": PROG, "args": [...], "env": [...], "input": TEXT,
 * "timeout": SECONDS}, or "sh": LINE for /bin/sh -c LINE instead of path
 * and args: a guest-exec with its output captured, polled by serve
 * within its loop until the program ends, or its timeout (none unless
 * given) passes. */
static void
take_exec(int i, const char *js, size_t len, int keep)
{
	static const char *const keys[] = {"path", "sh", "args", "env", "input", "timeout"};
	struct json_parser p;
	struct json_tok t[64];
	struct buf b = {0}, in = {0};
	struct item *it;
	const char *v;
	long long secs = 0;
	size_t n;
	int k[6], j, bad;
	long u;

	json_init(&p);
	p.keep = 2;
	bad = json_parse(&p, js, len, t, 64) <= 0 || t[0].type != JSON_OBJECT;
	for (j = 0; j < 6; j++)
		k[j] = bad ? -1 : json_get(js, t, 0, keys[j]);
	bad |= (k[0] < 0) == (k[1] < 0) || (k[1] >= 0 && k[2] >= 0);
	for (j = 0; j < 5 && !bad; j++)
		bad |= k[j] >= 0 && t[k[j]].type != (j == 2 || j == 3 ? JSON_ARRAY : JSON_STRING);
	bad |= !bad && k[5] >= 0 && (json_int(js, &t[k[5]], &secs) < 0 || secs < 0);
	if (bad) {
		error_reply(&b, "GenericError", "expected {\"path\": PROG, \"args\": [...], "
		            "\"env\": [...], \"input\": TEXT, \"timeout\": SECONDS}, or "
		            "\"sh\": LINE for path and args", "", 0);
		enqueue(i, ITEM_BAD, b.p, b.len, "guest-exec", keep);
		free(b.p);
		return;
	}
	if (denied("guest-exec") || denied("guest-exec-status")) {
		refusal(&b, "guest-exec", "", 0);
		enqueue(i, ITEM_DENIED, b.p, b.len, "guest-exec", keep);
		free(b.p);
		return;
	}
	buf_str(&b, "{\"execute\": \"guest-exec\", \"arguments\": {\"path\": ");
	for (j = 0; j < 4; j++) {
		if (k[j] < 0)
			continue;
		buf_str(&b, j == 1 ? "\"/bin/sh\", \"arg\": [\"-c\", " : j == 2 ? ", \"arg\": " :
		        j == 3 ? ", \"env\": " : "");
		v = tok_text(js, &t[k[j]], &n);
		buf_add(&b, v, n);
		buf_str(&b, j == 1 ? "]" : "");
	}
	if (k[4] >= 0 && (u = json_unescape(js, &t[k[4]], NULL, 0)) > 0) {
		buf_need(&in, (size_t)u + 1);
		in.len = (size_t)json_unescape(js, &t[k[4]], in.p, (size_t)u + 1);
		buf_str(&b, ", \"input-data\": \"");
		b64_encode(&b, (unsigned char *)in.p, in.len);
		buf_str(&b, "\"");
	}
	buf_need(&b, 64);
	b.len += (size_t)snprintf(b.p + b.len, 64, ", \"capture-output\": true}, \"id\": %lld}",
	                          ++sv.next_id);
	it = enqueue(i, ITEM_EXEC, b.p, b.len, "guest-exec", keep);
	it->id = sv.next_id;
	it->until = secs ? deadline_in(secs * 1000) : -1;
	free(b.p);
	free(in.p);
}

/* The requests queued, sent to the agent, or between an /exec's polls. */
static size_t
waiting(void)
{
	size_t k, n = 0;

	for (k = sv.qhead; k < sv.qhead + sv.qlen; k++)
		n += sv.q[k].state < DONE;
	return n;
}

/* GET /metrics: the counts, in Prometheus' text format. */
static void
metrics(int i, int keep)
{
	struct buf b = {0};
	char line[200];
	int j, o, n = 0;

	for (j = 0; j < sv.ncl; j++)
		n += sv.cl[j].fd >= 0;
	snprintf(line, sizeof line, "# TYPE qga_agent_up gauge\nqga_agent_up %d\n"
	         "# TYPE qga_agent_reconnects_total counter\nqga_agent_reconnects_total %d\n"
	         "# TYPE qga_waiting gauge\nqga_waiting %zu\n# TYPE qga_clients gauge\n"
	         "qga_clients %d\n", sv.agent == AGENT_UP, sv.reconnects, waiting(), n);
	buf_str(&b, line);
	buf_str(&b, "# TYPE qga_requests_total counter\n");
	for (j = 0; j < sv.nstats; j++)
		for (o = 0; o < NOUT; o++)
			if (sv.stats[j].n[o]) {
				snprintf(line, sizeof line, "qga_requests_total{command=\"%s\","
				         "outcome=\"%s\"} %llu\n", sv.stats[j].name, outcomes[o],
				         sv.stats[j].n[o]);
				buf_str(&b, line);
			}
	buf_str(&b, "# TYPE qga_request_seconds histogram\n");
	for (j = 0; j < 6; j++) {
		if (buckets[j])
			snprintf(line, sizeof line, "qga_request_seconds_bucket{le=\"%g\"} %llu\n",
			         buckets[j] / 1000.0, sv.le[j]);
		else
			snprintf(line, sizeof line, "qga_request_seconds_bucket{le=\"+Inf\"} %llu\n"
			         "qga_request_seconds_sum %.3f\nqga_request_seconds_count %llu\n",
			         sv.le[j], sv.seconds, sv.le[j]);
		buf_str(&b, line);
	}
	enqueue(i, ITEM_LOCAL, b.p, b.len, "metrics", keep)->text = 1;
	free(b.p);
}

/* GET /health answers from what the proxy knows, behind nothing the agent
 * is doing: 200 when the agent is connected and in sync, else 503. It
 * needs no token, so it says no more than that: not why, which names
 * paths and may quote the guest. */
static void
health(int i, int keep)
{
	char b[128];

	snprintf(b, sizeof b, "{\"return\": {\"agent\": \"%s\", \"waiting\": %zu}}\n",
	         sv.agent == AGENT_UP ? "up" : "down", waiting());
	enqueue(i, ITEM_LOCAL, b, strlen(b), "health", keep)->code =
		sv.agent == AGENT_UP ? 200 : 503;
}

/* The client's last request is taken: it gets its replies, then the end
 * of the stream; what it still sends is read and dropped (drain), so that
 * its kernel does not drop the answer for a reset. */
static void
http_closing(int i, int drain)
{
	sv.cl[i].eof = sv.cl[i].last = 1;
	sv.cl[i].drain = drain;
	sv.cl[i].since = now_ms();
}

/* A reply of serve's own, given in its turn among the client's others:
 * HTTP/1.1 answers pipelined requests in their order. */
static void
http_local(int i, int code, int keep)
{
	enqueue(i, ITEM_LOCAL, "", 0, "http", keep)->code = code;
	if (!keep)
		http_closing(i, code >= 400);
}

/* Whether a[0..n), HOST[:PORT] as Host and Origin say it, names the
 * listener l: its port, if said, and localhost, its address or the name
 * it was given. */
static int
own_authority(int l, const char *a, size_t n)
{
	const char *c = n && *a == '[' ? memchr(a, ']', n) : a;
	size_t h;
	char *e;

	if (!c)
		return 0;
	c = memchr(c, ':', n - (size_t)(c - a));
	h = c ? (size_t)(c - a) : n;
	if (c && (num(c + 1, &e, 10, 65535) != sv.lport[l] || e != a + n))
		return 0;
	return (h == 9 && !strncasecmp(a, "localhost", 9)) ||
	       (h == strlen(sv.laddr[l]) && !strncasecmp(a, sv.laddr[l], h)) ||
	       (h == strlen(sv.lname[l]) && !strncasecmp(a, sv.lname[l], h));
}

/* Why a request that came through listener l may be a web page's, which
 * any site the host's user opens could make: cross-site (Sec-Fetch-Site,
 * or an Origin that is not the Host's), or through DNS rebinding, a
 * name of the attacker's that resolves to loopback (a Host that is not
 * the listener's, which only a token makes safe). NULL when it is not. */
static const char *
http_foreign(const struct http_req *r, int l)
{
	if (r->xsite)
		return "a cross-site request (Sec-Fetch-Site) is refused";
	if (r->origin && (r->originlen < 7 || strncasecmp(r->origin, "http://", 7) ||
	    (r->host ? r->originlen - 7 != r->hostlen ||
	               strncasecmp(r->origin + 7, r->host, r->hostlen) :
	               !sv.lport[l] || !own_authority(l, r->origin + 7, r->originlen - 7))))
		return "a cross-site request (Origin) is refused";
	if (!*sv.token && sv.lport[l] && r->host && !own_authority(l, r->host, r->hostlen))
		return "a Host that is not this server's is refused (DNS rebinding?)";
	return NULL;
}

/* A request refused for what it is: the reason said, the end of the
 * connection. */
static void
http_refuse(int i, int code, const char *why)
{
	struct buf b = {0};

	error_reply(&b, "GenericError", why, "", 0);
	enqueue(i, ITEM_LOCAL, b.p, b.len, "http", 0)->code = code;
	http_closing(i, 1);
	free(b.p);
}

/* Whether the request is method's (when given) for target (when given:
 * its path, the query left out). */
static int
http_is(const struct http_req *r, const char *method, const char *target)
{
	const char *q = memchr(r->target, '?', r->tlen);
	size_t n = q ? (size_t)(q - r->target) : r->tlen;

	return (!method || (r->mlen == strlen(method) && !memcmp(r->method, method, r->mlen))) &&
	       (!target || (n == strlen(target) && !memcmp(r->target, target, n)));
}

/* A free client slot, or -1 when --max-clients are there. */
static int
client_slot(void)
{
	int i;

	for (i = 0; i < sv.ncl && sv.cl[i].fd >= 0; i++)
		;
	return i < sv.max ? i : -1;
}

/* Takes a client of the loop in a free slot, fd non-blocking already: its
 * slot, or -1 when --max-clients are there. */
static int
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

static struct xfer *
xfer_of(int i)
{
	struct xfer *x = sv.cl[i].xf ? &sv.xf[sv.cl[i].xf - 1] : NULL;

	return x && x->pid && x->gen == sv.cl[i].gen ? x : NULL;
}

static _Noreturn void run_builtin(int argc, char **argv);

/* The child of a /file transfer: get or put as the command runs them,
 * with data as its stdin (put) or stdout (get), err as its stderr, and
 * serve, through sock, as its agent. It keeps none of serve's other
 * descriptors. */
static _Noreturn void
file_child(int sock, int data, int err, int put, int argc, char **argv)
{
	int i;

	for (i = 0; i < sv.ncl; i++)
		if (sv.cl[i].fd >= 0)
			close(sv.cl[i].fd);
	for (i = 0; i < sv.nl; i++)
		close(sv.lfd[i]);
	for (i = 0; i < sv.nxf; i++)
		if (sv.xf[i].pid) {
			close(sv.xf[i].data);
			close(sv.xf[i].err);
		}
	if (sess.fd >= 0)
		close(sess.fd);
	if (sv.log && sv.log != stderr)
		close(fileno(sv.log));
	dup2(data, put ? 0 : 1);
	dup2(err, 2);
	close(data);
	close(err);
	catch_signals();
	hold_signals(0);
	conn_init(&sess, opt.timeout);
	snprintf(sess.name, sizeof sess.name, "%s", opt.addr);
	sess.fd = sock;
	sess.sock = 1;
	sess.rcvto = sess.sndto = -1;
	cur = find_cmd(argv[0]);
	run_builtin(argc, argv);
}

/* GET /file?path=P streams a guest file down, PUT /file?path=P[&mode=M]
 * one up. qga get or put runs in a child of serve's, its stdout or stdin a
 * pipe to this client and its agent serve itself, through a socket pair
 * that is one more client of the loop. So the transfer is the commands'
 * own, put's temporary file and rename included; the guest handle is
 * closed and the temporary file removed however it ends, even when the
 * HTTP client goes (the child is then stopped by SIGTERM, and undoes what
 * it did as the command does); memory is bounded by the pipe; and the
 * loop waits for nothing. */
static void
take_file(int i, const struct http_req *r)
{
	static char get[] = "get", put_[] = "put", m_[] = "-m", dd[] = "--", dash[] = "-";
	char path[4096], mode[16], *argv[8];
	int put = *r->method == 'P', sp[2], dp[2], ep[2], argc = 0, k;
	struct buf b = {0};
	struct xfer *x;
	long m = 0;
	pid_t pid;

	if (http_query(r, "path", path, sizeof path) <= 0 ||
	    (m = http_query(r, "mode", mode, sizeof mode)) == -2 ||
	    (m >= 0 && (!put || !m || strspn(mode, "01234567") != (size_t)m))) {
		http_local(i, 400, 0);
		return;
	}
	if (denied("guest-file-open") || denied(put ? "guest-file-write" : "guest-file-read")) {
		refusal(&b, put ? "guest-file-write" : "guest-file-read", "", 0);
		enqueue(i, ITEM_DENIED, b.p, b.len, put ? "PUT /file" : "GET /file", 0);
		http_closing(i, 1);
		free(b.p);
		return;
	}
	if (put && !r->haslen && !r->chunked) {
		http_local(i, 411, 0);
		return;
	}
	if (opt.qmp || client_slot() < 0) {
		http_local(i, opt.qmp ? 404 : 503, 0);
		return;
	}
	argv[argc++] = put ? put_ : get;
	if (m > 0) {
		argv[argc++] = m_;
		argv[argc++] = mode;
	}
	argv[argc++] = dd;
	argv[argc++] = put ? dash : path;
	argv[argc++] = put ? path : dash;
	argv[argc] = NULL;
	fflush(NULL);
	/* A signal to the child before it has its handlers waits for them. */
	hold_signals(1);
	sp[0] = sp[1] = dp[0] = dp[1] = ep[0] = ep[1] = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 ||
	    pipe2(dp, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		note("%s: %s /file: %s", sv.cl[i].name, put ? "PUT" : "GET", strerror(errno));
		for (k = 0; k < 2; k++) {
			close(sp[k]);
			close(dp[k]);
			close(ep[k]);
		}
		hold_signals(0);
		http_local(i, 503, 0);
		return;
	}
	if (!pid) {
		close(sp[0]);
		close(dp[put]);
		close(ep[0]);
		file_child(sp[1], dp[!put], ep[1], put, argc, argv);
	}
	/* The child reads dp[0] (put) or writes dp[1] (get); serve the other. */
	hold_signals(0);
	close(sp[1]);
	close(dp[!put]);
	close(ep[1]);
	for (k = 0; sv.xf[k].pid; k++)
		;
	x = &sv.xf[k];
	sv.nxf = k < sv.nxf ? sv.nxf : k + 1;
	memset(x, 0, sizeof *x);
	x->pid = pid;
	x->cl = i;
	x->gen = sv.cl[i].gen;
	x->put = put;
	x->keep = r->keep && r->v11;
	x->v11 = r->v11;
	x->data = dp[put];
	x->err = ep[0];
	x->status = -1;
	x->chunked = r->chunked;
	x->left = r->body;
	sv.cl[i].xf = k + 1;
	sv.cl[i].since = put ? now_ms() : 0;
	fcntl(x->data, F_SETFL, O_NONBLOCK);
	fcntl(x->err, F_SETFL, O_NONBLOCK);
	fcntl(sp[0], F_SETFL, O_NONBLOCK);
	snprintf(path, sizeof path, "%s's file: QGA client", sv.cl[i].name);
	client_add(sp[0], 0, path);
	enqueue(i, ITEM_FILE, "", 0, put ? "PUT /file" : "GET /file", x->keep);
	/* curl waits a second for this before it sends a large body. */
	if (put && r->expect && sv.cl[i].pending == 1) {
		buf_str(&sv.cl[i].out, "HTTP/1.1 100 Continue\r\n\r\n");
		client_flush(i);
	}
}

/* Tells the child to stop, once: it undoes what it did in the guest and
 * exits. A put's stdin is kept open, since its end would finish the copy;
 * a get's is closed, which ends a write that the signal came too early
 * to interrupt. */
static void
xfer_kill(struct xfer *x)
{
	if (x->killed)
		return;
	kill(x->pid, SIGTERM);
	x->killed = 1;
	if (!x->put && x->data >= 0) {
		close(x->data);
		x->data = -1;
	}
}

/* Passes what the client sent of a PUT /file's body to the child, as much
 * as its pipe takes: Content-Length's bytes, or a chunked body's data. */
static void
xfer_body(struct xfer *x)
{
	struct client *c = &sv.cl[x->cl];
	unsigned long long size;
	size_t used = 0, n;
	ssize_t w = 0;
	long k;

	x->blocked = 0;
	while (x->data >= 0 && !x->bad && !x->killed) {
		if (x->chunked && !x->left && !x->whole) {
			if ((k = http_chunk(c->in.p + used, c->in.len - used, x->after, &size)) <= 0) {
				x->bad = k < 0 ? 400 : 0;
				break;
			}
			used += (size_t)k;
			x->after = 1;
			x->left = size;
			x->whole = !size;
		}
		if (!x->left) {
			/* The body is all there: the child's stdin ends. */
			x->whole = 1;
			close(x->data);
			x->data = -1;
			break;
		}
		n = c->in.len - used < x->left ? c->in.len - used : (size_t)x->left;
		if (!n)
			break;
		if ((w = write(x->data, c->in.p + used, n)) < 0) {
			x->blocked = errno == EAGAIN;
			if (errno != EAGAIN && errno != EINTR) {
				close(x->data); /* the child is gone: its status says why */
				x->data = -1;
			}
			break;
		}
		used += (size_t)w;
		x->left -= (unsigned long long)w;
		x->bytes += (unsigned long long)w;
	}
	if (used) {
		memmove(c->in.p, c->in.p + used, c->in.len - used);
		c->in.len -= used;
	}
	/* A stalled body is cut off after -t, as a head is. */
	c->since = x->data < 0 ? 0 : used ? now_ms() : c->since;
	if (c->eof && x->data >= 0 && !x->bad)
		x->bad = 400;
	if (x->bad)
		xfer_kill(x);
}

/* GET /file's head, which goes before its first byte or its end. HTTP/1.0
 * has no chunks: the end of the connection ends the file. */
static void
xfer_head(struct xfer *x, struct buf *out)
{
	buf_str(out, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n");
	buf_str(out, x->v11 ? "Transfer-Encoding: chunked\r\n" : "");
	buf_str(out, x->keep ? "\r\n" : "Connection: close\r\n\r\n");
	x->started = 1;
}

/* GET /file: the child's next piece of the file, to the client as a
 * chunk of a chunked reply. */
static void
xfer_read(struct xfer *x)
{
	struct client *c = &sv.cl[x->cl];
	char b[65536], head[24];
	ssize_t n = read(x->data, b, sizeof b);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close(x->data);
		x->data = -1;
		return;
	}
	if (!x->started)
		xfer_head(x, &c->out);
	snprintf(head, sizeof head, "%zx\r\n", (size_t)n);
	buf_str(&c->out, x->v11 ? head : "");
	buf_add(&c->out, b, (size_t)n);
	buf_str(&c->out, x->v11 ? "\r\n" : "");
	client_flush(x->cl);
}

/* Keeps the child's first KiB of messages, and sees its stderr end. */
static void
xfer_msg(struct xfer *x)
{
	char b[1024];
	ssize_t n = read(x->err, b, sizeof b);

	if (n > 0 && x->msg.len < sizeof b)
		buf_add(&x->msg, b, (size_t)n < sizeof b - x->msg.len ? (size_t)n : sizeof b - x->msg.len);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		close(x->err);
		x->err = -1;
	}
}

/* The HTTP status of a get or put that failed, by its exit status and its
 * message: as error_status() has the agent's errors, and 404, 400 or 403
 * for a guest file that is not there, is a folder, or may not be opened. */
static int
file_status(int st, const char *msg)
{
	return st == EX_USAGE ? 400 : st == EX_IO ? 503 : st == EX_TIMEOUT ? 504 :
	       st == EX_PROTO ? 502 : st != EX_AGENT ? 500 :
	       strstr(msg, "No such file") ? 404 : strstr(msg, "Is a directory") ? 400 :
	       strstr(msg, "ermission denied") || strstr(msg, "by the proxy") ||
	       strstr(msg, "has been disabled") ? 403 : 500;
}

static void client_http(int i);

/* The transfer's child has ended: its client gets the end of the file,
 * put's outcome, or the child's last message as an error. */
static void
xfer_finish(struct xfer *x)
{
	struct client *c = &sv.cl[x->cl];
	struct item *it = NULL;
	struct buf end = {0};
	char b[64], *m, *e;
	size_t k;

	for (k = sv.qhead; k < sv.qhead + sv.qlen && !it; k++)
		if (sv.q[k].kind == ITEM_FILE && sv.q[k].state == RUNNING &&
		    sv.q[k].cl == x->cl && sv.q[k].gen == x->gen)
			it = &sv.q[k];
	buf_add(&x->msg, "", 1);
	for (m = x->msg.p; (e = strchr(m, '\n')) && e[1]; m = e + 1)
		;
	m[strcspn(m, "\n")] = 0;
	m += strncmp(m, "qga: ", 5) ? 0 : 5;
	if (it) {
		it->keep = x->keep && (!x->put || x->whole);
		if (!x->put && !x->status) {
			/* The file's end; an empty one's head goes first. */
			if (!x->started)
				xfer_head(x, &end);
			buf_str(&end, x->v11 ? "0\r\n\r\n" : "");
			it->raw = 1;
			item_done(it, 200, end.p, end.len);
			free(end.p);
		} else if (!x->put && x->started) {
			/* A reply begun can only be cut short. */
			item_done(it, 500, "", 0);
			client_close(x->cl, "cut off: the file could not be read whole");
		} else if (!x->status && !x->bad) {
			snprintf(b, sizeof b, "{\"return\": {\"size\": %llu}}\n", x->bytes);
			item_done(it, 200, b, strlen(b));
		} else
			item_fail(it, x->bad ? x->bad : file_status(x->status, m),
			          x->status == EX_IO ? "AgentUnavailable" : x->status == EX_TIMEOUT ?
			          "AgentTimeout" : "GenericError",
			          x->bad ? "the request's body ended early or is not well formed" : m);
		if (!it->keep && c->fd >= 0)
			http_closing(x->cl, x->put && !x->whole);
	}
	if (x->data >= 0)
		close(x->data);
	if (x->err >= 0)
		close(x->err);
	free(x->msg.p);
	x->pid = 0;
	while (sv.nxf && !sv.xf[sv.nxf - 1].pid)
		sv.nxf--;
	/* The requests that came behind it are taken now. */
	if (c->fd >= 0 && c->gen == x->gen) {
		c->xf = 0;
		client_http(x->cl);
	}
}

/* What each transfer waits for: for GET, the child's data while its
 * client, whose turn it is, has little of it left to read. */
static void
xfer_poll(struct pollfd *p)
{
	struct client *c;
	struct xfer *x;
	int k;

	for (k = 0; k < sv.nxf; k++) {
		x = &sv.xf[k];
		c = &sv.cl[x->cl];
		p[2 * k] = (struct pollfd){-1, 0, 0};
		p[2 * k + 1] = (struct pollfd){x->pid ? x->err : -1, POLLIN, 0};
		if (x->pid && x->put && x->blocked)
			p[2 * k] = (struct pollfd){x->data, POLLOUT, 0};
		else if (x->pid && !x->put && c->fd >= 0 && c->gen == x->gen && c->pending == 1 &&
		         c->out.len - c->outoff < 262144)
			p[2 * k] = (struct pollfd){x->data, POLLIN, 0};
	}
}

static void
xfer_io(const struct pollfd *p)
{
	struct xfer *x;
	int k;

	for (k = 0; k < sv.nxf; k++) {
		if (!(x = &sv.xf[k])->pid)
			continue;
		if (p[2 * k].fd >= 0 && p[2 * k].fd == x->data && p[2 * k].revents)
			x->put ? xfer_body(x) : xfer_read(x);
		if (x->err >= 0 && p[2 * k + 1].revents)
			xfer_msg(x);
	}
}

/* When serve stops, each transfer's child is told to stop too, and serve
 * goes on until they have undone what they did in the guest, for 10 s at
 * most: the ms it may still go on, or 0. */
static int
transfers_stop(void)
{
	static long long until;
	int k, left = 0;

	for (k = 0; k < sv.nxf; k++) {
		if (sv.xf[k].pid)
			xfer_kill(&sv.xf[k]);
		left |= sv.xf[k].pid != 0;
	}
	if (!until)
		until = now_ms() + 10000;
	return left && now_ms() < until ? (int)(until - now_ms()) : 0;
}

/* Moves each transfer on: stops the child of a client gone, and finishes
 * a transfer whose child has ended. Returns wait, or less. */
static int
xfer_pump(int wait)
{
	struct xfer *x;
	int k, st, gone;

	for (k = 0; k < sv.nxf; k++) {
		if (!(x = &sv.xf[k])->pid)
			continue;
		gone = sv.cl[x->cl].fd < 0 || sv.cl[x->cl].gen != x->gen;
		if (gone)
			xfer_kill(x);
		if (x->put && !gone)
			xfer_body(x);
		if (x->err < 0 && x->status < 0) {
			/* Its stderr ends as it exits, a moment before it can be waited for. */
			if (waitpid(x->pid, &st, WNOHANG) == x->pid)
				x->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			else
				wait = 1;
		}
		if (x->status >= 0 && (x->put || x->data < 0 || x->status || gone))
			xfer_finish(x);
	}
	return wait;
}

/* Takes the HTTP requests a client sent: POST / with a request as its
 * body, POST /exec, GET and PUT /file, GET /health (which needs no token)
 * and GET /metrics. */
static void
client_http(int i)
{
	struct client *c = &sv.cl[i];
	struct xfer *x;
	struct http_req r;
	const char *why;
	size_t used;
	int st, file;

	while (c->fd >= 0 && !c->last && c->in.len && !xfer_of(i) &&
	       (st = http_parse(c->in.p, c->in.len, sv.token, &r))) {
		/* A file's body is streamed; any other is taken whole. */
		file = st == 1 && (http_is(&r, "GET", "/file") || http_is(&r, "PUT", "/file"));
		if (st == 1 && !file && r.body > sv.maxreq)
			st = 413;
		if (st > 1) {
			http_local(i, st, 0);
			return;
		}
		if ((why = http_foreign(&r, c->ln))) {
			http_refuse(i, 403, why);
			return;
		}
		/* A form or a fetch without CORS can send others. */
		if ((http_is(&r, "POST", "/") || http_is(&r, "POST", "/exec")) && !r.json &&
		    (!*sv.token || r.auth)) {
			http_refuse(i, 415, "a POST must be application/json");
			return;
		}
		if (!file && c->in.len - r.head < r.body)
			break;
		used = r.head + (file ? 0 : r.body);
		if (http_is(&r, "GET", "/health"))
			health(i, r.keep);
		else if (http_is(&r, "GET", "/metrics") && (!*sv.token || r.auth))
			metrics(i, r.keep);
		else if (*sv.token && !r.auth)
			http_local(i, 401, r.keep && !file);
		else if (file)
			take_file(i, &r);
		else if ((http_is(&r, "POST", "/") || http_is(&r, "POST", "/exec")) && !r.haslen)
			http_local(i, 411, 0);
		else if (http_is(&r, "POST", "/"))
			take_request(i, c->in.p + r.head, r.body, r.keep);
		else if (http_is(&r, "POST", "/exec"))
			take_exec(i, c->in.p + r.head, r.body, r.keep);
		else
			http_local(i, http_is(&r, NULL, "/") || http_is(&r, NULL, "/exec") ||
			           http_is(&r, NULL, "/file") || http_is(&r, NULL, "/health") ||
			           http_is(&r, NULL, "/metrics") ? 405 : 404, r.keep && !r.chunked);
		memmove(c->in.p, c->in.p + used, c->in.len - used);
		c->in.len -= used;
	}
	if ((x = xfer_of(i)) && x->put)
		xfer_body(x);
	else
		c->since = !c->in.len || x ? 0 : c->since ? c->since : now_ms();
}

/* Cuts off the HTTP clients whose request has not come whole within -t,
 * as a client that sends a byte now and then would hold its slot for
 * ever; returns the ms until the next such deadline, or -1. */
static int
http_deadlines(int wait)
{
	long long now = now_ms(), left;
	int i;

	for (i = 0; i < sv.ncl && opt.timeout; i++) {
		if (sv.cl[i].fd < 0 || !sv.cl[i].since)
			continue;
		if ((left = sv.cl[i].since + opt.timeout - now) <= 0)
			client_close(i, "cut off: its request did not come whole in time");
		else if (wait < 0 || left < wait)
			wait = (int)left;
	}
	return wait;
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
	if (n <= 0 && c->pending) {
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
static void
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
static void
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
static void
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
static void
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
static void
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
static int
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
		if (sv.cl[i].fd >= 0 && sv.cl[i].held + sv.cl[i].out.len - sv.cl[i].outoff >
		    sv.maxreq + opt.maxreply)
			client_close(i, "cut off: its replies waiting pass --max-request "
			             "plus --max-reply");
	while (sv.qlen && sv.q[sv.qhead].state == GONE) {
		sv.qhead++;
		sv.qlen--;
	}
}

static const struct option serve_longs[] = {
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

static int
cmd_serve(int argc, char **argv)
{
	struct sigaction sa;
	struct pollfd *pfd = NULL;
	char *addrs[16];
	int http[16], na = 0, ch, i, n, k, wait, left = 0;
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
	if (optind != argc || !na)
		return -1;
	one_target("serve");
	agent_where();
	for (i = 0; i < na; i++)
		serve_listen(addrs[i], http[i]);
	sv.cl = xrealloc(NULL, (size_t)sv.max * sizeof *sv.cl);
	/* Untouched until used, as --max-clients may be large. */
	if (!(sv.xf = calloc((size_t)sv.max, sizeof *sv.xf)))
		die(EX_IO, "out of memory");
	pfd = xrealloc(NULL, (size_t)(16 + 3 * sv.max + 1) * sizeof *pfd);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	agent_connect();

	for (;;) {
		wait = xfer_pump(http_deadlines(agent_pump()));
		deliver_done();
		if (stopping && !(left = transfers_stop()))
			break;
		if (stopping && (wait < 0 || wait > left))
			wait = left;
		for (n = 0; n < sv.nl; n++)
			pfd[n] = (struct pollfd){stopping ? -1 : sv.lfd[n], POLLIN, 0};
		/* A client with many requests waiting is not read until they
		 * are answered, nor one whose file transfer has not taken what
		 * it sent. */
		for (i = 0; i < sv.ncl; i++)
			pfd[n + i] = (struct pollfd){sv.cl[i].fd, (short)((sv.cl[i].pending <
				CLIENT_PENDING_MAX && (!sv.cl[i].eof || sv.cl[i].drain) &&
				(!sv.cl[i].xf || sv.cl[i].in.len < 65536) ? POLLIN : 0) |
				(sv.cl[i].outoff < sv.cl[i].out.len ? POLLOUT : 0)), 0};
		pfd[n + sv.ncl] = (struct pollfd){sv.agent ? sess.fd : -1,
			(short)(sv.agent == AGENT_CONNECTING ? POLLOUT :
			        POLLIN | (sv.aoff < sv.aout.len ? POLLOUT : 0)), 0};
		xfer_poll(pfd + n + sv.ncl + 1);
		if (poll(pfd, (nfds_t)(n + sv.ncl + 1 + 2 * sv.nxf), wait) < 0 && errno != EINTR)
			die(EX_IO, "poll:");
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
		k = pfd[n + sv.ncl].fd == sess.fd ? pfd[n + sv.ncl].revents : 0;
		if (sv.agent == AGENT_CONNECTING && k)
			agent_connected();
		else if (sv.agent > AGENT_CONNECTING) {
			if (k & POLLOUT)
				agent_write();
			if (sv.agent && k & (POLLIN | POLLHUP | POLLERR))
				agent_read();
		}
	}
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
	sess.owed = 1;
	sess.partial = sv.aoff > 0 && sv.aoff < sv.aout.len;
	conn_close(&sess);
	free(pfd);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Built-in commands: the table, help and completion                   */
/* ------------------------------------------------------------------ */

static int cmd_help(int, char **);
static int cmd_completion(int, char **);
static _Noreturn void usage(int status);

static const struct cmd cmds[] = {
	{"exec", cmd_exec, NULL, "ie:T:", exec_longs,
	 "[-i] [-e NAME=VALUE]... [-T SECS] [--no-wait] [--merge] [--no-stream] [--] PROG [ARG]...\n"
	 "Runs PROG in the guest, its output here as it comes, its status as\n"
	 "qga's (128+N for signal N; 255 when qga fails). -i: stdin as its input;\n"
	 "-e: a variable; -T: give up after SECS (124); --no-wait: print the pid;\n"
	 "-j: one JSON object at the end, as Proxmox's qm guest exec prints;\n"
	 "--no-stream: the agent's capture (16 MiB), the program left running.\n",
	 "guest-exec,guest-exec-status", 1},
	{"sh", cmd_exec, NULL, "ie:T:", exec_longs,
	 "[EXEC OPTIONS] [--ps] 'COMMAND LINE' [ARG]...\n"
	 "Runs /bin/sh -c 'COMMAND LINE' in the guest (cmd.exe /s /c on Windows),\n"
	 "as exec does; --ps: a PowerShell script (powershell.exe, or pwsh).\n",
	 "guest-exec,guest-exec-status", 1},
	{"exec-status", cmd_exec_status, NULL, NULL, NULL,
	 "PID\n"
	 "Ends as exec would a program started with exec --no-wait: its output,\n"
	 "its status; 124 while it runs.\n",
	 "guest-exec-status", 1},
	{"cat", cmd_cat, NULL, NULL, NULL,
	 "REMOTE...\n"
	 "Writes guest files to stdout.\n",
	 "guest-file-open,guest-file-read,guest-file-close", 0},
	{"get", cmd_get, NULL, "rc", get_longs,
	 "[-c] [--verify] REMOTE [LOCAL|-] | -r REMOTE [LOCAL]\n"
	 "Copies a guest file here, atomically; LOCAL defaults to its name.\n"
	 "-c: continues LOCAL, in place; --verify: checks SHA-256 against the\n"
	 "guest's; -r: a folder, whose archive qga unpacks itself (files, folders\n"
	 "and links only, inside the copy), into LOCAL or LOCAL/NAME, never merged.\n",
	 "guest-file-open,guest-file-read,guest-file-close", 0},
	{"put", cmd_put, NULL, "am:rc", put_longs,
	 "[-a|-c] [--verify] [--inplace] [-m MODE] LOCAL|- REMOTE | -r LOCAL REMOTE\n"
	 "Copies a file, or stdin (-), to the guest, atomically where guest-exec\n"
	 "allows (else, or with --inplace, in place); -m: a new file's mode;\n"
	 "-c, --verify: as get's; -r: a folder, unpacked into REMOTE by tar.\n",
	 "guest-file-open,guest-file-write,guest-file-close", 0},
	{"ping", NULL, NULL, NULL, NULL,
	 "\n"
	 "Exits 0 when the agent answers.\n",
	 "guest-ping", 1},
	{"info", NULL, show_info, NULL, NULL,
	 "\n"
	 "The agent's version and commands, disabled ones marked.\n",
	 "guest-info", 1},
	{"osinfo", NULL, show_osinfo, NULL, NULL,
	 "\n"
	 "The guest's operating system.\n",
	 "guest-get-osinfo", 1},
	{"hostname", NULL, show_hostname, NULL, NULL,
	 "\n"
	 "The guest's host name.\n",
	 "guest-get-host-name", 1},
	{"time", NULL, show_time, NULL, NULL,
	 "\n"
	 "The guest's clock, in UTC.\n",
	 "guest-get-time", 1},
	{"timezone", NULL, show_timezone, NULL, NULL,
	 "\n"
	 "The guest's time zone and its offset.\n",
	 "guest-get-timezone", 1},
	{"users", NULL, show_users, NULL, NULL,
	 "\n"
	 "Users logged in to the guest.\n",
	 "guest-get-users", 1},
	{"ifconfig", NULL, show_ifconfig, NULL, NULL,
	 "\n"
	 "Network interfaces: name, MAC, addresses.\n",
	 "guest-network-get-interfaces", 1},
	{"ip", cmd_ip, NULL, "46aw:", ip_longs,
	 "[-4|-6] [-a] [--wait SECS] [IFACE]\n"
	 "The guest's addresses, one a line, loopback and link-local left out\n"
	 "unless -a; exits 1 when there is none. --wait: until one appears.\n",
	 "guest-network-get-interfaces", 1},
	{"df", NULL, show_df, NULL, NULL,
	 "\n"
	 "Mounted filesystems and their use.\n",
	 "guest-get-fsinfo", 1},
	{"vcpus", NULL, show_vcpus, NULL, NULL,
	 "\n"
	 "Virtual CPUs and their state.\n",
	 "guest-get-vcpus", 1},
	{"disks", NULL, show_disks, NULL, NULL,
	 "\n"
	 "Disks and partitions, with bus, serial and alias.\n",
	 "guest-get-disks", 1},
	{"routes", NULL, show_routes, NULL, NULL,
	 "\n"
	 "The guest's routing table (qemu-ga 9.1 on).\n",
	 "guest-network-get-route", 1},
	{"load", NULL, show_load, NULL, NULL,
	 "\n"
	 "The guest's load average (qemu-ga 10.0 on).\n",
	 "guest-get-load", 1},
	{"cpustats", NULL, NULL, NULL, NULL,
	 "\n"
	 "Time each CPU spent in each state since boot, in ms.\n",
	 "guest-get-cpustats", 2},
	{"diskstats", NULL, NULL, NULL, NULL,
	 "\n"
	 "I/O counts of each disk since boot.\n",
	 "guest-get-diskstats", 2},
	{"devices", NULL, NULL, NULL, NULL,
	 "\n"
	 "Device drivers of a Windows guest: version, date, PCI ids.\n",
	 "guest-get-devices", 2},
	{"shutdown", cmd_power, NULL, NULL, NULL,
	 "\n"
	 "Powers the guest off.\nguest-shutdown sends no reply on success: an\n"
	 "error is waited for up to 3 s, and none means accepted.\n",
	 "guest-shutdown", 0},
	{"reboot", cmd_power, NULL, NULL, NULL,
	 "\n"
	 "Reboots the guest, as shutdown does.\n",
	 "guest-shutdown", 0},
	{"suspend", cmd_power, NULL, NULL, NULL,
	 "ram | disk | hybrid\n"
	 "Suspends the guest, as shutdown does. ram and hybrid need a QEMU that\n"
	 "can wake the guest (QMP query-current-machine: wakeup-suspend-support).\n",
	 "guest-suspend-ram,guest-suspend-disk,guest-suspend-hybrid", 0},
	{"set-time", cmd_set_time, NULL, "", settime_longs,
	 "[--now | SECONDS]\n"
	 "Sets the guest's clock: to this machine's, to SECONDS since 1970, or\n"
	 "with neither from the guest's hardware clock (after a resume).\n",
	 "guest-set-time", 0},
	{"halt", cmd_power, NULL, NULL, NULL,
	 "\n"
	 "Halts the guest, as shutdown does.\n",
	 "guest-shutdown", 0},
	{"fsfreeze", cmd_fsfreeze, NULL, "", fsfreeze_longs,
	 "status | freeze [MOUNTPOINT]... | thaw | --run [--max SECS] CMD [ARG]...\n"
	 "Freezes or thaws the guest's filesystems (freeze waits 3600 s for its\n"
	 "reply, thaw 180 s, unless -t is given). --run: freezes, runs CMD here,\n"
	 "and thaws whatever happens, at the latest after --max (default 60 s).\n",
	 "guest-fsfreeze-status,guest-fsfreeze-freeze,"
	 "guest-fsfreeze-freeze-list,guest-fsfreeze-thaw", 1},
	{"fstrim", cmd_fstrim, NULL, NULL, NULL,
	 "[MINIMUM]\n"
	 "Discards unused blocks in the guest (the reply is waited for 600 s\n"
	 "unless -t is given).\n",
	 "guest-fstrim", 1},
	{"passwd", cmd_passwd, NULL, "c", passwd_longs,
	 "[-c|--crypted] USER\n"
	 "Sets USER's password, read from stdin (prompted for on a terminal).\n",
	 "guest-set-user-password", 0},
	{"ssh-keys", cmd_ssh_keys, NULL, NULL, NULL,
	 "list USER | add [--reset] USER [FILE|-] | remove USER [FILE|-]\n"
	 "Lists, adds or removes USER's authorized ssh keys (one a line);\n"
	 "--reset replaces them all.\n",
	 "guest-ssh-get-authorized-keys,guest-ssh-add-authorized-keys,"
	 "guest-ssh-remove-authorized-keys", 1},
	{"serve", cmd_serve, NULL, "l:q", serve_longs,
	 "--listen ADDR... [--http ADDR]... [--allow CMD,...] [--deny CMD,...] "
	 "[--max-clients N] [--max-request BYTES] [--mode MODE] [--token-file FILE] "
	 "[--log FILE] [-q]\n"
	 "Shares the agent (-s) among clients, their requests pipelined to it:\n"
	 "--listen unix:PATH or tcp:[HOST:]PORT for QGA, --http ADDR for POST /,\n"
	 "POST /exec, GET and PUT /file?path=P, GET /health and GET /metrics;\n"
	 "a POST is application/json (curl --json), a web page's request a 403.\n"
	 "--allow and --deny take names, a built-in's for its own; --log: a JSON\n"
	 "line per request (- for stderr).\n",
	 NULL, 0},
	{"wait", cmd_wait, NULL, "T:", wait_longs,
	 "[-T SECS]\n"
	 "Waits until the agent answers a ping (default 60 s): exits 0, or 4.\n",
	 "guest-ping", 0},
	{"ls", cmd_ls, NULL, "d:", ls_longs,
	 "[-d DIR]...\n"
	 "Finds this host's agent sockets (Proxmox's and libvirt's folders, DIR,\n"
	 "-s, QGA_SOCKET, /tmp/qga.sock) and asks each which agent answers.\n",
	 "guest-info,guest-get-osinfo", 1},
	{"completion", cmd_completion, NULL, NULL, NULL,
	 "bash | zsh\n"
	 "Prints a completion script for bash or zsh.\n",
	 NULL, 0},
	{"help", cmd_help, NULL, NULL, NULL,
	 "[COMMAND]\n"
	 "Says how to use qga, or one command.\n",
	 NULL, 0},
};
#define NCMDS (sizeof cmds / sizeof *cmds)

/* The guest agent's commands as QEMU's schema names them (up to 10.0),
 * each after "guest-", for completion and for suggestions. */
static const char *const schema_names[] = {
	"exec", "exec-status", "file-close", "file-flush",
	"file-open", "file-read", "file-seek", "file-write",
	"fsfreeze-freeze", "fsfreeze-freeze-list",
	"fsfreeze-status", "fsfreeze-thaw", "fstrim",
	"get-cpustats", "get-devices", "get-disks",
	"get-diskstats", "get-fsinfo", "get-host-name",
	"get-load", "get-memory-block-info", "get-memory-blocks",
	"get-osinfo", "get-time", "get-timezone",
	"get-users", "get-vcpus", "info",
	"network-get-interfaces", "network-get-route", "ping",
	"set-memory-blocks", "set-time", "set-user-password",
	"set-vcpus", "shutdown", "ssh-add-authorized-keys",
	"ssh-get-authorized-keys", "ssh-remove-authorized-keys",
	"suspend-disk", "suspend-hybrid", "suspend-ram",
	"sync", "sync-delimited",
};
#define NSCHEMA (sizeof schema_names / sizeof *schema_names)

static const struct cmd *
find_cmd(const char *name)
{
	size_t i;

	for (i = 0; i < NCMDS; i++)
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	return NULL;
}

/* The optimal string alignment distance of a and b (an edit is a letter
 * added, dropped, changed, or two swapped), or 9 when it is surely
 * more than 2. One edit is a typo; two only in a long name. */
static int
distance(const char *a, const char *b)
{
	int d[3][64], n = (int)strlen(a), m = (int)strlen(b), i, j, v;

	if (n > 62 || m > 62 || n - m > 2 || m - n > 2)
		return 9;
	for (j = 0; j <= m; j++)
		d[0][j] = j;
	for (i = 1; i <= n; i++) {
		int *row = d[i % 3], *up = d[(i - 1) % 3], *up2 = d[(i + 1) % 3];
		row[0] = i;
		for (j = 1; j <= m; j++) {
			v = up[j - 1] + (a[i - 1] != b[j - 1]);
			if (up[j] + 1 < v)
				v = up[j] + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    up2[j - 2] + 1 < v)
				v = up2[j - 2] + 1;
			row[j] = v;
		}
	}
	return d[n % 3][m];
}

/* Keeps cand[0..len) in best when it is closer to name than best. */
static void
closest(const char *name, const char *cand, size_t len, char *best, int *bd)
{
	char c[64];
	int d;

	if (len >= sizeof c)
		return;
	memcpy(c, cand, len);
	c[len] = 0;
	d = distance(name, c);
	if (d < *bd && (d == 1 || (d == 2 && strlen(name) >= 12))) {
		strcpy(best, c);
		*bd = d;
	}
}

static void
suggest_builtin(const char *name)
{
	char best[64] = "";
	int bd = 9;
	size_t i;

	for (i = 0; i < NCMDS; i++)
		closest(name, cmds[i].name, strlen(cmds[i].name), best, &bd);
	if (*best)
		fprintf(stderr, "qga: did you mean '%s'?\n", best);
}

/* Whether r is the error of a command that does not exist. */
static int
not_found(const struct reply *r)
{
	char desc[400];

	return r->err >= 0 && strstr(member_str(r->js, &r->tok[r->err], "desc",
	                                        desc, sizeof desc), "has not been found");
}

/* Says which command name is closest to the one nobody knows: a built-in,
 * one of the schema's, or one the peer lists (guest-info, or QMP's
 * query-commands, asked once). A bare name is also compared as guest-NAME. */
static void
suggest(struct conn *c, const char *name)
{
	const char *list = ",", *p, *e;
	char gname[160], best[64] = "", cand[64];
	int bd = 9, j;
	size_t w;

	peer_commands(c, &list);
	snprintf(gname, sizeof gname, "guest-%.*s", (int)sizeof gname - 7, name);
	for (j = 0; j < 2; j++) {
		const char *nm = j ? gname : name;
		if (j && !strncmp(name, "guest-", 6))
			break;
		for (w = 0; w < NCMDS; w++)
			closest(nm, cmds[w].name, strlen(cmds[w].name), best, &bd);
		for (w = 0; w < NSCHEMA; w++) {
			snprintf(cand, sizeof cand, "guest-%s", schema_names[w]);
			closest(nm, cand, strlen(cand), best, &bd);
		}
		for (p = list + 1; (e = strchr(p, ',')); p = e + 1)
			closest(nm, p + (*p == '!'), (size_t)(e - p - (*p == '!')), best, &bd);
	}
	if (*best)
		fprintf(stderr, "qga: did you mean '%s'?\n", best);
}

/* Sends a raw request and prints its reply. A bare name the guest agent
 * does not know is tried again as guest-NAME, the way Proxmox's `qm guest
 * cmd` writes names; a name nobody knows gets a suggestion. */
static int
raw_request(struct conn *c, const struct buf *req, const char *name, int named,
            int batch)
{
	struct buf first = {0}, again = {0};
	char gname[160];
	struct reply r;
	int s;

	if ((s = transact(c, req->p, req->len, &r, name, opt.timeout)))
		quit(s);
	if (not_found(&r) && named && !c->qmp && strncmp(name, "guest-", 6)) {
		buf_add(&first, r.js, r.len);
		/* The request starts {"execute":"NAME: guest- goes in front. */
		buf_str(&again, "{\"execute\":\"guest-");
		buf_add(&again, req->p + 12, req->len - 12);
		snprintf(gname, sizeof gname, "guest-%.*s", (int)sizeof gname - 7, name);
		if ((s = transact(c, again.p, again.len, &r, gname, opt.timeout)))
			quit(s);
		if (!not_found(&r))
			name = gname;
		else if ((s = reply_text(&r, first.p, first.len, c->name)))
			quit(s);
	}
	s = print_reply(&r, name, batch);
	if (not_found(&r))
		suggest(c, name);
	free(first.p);
	free(again.p);
	return s;
}

static int
cmd_help(int argc, char **argv)
{
	const struct cmd *c;

	if (argc == 1)
		usage(0);
	if (argc != 2)
		return -1;
	if (!(c = find_cmd(argv[1]))) {
		fprintf(stderr, "qga: help: unknown command '%s'\n", argv[1]);
		suggest_builtin(argv[1]);
		leave(EX_USAGE);
	}
	cmd_help_text(c);
	return 0;
}

static int
long_named(const struct option *lo, const char *name)
{
	for (; lo->name; lo++)
		if (!strcmp(lo->name, name))
			return 1;
	return 0;
}

/* Prints a command's options, long and short, separated by spaces; its
 * own long option wins over a global one of the same name. */
static void
print_opts(const struct cmd *c)
{
	const struct option *lo;
	const char *p;

	for (lo = c ? c->longs : NULL; lo && lo->name; lo++)
		printf(" --%s", lo->name);
	for (lo = global_longs; lo->name; lo++)
		if (!c || !c->longs || !long_named(c->longs, lo->name))
			printf(" --%s", lo->name);
	for (p = GLOBAL_SHORTS; *p; p++)
		if (*p != ':')
			printf(" -%c", *p);
	for (p = c && c->shorts ? c->shorts : ""; *p; p++)
		if (*p != ':')
			printf(" -%c", *p);
}

/* The start of both scripts: bash's words and index, or zsh's. */
static const char comp_head[] =
"_qga() {\n"
"\tlocal i cmd= opts%1$s\n"
"\tfor ((i = %2$s; i < %3$s; i++)); do\n"
"\t\tcase ${%4$s[i]} in\n"
"\t\t-s|--socket|-t|--timeout|--max-reply) ((i++)) ;;\n"
"\t\t--) break ;;\n"
"\t\t-*) ;;\n"
"\t\t*) cmd=${%4$s[i]}; break ;;\n"
"\t\tesac\n"
"\tdone\n"
"\tcase ${%4$s[%3$s-1]} in\n"
"\t-s|--socket) %5$s; return ;;\n"
"\t-t|--timeout|--max-reply) return ;;\n"
"\tesac\n"
"\tcase $cmd in\n";

/* Prints a completion script. The commands, their options and the
 * guest agent's command names come from the tables above. */
static int
cmd_completion(int argc, char **argv)
{
	int bash;
	size_t i;

	if (argc != 2 || (strcmp(argv[1], "bash") && strcmp(argv[1], "zsh")))
		return -1;
	bash = argv[1][0] == 'b';
	printf("%s", bash ? "# bash completion for qga: qga completion bash\n" :
	       "#compdef qga\n# zsh completion for qga: qga completion zsh\n");
	if (bash)
		printf(comp_head, " cur=${COMP_WORDS[COMP_CWORD]}", "1", "COMP_CWORD",
		       "COMP_WORDS", "COMPREPLY=($(compgen -W 'unix: tcp: vsock: hvsock: pve: serial:' -- "
		       "\"$cur\") $(compgen -f -- \"$cur\")); compopt -o nospace 2>/dev/null");
	else
		printf(comp_head, "", "2", "CURRENT", "words",
		       "compadd -S '' unix: tcp: vsock: hvsock: pve: serial:; _files");
	for (i = 0; i < NCMDS; i++) {
		printf("\t%s) opts='", cmds[i].name);
		print_opts(&cmds[i]);
		printf("' ;;\n");
	}
	printf("\t*) opts='");
	print_opts(NULL);
	printf("' ;;\n\tesac\n");
	if (bash)
		printf("\tif [[ $cur == -* ]]; then\n"
		       "\t\tCOMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
		       "\telif [[ -z $cmd ]]; then\n\t\tCOMPREPLY=($(compgen -W '");
	else
		printf("\tif [[ ${words[CURRENT]} == -* ]]; then\n"
		       "\t\tcompadd -- ${=opts}\n"
		       "\telif [[ -z $cmd ]]; then\n\t\tcompadd --");
	for (i = 0; i < NCMDS; i++)
		printf(" %s", cmds[i].name);
	for (i = 0; i < NSCHEMA; i++)
		printf(" guest-%s", schema_names[i]);
	if (bash)
		printf("' -- \"$cur\"))\n\tfi\n}\ncomplete -o default -F _qga qga\n");
	else
		printf("\n\telse\n\t\t_files\n\tfi\n}\n"
		       "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n"
		       "\t_qga \"$@\"\nelse\n\tcompdef _qga qga\nfi\n");
	return 0;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static const char usage_text[] =
"usage: qga [OPTIONS] COMMAND [ARG]...   (a built-in command, below)\n"
"       qga [OPTIONS] NAME [KEY=VALUE]...  (any agent or QMP command)\n"
"       qga [OPTIONS] '{\"execute\": ...}'\n"
"       qga [OPTIONS] [-]            (a batch: one request per line of stdin)\n"
"\n"
"A reply is printed as it came. A VALUE is sent as JSON if it parses, else\n"
"as a string; a NAME the agent lacks is tried as guest-NAME.\n"
"\n"
"options: (before or after the command's name)\n"
"  -s, --socket ADDR     unix:PATH, tcp:HOST:PORT, vsock:CID:PORT, serial:PATH,\n"
"                        hvsock:PATH:PORT (Firecracker, Cloud Hypervisor),\n"
"                        pve:VMID (Proxmox) or a path (default: $QGA_SOCKET,\n"
"                        else /tmp/qga.sock); several: the command runs on each\n"
"      --targets FILE    more addresses, one a line;  -P, --parallel N  at once\n"
"      --no-tag          no target before each line;  -q, --quiet  no summary\n"
"  -t, --timeout SECS    bound on connecting and on each reply (default 10;\n"
"                        fsfreeze freeze 3600, thaw 180, fstrim 600)\n"
"  -r, --return          print only the reply's return value\n"
"  -p, --pretty          indent what is printed\n"
"  -j, --json            built-in commands print the agent's reply\n"
"      --qmp             the peer is a QMP monitor (else told by its greeting)\n"
"      --no-sync         skip the 0xFF + guest-sync-delimited resync\n"
"      --max-reply BYTES largest reply accepted, K/M/G allowed (default 80M)\n"
"      --max-size BYTES  the most a get or cat takes (default: no bound)\n"
"  -h, --help            this text\n"
"  -V, --version         the version\n"
"\n"
"exit status: 0 success; 1 the agent answered with an error; 2 usage;\n"
"3 connection or I/O failure; 4 timeout; 5 protocol error. exec and sh:\n"
"the program's status, 255 when qga fails. Several targets: the highest.\n"
"\n"
"commands (qga help COMMAND says more):\n";

static _Noreturn void
usage(int status)
{
	FILE *f = status ? stderr : stdout;
	size_t i;

	fputs(usage_text, f);
	for (i = 0; i < NCMDS; i++)
		fprintf(f, "  %-12s %.*s\n", cmds[i].name,
		        (int)strcspn(cmds[i].text + (*cmds[i].text == '\n'), "\n"),
		        cmds[i].text + (*cmds[i].text == '\n'));
	leave(status);
}

/* Runs the built-in command cur, whose name is argv[0]. */
static _Noreturn void
run_builtin(int argc, char **argv)
{
	struct reply r;
	struct doc d;
	int s = 0;

	if (!cur->shorts)
		plain_operands(&argc, &argv);
	if (!cur->fn) {
		if (argc != 1) {
			cmd_usage(cur, stderr);
			leave(EX_USAGE);
		}
		if (cur->json == 2 && !opt.json)
			opt.ret = opt.pretty = opt.json = 1;
		simple_call(cur->uses, &r, cur->show ? &d : NULL);
		if (cur->show) {
			cur->show(&d);
			free(d.t);
		}
	} else if ((s = cur->fn(argc, argv)) < 0) {
		cmd_usage(cur, stderr);
		leave(EX_USAGE);
	}
	leave(s);
}

/* Takes the global options among a raw command's words, wherever they
 * stand before "--"; leaves argv as the name and its operands. */
static void
raw_options(int *argc, char ***argv)
{
	int ch;

	opterr = 0;
	optind = 0;
	while ((ch = getopt_long(*argc, *argv, ":" GLOBAL_SHORTS, global_longs,
	                         NULL)) != -1) {
		if (ch == '?' || ch == ':')
			badopt(*argc, *argv, GLOBAL_SHORTS, global_longs, ch);
		if (ch == 'h')
			usage(0);
		global_opt(ch, optarg);
	}
	options_done();
	(*argv)[optind - 1] = (*argv)[0];
	*argc -= optind - 1;
	*argv += optind - 1;
}

int
main(int argc, char **argv)
{

	struct buf req = {0};
	char name[128];
	int ch, s, batch, named = 0;

	/* Replies are written in large blocks: a batch's thousands of lines
	 * would otherwise cost a write each kilobyte. Everything that must be
	 * seen early (a batch's replies before it reads more, exec's output,
	 * a message) flushes first. */
	static char out[1 << 16];

	setvbuf(stdout, out, _IOFBF, sizeof out);
	catch_signals();
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:" GLOBAL_SHORTS, global_longs,
	                         NULL)) != -1) {
		if (ch == '?' || ch == ':')
			badopt(argc, argv, GLOBAL_SHORTS, global_longs, ch);
		if (ch == 'h')
			usage(0);
		global_opt(ch, optarg);
	}
	argc -= optind;
	argv += optind;
	if (argc > 0 && (cur = find_cmd(argv[0])))
		run_builtin(argc, argv);
	if (argc > 0)
		raw_options(&argc, &argv);
	else
		options_done();

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
		else {
			copy(name, sizeof name, argv[0]);
			named = 1;
		}
	}

	many.reads_stdin = batch;
	need_session();
	s = batch ? run_batch(&sess) : raw_request(&sess, &req, name, named, 0);
	free(req.p);
	leave(s);
}
