# SPDX-License-Identifier: MIT
# get -r against a guest whose tar lies: the real agent, whose PATH starts
# with a folder where "tar" writes a crafted archive (test/mktar) instead.
# Whatever the archive holds, nothing but files, folders and symbolic
# links is made, only inside the copy, with the user's owner and at most
# the permission bits umask allows, and an archive that fails leaves
# nothing behind.
need_tool "$QEMU_GA" qemu-guest-agent
need_tool pgrep procps
U=$T/untar
rm -rf "$U"
mkdir -p "$U/state" "$U/bin" "$U/src" "$U/out" "$U/elsewhere"
# The guest's tar: the crafted archive; with $U/race, it first makes the
# folder the copy is bound for; with $U/hang, it never ends.
cat >"$U/bin/tar" <<EOT
#!/bin/sh
if [ -e "$U/race" ]; then mkdir "$U/out/race"; fi
cat "$U/evil.tar"
if [ -e "$U/hang" ]; then exec sleep 617; fi
EOT
chmod 755 "$U/bin/tar"
start evilagent env PATH="$U/bin:$PATH" "$QEMU_GA" --method=unix-listen \
	--path="$U/qga.sock" --statedir="$U/state" --logfile="$U/qga.log" --block-rpcs="$BLOCK"
wait_for "$U/qga.sock"
# evil LINES: the archive the guest sends next, from mktar's lines.
evil() { printf '%s\n' "$@" | test/mktar >"$U/evil.tar"; }
# The mode, type and owner of a path, as the copy has them.
info() { stat -c '%a %F %u:%g' "$1"; }
umask 022

evil '5|./|0777||' '0|./setuid|06755||#!/bin/sh' '0|./sticky|01777||x' \
	'3|./tty|0666||' '4|./disk|0666||' '6|./fifo|0666||' '1|./passwd|0644|/etc/passwd|' \
	'1|./up|0644|../../etc/passwd|' '5|./d|0777||' '0|./d/f|0666||data' \
	'1|./d/same|0600|./d/f|'
check "untar: devices, FIFOs and hard links out skipped, one warning each" 0 '' \
"qga: get -r: tty: skipped: a character device
qga: get -r: disk: skipped: a block device
qga: get -r: fifo: skipped: a FIFO
qga: get -r: passwd: skipped: a hard link to no file of this copy
qga: get -r: up: skipped: a hard link to no file of this copy" \
	$QGA -s "$U/qga.sock" get -r "$U/src" "$U/out/a"
expect "untar: the copy's own mode is not the archive's" test "$(info "$U/out/a")" = "755 directory 0:0"
expect "untar: no setuid, setgid: the bits umask allows" \
	test "$(info "$U/out/a/setuid")" = "755 regular file 0:0"
expect "untar: no sticky bit" test "$(info "$U/out/a/sticky")" = "755 regular file 0:0"
expect "untar: a folder's mode masked too" test "$(info "$U/out/a/d")" = "755 directory 0:0"
expect "untar: no device, FIFO or link out made" \
	test "$(cd "$U/out/a" && ls -A | tr '\n' ' ')" = "d setuid sticky "
expect "untar: a hard link within the copy kept" test "$U/out/a/d/same" -ef "$U/out/a/d/f"
expect "untar: the file's time kept" test "$(stat -c %Y "$U/out/a/d/f")" = 1577934245

# A symbolic link that leads out, then an entry through it: in one
# archive, and across two runs into the same folder.
echo keep >"$U/elsewhere/victim"
evil '2|./esc||'"$U"'/elsewhere|' '0|./esc/victim|0644||owned' '0|./esc/new|0644||owned'
check "untar: nothing written through a link the archive made" 0 '' \
"qga: get -r: esc/victim: skipped: a part of its name is not a folder
qga: get -r: esc/new: skipped: a part of its name is not a folder" \
	$QGA -s "$U/qga.sock" get -r "$U/src" "$U/out/b"
