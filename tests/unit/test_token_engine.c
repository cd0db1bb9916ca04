/*
 * test_token_engine.c — token columns through the session engine
 * (src/engine/coltoken.c and the token paths of session_query.c,
 * session_result.c, session_copy.c), with a real SQLite vault in a temp dir:
 *   - a stored literal goes upstream as a format-keeping token literal
 *     ('...', never the value, never bytea); a lookup of the same value sends
 *     the same token; a lookup of a value never stored sends a miss token and
 *     writes nothing to the vault;
 *   - result fields of token columns (text upstream) are detokenized in text
 *     and binary format, the type shown stays text; an unknown token fails
 *     the result closed (XX001) without quoting it;
 *   - extended protocol: Parse declares token parameters text, Bind sends
 *     the token (binary format); a parameter only compared creates nothing;
 *   - COPY FROM writes tokens as text (no bytea form), COPY TO gives values;
 *   - without a tokens: section the engine refuses token columns (0A000);
 *   - a token column of a tenant-keyed table uses the tenant's key domain:
 *     the same value gets different tokens for two tenants, a tenant's
 *     lookup never finds another's token, no tenant is refused (42501),
 *     another tenant's token is refused (42501) or NULL (foreign_values),
 *     and once one tenant's keys are gone (shredded) its tokens fail to
 *     detokenize (XX001) while the other's still do.
 */
#include "test_engine_fixture.h"

#include <dirent.h>
#include <unistd.h>

#include "engine/engine_internal.h"
#include "token/format.h"
#include "token/token.h"

static char tdir[64];

static void yaml_with_vault(char *out, size_t cap, int with_tokens)
{
    snprintf(out, cap,
             "encrypt:\n"
             "  customers:\n"
             "    - {column: email, mode: token, format: email}\n"
             "    - {column: phone, mode: token, format: digits}\n"
             "    - full_name: deterministic\n"
             "  payments:\n"
             "    - {column: card_number, mode: token, format: card}\n"
             "    - {column: customer_email, mode: token, format: email, key: customers.email}\n"
             "%s%s%s",
             with_tokens ? "tokens:\n  vault: sqlite\n  path: " : "", with_tokens ? tdir : "",
             with_tokens ? "/tokens.db\n  cache_size: 0\n" : "");
}

static int setup_with(void **state, int with_tokens)
{
    fx *f = calloc(1, sizeof *f);
    char err[256], yaml[1024];
    assert_non_null(f);
    snprintf(tdir, sizeof tdir, "/tmp/phantom-tokeng.XXXXXX");
    assert_non_null(mkdtemp(tdir));
    yaml_with_vault(yaml, sizeof yaml, with_tokens);
    if (ph_schema_load_buffer(&f->schema, yaml, strlen(yaml), "t.yaml", err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_true(with_tokens ? f->schema->tokens != NULL : f->schema->tokens == NULL);
    f->ks = ph_keysource_new();
    fx_add_keys(f);
    f->eng = ph_engine_open(f->schema, f->ks, err, sizeof err);
    if (!f->eng)
        fail_msg("engine: %s", err);
    f->s = ph_session_new(f->eng);
    pgf_init(&f->c2s, 1u << 26);
    pgf_init(&f->s2c, 1u << 26);
    fx_login(f);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 1);
}

static int setup_no_vault(void **state)
{
    return setup_with(state, 0);
}

static int teardown(void **state)
{
    fx_teardown(state);
    char p[128];
    static const char *const files[] = {"tokens.db", "tokens.db-wal", "tokens.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", tdir, files[i]);
        unlink(p);
    }
    rmdir(tdir);
    return 0;
}

static ph_tokens_stats stats(fx *f)
{
    ph_tokens_stats st;
    ph_tokens_get_stats(f->eng->tokens, &st);
    return st;
}

/* The string literal after `after` in a Query body, unquoted, into out. */
static void literal_after(const fx_msg *m, const char *after, char *out, size_t cap)
{
    const char *s = strstr((const char *)m->body, after);
    assert_non_null(s);
    s += strlen(after);
    assert_int_equal(*s, '\'');
    const char *e = strchr(s + 1, '\'');
    assert_non_null(e);
    assert_true((size_t)(e - s - 1) < cap);
    memcpy(out, s + 1, (size_t)(e - s - 1));
    out[e - s - 1] = '\0';
}

