/* SPDX-License-Identifier: MIT */
/* fakeagent: a guest agent that misbehaves on purpose, for what the real
 * one never does. It listens on a unix socket and serves one connection
 * at a time in the way the scenario names:
 *
 *   ok        answers like the real agent, and carries out what the
 *             tests may not do to the real one: shutdown, freeze, trim,
 *             passwords and keys, checking the arguments it gets
 *   poweroff  as ok, but a shutdown closes the connection at once
 *   slow      as ok, but guest-get-time takes 2 s
 *   split     answers one byte at a time
 *   nonl      answers without the final newline
 *   stale     before the sync reply: old replies, half a reply, a reply
 *             to another client's sync, parse errors
 *   stall     reads and never answers
 *   deaf      answers the sync, then reads nothing more
 *   garbage   answers commands with bytes that are not JSON
 *   invalid   answers commands with a framed value that is not JSON
 *   close     closes in the middle of a reply
 *   big       answers commands with an endless string
 *   deep      answers commands nested 2000 deep
 *   qmp       greets like QMP and sends 5000 events before each reply
 *   qmpnocap  greets like QMP and refuses qmp_capabilities
 *   windows   a replay of a Windows guest's reply shapes, as QEMU's schema
 *             and qga/commands-win32.c document them (no Windows agent
 *             runs here); each request is appended to SOCKET.log
 *   flood     after the sync, 32 MB of events, each write ending in the
 *             middle of one, then as ok
 *   greet     answers the sync with a QMP greeting, as a QMP monitor
 *             greets, and nothing else
 *   liar      answers commands with an error whose desc holds newlines
 *             and what would pass for lines of serve's log
 *   lateopen  a guest whose program ends between qga's first look for its
 *             output file, which is not there yet, and the look at its
 *             status; the file is there at the next look
 *   replies FILE
 *             answers each command with the reply FILE gives it, a line
 *             "COMMAND<TAB>REPLY" (the first for that command; FILE is
 *             read again for each connection), and any other with
 *             {"return": {}}: a test crafts hostile replies; each
 *             request is appended to SOCKET.log
 *
 * A request's top-level id comes back in each of its replies, as the
 * real agent echoes it.
 *
 * usage: fakeagent SOCKET SCENARIO [FILE]
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../json.h"

static const char *scenario;
static int cfd;
static FILE *reqlog;
/* The id of the request being answered, which each reply echoes, as the
 * agent does: the request's own text, or empty. */
static char req_id[64];
/* replies: the lines of FILE, "COMMAND\tREPLY". */
static char **lines;
static size_t nlines;

static int
is(const char *s)
{
	return !strcmp(scenario, s);
}

static int
qmp(void)
{
	return is("qmp") || is("qmpnocap");
}

static void
out(const char *s, size_t n)
{
	struct timespec pause = {0, 200000};
	char line[70000];
	ssize_t w;
	size_t step, e = n > 2 && s[n - 2] == '\r' ? 3 : 2;

	/* A reply echoes the id, a parse error (of no request) does not. */
	if (*req_id && n >= e && n + sizeof req_id + 8 < sizeof line && s[n - e] == '}' &&
	    (!strncmp(s + (*s == '\xff'), "{\"return\"", 9) ||
	     (!strncmp(s, "{\"error\"", 8) && !strstr(s, "JSON parse error")))) {
		n = (size_t)snprintf(line, sizeof line, "%.*s, \"id\": %s%s", (int)(n - e + 1) - 1,
		                     s, req_id, s + n - e);
		s = line;
	}
	step = is("split") ? 1 : n;

	while (n) {
		w = write(cfd, s, step < n ? step : n);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
		if (is("split"))
			nanosleep(&pause, NULL);
	}
}

static void
outs(const char *s)
{
	out(s, strlen(s));
}

static __attribute__((format(printf, 1, 2))) void
outf(const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	outs(line);
}

static const char parse_error[] =
	"{\"error\": {\"class\": \"GenericError\", \"desc\": "
	"\"JSON parse error, stray '\\uFFFD'\"}}\n";

