# SPDX-License-Identifier: MIT
# qga against the real guest agent, listening on a unix socket.
need_tool "$QEMU_GA" qemu-guest-agent
need_tool socat socat
A=$T/agent
mkdir -p "$A/state"
rm -f "$A/qga.sock"
start agent "$QEMU_GA" --method=unix-listen --path="$A/qga.sock" \
	--statedir="$A/state" --logfile="$A/qga.log" --block-rpcs="$BLOCK"
wait_for "$A/qga.sock"
S=unix:$A/qga.sock
nl='
'

check "ping" 0 '{"return": {}}' '' $QGA -s "$S" guest-ping
check "a bare path is a socket" 0 '{"return": {}}' '' $QGA -s "$A/qga.sock" guest-ping
check "QGA_SOCKET names the agent" 0 '{"return": {}}' '' \
	env QGA_SOCKET="$A/qga.sock" $QGA guest-ping
check "-s wins over QGA_SOCKET" 0 '{"return": {}}' '' \
	env QGA_SOCKET=/nonexistent $QGA --socket="$S" guest-ping
check "a bare command name" 0 '{"return": {"host-name": "?*"}}' '' \
	$QGA -s "$S" guest-get-host-name
check "a JSON request, as given" 0 '{"return": {}, "id": {"a": \[1, "b"\]}}' '' \
	$QGA -s "$S" '{"execute":"guest-ping","id":{"a":[1,"b"]}}'
check "-r prints the return value" 0 '{"version": "*", "supported_commands": \[{*}\]}' '' \
	$QGA -s "$S" -r '{"execute": "guest-info"}'
check "key=value: a number stays a number" 0 '42' '' $QGA -s "$S" -r guest-sync id=42
check "key=value: a quoted string stays a string" 1 '' \
	"qga: guest-sync: GenericError: Invalid parameter type for 'id', expected: integer" \
	$QGA -s "$S" guest-sync 'id="42"'
check "-p indents" 0 "{$nl  \"return\": {$nl    \"zone\": \"*\",$nl    \"offset\": *$nl  }$nl}" '' \
	$QGA -s "$S" -p guest-get-timezone
check "-p keeps empty objects" 0 '{}' '' $QGA -s "$S" -p -r guest-ping

check "an error reply" 1 '' \
	'qga: guest-nope: CommandNotFound: The command guest-nope has not been found' \
	$QGA -s "$S" guest-nope
check "a blocked command" 1 '' \
	'qga: guest-shutdown: CommandNotFound: Command guest-shutdown has been disabled*' \
	$QGA -s "$S" guest-shutdown
check "an unexpected argument" 1 '' \
	"qga: guest-ping: GenericError: Parameter 'x' is unexpected" \
	$QGA -s "$S" guest-ping x=1

# Files, raw: open, write, read back, close.
h=$($QGA -s "$S" -r guest-file-open path="$A/hello" mode=w+)
expect "guest-file-open gives a handle" test "$h" -ge 1000
check "guest-file-write" 0 '{"return": {"count": 6, "eof": false}}' '' \
	$QGA -s "$S" guest-file-write handle="$h" buf-b64=aGVsbG8K
check "guest-file-seek" 0 '{"return": {"eof": false, "position": 0}}' '' \
	$QGA -s "$S" guest-file-seek handle="$h" offset=0 whence=set
check "guest-file-read" 0 '{"count": 6, "buf-b64": "aGVsbG8K", "eof": true}' '' \
	$QGA -s "$S" -r guest-file-read handle="$h"
check "guest-file-close" 0 '{"return": {}}' '' $QGA -s "$S" guest-file-close handle="$h"
expect "the file holds what was written" test "$(cat "$A/hello")" = hello

# Exec, raw: an argument array with spaces, then polling the status.
pid=$($QGA -s "$S" -r guest-exec path=/bin/sh \
	arg='["-c", "printf hi; printf err >&2; exit 3"]' capture-output=true)
pid=${pid#*: } pid=${pid%\}}
expect "guest-exec gives a pid" test "$pid" -gt 0
i=0
while st=$($QGA -s "$S" -r guest-exec-status pid="$pid") &&
	case $st in *'"exited": false'*) true;; *) false;; esac && [ $i -lt 600 ]; do
	i=$((i + 1))
	sleep 0.05
done
check_status() { printf '%s\n' "$st"; }
check "guest-exec-status" 0 '{"exitcode": 3, "err-data": "ZXJy", "out-data": "aGk=", *"exited": true}' '' \
	check_status

# A batch: one reply a line in order, errors included, over one connection.
batch='guest-ping
{"execute":"guest-ping","id":2}

# a comment
guest-sync id=3
guest-nope
  guest-exec path=/bin/echo arg=["a b", "c"]   capture-output=true'
printf '%s\n' "$batch" >"$T/batch"
check "batch" 1 "{\"return\": {}}$nl{\"return\": {}, \"id\": 2}$nl{\"return\": 3}$nl{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command guest-nope has not been found\"}}$nl{\"return\": {\"pid\": *}}" \
	'qga: guest-nope: CommandNotFound: The command guest-nope has not been found' \
	$QGA -s "$S" - <"$T/batch"
check "batch with -r, from a pipe without -" 0 "{}$nl{}${nl}7" '' \
	sh -c "printf 'guest-ping\nguest-ping\nguest-sync id=7' | $QGA -s '$S' -r"
check "batch: invalid JSON stops before it is sent" 2 '{"return": {}}' \
	'qga: stdin line 2: invalid JSON at offset 10: {"execute"}' \
	sh -c "printf 'guest-ping\n{\"execute\"}\nguest-ping\n' | $QGA -s '$S'"

