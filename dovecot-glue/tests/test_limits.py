"""Bad input and limits through Dovecot: a mail above rados_max_mail_size is refused for
good (LMTP 552, so the sender learns at once; IMAP NO [TOOBIG] before the literal is
sent, APPENDLIMIT in CAPABILITY) and leaves nothing behind; a mail just below it, and a
malformed one, are stored as given; invalid mailbox names are refused with a clear NO;
a mailbox holds at most rados_max_keywords distinct keywords, refused as Dovecot refuses
a keyword it can't create, and storing keywords costs the same batch after batch.

The keyword story (issue 14): 10,000 keywords on one mail were accepted, and each batch
of 500 took longer than the one before (0.64 s at first, 8.3 s by the end). Each batch
wrote one WAL entry per keyword, each with the mail's whole record (500 records of up to
N + 500 keywords), and the sync compared every keyword name with every other. The
APPEND story: a mail over the limit was answered `+ OK`, uploaded whole, then refused."""

import os
import re
import smtplib
import socket
import subprocess
import time
import unittest

import harness
from harness import DovecotTestCase, ok, select, status, uid_fetch, uid_search

LIMIT = 1 << 20
MAX_KEYWORDS = 2000


def limits_instance():
    return harness.instance_with_conf(
        "limits", f"plugin {{\n  rados_max_mail_size = 1M\n  rados_max_keywords = {MAX_KEYWORDS}\n}}\n")


