/*
 * coltoken.c — token columns (mode token) in and out: a value of a session
 * (a literal, a Bind parameter, a COPY field) to its token and a token of a
 * result back to its value, through the engine's token service
 * (src/token/token.h) with the column's key domain keys from the key source.
 *
 * Owns: the text canonical form of token values (token columns have a text
 * type: the text and binary formats are the same bytes), the keys handed to
 * the token service (every live key of the domain, the active one first,
 * and lookups by key id in the same acquired key table), and the messages a
 * client sees (never a value, never a token).
 *
 * A token column of a tenant-keyed table uses its tenant's key domain
 * "tenant:<T>/<key_domain>" (eng_col_domain_t: the rules of encrypted
 * columns, colcrypt.h "Tenants") as the vault domain, for the lookup digest
 * and the sealed value: tenant A's lookup never finds B's token, a token
 * that is not in the session tenant's domain is another tenant's (the
 * foreign-value rule: 42501, or NULL), and once a tenant is crypto-shredded
 * its tokens' sealed values name a destroyed key (XX001).
 */
#include "engine/engine_internal.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "token/token.h"

/* The acquired key table and the domain a by-id lookup searches; missed: the
 * last key id asked for that the table does not hold (0 none). */
typedef struct key_ctx {
    const ph_keysource *table;
    const char *domain;
    uint32_t missed;
    char name[PH_KEYRING_MAX_DOMAIN + 1]; /* a tenant's domain */
} key_ctx;

static const ph_field_key *key_by_id(void *ud, uint32_t key_id)
{
    key_ctx *kc = ud;
    const ph_field_key *k = ph_keysource_key_by_id(kc->table, kc->domain, key_id);
    if (!k)
        kc->missed = key_id;
    return k;
}

/* The service, or the refusal when none is configured. */
static ph_tokens *service(const ph_engine *e, const ph_schema_column *col, eng_cc_err *err)
{
    if (!e->tokens)
        eng_cc_errf(err, "0A000",
                    "phantom: %s uses mode token, but no token vault is configured (add a tokens: "
                    "section)",
                    col->qualified);
    return e->tokens;
}

/* Acquires the key table and fills k with the live keys of col's domain for
 * who (0), or sets the error (-1; nothing left acquired). create: a value
 * to store or look up (the domain must have a write key); else a token to
 * read (a shredded tenant's domain has none: its sealed values then name a
 * destroyed key). */
static int keys_for(const ph_engine *e, const eng_tenancy *who, const ph_schema_column *col,
                    int create, key_ctx *kc, const ph_field_key **live, size_t max,
                    ph_token_keys *k, eng_cc_err *err)
{
    kc->missed = 0;
    kc->domain =
        eng_col_domain_t(e->keys, who, col, create, &kc->table, kc->name, sizeof kc->name, err);
    if (!kc->domain)
        return -1;
    size_t n = ph_keysource_domain_keys(kc->table, kc->domain, live, max);
    if ((n == 0 && create) || n > max) {
        ph_keysource_release(e->keys, kc->table);
        if (n == 0)
            eng_cc_errf(err, "XX000", "phantom: no encryption key for key domain %s (column %s)",
                        col->key_domain, col->qualified);
        else
            eng_cc_errf(err, "0A000",
                        "phantom: key domain %s has %zu live key versions; at most %zu",
                        col->key_domain, n, max);
        return -1;
    }
    *k = (ph_token_keys){kc->domain, live, n, key_by_id, kc};
    return 0;
}

int eng_col_tokenize_t(const ph_engine *e, const eng_tenancy *who, const ph_schema_column *col,
                       int binary, const uint8_t *v, size_t len, int create, ph_buf *out,
                       eng_cc_err *err)
{
    ph_tokens *svc = service(e, col, err);
    if (!svc)
        return -1;
    ph_buf canon = {0};
    ph_enc_opts o = PH_ENC_OPTS_DEFAULT;
    ph_enc_status st = binary ? ph_canon_from_binary(PH_LT_TEXT, v, len, &o, &canon)
                              : ph_canon_from_text(PH_LT_TEXT, (const char *)v, len, &o, &canon);
    if (st != PH_ENC_OK) {
        eng_buf_wipe(&canon);
        eng_cc_errf(err, st == PH_ENC_ENOMEM ? "53200" : "22P02",
                    "phantom: invalid value for %s (%s)", col->qualified, ph_enc_strerror(st));
        return -1;
    }
    key_ctx kc;
    const ph_field_key *live[ENG_MAX_VERSIONS];
    ph_token_keys k;
    int rc = -1;
    if (keys_for(e, who, col, 1, &kc, live, ENG_MAX_VERSIONS, &k, err) == 0) {
        ph_token_err te = {{0}, {0}};
        rc = ph_tokens_tokenize(svc, &k, col->format, canon.data ? canon.data : (const uint8_t *)"",
                                canon.len, create, out, &te);
        ph_keysource_release(e->keys, kc.table);
        if (rc < 0 && strcmp(te.sqlstate, "22P02") == 0)
            eng_cc_errf(err, te.sqlstate, "phantom: invalid value for %s (%s)", col->qualified,
                        te.message);
        else if (rc < 0)
            eng_cc_errf(err, te.sqlstate[0] ? te.sqlstate : "XX000",
                        "phantom: cannot tokenize a value of %s: %s", col->qualified, te.message);
    }
    eng_buf_wipe(&canon);
    return rc < 0 ? -1 : 0;
}

