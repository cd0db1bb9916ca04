/*
 * test_tenant_engine.c — unit tests for tenants in the session engine
 * (session_tenant.c, colcrypt.c "Tenants", the rewriter's row tenants):
 * SET / RESET / SHOW phantom.tenant answered by the proxy on the simple and
 * the extended protocol (the server never sees the tenant id), the refused
 * forms, the startup tenant being fixed, RESET ALL / DISCARD ALL, writes
 * encrypted under the tenant's own key (session tenant, a row's literal or
 * parameter tenant, COPY rows), the refusals (no tenant, another tenant's
 * row), deterministic lookups under the session tenant's key, and reads:
 * own values decrypted, another tenant's refused or NULL (foreign_values).
 *
 * Keys are a key table with fixed DEKs for tenants acme (key ids 11..13)
 * and beta (21..23); tenant gamma has none.
 */
#include "test_engine_fixture.h"

#include "keys/keyring.h"

static const char ten_yaml[] = "encrypt:\n"
                               "  customers:\n"
                               "    - email: deterministic\n"
                               "    - full_name\n"
                               "  notes:\n"
                               "    - body\n"
                               "tenants:\n"
                               "  tables:\n"
                               "    customers: {column: tenant_id}\n"
                               "    notes: {tenant: required}\n";

#define T_CUST  16384u
#define T_NOTES 16500u
static const char *const t_cust_cols[] = {"id", "tenant_id", "email", "full_name"};
static const char *const t_note_cols[] = {"id", "body"};

static const char *const domains[] = {"customers.email", "customers.full_name", "notes.body"};

static void tenant_dek(const char *tenant, const char *domain, uint8_t dek[PH_FIELD_DEK_LEN])
{
    char name[128];
    snprintf(name, sizeof name, "%s|%s", tenant, domain);
    fx_dek(name, dek);
}

static void add_tenant_keys(fx *f, const char *tenant, uint32_t first_id)
{
    for (size_t i = 0; i < 3; i++) {
        char name[PH_KEYRING_MAX_DOMAIN + 1];
        uint8_t dek[PH_FIELD_DEK_LEN];
        assert_int_equal(ph_keyring_tenant_domain(name, sizeof name, tenant, domains[i]), 0);
        tenant_dek(tenant, domains[i], dek);
        assert_int_equal(ph_keysource_add(f->ks, name, first_id + (uint32_t)i, dek, 1), 0);
    }
}

static void catalog_answer(ph_buf *b)
{
    fx_field fl[5] = {{"oid", 1259, -2, 26, 4, -1, 0},
                      {"attnum", 1249, 6, 21, 2, -1, 0},
                      {"nspname", 2615, 2, 19, 64, -1, 0},
                      {"relname", 1259, 2, 19, 64, -1, 0},
                      {"attname", 1249, 2, 19, 64, -1, 0}};
    put_rowdesc(b, 5, fl);
    fx_catalog_rows(b, T_CUST, "customers", t_cust_cols, 4);
    fx_catalog_rows(b, T_NOTES, "notes", t_note_cols, 2);
    put_complete(b, "SELECT 6");
    put_ready(b, 'I');
}

