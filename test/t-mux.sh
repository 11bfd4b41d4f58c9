# SPDX-License-Identifier: MIT
# qga serve as a multiplexer: the requests of many clients go to one real
# agent back to back under the proxy's own ids, and each reply goes back
# to its own client, in order, while the agent is killed and restarted and
# clients are killed mid-request. A slow command does not hold the loop,
# and a reply that comes after its deadline goes to nobody.
need_tool "$QEMU_GA" qemu-guest-agent
need_tool socat socat
need_tool curl curl
need_tool jq jq
X=$T/mux
rm -rf "$X"
mkdir -p "$X/state"
nl='
'
# agent N: starts the Nth instance of the agent on the one socket.
agent() {
	rm -f "$X/agent.sock"
	start "xagent$1" "$QEMU_GA" --method=unix-listen --path="$X/agent.sock" \
		--statedir="$X/state" --logfile="$X/qga$1.log" --block-rpcs="$BLOCK"
	wait_for "$X/agent.sock"
}
agent 1
start xproxy $QGA -s "$X/agent.sock" serve --listen "$X/proxy.sock" --http tcp:127.0.0.1:0 \
	--log "$X/audit"
wait_for "$X/proxy.sock"
hport=$(port_of xproxy)

# 40 QGA clients and 10 HTTP clients, 200 requests each, every one with an
# id of its client's; 3 more clients that leave with replies owed. The QGA
# clients send a request every 4 ms (perl paces them), so that the agent
# dies while they send.
c=1
while [ $c -le 50 ]; do
	k=1
	if [ $c -le 40 ]; then
		while [ $k -le 200 ]; do
			echo "{\"execute\":\"guest-ping\",\"id\":\"q$c-$k\"}"
			k=$((k + 1))
		done >"$X/batch$c"
		perl -ne 'BEGIN { $| = 1 } print; select(undef, undef, undef, 0.004)' "$X/batch$c" |
			$QGA -s "$X/proxy.sock" - >"$X/out$c" 2>/dev/null &
	else
		set --
		while [ $k -le 200 ]; do
			set -- "$@" --json "{\"execute\":\"guest-ping\",\"id\":\"h$c-$k\"}" \
				"http://127.0.0.1:$hport/" --next
			k=$((k + 1))
		done
		curl -s "$@" --json '{"execute":"guest-ping"}' "http://127.0.0.1:$hport/" >"$X/out$c" &
	fi
	eval "client$c=\$!"
	c=$((c + 1))
done
for d in 1 2 3; do
	cat "$X/batch1" "$X/batch1" | socat -u - UNIX-CONNECT:"$X/proxy.sock" &
done
$QGA -s "$X/proxy.sock" - <"$X/batch2" >/dev/null 2>&1 &
doomed=$!
# One more client pings every 10 ms until told to stop, so that requests
# come while each agent is away, however slowly the others run.
perl -e 'BEGIN { $| = 1 } until (-e $ARGV[0]) { print "{\"execute\":\"guest-ping\"}\n";
	select(undef, undef, undef, 0.01) }' "$X/stop" | $QGA -s "$X/proxy.sock" - >"$X/steady" 2>/dev/null &
steady=$!
# metric NAME: the value of a line of the proxy's /metrics, 0 when absent.
metric() {
	curl -s "http://127.0.0.1:$hport/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print v + 0 }'
}
unavailable='qga_requests_total{command="guest-ping",outcome="unavailable"}'
# more_than NAME N: whether that metric has passed N.
more_than() { [ "$(metric "$1")" -gt "$2" ]; }
wait_until 30 test -s "$X/out1"
kill -9 $doomed 2>/dev/null
# The agent is killed twice while the clients run, each time once the
# proxy was seen to use it: each instance must have lived until then, and
# requests that come while it is away fail.
for n in 1 2; do
	wait_until 30 more_than qga_agent_reconnects_total $((n - 1))
	away=$(metric "$unavailable")
	alive "xagent$n" && eval "lived$n=yes"
	eval "kill -9 \"\$PID_xagent$n\""
	wait_until 30 more_than "$unavailable" "$away"
	agent $((n + 1))
done
wait_until 30 more_than qga_agent_reconnects_total 2
: >"$X/stop"
wait $steady
c=1
while [ $c -le 50 ]; do eval "wait \$client$c"; c=$((c + 1)); done

