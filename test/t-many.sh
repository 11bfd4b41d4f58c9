# SPDX-License-Identifier: MIT
# One command over many agents at once: 50 real agents, each in a folder of
# its own that holds a marker file, which a relative guest path reads, so
# that every line can be told to be its target's; plus addresses that are
# silent, refused or missing. Then qga ls over folder trees laid out as
# Proxmox and libvirt lay theirs out, in a mount namespace of the test's.
need_tool "$QEMU_GA" qemu-guest-agent
need_tool pgrep procps
need_tool socat socat
need_tool jq jq
M=$T/many
rm -rf "$M"
mkdir -p "$M"
nl='
'
: >"$M/targets"
i=1
while [ $i -le 50 ]; do
	mkdir -p "$M/a$i"
	echo "agent $i" >"$M/a$i/marker"
	(cd "$M/a$i" && exec "$QEMU_GA" --method=unix-listen --path="$M/a$i.sock" \
		--statedir="$M/a$i" --logfile="$M/a$i/log" --block-rpcs="$BLOCK") 2>/dev/null &
	PIDS="$PIDS $!"
	echo "$M/a$i.sock" >>"$M/targets"
	i=$((i + 1))
done
i=1
while [ $i -le 50 ]; do wait_for "$M/a$i.sock" || break; i=$((i + 1)); done
# Silent: a listener that reads and never answers. Refused: a socket file
# nobody listens on. Missing: no file at all.
start silent1 socat UNIX-LISTEN:"$M/silent1.sock",fork SYSTEM:'exec cat >/dev/null'
start silent2 socat UNIX-LISTEN:"$M/silent2.sock",fork SYSTEM:'exec cat >/dev/null'
socat UNIX-LISTEN:"$M/refused1.sock",unlink-close=0 /dev/null &
r1=$!
socat UNIX-LISTEN:"$M/refused2.sock",unlink-close=0 /dev/null &
r2=$!
wait_for "$M/silent1.sock"
wait_for "$M/silent2.sock"
wait_for "$M/refused1.sock"
wait_for "$M/refused2.sock"
kill -9 $r1 $r2
wait $r1 $r2 2>/dev/null
cp "$M/targets" "$M/live"
printf '# the dead ones\n%s\n  %s  # a comment\n%s\n%s\n\n%s\n' "$M/silent1.sock" \
	"$M/silent2.sock" "$M/refused1.sock" "$M/refused2.sock" "$M/missing.sock" >>"$M/targets"

# The lines each live agent's marker makes, with its tag, in order.
want_markers() {
	i=1
	while [ $i -le 50 ]; do printf '%s\tagent %s\n' "$M/a$i.sock" $i; i=$((i + 1)); done | sort
}
want_markers >"$M/want"

t0=$(date +%s%N)
$QGA -t 8 --targets "$M/targets" ping >"$M/out" 2>"$M/err"
st=$?
t1=$(date +%s%N)
expect "many: ping of 55 exits with the highest status (4, a timeout)" test $st = 4
expect "many: ping prints nothing on stdout" test ! -s "$M/out"
expect "many: the summary names the 5 that failed" \
	grep -q "^qga: 5 of 55 failed: .*$M/silent1.sock (4)" "$M/err"
for a in silent1 silent2 refused1 refused2 missing; do
	expect "many: $a's message is tagged with it" grep -q "^$M/$a.sock	qga: " "$M/err"
done
expect "many: 50 live agents answered (no other messages)" test "$(wc -l <"$M/err")" = 6
# ping's work is a fixed set of requests: all 55 are asked from one
# process, with no child (strace -f sees no fork; a sanitizer's threads
# and qemu-user's would blur the count).
if [ "$QGA" = "$PWD/qga" ]; then
	strace -f -qq -e trace=fork,vfork,clone,clone3 -o "$M/trace" $QGA -t 2 --targets "$M/targets" ping \
		>/dev/null 2>&1
	expect "many: ping of 55 forks no child ($(grep -c clone "$M/trace") clones)" \
		test "$(grep -c -e fork -e clone "$M/trace")" = 0
	strace -f -qq -e trace=fork,vfork,clone,clone3 -o "$M/trace" $QGA -t 2 --targets "$M/targets" sh true \
		>/dev/null 2>&1
	expect "many: sh over 55 still runs a child per target" \
		test "$(grep -c -e fork -e clone "$M/trace")" -ge 55
