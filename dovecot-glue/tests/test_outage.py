"""The cluster goes away while Dovecot runs: LMTP must answer 4xx (so the MTA retries),
IMAP APPEND must answer NO [UNAVAILABLE], both within a bounded time, nothing may be
lost or half-stored, Dovecot must not crash, and once the cluster is back the retry
succeeds.

This test runs its own single-node cluster (port RADOS_MAIL_OUTAGE_PORT, default 21330,
in the test directory) so that stopping it disturbs no other test.
"""

import imaplib
import os
import re
import signal
import smtplib
import subprocess
import time
import unittest

import harness
from harness import DovecotTestCase, make_mail
from rawimap import RawImap

imaplib.Commands.setdefault("SETMETADATA", ("AUTH", "SELECTED"))
imaplib.Commands.setdefault("GETMETADATA", ("AUTH", "SELECTED"))

# rados_timeout of the outage instance, seconds.
TIMEOUT = 3
# How long a refusal may take with the OSD stopped: the configured timeout with a
# generous margin (Dovecot's own work, a loaded 2-core machine). The promise is that a
# refusal comes within rados_timeout, not within a multiple of it.
REFUSAL_BOUND = TIMEOUT * 1.5
# Longer than the plugin's RADOS_UNAVAILABLE_HOLD_MSECS (rados-connect.c), seconds.
HOLD = 1.5
# How long a refusal may take: the operation timeout, plus connecting again and
# Dovecot's own work, with a wide margin on a loaded 2-core machine. The requirement is
# "bounded and configurable, at most 30 s by default".
BOUND = 30
PORT = os.environ.get("RADOS_MAIL_OUTAGE_PORT", "21330")
# mailbox_idle_check_interval of the outage instance, seconds.
POLL = 60


