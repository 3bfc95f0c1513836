#!/usr/bin/env bash
# The main job of rados-mail, on one machine: install what is missing, start a local
# single-node Ceph cluster and a Dovecot that stores mail in it through the `rados`
# plugin, deliver a mail over LMTP, read it back over IMAP, and show the objects and omap
# keys it became in RADOS.
#
# With --cluster, the picture it was made for instead: a 3-host replicated Ceph cluster
# and two Dovecot backends on it with no director; mail is delivered through both while
# an OSD host and then a backend are killed, and read back through both (see
# cluster_demo below and README.md).
#
# With --installed, the plain demo runs against what the Debian package installed
# (ci/package.sh, then dpkg -i): the plugin in Dovecot's own module dir and
# /usr/bin/rados-mail; nothing is built.
#
# Usage: ./ci/demo.sh [--cluster | --installed] [--keep]
#   --cluster  3 OSD hosts (ci/ceph-start.sh --hosts 3, RADOS_MAIL_CEPH_NET=79, in
#              target/demo-hosts) and 2 Dovecot backends (IMAP/LMTP on 127.0.0.1:24700/24701
#              and 24720/24721); as root; exits non-zero if a mail is lost, duplicated
#              or unreadable
#   --installed  Dovecot loads <dovecot_moduledir>/lib20_rados_plugin.so (mail_plugin_dir is
#              Dovecot's default module dir, the stock plugins beside it; mail_debug on), in
#              target/demo-installed with IMAP/LMTP on 127.0.0.1:24310/24311; prints the
#              plugin file its imap process mapped and the version it logged, and lists the
#              mail with the installed `rados-mail` command; a cluster that existed before
#              (its DIR has a ceph.conf) is left running
#   --keep     leave the cluster and Dovecot running (stop them with
#              ./ci/dovecot-stop.sh target/demo-dovecot and ./ci/ceph-stop.sh; with
#              --cluster the commands are printed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
cluster=0
installed=0
for arg in "$@"; do
	case "$arg" in
	--keep) keep=1 ;;
	--cluster) cluster=1 ;;
	--installed) installed=1 ;;
	-h | --help) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
	*) echo "demo: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
	esac
done
if [ $cluster = 1 ] && [ $installed = 1 ]; then
	echo "demo: --installed runs the plain demo; not with --cluster" >&2
	exit 2
fi
if [ $cluster = 1 ] && [ "$EUID" != 0 ]; then
	echo "demo: --cluster needs root (the hosts are network namespaces)" >&2
	exit 1
fi

