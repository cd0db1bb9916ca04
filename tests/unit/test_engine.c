/*
 * test_engine.c — unit tests for the session engine on the simple query
 * protocol, driven through the real framer with scripted message bytes in
 * both directions and real encryption under test keys: the injected catalog
 * query and the swallowing of its answer, byte-identical pass-through of
 * traffic that names no protected table, literal rewriting, refusals turned
 * into a server-raised error (the plaintext never goes upstream), syntax
 * errors that do not quote the statement, RowDescription/DataRow decryption,
 * a corrupt envelope failing the result closed, plan-based decryption of
 * computed columns, multi-statement strings, DDL triggering a catalog
 * refresh, a failed catalog load failing SELECT * closed, INSERT without a
 * column list, standard_conforming_strings off, and a missing key.
 */
#include "test_engine_fixture.h"

#include "engine/colcrypt.h"
#include "engine/engine_internal.h"

/* ---- catalog and pass-through ------------------------------------------------------------ */

static void test_catalog_injected_and_swallowed(void **state)
{
    fx *f = *state;
    fx_load_catalog(f); /* asserts the injection and the swallowing */
    assert_int_equal(f->z_kept, 1);
    /* the second statement gets no catalog query */
    ph_buf in = {0}, up = {0};
    put_query(&in, "SELECT 2");
    fx_c2s(f, &in, &up);
    assert_int_equal(up.len, in.len);
    assert_memory_equal(up.data, in.data, in.len);
    ph_buf_free(&in);
    ph_buf_free(&up);
}

static void test_plain_traffic_untouched(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0};
    put_query(&in, "SELECT id, note FROM orders WHERE note = 'x'; SELECT 3");
    fx_c2s(f, &in, &up);
    assert_int_equal(up.len, in.len);
    assert_memory_equal(up.data, in.data, in.len);

    fx_field fl[2] = {{"id", 20000, 1, 23, 4, -1, 0}, {"note", 20000, 2, 17, -1, -1, 0}};
    put_rowdesc(&ans, 2, fl);
    char *big = malloc(100000);
    memset(big, 'z', 100000);
    fx_val v[2] = {fx_str("7"), {big, 100000}};
    put_datarow(&ans, 2, v);
    put_complete(&ans, "SELECT 1");
    put_error(&ans, "42P01", "relation does not exist");
    put_ready(&ans, 'I');
    /* a plain result's DataRow is not even inspected */
    fx_s2c(f, &ans, &down);
    assert_int_equal(down.len, ans.len);
    assert_memory_equal(down.data, ans.data, ans.len);
    ph_buf_free(&down);

    ph_buf t2 = {0};
    put_rowdesc(&t2, 2, fl);
    fx_s2c(f, &t2, &down);
    assert_int_equal(ph_session_s2c_header(f->s, 'D', 100005), PGF_PASS);
    free(big);
    ph_buf_free(&t2);
    ph_buf_free(&in);
    ph_buf_free(&up);
    ph_buf_free(&ans);
    ph_buf_free(&down);
}

/* ---- rewriting and refusing --------------------------------------------------------------- */

/* Extracts the n-th '\x...'::bytea literal of sql into out (raw bytes). */
static void nth_literal(const uint8_t *sql, size_t len, int n, ph_buf *out)
{
    const char *p = (const char *)sql, *end = (const char *)sql + len;
    for (int k = 0; k <= n; k++) {
        p = memmem(p, (size_t)(end - p), "'\\x", 3);
        assert_non_null(p);
        p += 3;
    }
    const char *q = memchr(p, '\'', (size_t)(end - p));
    assert_non_null(q);
    assert_int_equal(eng_bytea_from_text((const uint8_t *)p - 2, (size_t)(q - p) + 2, out), 0);
}