static int setup_with(void **state, const char *yaml, const char *startup_options)
{
    fx *f = calloc(1, sizeof *f);
    char err[256];
    assert_non_null(f);
    if (ph_schema_load_buffer(&f->schema, yaml, strlen(yaml), "t.yaml", err, sizeof err) != 0)
        fail_msg("%s", err);
    f->ks = ph_keysource_new();
    add_tenant_keys(f, "acme", 11);
    add_tenant_keys(f, "beta", 21);
    f->eng = ph_engine_new(f->schema, f->ks);
    f->s = ph_session_new(f->eng);
    assert_non_null(f->s);
    if (startup_options) {
        ph_buf p = {0};
        assert_int_equal(ph_buf_append_u32(&p, 0), 0);
        assert_int_equal(ph_buf_append_u32(&p, 196608), 0);
        assert_int_equal(ph_buf_append(&p, "options", 8), 0);
        assert_int_equal(ph_buf_append(&p, startup_options, strlen(startup_options) + 1), 0);
        assert_int_equal(ph_buf_append_u8(&p, 0), 0);
        ph_put_u32(p.data, (uint32_t)p.len);
        size_t len = p.len;
        assert_int_equal(ph_session_startup(f->s, p.data, &len, err, sizeof err), 0);
        ph_buf_free(&p);
    }
    pgf_init(&f->c2s, 1u << 26);
    pgf_init(&f->s2c, 1u << 26);
    fx_login(f);
    /* the first statement brings the catalog */
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0};
    put_query(&in, "SELECT 1");
    fx_c2s(f, &in, &up);
    catalog_answer(&ans);
    put_complete(&ans, "SELECT 1");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    FREE_ALL(&in, &up, &ans, &down);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, ten_yaml, NULL);
}

static int setup_null(void **state)
{
    char yaml[600];
    snprintf(yaml, sizeof yaml, "%s  foreign_values: null\n", ten_yaml);
    return setup_with(state, yaml, NULL);
}

static int setup_startup(void **state)
{
    return setup_with(state, ten_yaml, "-c search_path=public -c phantom.tenant=acme");
}

/* ---- helpers ------------------------------------------------------------------------------- */

/* Sends one simple Query; up receives what goes upstream. */
static void query(fx *f, const char *sql, ph_buf *up)
{
    ph_buf in = {0};
    up->len = 0;
    put_query(&in, sql);
    fx_c2s(f, &in, up);
    ph_buf_free(&in);
}

/* The text of the one Query message that went upstream. */
static const char *up_query(const ph_buf *up)
{
    fx_msgs ms;
    fx_expect_types(up, &ms, "Q");
    return (const char *)ms.m[0].body;
}

/* The server answers a command with its tag; returns what the client gets. */
static void answer(fx *f, const char *tag, ph_buf *down)
{
    ph_buf a = {0};
    down->len = 0;
    put_complete(&a, tag);
    put_ready(&a, 'I');
    fx_s2c(f, &a, down);
    ph_buf_free(&a);
}

static void set_tenant(fx *f, const char *tenant)
{
    char sql[128];
    ph_buf up = {0}, down = {0};
    snprintf(sql, sizeof sql, "SET phantom.tenant = '%s'", tenant);
    query(f, sql, &up);
    assert_string_equal(up_query(&up), "SET phantom.tenant TO DEFAULT");
    answer(f, "SET", &down);
    FREE_ALL(&up, &down);
}

static const ph_field_key *tkey(fx *f, const char *tenant, const char *domain)
{
    char name[PH_KEYRING_MAX_DOMAIN + 1];
    assert_int_equal(ph_keyring_tenant_domain(name, sizeof name, tenant, domain), 0);
    const ph_field_key *k = ph_keysource_write_key(f->ks, name);
    assert_non_null(k);
    return k;
}

/* '\x..'::bytea of v's deterministic envelope under tenant's key. */
static void det_literal(fx *f, const char *tenant, const char *v, ph_buf *lit)
{
    ph_buf env = {0};
    assert_int_equal(ph_field_encrypt_buf(tkey(f, tenant, "customers.email"),
                                          PH_FIELD_DETERMINISTIC, (const uint8_t *)v, strlen(v),
                                          &env),
                     PH_FIELD_OK);
    lit->len = 0;
    fx_hex(&env, lit, true);
    ph_buf_free(&env);
}

/* The refusal a DO statement upstream raises: its message is in the text. */
static void expect_refusal(const ph_buf *up, const char *code, const char *needle)
{
    const char *q = up_query(up);
    assert_non_null(strstr(q, "RAISE EXCEPTION"));
    assert_non_null(strstr(q, code));
    if (!strstr(q, needle))
        fail_msg("refusal \"%s\" does not mention \"%s\"", q, needle);
}

