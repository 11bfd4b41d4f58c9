# SPDX-License-Identifier: MIT
# qga serve: one real agent shared by many clients.
need_tool "$QEMU_GA" qemu-guest-agent
need_tool socat socat
need_tool curl curl
need_tool jq jq
P=$T/serve
mkdir -p "$P/state" "$P/out"
rm -f "$P/agent.sock"
start_agent() {
	start sagent "$QEMU_GA" --method=unix-listen --path="$P/agent.sock" \
		--statedir="$P/state" --logfile="$P/qga.log" --block-rpcs="$BLOCK"
	wait_for "$P/agent.sock"
}
start_agent
start proxy $QGA -s "$P/agent.sock" serve --listen unix:"$P/proxy.sock" \
	--listen tcp:0 --http tcp:127.0.0.1:0 --deny guest-get-osinfo
wait_for "$P/proxy.sock"
S=$P/proxy.sock
qport=$(port_of proxy 1)
hport=$(port_of proxy 2)
H=http://127.0.0.1:$hport
nl='
'

check "serve: ping through the proxy" 0 '' '' $QGA -s "$S" ping
check "serve: a raw command" 0 '{"return": {"host-name": "*"}, "id": 5}' '' \
	$QGA -s "$S" '{"execute":"guest-get-host-name","id":5}'
# Arguments that are not an object: the proxy, which sends the agent only
# requests it rebuilt, answers in the agent's words (RIGS: id-types).
check "serve: arguments that are not an object, refused in the agent's words" 1 '' \
	"qga: guest-ping: GenericError: QMP input member 'arguments' must be an object" \
	$QGA -s "$S" '{"execute":"guest-ping","arguments":[1],"id":6}'
check "serve: a name with a NUL in it is no command, not the one before the NUL" 1 '' \
	"qga: guest-ping: CommandNotFound: The command's name holds a NUL byte" \
	$QGA -s "$S" '{"execute":"guest-ping\u0000x","id":7}'
