/*
 * test_copy.c — unit tests for the streaming COPY codec (src/engine/copy.h).
 *
 * The callback "encrypts" a value v as "E:" + reverse(v) and "decrypts" the
 * inverse (failing on anything else), so every expected output is exact.
 * Expected texts write a transformed field as {v}: in text format it stands
 * for \\x<hex of E:+reverse(v)>, in CSV for \x<hex ...>.
 *
 * Every successful case is run whole, split at every byte offset (two feeds)
 * and fed one byte at a time, and must give identical output; every error
 * case must fail (at feed or at finish) for every split, with the expected
 * message and nothing emitted by the failing call. Covered: text escapes
 * (\b \f \n \r \t \v \\ octal \x, escaped delimiter, backslash-newline), the
 * NULL string, empty strings, non-ASCII UTF-8, CSV quoting (delimiters,
 * quotes, newlines inside quotes, the NULL string quoted, custom QUOTE and
 * ESCAPE), HEADER, the end marker \., \n / \r / \r\n line ends and their
 * mixing, column counts, the binary header/flags/extension/trailer and
 * truncation, bytea \x<hex> decoding for COPY TO, byte-identical
 * untransformed columns, callback failures, row size limits, options
 * PostgreSQL rejects, and round trips (plaintext -> encrypt -> decrypt ->
 * the same plaintext).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/copy.h"

/* ---- the test callback --------------------------------------------------------- */

typedef struct {
    int calls;
    int fail_at;        /* fail on this call (1-based); 0 = never */
    bool null_to_empty; /* turn NULL inputs into empty strings */
    bool all_null;      /* answer NULL for everything */
} cb_state;

static int cb_common(cb_state *st, char *err, size_t errlen)
{
    if (!st)
        return 0;
    st->calls++;
    if (st->fail_at && st->calls == st->fail_at) {
        snprintf(err, errlen, "key unavailable");
        return -1;
    }
    return 0;
}

static int cb_enc(void *ud, int column, const uint8_t *in, size_t len, bool is_null, ph_buf *out,
                  bool *out_null, char *err, size_t errlen)
{
    cb_state *st = ud;
    (void)column;
    assert_non_null(in);
    assert_int_equal(*out_null, is_null);
    if (cb_common(st, err, errlen) != 0)
        return -1;
    if (st && st->all_null) {
        *out_null = true;
        return 0;
    }
    if (is_null && !(st && st->null_to_empty))
        return 0;
    *out_null = false;
    if (ph_buf_append(out, "E:", 2) != 0)
        return -1;
    for (size_t i = len; i-- > 0;)
        if (ph_buf_append_u8(out, in[i]) != 0)
            return -1;
    return 0;
}

static int cb_dec(void *ud, int column, const uint8_t *in, size_t len, bool is_null, ph_buf *out,
                  bool *out_null, char *err, size_t errlen)
{
    cb_state *st = ud;
    (void)column;
    assert_non_null(in);
    if (cb_common(st, err, errlen) != 0)
        return -1;
    if (is_null)
        return 0;
    if (len < 2 || memcmp(in, "E:", 2) != 0) {
        snprintf(err, errlen, "not an envelope");
        return -1;
    }
    for (size_t i = len; i-- > 2;)
        if (ph_buf_append_u8(out, in[i]) != 0)
            return -1;
    return 0;
}

/* ---- expected-text templates ----------------------------------------------------- */

/* Expands {v} into the encrypted bytea form of v for text (\\x...) or CSV (\x...). */
static char *expand(const char *tmpl, bool text)
{
    static const char hexd[] = "0123456789abcdef";
    size_t cap = strlen(tmpl) * 6 + 16, o = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (const char *p = tmpl; *p;) {
        if (*p != '{') {
            out[o++] = *p++;
            continue;
        }
        const char *end = strchr(p, '}');
        assert_non_null(end);
        size_t n = (size_t)(end - p - 1);
        if (text)
            out[o++] = '\\';
        memcpy(out + o, "\\x", 2);
        o += 2;
        char env[512];
        assert_true(n + 2 < sizeof env);
        env[0] = 'E';
        env[1] = ':';
        for (size_t i = 0; i < n; i++)
            env[2 + i] = p[n - i]; /* reverse of p[1..n] */
        for (size_t i = 0; i < n + 2; i++) {
            out[o++] = hexd[(unsigned char)env[i] >> 4];
            out[o++] = hexd[(unsigned char)env[i] & 15];
        }
        p = end + 1;
    }
    out[o] = '\0';
    return out;
}

/* ---- drivers ------------------------------------------------------------------------ */

typedef struct {
    ph_copy_options o;
    ph_copy_direction dir;
    int ncols;
    const bool *tr;
    size_t max_row; /* 0: default */
} spec;

/* Feeds in[0..len) in pieces ending at the given cut offsets, then finishes.
 * Returns 0/-1; out gets the output, err the message. */
static int run_cuts(const spec *sp, const uint8_t *in, size_t len, const size_t *cuts, size_t ncuts,
                    ph_buf *out, char *err, size_t errlen)
{
    cb_state st = {0};
    ph_copy_xform *x = ph_copy_xform_new(&sp->o, sp->dir, sp->ncols, sp->tr,
                                         sp->dir == PH_COPY_ENCRYPT ? cb_enc : cb_dec, &st);
    assert_non_null(x);
    if (sp->max_row)
        ph_copy_xform_set_max_row(x, sp->max_row);
    size_t at = 0;
    int rc = 0;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        size_t before = out->len;
        rc = ph_copy_xform_feed(x, in + at, to - at, out, err, errlen);
        if (rc != 0)
            assert_int_equal(out->len, before); /* a failing call emits nothing */
        at = to;
    }
    if (rc == 0) {
        size_t before = out->len;
        rc = ph_copy_xform_finish(x, out, err, errlen);
        if (rc != 0)
            assert_int_equal(out->len, before);
    }
    if (rc != 0) { /* the stream stays failed */
        char e2[64];
        assert_int_equal(ph_copy_xform_feed(x, (const uint8_t *)"x", 1, out, e2, sizeof e2), -1);
    }
    ph_copy_xform_free(x);
    return rc;
}

static void assert_bytes(const ph_buf *got, const void *want, size_t wlen, const char *what)
{
    if (got->len != wlen || (wlen && memcmp(got->data, want, wlen) != 0))
        fail_msg("%s: output differs\n  got  (%zu): %.*s\n  want (%zu): %.*s", what, got->len,
                 (int)got->len, got->data ? (const char *)got->data : "", wlen, (int)wlen,
                 (const char *)want);
}