/* The server returns rows of customers.email holding these envelopes. */
static void email_rows(fx *f, const ph_buf *envs, size_t n, ph_buf *down)
{
    ph_buf a = {0};
    fx_field fl = {"email", T_CUST, 3, 17, -1, -1, 0};
    put_rowdesc(&a, 1, &fl);
    for (size_t i = 0; i < n; i++) {
        ph_buf hex = {0};
        fx_hex(&envs[i], &hex, false);
        fx_val v = {hex.data, hex.len};
        put_datarow(&a, 1, &v);
        ph_buf_free(&hex);
    }
    put_complete(&a, "SELECT 2");
    put_ready(&a, 'I');
    down->len = 0;
    fx_s2c(f, &a, down);
    ph_buf_free(&a);
}

/* ---- SET / RESET / SHOW ------------------------------------------------------------------------
 */

static void test_set_and_show_simple(void **state)
{
    fx *f = *state;
    ph_buf up = {0}, down = {0}, a = {0};
    set_tenant(f, "acme");
    query(f, "show PHANTOM.TENANT", &up);
    assert_string_equal(up_query(&up), "SELECT NULL::text AS \"phantom.tenant\"");
    fx_field fl = {"phantom.tenant", 0, 0, 25, -1, -1, 0};
    put_rowdesc(&a, 1, &fl);
    fx_val nul = {NULL, 0};
    put_datarow(&a, 1, &nul);
    put_complete(&a, "SELECT 1");
    put_ready(&a, 'I');
    fx_s2c(f, &a, &down);
    fx_msgs ms;
    fx_expect_types(&down, &ms, "TDCZ");
    fx_expect_field_str(&ms.m[1], 0, "acme");
    assert_string_equal((const char *)ms.m[2].body, "SHOW");
    /* RESET: no tenant; SHOW gives '' */
    query(f, "RESET phantom.tenant", &up);
    assert_string_equal(up_query(&up), "RESET phantom.tenant");
    answer(f, "RESET", &down);
    query(f, "SHOW phantom.tenant", &up);
    a.len = 0;
    put_rowdesc(&a, 1, &fl);
    put_datarow(&a, 1, &nul);
    put_complete(&a, "SELECT 1");
    put_ready(&a, 'I');
    down.len = 0;
    fx_s2c(f, &a, &down);
    fx_expect_types(&down, &ms, "TDCZ");
    fx_expect_field_str(&ms.m[1], 0, "");
    FREE_ALL(&up, &down, &a);
}

static void test_set_refused_forms(void **state)
{
    fx *f = *state;
    ph_buf up = {0}, down = {0};
    query(f, "SET LOCAL phantom.tenant = 'acme'", &up);
    expect_refusal(&up, "0A000", "SET LOCAL phantom.tenant is not supported");
    assert_null(strstr(up_query(&up), "acme"));
    query(f, "SET phantom.tenant = 'no/slash'", &up);
    expect_refusal(&up, "22023", "invalid value for phantom.tenant");
    query(f, "SET phantom.tenant = 'acme'; SELECT 1", &up);
    expect_refusal(&up, "0A000", "statement of its own");
    /* every spelling the grammar accepts is seen, wherever it stands */
    query(f, "SELECT 1; SET PHANTOM . Tenant = 'acme'", &up);
    expect_refusal(&up, "0A000", "statement of its own");
    query(f, "/* c */ SET LOCAL \"phantom\".\"tenant\" = 'acme'", &up);
    expect_refusal(&up, "0A000", "SET LOCAL phantom.tenant is not supported");
    query(f, "-- c\n  show phantom.tenant; SELECT 1", &up);
    expect_refusal(&up, "0A000", "statement of its own");
    /* whatever the first statement's first letter */
    static const char *mixed[] = {"DELETE FROM t WHERE false; SET phantom.tenant = 'acme'",
                                  "drop table if exists t; set phantom.tenant = 'acme'",
                                  "REINDEX TABLE t; SET phantom.tenant = 'acme'",
                                  "values (1); SET phantom.tenant = 'acme'",
                                  "(select 1); SET phantom.tenant = 'acme'"};
    for (size_t i = 0; i < sizeof mixed / sizeof mixed[0]; i++) {
        query(f, mixed[i], &up);
        expect_refusal(&up, "0A000", "statement of its own");
        assert_null(strstr(up_query(&up), "acme"));
    }
    /* the session still has no tenant: a tenant-keyed write is refused */
    query(f, "INSERT INTO notes (body) VALUES ('hello')", &up);
    expect_refusal(&up, "42501", "notes.body is tenant-keyed and this session has no tenant");
    assert_null(strstr(up_query(&up), "hello"));
    FREE_ALL(&up, &down);
}

