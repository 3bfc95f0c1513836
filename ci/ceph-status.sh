#!/usr/bin/env bash
# Usage: ci/ceph-status.sh [DIR]
#
# Shows whether the mon and the OSDs of the test cluster in DIR (default
# $RADOS_MAIL_CEPH_DIR, else <repo>/target/ceph) run, then `ceph -s` (bounded
# to 15 s). Exits 0 when all its daemons run and `ceph -s` answered, else 1.
set -euo pipefail

# shellcheck source=ci/ceph-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ceph-lib.sh"

case "${1:-}" in
    -h | --help) print_usage; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
esac
DIR="$(resolve_dir "${1:-}")"
unset CEPH_CONF CEPH_KEYRING CEPH_ARGS

if [[ ! -f "$DIR/ceph.conf" ]]; then
    echo "no cluster in $DIR (start one with ci/ceph-start.sh)"
    exit 1
fi
rc=0
while read -r entry; do
    name="${entry%%:*}"
    if pid="$(daemon_pid "$DIR" "$name" "${entry#*:}")"; then
        echo "$name: running (pid $pid)"
    else
        echo "$name: not running"
        rc=1
    fi
done < <(cluster_daemons "$DIR")
if ((rc == 0)); then
    timeout -k 2 15 ceph --conf "$DIR/ceph.conf" --connect-timeout 10 -s || {
        echo "ceph -s failed or timed out"
        rc=1
    }
fi
exit "$rc"
