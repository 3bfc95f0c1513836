"""Damage in the pool, seen through Dovecot (issue 12).

The story: damage planted with the `rados` CLI, the way disks, bugs and operators make it,
did far more harm than its size. A mail whose body object was removed came back as
`BODY[] NIL` with `OK [EXPUNGEISSUED]` and nothing in the log (later: an error in the log and
the session cut with `BYE`). One corrupt record made every SELECT of its mailbox fail
(`NO [SERVERBUG]`), a corrupt head header or WAL entry failed SELECT and made LMTP answer
451, a corrupt mailbox-list entry made the account unusable, and `doveadm force-resync`
failed (exit 75): the only way out was deleting the key by hand.

Now, for each kind of damage: a new session SELECTs the mailbox, the other mails FETCH
byte-exact, STORE works on them, LMTP delivers into the mailbox; a damaged mail answers
its FETCH with a NO (the session goes on), is never shown as expunged, and the log names
the object (and key) once per process; then `doveadm force-resync` repairs the mailbox in
RADOS (the code of `rados-mail repair`) and rebuilds Dovecot's index: exit 0, the mailbox
is clean (`rados-mail check` when the binary has it, else every framed value and every
body a record points to is checked here), and no mail is lost without a trace (a mail the
repair took out of the mailbox is in `lost+found`, with a report mail). A value of a newer
frame version is left alone by the repair, which says so: force-resync exits 65.

Every test plants damage in its own user's namespace, with the `rados` CLI only; the
mailbox is filled over LMTP before any IMAP session opened it (an IMAP process keeps the
mailbox views it read, and the damage must be met, not a cached copy).
"""

import glob
import os
import re
import smtplib
import subprocess
import time
import unittest
import zlib

import harness
from harness import DovecotTestCase, ok, select, uid_fetch, uid_search

POOL = os.environ.get("RADOS_MAIL_POOL", "mail")
NS_PREFIX = os.environ.get("RADOS_MAIL_NS_PREFIX", "dovecot-test-")


def namespace(user):
    """The user's RADOS namespace (mapping v2, docs/FORMAT.md)."""
    return f"{NS_PREFIX}/{user}" if NS_PREFIX else user


MAILS = 40
# The damaged mail's log line (rados-damage.c), with the object (and key) it names.
DAMAGE_LOG = re.compile(r"imap\([^)]*\)<(\d+)>.*Error: Mailbox [^:]*: UID=(\d+): rados: "
                        r".* failed: damaged mail: (.*)$")


def mail(n):
    """Mail number n, CRLF lines, no two alike."""
    return (f"From: a@example.org\r\nTo: b@example.net\r\nSubject: damage {n}\r\n"
            f"Message-ID: <{n}.{time.time_ns()}@example.org>\r\n\r\n"
            f"body of mail {n}\r\n" + f"line {n}\r\n" * (n % 7)).encode()


def delivered(got, sent):
    """Whether `got` is the mail `sent` as LMTP delivered it (with the trace headers it
    puts in front: Return-Path, Delivered-To, Received)."""
    return got is not None and got.endswith(sent) and got.startswith(b"Return-Path:")


def deliver_all(inst, user, mails):
    """Delivers `mails` in order over one LMTP connection (UIDs 1, 2, ...)."""
    with smtplib.LMTP("127.0.0.1", inst.lmtp_port, timeout=harness.TIMEOUT) as lmtp:
        for m in mails:
            refused = lmtp.sendmail("sender@example.org", [user], m)
            if refused:
                raise AssertionError(f"LMTP refused {user}: {refused}")


# --- the pool, read and damaged with the rados CLI -------------------------------------

def rados(user, *args, pool=POOL):
    proc = subprocess.run(["rados", "-p", pool, "-N", namespace(user), *args],
                          capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"rados {' '.join(args)}: {proc.stderr.decode()}")
    return proc.stdout


def objects(user, pool=POOL):
    return set(rados(user, "ls", pool=pool).decode().split())


def omap(user, obj):
    """{key: value bytes} of `obj`, parsed from `rados listomapvals`."""
    out, key, data, vals = rados(user, "listomapvals", obj).decode("latin-1"), None, None, {}
    for line in out.split("\n"):
        if key is None:
            if line:
                key = line
            continue
        if data is None:
            if not line.startswith("value ("):
                raise AssertionError(f"unexpected listomapvals line {line!r}")
            data = bytearray()
            continue
        m = re.match(r"^[0-9a-f]{8}  ((?:[0-9a-f]{2} {1,2})+)", line)
        if m:
            data += bytes.fromhex(m.group(1).replace(" ", ""))
        elif re.match(r"^[0-9a-f]{8}$", line) or line == "":
            vals[key] = bytes(data)
            key, data = None, None
    return vals