/* Whether the value of key in args is the string s. */
static int
arg_is(const char *js, const struct json_tok *t, int args, const char *key,
       const char *s)
{
	int v = args >= 0 ? json_get(js, t, args, key) : -1;

	return v >= 0 && json_eq(js, &t[v], s);
}

/* The commands the real agent must not run here, done as a guest would. */
static int
privileged(const char *js, const struct json_tok *t, int name, int args)
{
	long long min;
	int v;

	if (json_eq(js, &t[name], "guest-shutdown")) {
		/* No reply on success, as the real agent. */
		return !is("poweroff");
	} else if (json_eq(js, &t[name], "guest-fsfreeze-freeze") ||
	           json_eq(js, &t[name], "guest-fsfreeze-thaw")) {
		outs("{\"return\": 2}\n");
	} else if (json_eq(js, &t[name], "guest-fsfreeze-freeze-list")) {
		v = args >= 0 ? json_get(js, t, args, "mountpoints") : -1;
		outf("{\"return\": %lld}\n", v >= 0 ? (long long)t[v].size : -1);
	} else if (json_eq(js, &t[name], "guest-fsfreeze-status")) {
		outs("{\"return\": \"frozen\"}\n");
	} else if (json_eq(js, &t[name], "guest-fstrim")) {
		v = args >= 0 ? json_get(js, t, args, "minimum") : -1;
		if (v < 0 || json_int(js, &t[v], &min) < 0)
			min = 0;
		outf("{\"return\": {\"paths\": [{\"path\": \"/\", \"trimmed\": 1024,"
		     " \"minimum\": %lld}, {\"path\": \"/boot\", \"error\": "
		     "\"Operation not supported\"}]}}\n",
		     min);
	} else if (json_eq(js, &t[name], "guest-set-user-password")) {
		/* base64 of "s3cret" */
		if (arg_is(js, t, args, "username", "alice") &&
		    arg_is(js, t, args, "password", "czNjcmV0"))
			outs("{\"return\": {}}\n");
		else
			outs("{\"error\": {\"class\": \"GenericError\", \"desc\": "
			     "\"unexpected user or password\"}}\n");
	} else if (json_eq(js, &t[name], "guest-ssh-add-authorized-keys") ||
	           json_eq(js, &t[name], "guest-ssh-remove-authorized-keys")) {
		v = args >= 0 ? json_get(js, t, args, "keys") : -1;
		if (arg_is(js, t, args, "username", "bob") &&
		    ((min = json_get(js, t, args, "reset")) < 0 || t[min].type != JSON_TRUE))
			outs("{\"error\": {\"class\": \"GenericError\", \"desc\": "
			     "\"reset expected\"}}\n");
		else if (v >= 0 && t[v].size == 2 && json_eq(js, &t[v + 1], "ssh-ed25519 AAAA a@b"))
			outs("{\"return\": {}}\n");
		else
			outs("{\"error\": {\"class\": \"GenericError\", \"desc\": "
			     "\"unexpected keys\"}}\n");
	} else if (json_eq(js, &t[name], "guest-info")) {
		outs("{\"return\": {\"version\": \"fake\", \"supported_commands\": ["
		     "{\"enabled\": true, \"name\": \"guest-set-user-password\", "
		     "\"success-response\": true}]}}\n");
	} else if (json_eq(js, &t[name], "guest-ssh-get-authorized-keys")) {
		outs("{\"return\": {\"keys\": [\"ssh-ed25519 AAAA a@b\", "
		     "\"ssh-rsa BBBB c@d\"]}}\n");
	} else
		outs("{\"return\": {}}\n");
	return 1;
}

/* A Windows guest's replies that depend on nothing but the command, in
 * the shapes QEMU's schema and qga/commands-win32.c document. */
