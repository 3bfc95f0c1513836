"""Logs (issue 14, item 1): the library's `tracing` events reach Dovecot's log through
the plugin's log bridge (rm_log_set_handler, rados-log.c), on the mail user's event, so
with Dovecot's "imap(user)<pid><session>:" prefix. Warnings always; the library's debug
lines only with `mail_debug = yes`.

The story: before the bridge, a damaged body cache entry was dropped and re-read from
RADOS with a `tracing::warn!` that went nowhere inside Dovecot (no subscriber): an
operator saw nothing. This test damages a real entry of the disk tier of the body cache
(`rados_cache_disk_dir`) and expects the library's warning, with its `path` field, in the
log. Each IMAP session is a fresh process here (`service_count = 1`), so the second FETCH
cannot be answered from the memory tier and reads the damaged file.

Instance `log` runs without mail_debug (no library debug line may appear, yet the
operations' events reach the stats service), `log_debug` with it (the library's "store
opened" debug line appears with the prefix).
"""

import os
import re
import urllib.request

import harness
from harness import DovecotTestCase, make_mail, select, uid_fetch

PREFIX = r"imap\({user}\)<\d+><[^>]+>: "


# The stats HTTP listener of instance `log` (P+230..P+232 are its IMAP, LMTP, POP3).
HTTP_OFFSET = 3


def http_port():
    return harness.PORT_BASE + harness.PORT_OFFSETS["log"] + HTTP_OFFSET


def conf(name, debug):
    cache = os.path.join(harness.root(), f"{name}-bodycache")
    os.makedirs(cache, exist_ok=True)
    os.chmod(cache, 0o777)  # the mail uid (nobody) writes the cache
    # Instance `log` also counts the operations' events: they reach the stats service
    # without mail_debug (e_debug events are sent to stats whatever the log level).
    stats = "" if debug else f"""metric rados_mail {{
  filter = event=rados_mail_operation
  group_by = operation
}}
service stats {{
  inet_listener http {{
    address = 127.0.0.1
    port = {http_port()}
  }}
}}
"""
    return cache, f"""service imap {{
  service_count = 1
}}
mail_debug = {"yes" if debug else "no"}
plugin {{
  rados_cache_disk_dir = {cache}
}}
{stats}"""


def log_lines(inst, since):
    with open(inst.log, "rb") as f:
        f.seek(since)
        return f.read().decode("utf-8", "replace").splitlines()


def fetch_body(inst, user):
    c = inst.imap(user)
    try:
        select(c)
        return uid_fetch(c, "1", "(BODY.PEEK[])")[1]["BODY[]"]
    finally:
        c.logout()


class LibraryLog(DovecotTestCase):
    def start(self, name, debug):
        if harness.DRIVER != "rados":
            self.skipTest("driver sdbox: the library's log is the rados plugin's")
        cache, text = conf(name, debug)
        return harness.instance_with_conf(name, text), cache

    def test_a_library_warning_reaches_the_log_with_the_session_prefix(self):
        dc, cache = self.start("log", debug=False)
        since = dc.log_size()
        mail = make_mail("cached", body="A body for the disk cache.\n")
        dc.deliver(self.user, mail)
        body = fetch_body(dc, self.user)
        files = [os.path.join(d, f) for d, _, fs in os.walk(cache) for f in fs]
        files = [p for p in files if os.path.basename(p) in body_guids(files)]
        self.assertEqual(len(files), 1, f"one cached body expected in {cache}: {files}")
        # Damage the cached body (its last byte): its crc32 no longer matches.
        with open(files[0], "r+b") as f:
            f.seek(-1, os.SEEK_END)
            last = f.read(1)
            f.seek(-1, os.SEEK_END)
            f.write(bytes([last[0] ^ 0xFF]))
        self.assertEqual(fetch_body(dc, self.user), body, "re-read from RADOS, intact")

        lines = log_lines(dc, since)
        want = re.compile(PREFIX.format(user=re.escape(self.user)) +
                          r"Warning: rados-mail: dropping a bad body cache entry: .* path=" +
                          re.escape(files[0]) + "$")
        self.assertTrue([ln for ln in lines if want.search(ln)],
                        "no warning of the library in the log:\n" + "\n".join(lines[-30:]))
        debug = [ln for ln in lines if "Debug:" in ln]
        self.assertEqual(debug, [], "debug lines without mail_debug")
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port()}/metrics", timeout=10) as r:
            metrics = r.read().decode()
        fetches = re.search(r'^dovecot_rados_mail_total\{operation="body_fetch"\} (\d+)$', metrics, re.M)
        self.assertTrue(fetches, metrics)
        self.assertGreaterEqual(int(fetches.group(1)), 2, "both FETCHes sent their events")

    def test_library_debug_lines_appear_with_mail_debug(self):
        dc, _ = self.start("log_debug", debug=True)
        since = dc.log_size()
        c = dc.imap(self.user)
        select(c)
        c.logout()
        want = re.compile(PREFIX.format(user=re.escape(self.user)) +
                          r"Debug: rados-mail: store opened elapsed_ms=\d+$")
        lines = log_lines(dc, since)
        self.assertTrue([ln for ln in lines if want.search(ln)],
                        "no debug line of the library:\n" + "\n".join(lines[-30:]))


def body_guids(paths):
    """File names that look like cache entries (mail GUIDs: 32 hex digits)."""
    return {os.path.basename(p) for p in paths if re.fullmatch(r"[0-9a-f]{32}", os.path.basename(p))}
