# SPDX-License-Identifier: MIT
# qga against an agent whose replies are hostile: control characters in
# every string it shows, things that are not addresses, replies of the
# wrong shape for each built-in, numbers at the edge of 64 bits, a reply
# of many small values, a program that never ends. Nothing of it may
# reach the terminal raw, nor be undefined behaviour under ./qga-asan.
R=$T/replies
mkdir -p "$R"
: >"$R/file"
start fake_replies "$PWD/test/fakeagent" "$R/sock" replies "$R/file"
wait_for "$R/sock"
S=unix:$R/sock

# answer LINE...: the fake agent's replies from its next connection on,
# each LINE "COMMAND REPLY" (the first space becomes the tab).
answer() {
	: >"$R/file"
	for _l; do printf '%s\n' "$_l" | sed 's/ /\t/' >>"$R/file"; done
}

# lit TEXT: TEXT as a pattern of check that matches TEXT alone.
lit() { printf '%s' "$1" | sed 's/[][\\*?]/\\&/g'; }

answer 'guest-get-host-name {"return": {"host-name": "a\u001b]0;owned\u0007b\u001b[2Jc\u009bd\u007fe\nf"}}'
check "hostile: a host name's OSC, CSI, C1, DEL and newline are escaped" 0 \
	"$(lit 'a\x1b]0;owned\x07b\x1b[2Jc\u009bd\x7fe\x0af')" '' $QGA -s "$S" hostname
answer 'guest-get-host-name {"error": {"class": "GenericError", "desc": "no\u001b[2J\u009b1m"}}'
check "hostile: an error's description is escaped" 1 '' \
	"$(lit 'qga: guest-get-host-name: GenericError: no\x1b[2J\u009b1m')" $QGA -s "$S" hostname
