#!/usr/bin/env python3
"""Dovecot with the rados plugin side by side with Dovecot's own sdbox on local disk, in
one run: the same workloads through real LMTP and IMAP clients against two Dovecot
instances, one per driver, and the ratio rados/sdbox for each.

Usage: benches/dovecot/dovecot-bench.py [--quick] [--mails N] [--clients C] [--size BYTES]
                                        [--batch B] [--reps R] [--port-base P]
                                        [--plugin-dir DIR]
Needs: the plugin built (make -C dovecot-glue), the cluster of $CEPH_CONF (default
target/ceph), root (Dovecot's master). Prints Markdown tables naming the machine and the
commit; progress goes to stderr.

Each workload runs with --clients concurrent clients (one user each). Clients log in and
select first; the clock (and the CPU counters) run from the moment all of them are ready
until the last one is done, so a rate is the operations of all clients over that span.
CPU comes from the processes' own counters: every process of the Dovecot instance, imap,
lmtp and login processes included (live ones: the run time of their threads,
/proc/<pid>/task/*/schedstat, which is what utime + stime add up to, in ns rather than 10 ms
ticks; those that exited: the master's cutime + cstime from /proc/<pid>/stat), and for
rados the OSD (ceph-osd) as well; it is given per operation of the row's unit (mail,
command or session). For LMTP it also gives the lmtp processes' own CPU and context
switches per mail (/proc/<pid>/task/*/status, voluntary + involuntary, all threads).
Sessions run twice: with Dovecot's default (a new imap process per session) and, after a
restart of the same instance with `service imap { service_count = 0 }` (--extra-conf of
ci/dovecot-start.sh), with imap processes reused.
"""

import argparse
import glob
import json
import glob
import imaplib
import os
import platform
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TICKS = os.sysconf("SC_CLK_TCK")
# How long after the last client finished the CPU counters are read: imap processes
# exit at logout and are counted once the master has reaped them.
REAP_WAIT = 0.3


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def start(driver, d, port_base, plugin_dir, extra_conf=None):
    env = dict(os.environ, RADOS_MAIL_NS_PREFIX=f"bench-{os.getpid()}-")
    cmd = [os.path.join(ROOT, "ci", "dovecot-start.sh"), "--driver", driver,
           "--port-base", str(port_base)]
    if plugin_dir:
        cmd += ["--plugin-dir", plugin_dir]
    if extra_conf:
        cmd += ["--extra-conf", extra_conf]
    subprocess.run(cmd + [d], check=True, env=env, stdout=subprocess.DEVNULL)


def stop(d):
    subprocess.run([os.path.join(ROOT, "ci", "dovecot-stop.sh"), d], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- processes' own counters ------------------------------------------------------------

def stat_fields(pid):
    """(comm, ppid, cutime + cstime in ns), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    comm = s[s.index("(") + 1:s.rindex(")")]
    rest = s[s.rindex(")") + 2:].split()
    return comm, int(rest[1]), (int(rest[13]) + int(rest[14])) * 10**9 // TICKS


def cpu_ns(pid):
    """CPU time of pid's live threads in ns (/proc/<pid>/task/*/schedstat: the same
    accounting as utime + stime, without their 10 ms granularity)."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, IndexError, ValueError):
            pass
    return total


def ctx_switches(pid):
    """(voluntary, involuntary) context switches over all threads of pid."""
    vol = invol = 0
    for status in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            with open(status) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        invol += int(line.split()[1])
        except OSError:
            pass
    return vol, invol


