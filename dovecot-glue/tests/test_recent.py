"""\\Recent across two backends (issue 11, point 4).

The story: each rados backend kept the first recent UID in its own local index, so a new
mail was \\Recent once in a session on backend A and once more in a session on backend B.
RFC 3501 gives \\Recent to exactly one session; sdbox, whose index is shared storage, does.
The boundary now lives in RADOS: a SELECT (and each later sync of that session) takes the
recent mails there, EXAMINE and STATUS only show them. The same test passes for two sdbox
instances sharing their homes (shared_pair())."""

from harness import DovecotTestCase, make_mail, ok, parse_fetch, shared_pair, status, uid_search


def open_inbox(inst, user, readonly=False):
    """A new session on `inst` with INBOX selected (EXAMINEd if `readonly`); returns the
    session, the RECENT count the SELECT reported and the UIDs SEARCH RECENT finds."""
    c = inst.imap(user)
    ok(c.select("INBOX", readonly=readonly))
    count = int(c.untagged_responses.get("RECENT", [b"-1"])[-1])
    return c, count, uid_search(c, "RECENT")


def recent_flagged(c):
    """The UIDs whose FLAGS carry \\Recent in this session."""
    got = parse_fetch(ok(c.uid("FETCH", "1:*", "(FLAGS)")))
    return sorted(uid for uid, v in got.items() if "\\Recent" in v["FLAGS"])


def status_recent(inst, user):
    """STATUS INBOX (RECENT) from a new session on `inst` that selects nothing."""
    c = inst.imap(user)
    try:
        return status(c, "INBOX", "RECENT")["RECENT"]
    finally:
        c.logout()


class RecentTest(DovecotTestCase):
    @classmethod
    def setUpClass(cls):
        cls.a, cls.b = shared_pair()

    def look(self, inst, readonly):
        """(RECENT count, SEARCH RECENT) of a new session, logged out at once."""
        c, count, uids = open_inbox(inst, self.user, readonly)
        c.logout()
        return count, uids

    def test_recent_handed_out_once_across_backends(self):
        a, b, user = self.a, self.b, self.user
        a.deliver(user, make_mail("recent 1"))
        a.deliver(user, make_mail("recent 2"))
        # EXAMINE and STATUS show the recent mails through either backend, taking none.
        self.assertEqual(self.look(b, readonly=True), (2, [1, 2]), "EXAMINE on B")
        self.assertEqual(status_recent(b, user), 2, "STATUS on B")
        self.assertEqual(self.look(a, readonly=True), (2, [1, 2]), "EXAMINE on A")
        self.assertEqual(status_recent(a, user), 2, "STATUS on A")

        # The first SELECT (on A) takes them ...
        ca, count, uids = open_inbox(a, user)
        try:
            self.assertEqual((count, uids), (2, [1, 2]), "SELECT on A")
            self.assertEqual(recent_flagged(ca), [1, 2])
            # ... a later SELECT on B gets none, and nobody shows them any more.
            cb, count, uids = open_inbox(b, user)
            self.assertEqual((count, uids), (0, []), "SELECT on B after A's")
            self.assertEqual(recent_flagged(cb), [])
            cb.logout()
            for inst, name in ((a, "A"), (b, "B")):
                self.assertEqual(self.look(inst, readonly=True), (0, []), f"EXAMINE on {name}")
                self.assertEqual(status_recent(inst, user), 0, f"STATUS on {name}")

            # A new mail SELECTed first on B is recent on B, not on A (not in A's open
            # session either, whose NOOP sees it after B took it).
            a.deliver(user, make_mail("recent 3"))
            cb, count, uids = open_inbox(b, user)
            try:
                self.assertEqual((count, uids), (1, [3]), "SELECT on B of the new mail")
                self.assertEqual(recent_flagged(cb), [3])
                ok(ca.noop())
                self.assertEqual(uid_search(ca, "ALL"), [1, 2, 3])
                self.assertEqual(uid_search(ca, "RECENT"), [1, 2], "A's open session")
                self.assertEqual(self.look(a, readonly=False), (0, []), "SELECT on A after B's")

                # A mail that arrives while both sessions are open goes to the first to
                # sync: A's NOOP takes it, B's then does not get it.
                b.deliver(user, make_mail("recent 4"))
                ok(ca.noop())
                ok(cb.noop())
                self.assertEqual(uid_search(ca, "RECENT"), [1, 2, 4], "A's session took 4")
                self.assertEqual(uid_search(cb, "RECENT"), [3], "B's session did not")
                self.assertEqual(uid_search(cb, "ALL"), [1, 2, 3, 4])
            finally:
                cb.logout()
        finally:
            ca.logout()
        for inst, name in ((a, "A"), (b, "B")):
            self.assertEqual(self.look(inst, readonly=True), (0, []), f"EXAMINE on {name}, end")
            self.assertEqual(status_recent(inst, user), 0, f"STATUS on {name}, end")

    def test_recent_examine_takes_nothing(self):
        a, b, user = self.a, self.b, self.user
        b.deliver(user, make_mail("examined"))
        for _ in range(2):
            self.assertEqual(self.look(a, readonly=True), (1, [1]), "EXAMINE on A")
            self.assertEqual(self.look(b, readonly=True), (1, [1]), "EXAMINE on B")
        # The first SELECT still gets it, wherever it is.
        self.assertEqual(self.look(b, readonly=False), (1, [1]), "SELECT on B")
        self.assertEqual(self.look(a, readonly=False), (0, []), "SELECT on A")
