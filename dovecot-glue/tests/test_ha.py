"""Multi-host failure tests (issue 13): two Dovecot backends over one replicated
3-host cluster (ci/ceph-start.sh --hosts 3: pool size 3, min_size 2, failure domain
host), mail flowing through both while one part of the system fails.

Only ci/ha-test.sh runs these: it starts the cluster and sets RADOS_MAIL_HA_DIR to its
directory (without it this module contributes no tests; naming it fails). Each test
injects one fault with ci/ceph-host.sh (or kills a Dovecot backend) under the load of
haload.py, heals it, waits until the cluster is healthy again (3 mons in quorum, 3 OSDs
up, every PG active+clean), counts from a fresh IMAP session on BOTH backends and prints

    <test> acked N lost N duplicated N 4xx N max_stall S s

acked: LMTP 250s; lost: acknowledged but in no mailbox; duplicated: copies of a mail
beyond the first; 4xx: LMTP 4xx plus IMAP NO answers; max_stall: the longest time one
operation (an LMTP transaction or an IMAP command) waited.

rados_timeout of both backends is RADOS_TIMEOUT (20 s): above STALL_BOUND, the longest a
single-host fault may hold an operation given the cluster's failure detection, so such a
fault delays operations but never turns into a refusal.
"""

import json
import os
import re
import secrets
import subprocess
import time
import unittest
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import harness
from harness import DovecotTestCase, parse_fetch
from haload import Load, seq_of

HA_DIR = os.environ.get("RADOS_MAIL_HA_DIR")
FULL = os.environ.get("HA_TEST_FULL") == "1"
# rados_timeout of both backends, seconds.
RADOS_TIMEOUT = 20
# Socket timeout of the test's clients, seconds: an operation that waits longer failed.
OP_TIMEOUT = 60
# Load and fault windows, seconds (--full: more clients and mail, and faults longer than
# mon_osd_down_out_interval, 60 s, so a dead or cut-off OSD is also marked out).
if FULL:
    SENDERS, SESSIONS, BEFORE, WINDOW, AFTER = 4, 2, 5, 75, 10
else:
    SENDERS, SESSIONS, BEFORE, WINDOW, AFTER = 2, 1, 3, 15, 5
# How long the cluster may take to be healthy again after a heal, seconds.
HEAL_BOUND = 120
# Work on top of Ceph's failure detection, seconds: Dovecot's own work and the 2-core
# machine shared with the 3 OSDs and 3 mons (an operation took up to 1.3 s unfaulted).
SLACK = 2.0


def load_tests(loader, tests, pattern):
    if HA_DIR:
        return tests
    if any("test_ha" in p for p in loader.testNamePatterns or ()):
        def needs_cluster():
            raise AssertionError("test_ha.py needs the multi-host cluster: run ci/ha-test.sh")
        return unittest.TestSuite([unittest.FunctionTestCase(needs_cluster)])
    return unittest.TestSuite()


def conf_values(path):
    """Every `key = value` of a ceph.conf (the first one of each key)."""
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*([a-z_]+)\s*=\s*(\S+)\s*$", line)
            if m:
                out.setdefault(m.group(1), m.group(2))
    return out


def stall_bound(conf):
    """The longest a single-host fault may hold one operation, from the cluster's
    ceph.conf: the worst case is a host cut off with its mon. Its OSD is silent, so a
    peer reports it after osd_heartbeat_grace + osd_heartbeat_interval; the second
    reporter the mons need may have its mon session on the cut-off host and find
    another mon only after mon_client_ping_timeout + mon_client_hunt_interval; when the
    cut-off mon was the leader, the others form a quorum after 2 x mon_lease +
    mon_election_timeout before they can mark the OSD down; then a client whose op
    waits on that OSD asks for the new map after objecter_timeout +
    objecter_tick_interval. Plus SLACK."""
    v = {k: float(conf[k]) for k in (
        "osd_heartbeat_grace", "osd_heartbeat_interval", "mon_client_ping_timeout",
        "mon_client_hunt_interval", "mon_lease", "mon_election_timeout",
        "objecter_timeout", "objecter_tick_interval")}
    return (v["osd_heartbeat_grace"] + v["osd_heartbeat_interval"]
            + v["mon_client_ping_timeout"] + v["mon_client_hunt_interval"]
            + 2 * v["mon_lease"] + v["mon_election_timeout"]
            + v["objecter_timeout"] + v["objecter_tick_interval"] + SLACK)


