/* SPDX-License-Identifier: MIT */
/* Many agents at once, in one process: a job per target, each a link
 * that reaches its agent and then sends the requests its owner gives,
 * one after the other, each reply handed back. Each job has its own
 * deadline, so a dead agent costs its own timeout and no other's. The
 * loop is engine_run(), or a turn of another loop's (engine_poll,
 * engine_io, engine_tick). */
#include "qga.h"

/* The link is a job's first member. */
static struct job *
job_of(struct link *l)
{
	return (struct job *)(void *)l;
}

/* The owner's hook took since t0 ms: time the loop spent on the owner
 * (writing to a pipe its reader is slow to empty) is no job's, and moves
 * every deadline on by as much. */
static void
owner_took(struct engine *e, long long t0)
{
	long long d = now_ms() - t0;
	int i;

	for (i = 0; d > 0 && i < e->started; i++)
		if (e->job[i].state == JOB_RUNNING) {
			e->job[i].deadline += d;
			e->job[i].link.try_deadline += d;
		}
}

/* The job is over: its link is released, before its owner is told, so
 * that the agent is free for its next client at once. why is said as a
 * client of that agent alone would say it: with the address first,
 * unless it names the address already. */
static void
job_end(struct job *j, int status, const char *why)
{
	struct engine *e = j->e;
	const char *addr = e->addr[j->index];
	long long t0;

	j->status = status;
	if (why && *why && !strstr(why, addr))
		snprintf(j->why, sizeof j->why, "%s: %s", addr, why);
	else
		copy(j->why, sizeof j->why, why ? why : "");
	j->ms = now_ms() - j->t0;
	j->state = JOB_DONE;
	link_free(&j->link);
	e->running--;
	t0 = now_ms();
	e->on_end(e, j);
	owner_took(e, t0);
}

/* What next() says when the next request waits for a reply. */
const char engine_wait[] = "";

/* Sends the job's next requests, as many as its owner has ready and the
 * window takes, or ends the job when there are none and none is owed. */
static void
job_next(struct job *j)
{
	struct engine *e = j->e;
	const char *name = engine_wait;

	while (j->nasked < e->window) {
		e->req.len = 0;
		if (!(name = e->next(e, j, &e->req)) || name == engine_wait)
			break;
		j->asked[(j->first + j->nasked++) % ENGINE_WINDOW] = name;
		link_send(&j->link, e->req.p, e->req.len);
	}
	if ((!name || name == engine_wait) && !j->nasked)
		job_end(j, 0, NULL);
	else
		link_flush(&j->link);
}

static void
job_up(struct link *l)
{
	job_of(l)->up = 1;
	job_next(job_of(l));
}

static int
job_synced(struct link *l)
{
	(void)l;
	return 0;
}

static void
job_lost(struct link *l, int up)
{
	struct job *j = job_of(l);

	(void)up;
	if (j->state == JOB_RUNNING)
		job_end(j, l->status, l->why);
}

/* A reply: QMP's events go by; anything else answers the oldest request
 * owed, since the agent answers in turn. A value nobody asked for is
 * dropped. */
static void
job_reply(struct link *l, const char *js, size_t len, struct reply *r)
{
	struct job *j = job_of(l);
	const char *name;
	long long t0;

	if ((r->ret < 0 && r->err < 0) || !j->nasked)
		return;
	name = j->asked[j->first];
	j->first = (j->first + 1) % ENGINE_WINDOW;
	j->nasked--;
	t0 = now_ms();
	j->e->answer(j->e, j, name, js, len, r);
	owner_took(j->e, t0);
	if (j->state == JOB_RUNNING)
		job_next(j);
}

static void
job_note(struct link *l, const char *msg)
{
	(void)l;
	(void)msg;
}

/* Starts the job of target i. */
static void
job_start(struct engine *e, int i)
{
	struct job *j = &e->job[i];
	int s;

	j->e = e;
	j->index = i;
	j->t0 = now_ms();
	j->deadline = j->t0 + e->timeout;
	j->state = JOB_RUNNING;
	e->running++;
	if ((s = link_init(&j->link, e->addr[i], e->qmp, e->timeout, e->maxreply))) {
		job_end(j, s, failure.msg);
		return;
	}
	j->link.on_reply = job_reply;
	j->link.on_lost = job_lost;
	j->link.on_up = job_up;
	j->link.on_synced = job_synced;
	j->link.on_note = job_note;
	j->link.qmp_detect = e->qmp_detect;
	j->link.lean = 1;
	link_start(&j->link);
}

