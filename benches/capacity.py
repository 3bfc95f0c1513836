#!/usr/bin/env python3
"""The capacity model of docs/CAPACITY.md: a 40M-account deployment, computed from the
format's own numbers.

Inputs, nothing else:
- the encoded sizes of the format's records, keys and xattrs, measured by the format's own
  code: `cargo run --release -q -p rados-mail-omap-index --example record_sizes` (run by this script;
  `--sizes FILE` reads its JSON output instead);
- the RADOS operations per IMAP/LMTP command that the Dovecot suite asserts exactly
  (`EXPECTED` in dovecot-glue/tests/test_opcounts.py, read as text, not imported);
- the constants of the format and of Ceph named below (shard size, WAL threshold, delivery
  window, chunk size; BlueStore's allocation unit, the erasure-code stripe unit);
- the assumptions of the ASSUMPTIONS table (each printed with the tables).

Usage:
    benches/capacity.py                  # print the tables (Markdown)
    benches/capacity.py --check docs/CAPACITY.md
                                         # also fail if the tables in the doc differ
    benches/capacity.py --update docs/CAPACITY.md
                                         # rewrite the doc's tables (then read its prose)
    benches/capacity.py --dict-shards 512 --accounts 1e6 ...   # other parameters
    benches/capacity.py --measure-ops [--port-base P]
                                         # count library-side RADOS operations per
                                         # command through a Dovecot of its own (needs
                                         # the cluster of $CEPH_CONF and the built plugin)
    benches/capacity.py --measure-alloc rep3 mail-ec
                                         # BlueStore's allocation per object in those
                                         # pools against the model (a cluster of your own)

CI runs it with --check, so the document cannot drift from the format or the op counts.
"""

import argparse
import ast
import json
import math
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --- constants of the format (docs/FORMAT.md, rados-mail/src/config.rs) ------------------
SHARD_UIDS = None            # 1 << shard_bits, from the size probe
WAL_APPLY_THRESHOLD = 32     # Config::wal_apply_threshold
DELIVERY_WINDOW_H = 24       # Config::delivery_window
DELIVERY_MARK_EXTRA_H = 8    # a mark lives between the window and the window + 8 h
CHUNK_SIZE = 4 << 20         # Config::chunk_size: bodies above it span several objects
OBJECT_KEY_LIMIT = 100_000   # the project's own bound on omap keys per object
CEPH_LARGE_OMAP_KEYS = 200_000  # osd_deep_scrub_large_omap_object_key_threshold (16.2.15)

# --- constants of Ceph 16.2.15 (`ceph-osd --show-config`) --------------------------------
MIN_ALLOC = 4096             # bluestore_min_alloc_size_hdd = _ssd = 4096
EC_STRIPE_UNIT = 4096        # osd_pool_erasure_code_stripe_unit = 4096
REPLICAS = 3                 # index pool (and v1 bodies)
EC_K, EC_M = 4, 2            # the data pool of the model

# --- the scale reference (Deutsche Telekom) --------------------------------------
REF_ACCOUNTS = 39e6
REF_MAILS = 6.7e9
REF_BYTES = 1.3e15           # 1.3 PB, decimal

# --- assumptions (labelled in the output) ------------------------------------------------
ASSUMPTIONS = [
    # key, default, description
    ("accounts", 40e6, "accounts"),
    ("mailboxes", 6, "mailboxes per account: INBOX, the four special-use mailboxes of Dovecot's example `15-mailboxes.conf` (Drafts, Junk, Trash, Sent) and one folder (Archive); all subscribed"),
    ("mailbox_name_len", 5.2, "mean mailbox name length, bytes (the six names above)"),
    ("user_len", 25, "mean user name length, bytes (e.g. `firstname.name@t-online.de`)"),
    ("deliveries", 20, "LMTP deliveries per account and day (every account)"),
    ("active", 0.5, "share of accounts that use IMAP on a given day"),
    ("sessions", 30, "IMAP sessions (login + SELECT INBOX with new mail) per active account and day"),
    ("polls", 50, "NOOP/STATUS polls per active account and day"),
    ("fetches", 30, "cold body FETCHes (one mail each) per active account and day"),
    ("stores", 20, "flag changes (UID STORE of one mail) per active account and day"),
    ("expunges", 20, "mails expunged (one EXPUNGE each) per active account and day"),
    ("appends", 3, "IMAP APPENDs (Sent, Drafts) per active account and day"),
    ("busy_hour", 0.10, "share of a day's commands in the busiest hour"),
    ("years", 5, "age of the account, years (expunge tombstones are kept for the mailbox's life)"),
    ("dict_shards", 1024, "N = dict_shards, objects of the shared dict: set so at creation (or by migrate --dict-shards) for 40M accounts; the default, 64, suits up to about 6M keys"),
    ("osd_ops", 5000, "client operations per second one OSD serves (loopback figure of FACTS.md: 4 KiB writes 4,700-5,700/s on one bluestore-on-file OSD; production OSDs differ)"),
    ("osd_tb", 16, "usable TB per OSD (one 16 TB disk) for the capacity-driven OSD count, filled to 70 %"),
]


