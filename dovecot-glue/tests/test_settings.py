"""The plugin's rados_* settings are checked, not ignored (issue 14).

The story: a mistyped setting (`rados_pol = mail`) was silently ignored, since the glue
read only the keys it knew, and a userdb that set `rados_pool` for one user was ignored
too (one store serves every user of a process, opened with the first user's settings),
so that user's mail went where the others' did, or, if that user came first, everybody's
went to the other pool. Now every rados_* setting goes to the library, which names what
it does not know or cannot parse, and a userdb that sets one is refused, before anything
is opened. Both are temporary failures for the sender (LMTP 4xx): the mail waits in the
queue until the operator fixes the configuration."""

import imaplib
import os
import smtplib
import unittest

import harness
from harness import DovecotTestCase, make_mail


def login_fails(inst, user):
    """Whether an IMAP login of `user` ends without a usable session."""
    try:
        c = imaplib.IMAP4("127.0.0.1", inst.imap_port, timeout=30)
    except OSError:
        return True
    try:
        c.login(user, harness.PASSWORD)
        c.select("INBOX")
    except (imaplib.IMAP4.error, imaplib.IMAP4.abort, OSError):
        return True
    finally:
        try:
            c.logout()
        except Exception:  # noqa: BLE001 - the server may have closed it already
            pass
    return False


def lmtp_reply(inst, user):
    """The code LMTP answers a delivery to `user` with (250 when accepted)."""
    try:
        with smtplib.LMTP("127.0.0.1", inst.lmtp_port, timeout=30) as lmtp:
            refused = lmtp.sendmail("sender@example.org", [user], make_mail("settings"))
    except smtplib.SMTPRecipientsRefused as e:
        return next(iter(e.recipients.values()))[0]
    except smtplib.SMTPResponseException as e:
        return e.smtp_code
    return next(iter(refused.values()))[0] if refused else 250


@unittest.skipIf(harness.DRIVER != "rados", "the rados_* settings are the rados plugin's")
class Settings(DovecotTestCase):
    allowed_log_errors = (r"rados_pol\b", r"rados_timeout = soon", r"userdb sets rados_pool",
                          r"Internal error", r"user init failed", r"Mail user initialization failed",
                          r"Couldn't (create|initialize) mail user")

    def test_settings_unknown_key_is_refused_with_its_name(self):
        inst = harness.instance_with_conf("settings_bad", "plugin {\n  rados_pol = mail\n}\n")
        since = inst.log_size()
        self.assertTrue(login_fails(inst, self.user), "a session despite an unknown rados_* setting")
        code = lmtp_reply(inst, self.user)
        self.assertTrue(400 <= code < 500, f"LMTP answered {code}, expected a temporary failure")
        # Both the imap and the lmtp process name the key (waited for: a process may log
        # after its client saw the answer, and the next test must not find these lines).
        inst.wait_for_log(since, "Error: rados: plugin setting rados_pol = mail")  # imap
        inst.wait_for_log(since, "Failed to initialize user: rados: plugin setting rados_pol = mail")  # lmtp
        log = inst.log_text(since)
        self.assertEqual(log.count("plugin setting rados_pol = mail"), 2, log)
        self.assertIn('unknown setting "pol"', log)

    def test_settings_bad_value_is_refused_with_its_name(self):
        inst = harness.instance_with_conf("settings_value", "plugin {\n  rados_timeout = soon\n}\n")
        since = inst.log_size()
        self.assertTrue(login_fails(inst, self.user), "a session despite rados_timeout = soon")
        code = lmtp_reply(inst, self.user)
        self.assertTrue(400 <= code < 500, f"LMTP answered {code}, expected a temporary failure")
        inst.wait_for_log(since, "Error: rados: plugin setting rados_timeout = soon")  # imap
        inst.wait_for_log(since, "Failed to initialize user: rados: plugin setting rados_timeout = soon")  # lmtp
        log = inst.log_text(since)
        self.assertEqual(log.count("plugin setting rados_timeout = soon"), 2, log)

    def test_settings_userdb_override_is_refused(self):
        path = os.path.join(harness.root(), "settings-userdb")
        other = f"{self.user}-pool"
        if not os.path.exists(path):
            with open(path, "w") as f:
                # user:password:uid:gid:gecos:home:shell:extra fields
                f.write(f"{other}::65534:65534::{harness.root()}/settings-home/{other}::"
                        "userdb_rados_pool=elsewhere\n")
            os.chmod(path, 0o644)
        inst = harness.instance("settings_userdb", userdb_file=path)
        # A user the userdb file doesn't know (the static userdb) works...
        c = inst.imap(self.user)
        try:
            harness.ok(c.select("INBOX"))
        finally:
            c.logout()
        # ...the one it sets rados_pool for is refused, and the log says why.
        since = inst.log_size()
        self.assertTrue(login_fails(inst, other), "a session despite a userdb rados_pool")
        code = lmtp_reply(inst, other)
        self.assertTrue(400 <= code < 500, f"LMTP answered {code}, expected a temporary failure")
        inst.wait_for_log(since, f"the userdb sets rados_pool for user {other}")
        # The refused user's mail went nowhere: the process's store still serves the others.
        inst.deliver(self.user, make_mail("after the refusal"))
        c = inst.imap(self.user)
        try:
            typ, data = c.select("INBOX")
            self.assertEqual((typ, data[0]), ("OK", b"1"))
        finally:
            c.logout()


if __name__ == "__main__":
    unittest.main()
