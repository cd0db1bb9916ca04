/*
 * aead.c — AES-256-GCM over OpenSSL 3 EVP (see aead.h; AES-SIV is siv.c).
 *
 * Each key has keyed template contexts (the key schedule is computed once
 * per key) that are only read after init, and a small pool of working
 * contexts: an operation takes one (or copies the template when the pool is
 * empty), uses it alone, and gives it back. The pool has one slot per
 * thread slot (common/tslot.h), made when a thread of that slot first uses
 * the key, each under its own mutex, so worker threads neither contend for a
 * lock nor pass contexts between cores. A GCM context
 * is re-armed for the next message by a new nonce (no copy at all). A
 * context that saw an error is freed, never pooled. Freeing
 * (EVP_CIPHER_CTX_free) wipes the provider state, pool and templates alike.
 */
#include "crypto/aead.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/mem.h"
#include "common/tslot.h"

#define SLOT_MAX 4 /* idle contexts kept per key, direction and thread slot */

typedef struct pool_slot {
    pthread_mutex_t lock;
    EVP_CIPHER_CTX *idle[2][SLOT_MAX]; /* [0] encrypt, [1] decrypt */
    int n[2];
} pool_slot;

struct ph_aead_pool {
    ph_tslots slots; /* pool_slot, one per thread slot that used the key */
};

static int slot_init(void *obj)
{
    return pthread_mutex_init(&((pool_slot *)obj)->lock, NULL) == 0 ? 0 : -1;
}

static void slot_fini(void *obj)
{
    pool_slot *sl = obj;
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < sl->n[d]; i++)
            EVP_CIPHER_CTX_free(sl->idle[d][i]);
    pthread_mutex_destroy(&sl->lock);
}

static const ph_tslot_kind slot_kind = {sizeof(pool_slot), slot_init, slot_fini};

static ph_aead_pool *pool_new(void)
{
    return ph_calloc(1, sizeof(ph_aead_pool));
}

static void pool_free(ph_aead_pool *p)
{
    if (!p)
        return;
    ph_tslots_free(&p->slots, &slot_kind);
    free(p);
}

/* An idle context of direction dir from this thread's slot, or NULL. */
static EVP_CIPHER_CTX *pool_take(ph_aead_pool *p, int dir)
{
    pool_slot *sl = ph_tslots_mine(&p->slots, &slot_kind);
    EVP_CIPHER_CTX *c = NULL;
    if (!sl)
        return NULL; /* no pool: the caller copies the template */
    pthread_mutex_lock(&sl->lock);
    if (sl->n[dir] > 0)
        c = sl->idle[dir][--sl->n[dir]];
    pthread_mutex_unlock(&sl->lock);
    return c;
}

/* Returns c to this thread's slot after a successful operation (ok), else
 * frees it. */
static void pool_give(ph_aead_pool *p, int dir, EVP_CIPHER_CTX *c, int ok)
{
    pool_slot *sl = c && ok ? ph_tslots_mine(&p->slots, &slot_kind) : NULL;
    if (sl) {
        pthread_mutex_lock(&sl->lock);
        if (sl->n[dir] < SLOT_MAX) {
            sl->idle[dir][sl->n[dir]++] = c;
            c = NULL;
        }
        pthread_mutex_unlock(&sl->lock);
    }
    EVP_CIPHER_CTX_free(c);
}

/* Fetches `name`, makes an encrypt and a decrypt template keyed with key. */
static int make_templates(const char *name, const uint8_t *key, EVP_CIPHER_CTX **enc,
                          EVP_CIPHER_CTX **dec)
{
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, name, NULL);
    int ok = 0;
    *enc = EVP_CIPHER_CTX_new();
    *dec = EVP_CIPHER_CTX_new();
    if (c && *enc && *dec && EVP_EncryptInit_ex2(*enc, c, key, NULL, NULL) == 1 &&
        EVP_DecryptInit_ex2(*dec, c, key, NULL, NULL) == 1)
        ok = 1;
    EVP_CIPHER_free(c); /* the templates hold their own references */
    if (!ok) {
        EVP_CIPHER_CTX_free(*enc);
        EVP_CIPHER_CTX_free(*dec);
        *enc = *dec = NULL;
        return -1;
    }
    return 0;
}