def ceph(script, *args):
    env = dict(os.environ, RADOS_MAIL_CEPH_PORT=PORT)
    proc = subprocess.run([os.path.join(harness.REPO_ROOT, "ci", script), *args],
                          capture_output=True, text=True, timeout=300, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


@unittest.skipIf(harness.DRIVER != "rados", "the cluster-down test is about the rados driver")
class ClusterDown(DovecotTestCase):
    # Temporary failures are logged as warnings by the plugin, so the only error line
    # allowed is the one Dovecot itself writes when a METADATA dict commit fails.
    allowed_log_errors = (r"Error: Mailbox INBOX: Dict private transaction commit failed: "
                          r"rados dict commit: RM_RESULT_UNAVAILABLE",)

    @classmethod
    def setUpClass(cls):
        cls.ceph_dir = os.path.join(harness.root(), "ceph-outage")
        ceph("ceph-start.sh", "--fresh", cls.ceph_dir)
        # The private cluster has one OSD and no erasure-coded data pool.
        saved = {k: os.environ.get(k)
                 for k in ("CEPH_CONF", "RADOS_MAIL_TIMEOUT", "RADOS_MAIL_DATA_POOL")}
        os.environ["CEPH_CONF"] = os.path.join(cls.ceph_dir, "ceph.conf")
        os.environ["RADOS_MAIL_TIMEOUT"] = str(TIMEOUT)
        os.environ.pop("RADOS_MAIL_DATA_POOL", None)
        # The dict driver too: IMAP METADATA through mail_attribute_dict = rados:.
        extra = os.path.join(harness.root(), "outage-extra.conf")
        with open(extra, "w") as f:
            f.write("protocol imap {\n  imap_metadata = yes\n}\nmail_attribute_dict = rados:\n"
                    # IDLE polls only every minute: what it reports sooner came by push
                    f"mailbox_idle_check_interval = {POLL} secs\n")
        os.chmod(extra, 0o644)
        try:
            cls.inst = harness.instance("outage", extra_conf=extra)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    @classmethod
    def tearDownClass(cls):
        ceph("ceph-stop.sh", cls.ceph_dir)

    def lmtp_codes(self, recipients, message):
        """Delivers one mail over LMTP to several recipients; returns (the final code of
        each recipient, seconds). smtplib reads only the first of LMTP's replies to DATA."""
        start = time.monotonic()
        with smtplib.LMTP("127.0.0.1", self.inst.lmtp_port, timeout=120) as lmtp:
            lmtp.ehlo_or_helo_if_needed()
            self.assertEqual(lmtp.mail("sender@example.org")[0], 250)
            codes = {r: lmtp.rcpt(r)[0] for r in recipients}
            accepted = [r for r in recipients if codes[r] == 250]
            if accepted:
                self.assertEqual(lmtp.docmd("DATA")[0], 354)
                lmtp.send(smtplib.quotedata(message.decode() if isinstance(message, bytes)
                                            else message).encode() + b"\r\n.\r\n")
                for r in accepted:
                    codes[r] = lmtp.getreply()[0]
        return codes, time.monotonic() - start

    def lmtp_code(self, message):
        """Delivers over LMTP; returns (SMTP code of the refusal or 250, seconds)."""
        start = time.monotonic()
        try:
            with smtplib.LMTP("127.0.0.1", self.inst.lmtp_port, timeout=120) as lmtp:
                refused = lmtp.sendmail("sender@example.org", [self.user], message)
            code = refused[self.user][0] if refused else 250
        except smtplib.SMTPRecipientsRefused as e:
            code = e.recipients[self.user][0]
        except smtplib.SMTPDataError as e:
            code = e.smtp_code
        return code, time.monotonic() - start

    def imap_when_back(self, within=30):
        """An IMAP session with INBOX selected, once the plugin serves again: for a
        moment after a timeout (RADOS_UNAVAILABLE_HOLD_MSECS, rados-connect.c) a process
        refuses at once, and processes are reused."""
        deadline = time.monotonic() + within
        while True:
            c = self.inst.imap(self.user)
            typ, data = c.select("INBOX")
            if typ == "OK":
                return c
            c.logout()
            self.assertLess(time.monotonic(), deadline, f"still refused after {within} s: {data}")
            time.sleep(1)

    def osd_pid(self):
        with open(os.path.join(self.ceph_dir, "run", "osd.0.pid")) as f:
            return int(f.read().strip())

    def timed(self, what, figures, call):
        """Runs call(), records its duration in figures[what] and returns its result."""
        start = time.monotonic()
        try:
            return call()
        finally:
            figures[what] = time.monotonic() - start

    def test_refusals_bounded_and_fetch_keeps_session_osd_killed(self):
        """The OSD is killed (SIGKILL; the mon still shows it up, so operations wait for
        their timeout): every refusal comes within rados_timeout (with a margin), and a
        FETCH of a body the session never read answers NO without ending the session;
        once the OSD runs again the same FETCH works. (Not SIGSTOP: after SIGCONT the
        single OSD was once seen to keep every request 'delayed' for over a minute.)"""
        for i in range(2):
            self.assertEqual(self.lmtp_code(make_mail(f"paused {i}"))[0], 250)
        imap = self.imap_when_back()
        typ, data = imap.uid("SEARCH", None, "ALL")
        self.assertEqual(typ, "OK", data)
        uid = data[0].split()[-1].decode()
        pid = self.osd_pid()
        figures = {}
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            # Three recipients in one delivery: refused within one timeout, not three.
            recipients = [self.user, f"{self.user}-b", f"{self.user}-c"]
            codes, figures["lmtp"] = self.lmtp_codes(recipients, make_mail("during the pause"))
            for r, code in codes.items():
                self.assertTrue(400 <= code < 500, f"LMTP answered {code} for {r} while the "
                                                   f"OSD was down")
            # Each command after the plugin's hold (1 s after a timeout, in which calls
            # fail at once), so that each one meets a timeout of its own.
            time.sleep(HOLD)
            typ, data = self.timed("append", figures, lambda: imap.append(
                "INBOX", None, None, make_mail("append during the pause")))
            self.assertEqual(typ, "NO", data)
            self.assertIn(b"[UNAVAILABLE]", data[0], data)
            time.sleep(HOLD)
            typ, data = self.timed("store", figures, lambda: imap.uid(
                "STORE", uid, "+FLAGS", "(\\Flagged)"))
            self.assertEqual(typ, "NO", data)
            self.assertIn(b"[UNAVAILABLE]", data[0], data)
            # A body this session never read: no cache to answer from.
            time.sleep(HOLD)
            typ, data = self.timed("fetch", figures, lambda: imap.uid(
                "FETCH", uid, "(BODY.PEEK[])"))
            self.assertEqual(typ, "NO", data)
            self.assertIn(b"temporarily unavailable", data[0], data)
            # The session goes on.
            typ, data = imap.noop()
            self.assertEqual(typ, "OK", data)
        finally:
            ceph("ceph-start.sh", self.ceph_dir)
            print("\nrefusals with the OSD killed, rados_timeout %d s: %s" % (
                TIMEOUT, " ".join(f"{k} {v:.2f} s" for k, v in figures.items())))
        for what, took in figures.items():
            self.assertLess(took, REFUSAL_BOUND,
                            f"{what} took {took:.2f} s to refuse (rados_timeout {TIMEOUT} s)")
        # Once the OSD runs again, the same session reads the mail.
        deadline = time.monotonic() + 60
        while True:
            typ, data = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            if typ == "OK" or time.monotonic() > deadline:
                break
            time.sleep(1)
        self.assertEqual(typ, "OK", data)
        bodies = [part[1] for part in data if isinstance(part, tuple)]
        self.assertEqual(len(bodies), 1, data)
        self.assertIn(b"Subject: paused 1", bodies[0], data)
        imap.logout()

    def fetch_subjects(self):
        c = self.inst.imap(self.user)
        try:
            typ, data = c.select("INBOX")
            self.assertEqual(typ, "OK", data)
            typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            self.assertEqual(typ, "OK", data)
            return sorted(part[1].decode().strip() for part in data if isinstance(part, tuple))
        finally:
            c.logout()

    def test_idle_push_survives_osd_restart(self):
        """The OSD restarts under a session in IDLE: its RADOS watch breaks and is set
        up again, and the next deliveries are pushed to it (within half the polling
        interval, so not found by polling)."""
        code, _ = self.lmtp_code(make_mail("before the restart"))
        self.assertEqual(code, 250)
        rb = RawImap("127.0.0.1", self.inst.imap_port, self.user)
        try:
            untagged = rb.ok("SELECT INBOX")
            exists = next(int(line.split()[1]) for line in untagged
                          if re.match(r"\* \d+ EXISTS", line))
            idle_tag = rb.idle()
            with open(os.path.join(self.ceph_dir, "run", "osd.0.pid")) as f:
                pid = int(f.read().strip())
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.1)
            ceph("ceph-start.sh", self.ceph_dir)
            for i in range(2):
                code, _ = self.lmtp_code(make_mail(f"after the restart {i}"))
                self.assertEqual(code, 250)
                exists += 1
                got, found = rb.wait_until(lambda line, n=exists: line == f"* {n} EXISTS", POLL / 2)
                self.assertTrue(found, f"delivery {i} after the OSD restart not pushed within "
                                       f"{POLL / 2} s; got {got}")
            rb.done(idle_tag)
        finally:
            rb.close()

    def test_lmtp_and_append_fail_temporarily_then_recover(self):
        first = make_mail("before the outage")
        code, _ = self.lmtp_code(first)
        self.assertEqual(code, 250)
        # An IMAP session opened before the outage, to APPEND during it.
        imap = self.inst.imap(self.user)
        self.assertEqual(imap.select("INBOX")[0], "OK")
        typ, data = imap._simple_command("SETMETADATA", "INBOX", '(/private/comment "before")')
        self.assertEqual(typ, "OK", data)

        ceph("ceph-stop.sh", self.ceph_dir)
        try:
            code, took = self.lmtp_code(make_mail("during the outage"))
            self.assertTrue(400 <= code < 500, f"LMTP answered {code} while the cluster was down")
            self.assertLess(took, BOUND, f"LMTP took {took:.1f} s to refuse")

            start = time.monotonic()
            typ, data = imap.append("INBOX", None, None, make_mail("append during the outage"))
            took = time.monotonic() - start
            self.assertEqual(typ, "NO", data)
            self.assertIn(b"[UNAVAILABLE]", data[0], data)
            self.assertLess(took, BOUND, f"APPEND took {took:.1f} s to fail")

            # A dict commit that RADOS did not acknowledge is never reported as done.
            typ, data = imap._simple_command("SETMETADATA", "INBOX", '(/private/comment "during")')
            self.assertEqual(typ, "NO", data)

            # Reading a mail the session has not read before fails cleanly, and the
            # session goes on.
            start = time.monotonic()
            typ, data = imap.uid("FETCH", "1", "(BODY.PEEK[])")
            self.assertEqual(typ, "NO", data)
            self.assertIn(b"temporarily unavailable", data[0], data)
            self.assertLess(time.monotonic() - start, BOUND)
            self.assertEqual(imap.noop()[0], "OK")

            # A new session (a new imap process, which must connect first) is refused
            # temporarily too, without a crash.
            start = time.monotonic()
            try:
                fresh = self.inst.imap(self.user)
                typ, data = fresh.select("INBOX")
                self.assertEqual(typ, "NO", data)
                self.assertIn(b"[UNAVAILABLE]", data[0], data)
                fresh.logout()
            except imaplib.IMAP4.error as e:
                # Refused at login: it must say so as a temporary failure.
                self.assertIn("UNAVAILABLE", str(e).upper())
            self.assertLess(time.monotonic() - start, BOUND)

            # doveadm exits with EX_TEMPFAIL (75).
            proc = subprocess.run(["doveadm", "-c", self.inst.conf, "save", "-u", self.user],
                                  input=make_mail("doveadm during the outage"), capture_output=True,
                                  timeout=120)
            self.assertEqual(proc.returncode, 75, proc.stderr)
        finally:
            ceph("ceph-start.sh", self.ceph_dir)
        try:
            if imap is not None:
                imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass  # the session may have been closed by the failure

        self.imap_when_back().logout()
        code, _ = self.lmtp_code(make_mail("after the outage"))
        self.assertEqual(code, 250)
        c = self.inst.imap(self.user)
        try:
            c.untagged_responses.pop("METADATA", None)
            typ, data = c._simple_command("GETMETADATA", "INBOX", "(/private/comment)")
            self.assertEqual(typ, "OK", data)
            got = c.untagged_responses.pop("METADATA", [])
            self.assertEqual(got[0][1], b"before", got)
        finally:
            c.logout()
        subjects = self.fetch_subjects()
        # Exactly the two accepted mails: nothing refused was half-stored.
        self.assertEqual(subjects, ["Subject: after the outage", "Subject: before the outage"])
