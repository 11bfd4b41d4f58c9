/* SPDX-License-Identifier: MIT */
/* exec, sh and exec-status: a program run in the guest, its output
 * polled or streamed, its status as qga's. */
#include "qga.h"

/* The most stdin -i sends: its base64 must stay under the agent's 64 MiB
 * token limit. */
#define EXEC_INPUT_MAX 50331645
/* The most output of a stream the agent keeps. */
#define EXEC_OUTPUT_MAX (16 << 20)

/* Windows' NTSTATUS codes of a crash that people meet most, 0xC000xxxx. */
static const unsigned short nt_codes[] = {
	0x0005, 0x001d, 0x0094, 0x00fd, 0x013a, 0x0135, 0x0374, 0x0409};
static const char nt_names[] =
	"ACCESS_VIOLATION\0ILLEGAL_INSTRUCTION\0INTEGER_DIVIDE_BY_ZERO\0"
	"STACK_OVERFLOW\0CONTROL_C_EXIT\0DLL_NOT_FOUND\0HEAP_CORRUPTION\0"
	"STACK_BUFFER_OVERRUN";

/* The program's status as qga's: a POSIX signal N is 128+N; a Windows
 * guest's "signal" is the NTSTATUS that ended the program and its exit
 * code 32 bits wide. A status outside 0-255 is said in full, and qga
 * exits with its low byte, or 1 where that would read as success. */
static int
exit_code(const struct doc *d, const char *prog)
{
	unsigned long st;
	const char *name = nt_names;
	int v, i;

	if ((v = dget(d, 0, "signal")) >= 0 && (st = (unsigned long)dint(d, v, 0)) - 1 < 127)
		return 128 + (int)st;
	st = (unsigned long)dint(d, v >= 0 ? v : dget(d, 0, "exitcode"), 0) & 0xffffffff;
	if (v >= 0) {
		for (i = 0; i < 8 && (st >> 16 != 0xc000 || (st & 0xffff) != nt_codes[i]); i++)
			name += strlen(name) + 1;
		warn("%s ended with status 0x%08lX%s%s", prog, st, i < 8 ? " STATUS_" : "",
		     i < 8 ? name : "");
	} else if (st > 255)
		warn("%s exited with status %lu", prog, st);
	return st < 256 ? (int)st : st & 255 ? (int)(st & 255) : 1;
}

/* Appends ,"key":value to a JSON object being built. */
static void
json_member(struct buf *b, const char *key, const char *val)
{
	buf_add(b, ",", 1);
	buf_jstr(b, key, strlen(key));
	buf_add(b, ":", 1);
	buf_str(b, val);
}

static const char *const streams[2][3] = {
	{"out-data", "out-truncated", "out-data-b64"},
	{"err-data", "err-truncated", "err-data-b64"}};

/* Whether stream i of the ended program d was cut, its data len bytes. */
static int
exec_cut(const struct doc *d, int i, size_t len)
{
	/* Some agents (10.0.2 among them) cut a stream at exactly 16 MiB and
	 * say nothing: that size is taken as cut. */
	return len == EXEC_OUTPUT_MAX || dtrue(d, dget(d, 0, streams[i][1]));
}

/* The end of a program as one object with the keys of Proxmox's `qm
 * guest exec`: out-data and err-data as text, or base64 in out-data-b64
 * and err-data-b64 when not UTF-8, the truncated flags, exitcode or
 * signal. Returns -1, with js unfinished, when a stream is not base64. */
int
exec_json(struct buf *js, const struct doc *d)
{
	struct buf data = {0}, text = {0};
	size_t len[2] = {0, 0};
	int i, v, bad = 0;
	char n[24];

	buf_str(js, "{\"exited\":true");
	for (i = 0; i < 2 && !bad; i++) {
		if ((v = dget(d, 0, streams[i][0])) < 0)
			continue;
		data.len = text.len = 0;
		if ((bad = b64_decode(&data, d->js, &d->t[v]) < 0))
			break;
		len[i] = data.len;
		buf_jstr(&text, data.p, data.len);
		buf_add(&text, "", 1);
		if (is_json(text.p, text.len - 1)) {
			json_member(js, streams[i][0], text.p);
		} else {
			buf_add(js, ",", 1);
			buf_jstr(js, streams[i][2], strlen(streams[i][2]));
			buf_add(js, ":", 1);
			buf_add(js, d->js + d->t[v].start - 1, d->t[v].end - d->t[v].start + 2);
		}
	}
	for (i = 0; i < 2; i++)
		json_member(js, streams[i][1], exec_cut(d, i, len[i]) ? "true" : "false");
	for (i = 0; i < 2; i++)
		if ((v = dget(d, 0, i ? "signal" : "exitcode")) >= 0) {
			snprintf(n, sizeof n, "%lld", dint(d, v, 0));
			json_member(js, i ? "signal" : "exitcode", n);
		}
	buf_add(js, "}", 1);
	free(data.p);
	free(text.p);
	return bad ? -1 : 0;
}