# A client that sends its requests, ends its half and only then reads:
# serve has read the end while replies wait in its buffer, and sends them
# all before it closes.
got=$(perl -e 'use IO::Socket::UNIX;
	my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "connect: $!";
	my $r = q({"execute":"guest-sync","arguments":{"id":1}}) x 100000;
	my $o = 0; $o += syswrite($s, $r, length($r) - $o, $o) // die while $o < length $r;
	shutdown($s, 1); sleep 2;
	my ($b, $all) = ("", ""); $all .= $b while sysread($s, $b, 65536);
	print scalar(() = $all =~ /"return"/g), "\n"' "$S")
expect "serve: a client that reads after its end gets every reply ($got)" test "$got" = 100000
check "serve: over tcp:PORT, on loopback" 0 "$(hostname)" '' $QGA -s tcp:127.0.0.1:$qport hostname
check "serve: the log names the port the system chose" 0 '' '' \
	grep -q "^qga serve: listening on tcp:127.0.0.1:$qport\$" "$T/proxy.stderr"
start pproxy $QGA -s "$S" serve -q --listen "$P/bare.sock"
wait_for "$P/bare.sock"
check "serve: --listen takes a bare path, as -s does" 0 '' '' $QGA -s "$P/bare.sock" ping
kill "$PID_pproxy"
wait "$PID_pproxy"
expect "serve: and removes it at the end" test ! -e "$P/bare.sock"
check "serve: a bad listen address" 2 '' \
	"qga: bad listen address 'udp:1': expected unix:PATH or tcp:\[HOST:\]PORT" \
	$QGA serve --listen udp:1
check "serve: exec through the proxy" 4 'through' '' $QGA -s "$S" sh 'echo through; exit 4'
head -c 5000000 /dev/urandom >"$P/file"
$QGA -s "$S" put "$P/file" "$P/file.remote" && $QGA -s "$S" get "$P/file.remote" "$P/file.got"
expect "serve: put and get 5 MB through the proxy" cmp -s "$P/file" "$P/file.got"
check "serve: the socket is mode 0600" 0 '600' '' stat -c %a "$S"
# The socket has its mode from the start, not from a chmod after bind: a
# delay after bind(2) (strace's) shows what it was meanwhile, under umask 0.
if strace -o /dev/null -e trace=bind true 2>/dev/null; then
	rm -f "$P/umask.sock"
	start umask0 sh -c "umask 0; exec strace -o /dev/null -e trace=bind -e inject=bind:delay_exit=3000000 \
		$QGA -s '$P/none.sock' serve -q --listen '$P/umask.sock' --mode 0640"
	wait_for "$P/umask.sock"
	check "serve: the socket never has a wider mode than asked" 0 '640' '' stat -c %a "$P/umask.sock"
	kill -9 $(cat /proc/$PID_umask0/task/*/children)
	wait "$PID_umask0" 2>/dev/null
else
	skip "the socket's mode after bind: no strace here"
fi
# Its poll set grows with what is in use, not with --max-clients, which
# may be more than the descriptors the process may have for poll(2).
start lowfd sh -c "ulimit -n 64 && exec $QGA -s '$P/agent2.sock' serve --max-clients 60 --listen '$P/lowfd.sock'"
wait_for "$P/lowfd.sock"
check "serve: --max-clients past the process's descriptors, and it serves" 3 '' \
	'qga: guest-ping: AgentUnavailable: the guest agent is unavailable: *' \
	$QGA -s "$P/lowfd.sock" ping
expect "serve: and lives on" alive lowfd
kill "$PID_lowfd"

check "serve: a denied command is refused by the proxy, as it says" 1 '' \
	'qga: guest-get-osinfo: CommandNotFound: Command guest-get-osinfo has been refused by the proxy (qga serve --allow/--deny)' \
	$QGA -s "$S" guest-get-osinfo
check "serve: info through the proxy marks it denied" 0 \
	'*guest-get-osinfo *denied by the proxy*guest-get-time *enabled*' '' $QGA -s "$S" info
check "serve: and -j shows the agent's reply, marked" 0 \
	'*{"enabled": false, "denied": true, "name": "guest-get-osinfo"*' '' $QGA -s "$S" -j info

# 50 clients at once, 200 requests each, each request with its own id:
# every client must get exactly its own replies, in order.
c=1
while [ $c -le 50 ]; do
	k=1
	while [ $k -le 200 ]; do
		echo "{\"execute\":\"guest-ping\",\"id\":\"c$c-$k\"}"
		k=$((k + 1))
	done >"$P/out/req$c"
	sed 's/.*"id":\("[^"]*"\).*/{"return": {}, "id": \1}/' "$P/out/req$c" >"$P/out/want$c"
	c=$((c + 1))
done
c=1
jobs=
while [ $c -le 50 ]; do
	$QGA -s "$S" - <"$P/out/req$c" >"$P/out/got$c" 2>"$P/out/err$c" &
	jobs="$jobs $!"
	c=$((c + 1))
done
for j in $jobs; do wait "$j"; done
bad=0 c=1
while [ $c -le 50 ]; do
	cmp -s "$P/out/want$c" "$P/out/got$c" || bad=$((bad + 1))
	c=$((c + 1))
done
expect "serve: 50 clients x 200 requests, every reply to its client, in order ($bad wrong)" test $bad = 0

# Clients that leave with requests in flight: the proxy reads and drops
# their replies, so the agent, which dies on an unread reply, lives.
i=0
while [ $i -lt 20 ]; do
	printf '{"execute":"guest-get-host-name"}{"execute":"guest-ping"}' |
		socat -t0 - UNIX-CONNECT:"$S"
	i=$((i + 1))
done
check "serve: after 20 clients left replies unread" 0 '' '' $QGA -s "$S" ping
expect "serve: the agent lives" alive sagent
printf 'this is not JSON' | socat -t0.2 - UNIX-CONNECT:"$S"
check "serve: a client sending garbage is cut off, others go on" 0 '' '' $QGA -s "$S" ping
check "serve: a half request from one client does not poison the next" 0 '' '' \
	sh -c "printf '{\"execute\":\"guest-ping\"' | socat -t0.2 - UNIX-CONNECT:'$S'; $QGA -s '$S' --no-sync ping"

# HTTP, with curl.
check "serve: HTTP POST /" 0 '{"return": {"host-name": "*"}, "id": 1}' '' \
	curl -sf --json '{"execute":"guest-get-host-name","id":1}' "$H/"
check "serve: HTTP GET /health" 0 '200 {"return": {"agent": "up", "waiting": 0}}' '' \
	curl -s -w '%{http_code} ' -o "$P/body" "$H/health" --next -s -o - "$H/health" 
curl -sv --json '{"execute":"guest-ping"}' "$H/" --json '{"execute":"guest-ping"}' "$H/" >/dev/null 2>"$P/curl.err"
expect "serve: HTTP keep-alive reuses the connection" grep -q 'Re-using existing connection' "$P/curl.err"
check "serve: HTTP 404" 0 '404' '' curl -s -o /dev/null -w '%{http_code}' "$H/nope"
check "serve: HTTP 405" 0 '405' '' curl -s -o /dev/null -w '%{http_code}' -X DELETE "$H/"
check "serve: HTTP 400 for a malformed request" 0 '*400 Bad Request*' '' \
	sh -c "printf 'garbage\r\n\r\n' | socat -t1 - TCP:127.0.0.1:$hport"
check "serve: HTTP, a body that comes after its headers" 0 '*200 OK*{"return": {}}' '' \
	sh -c "(printf 'POST / HTTP/1.1\r\nHost: 127.0.0.1:$hport\r\nContent-Type: application/json\r\nContent-Length: 24\r\nConnection: close\r\n\r\n'; sleep 0.5;
		printf '{\"execute\":\"guest-ping\"}') | socat -t3 - TCP:127.0.0.1:$hport"
check "serve: HTTP 400 for a body that is not JSON" 0 '400 {"error": {"class": "GenericError", "desc": "JSON parse error"}}' '' \
	curl -s -w '%{http_code} ' -o "$P/body" --json 'not JSON' "$H/" --next -s -o - --json 'not JSON' "$H/"
# HTTP as a raw client speaks it: pipelined, a byte at a time, too long,
# ambiguous, and a client that never ends its headers.
check "serve: HTTP, pipelined requests answered in their order" 0 \
	"*200 OK*\"host-name\"*404 Not Found*\"Not Found\"*200 OK*{\"return\": {}}*" '' \
	sh -c "printf 'POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 33\r\n\r\n{\"execute\":\"guest-get-host-name\"}GET /nope HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 24\r\nConnection: close\r\n\r\n{\"execute\":\"guest-ping\"}' |
		socat -t3 - TCP:127.0.0.1:$hport | tr -d '\r\n'"
check "serve: HTTP, a request written a byte at a time, in four bursts" 0 '*200 OK*{"return": {}}' '' \
	sh -c "{ printf 'POST / HTTP/1.1\r\nContent-Type: application/json\r\nConte'; sleep 0.2; printf 'nt-Length: 24\r\nConnection: close\r\n\r'
		sleep 0.2; printf '\n{\"execute\":'; sleep 0.2; printf '\"guest-ping\"}'; } |
		socat -b1 -t3 - TCP:127.0.0.1:$hport"
head -c 1048576 /dev/zero | tr '\0' a >"$P/bighead"
check "serve: HTTP, 1 MiB of headers: 431" 0 '*431 Request Header Fields Too Large*' '' \
	sh -c "{ printf 'GET /health HTTP/1.1\r\nX-Big: '; cat '$P/bighead'; printf '\r\n\r\n'; } |
		socat -t3 - TCP:127.0.0.1:$hport 2>/dev/null | head -c 200"
