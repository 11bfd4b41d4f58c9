# SPDX-License-Identifier: MIT
# qga against QEMU's QMP monitor: a greeting, capabilities, CRLF, events.
need_tool qemu-system-x86_64 qemu-system-x86
Q=$T/qmp
mkdir -p "$Q"
rm -f "$Q/qmp.sock"
start qemu qemu-system-x86_64 -M none -nodefaults -display none \
	-qmp unix:"$Q/qmp.sock",server=on,wait=off
wait_for "$Q/qmp.sock"
S=unix:$Q/qmp.sock

check "QMP is detected by its greeting" 0 '{"return": {"qemu": {*}, "package": "*"}}' '' \
	$QGA -s "$S" query-version
check "--qmp" 0 '{"return": {"status": "running", *"running": true}}' '' \
	$QGA -s "$S" --qmp query-status
check "a QMP error reply" 1 '' \
	'qga: query-nope: CommandNotFound: The command query-nope has not been found' \
	$QGA -s "$S" query-nope
check "a QMP argument error" 1 '' \
	"qga: query-version: GenericError: Parameter 'x' is unexpected" \
	$QGA -s "$S" --qmp query-version x=1
# Several targets ask from one process, through the engine, which tells
# a monitor by its greeting too.
check "QMP is detected among several targets" 0 "$Q/qmp.sock	{\"return\": {\"status\": \"running\", *\"running\": true}}
unix:$Q/qmp.sock	{\"return\": {\"status\": \"running\", *\"running\": true}}" '' \
	sh -c "$QGA -s '$Q/qmp.sock' -s '$S' query-status | sort"
check "a guest agent's command on several monitors" 2 '' \
	"*	qga: *qmp.sock is a QMP monitor, not a guest agent: guest-get-host-name is the guest agent's
*	qga: *qmp.sock is a QMP monitor, not a guest agent: guest-get-host-name is the guest agent's
qga: 2 of 2 failed: *" $QGA -s "$Q/qmp.sock" -s "$S" hostname
check "QMP echoes an id" 0 '{"return": {}, "id": "q1"}' '' \
	$QGA -s "$S" '{"execute":"query-name","id":"q1"}'
printf 'stop\nquery-status\ncont\nquery-status\n' >"$T/batch"
check "QMP events are skipped" 0 '{}
{"status": "paused", *"running": false}
{}
{"status": "running", *"running": true}' '' $QGA -s "$S" -r - <"$T/batch"
# serve takes QEMU's QMP for one with --qmp only, its greeting and
# qmp_capabilities each a step of its loop.
start qproxy $QGA -s "$S" --qmp serve -q --listen "$Q/proxy.sock"
wait_for "$Q/proxy.sock"
check "serve --qmp" 0 '{"return": {"status": "running", *"running": true}}' '' \
	$QGA -s "$Q/proxy.sock" query-status
kill "$PID_qproxy"
wait "$PID_qproxy"
start qproxy2 $QGA -s "$S" serve -q --listen "$Q/proxy2.sock"
wait_for "$Q/proxy2.sock"
check "serve without --qmp: not taken for a guest agent" 3 '' \
	"qga: query-status: AgentUnavailable: the guest agent is unavailable: it greets as QMP does, where a guest agent's sync was expected: for a QMP monitor, give --qmp" \
	$QGA -s "$Q/proxy2.sock" query-status
kill "$PID_qproxy2"
wait "$PID_qproxy2"
expect "QEMU survived" alive qemu
