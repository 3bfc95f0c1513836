#!/usr/bin/env bash
# Builds librados_mail.a and runs the C test program ffi/tests/ffi_test.c twice:
#   1. with -Wall -Wextra -Wpedantic -Werror and ASan/UBSan;
#   2. without sanitizers, under valgrind --leak-check=full (suppressions: valgrind.supp).
# Against the in-memory store always, and against the cluster of $CEPH_CONF when set
# (source target/ceph/env.sh first).
#
# Usage: ffi/tests/run.sh    (from anywhere; exits non-zero on any failure)
# The last line is the C test's own count, summed over both runs: "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../.."

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
libs=(-lrados -lgcc_s -lutil -lrt -lpthread -lm -ldl)
cflags=(-std=c11 -Wall -Wextra -Wpedantic -Werror -g -I ffi/include)

echo "==> cargo build -p rados-mail-ffi"
cargo build -q -p rados-mail-ffi
lib=target/debug/librados_mail.a

total_passed=0
total_failed=0
status=0
# Runs the test binary ("$@" is the command line), adds its counters to the totals.
run() {
	local log="$out/log" rc=0
	"$@" >"$log" 2>&1 || rc=$?
	cat "$log"
	local last ok=0 bad=0
	last="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)"
	if [ -n "$last" ]; then
		ok=$(echo "$last" | awk '{print $1}')
		bad=$(echo "$last" | awk '{print $3}')
	fi
	if [ "$rc" != 0 ] && [ "$bad" = 0 ]; then
		# A crash, or a sanitizer or valgrind finding with every check passed, still
		# counts as a failure.
		echo "ffi-test: exit status $rc with no failed check (crash, sanitizer or valgrind): counted as 1 failure" >&2
		bad=1
	fi
	total_passed=$((total_passed + ok))
	total_failed=$((total_failed + bad))
	[ "$rc" = 0 ] || status=1
}

echo "==> C test with ASan/UBSan"
cc "${cflags[@]}" -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all \
	ffi/tests/ffi_test.c "$lib" "${libs[@]}" -o "$out/ffi_test_asan"
# LeakSanitizer on as well: it needs no suppressions (valgrind below needs one, see
# valgrind.supp).
ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
	run "$out/ffi_test_asan"

echo "==> C test under valgrind"
cc "${cflags[@]}" ffi/tests/ffi_test.c "$lib" "${libs[@]}" -o "$out/ffi_test"
run valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=1 \
	--suppressions=ffi/tests/valgrind.supp "$out/ffi_test"

[ "$total_failed" = 0 ] || status=1
echo "$total_passed passed, $total_failed failed"
exit "$status"