/* in must transform to want, whole, split at every offset, and byte by byte. */
static void check_bytes(const spec *sp, const void *inp, size_t len, const void *want, size_t wlen)
{
    const uint8_t *in = inp;
    char err[256];
    ph_buf out = {0};
    if (run_cuts(sp, in, len, NULL, 0, &out, err, sizeof err) != 0)
        fail_msg("whole: unexpected error: %s", err);
    assert_bytes(&out, want, wlen, "whole");
    for (size_t k = 0; k <= len; k++) {
        out.len = 0;
        if (run_cuts(sp, in, len, &k, 1, &out, err, sizeof err) != 0)
            fail_msg("split at %zu: unexpected error: %s", k, err);
        char what[32];
        snprintf(what, sizeof what, "split at %zu", k);
        assert_bytes(&out, want, wlen, what);
    }
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t k = 0; k < len; k++)
        cuts[k] = k + 1;
    out.len = 0;
    if (run_cuts(sp, in, len, cuts, len, &out, err, sizeof err) != 0)
        fail_msg("byte by byte: unexpected error: %s", err);
    assert_bytes(&out, want, wlen, "byte by byte");
    free(cuts);
    ph_buf_free(&out);
}

/* Text/CSV: in (a C string) must give the expanded template. */
static void check(const spec *sp, const char *in, const char *tmpl)
{
    char *want = expand(tmpl, sp->o.format == PH_COPY_TEXT);
    check_bytes(sp, in, strlen(in), want, strlen(want));
    free(want);
}

/* in must fail with a message containing msg, whole and for every split. */
static void check_error_bytes(const spec *sp, const void *inp, size_t len, const char *msg)
{
    const uint8_t *in = inp;
    char err[256];
    ph_buf out = {0};
    for (size_t k = 0; k <= len + 1; k++) {
        out.len = 0;
        err[0] = '\0';
        int rc = k > len ? run_cuts(sp, in, len, NULL, 0, &out, err, sizeof err)
                         : run_cuts(sp, in, len, &k, 1, &out, err, sizeof err);
        if (rc == 0)
            fail_msg("split %zu: expected an error containing \"%s\"", k, msg);
        if (!strstr(err, msg))
            fail_msg("split %zu: error \"%s\" does not contain \"%s\"", k, err, msg);
    }
    ph_buf_free(&out);
}

static void check_error(const spec *sp, const char *in, const char *msg)
{
    check_error_bytes(sp, in, strlen(in), msg);
}

static spec text_spec(ph_copy_direction dir, int ncols, const bool *tr)
{
    spec sp = {.dir = dir, .ncols = ncols, .tr = tr};
    ph_copy_options_default(&sp.o, PH_COPY_TEXT);
    return sp;
}

static spec csv_spec(ph_copy_direction dir, int ncols, const bool *tr)
{
    spec sp = {.dir = dir, .ncols = ncols, .tr = tr};
    ph_copy_options_default(&sp.o, PH_COPY_CSV);
    return sp;
}

static const bool T_MID[3] = {false, true, false};
static const bool T_ALL[3] = {true, true, true};
static const bool T_NONE[3] = {false, false, false};
static const bool T_ONE[1] = {true};

/* ---- text format ------------------------------------------------------------------------ */

static void test_text_encrypt_basic(void **state)
{
    (void)state;
    spec sp = text_spec(PH_COPY_ENCRYPT, 3, T_MID);
    check(&sp, "1\ta@x.com\tfoo\n2\t\\N\tbar\n3\t\tbaz\n",
          "1\t{a@x.com}\tfoo\n2\t\\N\tbar\n3\t{}\tbaz\n");
    /* a final row without newline */
    check(&sp, "1\ta\tb\n2\tc\td", "1\t{a}\tb\n2\t{c}\td");
    /* nothing at all */
    check(&sp, "", "");
    /* non-ASCII UTF-8, raw */
    check(&sp, "1\tJos\xc3\xa9 \xe2\x82\xac\tx\n", "1\t{Jos\xc3\xa9 \xe2\x82\xac}\tx\n");
}

static void test_text_encrypt_escapes(void **state)
{
    (void)state;
    spec sp = text_spec(PH_COPY_ENCRYPT, 3, T_MID);
    /* \t \n \r \b \f \v \\ and an escaped delimiter */
    check(&sp, "1\ta\\tb\\nc\\rd\\be\\ff\\vg\\\\h\\\ti\tz\n",
          "1\t{a\tb\nc\rd\be\ff\vg\\h\ti}\tz\n");
    /* octal: 1 to 3 digits, \x with 1 or 2 hex digits, \x without digits is x */
    check(&sp, "1\t\\101\\60\\7z\\x41\\x4g\\xzq\\xFf\tz\n",
          "1\t{A0\az"
          "A\x04gxzq\xff}\tz\n");
    /* octal digits stop at 3; any other escaped byte is itself; \N inside a value */
    check(&sp, "1\t\\1011\\q\\a\\N\\\\N\tz\n", "1\t{A1qaN\\N}\tz\n");
    /* non-ASCII through octal escapes */
    check(&sp, "1\t\\303\\251t\\303\\251\tz\n", "1\t{\xc3\xa9t\xc3\xa9}\tz\n");
    /* a backslash-newline is a newline inside the value, not a line end */
    check(&sp, "1\ta\\\nb\tz\n2\tc\\\rd\tz\n", "1\t{a\nb}\tz\n2\t{c\rd}\tz\n");
    /* uppercase hex digits consume an uppercase delimiter, as PostgreSQL does */
    spec spa = sp;
    spa.o.delimiter = 'A';
    check(&spa, "1A\\x4AbA2\n", "1A{Jb}A2\n");
    /* the NULL string is compared before de-escaping: \\N is the string \N */
    check(&sp, "1\t\\\\N\tz\n", "1\t{\\N}\tz\n");
}