def mail_of(size, subject):
    head = f"From: a@example.org\r\nSubject: {subject}\r\n\r\n".encode()
    line = b"y" * 98 + b"\r\n"
    body = line * ((size - len(head)) // len(line))
    return head + body + b"z" * (size - len(head) - len(body))


@unittest.skipIf(harness.DRIVER != "rados", "rados_max_mail_size is the rados plugin's")
class Limits(DovecotTestCase):
    def test_oversize_mail_refused_for_good_and_nothing_kept(self):
        inst = limits_instance()
        with self.assertRaises(smtplib.SMTPDataError) as refused:
            inst.deliver(self.user, mail_of(LIMIT + 1, "too big"))
        self.assertEqual(refused.exception.smtp_code, 552)
        c = inst.imap(self.user)
        try:
            # (imaplib sends a synchronizing literal: refused before it, with TOOBIG)
            typ, data = c.append("INBOX", None, None, mail_of(LIMIT + 4096, "too big"))
            self.assertEqual(typ, "NO", data)
            self.assertIn(b"[TOOBIG]", data[0])
            fits = mail_of(LIMIT, "fits")
            ok(c.append("INBOX", None, None, fits))
            select(c)
            uids = uid_search(c, "ALL")
            self.assertEqual(len(uids), 1, "only the mail that fits is stored")
            self.assertEqual(uid_fetch(c, str(uids[0]), "(BODY.PEEK[])")[uids[0]]["BODY[]"], fits)
        finally:
            c.logout()

    def test_malformed_mail_kept_as_given(self):
        inst = limits_instance()
        # (No NUL: IMAP output never carries one; Dovecot sends NUL as 0x80, any storage.)
        junk = b"no header line at all\r\n\x01\xff binary \x80\r\n.\r\n..\r\nlast"
        c = inst.imap(self.user)
        try:
            ok(c.append("INBOX", None, None, junk))
            select(c)
            uid = uid_search(c, "ALL")[0]
            self.assertEqual(uid_fetch(c, str(uid), "(BODY.PEEK[])")[uid]["BODY[]"], junk)
        finally:
            c.logout()

    def test_invalid_mailbox_names_refused(self):
        inst = limits_instance()
        c = inst.imap(self.user)
        try:
            for name in ("a*b", "a%b", '"a//b"'):
                typ, data = c.create(name)
                self.assertEqual(typ, "NO", (name, data))
            names = [d for d in ok(c.list('""', '"*"'))]
            self.assertEqual(len(names), 1, names)  # INBOX only
        finally:
            c.logout()


def doveconf(conf, key):
    return subprocess.run(["doveconf", "-c", conf, "-h", key], capture_output=True, text=True,
                          check=True).stdout.strip()


def raw_connect(inst, user):
    """A logged-in raw IMAP connection: (socket, reader of CRLF lines)."""
    sock = socket.create_connection(("127.0.0.1", inst.imap_port), timeout=60)
    f = sock.makefile("rb")
    assert f.readline().startswith(b"* OK"), "greeting"
    sock.sendall(f'L LOGIN "{user}" "{harness.PASSWORD}"\r\n'.encode())
    while True:
        line = f.readline()
        if not line:
            raise AssertionError("connection closed at LOGIN")
        if line.startswith(b"L "):
            assert line.startswith(b"L OK"), line
            return sock, f


def tagged(f, tag):
    """The untagged lines up to the tagged one, and the tagged one."""
    seen = []
    while True:
        line = f.readline()
        if not line:
            raise AssertionError(f"connection closed; read {seen!r}")
        if line.startswith(tag + b" "):
            return seen, line
        seen.append(line)


def kw_names(prefix, start, n):
    return [f"{prefix}{i:04d}" for i in range(start, start + n)]


def permanentflags(c):
    """The PERMANENTFLAGS of the last SELECT (imaplib keeps the untagged OK codes)."""
    for v in c.untagged_responses.get("PERMANENTFLAGS", []):
        return v.decode()
    raise AssertionError(f"no PERMANENTFLAGS: {c.untagged_responses!r}")


@unittest.skipIf(harness.DRIVER != "rados", "rados_max_mail_size is the rados plugin's")
class AppendLimit(DovecotTestCase):
    def test_appendlimit_advertised(self):
        inst = limits_instance()
        c = inst.imap(self.user)
        try:
            caps = ok(c.capability())[0].decode().split()
            self.assertIn(f"APPENDLIMIT={LIMIT}", caps)
        finally:
            c.logout()

    def test_append_over_limit_refused_before_the_literal(self):
        inst = limits_instance()
        sock, f = raw_connect(inst, self.user)
        try:
            # Synchronizing literal: the answer comes instead of the "+" continuation.
            sock.sendall(f"A1 APPEND INBOX {{{LIMIT + 1}}}\r\n".encode())
            line = f.readline()
            self.assertFalse(line.startswith(b"+"), line)
            self.assertRegex(line, rb"^A1 NO \[TOOBIG\] ")
            # The session goes on; a mail that fits gets its "+" and is stored.
            sock.sendall(b"A2 NOOP\r\n")
            self.assertTrue(tagged(f, b"A2")[1].startswith(b"A2 OK"))
            fits = mail_of(1000, "fits")
            sock.sendall(f"A3 APPEND INBOX {{{len(fits)}}}\r\n".encode())
            self.assertTrue(f.readline().startswith(b"+ "))
            sock.sendall(fits + b"\r\n")
            self.assertRegex(tagged(f, b"A3")[1], rb"^A3 OK \[APPENDUID \d+ 1\]")
            # Non-synchronizing literal (LITERAL+): the client sends it without waiting;
            # Dovecot answers at once and reads the literal away.
            big = mail_of(LIMIT + 1, "too big")
            sock.sendall(f"A4 APPEND INBOX {{{len(big)}+}}\r\n".encode() + big + b"\r\n")
            self.assertRegex(tagged(f, b"A4")[1], rb"^A4 NO \[TOOBIG\] ")
            sock.sendall(b"A5 STATUS INBOX (MESSAGES)\r\n")
            untagged, line = tagged(f, b"A5")
            self.assertTrue(line.startswith(b"A5 OK"), line)
            self.assertIn(b"(MESSAGES 1)", b"".join(untagged))
        finally:
            sock.close()


@unittest.skipIf(harness.DRIVER != "rados", "rados_max_keywords is the rados plugin's")
class Keywords(DovecotTestCase):
    def head_wal(self, inst, mailbox):
        """The WAL entries of the mailbox's head object: {key: encoded bytes}."""
        pool = doveconf(inst.conf, "plugin/rados_pool")
        prefix = doveconf(inst.conf, "plugin/rados_namespace_prefix")
        if not hasattr(self, "_guid"):
            out = inst.doveadm_fmt("flow", self.user, "mailbox status", "guid", mailbox)
            self._guid = out.decode().strip().removeprefix(f"{mailbox} ").removeprefix("guid=")
            self.assertRegex(self._guid, r"^[0-9a-f]{32}$")
        head = "mbox." + self._guid
        # Namespace mapping v2 (docs/FORMAT.md): <prefix>/<user>, or <user> without a prefix.
        namespace = f"{prefix}/{self.user}" if prefix else self.user
        proc = subprocess.run(["rados", "-p", pool, "-N", namespace, "listomapvals", head],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise AssertionError(f"rados listomapvals {head}: {proc.stderr}")
        entries = re.findall(r"^(\S+)\nvalue \((\d+) bytes\) :", proc.stdout, re.M)
        return {k: int(n) for k, n in entries if k.startswith("w/")}

    def store_keywords(self, c, names):
        return c.uid("STORE", "1", "+FLAGS.SILENT", "(" + " ".join(names) + ")")

    def test_keyword_batches_linear_and_limit(self):
        inst = limits_instance()
        c = inst.imap(self.user)
        try:
            ok(c.append("INBOX", None, None, mail_of(200, "keywords")))
            select(c)
            self.assertIn("\\*", permanentflags(c))
            # First 150 names: every measured batch then has modseqs of the same
            # encoded length (protobuf varints of 2 bytes from 128).
            ok(self.store_keywords(c, kw_names("w", 0, 150)))
            rows = []
            for b in range(3):
                before = self.head_wal(inst, "INBOX")
                hms = status(c, "INBOX", "HIGHESTMODSEQ")["HIGHESTMODSEQ"]
                t0 = time.monotonic()
                ok(self.store_keywords(c, kw_names("k", 500 * b, 500)))
                secs = time.monotonic() - t0
                after = self.head_wal(inst, "INBOX")
                new = {k: n for k, n in after.items() if k not in before}
                hms2 = status(c, "INBOX", "HIGHESTMODSEQ")["HIGHESTMODSEQ"]
                rows.append((len(new), sum(new.values()), hms2 - hms, secs))
            for b, r in enumerate(rows):
                print(f"batch {b}: {r[0]} WAL entries, {r[1]} bytes, modseqs +{r[2]}, {r[3]:.2f} s")
            for b, (entries, nbytes, modseqs, _) in enumerate(rows):
                self.assertEqual(entries, 1, f"WAL entries of batch {b}")
                self.assertEqual(modseqs, 500, f"one modseq per keyword, batch {b}")
                if b:
                    # The mail's record grows by the batch's names: 5 bytes + 2 each.
                    self.assertEqual(nbytes - rows[b - 1][1], 500 * 7, f"WAL bytes of batch {b}")

            # 1,650 names; 500 more would be 2,150 > 2,000: refused as Dovecot refuses a
            # keyword it can't create, and nothing of it is applied.
            typ, data = self.store_keywords(c, kw_names("x", 0, 500))
            self.assertEqual(typ, "NO", data)
            self.assertIn(b"[CANNOT] Can't create new keywords", data[0])
            flags = uid_fetch(c, "1", "(FLAGS)")[1]["FLAGS"]
            self.assertEqual(len([f for f in flags if not f.startswith("\\")]), 1650)
            self.assertFalse(any(f.startswith("x") for f in flags))
            # Up to the limit exactly.
            ok(self.store_keywords(c, kw_names("y", 0, 350)))
        finally:
            c.logout()
        # A new session (a new imap process, so a new library view): the mailbox is
        # full, PERMANENTFLAGS lacks \*, a new name is refused by Dovecot itself.
        c = inst.imap(self.user)
        try:
            select(c)
            self.assertNotIn("\\*", permanentflags(c))
            typ, data = self.store_keywords(c, ["brandnew"])
            self.assertEqual(typ, "NO", data)
            self.assertIn(b"[CANNOT] Can't create new keywords", data[0])
            # An APPEND with a new keyword too; one with a name in use is stored.
            typ, data = c.append("INBOX", "(brandnew)", None, mail_of(200, "kw"))
            self.assertEqual(typ, "NO", data)
            ok(c.append("INBOX", "(k0001)", None, mail_of(200, "kw")))
            # Names no mail has any more make room again.
            ok(c.uid("STORE", "1", "-FLAGS.SILENT", "(" + " ".join(kw_names("y", 0, 10)) + ")"))
        finally:
            c.logout()
        c = inst.imap(self.user)
        try:
            select(c)
            self.assertIn("\\*", permanentflags(c))
            ok(self.store_keywords(c, ["brandnew"]))
        finally:
            c.logout()

    def test_keyword_limit_seen_by_another_backend(self):
        """Default limit (1,000), two backends: a mailbox filled through a is full on b."""
        a, b = harness.shared_pair()
        c = a.imap(self.user)
        try:
            ok(c.append("INBOX", None, None, mail_of(200, "keywords")))
            select(c)
            for i in range(2):
                ok(self.store_keywords(c, kw_names("k", 500 * i, 500)))
        finally:
            c.logout()
        c = b.imap(self.user)
        try:
            select(c)
            self.assertNotIn("\\*", permanentflags(c))
            typ, data = self.store_keywords(c, ["onemore"])
            self.assertEqual(typ, "NO", data)
            self.assertIn(b"[CANNOT] Can't create new keywords", data[0])
            flags = uid_fetch(c, "1", "(FLAGS)")[1]["FLAGS"]
            self.assertEqual(len([f for f in flags if not f.startswith("\\")]), 1000)
        finally:
            c.logout()
