# SPDX-License-Identifier: MIT
# qga against a real VM: the agent inside a guest, over virtio-serial,
# where there is no disconnect and shutdown really powers off. Run once,
# with the plain binary: it boots a kernel under emulation.
[ "$QGA" = "$PWD/qga" ] || return 0
need_tool qemu-system-x86_64 qemu-system-x86
need_tool mkfs.ext4 e2fsprogs
need_tool socat socat
V=$T/vm
mkdir -p "$V"
if ! test/vm/build >"$V/build.log" 2>&1; then
	skip "the VM tests: the VM could not be built: $(tail -n 1 "$V/build.log")"
	return 0
fi
I=$PWD/test/vm/cache
mkfs.ext4 -q -F "$V/disk.img" 16M >/dev/null 2>&1

# vm ACCEL: boots the VM; QGA_SOCK and QMP_SOCK are its two sockets.
vm() {
	rm -f "$V/qga.sock" "$V/qmp.sock"
	set -- -accel "$1" -M pc -m 512 -nodefaults -display none \
		-kernel $I/vmlinuz -initrd $I/initramfs.cpio.gz \
		-append "console=ttyS0 panic=-1 quiet" -serial file:"$V/console.log" \
		-chardev socket,path="$V/qga.sock",server=on,wait=off,id=qga0 \
		-device virtio-serial -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0 \
		-drive file="$V/disk.img",format=raw,if=virtio \
		-qmp unix:"$V/qmp.sock",server=on,wait=off
	[ "$2" = kvm ] && set -- "$@" -cpu host
	start qemuvm qemu-system-x86_64 "$@"
}

# KVM where it boots this kernel, TCG otherwise; the answer is kept.
if [ ! -s $I/accel ]; then
	echo tcg >$I/accel
	if [ -w /dev/kvm ]; then
		vm kvm
		i=0
		while alive qemuvm && [ $i -lt 15 ]; do
			$QGA -s "$V/qga.sock" wait -T 1 2>/dev/null && { echo kvm >$I/accel; break; }
			i=$((i + 1))
		done
		stop_all
	fi
fi
accel=$(cat $I/accel)
echo "VM: booting Debian's cloud kernel under $accel"

S=$V/qga.sock
# wait is started before the VM: the socket is not even there yet.
$QGA -s "$S" wait -T 600 >"$V/wait.out" 2>&1 &
waitpid=$!
PIDS="$PIDS $waitpid"
sleep 0.2
t0=$(date +%s)
vm "$accel"
wait $waitpid
expect "vm: wait, started before the VM, sees the agent come up" test $? = 0
echo "VM: the agent answered $(($(date +%s) - t0)) s after QEMU started"
export QGA_SOCKET=$S
nl='
'

gaver=$(cat $I/agent-version)
echo "VM: the guest runs qemu-ga $gaver"
check "vm: ping" 0 '' '' $QGA ping
check "vm: the guest's agent is the one built in" 0 "qemu-ga $gaver: *" '' $QGA info
check "vm: info" 0 'qemu-ga *: * commands, * disabled*guest-exec *enabled*guest-shutdown *enabled, no reply*' '' \
	$QGA info
check "vm: osinfo" 0 '*kernel-release: *-cloud-amd64*id: qgavm' '' $QGA osinfo
check "vm: hostname" 0 'qgavm' '' $QGA hostname
check "vm: a raw command" 0 '{"return": {"host-name": "qgavm"}}' '' $QGA guest-get-host-name

check "vm: exec status, stdout, stderr" 3 'out' 'err' $QGA sh 'echo out; echo err >&2; exit 3'
check "vm: exec killed by a signal" 143 '' '' $QGA sh 'kill -TERM $$'
check "vm: exec with stdin" 0 'HELLO VM' '' \
	sh -c "echo 'hello vm' | $QGA exec -i -- /bin/tr a-z A-Z"
check "vm: exec with an environment" 0 "*X=1*" '' $QGA exec -e X=1 -- /bin/env
check "vm: exec --no-stream, the agent's capture" 3 'out' 'err' \
	$QGA sh --no-stream 'echo out; echo err >&2; exit 3'
# A program that never ends by itself: its first line must come while it
# runs; then SIGINT ends qga, and the program with it.
$QGA sh -T 600 'echo one; exec sleep 600' >"$V/stream" &
qp=$!
wait_until 120 grep -qx one "$V/stream"
first=$?
kill -INT $qp
wait $qp
st=$?
expect "vm: exec streams: the first line comes before the program ends ($first, status $st)" \
	test $first = 0 -a $st = 130
check "vm: exec -T, streamed: the program stopped, 124" 124 '' \
	"qga: /bin/sh stopped in the guest (pid *)*" $QGA sh -T 1 'sleep 31; echo never'
