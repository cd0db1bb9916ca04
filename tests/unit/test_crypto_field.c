/*
 * test_crypto_field.c — the envelope layout (src/crypto/envelope.c) and the
 * public field API (src/crypto/field.c): round trips in every mode, the
 * strict decoder (truncated, extended, unknown version/mode), tampering with
 * every byte, wrong key / key domain / key id / mode, determinism across key
 * contexts with stored regression vectors, buffer sizing, and concurrent use
 * of one key from several threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "crypto/envelope.h"
#include "crypto/field.h"

#define DOMAIN "public.customers.email"
#define KEY_ID 0x01020304u

static void make_dek(uint8_t dek[32], uint8_t base)
{
    for (int i = 0; i < 32; i++)
        dek[i] = (uint8_t)(base + i);
}

static ph_field_key *key_with(uint8_t base, uint32_t id, const char *domain)
{
    uint8_t dek[32];
    make_dek(dek, base);
    ph_field_key *k = ph_field_key_new(dek, id, domain);
    assert_non_null(k);
    return k;
}

static void hex_of(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static const ph_field_mode modes[] = {PH_FIELD_RANDOMIZED, PH_FIELD_DETERMINISTIC, PH_FIELD_OPE};

/* A plaintext valid for the mode (ope needs 8 bytes). */
static size_t sample(ph_field_mode m, uint8_t *pt, size_t want)
{
    size_t n = m == PH_FIELD_OPE ? 8 : want;
    for (size_t i = 0; i < n; i++)
        pt[i] = (uint8_t)(i * 7 + 3);
    return n;
}

/* ---- envelope layout --------------------------------------------------------- */

static void test_envelope_lengths_and_header(void **state)
{
    (void)state;
    assert_int_equal(ph_envelope_len(PH_ENV_RANDOMIZED, 0), 34);
    assert_int_equal(ph_envelope_len(PH_ENV_RANDOMIZED, 10), 44);
    assert_int_equal(ph_envelope_len(PH_ENV_DETERMINISTIC, 0), 23);
    assert_int_equal(ph_envelope_len(PH_ENV_DETERMINISTIC, 10), 33);
    assert_int_equal(ph_envelope_len(PH_ENV_OPE, 8), 42);
    assert_int_equal(ph_envelope_len(PH_ENV_OPE, 7), 0);
    assert_int_equal(ph_envelope_len(PH_ENV_TOKEN, 8), 0);
    assert_int_equal(ph_envelope_len(PH_ENV_RANDOMIZED, PH_ENV_MAX_PLAINTEXT + 1), 0);
    assert_int_equal(ph_field_envelope_len(PH_FIELD_ANY, 1), 0);

    uint8_t b[64] = {0};
    ph_envelope_put_header(b, PH_ENV_RANDOMIZED, 0xA1B2C3D4u);
    ph_envelope e;
    assert_int_equal(ph_envelope_parse(b, 34, &e), PH_ENV_OK);
    assert_int_equal(e.version, 1);
    assert_int_equal(e.mode, PH_ENV_RANDOMIZED);
    assert_int_equal(e.key_id, 0xA1B2C3D4u);
    assert_ptr_equal(e.nonce, b + 6);
    assert_ptr_equal(e.ct, b + 18);
    assert_int_equal(e.ct_len, 0);
    assert_ptr_equal(e.tag, b + 18);
    assert_int_equal(ph_envelope_parse(b, 33, &e), PH_ENV_ETRUNCATED);
    b[1] = PH_ENV_DETERMINISTIC;
    assert_int_equal(ph_envelope_parse(b, 22, &e), PH_ENV_ETRUNCATED);
    assert_int_equal(ph_envelope_parse(b, 23, &e), PH_ENV_OK);
    assert_int_equal(e.ct_len, 1);
    b[1] = PH_ENV_OPE;
    assert_int_equal(ph_envelope_parse(b, 41, &e), PH_ENV_ETRUNCATED);
    assert_int_equal(ph_envelope_parse(b, 43, &e), PH_ENV_ELENGTH);
    assert_int_equal(ph_envelope_parse(b, 42, &e), PH_ENV_OK);
    assert_ptr_equal(e.code, b + 6);
    assert_ptr_equal(e.tag, b + 18);
    assert_ptr_equal(e.ct, b + 34);
    b[1] = 0;
    assert_int_equal(ph_envelope_parse(b, 42, &e), PH_ENV_EMODE);
    b[1] = 5;
    assert_int_equal(ph_envelope_parse(b, 42, &e), PH_ENV_EMODE);
    b[1] = PH_ENV_OPE;
    b[0] = 2;
    assert_int_equal(ph_envelope_parse(b, 42, &e), PH_ENV_EVERSION);
    assert_int_equal(ph_envelope_parse(NULL, 0, &e), PH_ENV_ETRUNCATED);
    for (size_t n = 0; n < PH_ENV_HEADER_LEN; n++)
        assert_int_equal(ph_envelope_parse(b, n, &e), PH_ENV_ETRUNCATED);
}

