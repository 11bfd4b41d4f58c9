# SPDX-License-Identifier: MIT
# Each architecture make cross built (cross/qga-ARCH), run under
# qemu-user against the real agent: the smoke suite, and what a 32-bit or
# big-endian machine could get wrong (sizes and offsets past 2 and 4 GiB,
# times past 2038, checksums), each compared with this machine's own qga.
[ "$QGA" = "$PWD/qga" ] || return 0
need_tool "$QEMU_GA" qemu-guest-agent
need_tool qemu-aarch64-static qemu-user-static
need_tool curl curl
C=$T/cross
mkdir -p "$C/state"
start xagent "$QEMU_GA" --method=unix-listen --path="$C/qga.sock" --statedir="$C/state" \
	--logfile="$C/qga.log" --block-rpcs="$BLOCK"
# What no real agent says: a time past 2038 and file systems past 4 GiB.
cat >"$C/replies" <<'EOF'
guest-get-time	{"return": 2208988800123456789}
guest-get-fsinfo	{"return": [{"name": "vdb", "mountpoint": "/big", "type": "xfs", "used-bytes": 4398046511104, "total-bytes": 5497558138880, "total-bytes-privileged": 5497558138880, "disk": []}]}
EOF
start xfake "$PWD/test/fakeagent" "$C/fake.sock" replies "$C/replies"
wait_for "$C/qga.sock"
wait_for "$C/fake.sock"
head -c 5000000 /dev/urandom >"$C/r5"
# A file 1 MiB past 2 GiB, all but its end a hole; copies of it that -c
# continues are cut at 2 GiB.
truncate -s 2G "$C/big"
head -c 1048576 /dev/urandom >>"$C/big"

# same NAME STATUS ARGS...: this architecture's qga ($RUN) gives the same
# stdout and stderr as this machine's own, and both exit with STATUS;
# stdin is $IN.
IN=/dev/null
same() {
	_n=$1 _s=$2
	shift 2
	$QGA "$@" <"$IN" >"$C/want.out" 2>"$C/want.err"
	_w=$?
	$RUN "$@" <"$IN" >"$C/got.out" 2>"$C/got.err"
	_g=$?
	if [ $_w = "$_s" ] && [ $_g = "$_s" ] && cmp -s "$C/want.out" "$C/got.out" &&
		cmp -s "$C/want.err" "$C/got.err"; then
		ok
	else
		not_ok "$_n" "exit status $_g, this machine's $_w, want $_s" "$(diff "$C/want.out" "$C/got.out" | head -n 6)" \
			"$(diff "$C/want.err" "$C/got.err" | head -n 6)"
	fi
}

# tail_same NAME A B: A and B are as long and end in the same 2 MiB.
tail_same() {
	expect "$1" test "$(wc -c <"$2")" = "$(wc -c <"$3")" -a \
		"$(tail -c 2097152 "$2" | cksum)" = "$(tail -c 2097152 "$3" | cksum)"
}

# The ELF machine (e_machine, in the byte order EI_DATA names) each
# architecture's binary must have.
elf_machine() {
	_b=$(od -An -tu1 -j5 -N1 "$1" | tr -d ' ')
	set -- $(od -An -tu1 -j18 -N2 "$1")
	[ "$_b" = 2 ] && echo $(($1 * 256 + $2)) || echo $(($2 * 256 + $1))
}

# glibc on a 32-bit machine has large files and a 64-bit time_t only
# when asked (the Makefile's DEFS): one built so, from a copy of the tree.
mkdir -p "$C/glibc"
cp -R qga.c json.c json.h src Makefile "$C/glibc"
if ! command -v i686-linux-gnu-gcc >/dev/null 2>&1 || [ ! -f /usr/i686-linux-gnu/include/stdio.h ]; then
	skip "cross: no glibc i386 build (apt-get install gcc-i686-linux-gnu libc6-dev-i386-cross)"
elif ! make -s -C "$C/glibc" qga CC=i686-linux-gnu-gcc >"$C/glibc.log" 2>&1; then
	not_ok "cross: the glibc i386 build" "$(grep -v 'statically linked applications' "$C/glibc.log" | head -n 5)"
fi

