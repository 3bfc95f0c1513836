"""Shared machinery for the Dovecot test suite (stdlib only).

Dovecot instances are started with ci/dovecot-start.sh in one temporary directory
per run and stopped at the end. `instance("a")` starts an instance on first use;
each name has its own directory and port base (a: P, b: P+10, c: P+20, outage: P+30, dict: P+40, dict2: P+50, limits: P+60, fetch: P+70, opcounts: P+80, acl_a: P+90, acl_b: P+100,
idle_a: P+120, idle_b: P+130, ha_a: P+140, ha_b: P+150, crypt: P+170, zlib: P+180, zlib_read: P+190,
settings_bad: P+200, settings_value: P+210, settings_userdb: P+220, log: P+230 (its stats HTTP
listener on P+233), log_debug: P+235, openmetrics: P+240 (its stats HTTP listener on P+245), ns_a: P+250,
ns_b: P+260, ns_caps: P+270 (test_namespaces.py registers them);
P from DOVECOT_TEST_PORT_BASE); `balancer()` listens on P+110 in front of a and b: a run uses
P..P+272 (P+140..P+159 only with the multi-host tests of test_ha.py, which only
ci/ha-test.sh runs). Environment:
  DOVECOT_TEST_DRIVER      rados (default) or sdbox
  DOVECOT_TEST_PORT_BASE   first port (default 24100)
  DOVECOT_TEST_PLUGIN_DIR  passed to ci/dovecot-start.sh --plugin-dir
  RADOS_MAIL_DATA_POOL     rados: passed to ci/dovecot-start.sh --data-pool (rados_data_pool:
                           bodies in that pool; ci/ceph-start.sh --osds 3 exports its
                           erasure-coded pool); read when an instance starts
  DOVECOT_TEST_KEEP=1      keep the temporary directory (it is kept anyway on failure)
"""

import glob
import hashlib
import imaplib
import json
import os
import re
import secrets
import shutil
import smtplib
import socket
import struct
import subprocess
import tempfile
import time
import unittest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DRIVER = os.environ.get("DOVECOT_TEST_DRIVER", "rados")
PORT_BASE = int(os.environ.get("DOVECOT_TEST_PORT_BASE", "24100"))
PLUGIN_DIR = os.environ.get("DOVECOT_TEST_PLUGIN_DIR")
PASSWORD = "pass"
# A log line with one of these fails the run.
BAD_LOG = re.compile(r"Panic:|Fatal:|Error:")
PORT_OFFSETS = {"a": 0, "b": 10, "c": 20, "outage": 30, "dict": 40, "dict2": 50, "limits": 60, "fetch": 70, "opcounts": 80,
                "acl_a": 90, "acl_b": 100, "idle_a": 120, "idle_b": 130, "ha_a": 140, "ha_b": 150,
                # test_mail_plugins.py: mail_crypt, zlib saving, zlib reading only
                "crypt": 170, "zlib": 180, "zlib_read": 190,
                # test_settings.py
                "settings_bad": 200, "settings_value": 210, "settings_userdb": 220,
                # test_log.py, test_openmetrics.py (stats HTTP listeners on +3 and +5)
                "log": 230, "log_debug": 235, "openmetrics": 240,
                # test_format.py
                "format_newer": 280,
                # test_bounded_objects.py
                "bounds": 300}
# The round-robin balancer of `balancer()` (test_balancer.py) listens on P+110.
BALANCER_PORT_OFFSET = 110
# The rados driver's pools: the index pool, and the pool of mail bodies (rados_data_pool,
# given to every instance when RADOS_MAIL_DATA_POOL is set; else the index pool). Tests
# that read or damage body objects directly look for them in DATA_POOL.
POOL = os.environ.get("RADOS_MAIL_POOL", "mail")
DATA_POOL = os.environ.get("RADOS_MAIL_DATA_POOL") or POOL
# Socket timeout for clients: generous, the 50 MiB test moves a lot of data.
TIMEOUT = 300

if DRIVER not in ("rados", "sdbox"):
    raise SystemExit(f"DOVECOT_TEST_DRIVER must be rados or sdbox, not {DRIVER!r}")