fi
# Each silent agent costs its own 8 s timeout; one after the other they
# would cost 16 s, and the 55 in turn more. The margin is wide: 55 qga
# under qemu-user take 5 s to start.
expect "many: the dead cost one timeout, not one each ($(( (t1 - t0) / 1000000 )) ms)" \
	test $(( (t1 - t0) / 1000000 )) -lt 15900

# 50 agents answer at once: on a loaded machine one may take more than
# the default 10 s, so the commands over all of them get a minute.
$QGA -t 60 --targets "$M/live" sh 'cat marker' >"$M/out" 2>"$M/err"
st=$?
sort "$M/out" >"$M/sorted"
expect "many: sh over 50 agents, each line tagged with its own target" \
	cmp -s "$M/sorted" "$M/want"
expect "many: sh's status 0 and no summary" test $st = 0 -a ! -s "$M/err"
check "many: -P 1 gives the same lines" 0 "$(cat "$M/want")" '' \
	sh -c "$QGA -t 60 -P 1 --targets '$M/live' sh 'cat marker' | sort"
check "many: --no-tag leaves the lines bare" 0 "agent 1${nl}agent 2" '' \
	sh -c "$QGA --no-tag -s '$M/a1.sock' -s '$M/a2.sock' sh 'cat marker' | sort"
check "many: exec's stderr is tagged on stderr, lines whole" 3 '' \
	"$M/a1.sock	oops${nl}$M/a1.sock	again${nl}qga: 1 of 2 failed: $M/a1.sock (3)" \
	$QGA -s "$M/a1.sock" -s "$M/a2.sock" sh '[ "$(cat marker)" = "agent 1" ] || exit 0
		printf oo >&2; sleep 0.2; printf "ps\nagain" >&2; exit 3'
check "many: one -s is one target, untagged" 0 'agent 7' '' $QGA -s "$M/a7.sock" sh 'cat marker'

# A batch: every target gets all of stdin, and its replies come in order.
printf 'guest-ping\n{"execute":"guest-file-open","arguments":{"path":"marker"}}\nguest-ping\n' \
	>"$M/batch"
$QGA -t 60 -r --targets "$M/live" <"$M/batch" >"$M/out" 2>"$M/err"
st=$?
expect "many: a batch over 50 agents, 3 replies each" test $st = 0 -a "$(wc -l <"$M/out")" = 150
expect "many: each target's replies in the order asked" test "$(awk -F '\t' '
	{ n[$1]++; if ((n[$1] == 2) != ($2 ~ /^[0-9]+$/)) bad++ }
	END { for (t in n) if (n[t] != 3) bad++; print bad + 0 }' "$M/out")" = 0

# -j: one JSON object per target per reply, the dead ones with why.
$QGA -j -t 4 --targets "$M/targets" guest-ping >"$M/out" 2>"$M/err"
expect "many: -j prints one object for each of 55 targets" test "$(wc -l <"$M/out")" = 55
expect "many: -j tags a live agent's reply" \
	grep -qx "{\"target\":\"$M/a3.sock\",\"status\":0,\"reply\":{\"return\": {}}}" "$M/out"
expect "many: -j says why a missing one failed" grep -qx \
	"{\"target\":\"$M/missing.sock\",\"status\":3,\"error\":\"connect $M/missing.sock: No such file or directory\"}" \
	"$M/out"
expect "many: -j's lines are JSON, each naming a target" \
	test "$(jq -r .target "$M/out" | sort | uniq | wc -l)" = 55

# One process asks them all: a reader that stops early leaves no agent
# with a reply unread (each would exit), and one that is slow to read
# costs no target its deadline.
$QGA -t 60 --targets "$M/live" guest-info 2>/dev/null | head -c 100 >/dev/null
alive=$(pgrep -f "$M/a[0-9]*.sock" | wc -l)
expect "many: stdout closed early: all 50 agents live ($alive)" test "$alive" = 50
# 50 replies of guest-info fill the pipe many times over: qga waits to
# write while the reader sleeps past -t, and the replies that came
# meanwhile are taken, not timed out.
$QGA -t 6 --targets "$M/live" guest-info 2>"$M/err" | (sleep 7; cut -f1 | sort -u) >"$M/out"
expect "many: a slow reader costs no target its -t ($(grep -c . "$M/err") messages)" \
	test "$(wc -l <"$M/out")" = 50 -a ! -s "$M/err"

