# SPDX-License-Identifier: MIT
# qga in an empty root: nothing but the binary and the agent's socket, as
# in an initramfs or a rescue shell. No libc, no /etc, no /dev.
[ "$QGA" = "$PWD/qga" ] || return 0
need_tool "$QEMU_GA" qemu-guest-agent
need_tool readelf binutils
need_tool socat socat
if [ "$(id -u)" != 0 ]; then
	skip "the empty-root tests: chroot needs root"
	return 0
fi
E=$T/empty
rm -rf "$E"
mkdir -p "$E/root" "$E/state"
cp "$QGA" "$E/root/qga"
start rootagent "$QEMU_GA" --method=unix-listen --path="$E/root/qga.sock" \
	--statedir="$E/state" --logfile="$E/qga.log" --block-rpcs="$BLOCK"
wait_for "$E/root/qga.sock"
expect "root: qga is static (no program interpreter)" sh -c "! readelf -l '$QGA' | grep -q INTERP"
expect "root: the root holds only qga and the socket" test "$(ls -A "$E/root" | tr '\n' ' ')" = "qga qga.sock "
check "root: ping" 0 '' '' chroot "$E/root" /qga -s /qga.sock ping
check "root: a raw command" 0 '{"return": {}}' '' chroot "$E/root" /qga -s /qga.sock guest-ping
check "root: exec" 0 'hello from the agent' '' \
	chroot "$E/root" /qga -s /qga.sock exec -- /bin/echo hello from the agent
check "root: an error" 3 '' 'qga: connect /nope.sock: No such file or directory' \
	chroot "$E/root" /qga -s /nope.sock ping

# Names come from the root's /etc/hosts, and localhost needs none. The
# root has no resolv.conf, so DNS is asked on loopback, where nobody is.
relay rootrelay 127.0.0.1 "$E/root/qga.sock"
port=$PORT
check "root: tcp:localhost without /etc/hosts" 0 '{"return": {}}' '' \
	chroot "$E/root" /qga -s tcp:localhost:$port guest-ping
check "root: a name that is nowhere" 3 '' "qga: resolve tcp:agent.test:$port: *" \
	chroot "$E/root" /qga -s tcp:agent.test:$port guest-ping
mkdir "$E/root/etc"
printf '# test hosts\n::2 other.test\n127.0.0.1\tvm1  agent.test # the relay\n' >"$E/root/etc/hosts"
check "root: a name from /etc/hosts" 0 '{"return": {}}' '' \
	chroot "$E/root" /qga -s tcp:agent.test:$port guest-ping
check "root: an alias from /etc/hosts" 0 '{"return": {}}' '' \
	chroot "$E/root" /qga -s tcp:vm1:$port guest-ping
