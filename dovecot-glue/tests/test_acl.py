"""ACLs and shared mailboxes across two backends (issue 11, point 5).

Both instances load the acl plugin (vfile) and imap_acl, and have a `shared/<user>/`
namespace over the other users' mail, with `acl_shared_dict` shared by both (rados: the
rados dict; sdbox: a file dict in the shared home directories). A user X sets ACLs on
his mailboxes through one backend; another user Y uses them through the other one.

The story: with rados, vfile keeps a mailbox's ACL in a `dovecot-acl` file in the
directory the mailbox list gives for it, which for the rados list was the backend's
local index cache: an ACL set through A was a file on A alone, so B neither granted
nor (after a revocation through A) refused what A did. The plugin now keeps the ACL
text in RADOS and brings the local file in line before vfile reads it
(dovecot-glue/src/rados-acl.c). Two sdbox instances sharing the home directories share
the files themselves; they run with `cache_secs=0` so that a change is seen at once.
"""

from harness import (DRIVER, DovecotTestCase, append, instance_dir, make_mail, new_user,
                     ok, parse, shared_pair_with_conf, uid_fetch, uid_search)


def acl_conf(name):
    """The extra dovecot.conf of instance `name`."""
    if DRIVER == "rados":
        location = f"rados:%%h/rados:INDEX={instance_dir(name)}/index/%%u"
        acl = "vfile"
        shared_dict = "rados:"
    else:
        location = "sdbox:%%h/sdbox"
        # vfile re-checks a file it read only after cache_secs (default 30)
        acl = "vfile::cache_secs=0"
        shared_dict = f"file:{instance_dir('acl_a')}/home/shared-mailboxes.db"
    return f"""
mail_plugins = $mail_plugins acl
protocol imap {{
  mail_plugins = $mail_plugins imap_acl
}}
namespace inbox {{
  inbox = yes
  separator = /
  prefix =
}}
namespace shared {{
  type = shared
  separator = /
  prefix = shared/%%u/
  location = {location}
  subscriptions = no
  list = children
}}
plugin {{
  acl = {acl}
  acl_shared_dict = {shared_dict}
}}
"""


def getacl(c, mailbox):
    """GETACL as {identifier: sorted rights}."""
    vals = parse(ok(c.getacl(mailbox)))
    return {vals[i]: "".join(sorted(vals[i + 1])) for i in range(1, len(vals) - 1, 2)}


def myrights(c, mailbox):
    """MYRIGHTS as sorted rights; None when refused."""
    typ, data = c.myrights(mailbox)
    if typ != "OK":
        return None
    return "".join(sorted(parse(data)[1]))


def listed(c, pattern):
    """Names LIST "" pattern returns, without \\NonExistent and \\Noselect ones."""
    names = set()
    for line in ok(c.list('""', pattern)):
        if line is None:
            continue
        flags, _sep, name = parse(line)
        if any(f.lower() in ("\\nonexistent", "\\noselect") for f in flags):
            continue
        names.add(name.decode() if isinstance(name, bytes) else name)
    return names


def select_fails(c, mailbox):
    typ, _ = c.select(mailbox, readonly=True)
    return typ != "OK"


def examine(c, mailbox):
    """EXAMINE (SELECT would fail in imaplib without write rights); the message count."""
    return int(ok(c.select(mailbox, readonly=True))[0])


