/*
 * aead.c — AES-256-GCM (see aead.h; AES-SIV is siv.c), composed from
 * OpenSSL's GCM mode (CRYPTO_gcm128_*, <openssl/modes.h>: GHASH, the tag and
 * its constant-time check) over OpenSSL's AES (an AES-256-ECB EVP context
 * keyed once per key). OpenSSL's own GCM provider is the same GCM128 code
 * over AES-NI; going through EVP's GCM instead cost, per value, a provider
 * re-initialisation for every nonce, the IV length and tag looked up by name
 * in parameter lists (~2,900 instructions for a 40-byte value). Here a
 * message costs one ECB call: the counter blocks it needs (J0 for the tag,
 * J0+1... for the data, at most KS_BLOCKS of them) are encrypted together
 * before the mode runs, and the block functions the mode calls answer from
 * them — only for the very counter block that produced an entry (compared
 * whole); anything else is encrypted on the spot (longer values: ctr.c).
 * The cached key stream is wiped after every message. Byte-identical to EVP AES-256-GCM (NIST
 * vectors and a differential test in test_crypto_aead.c).
 *
 * Each key has a keyed ECB template, only read after init, and a pool of
 * working objects (ECB copy + GCM128 context with H computed once): an
 * operation takes one (or makes one when the pool is empty), uses it alone,
 * and gives it back. The pool has one slot per thread slot (common/tslot.h),
 * made when a thread of that slot first uses the key, each under its own
 * mutex, so worker threads neither contend for a lock nor pass objects
 * between cores. An object that saw an error is freed, never pooled.
 * Freeing wipes: CRYPTO_gcm128_release clears H and the mode's state,
 * EVP_CIPHER_CTX_free the key schedule.
 */
#include "crypto/aead.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/modes.h>

#include "common/bytes.h"
#include "common/mem.h"
#include "common/tslot.h"
#include "crypto/ctr.h"

#define SLOT_MAX  4  /* idle working objects kept per key and thread slot */
#define KS_BLOCKS 33 /* key stream cached per message: J0 + 512 bytes of data */
#define BLK       16

typedef struct gcm_work {
    EVP_CIPHER_CTX *ecb;         /* AES-256-ECB under the key, no padding */
    GCM128_CONTEXT *gcm;         /* OpenSSL's GCM over block(): H computed once */
    int failed;                  /* an AES call failed: the message fails */
    size_t nks;                  /* cached blocks: */
    uint8_t ctr[KS_BLOCKS][BLK]; /* counter blocks J0, J0+1, ... */
    uint8_t ks[KS_BLOCKS][BLK];  /* AES of each */
} gcm_work;

typedef struct pool_slot {
    pthread_mutex_t lock;
    gcm_work *idle[SLOT_MAX];
    int n;
} pool_slot;

struct ph_aead_pool {
    ph_tslots slots; /* pool_slot, one per thread slot that used the key */
};

/* ---- AES and the key stream ------------------------------------------------ */

/* out = AES(in) for n bytes (whole blocks); on failure zeroes and marks w. */
static void aes_ecb(gcm_work *w, const uint8_t *in, uint8_t *out, size_t n)
{
    int l = 0;
    if (w->failed || EVP_EncryptUpdate(w->ecb, out, &l, in, (int)n) != 1 || (size_t)l != n) {
        w->failed = 1;
        memset(out, 0, n);
    }
}

/* The cached AES of counter block cb, or NULL. */
static const uint8_t *ks_find(const gcm_work *w, const uint8_t cb[BLK])
{
    if (!w->nks)
        return NULL;
    uint32_t i = ph_get_u32(cb + 12) - ph_get_u32(w->ctr[0] + 12);
    return i < w->nks && memcmp(w->ctr[i], cb, BLK) == 0 ? w->ks[i] : NULL;
}

/* GCM128's block function (key = the working object). */
static void block_fn(const unsigned char in[BLK], unsigned char out[BLK], const void *key)
{
    gcm_work *w = (gcm_work *)(uintptr_t)key;
    const uint8_t *k = ks_find(w, in);
    if (k)
        memcpy(out, k, BLK);
    else
        aes_ecb(w, in, out, BLK);
}

