"""Bounds on objects that grow with a user's data (docs/FORMAT.md, "Bounded objects"),
through Dovecot: a user has at most rados_max_mailboxes mailboxes (the per-user
`mailboxes` object holds 3 omap keys per mailbox; without a limit a client creating
mailboxes in a loop grew it past Ceph's large-omap warning). One more CREATE is refused
with NO [LIMIT] and creates nothing; deleting one makes room. The same object holds the
subscriptions, which IMAP allows to names that do not exist: at most as many. A body
carries at most rados_max_body_references references: a COPY past it stores a body of its
own. A user's private dict (IMAP METADATA) holds at most rados_max_dict_keys keys."""

import unittest

import harness
from harness import DovecotTestCase, ok
from test_damage import objects
from test_dict import metadata

MAX_MAILBOXES = 5
MAX_BODY_REFERENCES = 2
MAX_DICT_KEYS = 3


def bounds_instance():
    return harness.instance_with_conf("bounds", (
        "protocol imap {\n  imap_metadata = yes\n}\nmail_attribute_dict = rados:\n"
        f"plugin {{\n  rados_max_mailboxes = {MAX_MAILBOXES}\n"
        f"  rados_max_body_references = {MAX_BODY_REFERENCES}\n"
        f"  rados_max_dict_keys = {MAX_DICT_KEYS}\n}}\n"))


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

    def test_subscribe_past_rados_max_mailboxes_is_refused(self):
        # IMAP SUBSCRIBE refuses names that do not exist, doveadm does not: its
        # subscriptions (and those left by mailboxes deleted elsewhere) are keys too.
        inst = bounds_instance()
        for i in range(MAX_MAILBOXES):
            inst.doveadm(self.user, "mailbox subscribe", f"nowhere/{i}")
        with self.assertRaises(AssertionError) as refused:
            inst.doveadm(self.user, "mailbox subscribe", "nowhere/one-more")
        self.assertIn("max_mailboxes", str(refused.exception))
        c = inst.imap(self.user)
        try:
            typ, data = c.lsub('""', "*")
            ok((typ, data))
            self.assertEqual(len([d for d in data if d]), MAX_MAILBOXES, data)
            # IMAP too: an existing mailbox is not subscribed past the bound.
            typ, data = c.subscribe("INBOX")
            self.assertEqual(typ, "NO", data)
            self.assertIn(b"[LIMIT]", data[0])
            ok(c.unsubscribe("nowhere/0"))
            ok(c.subscribe("INBOX"))
        finally:
            c.logout()


@unittest.skipIf(harness.DRIVER != "rados", "rados_max_body_references is the rados plugin's")
class BodyReferenceLimit(DovecotTestCase):
    def test_copy_past_rados_max_body_references_stores_a_body(self):
        inst = bounds_instance()
        mail = harness.make_mail("copied past the bound")
        c = inst.imap(self.user)
        try:
            for name in ("A", "B", "C"):
                ok(c.create(name))
            harness.append(c, "INBOX", mail)
            first = {o for o in objects(self.user, pool=harness.DATA_POOL) if o.startswith("mail.")}
            self.assertEqual(len(first), 1, first)
            ok(c.select("INBOX"))
            for name in ("A", "B", "C"):
                ok(c.uid("COPY", "1", name))
            bodies = {o for o in objects(self.user, pool=harness.DATA_POOL) if o.startswith("mail.")}
            # INBOX + A share the first body; B gets its own, C its own again (copied from INBOX).
            self.assertEqual(len(bodies), 3, bodies)
            self.assertTrue(first < bodies)
            for name in ("INBOX", "A", "B", "C"):
                ok(c.select(name))
                got = harness.uid_fetch(c, "1", "BODY.PEEK[]")
                self.assertEqual(got[1]["BODY[]"], mail, name)
            # Every body goes with its last reference.
            for name in ("INBOX", "A", "B", "C"):
                ok(c.select(name))
                ok(c.uid("STORE", "1", "+FLAGS.SILENT", "(\\Deleted)"))
                ok(c.expunge())
            left = {o for o in objects(self.user, pool=harness.DATA_POOL) if o.startswith("mail.")}
            self.assertEqual(left, set())
        finally:
            c.logout()


@unittest.skipIf(harness.DRIVER != "rados", "rados_max_dict_keys is the rados plugin's")
class DictKeyLimit(DovecotTestCase):
    # Dovecot logs a failed dict commit of a METADATA change as an error.
    allowed_log_errors = (r"Dict private transaction commit failed: rados dict commit: ",)

    def test_setmetadata_past_rados_max_dict_keys_is_refused(self):
        c = bounds_instance().imap(self.user)
        try:
            answers = []
            for i in range(MAX_DICT_KEYS + 2):
                typ, data = c._simple_command(
                    "SETMETADATA", "INBOX", f"(/private/vendor/rados-test/k{i} \"v{i}\")")
                answers.append(typ)
            self.assertIn("NO", answers, answers)
            stored = answers.index("NO")
            self.assertGreaterEqual(stored, 1, answers)
            self.assertLessEqual(stored, MAX_DICT_KEYS, answers)
            self.assertEqual(answers[stored:], ["NO"] * (len(answers) - stored), answers)
            entries = [f"/private/vendor/rados-test/k{i}" for i in range(MAX_DICT_KEYS + 2)]
            found = metadata(c, "INBOX", *entries)
            for i, entry in enumerate(entries):
                self.assertEqual(found.get(entry), f"v{i}".encode() if i < stored else None, (entry, found))
            # A change of an entry there still works at the bound.
            typ, _ = c._simple_command("SETMETADATA", "INBOX", "(/private/vendor/rados-test/k0 \"again\")")
            self.assertEqual(typ, "OK")
        finally:
            c.logout()


if __name__ == "__main__":
    unittest.main()