check "serve: HTTP, two Content-Lengths that differ: 400" 0 '*400 Bad Request*' '' \
	sh -c "printf 'POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}' |
		socat -t3 - TCP:127.0.0.1:$hport"
check "serve: HTTP, a body over --max-request: 413 from its head alone" 0 '*413 Content Too Large*' '' \
	sh -c "printf 'POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 9000000\r\n\r\n' | socat -t3 - TCP:127.0.0.1:$hport"
check "serve: HTTP, a Transfer-Encoding other than chunked: 501" 0 '*501 Not Implemented*' '' \
	sh -c "printf 'PUT /file?path=$P/gz HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n' | socat -t3 - TCP:127.0.0.1:$hport"
check "serve: HTTP, both a length and chunked: 400" 0 '*400 Bad Request*' '' \
	sh -c "printf 'PUT /file?path=$P/both HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' |
		socat -t3 - TCP:127.0.0.1:$hport"
expect "serve: and neither made a file" test ! -e "$P/gz" -a ! -e "$P/both"
check "serve: HTTP, a method its path does not take: 405" 0 '405' '' \
	curl -s -o /dev/null -w '%{http_code}' -X PUT -d x "$H/health"
# POST /exec: a program run and polled by serve, its end as exec -j says.
check "serve: POST /exec with sh" 0 \
	'{"exited":true,"out-data":"out\\u000a","err-data":"err\\u000a","out-truncated":false,"err-truncated":false,"exitcode":3}' '' \
	curl -s --json '{"sh": "echo out; echo err >&2; exit 3"}' "$H/exec"
check "serve: POST /exec with path, args and input" 0 \
	'{"exited":true,"out-data":"hello","out-truncated":false,"err-truncated":false,"exitcode":0}' '' \
	curl -s --json '{"path": "/bin/sh", "args": ["-c", "cat; printf \"$1\"", "sh", "lo"], "input": "hel"}' "$H/exec"
check "serve: POST /exec, output that is not UTF-8 in base64" 0 \
	'{"exited":true,"out-data-b64":"/wA=","out-truncated":false,"err-truncated":false,"exitcode":0}' '' \
	curl -s --json '{"sh": "printf \"\\377\\000\""}' "$H/exec"
# The program runs until $P/go is made (60 s at most): the ping is
# answered while /exec still waits for it.
rm -f "$P/go" "$P/started"
curl -s -o "$P/slowexec" --json "{\"sh\": \": >$P/started; i=0; until [ -e $P/go ] || [ \$i -ge 1200 ]; do sleep 0.05; i=\$((i + 1)); done; echo done\"}" "$H/exec" &
slowexec=$!
wait_until 30 test -e "$P/started"
check "serve: a ping while /exec waits for its program" 0 '{"return": {}}' '' $QGA -s "$S" guest-ping
expect "serve: at once, /exec still waiting" test ! -e "$P/go" -a ! -s "$P/slowexec"
: >"$P/go"
wait $slowexec
expect "serve: and /exec ends with its program" grep -q '"out-data":"done\\u000a"' "$P/slowexec"
check "serve: POST /exec past its timeout: 504, the pid said" 0 \
	'{"error": {"class": "AgentTimeout", "desc": "the program still runs in the guest as pid *"}}*504' '' \
	curl -s -w ' %{http_code}' --json '{"sh": "sleep 20", "timeout": 1}' "$H/exec"
check "serve: POST /exec, a body that is not one: 400" 0 '400' '' \
	curl -s -o /dev/null -w '%{http_code}' --json '{"sh": "true", "args": ["x"]}' "$H/exec"
# GET and PUT /file: get and put as the commands do them, streamed.
: >"$P/f0"
printf x >"$P/f1"
head -c 9437184 /dev/urandom >"$P/f9"
for f in f0 f1 f9; do
	size=$(wc -c <"$P/$f")
	check "serve: PUT /file, $size bytes" 0 "{\"return\": {\"size\": $size}}* 200" '' \
		curl -s -w ' %{http_code}' -T "$P/$f" "$H/file?path=$P/$f.up"
	expect "serve: and the guest's copy is the same" cmp -s "$P/$f" "$P/$f.up"
	check "serve: GET /file, $size bytes" 0 '200' '' \
		curl -s -o "$P/$f.down" -w '%{http_code}' "$H/file?path=$P/$f.up"
	expect "serve: and what came down is the same" cmp -s "$P/$f" "$P/$f.down"
done
check "serve: PUT /file, a chunked body from a pipe" 0 '{"return": {"size": 9437184}}' '' \
	sh -c "curl -s -H 'Transfer-Encoding: chunked' -T - '$H/file?path=$P/f9.chunked' <'$P/f9'"
expect "serve: and the guest's copy is the same" cmp -s "$P/f9" "$P/f9.chunked"
check "serve: PUT /file, chunks written a byte at a time, extensions and a trailer" 0 \
	'*200 OK*{"return": {"size": 11}}*' '' \
	sh -c "printf 'PUT /file?path=$P/chunks+%%231 HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n' |
		socat -b1 -t3 - TCP:127.0.0.1:$hport"
check "serve: and the path was %-decoded, + a space" 0 'hello world' '' cat "$P/chunks #1"
check "serve: PUT /file, then a request on the same connection" 0 \
	'*200 OK*{"return": {"size": 3}}*200 OK*"agent": "up"*' '' \
	sh -c "printf 'PUT /file?path=$P/three HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /health HTTP/1.1\r\nConnection: close\r\n\r\n' |
		socat -t3 - TCP:127.0.0.1:$hport"