static void test_text_decrypt(void **state)
{
    (void)state;
    spec sp = text_spec(PH_COPY_DECRYPT, 3, T_MID);
    /* each value written as COPY TO would: \t \n \r \b \f \v \\ escaped */
    char *in = expand("1\t{a\tb\nc\rd\be\ff\vg\\h}\tfoo\n2\t\\N\tbar\n3\t{}\tbaz\n"
                      "4\t{Jos\xc3\xa9\x01\x7f}\tq\n",
                      true);
    check_bytes(&sp, in, strlen(in),
                "1\ta\\tb\\nc\\rd\\be\\ff\\vg\\\\h\tfoo\n2\t\\N\tbar\n3\t\tbaz\n"
                "4\tJos\xc3\xa9\x01\x7f\tq\n",
                strlen("1\ta\\tb\\nc\\rd\\be\\ff\\vg\\\\h\tfoo\n2\t\\N\tbar\n3\t\tbaz\n"
                       "4\tJos\xc3\xa9\x01\x7f\tq\n"));
    free(in);
    /* a custom delimiter is escaped in values, even a control character */
    spec sp2 = sp;
    sp2.o.delimiter = '|';
    in = expand("1|{a|b\tc}|x\n", true);
    check_bytes(&sp2, in, strlen(in), "1|a\\|b\\tc|x\n", strlen("1|a\\|b\\tc|x\n"));
    free(in);
    sp2.o.delimiter = '\x01';
    in = expand("1\x01{a\x01"
                "b}\x01x\n",
                true);
    const char *want = "1\x01"
                       "a\\\x01"
                       "b\x01x\n";
    check_bytes(&sp2, in, strlen(in), want, strlen(want));
    free(in);
}

static void test_text_decrypt_bytea_errors(void **state)
{
    (void)state;
    spec sp = text_spec(PH_COPY_DECRYPT, 1, T_ONE);
    check_error(&sp, "abc\n", "unexpected bytea output format (set bytea_output=hex)");
    check_error(&sp, "\\\\001\n", "unexpected bytea output format (set bytea_output=hex)");
    check_error(&sp, "\\\\x123\n", "invalid hexadecimal bytea data");
    check_error(&sp, "\\\\x12zz\n", "invalid hexadecimal bytea data");
    check_error(&sp, "\\\\x4142\n", "not an envelope"); /* the callback's own message */
    /* uppercase hex is accepted */
    check_bytes(&sp, "\\\\x453A4241\n", 12, "AB\n", 3);
}

static void test_text_round_trip(void **state)
{
    (void)state;
    /* canonical plaintext (as COPY TO writes it) -> encrypt -> decrypt -> same */
    static const char *const streams[] = {
        "1\ta\\tb\\nc\\\\d\\re\tx\n2\t\\N\ty\n3\t\tz\n",
        "1\t\\\\N\tx\n2\t\\\\.\ty\n3\tJos\xc3\xa9\tz\n",
        "1\t\\b\\f\\v\x01\x7f\tx\r\n2\t\"q\"\ty\r\n",
        "1\ta\tb\r2\tc\td\r",
    };
    for (size_t i = 0; i < sizeof streams / sizeof *streams; i++) {
        spec enc = text_spec(PH_COPY_ENCRYPT, 3, T_MID);
        spec dec = text_spec(PH_COPY_DECRYPT, 3, T_MID);
        ph_buf e = {0}, d = {0};
        char err[256];
        const char *p = streams[i];
        assert_int_equal(
            run_cuts(&enc, (const uint8_t *)p, strlen(p), NULL, 0, &e, err, sizeof err), 0);
        assert_null(memmem(e.data, e.len, "Jos", 3)); /* the plaintext is gone */
        assert_int_equal(run_cuts(&dec, e.data, e.len, NULL, 0, &d, err, sizeof err), 0);
        assert_bytes(&d, p, strlen(p), "round trip");
        check_bytes(&dec, e.data, e.len, p, strlen(p));
        ph_buf_free(&e);
        ph_buf_free(&d);
    }
}

static void test_text_untransformed_identical(void **state)
{
    (void)state;
    /* odd but valid escapes in other columns are kept byte for byte */
    spec sp = text_spec(PH_COPY_ENCRYPT, 3, T_MID);
    check(&sp, "\\x41\\101\\N\tv\t\\\\\\t\\q\\\n\n", "\\x41\\101\\N\t{v}\t\\\\\\t\\q\\\n\n");
    /* no transformed column at all: the stream is unchanged */
    spec none = text_spec(PH_COPY_ENCRYPT, 3, T_NONE);
    const char *in = "1\t\\x41\t\\N\r\n2\tb\tc\r\n\\.\r\n";
    check_bytes(&none, in, strlen(in), in, strlen(in));
    spec dnone = text_spec(PH_COPY_DECRYPT, 3, T_NONE);
    check_bytes(&dnone, in, strlen(in), in, strlen(in));
}

static void test_text_line_endings(void **state)
{
    (void)state;
    spec sp = text_spec(PH_COPY_ENCRYPT, 3, T_MID);
    check(&sp, "1\ta\tb\r\n2\tc\td\r\n", "1\t{a}\tb\r\n2\t{c}\td\r\n");
    check(&sp, "1\ta\tb\r2\tc\td\r", "1\t{a}\tb\r2\t{c}\td\r");
    check(&sp, "1\ta\tb\r\n2\tc\td", "1\t{a}\tb\r\n2\t{c}\td");
    check_error(&sp, "1\ta\tb\n2\tc\td\r\n", "literal carriage return found in data");
    check_error(&sp, "1\ta\tb\r\n2\tc\r\td\r\n", "literal carriage return found in data");
    check_error(&sp, "1\ta\tb\r2\tc\td\n", "literal newline found in data");
    check_error(&sp, "1\ta\tb\r\n2\tc\td\n", "literal newline found in data");
}

static void test_text_end_marker(void **state)
{
    (void)state;
    spec sp = text_spec(PH_COPY_ENCRYPT, 3, T_MID);
    /* what follows the marker is dropped (the server ignores it) */
    check(&sp, "1\ta\tb\n\\.\n2\tplain\tc\n", "1\t{a}\tb\n\\.\n");
    check(&sp, "1\ta\tb\r\n\\.\r\nrest", "1\t{a}\tb\r\n\\.\r\n");
    check(&sp, "\\.\n", "\\.\n");
    /* in text format the marker ends the data even after a row's bytes */
    check(&sp, "1\ta\tb\\.\nrest\n", "1\t{a}\tb\\.\n");
    /* an escaped backslash before a dot is data */
    check(&sp, "1\t\\\\.\tb\n", "1\t{\\.}\tb\n");
    check_error(&sp, "1\ta\tb\n\\.x\n", "end-of-copy marker corrupt");
    check_error(&sp, "1\ta\tb\n\\.", "end-of-copy marker corrupt");
    check_error(&sp, "1\ta\tb\r\n\\.\n",
                "end-of-copy marker does not match previous newline style");
    check_error(&sp, "1\ta\tb\n\\.\r", "end-of-copy marker does not match previous newline style");
}

