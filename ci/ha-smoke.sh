#!/usr/bin/env bash
# Usage: ci/ha-smoke.sh
#
# Smoke test of the multi-host cluster (ci/ceph-start.sh --hosts 3): starts a
# fresh 3-host cluster in a temporary directory, writes 100 objects with
# `rados`, then for each fault
#   1. kill host 3 (SIGKILL of its mon and OSD), then start it again;
#   2. link-down host 2 (its daemons keep running, cut off), then link-up;
# measures the stall (from the fault to `ceph -s` showing the OSD down, and to
# the first successful write of a new object), checks that all 100 objects are
# readable and rewritable while the host is out, heals it, waits until every
# PG is active+clean and reads all objects again. Finally stops the cluster and
# removes its namespaces (also on failure). Prints one `ha-smoke:` line per
# figure; exits non-zero on any failure.
# Environment:
#   RADOS_MAIL_CEPH_NET  subnet octet of the temporary cluster (default 78)
#   HA_SMOKE_BOUND       bound in seconds for each op (default 30)
#   HA_SMOKE_STALL_MAX   longest stall accepted, in seconds (default 20)
#   HA_SMOKE_KEEP=1      keep the cluster directory (not the cluster) on exit
set -euo pipefail

CI_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export RADOS_MAIL_CEPH_NET="${RADOS_MAIL_CEPH_NET:-78}"
BOUND="${HA_SMOKE_BOUND:-30}"
STALL_MAX="${HA_SMOKE_STALL_MAX:-20}"
[[ "$STALL_MAX" =~ ^[1-9][0-9]{0,2}$ ]] || { echo "bad HA_SMOKE_STALL_MAX" >&2; exit 2; }
[[ "$BOUND" =~ ^[1-9][0-9]{0,2}$ ]] || { echo "bad HA_SMOKE_BOUND" >&2; exit 2; }
N_OBJ=100
DIR="$(mktemp -d /tmp/rm-ha.XXXXXX)"
CONF="$DIR/ceph.conf"
unset CEPH_CONF CEPH_KEYRING CEPH_ARGS RADOS_MAIL_CEPH_DIR RADOS_MAIL_DATA_POOL
export RADOS_MAIL_POOL=mail

say() { printf 'ha-smoke: %s\n' "$*"; }
failed=0
fail() { say "FAIL: $*"; failed=1; }

cleanup() {
    local rc=$?
    local out
    out="$("$CI_DIR/ceph-stop.sh" "$DIR" 2>&1)" || { say "FAIL: ceph-stop.sh failed: $out"; rc=1; }
    if ip netns list | grep -q "^rmc${RADOS_MAIL_CEPH_NET}h"; then
        say "FAIL: namespaces left: $(ip netns list | grep "^rmc${RADOS_MAIL_CEPH_NET}h" | tr '\n' ' ')"
        rc=1
    fi
    if [[ "${HA_SMOKE_KEEP:-}" == 1 ]]; then say "kept $DIR"; else rm -rf -- "$DIR"; fi
    exit "$rc"
}
trap cleanup EXIT

