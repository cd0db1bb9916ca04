/*
 * field.c — ph_field_key (subkey derivation, lifetime) and sealing/opening
 * of envelopes in the three modes (see field.h and envelope.h).
 */
#include "crypto/field.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/mem.h"
#include "crypto/aead.h"
#include "crypto/kdf.h"
#include "crypto/ope.h"

#define AD_MAX    (PH_ENV_HEADER_LEN + PH_ENV_OPE_CODE_LEN + PH_FIELD_MAX_DOMAIN)
#define STACK_TMP 256

static const uint8_t kdf_salt[] = "phantom-field-v1";

struct ph_field_key {
    uint32_t key_id;
    size_t domain_len;
    char domain[PH_FIELD_MAX_DOMAIN + 1];
    ph_gcm gcm;     /* randomized */
    ph_siv det;     /* deterministic */
    ph_ope ope;     /* OPE map */
    ph_siv ope_siv; /* OPE value part */
};

/* ---- key context ------------------------------------------------------------ */

/* HKDF-SHA-256(DEK, salt, info = label | 0x00 | key domain). */
static int derive(const uint8_t *dek, const ph_field_key *k, const char *label, uint8_t *out,
                  size_t len)
{
    uint8_t info[64 + PH_FIELD_MAX_DOMAIN];
    size_t ll = strlen(label);
    if (ll >= 64)
        return -1;
    memcpy(info, label, ll);
    info[ll] = 0x00;
    memcpy(info + ll + 1, k->domain, k->domain_len);
    return ph_hkdf_sha256(dek, PH_FIELD_DEK_LEN, kdf_salt, sizeof kdf_salt - 1, info,
                          ll + 1 + k->domain_len, out, len);
}

static int derive_all(ph_field_key *k, const uint8_t *dek)
{
    uint8_t gcm[32], det[64], prf[32], osiv[64];
    int rc = -1;
    if (derive(dek, k, "phantom/field/v1/gcm", gcm, sizeof gcm) == 0 &&
        derive(dek, k, "phantom/field/v1/siv", det, sizeof det) == 0 &&
        derive(dek, k, "phantom/field/v1/ope-prf", prf, sizeof prf) == 0 &&
        derive(dek, k, "phantom/field/v1/ope-siv", osiv, sizeof osiv) == 0 &&
        ph_gcm_init(&k->gcm, gcm) == 0 && ph_siv_init(&k->det, det, sizeof det) == 0 &&
        ph_ope_init(&k->ope, prf) == 0 && ph_siv_init(&k->ope_siv, osiv, sizeof osiv) == 0)
        rc = 0;
    OPENSSL_cleanse(gcm, sizeof gcm);
    OPENSSL_cleanse(det, sizeof det);
    OPENSSL_cleanse(prf, sizeof prf);
    OPENSSL_cleanse(osiv, sizeof osiv);
    return rc;
}

static size_t build_ad(const ph_field_key *k, const uint8_t *hdr, const uint8_t *code,
                       uint8_t ad[AD_MAX]);

/* Deterministic mode's associated data (header | key domain) is the same
 * for every value of a key: S2V precomputes its step once (siv.h). */
static int fix_det_ad(ph_field_key *k)
{
    uint8_t hdr[PH_ENV_HEADER_LEN], ad[AD_MAX];
    ph_envelope_put_header(hdr, PH_ENV_DETERMINISTIC, k->key_id);
    ph_ad a = {ad, build_ad(k, hdr, NULL, ad)};
    return ph_siv_fix_ad(&k->det, &a);
}

ph_field_key *ph_field_key_new(const uint8_t dek[PH_FIELD_DEK_LEN], uint32_t key_id,
                               const char *domain)
{
    if (!dek || !domain)
        return NULL;
    size_t dl = strnlen(domain, PH_FIELD_MAX_DOMAIN + 1);
    if (dl == 0 || dl > PH_FIELD_MAX_DOMAIN)
        return NULL;
    ph_field_key *k = ph_calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->key_id = key_id;
    k->domain_len = dl;
    memcpy(k->domain, domain, dl);
    if (derive_all(k, dek) != 0 || fix_det_ad(k) != 0) {
        ph_field_key_free(k);
        return NULL;
    }
    return k;
}

void ph_field_key_free(ph_field_key *k)
{
    if (!k)
        return;
    ph_gcm_clear(&k->gcm);
    ph_siv_clear(&k->det);
    ph_ope_clear(&k->ope);
    ph_siv_clear(&k->ope_siv);
    OPENSSL_clear_free(k, sizeof *k);
}

