#!/usr/bin/env bash
# Usage: ci/dovecot-start.sh [OPTIONS] DIR
#
# Starts a sandboxed Dovecot 2.3 for tests, everything under DIR: dovecot.conf,
# base_dir DIR/run, state_dir DIR/state, log DIR/dovecot.log, homes
# DIR/home/<user>. Listens on 127.0.0.1 only: IMAP on P, LMTP on P+1, POP3 on
# P+2 (P = --port-base); no TLS, AUTHENTICATE PLAIN / LOGIN with password
# "pass" for any user name; mail is owned by nobody:nogroup (Dovecot refuses
# to run mail processes as root), and lmtp runs as nobody; imap and pop3
# processes serve one session after another (service_count = 0).
# Ready means the IMAP port sent its greeting.
# Afterwards `. DIR/env.sh` exports DOVECOT_CONF, DOVECOT_IMAP_PORT,
# DOVECOT_LMTP_PORT, DOVECOT_POP3_PORT and DOVECOT_LOG. Stop with
# ci/dovecot-stop.sh DIR. Starting again in the same DIR keeps the mail.
# Two instances need two DIRs and port bases at least 3 apart.
#
# Options:
#   --driver sdbox|rados  mail storage (default rados):
#                         sdbox: mail_location = sdbox:~/sdbox (Dovecot's own);
#                         rados: mail_location = rados:~/rados:INDEX=DIR/index/%u,
#                         the plugin loaded from DIR/modules (symlinks to the
#                         stock modules plus lib20_rados_plugin.so), and copies
#                         of the Ceph conf and keyring in DIR/ceph, readable by
#                         the mail uid (the keyring's key becomes world-readable:
#                         for test clusters only) with a [client] section of its
#                         own (one messenger and one completion thread)
#   --plugin-dir DIR      where lib20_rados_plugin.so is (default
#                         <repo>/dovecot-glue/build)
#   --name N              instance_name (default dovecot-test-<hash of DIR>)
#   --port-base P         first port (default 24100)
#   --home-root DIR2      user homes are DIR2/<user> (default DIR/home); point a
#                         second sdbox instance at the first one's to share mail
#   --extra-conf FILE     !include FILE at the end of dovecot.conf
#   --userdb-file FILE    a passwd-file userdb consulted before the static one
#                         (per-user fields such as rados_pool=x, for tests)
#   --data-pool P         rados only: rados_data_pool = P (mail bodies in pool P,
#                         e.g. the erasure-coded pool of ci/ceph-start.sh --osds 3,
#                         $RADOS_MAIL_DATA_POOL); default: unset (bodies in the
#                         index pool)
#   -h, --help            show this help
# Environment (rados only):
#   CEPH_CONF                 cluster conf (default <repo>/target/ceph/ceph.conf)
#   RADOS_MAIL_POOL           pool (default mail)
#   RADOS_MAIL_NS_PREFIX      rados_namespace_prefix (default dovecot-test-); the
#                             same for instances that must share users' mail
#   RADOS_MAIL_TIMEOUT        rados_timeout in seconds (default 30)
#   DOVECOT_START_TIMEOUT     bound in seconds for the greeting (default 15)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAIL_USER=nobody
MAIL_GROUP=nogroup
STOCK_MODULES=/usr/lib/dovecot/modules

log() { printf 'dovecot: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
print_usage() { sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; }

# Absolute path of $1; refuses characters dovecot.conf or ceph.conf would misread.
abs_path() {
    local p
    p="$(realpath -m -- "$1")"
    case "$p" in
        *[[:space:]\$\#\;=\"\'\\%]*) die "unsupported characters in path: '$p'" ;;
    esac
    [[ "$p" != "/" ]] || die "refusing to use / as a directory"
    printf '%s\n' "$p"
}

driver=rados
plugin_dir="$REPO_ROOT/dovecot-glue/build"
name=""
port_base=24100
home_root=""
extra_conf=""
userdb_file=""
data_pool=""
dir_arg=""
while (($#)); do
    case "$1" in
        --driver | --plugin-dir | --name | --port-base | --home-root | --extra-conf | --userdb-file | --data-pool)
            (($# >= 2)) || die "$1 needs a value"
            case "$1" in
                --driver) driver="$2" ;;
                --plugin-dir) plugin_dir="$2" ;;
                --name) name="$2" ;;
                --port-base) port_base="$2" ;;
                --home-root) home_root="$2" ;;
                --extra-conf) extra_conf="$2" ;;
                --userdb-file) userdb_file="$2" ;;
                --data-pool) data_pool="$2" ;;
            esac
            shift
            ;;
        -h | --help) print_usage; exit 0 ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *) [[ -z "$dir_arg" ]] || die "only one DIR allowed"; dir_arg="$1" ;;
    esac
    shift
