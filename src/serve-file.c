/* SPDX-License-Identifier: MIT */
/* serve's GET and PUT /file: get or put run in a child whose agent is
 * serve itself. */
#include "qga.h"

struct xfer *
xfer_of(int i)
{
	struct xfer *x = sv.cl[i].xf ? &sv.xf[sv.cl[i].xf - 1] : NULL;

	return x && x->pid && x->gen == sv.cl[i].gen ? x : NULL;
}

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
	if (sv.link.fd >= 0)
		close(sv.link.fd);
	if (sv.log && sv.log != stderr)
		close(fileno(sv.log));
	dup2(data, put ? 0 : 1);
	dup2(err, 2);
	close(data);
	close(err);
	catch_signals();
	hold_signals(0);
	session_adopt(sock);
	cur = find_cmd(argv[0]);
	run_builtin(argc, argv);
}

/* Starts the child that runs get or put (argv) for a /file request: its
 * session is one end of a socket pair, whose other end, *sp, is serve's;
 * its data comes or goes through *data, its messages through *err, all
 * three here non-blocking. Returns its pid, or -1 with errno. */
static pid_t
file_spawn(int put, int argc, char **argv, int *sp, int *data, int *err)
{
	int s[2] = {-1, -1}, d[2] = {-1, -1}, e[2] = {-1, -1}, k, saved;
	pid_t pid;

	fflush(NULL);
	/* A signal to the child before it has its handlers waits for them. */
	hold_signals(1);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) < 0 ||
	    pipe2(d, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		saved = errno;
		for (k = 0; k < 2; k++) {
			close(s[k]);
			close(d[k]);
			close(e[k]);
		}
		hold_signals(0);
		errno = saved;
		return -1;
	}
	if (!pid) {
		close(s[0]);
		close(d[put]);
		close(e[0]);
		file_child(s[1], d[!put], e[1], put, argc, argv);
	}
	/* The child reads d[0] (put) or writes d[1] (get); serve the other. */
	hold_signals(0);
	close(s[1]);
	close(d[!put]);
	close(e[1]);
	*sp = s[0];
	*data = d[put];
	*err = e[0];
	fcntl(*data, F_SETFL, O_NONBLOCK);
	fcntl(*err, F_SETFL, O_NONBLOCK);
	fcntl(*sp, F_SETFL, O_NONBLOCK);
	return pid;
}

/* Records client i's transfer, run by the child pid. */
static struct xfer *
xfer_add(int i, const struct http_req *r, pid_t pid, int data, int err)
{
	struct xfer *x;
	int k;

	for (k = 0; sv.xf[k].pid; k++)
		;
	x = &sv.xf[k];
	sv.nxf = k < sv.nxf ? sv.nxf : k + 1;
	memset(x, 0, sizeof *x);
	x->pid = pid;
	x->cl = i;
	x->gen = sv.cl[i].gen;
	x->put = *r->method == 'P';
	x->keep = r->keep && r->v11;
	x->v11 = r->v11;
	x->data = data;
	x->err = err;
	x->status = -1;
	x->chunked = r->chunked;
	x->left = r->body;
	sv.cl[i].xf = k + 1;
	sv.cl[i].since = x->put ? now_ms() : 0;
	return x;
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
void
take_file(int i, const struct http_req *r)
{
	static char get[] = "get", put_[] = "put", m_[] = "-m", dd[] = "--", dash[] = "-";
	char path[4096], mode[16], *argv[8];
	int put = *r->method == 'P', sp, data, err, argc = 0;
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
	if ((pid = file_spawn(put, argc, argv, &sp, &data, &err)) < 0) {
		note("%s: %s /file: %s", sv.cl[i].name, put ? "PUT" : "GET", strerror(errno));
		http_local(i, 503, 0);
		return;
	}
	x = xfer_add(i, r, pid, data, err);
	snprintf(path, sizeof path, "%s's file: QGA client", sv.cl[i].name);
	client_add(sp, 0, path);
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
void
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
void
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

void
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
int
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
int
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
