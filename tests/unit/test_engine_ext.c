/*
 * test_engine_ext.c — unit tests for the session engine on the extended
 * query protocol: Parse parameter types (protected parameters become bytea
 * upstream), Bind encryption from text and binary formats with per-parameter
 * format codes, NULL parameters, ParameterDescription showing logical types,
 * results in text and binary formats, the Describe the engine inserts before
 * an Execute nobody described (and whose answer it swallows), portals
 * suspended by a row limit, pipelined batches with named statements, Parse
 * and Bind refusals raised by the server in order, an upstream error
 * skipping to Sync, and the catalog query injected before the first Parse.
 */
#include "test_engine_fixture.h"

static void expect_msg_equal(const fx_msg *m, const ph_buf *want)
{
    assert_int_equal(m->len + 5, want->len);
    assert_memory_equal(m->body - 5, want->data, want->len);
}

/* Format codes and values of an upstream Bind. */
typedef struct bind_view {
    uint16_t nf, fmts[8], np;
    int len[8];
    const uint8_t *v[8];
} bind_view;

static void read_bind(const fx_msg *m, bind_view *b)
{
    fx_rd r = fx_reader(m);
    (void)fx_cstr(&r);
    (void)fx_cstr(&r);
    b->nf = fx_u16(&r);
    for (uint16_t i = 0; i < b->nf; i++)
        b->fmts[i] = fx_u16(&r);
    b->np = fx_u16(&r);
    for (uint16_t i = 0; i < b->np; i++) {
        uint32_t l = fx_u32(&r);
        b->len[i] = l == 0xFFFFFFFFu ? -1 : (int)l;
        b->v[i] = l == 0xFFFFFFFFu ? NULL : fx_bytes(&r, l);
    }
}

static void test_parse_bind_text_param(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, det = {0}, want = {0};
    const char *sql = "SELECT full_name FROM customers WHERE email = $1";
    put_parse(&in, "", sql, 0, NULL);
    fx_param p = {"alice@example.com", -1, 0};
    put_bind(&in, "", "", 0, NULL, 1, &p, 0, NULL);
    size_t tail = in.len;
    put_target(&in, 'D', 'P', "");
    put_execute(&in, "", 0);
    put_empty(&in, 'S');
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_expect_types(&up, &ms, "PBDES");
    uint32_t t[4];
    const char *usql;
    assert_int_equal(fx_parse_types(&ms.m[0], t, &usql), 1);
    assert_int_equal(t[0], 17);
    assert_string_equal(usql, sql);
    bind_view b;
    read_bind(&ms.m[1], &b);
    assert_int_equal(b.nf, 1);
    assert_int_equal(b.fmts[0], 1);
    assert_int_equal(b.np, 1);
    fx_det(f, "customers", "email", "alice@example.com", &det);
    assert_int_equal(b.len[0], (int)det.len);
    assert_memory_equal(b.v[0], det.data, det.len);
    assert_false(fx_contains(up.data, up.len, "alice@example.com"));
    /* Describe, Execute and Sync go up unchanged */
    size_t off = (size_t)(ms.m[2].body - 5 - up.data);
    assert_int_equal(up.len - off, in.len - tail);
    assert_memory_equal(up.data + off, in.data + tail, in.len - tail);

    ph_buf ans = {0}, down = {0}, env = {0}, hex = {0};
    put_empty(&ans, '1');
    put_empty(&ans, '2');
    fx_field fl = {"full_name", FX_CUST, 3, 17, -1, -1, 0};
    put_rowdesc(&ans, 1, &fl);
    fx_rand(f, "customers", "full_name", "Alice", &env);
    fx_hex(&env, &hex, false);
    fx_val v = {hex.data, hex.len};
    put_datarow(&ans, 1, &v);
    put_complete(&ans, "SELECT 1");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_expect_types(&down, &ms, "12TDCZ");
    fx_expect_field_str(&ms.m[3], 0, "Alice");
    FREE_ALL(&in, &up, &det, &want, &ans, &down, &env, &hex);
}

