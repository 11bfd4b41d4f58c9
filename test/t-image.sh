# SPDX-License-Identifier: MIT
# The container image: built without a daemon, checked with skopeo, and
# run the way a runtime would, from its unpacked root, next to an agent.
case $QGA in *-asan) return 0 ;; esac
need_tool "$QEMU_GA" qemu-guest-agent
need_tool umoci umoci
need_tool skopeo skopeo
# The Makefile's rule, run in a folder of the test's with the binary as
# built (-o: not made again), so that no other job's image is this one's.
O=$T/oci
mkdir -p "$O/build" "$O/layout"
cp qga "$O/build/qga"
if ! make -s -C "$O/build" -f "$PWD/Makefile" -o qga image >"$T/image.log" 2>&1; then
	not_ok "image: make image" "$(cat "$T/image.log")"
	return 0
fi
ok
I=$O/build/qga-oci.tar
skopeo inspect --config oci-archive:"$I":qga >"$O/config.json"
skopeo inspect oci-archive:"$I":qga >"$O/image.json"
expect "image: the entrypoint is /qga" \
	sh -c "tr -d ' \n' <'$O/config.json' | grep -q '\"Entrypoint\":\[\"/qga\"\]'"
expect "image: one layer" test "$(grep -c '"sha256:' "$O/image.json")" = 2
tar -xmf "$I" -C "$O/layout"
layer=$(tr -d ' \n' <"$O/image.json" | sed 's/.*"Layers":\["sha256:\([0-9a-f]*\)".*/\1/')
tar -tzf "$O/layout/blobs/sha256/$layer" | grep -v -x -e . -e ./ >"$O/files"
expect "image: the layer holds only the binary ($(tr '\n' ' ' <"$O/files"))" \
	test "$(cat "$O/files")" = ./qga -o "$(cat "$O/files")" = qga
echo "image: qga-oci.tar is $(wc -c <"$I") bytes; its layer, compressed, $(wc -c <"$O/layout/blobs/sha256/$layer") bytes"

# Run it as a runtime would: its root unpacked, the agent's socket shared.
mkdir -p "$O/root" "$O/state"
tar -xzmf "$O/layout/blobs/sha256/$layer" -C "$O/root"
start imageagent "$QEMU_GA" --method=unix-listen --path="$O/root/qga.sock" \
	--statedir="$O/state" --logfile="$O/qga.log" --block-rpcs="$BLOCK"
wait_for "$O/root/qga.sock"
check "image: the entrypoint talks to the agent" 0 "$(hostname)" '' \
	chroot "$O/root" /qga -s /qga.sock hostname