def run(cmd, timeout=120):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                             f"{proc.stdout}{proc.stderr}")
    return proc.stdout


def ceph_host(host, action):
    run([os.path.join(harness.REPO_ROOT, "ci", "ceph-host.sh"), HA_DIR, str(host), action])


def ceph(*args):
    """A `ceph` command's stdout, or None when it failed (a mon may be away)."""
    proc = subprocess.run(["ceph", "--conf", os.path.join(HA_DIR, "ceph.conf"),
                           "--connect-timeout", "8", *args],
                          capture_output=True, text=True, timeout=20)
    return proc.stdout if proc.returncode == 0 else None


def ceph_json(*args):
    out = ceph(*args, "-f", "json")
    try:
        return json.loads(out) if out else None
    except ValueError:
        return None


class HaEnv:
    """The environment ci/dovecot-start.sh reads, for the backends of these tests."""

    def __init__(self, prefix):
        self.values = {"CEPH_CONF": os.path.join(HA_DIR, "ceph.conf"),
                       "RADOS_MAIL_TIMEOUT": str(RADOS_TIMEOUT),
                       "RADOS_MAIL_NS_PREFIX": prefix, "RADOS_MAIL_POOL": "mail"}

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def snapshot(inst, user):
    """{UID: (sequence number, flags, sha256 of BODY[])} of INBOX from a fresh session
    on `inst` (retried for a while: a process refuses briefly after a timeout)."""
    deadline = time.monotonic() + 60
    while True:
        c = inst.imap(user)
        try:
            if c.select("INBOX")[0] == "OK":
                typ, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
                if typ == "OK":
                    return {uid: (seq_of(items["BODY[]"]), frozenset(
                        f for f in items["FLAGS"] if f.lower() != "\\recent"),
                        harness.sha256(items["BODY[]"]))
                        for uid, items in parse_fetch(data).items()}
        finally:
            c.logout()
        if time.monotonic() > deadline:
            raise AssertionError(f"no full FETCH on {inst.name} within 60 s")
        time.sleep(1)


