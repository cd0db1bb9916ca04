/*
 * test_rewrite_shape.c — statement shapes (src/rewrite/rw_shape.c): the
 * shape-key scanner (what it masks, what makes a text unshapeable, the
 * fixed-point property), when a shape is made and when not (a value the
 * analyzer reads, statements other than SELECT/INSERT/UPDATE/DELETE, literal
 * forms the scanner cannot decode exactly), and that replaying a shape on a
 * text with other literal values gives exactly what the full analysis gives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_rewrite_fixture.h"

/* ---- the key scanner ------------------------------------------------------------ */

static void key_is(const char *sql, const char *want)
{
    char *key = NULL, *again = NULL;
    size_t kl = 0, al = 0;
    if (ph_rw_shape_key(sql, strlen(sql), &key, &kl) != 0)
        fail_msg("%s\n  unexpectedly unshapeable", sql);
    if (strcmp(key, want) != 0 || kl != strlen(want))
        fail_msg("%s\n  key:  %s\n  want: %s", sql, key, want);
    assert_int_equal(ph_rw_shape_key(key, kl, &again, &al), 0); /* a fixed point */
    assert_string_equal(again, key);
    free(key);
    free(again);
}

static void unshapeable(const char *sql)
{
    char *key = (char *)"untouched";
    size_t kl = 0;
    if (ph_rw_shape_key(sql, strlen(sql), &key, &kl) == 0)
        fail_msg("%s\n  unexpectedly shapeable: %s", sql, key);
    assert_null(key);
}

static void test_key_masks_literals(void **state)
{
    (void)state;
    key_is("SELECT * FROM customers WHERE email = 'a@b.example'",
           "SELECT * FROM customers WHERE email = ''");
    key_is("select 'it''s', 42, 007, 3.25, .5, 7., 99999999999 from t",
           "select '', 0, 0, 0.0, .0, 0., 0.0 from t");
    /* int4 vs larger integers keep PostgreSQL's ICONST / FCONST classes */
    key_is("select 2147483647, 2147483648", "select 0, 0.0");
    /* not literals: identifiers with digits, parameters, exponents, qualified names */
    key_is("select t1.c2, $1, $12, 1e5, 1.5e-3 from t1",
           "select t1.c2, $1, $12, 1e5, 1.5e-0 from t1");
    key_is("select a.5 from t", "select a.0 from t");
    /* comments and quoted identifiers are kept, quotes inside them ignored */
    key_is("select \"it's\" /* 'x' /* nested 'y' */ */, 1 -- 'z'\nfrom t where a = 'q'",
           "select \"it's\" /* 'x' /* nested 'y' */ */, 0 -- 'z'\nfrom t where a = ''");
    key_is("select \"a\"\"b\", 'x' from t", "select \"a\"\"b\", '' from t");
    key_is("", "");
}

static void test_key_unshapeable(void **state)
{
    (void)state;
    unshapeable("select $$it's$$"); /* dollar quotes */
    unshapeable("select $tag$x$tag$");
    unshapeable("select E'a\\'b'");       /* escape strings */
    unshapeable("select B'0101', X'ff'"); /* bit strings */
    unshapeable("select N'x'");           /* national */
    unshapeable("select U&'d\\0061t'");   /* unicode escapes */
    unshapeable("select U&\"d\\0061t\"");
    unshapeable("select date'2024-01-01'"); /* a type glued to its string */
    unshapeable("select 'a'\n'b'");         /* continued on the next line */
    unshapeable("select 'a' -- c\n 'b'");
    unshapeable("select 'unterminated");
    unshapeable("select \"unterminated");
    unshapeable("select /* unterminated");
    char nul[] = "select 'a\0b'";
    char *key = NULL;
    size_t kl;
    assert_int_equal(ph_rw_shape_key(nul, sizeof nul - 1, &key, &kl), -1);
}

/* ---- making and replaying shapes ----------------------------------------------- */

static ph_rw_shape *shape_of(const char *sql, ph_rw_result *r)
{
    ph_rw_shape *sh = (ph_rw_shape *)r; /* anything non-NULL: must be overwritten */
    fake_crypto fc = {0};
    ph_rw_options opt = {.encrypt = fake_encrypt, .encrypt_ud = &fc, .shape_out = &sh};
    ph_rewrite(S, sql, strlen(sql), &opt, r);
    return sh;
}

