/* SPDX-License-Identifier: MIT */
/* qga: a client for the QEMU Guest Agent and QEMU's QMP monitor, and a
 * proxy that shares one agent among many clients.
 *
 * One translation unit: this file includes the parts, then holds the
 * table of built-in commands and main. src/qga.h declares what the parts
 * share; `make lint` compiles each alone against it.
 *
 *   src/util.c        errors and exits, signals, escaping, numbers, buffers
 *   src/conn.c        addresses, connecting, reads and writes with deadlines
 *   src/proto.c       replies, the resync, QMP's negotiation, raw requests
 *   src/output.c      printing replies, text lines, tables, base64
 *   src/raw.c         a raw command, and batches
 *   src/many.c        several targets: a child each, their output relayed
 *   src/session.c     the built-ins' session, calls, reply shapes
 *   src/guest.c       what differs on a Windows guest: its OS, its paths,
 *                     the programs qga runs there for its own ends
 *   src/cli.c         global options, each command's own, usage lines
 *   src/cmd-*.c       the built-in commands, a family a file
 *   src/untar.c       get -r's unpacking of the guest's archive
 *   src/undo.c        the one record of what a command left half done
 *   src/serve.c       serve: listeners, clients, the queue, the loop
 *   src/serve-*.c     its agent, its HTTP requests, its /file transfers
 *   src/http.c        HTTP parsers, pure functions of their bytes
 *   src/link.c        a non-blocking link to an agent, for any loop
 *   src/engine.c      many agents at once: a link and its requests each
 *   src/help.c        finding commands, suggestions, help, completion
 *   json.c            the strict JSON tokenizer and stream framer
 *
 * A request flows so: main() takes the global options (cli.c) and finds
 * the command. A built-in's function (cmd_*) or a raw request checks its
 * words, takes its fan-out step (fan_out: with several targets, a child
 * per target from here on, many.c) and asks for the session
 * (need_session), which connects and resynchronises (conn.c, proto.c); each call sends a request and reads its reply with a
 * deadline, checks its shape (session.c) and prints it (output.c). Every
 * exit goes through leave(), which undoes what a command left in the
 * guest and closes the session without harm to the agent. See src/README.
 */
#include "src/qga.h"
#include "src/util.c"
#include "src/conn.c"
#include "src/proto.c"
#include "src/output.c"
#include "src/raw.c"
#include "src/many.c"
#include "src/session.c"
#include "src/guest.c"
#include "src/cli.c"
#include "src/cmd-exec.c"
#include "src/untar.c"
#include "src/undo.c"
#include "src/cmd-file.c"
#include "src/cmd-put.c"
#include "src/cmd-info.c"
#include "src/cmd-admin.c"
#include "src/cmd-ls.c"
#include "src/serve.c"
#include "src/http.c"
#include "src/serve-http.c"
#include "src/serve-file.c"
#include "src/link.c"
#include "src/engine.c"
#include "src/cmd-metrics.c"
#include "src/serve-agent.c"
#include "src/help.c"

