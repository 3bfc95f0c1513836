"""A Python model of one user's mailboxes, and the IMAP operations of test_balancer.py
that change both the server (through a session) and the model, then the check that
what a client sees through a backend is what the model says."""

import imaplib
import re

from harness import (append, flags_of, ok, parse, parse_fetch, resp_code, sha256, status,
                     uid_fetch)

imaplib.Commands.setdefault("MOVE", ("SELECTED",))
STATUS_ITEMS = "MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ"


def name_of(value):
    return value.decode() if isinstance(value, bytes) else value


def uid_list(s):
    """An IMAP UID set as the server wrote it (b'3:4,7') -> [3, 4, 7], in its order."""
    out = []
    for part in name_of(s).split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            out += range(a, b + 1) if a <= b else range(a, b - 1, -1)
        else:
            out.append(int(part))
    return out


def uid_set(uids):
    return ",".join(str(u) for u in sorted(uids))


class Box:
    def __init__(self):
        self.uidvalidity = None  # learned from the first look
        self.uidnext = 1
        self.msgs = {}  # uid -> [set of flags, sha256 of the body]


class Model:
    """The state every backend must show: mailboxes, their mails and flags, and the
    subscriptions. What the server assigns (UIDVALIDITY, MODSEQs) is learned."""

    def __init__(self):
        self.boxes = {"INBOX": Box()}
        self.subs = set()
        self.dead_uidvalidities = {}  # name -> UIDVALIDITYs of deleted mailboxes
        self.highestmodseq = {}  # (name, uidvalidity) -> last HIGHESTMODSEQ seen


class Session:
    """An imaplib session through the balancer, with CONDSTORE enabled; `via` is the
    backend it reached."""

    def __init__(self, c, via):
        self.c = c
        self.via = via
        self.selected = None

    def select(self, box):
        if self.selected != box:
            ok(self.c.select(box))
            self.selected = box

    def unselect(self):
        # UNSELECT (RFC 3691), not CLOSE: CLOSE would expunge the \\Deleted mails.
        if self.selected is not None:
            ok(self.c.unselect())
            self.selected = None

    def close(self):
        try:
            self.c.logout()
        except Exception:  # noqa: BLE001 - a failed test may leave it broken
            pass


class Ops:
    """Operations on a session that keep `self.model` in step (a mixin for a TestCase)."""

    def create(self, s, name):
        ok(s.c.create(name))
        self.model.boxes[name] = Box()

    def delete(self, s, name):
        if s.selected == name:
            s.unselect()
        ok(s.c.delete(name))
        box = self.model.boxes.pop(name)
        if box.uidvalidity is not None:
            self.model.dead_uidvalidities.setdefault(name, set()).add(box.uidvalidity)

    def rename(self, s, old, new):
        if s.selected == old:
            s.unselect()
        ok(s.c.rename(old, new))
        self.model.boxes[new] = self.model.boxes.pop(old)

    def subscribe(self, s, name):
        ok(s.c.subscribe(name))
        self.model.subs.add(name)

    def unsubscribe(self, s, name):
        ok(s.c.unsubscribe(name))
        self.model.subs.discard(name)

    def append(self, s, box, body, flags=()):
        uidvalidity, uid = append(s.c, box, body, f"({' '.join(flags)})" if flags else None)
        b = self.model.boxes[box]
        if b.uidvalidity is not None:
            self.assertEqual(uidvalidity, b.uidvalidity, f"APPENDUID's UIDVALIDITY of {box}")
        self.assertEqual(uid, b.uidnext, f"APPENDUID of {box}: UIDNEXT was {b.uidnext}")
        b.uidnext = uid + 1
        b.msgs[uid] = [set(flags), sha256(body)]
        return uid

    def _copyuid(self, s, data, src, dst, uids):
        uidvalidity, src_set, dst_set = resp_code(s.c, data, "COPYUID")
        pairs = list(zip(uid_list(src_set), uid_list(dst_set)))
        self.assertEqual(sorted(u for u, _ in pairs), sorted(uids), "COPYUID source UIDs")
        b = self.model.boxes[dst]
        if b.uidvalidity is not None:
            self.assertEqual(int(uidvalidity), b.uidvalidity, f"COPYUID's UIDVALIDITY of {dst}")
        self.assertEqual(sorted(d for _, d in pairs),
                         list(range(b.uidnext, b.uidnext + len(pairs))), "COPYUID new UIDs")
        for u, d in pairs:
            flags, sha = self.model.boxes[src].msgs[u]
            b.msgs[d] = [set(flags), sha]
        b.uidnext += len(pairs)
        return dict(pairs)

    def copy(self, s, src, uids, dst):
        s.select(src)
        s.c.untagged_responses.pop("COPYUID", None)
        return self._copyuid(s, ok(s.c.uid("COPY", uid_set(uids), dst)), src, dst, uids)

    def move(self, s, src, uids, dst):
        s.select(src)
        s.c.untagged_responses.pop("COPYUID", None)
        got = self._copyuid(s, ok(s.c.uid("MOVE", uid_set(uids), dst)), src, dst, uids)
        for u in uids:
            del self.model.boxes[src].msgs[u]
        return got

    def store(self, s, box, uids, how, flags, unchangedsince=None):
        """UID STORE `how` (+FLAGS, -FLAGS, FLAGS) [UNCHANGEDSINCE]; returns the UIDs the
        server reported [MODIFIED] (left unchanged)."""
        s.select(box)
        mod = f"(UNCHANGEDSINCE {unchangedsince}) " if unchangedsince is not None else ""
        s.c.untagged_responses.pop("MODIFIED", None)
        ok(s.c.uid("STORE", uid_set(uids), f"{mod}{how}", f"({' '.join(flags)})"))
        got = s.c.untagged_responses.pop("MODIFIED", None)
        modified = set(uid_list(got[-1])) if got else set()
        msgs = self.model.boxes[box].msgs
        for u in uids:
            if u in modified:
                continue
            have = msgs[u][0]
            if how.startswith("+"):
                have |= set(flags)
            elif how.startswith("-"):
                have -= set(flags)
            else:
                msgs[u][0] = set(flags)
        return modified

    def expunge(self, s, box):
        s.select(box)
        ok(s.c.expunge())
        msgs = self.model.boxes[box].msgs
        for u in [u for u, (f, _) in msgs.items() if "\\Deleted" in f]:
            del msgs[u]

    def uid_expunge(self, s, box, uids):
        s.select(box)
        ok(s.c.uid("EXPUNGE", uid_set(uids)))
        msgs = self.model.boxes[box].msgs
        for u in uids:
            if "\\Deleted" in msgs[u][0]:
                del msgs[u]

    def modseqs(self, s, box, uids):
        s.select(box)
        s.c.untagged_responses.pop("FETCH", None)
        return {u: int(v["MODSEQ"][0]) for u, v in
                uid_fetch(s.c, uid_set(uids), "(MODSEQ)").items()}


