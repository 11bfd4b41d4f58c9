/* SPDX-License-Identifier: MIT */
/* Raw commands: one named on the command line, or a batch of them, a
 * request per line of stdin. */
#include "qga.h"

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
	return build_request(b, words[0], words + 1, n - 1);
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

int
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
			die(s, "stdin line %zu: %s", in.lineno, failure.msg);
		if (raw_request(c, &req, name, named, 1))
			status = EX_AGENT;
	}
	free(in.b.p);
	free(req.p);
	return status;
}

/* The request req again, named name, with the same arguments. */
void
rename_request(struct buf *b, const struct buf *req, const char *name)
{
	struct json_parser p;
	struct json_tok t[8];
	int a;

	json_init(&p);
	p.keep = 2;
	req_begin(b, name);
	if (json_parse(&p, req->p, req->len, t, 8) > 0 &&
	    (a = json_get(req->p, t, 0, "arguments")) >= 0)
		req_members(b, req->p + t[a].start, t[a].end - t[a].start);
	req_end(b, -1);
}

/* Sends a raw request and prints its reply. A bare name the guest agent
 * does not know is tried again as guest-NAME, the way Proxmox's `qm guest
 * cmd` writes names; a name nobody knows gets a suggestion. */
int
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
		snprintf(gname, sizeof gname, "guest-%.*s", (int)sizeof gname - 7, name);
		rename_request(&again, req, gname);
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