static const char *const windows_replies[][2] = {
	{"guest-get-osinfo",
	 "{\"return\": {\"name\": \"Microsoft Windows\", \"kernel-release\": "
	 "\"20348\", \"version\": \"Microsoft Windows Server 2022\", "
	 "\"variant\": \"server\", \"pretty-name\": \"Windows Server 2022 "
	 "Standard\", \"version-id\": \"2022\", \"variant-id\": \"server\", "
	 "\"kernel-version\": \"10.0\", \"machine\": \"x86_64\", "
	 "\"id\": \"mswindows\"}}\n"},
	{"guest-fstrim",
	 "{\"return\": {\"paths\": [{\"path\": \"C:\\\\\"}, {\"path\": "
	 "\"D:\\\\\", \"error\": \"The volume does not support trim\"}]}}\n"},
	{"guest-fsfreeze-freeze",
	 "{\"return\": 1}\n"},
	{"guest-get-devices",
	 "{\"return\": [{\"driver-date\": 1581465600000000000, \"driver-name\": "
	 "\"VirtIO Ethernet Adapter\", \"id\": {\"device-id\": 4096, \"type\": "
	 "\"pci\", \"vendor-id\": 6900}, \"driver-version\": "
	 "\"100.85.104.20800\"}]}\n"},
	{"guest-get-disks",
	 "{\"return\": [{\"name\": \"\\\\\\\\.\\\\PhysicalDrive0\", \"partition\": false, "
	 "\"address\": {\"serial\": \"QM00001\", \"bus-type\": \"sata\", \"bus\": 0, "
	 "\"unit\": 0, \"pci-controller\": {\"bus\": 0, \"slot\": 31, \"domain\": 0, "
	 "\"function\": 2}, \"target\": 0}}]}\n"},
	{"guest-get-users",
	 "{\"return\": [{\"user\": \"Administrator\", \"domain\": \"WIN-QGA\", "
	 "\"login-time\": 1700000000.25}]}\n"},
	{"guest-info",
	 "{\"return\": {\"version\": \"10.0.0\", \"supported_commands\": ["
	 "{\"enabled\": true, \"name\": \"guest-exec\", \"success-response\": true},"
	 "{\"enabled\": true, \"name\": \"guest-exec-status\", "
	 "\"success-response\": true},"
	 "{\"enabled\": true, \"name\": \"guest-file-open\", \"success-response\": true},"
	 "{\"enabled\": true, \"name\": \"guest-file-read\", \"success-response\": true}]}}\n"},
	{"guest-file-read",
	 "{\"return\": {\"count\": 6, \"buf-b64\": \"aGVsbG8K\", \"eof\": true}}\n"},
};

/* Whether the request js[0..len) holds s: the buffer goes on past it. */
static int
has(const char *js, size_t len, const char *s)
{
	size_t i, n = strlen(s);

	for (i = 0; i + n <= len; i++)
		if (!memcmp(js + i, s, n))
			return 1;
	return 0;
}

/* What a Windows guest answers. guest-exec's pid tells what its status
 * will be: the command line decides it. */