class HaFaults(DovecotTestCase):
    @classmethod
    def setUpClass(cls):
        conf = conf_values(os.path.join(HA_DIR, "ceph.conf"))
        cls.stall_bound = stall_bound(conf)
        if cls.stall_bound >= RADOS_TIMEOUT:
            raise AssertionError(f"rados_timeout {RADOS_TIMEOUT} s must exceed the stall bound "
                                 f"{cls.stall_bound:.1f} s of {HA_DIR}/ceph.conf")
        cls.env = HaEnv(f"ha-{secrets.token_hex(4)}-")
        with cls.env:
            cls.a = harness.instance("ha_a")
            cls.b = harness.instance("ha_b")
        print(f"\nHA: rados_timeout {RADOS_TIMEOUT} s, stall bound {cls.stall_bound:.1f} s, "
              f"{SENDERS} LMTP senders, {SESSIONS} IMAP session(s) per backend, fault window "
              f"{WINDOW} s{' (--full)' if FULL else ''}", flush=True)

    # --- cluster ------------------------------------------------------------------------

    def healthy(self):
        """None when 3 mons are in quorum, 3 OSDs up and in and every PG of the pool
        active+clean, else what is not."""
        st = ceph_json("-s")
        if st is None:
            return "ceph -s failed"
        osdmap = st.get("osdmap", {})
        osdmap = osdmap.get("osdmap", osdmap)
        if sorted(st.get("quorum_names", [])) != ["a", "b", "c"]:
            return f"quorum {st.get('quorum_names')}"
        if osdmap.get("num_up_osds") != 3 or osdmap.get("num_in_osds") != 3:
            return f"{osdmap.get('num_up_osds')} OSDs up, {osdmap.get('num_in_osds')} in"
        pools = ceph_json("osd", "pool", "ls", "detail") or []
        pool = next((p for p in pools if p.get("pool_name") == "mail"), None)
        if pool is None:
            return "no pool mail"
        pgs = [f"{pool['pool_id']}.{i:x}" for i in range(pool["pg_num"])]
        with ThreadPoolExecutor(len(pgs)) as ex:
            states = list(ex.map(lambda pg: (ceph_json("pg", pg, "query") or {}).get("state"), pgs))
        bad = [f"{pg} {s}" for pg, s in zip(pgs, states) if s != "active+clean"]
        return f"PGs {' '.join(bad)}" if bad else None

    def wait_healthy(self):
        start = time.monotonic()
        while (why := self.healthy()) is not None:
            self.assertLess(time.monotonic() - start, HEAL_BOUND,
                            f"cluster not healthy {HEAL_BOUND} s after the heal: {why}")
            time.sleep(0.5)
        return time.monotonic() - start

    # --- the common test ----------------------------------------------------------------

    def fault_test(self, inject, heal, may_break=()):
        """Runs the load, injects the fault after BEFORE s, heals it WINDOW s after the
        fault, stops the load AFTER s later; then counts, prints and asserts."""
        name = self._testMethodName
        self.wait_healthy()
        load = Load({"a": self.a, "b": self.b}, self.user, secrets.token_hex(3), SENDERS,
                    SESSIONS, OP_TIMEOUT)
        load.may_break = set(may_break)
        load.start()
        time.sleep(BEFORE)
        acked_before = len(load.acked)
        t_fault = time.monotonic()
        inject()
        time.sleep(max(0.0, WINDOW - (time.monotonic() - t_fault)))
        acked_fault = len(load.acked) - acked_before
        t_heal = time.monotonic()
        heal()
        time.sleep(AFTER)
        views = load.finish()
        snaps = {n: snapshot(inst, self.user) for n, inst in (("a", self.a), ("b", self.b))}

        counts = {}
        for n, snap in snaps.items():
            copies = Counter(seq for seq, _, _ in snap.values())
            counts[n] = (sum(1 for s in load.acked if s not in copies),
                         sum(k - 1 for k in copies.values() if k > 1),
                         sorted(s for s in copies if s not in load.acked))
        lost = max(c[0] for c in counts.values())
        duplicated = max(c[1] for c in counts.values())
        refusals = load.refused_lmtp + load.refused_imap
        print(f"\n{name} acked {len(load.acked)} lost {lost} duplicated {duplicated} "
              f"4xx {refusals} max_stall {load.max_stall:.1f} s", flush=True)
        print(f"  details: {acked_fault} acked during the {WINDOW} s fault window; LMTP 4xx "
              f"{load.refused_lmtp}, IMAP NO {load.refused_imap}; longest op: "
              f"{load.max_stall_op}, started {load.max_stall_at - t_fault:.1f} s after the "
              f"fault (heal at {t_heal - t_fault:.1f} s); longest gap between 250s "
              f"{load.longest_gap():.1f} s; "
              f"connections refused or broken a {load.broken['a']} b {load.broken['b']}, of which "
              f"LMTP without a final reply a {load.lmtp_no_reply['a']} b "
              f"{load.lmtp_no_reply['b']}; IMAP sessions "
              f"moved {len(load.reconnects)}; {len(load.flagged)} \\Flagged stores", flush=True)
        # The next test must start from a healthy cluster: all OSDs up, all PGs clean.
        print(f"  cluster healthy {self.wait_healthy():.1f} s after the counts", flush=True)

        self.assertEqual(load.errors[:10], [], f"{len(load.errors)} errors in all")
        self.assertEqual(sorted(load.pending), [], "mails never acknowledged")
        self.assertEqual(snaps["a"], snaps["b"], "the backends show different mailboxes")
        for n, (lost_n, dup_n, unacked) in counts.items():
            self.assertEqual(lost_n, 0, f"acknowledged mails missing on {n}")
            self.assertEqual(unacked, [], f"mails on {n} that were never acknowledged")
            dups = sorted(seq for seq, k in Counter(v[0] for v in snaps[n].values()).items()
                          if k > 1)
            self.assertEqual(dup_n, 0, f"mails stored more than once (seen on {n}): " + ", ".join(
                f"mail {seq} (UIDs {sorted(u for u, v in snaps[n].items() if v[0] == seq)}"
                f"{'; an LMTP attempt got no final reply' if seq in load.no_reply_seqs else ''})"
                for seq in dups))
        flagged = {uid for uid, (_, flags, _) in snaps["b"].items() if "\\Flagged" in flags}
        self.assertEqual(load.flagged - flagged, set(), "acknowledged \\Flagged missing")
        for backend, view in views:
            self.assertEqual(view, snaps["b"], f"a session on {backend} sees another mailbox "
                                               f"(UIDs, flags, bodies) than a fresh one on b")
        self.assertGreater(acked_fault, 0, "no mail acknowledged during the fault")
        self.assertLess(load.max_stall, self.stall_bound,
                        f"{load.max_stall_op} waited {load.max_stall:.1f} s")
        return load, refusals

    def ceph_fault(self, inject, heal):
        load, refusals = self.fault_test(inject, heal)
        self.assertEqual(refusals, 0, "refusals during a single-host fault")
        self.assertEqual(load.broken, {"a": 0, "b": 0}, "connections broke")

    # --- the faults ---------------------------------------------------------------------

    def test_kill_osd_host(self):
        """Host 3 powered off (its OSD and mon SIGKILLed together), then started again."""
        self.ceph_fault(lambda: ceph_host(3, "kill"), lambda: ceph_host(3, "start"))

    def test_cut_osd_host_link(self):
        """Host 2's link cut (its OSD and mon keep running, cut off), then restored."""
        self.ceph_fault(lambda: ceph_host(2, "link-down"), lambda: ceph_host(2, "link-up"))

    def test_pause_osd(self):
        """Host 1's OSD stopped (SIGSTOP: a hung disk or process) for the fault window."""
        self.ceph_fault(lambda: ceph_host(1, "stop"), lambda: ceph_host(1, "cont"))

    def test_kill_mon(self):
        """The leading mon SIGKILLed (a new election), then started again."""
        status = ceph_json("quorum_status") or {}
        leader = status.get("quorum_leader_name", "a")
        host = "abc".index(leader) + 1
        self.ceph_fault(lambda: ceph_host(host, "kill-mon"), lambda: ceph_host(host, "start-mon"))

    def test_kill_dovecot_backend(self):
        """Every process of backend a SIGKILLed mid-load: its IMAP sessions log in to b
        and find what they knew; LMTP senders retry the same bytes on b. Then a is
        started again and shows the same mailbox as b."""
        def kill_a():
            # All stopped first, then all killed: none of them sees another one die
            # (and logs about it) before it dies itself, and the master respawns none.
            crash = subprocess.run([os.path.join(harness.REPO_ROOT, "ci", "dovecot-stop.sh"), "--kill",
                                    self.a.dir], capture_output=True, text=True, check=True)
            pids = [int(p) for p in crash.stdout.split()]
            self.assertGreater(len(pids), 1, "backend a has no processes to kill")
            deadline = time.monotonic() + 10
            while any(alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.05)

        def restart_a():
            with self.env:
                self.a.start()

        load, _ = self.fault_test(kill_a, restart_a, may_break=("a",))
        self.assertGreater(load.broken["a"], 0, "nothing noticed backend a's death")
        self.assertEqual(load.broken["b"], 0, "connections to backend b broke")
        self.assertIn(("a", "b"), load.reconnects, "no IMAP session moved from a to b")


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
