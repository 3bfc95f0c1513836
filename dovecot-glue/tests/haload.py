"""Mail load over two Dovecot backends for the multi-host failure tests (test_ha.py).

`Load` runs LMTP senders and IMAP sessions against backends "a" and "b" that share one
user's mailbox, and records what a mail admin would count:

- Senders: each mail is unique (Message-ID `<ha-SEQ.RUN@ha.example.org>`, Subject
  `ha SEQ`); the first attempt goes to a, b, a, ... by sequence number. A 250 makes
  the mail acknowledged. A 4xx, or a connection that broke (or was refused) without a
  reply, makes the sender retry the SAME BYTES on the other backend (after a short pause
  for a 4xx, at once for no reply), as an MTA does, until it gets a 250 (a 5xx is an
  error and ends the mail).
- IMAP sessions, each with a home backend: SELECT INBOX, then in turn NOOP, UID FETCH
  of the newest mails (FLAGS, Message-ID), UID STORE +FLAGS (\\Flagged) on a mail it
  knows, and UID FETCH BODY.PEEK[] of a mail it knows (checked against its
  Message-ID). A session whose connection breaks logs in to the other backend and
  checks that what it knew (UIDs, Message-IDs, the flags it set) is there.
- Every operation is timed: `max_stall` is the longest time one operation (an LMTP
  transaction from connect to its final reply, or one IMAP command) waited.
  `longest_gap()` is the other view: the longest time without any acknowledged delivery.
- A refusal is an LMTP 4xx or an IMAP NO (the plugin answers NO [UNAVAILABLE], and
  NO [PARSE] ... temporarily unavailable for a FETCH, see dovecot-glue/README.md).
"""

import imaplib
import re
import smtplib
import threading
import time

from harness import PASSWORD, crlf, parse_fetch, sha256

SENDER = "sender@example.org"
MSGID = re.compile(rb"<ha-(\d+)\.")
# Pause between one session's IMAP commands, and before a sender's retry, seconds.
IMAP_PAUSE = 0.1
RETRY_PAUSE = 0.5
# How long the senders may go on after the load stopped to get their last mails
# acknowledged, seconds.
DRAIN = 120


def seq_of(header):
    """The sequence number in a Message-ID header (bytes), or None."""
    m = MSGID.search(header or b"")
    return int(m.group(1)) if m else None


