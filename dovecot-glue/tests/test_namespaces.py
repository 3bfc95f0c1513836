"""Namespaces (issue 14, item 5), against real Dovecot and the real cluster.

The bugs: the user-to-namespace mapping was `<prefix><user>`, so two deployments sharing a
pool under the prefixes `faults-` and `faults-q-` shared mail (`q-a@x` on the first was
`a@x` on the second); a user name whose namespace exceeds Ceph's 256 bytes, or one
starting with '.', got LMTP 451 at DATA forever; and the cephx example of FORMAT.md did
not parse for addresses with '@'. Now the namespace is `<prefix>/<user>`, names that can
never be stored are refused at RCPT with 550 5.1.3, and a key whose caps are
`osd 'allow rw pool=<pool> namespace=<prefix>/*'` is all a deployment needs."""

import imaplib
import os
import secrets
import smtplib
import subprocess
import unittest

import harness
import test_damage
from harness import DovecotTestCase, make_mail, ok, select, uid_fetch, uid_search

# Instances of this module, after every other module's ports.
harness.PORT_OFFSETS.update({"ns_a": 250, "ns_b": 260, "ns_caps": 270})

RUN = secrets.token_hex(3)
# The two prefixes (one extends the other), unique per run.
PREFIX_A = f"faults-{RUN}-"
PREFIX_B = f"faults-{RUN}-q-"
PREFIX_CAPS = f"caps-{RUN}"
POOL = os.environ.get("RADOS_MAIL_POOL", "mail")
MAX_NAMESPACE = 256


def ns_instance(name, prefix, extra=""):
    return harness.instance_with_conf(
        name, f"plugin {{\n  rados_namespace_prefix = {prefix}\n{extra}}}\n")


def rados(*args, key=None):
    """Runs the rados CLI (as client.admin, or with `key` = (name, keyring path))."""
    cmd = ["rados", "-p", POOL]
    if key is not None:
        cmd += ["--id", key[0].removeprefix("client."), "--keyring", key[1]]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)


def objects_in(namespace):
    proc = rados("-N", namespace, "ls")
    if proc.returncode != 0:
        raise AssertionError(f"rados ls -N {namespace}: {proc.stderr}")
    return proc.stdout.split()


def rcpt_reply(inst, user):
    """The LMTP reply to RCPT TO:<user> (after a MAIL FROM), as (code, text)."""
    with smtplib.LMTP("127.0.0.1", inst.lmtp_port, timeout=harness.TIMEOUT) as lmtp:
        lmtp.ehlo()
        code, _ = lmtp.mail("sender@example.org")
        if code != 250:
            raise AssertionError(f"MAIL FROM: {code}")
        code, text = lmtp.rcpt(user)
        return code, text.decode("utf-8", "replace")


def long_user(total):
    """A valid address of exactly `total` bytes (a local part of at most 64)."""
    domain = "example.org"
    local = "u" * min(64, total - len(domain) - 1)
    rest = total - len(local) - 1 - len(domain)
    labels = []
    while rest > 0:
        n = min(63, rest - 1) if rest > 1 else 0
        if n == 0:
            break
        labels.append("d" * n)
        rest -= n + 1
    name = f"{local}@{'.'.join(labels + [domain])}"
    # Pad the local part for what the labels could not take.
    name = "u" * (total - len(name)) + name if len(name) < total else name
    assert len(name) == total, (len(name), total)
    return name


