#!/usr/bin/env bash
# Fails (exit 1) when ffi/include/rados_mail.h is not what cbindgen makes from the code.
#
# Usage: ffi/check-header.sh          check (CI)
#        ffi/check-header.sh --write  regenerate the committed header
#
# Needs cbindgen 0.29.0 exactly (other versions format differently):
#   cargo install cbindgen --version 0.29.0 --locked
set -euo pipefail
cd "$(dirname "$0")"
want=0.29.0
have="$(cbindgen --version 2>/dev/null | awk '{print $2}')" || true
if [ "$have" != "$want" ]; then
	echo "check-header: need cbindgen $want, found '${have:-none}' (cargo install cbindgen --version $want --locked)" >&2
	exit 2
fi
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
cbindgen --quiet --config cbindgen.toml --crate rados-mail-ffi --output "$tmp" .
if [ "${1:-}" = --write ]; then
	cp "$tmp" include/rados_mail.h
	echo "check-header: wrote include/rados_mail.h"
	exit 0
fi
if ! diff -u include/rados_mail.h "$tmp"; then
	echo "check-header: include/rados_mail.h is stale; run ffi/check-header.sh --write and commit it" >&2
	exit 1
fi
echo "check-header: include/rados_mail.h is up to date"
