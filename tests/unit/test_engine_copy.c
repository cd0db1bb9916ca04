/*
 * test_engine_copy.c — unit tests for COPY through the session engine:
 * COPY FROM STDIN encrypts the protected columns of the client's data (text
 * and binary formats, rows split across CopyData messages, NULLs kept),
 * COPY TO STDOUT decrypts them (with and without a column list, the latter
 * through the catalog), COPY on a plain table streams untouched, and both
 * directions fail closed: a value that cannot be encrypted turns the data
 * into a CopyFail (nothing of it goes upstream), a value that cannot be
 * decrypted into an ErrorResponse with the rest of the answer dropped.
 * COPY FROM data sent before the server's CopyInResponse is encrypted too;
 * COPY data that belongs to no running statement never goes upstream.
 */
#include "test_engine_fixture.h"

#include "engine/colcrypt.h"

static void put_copy_response(ph_buf *b, char type, uint8_t overall, uint16_t n)
{
    mb m = mb_begin(b, type);
    mb_u8(&m, overall);
    mb_u16(&m, n);
    for (uint16_t i = 0; i < n; i++)
        mb_u16(&m, overall);
    mb_end(&m);
}

static void put_copy_data(ph_buf *b, const void *p, size_t n)
{
    mb m = mb_begin(b, 'd');
    mb_raw(&m, p, n);
    mb_end(&m);
}

/* Starts a COPY: the client's Query goes up unchanged, the server's
 * response comes back unchanged. */
static void start_copy(fx *f, const char *sql, char resp, uint8_t overall, uint16_t ncols)
{
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0};
    put_query(&in, sql);
    fx_c2s(f, &in, &up);
    assert_int_equal(up.len, in.len);
    assert_memory_equal(up.data, in.data, in.len);
    put_copy_response(&ans, resp, overall, ncols);
    fx_s2c(f, &ans, &down);
    assert_int_equal(down.len, ans.len);
    assert_memory_equal(down.data, ans.data, ans.len);
    FREE_ALL(&in, &up, &ans, &down);
}

/* Concatenated CopyData payloads of the messages in b. */
static void copy_payloads(const ph_buf *b, ph_buf *out, char *types, size_t cap)
{
    fx_msgs ms;
    fx_split(b, &ms);
    fx_types(&ms, types, cap);
    for (size_t i = 0; i < ms.n; i++)
        if (ms.m[i].type == 'd')
            assert_int_equal(ph_buf_append(out, ms.m[i].body, ms.m[i].len), 0);
}

static void test_copy_from_text(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    start_copy(f, "COPY customers (email, full_name, plan_tier) FROM STDIN", 'G', 0, 3);
    ph_buf in = {0}, up = {0}, data = {0}, det = {0}, hex = {0}, want = {0}, lit = {0}, pt = {0};
    const char rows[] = "alice@example.com\tAlice\tpro\nbob@example.com\t\\N\tfree\n";
    put_copy_data(&in, rows, 20); /* a row split across messages */
    put_copy_data(&in, rows + 20, sizeof rows - 1 - 20);
    put_empty(&in, 'c');
    fx_c2s(f, &in, &up);
    char types[16];
    copy_payloads(&up, &data, types, sizeof types);
    assert_int_equal(types[strlen(types) - 1], 'c');
    assert_false(fx_contains(data.data, data.len, "alice@example.com"));
    assert_false(fx_contains(data.data, data.len, "Alice"));
    fx_det(f, "customers", "email", "alice@example.com", &det);
    fx_hex(&det, &hex, false);
    assert_int_equal(ph_buf_append(&want, "\\", 1), 0);
    assert_int_equal(ph_buf_append(&want, hex.data, hex.len), 0);
    assert_int_equal(ph_buf_append(&want, "\t\\\\x", 4), 0);
    assert_memory_equal(data.data, want.data, want.len);
    /* the randomized full_name opens to Alice */
    const uint8_t *s = data.data + want.len, *tab = memchr(s, '\t', data.len - want.len);
    assert_non_null(tab);
    ph_buf one = {0};
    assert_int_equal(ph_buf_append(&one, "\\x", 2), 0);
    assert_int_equal(ph_buf_append(&one, s, (size_t)(tab - s)), 0);
    assert_int_equal(eng_bytea_from_text(one.data, one.len, &lit), 0);
    assert_int_equal(ph_field_decrypt_buf(fx_key(f, "customers", "full_name"), PH_FIELD_RANDOMIZED,
                                          lit.data, lit.len, &pt),
                     PH_FIELD_OK);
    assert_int_equal(pt.len, 5);
    assert_memory_equal(pt.data, "Alice", 5);
    assert_true(fx_contains(data.data, data.len, "\tpro\n\\\\x"));
    assert_true(fx_contains(data.data, data.len, "\t\\N\tfree\n"));
    /* the end of the COPY */
    ph_buf ans = {0}, down = {0};
    put_complete(&ans, "COPY 2");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    assert_int_equal(down.len, ans.len);
    FREE_ALL(&in, &up, &data, &det, &hex, &want, &lit, &pt, &one, &ans, &down);
}