class Instance:
    """One Dovecot started by ci/dovecot-start.sh in its own directory."""

    def __init__(self, name, root, home_root=None, extra_conf=None, userdb_file=None):
        self.name = name
        self.extra_conf = extra_conf
        self.userdb_file = userdb_file
        self.dir = os.path.join(root, name)
        self.port_base = PORT_BASE + PORT_OFFSETS[name]
        self.home_root = home_root
        self.env = {}
        self.running = False
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log = os.path.join(self.dir, "dovecot.log")

    def start(self):
        cmd = [os.path.join(REPO_ROOT, "ci", "dovecot-start.sh"), "--driver", DRIVER,
               "--port-base", str(self.port_base)]
        if PLUGIN_DIR:
            cmd += ["--plugin-dir", PLUGIN_DIR]
        data_pool = os.environ.get("RADOS_MAIL_DATA_POOL")
        if DRIVER == "rados" and data_pool:
            cmd += ["--data-pool", data_pool]
        if self.home_root:
            cmd += ["--home-root", self.home_root]
        if self.extra_conf:
            cmd += ["--extra-conf", self.extra_conf]
        if self.userdb_file:
            cmd += ["--userdb-file", self.userdb_file]
        cmd.append(self.dir)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
        with open(os.path.join(self.dir, "env.sh")) as f:
            for line in f:
                m = re.match(r"export (\w+)=(.*)$", line.strip())
                if m:
                    self.env[m.group(1)] = m.group(2)
        self.conf = self.env["DOVECOT_CONF"]
        self.log = self.env["DOVECOT_LOG"]
        self.imap_port = int(self.env["DOVECOT_IMAP_PORT"])
        self.lmtp_port = int(self.env["DOVECOT_LMTP_PORT"])
        self.pop3_port = int(self.env["DOVECOT_POP3_PORT"])
        self.running = True

    def stop(self):
        if not self.running:
            return
        self.running = False
        proc = subprocess.run([os.path.join(REPO_ROOT, "ci", "dovecot-stop.sh"), self.dir],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"dovecot-stop.sh {self.dir} failed:\n{proc.stderr}")

    def log_size(self):
        try:
            return os.path.getsize(self.log)
        except OSError:
            return 0

    def log_text(self, since=0):
        """The log written after byte offset `since` (text)."""
        try:
            with open(self.log, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_for_log(self, since, text, timeout=15):
        """Waits until the log written after `since` contains `text` (a process may log
        after the client saw its answer: a line expected by this test must not land in
        the next one's); fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while text not in self.log_text(since):
            if time.monotonic() > deadline:
                raise AssertionError(f"[{self.name}] no log line with {text!r} within {timeout} s")
            time.sleep(0.05)

    def bad_log_lines(self, since):
        """Lines with Panic:/Fatal:/Error: written after byte offset `since`."""
        try:
            with open(self.log, "rb") as f:
                f.seek(since)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        return [f"[{self.name}] {line}" for line in text.splitlines() if BAD_LOG.search(line)]

    # --- clients -------------------------------------------------------------

    def imap(self, user):
        c = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=TIMEOUT)
        c.login(user, PASSWORD)
        return c

    def deliver(self, user, message, sender="sender@example.org"):
        """Delivers `message` (bytes) to `user` over LMTP; fails unless accepted."""
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=TIMEOUT) as lmtp:
            refused = lmtp.sendmail(sender, [user], message)
        if refused:
            raise AssertionError(f"LMTP refused {user}: {refused}")

    def doveadm(self, user, *args, stdin=None):
        """Runs `doveadm -c CONF CMD -u USER ARGS`; returns stdout (bytes).

        args[0] may be a two-word command ("mailbox create"). Fails on a non-zero
        exit status or on an error line on stderr."""
        words = args[0].split()
        cmd = ["doveadm", "-c", self.conf, *words, "-u", user, *args[1:]]
        return run_doveadm(cmd, stdin)

    def doveadm_fmt(self, fmt, user, *args):
        words = args[0].split()
        cmd = ["doveadm", "-c", self.conf, "-f", fmt, *words, "-u", user, *args[1:]]
        return run_doveadm(cmd, None)


def run_doveadm(cmd, stdin):
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=TIMEOUT)
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{err}")
    bad = [line for line in err.splitlines() if BAD_LOG.search(line)]
    if bad:
        raise AssertionError(f"{' '.join(cmd)} printed errors:\n" + "\n".join(bad))
    return proc.stdout


_root = None
_instances = {}
# Log offsets already checked, so the final check only looks at what is new.
_checked = {}


def root():
    global _root
    if _root is None:
        _root = tempfile.mkdtemp(prefix="dovecot-test-")
        # mkdtemp makes it 0700: the mail uid (nobody) must reach the homes inside.
        os.chmod(_root, 0o711)
    return _root


def instance(name, home_root=None, extra_conf=None, userdb_file=None):
    """The running instance `name`, started on first use (`extra_conf`: a file that
    dovecot.conf includes at its end; `userdb_file`: a passwd-file userdb consulted
    before the static one)."""
    inst = _instances.get(name)
    if inst is None:
        inst = Instance(name, root(), home_root, extra_conf, userdb_file)
        _instances[name] = inst
    if not inst.running:
        inst.start()
    return inst


def instance_with_conf(name, text, home_root=None):
    """The running instance `name` whose dovecot.conf ends with `text` (kept in the run's
    directory as <name>-extra.conf); `home_root` as for instance()."""
    path = os.path.join(root(), f"{name}-extra.conf")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
    return instance(name, home_root=home_root, extra_conf=path)


def instance_dir(name):
    """The directory of instance `name` (whether started or not)."""
    return os.path.join(root(), name)


def shared_pair_with_conf(name_a, name_b, conf):
    """Instances name_a and name_b sharing the users' mail as shared_pair()'s do, both
    with dovecot.conf ending with `conf(name)` (a function of the instance's name)."""
    a = instance_with_conf(name_a, conf(name_a))
    home = os.path.join(a.dir, "home") if DRIVER == "sdbox" else None
    return a, instance_with_conf(name_b, conf(name_b), home_root=home)


def shared_pair():
    """Instances a and b sharing the users' mail: for rados through the cluster (same
    namespace prefix), for sdbox by giving b the home directories of a."""
    a = instance("a")
    home = os.path.join(a.dir, "home") if DRIVER == "sdbox" else None
    return a, instance("b", home_root=home)


_balancer = None


def balancer():
    """The round-robin balancer (balancer.py) in front of shared_pair()'s a and b, on
    port P+110: each new connection goes to a, b, a, ... unless pinned (`pin("b")`)."""
    global _balancer
    if _balancer is None:
        from balancer import Balancer

        a, b = shared_pair()
        _balancer = Balancer({"a": ("127.0.0.1", a.imap_port), "b": ("127.0.0.1", b.imap_port)},
                             PORT_BASE + BALANCER_PORT_OFFSET)
    return _balancer


def shutdown(success):
    """Stops every instance; returns the log error lines written since the last check."""
    global _balancer
    bad = []
    if _balancer is not None:
        _balancer.close()
        _balancer = None
    for inst in _instances.values():
        try:
            inst.stop()
        except Exception as e:  # noqa: BLE001 - report and go on stopping the others
            bad.append(f"[{inst.name}] stop failed: {e}")
        bad += inst.bad_log_lines(_checked.get(inst.name, 0))
    if _root is not None:
        if success and not bad and os.environ.get("DOVECOT_TEST_KEEP") != "1":
            shutil.rmtree(_root, ignore_errors=True)
        else:
            print(f"test directory kept: {_root}")
    return bad


def new_user(test):
    """A fresh user name per test: t-<test method>-<random>."""
    name = test._testMethodName.removeprefix("test_").replace("_", "-")[:30]
    return f"t-{name}-{secrets.token_hex(4)}"


class DovecotTestCase(unittest.TestCase):
    """Fails a test whose run made Dovecot log a Panic/Fatal/Error line."""

    # Tests that expect errors in the log list regexes of the lines they allow here.
    allowed_log_errors = ()

    def setUp(self):
        # From where the previous test stopped checking: lines written in between (by
        # a setUpClass, say) are checked too, and attributed to this test.
        self._log_marks = dict(_checked)
        self.user = new_user(self)

    def tearDown(self):
        bad = []
        for name, inst in _instances.items():
            since = self._log_marks.get(name, 0)
            lines = inst.bad_log_lines(since)
            _checked[name] = max(_checked.get(name, 0), inst.log_size())
            bad += [line for line in lines
                    if not any(re.search(p, line) for p in self.allowed_log_errors)]
        if bad:
            self.fail("Dovecot logged errors during (or just before) this test:\n" +
                      "\n".join(bad))


class SessionTestCase(DovecotTestCase):
    """A test with instance a (`self.dc`) and an IMAP session of its fresh user
    (`self.c`), logged out after the test."""

    @classmethod
    def setUpClass(cls):
        cls.dc = instance("a")

    def setUp(self):
        super().setUp()
        self.c = self.dc.imap(self.user)

    def tearDown(self):
        try:
            self.c.logout()
        except Exception:  # noqa: BLE001 - a failed test may leave it broken
            pass
        super().tearDown()


# --- IMAP response parsing ----------------------------------------------------------

class _Parser:
    """Parses IMAP data (atoms, quoted strings, literals, lists, NIL).

    Atoms come back as str; quoted strings and literals as bytes; NIL as None;
    lists as Python lists. An atom keeps a [...] section and a <...> origin, so
    `BODY[HEADER.FIELDS (SUBJECT)]<0>` is one atom."""

    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def skip_ws(self):
        while self.pos < len(self.buf) and self.buf[self.pos] in b" \r\n":
            self.pos += 1

    def values(self):
        out = []
        while True:
            self.skip_ws()
            if self.pos >= len(self.buf):
                return out
            out.append(self.value())

    def value(self):
        self.skip_ws()
        b = self.buf
        c = b[self.pos:self.pos + 1]
        if c == b"(":
            self.pos += 1
            items = []
            while True:
                self.skip_ws()
                if b[self.pos:self.pos + 1] == b")":
                    self.pos += 1
                    return items
                if self.pos >= len(b):
                    raise ValueError("unterminated list")
                items.append(self.value())
        if c == b'"':
            self.pos += 1
            out = bytearray()
            while True:
                if self.pos >= len(b):
                    raise ValueError("unterminated string")
                ch = b[self.pos:self.pos + 1]
                self.pos += 1
                if ch == b'"':
                    return bytes(out)
                if ch == b"\\":
                    ch = b[self.pos:self.pos + 1]
                    self.pos += 1
                out += ch
        if c == b"{":
            end = b.index(b"}", self.pos)
            n = int(b[self.pos + 1:end].rstrip(b"+"))
            start = end + 3  # "}\r\n"
            self.pos = start + n
            return b[start:start + n]
        start = self.pos
        depth = 0
        while self.pos < len(b):
            ch = b[self.pos:self.pos + 1]
            if ch in b"[<":
                depth += 1
            elif ch in b"]>":
                depth -= 1
            elif depth == 0 and ch in b" ()\r\n":
                break
            self.pos += 1
        atom = b[start:self.pos].decode("utf-8", "surrogateescape")
        if atom == "":
            raise ValueError(f"unexpected {b[self.pos:self.pos + 20]!r}")
        return None if atom.upper() == "NIL" else atom


def wire(data):
    """imaplib's response data (lines and (line, literal) tuples) back to wire form."""
    out = bytearray()
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):
            out += item[0] + b"\r\n" + item[1]
        else:
            out += item + b"\r\n"
    return bytes(out)


def parse(data):
    if isinstance(data, bytes):
        data = [data]
    return _Parser(wire(data)).values()


def parse_fetch(data):
    """FETCH response data -> {key: {ITEM: value}}, keyed by UID when present, else by
    sequence number. ITEM names are upper-cased (e.g. 'BODY[]<10>', 'RFC822.SIZE')."""
    vals = parse(data)
    out = {}
    for i in range(0, len(vals) - 1, 2):
        seq, atts = vals[i], vals[i + 1]
        d = {}
        for j in range(0, len(atts), 2):
            d[atts[j].upper()] = atts[j + 1]
        key = int(d["UID"]) if "UID" in d else int(seq)
        out.setdefault(key, {}).update(d)
    return out


def ok(result):
    typ, data = result
    if typ != "OK":
        raise AssertionError(f"IMAP command failed: {typ} {data!r}")
    return data


def uid_fetch(c, uids, items):
    return parse_fetch(ok(c.uid("FETCH", uids, items)))


def uid_search(c, *criteria):
    data = ok(c.uid("SEARCH", *criteria))
    return sorted(int(x) for x in b" ".join(d for d in data if d).split())


def resp_code(c, data, name):
    """Arguments of response code [NAME ...] from tagged text `data`, else from the
    untagged OK responses; a list of str."""
    for d in data or []:
        if isinstance(d, bytes):
            m = re.search(rb"\[" + name.encode() + rb" ([^\]]*)\]", d)
            if m:
                return m.group(1).decode().split()
    got = c.untagged_responses.pop(name, None)
    if got:
        return got[-1].decode().split()
    raise AssertionError(f"no [{name}] response code in {data!r}")


def select(c, mailbox="INBOX"):
    """SELECT; returns (number of messages, UIDVALIDITY)."""
    n = int(ok(c.select(mailbox))[0])
    uv = int(c.untagged_responses.get("UIDVALIDITY", [b"0"])[-1])
    return n, uv


def status(c, mailbox, items):
    data = ok(c.status(mailbox, f"({items})"))
    vals = parse(data)
    atts = vals[1]
    return {atts[i].upper(): int(atts[i + 1]) for i in range(0, len(atts), 2)}


def append(c, mailbox, message, flags=None):
    """APPEND; returns (uidvalidity, uid) from APPENDUID."""
    data = ok(c.append(mailbox, flags, None, message))
    uv, uid = resp_code(c, data, "APPENDUID")
    return int(uv), int(uid)


def crlf(text):
    """Test mail text (str with \\n line ends) as CRLF bytes."""
    return text.replace("\n", "\r\n").encode("utf-8")


def make_mail(subject, body="Hello.\n", frm="Alice Example <alice@example.org>",
              to="bob@example.net", extra=""):
    msgid = f"<{secrets.token_hex(8)}@example.org>"
    return crlf(
        f"From: {frm}\n"
        f"To: {to}\n"
        f"Subject: {subject}\n"
        f"Date: Mon, 02 Mar 2026 10:11:12 +0100\n"
        f"Message-ID: {msgid}\n"
        f"{extra}"
        f"MIME-Version: 1.0\n"
        f"Content-Type: text/plain; charset=utf-8\n"
        f"Content-Transfer-Encoding: 8bit\n"
        f"\n"
        f"{body}"
    )


# --- the cluster's OSD op counters (`perf dump osd`) ----------------------------------

def osd_sockets():
    """The admin sockets of every OSD of the cluster of $CEPH_CONF as ci/ceph-start.sh
    lays it out (`<dir>/run/osd.N.asok` for each OSD data directory `<dir>/osd.N`), in id
    order; [] when that directory holds no OSD (a cluster not made by ci/ceph-start.sh).
    Fails when an OSD has no socket (it is not running): its share of the counts would be
    missing. A client operation is counted on the object's primary OSD only, so with
    several OSDs only the sum over all of them is exact."""
    conf = os.environ.get("CEPH_CONF")
    if not conf:
        raise RuntimeError("CEPH_CONF is not set: the op counts are read from the OSD "
                           "admin sockets of that cluster (. target/ceph/env.sh)")
    top = os.path.dirname(os.path.abspath(conf))
    ids = sorted(int(m.group(1)) for d in glob.glob(os.path.join(top, "osd.*"))
                 if (m := re.fullmatch(r"osd\.(\d+)", os.path.basename(d))) and os.path.isdir(d))
    sockets = [os.path.join(top, "run", f"osd.{i}.asok") for i in ids]
    missing = [path for path in sockets if not os.path.exists(path)]
    if missing:
        raise RuntimeError(f"no admin socket {', '.join(missing)}: is every OSD of the "
                           f"cluster of {conf} running (ci/ceph-start.sh)?")
    return sockets


def asok_command(path, cmd):
    """One admin-socket command (the protocol `ceph --admin-daemon` speaks: the JSON
    command and a NUL; the answer is a 32-bit big-endian length and JSON)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(json.dumps(cmd).encode() + b"\0")

        def read(n):
            buf = b""
            while len(buf) < n:
                got = s.recv(n - len(buf))
                if not got:
                    raise EOFError(f"{path}: connection closed after {len(buf)} of {n} bytes")
                buf += got
            return buf

        (length,) = struct.unpack(">I", read(4))
        return json.loads(read(length))


def osd_counters(fields, sockets=None):
    """{field: value} of the `osd` perf counters `fields` (op, op_r, op_w, op_rw,
    op_in_bytes, ...) summed over every OSD (`sockets`, default osd_sockets())."""
    total = dict.fromkeys(fields, 0)
    for path in osd_sockets() if sockets is None else sockets:
        osd = asok_command(path, {"prefix": "perf dump", "logger": "osd"})["osd"]
        for f in fields:
            total[f] += osd[f]
    return total


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def flags_of(value):
    """A FLAGS list without \\Recent (which depends on who looked first)."""
    return {f for f in value if f.lower() != "\\recent"}
