#!/usr/bin/env bash
# Usage: ci/ceph-start.sh --hosts N [--fresh] [DIR]   (runs this script)
#
# Starts a multi-host Ceph cluster for HA tests: N hosts (3..9), each a network
# namespace made here, joined by veth pairs to a bridge made here, host I with
# address 10.77.<NET>.I and one mon and one bluestore OSD (sparse file) bound
# to it; the root namespace gets 10.77.<NET>.254 on the bridge so clients on
# this machine reach every host. No mgr, no systemd, no docker; cephx on.
# Pool $RADOS_MAIL_POOL (default mail): size 3, min_size 2, CRUSH failure
# domain host (one OSD per host, so also one copy per OSD).
# Everything lives under DIR, default $RADOS_MAIL_CEPH_DIR, else
# <repo>/target/ceph-hosts. Failure detection is tuned to seconds (see the
# ceph.conf written here and README.md, "Multi-host test cluster").
#   - DIR missing or empty: creates the network, the cluster and the pool.
#   - DIR holds a cluster whose daemons are stopped: removes stale namespaces
#     of the previous run, recreates the network, restarts them (data kept).
#   - daemons already running: says so, starts missing ones, checks the pool.
# Ready means all N OSDs are up and a `rados put` into the pool succeeded.
# Afterwards `. DIR/env.sh` exports CEPH_CONF and RADOS_MAIL_POOL. Cut or kill
# a host with ci/ceph-host.sh; stop everything with ci/ceph-stop.sh DIR.
# Environment:
#   RADOS_MAIL_CEPH_NET      third octet of the subnet 10.77.NET.0/24, also in
#                            the interface names (default 77; fixed at creation)
#   RADOS_MAIL_POOL          pool to create (default mail)
#   RADOS_MAIL_CEPH_TIMEOUT  bound in seconds for each wait (default 60)
set -euo pipefail

# shellcheck source=ci/ceph-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ceph-lib.sh"
# shellcheck source=ci/ceph-hosts-lib.sh
. "$CEPH_CI_DIR/ceph-hosts-lib.sh"

fresh=0
dir_arg=""
want_hosts=""
while (($#)); do
    case "$1" in
        --fresh) fresh=1 ;;
        --hosts) (($# >= 2)) || die "--hosts needs a number"; want_hosts="$2"; shift ;;
        -h | --help) print_usage; exit 0 ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *) [[ -z "$dir_arg" ]] || die "only one DIR allowed"; dir_arg="$1" ;;
    esac
    shift
done
[[ "$want_hosts" =~ ^[3-9]$ ]] || die "--hosts takes a number from 3 to 9"
((EUID == 0)) || die "the multi-host cluster needs root (ip netns)"

