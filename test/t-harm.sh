# Do no harm: whatever ends qga early (its own -t, SIGINT, SIGTERM, SIGHUP,
# a closed stdout) leaves the agent alive and the channel usable by the
# next client, even a naive one. qemu-ga exits when a client closes with a
# reply unread; 200 abandoned requests per agent version, then the same
# agent process (its pid) must answer.
need_tool "$QEMU_GA" qemu-guest-agent
H=$T/harm
mkdir -p "$H"
head -c 50331648 /dev/urandom >"$H/big"
nl='
'
rnd() { od -An -N2 -tu2 /dev/urandom | tr -d ' '; }
# nap MS: sleeps a random time below MS milliseconds.
nap() { sleep "$(awk -v r="$(rnd)" -v m="$1" 'BEGIN { printf "%.3f", r % m / 1000 }')"; }
# interrupt SIGNAL MS CMD...: runs CMD in the background and sends it
# SIGNAL after a random time below MS milliseconds.
interrupt() {
	_sig=$1 _ms=$2
	shift 2
	"$@" >/dev/null 2>&1 &
	_p=$!
	wait_until 30 catching $_p
	nap "$_ms"
	kill -"$_sig" "$_p" 2>/dev/null
	wait "$_p" 2>/dev/null
}
sigs="INT TERM HUP"
pick() { set -- $sigs; shift $(($(rnd) % 3)); echo "$1"; }

# harm ID QEMU-GA: the loop against one agent (ID names its version
# without dots); deaths counts how many times it had to be started again.
harm() {
	_a=$H/$1
	mkdir -p "$_a"
	rm -f "$_a/qga.sock"
	deaths=0
	start "harm_$1" "$2" --method=unix-listen --path="$_a/qga.sock" \
		--statedir="$_a" --logfile="$_a/qga.log" --block-rpcs="$BLOCK"
	wait_for "$_a/qga.sock"
	S=$_a/qga.sock
	eval "first=\$PID_harm_$1"
	revive() {
		alive "harm_$1" && return 0
		deaths=$((deaths + 1))
		rm -f "$_a/qga.sock"
		start "harm_$1" "$2" --method=unix-listen --path="$_a/qga.sock" \
			--statedir="$_a" --logfile="$_a/qga.log" --block-rpcs="$BLOCK"
		wait_for "$_a/qga.sock"
	}
	h=$($QGA -s "$S" -r guest-file-open path="$H/big" mode=r)
	seq 1 3000 | sed 's/.*/guest-info/' >"$_a/batch"
	i=0
	while [ $i -lt 120 ]; do         # its own -t, at tiny values
		$QGA -s "$S" -t "0.00$(($(rnd) % 5 + 1))" guest-info >/dev/null 2>&1
		revive "$1" "$2"
		i=$((i + 1))
	done
	while [ $i -lt 150 ]; do         # a signal during a 48 MiB raw read
		$QGA -s "$S" guest-file-seek handle="$h" offset=0 whence=set >/dev/null 2>&1
		interrupt "$(pick)" 400 $QGA -s "$S" guest-file-read handle="$h" count=50331648
		revive "$1" "$2"
		i=$((i + 1))
	done
	while [ $i -lt 175 ]; do         # a signal during a batch
		interrupt "$(pick)" 200 $QGA -s "$S" - <"$_a/batch"
		revive "$1" "$2"
		i=$((i + 1))
	done
	while [ $i -lt 190 ]; do         # a signal while exec polls
		interrupt "$(pick)" 150 $QGA -s "$S" exec -- /bin/sleep 0.2
		revive "$1" "$2"
		i=$((i + 1))
	done
	while [ $i -lt 200 ]; do         # stdout closed early
		case $((i % 3)) in
		0) $QGA -s "$S" cat "$H/big" 2>/dev/null | head -c1 >/dev/null ;;
		1) $QGA -s "$S" - <"$_a/batch" 2>/dev/null | head -c1 >/dev/null ;;
		2) $QGA -s "$S" -p guest-info 2>/dev/null | head -c1 >/dev/null ;;
		esac
		revive "$1" "$2"
		i=$((i + 1))
	done
	# The case that kills: qga ends with a whole reply unread. A batch from
	# a fifo lets the test hold qga between sending guest-info and reading
	# its reply: the agent is stopped while qga sends, qga is stopped while
	# the agent answers, then qga gets the signal.
	for sig in TERM HUP TERM HUP TERM; do
		rm -f "$_a/fifo"
		mkfifo "$_a/fifo"
		$QGA -s "$S" - <"$_a/fifo" >"$_a/held.out" 2>&1 &
		_q=$!
		exec 8>"$_a/fifo"
		echo guest-ping >&8
		wait_until 30 test -s "$_a/held.out"
		eval "kill -STOP \$PID_harm_$1"
		echo guest-info >&8
		sleep 0.2
		kill -STOP "$_q"
		eval "kill -CONT \$PID_harm_$1"
		sleep 0.2
		kill -"$sig" "$_q"
		kill -CONT "$_q"
		wait "$_q" 2>/dev/null
		exec 8>&-
		sleep 0.1
		revive "$1" "$2"
		i=$((i + 1))
	done
	expect "harm $1: $i abandoned requests killed the agent $deaths times" test "$deaths" = 0
	eval "now=\$PID_harm_$1"
	expect "harm $1: the same agent process ($first) is there" test "$now" = "$first"
	check "harm $1: it answers qga" 0 '' '' $QGA -s "$S" ping
	check "harm $1: and a naive client, without a resync" 0 '{"return": {}}' '' \
		$QGA -s "$S" --no-sync guest-ping
	$QGA -s "$S" guest-file-close handle="$h" >/dev/null 2>&1
}

# Each agent in a job of its own ("$QEMU_GA"): 72 for 7.2, 100 for 10.0.
harm "$(echo "$ver" | cut -d. -f1,2 | tr -d .)" "$QEMU_GA"