/* Writes what the program wrote, and returns its exit status. With -j,
 * prints instead its end as exec_json says it, and returns 0. */
int
exec_finish(const struct doc *dp, const char *prog)
{
	struct buf data = {0}, js = {0};
	struct doc d = *dp;
	size_t len[2] = {0, 0};
	int i, v, code = 0;

	if (opt.json && exec_json(&js, &d) < 0)
		die(EX_PROTO, "%s: the output is not base64", prog);
	if (opt.json)
		print_json(js.p, js.len);
	for (i = 0; i < 2 && !opt.json; i++) {
		data.len = 0;
		if ((v = dget(&d, 0, streams[i][0])) >= 0 && b64_decode(&data, d.js, &d.t[v]) < 0)
			die(EX_PROTO, "%s: %s is not base64", prog, streams[i][0]);
		fflush(stdout);
		if (write_all(i + 1, data.p, len[i] = data.len) < 0)
			die(EX_IO, "write %s:", i ? "stderr" : "stdout");
	}
	for (i = 0; i < 2 && !opt.json; i++)
		if (exec_cut(&d, i, len[i]))
			warn("%s: the agent truncated the program's %s", prog,
			     i ? "stderr" : "stdout");
	if (!opt.json)
		code = exit_code(&d, prog);
	free(data.p);
	free(js.p);
	free(d.t);
	return code;
}

const struct option exec_longs[] = {
	{"input", no_argument, NULL, 'i'},
	{"env", required_argument, NULL, 'e'},
	{"timeout", required_argument, NULL, 'T'},
	{"no-wait", no_argument, NULL, O_NOWAIT},
	{"merge", no_argument, NULL, O_MERGE},
	{"ps", no_argument, NULL, O_PS},
	{"stream", no_argument, NULL, O_STREAM},
	{"no-stream", no_argument, NULL, O_NOSTREAM},
	{NULL, 0, NULL, 0}
};

/* Builds guest-exec's request for path: its arg is the words of pre (up
 * to a NULL), then args, and its env env (args and env JSON strings, each
 * after a comma); stdin is in, unless in->p is NULL; capture is the JSON
 * of capture-output. */
void
exec_request(struct buf *req, const char *path, const char *const *pre,
             const struct buf *args, const struct buf *env, const struct buf *in,
             const char *capture)
{
	struct buf arg = {0};

	for (; pre && *pre; pre++) {
		buf_add(&arg, ",", 1);
		buf_jstr(&arg, *pre, strlen(*pre));
	}
	buf_add(&arg, args->p, args->len);
	req_begin(req, "guest-exec");
	req_str(req, "path", path);
	req_list(req, "arg", &arg);
	if (env->len)
		req_list(req, "env", env);
	if (in->p)
		req_b64(req, "input-data", in->p, in->len);
	req_json(req, "capture-output", capture, strlen(capture));
	req_end(req, -1);
	free(arg.p);
}

/* Asks for the program's status: whether it has ended, with it in *d. */
int
exec_ended(const struct buf *req, struct doc *d)
{
	struct reply r;

	call(req, "guest-exec-status", &r);
	doc_reply(d, &r, "guest-exec-status", SHAPE_STATUS);
	if (dtrue(d, dget(d, 0, "exited")))
		return 1;
	free(d->t);
	return 0;
}

/* Waits ns before the next look at the program; -T and a signal end qga
 * here. */
void
exec_nap(long long deadline, long long ns, const char *prog, long long pid)
{
	struct timespec nap = {0, (long)ns};
	int late = deadline >= 0 && now_ms() >= deadline;

	if (!late)
		nanosleep(&nap, NULL);
	if (!late && !interrupted)
		return;
	warn(undo.stream_pid < 0 ? "%s still runs in the guest as pid %lld" :
	     "%s stopped in the guest (pid %lld): a streamed program ends with qga, "
	     "--no-stream leaves it running", prog, pid);
	leave(late ? 124 : 128 + interrupted);
}

/* What exec and sh were asked, from their options. */
struct exec_opts {
	int sh, input, nowait, merge, ps, stream;
	int path, root;       /* -e gave PATH, SystemRoot */
	long long wait;       /* -T, in ms; 0: none */
	struct buf env;       /* -e's, as JSON strings each after a comma */
};