/* ---- round trips ----------------------------------------------------------- */

static void test_roundtrip_all_modes(void **state)
{
    (void)state;
    ph_field_key *k = key_with(0xA0, KEY_ID, DOMAIN);
    static const size_t lens[] = {0, 1, 15, 16, 17, 100, 4096};
    for (size_t m = 0; m < 3; m++) {
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            uint8_t pt[4096], env[4096 + 64], back[4096 + 1];
            size_t n = sample(modes[m], pt, lens[li]), el = 0, bl = 0;
            assert_int_equal(ph_field_encrypt(k, modes[m], pt, n, env, sizeof env, &el),
                             PH_FIELD_OK);
            assert_int_equal(el, ph_field_envelope_len(modes[m], n));
            ph_field_info info;
            assert_int_equal(ph_field_peek(env, el, &info), PH_FIELD_OK);
            assert_int_equal(info.mode, modes[m]);
            assert_int_equal(info.key_id, KEY_ID);
            assert_int_equal(info.plaintext_len, n);
            /* exact-size output buffer */
            assert_int_equal(ph_field_decrypt(k, modes[m], env, el, back, n, &bl), PH_FIELD_OK);
            assert_int_equal(bl, n);
            if (n)
                assert_memory_equal(back, pt, n);
            assert_int_equal(ph_field_decrypt(k, PH_FIELD_ANY, env, el, back, sizeof back, &bl),
                             PH_FIELD_OK);
            if (n)
                assert_memory_equal(back, pt, n);
            /* no plaintext in the envelope for values long enough to spot */
            if (n >= 8)
                assert_null(memmem(env, el, pt, n));
        }
    }
    ph_field_key_free(k);
}

static void test_buf_wrappers_and_ope_helpers(void **state)
{
    (void)state;
    ph_field_key *k = key_with(0xA0, KEY_ID, DOMAIN);
    ph_buf env = {0}, back = {0};
    const uint8_t pt[] = "wrapper";
    assert_int_equal(ph_buf_append(&env, "x", 1), 0); /* appends after existing bytes */
    assert_int_equal(ph_field_encrypt_buf(k, PH_FIELD_DETERMINISTIC, pt, 7, &env), PH_FIELD_OK);
    assert_int_equal(env.len, 1 + 7 + PH_ENV_DETERMINISTIC_OVERHEAD);
    assert_int_equal(
        ph_field_decrypt_buf(k, PH_FIELD_DETERMINISTIC, env.data + 1, env.len - 1, &back),
        PH_FIELD_OK);
    assert_int_equal(back.len, 7);
    assert_memory_equal(back.data, pt, 7);
    ph_buf_free(&env);
    ph_buf_free(&back);

    uint8_t o[PH_FIELD_OPE_ENVELOPE];
    int64_t v = 0;
    assert_int_equal(ph_field_encrypt_ope(k, -123456789, o), PH_FIELD_OK);
    assert_int_equal(ph_field_decrypt_ope(k, o, sizeof o, &v), PH_FIELD_OK);
    assert_int_equal(v, -123456789);
    /* the generic path gives the canonical 8-byte big-endian value */
    uint8_t be[8];
    size_t bl = 0;
    assert_int_equal(ph_field_decrypt(k, PH_FIELD_OPE, o, sizeof o, be, sizeof be, &bl),
                     PH_FIELD_OK);
    assert_int_equal(bl, 8);
    int64_t w =
        (int64_t)(((uint64_t)be[0] << 56) | ((uint64_t)be[1] << 48) | ((uint64_t)be[2] << 40) |
                  ((uint64_t)be[3] << 32) | ((uint64_t)be[4] << 24) | ((uint64_t)be[5] << 16) |
                  ((uint64_t)be[6] << 8) | be[7]);
    assert_int_equal(w, -123456789);
    ph_field_key_free(k);
}

