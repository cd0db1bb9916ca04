/*
 * test_keysource_refresh.c — unit tests for the proxy's live key source
 * (engine/keysource.h, keysource_live.c): a fake loader and an injected
 * clock drive start-up without keys, retries with backoff, the refresh at
 * TTL/2, expiry (the table is dropped and freed — its keys wiped — once no
 * refresh succeeded for a TTL), recovery, the refusal messages, references
 * held across a swap or an expiry, workers using keys while tables are
 * swapped and expired, and the refresh thread (real clock). The default
 * loader is tested over a real keyring and file KEK: classification of
 * failures (keyring: no start; provider: start without keys), refreshes
 * calling the KEK (audited dek.load), pinned versions after a rotation, a
 * file KEK rotated meanwhile.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/log.h"
#include "crypto/field.h"
#include "engine/keysource.h"
#include "keys/audit.h"
#include "keys/kek.h"
#include "keys/kek_file.h"
#include "keys/keyring.h"
#include "keys/keys_config.h"
#include "schema/schema.h"
#include "test_keys_fixture.h"

#define DOMAIN "customers.email"

/* ---- a fake loader and clock ------------------------------------------------------ */

static atomic_uint_fast64_t fake_now_ms;

static uint64_t fake_now(void)
{
    return atomic_load(&fake_now_ms);
}

static void advance(uint64_t ms)
{
    atomic_fetch_add(&fake_now_ms, ms);
}

typedef struct fake {
    atomic_int fail;  /* the next loads fail */
    int cause;        /* ... with this PH_KS_FAIL_* */
    atomic_int calls; /* loads attempted */
    atomic_int seed;  /* DEK bytes of the next table */
    int pinned;       /* the last call got a pin */
    uint32_t pin_version, pin_key_id;
} fake;

static int fake_load(void *arg, const ph_keysource *pin, ph_keysource **out, char *err,
                     size_t errlen)
{
    fake *f = arg;
    atomic_fetch_add(&f->calls, 1);
    f->pinned = pin != NULL;
    const char *d;
    int active;
    if (pin && ph_keysource_entry(pin, 0, &d, &f->pin_version, &f->pin_key_id, &active) != 0)
        f->pin_version = 0;
    if (atomic_load(&f->fail)) {
        snprintf(err, errlen, "test provider down");
        return f->cause;
    }
    ph_keysource *t = ph_keysource_new();
    uint8_t dek[PH_FIELD_DEK_LEN];
    memset(dek, atomic_load(&f->seed), sizeof dek);
    if (!t || ph_keysource_add_version(t, DOMAIN, 1, 7, dek, 1) != 0) {
        ph_keysource_free(t);
        snprintf(err, errlen, "out of memory");
        return PH_KS_FAIL_PROVIDER;
    }
    *out = t;
    return 0;
}

static ph_keysource *live(fake *f, unsigned ttl_ms, int refuse_all)
{
    ph_keysource_live_opts o = {
        .ttl_ms = ttl_ms,
        .refuse_all = refuse_all,
        .load = fake_load,
        .load_arg = f,
        .now_ms = fake_now,
    };
    char err[256];
    ph_keysource *ks = ph_keysource_live_new(&o, err, sizeof err);
    assert_non_null(ks);
    return ks;
}

static ph_keysource_stats stats(const ph_keysource *ks)
{
    ph_keysource_stats st;
    ph_keysource_get_stats(ks, &st);
    return st;
}

/* Seals and opens a value with k: fails the test unless it round-trips. */
static void use_key(const ph_field_key *k)
{
    assert_non_null(k);
    ph_buf env = {0}, back = {0};
    assert_int_equal(ph_field_encrypt_buf(k, PH_FIELD_RANDOMIZED, (const uint8_t *)"v", 1, &env),
                     PH_FIELD_OK);
    assert_int_equal(ph_field_decrypt_buf(k, PH_FIELD_RANDOMIZED, env.data, env.len, &back),
                     PH_FIELD_OK);
    assert_int_equal(back.len, 1);
    assert_int_equal(back.data[0], 'v');
    ph_buf_free(&env);
    ph_buf_free(&back);
}

