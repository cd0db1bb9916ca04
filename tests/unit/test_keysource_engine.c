/*
 * test_keysource_engine.c — the session engine over a live key source whose
 * keys are unavailable (engine/keysource.h): a statement on a protected
 * table is refused up front with SQLSTATE 58000 and the "keys are
 * unavailable" message (nothing of it goes upstream), in Query, Parse and a
 * Bind of a statement prepared before the outage; a statement on no
 * protected table is served (when_unavailable: serve-unprotected) or
 * refused too (refuse); a result arriving after the keys expired fails with
 * that error instead of a value; once the keys load again the same session
 * is served. A fake loader (the fixture's fixed DEKs) and an injected clock.
 */
#include <stdatomic.h>

#include "test_engine_fixture.h"

static atomic_uint_fast64_t now_ms;

static uint64_t fake_now(void)
{
    return atomic_load(&now_ms);
}

typedef struct live_fx {
    fx *f;
    ph_keysource *live;
    ph_engine *eng;
    ph_session *keep; /* the fixture's own session, over its key table */
    atomic_int down;
} live_fx;

/* The fixture's keys (fx_dek of every key domain, key id 1), or "down". */
static int load_fixture_keys(void *arg, const ph_keysource *pin, ph_keysource **out, char *err,
                             size_t errlen)
{
    live_fx *l = arg;
    (void)pin;
    if (atomic_load(&l->down)) {
        snprintf(err, errlen, "connection refused");
        return PH_KS_FAIL_PROVIDER;
    }
    ph_keysource *t = ph_keysource_new();
    const ph_schema *sc = l->f->schema;
    for (size_t i = 0; t && i < sc->ntables; i++)
        for (size_t c = 0; c < sc->tables[i]->ncolumns; c++) {
            const char *d = sc->tables[i]->columns[c]->key_domain;
            uint8_t dek[PH_FIELD_DEK_LEN];
            if (ph_keysource_write_key(t, d))
                continue;
            fx_dek(d, dek);
            assert_int_equal(ph_keysource_add_version(t, d, 1, 1, dek, 1), 0);
        }
    *out = t;
    return t ? 0 : PH_KS_FAIL_PROVIDER;
}

/* A session over a live source with keys down (refuse_all as configured). */
static live_fx *live_setup(fx *f, int refuse_all)
{
    live_fx *l = calloc(1, sizeof *l);
    assert_non_null(l);
    l->f = f;
    atomic_store(&now_ms, 5000000);
    atomic_store(&l->down, 1);
    ph_keysource_live_opts o = {.ttl_ms = 60000,
                                .refuse_all = refuse_all,
                                .load = load_fixture_keys,
                                .load_arg = l,
                                .now_ms = fake_now};
    char err[256];
    l->live = ph_keysource_live_new(&o, err, sizeof err);
    assert_non_null(l->live);
    assert_int_equal(ph_keysource_refresh_now(l->live, NULL, 0), PH_KS_FAIL_PROVIDER);
    l->eng = ph_engine_new(f->schema, l->live);
    assert_non_null(l->eng);
    l->keep = f->s;
    f->s = ph_session_new(l->eng);
    assert_non_null(f->s);
    fx_login(f);
    return l;
}

static void live_teardown(live_fx *l)
{
    ph_session_free(l->f->s);
    l->f->s = l->keep;
    ph_engine_free(l->eng);
    ph_keysource_free(l->live);
    free(l);
}

static void keys_back(live_fx *l)
{
    atomic_store(&l->down, 0);
    assert_int_equal(ph_keysource_refresh_now(l->live, NULL, 0), 0);
}

/* up is exactly one Query raising 58000 with the keys message (and holding
 * none of the client's statement). */
static void expect_query_refusal(const ph_buf *up, const char *tail, const char *secret)
{
    fx_msgs ms;
    fx_expect_types(up, &ms, "Q");
    assert_true(fx_contains(up->data, up->len, "DO $phantom$"));
    assert_true(fx_contains(up->data, up->len, "ERRCODE = '58000'"));
    assert_true(fx_contains(up->data, up->len,
                            "phantom: encryption keys are unavailable (key provider unreachable "
                            "since "));
    assert_true(fx_contains(up->data, up->len, tail));
    assert_false(fx_contains(up->data, up->len, secret));
}

static void test_protected_refused_unprotected_served(void **state)
{
    fx *f = *state;
    live_fx *l = live_setup(f, 0);
    ph_buf in = {0}, up = {0}, in2 = {0}, up2 = {0};
    put_query(&in, "SELECT full_name FROM customers WHERE email = 'alice@example.com'");
    fx_c2s(f, &in, &up);
    expect_query_refusal(&up, "statements on protected tables are refused", "alice@example.com");
    put_query(&in2, "SELECT note FROM plain_notes WHERE id = 1");
    fx_c2s(f, &in2, &up2); /* served: the catalog query, then the statement as sent */
    fx_msgs ms;
    fx_expect_types(&up2, &ms, "QQ");
    assert_true(fx_is_catalog_query(&ms.m[0]));
    assert_memory_equal(ms.m[1].body - 5, in2.data, in2.len);
    FREE_ALL(&in, &up, &in2, &up2);
    live_teardown(l);
}

