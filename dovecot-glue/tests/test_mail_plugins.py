"""Mail plugins that transform mails (mail_crypt, zlib) over rados (issue 14, item 3).

The bug: with `mail_crypt` or `zlib` in mail_plugins, mails were stored as plaintext and
uncompressed, with no error. Both plugins leave a storage alone unless its class has
MAIL_STORAGE_CLASS_FLAG_BINARY_DATA, which rados lacked; and even with it, the save path
wrote the input straight to RADOS instead of through the stream the plugins wrap (the save
context's data.output), and get_stream never called the istream_opened hook through
which they turn the stored bytes back into the mail. The library also measured sizes,
header length and the delivery key on the bytes it stored: with mail_crypt those differ
on every attempt (a fresh ephemeral key each time), so a retried LMTP delivery would have
been stored twice, and the sizes would have been the ciphertext's.

Each test checks what RADOS holds (`rados get` of the body object), what IMAP returns,
the sizes (RFC822.SIZE and doveadm's size.physical/size.virtual against the same mail
saved without a plugin), and for mail_crypt that copies share the body and that a
repeated delivery is stored once.
"""

import os
import re
import socket
import subprocess
import time
import unittest

import harness
from harness import DovecotTestCase, append, instance, instance_with_conf, make_mail, ok, select

POOL = os.environ.get("RADOS_MAIL_POOL", "mail")
NS_PREFIX = os.environ.get("RADOS_MAIL_NS_PREFIX", "dovecot-test-")
GZIP_MAGIC = b"\x1f\x8b"
# istream-decrypt's magic: what mail_crypt puts at the start of every mail it saves.
CRYPT_MAGIC = b"CRYPTED\x03\x07"


def rados(user, *args, pool=POOL):
    # Namespace mapping v2 (docs/FORMAT.md): <prefix>/<user>, or <user> without a prefix.
    namespace = f"{NS_PREFIX}/{user}" if NS_PREFIX else user
    proc = subprocess.run(["rados", "-p", pool, "-N", namespace, *args],
                          capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"rados {' '.join(args)}: {proc.stderr.decode()}")
    return proc.stdout


def body_objects(user):
    """{object name: stored bytes} of the user's mail bodies (single-object mails)."""
    pool = harness.DATA_POOL
    names = [n for n in rados(user, "ls", pool=pool).decode().split()
             if re.fullmatch(r"mail\.[0-9a-f]{32}", n)]
    return {n: rados(user, "get", n, "/dev/stdout", pool=pool) for n in names}


def refs(user, obj):
    """The references a body object holds: omap `ref/` keys (format v1) and `rm.ref.` xattrs
    (v2, docs/FORMAT.md; an erasure-coded data pool has no omap and lists none)."""
    pool = harness.DATA_POOL
    keys = rados(user, "listomapkeys", obj, pool=pool).decode().split()
    xattrs = rados(user, "listxattr", obj, pool=pool).decode().split()
    return [k for k in keys if k.startswith("ref/")] + [x for x in xattrs if x.startswith("rm.ref.")]


def crypt_conf():
    """mail_crypt with global keys (an EC key pair made here, readable by the mail uid)."""
    d = harness.root()
    priv, pub = os.path.join(d, "crypt-priv.pem"), os.path.join(d, "crypt-pub.pem")
    if not os.path.exists(pub):
        key = subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey"],
                             capture_output=True, check=True).stdout
        subprocess.run(["openssl", "pkey", "-out", priv], input=key, capture_output=True, check=True)
        subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub],
                       capture_output=True, check=True)
        os.chmod(priv, 0o644)
        os.chmod(pub, 0o644)
    return ("mail_plugins = $mail_plugins mail_crypt\n"
            "plugin {\n"
            f"  mail_crypt_global_private_key = <{priv}\n"
            f"  mail_crypt_global_public_key = <{pub}\n"
            "  mail_crypt_save_version = 2\n"
            "}\n")


# With quota (count backend, which needs virtual sizes): it must count the plain mail.
ZLIB_SAVE_CONF = ("mail_plugins = $mail_plugins zlib quota\n"
                  "plugin {\n"
                  "  zlib_save = gz\n"
                  "  quota = count:User quota\n"
                  "  quota_rule = *:storage=1G\n"
                  "  quota_vsizes = yes\n"
                  "}\n")
# zlib loaded but not saving: mails it compressed stay readable, new ones are stored plain.
ZLIB_READ_CONF = "mail_plugins = $mail_plugins zlib\n"


