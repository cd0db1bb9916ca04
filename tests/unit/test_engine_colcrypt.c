/*
 * test_engine_colcrypt.c — one column value in and out (src/engine/colcrypt.c):
 * the memo of deterministic seals (used only for an envelope sealed in the
 * same key domain, never for another domain or mode, wiped by
 * eng_memo_clear), the typmod a client is shown, text-like values opened straight
 * into the caller's buffer (appended after what it holds; a value that fails
 * its check or its tag is wiped and cut off), and bytea text decoding (hex
 * with blanks between digit pairs, escape format, malformed input refused).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_engine_fixture.h"

#include "crypto/encode.h"
#include "crypto/field.h"
#include "engine/colcrypt.h"
#include "engine/keysource.h"

static const ph_schema_column *column(const fx *f, const char *table, const char *name)
{
    const ph_schema_table *t = ph_schema_find_table(f->schema, NULL, table, NULL);
    assert_non_null(t);
    const ph_schema_column *c = ph_schema_find_column(t, name);
    assert_non_null(c);
    return c;
}

static void encrypt_text(const fx *f, const ph_schema_column *c, const char *v, eng_memo *m,
                         ph_buf *env)
{
    eng_cc_err e = {{0}, {0}};
    ph_enc_opts o = PH_ENC_OPTS_DEFAULT;
    assert_int_equal(eng_col_encrypt(f->ks, c, &o, 0, eng_col_ltype(c), (const uint8_t *)v,
                                     strlen(v), env, m, &e),
                     0);
}

/* Decrypts env as column c in text format; returns 0 with the value in out. */
static int decrypt_text(const fx *f, const ph_schema_column *c, const ph_buf *env,
                        const eng_memo *m, char *out, size_t cap)
{
    eng_cc_err e = {{0}, {0}};
    ph_enc_opts o = PH_ENC_OPTS_DEFAULT;
    ph_buf b = {0};
    int rc = eng_col_decrypt(f->ks, c, &o, env->data, env->len, 0, &b, m, &e);
    if (rc == 0) {
        assert_true(b.len < cap);
        memcpy(out, b.data, b.len);
        out[b.len] = '\0';
    } else {
        assert_string_equal(e.sqlstate, "XX001");
        assert_null(strstr(e.message, "alice")); /* messages never carry a value */
    }
    ph_buf_free(&b);
    return rc;
}

static void test_memo(void **state)
{
    fx *f = *state;
    const ph_schema_column *email = column(f, "customers", "email");
    const ph_schema_column *pay_email = column(f, "payments", "customer_email");
    const ph_schema_column *phone = column(f, "customers", "phone");
    eng_memo m = {0};
    ph_buf env = {0};
    char got[128];
    encrypt_text(f, email, "alice@example.com", &m, &env);
    assert_non_null(m.e[0].domain);
    assert_int_equal(m.e[0].env_len, env.len);

    /* the memo answers: prove it by changing what it remembers */
    assert_int_equal(decrypt_text(f, email, &env, &m, got, sizeof got), 0);
    assert_string_equal(got, "alice@example.com");
    m.e[0].env[m.e[0].env_len] ^= 0x01; /* first plaintext byte: 'a' -> '`' */
    assert_int_equal(decrypt_text(f, email, &env, &m, got, sizeof got), 0);
    assert_string_equal(got, "`lice@example.com");
    /* ... also for another column of the same key domain */
    assert_int_equal(decrypt_text(f, pay_email, &env, &m, got, sizeof got), 0);
    assert_string_equal(got, "`lice@example.com");
    /* without the memo, or once cleared, AES-SIV opens the real value */
    assert_int_equal(decrypt_text(f, email, &env, NULL, got, sizeof got), 0);
    assert_string_equal(got, "alice@example.com");
    eng_memo_clear(&m);
    assert_null(m.e[0].domain);
    assert_null(m.e[0].env);
    assert_int_equal(decrypt_text(f, email, &env, &m, got, sizeof got), 0);
    assert_string_equal(got, "alice@example.com");

    /* another key domain never uses the memo: the envelope fails there */
    ph_buf_free(&env);
    encrypt_text(f, email, "alice@example.com", &m, &env);
    assert_int_not_equal(decrypt_text(f, phone, &env, &m, got, sizeof got), 0);

    /* randomized values are not remembered; a full ring overwrites the oldest */
    eng_memo_clear(&m);
    ph_buf r = {0};
    encrypt_text(f, phone, "+49 30 1234", &m, &r);
    assert_null(m.e[0].domain);
    for (int i = 0; i < ENG_MEMO_MAX + 1; i++) {
        char v[32];
        snprintf(v, sizeof v, "user%d@example.com", i);
        ph_buf tmp = {0};
        encrypt_text(f, email, v, &m, &tmp);
        ph_buf_free(&tmp);
    }
    for (int i = 0; i < ENG_MEMO_MAX; i++)
        assert_non_null(m.e[i].domain);
    assert_int_equal(m.next, 1);
    eng_memo_clear(&m);
    ph_buf_free(&r);
    ph_buf_free(&env);
}

/* Appends a randomized envelope of raw bytes (not checked as text) under c's key. */
static void seal_raw(const fx *f, const ph_schema_column *c, const void *pt, size_t len,
                     ph_buf *env)
{
    const ph_field_key *k = ph_keysource_write_key(f->ks, c->key_domain);
    assert_non_null(k);
    assert_int_equal(ph_field_encrypt_buf(k, PH_FIELD_RANDOMIZED, pt, len, env), PH_FIELD_OK);
}