/* Sends a simple Query; returns the single upstream Query in *ms. */
static void query_up(fx *f, const char *sql, ph_buf *up, fx_msgs *ms)
{
    ph_buf in = {0};
    put_query(&in, sql);
    fx_c2s(f, &in, up);
    fx_expect_types(up, ms, "Q");
    ph_buf_free(&in);
}

static void test_literals(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf up = {0}, up2 = {0}, up3 = {0};
    fx_msgs ms;
    char card[64], again[64], miss[64], mail[128];
    query_up(f,
             "INSERT INTO payments (id, card_number, customer_email) VALUES (1, "
             "'4111111111111111', 'ann@example.com')",
             &up, &ms);
    assert_false(fx_contains(up.data, up.len, "4111111111111111"));
    assert_false(fx_contains(up.data, up.len, "ann@"));
    assert_false(fx_contains(up.data, up.len, "::bytea"));
    literal_after(&ms.m[0], "VALUES (1, ", card, sizeof card);
    assert_int_equal(strlen(card), 16);
    assert_true(ph_luhn_valid(card, 16));
    assert_string_equal(card + 12, "1111");
    char after[80];
    snprintf(after, sizeof after, "%s', ", card);
    literal_after(&ms.m[0], after, mail, sizeof mail);
    assert_true(ph_token_wellformed(PH_TOKEN_EMAIL, mail, strlen(mail)));
    assert_string_equal(mail + 16, "@example.com");
    assert_int_equal(stats(f).created, 2);

    /* the same value looked up: the same token, nothing created */
    fx_msgs ms2;
    query_up(f, "SELECT id FROM payments WHERE card_number = '4111111111111111'", &up2, &ms2);
    literal_after(&ms2.m[0], "card_number = ", again, sizeof again);
    assert_string_equal(again, card);
    /* a value never stored: a miss token, still nothing created */
    fx_msgs ms3;
    query_up(f, "SELECT id FROM payments WHERE card_number IN ('5555555555554444')", &up3, &ms3);
    literal_after(&ms3.m[0], "IN (", miss, sizeof miss);
    assert_memory_equal(miss, PH_TOKEN_MISS_PREFIX, strlen(PH_TOKEN_MISS_PREFIX));
    assert_int_equal(stats(f).created, 2);
    assert_int_equal(stats(f).misses, 1);
    FREE_ALL(&up, &up2, &up3);
}

/* A value the format refuses: refused in order, no vault record. */
static void test_invalid_value_refused(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0};
    put_query(&in, "INSERT INTO customers (id, phone) VALUES (1, '+33 1 23 45 67')");
    fx_c2s(f, &in, &up);
    assert_false(fx_contains(up.data, up.len, "+33 1 23"));
    assert_true(fx_contains(up.data, up.len, "22P02"));
    assert_true(fx_contains(up.data, up.len, "customers.phone"));
    assert_int_equal(stats(f).created, 0);
    FREE_ALL(&in, &up);
}

/* Tokenizes a value through the engine (as a stored literal would be). */
static void make_token(fx *f, const char *table, const char *col, const char *v, char *tok)
{
    const ph_schema_column *c = ph_schema_lookup(f->schema, NULL, table, col);
    eng_cc_err e = {{0}, {0}};
    ph_buf b = {0};
    assert_int_equal(eng_col_tokenize(f->eng, c, 0, (const uint8_t *)v, strlen(v), 1, &b, &e), 0);
    memcpy(tok, b.data, b.len);
    tok[b.len] = '\0';
    ph_buf_free(&b);
}

static void test_results(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    char card[64], mail[128];
    make_token(f, "payments", "card_number", "4000056655665556", card);
    make_token(f, "payments", "customer_email", "bob@example.org", mail);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0};
    put_query(&in, "SELECT card_number, customer_email, amount FROM payments");
    fx_c2s(f, &in, &up);
    fx_field fl[3] = {{"card_number", FX_PAY, 3, 25, -1, -1, 0},
                      {"customer_email", FX_PAY, 2, 1043, -1, -1, 0},
                      {"amount", FX_PAY, 4, 23, 4, -1, 0}};
    put_rowdesc(&ans, 3, fl);
    fx_val row[3] = {fx_str(card), fx_str(mail), fx_str("12")};
    put_datarow(&ans, 3, row);
    fx_val nulls[3] = {{NULL, 0}, {NULL, 0}, fx_str("1")};
    put_datarow(&ans, 3, nulls);
    put_complete(&ans, "SELECT 2");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_msgs ms;
    fx_expect_types(&down, &ms, "TDDCZ");
    fx_expect_field_str(&ms.m[1], 0, "4000056655665556");
    fx_expect_field_str(&ms.m[1], 1, "bob@example.org");
    fx_expect_field_str(&ms.m[1], 2, "12");
    const uint8_t *v;
    assert_int_equal(fx_datarow_field(&ms.m[2], 0, &v), -1); /* NULL stays NULL */
    fx_rd r = fx_reader(&ms.m[0]);
    assert_int_equal(fx_u16(&r), 3);
    (void)fx_cstr(&r);
    (void)fx_u32(&r);
    (void)fx_u16(&r);
    assert_int_equal(fx_u32(&r), 25); /* text, as the column's logical type */
    FREE_ALL(&in, &up, &ans, &down);
}

