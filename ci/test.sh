#!/usr/bin/env bash
# The whole test suite of rados-mail, as CI runs it (.ci/run calls exactly this).
#
# Usage: ./ci/test.sh
#
# Installs what is missing (Debian packages, rustup components, the MSRV toolchain), checks
# formatting and lints, the publishability of the crates (committed librados bindings, docs
# built with Ceph's headers and library hidden, `cargo +MSRV check`, `cargo publish
# --dry-run`), starts a single-node Ceph cluster on 127.0.0.1 in target/ceph (3 OSDs, a replicated
# pool and an erasure-coded one, k=2 m=1, for mail bodies), runs every test of
# the workspace (the in-memory ones and those against the real cluster), the C ABI's C
# tests, the Dovecot plugin's tests, the Debian package installed into the system and the
# demo against it (then removed), and benchmark smoke runs, runs every fuzz target for
# 60 s (ci/fuzz.sh: nightly toolchain and cargo-fuzz, installed if missing), and stops the
# cluster again. Set RADOS_MAIL_KEEP_CEPH=1 to leave the cluster running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

./ci/install-deps.sh

step() { printf '\n==> %s\n' "$*"; }
# A failed step is named again at the very end, beside the failed tests' names (CI shows
# the tail of the log).
status=0 failed_steps=()
fail() { status=1; failed_steps+=("$1"); }
t0=$SECONDS

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "build the tests"
cargo test --workspace --no-run

step "librados-sys: the committed bindings are what bindgen makes from the installed librados.h"
./librados-sys/check-bindings.sh || fail "librados-sys bindings drift"

step "docs without librados: cargo doc --no-deps of every crate, -D warnings, Ceph's headers and library hidden"
# A private mount namespace (root): an empty tmpfs over /usr/include/rados, a file that is no
# library over librados.so.*; the proof that they are unreachable runs first (no header, and
# the linker finds no usable -lrados). Its own target dir, librados-sys's build script rerun.
./ci/docs-without-librados.sh || fail "docs without librados"

msrv="$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)"
step "MSRV: cargo +$msrv check --workspace --all-targets (rust-version in Cargo.toml)"
cargo +"$msrv" check -q --workspace --all-targets --target-dir target/msrv || fail "MSRV $msrv"

step "cargo publish --dry-run (cargo publish --workspace --dry-run: every crate but benches, in dependency order)"
# rados-mail-benches has publish = false: benchmark programs that need this checkout's cluster
# scripts and print tables for this repository, no use to anyone depending on the crates.
# fuzz/ is outside the workspace (nightly, publish = false). The CLI and the C ABI crate are
# published (cargo install rados-mail-cli; the ffi crate builds librados_mail.a/.so).
cargo publish --workspace --dry-run || fail "cargo publish --dry-run"

