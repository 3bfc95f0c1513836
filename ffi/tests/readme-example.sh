#!/usr/bin/env bash
# Compiles and runs the C example of README.md exactly as written (the ```c block after
# the "<!-- c-example -->" marker), with -Wall -Wextra -Wpedantic -Werror, against
# librados_mail.a. Fails if it does not compile, run, or print what it promises.
#
# Usage: ffi/tests/readme-example.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
awk '/<!-- c-example -->/ {found = 1; next}
     found && /^```c$/ {inside = 1; next}
     inside && /^```$/ {exit}
     inside {print}' README.md >"$out/example.c"
[ -s "$out/example.c" ] || { echo "readme-example: no C example found in README.md" >&2; exit 1; }
echo "readme-example: $(wc -l <"$out/example.c") lines"
cargo build -q -p rados-mail-ffi
cc -std=c11 -Wall -Wextra -Wpedantic -Werror -I ffi/include "$out/example.c" -o "$out/example" \
	target/debug/librados_mail.a -lrados -lgcc_s -lutil -lrt -lpthread -lm -ldl
"$out/example" | tee "$out/stdout"
grep -qx 'UID 1 stored, 1 message(s), UIDNEXT 2' "$out/stdout" || {
	echo "readme-example: unexpected output" >&2
	exit 1
}
echo "readme-example: compiled as written and ran"
