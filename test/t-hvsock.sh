# SPDX-License-Identifier: MIT
# hvsock:PATH:PORT, the vsock of Firecracker and Cloud Hypervisor as their
# VMM serves it on a unix socket. No such VMM runs here: a stand-in does
# exactly the documented handshake (read "CONNECT PORT\n", answer
# "OK HOSTPORT\n" for the guest's port 52, close for any other) and then
# relays to a real qemu-ga on a unix socket.
need_tool "$QEMU_GA" qemu-guest-agent
need_tool socat socat
Z=$T/hv
mkdir -p "$Z/state"
rm -f "$Z/qga.sock" "$Z/vmm.sock" "$Z/odd.sock"
start hvagent "$QEMU_GA" --method=unix-listen --path="$Z/qga.sock" \
	--statedir="$Z/state" --logfile="$Z/qga.log" --block-rpcs="$BLOCK"
wait_for "$Z/qga.sock"
cat >"$Z/vmm" <<SH
read cmd port
[ "\$cmd \$port" = "CONNECT 52" ] || exit 0
echo "OK 1073741824"
exec socat - UNIX-CONNECT:"$Z/qga.sock"
SH
start vmm socat UNIX-LISTEN:"$Z/vmm.sock",fork SYSTEM:"sh $Z/vmm"
start oddvmm socat UNIX-LISTEN:"$Z/odd.sock",fork SYSTEM:"read cmd port; echo 'ERR no listener'"
wait_for "$Z/vmm.sock"
wait_for "$Z/odd.sock"

check "hvsock: ping through the handshake" 0 '' '' $QGA -s "hvsock:$Z/vmm.sock:52" ping
check "hvsock: a raw command" 0 '{"return": {}}' '' $QGA -s "hvsock:$Z/vmm.sock:52" guest-ping
check "hvsock: exec" 0 'hi' '' $QGA -s "hvsock:$Z/vmm.sock:52" sh 'echo hi'
printf 'guest-ping\nguest-get-host-name\n' >"$Z/batch"
check "hvsock: a batch" 0 "{}${nl:-
}{\"host-name\": \"*\"}" '' $QGA -s "hvsock:$Z/vmm.sock:52" -r - <"$Z/batch"
check "hvsock: a port with no listener: the VMM closes" 3 '' \
	"qga: hvsock:$Z/vmm.sock:53: the VMM answered '' to CONNECT 53, not OK (is the guest's agent listening on vsock port 53?)" \
	$QGA -s "hvsock:$Z/vmm.sock:53" ping
check "hvsock: an answer that is not OK" 3 '' \
	"qga: hvsock:$Z/odd.sock:52: the VMM answered 'ERR no listener' to CONNECT 52, not OK (is the guest's agent listening on vsock port 52?)" \
	$QGA -s "hvsock:$Z/odd.sock:52" ping
check "hvsock: no port" 2 '' "qga: bad address 'hvsock:$Z/vmm.sock': expected hvsock:PATH:PORT" \
	$QGA -s "hvsock:$Z/vmm.sock" ping
check "hvsock: no VMM socket" 3 '' "qga: connect hvsock:$Z/none.sock:52: No such file or directory" \
	$QGA -s "hvsock:$Z/none.sock:52" ping
expect "hvsock: the agent lives" alive hvagent
# serve takes the handshake as a step of its loop.
start hvproxy $QGA -s "hvsock:$Z/vmm.sock:52" serve -q --listen "$Z/proxy.sock"
start hvproxy53 $QGA -s "hvsock:$Z/vmm.sock:53" serve -q --listen "$Z/proxy53.sock"
wait_for "$Z/proxy.sock"
wait_for "$Z/proxy53.sock"
check "hvsock: serve through the handshake" 0 '{"return": {}}' '' $QGA -s "$Z/proxy.sock" guest-ping
check "hvsock: serve, a port with no listener" 3 '' \
	"qga: guest-ping: AgentUnavailable: the guest agent is unavailable: the VMM answered '' to CONNECT 53, not OK (is the guest's agent listening on vsock port 53?)" \
	$QGA -s "$Z/proxy53.sock" guest-ping
kill "$PID_hvproxy" "$PID_hvproxy53"
