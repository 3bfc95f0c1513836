"""The pool format record (issue 15): a pool written by a newer rados-mail is refused with
a message that says so, not served as if it were damaged.

The story: before the record existed, a binary meeting data of a newer layout could only
misread it, and would report it as corrupted. Now every deployment (pool and namespace
prefix) records its layout version in `<prefix>/.shared`, object `format`, omap `format`;
a process that finds a version it does not know refuses every user of it, and the log
names the pool, the version found and the versions the binary reads."""

import os
import subprocess
import time
import unittest
import zlib

import harness
from harness import DovecotTestCase
from test_settings import lmtp_reply, login_fails

POOL = os.environ.get("RADOS_MAIL_POOL", "mail")


def framed(payload):
    """A record as omap-index frames it: version 1, crc32 (IEEE) of the payload, payload."""
    return bytes([1]) + zlib.crc32(payload).to_bytes(4, "little") + payload


@unittest.skipIf(harness.DRIVER != "rados", "the format record is the rados plugin's")
class Format(DovecotTestCase):
    allowed_log_errors = (r"format version 3", r"Internal error", r"user init failed",
                          r"Mail user initialization failed", r"Couldn't (create|initialize) mail user",
                          r"Failed to initialize user")

    def test_format_newer_version_is_refused_with_a_clear_message(self):
        prefix = f"format-{os.getpid()}-{time.time_ns()}"
        namespace = f"{prefix}/.shared"
        # PoolFormat { version: 3 }: field 1, varint 3.
        proc = subprocess.run(["rados", "-p", POOL, "-N", namespace, "setomapval", "format", "format"],
                              input=framed(b"\x08\x03"), capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode())
        try:
            inst = harness.instance_with_conf("format_newer",
                                              f"plugin {{\n  rados_namespace_prefix = {prefix}\n}}\n")
            since = inst.log_size()
            self.assertTrue(login_fails(inst, self.user), "a session on a pool of format version 3")
            self.assertNotEqual(lmtp_reply(inst, self.user), 250, "a delivery into a pool of format version 3")
            inst.wait_for_log(since, f"pool {POOL} (namespace {namespace}) has rados-mail format version 3; "
                                     "this rados-mail")
            log = inst.log_text(since)
            self.assertIn("reads versions 1 and 2: upgrade rados-mail", log)
            self.assertIn("RM_RESULT_UNSUPPORTED_FORMAT", log)
            self.assertNotIn("RM_RESULT_CORRUPTED", log)
            # Nothing was written for the user.
            ls = subprocess.run(["rados", "-p", POOL, "-N", f"{prefix}/{self.user}", "ls"],
                                capture_output=True, timeout=60)
            self.assertEqual(ls.stdout, b"", ls.stdout)
        finally:
            subprocess.run(["rados", "-p", POOL, "-N", namespace, "rm", "format"], capture_output=True, timeout=60)


if __name__ == "__main__":
    unittest.main()
