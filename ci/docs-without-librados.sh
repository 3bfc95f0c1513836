#!/usr/bin/env bash
# Builds the documentation of every workspace crate (`cargo doc --no-deps`, warnings as
# errors) where Ceph's headers and library cannot be seen, as on docs.rs or a developer's
# machine without librados-dev: proves that no crate needs them to be documented.
#
# Usage: ci/docs-without-librados.sh      (as root: it needs a private mount namespace)
#
# In a mount namespace of its own (unshare -m; nothing changes outside it), an empty tmpfs
# covers /usr/include/rados and a file that is no library covers every librados.so* file. Before
# building it checks that this worked: no rados/librados.h in the compiler's include path,
# and `cc -lrados` cannot link. The build uses target/doc-no-librados (librados-sys cleaned
# there first), so the build scripts run inside the namespace instead of reusing the main
# build's output.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != --inside ]; then
	if ((EUID != 0)); then
		echo "docs-without-librados: needs root (unshare -m, mount)" >&2
		exit 2
	fi
	exec unshare --mount --propagation private "$0" --inside
fi

# Not a library, nor a linker script (an empty file would pass for an empty script).
empty="$(mktemp)"
trap 'rm -f "$empty" "$empty.out"' EXIT
echo "hidden by ci/docs-without-librados.sh" >"$empty"
if [ -d /usr/include/rados ]; then
	mount -t tmpfs -o size=1m,mode=755 rados-hidden /usr/include/rados
fi
hidden=0
for lib in /usr/lib/*/librados.so* /usr/lib/librados.so* /usr/local/lib/librados.so*; do
	# Symlinks lead to a covered file.
	if [ -f "$lib" ] && [ ! -L "$lib" ]; then
		mount --bind "$empty" "$lib"
		hidden=$((hidden + 1))
	fi
done

# The proof: the compiler finds no header, the linker no library.
if echo '#include <rados/librados.h>' | cc -E -x c - >/dev/null 2>&1; then
	echo "docs-without-librados: rados/librados.h still reachable" >&2
	exit 1
fi
if echo 'int main(void) { return 0; }' | cc -x c - -lrados -o "$empty.out" >/dev/null 2>&1; then
	echo "docs-without-librados: cc -lrados still links" >&2
	exit 1
fi
echo "docs-without-librados: rados/librados.h unreachable, -lrados does not link ($hidden library files covered)"

# The C ABI crate's library (librados_mail.a) and the command (rados-mail) are also named
# rados_mail for rustdoc, which would write all three to doc/rados_mail: one run each, the
# core library's last.
export RUSTDOCFLAGS="-D warnings"
# Its build script runs again here even when the directory is left from an earlier run.
cargo clean -q -p rados-mail-librados-sys --target-dir target/doc-no-librados
for pkg in rados-mail-ffi rados-mail-cli; do
	cargo doc -q --no-deps -p "$pkg" --target-dir target/doc-no-librados
done
cargo doc -q --workspace --exclude rados-mail-ffi --exclude rados-mail-cli --no-deps \
	--features rados-mail/serde --target-dir target/doc-no-librados
# The bindings are there: the committed ones, documented without the header.
for page in librados_sys/fn.rados_read_op_omap_get_vals2.html librados/index.html rados_mail/index.html \
	objstore/index.html omap_index/index.html; do
	if [ ! -f "target/doc-no-librados/doc/$page" ]; then
		echo "docs-without-librados: target/doc-no-librados/doc/$page missing" >&2
		exit 1
	fi
done
echo "docs-without-librados: cargo doc --no-deps of every workspace crate built without librados"