static void
exec_options(struct exec_opts *o, int argc, char **argv)
{
	int ch;

	while ((ch = cmdopt(argc, argv)) != -1) {
		switch (ch) {
		case 'i': o->input = 1; break;
		case 'e':
			if (!strchr(optarg, '=') || *optarg == '=')
				die(EX_USAGE, "exec: -e wants NAME=VALUE, got '%s'", optarg);
			buf_add(&o->env, ",", 1);
			buf_jstr(&o->env, optarg, strlen(optarg));
			o->path |= !strncasecmp(optarg, "PATH=", 5);
			o->root |= !strncasecmp(optarg, "SystemRoot=", 11);
			break;
		case 'T':
			if (parse_seconds(optarg, &o->wait) < 0)
				die(EX_USAGE, "exec: bad -T '%s': expected seconds", optarg);
			break;
		case O_NOWAIT: o->nowait = 1; break;
		case O_MERGE: o->merge = 1; break;
		case O_STREAM: o->stream = 2; break;
		case O_NOSTREAM: o->stream = 0; break;
		case O_PS:
			if (!o->sh)
				die(EX_USAGE, "exec: --ps is sh's: qga sh --ps 'SCRIPT'");
			o->ps = 1;
			break;
		}
	}
}

/* Words that are not UTF-8, which JSON cannot carry, are refused before
 * the fan-out: once, not per target. */
static void
exec_utf8(const struct exec_opts *o, int argc, char **argv)
{
	struct buf b = {0};
	int i;

	buf_str(&b, "[\"\"");
	for (i = 0; i < argc; i++) {
		buf_add(&b, ",", 1);
		buf_jstr(&b, argv[i], strlen(argv[i]));
	}
	buf_add(&b, o->env.p, o->env.len);
	buf_add(&b, "]", 1);
	if (!is_json(b.p, b.len))
		die(EX_USAGE, "exec: arguments are not valid UTF-8");
	free(b.p);
}

/* The program to run and its arguments, into args (each after a comma):
 * PROG and ARGs for exec; for sh, the guest's shell with the line. */
static const char *
exec_args(struct buf *args, struct exec_opts *o, int argc, char **argv)
{
	int i;

	if (o->sh)
		return guest_shell(args, o->ps, &o->merge, argc, argv);
	for (i = 1; i < argc; i++) {
		buf_add(args, ",", 1);
		buf_jstr(args, argv[i], strlen(argv[i]));
	}
	return argv[0];
}

/* The environment -e asked for, into envw (each after a comma), with
 * what the guest needs besides (guest_env). */
static void
exec_env(struct buf *envw, const struct exec_opts *o)
{
	if (!o->env.len)
		return;
	guest_env(envw, o->path, o->root);
	buf_add(envw, o->env.p, o->env.len);
}

/* Stdin, for -i, into in, whose p is then not NULL even when it is
 * empty. */
static void
exec_input(struct buf *in)
{
	int n;

	if ((n = read_all(0, in, EXEC_INPUT_MAX)) == -2)
		die(EX_USAGE, "exec -i: stdin is larger than the agent "
		    "accepts (%d bytes)", EXEC_INPUT_MAX);
	if (n < 0)
		die(EX_IO, "read stdin:");
	buf_need(in, 1);
}

/* guest-exec refused: qga ends as ssh and docker do, 127 when there is no
 * such program, 126 when it cannot be run. */
static _Noreturn void
exec_refused(const struct reply *r, int merge)
{
	char desc[256];

	if (merge && strstr(member_str(r->js, &r->tok[r->err], "desc", desc, sizeof desc),
	                    "capture-output"))
		die(EX_AGENT, guest_windows() ? "exec --merge: a Windows guest has no "
		    "merged output (sh --merge merges through cmd.exe)" :
		    "exec --merge needs qemu-ga 8.0 or later");
	agent_error(r, "guest-exec");
	member_str(r->js, &r->tok[r->err], "desc", desc, sizeof desc);
	say();
	leave(strstr(desc, "No such file") ? 127 : strstr(desc, "Permission denied") ||
	      strstr(desc, "Exec format error") ? 126 : 255);
}

/* Waits for the program pid to end, polling every 0.2 ms for the first 50
 * polls, so that a short program returns at once, then backing off to a
 * tenth of a second; its end is qga's. */
