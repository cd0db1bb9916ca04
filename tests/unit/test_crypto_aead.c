/*
 * test_crypto_aead.c — known-answer tests of the AEAD building blocks
 * (src/crypto/aead.c, kdf.c): AES-256-GCM test cases 13–16 of McGrew &
 * Viega's GCM specification (the AES-256 vectors NIST's CAVP also carries),
 * differential tests of the GCM composition and of ctr.c against OpenSSL's
 * EVP AES-256-GCM and AES-256-CTR, RFC 5869 HKDF test cases 1 and 3, and GCM and SIV keys reused
 * by several threads. AES-SIV itself (RFC 5297 vectors, the differential
 * test against OpenSSL's AES-SIV) is test_crypto_siv.c.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "crypto/aead.h"
#include "crypto/ctr.h"
#include "crypto/kdf.h"

/* ---- helpers ---------------------------------------------------------------- */

static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = strlen(h) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* ---- AES-256-GCM ------------------------------------------------------------ */

typedef struct gcm_vec {
    const char *name, *key, *iv, *pt, *aad, *ct, *tag;
} gcm_vec;

static const gcm_vec gcm_vectors[] = {
    {"13", "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"14", "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "00000000000000000000000000000000", "",
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {"15", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
     "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e24"
     "49a6b525b16aedf5aa0de657ba637b391aafd255",
     "",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b10"
     "56828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"16", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
     "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e24"
     "49a6b525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b10"
     "56828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

static void test_gcm_vectors(void **state)
{
    (void)state;
    for (size_t v = 0; v < sizeof gcm_vectors / sizeof gcm_vectors[0]; v++) {
        const gcm_vec *t = &gcm_vectors[v];
        uint8_t key[32], iv[12], pt[64], aad[32], ct[64], tag[16];
        uint8_t got_ct[64], got_tag[16], back[64];
        unhex(t->key, key, sizeof key);
        unhex(t->iv, iv, sizeof iv);
        size_t pl = unhex(t->pt, pt, sizeof pt), al = unhex(t->aad, aad, sizeof aad);
        size_t cl = unhex(t->ct, ct, sizeof ct);
        unhex(t->tag, tag, sizeof tag);
        assert_int_equal(pl, cl);
        ph_gcm g;
        assert_int_equal(ph_gcm_init(&g, key), 0);
        assert_int_equal(ph_gcm_seal(&g, iv, aad, al, pt, pl, got_ct, got_tag), 0);
        if (cl)
            assert_memory_equal(got_ct, ct, cl);
        assert_memory_equal(got_tag, tag, 16);
        assert_int_equal(ph_gcm_open(&g, iv, aad, al, ct, cl, tag, back), 0);
        if (pl)
            assert_memory_equal(back, pt, pl);
        /* a flipped tag bit, ciphertext bit or AAD bit is refused, output wiped */
        tag[5] ^= 0x10;
        memset(back, 0xAA, sizeof back);
        assert_int_equal(ph_gcm_open(&g, iv, aad, al, ct, cl, tag, back), -1);
        assert_true(all_zero(back, pl));
        tag[5] ^= 0x10;
        if (cl) {
            ct[cl - 1] ^= 0x01;
            assert_int_equal(ph_gcm_open(&g, iv, aad, al, ct, cl, tag, back), -1);
            ct[cl - 1] ^= 0x01;
        }
        if (al) {
            aad[0] ^= 0x80;
            assert_int_equal(ph_gcm_open(&g, iv, aad, al, ct, cl, tag, back), -1);
            aad[0] ^= 0x80;
        }
        iv[11] ^= 1;
        assert_int_equal(ph_gcm_open(&g, iv, aad, al, ct, cl, tag, back), -1);
        ph_gcm_clear(&g);
        assert_null(g.ecb);
    }
}

/* ph_gcm (OpenSSL's GCM128 over an ECB key stream, aead.c) against OpenSSL's
 * EVP AES-256-GCM: random keys, nonces, AAD and every plaintext length around
 * the block size and the cached key stream's end (512 bytes), plus long
 * values; each sealed by both must be byte-identical, each opens the other's,
 * and a flipped bit anywhere is refused with the output wiped. */
static uint32_t rng_state = 0x2545F491u;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd();
}

static void evp_seal(const uint8_t *key, const uint8_t *iv, const uint8_t *aad, size_t al,
                     const uint8_t *pt, size_t pl, uint8_t *ct, uint8_t *tag)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0;
    uint8_t fin[16];
    assert_non_null(c);
    assert_int_equal(EVP_EncryptInit_ex2(c, EVP_aes_256_gcm(), key, iv, NULL), 1);
    if (al)
        assert_int_equal(EVP_EncryptUpdate(c, NULL, &n, aad, (int)al), 1);
    if (pl)
        assert_int_equal(EVP_EncryptUpdate(c, ct, &n, pt, (int)pl), 1);
    assert_int_equal(EVP_EncryptFinal_ex(c, fin, &n), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tag), 1);
    EVP_CIPHER_CTX_free(c);
}