class Meter:
    """CPU of one Dovecot instance's process tree (and the OSD's), and the lmtp processes'
    CPU and context switches, between start() and stop()."""

    def __init__(self, dovecot_dir, cluster_pids):
        with open(os.path.join(dovecot_dir, "run", "master.pid")) as f:
            self.master = int(f.read().strip())
        self.cluster_pids = cluster_pids  # {"osd": [pids], "mon": [pids]}

    def _snapshot(self):
        procs = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                st = stat_fields(int(entry))
                if st:
                    procs[int(entry)] = st
        children = {}
        for pid, (_, ppid, _) in procs.items():
            children.setdefault(ppid, []).append(pid)
        tree, todo = [], [self.master]
        while todo:
            pid = todo.pop()
            if pid in procs:
                tree.append(pid)
                todo += children.get(pid, [])
        # Live processes: their threads' CPU; exited ones: in their parent's (the
        # master's) cutime + cstime once reaped.
        snap = {"dovecot": sum(cpu_ns(p) + procs[p][2] for p in tree), "lmtp": {}}
        for pid in tree:
            if procs[pid][0] == "lmtp":
                snap["lmtp"][pid] = (cpu_ns(pid), *ctx_switches(pid))
        for kind, pids in self.cluster_pids.items():
            snap[kind] = sum(cpu_ns(p) for p in pids)
        return snap

    def start(self):
        self.before = self._snapshot()

    def stop(self):
        time.sleep(REAP_WAIT)
        after = self._snapshot()
        b = self.before
        out = {k: (after[k] - b[k]) / 1e6 for k in ("dovecot", *self.cluster_pids)}
        gone = set(b["lmtp"]) - set(after["lmtp"])
        if gone:
            log(f"  warning: lmtp process(es) {sorted(gone)} exited during the workload: "
                f"their CPU is in the total but their context switches are lost")
        lm = [0, 0, 0]
        for pid, vals in after["lmtp"].items():
            base = b["lmtp"].get(pid, (0, 0, 0))
            for i in range(3):
                lm[i] += vals[i] - base[i]
        out["lmtp_cpu"] = lm[0] / 1e6
        out["lmtp_vol"], out["lmtp_invol"] = lm[1], lm[2]
        return out


def cluster_pids():
    """The local cluster's OSD and mon pids, from the pid files of its run directory
    (ci/ceph-start.sh's layout); empty when there are none (a remote cluster)."""
    run = os.path.join(os.path.dirname(os.path.abspath(os.environ["CEPH_CONF"])), "run")
    out = {}
    for kind in ("osd", "mon"):
        pids = []
        for pidfile in glob.glob(os.path.join(run, f"{kind}.*.pid")):
            with open(pidfile) as f:
                pids.append(int(f.read().strip()))
        out[kind] = pids
    return out


# --- workloads --------------------------------------------------------------------------

def mail(i, size):
    head = (f"From: bench@example.org\r\nTo: u@example.org\r\nSubject: bench {i}\r\n"
            f"Message-ID: <{i}.{time.time_ns()}@example.org>\r\n\r\n").encode()
    line = b"x" * 74 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def check(result):
    typ, data = result
    assert typ == "OK", data
    return data


def parallel(clients, prepare, run, finish, meter):
    """Each client k: state = prepare(k) (untimed), n = run(k, state) (timed),
    finish(k, state) (untimed). Returns (operations per second, operations, meter
    reading of the timed span)."""
    counts = [0] * clients
    states = [None] * clients
    errors = []
    span = {}

    def begin():
        meter.start()
        span["t0"] = time.monotonic()

    def end():
        span["t1"] = time.monotonic()
        span["meter"] = meter.stop()

    ready = threading.Barrier(clients, action=begin)
    done = threading.Barrier(clients, action=end)

    def client(k):
        try:
            states[k] = prepare(k)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
            ready.abort()
            done.abort()
            return
        try:
            try:
                ready.wait()
                counts[k] = run(k, states[k])
            except threading.BrokenBarrierError:
                return
            except Exception as e:  # noqa: BLE001
                errors.append(e)
                done.abort()
                return
            try:
                done.wait()
            except threading.BrokenBarrierError:
                pass
        finally:
            try:
                finish(k, states[k])
            except Exception as e:  # noqa: BLE001
                errors.append(e)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    n = sum(counts)
    return n / (span["t1"] - span["t0"]), n, span["meter"]