check "serve: GET /file over HTTP/1.0: no chunks, the end of the connection ends it" 0 \
	'HTTP/1.1 200 OK|Content-Type: application/octet-stream|Connection: close||abc' '' \
	sh -c "printf 'GET /file?path=$P/three HTTP/1.0\r\n\r\n' | socat -t3 - TCP:127.0.0.1:$hport | tr -d '\r' | paste -sd'|'"
check "serve: PUT /file with mode=0640 gives a new file its mode" 0 '640' '' \
	sh -c "curl -s -o /dev/null -T '$P/f1' '$H/file?path=$P/moded&mode=0640' && stat -c %a '$P/moded'"
check "serve: GET /file of no file: 404, the agent's words" 0 \
	"{\"error\": {\"class\": \"GenericError\", \"desc\": \"guest-file-open: GenericError: failed to open file '$P/none' (mode: 'r'): No such file or directory\"}}* 404" '' \
	curl -s -w ' %{http_code}' "$H/file?path=$P/none"
check "serve: PUT /file into no folder: 404" 0 '404' '' \
	curl -s -o /dev/null -w '%{http_code}' -T "$P/f1" "$H/file?path=$P/nodir/x"
check "serve: PUT /file onto a folder: 400, put's words" 0 \
	"{\"error\": {\"class\": \"GenericError\", \"desc\": \"put: $P/out is a folder in the guest: name the file to write in it\"}}* 400" '' \
	curl -s -w ' %{http_code}' -T "$P/f1" "$H/file?path=$P/out"
check "serve: GET /file of a folder: 400, the agent's words" 0 \
	'{"error": {"class": "GenericError", "desc": "guest-file-read: GenericError: failed to read file: Is a directory"}}* 400' '' \
	curl -s -w ' %{http_code}' "$H/file?path=$P/out"
check "serve: GET /file without a path: 400" 0 '400' '' \
	curl -s -o /dev/null -w '%{http_code}' "$H/file"
check "serve: PUT /file without a length: 411" 0 '*411 Length Required*' '' \
	sh -c "printf 'PUT /file?path=$P/nolen HTTP/1.1\r\n\r\n' | socat -t3 - TCP:127.0.0.1:$hport"
cp "$P/f9" "$P/kept"
check "serve: PUT /file, a chunked body not well formed: 400" 0 '*400 Bad Request*' '' \
	sh -c "printf 'PUT /file?path=$P/kept HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n' |
		socat -t3 - TCP:127.0.0.1:$hport"
# A client that goes mid-transfer: put's target is as it was, its
# temporary file removed, the guest's handle closed (no descriptor of the
# agent's left on the file), the agent alive.
perl -e 'use IO::Socket::INET; my $s = IO::Socket::INET->new("127.0.0.1:'"$hport"'") or die;
	print $s "PUT /file?path='"$P"'/kept HTTP/1.1\r\nContent-Length: 9437184\r\n\r\n", "y" x 3000000;
	sleep 1; close $s'
no_put_tmp() { ! ls -a "$P" | grep -q qga-put; }
wait_until 30 no_put_tmp
expect "serve: a PUT /file cut short leaves the target as it was" cmp -s "$P/f9" "$P/kept"
expect "serve: and no temporary file" no_put_tmp
head -c 67108864 /dev/zero >"$P/zeros"
# At 1 MB/s, the 64 MiB stream takes a minute: the ping comes while it
# is under way, not after it.
curl -s --limit-rate 1M -o /dev/null "$H/file?path=$P/zeros" &
slow=$!
open_in_agent() { ls -l "/proc/$PID_sagent/fd" | grep -c "$1"; :; }
opened() { [ "$(open_in_agent "$P/zeros")" = 1 ]; }
wait_until 30 opened
check "serve: a GET /file under way holds the file open in the agent" 0 '1' '' \
	open_in_agent "$P/zeros"
check "serve: a ping while a GET /file streams" 0 '{"return": {}}' '' $QGA -s "$S" guest-ping
expect "serve: at once, the GET still under way" opened
kill $slow
wait $slow 2>/dev/null
closed() { [ "$(open_in_agent "$P/zeros\|$P/kept")" = 0 ]; }
wait_until 30 closed
check "serve: its client gone, the agent has closed it" 0 '0' '' \
	open_in_agent "$P/zeros\|$P/kept"
expect "serve: and the agent lives" alive sagent
check "serve: the proxy serves on" 0 '{"return": {}}' '' $QGA -s "$S" guest-ping
check "serve: HTTP 400 for JSON that is not a request" 0 '400' '' \
	curl -s -o /dev/null -w '%{http_code}' --json '[1, 2]' "$H/"
check "serve: HTTP 403 for a denied command, its error as the body" 0 \
	'{"error": {"class": "CommandNotFound", "desc": "Command guest-get-osinfo has been refused by the proxy (qga serve --allow/--deny)"}}*403' '' \
	curl -s -w ' %{http_code}' --json '{"execute":"guest-get-osinfo"}' "$H/"
args=$(seq 1 70 | sed 's/.*/"&"/' | tr '\n' , | sed 's/,$//')
big="{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/true\",\"arg\":[$args]}}"
check "serve: HTTP, a request of many arguments reaches the agent" 0 '{"return": {"pid": *}}' '' \
	curl -sf --json "$big" "$H/"
check "serve: and through a QGA listener" 0 '{"return": {"pid": *}}' '' $QGA -s "$S" "$big"
check "serve: HTTP, an unknown command is a 404 with the agent's error" 0 \
	'{"error": {"class": "CommandNotFound", *}}* 404' '' \
	curl -s -w ' %{http_code}' --json '{"execute":"guest-nope"}' "$H/"
check "serve: HTTP, an agent's other error is a 500" 0 \
	'{"error": {"class": "GenericError", *}}* 500' '' \
	curl -s -w ' %{http_code}' --json '{"execute":"guest-file-open","arguments":{"path":"/nonexistent/x"}}' "$H/"