static void test_query_literals_encrypted(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, det = {0}, hex = {0}, lit = {0}, pt = {0};
    put_query(&in, "INSERT INTO customers (email, full_name, plan_tier) VALUES "
                   "('alice@example.com', 'Alice', 'pro')");
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_split(&up, &ms);
    assert_int_equal(ms.n, 1);
    assert_int_equal(ms.m[0].type, 'Q');
    assert_false(fx_contains(up.data, up.len, "alice@example.com"));
    assert_false(fx_contains(up.data, up.len, "Alice"));
    /* email: the exact deterministic envelope */
    fx_det(f, "customers", "email", "alice@example.com", &det);
    fx_hex(&det, &hex, true);
    char want[1024];
    snprintf(want, sizeof want, "INSERT INTO customers (email, full_name, plan_tier) VALUES (%s, '",
             hex.data);
    assert_memory_equal(ms.m[0].body, want, strlen(want));
    assert_true(fx_contains(up.data, up.len, ", 'pro')"));
    /* full_name: a randomized envelope that opens to Alice */
    nth_literal(ms.m[0].body, ms.m[0].len, 1, &lit);
    assert_int_equal(ph_field_decrypt_buf(fx_key(f, "customers", "full_name"), PH_FIELD_RANDOMIZED,
                                          lit.data, lit.len, &pt),
                     PH_FIELD_OK);
    assert_int_equal(pt.len, 5);
    assert_memory_equal(pt.data, "Alice", 5);
    ph_buf_free(&in);
    ph_buf_free(&up);
    ph_buf_free(&det);
    ph_buf_free(&hex);
    ph_buf_free(&lit);
    ph_buf_free(&pt);
}

static void test_query_refused_in_order(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0};
    put_query(&in, "SELECT email FROM customers WHERE full_name LIKE 'Ali%'");
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_split(&up, &ms);
    assert_int_equal(ms.n, 1);
    assert_int_equal(ms.m[0].type, 'Q');
    const char *sql = (const char *)ms.m[0].body;
    const char *head = "DO $phantom$ BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = E'";
    assert_memory_equal(sql, head, strlen(head));
    assert_non_null(strstr(sql, "LIKE"));
    assert_non_null(strstr(sql, "customers.full_name"));
    assert_non_null(strstr(sql, "'; END $phantom$"));
    assert_false(fx_contains(up.data, up.len, "Ali%"));
    /* the server's error answers the client's Query, without the CONTEXT
     * line (W) the DO statement adds */
    mb m = mb_begin(&ans, 'E');
    mb_u8(&m, 'S');
    mb_str(&m, "ERROR");
    mb_u8(&m, 'C');
    mb_str(&m, "0A000");
    mb_u8(&m, 'M');
    mb_str(&m, "phantom: cannot apply LIKE");
    mb_u8(&m, 'W');
    mb_str(&m, "PL/pgSQL function inline_code_block line 1 at RAISE");
    mb_u8(&m, 0);
    mb_end(&m);
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    ph_buf want = {0};
    put_error(&want, "0A000", "phantom: cannot apply LIKE");
    put_ready(&want, 'I');
    assert_int_equal(down.len, want.len);
    assert_memory_equal(down.data, want.data, want.len);
    ph_buf_free(&want);
    assert_int_equal(f->z_kept, 2);
    ph_buf_free(&in);
    ph_buf_free(&up);
    ph_buf_free(&ans);
    ph_buf_free(&down);
}

static void test_refusal_sql_escaping(void **state)
{
    (void)state;
    ph_buf b = {0};
    assert_int_equal(eng_refusal_sql(&b, "0A000", "it's \\ $phantom$ end"), 0);
    assert_string_equal((const char *)b.data,
                        "DO $phantom$ BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = "
                        "E'it''s \\\\ ?phantom$ end'; END $phantom$");
    b.len = 0;
    assert_int_equal(eng_refusal_sql(&b, "bad';", "m"), 0);
    assert_non_null(strstr((const char *)b.data, "ERRCODE = 'XX000'"));
    ph_buf_free(&b);
}

static void test_syntax_error_hides_token(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0};
    put_query(&in, "INSERT INTO customers (email) VALUES ('top-secret' oops)");
    fx_c2s(f, &in, &up);
    assert_false(fx_contains(up.data, up.len, "top-secret"));
    assert_false(fx_contains(up.data, up.len, "oops"));
    assert_true(fx_contains(up.data, up.len, "ERRCODE = '42601'"));
    assert_true(fx_contains(up.data, up.len, "syntax error at character "));
    ph_buf_free(&in);
    ph_buf_free(&up);
}

