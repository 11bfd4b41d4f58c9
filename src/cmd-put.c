/* SPDX-License-Identifier: MIT */
#include "qga.h"

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

/* Sends fd's bytes to the open guest file; returns how many. sha (unless
 * NULL) hashes them. */
unsigned long long
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
long long
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
int
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

const struct option get_longs[] = {
	{"recursive", no_argument, NULL, 'r'},
	{"continue", no_argument, NULL, 'c'},
	{"verify", no_argument, NULL, O_VERIFY},
	{NULL, 0, NULL, 0}
};

const struct option put_longs[] = {
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
int
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
