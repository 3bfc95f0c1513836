"""The dict driver `rados` inside Dovecot: as `quota = dict:` (counters kept with
atomic_inc, recounted when missing), as `mail_attribute_dict` (IMAP METADATA, private
and shared, server and mailbox attributes) and as `last_login_dict` (a shared key per
user, `shared/last-login/<user>`: the reason the shared dict is sharded). What Dovecot stores is checked in RADOS
itself, with Ceph's `rados` tool, and through a second Dovecot instance that shares
nothing with the first but the cluster.
"""

import imaplib
import os
import re
import subprocess
import time
import unittest

import harness
from harness import DovecotTestCase, make_mail, ok

imaplib.Commands.setdefault("SETMETADATA", ("AUTH", "SELECTED"))
imaplib.Commands.setdefault("GETMETADATA", ("AUTH", "SELECTED"))

# last_login writes when the mail user is created, before the rados storage has opened
# the process's store, so its dict has a store of its own (settings in the URI): plain
# `rados:` fails there ("rados dict: no store"). The URI carries the plugin's pool,
# data_pool and namespace_prefix.
EXTRA_CONF = """\
mail_plugins = $mail_plugins quota last_login
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
  imap_metadata = yes
}}
mail_attribute_dict = rados:
plugin {{
  quota = dict:User quota::rados:
  quota_rule = *:storage=10M
  last_login_dict = rados:conf={conf}:pool={pool}:namespace_prefix={prefix}{data_pool}
}}
"""


def dict_instances():
    path = os.path.join(harness.root(), "dict-extra.conf")
    if not os.path.exists(path):
        with open(path, "w") as f:
            # The ceph.conf that ci/dovecot-start.sh copies for the mail uid (of the
            # first instance; both read it once they run).
            f.write(EXTRA_CONF.format(conf=os.path.join(harness.root(), "dict", "ceph", "ceph.conf"),
                                      pool=os.environ.get("RADOS_MAIL_POOL", "mail"),
                                      prefix=os.environ.get("RADOS_MAIL_NS_PREFIX", "dovecot-test-"),
                                      # The same data pool as the plugin's settings: the
                                      # first process of a new deployment may create its
                                      # format record through this dict.
                                      data_pool=(f":data_pool={harness.DATA_POOL}"
                                                 if harness.DATA_POOL != harness.POOL else "")))
        os.chmod(path, 0o644)
    return harness.instance("dict", extra_conf=path), harness.instance("dict2", extra_conf=path)


def omap(user, obj="dict"):
    """The omap of `obj` in the user's namespace, as {key: value bytes}, read with the
    `rados` tool (keys and values are printable in these tests)."""
    prefix = os.environ.get("RADOS_MAIL_NS_PREFIX", "dovecot-test-")
    ns = f"{prefix}/{user}" if prefix else user  # mapping v2 (docs/FORMAT.md)
    pool = os.environ.get("RADOS_MAIL_POOL", "mail")
    keys = subprocess.run(["rados", "-p", pool, "-N", ns, "listomapkeys", obj],
                          capture_output=True, text=True, timeout=60)
    if keys.returncode != 0:
        return {}
    out = {}
    for key in keys.stdout.split():
        val = subprocess.run(["rados", "-p", pool, "-N", ns, "getomapval", obj, key, "/dev/stdout"],
                             capture_output=True, timeout=60)
        out[key] = val.stdout
    return out


def shared_dict_holders(key):
    """{object: value} of every dict object of the shared namespace that holds `key`
    (`dict`, or the shards `dict.<4 hex>` of docs/FORMAT.md "Dicts")."""
    prefix = os.environ.get("RADOS_MAIL_NS_PREFIX", "dovecot-test-")
    ns = f"{prefix}/.shared" if prefix else ".shared"
    pool = os.environ.get("RADOS_MAIL_POOL", "mail")
    ls = subprocess.run(["rados", "-p", pool, "-N", ns, "ls"], capture_output=True, text=True, timeout=60)
    holders = {}
    for obj in ls.stdout.split():
        if obj != "dict" and not obj.startswith("dict."):
            continue
        val = subprocess.run(["rados", "-p", pool, "-N", ns, "getomapval", obj, key, "/dev/stdout"],
                             capture_output=True, timeout=60)
        if val.returncode == 0:
            holders[obj] = val.stdout
    return holders


def metadata(c, mailbox, *entries):
    """GETMETADATA; returns {entry: value bytes or None}."""
    c.untagged_responses.pop("METADATA", None)
    typ, data = c._simple_command("GETMETADATA", mailbox, "(" + " ".join(entries) + ")")
    if typ != "OK":
        raise AssertionError(f"GETMETADATA: {typ} {data}")
    found = {}
    for item in c.untagged_responses.pop("METADATA", []):
        if isinstance(item, tuple):
            # (b'INBOX (/private/comment {10}', b'value') or (b' /shared/x {3}', b'abc')
            name = item[0].split(b"(")[-1].split()[-2 if item[0].rstrip().endswith(b"}") else -1]
            found[name.decode()] = item[1]
    return found


def setmetadata(c, mailbox, entry, value):
    typ, data = c._simple_command("SETMETADATA", mailbox, f'({entry} "{value}")')
    if typ != "OK":
        raise AssertionError(f"SETMETADATA {mailbox} {entry}: {typ} {data}")


