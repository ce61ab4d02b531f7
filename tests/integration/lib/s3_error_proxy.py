"""An HTTP/1.1 relay in front of an S3 endpoint (Swift's s3api) that answers chosen requests
itself with `200 OK` and an S3 `<Error>` document, the way AWS S3 may answer CopyObject and
CompleteMultipartUpload when they fail after the status was sent. Every other request goes to
the store byte for byte (SigV4 signatures stay valid: the Host header is the relay's, as the
client signed it).

    proxy = S3ErrorProxy("127.0.0.1", swift_port).start()
    proxy.fail("complete", "InternalError", times=2)   # the next two completes
    proxy.fail("copy", "AccessDenied")                 # every copy from now on
    proxy.fail("head_bucket", 400, times=2)            # a bare status (an int) instead
    proxy.clear()                                      # counters too
    proxy.seen["complete"], proxy.answered["copy"]     # counters
    proxy.requests_matching("GET", "/tail-")           # every request seen: (method, target)
    proxy.headers_matching("PUT", "/blobs/")           # (method, target, headers)
    proxy.hold("HEAD", "/blobs/")      # such requests wait in the relay until release()
    proxy.wait_held("HEAD", "/blobs/", timeout=30)     # True once one is waiting
    proxy.release()

Kinds: "complete" (POST ...?uploadId=...), "copy" (PUT with x-amz-copy-source),
"head_bucket" (HEAD of the bucket itself, path-style). A code that is an int is answered as
that status with no body, as a HEAD's error is. A request the relay answers is never sent to
the store: the store did nothing."""

import socket
import threading

KINDS = ("complete", "copy", "head_bucket")


def _kind(method, target, headers):
    if method == "POST" and "uploadId=" in target:
        return "complete"
    if method == "PUT" and "x-amz-copy-source" in headers:
        return "copy"
    if method == "HEAD" and "/" not in target.split("?")[0].strip("/"):
        return "head_bucket"
    return None


class S3ErrorProxy:
    def __init__(self, host, port):
        self.target = (host, port)
        self.port = None
        self.lock = threading.Lock()
        self.rules = {}  # kind -> [code, times left (None: always)]
        self.seen = {k: 0 for k in KINDS}  # requests of each kind
        self.answered = {k: 0 for k in KINDS}  # answered with an <Error> by the relay
        self.requests = []  # (method, target) of every request, in order
        self.headers = []  # (method, target, {lower-case name: value}) of every request
        self.holds = []  # (method, part): matching requests wait until release()
        self.held = []  # (method, target) of the requests waiting
        self.released = threading.Event()
        self.cond = threading.Condition(self.lock)
        self._listener = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def fail(self, kind, code, times=None):
        assert kind in KINDS, kind
        with self.lock:
            self.rules[kind] = [code, times]

    def clear(self, counters=True):
        """No more <Error> answers; with counters, the counts start again at 0."""
        with self.lock:
            self.rules = {}
            if counters:
                self.seen = {k: 0 for k in KINDS}
                self.answered = {k: 0 for k in KINDS}
                self.requests = []
                self.headers = []

    def requests_matching(self, method=None, part=""):
        """The (method, target) of requests seen with that method (any when None) whose
        target contains part."""
        with self.lock:
            return [(m, t) for m, t in self.requests
                    if (method is None or m == method) and part in t]

    def headers_matching(self, method=None, part=""):
        """(method, target, headers) of the requests requests_matching gives."""
        with self.lock:
            return [(m, t, hd) for m, t, hd in self.headers
                    if (method is None or m == method) and part in t]

    def hold(self, method, part):
        """Requests with that method whose target contains part wait in the relay, not sent
        to the store, until release()."""
        with self.lock:
            self.released.clear()
            self.holds.append((method, part))

    def release(self):
        with self.lock:
            self.holds = []
            self.held = []
            self.released.set()

    def wait_held(self, method, part, timeout):
        """True once a request with that method and part in its target waits in the relay."""
        with self.cond:
            return self.cond.wait_for(lambda: any(m == method and part in t
                                                  for m, t in self.held), timeout)

    def _hold(self, method, target):
        with self.cond:
            if not any(m == method and part in target for m, part in self.holds):
                return
            self.held.append((method, target))
            self.cond.notify_all()
            released = self.released
        released.wait()

    def counts(self):
        with self.lock:
            return dict(self.seen), dict(self.answered)

    def start(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", 0))
        ls.listen(128)
        self.port = ls.getsockname()[1]
        self._listener = ls
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self):
        if self._listener is not None:
            try:
                self._listener.close()
            except OSError:
                pass
            self._listener = None

    def _accept(self):
        ls = self._listener
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _take(self, kind):
        """The <Error> code to answer a request of kind with, or None to forward it."""
        with self.lock:
            self.seen[kind] += 1
            rule = self.rules.get(kind)
            if rule is None:
                return None
            code, times = rule
            if times is not None:
                if times <= 0:
                    return None
                rule[1] = times - 1
            self.answered[kind] += 1
            return code

    def _serve(self, client):
        server = None
        try:
            server = socket.create_connection(self.target, timeout=30)
            server.settimeout(None)
            threading.Thread(target=_pump, args=(server, client), daemon=True).start()
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    data = client.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target = lines[0].split(" ")[:2]
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                with self.lock:
                    self.requests.append((method, target))
                    self.headers.append((method, target, headers))
                self._hold(method, target)
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    # not parsed: the rest of the connection is relayed as it is
                    server.sendall(head + b"\r\n\r\n" + buf)
                    _pump(client, server)
                    return
                length = int(headers.get("content-length", "0"))
                kind = _kind(method, target, headers)
                code = self._take(kind) if kind is not None else None
                if code is None:
                    server.sendall(head + b"\r\n\r\n")
                    sent = min(len(buf), length)
                    server.sendall(buf[:sent])
                    buf = buf[sent:]
                    while sent < length:
                        data = client.recv(min(65536, length - sent))
                        if not data:
                            return
                        server.sendall(data)
                        sent += len(data)
                    continue
                # answered here: read the body (after a 100 Continue if asked for), then
                # 200 with the <Error>, and close (the store's connection is dropped)
                if headers.get("expect", "").lower() == "100-continue" and len(buf) < length:
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                got = len(buf)
                while got < length:
                    data = client.recv(65536)
                    if not data:
                        return
                    got += len(data)
                if isinstance(code, int):
                    client.sendall(b"HTTP/1.1 %d Refused\r\nContent-Length: 0\r\n"
                                   b"Connection: close\r\n\r\n" % code)
                    return
                body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n<Error><Code>%s</Code>"
                        "<Message>injected by the test relay</Message>"
                        "<RequestId>test</RequestId></Error>" % code).encode()
                client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
                               b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                               + body)
                return
        except OSError:
            return
        finally:
            for sock in (client, server):
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass


def _pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for sock in (src, dst):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
