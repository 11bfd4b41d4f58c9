# SPDX-License-Identifier: MIT
# The built-in commands, against the real agent wherever it can serve, and
# against the fake agent for what must not happen to this machine.
need_tool "$QEMU_GA" qemu-guest-agent
need_tool pgrep procps
C=$T/cmds
mkdir -p "$C/state" "$C/state2" "$C/files"
rm -f "$C/qga.sock" "$C/noexec.sock"
start cagent "$QEMU_GA" --method=unix-listen --path="$C/qga.sock" \
	--statedir="$C/state" --logfile="$C/qga.log" --block-rpcs="$BLOCK"
start noexec "$QEMU_GA" --method=unix-listen --path="$C/noexec.sock" \
	--statedir="$C/state2" --logfile="$C/qga2.log" --block-rpcs="$BLOCK,guest-exec"
mkdir -p "$C/state3"
rm -f "$C/noread.sock"
start noread "$QEMU_GA" --method=unix-listen --path="$C/noread.sock" \
	--statedir="$C/state3" --logfile="$C/qga3.log" --block-rpcs="$BLOCK,guest-file-read"
wait_for "$C/qga.sock"
wait_for "$C/noexec.sock"
wait_for "$C/noread.sock"
export QGA_SOCKET="$C/qga.sock"
nl='
'

# exec and sh: the guest's output here, its status as ours.
check "exec /bin/true" 0 '' '' $QGA exec -- /bin/true
check "exec /bin/false" 1 '' '' $QGA exec /bin/false
check "sh: stdout, stderr and the exit code" 7 'out' 'err' \
	$QGA sh 'echo out; echo err >&2; exit 7'
check "sh: killed by a signal is 128+N" 137 '' '' $QGA sh 'kill -9 $$'
check "sh: positional arguments" 0 'sh a b c' '' $QGA sh 'echo "$0 $1 $2" c' a b
head -c 100000 /dev/urandom >"$C/rand"
$QGA exec -i -- /bin/cat <"$C/rand" >"$C/rand.out"
expect "exec -i: binary stdin comes back byte for byte" cmp -s "$C/rand" "$C/rand.out"
check "exec -e: the environment, with a PATH" 0 \
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${nl}FOO=bar baz" '' \
	$QGA exec -e 'FOO=bar baz' -- /usr/bin/env
check "exec -e PATH: the user's PATH only" 0 "PATH=/bin${nl}A=1" '' \
	$QGA exec -e PATH=/bin -e A=1 -- /usr/bin/env
check "exec --no-stream -T: the program outlives the wait" 124 '' \
	"qga: /bin/sleep still runs in the guest as pid [0-9]*" $QGA exec --no-stream -T 0.2 -- /bin/sleep 10
# ended_status PID: exec-status PID once the program ended (it says 124
# while it runs, and reads nothing then), for 30 s at most.
ended_status() {
	_i=0
	while $QGA exec-status "$1" >"$C/status.out" 2>"$C/status.err"; _st=$?
		[ $_st = 124 ] && [ $_i -lt 600 ]; do
		sleep 0.05
		_i=$((_i + 1))
	done
	cat "$C/status.out"
	cat "$C/status.err" >&2
	return $_st
}
pid=$($QGA exec --no-wait -- /bin/echo later)
expect "exec --no-wait prints the pid" test "$pid" -gt 0
check "exec-status PID: the output and status, as exec" 0 'later' '' ended_status "$pid"
check "exec-status: a pid whose end was read, one plain message" 255 '' \
	"qga: exec-status: no program of pid $pid in the guest agent (not started by it, or its end already read)" \
	$QGA exec-status "$pid"
pid=$($QGA exec --no-wait -- /bin/sh -c 'echo out; echo err >&2; exit 3')
check "exec-status: stdout, stderr and the exit code" 3 'out' 'err' ended_status "$pid"
pid=$($QGA exec --no-wait -- /bin/sleep 20)
check "exec-status: still running is 124" 124 '' "qga: pid $pid still runs in the guest" \
	$QGA exec-status "$pid"
check "exec-status -j: the agent's JSON" 0 '{"return": {"exited": false}}' '' \
	$QGA exec-status -j "$pid"
check "exec --json: qm guest exec's keys, text decoded, exit 0" 0 \
	'{"exited":true,"out-data":"out\\u000a","err-data":"Ã©\\u000a","out-truncated":false,"err-truncated":false,"exitcode":3}' '' \
	$QGA sh --json 'echo out; echo Ã© >&2; exit 3'
check "exec -j: output that is not UTF-8 in base64, a signal" 0 \
	'{"exited":true,"out-data-b64":"/wA=","out-truncated":false,"err-truncated":false,"signal":9}' '' \
	$QGA sh -j 'printf "\377\000"; kill -9 $$'
