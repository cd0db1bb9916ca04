/*
 * aead.c — AES-256-GCM and AES-SIV over OpenSSL 3 EVP (see aead.h).
 *
 * Each operation copies a keyed template context (EVP_CIPHER_CTX_copy) so
 * the key schedule is computed once per key, and templates are only read
 * after init: concurrent use from several threads is safe. The copies are
 * freed with EVP_CIPHER_CTX_free, which wipes the provider state.
 */
#include "crypto/aead.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>

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

static EVP_CIPHER_CTX *copy_of(const EVP_CIPHER_CTX *tmpl)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (c && EVP_CIPHER_CTX_copy(c, tmpl) != 1) {
        EVP_CIPHER_CTX_free(c);
        return NULL;
    }
    return c;
}

/* ---- AES-256-GCM ----------------------------------------------------------- */

int ph_gcm_init(ph_gcm *g, const uint8_t key[PH_GCM_KEY_LEN])
{
    return make_templates("AES-256-GCM", key, &g->enc, &g->dec);
}

void ph_gcm_clear(ph_gcm *g)
{
    EVP_CIPHER_CTX_free(g->enc);
    EVP_CIPHER_CTX_free(g->dec);
    g->enc = g->dec = NULL;
}

int ph_gcm_seal(const ph_gcm *g, const uint8_t nonce[PH_GCM_NONCE_LEN], const uint8_t *aad,
                size_t aad_len, const uint8_t *pt, size_t len, uint8_t *ct,
                uint8_t tag[PH_AEAD_TAG_LEN])
{
    if (!g->enc || aad_len > INT_MAX || len > INT_MAX)
        return -1;
    EVP_CIPHER_CTX *c = copy_of(g->enc);
    uint8_t fin[PH_AEAD_TAG_LEN]; /* AEAD finals output nothing; never ct + len (may be NULL) */
    int n = 0, rc = -1;
    if (c && EVP_EncryptInit_ex2(c, NULL, NULL, nonce, NULL) == 1 &&
        (aad_len == 0 || EVP_EncryptUpdate(c, NULL, &n, aad, (int)aad_len) == 1) &&
        (len == 0 || EVP_EncryptUpdate(c, ct, &n, pt, (int)len) == 1) &&
        EVP_EncryptFinal_ex(c, fin, &n) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, PH_AEAD_TAG_LEN, tag) == 1)
        rc = 0;
    EVP_CIPHER_CTX_free(c);
    return rc;
}

int ph_gcm_open(const ph_gcm *g, const uint8_t nonce[PH_GCM_NONCE_LEN], const uint8_t *aad,
                size_t aad_len, const uint8_t *ct, size_t len, const uint8_t tag[PH_AEAD_TAG_LEN],
                uint8_t *pt)
{
    if (!g->dec || aad_len > INT_MAX || len > INT_MAX)
        return -1;
    EVP_CIPHER_CTX *c = copy_of(g->dec);
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
    EVP_CIPHER_CTX_free(c);
    if (rc != 0 && len > 0)
        OPENSSL_cleanse(pt, len);
    return rc;
}

/* ---- AES-SIV ---------------------------------------------------------------- */

int ph_siv_init(ph_siv *s, const uint8_t *key, size_t key_len)
{
    const char *name = key_len == 32 ? "AES-128-SIV" : key_len == 64 ? "AES-256-SIV" : NULL;
    if (!name) {
        s->enc = s->dec = NULL;
        return -1;
    }
    return make_templates(name, key, &s->enc, &s->dec);
}

void ph_siv_clear(ph_siv *s)
{
    EVP_CIPHER_CTX_free(s->enc);
    EVP_CIPHER_CTX_free(s->dec);
    s->enc = s->dec = NULL;
}

/* Feeds the associated-data components, one EVP update (= one S2V string) each. */
static int feed_ad(EVP_CIPHER_CTX *c, const ph_ad *ad, size_t n_ad)
{
    int n = 0;
    for (size_t i = 0; i < n_ad; i++) {
        if (ad[i].len > INT_MAX || EVP_CipherUpdate(c, NULL, &n, ad[i].p, (int)ad[i].len) != 1)
            return -1;
    }
    return 0;
}

static int siv_args_ok(const EVP_CIPHER_CTX *tmpl, size_t n_ad, size_t len)
{
    return tmpl && n_ad <= PH_SIV_MAX_AD && len > 0 && len <= INT_MAX;
}

int ph_siv_seal(const ph_siv *s, const ph_ad *ad, size_t n_ad, const uint8_t *pt, size_t len,
                uint8_t v[PH_AEAD_TAG_LEN], uint8_t *ct)
{
    if (!siv_args_ok(s->enc, n_ad, len))
        return -1;
    EVP_CIPHER_CTX *c = copy_of(s->enc);
    uint8_t fin[PH_AEAD_TAG_LEN]; /* AEAD finals output nothing; never ct + len (may be NULL) */
    int n = 0, rc = -1;
    if (c && feed_ad(c, ad, n_ad) == 0 && EVP_EncryptUpdate(c, ct, &n, pt, (int)len) == 1 &&
        EVP_EncryptFinal_ex(c, fin, &n) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, PH_AEAD_TAG_LEN, v) == 1)
        rc = 0;
    EVP_CIPHER_CTX_free(c);
    return rc;
}

int ph_siv_open(const ph_siv *s, const ph_ad *ad, size_t n_ad, const uint8_t v[PH_AEAD_TAG_LEN],
                const uint8_t *ct, size_t len, uint8_t *pt)
{
    if (!siv_args_ok(s->dec, n_ad, len))
        return -1;
    EVP_CIPHER_CTX *c = copy_of(s->dec);
    uint8_t t[PH_AEAD_TAG_LEN];
    uint8_t fin[PH_AEAD_TAG_LEN]; /* AEAD finals output nothing; never ct + len (may be NULL) */
    int n = 0, rc = -1;
    memcpy(t, v, sizeof t);
    if (c && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, PH_AEAD_TAG_LEN, t) == 1 &&
        feed_ad(c, ad, n_ad) == 0 && EVP_DecryptUpdate(c, pt, &n, ct, (int)len) == 1 &&
        EVP_DecryptFinal_ex(c, fin, &n) == 1)
        rc = 0;
    EVP_CIPHER_CTX_free(c);
    if (rc != 0)
        OPENSSL_cleanse(pt, len);
    return rc;
}