expect "untar: the target outside is untouched" test "$(cat "$U/elsewhere/victim")" = keep
expect "untar: nothing new outside" test "$(ls "$U/elsewhere")" = victim
expect "untar: the link itself is kept, as a link" test -L "$U/out/b/esc"
evil '0|./esc/victim|0644||owned'
check "untar: a second copy into the same folder goes beside the first, not through its link" \
	0 '' '' $QGA -s "$U/qga.sock" get -r "$U/src" "$U/out/b"
expect "untar: the target outside is still untouched" test "$(cat "$U/elsewhere/victim")" = keep
expect "untar: the second copy is in a folder of its own" test "$(cat "$U/out/b/src/esc/victim")" = owned
check "untar: a copy never goes into one already there" 2 '' \
	"qga: get -r: $U/out/b/src is there already: a copy never goes into another (name a new folder)" \
	$QGA -s "$U/qga.sock" get -r "$U/src" "$U/out/b"

# A later entry of a name wins, as with tar, links included.
evil '2|./a||/one|' '0|./a|0644||file wins' '2|./b||/first|' '2|./b||/second|' \
	'0|./c|0644||x' '2|./c||/link wins|'
check "untar: entries of the same name" 0 '' '' $QGA -s "$U/qga.sock" get -r "$U/src" "$U/out/same"
expect "untar: a file after a link of its name wins" test "$(cat "$U/out/same/a")" = "file wins"
expect "untar: the second of two links wins" test "$(readlink "$U/out/same/b")" = /second
expect "untar: a link after a file of its name wins" test "$(readlink "$U/out/same/c")" = "/link wins"

# Times before 1970, as GNU tar writes them (base-256) and as pax does.
mkdir -p "$U/old"
echo old >"$U/old/f" && touch -d '1960-01-01 00:00:00 UTC' "$U/old/f"
for f in gnu posix; do
	tar --format=$f -cf "$U/evil.tar" -C "$U/old" .
	check "untar: a time before 1970 ($f)" 0 '' '' \
		$QGA -s "$U/qga.sock" get -r "$U/src" "$U/out/old-$f"
	expect "untar: its time kept ($f)" test "$(stat -c %Y "$U/out/old-$f/f")" = -315619200
done

# A folder that comes where the copy goes while it is made: the copy is
# whole and stays beside it, the folder is not replaced.
evil '0|./f|0644||x'
: >"$U/race"
check "untar: a folder there meanwhile is not replaced" 3 '' \
	"qga: get -r: $U/out/race came there meanwhile: the copy is in $U/out/race.qga-??????" \
	$QGA -s "$U/qga.sock" get -r "$U/src" "$U/out/race"
rm -f "$U/race"
expect "untar: the folder there is as it was" test -z "$(ls -A "$U/out/race")"
expect "untar: the copy stays beside it" test "$(cat "$U/out"/race.qga-*/f)" = x
rm -rf "$U/out/race" "$U/out"/race.qga-*

# A name's control characters reach no terminal: they are shown escaped.
evil "$(printf '3|./a\033]0;owned\007\033[2J|0644||')" '0|./fine|0644||x'
check "untar: a skipped name's control characters escaped" 0 '' \
	'qga: get -r: a\\x1b]0;owned\\x07\\x1b\[2J: skipped: a character device' \
	$QGA -s "$U/qga.sock" get -r "$U/src" "$U/out/esc"

# Names that reach out of the folder.
evil '0|../../escaped|0644||x' '0|/abs|0644||x' '0|./a/../../up|0644||x' '0|./ok|0644||fine'
check "untar: .. and absolute names skipped" 0 '' \
"qga: get -r: ../../escaped: skipped: a name outside the folder
qga: get -r: /abs: skipped: a name outside the folder
qga: get -r: ./a/../../up: skipped: a name outside the folder" \
	$QGA -s "$U/qga.sock" get -r "$U/src" "$U/out/c"
expect "untar: nothing outside" sh -c "! ls '$U/escaped' '$U/out/escaped' '$U/up' /abs 2>/dev/null"
expect "untar: the rest copied" test "$(cat "$U/out/c/ok")" = fine