class Load:
    """LMTP senders and IMAP sessions over `backends` ({"a": Instance, "b": Instance})
    for `user`; `op_timeout`: socket timeout of every client, seconds."""

    def __init__(self, backends, user, run, senders, sessions, op_timeout):
        self.backends = backends
        self.user = user
        self.run = run
        self.op_timeout = op_timeout
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.next_seq = 0
        self.acked = set()
        self.ack_times = []  # time.monotonic() of each 250
        self.pending = set()
        self.refused_lmtp = 0
        self.refused_imap = 0
        self.broken = {"a": 0, "b": 0}  # connections refused, or broken without a reply
        # LMTP transactions whose connection broke after it was made, without a final
        # reply: the ambiguous case (the mail may have been stored)
        self.lmtp_no_reply = {"a": 0, "b": 0}
        self.no_reply_seqs = set()
        self.may_break = set()  # backends whose IMAP sessions may break (killed)
        self.reconnects = []  # (from, to) of IMAP sessions that moved
        self.errors = []
        self.max_stall = 0.0
        self.max_stall_op = ""
        self.max_stall_at = 0.0  # time.monotonic() when that operation started
        self.uids = {}  # UID -> sequence number, as any session saw it
        self.flagged = set()  # UIDs whose +FLAGS (\Flagged) was answered OK
        self.threads = [threading.Thread(target=self.sender, args=(i,), daemon=True)
                        for i in range(senders)]
        self.sessions = [Session(self, home) for _ in range(sessions) for home in ("a", "b")]
        self.threads += [threading.Thread(target=s.loop, daemon=True) for s in self.sessions]

    # --- bookkeeping ------------------------------------------------------------------

    def error(self, text):
        with self.lock:
            self.errors.append(text)

    def timed(self, what, call):
        """Runs call() and records how long it took in max_stall."""
        start = time.monotonic()
        try:
            return call()
        finally:
            took = time.monotonic() - start
            with self.lock:
                if took > self.max_stall:
                    self.max_stall, self.max_stall_op = took, what
                    self.max_stall_at = start

    def saw(self, uid, seq, where):
        """Records that `where` showed UID `uid` as mail `seq`; a UID must never change."""
        with self.lock:
            old = self.uids.setdefault(uid, seq)
        if old != seq:
            self.error(f"{where}: UID {uid} is mail {seq}, earlier seen as mail {old}")

    def other(self, name):
        return "b" if name == "a" else "a"

    # --- LMTP -----------------------------------------------------------------------

    def mail(self, seq):
        return crlf(f"From: Sender <{SENDER}>\nTo: {self.user}@example.net\n"
                    f"Subject: ha {seq}\nDate: Tue, 01 Dec 2026 06:00:00 +0000\n"
                    f"Message-ID: <ha-{seq}.{self.run}@ha.example.org>\n"
                    f"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n"
                    f"Mail {seq} of run {self.run}.\n" + "A line of body text.\n" * (seq % 7))

    def lmtp_once(self, name, mail):
        """One delivery attempt to backend `name`: the final reply code, 0 when the
        connection was refused, None when it broke without a final reply."""
        inst = self.backends[name]
        lmtp = None
        code = None
        try:
            try:
                lmtp = smtplib.LMTP("127.0.0.1", inst.lmtp_port, timeout=self.op_timeout)
            except ConnectionRefusedError:
                return 0
            lmtp.sendmail(SENDER, [self.user], mail)
            code = 250
        except smtplib.SMTPRecipientsRefused as e:
            code = e.recipients[self.user][0]
        except smtplib.SMTPResponseException as e:
            code = e.smtp_code
        except (smtplib.SMTPServerDisconnected, OSError):
            code = None
        finally:
            if lmtp is not None:
                try:
                    lmtp.quit()
                except (smtplib.SMTPException, OSError):
                    pass  # the reply (if any) is what counts
        return code

    def deliver(self, seq):
        mail = self.mail(seq)
        name = "ab"[seq % 2]
        deadline = None
        while True:
            code = self.timed(f"LMTP to {name}", lambda n=name: self.lmtp_once(n, mail))
            if code == 250:
                with self.lock:
                    self.acked.add(seq)
                    self.ack_times.append(time.monotonic())
                    self.pending.discard(seq)
                return
            if code is not None and code >= 500:
                self.error(f"LMTP {code} from {name} for mail {seq}")
                return
            with self.lock:
                if code is None:
                    self.broken[name] += 1
                    self.lmtp_no_reply[name] += 1
                    self.no_reply_seqs.add(seq)
                elif code == 0:
                    self.broken[name] += 1
                else:
                    self.refused_lmtp += 1
            if self.stop.is_set():
                deadline = deadline or time.monotonic() + DRAIN
                if time.monotonic() > deadline:
                    self.error(f"mail {seq} not acknowledged {DRAIN} s after the load stopped")
                    return
            name = self.other(name)
            # No connection or no reply: the other backend at once (as an MTA tries its
            # next host), a 4xx after a pause.
            time.sleep(RETRY_PAUSE if code else 0.01)

    def sender(self, _):
        while not self.stop.is_set():
            with self.lock:
                self.next_seq += 1
                seq = self.next_seq
                self.pending.add(seq)
            self.deliver(seq)

    # --- running --------------------------------------------------------------------

    def start(self):
        self.started = time.monotonic()
        for t in self.threads:
            t.start()

    def longest_gap(self):
        """The longest time between the start and the first 250, or between two 250s,
        until the load stopped (seconds)."""
        times = sorted([self.started] + [t for t in self.ack_times if t <= self.stopped])
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)

    def finish(self):
        """Stops the load: senders finish their mail (retrying until acknowledged),
        sessions their command; then every session compares its view with a final sync."""
        self.stopped = time.monotonic()
        self.stop.set()
        for t in self.threads:
            t.join(DRAIN + 2 * self.op_timeout)
            if t.is_alive():
                self.error(f"thread {t.name} still busy after the load stopped")
        return [s.final_view() for s in self.sessions]