def imap_session(port, user, mailbox=None):
    c = imaplib.IMAP4("127.0.0.1", port, timeout=300)
    c.login(user, "pass")
    if mailbox:
        check(c.select(mailbox))
    return c


def logout(_k, c):
    if c is not None:
        c.logout()


def workloads(port, user_prefix, args, meter):
    """The workloads, in order; returns {row: (rate, ops, meter reading)}."""
    imap_port, lmtp_port = port, port + 1
    users = [f"{user_prefix}-{k}" for k in range(args.clients)]
    per = max(1, args.mails // args.clients)
    batch, reps = args.batch, args.reps
    results = {}

    def lmtp_prepare(k):
        c = smtplib.LMTP("127.0.0.1", lmtp_port, timeout=300)
        c.ehlo_or_helo_if_needed()
        return c

    def lmtp_run(k, c):
        for i in range(per):
            refused = c.sendmail("bench@example.org", [users[k]], mail(i, args.size))
            assert not refused, refused
        return per

    def lmtp_finish(k, c):
        c.quit()

    def append_prepare(k):
        c = imap_session(imap_port, users[k])
        check(c.create("Bench"))
        return c

    def append_run(k, c):
        for i in range(per):
            check(c.append("Bench", None, None, mail(i, args.size)))
        return per

    def fetch_prepare(k):
        # A new session, so a new imap process with nothing cached.
        c = imap_session(imap_port, users[k])
        check(c.select("Bench", readonly=True))
        return c

    def fetch_run(k, c):
        data = check(c.uid("FETCH", "1:*", "(BODY.PEEK[])"))
        got = sum(1 for part in data if isinstance(part, tuple))
        assert got == per, (got, per)
        return per

    def cached_prepare(k):
        c = fetch_prepare(k)
        fetch_run(k, c)
        return c

    def cached_run(k, c):
        for _ in range(reps):
            fetch_run(k, c)
        return reps * per

    def store_prepare(k):
        c = imap_session(imap_port, users[k], "Bench")
        uids = check(c.uid("SEARCH", "ALL"))[0].split()
        assert len(uids) == per, (len(uids), per)
        return c, uids

    def store_run(k, state):
        c, uids = state
        for uid in uids:
            check(c.uid("STORE", uid, "+FLAGS.SILENT", r"(\Flagged)"))
        return per

    def store_finish(k, state):
        state[0].logout()

    # COPY: batch mails of Bench into Copies, reps times (Copies ends with reps x batch).
    def copy_prepare(k):
        c = imap_session(imap_port, users[k], "Bench")
        check(c.create("Copies"))
        return c

    def copy_run(k, c):
        for _ in range(reps):
            check(c.uid("COPY", f"1:{batch}", "Copies"))
        return reps

    # MOVE: Copies -> Moved, batch mails per command.
    def move_prepare(k):
        c = imap_session(imap_port, users[k])
        check(c.create("Moved"))
        check(c.select("Copies"))
        return c

    def move_run(k, c):
        for j in range(reps):
            check(c.uid("MOVE", f"{j * batch + 1}:{(j + 1) * batch}", "Moved"))
        return reps

    # UID EXPUNGE (UIDPLUS) of batch \Deleted mails of Moved per command.
    def expunge_prepare(k):
        c = imap_session(imap_port, users[k], "Moved")
        check(c.uid("STORE", "1:*", "+FLAGS.SILENT", r"(\Deleted)"))
        return c

    def expunge_run(k, c):
        for j in range(reps):
            data = check(c.uid("EXPUNGE", f"{j * batch + 1}:{(j + 1) * batch}"))
            assert data, data
        return reps

    def expunge_finish(k, c):
        n = int(check(c.select("Moved"))[0])
        assert n == 0, f"{n} mails left in Moved"
        c.logout()

    rows = [
        ("LMTP delivery (mails/s)", lmtp_prepare, lmtp_run, lmtp_finish),
        ("IMAP APPEND (mails/s)", append_prepare, append_run, logout),
        ("IMAP FETCH BODY[], cold (mails/s)", fetch_prepare, fetch_run, logout),
        ("IMAP FETCH BODY[] again, same session (mails/s)", cached_prepare, cached_run, logout),
        ("IMAP UID STORE, one mail each (commands/s)", store_prepare, store_run, store_finish),
        (f"IMAP UID COPY of {batch} (commands/s)", copy_prepare, copy_run, logout),
        (f"IMAP UID MOVE of {batch} (commands/s)", move_prepare, move_run, logout),
        (f"IMAP UID EXPUNGE of {batch} (commands/s)", expunge_prepare, expunge_run,
         expunge_finish),
    ]
    for name, prepare, run, finish in rows:
        results[name] = parallel(args.clients, prepare, run, finish, meter)
        log(f"  {name}: {results[name][0]:.1f}")
    return results


def osd_rw_ops():
    """Guarded writes (`op_rw`: the mailbox head commits, whether their guard held or not)
    counted by the local OSDs so far, from their admin sockets; None without one."""
    run_dir = os.path.join(os.path.dirname(os.environ["CEPH_CONF"]), "run")
    total = None
    for asok in sorted(glob.glob(os.path.join(run_dir, "osd.*.asok"))):
        out = subprocess.run(["ceph", "--admin-daemon", asok, "perf", "dump", "osd"],
                             capture_output=True, text=True, timeout=30)
        if out.returncode == 0:
            total = (total or 0) + json.loads(out.stdout)["osd"]["op_rw"]
    return total


def contention(port, user_prefix, args, meter, rados):
    """LMTP from `args.contention_clients` clients into one mailbox, and into a mailbox each:
    rates, and for rados the guarded writes per commit beyond one (every delivery commits
    once; a head write whose guard failed is one more `op_rw`, and so is each WAL apply's
    shard write and trim, 2 per 32 commits)."""
    lmtp_port = port + 1
    out = {}
    for label, shared in (("a mailbox each", False), ("one mailbox", True)):
        users = [f"{user_prefix}-c{'s' if shared else k}" for k in range(args.contention_clients)]

        def prepare(k, users=users):
            c = smtplib.LMTP("127.0.0.1", lmtp_port, timeout=300)
            c.ehlo_or_helo_if_needed()
            # The mailbox exists before the clock starts.
            assert not c.sendmail("bench@example.org", [users[k]], mail(0, args.size))
            return c

        def run(k, c, users=users):
            per = max(1, args.mails // args.contention_clients)
            for i in range(per):
                assert not c.sendmail("bench@example.org", [users[k]], mail(i, args.size))
            return per

        rw0 = osd_rw_ops() if rados else None
        rate, n, _ = parallel(args.contention_clients, prepare, run, lambda _k, c: c.quit(), meter)
        rw1 = osd_rw_ops() if rados else None
        conflicts = (rw1 - rw0) / n - 1 if rw0 is not None and rw1 is not None else None
        out[label] = (rate, conflicts)
        log(f"  LMTP, {args.contention_clients} clients, {label}: {rate:.1f} mails/s"
            + (f", {conflicts:.2f} failed guards per commit" if conflicts is not None else ""))
    return out


def session_workload(port, user_prefix, args, meter):
    """New sessions: login, SELECT with its sync, STATUS, logout, one after the other."""
    users = [f"{user_prefix}-{k}" for k in range(args.clients)]
    sessions = max(1, (args.mails // args.clients) // 10)

    def one(k):
        c = imap_session(port, users[k], "Bench")
        check(c.status("INBOX", "(MESSAGES UIDNEXT HIGHESTMODSEQ)"))
        c.logout()

    # Warm-up, untimed: one session per client, all open at once, so that with process
    # reuse there is an idle imap process for each client when the clock starts.
    together = threading.Barrier(args.clients)

    def prepare(k):
        c = imap_session(port, users[k], "Bench")
        together.wait(timeout=300)
        c.logout()

    def run(k, _):
        for _ in range(sessions):
            one(k)
        return sessions

    return parallel(args.clients, prepare, run, lambda k, s: None, meter)


SESSIONS = "login + SELECT + STATUS + logout (sessions/s)"
SESSIONS_NEW = f"{SESSIONS}, a new imap process each"
SESSIONS_REUSE = f"{SESSIONS}, imap processes reused (`service_count = 0`)"
REUSE_CONF = "service imap {\n  service_count = 0\n}\n"
# ci/dovecot-start.sh reuses imap processes by default; the first run does not.
NEW_CONF = "service imap {\n  service_count = 1\n}\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="small run for CI (60 mails, 2 clients, batches of 30, 2 reps)")
    ap.add_argument("--mails", type=int, default=400, help="mails delivered and appended")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--contention-clients", type=int, default=8,
                    help="LMTP clients delivering into one mailbox, and into a mailbox each")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=100,
                    help="mails per COPY/MOVE/EXPUNGE command (at most mails/clients)")
    ap.add_argument("--reps", type=int, default=5,
                    help="COPY/MOVE/EXPUNGE commands per client")
    ap.add_argument("--port-base", type=int, default=24800,
                    help="sdbox uses P..P+2, rados P+10..P+12")
    ap.add_argument("--plugin-dir",
                    help="where lib20_rados_plugin.so is (default: dovecot-glue/build)")
    args = ap.parse_args()
    if args.quick:
        args.mails, args.clients, args.batch, args.reps = 60, 2, 30, 2
        args.contention_clients = 2
    if args.batch > args.mails // args.clients:
        ap.error(f"--batch {args.batch} is more than the {args.mails // args.clients} mails "
                 f"each client has")
    if not os.environ.get("CEPH_CONF"):
        os.environ["CEPH_CONF"] = os.path.join(ROOT, "target", "ceph", "ceph.conf")
    pids = cluster_pids()
    if not pids["osd"]:
        log("note: no local OSD pid file next to $CEPH_CONF: rados CPU is Dovecot's only")

    root = tempfile.mkdtemp(prefix="dovecot-bench-")
    os.chmod(root, 0o711)
    reuse_conf = os.path.join(root, "imap-reuse.conf")
    new_conf = os.path.join(root, "imap-new.conf")
    for path, text in ((reuse_conf, REUSE_CONF), (new_conf, NEW_CONF)):
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
    results, contended = {}, {}
    try:
        for i, driver in enumerate(["sdbox", "rados"]):
            d = os.path.join(root, driver)
            port = args.port_base + 10 * i
            user_prefix = f"bench-{os.getpid()}"
            start(driver, d, port, args.plugin_dir, new_conf)
            log(f"{driver}: {args.mails} mails of {args.size} B, {args.clients} clients")
            try:
                meter = Meter(d, pids if driver == "rados" else {})
                results[driver] = workloads(port, user_prefix, args, meter)
                contended[driver] = contention(port, user_prefix, args, meter, driver == "rados")
                results[driver][SESSIONS_NEW] = session_workload(port, user_prefix, args, meter)
                log(f"  {SESSIONS_NEW}: {results[driver][SESSIONS_NEW][0]:.1f}")
            finally:
                stop(d)
            # The same instance (mail and index kept) again, with imap processes reused.
            start(driver, d, port, args.plugin_dir, reuse_conf)
            try:
                meter = Meter(d, pids if driver == "rados" else {})
                results[driver][SESSIONS_REUSE] = session_workload(port, user_prefix, args, meter)
                log(f"  {SESSIONS_REUSE}: {results[driver][SESSIONS_REUSE][0]:.1f}")
            finally:
                stop(d)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(args, results, pids, contended)


def ratio(a, b, digits=2):
    return f"×{a / b:.{digits}f}" if b > 0 else "—"


def report(args, results, pids, contended):
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    dovecot = subprocess.run(['dovecot', '--version'], capture_output=True, text=True).stdout.strip()
    print(f"Dovecot {dovecot}, {os.cpu_count()} cores ({cpu}), {platform.system()} "
          f"{platform.release()}, commit {commit}{'+dirty' if dirty else ''}; {args.mails} mails "
          f"of {args.size} B, {args.clients} concurrent clients, COPY/MOVE/EXPUNGE {args.reps} "
          f"commands of {args.batch} mails per client; rados = single-node Ceph (1 OSD, "
          f"bluestore on a file) on the same machine, sdbox = local disk")
    print()
    osd = " (of which OSD)" if pids["osd"] else ""
    print(f"| workload | sdbox | rados | rados / sdbox | CPU-ms per op, sdbox | "
          f"CPU-ms per op, rados{osd} | CPU rados / sdbox |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in results["sdbox"]:
        (s, sn, sm), (r, rn, rm) = results["sdbox"][name], results["rados"][name]
        s_cpu = sm["dovecot"] / sn
        r_cpu = (rm["dovecot"] + rm.get("osd", 0)) / rn
        r_cell = f"{r_cpu:.2f}" + (f" ({rm['osd'] / rn:.2f})" if pids["osd"] else "")
        print(f"| {name} | {s:,.1f} | {r:,.1f} | {ratio(r, s)} | {s_cpu:.2f} | {r_cell} | "
              f"{ratio(r_cpu, s_cpu)} |")
    print()
    name = "LMTP delivery (mails/s)"
    (_, sn, sm), (_, rn, rm) = results["sdbox"][name], results["rados"][name]
    print("| LMTP delivery, per mail | sdbox | rados | rados / sdbox |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| CPU-ms in the lmtp processes | {sm['lmtp_cpu'] / sn:.2f} | {rm['lmtp_cpu'] / rn:.2f} | "
          f"{ratio(rm['lmtp_cpu'] / rn, sm['lmtp_cpu'] / sn)} |")
    if pids["osd"]:
        print(f"| CPU-ms in the OSD | — | {rm['osd'] / rn:.2f} | — |")
    s_cs, r_cs = (sm["lmtp_vol"] + sm["lmtp_invol"]) / sn, (rm["lmtp_vol"] + rm["lmtp_invol"]) / rn
    print(f"| context switches in the lmtp processes, all threads (voluntary + involuntary) | "
          f"{sm['lmtp_vol'] / sn:.1f} + {sm['lmtp_invol'] / sn:.1f} | "
          f"{rm['lmtp_vol'] / rn:.1f} + {rm['lmtp_invol'] / rn:.1f} | {ratio(r_cs, s_cs, 1)} |")
    print()
    print(f"| LMTP, {args.contention_clients} concurrent clients | sdbox (mails/s) | rados (mails/s) | "
          "rados: guarded writes per commit beyond one (failed guards, and the WAL applies: 2 per 32 "
          "commits) |")
    print("| --- | ---: | ---: | ---: |")
    for label in contended["rados"]:
        (s_rate, _), (r_rate, conflicts) = contended["sdbox"][label], contended["rados"][label]
        c_cell = f"{conflicts:.2f}" if conflicts is not None else "—"
        print(f"| into {label} | {s_rate:,.1f} | {r_rate:,.1f} | {c_cell} |")
    one, each = contended["rados"]["one mailbox"][0], contended["rados"]["a mailbox each"][0]
    print(f"| rados: one mailbox / a mailbox each | | {ratio(one, each)} | target ≥ ×0.90 |")
    if pids["mon"]:
        print()
        print("Not in the CPU columns: the Ceph monitor (ceph-mon), CPU-ms per session: "
              f"{results['rados'][SESSIONS_NEW][2]['mon'] / results['rados'][SESSIONS_NEW][1]:.2f} "
              f"with a new imap process each, "
              f"{results['rados'][SESSIONS_REUSE][2]['mon'] / results['rados'][SESSIONS_REUSE][1]:.2f} "
              f"with processes reused.")

if __name__ == "__main__":
    main()
