"""FETCH of a UID range through the rados plugin (issue 10).

The story: a FETCH 1:100 BODY.PEEK[] read the 100 bodies one RADOS read at a time,
whatever `mail_prefetch_count` said, and a backward seek in a body reopened it and read
forward from byte 0. Now Dovecot's prefetch (the `prefetch` mail vfunc, called for up to
`mail_prefetch_count` mails ahead) queues the UIDs and the first body read reads them all
at once (`rm_mailbox_prefetch`, `read_in_flight` RADOS reads in flight), and the body
stream seeks with `rm_body_seek`. These tests run an instance with
`mail_prefetch_count = 16` and `mail_debug = yes` (the plugin logs each read-ahead) and
check: bodies byte-exact, the read-ahead really used, the RADOS reads of a cold and of a
cached FETCH (OSD counters, when the OSD's admin socket is reachable), partial fetches
that seek backwards, and a body object removed behind the plugin's back answered with a
NO (damage, test_damage.py), never with an empty body.
"""

import os
import re
import subprocess
import time
import unittest

import harness
from harness import DovecotTestCase, ok, select, uid_fetch

PREFETCH = 16
EXTRA_CONF = f"""mail_prefetch_count = {PREFETCH}
mail_debug = yes
"""
POOL = os.environ.get("RADOS_MAIL_POOL", "mail")
NS_PREFIX = os.environ.get("RADOS_MAIL_NS_PREFIX", "dovecot-test-")
READ_AHEAD = re.compile(r"rados: read ahead (\d+) bodies")


def fetch_instance():
    return harness.instance_with_conf("fetch", EXTRA_CONF)


def mail(n, size):
    """Mail number n of about `size` bytes, CRLF lines, no two alike."""
    head = f"From: a@example.org\r\nSubject: fetch {n}\r\nMessage-ID: <{n}.{time.time_ns()}@x>\r\n\r\n"
    line = bytes((97 + (n * 7 + i) % 26) for i in range(76)) + b"\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head.encode() + body + f"end of {n}\r\n".encode()


def osd_reads():
    """Read operations the cluster's OSDs served so far (`op_r` of `perf dump`, summed over
    them all), or None when there is no OSD to ask (a cluster that is not
    ci/ceph-start.sh's)."""
    if not os.environ.get("CEPH_CONF") or not harness.osd_sockets():
        return None
    return harness.osd_counters(("op_r",))["op_r"]


def read_aheads(inst, since):
    with open(inst.log, "rb") as f:
        f.seek(since)
        text = f.read().decode("utf-8", "replace")
    return [int(m.group(1)) for m in READ_AHEAD.finditer(text)]


def fill(inst, user, mails):
    c = inst.imap(user)
    try:
        for m in mails:
            ok(c.append("INBOX", None, None, m))
    finally:
        c.logout()


