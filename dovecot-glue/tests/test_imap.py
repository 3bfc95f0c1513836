"""One Dovecot instance: LMTP delivery, IMAP (RFC 3501, UIDPLUS, MOVE, CONDSTORE,
QRESYNC) and POP3, each test as a fresh user."""

import os
import poplib
import re

from harness import (SessionTestCase, append, crlf, flags_of, make_mail, ok,
                     parse, parse_fetch, resp_code, select, sha256, status, uid_fetch,
                     uid_search)

# Lines that stress transport and storage: dot-stuffing, 8-bit text, a long line,
# trailing blanks, an empty line before the end.
TRICKY_BODY = (
    "First line.\n"
    ".A line starting with a dot\n"
    "..two dots\n"
    ".\n"
    "Gr\u00fc\u00dfe, \u65e5\u672c\u8a9e, \u00e9t\u00e9\n"
    + "x" * 900 + "\n"
    "trailing blanks   \n"
    "\n"
    "last line\n"
)

TRACE_HEADERS = ("return-path", "delivered-to", "received")


def split_trace(fetched, original):
    """Checks that `fetched` is trace headers added by LMTP followed by `original`
    byte for byte; returns the trace header names."""
    if not fetched.endswith(original):
        raise AssertionError(f"delivered mail does not end with the original:\n"
                             f"{fetched[:2000]!r}\nvs\n{original[:2000]!r}")
    prefix = fetched[:len(fetched) - len(original)].decode("utf-8", "replace")
    names = [line.split(":", 1)[0].lower() for line in prefix.split("\r\n")
             if line and not line[0] in " \t"]
    if not prefix.endswith("\r\n") and prefix:
        raise AssertionError(f"trace headers not CRLF-terminated: {prefix!r}")
    return names


