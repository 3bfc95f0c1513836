#!/usr/bin/env python3
"""What one LMTP delivery costs inside Dovecot's lmtp processes and the OSD: rados against
sdbox (and any configuration variants) in one run, interleaved.

Usage: benches/dovecot/lmtp-cost.py [--mails N] [--clients C] [--size BYTES] [--rounds R]
           [--preset defaults|process-model [--select LABEL]...] [--baseline LABEL]
           [--variant LABEL=DRIVER]...
           [--conf LABEL=TEXT]... [--ceph LABEL=KEY=VALUE]... [--sessions S] [--no-perf]

Each variant is one Dovecot started with ci/dovecot-start.sh (port bases 26100, 26110, ...):
  --variant LABEL=DRIVER   a Dovecot with driver rados or sdbox
  --conf LABEL=TEXT        dovecot.conf text appended to that variant's config (--extra-conf;
                           "\\n" in TEXT is a line break)
  --ceph LABEL=KEY=VALUE   a librados option in a last [client] section of the ceph.conf
                           that variant's plugin reads (DIR/ceph/ceph.conf)
Presets: `defaults` (rados and sdbox as ci/dovecot-start.sh configures them) and
`process-model` (the before/after matrix of dovecot-glue/README.md, "Process model").

Per round and variant, C clients each open one LMTP connection (one lmtp process each, as
Dovecot's lmtp has client_limit = 1), deliver 3 mails to warm up, then N/C mails of BYTES
each to a user of their own. Counted over those N mails, from the processes' own counters:
  - CPU-ms per mail in the lmtp processes (utime + stime of /proc/<pid>/stat, all threads)
    and in the ceph-osd of $CEPH_CONF;
  - context switches per mail (voluntary + involuntary, summed over every thread's
    /proc/<pid>/task/<tid>/status), lmtp and OSD;
  - threads per lmtp process.
Then, unless --no-perf, N/5 more mails under `perf stat` attached to the lmtp processes
(tracepoints, so it works without hardware counters): syscalls, futex calls, signals sent
(almost all SIGSETXID: glibc's broadcast that makes every thread follow a set*id call), and
set*id calls made by the main thread (the uid/gid switches themselves). perf is kept out of
the CPU phase so its overhead isn't counted there.
With --sessions S, last S IMAP sessions (LOGIN, SELECT, FETCH 1 FLAGS, LOGOUT) from the C
clients: CPU-ms per session of the whole Dovecot instance (master, reaped children and live
ones: imap, imap-login, auth, ...) and of the OSD.

Needs root, the plugin (--plugin-dir, default dovecot-glue/build), the cluster of $CEPH_CONF.
Prints a Markdown table (medians over rounds; min-max when R > 1) naming the machine and the
commit; progress goes to stderr.
"""

import argparse
import imaplib
import os
import platform
import re
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PORT_FIRST, PORT_LAST = 26100, 26900
HZ = os.sysconf("SC_CLK_TCK")
SIGSETXID = 33  # glibc: SIGRTMIN + 1 (__SIGRTMIN is 32 on Linux)
PERF_EVENTS = ["raw_syscalls:sys_enter", "syscalls:sys_enter_futex", "signal:signal_generate",
               "syscalls:sys_enter_setuid", "syscalls:sys_enter_setgid",
               "syscalls:sys_enter_setresuid", "syscalls:sys_enter_setresgid",
               "syscalls:sys_enter_setgroups"]
SETXID_EVENTS = [e for e in PERF_EVENTS if re.search(r"set(res)?[ug]id|setgroups", e)]

