/* SPDX-License-Identifier: MIT */
/* Several targets: a child per target, its lines relayed and tagged,
 * -j's lines, and the summary. */
#include "qga.h"

struct many many = {NULL, 0, 0, 0, 0, 0, 0, NULL, NULL, 0};

/* The most of stdin the parent holds for its children, and of a line. */
#define MANY_STDIN_MAX (256 << 20)
#define MANY_LINE_MAX 65536

void
add_target(const char *a)
{
	many.addr = xrealloc(many.addr, (size_t)(many.n + 1) * sizeof *many.addr);
	many.addr[many.n++] = a;
}

/* --targets FILE: an address a line, its first word; # starts a comment. */
void
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

/* The address this process talks to: its own target's in a child of
 * several, else the one given. */
const char *
target_addr(void)
{
	return many.tag ? many.tag : opt.addr;
}

/* For what works on one agent alone. */
void
one_target(const char *what)
{
	if (many.n > 1)
		die(EX_USAGE, "%s works on one agent: give one -s", what);
}

/* Starts t's child, which returns 1 here; the parent gets 0, or -1 when
 * no child could be started now. */
static int
start_target(struct target *t, struct target *all, int n, int reads_stdin)
{
	int p[6] = {-1, -1, -1, -1, -1, -1}, i, k;

	fflush(stdout);
	if (pipe2(p, O_CLOEXEC) || pipe2(p + 2, O_CLOEXEC) ||
	    (reads_stdin && pipe2(p + 4, O_CLOEXEC)) ||
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
		many.tag = t->name;
		many.index = (int)(t - all);
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

/* The summary of the targets that ended: the highest status, and the
 * first ten that failed. */
static struct {
	int worst, nbad;
	char bad[512];
} tally;

/* t has ended with status s: with -j its replies are printed, each with
 * its target and that status, or else one object that says why there
 * were none; a failure is counted. */
static void
target_end(struct target *t, int s)
{
	struct buf o = {0};
	char *p = t->js.p, *nl;

	if (s) {
		tally.worst = s > tally.worst ? s : tally.worst;
		if (tally.nbad++ < 10)
			snprintf(tally.bad + strlen(tally.bad), sizeof tally.bad - strlen(tally.bad),
			         "%s%s (%d)", tally.nbad > 1 ? ", " : "", t->name, s);
	}
	if (many.held) {
		many.held[many.index] = t->js;
		return;
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
}

/* After the last target: the line that names those that failed, and the
 * status to leave with, 128+N after signal N. */
static int
tally_end(int sig)
{
	if (tally.nbad && !many.quiet)
		warn("%d of %d failed: %s%s", tally.nbad, many.n, tally.bad,
		     tally.nbad > 10 ? ", ..." : "");
	return sig ? 128 + sig : tally.worst;
}

/* The descriptors to poll for the first next targets, into pfd, and for
 * each its target and which it is (3 * target + stdout, stderr, stdin)
 * into who; stdin is fed first where it can be. Returns how many. */
static int
targets_poll(struct target *t, int next, const struct buf *in, struct pollfd *pfd, int *who)
{
	int i, k, n = 0;

	for (i = 0; i < next; i++)
		for (k = 0; k < 3; k++) {
			if (k == 2 && t[i].fd[2] >= 0 && t[i].fed >= in->len)
				feed(&t[i], in);
			if (t[i].pid > 0 && t[i].fd[k] >= 0) {
				pfd[n] = (struct pollfd){t[i].fd[k], k < 2 ? POLLIN : POLLOUT, 0};
				who[n++] = 3 * i + k;
			}
		}
	return n;
}

/* Serves descriptor k of target t (0 stdout, 1 stderr, 2 stdin): 0 once
 * its output has ended, else -1. */
static int
target_io(struct target *t, int k, const struct buf *in)
{
	if (k == 2)
		feed(t, in);
	else
		relay(t, k);
	if (t->fd[0] >= 0 || t->fd[1] >= 0)
		return -1;
	if (t->fd[2] >= 0)
		close(t->fd[2]);
	return 0;
}

/* Runs the rest of the command in a child per target, at most -P at once,
 * each with a copy of stdin when the command reads it. Returns -1 in each
 * child; in the parent, the highest status among theirs, as pdsh does,
 * after a line that names the targets that failed. */
int
run_targets(int reads_stdin)
{
	struct target *t;
	struct pollfd *pfd;
	struct buf in = {0};
	int *who, i, j, k, n, next = 0, running = 0, sig = 0, broken = 0;
	int armed, max;

	if (reads_stdin && (k = read_all(0, &in, MANY_STDIN_MAX)) < 0) {
		if (k == -2)
			die(EX_USAGE, "stdin is over %d MiB: for several targets, "
			    "give a file", MANY_STDIN_MAX >> 20);
		die(EX_IO, "read stdin:");
	}
	t = xrealloc(NULL, (size_t)many.n * sizeof *t);
	memset(t, 0, (size_t)many.n * sizeof *t);
	/* -P, 64 unless given. */
	max = many.max ? many.max : 64;
	k = 3 * (max < many.n ? max : many.n);
	pfd = xrealloc(NULL, (size_t)k * sizeof *pfd);
	who = xrealloc(NULL, (size_t)k * sizeof *who);
	for (i = 0; i < many.n; i++)
		t[i].name = many.addr[i];
	/* What a command left to undo in a guest is its children's to undo. */
	armed = undo.armed;
	undo.armed = 0;
	for (;;) {
		while (!sig && next < many.n && running < max) {
			if ((k = start_target(&t[next], t, next, reads_stdin)) > 0) {
				undo.armed = armed;
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
		n = targets_poll(t, next, &in, pfd, who);
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
			if (t[i].pid <= 0 || !pfd[j].revents || (k = target_io(&t[i], who[j] % 3, &in)) < 0)
				continue;
			running--;
			many.index = i;
			k = reap(t[i].pid);
			t[i].pid = 0;
			target_end(&t[i], k);
		}
		broken |= fflush(stdout) == EOF;
	}
	free(t);
	free(pfd);
	free(who);
	free(in.p);
	if (broken)
		die(EX_IO, "write stdout:");
	return tally_end(sig);
}

/* The step a command takes before it first calls the agent: with several
 * targets, the rest of it runs in a child per target, and the parent
 * leaves with their status. What the command did before (its options,
 * its local files) was done once, in the parent; a second call does
 * nothing. */
void
fan_out(int reads_stdin)
{
	int s;

	if (many.fanned)
		return;
	many.fanned = 1;
	if (many.n > 1 && !many.tag && (s = run_targets(reads_stdin)) >= 0)
		leave(s);
}

/* Several targets in this process: for a command whose work is a fixed
 * set of requests (a raw request, ping, an information table), the
 * engine asks every target at once, and each target's output is made by
 * the same code that would make it in a child, captured, then relayed as
 * a child's would be. */
static struct {
	const struct buf *req;  /* a raw request, */
	const char *name;       /* its name, */
	int named;              /* and whether a bare name made it; */
	const struct cmd *row;  /* or a built-in's row */
	char gname[160];        /* the raw request's name as guest-NAME */
	struct target *t;
	int out[2], cap[2];     /* stdout and stderr, kept; their captures */
	int broken;             /* stdout failed (its errno): every job stops */
} fx;

/* Whether the reply js[0..len) in b says that the command does not exist. */
static int
not_found_in(const struct buf *b)
{
	struct reply r;

	return !reply_text(&r, b->p, b->len, "agent") && not_found(&r);
}

/* Says the failure recorded, as quit() would in the target's child, and
 * returns its status. */
static int
said(int s)
{
	say();
	return s;
}

/* The request for the target's next step: the request itself; for a raw
 * one a name the agent does not know, again as guest-NAME, and then the
 * agent's commands, for a suggestion. */
static const char *
fixed_next(struct engine *e, struct job *j, struct buf *b)
{
	struct target *t = &fx.t[j->index];

	(void)e;
	t->step++;
	if (t->step == 1 && fx.row) {
		req_begin(b, fx.row->uses);
		req_end(b, -1);
		return fx.row->uses;
	}
	if (t->step == 1) {
		buf_add(b, fx.req->p, fx.req->len);
		return fx.name;
	}
	if (fx.row || !not_found_in(&t->reply))
		return NULL;
	if (t->step == 2 && fx.named && !j->link.qmp && strncmp(fx.name, "guest-", 6)) {
		rename_request(b, fx.req, fx.gname);
		return fx.gname;
	}
	if (t->step == 2)
		t->step++;
	if (t->step == 3) {
		req_begin(b, j->link.qmp ? "query-commands" : "guest-info");
		req_end(b, -1);
		return j->link.qmp ? "query-commands" : "guest-info";
	}
	return NULL;
}

/* A reply: the one to show (a second, guest-NAME's, replaces the first
 * unless the agent knows that name neither), or the agent's commands. */
static void
fixed_answer(struct engine *e, struct job *j, const char *name, const char *js,
             size_t len, const struct reply *r)
{
	struct target *t = &fx.t[j->index];
	struct buf names = {0};

	(void)e;
	(void)name;
	if (t->step == 3) {
		command_list(r, j->link.qmp, &names);
		t->list = names.p;
		return;
	}
	if (t->step == 2 && not_found(r))
		return;
	if (t->step == 2) {
		t->first = t->reply;
		t->reply = (struct buf){0};
	}
	t->reply.len = 0;
	buf_add(&t->reply, js, len);
}

/* What the target's child would print of its replies, and its status. */
static int
fixed_show(struct target *t, int qmp)
{
	struct reply r;
	struct doc d;
	int s;

	if ((s = reply_text(&r, t->reply.p, t->reply.len, t->name)))
		return said(s);
	if (!fx.row) {
		s = print_reply(&r, t->first.p ? fx.gname : fx.name, 0);
		if (not_found(&r))
			suggest_from(t->list ? t->list : ",", fx.name);
		return s;
	}
	if (qmp && !strncmp(fx.row->uses, "guest-", 6))
		return said(fail(EX_USAGE, "%s is a QMP monitor, not a guest agent: %s is "
		                       "the guest agent's", t->name, fx.row->uses));
	if (r.err >= 0)
		return said(agent_error(&r, fx.row->uses));
	if (opt.json) {
		print_result(&r);
		return 0;
	}
	if (fx.row->json == 2)
		print_value(&r);
	if (fx.row->show && (s = doc_return(&d, &r, fx.row->uses, shape_of(fx.row->uses))))
		return said(s);
	if (fx.row->show) {
		fx.row->show(&d);
		free(d.t);
	}
	return 0;
}

/* The lines of what fd k (0 stdout, 1 stderr) captured, relayed. */
static void
relay_capture(struct target *t, int k)
{
	struct buf b = {0};
	char *p, *nl;

	if (lseek(fx.cap[k], 0, SEEK_SET) < 0 || read_all(fx.cap[k], &b, SIZE_MAX) < 0)
		fx.broken = errno;
	for (p = b.p; p && p < b.p + b.len; p = nl + 1) {
		if (!(nl = memchr(p, '\n', (size_t)(b.p + b.len - p))))
			nl = b.p + b.len;
		relay_line(t, k, p, (size_t)(nl - p));
	}
	free(b.p);
}

/* A target's job has ended: its output, as its child would have printed
 * it, captured from stdout and stderr, relayed; then its end. */
static void
fixed_end(struct engine *e, struct job *j)
{
	struct target *t = &fx.t[j->index];
	int k, s;

	if (fx.broken)
		return;
	for (k = 0; k < 2; k++)
		if (fflush(k ? stderr : stdout) == EOF || ftruncate(fx.cap[k], 0) < 0 ||
		    lseek(fx.cap[k], 0, SEEK_SET) < 0 || dup2(fx.cap[k], k + 1) < 0)
			fx.broken = errno;
	/* As in the target's child, whose tag says what to print. */
	many.tag = t->name;
	if ((s = j->status))
		warn("%s", j->why);
	else if (!fx.broken)
		s = fixed_show(t, j->link.qmp);
	many.tag = NULL;
	fflush(stdout);
	fflush(stderr);
	dup2(fx.out[0], 1);
	dup2(fx.out[1], 2);
	for (k = 0; k < 2; k++)
		relay_capture(t, k);
	many.index = j->index;
	target_end(t, s);
	free(t->reply.p);
	free(t->first.p);
	free(t->list);
	/* Stopped, the jobs release their links before qga leaves. */
	if (fflush(stdout) == EOF && !fx.broken)
		fx.broken = errno;
	if (fx.broken)
		engine_stop(e, EX_IO, "stopped");
}

/* The step a command whose work is a fixed set of requests takes before
 * its fan-out step: with several targets, each is asked in this process
 * and qga leaves with their status. A raw request is req (named by name,
 * a bare name when named); a built-in's is its row's one command. */
void
fan_in(const struct buf *req, const char *name, int named, const struct cmd *row)
{
	struct engine e = {0};
	FILE *f[2];
	int i;

	if (many.n < 2 || many.tag || many.fanned || opt.nosync)
		return;
	many.fanned = 1;
	fx.req = req;
	fx.name = name;
	fx.named = named;
	fx.row = row;
	snprintf(fx.gname, sizeof fx.gname, "guest-%.*s", (int)sizeof fx.gname - 7, name);
	fx.t = xrealloc(NULL, (size_t)many.n * sizeof *fx.t);
	memset(fx.t, 0, (size_t)many.n * sizeof *fx.t);
	for (i = 0; i < many.n; i++)
		fx.t[i].name = many.addr[i];
	for (i = 0; i < 2; i++)
		if ((fx.out[i] = dup(i + 1)) < 0 || !(f[i] = tmpfile()) ||
		    (fx.cap[i] = dup(fileno(f[i]))) < 0 || fclose(f[i]))
			die(EX_IO, "a file for the output of each target:");
	engine_init(&e, many.addr, many.n, opt.timeout,
	            engine_room(many.max ? many.max : 64, 16));
	e.qmp = opt.qmp;
	e.qmp_detect = 1;
	e.maxreply = opt.maxreply;
	e.next = fixed_next;
	e.answer = fixed_answer;
	e.on_end = fixed_end;
	engine_run(&e);
	if ((errno = fx.broken))
		die(EX_IO, "write stdout:");
	leave(tally_end(interrupted));
}