def compressible_mail(subject):
    body = "".join(f"Line {i % 7} of a mail that says the same thing again and again.\n"
                   for i in range(400))
    return make_mail(subject, body=body)


def fetch_one(c, uid, items):
    """The FETCH attributes of one UID as a dict (names upper-case)."""
    return harness.uid_fetch(c, str(uid), f"({items})")[uid]


def sizes(inst, user, uid, mailbox="INBOX"):
    """(size.physical, size.virtual) of a mail, as doveadm reports them."""
    out = inst.doveadm_fmt("flow", user, "fetch", "size.physical size.virtual",
                           "mailbox", mailbox, "uid", str(uid)).decode()
    m = re.search(r"size\.physical=(\d+) size\.virtual=(\d+)", out)
    if not m:
        raise AssertionError(f"doveadm fetch said {out!r}")
    return int(m.group(1)), int(m.group(2))


def count(c, mailbox="INBOX"):
    return harness.status(c, mailbox, "MESSAGES")["MESSAGES"]


@unittest.skipIf(harness.DRIVER != "rados", "the stored bytes are read from RADOS objects")
class MailPluginsTest(DovecotTestCase):
    @classmethod
    def setUpClass(cls):
        cls.plain = instance("a")

    def plain_sizes(self, mail):
        """The sizes of `mail` saved by the instance without plugins (another user)."""
        user = self.user + "-ref"
        c = self.plain.imap(user)
        try:
            _, uid = append(c, "INBOX", mail)
        finally:
            c.logout()
        return sizes(self.plain, user, uid)

    # --- mail_crypt ---------------------------------------------------------------

    def test_mail_crypt_stores_ciphertext_and_serves_plaintext(self):
        dc = instance_with_conf("crypt", crypt_conf())
        mail = make_mail("crypt-subject-7f3a", body="Secret words in the body.\n" * 20)
        c = dc.imap(self.user)
        try:
            _, uid = append(c, "INBOX", mail)
            (stored,) = body_objects(self.user).values()
            self.assertTrue(stored.startswith(CRYPT_MAGIC), stored[:16])
            self.assertNotIn(b"crypt-subject-7f3a", stored)
            self.assertNotIn(b"Secret words", stored)
            select(c)
            atts = fetch_one(c, uid, "RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT]")
            self.assertEqual(atts["BODY[]"], mail)
            self.assertEqual(int(atts["RFC822.SIZE"]), len(mail))
            hdr_end = mail.index(b"\r\n\r\n") + 4
            self.assertEqual(atts["BODY[HEADER]"], mail[:hdr_end])
            self.assertEqual(atts["BODY[TEXT]"], mail[hdr_end:])
        finally:
            c.logout()
        # The sizes are the plain mail's: those of the same mail stored unencrypted.
        self.assertEqual(sizes(dc, self.user, uid), self.plain_sizes(mail))
        self.assertNotEqual(len(stored), len(mail))

    def test_mail_crypt_copy_and_move_share_the_body(self):
        dc = instance_with_conf("crypt", crypt_conf())
        mail = make_mail("crypt-copy")
        c = dc.imap(self.user)
        try:
            ok(c.create("Kept"))
            ok(c.create("Moved"))
            append(c, "INBOX", mail)
            select(c)
            ok(c.uid("COPY", "1", "Kept"))
            ok(c.uid("MOVE", "1", "Moved"))
            objs = body_objects(self.user)
            self.assertEqual(len(objs), 1, sorted(objs))
            (obj,) = objs
            # Kept's and Moved's records reference it; INBOX's went with the MOVE (it was
            # left behind when its key sorted after the other two: fixed in refs.rs).
            self.assertEqual(len(refs(self.user, obj)), 2)
            for box in ("Kept", "Moved"):
                select(c, box)
                self.assertEqual(fetch_one(c, 1, "BODY.PEEK[]")["BODY[]"], mail)
        finally:
            c.logout()

    def test_mail_crypt_repeated_delivery_is_stored_once(self):
        # Each attempt encrypts with a fresh ephemeral key: the delivery key must come
        # from the plain mail, or the retry of a delivery whose reply was lost would be
        # stored a second time.
        dc = instance_with_conf("crypt", crypt_conf())
        mail = make_mail("crypt-retry", body="Delivered twice, stored once.\n")
        dc.deliver(self.user, mail)
        dc.deliver(self.user, mail)
        c = dc.imap(self.user)
        try:
            self.assertEqual(count(c), 1)
            select(c)
            got = fetch_one(c, 1, "BODY.PEEK[]")["BODY[]"]
            self.assertTrue(got.endswith(mail), got[:200])
        finally:
            c.logout()
        # Another mail is another delivery.
        dc.deliver(self.user, make_mail("crypt-retry-other"))
        c = dc.imap(self.user)
        try:
            self.assertEqual(count(c), 2)
        finally:
            c.logout()
        for stored in body_objects(self.user).values():
            self.assertTrue(stored.startswith(CRYPT_MAGIC))

    def test_mail_crypt_large_delivery(self):
        # Above the 256 KiB the save keeps in memory: a read of the mail being saved
        # (LMTP's delivery log reads its headers) comes from RADOS, through mail_crypt, at
        # the stored size; and a large body's later ranges decrypt right.
        dc = instance_with_conf("crypt", crypt_conf())
        mail = make_mail("crypt-large", body="".join(f"{i:06d} large body line\n" for i in range(20000)))
        self.assertGreater(len(mail), 400_000)
        dc.deliver(self.user, mail)
        (stored,) = body_objects(self.user).values()
        self.assertTrue(stored.startswith(CRYPT_MAGIC))
        c = dc.imap(self.user)
        try:
            select(c)
            atts = fetch_one(c, 1, "RFC822.SIZE BODY.PEEK[] BODY.PEEK[TEXT]<300000.20>")
            self.assertTrue(atts["BODY[]"].endswith(mail))
            self.assertEqual(int(atts["RFC822.SIZE"]), len(atts["BODY[]"]))
            hdr_end = mail.index(b"\r\n\r\n") + 4
            self.assertEqual(atts["BODY[TEXT]<300000>"], mail[hdr_end + 300000:hdr_end + 300020])
        finally:
            c.logout()

    def test_mail_crypt_reads_mails_saved_before_it_was_enabled(self):
        mail = make_mail("crypt-before", body="Stored before mail_crypt.\n")
        c = self.plain.imap(self.user)
        try:
            _, uid = append(c, "INBOX", mail)
        finally:
            c.logout()
        (stored,) = body_objects(self.user).values()
        self.assertIn(b"crypt-before", stored)
        dc = instance_with_conf("crypt", crypt_conf())
        c = dc.imap(self.user)
        try:
            select(c)
            atts = fetch_one(c, uid, "RFC822.SIZE BODY.PEEK[]")
            self.assertEqual(atts["BODY[]"], mail)
            self.assertEqual(int(atts["RFC822.SIZE"]), len(mail))
        finally:
            c.logout()

    # --- zlib ---------------------------------------------------------------------

    def test_zlib_stores_gzip_and_serves_plaintext(self):
        dc = instance_with_conf("zlib", ZLIB_SAVE_CONF)
        mail = compressible_mail("zlib-subject")
        c = dc.imap(self.user)
        try:
            _, uid = append(c, "INBOX", mail)
            (stored,) = body_objects(self.user).values()
            self.assertTrue(stored.startswith(GZIP_MAGIC), stored[:16])
            self.assertLess(len(stored), len(mail) // 4)
            select(c)
            atts = fetch_one(c, uid, "RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER] "
                                     "BODY.PEEK[TEXT] BODY.PEEK[]<0.10> BODY.PEEK[TEXT]<100.50>")
            hdr_end = mail.index(b"\r\n\r\n") + 4
            self.assertEqual(atts["BODY[]"], mail)
            self.assertEqual(int(atts["RFC822.SIZE"]), len(mail))
            self.assertEqual(atts["BODY[HEADER]"], mail[:hdr_end])
            self.assertEqual(atts["BODY[TEXT]"], mail[hdr_end:])
            self.assertEqual(atts["BODY[]<0>"], mail[:10])
            self.assertEqual(atts["BODY[TEXT]<100>"], mail[hdr_end + 100:hdr_end + 150])
        finally:
            c.logout()
        self.assertEqual(sizes(dc, self.user, uid), self.plain_sizes(mail))

    def test_zlib_quota_counts_the_plain_mail(self):
        dc = instance_with_conf("zlib", ZLIB_SAVE_CONF)
        mail = compressible_mail("zlib-quota")
        c = dc.imap(self.user)
        try:
            _, uid = append(c, "INBOX", mail)
        finally:
            c.logout()
        (stored,) = body_objects(self.user).values()
        _, vsize = sizes(dc, self.user, uid)
        out = dc.doveadm_fmt("tab", self.user, "quota get").decode()
        rows = [line.split("\t") for line in out.splitlines()]
        header = rows[0]
        storage = next(r for r in rows[1:] if r[header.index("Type")] == "STORAGE")
        used_kib = int(storage[header.index("Value")])
        # doveadm shows KiB (rounded up)
        self.assertIn(used_kib, (vsize // 1024, -(-vsize // 1024)), out)
        self.assertGreater(used_kib, len(stored) // 1024)

    def test_zlib_interrupted_append_leaves_nothing(self):
        # The save is cancelled halfway: the plugin's stream is abandoned (not finished),
        # nothing is stored, nothing is logged as an error.
        dc = instance_with_conf("zlib", ZLIB_SAVE_CONF)
        mail = compressible_mail("zlib-cut")
        with socket.create_connection(("127.0.0.1", dc.imap_port), timeout=30) as s:
            f = s.makefile("rb")
            f.readline()
            s.sendall(f'a LOGIN "{self.user}" "{harness.PASSWORD}"\r\n'.encode())
            while not f.readline().startswith(b"a OK"):
                pass
            s.sendall(f"b APPEND INBOX {{{len(mail)}}}\r\n".encode())
            self.assertTrue(f.readline().startswith(b"+"))
            s.sendall(mail[:len(mail) // 2])
            time.sleep(0.5)
            f.close()
            s.shutdown(socket.SHUT_RDWR)
        # Until the imap process has seen the disconnection (and cancelled the save).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with open(dc.log, "rb") as log:
                if re.search(rb"imap\(" + re.escape(self.user.encode()) + rb"\).*While APPENDing",
                             log.read()):
                    break
            time.sleep(0.1)
        else:
            self.fail("the interrupted APPEND was not logged")
        c = dc.imap(self.user)
        try:
            self.assertEqual(count(c), 0)
            _, uid = append(c, "INBOX", mail)
            select(c)
            self.assertEqual(fetch_one(c, uid, "BODY.PEEK[]")["BODY[]"], mail)
        finally:
            c.logout()
        self.assertEqual(len(body_objects(self.user)), 1)

    def test_zlib_reads_mails_saved_before_it_was_enabled(self):
        mail = compressible_mail("zlib-before")
        c = self.plain.imap(self.user)
        try:
            _, uid = append(c, "INBOX", mail)
        finally:
            c.logout()
        (stored,) = body_objects(self.user).values()
        self.assertFalse(stored.startswith(GZIP_MAGIC))
        dc = instance_with_conf("zlib", ZLIB_SAVE_CONF)
        c = dc.imap(self.user)
        try:
            select(c)
            atts = fetch_one(c, uid, "RFC822.SIZE BODY.PEEK[] BODY.PEEK[]<0.10>")
            self.assertEqual(atts["BODY[]"], mail)
            self.assertEqual(atts["BODY[]<0>"], mail[:10])
            self.assertEqual(int(atts["RFC822.SIZE"]), len(mail))
        finally:
            c.logout()

    def test_zlib_saving_turned_off_keeps_compressed_mails_readable(self):
        # The reverse, as far as Dovecot allows: with zlib still loaded but zlib_save
        # unset, the compressed mails read as before and new ones are stored plain.
        mail = compressible_mail("zlib-then-off")
        dc = instance_with_conf("zlib", ZLIB_SAVE_CONF)
        c = dc.imap(self.user)
        try:
            _, uid = append(c, "INBOX", mail)
        finally:
            c.logout()
        reader = instance_with_conf("zlib_read", ZLIB_READ_CONF)
        later = compressible_mail("zlib-off-then")
        c = reader.imap(self.user)
        try:
            _, later_uid = append(c, "INBOX", later)
            select(c)
            self.assertEqual(fetch_one(c, uid, "BODY.PEEK[]")["BODY[]"], mail)
            self.assertEqual(fetch_one(c, later_uid, "BODY.PEEK[]")["BODY[]"], later)
        finally:
            c.logout()
        stored = sorted(body_objects(self.user).values(), key=len)
        self.assertEqual(len(stored), 2)
        self.assertTrue(stored[0].startswith(GZIP_MAGIC))
        self.assertFalse(stored[1].startswith(GZIP_MAGIC))
        self.assertEqual(sizes(reader, self.user, uid), sizes(reader, self.user, later_uid))


if __name__ == "__main__":
    unittest.main()
