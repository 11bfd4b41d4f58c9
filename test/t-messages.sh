# Failures a user can act on: what is known, and what to check, against
# real peers: QEMU's chardev with no agent behind it, an agent socket held
# by another client, a QMP monitor asked for an agent command, the default
# socket missing; and qemu-ga 10.0's silent cut of exec output.
need_tool qemu-ga qemu-guest-agent
need_tool qemu-system-x86_64 qemu-system-x86
W=$T/messages
mkdir -p "$W/held"
rm -f "$W"/*.sock
hint="is qemu-guest-agent running in the guest? another client (libvirtd, qga serve) may hold this socket"
start nochar qemu-system-x86_64 -M pc -S -nodefaults -display none \
	-chardev socket,path="$W/chardev.sock",server=on,wait=off,id=qga0 \
	-device virtio-serial -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0 \
	-qmp unix:"$W/qmp.sock",server=on,wait=off
start heldagent qemu-ga --method=unix-listen --path="$W/held.sock" --statedir="$W/held" \
	--logfile="$W/held.log" --block-rpcs="$BLOCK"
wait_for "$W/chardev.sock"
wait_for "$W/qmp.sock"
wait_for "$W/held.sock"
check "messages: QEMU's chardev with no agent in the guest" 4 '' \
	"qga: no answer from a guest agent at $W/chardev.sock within 0.500 s: $hint" \
	$QGA -s "$W/chardev.sock" -t 0.5 ping
# Another client holds the agent: the agent serves it alone.
start holder $QGA -s "$W/held.sock" serve -q --listen unix:"$W/holder.sock"
wait_for "$W/holder.sock"
check "messages: a socket another client holds" 4 '' \
	"qga: no answer from a guest agent at $W/held.sock within 0.500 s: $hint" \
	$QGA -s "$W/held.sock" -t 0.5 ping
kill "$PID_holder"
wait "$PID_holder"
check "messages: and once it lets go, the agent answers" 0 '' '' $QGA -s "$W/held.sock" ping
check "messages: an agent command to a QMP monitor" 2 '' \
	"qga: $W/qmp.sock is a QMP monitor, not a guest agent: guest-ping is the guest agent's" \
	$QGA -s "$W/qmp.sock" ping
check "messages: a raw QMP command there works" 0 '{"return": {"status": "prelaunch", *}}' '' \
	$QGA -s "$W/qmp.sock" query-status
# A private /tmp has no /tmp/qga.sock; qga, which may live under /tmp, is
# run through a descriptor opened before.
if unshare -m true 2>/dev/null; then
	check "messages: the default socket missing" 3 '' \
		"qga: connect /tmp/qga.sock: No such file or directory (the default address: give the agent's with -s ADDR or QGA_SOCKET)" \
		env -u QGA_SOCKET unshare -m sh -c \
		"exec 9<'$QGA' && mount -t tmpfs none /tmp && exec /proc/self/fd/9 ping"
else
	skip "the default socket test: no mount namespace here"
fi
if [ -n "$GA10" ]; then
	mkdir -p "$W/ten"
	start agent10 "$GA10" --method=unix-listen --path="$W/ten.sock" --statedir="$W/ten" \
		--logfile="$W/ten.log" --block-rpcs="$BLOCK"
	wait_for "$W/ten.sock"
	$QGA -s "$W/ten.sock" sh --no-stream 'head -c 16777217 /dev/zero' >"$W/cut" 2>"$W/cut.err"
	expect "messages: qemu-ga 10.0 cuts exec output at 16 MiB" test "$(wc -c <"$W/cut")" = 16777216
	expect "messages: and qga says so, though the agent does not" \
		grep -q "the agent truncated the program's stdout" "$W/cut.err"
	expect "messages: the 10.0 agent lives" alive agent10
else
	skip "exec output cut by qemu-ga 10.0: $GA10_WHY"
fi
expect "messages: QEMU lives" alive nochar
expect "messages: the held agent lives" alive heldagent