const struct cmd cmds[] = {
	{"exec", cmd_exec, NULL, "ie:T:", exec_longs,
	 "[-i] [-e NAME=VALUE]... [-T SECS] [--no-wait] [--merge] [--stream|--no-stream] [--] PROG [ARG]...\n"
	 "Runs PROG in the guest, its output here as it comes, its status as\n"
	 "qga's (128+N for signal N; 255 when qga fails). -i: stdin as its input;\n"
	 "-e: a variable; -T: give up after SECS (124); --no-wait: print the pid;\n"
	 "-j: one JSON object at the end, as Proxmox's qm guest exec prints;\n"
	 "--stream: says why a program cannot be streamed; --no-stream: the\n"
	 "agent's capture (16 MiB), the program left running.\n",
	 "guest-exec,guest-exec-status", 1},
	{"sh", cmd_exec, NULL, "ie:T:", exec_longs,
	 "[EXEC OPTIONS] [--ps] 'COMMAND LINE' [ARG]...\n"
	 "Runs /bin/sh -c 'COMMAND LINE' in the guest (cmd.exe /s /c on Windows),\n"
	 "as exec does; --ps: a PowerShell script (powershell.exe, or pwsh).\n",
	 "guest-exec,guest-exec-status", 1},
	{"exec-status", cmd_exec_status, NULL, NULL, NULL,
	 "PID\n"
	 "Ends as exec would a program started with exec --no-wait: its output,\n"
	 "its status; 124 while it runs.\n",
	 "guest-exec-status", 1},
	{"cat", cmd_cat, NULL, NULL, NULL,
	 "REMOTE...\n"
	 "Writes guest files to stdout.\n",
	 "guest-file-open,guest-file-read,guest-file-close", 0},
	{"get", cmd_get, NULL, "rc", get_longs,
	 "[-c] [--verify] REMOTE [LOCAL|-] | -r REMOTE [LOCAL]\n"
	 "Copies a guest file here, atomically; LOCAL defaults to its name.\n"
	 "-c: continues LOCAL, in place; --verify: checks SHA-256 against the\n"
	 "guest's; -r: a folder, whose archive qga unpacks itself (files, folders\n"
	 "and links only, inside the copy), into LOCAL or LOCAL/NAME, never merged.\n",
	 "guest-file-open,guest-file-read,guest-file-close", 0},
	{"put", cmd_put, NULL, "am:rc", put_longs,
	 "[-a|-c] [--verify] [--inplace] [-m MODE] LOCAL|- REMOTE | -r LOCAL REMOTE\n"
	 "Copies a file, or stdin (-), to the guest, atomically where guest-exec\n"
	 "allows (else, or with --inplace, in place); -m: a new file's mode;\n"
	 "-c, --verify: as get's; -r: a folder, unpacked into REMOTE by tar.\n",
	 "guest-file-open,guest-file-write,guest-file-close", 0},
	{"ping", NULL, NULL, NULL, NULL,
	 "\n"
	 "Exits 0 when the agent answers.\n",
	 "guest-ping", 1},
	{"info", NULL, show_info, NULL, NULL,
	 "\n"
	 "The agent's version and commands, disabled ones marked.\n",
	 "guest-info", 1},
	{"osinfo", NULL, show_osinfo, NULL, NULL,
	 "\n"
	 "The guest's operating system.\n",
	 "guest-get-osinfo", 1},
	{"hostname", NULL, show_hostname, NULL, NULL,
	 "\n"
	 "The guest's host name.\n",
	 "guest-get-host-name", 1},
	{"time", NULL, show_time, NULL, NULL,
	 "\n"
	 "The guest's clock, in UTC.\n",
	 "guest-get-time", 1},
	{"timezone", NULL, show_timezone, NULL, NULL,
	 "\n"
	 "The guest's time zone and its offset.\n",
	 "guest-get-timezone", 1},
	{"users", NULL, show_users, NULL, NULL,
	 "\n"
	 "Users logged in to the guest.\n",
	 "guest-get-users", 1},
	{"ifconfig", NULL, show_ifconfig, NULL, NULL,
	 "\n"
	 "Network interfaces: name, MAC, addresses.\n",
	 "guest-network-get-interfaces", 1},
	{"ip", cmd_ip, NULL, "46aw:", ip_longs,
	 "[-4|-6] [-a] [--wait SECS] [IFACE]\n"
	 "The guest's addresses, one a line, loopback and link-local left out\n"
	 "unless -a; exits 1 when there is none. --wait: until one appears.\n",
	 "guest-network-get-interfaces", 1},
	{"df", NULL, show_df, NULL, NULL,
	 "\n"
	 "Mounted filesystems and their use.\n",
	 "guest-get-fsinfo", 1},
	{"vcpus", NULL, show_vcpus, NULL, NULL,
	 "\n"
	 "Virtual CPUs and their state.\n",
	 "guest-get-vcpus", 1},
	{"disks", NULL, show_disks, NULL, NULL,
	 "\n"
	 "Disks and partitions, with bus, serial and alias.\n",
	 "guest-get-disks", 1},
	{"routes", NULL, show_routes, NULL, NULL,
	 "\n"
	 "The guest's routing table (qemu-ga 9.1 on).\n",
	 "guest-network-get-route", 1},
	{"load", NULL, show_load, NULL, NULL,
	 "\n"
	 "The guest's load average (qemu-ga 10.0 on).\n",
	 "guest-get-load", 1},
	{"cpustats", NULL, NULL, NULL, NULL,
	 "\n"
	 "Time each CPU spent in each state since boot, in ms.\n",
	 "guest-get-cpustats", 2},
	{"diskstats", NULL, NULL, NULL, NULL,
	 "\n"
	 "I/O counts of each disk since boot.\n",
	 "guest-get-diskstats", 2},
	{"devices", NULL, NULL, NULL, NULL,
	 "\n"
	 "Device drivers of a Windows guest: version, date, PCI ids.\n",
	 "guest-get-devices", 2},
	{"shutdown", cmd_power, NULL, NULL, NULL,
	 "\n"
	 "Powers the guest off.\nguest-shutdown sends no reply on success: an\n"
	 "error is waited for up to 3 s, and none means accepted.\n",
	 "guest-shutdown", 0},
	{"reboot", cmd_power, NULL, NULL, NULL,
	 "\n"
	 "Reboots the guest, as shutdown does.\n",
	 "guest-shutdown", 0},
	{"suspend", cmd_power, NULL, NULL, NULL,
	 "ram | disk | hybrid\n"
	 "Suspends the guest, as shutdown does. ram and hybrid need a QEMU that\n"
	 "can wake the guest (QMP query-current-machine: wakeup-suspend-support).\n",
	 "guest-suspend-ram,guest-suspend-disk,guest-suspend-hybrid", 0},
	{"set-time", cmd_set_time, NULL, "", settime_longs,
	 "[--now | SECONDS]\n"
	 "Sets the guest's clock: to this machine's, to SECONDS since 1970, or\n"
	 "with neither from the guest's hardware clock (after a resume).\n",
	 "guest-set-time", 0},
	{"halt", cmd_power, NULL, NULL, NULL,
	 "\n"
	 "Halts the guest, as shutdown does.\n",
	 "guest-shutdown", 0},
	{"fsfreeze", cmd_fsfreeze, NULL, "", fsfreeze_longs,
	 "status | freeze [MOUNTPOINT]... | thaw | --run [--max SECS] CMD [ARG]...\n"
	 "Freezes or thaws the guest's filesystems (freeze waits 3600 s for its\n"
	 "reply, thaw 180 s, unless -t is given). --run: freezes, runs CMD here,\n"
	 "and thaws whatever happens, at the latest after --max (default 60 s).\n",
	 "guest-fsfreeze-status,guest-fsfreeze-freeze,"
	 "guest-fsfreeze-freeze-list,guest-fsfreeze-thaw", 1},
	{"fstrim", cmd_fstrim, NULL, NULL, NULL,
	 "[MINIMUM]\n"
	 "Discards unused blocks in the guest (the reply is waited for 600 s\n"
	 "unless -t is given).\n",
	 "guest-fstrim", 1},
	{"passwd", cmd_passwd, NULL, "c", passwd_longs,
	 "[-c|--crypted] USER\n"
	 "Sets USER's password, read from stdin (prompted for on a terminal).\n",
	 "guest-set-user-password", 0},
	{"ssh-keys", cmd_ssh_keys, NULL, NULL, NULL,
	 "list USER | add [--reset] USER [FILE|-] | remove USER [FILE|-]\n"
	 "Lists, adds or removes USER's authorized ssh keys (one a line);\n"
	 "--reset replaces them all.\n",
	 "guest-ssh-get-authorized-keys,guest-ssh-add-authorized-keys,"
	 "guest-ssh-remove-authorized-keys", 1},
	{"serve", cmd_serve, NULL, "l:q", serve_longs,
	 "--listen ADDR... [--http ADDR]... [--allow CMD,...] [--deny CMD,...] "
	 "[--max-clients N] [--max-request BYTES] [--mode MODE] [--token-file FILE] "
	 "[--log FILE] [-q]\n"
	 "Shares the agent (-s) among clients, their requests pipelined to it:\n"
	 "--listen unix:PATH or tcp:[HOST:]PORT for QGA, --http ADDR for POST /,\n"
	 "POST /exec, GET and PUT /file?path=P, GET /health and GET /metrics;\n"
	 "a POST is application/json (curl --json), a web page's request a 403.\n"
	 "--allow and --deny take names, a built-in's for its own; --log: a JSON\n"
	 "line per request (- for stderr).\n",
	 NULL, 0},
	{"wait", cmd_wait, NULL, "T:", wait_longs,
	 "[-T SECS]\n"
	 "Waits until the agent answers a ping (default 60 s): exits 0, or 4.\n",
	 "guest-ping", 0},
	{"ls", cmd_ls, NULL, "d:", ls_longs,
	 "[-d DIR]...\n"
	 "Finds this host's agent sockets (Proxmox's and libvirt's folders, DIR,\n"
	 "-s, QGA_SOCKET, /tmp/qga.sock) and asks each which agent answers.\n",
	 "guest-info,guest-get-osinfo", 1},
	{"metrics", cmd_metrics, NULL, "l:", metrics_longs,
	 "[--listen ADDR]... [--token-file FILE] [--fs-types-exclude LIST] "
	 "[--mount-points-exclude LIST] [--disks-exclude LIST]\n"
	 "Prints what each guest reports (file systems, load, CPU, disks, network,\n"
	 "users) in Prometheus' text format, asking every agent ls finds, or the\n"
	 "targets given, at once; --listen ADDR serves it at GET /metrics, collected\n"
	 "at each scrape. An exclude is a list: NAME,PREFIX*,...\n",
	 "guest-info,guest-get-host-name,guest-get-osinfo,guest-get-fsinfo,guest-get-load,"
	 "guest-get-cpustats,guest-get-diskstats,guest-network-get-interfaces,"
	 "guest-get-users,guest-get-vcpus", 0},
	{"completion", cmd_completion, NULL, NULL, NULL,
	 "bash | zsh\n"
	 "Prints a completion script for bash or zsh.\n",
	 NULL, 0},
	{"help", cmd_help, NULL, NULL, NULL,
	 "[COMMAND]\n"
	 "Says how to use qga, or one command.\n",
	 NULL, 0},
};
const size_t ncmds = sizeof cmds / sizeof *cmds;


