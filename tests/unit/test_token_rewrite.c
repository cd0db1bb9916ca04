/*
 * test_token_rewrite.c — the rewriter for token columns (src/rewrite/):
 * stored literals go to the encrypt callback (a token is made), compared
 * ones to the lookup callback (nothing is made), both spliced as string
 * literals '...' (quotes doubled) instead of bytea; parameters are marked
 * as lookups only when never stored; shapes replay the same choice; what
 * token mode cannot do is refused naming the column and mode; DDL declares
 * token columns as text and keeps UNIQUE.
 */
#include <pg_query.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rewrite/rewrite.h"

static const char yaml[] =
    "encrypt:\n"
    "  customers:\n"
    "    - email: deterministic\n"
    "    - {column: tax_id, mode: token, format: digits}\n"
    "    - {column: contact, mode: token, format: email}\n"
    "  payments:\n"
    "    - {column: card, mode: token, format: card}\n"
    "    - {column: backup_card, mode: token, format: card, key: payments.card}\n"
    "    - {column: note, mode: token}\n";

static ph_schema *S;

typedef struct calls {
    int encrypt, lookup;
} calls;

/* encrypt: T<value>; lookup: L<value>; a value "quote" gives a token with a quote. */
static int put(ph_buf *out, char tag, const char *v, size_t len)
{
    if (strcmp(v, "quote") == 0)
        return ph_buf_append(out, "it's", 4);
    return ph_buf_append_u8(out, (uint8_t)tag) || ph_buf_append(out, v, len) ? -1 : 0;
}

static int cb_encrypt(void *ud, const ph_schema_column *col, const char *v, size_t len, ph_buf *out,
                      char *err, size_t errlen)
{
    (void)col;
    (void)err;
    (void)errlen;
    ((calls *)ud)->encrypt++;
    return put(out, 'T', v, len);
}

static int cb_lookup(void *ud, const ph_schema_column *col, const char *v, size_t len, ph_buf *out,
                     char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    assert_int_equal(col->mode, PH_MODE_TOKEN); /* only token columns are looked up */
    ((calls *)ud)->lookup++;
    return put(out, 'L', v, len);
}

static int setup(void **state)
{
    (void)state;
    char err[256];
    if (ph_schema_load_buffer(&S, yaml, strlen(yaml), "t.yaml", err, sizeof err) != 0)
        fail_msg("%s", err);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ph_schema_free(S);
    return 0;
}

static ph_rw_status rewrite(const char *sql, calls *c, ph_rw_result *r, ph_rw_shape **shape)
{
    ph_rw_options o = {
        .encrypt = cb_encrypt, .encrypt_ud = c, .lookup = cb_lookup, .shape_out = shape};
    return ph_rewrite(S, sql, strlen(sql), &o, r);
}

static void check(const char *sql, const char *want, int n_encrypt, int n_lookup)
{
    calls c = {0};
    ph_rw_result r;
    ph_rw_status st = rewrite(sql, &c, &r, NULL);
    if (st != PH_RW_OK)
        fail_msg("%s: %s", sql, r.message);
    if (!r.sql || strcmp(r.sql, want) != 0)
        fail_msg("%s\n  got:  %s\n  want: %s", sql, r.sql ? r.sql : "(unchanged)", want);
    assert_int_equal(c.encrypt, n_encrypt);
    assert_int_equal(c.lookup, n_lookup);
    PgQueryParseResult pr = pg_query_parse(r.sql);
    assert_null(pr.error);
    pg_query_free_parse_result(pr);
    ph_rw_result_free(&r);
}

static void refused(const char *sql, const char *needle)
{
    calls c = {0};
    ph_rw_result r;
    assert_int_equal(rewrite(sql, &c, &r, NULL), PH_RW_REFUSED);
    assert_string_equal(r.sqlstate, "0A000");
    if (!strstr(r.message, needle))
        fail_msg("%s: message \"%s\" lacks \"%s\"", sql, r.message, needle);
    assert_non_null(strstr(r.message, "(token)"));
    assert_int_equal(c.encrypt + c.lookup, 0);
    ph_rw_result_free(&r);
}