uint32_t ph_field_key_id(const ph_field_key *k)
{
    return k->key_id;
}

const char *ph_field_key_domain(const ph_field_key *k)
{
    return k->domain;
}

/* ---- helpers ---------------------------------------------------------------- */

/* ad = header | [code] | domain; returns its length. */
static size_t build_ad(const ph_field_key *k, const uint8_t *hdr, const uint8_t *code,
                       uint8_t ad[AD_MAX])
{
    size_t n = PH_ENV_HEADER_LEN;
    memcpy(ad, hdr, PH_ENV_HEADER_LEN);
    if (code) {
        memcpy(ad + n, code, PH_ENV_OPE_CODE_LEN);
        n += PH_ENV_OPE_CODE_LEN;
    }
    memcpy(ad + n, k->domain, k->domain_len);
    return n + k->domain_len;
}

static int64_t get_i64(const uint8_t *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | p[i];
    return (int64_t)u;
}

static void put_i64(uint8_t *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)u;
        u >>= 8;
    }
}

size_t ph_field_envelope_len(ph_field_mode mode, size_t len)
{
    if (mode == PH_FIELD_ANY)
        return 0;
    return ph_envelope_len((ph_env_mode)mode, len);
}

ph_field_status ph_field_peek(const uint8_t *env, size_t len, ph_field_info *info)
{
    ph_envelope e;
    if (!info || ph_envelope_parse(env, len, &e) != PH_ENV_OK)
        return PH_FIELD_EMALFORMED;
    info->mode = e.mode;
    info->key_id = e.key_id;
    switch (e.mode) {
    case PH_ENV_RANDOMIZED:
    case PH_ENV_OPE:
        info->plaintext_len = e.ct_len;
        break;
    case PH_ENV_DETERMINISTIC:
        info->plaintext_len = e.ct_len - PH_ENV_DET_PAD_LEN;
        break;
    case PH_ENV_TOKEN:
        info->plaintext_len = 0;
        break;
    }
    return PH_FIELD_OK;
}

/* ---- sealing ---------------------------------------------------------------- */

static ph_field_status seal_randomized(const ph_field_key *k, const uint8_t *pt, size_t len,
                                       uint8_t *out)
{
    uint8_t ad[AD_MAX];
    uint8_t *nonce = out + PH_ENV_HEADER_LEN, *ct = nonce + PH_ENV_NONCE_LEN;
    if (RAND_bytes(nonce, PH_ENV_NONCE_LEN) != 1)
        return PH_FIELD_EINTERNAL;
    size_t adl = build_ad(k, out, NULL, ad);
    if (ph_gcm_seal(&k->gcm, nonce, ad, adl, pt, len, ct, ct + len) != 0)
        return PH_FIELD_EINTERNAL;
    return PH_FIELD_OK;
}

static ph_field_status seal_deterministic(const ph_field_key *k, const uint8_t *pt, size_t len,
                                          uint8_t *out)
{
    uint8_t ad[AD_MAX];
    uint8_t *v = out + PH_ENV_HEADER_LEN, *ct = v + PH_ENV_TAG_LEN;
    ct[0] = 0x00; /* padding scheme 0: none */
    if (len)
        memcpy(ct + 1, pt, len);
    size_t adl = build_ad(k, out, NULL, ad);
    ph_ad a = {ad, adl};
    if (ph_siv_seal(&k->det, &a, 1, ct, len + 1, v, ct) != 0) /* in place */
        return PH_FIELD_EINTERNAL;
    return PH_FIELD_OK;
}

static ph_field_status seal_ope(const ph_field_key *k, const uint8_t *pt, uint8_t *out)
{
    uint8_t ad[AD_MAX];
    uint8_t *code = out + PH_ENV_HEADER_LEN, *v = code + PH_ENV_OPE_CODE_LEN;
    uint8_t *ct = v + PH_ENV_TAG_LEN;
    if (ph_ope_encrypt(&k->ope, get_i64(pt), code) != 0)
        return PH_FIELD_EINTERNAL;
    size_t adl = build_ad(k, out, code, ad);
    ph_ad a = {ad, adl};
    if (ph_siv_seal(&k->ope_siv, &a, 1, pt, PH_ENV_OPE_VALUE_LEN, v, ct) != 0)
        return PH_FIELD_EINTERNAL;
    return PH_FIELD_OK;
}