class Session:
    """One IMAP session of the load, on backend `home` until its connection breaks."""

    def __init__(self, load, home):
        self.load = load
        self.backend = home
        self.c = None
        self.view = {}  # UID -> sequence number
        self.my_flags = set()
        self.turn = 0

    def connect(self, name):
        """Logs in to backend `name` and selects INBOX; True when that worked (a refusal
        counts as one)."""
        inst = self.load.backends[name]

        def login():
            try:
                c = imaplib.IMAP4("127.0.0.1", inst.imap_port, timeout=self.load.op_timeout)
                c.login(self.load.user, PASSWORD)
                typ, data = c.select("INBOX")
            except (imaplib.IMAP4.abort, OSError) as e:
                return "BROKEN", e
            except imaplib.IMAP4.error as e:  # LOGIN answered NO
                return "NO", e
            if typ == "OK":
                self.c = c
            else:
                c.logout()
            return typ, data

        typ, _ = self.load.timed(f"IMAP login+SELECT on {name}", login)
        if typ == "NO":
            with self.load.lock:
                self.load.refused_imap += 1
        return typ == "OK"

    def command(self, what, call):
        """Runs an IMAP command; returns its data when OK, None when refused (NO)."""
        typ, data = self.load.timed(f"IMAP {what} on {self.backend}", call)
        if typ == "OK":
            return data
        if typ == "NO":
            with self.load.lock:
                self.load.refused_imap += 1
            return None
        self.load.error(f"IMAP {what} on {self.backend}: {typ} {data!r}")
        return None

    def learn(self, fetched, where):
        """Records the mails of a FETCH response; returns those with a body part. (A
        flag change made by another session comes as an extra FETCH of FLAGS only.)"""
        fetched = {uid: items for uid, items in fetched.items()
                   if any(k.startswith("BODY[") for k in items)}
        for uid, items in fetched.items():
            hdr = next(v for k, v in items.items() if k.startswith("BODY["))
            seq = seq_of(hdr)
            if seq is None:
                self.load.error(f"{where}: UID {uid} has no test Message-ID: {items!r}")
                continue
            self.view[uid] = seq
            self.load.saw(uid, seq, where)
        return fetched

    def step(self):
        c = self.c
        self.turn += 1
        known = sorted(self.view)
        pick = known[(self.turn * 7919) % len(known)] if known else None
        kind = self.turn % 4
        if kind == 0 or pick is None:
            self.command("NOOP", c.noop)
            c.untagged_responses.clear()
            newest = max(known, default=0)
            data = self.command("UID FETCH new", lambda: c.uid(
                "FETCH", f"{max(1, newest - 3)}:*",
                "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"))
            if data:
                self.learn(parse_fetch(data), f"session on {self.backend}")
        elif kind == 1:
            self.command("NOOP", c.noop)
            c.untagged_responses.clear()
        elif kind == 2:
            if self.command("UID STORE", lambda: c.uid(
                    "STORE", str(pick), "+FLAGS.SILENT", "(\\Flagged)")) is not None:
                self.my_flags.add(pick)
                with self.load.lock:
                    self.load.flagged.add(pick)
        else:
            data = self.command("UID FETCH body",
                                lambda: c.uid("FETCH", str(pick), "(BODY.PEEK[])"))
            if data:
                body = parse_fetch(data).get(pick, {}).get("BODY[]")
                if seq_of(body) != self.view[pick]:
                    self.load.error(f"session on {self.backend}: body of UID {pick} is not "
                                    f"mail {self.view[pick]}")

    def moved(self):
        """After a broken connection: log in to the other backend and check that what
        this session knew is there (same UIDs and mails, its flags set)."""
        old = self.backend
        self.backend = self.load.other(old)
        self.c = None
        with self.load.lock:
            self.load.reconnects.append((old, self.backend))
        deadline = time.monotonic() + 2 * self.load.op_timeout
        while not self.connect(self.backend):
            if time.monotonic() > deadline:
                self.load.error(f"session moved from {old}: no session on {self.backend}")
                return
            time.sleep(IMAP_PAUSE)
        got = self.fetch_all(f"session moved from {old} to {self.backend}")
        if got is None:
            return
        for uid, seq in self.view.items():
            if got.get(uid, (None,))[0] != seq:
                self.load.error(f"session moved from {old}: UID {uid} was mail {seq}, "
                                f"now {got.get(uid)}")
        for uid in self.my_flags:
            if "\\Flagged" not in got.get(uid, (None, ()))[1]:
                self.load.error(f"session moved from {old}: UID {uid} lost \\Flagged")

    def fetch_all(self, where, bodies=False):
        """{UID: (sequence number, flags)} of the whole mailbox in this session; with
        `bodies`, {UID: (sequence number, flags, sha256 of BODY[])}."""
        c = self.c
        part = "BODY.PEEK[]" if bodies else "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"
        data = self.command("UID FETCH 1:*", lambda: c.uid("FETCH", "1:*", f"(FLAGS {part})"))
        if data is None:
            return None
        out = {}
        for uid, items in self.learn(parse_fetch(data), where).items():
            if uid not in self.view:
                continue
            flags = frozenset(f for f in items["FLAGS"] if f.lower() != "\\recent")
            out[uid] = (self.view[uid], flags, sha256(items["BODY[]"])) if bodies else (
                self.view[uid], flags)
        return out

    def loop(self):
        try:
            if not self.connect(self.backend):
                self.load.error(f"IMAP session on {self.backend}: no login before the fault")
            while not self.load.stop.is_set() and self.c is not None:
                try:
                    self.step()
                except (imaplib.IMAP4.abort, OSError) as e:
                    with self.load.lock:
                        self.load.broken[self.backend] += 1
                    if self.backend not in self.load.may_break:
                        self.load.error(f"IMAP session on {self.backend} broke: {e!r}")
                    self.moved()
                time.sleep(IMAP_PAUSE)
        except Exception as e:  # noqa: BLE001 - reported as a test failure
            self.load.error(f"IMAP session on {self.backend} failed: {e!r}")

    def final_view(self):
        """The session's view after a NOOP once the load has stopped: (backend,
        {UID: (sequence number, flags, sha256 of BODY[])}), or (backend, None) when it
        has no session."""
        if self.c is None:
            return self.backend, None
        try:
            self.command("NOOP", self.c.noop)
            view = self.fetch_all(f"final view of a session on {self.backend}", bodies=True)
            self.c.logout()
        except (imaplib.IMAP4.error, OSError) as e:
            self.load.error(f"final view of a session on {self.backend}: {e!r}")
            view = None
        return self.backend, view
