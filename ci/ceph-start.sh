#!/usr/bin/env bash
# Usage: ci/ceph-start.sh [--fresh] [--osds N] [DIR]
#        ci/ceph-start.sh --hosts N [--fresh] [DIR]
#
# Starts a single-node Ceph cluster for tests: one mon, one bluestore OSD on a
# sparse file (or N of them: --osds), no mgr, cephx on, bound to 127.0.0.1, no
# systemd or docker.
# Everything (data, keyrings, logs, pid files, sockets) lives under DIR,
# default $RADOS_MAIL_CEPH_DIR, else <repo>/target/ceph.
#   - DIR missing or empty: creates the cluster and its pools.
#   - DIR holds a cluster whose daemons are stopped: restarts them (data kept).
#   - daemons already running: only checks that the pool is writable.
# Ready means every OSD is active and a `rados put` into each pool succeeded.
# Afterwards `. DIR/env.sh` exports CEPH_CONF and RADOS_MAIL_POOL, and with 3 or
# more OSDs RADOS_MAIL_DATA_POOL (else it unsets it). Stop with ci/ceph-stop.sh.
#
# Options:
#   --fresh      stop the daemons, wipe DIR and create a new cluster
#   --osds N     N (1..9) OSDs, default 1 for a new cluster; an existing cluster
#                keeps its OSDs and gains the missing ones (it never loses any).
#                With N >= 3 there is also an erasure-coded pool
#                $RADOS_MAIL_POOL-ec (profile rados-mail-k2m1: k=2 m=1,
#                crush-failure-domain=osd, no partial overwrites), exported as
#                RADOS_MAIL_DATA_POOL
#   --hosts N    a multi-host cluster instead: N (3..9) network namespaces with
#                one mon and one OSD each, pool size 3 min_size 2, default DIR
#                <repo>/target/ceph-hosts (see ci/ceph-start-hosts.sh --help)
#   -h, --help   show this help
# Environment:
#   RADOS_MAIL_CEPH_DIR      default DIR
#   RADOS_MAIL_CEPH_PORT     mon port, msgr v2 only (default 21300; fixed at creation).
#                            The test clusters' ports (21300..21330) lie below Linux's
#                            ephemeral range (32768..60999): a port in that range may be
#                            held by any outgoing connection when a mon (re)starts
#   RADOS_MAIL_POOL          pool to create (default mail)
#   RADOS_MAIL_CEPH_TIMEOUT  bound in seconds for each wait (default 60)
set -euo pipefail

# shellcheck source=ci/ceph-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ceph-lib.sh"

fresh=0
osds_arg=""
dir_arg=""
# The multi-host mode is a script of its own; the single-node path is unchanged.
for arg in "$@"; do
    [[ "$arg" != --hosts ]] || exec "$CEPH_CI_DIR/ceph-start-hosts.sh" "$@"
done
while (($#)); do
    case "$1" in
        --fresh) fresh=1 ;;
        --osds)
            (($# >= 2)) || die "--osds needs a value"
            [[ "$2" =~ ^[1-9]$ ]] || die "bad --osds '$2' (1..9)"
            osds_arg="$2"
            shift
            ;;
        -h | --help) print_usage; exit 0 ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *) [[ -z "$dir_arg" ]] || die "only one DIR allowed"; dir_arg="$1" ;;
    esac
    shift
done

