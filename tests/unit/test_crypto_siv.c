/*
 * test_crypto_siv.c — AES-SIV as composed in src/crypto/siv.c (OpenSSL's
 * CMAC and CTR plus our S2V glue): RFC 5297 Appendix A.1 and A.2 (AES-128-
 * SIV, 32-byte keys, through the same code path as AES-256-SIV), and a
 * differential test against OpenSSL's own EVP "AES-256-SIV" / "AES-128-SIV"
 * (the implementation that sealed existing databases): 12 000 random cases
 * (key, 0..PH_SIV_MAX_AD associated-data components of random lengths
 * including 0 and multiples of 16, plaintexts of 1..300 bytes with 15, 16,
 * 17, 32 favoured), byte-identical V and ciphertext, each side opening the
 * other's output, in place, and tamper checks (flipped V, ciphertext or AD
 * bit: open fails and the output is wiped). Also the precomputed fixed AD
 * component (ph_siv_fix_ad), argument checks, and several threads on one
 * key. The random cases come from a seeded generator (PH_SIV_SEED overrides
 * the seed; it is printed on failure).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "crypto/siv.h"

#define MAX_PT   300
#define MAX_ADL  100
#define N_CASES  12000
#define KEY_USES 8 /* cases per key: pooled contexts are reused */

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

static uint64_t rng_state;

static uint64_t rnd(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t rnd_below(size_t n)
{
    return (size_t)(rnd() % n);
}

static void rnd_fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd();
}

static uint64_t seed_from_env(void)
{
    const char *e = getenv("PH_SIV_SEED");
    return e && *e ? strtoull(e, NULL, 0) : 0x5157u;
}

/* ---- the reference: OpenSSL's EVP AES-SIV, a fresh context per message ---------- */

static int ref_siv(int enc, const uint8_t *key, size_t key_len, const ph_ad *ad, size_t n_ad,
                   const uint8_t *in, size_t len, uint8_t v[16], uint8_t *out)
{
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, key_len == 32 ? "AES-128-SIV" : "AES-256-SIV", NULL);
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    uint8_t fin[16];
    int n = 0;
    int ok = c && x && EVP_CipherInit_ex2(x, c, key, NULL, enc, NULL) == 1;
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, 16, v) == 1;
    for (size_t i = 0; ok && i < n_ad; i++) /* one update per S2V string; p never NULL here */
        ok = EVP_CipherUpdate(x, NULL, &n, ad[i].p, (int)ad[i].len) == 1;
    ok = ok && EVP_CipherUpdate(x, out, &n, in, (int)len) == 1 &&
         EVP_CipherFinal_ex(x, fin, &n) == 1;
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, v) == 1;
    EVP_CIPHER_CTX_free(x);
    EVP_CIPHER_free(c);
    return ok ? 0 : -1;
}

/* ---- RFC 5297 Appendix A -------------------------------------------------------- */

static void test_rfc5297_a1(void **state)
{
    (void)state;
    uint8_t key[32], ad[24], pt[14], want[30], v[16], ct[14], back[14];
    unhex("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", key, sizeof key);
    unhex("101112131415161718191a1b1c1d1e1f2021222324252627", ad, sizeof ad);
    unhex("112233445566778899aabbccddee", pt, sizeof pt);
    unhex("85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c", want, sizeof want);
    ph_siv s;
    assert_int_equal(ph_siv_init(&s, key, 32), 0);
    ph_ad a = {ad, sizeof ad};
    for (int fixed = 0; fixed < 2; fixed++) { /* without, then with the precomputed AD */
        assert_int_equal(ph_siv_seal(&s, &a, 1, pt, sizeof pt, v, ct), 0);
        assert_memory_equal(v, want, 16);
        assert_memory_equal(ct, want + 16, 14);
        memset(back, 0, sizeof back);
        assert_int_equal(ph_siv_open(&s, &a, 1, want, want + 16, 14, back), 0);
        assert_memory_equal(back, pt, sizeof pt);
        assert_int_equal(ph_siv_fix_ad(&s, &a), 0);
    }
    ph_siv_clear(&s);
    assert_null(s.k);
    ph_siv_clear(&s); /* idempotent */
}