/* ---- results ------------------------------------------------------------------------------- */

static void test_results_decrypted_text(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0};
    ph_buf e1 = {0}, e2 = {0}, e3 = {0}, e4 = {0}, h1 = {0}, h2 = {0}, h3 = {0}, h4 = {0};
    put_query(&in, "SELECT email, full_name, age, signup_day, plan_tier FROM customers");
    fx_c2s(f, &in, &up);
    assert_int_equal(up.len, in.len); /* nothing to rewrite */

    fx_field fl[5] = {{"email", FX_CUST, 2, 17, -1, -1, 0},
                      {"full_name", FX_CUST, 3, 17, -1, -1, 0},
                      {"age", FX_CUST, 7, 17, -1, -1, 0},
                      {"signup_day", FX_CUST, 6, 17, -1, -1, 0},
                      {"plan_tier", FX_CUST, 9, 25, -1, -1, 0}};
    put_rowdesc(&ans, 5, fl);
    fx_det(f, "customers", "email", "alice@example.com", &e1);
    fx_rand(f, "customers", "full_name", "Alice O'Hara", &e2);
    fx_ope(f, "customers", "age", 42, &e3);
    fx_ope(f, "customers", "signup_day", 8826, &e4); /* 2024-03-01 */
    fx_hex(&e1, &h1, false);
    fx_hex(&e2, &h2, false);
    fx_hex(&e3, &h3, false);
    fx_hex(&e4, &h4, false);
    fx_val row1[5] = {
        {h1.data, h1.len}, {h2.data, h2.len}, {h3.data, h3.len}, {h4.data, h4.len}, fx_str("pro")};
    fx_val row2[5] = {{h1.data, h1.len}, {NULL, 0}, {NULL, 0}, {NULL, 0}, {NULL, 0}};
    put_datarow(&ans, 5, row1);
    put_datarow(&ans, 5, row2);
    put_complete(&ans, "SELECT 2");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);

    fx_msgs ms;
    fx_expect_types(&down, &ms, "TDDCZ");
    /* RowDescription: logical types, typlen, typmod -1 */
    fx_rd r = fx_reader(&ms.m[0]);
    assert_int_equal(fx_u16(&r), 5);
    const uint32_t want_oid[5] = {25, 25, 23, 1082, 25};
    const int16_t want_len[5] = {-1, -1, 4, 4, -1};
    for (int i = 0; i < 5; i++) {
        assert_string_equal(fx_cstr(&r), fl[i].name);
        assert_int_equal(fx_u32(&r), fl[i].table);
        assert_int_equal((int16_t)fx_u16(&r), fl[i].attnum);
        assert_int_equal(fx_u32(&r), want_oid[i]);
        assert_int_equal((int16_t)fx_u16(&r), want_len[i]);
        assert_int_equal((int32_t)fx_u32(&r), -1);
        assert_int_equal(fx_u16(&r), 0);
    }
    fx_expect_field_str(&ms.m[1], 0, "alice@example.com");
    fx_expect_field_str(&ms.m[1], 1, "Alice O'Hara");
    fx_expect_field_str(&ms.m[1], 2, "42");
    fx_expect_field_str(&ms.m[1], 3, "2024-03-01");
    fx_expect_field_str(&ms.m[1], 4, "pro");
    const uint8_t *v;
    fx_expect_field_str(&ms.m[2], 0, "alice@example.com");
    for (uint16_t i = 1; i < 5; i++)
        assert_int_equal(fx_datarow_field(&ms.m[2], i, &v), -1);
    assert_int_equal(ms.m[3].len + 5, strlen("SELECT 2") + 1 + 5);
    FREE_ALL(&in, &up, &ans, &down, &e1, &e2, &e3, &e4, &h1, &h2, &h3, &h4);
}