ph_field_status ph_field_encrypt(const ph_field_key *k, ph_field_mode mode, const uint8_t *pt,
                                 size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    if (!k || !out || !out_len || (!pt && len))
        return PH_FIELD_EINVAL;
    size_t need = ph_field_envelope_len(mode, len);
    if (need == 0)
        return PH_FIELD_EINVAL;
    if (cap < need)
        return PH_FIELD_ESPACE;
    ph_envelope_put_header(out, (ph_env_mode)mode, k->key_id);
    ph_field_status st = PH_FIELD_EINVAL;
    if (mode == PH_FIELD_RANDOMIZED)
        st = seal_randomized(k, pt, len, out);
    else if (mode == PH_FIELD_DETERMINISTIC)
        st = seal_deterministic(k, pt, len, out);
    else if (mode == PH_FIELD_OPE)
        st = seal_ope(k, pt, out);
    if (st != PH_FIELD_OK) {
        OPENSSL_cleanse(out, need); /* may hold a copy of the plaintext */
        return st;
    }
    *out_len = need;
    return PH_FIELD_OK;
}

/* ---- opening ---------------------------------------------------------------- */

static ph_field_status open_randomized(const ph_field_key *k, const ph_envelope *e, uint8_t *out)
{
    uint8_t ad[AD_MAX];
    size_t adl = build_ad(k, e->header, NULL, ad);
    if (ph_gcm_open(&k->gcm, e->nonce, ad, adl, e->ct, e->ct_len, e->tag, out) != 0)
        return PH_FIELD_EAUTH;
    return PH_FIELD_OK;
}

/* SIV-opens the deterministic body into tmp[0..ct_len), then moves the value
 * (after the padding-scheme byte) to out. */
static ph_field_status open_deterministic(const ph_field_key *k, const ph_envelope *e, uint8_t *out,
                                          size_t cap)
{
    uint8_t ad[AD_MAX], stack[STACK_TMP];
    uint8_t *tmp = cap >= e->ct_len ? out : e->ct_len <= sizeof stack ? stack : malloc(e->ct_len);
    if (!tmp)
        return PH_FIELD_EINTERNAL;
    size_t adl = build_ad(k, e->header, NULL, ad);
    ph_ad a = {ad, adl};
    ph_field_status st = PH_FIELD_OK;
    if (ph_siv_open(&k->det, &a, 1, e->tag, e->ct, e->ct_len, tmp) != 0)
        st = PH_FIELD_EAUTH;
    else if (tmp[0] != 0x00)
        st = PH_FIELD_EMALFORMED; /* authentic, but a padding scheme we do not know */
    if (st == PH_FIELD_OK && e->ct_len > 1)
        memmove(out, tmp + 1, e->ct_len - 1);
    if (tmp != out) {
        OPENSSL_cleanse(tmp, e->ct_len);
        if (tmp != stack)
            free(tmp);
    } else if (st != PH_FIELD_OK) {
        OPENSSL_cleanse(out, e->ct_len);
    }
    return st;
}

/* Opens the SIV part, then recomputes the OPE code and compares. */
static ph_field_status open_ope(const ph_field_key *k, const ph_envelope *e,
                                uint8_t value[PH_ENV_OPE_VALUE_LEN])
{
    uint8_t ad[AD_MAX], code[PH_ENV_OPE_CODE_LEN];
    size_t adl = build_ad(k, e->header, e->code, ad);
    ph_ad a = {ad, adl};
    if (ph_siv_open(&k->ope_siv, &a, 1, e->tag, e->ct, PH_ENV_OPE_VALUE_LEN, value) != 0)
        return PH_FIELD_EAUTH;
    ph_field_status st = PH_FIELD_OK;
    if (ph_ope_encrypt(&k->ope, get_i64(value), code) != 0)
        st = PH_FIELD_EINTERNAL;
    else if (CRYPTO_memcmp(code, e->code, sizeof code) != 0)
        st = PH_FIELD_EAUTH;
    if (st != PH_FIELD_OK)
        OPENSSL_cleanse(value, PH_ENV_OPE_VALUE_LEN);
    OPENSSL_cleanse(code, sizeof code);
    return st;
}

/* Parses env and checks it against k and the expected mode. */
static ph_field_status check_envelope(const ph_field_key *k, ph_field_mode expect,
                                      const uint8_t *env, size_t len, ph_envelope *e)
{
    if (!k || (!env && len))
        return PH_FIELD_EINVAL;
    if (ph_envelope_parse(env, len, e) != PH_ENV_OK)
        return PH_FIELD_EMALFORMED;
    if (e->mode == PH_ENV_TOKEN || (expect != PH_FIELD_ANY && (int)e->mode != (int)expect))
        return PH_FIELD_EMODE;
    if (e->key_id != k->key_id)
        return PH_FIELD_EKEYID;
    return PH_FIELD_OK;
}

