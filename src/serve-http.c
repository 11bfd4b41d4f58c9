/* SPDX-License-Identifier: MIT */
/* serve's HTTP requests: POST /exec, /health, /metrics, the checks
 * against web pages, and the deadline of a head. */
#include "qga.h"

/* POST /exec: {"path": PROG, "args": [...], "env": [...], "input": TEXT,
 * "timeout": SECONDS}, or "sh": LINE for /bin/sh -c LINE instead of path
 * and args: a guest-exec with its output captured, polled by serve
 * within its loop until the program ends, or its timeout (none unless
 * given) passes. */
static void
take_exec(int i, const char *js, size_t len, int keep)
{
	static const char *const keys[] = {"path", "sh", "args", "env", "input", "timeout"};
	static const char *const agents[] = {"path", NULL, "arg", "env"};
	struct json_parser p;
	struct json_tok t[64];
	struct buf b = {0}, in = {0}, sh = {0};
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
	/* sh's line is the second word of /bin/sh's arg: ["-c", LINE]. */
	req_begin(&b, "guest-exec");
	if (k[1] >= 0) {
		req_str(&b, "path", "/bin/sh");
		buf_str(&sh, ",\"-c\",");
		v = tok_text(js, &t[k[1]], &n);
		buf_add(&sh, v, n);
		req_list(&b, "arg", &sh);
		free(sh.p);
	}
	for (j = 0; j < 4; j++)
		if (k[j] >= 0 && agents[j]) {
			v = tok_text(js, &t[k[j]], &n);
			req_json(&b, agents[j], v, n);
		}
	if (k[4] >= 0 && (u = json_unescape(js, &t[k[4]], NULL, 0)) > 0) {
		buf_need(&in, (size_t)u + 1);
		in.len = (size_t)json_unescape(js, &t[k[4]], in.p, (size_t)u + 1);
		req_b64(&b, "input-data", in.p, in.len);
	}
	req_bool(&b, "capture-output", 1);
	req_end(&b, ++sv.next_id);
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

/* A sample of serve's /metrics: qga_NAME, its value v. */
static void
gauge(struct buf *b, const char *name, const char *type, const char *help,
      unsigned long long v)
{
	char line[80];

	prom_family(b, name, type, help);
	snprintf(line, sizeof line, "qga_%s %llu\n", name, v);
	buf_str(b, line);
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
	gauge(&b, "agent_up", "gauge", "1 when serve's connection to the agent is up and "
	      "in sync, else 0.", sv.link.state == LINK_UP);
	gauge(&b, "agent_reconnects_total", "counter", "How many times serve has reached "
	      "the agent.", (unsigned)sv.link.connects);
	gauge(&b, "waiting", "gauge", "Requests queued, sent to the agent, or between an "
	      "/exec's polls.", waiting());
	gauge(&b, "clients", "gauge", "Clients connected.", (unsigned)n);
	prom_family(&b, "requests_total", "counter", "Requests answered, by command and "
	            "outcome.");
	for (j = 0; j < sv.nstats; j++)
		for (o = 0; o < NOUT; o++)
			if (sv.stats[j].n[o]) {
				buf_str(&b, "qga_requests_total{");
				prom_label(&b, "command", sv.stats[j].name);
				prom_label(&b, "outcome", outcomes[o]);
				snprintf(line, sizeof line, "} %llu\n", sv.stats[j].n[o]);
				buf_str(&b, line);
			}
	prom_family(&b, "request_seconds", "histogram", "How long requests took to be "
	            "answered.");
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
	         sv.link.state == LINK_UP ? "up" : "down", waiting());
	enqueue(i, ITEM_LOCAL, b, strlen(b), "health", keep)->code =
		sv.link.state == LINK_UP ? 200 : 503;
}

/* The client's last request is taken: it gets its replies, then the end
 * of the stream; what it still sends is read and dropped (drain), so that
 * its kernel does not drop the answer for a reset. */
void
http_closing(int i, int drain)
{
	sv.cl[i].eof = sv.cl[i].last = 1;
	sv.cl[i].drain = drain;
	sv.cl[i].since = now_ms();
}

/* A reply of serve's own, given in its turn among the client's others:
 * HTTP/1.1 answers pipelined requests in their order. */
void
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
int
http_is(const struct http_req *r, const char *method, const char *target)
{
	const char *q = memchr(r->target, '?', r->tlen);
	size_t n = q ? (size_t)(q - r->target) : r->tlen;

	return (!method || (r->mlen == strlen(method) && !memcmp(r->method, method, r->mlen))) &&
	       (!target || (n == strlen(target) && !memcmp(r->target, target, n)));
}

/* Takes the HTTP requests a client sent: POST / with a request as its
 * body, POST /exec, GET and PUT /file, GET /health (which needs no token)
 * and GET /metrics. */
void
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
		file = st == 1 && !sv.exporter &&
		       (http_is(&r, "GET", "/file") || http_is(&r, "PUT", "/file"));
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
		if (!sv.exporter && (http_is(&r, "POST", "/") || http_is(&r, "POST", "/exec")) && !r.json &&
		    (!*sv.token || r.auth)) {
			http_refuse(i, 415, "a POST must be application/json");
			return;
		}
		if (!file && c->in.len - r.head < r.body)
			break;
		used = r.head + (file ? 0 : r.body);
		if (sv.exporter)
			exporter_http(i, &r);
		else if (http_is(&r, "GET", "/health"))
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
int
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
