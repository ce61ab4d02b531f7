"""Several `berth serve` replicas that share one PostgreSQL (pg_fixture.py) and one S3
bucket (OpenStack Swift with s3api, swift_fixture.py), each with its own data root and
port on loopback, optionally behind Debian's haproxy: the scale-out configuration of
docs/scale-out.md, on one machine.

    cluster = Cluster(replicas=3, config={...}, balancer=True).start()
    cluster.replicas[0].registry()     # harness Servers
    cluster.balancer.registry()        # a harness Registry through haproxy
    cluster.kill9(0)                   # a replica dying
    cluster.stop()

The metadata is the PostgreSQL database itself (schema public), the blobs are under the
key prefix "cluster/" of the fixture's bucket. Every replica gets the same configuration
(config) and environment (env) on top of that."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import berth_harness as h
import pg_fixture
from pg_fixture import PostgresServer
from s3_error_proxy import S3ErrorProxy
from swift_fixture import SwiftServer

PREFIX = "cluster/"


class ClusterTestCase(h.LogsOnFailure, unittest.TestCase):
    """A test class whose set-up starts self.cluster (a Cluster): a failed or erring
    test prints every replica's log tail (and the balancer's) under its traceback;
    a test class with more to show extends dump_logs."""

    def dump_logs(self):
        self.cluster.dump_logs()


class RelayedClusterTestCase(ClusterTestCase):
    """Two replicas (gc off) whose S3 requests go through cls.relay, an S3ErrorProxy in
    front of Swift (lib/s3_error_proxy.py) that counts, holds or fails them; cls.regs are
    the replicas' registries. Started in setUpClass, stopped by class cleanups."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster = Cluster(replicas=0, config={"gc": {"enabled": False}})
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()
        cls.relay = S3ErrorProxy("127.0.0.1", cls.cluster.s3.ports["proxy"]).start()
        cls.addClassCleanup(cls.relay.stop)
        cls.cluster.env["BERTH_STORAGE_S3_ENDPOINT"] = cls.relay.endpoint
        for _ in range(2):
            cls.cluster.add_replica()
        cls.regs = [r.registry() for r in cls.cluster.replicas]


class Cluster:
    def __init__(self, replicas=2, config=None, env=None, balancer=False,
                 sticky_uploads=False, replica_envs=None):
        self.count = replicas
        self.config = config
        self.env = dict(env or {})
        # each replica's own additions to env (the i-th replica started gets the i-th)
        self.replica_envs = list(replica_envs or [])
        self.pg = None
        self.s3 = None
        self.replicas = []
        self.want_balancer = balancer
        self.sticky_uploads = sticky_uploads
        self.balancer = None

    def replica_env(self):
        env = pg_fixture.berth_env(self.pg.dsn)
        env.update(self.s3.berth_env(PREFIX))
        env.update(self.env)
        return env

    def start(self):
        try:
            self.pg = PostgresServer().start()
            self.s3 = SwiftServer().start()
            for _ in range(self.count):
                self.add_replica()
            if self.want_balancer:
                self.balancer = Haproxy(["127.0.0.1:%d" % r.port for r in self.replicas],
                                        sticky_uploads=self.sticky_uploads).start()
        except BaseException:
            self.stop()
            raise
        return self

    def add_replica(self):
        env = self.replica_env()
        if len(self.replicas) < len(self.replica_envs):
            env.update(self.replica_envs[len(self.replicas)])
        server = h.Server(config=self.config, env=env)
        self.replicas.append(server)
        server.start()
        return server

    def kill9(self, i):
        self.replicas[i].kill9()

    def keys(self, under):
        """The keys of the fixture's bucket under PREFIX + under (one listing: up to 1000)."""
        page = self.s3.client().list_objects_v2(Bucket=self.s3.bucket, Prefix=PREFIX + under)
        return [o["Key"] for o in page.get("Contents", [])]

    def psql(self, sql):
        return self.pg.psql(sql)

    def dump_logs(self):
        for i, r in enumerate(self.replicas):
            print("\n--- replica %d log tail ---\n%s" % (i, r.log_tail(80)))
        if self.balancer is not None:
            print("\n--- haproxy ---\n%s\n%s" % (self.balancer.log_tail(),
                                                 self.balancer.show_stat_text()))
        if self.s3 is not None:
            self.s3.dump_logs()
        if self.pg is not None:
            self.pg.dump_log()

    def stop(self):
        if self.balancer is not None:
            self.balancer.stop()
            self.balancer = None
        for r in self.replicas:
            r.cleanup()
        self.replicas = []
        if self.s3 is not None:
            self.s3.stop()
            self.s3 = None
        if self.pg is not None:
            self.pg.stop()
            self.pg = None



HAPROXY_BIN = "/usr/sbin/haproxy"
# The header haproxy adds to every answer, naming the replica that gave it (r0, r1, ...).
SERVED_BY = "X-Berth-Replica"