static int setup_clock(void **state)
{
    (void)state;
    atomic_store(&fake_now_ms, 1000000);
    return 0;
}

/* ---- start without keys, backoff, recovery ------------------------------------------- */

static void test_start_unavailable_then_recovers(void **state)
{
    (void)state;
    fake f = {.cause = PH_KS_FAIL_PROVIDER};
    atomic_store(&f.fail, 1);
    ph_keysource *ks = live(&f, 2000, 0);
    char err[256], m[512];
    assert_int_equal(ph_keysource_refresh_now(ks, err, sizeof err), PH_KS_FAIL_PROVIDER);
    fx_expect_err(err, "test provider down");
    assert_int_equal(stats(ks).available, 0);
    assert_null(ph_keysource_acquire(ks));
    assert_int_equal(ph_keysource_refusal(ks, 1, m, sizeof m), 1);
    fx_expect_err(m, "phantom: encryption keys are unavailable (key provider unreachable since ");
    fx_expect_err(m, " UTC); statements on protected tables are refused");
    assert_int_equal(ph_keysource_refusal(ks, 0, m, sizeof m), 0); /* serve-unprotected */

    /* retries every 1 s: the backoff starts at 1 s and TTL/2 = 1 s caps it */
    assert_int_equal(ph_keysource_tick(ks), 1000);
    advance(999);
    assert_int_equal(ph_keysource_tick(ks), 1);
    assert_int_equal(atomic_load(&f.calls), 1);
    advance(1);
    assert_int_equal(ph_keysource_tick(ks), 1000);
    assert_int_equal(atomic_load(&f.calls), 2);

    atomic_store(&f.fail, 0);
    advance(1000);
    assert_int_equal(ph_keysource_tick(ks), 1000); /* loaded: next refresh at TTL/2 */
    assert_int_equal(atomic_load(&f.calls), 3);
    assert_false(f.pinned); /* nothing was loaded before: the loader plans the schema */
    ph_keysource_stats st = stats(ks);
    assert_int_equal(st.available, 1);
    assert_int_equal(st.loads_ok, 1);
    assert_int_equal(st.loads_failed, 2);
    assert_int_equal(ph_keysource_refusal(ks, 1, m, sizeof m), 0);
    const ph_keysource *t = ph_keysource_acquire(ks);
    assert_non_null(t);
    use_key(ph_keysource_write_key(t, DOMAIN));
    ph_keysource_release(ks, t);
    ph_keysource_free(ks);
}

static void backoff_series(unsigned ttl, const uint64_t *want, size_t n)
{
    fake f = {.cause = PH_KS_FAIL_PROVIDER};
    atomic_store(&f.fail, 1);
    ph_keysource *ks = live(&f, ttl, 0);
    for (size_t i = 0; i < n; i++) {
        uint64_t wait = ph_keysource_tick(ks);
        assert_int_equal(wait, want[i]);
        advance(wait);
    }
    assert_int_equal(atomic_load(&f.calls), (int)n);
    ph_keysource_free(ks);
}

static void test_backoff_doubles_to_cap(void **state)
{
    (void)state;
    static const uint64_t big[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000};
    backoff_series(300000, big, sizeof big / sizeof big[0]); /* default TTL: cap 30 s */
    static const uint64_t small[] = {1000, 2000, 4000, 5000, 5000};
    backoff_series(10000, small, sizeof small / sizeof small[0]); /* cap TTL/2 */
}

/* ---- refresh, expiry, recovery ---------------------------------------------------------- */

static void test_refresh_at_half_ttl_reloads_pinned(void **state)
{
    (void)state;
    fake f = {.cause = PH_KS_FAIL_PROVIDER};
    ph_keysource *ks = live(&f, 2000, 0);
    assert_int_equal(ph_keysource_refresh_now(ks, NULL, 0), 0);
    assert_int_equal(ph_keysource_tick(ks), 1000);
    advance(1000);
    assert_int_equal(ph_keysource_tick(ks), 1000);
    assert_int_equal(atomic_load(&f.calls), 2); /* the KEK side was called again */
    assert_true(f.pinned);                      /* for exactly the versions first loaded */
    assert_int_equal(f.pin_version, 1);
    assert_int_equal(f.pin_key_id, 7);
    advance(1500); /* 2.5 s after the first load: alive thanks to the refresh at 1 s */
    const ph_keysource *t = ph_keysource_acquire(ks);
    assert_non_null(t);
    ph_keysource_release(ks, t);
    ph_keysource_stats st = stats(ks);
    assert_int_equal(st.loads_ok, 2);
    assert_int_equal(st.tables_freed, 1); /* the first table, swapped out */
    assert_int_equal(st.expiries, 0);
    ph_keysource_free(ks);
}