static void test_unknown_token_fails_closed(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0};
    put_query(&in, "SELECT card_number FROM payments");
    fx_c2s(f, &in, &up);
    fx_field fl = {"card_number", FX_PAY, 3, 25, -1, -1, 0};
    put_rowdesc(&ans, 1, &fl);
    fx_val row = fx_str("4242424242424242"); /* plaintext where a token belongs */
    put_datarow(&ans, 1, &row);
    put_complete(&ans, "SELECT 1");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_msgs ms;
    fx_expect_types(&down, &ms, "TEZ");
    assert_string_equal(fx_error_field(&ms.m[1], 'C'), "XX001");
    assert_non_null(strstr(fx_error_field(&ms.m[1], 'M'), "payments.card_number"));
    assert_false(fx_contains(down.data, down.len, "4242424242424242"));
    FREE_ALL(&in, &up, &ans, &down);
}

static void test_extended(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0};
    put_parse(&in, "ins", "INSERT INTO payments (id, card_number) VALUES ($1, $2)", 0, NULL);
    fx_param p[2] = {{"7", -1, 0}, {"4111111111111111", -1, 0}};
    put_bind(&in, "", "ins", 0, NULL, 2, p, 0, NULL);
    put_parse(&in, "sel", "SELECT id FROM payments WHERE card_number = $1", 0, NULL);
    fx_param q[1] = {{"6011000990139424", -1, 0}};
    put_bind(&in, "", "sel", 0, NULL, 1, q, 0, NULL);
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_expect_types(&up, &ms, "PBPB");
    uint32_t types[4];
    const char *sql;
    assert_int_equal(fx_parse_types(&ms.m[0], types, &sql), 2);
    assert_int_equal(types[1], 25); /* the token parameter is text upstream */
    assert_int_equal(fx_parse_types(&ms.m[2], types, &sql), 1);
    assert_int_equal(types[0], 25);
    assert_false(fx_contains(up.data, up.len, "4111111111111111"));
    assert_false(fx_contains(up.data, up.len, "6011000990139424"));
    assert_true(fx_contains(up.data, up.len, "1111")); /* the card token keeps its last four */
    assert_true(fx_contains(up.data, up.len, PH_TOKEN_MISS_PREFIX)); /* compared, never stored */
    assert_int_equal(stats(f).created, 1);
    FREE_ALL(&in, &up);
}

static void put_copy_response(ph_buf *b, char type, uint16_t n)
{
    mb m = mb_begin(b, type);
    mb_u8(&m, 0);
    mb_u16(&m, n);
    for (uint16_t i = 0; i < n; i++)
        mb_u16(&m, 0);
    mb_end(&m);
}

static void put_copy_data(ph_buf *b, const char *p)
{
    mb m = mb_begin(b, 'd');
    mb_raw(&m, p, strlen(p));
    mb_end(&m);
}

