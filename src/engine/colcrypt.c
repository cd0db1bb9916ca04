/*
 * colcrypt.c — protected column values in and out; see colcrypt.h.
 */
#include "engine/colcrypt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"

#include <jansson.h>
#include <openssl/crypto.h>

#include "crypto/field.h"
#include "engine/keysource.h"
#include "keys/keyring.h"
#include "ops/metrics.h"

void eng_buf_wipe(ph_buf *b)
{
    if (b->data)
        OPENSSL_cleanse(b->data, b->cap);
    ph_buf_free(b);
}

ph_ltype eng_col_ltype(const ph_schema_column *c)
{
    switch (c->type) {
    case PH_TYPE_TEXT:
    case PH_TYPE_VARCHAR:
        return PH_LT_TEXT;
    case PH_TYPE_INT2:
        return PH_LT_INT2;
    case PH_TYPE_INT4:
        return PH_LT_INT4;
    case PH_TYPE_INT8:
        return PH_LT_INT8;
    case PH_TYPE_NUMERIC:
        return PH_LT_NUMERIC;
    case PH_TYPE_DATE:
        return PH_LT_DATE;
    case PH_TYPE_TIMESTAMP:
        return PH_LT_TIMESTAMP;
    case PH_TYPE_TIMESTAMPTZ:
        return PH_LT_TIMESTAMPTZ;
    case PH_TYPE_BOOL:
        return PH_LT_BOOL;
    case PH_TYPE_JSON:
        return PH_LT_JSON;
    case PH_TYPE_JSONB:
        return PH_LT_JSONB;
    case PH_TYPE_BYTEA:
        return PH_LT_BYTEA;
    }
    return PH_LT_TEXT;
}

uint32_t eng_col_type_oid(const ph_schema_column *c)
{
    if (c->type == PH_TYPE_VARCHAR)
        return 1043;
    return ph_ltype_oid(eng_col_ltype(c));
}

int32_t eng_col_typmod(const ph_schema_column *c)
{
    if (c->typmod_a < 0)
        return -1;
    switch (c->type) {
    case PH_TYPE_VARCHAR: /* VARHDRSZ + length */
        return c->typmod_a + 4;
    case PH_TYPE_NUMERIC: /* VARHDRSZ + (precision << 16 | scale) */
        return (int32_t)(((uint32_t)c->typmod_a << 16) |
                         (uint32_t)(c->typmod_b < 0 ? 0 : c->typmod_b)) +
               4;
    case PH_TYPE_TIMESTAMP:
    case PH_TYPE_TIMESTAMPTZ:
        return c->typmod_a;
    default:
        return -1;
    }
}

int16_t eng_col_typlen(const ph_schema_column *c)
{
    switch (eng_col_ltype(c)) {
    case PH_LT_BOOL:
        return 1;
    case PH_LT_INT2:
        return 2;
    case PH_LT_INT4:
    case PH_LT_DATE:
        return 4;
    case PH_LT_INT8:
    case PH_LT_TIMESTAMP:
    case PH_LT_TIMESTAMPTZ:
        return 8;
    default:
        return -1;
    }
}

ph_enc_opts eng_col_opts(const ph_schema_column *c, const ph_enc_opts *session)
{
    ph_enc_opts o = session ? *session : PH_ENC_OPTS_DEFAULT;
    o.numeric_scale = c->type == PH_TYPE_NUMERIC ? c->typmod_b : -1;
    return o;
}

int eng_ltype_from_oid(uint32_t oid, ph_ltype *out)
{
    static const struct {
        uint32_t oid;
        ph_ltype t;
    } map[] = {{25, PH_LT_TEXT},        {1043, PH_LT_TEXT},        {17, PH_LT_BYTEA},
               {16, PH_LT_BOOL},        {21, PH_LT_INT2},          {23, PH_LT_INT4},
               {20, PH_LT_INT8},        {1700, PH_LT_NUMERIC},     {1082, PH_LT_DATE},
               {1114, PH_LT_TIMESTAMP}, {1184, PH_LT_TIMESTAMPTZ}, {114, PH_LT_JSON},
               {3802, PH_LT_JSONB}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].oid == oid) {
            *out = map[i].t;
            return 0;
        }
    return -1;
}