answer 'guest-get-osinfo {"return": {"na\u001bme": "Evil\u001b]2;x\u0007", "id": "linux"}}'
check "hostile: osinfo's names and values are escaped" 0 "$(lit 'na\x1bme: Evil\x1b]2;x\x07
id: linux')" '' $QGA -s "$S" osinfo
answer 'guest-get-users {"return": [{"user": "ro\u001b[2Jot", "domain": "D\u0085", "login-time": 1700000000.5}]}'
check "hostile: a table's cells are escaped" 0 "$(lit 'USER         DOMAIN   LOGIN (UTC)
ro\x1b[2Jot  D\u0085  2023-11-14T22:13:20Z')" '' $QGA -s "$S" users
answer 'guest-get-timezone {"return": {"zone": "\u001bc", "offset": 3600}}'
check "hostile: a time zone's name is escaped" 0 "$(lit '\x1bc +0100')" '' $QGA -s "$S" timezone
answer 'guest-ssh-get-authorized-keys {"return": {"keys": ["ssh-ed25519 AAAA\u001b[1A\rroot"]}}'
check "hostile: ssh-keys list escapes the keys" 0 "$(lit 'ssh-ed25519 AAAA\x1b[1A\x0droot')" '' \
	$QGA -s "$S" ssh-keys list root
answer 'guest-fsfreeze-status {"return": "thawed\u001b[2J"}'
check "hostile: fsfreeze status is escaped" 0 "$(lit 'thawed\x1b[2J')" '' \
	$QGA -s "$S" fsfreeze status
answer 'guest-info {"return": {"version": "9\u001b[2J", "supported_commands": []}}' \
	'guest-get-osinfo {"return": {"pretty-name": "O\tS\u009b"}}'
check "hostile: qga ls rows are escaped, a tab kept in its column" 0 \
	"*$(lit "$R/sock  -     up     9\\x1b[2J  O\\x09S\\u009b")*" '' env QGA_SOCKET="$R/sock" $QGA ls

# The addresses that ip prints go on command lines (ssh "$(qga ip)"):
# only what inet_pton takes, a zone of safe characters.
answer 'guest-network-get-interfaces {"return": [{"name": "eth0", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "-oProxyCommand=touch /tmp/x", "prefix": 24}, {"ip-address-type": "ipv4", "ip-address": "192.0.2.5", "prefix": 24}, {"ip-address-type": "ipv6", "ip-address": "fe80::1%eth0", "prefix": 64}, {"ip-address-type": "ipv6", "ip-address": "fe80::2%$(reboot)", "prefix": 64}, {"ip-address-type": "ipv4", "ip-address": "10.0.0.1\n-oX", "prefix": 8}]}]}'
check "hostile: ip prints addresses alone" 0 '192.0.2.5
fe80::1%eth0' "$(lit "qga: ip: '-oProxyCommand=touch /tmp/x' is not an address: left out
qga: ip: 'fe80::2%\$(reboot)' is not an address: left out
qga: ip: '10.0.0.1\\x0a-oX' is not an address: left out")" $QGA -s "$S" ip -a

# Numbers at the edge of 64 bits.
answer 'guest-get-timezone {"return": {"zone": "X", "offset": -9223372036854775808}}'
check "hostile: the most negative time zone offset" 0 'X -256204778801521530' '' \
	$QGA -s "$S" timezone
answer 'guest-get-fsinfo {"return": [{"mountpoint": "/", "type": "ext4", "used-bytes": 9223372036854775807, "total-bytes": 9223372036854775807}]}'
check "hostile: df of a filesystem of 2^63 bytes" 0 'Mounted on  Type  Device  Size  Used  Avail  Use%
/           ext4  -       8.0E  8.0E  0      100%' '' $QGA -s "$S" df

# Replies of the wrong shape: exit 5 and what was wrong, for each
# built-in that reads one.
while IFS='|' read -r cmd name reply want; do
	answer "$name $reply"
	# shellcheck disable=SC2086
	check "hostile: $cmd with a reply of the wrong shape" 5 '' \
		"$(lit "qga: $name: unexpected reply: $want")" $QGA -s "$S" $cmd
done <<'EOF'
info|guest-info|{"return": {"version": "1", "supported_commands": "all"}}|return.supported_commands is not an array
osinfo|guest-get-osinfo|{"return": [1, 2, 3]}|return is not an object
osinfo|guest-get-osinfo|{"return": {"id": 1}}|return.id is not a string
hostname|guest-get-host-name|{"return": {"host-name": 5}}|return.host-name is not a string
time|guest-get-time|{"return": "now"}|return is not an integer
time|guest-get-time|{"return": 1e300}|return is not an integer
timezone|guest-get-timezone|{"return": {"offset": "+1"}}|return.offset is not an integer
users|guest-get-users|{"return": {"user": "x"}}|return is not an array
ifconfig|guest-network-get-interfaces|{"return": [{"name": "eth0", "ip-addresses": {"ip-address": "192.0.2.1"}}]}|return[0].ip-addresses is not an array
ip|guest-network-get-interfaces|{"return": [{"name": "eth0", "ip-addresses": [{"ip-address": 3221225985}]}]}|return[0].ip-addresses[0].ip-address is not a string
df|guest-get-fsinfo|{"return": [{"mountpoint": "/", "used-bytes": "1G"}]}|return[0].used-bytes is not an integer
df|guest-get-fsinfo|{"return": [{"mountpoint": "/", "disk": [{"dev": null}]}]}|return[0].disk[0].dev is not a string
vcpus|guest-get-vcpus|{"return": [{"logical-id": 0, "online": "yes"}]}|return[0].online is not true or false
disks|guest-get-disks|{"return": [{"name": "vda", "dependencies": "sda"}]}|return[0].dependencies is not an array
disks|guest-get-disks|{"return": [{"name": "vda", "address": [1]}]}|return[0].address is not an object
routes|guest-network-get-route|{"return": [{"iface": "eth0", "metric": "100"}]}|return[0].metric is not an integer
load|guest-get-load|{"return": {"load1m": "0.5"}}|return.load1m is not a number
fsfreeze status|guest-fsfreeze-status|{"return": 1}|return is not a string
fstrim|guest-fstrim|{"return": {"paths": {"path": "/"}}}|return.paths is not an array
ssh-keys list root|guest-ssh-get-authorized-keys|{"return": {"keys": [1]}}|return.keys[0] is not a string
EOF
# exec's failures are 255, as ssh's.
answer 'guest-exec {"return": {"pid": 7}}' \
	'guest-exec-status {"return": {"exited": true, "exitcode": 0, "out-data": 12}}'
check "hostile: exec -j with out-data not a string" 255 '' \
	"qga: guest-exec-status: unexpected reply: return.out-data is not a string" \
	$QGA -s "$S" -j exec true
answer 'guest-exec {"return": {"pid": "7"}}'
check "hostile: exec with a pid not a number" 255 '' \
	"qga: guest-exec: unexpected reply: return.pid is not an integer" $QGA -s "$S" exec true
answer 'guest-exec-status {"return": {"exited": "yes"}}'
check "hostile: exec-status with exited not true or false" 255 '' \
	"qga: guest-exec-status: unexpected reply: return.exited is not true or false" \
	$QGA -s "$S" exec-status 7
printf 'hi\n' >"$R/hi"
answer 'guest-file-open {"return": 1000}' 'guest-file-write {"return": {"count": "3"}}'
check "hostile: put with a count not a number" 5 '' \
	"qga: guest-file-write: unexpected reply: return.count is not an integer" \
	$QGA -s "$S" put --inplace "$R/hi" /tmp/hi

# A reply of many small values costs memory out of proportion to its
# size: it is refused past a bound (here 300,000 values in 600 kB).
awk 'BEGIN { printf "guest-info\t{\"return\": {\"version\": \"1\", \"pad\": [0"
	for (i = 1; i < 300000; i++) printf ",0"; print "]}}" }' >"$R/file"
check "hostile: a reply of 300,000 small numbers is refused" 5 '' \
	'qga: guest-info: a reply of 300005 values in 600026 bytes, more than qga takes' \
	$QGA -s "$S" info

# A guest whose programs never end: every wait has a deadline (-t
# overrides it), a signal ends qga after a bounded clean-up, a second
# signal at once.
answer 'guest-info {"return": {"version": "1", "supported_commands": [{"name": "guest-exec", "enabled": true}, {"name": "guest-exec-status", "enabled": true}]}}' \
	'guest-file-open {"return": 1000}' 'guest-file-write {"return": {"count": 3}}' \
	'guest-file-seek {"return": {"position": 3, "eof": false}}' \
	'guest-exec {"return": {"pid": 7}}' 'guest-exec-status {"return": {"exited": false}}'
check "hostile: put --verify of a program that never ends times out" 4 '' \
	'qga: put --verify: sha256sum in the guest did not end within 1 s' \
	timeout -k 5 120 $QGA -s "$S" -t 1 put --verify "$R/hi" /tmp/hi
# waits_for N: until the fake agent has been asked guest-exec-status N
# times, for 30 s at most.
waits_for() {
	_i=0
	while [ "$(grep -c guest-exec-status "$R/sock.log")" -lt "$1" ] && [ $_i -lt 600 ]; do
		sleep 0.05
		_i=$((_i + 1))
	done
}
# ended NAME: until the process NAME ends, for 60 s at most; its status,
# or 99 when it had to be killed.
ended() {
	_i=0
	while alive "$1" && [ $_i -lt 600 ]; do sleep 0.1; _i=$((_i + 1)); done
	eval "_p=\$PID_$1"
	alive "$1" && { kill -KILL "$_p"; wait "$_p"; return 99; }
	wait "$_p"
}
: >"$R/sock.log"
start put_term $QGA -s "$S" put --verify "$R/hi" /tmp/hi
waits_for 1
kill -TERM "$PID_put_term"
ended put_term
expect "hostile: SIGTERM ends put --verify, whose program never ends" test $? = 143
: >"$R/sock.log"
start put_term2 $QGA -s "$S" -t 600 put --verify "$R/hi" /tmp/hi
waits_for 1
kill -TERM "$PID_put_term2"
# The clean-up's rm is under way, with a wait of 600 s: the second
# signal ends qga.
while [ "$(grep -c guest-exec\" "$R/sock.log")" -lt 2 ] && alive put_term2; do sleep 0.05; done
kill -TERM "$PID_put_term2"
ended put_term2
expect "hostile: a second SIGTERM ends qga at once" test $? = 143
