# SPDX-License-Identifier: MIT
# qga metrics over real agents, 7.2 and 10.0 at once, and a silent
# socket: the text promtool checks, its values against what the agents
# say through qga's other commands, a real Prometheus scraping --listen,
# hostile replies from the fake agent, and the example rules of
# contrib/prometheus.
need_tool qemu-ga qemu-guest-agent
need_tool promtool prometheus
need_tool prometheus prometheus
need_tool socat socat
need_tool jq jq
need_tool curl curl
M=$T/metrics
mkdir -p "$M/a7" "$M/a10" "$M/prom"
nl='
'
start a7 qemu-ga --method=unix-listen --path="$M/a7.sock" --statedir="$M/a7" \
	--logfile="$M/a7/log" --block-rpcs="$BLOCK"
A10=
if [ -n "$GA10" ]; then
	start a10 "$GA10" --method=unix-listen --path="$M/a10.sock" --statedir="$M/a10" \
		--logfile="$M/a10/log" --block-rpcs="$BLOCK"
	A10=$M/a10.sock
	wait_for "$A10"
else
	skip "metrics: qemu-ga 10.0's part: $GA10_WHY"
fi
start silent socat UNIX-LISTEN:"$M/silent.sock",fork SYSTEM:'exec cat >/dev/null'
wait_for "$M/a7.sock"
wait_for "$M/silent.sock"
set -- -s "$M/a7.sock" ${A10:+-s "$A10"} -s "$M/silent.sock"
n=$(($# / 2))

# value FILE FAMILY LABELS: the value of the series whose labels start
# with LABELS (target="..."...), or nothing.
value() {
	grep -F "qga_$2{$3" "$1" | sed -n 's/.*} \([^ ]*\)$/\1/p' | head -n 1
}

$QGA -t 2 "$@" metrics >"$M/out" 2>"$M/err"
expect "metrics: exits 0 with a target down" test $? = 0
check "metrics: says why the silent one is down, on stderr" 0 \
	"qga: metrics: no answer from a guest agent at $M/silent.sock within 2 s: is qemu-guest-agent running in the guest? another client (libvirtd, qga serve) may hold this socket" '' cat "$M/err"
check "metrics: promtool check metrics finds nothing wrong" 0 '' '' \
	sh -c "promtool check metrics <'$M/out' 2>&1"
expect "metrics: up 1 for 7.2" test "$(value "$M/out" up "target=\"$M/a7.sock\"")" = 1
expect "metrics: up 0 for the silent one" test "$(value "$M/out" up "target=\"$M/silent.sock\"")" = 0
expect "metrics: every family has HELP and TYPE once" test "$(grep -c '^# HELP' "$M/out")" = \
	"$(grep -c '^# TYPE' "$M/out")" -a "$(grep '^# TYPE' "$M/out" | sort | uniq -d | wc -l)" = 0
expect "metrics: the agent's version as an info metric" \
	grep -q "^qga_agent_info{target=\"$M/a7.sock\",version=\"7\.2\.[0-9]*\"} 1$" "$M/out"
expect "metrics: the host name as a label of an info metric, and nowhere else" \
	test "$(grep -c "nodename=\"$(hostname)\"" "$M/out")" = $((n - 1)) -a \
	"$(grep -v '^qga_uname_info' "$M/out" | grep -c "$(hostname)")" = 0
expect "metrics: 7.2 lacks guest-get-load: counted, not shown" test \
	"$(value "$M/out" scrape_errors "target=\"$M/a7.sock\",command=\"guest-get-load\"")" = 1 -a \
	-z "$(value "$M/out" load1 "target=\"$M/a7.sock\"")"
expect "metrics: 7.2 answers the rest" test "$(grep "^qga_scrape_errors{target=\"$M/a7.sock\"" \
	"$M/out" | grep -vc 'guest-get-load')" = 9 -a \
	"$(grep "^qga_scrape_errors{target=\"$M/a7.sock\"" "$M/out" | grep -c ' 0$')" = 9
expect "metrics: nothing asked of the silent one" \
	test -z "$(grep "^qga_scrape_errors{target=\"$M/silent.sock\"" "$M/out")"
if [ -n "$A10" ]; then
	expect "metrics: up 1 for 10.0" test "$(value "$M/out" up "target=\"$A10\"")" = 1
	expect "metrics: load for 10.0" test -n "$(value "$M/out" load1 "target=\"$A10\"")"
	expect "metrics: 10.0 answers all ten" test \
		"$(grep "^qga_scrape_errors{target=\"$A10\"" "$M/out" | grep -c ' 0$')" = 10
fi

