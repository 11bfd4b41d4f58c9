# SPDX-License-Identifier: MIT
# qga against an agent that misbehaves in ways the real one does not.
need_tool /usr/bin/time time
F=$T/fake
mkdir -p "$F"

# fake SCENARIO: starts the fake agent and sets S to its address.
fake() {
	rm -f "$F/$1.sock"
	start "fake_$1" "$PWD/test/fakeagent" "$F/$1.sock" "$1"
	wait_for "$F/$1.sock"
	S=unix:$F/$1.sock
}

fake ok
check "fake: a plain reply" 0 '{"return": {}}' '' $QGA -s "$S" guest-ping
fake split
check "fake: replies one byte at a time" 0 '{"return": {}}' '' $QGA -s "$S" guest-ping
printf 'guest-ping\nguest-ping\n' >"$T/batch"
check "fake: a batch one byte at a time" 0 '{"return": {}}
{"return": {}}' '' $QGA -s "$S" - <"$T/batch"
fake nonl
check "fake: a reply without a newline" 0 '{"return": {}}' '' $QGA -s "$S" guest-ping
fake stale
check "fake: stale bytes and wrong ids before the sync" 0 '{"return": {}}' '' \
	$QGA -s "$S" guest-ping

# A short program may end after qga's first look for its output file and
# before its look at the status: the file is there, and is streamed.
fake lateopen
check "fake: a program that ended before its file was looked at again is streamed" 0 \
	'hello' '' $QGA -s "$S" exec --stream --merge -- /bin/true

fake stall
t0=$(date +%s%N)
check "fake: a stalled agent times out" 4 '' \
	"qga: no answer from a guest agent at $S within 0.500 s: is qemu-guest-agent running in the guest? another client (libvirtd, qga serve) may hold this socket" $QGA -s "$S" -t 0.5 guest-ping
t1=$(date +%s%N)
# Not the default 10 s: well below it, however loaded the machine.
expect "fake: the timeout is kept, not the default ($(((t1 - t0) / 1000000)) ms)" \
	test $(((t1 - t0) / 1000000)) -lt 5000
check "fake: --no-sync times out on the command" 4 '' \
	"qga: $S: no reply to guest-ping within 0.200 s" $QGA -s "$S" -t 0.2 --no-sync guest-ping
fake deaf
# A request larger than the socket's buffers, to an agent that no longer
# reads: the send is what must time out.
head -c 4194304 /dev/zero | tr '\0' a |
	sed 's/^/{"execute":"guest-ping","arguments":{"pad":"/; s/$/"}}/' >"$F/big.req"
check "fake: an agent that stops reading times out on sending" 4 '' \
	"qga: $S: no room to send within 0.500 s" $QGA -s "$S" -t 0.5 - <"$F/big.req"

fake garbage
check "fake: garbage" 5 '' "qga: $S: garbage instead of reply to guest-ping: this is not JSON?" \
	$QGA -s "$S" guest-ping
fake invalid
check "fake: invalid JSON in a reply" 5 '' \
	"qga: $S: invalid JSON in reply at offset 19: {\"return\": {\"a\": 1,}}" $QGA -s "$S" guest-ping
fake close
check "fake: closed mid-reply" 3 '' \
	"qga: $S: connection closed while waiting for reply to guest-ping" $QGA -s "$S" guest-ping
fake deep
check "fake: a reply nested too deep" 5 '' "qga: $S: reply nested deeper than 1024" \
	$QGA -s "$S" guest-ping
fake big
check "fake: an endless reply is refused" 5 '' \
	"qga: $S: reply larger than 1048576 bytes (see --max-reply)" \
	$QGA -s "$S" --max-reply 1M guest-ping
if [ "$QGA" = "$PWD/qga" ]; then
	/usr/bin/time -f %M -o "$T/rss" $QGA -s "$S" --max-reply 4M guest-ping 2>/dev/null
	rss=$(tail -n 1 "$T/rss")
	expect "fake: memory stays bounded by --max-reply (peak $rss KiB)" test "$rss" -lt 16384
fi

fake qmp
check "fake QMP: 5000 events before the reply" 0 '{"events": "skipped"}' '' \
	$QGA -s "$S" -r query-status
check "fake QMP: --qmp" 0 '{"return": {"events": "skipped"}}' '' \
	$QGA -s "$S" --qmp query-status

fake qmpnocap
check "fake QMP: a refused negotiation says QEMU's words, once" 5 '' \
	"qga: $S: QMP negotiation failed: qmp_capabilities: GenericError: Capabilities negotiation is already complete, command ignored" \
	$QGA -s "$S" query-status

fake refused
kill -9 "$PID_fake_refused"
wait "$PID_fake_refused" 2>/dev/null
check "a socket nobody listens on" 3 '' "qga: connect $F/refused.sock: Connection refused" \
	$QGA -s "$F/refused.sock" guest-ping