static void test_literals(void **state)
{
    (void)state;
    check("INSERT INTO payments (id, card) VALUES (1, '4111111111111111')",
          "INSERT INTO payments (id, card) VALUES (1, 'T4111111111111111')", 1, 0);
    check("SELECT id FROM payments WHERE card = '4111111111111111'",
          "SELECT id FROM payments WHERE card = 'L4111111111111111'", 0, 1);
    check("SELECT id FROM payments WHERE card IN ('1', '2') OR card <> '3'",
          "SELECT id FROM payments WHERE card IN ('L1', 'L2') OR card <> 'L3'", 0, 3);
    check("SELECT 1 FROM payments WHERE card = ANY (ARRAY['1', '2']) AND card NOT IN ('3')",
          "SELECT 1 FROM payments WHERE card = ANY (ARRAY['L1', 'L2']) AND card NOT IN ('L3')", 0,
          3);
    check("SELECT 1 FROM payments WHERE '1' = card", "SELECT 1 FROM payments WHERE 'L1' = card", 0,
          1);
    check("INSERT INTO payments (id, card) VALUES (1, '1') ON CONFLICT (card) DO UPDATE SET "
          "note = 'n'",
          "INSERT INTO payments (id, card) VALUES (1, 'T1') ON CONFLICT (card) DO UPDATE SET "
          "note = 'Tn'",
          2, 0);
    check("UPDATE payments SET card = 'a' WHERE card = 'b'",
          "UPDATE payments SET card = 'Ta' WHERE card = 'Lb'", 1, 1);
    check("SELECT * FROM customers WHERE contact = 'x'::text AND tax_id IS NOT NULL",
          "SELECT * FROM customers WHERE contact = 'Lx' AND tax_id IS NOT NULL", 0, 1);
    check("INSERT INTO payments (id, note) VALUES (2, 'quote')",
          "INSERT INTO payments (id, note) VALUES (2, 'it''s')", 1, 0);
    /* a deterministic column next to them keeps its bytea literal */
    calls c = {0};
    ph_rw_result r;
    assert_int_equal(
        rewrite("SELECT 1 FROM customers WHERE email = 'e' AND tax_id = '1234'", &c, &r, NULL),
        PH_RW_OK);
    assert_non_null(strstr(r.sql, "'::bytea AND tax_id = 'L1234'"));
    assert_int_equal(c.encrypt, 1);
    assert_int_equal(c.lookup, 1);
    ph_rw_result_free(&r);
    /* equality joins within one key domain compare tokens */
    calls c2 = {0};
    assert_int_equal(rewrite("SELECT 1 FROM payments a JOIN payments b ON a.card = b.backup_card",
                             &c2, &r, NULL),
                     PH_RW_OK);
    ph_rw_result_free(&r);
}

static void test_params(void **state)
{
    (void)state;
    calls c = {0};
    ph_rw_result r;
    assert_int_equal(rewrite("SELECT id FROM payments WHERE card = $1 AND id = $2", &c, &r, NULL),
                     PH_RW_OK);
    assert_int_equal(r.nparams, 2);
    assert_non_null(r.params[0]);
    assert_null(r.params[1]);
    assert_non_null(r.param_lookup);
    assert_int_equal(r.param_lookup[0], 1);
    assert_int_equal(r.param_lookup[1], 0);
    ph_rw_result_free(&r);
    assert_int_equal(rewrite("INSERT INTO payments (id, card) VALUES ($1, $2)", &c, &r, NULL),
                     PH_RW_OK);
    assert_null(r.param_lookup); /* stored: tokens are made */
    ph_rw_result_free(&r);
    /* stored and compared: stored wins (a token is made) */
    assert_int_equal(
        rewrite("UPDATE payments SET card = $1 WHERE card = $1 OR card = $2", &c, &r, NULL),
        PH_RW_OK);
    assert_non_null(r.param_lookup);
    assert_int_equal(r.param_lookup[0], 0);
    assert_int_equal(r.param_lookup[1], 1);
    ph_rw_result_free(&r);
}

