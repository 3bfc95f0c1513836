"""NOTIFY (RFC 5465) across two backends: a session on backend A asks for
notifications, the changes are made through backend B, and A's session is told.

Issue 11: Dovecot advertised NOTIFY and the rados mailbox list answered
`NO [NOTIFICATIONOVERFLOW] NOTIFY not supported for these mailboxes`. These tests
pass on sdbox (two instances sharing storage) and on rados."""

import re
import time

from harness import DovecotTestCase, append, make_mail, ok, shared_pair
from rawimap import RawImap

NOTIFY_ALL = ("NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange)) "
              "(personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))")
# Seconds a notification may take: push should take milliseconds, the fallback
# polls every second in the test configuration.
WAIT = 10


def status_of(line, mailbox):
    """{ITEM: int} of an untagged `* STATUS mailbox (...)` line, else None."""
    m = re.match(r'\* STATUS "?([^"(]*?)"? \((.*)\)$', line)
    if not m or m.group(1) != mailbox:
        return None
    words = m.group(2).split()
    return {words[i].upper(): int(words[i + 1]) for i in range(0, len(words), 2)}


class NotifyTest(DovecotTestCase):
    @classmethod
    def setUpClass(cls):
        cls.a, cls.b = shared_pair()

    def setUp(self):
        super().setUp()
        self.cb = self.b.imap(self.user)
        ok(self.cb.create("Other"))
        self.ra = RawImap("127.0.0.1", self.a.imap_port, self.user)
        self.ra.ok("ENABLE CONDSTORE")
        self.ra.ok("SELECT INBOX")
        untagged = self.ra.ok(NOTIFY_ALL)
        self.assertFalse([u for u in untagged if "NOTIFICATIONOVERFLOW" in u], untagged)

    def tearDown(self):
        self.ra.close()
        self.cb.logout()
        super().tearDown()

    def wait_status(self, mailbox, check):
        """Waits for a STATUS of `mailbox` satisfying check(items); returns the items."""
        got, found = self.ra.wait_until(
            lambda line: (st := status_of(line, mailbox)) is not None and check(st), WAIT)
        self.assertTrue(found, f"no matching STATUS {mailbox} within {WAIT} s; got {got}")
        return status_of(got[-1], mailbox)

    def test_notify_message_new_and_expunge_in_other_mailbox(self):
        append(self.cb, "Other", make_mail("one"))
        st = self.wait_status("Other", lambda s: s.get("MESSAGES") == 1)
        self.assertEqual(st["UIDNEXT"], 2)
        self.assertEqual(st["UNSEEN"], 1)
        append(self.cb, "Other", make_mail("two"))
        self.wait_status("Other", lambda s: s.get("MESSAGES") == 2 and s.get("UIDNEXT") == 3)
        ok(self.cb.select("Other"))
        ok(self.cb.uid("STORE", "1", "+FLAGS", r"(\Deleted)"))
        ok(self.cb.expunge())
        self.wait_status("Other", lambda s: s.get("MESSAGES") == 1 and s.get("UIDNEXT") == 3)

    def test_notify_flag_change_in_other_mailbox(self):
        append(self.cb, "Other", make_mail("one"))
        st = self.wait_status("Other", lambda s: s.get("MESSAGES") == 1)
        ok(self.cb.select("Other"))
        ok(self.cb.uid("STORE", "1", "+FLAGS", r"(\Seen)"))
        st2 = self.wait_status("Other", lambda s: s.get("UNSEEN") == 0)
        self.assertGreater(st2["HIGHESTMODSEQ"], st["HIGHESTMODSEQ"])

    def test_notify_message_new_in_selected_mailbox(self):
        # Dovecot watches the selected mailbox 1 s after the last command ends
        # (IMAP_NOTIFY_WATCH_ADD_DELAY_MSECS); sdbox misses what came before.
        time.sleep(1.5)
        append(self.cb, "INBOX", make_mail("for the selected one"))
        got, found = self.ra.wait_until(lambda line: re.match(r"\* 1 EXISTS", line), WAIT)
        self.assertTrue(found, got)
        # MessageNew (UID FLAGS): the new mail is sent with those items.
        got, found = self.ra.wait_until(lambda line: re.match(r"\* 1 FETCH .*UID 1", line), WAIT)
        self.assertTrue(found, got)

    def test_notify_mailbox_name_changes(self):
        ok(self.cb.create("Fresh"))
        got, found = self.ra.wait_until(lambda line: re.match(r'\* LIST \([^)]*\) "." "?Fresh"?$', line), WAIT)
        self.assertTrue(found, f"CREATE not notified: {got}")
        ok(self.cb.rename("Fresh", "Renamed"))
        got, found = self.ra.wait_until(lambda line: "Renamed" in line and "OLDNAME" in line, WAIT)
        self.assertTrue(found, f"RENAME not notified: {got}")
        self.assertIn("Fresh", got[-1])
        ok(self.cb.delete("Renamed"))
        got, found = self.ra.wait_until(
            lambda line: re.match(r'\* LIST \(\\NonExistent\) "." "?Renamed"?$', line), WAIT)
        self.assertTrue(found, f"DELETE not notified: {got}")

    def test_notify_subscription_change(self):
        ok(self.cb.subscribe("Other"))
        got, found = self.ra.wait_until(
            lambda line: line.startswith("* LIST") and "\\Subscribed" in line and "Other" in line, WAIT)
        self.assertTrue(found, f"SUBSCRIBE not notified: {got}")
        ok(self.cb.unsubscribe("Other"))
        got, found = self.ra.wait_until(
            lambda line: line.startswith("* LIST") and "\\Subscribed" not in line and "Other" in line, WAIT)
        self.assertTrue(found, f"UNSUBSCRIBE not notified: {got}")