static void test_startup_tenant_is_fixed(void **state)
{
    fx *f = *state;
    ph_buf up = {0}, down = {0};
    /* the startup tenant encrypts */
    query(f, "INSERT INTO customers (id, email) VALUES (1, 'a@acme.test')", &up);
    ph_buf lit = {0};
    det_literal(f, "acme", "a@acme.test", &lit);
    assert_non_null(strstr(up_query(&up), (const char *)lit.data));
    answer(f, "INSERT 0 1", &down);
    query(f, "SET phantom.tenant = 'beta'", &up);
    expect_refusal(&up, "42501", "given when it started (acme) and cannot be changed");
    set_tenant(f, "acme"); /* the same one: fine */
    FREE_ALL(&up, &down, &lit);
}

static void test_reset_all_and_discard(void **state)
{
    fx *f = *state;
    ph_buf up = {0}, down = {0};
    set_tenant(f, "acme");
    query(f, "DISCARD ALL", &up);
    assert_string_equal(up_query(&up), "DISCARD ALL"); /* goes on as it is */
    answer(f, "DISCARD ALL", &down);
    query(f, "INSERT INTO notes (body) VALUES ('x')", &up);
    expect_refusal(&up, "42501", "has no tenant");
    set_tenant(f, "beta");
    query(f, "RESET ALL", &up);
    assert_string_equal(up_query(&up), "RESET ALL");
    answer(f, "RESET", &down);
    query(f, "INSERT INTO notes (body) VALUES ('x')", &up);
    expect_refusal(&up, "42501", "has no tenant");
    FREE_ALL(&up, &down);
}

/* ---- writes
 * --------------------------------------------------------------------------------------- */

static void test_write_under_session_tenant(void **state)
{
    fx *f = *state;
    ph_buf up = {0}, down = {0}, a = {0}, b = {0};
    set_tenant(f, "beta");
    query(f, "INSERT INTO customers (id, email) VALUES (1, 'x@y.test')", &up);
    det_literal(f, "beta", "x@y.test", &b);
    det_literal(f, "acme", "x@y.test", &a);
    const char *q = up_query(&up);
    assert_non_null(strstr(q, (const char *)b.data));
    assert_null(strstr(q, (const char *)a.data));
    assert_null(strstr(q, "x@y.test"));
    answer(f, "INSERT 0 1", &down);
    /* an unknown tenant (a key table cannot make keys): refused */
    set_tenant(f, "gamma");
    query(f, "INSERT INTO notes (body) VALUES ('secret')", &up);
    expect_refusal(&up, "XX000", "no encryption key of tenant gamma");
    assert_null(strstr(up_query(&up), "secret"));
    FREE_ALL(&up, &down, &a, &b);
}

