# SPDX-License-Identifier: MIT
# Helpers for the shell tests: sourced by each of test/run's jobs, which
# calls job_begin, and by test/demo and test/bench/run for start and stop.
#
# check NAME STATUS OUT ERR CMD [ARG]...
#   runs CMD and wants its exit status, its whole stdout and its whole
#   stderr to match STATUS, OUT and ERR (shell patterns: * and ? work).

passed=0 failed=0 skipped=0
script=${script:-}

ok() { passed=$((passed + 1)); }

not_ok() {
	failed=$((failed + 1))
	echo "FAIL: $script: $1" >&2
	shift
	for line in "$@"; do printf '  %s\n' "$line" >&2; done
}

# skip REASON: a test that cannot run here, said and counted.
skip() {
	skipped=$((skipped + 1))
	echo "SKIP: $script: $*"
}

# need_tool COMMAND PACKAGE: a script whose tool is not here is skipped,
# with the reason, and ends; the others run on. (.ci/run installs them.)
need_tool() {
	command -v "$1" >/dev/null 2>&1 && return 0
	skip "no $1 here (apt-get install $2)"
	job_done=1
	exit 0
}

# job_begin: makes this shell one of test/run's jobs: a folder of its own
# ($T), and at the end, however it comes, every process it started
# stopped, the folder removed and the counts written to $COUNTS, which
# test/run adds up. The job is a process group of its own (setsid):
# what it left running is ended with the group. A script that did not
# run to its end (job_done unset: a syntax error, a signal) failed.
job_begin() {
	T=$(mktemp -d /tmp/qga-test.XXXXXX) || exit 1
	trap 'job_end' EXIT
	trap 'exit 1' INT TERM HUP
	# A resolv.conf whose only server is a loopback one nobody runs: a
	# test that looks a name up must never ask the machine's own DNS server.
	NORESOLV=$T/noresolv.conf
	printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$NORESOLV"
}
job_end() {
	_st=$?
	trap - EXIT
	trap '' INT TERM HUP
	[ "${job_done:-}" = 1 ] || not_ok "the script ended before its end (status $_st)"
	stop_all
	echo "$passed $failed $skipped" >"$COUNTS"
	kill -TERM 0 2>/dev/null
	rm -rf "$T"
}

check() {
	_name=$1 _want=$2 _out=$3 _err=$4
	shift 4
	"$@" >"$T/out" 2>"$T/err"
	_st=$?
	_gotout=$(cat "$T/out") _goterr=$(cat "$T/err")
	# shellcheck disable=SC2254
	case $_st in $_want) ;; *) not_ok "$_name" "exit status $_st, want $_want" \
		"stdout: $(head -c 300 "$T/out")" "stderr: $(head -c 300 "$T/err")"; return 1;; esac
	case $_gotout in $_out) ;; *) not_ok "$_name" "stdout: $(head -c 600 "$T/out")" \
		"want:   $_out"; return 1;; esac
	case $_goterr in $_err) ;; *) not_ok "$_name" "stderr: $(head -c 600 "$T/err")" \
		"want:   $_err"; return 1;; esac
	ok
}

# expect NAME CONDITION...: a test that is a shell condition.
expect() {
	_name=$1
	shift
	if "$@"; then ok; else not_ok "$_name" "false: $*"; fi
}

# wait_for PATH [SECONDS]: waits for a socket or file to appear.
wait_for() {
	_i=0
	while [ ! -e "$1" ]; do
		_i=$((_i + 1))
		[ $_i -gt $((${2:-10} * 20)) ] && { echo "timed out waiting for $1" >&2; return 1; }
		sleep 0.05
	done
}

# wait_until SECONDS CMD...: runs CMD every 50 ms until it succeeds, for
# at most SECONDS; fails when it never did.
wait_until() {
	_i=0 _n=$(($1 * 20))
	shift
	until "$@"; do
		_i=$((_i + 1))
		[ $_i -gt $_n ] && { echo "timed out waiting for: $*" >&2; return 1; }
		sleep 0.05
	done
}