static void test_copy(void **state)
{
    fx *f = *state;
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0}, in2 = {0}, up2 = {0};
    put_query(&in, "COPY payments (id, card_number) FROM STDIN");
    fx_c2s(f, &in, &up);
    put_copy_response(&ans, 'G', 2);
    fx_s2c(f, &ans, &down);
    put_copy_data(&in2, "1\t4111111111111111\n2\t\\N\n");
    put_empty(&in2, 'c');
    fx_c2s(f, &in2, &up2);
    fx_msgs ms;
    fx_split(&up2, &ms);
    assert_int_equal(ms.m[0].type, 'd');
    const char *row = (const char *)ms.m[0].body;
    assert_int_equal(ms.m[0].len, strlen("1\t") + 16 + strlen("\n2\t\\N\n"));
    assert_memory_equal(row, "1\t", 2);
    assert_true(ph_luhn_valid(row + 2, 16)); /* text, no \\x */
    assert_memory_equal(row + 14, "1111\n2\t\\N\n", 10);
    char tok[17];
    memcpy(tok, row + 2, 16);
    tok[16] = '\0';
    assert_string_not_equal(tok, "4111111111111111");
    ph_buf a2 = {0}, d2 = {0}, in3 = {0}, up3 = {0}, a3 = {0}, d3 = {0};
    put_complete(&a2, "COPY 2");
    put_ready(&a2, 'I');
    fx_s2c(f, &a2, &d2);

    /* COPY TO: the server's tokens become values */
    put_query(&in3, "COPY payments (id, card_number) TO STDOUT");
    fx_c2s(f, &in3, &up3);
    put_copy_response(&a3, 'H', 2);
    char data[64];
    snprintf(data, sizeof data, "1\t%s\n2\t\\N\n", tok);
    put_copy_data(&a3, data);
    put_empty(&a3, 'c');
    put_complete(&a3, "COPY 2");
    put_ready(&a3, 'I');
    fx_s2c(f, &a3, &d3);
    fx_split(&d3, &ms);
    assert_int_equal(ms.m[1].type, 'd');
    assert_int_equal(ms.m[1].len, strlen("1\t4111111111111111\n2\t\\N\n"));
    assert_memory_equal(ms.m[1].body, "1\t4111111111111111\n2\t\\N\n", ms.m[1].len);
    FREE_ALL(&in, &up, &ans, &down, &in2, &up2, &a2, &d2, &in3, &up3, &a3, &d3);
}

static void test_no_vault_refuses(void **state)
{
    fx *f = *state;
    assert_null(f->eng->tokens);
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0};
    put_query(&in, "INSERT INTO payments (id, card_number) VALUES (1, '4111111111111111')");
    fx_c2s(f, &in, &up);
    assert_false(fx_contains(up.data, up.len, "4111111111111111"));
    assert_true(fx_contains(up.data, up.len, "0A000"));
    assert_true(fx_contains(up.data, up.len, "no token vault is configured"));
    FREE_ALL(&in, &up);
}

/* ---- a tenant-keyed table --------------------------------------------------------------- */

static const char *const ten_domains[] = {"tenant:acme/accounts.ssn", "tenant:beta/accounts.ssn"};

/* A key table with acme's key (id 31) and, unless shredded, beta's (41). */
static ph_keysource *tenant_keys(int beta)
{
    ph_keysource *ks = ph_keysource_new();
    assert_non_null(ks);
    for (int i = 0; i < 1 + (beta != 0); i++) {
        uint8_t dek[PH_FIELD_DEK_LEN];
        fx_dek(ten_domains[i], dek);
        assert_int_equal(ph_keysource_add(ks, ten_domains[i], 31 + 10 * (uint32_t)i, dek, 1), 0);
    }
    return ks;
}

static int setup_tenant(void **state)
{
    fx *f = calloc(1, sizeof *f);
    char err[256], yaml[512];
    assert_non_null(f);
    snprintf(tdir, sizeof tdir, "/tmp/phantom-tokeng.XXXXXX");
    assert_non_null(mkdtemp(tdir));
    snprintf(yaml, sizeof yaml,
             "encrypt:\n"
             "  accounts:\n"
             "    - {column: ssn, mode: token, format: digits}\n"
             "tenants:\n"
             "  tables:\n"
             "    accounts: {column: tenant_id}\n"
             "tokens:\n  vault: sqlite\n  path: %s/tokens.db\n  cache_size: 16\n",
             tdir);
    if (ph_schema_load_buffer(&f->schema, yaml, strlen(yaml), "t.yaml", err, sizeof err) != 0)
        fail_msg("%s", err);
    f->ks = tenant_keys(1);
    f->eng = ph_engine_open(f->schema, f->ks, err, sizeof err);
    if (!f->eng)
        fail_msg("engine: %s", err);
    f->s = ph_session_new(f->eng);
    *state = f;
    return 0;
}

/* tokenize_t of v for tenant (NULL: none); the rc, the token in tok. */
static int t_tokenize(fx *f, const char *tenant, const char *v, int create, char *tok,
                      eng_cc_err *e)
{
    const ph_schema_column *c = ph_schema_lookup(f->schema, NULL, "accounts", "ssn");
    eng_tenancy who = {.tenant = tenant};
    ph_buf b = {0};
    int rc = eng_col_tokenize_t(f->eng, &who, c, 0, (const uint8_t *)v, strlen(v), create, &b, e);
    assert_true(b.len < 64);
    memcpy(tok, b.data ? b.data : (uint8_t *)"", b.len);
    tok[b.len] = '\0';
    ph_buf_free(&b);
    return rc;
}