# A half request left by another client poisons the agent's parser for
# every later client; only a 0xFF clears it.
printf '{"execute":"guest-ping"' | socat -t0.2 - UNIX-CONNECT:"$A/qga.sock"
check "a poisoned parser swallows requests (--no-sync)" 4 '' \
	"qga: $S: no reply to guest-ping within 0.500 s" \
	$QGA -s "$S" --no-sync -t 0.5 guest-ping
check "resync cures a poisoned parser" 0 '{"return": {}}' '' $QGA -s "$S" guest-ping

# Usage errors come before anything is sent.
check "invalid JSON is a usage error" 2 '' \
	'qga: invalid JSON at offset 11: {"execute":,}' $QGA -s /nonexistent '{"execute":,}'
check "a request must be an object" 2 '' \
	'qga: nothing may follow a JSON request' $QGA -s /nonexistent '{}' x=1
check "key=value wants an =" 2 '' \
	"qga: guest-ping: expected key=value, got 'x'" $QGA -s /nonexistent guest-ping x
check "a bad tcp address" 2 '' \
	"qga: bad address 'tcp:localhost': expected tcp:HOST:PORT" $QGA -s tcp:localhost guest-ping
check "a bad tcp port" 2 '' \
	"qga: bad port in 'tcp:localhost:65536'" $QGA -s tcp:localhost:65536 guest-ping
check "a bad vsock address" 2 '' \
	"qga: bad address 'vsock:2:x': expected vsock:CID:PORT" $QGA -s vsock:2:x guest-ping
check "a regular file is no address" 2 '' \
	"qga: $A/hello: not a socket or character device" $QGA -s "$A/hello" guest-ping
check "a bad timeout" 2 '' "qga: bad timeout '1x': expected seconds" $QGA -t 1x guest-ping
check "a bad --max-reply" 2 '' \
	"qga: bad --max-reply '9Q': expected bytes (at least 64)" $QGA --max-reply 9Q guest-ping
check "an unknown option" 2 '' "qga: unknown option '--frob'${nl}usage: qga \[OPTIONS\] COMMAND*" \
	$QGA --frob guest-ping
check "--help" 0 'usage: qga*exit status: 0 success;*' '' $QGA --help
check "--version" 0 'qga *' '' $QGA --version
check "a missing socket" 3 '' \
	"qga: connect $A/nope.sock: No such file or directory" $QGA -s "$A/nope.sock" guest-ping

# TCP, through a loopback relay on a port the kernel chose.
relay relay 127.0.0.1 "$A/qga.sock"
port=$PORT
check "tcp:HOST:PORT" 0 '{"return": {}}' '' $QGA -s tcp:127.0.0.1:$port guest-ping
check "tcp with a host name" 0 '{"return": {}}' '' $QGA -s tcp:localhost:$port guest-ping
check "tcp refused" 3 '' "qga: connect tcp:127.0.0.1:1: Connection refused" \
	$QGA -s tcp:127.0.0.1:1 guest-ping
# A name's addresses are tried in turn: ::1 refuses, 127.0.0.1 answers.
# The hosts file is mounted over /etc/hosts in a namespace of qga's own.
printf '# names\n::1 agent.test\n\n127.0.0.1\tother  agent.test # relay\n' >"$A/hosts"
if "$IN_NS" "$A/hosts" "$NORESOLV" true 2>/dev/null; then
	check "tcp: a name's addresses from /etc/hosts, in turn" 0 '{"return": {}}' '' \
		"$IN_NS" "$A/hosts" "$NORESOLV" $QGA -s tcp:agent.test:$port guest-ping
else
	skip "the /etc/hosts test: no mount namespace here"
fi
# pve:VMID is Proxmox's /var/run/qemu-server/VMID.qga: a namespace of the
# test's own holds it, so that nothing of the machine's /run is touched.
pve() {
	unshare -m sh -c 'mount -t tmpfs qga-test /run && mkdir /run/qemu-server &&
		ln -s "$1" /run/qemu-server/101.qga && shift && exec "$@"' pve "$A/qga.sock" "$@"
}
if pve true 2>/dev/null; then
	check "pve:VMID: Proxmox's path" 0 '{"return": {}}' '' pve $QGA -s pve:101 guest-ping
	check "pve:VMID: a VM without its socket" 3 '' \
		'qga: connect /var/run/qemu-server/102.qga: No such file or directory' \
		pve $QGA -s pve:102 guest-ping
else
	skip "the pve:VMID test: no mount namespace here"
fi
check "pve: a VMID is a number" 2 '' "qga: bad address 'pve:vm1': expected pve:VMID" \
	$QGA -s pve:vm1 guest-ping
if grep -q '00000000000000000000000000000001 .* lo$' /proc/net/if_inet6 2>/dev/null; then
	relay relay6 '[::1]' "$A/qga.sock"
	check "tcp:[IPv6]:PORT" 0 '{"return": {}}' '' $QGA -s "tcp:[::1]:$PORT" guest-ping
else
	skip "the IPv6 test: no ::1 on lo"
fi
# No vsock transport here: the attempt must fail plainly.
check "vsock without a transport" 3 '' "qga: * vsock:3:1234: *" $QGA -s vsock:3:1234 -t 1 guest-ping

check "--qmp on a guest agent" 4 '' "qga: $S: no QMP greeting within 0.300 s" \
	$QGA -s "$S" --qmp -t 0.3 guest-ping
check "the agent is fine after that" 0 '{"return": {}}' '' $QGA -s "$S" guest-ping

expect "the agent survived every client" alive agent
