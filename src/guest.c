/* SPDX-License-Identifier: MIT */
/* The guest as a machine qga runs programs on for its own ends (removing
 * a temporary file, checking a hash, moving a copy into place), and what
 * it runs: its OS, asked once, and the path rules that differ with it. */
#include "qga.h"

/* Whether the guest runs Windows: -1 until asked. */
static int os_windows = -1;

/* Whether the guest runs Windows (guest-get-osinfo's id), asked once and
 * only by what needs to know. */
int
guest_windows(void)
{
	struct buf req = {0};
	struct reply r;
	struct doc d;
	int v;

	if (os_windows < 0) {
		req_begin(&req, "guest-get-osinfo");
		req_end(&req, -1);
		call_any(&req, "guest-get-osinfo", &r, opt.timeout);
		free(req.p);
		os_windows = 0;
		if (r.err < 0) {
			doc_reply(&d, &r, "guest-get-osinfo", SHAPE_OSINFO);
			os_windows = (v = dget(&d, 0, "id")) >= 0 &&
			             json_eq(d.js, &d.t[v], "mswindows");
			free(d.t);
		}
	}
	return os_windows;
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
	int n;

	for (n = 1; argv[n]; n++)
		;
	req_begin(&req, "guest-exec");
	req_str(&req, "path", *argv);
	req_strv(&req, "arg", argv + 1, n - 1);
	if (capture)
		req_bool(&req, "capture-output", 1);
	req_end(&req, -1);
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
	req_end(&req, -1);
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

/* Appends the UTF-8 text s as base64 of UTF-16LE, as PowerShell's
 * -EncodedCommand takes a script: no quoting can go wrong in it. */
void
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

/* Removes a file in the guest, if it is there, with del on a guest known
 * to run Windows, else rm: what undoes a command asks the agent nothing
 * more than that. 0, or the status of what failed. */
int
guest_rm(const char *path)
{
	const char *rm[] = {"/bin/sh", "-c", "rm -f -- \"$1\"", "sh", path, NULL};
	const char *del[] = {"cmd.exe", "/c", "del", "/q", path, NULL};

	return guest_run(os_windows > 0 ? del : rm);
}

/* Removes what earlier puts to target that were killed left, the files
 * named prefix and eight more characters: 1 when target is a folder
 * (which Windows is not asked), else 0. */
int
guest_clear(const char *prefix, const char *target)
{
	const char *sh[] = {"/bin/sh", "-c", "[ ! -d \"$2\" ] || exit 21; rm -f -- \"$1\"????????",
	                    "sh", prefix, target, NULL};
	char pat[4096];

	if (!guest_windows())
		return guest_run(sh) == 21;
	snprintf(pat, sizeof pat, "%s????????", prefix);
	guest_run((const char *[]){"cmd.exe", "/c", "del", "/q", pat, NULL});
	return 0;
}

/* Gives a new file its mode (octal digits) before any data is in it;
 * not on a guest known to run Windows, whose files have no such mode
 * (elsewhere a failure costs nothing: the file keeps the agent's). */
void
guest_chmod(const char *mode, const char *path)
{
	if (os_windows <= 0)
		guest_run((const char *[]){"/bin/sh", "-c", "chmod \"$1\" \"$2\"", "sh", mode,
		                           path, NULL});
}

/* Puts tmp in target's place in one step: on POSIX with target's mode
 * and owner when it exists, else mode; on Windows by move /y. 0, or the
 * status of what failed. */
int
guest_replace(const char *tmp, const char *target, const char *mode)
{
	static const char finish[] =
		"m=$1; if [ -e \"$3\" ]; then m=$(stat -c %a -- \"$3\" 2>/dev/null || "
		"echo \"$1\"); chown \"$(stat -c %u:%g -- \"$3\")\" \"$2\" 2>/dev/null; fi; "
		"chmod \"$m\" \"$2\" && mv -f -- \"$2\" \"$3\"";
	const char *sh[] = {"/bin/sh", "-c", finish, "sh", mode, tmp, target, NULL};
	const char *move[] = {"cmd.exe", "/c", "move", "/y", tmp, target, NULL};

	return guest_run(guest_windows() ? move : sh);
}

/* What computes a file's SHA-256 in the guest, for messages. */
const char *
guest_sha_tool(void)
{
	return guest_windows() ? "Get-FileHash" : "sha256sum";
}

/* The guest's SHA-256 of path as it prints it, into out, with
 * sha256sum or PowerShell's Get-FileHash, waiting up to ms: as
 * guest_wait returns. */
int
guest_sha256(const char *path, struct buf *out, long long ms)
{
	const char *sh[] = {"/bin/sh", "-c", "exec sha256sum -- \"$1\"", "sh", path, NULL};
	const char *ps[] = {"powershell.exe", "-NoProfile", "-NonInteractive", "-EncodedCommand",
	                    NULL, NULL};
	struct buf line = {0}, enc = {0};
	const char *q;
	int st;

	if (!guest_windows())
		return guest_wait(guest_start(sh, 1), out, ms);
	/* PowerShell quotes a ' inside '...' by doubling it. */
	buf_str(&line, "(Get-FileHash -Algorithm SHA256 -LiteralPath '");
	for (q = path; *q; q++)
		buf_add(&line, *q == '\'' ? "''" : q, 1 + (*q == '\''));
	buf_str(&line, "').Hash");
	buf_add(&line, "", 1);
	buf_ps(&enc, line.p);
	enc.p[enc.len - 1] = 0;
	ps[4] = enc.p + 1;
	st = guest_wait(guest_start(ps, 1), out, ms);
	free(line.p);
	free(enc.p);
	return st;
}

/* sh's command line for the guest's shell, into args (each word after a
 * comma), and the shell: /bin/sh -c LINE, with $0 and the ARGs after it;
 * on Windows cmd.exe /s /c LINE, whose own 2>&1 stands for a merge (then
 * *merge is 0 as the agent is not asked for one); a PowerShell script
 * (ps) as -EncodedCommand, for powershell.exe on Windows, else pwsh. */
const char *
guest_shell(struct buf *args, int ps, int *merge, int argc, char **argv)
{
	int i, win = guest_windows();

	if ((win || ps) && argc > 1)
		die(EX_USAGE, "sh: ARGs need /bin/sh: put them in the line");
	if (win && !ps && strchr(argv[0], '"'))
		die(EX_USAGE, "sh: the agent escapes a double quote as \\\" for cmd.exe, "
		    "which keeps the backslash: use --ps");
	if (ps) {
		buf_str(args, ",\"-NoProfile\",\"-NonInteractive\",\"-EncodedCommand\",");
		buf_ps(args, argv[0]);
		return win ? "powershell.exe" : "pwsh";
	}
	if (win) {
		/* cmd /s takes the line as it is, between the quotes the agent
		 * puts around it. */
		buf_str(args, ",\"/s\",\"/c\",");
		buf_jstr(args, argv[0], strlen(argv[0]));
		if (*merge) {
			args->len--;
			buf_str(args, " 2>&1\"");
		}
		*merge = 0;
		return "cmd.exe";
	}
	buf_str(args, ",\"-c\"");
	for (i = 0; i < argc; i++) {
		buf_add(args, ",", 1);
		buf_jstr(args, argv[i], strlen(argv[i]));
		if (i == 0 && argc > 1)
			buf_str(args, ",\"sh\"");
	}
	return "/bin/sh";
}

/* What the agent's env needs besides the words -e gave, as it replaces
 * the whole environment: PATH unless given, and on Windows SystemRoot,
 * into envw (each after a comma). */
void
guest_env(struct buf *envw, int path, int root)
{
	int win = guest_windows();

	if (!root && win)
		buf_str(envw, ",\"SystemRoot=C:\\\\Windows\"");
	if (!path)
		buf_str(envw, win ? ",\"PATH=C:\\\\Windows\\\\system32;C:\\\\Windows;"
		        "C:\\\\Windows\\\\System32\\\\WindowsPowerShell\\\\v1.0\""
		        : ",\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"");
}