static void assert_same(const ph_rw_result *a, const ph_rw_result *b)
{
    assert_int_equal(a->status, b->status);
    if (a->sql || b->sql) {
        assert_non_null(a->sql);
        assert_non_null(b->sql);
        assert_string_equal(a->sql, b->sql);
        assert_int_equal(a->sql_len, b->sql_len);
    }
    assert_int_equal(a->nparams, b->nparams);
    for (int i = 0; i < a->nparams; i++)
        assert_ptr_equal(a->params[i], b->params[i]);
    assert_int_equal(a->nstmts, b->nstmts);
    for (size_t i = 0; i < a->nstmts; i++) {
        assert_int_equal(a->stmts[i].kind, b->stmts[i].kind);
        assert_int_equal(a->stmts[i].touches_protected, b->stmts[i].touches_protected);
        assert_int_equal(a->stmts[i].noutputs, b->stmts[i].noutputs);
        for (size_t k = 0; k < a->stmts[i].noutputs; k++) {
            assert_ptr_equal(a->stmts[i].outputs[k].col, b->stmts[i].outputs[k].col);
            assert_int_equal(a->stmts[i].outputs[k].star, b->stmts[i].outputs[k].star);
        }
    }
    assert_int_equal(a->touches_protected, b->touches_protected);
    assert_int_equal(a->cacheable, b->cacheable);
}

/* `first` makes a shape; `other` (the same statement with other literal
 * values) replayed through it equals its full analysis, and says tmpl. */
static void replays(const char *first, const char *other, const char *tmpl)
{
    ph_rw_result r1, full, shaped;
    ph_rw_shape *sh = shape_of(first, &r1);
    if (!sh)
        fail_msg("%s\n  no shape made", first);
    fake_crypto fc = {0};
    ph_rw_options opt = {.encrypt = fake_encrypt, .encrypt_ud = &fc};
    assert_int_equal(ph_rewrite(S, other, strlen(other), &opt, &full), PH_RW_OK);
    int calls_full = fc.calls;
    fc.calls = 0;
    assert_int_equal(ph_rewrite_shaped(sh, other, strlen(other), &opt, &shaped), PH_RW_OK);
    assert_int_equal(fc.calls, calls_full);
    assert_same(&full, &shaped);
    char *want = expand_expected(tmpl);
    assert_non_null(shaped.sql);
    assert_string_equal(shaped.sql, want);
    free(want);
    /* the key lookup's scan handed over gives the same; a scan of another
     * text (first: same key, other offsets) is ignored */
    const char *scanned_of[2] = {other, first};
    for (int i = 0; i < 2; i++) {
        ph_rw_scanned *sc = ph_rw_scan(scanned_of[i], strlen(scanned_of[i]));
        assert_non_null(sc);
        assert_string_equal(ph_rw_scanned_key(sc, NULL), ph_rw_shape_key_of(sh));
        ph_rw_result via;
        opt.scanned = sc;
        assert_int_equal(ph_rewrite_shaped(sh, other, strlen(other), &opt, &via), PH_RW_OK);
        assert_same(&shaped, &via);
        ph_rw_result_free(&via);
        ph_rw_scanned_free(sc);
    }
    ph_rw_result_free(&r1);
    ph_rw_result_free(&full);
    ph_rw_result_free(&shaped);
    ph_rw_shape_free(sh);
}

static void test_replay(void **state)
{
    (void)state;
    replays("SELECT id, email FROM customers WHERE email = 'a@x.example'",
            "SELECT id, email FROM customers WHERE email = 'it''s@y.example'",
            "SELECT id, email FROM customers WHERE email = {customers.email:it's@y.example}");
    /* values of other lengths move the later edits; plain literals stay as sent */
    replays("INSERT INTO customers (id, email, plan_tier, age, full_name) VALUES "
            "(1, 'a', 'free', 30, 'A')",
            "INSERT INTO customers (id, email, plan_tier, age, full_name) VALUES "
            "(123456, 'longer@example', 'enterprise', 0042, 'Zoë Müller')",
            "INSERT INTO customers (id, email, plan_tier, age, full_name) VALUES "
            "(123456, {customers.email:longer@example}, 'enterprise', {customers.age:42}, "
            "{customers.full_name:Zoë Müller})");
    /* a cast around the literal is replaced along with it; params keep their plan */
    replays("UPDATE customers SET phone = '1'::text WHERE email = $1 AND signup_day < '2024-01-01'",
            "UPDATE customers SET phone = '+49 30 1234'::text WHERE email = $1 AND "
            "signup_day < '2023-12-31'",
            "UPDATE customers SET phone = {customers.phone:+49 30 1234} WHERE email = $1 AND "
            "signup_day < {customers.signup_day:2023-12-31}");
    replays("SELECT p.amount FROM payments p JOIN customers c ON c.email = p.customer_email "
            "WHERE p.paid_on BETWEEN '2024-01-01' AND '2024-02-01' AND c.email IN ('a', 'b')",
            "SELECT p.amount FROM payments p JOIN customers c ON c.email = p.customer_email "
            "WHERE p.paid_on BETWEEN '2025-01-01' AND '2025-12-31' AND c.email IN ('c', 'dd')",
            "SELECT p.amount FROM payments p JOIN customers c ON c.email = p.customer_email "
            "WHERE p.paid_on BETWEEN {payments.paid_on:2025-01-01} AND "
            "{payments.paid_on:2025-12-31} AND c.email IN ({customers.email:c}, "
            "{customers.email:dd})");
}

