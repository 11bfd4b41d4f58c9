# SPDX-License-Identifier: MIT
# The Makefile, run in a copy of the tree: it says when it builds without
# musl, and builds qga again when the compiler changes.
[ "$QGA" = "$PWD/qga" ] || return 0
need_tool musl-gcc musl-tools
B=$T/build
mkdir -p "$B/tree" "$B/bin"
cp -R qga.c json.c json.h src Makefile "$B/tree"
# A PATH with the compiler but without musl-gcc.
for p in make sh c99 cc gcc as ld cat find tr sed; do
	ln -s "$(command -v $p)" "$B/bin/$p"
done
PATH=$B/bin make -C "$B/tree" qga >"$B/out" 2>&1
expect "build: without musl-gcc, make says so" \
	grep -q '^note: no musl-gcc (Debian: apt-get install musl-tools; make then builds qga again)' "$B/out"
make -C "$B/tree" qga >"$B/out" 2>&1
expect "build: once musl-gcc is there, qga is built again, with it" \
	grep -q '^musl-gcc -Oz \.\.\. -static -s -o qga$' "$B/out"
check "build: and then not again" 0 '' '' make -s -C "$B/tree" qga
make -C "$B/tree" qga CFLAGS=-Os >"$B/out" 2>&1
expect "build: other CFLAGS build it again" grep -q '^musl-gcc -Os \.\.\. -static -s -o qga$' "$B/out"
check "build: make cross names what an architecture lacks" 2 \
	'cross: nope is none of amd64 arm64 armhf i386 riscv64 ppc64el s390x*' '*' \
	make -s -C "$B/tree" cross ARCHS=nope
check "build: make cross says how to get a missing compiler" 0 \
	'cross: no s390x: apt-get install gcc-s390x-linux-gnu musl-dev:s390x' '' \
	make -s -C "$B/tree" cross ARCHS=s390x MUSLDIRS=/nonexistent
if command -v clang >/dev/null 2>&1; then
	make -C "$B/tree" qga CC=clang >"$B/out" 2>&1
	st=$?
	grep -v -e 'in statically linked applications requires at runtime' -e 'in function' "$B/out" |
		grep -i -e warning -e error >"$B/warn"
	expect "build: make CC=clang, without a warning ($(head -c 300 "$B/warn"))" \
		test $st = 0 -a ! -s "$B/warn"
else
	skip "build: no clang here (apt-get install clang)"
fi
