"""Metrics (issue 14, item 2): the plugin's `rados_mail_operation` events, counted by
Dovecot's stats service and scraped from its OpenMetrics HTTP listener, agree exactly
with the library's own counters (`rm_store_stats`).

The instance `openmetrics` runs the metric blocks of dovecot-glue/README.md ("Metrics"):
`rados_mail` (group_by operation: event count and duration per operation) and one
`rados_mail_<field>` per field (group_by operation and the field: Dovecot 2.3's
OpenMetrics output carries only event counts and durations, so a field's total is the
sum of value x count over its label values). The stats service's HTTP listener is on
P+245. With `mail_debug = yes` each process logs the library's counters at every user
deinit ("rados-mail: store stats: ..."; they only grow, so a process's last line is its
total).

A small load runs in fresh processes of this instance: LMTP deliveries, then one IMAP
session with CREATE, SELECT, FETCH, STORE, COPY, EXPUNGE, STATUS. After the sessions
ended the test scrapes /metrics and checks:
- for every field, the sum over all operations of the metric equals the sum over the
  processes of the library's counters: the events account for every RADOS operation the
  plugin's store made, no more, no less (work outside operations is in "other");
- the operations of the load appear with the event counts the commands imply (3
  deliveries: 3 `save` + 3 `save_commit`; one COPY of 2 mails: 2 `copy` + 1
  `copy_commit`; one EXPUNGE: 1 `expunge_commit`) and the figures they must have
  (a delivery's commit writes, a cold FETCH reads);
- the OSD's own counters (`perf dump`, read as test_opcounts.py does) moved during the
  load by exactly the library's writes (op_w + op_rw), and op_r by the library's reads
  plus at most its notifies (a notify of a missing object is not counted by the OSD);
  nothing else may use the cluster meanwhile, as for test_opcounts.py.
"""

import collections
import re
import time
import unittest
import urllib.request

import harness
from harness import DovecotTestCase, make_mail, ok, select
from test_opcounts import Osds

HTTP_OFFSET = 5
# Event fields (rados-events.c) and the names of the same counters in the library's
# "store stats" line (the retries are derived, not a counter of their own).
FIELDS = ("rados_reads", "rados_writes", "rados_lists", "rados_notifies", "rados_bytes_read",
          "rados_bytes_written", "conflicts", "retries", "retries_exhausted", "cache_hits",
          "cache_misses")
STATS_LINE = re.compile(r"^\S+ \S+ \S+ (\w+)\((?:[^)]*\)<)?(\d+)[>)].*rados-mail: store stats: (.*)$")
SAMPLE = re.compile(r'^dovecot_(\w+)_total\{(.*)\} (\d+)$')
LABEL = re.compile(r'(\w+)="([^"]*)"')


def conf(http_port):
    per_field = "".join(f"""metric rados_mail_{f} {{
  filter = event=rados_mail_operation
  group_by = operation {f}
}}
""" for f in FIELDS)
    return f"""mail_debug = yes
metric rados_mail {{
  filter = event=rados_mail_operation
  fields = {' '.join(FIELDS)}
  group_by = operation
}}
{per_field}service stats {{
  inet_listener http {{
    address = 127.0.0.1
    port = {http_port}
  }}
}}
"""


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        if r.status != 200:
            raise AssertionError(f"/metrics answered {r.status}")
        return r.read().decode()


def parse(text):
    """{metric: [(labels dict, value)]} of the `_total` samples with labels."""
    out = collections.defaultdict(list)
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m:
            out[m.group(1)].append((dict(LABEL.findall(m.group(2))), int(m.group(3))))
    return out


def library_totals(log_path):
    """The sum over the processes of their last "store stats" line, and the pids."""
    last = {}
    with open(log_path, errors="replace") as f:
        for line in f:
            m = STATS_LINE.match(line)
            if m:
                last[(m.group(1), m.group(2))] = dict(kv.split("=") for kv in m.group(3).split())
    totals = collections.Counter()
    for stats in last.values():
        for k, v in stats.items():
            totals[k] += int(v)
    return totals, sorted(last)