static void test_corrupt_envelope_fails_closed(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0}, e = {0}, h = {0}, hb = {0};
    put_query(&in, "SELECT full_name FROM customers");
    fx_c2s(f, &in, &up);
    fx_field fl = {"full_name", FX_CUST, 3, 17, -1, -1, 0};
    put_rowdesc(&ans, 1, &fl);
    fx_rand(f, "customers", "full_name", "Bob", &e);
    fx_hex(&e, &h, false);
    fx_val good = {h.data, h.len};
    put_datarow(&ans, 1, &good);
    e.data[e.len - 1] ^= 1; /* break the tag */
    fx_hex(&e, &hb, false);
    fx_val bad = {hb.data, hb.len};
    put_datarow(&ans, 1, &bad);
    put_datarow(&ans, 1, &good);
    put_complete(&ans, "SELECT 3");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_msgs ms;
    fx_expect_types(&down, &ms, "TDEZ");
    fx_expect_field_str(&ms.m[1], 0, "Bob");
    assert_string_equal(fx_error_field(&ms.m[2], 'C'), "XX001");
    assert_non_null(strstr(fx_error_field(&ms.m[2], 'M'), "customers.full_name"));
    assert_false(fx_contains(down.data, down.len, (const char *)hb.data + 2));
    /* the next statement's results are decrypted again */
    ph_buf in2 = {0}, up2 = {0}, ans2 = {0}, down2 = {0};
    put_query(&in2, "SELECT full_name FROM customers");
    fx_c2s(f, &in2, &up2);
    put_rowdesc(&ans2, 1, &fl);
    put_datarow(&ans2, 1, &good);
    put_complete(&ans2, "SELECT 1");
    put_ready(&ans2, 'I');
    fx_s2c(f, &ans2, &down2);
    fx_expect_types(&down2, &ms, "TDCZ");
    FREE_ALL(&in, &up, &ans, &down, &e, &h, &hb, &in2, &up2, &ans2, &down2);
}

/* A field the server cannot attribute to a table (tableoid 0) is decrypted
 * by the rewriter's output plan. */
static void test_plan_outputs_decrypt(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0}, e = {0}, h = {0};
    put_query(&in, "SELECT 1 AS one, x.e, 2 AS two FROM (SELECT email AS e FROM customers) x");
    fx_c2s(f, &in, &up);
    fx_field fl[3] = {
        {"one", 0, 0, 23, 4, -1, 0}, {"e", 0, 0, 17, -1, -1, 0}, {"two", 0, 0, 23, 4, -1, 0}};
    put_rowdesc(&ans, 3, fl);
    fx_det(f, "customers", "email", "carol@example.com", &e);
    fx_hex(&e, &h, false);
    fx_val row[3] = {fx_str("1"), {h.data, h.len}, fx_str("2")};
    put_datarow(&ans, 3, row);
    put_complete(&ans, "SELECT 1");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_msgs ms;
    fx_split(&down, &ms);
    assert_int_equal(ms.n, 4);
    fx_expect_field_str(&ms.m[1], 0, "1");
    fx_expect_field_str(&ms.m[1], 1, "carol@example.com");
    fx_expect_field_str(&ms.m[1], 2, "2");
    FREE_ALL(&in, &up, &ans, &down, &e, &h);
}

static void test_multi_statement(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0}, e1 = {0}, h1 = {0}, e2 = {0}, h2 = {0};
    put_query(&in, "SELECT 1 AS n, email FROM customers; SELECT card_number FROM payments");
    fx_c2s(f, &in, &up);
    fx_field a[2] = {{"n", 0, 0, 23, 4, -1, 0}, {"email", 0, 0, 17, -1, -1, 0}};
    fx_field b = {"card_number", 0, 0, 17, -1, -1, 0};
    fx_det(f, "customers", "email", "dan@example.com", &e1);
    fx_hex(&e1, &h1, false);
    fx_rand(f, "payments", "card_number", "4111111111111111", &e2);
    fx_hex(&e2, &h2, false);
    put_rowdesc(&ans, 2, a);
    fx_val r1[2] = {fx_str("1"), {h1.data, h1.len}};
    put_datarow(&ans, 2, r1);
    put_complete(&ans, "SELECT 1");
    put_rowdesc(&ans, 1, &b);
    fx_val r2 = {h2.data, h2.len};
    put_datarow(&ans, 1, &r2);
    put_complete(&ans, "SELECT 1");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_msgs ms;
    fx_expect_types(&down, &ms, "TDCTDCZ");
    fx_expect_field_str(&ms.m[1], 1, "dan@example.com");
    fx_expect_field_str(&ms.m[4], 0, "4111111111111111");
    FREE_ALL(&in, &up, &ans, &down, &e1, &h1, &e2, &h2);
}