# Each value against what the agent says to qga's own commands: the file
# systems' sizes as df -j has them, the vCPUs online as vcpus -j.
for a in "$M/a7.sock" $A10; do
	$QGA -s "$a" df -j | jq -r '.return[] | select(has("used-bytes") and has("total-bytes")) |
		"\(.mountpoint) \(."total-bytes-privileged" // ."total-bytes")"' | sort >"$M/df.want"
	$QGA -s "$a" metrics --fs-types-exclude '' --mount-points-exclude '' |
		sed -n "s/^qga_filesystem_size_bytes{target=\"[^\"]*\",device=\"[^\"]*\",fstype=\"[^\"]*\",mountpoint=\"\([^\"]*\)\"} /\1 /p" |
		sort >"$M/df.got"
	expect "metrics: $(basename "$a"): each file system's size is df -j's" \
		test -s "$M/df.want" -a "$(cat "$M/df.got")" = "$(cat "$M/df.want")"
	$QGA -s "$a" metrics >"$M/one"
	expect "metrics: $(basename "$a"): the online vCPUs are vcpus -j's" \
		test "$(value "$M/one" cpus_online "target=\"$a\"")" = \
		"$($QGA -s "$a" vcpus -j | jq '[.return[] | select(.online)] | length')"
	expect "metrics: $(basename "$a"): CPU seconds per cpu and mode" \
		grep -q "^qga_cpu_seconds_total{target=\"$a\",cpu=\"0\",mode=\"idle\"} [0-9]*\.[0-9]\{3\}$" "$M/one"
	expect "metrics: $(basename "$a"): network counters of lo" \
		grep -q "^qga_network_receive_bytes_total{target=\"$a\",device=\"lo\"} [0-9]" "$M/one"