class OpenMetrics(DovecotTestCase):
    @classmethod
    def setUpClass(cls):
        if harness.DRIVER != "rados":
            # The metrics are the rados plugin's; run.py lists the reason.
            raise unittest.SkipTest("driver sdbox: no rados_mail_operation events")
        cls.osds = Osds()
        cls.http_port = harness.PORT_BASE + harness.PORT_OFFSETS["openmetrics"] + HTTP_OFFSET
        cls.dc = harness.instance_with_conf("openmetrics", conf(cls.http_port))

    def wait_for_stats_lines(self, processes):
        """Waits until `processes` distinct processes logged their counters."""
        deadline = time.monotonic() + 20
        while True:
            totals, pids = library_totals(self.dc.log)
            if len(pids) >= processes:
                return totals, pids
            if time.monotonic() > deadline:
                self.fail(f"only {pids} logged 'store stats' within 20 s")
            time.sleep(0.1)

    def test_metrics_match_the_library_stats(self):
        user = self.user
        before = self.osds.quiet()
        for i in range(3):
            self.dc.deliver(user, make_mail(f"m{i}", body=f"body {i}\n"))
        c = self.dc.imap(user)
        ok(c.create("Dest"))
        select(c)
        ok(c.uid("FETCH", "1:*", "(BODY[])"))
        ok(c.uid("STORE", "1", "+FLAGS", "(\\Seen)"))
        ok(c.uid("COPY", "1:2", "Dest"))
        ok(c.uid("STORE", "3", "+FLAGS", "(\\Deleted)"))
        ok(c.expunge())
        ok(c.status("Dest", "(MESSAGES)"))
        c.logout()
        # One lmtp process (reused for the 3 deliveries) and one imap process; the lmtp
        # process logs at each delivery's user deinit, the imap one after LOGOUT.
        _, lmtp_pids = self.wait_for_stats_lines(1)
        deadline = time.monotonic() + 20
        while not any(kind == "imap" for kind, _ in library_totals(self.dc.log)[1]):
            self.assertLess(time.monotonic(), deadline, "the imap process logged no store stats")
            time.sleep(0.1)
        after = self.osds.quiet()
        lib, pids = library_totals(self.dc.log)
        metrics = parse(scrape(self.http_port))

        # Every field: the events' sum == the library's counters.
        stats_name = {"retries": None}
        for f in FIELDS:
            samples = metrics.get(f"rados_mail_{f}")
            self.assertTrue(samples, f"no rados_mail_{f} samples in /metrics")
            total = sum(int(labels[f]) * n for labels, n in samples if f in labels)
            name = stats_name.get(f, f)
            if name is not None:
                self.assertEqual(total, lib[name], f"{f}: metrics {total} != library {lib[name]} "
                                                   f"(processes {pids})")
        self.assertGreater(lib["rados_reads"], 0)
        self.assertGreater(lib["rados_writes"], 0)
        # No lost race in this quiet load: no retries either.
        self.assertEqual(sum(int(lb["retries"]) * n for lb, n in metrics["rados_mail_retries"]
                             if "retries" in lb), 0)

        # Event counts per operation, and the figures the commands imply.
        count = {lb["operation"]: n for lb, n in metrics["rados_mail"] if "operation" in lb}
        self.assertEqual(count.get("save"), 3, count)
        self.assertEqual(count.get("save_commit"), 3, count)
        self.assertEqual(count.get("copy"), 2, count)
        self.assertEqual(count.get("copy_commit"), 1, count)
        self.assertEqual(count.get("expunge_commit"), 1, count)
        self.assertEqual(count.get("mailbox_create"), 1, count)

        def field_sum(f, op):
            return sum(int(lb[f]) * n for lb, n in metrics[f"rados_mail_{f}"]
                       if lb.get("operation") == op and f in lb)
        self.assertGreaterEqual(field_sum("rados_writes", "save_commit"), 3)
        self.assertGreaterEqual(field_sum("rados_writes", "copy_commit"), 1)
        self.assertGreaterEqual(field_sum("rados_writes", "expunge_commit"), 1)
        self.assertGreaterEqual(field_sum("rados_reads", "body_fetch"), 1, "a cold FETCH reads")
        self.assertGreaterEqual(field_sum("cache_misses", "body_fetch"), 1, "a cold FETCH misses")
        # A delivery's body is written whole ("body i" and the headers of make_mail).
        self.assertGreaterEqual(field_sum("rados_bytes_written", "save"), 3 * len("body 0\n"))
        self.assertGreater(field_sum("rados_bytes_read", "body_fetch"), 0)

        # The OSD saw the library's operations: its writes exactly; its reads are the
        # library's reads plus the notifies it executed. A notify of an object that
        # does not exist (yet) fails at the OSD before it is counted (checked by hand
        # with `rados notify` of a missing object: op, op_r unchanged), so here the
        # notifies only bound the difference.
        op, op_r, op_w, op_rw = (a - b for a, b in zip(after, before))
        self.assertEqual(op, op_r + op_w + op_rw)
        self.assertEqual(op_w + op_rw, lib["rados_writes"],
                         f"OSD writes (op_w {op_w} + op_rw {op_rw}) != library writes ({dict(lib)})")
        self.assertGreaterEqual(op_r, lib["rados_reads"], f"OSD reads {op_r} ({dict(lib)})")
        self.assertLessEqual(op_r, lib["rados_reads"] + lib["rados_notifies"],
                             f"OSD reads {op_r} ({dict(lib)})")
        self.assertEqual(lib["rados_lists"], 0)
