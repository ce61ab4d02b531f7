"""Several `berth serve` replicas that share one PostgreSQL (pg_fixture.py) and one S3
bucket (OpenStack Swift with s3api, swift_fixture.py), each with its own data root and
port on loopback: the scale-out configuration of docs/scale-out.md, on one machine.

    cluster = Cluster(replicas=2, config={...}).start()
    cluster.replicas[0].registry()     # harness Servers
    cluster.kill9(0)                   # a replica dying
    cluster.stop()

The metadata is the PostgreSQL database itself (schema public), the blobs are under the
key prefix "cluster/" of the fixture's bucket. Every replica gets the same configuration
(config) and environment (env) on top of that."""

import berth_harness as h
from pg_fixture import PostgresServer
from swift_fixture import SwiftServer

PREFIX = "cluster/"


class Cluster:
    def __init__(self, replicas=2, config=None, env=None):
        self.count = replicas
        self.config = config
        self.env = dict(env or {})
        self.pg = None
        self.s3 = None
        self.replicas = []

    def replica_env(self):
        env = {
            "BERTH_META_BACKEND": "postgres",
            "BERTH_META_POSTGRES_DSN": self.pg.dsn,
            "BERTH_STORAGE_BACKEND": "s3",
            "BERTH_STORAGE_S3_ENDPOINT": self.s3.endpoint,
            "BERTH_STORAGE_S3_REGION": self.s3.region,
            "BERTH_STORAGE_S3_BUCKET": self.s3.bucket,
            "BERTH_STORAGE_S3_PREFIX": PREFIX,
            "BERTH_STORAGE_S3_PATH_STYLE": "true",
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
        }
        env.update(self.env)
        return env

    def start(self):
        try:
            self.pg = PostgresServer().start()
            self.s3 = SwiftServer().start()
            for _ in range(self.count):
                self.add_replica()
        except BaseException:
            self.stop()
            raise
        return self

    def add_replica(self):
        server = h.Server(config=self.config, env=self.replica_env())
        self.replicas.append(server)
        server.start()
        return server

    def kill9(self, i):
        self.replicas[i].kill9()

    def psql(self, sql):
        return self.pg.psql(sql)

    def dump_logs(self):
        for i, r in enumerate(self.replicas):
            print("\n--- replica %d log tail ---\n%s" % (i, r.log_tail(80)))
        if self.s3 is not None:
            self.s3.dump_logs()
        if self.pg is not None:
            self.pg.dump_log()

    def stop(self):
        for r in self.replicas:
            r.cleanup()
        self.replicas = []
        if self.s3 is not None:
            self.s3.stop()
            self.s3 = None
        if self.pg is not None:
            self.pg.stop()
            self.pg = None

