# SPDX-License-Identifier: MIT
# qga: see README. POSIX make; `make` builds a static, stripped binary,
# with musl-gcc when it is installed.
.POSIX:

PREFIX = /usr/local
BINDIR = $(PREFIX)/bin
MANPREFIX = $(PREFIX)/share/man
CFLAGS = -Oz
WARN = -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wpointer-arith -Wwrite-strings
HOSTCC = cc
# Stripped; make bench builds it with STRIP=-g to see where the bytes go.
STRIP = -s
# Size: absolute addresses (a static binary is not relocated), no unwind
# tables (C needs none), unused sections dropped, and no padding in the
# file between the code and the data that follows it. Each of these is
# known to GCC and clang, and to GNU ld and lld, on every architecture.
TIGHT = -fno-pie -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables \
	-fno-unwind-tables -Wl,--gc-sections -Wl,--build-id=none -Wl,-z,norelro \
	-Wl,-z,noseparate-code -Wl,-z,common-page-size=64 -fno-jump-tables
# Large files and a 64-bit time_t where the C library leaves them a
# choice (glibc on 32-bit machines); other C libraries ignore these.
DEFS = -D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64
SAN = $(DEFS) -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all
# The parts of qga.c, which it includes: one translation unit.
PARTS = src/util.c src/conn.c src/proto.c src/output.c src/raw.c src/many.c src/session.c src/guest.c \
	src/cli.c src/cmd-exec.c src/untar.c src/undo.c src/cmd-file.c src/cmd-put.c src/cmd-info.c \
	src/cmd-admin.c src/cmd-ls.c src/serve.c src/http.c src/serve-http.c src/serve-file.c \
	src/link.c src/engine.c src/cmd-metrics.c src/serve-agent.c src/help.c
SRC = qga.c $(PARTS) src/qga.h json.c json.h
TESTBIN = test/json_test test/json_test_swar test/fuzz_replay test/fuzz_http_replay \
	test/fuzz_tar_replay test/fuzz_replies_replay test/fakeagent

all: qga

# The compiler: CC as given, or musl-gcc when it is installed and CC is
# left at make's own default (cc, c99). Another C library is said, for
# glibc's static getaddrinfo needs glibc's shared libraries at run time.
PICKCC = cc='$(CC)'; case "$$cc" in cc|c99) \
	if command -v musl-gcc >/dev/null 2>&1; then cc=musl-gcc; \
	else echo "note: no musl-gcc (Debian: apt-get install musl-tools; make then builds qga again): building with $$cc and its C library, whose static binary may need that library's shared files where it runs"; fi;; \
	esac
BUILD = $(CFLAGS) $(DEFS) $(WARN) $(TIGHT) -static $(STRIP) $(LDFLAGS)

qga: $(SRC) .qga-cc
	@$(PICKCC); echo "$$cc $(CFLAGS) ... -static $(STRIP) -o $@"; $$cc $(BUILD) -o $@ qga.c json.c

# What qga is built with: when that changes (another CC or CFLAGS, musl
# installed since), qga is built again.
.qga-cc: FORCE
	@$(PICKCC) >/dev/null; id="$$cc $(BUILD) $$($$cc -dumpmachine 2>&1) $$($$cc -dumpversion 2>&1)"; \
	[ "$$(cat $@ 2>/dev/null)" = "$$id" ] || echo "$$id" >$@
FORCE:

# make cross: qga for each of ARCHS (Debian's names) whose cross compiler
# and musl are installed, as cross/qga-ARCH; its musl-gcc.specs is looked
# for in MUSLDIRS (test/deps puts riscv64's, which Debian 12 lacks, in
# test/cache/musl).
ARCHS = amd64 arm64 armhf i386 riscv64 ppc64el s390x
MUSLDIRS = /usr/lib test/cache/musl
cross: $(SRC)
	@mkdir -p cross; for a in $(ARCHS); do \
		case $$a in amd64) t=x86_64-linux-gnu m=x86_64-linux-musl;; \
		arm64) t=aarch64-linux-gnu m=aarch64-linux-musl;; \
		armhf) t=arm-linux-gnueabihf m=arm-linux-musleabihf;; \
		i386) t=i686-linux-gnu m=i386-linux-musl;; \
		riscv64) t=riscv64-linux-gnu m=riscv64-linux-musl;; \
		ppc64el) t=powerpc64le-linux-gnu m=powerpc64le-linux-musl;; \
		s390x) t=s390x-linux-gnu m=s390x-linux-musl;; \
		*) echo "cross: $$a is none of amd64 arm64 armhf i386 riscv64 ppc64el s390x"; exit 2;; esac; \
		s=; for d in $(MUSLDIRS); do [ -f $$d/$$m/musl-gcc.specs ] && s=$$d/$$m/musl-gcc.specs && break; done; \
		if ! command -v $$t-gcc >/dev/null 2>&1 || [ -z "$$s" ]; then \
			echo "cross: no $$a: apt-get install gcc-$$(echo $$t | tr _ -) musl-dev:$$a"; continue; fi; \
		[ -f cross/qga-$$a ] && [ -z "$$(find $(SRC) Makefile -newer cross/qga-$$a)" ] && continue; \
		echo "$$t-gcc -specs $$s $(CFLAGS) ... -o cross/qga-$$a"; \
		$$t-gcc -specs $$s $(BUILD) -o cross/qga-$$a qga.c json.c || exit 1; \
	done