static void test_copy_to_text(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    start_copy(f, "COPY customers (email, age, plan_tier) TO STDOUT", 'H', 0, 3);
    ph_buf ans = {0}, down = {0}, e1 = {0}, e2 = {0}, h1 = {0}, h2 = {0}, row = {0}, data = {0};
    fx_det(f, "customers", "email", "alice@example.com", &e1);
    fx_ope(f, "customers", "age", 42, &e2);
    fx_hex(&e1, &h1, false);
    fx_hex(&e2, &h2, false);
    assert_int_equal(ph_buf_append(&row, "\\", 1), 0);
    assert_int_equal(ph_buf_append(&row, h1.data, h1.len), 0);
    assert_int_equal(ph_buf_append(&row, "\t\\", 2), 0);
    assert_int_equal(ph_buf_append(&row, h2.data, h2.len), 0);
    assert_int_equal(ph_buf_append(&row, "\tpro\n\\N\t\\N\tfree\n", 16), 0);
    put_copy_data(&ans, row.data, row.len);
    put_empty(&ans, 'c');
    put_complete(&ans, "COPY 2");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    char types[16];
    copy_payloads(&down, &data, types, sizeof types);
    assert_string_equal(types, "dcCZ");
    const char want[] = "alice@example.com\t42\tpro\n\\N\t\\N\tfree\n";
    assert_int_equal(data.len, sizeof want - 1);
    assert_memory_equal(data.data, want, sizeof want - 1);
    FREE_ALL(&ans, &down, &e1, &e2, &h1, &h2, &row, &data);
}

/* Without a column list, the columns come from the catalog (all 5). */
static void test_copy_to_all_columns(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    start_copy(f, "COPY payments TO STDOUT", 'H', 0, 5);
    ph_buf ans = {0}, down = {0}, e1 = {0}, e2 = {0}, h1 = {0}, h2 = {0}, row = {0}, data = {0};
    fx_det(f, "customers", "email", "zoe@example.com", &e1);
    fx_ope(f, "payments", "paid_on", 8826, &e2);
    fx_hex(&e1, &h1, false);
    fx_hex(&e2, &h2, false);
    assert_int_equal(ph_buf_append(&row, "7\t\\", 3), 0);
    assert_int_equal(ph_buf_append(&row, h1.data, h1.len), 0);
    assert_int_equal(ph_buf_append(&row, "\t\\N\t12.50\t\\", 11), 0);
    assert_int_equal(ph_buf_append(&row, h2.data, h2.len), 0);
    assert_int_equal(ph_buf_append(&row, "\n", 1), 0);
    put_copy_data(&ans, row.data, row.len);
    put_empty(&ans, 'c');
    put_complete(&ans, "COPY 1");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    char types[16];
    copy_payloads(&down, &data, types, sizeof types);
    const char want[] = "7\tzoe@example.com\t\\N\t12.50\t2024-03-01\n";
    assert_int_equal(data.len, sizeof want - 1);
    assert_memory_equal(data.data, want, sizeof want - 1);
    FREE_ALL(&ans, &down, &e1, &e2, &h1, &h2, &row, &data);
}