DIR="$(resolve_dir "$dir_arg")"
CONF="$DIR/ceph.conf"
# Unix socket paths are limited to 107 bytes; the OSD's admin socket is needed.
((${#DIR} + 15 <= 107)) || die "cluster directory path too long for admin sockets (max 92 chars): $DIR"
PORT="${RADOS_MAIL_CEPH_PORT:-21300}"
POOL="${RADOS_MAIL_POOL:-mail}"
TIMEOUT="${RADOS_MAIL_CEPH_TIMEOUT:-60}"
if ! [[ "$PORT" =~ ^[1-9][0-9]{0,4}$ ]] || ((PORT > 65535)); then
    die "bad RADOS_MAIL_CEPH_PORT '$PORT'"
fi
[[ "$POOL" =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad RADOS_MAIL_POOL '$POOL'"
EC_POOL="$POOL-ec"
EC_PROFILE=rados-mail-k2m1
# The mon commands that make $EC_POOL.
EC_POOL_CMDS=("osd erasure-code-profile set $EC_PROFILE k=2 m=1 crush-failure-domain=osd"
    "osd pool create $EC_POOL 8 8 erasure $EC_PROFILE"
    "osd pool application enable $EC_POOL rados")
[[ "$TIMEOUT" =~ ^[1-9][0-9]{0,3}$ ]] || die "bad RADOS_MAIL_CEPH_TIMEOUT '$TIMEOUT'"

# A caller's environment must not point the daemons (or our admin commands) elsewhere.
unset CEPH_CONF CEPH_KEYRING CEPH_ARGS

for tool in ceph-mon ceph-osd ceph rados ceph-authtool monmaptool uuidgen flock timeout; do
    command -v "$tool" >/dev/null || die "'$tool' not found: run ci/install-deps.sh"
done

# Prints the tails of the daemon logs, then exits non-zero.
fail() {
    local f n name logs=("$DIR"/log/mon.a.{start.,}log)
    log "error: $*"
    while read -r name; do logs+=("$DIR/log/$name".{start.,}log); done < <(cluster_osds "$DIR")
    for f in "${logs[@]}"; do
        [[ -s "$f" ]] || continue
        n=25
        [[ "$f" != *.start.log ]] || n=10
        printf '\n==> %s (last %s lines) <==\n' "$f" "$n" >&2
        tail -n "$n" -- "$f" >&2
    done
    log "daemons left as they are; inspect $DIR/log, then ci/ceph-stop.sh [--wipe] $DIR"
    exit 1
}

# Daemons this run expects to be alive; a wait fails fast when one of them died.
expected=()
check_alive() {
    local entry
    for entry in "${expected[@]}"; do
        daemon_pid "$DIR" "${entry%%:*}" "${entry#*:}" >/dev/null ||
            fail "${entry%%:*} is not running any more"
    done
}

# retry DESCRIPTION CMD...: runs CMD until it succeeds, for at most $TIMEOUT s.
retry() {
    local what="$1" out deadline=$((SECONDS + TIMEOUT))
    shift
    while :; do
        out="$("$@" 2>&1)" && return 0
        check_alive
        ((SECONDS < deadline)) || fail "$what: no success within ${TIMEOUT} s; last output: $out"
        sleep 0.2
    done
}

# Admin commands; every one bounded so a dead mon cannot hang us.
ceph_cmd() { timeout -k 2 15 ceph --conf "$CONF" --connect-timeout 10 "$@"; }
rados_cmd() {
    timeout -k 2 15 rados --conf "$CONF" --client_mount_timeout 10 \
        --rados_osd_op_timeout 10 --rados_mon_op_timeout 10 "$@"
}

# mon_batch WHAT LINE...: the mon commands LINE... (words split on blanks) through one
# interactive `ceph` (one start and one connection instead of ~0.7 s per command); when
# that reports an error, each again on its own with retry (all of them are idempotent).
mon_batch() {
    local what="$1" line out
    shift
    if out="$(printf '%s\n' "$@" | ceph_cmd 2>&1)" && ! grep -q '^Error' <<<"$out"; then
        return 0
    fi
    for line in "$@"; do
        # shellcheck disable=SC2086 # the line is a command's words
        retry "$what: $line" ceph_cmd $line
    done
}

# Fails when something (e.g. another cluster) already listens on the mon port.
check_port_free() {
    if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; then
        die "127.0.0.1:$1 is already in use (another cluster?); pick another RADOS_MAIL_CEPH_PORT"
    fi
}

# start_daemon NAME BINARY: starts one daemon unless it runs already.
start_daemon() {
    local name="$1" bin="$2"
    if ! daemon_pid "$DIR" "$name" "$bin" >/dev/null; then
        rm -f -- "$DIR/run/$name.pid" "$DIR/run/$name.asok"
        # The parent returns once the daemon has initialised (or failed to).
        # 9>&-: the daemon must not inherit (and so keep holding) our lock.
        timeout -k 5 "$TIMEOUT" "$bin" --conf "$CONF" -i "${name#*.}" \
            </dev/null >"$DIR/log/$name.start.log" 2>&1 9>&- || fail "$bin -i ${name#*.} failed to start"
        started+=("$name")
    fi
    expected+=("$name:$bin")
}

# Removes everything in DIR except the lock we hold.
wipe_dir() {
    find "$DIR" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf -- {} +
}

write_conf() {
    local fsid="$1"
    cat >"$CONF" <<EOF
$CEPH_CONF_MARKER
# Single-node cluster for tests; recreate with: ci/ceph-start.sh --fresh $DIR
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$PORT]
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv6 = false
ms_bind_msgr1 = false
ms_bind_msgr2 = true
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
run_dir = $DIR/run
crash_dir = $DIR/crash
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_data_avail_warn = 2
mon_data_avail_crit = 1

[mon]
mon_data = $DIR/\$name
keyring = \$mon_data/keyring
paxos_propose_interval = 0.1
mon_cluster_log_file = $DIR/log/cluster.log
log_file = $DIR/log/\$name.log
pid_file = $DIR/run/\$name.pid
admin_socket = $DIR/run/\$name.asok

[osd]
osd_data = $DIR/\$name
keyring = \$osd_data/keyring
osd_objectstore = bluestore
# Sparse 20 GiB file at \$osd_data/block (bluestore_block_path must stay unset).
bluestore_block_create = true
bluestore_block_size = 21474836480
bluestore_fsck_on_mkfs = false
bdev_aio_poll_ms = 10
osd_memory_target = 1073741824
log_file = $DIR/log/\$name.log
pid_file = $DIR/run/\$name.pid
admin_socket = $DIR/run/\$name.asok

[client]
# Client timeouts are deliberately unset: rados-mail sets its own.
keyring = $DIR/ceph.client.admin.keyring
log_file = $DIR/log/\$name.log
admin_socket =
EOF
}

# keyring FILE NAME CAPS...: new keyring with a fresh key for NAME.
new_keyring() {
    local file="$1" name="$2"
    shift 2
    ceph-authtool --create-keyring "$file" --gen-key -n "$name" "$@" >/dev/null
}

create_cluster() {
    local fsid i
    check_port_free "$PORT"
    fsid="$(uuidgen)"
    mkdir -p -- "$DIR/run" "$DIR/log" "$DIR/crash"
    write_conf "$fsid"

    # cephx: the mon's keyring also carries client.admin and the OSDs, so no auth
    # round trips are needed later.
    new_keyring "$DIR/ceph.client.admin.keyring" client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *'
    new_keyring "$DIR/mon.keyring" mon. --cap mon 'allow *'
    ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/ceph.client.admin.keyring" >/dev/null

    # OSD mkfs needs no mon (the fsid is in ceph.conf): it runs in the background
    # while the mon is created and the OSD ids and the pool are registered.
    mkfs_pids=()
    for ((i = 0; i < OSDS; i++)); do
        prepare_osd "$i"
        ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/osd.$i/keyring" >/dev/null
    done

    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$PORT]" "$DIR/monmap" >/dev/null
    timeout -k 5 "$TIMEOUT" ceph-mon --conf "$CONF" --mkfs -i a --monmap "$DIR/monmap" \
        --keyring "$DIR/mon.keyring" >"$DIR/log/mon.a.mkfs.log" 2>&1 ||
        fail "ceph-mon --mkfs failed: $(tail -n 5 "$DIR/log/mon.a.mkfs.log")"
    start_daemon mon.a ceph-mon
    # The OSD ids and the pools, in one batch.
    local cmds=()
    for ((i = 0; i < OSDS; i++)); do cmds+=("osd new $(cat "$DIR/osd.$i.uuid") $i"); done
    cmds+=("osd pool create $POOL 8 8 replicated" "osd pool application enable $POOL rados")
    ((OSDS < 3)) || cmds+=("${EC_POOL_CMDS[@]}")
    mon_batch "register the OSDs and create the pools" "${cmds[@]}"
    printf '%s\n' "$POOL" >>"$DIR/pools"
    ((OSDS < 3)) || printf '%s\n' "$EC_POOL" >>"$DIR/pools"
    finish_osds 0
}

# prepare_osd ID: the OSD's keyring and data directory, its mkfs started in the
# background (its PID added to mkfs_pids). Its UUID is kept in DIR/osd.ID.uuid, so
# that an interrupted addition registers the same OSD again.
prepare_osd() {
    local i="$1"
    [[ -s "$DIR/osd.$i.uuid" ]] || uuidgen >"$DIR/osd.$i.uuid"
    rm -rf -- "${DIR:?}/osd.$i"
    mkdir -p -- "$DIR/osd.$i"
    new_keyring "$DIR/osd.$i/keyring" "osd.$i" \
        --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *'
    # 9>&-: the process must not inherit (and so keep holding) our lock.
    timeout -k 5 "$TIMEOUT" ceph-osd --conf "$CONF" --mkfs -i "$i" --osd-uuid "$(cat "$DIR/osd.$i.uuid")" \
        --no-mon-config </dev/null >"$DIR/log/osd.$i.mkfs.log" 2>&1 9>&- &
    mkfs_pids[i]=$!
}

# finish_osds FIRST: waits for the mkfs of OSDs FIRST..OSDS-1 and starts them; then
# records OSDS as the cluster's number of OSDs.
finish_osds() {
    local i
    for ((i = $1; i < OSDS; i++)); do
        wait "${mkfs_pids[i]}" || fail "ceph-osd --mkfs -i $i failed: $(tail -n 5 "$DIR/log/osd.$i.mkfs.log")"
    done
    start_osds "$1" "$OSDS"
    printf '%s\n' "$OSDS" >"$DIR/osds"
}

# start_osds FIRST END: starts OSDs FIRST..END-1 that do not run yet, all at once (each
# takes ~0.8 s to initialise), as start_daemon does one.
start_osds() {
    local i name pids=() names=()
    for ((i = $1; i < $2; i++)); do
        name="osd.$i"
        expected+=("$name:ceph-osd")
        daemon_pid "$DIR" "$name" ceph-osd >/dev/null && continue
        rm -f -- "$DIR/run/$name.pid" "$DIR/run/$name.asok"
        timeout -k 5 "$TIMEOUT" ceph-osd --conf "$CONF" -i "$i" \
            </dev/null >"$DIR/log/$name.start.log" 2>&1 9>&- &
        pids+=($!)
        names+=("$name")
    done
    for i in "${!pids[@]}"; do
        wait "${pids[i]}" || fail "ceph-osd -i ${names[i]#osd.} failed to start"
        started+=("${names[i]}")
    done
}

# add_osds FROM: adds OSDs FROM..OSDS-1 to the running cluster (its keys go to the
# mon with `ceph auth import`, the mon keyring being read only at its mkfs).
add_osds() {
    local i
    mkfs_pids=()
    for ((i = $1; i < OSDS; i++)); do
        log "adding osd.$i"
        prepare_osd "$i"
        retry "import the key of osd.$i" ceph_cmd auth import -i "$DIR/osd.$i/keyring"
        retry "register osd.$i" ceph_cmd osd new "$(cat "$DIR/osd.$i.uuid")" "$i"
    done
    finish_osds "$1"
}

# ensure_pool: creates $POOL (idempotent) and records it in DIR/pools.
ensure_pool() {
    grep -qxF -- "$POOL" "$DIR/pools" 2>/dev/null && return 0
    retry "create pool $POOL" ceph_cmd osd pool create "$POOL" 8 8 replicated
    retry "enable application on $POOL" ceph_cmd osd pool application enable "$POOL" rados
    printf '%s\n' "$POOL" >>"$DIR/pools"
}

# ensure_ec_pool: creates the erasure-coded $EC_POOL (k=2, m=1: a chunk on each of
# three OSDs, crush-failure-domain=osd as they share one host; idempotent) and
# records it in DIR/pools. Partial overwrites stay off (allow_ec_overwrites): the
# mail store writes bodies whole.
ensure_ec_pool() {
    grep -qxF -- "$EC_POOL" "$DIR/pools" 2>/dev/null && return 0
    mon_batch "create the erasure-coded pool $EC_POOL" "${EC_POOL_CMDS[@]}"
    printf '%s\n' "$EC_POOL" >>"$DIR/pools"
}

# True once OSD $1 (osd.N) reports itself active, i.e. the mon has published a map
# with this OSD instance up. Until then clients may get a map that still names the
# previous instance (after a crash or SIGKILL) and their ops stall until timeout.
osd_active() {
    local out
    out="$(timeout -k 2 10 ceph --admin-daemon "$DIR/run/$1.asok" status 2>&1)" || return 1
    grep -q '"state": "active"' <<<"$out" || { printf '%s\n' "$out"; return 1; }
}

# Writes (and removes) a probe object in each pool: the cluster is ready once that
# works (for the erasure-coded pool: once its PGs have found their three OSDs).
wait_writable() {
    local obj="ci-ready-probe.$$" pool i pools=("$POOL")
    for ((i = 0; i < OSDS; i++)); do
        retry "wait for osd.$i to become active" osd_active "osd.$i"
    done
    ((OSDS < 3)) || pools+=("$EC_POOL")
    for pool in "${pools[@]}"; do
        retry "write a probe object to pool $pool" rados_cmd -p "$pool" put "$obj" "$CONF"
        retry "remove the probe object from pool $pool" rados_cmd -p "$pool" rm "$obj"
    done
}

write_env() {
    {
        printf '# Generated by ci/ceph-start.sh; source it to use the test cluster.\n'
        printf 'export CEPH_CONF=%q\n' "$CONF"
        printf 'export RADOS_MAIL_POOL=%q\n' "$POOL"
        if ((OSDS >= 3)); then
            printf '# The erasure-coded pool (k=2, m=1) for mail bodies.\n'
            printf 'export RADOS_MAIL_DATA_POOL=%q\n' "$EC_POOL"
        else
            printf 'unset RADOS_MAIL_DATA_POOL\n'
        fi
    } >"$DIR/env.sh.tmp"
    mv -f -- "$DIR/env.sh.tmp" "$DIR/env.sh"
}

is_our_dir "$DIR" || die "$DIR is not empty and was not made by ci/ceph-start.sh; not touching it"
t0="$EPOCHREALTIME"
lock_dir "$DIR"
started=()

if ((fresh)); then
    stop_daemons "$DIR"
    wipe_dir
elif [[ -e "$CONF" && ! -e "$DIR/.initialised" ]]; then
    log "$DIR holds an unfinished cluster (interrupted start?): creating it anew"
    stop_daemons "$DIR"
    wipe_dir
fi

if [[ -e "$DIR/.initialised" ]]; then
    conf_port="$(sed -n 's/^mon_host = \[v2:127\.0\.0\.1:\([0-9]*\)\]$/\1/p' "$CONF")"
    [[ -n "$conf_port" ]] || die "cannot read the mon port from $CONF; use --fresh"
    if [[ -n "${RADOS_MAIL_CEPH_PORT:-}" && "$RADOS_MAIL_CEPH_PORT" != "$conf_port" ]]; then
        log "warning: cluster in $DIR was created with mon port $conf_port; ignoring RADOS_MAIL_CEPH_PORT=$RADOS_MAIL_CEPH_PORT (use --fresh to change it)"
    fi
    PORT="$conf_port"
    # Clusters made before --osds existed have no DIR/osds: they have one OSD.
    have="$(cat "$DIR/osds" 2>/dev/null || echo 1)"
    [[ "$have" =~ ^[1-9]$ ]] || die "bad OSD count '$have' in $DIR/osds; use --fresh"
    OSDS="${osds_arg:-$have}"
    if ((OSDS < have)); then
        log "warning: cluster in $DIR has $have OSDs; keeping them all (--osds $OSDS ignored; use --fresh to have fewer)"
        OSDS="$have"
    fi
    daemon_pid "$DIR" mon.a ceph-mon >/dev/null || check_port_free "$PORT"
    start_daemon mon.a ceph-mon
    start_osds 0 "$have"
    if ((${#started[@]} == 0)); then mode="already running"; else mode="restarted ${started[*]}"; fi
    if ((OSDS > have)); then
        add_osds "$have"
        mode+="; added osd.$have..osd.$((OSDS - 1))"
    fi
else
    mode="created"
    OSDS="${osds_arg:-1}"
    create_cluster
fi

ensure_pool
((OSDS < 3)) || ensure_ec_pool
wait_writable
write_env
touch "$DIR/.initialised"
pools="pool $POOL"
((OSDS < 3)) || pools+=", erasure-coded pool $EC_POOL"
log "cluster ready in $(elapsed_since "$t0") s ($mode; mon v2 127.0.0.1:$PORT, $OSDS OSD(s), $pools, $DIR)"
log "use it with: . $DIR/env.sh"
