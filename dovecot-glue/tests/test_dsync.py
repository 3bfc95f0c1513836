"""doveadm backup / sync between the configured storage (rados) and sdbox, both ways: the
migration path. What must come out identical: the mailbox list, each mailbox's GUID,
UIDVALIDITY, UIDNEXT and message count, and each mail's UID, GUID, flags, keywords,
received date and bytes; a second run after changes on the source converges without
duplicates, and a third changes nothing.

Bytes: sdbox stores mails with LF line ends (mail_save_crlf = no, Dovecot's default),
rados stores them as given. So a mail that came in with CRLF is LF in the sdbox copy: what
both serve (IMAP BODY[], always CRLF) is compared byte for byte. Into rados, the stored
bytes themselves are compared: rados keeps what sdbox had.

The first failure this suite records (before the rados storage kept what dsync asks for):
`doveadm backup -R` into rados logged "Error: Backend didn't update mailbox INBOX GUID"
(mailbox create ignored the GUID and UIDVALIDITY dsync gave, mailbox_update refused
UIDNEXT and modseqs, saves ignored the wanted UID and GUID)."""

import json
import re

from harness import (DovecotTestCase, append, crlf, instance, make_mail, ok, run_doveadm,
                     select, uid_fetch)

# Flags a client cannot set; \Recent depends on who looked first.
SESSION_FLAGS = {"\\recent"}


def imap_form(text):
    """The bytes IMAP serves for a stored mail: every line end CRLF."""
    return re.sub(rb"\r?\n", b"\r\n", text)