done
[[ -n "$dir_arg" ]] || die "DIR missing (see --help)"

case "$driver" in sdbox | rados) ;; *) die "unknown --driver '$driver' (sdbox or rados)" ;; esac
if [[ -n "$data_pool" ]]; then
    [[ "$driver" == rados ]] || die "--data-pool is for --driver rados"
    [[ "$data_pool" =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad --data-pool '$data_pool'"
fi
if ! [[ "$port_base" =~ ^[1-9][0-9]{0,4}$ ]] || ((port_base + 2 > 65535)); then
    die "bad --port-base '$port_base'"
fi
TIMEOUT="${DOVECOT_START_TIMEOUT:-15}"
[[ "$TIMEOUT" =~ ^[1-9][0-9]{0,3}$ ]] || die "bad DOVECOT_START_TIMEOUT '$TIMEOUT'"

DIR="$(abs_path "$dir_arg")"
# The longest Unix socket Dovecot makes is about run/token-login/tokenlogin.
((${#DIR} + 40 <= 107)) || die "directory path too long for Dovecot's Unix sockets (max 67 chars): $DIR"
[[ -n "$home_root" ]] || home_root="$DIR/home"
HOME_ROOT="$(abs_path "$home_root")"
[[ -n "$name" ]] || name="dovecot-test-$(printf '%s' "$DIR" | md5sum | cut -c1-8)"
[[ "$name" =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad --name '$name'"
if [[ -n "$extra_conf" ]]; then
    extra_conf="$(abs_path "$extra_conf")"
    [[ -r "$extra_conf" ]] || die "--extra-conf $extra_conf is not readable"
fi
userdb_conf=""
if [[ -n "$userdb_file" ]]; then
    userdb_file="$(abs_path "$userdb_file")"
    [[ -r "$userdb_file" ]] || die "--userdb-file $userdb_file is not readable"
    userdb_conf="userdb {
  driver = passwd-file
  args = $userdb_file
}"
fi

for tool in dovecot doveconf doveadm setpriv timeout md5sum; do
    command -v "$tool" >/dev/null || die "'$tool' not found: run ci/install-deps.sh"
done
id -u "$MAIL_USER" >/dev/null 2>&1 || die "user $MAIL_USER missing"
getent group "$MAIL_GROUP" >/dev/null || die "group $MAIL_GROUP missing"
((EUID == 0)) || die "must run as root (the master binds its sockets and switches to the mail uid)"

CONF="$DIR/dovecot.conf"
LOG="$DIR/dovecot.log"
RUN="$DIR/run"
PORT_IMAP=$port_base
PORT_LMTP=$((port_base + 1))
PORT_POP3=$((port_base + 2))

# PID of this DIR's running master, else fails (checks the pid is really ours).
master_pid() {
    local pid
    pid="$(tr -dc '0-9' 2>/dev/null <"$RUN/master.pid")" || return 1
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$CONF" || return 1
    printf '%s\n' "$pid"
}

# Prints the tail of the logs, then exits non-zero.
fail() {
    local f
    log "error: $*"
    for f in "$DIR/dovecot.start.log" "$LOG"; do
        [[ -s "$f" ]] || continue
        printf '\n==> %s (last 30 lines) <==\n' "$f" >&2
        tail -n 30 -- "$f" >&2
    done
    log "stop whatever runs with: ci/dovecot-stop.sh $DIR"
    exit 1
}

# True when the mail uid can write directory $1 (all its parents must be searchable).
mail_uid_can_write() {
    setpriv --reuid="$MAIL_USER" --regid="$MAIL_GROUP" --clear-groups test -w "$1" -a -x "$1"
}

pid="$(master_pid)" && die "a Dovecot (pid $pid) already runs for $DIR: ci/dovecot-stop.sh $DIR first"
for port in "$PORT_IMAP" "$PORT_LMTP" "$PORT_POP3"; do
    if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
        die "127.0.0.1:$port is already in use; pick another --port-base"
    fi
done

mkdir -p -- "$DIR" "$RUN" "$DIR/state"
# mktemp -d makes 0700 directories: the mail uid must get through DIR to its homes.
chmod 0755 -- "$DIR"
mkdir -p -- "$HOME_ROOT"
chown "$MAIL_USER:$MAIL_GROUP" -- "$HOME_ROOT"
mail_uid_can_write "$HOME_ROOT" ||
    die "$MAIL_USER cannot write $HOME_ROOT: make its parent directories searchable (chmod o+x) or use another DIR"

# For INDEX=DIR/index/%u (rados; an --extra-conf may use it for sdbox too).
mkdir -p -- "$DIR/index"
chown "$MAIL_USER:$MAIL_GROUP" -- "$DIR/index"

mail_conf=""
if [[ "$driver" == sdbox ]]; then
    mail_conf="mail_location = sdbox:~/sdbox"
else
    plugin="$(abs_path "$plugin_dir")/lib20_rados_plugin.so"
    [[ -f "$plugin" ]] || die "$plugin not found: build dovecot-glue first (or pass --plugin-dir)"
    # mail_plugin_dir is a single directory: give it the stock modules as well.
    rm -rf -- "$DIR/modules"
    mkdir -p -- "$DIR/modules"
    for so in "$STOCK_MODULES"/*.so; do
        [[ "$(basename "$so")" == lib20_rados_plugin.so ]] || ln -s -- "$so" "$DIR/modules/"
    done
    ln -s -- "$plugin" "$DIR/modules/lib20_rados_plugin.so"

    ceph_conf="${CEPH_CONF:-$REPO_ROOT/target/ceph/ceph.conf}"
    [[ -r "$ceph_conf" ]] || die "Ceph conf '$ceph_conf' not readable: set CEPH_CONF (. target/ceph/env.sh)"
    command -v ceph-conf >/dev/null || die "'ceph-conf' not found: run ci/install-deps.sh"
    keyring="$(ceph-conf -c "$ceph_conf" --name client.admin --lookup keyring 2>/dev/null || true)"
    keyring_file=""
    for k in ${keyring//,/ } ${CEPH_KEYRING:-}; do
        if [[ -r "$k" ]]; then keyring_file="$k"; break; fi
    done
    [[ -n "$keyring_file" ]] || die "no readable keyring for client.admin (keyring = '$keyring' in $ceph_conf)"
    # Copies readable by the mail uid. The client's log file and admin socket
    # would point into the cluster's root-owned directories: send them here.
    mkdir -p -- "$DIR/ceph"
    chmod 0755 -- "$DIR/ceph"
    install -m 0644 -- "$keyring_file" "$DIR/ceph/keyring"
    : >"$DIR/ceph/client.log"
    chown "$MAIL_USER:$MAIL_GROUP" -- "$DIR/ceph/client.log"
    {
        printf '# Copy of %s for the mail uid, made by ci/dovecot-start.sh.\n' "$ceph_conf"
        printf '[global]\nkeyring = %s\nlog_file = %s\nadmin_socket =\n' \
            "$DIR/ceph/keyring" "$DIR/ceph/client.log"
        grep -vE '^[[:space:]]*(keyring|log[_ ]file|admin[_ ]socket)[[:space:]]*=' -- "$ceph_conf"
        # A Dovecot process has one thread calling librados: one messenger worker and
        # one completion thread serve it as well as the default 3 + 2, and every
        # librados thread costs a signal on each of the process's uid switches
        # (dovecot-glue/README.md, "Process model"). Ceph merges this section with an
        # earlier [client]; the later lines win. Read when a process first connects.
        printf '\n[client]\nms_async_op_threads = 1\nlibrados_thread_count = 1\n'
    } >"$DIR/ceph/ceph.conf"
    chmod 0644 -- "$DIR/ceph/ceph.conf"
    setpriv --reuid="$MAIL_USER" --regid="$MAIL_GROUP" --clear-groups \
        test -r "$DIR/ceph/ceph.conf" -a -r "$DIR/ceph/keyring" ||
        die "$MAIL_USER cannot read $DIR/ceph/{ceph.conf,keyring}: make the parents of $DIR searchable"

    pool="${RADOS_MAIL_POOL:-mail}"
    ns_prefix="${RADOS_MAIL_NS_PREFIX-dovecot-test-}"
    rados_timeout="${RADOS_MAIL_TIMEOUT:-30}"
    [[ "$pool" =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad RADOS_MAIL_POOL '$pool'"
    [[ "$ns_prefix" =~ ^[A-Za-z0-9_.-]*$ ]] || die "bad RADOS_MAIL_NS_PREFIX '$ns_prefix'"
    [[ "$rados_timeout" =~ ^[1-9][0-9]{0,3}$ ]] || die "bad RADOS_MAIL_TIMEOUT '$rados_timeout'"
    data_pool_conf=""
    [[ -z "$data_pool" ]] || data_pool_conf="
  rados_data_pool = $data_pool"

    mail_conf="mail_location = rados:~/rados:INDEX=$DIR/index/%u
mail_plugin_dir = $DIR/modules
mail_plugins = \$mail_plugins rados

plugin {
  rados_conf = $DIR/ceph/ceph.conf
  rados_pool = $pool
  rados_client_name = client.admin
  rados_namespace_prefix = $ns_prefix
  rados_timeout = $rados_timeout$data_pool_conf
}"
fi

cat >"$CONF.tmp" <<EOF
# Generated by ci/dovecot-start.sh (driver $driver); rewritten on every start.
instance_name = $name
base_dir = $RUN
state_dir = $DIR/state
log_path = $LOG
protocols = imap lmtp pop3
listen = 127.0.0.1
ssl = no
auth_mechanisms = plain login
disable_plaintext_auth = no
first_valid_uid = 1
# librados and the library's runtime reserve ~700 MB of address space per process (about
# 32 MB of it resident); under Dovecot's default 256M limit librados cannot start its
# threads and aborts. Operators need the same setting (dovecot-glue/README.md).
default_vsz_limit = 1G
# IDLE learns of changes made through other servers by polling RADOS this often
# (Dovecot's default is 30 s).
mailbox_idle_check_interval = 1 secs
# A FETCH of a range reads this many bodies ahead, all at once (Dovecot's default, 0,
# reads one body at a time: one RADOS round trip each for rados). For both drivers, so
# the bench compares like with like.
mail_prefetch_count = 16

passdb {
  driver = static
  args = password=pass
}
$userdb_conf
userdb {
  driver = static
  args = uid=$MAIL_USER gid=$MAIL_GROUP home=$HOME_ROOT/%u allow_all_users=yes
}

$mail_conf

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $PORT_IMAP
  }
  inet_listener imaps {
    port = 0
  }
}
# Process model (dovecot-glue/README.md): a process keeps its cluster connection across
# sessions, so imap and pop3 processes are reused (service_count = 0, as lmtp's already
# are); lmtp runs as the mail uid, so a delivery needs no switch to root and back (with
# librados' threads in the process, each switch signals every thread). Both need all
# users to share one uid, as they do here. Each reused process keeps a connection to
# auth: its client_limit must cover the process_limits of such services (2448 here, or
# doveconf warns).
service auth {
  client_limit = 4096
}
service imap {
  service_count = 0
}
service pop3 {
  service_count = 0
}
service lmtp {
  user = $MAIL_USER
  service_count = 0
  inet_listener lmtp {
    address = 127.0.0.1
    port = $PORT_LMTP
  }
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $PORT_POP3
  }
  inet_listener pop3s {
    port = 0
  }
}
EOF
[[ -z "$extra_conf" ]] || printf '\n!include %s\n' "$extra_conf" >>"$CONF.tmp"
mv -f -- "$CONF.tmp" "$CONF"

doveconf -c "$CONF" -n >/dev/null 2>"$DIR/dovecot.start.log" || fail "doveconf rejects $CONF"

t0="$EPOCHREALTIME"
# The master daemonises; stdio to a file so it never holds a caller's pipe open.
dovecot -c "$CONF" </dev/null >"$DIR/dovecot.start.log" 2>&1 || fail "dovecot -c $CONF failed"

deadline=$((SECONDS + TIMEOUT))
greeting=""
while :; do
    # shellcheck disable=SC2016 # $1 and $l belong to the inner shell
    greeting="$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && IFS= read -r l <&3 && printf "%s" "$l"' \
        _ "$PORT_IMAP" 2>/dev/null || true)"
    [[ "$greeting" != "* OK"* ]] || break
    master_pid >/dev/null || fail "the master process exited"
    ((SECONDS < deadline)) || fail "no IMAP greeting on 127.0.0.1:$PORT_IMAP within $TIMEOUT s (last: '${greeting%$'\r'}')"
    sleep 0.1
done

{
    printf '# Generated by ci/dovecot-start.sh; source it to use this Dovecot.\n'
    printf 'export DOVECOT_CONF=%q\n' "$CONF"
    printf 'export DOVECOT_IMAP_PORT=%q\n' "$PORT_IMAP"
    printf 'export DOVECOT_LMTP_PORT=%q\n' "$PORT_LMTP"
    printf 'export DOVECOT_POP3_PORT=%q\n' "$PORT_POP3"
    printf 'export DOVECOT_LOG=%q\n' "$LOG"
} >"$DIR/env.sh.tmp"
mv -f -- "$DIR/env.sh.tmp" "$DIR/env.sh"

elapsed="$(LC_ALL=C awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"
log "ready in $elapsed s ($driver; imap $PORT_IMAP, lmtp $PORT_LMTP, pop3 $PORT_POP3 on 127.0.0.1; $DIR)"
log "use it with: . $DIR/env.sh"
