/*
 * vault_pg.c — the shared token vault: a table in a separate PostgreSQL that
 * the operator runs (vault.h), reached with libpq.
 *
 * Owns: the connection (connect_timeout 10 s unless the DSN says otherwise;
 * re-established once per call after it was lost), the table
 *
 *   phantom_tokens (domain text, lookup bytea, token text, sealed bytea,
 *                   created_at timestamptz, PRIMARY KEY (domain, lookup),
 *                   UNIQUE (domain, token))
 *
 * (created if missing; a concurrent creation by another proxy is retried),
 * and three server-side prepared statements, binary parameters and results.
 * Concurrent tokenization of one value by two proxies: both INSERT ... ON
 * CONFLICT DO NOTHING; PostgreSQL lets one row in (the other waits for that
 * transaction and then inserts nothing), the loser reads the winner's token
 * back. Each call is one round trip that blocks the calling worker thread.
 * The DSN (it may hold a password) is never put in a message.
 */
#include "token/vault.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

typedef struct pg_vault {
    ph_vault base;
    char *dsn;
    PGconn *conn;
    int prepared; /* the statements exist on conn */
} pg_vault;

static const char create_sql[] =
    "CREATE TABLE IF NOT EXISTS phantom_tokens (domain text NOT NULL, lookup bytea NOT NULL, "
    "token text NOT NULL, sealed bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), "
    "PRIMARY KEY (domain, lookup), UNIQUE (domain, token))";

static const struct {
    const char *name, *sql;
    int nparams;
} stmts[] = {
    {"phantom_tok_lookup", "SELECT token FROM phantom_tokens WHERE domain = $1 AND lookup = $2", 2},
    {"phantom_tok_token", "SELECT sealed FROM phantom_tokens WHERE domain = $1 AND token = $2", 2},
    {"phantom_tok_insert",
     "INSERT INTO phantom_tokens (domain, lookup, token, sealed) VALUES ($1, $2, $3, $4) "
     "ON CONFLICT DO NOTHING",
     4},
};

/* libpq's message without its trailing newline. */
static int pg_fail(pg_vault *v, const char *what, const PGresult *r, char *err, size_t errlen)
{
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!m && v->conn)
        m = PQerrorMessage(v->conn);
    size_t n = m ? strcspn(m, "\n") : 0;
    return ph_errf(err, errlen, "token vault (postgres): %s: %.*s", what, (int)n,
                   m && n ? m : "failed");
}

static void disconnect(pg_vault *v)
{
    if (v->conn)
        PQfinish(v->conn);
    v->conn = NULL;
    v->prepared = 0;
}

static int exec_ok(pg_vault *v, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexec(v->conn, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    int rc = ok ? 0 : pg_fail(v, what, r, err, errlen);
    PQclear(r);
    return rc;
}

static int prepare_all(pg_vault *v, char *err, size_t errlen)
{
    /* Two proxies creating the table at once: one may fail on the catalog's
     * unique index; the second attempt sees the table. */
    if (exec_ok(v, create_sql, "create table", err, errlen) != 0 &&
        exec_ok(v, create_sql, "create table", err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        PGresult *r = PQprepare(v->conn, stmts[i].name, stmts[i].sql, stmts[i].nparams, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        int rc = ok ? 0 : pg_fail(v, "prepare", r, err, errlen);
        PQclear(r);
        if (rc != 0)
            return -1;
    }
    v->prepared = 1;
    return 0;
}

static int connect_vault(pg_vault *v, char *err, size_t errlen)
{
    static const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"10", "phantom-token-vault", v->dsn, NULL};
    disconnect(v);
    v->conn = PQconnectdbParams(keys, vals, 1);
    if (!v->conn || PQstatus(v->conn) != CONNECTION_OK) {
        pg_fail(v, "connect", NULL, err, errlen);
        disconnect(v);
        return -1;
    }
    if (prepare_all(v, err, errlen) != 0) {
        disconnect(v);
        return -1;
    }
    return 0;
}

static int ensure(pg_vault *v, char *err, size_t errlen)
{
    if (v->conn && v->prepared && PQstatus(v->conn) == CONNECTION_OK)
        return 0;
    return connect_vault(v, err, errlen);
}

/* Runs prepared statement i; on a lost connection reconnects and retries
 * once. Returns the result (PGRES_TUPLES_OK / COMMAND_OK) or NULL. */
static PGresult *run(pg_vault *v, int i, const char *const *vals, const int *lens, const int *fmts,
                     const char *what, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (ensure(v, err, errlen) != 0)
            return NULL;
        PGresult *r = PQexecPrepared(v->conn, stmts[i].name, stmts[i].nparams, vals, lens, fmts, 1);
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
            return r;
        pg_fail(v, what, r, err, errlen);
        PQclear(r);
        if (PQstatus(v->conn) == CONNECTION_OK)
            return NULL; /* a statement error, not a lost connection */
        disconnect(v);
    }
    return NULL;
}

static int pg_find(pg_vault *v, int i, const char *domain, const void *key, size_t klen,
                   int key_binary, ph_buf *out, const char *what, char *err, size_t errlen)
{
    const char *vals[2] = {domain, key};
    int lens[2] = {0, (int)klen}, fmts[2] = {0, key_binary};
    PGresult *r = run(v, i, vals, lens, fmts, what, err, errlen);
    if (!r)
        return PH_VAULT_ERROR;
    int rc = PH_VAULT_NOTFOUND;
    if (PQntuples(r) > 0)
        rc = ph_buf_append(out, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0)) == 0
                 ? PH_VAULT_OK
                 : ph_errf(err, errlen, "token vault (postgres): out of memory");
    PQclear(r);
    return rc;
}

