# SPDX-License-Identifier: MIT
# Windows guests: no Windows agent runs here, so these replay the reply
# shapes QEMU's schema and qga/commands-win32.c document (test/fakeagent
# windows) and check what qga sends and how it reads what comes back.
W=$T/win
mkdir -p "$W"
rm -f "$W/w.sock"
start fake_windows "$PWD/test/fakeagent" "$W/w.sock" windows
wait_for "$W/w.sock"
S=unix:$W/w.sock
LOG=$W/w.sock.log
nl='
'
# sent NAME PATTERN: the last request of the log matches PATTERN.
sent() {
	_last=$(grep "\"$1\"" "$LOG" | tail -n 1)
	case $_last in $2) ok ;; *) not_ok "$3" "sent: $_last" "want: $2" ;; esac
}

# The guest's lines end in CR LF.
check "windows sh: through cmd.exe" 0 "hi?" '' $QGA -s "$S" sh 'echo hi'
sent guest-exec '*"path":"cmd.exe","arg":\["/s","/c","echo hi"\],"capture-output":true}}' \
	"windows sh: cmd.exe /s /c LINE"
check "windows sh --merge: 2>&1 inside cmd" 0 "hi?" '' $QGA -s "$S" sh --merge 'dir'
sent guest-exec '*"arg":\["/s","/c","dir 2>&1"\],"capture-output":true}}' \
	"windows sh --merge: no merged mode sent"
check "windows sh: a double quote is refused" 2 '' \
	'qga: sh: the agent escapes a double quote as \\" for cmd.exe, which keeps the backslash: use --ps' \
	$QGA -s "$S" sh 'echo "a b"'
check "windows sh: ARGs are refused" 2 '' 'qga: sh: ARGs need /bin/sh: put them in the line' \
	$QGA -s "$S" sh 'echo' a b
# "echo ü" in UTF-16LE, base64.
check "windows sh --ps: PowerShell, its script encoded" 0 "hi?" '' $QGA -s "$S" sh --ps 'echo ü'
sent guest-exec '*"path":"powershell.exe","arg":\["-NoProfile","-NonInteractive","-EncodedCommand","ZQBjAGgAbwAgAPwA"\]*' \
	"windows sh --ps: -EncodedCommand of UTF-16LE"
check "windows exec --stream: no /bin/sh, captured, and said" 0 "hi?" \
	'qga: exec: not streaming: the guest has no /bin/sh' $QGA -s "$S" exec --stream -- cmd.exe /c ver
sent guest-exec '*"path":"cmd.exe","arg":\["/c","ver"\],"capture-output":true}}' \
	"windows exec: the program itself after the wrapper failed"
check "windows exec: no /bin/sh, silently" 0 "hi?" '' $QGA -s "$S" exec -- cmd.exe /c ver
check "windows get --verify: Get-FileHash" 0 'hello' '' $QGA -s "$S" get --verify 'C:\f.txt' -
sent guest-exec '*"path":"powershell.exe","arg":\["-NoProfile","-NonInteractive","-EncodedCommand","KABHAGUAdAAtAEYAaQBsAGUASABhAHMAaAAgAC0A*' \
	"windows get --verify: PowerShell's Get-FileHash of the path"
check "windows get --verify: a path with a quote" 0 'hello' '' $QGA -s "$S" get --verify "C:\\it's.txt" -
sent guest-exec '*"-EncodedCommand","KABHAGUAdAAtAEYAaQBsAGUASABhAHMAaAAgAC0AQQBsAGcAbwByAGkAdABoAG0AIABTAEgAQQAyADUANgAgAC0ATABpAHQAZQByAGEAbABQAGEAdABoACAAJwBDADoAXABpAHQAJwAnAHMALgB0AHgAdAAnACkALgBIAGEAcwBoAA=="\]*' \
	"windows get --verify: the quote doubled, as PowerShell reads it"
check "exec --ps: refused, it is sh's" 2 '' "qga: exec: --ps is sh's: qga sh --ps 'SCRIPT'" \
	$QGA -s "$S" exec --ps cmd.exe