static void test_bind_binary_and_mixed_params(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ope = {0};
    uint32_t decl[2] = {23, 0}; /* $1 declared int4 by the client */
    put_parse(&in, "s1", "SELECT email FROM customers WHERE age > $1 AND plan_tier = $2", 2, decl);
    uint8_t age[4] = {0, 0, 0, 42};
    fx_param ps[2] = {{age, 4, 0}, {"pro", -1, 0}};
    uint16_t fm[2] = {1, 0};
    put_bind(&in, "", "s1", 2, fm, 2, ps, 0, NULL);
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_split(&up, &ms);
    assert_int_equal(ms.n, 2);
    uint32_t t[4];
    const char *usql;
    assert_int_equal(fx_parse_types(&ms.m[0], t, &usql), 2);
    assert_int_equal(t[0], 17);
    assert_int_equal(t[1], 0);
    bind_view b;
    read_bind(&ms.m[1], &b);
    assert_int_equal(b.nf, 2);
    assert_int_equal(b.fmts[0], 1);
    assert_int_equal(b.fmts[1], 0);
    fx_ope(f, "customers", "age", 42, &ope);
    assert_int_equal(b.len[0], (int)ope.len);
    assert_memory_equal(b.v[0], ope.data, ope.len);
    assert_int_equal(b.len[1], 3);
    assert_memory_equal(b.v[1], "pro", 3);

    /* the same value in text format gives the same OPE envelope */
    ph_buf in2 = {0}, up2 = {0};
    fx_param ps2[2] = {{"42", -1, 0}, {NULL, 0, 0}};
    put_bind(&in2, "", "s1", 0, NULL, 2, ps2, 0, NULL);
    fx_c2s(f, &in2, &up2);
    fx_split(&up2, &ms);
    read_bind(&ms.m[0], &b);
    assert_int_equal(b.nf, 2);
    assert_int_equal(b.fmts[0], 1);
    assert_int_equal(b.fmts[1], 0);
    assert_memory_equal(b.v[0], ope.data, ope.len);
    assert_int_equal(b.len[1], -1); /* NULL stays NULL */
    FREE_ALL(&in, &up, &ope, &in2, &up2);
}

static void test_null_protected_param(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0};
    put_parse(&in, "", "INSERT INTO customers (email, phone) VALUES ($1, $2)", 0, NULL);
    fx_param ps[2] = {{NULL, 0, 0}, {"+1 555", -1, 0}};
    put_bind(&in, "", "", 0, NULL, 2, ps, 0, NULL);
    put_execute(&in, "", 0);
    put_empty(&in, 'S');
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    char types[16];
    fx_split(&up, &ms);
    fx_types(&ms, types, sizeof types);
    assert_string_equal(types, "PBES"); /* returns no rows: no Describe inserted */
    bind_view b;
    read_bind(&ms.m[1], &b);
    assert_int_equal(b.len[0], -1);
    assert_int_equal(b.fmts[1], 1);
    ph_buf pt = {0};
    assert_int_equal(ph_field_decrypt_buf(fx_key(f, "customers", "phone"), PH_FIELD_RANDOMIZED,
                                          b.v[1], (size_t)b.len[1], &pt),
                     PH_FIELD_OK);
    assert_int_equal(pt.len, 6);
    assert_memory_equal(pt.data, "+1 555", 6);
    FREE_ALL(&in, &up, &pt);
}

