/* SPDX-License-Identifier: MIT */
/* The command line: the global options, each built-in command's own,
 * and their usage lines. */
#include "qga.h"

const struct option global_longs[] = {
	{"socket", required_argument, NULL, 's'},
	{"timeout", required_argument, NULL, 't'},
	{"return", no_argument, NULL, 'r'},
	{"pretty", no_argument, NULL, 'p'},
	{"json", no_argument, NULL, 'j'},
	{"qmp", no_argument, NULL, O_QMP},
	{"no-sync", no_argument, NULL, O_NOSYNC},
	{"max-reply", required_argument, NULL, O_MAXREPLY},
	{"max-size", required_argument, NULL, O_MAXSIZE},
	{"targets", required_argument, NULL, O_TARGETS},
	{"parallel", required_argument, NULL, 'P'},
	{"no-tag", no_argument, NULL, O_NOTAG},
	{"quiet", no_argument, NULL, 'q'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0}
};

const struct cmd *cur; /* the built-in command being run */

void
cmd_usage(const struct cmd *c, FILE *f)
{
	fprintf(f, "usage: qga [OPTIONS] %s%s%.*s\n", c->name, *c->text != '\n' ? " " : "",
	        (int)strcspn(c->text, "\n"), c->text);
}

/* The usage line, the help, and the agent's commands the command sends
 * (which serve's --allow and --deny take its name for). */
void
cmd_help_text(const struct cmd *c)
{
	const char *u = c->uses;

	cmd_usage(c, stdout);
	printf("\n%s", strchr(c->text, '\n') + 1);
	if (u)
		printf("It sends %s.\n", u);
}

/* Takes a global option; returns 0 if ch is not one. */
int
global_opt(int ch, const char *arg)
{
	char *end;

	switch (ch) {
	case 's':
		add_target(arg);
		break;
	case O_TARGETS:
		read_targets(arg);
		break;
	case 'P':
		if ((many.max = (int)num(arg, &end, 10, 100000)) < 1 || *end)
			die(EX_USAGE, "bad -P '%s': expected a number of targets", arg);
		break;
	case O_NOTAG: many.notag = 1; break;
	case 'q': many.quiet = 1; break;
	case 't':
		if (parse_seconds(arg, &opt.timeout) < 0)
			die(EX_USAGE, "bad timeout '%s': expected seconds", arg);
		opt.timeout_set = 1;
		break;
	case 'r': opt.ret = 1; break;
	case 'p': opt.pretty = many.json = 1; break;
	case 'j': opt.json = many.json = 1; break;
	case O_QMP: opt.qmp = 1; break;
	case O_NOSYNC: opt.nosync = 1; break;
	case 'V':
		puts("qga " VERSION);
		leave(0);
	case O_MAXREPLY:
		if (parse_size(arg, &opt.maxreply) < 0 || opt.maxreply < 64)
			die(EX_USAGE, "bad --max-reply '%s': expected bytes "
			    "(at least 64)", arg);
		break;
	case O_MAXSIZE:
		if (parse_bytes(arg, &opt.maxsize) < 0 || !opt.maxsize)
			die(EX_USAGE, "bad --max-size '%s': expected bytes", arg);
		break;
	default:
		return 0;
	}
	return 1;
}

static int
known_opt(const char *shorts, const struct option *lo, int ch)
{
	if (ch > 0 && ch < 256 && ch != ':' && ch != '+' && strchr(shorts, ch))
		return 1;
	for (; lo->name; lo++)
		if (lo->val == ch)
			return 1;
	return 0;
}

/* Says what getopt_long refused (ch is '?' or ':') and ends qga with the
 * usage line of the command, or of qga. A missing value can only be the
 * last word's; a long option's error leaves optind just past its word. */
_Noreturn void
badopt(int argc, char **argv, const char *shorts, const struct option *lo, int ch)
{
	const char *w = ch == ':' ? argv[argc - 1] : argv[optind - 1];
	int islong = !strncmp(w, "--", 2) &&
	             (ch == ':' || !optopt || known_opt(shorts, lo, optopt));
	char what[64];

	if (islong)
		snprintf(what, sizeof what, "%.*s", (int)strcspn(w, "="), w);
	else
		snprintf(what, sizeof what, "-%c", optopt);
	fflush(stdout);
	fprintf(stderr, "qga: %s%s", cur ? cur->name : "", cur ? ": " : "");
	fprintf(stderr, ch == ':' ? "option '%s' needs a value\n" : islong && optopt ?
	        "option '%s' takes no value\n" : "unknown option '%s'\n", what);
	if (cur)
		cmd_usage(cur, stderr);
	else
		fputs("usage: qga [OPTIONS] COMMAND [ARG]...  (qga --help says more)\n",
		      stderr);
	leave(EX_USAGE);
}

/* Checks what the options ask for, once they are all read. */
void
options_done(void)
{
	if (many.n)
		opt.addr = many.addr[0];
	if (!opt.addr && !(opt.addr = getenv("QGA_SOCKET"))) {
		opt.addr = "/tmp/qga.sock";
		opt.addr_default = 1;
	}
	if (!cur || !(opt.ret || opt.pretty || opt.json))
		return;
	if (!cur->json) {
		fprintf(stderr, "qga: %s: -r, -p and -j apply to the agent's JSON "
		        "reply, which %s does not print\n", cur->name, cur->name);
		cmd_usage(cur, stderr);
		leave(EX_USAGE);
	}
	opt.json = 1; /* -r and -p show the reply, so they ask for it */
}

/* The next option of the command cur, whose name is argv[0]: one of its
 * own, returned, or a global one, taken here, up to the first operand or
 * "--". Returns -1 after the last; a bad option ends qga. */
int
cmdopt(int argc, char **argv)
{
	static struct option lo[32];
	static char so[64];
	static const struct cmd *ready;
	int ch, n = 0, k;

	if (ready != cur) {
		ready = cur;
		snprintf(so, sizeof so, "+:%s" GLOBAL_SHORTS, cur->shorts ? cur->shorts : "");
		for (k = 0; cur->longs && cur->longs[k].name; k++)
			lo[n++] = cur->longs[k];
		for (k = 0; global_longs[k].name; k++)
			lo[n++] = global_longs[k];
		memset(&lo[n], 0, sizeof lo[n]);
		opterr = 0;
		optind = 0;
	}
	while ((ch = getopt_long(argc, argv, so, lo, NULL)) != -1) {
		if (ch == '?' || ch == ':')
			badopt(argc, argv, so, lo, ch);
		if (ch == 'h') {
			cmd_help_text(cur);
			leave(0);
		}
		/* A command's own letter wins over the global one (get -r). */
		if ((ch < 256 && cur->shorts && strchr(cur->shorts, ch)) || !global_opt(ch, optarg))
			return ch;
	}
	options_done();
	return -1;
}

/* For a command without options of its own: takes the global ones, then
 * leaves argv as the command's name followed by its operands. */
void
plain_operands(int *argc, char ***argv)
{
	cmdopt(*argc, *argv);
	(*argv)[optind - 1] = (*argv)[0];
	*argc -= optind - 1;
	*argv += optind - 1;
}