check "exec -p: the same, indented" 0 '{
  "exited": true,
  "out-truncated": false,
  "err-truncated": false,
  "exitcode": 0
}' '' $QGA exec -p /bin/true
check "exec --no-stream: no such program is 127, as in a shell" 127 '' \
	"qga: guest-exec: GenericError: *Failed to execute child process *No such file or directory*" \
	$QGA exec --no-stream -- /no/such/program
check "exec, streamed: no such program is 127, the guest's words" 127 '' \
	"*/no/such/program*No such file or directory" $QGA exec -- /no/such/program
case $ver in
7.*)	check "exec --no-stream --merge on qemu-ga 7.2" 255 '' 'qga: exec --merge needs qemu-ga 8.0 or later' \
		$QGA exec --no-stream --merge -- /bin/true ;;
*)	check "exec --no-stream --merge: stderr in stdout, in order" 0 "a${nl}b${nl}c" '' \
		$QGA exec --no-stream --merge -- /bin/sh -c 'echo a; echo b >&2; echo c' ;;
esac
check "exec --merge, streamed, on every agent: stderr in stdout, in order" 0 "a${nl}b${nl}c" '' \
	$QGA exec --merge -- /bin/sh -c 'echo a; echo b >&2; echo c'
echo echo hi >"$C/plain" && chmod 644 "$C/plain"
check "exec --no-stream: a file that cannot be run is 126" 126 '' \
	"qga: guest-exec: GenericError: *Permission denied*" $QGA exec --no-stream -- "$C/plain"
check "exec, streamed: a file that cannot be run is 126" 126 '' "*Permission denied" \
	$QGA exec -- "$C/plain"
check "exec: qga's own failure is 255" 255 '' "qga: connect $C/nope: No such file or directory" \
	$QGA -s "$C/nope" exec -- /bin/true
check "exec disabled, said plainly" 255 '' \
	'qga: guest-exec is disabled in the guest agent (by its configuration, or while frozen)' \
	$QGA -s "$C/noexec.sock" exec -- /bin/true
check "exec -i: too much stdin is refused before sending" 2 '' \
	'qga: exec -i: stdin is larger than the agent accepts (50331645 bytes)' \
	sh -c "head -c 50331646 /dev/zero | $QGA -s '$C/nope' exec -i -- /bin/cat"
$QGA sh --no-stream 'head -c 16777217 /dev/zero' >"$C/trunc" 2>"$C/trunc.err"
expect "exec --no-stream: output truncated by the agent is written" \
	test "$(wc -c <"$C/trunc")" = 16777216
expect "exec --no-stream: and warned about" \
	grep -q "the agent truncated the program's stdout" "$C/trunc.err"

# Streaming: output as the program writes it, all of it, nothing left
# in the guest's /tmp, and the program stopped when qga goes. Against an
# agent whose /tmp is a folder of the test's ($G), with $T bound in it
# where it is, in a mount namespace of the agent's own: what is left in
# the guest's /tmp is this test's alone to count. The agent is named by
# its real path, which the mount cannot hide.
G=
if unshare -m true 2>/dev/null; then
	G=$C/guest-tmp
	mkdir -p "$G/${T#/tmp/}" "$C/state4"
	start stagent unshare -m sh -c 'mount --bind "$1" "$2/${1#/tmp/}" && mount --rbind "$2" /tmp &&
		shift 2 && exec "$@"' stagent "$T" "$G" "$(readlink -f "$(command -v "$QEMU_GA")")" \
		--method=unix-listen --path="$C/st.sock" \
		--statedir="$C/state4" --logfile="$C/qga4.log" --block-rpcs="$BLOCK"
	wait_for "$C/st.sock"
	export QGA_SOCKET="$C/st.sock"
fi
# The program writes a line, then waits for $C/go, which is made only
# once the line came: it must have come while the program ran.
rm -f "$C/go"
$QGA sh 'echo one; i=0; until [ -e "$1" ] || [ $i -ge 2400 ]; do sleep 0.05; i=$((i + 1)); done
	echo two' "$C/go" >"$C/stream" &
qp=$!
wait_until 60 grep -qx one "$C/stream"
first=$?
: >"$C/go"
wait $qp
expect "exec streams: the first line arrives before the program ends" \
	test $first = 0 -a "$(cat "$C/stream")" = "one${nl}two"