class ImapTest(SessionTestCase):
    def deliver_and_select(self, mail):
        self.dc.deliver(self.user, mail)
        n, _ = select(self.c)
        self.assertEqual(n, 1)
        return uid_search(self.c, "ALL")[0]

    # --- delivery and FETCH ------------------------------------------------------

    def test_lmtp_deliver_fetch_body_byte_exact(self):
        mail = make_mail("byte exact", TRICKY_BODY)
        uid = self.deliver_and_select(mail)
        got = uid_fetch(self.c, str(uid), "(BODY.PEEK[])")[uid]["BODY[]"]
        names = split_trace(got, mail)
        self.assertIn("return-path", names)
        self.assertTrue(set(names) <= set(TRACE_HEADERS), names)
        self.assertNotIn(b"\n", got.replace(b"\r\n", b""), "bare LF in a fetched mail")

    def test_append_fetch_body_byte_exact(self):
        mail = make_mail("append exact", TRICKY_BODY)
        select(self.c)
        _, uid = append(self.c, "INBOX", mail)
        got = uid_fetch(self.c, str(uid), "(BODY.PEEK[] RFC822.SIZE)")[uid]
        self.assertEqual(got["BODY[]"], mail)
        self.assertEqual(int(got["RFC822.SIZE"]), len(mail))

    def test_rfc822_size(self):
        mail = make_mail("size", TRICKY_BODY)
        uid = self.deliver_and_select(mail)
        got = uid_fetch(self.c, str(uid), "(RFC822.SIZE BODY.PEEK[])")[uid]
        # The CRLF size, which differs from what is stored (LF line ends).
        self.assertEqual(int(got["RFC822.SIZE"]), len(got["BODY[]"]))
        self.assertGreater(int(got["RFC822.SIZE"]), len(mail))

    def test_body_peek_header(self):
        mail = make_mail("headers only", "body text\n")
        uid = self.deliver_and_select(mail)
        got = uid_fetch(self.c, str(uid), "(BODY.PEEK[HEADER] BODY.PEEK[TEXT] FLAGS)")[uid]
        header, text = got["BODY[HEADER]"], got["BODY[TEXT]"]
        orig_header = mail[:mail.index(b"\r\n\r\n") + 4]
        self.assertTrue(header.endswith(orig_header), header)
        self.assertEqual(text, b"body text\r\n")
        self.assertNotIn("\\Seen", got["FLAGS"], "PEEK must not set \\Seen")
        fields = uid_fetch(self.c, str(uid), "(BODY.PEEK[HEADER.FIELDS (SUBJECT TO)])")[uid]
        self.assertEqual(fields["BODY[HEADER.FIELDS (SUBJECT TO)]"],
                         b"To: bob@example.net\r\nSubject: headers only\r\n\r\n")

    def test_partial_fetch(self):
        mail = make_mail("partial", TRICKY_BODY)
        select(self.c)
        _, uid = append(self.c, "INBOX", mail)
        got = uid_fetch(self.c, str(uid), "(BODY.PEEK[]<10.20> BODY.PEEK[TEXT]<5.7>)")[uid]
        self.assertEqual(got["BODY[]<10>"], mail[10:30])
        text = mail[mail.index(b"\r\n\r\n") + 4:]
        self.assertEqual(got["BODY[TEXT]<5>"], text[5:12])
        # Past the end: empty; straddling the end: truncated.
        got = uid_fetch(self.c, str(uid), f"(BODY.PEEK[]<{len(mail) - 4}.100>)")[uid]
        self.assertEqual(got[f"BODY[]<{len(mail) - 4}>"], mail[-4:])

    def test_envelope_and_bodystructure(self):
        boundary = "=_b0und"
        part1 = "Caf\u00e9 =E2=82=AC\nsecond line\n"
        attach = "AAECAwQFBgcICQ==\n"
        mail = crlf(
            'From: "Alice Q. Example" <alice@example.org>\n'
            "To: bob@example.net, Carol <carol@example.com>\n"
            "Cc: dave@example.com\n"
            "Reply-To: replies@example.org\n"
            "Subject: structure test\n"
            "Date: Tue, 03 Mar 2026 04:05:06 +0000\n"
            "Message-ID: <struct-1@example.org>\n"
            "In-Reply-To: <parent@example.org>\n"
            "MIME-Version: 1.0\n"
            f'Content-Type: multipart/mixed; boundary="{boundary}"\n'
            "\n"
            "preamble\n"
            f"--{boundary}\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: quoted-printable\n"
            "\n"
            f"{part1}"
            f"--{boundary}\n"
            'Content-Type: application/octet-stream; name="a.bin"\n'
            "Content-Transfer-Encoding: base64\n"
            'Content-Disposition: attachment; filename="a.bin"\n'
            "\n"
            f"{attach}"
            f"--{boundary}--\n"
        )
        select(self.c)
        _, uid = append(self.c, "INBOX", mail)
        got = uid_fetch(self.c, str(uid), "(ENVELOPE BODYSTRUCTURE)")[uid]
        env = got["ENVELOPE"]
        self.assertEqual(env[0], b"Tue, 03 Mar 2026 04:05:06 +0000")
        self.assertEqual(env[1], b"structure test")
        self.assertEqual(env[2], [[b"Alice Q. Example", None, b"alice", b"example.org"]])
        self.assertEqual(env[3], env[2], "sender defaults to from")
        self.assertEqual(env[4], [[None, None, b"replies", b"example.org"]])
        self.assertEqual(env[5], [[None, None, b"bob", b"example.net"],
                                  [b"Carol", None, b"carol", b"example.com"]])
        self.assertEqual(env[6], [[None, None, b"dave", b"example.com"]])
        self.assertIsNone(env[7])
        self.assertEqual(env[8], b"<parent@example.org>")
        self.assertEqual(env[9], b"<struct-1@example.org>")

        bs = got["BODYSTRUCTURE"]
        text, att = bs[0], bs[1]
        self.assertEqual(bs[2].lower(), b"mixed")
        self.assertEqual([x.lower() for x in bs[3]], [b"boundary", boundary.encode().lower()])
        self.assertEqual((text[0].lower(), text[1].lower()), (b"text", b"plain"))
        self.assertEqual([x.lower() for x in text[2]], [b"charset", b"utf-8"])
        self.assertEqual(text[5].lower(), b"quoted-printable")
        # A part's size excludes the CRLF before the next boundary (RFC 2046 5.1.1).
        self.assertEqual(int(text[6]), len(crlf(part1)) - 2)
        # Lines = line feeds in the part: its last CRLF belongs to the boundary.
        self.assertEqual(int(text[7]), 1)
        self.assertEqual((att[0].lower(), att[1].lower()), (b"application", b"octet-stream"))
        self.assertEqual(att[5].lower(), b"base64")
        self.assertEqual(int(att[6]), len(crlf(attach)) - 2)
        disposition = att[8]
        self.assertEqual(disposition[0].lower(), b"attachment")
        self.assertEqual(disposition[1], [b"filename", b"a.bin"])
        # BODY[1] and BODY[2.MIME] address the parts.
        got = uid_fetch(self.c, str(uid), "(BODY.PEEK[1] BODY.PEEK[2.MIME])")[uid]
        self.assertEqual(got["BODY[1]"], crlf(part1)[:-2])
        self.assertIn(b"Content-Disposition: attachment", got["BODY[2.MIME]"])

    # --- flags ---------------------------------------------------------------------

    def test_flags_store_and_read_back(self):
        select(self.c)
        _, uid = append(self.c, "INBOX", make_mail("flags"))
        _, uid2 = append(self.c, "INBOX", make_mail("other"))
        data = ok(self.c.uid("STORE", str(uid), "+FLAGS", "(\\Seen \\Flagged $Label1)"))
        self.assertEqual(flags_of(parse_fetch(data)[uid]["FLAGS"]),
                         {"\\Seen", "\\Flagged", "$Label1"})
        ok(self.c.uid("STORE", str(uid), "-FLAGS.SILENT", "(\\Seen)"))
        self.c.logout()
        # A new session sees what was stored; the other message is untouched.
        self.c = self.dc.imap(self.user)
        typ, data = self.c.select("INBOX")
        flags_line = parse(self.c.untagged_responses["FLAGS"][-1])[0]
        self.assertIn("$Label1", flags_line, "keyword missing from FLAGS")
        got = uid_fetch(self.c, "1:*", "(FLAGS)")
        self.assertEqual(flags_of(got[uid]["FLAGS"]), {"\\Flagged", "$Label1"})
        self.assertEqual(flags_of(got[uid2]["FLAGS"]), set())
        # Replacing all flags.
        ok(self.c.uid("STORE", str(uid2), "FLAGS", "(\\Answered \\Draft $Other)"))
        got = uid_fetch(self.c, str(uid2), "(FLAGS)")
        self.assertEqual(flags_of(got[uid2]["FLAGS"]), {"\\Answered", "\\Draft", "$Other"})

    # --- mailboxes -----------------------------------------------------------------

    def list_names(self, command="LIST"):
        fn = self.c.list if command == "LIST" else self.c.lsub
        data = ok(fn('""', '"*"'))
        names = set()
        for d in data:
            if d is None:
                continue
            vals = parse(d)
            name = vals[2]
            names.add(name.decode() if isinstance(name, bytes) else name)
        return names

    def test_mailbox_list_create_rename_delete_subscribe(self):
        typ, data = self.c.list('""', '""')
        sep = parse(data[0])[1].decode()
        self.assertIn(sep, ("/", "."))
        self.assertIn("INBOX", self.list_names())
        ok(self.c.create("Work"))
        ok(self.c.create(f"Work{sep}Sub"))
        self.assertEqual(self.c.create("Work")[0], "NO", "CREATE of an existing mailbox")
        _, uid = append(self.c, "Work", make_mail("in work"))
        self.assertGreaterEqual(self.list_names(), {"INBOX", "Work", f"Work{sep}Sub"})

        ok(self.c.rename("Work", "Play"))
        names = self.list_names()
        self.assertGreaterEqual(names, {"Play", f"Play{sep}Sub"})
        self.assertFalse(names & {"Work", f"Work{sep}Sub"}, names)
        self.assertEqual(status(self.c, "Play", "MESSAGES")["MESSAGES"], 1)
        select(self.c, "Play")
        self.assertEqual(uid_search(self.c, "ALL"), [uid], "RENAME keeps UIDs")
        self.c.close()

        ok(self.c.subscribe("Play"))
        ok(self.c.subscribe(f"Play{sep}Sub"))
        self.assertEqual(self.list_names("LSUB"), {"Play", f"Play{sep}Sub"})
        ok(self.c.unsubscribe(f"Play{sep}Sub"))
        self.assertEqual(self.list_names("LSUB"), {"Play"})

        ok(self.c.delete(f"Play{sep}Sub"))
        ok(self.c.delete("Play"))
        self.assertFalse(self.list_names() & {"Play", f"Play{sep}Sub"})
        self.assertEqual(self.c.select("Play")[0], "NO")
        self.assertEqual(self.c.delete("Nonexistent")[0], "NO")

    # --- APPEND, COPY, MOVE, EXPUNGE ----------------------------------------------------

    def test_append_uid_matches_fetch(self):
        n, uidvalidity = select(self.c)
        mails = [make_mail(f"append {i}", f"body {i}\n") for i in range(3)]
        uids = []
        for i, mail in enumerate(mails):
            flags = "(\\Seen $Label1)" if i == 1 else None
            uv, uid = append(self.c, "INBOX", mail, flags)
            self.assertEqual(uv, uidvalidity)
            uids.append(uid)
        self.assertEqual(uids, sorted(set(uids)), "APPENDUIDs must increase")
        self.assertEqual(uid_search(self.c, "ALL"), uids)
        got = uid_fetch(self.c, "1:*", "(BODY.PEEK[] FLAGS)")
        for uid, mail in zip(uids, mails):
            self.assertEqual(got[uid]["BODY[]"], mail)
        self.assertEqual(flags_of(got[uids[1]]["FLAGS"]), {"\\Seen", "$Label1"})
        next_uid = status(self.c, "INBOX", "UIDNEXT")["UIDNEXT"]
        self.assertGreater(next_uid, uids[-1])
        # APPEND into a mailbox that is not selected reports its own UIDVALIDITY.
        ok(self.c.create("Other"))
        uv_other, uid_other = append(self.c, "Other", mails[0])
        self.assertEqual(status(self.c, "Other", "UIDVALIDITY")["UIDVALIDITY"], uv_other)
        self.assertEqual(self.c.append("Missing", None, None, mails[0])[0], "NO")

    def test_copy_and_move_copyuid(self):
        ok(self.c.create("Dest"))
        select(self.c)
        m1, m2 = make_mail("copy me"), make_mail("move me")
        _, u1 = append(self.c, "INBOX", m1, "(\\Flagged $Label1)")
        _, u2 = append(self.c, "INBOX", m2)
        dest_uv = status(self.c, "Dest", "UIDVALIDITY")["UIDVALIDITY"]

        data = ok(self.c.uid("COPY", str(u1), "Dest"))
        uv, src, dst = resp_code(self.c, data, "COPYUID")
        self.assertEqual((int(uv), int(src)), (dest_uv, u1))
        copy_uid = int(dst)

        self.c.untagged_responses.pop("COPYUID", None)
        data = ok(self.c.uid("MOVE", str(u2), "Dest"))
        uv, src, dst = resp_code(self.c, data, "COPYUID")
        self.assertEqual((int(uv), int(src)), (dest_uv, u2))
        move_uid = int(dst)
        self.assertNotEqual(copy_uid, move_uid)
        self.assertEqual(uid_search(self.c, "ALL"), [u1], "MOVE removes the source")

        select(self.c, "Dest")
        self.assertEqual(uid_search(self.c, "ALL"), sorted([copy_uid, move_uid]))
        got = uid_fetch(self.c, "1:*", "(BODY.PEEK[] FLAGS)")
        self.assertEqual(got[copy_uid]["BODY[]"], m1)
        self.assertEqual(got[move_uid]["BODY[]"], m2)
        self.assertEqual(flags_of(got[copy_uid]["FLAGS"]), {"\\Flagged", "$Label1"})
        # The source copy is still there and unchanged.
        select(self.c)
        self.assertEqual(uid_fetch(self.c, str(u1), "(BODY.PEEK[])")[u1]["BODY[]"], m1)

    def test_expunge_and_uid_expunge(self):
        select(self.c)
        uids = [append(self.c, "INBOX", make_mail(f"e{i}"))[1] for i in range(5)]
        ok(self.c.uid("STORE", f"{uids[1]},{uids[2]},{uids[3]}", "+FLAGS.SILENT", "(\\Deleted)"))
        # UID EXPUNGE removes only the named \Deleted messages.
        ok(self.c.uid("EXPUNGE", str(uids[2])))
        self.assertEqual(self.c.untagged_responses.pop("EXPUNGE", None), [b"3"])
        self.assertEqual(uid_search(self.c, "ALL"), [uids[0], uids[1], uids[3], uids[4]])
        typ, data = self.c.expunge()
        self.assertEqual(typ, "OK")
        self.assertEqual(sorted(int(x) for x in data if x), [2, 3],
                         "EXPUNGE reports sequence numbers (each after the previous removal)")
        self.assertEqual(uid_search(self.c, "ALL"), [uids[0], uids[4]])
        self.assertEqual(status(self.c, "INBOX", "MESSAGES")["MESSAGES"], 2)
        # UIDs are never reused.
        _, new = append(self.c, "INBOX", make_mail("after"))
        self.assertGreater(new, uids[-1])

    def test_search_by_header_and_flag(self):
        select(self.c)
        u1 = append(self.c, "INBOX", make_mail("alpha report", "needle one\n"))[1]
        u2 = append(self.c, "INBOX", make_mail("beta", "hay\n", frm="Carol <carol@example.com>"),
                    "(\\Flagged $Label1)")[1]
        u3 = append(self.c, "INBOX", make_mail("gamma report", "hay\n",
                                               extra="X-Tag: special\n"), "(\\Seen)")[1]
        self.assertEqual(uid_search(self.c, "SUBJECT", "report"), [u1, u3])
        self.assertEqual(uid_search(self.c, "HEADER", "SUBJECT", "beta"), [u2])
        self.assertEqual(uid_search(self.c, "HEADER", "X-Tag", "special"), [u3])
        self.assertEqual(uid_search(self.c, "FROM", "carol"), [u2])
        self.assertEqual(uid_search(self.c, "FLAGGED"), [u2])
        self.assertEqual(uid_search(self.c, "KEYWORD", "$Label1"), [u2])
        self.assertEqual(uid_search(self.c, "UNSEEN"), [u1, u2])
        self.assertEqual(uid_search(self.c, "SEEN", "SUBJECT", "report"), [u3])
        self.assertEqual(uid_search(self.c, "BODY", "needle"), [u1])
        self.assertEqual(uid_search(self.c, "NOT", "FLAGGED", "UNSEEN"), [u1])
        self.assertEqual(uid_search(self.c, "SUBJECT", "nothing-matches"), [])

    # --- CONDSTORE / QRESYNC --------------------------------------------------------------

    def test_condstore_modseq_unchangedsince_highestmodseq(self):
        ok(self.c.enable("CONDSTORE"))
        select(self.c)
        u1 = append(self.c, "INBOX", make_mail("c1"))[1]
        u2 = append(self.c, "INBOX", make_mail("c2"))[1]
        got = uid_fetch(self.c, "1:*", "(MODSEQ)")
        m1 = int(got[u1]["MODSEQ"][0])
        self.assertGreater(m1, 0)
        highest = status(self.c, "INBOX", "HIGHESTMODSEQ")["HIGHESTMODSEQ"]
        self.assertEqual(highest, max(int(v["MODSEQ"][0]) for v in got.values()))

        # Current modseq: succeeds and raises the message's modseq.
        data = ok(self.c.uid("STORE", str(u1), "(UNCHANGEDSINCE %d)" % m1, "+FLAGS", "(\\Seen)"))
        after = parse_fetch(data)[u1]
        self.assertIn("\\Seen", after["FLAGS"])
        m1_new = int(after["MODSEQ"][0])
        self.assertGreater(m1_new, m1)
        # Stale modseq: refused with [MODIFIED uid], flags untouched.
        self.c.untagged_responses.pop("MODIFIED", None)
        data = ok(self.c.uid("STORE", str(u1), "(UNCHANGEDSINCE %d)" % m1, "+FLAGS", "(\\Flagged)"))
        self.assertEqual(resp_code(self.c, data, "MODIFIED"), [str(u1)])
        got = uid_fetch(self.c, str(u1), "(FLAGS MODSEQ)")[u1]
        self.assertNotIn("\\Flagged", got["FLAGS"])
        self.assertEqual(int(got["MODSEQ"][0]), m1_new)
        # STATUS and CHANGEDSINCE agree with the new state.
        st = status(self.c, "INBOX", "HIGHESTMODSEQ")
        self.assertEqual(st["HIGHESTMODSEQ"], m1_new)
        changed = uid_fetch(self.c, "1:*", "(FLAGS) (CHANGEDSINCE %d)" % highest)
        self.assertEqual(sorted(changed), [u1])
        self.assertNotIn(u2, changed)

    def test_qresync_vanished_and_changed(self):
        ok(self.c.enable("QRESYNC"))
        _, uidvalidity = select(self.c)
        uids = [append(self.c, "INBOX", make_mail(f"q{i}"))[1] for i in range(4)]
        self.c.noop()
        modseq = status(self.c, "INBOX", "HIGHESTMODSEQ")["HIGHESTMODSEQ"]
        # Changes after `modseq`: flags on uids[1], expunge of uids[2] and uids[3].
        ok(self.c.uid("STORE", str(uids[1]), "+FLAGS.SILENT", "(\\Answered $Label1)"))
        ok(self.c.uid("STORE", f"{uids[2]}:{uids[3]}", "+FLAGS.SILENT", "(\\Deleted)"))
        ok(self.c.expunge())
        self.c.logout()

        self.c = self.dc.imap(self.user)
        ok(self.c.enable("QRESYNC"))
        typ, data = self.c._simple_command(
            "SELECT", "INBOX", f"(QRESYNC ({uidvalidity} {modseq}))")
        self.assertEqual(typ, "OK", data)
        self.c.state = "SELECTED"
        vanished = self.c.untagged_responses.pop("VANISHED", [])
        self.assertEqual(len(vanished), 1, vanished)
        m = re.fullmatch(rb"\(EARLIER\) (\S+)", vanished[0])
        self.assertIsNotNone(m, vanished)
        self.assertEqual(expand_set(m.group(1)), {uids[2], uids[3]})
        fetched = parse_fetch(self.c.untagged_responses.pop("FETCH", []))
        self.assertEqual(sorted(fetched), [uids[1]], "only the changed message is sent")
        self.assertEqual(flags_of(fetched[uids[1]]["FLAGS"]), {"\\Answered", "$Label1"})
        self.assertGreater(int(fetched[uids[1]]["MODSEQ"][0]), modseq)
        # With the current modseq nothing is reported.
        now = status(self.c, "INBOX", "HIGHESTMODSEQ")["HIGHESTMODSEQ"]
        ok(self.c.close())
        typ, data = self.c._simple_command("SELECT", "INBOX", f"(QRESYNC ({uidvalidity} {now}))")
        self.assertEqual(typ, "OK", data)
        self.assertFalse(self.c.untagged_responses.get("VANISHED"))
        self.assertFalse(self.c.untagged_responses.get("FETCH"))

    # --- large mail ----------------------------------------------------------------------

    def test_append_50_mib(self):
        import base64
        raw = base64.encodebytes(os.urandom(50 * 1024 * 1024 * 3 // 4 - 4096))
        mail = make_mail("big", "see attachment\n") + raw.replace(b"\n", b"\r\n")
        self.assertGreater(len(mail), 50 * 1024 * 1024)
        select(self.c)
        _, uid = append(self.c, "INBOX", mail)
        got = uid_fetch(self.c, str(uid), "(RFC822.SIZE)")[uid]
        self.assertEqual(int(got["RFC822.SIZE"]), len(mail))
        body = uid_fetch(self.c, str(uid), "(BODY.PEEK[])")[uid]["BODY[]"]
        self.assertEqual(len(body), len(mail))
        self.assertEqual(sha256(body), sha256(mail))
        tail = uid_fetch(self.c, str(uid), f"(BODY.PEEK[]<{len(mail) - 1000}.1000>)")[uid]
        self.assertEqual(tail[f"BODY[]<{len(mail) - 1000}>"], mail[-1000:])

    # --- POP3 -------------------------------------------------------------------------------

    def test_pop3_retr(self):
        mail = make_mail("pop3", TRICKY_BODY)
        uid = self.deliver_and_select(mail)
        imap_body = uid_fetch(self.c, str(uid), "(BODY.PEEK[])")[uid]["BODY[]"]
        self.c.logout()  # POP3 and IMAP may not hold the mailbox at the same time
        self.c = None
        pop = poplib.POP3("127.0.0.1", self.dc.pop3_port, timeout=60)
        try:
            pop.user(self.user)
            pop.pass_("pass")
            count, size = pop.stat()
            self.assertEqual(count, 1)
            self.assertEqual(size, len(imap_body))
            resp, lines, octets = pop.retr(1)
            self.assertTrue(resp.startswith(b"+OK"))
            got = b"\r\n".join(lines) + b"\r\n"
            self.assertEqual(got, imap_body)
            split_trace(got, mail)
            uidl = pop.uidl(1)
            self.assertTrue(uidl.startswith(b"+OK 1 "), uidl)
        finally:
            pop.quit()


def expand_set(s):
    """An IMAP sequence set such as b'3:4,7' -> {3, 4, 7}."""
    out = set()
    for part in s.decode().split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            out |= set(range(min(a, b), max(a, b) + 1))
        else:
            out.add(int(part))
    return out
