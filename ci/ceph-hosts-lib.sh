# shellcheck shell=bash
# The multi-host test cluster (ci/ceph-start.sh --hosts N): helpers shared by
# ci/ceph-start.sh, ci/ceph-stop.sh and ci/ceph-host.sh. Sourced after
# ci/ceph-lib.sh, not executed. Expects `set -euo pipefail` in the caller.
#
# Host I (1..N) is the network namespace rmc<NET>h<I>, joined to the bridge
# rmc<NET>br by a veth pair (root side rmc<NET>h<I>, inside eth0). Host I has
# the address 10.<NET_A>.<NET>.I/24 where NET is $RADOS_MAIL_CEPH_NET (default
# 77, fixed at creation) and runs mon.<letter I> and osd.<I-1>. The root
# namespace has 10.<...>.254 on the bridge, so clients here reach every host.
# DIR/hosts.env records HOSTS and NET; its presence marks a multi-host DIR.

HOSTS_MON_PORT=3300
HOSTS_NET_PREFIX=10.77
HOSTS_LETTERS=(a b c d e f g h i)

# Loads HOSTS and NET of the multi-host cluster in $1; fails when it is none.
hosts_load() {
    local dir="$1"
    [[ -f "$dir/hosts.env" ]] || return 1
    HOSTS="$(sed -n 's/^HOSTS=\([3-9]\)$/\1/p' "$dir/hosts.env")"
    NET="$(sed -n 's/^NET=\([0-9]\{1,3\}\)$/\1/p' "$dir/hosts.env")"
    [[ -n "$HOSTS" && -n "$NET" ]] || die "$dir/hosts.env is damaged; use --fresh"
}

# Names and addresses for host $1 of network $NET.
host_ns() { printf 'rmc%sh%s\n' "$NET" "$1"; }
host_addr() { printf '%s.%s.%s\n' "$HOSTS_NET_PREFIX" "$NET" "$1"; }
bridge_name() { printf 'rmc%sbr\n' "$NET"; }
root_addr() { host_addr 254; }
mon_name() { printf 'mon.%s\n' "${HOSTS_LETTERS[$(($1 - 1))]}"; }
osd_name() { printf 'osd.%s\n' "$(($1 - 1))"; }

# Daemons of host $1 as "name:binary", OSD first.
host_daemons() { printf '%s\n' "$(osd_name "$1"):ceph-osd" "$(mon_name "$1"):ceph-mon"; }

ns_exists() { ip netns list | awk '{ print $1 }' | grep -qxF -- "$1"; }
link_exists() { ip link show dev "$1" >/dev/null 2>&1; }

# Makes the bridge (with the root namespace's address) unless it exists.
ensure_bridge() {
    local br
    br="$(bridge_name)"
    if ! link_exists "$br"; then
        ip link add "$br" type bridge
        ip addr add "$(root_addr)/24" dev "$br"
    fi
    ip link set "$br" up
}

# Makes host $1's namespace and veth pair unless they exist; leaves the link up.
ensure_host_net() {
    local i="$1" ns
    ns="$(host_ns "$i")"
    ns_exists "$ns" || ip netns add "$ns"
    if ! link_exists "$ns"; then
        ip link add "$ns" type veth peer name eth0 netns "$ns"
        ip -n "$ns" addr add "$(host_addr "$i")/24" dev eth0
    fi
    ip link set "$ns" master "$(bridge_name)" up
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
}

# Fails when the cluster's subnet is in use by something that is not ours.
check_net_free() {
    local br used
    br="$(bridge_name)"
    link_exists "$br" && die "bridge $br exists already (another multi-host cluster with RADOS_MAIL_CEPH_NET=$NET?)"
    used="$(ip -o -4 addr show | awk -v p="$HOSTS_NET_PREFIX.$NET." 'index($4, p) == 1 { print $2 }')"
    [[ -z "$used" ]] || die "subnet $HOSTS_NET_PREFIX.$NET.0/24 already used on $used; pick another RADOS_MAIL_CEPH_NET"
}

