/*
 * test_tools_verify.c — `phantom verify`'s classification of one stored
 * value (src/tools/verify.c): a valid envelope of the column's mode under a
 * live key of its domain; plaintext written directly; an envelope of another
 * mode; a key id that is unknown, retired or of another key domain; with
 * --deep, a tampered body or a value that decrypts but is not of the column's
 * type. Also the per-column key counts, table selection and the "clean"
 * verdict of a report.
 */
#include "test_tools_fixture.h"

#include "tools/table.h"
#include "tools/verify.h"

static void expect(const ph_keysource *ks, const ph_schema_column *c, const uint8_t *v, size_t len,
                   int deep, ph_vstatus want, uint32_t want_key)
{
    uint32_t key = 12345;
    assert_int_equal(ph_verify_value(ks, c, v, len, deep, &key), want);
    assert_int_equal(key, want_key);
}

static void test_valid_values(void **state)
{
    tfx *f = *state;
    const char *cols[][3] = {{"customers", "email", "alice@example.com"},
                             {"customers", "phone", "+1 555 0100"},
                             {"customers", "age", "42"},
                             {"customers", "signup_day", "2024-03-01"},
                             {"customers", "score", "-7"},
                             {"payments", "customer_email", "alice@example.com"}};
    ph_buf env = {0};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        const ph_schema_column *c = tfx_col(f, cols[i][0], cols[i][1]);
        size_t d = tfx_domain(f, c);
        /* written before the rotation: version 1, still live after it */
        tfx_seal(f->before, c, cols[i][2], &env);
        expect(f->after, c, env.data, env.len, 0, PH_V_OK, TFX_OLD_ID(d));
        expect(f->after, c, env.data, env.len, 1, PH_V_OK, TFX_OLD_ID(d));
        /* written after it: version 2 */
        tfx_seal(f->after, c, cols[i][2], &env);
        expect(f->after, c, env.data, env.len, 1, PH_V_OK, TFX_NEW_ID(d));
        /* version 1 retired: the keysource no longer has it */
        expect(f->before, c, env.data, env.len, 0, PH_V_UNKNOWN_KEY, TFX_NEW_ID(d));
    }
    ph_buf_free(&env);
}

static void test_plaintext(void **state)
{
    tfx *f = *state;
    const ph_schema_column *c = tfx_col(f, "customers", "phone");
    const char *p = "not encrypted";
    expect(f->after, c, (const uint8_t *)p, strlen(p), 0, PH_V_NOT_ENVELOPE, 0);
    expect(f->after, c, (const uint8_t *)p, strlen(p), 1, PH_V_NOT_ENVELOPE, 0);
    expect(f->after, c, (const uint8_t *)"", 0, 0, PH_V_NOT_ENVELOPE, 0);
    /* a header alone, or a valid header with a body too short for its mode */
    uint8_t hdr[PH_ENV_HEADER_LEN + 4];
    ph_envelope_put_header(hdr, PH_ENV_RANDOMIZED, TFX_NEW_ID(1));
    memset(hdr + PH_ENV_HEADER_LEN, 0, 4);
    expect(f->after, c, hdr, sizeof hdr, 0, PH_V_NOT_ENVELOPE, 0);
    /* an unknown format version */
    ph_buf env = {0};
    tfx_seal(f->after, c, "+1 555 0100", &env);
    env.data[0] = 0x02;
    expect(f->after, c, env.data, env.len, 0, PH_V_NOT_ENVELOPE, 0);
    ph_buf_free(&env);
    assert_string_equal(ph_vstatus_str(PH_V_NOT_ENVELOPE), "not a phantom envelope");
}

static void test_wrong_mode_and_domain(void **state)
{
    tfx *f = *state;
    const ph_schema_column *email = tfx_col(f, "customers", "email");
    const ph_schema_column *phone = tfx_col(f, "customers", "phone");
    const ph_schema_column *pay = tfx_col(f, "payments", "customer_email");
    ph_buf env = {0};
    /* a deterministic envelope stored in a randomized column */
    tfx_seal(f->after, email, "alice@example.com", &env);
    expect(f->after, phone, env.data, env.len, 0, PH_V_WRONG_MODE,
           TFX_NEW_ID(tfx_domain(f, email)));
    /* payments.customer_email shares customers.email's domain: valid there */
    expect(f->after, pay, env.data, env.len, 1, PH_V_OK, TFX_NEW_ID(tfx_domain(f, email)));
    /* a randomized envelope of customers.phone moved into customers.score
     * (same mode, key id of another domain) */
    const ph_schema_column *score = tfx_col(f, "customers", "score");
    tfx_seal(f->after, phone, "12", &env);
    expect(f->after, score, env.data, env.len, 0, PH_V_UNKNOWN_KEY,
           TFX_NEW_ID(tfx_domain(f, phone)));
    /* a key id no keyring version has */
    ph_put_u32(env.data + 2, 999);
    expect(f->after, phone, env.data, env.len, 0, PH_V_UNKNOWN_KEY, 999);
    ph_buf_free(&env);
}

