/*
 * token_config.h — the `tokens:` section of phantom.yaml: where the token
 * vault of `mode: token` columns lives.
 *
 * Owns: the typed vault settings and loading them (libyaml document API,
 * "NAME:LINE: reason" errors that never quote the DSN). The schema loader
 * (schema_yaml.c) reads this section from the same document as `encrypt:`
 * and keeps the result in ph_schema.tokens.
 *
 *   tokens:
 *     vault: sqlite                      # sqlite (default) | postgres
 *     path: /var/lib/phantom/tokens.db   # sqlite: the vault file (created, mode 0600)
 *     dsn: "host=vault.eu dbname=vault user=phantom"  # postgres: a libpq connection
 *                                        # string (keep the password in a passfile)
 *     cache_size: 10000                  # entries per direction of the in-memory
 *                                        # cache (value -> token, token -> value); 0: none
 *
 * Unknown keys, a missing path/dsn for the chosen vault and a DSN libpq
 * cannot parse are errors.
 */
#ifndef PHANTOM_TOKEN_CONFIG_H
#define PHANTOM_TOKEN_CONFIG_H

#include <stddef.h>

#define PH_TOKEN_DEFAULT_CACHE 10000u
#define PH_TOKEN_MAX_CACHE     10000000u

typedef enum {
    PH_VAULT_SQLITE = 0, /* a local SQLite file: one proxy */
    PH_VAULT_POSTGRES,   /* a table in an operator-run PostgreSQL: shared by proxies */
} ph_vault_kind;

typedef struct ph_token_config {
    ph_vault_kind vault;
    char *path;          /* sqlite */
    char *dsn;           /* postgres (may hold a password: never logged) */
    unsigned cache_size; /* per direction */
    size_t line;         /* of the `tokens:` key, for diagnostics */
} ph_token_config;

struct yaml_document_s;
struct yaml_node_s;

/* Loads the value of the `tokens:` key (node) of doc into a new config;
 * name is the file name for errors. -1 with "NAME:LINE: reason" in err. */
int ph_token_config_load_node(ph_token_config **out, struct yaml_document_s *doc,
                              const struct yaml_node_s *key, const struct yaml_node_s *node,
                              const char *name, char *err, size_t errlen);

void ph_token_config_free(ph_token_config *c); /* NULL allowed; wipes the DSN */

const char *ph_vault_kind_name(ph_vault_kind k);

#endif
