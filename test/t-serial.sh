# SPDX-License-Identifier: MIT
# qga over serial lines, where stale replies outlive the client that asked:
# the agent on one end of a pty, as on a virtio-serial or isa-serial port.
need_tool "$QEMU_GA" qemu-guest-agent
need_tool socat socat
R=$T/serial
mkdir -p "$R/state" "$R/state2"

# A unix socket relayed to the pty, as QEMU's chardev does; -t0 keeps late
# replies in the pty for the next client.
start ptyrig socat -t0 PTY,link="$R/tty",rawer,wait-slave UNIX-LISTEN:"$R/serial.sock",fork
wait_for "$R/tty"
start serialagent "$QEMU_GA" --method=isa-serial --path="$R/tty" \
	--statedir="$R/state" --logfile="$R/qga.log" --block-rpcs="$BLOCK"
wait_for "$R/serial.sock"
S=unix:$R/serial.sock
i=0
until $QGA -s "$S" -t 1 guest-ping >/dev/null 2>&1 || [ $i -gt 20 ]; do
	i=$((i + 1)); sleep 0.1
done

# A client that asks and leaves: its reply waits in the channel. The agent
# is stopped meanwhile, so that the client is surely gone when it answers.
leave_stale() {
	kill -STOP "$PID_serialagent"
	printf '{"execute":"guest-get-host-name","id":"%s"}' "$1" |
		socat -t0 - UNIX-CONNECT:"$R/serial.sock" >/dev/null
	sleep 0.1
	kill -CONT "$PID_serialagent"
	sleep 0.2
}
leave_stale stale1
check "without resync, a stale reply is read" 0 '{"return": {"host-name": "*"}, "id": "stale1"}' '' \
	$QGA -s "$S" --no-sync guest-ping
leave_stale stale2
check "resync discards stale replies" 0 '{"return": {}, "id": "mine"}' '' \
	$QGA -s "$S" '{"execute":"guest-ping","id":"mine"}'
leave_stale stale3
leave_stale stale4
printf 'guest-ping\n{"execute":"guest-ping","id":"b2"}\n' >"$T/batch"
check "a batch after stale replies" 0 '{"return": {}}
{"return": {}, "id": "b2"}' '' $QGA -s "$S" - <"$T/batch"

# A serial device opened directly: two ptys joined, the agent on one.
start ptypair socat PTY,link="$R/a",rawer,wait-slave PTY,link="$R/b",rawer
wait_for "$R/a"
start ptyagent "$QEMU_GA" --method=isa-serial --path="$R/a" \
	--statedir="$R/state2" --logfile="$R/qga2.log" --block-rpcs="$BLOCK"
wait_for "$R/b"
i=0
until $QGA -s serial:"$R/b" -t 1 guest-ping >/dev/null 2>&1 || [ $i -gt 20 ]; do
	i=$((i + 1)); sleep 0.1
done
check "serial:PATH" 0 '{"return": {}}' '' $QGA -s serial:"$R/b" guest-ping
check "a bare character device is serial" 0 '{"return": {"host-name": "*"}}' '' \
	$QGA -s "$R/b" guest-get-host-name

# A line with no agent behind it answers nothing, as a guest without one.
start silent socat PTY,link="$R/c",rawer PTY,link="$R/d",rawer
wait_for "$R/d"
check "no agent on the line: a timeout" 4 '' \
	"qga: no answer from a guest agent at serial:$R/d within 0.300 s: is qemu-guest-agent running in the guest?" \
	$QGA -s serial:"$R/d" -t 0.3 guest-ping
expect "the serial agents survived" alive serialagent
expect "the pty agent survived" alive ptyagent
