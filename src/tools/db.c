/*
 * db.c — see db.h.
 */
#include "tools/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What every tool session needs, whatever the server's defaults. */
static const char session_sql[] = "SET client_encoding = 'UTF8'; SET DateStyle = 'ISO, YMD'; "
                                  "SET TimeZone = 'UTC'; SET IntervalStyle = 'postgres'; "
                                  "SET extra_float_digits = 3; SET bytea_output = 'hex'; "
                                  "SET standard_conforming_strings = on; "
                                  "SET lock_timeout = '10s'; SET statement_timeout = 0";

static void first_line(char *s)
{
    char *nl = strchr(s, '\n');
    if (nl)
        *nl = '\0';
}

/* Server notices ("relation already exists, skipping") are not for the user. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

int ph_db_connect(ph_db *db, const char *dsn, char *err, size_t errlen)
{
    memset(db, 0, sizeof *db);
    db->conn = PQconnectdb(dsn);
    if (!db->conn || PQstatus(db->conn) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to the database: %s",
                 db->conn ? PQerrorMessage(db->conn) : "out of memory");
        first_line(err);
        ph_db_close(db);
        return -1;
    }
    PQsetNoticeProcessor(db->conn, ignore_notice, NULL);
    if (ph_db_exec(db, session_sql, err, errlen) != 0) {
        ph_db_close(db);
        return -1;
    }
    return 0;
}

void ph_db_close(ph_db *db)
{
    if (db->conn)
        PQfinish(db->conn);
    db->conn = NULL;
}

static const char *field(const PGresult *r, int code)
{
    const char *v = PQresultErrorField(r, code);
    return v ? v : "";
}

/* The server's message, or for data errors (which may quote a value) only
 * where it happened. */
static void describe_error(ph_db *db, const PGresult *r, char *err, size_t errlen)
{
    const char *state = r ? field(r, PG_DIAG_SQLSTATE) : "";
    snprintf(db->sqlstate, sizeof db->sqlstate, "%s", state);
    if (!r) {
        snprintf(err, errlen, "%s", PQerrorMessage(db->conn));
    } else if (state[0] == '2' && (state[1] == '2' || state[1] == '3')) {
        snprintf(err, errlen, "SQLSTATE %s (a data error%s%s%s%s)", state,
                 field(r, PG_DIAG_CONSTRAINT_NAME)[0] ? "; constraint " : "",
                 field(r, PG_DIAG_CONSTRAINT_NAME),
                 field(r, PG_DIAG_COLUMN_NAME)[0] ? "; column " : "",
                 field(r, PG_DIAG_COLUMN_NAME));
    } else {
        snprintf(err, errlen, "%s (SQLSTATE %s)", field(r, PG_DIAG_MESSAGE_PRIMARY), state);
    }
    first_line(err);
}

static PGresult *query(ph_db *db, const char *sql, int n, const char *const *values,
                       const int *lens, const int *formats, int binary, char *err, size_t errlen)
{
    db->sqlstate[0] = '\0';
    PGresult *r = PQexecParams(db->conn, sql, n, NULL, values, lens, formats, binary);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    describe_error(db, r, err, errlen);
    PQclear(r);
    return NULL;
}

PGresult *ph_db_query(ph_db *db, const char *sql, int n, const char *const *values, const int *lens,
                      const int *formats, char *err, size_t errlen)
{
    return query(db, sql, n, values, lens, formats, 0, err, errlen);
}

PGresult *ph_db_query_bin(ph_db *db, const char *sql, int n, const char *const *values,
                          const int *lens, const int *formats, char *err, size_t errlen)
{
    return query(db, sql, n, values, lens, formats, 1, err, errlen);
}

int ph_db_exec(ph_db *db, const char *sql, char *err, size_t errlen)
{
    db->sqlstate[0] = '\0';
    PGresult *r = PQexec(db->conn, sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        describe_error(db, r, err, errlen);
    PQclear(r);
    return ok ? 0 : -1;
}

char *ph_db_ident(ph_db *db, const char *name)
{
    char *q = PQescapeIdentifier(db->conn, name, strlen(name));
    if (!q)
        return NULL;
    char *out = strdup(q);
    PQfreemem(q);
    return out;
}

const char *ph_db_sqlstate(const ph_db *db)
{
    return db->sqlstate;
}
