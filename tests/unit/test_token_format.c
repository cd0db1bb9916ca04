/*
 * test_token_format.c — token formats (src/token/format.c): every format's
 * rules on generated tokens (length, character classes, last four digits
 * and Luhn validity of card tokens, the domain of email tokens, never equal
 * to the value), value checks with messages that never quote the value, the
 * miss token (matches no format), the Luhn check against known numbers, and
 * distribution sanity: over 1000 tokens every random position takes many
 * values and no digit is far from uniform.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "token/format.h"

static int gen(ph_token_format f, const char *v, char *out)
{
    char why[160] = "";
    int n = ph_token_generate(f, (const uint8_t *)v, strlen(v), NULL, NULL, out, why, sizeof why);
    if (n < 0)
        fail_msg("generate(%s): %s", ph_token_format_name(f), why);
    assert_int_equal((size_t)n, strlen(out));
    return n;
}

static void test_luhn(void **state)
{
    (void)state;
    assert_true(ph_luhn_valid("4111111111111111", 16));
    assert_true(ph_luhn_valid("79927398713", 11));
    assert_true(ph_luhn_valid("5555555555554444", 16));
    assert_true(ph_luhn_valid("378282246310005", 15)); /* 15-digit Amex test number */
    assert_false(ph_luhn_valid("4111111111111112", 16));
    assert_false(ph_luhn_valid("79927398710", 11));
    assert_false(ph_luhn_valid("4111-1111", 9));
    assert_false(ph_luhn_valid("0", 1));
}

static void test_opaque(void **state)
{
    (void)state;
    char a[PH_TOKEN_MAX_LEN + 1], b[PH_TOKEN_MAX_LEN + 1];
    assert_int_equal(gen(PH_TOKEN_OPAQUE, "anything at all", a), 26);
    assert_memory_equal(a, "tok_", 4);
    for (int i = 4; i < 26; i++)
        assert_non_null(
            strchr("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", a[i]));
    assert_true(ph_token_wellformed(PH_TOKEN_OPAQUE, a, strlen(a)));
    gen(PH_TOKEN_OPAQUE, "anything at all", b);
    assert_string_not_equal(a, b); /* random, not derived from the value */
    gen(PH_TOKEN_OPAQUE, "", b);   /* any value, even the empty string */
    assert_true(ph_token_wellformed(PH_TOKEN_OPAQUE, b, strlen(b)));
}

static void test_digits(void **state)
{
    (void)state;
    char t[PH_TOKEN_MAX_LEN + 1], why[160];
    const char *v = "123456789";
    for (int i = 0; i < 200; i++) {
        assert_int_equal(gen(PH_TOKEN_DIGITS, v, t), 9);
        for (int k = 0; k < 9; k++)
            assert_true(t[k] >= '0' && t[k] <= '9');
        assert_string_not_equal(t, v);
    }
    assert_int_equal(
        ph_token_format_check(PH_TOKEN_DIGITS, (const uint8_t *)"12a4", 4, why, sizeof why), -1);
    assert_null(strstr(why, "12a4"));
    assert_int_equal(
        ph_token_format_check(PH_TOKEN_DIGITS, (const uint8_t *)"123", 3, why, sizeof why), -1);
    assert_int_equal(
        ph_token_format_check(PH_TOKEN_DIGITS, (const uint8_t *)"1234", 4, why, sizeof why), 0);
}

/* Random card numbers of every allowed length: tokens keep the length and
 * the last four digits, pass Luhn, differ from the number. */