static void test_rfc5297_a2(void **state)
{
    (void)state;
    uint8_t key[32], ad1[40], ad2[10], nonce[16], pt[47], want[63], v[16], ct[47], back[47];
    unhex("7f7e7d7c7b7a79787776757473727170404142434445464748494a4b4c4d4e4f", key, sizeof key);
    unhex("00112233445566778899aabbccddeeffdeaddadadeaddadaffeeddccbbaa99887766554433221100", ad1,
          sizeof ad1);
    unhex("102030405060708090a0", ad2, sizeof ad2);
    unhex("09f911029d74e35bd84156c5635688c0", nonce, sizeof nonce);
    unhex("7468697320697320736f6d6520706c61696e7465787420746f20656e6372797074207573696e672053"
          "49562d414553",
          pt, sizeof pt);
    unhex("7bdb6e3b432667eb06f4d14bff2fbd0fcb900f2fddbe404326601965c889bf17dba77ceb094fa663b7a3f7"
          "48ba8af829ea64ad544a272e9c485b62a3fd5c0d",
          want, sizeof want);
    ph_siv s;
    assert_int_equal(ph_siv_init(&s, key, 32), 0);
    ph_ad ad[3] = {{ad1, sizeof ad1}, {ad2, sizeof ad2}, {nonce, sizeof nonce}};
    for (int fixed = 0; fixed < 2; fixed++) {
        assert_int_equal(ph_siv_seal(&s, ad, 3, pt, sizeof pt, v, ct), 0);
        assert_memory_equal(v, want, 16);
        assert_memory_equal(ct, want + 16, sizeof ct);
        assert_int_equal(ph_siv_open(&s, ad, 3, want, want + 16, sizeof ct, back), 0);
        assert_memory_equal(back, pt, sizeof pt);
        /* the fixed component only counts in first position */
        ph_ad swapped[3] = {ad[1], ad[0], ad[2]};
        memset(back, 0xAA, sizeof back);
        assert_int_equal(ph_siv_open(&s, swapped, 3, want, want + 16, sizeof ct, back), -1);
        assert_true(all_zero(back, sizeof back));
        assert_int_equal(ph_siv_fix_ad(&s, &ad[0]), 0);
    }
    ph_siv_clear(&s);
}

/* ---- differential test against OpenSSL's AES-SIV ---------------------------------- */

typedef struct dcase {
    uint8_t key[64];
    size_t key_len;
    uint8_t adbuf[PH_SIV_MAX_AD][MAX_ADL + 1];
    ph_ad ad[PH_SIV_MAX_AD];
    size_t n_ad;
    uint8_t pt[MAX_PT];
    size_t len;
} dcase;

static size_t pick_len(size_t max, int zero_ok)
{
    static const size_t special[] = {0, 1, 15, 16, 17, 31, 32, 33, 48, 64};
    size_t n;
    do
        n = rnd_below(3) == 0 ? special[rnd_below(10)] : rnd_below(max + 1);
    while (n > max || (!zero_ok && n == 0));
    return n;
}

/* A random message; ad[0] is the key's fixed component (fixed_len, a copy
 * in another buffer) in about half of the cases when there is one. */
static void make_case(dcase *c, const uint8_t *fixed, size_t fixed_len)
{
    c->n_ad = rnd_below(PH_SIV_MAX_AD + 1);
    for (size_t i = 0; i < c->n_ad; i++) {
        size_t l = pick_len(MAX_ADL, 1);
        rnd_fill(c->adbuf[i], l); /* p is never NULL, even for l == 0 (OpenSSL's EVP needs it) */
        if (fixed && rnd_below(2) == 0) {
            l = fixed_len;
            memcpy(c->adbuf[i], fixed, l);
            if (rnd_below(4) == 0 && l) /* near miss: same length, one byte off */
                c->adbuf[i][rnd_below(l)] ^= 0x01;
        }
        c->ad[i] = (ph_ad){c->adbuf[i], l};
    }
    c->len = pick_len(MAX_PT, 0);
    rnd_fill(c->pt, c->len);
}

/* Flips one random bit of V, the ciphertext or a non-empty AD component;
 * open must fail and wipe its output. */
static int tamper_fails(const ph_siv *s, dcase *c, uint8_t v[16], uint8_t *ct)
{
    uint8_t back[MAX_PT];
    size_t what = rnd_below(3), bit = rnd_below(8);
    uint8_t *p = v;
    size_t n = 16;
    if (what == 1) {
        p = ct;
        n = c->len;
    } else if (what == 2 && c->n_ad > 0 && c->ad[c->n_ad - 1].len > 0) {
        p = c->adbuf[c->n_ad - 1];
        n = c->ad[c->n_ad - 1].len;
    }
    size_t at = rnd_below(n);
    p[at] ^= (uint8_t)(1u << bit);
    memset(back, 0xAA, c->len);
    int rc = ph_siv_open(s, c->ad, c->n_ad, v, ct, c->len, back);
    int ok = rc == -1 && all_zero(back, c->len);
    p[at] ^= (uint8_t)(1u << bit);
    return ok;
}