# put: the same file to every target; get: each into a folder of its own.
head -c 3000000 /dev/urandom >"$M/data"
check "many: put one file to 50 agents" 0 '' '' $QGA -t 60 --targets "$M/live" put --verify "$M/data" copy
bad=0
i=1
while [ $i -le 50 ]; do cmp -s "$M/data" "$M/a$i/copy" || bad=$((bad + 1)); i=$((i + 1)); done
expect "many: put: each copy is byte-exact ($bad differ)" test $bad = 0
printf 'from stdin\n' | $QGA -s "$M/a1.sock" -s "$M/a2.sock" put - piped
expect "many: put - gives each target all of stdin" \
	test "$(cat "$M/a1/piped" "$M/a2/piped")" = "from stdin${nl}from stdin"
# What a command checks before its fan-out step is checked once, here;
# what comes after, once per target.
check "many: a usage error is said once, before any target" 2 '' \
	'usage: qga [[]OPTIONS] fsfreeze status | *' $QGA --targets "$M/live" fsfreeze bogus
check "many: a missing local file is said once" 3 '' \
	"qga: open $M/nofile: No such file or directory" $QGA --targets "$M/live" put "$M/nofile" x
check "many: ssh-keys reads its file once, and says once that it holds no key" 2 '' \
	"qga: ssh-keys add: no keys in -" $QGA --targets "$M/live" ssh-keys add root - </dev/null
check "many: get without a name for the copy says so once" 2 '' \
	"qga: get: name the local file for '/etc/'" $QGA --targets "$M/live" get /etc/
check "many: exec refuses words that are not UTF-8 once" 2 '' \
	"qga: exec: arguments are not valid UTF-8" $QGA --targets "$M/live" exec /bin/true "$(printf '\377')"
printf 'a file\n' >"$M/file"
$QGA -s "$M/a1.sock" -s "$M/a2.sock" put "$M/file" closed <&-
expect "many: put FILE with stdin closed copies the file, not stdin" \
	test "$(cat "$M/a1/closed" "$M/a2/closed")" = "a file${nl}a file"
rm -rf "$M/got"
check "many: get from 50 agents" 0 '' '' $QGA -t 60 --targets "$M/live" get marker "$M/got"
# Each target's folder is named after its address, / made _.
d=$(echo "${M#/}" | tr / _)
bad=0
i=1
while [ $i -le 50 ]; do
	[ "$(cat "$M/got/${d}_a$i.sock/marker" 2>/dev/null)" = "agent $i" ] || bad=$((bad + 1))
	i=$((i + 1))
done
expect "many: get puts each in LOCAL/TARGET/ ($bad wrong)" test $bad = 0 -a "$(ls "$M/got" | wc -l)" = 50

# An interrupted get of several: each child undoes its own copy.
truncate -s 4G "$M/a1/huge" "$M/a2/huge"
rm -rf "$M/int"
$QGA -s "$M/a1.sock" -s "$M/a2.sock" get huge "$M/int" 2>"$M/int.err" &
g=$!
both_copying() { [ "$(find "$M/int" -type f -size +1M 2>/dev/null | wc -l)" -ge 2 ]; }
wait_until 60 both_copying
kill -INT $g
wait $g
st=$?
rm -f "$M/a1/huge" "$M/a2/huge"
expect "many: an interrupted get exits 130" test $st = 130
expect "many: and leaves no partial copy ($(find "$M/int" -type f | wc -l) files)" \
	test "$(find "$M/int" -type f | wc -l)" = 0
expect "many: each says it was interrupted" test "$(grep -c 'interrupted' "$M/int.err")" -ge 2

check "many: wait over several: the missing one times out, alone" 4 '' \
	"$M/missing.sock	qga: $M/missing.sock: no agent answered within 1 s${nl}qga: 1 of 3 failed: $M/missing.sock (4)" \
	$QGA -s "$M/a1.sock" -s "$M/a2.sock" -s "$M/missing.sock" wait -T 1
check "many: an information table, tagged" 0 "$M/a1.sock	$(hostname)${nl}$M/a2.sock	$(hostname)" '' \
	sh -c "$QGA -s '$M/a1.sock' -s '$M/a2.sock' hostname | sort"

# What works on one agent alone says so; -P wants a number.
check "many: serve takes one agent" 2 '' 'qga: serve works on one agent: give one -s' \
	$QGA -s "$M/a1.sock" -s "$M/a2.sock" serve --listen "$M/proxy.sock"
check "many: fsfreeze --run takes one agent" 2 '' \
	'qga: fsfreeze --run works on one agent: give one -s' \
	$QGA -s "$M/a1.sock" -s "$M/a2.sock" fsfreeze --run true
check "many: a bad -P" 2 '' "qga: bad -P '0': expected a number of targets" \
	$QGA -P 0 -s "$M/a1.sock" -s "$M/a2.sock" ping