# Each client has exactly its 200 replies, each with its own id, in the
# order it asked (a reply or, while the agent was away, an error).
bad=0
c=1
while [ $c -le 50 ]; do
	p=$([ $c -le 40 ] && echo q || echo h)
	awk -v p="$p$c-" -v n=200 'NR <= n && index($0, "\"id\": \"" p NR "\"}") == 0 { bad++ }
		END { exit !(bad == 0 && NR >= n) }' "$X/out$c" || bad=$((bad + 1))
	c=$((c + 1))
done
expect "mux: 50 clients x 200 requests: each its own replies, in order ($bad wrong)" test $bad = 0
ok_replies=$(cat "$X"/out* | grep -c '^{"return": {}, "id"')
errors=$(cat "$X"/out* "$X/steady" | grep -c '^{"error": {"class": "AgentUnavailable"')
expect "mux: most requests were answered by an agent ($ok_replies)" test "$ok_replies" -gt 5000
expect "mux: some were sent while the agent was away ($errors)" test "$errors" -gt 0
expect "mux: the first agent lived until it was killed" test "${lived1:-no}" = yes
expect "mux: so did the second" test "${lived2:-no}" = yes
sleep 0.2
expect "mux: the third lives after every client's departure" alive xagent3
check "mux: and answers through the proxy" 0 '{"return": {}}' '' $QGA -s "$X/proxy.sock" guest-ping
expect "mux: the proxy lives" alive xproxy
# Requests that name no command are counted under a name of their own.
printf '{"id": 1}\nnot json\n' | socat -t 2 - UNIX-CONNECT:"$X/proxy.sock" >/dev/null 2>&1
curl -s "http://127.0.0.1:$hport/metrics" >"$X/metrics"
if command -v promtool >/dev/null 2>&1; then
	check "mux: /metrics is clean under promtool check metrics" 0 '' '' \
		sh -c "promtool check metrics <'$X/metrics' 2>&1"
else
	skip "mux: no promtool here (apt-get install prometheus)"
fi
expect "mux: a request that named no command counts as (none)" \
	grep -q '^qga_requests_total{command="(none)",outcome="bad"} [1-9]' "$X/metrics"
# Prometheus 3 refuses a scrape whose Content-Type is not a format of its own.
check "mux: /metrics says it is Prometheus' text format" 0 '*Content-Type: text/plain; version=0.0.4*' '' \
	sh -c "curl -s -D - -o /dev/null 'http://127.0.0.1:$hport/metrics' | tr -d '\r'"
# The clients that left count too: at least as many as the others got.
expect "mux: /metrics counts the pings answered" \
	test "$(sed -n 's/^qga_requests_total{command="guest-ping",outcome="ok"} //p' "$X/metrics")" -ge "$ok_replies"
expect "mux: and those the agent was away for" grep -q '^qga_requests_total{command="guest-ping",outcome="unavailable"} [1-9]' "$X/metrics"
expect "mux: three agents, three connections or more" grep -q '^qga_agent_reconnects_total \([3-9]\|[1-9][0-9]\)' "$X/metrics"
expect "mux: the agent up, nothing waiting" grep -qx 'qga_agent_up 1' "$X/metrics"
expect "mux: the latency histogram counts each request once" test "$(sed -n 's/^qga_request_seconds_count //p' "$X/metrics")" = \
	"$(sed -n 's/^qga_request_seconds_bucket{le="+Inf"} //p' "$X/metrics")"
expect "mux: --log has a JSON line per request" \
	test "$(jq -r 'select(.command == "guest-ping") | .outcome' "$X/audit" | grep -c '^ok$')" = \
	"$(sed -n 's/^qga_requests_total{command="guest-ping",outcome="ok"} //p' "$X/metrics")"

# The agent unreachable: a qga client of the proxy exits as it would
# against the agent itself (3), and the proxy says why.
kill "$PID_xagent3"
wait "$PID_xagent3" 2>/dev/null
check "mux: no agent: a client of the proxy exits 3" 3 '' \
	"qga: guest-ping: AgentUnavailable: the guest agent is unavailable: connect $X/agent.sock: *" \
	$QGA -s "$X/proxy.sock" guest-ping
check "mux: /health says 503, at once, and no more" 0 '503 {"return": {"agent": "down", "waiting": 0}}' '' \
	curl -s -m 5 -w '%{http_code} ' -o "$X/body" "http://127.0.0.1:$hport/health" --next -s -o - "http://127.0.0.1:$hport/health"
