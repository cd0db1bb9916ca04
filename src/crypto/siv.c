/*
 * siv.c — AES-SIV (RFC 5297) composed from OpenSSL's AES-CMAC and AES in
 * counter mode (ctr.c over OpenSSL's AES-ECB) (see siv.h).
 *
 * Why not OpenSSL's EVP AES-SIV: its context cannot be reset without its
 * key, so every message needed a copy of a keyed context (which duplicates
 * its CMAC contexts), and its S2V duplicates a CMAC context again for every
 * string: ~13k instructions per short seal, about a quarter of the proxy's
 * CPU per lookup. Here a key keeps keyed templates, and a message works on
 * pooled copies that are restarted without re-keying: EVP_MAC_init(ctx,
 * NULL, 0, NULL) restarts a CMAC under its key, and CTR's key stream is
 * AES-ECB of the counter blocks (ctr.c), no re-initialisation per IV at all
 * (EVP's CTR needed one: ~1,300 instructions of a ~4,100-instruction seal).
 *
 * Our own code is only the mode's glue, all of it in S2V (§2.4): doubling
 * in GF(2^128) (§2.3), xor, xorend, padding, and clearing two bits of the
 * counter (§2.5, §2.6). AES and CMAC (RFC 4493) are OpenSSL's, the counter
 * blocks ctr.c's. Nothing branches on secret values; every intermediate (D,
 * T, computed V, the CTR IV) is wiped. Per key, D's first step, CMAC(K1,
 * <zero>), is precomputed, and optionally D after a fixed first
 * associated-data component.
 *
 * The pool is aead.c's scheme: idle working pairs (CMAC, CTR) in one slot
 * per thread slot (common/tslot.h) that used the key, each under its own
 * mutex; an operation takes one from its thread's slot (or duplicates the
 * templates when none is idle) and gives it back there; a pair that saw an
 * OpenSSL error is freed. Pooled contexts keep their key and the last
 * message's final block state (as OpenSSL's own contexts do) until reused;
 * freeing wipes them.
 */
#include "crypto/siv.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "common/mem.h"
#include "common/tslot.h"
#include "crypto/ctr.h"

#define BLK      16 /* AES block = CMAC output = V */
#define SLOT_MAX 4  /* idle working pairs kept per key and thread slot */

typedef struct work {
    EVP_MAC_CTX *mac;    /* CMAC under K1 */
    EVP_CIPHER_CTX *ctr; /* AES-ECB under K2, no padding: CTR's key stream (ctr.c) */
} work;

struct ph_siv_key {
    work tmpl;       /* keyed templates, only duplicated after init */
    uint8_t d0[BLK]; /* S2V's D = CMAC(K1, <zero>) */
    uint8_t d1[BLK]; /* D after the fixed first AD component */
    uint8_t *fixed;  /* that component (public bytes), or NULL */
    size_t fixed_len;
    ph_tslots slots; /* work_slot, one per thread slot that used the key */
};

typedef struct work_slot {
    pthread_mutex_t lock;
    work idle[SLOT_MAX];
    int n_idle;
} work_slot;

/* ---- S2V glue (RFC 5297 §2.3, §2.4) -------------------------------------------- */

/* dbl(S) (§2.3): S << 1, and xor 0x87 into the last byte when the bit
 * shifted out was 1; by mask, with no branch on the secret value. */
static void dbl(uint8_t b[BLK])
{
    uint8_t carry = (uint8_t)(b[0] >> 7);
    for (int i = 0; i < BLK - 1; i++)
        b[i] = (uint8_t)((b[i] << 1) | (b[i + 1] >> 7));
    b[BLK - 1] = (uint8_t)((b[BLK - 1] << 1) ^ (0x87 & (0 - carry)));
}

static void xor_into(uint8_t dst[BLK], const uint8_t src[BLK])
{
    for (int i = 0; i < BLK; i++)
        dst[i] ^= src[i];
}