check "serve: curl -f fails on an agent's error" 22 '' '' \
	curl -sf -o /dev/null --json '{"execute":"guest-nope"}' "$H/"
# A web page the host's user opens must not reach the agent: a cross-site
# request (Origin, Sec-Fetch-Site), a POST a form or a no-cors fetch can
# send (not application/json), and DNS rebinding (a Host of another name)
# are refused; a tool that sends none of these is served.
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
check "serve: a cross-site POST /exec, text/plain, is refused" 0 '403' '' \
	code -H 'Origin: http://evil.example' -H 'Content-Type: text/plain' \
	-d "{\"sh\": \"touch $P/pwned\"}" "$H/exec"
check "serve: a cross-site Origin with application/json too" 0 '403' '' \
	code -H 'Origin: http://evil.example' --json "{\"sh\": \"touch $P/pwned\"}" "$H/exec"
check "serve: Origin: null" 0 '403' '' code -H 'Origin: null' --json '{"execute":"guest-ping"}' "$H/"
check "serve: Sec-Fetch-Site: cross-site" 0 '403' '' \
	code -H 'Sec-Fetch-Site: cross-site' --json '{"execute":"guest-ping"}' "$H/"
check "serve: Sec-Fetch-Site: same-site (another port of localhost)" 0 '403' '' \
	code -H 'Sec-Fetch-Site: same-site' --json '{"execute":"guest-ping"}' "$H/"
check "serve: a POST that is not application/json: 415" 0 '415' '' \
	code -H 'Content-Type: text/plain' -d "{\"sh\": \"touch $P/pwned\"}" "$H/exec"
check "serve: nor a form's" 0 '415' '' code -d '{"execute":"guest-ping"}' "$H/"
check "serve: nor none" 0 '415' '' code -H 'Content-Type:' -d '{"execute":"guest-ping"}' "$H/"
check "serve: Host: evil.example (DNS rebinding)" 0 '403' '' \
	code -H 'Host: evil.example' --json "{\"sh\": \"touch $P/pwned\"}" "$H/exec"
check "serve: Host: evil.example:PORT" 0 '403' '' \
	code -H "Host: evil.example:$hport" --json '{"execute":"guest-ping"}' "$H/"
check "serve: GET /file from another Host" 0 '403' '' code -H 'Host: evil.example' "$H/file?path=$P/f1"
expect "serve: and nothing of theirs ran" test ! -e "$P/pwned"
check "serve: same-origin, as curl sends it, is served" 0 '200' '' \
	code --json '{"execute":"guest-ping"}' "$H/"
check "serve: Host: localhost:PORT" 0 '200' '' \
	code -H "Host: localhost:$hport" --json '{"execute":"guest-ping"}' "$H/"
check "serve: its own Origin, Sec-Fetch-Site: same-origin, a charset" 0 '200' '' \
	code -H "Origin: http://127.0.0.1:$hport" -H 'Sec-Fetch-Site: same-origin' \
	-H 'Content-Type: application/json; charset=utf-8' -d '{"execute":"guest-ping"}' "$H/"
check "serve: its own Origin on another port is not its own" 0 '403' '' \
	code -H "Origin: http://127.0.0.1:1" --json '{"execute":"guest-ping"}' "$H/"
# A client's command name is on one line of /metrics and of the log.
printf '{"execute":"x\\nqga_agent_up 0\\"","id":1}' | socat -t2 - UNIX-CONNECT:"$S" >/dev/null
check "serve: a command name cannot forge a line of /metrics" 0 '*command="x?qga_agent_up 0?"*' '' \
	sh -c "curl -s '$H/metrics' | grep -v '^qga_agent_up 0'"
# A head as RFC 9112 wants it: CRLF only, no NUL, field names that are tokens.
for h in 'X-A: 1\nX-B: 2' 'X-A: 1\000' 'Bad Name: 1' 'X-A : 1' ' X-Folded: 1' 'X@: 1' \
	'Host: 127.0.0.1\r\nHost: localhost'; do
	check "serve: HTTP 400 for a head with '$h'" 0 'HTTP/1.1 400 Bad Request*' '' \
		sh -c "printf 'GET /health HTTP/1.1\r\n$h\r\n\r\n' | socat -t3 - TCP:127.0.0.1:$hport | head -c 200"
done
check "serve: a bare LF in an unfinished head: 400 at once" 0 'HTTP/1.1 400 Bad Request*' '' \
	sh -c "{ printf 'GET /health HTTP/1.1\nHost: x\n\n'; sleep 3; } | socat -t1 - TCP:127.0.0.1:$hport | head -c 200"

# Off loopback only HTTP with a token listens; a token is then asked of
# every HTTP request but /health. Connections go to loopback only; the
# guarded proxy is a client of the first one, as the agent takes one.
check "serve: QGA off loopback is refused" 2 '' \
	"qga: serve: tcp:0.0.0.0:0 is not a loopback address: QGA clients cannot authenticate, use --http with --token-file, a unix socket or loopback" \
	$QGA -s "$P/agent.sock" serve --listen tcp:0.0.0.0:0
check "serve: HTTP off loopback without a token is refused" 2 '' \
	"qga: serve: tcp:0.0.0.0:0 is not a loopback address: HTTP there needs --token-file" \
	$QGA -s "$P/agent.sock" serve --http tcp:0.0.0.0:0
printf 'short\n' >"$P/short"
check "serve: a token shorter than 16 bytes is refused" 2 '' \
	"qga: serve: the token in $P/short is shorter than 16 bytes" \
	$QGA -s "$P/agent.sock" serve --http tcp:0 --token-file "$P/short"
