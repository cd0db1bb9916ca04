/*
 * test_rewrite_rotation.c — deterministic lookups during a DEK rotation
 * (rewrite.h, "Key rotation"): with two live key versions per key domain, a
 * literal compared with a deterministic column is spliced as the ciphertexts
 * of both versions (= ANY, <> ALL, IN / NOT IN lists, a literal on the left
 * moved to the right), parameters become ANY ($n) / ALL ($n) / $n[k] and are
 * reported as bytea[] parameters, forms that cannot match every version are
 * refused, stored values keep one ciphertext, one version changes nothing,
 * and shapes replay all of it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_rewrite_fixture.h"

static ph_rw_options rot_options(fake_crypto *fc, ph_rw_shape **shape_out)
{
    return (ph_rw_options){.encrypt = fake_encrypt,
                           .encrypt_ud = fc,
                           .eq_versions = fake_eq_versions,
                           .encrypt_eq = fake_encrypt_eq,
                           .shape_out = shape_out};
}

/* Rewrites sql with `versions` live versions; expects tmpl ({col:value}
 * expanded as in test_rewrite.c; NULL: the text unchanged). */
static void rewrites_v(int versions, const char *sql, const char *tmpl)
{
    fake_crypto fc = {.versions = versions};
    ph_rw_options opt = rot_options(&fc, NULL);
    ph_rw_result r;
    ph_rw_status st = ph_rewrite(S, sql, strlen(sql), &opt, &r);
    if (st != PH_RW_OK)
        fail_msg("%s\n  status %d: %s", sql, st, r.message);
    if (!tmpl) {
        if (r.sql)
            fail_msg("%s\n  unexpectedly rewritten: %s", sql, r.sql);
    } else {
        char *want = expand_expected(tmpl);
        if (!r.sql || strcmp(r.sql, want) != 0)
            fail_msg("%s\n  got:  %s\n  want: %s", sql, r.sql ? r.sql : "(unchanged)", want);
        assert_int_equal(strlen(r.sql), r.sql_len);
        assert_true(parses(r.sql));
        free(want);
    }
    ph_rw_result_free(&r);
}

static void rewrites(const char *sql, const char *tmpl)
{
    rewrites_v(2, sql, tmpl);
}

static void refused(const char *sql, const char *needle)
{
    fake_crypto fc = {.versions = 2};
    ph_rw_options opt = rot_options(&fc, NULL);
    ph_rw_result r;
    ph_rw_status st = ph_rewrite(S, sql, strlen(sql), &opt, &r);
    if (st != PH_RW_REFUSED)
        fail_msg("%s\n  not refused (status %d) %s", sql, st, r.sql ? r.sql : "");
    assert_string_equal(r.sqlstate, "0A000");
    if (!strstr(r.message, needle))
        fail_msg("%s\n  message: %s\n  lacks:   %s", sql, r.message, needle);
    assert_null(r.sql);
    assert_null(r.params);
    assert_null(r.param_multi);
    ph_rw_result_free(&r);
}

#define E2(v) "{customers.email:" v "}, {customers.email:" v "#2}"

static void test_literal_forms(void **state)
{
    (void)state;
    rewrites("SELECT id FROM customers WHERE email = 'a@x'",
             "SELECT id FROM customers WHERE email = ANY (ARRAY[" E2("a@x") "])");
    rewrites("SELECT id FROM customers WHERE email <> 'a@x'",
             "SELECT id FROM customers WHERE email <> ALL (ARRAY[" E2("a@x") "])");
    rewrites("SELECT id FROM customers WHERE email != 'a@x'",
             "SELECT id FROM customers WHERE email != ALL (ARRAY[" E2("a@x") "])");
    rewrites("SELECT id FROM customers WHERE email IN ('a', 'b')",
             "SELECT id FROM customers WHERE email IN (" E2("a") ", " E2("b") ")");
    rewrites("SELECT id FROM customers WHERE email NOT IN ('a')",
             "SELECT id FROM customers WHERE email NOT IN (" E2("a") ")");
    rewrites("SELECT id FROM customers WHERE email = ANY (ARRAY['a', 'b'])",
             "SELECT id FROM customers WHERE email = ANY (ARRAY[" E2("a") ", " E2("b") "])");
    rewrites("SELECT id FROM customers WHERE email <> ALL (ARRAY['a'])",
             "SELECT id FROM customers WHERE email <> ALL (ARRAY[" E2("a") "])");
    /* a cast to a compatible type goes with the literal */
    rewrites("SELECT id FROM customers WHERE email = 'a'::text",
             "SELECT id FROM customers WHERE email = ANY (ARRAY[" E2("a") "])");
    /* a column sharing the key domain; three versions */
    rewrites_v(3, "SELECT amount FROM payments WHERE customer_email = 'a'",
               "SELECT amount FROM payments WHERE customer_email = ANY (ARRAY["
               "{payments.customer_email:a}, {payments.customer_email:a#2}, "
               "{payments.customer_email:a#3}])");
}