static void test_param_description_and_binary_results(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0}, e1 = {0}, e2 = {0};
    put_parse(&in, "q", "SELECT email, age FROM customers WHERE email = $1 AND plan_tier = $2", 0,
              NULL);
    put_target(&in, 'D', 'S', "q");
    put_empty(&in, 'S');
    fx_c2s(f, &in, &up);
    put_empty(&ans, '1');
    mb m = mb_begin(&ans, 't');
    mb_u16(&m, 2);
    mb_u32(&m, 17);
    mb_u32(&m, 25);
    mb_end(&m);
    fx_field fl[2] = {{"email", FX_CUST, 2, 17, -1, -1, 0}, {"age", FX_CUST, 7, 17, -1, -1, 0}};
    put_rowdesc(&ans, 2, fl);
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_msgs ms;
    char types[16];
    fx_expect_types(&down, &ms, "1tTZ");
    fx_rd r = fx_reader(&ms.m[1]);
    assert_int_equal(fx_u16(&r), 2);
    assert_int_equal(fx_u32(&r), 25); /* email: text */
    assert_int_equal(fx_u32(&r), 25); /* plain parameter: as reported */

    /* Bind with binary results, no Describe P: the statement's description
     * is used with the portal's formats */
    ph_buf in2 = {0}, up2 = {0}, ans2 = {0}, down2 = {0};
    fx_param p[2] = {{"x@example.com", -1, 0}, {"pro", -1, 0}};
    uint16_t rf = 1;
    put_bind(&in2, "", "q", 0, NULL, 2, p, 1, &rf);
    put_execute(&in2, "", 0);
    put_empty(&in2, 'S');
    fx_c2s(f, &in2, &up2);
    fx_split(&up2, &ms);
    fx_types(&ms, types, sizeof types);
    assert_string_equal(types, "BES"); /* no Describe injected: already described */
    put_empty(&ans2, '2');
    fx_det(f, "customers", "email", "x@example.com", &e1);
    fx_ope(f, "customers", "age", -7, &e2);
    fx_val row[2] = {{e1.data, e1.len}, {e2.data, e2.len}};
    put_datarow(&ans2, 2, row);
    put_complete(&ans2, "SELECT 1");
    put_ready(&ans2, 'I');
    fx_s2c(f, &ans2, &down2);
    fx_expect_types(&down2, &ms, "2DCZ");
    fx_expect_field_str(&ms.m[1], 0, "x@example.com");
    const uint8_t *v;
    assert_int_equal(fx_datarow_field(&ms.m[1], 1, &v), 4);
    const uint8_t minus7[4] = {0xff, 0xff, 0xff, 0xf9};
    assert_memory_equal(v, minus7, 4);
    FREE_ALL(&in, &up, &ans, &down, &e1, &e2, &in2, &up2, &ans2, &down2);
}

static void test_describe_injected_before_execute(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0}, e = {0}, h = {0}, want = {0};
    put_parse(&in, "", "SELECT tax, full_name FROM customers", 0, NULL);
    put_bind(&in, "p1", "", 0, NULL, 0, NULL, 0, NULL);
    put_execute(&in, "p1", 0);
    put_empty(&in, 'S');
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    char types[16];
    fx_expect_types(&up, &ms, "PBDES");
    put_target(&want, 'D', 'P', "p1");
    expect_msg_equal(&ms.m[2], &want);

    put_empty(&ans, '1');
    put_empty(&ans, '2');
    fx_field fl[2] = {{"tax", 0, 0, 25, -1, -1, 0}, {"full_name", FX_CUST, 3, 17, -1, -1, 0}};
    put_rowdesc(&ans, 2, fl);
    fx_rand(f, "customers", "full_name", "Grace", &e);
    fx_hex(&e, &h, false);
    fx_val row[2] = {fx_str("t"), {h.data, h.len}};
    put_datarow(&ans, 2, row);
    put_complete(&ans, "SELECT 1");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_split(&down, &ms);
    fx_types(&ms, types, sizeof types);
    assert_string_equal(types, "12DCZ"); /* the injected Describe's answer is swallowed */
    fx_expect_field_str(&ms.m[2], 0, "t");
    fx_expect_field_str(&ms.m[2], 1, "Grace");
    assert_int_equal(f->z_kept, 2);
    FREE_ALL(&in, &up, &ans, &down, &e, &h, &want);
}

static void test_portal_suspended(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0}, e1 = {0}, h1 = {0}, e2 = {0}, h2 = {0};
    put_parse(&in, "", "SELECT phone FROM customers", 0, NULL);
    put_bind(&in, "c", "", 0, NULL, 0, NULL, 0, NULL);
    put_target(&in, 'D', 'P', "c");
    put_execute(&in, "c", 1);
    put_execute(&in, "c", 1);
    put_empty(&in, 'S');
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_expect_types(&up, &ms, "PBDEES");
    put_empty(&ans, '1');
    put_empty(&ans, '2');
    fx_field fl = {"phone", FX_CUST, 4, 17, -1, -1, 0};
    put_rowdesc(&ans, 1, &fl);
    fx_rand(f, "customers", "phone", "111", &e1);
    fx_hex(&e1, &h1, false);
    fx_rand(f, "customers", "phone", "222", &e2);
    fx_hex(&e2, &h2, false);
    fx_val a = {h1.data, h1.len}, b = {h2.data, h2.len};
    put_datarow(&ans, 1, &a);
    put_empty(&ans, 's');
    put_datarow(&ans, 1, &b);
    put_complete(&ans, "SELECT 1");
    put_ready(&ans, 'T');
    fx_s2c(f, &ans, &down);
    fx_expect_types(&down, &ms, "12TDsDCZ");
    fx_expect_field_str(&ms.m[3], 0, "111");
    fx_expect_field_str(&ms.m[5], 0, "222");
    FREE_ALL(&in, &up, &ans, &down, &e1, &h1, &e2, &h2);
}

