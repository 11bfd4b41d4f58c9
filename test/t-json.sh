# SPDX-License-Identifier: MIT
# json.c's unit tests and JSONTestSuite, with SSE2 and without, and the
# fuzz corpora replayed through their harnesses: once, with the sanitizers
# the Makefile builds these with, whatever qga they would run beside.
[ "$QGA" = "$PWD/qga" ] || return 0
# LeakSanitizer on: json.c must not leak (test/run turns it off for qga).
unset ASAN_OPTIONS
JSONSUITE=test/jsontestsuite/test_parsing
check "json unit tests and JSONTestSuite" 0 'json: * passed, 0 failed' '' \
	test/json_test "$JSONSUITE"
check "the same, without SSE2" 0 'json: * passed, 0 failed' '' \
	test/json_test_swar "$JSONSUITE"
check "fuzz corpus replay" 0 'fuzz replay: * files, 0 unreadable' '' \
	test/fuzz_replay test/corpus "$JSONSUITE"
check "HTTP parser fuzz corpus replay" 0 'fuzz replay: * files, 0 unreadable' '' \
	test/fuzz_http_replay test/corpus-http
check "tar parser fuzz corpus replay" 0 'fuzz replay: * files, 0 unreadable' '' \
	test/fuzz_tar_replay test/corpus-tar
check "reply fuzz corpus replay" 0 'fuzz replay: * files, 0 unreadable' '' \
	test/fuzz_replies_replay test/corpus-replies
