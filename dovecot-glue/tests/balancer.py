"""A round-robin TCP balancer for the Dovecot test suite (stdlib only, threads).

It stands in front of several backends (name -> (host, port)) the way a director-less
deployment's load balancer does: each new client connection goes to the next backend
in turn (A, B, A, ...), or, after `pin(name)`, to that backend, so a test can say
"this session goes through B". It forwards bytes both ways and knows nothing of IMAP.
`routed` lists the backend of every accepted connection, in order.
"""

import socket
import threading


class Balancer:
    """Listens on 127.0.0.1:`port`; `backends` is a dict name -> (host, port), rotated
    in its insertion order."""

    def __init__(self, backends, port):
        self.backends = dict(backends)
        self.order = list(self.backends)
        self.port = port
        self.routed = []
        self._next = 0
        self._pinned = None
        self._lock = threading.Lock()
        self._conns = set()
        self._closed = False
        self._listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept_loop, name="balancer", daemon=True)
        self._thread.start()

    def pin(self, name):
        """The next connection goes to backend `name` (once; the rotation does not
        advance for it)."""
        if name not in self.backends:
            raise KeyError(name)
        with self._lock:
            self._pinned = name

    def _choose(self):
        with self._lock:
            if self._pinned is not None:
                name, self._pinned = self._pinned, None
            else:
                name = self.order[self._next % len(self.order)]
                self._next += 1
            self.routed.append(name)
            return name

    def _accept_loop(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            name = self._choose()
            try:
                upstream = socket.create_connection(self.backends[name], timeout=30)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            with self._lock:
                self._conns.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True,
                                 name=f"balancer-{name}").start()

    def _pump(self, src, dst):
        """Copies src to dst until either side closes, then closes both."""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        with self._lock:
            self._conns.discard(src)
            self._conns.discard(dst)

    def close(self):
        """Stops accepting and cuts every open connection."""
        self._closed = True
        self._listener.close()
        self._thread.join(timeout=5)
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