static void test_pipelined_batches(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0};
    ph_buf d1 = {0}, d2 = {0}, e1 = {0}, e2 = {0}, h1 = {0}, h2 = {0};
    put_parse(&in, "byemail", "SELECT card_number FROM payments WHERE customer_email = $1", 0,
              NULL);
    put_target(&in, 'D', 'S', "byemail");
    fx_param p1 = {"a@example.com", -1, 0}, p2 = {"b@example.com", -1, 0};
    put_bind(&in, "", "byemail", 0, NULL, 1, &p1, 0, NULL);
    put_execute(&in, "", 0);
    put_empty(&in, 'S');
    put_bind(&in, "", "byemail", 0, NULL, 1, &p2, 0, NULL);
    put_execute(&in, "", 0);
    put_empty(&in, 'S');
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_expect_types(&up, &ms, "PDBESBES");
    bind_view b;
    /* payments.customer_email shares the key domain of customers.email */
    fx_det(f, "customers", "email", "a@example.com", &d1);
    fx_det(f, "customers", "email", "b@example.com", &d2);
    read_bind(&ms.m[2], &b);
    assert_memory_equal(b.v[0], d1.data, d1.len);
    read_bind(&ms.m[5], &b);
    assert_memory_equal(b.v[0], d2.data, d2.len);

    put_empty(&ans, '1');
    mb m = mb_begin(&ans, 't');
    mb_u16(&m, 1);
    mb_u32(&m, 17);
    mb_end(&m);
    fx_field fl = {"card_number", FX_PAY, 3, 17, -1, -1, 0};
    put_rowdesc(&ans, 1, &fl);
    put_empty(&ans, '2');
    fx_rand(f, "payments", "card_number", "4000", &e1);
    fx_hex(&e1, &h1, false);
    fx_val v1 = {h1.data, h1.len};
    put_datarow(&ans, 1, &v1);
    put_complete(&ans, "SELECT 1");
    put_ready(&ans, 'I');
    put_empty(&ans, '2');
    fx_rand(f, "payments", "card_number", "5000", &e2);
    fx_hex(&e2, &h2, false);
    fx_val v2 = {h2.data, h2.len};
    put_datarow(&ans, 1, &v2);
    put_complete(&ans, "SELECT 1");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_expect_types(&down, &ms, "1tT2DCZ2DCZ");
    fx_rd r = fx_reader(&ms.m[1]);
    assert_int_equal(fx_u16(&r), 1);
    assert_int_equal(fx_u32(&r), 25);
    fx_expect_field_str(&ms.m[4], 0, "4000");
    fx_expect_field_str(&ms.m[8], 0, "5000");
    FREE_ALL(&in, &up, &ans, &down, &d1, &d2, &e1, &e2, &h1, &h2);
}

