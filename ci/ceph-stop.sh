#!/usr/bin/env bash
# Usage: ci/ceph-stop.sh [--wipe] [DIR]
#
# Stops the test cluster started by ci/ceph-start.sh in DIR (default
# $RADOS_MAIL_CEPH_DIR, else <repo>/target/ceph): SIGTERM to the PIDs in its pid
# files, up to ~10 s grace, then SIGKILL. Succeeds quietly when nothing runs.
# Data stays, so ci/ceph-start.sh restarts the same cluster.
# A multi-host cluster (ci/ceph-start.sh --hosts N; default DIR then
# <repo>/target/ceph-hosts when DIR is not given and target/ceph holds none):
# all OSDs, then all mons, then its namespaces, veths and bridge are removed.
#
# Options:
#   --wipe       also delete DIR (all data, keyrings and logs)
#   -h, --help   show this help
set -euo pipefail

# shellcheck source=ci/ceph-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ceph-lib.sh"
# shellcheck source=ci/ceph-hosts-lib.sh
. "$CEPH_CI_DIR/ceph-hosts-lib.sh"

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
if [[ -z "$dir_arg" && ! -e "$DIR" && -z "${RADOS_MAIL_CEPH_DIR:-}" ]]; then
    DIR="$(resolve_dir "$REPO_ROOT/target/ceph-hosts")"
fi
[[ -e "$DIR" ]] || exit 0
is_our_dir "$DIR" || die "$DIR was not made by ci/ceph-start.sh; not touching it"
lock_dir "$DIR"
t0="$EPOCHREALTIME"
if hosts_load "$DIR"; then
    hosts_stop "$DIR"
else
    stop_daemons "$DIR"
fi
((STOPPED == 0)) || log "stopped in $(elapsed_since "$t0") s"
if ((wipe)); then
    rm -rf -- "$DIR"
    log "wiped $DIR"
fi