printf 's3cret-token-0123456789\n' >"$P/token"
start tproxy $QGA -s "$S" serve --http tcp:0.0.0.0:0 --token-file "$P/token"
tport=$(port_of tproxy 1)
TH=http://127.0.0.1:$tport
check "serve: no token, 401 with a JSON body" 0 \
	'401 {"error": {"class": "GenericError", "desc": "Unauthorized"}}' '' \
	curl -s -w '%{http_code} ' -o "$P/body" --json '{"execute":"guest-ping"}' "$TH/" --next -s -o - \
	--json '{"execute":"guest-ping"}' "$TH/"
check "serve: 401 says how to authenticate" 0 '*WWW-Authenticate: Bearer*' '' \
	curl -s -i --json '{"execute":"guest-ping"}' "$TH/"
check "serve: a wrong token, 401" 0 '401' '' curl -s -o /dev/null -w '%{http_code}' \
	-H 'Authorization: Bearer s3cret-token-012345678X' --json '{"execute":"guest-ping"}' "$TH/"
check "serve: a token's prefix, 401" 0 '401' '' curl -s -o /dev/null -w '%{http_code}' \
	-H 'Authorization: Bearer s3cret-token' --json '{"execute":"guest-ping"}' "$TH/"
check "serve: the token, 200" 0 '200 {"return": {}}' '' curl -s -w '%{http_code} ' -o "$P/body" \
	-H 'Authorization: Bearer s3cret-token-0123456789' --json '{"execute":"guest-ping"}' "$TH/" \
	--next -s -o - -H 'Authorization: Bearer s3cret-token-0123456789' \
	--json '{"execute":"guest-ping"}' "$TH/"
check "serve: /health needs no token" 0 '200' '' curl -s -o /dev/null -w '%{http_code}' "$TH/health"
check "serve: with a token, any Host" 0 '200' '' curl -s -o /dev/null -w '%{http_code}' \
	-H 'Host: qga.example:8080' -H 'Authorization: Bearer s3cret-token-0123456789' \
	--json '{"execute":"guest-ping"}' "$TH/"
check "serve: but not a cross-site Origin" 0 '403' '' curl -s -o /dev/null -w '%{http_code}' \
	-H 'Origin: http://evil.example' -H 'Authorization: Bearer s3cret-token-0123456789' \
	--json '{"execute":"guest-ping"}' "$TH/"
check "serve: GET /file needs the token" 0 '401' '' \
	curl -s -o /dev/null -w '%{http_code}' "$TH/file?path=$P/f1"
check "serve: and with it, the file" 0 'x' '' \
	curl -sf -H 'Authorization: Bearer s3cret-token-0123456789' "$TH/file?path=$P/f1"
kill "$PID_tproxy"

# The agent killed mid-run: requests fail cleanly, later ones succeed. A
# batch of pings, one a millisecond, until $P/stop is made; then 100 more,
# their count in $P/sent. The agent is killed once replies came, started
# again once requests were seen to fail, and the batch stopped once a
# reply after that came from the agent.
rm -f "$P/stop"
perl -e 'BEGIN { $| = 1 } my $n = 0; my $more = 100;
	while (!-e $ARGV[0] || $more--) { $n++; print "{\"execute\":\"guest-ping\",\"id\":$n}\n";
		select(undef, undef, undef, 0.001) }
	open(my $f, ">", $ARGV[1]) or die; print $f "$n\n"' "$P/stop" "$P/sent" |
	$QGA -s "$S" - >"$P/long.out" 2>/dev/null &
long=$!
wait_until 30 test -s "$P/long.out"
kill -9 "$PID_sagent"
wait "$PID_sagent" 2>/dev/null
wait_until 30 grep -q '"desc": "the guest agent' "$P/long.out"
check "serve: HTTP /health with the agent down: down, no path nor reason" 0 \
	'503 {"return": {"agent": "down", "waiting": *}}' '' \
	curl -s -w '%{http_code} ' -o "$P/body" "$H/health" --next -s -o - "$H/health"
expect "serve: no path in it" sh -c "! grep -q '$P' '$P/body'"
rm -f "$P/agent.sock"
start_agent
answered() { tail -n 1 "$P/long.out" | grep -q '^{"return": {}'; }
wait_until 30 answered
: >"$P/stop"
wait $long
sent=$(cat "$P/sent")
expect "serve: the batch got error replies while the agent was down" \
	grep -q '"desc": "the guest agent' "$P/long.out"
expect "serve: and its last requests succeeded" test "$(tail -n 1 "$P/long.out")" = "{\"return\": {}, \"id\": $sent}"
expect "serve: one line for each of the $sent requests" test "$(wc -l <"$P/long.out")" = "$sent"
check "serve: after the agent came back" 0 '' '' $QGA -s "$S" wait -T 5

# SIGTERM; then --allow, a live socket refused.
kill -TERM "$PID_proxy"
wait "$PID_proxy"
expect "serve: SIGTERM ends it cleanly" test $? = 0
expect "serve: and removes its socket" test ! -e "$P/proxy.sock"
expect "serve: one log line per client" grep -q 'QGA client 1: connected' "$T/proxy.stderr"
start proxy2 $QGA -s "$P/agent.sock" serve -q --listen unix:"$P/proxy2.sock" \
	--allow guest-ping
wait_for "$P/proxy2.sock"
check "serve: --allow lets a listed command through, the sync too" 0 '{"return": {}}' '' \
	$QGA -s "$P/proxy2.sock" guest-ping
check "serve: --allow keeps others out" 1 '' \
	'qga: guest-get-host-name: CommandNotFound: Command guest-get-host-name has been refused by the proxy (qga serve --allow/--deny)' \
	$QGA -s "$P/proxy2.sock" guest-get-host-name
check "serve: a live socket is refused" 2 '' \
	"qga: $P/proxy2.sock: another server listens there" \
	$QGA -s "$P/agent.sock" serve --listen unix:"$P/proxy2.sock"
