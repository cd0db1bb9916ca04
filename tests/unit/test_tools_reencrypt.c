/*
 * test_tools_reencrypt.c — `phantom reencrypt`'s per-value step
 * (src/tools/reencrypt.c): a value sealed under DEK version 1 comes out
 * sealed under the domain's active version 2, same mode, opening to the same
 * plaintext; deterministic values give exactly the envelope the proxy now
 * writes (so lookups keep working); OPE envelopes keep their order; values
 * already under the active key, invalid values and a domain without an
 * active key are reported and leave the output untouched.
 */
#include "test_tools_fixture.h"

#include "tools/reencrypt.h"

static void check_moved(const tfx *f, const char *table, const char *col, const char *value)
{
    const ph_schema_column *c = tfx_col(f, table, col);
    size_t d = tfx_domain(f, c);
    ph_buf old = {0}, out = {0};
    tfx_seal(f->before, c, value, &old);
    assert_int_equal(tfx_key_id(&old), TFX_OLD_ID(d));
    assert_int_equal(ph_reencrypt_value(f->after, c, old.data, old.len, &out), PH_RE_MOVED);
    assert_int_equal(tfx_key_id(&out), TFX_NEW_ID(d));
    ph_field_info a, b;
    assert_int_equal(ph_field_peek(old.data, old.len, &a), PH_FIELD_OK);
    assert_int_equal(ph_field_peek(out.data, out.len, &b), PH_FIELD_OK);
    assert_int_equal(a.mode, b.mode);
    assert_int_equal(out.len, old.len);
    /* same plaintext, read through the keys after the rotation ... */
    char text[256];
    assert_int_equal(tfx_open(f->after, c, out.data, out.len, text, sizeof text), 0);
    assert_string_equal(text, value);
    /* ... and not readable with version 1 alone (i.e. really under version 2) */
    assert_int_equal(tfx_open(f->before, c, out.data, out.len, text, sizeof text), -1);
    /* moving it again: nothing to do, output untouched */
    size_t len = out.len;
    assert_int_equal(ph_reencrypt_value(f->after, c, out.data, out.len, &out), PH_RE_CURRENT);
    assert_int_equal(out.len, len);
    ph_buf_free(&old);
    ph_buf_free(&out);
}

static void test_moves_every_mode(void **state)
{
    tfx *f = *state;
    check_moved(f, "customers", "phone", "+1 555 0100");
    check_moved(f, "customers", "phone", ""); /* empty string */
    check_moved(f, "customers", "email", "alice@example.com");
    check_moved(f, "customers", "age", "-2147483648");
    check_moved(f, "customers", "signup_day", "1999-12-31");
    check_moved(f, "customers", "score", "17");
    check_moved(f, "payments", "customer_email", "alice@example.com");
}

static void test_deterministic_equals_new_writes(void **state)
{
    tfx *f = *state;
    const char *v = "carol@example.com";
    const ph_schema_column *cols[2] = {tfx_col(f, "customers", "email"),
                                       tfx_col(f, "payments", "customer_email")};
    ph_buf moved[2] = {{0}}, fresh = {0}, old = {0};
    for (int i = 0; i < 2; i++) {
        tfx_seal(f->before, cols[i], v, &old);
        assert_int_equal(ph_reencrypt_value(f->after, cols[i], old.data, old.len, &moved[i]),
                         PH_RE_MOVED);
        /* what the proxy seals for `WHERE email = 'carol@...'` after the rotation */
        tfx_seal(f->after, cols[i], v, &fresh);
        assert_int_equal(moved[i].len, fresh.len);
        assert_memory_equal(moved[i].data, fresh.data, fresh.len);
    }
    /* shared key domain: the join payments.customer_email = customers.email holds */
    assert_int_equal(moved[0].len, moved[1].len);
    assert_memory_equal(moved[0].data, moved[1].data, moved[0].len);
    ph_buf_free(&moved[0]);
    ph_buf_free(&moved[1]);
    ph_buf_free(&fresh);
    ph_buf_free(&old);
}