/* ---- failures ----------------------------------------------------------------- */

static void test_tamper_every_byte(void **state)
{
    (void)state;
    ph_field_key *k = key_with(0xA0, KEY_ID, DOMAIN);
    static const uint8_t flips[] = {0x01, 0x80, 0xFF, 0x10};
    for (size_t m = 0; m < 3; m++) {
        uint8_t pt[40], env[128], back[128];
        size_t n = sample(modes[m], pt, 40), el = 0, bl = 0;
        assert_int_equal(ph_field_encrypt(k, modes[m], pt, n, env, sizeof env, &el), PH_FIELD_OK);
        for (size_t pos = 0; pos < el; pos++) {
            for (size_t f = 0; f < sizeof flips; f++) {
                env[pos] ^= flips[f];
                memset(back, 0xEE, sizeof back);
                ph_field_status st =
                    ph_field_decrypt(k, PH_FIELD_ANY, env, el, back, sizeof back, &bl);
                if (st == PH_FIELD_OK)
                    fail_msg("mode %d: flip 0x%02x at byte %zu decrypted", modes[m], flips[f], pos);
                assert_null(memmem(back, sizeof back, pt, n)); /* nothing leaked out */
                env[pos] ^= flips[f];
            }
        }
        assert_int_equal(ph_field_decrypt(k, PH_FIELD_ANY, env, el, back, sizeof back, &bl),
                         PH_FIELD_OK);
    }
    ph_field_key_free(k);
}

static void test_truncated_and_extended(void **state)
{
    (void)state;
    ph_field_key *k = key_with(0xA0, KEY_ID, DOMAIN);
    for (size_t m = 0; m < 3; m++) {
        uint8_t pt[24], env[128], back[128];
        size_t n = sample(modes[m], pt, 24), el = 0, bl = 0;
        assert_int_equal(ph_field_encrypt(k, modes[m], pt, n, env, sizeof env - 8, &el),
                         PH_FIELD_OK);
        for (size_t cut = 0; cut < el; cut++)
            assert_int_not_equal(
                ph_field_decrypt(k, PH_FIELD_ANY, env, cut, back, sizeof back, &bl), PH_FIELD_OK);
        for (size_t extra = 1; extra <= 8; extra++) {
            memset(env + el, 0, extra);
            assert_int_not_equal(
                ph_field_decrypt(k, PH_FIELD_ANY, env, el + extra, back, sizeof back, &bl),
                PH_FIELD_OK);
        }
    }
    ph_field_key_free(k);
}

