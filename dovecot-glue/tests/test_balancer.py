"""Two backends behind a round-robin balancer (issue 11): whole IMAP sessions go through
backend A and backend B in turn, as a director-less deployment sends them, and after
every step a fresh session through the OTHER backend (and one through the same) must show
the same state, and the state a Python model of the mailboxes says: LIST, LSUB, STATUS
(MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ), UIDs, flags, MODSEQs, bodies.
Then IDLE and NOTIFY across the backends, and a seeded random mix of a few hundred
commands checked against the model. The balancer is balancer.py (harness.balancer(),
port P+110); a and b share the users' mail (harness.shared_pair())."""

import imaplib
import os
import random
import re
import time

from harness import (TIMEOUT, DovecotTestCase, PASSWORD, balancer, make_mail, ok, parse,
                     shared_pair, status, uid_fetch, uid_search)
from rawimap import RawImap
from sessionmodel import (Model, Ops, Session, check_model, fetch_flags, name_of, search,
                          view)

NOTIFY_SET = ("NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange)) "
              "(personal (MessageNew MessageExpunge MailboxName SubscriptionChange))")
# IDLE and NOTIFY must report a change made through the other backend within this.
DEADLINE = 10
OTHER = {"a": "b", "b": "a"}


class BalancerTest(Ops, DovecotTestCase):
    @classmethod
    def setUpClass(cls):
        cls.a, cls.b = shared_pair()
        cls.bal = balancer()

    def setUp(self):
        super().setUp()
        self.model = Model()
        self.steps_via = []

    # --- sessions and checks --------------------------------------------------------

    def open(self, via=None):
        """A session through the balancer: the next backend in turn, or `via`."""
        if via is not None:
            self.bal.pin(via)
        c = imaplib.IMAP4("127.0.0.1", self.bal.port, timeout=TIMEOUT)
        got = self.bal.routed[-1]
        if via is not None:
            self.assertEqual(got, via, "the balancer did not honour the pin")
        c.login(self.user, PASSWORD)
        ok(c.enable("CONDSTORE"))
        return Session(c, got)

    def raw(self, via):
        self.bal.pin(via)
        r = RawImap("127.0.0.1", self.bal.port, self.user)
        self.assertEqual(self.bal.routed[-1], via)
        r.command("ENABLE CONDSTORE")
        return r

    def look(self, via):
        s = self.open(via)
        try:
            return view(s.c)
        finally:
            s.close()

    def check(self, via):
        """After a step through `via`: the other backend, then `via` itself, show the
        model's state, and identical server-assigned values (UIDVALIDITY, MODSEQs,
        HIGHESTMODSEQ, LIST attributes)."""
        other = self.look(OTHER[via])
        check_model(self, other, self.model, f"through {OTHER[via]} after a step through {via}")
        same = self.look(via)
        self.assertEqual(other, same, f"backends {OTHER[via]} and {via} disagree")
        return other

    def step(self, fn):
        """Runs fn(session) in a whole session through the next backend in turn, then
        checks through both."""
        s = self.open()
        self.steps_via.append(s.via)
        try:
            result = fn(s)
        finally:
            s.close()
        self.check(s.via)
        return result

    def tearDown(self):
        super().tearDown()
        # The steps really alternated A, B, A, ... (whatever the other connections did).
        for prev, cur in zip(self.steps_via, self.steps_via[1:]):
            self.assertEqual(cur, OTHER[prev], f"steps went through {self.steps_via}")

    # --- the scripted sessions ------------------------------------------------------

    def test_create_delete_recreate_rename_over(self):
        body = make_mail("old Box")
        self.step(lambda s: self.create(s, "Box"))
        self.step(lambda s: self.append(s, "Box", body, ["\\Seen"]))
        # A session on the other backend that has seen Box stays open across it all.
        stay = self.open(OTHER[self.steps_via[-1]])
        try:
            stay.select("Box")
            stay.select("INBOX")
            self.step(lambda s: self.delete(s, "Box"))
            self.step(lambda s: self.create(s, "Box"))
            self.step(lambda s: self.append(s, "Box", make_mail("new Box")))
            self.assertEqual(status(stay.c, "Box", "MESSAGES")["MESSAGES"], 1)
            self.step(lambda s: (self.create(s, "Other"),
                                 self.append(s, "Other", make_mail("other"), ["$Label1"])))
            self.step(lambda s: self.delete(s, "Box"))
            self.step(lambda s: self.rename(s, "Other", "Box"))
            stay.select("Box")
            got = uid_fetch(stay.c, "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            self.assertEqual([v["BODY[HEADER.FIELDS (SUBJECT)]"].strip() for v in got.values()],
                             [b"Subject: other"], "the open session sees the renamed mailbox")
            stay.select("INBOX")
            self.step(lambda s: self.rename(s, "Box", "Third"))
            self.step(lambda s: self.create(s, "Box"))
            self.assertEqual(status(stay.c, "Box", "MESSAGES UIDNEXT"),
                             {"MESSAGES": 0, "UIDNEXT": 1})
        finally:
            stay.close()

    def test_subscribe_unsubscribe_lsub(self):
        self.step(lambda s: (self.create(s, "Lists"), self.create(s, "Sent")))
        self.step(lambda s: self.subscribe(s, "Lists"))
        self.step(lambda s: self.subscribe(s, "Sent"))
        self.step(lambda s: self.unsubscribe(s, "Lists"))
        self.step(lambda s: self.subscribe(s, "INBOX"))
        # A subscription outlives its mailbox (RFC 3501 6.3.6), and comes back with it.
        self.step(lambda s: self.delete(s, "Sent"))
        self.step(lambda s: self.create(s, "Sent"))
        self.step(lambda s: self.unsubscribe(s, "Sent"))

    def test_rename_leaves_the_subscription(self):
        """RENAME neither unsubscribes the old name nor subscribes the new one: RFC 3501
        6.3.6, "The server MUST NOT unilaterally remove an existing mailbox name from the
        subscription list", and what Dovecot's own storages (sdbox) do."""
        self.step(lambda s: (self.create(s, "Old"), self.subscribe(s, "Old")))
        self.step(lambda s: self.rename(s, "Old", "New"))
        self.step(lambda s: self.create(s, "Old"))
        self.step(lambda s: self.rename(s, "Old", "Third"))

    def listing(self, via, pattern="*"):
        s = self.open(via)
        try:
            out = {}
            for line in ok(s.c.list('""', pattern)):
                attrs, _, name = parse(line)
                out[name_of(name)] = {a.lower() for a in attrs} - {"\\marked", "\\unmarked"}
            return out
        finally:
            s.close()

    def test_hierarchy_parent_listed_on_both(self):
        """CREATE Work/Sub makes Work a \\Noselect parent with \\HasChildren (RFC 3501
        6.3.3: the server SHOULD create the superior names), listed by LIST "*" as by
        LIST "%" through both backends; RENAME of the parent moves the child."""
        s = self.open("a")
        try:
            ok(s.c.create("Work/Sub"))
        finally:
            s.close()
        for via in ("a", "b"):
            for pattern in ("*", "%"):
                got = self.listing(via, pattern)
                self.assertIn("Work", got, f"LIST \"\" \"{pattern}\" through {via}: {got}")
                self.assertTrue({"\\noselect", "\\haschildren"} <= got["Work"],
                                f"LIST \"{pattern}\" through {via}: Work is {got['Work']}")
            self.assertEqual(self.listing(via)["Work/Sub"], {"\\hasnochildren"})
        s = self.open("b")
        try:
            ok(s.c.rename("Work", "Job"))
        finally:
            s.close()
        for via in ("a", "b"):
            got = self.listing(via)
            self.assertNotIn("Work/Sub", got, f"through {via}")
            self.assertEqual(got.get("Job/Sub"), {"\\hasnochildren"}, f"through {via}: {got}")
            self.assertTrue({"\\noselect", "\\haschildren"} <= got.get("Job", set()),
                            f"LIST \"*\" through {via}: {got}")

    def test_append_copy_move_expunge(self):
        self.step(lambda s: self.create(s, "Archive"))
        uids = self.step(lambda s: [self.append(s, "INBOX", make_mail(f"m{i}"), f)
                                    for i, f in enumerate([[], ["\\Seen"], ["\\Flagged", "$Work"],
                                                           ["\\Answered"]])])
        copied = self.step(lambda s: self.copy(s, "INBOX", uids[:2], "Archive"))
        self.step(lambda s: self.move(s, "INBOX", uids[2:3], "Archive"))
        self.step(lambda s: self.copy(s, "Archive", [copied[uids[0]]], "INBOX"))
        self.step(lambda s: self.store(s, "INBOX", uids[:2], "+FLAGS", ["\\Deleted"]))
        self.step(lambda s: self.expunge(s, "INBOX"))
        self.step(lambda s: self.store(s, "Archive", sorted(copied.values()), "+FLAGS",
                                       ["\\Deleted"]))
        # UID EXPUNGE removes only the named mails of those marked \Deleted.
        self.step(lambda s: self.uid_expunge(s, "Archive", [copied[uids[1]]]))
        self.step(lambda s: self.move(s, "Archive", [copied[uids[0]]], "INBOX"))
        self.step(lambda s: self.append(s, "Archive", make_mail("last")))

    def test_store_flags_keywords_condstore(self):
        uids = self.step(lambda s: [self.append(s, "INBOX", make_mail(f"s{i}")) for i in range(4)])
        self.step(lambda s: self.store(s, "INBOX", uids, "+FLAGS", ["\\Seen", "$Label1"]))
        self.step(lambda s: self.store(s, "INBOX", uids[1:3], "-FLAGS", ["\\Seen"]))
        self.step(lambda s: self.store(s, "INBOX", uids[2:], "FLAGS", ["\\Draft", "$Work", "kw3"]))
        self.step(lambda s: self.store(s, "INBOX", uids[:1], "+FLAGS.SILENT", ["\\Flagged"]))
        # CONDSTORE across the backends: a MODSEQ read through one backend, a change
        # through the other, then UNCHANGEDSINCE with the old MODSEQ must be refused.
        before = self.step(lambda s: self.modseqs(s, "INBOX", uids))
        self.step(lambda s: self.store(s, "INBOX", uids[:1], "+FLAGS", ["$Changed"]))
        modified = self.step(lambda s: self.store(s, "INBOX", uids[:2], "+FLAGS", ["$Late"],
                                                  unchangedsince=before[uids[1]]))
        self.assertEqual(modified, {uids[0]}, "UNCHANGEDSINCE against a change made elsewhere")
        now = self.step(lambda s: self.modseqs(s, "INBOX", uids))
        self.assertGreater(now[uids[0]], before[uids[0]])
        self.assertGreater(now[uids[1]], before[uids[1]])
        self.assertEqual({u: now[u] for u in uids[2:]}, {u: before[u] for u in uids[2:]})
        modified = self.step(lambda s: self.store(s, "INBOX", uids, "-FLAGS", ["$Label1"],
                                                  unchangedsince=max(now.values())))
        self.assertEqual(modified, set())
        after = self.look("a")["boxes"]["INBOX"]["msgs"]
        changed = [u for u in uids if after[u][1] > max(now.values())]
        self.assertEqual(changed, uids[:2], "only the mails that had $Label1 changed")
        for via in ("a", "b"):
            s = self.open(via)
            try:
                s.select("INBOX")
                # CHANGEDSINCE and SEARCH MODSEQ name exactly the mails changed since.
                got = uid_fetch(s.c, "1:*", f"(FLAGS) (CHANGEDSINCE {max(now.values())})")
                self.assertEqual(sorted(got), changed, f"CHANGEDSINCE through {via}")
                self.assertEqual(search(s.c, "MODSEQ", str(now[uids[2]])),
                                 [u for u in uids if after[u][1] >= now[uids[2]]])
                self.assertEqual(fetch_flags(s.c, uids),
                                 {u: set(self.model.boxes["INBOX"].msgs[u][0]) for u in uids})
            finally:
                s.close()

    # --- IDLE -------------------------------------------------------------------------

    def test_idle_hears_the_other_backend(self):
        """IDLE through A learns of APPEND, STORE and EXPUNGE made through B."""
        for idler in ("a", "b"):
            with self.subTest(idler=idler):
                self.idle_round(idler)

    def idle_round(self, idler):
        ok_ = self.open(OTHER[idler])
        r = self.raw(idler)
        try:
            ok_.select("INBOX")
            n = len(uid_search(ok_.c, "ALL"))
            r.command("SELECT INBOX")
            tag = r.idle()
            t0 = time.monotonic()
            uid = self.append(ok_, "INBOX", make_mail("idle"))
            m = r.wait_for(rb"\* (\d+) EXISTS$", DEADLINE)
            self.assertIsNotNone(m, f"IDLE through {idler}: no EXISTS within {DEADLINE} s")
            self.assertEqual(int(m.group(1)), n + 1)
            t_exists = time.monotonic() - t0
            self.store(ok_, "INBOX", [uid], "+FLAGS", ["\\Flagged", "$Idle"])
            seen = []
            pat = rf"\* {n + 1} FETCH \(.*FLAGS \(([^)]*)\)".encode()
            while (m := r.wait_for(pat, DEADLINE, seen)) is not None:
                if {"\\Flagged", "$Idle"} <= set(m.group(1).decode().split()):
                    break
            self.assertIsNotNone(m, f"IDLE through {idler}: no FETCH FLAGS: {seen}")
            self.store(ok_, "INBOX", [uid], "+FLAGS", ["\\Deleted"])
            self.expunge(ok_, "INBOX")
            m = r.wait_for(rf"\* {n + 1} EXPUNGE$".encode(), DEADLINE)
            self.assertIsNotNone(m, f"IDLE through {idler}: no EXPUNGE within {DEADLINE} s")
            r.done(tag)
            print(f"IDLE through {idler}: EXISTS after {t_exists * 1000:.0f} ms")
        finally:
            r.close()
            ok_.close()
        self.check(idler)

    # --- NOTIFY (RFC 5465) ------------------------------------------------------------

    def notify_session(self, via):
        r = self.raw(via)
        r.command("SELECT INBOX")
        r.command(NOTIFY_SET)
        return r

    def test_notify_selected_mailbox(self):
        """NOTIFY through A, selected INBOX, idling: B's APPEND, STORE and EXPUNGE arrive
        as EXISTS, FETCH FLAGS and EXPUNGE, and the new mail's UID and FLAGS come in a
        FETCH (MessageNew (UID FLAGS)) by the end of IDLE. (Inside IDLE because Dovecot
        2.3 itself, on sdbox, outside IDLE leaves the first change to the selected
        mailbox unreported until the client's next command.)"""
        s = self.open("b")
        self.append(s, "INBOX", make_mail("before"))
        r = self.notify_session("a")
        try:
            tag = r.idle()
            uid = self.append(s, "INBOX", make_mail("notify"), ["$Hello"])
            seen = []
            self.assertIsNotNone(r.wait_for(rb"\* 2 EXISTS$", DEADLINE, seen), seen)
            self.store(s, "INBOX", [uid], "+FLAGS", ["\\Seen", "$Notified"])
            while (m := r.wait_for(rb"\* 2 FETCH \(.*FLAGS \(([^)]*)\)", DEADLINE, seen)):
                if {"\\Seen", "$Notified"} <= set(m.group(1).decode().split()):
                    break
            self.assertIsNotNone(m, f"no FETCH FLAGS after STORE through b: {seen}")
            self.store(s, "INBOX", [uid], "+FLAGS", ["\\Deleted"])
            self.uid_expunge(s, "INBOX", [uid])
            self.assertIsNotNone(r.wait_for(rb"\* 2 EXPUNGE$", DEADLINE, seen), seen)
            seen += r.done(tag)
            new = []
            for resp in seen:
                m = re.match(rb"\* 2 FETCH \((.*)\)$", resp)
                if m:
                    atts = parse(m.group(1))
                    got = dict(zip(atts[::2], atts[1::2]))
                    if "UID" in got and "FLAGS" in got:
                        new.append((int(got["UID"]), "$Hello" in got["FLAGS"]))
            self.assertIn((uid, True), new, f"MessageNew (UID FLAGS) for UID {uid}: {seen}")
        finally:
            r.close()
            s.close()
        self.check("b")

    def wait_status(self, r, box, want, what):
        """Reads until `* STATUS box (...)` with at least the items of `want`."""
        seen = []
        while (m := r.wait_for(rb"\* STATUS (.*)$", DEADLINE, seen)) is not None:
            name, atts = parse(m.group(1))
            got = {atts[i].upper(): int(atts[i + 1]) for i in range(0, len(atts), 2)}
            if name_of(name) == box and all(got.get(k) == v for k, v in want.items()):
                return
        self.fail(f"{what}: no STATUS {box} {want} within {DEADLINE} s: {seen}")

    def wait_list(self, r, box, what, has=(), lacks=(), oldname=None):
        """Reads until `* LIST (attrs) delim box [extended items]` that fits."""
        seen = []
        while (m := r.wait_for(rb"\* LIST (.*)$", DEADLINE, seen)) is not None:
            attrs, _, name, *ext = parse(m.group(1))
            attrs = {a.lower() for a in attrs}
            if name_of(name) != box or not {a.lower() for a in has} <= attrs:
                continue
            if {a.lower() for a in lacks} & attrs:
                continue
            if oldname is not None:
                items = {name_of(k).upper(): v for k, v in zip(ext[0][::2], ext[0][1::2])} \
                    if ext else {}
                if [name_of(n) for n in items.get("OLDNAME", [])] != [oldname]:
                    continue
            return
        self.fail(f"{what}: no LIST for {box} has={has} lacks={lacks} oldname={oldname} "
                  f"within {DEADLINE} s: {seen}")

    def test_notify_other_mailboxes_and_names(self):
        """NOTIFY through A: B's changes to other mailboxes arrive as STATUS, B's CREATE,
        RENAME, DELETE, SUBSCRIBE and UNSUBSCRIBE as LIST."""
        s = self.open("b")
        self.create(s, "Other")
        r = self.notify_session("a")
        try:
            uid = self.append(s, "Other", make_mail("elsewhere"))
            self.wait_status(r, "Other", {"MESSAGES": 1, "UIDNEXT": uid + 1}, "APPEND to Other")
            self.store(s, "Other", [uid], "+FLAGS", ["\\Deleted"])
            self.expunge(s, "Other")
            self.wait_status(r, "Other", {"MESSAGES": 0}, "EXPUNGE in Other")
            self.create(s, "New1")
            self.wait_list(r, "New1", "CREATE", lacks=["\\NonExistent"])
            self.rename(s, "New1", "New2")
            self.wait_list(r, "New2", "RENAME", lacks=["\\NonExistent"], oldname="New1")
            self.subscribe(s, "New2")
            self.wait_list(r, "New2", "SUBSCRIBE", has=["\\Subscribed"])
            self.unsubscribe(s, "New2")
            self.wait_list(r, "New2", "UNSUBSCRIBE", lacks=["\\Subscribed", "\\NonExistent"])
            self.delete(s, "New2")
            self.wait_list(r, "New2", "DELETE", has=["\\NonExistent"])
        finally:
            r.close()
            s.close()
        self.check("b")

    # --- the random mix ---------------------------------------------------------------

    def test_random_session_mix(self):
        """A few hundred commands, drawn from a seeded generator, in sessions alternating
        A and B through the balancer; each session ends with a full check through the
        other backend, and a session kept open on the other backend, with INBOX selected,
        checks STATUS and INBOX's UIDs and flags as it goes. DOVECOT_TEST_SEED picks another seed (default 11)."""
        seed = int(os.environ.get("DOVECOT_TEST_SEED", "11"))
        rng = random.Random(seed)
        names = ["R1", "R2", "R3", "R4"]
        flags = ["\\Seen", "\\Flagged", "\\Answered", "\\Draft", "\\Deleted", "$Label1",
                 "$Label2", "kw3"]
        counts = {}
        trace = []
        t0 = time.monotonic()
        try:
            for n in range(10):
                s = self.open()
                self.steps_via.append(s.via)
                watcher = self.open(OTHER[s.via])
                watcher.select("INBOX")
                try:
                    for _ in range(30):
                        op, args = self.random_op(rng, s, names, flags)
                        trace.append(f"session {n} through {s.via}: {op} {args}")
                        counts[op] = counts.get(op, 0) + 1
                        if rng.random() < 0.2:
                            box = rng.choice(sorted(self.model.boxes))
                            b = self.model.boxes[box]
                            # A NOOP first: STATUS of the selected mailbox tells what
                            # the session knows (RFC 3501 6.3.10).
                            ok(watcher.c.noop())
                            st = status(watcher.c, box, "MESSAGES UIDNEXT UNSEEN")
                            trace.append(f"  watcher STATUS {box}: {st}")
                            want = {"MESSAGES": len(b.msgs), "UIDNEXT": b.uidnext,
                                    "UNSEEN": sum(1 for f, _ in b.msgs.values()
                                                  if "\\Seen" not in f)}
                            # The watcher's selected INBOX follows.
                            inbox = self.model.boxes["INBOX"].msgs
                            got = fetch_flags(watcher.c, "1:*") if inbox else {}
                            self.assertEqual(got, {u: f for u, (f, _) in inbox.items()},
                                             f"INBOX selected through {watcher.via}")
                            if st != want:
                                fresh = self.open(watcher.via)
                                st2 = status(fresh.c, box, "MESSAGES UIDNEXT UNSEEN")
                                fresh.close()
                                self.fail(f"STATUS {box} through the open session on "
                                          f"{watcher.via}: {st}, through a new session there: "
                                          f"{st2}, the model: {want}")
                finally:
                    watcher.close()
                    s.close()
                self.check(s.via)
        except AssertionError:
            print(f"random mix (seed {seed}), the last commands:\n" + "\n".join(trace[-60:]))
            raise
        print(f"random mix (seed {seed}): {sum(counts.values())} commands in "
              f"{time.monotonic() - t0:.1f} s: {dict(sorted(counts.items()))}")

    def random_op(self, rng, s, names, flags):
        """Runs one random command in session `s` (and the model); returns its name and
        arguments."""
        m = self.model
        boxes = sorted(m.boxes)
        full = [b for b in boxes if m.boxes[b].msgs]
        ops = (["append"] * 6 + ["store"] * 6 + ["status"] * 2 + ["create", "delete"] * 2
               + ["rename"] * 3 + ["subscribe", "unsubscribe"])
        if full:
            ops += ["copy"] * 2 + ["move"] * 2 + ["expunge", "uid_expunge", "condstore"]
        op = rng.choice(ops)
        free = [x for x in names if x not in m.boxes]
        mine = [x for x in boxes if x != "INBOX"]
        pick = lambda box: sorted(rng.sample(sorted(m.boxes[box].msgs),  # noqa: E731
                                             rng.randint(1, min(3, len(m.boxes[box].msgs)))))
        if op == "append":
            args = (rng.choice(boxes),
                    make_mail(f"r{rng.random()}", body=f"{rng.random()}\n" * 3),
                    rng.sample(flags, rng.randint(0, 2)))
            args = (args[0], self.append(s, *args), args[2])
        elif op == "store" and full:
            box = rng.choice(full)
            args = (box, pick(box), rng.choice(["+FLAGS", "-FLAGS", "FLAGS"]),
                    rng.sample(flags, rng.randint(1, 3)))
            self.store(s, *args)
        elif op == "condstore":
            box = rng.choice(full)
            uids = pick(box)
            mods = self.modseqs(s, box, uids)
            stale = rng.random() < 0.5
            since = min(mods.values()) - 1 if stale else max(mods.values())
            args = (box, uids, "+FLAGS", [rng.choice(flags)], since)
            modified = self.store(s, *args)
            self.assertEqual(modified, set(uids) if stale else set(), f"UNCHANGEDSINCE {args}")
        elif op in ("copy", "move"):
            src = rng.choice(full)
            dsts = [b for b in boxes if b != src]
            if not dsts:
                op, dsts = "copy", [src]
            args = (src, pick(src), rng.choice(dsts))
            args += (getattr(self, op)(s, *args),)
        elif op == "expunge":
            args = (rng.choice(full),)
            self.expunge(s, *args)
        elif op == "uid_expunge":
            box = rng.choice(full)
            args = (box, pick(box))
            self.uid_expunge(s, *args)
        elif op == "create" and free:
            args = (rng.choice(free),)
            self.create(s, *args)
        elif op == "delete" and mine:
            args = (rng.choice(mine),)
            self.delete(s, *args)
        elif op == "rename" and [x for x in mine if x not in m.subs] and free:
            # Not a subscribed one: test_rename_leaves_the_subscription has that case.
            args = (rng.choice([x for x in mine if x not in m.subs]), rng.choice(free))
            self.rename(s, *args)
        elif op == "subscribe":
            args = (rng.choice(boxes),)
            self.subscribe(s, *args)
        elif op == "unsubscribe" and m.subs:
            args = (rng.choice(sorted(m.subs)),)
            self.unsubscribe(s, *args)
        else:
            op = "status"
            args = (rng.choice(boxes),)
            st = status(s.c, args[0], "MESSAGES UIDNEXT")
            b = m.boxes[args[0]]
            self.assertEqual(st, {"MESSAGES": len(b.msgs), "UIDNEXT": b.uidnext},
                             f"STATUS {args[0]} through {s.via}")
        return op, args
