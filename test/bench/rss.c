/* SPDX-License-Identifier: MIT */
/* rss: runs a command and prints its peak resident set (VmHWM) in KiB,
 * read from /proc as the command exits, stopped there by ptrace. A
 * child's ru_maxrss would also count what the parent held before exec,
 * and some kernels leave it at 0 for tiny processes. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	char path[64], line[256];
	long hwm = -1;
	int st;
	pid_t pid;
	FILE *f;

	if (argc < 2)
		return 2;
	if ((pid = fork()) == 0) {
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		execv(argv[1], argv + 1);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACEEXIT | PTRACE_O_TRACEEXEC);
	ptrace(PTRACE_CONT, pid, 0, 0);
	while (waitpid(pid, &st, 0) == pid && WIFSTOPPED(st)) {
		if (st >> 8 == (SIGTRAP | PTRACE_EVENT_EXIT << 8)) {
			snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
			if ((f = fopen(path, "r"))) {
				while (fgets(line, sizeof line, f))
					if (!strncmp(line, "VmHWM:", 6))
						sscanf(line + 6, "%ld", &hwm);
				fclose(f);
			}
		}
		ptrace(PTRACE_CONT, pid, 0,
		       WSTOPSIG(st) == SIGTRAP || WSTOPSIG(st) == SIGSTOP ? 0 : WSTOPSIG(st));
	}
	fprintf(stderr, "%ld\n", hwm);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