check "vm: and gone, with no files left in /tmp" 0 'none' '' \
	$QGA sh 'i=0; while for p in /proc/[0-9]*; do tr "\000" " " <$p/cmdline; echo; done 2>/dev/null |
		grep -q "^sleep [36][01]" && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
		for p in /proc/[0-9]*; do tr "\000" " " <$p/cmdline; echo; done 2>/dev/null |
		grep "^sleep [36][01]" || ls /tmp | grep qga-exec || echo none'

head -c 67108864 /dev/urandom >"$V/big"
$QGA put "$V/big" /tmp/big && $QGA get /tmp/big "$V/big.got"
expect "vm: put and get 64 MiB (checksums)" \
	test "$(sha256sum <"$V/big")" = "$(sha256sum <"$V/big.got")"
check "vm: the guest's checksum agrees" 0 "$(sha256sum <"$V/big" | cut -c1-64)  /tmp/big" '' \
	$QGA sh 'sha256sum /tmp/big'
$QGA sh 'rm /tmp/big'
rm -f "$V/big" "$V/big.got"

# A client that half-closes gets nothing; its reply waits for the next
# client, who must get only its own.
printf '{"execute":"guest-get-host-name","id":"stale"}' | socat -t0.5 - UNIX-CONNECT:"$S" >"$V/halfclose.out"
expect "vm: a half-closing client gets no reply" test ! -s "$V/halfclose.out"
check "vm: the next client gets only its own reply" 0 '{"return": {}, "id": "mine"}' '' \
	$QGA '{"execute":"guest-ping","id":"mine"}'
check "vm: and so does a batch" 0 "{}$nl{\"host-name\": \"qgavm\"}" '' \
	sh -c "printf 'guest-ping\nguest-get-host-name\n' | $QGA -r"

# An emulated guest on a busy host may take more than the default 10 s
# over a reply: these copies check bytes, not speed.
head -c 5000000 /dev/urandom >"$V/v"
check "vm: put --verify, get --verify (busybox sha256sum)" 0 '' '' \
	sh -c "$QGA -t 60 put --verify '$V/v' /tmp/v && $QGA -t 60 get --verify /tmp/v '$V/v2' &&
		cmp '$V/v' '$V/v2' && $QGA sh 'rm /tmp/v'"
mkdir -p "$V/tree/a b" && echo x >"$V/tree/a b/f" && ln -sf 'a b/f' "$V/tree/l" &&
	chmod 600 "$V/tree/a b/f"
check "vm: put -r, get -r back (busybox tar)" 0 '' '' \
	sh -c "$QGA -t 60 put -r '$V/tree' /tmp/tree && $QGA -t 60 get -r /tmp/tree '$V/tree2'"
expect "vm: the tree came back whole" sh -c "diff -r --no-dereference '$V/tree' '$V/tree2' &&
	test \"\$(stat -c %a '$V/tree2/a b/f')\" = 600"
check "vm: fsfreeze status" 0 'thawed' '' $QGA fsfreeze status
check "vm: fsfreeze freeze" 0 'froze 1 filesystem' '' $QGA fsfreeze freeze
check "vm: fsfreeze status, frozen" 0 'frozen' '' $QGA fsfreeze status
check "vm: a frozen agent refuses exec" 255 '' \
	'qga: guest-exec is disabled in the guest agent (by its configuration, or while frozen)' \
	$QGA exec -- /bin/touch /mnt/x
check "vm: fsfreeze thaw" 0 'thawed 1 filesystem' '' $QGA fsfreeze thaw
check "vm: fsfreeze status, thawed" 0 'thawed' '' $QGA fsfreeze status
# fsfreeze --run: frozen while CMD runs (it asks the agent itself, through
# the QGA_SOCKET qga gives it), thawed after, whatever ends CMD.
check "vm: fsfreeze --run: CMD sees the guest frozen, its status is qga's" 7 'frozen' \
	'qga: fsfreeze --run: froze 1 filesystem*qga: fsfreeze --run: thawed 1 filesystem' \
	env -u QGA_SOCKET $QGA -s "$S" fsfreeze --run sh -c "$QGA fsfreeze status; exit 7"