static int pg_find_lookup(ph_vault *base, const char *domain, const uint8_t *lookup, size_t llen,
                          ph_buf *token, char *err, size_t errlen)
{
    return pg_find((pg_vault *)base, 0, domain, lookup, llen, 1, token, "lookup", err, errlen);
}

static int pg_find_token(ph_vault *base, const char *domain, const char *token, size_t tlen,
                         ph_buf *sealed, char *err, size_t errlen)
{
    return pg_find((pg_vault *)base, 1, domain, token, tlen, 1, sealed, "detokenize", err, errlen);
}

static int pg_insert(ph_vault *base, const char *domain, const uint8_t *lookup, size_t llen,
                     const char *token, size_t tlen, const uint8_t *sealed, size_t slen, char *err,
                     size_t errlen)
{
    pg_vault *v = (pg_vault *)base;
    const char *vals[4] = {domain, (const char *)lookup, token, (const char *)sealed};
    int lens[4] = {0, (int)llen, (int)tlen, (int)slen}, fmts[4] = {0, 1, 1, 1};
    PGresult *r = run(v, 2, vals, lens, fmts, "insert", err, errlen);
    if (!r)
        return PH_VAULT_ERROR;
    int inserted = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (inserted)
        return PH_VAULT_OK;
    ph_buf scratch = {0};
    int found = pg_find_lookup(base, domain, lookup, llen, &scratch, err, errlen);
    ph_buf_free(&scratch);
    return found == PH_VAULT_OK         ? PH_VAULT_DUP_LOOKUP
           : found == PH_VAULT_NOTFOUND ? PH_VAULT_DUP_TOKEN
                                        : found;
}

static void pg_close(ph_vault *base)
{
    pg_vault *v = (pg_vault *)base;
    disconnect(v);
    if (v->dsn) {
        OPENSSL_cleanse(v->dsn, strlen(v->dsn));
        free(v->dsn);
    }
    free(v);
}

static const ph_vault_ops pg_ops = {"postgres", pg_find_lookup, pg_find_token, pg_insert, pg_close};

ph_vault *ph_vault_pg_open(const char *dsn, int connect_now, char *err, size_t errlen)
{
    pg_vault *v = ph_calloc(1, sizeof *v);
    if (!v || !dsn || !(v->dsn = strdup(dsn))) {
        ph_errf(err, errlen, dsn ? "token vault: out of memory" : "token vault (postgres): no dsn");
        free(v);
        return NULL;
    }
    v->base.ops = &pg_ops;
    char why[256];
    if (connect_vault(v, why, sizeof why) != 0) {
        if (connect_now) {
            ph_errf(err, errlen, "%s", why);
            pg_close(&v->base);
            return NULL;
        }
        ph_log_warn("token_vault_unavailable", "vault", "postgres", "error", why);
    }
    return &v->base;
}
