/*
 * test_crypto_encode.c — canonical encodings (src/crypto/encode*.c): text and
 * binary client formats of the same value give the same canonical bytes
 * (ints, bool, dates, timestamps, timestamptz, numeric, text, jsonb, bytea),
 * PostgreSQL's range and syntax rules, formatting back to text and binary,
 * and the fixed-point bridge to OPE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/encode.h"

/* ---- helpers ---------------------------------------------------------------- */

static ph_enc_status from_text(ph_ltype t, const char *s, const ph_enc_opts *o, ph_buf *out)
{
    out->len = 0;
    return ph_canon_from_text(t, s, strlen(s), o, out);
}

/* Canonical bytes of a text value; fails the test on error. */
static ph_buf canon_text(ph_ltype t, const char *s, const ph_enc_opts *o)
{
    ph_buf b = {0};
    ph_enc_status st = ph_canon_from_text(t, s, strlen(s), o, &b);
    if (st != PH_ENC_OK)
        fail_msg("'%s' as %s: %s", s, ph_ltype_name(t), ph_enc_strerror(st));
    return b;
}

static ph_buf canon_bin(ph_ltype t, const uint8_t *p, size_t n)
{
    ph_buf b = {0};
    ph_enc_status st = ph_canon_from_binary(t, p, n, NULL, &b);
    if (st != PH_ENC_OK)
        fail_msg("binary %s: %s", ph_ltype_name(t), ph_enc_strerror(st));
    return b;
}

static void assert_same(ph_buf *a, ph_buf *b)
{
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->data, b->data, a->len);
    ph_buf_free(a);
    ph_buf_free(b);
}

static void assert_text_out(ph_ltype t, const ph_buf *c, const ph_enc_opts *o, const char *want)
{
    ph_buf out = {0};
    assert_int_equal(ph_canon_to_text(t, c->data, c->len, o, &out), PH_ENC_OK);
    assert_int_equal(ph_buf_append_u8(&out, 0), 0);
    assert_string_equal((char *)out.data, want);
    ph_buf_free(&out);
}

static void assert_syntax(ph_ltype t, const char *s, ph_enc_status want)
{
    ph_buf b = {0};
    ph_enc_status st = from_text(t, s, NULL, &b);
    if (st != want)
        fail_msg("'%s' as %s: got %d, want %d", s, ph_ltype_name(t), st, want);
    assert_int_equal(b.len, 0); /* nothing appended on error */
    ph_buf_free(&b);
}

static int64_t i64_of(const ph_buf *b)
{
    assert_int_equal(b->len, 8);
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | b->data[i];
    return (int64_t)u;
}

/* ---- integers and bool ----------------------------------------------------- */

static void test_ints(void **state)
{
    (void)state;
    const uint8_t b2[] = {0xFF, 0xD6}, b4[] = {0xFF, 0xFF, 0xFF, 0xD6};
    const uint8_t b8[] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xD6};
    ph_buf t = canon_text(PH_LT_INT2, " -42 ", NULL), b = canon_bin(PH_LT_INT2, b2, 2);
    assert_int_equal(i64_of(&t), -42);
    assert_same(&t, &b);
    t = canon_text(PH_LT_INT4, "-42", NULL), b = canon_bin(PH_LT_INT4, b4, 4);
    assert_same(&t, &b);
    t = canon_text(PH_LT_INT8, "-0042", NULL), b = canon_bin(PH_LT_INT8, b8, 8);
    assert_same(&t, &b);
    /* int4 and int8 of one value share the canonical form (joins across widths) */
    t = canon_text(PH_LT_INT4, "+7", NULL), b = canon_text(PH_LT_INT8, "7", NULL);
    assert_same(&t, &b);

    t = canon_text(PH_LT_INT8, "-9223372036854775808", NULL);
    assert_true(i64_of(&t) == INT64_MIN);
    assert_text_out(PH_LT_INT8, &t, NULL, "-9223372036854775808");
    ph_buf_free(&t);
    t = canon_text(PH_LT_INT2, "32767", NULL);
    ph_buf out = {0};
    assert_int_equal(ph_canon_to_binary(PH_LT_INT2, t.data, t.len, NULL, &out), PH_ENC_OK);
    assert_int_equal(out.len, 2);
    assert_int_equal(out.data[0], 0x7F);
    assert_int_equal(out.data[1], 0xFF);
    out.len = 0;
    /* a canonical int8 too big for int2 is refused, not truncated */
    ph_buf big = canon_text(PH_LT_INT8, "40000", NULL);
    assert_int_equal(ph_canon_to_binary(PH_LT_INT2, big.data, big.len, NULL, &out), PH_ENC_ERANGE);
    ph_buf_free(&big);
    ph_buf_free(&out);
    ph_buf_free(&t);

    assert_syntax(PH_LT_INT2, "32768", PH_ENC_ERANGE);
    assert_syntax(PH_LT_INT2, "-32769", PH_ENC_ERANGE);
    assert_syntax(PH_LT_INT4, "2147483648", PH_ENC_ERANGE);
    assert_syntax(PH_LT_INT8, "9223372036854775808", PH_ENC_ERANGE);
    assert_syntax(PH_LT_INT8, "99999999999999999999999", PH_ENC_ERANGE);
    const char *bad[] = {"", " ", "-", "+", "1.5", "12a", "0x10", "1 2", "--1", "1e3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_syntax(PH_LT_INT4, bad[i], PH_ENC_ESYNTAX);
    ph_buf x = {0};
    assert_int_equal(ph_canon_from_binary(PH_LT_INT4, b2, 2, NULL, &x), PH_ENC_ESYNTAX);
    assert_int_equal(ph_canon_from_binary(PH_LT_INT8, b4, 4, NULL, &x), PH_ENC_ESYNTAX);
    ph_buf_free(&x);
}

