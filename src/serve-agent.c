/* SPDX-License-Identifier: MIT */
/* serve's agent: its one link, the hooks through which the agent's
 * replies reach the clients' requests, and the pump that moves the queue
 * on. */
#include "qga.h"

/* The agent is out of reach, or gone: what it was asked fails. Once it
 * has served, what is queued goes to the next connection, tried at once;
 * a try that fails before that fails what waits for it too. */
static void
agent_lost(struct link *l, int up)
{
	char desc[MSG_MAX + 64];
	size_t k;

	note("agent %s: %s", l->addr, l->why);
	snprintf(desc, sizeof desc, up ? "the guest agent went away: %s" :
	         "the guest agent is unavailable: %s", l->why);
	for (k = sv.qhead; k < sv.qhead + sv.qlen; k++)
		if (sv.q[k].state == SENT || sv.q[k].state == WAIT ||
		    (!up && sv.q[k].state == QUEUED))
			item_fail(&sv.q[k], 503, "AgentUnavailable", desc);
}

static void
agent_up(struct link *l)
{
	note("agent %s: connected", l->addr);
}

static void
agent_note(struct link *l, const char *msg)
{
	note("agent %s: %s, dropped", l->addr, msg);
}

/* The first time the agent is in sync, guest-info follows, within the
 * same try, so that the names of --allow and --deny are checked before
 * any request is sent. */
static int
agent_synced(struct link *l)
{
	if (sv.checked || !(sv.nallow || sv.ndeny))
		return 0;
	sv.checked = 1;
	link_request(l, "guest-info", sv.info_id = ++sv.next_id);
	return 1;
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
		item_fail(it, 502, "GenericError", failure.msg);
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
		req_begin(&b, "guest-exec-status");
		req_int(&b, "pid", it->pid);
		req_end(&b, it->id = ++sv.next_id);
		free(it->req);
		it->req = b.p;
		it->len = b.len;
		b.p = NULL;
	}
	free(b.p);
	free(d.t);
}

/* A reply from the agent, js[0..len), once it is in sync: the guest-info
 * that checks --allow and --deny, or an item's. */
static void
agent_reply(struct link *l, const char *js, size_t len, struct reply *r)
{
	struct buf b = {0}, marked = {0};
	struct item *it = NULL;
	const char *v;
	long long id;
	size_t k, n;

	if (l->state == LINK_SYNCED) {
		if (r->id >= 0 && json_int(js, &r->tok[r->id], &id) == 0 && id == sv.info_id) {
			if (r->ret >= 0)
				check_names(r);
			sv.info_id = 0;
			link_up(l);
		}
		return;
	}
	if (r->id < 0 || json_int(js, &r->tok[r->id], &id) < 0 || (r->ret < 0 && r->err < 0)) {
		if (json_get(js, r->tok, 0, "event") < 0)
			note("agent %s: a reply to no request, dropped: %s", l->addr, excerpt(js, len));
		return;
	}
	for (k = sv.qhead; k < sv.qhead + sv.qlen && !it; k++)
		if (sv.q[k].state == SENT && (sv.q[k].id == id || sv.q[k].mark == id))
			it = &sv.q[k];
	if (!it)
		return;
	if (it->kind == ITEM_NOREPLY && id == it->mark && r->err < 0) {
		item_done(it, 204, "", 0);
		return;
	}
	if (it->kind == ITEM_EXEC && r->err < 0) {
		exec_step(it, r);
		return;
	}
	if (r->ret >= 0 && !strcmp(it->name, "guest-info") && (sv.nallow || sv.ndeny)) {
		if (mark_denied(&marked, r) < 0) {
			item_fail(it, 502, "GenericError", failure.msg);
			free(marked.p);
			return;
		}
		reply_text(r, marked.p, marked.len, "agent");
	}
	buf_str(&b, r->ret >= 0 ? "{\"return\": " : "{\"error\": ");
	v = tok_text(r->js, &r->tok[r->ret >= 0 ? r->ret : r->err], &n);
	buf_add(&b, v, n);
	add_id(&b, it->cid, it->cidlen);
	buf_str(&b, "}\n");
	item_done(it, r->err >= 0 && r->ret < 0 ? error_status(r) : 200, b.p, b.len);
	free(b.p);
	free(marked.p);
}

/* Opens serve's link to the agent at opt.addr, its hooks this file's. */
void
agent_init(void)
{
	int s;

	if ((s = link_init(&sv.link, opt.addr, opt.qmp, opt.timeout, opt.maxreply)))
		quit(s);
	sv.link.on_reply = agent_reply;
	sv.link.on_lost = agent_lost;
	sv.link.on_up = agent_up;
	sv.link.on_synced = agent_synced;
	sv.link.on_note = agent_note;
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
	char desc[MSG_MAX + 64];
	struct link *l = &sv.link;
	long long now = now_ms(), next, left;
	struct item *it;
	size_t k;
	int want = 0;

	for (k = sv.qhead; k < sv.qhead + sv.qlen; k++)
		want |= sv.q[k].state == QUEUED;
	if (want && l->state == LINK_DOWN && now >= l->retry_at)
		link_start(l);
	next = link_tick(l, now);
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
		if (it->state == QUEUED && l->state == LINK_UP) {
			link_send(l, it->req, it->len);
			if (it->kind == ITEM_NOREPLY) {
				link_request(l, "guest-ping", it->mark = ++sv.next_id);
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
	link_flush(l);
	if (want && l->state == LINK_DOWN && (next < 0 || l->retry_at - now < next))
		next = l->retry_at - now;
	return next < 0 ? -1 : (int)(next > 0 ? next : 0);
}