kill -TERM "$PID_proxy2"
wait "$PID_proxy2"
expect "serve: -q keeps it quiet" test ! -s "$T/proxy2.stderr"

# Built-in names in --allow and --deny stand for the agent's commands.
start proxy4 $QGA -s "$P/agent.sock" serve --listen unix:"$P/proxy4.sock" \
	--http tcp:127.0.0.1:0 --deny exec,guest-nope,guest-file-write
wait_for "$P/proxy4.sock"
check "serve: --deny guest-file-write keeps PUT /file out: 403" 0 '*403' '' \
	curl -s -w ' %{http_code}' -T "$P/f1" "http://127.0.0.1:$(port_of proxy4)/file?path=$P/denied"
expect "serve: and the file is not made" test ! -e "$P/denied"
check "serve: while GET /file goes through" 0 'x' '' \
	curl -sf "http://127.0.0.1:$(port_of proxy4)/file?path=$P/f1"
check "serve: --deny exec keeps POST /exec out: 403" 0 \
	'{"error": {"class": "CommandNotFound", "desc": "Command guest-exec has been refused by the proxy (qga serve --allow/--deny)"}}*403' '' \
	curl -s -w ' %{http_code}' --json '{"sh": "echo no"}' "http://127.0.0.1:$(port_of proxy4)/exec"
check "serve: --deny exec keeps exec out" 255 '' \
	'qga: guest-exec: CommandNotFound: Command guest-exec has been refused by the proxy (qga serve --allow/--deny)' \
	$QGA -s "$P/proxy4.sock" exec -- /bin/echo no
check "serve: and sh" 255 '' "qga: guest-exec: CommandNotFound: *refused by the proxy*" \
	$QGA -s "$P/proxy4.sock" sh 'echo no'
check "serve: and the raw guest-exec-status" 1 '' "qga: guest-exec-status: CommandNotFound: *refused by the proxy*" \
	$QGA -s "$P/proxy4.sock" guest-exec-status pid=1
check "serve: the rest goes through" 0 "$(hostname)" '' $QGA -s "$P/proxy4.sock" hostname
expect "serve: a listed name the agent does not know is warned of" \
	grep -q '^qga serve: warning: --deny guest-nope: the agent has no such command$' "$T/proxy4.stderr"
kill -TERM "$PID_proxy4"
wait "$PID_proxy4"
start proxy5 $QGA -s "$P/agent.sock" serve -q --listen unix:"$P/proxy5.sock" --allow hostname
wait_for "$P/proxy5.sock"
check "serve: --allow hostname, and qga hostname works through it" 0 "$(hostname)" '' \
	$QGA -s "$P/proxy5.sock" hostname
check "serve: while ping is kept out" 1 '' "qga: guest-ping: *refused by the proxy*" \
	$QGA -s "$P/proxy5.sock" ping
