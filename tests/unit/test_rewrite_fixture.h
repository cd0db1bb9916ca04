/*
 * test_rewrite_fixture.h — shared fixture for the rewriter's unit tests
 * (test_rewrite.c, test_rewrite_refuse.c): the seed's financial-SaaS
 * encryption schema, a fake encryption callback whose "ciphertext" is the
 * readable bytes ENC(<column>:<value>), and helpers that expand expected
 * texts written as {table.column:value} into '\x<hex>'::bytea literals.
 */
#ifndef PHANTOM_TEST_REWRITE_FIXTURE_H
#define PHANTOM_TEST_REWRITE_FIXTURE_H

#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite/rewrite.h"

static const char fixture_yaml[] = "listen: 127.0.0.1:6432\n"
                                   "encrypt:\n"
                                   "  customers:\n"
                                   "    - email: deterministic\n"
                                   "    - full_name\n"
                                   "    - phone\n"
                                   "    - tax_id\n"
                                   "    - column: address\n"
                                   "      type: jsonb\n"
                                   "    - column: signup_day\n"
                                   "      mode: ope\n"
                                   "      type: date\n"
                                   "    - column: age\n"
                                   "      mode: ope\n"
                                   "      type: int4\n"
                                   "  payments:\n"
                                   "    - column: customer_email\n"
                                   "      mode: deterministic\n"
                                   "      key: customers.email\n"
                                   "    - card_number\n"
                                   "    - column: paid_on\n"
                                   "      mode: ope\n"
                                   "      type: date\n"
                                   "    - column: card_token\n"
                                   "      mode: token\n"
                                   "      format: card\n"
                                   "  sales.leads:\n"
                                   "    - contact: deterministic\n";

typedef struct {
    int calls;
    int fail;     /* make the callback fail */
    int versions; /* live key versions of every key domain (0 or 1: one) */
    int eq_calls; /* calls of fake_encrypt_eq */
} fake_crypto;

/* Ciphertext = "ENC(" qualified ":" value ")"; fails on request. */
static inline int fake_encrypt(void *ud, const ph_schema_column *col, const char *v, size_t len,
                               ph_buf *out, char *err, size_t errlen)
{
    fake_crypto *fc = ud;
    if (fc) {
        fc->calls++;
        if (fc->fail) {
            snprintf(err, errlen, "key unavailable");
            return -1;
        }
    }
    if (v[len] != '\0')
        return -1; /* the contract: NUL-terminated */
    if (ph_buf_append(out, "ENC(", 4) ||
        ph_buf_append(out, col->qualified, strlen(col->qualified)) || ph_buf_append(out, ":", 1) ||
        ph_buf_append(out, v, len) || ph_buf_append(out, ")", 1))
        return -1;
    return 0;
}

/* Key rotation: fc->versions live versions per key domain. */
static inline int fake_eq_versions(void *ud, const ph_schema_column *col)
{
    const fake_crypto *fc = ud;
    (void)col;
    return fc ? fc->versions : 1;
}

/* Version 1's ciphertext is fake_encrypt's, version k's ENC(<column>:<value>#k). */
static inline int fake_encrypt_eq(void *ud, const ph_schema_column *col, const char *v, size_t len,
                                  ph_buf *out, size_t *lens, size_t max, char *err, size_t errlen)
{
    fake_crypto *fc = ud;
    int n = fc && fc->versions > 1 ? fc->versions : 1;
    if (fc)
        fc->eq_calls++;
    if ((size_t)n > max)
        return -1;
    for (int k = 1; k <= n; k++) {
        size_t at = out->len;
        if (fake_encrypt(ud, col, v, len, out, err, errlen) != 0)
            return -1;
        if (k > 1) {
            char suffix[16];
            int sl = snprintf(suffix, sizeof suffix, "#%d)", k);
            out->len--; /* the ')' */
            if (ph_buf_append(out, suffix, (size_t)sl))
                return -1;
        }
        lens[k - 1] = out->len - at;
    }
    return n;
}

static inline ph_schema *fixture_schema(void)
{
    ph_schema *s = NULL;
    char err[256];
    if (ph_schema_load_buffer(&s, fixture_yaml, strlen(fixture_yaml), "fixture.yaml", err,
                              sizeof err) != 0) {
        fprintf(stderr, "fixture schema: %s\n", err);
        abort();
    }
    return s;
}

/* Expands {table.column:value} into '\x<hex of ENC(table.column:value)>'::bytea. */
static inline char *expand_expected(const char *tmpl)
{
    static const char hexd[] = "0123456789abcdef";
    size_t cap = strlen(tmpl) * 4 + 64, o = 0;
    char *out = malloc(cap);
    if (!out)
        abort();
    for (const char *p = tmpl; *p;) {
        if (*p != '{') {
            out[o++] = *p++;
            continue;
        }
        const char *end = strchr(p, '}');
        if (!end)
            abort();
        char plain[512];
        int n = snprintf(plain, sizeof plain, "ENC(%.*s)", (int)(end - p - 1), p + 1);
        if (n < 0 || (size_t)n >= sizeof plain)
            abort();
        if (o + 3 + (size_t)n * 2 + 10 >= cap) {
            cap = cap * 2 + (size_t)n * 2 + 16;
            if (!(out = realloc(out, cap)))
                abort();
        }
        memcpy(out + o, "'\\x", 3);
        o += 3;
        for (int i = 0; i < n; i++) {
            out[o++] = hexd[(unsigned char)plain[i] >> 4];
            out[o++] = hexd[(unsigned char)plain[i] & 15];
        }
        memcpy(out + o, "'::bytea", 8);
        o += 8;
        p = end + 1;
        if (o + 16 >= cap && !(out = realloc(out, cap *= 2)))
            abort();
    }
    out[o] = '\0';
    return out;
}

/* The schema every test of a file uses (cmocka group setup/teardown). */
static ph_schema *S;

static inline int fixture_setup(void **state)
{
    (void)state;
    S = fixture_schema();
    return 0;
}

static inline int fixture_teardown(void **state)
{
    (void)state;
    ph_schema_free(S);
    return 0;
}

/* Runs the rewriter with the fake callback. */
static inline ph_rw_status fixture_rewrite(const ph_schema *s, const char *sql, ph_rw_result *r)
{
    fake_crypto fc = {0};
    ph_rw_options opt = {.encrypt = fake_encrypt, .encrypt_ud = &fc};
    return ph_rewrite(s, sql, strlen(sql), &opt, r);
}

/* 1 when text parses as SQL (every rewritten statement must). */
static inline int parses(const char *sql)
{
    PgQueryParseResult pr = pg_query_parse(sql);
    int ok = pr.error == NULL;
    pg_query_free_parse_result(pr);
    return ok;
}

#endif
