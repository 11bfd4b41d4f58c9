# An agent whose configuration refuses guest-sync-delimited (7.2's
# --block-rpcs, 10.0's --allow-rpcs): qga falls back to guest-sync, and
# with that refused too, to no sync, said once; it never waits out -t.
need_tool qemu-ga qemu-guest-agent
Y=$T/sync
nl='
'
mkdir -p "$Y/a" "$Y/b" "$Y/c"
rm -f "$Y"/*.sock
start nodelim qemu-ga --method=unix-listen --path="$Y/a.sock" --statedir="$Y/a" \
	--logfile="$Y/a.log" --block-rpcs="$BLOCK,guest-sync-delimited"
start nosync qemu-ga --method=unix-listen --path="$Y/b.sock" --statedir="$Y/b" \
	--logfile="$Y/b.log" --block-rpcs="$BLOCK,guest-sync-delimited,guest-sync"
wait_for "$Y/a.sock"
wait_for "$Y/b.sock"
warned="qga: $Y/b.sock: the agent refuses guest-sync-delimited and guest-sync: going on without a resync"
check "sync: without guest-sync-delimited, ping" 0 '' '' $QGA -s "$Y/a.sock" -t 5 ping
check "sync: a raw command" 0 '{"return": {"host-name": "*"}}' '' \
	$QGA -s "$Y/a.sock" -t 5 guest-get-host-name
check "sync: wait" 0 '' '' $QGA -s "$Y/a.sock" wait -T 5
check "sync: a batch" 0 "{\"return\": {}}$nl{\"return\": 5}" '' \
	sh -c "printf 'guest-ping\nguest-sync id=5\n' | $QGA -s '$Y/a.sock' -t 2"
check "sync: without either sync, ping, said once" 0 '' "$warned" $QGA -s "$Y/b.sock" -t 5 ping
check "sync: a raw command" 0 '{"return": {"host-name": "*"}}' "$warned" \
	$QGA -s "$Y/b.sock" -t 5 guest-get-host-name
check "sync: wait" 0 '' "$warned" $QGA -s "$Y/b.sock" wait -T 5
if [ -n "$GA10" ]; then
	start allow10 "$GA10" --method=unix-listen --path="$Y/c.sock" --statedir="$Y/c" \
		--logfile="$Y/c.log" --allow-rpcs=guest-ping,guest-sync,guest-get-host-name
	wait_for "$Y/c.sock"
	check "sync: qemu-ga 10.0 with --allow-rpcs and no guest-sync-delimited" 0 \
		'{"return": {"host-name": "*"}}' '' $QGA -s "$Y/c.sock" -t 5 guest-get-host-name
	check "sync: and wait" 0 '' '' $QGA -s "$Y/c.sock" wait -T 5
	expect "sync: the 10.0 agent lives" alive allow10
else
	skip "sync with qemu-ga 10.0: $GA10_WHY"
fi
expect "sync: the agents live" alive nodelim
expect "sync: the agents live" alive nosync
