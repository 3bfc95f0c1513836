"""Two Dovecot instances serving the same users (for rados: separate local indexes, one
cluster and namespace prefix; for sdbox: the second instance uses the first one's home
directories), and the loss of the local index."""

import os
import shutil
import threading

from harness import (DRIVER, DovecotTestCase, append, flags_of, instance, make_mail, ok,
                     parse_fetch, select, shared_pair, status, uid_fetch, uid_search)


def snapshot(inst, user, mailbox="INBOX"):
    """What a client can see of a mailbox through `inst`, from a fresh session."""
    c = inst.imap(user)
    try:
        ok(c.enable("CONDSTORE"))
        _, uidvalidity = select(c, mailbox)
        select_hms = int(c.untagged_responses["HIGHESTMODSEQ"][-1])
        got = uid_fetch(c, "1:*", "(FLAGS MODSEQ)") if uid_search(c, "ALL") else {}
        st = status(c, mailbox, "UIDNEXT HIGHESTMODSEQ MESSAGES")
        return {
            "uidvalidity": uidvalidity,
            "uids": sorted(got),
            "flags": {uid: sorted(flags_of(v["FLAGS"])) for uid, v in got.items()},
            "modseqs": {uid: int(v["MODSEQ"][0]) for uid, v in got.items()},
            "highestmodseq": st["HIGHESTMODSEQ"],
            "select_highestmodseq": select_hms,
            "uidnext": st["UIDNEXT"],
            "messages": st["MESSAGES"],
        }
    finally:
        c.logout()


