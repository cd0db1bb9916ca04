/*
 * vault_sqlite.c — the local token vault: one SQLite file (vault.h).
 *
 * Owns: the file (created with mode 0600 before SQLite opens it, so its
 * journal files inherit that mode), its schema and format marker, WAL
 * journaling with synchronous=FULL (a token the database already holds must
 * never be lost from the vault: every insert is on disk before the statement
 * that stores the token is sent), and the three prepared statements. One
 * connection, used by one thread at a time (token.c serializes).
 */
#include "token/vault.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/err.h"
#include "common/mem.h"

#define VAULT_FORMAT "phantom-token-vault-1"

typedef struct sq_vault {
    ph_vault base;
    sqlite3 *db;
    sqlite3_stmt *by_lookup, *by_token, *ins;
} sq_vault;

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS phantom_vault_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "INSERT OR IGNORE INTO phantom_vault_meta VALUES ('format', '" VAULT_FORMAT "');"
    "CREATE TABLE IF NOT EXISTS phantom_tokens ("
    " domain TEXT NOT NULL, lookup BLOB NOT NULL, token TEXT NOT NULL, sealed BLOB NOT NULL,"
    " created INTEGER NOT NULL, PRIMARY KEY (domain, lookup), UNIQUE (domain, token));";

static int sq_fail(sq_vault *v, const char *what, char *err, size_t errlen)
{
    return ph_errf(err, errlen, "token vault (sqlite): %s: %s", what, sqlite3_errmsg(v->db));
}

static int run(sqlite3_stmt *st, int *step)
{
    *step = sqlite3_step(st);
    return *step == SQLITE_ROW || *step == SQLITE_DONE ? 0 : -1;
}

