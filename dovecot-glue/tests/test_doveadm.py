"""doveadm against the same storage: `doveadm -c CONF CMD -u USER ...`, checked
against what IMAP sees."""

import re

from harness import (SessionTestCase, append, flags_of, make_mail, ok, parse,
                     select, status, uid_fetch, uid_search)


class DoveadmTest(SessionTestCase):
    def adm(self, *args, stdin=None):
        return self.dc.doveadm(self.user, *args, stdin=stdin).decode("utf-8", "replace")

    def adm_status(self, box, items="messages uidnext uidvalidity highestmodseq"):
        out = self.adm("mailbox status", items, box)
        return {k.upper(): int(v) for k, v in re.findall(r"(\w+)=(\d+)", out)}

    def adm_fetch_tab(self, fields, box, *query):
        """`doveadm -f tab fetch` -> list of {field: value}."""
        out = self.dc.doveadm_fmt("tab", self.user, "fetch", fields, "mailbox", box,
                                  *query).decode()
        lines = out.splitlines()
        header = lines[0].split("\t")
        return [dict(zip(header, line.split("\t"))) for line in lines[1:] if line]

    def test_doveadm_mailbox_create_list_status(self):
        sep = parse(ok(self.c.list('""', '""'))[0])[1].decode()
        self.adm("mailbox create", "Projects")
        self.adm("mailbox create", f"Projects{sep}2026")
        listed = set(self.adm("mailbox list").split("\n")) - {""}
        self.assertGreaterEqual(listed, {"INBOX", "Projects", f"Projects{sep}2026"})
        imap_names = {parse(d)[2] for d in ok(self.c.list('""', '"*"'))}
        imap_names = {n.decode() if isinstance(n, bytes) else n for n in imap_names}
        self.assertEqual(imap_names, listed, "doveadm and IMAP list the same mailboxes")

        uids = [append(self.c, "Projects", make_mail(f"p{i}"))[1] for i in range(2)]
        st = self.adm_status("Projects")
        imap_st = status(self.c, "Projects", "MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ")
        self.assertEqual(st["MESSAGES"], 2)
        self.assertEqual(st["UIDNEXT"], uids[-1] + 1)
        self.assertEqual(st, imap_st)
        self.adm("mailbox delete", f"Projects{sep}2026")
        self.assertNotIn(f"Projects{sep}2026", self.adm("mailbox list").split("\n"))

        # rename keeps the mails, their UIDs and the UIDVALIDITY
        self.adm("mailbox rename", "Projects", "Done")
        names = set(self.adm("mailbox list").split("\n")) - {""}
        self.assertIn("Done", names)
        self.assertNotIn("Projects", names)
        self.assertEqual(self.adm_status("Done"), st)
        # delete of a mailbox with mails; it is gone for IMAP too
        self.adm("mailbox delete", "Done")
        self.assertNotIn("Done", set(self.adm("mailbox list").split("\n")))
        typ, _ = self.c.select("Done")
        self.assertEqual(typ, "NO")

    def test_doveadm_save_and_fetch(self):
        mail = make_mail("saved by doveadm", "line one\n.dot line\nline three\n")
        lf_mail = mail.replace(b"\r\n", b"\n")
        self.adm("save", "-m", "INBOX", stdin=lf_mail)
        self.adm("save", "-m", "INBOX", stdin=make_mail("second"))
        select(self.c)
        uids = uid_search(self.c, "ALL")
        self.assertEqual(len(uids), 2)
        got = uid_fetch(self.c, str(uids[0]), "(BODY.PEEK[] RFC822.SIZE)")[uids[0]]
        self.assertEqual(got["BODY[]"], mail, "IMAP returns the saved mail with CRLF")
        self.assertEqual(int(got["RFC822.SIZE"]), len(mail))

        out = self.dc.doveadm(self.user, "fetch", "text", "mailbox", "INBOX", "uid",
                              str(uids[0]))
        self.assertTrue(out.startswith(b"text:\n"), out[:100])
        self.assertEqual(out[len(b"text:\n"):].rstrip(b"\n\f"), lf_mail.rstrip(b"\n"))
        rows = self.adm_fetch_tab("uid hdr.subject size.virtual", "INBOX", "all")
        self.assertEqual([int(r["uid"]) for r in rows], uids)
        self.assertEqual(rows[0]["hdr.subject"], "saved by doveadm")
        self.assertEqual(int(rows[0]["size.virtual"]), len(mail))

    def test_doveadm_search_and_expunge(self):
        select(self.c)
        u1 = append(self.c, "INBOX", make_mail("alpha report"))[1]
        u2 = append(self.c, "INBOX", make_mail("beta"))[1]
        u3 = append(self.c, "INBOX", make_mail("gamma report"))[1]
        out = self.adm("search", "mailbox", "INBOX", "all")
        pairs = [line.split() for line in out.splitlines() if line]
        self.assertEqual([int(p[1]) for p in pairs], [u1, u2, u3])
        self.assertEqual(len({p[0] for p in pairs}), 1, "one mailbox GUID")
        out = self.adm("search", "mailbox", "INBOX", "subject", "report")
        self.assertEqual([int(line.split()[1]) for line in out.splitlines() if line], [u1, u3])

        self.adm("expunge", "mailbox", "INBOX", "uid", str(u2))
        self.c.noop()
        self.assertEqual(uid_search(self.c, "ALL"), [u1, u3])
        self.adm("expunge", "mailbox", "INBOX", "subject", "report")
        self.c.noop()
        self.assertEqual(uid_search(self.c, "ALL"), [])
        self.assertEqual(self.adm_status("INBOX")["MESSAGES"], 0)

    def test_doveadm_flags_add(self):
        select(self.c)
        u1 = append(self.c, "INBOX", make_mail("f1"))[1]
        u2 = append(self.c, "INBOX", make_mail("f2"))[1]
        self.adm("flags add", "\\Flagged $Label1", "mailbox", "INBOX", "uid", str(u1))
        self.c.noop()
        got = uid_fetch(self.c, "1:*", "(FLAGS)")
        self.assertEqual(flags_of(got[u1]["FLAGS"]), {"\\Flagged", "$Label1"})
        self.assertEqual(flags_of(got[u2]["FLAGS"]), set())
        rows = self.adm_fetch_tab("uid flags", "INBOX", "all")
        flags = {int(r["uid"]): set(r["flags"].split()) - {"\\Recent"} for r in rows}
        self.assertEqual(flags, {u1: {"\\Flagged", "$Label1"}, u2: set()})
        self.adm("flags remove", "\\Flagged", "mailbox", "INBOX", "uid", str(u1))
        self.c.noop()
        got = uid_fetch(self.c, str(u1), "(FLAGS)")
        self.assertEqual(flags_of(got[u1]["FLAGS"]), {"$Label1"})
        self.assertEqual(uid_search(self.c, "KEYWORD", "$Label1"), [u1])

    def test_doveadm_force_resync(self):
        _, uidvalidity = select(self.c)
        mails = [make_mail(f"r{i}") for i in range(3)]
        uids = [append(self.c, "INBOX", m)[1] for m in mails]
        ok(self.c.uid("STORE", str(uids[1]), "+FLAGS.SILENT", "(\\Seen $Label1)"))
        before = status(self.c, "INBOX", "MESSAGES UIDNEXT UIDVALIDITY")
        self.c.logout()

        self.adm("force-resync", "INBOX")
        self.adm("force-resync", "*")

        self.c = self.dc.imap(self.user)
        self.assertEqual(select(self.c), (3, uidvalidity))
        self.assertEqual(status(self.c, "INBOX", "MESSAGES UIDNEXT UIDVALIDITY"), before)
        got = uid_fetch(self.c, "1:*", "(BODY.PEEK[] FLAGS)")
        self.assertEqual(sorted(got), uids)
        for uid, mail in zip(uids, mails):
            self.assertEqual(got[uid]["BODY[]"], mail)
        # The index was intact, so nothing is lost.
        self.assertEqual(flags_of(got[uids[1]]["FLAGS"]), {"\\Seen", "$Label1"})