static void test_ttl_expiry_wipes_and_refresh_restores(void **state)
{
    (void)state;
    fake f = {.cause = PH_KS_FAIL_PROVIDER};
    ph_keysource *ks = live(&f, 2000, 0);
    assert_int_equal(ph_keysource_refresh_now(ks, NULL, 0), 0);
    atomic_store(&f.fail, 1);
    advance(1000);
    assert_int_equal(ph_keysource_tick(ks), 1000); /* refresh failed; keys serve 1 s more */
    const ph_keysource *t = ph_keysource_acquire(ks);
    assert_non_null(t);
    ph_keysource_release(ks, t);
    advance(999);
    ph_keysource_tick(ks);
    assert_int_equal(stats(ks).available, 1);
    advance(1); /* the TTL has passed: the retry fails, the table goes */
    ph_keysource_tick(ks);
    ph_keysource_stats st = stats(ks);
    assert_int_equal(st.available, 0);
    assert_int_equal(st.expiries, 1);
    assert_int_equal(st.tables_freed, 1); /* nobody held it: freed, keys wiped */
    assert_null(ph_keysource_acquire(ks));
    char m[512];
    assert_int_equal(ph_keysource_refusal(ks, 1, m, sizeof m), 1);
    fx_expect_err(m, "key provider unreachable since ");

    atomic_store(&f.fail, 0); /* the provider is back: the next retry restores service */
    advance(ph_keysource_tick(ks));
    ph_keysource_tick(ks);
    st = stats(ks);
    assert_int_equal(st.available, 1);
    assert_int_equal(ph_keysource_refusal(ks, 1, m, sizeof m), 0);
    t = ph_keysource_acquire(ks);
    use_key(ph_keysource_write_key(t, DOMAIN));
    ph_keysource_release(ks, t);
    ph_keysource_free(ks);
}

static void test_acquire_enforces_expiry(void **state)
{
    (void)state;
    fake f = {.cause = PH_KS_FAIL_PROVIDER};
    ph_keysource *ks = live(&f, 2000, 0);
    assert_int_equal(ph_keysource_refresh_now(ks, NULL, 0), 0);
    advance(2000); /* no tick at all (the thread is stuck in a slow KEK call) */
    char m[512];
    assert_int_equal(ph_keysource_refusal(ks, 1, m, sizeof m), 1);
    assert_null(ph_keysource_acquire(ks));
    ph_keysource_stats st = stats(ks);
    assert_int_equal(st.expiries, 1);
    assert_int_equal(st.tables_freed, 1);
    ph_keysource_free(ks);
}

/* ---- references held across a swap or an expiry ------------------------------------------ */

static void test_held_reference_survives_swap(void **state)
{
    (void)state;
    fake f = {.cause = PH_KS_FAIL_PROVIDER};
    atomic_store(&f.seed, 1);
    ph_keysource *ks = live(&f, 2000, 0);
    assert_int_equal(ph_keysource_refresh_now(ks, NULL, 0), 0);
    const ph_keysource *t1 = ph_keysource_acquire(ks);
    const ph_field_key *k1 = ph_keysource_write_key(t1, DOMAIN);
    atomic_store(&f.seed, 2);
    assert_int_equal(ph_keysource_refresh_now(ks, NULL, 0), 0); /* swap */
    const ph_keysource *t2 = ph_keysource_acquire(ks);
    assert_ptr_not_equal(t1, t2);
    assert_int_equal(stats(ks).tables_freed, 0); /* t1 is still held */
    use_key(k1);                                 /* and its key still works */
    ph_keysource_release(ks, t1);
    assert_int_equal(stats(ks).tables_freed, 1); /* freed at the last release */
    use_key(ph_keysource_write_key(t2, DOMAIN));
    ph_keysource_release(ks, t2);
    assert_int_equal(stats(ks).tables_freed, 1); /* t2 is current */
    ph_keysource_free(ks);
}