/* One case: both implementations agree byte for byte, each opens the
 * other's output, in place works, tampering is refused. 0 or a step number. */
static int run_case(const ph_siv *s, dcase *c)
{
    uint8_t v1[16], v2[16], c1[MAX_PT], c2[MAX_PT], b1[MAX_PT], b2[MAX_PT], inpl[MAX_PT];
    if (ph_siv_seal(s, c->ad, c->n_ad, c->pt, c->len, v1, c1) != 0)
        return 1;
    if (ref_siv(1, c->key, c->key_len, c->ad, c->n_ad, c->pt, c->len, v2, c2) != 0)
        return 2;
    if (memcmp(v1, v2, 16) || memcmp(c1, c2, c->len))
        return 3;
    if (ph_siv_open(s, c->ad, c->n_ad, v2, c2, c->len, b1) != 0 || memcmp(b1, c->pt, c->len))
        return 4; /* ours opens OpenSSL's */
    if (ref_siv(0, c->key, c->key_len, c->ad, c->n_ad, c1, c->len, v1, b2) != 0 ||
        memcmp(b2, c->pt, c->len))
        return 5; /* OpenSSL opens ours */
    memcpy(inpl, c->pt, c->len);
    if (ph_siv_seal(s, c->ad, c->n_ad, inpl, c->len, v1, inpl) != 0 || memcmp(v1, v2, 16) ||
        memcmp(inpl, c2, c->len))
        return 6;
    if (ph_siv_open(s, c->ad, c->n_ad, v1, inpl, c->len, inpl) != 0 || memcmp(inpl, c->pt, c->len))
        return 7;
    if (!tamper_fails(s, c, v1, c1))
        return 8;
    return 0;
}

/* A new key every KEY_USES cases: 64 bytes (AES-256-SIV) mostly, 32 bytes
 * (AES-128-SIV) for one key in four; half of them with a fixed AD. */
static void new_key(ph_siv *s, dcase *c, uint8_t *fixed, size_t *fixed_len, int *has_fixed)
{
    c->key_len = rnd_below(4) == 0 ? 32 : 64;
    rnd_fill(c->key, c->key_len);
    assert_int_equal(ph_siv_init(s, c->key, c->key_len), 0);
    *has_fixed = (int)rnd_below(2);
    if (*has_fixed) {
        *fixed_len = pick_len(MAX_ADL, 1);
        rnd_fill(fixed, *fixed_len);
        ph_ad a = {fixed, *fixed_len};
        assert_int_equal(ph_siv_fix_ad(s, &a), 0);
    }
}

static void test_differential_openssl(void **state)
{
    (void)state;
    uint64_t seed = seed_from_env();
    rng_state = seed;
    static dcase c;
    uint8_t fixed[MAX_ADL + 1];
    size_t fixed_len = 0, by_len[MAX_PT + 1] = {0}, empty_ad = 0, fixed_hits = 0;
    int has_fixed = 0;
    ph_siv s = {0};
    for (int i = 0; i < N_CASES; i++) {
        if (i % KEY_USES == 0) {
            ph_siv_clear(&s);
            new_key(&s, &c, fixed, &fixed_len, &has_fixed);
        }
        make_case(&c, has_fixed ? fixed : NULL, fixed_len);
        int step = run_case(&s, &c);
        if (step != 0)
            fail_msg("case %d (seed 0x%llx): step %d, key %zu B, %zu AD, pt %zu B", i,
                     (unsigned long long)seed, step, c.key_len, c.n_ad, c.len);
        by_len[c.len]++;
        for (size_t j = 0; j < c.n_ad; j++)
            empty_ad += c.ad[j].len == 0;
        fixed_hits += has_fixed && c.n_ad > 0 && c.ad[0].len == fixed_len &&
                      !memcmp(c.ad[0].p, fixed, fixed_len);
    }
    ph_siv_clear(&s);
    /* the generator did cover the edges the brief names */
    static const size_t edges[] = {1, 15, 16, 17, 32, MAX_PT};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        assert_true(by_len[edges[i]] > 0);
    assert_true(empty_ad > 100);
    assert_true(fixed_hits > 100);
}

/* ---- arguments -------------------------------------------------------------------- */