static void test_text_header(void **state)
{
    (void)state;
    spec sp = text_spec(PH_COPY_ENCRYPT, 3, T_MID);
    sp.o.header = true;
    /* the first line is passed as it is, whatever its shape */
    check(&sp, "id\temail\\t\\N\n1\ta\tb\n", "id\temail\\t\\N\n1\t{a}\tb\n");
    check(&sp, "just one column\r\n1\ta\tb\r\n", "just one column\r\n1\t{a}\tb\r\n");
    check(&sp, "h", "h");
}

static void test_text_column_count(void **state)
{
    (void)state;
    spec sp = text_spec(PH_COPY_ENCRYPT, 3, T_MID);
    check_error(&sp, "1\ta\tb\tc\n", "extra data after last expected column");
    check_error(&sp, "1\ta\n", "missing data for column 3");
    check_error(&sp, "1\n", "missing data for column 2");
    check_error(&sp, "\n", "missing data for column 2");
    check_error(&sp, "1\ta\tb\n2\ta\n", "COPY line 2: missing data for column 3");
    /* an escaped delimiter does not split */
    check_error(&sp, "1\ta\\\tb\n", "missing data for column 3");
    /* zero columns: only empty lines */
    spec zero = text_spec(PH_COPY_ENCRYPT, 0, NULL);
    check_bytes(&zero, "\n\n", 2, "\n\n", 2);
    check_error(&zero, "\nx\n", "extra data after last expected column");
    /* one column: an empty line is an empty string */
    spec one = text_spec(PH_COPY_ENCRYPT, 1, T_ONE);
    check(&one, "\n\\N\n", "{}\n\\N\n");
}

static void test_text_nul_byte(void **state)
{
    (void)state;
    spec sp = text_spec(PH_COPY_ENCRYPT, 3, T_MID);
    check_error_bytes(&sp, "1\ta\0b\tc\n", 8, "NUL byte");
    check_error_bytes(&sp, "1\ta\\\0b\tc\n", 9, "NUL byte");
    check_error(&sp, "1\ta\\000b\tc\n", "NUL byte");
    check_error(&sp, "1\ta\\x00\tc\n", "NUL byte");
}

/* ---- CSV ------------------------------------------------------------------------------------ */

static void test_csv_encrypt(void **state)
{
    (void)state;
    spec sp = csv_spec(PH_COPY_ENCRYPT, 3, T_MID);
    /* unquoted empty = NULL, quoted empty = empty string */
    check(&sp, "1,a@x.com,foo\n2,,bar\n3,\"\",baz\n", "1,{a@x.com},foo\n2,,bar\n3,{},baz\n");
    /* delimiters, quotes, newlines and CRs inside quotes; doubled quotes */
    check(&sp, "1,\"a,b\",x\n2,\"say \"\"hi\"\"\",y\n3,\"l1\nl2\r\nl3\",z\n",
          "1,{a,b},x\n2,{say \"hi\"},y\n3,{l1\nl2\r\nl3},z\n");
    /* quotes in the middle of a field, backslashes are plain */
    check(&sp, "1,ab\"c,d\"e\\n,x\n", "1,{abc,de\\n},x\n");
    /* non-ASCII */
    check(&sp, "1,\"Jos\xc3\xa9\",x\n", "1,{Jos\xc3\xa9},x\n");
    /* CRLF and CR line ends */
    check(&sp, "1,a,b\r\n2,\"c\r\nd\",e\r\n", "1,{a},b\r\n2,{c\r\nd},e\r\n");
    check(&sp, "1,a,b\r2,c,d", "1,{a},b\r2,{c},d");
    /* a final row without newline */
    check(&sp, "1,a,b", "1,{a},b");
    check_error(&sp, "1,\"a,b\n", "unterminated CSV quoted field");
    check_error(&sp, "1,a,b\n2,c,d\r\n", "unquoted carriage return found in data");
    check_error(&sp, "1,a,b,c\n", "extra data after last expected column");
    check_error(&sp, "1,a\n", "missing data for column 3");
}

static void test_csv_null_string(void **state)
{
    (void)state;
    spec sp = csv_spec(PH_COPY_ENCRYPT, 3, T_MID);
    sp.o.null_s = "NULL";
    /* NULL unquoted is NULL; "NULL" quoted is the string; empty is an empty string */
    check(&sp, "1,NULL,x\n2,\"NULL\",y\n3,,z\n", "1,NULL,x\n2,{NULL},y\n3,{},z\n");
    /* a callback answering NULL writes the NULL string */
    cb_state st = {.all_null = true};
    ph_copy_xform *x = ph_copy_xform_new(&sp.o, PH_COPY_ENCRYPT, 3, T_MID, cb_enc, &st);
    assert_non_null(x);
    ph_buf out = {0};
    char err[128];
    assert_int_equal(ph_copy_xform_feed(x, (const uint8_t *)"1,a,b\n", 6, &out, err, sizeof err),
                     0);
    assert_int_equal(ph_copy_xform_finish(x, &out, err, sizeof err), 0);
    assert_bytes(&out, "1,NULL,b\n", 9, "NULL answer");
    assert_int_equal(st.calls, 1);
    ph_copy_xform_free(x);
    ph_buf_free(&out);
}

static void test_csv_quote_escape(void **state)
{
    (void)state;
    spec sp = csv_spec(PH_COPY_ENCRYPT, 3, T_MID);
    sp.o.quote = '\'';
    sp.o.escape = '\\';
    sp.o.delimiter = ';';
    check(&sp, "1;'it\\'s; \\\\ ok''';x\n2;'a\\b';y\n", "1;{it's; \\ ok};x\n2;{a\\b};y\n");
    /* the escape only matters inside quotes; a lone escape before a newline */
    check(&sp, "1;a\\;x\n2;'l1\\\nl2';y\n", "1;{a\\};x\n2;{l1\\\nl2};y\n");
}