@unittest.skipIf(harness.DRIVER != "rados", "the read-ahead and the RADOS objects are the rados plugin's")
class Fetch(DovecotTestCase):
    allowed_log_errors = (r"body object missing; the record of UID \d+ points to it",)

    def test_fetch_range_byte_exact_read_ahead(self):
        inst = fetch_instance()
        mails = [mail(n, 200 + 97 * n) for n in range(100)]
        fill(inst, self.user, mails)
        # A new IMAP process: its body cache is cold.
        c = inst.imap(self.user)
        try:
            self.assertEqual(select(c)[0], 100)
            mark = inst.log_size()
            before = osd_reads()
            t0 = time.monotonic()
            got = uid_fetch(c, "1:100", "(BODY.PEEK[])")
            cold_s = time.monotonic() - t0
            cold = None if before is None else osd_reads() - before
            for uid in range(1, 101):
                self.assertEqual(got[uid]["BODY[]"], mails[uid - 1], f"UID {uid}")
            ahead = read_aheads(inst, mark)
            self.assertEqual(sum(ahead), 100, f"every body read ahead, in batches: {ahead}")
            self.assertTrue(all(1 < n <= PREFETCH + 1 for n in ahead[:-1]), ahead)
            # Again in the same session: the bodies are in the cache.
            before = osd_reads()
            t0 = time.monotonic()
            again = uid_fetch(c, "1:100", "(BODY.PEEK[])")
            warm_s = time.monotonic() - t0
            warm = None if before is None else osd_reads() - before
            self.assertEqual([again[u]["BODY[]"] for u in range(1, 101)], mails)
            print(f"\n    FETCH 1:100 BODY.PEEK[]: cold {cold} OSD reads {cold_s * 1000:.0f} ms "
                  f"(read-aheads {ahead}), cached {warm} OSD reads {warm_s * 1000:.0f} ms", end=" ")
            if cold is not None:
                # One read per body; the rest is the sync of the mailbox (a few reads).
                self.assertGreaterEqual(cold, 100)
                self.assertLessEqual(cold, 105, "one read per body, no more")
                self.assertLessEqual(warm, 3, "cached bodies cost no read")
        finally:
            c.logout()

    def test_partial_fetches_seek_backwards(self):
        inst = fetch_instance()
        # 3 MB: above the cache's largest item, so streamed from RADOS and seeked in.
        big = mail(1, 3 << 20)
        small = mail(2, 5000)
        fill(inst, self.user, [big, small])
        c = inst.imap(self.user)
        try:
            select(c)
            parts = [(2500000, 100), (1000, 100), (2000000, 5000), (0, 30), (len(big) - 10, 100)]
            items = " ".join(f"BODY.PEEK[]<{o}.{n}>" for o, n in parts)
            for uid, body in ((1, big), (2, small)):
                got = uid_fetch(c, str(uid), f"({items})")[uid]
                for o, n in parts:
                    want = body[o:o + n] if o < len(body) else b""
                    self.assertEqual(got[f"BODY[]<{o}>"], want, f"UID {uid} <{o}.{n}>")
            # And whole after the partial reads, in the same command.
            got = uid_fetch(c, "1", f"({items} BODY.PEEK[])")[1]
            self.assertEqual(got["BODY[]"], big)
        finally:
            c.logout()

    def test_removed_body_object_is_an_error_not_an_empty_body(self):
        inst = fetch_instance()
        mails = [mail(n, 300) for n in range(3)]
        fill(inst, self.user, mails)
        c = inst.imap(self.user)
        try:
            select(c)
            guid = uid_fetch(c, "2", "(X-GUID)")[2]["X-GUID"]
            guid = guid.decode() if isinstance(guid, bytes) else guid
        finally:
            c.logout()
        obj = f"mail.{guid}"
        rm = subprocess.run(["rados", "-p", harness.DATA_POOL, "-N", f"{NS_PREFIX}/{self.user}" if NS_PREFIX else self.user, "rm", obj],
                            capture_output=True, text=True, timeout=60)
        self.assertEqual(rm.returncode, 0, rm.stderr)
        # Through the read-ahead (a range), and alone.
        for uids in ("1:3", "2"):
            c = inst.imap(self.user)
            try:
                select(c)
                c.untagged_responses.pop("FETCH", None)
                typ, data = c.uid("FETCH", uids, "(BODY.PEEK[])")
                # Damage, not an expunge: a NO for the command (the session goes on),
                # never BODY[] NIL with [EXPUNGEISSUED], never an empty body.
                self.assertEqual(typ, "NO", f"FETCH {uids} of a removed body: {typ} {data!r}")
                self.assertTrue(data[0].startswith(b"[PARSE] "), data)
                sent = c.untagged_responses.pop("FETCH", [])
                got = harness.parse_fetch(sent) if sent else {}
                self.assertNotIn("BODY[]", got.get(2, {}), "no body at all for UID 2")
                if uids == "1:3":
                    self.assertEqual(got[1]["BODY[]"], mails[0], "the mail before it was sent")
                ok(c.noop())
            finally:
                try:
                    c.logout()
                except Exception:  # noqa: BLE001 - the server may have hung up
                    pass


if __name__ == "__main__":
    unittest.main()