static int sq_find_lookup(ph_vault *base, const char *domain, const uint8_t *lookup, size_t llen,
                          ph_buf *token, char *err, size_t errlen)
{
    sq_vault *v = (sq_vault *)base;
    sqlite3_stmt *st = v->by_lookup;
    int step = 0, rc = PH_VAULT_NOTFOUND;
    if (sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(st, 2, lookup, (int)llen, SQLITE_STATIC) != SQLITE_OK ||
        run(st, &step) != 0)
        rc = sq_fail(v, "lookup", err, errlen);
    else if (step == SQLITE_ROW) {
        const void *t = sqlite3_column_text(st, 0);
        int n = sqlite3_column_bytes(st, 0);
        rc = t && ph_buf_append(token, t, (size_t)n) == 0
                 ? PH_VAULT_OK
                 : ph_errf(err, errlen, "token vault (sqlite): out of memory");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int sq_find_token(ph_vault *base, const char *domain, const char *token, size_t tlen,
                         ph_buf *sealed, char *err, size_t errlen)
{
    sq_vault *v = (sq_vault *)base;
    sqlite3_stmt *st = v->by_token;
    int step = 0, rc = PH_VAULT_NOTFOUND;
    if (sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, token, (int)tlen, SQLITE_STATIC) != SQLITE_OK ||
        run(st, &step) != 0)
        rc = sq_fail(v, "detokenize", err, errlen);
    else if (step == SQLITE_ROW) {
        const void *b = sqlite3_column_blob(st, 0);
        int n = sqlite3_column_bytes(st, 0);
        rc = (b || n == 0) && ph_buf_append(sealed, b, (size_t)n) == 0
                 ? PH_VAULT_OK
                 : ph_errf(err, errlen, "token vault (sqlite): out of memory");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int sq_insert(ph_vault *base, const char *domain, const uint8_t *lookup, size_t llen,
                     const char *token, size_t tlen, const uint8_t *sealed, size_t slen, char *err,
                     size_t errlen)
{
    sq_vault *v = (sq_vault *)base;
    sqlite3_stmt *st = v->ins;
    int step = 0, rc = PH_VAULT_OK;
    if (sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(st, 2, lookup, (int)llen, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, token, (int)tlen, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(st, 4, sealed, (int)slen, SQLITE_STATIC) != SQLITE_OK)
        rc = sq_fail(v, "insert", err, errlen);
    else if (run(st, &step) != 0)
        rc = (step & 0xff) == SQLITE_CONSTRAINT ? PH_VAULT_DUP_TOKEN
                                                : sq_fail(v, "insert", err, errlen);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != PH_VAULT_DUP_TOKEN)
        return rc;
    /* Which constraint: the lookup (another writer stored this value) or the token. */
    ph_buf scratch = {0};
    int found = sq_find_lookup(base, domain, lookup, llen, &scratch, err, errlen);
    ph_buf_free(&scratch);
    return found == PH_VAULT_OK ? PH_VAULT_DUP_LOOKUP : found == PH_VAULT_NOTFOUND ? rc : found;
}

static void sq_close(ph_vault *base)
{
    sq_vault *v = (sq_vault *)base;
    sqlite3_finalize(v->by_lookup);
    sqlite3_finalize(v->by_token);
    sqlite3_finalize(v->ins);
    sqlite3_close(v->db);
    free(v);
}

static const ph_vault_ops sq_ops = {"sqlite", sq_find_lookup, sq_find_token, sq_insert, sq_close};

/* The vault file exists with mode 0600 (created so when missing). */
static int precreate(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return ph_errf(err, errlen, "token vault %s: %s", path, strerror(errno));
    close(fd);
    return 0;
}

static int check_format(sq_vault *v, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(v->db, "SELECT value FROM phantom_vault_meta WHERE key = 'format'", -1,
                           &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const char *f = (const char *)sqlite3_column_text(st, 0);
        rc = f && strcmp(f, VAULT_FORMAT) == 0 ? 0 : 1;
    }
    sqlite3_finalize(st);
    if (rc == 1)
        return ph_errf(err, errlen, "token vault: the file is not a %s vault", VAULT_FORMAT);
    return rc == 0 ? 0 : sq_fail(v, "format check", err, errlen);
}

static int prepare(sq_vault *v, char *err, size_t errlen)
{
    if (sqlite3_exec(v->db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(v->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK)
        return sq_fail(v, "schema", err, errlen);
    if (check_format(v, err, errlen) != 0)
        return -1;
    if (sqlite3_prepare_v2(v->db,
                           "SELECT token FROM phantom_tokens WHERE domain = ?1 AND lookup = ?2", -1,
                           &v->by_lookup, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(v->db,
                           "SELECT sealed FROM phantom_tokens WHERE domain = ?1 AND token = ?2", -1,
                           &v->by_token, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(v->db,
                           "INSERT INTO phantom_tokens (domain, lookup, token, sealed, created) "
                           "VALUES (?1, ?2, ?3, ?4, CAST(strftime('%s', 'now') AS INTEGER))",
                           -1, &v->ins, NULL) != SQLITE_OK)
        return sq_fail(v, "prepare", err, errlen);
    return 0;
}

ph_vault *ph_vault_sqlite_open(const char *path, char *err, size_t errlen)
{
    if (!path || !*path) {
        ph_errf(err, errlen, "token vault (sqlite): no path");
        return NULL;
    }
    if (precreate(path, err, errlen) != 0)
        return NULL;
    sq_vault *v = ph_calloc(1, sizeof *v);
    if (!v) {
        ph_errf(err, errlen, "token vault: out of memory");
        return NULL;
    }
    v->base.ops = &sq_ops;
    int rc = sqlite3_open_v2(
        path, &v->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, NULL);
    if (rc != SQLITE_OK || !v->db) {
        ph_errf(err, errlen, "token vault %s: %s", path,
                v->db ? sqlite3_errmsg(v->db) : "cannot open");
        sq_close(&v->base);
        return NULL;
    }
    sqlite3_busy_timeout(v->db, 5000);
    if (prepare(v, err, errlen) != 0) {
        sq_close(&v->base);
        return NULL;
    }
    return &v->base;
}