/* out = CMAC(K1, a | b): m restarted under its key, not re-keyed. */
static int cmac(EVP_MAC_CTX *m, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                uint8_t out[BLK])
{
    size_t n = 0;
    int ok = EVP_MAC_init(m, NULL, 0, NULL) == 1 &&
             (alen == 0 || EVP_MAC_update(m, a, alen) == 1) &&
             (blen == 0 || EVP_MAC_update(m, b, blen) == 1) &&
             EVP_MAC_final(m, out, &n, BLK) == 1 && n == BLK;
    return ok ? 0 : -1;
}

/* The associated-data component equals the key's fixed one (public bytes:
 * an ordinary comparison is fine). */
static int is_fixed(const ph_siv_key *k, const ph_ad *a)
{
    return k->fixed && a->len == k->fixed_len && (a->len == 0 || !memcmp(a->p, k->fixed, a->len));
}

/* S2V's loop (§2.4) over the associated data: starting from D = CMAC(<zero>)
 * (precomputed), D = dbl(D) xor CMAC(S_i) for each component. */
static int s2v_ad(const ph_siv_key *k, EVP_MAC_CTX *m, const ph_ad *ad, size_t n_ad, uint8_t d[BLK])
{
    uint8_t t[BLK];
    size_t i = 0;
    int rc = 0;
    if (n_ad > 0 && is_fixed(k, &ad[0])) {
        memcpy(d, k->d1, BLK);
        i = 1;
    } else {
        memcpy(d, k->d0, BLK);
    }
    for (; i < n_ad && rc == 0; i++) {
        rc = cmac(m, ad[i].p, ad[i].len, NULL, 0, t);
        dbl(d);
        xor_into(d, t);
    }
    OPENSSL_cleanse(t, sizeof t);
    return rc;
}

/* S2V (§2.4) with p[0..len), len > 0, as the last string Sn:
 *   len >= 16:  T = Sn xorend D   (D xored into Sn's last 16 bytes)
 *   else:       T = dbl(D) xor pad(Sn)   (pad: Sn | 0x80 | 0...)
 *   V = CMAC(T). */
static int s2v(const ph_siv_key *k, EVP_MAC_CTX *m, const ph_ad *ad, size_t n_ad, const uint8_t *p,
               size_t len, uint8_t v[BLK])
{
    uint8_t d[BLK], t[BLK];
    int rc = s2v_ad(k, m, ad, n_ad, d);
    if (rc == 0 && len >= BLK) {
        memcpy(t, p + len - BLK, BLK);
        xor_into(t, d);
        rc = cmac(m, p, len - BLK, t, BLK, v);
    } else if (rc == 0) {
        memset(t, 0, sizeof t);
        memcpy(t, p, len);
        t[len] = 0x80;
        dbl(d);
        xor_into(t, d);
        rc = cmac(m, t, BLK, NULL, 0, v);
    }
    OPENSSL_cleanse(d, sizeof d);
    OPENSSL_cleanse(t, sizeof t);
    return rc;
}

/* out = AES-CTR(K2, Q, in), Q = V with bits 63 and 31 cleared (§2.6; §2.5
 * says why: 32- and 64-bit counter implementations then agree). */
static int ctr(EVP_CIPHER_CTX *c, const uint8_t v[BLK], const uint8_t *in, size_t len, uint8_t *out)
{
    uint8_t q[BLK];
    memcpy(q, v, BLK);
    q[8] &= 0x7f;
    q[12] &= 0x7f; /* so a 32-bit counter (ctr.c) counts exactly as §2.5's 128-bit one */
    int rc = ph_ctr32_xor(c, q, in, out, len);
    OPENSSL_cleanse(q, sizeof q);
    return rc;
}

/* ---- working contexts ------------------------------------------------------------ */

static void work_free(work *w)
{
    EVP_MAC_CTX_free(w->mac); /* both wipe their state */
    EVP_CIPHER_CTX_free(w->ctr);
    w->mac = NULL;
    w->ctr = NULL;
}

static int slot_init(void *obj)
{
    return pthread_mutex_init(&((work_slot *)obj)->lock, NULL) == 0 ? 0 : -1;
}