static void gcm_compare(const ph_gcm *g, const uint8_t *key, size_t pl, size_t al, uint8_t *buf)
{
    uint8_t iv[12], aad[80], tag[16], tag2[16];
    uint8_t *pt = buf, *ct = buf + pl, *ct2 = buf + 2 * pl, *back = buf + 3 * pl;
    fill(iv, sizeof iv);
    fill(aad, al);
    fill(pt, pl);
    evp_seal(key, iv, aad, al, pt, pl, ct, tag);
    assert_int_equal(ph_gcm_seal(g, iv, aad, al, pt, pl, ct2, tag2), 0);
    assert_memory_equal(ct2, ct, pl);
    assert_memory_equal(tag2, tag, 16);
    assert_int_equal(ph_gcm_open(g, iv, aad, al, ct, pl, tag, back), 0);
    assert_memory_equal(back, pt, pl);
    /* one flipped bit in the tag, the ciphertext, the AAD or the nonce */
    size_t where = rnd() % 4;
    if (where == 1 && pl)
        ct[rnd() % pl] ^= (uint8_t)(1u << (rnd() % 8));
    else if (where == 2 && al)
        aad[rnd() % al] ^= (uint8_t)(1u << (rnd() % 8));
    else if (where == 3)
        iv[rnd() % 12] ^= (uint8_t)(1u << (rnd() % 8));
    else
        tag[rnd() % 16] ^= (uint8_t)(1u << (rnd() % 8));
    memset(back, 0xA5, pl);
    assert_int_equal(ph_gcm_open(g, iv, aad, al, ct, pl, tag, back), -1);
    assert_true(all_zero(back, pl));
}

static void test_gcm_differential(void **state)
{
    (void)state;
    uint8_t *buf = malloc(4 * 70000);
    assert_non_null(buf);
    for (int k = 0; k < 6; k++) {
        uint8_t key[32];
        fill(key, sizeof key);
        ph_gcm g;
        assert_int_equal(ph_gcm_init(&g, key), 0);
        for (size_t pl = 0; pl <= 600; pl++)
            gcm_compare(&g, key, pl, rnd() % 81, buf);
        const size_t long_lens[] = {1023, 1024, 1025, 3071, 3072, 3089, 65536, 70000};
        for (size_t i = 0; i < sizeof long_lens / sizeof long_lens[0]; i++)
            gcm_compare(&g, key, long_lens[i], rnd() % 81, buf);
        ph_gcm_clear(&g);
    }
    free(buf);
}

/* ctr.c against OpenSSL's AES-256-CTR (which counts in 128 bits: the same
 * while the last 32 bits do not wrap), every length up to 300 and a few
 * chunks long, in place too; at the wrap, inc32 goes back to 0 without a
 * carry (SP 800-38D), checked block by block with AES-ECB. */
static void test_ctr32(void **state)
{
    (void)state;
    uint8_t key[32], iv[16], in[3000], out[3000], want[3000], blk[16];
    fill(key, sizeof key);
    EVP_CIPHER_CTX *ecb = EVP_CIPHER_CTX_new(), *ref = EVP_CIPHER_CTX_new();
    assert_int_equal(EVP_EncryptInit_ex2(ecb, EVP_aes_256_ecb(), key, NULL, NULL), 1);
    assert_int_equal(EVP_CIPHER_CTX_set_padding(ecb, 0), 1);
    for (size_t len = 0; len <= 3000; len += len < 300 ? 1 : 677) {
        int n = 0;
        fill(iv, sizeof iv);
        iv[12] = 0x7f; /* no wrap within 3000 bytes */
        fill(in, len);
        assert_int_equal(EVP_EncryptInit_ex2(ref, EVP_aes_256_ctr(), key, iv, NULL), 1);
        if (len)
            assert_int_equal(EVP_EncryptUpdate(ref, want, &n, in, (int)len), 1);
        assert_int_equal(ph_ctr32_xor(ecb, iv, in, out, len), 0);
        assert_memory_equal(out, want, len);
        memcpy(out, in, len);
        assert_int_equal(ph_ctr32_xor(ecb, iv, out, out, len), 0);
        assert_memory_equal(out, want, len);
    }
    memset(iv + 12, 0xff, 4); /* ...ffffffff, then ...00000000 with word 3 unchanged */
    memset(in, 0, 48);
    assert_int_equal(ph_ctr32_xor(ecb, iv, in, out, 48), 0);
    for (uint32_t j = 0; j < 3; j++) {
        uint8_t cb[16];
        int n = 0;
        memcpy(cb, iv, 12);
        cb[12] = cb[13] = cb[14] = cb[15] = (uint8_t)(j == 0 ? 0xff : 0);
        cb[15] = (uint8_t)(j == 0 ? 0xff : j - 1);
        assert_int_equal(EVP_EncryptUpdate(ecb, blk, &n, cb, 16), 1);
        assert_memory_equal(out + 16 * j, blk, 16);
    }
    EVP_CIPHER_CTX_free(ecb);
    EVP_CIPHER_CTX_free(ref);
}