# Removes the namespaces, veths and bridge of network $NET of the cluster in $1.
# Our own daemons still in a namespace are SIGKILLed first; anything else
# inside makes it fail rather than kill a stranger.
remove_net() {
    local dir="$1" i ns pid left
    for ((i = 1; i <= 9; i++)); do
        ns="$(host_ns "$i")"
        if ! ns_exists "$ns"; then
            ! link_exists "$ns" || ip link del "$ns" 2>/dev/null || true
            continue
        fi
        for pid in $(ip netns pids "$ns"); do
            if tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$dir/ceph.conf"; then
                log "killing leftover pid $pid in $ns"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done
        for _ in {1..50}; do
            left="$(ip netns pids "$ns" | while read -r pid; do pid_alive "$pid" && echo "$pid"; done)"
            [[ -n "$left" ]] || break
            sleep 0.1
        done
        [[ -z "$left" ]] || die "namespace $ns still holds processes not of this cluster: $left"
        ip netns del "$ns"
        # Deleting the namespace destroys the veth pair asynchronously.
        for _ in {1..50}; do
            link_exists "$ns" || break
            ip link del "$ns" 2>/dev/null || sleep 0.1
        done
        ! link_exists "$ns" || die "cannot remove interface $ns"
    done
    ! link_exists "$(bridge_name)" || ip link del "$(bridge_name)"
}

# True when any daemon of the multi-host cluster in $1 runs.
hosts_any_running() {
    local dir="$1" i entry
    for ((i = 1; i <= HOSTS; i++)); do
        while read -r entry; do
            daemon_pid "$dir" "${entry%%:*}" "${entry#*:}" >/dev/null && return 0
        done < <(host_daemons "$i")
    done
    return 1
}

# start_host_daemon DIR HOST NAME BINARY: starts it in host's namespace unless
# it runs; returns 0 when it started it, 1 when it was running, dies on failure.
start_host_daemon() {
    local dir="$1" i="$2" name="$3" bin="$4"
    daemon_pid "$dir" "$name" "$bin" >/dev/null && return 1
    rm -f -- "$dir/run/$name.pid" "$dir/run/$name.asok"
    # The parent returns once the daemon has initialised (or failed to).
    # 9>&-: the daemon must not inherit (and so keep holding) the DIR lock.
    env -u CEPH_CONF -u CEPH_KEYRING -u CEPH_ARGS \
        timeout -k 5 "${TIMEOUT:-60}" ip netns exec "$(host_ns "$i")" \
        "$bin" --conf "$dir/ceph.conf" -i "${name#*.}" \
        </dev/null >"$dir/log/$name.start.log" 2>&1 9>&- ||
        die "$bin -i ${name#*.} failed to start on host $i: $(tail -n 5 "$dir/log/$name.start.log")"
    return 0
}

# stop_pids NAME:PID...: SIGTERM to all, up to ~10 s grace, then SIGKILL.
stop_pids() {
    local entry pid deadline=$((SECONDS + 10)) alive
    for entry in "$@"; do kill -TERM "${entry#*:}" 2>/dev/null || true; done
    while :; do
        alive=()
        for entry in "$@"; do pid_alive "${entry#*:}" && alive+=("$entry"); done
        ((${#alive[@]})) || return 0
        ((SECONDS < deadline)) || break
        sleep 0.1
    done
    for entry in "${alive[@]}"; do
        log "${entry%%:*} ignored SIGTERM for 10 s, sending SIGKILL"
        kill -KILL "${entry#*:}" 2>/dev/null || true
    done
    deadline=$((SECONDS + 5))
    for entry in "${alive[@]}"; do
        while pid_alive "${entry#*:}" && ((SECONDS < deadline)); do sleep 0.1; done
        ! pid_alive "${entry#*:}" || die "${entry%%:*} (pid ${entry#*:}) survived SIGKILL"
    done
}

# Stops every daemon of the multi-host cluster in $1 (all OSDs together while
# the mons still run, then the mons) and removes its network. Sets STOPPED.
hosts_stop() {
    local dir="$1" i entry pid kind batch
    STOPPED=0
    for kind in ceph-osd ceph-mon; do
        batch=()
        for ((i = 1; i <= HOSTS; i++)); do
            while read -r entry; do
                [[ "${entry#*:}" == "$kind" ]] || continue
                if pid="$(daemon_pid "$dir" "${entry%%:*}" "$kind")"; then
                    log "stopping ${entry%%:*} (pid $pid, host $i)"
                    batch+=("${entry%%:*}:$pid")
                fi
            done < <(host_daemons "$i")
        done
        STOPPED=$((STOPPED + ${#batch[@]}))
        ((${#batch[@]} == 0)) || stop_pids "${batch[@]}"
    done
    for ((i = 1; i <= HOSTS; i++)); do
        while read -r entry; do
            rm -f -- "$dir/run/${entry%%:*}.pid" "$dir/run/${entry%%:*}.asok"
        done < <(host_daemons "$i")
    done
    remove_net "$dir"
}