static void test_parse_refused_in_order(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0};
    put_parse(&in, "bad", "SELECT email FROM customers WHERE phone LIKE '555%'", 0, NULL);
    put_bind(&in, "", "bad", 0, NULL, 0, NULL, 0, NULL);
    put_execute(&in, "", 0);
    put_empty(&in, 'S');
    fx_c2s(f, &in, &up);
    assert_false(fx_contains(up.data, up.len, "555%"));
    fx_msgs ms;
    char types[16];
    fx_split(&up, &ms);
    fx_types(&ms, types, sizeof types);
    assert_string_equal(types, "CPBES"); /* the client's Bind/Execute: dropped until Sync */
    fx_rd r = fx_reader(&ms.m[1]);
    assert_string_equal(fx_cstr(&r), "phantom_refusal");
    const char *sql = fx_cstr(&r);
    assert_non_null(strstr(sql, "DO $phantom$ BEGIN RAISE EXCEPTION USING ERRCODE = '0A000'"));
    assert_non_null(strstr(sql, "customers.phone"));
    assert_int_equal(fx_u16(&r), 0);
    /* the server: CloseComplete, ParseComplete, BindComplete (swallowed), the
     * error (the client's), then it skips to Sync */
    put_empty(&ans, '3');
    put_empty(&ans, '1');
    put_empty(&ans, '2');
    put_error(&ans, "0A000", "phantom: cannot apply LIKE");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_expect_types(&down, &ms, "EZ");
    assert_string_equal(fx_error_field(&ms.m[0], 'C'), "0A000");
    /* the session goes on: a protected Bind of an unknown statement name is
     * not encrypted (the server rejects it), a new batch works */
    ph_buf in2 = {0}, up2 = {0}, ans2 = {0}, down2 = {0};
    put_parse(&in2, "", "SELECT 1", 0, NULL);
    put_bind(&in2, "", "", 0, NULL, 0, NULL, 0, NULL);
    put_execute(&in2, "", 0);
    put_empty(&in2, 'S');
    fx_c2s(f, &in2, &up2);
    assert_int_equal(up2.len, in2.len);
    put_empty(&ans2, '1');
    put_empty(&ans2, '2');
    fx_val one = fx_str("1");
    put_datarow(&ans2, 1, &one);
    put_complete(&ans2, "SELECT 1");
    put_ready(&ans2, 'I');
    fx_s2c(f, &ans2, &down2);
    assert_int_equal(down2.len, ans2.len);
    assert_memory_equal(down2.data, ans2.data, ans2.len);
    FREE_ALL(&in, &up, &ans, &down, &in2, &up2, &ans2, &down2);
}

static void test_bind_refused_bad_value(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0};
    put_parse(&in, "", "SELECT email FROM customers WHERE age = $1", 0, NULL);
    fx_param p = {"forty-two", -1, 0};
    put_bind(&in, "", "", 0, NULL, 1, &p, 0, NULL);
    put_execute(&in, "", 0);
    put_empty(&in, 'S');
    fx_c2s(f, &in, &up);
    assert_false(fx_contains(up.data, up.len, "forty-two"));
    fx_msgs ms;
    char types[16];
    fx_split(&up, &ms);
    fx_types(&ms, types, sizeof types);
    assert_string_equal(types, "PCPBES"); /* the client's Execute: dropped until Sync */
    assert_true(fx_contains(up.data, up.len, "ERRCODE = '22P02'"));
    assert_true(fx_contains(up.data, up.len, "customers.age"));
    ph_buf ans = {0}, down = {0};
    put_empty(&ans, '1');
    put_empty(&ans, '3');
    put_empty(&ans, '1');
    put_empty(&ans, '2');
    put_error(&ans, "22P02", "phantom: invalid value for customers.age");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_expect_types(&down, &ms, "1EZ");
    FREE_ALL(&in, &up, &ans, &down);
}

static void test_upstream_error_skips_to_sync(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0}, e = {0}, h = {0};
    put_parse(&in, "s", "SELECT full_name FROM customers WHERE nosuch = 1", 0, NULL);
    put_bind(&in, "", "s", 0, NULL, 0, NULL, 0, NULL);
    put_target(&in, 'D', 'P', "");
    put_execute(&in, "", 0);
    put_empty(&in, 'S');
    put_query(&in, "SELECT full_name FROM customers");
    fx_c2s(f, &in, &up);
    put_error(&ans, "42703", "column \"nosuch\" does not exist");
    put_ready(&ans, 'I');
    fx_field fl = {"full_name", FX_CUST, 3, 17, -1, -1, 0};
    put_rowdesc(&ans, 1, &fl);
    fx_rand(f, "customers", "full_name", "Heidi", &e);
    fx_hex(&e, &h, false);
    fx_val v = {h.data, h.len};
    put_datarow(&ans, 1, &v);
    put_complete(&ans, "SELECT 1");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_msgs ms;
    fx_expect_types(&down, &ms, "EZTDCZ");
    fx_expect_field_str(&ms.m[3], 0, "Heidi");
    FREE_ALL(&in, &up, &ans, &down, &e, &h);
}