@unittest.skipIf(harness.DRIVER != "rados", "the rados dict driver needs the rados plugin")
class DictDriver(DovecotTestCase):
    def test_quota_dict_counts_in_rados(self):
        a, b = dict_instances()
        a.deliver(self.user, make_mail("one", body="x" * 3000 + "\n"))
        a.deliver(self.user, make_mail("two", body="y" * 5000 + "\n"))
        c = a.imap(self.user)
        try:
            ok(c.select("INBOX"))
            typ, data = c.getquotaroot("INBOX")
            self.assertEqual(typ, "OK", data)
            quota = data[1][0].decode()
            used_kib = int(quota.split("STORAGE")[1].split()[0])
            self.assertIn("10240", quota)
            stored = omap(self.user)
            self.assertEqual(stored.get("priv/quota/messages"), b"2", stored)
            used = int(stored["priv/quota/storage"])
            self.assertGreater(used, 8000)
            self.assertEqual((used + 1023) // 1024, used_kib, quota)  # Dovecot rounds up

            # A MOVE to another mailbox of the user changes nothing.
            ok(c.create("Archive"))
            typ, data = c.uid("SEARCH", "SUBJECT", "two")
            ok(c.uid("MOVE", data[0].split()[0], "Archive"))
            moved = omap(self.user)
            self.assertEqual(moved.get("priv/quota/messages"), b"2", moved)
            self.assertEqual(int(moved["priv/quota/storage"]), used, moved)

            # An expunge is counted too (atomic_inc with a negative delta).
            typ, data = c.uid("SEARCH", "SUBJECT", "one")
            uid = data[0].split()[0]
            ok(c.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)"))
            ok(c.expunge())
        finally:
            c.logout()
        after = omap(self.user)
        self.assertEqual(after.get("priv/quota/messages"), b"1", after)
        self.assertLess(int(after["priv/quota/storage"]), used)

        # The other instance reads the same counters from RADOS.
        c2 = b.imap(self.user)
        try:
            typ, data = c2.getquotaroot("INBOX")
            self.assertEqual(typ, "OK", data)
            self.assertIn(f"STORAGE {(int(after['priv/quota/storage']) + 1023) // 1024} ", data[1][0].decode())
        finally:
            c2.logout()

    def test_metadata_private_shared_and_server_through_both_instances(self):
        a, b = dict_instances()
        c = a.imap(self.user)
        try:
            ok(c.select("INBOX"))
            setmetadata(c, "INBOX", "/private/comment", "private note")
            setmetadata(c, "INBOX", "/shared/comment", "shared note")
            setmetadata(c, '""', "/private/vendor/test", "server note")
        finally:
            c.logout()
        keys = omap(self.user)
        self.assertTrue(any(k.startswith("priv/") and k.endswith("/comment") and v == b"private note"
                            for k, v in keys.items()), keys)
        self.assertTrue(any(v == b"server note" for v in keys.values()), keys)

        c2 = b.imap(self.user)
        try:
            got = metadata(c2, "INBOX", "/private/comment", "/shared/comment")
            self.assertEqual(got, {"/private/comment": b"private note", "/shared/comment": b"shared note"})
            got = metadata(c2, '""', "/private/vendor/test")
            self.assertEqual(got, {"/private/vendor/test": b"server note"})
            # Unset through b (NIL), gone through a.
            typ, data = c2._simple_command("SETMETADATA", "INBOX", "(/private/comment NIL)")
            self.assertEqual(typ, "OK", data)
        finally:
            c2.logout()
        c = a.imap(self.user)
        try:
            self.assertEqual(metadata(c, "INBOX", "/private/comment"), {})
        finally:
            c.logout()

    def test_metadata_goes_with_a_deleted_mailbox(self):
        a, _ = dict_instances()
        c = a.imap(self.user)
        try:
            ok(c.create("Gone"))
            setmetadata(c, "Gone", "/private/comment", "bye")
            self.assertTrue(any(v == b"bye" for v in omap(self.user).values()))
            ok(c.delete("Gone"))
        finally:
            c.logout()
        left = omap(self.user)
        self.assertFalse(any(v == b"bye" for v in left.values()), left)

    def test_last_login_in_the_shared_dict(self):
        a, b = dict_instances()
        key = f"shared/last-login/{self.user}"
        before = int(time.time())
        a.imap(self.user).logout()
        holders = shared_dict_holders(key)
        # One object holds the key (the shard crc32 of the key picks: rados-mail/tests
        # check which), named as docs/FORMAT.md says.
        self.assertEqual(len(holders), 1, holders)
        obj, value = next(iter(holders.items()))
        self.assertRegex(obj, r"^dict(\.[0-9a-f]{4})?$")
        self.assertTrue(re.fullmatch(rb"[0-9]+", value), value)
        self.assertGreaterEqual(int(value), before - 1)
        # A login through the other instance updates the same key in the same object.
        time.sleep(1.1)
        b.imap(self.user).logout()
        again = shared_dict_holders(key)
        self.assertEqual(list(again), [obj], again)
        self.assertGreater(int(again[obj]), int(value))