step "start the local Ceph cluster (3 OSDs; erasure-coded data pool)"
ceph_dir="${RADOS_MAIL_CEPH_DIR:-$PWD/target/ceph}"
# Unix socket paths are short: a deep checkout gets its cluster under /tmp instead.
if [ ${#ceph_dir} -gt 80 ]; then
	ceph_dir="/tmp/rados-mail-ceph-$(printf '%s' "$PWD" | md5sum | cut -c1-8)"
fi
if [ "${RADOS_MAIL_KEEP_CEPH:-0}" != 1 ]; then
	trap './ci/ceph-stop.sh "$ceph_dir" >/dev/null 2>&1 || true' EXIT
fi
# 3 OSDs for the erasure-coded pool (k=2, m=1) that env.sh exports as RADOS_MAIL_DATA_POOL:
# the erasure tests (librados/tests/erasure.rs) run on it, and the Dovecot suite keeps its
# bodies there (harness.py: rados_data_pool).
./ci/ceph-start.sh --osds 3 "$ceph_dir"
# shellcheck disable=SC1091
source "$ceph_dir/env.sh"

step "cargo test --workspace (in-memory and against the cluster at $CEPH_CONF)"
log="$(mktemp)"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" = 0 ] || fail "cargo test --workspace"
set -e

step "figures of issue 15: a 1,000,000-mail mailbox's open (rados-mail/tests/million.rs), 1M shared dict keys"
# Already run (and asserted) by the workspace tests; again here so that their printed lines
# ("million open: reads N, rss +M MiB", the cold open, the shared dict's time) are in the log.
cargo test -q -p rados-mail --test million --test dict_shards -- --nocapture million shared_dict_shards 2>&1 \
    | grep -E '^(million|shared_dict_shards|test result)' || fail "issue 15 figures"

step "the tokio example (examples/tokio-deliver): delivers and fetches mails on the cluster, streamed"
cargo run -q -p rados-mail-example-tokio || fail "tokio example"

step "example: rados-mail/examples/stalwart_blob_store.rs (a Stalwart-shaped blob store on rados_mail::blob, tokio) against the cluster"
cargo run -q -p rados-mail --example stalwart_blob_store || fail "stalwart_blob_store example"

step "C ABI: header drift (cbindgen 0.29.0)"
./ffi/check-header.sh || fail "C header drift"

step "C ABI: compatibility with the released header (ffi/check-abi.py; rules in ffi/README.md)"
{ ./ffi/check-abi.py --self-test && ./ffi/check-abi.py; } || fail "C ABI compatibility"

step "C ABI: C tests (ASan/UBSan, then valgrind; in-memory and the cluster)"
ffi_log="$(mktemp)"
set +e
./ffi/tests/run.sh 2>&1 | tee "$ffi_log"
[ "${PIPESTATUS[0]}" = 0 ] || fail "C tests"
set -e

step "C ABI: the README's C example, compiled and run as written"
./ffi/tests/readme-example.sh || fail "README's C example"

step "benchmark smoke run: library vs rados bench (--quick; full runs: benches/README.md)"
cargo run -q -p rados-mail-benches --bin store-bench -- --quick || fail "store-bench"

step "benchmark smoke run: async append/fetch on tokio tasks vs threads at 16 in flight (--quick; full runs: benches/README.md)"
cargo run -q --release -p rados-mail-benches --bin async-bench -- --quick || fail "async-bench"

step "benchmark: peak RSS saving and fetching a 1 GiB mail (goal: < 64 MiB above baseline)"
cargo run -q --release -p rados-mail-benches --bin mail-rss || fail "mail-rss"

step "capacity model: docs/CAPACITY.md's tables recomputed from the format's record sizes and the asserted op counts"
python3 benches/capacity.py --check docs/CAPACITY.md || fail "capacity model"

step "Dovecot plugin: build against dovecot-dev, then IMAP/LMTP/POP3/doveadm against the cluster (bodies in ${RADOS_MAIL_DATA_POOL:-the index pool})"
dovecot_log="$(mktemp)"
set +e
{
	cargo build -q --release -p rados-mail-ffi &&
		make -C dovecot-glue RADOS_MAIL_LIB="$PWD/target/release/librados_mail.a" &&
		./dovecot-glue/tests/run.sh
} 2>&1 | tee "$dovecot_log"
[ "${PIPESTATUS[0]}" = 0 ] || fail "Dovecot suite"
set -e

step "Debian package (ci/package.sh): dpkg -i, a C program via pkg-config, the demo against the installed plugin (ci/demo.sh --installed), dpkg -r"
# The machine ends as it was: the package is removed again (unless a rados-mail package
# was installed before this run: then it stays, replaced by this build), and the demo
# leaves the cluster running for the next steps. dovecot-core's trigger on its module dir
# asks invoke-rc.d to restart a system Dovecot (policy-rc.d permitting); the tests' own
# Dovecots are not affected.
pkg_passed=0 pkg_failed=1
pkg_before="$(dpkg-query -W -f='${Status}' rados-mail 2>/dev/null || true)"
if deb="$(./ci/package.sh)" && dpkg -i "$deb" && ./ci/package.sh --check-installed &&
	./ci/demo.sh --installed; then
	pkg_passed=1 pkg_failed=0
fi
if [[ "$pkg_before" != *"ok installed"* ]]; then
	dpkg -r rados-mail || pkg_failed=1
	if [ -e /usr/lib/dovecot/modules/lib20_rados_plugin.so ] || [ -e /usr/bin/rados-mail ]; then
		echo "package: files left after dpkg -r rados-mail" >&2
		pkg_failed=1
	fi
fi
[ $pkg_failed = 0 ] || { fail "Debian package"; pkg_passed=0; }

step "multi-host failure tests: two Dovecot backends over a 3-host cluster (ci/ha-test.sh)"
ha_log="$(mktemp)"
set +e
./ci/ha-test.sh 2>&1 | tee "$ha_log"
[ "${PIPESTATUS[0]}" = 0 ] || fail "multi-host tests"
set -e

step "benchmark smoke run: Dovecot with the rados plugin vs Dovecot's sdbox on local disk (--quick)"
python3 benches/dovecot/dovecot-bench.py --quick || fail "Dovecot benchmark"

step "the HA demo: ./ci/demo.sh --cluster (3 OSD hosts, 2 Dovecot backends; a host and a backend killed)"
demo_passed=1 demo_failed=0
./ci/demo.sh --cluster || { fail "HA demo"; demo_passed=0 demo_failed=1; }

step "fuzz: every cargo-fuzz target of fuzz/ for 60 s from its committed corpus (nightly, cargo-fuzz)"
fuzz_log="$(mktemp)"
set +e
./ci/fuzz.sh 60 2>&1 | tee "$fuzz_log"
fuzz_status=${PIPESTATUS[0]}
set -e
# One line per target counts as one test (a build that failed counts one failure).
fuzz_passed=$(grep -c '^fuzz .* ok ' "$fuzz_log" || true)
fuzz_failed=$(grep -c '^fuzz .* CRASHED' "$fuzz_log" || true)
if [ "$fuzz_status" != 0 ]; then
	fail "fuzz"
	[ "$fuzz_failed" -gt 0 ] || fuzz_failed=1
fi

# One closing line for the whole run: every cargo test binary and doc-test run ("test
# result:" lines), plus the C tests' and the Dovecot suite's own totals (the last
# "N passed, M failed" line of each, the multi-host tests' too; a suite that did not get that
# far counts 1 failure).
sum() {
	{
		grep -E '^test result:' "$log" | grep -oE "[0-9]+ $1"
		[ "$1" = passed ] && echo "$fuzz_passed passed" && echo "$demo_passed passed" &&
			echo "$pkg_passed passed"
		[ "$1" = failed ] && echo "$fuzz_failed failed" && echo "$demo_failed failed" &&
			echo "$pkg_failed failed"
		for suite in "$ffi_log" "$dovecot_log" "$ha_log"; do
			last="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$suite" | tail -n 1)"
			if [ -z "$last" ] && [ "$1" = failed ]; then last="0 passed, 1 failed"; fi
			echo "$last" | grep -oE "[0-9]+ $1"
		done
	} | awk '{n += $1} END {print n + 0}'
}
step "all steps done in $((SECONDS - t0)) s"
# What failed, by name: the failed steps, the cargo tests ("---- name stdout ----"), the
# Dovecot and multi-host suites' unittest lines ("FAIL: ..." / "ERROR: ..."), the C tests'.
{
	for s in "${failed_steps[@]}"; do echo "failed step: $s"; done
	grep -E '^---- .* stdout ----$' "$log" | sed -E 's/^---- (.*) stdout ----$/failed cargo test: \1/' || true
	grep -hE '^(FAIL|ERROR): ' "$dovecot_log" "$ha_log" | sed 's/^/failed Dovecot test: /' || true
	grep -E '^FAIL' "$ffi_log" | sed 's/^/failed C test: /' || true
} | sort -u | head -n 40
echo "$(sum passed) passed, $(sum failed) failed, $(sum ignored) skipped"
rm -f "$log" "$ffi_log" "$dovecot_log" "$ha_log" "$fuzz_log"
exit "$status"