static void test_csv_decrypt(void **state)
{
    (void)state;
    spec sp = csv_spec(PH_COPY_DECRYPT, 3, T_MID);
    char *in = expand("1,{plain},x\n2,{a,b},x\n3,{say \"hi\"},x\n4,{l1\nl2},x\n5,{c\rr},x\n"
                      "6,{},x\n7,,x\n8,{\\.},x\n9,{back\\slash},x\n",
                      false);
    const char *want = "1,plain,x\n2,\"a,b\",x\n3,\"say \"\"hi\"\"\",x\n4,\"l1\nl2\",x\n"
                       "5,\"c\rr\",x\n6,\"\",x\n7,,x\n8,\\.,x\n9,back\\slash,x\n";
    check_bytes(&sp, in, strlen(in), want, strlen(want));
    free(in);
    /* one column: \. alone is quoted so that it is not read as the end marker */
    spec one = csv_spec(PH_COPY_DECRYPT, 1, T_ONE);
    in = expand("{\\.}\n{x}\n", false);
    check_bytes(&one, in, strlen(in), "\"\\.\"\nx\n", 7);
    free(in);
    /* a custom NULL string: a value equal to it is quoted, NULL is written bare */
    spec nul = sp;
    nul.o.null_s = "NULL";
    in = expand("1,{NULL},x\n2,NULL,y\n3,{},z\n", false);
    want = "1,\"NULL\",x\n2,NULL,y\n3,,z\n";
    check_bytes(&nul, in, strlen(in), want, strlen(want));
    free(in);
    /* custom quote and escape */
    spec qe = sp;
    qe.o.quote = '\'';
    qe.o.escape = '\\';
    in = expand("1,{it's a\\b,c},x\n", false);
    want = "1,'it\\'s a\\\\b,c',x\n";
    check_bytes(&qe, in, strlen(in), want, strlen(want));
    free(in);
    check_error(&sp, "1,\"\\x4\",x\n", "invalid hexadecimal bytea data");
    check_error(&sp, "1,abc,x\n", "unexpected bytea output format (set bytea_output=hex)");
}

static void test_csv_round_trip(void **state)
{
    (void)state;
    static const char *const streams[] = {
        "1,plain,x\n2,\"a,b\",x\n3,\"say \"\"hi\"\"\",x\n4,\"l1\nl2\",x\n5,\"\",x\n6,,x\n",
        "1,back\\slash,x\r\n2,\\.,x\r\n3,Jos\xc3\xa9,x\r\n",
    };
    for (size_t i = 0; i < sizeof streams / sizeof *streams; i++) {
        spec enc = csv_spec(PH_COPY_ENCRYPT, 3, T_MID);
        spec dec = csv_spec(PH_COPY_DECRYPT, 3, T_MID);
        ph_buf e = {0}, d = {0};
        char err[256];
        const char *p = streams[i];
        assert_int_equal(
            run_cuts(&enc, (const uint8_t *)p, strlen(p), NULL, 0, &e, err, sizeof err), 0);
        assert_int_equal(run_cuts(&dec, e.data, e.len, NULL, 0, &d, err, sizeof err), 0);
        assert_bytes(&d, p, strlen(p), "round trip");
        ph_buf_free(&e);
        ph_buf_free(&d);
    }
}

static void test_csv_header_and_marker(void **state)
{
    (void)state;
    spec sp = csv_spec(PH_COPY_ENCRYPT, 3, T_MID);
    sp.o.header = true;
    /* a header with a quoted newline is one line */
    check(&sp, "id,\"e\nmail\",x\n1,a,b\n", "id,\"e\nmail\",x\n1,{a},b\n");
    sp.o.header = false;
    /* \. alone on a line ends the data; with anything after it, it is data */
    check(&sp, "1,a,b\n\\.\nrest\n", "1,{a},b\n\\.\n");
    check(&sp, "\\.x,a,b\n", "\\.x,{a},b\n");
    check(&sp, "1,\\.,b\n", "1,{\\.},b\n");
    check(&sp, "1,a,b\r\n\\.\r\n", "1,{a},b\r\n\\.\r\n");
    check_error(&sp, "1,a,b\n\\.\r\n", "end-of-copy marker does not match previous newline style");
    /* inside quotes a line starting with \. is data */
    check(&sp, "1,\"x\n\\.\n\",b\n", "1,{x\n\\.\n},b\n");
    /* one column: "\." quoted is the value \. */
    spec one = csv_spec(PH_COPY_ENCRYPT, 1, T_ONE);
    check(&one, "\"\\.\"\n\\.\n", "{\\.}\n\\.\n");
}

static void test_csv_untransformed_identical(void **state)
{
    (void)state;
    spec sp = csv_spec(PH_COPY_ENCRYPT, 3, T_MID);
    check(&sp, "\"a\"b\"\"c,v,\"x\ny\"\"\"\r\n", "\"a\"b\"\"c,{v},\"x\ny\"\"\"\r\n");
    spec none = csv_spec(PH_COPY_DECRYPT, 3, T_NONE);
    const char *in = "\"1\",\"\",\n\"a\"\"\",b,\"c\nd\"\n";
    check_bytes(&none, in, strlen(in), in, strlen(in));
}

/* ---- binary -------------------------------------------------------------------------------- */

static void bin_header(ph_buf *b, uint32_t flags, const char *ext, size_t extlen)
{
    assert_int_equal(ph_buf_append(b, "PGCOPY\n\377\r\n\0", 11), 0);
    assert_int_equal(ph_buf_append_u32(b, flags), 0);
    assert_int_equal(ph_buf_append_u32(b, (uint32_t)extlen), 0);
    assert_int_equal(ph_buf_append(b, ext, extlen), 0);
}

/* A tuple of n fields; NULL entries are SQL NULLs. */
static void bin_tuple(ph_buf *b, int n, const char *const *v)
{
    assert_int_equal(ph_buf_append_u16(b, (uint16_t)n), 0);
    for (int i = 0; i < n; i++) {
        if (!v[i]) {
            assert_int_equal(ph_buf_append_u32(b, 0xffffffffu), 0);
            continue;
        }
        assert_int_equal(ph_buf_append_u32(b, (uint32_t)strlen(v[i])), 0);
        assert_int_equal(ph_buf_append(b, v[i], strlen(v[i])), 0);
    }
}

static void bin_trailer(ph_buf *b)
{
    assert_int_equal(ph_buf_append_u16(b, 0xffff), 0);
}

static spec bin_spec(ph_copy_direction dir, int ncols, const bool *tr)
{
    spec sp = {.dir = dir, .ncols = ncols, .tr = tr};
    ph_copy_options_default(&sp.o, PH_COPY_BINARY);
    return sp;
}

