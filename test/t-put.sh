# put never loses, half-writes or exposes a guest file: a temporary file
# beside the target, renamed over it only when complete; modes set; an
# interrupted put leaves the old file whole and no temporary file behind.
# Against the real agent, with guest-exec and without.
need_tool "$QEMU_GA" qemu-guest-agent
U=$T/put
rm -rf "$U/files"
mkdir -p "$U/a" "$U/b" "$U/files"
rm -f "$U"/*.sock
start putagent "$QEMU_GA" --method=unix-listen --path="$U/a.sock" --statedir="$U/a" \
	--logfile="$U/a.log" --block-rpcs="$BLOCK"
start putnoexec "$QEMU_GA" --method=unix-listen --path="$U/b.sock" --statedir="$U/b" \
	--logfile="$U/b.log" --block-rpcs="$BLOCK,guest-exec"
wait_for "$U/a.sock"
wait_for "$U/b.sock"
S=$U/a.sock
nl='
'
leftovers() { ls -A "$U/files" | grep 'qga-put' | tr '\n' ' '; }

check "put: one operand is a usage error" 2 '' \
	"qga: put: name the local file, or - for stdin, and the guest file: qga put LOCAL|- REMOTE" \
	sh -c "echo data | $QGA -s '$S' put '$U/files/one'"
expect "put: and nothing was written" test ! -e "$U/files/one"
script -qec "$QGA -s '$S' put - '$U/files/tty'; echo status \$?" /dev/null </dev/null |
	tr -d '\r' >"$U/tty.out"
check "put: - from a terminal is refused" 0 \
	"qga: put: stdin is a terminal: pipe the data in, or name a file${nl}status 2" '' cat "$U/tty.out"

# A folder as the target takes the file in it under its own name, as cp
# does; from stdin there is no name, so it is refused. It once wrote
# .NAME.qga-put-XXXXXXXX into the folder, with the folder's mode.
mkdir -p "$U/files/into"
echo inside >"$U/inside.txt"
check "put: into a folder, under the file's name" 0 'inside' '' \
	sh -c "$QGA -s '$S' put '$U/inside.txt' '$U/files/into' && cat '$U/files/into/inside.txt'"
check "put: and nothing else in it" 0 'inside.txt' '' ls -A "$U/files/into"
check "put: - into a folder is refused" 2 '' \
	"qga: put: $U/files/into is a folder in the guest: name the file to write in it" \
	sh -c "echo data | $QGA -s '$S' put - '$U/files/into'"
check "put: and leaves it as it was" 0 'inside.txt' '' ls -A "$U/files/into"
expect "put: and no temporary file beside it" test -z "$(leftovers)"

# Modes: a new file gets the local file's, 0644 from stdin, or --mode.
echo local >"$U/local"
chmod 640 "$U/local"
$QGA -s "$S" put "$U/local" "$U/files/new"
check "put: a new file gets the local file's mode" 0 '640 local' '' \
	sh -c "stat -c %a '$U/files/new' | tr '\n' ' '; cat '$U/files/new'"
echo data | $QGA -s "$S" put - "$U/files/stdin"
check "put: from stdin, 0644" 0 '644' '' stat -c %a "$U/files/stdin"
$QGA -s "$S" put -m 600 "$U/local" "$U/files/moded"
check "put: --mode" 0 '600' '' stat -c %a "$U/files/moded"
echo old >"$U/files/kept"
chmod 604 "$U/files/kept"
$QGA -s "$S" put "$U/local" "$U/files/kept"
check "put: an existing file keeps its mode" 0 '604 local' '' \
	sh -c "stat -c %a '$U/files/kept' | tr '\n' ' '; cat '$U/files/kept'"
echo more | $QGA -s "$S" put -a - "$U/files/kept"
check "put: -a appends, and keeps the mode" 0 "604 local${nl}more" '' \
	sh -c "stat -c %a '$U/files/kept' | tr '\n' ' '; cat '$U/files/kept'"
echo first | $QGA -s "$S" put -a - "$U/files/appended"
check "put: -a that makes a new file gives it a new file's mode" 0 '644' '' \
	stat -c %a "$U/files/appended"
check "put: no temporary file is left" 0 '' '' leftovers

# Without guest-exec: in place, said; a new file's mode, warned of.
check "put: without guest-exec, in place and said" 0 '' \
	"qga: put: guest-exec is disabled in the guest agent: writing $U/files/plain in place, not atomically${nl}qga: put: $U/files/plain is new, and the agent made it world-writable (0666): guest-exec, which would set its mode, is disabled" \
	$QGA -s "$U/b.sock" put "$U/local" "$U/files/plain"
check "put: and the file is there" 0 'local' '' cat "$U/files/plain"
check "put: --inplace with guest-exec sets a new file's mode" 0 '640' '' \
	sh -c "$QGA -s '$S' put --inplace '$U/local' '$U/files/inplace' && stat -c %a '$U/files/inplace'"

# Interrupted puts of 64 MiB over an existing file: the target is the old
# file or the new one, never anything else.
head -c 67108864 /dev/urandom >"$U/new"
head -c 1048576 /dev/urandom >"$U/old"
rnd() { od -An -N2 -tu2 /dev/urandom | tr -d ' '; }
bad=0 left=0
for sig in INT TERM HUP INT TERM HUP KILL KILL KILL; do
	# A SIGKILL cannot be caught: when it leaves a reply unread, the agent
	# exits, and is started again. That is the agent's flaw, not put's.
	if [ "$sig" = KILL ] && ! alive putagent; then
		rm -f "$S"
		start putagent "$QEMU_GA" --method=unix-listen --path="$S" --statedir="$U/a" \
			--logfile="$U/a.log" --block-rpcs="$BLOCK"
		wait_for "$S"
	fi
	cp "$U/old" "$U/files/big"
	$QGA -s "$S" put "$U/new" "$U/files/big" 2>/dev/null &
	p=$!
	wait_until 30 catching $p
	sleep "$(awk -v r="$(rnd)" 'BEGIN { printf "%.2f", r % 300 / 100 }')"
	kill -"$sig" "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	cmp -s "$U/files/big" "$U/old" || cmp -s "$U/files/big" "$U/new" || bad=$((bad + 1))
	[ "$sig" = HUP ] && expect "put: the agent outlives SIGINT, SIGTERM and SIGHUP" alive putagent
	[ "$sig" = KILL ] || [ -z "$(leftovers)" ] || left=$((left + 1))
	[ "$sig" = KILL ] && ls -A "$U/files" | grep qga-put | grep -qv '^\.big\.qga-put-[0-9a-f]\{8\}$' &&
		left=$((left + 1))
done
expect "put: interrupted 9 times, the target was always the old or the new file ($bad not)" \
	test "$bad" = 0
expect "put: after SIGINT and SIGTERM no temporary file, after SIGKILL only one named for it ($left not)" \
	test "$left" = 0
alive putagent || {
	rm -f "$S"
	start putagent "$QEMU_GA" --method=unix-listen --path="$S" --statedir="$U/a" \
		--logfile="$U/a.log" --block-rpcs="$BLOCK"
	wait_for "$S"
}
$QGA -s "$S" put "$U/new" "$U/files/big"
expect "put: a whole put afterwards" cmp -s "$U/files/big" "$U/new"
check "put: and it removed what the killed ones left" 0 '' '' leftovers
expect "put: the agents live" alive putagent
expect "put: the agents live" alive putnoexec