# pax and GNU long names, which the real tar writes for long names.
long=$(printf 'n%.0s' $(seq 200))
evil "x|pax|||path=./p/$long;mtime=1600000000.5" '0|ignored|0640||pax' \
	"L|././@LongLink|||./g/$long" '0|./cut|0600||gnu' \
	'x|pax|||path=../../paxout' '0|./fine|0644||x'
check "untar: pax and GNU long names" 0 '' \
	"qga: get -r: ../../paxout: skipped: a name outside the folder" \
	$QGA -s "$U/qga.sock" get -r "$U/src" "$U/out/long"
expect "untar: the pax name and time" \
	test "$(cat "$U/out/long/p/$long"):$(stat -c %Y "$U/out/long/p/$long")" = pax:1600000000
expect "untar: the GNU long name" test "$(cat "$U/out/long/g/$long")" = gnu

# An archive that fails leaves nothing: neither the copy nor its folder.
evil '0|./a|0644||x'
head -c 700 "$U/evil.tar" >"$U/cut.tar" && mv "$U/cut.tar" "$U/evil.tar"
check "untar: an archive cut short fails, 5" 5 '' \
	"qga: get -r: $U/src: the archive from the guest ended early" \
	$QGA -s "$U/qga.sock" get -r "$U/src" "$U/out/cut"
printf 'not a tar archive at all, but long enough to be read as a header %0500d' 0 >"$U/evil.tar"
check "untar: what is not an archive fails, 5" 5 '' \
	"qga: get -r: $U/src: not a tar archive from the guest" \
	$QGA -s "$U/qga.sock" get -r "$U/src" "$U/out/bad"
expect "untar: a failed copy leaves nothing" \
	test -z "$(ls -A "$U/out" | grep 'qga-\|^cut$\|^bad$')"

# --max-size bounds what the guest may send: a bigger archive stops
# the copy (3) and leaves nothing; so does a bigger file for get and cat.
head -c 300000 /dev/zero | tr '\0' x >"$U/big"
evil "0|./big|0644||$(cat "$U/big")"
check "untar: --max-size stops an archive past it, 3" 3 '' \
	"qga: get -r: $U/src: more than --max-size (100000 bytes)" \
	$QGA -s "$U/qga.sock" --max-size 100000 get -r "$U/src" "$U/out/max"
expect "untar: nothing left of it" test -z "$(ls -A "$U/out" | grep max)"
check "untar: within --max-size, copied" 0 '' '' \
	$QGA -s "$U/qga.sock" --max-size 1M get -r "$U/src" "$U/out/max"
check "get --max-size: a bigger file stops, 3" 3 '' \
	"qga: $U/big: more than --max-size (100000 bytes)" \
	$QGA -s "$U/qga.sock" --max-size 100000 get "$U/big" "$U/out/bigfile"
expect "get --max-size: no partial file" test -z "$(ls -A "$U/out" | grep bigfile)"
check "cat --max-size: stops, 3" 3 '*' "qga: $U/big: more than --max-size (100000 bytes)" \
	$QGA -s "$U/qga.sock" --max-size 100000 cat "$U/big"
check "get --max-size 0 is refused" 2 '' "qga: bad --max-size '0': expected bytes" \
	$QGA -s "$U/qga.sock" --max-size 0 get "$U/big"

# Interrupted while the guest still sends: the partial copy goes, and so
# does the guest's tar.
evil '0|./first|0644||x'
: >"$U/hang"
$QGA -s "$U/qga.sock" get -r "$U/src" "$U/out/int" 2>"$U/int.err" &
pid=$!
i=0
until ls "$U/out"/int.qga-*/first >/dev/null 2>&1 || [ $i -gt 400 ]; do
	sleep 0.05
	i=$((i + 1))
done
expect "untar: the partial copy is made beside its place" test $i -le 400
kill -TERM $pid
wait $pid
expect "untar: interrupted, 143" test $? = 143
rm -f "$U/hang"
expect "untar: an interrupted copy leaves nothing" test -z "$(ls -A "$U/out" | grep int)"
not_running() { ! running '^sleep 617$'; }
expect "untar: the guest's tar is stopped" wait_until 30 not_running
expect "untar: the agent is alive" alive evilagent