static void test_async_messages_pass(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0}, e = {0}, h = {0};
    put_query(&in, "SELECT phone FROM customers");
    fx_c2s(f, &in, &up);
    fx_field fl = {"phone", FX_CUST, 4, 17, -1, -1, 0};
    put_rowdesc(&ans, 1, &fl);
    mb m = mb_begin(&ans, 'N');
    mb_u8(&m, 'M');
    mb_str(&m, "a notice");
    mb_u8(&m, 0);
    mb_end(&m);
    m = mb_begin(&ans, 'A');
    mb_u32(&m, 1);
    mb_str(&m, "chan");
    mb_str(&m, "payload");
    mb_end(&m);
    fx_rand(f, "customers", "phone", "+33 1 23", &e);
    fx_hex(&e, &h, false);
    fx_val v = {h.data, h.len};
    put_datarow(&ans, 1, &v);
    put_complete(&ans, "SELECT 1");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_msgs ms;
    fx_expect_types(&down, &ms, "TNADCZ");
    fx_expect_field_str(&ms.m[3], 0, "+33 1 23");
    FREE_ALL(&in, &up, &ans, &down, &e, &h);
}

/* ---- catalog refresh and failure ---------------------------------------------------------------
 */

/* SELECT email FROM customers answered with one encrypted row: the client's
 * messages in down. */
static void select_email(fx *f, const ph_buf *hex_email, ph_buf *down)
{
    ph_buf in = {0}, up = {0}, ans = {0};
    put_query(&in, "SELECT email FROM customers");
    fx_c2s(f, &in, &up);
    fx_field fl[1] = {{"email", FX_CUST, 2, 17, -1, -1, 0}};
    put_rowdesc(&ans, 1, fl);
    fx_val row[1] = {{hex_email->data, hex_email->len}};
    put_datarow(&ans, 1, row);
    put_complete(&ans, "SELECT 1");
    put_ready(&ans, 'I');
    down->len = 0;
    fx_s2c(f, &ans, down);
    FREE_ALL(&in, &up, &ans);
}

/* A repeated RowDescription reuses the answer worked out for the first one,
 * but never across a catalog reload: here customers was dropped meanwhile
 * (the new catalog does not have it), so its field is stale, not decrypted. */
static void test_rowdesc_memo(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf e = {0}, h = {0}, d1 = {0}, d2 = {0}, d3 = {0};
    fx_det(f, "customers", "email", "alice@example.com", &e);
    fx_hex(&e, &h, false);
    select_email(f, &h, &d1);
    select_email(f, &h, &d2);
    fx_msgs ms;
    fx_expect_types(&d1, &ms, "TDCZ");
    fx_expect_field_str(&ms.m[1], 0, "alice@example.com");
    assert_int_equal(d2.len, d1.len); /* the remembered answer is the same */
    assert_memory_equal(d2.data, d1.data, d1.len);

    ph_buf in = {0}, up = {0}, ans = {0}, down = {0};
    put_query(&in, "ALTER TABLE payments ADD COLUMN note text");
    fx_c2s(f, &in, &up);
    fx_split(&up, &ms);
    assert_int_equal(ms.n, 2);
    assert_true(fx_is_catalog_query(&ms.m[1]));
    put_complete(&ans, "ALTER TABLE");
    put_ready(&ans, 'T');
    fx_field cf[5] = {{"oid", 1259, -2, 26, 4, -1, 0},
                      {"attnum", 1249, 6, 21, 2, -1, 0},
                      {"nspname", 2615, 2, 19, 64, -1, 0},
                      {"relname", 1259, 2, 19, 64, -1, 0},
                      {"attname", 1249, 2, 19, 64, -1, 0}};
    put_rowdesc(&ans, 5, cf);
    fx_catalog_rows(&ans, FX_PAY, "payments", fx_pay_cols, 5);
    put_complete(&ans, "SELECT 5");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);

    select_email(f, &h, &d3);
    fx_expect_types(&d3, &ms, "EZ");
    assert_string_equal(fx_error_field(&ms.m[0], 'C'), "55000");
    FREE_ALL(&e, &h, &d1, &d2, &d3, &in, &up, &ans, &down);
}