@unittest.skipIf(harness.DRIVER != "rados", "namespaces are the rados plugin's")
class Namespaces(DovecotTestCase):
    # IMAP: Dovecot 2.3 logs a failure to create the mail user as an error (the login then
    # fails with its internal-error reply); the line names the reason.
    allowed_log_errors = (r"failed: RM_RESULT_INVALID_INPUT: invalid input: user name",)

    def test_namespace_prefixes_do_not_collide(self):
        # The scenario: two deployments, prefixes faults- and faults-q-, one pool.
        a = ns_instance("ns_a", PREFIX_A)
        b = ns_instance("ns_b", PREFIX_B)
        b.deliver("a@x", make_mail("for a@x of the second deployment"))
        c = a.imap("q-a@x")
        try:
            typ, data = c.select("INBOX")
            ok((typ, data))
            self.assertEqual(int(data[0]), 0, "q-a@x of the first sees a@x's mail of the second")
        finally:
            c.logout()
        c = b.imap("a@x")
        try:
            select(c)
            self.assertEqual(len(uid_search(c, "ALL")), 1)
        finally:
            c.logout()
        # Mapping v2 on the cluster: <prefix>/<user>.
        self.assertIn("mailboxes", objects_in(f"{PREFIX_B}/a@x"))
        self.assertEqual(objects_in(f"{PREFIX_A}q-a@x"), [], "nothing under mapping v1")

    def test_namespace_too_long_is_refused_permanently(self):
        inst = ns_instance("ns_a", PREFIX_A)
        fits = long_user(MAX_NAMESPACE - len(PREFIX_A) - 1)
        over = long_user(MAX_NAMESPACE - len(PREFIX_A))
        code, text = rcpt_reply(inst, over)
        self.assertEqual(code, 550, text)
        self.assertTrue(text.startswith("5.1.3"), text)
        self.assertIn("257 bytes", text)
        # The longest name that fits is delivered and read back.
        code, text = rcpt_reply(inst, fits)
        self.assertEqual(code, 250, text)
        mail = make_mail("longest name")
        inst.deliver(fits, mail)
        self.assertIn("mailboxes", objects_in(f"{PREFIX_A}/{fits}"))
        # IMAP: a permanent failure, not [UNAVAILABLE].
        self.assert_login_refused(inst, over)

    def test_namespace_dot_user_is_refused_permanently(self):
        inst = ns_instance("ns_a", PREFIX_A)
        for user in ['".hidden"@example.org', '"a/b"@example.org']:
            code, text = rcpt_reply(inst, user)
            self.assertEqual(code, 550, f"{user}: {text}")
            self.assertTrue(text.startswith("5.1.3"), text)
        self.assert_login_refused(inst, ".hidden@example.org")
        # In one transaction, the refused recipient does not stop the others.
        with smtplib.LMTP("127.0.0.1", inst.lmtp_port, timeout=harness.TIMEOUT) as lmtp:
            refused = lmtp.sendmail("sender@example.org", ['".hidden"@example.org', self.user],
                                    make_mail("to two recipients"))
        self.assertEqual(list(refused), ['".hidden"@example.org'])
        self.assertEqual(refused['".hidden"@example.org'][0], 550)
        c = inst.imap(self.user)
        try:
            select(c)
            self.assertEqual(len(uid_search(c, "ALL")), 1)
        finally:
            c.logout()

    def assert_login_refused(self, inst, user):
        since = inst.log_size()
        c = imaplib.IMAP4("127.0.0.1", inst.imap_port, timeout=harness.TIMEOUT)
        try:
            with self.assertRaises((imaplib.IMAP4.error, imaplib.IMAP4.abort, EOFError, OSError)) as e:
                c.login(user, harness.PASSWORD)
                c.select("INBOX")
            # Dovecot 2.3 answers the login, then fails to create the user and closes the
            # session with "* BYE Internal error occurred" (its reply to any user it
            # cannot create); not the temporary [UNAVAILABLE].
            self.assertIn("Internal error", str(e.exception))
            self.assertNotIn("UNAVAILABLE", str(e.exception))
            # The imap process logs its error after the client saw the BYE: wait for it,
            # or it lands in the next test (which does not expect it).
            inst.wait_for_log(since, f"opening user '{user}' failed: RM_RESULT_INVALID_INPUT")
        finally:
            try:
                c.logout()
            except Exception:  # noqa: BLE001 - the server may have closed it
                pass

    def test_namespace_cephx_caps_restricted_to_prefix(self):
        client = f"client.rm-ns-{RUN}"
        keyring = os.path.join(harness.root(), f"{client}.keyring")
        osd_caps = f"allow rw pool={POOL} namespace={PREFIX_CAPS}/*"
        if harness.DATA_POOL != POOL:
            osd_caps += f", allow rw pool={harness.DATA_POOL} namespace={PREFIX_CAPS}/*"
        caps = ["mon", "allow r", "osd", osd_caps]
        proc = subprocess.run(["ceph", "auth", "get-or-create", client, *caps, "-o", keyring],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.addCleanup(subprocess.run, ["ceph", "auth", "del", client], capture_output=True, timeout=60)
        os.chmod(keyring, 0o644)
        # A key confined to the deployment's namespaces may not list the pool, so it cannot
        # tell a new deployment from one with data: the operator creates the format record
        # once with the admin key (docs/FORMAT.md, "Where things live").
        exe = test_damage.rados_mail_exe()
        self.assertTrue(exe, "no built rados-mail command: cargo build -p rados-mail-cli")
        conf = ["-c", os.environ["CEPH_CONF"]] if os.environ.get("CEPH_CONF") else []
        data = ["--data-pool", harness.DATA_POOL] if harness.DATA_POOL != POOL else []
        proc = subprocess.run([exe, *conf, "-p", POOL, *data, "--namespace-prefix", PREFIX_CAPS,
                               "migrate", "--layout", "--refresh-wait", "0"],
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("format version 2", proc.stdout)
        inst = ns_instance("ns_caps", PREFIX_CAPS,
                           f"  rados_client_name = {client}\n  rados_keyring = {keyring}\n")
        user = "alice@example.org"
        mail = make_mail("through a restricted key")
        inst.deliver(user, mail)
        c = inst.imap(user)
        try:
            select(c)
            uid = uid_search(c, "ALL")[0]
            body = uid_fetch(c, str(uid), "(BODY.PEEK[])")[uid]["BODY[]"]
            self.assertTrue(body.endswith(mail), body)
            ok(c.create("Archive"))
        finally:
            c.logout()
        key = (client, keyring)
        own = rados("-N", f"{PREFIX_CAPS}/{user}", "ls", key=key)
        self.assertEqual(own.returncode, 0, own.stderr)
        self.assertIn("mailboxes", own.stdout.split())
        probe = os.path.join(harness.root(), "probe")
        with open(probe, "w") as f:
            f.write("x")
        for ns in [f"{PREFIX_A}/{user}", f"{PREFIX_CAPS}{user}", ""]:
            proc = rados("-N", ns, "put", "probe", probe, key=key)
            self.assertNotEqual(proc.returncode, 0, f"namespace {ns!r} writable")
            self.assertIn("Operation not permitted", proc.stderr, ns)
            proc = rados("-N", ns, "stat", "mailboxes", key=key)
            self.assertIn("Operation not permitted", proc.stderr, ns)
