"""A real PostgreSQL server for tests: Debian's postgresql (15), initialised
in a temporary directory, listening only on a private Unix socket directory
(on a free port number), stopped and removed after.

initdb refuses to run as root, and tests run as root here and in CI: then
the server runs as an unprivileged user (`nobody`, or the user named by
BERTH_TEST_PG_USER), which owns the temporary directory; the test process
connects through the socket as the database superuser `berth` (trust
authentication: nothing but the socket's directory reaches it).

As a library:
    with PostgresServer() as pg:
        pg.dsn      # a libpq connection string (database postgres)
As a command, running another with BERTH_TEST_PG_DSN set to the server's
connection string (how ctest runs the storage unit tests on PostgreSQL; the
integration harness then gives every berth it starts a schema of its own
there, so `pg_fixture.py ctest -L integration` runs the suites on it):
    python3 pg_fixture.py PROGRAM [ARGS...]
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile


def _bindir():
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql; "
                       "scripts/setup-deps.sh installs it)")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self):
        self.bindir = _bindir()
        self.dir = None
        self.port = None
        self.started = False
        self._log_tail = ""  # the log's end, kept when stop() removes the directory

    def _as_server_user(self, argv):
        if os.geteuid() != 0:
            return argv
        user = os.environ.get("BERTH_TEST_PG_USER", "nobody")
        return ["runuser", "-u", user, "--"] + argv

    def _run(self, argv, **kw):
        return subprocess.run(self._as_server_user(argv), check=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, cwd=self.dir, **kw)

    @property
    def socket_dir(self):
        return os.path.join(self.dir, "sock")

    @property
    def data_dir(self):
        return os.path.join(self.dir, "data")

    @property
    def dsn(self):
        return "host=%s port=%d user=berth dbname=postgres" % (self.socket_dir, self.port)

    def start(self):
        # In /tmp whatever TMPDIR says: the server user must reach it, and a Unix
        # socket's path is limited to 107 bytes.
        self.dir = tempfile.mkdtemp(prefix="berth-pg-",
                                    dir="/tmp" if os.path.isdir("/tmp") else None)
        os.mkdir(self.socket_dir)
        if os.geteuid() == 0:
            user = os.environ.get("BERTH_TEST_PG_USER", "nobody")
            pw = pwd.getpwnam(user)
            for d in (self.dir, self.socket_dir):
                os.chown(d, pw.pw_uid, pw.pw_gid)
                os.chmod(d, 0o755)
        self.port = _free_port()
        try:
            self._run([os.path.join(self.bindir, "initdb"), "-D", self.data_dir, "-U", "berth",
                       "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"])
            # Small and private: no TCP, no fsync, shared memory in the data directory
            # (containers often have a small /dev/shm), room for several berths.
            opts = ("-k %s -p %d -c listen_addresses='' -c fsync=off -c full_page_writes=off "
                    "-c max_connections=200 -c shared_buffers=32MB "
                    "-c dynamic_shared_memory_type=mmap" % (self.socket_dir, self.port))
            # -w: pg_ctl returns once the server reports itself ready (or
            # failed); pg_isready below confirms it accepts connections.
            self._opts = opts
            self._pg_ctl_start()
            self.started = True
            subprocess.run([os.path.join(self.bindir, "pg_isready"), "-q", "-t", "60", "-U", "berth", "-h",
                            self.socket_dir, "-p", str(self.port)], check=True)
        except (subprocess.CalledProcessError, OSError) as e:
            out = getattr(e, "stdout", b"") or b""
            sys.stderr.write("pg_fixture: %s\n%s\n" % (e, out.decode(errors="replace")))
            self.dump_log()
            self.stop()
            raise
        return self

    def _pg_ctl_start(self):
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data_dir, "-l",
                   os.path.join(self.dir, "server.log"), "-w", "-t", "300", "-o", self._opts,
                   "start"])

    def halt(self):
        """Stop the server (fast: sessions are ended, their transactions rolled back)
        and keep its data, for resume() (fault tests)."""
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data_dir, "-m", "fast",
                   "-w", "-t", "120", "stop"])

    def resume(self):
        """Start the server halt() stopped, on the same port and socket."""
        self._pg_ctl_start()

    def restart(self):
        """pg_ctl restart -m fast: the server stops and starts again at once."""
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data_dir, "-l",
                   os.path.join(self.dir, "server.log"), "-m", "fast", "-w", "-t", "300",
                   "-o", self._opts, "restart"])

    def _read_log_tail(self):
        try:
            with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def dump_log(self):
        # A test whose cleanups stopped the server before its failure is reported
        # (addCleanup(pg.stop) runs before LogsOnFailure dumps) still gets the log.
        sys.stderr.write(self._read_log_tail() if self.dir is not None else self._log_tail)

    def psql(self, sql):
        """Run SQL through psql as the superuser; returns its output."""
        out = subprocess.run([os.path.join(self.bindir, "psql"), "-X", "-A", "-t", "-v",
                              "ON_ERROR_STOP=1", "-d", self.dsn, "-c", sql], check=True,
                             stdout=subprocess.PIPE)
        return out.stdout.decode()

    def stop(self):
        if self.dir is None:
            return
        if self.started:
            try:
                self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data_dir, "-m", "fast",
                           "-w", "-t", "120", "stop"])
            except subprocess.CalledProcessError as e:
                sys.stderr.write("pg_fixture: stop: %s\n" % e)
            self.started = False
        self._log_tail = self._read_log_tail()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def berth_env(dsn):
    """The environment of a berth whose metadata is in PostgreSQL at dsn."""
    return {"BERTH_META_BACKEND": "postgres", "BERTH_META_POSTGRES_DSN": dsn}


def schema_dsn(dsn, name):
    """dsn with its search path set to a schema of its own for name (created when missing),
    as tests/unit/unit_pg.h does for a unit test's data root."""
    schema = "t_" + name.encode().hex()
    bindir = _bindir()
    subprocess.run([os.path.join(bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn,
                    "-c", "SET client_min_messages = warning; CREATE SCHEMA IF NOT EXISTS %s"
                    % schema], check=True, stdout=subprocess.DEVNULL)
    return "%s options=-csearch_path=%s" % (dsn, schema)


def main(argv):
    if len(argv) < 2:
        sys.stderr.write("usage: pg_fixture.py PROGRAM [ARGS...]\n")
        return 2
    with PostgresServer() as pg:
        env = dict(os.environ, BERTH_TEST_PG_DSN=pg.dsn)
        rc = subprocess.call(argv[1:], env=env)
        if rc != 0:
            pg.dump_log()
        return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