static void test_ddl_refreshes_catalog(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0};
    put_query(&in, "ALTER TABLE customers ADD COLUMN phone text");
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_split(&up, &ms);
    /* the DDL, then at once a fresh catalog query */
    assert_int_equal(ms.n, 2);
    assert_non_null(strstr((const char *)ms.m[0].body, "bytea"));
    assert_true(fx_is_catalog_query(&ms.m[1]));
    put_complete(&ans, "ALTER TABLE");
    put_ready(&ans, 'T');
    fx_s2c(f, &ans, &down);
    /* the DDL's ReadyForQuery is held back until the catalog is in ... */
    fx_expect_types(&down, &ms, "C");
    ph_buf cat = {0}, down2 = {0}, in2 = {0}, up2 = {0};
    fx_catalog_answer(&cat);
    fx_s2c(f, &cat, &down2);
    /* ... and the catalog answer's stands in for it (its transaction status) */
    fx_expect_types(&down2, &ms, "Z");
    assert_int_equal(ms.m[0].body[0], 'I');
    /* the next statement goes upstream alone: the catalog is fresh */
    put_query(&in2, "SELECT 5");
    fx_c2s(f, &in2, &up2);
    assert_int_equal(up2.len, in2.len);
    assert_memory_equal(up2.data, in2.data, in2.len);
    FREE_ALL(&in, &up, &ans, &down, &cat, &down2, &in2, &up2);
}

static void test_ddl_in_copy_string_reloads_later(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0};
    /* a string with a COPY FROM STDIN: no catalog query may follow it (the
     * server would read it as COPY data), so the next statement gets it */
    put_query(&in, "ALTER TABLE customers ADD COLUMN phone text; COPY customers (id) FROM STDIN");
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_split(&up, &ms);
    assert_int_equal(ms.n, 1);
    put_complete(&ans, "ALTER TABLE");
    put_error(&ans, "42501", "permission denied");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_expect_types(&down, &ms, "CEZ");
    fx_expect_catalog_first(f, "SELECT 5");
    FREE_ALL(&in, &up, &ans, &down);
}

static void test_catalog_failure_fails_star_closed(void **state)
{
    fx *f = *state;
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0};
    put_query(&in, "SELECT * FROM customers");
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_split(&up, &ms);
    assert_int_equal(ms.n, 2);
    assert_true(fx_is_catalog_query(&ms.m[0]));
    put_error(&ans, "25P02", "current transaction is aborted");
    put_ready(&ans, 'E');
    fx_field fl[2] = {{"id", FX_CUST, 1, 23, 4, -1, 0}, {"email", FX_CUST, 2, 17, -1, -1, 0}};
    put_rowdesc(&ans, 2, fl);
    fx_val v[2] = {fx_str("1"), fx_str("\\x0102")};
    put_datarow(&ans, 2, v);
    put_complete(&ans, "SELECT 1");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_expect_types(&down, &ms, "EZ");
    assert_string_equal(fx_error_field(&ms.m[0], 'C'), "55000");
    /* the catalog is retried before the next statement */
    fx_expect_catalog_first(f, "SELECT 6");
    FREE_ALL(&in, &up, &ans, &down);
}