class Haproxy:
    """Debian's haproxy on a free loopback port in front of backends ("host:port" each),
    started in the foreground (-db) with a configuration and a stats socket in a private
    directory, stopped after.

    Every request is balanced on its own (balance roundrobin, no prefer-last-server), so
    one client's consecutive requests on one connection go to different replicas;
    connections to the replicas are reused (http-reuse always). Health checks GET
    /readyz every check_ms: a replica that refuses connections or fails /readyz twice in
    a row is out (a slow answer on a busy machine is not a failure: timeout check 10s),
    and a request that could not connect is sent to another (redispatch).

    Upload sessions are shared by the replicas, so by default the requests of one upload
    are spread like any others. sticky_uploads: they go to the replica that answered the
    upload's POST instead (a stick table keyed by the upload's id, learned from the
    Docker-Upload-UUID header of the answers, matched against the last segment of
    /v2/<name>/blobs/uploads/<id>; the walk-through's configuration in
    docs/scale-out.md). Every answer carries X-Berth-Replica: rN."""

    def __init__(self, backends, sticky_uploads=False, check_ms=200):
        self.backends = list(backends)
        self.sticky_uploads = sticky_uploads
        self.check_ms = check_ms
        self.dir = None
        self.proc = None
        self.port = None

    @property
    def base_url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def stats_socket(self):
        return os.path.join(self.dir, "stats.sock")

    def registry(self, keep_alive=False):
        return h.Registry(self.base_url, keep_alive=keep_alive)

    def config_text(self):
        sticky = ""
        if self.sticky_uploads:
            sticky = """    stick-table type string len 128 size 100k expire 2h
    stick store-response res.hdr(Docker-Upload-UUID)
    stick match path,field(-1,/) if { path_reg /blobs/uploads/[^/]+$ }
"""
        servers = "".join("    server r%d %s check\n" % (i, b)
                          for i, b in enumerate(self.backends))
        return """global
    maxconn 4096
    stats socket %(sock)s mode 600 level admin
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-request 60s
    retries 3
    option redispatch 1
frontend registry
    bind 127.0.0.1:%(port)d
    default_backend replicas
backend replicas
    balance roundrobin
    http-reuse always
    option httpchk GET /readyz
    http-check expect status 200
    timeout check 10s
    default-server inter %(inter)dms fastinter %(inter)dms downinter %(inter)dms fall 2 rise 1
    http-response set-header %(served)s %%s
%(sticky)s%(servers)s""" % {"sock": self.stats_socket, "port": self.port, "inter": self.check_ms,
                             "served": SERVED_BY, "sticky": sticky, "servers": servers}

    def start(self, port=None):
        """port: the one to listen on (a free one if None or taken)."""
        if not os.access(HAPROXY_BIN, os.X_OK):
            raise AssertionError("%s is missing; scripts/setup-deps.sh installs haproxy"
                                 % HAPROXY_BIN)
        self.dir = tempfile.mkdtemp(prefix="berth-haproxy-")
        try:
            for attempt in range(3):
                self.port = port if port is not None and attempt == 0 else h.free_port()
                cfg = os.path.join(self.dir, "haproxy.cfg")
                with open(cfg, "w") as f:
                    f.write(self.config_text())
                log = open(os.path.join(self.dir, "haproxy.log"), "ab")
                self.proc = subprocess.Popen([HAPROXY_BIN, "-db", "-f", cfg],
                                             stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, cwd=self.dir)
                log.close()
                if self._wait_ready():
                    return self
                in_use = "address already in use" in self.log_tail().lower()
                self._reap()
                if not in_use:
                    break
            raise AssertionError("haproxy did not start:\n%s" % self.log_tail())
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self):
        """Until haproxy listens and every backend has passed its first health check
        (the stats socket says UP); False if haproxy exited."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if all(s == "UP" for s in self.server_status().values()):
                    with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("haproxy's backends not all UP within 60 s:\n%s\n%s"
                             % (self.show_stat_text(), self.log_tail()))

    def command(self, line):
        """One command on the stats socket; its answer as text."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(self.stats_socket)
            s.sendall((line + "\n").encode())
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks).decode(errors="replace")

    def show_stat(self):
        """`show stat` of the replicas' servers: {name: {column: value}}."""
        lines = self.command("show stat").splitlines()
        if not lines or not lines[0].startswith("# "):
            return {}
        cols = lines[0][2:].split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(cols, line.split(",")))
            if row.get("pxname") == "replicas" and row.get("svname") not in (
                    "FRONTEND", "BACKEND"):
                out[row["svname"]] = row
        return out

    def show_stat_text(self):
        try:
            return "\n".join("%s: %s requests %s, last check %s" % (
                n, r.get("status"), r.get("stot"), r.get("last_chk"))
                for n, r in sorted(self.show_stat().items()))
        except OSError as exc:
            return "(stats socket: %s)" % exc

    def server_status(self):
        """{server name: "UP" | "DOWN" | ...} as haproxy sees the replicas now."""
        return {n: r.get("status", "").split(" ")[0] for n, r in self.show_stat().items()}

    def wait_status(self, name, status, timeout=30):
        """Until haproxy reports server name (r0, r1, ...) in status (UP, DOWN)."""
        return h.wait_until(lambda: self.server_status().get(name) == status, timeout,
                            what="haproxy to see %s %s" % (name, status))

    def log_tail(self, lines=40):
        try:
            with open(os.path.join(self.dir, "haproxy.log"), errors="replace") as f:
                return "\n".join(f.read().splitlines()[-lines:])
        except (OSError, TypeError):
            return ""

    def _reap(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None

    def stop(self):
        self._reap()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