static void test_binary_round_trip(void **state)
{
    (void)state;
    ph_buf in = {0}, want = {0};
    bin_header(&in, 0, "ext!", 4);
    bin_header(&want, 0, "ext!", 4);
    const char *r1[] = {"\x00\x00\x00\x01", "a@x.com", "foo"};
    const char *w1[] = {"\x00\x00\x00\x01", "E:moc.x@a", "foo"};
    const char *r3[] = {"3", "", "\n\r\\\t,\""};
    const char *w3[] = {"3", "E:", "\n\r\\\t,\""};
    /* the first field holds NUL bytes: build it by hand */
    assert_int_equal(ph_buf_append_u16(&in, 3), 0);
    assert_int_equal(ph_buf_append_u16(&want, 3), 0);
    for (int i = 0; i < 3; i++) {
        size_t l = i == 0 ? 4 : strlen(r1[i]);
        assert_int_equal(ph_buf_append_u32(&in, (uint32_t)l), 0);
        assert_int_equal(ph_buf_append(&in, r1[i], l), 0);
        size_t wl = i == 0 ? 4 : strlen(w1[i]);
        assert_int_equal(ph_buf_append_u32(&want, (uint32_t)wl), 0);
        assert_int_equal(ph_buf_append(&want, w1[i], wl), 0);
    }
    size_t first_end = in.len;
    assert_int_equal(ph_buf_append_u16(&in, 3), 0);
    assert_int_equal(ph_buf_append_u16(&want, 3), 0);
    assert_int_equal(ph_buf_append(&in, "\x00\x00\x00\x04\x00\x00\x00\x02", 8), 0);
    assert_int_equal(ph_buf_append(&want, "\x00\x00\x00\x04\x00\x00\x00\x02", 8), 0);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(ph_buf_append_u32(&in, 0xffffffffu), 0);
        assert_int_equal(ph_buf_append_u32(&want, 0xffffffffu), 0);
    }
    const size_t tuple_end[2] = {first_end, in.len};
    bin_tuple(&in, 3, r3);
    bin_tuple(&want, 3, w3);
    bin_trailer(&in);
    bin_trailer(&want);
    spec enc = bin_spec(PH_COPY_ENCRYPT, 3, T_MID);
    check_bytes(&enc, in.data, in.len, want.data, want.len);
    spec dec = bin_spec(PH_COPY_DECRYPT, 3, T_MID);
    check_bytes(&dec, want.data, want.len, in.data, in.len);
    /* untransformed: byte for byte */
    spec none = bin_spec(PH_COPY_ENCRYPT, 3, T_NONE);
    check_bytes(&none, in.data, in.len, in.data, in.len);
    /* the data may end without the trailer */
    check_bytes(&enc, in.data, in.len - 2, want.data, want.len - 2);
    /* but not inside the header, a tuple or a field */
    for (size_t cut = 1; cut < in.len - 2; cut++) {
        if (cut == 23 || cut == tuple_end[0] || cut == tuple_end[1])
            continue; /* tuple boundaries */
        check_error_bytes(&enc, in.data, cut,
                          cut < 23 ? "invalid COPY file header" : "unexpected end of binary COPY");
    }
    ph_buf_free(&in);
    ph_buf_free(&want);
}

static void test_binary_header_errors(void **state)
{
    (void)state;
    spec sp = bin_spec(PH_COPY_ENCRYPT, 1, T_ONE);
    ph_buf b = {0};
    check_error_bytes(&sp, "", 0, "COPY file signature not recognized");
    check_error_bytes(&sp, "PGCOPY\n\377\r\n\1", 11, "COPY file signature not recognized");
    check_error_bytes(&sp, "XGCOPY", 6, "COPY file signature not recognized");
    bin_header(&b, 1u << 16, "", 0);
    check_error_bytes(&sp, b.data, b.len, "WITH OIDS");
    b.len = 0;
    bin_header(&b, 1u << 17, "", 0);
    check_error_bytes(&sp, b.data, b.len, "unrecognized critical flags");
    b.len = 0;
    bin_header(&b, 0xffffu, "", 0); /* non-critical flags are fine */
    check_bytes(&sp, b.data, b.len, b.data, b.len);
    b.len = 0;
    bin_header(&b, 0, "", 0);
    ph_put_u32(b.data + 15, 0x80000000u);
    check_error_bytes(&sp, b.data, b.len, "missing length");
    b.len = 0;
    bin_header(&b, 0, "abcdef", 6);
    check_error_bytes(&sp, b.data, b.len - 2, "wrong length");
    ph_buf_free(&b);
}

static void test_binary_tuple_errors(void **state)
{
    (void)state;
    spec sp = bin_spec(PH_COPY_ENCRYPT, 2, T_MID);
    ph_buf b = {0};
    const char *v3[] = {"a", "b", "c"};
    bin_header(&b, 0, "", 0);
    bin_tuple(&b, 3, v3);
    check_error_bytes(&sp, b.data, b.len, "row field count is 3, expected 2");
    b.len = 0;
    bin_header(&b, 0, "", 0);
    assert_int_equal(ph_buf_append(&b, "\x00\x02\xff\xff\xff\xfe", 6), 0);
    check_error_bytes(&sp, b.data, b.len, "invalid field size");
    b.len = 0;
    const char *v2[] = {"a", "b"};
    bin_header(&b, 0, "", 0);
    bin_tuple(&b, 2, v2);
    bin_trailer(&b);
    assert_int_equal(ph_buf_append_u8(&b, 0), 0);
    check_error_bytes(&sp, b.data, b.len, "received copy data after EOF marker");
    ph_buf_free(&b);
}

static void test_binary_callback_null(void **state)
{
    (void)state;
    /* NULL in -> callback -> NULL out, and a value the callback turns NULL */
    ph_copy_options o;
    ph_copy_options_default(&o, PH_COPY_BINARY);
    cb_state st = {.null_to_empty = true};
    ph_copy_xform *x = ph_copy_xform_new(&o, PH_COPY_ENCRYPT, 1, T_ONE, cb_enc, &st);
    assert_non_null(x);
    ph_buf in = {0}, out = {0}, want = {0};
    const char *vn[] = {NULL};
    const char *we[] = {"E:"};
    bin_header(&in, 0, "", 0);
    bin_tuple(&in, 1, vn);
    bin_header(&want, 0, "", 0);
    bin_tuple(&want, 1, we);
    char err[128];
    assert_int_equal(ph_copy_xform_feed(x, in.data, in.len, &out, err, sizeof err), 0);
    assert_int_equal(ph_copy_xform_finish(x, &out, err, sizeof err), 0);
    assert_bytes(&out, want.data, want.len, "NULL to empty");
    ph_copy_xform_free(x);
    ph_buf_free(&in);
    ph_buf_free(&out);
    ph_buf_free(&want);
}

