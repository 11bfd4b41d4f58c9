/* SPDX-License-Identifier: MIT */
/* Power, set-time, fsfreeze (--run), fstrim, passwd, ssh-keys and
 * wait: the commands that change the guest, or wait for its agent. */
#include "qga.h"

/* Sends a command that never replies on success (guest-shutdown,
 * guest-suspend-*) with a guest-ping behind it. An error reply before the
 * ping's is a refusal: the ping's reply is read too, and EX_AGENT
 * returned. The ping's reply, or silence, or the connection closing as
 * the guest goes down, means accepted: 0. Any other status is a failure
 * to send. */
static int
send_noreply(struct conn *c, const struct buf *req, const char *name)
{
	struct buf b = {0}, ping = {0};
	struct reply r;
	int s;

	/* One write: the agent may go down as soon as it has the command. */
	req_begin(&ping, "guest-ping");
	req_end(&ping, -1);
	buf_add(&b, req->p, req->len);
	buf_add(&b, ping.p, ping.len);
	free(ping.p);
	if ((s = conn_write(c, b.p, b.len, conn_deadline(c, opt.timeout))))
		goto out;
	s = read_reply(c, &r, conn_deadline(c, POWER_WAIT), "reply");
	if (s == EX_IO || s == EX_TIMEOUT || (!s && r.err < 0)) {
		s = 0;
		goto out;
	}
	if (s)
		goto out;
	b.len = 0;
	buf_add(&b, r.js, r.len);
	/* The ping's reply is read, not left for the agent to choke on; the
	 * refusal is then said from its copy. */
	read_reply(c, &r, conn_deadline(c, opt.timeout), "reply to guest-ping");
	if (!reply_text(&r, b.p, b.len, c->name))
		agent_error(&r, name);
	s = EX_AGENT;
out:
	free(b.p);
	return s;
}

/* shutdown, reboot, halt and suspend: none replies on success. */
int
cmd_power(int argc, char **argv)
{
	const char *mode = !strcmp(argv[0], "shutdown") ? "powerdown" : argv[0];
	struct buf req = {0};
	char name[32];
	int s;

	if (argc != 1 + (*mode == 's'))
		return -1;
	if (*mode == 's') {
		if (strcmp(argv[1], "ram") && strcmp(argv[1], "disk") && strcmp(argv[1], "hybrid"))
			return -1;
		snprintf(name, sizeof name, "guest-suspend-%s", argv[1]);
		req_begin(&req, name);
	} else {
		strcpy(name, "guest-shutdown");
		req_begin(&req, name);
		req_str(&req, "mode", mode);
	}
	req_end(&req, -1);
	fan_out(0);
	need_session();
	s = send_noreply(&sess, &req, name);
	free(req.p);
	if (s)
		quit(s);
	return 0;
}

const struct option settime_longs[] = {
	{"now", no_argument, NULL, 'n'},
	{NULL, 0, NULL, 0}
};

/* Sets the guest's clock to this machine's (--now), to SECONDS since the
 * epoch, or with neither to the guest's own hardware clock. */
int
cmd_set_time(int argc, char **argv)
{
	struct buf req = {0};
	struct reply r;
	struct timespec ts;
	long long ns = -1, k;
	char *p;

	while (cmdopt(argc, argv) != -1) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ns = (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
	}
	if (argc - optind > (ns < 0))
		return -1;
	if (optind < argc) {
		if ((ns = num(argv[optind], &p, 10, 1LL << 33)) < 0)
			die(EX_USAGE, "set-time: bad time '%s': expected seconds since 1970",
			    argv[optind]);
		ns *= 1000000000;
		for (k = 100000000, p += *p == '.'; *p >= '0' && *p <= '9'; p++, k /= 10)
			ns += k * (*p - '0');
		if (*p)
			die(EX_USAGE, "set-time: bad time '%s': expected seconds since 1970",
			    argv[optind]);
	}
	fan_out(0);
	req_begin(&req, "guest-set-time");
	if (ns >= 0)
		req_int(&req, "time", ns);
	req_end(&req, -1);
	call(&req, "guest-set-time", &r);
	free(req.p);
	return 0;
}

/* Sends guest-fsfreeze-freeze, -freeze-list (the n mountpoints) or -thaw
 * and returns the count of filesystems in its reply. */
static long long
freeze_call(const char *name, char **mounts, int n)
{
	struct buf req = {0};
	struct reply r;
	long long count;

	req_begin(&req, name);
	if (n)
		req_strv(&req, "mountpoints", (const char *const *)mounts, n);
	req_end(&req, -1);
	call_for(&req, name, &r, timeout_or(name[15] == 't' ? THAW_TIMEOUT : FREEZE_TIMEOUT));
	free(req.p);
	if (opt.json) {
		print_result(&r);
		return 0;
	}
	if (json_int(r.js, &r.tok[r.ret], &count) < 0)
		die(EX_PROTO, "%s: no count in the reply", name);
	return count;
}