static void test_row_tenant_literals(void **state)
{
    fx *f = *state;
    ph_buf up = {0}, down = {0}, a = {0}, b = {0};
    /* no session tenant: each row under its own tenant's key */
    query(f,
          "INSERT INTO customers (tenant_id, email) VALUES ('acme', 'r@x.test'), ('beta', "
          "'r@x.test')",
          &up);
    det_literal(f, "acme", "r@x.test", &a);
    det_literal(f, "beta", "r@x.test", &b);
    const char *q = up_query(&up);
    const char *pa = strstr(q, (const char *)a.data), *pb = strstr(q, (const char *)b.data);
    assert_non_null(pa);
    assert_non_null(pb);
    assert_true(pa < pb); /* row order kept */
    answer(f, "INSERT 0 2", &down);
    /* the session's tenant may write only its own rows */
    set_tenant(f, "acme");
    query(f, "INSERT INTO customers (tenant_id, email) VALUES ('beta', 'r@x.test')", &up);
    expect_refusal(&up, "42501", "cannot write rows of tenant beta");
    assert_null(strstr(up_query(&up), "r@x.test"));
    query(f, "INSERT INTO customers (tenant_id, email) VALUES ('acme', 'r@x.test')", &up);
    assert_non_null(strstr(up_query(&up), (const char *)a.data));
    answer(f, "INSERT 0 1", &down);
    /* the tenant column must be a literal or a parameter */
    query(f, "INSERT INTO customers (tenant_id, email) VALUES (lower('ACME'), 'r@x.test')", &up);
    expect_refusal(&up, "0A000", "must be given as a literal or a parameter");
    /* and cannot be changed by UPDATE */
    query(f, "UPDATE customers SET tenant_id = 'beta' WHERE id = 1", &up);
    expect_refusal(&up, "0A000", "tenant column customers.tenant_id cannot be changed");
    FREE_ALL(&up, &down, &a, &b);
}

static void test_row_tenant_parameter(void **state)
{
    fx *f = *state;
    ph_buf in = {0}, up = {0};
    put_parse(&in, "ins", "INSERT INTO customers (tenant_id, email) VALUES ($1, $2)", 0, NULL);
    fx_param ps[2] = {{"beta", -1, 0}, {"p@x.test", -1, 0}};
    put_bind(&in, "", "ins", 0, NULL, 2, ps, 0, NULL);
    put_execute(&in, "", 0);
    put_empty(&in, 'S');
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_split(&up, &ms);
    const fx_msg *bind = NULL;
    for (size_t i = 0; i < ms.n; i++)
        if (ms.m[i].type == 'B')
            bind = &ms.m[i];
    assert_non_null(bind);
    ph_buf env = {0};
    assert_int_equal(ph_field_encrypt_buf(tkey(f, "beta", "customers.email"),
                                          PH_FIELD_DETERMINISTIC, (const uint8_t *)"p@x.test", 8,
                                          &env),
                     PH_FIELD_OK);
    assert_true(fx_contains(bind->body, bind->len, "beta")); /* the plaintext tenant column */
    assert_false(fx_contains(bind->body, bind->len, "p@x.test"));
    int found = 0;
    for (size_t i = 0; i + env.len <= bind->len; i++)
        found |= memcmp(bind->body + i, env.data, env.len) == 0;
    assert_true(found);
    FREE_ALL(&in, &up, &env);
}

static void test_extended_set(void **state)
{
    fx *f = *state;
    ph_buf in = {0}, up = {0}, down = {0}, a = {0};
    put_parse(&in, "", "SET phantom.tenant TO 'acme'", 0, NULL);
    put_bind(&in, "", "", 0, NULL, 0, NULL, 0, NULL);
    put_execute(&in, "", 0);
    put_parse(&in, "sh", "SHOW phantom.tenant", 0, NULL);
    put_bind(&in, "p", "sh", 0, NULL, 0, NULL, 0, NULL);
    put_execute(&in, "p", 0);
    put_empty(&in, 'S');
    fx_c2s(f, &in, &up);
    assert_false(fx_contains(up.data, up.len, "acme"));
    assert_true(fx_contains(up.data, up.len, "SET phantom.tenant TO DEFAULT"));
    /* the server's answers: 1 2 C(SET) 1 2 D(NULL) C(SELECT 1) Z */
    put_empty(&a, '1');
    put_empty(&a, '2');
    put_complete(&a, "SET");
    put_empty(&a, '1');
    put_empty(&a, '2');
    fx_val nul = {NULL, 0};
    put_datarow(&a, 1, &nul);
    put_complete(&a, "SELECT 1");
    put_ready(&a, 'I');
    fx_s2c(f, &a, &down);
    fx_msgs ms;
    fx_expect_types(&down, &ms, "12C12DCZ");
    fx_expect_field_str(&ms.m[5], 0, "acme");
    assert_string_equal((const char *)ms.m[6].body, "SHOW");
    /* the tenant is in force */
    ph_buf lit = {0};
    query(f, "INSERT INTO customers (id, email) VALUES (1, 'e@x.test')", &up);
    det_literal(f, "acme", "e@x.test", &lit);
    assert_non_null(strstr(up_query(&up), (const char *)lit.data));
    FREE_ALL(&in, &up, &down, &a, &lit);
}

