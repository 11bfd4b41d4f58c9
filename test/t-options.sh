# SPDX-License-Identifier: MIT
# Options where people put them: the global ones before or after the
# command's name, up to its operands or --; bad ones named, with the usage
# line of the command they were given to. Against the real agent.
need_tool "$QEMU_GA" qemu-guest-agent
O=$T/options
mkdir -p "$O"
rm -f "$O/qga.sock"
start oagent "$QEMU_GA" --method=unix-listen --path="$O/qga.sock" \
	--statedir="$O" --logfile="$O/qga.log" --block-rpcs="$BLOCK"
wait_for "$O/qga.sock"
S=$O/qga.sock
nl='
'

check "options: after a built-in's name" 0 '' '' $QGA ping -s "$S"
check "options: -j after a built-in's name" 0 '{"return": {}}' '' $QGA ping -s "$S" -j
check "options: after a JSON request" 0 "{$nl  \"return\": {$nl    \"host-name\": \"*\"$nl  }$nl}" '' \
	$QGA '{"execute":"guest-get-host-name"}' --pretty -s "$S"
check "options: among a raw command's words" 0 '42' '' $QGA guest-sync id=42 -r --socket="$S"
check "options: -- ends them for a raw command" 1 '' \
	"qga: guest-sync: GenericError: Parameter 'id' is missing" \
	$QGA -s "$S" guest-sync -- 2>/dev/null
check "options: a batch, then an option" 0 '{}' '' sh -c "echo guest-ping | $QGA - -r -s '$S'"
check "options: after exec's name" 0 'hi' '' $QGA exec -s "$S" -- /bin/echo hi
check "options: the program's own options stay its own" 0 '-s x -t 1' '' \
	$QGA -s "$S" exec -- /bin/echo -s x -t 1
check "options: the operands end them" 0 '-s x' '' $QGA -s "$S" exec /bin/echo -s x
check "options: sh's arguments stay its own" 0 '-j' '' $QGA -s "$S" sh 'echo "$1"' -j
check "options: -r on a table command asks for the JSON" 0 '{"host-name": "*"}' '' \
	$QGA -s "$S" hostname -r
check "options: -j -p together" 0 "{$nl  \"return\": {$nl    \"host-name\": \"*\"$nl  }$nl}" '' \
	$QGA -s "$S" -j hostname -p
check "options: -t after the name" 4 '' "qga: $O/none.sock: no agent answered within 0.200 s" \
	$QGA -s "$O/none.sock" wait -T 0.2 -t 5
start oproxy $QGA serve -s "$S" --listen unix:"$O/proxy.sock" -q
wait_for "$O/proxy.sock"
check "options: serve -s AGENT --listen ..." 0 '' '' $QGA -s "$O/proxy.sock" ping
kill "$PID_oproxy"
wait "$PID_oproxy"

# Refusals: named, with the one usage line, exit 2, nothing sent.
check "options: an unknown option after a command" 2 '' \
	"qga: ping: unknown option '-x'${nl}usage: qga \\[OPTIONS\\] ping" $QGA ping -x
check "options: an unknown long option after a command" 2 '' \
	"qga: exec: unknown option '--frob'${nl}usage: qga \\[OPTIONS\\] exec \\[-i\\]*" \
	$QGA exec --frob -- /bin/true
check "options: a missing value" 2 '' \
	"qga: exec: option '-e' needs a value${nl}usage: qga \\[OPTIONS\\] exec *" $QGA exec -e
check "options: a missing long value" 2 '' \
	"qga: serve: option '--listen' needs a value${nl}usage: qga \\[OPTIONS\\] serve *" \
	$QGA serve --listen
check "options: a value where none is taken" 2 '' \
	"qga: option '--pretty' takes no value${nl}usage: qga \\[OPTIONS\\] COMMAND \\[ARG\\]...  (qga --help says more)" \
	$QGA --pretty=1 ping
check "options: a bad top-level option is one line and the usage line" 2 '' \
	"qga: unknown option '-x'${nl}usage: qga \\[OPTIONS\\] COMMAND \\[ARG\\]...  (qga --help says more)" \
	$QGA -x ping
check "options: an unknown option among a raw command's words" 2 '' \
	"qga: unknown option '--nope'${nl}usage: qga *" $QGA -s "$S" guest-ping --nope
check "options: -j where no JSON is printed is refused" 2 '' \
	"qga: put: -r, -p and -j apply to the agent's JSON reply, which put does not print${nl}usage: qga \\[OPTIONS\\] put *" \
	$QGA -s "$S" put -j "$O/qga.log" "$O/copy"
expect "options: and nothing was written" test ! -e "$O/copy"
check "options: -p with cat is refused" 2 '' "qga: cat: -r, -p and -j apply*" \
	$QGA -s "$S" cat -p /etc/hostname
check "options: a bad timeout after the name" 2 '' "qga: bad timeout 'x': expected seconds" \
	$QGA ping -t x
check "options: COMMAND -h" 0 'usage: qga \[OPTIONS\] hostname*' '' $QGA hostname -h

# Names: Proxmox's, without the prefix; mistakes get a suggestion.
check "names: a name without guest- is tried with it" 0 '{"return": {"host-name": "*"}}' '' \
	$QGA -s "$S" get-host-name
check "names: and in a batch" 0 "{\"return\": {}}$nl{\"return\": 7}" '' \
	sh -c "printf 'ping\nsync id=7\n' | $QGA -s '$S'"
check "names: a near miss of a built-in" 1 '' \
	"qga: hostnme: CommandNotFound: The command hostnme has not been found${nl}qga: did you mean 'hostname'?" \
	$QGA -s "$S" hostnme
check "names: a near miss of an agent command" 1 '' \
	"qga: guest-get-osinfp: CommandNotFound: The command guest-get-osinfp has not been found${nl}qga: did you mean 'guest-get-osinfo'?" \
	$QGA -s "$S" guest-get-osinfp
check "names: nothing near" 1 '' \
	"qga: zzzz: CommandNotFound: The command zzzz has not been found" $QGA -s "$S" zzzz

# A command's own long timeout covers its reply, not connecting or the
# sync: fsfreeze status on a silent channel gives up within -t.
F=$T/fake
mkdir -p "$F"
rm -f "$F/ostall.sock"
start ostall "$PWD/test/fakeagent" "$F/ostall.sock" stall
wait_for "$F/ostall.sock"
t0=$(date +%s%N)
check "timeouts: fsfreeze status on a silent channel" 4 '' \
	"qga: no answer from a guest agent at unix:$F/ostall.sock within 0.500 s: is qemu-guest-agent running in the guest? another client (libvirtd, qga serve) may hold this socket" \
	$QGA -s "unix:$F/ostall.sock" fsfreeze -t 0.5 status
t1=$(date +%s%N)
expect "timeouts: and it took the global -t, not 300 s nor the default 10 ($(((t1 - t0) / 1000000)) ms)" \
	test $(((t1 - t0) / 1000000)) -lt 5000
check "timeouts: without -t, connecting and the sync take the default" 4 '' \
	"qga: no answer from a guest agent at unix:$F/ostall.sock within 10 s: is qemu-guest-agent running in the guest? *" \
	$QGA -s "unix:$F/ostall.sock" fstrim
expect "options: the agent survived" alive oagent