static void test_wrong_key_domain_id_mode(void **state)
{
    (void)state;
    ph_field_key *k = key_with(0xA0, KEY_ID, DOMAIN);
    ph_field_key *other_domain = key_with(0xA0, KEY_ID, "public.payments.email");
    ph_field_key *other_dek = key_with(0x10, KEY_ID, DOMAIN);
    ph_field_key *other_id = key_with(0xA0, KEY_ID + 1, DOMAIN);
    for (size_t m = 0; m < 3; m++) {
        uint8_t pt[32], env[128], back[128];
        size_t n = sample(modes[m], pt, 32), el = 0, bl = 0;
        assert_int_equal(ph_field_encrypt(k, modes[m], pt, n, env, sizeof env, &el), PH_FIELD_OK);
        assert_int_equal(
            ph_field_decrypt(other_domain, PH_FIELD_ANY, env, el, back, sizeof back, &bl),
            PH_FIELD_EAUTH);
        assert_int_equal(ph_field_decrypt(other_dek, PH_FIELD_ANY, env, el, back, sizeof back, &bl),
                         PH_FIELD_EAUTH);
        assert_int_equal(ph_field_decrypt(other_id, PH_FIELD_ANY, env, el, back, sizeof back, &bl),
                         PH_FIELD_EKEYID);
        /* relabelling the key id to match the other key does not help */
        assert_int_equal(env[5], 0x04);
        env[5] = 0x05; /* KEY_ID + 1 */
        assert_int_equal(ph_field_decrypt(other_id, PH_FIELD_ANY, env, el, back, sizeof back, &bl),
                         PH_FIELD_EAUTH);
        env[5] = 0x04;
        ph_field_mode wrong = modes[(m + 1) % 3];
        assert_int_equal(ph_field_decrypt(k, wrong, env, el, back, sizeof back, &bl),
                         PH_FIELD_EMODE);
        /* relabelling the mode byte fails too (the header is authenticated) */
        env[1] = (uint8_t)wrong;
        assert_int_not_equal(ph_field_decrypt(k, PH_FIELD_ANY, env, el, back, sizeof back, &bl),
                             PH_FIELD_OK);
    }
    /* the same value in two domains under one DEK gives unrelated ciphertexts */
    uint8_t a[64], b[64];
    size_t al = 0, bl2 = 0;
    const uint8_t v[] = "same value";
    assert_int_equal(ph_field_encrypt(k, PH_FIELD_DETERMINISTIC, v, 10, a, sizeof a, &al), 0);
    assert_int_equal(
        ph_field_encrypt(other_domain, PH_FIELD_DETERMINISTIC, v, 10, b, sizeof b, &bl2), 0);
    assert_memory_not_equal(a + 6, b + 6, al - 6);
    assert_int_equal(ph_field_encrypt_ope(k, 5, a), 0);
    assert_int_equal(ph_field_encrypt_ope(other_domain, 5, b), 0);
    assert_memory_not_equal(a + 6, b + 6, 12); /* OPE codes differ too */
    ph_field_key_free(k);
    ph_field_key_free(other_domain);
    ph_field_key_free(other_dek);
    ph_field_key_free(other_id);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    uint8_t dek[32], out[128], pt[8] = {0};
    size_t n = 0;
    make_dek(dek, 1);
    assert_null(ph_field_key_new(dek, 1, ""));
    assert_null(ph_field_key_new(dek, 1, NULL));
    assert_null(ph_field_key_new(NULL, 1, "d"));
    char *big = malloc(PH_FIELD_MAX_DOMAIN + 2);
    memset(big, 'a', PH_FIELD_MAX_DOMAIN + 1);
    big[PH_FIELD_MAX_DOMAIN + 1] = 0;
    assert_null(ph_field_key_new(dek, 1, big));
    big[PH_FIELD_MAX_DOMAIN] = 0;
    ph_field_key *k = ph_field_key_new(dek, 9, big); /* exactly the maximum */
    free(big);
    assert_non_null(k);
    assert_int_equal(ph_field_key_id(k), 9);
    assert_int_equal(strlen(ph_field_key_domain(k)), PH_FIELD_MAX_DOMAIN);
    assert_int_equal(ph_field_encrypt(k, PH_FIELD_OPE, pt, 7, out, sizeof out, &n),
                     PH_FIELD_EINVAL);
    assert_int_equal(ph_field_encrypt(k, PH_FIELD_ANY, pt, 8, out, sizeof out, &n),
                     PH_FIELD_EINVAL);
    assert_int_equal(ph_field_encrypt(k, (ph_field_mode)4, pt, 8, out, sizeof out, &n),
                     PH_FIELD_EINVAL);
    assert_int_equal(ph_field_encrypt(k, PH_FIELD_RANDOMIZED, pt, 8, out, 41, &n), PH_FIELD_ESPACE);
    assert_int_equal(ph_field_encrypt(k, PH_FIELD_RANDOMIZED, NULL, 8, out, sizeof out, &n),
                     PH_FIELD_EINVAL);
    assert_int_equal(ph_field_encrypt(k, PH_FIELD_RANDOMIZED, pt, 8, out, sizeof out, &n),
                     PH_FIELD_OK);
    uint8_t back[8];
    assert_int_equal(ph_field_decrypt(k, PH_FIELD_ANY, out, n, back, 7, &n), PH_FIELD_ESPACE);
    /* empty values open with no output buffer at all */
    for (size_t m = 0; m < 2; m++) {
        size_t el = 0, bl = 99;
        assert_int_equal(ph_field_encrypt(k, modes[m], NULL, 0, out, sizeof out, &el), 0);
        assert_int_equal(ph_field_decrypt(k, modes[m], out, el, NULL, 0, &bl), PH_FIELD_OK);
        assert_int_equal(bl, 0);
    }
    assert_int_equal(ph_field_encrypt(k, PH_FIELD_RANDOMIZED, pt, 8, out, sizeof out, &n),
                     PH_FIELD_OK);
    /* token envelopes are recognised but not opened here */
    out[1] = PH_ENV_TOKEN;
    ph_field_info info;
    assert_int_equal(ph_field_peek(out, 20, &info), PH_FIELD_OK);
    assert_int_equal(info.mode, PH_ENV_TOKEN);
    assert_int_equal(ph_field_decrypt(k, PH_FIELD_ANY, out, 20, back, 8, &n), PH_FIELD_EMODE);
    assert_int_equal(ph_field_peek(out, 3, &info), PH_FIELD_EMALFORMED);
    assert_string_equal(ph_field_strerror(PH_FIELD_EAUTH),
                        "authentication failed (tampered value, wrong key or wrong key domain)");
    ph_field_key_free(k);
    ph_field_key_free(NULL);
}

