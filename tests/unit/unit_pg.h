/*
 * The metadata backend of a unit test run: SQLite (<root>/berth.db) by
 * default; PostgreSQL when BERTH_TEST_PG_DSN holds a libpq connection
 * string (the ctest label postgres runs the storage tests a second time
 * that way, against the server tests/integration/lib/pg_fixture.py
 * starts). Each data root gets a schema of its own, named after the root's
 * directory, so a test that reopens a root finds its database again.
 */
#ifndef BERTH_UNIT_PG_H
#define BERTH_UNIT_PG_H

#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

/* The server of a PostgreSQL run, or NULL for SQLite. */
static inline const char *unit_pg_dsn(void)
{
    const char *dsn = getenv("BERTH_TEST_PG_DSN");
    return dsn != NULL && *dsn != '\0' ? dsn : NULL;
}

/* The metadata backend and target of the data root root: "sqlite" and
 * <root>/berth.db, or "postgres" and a connection string whose search path
 * is root's own schema (created when missing). */
static inline const char *unit_meta_target(const char *root, char *target, size_t cap)
{
    const char *dsn = unit_pg_dsn();
    if (dsn == NULL) {
        snprintf(target, cap, "%s/berth.db", root);
        return "sqlite";
    }
    const char *base = strrchr(root, '/');
    base = base != NULL ? base + 1 : root;
    char schema[256] = "t_";
    for (size_t i = 0; base[i] != '\0' && strlen(schema) + 3 < sizeof(schema); i++) {
        snprintf(schema + strlen(schema), 3, "%02x", (unsigned char)base[i]);
    }
    PGconn *c = PQconnectdb(dsn);
    CHECK(PQstatus(c) == CONNECTION_OK);
    char sql[300];
    snprintf(sql, sizeof(sql), "SET client_min_messages = warning; CREATE SCHEMA IF NOT EXISTS %s",
             schema);
    PGresult *res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "unit_pg: %s", PQerrorMessage(c));
    }
    CHECK(PQresultStatus(res) == PGRES_COMMAND_OK);
    PQclear(res);
    PQfinish(c);
    snprintf(target, cap, "%s options=-csearch_path=%s", dsn, schema);
    return "postgres";
}

#endif