/* GCM128's CTR function: out = in ^ AES(ivec + j) for `blocks` blocks
 * (inc32, SP 800-38D): from the cache while it has them, the rest through
 * ctr.c. */
static void ctr32_fn(const unsigned char *in, unsigned char *out, size_t blocks, const void *key,
                     const unsigned char ivec[BLK])
{
    gcm_work *w = (gcm_work *)(uintptr_t)key;
    uint8_t cb[BLK];
    memcpy(cb, ivec, BLK);
    for (; blocks > 0; blocks--, in += BLK, out += BLK) {
        const uint8_t *k = ks_find(w, cb);
        if (!k)
            break;
        for (int b = 0; b < BLK; b++)
            out[b] = in[b] ^ k[b];
        ph_put_u32(cb + 12, ph_get_u32(cb + 12) + 1);
    }
    if (blocks > 0 && (w->failed || ph_ctr32_xor(w->ecb, cb, in, out, blocks * BLK) != 0)) {
        w->failed = 1;
        memset(out, 0, blocks * BLK);
    }
}

/* Encrypts, in one call, the counter blocks a message of len bytes under
 * nonce needs (as many as the cache holds). */
static void ks_prime(gcm_work *w, const uint8_t nonce[PH_GCM_NONCE_LEN], size_t len)
{
    size_t m = len / BLK + 2; /* J0, the data's blocks, a partial one */
    if (m > KS_BLOCKS)
        m = KS_BLOCKS;
    for (size_t i = 0; i < m; i++) {
        memcpy(w->ctr[i], nonce, PH_GCM_NONCE_LEN);
        ph_put_u32(w->ctr[i] + 12, (uint32_t)(1 + i));
    }
    w->nks = 0;
    aes_ecb(w, w->ctr[0], w->ks[0], m * BLK);
    if (!w->failed)
        w->nks = m;
}

static void ks_wipe(gcm_work *w)
{
    OPENSSL_cleanse(w->ks, w->nks * BLK);
    w->nks = 0;
}

/* ---- working objects and their pool ------------------------------------------ */

static void work_free(gcm_work *w)
{
    if (!w)
        return;
    CRYPTO_gcm128_release(w->gcm);
    EVP_CIPHER_CTX_free(w->ecb);
    OPENSSL_cleanse(w, sizeof *w);
    free(w);
}

static gcm_work *work_new(const EVP_CIPHER_CTX *tmpl)
{
    gcm_work *w = ph_calloc(1, sizeof *w);
    if (!w)
        return NULL;
    if (!(w->ecb = EVP_CIPHER_CTX_new()) || EVP_CIPHER_CTX_copy(w->ecb, tmpl) != 1 ||
        EVP_CIPHER_CTX_set_padding(w->ecb, 0) != 1 || !(w->gcm = CRYPTO_gcm128_new(w, block_fn)) ||
        w->failed) {
        work_free(w);
        return NULL;
    }
    return w;
}

static int slot_init(void *obj)
{
    return pthread_mutex_init(&((pool_slot *)obj)->lock, NULL) == 0 ? 0 : -1;
}

static void slot_fini(void *obj)
{
    pool_slot *sl = obj;
    for (int i = 0; i < sl->n; i++)
        work_free(sl->idle[i]);
    pthread_mutex_destroy(&sl->lock);
}

static const ph_tslot_kind slot_kind = {sizeof(pool_slot), slot_init, slot_fini};

/* An idle object from this thread's slot, else a new one (NULL on failure). */
static gcm_work *work_take(const ph_gcm *g)
{
    pool_slot *sl = ph_tslots_mine(&g->pool->slots, &slot_kind);
    gcm_work *w = NULL;
    if (sl) {
        pthread_mutex_lock(&sl->lock);
        if (sl->n > 0)
            w = sl->idle[--sl->n];
        pthread_mutex_unlock(&sl->lock);
    }
    return w ? w : work_new(g->ecb);
}

/* Returns w to this thread's slot after a successful operation (ok), else
 * frees it. Its key stream is already wiped. */
