/*
 * test_engine_rotation.c — the session engine during a DEK rotation: the
 * customers.email key domain has two live versions (the active one and an
 * older one, as `phantom keys rotate` leaves them until re-encryption).
 * Checks: ph_keysource_domain_keys (active first); a simple-protocol lookup
 * goes upstream as = ANY over the exact envelopes under both keys, a stored
 * value under the active key only; a row stored under the old key decrypts;
 * Parse declares a compared parameter bytea[] and rewrites it to ANY ($1),
 * Bind sends the binary array of both envelopes, ParameterDescription still
 * shows the client text; a form that cannot match both versions is refused.
 */
#include "test_engine_fixture.h"

#define OLD_KEY_ID 9u

static void old_dek(uint8_t dek[PH_FIELD_DEK_LEN])
{
    for (size_t i = 0; i < PH_FIELD_DEK_LEN; i++)
        dek[i] = (uint8_t)(0xA5 ^ (i * 11));
}

static int rot_setup(void **state)
{
    fx_setup(state);
    fx *f = *state;
    uint8_t dek[PH_FIELD_DEK_LEN];
    old_dek(dek);
    assert_int_equal(ph_keysource_add(f->ks, "customers.email", OLD_KEY_ID, dek, 0), 0);
    return 0;
}

static const ph_field_key *old_key(fx *f)
{
    const ph_field_key *k = ph_keysource_key_by_id(f->ks, "customers.email", OLD_KEY_ID);
    assert_non_null(k);
    return k;
}

/* The deterministic envelope of v under key k. */
static void det_under(const ph_field_key *k, const char *v, ph_buf *out)
{
    assert_int_equal(
        ph_field_encrypt_buf(k, PH_FIELD_DETERMINISTIC, (const uint8_t *)v, strlen(v), out),
        PH_FIELD_OK);
}

static void test_domain_keys(void **state)
{
    fx *f = *state;
    const ph_field_key *keys[4] = {0};
    assert_int_equal(ph_keysource_domain_keys(f->ks, "customers.email", keys, 4), 2);
    assert_ptr_equal(keys[0], ph_keysource_write_key(f->ks, "customers.email"));
    assert_ptr_equal(keys[1], old_key(f));
    /* max smaller than the count: the count, only max stored */
    const ph_field_key *one[1] = {0};
    assert_int_equal(ph_keysource_domain_keys(f->ks, "customers.email", one, 1), 2);
    assert_ptr_equal(one[0], keys[0]);
    assert_int_equal(ph_keysource_domain_keys(f->ks, "customers.email", NULL, 0), 2);
    /* a domain with one version, an unknown one */
    assert_int_equal(ph_keysource_domain_keys(f->ks, "customers.full_name", keys, 4), 1);
    assert_ptr_equal(keys[0], ph_keysource_write_key(f->ks, "customers.full_name"));
    assert_int_equal(ph_keysource_domain_keys(f->ks, "nope.nope", keys, 4), 0);
    /* a newer active version goes first; the previous one follows */
    uint8_t dek[PH_FIELD_DEK_LEN];
    memset(dek, 0x33, sizeof dek);
    const ph_field_key *was = keys[0];
    assert_int_equal(ph_keysource_add(f->ks, "customers.full_name", 12, dek, 1), 0);
    assert_int_equal(ph_keysource_domain_keys(f->ks, "customers.full_name", keys, 4), 2);
    assert_ptr_equal(keys[0], ph_keysource_key_by_id(f->ks, "customers.full_name", 12));
    assert_ptr_equal(keys[1], was);
}

