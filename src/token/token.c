/*
 * token.c — the token service; see token.h.
 */
#include "token/token.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/mem.h"
#include "token/token_cache.h"

#define LOOKUP_LEN    32 /* SHA-256 */
#define SEAL_MAGIC    "PHT1"
#define MAX_DRAWS     32
#define MAX_LIVE_KEYS 16

struct ph_tokens {
    ph_vault *vault;
    pthread_mutex_t mu;  /* the vault's calls */
    ph_tcache *by_value; /* (domain, lookup under the active key) -> token; tag: unused */
    ph_tcache *by_token; /* (domain, token) -> value; tag: key id of the sealed value */
    ph_token_rng_fn rng;
    void *rng_ud;
    EVP_MD *sha256; /* fetched once: an implicit fetch per digest costs more than the digest */
    atomic_uint_fast64_t created, misses, collisions, hits, vault_calls;
};

static int set_err(ph_token_err *e, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_err(ph_token_err *e, const char *sqlstate, const char *fmt, ...)
{
    if (!e)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    snprintf(e->sqlstate, sizeof e->sqlstate, "%s", sqlstate);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

static int oom(ph_token_err *e)
{
    return set_err(e, "53200", "out of memory");
}

ph_tokens *ph_tokens_new(ph_vault *vault, size_t cache_size)
{
    ph_tokens *t = ph_calloc(1, sizeof *t);
    if (!t || pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t);
        ph_vault_close(vault);
        return NULL;
    }
    t->vault = vault;
    t->rng = ph_token_rng_default;
    t->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    t->by_value = ph_tcache_new(cache_size);
    t->by_token = ph_tcache_new(cache_size);
    if (!t->by_value || !t->by_token || !t->sha256) {
        ph_tokens_free(t);
        return NULL;
    }
    return t;
}

void ph_tokens_free(ph_tokens *t)
{
    if (!t)
        return;
    ph_tcache_free(t->by_value);
    ph_tcache_free(t->by_token);
    ph_vault_close(t->vault);
    EVP_MD_free(t->sha256);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

void ph_tokens_set_rng(ph_tokens *t, ph_token_rng_fn fn, void *ud)
{
    t->rng = fn ? fn : ph_token_rng_default;
    t->rng_ud = fn ? ud : NULL;
}

void ph_tokens_cache_clear(ph_tokens *t)
{
    ph_tcache_clear(t->by_value);
    ph_tcache_clear(t->by_token);
}

void ph_tokens_get_stats(ph_tokens *t, ph_tokens_stats *st)
{
    st->created = atomic_load(&t->created);
    st->misses = atomic_load(&t->misses);
    st->collisions = atomic_load(&t->collisions);
    st->cache_hits = atomic_load(&t->hits);
    st->vault_calls = atomic_load(&t->vault_calls);
    st->cached_values = ph_tcache_count(t->by_token);
    st->cached_tokens = ph_tcache_count(t->by_value);
}

/* ---- records ---------------------------------------------------------------------------- */

/* SHA-256 of the value's deterministic envelope under k. */
static int lookup_of(const ph_tokens *t, const ph_field_key *k, const uint8_t *v, size_t len,
                     uint8_t out[LOOKUP_LEN], ph_token_err *err)
{
    uint8_t small[256];
    ph_buf env = {0};
    size_t elen = 0;
    ph_field_status fs =
        ph_field_envelope_len(PH_FIELD_DETERMINISTIC, len) <= sizeof small
            ? ph_field_encrypt(k, PH_FIELD_DETERMINISTIC, v, len, small, sizeof small, &elen)
            : ph_field_encrypt_buf(k, PH_FIELD_DETERMINISTIC, v, len, &env);
    const uint8_t *e = env.data ? env.data : small;
    if (env.data)
        elen = env.len;
    unsigned int n = 0;
    int ok =
        fs == PH_FIELD_OK && EVP_Digest(e, elen, out, &n, t->sha256, NULL) == 1 && n == LOOKUP_LEN;
    ph_buf_free(&env); /* ciphertext only */
    if (ok)
        return 0;
    return set_err(err, "XX000", "cannot compute a token lookup: %s",
                   fs == PH_FIELD_OK ? "SHA-256 failed" : ph_field_strerror(fs));
}

/* The sealed value of a new record: an envelope of "PHT1" | u16 | token | value. */
static int seal(const ph_field_key *k, const char *tok, size_t tlen, const uint8_t *v, size_t len,
                ph_buf *out, ph_token_err *err)
{
    ph_buf pt = {0};
    int rc = -1;
    if (ph_buf_reserve(&pt, 6 + tlen + len) != 0)
        return oom(err);
    memcpy(pt.data, SEAL_MAGIC, 4);
    ph_put_u16(pt.data + 4, (uint16_t)tlen);
    memcpy(pt.data + 6, tok, tlen);
    if (len)
        memcpy(pt.data + 6 + tlen, v, len);
    pt.len = 6 + tlen + len;
    ph_field_status fs = ph_field_encrypt_buf(k, PH_FIELD_RANDOMIZED, pt.data, pt.len, out);
    if (fs == PH_FIELD_OK)
        rc = 0;
    else
        set_err(err, "XX000", "cannot seal a token's value: %s", ph_field_strerror(fs));
    OPENSSL_cleanse(pt.data, pt.cap);
    ph_buf_free(&pt);
    return rc;
}

/* Opens a sealed value of token tok; appends the value to out. */
static int unseal(const ph_token_keys *k, const char *tok, size_t tlen, const ph_buf *sealed,
                  ph_buf *out, uint32_t *key_id, ph_token_err *err)
{
    ph_field_info info;
    ph_field_status fs = ph_field_peek(sealed->data, sealed->len, &info);
    if (fs != PH_FIELD_OK || info.mode != PH_ENV_RANDOMIZED)
        return set_err(err, "XX001", "the vault record of this token is malformed");
    const ph_field_key *key = k->by_id ? k->by_id(k->ud, info.key_id) : NULL;
    if (!key)
        return set_err(err, "XX001",
                       "no key with key id %u in key domain %s (destroyed or unknown): the token "
                       "cannot be detokenized",
                       info.key_id, k->domain);
    ph_buf pt = {0};
    fs = ph_field_decrypt_buf(key, PH_FIELD_RANDOMIZED, sealed->data, sealed->len, &pt);
    int rc = -1;
    if (fs != PH_FIELD_OK)
        set_err(err, "XX001", "the vault record of this token does not open: %s",
                ph_field_strerror(fs));
    else if (pt.len < 6 || memcmp(pt.data, SEAL_MAGIC, 4) != 0 || ph_get_u16(pt.data + 4) != tlen ||
             pt.len < 6 + tlen || CRYPTO_memcmp(pt.data + 6, tok, tlen) != 0)
        set_err(err, "XX001", "the vault record of this token belongs to another token");
    else if (ph_buf_append(out, pt.data + 6 + tlen, pt.len - 6 - tlen) != 0)
        oom(err);
    else {
        *key_id = info.key_id;
        rc = 0;
    }
    if (pt.data)
        OPENSSL_cleanse(pt.data, pt.cap);
    ph_buf_free(&pt);
    return rc;
}

static int vault_error(const char *why, ph_token_err *err)
{
    return set_err(err, PH_TOKEN_VAULT_SQLSTATE, "the token vault is unavailable: %s", why);
}

/* ---- tokenize -------------------------------------------------------------------------- */

/* Under t->mu: the existing token of the value (any live key), 1 found
 * (token in out, *key_at: index of the key it was found under), 0 none. */
static int find_existing(ph_tokens *t, const ph_token_keys *k, const uint8_t *v, size_t len,
                         const uint8_t l0[LOOKUP_LEN], ph_buf *out, size_t *key_at,
                         ph_token_err *err)
{
    char why[256];
    for (size_t i = 0; i < k->nlive; i++) {
        uint8_t li[LOOKUP_LEN];
        if (i == 0)
            memcpy(li, l0, LOOKUP_LEN);
        else if (lookup_of(t, k->live[i], v, len, li, err) != 0)
            return -1;
        atomic_fetch_add(&t->vault_calls, 1);
        int r =
            t->vault->ops->find_lookup(t->vault, k->domain, li, LOOKUP_LEN, out, why, sizeof why);
        if (r == PH_VAULT_OK) {
            *key_at = i;
            return 1;
        }
        if (r != PH_VAULT_NOTFOUND)
            return vault_error(why, err);
    }
    return 0;
}

/* Under t->mu: a new record for the value; its token in out. */
static int create_record(ph_tokens *t, const ph_token_keys *k, ph_token_format f, const uint8_t *v,
                         size_t len, const uint8_t l0[LOOKUP_LEN], ph_buf *out, ph_token_err *err)
{
    char why[256];
    for (int draw = 0; draw < MAX_DRAWS; draw++) {
        char tok[PH_TOKEN_MAX_LEN + 1];
        int tl = ph_token_generate(f, v, len, t->rng, t->rng_ud, tok, why, sizeof why);
        if (tl < 0)
            return set_err(err, "XX000", "cannot make a token: %s", why);
        ph_buf sealed = {0};
        if (seal(k->live[0], tok, (size_t)tl, v, len, &sealed, err) != 0)
            return -1;
        atomic_fetch_add(&t->vault_calls, 1);
        int r = t->vault->ops->insert(t->vault, k->domain, l0, LOOKUP_LEN, tok, (size_t)tl,
                                      sealed.data, sealed.len, why, sizeof why);
        ph_buf_free(&sealed);
        if (r == PH_VAULT_OK) {
            atomic_fetch_add(&t->created, 1);
            return ph_buf_append(out, tok, (size_t)tl) == 0 ? 0 : oom(err);
        }
        if (r == PH_VAULT_DUP_LOOKUP) { /* another proxy stored this value meanwhile */
            atomic_fetch_add(&t->vault_calls, 1);
            r = t->vault->ops->find_lookup(t->vault, k->domain, l0, LOOKUP_LEN, out, why,
                                           sizeof why);
            if (r == PH_VAULT_OK)
                return 0;
            return r == PH_VAULT_NOTFOUND ? vault_error("a record vanished", err)
                                          : vault_error(why, err);
        }
        if (r != PH_VAULT_DUP_TOKEN)
            return vault_error(why, err);
        atomic_fetch_add(&t->collisions, 1);
    }
    return set_err(err, "XX000",
                   "cannot make a token: %d random tokens in a row exist already in key domain %s "
                   "(the format's token space is nearly used up)",
                   MAX_DRAWS, k->domain);
}

static int miss_token(ph_tokens *t, ph_buf *out, ph_token_err *err)
{
    char tok[PH_TOKEN_MAX_LEN + 1];
    int tl = ph_token_miss(t->rng, t->rng_ud, tok);
    if (tl < 0)
        return set_err(err, "XX000", "cannot make a token: the random number generator failed");
    atomic_fetch_add(&t->misses, 1);
    return ph_buf_append(out, tok, (size_t)tl) == 0 ? 0 : oom(err);
}

static int check_keys(const ph_token_keys *k, ph_token_err *err)
{
    if (!k || !k->domain || !k->live || k->nlive == 0 || !k->live[0])
        return set_err(err, "XX000", "no key for the token's key domain");
    if (k->nlive > MAX_LIVE_KEYS)
        return set_err(err, "0A000", "key domain %s has %zu live key versions; at most %d",
                       k->domain, k->nlive, MAX_LIVE_KEYS);
    return 0;
}

int ph_tokens_tokenize(ph_tokens *t, const ph_token_keys *k, ph_token_format f, const uint8_t *v,
                       size_t len, int create, ph_buf *out, ph_token_err *err)
{
    char why[200];
    uint8_t l0[LOOKUP_LEN];
    if (check_keys(k, err) != 0)
        return -1;
    if (create && ph_token_format_check(f, v, len, why, sizeof why) != 0)
        return set_err(err, "22P02", "%s", why);
    if (lookup_of(t, k->live[0], v, len, l0, err) != 0)
        return -1;
    size_t at = out->len;
    int hit = ph_tcache_get(t->by_value, k->domain, l0, LOOKUP_LEN, out, NULL);
    if (hit < 0)
        return oom(err);
    if (hit) {
        atomic_fetch_add(&t->hits, 1);
        return 1;
    }
    size_t key_at = 0;
    pthread_mutex_lock(&t->mu);
    int rc = find_existing(t, k, v, len, l0, out, &key_at, err);
    if (rc == 0 && create && (rc = create_record(t, k, f, v, len, l0, out, err)) == 0)
        rc = 1;
    pthread_mutex_unlock(&t->mu);
    if (rc == 0)
        return miss_token(t, out, err);
    if (rc < 0)
        return -1;
    /* Both directions are known now. */
    const char *tok = (const char *)out->data + at;
    size_t tlen = out->len - at;
    ph_tcache_put(t->by_value, k->domain, l0, LOOKUP_LEN, tok, tlen, 0);
    ph_tcache_put(t->by_token, k->domain, tok, tlen, v, len, ph_field_key_id(k->live[key_at]));
    return 1;
}

/* ---- detokenize ------------------------------------------------------------------------ */

int ph_tokens_detokenize(ph_tokens *t, const ph_token_keys *k, const char *tok, size_t len,
                         ph_buf *out, ph_token_err *err)
{
    if (!k || !k->domain)
        return set_err(err, "XX000", "no key for the token's key domain");
    size_t at = out->len;
    uint32_t kid = 0;
    int hit = ph_tcache_get(t->by_token, k->domain, tok, len, out, &kid);
    if (hit < 0)
        return oom(err);
    if (hit && k->by_id && k->by_id(k->ud, kid)) {
        atomic_fetch_add(&t->hits, 1);
        return 0;
    }
    if (hit) { /* its key is gone: the cached value must not outlive it */
        OPENSSL_cleanse(out->data + at, out->len - at);
        out->len = at;
    }
    char why[256];
    ph_buf sealed = {0};
    pthread_mutex_lock(&t->mu);
    atomic_fetch_add(&t->vault_calls, 1);
    int r = t->vault->ops->find_token(t->vault, k->domain, tok, len, &sealed, why, sizeof why);
    pthread_mutex_unlock(&t->mu);
    int rc = -1;
    if (r == PH_VAULT_NOTFOUND)
        set_err(err, "XX001", PH_TOKEN_UNKNOWN_MSG " of key domain %s", k->domain);
    else if (r != PH_VAULT_OK)
        vault_error(why, err);
    else
        rc = unseal(k, tok, len, &sealed, out, &kid, err);
    ph_buf_free(&sealed);
    if (rc == 0)
        ph_tcache_put(t->by_token, k->domain, tok, len, out->data + at, out->len - at, kid);
    return rc;
}