/* A GCM context keyed like tmpl: pooled ones are re-armed by the caller's
 * nonce, so only an empty pool costs a copy. */
static EVP_CIPHER_CTX *gcm_ctx(ph_aead_pool *p, int dir, const EVP_CIPHER_CTX *tmpl)
{
    EVP_CIPHER_CTX *c = pool_take(p, dir);
    if (c)
        return c;
    c = EVP_CIPHER_CTX_new();
    if (c && EVP_CIPHER_CTX_copy(c, tmpl) != 1) {
        EVP_CIPHER_CTX_free(c);
        return NULL;
    }
    return c;
}

static int keyed(const ph_aead_pool *p, const EVP_CIPHER_CTX *enc, const EVP_CIPHER_CTX *dec)
{
    return p && enc && dec;
}

/* ---- AES-256-GCM ----------------------------------------------------------- */

int ph_gcm_init(ph_gcm *g, const uint8_t key[PH_GCM_KEY_LEN])
{
    g->pool = NULL;
    if (make_templates("AES-256-GCM", key, &g->enc, &g->dec) != 0)
        return -1;
    if (!(g->pool = pool_new())) {
        ph_gcm_clear(g);
        return -1;
    }
    return 0;
}

void ph_gcm_clear(ph_gcm *g)
{
    pool_free(g->pool);
    EVP_CIPHER_CTX_free(g->enc);
    EVP_CIPHER_CTX_free(g->dec);
    g->enc = g->dec = NULL;
    g->pool = NULL;
}

int ph_gcm_seal(const ph_gcm *g, const uint8_t nonce[PH_GCM_NONCE_LEN], const uint8_t *aad,
                size_t aad_len, const uint8_t *pt, size_t len, uint8_t *ct,
                uint8_t tag[PH_AEAD_TAG_LEN])
{
    if (!keyed(g->pool, g->enc, g->dec) || aad_len > INT_MAX || len > INT_MAX)
        return -1;
    EVP_CIPHER_CTX *c = gcm_ctx(g->pool, 0, g->enc);
    uint8_t fin[PH_AEAD_TAG_LEN]; /* AEAD finals output nothing; never ct + len (may be NULL) */
    int n = 0, rc = -1;
    if (c && EVP_EncryptInit_ex2(c, NULL, NULL, nonce, NULL) == 1 &&
        (aad_len == 0 || EVP_EncryptUpdate(c, NULL, &n, aad, (int)aad_len) == 1) &&
        (len == 0 || EVP_EncryptUpdate(c, ct, &n, pt, (int)len) == 1) &&
        EVP_EncryptFinal_ex(c, fin, &n) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, PH_AEAD_TAG_LEN, tag) == 1)
        rc = 0;
    pool_give(g->pool, 0, c, rc == 0);
    return rc;
}

int ph_gcm_open(const ph_gcm *g, const uint8_t nonce[PH_GCM_NONCE_LEN], const uint8_t *aad,
                size_t aad_len, const uint8_t *ct, size_t len, const uint8_t tag[PH_AEAD_TAG_LEN],
                uint8_t *pt)
{
    if (!keyed(g->pool, g->enc, g->dec) || aad_len > INT_MAX || len > INT_MAX)
        return -1;
    EVP_CIPHER_CTX *c = gcm_ctx(g->pool, 1, g->dec);
    uint8_t t[PH_AEAD_TAG_LEN];
    uint8_t fin[PH_AEAD_TAG_LEN]; /* AEAD finals output nothing; never ct + len (may be NULL) */
    int n = 0, rc = -1;
    memcpy(t, tag, sizeof t);
    if (c && EVP_DecryptInit_ex2(c, NULL, NULL, nonce, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, PH_AEAD_TAG_LEN, t) == 1 &&
        (aad_len == 0 || EVP_DecryptUpdate(c, NULL, &n, aad, (int)aad_len) == 1) &&
        (len == 0 || EVP_DecryptUpdate(c, pt, &n, ct, (int)len) == 1) &&
        EVP_DecryptFinal_ex(c, fin, &n) == 1)
        rc = 0;
    pool_give(g->pool, 1, c, rc == 0);
    if (rc != 0 && len > 0)
        OPENSSL_cleanse(pt, len);
    return rc;
}