static void
windows(const char *js, size_t len, const struct json_tok *t, int name, int args)
{
	static long long written;
	long long pid = 0;
	size_t i;
	int v;

	fprintf(reqlog, "%.*s\n", (int)len, js);
	fflush(reqlog);
	for (i = 0; i < sizeof windows_replies / sizeof *windows_replies; i++)
		if (json_eq(js, &t[name], windows_replies[i][0])) {
			outs(windows_replies[i][1]);
			return;
		}
	if (json_eq(js, &t[name], "guest-exec")) {
		if (arg_is(js, t, args, "path", "/bin/sh")) {
			outs("{\"error\": {\"class\": \"GenericError\", \"desc\": "
			     "\"Failed to execute child process \\u201c/bin/sh\\u201d "
			     "(No such file or directory)\"}}\n");
			return;
		}
		if (arg_is(js, t, args, "capture-output", "merged")) {
			outs("{\"error\": {\"class\": \"GenericError\", \"desc\": "
			     "\"Parameter 'capture-output' does not accept value "
			     "'merged'\"}}\n");
			return;
		}
		/* Get-FileHash, as --verify sends it in UTF-16LE base64. */
		pid = has(js, len, "exit 256") ? 1002 : has(js, len, "crash") ? 1003 :
		      has(js, len, "unsigned") ? 1004 :
		      has(js, len, "KABHAGUAdAAtAEYAaQBsAGUASABhAHMAaAAgAC0A") ? 1005 : 1001;
		outf("{\"return\": {\"pid\": %lld}}\n", pid);
	} else if (json_eq(js, &t[name], "guest-exec-status")) {
		v = args >= 0 ? json_get(js, t, args, "pid") : -1;
		if (v >= 0)
			json_int(js, &t[v], &pid);
		/* An exit code is 32 bits wide; an NTSTATUS of 0xC0000000 and up
		 * comes as the signal, a gint: negative. */
		outs(pid == 1002 ? "{\"return\": {\"exitcode\": 256, \"exited\": true}}\n" :
		     pid == 1003 ? "{\"return\": {\"signal\": -1073741819, \"exited\": true}}\n" :
		     pid == 1004 ? "{\"return\": {\"signal\": 3221225477, \"exited\": true}}\n" :
		     pid == 1005 ? "{\"return\": {\"exitcode\": 0, \"out-data\": \"NTg5MUI1QjUyMkQ1"
		     "REYwODZEMEZGMEIxMTBGQkQ5RDIxQkI0RkM3MTYzQUYzNEQwODI4NkEyRTg0NkY2QkUwMw0K\", "
		     "\"exited\": true}}\n" :
		     "{\"return\": {\"exitcode\": 0, \"out-data\": \"aGkNCg==\", "
		     "\"out-truncated\": false, \"exited\": true}}\n");
	} else if (json_eq(js, &t[name], "guest-file-open")) {
		written = 0;
		outs("{\"return\": 1000}\n");
	} else if (json_eq(js, &t[name], "guest-file-write")) {
		v = args >= 0 ? json_get(js, t, args, "buf-b64") : -1;
		pid = v >= 0 ? (long long)(t[v].end - t[v].start) / 4 * 3 -
		      (js[t[v].end - 1] == '=') - (js[t[v].end - 2] == '=') : 0;
		written += pid;
		outf("{\"return\": {\"count\": %lld, \"eof\": false}}\n", pid);
	} else if (json_eq(js, &t[name], "guest-file-seek"))
		outf("{\"return\": {\"position\": %lld, \"eof\": false}}\n", written);
	else
		outs("{\"return\": {}}\n");
}

/* lateopen: the first guest-file-open finds nothing, the ones after it
 * find the file; every program has ended at once. */
static void
lateopen(const char *js, const struct json_tok *t, int name)
{
	static int opened;
	size_t i;

	if (json_eq(js, &t[name], "guest-info"))
		for (i = 0; i < sizeof windows_replies / sizeof *windows_replies; i++)
			if (!strcmp(windows_replies[i][0], "guest-info"))
				outs(windows_replies[i][1]);
	if (json_eq(js, &t[name], "guest-exec"))
		outs("{\"return\": {\"pid\": 42}}\n");
	else if (json_eq(js, &t[name], "guest-exec-status"))
		outs("{\"return\": {\"exitcode\": 0, \"exited\": true}}\n");
	else if (json_eq(js, &t[name], "guest-file-open") && !opened++)
		outs("{\"error\": {\"class\": \"GenericError\", \"desc\": \"failed to "
		     "open file: No such file or directory\"}}\n");
	else if (json_eq(js, &t[name], "guest-file-open"))
		outs("{\"return\": 1000}\n");
	else if (json_eq(js, &t[name], "guest-file-read"))
		outs("{\"return\": {\"count\": 6, \"buf-b64\": \"aGVsbG8K\", \"eof\": true}}\n");
	else if (!json_eq(js, &t[name], "guest-info"))
		outs("{\"return\": {}}\n");
}

/* 32 MB of events in writes that each end within one, so that a reader
 * is never between values when it has read all there is; the last ends
 * whole. */
static void
flood(void)
{
	static const char head[] = "ent\": \"FLOOD\", \"data\": \"", tail[] = "\"}{\"ev";
	static char b[4096];
	int k;

	memset(b, 'x', sizeof b);
	memcpy(b, head, sizeof head - 1);
	memcpy(b + sizeof b - (sizeof tail - 1), tail, sizeof tail - 1);
	outs("{\"ev");
	for (k = 0; k < 8192; k++)
		if (write(cfd, b, sizeof b) <= 0)
			return;
	outs("ent\": \"FLOOD\"}\n");
}