head -c 100000000 /dev/urandom >"$C/big"
head -c 5000000 /dev/urandom >"$C/big2"
$QGA sh 'cat "$1"; cat "$2" >&2' "$C/big" "$C/big2" >"$C/big.out" 2>"$C/big2.out"
expect "exec streams: 100 MB of stdout byte for byte, none cut" cmp -s "$C/big" "$C/big.out"
expect "exec streams: stderr apart, byte for byte" cmp -s "$C/big2" "$C/big2.out"
rm -f "$C/big" "$C/big2" "$C/big.out" "$C/big2.out"
# A program stopped is one that is gone within 30 s: it runs far longer
# than that on its own. running sees this test's programs only.
not_running() { ! running "$1"; }
gone() { wait_until 30 not_running "$1"; }
check "exec -T, streamed: 124, the program stopped" 124 'started' \
	"qga: /bin/sh stopped in the guest (pid [0-9]*): a streamed program ends with qga, --no-stream leaves it running" \
	$QGA sh -T 5 'echo started; exec sleep 300'
expect "exec -T, streamed: the program is gone" gone '^sleep 300'
rm -f "$C/int.out"
$QGA sh 'echo started; sleep 400; echo never' >"$C/int.out" 2>"$C/int.err" &
qp=$!
wait_until 30 test -s "$C/int.out"
kill -INT $qp
wait $qp
st=$?
expect "exec streamed, SIGINT: 130" test "$st" = 130
expect "exec streamed, SIGINT: the program and its children are stopped" gone '^sleep 400'
# At any moment once qga catches SIGINT.
for d in 0 0.002 0.005 0.01 0.02 0.05; do
	$QGA sh 'sleep 370' 2>/dev/null &
	qp=$!
	wait_until 30 catching $qp
	sleep $d
	kill -INT $qp
	wait $qp
done
expect "exec streamed, SIGINT at any moment: nothing runs on" gone '^sleep 370'
if [ -n "$G" ]; then
	no_tmpfiles() { ! ls "$G" | grep -q '^qga-exec\.'; }
	expect "exec streamed: no files left in the guest's /tmp" wait_until 30 no_tmpfiles
else
	skip "exec streamed, no files left in the guest's /tmp: no mount namespace for a /tmp of its own"
fi
{ $QGA sh 'exec cat /dev/zero' 2>"$C/pipe.err"; echo $? >"$C/pipe.st"; } | head -c 1000000 >/dev/null
check "exec streamed, stdout closed: said, 255" 255 'qga: write stdout: Broken pipe' '' \
	sh -c "cat '$C/pipe.err'; exit \$(cat '$C/pipe.st')"
expect "exec streamed, stdout closed: nothing runs on" gone '^cat /dev/zero'
export QGA_SOCKET="$C/qga.sock"
check "exec -e, streamed: the environment is the user's alone" 0 "A=1${nl}PATH=/bin" '' \
	sh -c "$QGA exec -e PATH=/bin -e A=1 -- /usr/bin/env | sort"
check "exec without guest-file-read: captured, silently" 3 'out' 'err' \
	$QGA -s "$C/noread.sock" sh 'echo out; echo err >&2; exit 3'
check "exec --stream without guest-file-read: captured, and said" 0 'out' \
	'qga: exec: not streaming: guest-file-read is not enabled in the guest agent' \
	$QGA -s "$C/noread.sock" sh --stream 'echo out'
check "exec without a program is a usage error" 2 '' 'usage: qga*exec*' $QGA exec

# Folders: get -r and put -r through tar, every kind of entry kept.
tree() { (cd "$1" && find . -printf '%p|%y|%m|%s|%TY%Tm%Td%TH%TM%.2TS|%l\n' | sort); }
R=$C/tree
rm -rf "$R" && mkdir -p "$R/src/a/b c" "$R/src/empty dir"
echo hi >"$R/src/a/f" && chmod 640 "$R/src/a/f" && touch -d '2020-01-02 03:04:05' "$R/src/a/f"
: >"$R/src/a/b c/empty file"
head -c 52428800 /dev/urandom >"$R/src/fifty"
ln -s a/f "$R/src/link"
ln -s /nowhere "$R/src/dangling"
printf x >"$R/src/new
line"
chmod 700 "$R/src/empty dir"
check "get -r: a folder" 0 '' '' $QGA get -r "$R/src" "$R/got"
expect "get -r: the same names, kinds, modes, sizes, times and links" \
	test "$(tree "$R/src")" = "$(tree "$R/got")"
expect "get -r: the same bytes" diff -r --no-dereference "$R/src" "$R/got"
check "put -r: a folder" 0 '' '' $QGA put -r "$R/src" "$R/put"
expect "put -r: the same names, kinds, modes, sizes, times and links" \
	test "$(tree "$R/src")" = "$(tree "$R/put")"
expect "put -r: the same bytes" diff -r --no-dereference "$R/src" "$R/put"
expect "put -r: no temporary archive left" test -z "$(ls -a "$R" | grep qga-put)"
check "get -r of what is not a folder: the guest's words, 1" 1 '' \
	"*can't cd to $R/none*qga: get -r: tar in the guest failed on $R/none (status 2)" \
	$QGA get -r "$R/none" "$R/got2"
