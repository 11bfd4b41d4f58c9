# SPDX-License-Identifier: MIT
# The container image: an index of one image per architecture make cross
# built, made without a daemon, read by skopeo as a registry or runtime
# would, and the host's run from its unpacked root next to an agent.
[ "$QGA" = "$PWD/qga" ] || return 0
need_tool "$QEMU_GA" qemu-guest-agent
need_tool skopeo skopeo
need_tool readelf binutils
# The Makefile's rule, run in a folder of the test's with the binaries as
# built (-o: not made again), so that no other job's image is this one's.
O=$T/oci
mkdir -p "$O/build" "$O/root" "$O/state"
cp -R Makefile contrib qga cross "$O/build"
if ! make -s -C "$O/build" -o qga -o cross image >"$T/image.log" 2>&1; then
	not_ok "image: make image" "$(cat "$T/image.log")"
	return 0
fi
ok
mv "$O/build/qga-oci.tar" "$O/first.tar"
make -s -C "$O/build" -o qga -o cross image >"$T/image.log" 2>&1
expect "image: made again from the same binaries, the same archive, byte for byte" \
	cmp -s "$O/first.tar" "$O/build/qga-oci.tar"
I=oci-archive:$O/build/qga-oci.tar:qga
echo "image: qga-oci.tar is $(wc -c <"$O/build/qga-oci.tar") bytes"

# Each architecture's image, as a runtime on that platform picks it from
# the index: its one layer holds the binary make cross built for it, an
# ELF for that machine.
n=0
for b in cross/qga-*; do
	[ -e "$b" ] || { skip "image: make cross built nothing"; break; }
	a=${b#cross/qga-} v=
	case $a in
	amd64) p=amd64 m='Advanced Micro Devices X86-64' ;; arm64) p=arm64 m=AArch64 ;;
	armhf) p=arm v=v7 m=ARM ;; i386) p=386 m='Intel 80386' ;; riscv64) p=riscv64 m=RISC-V ;;
	ppc64el) p=ppc64le m=PowerPC64 ;; s390x) p=s390x m='IBM S/390' ;;
	esac
	n=$((n + 1))
	skopeo copy -q --override-arch "$p" ${v:+--override-variant "$v"} "$I" "oci:$O/$a:qga" \
		>"$T/copy.log" 2>&1 || { not_ok "image: linux/$p${v:+/$v}: skopeo copy" "$(cat "$T/copy.log")"; continue; }
	skopeo inspect --config "oci:$O/$a:qga" >"$O/$a.config"
	expect "image: linux/$p${v:+/$v}: its config names the platform and the entrypoint /qga" \
		sh -c "tr -d ' \n' <'$O/$a.config' | grep -q '\"architecture\":\"$p\",${v:+\"variant\":\"$v\",}\"os\":\"linux\".*\"Entrypoint\":\\[\"/qga\"\\]'"
	layer=$(skopeo inspect "oci:$O/$a:qga" | tr -d ' \n' | sed 's/.*"Layers":\["sha256:\([0-9a-f]*\)"\].*/\1/')
	mkdir "$O/$a.root"
	tar -xzf "$O/$a/blobs/sha256/$layer" -C "$O/$a.root"
	expect "image: linux/$p${v:+/$v}: the layer holds only /qga ($(ls -A "$O/$a.root" | tr '\n' ' '))" \
		test "$(ls -A "$O/$a.root")" = qga
	expect "image: linux/$p${v:+/$v}: /qga is cross/qga-$a, an ELF for $m" sh -c \
		"cmp -s '$O/$a.root/qga' '$b' && readelf -h '$O/$a.root/qga' | grep -q 'Machine: *$m\$'"
done
skopeo inspect --raw "$I" | tr -d ' \n' >"$O/index.json"
expect "image: the index has the $n platforms, no more" \
	test "$(grep -o '"platform"' "$O/index.json" | wc -l)" = $n
check "image: skopeo copies them all, as to a registry" 0 '' '' \
	skopeo copy -q --all "$I" "oci:$O/all:qga"

# podman takes the archive as it is, and picks the host's platform.
if command -v podman >/dev/null 2>&1; then
	P="podman --storage-driver vfs --root $O/podman --runroot $O/podman-run"
	check "image: podman load takes the archive" 0 'Loaded image: localhost/qga:latest' '*' \
		$P load -i "$O/build/qga-oci.tar"
	case $(uname -m) in x86_64) p=amd64 ;; aarch64) p=arm64 ;; *) p=$(uname -m) ;; esac
	check "image: podman picked the host's platform" 0 "$p linux" '' \
		$P image inspect --format '{{.Architecture}} {{.Os}}' localhost/qga
else
	skip "image: no podman here (apt-get install podman)"
fi

# The host's image, run as a runtime would: its root unpacked, the
# agent's socket shared.
skopeo copy -q "$I" "oci:$O/host:qga"
layer=$(skopeo inspect "oci:$O/host:qga" | tr -d ' \n' | sed 's/.*"Layers":\["sha256:\([0-9a-f]*\)"\].*/\1/')
tar -xzmf "$O/host/blobs/sha256/$layer" -C "$O/root"
start imageagent "$QEMU_GA" --method=unix-listen --path="$O/root/qga.sock" \
	--statedir="$O/state" --logfile="$O/qga.log" --block-rpcs="$BLOCK"
wait_for "$O/root/qga.sock"
check "image: the entrypoint talks to the agent" 0 "$(hostname)" '' \
	chroot "$O/root" /qga -s /qga.sock hostname