check "vm: thawed after --run" 0 'thawed' '' $QGA fsfreeze status
$QGA fsfreeze --run sleep 60 >"$V/run.out" 2>&1 &
runpid=$!
i=0
until [ "$($QGA fsfreeze status 2>/dev/null)" = frozen ] || [ $i -ge 600 ]; do i=$((i + 1)); sleep 0.1; done
expect "vm: fsfreeze --run: frozen while CMD runs" test $i -lt 600
kill -TERM $runpid
wait $runpid
expect "vm: fsfreeze --run killed by SIGTERM: 143" test $? = 143
check "vm: thawed after SIGTERM mid-CMD" 0 'thawed' '' $QGA fsfreeze status
t0=$(date +%s)
check "vm: fsfreeze --run --max: thawed on time, 124" 124 '' \
	'qga: fsfreeze --run: froze 1 filesystem*still runs after --max 2 s: thawing*thawed 1 filesystem' \
	$QGA fsfreeze --run --max 2 sleep 60
expect "vm: --max 2 took less than 20 s" test $(($(date +%s) - t0)) -lt 20
check "vm: thawed after --max" 0 'thawed' '' $QGA fsfreeze status

# The newer commands, where the guest can carry them out.
case $gaver in
10.*)	check "vm: load" 0 'load average: *' '' $QGA load ;;
esac
check "vm: df: the ext4 disk" 0 '*/mnt *ext4 */dev/vda *1[0-9]M *' '' $QGA df
check "vm: disks: virtio" 0 '*/dev/vda *disk *virtio *' '' $QGA disks
# metrics from the real guest: its ext4 disk, its block and network
# counters, the text clean under promtool.
$QGA -s "$S" metrics >"$V/metrics" 2>"$V/metrics.err"
expect "vm: metrics: exits 0, silent" test $? = 0 -a ! -s "$V/metrics.err"
expect "vm: metrics: up" grep -qx "qga_up{target=\"$S\"} 1" "$V/metrics"
expect "vm: metrics: the ext4 disk's size" grep -q \
	"^qga_filesystem_size_bytes{target=\"$S\",device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/mnt\"} 1[0-9]\{7\}$" \
	"$V/metrics"
expect "vm: metrics: the disk's reads" grep -q \
	"^qga_disk_reads_completed_total{target=\"$S\",device=\"vda\"} [1-9][0-9]*$" "$V/metrics"
expect "vm: metrics: the guest's network counters" grep -q \
	"^qga_network_receive_bytes_total{target=\"$S\",device=\"lo\"} [0-9]*$" "$V/metrics"
if command -v promtool >/dev/null 2>&1; then
	check "vm: metrics: promtool check metrics" 0 '' '' sh -c "promtool check metrics <'$V/metrics' 2>&1"
else
	skip "vm: metrics: no promtool here (apt-get install prometheus)"
fi
check "vm: ip: no address on a guest without a network" 1 '' '' $QGA ip
check "vm: set-time from the guest's hardware clock" 0 '' '' $QGA set-time
check "vm: set-time --now" 0 '' '' $QGA set-time --now
t=$($QGA time | cut -c1-16)
expect "vm: the guest's clock is this machine's" test "$t" = "$(date -u +%Y-%m-%dT%H:%M)" -o \
	"$t" = "$(date -u -d '1 minute ago' +%Y-%m-%dT%H:%M)"
# suspend ram: QEMU can wake this machine type (QMP says so); the guest
# sleeps, QMP's system_wakeup wakes it, and the agent answers again.
if [ "$($QGA -s "$V/qmp.sock" -r query-current-machine)" = '{"wakeup-suspend-support": true}' ]; then
	check "vm: suspend ram" 0 '' '' $QGA suspend ram
	i=0
	until [ "$($QGA -s "$V/qmp.sock" -r query-status | grep -o '"status": "[a-z]*"')" = \
		'"status": "suspended"' ] || [ $i -ge 600 ]; do i=$((i + 1)); sleep 0.1; done
	expect "vm: QMP says the guest is suspended" test $i -lt 600
	check "vm: QMP wakes it" 0 '{}' '' $QGA -s "$V/qmp.sock" -r system_wakeup
	check "vm: the agent answers after the resume" 0 '' '' $QGA wait -T 30
else
	skip "vm: suspend: this QEMU cannot wake the guest (wakeup-suspend-support false)"
fi

# shutdown: QMP reports the guest's SHUTDOWN and QEMU exits.
# A QMP client that has negotiated (its capabilities answered) before
# the shutdown, to hear the event.
(printf '{"execute":"qmp_capabilities"}\n'; sleep 120) |
	socat - UNIX-CONNECT:"$V/qmp.sock" >"$V/events" 2>/dev/null &
PIDS="$PIDS $!"
wait_until 30 grep -q '"return"' "$V/events"
check "vm: shutdown" 0 '' '' $QGA shutdown
i=0
while alive qemuvm && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.1; done
expect "vm: QEMU exited" test "$i" -lt 600
expect "vm: QMP reported the guest's SHUTDOWN" \
	grep -q '"event": "SHUTDOWN", "data": {"guest": true' "$V/events"
unset QGA_SOCKET