check "put -r of what is not here: tar's words, 3" 3 '' \
	"tar: $R/none: Cannot open*qga: put -r: tar here failed on $R/none (status 2)" \
	$QGA put -r "$R/none" "$R/put2"
: >"$R/afile"
check "put -r onto a file: the guest's words, 1" 1 '' \
	"*File exists*qga: put -r: tar in the guest failed on $R/afile (status 1)" \
	$QGA put -r "$R/src" "$R/afile"
expect "put -r failed: no temporary archive left" test -z "$(ls -a "$R" | grep qga-put)"
rm -rf "$R"

# --verify: SHA-256 here against the guest's sha256sum; -c continues.
V=$C/verify
mkdir -p "$V"
for n in 0 1 55 56 64 65 4194305; do
	head -c $n /dev/urandom >"$V/src"
	rm -f "$V/got" "$V/put"
	check "get --verify of $n bytes" 0 '' '' $QGA get --verify "$V/src" "$V/got"
	check "put --verify of $n bytes" 0 '' '' $QGA put --verify "$V/src" "$V/put"
	expect "get and put --verify of $n bytes: byte for byte" \
		sh -c "cmp -s '$V/src' '$V/got' && cmp -s '$V/src' '$V/put'"
done
# /proc/self/stat is the agent's own when qga reads it, sha256sum's when
# the guest hashes it: a copy that cannot match what the guest then holds.
check "get --verify: a file that changed behind qga's back is caught" 3 '' \
	"qga: get --verify: /proc/self/stat differs: SHA-256 * here, * in the guest" \
	$QGA get --verify /proc/self/stat "$V/stat"
expect "get --verify: a copy that failed is not put in place" test ! -e "$V/stat"
head -c 67108864 /dev/urandom >"$V/big"
head -c 30000000 "$V/big" >"$V/part"
check "get -c: continues a partial copy" 0 '' '' $QGA get -c --verify "$V/big" "$V/part"
expect "get -c: byte for byte" cmp -s "$V/big" "$V/part"
rm -f "$V/part"
timeout -s INT 0.2 $QGA get -c "$V/big" "$V/part" 2>/dev/null
check "get -c after an interrupted get -c" 0 '' '' $QGA get -c "$V/big" "$V/part"
expect "get -c after an interruption: byte for byte" cmp -s "$V/big" "$V/part"
head -c 20000000 "$V/big" >"$V/pput"
check "put -c: continues the guest's partial copy" 0 '' '' $QGA put -c --verify "$V/big" "$V/pput"
expect "put -c: byte for byte" cmp -s "$V/big" "$V/pput"
check "put -c when the guest's copy is longer" 2 '' \
	"qga: put -c: $V/pput is longer in the guest than $V/part2 here" \
	sh -c "head -c 100 '$V/big' >'$V/part2' && exec $QGA put -c '$V/part2' '$V/pput'"
check "get -c when the local copy is longer" 2 '' \
	"qga: get -c: $V/pput is longer here than $V/part2 in the guest" \
	$QGA get -c "$V/part2" "$V/pput"
check "put -c from stdin is refused" 2 '' \
	"qga: put -c continues a file from where the guest's copy ends: not with -a or stdin" \
	sh -c "echo x | $QGA put -c - '$V/x'"
rm -rf "$V"