/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static const char usage_text[] =
"usage: qga [OPTIONS] COMMAND [ARG]...   (a built-in command, below)\n"
"       qga [OPTIONS] NAME [KEY=VALUE]...  (any agent or QMP command)\n"
"       qga [OPTIONS] '{\"execute\": ...}'\n"
"       qga [OPTIONS] [-]            (a batch: one request per line of stdin)\n"
"\n"
"A reply is printed as it came. A VALUE is sent as JSON if it parses, else\n"
"as a string; a NAME the agent lacks is tried as guest-NAME.\n"
"\n"
"options: (before or after the command's name)\n"
"  -s, --socket ADDR     unix:PATH, tcp:HOST:PORT, vsock:CID:PORT, serial:PATH,\n"
"                        hvsock:PATH:PORT (Firecracker, Cloud Hypervisor),\n"
"                        pve:VMID (Proxmox) or a path (default: $QGA_SOCKET,\n"
"                        else /tmp/qga.sock); several: the command runs on each\n"
"      --targets FILE    more addresses, one a line;  -P, --parallel N  at once\n"
"      --no-tag          no target before each line;  -q, --quiet  no summary\n"
"  -t, --timeout SECS    bound on connecting and on each reply (default 10;\n"
"                        fsfreeze freeze 3600, thaw 180, fstrim 600)\n"
"  -r, --return          print only the reply's return value\n"
"  -p, --pretty          indent what is printed\n"
"  -j, --json            built-in commands print the agent's reply\n"
"      --qmp             the peer is a QMP monitor (else told by its greeting)\n"
"      --no-sync         skip the 0xFF + guest-sync-delimited resync\n"
"      --max-reply BYTES largest reply accepted, K/M/G allowed (default 80M)\n"
"      --max-size BYTES  the most get or cat takes, folders too (default: none)\n"
"  -h, --help            this text\n"
"  -V, --version         the version\n"
"\n"
"exit status: 0 success; 1 the agent answered with an error; 2 usage;\n"
"3 connection or I/O failure; 4 timeout; 5 protocol error. exec and sh:\n"
"the program's status, 255 when qga fails. Several targets: the highest.\n"
"\n"
"commands (qga help COMMAND says more):\n";