DIR="$(realpath -m -- "${dir_arg:-${RADOS_MAIL_CEPH_DIR:-$REPO_ROOT/target/ceph-hosts}}")"
DIR="$(resolve_dir "$DIR")"
CONF="$DIR/ceph.conf"
((${#DIR} + 15 <= 107)) || die "cluster directory path too long for admin sockets (max 92 chars): $DIR"
POOL="${RADOS_MAIL_POOL:-mail}"
TIMEOUT="${RADOS_MAIL_CEPH_TIMEOUT:-60}"
NET="${RADOS_MAIL_CEPH_NET:-77}"
[[ "$POOL" =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad RADOS_MAIL_POOL '$POOL'"
[[ "$TIMEOUT" =~ ^[1-9][0-9]{0,3}$ ]] || die "bad RADOS_MAIL_CEPH_TIMEOUT '$TIMEOUT'"
[[ "$NET" =~ ^[0-9]{1,3}$ ]] && ((NET <= 253)) || die "bad RADOS_MAIL_CEPH_NET '$NET' (0..253)"
HOSTS="$want_hosts"
unset CEPH_CONF CEPH_KEYRING CEPH_ARGS

for tool in ceph-mon ceph-osd ceph rados ceph-authtool monmaptool uuidgen flock timeout ip; do
    command -v "$tool" >/dev/null || die "'$tool' not found: run ci/install-deps.sh"
done

fail() {
    local f
    log "error: $*"
    for f in "$DIR"/log/*.start.log "$DIR"/log/*.mkfs.log; do
        [[ -s "$f" ]] || continue
        printf '\n==> %s (last 10 lines) <==\n' "$f" >&2
        tail -n 10 -- "$f" >&2
    done
    log "daemons left as they are; inspect $DIR/log, then ci/ceph-stop.sh [--wipe] $DIR"
    exit 1
}

# retry DESCRIPTION CMD...: runs CMD until it succeeds, for at most $TIMEOUT s.
retry() {
    local what="$1" out deadline=$((SECONDS + TIMEOUT))
    shift
    while :; do
        out="$("$@" 2>&1)" && return 0
        ((SECONDS < deadline)) || fail "$what: no success within ${TIMEOUT} s; last output: $out"
        sleep 0.2
    done
}

ceph_cmd() { timeout -k 2 15 ceph --conf "$CONF" --connect-timeout 10 "$@"; }
rados_cmd() {
    timeout -k 2 15 rados --conf "$CONF" --client_mount_timeout 10 \
        --rados_osd_op_timeout 10 --rados_mon_op_timeout 10 "$@"
}

write_conf() {
    local fsid="$1" i mon_host=""
    for ((i = 1; i <= HOSTS; i++)); do
        mon_host+="${mon_host:+,}[v2:$(host_addr "$i"):$HOSTS_MON_PORT]"
    done
    cat >"$CONF" <<EOF
$CEPH_CONF_MARKER
# Multi-host cluster ($HOSTS hosts, network namespaces $(host_ns 1)..); recreate with:
# ci/ceph-start.sh --hosts $HOSTS --fresh $DIR
[global]
fsid = $fsid
mon_host = $mon_host
ms_bind_ipv6 = false
ms_bind_msgr1 = false
ms_bind_msgr2 = true
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
run_dir = $DIR/run
crash_dir = $DIR/crash
osd_pool_default_size = 3
osd_pool_default_min_size = 2
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
# Failure domain host: every copy on another host (namespace).
osd_crush_chooseleaf_type = 1
mon_data_avail_warn = 2
mon_data_avail_crit = 1
# Failure detection in seconds instead of ~20-30 s (defaults in brackets):
# OSDs ping their peers every second [6] and report a peer that has not
# answered for 4 s [20]; the mon does not stretch the grace for "laggy" OSDs.
# A killed OSD is reported at once (connection refused). Two reporters from
# two hosts are needed [2], so one cut-off host cannot mark the others down.
osd_heartbeat_interval = 1
osd_heartbeat_grace = 4
mon_osd_adjust_heartbeat_grace = false
mon_osd_min_down_reporters = 2
# A down OSD is marked out after 60 s [600]; with 3 hosts and size 3 there is
# nowhere to move its copies, so this only shortens the degraded report.
mon_osd_down_out_interval = 60
mon_osd_adjust_down_out_interval = false
# Clients and daemons try another mon after 1 s [3] and notice a silent mon
# (cut link) after 3 s [30]: an OSD's failure reports go to its mon, so this
# bounds how long a report sent to a cut-off mon is lost.
mon_client_hunt_interval = 1
mon_client_ping_interval = 1
mon_client_ping_timeout = 3

[mon]
mon_data = $DIR/\$name
keyring = \$mon_data/keyring
paxos_propose_interval = 0.1
# The mons only change the maps (e.g. mark an OSD down) with a quorum. When a
# mon dies with its host, the others notice after 2 x mon_lease = 2 s [10 s]
# (lease ack / accept timeout) and elect a new quorum after the election
# timeout, 1 s [5 s], as the dead mon never answers.
mon_lease = 1
mon_election_timeout = 1
mon_cluster_log_file = $DIR/log/cluster.\$name.log
log_file = $DIR/log/\$name.log
pid_file = $DIR/run/\$name.pid
admin_socket = $DIR/run/\$name.asok

[osd]
osd_data = $DIR/\$name
keyring = \$osd_data/keyring
osd_objectstore = bluestore
# Sparse 10 GiB file at \$osd_data/block (bluestore_block_path must stay unset).
bluestore_block_create = true
bluestore_block_size = 10737418240
bluestore_fsck_on_mkfs = false
bdev_aio_poll_ms = 10
# $HOSTS OSDs share the memory of one machine: 1 GiB each [4 GiB], as in the
# single-node cluster (bluestore's cache autotunes within it). Ceph ignores
# values below its minimum of 896 MiB (osd_memory_base + osd_memory_cache_min).
osd_memory_target = 1073741824
log_file = $DIR/log/\$name.log
pid_file = $DIR/run/\$name.pid
admin_socket = $DIR/run/\$name.asok

[client]
# Client op timeouts are deliberately unset: rados-mail sets its own.
# A client whose op waits on a dead OSD does not hear that it was marked down
# until it asks the mon for a newer map, which it does once the op is older
# than objecter_timeout, checked every objecter_tick_interval: 2 s and 1 s
# [10 s and 5 s]. With the defaults a write stalls ~10 s after the mons knew.
objecter_timeout = 2
objecter_tick_interval = 1
keyring = $DIR/ceph.client.admin.keyring
log_file = $DIR/log/\$name.log
admin_socket =
EOF
    for ((i = 1; i <= HOSTS; i++)); do
        printf '\n[%s]\npublic_addr = %s\n' "$(mon_name "$i")" "$(host_addr "$i")" >>"$CONF"
        printf '\n[%s]\npublic_addr = %s\ncluster_addr = %s\ncrush_location = root=default host=h%s\n' \
            "$(osd_name "$i")" "$(host_addr "$i")" "$(host_addr "$i")" "$i" >>"$CONF"
    done
}

new_keyring() {
    local file="$1" name="$2"
    shift 2
    ceph-authtool --create-keyring "$file" --gen-key -n "$name" "$@" >/dev/null
}

create_cluster() {
    local fsid i osd monmap_args=() mkfs_pids=() uuids=()
    check_net_free
    fsid="$(uuidgen)"
    mkdir -p -- "$DIR/run" "$DIR/log" "$DIR/crash"
    printf 'HOSTS=%s\nNET=%s\n' "$HOSTS" "$NET" >"$DIR/hosts.env"
    write_conf "$fsid"

    new_keyring "$DIR/ceph.client.admin.keyring" client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *'
    new_keyring "$DIR/mon.keyring" mon. --cap mon 'allow *'
    ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/ceph.client.admin.keyring" >/dev/null
    for ((i = 1; i <= HOSTS; i++)); do
        osd="$(osd_name "$i")"
        mkdir -p -- "$DIR/$osd"
        new_keyring "$DIR/$osd/keyring" "$osd" \
            --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *'
        ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/$osd/keyring" >/dev/null
        uuids+=("$(uuidgen)")
        # mkfs needs no mon: run it in the background while the mons start.
        timeout -k 5 "$TIMEOUT" ceph-osd --conf "$CONF" --mkfs -i "$((i - 1))" \
            --osd-uuid "${uuids[-1]}" --no-mon-config </dev/null \
            >"$DIR/log/$osd.mkfs.log" 2>&1 9>&- &
        mkfs_pids+=($!)
        monmap_args+=(--addv "${HOSTS_LETTERS[$((i - 1))]}" "[v2:$(host_addr "$i"):$HOSTS_MON_PORT]")
    done
    monmaptool --create --fsid "$fsid" "${monmap_args[@]}" "$DIR/monmap" >/dev/null

    ensure_bridge
    for ((i = 1; i <= HOSTS; i++)); do
        ensure_host_net "$i"
        timeout -k 5 "$TIMEOUT" ceph-mon --conf "$CONF" --mkfs -i "${HOSTS_LETTERS[$((i - 1))]}" \
            --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring" \
            >"$DIR/log/$(mon_name "$i").mkfs.log" 2>&1 || fail "ceph-mon --mkfs failed on host $i"
        start_host_daemon "$DIR" "$i" "$(mon_name "$i")" ceph-mon || true
    done
    for ((i = 1; i <= HOSTS; i++)); do
        retry "register $(osd_name "$i")" ceph_cmd osd new "${uuids[$((i - 1))]}" "$((i - 1))"
    done
    ensure_pool
    for ((i = 1; i <= HOSTS; i++)); do
        wait "${mkfs_pids[$((i - 1))]}" || fail "ceph-osd --mkfs failed for $(osd_name "$i")"
        start_host_daemon "$DIR" "$i" "$(osd_name "$i")" ceph-osd || true
    done
}

ensure_pool() {
    grep -qxF -- "$POOL" "$DIR/pools" 2>/dev/null && return 0
    retry "create pool $POOL" ceph_cmd osd pool create "$POOL" 8 8 replicated
    retry "set size of $POOL" ceph_cmd osd pool set "$POOL" size 3
    retry "set min_size of $POOL" ceph_cmd osd pool set "$POOL" min_size 2
    retry "enable application on $POOL" ceph_cmd osd pool application enable "$POOL" rados
    printf '%s\n' "$POOL" >>"$DIR/pools"
}

all_osds_up() {
    local out
    out="$(ceph_cmd osd stat -f json)" || return 1
    grep -q "\"num_up_osds\":$HOSTS," <<<"$out" || { printf '%s\n' "$out"; return 1; }
}

wait_writable() {
    local obj="ci-ready-probe.$$"
    retry "wait for all $HOSTS OSDs to be up" all_osds_up
    retry "write a probe object to pool $POOL" rados_cmd -p "$POOL" put "$obj" "$CONF"
    retry "remove the probe object" rados_cmd -p "$POOL" rm "$obj"
}

write_env() {
    {
        printf '# Generated by ci/ceph-start.sh --hosts; source it to use the test cluster.\n'
        printf 'export CEPH_CONF=%q\n' "$CONF"
        printf 'export RADOS_MAIL_POOL=%q\n' "$POOL"
    } >"$DIR/env.sh.tmp"
    mv -f -- "$DIR/env.sh.tmp" "$DIR/env.sh"
}

is_our_dir "$DIR" || die "$DIR is not empty and was not made by ci/ceph-start.sh; not touching it"
if [[ -f "$CONF" && ! -f "$DIR/hosts.env" ]]; then
    die "$DIR holds a single-node cluster; use another DIR for --hosts"
fi
t0="$EPOCHREALTIME"
lock_dir "$DIR"

if [[ -f "$DIR/hosts.env" ]]; then
    hosts_load "$DIR"
    if ((fresh)) || [[ ! -e "$DIR/.initialised" ]]; then
        ((fresh)) || log "$DIR holds an unfinished cluster (interrupted start?): creating it anew"
        hosts_stop "$DIR"
        find "$DIR" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf -- {} +
        HOSTS="$want_hosts"
        NET="${RADOS_MAIL_CEPH_NET:-77}"
    elif [[ "$want_hosts" != "$HOSTS" ]]; then
        die "cluster in $DIR has $HOSTS hosts; use --fresh to change it"
    fi
fi

started=()
if [[ -e "$DIR/.initialised" ]]; then
    if [[ -n "${RADOS_MAIL_CEPH_NET:-}" && "$RADOS_MAIL_CEPH_NET" != "$NET" ]]; then
        log "warning: cluster in $DIR was created with RADOS_MAIL_CEPH_NET=$NET; ignoring $RADOS_MAIL_CEPH_NET"
    fi
    if ! hosts_any_running "$DIR"; then
        # Nothing of ours runs: whatever namespaces are left are stale.
        if link_exists "$(bridge_name)" || ns_exists "$(host_ns 1)"; then
            log "removing stale namespaces and links of a previous run ($(host_ns 1)..)"
        fi
        remove_net "$DIR"
    fi
    ensure_bridge
    for ((i = 1; i <= HOSTS; i++)); do ensure_host_net "$i"; done
    for kind in mon osd; do
        for ((i = 1; i <= HOSTS; i++)); do
            name="$("${kind}_name" "$i")"
            if start_host_daemon "$DIR" "$i" "$name" "ceph-$kind"; then started+=("$name"); fi
        done
    done
    if ((${#started[@]} == 0)); then mode="already running"; else mode="restarted ${started[*]}"; fi
else
    mode="created"
    create_cluster
fi

ensure_pool
wait_writable
write_env
touch "$DIR/.initialised"
log "cluster ready in $(elapsed_since "$t0") s ($mode; $HOSTS hosts $(host_addr 1)..$(host_addr "$HOSTS"), mon v2 port $HOSTS_MON_PORT, pool $POOL size 3 min_size 2, $DIR)"
log "use it with: . $DIR/env.sh"