/* How many links may be open at once: max, within what the limit on
 * descriptors leaves once reserve more are kept for the owner; more
 * targets than that go in waves. */
int
engine_room(int max, int reserve)
{
	struct rlimit rl;
	long long room;

	room = getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ?
	       65536 : (long long)rl.rlim_cur;
	room -= reserve + 16;
	return room < 1 ? 1 : room < max ? (int)room : max;
}

/* Readies e for n targets, addr[0..n), each within timeout ms; at most
 * max at once (see engine_room), each one request at a time until the
 * owner widens the window. */
void
engine_init(struct engine *e, const char *const *addr, int n, long long timeout, int max)
{
	e->addr = addr;
	e->n = n;
	e->timeout = timeout ? timeout : 365LL * 86400000;
	e->max = max;
	e->window = 1;
	e->job = xrealloc(e->job, (size_t)(n ? n : 1) * sizeof *e->job);
	memset(e->job, 0, (size_t)(n ? n : 1) * sizeof *e->job);
	e->started = e->running = 0;
}

/* Takes what the job's peer sent while the loop was busy elsewhere (an
 * owner writing to a slow pipe), before its deadline is held against it. */
static void
job_drain(struct job *j)
{
	struct pollfd p = {j->link.fd, link_events(&j->link), 0};

	if (p.fd >= 0 && poll(&p, 1, 0) > 0)
		link_io(&j->link, p.revents);
}

/* Starts the jobs there is room for, ends those past their deadline.
 * Returns the ms until the next deadline, or -1 when none runs. */
long long
engine_tick(struct engine *e, long long now)
{
	struct job *j;
	long long wait = -1, w;
	char why[128];
	int i;

	while (e->started < e->n && e->running < e->max)
		job_start(e, e->started++);
	for (i = 0; i < e->started; i++) {
		j = &e->job[i];
		if (j->state == JOB_RUNNING &&
		    now >= (j->link.state == LINK_UP ? j->deadline : j->link.try_deadline))
			job_drain(j);
		if (j->state != JOB_RUNNING)
			continue;
		if (j->link.state != LINK_UP)
			w = link_tick(&j->link, now);
		else if ((w = j->deadline - now) <= 0) {
			snprintf(why, sizeof why, "no reply to %s within %s", j->asked[j->first],
			         seconds(e->timeout));
			link_lose(&j->link, EX_TIMEOUT, why);
		}
		if (j->state == JOB_RUNNING && w >= 0 && (wait < 0 || w < wait))
			wait = w;
	}
	/* A job that ended at once leaves room for the next. */
	return e->started < e->n && e->running < e->max ? 0 : wait;
}

/* The descriptors of the running jobs, into pfd (room for e->max);
 * returns how many. */
int
engine_poll(const struct engine *e, struct pollfd *pfd)
{
	int i, n = 0;

	for (i = 0; i < e->started; i++)
		if (e->job[i].state == JOB_RUNNING && e->job[i].link.fd >= 0)
			pfd[n++] = (struct pollfd){e->job[i].link.fd, link_events(&e->job[i].link), 0};
	return n;
}

/* Takes what poll saw on the n descriptors engine_poll() gave. */
void
engine_io(struct engine *e, const struct pollfd *pfd, int n)
{
	int i, k = 0;

	for (i = 0; i < e->started && k < n; i++) {
		if (e->job[i].state != JOB_RUNNING || e->job[i].link.fd != pfd[k].fd)
			continue;
		if (pfd[k].revents)
			link_io(&e->job[i].link, pfd[k].revents);
		k++;
	}
}

/* Ends every job under way: a signal came. */
void
engine_stop(struct engine *e, int status, const char *why)
{
	int i;

	for (i = 0; i < e->started; i++)
		if (e->job[i].state == JOB_RUNNING)
			job_end(&e->job[i], status, why);
	e->n = e->started;
}

/* Runs every job to its end. */
void
engine_run(struct engine *e)
{
	struct pollfd *pfd = xrealloc(NULL, (size_t)e->max * sizeof *pfd);
	long long wait;
	int n;

	while ((wait = engine_tick(e, now_ms())) >= 0 || e->running) {
		if (interrupted) {
			engine_stop(e, 128 + interrupted, "interrupted");
			break;
		}
		n = engine_poll(e, pfd);
		if (poll(pfd, (nfds_t)n, wait > 3600000 ? 3600000 : (int)wait) < 0 && errno != EINTR)
			die(EX_IO, "poll:");
		engine_io(e, pfd, n);
	}
	free(pfd);
}