/* One key, many messages: the pooled working contexts (re-armed by a new
 * nonce for GCM, restarted CMAC and CTR for SIV) must give the published answers every
 * time, also right after a failed open, and from several threads at once. */
typedef struct reuse_arg {
    const ph_gcm *g;
    const ph_siv *s;
    int failures;
} reuse_arg;

static void *reuse_worker(void *p)
{
    reuse_arg *a = p;
    const gcm_vec *t15 = &gcm_vectors[2], *t16 = &gcm_vectors[3];
    uint8_t iv[12], pt[64], aad[32], ct15[64], ct16[64], tag15[16], tag16[16], got[64], tag[16];
    unhex(t15->iv, iv, sizeof iv);
    size_t pl15 = unhex(t15->pt, pt, sizeof pt);
    unhex(t15->ct, ct15, sizeof ct15);
    unhex(t15->tag, tag15, sizeof tag15);
    size_t al = unhex(t16->aad, aad, sizeof aad);
    unhex(t16->ct, ct16, sizeof ct16);
    unhex(t16->tag, tag16, sizeof tag16);
    size_t pl16 = pl15 - 4; /* vector 16's plaintext is vector 15's minus 4 bytes */
    const uint8_t sad[] = "domain";
    ph_ad sa = {sad, sizeof sad - 1};
    uint8_t v0[16], c0[20], v[16], c[20];
    if (ph_siv_seal(a->s, &sa, 1, pt, 20, v0, c0) != 0)
        a->failures++;
    for (int i = 0; i < 300; i++) {
        a->failures += ph_gcm_seal(a->g, iv, NULL, 0, pt, pl15, got, tag) != 0 ||
                       memcmp(got, ct15, pl15) || memcmp(tag, tag15, 16);
        a->failures += ph_gcm_seal(a->g, iv, aad, al, pt, pl16, got, tag) != 0 ||
                       memcmp(got, ct16, pl16) || memcmp(tag, tag16, 16);
        tag16[0] ^= 1; /* a failed open must not spoil the next one */
        a->failures += ph_gcm_open(a->g, iv, aad, al, ct16, pl16, tag16, got) != -1;
        tag16[0] ^= 1;
        a->failures +=
            ph_gcm_open(a->g, iv, aad, al, ct16, pl16, tag16, got) != 0 || memcmp(got, pt, pl16);
        a->failures +=
            ph_siv_seal(a->s, &sa, 1, pt, 20, v, c) != 0 || memcmp(v, v0, 16) || memcmp(c, c0, 20);
        v[0] ^= 1;
        a->failures += ph_siv_open(a->s, &sa, 1, v, c, 20, got) != -1;
        v[0] ^= 1;
        a->failures += ph_siv_open(a->s, &sa, 1, v, c, 20, got) != 0 || memcmp(got, pt, 20);
    }
    return NULL;
}

static void test_contexts_reused(void **state)
{
    (void)state;
    uint8_t key[32], skey[64];
    unhex(gcm_vectors[2].key, key, sizeof key);
    for (int i = 0; i < 64; i++)
        skey[i] = (uint8_t)(7 * i + 3);
    ph_gcm g;
    ph_siv s;
    assert_int_equal(ph_gcm_init(&g, key), 0);
    assert_int_equal(ph_siv_init(&s, skey, 64), 0);
    reuse_arg one = {&g, &s, 0};
    reuse_worker(&one);
    assert_int_equal(one.failures, 0);
    pthread_t th[4];
    reuse_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (reuse_arg){&g, &s, 0};
        assert_int_equal(pthread_create(&th[i], NULL, reuse_worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].failures, 0);
    }
    ph_gcm_clear(&g);
    ph_siv_clear(&s);
    assert_null(g.pool);
    assert_null(s.k);
}

/* ---- HKDF (RFC 5869) ----------------------------------------------------------- */

static void test_hkdf_rfc5869(void **state)
{
    (void)state;
    uint8_t ikm[22], salt[13], info[10], want[42], okm[42];
    memset(ikm, 0x0b, sizeof ikm);
    unhex("000102030405060708090a0b0c", salt, sizeof salt);
    unhex("f0f1f2f3f4f5f6f7f8f9", info, sizeof info);
    unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
          want, sizeof want);
    assert_int_equal(
        ph_hkdf_sha256(ikm, sizeof ikm, salt, sizeof salt, info, sizeof info, okm, sizeof okm), 0);
    assert_memory_equal(okm, want, sizeof want);
    /* test case 3: empty salt and info */
    unhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
          want, sizeof want);
    assert_int_equal(ph_hkdf_sha256(ikm, sizeof ikm, NULL, 0, NULL, 0, okm, sizeof okm), 0);
    assert_memory_equal(okm, want, sizeof want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gcm_vectors),     cmocka_unit_test(test_gcm_differential),
        cmocka_unit_test(test_ctr32),           cmocka_unit_test(test_hkdf_rfc5869),
        cmocka_unit_test(test_contexts_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