def fmt(x, unit=""):
    """Human-readable number: 3 significant digits with k/M/G/T/P suffixes."""
    if isinstance(x, str):
        return x
    for div, suf in ((1e15, " P"), (1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suf}{unit}"
    if x == int(x):
        return f"{int(x):,}{' ' + unit if unit else ''}"
    return f"{x:.3g}{' ' + unit if unit else ''}"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "| " + " | ".join("---" if i in (0, len(header) - 1) else "---:" for i in range(len(header))) + " |"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def load_sizes(path):
    if path:
        with open(path) as f:
            return json.load(f)
    out = subprocess.run(
        ["cargo", "run", "--release", "-q", "-p", "rados-mail-omap-index", "--example", "record_sizes"],
        cwd=ROOT, check=True, stdout=subprocess.PIPE).stdout
    return json.loads(out)


def load_opcounts():
    """EXPECTED of test_opcounts.py: row -> (reads, writes) as the OSD counts them."""
    path = os.path.join(ROOT, "dovecot-glue", "tests", "test_opcounts.py")
    tree = ast.parse(open(path).read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "EXPECTED" for t in node.targets):
            return ast.literal_eval(node.value)
    sys.exit("capacity.py: no EXPECTED table in " + path)


def raw_replicated(size, replicas=REPLICAS):
    """Raw bytes of one object of `size` data bytes in a replicated pool (BlueStore
    allocates whole min_alloc units; per-object metadata not counted)."""
    return replicas * MIN_ALLOC * math.ceil(size / MIN_ALLOC)


def raw_ec(size, k=EC_K, m=EC_M):
    """Raw bytes of one object in a k+m erasure-coded pool: the object is cut into stripes
    of k x stripe_unit, the last one padded (Pacific), each shard holds stripe_unit per
    stripe (a multiple of min_alloc here), k + m shards."""
    stripes = math.ceil(size / (k * EC_STRIPE_UNIT))
    return (k + m) * stripes * EC_STRIPE_UNIT


def body_objects(size):
    return max(1, math.ceil(size / CHUNK_SIZE))


def raw_body(size, ec):
    """Raw bytes of a body of `size` bytes, chunked at CHUNK_SIZE."""
    n = body_objects(size)
    parts = [CHUNK_SIZE] * (n - 1) + [size - CHUNK_SIZE * (n - 1)]
    return sum(raw_ec(p) if ec else raw_replicated(p) for p in parts)


def model(s, ops, a):
    global SHARD_UIDS
    SHARD_UIDS = 1 << s["default_shard_bits"]
    out = []
    mails = REF_MAILS / REF_ACCOUNTS
    mail_size = REF_BYTES / REF_MAILS
    B = a["mailboxes"]
    name = a["mailbox_name_len"]
    days = 365 * a["years"]

    # ---------------- per-account index: keys and bytes ---------------------------------
    # mailboxes object: mbox/<name>, guid/<guid>, sub/<name> per mailbox + counters.
    special = 5 / 6
    entry = special * s["mailbox_entry_special_use"] + (1 - special) * s["mailbox_entry"]
    list_keys = 3 * B + 1
    list_bytes = B * ((s["key_mailbox_prefix"] + name + entry)
                      + (s["key_mailbox_guid"] + name)
                      + (s["key_subscription_prefix"] + name)) \
        + s["key_counters"] + s["list_counters"]
    # Heads: hdr, trim, recent; WAL entries (0..31 between applies: 15.5 on average);
    # delivery marks in INBOX (deliveries of the last 24..32 h: 28 h on average).
    per_day = a["deliveries"] + a["active"] * (a["stores"] + a["expunges"] + a["appends"])
    wal_entry = (a["deliveries"] * s["wal_entry_new_mail"]
                 + a["active"] * a["stores"] * s["wal_entry_flag_change"]
                 + a["active"] * a["expunges"] * s["wal_entry_expunge"]
                 + a["active"] * a["appends"] * s["wal_entry_new_mail"]) / per_day
    wal_n = (WAL_APPLY_THRESHOLD - 1) / 2
    marks = a["deliveries"] * (DELIVERY_WINDOW_H + DELIVERY_MARK_EXTRA_H / 2) / 24
    head_fixed = (s["key_hdr"] + s["mailbox_header"]) + (s["key_trim"] + s["value_trim"]) \
        + (s["key_recent"] + s["value_recent"])
    head_keys = B * (3 + wal_n) + marks
    head_bytes = B * (head_fixed + wal_n * (s["key_wal"] + wal_entry)) \
        + marks * (s["key_delivery"] + s["delivery_mark"])
    # Shards: r/ + m/ per mail, x/ per mail ever expunged, applied per shard.
    saved_ever = (a["deliveries"] + a["active"] * a["appends"]) * days
    expunged_ever = max(0.0, saved_ever - mails)
    inbox_uids = a["deliveries"] * days
    shards = math.ceil(inbox_uids / SHARD_UIDS) + (B - 1)
    rec = s["key_record"] + s["mail_record"]
    shard_keys_new = mails * 2 + B
    shard_bytes_new = mails * (rec + s["key_modseq_index"]) + B * (s["key_applied"] + s["value_applied"])
    shard_keys = shard_keys_new + expunged_ever + (shards - B)
    shard_bytes = shard_bytes_new + expunged_ever * s["key_tombstone"] \
        + (shards - B) * (s["key_applied"] + s["value_applied"])
    # Private dict: quota (priv/quota/storage, priv/quota/messages) with decimal values.
    pdict_keys = 2
    pdict_bytes = len("priv/quota/storage") + 8 + len("priv/quota/messages") + 3
    # Shared dict: shared/last-login/<user> = Unix seconds.
    sdict_bytes = len("shared/last-login/") + a["user_len"] + 10

    # Bodies: one object per mail at the mean size (chunks: +1 per 4 MiB above the first).
    xattr_v1 = s["body_xattr_names"] + s["body_xattr_values"]
    ref_v1 = s["key_reference_v1"]           # omap key on the body (v1), empty value
    ref_v2 = s["xattr_reference_v2"]         # xattr name on the body (v2), empty value

    rows_user = []

    def row(what, new, old, note=""):
        rows_user.append((what, fmt(new), fmt(old), note))

    idx_objects = 1 + B + 1                  # mailboxes, heads, private dict
    row("index pool: objects (`mailboxes`, heads, shards, `dict`)", idx_objects + B, idx_objects + shards,
        f"{B} mailboxes; INBOX shards = ceil(UIDs / {SHARD_UIDS:,})")
    row("index pool: omap keys", list_keys + head_keys + shard_keys_new + pdict_keys,
        list_keys + head_keys + shard_keys + pdict_keys, "tombstones `x/` stay for the mailbox's life")
    row("index pool: omap bytes (keys + values)", fmt(list_bytes + head_bytes + shard_bytes_new + pdict_bytes, "B"),
        fmt(list_bytes + head_bytes + shard_bytes + pdict_bytes, "B"), "")
    row("  of which shards (records, modseq keys, tombstones)", fmt(shard_bytes_new, "B"), fmt(shard_bytes, "B"),
        f"{rec} + {s['key_modseq_index']} B per mail, {s['key_tombstone']} B per tombstone")
    row("  of which heads (header, WAL, delivery marks)", fmt(head_bytes, "B"), fmt(head_bytes, "B"),
        f"{wal_n} WAL entries of {wal_entry:.0f} B per mailbox, {marks:.1f} marks")
    row("  of which the mailbox list", fmt(list_bytes, "B"), fmt(list_bytes, "B"), "")
    row("shared dict: keys / bytes (in N shared objects)", f"1 / {sdict_bytes:.0f} B", f"1 / {sdict_bytes:.0f} B",
        "`shared/last-login/<user>`")
    row("data pool: body objects", mails, mails, "1 per mail up to 4 MiB")
    row("data pool: body bytes", fmt(mails * mail_size, "B"), fmt(mails * mail_size, "B"), f"{mail_size:,.0f} B per mail")
    row("data pool: xattr bytes, v2 (11 xattrs + 1 `rm.ref.` per record)", fmt(mails * (xattr_v1 + ref_v2), "B"),
        fmt(mails * (xattr_v1 + ref_v2), "B"), f"{xattr_v1} + {ref_v2} B per body")
    row("v1 instead: omap `ref/` key per record on the body", f"{mails:.0f} keys, {fmt(mails * ref_v1)}B",
        f"{mails:.0f} keys, {fmt(mails * ref_v1)}B", f"{ref_v1} B each")
    out.append(("per-account", table(
        ["per account", "new account", f"after {a['years']:g} years", "how"], rows_user)))

    # ---------------- totals -------------------------------------------------------------
    A = a["accounts"]
    N = a["dict_shards"]
    idx_keys_old = list_keys + head_keys + shard_keys + pdict_keys
    idx_bytes_old = list_bytes + head_bytes + shard_bytes + pdict_bytes
    idx_keys_new = list_keys + head_keys + shard_keys_new + pdict_keys
    idx_bytes_new = list_bytes + head_bytes + shard_bytes_new + pdict_bytes
    body_bytes = A * mails * mail_size
    raw_rep = A * mails * raw_body(round(mail_size), ec=False)
    raw_ecb = A * mails * raw_body(round(mail_size), ec=True)
    rows = [
        ("accounts", fmt(A), fmt(A), ""),
        ("index pool objects", fmt(A * (idx_objects + B) + N), fmt(A * (idx_objects + shards) + N), f"+ N = {N} shared dict objects"),
        ("index pool omap keys", fmt(A * (idx_keys_new + 1)), fmt(A * (idx_keys_old + 1)), "+1: the shared dict key"),
        ("index pool omap bytes", fmt(A * (idx_bytes_new + sdict_bytes), "B"), fmt(A * (idx_bytes_old + sdict_bytes), "B"), ""),
        ("index pool raw (x3, omap in RocksDB)", fmt(REPLICAS * A * (idx_bytes_new + sdict_bytes), "B"),
         fmt(REPLICAS * A * (idx_bytes_old + sdict_bytes), "B"), "key + value per entry (measured within 10 % of compacted RocksDB)"),
        ("data pool objects", fmt(A * mails), fmt(A * mails), ""),
        ("body bytes (logical)", fmt(body_bytes, "B"), fmt(body_bytes, "B"), ""),
        ("body raw, replicated x3 (v1 layout)", fmt(raw_rep, "B"), fmt(raw_rep, "B"),
         f"x{raw_rep / body_bytes:.2f} at the mean size"),
        (f"body raw, EC {EC_K}+{EC_M} (v2 layout)", fmt(raw_ecb, "B"), fmt(raw_ecb, "B"),
         f"x{raw_ecb / body_bytes:.2f} at the mean size"),
        ("raw disk saved by EC", fmt(raw_rep - raw_ecb, "B"), fmt(raw_rep - raw_ecb, "B"), ""),
        ("body xattrs, v2 (logical)", fmt(A * mails * (xattr_v1 + ref_v2), "B"),
         fmt(A * mails * (xattr_v1 + ref_v2), "B"), "in the onode (RocksDB), not in data extents"),
        (f"body xattrs, v2, raw on all {EC_K + EC_M} EC shards", fmt((EC_K + EC_M) * A * mails * (xattr_v1 + ref_v2), "B"),
         fmt((EC_K + EC_M) * A * mails * (xattr_v1 + ref_v2), "B"), "v1: x3 of the xattrs + x3 of the `ref/` keys"),
        ("OSDs for the raw disk (EC data + x3 index)", "",
         fmt(math.ceil((raw_ecb + REPLICAS * A * (idx_bytes_old + sdict_bytes)) / (a["osd_tb"] * 1e12 * 0.7))),
         f"{a['osd_tb']:g} TB disks filled to 70 %"),
    ]
    out.append(("totals", table(["40M accounts", "new accounts", f"after {a['years']:g} years", "note"], rows)))

    # ---------------- raw disk per mail size ---------------------------------------------
    rows = []
    for size in (2_000, 4_096, 8_192, 12_000, 20_000, 75_000, round(mail_size), 1_000_000, 10_000_000, 30_000_000):
        rep, ec = raw_body(size, False), raw_body(size, True)
        rows.append((f"{size:,}", body_objects(size), f"{rep:,} (x{rep / size:.2f})",
                     f"{ec:,} (x{ec / size:.2f})", f"{ec / rep:.2f}"))
    out.append(("raw-by-size", table(
        ["body bytes", "objects", "raw, replicated x3", f"raw, EC {EC_K}+{EC_M}", "EC / x3"], rows)))

    # ---------------- operations ---------------------------------------------------------
    def o(row):
        r, w = ops[row]
        return r, w
    mix = [
        ("LMTP delivery", a["deliveries"], "LMTP delivery of 1 mail, first for the user in a connected lmtp process", 1.0),
        ("login + SELECT INBOX (new mail)", a["sessions"], "SELECT of a mailbox with 1 new mail, fresh imap process", a["active"]),
        ("NOOP / poll", a["polls"], "NOOP, nothing changed", a["active"]),
        ("FETCH of 1 body, cold", a["fetches"], "UID FETCH of 1 mail BODY.PEEK[], cold", a["active"]),
        ("UID STORE of 1 mail", a["stores"], "UID STORE +FLAGS of 1 mail", a["active"]),
        ("EXPUNGE of 1 mail", a["expunges"], "EXPUNGE of 1 mail", a["active"]),
        ("APPEND", a["appends"], "IMAP APPEND of 1 mail to the selected mailbox", a["active"]),
    ]
    # Which of a command's operations go to the data pool (bodies): the body write of a
    # save, the body read of a FETCH, the reference read + drop of an expunge.
    data_ops = {
        "LMTP delivery": (0, 1), "APPEND": (0, 1), "FETCH of 1 body, cold": (1, 0),
        "EXPUNGE of 1 mail": (1, 1),
    }
    rows = []
    tot_r = tot_w = 0.0
    sub = {"v1": 0.0, "v2": 0.0}
    for label, per_day, key, share in mix:
        r, w = o(key)
        n = A * share * per_day
        tot_r += n * r
        tot_w += n * w
        dr, dw = data_ops.get(label, (0, 0))
        # OSD work per client op: a replicated write is done by 3 OSDs, an EC write by
        # k+m, a replicated read by 1, an EC read by k (the primary gathers k shards).
        sub["v1"] += n * (r + REPLICAS * w)
        sub["v2"] += n * ((r - dr) + REPLICAS * (w - dw) + EC_K * dr + (EC_K + EC_M) * dw)
        rows.append((label, fmt(per_day), f"{share:g}", f"{r} + {w} = {r + w}", fmt(n * (r + w))))
    peak = a["busy_hour"] / 3600
    rows.append(("**all**", "", "", "", fmt(tot_r + tot_w)))
    out.append(("mix", table(["command", "per account and day", "share of accounts",
                              "RADOS ops (reads + writes)", "ops per day, 40M accounts"], rows)))
    rows = [
        ("client ops/s, day average", fmt((tot_r + tot_w) / 86400), ""),
        (f"client ops/s, busy hour ({a['busy_hour']:.0%} of a day)", fmt((tot_r + tot_w) * peak),
         f"reads {fmt(tot_r * peak)}, writes {fmt(tot_w * peak)}"),
        ("OSD ops/s, busy hour, v1 (all x3)", fmt(sub["v1"] * peak), "a write costs 3 OSD ops"),
        (f"OSD ops/s, busy hour, v2 (bodies EC {EC_K}+{EC_M})", fmt(sub["v2"] * peak),
         f"a body write {EC_K + EC_M}, a body read {EC_K}"),
        (f"OSDs at {fmt(a['osd_ops'])} ops/s each (loopback figure), v1", fmt(math.ceil(sub['v1'] * peak / a['osd_ops'])), ""),
        (f"OSDs at {fmt(a['osd_ops'])} ops/s each (loopback figure), v2", fmt(math.ceil(sub['v2'] * peak / a['osd_ops'])), ""),
    ]
    out.append(("ops", table(["40M accounts", "value", "note"], rows)))

    # ---------------- the largest omap objects -------------------------------------------
    shard_full_keys = 2 * SHARD_UIDS + 1
    shard_full_bytes = SHARD_UIDS * (rec + s["key_modseq_index"]) + s["key_applied"] + s["value_applied"]
    dict_v1 = A
    rows = [
        ("shared dict, v1 (one object `dict`)", fmt(dict_v1), fmt(dict_v1 * sdict_bytes, "B"),
         "none: one key per account", "over both limits"),
        (f"shared dict shard, v2 (N = {N})", fmt(math.ceil(A / N)), fmt(A / N * sdict_bytes, "B"),
         "accounts / N", "over" if A / N > OBJECT_KEY_LIMIT else "under"),
        ("index shard `mbox.<guid>.<shard>`", fmt(shard_full_keys), fmt(shard_full_bytes, "B"),
         f"2 x {SHARD_UIDS:,} UIDs + `applied` (more bytes with keywords)", "under"),
        ("head `mbox.<guid>`, delivery marks", fmt(round(marks + 3 + WAL_APPLY_THRESHOLD)),
         fmt(marks * (s["key_delivery"] + s["delivery_mark"]), "B"),
         "deliveries in 24..32 h + 32 WAL entries + 3", "under; a mailbox receiving 75,000 mails a day reaches 100k"),
        ("`mailboxes`", fmt(list_keys), fmt(list_bytes, "B"), "3 per mailbox + 1", "under"),
    ]
    out.append(("largest", table(["object", "omap keys", "omap bytes", "bound", f"vs {OBJECT_KEY_LIMIT:,} / {CEPH_LARGE_OMAP_KEYS:,}"], rows)))
    need = math.ceil(A / OBJECT_KEY_LIMIT)
    out.append(("dict-n", f"Shared dict objects needed for {fmt(A)} `shared/last-login/` keys: "
                f"N >= {need} for the project's {OBJECT_KEY_LIMIT:,}-key bound, "
                f"N >= {math.ceil(A / CEPH_LARGE_OMAP_KEYS)} for Ceph's {CEPH_LARGE_OMAP_KEYS:,}-key warning."))

    # ---------------- inputs -------------------------------------------------------------
    rows = [(k, v) for k, v in s.items()]
    out.insert(0, ("sizes", table(["record_sizes (bytes)", "value"], rows)))
    rows = [(f"`{k}`", f"{int(a[k]):,}" if a[k] == int(a[k]) else f"{a[k]:g}", d) for k, _, d in ASSUMPTIONS]
    out.insert(1, ("assumptions", table(["parameter", "value", "what (assumption unless a source is named)"], rows)))
    return out


# --- library-side op counts through real Dovecot (--measure-ops) -------------------------

MEASURE_DOC = """Library-side RADOS operations per command, through a Dovecot with the plugin.

Starts its own Dovecot (ci/dovecot-start.sh, port base --port-base, namespace prefix
capacity-<pid>-) against the cluster of $CEPH_CONF with `log_debug =
event=rados_mail_operation`, so the plugin logs the library's own counters
(`rm_store_stats`) for every storage operation as `rados-mail: <op>: N reads, M writes`;
sums them over each command (one command per window, the log read before and after); then
stops Dovecot and deletes the users it made (`rados-mail user delete`). Notifies are not in
these counts (the OSD counts one read per head write). Unlike the OSD's perf counters,
library-side counts are not disturbed by other clients of the cluster."""


def measure_ops(port_base):
    import imaplib
    import itertools
    import smtplib
    import tempfile
    import time

    if not os.environ.get("CEPH_CONF"):
        sys.exit("capacity.py --measure-ops: CEPH_CONF is not set (source target/ceph/env.sh)")
    prefix = f"capacity-{os.getpid()}-"
    work = tempfile.mkdtemp(prefix="capacity-dovecot-", dir=os.path.join(ROOT, "target"))
    os.chmod(work, 0o755)  # the mail uid (nobody) must reach the homes below it
    extra = os.path.join(work, "extra.conf")
    with open(extra, "w") as f:
        f.write("log_debug = event=rados_mail_operation\n")
    inst = os.path.join(work, "dovecot")
    env = dict(os.environ, RADOS_MAIL_NS_PREFIX=prefix)
    subprocess.run([os.path.join(ROOT, "ci", "dovecot-start.sh"), "--port-base", str(port_base),
                    "--extra-conf", extra, inst], env=env, check=True, stdout=subprocess.DEVNULL)
    log = os.path.join(inst, "dovecot.log")
    stamp = int(time.time())
    user, other = f"cap{stamp}@example.org", f"capother{stamp}@example.org"
    counter = itertools.count()

    def mail():
        n = next(counter)
        # Distinct bytes: the same mail twice would be taken for a retry (delivery keys).
        return (f"From: a@example.org\nTo: {user}\nSubject: capacity {n}\n"
                f"Message-ID: <{stamp}.{n}@example.org>\n\n" + ("x" * 70 + "\n") * 14)

    def lines():
        with open(log, errors="replace") as f:
            return f.read().splitlines()

    rows = []

    def window(label, fn):
        time.sleep(0.3)
        a = len(lines())
        fn()
        time.sleep(0.3)
        r = w = 0
        for ln in lines()[a:]:
            m = re.search(r"rados-mail: (?:\S+|work outside operations): (\d+) reads, (\d+) writes", ln)
            if m:
                r += int(m.group(1))
                w += int(m.group(2))
        rows.append((label, r, w))

    try:
        lm = smtplib.LMTP("127.0.0.1", port_base + 1)
        lm.sendmail("s@example.org", [other], mail())          # the lmtp process connects
        window("LMTP delivery, first for a user without INBOX", lambda: lm.sendmail("s@example.org", [user], mail()))
        window("LMTP delivery, the user's next in the same session", lambda: lm.sendmail("s@example.org", [user], mail()))
        for _ in range(3):
            lm.sendmail("s@example.org", [user], mail())
        lm.quit()
        im = imaplib.IMAP4("127.0.0.1", port_base)
        window("login", lambda: im.login(user, "pass"))
        window("SELECT INBOX with new mails", lambda: im.select("INBOX"))
        window("NOOP, nothing changed", lambda: im.noop())
        window("UID FETCH of 1 mail BODY.PEEK[], first in the process", lambda: im.uid("FETCH", "1", "(BODY.PEEK[])"))
        window("UID FETCH of another mail BODY.PEEK[]", lambda: im.uid("FETCH", "2", "(BODY.PEEK[])"))
        window("UID STORE +FLAGS of 1 mail", lambda: im.uid("STORE", "1", "+FLAGS.SILENT", "(\\Seen)"))
        window("IMAP APPEND of 1 mail to the selected mailbox", lambda: im.append("INBOX", None, None, mail().encode()))
        im.uid("STORE", "2", "+FLAGS.SILENT", "(\\Deleted)")
        window("EXPUNGE of 1 mail", lambda: im.expunge())
        im.create("Bench")
        for _ in range(120):
            im.append("Bench", None, None, mail().encode())
        im.create("Copies")
        im.create("Moved")
        im.select("Bench")
        window("UID COPY of 100 mails to an empty mailbox", lambda: im.uid("COPY", "1:100", "Copies"))
        im.select("Copies")
        window("UID MOVE of 100 mails to an empty mailbox", lambda: im.uid("MOVE", "1:100", "Moved"))
        im.select("Moved")
        im.uid("STORE", "1:100", "+FLAGS.SILENT", "(\\Deleted)")
        window("EXPUNGE of 100 mails", lambda: im.expunge())
        im.logout()
    finally:
        subprocess.run([os.path.join(ROOT, "ci", "dovecot-stop.sh"), inst], check=False)
        cli = os.path.join(ROOT, "target", "release", "rados-mail")
        for u in (user, other):
            subprocess.run([cli, "--namespace-prefix", prefix, "user", "delete", "--yes", u],
                           check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    print(table(["command (library-side, imap process reused)", "reads + writes"],
                [(label, f"{r} + {w} = {r + w}") for label, r, w in rows]))


# --- raw allocation per object on a real cluster (--measure-alloc) ----------------------

def _osd_bluestore(conf_dir):
    """Sum of bluestore_allocated and bluestore_stored over every OSD of the cluster."""
    import glob
    socks = sorted(glob.glob(os.path.join(conf_dir, "run", "osd.*.asok")))
    if not socks:
        sys.exit(f"capacity.py --measure-alloc: no OSD admin socket in {conf_dir}/run")
    alloc = stored = 0
    for sock in socks:
        out = subprocess.run(["ceph", "--admin-daemon", sock, "perf", "dump", "bluestore"],
                             check=True, stdout=subprocess.PIPE).stdout
        b = json.loads(out)["bluestore"]
        alloc += b["bluestore_allocated"]
        stored += b["bluestore_stored"]
    return alloc, stored


def measure_alloc(pools, sizes, count):
    """Writes `count` objects of each size into each pool with `rados bench` (exact object
    size), reads BlueStore's allocated bytes of every OSD before and after, and compares the
    allocation per object with the model's formula for that pool (replicated: its size;
    erasure-coded: k and m of its profile). Needs a cluster of its own: other writers
    would change the counters (the bench's own metadata object adds ~1/count of an
    allocation unit per object)."""
    conf = os.environ.get("CEPH_CONF")
    if not conf:
        sys.exit("capacity.py --measure-alloc: CEPH_CONF is not set")
    conf_dir = os.path.dirname(os.path.abspath(conf))
    rows = []
    for pool in pools:
        def get(var):
            out = subprocess.run(["ceph", "osd", "pool", "get", pool, var, "-f", "json"],
                                 check=True, stdout=subprocess.PIPE).stdout
            return json.loads(out)
        prof = subprocess.run(["ceph", "osd", "pool", "get", pool, "erasure_code_profile", "-f", "json"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if prof.returncode == 0:
            name = json.loads(prof.stdout)["erasure_code_profile"]
            p = json.loads(subprocess.run(["ceph", "osd", "erasure-code-profile", "get", name, "-f", "json"],
                                          check=True, stdout=subprocess.PIPE).stdout)
            k, m = int(p["k"]), int(p["m"])
            kind, model_of = f"EC {k}+{m}", (lambda size, k=k, m=m: raw_ec(size, k, m))
        else:
            r = get("size")["size"]
            kind, model_of = f"replicated x{r}", (lambda size, r=r: raw_replicated(size, r))
        for size in sizes:
            run = f"capacity-{os.getpid()}"
            a0, _ = _osd_bluestore(conf_dir)
            subprocess.run(["rados", "-p", pool, "bench", "120", "write", "-b", str(size), "-O", str(size),
                            "-t", "16", "--max-objects", str(count), "--no-cleanup", "--run-name", run],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            a1, _ = _osd_bluestore(conf_dir)
            subprocess.run(["rados", "-p", pool, "cleanup", "--run-name", run],
                           check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            per = (a1 - a0) / count
            want = model_of(size)
            rows.append((f"`{pool}` ({kind})", f"{size:,}", f"{per:,.0f}", f"{want:,}", f"{per / want:.3f}"))
    print(table(["pool", "object bytes", "allocated per object, measured", "model", "measured / model"], rows))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", help="JSON of the record_sizes example (default: run it)")
    p.add_argument("--check", metavar="DOC", help="fail if DOC's tables differ from these")
    p.add_argument("--update", metavar="DOC", help="rewrite DOC's tables with these")
    p.add_argument("--measure-ops", action="store_true",
                   help="instead: count library-side RADOS operations per command through a "
                   "Dovecot of its own against $CEPH_CONF's cluster (see MEASURE_DOC in the source)")
    p.add_argument("--port-base", type=int, default=25800, help="Dovecot ports of --measure-ops")
    p.add_argument("--measure-alloc", nargs="+", metavar="POOL",
                   help="instead: measure BlueStore's allocation per object in these pools of "
                   "$CEPH_CONF's cluster (a cluster of your own) and compare it with the model")
    p.add_argument("--alloc-sizes", default="2000,8192,10000,20000,194030",
                   help="object sizes of --measure-alloc, comma-separated")
    p.add_argument("--alloc-count", type=int, default=200, help="objects per size of --measure-alloc")
    for k, v, d in ASSUMPTIONS:
        p.add_argument("--" + k.replace("_", "-"), type=float, default=v, help=d)
    args = p.parse_args()
    if args.measure_ops:
        measure_ops(args.port_base)
        return
    if args.measure_alloc:
        measure_alloc(args.measure_alloc, [int(x) for x in args.alloc_sizes.split(",")], args.alloc_count)
        return
    a = {k: getattr(args, k) for k, _, _ in ASSUMPTIONS}
    sections = model(load_sizes(args.sizes), load_opcounts(), a)
    text = ""
    for name, body in sections:
        text += f"<!-- capacity:{name} -->\n{body}\n<!-- /capacity:{name} -->\n\n"
    print(text, end="")
    if args.update:
        doc = open(args.update).read()
        for name, body in sections:
            pat = rf"(<!-- capacity:{name} -->\n)(.*?)(\n<!-- /capacity:{name} -->)"
            if not re.search(pat, doc, re.S):
                sys.exit(f"capacity.py: {args.update} has no section {name}")
            doc = re.sub(pat, lambda m, body=body: m.group(1) + body + m.group(3), doc, flags=re.S)
        with open(args.update, "w") as f:
            f.write(doc)
        print(f"capacity.py: {args.update} updated", file=sys.stderr)
    if args.check:
        doc = open(args.check).read()
        bad = []
        for name, body in sections:
            m = re.search(rf"<!-- capacity:{name} -->\n(.*?)\n<!-- /capacity:{name} -->", doc, re.S)
            if not m or m.group(1) != body:
                bad.append(name)
        if bad:
            sys.exit(f"capacity.py: {args.check} differs from the model in: {', '.join(bad)} "
                     f"(benches/capacity.py --update {args.check} rewrites them; then read the prose)")
        print(f"capacity.py: {args.check} matches the model", file=sys.stderr)


if __name__ == "__main__":
    main()