static void copy_msg(ph_buf *b, char type, const void *p, size_t n)
{
    mb m = mb_begin(b, type);
    mb_raw(&m, p, n);
    mb_end(&m);
}

/* The text-format COPY field of v's deterministic envelope under tenant. */
static void copy_field_hex(fx *f, const char *tenant, const char *v, ph_buf *out)
{
    ph_buf env = {0}, hex = {0};
    assert_int_equal(ph_field_encrypt_buf(tkey(f, tenant, "customers.email"),
                                          PH_FIELD_DETERMINISTIC, (const uint8_t *)v, strlen(v),
                                          &env),
                     PH_FIELD_OK);
    fx_hex(&env, &hex, false);
    out->len = 0;
    assert_int_equal(ph_buf_append(out, "\\", 2), 0); /* \x in text format */
    assert_int_equal(ph_buf_append(out, hex.data + 1, hex.len - 1), 0);
    assert_int_equal(ph_buf_append_u8(out, 0), 0);
    FREE_ALL(&env, &hex);
}

static void test_copy_rows_under_their_tenants(void **state)
{
    fx *f = *state;
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0}, a = {0}, b = {0};
    /* the tenant column after the protected one: each row still under its own */
    query(f, "COPY customers (email, tenant_id) FROM STDIN", &up);
    uint8_t resp[7] = {0, 0, 2, 0, 0, 0, 0};
    copy_msg(&ans, 'G', resp, sizeof resp);
    fx_s2c(f, &ans, &down);
    static const char rows[] = "c1@x.test\tacme\nc2@x.test\tbeta\n";
    copy_msg(&in, 'd', rows, sizeof rows - 1);
    copy_msg(&in, 'c', "", 0);
    up.len = 0;
    fx_c2s(f, &in, &up);
    copy_field_hex(f, "acme", "c1@x.test", &a);
    copy_field_hex(f, "beta", "c2@x.test", &b);
    assert_true(fx_contains(up.data, up.len, (const char *)a.data));
    assert_true(fx_contains(up.data, up.len, (const char *)b.data));
    assert_false(fx_contains(up.data, up.len, "c1@x.test"));
    assert_true(fx_contains(up.data, up.len, "\tacme\n"));
    ans.len = 0;
    put_complete(&ans, "COPY 2");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    /* with a session tenant, a row of another tenant fails the COPY */
    set_tenant(f, "acme");
    query(f, "COPY customers (tenant_id, email) FROM STDIN", &up);
    ans.len = 0;
    copy_msg(&ans, 'G', resp, sizeof resp);
    fx_s2c(f, &ans, &down);
    in.len = 0;
    static const char bad[] = "acme\tok@x.test\nbeta\tstolen@x.test\n";
    copy_msg(&in, 'd', bad, sizeof bad - 1);
    up.len = 0;
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_split(&up, &ms);
    assert_int_equal(ms.m[ms.n - 1].type, 'f'); /* CopyFail: nothing of it went up */
    assert_false(fx_contains(up.data, up.len, "stolen@x.test"));
    assert_false(fx_contains(up.data, up.len, "ok@x.test"));
    assert_true(fx_contains(up.data, up.len, "cannot write rows of tenant beta"));
    FREE_ALL(&in, &up, &ans, &down, &a, &b);
}