static void test_refuse_mode_refuses_everything(void **state)
{
    fx *f = *state;
    live_fx *l = live_setup(f, 1);
    ph_buf in = {0}, up = {0};
    put_query(&in, "SELECT note FROM plain_notes WHERE id = 1");
    fx_c2s(f, &in, &up);
    expect_query_refusal(&up, "every statement is refused until they are back", "plain_notes");
    FREE_ALL(&in, &up);
    /* once the keys are there, the same session is served */
    keys_back(l);
    ph_buf in2 = {0}, up2 = {0};
    put_query(&in2, "SELECT full_name FROM customers WHERE email = 'alice@example.com'");
    fx_c2s(f, &in2, &up2);
    assert_false(fx_contains(up2.data, up2.len, "DO $phantom$"));
    assert_false(fx_contains(up2.data, up2.len, "alice@example.com")); /* encrypted */
    assert_true(fx_contains(up2.data, up2.len, "FROM customers WHERE email = '\\x"));
    FREE_ALL(&in2, &up2);
    live_teardown(l);
}

static void test_parse_refused_up_front(void **state)
{
    fx *f = *state;
    live_fx *l = live_setup(f, 0);
    ph_buf in = {0}, up = {0};
    put_parse(&in, "s1", "INSERT INTO customers (email) VALUES ('bob@example.com')", 0, NULL);
    put_bind(&in, "", "s1", 0, NULL, 0, NULL, 0, NULL);
    put_execute(&in, "", 0);
    put_empty(&in, 'S');
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    /* Close, Parse and Bind of the refusal, its Execute; the client's Bind
     * and Execute are dropped; Sync */
    fx_expect_types(&up, &ms, "CPBES");
    assert_true(fx_contains(up.data, up.len, "ERRCODE = '58000'"));
    assert_true(fx_contains(up.data, up.len, "statements on protected tables are refused"));
    assert_false(fx_contains(up.data, up.len, "bob@example.com"));
    assert_false(fx_contains(up.data, up.len, "INSERT INTO customers"));
    FREE_ALL(&in, &up);
    live_teardown(l);
}

/* A statement prepared while the keys were there, bound after they expired. */
static void test_bind_after_expiry_refused(void **state)
{
    fx *f = *state;
    live_fx *l = live_setup(f, 0);
    keys_back(l);
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0};
    put_parse(&in, "s2", "SELECT full_name FROM customers WHERE id = $1", 0, NULL);
    fx_c2s(f, &in, &up);
    assert_false(fx_contains(up.data, up.len, "DO $phantom$"));
    FREE_ALL(&in, &up);
    atomic_store(&l->down, 1);
    atomic_fetch_add(&now_ms, 60000); /* no refresh for a TTL: the keys expire */
    ph_keysource_tick(l->live);
    ph_buf in2 = {0}, up2 = {0};
    fx_param p = {"7", -1, 0};
    put_bind(&in2, "", "s2", 0, NULL, 1, &p, 0, NULL);
    put_execute(&in2, "", 0);
    put_empty(&in2, 'S');
    fx_c2s(f, &in2, &up2);
    fx_msgs ms;
    fx_expect_types(&up2, &ms, "CPBES");
    assert_true(fx_contains(up2.data, up2.len, "ERRCODE = '58000'"));
    FREE_ALL(&in2, &up2);
    live_teardown(l);
}

/* The keys expire between a statement and its result: the result fails
 * with the keys error, never a value or garbage. */
static void test_result_after_expiry_fails_closed(void **state)
{
    fx *f = *state;
    live_fx *l = live_setup(f, 0);
    keys_back(l);
    fx_load_catalog(f);
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0}, e = {0}, h = {0};
    put_query(&in, "SELECT full_name FROM customers");
    fx_c2s(f, &in, &up);
    assert_memory_equal(up.data, in.data, in.len); /* sent as is */
    atomic_store(&l->down, 1);
    atomic_fetch_add(&now_ms, 60000);
    fx_field fl = {"full_name", FX_CUST, 3, 17, -1, -1, 0};
    put_rowdesc(&ans, 1, &fl);
    fx_rand(f, "customers", "full_name", "Carol Secret", &e);
    fx_hex(&e, &h, false);
    fx_val v = {h.data, h.len};
    put_datarow(&ans, 1, &v);
    put_complete(&ans, "SELECT 1");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    fx_msgs ms;
    fx_expect_types(&down, &ms, "TEZ");
    assert_string_equal(fx_error_field(&ms.m[1], 'C'), "58000");
    assert_non_null(
        strstr(fx_error_field(&ms.m[1], 'M'), "phantom: encryption keys are unavailable"));
    assert_false(fx_contains(down.data, down.len, "Carol Secret"));
    assert_false(fx_contains(down.data, down.len, (const char *)h.data + 2));
    FREE_ALL(&in, &up, &ans, &down, &e, &h);
    live_teardown(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_protected_refused_unprotected_served, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_mode_refuses_everything, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_parse_refused_up_front, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bind_after_expiry_refused, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_result_after_expiry_fails_closed, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