static void test_card(void **state)
{
    (void)state;
    char t[PH_TOKEN_MAX_LEN + 1], v[20], why[160];
    for (int len = 13; len <= 19; len++) {
        for (int i = 0; i < 100; i++) {
            for (int k = 0; k < len; k++)
                v[k] = (char)('0' + (k * 7 + i * 3 + len) % 10);
            v[len] = '\0';
            assert_int_equal(gen(PH_TOKEN_CARD, v, t), len);
            assert_true(ph_luhn_valid(t, (size_t)len));
            assert_memory_equal(t + len - 4, v + len - 4, 4);
            assert_string_not_equal(t, v);
            assert_true(ph_token_wellformed(PH_TOKEN_CARD, t, strlen(t)));
        }
    }
    /* the value need not pass Luhn itself; 12 or 20 digits and non-digits are refused */
    assert_int_equal(gen(PH_TOKEN_CARD, "4111111111111112", t), 16);
    assert_true(ph_luhn_valid(t, 16));
    assert_int_equal(
        ph_token_format_check(PH_TOKEN_CARD, (const uint8_t *)"411111111111", 12, why, sizeof why),
        -1);
    assert_int_equal(ph_token_format_check(PH_TOKEN_CARD, (const uint8_t *)"41111111111111111111",
                                           20, why, sizeof why),
                     -1);
    assert_int_equal(ph_token_format_check(PH_TOKEN_CARD, (const uint8_t *)"4111 1111 1111 1111",
                                           19, why, sizeof why),
                     -1);
    assert_null(strstr(why, "4111"));
}

static void test_email(void **state)
{
    (void)state;
    char t[PH_TOKEN_MAX_LEN + 1], why[160];
    const char *v = "alice.smith+news@mail.example-corp.eu";
    const char *dom = strchr(v, '@');
    for (int i = 0; i < 100; i++) {
        int n = gen(PH_TOKEN_EMAIL, v, t);
        assert_int_equal(n, 16 + (int)strlen(dom));
        assert_string_equal(t + 16, dom); /* the domain kept */
        for (int k = 0; k < 16; k++)
            assert_non_null(strchr("abcdefghijklmnopqrstuvwxyz0123456789", t[k]));
        assert_null(strstr(t, "alice"));
        assert_true(ph_token_wellformed(PH_TOKEN_EMAIL, t, strlen(t)));
    }
    /* the last @ starts the domain */
    gen(PH_TOKEN_EMAIL, "\"a@b\"@example.com", t);
    assert_string_equal(t + 16, "@example.com");
    static const char *const bad[] = {"no-at-sign",     "@example.com",   "a@",
                                      "a@exa mple.com", "a@exam'ple.com", "a@ex\\ample.com"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ph_token_format_check(PH_TOKEN_EMAIL, (const uint8_t *)bad[i],
                                               strlen(bad[i]), why, sizeof why),
                         -1);
        assert_null(strstr(why, bad[i]));
    }
}

static void test_alnum(void **state)
{
    (void)state;
    char t[PH_TOKEN_MAX_LEN + 1], why[160];
    const char *v = "AB-12cd/9";
    for (int i = 0; i < 100; i++) {
        assert_int_equal(gen(PH_TOKEN_ALNUM, v, t), 9);
        assert_true(t[0] >= 'A' && t[0] <= 'Z' && t[1] >= 'A' && t[1] <= 'Z');
        assert_int_equal(t[2], '-');
        assert_true(t[3] >= '0' && t[3] <= '9' && t[4] >= '0' && t[4] <= '9');
        assert_true(t[5] >= 'a' && t[5] <= 'z' && t[6] >= 'a' && t[6] <= 'z');
        assert_int_equal(t[7], '/');
        assert_true(t[8] >= '0' && t[8] <= '9');
        assert_string_not_equal(t, v);
    }
    assert_int_equal(
        ph_token_format_check(PH_TOKEN_ALNUM, (const uint8_t *)"a-b-c", 5, why, sizeof why), -1);
    assert_int_equal(ph_token_format_check(PH_TOKEN_ALNUM, (const uint8_t *)"caf\xc3\xa9s12", 8,
                                           why, sizeof why),
                     -1);
}