/* A shape made from one text replays on another with the same choices. */
static void test_shape_replay(void **state)
{
    (void)state;
    calls c = {0};
    ph_rw_result r;
    ph_rw_shape *sh = NULL;
    const char *a = "UPDATE payments SET card = '1111' WHERE card = '2222'";
    const char *b = "UPDATE payments SET card = '3333' WHERE card = '4444'";
    assert_int_equal(rewrite(a, &c, &r, &sh), PH_RW_OK);
    assert_non_null(sh);
    ph_rw_result_free(&r);
    calls c2 = {0};
    ph_rw_options o = {.encrypt = cb_encrypt, .encrypt_ud = &c2, .lookup = cb_lookup};
    assert_int_equal(ph_rewrite_shaped(sh, b, strlen(b), &o, &r), PH_RW_OK);
    assert_string_equal(r.sql, "UPDATE payments SET card = 'T3333' WHERE card = 'L4444'");
    assert_int_equal(c2.encrypt, 1);
    assert_int_equal(c2.lookup, 1);
    ph_rw_result_free(&r);
    ph_rw_shape_free(sh);
    sh = NULL;
    assert_int_equal(rewrite("SELECT 1 FROM payments WHERE card = $1", &c, &r, &sh), PH_RW_OK);
    ph_rw_result_free(&r);
    assert_non_null(sh);
    const char *p = "SELECT 1 FROM payments WHERE card = $1";
    assert_int_equal(ph_rewrite_shaped(sh, p, strlen(p), &o, &r), PH_RW_OK);
    assert_non_null(r.param_lookup);
    assert_int_equal(r.param_lookup[0], 1);
    ph_rw_result_free(&r);
    ph_rw_shape_free(sh);
}

/* Without a lookup callback, encrypt serves both uses. */
static void test_no_lookup_callback(void **state)
{
    (void)state;
    calls c = {0};
    ph_rw_result r;
    ph_rw_options o = {.encrypt = cb_encrypt, .encrypt_ud = &c};
    const char *q = "SELECT 1 FROM payments WHERE card = 'x'";
    assert_int_equal(ph_rewrite(S, q, strlen(q), &o, &r), PH_RW_OK);
    assert_string_equal(r.sql, "SELECT 1 FROM payments WHERE card = 'Tx'");
    ph_rw_result_free(&r);
}

static void test_refusals(void **state)
{
    (void)state;
    refused("SELECT id FROM payments WHERE card LIKE '4111%'", "LIKE");
    refused("SELECT id FROM payments WHERE card > '4'", "payments.card");
    refused("SELECT id FROM payments WHERE card BETWEEN '1' AND '2'", "payments.card");
    refused("SELECT id FROM payments ORDER BY card", "ORDER BY");
    refused("SELECT card, count(*) FROM payments GROUP BY card", "GROUP BY");
    refused("SELECT DISTINCT card FROM payments", "payments.card");
    refused("SELECT upper(card) FROM payments", "payments.card");
    refused("SELECT id FROM payments WHERE card || 'x' = 'y'", "payments.card");
    refused("SELECT 1 FROM payments p JOIN customers c ON p.card = c.tax_id", "key domain");
}

static void test_ddl(void **state)
{
    (void)state;
    check("CREATE TABLE payments (id int PRIMARY KEY, card varchar(19) NOT NULL UNIQUE, note text)",
          "CREATE TABLE payments (id int PRIMARY KEY, card text NOT NULL UNIQUE, note text)", 0, 0);
    check("ALTER TABLE payments ADD COLUMN backup_card text",
          "ALTER TABLE payments ADD COLUMN backup_card text", 0, 0);
    calls c = {0};
    ph_rw_result r;
    assert_int_equal(rewrite("CREATE TABLE payments (id int, card bytea)", &c, &r, NULL),
                     PH_RW_REFUSED);
    ph_rw_result_free(&r);
    assert_int_equal(rewrite("CREATE TABLE payments (id int, card text DEFAULT 'x')", &c, &r, NULL),
                     PH_RW_REFUSED);
    ph_rw_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literals),     cmocka_unit_test(test_params),
        cmocka_unit_test(test_shape_replay), cmocka_unit_test(test_no_lookup_callback),
        cmocka_unit_test(test_refusals),     cmocka_unit_test(test_ddl),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