static void test_bool(void **state)
{
    (void)state;
    const char *yes[] = {"t", "TRUE", "tr", "yes", "Y", "on", "1", " true "};
    const char *no[] = {"f", "False", "no", "N", "off", "OF", "0", "\tf\n"};
    const char *bad[] = {"o", "truex", "2", "", "yess", "onn", "10"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        ph_buf t = canon_text(PH_LT_BOOL, yes[i], NULL);
        assert_int_equal(t.len, 1);
        assert_int_equal(t.data[0], 1);
        assert_text_out(PH_LT_BOOL, &t, NULL, "t");
        ph_buf_free(&t);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        ph_buf t = canon_text(PH_LT_BOOL, no[i], NULL);
        assert_int_equal(t.data[0], 0);
        assert_text_out(PH_LT_BOOL, &t, NULL, "f");
        ph_buf_free(&t);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_syntax(PH_LT_BOOL, bad[i], PH_ENC_ESYNTAX);
    const uint8_t two = 2;
    ph_buf t = canon_text(PH_LT_BOOL, "yes", NULL), b = canon_bin(PH_LT_BOOL, &two, 1);
    assert_same(&t, &b);
}

/* ---- dates and times ------------------------------------------------------------ */

static void test_date(void **state)
{
    (void)state;
    const uint8_t bin[] = {0x00, 0x00, 0x22, 0x7A}; /* 8826 days */
    ph_buf t = canon_text(PH_LT_DATE, "2024-03-01", NULL), b = canon_bin(PH_LT_DATE, bin, 4);
    assert_int_equal(i64_of(&t), 8826);
    assert_text_out(PH_LT_DATE, &t, NULL, "2024-03-01");
    assert_same(&t, &b);
    static const struct {
        const char *in;
        int64_t days;
        const char *out;
    } v[] = {
        {"2000-01-01", 0, "2000-01-01"},
        {"1999-12-31", -1, "1999-12-31"},
        {"2024-3-1", 8826, "2024-03-01"},
        {" 2024-03-01 12:34:56+05 ", 8826, "2024-03-01"}, /* time and zone ignored */
        {"2024-03-01T23:59", 8826, "2024-03-01"},
        {"1970-01-01", -10957, "1970-01-01"},
        {"epoch", -10957, "1970-01-01"},
        {"2000-02-29", 59, "2000-02-29"},
        {"0001-01-01", -730119, "0001-01-01"},
        {"0001-12-31 BC", -730120, "0001-12-31 BC"},
        {"0044-03-15 bc", -746117, "0044-03-15 BC"},
        {"4714-11-24 BC", -2451545, "4714-11-24 BC"},
        {"5874897-12-31", 2145031948, "5874897-12-31"},
        {"infinity", INT32_MAX, "infinity"},
        {"-Infinity", INT32_MIN, "-infinity"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        ph_buf c = canon_text(PH_LT_DATE, v[i].in, NULL);
        if (i64_of(&c) != v[i].days)
            fail_msg("%s: %lld days", v[i].in, (long long)i64_of(&c));
        assert_text_out(PH_LT_DATE, &c, NULL, v[i].out);
        ph_buf_free(&c);
    }
    const char *range[] = {"2023-02-29", "2024-02-30",    "2024-13-01",    "2024-00-10",
                           "0000-01-01", "4714-11-23 BC", "5874898-01-01", "2024-04-31"};
    for (size_t i = 0; i < sizeof range / sizeof range[0]; i++)
        assert_syntax(PH_LT_DATE, range[i], PH_ENC_ERANGE);
    const char *bad[] = {"20240301", "03/01/2024",  "2024-03",        "today",           "now",
                         "",         "2024-03-01x", "12345678-01-01", "2024-03-01 25:00"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ph_buf x = {0};
        assert_int_not_equal(from_text(PH_LT_DATE, bad[i], NULL, &x), PH_ENC_OK);
        ph_buf_free(&x);
    }
    /* binary: out-of-range day numbers are refused like date_recv does */
    const uint8_t past[] = {0xFF, 0xDA, 0x97, 0xA6}; /* -2451546 */
    ph_buf x = {0};
    assert_int_equal(ph_canon_from_binary(PH_LT_DATE, past, 4, NULL, &x), PH_ENC_ERANGE);
    ph_buf_free(&x);
}

static void test_timestamp(void **state)
{
    (void)state;
    const int64_t us = INT64_C(762611696789000); /* 2024-03-01 12:34:56.789 */
    uint8_t bin[8];
    for (int i = 0; i < 8; i++)
        bin[i] = (uint8_t)((uint64_t)us >> (56 - 8 * i));
    ph_buf t = canon_text(PH_LT_TIMESTAMP, "2024-03-01 12:34:56.789", NULL);
    ph_buf b = canon_bin(PH_LT_TIMESTAMP, bin, 8);
    assert_true(i64_of(&t) == us);
    assert_text_out(PH_LT_TIMESTAMP, &t, NULL, "2024-03-01 12:34:56.789");
    assert_same(&t, &b);
    static const struct {
        const char *in;
        const char *out;
    } v[] = {
        {"2024-03-01T12:34:56.789000", "2024-03-01 12:34:56.789"},
        {"2024-03-01 12:34:56.789+05", "2024-03-01 12:34:56.789"}, /* zone ignored */
        {"2024-03-01 12:34", "2024-03-01 12:34:00"},
        {"2024-03-01", "2024-03-01 00:00:00"},
        {"2024-03-01 24:00:00", "2024-03-02 00:00:00"},
        {"2024-03-01 23:59:60", "2024-03-02 00:00:00"},
        {"2024-03-01 00:00:00.0000005", "2024-03-01 00:00:00"},        /* half-even: 0 */
        {"2024-03-01 00:00:00.0000015", "2024-03-01 00:00:00.000002"}, /* half-even: 2 */
        {"2024-03-01 00:00:00.00000051", "2024-03-01 00:00:00.000001"},
        {"2024-03-01 23:59:59.9999999", "2024-03-02 00:00:00"},
        {"0044-03-15 12:00:00 BC", "0044-03-15 12:00:00 BC"},
        {"1999-12-31 23:59:59.999999", "1999-12-31 23:59:59.999999"},
        {"294276-12-31 23:59:59.999999", "294276-12-31 23:59:59.999999"},
        {"4714-11-24 00:00:00 BC", "4714-11-24 00:00:00 BC"},
        {"epoch", "1970-01-01 00:00:00"},
        {"infinity", "infinity"},
        {"-infinity", "-infinity"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        ph_buf c = canon_text(PH_LT_TIMESTAMP, v[i].in, NULL);
        assert_text_out(PH_LT_TIMESTAMP, &c, NULL, v[i].out);
        ph_buf_free(&c);
    }
    assert_syntax(PH_LT_TIMESTAMP, "294277-01-01 00:00:00", PH_ENC_ERANGE);
    assert_syntax(PH_LT_TIMESTAMP, "4714-11-23 23:59:59 BC", PH_ENC_ERANGE);
    assert_syntax(PH_LT_TIMESTAMP, "2024-03-01 24:00:01", PH_ENC_ERANGE);
    assert_syntax(PH_LT_TIMESTAMP, "2024-03-01 12:60", PH_ENC_ERANGE);
    assert_syntax(PH_LT_TIMESTAMP, "2024-03-01 12:5", PH_ENC_ESYNTAX);
    assert_syntax(PH_LT_TIMESTAMP, "2024-03-01 12:34:56.7.", PH_ENC_ESYNTAX);
    assert_syntax(PH_LT_TIMESTAMP, "+infinity", PH_ENC_ESYNTAX);
    ph_buf dot = canon_text(PH_LT_TIMESTAMP, "2024-03-01 12:34:56.", NULL);
    assert_text_out(PH_LT_TIMESTAMP, &dot, NULL, "2024-03-01 12:34:56");
    ph_buf_free(&dot);
    assert_syntax(PH_LT_TIMESTAMP, "2024-03-01 12:34:56 junk", PH_ENC_ETZ);
}

static void test_timestamptz(void **state)
{
    (void)state;
    const int64_t us = INT64_C(762611696789000); /* 2024-03-01 12:34:56.789 UTC */
    uint8_t bin[8];
    for (int i = 0; i < 8; i++)
        bin[i] = (uint8_t)((uint64_t)us >> (56 - 8 * i));
    const char *same[] = {
        "2024-03-01 12:34:56.789+00",    "2024-03-01 14:34:56.789+02",
        "2024-03-01T12:34:56.789Z",      "2024-03-01 07:34:56.789-05",
        "2024-03-01 18:04:56.789+05:30", "2024-03-01 18:04:56.789+0530",
        "2024-03-01 12:34:56.789 UTC",   "2024-03-01 12:34:56.789 +00:00",
        "2024-03-01 12:34:56.789 GMT",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        ph_buf t = canon_text(PH_LT_TIMESTAMPTZ, same[i], NULL);
        ph_buf b = canon_bin(PH_LT_TIMESTAMPTZ, bin, 8);
        assert_same(&t, &b);
    }
    ph_buf t = canon_text(PH_LT_TIMESTAMPTZ, "2024-03-01 12:34:56.789+00", NULL);
    assert_text_out(PH_LT_TIMESTAMPTZ, &t, NULL, "2024-03-01 12:34:56.789+00");
    ph_enc_opts ist = PH_ENC_OPTS_DEFAULT;
    ist.tz_fixed = true;
    ist.tz_offset_sec = 19800;
    assert_text_out(PH_LT_TIMESTAMPTZ, &t, &ist, "2024-03-01 18:04:56.789+05:30");
    /* no zone: needs a known session offset */
    assert_syntax(PH_LT_TIMESTAMPTZ, "2024-03-01 12:34:56.789", PH_ENC_ETZ);
    ph_buf s = canon_text(PH_LT_TIMESTAMPTZ, "2024-03-01 18:04:56.789", &ist);
    assert_same(&t, &s);
    assert_syntax(PH_LT_TIMESTAMPTZ, "2024-03-01 12:00 Europe/Berlin", PH_ENC_ETZ);
    assert_syntax(PH_LT_TIMESTAMPTZ, "2024-03-01 12:00 PST", PH_ENC_ETZ);
    assert_syntax(PH_LT_TIMESTAMPTZ, "2024-03-01 12:00+16", PH_ENC_ERANGE);
    assert_syntax(PH_LT_TIMESTAMPTZ, "2024-03-01 12:00+123", PH_ENC_ESYNTAX);
    ph_buf e = canon_text(PH_LT_TIMESTAMPTZ, "epoch", NULL);
    assert_text_out(PH_LT_TIMESTAMPTZ, &e, NULL, "1970-01-01 00:00:00+00");
    ph_buf_free(&e);
    e = canon_text(PH_LT_TIMESTAMPTZ, "0044-03-15 12:00:00+00 BC", NULL);
    assert_text_out(PH_LT_TIMESTAMPTZ, &e, NULL, "0044-03-15 12:00:00+00 BC");
    ph_buf_free(&e);
    /* dates and timestamps keep their order as OPE integers */
    const char *asc[] = {"-infinity",  "0044-03-15 BC", "1999-12-31",
                         "2000-01-01", "2024-03-01",    "infinity"};
    int64_t prev = INT64_MIN;
    for (size_t i = 0; i < sizeof asc / sizeof asc[0]; i++) {
        ph_buf c = canon_text(PH_LT_DATE, asc[i], NULL);
        int64_t v = 0;
        assert_int_equal(ph_canon_to_ope(PH_LT_DATE, c.data, c.len, NULL, &v, NULL), PH_ENC_OK);
        if (i)
            assert_true(v > prev);
        prev = v;
        ph_buf back = {0};
        assert_int_equal(ph_canon_from_ope(PH_LT_DATE, v, NULL, &back), PH_ENC_OK);
        assert_same(&c, &back);
    }
}

/* ---- numeric ---------------------------------------------------------------------------- */

static void assert_numeric(const char *in, const char *canon)
{
    ph_buf c = canon_text(PH_LT_NUMERIC, in, NULL);
    assert_int_equal(ph_buf_append_u8(&c, 0), 0);
    if (strcmp((char *)c.data, canon) != 0)
        fail_msg("numeric '%s' -> '%s', want '%s'", in, (char *)c.data, canon);
    ph_buf_free(&c);
}

static void test_numeric_text(void **state)
{
    (void)state;
    static const char *v[][2] = {
        {"1.50", "1.5"},       {"1.5", "1.5"},
        {"+001.500", "1.5"},   {"15e-1", "1.5"},
        {"0.15E1", "1.5"},     {"-0", "0"},
        {"-0.000", "0"},       {"0", "0"},
        {".5", "0.5"},         {"5.", "5"},
        {"-.05", "-0.05"},     {"100", "100"},
        {"1e2", "100"},        {"1.23e-5", "0.0000123"},
        {" 42 ", "42"},        {"NaN", "NaN"},
        {"nan", "NaN"},        {"Infinity", "Infinity"},
        {"-inf", "-Infinity"}, {"+INF", "Infinity"},
        {"0e1000", "0"},       {"12345678901234567890.123", "12345678901234567890.123"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        assert_numeric(v[i][0], v[i][1]);
    const char *bad[] = {"", ".", "-", "1..2", "1e", "1e+", "abc", "1,5", "1 2", "0x1", "1e-x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_syntax(PH_LT_NUMERIC, bad[i], PH_ENC_ESYNTAX);
    /* PostgreSQL's limits: 131072 digits before the point, 16383 after */
    ph_buf big = canon_text(PH_LT_NUMERIC, "1e131071", NULL);
    assert_int_equal(big.len, 131072);
    ph_buf_free(&big);
    big = canon_text(PH_LT_NUMERIC, "1e-16383", NULL);
    assert_int_equal(big.len, 16385);
    ph_buf_free(&big);
    const char *range[] = {"1e131072", "1.5e-16383", "1e1073741823", "-1e-99999999999"};
    for (size_t i = 0; i < sizeof range / sizeof range[0]; i++)
        assert_syntax(PH_LT_NUMERIC, range[i], PH_ENC_ERANGE);
}

/* Builds PostgreSQL's binary numeric. */
static size_t num_bin(uint8_t *b, int nd, int weight, unsigned sign, unsigned dscale,
                      const uint16_t *digits)
{
    size_t n = 0;
    uint16_t h[4] = {(uint16_t)nd, (uint16_t)(int16_t)weight, (uint16_t)sign, (uint16_t)dscale};
    for (int i = 0; i < 4; i++, n += 2)
        b[n] = (uint8_t)(h[i] >> 8), b[n + 1] = (uint8_t)h[i];
    for (int i = 0; i < nd; i++, n += 2)
        b[n] = (uint8_t)(digits[i] >> 8), b[n + 1] = (uint8_t)digits[i];
    return n;
}

static void test_numeric_binary(void **state)
{
    (void)state;
    uint8_t b[64];
    /* '1.50' in binary: ndigits 2, weight 0, dscale 2, digits 1, 5000 */
    const uint16_t d150[] = {1, 5000};
    size_t n = num_bin(b, 2, 0, 0x0000, 2, d150);
    ph_buf t = canon_text(PH_LT_NUMERIC, "1.50", NULL), c = canon_bin(PH_LT_NUMERIC, b, n);
    ph_buf t2 = canon_text(PH_LT_NUMERIC, "1.5", NULL);
    assert_same(&t2, &t);
    /* formatting with the column's scale gives PostgreSQL's display and binary form */
    ph_enc_opts two = PH_ENC_OPTS_DEFAULT;
    two.numeric_scale = 2;
    assert_text_out(PH_LT_NUMERIC, &c, &two, "1.50");
    assert_text_out(PH_LT_NUMERIC, &c, NULL, "1.5");
    ph_buf out = {0};
    assert_int_equal(ph_canon_to_binary(PH_LT_NUMERIC, c.data, c.len, &two, &out), PH_ENC_OK);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, b, n);
    ph_buf_free(&out);
    ph_buf_free(&c);

    static const struct {
        int nd, weight;
        unsigned sign, dscale;
        uint16_t d[4];
        const char *text;
    } v[] = {
        {1, -1, 0x0000, 2, {500}, "0.05"},
        {1, -1, 0x4000, 4, {500}, "-0.0500"},
        {2, 4, 0x0000, 0, {1234, 5678}, "12345678000000000000"},
        {3, 1, 0x4000, 3, {12, 3456, 7890}, "-123456.789"},
        {0, 0, 0x0000, 0, {0}, "0"},
        {0, 0, 0x4000, 2, {0}, "-0.00"}, /* negative zero is zero */
        {0, 0, 0xC000, 0, {0}, "NaN"},
        {0, 0, 0xD000, 0, {0}, "Infinity"},
        {0, 0, 0xF000, 0, {0}, "-Infinity"},
        {2, 0, 0x0000, 2, {1, 2345}, "1.23"}, /* digits hidden by dscale are truncated */
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        n = num_bin(b, v[i].nd, v[i].weight, v[i].sign, v[i].dscale, v[i].d);
        ph_buf x = canon_bin(PH_LT_NUMERIC, b, n), y = canon_text(PH_LT_NUMERIC, v[i].text, NULL);
        assert_same(&x, &y);
        /* canonical -> binary -> canonical is the identity */
        x = canon_text(PH_LT_NUMERIC, v[i].text, NULL);
        ph_buf bin = {0};
        assert_int_equal(ph_canon_to_binary(PH_LT_NUMERIC, x.data, x.len, NULL, &bin), PH_ENC_OK);
        y = canon_bin(PH_LT_NUMERIC, bin.data, bin.len);
        ph_buf_free(&bin);
        assert_same(&x, &y);
    }
    /* malformed binary */
    const uint16_t bad_digit[] = {10000};
    ph_buf x = {0};
    n = num_bin(b, 1, 0, 0, 0, bad_digit);
    assert_int_equal(ph_canon_from_binary(PH_LT_NUMERIC, b, n, NULL, &x), PH_ENC_ESYNTAX);
    n = num_bin(b, 1, 0, 0x1234, 0, d150);
    assert_int_equal(ph_canon_from_binary(PH_LT_NUMERIC, b, n, NULL, &x), PH_ENC_ESYNTAX);
    n = num_bin(b, 1, 0, 0, 0x4000, d150);
    assert_int_equal(ph_canon_from_binary(PH_LT_NUMERIC, b, n, NULL, &x), PH_ENC_ESYNTAX);
    n = num_bin(b, 2, 0, 0, 0, d150);
    assert_int_equal(ph_canon_from_binary(PH_LT_NUMERIC, b, n - 1, NULL, &x), PH_ENC_ESYNTAX);
    assert_int_equal(ph_canon_from_binary(PH_LT_NUMERIC, b, 7, NULL, &x), PH_ENC_ESYNTAX);
    assert_int_equal(x.len, 0);
    ph_buf_free(&x);
}

static void test_numeric_fixed_point(void **state)
{
    (void)state;
    ph_enc_opts two = PH_ENC_OPTS_DEFAULT;
    two.numeric_scale = 2;
    static const struct {
        const char *in;
        int64_t v;
        bool inexact;
    } v[] = {
        {"1.5", 150, false},
        {"1.50", 150, false},
        {"-1.005", -101, true}, /* half away from zero */
        {"1.004", 100, true},
        {"0", 0, false},
        {"92233720368547758.07", INT64_MAX, false},
        {"-92233720368547758.08", INT64_MIN, false},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        ph_buf c = canon_text(PH_LT_NUMERIC, v[i].in, NULL);
        int64_t got = 0;
        bool inexact = !v[i].inexact;
        assert_int_equal(ph_canon_to_ope(PH_LT_NUMERIC, c.data, c.len, &two, &got, &inexact),
                         PH_ENC_OK);
        assert_true(got == v[i].v);
        assert_int_equal(inexact, v[i].inexact);
        ph_buf_free(&c);
    }
    const char *range[] = {"92233720368547758.08", "-92233720368547758.09", "1e30"};
    for (size_t i = 0; i < sizeof range / sizeof range[0]; i++) {
        ph_buf c = canon_text(PH_LT_NUMERIC, range[i], NULL);
        int64_t got = 0;
        assert_int_equal(ph_canon_to_ope(PH_LT_NUMERIC, c.data, c.len, &two, &got, NULL),
                         PH_ENC_ERANGE);
        ph_buf_free(&c);
    }
    ph_buf nan = canon_text(PH_LT_NUMERIC, "NaN", NULL);
    int64_t got = 0;
    assert_int_equal(ph_canon_to_ope(PH_LT_NUMERIC, nan.data, nan.len, &two, &got, NULL),
                     PH_ENC_EINVAL);
    assert_int_equal(ph_canon_to_ope(PH_LT_NUMERIC, nan.data, nan.len, NULL, &got, NULL),
                     PH_ENC_EINVAL); /* no declared scale */
    ph_buf_free(&nan);
    ph_buf out = {0};
    assert_int_equal(ph_canon_from_ope(PH_LT_NUMERIC, 150, &two, &out), PH_ENC_OK);
    ph_buf want = canon_text(PH_LT_NUMERIC, "1.5", NULL);
    assert_same(&out, &want);
    assert_int_equal(ph_canon_from_ope(PH_LT_NUMERIC, INT64_MIN, &two, &out), PH_ENC_OK);
    want = canon_text(PH_LT_NUMERIC, "-92233720368547758.08", NULL);
    assert_same(&out, &want);
    assert_int_equal(ph_canon_from_ope(PH_LT_NUMERIC, -5, &two, &out), PH_ENC_OK);
    assert_text_out(PH_LT_NUMERIC, &out, &two, "-0.05");
    ph_buf_free(&out);
}

/* ---- strings --------------------------------------------------------------------------------- */

/* numeric(p,s) as PostgreSQL's numeric input applies it. */
static void test_numeric_typmod(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int p, s;
        const char *out; /* NULL: out of range */
    } cases[] = {
        {"1.005", 12, 2, "1.01"},       {"2.675", 12, 2, "2.68"},
        {"-1.005", 12, 2, "-1.01"},     {"1.004", 12, 2, "1"},
        {"0.004", 12, 2, "0"},          {"-0.004", 12, 2, "0"},
        {"1234.5", 12, 2, "1234.5"},    {"9999999999.99", 12, 2, "9999999999.99"},
        {"12345678901.5", 12, 2, NULL}, {"9999999999.995", 12, 2, NULL},
        {"99.5", 3, 0, "100"},          {"999.5", 3, 0, NULL},
        {"0.00001", 5, 5, "0.00001"},   {"0.999995", 5, 5, NULL},
        {"NaN", 12, 2, "NaN"},          {"Infinity", 12, 2, NULL},
        {"-Infinity", 12, 2, NULL},     {"123456789", 0, 0, "123456789"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ph_buf b = {0};
        assert_int_equal(ph_buf_append(&b, cases[i].in, strlen(cases[i].in)), 0);
        ph_enc_status st = ph_canon_numeric_typmod(&b, cases[i].p, cases[i].s);
        if (!cases[i].out) {
            if (st != PH_ENC_ERANGE)
                fail_msg("%s numeric(%d,%d): expected out of range", cases[i].in, cases[i].p,
                         cases[i].s);
        } else if (st != PH_ENC_OK || b.len != strlen(cases[i].out) ||
                   memcmp(b.data, cases[i].out, b.len) != 0) {
            fail_msg("%s numeric(%d,%d): got %.*s (status %d), want %s", cases[i].in, cases[i].p,
                     cases[i].s, (int)b.len, (const char *)b.data, (int)st, cases[i].out);
        }
        ph_buf_free(&b);
    }
    /* a two-digit year is not a date PostgreSQL accepts in ISO form */
    ph_buf d = {0};
    ph_enc_opts o = {0};
    assert_int_not_equal(ph_canon_from_text(PH_LT_DATE, "24-02-03", 8, &o, &d), PH_ENC_OK);
    ph_buf_free(&d);
}

static void test_text_json_bytea(void **state)
{
    (void)state;
    const char *s = "Zoë ✓ 𝄞";
    ph_buf t = canon_text(PH_LT_TEXT, s, NULL);
    ph_buf b = canon_bin(PH_LT_TEXT, (const uint8_t *)s, strlen(s));
    assert_int_equal(t.len, strlen(s));
    assert_text_out(PH_LT_TEXT, &t, NULL, s);
    assert_same(&t, &b);
    const char *bad_utf8[] = {"\xC3", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "a\xFF"};
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++)
        assert_syntax(PH_LT_TEXT, bad_utf8[i], PH_ENC_ESYNTAX);
    ph_buf x = {0};
    assert_int_equal(ph_canon_from_binary(PH_LT_TEXT, (const uint8_t *)"a\0b", 3, NULL, &x),
                     PH_ENC_ESYNTAX);
    /* long ASCII runs (checked eight bytes at a time) with a NUL, a bad byte
     * or a good multi-byte character at every position */
    for (size_t pos = 0; pos < 40; pos++) {
        uint8_t v[40];
        memset(v, 'q', sizeof v);
        v[pos] = 0;
        assert_int_equal(ph_canon_from_binary(PH_LT_TEXT, v, sizeof v, NULL, &x), PH_ENC_ESYNTAX);
        v[pos] = 0xFF;
        assert_int_equal(ph_canon_from_binary(PH_LT_TEXT, v, sizeof v, NULL, &x), PH_ENC_ESYNTAX);
        v[pos] = 0x7F;
        assert_int_equal(ph_canon_from_binary(PH_LT_TEXT, v, sizeof v, NULL, &x), PH_ENC_OK);
        x.len = 0;
        if (pos + 1 < sizeof v) {
            v[pos] = 0xC3, v[pos + 1] = 0xAB; /* ë */
            assert_int_equal(ph_canon_from_binary(PH_LT_TEXT, v, sizeof v, NULL, &x), PH_ENC_OK);
            x.len = 0;
            v[pos + 1] = 'q'; /* a lead byte without its continuation */
            assert_int_equal(ph_canon_from_binary(PH_LT_TEXT, v, sizeof v, NULL, &x),
                             PH_ENC_ESYNTAX);
        }
    }
    assert_int_equal(x.len, 0);
    ph_buf_free(&x);
    ph_buf e = canon_text(PH_LT_TEXT, "", NULL);
    assert_int_equal(e.len, 0);
    ph_buf_free(&e);

    /* jsonb: binary format is a version byte + the text */
    const char *j = "{\"a\": [1, 2]}";
    uint8_t jb[32] = {1};
    memcpy(jb + 1, j, strlen(j));
    t = canon_text(PH_LT_JSONB, j, NULL), b = canon_bin(PH_LT_JSONB, jb, strlen(j) + 1);
    ph_buf out = {0};
    assert_int_equal(ph_canon_to_binary(PH_LT_JSONB, t.data, t.len, NULL, &out), PH_ENC_OK);
    assert_int_equal(out.len, strlen(j) + 1);
    assert_memory_equal(out.data, jb, out.len);
    ph_buf_free(&out);
    assert_same(&t, &b);
    jb[0] = 2;
    assert_int_equal(ph_canon_from_binary(PH_LT_JSONB, jb, strlen(j) + 1, NULL, &x),
                     PH_ENC_ESYNTAX);

    /* bytea: hex and escape text formats and binary give the same bytes */
    const uint8_t raw[] = {0x0A, 0xFF, 0x5C, 0x00, 'a'};
    ph_buf h = canon_text(PH_LT_BYTEA, "\\x0aFF5c0061", NULL);
    ph_buf h2 = canon_text(PH_LT_BYTEA, "\\x 0a ff\n5c 00 61", NULL);
    ph_buf esc = canon_text(PH_LT_BYTEA, "\\012\\377\\\\\\000a", NULL);
    b = canon_bin(PH_LT_BYTEA, raw, sizeof raw);
    assert_text_out(PH_LT_BYTEA, &h, NULL, "\\x0aff5c0061");
    assert_same(&h, &b);
    b = canon_bin(PH_LT_BYTEA, raw, sizeof raw);
    assert_same(&h2, &b);
    b = canon_bin(PH_LT_BYTEA, raw, sizeof raw);
    assert_same(&esc, &b);
    const char *bad[] = {"\\x0", "\\xzz", "\\x0 a", "a\\b", "\\400", "\\"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_syntax(PH_LT_BYTEA, bad[i], PH_ENC_ESYNTAX);
    ph_buf_free(&x);
}

/* jsonb is stored as PostgreSQL 15's jsonb_out prints it: these pairs are
 * `SELECT $1::jsonb::text` on a real server. */
static void test_jsonb_canonical(void **state)
{
    (void)state;
    static const struct {
        const char *in, *pg;
    } v[] = {
        {"{\"b\": 1, \"a\": 2}", "{\"a\": 2, \"b\": 1}"},
        {"{\"city\": \"Hamburg\", \"v\": 584}", "{\"v\": 584, \"city\": \"Hamburg\"}"},
        {"{\"aa\":1,\"b\":2,\"a\":3,\"b\":4}", "{\"a\": 3, \"b\": 4, \"aa\": 1}"},
        {"[1, 2.50, 1e2, 1.50e1, -0, -0.0, 1E-3, 0.00, 12345678901234567890, 1e+2]",
         "[1, 2.50, 100, 15.0, 0, 0.0, 0.001, 0.00, 12345678901234567890, 100]"},
        {"{ \"x\" : [ true , false , null , { } , [ ] ] }", "{\"x\": [true, false, null, {}, []]}"},
        {"\"a\\u00e9\\ud83d\\ude00\\n\\t\\\"\\\\\\/ \\u001f \\u007f\"",
         "\"a\xc3\xa9\xf0\x9f\x98\x80\\n\\t\\\"\\\\/ \\u001f \x7f\""},
        {"{\"\":0, \" \":1, \"\xc3\xa9\":2, \"e\":3, \"ab\": 4, \"ba\": 5}",
         "{\"\": 0, \" \": 1, \"e\": 3, \"ab\": 4, \"ba\": 5, \"\xc3\xa9\": 2}"},
        {"-12.3400e-2", "-0.123400"},
        {"\"esc \\b \\f \\r\"", "\"esc \\b \\f \\r\""},
        {"  123  ", "123"},
        {"[[[[1]]], {\"z\": {\"y\": {\"x\": 1}}}]", "[[[[1]]], {\"z\": {\"y\": {\"x\": 1}}}]"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        ph_buf c = canon_text(PH_LT_JSONB, v[i].in, NULL);
        assert_text_out(PH_LT_JSONB, &c, NULL, v[i].pg);
        ph_buf again = canon_text(PH_LT_JSONB, v[i].pg, NULL); /* a fixed point */
        assert_same(&c, &again);
    }
    /* what jsonb_in refuses */
    const char *bad[] = {
        "{\"a\":}", "[1,]", "{\"a\" 1}",   "01",          "1.",           ".5",      "-",
        "1e",       "tru",  "\"\\u0000\"", "\"\\ud800\"", "\"\\udc00x\"", "\"\\x\"", "\"a\tb\"",
        "[1] x",    "",     "{\"a\":1",    "\"abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ph_buf b = {0};
        if (from_text(PH_LT_JSONB, bad[i], NULL, &b) == PH_ENC_OK)
            fail_msg("'%s' accepted as jsonb", bad[i]);
        assert_int_equal(b.len, 0);
        ph_buf_free(&b);
    }
    /* nesting is bounded (no unbounded recursion on hostile input) */
    char deep[2100];
    memset(deep, '[', 1100);
    memset(deep + 1100, ']', 1000);
    deep[2100 - 1] = '\0';
    ph_buf d = {0};
    assert_int_not_equal(from_text(PH_LT_JSONB, deep, NULL, &d), PH_ENC_OK);
    ph_buf_free(&d);
}

static void test_type_names(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        ph_ltype t;
        uint32_t oid;
    } v[] = {
        {"text", PH_LT_TEXT, 25},
        {"character varying(255)", PH_LT_TEXT, 25},
        {"INTEGER", PH_LT_INT4, 23},
        {"bigint", PH_LT_INT8, 20},
        {"smallint", PH_LT_INT2, 21},
        {"numeric(10,2)", PH_LT_NUMERIC, 1700},
        {"timestamp with time zone", PH_LT_TIMESTAMPTZ, 1184},
        {"timestamp", PH_LT_TIMESTAMP, 1114},
        {"date", PH_LT_DATE, 1082},
        {"jsonb", PH_LT_JSONB, 3802},
        {"boolean", PH_LT_BOOL, 16},
        {"bytea", PH_LT_BYTEA, 17},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        ph_ltype t;
        assert_int_equal(ph_ltype_from_name(v[i].name, &t), 0);
        assert_int_equal(t, v[i].t);
        assert_int_equal(ph_ltype_oid(t), v[i].oid);
    }
    ph_ltype t;
    assert_int_equal(ph_ltype_from_name("uuid", &t), -1);
    assert_int_equal(ph_ltype_from_name("character(10)", &t), -1); /* blank-padded: refused */
    assert_true(ph_ltype_ope_ok(PH_LT_DATE));
    assert_true(ph_ltype_ope_ok(PH_LT_NUMERIC));
    assert_false(ph_ltype_ope_ok(PH_LT_TEXT));
    assert_false(ph_ltype_ope_ok(PH_LT_BOOL));
    int64_t v64;
    const uint8_t txt[] = "abc";
    assert_int_equal(ph_canon_to_ope(PH_LT_TEXT, txt, 3, NULL, &v64, NULL), PH_ENC_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ints),           cmocka_unit_test(test_bool),
        cmocka_unit_test(test_date),           cmocka_unit_test(test_timestamp),
        cmocka_unit_test(test_timestamptz),    cmocka_unit_test(test_numeric_text),
        cmocka_unit_test(test_numeric_binary), cmocka_unit_test(test_numeric_fixed_point),
        cmocka_unit_test(test_numeric_typmod), cmocka_unit_test(test_text_json_bytea),
        cmocka_unit_test(test_type_names),     cmocka_unit_test(test_jsonb_canonical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