static void work_give(const ph_gcm *g, gcm_work *w, int ok)
{
    pool_slot *sl = w && ok ? ph_tslots_mine(&g->pool->slots, &slot_kind) : NULL;
    if (sl) {
        pthread_mutex_lock(&sl->lock);
        if (sl->n < SLOT_MAX) {
            sl->idle[sl->n++] = w;
            w = NULL;
        }
        pthread_mutex_unlock(&sl->lock);
    }
    work_free(w);
}

/* ---- AES-256-GCM ----------------------------------------------------------- */

int ph_gcm_init(ph_gcm *g, const uint8_t key[PH_GCM_KEY_LEN])
{
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, "AES-256-ECB", NULL);
    g->pool = NULL;
    g->ecb = EVP_CIPHER_CTX_new();
    int ok = c && g->ecb && EVP_EncryptInit_ex2(g->ecb, c, key, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_set_padding(g->ecb, 0) == 1 &&
             (g->pool = ph_calloc(1, sizeof *g->pool)) != NULL;
    EVP_CIPHER_free(c); /* the template holds its own reference */
    if (!ok) {
        ph_gcm_clear(g);
        return -1;
    }
    return 0;
}

void ph_gcm_clear(ph_gcm *g)
{
    if (g->pool) {
        ph_tslots_free(&g->pool->slots, &slot_kind);
        free(g->pool);
    }
    EVP_CIPHER_CTX_free(g->ecb);
    g->ecb = NULL;
    g->pool = NULL;
}

static int usable(const ph_gcm *g, size_t aad_len, size_t len)
{
    return g->pool && g->ecb && aad_len <= INT_MAX && len <= INT_MAX;
}

int ph_gcm_seal(const ph_gcm *g, const uint8_t nonce[PH_GCM_NONCE_LEN], const uint8_t *aad,
                size_t aad_len, const uint8_t *pt, size_t len, uint8_t *ct,
                uint8_t tag[PH_AEAD_TAG_LEN])
{
    gcm_work *w = usable(g, aad_len, len) ? work_take(g) : NULL;
    if (!w)
        return -1;
    ks_prime(w, nonce, len);
    CRYPTO_gcm128_setiv(w->gcm, nonce, PH_GCM_NONCE_LEN);
    int ok = (aad_len == 0 || CRYPTO_gcm128_aad(w->gcm, aad, aad_len) == 0) &&
             (len == 0 || CRYPTO_gcm128_encrypt_ctr32(w->gcm, pt, ct, len, ctr32_fn) == 0);
    if (ok)
        CRYPTO_gcm128_tag(w->gcm, tag, PH_AEAD_TAG_LEN);
    ok = ok && !w->failed;
    ks_wipe(w);
    work_give(g, w, ok);
    if (!ok) {
        if (len > 0)
            OPENSSL_cleanse(ct, len);
        OPENSSL_cleanse(tag, PH_AEAD_TAG_LEN);
    }
    return ok ? 0 : -1;
}

int ph_gcm_open(const ph_gcm *g, const uint8_t nonce[PH_GCM_NONCE_LEN], const uint8_t *aad,
                size_t aad_len, const uint8_t *ct, size_t len, const uint8_t tag[PH_AEAD_TAG_LEN],
                uint8_t *pt)
{
    gcm_work *w = usable(g, aad_len, len) ? work_take(g) : NULL;
    if (!w)
        return -1;
    ks_prime(w, nonce, len);
    CRYPTO_gcm128_setiv(w->gcm, nonce, PH_GCM_NONCE_LEN);
    /* CRYPTO_gcm128_finish compares the tag in constant time (0: equal) */
    int ok = (aad_len == 0 || CRYPTO_gcm128_aad(w->gcm, aad, aad_len) == 0) &&
             (len == 0 || CRYPTO_gcm128_decrypt_ctr32(w->gcm, ct, pt, len, ctr32_fn) == 0) &&
             CRYPTO_gcm128_finish(w->gcm, tag, PH_AEAD_TAG_LEN) == 0 && !w->failed;
    ks_wipe(w);
    work_give(g, w, ok);
    if (!ok && len > 0)
        OPENSSL_cleanse(pt, len);
    return ok ? 0 : -1;
}