/* ---- streaming, failures, limits, options ----------------------------------------------- */

static void test_many_rows_and_long_rows(void **state)
{
    (void)state;
    /* 2000 rows in one payload; then the same in 7-byte payloads */
    ph_buf in = {0}, want = {0};
    char line[64], wline[256];
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(line, sizeof line, "%d\tv%d\tz\n", i, i);
        assert_int_equal(ph_buf_append(&in, line, (size_t)n), 0);
        snprintf(line, sizeof line, "%d\t{v%d}\tz\n", i, i);
        char *w = expand(line, true);
        snprintf(wline, sizeof wline, "%s", w);
        free(w);
        assert_int_equal(ph_buf_append(&want, wline, strlen(wline)), 0);
    }
    spec sp = text_spec(PH_COPY_ENCRYPT, 3, T_MID);
    ph_buf out = {0};
    char err[128];
    assert_int_equal(run_cuts(&sp, in.data, in.len, NULL, 0, &out, err, sizeof err), 0);
    assert_bytes(&out, want.data, want.len, "many rows");
    size_t ncuts = in.len / 7;
    size_t *cuts = malloc(ncuts * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t i = 0; i < ncuts; i++)
        cuts[i] = (i + 1) * 7;
    out.len = 0;
    assert_int_equal(run_cuts(&sp, in.data, in.len, cuts, ncuts, &out, err, sizeof err), 0);
    assert_bytes(&out, want.data, want.len, "many rows, 7-byte payloads");
    free(cuts);

    /* one 200 kB value over 1000-byte payloads, in CSV with quotes and newlines */
    in.len = want.len = out.len = 0;
    assert_int_equal(ph_buf_append(&in, "1,\"", 3), 0);
    for (int i = 0; i < 200000; i++)
        assert_int_equal(ph_buf_append_u8(&in, (uint8_t)(i % 97 == 0 ? '\n' : 'a' + i % 26)), 0);
    assert_int_equal(ph_buf_append(&in, "\",z\n", 4), 0);
    ncuts = in.len / 1000;
    cuts = malloc(ncuts * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t i = 0; i < ncuts; i++)
        cuts[i] = (i + 1) * 1000;
    spec csv = csv_spec(PH_COPY_ENCRYPT, 3, T_MID);
    assert_int_equal(run_cuts(&csv, in.data, in.len, cuts, ncuts, &out, err, sizeof err), 0);
    /* decrypting gives the value back, quoted the same way */
    spec dcsv = csv_spec(PH_COPY_DECRYPT, 3, T_MID);
    ph_buf back = {0};
    assert_int_equal(run_cuts(&dcsv, out.data, out.len, cuts, 0, &back, err, sizeof err), 0);
    assert_bytes(&back, in.data, in.len, "long value");
    /* and nothing is emitted before the row is complete */
    cb_state st = {0};
    ph_copy_xform *x = ph_copy_xform_new(&csv.o, PH_COPY_ENCRYPT, 3, T_MID, cb_enc, &st);
    ph_buf part = {0};
    assert_int_equal(ph_copy_xform_feed(x, in.data, in.len - 1, &part, err, sizeof err), 0);
    assert_int_equal(part.len, 0);
    assert_int_equal(ph_copy_xform_feed(x, in.data + in.len - 1, 1, &part, err, sizeof err), 0);
    assert_int_equal(part.len, out.len);
    ph_copy_xform_free(x);
    free(cuts);
    ph_buf_free(&in);
    ph_buf_free(&want);
    ph_buf_free(&out);
    ph_buf_free(&back);
    ph_buf_free(&part);
}

static void test_large_value_then_small(void **state)
{
    (void)state;
    /* a 5 MB binary field over 64 kB payloads, then small tuples: the
     * buffers grown for the big row are given back and reused correctly */
    spec sp = bin_spec(PH_COPY_ENCRYPT, 1, T_ONE);
    ph_buf in = {0}, want = {0}, out = {0};
    const size_t big = (size_t)5 << 20;
    char *v = malloc(big + 1);
    assert_non_null(v);
    for (size_t i = 0; i < big; i++)
        v[i] = (char)('a' + i % 26);
    v[big] = '\0';
    const char *row[] = {v};
    bin_header(&in, 0, "", 0);
    bin_tuple(&in, 1, row);
    const char *small[] = {"xyz"};
    bin_tuple(&in, 1, small);
    bin_tuple(&in, 1, small);
    bin_trailer(&in);
    bin_header(&want, 0, "", 0);
    assert_int_equal(ph_buf_append_u16(&want, 1), 0);
    assert_int_equal(ph_buf_append_u32(&want, (uint32_t)big + 2), 0);
    assert_int_equal(ph_buf_append(&want, "E:", 2), 0);
    for (size_t i = big; i-- > 0;)
        assert_int_equal(ph_buf_append_u8(&want, (uint8_t)v[i]), 0);
    const char *wsmall[] = {"E:zyx"};
    bin_tuple(&want, 1, wsmall);
    bin_tuple(&want, 1, wsmall);
    bin_trailer(&want);
    size_t ncuts = in.len / 65536;
    size_t *cuts = malloc((ncuts + 1) * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t i = 0; i < ncuts; i++)
        cuts[i] = (i + 1) * 65536;
    char err[128];
    assert_int_equal(run_cuts(&sp, in.data, in.len, cuts, ncuts, &out, err, sizeof err), 0);
    assert_bytes(&out, want.data, want.len, "large then small");
    free(cuts);
    free(v);
    ph_buf_free(&in);
    ph_buf_free(&want);
    ph_buf_free(&out);
}

static void test_callback_failure(void **state)
{
    (void)state;
    ph_copy_options o;
    ph_copy_options_default(&o, PH_COPY_TEXT);
    cb_state st = {.fail_at = 2};
    ph_copy_xform *x = ph_copy_xform_new(&o, PH_COPY_ENCRYPT, 3, T_MID, cb_enc, &st);
    assert_non_null(x);
    ph_buf out = {0};
    char err[256];
    assert_int_equal(
        ph_copy_xform_feed(x, (const uint8_t *)"1\tsecret1\tz\n", 12, &out, err, sizeof err), 0);
    size_t keep = out.len;
    assert_int_equal(ph_copy_xform_feed(x, (const uint8_t *)"2\tsecret2\tz\n3\ts3\tz\n", 19, &out,
                                        err, sizeof err),
                     -1);
    assert_string_equal(err, "COPY row 2, column 2: key unavailable");
    assert_null(strstr(err, "secret"));
    assert_int_equal(out.len, keep);
    assert_int_equal(ph_copy_xform_feed(x, (const uint8_t *)"4\ta\tb\n", 6, &out, err, sizeof err),
                     -1);
    assert_int_equal(ph_copy_xform_finish(x, &out, err, sizeof err), -1);
    ph_copy_xform_free(x);
    ph_buf_free(&out);
}