static void test_decrypt_into(void **state)
{
    fx *f = *state;
    const ph_schema_column *phone = column(f, "customers", "phone");
    const ph_schema_column *address = column(f, "customers", "address");
    ph_enc_opts o = PH_ENC_OPTS_DEFAULT;
    eng_cc_err e = {{0}, {0}};
    ph_buf out = {0}, env = {0};
    assert_true(ph_canon_is_output(PH_LT_TEXT, 0) && ph_canon_is_output(PH_LT_JSONB, 0));
    assert_false(ph_canon_is_output(PH_LT_JSONB, 1) || ph_canon_is_output(PH_LT_BYTEA, 0));
    assert_false(ph_canon_is_output(PH_LT_INT8, 0));

    /* appended after what the buffer holds, in both formats */
    assert_int_equal(ph_buf_append(&out, "row:", 4), 0);
    encrypt_text(f, phone, "+49 30 1234", NULL, &env);
    assert_int_equal(eng_col_decrypt(f->ks, phone, &o, env.data, env.len, 0, &out, NULL, &e), 0);
    assert_int_equal(eng_col_decrypt(f->ks, phone, &o, env.data, env.len, 1, &out, NULL, &e), 0);
    assert_int_equal(out.len, 4 + 2 * 11);
    assert_memory_equal(out.data, "row:+49 30 1234+49 30 1234", out.len);
    /* jsonb in binary goes through formatting: version byte 1, then the text */
    ph_buf_free(&env);
    encrypt_text(f, address, "{\"city\": \"Berlin\"}", NULL, &env);
    out.len = 4;
    assert_int_equal(eng_col_decrypt(f->ks, address, &o, env.data, env.len, 1, &out, NULL, &e), 0);
    assert_int_equal(out.len, 4 + 1 + 18);
    assert_int_equal(out.data[4], 1);
    assert_memory_equal(out.data + 5, "{\"city\": \"Berlin\"}", 18);

    /* a plaintext that is not valid text (a NUL byte): refused, wiped, cut off */
    static const char bad[] = "secretvalue\0tail";
    ph_buf_free(&env);
    seal_raw(f, phone, bad, sizeof bad - 1, &env);
    out.len = 4;
    assert_int_equal(eng_col_decrypt(f->ks, phone, &o, env.data, env.len, 0, &out, NULL, &e), -1);
    assert_string_equal(e.sqlstate, "XX001");
    assert_non_null(strstr(e.message, "customers.phone"));
    assert_int_equal(out.len, 4);
    assert_true(out.cap >= 4 + sizeof bad - 1);
    assert_null(memmem(out.data, out.cap, "secretvalue", 11)); /* wiped, not only cut */

    /* a damaged tag: refused, nothing appended */
    ph_buf_free(&env);
    encrypt_text(f, phone, "+49 30 1234", NULL, &env);
    env.data[env.len - 1] ^= 0x01;
    assert_int_equal(eng_col_decrypt(f->ks, phone, &o, env.data, env.len, 0, &out, NULL, &e), -1);
    assert_int_equal(out.len, 4);
    assert_null(memmem(out.data, out.cap, "+49 30", 6));
    ph_buf_free(&env);
    ph_buf_free(&out);
}

static void test_typmod(void **state)
{
    fx *f = *state;
    /* as PostgreSQL reports them: numeric(12,2) = (12 << 16 | 2) + VARHDRSZ */
    assert_int_equal(eng_col_typmod(column(f, "customers", "balance")), (12 << 16 | 2) + 4);
    assert_int_equal(eng_col_typmod(column(f, "customers", "email")), -1);
    assert_int_equal(eng_col_typmod(column(f, "customers", "signup_day")), -1);
    ph_schema *s = NULL;
    char err[256];
    const char *y = "encrypt:\n  t:\n    - {column: a, type: varchar(20)}\n"
                    "    - {column: b, type: timestamp(3)}\n    - {column: c, type: numeric(7)}\n";
    assert_int_equal(ph_schema_load_buffer(&s, y, strlen(y), "t.yaml", err, sizeof err), 0);
    const ph_schema_table *t = ph_schema_find_table(s, NULL, "t", NULL);
    assert_int_equal(eng_col_typmod(ph_schema_find_column(t, "a")), 24);
    assert_int_equal(eng_col_typmod(ph_schema_find_column(t, "b")), 3);
    assert_int_equal(eng_col_typmod(ph_schema_find_column(t, "c")), (7 << 16) + 4);
    ph_schema_free(s);
}

static void bytea_is(const char *text, const char *want_hex)
{
    ph_buf b = {0};
    assert_int_equal(eng_bytea_from_text((const uint8_t *)text, strlen(text), &b), 0);
    char hex[256] = "";
    for (size_t i = 0; i < b.len; i++)
        snprintf(hex + 2 * i, sizeof hex - 2 * i, "%02x", b.data[i]);
    assert_string_equal(hex, want_hex);
    ph_buf_free(&b);
}

static void test_bytea_text(void **state)
{
    (void)state;
    bytea_is("\\x0102aBfF", "0102abff");
    bytea_is("\\x01 02\n0a\t", "01020a");
    bytea_is("\\x", "");
    bytea_is("ab\\\\c\\001", "61625c6301");
    const char *bad[] = {"\\x0", "\\x0 1", "\\x0g", "\\xzz", "a\\9", "a\\"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ph_buf b = {0};
        assert_int_equal(ph_buf_append(&b, "kept", 4), 0);
        assert_int_equal(eng_bytea_from_text((const uint8_t *)bad[i], strlen(bad[i]), &b), -1);
        assert_int_equal(b.len, 4); /* nothing appended on failure */
        ph_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_memo, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_decrypt_into, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_typmod, fx_setup, fx_teardown),
        cmocka_unit_test(test_bytea_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