static int
exec_wait(long long pid, long long deadline, const char *prog)
{
	struct buf req = {0};
	long long delay = 200000;
	struct doc d;
	int polls = 0, s;

	req_begin(&req, "guest-exec-status");
	req_int(&req, "pid", pid);
	req_end(&req, -1);
	while (!exec_ended(&req, &d)) {
		exec_nap(deadline, delay, prog, pid);
		if (++polls > 50)
			delay = delay * 2 > 100000000 ? 100000000 : delay * 2;
	}
	s = exec_finish(&d, prog);
	free(req.p);
	return s;
}

int
cmd_exec(int argc, char **argv)
{
	struct exec_opts o = {.stream = 1};
	struct buf req = {0}, args = {0}, envw = {0}, inb = {0};
	struct reply r;
	struct doc d;
	long long pid, deadline;
	const char *prog;
	int s, win = 0;

	exec_mode = 1;
	o.sh = !strcmp(argv[0], "sh");
	exec_options(&o, argc, argv);
	argc -= optind;
	argv += optind;
	if (argc < 1)
		return -1;
	exec_utf8(&o, argc, argv);
	fan_out(o.input);
	if (o.sh || o.env.len)
		win = guest_windows();
	prog = exec_args(&args, &o, argc, argv);
	exec_env(&envw, &o);
	if (o.input)
		exec_input(&inb);
	exec_request(&req, prog, NULL, &args, &envw, &inb, o.merge ? "\"merged\"" : "true");
	deadline = deadline_in(o.wait);
	/* A program is streamed unless its output is wanted at the end
	 * anyway, or the guest is known to run Windows. */
	if (o.stream && !o.nowait && !opt.json && !win && !o.ps &&
	    (s = exec_stream(&args, &envw, &inb, prog, o.merge, deadline, o.stream > 1, 1)) >= 0)
		return s;
	call_any(&req, "guest-exec", &r, opt.timeout);
	if (r.err >= 0)
		exec_refused(&r, o.merge);
	doc_reply(&d, &r, "guest-exec", SHAPE_EXEC);
	pid = dint(&d, dget(&d, 0, "pid"), -1);
	free(d.t);
	if (pid < 0)
		die(EX_PROTO, "guest-exec: no pid in the reply");
	if (o.nowait) {
		printf("%lld\n", pid);
		return 0;
	}
	s = exec_wait(pid, deadline, prog);
	free(req.p);
	free(args.p);
	free(o.env.p);
	free(envw.p);
	free(inb.p);
	return s;
}

/* The end of a program started with exec --no-wait, as exec shows it. */
int
cmd_exec_status(int argc, char **argv)
{
	struct buf req = {0};
	struct reply r;
	struct doc d;
	long long pid;
	char *end;

	exec_mode = 1;
	if (argc != 2)
		return -1;
	pid = num(argv[1], &end, 10, 1LL << 31);
	if (*end || pid < 0 || pid >> 31)
		die(EX_USAGE, "exec-status: bad pid '%s'", argv[1]);
	fan_out(0);
	req_begin(&req, "guest-exec-status");
	req_int(&req, "pid", pid);
	req_end(&req, -1);
	call_any(&req, "guest-exec-status", &r, opt.timeout);
	free(req.p);
	/* The agent's words for it vary: 7.2 "Invalid parameter 'pid'",
	 * 10.0 "PID ld does not exist". */
	if (r.err >= 0 && !strcmp(member_str(r.js, &r.tok[r.err], "class", (char[16]){0}, 16),
	                         "GenericError"))
		die(EX_AGENT, "exec-status: no program of pid %lld in the guest agent "
		    "(not started by it, or its end already read)", pid);
	if (r.err >= 0)
		quit(agent_error(&r, "guest-exec-status"));
	if (opt.json) {
		print_result(&r);
		return 0;
	}
	doc_reply(&d, &r, "guest-exec-status", SHAPE_STATUS);
	if (!dtrue(&d, dget(&d, 0, "exited"))) {
		warn("pid %lld still runs in the guest", pid);
		leave(124);
	}
	return exec_finish(&d, argv[1]);
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
	req_end(&req, -1);
	do {
		call(&req, "guest-file-read", &r);
		eof = (v = json_get(r.js, r.tok, r.ret, "eof")) >= 0 && r.tok[v].type == JSON_TRUE;
		if ((v = json_get(r.js, r.tok, r.ret, "buf-b64")) < 0 ||
		    b64_decode(&data, r.js, &r.tok[v]) < 0)
			die(EX_PROTO, "guest-file-read: no base64 data in the reply");
		if (write_all(fd, data.p, data.len) < 0) {
			if (errno == EPIPE && undo.untar > 0)
				untar_ended();
			die(EX_IO, "write %s:", fd == 1 ? "stdout" : "stderr");
		}
		got |= data.len > 0;
	} while (!eof && data.len);
	free(req.p);
	free(data.p);
	return got;
}

