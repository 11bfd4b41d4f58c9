/* SPDX-License-Identifier: MIT */
/* The one record of what a command has left half done, here or in the
 * guest, and its undoing, which leave() runs whatever ends qga. */
#include "qga.h"

static char guest_tmp[PATH_MAX], local_tmp[PATH_MAX];

struct undo undo = {0, {-1, -1}, -1, -1, "", guest_tmp, local_tmp};

const char *const stream_rm[] = {"/bin/sh", "-c", "rm -f -- \"$1.1\" \"$1.2\"",
                                 "sh", undo.stream, NULL};

/* Undoes what undo holds, as leave() does once a command armed it. */
void
undo_run(void)
{
	char pid[24];

	if (undo.untar > 0) {
		kill(undo.untar, SIGKILL);
		reap(undo.untar);
		undo.untar = -1;
	}
	if (undo.local_tmp[0])
		rm_tree(AT_FDCWD, undo.local_tmp);
	/* The channel is brought back even after a signal, to undo. */
	sess.dirty = 1;
	interrupted = 0;
	file_close(1);
	/* A streamed program is stopped before its files go, which it
	 * could otherwise make again as it starts. */
	if (undo.stream_pid >= 0) {
		snprintf(pid, sizeof pid, "%lld", undo.stream_pid);
		guest_run((const char *[]){"/bin/sh", "-c",
		          "kill -TERM -\"$1\" 2>/dev/null || kill -TERM \"$1\"", "sh", pid, NULL});
	}
	if (*undo.stream)
		guest_run(stream_rm);
	if (undo.guest_tmp[0])
		guest_rm(undo.guest_tmp);
}
