#!/usr/bin/env bash
# The main job of rados-mail, on one machine: install what is missing, start a local
# single-node Ceph cluster, store an object with data, xattrs and omap through the library
# and read it back.
#
# Usage: ./ci/demo.sh [--keep]
#   --keep   leave the cluster running (stop it with ./ci/ceph-stop.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
[ "${1:-}" = --keep ] && keep=1

./ci/install-deps.sh
cargo build --release -p librados --example roundtrip

ceph_dir="${RADOS_MAIL_CEPH_DIR:-$PWD/target/ceph}"
# Unix socket paths are short: a deep checkout gets its cluster under /tmp instead.
if [ ${#ceph_dir} -gt 80 ]; then
	ceph_dir="/tmp/rados-mail-ceph-$(printf '%s' "$PWD" | md5sum | cut -c1-8)"
fi
[ $keep = 1 ] || trap './ci/ceph-stop.sh "$ceph_dir" >/dev/null 2>&1 || true' EXIT
./ci/ceph-start.sh "$ceph_dir"
# shellcheck disable=SC1091
source "$ceph_dir/env.sh"

cargo run --release -q -p librados --example roundtrip
echo
echo "The same object, seen with Ceph's own tool:"
rados -p "$RADOS_MAIL_POOL" -N example listomapvals example-mail
[ $keep = 0 ] || echo "cluster left running: source $ceph_dir/env.sh; stop with ./ci/ceph-stop.sh"