def set_value(user, obj, key, value):
    proc = subprocess.run(["rados", "-p", POOL, "-N", namespace(user), "setomapval", obj, key],
                          input=value, capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"rados setomapval {obj} {key}: {proc.stderr.decode()}")


def rot(user, obj, key):
    """Damages the framed value `key` of `obj` as a disk would: one byte of its payload
    flipped, so that its crc32 no longer matches (the frame's version stays 1)."""
    value = bytearray(omap(user, obj)[key])
    value[-1] ^= 0x5A
    set_value(user, obj, key, bytes(value))


def proto(payload):
    """A protobuf message -> {field: [values]} (varints as int, the rest as bytes)."""
    fields, i = {}, 0

    def varint():
        nonlocal i
        v = shift = 0
        while True:
            b = payload[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v
    while i < len(payload):
        tag = varint()
        kind = tag & 7
        if kind == 0:
            v = varint()
        elif kind == 2:
            n = varint()
            v, i = payload[i:i + n], i + n
        elif kind in (1, 5):
            n = 8 if kind == 1 else 4
            v, i = payload[i:i + n], i + n
        else:
            raise ValueError(f"wire type {kind}")
        fields.setdefault(tag >> 3, []).append(v)
    return fields


def unframe(value):
    """The payload of a framed value (docs/FORMAT.md), or None when it is damaged."""
    if len(value) < 5 or value[0] != 1:
        return None
    crc = int.from_bytes(value[1:5], "little")
    return value[5:] if zlib.crc32(value[5:]) == crc else None


def head_of(user, name="INBOX"):
    """The head object of mailbox `name` (through the GUID map of `mailboxes`)."""
    for key, value in omap(user, "mailboxes").items():
        if key.startswith("guid/") and value.decode() == name:
            return "mbox." + key[len("guid/"):]
    raise AssertionError(f"no mailbox {name} in the GUID map of {user}")


def shard_records(user, head):
    """{uid: MailRecord fields} of the applied records of shard 0."""
    return {int(k[2:], 16): proto(unframe(v)) for k, v in omap(user, head + ".0000").items()
            if k.startswith("r/")}


def body_object(user, head, uid):
    """The body object of `uid`'s record: from the WAL when it is there (the latest),
    else from shard 0."""
    for key, value in sorted(omap(user, head).items(), reverse=True):
        if not key.startswith("w/"):
            continue
        for change in map(proto, proto(unframe(value)).get(2, [])):
            if change[1][0] == uid and 3 in change:
                return "mail." + proto(change[3][0])[2][0].hex()
    return "mail." + shard_records(user, head)[uid][2][0].hex()


def pool_problems(user):
    """What is not clean in the user's namespace, read raw: framed values that fail their
    check, records pointing to missing bodies, marks that are not 16 hex digits."""
    objs, bad = objects(user), []
    bodies = objs if harness.DATA_POOL == POOL else objects(user, harness.DATA_POOL)
    framed = {"mailboxes": ("mbox/", "counters")}
    for o in objs:
        if re.fullmatch(r"mbox\.[0-9a-f]{32}", o):
            framed[o] = ("hdr", "w/")
        elif re.fullmatch(r"mbox\.[0-9a-f]{32}\.[0-9a-f]{4}", o):
            framed[o] = ("r/",)
    for o, prefixes in framed.items():
        if o not in objs:
            continue
        for key, value in omap(user, o).items():
            if key in ("trim", "applied") and not re.fullmatch(rb"[0-9a-f]{16}", value):
                bad.append(f"{o} {key}: {value!r}")
            if not key.startswith(prefixes):
                continue
            payload = unframe(value)
            if payload is None:
                bad.append(f"{o} {key}: damaged value")
                continue
            records = []
            if key.startswith("r/"):
                records = [payload]
            elif key.startswith("w/"):
                records = [c[3][0] for c in map(proto, proto(payload).get(2, [])) if 3 in c]
            for rec in records:
                body = "mail." + proto(rec)[2][0].hex()
                if body not in bodies:
                    bad.append(f"{o} {key}: the body {body} of UID {proto(rec)[1][0]} is missing")
    return bad


def rados_mail_exe():
    """The built `rados-mail` command (cargo builds it for its tests), or None."""
    for exe in sorted(glob.glob(os.path.join(harness.REPO_ROOT, "target", "*", "rados-mail"))):
        if subprocess.run([exe, "check", "--help"], capture_output=True).returncode == 0:
            return exe
    return None


def rados_mail(user, *args):
    """(exit code, output) of `rados-mail ARGS... USER`; fails when no binary is built."""
    exe = rados_mail_exe()
    assert exe, "no built rados-mail command: cargo build -p rados-mail-cli"
    conf = ["-c", os.environ["CEPH_CONF"]] if os.environ.get("CEPH_CONF") else []
    data = ["--data-pool", harness.DATA_POOL] if harness.DATA_POOL != POOL else []
    proc = subprocess.run([exe, *conf, "-p", POOL, *data, "--namespace-prefix", NS_PREFIX, *args, user],
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def rados_mail_check(user):
    """(exit code, output) of `rados-mail check USER` when a built binary has that command,
    else None."""
    return rados_mail(user, "check") if rados_mail_exe() else None


@unittest.skipIf(harness.DRIVER != "rados", "the damage is planted in RADOS objects")
class Damage(DovecotTestCase):
    # The library's own reports of the damage these tests make (its log reaches
    # Dovecot's since issue 14) are expected too.
    allowed_log_errors = (r"rados: .* failed: damaged mail: ", r"rados-mail: damage in the pool \(",
                          r"rados-mail: rebuilt mailbox head ")

    @classmethod
    def setUpClass(cls):
        cls.dc = harness.instance("a")

    def setUp(self):
        super().setUp()
        self.mails = [mail(n) for n in range(1, MAILS + 1)]
        deliver_all(self.dc, self.user, self.mails)
        self.head = head_of(self.user)
        self.mark = self.dc.log_size()

    # --- what each test checks --------------------------------------------------------

    def damage_logs(self):
        """[(pid, uid, detail)] of the damaged-mail errors logged since the damage."""
        with open(self.dc.log, "rb") as f:
            f.seek(self.mark)
            text = f.read().decode("utf-8", "replace")
        return [(m.group(1), int(m.group(2)), m.group(3))
                for m in map(DAMAGE_LOG.search, text.splitlines()) if m]

    def assert_logged_once_per_process(self, uid, *names):
        logs = [entry for entry in self.damage_logs() if entry[1] == uid]
        self.assertTrue(logs, f"no error logged for the damaged UID {uid}")
        for _, _, detail in logs:
            for name in names:
                self.assertIn(name, detail, "the log names the object and key")
        pids = [pid for pid, _, _ in logs]
        self.assertEqual(len(pids), len(set(pids)), f"logged more than once per process: {logs}")

    def assert_serves_the_rest(self, damaged=(), mailbox="INBOX", count=MAILS):
        """A new session: SELECT, FETCH of every other mail byte-exact, a damaged one
        answers NO and stays listed, STORE, and a delivery over LMTP into the mailbox."""
        c = self.dc.imap(self.user)
        try:
            self.assertEqual(select(c, mailbox)[0], count)
            others = [u for u in range(1, count + 1) if u not in damaged]
            ranges = ",".join(str(u) for u in others)
            got = uid_fetch(c, ranges, "(BODY.PEEK[])")
            for u in others:
                self.assertTrue(delivered(got[u]["BODY[]"], self.mails[u - 1]), f"UID {u}")
            for u in damaged:
                typ, data = c.uid("FETCH", str(u), "(BODY.PEEK[])")
                self.assertEqual(typ, "NO", f"FETCH of the damaged UID {u}: {typ} {data!r}")
                self.assertNotIn(b"EXPUNGEISSUED", b" ".join(d for d in data if d))
                self.assertIn(u, uid_search(c, "ALL"), "a damaged mail is still listed")
            ok(c.uid("STORE", str(others[0]), "+FLAGS", "(\\Flagged)"))
            self.assertEqual(uid_search(c, "FLAGGED"), [others[0]])
            ok(c.noop())
        finally:
            c.logout()
        extra = mail(1000 + len(damaged))
        self.dc.deliver(self.user, extra)
        c = self.dc.imap(self.user)
        try:
            n = select(c, mailbox)[0]
            self.assertEqual(n, count + 1, "LMTP delivered into the damaged mailbox")
            last = uid_fetch(c, "*", "(BODY.PEEK[])").popitem()[1]["BODY[]"]
            self.assertTrue(delivered(last, extra))
        finally:
            c.logout()
        self.mails.append(extra)

    def force_resync(self, mailbox="INBOX"):
        """doveadm force-resync (fails on a non-zero exit or an error line); its output."""
        cmd = ["doveadm", "-c", self.dc.conf, "force-resync", "-u", self.user, mailbox]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=harness.TIMEOUT)
        self.assertEqual(proc.returncode, 0, f"{' '.join(cmd)}:\n{proc.stderr}")
        bad = [line for line in proc.stderr.splitlines() if harness.BAD_LOG.search(line)
               and not any(re.search(p, line) for p in self.allowed_log_errors)]
        self.assertEqual(bad, [])
        return proc.stderr

    def assert_clean(self):
        check = rados_mail_check(self.user)
        if check is not None:
            self.assertEqual(check[0], 0, f"rados-mail check {self.user}:\n{check[1]}")
        self.assertEqual(pool_problems(self.user), [])

    def assert_repaired_later(self, out):
        """Bodies force-resync left for later (younger than the grace) are found by
        `rados-mail check` and moved by `rados-mail repair --grace 0s`; then all is clean."""
        if re.search(r"left mail\.[0-9a-f]{32}", out):
            code, found = rados_mail(self.user, "check")
            self.assertEqual(code, 1, found)
            self.assertIn("orphan bodies", found)
            code, done = rados_mail(self.user, "repair", "--grace", "0s")
            self.assertEqual(code, 0, done)
            self.assertIn("lost+found", done)
        self.assert_clean()

    def lost_found(self):
        """The mails of lost+found (bodies; none when there is no lost+found), via a new
        session."""
        c = self.dc.imap(self.user)
        try:
            typ, data = c.select("lost+found")
            if typ != "OK":
                self.assertIn(b"doesn't exist", data[0])
                return []
            n = int(data[0])
            return [v["BODY[]"] for v in uid_fetch(c, "1:*", "(BODY.PEEK[])").values()] if n else []
        finally:
            c.logout()

    def assert_all_mails_readable(self, mailbox="INBOX", without=()):
        want = [m for i, m in enumerate(self.mails, 1) if i not in without]
        c = self.dc.imap(self.user)
        try:
            self.assertEqual(select(c, mailbox)[0], len(want))
            got = [v["BODY[]"] for v in uid_fetch(c, "1:*", "(BODY.PEEK[])").values()]
            for m in want:
                self.assertEqual(sum(delivered(g, m) for g in got), 1, m[:60])
        finally:
            c.logout()

    # --- the damage -------------------------------------------------------------------

    def test_missing_body(self):
        uid = 20
        body = body_object(self.user, self.head, uid)
        rados(self.user, "rm", body, pool=harness.DATA_POOL)
        self.assert_serves_the_rest(damaged=[uid])
        self.assert_logged_once_per_process(uid, f'"{body}"', "body object missing")

        out = self.force_resync()
        self.assertIn(f'removed UID {uid} from mailbox "INBOX" (body missing', out)
        self.assert_clean()
        self.assert_all_mails_readable(without=[uid])
        report = b"".join(self.lost_found())
        self.assertIn(body[len("mail."):].encode(), report, "the report names the lost body")
        # Nothing left to do.
        self.assertNotIn("removed UID", self.force_resync())

    def test_missing_streamed_body(self):
        # Above the cache's largest item: streamed from RADOS, its first read at open.
        big = mail(41) + (b"y" * 76 + b"\r\n") * ((3 << 20) // 78)
        self.dc.deliver(self.user, big)
        self.mails.append(big)
        uid = MAILS + 1
        body = body_object(self.user, self.head, uid)
        rados(self.user, "rm", body, pool=harness.DATA_POOL)
        self.assert_serves_the_rest(damaged=[uid], count=MAILS + 1)
        self.assert_logged_once_per_process(uid, body, "body object missing")

        self.force_resync()
        self.assert_clean()
        self.assert_all_mails_readable(without=[uid])

    def test_corrupt_record(self):
        uid = 5
        self.assertIn(uid, shard_records(self.user, self.head), "UID 5 was applied to shard 0")
        shard, key = self.head + ".0000", f"r/{uid:08x}"
        rot(self.user, shard, key)
        self.assert_serves_the_rest(damaged=[uid])
        self.assert_logged_once_per_process(uid, f'"{shard}"', f'"{key}"')

        out = self.force_resync()
        self.assertIn(f'removed UID {uid} from mailbox "INBOX" (corrupt record', out)
        # The record's body is younger than the grace (it could be a save in flight): it
        # waits, marked, for a later repair, which moves it to lost+found.
        self.assertRegex(out, r"left mail\.[0-9a-f]{32} \(mailbox \"INBOX\"\)")
        self.assert_repaired_later(out)
        self.assert_all_mails_readable(without=[uid])
        # The body was intact: the mail itself is in lost+found, not dropped (issue 12:
        # "moves ... corrupt records whose body is still present into lost+found").
        self.assertTrue(any(delivered(m, self.mails[uid - 1]) for m in self.lost_found()),
                        f"the mail of the corrupt record is not in lost+found; force-resync "
                        f"said:\n{out}")

    def test_record_of_a_newer_format_is_left_alone(self):
        # A value whose frame version is above the library's and whose crc32 holds is one a
        # newer rados-mail wrote: served as damage, never rewritten by a repair, which says
        # so; force-resync then fails (the mailbox still works).
        uid, shard = 7, self.head + ".0000"
        payload = b"a record of a format to come"
        newer = bytes([2]) + zlib.crc32(payload).to_bytes(4, "little") + payload
        set_value(self.user, shard, f"r/{uid:08x}", newer)
        self.assert_serves_the_rest(damaged=[uid])
        self.assert_logged_once_per_process(uid, f'"{shard}"', f'"r/{uid:08x}"')
        cmd = ["doveadm", "-c", self.dc.conf, "force-resync", "-u", self.user, "INBOX"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=harness.TIMEOUT)
        self.assertEqual(proc.returncode, 65, proc.stderr)
        self.assertRegex(proc.stderr, r"Error: Mailbox INBOX: rados: force-resync: not repaired: .*newer")
        self.assertIn("could not be repaired", proc.stderr)
        self.assertEqual(omap(self.user, shard)[f"r/{uid:08x}"], newer)
        self.assert_serves_the_rest(damaged=[uid], count=MAILS + 1)

    def test_corrupt_head_header(self):
        rot(self.user, self.head, "hdr")
        self.assert_serves_the_rest()
        self.force_resync()
        self.assertIsNotNone(unframe(omap(self.user, self.head)["hdr"]), "the header was rebuilt")
        self.assert_clean()
        self.assert_all_mails_readable()

    def test_corrupt_wal_entry(self):
        wal = sorted(k for k in omap(self.user, self.head) if k.startswith("w/"))
        self.assertTrue(wal, "the last deliveries are still in the WAL")
        rot(self.user, self.head, wal[-1])
        # The damaged entry held the last delivery: SELECT and the rest are served; that
        # mail may be unseen until the repair, never lost.
        c = self.dc.imap(self.user)
        try:
            n = select(c, "INBOX")[0]
            self.assertIn(n, (MAILS - 1, MAILS))
            got = uid_fetch(c, f"1:{MAILS - 1}", "(BODY.PEEK[])")
            for u in range(1, MAILS):
                self.assertTrue(delivered(got[u]["BODY[]"], self.mails[u - 1]), f"UID {u}")
        finally:
            c.logout()
        late = mail(2000)  # the Message-ID differs per call
        self.dc.deliver(self.user, late)
        self.mails.append(late)

        out = self.force_resync()
        self.assert_repaired_later(out)
        c = self.dc.imap(self.user)
        try:
            select(c, "INBOX")
            inbox = [v["BODY[]"] for v in uid_fetch(c, "1:*", "(BODY.PEEK[])").values()]
        finally:
            c.logout()
        lost = self.mails[MAILS - 1]
        self.assertTrue(any(delivered(m, lost) for m in inbox + self.lost_found()),
                        f"the mail of the damaged WAL entry is in INBOX or lost+found; "
                        f"force-resync said:\n{out}")
        for m in self.mails[:MAILS - 1] + self.mails[MAILS:]:
            self.assertTrue(any(delivered(g, m) for g in inbox), m[:60])

    def test_corrupt_mailbox_list_entry(self):
        c = self.dc.imap(self.user)
        try:
            ok(c.create("Work"))
            for i in range(3):
                harness.append(c, "Work", mail(3000 + i))
        finally:
            c.logout()
        rot(self.user, "mailboxes", "mbox/Work")
        # Only Work's entry is damaged: the account and INBOX are as before, Work is listed.
        c = self.dc.imap(self.user)
        try:
            names = [harness.parse(d)[2] for d in ok(c.list('""', '"*"'))]
            names = {n.decode() if isinstance(n, bytes) else n for n in names}
            self.assertEqual(names, {"INBOX", "Work"})
        finally:
            c.logout()
        self.assert_serves_the_rest()

        self.force_resync("*")
        self.assertIsNotNone(unframe(omap(self.user, "mailboxes")["mbox/Work"]),
                             "the list entry was rebuilt")
        self.assert_clean()
        self.assert_all_mails_readable()
        c = self.dc.imap(self.user)
        try:
            self.assertEqual(select(c, "Work")[0], 3)
            got = uid_fetch(c, "1:3", "(BODY.PEEK[])")
            self.assertEqual(len(got), 3)
        finally:
            c.logout()


if __name__ == "__main__":
    unittest.main()