host=$(uname -m)
for a in amd64 arm64 armhf i386 i386-glibc riscv64 ppc64el s390x; do
	case $a in
	amd64) q=x86_64 m=62 ;; arm64) q=aarch64 m=183 ;; armhf) q=arm m=40 ;;
	i386*) q=i386 m=3 ;; riscv64) q=riscv64 m=243 ;; ppc64el) q=ppc64le m=21 ;; s390x) q=s390x m=22 ;;
	esac
	B=$PWD/cross/qga-$a
	[ $a = i386-glibc ] && B=$C/glibc/qga
	if [ ! -x "$B" ]; then
		[ $a = i386-glibc ] || skip "cross: no cross/qga-$a (make cross says what it lacks)"
		continue
	fi
	if [ "$q" = "$host" ]; then RUN=$B
	elif command -v "qemu-$q-static" >/dev/null 2>&1; then RUN="qemu-$q-static $B"
	else skip "cross: $a: no qemu-$q-static here"; continue; fi
	expect "cross: $a: cross/qga-$a is an ELF for machine $m" test "$(elf_machine "$B")" = $m
	A="-s $C/qga.sock"
	check "$a: ping" 0 '' '' $RUN $A ping
	same "$a: info" 0 $A info
	check "$a: sh with an exit status" 3 'hi' '' $RUN $A sh 'echo hi; exit 3'
	# The live agent's space in use moves while other jobs write files:
	# its df is compared by mount point, type, device and size (the fake
	# agent's, below, is compared whole).
	check "$a: df: mount points, types, devices, sizes" 0 \
		"$($QGA $A df | awk '{ print $1, $2, $3, $4 }')" '' \
		sh -c "$RUN $A df | awk '{ print \$1, \$2, \$3, \$4 }'"
	printf 'guest-ping\nguest-get-host-name\nguest-nope\nguest-get-timezone\n' >"$C/batch"
	IN=$C/batch
	same "$a: a batch" 1 $A -
	IN=/dev/null
	same "$a: a raw command, -p" 0 $A -p guest-get-osinfo
	rm -f "$C/g5" "$C/l5"
	check "$a: put of 5 MB, --verify" 0 '' '' $RUN $A put --verify "$C/r5" "$C/g5"
	expect "$a: put: the same bytes" cmp -s "$C/r5" "$C/g5"
	check "$a: get of 5 MB, --verify" 0 '' '' $RUN $A get --verify "$C/g5" "$C/l5"
	expect "$a: get: the same bytes" cmp -s "$C/r5" "$C/l5"
	truncate -s 0 "$C/g.big" "$C/l.big"
	truncate -s 2G "$C/g.big" "$C/l.big"
	check "$a: put -c past 2 GiB" 0 '' '' $RUN $A put -c "$C/big" "$C/g.big"
	tail_same "$a: put -c past 2 GiB: the same bytes" "$C/big" "$C/g.big"
	check "$a: get -c past 2 GiB" 0 '' '' $RUN $A get -c "$C/big" "$C/l.big"
	tail_same "$a: get -c past 2 GiB: the same bytes" "$C/big" "$C/l.big"
	rm -f "$C/g.big" "$C/l.big"
	check "$a: --max-reply past 4 GiB" 0 '' '' $RUN $A --max-reply 5000000000 ping
	A="-s $C/fake.sock"
	check "$a: a time past 2038" 0 2040-01-01T00:00:00.123456789Z '' $RUN $A time
	same "$a: file systems past 4 GiB" 0 $A df
	expect "$a: file systems past 4 GiB: 5.0T, 4.0T used, 80%" \
		grep -q '^/big  *xfs  *vdb  *5.0T  *4.0T  *1.0T  *80%$' "$C/got.out"

	# serve, with an HTTP request, and this machine's qga as a client.
	sv=serve$(echo $a | tr -d -)
	start $sv $RUN -s "$C/qga.sock" serve --listen "$C/shared.sock" --http tcp:127.0.0.1:0
	port=$(port_of $sv)
	check "$a: serve: HTTP POST /" 0 '{"return": {"host-name": "*"}, "id": 1}' '' \
		curl -sf --json '{"execute":"guest-get-host-name","id":1}' "http://127.0.0.1:$port/"
	check "$a: serve: a client on its unix socket" 0 "$(hostname)" '' $QGA -s "$C/shared.sock" hostname
	eval "kill \$PID_$sv; wait \$PID_$sv"
	expect "$a: the agent lives" alive xagent
done
