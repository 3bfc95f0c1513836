#!/usr/bin/env bash
# Fails (exit 1) when librados-sys/src/bindings.rs (the committed bindgen output the crate
# uses by default) is not what bindgen makes from the installed rados/librados.h.
#
# Usage: librados-sys/check-bindings.sh          check (CI)
#        librados-sys/check-bindings.sh --write  regenerate the committed file
#
# Builds the crate with the `buildtime-bindgen` feature (bindgen as pinned by Cargo.lock,
# libclang from libclang-dev) and compares its $OUT_DIR/bindings.rs with the committed file.
# LIBRADOS_INCLUDE_DIR / LIBRADOS_HEADER pick another header (build.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir="$(cargo build -q -p rados-mail-librados-sys --features buildtime-bindgen --message-format=json |
	python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "build-script-executed" and "rados-mail-librados-sys" in m["package_id"]:
        print(m["out_dir"])')"
generated="$out_dir/bindings.rs"
[ -f "$generated" ] || { echo "check-bindings: no $generated" >&2; exit 2; }
if [ "${1:-}" = --write ]; then
	cp "$generated" librados-sys/src/bindings.rs
	echo "check-bindings: wrote librados-sys/src/bindings.rs"
	exit 0
fi
if ! diff -u librados-sys/src/bindings.rs "$generated"; then
	echo "check-bindings: librados-sys/src/bindings.rs differs from the installed header's bindings; run librados-sys/check-bindings.sh --write and commit it" >&2
	exit 1
fi
echo "check-bindings: librados-sys/src/bindings.rs is bindgen's output for the installed header ($(head -1 "$generated" | grep -o 'rust-bindgen [0-9.]*'))"