static void test_held_reference_survives_expiry(void **state)
{
    (void)state;
    fake f = {.cause = PH_KS_FAIL_PROVIDER};
    ph_keysource *ks = live(&f, 2000, 0);
    assert_int_equal(ph_keysource_refresh_now(ks, NULL, 0), 0);
    const ph_keysource *t = ph_keysource_acquire(ks);
    atomic_store(&f.fail, 1);
    advance(2000);
    ph_keysource_tick(ks);
    ph_keysource_stats st = stats(ks);
    assert_int_equal(st.available, 0);
    assert_int_equal(st.tables_freed, 0);       /* in use: not wiped under its user */
    use_key(ph_keysource_write_key(t, DOMAIN)); /* the value in flight completes */
    assert_null(ph_keysource_acquire(ks));      /* but nobody new gets the keys */
    ph_keysource_release(ks, t);
    assert_int_equal(stats(ks).tables_freed, 1); /* wiped at the release */
    ph_keysource_free(ks);
}

/* ---- refusal messages ---------------------------------------------------------------------- */

static void test_refusal_modes_and_causes(void **state)
{
    (void)state;
    fake f = {.cause = PH_KS_FAIL_KEYRING};
    atomic_store(&f.fail, 1);
    ph_keysource *ks = live(&f, 2000, 1); /* when_unavailable: refuse */
    assert_int_equal(ph_keysource_refresh_now(ks, NULL, 0), PH_KS_FAIL_KEYRING);
    char m[512];
    assert_int_equal(ph_keysource_refusal(ks, 0, m, sizeof m), 1);
    fx_expect_err(m, "every statement is refused until they are back");
    fx_expect_err(m, "(keyring unusable since ");
    assert_int_equal(ph_keysource_refusal(ks, 1, m, sizeof m), 1);
    fx_expect_err(m, "statements on protected tables are refused");
    atomic_store(&f.fail, 0);
    assert_int_equal(ph_keysource_refresh_now(ks, NULL, 0), 0);
    assert_int_equal(ph_keysource_refusal(ks, 0, m, sizeof m), 0);
    assert_int_equal(ph_keysource_refusal(ks, 1, m, sizeof m), 0);
    ph_keysource_free(ks);

    /* a key table never refuses and acquires as itself */
    ph_keysource *tab = ph_keysource_new();
    assert_int_equal(ph_keysource_refusal(tab, 1, m, sizeof m), 0);
    assert_ptr_equal(ph_keysource_acquire(tab), tab);
    ph_keysource_release(tab, tab);
    ph_keysource_free(tab);
}

/* ---- workers using keys while tables are swapped and expired --------------------------------- */

typedef struct worker_arg {
    ph_keysource *ks;
    atomic_int *stop;
    int uses, errors;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    while (!atomic_load(a->stop)) {
        const ph_keysource *t = ph_keysource_acquire(a->ks);
        if (!t)
            continue;
        const ph_field_key *k = ph_keysource_write_key(t, DOMAIN);
        ph_buf env = {0}, back = {0};
        if (!k ||
            ph_field_encrypt_buf(k, PH_FIELD_RANDOMIZED, (const uint8_t *)"abc", 3, &env) !=
                PH_FIELD_OK ||
            ph_field_decrypt_buf(k, PH_FIELD_RANDOMIZED, env.data, env.len, &back) != PH_FIELD_OK ||
            back.len != 3 || memcmp(back.data, "abc", 3) != 0)
            a->errors++;
        ph_buf_free(&env);
        ph_buf_free(&back);
        ph_keysource_release(a->ks, t);
        a->uses++;
    }
    return NULL;
}

