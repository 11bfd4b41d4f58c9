/* SPDX-License-Identifier: MIT */
/* Errors and exits (fail, warn, die, quit, leave), signals, child
 * processes, escaping what the guest says, numbers, times, growing buffers. */
#include "qga.h"

struct failure failure;
int exec_mode;                     /* our failures exit 255, as ssh's */
volatile sig_atomic_t interrupted; /* by this signal */
volatile sig_atomic_t signals;     /* how many came, never reset */
int progress_shown; /* a progress line is on the terminal, unended */

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
void
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
void
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
int
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
pid_t
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
int
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
size_t
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
 * before it may be one of its arguments. A format ending in ':' gets the
 * system error appended, as in sbase's eprintf: where it starts in out is
 * returned (else 0). Control characters are escaped: a message may quote
 * the guest (serve's notes are made here too). */
PRINTF(3, 0) size_t
vformat(char *out, size_t size, const char *fmt, va_list ap)
{
	int saved = errno;
	char buf[MSG_MAX];
	size_t n, at = 0;

	vsnprintf(buf, sizeof buf, fmt, ap);
	escape(out, size, buf, strlen(buf));
	n = strlen(out);
	if (*fmt && fmt[strlen(fmt) - 1] == ':' && n + 2 < size) {
		snprintf(out + n, size - n, " %s", strerror(saved));
		at = n + 1;
	}
	errno = saved;
	return at;
}

/* Records a failure at where (an address, a command; NULL: none), whose
 * message then begins "WHERE: ", and returns its status. The message is
 * made apart first: the last failure's may be one of its arguments. */
PRINTF(3, 0) static int
vfail(int status, const char *where, const char *fmt, va_list ap)
{
	char msg[MSG_MAX];
	size_t n = 0, at;

	if (where) {
		escape(msg, sizeof msg - 2, where, strlen(where));
		n = strlen(msg);
		memcpy(msg + n, ": ", 3);
		n += 2;
	}
	at = vformat(msg + n, sizeof msg - n, fmt, ap);
	memcpy(failure.msg, msg, sizeof msg);
	failure.status = status;
	failure.cause = failure.msg + n + at;
	return status;
}

/* Records a failure and returns its exit status. */
PRINTF(2, 3) int
fail(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(status, NULL, fmt, ap);
	va_end(ap);
	return status;
}

/* The same, of what failed at where: its cause is the message after
 * "WHERE: ", unless the system's words end it. */
PRINTF(3, 4) int
fail_at(int status, const char *where, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(status, where, fmt, ap);
	va_end(ap);
	return status;
}

/* Prints a message without recording it. */
PRINTF(1, 2) void
warn(const char *fmt, ...)
{
	char msg[MSG_MAX];
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
void
say(void)
{
	warn("%s", failure.msg);
}

/* Every exit goes through here: what a command left half done undone,
 * the session closed without harm to the agent, then standard output,
 * whose failure to be written is a failure of the command. */
_Noreturn void
leave(int status)
{
	if (undo.armed) {
		undo.armed = 0;
		undo_run();
	}
	session_end();
	if ((fflush(stdout) == EOF || ferror(stdout)) && !status) {
		clearerr(stdout);
		die(EX_IO, "write stdout:");
	}
	exit(status);
}

_Noreturn void
quit(int status)
{
	say();
	leave(interrupted ? 128 + interrupted :
	      exec_mode && status != EX_USAGE ? 255 : status);
}

_Noreturn void
die(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(status, NULL, fmt, ap);
	va_end(ap);
	quit(status);
}

/* The first bytes of s[0..n) for a message, printable and on one line. */
const char *
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
void
copy(char *out, size_t size, const char *s)
{
	size_t n = strnlen(s, size - 1);

	memcpy(out, s, n);
	out[n] = 0;
}

void *
xrealloc(void *p, size_t n)
{
	if (!(p = realloc(p, n ? n : 1)))
		die(EX_IO, "out of memory (%zu bytes)", n);
	return p;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		die(EX_IO, "out of memory (%zu bytes)", strlen(s) + 1);
	return p;
}

/* Writes all of p[0..n) to fd. */
int
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

/* Options and numbers */

struct options opt = {
	NULL, 10000, 80 << 20, 0, 0, 0, 0, 0, 0, 0, 0
};

/* Parses the whole number at s in base, at most max, leaving *end after
 * its digits. Returns -1 when s does not start with a digit, or for a
 * number over max. */
long long
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
int
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
int
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

/* The same, for a limit on memory: past what this machine can address
 * (4 GiB on a 32-bit one), it is as much as it can. */
int
parse_size(const char *s, size_t *v)
{
	unsigned long long n;

	if (parse_bytes(s, &n) < 0)
		return -1;
	*v = n > SIZE_MAX ? SIZE_MAX : (size_t)n;
	return 0;
}

long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds as seconds for messages: "10 s", "0.250 s". */
const char *
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
long long
deadline_in(long long timeout)
{
	return timeout > 0 ? now_ms() + timeout : -1;
}

/* Milliseconds left for poll(), at least 0; -1 for no deadline. */
int
ms_left(long long deadline)
{
	long long left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	return left < 0 ? 0 : left > 1 << 30 ? 1 << 30 : (int)left;
}

/* Growing buffers */

void
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

void
buf_add(struct buf *b, const void *s, size_t n)
{
	if (!n)
		return;
	buf_need(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* Reads fd to its end, refusing more than max bytes. */
int
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

void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* Appends s as a JSON string, quotes included. */
void
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