agent 4
check "mux: the agent back: served again" 0 '{"return": {}}' '' $QGA -s "$X/proxy.sock" guest-ping
kill "$PID_xproxy"

# A command the agent takes 2 s over: meanwhile the proxy answers /health
# and syncs at once, and another client's ping is answered right after.
rm -f "$X/slow.sock"
start xslow "$PWD/test/fakeagent" "$X/slow.sock" slow
wait_for "$X/slow.sock"
start xproxy2 $QGA -s "$X/slow.sock" serve --listen "$X/proxy2.sock" --http tcp:127.0.0.1:0 \
	--log "$X/audit2"
wait_for "$X/proxy2.sock"
hport=$(port_of xproxy2)
$QGA -s "$X/proxy2.sock" guest-get-time >"$X/slow.out" 2>&1 &
slow=$!
# Once the agent has the slow command (the fake sleeps over it, its one
# sleep), it is stopped until both are answered: the proxy answers them
# alone.
wait_until 30 grep -q nanosleep "/proc/$PID_xslow/wchan"
kill -STOP "$PID_xslow"
check "mux: /health while the agent is busy" 0 '200' '' \
	curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$hport/health"
check "mux: a sync while the agent is busy" 0 '{"return": 5}' '' \
	sh -c "printf '{\"execute\":\"guest-sync\",\"arguments\":{\"id\":5}}' | socat -t5 - UNIX-CONNECT:'$X/proxy2.sock'"
expect "mux: both at once, the slow command not answered yet" test ! -s "$X/slow.out"
kill -CONT "$PID_xslow"
check "mux: a ping behind it is its own" 0 '{"return": {}}' '' $QGA -s "$X/proxy2.sock" guest-ping
wait $slow
expect "mux: the slow command's reply is its own" test "$(cat "$X/slow.out")" = '{"return": 1700000000000000000}'
check "mux: a password through the proxy" 0 '' '' sh -c "printf 's3cret\n' | $QGA -s '$X/proxy2.sock' passwd alice"
expect "mux: --log has the command, not the password" sh -c \
	"grep -q '\"command\": \"guest-set-user-password\", \"outcome\": \"ok\"' '$X/audit2' &&
	! grep -q 's3cret\|czNjcmV0' '$X/audit2'"
kill "$PID_xproxy2"

# -t at the proxy bounds each request: the slow one fails with 4, and its
# late reply is dropped, not given to the ping that comes next.
start xproxy3 $QGA -t 1.5 -s "$X/slow.sock" serve --listen "$X/proxy3.sock" --http tcp:127.0.0.1:0
wait_for "$X/proxy3.sock"
hport=$(port_of xproxy3)
check "mux: a reply that does not come in time: 4" 4 '' \
	'qga: guest-get-time: AgentTimeout: no reply from the guest agent within 1.500 s' \
	$QGA -s "$X/proxy3.sock" -t 5 guest-get-time
check "mux: the next request gets its own reply, not the late one" 0 '{"return": {}}' '' \
	$QGA -s "$X/proxy3.sock" guest-ping
expect "mux: the proxy lives" alive xproxy3

# An HTTP client that never ends its headers is cut off after -t; others
# are served meanwhile.
# It stays connected until the proxy closes (60 s at most), and then
# prints what it got: nothing.
t0=$(date +%s%N)
start loris perl -e 'use IO::Socket::INET; alarm 60;
	my $s = IO::Socket::INET->new($ARGV[0]) or die "connect: $!";
	print $s "GET /health HTTP/1.1\r\nHost: x\r\n"; my $b = "";
	while (sysread($s, my $c, 4096)) { $b .= $c } print $b' "127.0.0.1:$hport"
wait_until 30 grep -q 'HTTP client [0-9]*: connected' "$T/xproxy3.stderr"
check "mux: others are served meanwhile" 0 '200' '' \
	curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$hport/health"
wait_until 30 grep -q 'cut off: its request did not come whole' "$T/xproxy3.stderr"
t1=$(date +%s%N)
wait "$PID_loris"
st=$?
expect "mux: the client that never ends its headers is cut off after -t, not before ($(( (t1 - t0) / 1000000 )) ms)" \
	test $(( (t1 - t0) / 1000000 )) -ge 1400 -a $st = 0 -a ! -s "$T/loris.stdout"
