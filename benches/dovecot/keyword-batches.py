#!/usr/bin/env python3
"""Keywords stored on one mail in batches through Dovecot (issue 14: 10,000 keywords in
batches of 500 took 0.64 s per batch at first and 8.3 s by the end). Prints one row per
batch: wall time, CPU-ms of the imap process, and what the OSD counted (operations,
writes, bytes written: `perf dump osd` op / op_w + op_rw / op_in_bytes) around the STORE.

The OSD counters are the whole cluster's: on a cluster shared with other work they are
only indicative (dovecot-glue/tests/test_limits.py asserts the exact per-batch figures
from the mailbox's own WAL entries instead).

    . target/ceph/env.sh
    DOVECOT_TEST_PORT_BASE=25800 benches/dovecot/keyword-batches.py [--batches 20] [--size 500]
    DOVECOT_TEST_PLUGIN_DIR=<dir of another lib20_rados_plugin.so> ... --no-limit   # an older build
"""

import argparse
import glob
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "dovecot-glue", "tests"))
import harness  # noqa: E402

FIELDS = ("op", "op_w", "op_rw", "op_in_bytes")


def osd_counters():
    """The counters of FIELDS summed over every OSD of the cluster of $CEPH_CONF."""
    return harness.osd_counters(FIELDS)


def imap_cpu_ms(instance_name):
    """utime + stime (ms) of the instance's imap processes."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in glob.glob("/proc/[0-9]*/stat"):
        pid = stat.split("/")[2]
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            if not cmd.startswith(f"{instance_name}/imap".encode()):
                continue
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return total * 1000 / tick


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--size", type=int, default=500)
    ap.add_argument("--no-limit", action="store_true",
                    help="leave rados_max_keywords unset (for builds without the setting)")
    args = ap.parse_args()
    total = args.batches * args.size
    limit = "" if args.no_limit else f"  rados_max_keywords = {total + 1}\n"
    inst = harness.instance_with_conf("limits", f"plugin {{\n{limit}}}\n")
    name = [l.split("=", 1)[1].strip() for l in open(inst.conf)
            if l.strip().startswith("instance_name")][0]
    user = f"t-kwbench-{os.getpid()}"
    c = inst.imap(user)
    harness.ok(c.append("INBOX", None, None, b"Subject: keywords\r\n\r\nbody\r\n"))
    harness.select(c)
    print("| batch | keywords after | wall s | imap CPU-ms | OSD ops | OSD writes | OSD bytes in |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    try:
        for b in range(args.batches):
            names = " ".join(f"k{i:05d}" for i in range(b * args.size, (b + 1) * args.size))
            before, cpu0, t0 = osd_counters(), imap_cpu_ms(name), time.monotonic()
            harness.ok(c.uid("STORE", "1", "+FLAGS.SILENT", f"({names})"))
            secs = time.monotonic() - t0
            time.sleep(0.2)  # operations that trail the response
            after, cpu1 = osd_counters(), imap_cpu_ms(name)
            d = {f: after[f] - before[f] for f in FIELDS}
            print(f"| {b} | {(b + 1) * args.size} | {secs:.2f} | {cpu1 - cpu0:.0f} | {d['op']} | "
                  f"{d['op_w'] + d['op_rw']} | {d['op_in_bytes']} |", flush=True)
    finally:
        try:
            c.logout()
        except Exception as e:  # the imap process may have died (an older build did)
            print(f"logout: {e}", file=sys.stderr)
        harness.shutdown(True)


if __name__ == "__main__":
    main()