# The same program under AddressSanitizer and UBSan, for the test suite.
qga-asan: $(SRC)
	$(HOSTCC) $(WARN) $(SAN) -o $@ qga.c json.c

test/json_test: test/json_test.c json.c json.h
	$(HOSTCC) $(WARN) $(SAN) -o $@ test/json_test.c json.c

# The same tests of json.c's portable path, which machines without SSE2 use.
test/json_test_swar: test/json_test.c json.c json.h
	$(HOSTCC) $(WARN) $(SAN) -U__SSE2__ -o $@ test/json_test.c json.c

test/fuzz_replay: test/fuzz.c test/fuzz_main.c json.c json.h
	$(HOSTCC) $(WARN) $(SAN) -o $@ test/fuzz.c test/fuzz_main.c json.c

test/fuzz_http_replay: test/fuzz_http.c test/fuzz_main.c $(SRC)
	$(HOSTCC) $(WARN) -Wno-missing-prototypes $(SAN) -o $@ test/fuzz_http.c test/fuzz_main.c json.c

test/fuzz_tar_replay: test/fuzz_tar.c test/fuzz_main.c $(SRC)
	$(HOSTCC) $(WARN) -Wno-missing-prototypes $(SAN) -o $@ test/fuzz_tar.c test/fuzz_main.c json.c

test/fuzz_replies_replay: test/fuzz_replies.c test/fuzz_main.c $(SRC)
	$(HOSTCC) $(WARN) -Wno-missing-prototypes $(SAN) -o $@ test/fuzz_replies.c test/fuzz_main.c json.c

test/fakeagent: test/fakeagent.c json.c json.h
	$(HOSTCC) $(WARN) -O2 -o $@ test/fakeagent.c json.c

# libFuzzer, with clang: make fuzz, then test/fuzz -max_total_time=60 test/corpus,
# test/fuzz_http ... test/corpus-http, test/fuzz_tar ... test/corpus-tar and
# test/fuzz_replies -max_total_time=60 -close_fd_mask=3 test/corpus-replies
fuzz: test/fuzz.c test/fuzz_http.c test/fuzz_tar.c test/fuzz_replies.c $(SRC)
	clang -g -O1 -fsanitize=fuzzer,address,undefined -o test/fuzz test/fuzz.c json.c
	clang -g -O1 -fsanitize=fuzzer,address,undefined -o test/fuzz_http test/fuzz_http.c json.c
	clang -g -O1 -fsanitize=fuzzer,address,undefined -o test/fuzz_tar test/fuzz_tar.c json.c
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-o test/fuzz_replies test/fuzz_replies.c json.c

# Each part compiled alone against src/qga.h: what one part uses of
# another must be declared there, and what it keeps to itself static.
lint:
	@for f in $(PARTS) qga.c; do \
		echo "$(HOSTCC) -fsyntax-only $$f"; \
		$(HOSTCC) $(DEFS) $(WARN) -Werror -fsyntax-only $$f || exit 1; \
	done

# make check runs every test; make check T='t-serve t-agent' runs those.
# check, demo and bench first install what they need (test/deps).
check:
	test/deps check
	$(MAKE) lint qga qga-asan cross $(TESTBIN)
	test/run $(T)

demo:
	test/deps demo
	$(MAKE) qga
	test/demo

bench:
	test/bench/run

# The OCI archive qga-oci.tar: an index of FROM-scratch images, one per
# architecture make cross built (./qga alone when it built none), each
# the binary as its one file and entrypoint (contrib/oci).
image: qga cross
	@set -- cross/qga-*; [ -e "$$1" ] || set -- qga; \
	echo "contrib/oci/mkimage qga-oci.tar $$*"; contrib/oci/mkimage qga-oci.tar "$$@"
	@echo "qga-oci.tar: skopeo copy oci-archive:qga-oci.tar:qga docker-daemon:qga:latest"

install: qga
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANPREFIX)/man1
	cp qga $(DESTDIR)$(BINDIR)/qga
	chmod 755 $(DESTDIR)$(BINDIR)/qga
	cp qga.1 $(DESTDIR)$(MANPREFIX)/man1/qga.1
	chmod 644 $(DESTDIR)$(MANPREFIX)/man1/qga.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/qga $(DESTDIR)$(MANPREFIX)/man1/qga.1

clean:
	rm -rf cross
	rm -f qga .qga-cc qga-asan qga-oci.tar $(TESTBIN) test/fuzz test/fuzz_http test/fuzz_tar \
		test/fuzz_replies

.PHONY: all bench check cross demo image install uninstall clean fuzz lint FORCE
