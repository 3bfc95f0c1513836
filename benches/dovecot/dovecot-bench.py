#!/usr/bin/env python3
"""Dovecot with the rados plugin side by side with Dovecot's own sdbox on local disk, in
one run: the same workloads through real LMTP and IMAP clients against two Dovecot
instances, one per driver, and the ratio rados/sdbox for each.

Usage: benches/dovecot/dovecot-bench.py [--quick] [--mails N] [--clients C] [--size BYTES]
Needs: the plugin built (make -C dovecot-glue), the cluster of $CEPH_CONF (default
target/ceph), root (Dovecot's master). Prints a Markdown table naming the machine and the
commit; progress goes to stderr. Throughputs are medians of the clients' own rates summed.
"""

import argparse
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


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def start(driver, root, port_base):
    d = os.path.join(root, driver)
    env = dict(os.environ, RADOS_MAIL_NS_PREFIX=f"bench-{os.getpid()}-")
    subprocess.run([os.path.join(ROOT, "ci", "dovecot-start.sh"), "--driver", driver,
                    "--port-base", str(port_base), d], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return d, port_base


def stop(d):
    subprocess.run([os.path.join(ROOT, "ci", "dovecot-stop.sh"), d], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def mail(i, size):
    head = (f"From: bench@example.org\r\nTo: u@example.org\r\nSubject: bench {i}\r\n"
            f"Message-ID: <{i}.{time.time_ns()}@example.org>\r\n\r\n").encode()
    line = b"x" * 74 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def parallel(clients, fn):
    """Runs fn(k) in `clients` threads; returns total operations per second."""
    counts = [0] * clients
    errors = []

    def run(k):
        try:
            counts[k] = fn(k)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - t0
    if errors:
        raise errors[0]
    return sum(counts) / took


def workloads(port, user_prefix, n, clients, size):
    imap_port, lmtp_port = port, port + 1
    users = [f"{user_prefix}-{k}" for k in range(clients)]
    per = max(1, n // clients)
    results = {}

    def lmtp(k):
        with smtplib.LMTP("127.0.0.1", lmtp_port, timeout=120) as c:
            for i in range(per):
                refused = c.sendmail("bench@example.org", [users[k]], mail(i, size))
                assert not refused, refused
        return per

    def append(k):
        c = imaplib.IMAP4("127.0.0.1", imap_port, timeout=120)
        c.login(users[k], "pass")
        c.create("Bench")
        for i in range(per):
            typ, data = c.append("Bench", None, None, mail(i, size))
            assert typ == "OK", data
        c.logout()
        return per

    def fetch(k):
        c = imaplib.IMAP4("127.0.0.1", imap_port, timeout=120)
        c.login(users[k], "pass")
        c.select("Bench", readonly=True)
        typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[])")
        assert typ == "OK", data
        got = sum(1 for part in data if isinstance(part, tuple))
        assert got == per, (got, per)
        c.logout()
        return per

    def store(k):
        c = imaplib.IMAP4("127.0.0.1", imap_port, timeout=120)
        c.login(users[k], "pass")
        c.select("Bench")
        typ, data = c.uid("SEARCH", "ALL")
        for uid in data[0].split():
            typ, resp = c.uid("STORE", uid, "+FLAGS.SILENT", r"(\Flagged)")
            assert typ == "OK", resp
        c.logout()
        return per

    def reselect(k):
        # A new session each time: login, SELECT with its sync, STATUS, logout.
        for _ in range(max(1, per // 10)):
            c = imaplib.IMAP4("127.0.0.1", imap_port, timeout=120)
            c.login(users[k], "pass")
            c.select("Bench")
            c.status("INBOX", "(MESSAGES UIDNEXT HIGHESTMODSEQ)")
            c.logout()
        return max(1, per // 10)

    for name, fn in [("LMTP delivery (mails/s)", lmtp), ("IMAP APPEND (mails/s)", append),
                     ("IMAP FETCH BODY[] (mails/s)", fetch),
                     ("IMAP UID STORE, one mail each (ops/s)", store),
                     ("login + SELECT + STATUS + logout (sessions/s)", reselect)]:
        results[name] = parallel(clients, fn)
        log(f"  {name}: {results[name]:.1f}")
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small run for CI (60 mails, 2 clients)")
    ap.add_argument("--mails", type=int, default=400)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--port-base", type=int, default=24800)
    args = ap.parse_args()
    if args.quick:
        args.mails, args.clients = 60, 2
    if not os.environ.get("CEPH_CONF"):
        os.environ["CEPH_CONF"] = os.path.join(ROOT, "target", "ceph", "ceph.conf")

    root = tempfile.mkdtemp(prefix="dovecot-bench-")
    os.chmod(root, 0o711)
    results = {}
    try:
        for i, driver in enumerate(["sdbox", "rados"]):
            d, port = start(driver, root, args.port_base + 10 * i)
            log(f"{driver}: {args.mails} mails of {args.size} B, {args.clients} clients")
            try:
                results[driver] = workloads(port, f"bench-{os.getpid()}", args.mails, args.clients,
                                            args.size)
            finally:
                stop(d)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"Dovecot {subprocess.run(['dovecot', '--version'], capture_output=True, text=True).stdout.strip()}"
          f", {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, commit {commit}; "
          f"{args.mails} mails of {args.size} B, {args.clients} concurrent clients; rados = "
          f"single-node Ceph (1 OSD, bluestore on a file) on the same machine, sdbox = local disk")
    print()
    print("| workload | sdbox | rados | rados / sdbox |")
    print("| --- | ---: | ---: | ---: |")
    for name in results["sdbox"]:
        s, r = results["sdbox"][name], results["rados"][name]
        print(f"| {name} | {s:,.1f} | {r:,.1f} | ×{r / s:.2f} |")


if __name__ == "__main__":
    main()
