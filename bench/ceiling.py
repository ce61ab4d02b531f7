#!/usr/bin/python3
"""How fast can one HTTP response body cross this machine's loopback, with nothing but
the kernel in the way? A check on the pull-100m target (docs/benchmarks.md), not part
of `make bench`.

  ceiling.py serve PORT FILE [--mode sendfile|write] [--chunk BYTES]
      answer every request on 127.0.0.1:PORT with FILE as the body, on a blocking
      socket with a 4 MiB send buffer: os.sendfile() of --chunk bytes per call, or
      (--mode write) send() of --chunk bytes at a time from the file read into memory
  ceiling.py pull URL [--buffer BYTES] [--rounds N]
      GET URL on a fresh connection per round (4 MiB receive buffer, set before
      connect) and read the body as it arrives, recv_into(--buffer) at a time, as
      curl and Go's io.Copy do; print MB/s and the mean bytes per recv

Standard library only; loopback only.
"""
import argparse
import os
import socket
import sys
import time
import urllib.parse

SOCKET_BUFFER = 4 << 20


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    return True


def serve(args):
    size = os.path.getsize(args.file)
    fd = os.open(args.file, os.O_RDONLY)
    body = memoryview(open(args.file, "rb").read()) if args.mode == "write" else None
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(8)
    while True:
        conn, _ = listener.accept()
        try:
            while read_request(conn):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
                off = 0
                while off < size:
                    n = min(args.chunk, size - off)
                    if body is None:
                        off += os.sendfile(conn.fileno(), fd, off, n)
                    else:
                        conn.sendall(body[off:off + n])
                        off += n
        except ConnectionError:
            pass
        conn.close()


def pull(args):
    url = urllib.parse.urlsplit(args.url)
    buf = memoryview(bytearray(args.buffer))
    for _ in range(args.rounds):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        s.connect((url.hostname, url.port or 80))
        start = time.monotonic()
        s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" %
                  ((url.path or "/").encode(), url.netloc.encode()))
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(65536)
        head, rest = head.split(b"\r\n\r\n", 1)
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        got, recvs = len(rest), 0
        while got < length:
            n = s.recv_into(buf)
            if n == 0:
                sys.exit("connection closed after %d of %d bytes" % (got, length))
            got += n
            recvs += 1
        elapsed = time.monotonic() - start
        s.close()
        print("%.0f MB/s, %d recvs of %.0f KiB on average" %
              (length / elapsed / 1e6, recvs, length / max(recvs, 1) / 1024))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("port", type=int)
    s.add_argument("file")
    s.add_argument("--mode", choices=("sendfile", "write"), default="sendfile")
    s.add_argument("--chunk", type=int, default=4 << 20)
    g = sub.add_parser("pull")
    g.add_argument("url")
    g.add_argument("--buffer", type=int, default=4 << 20)
    g.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    serve(args) if args.cmd == "serve" else pull(args)


if __name__ == "__main__":
    main()
