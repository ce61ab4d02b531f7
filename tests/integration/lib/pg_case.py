"""A test class whose berth keeps its metadata in a PostgreSQL of the class's own
(pg_fixture.py): cls.pg, cls.server (with server_config) and cls.reg, started in
setUpClass and stopped by class cleanups; a failing test prints PostgreSQL's log and the
tail of berth's (h.LogsOnFailure). A class that wants its own database or role in the
server first overrides database(pg), which gives berth's connection string."""

import unittest

import berth_harness as h
from pg_fixture import PostgresServer, berth_env


class PostgresTestCase(h.LogsOnFailure, unittest.TestCase):
    server_config = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pg = PostgresServer().start()
        cls.addClassCleanup(cls.pg.stop)
        cls.server = h.Server(config=cls.server_config, env=berth_env(cls.database(cls.pg)))
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.reg = cls.server.registry()

    @classmethod
    def database(cls, pg):
        return pg.dsn
