"""Bad input through Dovecot: a mail above rados_max_mail_size is refused for good (LMTP
552, so the sender learns at once; IMAP NO [LIMIT]) and leaves nothing behind; a mail
just below it, and a malformed one, are stored as given; invalid mailbox names are
refused with a clear NO."""

import smtplib
import unittest

import harness
from harness import DovecotTestCase, ok, select, uid_fetch, uid_search

LIMIT = 1 << 20


def limits_instance():
    return harness.instance_with_conf("limits", "plugin {\n  rados_max_mail_size = 1M\n}\n")


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
            typ, data = c.append("INBOX", None, None, mail_of(LIMIT + 4096, "too big"))
            self.assertEqual(typ, "NO", data)
            self.assertIn(b"[LIMIT]", data[0])
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
