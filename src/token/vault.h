/*
 * vault.h — the token vault: where (domain, lookup, token, sealed value)
 * records live, outside the managed database.
 *
 * Owns: the small interface every vault backend implements, and opening the
 * configured one (vault_sqlite.c: a local file; vault_pg.c: a table in a
 * separate PostgreSQL that several proxies share). A record is
 *
 *   domain  the key domain (text) — tokens are unique per domain
 *   lookup  a keyed deterministic digest of the value (token.c): finds the
 *           token of a value without storing the value
 *   token   the token text
 *   sealed  the value sealed under the domain's DEK (token.c; randomized
 *           AES-256-GCM envelope, bound to domain and token)
 *
 * with UNIQUE (domain, lookup) and UNIQUE (domain, token). The vault never
 * sees a plaintext value or a key. Backends are not thread-safe: token.c
 * serializes the calls. Every call blocks (a local file, or one round trip
 * to the PostgreSQL vault). Error messages never contain values (a vault
 * error text from SQLite/libpq names tables and constraints only).
 */
#ifndef PHANTOM_TOKEN_VAULT_H
#define PHANTOM_TOKEN_VAULT_H

#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"

struct ph_token_config;

/* Outcomes of vault calls. */
#define PH_VAULT_OK       0
#define PH_VAULT_NOTFOUND 1 /* find: no such record */
#define PH_VAULT_DUP_LOOKUP                                                                        \
    2                        /* insert: the domain has this lookup already (another writer won)    \
                              */
#define PH_VAULT_DUP_TOKEN 3 /* insert: the domain has this token already (draw another) */
#define PH_VAULT_ERROR     (-1)

typedef struct ph_vault ph_vault;

typedef struct ph_vault_ops {
    const char *name; /* "sqlite", "postgres" */
    /* The token of (domain, lookup): appended to token; OK or NOTFOUND. */
    int (*find_lookup)(ph_vault *v, const char *domain, const uint8_t *lookup, size_t llen,
                       ph_buf *token, char *err, size_t errlen);
    /* The sealed value of (domain, token): appended to sealed; OK or NOTFOUND. */
    int (*find_token)(ph_vault *v, const char *domain, const char *token, size_t tlen,
                      ph_buf *sealed, char *err, size_t errlen);
    /* A new record; OK, DUP_LOOKUP or DUP_TOKEN (nothing stored). */
    int (*insert)(ph_vault *v, const char *domain, const uint8_t *lookup, size_t llen,
                  const char *token, size_t tlen, const uint8_t *sealed, size_t slen, char *err,
                  size_t errlen);
    void (*close)(ph_vault *v);
} ph_vault_ops;

struct ph_vault {
    const ph_vault_ops *ops;
};

/* The local SQLite vault at path (created with mode 0600 if missing; WAL
 * journal). NULL with a reason. */
ph_vault *ph_vault_sqlite_open(const char *path, char *err, size_t errlen);

/* The PostgreSQL vault reached with the libpq connection string dsn. The
 * table (phantom_tokens) is created if missing. connect_now: try to connect
 * (and create the table) at once, failing when that does not work; else the
 * first call connects. A lost connection is re-established on the next
 * call. NULL with a reason (never the DSN). */
ph_vault *ph_vault_pg_open(const char *dsn, int connect_now, char *err, size_t errlen);

/* The vault a tokens: section configures. */
ph_vault *ph_vault_open(const struct ph_token_config *c, char *err, size_t errlen);

void ph_vault_close(ph_vault *v); /* NULL allowed */

#endif
