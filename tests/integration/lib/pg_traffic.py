"""What the PostgreSQL fault tests share: workers sending requests without pause while
the database is stopped, restarted or frozen, every answer recorded and checked
(Traffic), and holding PostgreSQL's processes with SIGSTOP (freeze, thaw)."""

import os
import signal
import threading
import time


def children(pid):
    """The pids whose parent is pid (from /proc)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        # the fields after the command's ")": state, ppid, ...
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def freeze(pg):
    """Stop (SIGSTOP) the postmaster of pg (a pg_fixture.PostgresServer) and its
    children; returns their pids for thaw()."""
    with open(os.path.join(pg.data_dir, "postmaster.pid")) as f:
        pm = int(f.readline())
    pids = [pm] + children(pm)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    return pids


def thaw(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


class Traffic:
    """`workers` threads each sending the requests `kinds` names in turn (starting at its
    own index) through request(reg, kind), on a client from registry(); every answer is
    recorded as (worker, start, end, kind, status, clean) and anything but a 200 or a
    clean 503 (on /v2 UNAVAILABLE with Retry-After, on the ECR API a ServerException),
    an exception (a timeout, a reset) or an answer slower than bound is a failure in
    `bad`. Subclasses define kinds, registry() and request()."""

    kinds = ()

    def __init__(self, server, workers, bound, wait=180.0):
        self.server = server
        self.workers = workers
        self.bound = bound
        self.wait = wait
        self.cond = threading.Condition()
        self.stop = threading.Event()
        self.records = []
        self.bad = []
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(workers)]

    def registry(self):
        raise NotImplementedError

    def request(self, reg, kind):
        raise NotImplementedError

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(self.bound * 4)
            if t.is_alive():
                self.bad.append("a worker did not finish: a request hangs")

    @staticmethod
    def clean_503(kind, resp):
        if resp.status != 503:
            return False
        if kind == "ecr":
            try:
                return resp.json().get("__type") == "ServerException"
            except ValueError:
                return False
        try:
            codes = resp.error_codes()
        except AssertionError:
            return False
        return codes == ["UNAVAILABLE"] and bool(resp.header("Retry-After"))

    def one(self, worker, reg, kind):
        t0 = time.monotonic()
        try:
            resp = self.request(reg, kind)
        except Exception as exc:  # a timeout (a request that hangs), a reset
            with self.cond:
                self.bad.append("worker %d %s raised %r after %.1f s"
                                % (worker, kind, exc, time.monotonic() - t0))
                self.cond.notify_all()
            return
        t1 = time.monotonic()
        clean = self.clean_503(kind, resp)
        with self.cond:
            self.records.append((worker, t0, t1, kind, resp.status, clean))
            if resp.status != 200 and not clean:
                self.bad.append("worker %d %s -> %d %r" % (worker, kind, resp.status,
                                                          resp.body[:300]))
            if t1 - t0 > self.bound:
                self.bad.append("worker %d %s took %.1f s" % (worker, kind, t1 - t0))
            self.cond.notify_all()

    def run(self, worker):
        reg = self.registry()
        n = worker
        while not self.stop.is_set():
            self.one(worker, reg, self.kinds[n % len(self.kinds)])
            n += 1

    def count(self, pred):
        return sum(1 for r in self.records if pred(r))

    def each_worker(self, pred):
        """Whether every worker has an answer for which pred(record) holds."""
        return all(any(r[0] == w and pred(r) for r in self.records)
                   for w in range(self.workers))

    def served_after(self, t, status=200):
        """Whether every worker got status (default 200) for a request begun after t."""
        return self.each_worker(lambda r: r[1] > t and r[4] == status)

    def wait_for(self, what, pred):
        with self.cond:
            # a wrong answer ends the wait at once
            if not self.cond.wait_for(lambda: self.bad or pred(), self.wait) or self.bad:
                raise AssertionError("timed out waiting for %s (%d answers, bad %r)"
                                     % (what, len(self.records), self.bad[:5]))
