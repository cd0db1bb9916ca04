/*
 * test_crypto_ope.c — the order-preserving map (src/crypto/ope.c) and OPE
 * envelopes: strict order and exact round trip for the edge values and for
 * 100k sorted random values, dense runs of consecutive integers, rejection of
 * codes that are no image, determinism across contexts (a stored regression
 * vector), and a sanity check that codes spread like a random OPF (gaps of
 * about 2^32 between neighbours, not a fixed stride).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/field.h"
#include "crypto/ope.h"

#define SAMPLE 100000

typedef unsigned __int128 u128;

static void test_key(uint8_t key[32])
{
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)i;
}

static u128 code_val(const uint8_t c[PH_OPE_CODE_LEN])
{
    u128 v = 0;
    for (int i = 0; i < PH_OPE_CODE_LEN; i++)
        v = (v << 8) | c[i];
    return v;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_edges(void **state)
{
    (void)state;
    uint8_t key[32];
    test_key(key);
    ph_ope o;
    assert_int_equal(ph_ope_init(&o, key), 0);
    const int64_t v[] = {INT64_MIN, INT64_MIN + 1, INT64_MIN + 2, -2,       -1, 0, 1,
                         2,         INT64_MAX - 2, INT64_MAX - 1, INT64_MAX};
    uint8_t prev[PH_OPE_CODE_LEN] = {0};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t c[PH_OPE_CODE_LEN];
        int64_t back = 0;
        assert_int_equal(ph_ope_encrypt(&o, v[i], c), 0);
        if (i)
            assert_true(memcmp(prev, c, sizeof c) < 0);
        assert_int_equal(ph_ope_decrypt(&o, c, &back), 0);
        assert_true(back == v[i]);
        memcpy(prev, c, sizeof c);
    }
    ph_ope_clear(&o);
    assert_null(o.prf);
}

static void test_sorted_random_sample(void **state)
{
    (void)state;
    uint8_t key[32];
    test_key(key);
    ph_ope o;
    assert_int_equal(ph_ope_init(&o, key), 0);
    int64_t *v = malloc(SAMPLE * sizeof *v);
    assert_non_null(v);
    uint64_t seed = 20240301;
    for (size_t i = 0; i < SAMPLE; i++) {
        uint64_t r = splitmix(&seed);
        /* a mix of full-range values and small ones (where neighbours are close) */
        v[i] = (int64_t)(i % 4 == 0 ? (r % 2001) - 1000 : r);
    }
    qsort(v, SAMPLE, sizeof *v, cmp_i64);
    uint8_t prev[PH_OPE_CODE_LEN] = {0};
    size_t pairs = 0;
    for (size_t i = 0; i < SAMPLE; i++) {
        uint8_t c[PH_OPE_CODE_LEN];
        int64_t back = 0;
        assert_int_equal(ph_ope_encrypt(&o, v[i], c), 0);
        if (i) {
            int cmp = memcmp(prev, c, sizeof c);
            if (v[i] == v[i - 1])
                assert_int_equal(cmp, 0);
            else if (cmp >= 0)
                fail_msg("order broken between %lld and %lld", (long long)v[i - 1],
                         (long long)v[i]);
            pairs++;
        }
        if (i % 8 == 0) { /* the tree walk inverts the map exactly */
            assert_int_equal(ph_ope_decrypt(&o, c, &back), 0);
            assert_true(back == v[i]);
        }
        memcpy(prev, c, sizeof c);
    }
    assert_int_equal(pairs, SAMPLE - 1);
    free(v);
    ph_ope_clear(&o);
}

static void test_envelopes_sort_like_values(void **state)
{
    (void)state;
    uint8_t dek[32];
    test_key(dek);
    ph_field_key *k = ph_field_key_new(dek, 3, "public.orders.amount");
    assert_non_null(k);
    uint64_t seed = 7;
    uint8_t prev[PH_FIELD_OPE_ENVELOPE];
    int64_t last = INT64_MIN;
    /* 5000 increasing values with random steps of 1 .. 2^40 from INT64_MIN */
    for (int i = 0; i < 5000; i++) {
        int64_t v = i == 0 ? INT64_MIN : last + 1 + (int64_t)(splitmix(&seed) >> 24);
        uint8_t env[PH_FIELD_OPE_ENVELOPE];
        int64_t back = 0;
        assert_int_equal(ph_field_encrypt_ope(k, v, env), PH_FIELD_OK);
        if (i)
            assert_true(memcmp(prev, env, sizeof env) < 0);
        assert_int_equal(ph_field_decrypt_ope(k, env, sizeof env, &back), PH_FIELD_OK);
        assert_true(back == v);
        memcpy(prev, env, sizeof env);
        last = v;
    }
    ph_field_key_free(k);
}