static void test_literal_on_the_left(void **state)
{
    (void)state;
    rewrites("SELECT id FROM customers WHERE 'a@x' = email",
             "SELECT id FROM customers WHERE email = ANY (ARRAY[" E2("a@x") "])");
    rewrites("SELECT c.id FROM customers c WHERE 'a'::varchar <> c.email AND c.id = 1",
             "SELECT c.id FROM customers c WHERE c.email <> ALL (ARRAY[" E2("a") "]) AND c.id = 1");
    rewrites("SELECT id FROM customers WHERE id = 2 OR 'a'=\"email\"",
             "SELECT id FROM customers WHERE id = 2 OR \"email\"=ANY (ARRAY[" E2("a") "])");
    /* anything but the operator between value and column: cannot be moved */
    refused("SELECT id FROM customers WHERE 'a' = (email)", "key rotation is in progress");
    /* grouping parentheses around the value go with it */
    rewrites("SELECT id FROM customers WHERE ('a') = email",
             "SELECT id FROM customers WHERE email = ANY (ARRAY[" E2("a") "])");
}

/* A parenthesized value: its expansion replaces the grouping parentheses
 * (`= (ANY (...))` and `IN ((c1, c2))` are not what was meant). */
static void test_parenthesized_values(void **state)
{
    (void)state;
    rewrites("SELECT id FROM customers WHERE email =('z') AND email <> ALL (ARRAY['w'])",
             "SELECT id FROM customers WHERE email =ANY (ARRAY[" E2("z") "]) AND email <> ALL "
                                                                         "(ARRAY[" E2("w") "])");
    rewrites("SELECT id FROM customers WHERE email <> (('a'))",
             "SELECT id FROM customers WHERE email <> ALL (ARRAY[" E2("a") "])");
    rewrites("SELECT id FROM customers WHERE email IN (('a'), 'b')",
             "SELECT id FROM customers WHERE email IN (" E2("a") ", " E2("b") ")");
    rewrites("SELECT id FROM customers WHERE email IN ((('a')))",
             "SELECT id FROM customers WHERE email IN (" E2("a") ")");
    rewrites("SELECT id FROM customers WHERE email = ANY (ARRAY[('a')])",
             "SELECT id FROM customers WHERE email = ANY (ARRAY[" E2("a") "])");
    rewrites("SELECT id FROM customers WHERE (email = ('a'))",
             "SELECT id FROM customers WHERE (email = ANY (ARRAY[" E2("a") "]))");
}

static void test_refused_forms(void **state)
{
    (void)state;
    refused("SELECT id FROM customers WHERE email IS DISTINCT FROM 'a'",
            "cannot apply IS DISTINCT FROM to customers.email (deterministic) with a value while "
            "a key rotation is in progress");
    refused("SELECT id FROM customers WHERE email IS NOT DISTINCT FROM 'a'",
            "IS NOT DISTINCT FROM to customers.email");
    refused("SELECT id FROM customers WHERE (email, id) = ('a', 1)", "key rotation");
    refused("SELECT id FROM customers WHERE 'a' IN (email)", "key rotation");
    refused("SELECT id FROM customers WHERE email = ALL (ARRAY['a'])", "key rotation");
    refused("SELECT id FROM customers WHERE email <> ANY (ARRAY['a'])", "key rotation");
    refused("SELECT id FROM customers WHERE 'a' IN (SELECT email FROM customers)", "key rotation");
    refused("SELECT id FROM customers WHERE email IS DISTINCT FROM $1", "key rotation");
    /* a parameter stored and compared cannot be both one value and an array */
    refused("UPDATE customers SET email = $1 WHERE email = $1", "both stored in and compared");
}