class AclAcrossBackendsTest(DovecotTestCase):
    @classmethod
    def setUpClass(cls):
        cls.a, cls.b = shared_pair_with_conf("acl_a", "acl_b", acl_conf)

    def setUp(self):
        super().setUp()
        self.owner = self.user
        self.other = new_user(self)
        self.sessions = []

    def tearDown(self):
        for c in self.sessions:
            try:
                c.logout()
            except Exception:  # noqa: BLE001 - a failed test may leave it broken
                pass
        super().tearDown()

    def imap(self, inst, user):
        c = inst.imap(user)
        self.sessions.append(c)
        return c

    def make_mailbox(self, c, name, subject):
        ok(c.create(name))
        mail = make_mail(subject)
        append(c, name, mail)
        return mail

    def test_acl_granted_through_a_lets_shared_read_through_b(self):
        xa = self.imap(self.a, self.owner)
        mail = self.make_mailbox(xa, "Proj", "shared through A")
        self.make_mailbox(xa, "Private", "not shared")
        ok(xa.setacl("Proj", self.other, "lr"))

        yb = self.imap(self.b, self.other)
        shared = f"shared/{self.owner}/Proj"
        self.assertEqual(listed(yb, f"shared/{self.owner}/*"), {shared},
                         "B must list the mailbox granted through A, and only it")
        self.assertEqual(myrights(yb, shared), "lr")
        self.assertEqual(examine(yb, shared), 1)
        uid = uid_search(yb, "ALL")[0]
        body = uid_fetch(yb, str(uid), "(BODY.PEEK[])")[uid]["BODY[]"]
        self.assertEqual(body, mail)
        # lr only: no insert, and the unshared mailbox stays closed
        typ, _ = yb.append(shared, None, None, make_mail("refused"))
        self.assertNotEqual(typ, "OK", "APPEND without the i right must fail")
        self.assertTrue(select_fails(yb, f"shared/{self.owner}/Private"))

    def test_acl_revoked_through_a_refused_through_b_shared(self):
        xa = self.imap(self.a, self.owner)
        self.make_mailbox(xa, "Proj", "revoked")
        ok(xa.setacl("Proj", self.other, "lr"))
        shared = f"shared/{self.owner}/Proj"
        # two sessions on B at once: two imap processes, each with its acl cache
        yb1 = self.imap(self.b, self.other)
        yb2 = self.imap(self.b, self.other)
        for c in (yb1, yb2):
            self.assertEqual(examine(c, shared), 1)
            ok(c.close())

        ok(xa.deleteacl("Proj", self.other))
        # the first brings B's local copy in line; the second must not trust its cache
        for c in (yb1, yb2):
            self.assertTrue(select_fails(c, shared), "B must enforce the revocation at once")
            self.assertIsNone(myrights(c, shared))
        yb3 = self.imap(self.b, self.other)
        self.assertTrue(select_fails(yb3, shared))
        self.assertEqual(listed(yb3, f"shared/{self.owner}/*"), set())
        self.assertNotIn(self.other, getacl(self.imap(self.b, self.owner), "Proj"))

    def test_acl_rights_same_through_both_backends_shared(self):
        xa = self.imap(self.a, self.owner)
        xb = self.imap(self.b, self.owner)
        self.make_mailbox(xa, "Team", "rights")
        # set through B, changed through A
        ok(xb.setacl("Team", self.other, "lr"))
        self.assertEqual(getacl(xa, "Team"), getacl(xb, "Team"))
        self.assertEqual(getacl(xa, "Team")[self.other], "lr")
        ok(xa.setacl("Team", self.other, "+i"))
        acl_a, acl_b = getacl(xa, "Team"), getacl(xb, "Team")
        self.assertEqual(acl_a, acl_b)
        self.assertEqual(acl_b[self.other], "ilr")
        self.assertEqual(myrights(xa, "Team"), myrights(xb, "Team"))

        shared = f"shared/{self.owner}/Team"
        ya = self.imap(self.a, self.other)
        yb = self.imap(self.b, self.other)
        self.assertEqual(myrights(ya, shared), "ilr")
        self.assertEqual(myrights(yb, shared), "ilr")
        # the i right granted through A lets Y append through B
        append(yb, shared, make_mail("from the other user"))
        self.assertEqual(examine(ya, shared), 2)

    def test_shared_namespace_lists_other_users_through_both_acl(self):
        third = new_user(self)
        xa = self.imap(self.a, self.owner)
        zb = self.imap(self.b, third)
        for name in ("One", "Two", "Three"):
            self.make_mailbox(xa, name, name)
        self.make_mailbox(zb, "Zed", "third user's")
        ok(xa.setacl("One", self.other, "lr"))
        ok(xa.setacl("Two", self.other, "lr"))
        ok(zb.setacl("Zed", self.other, "lr"))
        ok(zb.setacl("INBOX", self.other, "lr"))

        # Dovecot lists another user's INBOX as the namespace itself (shared/<user>)
        want = {f"shared/{self.owner}/One", f"shared/{self.owner}/Two",
                f"shared/{third}/Zed", f"shared/{third}"}
        for inst in (self.a, self.b):
            y = self.imap(inst, self.other)
            got = {n for n in listed(y, "shared/*")
                   if n.startswith((f"shared/{self.owner}", f"shared/{third}"))}
            self.assertEqual(got, want, f"LIST shared/* through {inst.name}")
            self.assertEqual(myrights(y, f"shared/{third}/INBOX"), "lr")
            self.assertIsNone(myrights(y, f"shared/{self.owner}/Three"))

    def test_acl_follows_rename_and_not_recreate_shared(self):
        xa = self.imap(self.a, self.owner)
        xb = self.imap(self.b, self.owner)
        self.make_mailbox(xa, "Old", "renamed")
        ok(xa.setacl("Old", self.other, "lr"))
        ok(xb.rename("Old", "New"))
        yb = self.imap(self.a, self.other)
        self.assertEqual(myrights(yb, f"shared/{self.owner}/New"), "lr")
        self.assertIsNone(myrights(yb, f"shared/{self.owner}/Old"))

        # deleted through B, created again through A: the ACL is gone with it
        ok(xb.delete("New"))
        ok(xa.create("New"))
        self.assertNotIn(self.other, getacl(xa, "New"))
        self.assertNotIn(self.other, getacl(xb, "New"))
        yb2 = self.imap(self.b, self.other)
        self.assertTrue(select_fails(yb2, f"shared/{self.owner}/New"))

    def test_acl_doveadm_set_through_b_seen_through_a_shared(self):
        xa = self.imap(self.a, self.owner)
        self.make_mailbox(xa, "Ops", "doveadm")
        self.b.doveadm(self.owner, "acl set", "Ops", f"user={self.other}", "lookup", "read",
                       "insert")
        got = self.a.doveadm(self.owner, "acl get", "Ops").decode()
        self.assertRegex(got, rf"user={self.other}\s+(\S+\s+)?insert lookup read")
        self.assertEqual(getacl(xa, "Ops")[self.other], "ilr")
        ya = self.imap(self.a, self.other)
        self.assertEqual(myrights(ya, f"shared/{self.owner}/Ops"), "ilr")
        self.b.doveadm(self.owner, "acl delete", "Ops", f"user={self.other}")
        self.assertIsNone(myrights(ya, f"shared/{self.owner}/Ops"))