# Files: byte-exact for any size, the handle always closed. fds counts
# the agent's open files (its guest file handles among them), not its
# connections, which it closes when it comes to it.
fds() { ls -l /proc/"$PID_cagent"/fd | grep -c ' -> /'; }
# partial LOCAL SIZE: whether get's partial copy of LOCAL is past SIZE
# (find's -size).
partial() { [ -n "$(find "$(dirname "$1")" -name "${1##*/}.qga-*" -size "$2")" ]; }
for n in 0 1 12345 4194303 4194304 4194305; do
	head -c $n /dev/urandom >"$C/src"
	$QGA put "$C/src" "$C/files/r$n" && $QGA get "$C/files/r$n" "$C/got"
	expect "put and get $n bytes" cmp -s "$C/src" "$C/got"
	expect "the guest file holds $n bytes" cmp -s "$C/src" "$C/files/r$n"
done
head -c 104857601 /dev/urandom >"$C/big"
$QGA put "$C/big" "$C/files/big" && $QGA get "$C/files/big" "$C/big.got"
expect "put and get 100 MiB + 1 (checksums)" \
	test "$(sha256sum <"$C/big")" = "$(sha256sum <"$C/big.got")"
rm -f "$C/big.got"
$QGA cat "$C/files/r1" "$C/files/r12345" >"$C/cat.out"
expect "cat several files" sh -c "cat '$C/files/r1' '$C/files/r12345' | cmp -s - '$C/cat.out'"
printf 'one\n' | $QGA put - "$C/files/log"
printf 'two\n' | $QGA put -a - "$C/files/log"
check "put from stdin, then -a appends" 0 "one${nl}two" '' $QGA cat "$C/files/log"
check "get - writes to stdout" 0 "one${nl}two" '' $QGA get "$C/files/log" -
mkdir -p "$C/here"
(cd "$C/here" && $QGA get "$C/files/log") && $QGA get "$C/files/r1" "$C/here"
expect "get names the copy after the guest file" cmp -s "$C/files/log" "$C/here/log"
expect "get into a folder" cmp -s "$C/files/r1" "$C/here/r1"
(umask 027 && $QGA get "$C/files/r1" "$C/here/masked")
expect "get gives the copy the mode a new file gets" \
	test "$(stat -c %a "$C/here/masked")" = 640
rm -f "$C/here/masked"
check "get a missing file" 1 '' \
	"qga: guest-file-open: GenericError: failed to open file '/no/such' (mode: 'r'): No such file or directory" \
	$QGA get /no/such "$C/here/x"
expect "no partial file is left" test -z "$(ls "$C/here" | grep -v '^log$' | grep -v '^r1$')"
check "cat into a full disk fails" 3 '' 'qga: write stdout: No space left on device' \
	sh -c "$QGA cat '$C/files/r12345' >/dev/full"
fd0=$(fds)
$QGA get "$C/files/big" "$C/here/big" 2>"$C/int.err" &
getpid=$!
wait_until 30 partial "$C/here/big" +0
kill -INT $getpid
wait $getpid
expect "get interrupted by SIGINT exits 130" test $? = 130
expect "and says so" grep -q "^qga: .*: interrupted$" "$C/int.err"
expect "an interrupted get leaves no partial file" test -z "$(ls "$C/here" | grep big)"
fds_back() { [ "$(fds)" = "$fd0" ]; }
wait_until 30 fds_back
expect "every guest file handle was closed ($(fds) files open, $fd0 before)" fds_back
check "the agent is fine after that" 0 '' '' $QGA ping
# On a terminal: the size, the share and the time left; a message that
# interrupts the progress line starts a line of its own.
script -qec "$QGA put '$C/big' '$C/files/big2'" /dev/null | tr '\r' '\n' >"$C/tty.progress"
expect "put's progress line: the total and the share" \
	grep -q "^qga: $C/files/big2: 100 MiB of 100 (100%), 0 s left, [0-9]* MiB/s" "$C/tty.progress"
# The progress line shows from 16 MiB on: get is interrupted past 17.
script -qec "$QGA get '$C/files/big2' '$C/big2.got' & i=0
	until [ -n \"\$(find '$C' -name 'big2.got.qga-*' -size +17M)\" ] || [ \$i -ge 1200 ]; do
		sleep 0.05; i=\$((i + 1)); done; kill -INT \$!; wait" /dev/null |
	tr '\r' '\n' >"$C/tty.int"
expect "get's progress line: the share, learnt from a seek" \
	grep -q "^qga: $C/files/big2: [0-9]* MiB of 100 ([0-9]*%)" "$C/tty.int"
expect "and the interruption is said on its own line" \
	grep -qx "qga: [^ ]*: interrupted" "$C/tty.int"
rm -f "$C/files/big2" "$C/big2.got"
check "the agent is fine after that too" 0 '' '' $QGA ping

# Information, checked against this machine, where the agent runs.
check "ping" 0 '' '' $QGA ping
check "hostname" 0 "$(hostname)" '' $QGA hostname
check "hostname -j" 0 '{"return": {"host-name": "*"}}' '' $QGA hostname -j
check "info" 0 'qemu-ga *: * commands, * disabled*guest-exec *enabled*guest-shutdown *disabled, no reply on success*' '' \
	$QGA info
check "osinfo" 0 "*id: $(. /etc/os-release; echo "$ID")*" '' $QGA osinfo
check "time" 0 "$(date -u +%Y-%m-%d)T*Z" '' $QGA time
check "timezone" 0 '*[+-][0-9][0-9][0-9][0-9]' '' $QGA timezone
if [ "$($QGA -r guest-get-users)" = '[]' ]; then
	check "users: nobody, said so" 0 'nobody is logged in' '' $QGA users
else
	check "users" 0 'USER  DOMAIN  LOGIN (UTC)*' '' $QGA users
fi
check "ifconfig shows lo" 0 '*lo *00:00:00:00:00:00  127.0.0.1/8*' '' $QGA ifconfig
check "df shows /" 0 'Mounted on  Type *Device *Size *Used *Avail *Use%*/ *' '' $QGA df
ncpu=$(ls -d /sys/devices/system/cpu/cpu[0-9]* | wc -l)
check "vcpus" 0 'CPU  ONLINE  CAN-OFFLINE*' '' $QGA vcpus
expect "vcpus lists every cpu" test "$($QGA vcpus | awk '$2 == "yes"' | wc -l)" = "$ncpu"
$QGA vcpus | awk 'NR > 1 { print $1 }' >"$C/ids"
expect "vcpus: sorted by id" sh -c "sort -n '$C/ids' | cmp -s - '$C/ids'"
# The agent runs on this machine: its / is df's. Used, Avail and Use% are
# df -h's, rounded up as it rounds; Size too where the agent sends
# total-bytes-privileged (9.1 on), else only the unprivileged total.
# Other tests write to / meanwhile: the two are compared when df -h
# showed the same before qga's df and after it, for 30 s at most.
df_same() {
	want=$(df -h / | awk 'NR == 2 { print $2, $3, $4, $5 }')
	got=$($QGA df | awk '$1 == "/" { print $4, $5, $6, $7 }')
	[ "$(df -h / | awk 'NR == 2 { print $2, $3, $4, $5 }')" = "$want" ] || return 1
	case $ver in 7.*) [ "${got#* }" = "${want#* }" ] ;; *) [ "$got" = "$want" ] ;; esac
}
wait_until 30 df_same
case $ver in
7.*)	expect "df: Used, Avail and Use% as df -h shows them ($want)" \
		test "${got#* }" = "${want#* }" ;;
*)	expect "df: Size, Used, Avail and Use% as df -h shows them ($want)" \
		test "$got" = "$want" ;;
