#!/usr/bin/env bash
# Compiles and runs the C example of README.md exactly as written (the ```c block after
# the "<!-- c-example -->" marker), with -Wall -Wextra -Wpedantic -Werror, against
# librados_mail.a, and once more against librados_mail.so with the flags of the pkg-config
# file ffi/pkgconfig.sh writes. Fails if it does not compile, run, or print what it promises.
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

export PKG_CONFIG_PATH
PKG_CONFIG_PATH="$(dirname "$(ffi/pkgconfig.sh debug)")"
libdir="$(pkg-config --variable=libdir rados-mail)"
# shellcheck disable=SC2046 # word splitting of pkg-config's flags is wanted
cc -std=c11 -Wall -Wextra -Wpedantic -Werror "$out/example.c" -o "$out/example-shared" \
	$(pkg-config --cflags --libs rados-mail) -Wl,-rpath,"$libdir"
ldd "$out/example-shared" | grep -q 'librados_mail.so' || {
	echo "readme-example: the pkg-config build did not link librados_mail.so" >&2
	exit 1
}
"$out/example-shared" >"$out/stdout-shared"

for f in stdout stdout-shared; do
	grep -qx 'UID 1 stored, 1 message(s), UIDNEXT 2' "$out/$f" || {
		echo "readme-example: unexpected output ($f)" >&2
		exit 1
	}
done
echo "readme-example: compiled as written and ran (static, and shared via pkg-config)"