static void test_copy_binary_from(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    start_copy(f, "COPY customers (age, plan_tier) FROM STDIN WITH (FORMAT binary)", 'G', 1, 2);
    ph_buf in = {0}, up = {0}, data = {0}, ope = {0}, payload = {0};
    static const uint8_t hdr[19] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};
    assert_int_equal(ph_buf_append(&payload, hdr, sizeof hdr), 0);
    static const uint8_t tuple[] = {0, 2, 0, 0, 0, 4, 0, 0, 0, 42, 0, 0, 0, 3, 'p', 'r', 'o'};
    assert_int_equal(ph_buf_append(&payload, tuple, sizeof tuple), 0);
    static const uint8_t trailer[2] = {0xff, 0xff};
    assert_int_equal(ph_buf_append(&payload, trailer, 2), 0);
    put_copy_data(&in, payload.data, payload.len);
    put_empty(&in, 'c');
    fx_c2s(f, &in, &up);
    char types[16];
    copy_payloads(&up, &data, types, sizeof types);
    fx_ope(f, "customers", "age", 42, &ope);
    /* header | count | len 42 | envelope | len 3 | pro | trailer */
    assert_int_equal(data.len, sizeof hdr + 2 + 4 + ope.len + 4 + 3 + 2);
    assert_memory_equal(data.data, hdr, sizeof hdr);
    const uint8_t *t = data.data + sizeof hdr;
    assert_int_equal(ph_get_u16(t), 2);
    assert_int_equal(ph_get_u32(t + 2), ope.len);
    assert_memory_equal(t + 6, ope.data, ope.len);
    assert_memory_equal(t + 6 + ope.len, tuple + 10, 7);
    FREE_ALL(&in, &up, &data, &ope, &payload);
}

static void test_copy_plain_table_untouched(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    start_copy(f, "COPY orders FROM STDIN", 'G', 0, 2);
    assert_int_equal(ph_session_c2s_header(f->s, 'd', 100), PGF_PASS);
    ph_buf in = {0}, up = {0};
    put_copy_data(&in, "1\tx\n", 4);
    put_empty(&in, 'c');
    fx_c2s(f, &in, &up);
    assert_int_equal(up.len, in.len);
    assert_memory_equal(up.data, in.data, in.len);
    FREE_ALL(&in, &up);
}

static void test_copy_from_bad_value_fails(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    start_copy(f, "COPY customers (email, age) FROM STDIN", 'G', 0, 2);
    ph_buf in = {0}, up = {0};
    put_copy_data(&in, "ok@example.com\t1\n", 17);
    put_copy_data(&in, "secret@example.com\tnot-a-number\n", 32);
    put_copy_data(&in, "more@example.com\t3\n", 19);
    put_empty(&in, 'c');
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    char types[16];
    fx_split(&up, &ms);
    fx_types(&ms, types, sizeof types);
    assert_string_equal(types, "df"); /* the first row, then CopyFail; the rest dropped */
    assert_false(fx_contains(up.data, up.len, "secret@example.com"));
    assert_false(fx_contains(up.data, up.len, "more@example.com"));
    assert_false(fx_contains(up.data, up.len, "not-a-number"));
    assert_non_null(strstr((const char *)ms.m[1].body, "customers.age"));
    /* the session continues normally afterwards */
    ph_buf ans = {0}, down = {0}, in2 = {0}, up2 = {0};
    put_error(&ans, "57014", "COPY from stdin failed");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    assert_int_equal(down.len, ans.len);
    put_query(&in2, "SELECT 1");
    fx_c2s(f, &in2, &up2);
    assert_int_equal(up2.len, in2.len);
    FREE_ALL(&in, &up, &ans, &down, &in2, &up2);
}

