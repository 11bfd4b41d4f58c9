# SPDX-License-Identifier: MIT
# The default socket, /tmp/qga.sock, is in a folder anyone can write: a
# user who binds it first would play the guest for root's qga. In a mount
# namespace with a /tmp of its own: nobody's socket there is refused,
# named, and sent nothing; root's own (the real agent) is used.
need_tool "$QEMU_GA" qemu-guest-agent
need_tool socat socat
if [ "$(id -u)" != 0 ] || ! unshare -m true 2>/dev/null || ! id nobody >/dev/null 2>&1; then
	skip "the default-socket tests: they need root, unshare -m and the user nobody"
	return 0
fi
cat >"$T/socket-ns.sh" <<'EOS'
# qga and the agent may be under /tmp themselves (a clone made there): the
# old /tmp stays in reach at /mnt, in this namespace alone.
case $QGA$QEMU_GA in
*/tmp/*)
	mount --bind /tmp /mnt || exit 9
	case $QGA in /tmp/*) QGA=/mnt/${QGA#/tmp/} ;; esac
	case $QEMU_GA in /tmp/*) QEMU_GA=/mnt/${QEMU_GA#/tmp/} ;; esac
	;;
esac
mount -t tmpfs tmpfs /tmp || exit 9
# wait_sock PATH: until a socket is there, 10 s at most.
wait_sock() { i=0; while [ ! -S "$1" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done; }
unset QGA_SOCKET
case $1 in
nobody)
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
		socat UNIX-LISTEN:/tmp/qga.sock,fork OPEN:/tmp/got,creat,append &
	planted=$!
	wait_sock /tmp/qga.sock
	"$QGA" ls
	echo "ls: $?"
	"$QGA" ping
	echo "ping: $?, sent $(cat /tmp/got 2>/dev/null | wc -c) bytes"
	# serve, whose link to the agent is its own, holds to the same rule.
	mkdir -m 700 /tmp/sv
	"$QGA" serve -q --listen /tmp/sv/s.sock &
	wait_sock /tmp/sv/s.sock
	"$QGA" -s /tmp/sv/s.sock ping 2>&1
	echo "through serve: $?, sent $(cat /tmp/got 2>/dev/null | wc -c) bytes"
	kill $! $planted
	# A folder of nobody's own in /tmp is no better: /tmp lets anyone make it.
	mkdir /tmp/x && chown nobody /tmp/x
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
		socat UNIX-LISTEN:/tmp/x/qga.sock,fork OPEN:/tmp/x/got,creat,append &
	wait_sock /tmp/x/qga.sock
	"$QGA" -s /tmp/x/qga.sock ping
	echo "in its folder: $?, sent $(cat /tmp/x/got 2>/dev/null | wc -c) bytes"
	kill $! ;;
kept)
	# A folder only root and nobody can change, as libvirt's channels are
	# the QEMU user's: nobody's socket there is used.
	chmod 755 /tmp
	mkdir /tmp/x && chown nobody /tmp/x && chmod 700 /tmp/x
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
		socat UNIX-LISTEN:/tmp/x/qga.sock,fork TCP:127.0.0.1:"$AGENT_PORT" &
	wait_sock /tmp/x/qga.sock
	"$QGA" -s /tmp/x/qga.sock ping
	echo "kept: $?"
	kill $! ;;
root)
	mkdir /tmp/state
	"$QEMU_GA" --method=unix-listen --path=/tmp/qga.sock --statedir=/tmp/state \
		--block-rpcs="$BLOCK" &
	wait_sock /tmp/qga.sock
	"$QGA" ping
	echo "ping: $?"
	# The agent has been seen to hold SIGTERM back here: KILL is sure.
	kill -KILL $!
	wait $! 2>/dev/null || : ;;
esac
EOS
export QGA QEMU_GA BLOCK
check "socket: nobody's /tmp/qga.sock is refused, named, sent nothing" 0 \
"ADDRESS        NAME  AGENT *
/tmp/qga.sock  -     not used: it is nobody's, where others can write (only root's or your own is)  -        -
ls: 0
ping: 3, sent 0 bytes
qga: guest-ping: AgentUnavailable: the guest agent is unavailable: /tmp/qga.sock: not used: it is nobody's, where others can write (only root's or your own is)
through serve: 3, sent 0 bytes
in its folder: 3, sent 0 bytes" \
	"qga: /tmp/qga.sock: not used: it is nobody's, where others can write (only root's or your own is) (the default address: give the agent's with -s ADDR or QGA_SOCKET)
qga: /tmp/x/qga.sock: not used: it is nobody's, where others can write (only root's or your own is)" \
	unshare -m sh "$T/socket-ns.sh" nobody
check "socket: root's own /tmp/qga.sock is used" 0 "ping: 0" '' \
	unshare -m sh "$T/socket-ns.sh" root
# nobody's socket leads to the real agent through a relay on loopback,
# since the agent's own is in a folder only root may enter.
mkdir -p "$T/sockagent"
start sockagent "$QEMU_GA" --method=unix-listen --path="$T/sockagent/qga.sock" \
	--statedir="$T/sockagent" --logfile="$T/sockagent/log" --block-rpcs="$BLOCK"
wait_for "$T/sockagent/qga.sock"
relay sockrelay 127.0.0.1 "$T/sockagent/qga.sock"
AGENT_PORT=$PORT
export AGENT_PORT
check "socket: nobody's in a folder only root and nobody can change is used" 0 "kept: 0" '' \
	unshare -m sh "$T/socket-ns.sh" kept