def view(c):
    """What a client sees of its mailboxes through session `c` (which it leaves with
    nothing selected): LIST, LSUB, and per mailbox STATUS and its mails' UIDs, flags
    (without \\Recent), MODSEQs and bodies' sha256."""
    listed = {}
    for line in ok(c.list('""', "*")):
        attrs, _, name = parse(line)
        # \Marked and \Unmarked (RFC 3501 7.2.2) say "new mail since this server last
        # looked": per backend, like \Recent.
        listed[name_of(name)] = sorted(a.lower() for a in attrs
                                       if a.lower() not in ("\\marked", "\\unmarked"))
    lsub = {name_of(parse(line)[2]) for line in ok(c.lsub('""', "*")) if line}
    boxes = {}
    for name, attrs in listed.items():
        if "\\noselect" in attrs or "\\nonexistent" in attrs:
            continue
        st = status(c, name, STATUS_ITEMS)
        ok(c.select(name, readonly=True))
        msgs = {}
        if st["MESSAGES"]:
            for uid, v in uid_fetch(c, "1:*", "(FLAGS MODSEQ BODY.PEEK[])").items():
                msgs[uid] = (sorted(flags_of(v["FLAGS"])), int(v["MODSEQ"][0]),
                             sha256(v["BODY[]"]))
        ok(c.close())
        boxes[name] = {"status": st, "msgs": msgs}
    return {"list": listed, "lsub": lsub, "boxes": boxes}


def check_model(test, v, model, where):
    """Fails `test` unless view `v` (through `where`) shows what `model` holds; learns
    UIDVALIDITYs and checks a re-created name got a new one, and HIGHESTMODSEQ never
    goes back."""
    test.assertEqual(sorted(v["list"]), sorted(model.boxes), f"{where}: LIST")
    test.assertEqual(v["lsub"], model.subs, f"{where}: LSUB")
    for name, box in model.boxes.items():
        got = v["boxes"][name]
        st = got["status"]
        uidvalidity = st["UIDVALIDITY"]
        if box.uidvalidity is None:
            test.assertNotIn(uidvalidity, model.dead_uidvalidities.get(name, set()),
                             f"{where}: {name} re-created with a deleted mailbox's UIDVALIDITY")
            box.uidvalidity = uidvalidity
        want = {
            "MESSAGES": len(box.msgs), "UIDNEXT": box.uidnext, "UIDVALIDITY": box.uidvalidity,
            "UNSEEN": sum(1 for f, _ in box.msgs.values() if "\\Seen" not in f),
        }
        test.assertEqual({k: st[k] for k in want}, want, f"{where}: STATUS {name}")
        test.assertEqual({u: (sorted(f), sha) for u, (f, sha) in box.msgs.items()},
                         {u: (f, sha) for u, (f, _, sha) in got["msgs"].items()},
                         f"{where}: {name}: UIDs, flags, bodies")
        modseqs = [m for _, m, _ in got["msgs"].values()]
        test.assertGreaterEqual(st["HIGHESTMODSEQ"], max(modseqs, default=0),
                                f"{where}: {name}: HIGHESTMODSEQ below a mail's MODSEQ")
        key = (name, uidvalidity)
        test.assertGreaterEqual(st["HIGHESTMODSEQ"], model.highestmodseq.get(key, 0),
                                f"{where}: {name}: HIGHESTMODSEQ went back")
        model.highestmodseq[key] = st["HIGHESTMODSEQ"]


def search(c, *criteria):
    """UID SEARCH -> sorted UIDs (without the (MODSEQ n) that CONDSTORE may add)."""
    data = b" ".join(d for d in ok(c.uid("SEARCH", *criteria)) if d)
    return sorted(int(x) for x in re.sub(rb"\(MODSEQ \d+\)", b"", data).split())


def fetch_flags(c, uids):
    """UID FETCH (FLAGS) of `uids` (a list or an IMAP set) -> {uid: flags without \\Recent}."""
    uids = uids if isinstance(uids, str) else uid_set(uids)
    # imaplib would hand back an earlier command's unsolicited FETCHes (without UIDs) too.
    c.untagged_responses.pop("FETCH", None)
    return {u: flags_of(v["FLAGS"]) for u, v in parse_fetch(
        ok(c.uid("FETCH", uids, "(FLAGS)"))).items()}