static void test_deep(void **state)
{
    tfx *f = *state;
    const char *cols[][3] = {{"customers", "email", "bob@example.com"},
                             {"customers", "phone", "+44 20 7946 0000"},
                             {"customers", "age", "30"}};
    ph_buf env = {0};
    for (size_t i = 0; i < 3; i++) {
        const ph_schema_column *c = tfx_col(f, cols[i][0], cols[i][1]);
        uint32_t id = TFX_NEW_ID(tfx_domain(f, c));
        tfx_seal(f->after, c, cols[i][2], &env);
        env.data[env.len - 1] ^= 0x01; /* one bit of the body (tag / ciphertext) */
        expect(f->after, c, env.data, env.len, 0, PH_V_OK, id);
        expect(f->after, c, env.data, env.len, 1, PH_V_UNDECRYPTABLE, id);
        env.data[env.len - 1] ^= 0x01;
        env.data[PH_ENV_HEADER_LEN] ^= 0x80; /* the first body byte (nonce / siv / ope code) */
        expect(f->after, c, env.data, env.len, 1, PH_V_UNDECRYPTABLE, id);
    }
    /* an authentic envelope whose plaintext is not an int4 (3 bytes): it
     * decrypts, but not to a value of the column's type */
    const ph_schema_column *score = tfx_col(f, "customers", "score");
    const ph_field_key *k = ph_keysource_write_key(f->after, score->key_domain);
    assert_non_null(k);
    env.len = 0;
    assert_int_equal(ph_field_encrypt_buf(k, PH_FIELD_RANDOMIZED, (const uint8_t *)"abc", 3, &env),
                     PH_FIELD_OK);
    expect(f->after, score, env.data, env.len, 0, PH_V_OK, ph_field_key_id(k));
    expect(f->after, score, env.data, env.len, 1, PH_V_UNDECRYPTABLE, ph_field_key_id(k));
    ph_buf_free(&env);
}

static void test_counts_and_selection(void **state)
{
    tfx *f = *state;
    ph_vcol c = {.col = tfx_col(f, "customers", "phone")};
    for (int i = 0; i < 5; i++)
        assert_int_equal(ph_vcol_count_key(&c, 7), 0);
    assert_int_equal(ph_vcol_count_key(&c, 9), 0);
    assert_int_equal(ph_vcol_count_key(&c, 7), 0);
    assert_int_equal(c.nkeys, 2);
    assert_int_equal(c.keys[0].key_id, 7);
    assert_int_equal(c.keys[0].rows, 6);
    assert_int_equal(c.keys[1].key_id, 9);
    assert_int_equal(c.keys[1].rows, 1);
    free(c.keys);

    const ph_schema_table *t = ph_schema_find_table(f->schema, NULL, "customers", NULL);
    assert_non_null(t);
    assert_true(ph_table_selected(t, NULL));
    assert_true(ph_table_selected(t, "customers"));
    assert_true(ph_table_selected(t, "public.customers"));
    assert_false(ph_table_selected(t, "payments"));
    assert_false(ph_table_selected(t, "other.customers"));
    assert_false(ph_table_selected(t, "public.customer"));
    assert_false(ph_table_selected(t, "publiccustomers"));
}

static void test_clean(void **state)
{
    tfx *f = *state;
    ph_vcol cols[2] = {{.col = tfx_col(f, "customers", "phone"), .type = "bytea", .scanned = 1},
                       {.col = tfx_col(f, "customers", "email"), .type = "bytea", .scanned = 1}};
    ph_vreport rep = {.cols = cols, .ncols = 2};
    assert_true(ph_verify_clean(&rep));
    cols[1].invalid = 1;
    assert_false(ph_verify_clean(&rep));
    cols[1].invalid = 0;
    cols[1].plaintext = 1;
    assert_false(ph_verify_clean(&rep));
    cols[1].plaintext = 0;
    cols[1].scanned = 0;
    assert_false(ph_verify_clean(&rep));
    cols[1].scanned = 1;
    cols[1].type = NULL; /* missing column */
    assert_false(ph_verify_clean(&rep));
    cols[1].type = "bytea";
    rep.errors = 1;
    assert_false(ph_verify_clean(&rep));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_valid_values, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_plaintext, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_mode_and_domain, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_deep, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_counts_and_selection, tfx_setup, tfx_teardown),
        cmocka_unit_test_setup_teardown(test_clean, tfx_setup, tfx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
