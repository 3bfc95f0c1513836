#!/usr/bin/env bash
# Usage: ci/ha-test.sh [--full] [TEST...]
#
# The multi-host failure tests (dovecot-glue/tests/test_ha.py): starts a fresh
# 3-host cluster (ci/ceph-start.sh --hosts 3) in a temporary directory, runs
# the tests against it with two Dovecot backends (the plugin must be built, as
# for dovecot-glue/tests/run.sh), then stops the cluster and removes its
# network namespaces, also on failure or Ctrl-C. Each test prints one line
#   <test> acked N lost N duplicated N 4xx N max_stall S s
# TEST selects tests by name (kill_osd_host, cut_osd_host_link, pause_osd,
# kill_mon, kill_dovecot_backend); default all five. Needs root.
#
# Options:
#   --full       longer loads: more senders and IMAP sessions, longer faults
#                (default: a CI-sized run, ~4-5 min on 2 cores)
#   -h, --help   show this help
# Environment:
#   RADOS_MAIL_CEPH_NET      subnet octet of the temporary cluster (default 78)
#   DOVECOT_TEST_PORT_BASE   first Dovecot port (default 24600; uses P+140..P+159)
#   DOVECOT_TEST_PLUGIN_DIR  where lib20_rados_plugin.so is (default dovecot-glue/build)
#   HA_TEST_KEEP=1           keep the cluster directory (not the cluster) on exit
set -euo pipefail

CI_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(dirname "$CI_DIR")"
say() { printf 'ha-test: %s\n' "$*"; }

full=0
tests=()
while (($#)); do
    case "$1" in
        --full) full=1 ;;
        -h | --help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
        -*) say "unknown option '$1' (see --help)"; exit 2 ;;
        *) tests+=("$1") ;;
    esac
    shift
done
((EUID == 0)) || { say "needs root (network namespaces, Dovecot's master)"; exit 2; }

export RADOS_MAIL_CEPH_NET="${RADOS_MAIL_CEPH_NET:-78}"
export DOVECOT_TEST_PORT_BASE="${DOVECOT_TEST_PORT_BASE:-24600}"
export RADOS_MAIL_POOL=mail
export HA_TEST_FULL="$full"
export PYTHONDONTWRITEBYTECODE=1
unset CEPH_CONF CEPH_KEYRING CEPH_ARGS RADOS_MAIL_CEPH_DIR RADOS_MAIL_DATA_POOL
DIR="$(mktemp -d /tmp/rm-hatest.XXXX)"
export RADOS_MAIL_HA_DIR="$DIR"

cleanup() {
    local rc=$? out
    trap - EXIT INT TERM
    out="$("$CI_DIR/ceph-stop.sh" "$DIR" 2>&1)" || { say "FAIL: ceph-stop.sh failed: $out"; rc=1; }
    if ip netns list | grep -q "^rmc${RADOS_MAIL_CEPH_NET}h"; then
        say "FAIL: namespaces left: $(ip netns list | grep "^rmc${RADOS_MAIL_CEPH_NET}h" | tr '\n' ' ')"
        rc=1
    fi
    if [[ "${HA_TEST_KEEP:-}" == 1 ]]; then say "kept $DIR"; else rm -rf -- "$DIR"; fi
    say "done in $SECONDS s (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$CI_DIR/ceph-start.sh" --hosts 3 "$DIR" 2>&1 | sed 's/^/ha-test:   /'
say "cluster started after $SECONDS s ($DIR, 10.77.$RADOS_MAIL_CEPH_NET.1-3)"
# Each test ends by waiting until every PG is active+clean again, so that the next
# fault meets 3 full copies. The OSDs' sparse files count as rotational disks, for
# which Ceph sleeps 0.1 s between recovery ops (osd_recovery_sleep_hdd): the few
# hundred objects a killed host missed took over 2 minutes to recover. No sleep.
for opt in "osd_recovery_sleep_hdd 0" "osd_recovery_max_active_hdd 8"; do
    # shellcheck disable=SC2086 # two words: option and value
    timeout 30 ceph --conf "$DIR/ceph.conf" config set osd $opt
done

# run.py selects by substring of the test id; keep the selection inside test_ha.
patterns=()
for t in "${tests[@]}"; do patterns+=("test_ha.*${t#test_}"); done
((${#patterns[@]})) || patterns=("test_ha.")
python3 "$REPO_ROOT/dovecot-glue/tests/run.py" "${patterns[@]}"