esac
check "disks: bus, serial and alias" 0 'NAME*TYPE*BUS*SERIAL*ALIAS*DEPENDS ON*' '' $QGA disks

# ip: what people script after a boot.
ips=$(ip -o addr show scope global | awk '{ sub("/.*", "", $4); print $4 }' | sort)
check "ip: the global addresses, one a line" 0 "$ips" '' sh -c "$QGA ip | sort"
check "ip -4: IPv4 only" 0 "$(echo "$ips" | grep -v :)" '' $QGA ip -4
check "ip -a lo: loopback when asked" 0 "127.0.0.1${nl}::1" '' $QGA ip -a lo
check "ip lo: loopback left out, exit 1" 1 '' '' $QGA ip lo
check "ip --wait: an address that never comes costs the wait, exit 4" 4 '' \
	'qga: ip: no address within 1.500 s' $QGA ip --wait 1.5 nosuch
check "ip --wait: an address there is answers at once" 0 "$(echo "$ips" | grep -v :)" '' \
	$QGA ip -4 --wait 30
rm -f "$C/late-ip.sock"
mkdir -p "$C/state3"
start late sh -c 'sleep 1; exec "$@"' sh "$QEMU_GA" --method=unix-listen \
	--path="$C/late-ip.sock" --statedir="$C/state3" --logfile="$C/late.log" --block-rpcs="$BLOCK"
check "ip --wait: waits for the agent to come up" 0 '127.0.0.1' '' \
	$QGA -s "$C/late-ip.sock" ip -4 -a --wait 20 lo
kill "$PID_late" 2>/dev/null
check "ip -j: the agent's reply" 0 '{"return": \[*"ip-addresses"*\]}' '' $QGA ip -j

# The commands that came after 7.2, and what an older agent says.
case $ver in
7.*)	check "load on 7.2: when it came" 1 '' \
		'qga: guest-get-load is not in this guest agent (qemu-ga 10.0 on)' $QGA load
	check "routes on 7.2: when it came" 1 '' \
		'qga: guest-network-get-route is not in this guest agent (qemu-ga 9.1 on)' $QGA routes
	check "info: the newer commands this agent lacks" 0 \
		"*guest-network-get-route*not in this agent (qemu-ga 9.1 on)${nl}guest-get-load*not in this agent (qemu-ga 10.0 on)" \
		'' $QGA info ;;
*)	check "load" 0 'load average: [0-9]*.[0-9][0-9], [0-9]*.[0-9][0-9], [0-9]*.[0-9][0-9]' '' $QGA load
	check "load -j" 0 '{"return": {*"load1m": *}}' '' $QGA load -j
	gw=$(ip -4 route show default | awk '{ print $3; exit }')
	check "routes: the default route as ip shows it" 0 "DESTINATION*${nl}default *$gw *" '' $QGA routes
	check "routes: no local entries" 1 '' '' sh -c "$QGA routes | grep '/128 '" ;;
esac
check "cpustats: the return value, indented" 0 '\[*"cpu": 0,*' '' $QGA cpustats
check "diskstats -j: the reply as it came" 0 '{"return": \[*"stats": {*' '' $QGA diskstats -j
check "devices: Windows only, said so" 1 '' \
	'qga: guest-get-devices is not in this guest agent (Windows guests only)' $QGA devices