static void test_workers_during_swaps_and_expiries(void **state)
{
    (void)state;
    fake f = {.cause = PH_KS_FAIL_PROVIDER};
    ph_keysource *ks = live(&f, 2000, 0);
    assert_int_equal(ph_keysource_refresh_now(ks, NULL, 0), 0);
    atomic_int stop = 0;
    worker_arg args[2] = {{ks, &stop, 0, 0}, {ks, &stop, 0, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    int expired = 0;
    for (int i = 0; i < 400; i++) {
        atomic_store(&f.seed, i & 0xff);
        if (i % 10 == 5) { /* an outage: the keys expire under the workers */
            atomic_store(&f.fail, 1);
            advance(2000);
            ph_keysource_tick(ks);
            atomic_store(&f.fail, 0);
            expired++;
        }
        assert_int_equal(ph_keysource_refresh_now(ks, NULL, 0), 0);
        if (i % 50 == 0)
            usleep(1000);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(args[0].errors + args[1].errors, 0);
    assert_true(args[0].uses + args[1].uses > 0);
    ph_keysource_stats st = stats(ks);
    assert_int_equal(st.expiries, expired); /* by a worker or by tick, once each */
    assert_int_equal(st.loads_ok, 401);
    assert_int_equal(st.loads_failed, expired);
    assert_int_equal(st.tables_freed, 400); /* every table but the current one, once */
    ph_keysource_free(ks);
}

/* ---- the refresh thread (real clock) ----------------------------------------------------------
 */

/* Polls (1 ms steps, at most 3 s) until cond(ks) holds. */
static int wait_until(ph_keysource *ks, int (*cond)(const ph_keysource_stats *, uint64_t),
                      uint64_t arg)
{
    for (int i = 0; i < 3000; i++) {
        ph_keysource_stats st;
        ph_keysource_get_stats(ks, &st);
        if (cond(&st, arg))
            return 1;
        usleep(1000);
    }
    return 0;
}

static int loads_at_least(const ph_keysource_stats *st, uint64_t n)
{
    return st->loads_ok >= n;
}

static int failures_at_least(const ph_keysource_stats *st, uint64_t n)
{
    return st->loads_failed >= n;
}

static int available_is(const ph_keysource_stats *st, uint64_t v)
{
    return (uint64_t)st->available == v;
}

static void test_thread_refreshes_expires_recovers(void **state)
{
    (void)state;
    fake f = {.cause = PH_KS_FAIL_PROVIDER};
    atomic_store(&f.fail, 1);
    ph_keysource_live_opts o = {
        .ttl_ms = 200, .load = fake_load, .load_arg = &f, .backoff_min_ms = 20};
    char err[256];
    ph_keysource *ks = ph_keysource_live_new(&o, err, sizeof err);
    assert_non_null(ks);
    assert_int_equal(ph_keysource_start(ks), 0);
    assert_true(wait_until(ks, failures_at_least, 2)); /* down at start: retried */
    atomic_store(&f.fail, 0);
    assert_true(wait_until(ks, available_is, 1)); /* the provider is back */
    uint64_t loads = stats(ks).loads_ok;
    assert_true(wait_until(ks, loads_at_least, loads + 2)); /* refreshed every 100 ms */
    atomic_store(&f.fail, 1);
    assert_true(wait_until(ks, available_is, 0)); /* expired within the TTL */
    assert_true(stats(ks).expiries >= 1);
    atomic_store(&f.fail, 0);
    assert_true(wait_until(ks, available_is, 1)); /* recovered without a restart */
    ph_keysource_stop(ks);
    int calls = atomic_load(&f.calls);
    usleep(250000);
    assert_int_equal(atomic_load(&f.calls), calls); /* stopped: no more loads */
    ph_keysource_free(ks);
}

/* ---- the default loader over a real keyring and file KEK ----------------------------------------
 */

typedef struct real_fx {
    char dir[64], keyring[128], master[128], audit_path[128], cfg[512];
    ph_keys_config kc;
    ph_schema *schema;
    ph_audit *audit;
} real_fx;

static void add_dek(real_fx *r, int create)
{
    fx_keyring_add_dek(r->keyring, r->master, DOMAIN, create);
}

static int real_setup(void **state)
{
    real_fx *r = calloc(1, sizeof *r);
    assert_non_null(r);
    assert_int_equal(fx_mkdtemp(r->dir, sizeof r->dir, "ph-ksrefresh"), 0);
    snprintf(r->keyring, sizeof r->keyring, "%s/keyring.json", r->dir);
    snprintf(r->master, sizeof r->master, "%s/master.key", r->dir);
    snprintf(r->audit_path, sizeof r->audit_path, "%s/audit.jsonl", r->dir);
    char err[256];
    assert_int_equal(ph_kek_file_create(r->master, err, sizeof err), 0);
    snprintf(r->cfg, sizeof r->cfg,
             "keys:\n  keyring: %s\n  provider: file\n  file: { path: %s }\n  cache_ttl: 2s\n"
             "  when_unavailable: serve-unprotected\n",
             r->keyring, r->master);
    ph_keys_config_defaults(&r->kc);
    assert_int_equal(
        ph_keys_config_load_string(&r->kc, "t.yaml", r->cfg, strlen(r->cfg), err, sizeof err), 0);
    assert_int_equal(r->kc.cache_ttl_s, 2);
    assert_int_equal(r->kc.when_unavailable, PH_KEYS_UNAVAILABLE_SERVE_UNPROTECTED);
    static const char enc[] = "encrypt:\n  customers:\n    - email: deterministic\n";
    assert_int_equal(ph_schema_load_buffer(&r->schema, enc, strlen(enc), "t.yaml", err, sizeof err),
                     0);
    r->audit = ph_audit_open(r->audit_path, err, sizeof err);
    assert_non_null(r->audit);
    ph_audit_set_global(r->audit);
    *state = r;
    return 0;
}

static int real_teardown(void **state)
{
    real_fx *r = *state;
    ph_audit_set_global(NULL);
    ph_audit_close(r->audit);
    ph_schema_free(r->schema);
    ph_keys_config_free(&r->kc);
    fx_rm_rf(r->dir);
    free(r);
    return 0;
}

static void test_loader_keyring_error_refuses_start(void **state)
{
    real_fx *r = *state;
    char err[512];
    assert_null(ph_keysource_open_live(&r->kc, r->schema, err, sizeof err));
    fx_expect_err(err, "no key for key domain \"customers.email\" in the keyring");
}

static void test_loader_provider_down_at_start(void **state)
{
    real_fx *r = *state;
    add_dek(r, 1);
    char away[160], err[512];
    snprintf(away, sizeof away, "%s.away", r->master);
    assert_int_equal(rename(r->master, away), 0); /* the KEK is unreachable */
    ph_keysource *ks = ph_keysource_open_live(&r->kc, r->schema, err, sizeof err);
    assert_non_null(ks); /* starts, without keys */
    ph_keysource_stats st = stats(ks);
    assert_int_equal(st.available, 0);
    assert_int_equal(st.loads_failed, 1);
    assert_null(ph_keysource_acquire(ks));
    assert_int_equal(rename(away, r->master), 0);
    assert_int_equal(ph_keysource_refresh_now(ks, err, sizeof err), 0);
    const ph_keysource *t = ph_keysource_acquire(ks);
    use_key(ph_keysource_write_key(t, DOMAIN));
    ph_keysource_release(ks, t);
    ph_keysource_free(ks);
}

static void test_loader_refresh_calls_kek_and_pins(void **state)
{
    real_fx *r = *state;
    add_dek(r, 1);
    char err[512];
    ph_keysource *ks = ph_keysource_open_live(&r->kc, r->schema, err, sizeof err);
    assert_non_null(ks);
    assert_int_equal(stats(ks).available, 1);
    size_t loads = fx_count_lines(r->audit_path, "\"event\":\"dek.load\",\"outcome\":\"ok\"");
    assert_int_equal(loads, 1);
    add_dek(r, 0); /* keys rotate: version 2 (key id 2) becomes active in the keyring */
    assert_int_equal(ph_keysource_refresh_now(ks, err, sizeof err), 0);
    assert_int_equal(fx_count_lines(r->audit_path, "\"event\":\"dek.load\",\"outcome\":\"ok\""),
                     2); /* the refresh unwrapped again, through the KEK */
    const ph_keysource *t = ph_keysource_acquire(ks);
    assert_int_equal(ph_keysource_count(t), 1); /* still exactly version 1: pinned */
    const char *d;
    uint32_t version, key_id;
    int active;
    assert_int_equal(ph_keysource_entry(t, 0, &d, &version, &key_id, &active), 0);
    assert_string_equal(d, DOMAIN);
    assert_int_equal(version, 1);
    assert_int_equal(key_id, 1);
    assert_int_equal(active, 1);
    assert_int_equal(ph_field_key_id(ph_keysource_write_key(t, DOMAIN)), 1);
    ph_keysource_release(ks, t);
    ph_keysource_free(ks);
}

static void test_loader_file_kek_rotated_meanwhile(void **state)
{
    real_fx *r = *state;
    add_dek(r, 1);
    char err[512];
    ph_keysource *ks = ph_keysource_open_live(&r->kc, r->schema, err, sizeof err);
    assert_non_null(ks);
    /* keys rotate-kek + rewrap: the DEK is now wrapped by KEK version 2,
     * which the provider the source opened at start does not know */
    ph_kek *kek = ph_kek_file_open(r->master, err, sizeof err);
    assert_non_null(kek);
    assert_int_equal(ph_kek_rotate(kek, err, sizeof err), 0);
    ph_kek_destroy(kek);
    kek = ph_kek_file_open(r->master, err, sizeof err);
    assert_non_null(kek);
    ph_keyring *kr = NULL;
    assert_int_equal(ph_keyring_load(r->keyring, 0, &kr, err, sizeof err), 0);
    ph_dek_version *v = ph_keyring_version(ph_keyring_domain(kr, DOMAIN), 1);
    const ph_wrapped_dek *w = ph_keyring_wrapping(v, PH_WRAP_PRIMARY);
    uint8_t *blob = NULL;
    size_t blen = 0;
    assert_int_equal(ph_kek_rewrap(kek, w->blob, w->blob_len, &blob, &blen, err, sizeof err), 0);
    assert_int_equal(ph_kek_file_blob_version(blob, blen), 2);
    assert_int_equal(
        ph_keyring_set_wrapping(v, PH_WRAP_PRIMARY, kek->id, blob, blen, err, sizeof err), 0);
    assert_int_equal(ph_keyring_save(kr, r->keyring, err, sizeof err), 0);
    free(blob);
    ph_keyring_free(kr);
    ph_kek_destroy(kek);
    /* the refresh reopens the provider once and succeeds: no outage */
    assert_int_equal(ph_keysource_refresh_now(ks, err, sizeof err), 0);
    ph_keysource_stats st = stats(ks);
    assert_int_equal(st.loads_failed, 0);
    assert_int_equal(st.loads_ok, 2);
    ph_keysource_free(ks);
}

int main(void)
{
    ph_log_setup(PH_LOG_ERROR, PH_LOG_TEXT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_start_unavailable_then_recovers, setup_clock),
        cmocka_unit_test_setup(test_backoff_doubles_to_cap, setup_clock),
        cmocka_unit_test_setup(test_refresh_at_half_ttl_reloads_pinned, setup_clock),
        cmocka_unit_test_setup(test_ttl_expiry_wipes_and_refresh_restores, setup_clock),
        cmocka_unit_test_setup(test_acquire_enforces_expiry, setup_clock),
        cmocka_unit_test_setup(test_held_reference_survives_swap, setup_clock),
        cmocka_unit_test_setup(test_held_reference_survives_expiry, setup_clock),
        cmocka_unit_test_setup(test_refusal_modes_and_causes, setup_clock),
        cmocka_unit_test_setup(test_workers_during_swaps_and_expiries, setup_clock),
        cmocka_unit_test(test_thread_refreshes_expires_recovers),
        cmocka_unit_test_setup_teardown(test_loader_keyring_error_refuses_start, real_setup,
                                        real_teardown),
        cmocka_unit_test_setup_teardown(test_loader_provider_down_at_start, real_setup,
                                        real_teardown),
        cmocka_unit_test_setup_teardown(test_loader_refresh_calls_kek_and_pins, real_setup,
                                        real_teardown),
        cmocka_unit_test_setup_teardown(test_loader_file_kek_rotated_meanwhile, real_setup,
                                        real_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