done
check "metrics: --fs-types-exclude leaves a type out" 1 '' '' sh -c \
	"$QGA -s '$M/a7.sock' metrics --fs-types-exclude 'nfs,$(sed -n 's/^qga_filesystem_size_bytes{.*fstype="\([^"]*\)".*/\1/p' "$M/out" | head -n 1)' | grep '^qga_filesystem'"
check "metrics: --mount-points-exclude takes a prefix" 1 '' '' sh -c \
	"$QGA -s '$M/a7.sock' metrics --mount-points-exclude '/*' | grep '^qga_filesystem'"
bad=$M/bad$(printf '\377\303').sock
$QGA -s "$bad" -s "$M/a7.sock" -s "$M/a7.sock" metrics >"$M/bad.out" 2>/dev/null
check "metrics: a target's name that is not UTF-8 is made valid" 0 '' '' \
	sh -c "promtool check metrics <'$M/bad.out' 2>&1"
expect "metrics: a target given twice is asked once" test "$(grep -c "^qga_up{" "$M/bad.out")" = 2 -a \
	"$(grep -c "^qga_up{target=\"$M/bad??.sock\"} 0$" "$M/bad.out")" = 1
check "metrics: --qmp is refused" 2 '' 'qga: metrics: the metrics are a guest agent'"'"'s: not with --qmp' \
	$QGA --qmp -s "$M/a7.sock" metrics
check "metrics: words after it are a usage error" 2 '' 'usage: qga*metrics*' \
	$QGA -s "$M/a7.sock" metrics extra
expect "metrics: the agents are alive after it all" alive a7

# A hostile guest: each reply of the fake agent tries to forge a series,
# break the format, repeat a series, or say more than is taken.
{
	printf 'guest-info\t{"return": {"version": "1\\"} 1\\nqga_up{target=\\"evil\\"} 1\\n#", "supported_commands": ['
	for c in guest-get-host-name guest-get-osinfo guest-get-fsinfo guest-get-load \
		guest-get-cpustats guest-get-diskstats guest-network-get-interfaces guest-get-users; do
		printf '{"name": "%s", "enabled": true, "success-response": true}, ' $c
	done
	printf '{"name": "guest-get-vcpus", "enabled": true, "success-response": true}]}}\n'
	printf 'guest-get-host-name\t{"return": {"host-name": "h\\u001b[31mred\\nline\\\\back\\"quote\\u0085\\u0000tail"}}\n'
	printf 'guest-get-osinfo\t{"return": {"id": "%s", "name": "x"}}\n' "$(head -c 5000 /dev/zero | tr '\0' x)"
	printf 'guest-get-fsinfo\t{"return": ['
	printf '{"name": "vda1", "mountpoint": "/", "type": "ext4", "used-bytes": 10, "total-bytes": 100, "disk": []}, '
	printf '{"name": "vda1", "mountpoint": "/", "type": "ext4", "used-bytes": 99, "total-bytes": 100, "disk": []}, '
	printf '{"name": "vdb", "mountpoint": "/bad", "type": "ext4", "used-bytes": 200, "total-bytes": 100, "disk": []}, '
	printf '{"name": "ov", "mountpoint": "/var/lib/docker/x", "type": "ext4", "used-bytes": 1, "total-bytes": 100, "disk": []}, '
	printf '{"name": "ov", "mountpoint": "/o", "type": "overlay", "used-bytes": 1, "total-bytes": 100, "disk": []}, '
	printf '{"name": "\\\\\\\\?\\\\Volume{1}\\\\", "mountpoint": "C:\\\\", "type": "NTFS", "used-bytes": 1, "total-bytes": 100, "disk": []}, '
	# Past 16 bytes a value, as qga takes no denser reply.
	pad=$(head -c 160 /dev/zero | tr '\0' p)
	i=0
	while [ $i -lt 1100 ]; do
		printf '{"name": "d", "mountpoint": "/m%d/%s", "type": "ext4", "used-bytes": 1, "total-bytes": 2}, ' $i "$pad"
		i=$((i + 1))
	done
	printf '{"name": "last", "mountpoint": "/last", "type": "ext4"}]}\n'
	printf 'guest-get-load\t{"return": {"load1m": 1e308, "load5m": -0.0, "load15m": %s}}\n' \
		"$(head -c 50 /dev/zero | tr '\0' 1)"
	printf 'guest-get-cpustats\t{"return": ['
	printf '{"type": "linux", "cpu": 0, "user": 1500, "idle": 2}, {"type": "linux", "cpu": 0, "user": 7}]}\n'
	printf 'guest-get-diskstats\t{"return": ['
	for d in vda vda1 loop0 nvme0n1 nvme0n1p1 sr0; do
		printf '{"name": "%s", "major": 1, "minor": 1, "stats": {"read-sectors": 9223372036854775807, "write-sectors": -5}}, ' $d
	done
	printf '{"name": "mmcblk0", "major": 1, "minor": 1}]}\n'
	printf 'guest-network-get-interfaces\t{"return": [{"name": "eth0", "statistics": {"rx-bytes": "1"}}]}\n'
	printf 'guest-get-users\t{"return": []}\n'
	printf 'guest-get-vcpus\t{"return": "x"}\n'
} >"$M/hostile"
start hostile "$PWD/test/fakeagent" "$M/hostile.sock" replies "$M/hostile"
wait_for "$M/hostile.sock"
H=$M/hostile.sock
$QGA -s "$H" metrics >"$M/h.out" 2>"$M/h.err"
expect "metrics: hostile: exits 0" test $? = 0 -a ! -s "$M/h.err"
check "metrics: hostile: promtool check metrics finds nothing wrong" 0 '' '' \
	sh -c "promtool check metrics <'$M/h.out' 2>&1"
expect "metrics: hostile: no series forged" test "$(grep -c '^qga_up' "$M/h.out")" = 1 -a \
	"$(grep -c 'evil' "$M/h.out")" = 1
expect "metrics: hostile: the version, escaped within its label" grep -qF \
	'qga_agent_info{target="'"$H"'",version="1\"} 1\nqga_up{target=\"evil\"} 1\n#"} 1' "$M/h.out"
expect "metrics: hostile: the host name's controls made ?, its quotes escaped" grep -qF \
	'nodename="h?[31mred\nline\\back\"quote?"} 1' "$M/h.out"
expect "metrics: hostile: a label value is cut at 256 bytes" grep -q \
	"^qga_os_info{target=\"$H\",id=\"x\{256\}\",name=\"x\"" "$M/h.out"
expect "metrics: hostile: a series given twice is taken once, the first" test \
	"$(grep -c "^qga_filesystem_used_bytes{target=\"$H\",device=\"vda1\",fstype=\"ext4\",mountpoint=\"/\"}" "$M/h.out")" = 1 -a \
	"$(value "$M/h.out" filesystem_used_bytes "target=\"$H\",device=\"vda1\"")" = 10
expect "metrics: hostile: used past the size, docker's and overlay left out" \
	test -z "$(grep -e 'mountpoint="/bad"' -e 'mountpoint="/var/lib/docker' -e 'overlay' "$M/h.out")"
expect "metrics: hostile: a Windows volume, its backslashes escaped" grep -qF \
	'device="\\\\?\\Volume{1}\\",fstype="NTFS",mountpoint="C:\\"} 100' "$M/h.out"
# The first 1024 entries: 1018 of /mN, and / and C:\ of the six before.
expect "metrics: hostile: at most 1024 entries of a reply" \
	test "$(grep -c '^qga_filesystem_size_bytes{' "$M/h.out")" = 1020
expect "metrics: hostile: a number passes as it came; one too long is left out" test \
	"$(value "$M/h.out" load1 "target=\"$H\"")" = 1e308 -a \
	"$(value "$M/h.out" load5 "target=\"$H\"")" = -0.0 -a -z "$(value "$M/h.out" load15 "target=\"$H\"")"
expect "metrics: hostile: a cpu given twice is taken once" test \
	"$(grep -c "^qga_cpu_seconds_total{target=\"$H\",cpu=\"0\",mode=\"user\"} 1.500$" "$M/h.out")" = 1 -a \
	"$(grep -c "^qga_cpu_seconds_total{" "$M/h.out")" = 2
expect "metrics: hostile: disks: partitions, loops and CD-ROMs left out" test \
	"$(sed -n 's/^qga_disk_reads_completed_total{[^}]*device="\([^"]*\)"}.*/\1/p' "$M/h.out" | tr '\n' ' ')" = \
	"vda nvme0n1 "
expect "metrics: hostile: sectors as bytes, bounded" test \
	"$(value "$M/h.out" disk_read_bytes_total "target=\"$H\",device=\"vda\"")" = 9223372036854775807 -a \
	"$(value "$M/h.out" disk_written_bytes_total "target=\"$H\",device=\"vda\"")" = 0
expect "metrics: hostile: replies of the wrong shape are errors, and show nothing" test \
	"$(value "$M/h.out" scrape_errors "target=\"$H\",command=\"guest-network-get-interfaces\"")" = 1 -a \
	"$(value "$M/h.out" scrape_errors "target=\"$H\",command=\"guest-get-vcpus\"")" = 1 -a \
	-z "$(grep -e '^qga_network' -e '^qga_cpus_online' "$M/h.out")"
for sc in big garbage stall; do
	start "f$sc" "$PWD/test/fakeagent" "$M/$sc.sock" $sc
	wait_for "$M/$sc.sock"
done
check "metrics: an endless reply is cut at 4 MiB, and costs that target alone" 0 \
	"*qga_up{target=\"$M/big.sock\"} 1*qga_up{target=\"$M/a7.sock\"} 1*" \
	"qga: metrics: $M/big.sock: a reply larger than --max-reply" \
	$QGA -s "$M/big.sock" -s "$M/a7.sock" metrics
check "metrics: bytes that are not JSON" 0 "*qga_up{target=\"$M/garbage.sock\"} 1*" \
	"qga: metrics: $M/garbage.sock: it sent bytes that are not JSON" \
	$QGA -s "$M/garbage.sock" metrics
check "metrics: an agent that never answers costs -t" 0 "*qga_up{target=\"$M/stall.sock\"} 0*" \
	"qga: metrics: no answer from a guest agent at $M/stall.sock within 1 s: is qemu-guest-agent running in the guest? another client (libvirtd, qga serve) may hold this socket" \
	$QGA -t 1 -s "$M/stall.sock" metrics

# --listen: a scrape collects afresh; off loopback only with a token.
head -c 24 /dev/urandom | base64 >"$M/token"
start exporter $QGA -t 1 "$@" metrics --listen tcp:0 --token-file "$M/token"
P=$(port_of exporter)
check "metrics: --listen wants the token" 0 '401' '' \
	curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P/metrics"
check "metrics: --listen serves a page at / that links to /metrics" 0 '*<a href="metrics">*' '' \
	curl -s "http://127.0.0.1:$P/"
curl -s -H "Authorization: Bearer $(cat "$M/token")" "http://127.0.0.1:$P/metrics" >"$M/scrape"
check "metrics: --listen's scrape is clean under promtool" 0 '' '' \
	sh -c "promtool check metrics <'$M/scrape' 2>&1"
expect "metrics: --listen's scrape has every target" test "$(grep -c '^qga_up{' "$M/scrape")" = $n
i=0 curls=
while [ $i -lt 8 ]; do
	curl -s -o "$M/c$i" -H "Authorization: Bearer $(cat "$M/token")" "http://127.0.0.1:$P/metrics" &
	curls="$curls $!"
	i=$((i + 1))
done
wait $curls
expect "metrics: 8 scrapes at once, each answered whole" \
	test "$(cat "$M"/c[0-7] | grep -c '^qga_up{target="[^"]*a7.sock"} 1$')" = 8
# A request whose body is another request: the body is never taken for
# one (GET and PUT /file are serve's, with bodies streamed, not here).
printf 'PUT /file HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 40\r\n\r\nGET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' |
	socat -t 2 - TCP:127.0.0.1:"$P" >"$M/smuggle" 2>/dev/null
expect "metrics: a body is not a request ($(grep -c '^HTTP/1.1 ' "$M/smuggle") answers)" \
	test "$(grep -c '^HTTP/1.1 ' "$M/smuggle")" = 1
# An agent another client holds is not asked, at each scrape; found by
# ls's rules (QGA_SOCKET here), afresh each time.
start holder socat UNIX-LISTEN:"$M/held.sock",fork SYSTEM:'exec cat >/dev/null'
wait_for "$M/held.sock"
start holding sh -c "sleep 600 | socat - UNIX-CONNECT:'$M/held.sock'"
held() { [ "$(grep -c " 03 .*$M/held.sock" /proc/net/unix)" -ge 1 ]; }
wait_until 20 held
start exporter2 env QGA_SOCKET="$M/held.sock" $QGA -t 1 metrics --listen tcp:0
P2=$(port_of exporter2)
curl -s "http://127.0.0.1:$P2/metrics" >"$M/held1"
curl -s "http://127.0.0.1:$P2/metrics" >"$M/held2"
expect "metrics: a held agent is down, not asked, at every scrape" \
	test "$(grep -c "^qga_up{target=\"$M/held.sock\"} 0$" "$M/held1" "$M/held2" | cut -d: -f2 | tr -d '\n')" = 11 -a \
	-z "$(grep "^qga_scrape_duration_seconds{target=\"$M/held.sock\"}" "$M/held1" "$M/held2")"
expect "metrics: the exporter is alive after two scrapes" alive exporter2
check "metrics: off loopback without a token is refused" 2 '' \
	'qga: metrics: tcp:0.0.0.0:0 is not a loopback address: HTTP there needs --token-file' \
	$QGA -s "$M/a7.sock" metrics --listen tcp:0.0.0.0:0

# A real Prometheus scrapes it, with the token, and its HTTP API answers
# with what the agents said.
cat >"$M/prom.yml" <<EOT
global:
  scrape_interval: 5s
  scrape_timeout: 5s
scrape_configs:
  - job_name: qga
    authorization:
      credentials_file: $M/token
    static_configs:
      - targets: ['127.0.0.1:$P']
EOT
start prometheus prometheus --config.file="$M/prom.yml" --storage.tsdb.path="$M/prom" \
	--web.listen-address=127.0.0.1:0
PP=
prom_port() {
	PP=$(sed -n 's/.*msg="Listening on" address=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/prometheus.stderr")
	[ -n "$PP" ]
}
wait_until 60 prom_port
# query PROMQL: the result's series, "TARGET VALUE" a line, sorted.
query() {
	curl -s -G "http://127.0.0.1:$PP/api/v1/query" --data-urlencode "query=$1" |
		jq -r '.data.result[] | "\(.metric.target) \(.value[1])"' | sort
}
scraped() { [ "$(query 'count(qga_up)')" = "null $n" ]; }
wait_until 60 scraped
expect "prometheus: it scraped qga metrics --listen (up: $(query 'up{job="qga"}'))" \
	test "$(query 'up{job="qga"}')" = "null 1"
want="$M/a7.sock 1"
[ -n "$A10" ] && want="$want$nl$A10 1"
check "prometheus: qga_up is 1 for the agents, 0 for the silent one" 0 \
	"$(printf '%s\n%s 0\n' "$want" "$M/silent.sock" | sort)" '' query qga_up
for a in "$M/a7.sock" $A10; do
	check "prometheus: $(basename "$a"): the root file system's size is df -j's" 0 \
		"$a $($QGA -s "$a" df -j | jq '.return[] | select(.mountpoint == "/") |
			(."total-bytes-privileged" // ."total-bytes")')" '' \
		query "qga_filesystem_size_bytes{mountpoint=\"/\",target=\"$a\"}"
done
check "prometheus: load only for 10.0" 0 "${A10:+$A10 *}" '' query qga_load1
check "prometheus: promtool check rules on the example rules" 0 '*SUCCESS*' '' \
	promtool check rules contrib/prometheus/qga.rules.yml
check "prometheus: promtool test rules on their unit test" 0 '*SUCCESS*' '' \
	promtool test rules contrib/prometheus/qga.rules.test.yml
check "prometheus: the example scrape configuration is valid" 0 '*SUCCESS*' '' sh -c \
	"cd contrib/prometheus && promtool check config prometheus.yml 2>&1"
expect "metrics: the agents are alive after Prometheus" alive a7