check "set-time: refused by the blocked agent, nothing else" 1 '' \
	'qga: guest-set-time is disabled in the guest agent (by its configuration, or while frozen)' \
	$QGA set-time --now
check "set-time: a bad time" 2 '' "qga: set-time: bad time '12x': expected seconds since 1970" \
	$QGA set-time 12x
check "suspend: refused by the blocked agent" 1 '' \
	'qga: guest-suspend-ram is disabled in the guest agent (by its configuration, or while frozen)' \
	$QGA suspend ram
check "suspend: a bad mode" 2 '' 'usage: qga \[OPTIONS\] suspend ram | disk | hybrid' $QGA suspend sleep
check "ssh-keys list: no authorized_keys, no keys" 0 '' '' $QGA ssh-keys list nobody
check "-j prints the reply as it came" 0 '{"return": \[*\]}' '' $QGA -j vcpus

# Power, freeze, trim and credentials: refused by the real agent here,
# carried out by the fake one.
check "shutdown, blocked" 1 '' \
	"qga: guest-shutdown is disabled in the guest agent (by its configuration, or while frozen)" $QGA shutdown
check "fsfreeze status" 0 'thawed' '' $QGA fsfreeze status
check "fsfreeze freeze, blocked" 1 '' \
	"qga: guest-fsfreeze-freeze is disabled in the guest agent (by its configuration, or while frozen)" $QGA fsfreeze freeze
check "fstrim, blocked" 1 '' \
	"qga: guest-fstrim is disabled in the guest agent (by its configuration, or while frozen)" $QGA fstrim
check "passwd, blocked" 1 '' \
	"qga: guest-set-user-password is disabled in the guest agent (by its configuration, or while frozen)" \
	sh -c "echo pw | $QGA passwd nobody"
script -qec "$QGA passwd nobody; echo status \$?" /dev/null </dev/null | tr -d '\r' >"$C/tty.out"
check "passwd, blocked: refused before any prompt" 0 \
	"qga: guest-set-user-password is disabled in the guest agent (by its configuration, or while frozen)${nl}status 1" '' \
	cat "$C/tty.out"
check "ssh-keys add, blocked" 1 '' \
	"qga: guest-ssh-add-authorized-keys is disabled in the guest agent (by its configuration, or while frozen)" \
	sh -c "echo 'ssh-ed25519 AAAA a@b' | $QGA ssh-keys add nobody"
check "ssh-keys list, an error" 1 '' \
	"qga: guest-ssh-get-authorized-keys: GenericError: *" $QGA ssh-keys list nosuchuser
check "fsfreeze bogus" 2 '' 'usage: qga \[OPTIONS\] fsfreeze*' $QGA fsfreeze bogus
expect "the agents survived every command" alive cagent
expect "the agents survived every command" alive noexec
expect "the agents survived every command" alive noread

F=$T/fake
mkdir -p "$F"
rm -f "$F/ok.sock" "$F/poweroff.sock"
start fakeok "$PWD/test/fakeagent" "$F/ok.sock" ok
start fakepoweroff "$PWD/test/fakeagent" "$F/poweroff.sock" poweroff
wait_for "$F/ok.sock"
wait_for "$F/poweroff.sock"
export QGA_SOCKET="$F/ok.sock"
check "fake: shutdown accepted" 0 '' '' $QGA shutdown
check "fake: reboot accepted" 0 '' '' $QGA reboot
check "fake: halt, the guest gone at once" 0 '' '' $QGA -s "$F/poweroff.sock" halt
check "fake: fsfreeze freeze" 0 'froze 2 filesystems' '' $QGA fsfreeze freeze
check "fake: fsfreeze freeze MOUNTPOINT" 0 'froze 1 filesystem' '' $QGA fsfreeze freeze /mnt
check "fake: fsfreeze status" 0 'frozen' '' $QGA fsfreeze status
check "fake: fsfreeze thaw" 0 'thawed 2 filesystems' '' $QGA fsfreeze thaw
froze='qga: fsfreeze --run: froze 2 filesystems'
thawed='qga: fsfreeze --run: thawed 2 filesystems'
check "fake: fsfreeze --run: CMD's output and status, thawed after" 3 "in $QGA_SOCKET" \
	"$froze${nl}$thawed" $QGA fsfreeze --run sh -c 'echo in $QGA_SOCKET; exit 3'
check "fake: fsfreeze --run: a CMD not found still thaws" 127 '' \
	"$froze${nl}$thawed${nl}qga: fsfreeze --run: no-such-cmd exited 127 (not found, or its own status)" \
	$QGA fsfreeze --run no-such-cmd