# The agent's dangerous commands: the tests never let them run here.
BLOCK=guest-shutdown,guest-suspend-disk,guest-suspend-ram,guest-suspend-hybrid
BLOCK=$BLOCK,guest-fsfreeze-freeze,guest-fsfreeze-freeze-list,guest-fsfreeze-thaw
BLOCK=$BLOCK,guest-fstrim,guest-set-user-password,guest-set-vcpus
BLOCK=$BLOCK,guest-set-memory-blocks,guest-set-time,guest-ssh-add-authorized-keys
BLOCK=$BLOCK,guest-ssh-remove-authorized-keys

PIDS=
# start NAME CMD...: runs CMD in the background from $T and remembers it.
start() {
	_n=$1
	shift
	(cd "$T" && exec "$@") >"$T/$_n.stdout" 2>"$T/$_n.stderr" &
	PIDS="$PIDS $!"
	eval "PID_$_n=$!"
}

stop_all() {
	# A process a test stopped (SIGSTOP) takes SIGTERM only once it runs.
	# One may end between the two kills: under set -e (demo, bench) the
	# second's failure must not end the caller.
	for p in $PIDS; do kill "$p" 2>/dev/null || :; kill -CONT "$p" 2>/dev/null || :; done
	for p in $PIDS; do wait "$p" 2>/dev/null || :; done
	PIDS=
}

# alive NAME: whether the process started as NAME still runs. A child
# that exited stays a zombie until it is waited for, which kill -0 cannot
# tell from a live one: its state in /proc can.
alive() {
	eval "_p=\$PID_$1"
	[ -n "$_p" ] && kill -0 "$_p" 2>/dev/null &&
		[ "$(sed 's/.*) //' "/proc/$_p/stat" 2>/dev/null | cut -c1)" != Z ]
}

# running PATTERN: whether a process of this test's own has a command
# line that matches PATTERN (pgrep -f's): one that runs in $T or a folder
# in it, as all that start runs do, and the programs of the agents it
# started; not another test's that runs meanwhile, nor the machine's.
running() {
	for _p in $(pgrep -f "$1"); do
		case $(readlink "/proc/$_p/cwd" 2>/dev/null) in "$T"|"$T"/*) return 0;; esac
	done
	return 1
}

# catching PID: whether PID has its handler of SIGINT in place, or has
# ended. Until then a SIGINT is lost: sh starts a program in the
# background with SIGINT ignored. A test that interrupts qga at a random
# moment waits for this first.
catching() {
	_m=$(sed -n 's/^SigCgt:[^0-9a-f]*//p' "/proc/$1/status" 2>/dev/null)
	[ -z "$_m" ] || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null ||
		[ $((0x$_m & 2)) != 0 ]
}

# port_of NAME [NTH]: the port the process started as NAME listens on,
# as the kernel chose it (port 0): from socat -d -d's "listening on" line
# or qga serve's, the NTH such line (default 1).
port_of() {
	_i=0
	while :; do
		_p=$(sed -n 's/.*listening on .*:\([0-9][0-9]*\)\( (HTTP)\)*$/\1/p' \
			"$T/$1.stderr" 2>/dev/null | sed -n "${2:-1}p")
		[ -n "$_p" ] && { echo "$_p"; return 0; }
		_i=$((_i + 1))
		[ $_i -gt 200 ] && { echo "timed out waiting for $1 to listen" >&2; return 1; }
		sleep 0.05
	done
}

# relay NAME ADDR TARGET: a socat relay from TCP on loopback ADDR (127.0.0.1
# or [::1]), on a port the kernel chooses, to the unix socket TARGET; sets
# PORT to that port.
relay() {
	case $2 in \[*) _l=TCP6-LISTEN ;; *) _l=TCP4-LISTEN ;; esac
	start "$1" socat -d -d "$_l:0,bind=$2,reuseaddr,fork" UNIX-CONNECT:"$3"
	PORT=$(port_of "$1")
}

IN_NS=$PWD/test/in_ns