static void test_arguments(void **state)
{
    (void)state;
    uint8_t key[64] = {1}, pt[20] = "deterministic value", v[16], ct[20];
    const uint8_t adb[] = "hdr|domain";
    ph_ad a = {adb, sizeof adb - 1};
    ph_siv s, bad;
    assert_int_equal(ph_siv_init(&bad, key, 48), -1);
    assert_null(bad.k);
    assert_int_equal(ph_siv_init(&bad, NULL, 64), -1);
    assert_int_equal(ph_siv_init(&s, key, 64), 0);
    /* empty plaintext (OpenSSL 3.0's AES-SIV refuses it too) and too many AD */
    assert_int_equal(ph_siv_seal(&s, &a, 1, pt, 0, v, ct), -1);
    ph_ad many[PH_SIV_MAX_AD + 1];
    for (size_t i = 0; i <= PH_SIV_MAX_AD; i++)
        many[i] = a;
    assert_int_equal(ph_siv_seal(&s, many, PH_SIV_MAX_AD + 1, pt, sizeof pt, v, ct), -1);
    assert_int_equal(ph_siv_seal(&s, many, PH_SIV_MAX_AD, pt, sizeof pt, v, ct), 0);
    ph_ad nul = {NULL, 3};
    assert_int_equal(ph_siv_seal(&s, &nul, 1, pt, sizeof pt, v, ct), -1);
    assert_int_equal(ph_siv_fix_ad(&s, &nul), -1);
    /* an empty component may have p == NULL, and is not the same as none */
    ph_ad empty = {NULL, 0};
    uint8_t v0[16];
    assert_int_equal(ph_siv_seal(&s, &empty, 1, pt, sizeof pt, v, ct), 0);
    assert_int_equal(ph_siv_seal(&s, NULL, 0, pt, sizeof pt, v0, ct), 0);
    assert_memory_not_equal(v, v0, 16);
    ph_siv_clear(&s);
    assert_int_equal(ph_siv_seal(&s, &a, 1, pt, sizeof pt, v, ct), -1); /* cleared key */
}

/* ---- threads ------------------------------------------------------------------------ */

#define T_CASES 32

typedef struct tcase {
    ph_ad ad[2];
    uint8_t a1[24], pt[40], v[16], ct[40];
    size_t len;
} tcase;

typedef struct targ {
    const ph_siv *s;
    const tcase *cases;
    int failures;
} targ;

static void *thread_worker(void *p)
{
    targ *t = p;
    uint8_t v[16], ct[40], back[40];
    for (int r = 0; r < 50; r++)
        for (int i = 0; i < T_CASES; i++) {
            const tcase *c = &t->cases[i];
            t->failures += ph_siv_seal(t->s, c->ad, 2, c->pt, c->len, v, ct) != 0 ||
                           memcmp(v, c->v, 16) || memcmp(ct, c->ct, c->len);
            memcpy(v, c->v, 16);
            v[i % 16] ^= 0x04; /* a failed open must not spoil the next one */
            t->failures += ph_siv_open(t->s, c->ad, 2, v, c->ct, c->len, back) != -1;
            t->failures += ph_siv_open(t->s, c->ad, 2, c->v, c->ct, c->len, back) != 0 ||
                           memcmp(back, c->pt, c->len);
        }
    return NULL;
}

/* Four threads on one key (with a fixed AD) reproduce OpenSSL's answers. */
static void test_threads_share_key(void **state)
{
    (void)state;
    rng_state = seed_from_env() ^ 0x7777;
    static const uint8_t hdr[] = "\x01\x02\x00\x00\x00\x07public.customers.email";
    static tcase cases[T_CASES];
    uint8_t key[64];
    rnd_fill(key, sizeof key);
    for (int i = 0; i < T_CASES; i++) {
        tcase *c = &cases[i];
        rnd_fill(c->a1, sizeof c->a1);
        c->len = 1 + rnd_below(sizeof c->pt);
        rnd_fill(c->pt, c->len);
        c->ad[0] = (ph_ad){hdr, sizeof hdr - 1};
        c->ad[1] = (ph_ad){c->a1, (size_t)(i % 3) * 12};
        assert_int_equal(ref_siv(1, key, 64, c->ad, 2, c->pt, c->len, c->v, c->ct), 0);
    }
    ph_siv s;
    assert_int_equal(ph_siv_init(&s, key, 64), 0);
    assert_int_equal(ph_siv_fix_ad(&s, &cases[0].ad[0]), 0);
    pthread_t th[4];
    targ args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (targ){&s, cases, 0};
        assert_int_equal(pthread_create(&th[i], NULL, thread_worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].failures, 0);
    }
    ph_siv_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc5297_a1),           cmocka_unit_test(test_rfc5297_a2),
        cmocka_unit_test(test_differential_openssl), cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_threads_share_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
