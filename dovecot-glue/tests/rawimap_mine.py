"""A raw IMAP client for what imaplib cannot do: IDLE and NOTIFY, whose untagged
responses arrive while no command runs (stdlib only; literals are read whole)."""

import socket
import time


class RawImap:
    """One IMAP session on a plain socket, logged in as `user`."""

    def __init__(self, port, user, password="pass", timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.n = 0
        self.pending = []  # untagged lines read but not yet taken
        self.line()  # greeting
        self.ok(f'LOGIN "{user}" "{password}"')

    def close(self):
        try:
            self.sock.sendall(b"Z LOGOUT\r\n")
        except OSError:
            pass
        self.sock.close()

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def line(self, deadline=None):
        """The next response line (a literal is appended to its line), or None when
        `deadline` (time.monotonic()) passes first."""
        while b"\r\n" not in self.buf:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            finally:
                self.sock.settimeout(30)
            if not data:
                raise ConnectionError("server closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        if line.endswith(b"}") and b"{" in line:
            n = int(line[line.rindex(b"{") + 1:-1].rstrip(b"+"))
            while len(self.buf) < n:
                self.buf += self.sock.recv(65536)
            line += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]
            rest = self.line()
            line += rest
        return line.decode("utf-8", "replace")

    def command(self, text):
        """Runs `text`; returns (tagged line, untagged lines)."""
        self.n += 1
        tag = f"R{self.n}"
        self.send(f"{tag} {text}")
        untagged = []
        while True:
            line = self.line()
            if line.startswith(tag + " "):
                return line, untagged
            untagged.append(line)

    def ok(self, text):
        tagged, untagged = self.command(text)
        if tagged.split()[1] != "OK":
            raise AssertionError(f"{text!r}: {tagged}")
        return untagged

    def wait_for(self, predicate, timeout):
        """Untagged lines until one satisfies `predicate` (returned last), or all lines
        read when `timeout` seconds pass; (lines, found)."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            line = self.line(deadline)
            if line is None:
                return got, False
            got.append(line)
            if predicate(line):
                return got, True

    def idle(self):
        self.n += 1
        self.idle_tag = f"R{self.n}"
        self.send(f"{self.idle_tag} IDLE")
        line = self.line()
        if not line.startswith("+"):
            raise AssertionError(f"IDLE refused: {line}")

    def done(self):
        """Ends IDLE; returns the untagged lines that came before the tagged OK."""
        self.send("DONE")
        got = []
        while True:
            line = self.line()
            if line.startswith(self.idle_tag + " "):
                if line.split()[1] != "OK":
                    raise AssertionError(f"IDLE: {line}")
                return got
            got.append(line)