/* ---- reads
 * ---------------------------------------------------------------------------------------- */

static void test_lookup_uses_session_tenant(void **state)
{
    fx *f = *state;
    ph_buf up = {0}, a = {0}, b = {0};
    query(f, "SELECT id FROM customers WHERE email = 'l@x.test'", &up);
    expect_refusal(&up, "42501", "has no tenant");
    set_tenant(f, "acme");
    query(f, "SELECT id FROM customers WHERE email = 'l@x.test'", &up);
    det_literal(f, "acme", "l@x.test", &a);
    det_literal(f, "beta", "l@x.test", &b);
    assert_non_null(strstr(up_query(&up), (const char *)a.data));
    assert_null(strstr(up_query(&up), (const char *)b.data));
    FREE_ALL(&up, &a, &b);
}

static void seal(fx *f, const char *tenant, const char *v, ph_buf *env)
{
    env->len = 0;
    assert_int_equal(ph_field_encrypt_buf(tkey(f, tenant, "customers.email"),
                                          PH_FIELD_DETERMINISTIC, (const uint8_t *)v, strlen(v),
                                          env),
                     PH_FIELD_OK);
}

static void test_read_own_and_foreign_error(void **state)
{
    fx *f = *state;
    ph_buf up = {0}, down = {0}, envs[2] = {{0}, {0}};
    seal(f, "acme", "own@acme.test", &envs[0]);
    seal(f, "beta", "theirs@beta.test", &envs[1]);
    set_tenant(f, "acme");
    query(f, "SELECT email FROM customers", &up);
    email_rows(f, envs, 2, &down);
    fx_msgs ms;
    fx_expect_types(&down, &ms, "TDEZ");
    fx_expect_field_str(&ms.m[1], 0, "own@acme.test");
    assert_string_equal(fx_error_field(&ms.m[2], 'C'), "42501");
    assert_non_null(strstr(fx_error_field(&ms.m[2], 'M'), "belongs to another tenant"));
    assert_false(fx_contains(down.data, down.len, "theirs@beta.test"));
    /* no tenant: neither is readable */
    query(f, "RESET phantom.tenant", &up);
    answer(f, "RESET", &down);
    query(f, "SELECT email FROM customers", &up);
    email_rows(f, envs, 2, &down);
    fx_expect_types(&down, &ms, "TEZ");
    assert_non_null(strstr(fx_error_field(&ms.m[1], 'M'), "this session has none"));
    FREE_ALL(&up, &down, &envs[0], &envs[1]);
}

static void test_read_foreign_null(void **state)
{
    fx *f = *state;
    ph_buf up = {0}, down = {0}, envs[2] = {{0}, {0}};
    seal(f, "beta", "theirs@beta.test", &envs[0]);
    seal(f, "acme", "own@acme.test", &envs[1]);
    set_tenant(f, "acme");
    query(f, "SELECT email FROM customers", &up);
    email_rows(f, envs, 2, &down);
    fx_msgs ms;
    fx_expect_types(&down, &ms, "TDDCZ");
    const uint8_t *v;
    assert_int_equal(fx_datarow_field(&ms.m[1], 0, &v), -1); /* NULL */
    fx_expect_field_str(&ms.m[2], 0, "own@acme.test");
    assert_false(fx_contains(down.data, down.len, "theirs@beta.test"));
    FREE_ALL(&up, &down, &envs[0], &envs[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_and_show_simple, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_set_refused_forms, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_startup_tenant_is_fixed, setup_startup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reset_all_and_discard, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_write_under_session_tenant, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_row_tenant_literals, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_row_tenant_parameter, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_extended_set, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_copy_rows_under_their_tenants, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lookup_uses_session_tenant, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_read_own_and_foreign_error, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_read_foreign_null, setup_null, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