static void test_copy_to_corrupt_fails(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    start_copy(f, "COPY customers (full_name) TO STDOUT", 'H', 0, 1);
    ph_buf ans = {0}, down = {0}, e = {0}, h = {0}, row = {0};
    fx_rand(f, "customers", "full_name", "Ivan", &e);
    e.data[10] ^= 0x40;
    fx_hex(&e, &h, false);
    assert_int_equal(ph_buf_append(&row, "\\", 1), 0);
    assert_int_equal(ph_buf_append(&row, h.data, h.len), 0);
    assert_int_equal(ph_buf_append(&row, "\n", 1), 0);
    put_copy_data(&ans, row.data, row.len);
    put_copy_data(&ans, row.data, row.len);
    put_empty(&ans, 'c');
    put_complete(&ans, "COPY 2");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_msgs ms;
    fx_expect_types(&down, &ms, "EZ");
    assert_string_equal(fx_error_field(&ms.m[0], 'C'), "XX001");
    FREE_ALL(&ans, &down, &e, &h, &row);
}

/* COPY FROM without a column list and no catalog: nothing goes upstream. */
static void test_copy_without_catalog_fails_closed(void **state)
{
    fx *f = *state;
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0};
    put_query(&in, "COPY customers FROM STDIN");
    fx_c2s(f, &in, &up);
    fx_catalog_answer(&ans);
    /* a catalog that does not know customers (e.g. created later) */
    ph_buf empty = {0};
    fx_field fl[5] = {{"oid", 0, 0, 26, 4, -1, 0},
                      {"attnum", 0, 0, 21, 2, -1, 0},
                      {"nspname", 0, 0, 19, 64, -1, 0},
                      {"relname", 0, 0, 19, 64, -1, 0},
                      {"attname", 0, 0, 19, 64, -1, 0}};
    put_rowdesc(&empty, 5, fl);
    put_complete(&empty, "SELECT 0");
    put_ready(&empty, 'I');
    put_copy_response(&empty, 'G', 0, 9);
    fx_s2c(f, &empty, &down);
    ph_buf in2 = {0}, up2 = {0};
    put_copy_data(&in2, "1\tsecret@example.com\n", 21);
    put_empty(&in2, 'c');
    fx_c2s(f, &in2, &up2);
    fx_msgs ms;
    fx_expect_types(&up2, &ms, "f");
    assert_false(fx_contains(up2.data, up2.len, "secret"));
    FREE_ALL(&in, &up, &ans, &down, &empty, &in2, &up2);
}

/* A client may send its data right behind the statement, before the
 * server's CopyInResponse (asyncpg does): the data is encrypted all the same,
 * and the CopyInResponse that follows passes. */
static void test_copy_from_before_response(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, data = {0}, ans = {0}, down = {0};
    put_query(&in, "COPY customers (email, full_name, plan_tier) FROM STDIN");
    const char rows[] = "early@example.com\tEarly Bird\tpro\n";
    put_copy_data(&in, rows, 12);
    put_copy_data(&in, rows + 12, sizeof rows - 1 - 12);
    put_empty(&in, 'c');
    fx_c2s(f, &in, &up);
    char types[16];
    copy_payloads(&up, &data, types, sizeof types);
    assert_int_equal(types[0], 'Q');
    assert_int_equal(types[strlen(types) - 1], 'c');
    assert_false(fx_contains(up.data, up.len, "early@example.com"));
    assert_false(fx_contains(up.data, up.len, "Early Bird"));
    assert_true(fx_contains(data.data, data.len, "\tpro\n"));
    put_copy_response(&ans, 'G', 0, 3);
    put_complete(&ans, "COPY 1");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    assert_int_equal(down.len, ans.len);
    assert_memory_equal(down.data, ans.data, ans.len);
    /* the next COPY, the usual way, is encrypted too */
    start_copy(f, "COPY customers (email, full_name, plan_tier) FROM STDIN", 'G', 0, 3);
    ph_buf in2 = {0}, up2 = {0};
    put_copy_data(&in2, rows, sizeof rows - 1);
    put_empty(&in2, 'c');
    fx_c2s(f, &in2, &up2);
    assert_false(fx_contains(up2.data, up2.len, "early@example.com"));
    assert_true(fx_contains(up2.data, up2.len, "\tpro\n"));
    FREE_ALL(&in, &up, &data, &ans, &down, &in2, &up2);
}

