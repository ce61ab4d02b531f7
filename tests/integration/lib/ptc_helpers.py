"""Helpers of the pull-through cache tests: `berth secrets` run against a test server's
root and config, and the access-log lines of an upstream."""

import http.server
import os
import re
import socketserver
import subprocess
import threading

import berth_harness as h

SECRET_PREFIX = "ecr-pullthroughcache/"


class LoopbackServer:
    """A stand-in upstream or token server: serve(Handler) answers on 127.0.0.1 at a free
    port (self.port), a thread per connection, until close()."""

    def serve(self, handler):
        self.httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """The request handler of a stand-in server (LoopbackServer): logs nothing on stderr;
    send() gives a whole answer."""

    def log_message(self, *args):
        pass

    def send(self, status, body=b"", ctype="application/json"):
        """Answer status with body: Content-Type ctype (None: no such header), Content-Length,
        and the body unless the request was a HEAD."""
        self.send_response(status)
        if ctype is not None:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def secret_arn(name, region="us-east-1", account="000000000000"):
    return "arn:aws:secretsmanager:%s:%s:secret:%s%s" % (region, account, SECRET_PREFIX, name)


def berth_secrets(server, *args, password=None, timeout=30):
    """`berth secrets ARGS --root <server root> [--config <its config>]` with password (if
    any) on standard input; returns (exit status, stdout, stderr)."""
    cmd = [h.find_berth_bin(), "secrets"] + list(args) + ["--root", server.root]
    config = server.config_file()
    if config is not None:
        cmd += ["--config", config]
    env = dict(os.environ)
    env.update(server.env)
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout,
                          input=(password + "\n").encode() if password is not None else b"")
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def upstream_gets(server, path_re):
    """The successful GETs (status 200) of paths matching path_re in a berth's access log."""
    out = []
    for line in server.log_text().splitlines():
        if "event=access" not in line or "method=GET" not in line or "status=200" not in line:
            continue
        m = re.search(r" path=(\S+)", line)
        if m and re.search(path_re, m.group(1)):
            out.append(m.group(1))
    return out