check "many: a missing --targets file" 3 '' \
	"qga: open $M/none: No such file or directory" $QGA --targets "$M/none" ping
check "many: -q leaves the summary out" 3 '' "$M/missing.sock	qga: connect $M/missing.sock: No such file or directory" \
	$QGA -q -s "$M/a1.sock" -s "$M/missing.sock" ping

alive=$(pgrep -f "$M/a[0-9]*.sock" | wc -l)
expect "many: all 50 agents live after it all ($alive)" test "$alive" = 50

# qga ls: a Proxmox folder, libvirt's two, live, dead and held sockets.
ls_ns() {
	env -u QGA_SOCKET unshare -m sh -c '
	mount -t tmpfs qga-test /run && mount -t tmpfs qga-test /var/lib &&
	mkdir -p /run/qemu-server /run/libvirt/qemu/channel/4-db \
		/var/lib/libvirt/qemu/channel/target/domain-3-web &&
	ln -s "$1/a1.sock" /run/qemu-server/101.qga &&
	ln -s "$1/refused1.sock" /run/qemu-server/102.qga &&
	ln -s "$1/a4.sock" /run/qemu-server/103.qmp &&
	ln -s "$1/a2.sock" /var/lib/libvirt/qemu/channel/target/domain-3-web/org.qemu.guest_agent.0 &&
	ln -s "$1/silent1.sock" /var/lib/libvirt/qemu/channel/target/old.org.qemu.guest_agent.0 &&
	ln -s "$1/a3.sock" /run/libvirt/qemu/channel/4-db/org.qemu.guest_agent.0 &&
	shift && exec "$@"' ls_ns "$M" "$@"
}
if ls_ns true 2>/dev/null; then
	socat -u UNIX-CONNECT:"$M/a3.sock" /dev/null &
	holder=$!
	wait_until 30 grep -q " 03 .*$M/a3.sock" /proc/net/unix
	ver=$($QGA -s "$M/a5.sock" -r guest-info | sed 's/.*"version": "\([^"]*\)".*/\1/')
	ls_ns $QGA -j ls >"$M/out" 2>"$M/err"
	st=$?
	for l in \
		'{"address":"/run/libvirt/qemu/channel/4-db/org.qemu.guest_agent.0","name":"db","agent":"held by libvirtd","version":null,"os":null}' \
		'{"address":"/var/lib/libvirt/qemu/channel/target/domain-3-web/org.qemu.guest_agent.0","name":"web","agent":"up","version":"'"$ver"'","os":"*"}' \
		'{"address":"/var/lib/libvirt/qemu/channel/target/old.org.qemu.guest_agent.0","name":"old","agent":"no answer","version":null,"os":null}' \
		'{"address":"/var/run/qemu-server/101.qga","name":"101","agent":"up","version":"'"$ver"'","os":"*"}' \
		'{"address":"/var/run/qemu-server/102.qga","name":"102","agent":"Connection refused","version":null,"os":null}'
	do
		# shellcheck disable=SC2254
		expect "ls: $(echo "$l" | cut -c1-70)" sh -c 'while read -r x; do case $x in $1) exit 0;; esac; done <"$2"; exit 1' sh "$l" "$M/out"
	done
	expect "ls: not a .qmp socket, and nothing else (status $st)" \
		test $st = 0 -a "$(grep -vc '/tmp/qga.sock' "$M/out")" = 5
	expect "ls: says how to reach the agent libvirtd holds" test "$(cat "$M/err")" = \
		"qga: ls: libvirtd holds an agent: ask it through libvirt, as in virsh qemu-agent-command db '{\"execute\":\"guest-ping\"}'"
	ls_ns $QGA ls -d "$M" >"$M/out" 2>"$M/err"
	expect "ls: a table, with --dir's sockets" grep -q \
		"^$M/a9.sock  *a9.sock  *up  *$ver  " "$M/out"
	expect "ls: the table's header" grep -q '^ADDRESS  *NAME  *AGENT  *VERSION  *OS$' "$M/out"
	check "ls: its lines serve as --targets" 0 "$M/a1.sock	agent 1${nl}$M/a2.sock	agent 2" '' \
		sh -c "grep '/a[12].sock ' '$M/out' >'$M/t2'; $QGA --targets '$M/t2' sh 'cat marker' | sort"
	kill $holder 2>/dev/null
	wait $holder 2>/dev/null
	expect "ls: the held agent lives" sh -c "$QGA -s '$M/a3.sock' ping"
else
	skip "qga ls over host folders: no mount namespace here"
fi