# The configuration ci/dovecot-start.sh had before "Process model" (dovecot-glue/README.md)
# changed it, and each change on its own. A later `service` block of the same name
# overrides the earlier one's settings; a last [client] section the earlier ones.
BEFORE = """service lmtp {
  user =
}
service imap {
  service_count = 1
}
service pop3 {
  service_count = 1
}"""
LMTP_AS_ROOT = """service lmtp {
  user =
}"""
THREADS_BEFORE = ["ms_async_op_threads = 3", "librados_thread_count = 2"]
# lmtp exec'd as the mail uid is dumpable, so Dovecot's per-user process statistics can
# open /proc/self/io without trying seteuid(0) around it; such an lmtp must be able to
# read the config socket.
DROP_PRIV_BEFORE_EXEC = """service lmtp {
  drop_priv_before_exec = yes
}
service config {
  unix_listener config {
    group = $default_internal_group
    mode = 0660
  }
}"""
PRESETS = {
    "defaults": [("sdbox", "sdbox", [], []), ("rados", "rados", [], [])],
    "process-model": [
        ("sdbox, before", "sdbox", [BEFORE], []),
        ("sdbox, default", "sdbox", [], []),
        ("rados, before", "rados", [BEFORE], THREADS_BEFORE),
        ("rados, before + lmtp as mail uid", "rados", [], THREADS_BEFORE),
        ("rados, before + 1 msgr, 1 completion thread", "rados", [LMTP_AS_ROOT], []),
        ("rados, default (both)", "rados", [], []),
        ("rados, default + drop_priv_before_exec", "rados", [DROP_PRIV_BEFORE_EXEC], []),
        ("rados, default + rados_timeout = 0", "rados", ["plugin {\n  rados_timeout = 0\n}"],
         []),
        ("rados, default + lmtp client_limit = 4", "rados",
         ["service lmtp {\n  client_limit = 4\n}"], []),
    ],
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Variant:
    def __init__(self, label, driver, confs, ceph_opts):
        self.label, self.driver, self.confs, self.ceph_opts = label, driver, confs, ceph_opts
        self.dir = self.port = self.master = None
        self.results = []


def read(path):
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read()


def children(ppid, comm):
    """PIDs of the live children of `ppid` named `comm`."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            st = read(f"/proc/{p}/stat")
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        if name == comm and int(fields[1]) == ppid and fields[0] not in "ZX":
            out.append(int(p))
    return sorted(out)


def proc_cost(pid):
    """(CPU seconds of all threads, context switches of all threads, threads) of `pid`."""
    st = read(f"/proc/{pid}/stat")
    fields = st[st.rindex(")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / HZ
    ctx = 0
    tasks = os.listdir(f"/proc/{pid}/task")
    for tid in tasks:
        try:
            status = read(f"/proc/{pid}/task/{tid}/status")
        except OSError:
            continue  # the thread just ended
        for m in re.finditer(r"^(?:non)?voluntary_ctxt_switches:\s+(\d+)", status, re.M):
            ctx += int(m.group(1))
    return cpu, ctx, len(tasks)


def snapshot(pids):
    snap = {}
    for pid in pids:
        try:
            snap[pid] = proc_cost(pid)
        except OSError:
            pass
    return snap


def delta(before, after):
    """CPU s and context switches between two snapshots; a pid missing from `before`
    (started in between) counts from zero."""
    cpu = ctx = 0
    for pid, (c1, x1, _) in after.items():
        c0, x0, _ = before.get(pid, (0, 0, 0))
        cpu, ctx = cpu + c1 - c0, ctx + x1 - x0
    return cpu, ctx


def osd_pid(ceph_conf):
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            args = read(f"/proc/{p}/cmdline").split("\0")
        except OSError:
            continue
        if args and os.path.basename(args[0]) == "ceph-osd" and ceph_conf in args:
            return int(p)
    return None


def mail(i, size):
    head = (f"From: bench@example.org\r\nTo: u@example.org\r\nSubject: lmtp cost {i}\r\n"
            f"Message-ID: <{i}.{time.time_ns()}@example.org>\r\n\r\n").encode()
    line = b"x" * 74 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


class Clients:
    """C LMTP connections, each delivering to a user of its own on command."""

    def __init__(self, port, users, size):
        self.conns = [smtplib.LMTP("127.0.0.1", port, timeout=120) for _ in users]
        self.users, self.size, self.sent = users, size, 0

    def deliver(self, per_client):
        errors = []

        def run(k):
            try:
                for i in range(per_client):
                    refused = self.conns[k].sendmail("bench@example.org", [self.users[k]],
                                                     mail(self.sent + i, self.size))
                    if refused:
                        raise RuntimeError(f"refused: {refused}")
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(k,)) for k in range(len(self.conns))]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - t0
        self.sent += per_client
        if errors:
            raise errors[0]
        return took

    def close(self):
        for c in self.conns:
            try:
                c.quit()
            except Exception:  # noqa: BLE001 - closing anyway
                c.close()


def perf_start(pids, out):
    cmd = ["perf", "stat", "-x", ",", "--per-thread", "-o", out,
           "-p", ",".join(map(str, pids))]
    for e in PERF_EVENTS:
        cmd += ["-e", e]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)  # let it attach
    if p.poll() is not None:
        raise RuntimeError(f"perf stat failed: {p.stderr.read().decode().strip()}")
    return p


def perf_stop(p, out, pids):
    """{event: (count over all threads, count on the processes' main threads)}."""
    p.send_signal(signal.SIGINT)
    p.wait(timeout=30)
    counts = {e: [0, 0] for e in PERF_EVENTS}
    for line in read(out).splitlines():
        f = line.split(",")
        # --per-thread -x,: comm-tid,count,unit,event,...
        if len(f) < 4 or f[3] not in counts or not f[1].isdigit():
            continue
        tid = int(f[0].rsplit("-", 1)[1])
        counts[f[3]][0] += int(f[1])
        if tid in pids:
            counts[f[3]][1] += int(f[1])
    return counts


def start(v, root, port, plugin_dir):
    v.dir, v.port = os.path.join(root, f"v{port - PORT_FIRST}"), port
    env = dict(os.environ, RADOS_MAIL_NS_PREFIX=f"lmtp-cost-{os.getpid()}-{port}-")
    cmd = [os.path.join(ROOT, "ci", "dovecot-start.sh"), "--driver", v.driver,
           "--port-base", str(port), "--plugin-dir", plugin_dir]
    if v.confs:
        extra = os.path.join(root, f"v{port - PORT_FIRST}.conf")
        with open(extra, "w", encoding="ascii") as f:
            f.write("\n".join(v.confs) + "\n")
        cmd += ["--extra-conf", extra]
    subprocess.run(cmd + [v.dir], check=True, env=env, stdout=subprocess.DEVNULL)
    if v.ceph_opts:
        # The plugin reads DIR/ceph/ceph.conf when a process first connects, which is
        # after this; a last [client] section overrides the earlier ones.
        with open(os.path.join(v.dir, "ceph", "ceph.conf"), "a", encoding="ascii") as f:
            f.write("\n[client]\n" + "\n".join(v.ceph_opts) + "\n")
    v.master = int(read(os.path.join(v.dir, "run", "master.pid")).strip())


def stop(v):
    if v.dir:
        subprocess.run([os.path.join(ROOT, "ci", "dovecot-stop.sh"), v.dir], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(v, rnd, args, osd, tmp):
    users = [f"lc-{rnd}-{k}" for k in range(args.clients)]
    clients = Clients(v.port + 1, users, args.size)
    try:
        clients.deliver(3)  # warm-up: lmtp processes started, stores connected
        per = max(1, args.mails // args.clients)
        n = per * args.clients
        pids = children(v.master, "lmtp")
        osd_pids = [osd] if osd and v.driver == "rados" else []
        s0 = snapshot(pids + osd_pids)
        took = clients.deliver(per)
        s1 = snapshot(children(v.master, "lmtp") + osd_pids)
        lmtp0 = {p: s for p, s in s0.items() if p not in osd_pids}
        lmtp1 = {p: s for p, s in s1.items() if p not in osd_pids}
        cpu, ctx = delta(lmtp0, lmtp1)
        r = {"rate": n / took, "cpu": cpu * 1000 / n, "ctx": ctx / n,
             "procs": len(lmtp1), "threads": max((s[2] for s in lmtp1.values()), default=0)}
        if osd_pids:
            ocpu, octx = delta({osd: s0[osd]}, {osd: s1[osd]})
            r["osd_cpu"], r["osd_ctx"] = ocpu * 1000 / n, octx / n
        if not args.no_perf:
            pn = max(1, args.mails // 5 // args.clients)
            pids = children(v.master, "lmtp")
            out = os.path.join(tmp, "perf.out")
            p = perf_start(pids, out)
            clients.deliver(pn)
            c = perf_stop(p, out, set(pids))
            m = pn * args.clients
            r["syscalls"] = c["raw_syscalls:sys_enter"][0] / m
            r["futex"] = c["syscalls:sys_enter_futex"][0] / m
            r["signals"] = c["signal:signal_generate"][0] / m
            r["switches"] = sum(c[e][1] for e in SETXID_EVENTS) / m
    finally:
        clients.close()
    if args.sessions:
        r.update(measure_sessions(v, users, args.sessions, osd_pids))
    return r


def instance_cpu(master):
    """CPU s of a whole Dovecot instance: the master, the children it reaped (cutime,
    cstime) and its live children. A child that ends in between moves from the last
    term to the second with its full count, so deltas stay exact."""
    st = read(f"/proc/{master}/stat")
    f = st[st.rindex(")") + 2:].split()
    total = sum(int(x) for x in f[11:15]) / HZ
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            st = read(f"/proc/{p}/stat")
        except OSError:
            continue
        f = st[st.rindex(")") + 2:].split()
        if int(f[1]) == master:
            total += (int(f[11]) + int(f[12])) / HZ
    return total


def measure_sessions(v, users, sessions, osd_pids):
    """IMAP sessions (LOGIN, SELECT INBOX, FETCH 1 FLAGS, LOGOUT), C clients in parallel:
    CPU per session of the whole Dovecot instance (imap, imap-login, auth, master...)."""
    errors = []
    per = max(1, sessions // len(users))

    def run(k, count):
        try:
            for _ in range(count):
                c = imaplib.IMAP4("127.0.0.1", v.port)
                c.login(users[k], "pass")
                if c.select("INBOX")[0] != "OK" or c.fetch("1", "(FLAGS)")[0] != "OK":
                    raise RuntimeError("SELECT/FETCH failed")
                c.logout()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def parallel(count):
        threads = [threading.Thread(target=run, args=(k, count)) for k in range(len(users))]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return time.monotonic() - t0

    parallel(2)  # warm-up: reused processes exist and are connected
    c0, o0 = instance_cpu(v.master), snapshot(osd_pids)
    took = parallel(per)
    c1, o1 = instance_cpu(v.master), snapshot(osd_pids)
    n = per * len(users)
    r = {"s_rate": n / took, "s_cpu": (c1 - c0) * 1000 / n}
    if osd_pids:
        r["s_osd_cpu"] = delta(o0, o1)[0] * 1000 / n
    return r


def fmt(values, digits):
    if not values:
        return "—"
    med = statistics.median(values)
    s = f"{med:.{digits}f}"
    if len(values) > 1 and max(values) - min(values) >= 10 ** -digits:
        s += f" ({min(values):.{digits}f}–{max(values):.{digits}f})"
    return s


def machine():
    cpu = "?"
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", read("/proc/cpuinfo"), re.M)
        cpu = m.group(1) if m else cpu
    except OSError:
        pass
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip() or "?"
    return f"{platform.node()}: {os.cpu_count()} × {cpu}, Linux {platform.release()}; commit {rev}"


def table(variants, args):
    sdboxes = [v for v in variants if v.driver == "sdbox"]
    sdbox = next((v for v in sdboxes if v.label == (args.baseline or "sdbox, default")),
                 sdboxes[0] if sdboxes else None)
    sdbox_cpu = statistics.median(r["cpu"] for r in sdbox.results) if sdbox else None
    cols = ["configuration", "lmtp CPU-ms/mail", "× sdbox", "OSD CPU-ms/mail",
            "lmtp ctx sw/mail", "OSD ctx sw/mail", "threads/lmtp", "mails/s"]
    if not args.no_perf:
        cols[5:5] = ["syscalls/mail", "futex/mail", "uid/gid switches/mail", "signals/mail"]
    print(f"LMTP, {args.mails} mails of {args.size} B per round from {args.clients} clients, "
          f"{args.rounds} round(s) interleaved; medians (min–max); × sdbox: lmtp CPU against "
          f"'{sdbox.label if sdbox else '—'}'. {machine()}\n")
    if args.sessions:
        cols += ["IMAP session CPU-ms", "OSD CPU-ms/session", "sessions/s"]
    print("| " + " | ".join(cols) + " |")
    print("| --- |" + " ---: |" * (len(cols) - 1))
    for v in variants:
        rs = v.results
        col = {
            "configuration": v.label,
            "lmtp CPU-ms/mail": fmt([r["cpu"] for r in rs], 2),
            "× sdbox": (f"{statistics.median(r['cpu'] for r in rs) / sdbox_cpu:.2f}"
                        if sdbox_cpu else "—"),
            "OSD CPU-ms/mail": fmt([r["osd_cpu"] for r in rs if "osd_cpu" in r], 2),
            "lmtp ctx sw/mail": fmt([r["ctx"] for r in rs], 1),
            "OSD ctx sw/mail": fmt([r["osd_ctx"] for r in rs if "osd_ctx" in r], 1),
            "syscalls/mail": fmt([r["syscalls"] for r in rs if "syscalls" in r], 0),
            "futex/mail": fmt([r["futex"] for r in rs if "futex" in r], 0),
            "uid/gid switches/mail": fmt([r["switches"] for r in rs if "switches" in r], 1),
            "signals/mail": fmt([r["signals"] for r in rs if "signals" in r], 1),
            "threads/lmtp": fmt([r["threads"] for r in rs], 0),
            "mails/s": fmt([r["rate"] for r in rs], 0),
            "IMAP session CPU-ms": fmt([r["s_cpu"] for r in rs if "s_cpu" in r], 2),
            "OSD CPU-ms/session": fmt([r["s_osd_cpu"] for r in rs if "s_osd_cpu" in r], 2),
            "sessions/s": fmt([r["s_rate"] for r in rs if "s_rate" in r], 0),
        }
        print("| " + " | ".join(col[c] for c in cols) + " |")


def parse_variants(args):
    variants = []
    if args.preset:
        variants += [Variant(*p) for p in PRESETS[args.preset]
                     if not args.select or p[0] in args.select]
    for spec in args.variant or []:
        label, _, driver = spec.rpartition("=")
        if driver not in ("rados", "sdbox") or not label:
            sys.exit(f"--variant {spec!r}: expected LABEL=rados or LABEL=sdbox")
        variants.append(Variant(label, driver, [], []))
    if not variants:
        variants = [Variant(*p) for p in PRESETS["defaults"]]
    by_label = {v.label: v for v in variants}
    for opt, attr in (("conf", "confs"), ("ceph", "ceph_opts")):
        for spec in getattr(args, opt) or []:
            label, sep, value = spec.partition("=")
            if not sep or label not in by_label:
                sys.exit(f"--{opt} {spec!r}: LABEL must name a --variant")
            if opt == "conf":
                value = value.replace("\\n", "\n")  # a shell-friendly line break
            if opt == "ceph":
                key, sep, val = value.partition("=")
                value = f"{key.strip()} = {val.strip()}"
            getattr(by_label[label], attr).append(value)
    return variants


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mails", type=int, default=500)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--preset", choices=sorted(PRESETS))
    ap.add_argument("--select", action="append", metavar="LABEL",
                    help="only this variant of the preset (repeatable)")
    ap.add_argument("--baseline", metavar="LABEL",
                    help="the sdbox variant the × sdbox column divides by (default: "
                    "'sdbox, default' if present, else the first sdbox variant)")
    ap.add_argument("--variant", action="append", metavar="LABEL=DRIVER")
    ap.add_argument("--conf", action="append", metavar="LABEL=TEXT")
    ap.add_argument("--ceph", action="append", metavar="LABEL=KEY=VALUE")
    ap.add_argument("--plugin-dir", default=os.path.join(ROOT, "dovecot-glue", "build"))
    ap.add_argument("--port-base", type=int, default=PORT_FIRST)
    ap.add_argument("--no-perf", action="store_true")
    ap.add_argument("--sessions", type=int, default=0,
                    help="also this many IMAP sessions per round (CPU of the whole instance)")
    args = ap.parse_args()
    variants = parse_variants(args)
    if os.geteuid() != 0:
        sys.exit("must run as root (Dovecot's master)")
    if not PORT_FIRST <= args.port_base or args.port_base + 10 * len(variants) > PORT_LAST:
        sys.exit(f"ports must stay within {PORT_FIRST}-{PORT_LAST}")
    if not args.no_perf and not shutil.which("perf"):
        sys.exit("perf not found (apt-get install linux-perf), or pass --no-perf")
    ceph_conf = os.path.abspath(os.environ.get("CEPH_CONF",
                                               os.path.join(ROOT, "target/ceph/ceph.conf")))
    osd = osd_pid(ceph_conf)
    if osd is None and any(v.driver == "rados" for v in variants):
        log(f"no ceph-osd running with {ceph_conf}: OSD columns stay empty")
    tmp = tempfile.mkdtemp(prefix="lc-", dir="/tmp")
    os.chmod(tmp, 0o755)
    try:
        for i, v in enumerate(variants):
            start(v, tmp, args.port_base + 10 * i, args.plugin_dir)
        for rnd in range(args.rounds):
            # Rotate the order every round so no variant always follows the same one.
            order = variants[rnd % len(variants):] + variants[:rnd % len(variants)]
            for v in order:
                r = measure(v, rnd, args, osd, tmp)
                v.results.append(r)
                log(f"round {rnd + 1}/{args.rounds} {v.label}: " +
                    ", ".join(f"{k} {val:.2f}" for k, val in r.items()))
        table(variants, args)
    finally:
        for v in variants:
            stop(v)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