/* Thaws the guest, reconnecting for up to a minute when the connection
 * broke. Signals wait until it is done: a second one would end qga with
 * the guest frozen. */
static void
thaw_always(void)
{
	struct buf req = {0};
	struct timespec nap = {1, 0};
	long long until = now_ms() + 60000, n;
	struct reply r;
	int s;

	req_begin(&req, "guest-fsfreeze-thaw");
	req_end(&req, -1);
	hold_signals(1);
	for (;;) {
		interrupted = 0;
		if (!(s = session_open(&sess, target_addr(), opt.timeout)))
			s = transact(&sess, req.p, req.len, &r, "guest-fsfreeze-thaw",
			             timeout_or(THAW_TIMEOUT));
		if (!s && r.err >= 0)
			s = agent_error(&r, "guest-fsfreeze-thaw");
		else if (!s) {
			if (json_int(r.js, &r.tok[r.ret], &n))
				n = -1;
			fprintf(stderr, "qga: fsfreeze --run: thawed %lld filesystem%s\n", n,
			        n == 1 ? "" : "s");
			hold_signals(0);
			free(req.p);
			return;
		}
		conn_close(&sess);
		if (s == EX_AGENT || now_ms() >= until)
			die(s, "fsfreeze --run: the guest may still be frozen (qga fsfreeze "
			    "thaw): %s", failure.msg);
		nanosleep(&nap, NULL);
	}
}

/* Freezes the guest, runs argv here, and thaws the guest whatever happens:
 * the program fails, qga gets SIGINT, SIGTERM or SIGHUP (passed on to the
 * program), the connection breaks, max ms pass (the program gets SIGTERM).
 * The channel is let go while the program runs, so that it can ask the
 * agent itself: QGA_SOCKET names it. The program's status is qga's. */
static int
freeze_run(char **argv, long long max)
{
	static char socket_var[4096];
	struct timespec nap = {0, 10000000};
	long long deadline = deadline_in(max), n;
	int status = 0, sig = 0, late = 0, i;
	char **env;
	pid_t pid;

	if (guest_windows() && max > 10000)
		warn("fsfreeze --run: Windows (VSS) thaws by itself after about 10 s, "
		     "before --max %s", seconds(max));
	n = freeze_call("guest-fsfreeze-freeze", NULL, 0);
	fprintf(stderr, "qga: fsfreeze --run: froze %lld filesystem%s\n", n, n == 1 ? "" : "s");
	conn_close(&sess);
	for (i = 0; environ[i]; i++)
		;
	env = xrealloc(NULL, (size_t)(i + 2) * sizeof *env);
	env[0] = socket_var;
	snprintf(socket_var, sizeof socket_var, "QGA_SOCKET=%s", target_addr());
	for (i = n = 0; environ[i]; i++)
		if (strncmp(environ[i], "QGA_SOCKET=", 11))
			env[++n] = environ[i];
	env[n + 1] = NULL;
	environ = env;
	pid = spawn((const char *const *)argv, -1, -1);
	while (pid > 0 && waitpid(pid, &status, WNOHANG) == 0) {
		if ((sig = interrupted) || (late = deadline >= 0 && now_ms() >= deadline)) {
			if (late)
				warn("fsfreeze --run: %s still runs after --max %s: thawing",
				     argv[0], seconds(max));
			kill(pid, sig ? sig : SIGTERM);
			break;
		}
		nanosleep(&nap, NULL);
	}
	if (pid < 0)
		warn("fsfreeze --run: fork:");
	thaw_always();
	if (pid < 0)
		return 255;
	if (sig || late)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	if (WIFEXITED(status) && WEXITSTATUS(status) >= 126 && !sig && !late)
		warn("fsfreeze --run: %s exited %d (%s, or its own status)", argv[0],
		     WEXITSTATUS(status), WEXITSTATUS(status) == 127 ? "not found" : "not runnable");
	return sig ? 128 + sig : late ? 124 : WIFEXITED(status) ? WEXITSTATUS(status) :
	       128 + WTERMSIG(status);
}

const struct option fsfreeze_longs[] = {
	{"run", no_argument, NULL, O_RUN},
	{"max", required_argument, NULL, O_MAX},
	{NULL, 0, NULL, 0}
};

