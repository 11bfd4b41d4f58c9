/* SPDX-License-Identifier: MIT */
/* The guest as a machine qga runs programs on for its own ends (removing
 * a temporary file, checking a hash, moving a copy into place), and what
 * it runs: its OS, asked once, and the path rules that differ with it. */
#include "qga.h"

/* Whether the guest runs Windows (guest-get-osinfo's id), asked once and
 * only by what needs to know. */
int
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
const char *
guest_base(const char *path)
{
	const char *b = strrchr(path, '/');

	if (strchr(path, '\\') && guest_windows() && (!b || strrchr(path, '\\') > b))
		b = strrchr(path, '\\');
	return b ? b + 1 : path;
}

/* Starts argv[0] with the arguments after it in the guest, its stdout
 * captured when asked: its pid, or -1 when it could not be run. Failures
 * are not reported: the caller says what they mean. */
long long
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
int
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
int
guest_run(const char *const *argv)
{
	return guest_wait(guest_start(argv, 0), NULL, signals ? opt.timeout :
	                  timeout_or(RUN_TIMEOUT));
}