class DsyncTest(DovecotTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dc = instance("a")

    # --- doveadm ------------------------------------------------------------------------

    def adm(self, *args, location=None, stdin=None, fmt=None):
        """`doveadm -c CONF [-o mail_location=LOC] [-f FMT] CMD -u USER ARGS` (CMD may be
        two words); stdout as bytes. Fails on a non-zero exit or an error line."""
        cmd = ["doveadm", "-c", self.dc.conf]
        if location:
            cmd += ["-o", f"mail_location={location}"]
        if fmt:
            cmd += ["-f", fmt]
        cmd += [*args[0].split(), "-u", self.user, *args[1:]]
        return run_doveadm(cmd, stdin)

    def snapshot(self, location=None):
        """Everything that must survive a migration, read through doveadm from the
        configured storage (location None) or from `location`:
        {mailbox: {"status": {...}, "mails": {uid: {...}}}}."""
        boxes = json.loads(self.adm("mailbox list", location=location, fmt="json"))
        out = {}
        for name in sorted(b["mailbox"] for b in boxes):
            st = json.loads(self.adm("mailbox status", "guid uidvalidity uidnext messages",
                                     name, location=location, fmt="json"))[0]
            mails = json.loads(self.adm(
                "fetch", "uid guid flags date.received size.virtual text", "mailbox", name,
                "all", location=location, fmt="json"))
            out[name] = {
                "status": {k: st[k] for k in ("guid", "uidvalidity", "uidnext", "messages")},
                "mails": {int(m["uid"]): {
                    "guid": m["guid"],
                    "flags": sorted(f for f in m["flags"].split()
                                    if f.lower() not in SESSION_FLAGS),
                    "received": m["date.received"],
                    "vsize": int(m["size.virtual"]),
                    "text": m["text"].encode("utf-8"),
                } for m in mails},
            }
        return out

    def assert_same(self, ours, sdbox, stored_bytes):
        """`ours` (the configured storage) and `sdbox` hold the same mail. With
        stored_bytes, the stored bytes are equal too; else the bytes IMAP serves."""
        self.assertEqual(sorted(ours), sorted(sdbox), "the same mailboxes")
        for name in ours:
            a, b = ours[name], sdbox[name]
            self.assertEqual(a["status"], b["status"], f"{name}: GUID, UIDVALIDITY, UIDNEXT")
            self.assertEqual(sorted(a["mails"]), sorted(b["mails"]), f"{name}: the same UIDs")
            for uid, mail in a["mails"].items():
                other = b["mails"][uid]
                for key in ("guid", "flags", "received", "vsize"):
                    self.assertEqual(mail[key], other[key], f"{name} UID {uid}: {key}")
                if stored_bytes:
                    self.assertEqual(mail["text"], other["text"], f"{name} UID {uid}: bytes")
                else:
                    self.assertEqual(imap_form(mail["text"]), imap_form(other["text"]),
                                     f"{name} UID {uid}: bytes as served")
            guids = [m["guid"] for m in a["mails"].values()]
            self.assertEqual(len(guids), len(set(guids)), f"{name}: no mail twice")

    def assert_imap_serves(self, snap):
        """What IMAP serves from the configured storage is `snap` (UIDVALIDITY, UIDs,
        BODY[] byte for byte, flags)."""
        c = self.dc.imap(self.user)
        try:
            for name, box in snap.items():
                n, uidvalidity = select(c, f'"{name}"')
                self.assertEqual((n, uidvalidity), (len(box["mails"]),
                                                    int(box["status"]["uidvalidity"])))
                if not box["mails"]:
                    continue
                got = uid_fetch(c, "1:*", "(BODY.PEEK[] FLAGS)")
                self.assertEqual(sorted(got), sorted(box["mails"]), name)
                for uid, mail in box["mails"].items():
                    self.assertEqual(got[uid]["BODY[]"], imap_form(mail["text"]),
                                     f"{name} UID {uid}")
                    flags = sorted(f for f in got[uid]["FLAGS"]
                                   if f.lower() not in SESSION_FLAGS)
                    self.assertEqual(flags, mail["flags"], f"{name} UID {uid}")
        finally:
            c.logout()

    # --- content ------------------------------------------------------------------------

    def fill_over_imap(self):
        """Mailboxes with a hierarchy and an empty one, mails with CRLF, one with LF (doveadm
        save), 8-bit text and a larger one, every system flag, keywords, a UID gap."""
        c = self.dc.imap(self.user)
        try:
            for box in ("Archive", "Archive/2025", "Empty"):
                ok(c.create(box))
            big = make_mail("big", "".join(f"line {i} " + "x" * 70 + "\n" for i in range(3000)))
            mails = [
                (make_mail("plain"), r"(\Seen)"),
                (make_mail("gone"), None),
                (make_mail("umlauts", "Grüße aus Köln, 東京\n"), r"(\Answered $Label1 Custom)"),
                (big, r"(\Flagged \Draft)"),
                (make_mail("deleted, not expunged"), r"(\Deleted)"),
            ]
            for mail, flags in mails:
                append(c, "INBOX", mail, flags)
            append(c, "Archive/2025", make_mail("archived"), r"(\Seen $Label2)")
            ok(c.append("Archive", None, '"01-Jan-2024 10:00:00 +0000"', make_mail("dated")))
            select(c)
            ok(c.uid("STORE", "2", "+FLAGS.SILENT", r"(\Deleted)"))
            ok(c.uid("EXPUNGE", "2"))
        finally:
            c.logout()
        lf_mail = make_mail("saved with LF", "one\ntwo\n").replace(b"\r\n", b"\n")
        self.adm("save", "-m", "INBOX", stdin=lf_mail)

    def fill_sdbox(self, location):
        """The same kind of content in an sdbox, written with doveadm."""
        for box in ("Archive", "Archive/2025", "Empty"):
            self.adm("mailbox create", box, location=location)
        mails = [
            ("INBOX", make_mail("plain")),
            ("INBOX", make_mail("gone")),
            ("INBOX", make_mail("umlauts", "Grüße aus Köln, 東京\n")),
            ("INBOX", make_mail("big", "y" * 200000 + "\n")),
            ("INBOX", make_mail("deleted, not expunged")),
            ("Archive/2025", make_mail("archived")),
        ]
        for box, mail in mails:
            self.adm("save", "-m", box, location=location, stdin=mail.replace(b"\r\n", b"\n"))
        self.adm("flags add", "\\Seen", "mailbox", "INBOX", "uid", "1", location=location)
        self.adm("flags add", "\\Answered $Label1 Custom", "mailbox", "INBOX", "uid", "3",
                 location=location)
        self.adm("flags add", "\\Flagged \\Draft", "mailbox", "INBOX", "uid", "4",
                 location=location)
        self.adm("flags add", "\\Deleted", "mailbox", "INBOX", "uid", "5", location=location)
        self.adm("flags add", "\\Seen $Label2", "mailbox", "Archive/2025", "uid", "1",
                 location=location)
        self.adm("expunge", "mailbox", "INBOX", "uid", "2", location=location)
        self.adm("save", "-m", "INBOX", location=location,
                 stdin=crlf("Subject: kept with CRLF\n\nbody\n"))

    def first_inbox(self):
        """Logs in over IMAP and selects INBOX: the configured storage creates INBOX (with
        a GUID and UIDVALIDITY of its own) before any migration reaches it."""
        c = self.dc.imap(self.user)
        try:
            select(c)
        finally:
            c.logout()

    # --- the tests ----------------------------------------------------------------------

    def test_dsync_backup_to_sdbox_then_incremental(self):
        """rados -> sdbox: `doveadm backup -u USER sdbox:DIR` with the rados config."""
        dest = "sdbox:~/exported"
        self.fill_over_imap()
        ours = self.snapshot()
        self.assertEqual(sorted(ours), ["Archive", "Archive/2025", "Empty", "INBOX"])
        self.assertEqual(sorted(ours["INBOX"]["mails"]), [1, 3, 4, 5, 6], "a UID gap")
        self.adm("backup", dest)
        self.assert_same(ours, self.snapshot(dest), stored_bytes=False)

        # Changes on the source, then a second run.
        c = self.dc.imap(self.user)
        try:
            select(c)
            uid = append(c, "INBOX", make_mail("new after the first run"), r"(\Flagged New)")[1]
            ok(c.uid("STORE", "1", "-FLAGS.SILENT", r"(\Seen)"))
            ok(c.uid("STORE", "3", "+FLAGS.SILENT", r"(\Seen Another)"))
            ok(c.uid("STORE", "3", "-FLAGS.SILENT", r"(Custom)"))
            ok(c.uid("STORE", "5", "+FLAGS.SILENT", r"(\Deleted)"))
            ok(c.uid("EXPUNGE", "5"))
            ok(c.create("Later"))
            append(c, "Later", make_mail("in a later mailbox"))
            ok(c.delete("Empty"))
        finally:
            c.logout()
        ours = self.snapshot()
        self.assertIn(uid, ours["INBOX"]["mails"])
        self.adm("backup", dest)
        after = self.snapshot(dest)
        self.assert_same(ours, after, stored_bytes=False)

        # A third run has nothing to do.
        self.adm("backup", dest)
        self.assertEqual(self.snapshot(dest), after)
        self.assertEqual(self.snapshot(), ours)

    def test_dsync_backup_from_sdbox_then_incremental(self):
        """sdbox -> rados: `doveadm backup -R -u USER sdbox:DIR`, the rados INBOX created
        by a first login already (dsync replaces it with the source's)."""
        src = "sdbox:~/source"
        self.fill_sdbox(src)
        self.first_inbox()
        theirs = self.snapshot(src)
        self.assertEqual(sorted(theirs["INBOX"]["mails"]), [1, 3, 4, 5, 6], "a UID gap")
        self.adm("backup", "-R", src)
        ours = self.snapshot()
        self.assert_same(ours, theirs, stored_bytes=True)
        self.assert_imap_serves(ours)

        # Changes on the source, then a second run.
        self.adm("save", "-m", "INBOX", location=src,
                 stdin=make_mail("new in sdbox").replace(b"\r\n", b"\n"))
        self.adm("flags remove", "\\Seen", "mailbox", "INBOX", "uid", "1", location=src)
        self.adm("flags add", "\\Seen Another", "mailbox", "INBOX", "uid", "3", location=src)
        self.adm("flags remove", "Custom", "mailbox", "INBOX", "uid", "3", location=src)
        self.adm("expunge", "mailbox", "INBOX", "uid", "5", location=src)
        self.adm("mailbox create", "Later", location=src)
        self.adm("save", "-m", "Later", location=src, stdin=b"Subject: later\n\nx\n")
        self.adm("mailbox delete", "Empty", location=src)
        theirs = self.snapshot(src)
        self.adm("backup", "-R", src)
        ours = self.snapshot()
        self.assert_same(ours, theirs, stored_bytes=True)
        self.assert_imap_serves(ours)

        # A third run has nothing to do: not even a modseq moves.
        modseqs = self.highestmodseqs()
        self.adm("backup", "-R", src)
        self.assertEqual(self.snapshot(), ours)
        self.assertEqual(self.highestmodseqs(), modseqs)

    def test_dsync_two_way_sync_with_sdbox(self):
        """`doveadm sync` (both ways): INBOX exists on both sides with different GUIDs
        (ours was made by a first login and has no mail, so it takes the other's), then
        changes on both sides meet without duplicates."""
        other = "sdbox:~/twoway"
        self.fill_sdbox(other)
        self.first_inbox()
        self.adm("sync", other)
        self.assert_same(self.snapshot(), self.snapshot(other), stored_bytes=True)

        c = self.dc.imap(self.user)
        try:
            select(c)
            append(c, "INBOX", make_mail("from IMAP"), r"(\Seen)")
            ok(c.uid("STORE", "3", "+FLAGS.SILENT", r"(FromImap)"))
        finally:
            c.logout()
        self.adm("save", "-m", "Archive", location=other, stdin=b"Subject: from sdbox\n\nx\n")
        self.adm("flags add", "FromSdbox", "mailbox", "INBOX", "uid", "4", location=other)
        self.adm("sync", other)
        ours, theirs = self.snapshot(), self.snapshot(other)
        self.assert_same(ours, theirs, stored_bytes=False)
        inbox = ours["INBOX"]["mails"]
        self.assertEqual(len(inbox), 6, "5 mails and the one from IMAP, once")
        self.assertIn("FromImap", inbox[3]["flags"])
        self.assertIn("FromSdbox", inbox[4]["flags"])
        self.assertEqual(len(ours["Archive"]["mails"]), 1)

    def highestmodseqs(self):
        boxes = json.loads(self.adm("mailbox list", fmt="json"))
        out = {}
        for b in boxes:
            st = json.loads(self.adm("mailbox status", "highestmodseq", b["mailbox"],
                                     fmt="json"))[0]
            out[b["mailbox"]] = int(st["highestmodseq"])
        return out
