"""Bounds on objects that grow with a user's data (docs/FORMAT.md, "Bounded objects"),
through Dovecot: a user has at most rados_max_mailboxes mailboxes (the per-user
`mailboxes` object holds 3 omap keys per mailbox; without a limit a client creating
mailboxes in a loop grew it past Ceph's large-omap warning). One more CREATE is refused
with NO [LIMIT] and creates nothing; deleting one makes room."""

import unittest

import harness
from harness import DovecotTestCase, ok

MAX_MAILBOXES = 5


def bounds_instance():
    return harness.instance_with_conf("bounds", f"plugin {{\n  rados_max_mailboxes = {MAX_MAILBOXES}\n}}\n")


def mailbox_names(c):
    typ, data = c.list()
    ok((typ, data))
    return sorted(line.decode().rsplit(" ", 1)[-1].strip('"') for line in data)


@unittest.skipIf(harness.DRIVER != "rados", "rados_max_mailboxes is the rados plugin's")
class MailboxLimit(DovecotTestCase):
    def test_create_past_rados_max_mailboxes_is_refused(self):
        inst = bounds_instance()
        c = inst.imap(self.user)
        try:
            ok(c.select("INBOX"))
            for i in range(1, MAX_MAILBOXES):
                ok(c.create(f"box{i}"))
            typ, data = c.create("one-more")
            self.assertEqual(typ, "NO", data)
            self.assertIn(b"[LIMIT]", data[0])
            names = mailbox_names(c)
            self.assertEqual(names, ["INBOX"] + [f"box{i}" for i in range(1, MAX_MAILBOXES)])
            # Mail still arrives, and a delete makes room for one.
            inst.deliver(self.user, harness.make_mail("still delivered"))
            ok(c.delete("box1"))
            ok(c.create("one-more"))
            typ, data = c.create("two-more")
            self.assertEqual(typ, "NO", data)
        finally:
            c.logout()


if __name__ == "__main__":
    unittest.main()