static void test_randomized_fresh_nonce(void **state)
{
    tfx *f = *state;
    const ph_schema_column *c = tfx_col(f, "customers", "phone");
    ph_buf old = {0}, a = {0}, b = {0};
    tfx_seal(f->before, c, "+1 555 0199", &old);
    assert_int_equal(ph_reencrypt_value(f->after, c, old.data, old.len, &a), PH_RE_MOVED);
    assert_int_equal(ph_reencrypt_value(f->after, c, old.data, old.len, &b), PH_RE_MOVED);
    assert_int_equal(a.len, b.len);
    assert_memory_not_equal(a.data + PH_ENV_HEADER_LEN, b.data + PH_ENV_HEADER_LEN,
                            PH_ENV_NONCE_LEN);
    ph_buf_free(&old);
    ph_buf_free(&a);
    ph_buf_free(&b);
}

static int cmp_env(const void *x, const void *y)
{
    const ph_buf *a = x, *b = y;
    return memcmp(a->data, b->data, a->len);
}

static void test_ope_order_kept(void **state)
{
    tfx *f = *state;
    const ph_schema_column *c = tfx_col(f, "customers", "age");
    const char *vals[] = {"-1000000", "-5", "0", "1", "2", "7", "99", "100", "2147483647"};
    enum { N = sizeof vals / sizeof vals[0] };
    ph_buf moved[N], old = {0};
    memset(moved, 0, sizeof moved);
    /* given in a shuffled order */
    const int order[N] = {4, 0, 8, 2, 6, 1, 7, 3, 5};
    for (int i = 0; i < N; i++) {
        tfx_seal(f->before, c, vals[order[i]], &old);
        assert_int_equal(old.len, PH_FIELD_OPE_ENVELOPE);
        assert_int_equal(ph_reencrypt_value(f->after, c, old.data, old.len, &moved[order[i]]),
                         PH_RE_MOVED);
        assert_int_equal(moved[order[i]].len, PH_FIELD_OPE_ENVELOPE);
    }
    /* bytea (memcmp) order of the new envelopes = order of the integers */
    for (int i = 0; i + 1 < N; i++)
        assert_true(cmp_env(&moved[i], &moved[i + 1]) < 0);
    /* and each opens to its value */
    for (int i = 0; i < N; i++) {
        char text[64];
        assert_int_equal(tfx_open(f->after, c, moved[i].data, moved[i].len, text, sizeof text), 0);
        assert_string_equal(text, vals[i]);
        ph_buf_free(&moved[i]);
    }
    ph_buf_free(&old);
}

static void test_invalid_left_alone(void **state)
{
    tfx *f = *state;
    const ph_schema_column *phone = tfx_col(f, "customers", "phone");
    const ph_schema_column *email = tfx_col(f, "customers", "email");
    ph_buf env = {0}, out = {0};
    /* plaintext */
    const char *p = "not encrypted";
    assert_int_equal(ph_reencrypt_value(f->after, phone, (const uint8_t *)p, strlen(p), &out),
                     PH_RE_INVALID);
    /* wrong mode */
    tfx_seal(f->before, email, "dave@example.com", &env);
    assert_int_equal(ph_reencrypt_value(f->after, phone, env.data, env.len, &out), PH_RE_INVALID);
    /* tampered body under the old key */
    tfx_seal(f->before, phone, "+1 555 0142", &env);
    env.data[env.len - 3] ^= 0x10;
    assert_int_equal(ph_reencrypt_value(f->after, phone, env.data, env.len, &out), PH_RE_INVALID);
    /* unknown key id */
    tfx_seal(f->before, phone, "+1 555 0142", &env);
    ph_put_u32(env.data + 2, 4242);
    assert_int_equal(ph_reencrypt_value(f->after, phone, env.data, env.len, &out), PH_RE_INVALID);
    assert_int_equal(out.len, 0);
    /* a domain the keysource has no key for: an error, not a silent skip */
    ph_keysource *empty = ph_keysource_new();
    assert_non_null(empty);
    tfx_seal(f->before, phone, "+1 555 0142", &env);
    assert_int_equal(ph_reencrypt_value(empty, phone, env.data, env.len, &out), PH_RE_ERROR);
    assert_int_equal(out.len, 0);
    ph_keysource_free(empty);
    ph_buf_free(&env);
    ph_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_moves_every_mode, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_deterministic_equals_new_writes, tfx_setup,
                                        tfx_teardown),
        cmocka_unit_test_setup_teardown(test_randomized_fresh_nonce, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_ope_order_kept, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_invalid_left_alone, tfx_setup, tfx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