static void test_simple_query_lookup_and_store(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, e1 = {0}, e2 = {0}, want = {0}, h = {0};
    put_query(&in, "SELECT id, email FROM customers WHERE email = 'alice@example.com'");
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_expect_types(&up, &ms, "Q");
    det_under(fx_key(f, "customers", "email"), "alice@example.com", &e1);
    det_under(old_key(f), "alice@example.com", &e2);
    const char *prefix = "SELECT id, email FROM customers WHERE email = ANY (ARRAY[";
    assert_int_equal(ph_buf_append(&want, prefix, strlen(prefix)), 0);
    fx_hex(&e1, &h, true);
    assert_int_equal(ph_buf_append(&want, h.data, h.len), 0);
    assert_int_equal(ph_buf_append(&want, ", ", 2), 0);
    h.len = 0;
    fx_hex(&e2, &h, true);
    assert_int_equal(ph_buf_append(&want, h.data, h.len), 0);
    assert_int_equal(ph_buf_append(&want, "])", 3), 0);
    assert_string_equal((const char *)ms.m[0].body, (const char *)want.data);
    assert_false(fx_contains(up.data, up.len, "alice@example.com"));

    /* the row found under the old version decrypts for the client */
    ph_buf ans = {0}, down = {0};
    fx_field fl[2] = {{"id", FX_CUST, 1, 23, 4, -1, 0}, {"email", FX_CUST, 2, 17, -1, -1, 0}};
    put_rowdesc(&ans, 2, fl);
    h.len = 0;
    fx_hex(&e2, &h, false);
    fx_val v[2] = {fx_str("7"), {h.data, h.len}};
    put_datarow(&ans, 2, v);
    put_complete(&ans, "SELECT 1");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_expect_types(&down, &ms, "TDCZ");
    fx_expect_field_str(&ms.m[1], 1, "alice@example.com");

    /* a stored value: the active version only */
    ph_buf in2 = {0}, up2 = {0};
    put_query(&in2, "INSERT INTO customers (id, email) VALUES (8, 'bob@example.com')");
    fx_c2s(f, &in2, &up2);
    fx_expect_types(&up2, &ms, "Q");
    ph_buf b1 = {0}, b2 = {0}, hb = {0};
    det_under(fx_key(f, "customers", "email"), "bob@example.com", &b1);
    det_under(old_key(f), "bob@example.com", &b2);
    fx_hex(&b1, &hb, true);
    assert_true(fx_contains(ms.m[0].body, ms.m[0].len, (const char *)hb.data));
    hb.len = 0;
    fx_hex(&b2, &hb, true);
    assert_false(fx_contains(ms.m[0].body, ms.m[0].len, (const char *)hb.data));
    FREE_ALL(&in, &up, &e1, &e2, &want, &h, &ans, &down, &in2, &up2, &b1, &b2, &hb);
}

static void test_simple_query_refused_form(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0};
    put_query(&in, "SELECT id FROM customers WHERE email IS NOT DISTINCT FROM 'alice@example.com'");
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_expect_types(&up, &ms, "Q");
    const char *sql = (const char *)ms.m[0].body;
    assert_non_null(strstr(sql, "RAISE EXCEPTION USING ERRCODE = '0A000'"));
    assert_non_null(strstr(sql, "customers.email"));
    assert_non_null(strstr(sql, "key rotation is in progress"));
    assert_false(fx_contains(up.data, up.len, "alice@example.com"));
    FREE_ALL(&in, &up);
}

