# SPDX-License-Identifier: MIT
# The first two commands on a fresh Debian machine: a minbase bookworm
# (debootstrap) with only make and gcc added, made once into test/cache
# and copied afresh for each run, with this tree in /srv/qga. There, as
# root, make demo must install what it needs and show the agent
# answering, and make check, its first script, must pass. Before that,
# as another user, make demo must say the command to run.
[ "$QGA" = "$PWD/qga" ] || return 0
need_tool debootstrap debootstrap
need_tool unshare util-linux
if [ "$(id -u)" != 0 ]; then
	skip "fresh: a chroot needs root"
	return 0
fi
base=$PWD/test/cache/fresh
if [ ! -x "$base/usr/bin/make" ]; then
	rm -rf "$base" "$base.new"
	uri=$(test/debfetch --uri) || uri=http://deb.debian.org/debian
	if ! debootstrap --variant=minbase bookworm "$base.new" "$uri" \
		>"$T/debootstrap.log" 2>&1; then
		not_ok "fresh: debootstrap" "$(tail -n 3 "$T/debootstrap.log")"
		return 0
	fi
	cp /etc/resolv.conf "$base.new/etc/resolv.conf"
	chroot "$base.new" sh -c 'apt-get update -qq && apt-get install -y -qq make gcc' \
		>"$T/base.log" 2>&1 || { not_ok "fresh: apt-get install make gcc" "$(tail -n 3 "$T/base.log")"; return 0; }
	mv "$base.new" "$base"
fi
R=$T/root
cp -a "$base" "$R"
cp /etc/resolv.conf "$R/etc/resolv.conf"
mkdir -p "$R/srv/qga"
# The tree as git has it, with what is not committed yet, and no builds;
# anyone may write in it.
git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C "$R/srv/qga"
chmod -R a+rwX "$R/srv/qga"

# in_root CMD: runs CMD with sh in the root, as a login would (none of
# this make's variables), with /proc, /dev and /sys mounted in a mount
# namespace of its own, gone when it ends.
in_root() {
	unshare --mount --propagation private sh -c 'mount -t proc proc "$0/proc" &&
		mount --rbind /dev "$0/dev" && mount -t sysfs sys "$0/sys" &&
		exec env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		chroot "$0" /bin/sh -c "$1"' "$R" "$1"
}

in_root 'cd /srv/qga && setpriv --reuid=65534 --regid=65534 --clear-groups make demo' >"$T/demo" 2>&1
st=$?
expect "fresh: make demo as nobody says what to install, as root, and stops" sh -c "test $st != 0 &&
	grep -qx 'deps: make demo needs what this machine lacks: qemu-guest-agent musl-tools' '$T/demo' &&
	grep -qx '  as root: apt-get update; apt-get install qemu-guest-agent musl-tools' '$T/demo'"
in_root 'cd /srv/qga && make demo' >"$T/demo" 2>&1
st=$?
echo "fresh: make demo (exit status $st), its first lines:"
sed -n '1,/^\$ .\/qga -r/p' "$T/demo" | sed 's/^/  /'
if [ $st != 0 ]; then
	echo "fresh: and its last lines:"
	tail -n 25 "$T/demo" | sed 's/^/  /'
fi
expect "fresh: make demo installs the agent and musl" \
	grep -q '^deps: installing for make demo: qemu-guest-agent musl-tools$' "$T/demo"
expect "fresh: make demo builds with musl" grep -q '^musl-gcc -Oz' "$T/demo"
expect "fresh: make demo shows the agent answering" sh -c "test $st = 0 &&
	grep -A1 -x '\\$ ./qga guest-ping' '$T/demo' | grep -qx '{\"return\": {}}' &&
	grep -qx 'hello from .*' '$T/demo'"
in_root 'cd /srv/qga && make check T=t-json' >"$T/check" 2>&1
st=$?
expect "fresh: make check T=t-json ($(tail -n 1 "$T/check"))" \
	sh -c "test $st = 0 && tail -n 1 '$T/check' | grep -q '^[1-9][0-9]* passed, 0 failed, 0 skipped$'"