now() { printf '%s\n' "$EPOCHREALTIME"; }
since() { LC_ALL=C awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

R() {
    timeout -k 2 "$((BOUND + 5))" rados --conf "$CONF" -p "$RADOS_MAIL_POOL" \
        --client_mount_timeout "$BOUND" --rados_osd_op_timeout "$BOUND" \
        --rados_mon_op_timeout "$BOUND" "$@"
}
C() { timeout -k 2 10 ceph --conf "$CONF" --connect-timeout 8 "$@"; }
export -f R
export CONF BOUND DIR

# check_obj I GEN: reads object I and compares it with generation GEN's
# content; with REWRITE=1 also writes generation GEN+1 and reads it back.
check_obj() {
    local i="$1" gen="$2" want got
    want="$(printf 'object %s generation %s\n' "$i" "$gen")"
    got="$(R get "ha-obj-$i" - 2>&1)" || { echo "ha-obj-$i: read failed: $got"; return 1; }
    [[ "$got" == "$want" ]] || { echo "ha-obj-$i: read '$got', expected '$want'"; return 1; }
    [[ "${REWRITE:-0}" == 1 ]] || return 0
    want="$(printf 'object %s generation %s\n' "$i" "$((gen + 1))")"
    printf '%s\n' "$want" >"$DIR/data/$i"
    R put "ha-obj-$i" "$DIR/data/$i" || { echo "ha-obj-$i: write failed"; return 1; }
    got="$(R get "ha-obj-$i" - 2>&1)" || { echo "ha-obj-$i: read after write failed"; return 1; }
    [[ "$got" == "$want" ]] || { echo "ha-obj-$i: read '$got' after writing '$want'"; return 1; }
}
export -f check_obj

# all_objects GEN [rewrite]: checks every object (4 clients at a time).
all_objects() {
    local gen="$1" t out
    t="$(now)"
    if out="$(seq 1 "$N_OBJ" | REWRITE="${2:+1}" xargs -P 4 -I{} bash -c 'check_obj {} '"$gen" 2>&1)"; then
        say "  $N_OBJ/$N_OBJ objects read${2:+, rewritten and read back} in $(since "$t") s"
    else
        fail "objects: $(head -n 5 <<<"$out")"
    fi
}

num_up() { C -s -f json 2>/dev/null | grep -o '"num_up_osds":[0-9]*' | cut -d: -f2; }
full_quorum() { C -s -f json 2>/dev/null | grep -q '"quorum_names":\["a","b","c"\]'; }

# Waits until all 3 mons are in quorum, all 3 OSDs are up and every PG of
# the pool is active+clean, so that every fault starts from the same state.
wait_clean() {
    local t deadline pool pg st ok
    t="$(now)"
    deadline=$((SECONDS + 90))
    pool="$(C osd pool ls detail | awk -v p="'$RADOS_MAIL_POOL'" '$3 == p { print $2 }')"
    while :; do
        ok=1
        [[ "$(num_up)" == 3 ]] && full_quorum || ok=0
        if ((ok)); then
            for pg in 0 1 2 3 4 5 6 7; do
                st="$(C pg "$pool.$pg" query 2>/dev/null | grep -m1 '"state"' || true)"
                [[ "$st" == *'"active+clean"'* ]] || { ok=0; break; }
            done
        fi
        ((ok)) && break
        ((SECONDS < deadline)) || { fail "cluster not clean within 90 s (pg $pool.$pg: $st)"; return 1; }
        sleep 0.5
    done
    say "  3 mons in quorum, 3 OSDs up, 8/8 PGs active+clean after $(since "$t") s"
}

# fault NAME HOST ACTION HEAL GEN: one fault scenario.
fault() {
    local name="$1" host="$2" action="$3" heal="$4" gen="$5" t0 down_s write_s poll i
    say "--- $name: ci/ceph-host.sh DIR $host $action"
    "$CI_DIR/ceph-host.sh" "$DIR" "$host" "$action" | sed 's/^/ha-smoke:   /'
    t0="$(now)"
    # Background: time until `ceph -s` shows the OSD down.
    (
        while [[ "$(num_up)" != 2 ]]; do
            (($(since "$t0" | cut -d. -f1) < BOUND)) || { echo never; exit; }
            sleep 0.2
        done
        since "$t0"
    ) >"$DIR/down.$gen" &
    poll=$!
    # Foreground: the first write of a new object (one client, retried).
    printf 'new object %s\n' "$gen" >"$DIR/data/new-$gen"
    write_s=""
    for ((i = 0; i < 3; i++)); do
        if R put "ha-new-$gen" "$DIR/data/new-$gen" 2>/dev/null; then
            write_s="$(since "$t0")"
            break
        fi
    done
    wait "$poll" || true
    down_s="$(cat "$DIR/down.$gen")"
    [[ "$down_s" != never && -n "$down_s" ]] || fail "$name: ceph -s never showed the OSD down within $BOUND s"
    [[ -n "$write_s" ]] || fail "$name: no new object written"
    say "  $name: osd down in ceph -s after ${down_s:-never} s; first new write after ${write_s:-never} s"
    for i in "$down_s" "$write_s"; do
        [[ -z "$i" || "$i" == never ]] && continue
        awk -v s="$i" -v m="$STALL_MAX" 'BEGIN { exit !(s <= m) }' ||
            fail "$name: stall of $i s is longer than $STALL_MAX s"
    done
    printf '%s %s %s\n' "$name" "${down_s:-never}" "${write_s:-never}" >>"$DIR/figures"
    all_objects "$gen" rewrite
    say "  heal: ci/ceph-host.sh DIR $host $heal"
    "$CI_DIR/ceph-host.sh" "$DIR" "$host" "$heal" | sed 's/^/ha-smoke:   /'
    wait_clean || return 0
    all_objects "$((gen + 1))"
}

t="$(now)"
"$CI_DIR/ceph-start.sh" --hosts 3 "$DIR" 2>&1 | sed 's/^/ha-smoke:   /'
start_s="$(since "$t")"
say "cluster started in $start_s s"
awk -v s="$start_s" 'BEGIN { exit !(s < 120) }' || fail "start took $start_s s (bound 120 s)"

mkdir -p "$DIR/data"
t="$(now)"
for ((i = 1; i <= N_OBJ; i++)); do
    printf 'object %s generation 1\n' "$i" >"$DIR/data/$i"
done
if seq 1 "$N_OBJ" | xargs -P 4 -I{} bash -c 'R put ha-obj-{} "$DIR/data/{}"'; then
    say "wrote $N_OBJ objects in $(since "$t") s"
else
    fail "initial writes"
fi
wait_clean || true
all_objects 1

fault "kill host 3" 3 kill start 1
fault "link-down host 2" 2 link-down link-up 2

if ((failed)); then
    say "FAILED"
    exit 1
fi
say "figures (fault, s to osd down in ceph -s, s to first new write):"
sed 's/^/ha-smoke:   /' "$DIR/figures"
say "OK"