/* replies: the reply FILE gives the command at t[name]. */
static void
replies(const char *js, size_t len, const struct json_tok *t, int name)
{
	size_t i, n;

	fprintf(reqlog, "%.*s\n", (int)len, js);
	fflush(reqlog);
	for (i = 0; i < nlines; i++) {
		n = strcspn(lines[i], "\t");
		if (lines[i][n] && (size_t)(t[name].end - t[name].start) == n &&
		    !memcmp(js + t[name].start, lines[i], n)) {
			outs(lines[i] + n + 1);
			return;
		}
	}
	outs("{\"return\": {}}\n");
}

/* Reads FILE's lines, each kept with its newline, again for each
 * connection: a test changes the replies between two runs of qga. */
static void
read_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;

	while (nlines)
		free(lines[--nlines]);
	if (!f) {
		perror(path);
		exit(1);
	}
	while (getline(&line, &cap, f) > 0) {
		lines = realloc(lines, (nlines + 1) * sizeof *lines);
		lines[nlines++] = line;
		line = NULL;
		cap = 0;
	}
	fclose(f);
}

/* Answers one request; returns 0 to end the connection. */
static int
answer(const char *js, size_t len, int after_ff)
{
	struct json_parser p;
	struct json_tok t[64];
	long long id = 0;
	int name, args, v;
	const char *eol = qmp() ? "\r\n" : "\n";
	char buf[65536];

	json_init(&p);
	p.keep = 4;
	if (json_parse(&p, js, len, t, 64) < 0 ||
	    (name = json_get(js, t, 0, "execute")) < 0)
		return 1;
	req_id[0] = 0;
	if ((v = json_get(js, t, 0, "id")) >= 0 && t[v].type == JSON_NUMBER)
		snprintf(req_id, sizeof req_id, "%.*s", (int)(t[v].end - t[v].start), js + t[v].start);
	args = json_get(js, t, 0, "arguments");
	if (args >= 0 && (v = json_get(js, t, args, "id")) >= 0)
		json_int(js, &t[v], &id);

	if (qmp()) {
		if (json_eq(js, &t[name], "qmp_capabilities") && is("qmpnocap")) {
			outs("{\"error\": {\"class\": \"GenericError\", \"desc\": "
			     "\"Capabilities negotiation is already complete, command "
			     "ignored\"}}\r\n");
			return 1;
		}
		if (json_eq(js, &t[name], "qmp_capabilities")) {
			outs("{\"return\": {}}\r\n");
			return 1;
		}
		if (json_eq(js, &t[name], "guest-sync-delimited")) {
			outs("{\"error\": {\"class\": \"GenericError\", \"desc\": "
			     "\"JSON parse error, stray '\\uFFFD'\"}}\r\n");
			outf("{\"id\": %lld, \"error\": {\"class\": \"CommandNotFound\","
			     " \"desc\": \"Expecting capabilities negotiation with "
			     "'qmp_capabilities'\"}}\r\n", id);
			return 1;
		}
		for (v = 0; v < 5000; v++)
			outf("{\"timestamp\": {\"seconds\": %lld, \"microseconds\": 1},"
			     " \"event\": \"STOP\"}\r\n", (long long)v);
		outs("{\"return\": {\"events\": \"skipped\"}}\r\n");
		return 1;
	}
	if (is("stall"))
		return 1;
	if (json_eq(js, &t[name], "guest-sync-delimited")) {
		if (is("stale")) {
			outs("{\"return\": {}, \"id\": \"old\"}\n");
			outs("rn\": {\"host-name\": \"x\"}}\n");
			outs("{\"return\": [1, 2, ");
			outs("\xff{\"return\": 12345}\n");
			outs(parse_error);
			outs(parse_error);
			outs("\xff{\"return\": 67890}\n");
		}
		if (is("greet")) {
			outs("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, "
			     "\"minor\": 0, \"major\": 9}, \"package\": \"\"}, "
			     "\"capabilities\": []}}\n");
			return 1;
		}
		if (after_ff)
			outs(parse_error);
		outf("\xff{\"return\": %lld}\n", id);
		if (is("flood"))
			flood();
		if (is("deaf"))
			for (;;)
				pause();
		return 1;
	}
	/* slow: guest-get-time takes 2 s, as a busy guest's command may. */
	if (is("slow") && json_eq(js, &t[name], "guest-get-time")) {
		nanosleep(&(struct timespec){2, 0}, NULL);
		outs("{\"return\": 1700000000000000000}\n");
		return 1;
	}
	if (is("liar")) {
		outs("{\"error\": {\"class\": \"GenericError\", \"desc\": \"boom\\n"
		     "qga serve: agent forged: connected\\r\\n{\\\"time\\\": \\\"forged\\\"}\\n\"}}\n");
		return 1;
	}
	if (is("ok") || is("poweroff") || is("slow") || is("flood"))
		return privileged(js, t, name, args);
	if (is("windows")) {
		windows(js, len, t, name, args);
		return 1;
	}
	if (is("replies")) {
		replies(js, len, t, name);
		return 1;
	}
	if (is("lateopen")) {
		lateopen(js, t, name);
		return 1;
	}
	if (is("garbage")) {
		outs("this is not JSON\n");
	} else if (is("invalid")) {
		outs("{\"return\": {\"a\": 1,}}\n");
	} else if (is("close")) {
		outs("{\"return\": {\"host-name\": \"vm");
		return 0;
	} else if (is("big")) {
		memset(buf, 'x', sizeof buf);
		outs("{\"return\": \"");
		while (write(cfd, buf, sizeof buf) > 0)
			;
		return 0;
	} else if (is("deep")) {
		memset(buf, '[', 2000);
		strcpy(buf + 2000, "1");
		memset(buf + 2001, ']', 2000);
		strcpy(buf + 4001, "\n");
		outs("{\"return\": ");
		outs(buf);
		outs("}\n");
	} else {
		outs("{\"return\": {}}");
		if (!is("nonl"))
			outs(eol);
	}
	return 1;
}