static void test_dense_runs_and_gap_spread(void **state)
{
    (void)state;
    uint8_t key[32];
    test_key(key);
    ph_ope o;
    assert_int_equal(ph_ope_init(&o, key), 0);
    const int64_t starts[] = {-5000, 1700000000, INT64_MAX - 5000, INT64_MIN};
    for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
        uint8_t c[PH_OPE_CODE_LEN];
        assert_int_equal(ph_ope_encrypt(&o, starts[s], c), 0);
        u128 prev = code_val(c);
        long double sum = 0;
        u128 min_gap = ~(u128)0, max_gap = 0;
        for (int64_t i = 1; i <= 5000; i++) {
            assert_int_equal(ph_ope_encrypt(&o, starts[s] + i, c), 0);
            u128 cur = code_val(c);
            assert_true(cur > prev);
            u128 gap = cur - prev;
            sum += (long double)gap;
            min_gap = gap < min_gap ? gap : min_gap;
            max_gap = gap > max_gap ? gap : max_gap;
            prev = cur;
        }
        long double mean = sum / 5000;
        /* 2^96 codes for 2^64 values: neighbours are 2^32 apart on average */
        assert_true(mean > 1024.0L * 1024 * 1024 && mean < 16.0L * 1024 * 1024 * 1024);
        assert_true(max_gap > 4 * min_gap); /* not a fixed stride */
    }
    ph_ope_clear(&o);
}

/* A random OPF puts x near x * 2^32 with noise of about 2^63 codes (the
 * root split's standard deviation); the map must show both: codes close to
 * proportional (the documented leakage of high-order bits) and real noise. */
static void test_codes_track_proportional_position(void **state)
{
    (void)state;
    uint8_t key[32];
    test_key(key);
    ph_ope o;
    assert_int_equal(ph_ope_init(&o, key), 0);
    uint64_t seed = 99;
    long double sum = 0, maxd = 0;
    for (int i = 0; i < 2000; i++) {
        int64_t v = (int64_t)splitmix(&seed);
        uint64_t x = (uint64_t)v ^ ((uint64_t)1 << 63);
        uint8_t c[PH_OPE_CODE_LEN];
        assert_int_equal(ph_ope_encrypt(&o, v, c), 0);
        u128 code = code_val(c), prop = (u128)x << 32;
        long double d = (long double)(code > prop ? code - prop : prop - code) /
                        9223372036854775808.0L; /* in units of 2^63 */
        sum += d;
        maxd = d > maxd ? d : maxd;
    }
    long double mean = sum / 2000;
    assert_true(mean > 0.3L && mean < 4.0L);
    assert_true(maxd < 16.0L);
    ph_ope_clear(&o);
}

static void test_invalid_codes_rejected(void **state)
{
    (void)state;
    uint8_t key[32];
    test_key(key);
    ph_ope o;
    assert_int_equal(ph_ope_init(&o, key), 0);
    const int64_t v[] = {0, 1, -1, 123456789, INT64_MIN, INT64_MAX};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t c[PH_OPE_CODE_LEN], d[PH_OPE_CODE_LEN];
        int64_t back = 0;
        assert_int_equal(ph_ope_encrypt(&o, v[i], c), 0);
        for (int delta = -2; delta <= 2; delta++) {
            if (delta == 0)
                continue;
            u128 x = code_val(c) + (u128)(__int128)delta;
            for (int b = PH_OPE_CODE_LEN - 1; b >= 0; b--, x >>= 8)
                d[b] = (uint8_t)x;
            assert_int_equal(ph_ope_decrypt(&o, d, &back), -1);
        }
    }
    uint8_t ones[PH_OPE_CODE_LEN];
    int64_t back = 0;
    memset(ones, 0xFF, sizeof ones);
    assert_int_equal(ph_ope_decrypt(&o, ones, &back), -1);
    ph_ope_clear(&o);
}

/* Regression: the map for the key 00..1f, computed once by this code. */
static void test_deterministic_across_contexts(void **state)
{
    (void)state;
    uint8_t key[32];
    test_key(key);
    ph_ope a, b;
    assert_int_equal(ph_ope_init(&a, key), 0);
    assert_int_equal(ph_ope_init(&b, key), 0);
    static const struct {
        int64_t v;
        const char *hex;
    } vec[] = {
        {0, "8000000078b0db2d81f7a200"},         {-1, "8000000078b0db2ae0929aae"},
        {42, "8000000078b0db4f88716010"},        {INT64_MIN, "0000000000000001c4520a7b"},
        {INT64_MAX, "fffffffffffffffe00f7afb6"},
    };
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        uint8_t ca[PH_OPE_CODE_LEN], cb[PH_OPE_CODE_LEN];
        char hex[2 * PH_OPE_CODE_LEN + 1];
        assert_int_equal(ph_ope_encrypt(&a, vec[i].v, ca), 0);
        assert_int_equal(ph_ope_encrypt(&b, vec[i].v, cb), 0);
        assert_memory_equal(ca, cb, sizeof ca);
        for (int j = 0; j < PH_OPE_CODE_LEN; j++)
            sprintf(hex + 2 * j, "%02x", ca[j]);
        assert_string_equal(hex, vec[i].hex);
    }
    /* another key gives another map */
    key[0] ^= 1;
    ph_ope c;
    uint8_t c1[PH_OPE_CODE_LEN], c2[PH_OPE_CODE_LEN];
    assert_int_equal(ph_ope_init(&c, key), 0);
    assert_int_equal(ph_ope_encrypt(&a, 42, c1), 0);
    assert_int_equal(ph_ope_encrypt(&c, 42, c2), 0);
    assert_memory_not_equal(c1, c2, sizeof c1);
    ph_ope_clear(&a);
    ph_ope_clear(&b);
    ph_ope_clear(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_sorted_random_sample),
        cmocka_unit_test(test_envelopes_sort_like_values),
        cmocka_unit_test(test_dense_runs_and_gap_spread),
        cmocka_unit_test(test_codes_track_proportional_position),
        cmocka_unit_test(test_invalid_codes_rejected),
        cmocka_unit_test(test_deterministic_across_contexts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
