#!/usr/bin/env bash
# Usage: ci/ceph-stop.sh [--wipe] [DIR]
#
# Stops the test cluster started by ci/ceph-start.sh in DIR (default
# $RADOS_MAIL_CEPH_DIR, else <repo>/target/ceph): SIGTERM to the PIDs in its pid
# files, up to ~10 s grace, then SIGKILL. Succeeds quietly when nothing runs.
# Data stays, so ci/ceph-start.sh restarts the same cluster.
#
# Options:
#   --wipe       also delete DIR (all data, keyrings and logs)
#   -h, --help   show this help
set -euo pipefail

# shellcheck source=ci/ceph-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ceph-lib.sh"

wipe=0
dir_arg=""
while (($#)); do
    case "$1" in
        --wipe) wipe=1 ;;
        -h | --help) print_usage; exit 0 ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *) [[ -z "$dir_arg" ]] || die "only one DIR allowed"; dir_arg="$1" ;;
    esac
    shift
done

DIR="$(resolve_dir "$dir_arg")"
[[ -e "$DIR" ]] || exit 0
is_our_dir "$DIR" || die "$DIR was not made by ci/ceph-start.sh; not touching it"
lock_dir "$DIR"
t0="$EPOCHREALTIME"
stop_daemons "$DIR"
((STOPPED == 0)) || log "stopped in $(elapsed_since "$t0") s"
if ((wipe)); then
    rm -rf -- "$DIR"
    log "wiped $DIR"
fi