check "fake: fsfreeze --run --max: thaws on time" 124 '' \
	"$froze${nl}qga: fsfreeze --run: sleep still runs after --max 0.300 s: thawing${nl}$thawed" \
	$QGA fsfreeze --run --max 0.3 sleep 10
check "fake: fsfreeze --run: SIGTERM thaws, 143" 143 '' "$froze${nl}$thawed" \
	sh -c "rm -f '$C/running'; $QGA fsfreeze --run sh -c ': >\"$C/running\"; exec sleep 60' &
		i=0; until [ -e '$C/running' ] || [ \$i -ge 600 ]; do sleep 0.05; i=\$((i + 1)); done
		kill -TERM \$!; wait \$!"
check "fake: fsfreeze --max without --run" 2 '' 'usage: qga \[OPTIONS\] fsfreeze *' \
	$QGA fsfreeze --max 3 thaw
check "fake: fstrim" 0 "/      1024 bytes trimmed${nl}/boot  Operation not supported" '' $QGA fstrim 4096
check "fake: passwd from stdin" 0 '' '' sh -c "echo s3cret | $QGA passwd alice"
# On a terminal: each password typed once qga asks for it, its prompt
# shown and the terminal's echo off (what is typed before is dropped).
echo_off() { stty -F "$(cat "$C/tty.name")" -a 2>/dev/null | grep -q -- ' -echo '; }
typed() { wait_until 30 grep -q "$1" "$C/tty.raw" && wait_until 30 echo_off && printf '%s\r' "$2"; }
passwd_tty() {
	rm -f "$C/tty.name"
	: >"$C/tty.raw"
	{ typed 'Password for' "$1"; typed 'Again, for' "$2"; } |
		script -qec "tty >'$C/tty.name'; $QGA passwd alice; echo status \$?" /dev/null >"$C/tty.raw"
	tr -d '\r' <"$C/tty.raw" >"$C/tty.out"
}
passwd_tty s3cret s3cret
check "fake: passwd prompts twice on a terminal, without echo" 0 \
	"Password for alice: ${nl}Again, for alice: ${nl}status 0" '' cat "$C/tty.out"
passwd_tty s3cret s3cre
check "fake: passwd, two passwords that differ set nothing" 0 \
	"Password for alice: ${nl}Again, for alice: ${nl}qga: passwd: the two passwords differ: nothing was set${nl}status 2" '' \
	cat "$C/tty.out"
check "fake: passwd, another password" 1 '' \
	'qga: guest-set-user-password: GenericError: unexpected user or password' \
	sh -c "echo nope | $QGA passwd alice"
printf '# keys\nssh-ed25519 AAAA a@b\n\nssh-rsa BBBB c@d\n' >"$C/keys"
check "fake: ssh-keys add FILE" 0 '' '' $QGA ssh-keys add alice "$C/keys"
check "fake: ssh-keys remove -" 0 '' '' sh -c "$QGA ssh-keys remove alice - <'$C/keys'"
check "fake: ssh-keys add --reset sends reset" 0 '' '' $QGA ssh-keys add --reset bob "$C/keys"
check "fake: ssh-keys add without --reset does not" 1 '' \
	'qga: guest-ssh-add-authorized-keys: GenericError: reset expected' $QGA ssh-keys add bob "$C/keys"
check "fake: ssh-keys list" 0 "ssh-ed25519 AAAA a@b${nl}ssh-rsa BBBB c@d" '' $QGA ssh-keys list alice

# wait: for a socket that is not there yet, an agent not up, silence.
check "wait for nothing" 4 '' "qga: $C/late.sock: no agent answered within 0.500 s" \
	$QGA -s "$C/late.sock" wait -T 0.5
(sleep 0.5 && exec "$PWD/test/fakeagent" "$C/late.sock" ok) &
PIDS="$PIDS $!"
check "wait for an agent that comes late" 0 '' '' $QGA -s "$C/late.sock" wait -T 10
rm -f "$F/stall.sock"
start stall "$PWD/test/fakeagent" "$F/stall.sock" stall
wait_for "$F/stall.sock"
check "wait on an agent that never answers" 4 '' \
	"qga: $F/stall.sock: no agent answered within 1.500 s" $QGA -s "$F/stall.sock" wait -T 1.5
unset QGA_SOCKET

check "help COMMAND" 0 'usage: qga \[OPTIONS\] get \[-c\] \[--verify\] REMOTE \[LOCAL|-\]*' '' $QGA help get
check "COMMAND --help" 0 'usage: qga \[OPTIONS\] put*' '' $QGA put --help
check "help for nothing known" 2 '' "qga: help: unknown command 'nope'" $QGA help nope
check "help for a near miss" 2 '' "qga: help: unknown command 'hostnme'${nl}qga: did you mean 'hostname'?" \
	$QGA help hostnme
