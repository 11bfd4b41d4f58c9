# SPDX-License-Identifier: MIT
# Names resolved as the system resolves them: /etc/hosts, then DNS as
# /etc/resolv.conf says, against a real DNS server (dnsmasq) on a loopback
# address. Both files are mounted over the real ones in a mount namespace
# of qga's own, so nothing is asked of the machine's own resolver.
need_tool "$QEMU_GA" qemu-guest-agent
need_tool socat socat
need_tool dnsmasq dnsmasq-base
N=$T/dns
mkdir -p "$N"
rm -f "$N/qga.sock"
if ! "$IN_NS" /etc/hosts /etc/resolv.conf true 2>/dev/null; then
	skip "the DNS tests: no mount namespace here"
	return 0
fi
start dnsagent "$QEMU_GA" --method=unix-listen --path="$N/qga.sock" \
	--statedir="$N" --logfile="$N/qga.log" --block-rpcs="$BLOCK"
# The DNS server's address on loopback is the job's own, from its pid, so
# that the jobs that run side by side each have theirs (on port 53, the
# only one resolv.conf can name).
D=127.$((64 + ($$ >> 16) % 64)).$(($$ >> 8 & 255)).$(($$ & 255))
# vm.test is only in DNS; hosted.test is in both, where DNS points at an
# address nothing listens on; the rest of .test does not exist.
start dns dnsmasq -k --conf-file=/dev/null --user=root --pid-file= \
	--listen-address="$D" --bind-interfaces --port=53 --no-resolv --no-hosts \
	--local=/test/ --host-record=vm.test,127.0.0.1 --host-record=hosted.test,127.0.0.2 \
	--log-queries --log-facility=-
wait_for "$N/qga.sock"
relay dnsrelay 127.0.0.1 "$N/qga.sock"
printf 'nameserver %s\noptions timeout:5 attempts:2\n' "$D" >"$N/resolv.conf"
printf '127.0.0.1 localhost\n127.0.0.1 hosted.test\n' >"$N/hosts"
wait_until 30 grep -q 'started' "$T/dns.stdout" "$T/dns.stderr"
ns() { "$IN_NS" "$N/hosts" "$N/resolv.conf" "$@"; }

check "dns: a name only DNS knows" 0 '{"return": {}}' '' ns $QGA -s tcp:vm.test:$PORT guest-ping
expect "dns: the DNS server was asked" grep -q 'query\[A\] vm.test' "$T/dns.stdout" "$T/dns.stderr"
check "dns: a name DNS does not know" 3 '' "qga: resolve tcp:nope.test:$PORT: *" \
	ns $QGA -s tcp:nope.test:$PORT guest-ping
check "dns: /etc/hosts wins over DNS" 0 '{"return": {}}' '' \
	ns $QGA -s tcp:hosted.test:$PORT guest-ping
check "dns: a built-in command by name" 0 "$(hostname)" '' ns $QGA -s tcp:vm.test:$PORT hostname
start dnsproxy "$IN_NS" "$N/hosts" "$N/resolv.conf" \
	$QGA -s "$N/qga.sock" serve --listen tcp:vm.test:0
check "dns: serve --listen tcp:NAME:PORT" 0 '{"return": {}}' '' \
	$QGA -s tcp:127.0.0.1:"$(port_of dnsproxy)" guest-ping
check "dns: serve says the address it resolved" 0 '' '' \
	grep -q '^qga serve: listening on tcp:127.0.0.1:[0-9]*$' "$T/dnsproxy.stderr"
expect "dns: the agent survived" alive dnsagent