int
cmd_fsfreeze(int argc, char **argv)
{
	struct reply r;
	struct doc d;
	long long n, max = 60000;
	int ch, run = 0;

	while ((ch = cmdopt(argc, argv)) != -1) {
		if (ch == O_RUN)
			run = 1;
		else if (parse_seconds(optarg, &max) < 0 || !max)
			die(EX_USAGE, "fsfreeze: bad --max '%s': expected seconds", optarg);
	}
	argc -= optind;
	argv += optind;
	if (run && !argc)
		return -1;
	if (run) {
		one_target("fsfreeze --run");
		fan_out(0);
		return freeze_run(argv, max);
	}
	if (argc < 1 || max != 60000 || (strcmp(argv[0], "freeze") && argc > 1))
		return -1;
	if (strcmp(argv[0], "status") && strcmp(argv[0], "thaw") && strcmp(argv[0], "freeze"))
		return -1;
	fan_out(0);
	if (!strcmp(argv[0], "status")) {
		simple_call("guest-fsfreeze-status", &r, &d);
		show_text(&d);
		free(d.t);
		return 0;
	}
	if (!strcmp(argv[0], "thaw"))
		n = freeze_call("guest-fsfreeze-thaw", NULL, 0);
	else
		n = freeze_call(argc > 1 ? "guest-fsfreeze-freeze-list" : "guest-fsfreeze-freeze",
		                argv + 1, argc - 1);
	if (opt.json)
		return 0;
	printf("%s %lld filesystem%s\n", argv[0][0] == 'f' ? "froze" : "thawed",
	       n, n == 1 ? "" : "s");
	if (argv[0][0] == 'f' && guest_windows())
		warn("fsfreeze: Windows (VSS) thaws by itself after about 10 s");
	return 0;
}

static void
show_fstrim(const struct doc *d)
{
	struct table t = {NULL, 2, 0, 0};
	char *path, *err, n[32];
	int i, k, v;

	each(d, dget(d, 0, "paths"), i, k) {
		path = dstr(d, dget(d, i, "path"));
		err = dstr(d, dget(d, i, "error"));
		/* A Windows guest's trim says no count. */
		if ((v = dget(d, i, "trimmed")) < 0)
			strcpy(n, "trimmed");
		else
			snprintf(n, sizeof n, "%lld bytes trimmed", dint(d, v, 0));
		table_add(&t, path, *err ? err : n);
		free(path);
		free(err);
	}
	table_print(&t);
}

int
cmd_fstrim(int argc, char **argv)
{
	struct buf req = {0};
	struct reply r;
	struct doc d;
	long long min = 0;
	char *end;

	if (argc > 2)
		return -1;
	if (argc == 2 && ((min = num(argv[1], &end, 10, 1LL << 40)) < 0 || *end))
		die(EX_USAGE, "fstrim: bad minimum '%s': expected bytes", argv[1]);
	fan_out(0);
	req_begin(&req, "guest-fstrim");
	if (argc == 2)
		req_int(&req, "minimum", min);
	req_end(&req, -1);
	call_for(&req, "guest-fstrim", &r, timeout_or(TRIM_TIMEOUT));
	free(req.p);
	if (opt.json) {
		print_result(&r);
		return 0;
	}
	doc_reply(&d, &r, "guest-fstrim", shape_of("guest-fstrim"));
	show_fstrim(&d);
	free(d.t);
	return 0;
}

/* Reads a line into pw, without echo from a terminal after prompt. */
static size_t
read_line(char *pw, size_t size, int tty, const char *prompt, const char *user)
{
	struct termios t, quiet;
	size_t len = 0;

	if (tty && tcgetattr(0, &t) == 0) {
		fprintf(stderr, "%s %s: ", prompt, user);
		quiet = t;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(0, TCSAFLUSH, &quiet);
	}
	while (len < size - 1 && read(0, pw + len, 1) == 1 && pw[len] != '\n')
		len++;
	if (tty) {
		tcsetattr(0, TCSAFLUSH, &t);
		putc('\n', stderr);
	}
	pw[len] = 0;
	if (len && pw[len - 1] == '\r')
		pw[--len] = 0;
	return len;
}

/* Reads a password: stdin's first line, or on a terminal twice, without
 * echo, for a typo not to set a password nobody knows. */
static char *
read_password(const char *user)
{
	static char pw[1024], again[1024];
	int tty = isatty(0);

	if (!read_line(pw, sizeof pw, tty, "Password for", user))
		die(EX_USAGE, "passwd: no password given on stdin");
	if (tty) {
		read_line(again, sizeof again, tty, "Again, for", user);
		if (strcmp(pw, again))
			die(EX_USAGE, "passwd: the two passwords differ: nothing was set");
		memset(again, 0, sizeof again);
	}
	return pw;
}

const struct option passwd_longs[] = {
	{"crypted", no_argument, NULL, 'c'},
	{NULL, 0, NULL, 0}
};

