#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for SECONDS each (default 60), from its corpus in
# fuzz/corpus/<target>/ (libFuzzer adds what it finds there; commit only small, useful
# additions). Fails on the first crash, leak or timeout, leaving the input in
# fuzz/artifacts/<target>/. Prints one line per target: its executions and corpus size.
#
# Usage: ./ci/fuzz.sh [SECONDS]
#   FUZZ_TARGETS="keys records"  only these targets (built alone); default: all of them
#
# Needs the nightly toolchain and cargo-fuzz (installed here if missing:
# `cargo install cargo-fuzz`). The targets link librados (the settings parser the C ABI
# uses lives in rados-mail with its `rados` feature), as the workspace does.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

seconds="${1:-60}"
all_targets=(records keys dict_keys mailbox_names ffi_parse)
read -r -a targets <<<"${FUZZ_TARGETS:-${all_targets[*]}}"
for t in "${targets[@]}"; do
    [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "fuzz: unknown target '$t' in FUZZ_TARGETS" >&2; exit 2; }
done

command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

cd fuzz
mkdir -p target
if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    for t in "${targets[@]}"; do
        cargo +nightly fuzz build -O "$t" >target/fuzz-build.log 2>&1 || { cat target/fuzz-build.log; exit 1; }
    done
else
    cargo +nightly fuzz build -O >target/fuzz-build.log 2>&1 || { cat target/fuzz-build.log; exit 1; }
fi
failed=0
for t in "${targets[@]}"; do
    log="target/fuzz-$t.log"
    mkdir -p "corpus/$t"
    # The corpus is copied so that the run does not grow the committed one.
    work="target/corpus-$t"
    rm -rf "$work" && mkdir -p "$work" && cp -r "corpus/$t/." "$work/"
    if cargo +nightly fuzz run -O "$t" "$work" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
        printf 'fuzz %-14s ok      %10s execs  %6s execs/s  corpus %s -> %s  %ss\n' "$t" "${execs:-?}" "${rate:-?}" \
            "$(ls "corpus/$t" | wc -l)" "$(ls "$work" | wc -l)" "$seconds"
    else
        printf 'fuzz %-14s CRASHED (log: fuzz/%s, input in fuzz/artifacts/%s/)\n' "$t" "$log" "$t"
        grep -m5 -E 'panicked|ERROR|SUMMARY' "$log" || true
        failed=1
    fi
done
exit "$failed"