static void test_stored_values_single(void **state)
{
    (void)state;
    rewrites("INSERT INTO customers (id, email) VALUES (1, 'a')",
             "INSERT INTO customers (id, email) VALUES (1, {customers.email:a})");
    rewrites("UPDATE customers SET email = 'new' WHERE email = 'old'",
             "UPDATE customers SET email = {customers.email:new} WHERE email = ANY (ARRAY[" E2(
                 "old") "])");
    rewrites("INSERT INTO customers (id, email) VALUES (1, 'a') ON CONFLICT (email) DO UPDATE SET "
             "email = 'b'",
             "INSERT INTO customers (id, email) VALUES (1, {customers.email:a}) ON CONFLICT "
             "(email) DO UPDATE SET email = {customers.email:b}");
    /* other modes: one ciphertext whatever the versions (ope orders per key id) */
    rewrites("SELECT id FROM customers WHERE age = 3 AND full_name IS NULL",
             "SELECT id FROM customers WHERE age = {customers.age:3} AND full_name IS NULL");
    /* column against column: nothing to expand (documented limit for joins) */
    rewrites("SELECT p.id FROM payments p JOIN customers c ON c.email = p.customer_email", NULL);
}

static void test_one_version_unchanged(void **state)
{
    (void)state;
    static const char *const sqls[] = {
        "SELECT id FROM customers WHERE email = 'a' OR 'b' <> email",
        "SELECT id FROM customers WHERE email IN ('a', 'b') AND email IS DISTINCT FROM 'c'",
        "SELECT id FROM customers WHERE email = $1::text AND $2 = email",
        "UPDATE customers SET email = $1 WHERE email = $1",
    };
    for (size_t i = 0; i < sizeof sqls / sizeof sqls[0]; i++) {
        ph_rw_result a, b;
        fake_crypto fc = {.versions = 1};
        ph_rw_options with = rot_options(&fc, NULL);
        ph_rw_options without = {.encrypt = fake_encrypt};
        assert_int_equal(ph_rewrite(S, sqls[i], strlen(sqls[i]), &with, &a), PH_RW_OK);
        assert_int_equal(ph_rewrite(S, sqls[i], strlen(sqls[i]), &without, &b), PH_RW_OK);
        assert_int_equal(fc.eq_calls, 0);
        assert_true((a.sql == NULL) == (b.sql == NULL));
        if (a.sql)
            assert_string_equal(a.sql, b.sql);
        assert_null(a.param_multi);
        ph_rw_result_free(&a);
        ph_rw_result_free(&b);
    }
}

static void params_are(const char *sql, const char *want, int nparams, const unsigned char *multi)
{
    fake_crypto fc = {.versions = 2};
    ph_rw_options opt = rot_options(&fc, NULL);
    ph_rw_result r;
    if (ph_rewrite(S, sql, strlen(sql), &opt, &r) != PH_RW_OK)
        fail_msg("%s\n  %s", sql, r.message);
    if (!r.sql || strcmp(r.sql, want) != 0)
        fail_msg("%s\n  got:  %s\n  want: %s", sql, r.sql ? r.sql : "(unchanged)", want);
    assert_true(parses(r.sql));
    assert_int_equal(r.nparams, nparams);
    assert_non_null(r.param_multi);
    for (int i = 0; i < nparams; i++)
        if (r.param_multi[i] != multi[i])
            fail_msg("%s\n  $%d multi %d, want %d", sql, i + 1, r.param_multi[i], multi[i]);
    assert_int_equal(r.cacheable, 1); /* no literal was encrypted */
    ph_rw_result_free(&r);
}

static void test_parameters(void **state)
{
    (void)state;
    params_are("SELECT id FROM customers WHERE email = $1",
               "SELECT id FROM customers WHERE email = ANY ($1)", 1, (const unsigned char[]){1});
    params_are("SELECT id FROM customers WHERE $1::text = email AND id = $2",
               "SELECT id FROM customers WHERE email = ANY ($1) AND id = $2", 2,
               (const unsigned char[]){1, 0});
    params_are("SELECT id FROM customers WHERE email <> $1",
               "SELECT id FROM customers WHERE email <> ALL ($1)", 1, (const unsigned char[]){1});
    params_are("SELECT id FROM customers WHERE email IN ($1, $2)",
               "SELECT id FROM customers WHERE email IN ($1[1], $1[2], $2[1], $2[2])", 2,
               (const unsigned char[]){1, 1});
    params_are("UPDATE customers SET phone = $2, email = $3 WHERE email = $1",
               "UPDATE customers SET phone = $2, email = $3 WHERE email = ANY ($1)", 3,
               (const unsigned char[]){1, 0, 0});
    /* stored only: no array */
    fake_crypto fc = {.versions = 2};
    ph_rw_options opt = rot_options(&fc, NULL);
    ph_rw_result r;
    const char *ins = "INSERT INTO customers (id, email) VALUES ($1, $2)";
    assert_int_equal(ph_rewrite(S, ins, strlen(ins), &opt, &r), PH_RW_OK);
    assert_null(r.sql);
    assert_null(r.param_multi);
    assert_ptr_equal(r.params[1], ph_schema_lookup(S, NULL, "customers", "email"));
    ph_rw_result_free(&r);
}