static void slot_fini(void *obj)
{
    work_slot *sl = obj;
    for (int i = 0; i < sl->n_idle; i++)
        work_free(&sl->idle[i]);
    pthread_mutex_destroy(&sl->lock);
}

static const ph_tslot_kind slot_kind = {sizeof(work_slot), slot_init, slot_fini};

/* An idle pair from this thread's slot, or fresh copies of the templates. */
static int work_take(ph_siv_key *k, work *w)
{
    work_slot *sl = ph_tslots_mine(&k->slots, &slot_kind);
    int have = 0;
    if (sl) {
        pthread_mutex_lock(&sl->lock);
        if (sl->n_idle > 0) {
            *w = sl->idle[--sl->n_idle];
            have = 1;
        }
        pthread_mutex_unlock(&sl->lock);
    }
    if (have)
        return 0;
    w->mac = EVP_MAC_CTX_dup(k->tmpl.mac);
    w->ctr = EVP_CIPHER_CTX_new();
    if (w->mac && w->ctr && EVP_CIPHER_CTX_copy(w->ctr, k->tmpl.ctr) == 1 &&
        EVP_CIPHER_CTX_set_padding(w->ctr, 0) == 1)
        return 0;
    work_free(w);
    return -1;
}

/* Pools w in this thread's slot after an operation whose OpenSSL calls all
 * succeeded (ok), else frees it. */
static void work_give(ph_siv_key *k, work *w, int ok)
{
    work_slot *sl = ok ? ph_tslots_mine(&k->slots, &slot_kind) : NULL;
    if (sl) {
        pthread_mutex_lock(&sl->lock);
        if (sl->n_idle < SLOT_MAX) {
            sl->idle[sl->n_idle++] = *w;
            w->mac = NULL;
            w->ctr = NULL;
        }
        pthread_mutex_unlock(&sl->lock);
    }
    work_free(w);
}

/* ---- key --------------------------------------------------------------------------- */

static int key_mac(ph_siv_key *k, const char *cbc, const uint8_t *k1, size_t len)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "CMAC", NULL);
    OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, (char *)cbc, 0),
                      OSSL_PARAM_construct_end()};
    k->tmpl.mac = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac); /* the context holds its own reference */
    return k->tmpl.mac && EVP_MAC_init(k->tmpl.mac, k1, len, p) == 1 ? 0 : -1;
}

static int key_ctr(ph_siv_key *k, const char *name, const uint8_t *k2)
{
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, name, NULL);
    k->tmpl.ctr = EVP_CIPHER_CTX_new();
    int ok = c && k->tmpl.ctr && EVP_EncryptInit_ex2(k->tmpl.ctr, c, k2, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_set_padding(k->tmpl.ctr, 0) == 1;
    EVP_CIPHER_free(c); /* the context holds its own reference */
    return ok ? 0 : -1;
}

/* d0 = CMAC(K1, <zero>), S2V's first step for every message. */
static int key_d0(ph_siv_key *k)
{
    static const uint8_t zero[BLK];
    work w;
    if (work_take(k, &w) != 0)
        return -1;
    int rc = cmac(w.mac, zero, BLK, NULL, 0, k->d0);
    work_give(k, &w, rc == 0);
    return rc;
}

int ph_siv_init(ph_siv *s, const uint8_t *key, size_t key_len)
{
    /* K1 = leftmost half (S2V's CMAC), K2 = rightmost half (CTR), §2.6 */
    const char *cbc = key_len == 32 ? "AES-128-CBC" : key_len == 64 ? "AES-256-CBC" : NULL;
    const char *ctr_name = key_len == 32 ? "AES-128-ECB" : "AES-256-ECB";
    s->k = NULL;
    if (!cbc || !key)
        return -1;
    ph_siv_key *k = ph_calloc(1, sizeof *k);
    if (!k)
        return -1;
    s->k = k;
    if (key_mac(k, cbc, key, key_len / 2) != 0 || key_ctr(k, ctr_name, key + key_len / 2) != 0 ||
        key_d0(k) != 0) {
        ph_siv_clear(s);
        return -1;
    }
    return 0;
}

