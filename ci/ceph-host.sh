#!/usr/bin/env bash
# Usage: ci/ceph-host.sh DIR HOST ACTION
#
# Injects a fault into (or heals) host HOST (1..N, or h1..hN) of the
# multi-host cluster in DIR (started by ci/ceph-start.sh --hosts N DIR), and
# prints what it did. Host I runs mon.<letter I> and osd.<I-1>.
# Actions:
#   kill        SIGKILL the host's OSD and mon (a crashed or powered-off host)
#   start       start the host's daemons that are not running, restore its
#               link, wait (bounded) until its OSD is active
#   link-down   set the host's veth down: its packets are dropped, its
#               daemons keep running (a cut cable or switch port)
#   link-up     set it up again
#   stop        SIGSTOP the host's OSD (a hung disk or process)
#   cont        SIGCONT it
#   kill-mon    SIGKILL the host's mon only
#   start-mon   start the host's mon again
#   status      show the host's daemons and link
# Environment:
#   RADOS_MAIL_CEPH_TIMEOUT  bound in seconds for each wait (default 60)
set -euo pipefail

# shellcheck source=ci/ceph-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ceph-lib.sh"
# shellcheck source=ci/ceph-hosts-lib.sh
. "$CEPH_CI_DIR/ceph-hosts-lib.sh"

case "${1:-}" in -h | --help | "") print_usage; [[ -n "${1:-}" ]]; exit ;; esac
(($# == 3)) || die "usage: ci/ceph-host.sh DIR HOST ACTION (see --help)"
DIR="$(resolve_dir "$1")"
host="${2#h}"
action="$3"
TIMEOUT="${RADOS_MAIL_CEPH_TIMEOUT:-60}"
[[ "$TIMEOUT" =~ ^[1-9][0-9]{0,3}$ ]] || die "bad RADOS_MAIL_CEPH_TIMEOUT '$TIMEOUT'"
is_our_dir "$DIR" && hosts_load "$DIR" || die "$DIR holds no multi-host cluster (ci/ceph-start.sh --hosts N DIR)"
[[ "$host" =~ ^[1-9]$ ]] && ((host <= HOSTS)) || die "host '$2' is not one of 1..$HOSTS"
unset CEPH_CONF CEPH_KEYRING CEPH_ARGS

NS="$(host_ns "$host")"
MON="$(mon_name "$host")"
OSD="$(osd_name "$host")"
say() { printf 'host %s (%s, %s): %s\n' "$host" "$NS" "$(host_addr "$host")" "$*"; }

# signal_daemon NAME BINARY SIGNAL
signal_daemon() {
    local pid
    if pid="$(daemon_pid "$DIR" "$1" "$2")"; then
        kill "-$3" "$pid"
        say "sent SIG$3 to $1 (pid $pid)"
    else
        say "$1 is not running; nothing to send SIG$3 to"
    fi
}

# kill_daemon NAME BINARY: SIGKILL and wait until it is gone.
kill_daemon() {
    local pid
    if pid="$(daemon_pid "$DIR" "$1" "$2")"; then
        kill -KILL "$pid"
        for _ in {1..50}; do pid_alive "$pid" || break; sleep 0.1; done
        ! pid_alive "$pid" || die "$1 (pid $pid) survived SIGKILL"
        say "killed $1 (pid $pid, SIGKILL)"
    else
        say "$1 is not running"
    fi
}

start_one() {
    if start_host_daemon "$DIR" "$host" "$1" "$2"; then
        say "started $1 (pid $(daemon_pid "$DIR" "$1" "$2" || echo '?'))"
    else
        say "$1 runs already"
    fi
}

# Waits until the OSD reports itself active (the mon published it up).
wait_osd_active() {
    local deadline=$((SECONDS + TIMEOUT)) out
    while :; do
        out="$(timeout -k 2 10 ceph --admin-daemon "$DIR/run/$OSD.asok" status 2>&1)" &&
            grep -q '"state": "active"' <<<"$out" && break
        ((SECONDS < deadline)) || die "$OSD not active within ${TIMEOUT} s: $out"
        sleep 0.2
    done
    say "$OSD is active"
}

set_link() {
    ns_exists "$NS" && link_exists "$NS" || die "host $host has no network (is the cluster started?)"
    ip link set "$NS" "$1"
    say "link $NS set $1"
}

case "$action" in
    kill)
        # One kill(2) call for both, as a power cut: killed one after the
        # other, the mons could mark the OSD down before losing the host's mon.
        pids=() names=()
        for entry in "$OSD:ceph-osd" "$MON:ceph-mon"; do
            if pid="$(daemon_pid "$DIR" "${entry%%:*}" "${entry#*:}")"; then
                pids+=("$pid")
                names+=("${entry%%:*} (pid $pid)")
            else
                say "${entry%%:*} is not running"
            fi
        done
        ((${#pids[@]})) || exit 0
        kill -KILL "${pids[@]}"
        for pid in "${pids[@]}"; do
            for _ in {1..50}; do pid_alive "$pid" || break; sleep 0.1; done
            ! pid_alive "$pid" || die "pid $pid survived SIGKILL"
        done
        say "killed ${names[*]} (SIGKILL, together)"
        ;;
    start)
        lock_dir "$DIR"
        ensure_bridge
        ensure_host_net "$host"
        start_one "$MON" ceph-mon
        start_one "$OSD" ceph-osd
        wait_osd_active
        ;;
    link-down) set_link down ;;
    link-up) set_link up ;;
    stop) signal_daemon "$OSD" ceph-osd STOP ;;
    cont) signal_daemon "$OSD" ceph-osd CONT ;;
    kill-mon) kill_daemon "$MON" ceph-mon ;;
    start-mon)
        lock_dir "$DIR"
        start_one "$MON" ceph-mon
        ;;
    status)
        for entry in "$OSD:ceph-osd" "$MON:ceph-mon"; do
            if pid="$(daemon_pid "$DIR" "${entry%%:*}" "${entry#*:}")"; then
                state="$(awk '{ print $3 }' "/proc/$pid/stat")"
                say "${entry%%:*} running (pid $pid, state $state)"
            else
                say "${entry%%:*} not running"
            fi
        done
        if link_exists "$NS"; then
            say "link $(ip -br link show dev "$NS" | awk '{ print $2 }')"
        else
            say "no link"
        fi
        ;;
    *) die "unknown action '$action' (see --help)" ;;
esac