static void test_parse_bind_array_param(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, e1 = {0}, e2 = {0}, arr = {0};
    put_parse(&in, "s1", "SELECT full_name FROM customers WHERE email = $1 AND id > $2", 0, NULL);
    put_target(&in, 'D', 'S', "s1");
    put_empty(&in, 'S');
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_expect_types(&up, &ms, "PDS");
    uint32_t t[4];
    const char *usql;
    /* the client declared no types: only the protected $1 gets one, bytea[] */
    assert_int_equal(fx_parse_types(&ms.m[0], t, &usql), 1);
    assert_string_equal(usql, "SELECT full_name FROM customers WHERE email = ANY ($1) AND id > $2");
    assert_int_equal(t[0], 1001);

    /* ParameterDescription: the client sees text, not bytea[] */
    ph_buf ans = {0}, down = {0};
    put_empty(&ans, '1');
    mb m = mb_begin(&ans, 't');
    mb_u16(&m, 2);
    mb_u32(&m, 1001);
    mb_u32(&m, 23);
    mb_end(&m);
    fx_field fl = {"full_name", FX_CUST, 3, 17, -1, -1, 0};
    put_rowdesc(&ans, 1, &fl);
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_expect_types(&down, &ms, "1tTZ");
    fx_rd r = fx_reader(&ms.m[1]);
    assert_int_equal(fx_u16(&r), 2);
    assert_int_equal(fx_u32(&r), 25);
    assert_int_equal(fx_u32(&r), 23);

    /* Bind: a binary one-dimensional bytea[] of both envelopes, active first */
    ph_buf in2 = {0}, up2 = {0};
    fx_param p[2] = {{"alice@example.com", -1, 0}, {"5", -1, 0}};
    put_bind(&in2, "", "s1", 0, NULL, 2, p, 0, NULL);
    put_execute(&in2, "", 0);
    put_empty(&in2, 'S');
    fx_c2s(f, &in2, &up2);
    fx_expect_types(&up2, &ms, "BES"); /* described already: no injected Describe */
    det_under(fx_key(f, "customers", "email"), "alice@example.com", &e1);
    det_under(old_key(f), "alice@example.com", &e2);
    const uint32_t head[5] = {1, 0, 17, 2, 1};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(ph_buf_append_u32(&arr, head[i]), 0);
    assert_int_equal(ph_buf_append_u32(&arr, (uint32_t)e1.len), 0);
    assert_int_equal(ph_buf_append(&arr, e1.data, e1.len), 0);
    assert_int_equal(ph_buf_append_u32(&arr, (uint32_t)e2.len), 0);
    assert_int_equal(ph_buf_append(&arr, e2.data, e2.len), 0);
    r = fx_reader(&ms.m[0]);
    assert_string_equal(fx_cstr(&r), "");
    assert_string_equal(fx_cstr(&r), "s1");
    assert_int_equal(fx_u16(&r), 2); /* one format code per parameter */
    assert_int_equal(fx_u16(&r), 1);
    assert_int_equal(fx_u16(&r), 0);
    assert_int_equal(fx_u16(&r), 2);
    assert_int_equal(fx_u32(&r), (uint32_t)arr.len);
    assert_memory_equal(fx_bytes(&r, arr.len), arr.data, arr.len);
    assert_int_equal(fx_u32(&r), 1);
    assert_memory_equal(fx_bytes(&r, 1), "5", 1);
    assert_false(fx_contains(up2.data, up2.len, "alice@example.com"));

    /* NULL stays NULL */
    ph_buf in3 = {0}, up3 = {0};
    fx_param pn[2] = {{NULL, 0, 0}, {"5", -1, 0}};
    put_bind(&in3, "", "s1", 0, NULL, 2, pn, 0, NULL);
    fx_c2s(f, &in3, &up3);
    fx_expect_types(&up3, &ms, "B");
    r = fx_reader(&ms.m[0]);
    (void)fx_cstr(&r);
    (void)fx_cstr(&r);
    for (uint16_t n = fx_u16(&r); n > 0; n--)
        (void)fx_u16(&r);
    assert_int_equal(fx_u16(&r), 2);
    assert_int_equal(fx_u32(&r), 0xFFFFFFFFu);
    FREE_ALL(&in, &up, &e1, &e2, &arr, &ans, &down, &in2, &up2, &in3, &up3);
}

static void test_param_stored_and_compared_refused(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0};
    put_parse(&in, "", "UPDATE customers SET email = $1 WHERE email = $1", 0, NULL);
    put_empty(&in, 'S');
    fx_c2s(f, &in, &up);
    assert_true(fx_contains(up.data, up.len, "both stored in and compared"));
    assert_false(fx_contains(up.data, up.len, "UPDATE customers"));
    FREE_ALL(&in, &up);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_domain_keys, rot_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_simple_query_lookup_and_store, rot_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_simple_query_refused_form, rot_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_parse_bind_array_param, rot_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_param_stored_and_compared_refused, rot_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