void ph_siv_clear(ph_siv *s)
{
    ph_siv_key *k = s ? s->k : NULL;
    if (!k)
        return;
    ph_tslots_free(&k->slots, &slot_kind);
    work_free(&k->tmpl);
    free(k->fixed);
    OPENSSL_clear_free(k, sizeof *k); /* d0, d1 */
    s->k = NULL;
}

int ph_siv_fix_ad(ph_siv *s, const ph_ad *ad)
{
    ph_siv_key *k = s ? s->k : NULL;
    if (!k || !ad || (!ad->p && ad->len))
        return -1;
    uint8_t *copy = malloc(ad->len ? ad->len : 1);
    uint8_t d[BLK];
    work w;
    if (!copy || work_take(k, &w) != 0) {
        free(copy);
        return -1;
    }
    int rc = s2v_ad(k, w.mac, ad, 1, d); /* from d0: this component is not fixed yet */
    work_give(k, &w, rc == 0);
    if (rc == 0) {
        if (ad->len)
            memcpy(copy, ad->p, ad->len);
        free(k->fixed);
        k->fixed = copy;
        k->fixed_len = ad->len;
        memcpy(k->d1, d, BLK);
    } else {
        free(copy);
    }
    OPENSSL_cleanse(d, sizeof d);
    return rc;
}

/* ---- seal / open ------------------------------------------------------------------- */

static int args_ok(const ph_siv *s, const ph_ad *ad, size_t n_ad, const uint8_t *in, size_t len,
                   const uint8_t *out)
{
    if (!s || !s->k || n_ad > PH_SIV_MAX_AD || (n_ad && !ad) || !in || !out || len == 0 ||
        len > INT_MAX)
        return 0;
    for (size_t i = 0; i < n_ad; i++)
        if (!ad[i].p && ad[i].len)
            return 0;
    return 1;
}

int ph_siv_seal(const ph_siv *s, const ph_ad *ad, size_t n_ad, const uint8_t *pt, size_t len,
                uint8_t v[PH_SIV_V_LEN], uint8_t *ct)
{
    work w;
    int rc = -1;
    if (!args_ok(s, ad, n_ad, pt, len, ct) || !v)
        return -1;
    if (work_take(s->k, &w) == 0) {
        /* V = S2V(K1, AD..., P); C = CTR(K2, Q(V), P)  (§2.6) */
        rc =
            s2v(s->k, w.mac, ad, n_ad, pt, len, v) == 0 && ctr(w.ctr, v, pt, len, ct) == 0 ? 0 : -1;
        work_give(s->k, &w, rc == 0);
    }
    if (rc != 0) {
        OPENSSL_cleanse(v, PH_SIV_V_LEN);
        OPENSSL_cleanse(ct, len);
    }
    return rc;
}

int ph_siv_open(const ph_siv *s, const ph_ad *ad, size_t n_ad, const uint8_t v[PH_SIV_V_LEN],
                const uint8_t *ct, size_t len, uint8_t *pt)
{
    uint8_t want[BLK], got[BLK];
    work w;
    int rc = -1;
    if (!args_ok(s, ad, n_ad, ct, len, pt) || !v)
        return -1;
    memcpy(want, v, BLK); /* before pt is written: it may share a buffer with v */
    if (work_take(s->k, &w) == 0) {
        /* P = CTR(K2, Q(V), C); authentic iff S2V(K1, AD..., P) == V  (§2.7) */
        int done =
            ctr(w.ctr, want, ct, len, pt) == 0 && s2v(s->k, w.mac, ad, n_ad, pt, len, got) == 0;
        rc = done && CRYPTO_memcmp(got, want, BLK) == 0 ? 0 : -1;
        work_give(s->k, &w, done);
    }
    if (rc != 0)
        OPENSSL_cleanse(pt, len);
    OPENSSL_cleanse(want, sizeof want);
    OPENSSL_cleanse(got, sizeof got);
    return rc;
}