_Noreturn void
usage(int status)
{
	FILE *f = status ? stderr : stdout;
	size_t i;

	fputs(usage_text, f);
	for (i = 0; i < ncmds; i++)
		fprintf(f, "  %-12s %.*s\n", cmds[i].name,
		        (int)strcspn(cmds[i].text + (*cmds[i].text == '\n'), "\n"),
		        cmds[i].text + (*cmds[i].text == '\n'));
	leave(status);
}

/* Runs the built-in command cur, whose name is argv[0]. */
_Noreturn void
run_builtin(int argc, char **argv)
{
	struct reply r;
	struct doc d;
	int s = 0;

	if (!cur->shorts)
		plain_operands(&argc, &argv);
	if (!cur->fn) {
		if (argc != 1) {
			cmd_usage(cur, stderr);
			leave(EX_USAGE);
		}
		fan_in(NULL, cur->uses, 0, cur);
		fan_out(0);
		simple_call(cur->uses, &r, cur->show ? &d : NULL);
		if (cur->json == 2)
			print_value(&r);
		if (cur->show) {
			cur->show(&d);
			free(d.t);
		}
	} else if ((s = cur->fn(argc, argv)) < 0) {
		cmd_usage(cur, stderr);
		leave(EX_USAGE);
	}
	leave(s);
}