int
cmd_passwd(int argc, char **argv)
{
	struct buf req = {0};
	struct reply r;
	char *pw;
	int ch, crypted = 0;

	while ((ch = cmdopt(argc, argv)) != -1)
		crypted = ch == 'c';
	if (argc - optind != 1)
		return -1;
	if (isatty(0))
		one_target("passwd with a password typed in");
	fan_out(1);
	/* Nobody is asked for a password the agent would not take. */
	if (!enabled("guest-set-user-password"))
		quit(disabled("guest-set-user-password"));
	pw = read_password(argv[optind]);
	req_begin(&req, "guest-set-user-password");
	req_str(&req, "username", argv[optind]);
	req_b64(&req, "password", pw, strlen(pw));
	req_bool(&req, "crypted", crypted);
	req_end(&req, -1);
	memset(pw, 0, strlen(pw));
	call(&req, "guest-set-user-password", &r);
	memset(req.p, 0, req.len);
	free(req.p);
	return 0;
}

static void
show_keys(const struct doc *d)
{
	char *key;
	int i, k;

	each(d, dget(d, 0, "keys"), i, k) {
		text_line("%s", key = dstr(d, i));
		free(key);
	}
}

int
cmd_ssh_keys(int argc, char **argv)
{
	struct buf req = {0}, in = {0};
	struct reply r;
	struct doc d;
	const char *name, *file, *user, **keys = NULL;
	char *line, *next, desc[400];
	int n = 0, fd = 0, reset;

	if (argc < 3)
		return -1;
	if (!strcmp(argv[1], "list") && argc == 3) {
		req_begin(&req, "guest-ssh-get-authorized-keys");
		req_str(&req, "username", argv[2]);
		req_end(&req, -1);
		fan_out(0);
		call_any(&req, "guest-ssh-get-authorized-keys", &r, opt.timeout);
		free(req.p);
		/* A user without the file has no keys. */
		if (r.err >= 0 && strstr(member_str(r.js, &r.tok[r.err], "desc", desc,
		                                    sizeof desc), "No such file"))
			return 0;
		if (r.err >= 0)
			quit(agent_error(&r, "guest-ssh-get-authorized-keys"));
		if (opt.json) {
			print_result(&r);
			return 0;
		}
		doc_reply(&d, &r, "guest-ssh-get-authorized-keys",
		          shape_of("guest-ssh-get-authorized-keys"));
		show_keys(&d);
		free(d.t);
		return 0;
	}
	if (!strcmp(argv[1], "add"))
		name = "guest-ssh-add-authorized-keys";
	else if (!strcmp(argv[1], "remove"))
		name = "guest-ssh-remove-authorized-keys";
	else
		return -1;
	reset = *argv[1] == 'a' && argc > 3 && !strcmp(argv[2], "--reset");
	if (argc > 4 + reset)
		return -1;
	user = argv[2 + reset];
	file = argc == 4 + reset ? argv[3 + reset] : "-";
	if (strcmp(file, "-") && (fd = open(file, O_RDONLY | O_CLOEXEC)) < 0)
		die(EX_IO, "open %s:", file);
	if (read_all(fd, &in, 1 << 20) < 0)
		die(EX_IO, "read %s: too large or unreadable", file);
	buf_add(&in, "", 1);
	for (line = in.p; line; line = next) {
		if ((next = strchr(line, '\n')))
			*next++ = 0;
		line += strspn(line, " \t");
		line[strcspn(line, "\r")] = 0;
		if (!*line || *line == '#')
			continue;
		keys = xrealloc(keys, (size_t)(n + 1) * sizeof *keys);
		keys[n++] = line;
	}
	if (!n)
		die(EX_USAGE, "ssh-keys %s: no keys in %s", argv[1], file);
	req_begin(&req, name);
	req_str(&req, "username", user);
	if (reset)
		req_bool(&req, "reset", 1);
	req_strv(&req, "keys", keys, n);
	req_end(&req, -1);
	fan_out(0);
	call(&req, name, &r);
	free(req.p);
	free(in.p);
	free(keys);
	return 0;
}

const struct option wait_longs[] = {
	{"timeout", required_argument, NULL, 'T'},
	{NULL, 0, NULL, 0}
};

int
cmd_wait(int argc, char **argv)
{
	long long total = 60000;
	int s;

	while (cmdopt(argc, argv) != -1)
		if (parse_seconds(optarg, &total) < 0)
			die(EX_USAGE, "wait: bad -T '%s': expected seconds", optarg);
	if (optind != argc)
		return -1;
	fan_out(0);
	if ((s = wait_agent(total)))
		quit(s);
	return 0;
}