/* detokenize_t of tok for tenant; the rc, the value in out. */
static int t_detokenize(fx *f, const char *tenant, int foreign_null, const char *tok, char *out,
                        eng_cc_err *e)
{
    const ph_schema_column *c = ph_schema_lookup(f->schema, NULL, "accounts", "ssn");
    eng_tenancy who = {.tenant = tenant, .foreign_null = foreign_null};
    ph_buf b = {0};
    memset(e, 0, sizeof *e);
    int rc = eng_col_detokenize_t(f->eng, &who, c, (const uint8_t *)tok, strlen(tok), 0, &b, e);
    assert_true(b.len < 64);
    memcpy(out, b.data ? b.data : (uint8_t *)"", b.len);
    out[b.len] = '\0';
    ph_buf_free(&b);
    return rc;
}

static void test_tenant_tokens(void **state)
{
    fx *f = *state;
    eng_cc_err e = {{0}, {0}};
    char ta[64], tb[64], tb2[64], look[64], val[64];
    /* the same value: a token per tenant */
    assert_int_equal(t_tokenize(f, "acme", "123456789", 1, ta, &e), 0);
    assert_int_equal(t_tokenize(f, "beta", "123456789", 1, tb, &e), 0);
    assert_int_equal(strlen(ta), 9);
    assert_int_equal(strlen(tb), 9);
    assert_string_not_equal(ta, tb);
    assert_int_equal(t_tokenize(f, "beta", "555000111", 1, tb2, &e), 0);
    assert_int_equal(stats(f).created, 3);
    /* lookups: the own token; beta's value is a miss for acme (nothing made) */
    assert_int_equal(t_tokenize(f, "acme", "123456789", 0, look, &e), 0);
    assert_string_equal(look, ta);
    assert_int_equal(t_tokenize(f, "acme", "555000111", 0, look, &e), 0);
    assert_memory_equal(look, PH_TOKEN_MISS_PREFIX, strlen(PH_TOKEN_MISS_PREFIX));
    assert_string_not_equal(look, tb2);
    assert_int_equal(stats(f).created, 3);
    /* no tenant: refused */
    assert_int_equal(t_tokenize(f, NULL, "123456789", 1, look, &e), -1);
    assert_string_equal(e.sqlstate, "42501");
    assert_int_equal(stats(f).created, 3);
    /* reads: own tokens open; another tenant's is refused or NULL */
    assert_int_equal(t_detokenize(f, "acme", 0, ta, val, &e), 0);
    assert_string_equal(val, "123456789");
    assert_int_equal(t_detokenize(f, "beta", 0, tb, val, &e), 0);
    assert_string_equal(val, "123456789");
    assert_int_equal(t_detokenize(f, "acme", 0, tb2, val, &e), -1);
    assert_string_equal(e.sqlstate, "42501");
    assert_non_null(strstr(e.message, "another tenant"));
    assert_int_equal(t_detokenize(f, "acme", 1, tb2, val, &e), 1);
    assert_string_equal(val, "");
    assert_int_equal(t_detokenize(f, NULL, 0, ta, val, &e), -1);
    assert_string_equal(e.sqlstate, "42501");

    /* beta's keys destroyed (shredded): a proxy over the same vault without them */
    ph_session_free(f->s);
    ph_engine_free(f->eng);
    ph_keysource_free(f->ks);
    char err[256];
    f->ks = tenant_keys(0);
    f->eng = ph_engine_open(f->schema, f->ks, err, sizeof err);
    if (!f->eng)
        fail_msg("engine: %s", err);
    f->s = ph_session_new(f->eng);
    assert_int_equal(t_detokenize(f, "beta", 0, tb, val, &e), -1);
    assert_string_equal(e.sqlstate, "XX001");
    assert_non_null(strstr(e.message, "destroyed"));
    assert_null(strstr(e.message, "123456789"));
    assert_string_equal(val, "");
    assert_int_equal(t_detokenize(f, "acme", 0, ta, val, &e), 0);
    assert_string_equal(val, "123456789");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_literals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_value_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_token_fails_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extended, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_vault_refuses, setup_no_vault, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_tokens, setup_tenant, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