static void test_replay_other_key_fails_closed(void **state)
{
    (void)state;
    ph_rw_result r, out;
    ph_rw_shape *sh = shape_of("SELECT * FROM customers WHERE email = 'a'", &r);
    assert_non_null(sh);
    ph_rw_options opt = {.encrypt = fake_encrypt};
    const char *other = "SELECT * FROM customers WHERE phone = 'a'";
    assert_int_equal(ph_rewrite_shaped(sh, other, strlen(other), &opt, &out), PH_RW_INTERNAL_ERROR);
    assert_null(out.sql);
    assert_null(out.stmts);
    ph_rw_result_free(&out);
    const char *scs = "SELECT * FROM customers WHERE email = 'b'";
    opt.standard_conforming_strings_off = 1;
    assert_int_equal(ph_rewrite_shaped(sh, scs, strlen(scs), &opt, &out), PH_RW_INTERNAL_ERROR);
    ph_rw_result_free(&out);
    ph_rw_result_free(&r);
    ph_rw_shape_free(sh);
}

static void no_shape(const char *sql)
{
    ph_rw_result r;
    ph_rw_shape *sh = shape_of(sql, &r);
    if (sh)
        fail_msg("%s\n  unexpectedly shaped: %s", sql, ph_rw_shape_key_of(sh));
    ph_rw_result_free(&r);
}

static void test_no_shape(void **state)
{
    (void)state;
    /* the analyzer reads a value: ORDER BY / GROUP BY positions */
    no_shape("SELECT email, age FROM customers ORDER BY 2");
    no_shape("SELECT email FROM customers GROUP BY 1");
    /* literal forms whose value the scanner would not decode like PostgreSQL */
    no_shape("SELECT * FROM customers WHERE age = -5");
    no_shape("SELECT * FROM customers WHERE age = 1e1");
    no_shape("SELECT * FROM customers WHERE email = E'a\\\\b'");
    no_shape("INSERT INTO customers (id, email) VALUES (1, $$x$$)");
    /* not a SELECT/INSERT/UPDATE/DELETE */
    no_shape("COPY customers (email) FROM STDIN WITH (FORMAT csv, DELIMITER ';')");
    no_shape("CREATE TABLE t2 (LIKE customers)");
    no_shape("EXPLAIN SELECT * FROM customers WHERE email = 'a'");
    /* refused or broken */
    no_shape("SELECT * FROM customers WHERE email LIKE 'a%'");
    no_shape("SELECT * FROM customers WHERE");
    /* standard_conforming_strings off */
    ph_rw_result r;
    ph_rw_shape *sh = (ph_rw_shape *)&r;
    ph_rw_options opt = {
        .encrypt = fake_encrypt, .standard_conforming_strings_off = 1, .shape_out = &sh};
    const char *sql = "SELECT * FROM customers WHERE email = 'a'";
    assert_int_equal(ph_rewrite(S, sql, strlen(sql), &opt, &r), PH_RW_OK);
    assert_null(sh);
    ph_rw_result_free(&r);
}

static void test_shape_holds_no_values(void **state)
{
    (void)state;
    ph_rw_result r;
    ph_rw_shape *sh = shape_of("SELECT id FROM customers WHERE email = 'secret@x.example' AND "
                               "plan_tier = 'gold' LIMIT 25",
                               &r);
    assert_non_null(sh);
    const char *key = ph_rw_shape_key_of(sh);
    assert_null(strstr(key, "secret"));
    assert_null(strstr(key, "gold"));
    assert_null(strstr(key, "25"));
    assert_string_equal(key,
                        "SELECT id FROM customers WHERE email = '' AND plan_tier = '' LIMIT 0");
    ph_rw_result_free(&r);
    ph_rw_shape_free(sh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_masks_literals),
        cmocka_unit_test(test_key_unshapeable),
        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_replay_other_key_fails_closed),
        cmocka_unit_test(test_no_shape),
        cmocka_unit_test(test_shape_holds_no_values),
    };
    return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