check "windows exec -e: no POSIX PATH" 0 "hi?" '' $QGA -s "$S" exec -e A=1 -- cmd.exe /c set
sent guest-exec '*"env":\["SystemRoot=C:\\\\Windows","PATH=C:\\\\Windows\\\\system32;C:\\\\Windows;*","A=1"\]*' \
	"windows exec -e: SystemRoot and a Windows PATH"
check "windows exec -e PATH: the user's own" 0 "hi?" '' \
	$QGA -s "$S" exec -e 'Path=C:\bin' -e 'SYSTEMROOT=D:\W' -- cmd.exe
sent guest-exec '*"env":\["Path=C:\\\\bin","SYSTEMROOT=D:\\\\W"\]*' \
	"windows exec -e: no default beside the user's"
check "windows exec --merge: refused plainly" 255 '' \
	'qga: exec --merge: a Windows guest has no merged output (sh --merge merges through cmd.exe)' \
	$QGA -s "$S" exec --merge -- cmd.exe
check "windows: exit code 256 is not success" 1 '' 'qga: cmd.exe exited with status 256' \
	$QGA -s "$S" exec -- cmd.exe /c 'exit 256'
check "windows: an NTSTATUS crash, named" 5 '' \
	'qga: crash.exe ended with status 0xC0000005 STATUS_ACCESS_VIOLATION' \
	$QGA -s "$S" exec -- crash.exe
check "windows: the NTSTATUS read as unsigned too" 5 '' \
	'qga: unsigned.exe ended with status 0xC0000005 STATUS_ACCESS_VIOLATION' \
	$QGA -s "$S" exec -- unsigned.exe
check "windows get: a backslash path names the local file" 0 '' '' \
	sh -c "cd '$W' && exec $QGA -s '$S' get 'C:\\Users\\me\\file.txt'"
expect "windows get: file.txt holds the data" test "$(cat "$W/file.txt" 2>/dev/null)" = hello
printf 'data' >"$W/up"
check "windows put: into place with cmd's move" 0 '' '' $QGA -s "$S" put "$W/up" 'C:\dir\f.txt'
sent guest-exec '*"path":"cmd.exe","arg":\["/c","move","/y","C:\\\\dir\\\\.f.txt.qga-put-????????","C:\\\\dir\\\\f.txt"\]}}' \
	"windows put: move /y TEMP TARGET"
expect "windows put: leftovers removed with del" grep -q \
	'"arg":\["/c","del","/q","C:\\\\dir\\\\.f.txt.qga-put-????????"\]' "$LOG"
# The fake ends a program whose command line says "unsigned" by an
# NTSTATUS "signal": the move of such a put fails, and qga stops waiting.
check "windows put: a move that ends by a signal fails the put, at once" 1 '' \
	"qga: put: C:\\\\unsigned\\\\f.txt could not be put in place: it is unchanged" \
	timeout 20 $QGA -s "$S" put "$W/up" 'C:\unsigned\f.txt'
check "windows fstrim: no byte count, said so" 0 "C:\\\\  trimmed${nl}D:\\\\  The volume does not support trim" '' \
	$QGA -s "$S" fstrim
check "windows fsfreeze: VSS thaws by itself" 0 'froze 1 filesystem' \
	'qga: fsfreeze: Windows (VSS) thaws by itself after about 10 s' $QGA -s "$S" fsfreeze freeze
check "windows devices: the return value, indented" 0 '\[
  {
    "driver-date": 1581465600000000000,
    "driver-name": "VirtIO Ethernet Adapter",*' '' $QGA -s "$S" devices
check "windows disks: the serial that maps a disk to the host's" 0 \
	"NAME *TYPE  BUS   SERIAL   ALIAS  DEPENDS ON${nl}*PhysicalDrive0  disk  sata  QM00001  -      -" \
	'' $QGA -s "$S" disks
check "windows users: the domain and the login time" 0 "USER           DOMAIN   LOGIN (UTC)
Administrator  WIN-QGA  2023-11-14T22:13:20Z" '' $QGA -s "$S" users
n=$(grep -c guest-get-osinfo "$LOG")
$QGA -s "$S" put "$W/up" 'C:\dir\g.txt'
expect "the OS is asked once a process" test "$(grep -c guest-get-osinfo "$LOG")" = $((n + 1))
$QGA -s "$S" ping
expect "a command that needs no OS does not ask" test "$(grep -c guest-get-osinfo "$LOG")" = $((n + 1))