void eng_cc_errf(eng_cc_err *e, const char *sqlstate, const char *fmt, ...)
{
    if (!e)
        return;
    va_list ap;
    va_start(ap, fmt);
    snprintf(e->sqlstate, sizeof e->sqlstate, "%s", sqlstate);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

static const char *enc_sqlstate(ph_enc_status st)
{
    switch (st) {
    case PH_ENC_ERANGE:
        return "22003";
    case PH_ENC_ETZ:
        return "22023";
    case PH_ENC_ENOMEM:
        return "53200";
    default:
        return "22P02";
    }
}

/* What PostgreSQL's own input function would also refuse for the column's
 * declared type: invalid JSON, and numeric values outside numeric(p,s)
 * (rounded to the scale first, as numeric input does). */
static ph_enc_status check_declared(const ph_schema_column *col, ph_buf *canon)
{
    ph_ltype t = eng_col_ltype(col);
    if (t == PH_LT_JSON) { /* jsonb was parsed (and normalized) by its canonical encoding */
        json_error_t je;
        json_t *j = json_loadb((const char *)canon->data, canon->len, JSON_DECODE_ANY, &je);
        OPENSSL_cleanse(je.text, sizeof je.text); /* may quote the value */
        OPENSSL_cleanse(je.source, sizeof je.source);
        if (!j)
            return PH_ENC_EINVAL;
        json_decref(j);
        return PH_ENC_OK;
    }
    if (t == PH_LT_NUMERIC && col->typmod_a > 0)
        return ph_canon_numeric_typmod(canon, col->typmod_a, col->typmod_b < 0 ? 0 : col->typmod_b);
    return PH_ENC_OK;
}

static int to_canonical(const ph_schema_column *col, const ph_enc_opts *o, int binary,
                        ph_ltype in_type, const uint8_t *v, size_t len, ph_buf *canon,
                        eng_cc_err *err)
{
    ph_enc_status st = binary ? ph_canon_from_binary(in_type, v, len, o, canon)
                              : ph_canon_from_text(in_type, (const char *)v, len, o, canon);
    if (st == PH_ENC_OK)
        st = check_declared(col, canon);
    if (st != PH_ENC_OK) {
        eng_cc_errf(err, enc_sqlstate(st), "phantom: invalid value for %s (%s)", col->qualified,
                    ph_enc_strerror(st));
        return -1;
    }
    return 0;
}

/* ---- the memo of deterministic seals ---------------------------------------------------- */

static void memo_wipe(eng_memo_ent *e)
{
    if (e->env) {
        OPENSSL_cleanse(e->env, e->env_len + e->canon_len);
        free(e->env);
    }
    memset(e, 0, sizeof *e);
}

void eng_memo_clear(eng_memo *m)
{
    for (unsigned i = 0; i < ENG_MEMO_MAX; i++)
        memo_wipe(&m->e[i]);
    m->next = 0;
}

/* Best effort: a value that cannot be remembered is simply decrypted later. */
static void memo_put(eng_memo *m, const char *domain, const uint8_t *env, size_t env_len,
                     const ph_buf *canon)
{
    eng_memo_ent *e = &m->e[m->next];
    memo_wipe(e);
    if (!(e->env = malloc(env_len + canon->len + 1)))
        return;
    memcpy(e->env, env, env_len);
    if (canon->len)
        memcpy(e->env + env_len, canon->data, canon->len);
    e->domain = domain;
    e->env_len = env_len;
    e->canon_len = canon->len;
    m->next = (m->next + 1) % ENG_MEMO_MAX;
}

/* 1 when env was sealed in this domain and its plaintext appended to canon,
 * 0 when the memo does not know it, -1 out of memory. */
static int memo_get(const eng_memo *m, const char *domain, const uint8_t *env, size_t len,
                    ph_buf *canon)
{
    for (unsigned i = 0; m && i < ENG_MEMO_MAX; i++) {
        const eng_memo_ent *e = &m->e[i];
        if (e->domain && e->env_len == len && strcmp(e->domain, domain) == 0 &&
            memcmp(e->env, env, len) == 0)
            return ph_buf_append(canon, e->env + len, e->canon_len) == 0 ? 1 : -1;
    }
    return 0;
}

/* ---- sealing and opening ---------------------------------------------------------------- */

static int seal(const ph_field_key *k, const ph_schema_column *col, const ph_enc_opts *o,
                const ph_buf *canon, ph_buf *out, eng_cc_err *err)
{
    ph_field_status fs;
    if (col->mode == PH_MODE_OPE) {
        int64_t iv = 0;
        bool inexact = false;
        ph_enc_status st =
            ph_canon_to_ope(eng_col_ltype(col), canon->data, canon->len, o, &iv, &inexact);
        if (st != PH_ENC_OK || inexact) {
            eng_cc_errf(err, st == PH_ENC_OK || st == PH_ENC_ERANGE ? "22003" : "22P02",
                        "phantom: %s (ope) cannot order this value exactly (%s)", col->qualified,
                        st == PH_ENC_OK ? "more fractional digits than the column's scale"
                                        : ph_enc_strerror(st));
            return -1;
        }
        uint8_t env[PH_FIELD_OPE_ENVELOPE];
        fs = ph_field_encrypt_ope(k, iv, env);
        if (fs == PH_FIELD_OK && ph_buf_append(out, env, sizeof env) != 0)
            fs = PH_FIELD_EINTERNAL;
    } else {
        ph_field_mode m =
            col->mode == PH_MODE_DETERMINISTIC ? PH_FIELD_DETERMINISTIC : PH_FIELD_RANDOMIZED;
        fs = ph_field_encrypt_buf(k, m, canon->data, canon->len, out);
    }
    if (fs != PH_FIELD_OK) {
        eng_cc_errf(err, "XX000", "phantom: cannot encrypt a value for %s: %s", col->qualified,
                    ph_field_strerror(fs));
        return -1;
    }
    return 0;
}

static int refuse_token(const ph_schema_column *col, eng_cc_err *err)
{
    eng_cc_errf(err, "0A000",
                "phantom: %s uses mode token, which this proxy cannot serve (no token vault is "
                "configured)",
                col->qualified);
    return -1;
}

/* Seals the value under keys[0..n), one envelope after the other (lengths in
 * lens when not NULL), remembering deterministic seals in memo. */
static int encrypt_under(const ph_field_key *const *keys, size_t n, const ph_schema_column *col,
                         const ph_enc_opts *session, int binary, ph_ltype in_type, const uint8_t *v,
                         size_t len, ph_buf *out, size_t *lens, eng_memo *memo, eng_cc_err *err)
{
    ph_enc_opts o = eng_col_opts(col, session);
    ph_buf canon = {0};
    if (ph_buf_reserve(&canon, len + 64) != 0) {
        eng_cc_errf(err, "53200", "phantom: out of memory");
        return -1;
    }
    int rc = to_canonical(col, &o, binary, in_type, v, len, &canon, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t at = out->len;
        rc = seal(keys[i], col, &o, &canon, out, err);
        if (rc == 0 && lens)
            lens[i] = out->len - at;
        if (rc == 0 && memo && col->mode == PH_MODE_DETERMINISTIC)
            memo_put(memo, col->key_domain, out->data + at, out->len - at, &canon);
    }
    eng_buf_wipe(&canon);
    return rc;
}

static int no_key(const ph_schema_column *col, eng_cc_err *err)
{
    eng_cc_errf(err, "XX000", "phantom: no encryption key for key domain %s (column %s)",
                col->key_domain, col->qualified);
    return -1;
}

void eng_keyhold_end(const ph_keysource *ks, eng_keyhold *h)
{
    if (!h)
        return;
    if (h->uses) {
        ph_metrics_add(PH_CTR_KEYS_HIT, h->uses);
        h->uses = 0;
    }
    if (h->t) {
        ph_keysource_release(ks, h->t);
        h->t = NULL;
    }
}

/* The key table to use now: with a hold (who->hold), the message's table
 * (acquired at its first value; the hold owns that reference), else one
 * acquired for the caller, given back by keys_release (a refresh may swap
 * the current table meanwhile). NULL with the "keys are unavailable" error. */
static const ph_keysource *keys_acquire(const ph_keysource *ks, const eng_tenancy *who,
                                        eng_cc_err *err)
{
    eng_keyhold *h = who ? who->hold : NULL;
    if (h && h->t) {
        h->uses++; /* a use of the keys, as an acquire counts one */
        return h->t;
    }
    const ph_keysource *t = ph_keysource_acquire(ks);
    if (!t) {
        char m[sizeof err->message];
        ph_keysource_unavailable_message(ks, 1, m, sizeof m);
        eng_cc_errf(err, PH_KEYS_UNAVAILABLE_SQLSTATE, "%s", m);
    } else if (h) {
        h->t = t;
    }
    return t;
}

/* Gives back a table from keys_acquire (a held one stays with the hold). */
static void keys_release(const ph_keysource *ks, const eng_tenancy *who, const ph_keysource *t)
{
    if (!who || !who->hold)
        ph_keysource_release(ks, t);
}

/* ---- tenants ----------------------------------------------------------------------------- */

static int no_tenant(const ph_schema_column *col, eng_cc_err *err)
{
    const char *tc = col->table ? col->table->tenant_column : NULL;
    eng_cc_errf(err, "42501",
                "phantom: %s is tenant-keyed and this session has no tenant: set one with SET "
                "phantom.tenant = '...' or the startup option phantom.tenant%s%s",
                col->qualified, tc ? ", or give the row's tenant in column " : "", tc ? tc : "");
    return -1;
}

static int tenant_failed(int rc, const char *tenant, const ph_schema_column *col, const char *why,
                         eng_cc_err *err)
{
    if (rc == PH_KS_TENANT_SHREDDED)
        eng_cc_errf(err, "42501",
                    "phantom: tenant %s was crypto-shredded: its keys are destroyed and are never "
                    "re-created (%s)",
                    tenant, col->qualified);
    else
        eng_cc_errf(err, rc == PH_KS_TENANT_ABSENT ? "XX000" : PH_KEYS_UNAVAILABLE_SQLSTATE,
                    "phantom: no encryption key of tenant %s for %s: %s", tenant, col->qualified,
                    why[0] ? why : "none loaded");
    return -1;
}

/* The key domain a value of col is written in for who (into buf for a
 * tenant's); when the acquired table *t lacks the tenant's key, it is made
 * (or loaded) first and *t re-acquired. NULL with err. */
static const char *write_domain(const ph_keysource *ks, const ph_keysource **t,
                                const eng_tenancy *who, const ph_schema_column *col, char *buf,
                                size_t len, eng_cc_err *err)
{
    if (!ph_schema_column_tenant_keyed(col))
        return col->key_domain;
    if (!who || !who->tenant) {
        no_tenant(col, err);
        return NULL;
    }
    if (ph_keyring_tenant_domain(buf, len, who->tenant, col->key_domain) != 0) {
        eng_cc_errf(err, "22023", "phantom: invalid tenant id for %s", col->qualified);
        return NULL;
    }
    if (ph_keysource_write_key(*t, buf))
        return buf;
    keys_release(ks, who, *t);
    *t = NULL;
    char why[256] = "";
    int rc = ph_keysource_tenant_keys(ks, who->tenant, col->key_domain, 1, why, sizeof why);
    if (rc != PH_KS_TENANT_READY) {
        tenant_failed(rc, who->tenant, col, why, err);
        return NULL;
    }
    eng_keyhold_end(ks, who->hold); /* the held table lacks the keys just made */
    *t = keys_acquire(ks, who, err);
    return *t ? buf : NULL;
}

/* Another tenant's value (or any, for a session without a tenant): 1 (NULL)
 * or -1 with the refusal. */
static int foreign(const eng_tenancy *who, const ph_schema_column *col, eng_cc_err *err)
{
    if (who && who->foreign_null)
        return 1;
    if (who && who->tenant)
        eng_cc_errf(err, "42501",
                    "phantom: value of tenant-keyed column %s belongs to another tenant",
                    col->qualified);
    else
        eng_cc_errf(err, "42501",
                    "phantom: value of tenant-keyed column %s belongs to a tenant and this session "
                    "has none (SET phantom.tenant)",
                    col->qualified);
    return -1;
}

static int destroyed_key(const ph_schema_column *col, eng_cc_err *err)
{
    eng_cc_errf(err, "XX001",
                "phantom: cannot decrypt a value of %s: its key was destroyed (the tenant was "
                "crypto-shredded)",
                col->qualified);
    return -1;
}

static int unknown_key(const ph_schema_column *col, uint32_t key_id, eng_cc_err *err)
{
    eng_cc_errf(err, "XX001",
                "phantom: cannot decrypt a value of %s: no key with key id %u in key domain %s",
                col->qualified, key_id, col->key_domain);
    return -1;
}

/* The key that opens key_id for who in tenant-keyed column col: 0 (*k
 * set), 1 (reads as NULL) or -1. */
static int tenant_key(const ph_keysource *t, const eng_tenancy *who, const ph_schema_column *col,
                      uint32_t key_id, const ph_field_key **k, eng_cc_err *err)
{
    const char *dname = NULL, *base;
    char owner[PH_TENANT_MAX + 1] = "";
    bool destroyed = false;
    const ph_field_key *key = ph_keysource_key_any(t, key_id, &dname);
    if (key) {
        int is_tenant = ph_keyring_domain_tenant(dname, owner, sizeof owner, &base);
        if (strcmp(is_tenant ? base : dname, col->key_domain) != 0)
            return unknown_key(col, key_id, err); /* another column's key */
        if (!who || (is_tenant && who->tenant && strcmp(owner, who->tenant) == 0)) {
            *k = key;
            return 0;
        }
        return foreign(who, col, err);
    }
    int known = ph_keysource_key_owner(t, key_id, owner, &destroyed);
    bool own = known && who && who->tenant && strcmp(owner, who->tenant) == 0;
    if (known && destroyed && (own || !who || !who->tenant))
        return destroyed_key(col, err);
    if (!who || own)
        return unknown_key(col, key_id, err);
    return foreign(who, col, err); /* not one of the session tenant's keys */
}

/* Before reading a tenant-keyed column: the session tenant's keys, loaded
 * from the keyring when this proxy has none of them yet (made by another
 * proxy); *t re-acquired then. NULL (keys unavailable) with err. */
static const ph_keysource *tenant_loaded(const ph_keysource *ks, const ph_keysource *t,
                                         const eng_tenancy *who, const ph_schema_column *col,
                                         eng_cc_err *err)
{
    char name[PH_KEYRING_MAX_DOMAIN + 1];
    if (!who || !who->tenant || !ph_schema_column_tenant_keyed(col) ||
        (who->load_tried && *who->load_tried) ||
        ph_keyring_tenant_domain(name, sizeof name, who->tenant, col->key_domain) != 0 ||
        ph_keysource_write_key(t, name) || ph_keysource_tenant_shredded(t, who->tenant))
        return t;
    keys_release(ks, who, t);
    char why[256];
    if (ph_keysource_tenant_keys(ks, who->tenant, col->key_domain, 0, why, sizeof why) !=
            PH_KS_TENANT_READY &&
        who->load_tried)
        *who->load_tried = true;
    eng_keyhold_end(ks, who->hold); /* the held table lacks the keys just loaded */
    return keys_acquire(ks, who, err);
}

const char *eng_col_domain_t(const ph_keysource *ks, const eng_tenancy *who,
                             const ph_schema_column *col, int create, const ph_keysource **t,
                             char *buf, size_t len, eng_cc_err *err)
{
    if (!(*t = keys_acquire(ks, who, err)))
        return NULL;
    const char *dom = NULL;
    if (create) {
        dom = write_domain(ks, t, who, col, buf, len, err);
    } else if (!ph_schema_column_tenant_keyed(col)) {
        dom = col->key_domain;
    } else if (!who || !who->tenant) {
        foreign(who, col, err);
    } else if (ph_keyring_tenant_domain(buf, len, who->tenant, col->key_domain) != 0) {
        eng_cc_errf(err, "22023", "phantom: invalid tenant id for %s", col->qualified);
    } else if ((*t = tenant_loaded(ks, *t, who, col, err)) != NULL) {
        dom = buf;
    }
    if (!dom && *t) {
        keys_release(ks, who, *t);
        *t = NULL;
    } else if (dom && who && who->hold) {
        ph_keysource_retain(ks, *t); /* the caller's own reference, whatever the hold does */
    }
    return dom;
}

int eng_col_foreign(const eng_tenancy *who, const ph_schema_column *col, eng_cc_err *err)
{
    return foreign(who, col, err);
}

/* Counts one protected value done (rc >= 0) and, when it was timed
 * (t0 from ph_metrics_sample_start), how long it took. */
static int counted(int rc, ph_ctr ctr, ph_hist hist, uint64_t t0)
{
    if (rc >= 0) {
        if (t0)
            ph_metrics_observe_ns(hist, ph_metrics_clock_ns() - t0);
        ph_metrics_inc(ctr);
    }
    return rc;
}

/* ---- the API ----------------------------------------------------------------------------- */

int eng_col_encrypt(const ph_keysource *ks, const ph_schema_column *col, const ph_enc_opts *session,
                    int binary, ph_ltype in_type, const uint8_t *v, size_t len, ph_buf *out,
                    eng_memo *memo, eng_cc_err *err)
{
    return eng_col_encrypt_t(ks, NULL, col, session, binary, in_type, v, len, out, memo, err);
}

int eng_col_versions_t(const ph_keysource *ks, const eng_tenancy *who, const ph_schema_column *col)
{
    if (col->mode != PH_MODE_DETERMINISTIC)
        return 1;
    if (ph_schema_column_tenant_keyed(col) && (!who || !who->tenant))
        return 1; /* the lookup itself is refused */
    eng_cc_err e;
    const ph_keysource *t = keys_acquire(ks, who, &e);
    char name[PH_KEYRING_MAX_DOMAIN + 1];
    const char *dom = t ? write_domain(ks, &t, who, col, name, sizeof name, &e) : NULL;
    size_t n = dom ? ph_keysource_domain_keys(t, dom, NULL, 0) : 0;
    keys_release(ks, who, t);
    return n < 1 ? 1 : n > 65535 ? 65535 : (int)n;
}

int eng_col_versions(const ph_keysource *ks, const ph_schema_column *col)
{
    return eng_col_versions_t(ks, NULL, col);
}

/* Encrypts under the write key of key domain dom of the acquired table t,
 * or, for a lookup in a deterministic column, under every live version:
 * the number of ciphertexts, or -1. */
static int encrypt_versions(const ph_keysource *t, const char *dom, const ph_schema_column *col,
                            bool lookup, const ph_enc_opts *session, int binary, ph_ltype in_type,
                            const uint8_t *v, size_t len, ph_buf *out, size_t *lens, size_t max,
                            eng_memo *memo, eng_cc_err *err)
{
    const ph_field_key *keys[ENG_MAX_VERSIONS];
    size_t n = lookup && col->mode == PH_MODE_DETERMINISTIC
                   ? ph_keysource_domain_keys(t, dom, keys, ENG_MAX_VERSIONS)
                   : (keys[0] = ph_keysource_write_key(t, dom)) != NULL;
    if (n == 0)
        return no_key(col, err);
    if (n > ENG_MAX_VERSIONS || n > max) {
        eng_cc_errf(
            err, "0A000",
            "phantom: key domain %s has %zu live key versions; a lookup can match at most %zu",
            col->key_domain, n, max < ENG_MAX_VERSIONS ? max : (size_t)ENG_MAX_VERSIONS);
        return -1;
    }
    if (encrypt_under(keys, n, col, session, binary, in_type, v, len, out, lens, memo, err) != 0)
        return -1;
    return (int)n;
}

/* A value of col for who, in the tenant's (or the column's) key domain:
 * see encrypt_versions. Acquires and releases the key table, counts it. */
static int encrypt_col(const ph_keysource *ks, const eng_tenancy *who, const ph_schema_column *col,
                       bool lookup, const ph_enc_opts *session, int binary, ph_ltype in_type,
                       const uint8_t *v, size_t len, ph_buf *out, size_t *lens, size_t max,
                       eng_memo *memo, eng_cc_err *err)
{
    if (col->mode == PH_MODE_TOKEN)
        return refuse_token(col, err);
    uint64_t t0 = ph_metrics_sample_start();
    const ph_keysource *t = keys_acquire(ks, who, err);
    if (!t)
        return -1;
    char name[PH_KEYRING_MAX_DOMAIN + 1];
    const char *dom = write_domain(ks, &t, who, col, name, sizeof name, err);
    int n = dom ? encrypt_versions(t, dom, col, lookup, session, binary, in_type, v, len, out, lens,
                                   max, memo, err)
                : -1;
    keys_release(ks, who, t);
    return counted(n, PH_CTR_FIELD_ENCRYPTED, PH_HIST_ENCRYPT, t0);
}

int eng_col_encrypt_t(const ph_keysource *ks, const eng_tenancy *who, const ph_schema_column *col,
                      const ph_enc_opts *session, int binary, ph_ltype in_type, const uint8_t *v,
                      size_t len, ph_buf *out, eng_memo *memo, eng_cc_err *err)
{
    int n =
        encrypt_col(ks, who, col, false, session, binary, in_type, v, len, out, NULL, 1, memo, err);
    return n < 0 ? n : 0;
}

int eng_col_encrypt_versions_t(const ph_keysource *ks, const eng_tenancy *who,
                               const ph_schema_column *col, const ph_enc_opts *session, int binary,
                               ph_ltype in_type, const uint8_t *v, size_t len, ph_buf *out,
                               size_t *lens, size_t max, eng_memo *memo, eng_cc_err *err)
{
    return encrypt_col(ks, who, col, true, session, binary, in_type, v, len, out, lens, max, memo,
                       err);
}

int eng_col_encrypt_versions(const ph_keysource *ks, const ph_schema_column *col,
                             const ph_enc_opts *session, int binary, ph_ltype in_type,
                             const uint8_t *v, size_t len, ph_buf *out, size_t *lens, size_t max,
                             eng_memo *memo, eng_cc_err *err)
{
    return eng_col_encrypt_versions_t(ks, NULL, col, session, binary, in_type, v, len, out, lens,
                                      max, memo, err);
}

/* Opens an envelope of col for who into canon: 0, 1 (reads as NULL) or -1. */
static int open_envelope(const ph_keysource *ks, const eng_tenancy *who,
                         const ph_schema_column *col, const ph_enc_opts *o, const uint8_t *env,
                         size_t len, const eng_memo *memo, ph_buf *canon, eng_cc_err *err)
{
    ph_field_info info;
    ph_field_status fs = ph_field_peek(env, len, &info);
    if (fs != PH_FIELD_OK) {
        eng_cc_errf(err, "XX001", "phantom: cannot decrypt a value of %s: %s", col->qualified,
                    ph_field_strerror(fs));
        return -1;
    }
    const ph_field_key *k = NULL;
    if (ph_schema_column_tenant_keyed(col)) {
        int v = tenant_key(ks, who, col, info.key_id, &k, err);
        if (v != 0)
            return v;
    } else if (!(k = ph_keysource_key_by_id(ks, col->key_domain, info.key_id))) {
        return unknown_key(col, info.key_id, err);
    }
    int known = col->mode == PH_MODE_DETERMINISTIC && info.mode == PH_ENV_DETERMINISTIC
                    ? memo_get(memo, col->key_domain, env, len, canon)
                    : 0;
    if (known != 0) {
        if (known > 0)
            return 0;
        eng_cc_errf(err, "53200", "phantom: out of memory");
        return -1;
    }
    if (col->mode == PH_MODE_OPE) {
        int64_t iv = 0;
        fs = ph_field_decrypt_ope(k, env, len, &iv);
        if (fs == PH_FIELD_OK) {
            ph_enc_status st = ph_canon_from_ope(eng_col_ltype(col), iv, o, canon);
            if (st != PH_ENC_OK) {
                eng_cc_errf(err, "XX001", "phantom: cannot decrypt a value of %s: %s",
                            col->qualified, ph_enc_strerror(st));
                return -1;
            }
        }
    } else {
        ph_field_mode m = col->mode == PH_MODE_DETERMINISTIC ? PH_FIELD_DETERMINISTIC
                          : col->mode == PH_MODE_RANDOMIZED  ? PH_FIELD_RANDOMIZED
                                                             : PH_FIELD_ANY;
        if (col->mode == PH_MODE_TOKEN)
            fs = PH_FIELD_EMODE;
        else
            fs = ph_field_decrypt_buf(k, m, env, len, canon);
    }
    if (fs != PH_FIELD_OK) {
        eng_cc_errf(err, "XX001", "phantom: cannot decrypt a value of %s: %s", col->qualified,
                    ph_field_strerror(fs));
        return -1;
    }
    return 0;
}

static int format_failed(const ph_schema_column *col, ph_enc_status st, eng_cc_err *err)
{
    eng_cc_errf(err, "XX001", "phantom: cannot format a decrypted value of %s: %s", col->qualified,
                ph_enc_strerror(st));
    return -1;
}

/* Text-like values whose canonical bytes are their output: opened straight
 * into out, checked there; on failure what was written is wiped and cut. */
static int open_into(const ph_keysource *tab, const eng_tenancy *who, const ph_schema_column *col,
                     const ph_enc_opts *o, const uint8_t *env, size_t len, ph_buf *out,
                     const eng_memo *memo, eng_cc_err *err)
{
    size_t at = out->len;
    int rc = open_envelope(tab, who, col, o, env, len, memo, out, err);
    ph_enc_status st =
        rc == 0 ? ph_canon_check_output(eng_col_ltype(col), out->data + at, out->len - at)
                : PH_ENC_OK;
    if (st != PH_ENC_OK)
        rc = format_failed(col, st, err);
    if (rc != 0 && out->len > at) {
        OPENSSL_cleanse(out->data + at, out->len - at);
        out->len = at;
    }
    return rc;
}

/* Other values: opened into a scratch buffer holding the canonical form,
 * formatted into out, the scratch wiped. */
static int open_format(const ph_keysource *tab, const eng_tenancy *who, const ph_schema_column *col,
                       const ph_enc_opts *o, const uint8_t *env, size_t len, int binary,
                       ph_buf *out, const eng_memo *memo, eng_cc_err *err)
{
    ph_buf canon = {0};
    if (ph_buf_reserve(&canon, len + 64) != 0) {
        eng_cc_errf(err, "53200", "phantom: out of memory");
        return -1;
    }
    int rc = open_envelope(tab, who, col, o, env, len, memo, &canon, err);
    if (rc == 0) {
        ph_ltype t = eng_col_ltype(col);
        ph_enc_status st = binary ? ph_canon_to_binary(t, canon.data, canon.len, o, out)
                                  : ph_canon_to_text(t, canon.data, canon.len, o, out);
        if (st != PH_ENC_OK)
            rc = format_failed(col, st, err);
    }
    eng_buf_wipe(&canon);
    return rc;
}

int eng_col_decrypt_t(const ph_keysource *ks, const eng_tenancy *who, const ph_schema_column *col,
                      const ph_enc_opts *session, const uint8_t *env, size_t len, int binary,
                      ph_buf *out, const eng_memo *memo, eng_cc_err *err)
{
    ph_enc_opts o = eng_col_opts(col, session);
    uint64_t t0 = ph_metrics_sample_start();
    const ph_keysource *tab = keys_acquire(ks, who, err);
    if (tab)
        tab = tenant_loaded(ks, tab, who, col, err);
    if (!tab)
        return -1;
    int rc = col->mode != PH_MODE_OPE && ph_canon_is_output(eng_col_ltype(col), binary)
                 ? open_into(tab, who, col, &o, env, len, out, memo, err)
                 : open_format(tab, who, col, &o, env, len, binary, out, memo, err);
    keys_release(ks, who, tab);
    return counted(rc, PH_CTR_FIELD_DECRYPTED, PH_HIST_DECRYPT, t0);
}

int eng_col_decrypt(const ph_keysource *ks, const ph_schema_column *col, const ph_enc_opts *session,
                    const uint8_t *env, size_t len, int binary, ph_buf *out, const eng_memo *memo,
                    eng_cc_err *err)
{
    return eng_col_decrypt_t(ks, NULL, col, session, env, len, binary, out, memo, err);
}

static int is_blank(uint8_t ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* \x<hex>, whitespace allowed between digit pairs (as byteain does); each
 * run of digits is decoded at once. The server writes no whitespace: the
 * whole text is tried first, in one pass. */
static int bytea_hex(const uint8_t *s, size_t len, ph_buf *out)
{
    if (ph_buf_reserve(out, len / 2) != 0)
        return -1;
    if (len % 2 == 0 && ph_hex_decode((const char *)s + 2, len - 2, out->data + out->len) == 0) {
        out->len += (len - 2) / 2;
        return 0;
    }
    for (size_t i = 2; i < len;) {
        if (is_blank(s[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && !is_blank(s[j]))
            j++;
        if (ph_hex_decode((const char *)s + i, j - i, out->data + out->len) != 0)
            return -1;
        out->len += (j - i) / 2;
        i = j;
    }
    return 0;
}

static int bytea_escape(const uint8_t *s, size_t len, ph_buf *out)
{
    if (ph_buf_reserve(out, len) != 0)
        return -1;
    for (size_t i = 0; i < len;) {
        if (s[i] != '\\') {
            out->data[out->len++] = s[i++];
            continue;
        }
        if (i + 1 < len && s[i + 1] == '\\') {
            out->data[out->len++] = '\\';
            i += 2;
            continue;
        }
        if (i + 3 < len && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
            s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
            out->data[out->len++] =
                (uint8_t)((s[i + 1] - '0') << 6 | (s[i + 2] - '0') << 3 | (s[i + 3] - '0'));
            i += 4;
            continue;
        }
        return -1;
    }
    return 0;
}

int eng_bytea_from_text(const uint8_t *s, size_t len, ph_buf *out)
{
    size_t keep = out->len;
    int rc = len >= 2 && s[0] == '\\' && s[1] == 'x' ? bytea_hex(s, len, out)
                                                     : bytea_escape(s, len, out);
    if (rc != 0)
        out->len = keep;
    return rc;
}