/* The miss token: random, and no format's well-formed token. */
static void test_miss(void **state)
{
    (void)state;
    char a[PH_TOKEN_MAX_LEN + 1], b[PH_TOKEN_MAX_LEN + 1];
    assert_true(ph_token_miss(NULL, NULL, a) > 0);
    assert_true(ph_token_miss(NULL, NULL, b) > 0);
    assert_string_not_equal(a, b);
    assert_memory_equal(a, PH_TOKEN_MISS_PREFIX, strlen(PH_TOKEN_MISS_PREFIX));
    for (int f = PH_TOKEN_OPAQUE; f <= PH_TOKEN_EMAIL; f++)
        assert_false(ph_token_wellformed((ph_token_format)f, a, strlen(a)));
}

/* Over 1000 tokens every random position takes every digit; no digit of a
 * position is drawn more than twice its expected count (100). */
static void test_distribution(void **state)
{
    (void)state;
    enum { N = 1000, LEN = 16 };
    static unsigned count[LEN][10];
    static unsigned opaque[22][62];
    memset(count, 0, sizeof count);
    memset(opaque, 0, sizeof opaque);
    char t[PH_TOKEN_MAX_LEN + 1];
    const char *alpha = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for (int i = 0; i < N; i++) {
        gen(PH_TOKEN_CARD, "4111111111111111", t);
        for (int k = 0; k < LEN; k++)
            count[k][t[k] - '0']++;
        gen(PH_TOKEN_OPAQUE, "x", t);
        for (int k = 0; k < 22; k++)
            opaque[k][strchr(alpha, t[4 + k]) - alpha]++;
    }
    for (int k = 0; k < LEN - 4; k++) { /* random positions, the Luhn digit included */
        int seen = 0;
        for (int d = 0; d < 10; d++) {
            seen += count[k][d] > 0;
            assert_true(count[k][d] < 2 * N / 10);
        }
        assert_int_equal(seen, 10);
    }
    for (int k = LEN - 4; k < LEN; k++)
        assert_int_equal(count[k][1], N); /* the kept digits */
    for (int k = 0; k < 22; k++) {
        int seen = 0;
        for (int d = 0; d < 62; d++)
            seen += opaque[k][d] > 0;
        assert_true(seen >= 55); /* 1000 draws over 62 symbols: all but a few appear */
    }
}

/* A broken RNG is an error, not a weak token. */
static int bad_rng(void *ud, uint8_t *buf, size_t n)
{
    (void)ud;
    (void)buf;
    (void)n;
    return -1;
}

/* An RNG that always gives the same bytes: a token equal to the value
 * cannot be avoided, which is reported after a bounded number of draws. */
static int fixed_rng(void *ud, uint8_t *buf, size_t n)
{
    memset(buf, *(const uint8_t *)ud, n);
    return 0;
}

static void test_rng_failures(void **state)
{
    (void)state;
    char t[PH_TOKEN_MAX_LEN + 1], why[160] = "";
    assert_int_equal(ph_token_generate(PH_TOKEN_OPAQUE, (const uint8_t *)"v", 1, bad_rng, NULL, t,
                                       why, sizeof why),
                     -1);
    assert_non_null(strstr(why, "random"));
    uint8_t byte = 0; /* 0 % 10 = '0': the digits token of "0000" is "0000" forever */
    assert_int_equal(ph_token_generate(PH_TOKEN_DIGITS, (const uint8_t *)"0000", 4, fixed_rng,
                                       &byte, t, why, sizeof why),
                     -1);
    assert_non_null(strstr(why, "different"));
    assert_int_equal(ph_token_generate(PH_TOKEN_DIGITS, (const uint8_t *)"1111", 4, fixed_rng,
                                       &byte, t, why, sizeof why),
                     4);
    assert_string_equal(t, "0000");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_luhn),         cmocka_unit_test(test_opaque),
        cmocka_unit_test(test_digits),       cmocka_unit_test(test_card),
        cmocka_unit_test(test_email),        cmocka_unit_test(test_alnum),
        cmocka_unit_test(test_miss),         cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_rng_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
