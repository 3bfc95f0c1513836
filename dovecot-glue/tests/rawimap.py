"""A minimal IMAP client on a raw socket, for what imaplib lacks: IDLE, and NOTIFY's
unsolicited responses, read response by response with a deadline (imaplib's buffered
file is unusable after a read timed out)."""

import re
import socket
import time

from harness import PASSWORD


class RawImap:
    """Logs `user` in at host:port. Responses are bytes without the final CRLF; a
    literal stays inline after its `{n}` line."""

    def __init__(self, host, port, user, timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.tags = 0
        greeting = self.read(time.monotonic() + timeout)
        if greeting is None or not greeting.startswith(b"* OK"):
            raise AssertionError(f"IMAP greeting: {greeting!r}")
        self.command(f'LOGIN "{user}" "{PASSWORD}"')

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, socket.timeout):
            return False
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buf += data
        return True

    def read(self, deadline):
        """The next response, or None when `deadline` (time.monotonic()) passes first."""
        pos = 0
        while True:
            end = self.buf.find(b"\r\n", pos)
            while end < 0:
                if not self._fill(deadline):
                    return None  # what was read stays in self.buf
                end = self.buf.find(b"\r\n", pos)
            m = re.search(rb"\{(\d+)\+?\}$", self.buf[pos:end])
            if not m:
                resp, self.buf = self.buf[:end], self.buf[end + 2:]
                return resp
            pos = end + 2 + int(m.group(1))
            while len(self.buf) < pos:
                if not self._fill(deadline):
                    return None

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def command(self, text, timeout=30, expect=b"OK"):
        """Sends `<tag> text`; returns (tagged response, untagged responses). Fails
        unless the tagged response has status `expect`."""
        self.tags += 1
        tag = f"r{self.tags}".encode()
        self.send(f"{tag.decode()} {text}")
        untagged = []
        deadline = time.monotonic() + timeout
        while True:
            resp = self.read(deadline)
            if resp is None:
                raise AssertionError(f"no answer to {text!r} within {timeout} s")
            if resp.startswith(tag + b" "):
                if not resp.startswith(tag + b" " + expect):
                    raise AssertionError(f"{text!r} answered {resp!r}")
                return resp, untagged
            untagged.append(resp)

    def wait_for(self, pattern, timeout, seen=None):
        """Reads responses until one matches regex `pattern` (bytes); returns its match,
        or None after `timeout` s. Every response read is appended to `seen`."""
        deadline = time.monotonic() + timeout
        while True:
            resp = self.read(deadline)
            if resp is None:
                return None
            if seen is not None:
                seen.append(resp)
            m = re.match(pattern, resp)
            if m:
                return m

    def ok(self, text):
        """Runs `text` (it must answer OK); its untagged responses as str."""
        return [r.decode("utf-8", "replace") for r in self.command(text)[1]]

    def wait_until(self, predicate, timeout):
        """Reads responses (as str) until one satisfies `predicate`, for at most
        `timeout` s; returns (responses read, whether the last one satisfied it)."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            resp = self.read(deadline)
            if resp is None:
                return got, False
            got.append(resp.decode("utf-8", "replace"))
            if predicate(got[-1]):
                return got, True

    def idle(self):
        """Starts IDLE; returns its tag (end it with `done(tag)`)."""
        self.tags += 1
        tag = f"r{self.tags}"
        self.send(f"{tag} IDLE")
        m = self.wait_for(rb"\+ ", 30)
        if m is None:
            raise AssertionError("IDLE not accepted")
        return tag

    def done(self, tag, timeout=30):
        """Ends IDLE; returns the untagged responses read before the tagged OK."""
        self.send("DONE")
        seen = []
        m = self.wait_for(tag.encode() + rb" (\w+)", timeout, seen)
        if m is None or m.group(1) != b"OK":
            raise AssertionError(f"IDLE ended with {seen[-1:]!r}")
        return seen[:-1]

    def close(self):
        try:
            self.command("LOGOUT", timeout=10)
        except (AssertionError, OSError):
            pass
        self.sock.close()