# The --cluster mode (README.md, "The two commands"). The cluster lives
# in target/demo-hosts on the subnet 10.77.79.0/24 (RADOS_MAIL_CEPH_NET=79), the backends
# in target/demo-backend-a and -b; both use the namespace prefix demo-, so they serve the
# same users. Without --keep, everything is stopped on exit, also on failure: the
# network namespaces are removed, and after a success the cluster's data as well (after
# a failure it stays in target/demo-hosts for its logs; the next run recreates it).
cluster_demo() {
	hosts_dir="$PWD/target/demo-hosts"
	dir_a="$PWD/target/demo-backend-a"
	dir_b="$PWD/target/demo-backend-b"
	export RADOS_MAIL_CEPH_NET=79 RADOS_MAIL_POOL=mail RADOS_MAIL_NS_PREFIX=demo-
	unset RADOS_MAIL_CEPH_DIR CEPH_KEYRING CEPH_ARGS RADOS_MAIL_DATA_POOL
	cluster_ok=0
	demo_py=""
	if [ $keep = 0 ]; then
		trap cluster_cleanup EXIT
		trap 'exit 130' INT
		trap 'exit 143' TERM
	fi
	cluster_t0=$SECONDS
	echo
	echo "== 1. a Ceph cluster of 3 hosts, each a network namespace with one mon and one OSD"
	./ci/dovecot-stop.sh "$dir_a" >/dev/null 2>&1 || true
	./ci/dovecot-stop.sh "$dir_b" >/dev/null 2>&1 || true
	rm -rf -- "$dir_a" "$dir_b"
	./ci/ceph-start.sh --hosts 3 --fresh "$hosts_dir"
	# shellcheck disable=SC1091
	source "$hosts_dir/env.sh"
	echo
	echo "== 2. two Dovecot backends on that cluster, no director: A and B serve the same users"
	./ci/dovecot-start.sh --driver rados --port-base 24700 --name demo-backend-a "$dir_a"
	./ci/dovecot-start.sh --driver rados --port-base 24720 --name demo-backend-b "$dir_b"
	# In the background (exec: $! is python's pid) so that on a signal the trap runs at
	# once and stops it; an orphan would go on delivering to the next run's backends.
	{ exec python3 - "$PWD/ci" "$hosts_dir" "$dir_a" 24700 "$dir_b" 24720 <<'PY'
"""The --cluster demo's mail traffic: deliveries over LMTP through backends A and B
while host 3 and then backend A are killed, then every mail read back over IMAP."""
import imaplib, os, random, re, smtplib, statistics, subprocess, sys, threading, time

ci, hosts_dir, dir_a, port_a, dir_b, port_b = sys.argv[1:]
RUN = time.strftime("%H%M%S")
USERS = [f"{name}-{RUN}@example.org" for name in ("alice", "bob", "carol")]
PER_STEP = 50
RETRY_BOUND = 120  # seconds a mail may take before the demo gives up on it
ID = re.compile(rb"^X-Demo-Id: (\d+)\r?$", re.M)


def say(text):
    print(f"   {text}", flush=True)


def step(text):
    print(f"\n== {text}", flush=True)


class Backend:
    def __init__(self, name, directory, port_base):
        self.name, self.dir, self.base = name, directory, int(port_base)
        self.imap, self.lmtp = self.base, self.base + 1
        self.up = True


A = Backend("A", dir_a, port_a)
B = Backend("B", dir_b, port_b)
sent = {}        # id -> (user, bytes)
through = {}     # id -> backend name that acknowledged it
took = {}        # id -> (start, seconds)
stats = {"4xx": 0, "lost_reply": 0, "broken_before_data": 0}
retried = []     # ids of mails resent after a lost reply
landed = {}      # id of a mail resent after a lost reply -> copies seen before the resend
armed = []       # a callback run once, right after a mail's data went to backend A


def make_mail(i):
    user = USERS[i % len(USERS)]
    rnd = random.Random(f"{RUN}-{i}")
    words = ["mail", "ceph", "rados", "object", "replica", "backend", "omap", "delivery"]
    lines = [" ".join(rnd.choice(words) for _ in range(rnd.randint(3, 12)))
             for _ in range(rnd.randint(5, 200))]
    head = (f"From: Demo sender <sender@example.org>\r\nTo: <{user}>\r\n"
            f"Subject: demo mail {i}\r\nMessage-ID: <demo-{RUN}-{i}@example.org>\r\n"
            f"X-Demo-Id: {i}\r\n\r\n")
    return user, head.encode() + "\r\n".join(lines).encode() + b"\r\n"


def lmtp_once(backend, user, data):
    """One LMTP transaction: ("ok"|"down"|"broken"|"lost_reply"|"temp"|"perm", code)."""
    try:
        conn = smtplib.LMTP("127.0.0.1", backend.lmtp, timeout=60)
    except (OSError, smtplib.SMTPException):
        return "down", None
    data_sent = False
    try:
        conn.ehlo_or_helo_if_needed()
        code, _ = conn.mail("sender@example.org")
        if code == 250:
            code, _ = conn.rcpt(user)
        if code == 250:
            code, _ = conn.docmd("DATA")
            if code == 354:
                # data ends with CRLF: only the final dot follows.
                conn.send(smtplib.quotedata(data.decode()).encode() + b".\r\n")
                data_sent = True
                if backend is A and armed:
                    armed.pop()()
                code, _ = conn.getreply()
        if code == 250:
            return "ok", code
        return ("temp" if 400 <= code < 500 else "perm"), code
    except (OSError, smtplib.SMTPException):
        return ("lost_reply" if data_sent else "broken"), None
    finally:
        conn.close()


def stored_copies(backend, user, i):
    """How many copies of mail i the user's INBOX holds, seen through `backend`."""
    imap = imaplib.IMAP4("127.0.0.1", backend.imap)
    try:
        imap.login(user, "pass")
        imap.select("INBOX", readonly=True)
        typ, data = imap.uid("SEARCH", "HEADER", "Message-ID", f'"<demo-{RUN}-{i}@example.org>"')
        return len([u for u in data[0].split() if u]) if typ == "OK" else -1
    finally:
        imap.logout()


def deliver(i, first):
    """Delivers mail i, first through backend `first`, as a sending MTA would: a
    backend that refuses connections is marked down; a connection that breaks is
    retried with the same bytes through the other backend; a 4xx is retried later."""
    user, data = make_mail(i)
    sent[i] = (user, data)
    other = B if first is A else A
    target = first if first.up else other
    start = time.monotonic()
    while time.monotonic() - start < RETRY_BOUND:
        result, code = lmtp_once(target, user, data)
        if result == "ok":
            through[i] = target.name
            took[i] = (start, time.monotonic() - start)
            return
        alt = B if target is A else A
        if result == "down":
            if target.up:
                say(f"mail {i}: backend {target.name} refuses connections: marked down, "
                    f"delivering through {alt.name} from now on")
            target.up = False
            if not alt.up:
                time.sleep(1)
            target = alt
        elif result in ("lost_reply", "broken"):
            stats[result if result == "lost_reply" else "broken_before_data"] += 1
            if result == "lost_reply":
                retried.append(i)
                say(f"mail {i}: connection to backend {target.name} broke after the mail was "
                    f"sent, without a reply (it may be stored): sending the same bytes "
                    f"through {alt.name}")
                landed[i] = stored_copies(alt, user, i)
                say(f"mail {i}: (a look through {alt.name} first, for this demo only: "
                    f"{landed[i]} cop{'y' if landed[i] == 1 else 'ies'} stored before the resend)")
            else:
                say(f"mail {i}: connection to backend {target.name} broke before the mail was "
                    f"sent: sending it through {alt.name}")
            target = alt
        elif result == "temp":
            stats["4xx"] += 1
            say(f"mail {i}: backend {target.name} answered {code} (temporary): retrying in 1 s")
            time.sleep(1)
        else:
            raise SystemExit(f"demo: mail {i}: backend {target.name} answered {code} (permanent)")
    raise SystemExit(f"demo: mail {i} not delivered within {RETRY_BOUND} s")


def deliver_range(lo, hi, during=None, at=None):
    """Delivers mails lo..hi-1 alternately through A and B; calls during() just
    before mail `at` (the fault then lands while the next deliveries run)."""
    for i in range(lo, hi):
        if i == at:
            during()
        deliver(i, A if i % 2 == 0 else B)
    counts = {n: sum(1 for i in range(lo, hi) if through[i] == n) for n in "AB"}
    say(f"mails {lo}..{hi - 1} delivered: {counts['A']} through A, {counts['B']} through B")


def ceph_host(action, host=3):
    return subprocess.Popen([f"{ci}/ceph-host.sh", hosts_dir, str(host), action],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_all(backend):
    """{id: [bodies]} of every user's INBOX, read through `backend` over IMAP."""
    found = {}
    for user in USERS:
        imap = imaplib.IMAP4("127.0.0.1", backend.imap)
        try:
            imap.login(user, "pass")
            typ, data = imap.select("INBOX", readonly=True)
            if typ != "OK":
                raise SystemExit(f"demo: SELECT INBOX of {user} through {backend.name}: {data}")
            typ, data = imap.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
            if typ != "OK":
                raise SystemExit(f"demo: FETCH of {user} through {backend.name}: {data}")
            for part in data:
                if isinstance(part, tuple):
                    m = ID.search(part[1])
                    key = int(m.group(1)) if m else -1
                    found.setdefault((user, key), []).append(part[1])
        finally:
            imap.logout()
    return found


def check(found, name):
    """Prints and returns (readable, lost, duplicated, differing) of one backend's view."""
    readable = lost = dup = differ = 0
    for i, (user, data) in sent.items():
        copies = found.get((user, i), [])
        if not copies:
            lost += 1
            say(f"through {name}: mail {i} ({user}) is missing")
            continue
        dup += len(copies) - 1
        if len(copies) > 1:
            say(f"through {name}: mail {i} ({user}) is stored {len(copies)} times")
        # Dovecot prepends Return-Path/Delivered-To/Received; the rest is ours.
        if all(c.endswith(data) for c in copies):
            readable += 1
        else:
            differ += 1
            say(f"through {name}: mail {i} ({user}) differs from what was sent")
    strays = [k for k in found if k[1] not in sent or sent[k[1]][0] != k[0]]
    for k in strays:
        say(f"through {name}: unexpected mail {k}")
    return readable, lost, dup + len(strays), differ


t_demo = time.monotonic()
say(f"users: {', '.join(USERS)}; backend A: IMAP 127.0.0.1:{A.imap} LMTP :{A.lmtp}; "
    f"backend B: IMAP 127.0.0.1:{B.imap} LMTP :{B.lmtp}")

step(f"3. {PER_STEP} mails over LMTP, alternately through A and B")
deliver_range(0, PER_STEP)
normal = statistics.median(took[i][1] for i in range(PER_STEP))
say(f"median delivery time {normal:.3f} s")

step(f"4. host 3 dies (SIGKILL of its OSD and mon, a power cut) while {PER_STEP} more are delivered")
killer = {}
t_kill = {}


def kill_host():
    t_kill["t"] = time.monotonic()
    killer["p"] = ceph_host("kill")


deliver_range(PER_STEP, 2 * PER_STEP, kill_host, PER_STEP + 5)
say(killer["p"].communicate()[0].strip())
after = [(i, s) for i, (t, s) in took.items() if t + s >= t_kill["t"] and PER_STEP <= i < 2 * PER_STEP]
worst = max(after, key=lambda x: x[1])
stall = worst[1]
say(f"longest delivery around the host's death: {stall:.1f} s (mail {worst[0]} through "
    f"{through[worst[0]]}); median before: {normal:.3f} s")
stat = subprocess.run(["ceph", "--conf", f"{hosts_dir}/ceph.conf", "--connect-timeout", "10",
                       "osd", "stat"], capture_output=True, text=True, timeout=30)
say(f"ceph osd stat: {stat.stdout.strip() or stat.stderr.strip()}")

step(f"5. backend A is killed (SIGKILL of all its Dovecot processes) while {PER_STEP} more are delivered")
killed = {}


def kill_a():
    crash = subprocess.run([f"{ci}/dovecot-stop.sh", "--kill", A.dir], capture_output=True, text=True, check=True)
    pids = [int(p) for p in crash.stdout.split()]
    killed["pids"] = pids
    say(f"backend A: SIGKILL sent to its master and {len(pids) - 1} other processes, "
        f"{killed['delay'] * 1000:.0f} ms after mail {killed['mail']}'s data was sent to it")


def gone(pid):
    """True once pid has exited (a zombie not yet reaped by init counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def kill_a_during(i):
    """Arms the kill of A for the moment mail i's data has been sent to A: after a
    random delay of up to the median delivery time, so that A dies before, while or
    after it stores the mail, and its reply is lost or not."""
    def fire():
        killed["mail"], killed["delay"] = i, random.uniform(0, normal)
        threading.Timer(killed["delay"], kill_a).start()
    armed.append(fire)


at = 2 * PER_STEP + 10  # even: offered to A first
deliver_range(2 * PER_STEP, 3 * PER_STEP, lambda: kill_a_during(at), at)
deadline = time.monotonic() + 10
while "pids" not in killed or not all(gone(p) for p in killed["pids"]):
    if time.monotonic() > deadline:
        raise SystemExit("demo: backend A's processes did not die within 10 s")
    time.sleep(0.1)

n = len(sent)
total = {name: sum(1 for v in through.values() if v == name) for name in "AB"}
views = {}
step(f"6. every mail read back over IMAP through backend B (host 3 still dead)")
found_b = read_all(B)
views["B"] = check(found_b, "B")
for i in retried:
    copies = len(found_b.get((sent[i][0], i), []))
    say(f"mail {i}, resent through B after its reply from A was lost: stored {copies} time(s) "
        f"({landed[i]} before the resend)")
say(f"readable through backend B: {views['B'][0]}/{n}")

step("7. backend A started again (ci/dovecot-start.sh): every mail read back through it too")
if os.path.exists(f"/proc/{killed['pids'][0]}"):
    # Dovecot takes a zombie for a running master; init reaps it only now and then here.
    os.unlink(os.path.join(A.dir, "run", "master.pid"))
start = subprocess.run([f"{ci}/dovecot-start.sh", "--driver", "rados", "--port-base", str(A.base),
                        "--name", "demo-backend-a", A.dir], capture_output=True, text=True)
if start.returncode != 0:
    print(start.stderr, file=sys.stderr)
    raise SystemExit("demo: backend A did not start again")
views["A"] = check(read_all(A), "A")
say(f"readable through backend A (restarted after its kill): {views['A'][0]}/{n}")

lost = max(v[1] for v in views.values())
dup = max(v[2] for v in views.values())
differ = max(v[3] for v in views.values())
step("summary")
say(f"delivered {len(through)} ({total['A']} through A, {total['B']} through B) "
    f"to {len(USERS)} users; 4xx answers {stats['4xx']}; "
    f"connections broken without a reply, retried through the other backend: {stats['lost_reply']}")
say(f"readable through backend B: {views['B'][0]}/{n}; through backend A, restarted: {views['A'][0]}/{n}")
say(f"lost {lost}  duplicated {dup}  differing bytes {differ}")
say(f"stall when host 3 died: longest delivery {stall:.1f} s (median {normal:.3f} s); "
    f"the traffic took {time.monotonic() - t_demo:.0f} s")
if len(through) != n or lost or dup or differ or any(v[0] != n for v in views.values()):
    print("demo: FAILED: a mail is lost, duplicated, differs or is unreadable", flush=True)
    sys.exit(1)
PY
	} &
	demo_py=$!
	wait "$demo_py"
	demo_py=""
	cluster_ok=1
	echo "demo: the cluster demo took $((SECONDS - cluster_t0)) s in all"
	if [ $keep = 1 ]; then
		echo
		echo "left running (host 3 stays dead; ./ci/ceph-host.sh target/demo-hosts 3 start brings it back):"
		echo "  source target/demo-hosts/env.sh; IMAP on 127.0.0.1:24700 (A) and 127.0.0.1:24720 (B), any user, password 'pass'"
		echo "  stop with: ./ci/dovecot-stop.sh target/demo-backend-a; ./ci/dovecot-stop.sh target/demo-backend-b;"
		echo "             ./ci/ceph-stop.sh --wipe target/demo-hosts"
	fi
}

# EXIT trap of the --cluster mode without --keep: stops both backends and the cluster,
# removes the network namespaces, and the cluster's data after a success; exits non-zero
# unless the traffic part ran to its end and succeeded.
cluster_cleanup() {
	local rc=$? left
	trap - EXIT
	[ $cluster_ok = 1 ] || [ $rc != 0 ] || rc=1
	[ -z "$demo_py" ] || kill "$demo_py" 2>/dev/null || true
	echo
	echo "== stopping both backends and the 3 hosts, removing their network namespaces"
	./ci/dovecot-stop.sh "$dir_a" || rc=1
	./ci/dovecot-stop.sh "$dir_b" || rc=1
	if [ $rc = 0 ]; then
		./ci/ceph-stop.sh --wipe "$hosts_dir" || rc=1
	else
		./ci/ceph-stop.sh "$hosts_dir" || rc=1
		echo "demo: failed; the cluster's data and logs stay in $hosts_dir (the next run recreates it)" >&2
	fi
	left="$(ip netns list | awk '/^rmc79h/ { print $1 }' | tr '\n' ' ')"
	if [ -n "$left" ]; then
		echo "demo: network namespaces left: $left" >&2
		rc=1
	fi
	exit $rc
}

./ci/install-deps.sh
if [ $installed = 1 ]; then
	# What the package installed; nothing of this checkout's builds is used.
	moduledir="$(sed -n 's/^dovecot_moduledir=//p' /usr/lib/dovecot/dovecot-config)"
	installed_plugin="$moduledir/lib20_rados_plugin.so"
	for f in "$installed_plugin" /usr/bin/rados-mail; do
		[ -f "$f" ] || { echo "demo: $f not installed (ci/package.sh, then dpkg -i the .deb)" >&2; exit 1; }
	done
	echo "demo: installed: $(dpkg-query -W -f='${Package} ${Version}' rados-mail 2>/dev/null ||
		echo 'not from a package'); plugin $installed_plugin; command $(/usr/bin/rados-mail --version)"
else
	cargo build --release -p rados-mail-ffi
	make -C dovecot-glue RADOS_MAIL_LIB="$PWD/target/release/librados_mail.a"
fi

if [ $cluster = 1 ]; then
	cluster_demo
	exit 0
fi

ceph_dir="${RADOS_MAIL_CEPH_DIR:-$PWD/target/ceph}"
# Unix socket paths are short: a deep checkout gets its cluster under /tmp instead.
if [ ${#ceph_dir} -gt 80 ]; then
	ceph_dir="/tmp/rados-mail-ceph-$(printf '%s' "$PWD" | md5sum | cut -c1-8)"
fi
dovecot_dir="$PWD/target/demo-dovecot"
port_base=24300
start_args=()
stop_ceph=1
if [ $installed = 1 ]; then
	dovecot_dir="$PWD/target/demo-installed"
	port_base=24310
	# A cluster that existed before is left running: ci/test.sh runs this step on the
	# cluster its other steps use.
	[ ! -f "$ceph_dir/ceph.conf" ] || stop_ceph=0
	# --plugin-dir only satisfies dovecot-start.sh; the !included mail_plugin_dir, which
	# comes later and wins, is Dovecot's own module dir as the package left it.
	mkdir -p "$dovecot_dir"
	printf 'mail_plugin_dir = %s\nmail_debug = yes\n' "$moduledir" >"$dovecot_dir/installed.conf"
	start_args=(--plugin-dir "$moduledir" --extra-conf "$dovecot_dir/installed.conf")
fi
if [ $keep = 0 ]; then
	trap './ci/dovecot-stop.sh "$dovecot_dir" >/dev/null 2>&1 || true
	      [ $stop_ceph = 0 ] || ./ci/ceph-stop.sh "$ceph_dir" >/dev/null 2>&1 || true' EXIT
fi
./ci/ceph-start.sh "$ceph_dir"
# shellcheck disable=SC1091
source "$ceph_dir/env.sh"
# The demo keeps its bodies in the index pool (its Dovecot has no rados_data_pool): the
# erasure-coded pool a 3-OSD cluster's env.sh exports must not reach the `rados-mail`
# command below either, or it would contradict the deployment's format record.
unset RADOS_MAIL_DATA_POOL
./ci/dovecot-stop.sh "$dovecot_dir" >/dev/null 2>&1 || true
RADOS_MAIL_NS_PREFIX=demo- ./ci/dovecot-start.sh --driver rados --port-base $port_base \
	${start_args[@]+"${start_args[@]}"} "$dovecot_dir"
# shellcheck disable=SC1091
source "$dovecot_dir/env.sh"

user="alice-$(date +%s)@example.org"
python3 - "$user" "$DOVECOT_LMTP_PORT" "$DOVECOT_IMAP_PORT" <<'PY'
import imaplib, smtplib, sys
user, lmtp_port, imap_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mail = (b"From: Bob <bob@example.org>\r\nTo: " + user.encode() + b"\r\n"
        b"Subject: hello from RADOS\r\n\r\nThis mail lives in Ceph.\r\n")
with smtplib.LMTP("127.0.0.1", lmtp_port) as lmtp:
    refused = lmtp.sendmail("bob@example.org", [user], mail)
assert not refused, refused
print(f"delivered over LMTP to {user}")
imap = imaplib.IMAP4("127.0.0.1", imap_port)
imap.login(user, "pass")
typ, data = imap.select("INBOX")
print(f"IMAP SELECT INBOX: {data[0].decode()} message(s)")
typ, data = imap.uid("FETCH", "1:*", "(UID FLAGS BODY[])")
body = data[0][1]
print(f"IMAP FETCH: {data[0][0].decode()}")
print(body.decode().rstrip())
assert body.endswith(mail), "the mail read back differs from the one delivered"
imap.logout()
print("read back over IMAP: the delivered mail is there, byte for byte")
PY
echo
echo "The user's objects in RADOS (namespace demo-/$user), with Ceph's own tool:"
rados -p "$RADOS_MAIL_POOL" -N "demo-/$user" ls | sort
echo "omap keys of the mailbox list:"
rados -p "$RADOS_MAIL_POOL" -N "demo-/$user" listomapkeys mailboxes 2>/dev/null || true
if [ $installed = 1 ]; then
	# The imap process that served the session stays (service_count = 0): the plugin
	# file it mapped is the one Dovecot loaded.
	master="$(tr -dc '0-9' <"$dovecot_dir/run/master.pid")"
	loaded="" pid=""
	for pid in $(pgrep -P "$master" -f '/imap( |$)' || true); do
		loaded="$(awk '$6 ~ /lib20_rados_plugin\.so/ { print $6 }' "/proc/$pid/maps" | sort -u)"
		[ -z "$loaded" ] || break
	done
	echo
	echo "plugin loaded by the imap process (pid $pid), from /proc/$pid/maps: ${loaded:-none}"
	if [ "$loaded" != "$installed_plugin" ]; then
		echo "demo: Dovecot did not load the installed plugin $installed_plugin" >&2
		exit 1
	fi
	echo "its version line in the log (mail_debug):"
	grep -F 'rados: rados-mail ' "$DOVECOT_LOG" | tail -n 1 | grep . ||
		{ echo "demo: no version line in $DOVECOT_LOG" >&2; exit 1; }
	echo
	echo "the same mail through the installed command, with the plugin's settings:"
	echo "\$ rados-mail --doveconf=$DOVECOT_CONF mails $user INBOX"
	/usr/bin/rados-mail --doveconf="$DOVECOT_CONF" mails "$user" INBOX
fi
if [ $keep = 1 ]; then
	echo "left running: source $ceph_dir/env.sh; IMAP on 127.0.0.1:$DOVECOT_IMAP_PORT (any user, password 'pass')"
fi
