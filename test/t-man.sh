# SPDX-License-Identifier: MIT
# The manual: clean under mandoc's lint, installed and uninstalled by the
# Makefile, and in step with --help: the same commands and options.
[ "$QGA" = "$PWD/qga" ] || return 0
need_tool mandoc mandoc
M=$T/man
mkdir -p "$M"
nl='
'
mandoc -Tlint -Wwarning qga.1 >"$M/lint" 2>&1
check "man: mandoc -Tlint" 0 '' '' cat "$M/lint"

# The commands: --help's list after "commands", the manual's .It Cm lines
# in COMMANDS.
$QGA --help | sed -n '/^commands/,$p' | sed -n 's/^  \([a-z-]*\) .*/\1/p' | sort >"$M/help.cmds"
sed -n '/^\.Sh COMMANDS/,/^\.Sh /p' qga.1 | sed -n 's/^\.It Cm \([a-z-]*\).*/\1/p' | sort -u >"$M/man.cmds"
check "man: the same commands as --help" 0 "$(cat "$M/help.cmds")" '' cat "$M/man.cmds"
expect "man: --help lists commands" test "$(wc -l <"$M/help.cmds")" -gt 20
# The options: -x and --long in --help's options, .It Fl lines in OPTIONS.
$QGA --help | sed -n '/^options:/,/^$/p' | grep -o -e '--[a-z-]*' -e ' -[a-zA-Z]' |
	tr -d ' ' | sort >"$M/help.opts"
sed -n '/^\.Sh OPTIONS/,/^\.Sh /p' qga.1 | grep '^\.It Fl' |
	sed 's/Ar .*//; s/Fl \\-/--/g; s/Fl /-/g; s/[.,]It//; s/,//g' | tr ' ' '\n' | grep . | sort >"$M/man.opts"
check "man: the same options as --help" 0 "$(cat "$M/help.opts")" '' cat "$M/man.opts"
# Each command's own options, from its usage line, are in the manual.
for c in $(cat "$M/help.cmds"); do
	for o in $($QGA help "$c" | head -n 1 | grep -o -e '--[a-z-]*' -e '[[|]-[a-zA-Z]' | sed 's/^[[|]//'); do
		[ "$o" = -- ] && continue
		grep "^\.It Cm $c " qga.1 | sed 's/Fl \\-/--/g; s/Fl /-/g' | grep -q -e " $o\\b" ||
			echo "$c $o"
	done
done >"$M/missing"
check "man: every command's options are in its entry" 0 '' '' cat "$M/missing"

# make install and make uninstall, into a folder of the test's.
make -s install DESTDIR="$M/root" PREFIX=/usr >"$M/install.log" 2>&1
check "man: make install puts the binary and the manual" 0 \
	"$M/root/usr/bin/qga$nl$M/root/usr/share/man/man1/qga.1" '' \
	sh -c "find '$M/root' -type f | sort"
make -s uninstall DESTDIR="$M/root" PREFIX=/usr >>"$M/install.log" 2>&1
check "man: make uninstall removes what install put" 0 '' '' find "$M/root" -type f