ph_field_status ph_field_decrypt(const ph_field_key *k, ph_field_mode expect, const uint8_t *env,
                                 size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    ph_envelope e;
    ph_field_status st = check_envelope(k, expect, env, len, &e);
    if (st != PH_FIELD_OK)
        return st;
    size_t plen = e.mode == PH_ENV_DETERMINISTIC ? e.ct_len - PH_ENV_DET_PAD_LEN : e.ct_len;
    if (!out_len || (!out && plen))
        return PH_FIELD_EINVAL;
    if (cap < plen)
        return PH_FIELD_ESPACE;
    if (e.mode == PH_ENV_RANDOMIZED)
        st = open_randomized(k, &e, out);
    else if (e.mode == PH_ENV_DETERMINISTIC)
        st = open_deterministic(k, &e, out, cap);
    else
        st = open_ope(k, &e, out);
    if (st == PH_FIELD_OK)
        *out_len = plen;
    return st;
}

ph_field_status ph_field_encrypt_buf(const ph_field_key *k, ph_field_mode mode, const uint8_t *pt,
                                     size_t len, ph_buf *out)
{
    size_t need = ph_field_envelope_len(mode, len), n = 0;
    if (!out || need == 0)
        return PH_FIELD_EINVAL;
    if (ph_buf_reserve(out, need) != 0)
        return PH_FIELD_EINTERNAL;
    ph_field_status st = ph_field_encrypt(k, mode, pt, len, out->data + out->len, need, &n);
    if (st == PH_FIELD_OK)
        out->len += n;
    return st;
}

ph_field_status ph_field_decrypt_buf(const ph_field_key *k, ph_field_mode expect,
                                     const uint8_t *env, size_t len, ph_buf *out)
{
    ph_field_info info;
    size_t n = 0;
    if (!out)
        return PH_FIELD_EINVAL;
    ph_field_status st = ph_field_peek(env, len, &info);
    if (st != PH_FIELD_OK)
        return st;
    /* one spare byte lets deterministic bodies open in place */
    if (ph_buf_reserve(out, info.plaintext_len + 1) != 0)
        return PH_FIELD_EINTERNAL;
    st = ph_field_decrypt(k, expect, env, len, out->data + out->len, info.plaintext_len + 1, &n);
    if (st == PH_FIELD_OK)
        out->len += n;
    return st;
}

ph_field_status ph_field_encrypt_ope(const ph_field_key *k, int64_t v,
                                     uint8_t out[PH_FIELD_OPE_ENVELOPE])
{
    uint8_t pt[PH_ENV_OPE_VALUE_LEN];
    size_t n = 0;
    put_i64(pt, v);
    ph_field_status st =
        ph_field_encrypt(k, PH_FIELD_OPE, pt, sizeof pt, out, PH_FIELD_OPE_ENVELOPE, &n);
    OPENSSL_cleanse(pt, sizeof pt);
    return st;
}

ph_field_status ph_field_decrypt_ope(const ph_field_key *k, const uint8_t *env, size_t len,
                                     int64_t *v)
{
    uint8_t pt[PH_ENV_OPE_VALUE_LEN];
    size_t n = 0;
    if (!v)
        return PH_FIELD_EINVAL;
    ph_field_status st = ph_field_decrypt(k, PH_FIELD_OPE, env, len, pt, sizeof pt, &n);
    if (st == PH_FIELD_OK)
        *v = get_i64(pt);
    OPENSSL_cleanse(pt, sizeof pt);
    return st;
}

const char *ph_field_strerror(ph_field_status st)
{
    switch (st) {
    case PH_FIELD_OK:
        return "ok";
    case PH_FIELD_EINVAL:
        return "invalid argument";
    case PH_FIELD_ESPACE:
        return "output buffer too small";
    case PH_FIELD_EMALFORMED:
        return "malformed envelope";
    case PH_FIELD_EKEYID:
        return "envelope sealed under another key id";
    case PH_FIELD_EMODE:
        return "envelope mode does not match the column";
    case PH_FIELD_EAUTH:
        return "authentication failed (tampered value, wrong key or wrong key domain)";
    case PH_FIELD_EINTERNAL:
        return "internal crypto failure";
    }
    return "unknown error";
}