/* COPY data that belongs to no statement the server is running (after the
 * ReadyForQuery, or behind a refused statement) never goes upstream. */
static void test_copy_stray_data_dropped(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0};
    put_copy_data(&in, "stray@example.com\n", 18);
    put_empty(&in, 'c');
    fx_c2s(f, &in, &up);
    assert_int_equal(up.len, 0);
    ph_buf in2 = {0}, up2 = {0};
    put_query(&in2, "SELECT 1 FROM customers WHERE email LIKE 'a%'");
    put_copy_data(&in2, "refused@example.com\n", 20);
    fx_c2s(f, &in2, &up2);
    assert_true(up2.len > 0);
    assert_false(fx_contains(up2.data, up2.len, "refused@example.com"));
    FREE_ALL(&in, &up, &in2, &up2);
}

/* CSV: the statement's options reach the codec (no backslash escaping,
 * quoting of values that need it). */
static void test_copy_csv_both_ways(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    start_copy(f, "COPY customers (email, full_name) FROM STDIN WITH (FORMAT csv)", 'G', 0, 2);
    ph_buf in = {0}, up = {0}, data = {0}, det = {0}, hex = {0};
    const char rows[] = "alice@example.com,\"O'Hara, A\"\n";
    put_copy_data(&in, rows, sizeof rows - 1);
    put_empty(&in, 'c');
    fx_c2s(f, &in, &up);
    char types[16];
    copy_payloads(&up, &data, types, sizeof types);
    assert_string_equal(types, "dc");
    fx_det(f, "customers", "email", "alice@example.com", &det);
    fx_hex(&det, &hex, false);
    assert_memory_equal(data.data, hex.data, hex.len); /* \x<hex>, not escaped */
    assert_int_equal(data.data[hex.len], ',');
    assert_false(fx_contains(data.data, data.len, "O'Hara"));
    ph_buf ans = {0}, down = {0};
    put_complete(&ans, "COPY 1");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);

    start_copy(f, "COPY customers (email, full_name) TO STDOUT (FORMAT csv)", 'H', 0, 2);
    ph_buf ans2 = {0}, down2 = {0}, e2 = {0}, h2 = {0}, row = {0}, out = {0};
    fx_rand(f, "customers", "full_name", "O'Hara, A", &e2);
    fx_hex(&e2, &h2, false);
    assert_int_equal(ph_buf_append(&row, hex.data, hex.len), 0);
    assert_int_equal(ph_buf_append(&row, ",", 1), 0);
    assert_int_equal(ph_buf_append(&row, h2.data, h2.len), 0);
    assert_int_equal(ph_buf_append(&row, "\n", 1), 0);
    put_copy_data(&ans2, row.data, row.len);
    put_empty(&ans2, 'c');
    put_complete(&ans2, "COPY 1");
    put_ready(&ans2, 'I');
    fx_s2c(f, &ans2, &down2);
    copy_payloads(&down2, &out, types, sizeof types);
    const char want[] = "alice@example.com,\"O'Hara, A\"\n";
    assert_int_equal(out.len, sizeof want - 1);
    assert_memory_equal(out.data, want, sizeof want - 1);
    FREE_ALL(&in, &up, &data, &det, &hex, &ans, &down, &ans2, &down2, &e2, &h2, &row, &out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copy_from_text, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_copy_to_text, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_copy_to_all_columns, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_copy_binary_from, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_copy_plain_table_untouched, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_copy_from_bad_value_fails, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_copy_to_corrupt_fails, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_copy_without_catalog_fails_closed, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_copy_csv_both_ways, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_copy_from_before_response, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_copy_stray_data_dropped, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