/* guest-exec's request for exec_stream's wrapper of prog, whose stdout
 * and stderr go to files named in undo.stream. */
static void
stream_request(struct buf *req, const struct buf *args, const struct buf *env,
               const struct buf *in, const char *prog, int merge)
{
	struct buf words = {0};
	char wrap[224];
	const char *pre[] = {"-c", wrap, "sh", undo.stream, NULL};

	snprintf(undo.stream, sizeof undo.stream, "/tmp/qga-exec.%08x", random_id());
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
	exec_request(req, "/bin/sh", pre, &words, &(struct buf){0}, in, "true");
	free(words.p);
}

/* Moves the ended program's status reply in d to a copy of its own,
 * which the reads that follow cannot overwrite, and returns that copy. */
static char *
keep_status(struct doc *d)
{
	char *c = memcpy(xrealloc(NULL, d->t[0].end), d->js, d->t[0].end);

	d->js = c;
	return c;
}

/* Copies the program's output from the open files as it comes, until
 * the program has ended: its status then in d, whose text is in the
 * returned copy, keep (the reads that follow would overwrite it), which
 * is given when the program was seen to end already. */
static char *
stream_follow(const struct buf *st, struct doc *d, char *keep, int merge,
              long long deadline, const char *prog, int out)
{
	long long delay = 200000;
	int ended = keep != NULL, got;

	for (;;) {
		/* The status is kept from the reads that follow it; the program
		 * that ended is not one to stop any more. */
		if (!ended && (ended = exec_ended(st, d)))
			keep = keep_status(d);
		if (ended)
			undo.stream_pid = -1;
		got = stream_copy(undo.handle[0], out, ended);
		if (!merge)
			got |= stream_copy(undo.handle[1], 2, ended);
		if (ended)
			return keep;
		/* Soon again after output, else less and less often, down to
		 * 25 times a second. */
		delay = got ? 200000 : delay * 2 > 40000000 ? 40000000 : delay * 2;
		exec_nap(deadline, delay, prog, undo.stream_pid);
	}
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
	struct buf req = {0}, st = {0};
	struct reply r;
	struct doc d;
	const char *why = "guest-file-read is not enabled in the guest agent";
	char path[sizeof undo.stream + 12], *keep = NULL;
	int was = undo.armed;
	long long delay = 200000, rm;
	int i;

	if (!enabled("guest-file-read"))
		goto cannot;
	stream_request(&req, args, env, in, prog, merge);
	/* A signal waits until qga knows the pid it would stop. */
	hold_signals(1);
	call_any(&req, "guest-exec", &r, opt.timeout);
	hold_signals(0);
	why = "the guest has no /bin/sh";
	if (r.err >= 0)
		goto cannot;
	doc_reply(&d, &r, "guest-exec", SHAPE_EXEC);
	req_begin(&st, "guest-exec-status");
	req_int(&st, "pid", undo.stream_pid = dint(&d, dget(&d, 0, "pid"), -1));
	req_end(&st, -1);
	free(d.t);
	undo.armed = 1;
	for (i = 0; i < 2 - merge; i++) {
		snprintf(path, sizeof path, "%s.%d", undo.stream, i + 1);
		while ((undo.handle[i] = file_open(path, "r", 1)) < 0) {
			why = "the guest cannot make files in /tmp";
			/* A short program may have made its files and ended since
			 * the look: one more look tells. */
			if (keep)
				goto cannot;
			if (exec_ended(&st, &d))
				keep = keep_status(&d);
			else
				exec_nap(deadline, delay, prog, undo.stream_pid);
		}
	}
	rm = guest_start(stream_rm, 0);
	undo.stream[0] = 0;
	keep = stream_follow(&st, &d, keep, merge, deadline, prog, out);
	undo.armed = was;
	file_close(0);
	guest_wait(rm, NULL, timeout_or(RUN_TIMEOUT));
	free(req.p);
	free(st.p);
	i = exec_finish(&d, prog);
	free(keep);
	return i;
cannot:
	/* The wrapper ended before its files were made: what it made goes. */
	if (undo.stream_pid >= 0) {
		free(d.t);
		undo.stream_pid = -1;
		guest_run(stream_rm);
	}
	undo.stream[0] = 0;
	undo.armed = was;
	if (asked)
		warn("exec: not streaming: %s", why);
	free(keep);
	free(req.p);
	free(st.p);
	return -1;
}
