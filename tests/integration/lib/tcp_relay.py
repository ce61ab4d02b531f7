"""A TCP relay in front of a server, for tests that watch or break the path to it (berth's
object store, a registry berth mirror pulls from): it counts connections (also how many
were open at once at most) and bytes each way, and it can be cut (listener closed, every
connection reset: the server is unreachable) and opened again on the same port, or armed to
reset the connections open once some more bytes came from the server (a network cut in the
middle of an answer; new connections are accepted as before). It can also hold: connections
are accepted and stay open but nothing goes through until release() (a peer slow to answer;
max_open then tells how many a client opened at once).

    relay = TcpRelay("127.0.0.1", swift_port).start()
    ... berth talks to relay.endpoint ...
    relay.cut(); ...; relay.restore()
    relay.reset_after_down(4 << 20)  # once 4 MiB more came down
    relay.hold(); ...; relay.counters()["max_open"]; relay.release()
    relay.throttle_down(1 << 20)  # each connection's answers at most 1 MiB/s
"""

import socket
import threading
import time


class TcpRelay:
    def __init__(self, host, port):
        self.target = (host, port)
        self.port = None
        self.lock = threading.Lock()
        self.connections = 0  # accepted so far
        self.bytes_up = 0  # client -> server
        self.bytes_down = 0  # server -> client
        self.open_now = 0  # connections open
        self.max_open = 0  # the most open at once
        self.resets = 0  # times reset_after_down fired
        self.down_at_reset = None  # bytes_down when it last fired
        self._reset_at = None  # bytes_down at which to reset the connections, or None
        self._down_rate = None  # bytes a second each connection's answers get, or None
        self._go = threading.Event()  # cleared while held
        self._go.set()
        self._listener = None
        self._socks = set()
        self._thread = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def counters(self):
        with self.lock:
            return {"connections": self.connections, "up": self.bytes_up,
                    "down": self.bytes_down, "open": self.open_now, "max_open": self.max_open,
                    "resets": self.resets, "down_at_reset": self.down_at_reset}

    def reset_after_down(self, nbytes):
        """Once nbytes more came from the server, reset every open connection (once)."""
        with self.lock:
            self._reset_at = self.bytes_down + nbytes

    def hold(self):
        """Forward nothing more until release(); max_open counts from now."""
        with self.lock:
            self.max_open = self.open_now
        self._go.clear()

    def release(self):
        self._go.set()

    def throttle_down(self, bytes_per_second):
        """From now on, each connection's server -> client bytes at most this fast (None:
        as fast as they come)."""
        self._down_rate = bytes_per_second

    def start(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port or 0))
        ls.listen(128)
        self.port = ls.getsockname()[1]
        self._listener = ls
        self._thread = threading.Thread(target=self._accept, args=(ls,), daemon=True)
        self._thread.start()
        return self

    def _accept(self, ls):
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return  # closed by cut()/stop()
            if self._listener is not ls:
                client.close()  # accepted as the relay was cut
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            conn = {"open": True}
            with self.lock:
                self.connections += 1
                self.open_now += 1
                self.max_open = max(self.max_open, self.open_now)
                self._socks.update((client, server))
            for a, b, up in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(a, b, up, conn), daemon=True).start()

    def _pump(self, src, dst, up, conn):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._go.wait()
                reset = False
                with self.lock:
                    if up:
                        self.bytes_up += len(data)
                    else:
                        self.bytes_down += len(data)
                        if self._reset_at is not None and self.bytes_down >= self._reset_at:
                            self._reset_at = None
                            self.resets += 1
                            self.down_at_reset = self.bytes_down
                            reset = True
                if reset:
                    self._reset_all()
                    break
                dst.sendall(data)
                rate = self._down_rate
                if not up and rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self.lock:
                self._socks.discard(src)
                if conn["open"]:
                    conn["open"] = False
                    self.open_now -= 1
            src.close()  # dst is the other pump's src

    def _reset_all(self):
        with self.lock:
            socks = list(self._socks)
            self._socks.clear()
        for s in socks:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def cut(self):
        """The server becomes unreachable: no listener (connection refused), and every open
        connection reset."""
        if self._listener is not None:
            ls, self._listener = self._listener, None
            try:
                ls.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it
            except OSError:
                pass
            ls.close()
        self._reset_all()

    def restore(self):
        """Listen again on the same port."""
        if self._listener is None:
            self.start()

    def stop(self):
        self.cut()