/* ---- determinism ------------------------------------------------------------------ */

/* Regression vectors produced once by this code (DEK a0..bf, key id 01020304,
 * domain public.customers.email); any change to the envelope, the subkey
 * derivation or the OPE map changes them and must be a new envelope version. */
static void test_regression_vectors(void **state)
{
    (void)state;
    ph_field_key *k = key_with(0xA0, KEY_ID, DOMAIN);
    ph_field_key *k2 = key_with(0xA0, KEY_ID, DOMAIN); /* a second, separate context */
    uint8_t env[128], env2[128];
    char hex[300];
    size_t n = 0, n2 = 0;
    const uint8_t email[] = "alice@example.com";
    assert_int_equal(ph_field_encrypt(k, PH_FIELD_DETERMINISTIC, email, 17, env, sizeof env, &n),
                     0);
    assert_int_equal(
        ph_field_encrypt(k2, PH_FIELD_DETERMINISTIC, email, 17, env2, sizeof env2, &n2), 0);
    assert_int_equal(n, n2);
    assert_memory_equal(env, env2, n);
    hex_of(env, n, hex);
    assert_string_equal(hex, "010201020304f3e88f1e955df75da589bab1e5206b222d01c3fbad78e32fd4ca426"
                             "3a59c18b7fb78");
    assert_int_equal(ph_field_encrypt(k, PH_FIELD_DETERMINISTIC, NULL, 0, env, sizeof env, &n), 0);
    hex_of(env, n, hex);
    assert_string_equal(hex, "010201020304a850044901293e6996d2900507e41a3df8");

    static const struct {
        int64_t v;
        const char *hex;
    } ope[] = {
        {0, "010301020304800000000621ccac77576625c179eee39f9e49b6e1a95e17732ea92ec9b2cef80938609b"},
        {-1,
         "010301020304800000000621ccac3889fe9baa8b443fe7fa79b4ba1d7760aa82b79814657984e733b345"},
        {42,
         "010301020304800000000621ccc86152639c1634ca2259742c258b7d1ab97325de297003d29126077884"},
        {INT64_MIN,
         "0103010203040000000000000001028ddafef349655f84ec27b86ad43903e1d5d77886adec9e398c5546"},
        {INT64_MAX,
         "010301020304fffffffffffffffe5ca6c4e1a4cb5a9dfb8cebe56d44084d5511627bda3133e32246796a"},
    };
    for (size_t i = 0; i < sizeof ope / sizeof ope[0]; i++) {
        assert_int_equal(ph_field_encrypt_ope(k2, ope[i].v, env), 0);
        hex_of(env, PH_FIELD_OPE_ENVELOPE, hex);
        assert_string_equal(hex, ope[i].hex);
    }
    /* randomized: fresh nonce every time, both open */
    uint8_t back[32];
    size_t bl = 0;
    assert_int_equal(ph_field_encrypt(k, PH_FIELD_RANDOMIZED, email, 17, env, sizeof env, &n), 0);
    assert_int_equal(ph_field_encrypt(k, PH_FIELD_RANDOMIZED, email, 17, env2, sizeof env2, &n2),
                     0);
    assert_memory_not_equal(env + 6, env2 + 6, 12);
    assert_memory_not_equal(env, env2, n);
    assert_int_equal(ph_field_decrypt(k2, PH_FIELD_RANDOMIZED, env2, n2, back, sizeof back, &bl),
                     0);
    assert_memory_equal(back, email, 17);
    ph_field_key_free(k);
    ph_field_key_free(k2);
}