static void
serve(void)
{
	static char buf[1 << 20];
	struct json_scan sc;
	size_t len = 0;
	ssize_t n;
	int r, after_ff = 0;

	if (qmp())
		outs("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0,"
		     " \"major\": 9}, \"package\": \"fake\"}, \"capabilities\":"
		     " [\"oob\"]}}\r\n");
	json_scan_init(&sc, 0);
	while ((n = read(cfd, buf + len, sizeof buf - len)) > 0) {
		len += (size_t)n;
		while ((r = json_scan(&sc, buf, len)) != JSON_SCAN_MORE) {
			if (r == JSON_SCAN_SENTINEL)
				after_ff = 1;
			else if (r == JSON_SCAN_VALUE) {
				if (!answer(buf + sc.start, sc.pos - sc.start, after_ff))
					return;
				after_ff = 0;
			} else
				sc.pos++;
		}
		/* What was answered goes, so that requests that never end a
		 * read between two (a proxy's, pipelined) cannot fill buf. */
		if (json_scan_between(&sc)) {
			len = 0;
			json_scan_init(&sc, 0);
		} else if (sc.start > 0) {
			memmove(buf, buf + sc.start, len - sc.start);
			len -= sc.start;
			sc.pos -= sc.start;
			sc.start = 0;
		}
	}
}

int
main(int argc, char **argv)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int lfd;

	if (argc < 3 || argc != 3 + !strcmp(argv[2], "replies") ||
	    strlen(argv[1]) >= sizeof sun.sun_path) {
		fputs("usage: fakeagent SOCKET SCENARIO [FILE]\n", stderr);
		return 2;
	}
	scenario = argv[2];
	if (is("windows") || is("replies")) {
		char log[sizeof sun.sun_path + 8];
		snprintf(log, sizeof log, "%s.log", argv[1]);
		if (!(reqlog = fopen(log, "w"))) {
			perror(log);
			return 1;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	strcpy(sun.sun_path, argv[1]);
	unlink(argv[1]);
	if ((lfd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sun, sizeof sun) < 0 ||
	    listen(lfd, 8) < 0) {
		perror(argv[1]);
		return 1;
	}
	for (;;) {
		if ((cfd = accept(lfd, NULL, NULL)) < 0)
			continue;
		if (is("replies"))
			read_lines(argv[3]);
		serve();
		close(cfd);
	}
}
