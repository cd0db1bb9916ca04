/*
 * db.h — the tools' direct connection to PostgreSQL (libpq), bypassing the
 * proxy: `phantom migrate`, `verify` and `reencrypt`.
 *
 * Owns: connecting with the session settings the column codec expects
 * (UTF8, ISO dates, UTC, hex bytea, exact floats), running statements with
 * text or binary parameters, and error messages that never quote a value:
 * PostgreSQL's data errors (classes 22 and 23) can quote the offending value,
 * so for those only the SQLSTATE, constraint and column names are reported.
 */
#ifndef PHANTOM_TOOLS_DB_H
#define PHANTOM_TOOLS_DB_H

#include <libpq-fe.h>
#include <stddef.h>

typedef struct ph_db {
    PGconn *conn;
    char sqlstate[6]; /* of the last failure, "" if none */
} ph_db;

/* Connects to dsn (a libpq connection string or URI). 0, or -1 with err. */
int ph_db_connect(ph_db *db, const char *dsn, char *err, size_t errlen);
void ph_db_close(ph_db *db);

/*
 * Runs sql with n parameters (values[i] NULL = SQL NULL; lens/formats NULL =
 * all text) and returns the result when it is PGRES_COMMAND_OK or
 * PGRES_TUPLES_OK (the caller PQclear()s it); NULL with err otherwise.
 */
PGresult *ph_db_query(ph_db *db, const char *sql, int n, const char *const *values, const int *lens,
                      const int *formats, char *err, size_t errlen);

/* ph_db_query with results in binary format (cast columns to text or bytea
 * to get their raw bytes). */
PGresult *ph_db_query_bin(ph_db *db, const char *sql, int n, const char *const *values,
                          const int *lens, const int *formats, char *err, size_t errlen);

/* ph_db_query without parameters, result discarded: 0 or -1. */
int ph_db_exec(ph_db *db, const char *sql, char *err, size_t errlen);

/* A quoted identifier ("a""b"), heap; NULL on OOM. */
char *ph_db_ident(ph_db *db, const char *name);

/* The SQLSTATE of the last failed ph_db_query ("" if none). */
const char *ph_db_sqlstate(const ph_db *db);

#endif