/* ---- threads ------------------------------------------------------------------------ */

typedef struct worker {
    const ph_field_key *k;
    const uint8_t *det_ref; /* expected deterministic envelope of "value-N" for N = 0 */
    size_t det_len;
    int id, errors;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 300; i++) {
        char pt[32];
        int n = snprintf(pt, sizeof pt, "value-%d-%d", w->id, i);
        for (size_t m = 0; m < 3; m++) {
            uint8_t env[96], back[64];
            size_t el = 0, bl = 0;
            size_t pl = modes[m] == PH_FIELD_OPE ? 8 : (size_t)n;
            if (ph_field_encrypt(w->k, modes[m], (const uint8_t *)pt, pl, env, sizeof env, &el) ||
                ph_field_decrypt(w->k, modes[m], env, el, back, sizeof back, &bl) || bl != pl ||
                memcmp(back, pt, pl) != 0)
                w->errors++;
        }
        uint8_t env[64];
        size_t el = 0;
        if (ph_field_encrypt(w->k, PH_FIELD_DETERMINISTIC, (const uint8_t *)"value-0", 7, env,
                             sizeof env, &el) ||
            el != w->det_len || memcmp(env, w->det_ref, el) != 0)
            w->errors++;
    }
    return NULL;
}

static void test_concurrent_use(void **state)
{
    (void)state;
    ph_field_key *k = key_with(0x33, 77, "public.t.c");
    uint8_t ref[64];
    size_t rl = 0;
    assert_int_equal(ph_field_encrypt(k, PH_FIELD_DETERMINISTIC, (const uint8_t *)"value-0", 7, ref,
                                      sizeof ref, &rl),
                     0);
    enum { NT = 4 };
    pthread_t th[NT];
    worker w[NT];
    for (int i = 0; i < NT; i++) {
        w[i] = (worker){k, ref, rl, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].errors, 0);
    }
    ph_field_key_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_lengths_and_header),
        cmocka_unit_test(test_roundtrip_all_modes),
        cmocka_unit_test(test_buf_wrappers_and_ope_helpers),
        cmocka_unit_test(test_tamper_every_byte),
        cmocka_unit_test(test_truncated_and_extended),
        cmocka_unit_test(test_wrong_key_domain_id_mode),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_regression_vectors),
        cmocka_unit_test(test_concurrent_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