class TwoInstanceTest(DovecotTestCase):
    @classmethod
    def setUpClass(cls):
        cls.a, cls.b = shared_pair()

    def test_deliver_via_a_seen_via_b_after_noop(self):
        cb = self.b.imap(self.user)
        try:
            self.assertEqual(select(cb)[0], 0)
            mail = make_mail("across instances")
            self.a.deliver(self.user, mail)
            ok(cb.noop())
            self.assertEqual(cb.untagged_responses.get("EXISTS", [b"0"])[-1], b"1",
                             "B's NOOP must report the mail delivered through A")
            uid = uid_search(cb, "ALL")[0]
            body_b = uid_fetch(cb, str(uid), "(BODY.PEEK[])")[uid]["BODY[]"]
            self.assertTrue(body_b.endswith(mail))
        finally:
            cb.logout()
        ca = self.a.imap(self.user)
        try:
            select(ca)
            body_a = uid_fetch(ca, str(uid), "(BODY.PEEK[])")[uid]["BODY[]"]
            self.assertEqual(body_a, body_b)
        finally:
            ca.logout()

    def test_flags_via_b_seen_via_a(self):
        ca = self.a.imap(self.user)
        cb = self.b.imap(self.user)
        try:
            select(ca)
            uid = append(ca, "INBOX", make_mail("flag me"))[1]
            ok(ca.noop())
            select(cb)
            ok(cb.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Seen \\Flagged $Label1)"))
            ca.untagged_responses.pop("FETCH", None)
            ok(ca.noop())
            unsolicited = parse_fetch(ca.untagged_responses.pop("FETCH", []))
            self.assertEqual(len(unsolicited), 1, "A's NOOP reports the flag change")
            (update,) = unsolicited.values()
            self.assertEqual(flags_of(update["FLAGS"]), {"\\Seen", "\\Flagged", "$Label1"})
            got = uid_fetch(ca, str(uid), "(FLAGS)")[uid]
            self.assertEqual(flags_of(got["FLAGS"]), {"\\Seen", "\\Flagged", "$Label1"})
            # And back: a removal through A is seen by B.
            ok(ca.uid("STORE", str(uid), "-FLAGS.SILENT", "(\\Flagged)"))
            ok(cb.noop())
            got = uid_fetch(cb, str(uid), "(FLAGS)")[uid]
            self.assertEqual(flags_of(got["FLAGS"]), {"\\Seen", "$Label1"})
        finally:
            ca.logout()
            cb.logout()

    def test_retry_of_a_delivery_through_b_is_stored_once(self):
        """An MTA whose delivery through A got no answer (or a 451 although it landed)
        retries the same bytes through B: stored once (rados: the delivery key; LMTP's own
        Return-Path, Delivered-To and Received on top differ between the attempts). A mail
        that differs in one byte, or a plain IMAP APPEND of the same bytes, is stored."""
        mail = make_mail("deliver me once")
        self.a.deliver(self.user, mail)
        self.b.deliver(self.user, mail)
        self.a.deliver(self.user, mail)
        self.b.deliver(self.user, mail.replace(b"Hello.", b"Hello!"))
        c = self.b.imap(self.user)
        try:
            append(c, "INBOX", mail)
            select(c)
            got = uid_fetch(c, "1:*", "(BODY.PEEK[])")
        finally:
            c.logout()
        bodies = [v["BODY[]"] for _, v in sorted(got.items())]
        first = 1 if DRIVER == "rados" else 3
        self.assertEqual(len(bodies), first + 2, f"{DRIVER}: {len(bodies)} mails")
        self.assertTrue(all(b.endswith(mail) for b in bodies[:first]))
        self.assertTrue(bodies[first].endswith(mail.replace(b"Hello.", b"Hello!")))
        self.assertEqual(bodies[first + 1], mail)
        if DRIVER == "rados":
            # Stored as the first attempt delivered it, through A.
            self.assertIn(b"Delivered-To: ", bodies[0])

    def test_concurrent_appends_distinct_uids(self):
        per_thread = 25
        results = {}
        errors = []

        def worker(inst, tag):
            try:
                c = inst.imap(self.user)
                try:
                    got = []
                    for i in range(per_thread):
                        subject = f"{tag}-{i}"
                        got.append((subject, append(c, "INBOX", make_mail(subject))))
                    results[tag] = got
                finally:
                    c.logout()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(f"{tag}: {e!r}")

        # The mailbox exists before both threads start.
        self.a.imap(self.user).logout()
        threads = [threading.Thread(target=worker, args=(inst, tag))
                   for inst, tag in ((self.a, "a"), (self.b, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        self.assertEqual(errors, [])
        appended = results["a"] + results["b"]
        self.assertEqual(len(appended), 2 * per_thread)
        uidvalidities = {uv for _, (uv, _) in appended}
        self.assertEqual(len(uidvalidities), 1, uidvalidities)
        (uidvalidity,) = uidvalidities
        uids = [uid for _, (_, uid) in appended]
        self.assertEqual(len(set(uids)), len(uids), f"UID collision: {sorted(uids)}")
        expected = {uid: subject for subject, (_, uid) in appended}

        for inst in (self.a, self.b):
            c = inst.imap(self.user)
            try:
                self.assertEqual(select(c), (2 * per_thread, uidvalidity))
                self.assertEqual(uid_search(c, "ALL"), sorted(expected))
                got = uid_fetch(c, "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                subjects = {uid: v["BODY[HEADER.FIELDS (SUBJECT)]"].decode().strip()
                            for uid, v in got.items()}
                self.assertEqual(subjects, {u: f"Subject: {s}" for u, s in expected.items()},
                                 f"through {inst.name}: every APPENDUID names its own mail")
            finally:
                c.logout()

    def test_keyword_replace_race_no_lost_update(self):
        """Backend A replaces the keywords of 5 mails (STORE FLAGS (a<i>)) while backend B
        adds one (STORE +FLAGS (b<i>)), at the same moment, 100 rounds. Each STORE is one
        atomic RADOS commit, and A's REPLACE is computed against the keywords the mails
        have at its commit. So after each round every mail has exactly {a<i>} (B committed
        first) or {a<i>, b<i>} (A first), all 5 the same, nothing of an earlier round
        survives, both backends show the same, and the one that committed last reports in
        its own STORE response the mails' final MODSEQ (the MODSEQs are RADOS's, exact).
        (The old planner read the keywords, then wrote unguarded removes: an ADD landing in
        between survived a REPLACE committed after it.)"""
        ca = self.a.imap(self.user)
        cb = self.b.imap(self.user)
        try:
            for c in (ca, cb):
                ok(c.enable("CONDSTORE"))
            select(ca)
            uids = [append(ca, "INBOX", make_mail(f"race {i}"))[1] for i in range(5)]
            select(cb)
            rng = f"{uids[0]}:{uids[-1]}"
            outcomes = {"a-then-b": 0, "b-then-a": 0}
            for i in range(100):
                barrier = threading.Barrier(2)
                errors = []
                replies = {}

                def store(c, who, how, flags):
                    try:
                        barrier.wait(timeout=60)
                        # imaplib hands STORE's untagged FETCH responses back as data
                        got = parse_fetch(ok(c.uid("STORE", rng, how, flags)))
                        replies[who] = {int(v["UID"]): int(v["MODSEQ"][0]) for v in got.values()}
                    except Exception as e:  # noqa: BLE001 - reported below
                        errors.append(f"{who}: {e!r}")

                ta = threading.Thread(target=store, args=(ca, "a", "FLAGS", f"(a{i})"))
                tb = threading.Thread(target=store, args=(cb, "b", "+FLAGS", f"(b{i})"))
                for t in (ta, tb):
                    t.start()
                for t in (ta, tb):
                    t.join(timeout=120)
                self.assertEqual(errors, [], f"round {i}")
                seen, final = [], []
                for c in (ca, cb):
                    ok(c.noop())
                    got = uid_fetch(c, rng, "(FLAGS MODSEQ)")
                    seen.append({uid: flags_of(v["FLAGS"]) - {"\\Recent"} for uid, v in got.items()})
                    final.append({uid: int(v["MODSEQ"][0]) for uid, v in got.items()})
                self.assertEqual(seen[0], seen[1], f"round {i}: the backends disagree")
                self.assertEqual(final[0], final[1], f"round {i}: MODSEQs differ")
                states = set(frozenset(f) for f in seen[0].values())
                self.assertEqual(len(states), 1, f"round {i}: mails differ: {seen[0]}")
                (state,) = states
                self.assertIn(state, ({f"a{i}"}, {f"a{i}", f"b{i}"}), f"round {i}: lost update: {state}")
                last = "a" if state == {f"a{i}"} else "b"
                outcomes["b-then-a" if last == "a" else "a-then-b"] += 1
                self.assertEqual(replies.get(last), final[0],
                                 f"round {i}: {state} says {last} committed last, but its STORE "
                                 f"saw {replies.get(last)} and the mails end at {final[0]}: lost update")
            print(f"replace race outcomes over 100 rounds: {outcomes}")
        finally:
            ca.logout()
            cb.logout()

    def test_recreate_through_a_seen_through_b(self):
        """Regression (issue 11): a mailbox deleted and created again through backend A
        (and another one renamed onto its name) is the new mailbox through backend B at
        once: for a session on B that had it open before the change and stays open, and for
        B's next sessions. B used to answer "Mailbox was deleted under us" to SELECT and
        STATUS for its whole first session, and the open session never recovered."""
        ca = self.a.imap(self.user)
        cb = self.b.imap(self.user)
        try:
            ok(ca.create("Box"))
            append(ca, "Box", make_mail("old"))
            self.assertEqual(select(cb, "Box")[0], 1)
            ok(cb.select("INBOX"))
            for round_ in range(3):
                ok(ca.delete("Box"))
                ok(ca.create("Box"))
                append(ca, "Box", make_mail(f"new {round_}"))
                append(ca, "Box", make_mail(f"new {round_} b"))
                # The session on B that had Box open before.
                self.assertEqual(status(cb, "Box", "MESSAGES")["MESSAGES"], 2, f"round {round_}")
                self.assertEqual(select(cb, "Box")[0], 2, f"round {round_}")
                got = uid_fetch(cb, "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                subjects = sorted(v["BODY[HEADER.FIELDS (SUBJECT)]"].decode().strip() for v in got.values())
                self.assertEqual(subjects, [f"Subject: new {round_}", f"Subject: new {round_} b"])
                ok(cb.select("INBOX"))
                # A new session on B.
                c2 = self.b.imap(self.user)
                try:
                    self.assertEqual(select(c2, "Box")[0], 2, f"round {round_}, new session")
                finally:
                    c2.logout()
            # Another mailbox renamed onto the name.
            ok(ca.create("Other"))
            append(ca, "Other", make_mail("renamed"))
            ok(ca.delete("Box"))
            ok(ca.rename("Other", "Box"))
            self.assertEqual(status(cb, "Box", "MESSAGES")["MESSAGES"], 1)
            self.assertEqual(select(cb, "Box")[0], 1)
        finally:
            ca.logout()
            cb.logout()

    def make_history(self):
        """Appends, flag changes and an expunge, spread over both instances."""
        ca = self.a.imap(self.user)
        cb = self.b.imap(self.user)
        try:
            select(ca)
            ua = [append(ca, "INBOX", make_mail(f"a{i}"))[1] for i in range(3)]
            ok(ca.noop())
            select(cb)
            ub = [append(cb, "INBOX", make_mail(f"b{i}"), "(\\Draft)")[1] for i in range(2)]
            ok(ca.noop())
            ok(ca.uid("STORE", f"{ua[0]},{ub[0]}", "+FLAGS.SILENT", "(\\Seen $Label1)"))
            ok(cb.noop())
            ok(cb.uid("STORE", f"{ua[1]}", "+FLAGS.SILENT", "(\\Flagged \\Deleted)"))
            ok(cb.uid("EXPUNGE", str(ua[1])))
            ok(cb.uid("STORE", f"{ub[1]}", "FLAGS.SILENT", "($Label2)"))
            ok(ca.noop())
        finally:
            ca.logout()
            cb.logout()

    def test_state_identical_through_both(self):
        self.make_history()
        sa = snapshot(self.a, self.user)
        sb = snapshot(self.b, self.user)
        self.assertEqual(sa["messages"], 4)
        for key in ("uidvalidity", "uids", "flags", "highestmodseq", "select_highestmodseq",
                    "uidnext"):
            self.assertEqual(sa[key], sb[key], f"{key} differs between A and B")
        self.assertEqual(sa["highestmodseq"], sa["select_highestmodseq"])

    def test_message_modseqs_identical(self):
        self.make_history()
        sa = snapshot(self.a, self.user)
        sb = snapshot(self.b, self.user)
        self.assertEqual(sa["modseqs"], sb["modseqs"], "per-message MODSEQ differs")
        self.assertEqual(max(sa["modseqs"].values()), sa["highestmodseq"])


    def test_idle_on_b_hears_of_delivery_via_a(self):
        """IDLE as Dovecot provides it: the client idling on B is told of a mail
        delivered through A (B polls RADOS every mailbox_idle_check_interval, 1 s in
        these tests)."""
        import time

        cb = self.b.imap(self.user)
        try:
            select(cb)
            cb.send(b"i1 IDLE\r\n")
            self.assertTrue(cb.readline().startswith(b"+"), "IDLE not accepted")
            self.a.deliver(self.user, make_mail("idle"))
            cb.sock.settimeout(20)
            deadline = time.monotonic() + 20
            line = b""
            while time.monotonic() < deadline and not line.endswith(b"EXISTS\r\n"):
                line = cb.readline()
            self.assertEqual(line, b"* 1 EXISTS\r\n")
            cb.send(b"DONE\r\n")
            while not (line := cb.readline()).startswith(b"i1 "):
                pass
            self.assertTrue(line.startswith(b"i1 OK"), line)
        finally:
            cb.logout()

    def test_qresync_through_a_then_b_is_minimal(self):
        """A QRESYNC client synced through A, changes made through A, the client comes
        back through B (whose index saw the mailbox before the changes): exactly the
        changed mail is fetched and exactly the expunged ones vanish."""
        import re

        from test_imap import expand_set

        ca = self.a.imap(self.user)
        try:
            ok(ca.enable("QRESYNC"))
            _, uidvalidity = select(ca)
            uids = [append(ca, "INBOX", make_mail(f"q{i}"))[1] for i in range(5)]
            ca.noop()
            modseq = status(ca, "INBOX", "HIGHESTMODSEQ")["HIGHESTMODSEQ"]
        finally:
            ca.logout()
        snapshot(self.b, self.user)  # B's index now knows the five mails

        ca = self.a.imap(self.user)
        try:
            select(ca)
            ok(ca.uid("STORE", str(uids[0]), "+FLAGS.SILENT", "(\\Flagged $Done)"))
            ok(ca.uid("STORE", f"{uids[3]}:{uids[4]}", "+FLAGS.SILENT", "(\\Deleted)"))
            ok(ca.expunge())
        finally:
            ca.logout()

        cb = self.b.imap(self.user)
        try:
            ok(cb.enable("QRESYNC"))
            typ, data = cb._simple_command("SELECT", "INBOX", f"(QRESYNC ({uidvalidity} {modseq}))")
            self.assertEqual(typ, "OK", data)
            cb.state = "SELECTED"
            vanished = cb.untagged_responses.pop("VANISHED", [])
            self.assertEqual(len(vanished), 1, vanished)
            m = re.fullmatch(rb"\(EARLIER\) (\S+)", vanished[0])
            self.assertIsNotNone(m, vanished)
            self.assertEqual(expand_set(m.group(1)), {uids[3], uids[4]})
            fetched = parse_fetch(cb.untagged_responses.pop("FETCH", []))
            self.assertEqual(sorted(fetched), [uids[0]], "only the changed mail is sent")
            self.assertEqual(flags_of(fetched[uids[0]]["FLAGS"]), {"\\Flagged", "$Done"})
        finally:
            cb.logout()
        self.assertEqual(snapshot(self.a, self.user), snapshot(self.b, self.user))


class IndexLossTest(DovecotTestCase):
    def test_index_deletion_keeps_uids_flags_keywords(self):
        if DRIVER == "sdbox":
            self.skipTest("sdbox loses flags and keywords with its index (FACTS.md); "
                          "only a driver whose truth is remote can pass")
        dc = instance("c")
        c = dc.imap(self.user)
        try:
            ok(c.create("Archive"))
            select(c)
            uids = [append(c, "INBOX", make_mail(f"keep {i}"))[1] for i in range(4)]
            ok(c.uid("STORE", str(uids[0]), "+FLAGS.SILENT", "(\\Seen \\Flagged $Label1)"))
            ok(c.uid("STORE", str(uids[2]), "+FLAGS.SILENT", "(\\Answered $Work $Label1)"))
            ok(c.uid("STORE", str(uids[3]), "+FLAGS.SILENT", "(\\Deleted)"))
            ok(c.uid("EXPUNGE", str(uids[3])))
            append(c, "Archive", make_mail("archived"), "(\\Seen $Old)")
        finally:
            c.logout()
        before = {box: snapshot(dc, self.user, box) for box in ("INBOX", "Archive")}
        self.assertEqual(before["INBOX"]["uids"], uids[:3])

        dc.stop()
        index = os.path.join(dc.dir, "index")
        self.assertTrue(os.path.isdir(index), f"{index} missing: is INDEX= in use?")
        shutil.rmtree(index)
        dc.start()

        for box in ("INBOX", "Archive"):
            after = snapshot(dc, self.user, box)
            for key in ("uidvalidity", "uids", "flags", "uidnext"):
                self.assertEqual(after[key], before[box][key],
                                 f"{box}: {key} changed by losing the index")
            self.assertGreaterEqual(after["highestmodseq"], before[box]["highestmodseq"],
                                    f"{box}: HIGHESTMODSEQ went backwards")
        c = dc.imap(self.user)
        try:
            select(c)
            self.assertEqual(uid_search(c, "KEYWORD", "$Label1"), [uids[0], uids[2]])
            self.assertEqual(uid_search(c, "KEYWORD", "$Work"), [uids[2]])
        finally:
            c.logout()