kill -TERM "$PID_proxy5"
wait "$PID_proxy5"
# Replies done but waiting behind the client's earlier one count against
# its limit: a slow /exec, then guest-info after guest-info pipelined.
start proxy6 $QGA -s "$P/agent.sock" -t 60 --max-reply 16K serve --http tcp:127.0.0.1:0 --max-request 1K
p6=$(port_of proxy6)
info='{"execute":"guest-info"}'
{
	slow='{"sh":"sleep 30"}'
	printf 'POST /exec HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' ${#slow} "$slow"
	i=0
	while [ $i -lt 20 ]; do
		printf 'POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' ${#info} "$info"
		i=$((i + 1))
	done
} >"$P/held"
check "serve: 20 replies of 3 KB held behind a slow one pass 16K + 1K: cut off" 0 '' '' \
	sh -c "socat -t20 - TCP:127.0.0.1:$p6 <'$P/held'"
expect "serve: and says so" grep -q 'HTTP client .*: cut off' "$T/proxy6.stderr"
check "serve: others go on" 0 '200' '' curl -s -o /dev/null -w '%{http_code}' \
	--json '{"execute":"guest-ping"}' "http://127.0.0.1:$p6/"
kill -TERM "$PID_proxy6"
wait "$PID_proxy6"
check "serve: a name that is no command is refused at start" 2 '' \
	"qga: serve: --deny 'Guest Exec': neither a built-in command nor the name of an agent or QMP command" \
	$QGA -s "$P/agent.sock" serve --listen unix:"$P/never.sock" --deny 'Guest Exec'
check "serve: a built-in that sends nothing" 2 '' \
	"qga: serve: --allow help: that command sends nothing to the agent" \
	$QGA -s "$P/agent.sock" serve --listen unix:"$P/never.sock" --allow help
expect "serve: and nothing listened" test ! -e "$P/never.sock"
echo 'my notes' >"$P/notes.txt"
check "serve: --listen on a regular file refuses" 2 '' \
	"qga: listen on $P/notes.txt: it exists and is not a socket" \
	$QGA -s "$P/agent.sock" serve --listen unix:"$P/notes.txt"
check "serve: and the file survives" 0 'my notes' '' cat "$P/notes.txt"

# Without /etc/hosts, localhost is still loopback (RFC 6761), both
# addresses of it: an empty one is mounted over it in a namespace of the
# server's own.
: >"$P/nohosts"
if "$IN_NS" "$P/nohosts" "$NORESOLV" true 2>/dev/null; then
	start proxy3 "$IN_NS" "$P/nohosts" "$NORESOLV" \
		"$QGA" -s "$P/agent.sock" serve --listen tcp:localhost:0
	p3=$(port_of proxy3)
	check "serve: tcp:localhost with an empty /etc/hosts" 0 '{"return": {}}' '' \
		$QGA -s tcp:127.0.0.1:$p3 guest-ping
	if grep -q '00000000000000000000000000000001 .* lo$' /proc/net/if_inet6 2>/dev/null; then
		check "serve: and on ::1, the same port" 0 '{"return": {}}' '' \
			$QGA -s "tcp:[::1]:$p3" guest-ping
	else
		skip "serve on ::1: no ::1 on lo"
	fi
	kill -TERM "$PID_proxy3"
	wait "$PID_proxy3"
	expect "serve: and it ended cleanly" test $? = 0
else
	skip "the empty /etc/hosts test: no mount namespace here"
fi

# Commands that never reply on success do not wedge the queue.
rm -f "$P/fake.sock"
start sfake "$PWD/test/fakeagent" "$P/fake.sock" ok
wait_for "$P/fake.sock"
start proxy3 $QGA -s "$P/fake.sock" serve -q --listen unix:"$P/proxy3.sock" --http unix:"$P/proxy3.http"
wait_for "$P/proxy3.http"
check "serve: shutdown through the proxy" 0 '' '' $QGA -s "$P/proxy3.sock" shutdown
check "serve: and over HTTP, 204 once taken" 0 '204' '' curl -s -o /dev/null -w '%{http_code}' \
	--unix-socket "$P/proxy3.http" --json '{"execute":"guest-shutdown"}' http://x/
check "serve: the queue goes on after it" 0 '' '' $QGA -s "$P/proxy3.sock" ping

# serve's memory is bounded whatever the agent or a client sends: values
# that each read ends within, as a flood of them does, are compacted, not
# kept until one read ends between two.
kb() { sed -n "s/^$1:[^0-9]*\([0-9]*\) kB/\1/p" "/proc/$2/status"; }
rm -f "$P/flood.sock"
start sflood "$PWD/test/fakeagent" "$P/flood.sock" flood
wait_for "$P/flood.sock"
start fproxy $QGA -s "$P/flood.sock" -t 60 --max-reply 64K serve --listen unix:"$P/fproxy.sock" \
	--http tcp:127.0.0.1:0 --max-request 64K
fport=$(port_of fproxy)
base=$(kb VmRSS "$PID_fproxy")
check "serve: an agent that sent 32 MB of values, each read ending within one" 0 '' '' \
	$QGA -s "$P/fproxy.sock" -t 60 ping
grew=$(( $(kb VmHWM "$PID_fproxy") - base ))
expect "serve: its memory grew by $grew kB, not 32 MB" test "$grew" -lt 8192
# A client that sends 32 MB of guest-sync requests (4 KB each), each write
# ending within one, and reads the replies.
got=$(perl -e 'use IO::Socket::UNIX;
	my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "connect: $!";
	my $pid = fork // die;
	if (!$pid) { my ($b, $all) = ("", ""); $all .= $b while sysread($s, $b, 65536); print scalar(() = $all =~ /"return"/g), "\n"; exit }
	my $p = q(ecute":"guest-sync","arguments":{"id":1},"pad":") . ("x" x 4000) . q("}{"ex);
	syswrite($s, q({"ex));
	for (1 .. 8192) { my $o = 0; $o += syswrite($s, $p, length($p) - $o, $o) // die while $o < length $p }
	syswrite($s, q(ecute":"guest-sync","arguments":{"id":2}}));
	shutdown($s, 1); waitpid($pid, 0)' "$P/fproxy.sock")
expect "serve: a client's 32 MB of requests, each answered ($got)" test "$got" = 8193
grew=$(( $(kb VmHWM "$PID_fproxy") - base ))
expect "serve: its memory grew by $grew kB, not 32 MB" test "$grew" -lt 8192
check "serve: /health after both" 0 '200' '' curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$fport/health"
kill "$PID_fproxy"

# An agent that answers the sync with a QMP greeting: serve does not take
# it for a QMP monitor, and its tries to reach it hold nothing up.
rm -f "$P/greet.sock"
start sgreet "$PWD/test/fakeagent" "$P/greet.sock" greet
wait_for "$P/greet.sock"
start gproxy $QGA -s "$P/greet.sock" -t 30 serve --listen unix:"$P/gproxy.sock" --http tcp:127.0.0.1:0
gport=$(port_of gproxy)
$QGA -s "$P/gproxy.sock" -t 60 guest-ping >"$P/greet.out" 2>&1 &
greetping=$!
sleep 0.5
check "serve: /health at once while it tries the agent again" 0 '503' '' \
	curl -s -m 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$gport/health"
wait $greetping
check "serve: the ping fails as unavailable" 0 \
	'qga: guest-ping: AgentUnavailable: the guest agent is unavailable: it greets as QMP does*' '' cat "$P/greet.out"
expect "serve: and serve did not switch to QMP" sh -c "! grep -q 'QMP monitor: connecting again' '$T/gproxy.stderr'"
kill "$PID_gproxy"

# Guest text cannot forge a line of serve's log or of --log.
rm -f "$P/liar.sock"
start sliar "$PWD/test/fakeagent" "$P/liar.sock" liar
wait_for "$P/liar.sock"
rm -f "$P/liar.log"
start lproxy $QGA -s "$P/liar.sock" serve --listen unix:"$P/lproxy.sock" --log "$P/liar.log"
wait_for "$P/lproxy.sock"
check "serve: an agent's error with newlines in it" 1 '' 'qga: guest-get-host-name: GenericError: *' \
	$QGA -s "$P/lproxy.sock" guest-get-host-name
kill -TERM "$PID_lproxy"
wait "$PID_lproxy"
expect "serve: --log has a line for each request, no more" \
	test "$(jq -r .command "$P/liar.log" | paste -sd,)" = guest-sync-delimited,guest-get-host-name
expect "serve: and no forged line in serve's log" sh -c "! grep -q 'forged' '$T/lproxy.stderr' '$P/liar.log'"