int eng_col_tokenize(const ph_engine *e, const ph_schema_column *col, int binary, const uint8_t *v,
                     size_t len, int create, ph_buf *out, eng_cc_err *err)
{
    return eng_col_tokenize_t(e, NULL, col, binary, v, len, create, out, err);
}

/* Why token tok of col did not detokenize for who (te from the service,
 * kc's table still acquired): another tenant's token (1 NULL or -1), a
 * destroyed key (a shredded tenant), or the service's reason (-1). */
static int detok_failed(const key_ctx *kc, const eng_tenancy *who, const ph_schema_column *col,
                        const ph_token_err *te, eng_cc_err *err)
{
    if (ph_schema_column_tenant_keyed(col) && strcmp(te->sqlstate, "XX001") == 0) {
        char owner[PH_TENANT_MAX + 1] = "";
        bool destroyed = false;
        if (kc->missed && ph_keysource_key_owner(kc->table, kc->missed, owner, &destroyed) &&
            destroyed) {
            eng_cc_errf(
                err, "XX001",
                "phantom: cannot detokenize a value of %s: its key was destroyed (the tenant "
                "was crypto-shredded)",
                col->qualified);
            return -1;
        }
        if (strncmp(te->message, PH_TOKEN_UNKNOWN_MSG, strlen(PH_TOKEN_UNKNOWN_MSG)) == 0)
            return eng_col_foreign(who, col, err); /* not the session tenant's: another's */
    }
    eng_cc_errf(err, te->sqlstate[0] ? te->sqlstate : "XX001",
                "phantom: cannot detokenize a value of %s: %s", col->qualified, te->message);
    return -1;
}

int eng_col_detokenize_t(const ph_engine *e, const eng_tenancy *who, const ph_schema_column *col,
                         const uint8_t *tok, size_t len, int binary, ph_buf *out, eng_cc_err *err)
{
    ph_tokens *svc = service(e, col, err);
    if (!svc)
        return -1;
    if (ph_schema_column_tenant_keyed(col) && (!who || !who->tenant))
        return eng_col_foreign(who, col, err); /* every token is a tenant's */
    key_ctx kc;
    const ph_field_key *live[ENG_MAX_VERSIONS];
    ph_token_keys k;
    if (keys_for(e, who, col, 0, &kc, live, ENG_MAX_VERSIONS, &k, err) != 0)
        return -1;
    ph_buf canon = {0};
    ph_token_err te = {{0}, {0}};
    int rc = ph_tokens_detokenize(svc, &k, (const char *)tok, len, &canon, &te);
    if (rc != 0)
        rc = detok_failed(&kc, who, col, &te, err);
    ph_keysource_release(e->keys, kc.table);
    if (rc == 0) {
        ph_enc_opts o = PH_ENC_OPTS_DEFAULT;
        ph_enc_status st = canon.len == 0 ? PH_ENC_OK /* the empty string */
                           : binary ? ph_canon_to_binary(PH_LT_TEXT, canon.data, canon.len, &o, out)
                                    : ph_canon_to_text(PH_LT_TEXT, canon.data, canon.len, &o, out);
        if (st != PH_ENC_OK) {
            eng_cc_errf(err, "XX001", "phantom: cannot format a detokenized value of %s: %s",
                        col->qualified, ph_enc_strerror(st));
            rc = -1;
        }
    }
    eng_buf_wipe(&canon);
    return rc;
}

int eng_col_detokenize(const ph_engine *e, const ph_schema_column *col, const uint8_t *tok,
                       size_t len, int binary, ph_buf *out, eng_cc_err *err)
{
    int rc = eng_col_detokenize_t(e, NULL, col, tok, len, binary, out, err);
    return rc == 1 ? -1 : rc; /* without a tenancy, never NULL */
}