static void test_insert_without_column_list(void **state)
{
    fx *f = *state;
    ph_buf in = {0}, up = {0};
    /* before the catalog is known: refused (fail closed) */
    put_query(&in, "INSERT INTO customers VALUES (1, 'eve@example.com')");
    fx_c2s(f, &in, &up);
    assert_true(fx_contains(up.data, up.len, "needs a column list"));
    assert_false(fx_contains(up.data, up.len, "eve@example.com"));
    ph_buf ans = {0}, down = {0};
    fx_catalog_answer(&ans);
    put_error(&ans, "0A000", "refused");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    /* with the catalog: the second value is customers.email */
    ph_buf up2 = {0}, det = {0}, hex = {0};
    fx_c2s(f, &in, &up2);
    fx_det(f, "customers", "email", "eve@example.com", &det);
    fx_hex(&det, &hex, true);
    assert_true(fx_contains(up2.data, up2.len, (const char *)hex.data));
    assert_false(fx_contains(up2.data, up2.len, "eve@example.com"));
    FREE_ALL(&in, &up, &ans, &down, &up2, &det, &hex);
}

static void test_scs_off_refuses_backslash(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf st = {0}, down = {0}, in = {0}, up = {0};
    put_param_status(&st, "standard_conforming_strings", "off");
    fx_s2c(f, &st, &down);
    assert_int_equal(down.len, st.len);
    put_query(&in, "INSERT INTO customers (email) VALUES ('a\\\\b@example.com')");
    fx_c2s(f, &in, &up);
    assert_true(fx_contains(up.data, up.len, "standard_conforming_strings is off"));
    assert_false(fx_contains(up.data, up.len, "b@example.com"));
    FREE_ALL(&st, &down, &in, &up);
}

static void test_missing_key_refuses(void **state)
{
    fx *f = *state;
    /* an engine whose keys lack the email domain */
    ph_keysource *ks = ph_keysource_new();
    uint8_t dek[PH_FIELD_DEK_LEN];
    fx_dek("customers.full_name", dek);
    assert_int_equal(ph_keysource_add(ks, "customers.full_name", 1, dek, 1), 0);
    ph_engine *e = ph_engine_new(f->schema, ks);
    ph_session *s = ph_session_new(e);
    ph_session *keep = f->s;
    f->s = s;
    fx_login(f);
    ph_buf in = {0}, up = {0};
    put_query(&in, "INSERT INTO customers (email) VALUES ('frank@example.com')");
    fx_c2s(f, &in, &up);
    assert_true(fx_contains(up.data, up.len, "no encryption key for key domain customers.email"));
    assert_false(fx_contains(up.data, up.len, "frank@example.com"));
    f->s = keep;
    ph_session_free(s);
    ph_engine_free(e);
    ph_keysource_free(ks);
    ph_buf_free(&in);
    ph_buf_free(&up);
}

static void test_empty_schema_is_transparent(void **state)
{
    (void)state;
    ph_schema *sc = ph_schema_new_empty();
    ph_engine *e = ph_engine_new(sc, NULL);
    ph_session *s = ph_session_new(e);
    assert_int_equal(ph_session_c2s_header(s, 'Q', 20), PGF_PASS);
    assert_int_equal(ph_session_s2c_header(s, 'T', 20), PGF_PASS);
    assert_int_equal(ph_session_s2c_header(s, 'Z', 6), PGF_PASS);
    assert_int_equal(ph_session_c2s_header(s, 'P', 20), PGF_PASS);
    ph_session_free(s);
    ph_engine_free(e);
    ph_schema_free(sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_catalog_injected_and_swallowed, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_plain_traffic_untouched, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rowdesc_memo, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_query_literals_encrypted, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_query_refused_in_order, fx_setup, fx_teardown),
        cmocka_unit_test(test_refusal_sql_escaping),
        cmocka_unit_test_setup_teardown(test_syntax_error_hides_token, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_results_decrypted_text, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_envelope_fails_closed, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_plan_outputs_decrypt, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_multi_statement, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_async_messages_pass, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_ddl_refreshes_catalog, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_ddl_in_copy_string_reloads_later, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_catalog_failure_fails_star_closed, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_insert_without_column_list, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_scs_off_refuses_backslash, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_missing_key_refuses, fx_setup, fx_teardown),
        cmocka_unit_test(test_empty_schema_is_transparent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