/* Takes the global options among a raw command's words, wherever they
 * stand before "--"; leaves argv as the name and its operands. */
static void
raw_options(int *argc, char ***argv)
{
	int ch;

	opterr = 0;
	optind = 0;
	while ((ch = getopt_long(*argc, *argv, ":" GLOBAL_SHORTS, global_longs,
	                         NULL)) != -1) {
		if (ch == '?' || ch == ':')
			badopt(*argc, *argv, GLOBAL_SHORTS, global_longs, ch);
		if (ch == 'h')
			usage(0);
		global_opt(ch, optarg);
	}
	options_done();
	(*argv)[optind - 1] = (*argv)[0];
	*argc -= optind - 1;
	*argv += optind - 1;
}

int
main(int argc, char **argv)
{

	struct buf req = {0};
	char name[128];
	int ch, s, batch, named = 0;

	/* Replies are written in large blocks: a batch's thousands of lines
	 * would otherwise cost a write each kilobyte. Everything that must be
	 * seen early (a batch's replies before it reads more, exec's output,
	 * a message) flushes first. */
	static char out[1 << 16];

	setvbuf(stdout, out, _IOFBF, sizeof out);
	catch_signals();
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:" GLOBAL_SHORTS, global_longs,
	                         NULL)) != -1) {
		if (ch == '?' || ch == ':')
			badopt(argc, argv, GLOBAL_SHORTS, global_longs, ch);
		if (ch == 'h')
			usage(0);
		global_opt(ch, optarg);
	}
	argc -= optind;
	argv += optind;
	if (argc > 0 && (cur = find_cmd(argv[0])))
		run_builtin(argc, argv);
	if (argc > 0)
		raw_options(&argc, &argv);
	else
		options_done();

	batch = argc == 0 || (argc == 1 && !strcmp(argv[0], "-"));
	if (argc == 0 && isatty(0))
		usage(EX_USAGE);
	if (!batch) {
		if (argv[0][0] == '{') {
			if (argc > 1)
				die(EX_USAGE, "nothing may follow a JSON request");
			if ((s = check_request(argv[0], strlen(argv[0]), name,
			                       sizeof name)))
				quit(s);
			buf_str(&req, argv[0]);
		} else if ((s = build_request(&req, argv[0], argv + 1, argc - 1)))
			quit(s);
		else {
			copy(name, sizeof name, argv[0]);
			named = 1;
		}
	}

	if (!batch)
		fan_in(&req, name, named, NULL);
	fan_out(batch);
	need_session();
	s = batch ? run_batch(&sess) : raw_request(&sess, &req, name, named, 0);
	free(req.p);
	leave(s);
}