static void test_encrypt_eq_failure(void **state)
{
    (void)state;
    fake_crypto fc = {.versions = 2, .fail = 1};
    ph_rw_options opt = rot_options(&fc, NULL);
    ph_rw_result r;
    const char *sql = "SELECT id FROM customers WHERE email = 'secret-value'";
    assert_int_equal(ph_rewrite(S, sql, strlen(sql), &opt, &r), PH_RW_INTERNAL_ERROR);
    assert_null(r.sql);
    assert_null(strstr(r.message, "secret-value"));
    ph_rw_result_free(&r);
    /* more versions than a lookup may expand to: refused, not truncated */
    fc = (fake_crypto){.versions = PH_RW_MAX_VERSIONS + 1};
    assert_int_equal(ph_rewrite(S, sql, strlen(sql), &opt, &r), PH_RW_REFUSED);
    assert_non_null(strstr(r.message, "key rotation"));
    ph_rw_result_free(&r);
}

/* The shape made from `first` replays `other` exactly as its full analysis. */
static void shape_replays(const char *first, const char *other, const char *tmpl)
{
    fake_crypto fc = {.versions = 2};
    ph_rw_shape *sh = NULL;
    ph_rw_options mk = rot_options(&fc, &sh);
    ph_rw_result r1, full, shaped;
    assert_int_equal(ph_rewrite(S, first, strlen(first), &mk, &r1), PH_RW_OK);
    if (!sh)
        fail_msg("%s\n  no shape made", first);
    ph_rw_options opt = rot_options(&fc, NULL);
    assert_int_equal(ph_rewrite(S, other, strlen(other), &opt, &full), PH_RW_OK);
    assert_int_equal(ph_rewrite_shaped(sh, other, strlen(other), &opt, &shaped), PH_RW_OK);
    assert_non_null(full.sql);
    assert_non_null(shaped.sql);
    assert_string_equal(full.sql, shaped.sql);
    char *want = expand_expected(tmpl);
    assert_string_equal(shaped.sql, want);
    free(want);
    assert_int_equal(full.nparams, shaped.nparams);
    assert_true((full.param_multi == NULL) == (shaped.param_multi == NULL));
    for (int i = 0; full.param_multi && i < full.nparams; i++)
        assert_int_equal(full.param_multi[i], shaped.param_multi[i]);
    assert_int_equal(full.cacheable, shaped.cacheable);
    ph_rw_result_free(&r1);
    ph_rw_result_free(&full);
    ph_rw_result_free(&shaped);
    ph_rw_shape_free(sh);
}

static void test_shape_replay(void **state)
{
    (void)state;
    shape_replays("SELECT id FROM customers WHERE email = 'a' OR 'b' <> email OR email IN ('c') "
                  "AND id = $1",
                  "SELECT id FROM customers WHERE email = 'xyz' OR 'it''s' <> email OR email IN "
                  "('q') AND id = $1",
                  "SELECT id FROM customers WHERE email = ANY (ARRAY[" E2(
                      "xyz") "]) OR email <> "
                             "ALL (ARRAY[" E2("it's") "]) OR email IN (" E2("q") ") AND id = $1");
    shape_replays("UPDATE customers SET email = 'n' WHERE email = $1 AND id = 1",
                  "UPDATE customers SET email = 'other' WHERE email = $1 AND id = 22",
                  "UPDATE customers SET email = {customers.email:other} WHERE email = ANY ($1) "
                  "AND id = 22");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_forms),        cmocka_unit_test(test_literal_on_the_left),
        cmocka_unit_test(test_parenthesized_values), cmocka_unit_test(test_refused_forms),
        cmocka_unit_test(test_stored_values_single), cmocka_unit_test(test_one_version_unchanged),
        cmocka_unit_test(test_parameters),           cmocka_unit_test(test_encrypt_eq_failure),
        cmocka_unit_test(test_shape_replay),
    };
    return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