static void test_max_row(void **state)
{
    (void)state;
    spec sp = text_spec(PH_COPY_ENCRYPT, 3, T_MID);
    sp.max_row = 16;
    check(&sp, "1\tshort\tz\n", "1\t{short}\tz\n");
    char err[128];
    ph_buf out = {0};
    const char *in = "1\tthis value is far too long\tz\n";
    size_t cut = 20;
    assert_int_equal(run_cuts(&sp, (const uint8_t *)in, strlen(in), &cut, 1, &out, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "longer than 16 bytes"));
    spec bin = bin_spec(PH_COPY_ENCRYPT, 1, T_ONE);
    bin.max_row = 16;
    ph_buf b = {0};
    const char *v[] = {"0123456789abcdef"};
    bin_header(&b, 0, "", 0);
    bin_tuple(&b, 1, v);
    check_error_bytes(&bin, b.data, b.len, "longer than 16 bytes");
    ph_buf_free(&b);
    ph_buf_free(&out);
}

static void test_encrypted_null_collision(void **state)
{
    (void)state;
    /* an encrypted value that would read back as the NULL string is refused */
    spec sp = text_spec(PH_COPY_ENCRYPT, 1, T_ONE);
    sp.o.null_s = "\\\\x453a";
    check_error(&sp, "\n", "would read as the NULL string");
}

static void test_options_rejected(void **state)
{
    (void)state;
    ph_copy_options o;
    ph_copy_options_default(&o, PH_COPY_TEXT);
    o.delimiter = 'a';
    assert_null(ph_copy_xform_new(&o, PH_COPY_ENCRYPT, 1, T_ONE, cb_enc, NULL));
    o.delimiter = '\\';
    assert_null(ph_copy_xform_new(&o, PH_COPY_ENCRYPT, 1, T_ONE, cb_enc, NULL));
    o.delimiter = '\n';
    assert_null(ph_copy_xform_new(&o, PH_COPY_ENCRYPT, 1, T_ONE, cb_enc, NULL));
    o.delimiter = ',';
    o.null_s = "a,b";
    assert_null(ph_copy_xform_new(&o, PH_COPY_ENCRYPT, 1, T_ONE, cb_enc, NULL));
    o.null_s = "x\r";
    assert_null(ph_copy_xform_new(&o, PH_COPY_ENCRYPT, 1, T_ONE, cb_enc, NULL));
    ph_copy_options_default(&o, PH_COPY_CSV);
    o.quote = ',';
    assert_null(ph_copy_xform_new(&o, PH_COPY_ENCRYPT, 1, T_ONE, cb_enc, NULL));
    ph_copy_options_default(&o, PH_COPY_CSV);
    o.null_s = "\"";
    assert_null(ph_copy_xform_new(&o, PH_COPY_ENCRYPT, 1, T_ONE, cb_enc, NULL));
    ph_copy_options_default(&o, PH_COPY_CSV);
    assert_null(ph_copy_xform_new(&o, PH_COPY_ENCRYPT, -1, T_ONE, cb_enc, NULL));
    assert_null(ph_copy_xform_new(&o, PH_COPY_ENCRYPT, 1, NULL, cb_enc, NULL));
    assert_null(ph_copy_xform_new(&o, PH_COPY_ENCRYPT, 1, T_ONE, NULL, NULL));
    /* CSV allows letters and digits as delimiters */
    o.delimiter = 'a';
    ph_copy_xform *x = ph_copy_xform_new(&o, PH_COPY_ENCRYPT, 1, T_ONE, cb_enc, NULL);
    assert_non_null(x);
    ph_copy_xform_free(x);
    ph_copy_xform_free(NULL);
}

static void test_csv_odd_delimiter(void **state)
{
    (void)state;
    /* a hex digit as the CSV delimiter: encrypted values are quoted */
    spec sp = csv_spec(PH_COPY_ENCRYPT, 2, T_ALL);
    sp.o.delimiter = '4';
    char *want = expand("\"{a}\"4\"{b}\"\n", false);
    check_bytes(&sp, "a4b\n", 4, want, strlen(want));
    /* and read back */
    spec dec = csv_spec(PH_COPY_DECRYPT, 2, T_ALL);
    dec.o.delimiter = '4';
    check_bytes(&dec, want, strlen(want), "a4b\n", 4);
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_encrypt_basic),
        cmocka_unit_test(test_text_encrypt_escapes),
        cmocka_unit_test(test_text_decrypt),
        cmocka_unit_test(test_text_decrypt_bytea_errors),
        cmocka_unit_test(test_text_round_trip),
        cmocka_unit_test(test_text_untransformed_identical),
        cmocka_unit_test(test_text_line_endings),
        cmocka_unit_test(test_text_end_marker),
        cmocka_unit_test(test_text_header),
        cmocka_unit_test(test_text_column_count),
        cmocka_unit_test(test_text_nul_byte),
        cmocka_unit_test(test_csv_encrypt),
        cmocka_unit_test(test_csv_null_string),
        cmocka_unit_test(test_csv_quote_escape),
        cmocka_unit_test(test_csv_decrypt),
        cmocka_unit_test(test_csv_round_trip),
        cmocka_unit_test(test_csv_header_and_marker),
        cmocka_unit_test(test_csv_untransformed_identical),
        cmocka_unit_test(test_csv_odd_delimiter),
        cmocka_unit_test(test_binary_round_trip),
        cmocka_unit_test(test_binary_header_errors),
        cmocka_unit_test(test_binary_tuple_errors),
        cmocka_unit_test(test_binary_callback_null),
        cmocka_unit_test(test_many_rows_and_long_rows),
        cmocka_unit_test(test_large_value_then_small),
        cmocka_unit_test(test_callback_failure),
        cmocka_unit_test(test_max_row),
        cmocka_unit_test(test_encrypted_null_collision),
        cmocka_unit_test(test_options_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
