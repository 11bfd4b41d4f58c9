# SPDX-License-Identifier: MIT
# qga against QEMU's QMP monitor: a greeting, capabilities, CRLF, events.
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
check "QMP echoes an id" 0 '{"return": {}, "id": "q1"}' '' \
	$QGA -s "$S" '{"execute":"query-name","id":"q1"}'
printf 'stop\nquery-status\ncont\nquery-status\n' >"$T/batch"
check "QMP events are skipped" 0 '{}
{"status": "paused", *"running": false}
{}
{"status": "running", *"running": true}' '' $QGA -s "$S" -r - <"$T/batch"
expect "QEMU survived" alive qemu