static void test_catalog_before_first_parse(void **state)
{
    fx *f = *state;
    ph_buf in = {0}, up = {0};
    put_parse(&in, "", "SELECT 1", 0, NULL);
    put_bind(&in, "", "", 0, NULL, 0, NULL, 0, NULL);
    put_execute(&in, "", 0);
    put_empty(&in, 'S');
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_expect_types(&up, &ms, "QPBES");
    assert_true(fx_is_catalog_query(&ms.m[0]));
    ph_buf ans = {0}, down = {0};
    fx_catalog_answer(&ans);
    size_t cat = ans.len;
    put_empty(&ans, '1');
    put_empty(&ans, '2');
    fx_val one = fx_str("1");
    put_datarow(&ans, 1, &one);
    put_complete(&ans, "SELECT 1");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    assert_int_equal(down.len, ans.len - cat);
    assert_memory_equal(down.data, ans.data + cat, down.len);
    assert_int_equal(f->z_kept, 1);
    FREE_ALL(&in, &up, &ans, &down);
}

/* Mid-batch (no Sync yet) the catalog query must not be injected: a simple
 * Query would end the batch's implicit transaction and drop the unnamed
 * statement. */
static void test_no_injection_mid_batch(void **state)
{
    fx *f = *state;
    ph_buf in = {0}, up = {0};
    put_target(&in, 'D', 'S', "x");
    put_parse(&in, "", "SELECT 1", 0, NULL);
    fx_c2s(f, &in, &up);
    assert_int_equal(up.len, in.len);
    assert_memory_equal(up.data, in.data, in.len);
    FREE_ALL(&in, &up);
}

/* The same text parsed again (the plan cache) and a statement name closed
 * and reused with another text: each Bind follows its own statement. */
static void test_plan_reuse_and_close(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, d1 = {0}, d2 = {0}, pt = {0};
    const char *q1 = "SELECT id FROM customers WHERE email = $1";
    fx_param a = {"a@example.com", -1, 0}, b = {"b@example.com", -1, 0};
    for (int round = 0; round < 2; round++) {
        put_parse(&in, "", q1, 0, NULL);
        put_bind(&in, "", "", 0, NULL, 1, round ? &b : &a, 0, NULL);
    }
    put_target(&in, 'C', 'S', "");
    put_parse(&in, "", "INSERT INTO customers (phone) VALUES ($1)", 0, NULL);
    put_bind(&in, "", "", 0, NULL, 1, &a, 0, NULL);
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_expect_types(&up, &ms, "PBPBCPB");
    uint32_t t[4];
    const char *usql;
    assert_int_equal(fx_parse_types(&ms.m[2], t, &usql), 1);
    assert_int_equal(t[0], 17);
    assert_string_equal(usql, q1);
    bind_view v;
    fx_det(f, "customers", "email", "a@example.com", &d1);
    fx_det(f, "customers", "email", "b@example.com", &d2);
    read_bind(&ms.m[1], &v);
    assert_memory_equal(v.v[0], d1.data, d1.len);
    read_bind(&ms.m[3], &v);
    assert_memory_equal(v.v[0], d2.data, d2.len);
    /* after Close and a new Parse the parameter is customers.phone (randomized) */
    read_bind(&ms.m[6], &v);
    assert_int_equal(ph_field_decrypt_buf(fx_key(f, "customers", "phone"), PH_FIELD_RANDOMIZED,
                                          v.v[0], (size_t)v.len[0], &pt),
                     PH_FIELD_OK);
    assert_int_equal(pt.len, 13);
    FREE_ALL(&in, &up, &d1, &d2, &pt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse_bind_text_param, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bind_binary_and_mixed_params, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_null_protected_param, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_param_description_and_binary_results, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_describe_injected_before_execute, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_portal_suspended, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_batches, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_parse_refused_in_order, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bind_refused_bad_value, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_upstream_error_skips_to_sync, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_catalog_before_first_parse, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_no_injection_mid_batch, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_plan_reuse_and_close, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
