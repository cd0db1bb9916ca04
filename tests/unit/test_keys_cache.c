/*
 * test_keys_cache.c — unit tests for the DEK cache (keys/dek_cache.h) over
 * the keyring loader (ph_dek_source) and a counting test KEK provider:
 * single flight (N concurrent misses -> exactly one unwrap), TTL expiry,
 * fail-closed errors (also for concurrent waiters and on an audit failure),
 * retired/unknown versions, capacity, deferred eviction of keys in use, and
 * the secure memory the keys live in (mlock + MADV_DONTDUMP).
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

#include "keys/audit.h"
#include "keys/dek_cache.h"
#include "keys/kek.h"
#include "keys/keyring.h"
#include "keys/secmem.h"

/* ---- a counting test provider: blob = DEK xor 0xA5 ------------------------ */

typedef struct {
    ph_kek base;
    atomic_int unwraps;
    int fail;               /* unwrap returns an error */
    ph_dek_cache *wait_for; /* if set: unwrap blocks until `waiters` wait on the cache */
    uint64_t waiters;
} test_kek;

static void wait_for_waiters(test_kek *t)
{
    for (int i = 0; i < 5000; i++) { /* at most ~5 s */
        ph_dek_cache_stats st;
        ph_dek_cache_get_stats(t->wait_for, &st);
        if (st.waits >= t->waiters)
            return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static int t_unwrap(ph_kek *k, const uint8_t *w, size_t len, uint8_t *dek, char *err, size_t errlen)
{
    test_kek *t = (test_kek *)k;
    atomic_fetch_add(&t->unwraps, 1);
    if (t->wait_for)
        wait_for_waiters(t);
    if (t->fail || len != PH_DEK_LEN) {
        memset(dek, 0xEE, PH_DEK_LEN); /* garbage the cache must wipe and never serve */
        snprintf(err, errlen, "test KEK is down");
        return -1;
    }
    for (size_t i = 0; i < PH_DEK_LEN; i++)
        dek[i] = w[i] ^ 0xA5;
    return 0;
}

static int t_wrap(ph_kek *k, const uint8_t *dek, uint8_t **out, size_t *len, char *err,
                  size_t errlen)
{
    *out = malloc(PH_DEK_LEN);
    for (size_t i = 0; i < PH_DEK_LEN; i++)
        (*out)[i] = dek[i] ^ 0xA5;
    *len = PH_DEK_LEN;
    return 0;
}

static const ph_kek_ops t_ops = {.kind = "test", .wrap = t_wrap, .unwrap = t_unwrap};

static void dek_for(uint8_t seed, uint8_t *dek)
{
    for (size_t i = 0; i < PH_DEK_LEN; i++)
        dek[i] = (uint8_t)(seed * 31 + i);
}

/* Keyring: domain "d" versions 1..3 (key ids 1..3, v2 retired), "e" v1 (key
 * id 4); each DEK is dek_for(its key id). */
static ph_keyring *make_keyring(void)
{
    char err[256];
    ph_keyring *kr = ph_keyring_new();
    assert_non_null(kr);
    for (int i = 0; i < 4; i++) {
        const char *dom = i < 3 ? "d" : "e";
        uint8_t dek[PH_DEK_LEN], blob[PH_DEK_LEN];
        dek_for((uint8_t)(kr->next_key_id), dek);
        for (size_t j = 0; j < PH_DEK_LEN; j++)
            blob[j] = dek[j] ^ 0xA5;
        int create = i == 0 || i == 3;
        assert_int_equal(ph_keyring_add_version(kr, dom, create, "test:kek", blob, sizeof blob,
                                                NULL, err, sizeof err),
                         0);
    }
    assert_int_equal(ph_keyring_retire(kr, "d", 2, 1, err, sizeof err), 0);
    return kr;
}

static _Atomic uint64_t g_now;
static uint64_t fake_now(void)
{
    return atomic_load(&g_now);
}

typedef struct {
    test_kek kek;
    ph_dek_source src;
    ph_dek_cache *cache;
} fixture;

static fixture *fixture_new(unsigned ttl, unsigned neg_ttl, size_t capacity)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->kek.base.ops = &t_ops;
    snprintf(f->kek.base.id, sizeof f->kek.base.id, "test:kek");
    assert_int_equal(ph_dek_source_init(&f->src, make_keyring(), &f->kek.base), 0);
    atomic_store(&g_now, 1000);
    ph_dek_cache_opts o = {.ttl_ms = ttl,
                           .neg_ttl_ms = neg_ttl,
                           .capacity = capacity,
                           .load = ph_dek_source_load,
                           .load_arg = &f->src,
                           .now_ms = fake_now};
    char err[128];
    f->cache = ph_dek_cache_new(&o, err, sizeof err);
    assert_non_null(f->cache);
    return f;
}

static void fixture_free(fixture *f)
{
    ph_dek_cache_free(f->cache);
    ph_dek_source_destroy(&f->src);
    free(f);
}

static void expect_key(fixture *f, const char *dom, uint32_t version, uint8_t seed)
{
    char err[256];
    ph_dek_ref *r = NULL;
    if (ph_dek_cache_get(f->cache, dom, version, &r, err, sizeof err) != 0)
        fail_msg("get %s v%u: %s", dom, (unsigned)version, err);
    uint8_t want[PH_DEK_LEN];
    dek_for(seed, want);
    assert_memory_equal(ph_dek_ref_key(r), want, PH_DEK_LEN);
    ph_dek_cache_release(f->cache, r);
}

/* ---- single flight ----------------------------------------------------------- */

#define NTHREADS 16

typedef struct {
    fixture *f;
    pthread_barrier_t *barrier;
    int rc;
    uint8_t key[PH_DEK_LEN];
    char err[256];
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    pthread_barrier_wait(a->barrier);
    ph_dek_ref *r = NULL;
    a->rc = ph_dek_cache_get(a->f->cache, "d", 3, &r, a->err, sizeof a->err);
    if (a->rc == 0) {
        memcpy(a->key, ph_dek_ref_key(r), PH_DEK_LEN);
        ph_dek_cache_release(a->f->cache, r);
    } else if (r) {
        a->rc = 99; /* a failed get must not hand out a reference */
    }
    return NULL;
}

static void run_concurrent(fixture *f, worker_arg *args)
{
    pthread_t th[NTHREADS];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    /* The (single) loader blocks until every other thread waits for it. */
    f->kek.wait_for = f->cache;
    f->kek.waiters = NTHREADS - 1;
    for (int i = 0; i < NTHREADS; i++) {
        args[i] = (worker_arg){.f = f, .barrier = &barrier};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
}

static void test_single_flight(void **state)
{
    fixture *f = fixture_new(60000, 0, 0);
    worker_arg args[NTHREADS];
    run_concurrent(f, args);
    assert_int_equal(atomic_load(&f->kek.unwraps), 1);
    uint8_t want[PH_DEK_LEN];
    dek_for(3, want); /* d v3 has key id 3 */
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(args[i].rc, 0);
        assert_memory_equal(args[i].key, want, PH_DEK_LEN);
    }
    ph_dek_cache_stats st;
    ph_dek_cache_get_stats(f->cache, &st);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.waits, NTHREADS - 1);
    assert_int_equal(st.hits, NTHREADS - 1);
    fixture_free(f);
}

static void test_single_flight_failure(void **state)
{
    fixture *f = fixture_new(60000, 0, 0);
    f->kek.fail = 1;
    worker_arg args[NTHREADS];
    run_concurrent(f, args);
    assert_int_equal(atomic_load(&f->kek.unwraps), 1);
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(args[i].rc, -1);
        assert_non_null(strstr(args[i].err, "test KEK is down"));
    }
    ph_dek_cache_stats st;
    ph_dek_cache_get_stats(f->cache, &st);
    assert_int_equal(st.loads_failed, 1);
    assert_int_equal(st.entries, 0); /* nothing kept (no negative TTL) */
    fixture_free(f);
}

/* ---- TTL ------------------------------------------------------------------------ */

static void test_ttl_expiry_reloads(void **state)
{
    fixture *f = fixture_new(1000, 0, 0);
    expect_key(f, "d", 1, 1);
    assert_int_equal(atomic_load(&f->kek.unwraps), 1);
    atomic_store(&g_now, 1999); /* 999 ms later: still cached */
    expect_key(f, "d", 1, 1);
    assert_int_equal(atomic_load(&f->kek.unwraps), 1);
    atomic_store(&g_now, 2000); /* TTL reached: reloaded */
    expect_key(f, "d", 1, 1);
    assert_int_equal(atomic_load(&f->kek.unwraps), 2);
    expect_key(f, "e", 1, 4); /* another key: its own load */
    assert_int_equal(atomic_load(&f->kek.unwraps), 3);

    /* Sweep wipes expired unused entries. */
    atomic_store(&g_now, 10000);
    assert_int_equal(ph_dek_cache_sweep(f->cache), 2);
    ph_dek_cache_stats st;
    ph_dek_cache_get_stats(f->cache, &st);
    assert_int_equal(st.entries, 0);
    fixture_free(f);
}

/* ---- fail closed ---------------------------------------------------------------- */

static void test_failing_provider(void **state)
{
    fixture *f = fixture_new(1000, 0, 0);
    f->kek.fail = 1;
    char err[256] = "";
    ph_dek_ref *r = (ph_dek_ref *)1;
    assert_int_equal(ph_dek_cache_get(f->cache, "d", 1, &r, err, sizeof err), -1);
    assert_null(r);
    assert_non_null(strstr(err, "test KEK is down"));
    /* Without a negative TTL the next lookup tries again. */
    assert_int_equal(ph_dek_cache_get(f->cache, "d", 1, &r, err, sizeof err), -1);
    assert_int_equal(atomic_load(&f->kek.unwraps), 2);
    /* Once the provider recovers, the right key comes back. */
    f->kek.fail = 0;
    expect_key(f, "d", 1, 1);
    fixture_free(f);

    /* With a negative TTL a failure is remembered, then retried. */
    f = fixture_new(1000, 500, 0);
    f->kek.fail = 1;
    assert_int_equal(ph_dek_cache_get(f->cache, "d", 1, &r, err, sizeof err), -1);
    assert_int_equal(ph_dek_cache_get(f->cache, "d", 1, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "test KEK is down"));
    assert_int_equal(atomic_load(&f->kek.unwraps), 1);
    f->kek.fail = 0;
    atomic_store(&g_now, 1500);
    expect_key(f, "d", 1, 1);
    assert_int_equal(atomic_load(&f->kek.unwraps), 2);
    fixture_free(f);
}

static void test_unknown_and_retired(void **state)
{
    fixture *f = fixture_new(1000, 0, 0);
    char err[256];
    ph_dek_ref *r;
    assert_int_equal(ph_dek_cache_get(f->cache, "d", 2, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "retired"));
    assert_int_equal(ph_dek_cache_get(f->cache, "d", 9, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "no DEK"));
    assert_int_equal(ph_dek_cache_get(f->cache, "zz", 1, &r, err, sizeof err), -1);
    assert_int_equal(atomic_load(&f->kek.unwraps), 0); /* the KEK was never asked */
    uint32_t v, id;
    assert_int_equal(ph_dek_source_active(&f->src, "d", &v, &id), 0);
    assert_int_equal(v, 3);
    assert_int_equal(id, 3);
    assert_int_equal(ph_dek_source_active(&f->src, "zz", &v, &id), -1);
    fixture_free(f);
}

/* A DEK load whose audit record cannot be written fails (no key). */
static void test_audit_failure_fails_load(void **state)
{
    char path[] = "/tmp/ph-cache-audit-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char err[256];
    ph_audit *a = ph_audit_open(path, err, sizeof err);
    assert_non_null(a);
    ph_audit_set_global(a);
    fixture *f = fixture_new(1000, 0, 0);
    expect_key(f, "d", 1, 1); /* audited fine */
    /* Break the log: an incomplete last line stops further appends. */
    assert_true(lseek(fd, 0, SEEK_END) > 0);
    assert_int_equal(write(fd, "{\"seq\":", 7), 7);
    ph_dek_ref *r = (ph_dek_ref *)1;
    assert_int_equal(ph_dek_cache_get(f->cache, "e", 1, &r, err, sizeof err), -1);
    assert_null(r);
    assert_non_null(strstr(err, "audit"));
    ph_audit_set_global(NULL);
    ph_audit_close(a);
    /* The successful load was recorded with its domain, version and key id. */
    FILE *fp = fopen(path, "r");
    char line[4096];
    int seen = 0;
    while (fgets(line, sizeof line, fp))
        seen |= strstr(line, "\"event\":\"dek.load\"") && strstr(line, "\"domain\":\"d\"") &&
                strstr(line, "\"version\":1") && strstr(line, "\"key_id\":1");
    fclose(fp);
    assert_true(seen);
    close(fd);
    unlink(path);
    fixture_free(f);
}

/* ---- capacity and eviction ---------------------------------------------------------- */

static void test_capacity_and_deferred_eviction(void **state)
{
    fixture *f = fixture_new(1000, 0, 2);
    char err[256];
    ph_dek_ref *r1, *r2, *r3;
    assert_int_equal(ph_dek_cache_get(f->cache, "d", 1, &r1, err, sizeof err), 0);
    assert_int_equal(ph_dek_cache_get(f->cache, "d", 3, &r2, err, sizeof err), 0);
    assert_int_equal(ph_dek_cache_get(f->cache, "e", 1, &r3, err, sizeof err), -1);
    assert_non_null(strstr(err, "full"));
    ph_dek_cache_release(f->cache, r1);
    assert_int_equal(ph_dek_cache_get(f->cache, "e", 1, &r3, err, sizeof err), 0); /* evicts d1 */

    /* Invalidation while in use: the holder keeps a valid key until release. */
    ph_dek_cache_invalidate(f->cache, NULL);
    uint8_t want[PH_DEK_LEN];
    dek_for(3, want);
    assert_memory_equal(ph_dek_ref_key(r2), want, PH_DEK_LEN);
    dek_for(4, want);
    assert_memory_equal(ph_dek_ref_key(r3), want, PH_DEK_LEN);
    ph_dek_cache_stats st;
    ph_dek_cache_get_stats(f->cache, &st);
    assert_int_equal(st.entries, 2);
    ph_dek_cache_release(f->cache, r2);
    ph_dek_cache_release(f->cache, r3);
    ph_dek_cache_get_stats(f->cache, &st);
    assert_int_equal(st.entries, 0);
    int before = atomic_load(&f->kek.unwraps);
    expect_key(f, "d", 3, 3); /* reloaded after invalidation */
    assert_int_equal(atomic_load(&f->kek.unwraps), before + 1);
    fixture_free(f);
}

/* ---- secure memory -------------------------------------------------------------- */

/* The VmFlags of the mapping that contains p, from /proc/self/smaps. */
static int vmflags_of(const void *p, char *flags, size_t len)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int in = 0;
    uintptr_t a = (uintptr_t)p;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            in = a >= lo && a < hi;
        else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(flags, len, "%s", line + 8);
            fclose(f);
            return 0;
        }
    }
    if (f)
        fclose(f);
    return -1;
}

static void test_secure_memory(void **state)
{
    uint8_t *p = ph_secure_alloc(PH_DEK_LEN);
    assert_non_null(p);
    for (size_t i = 0; i < PH_DEK_LEN; i++)
        assert_int_equal(p[i], 0);
    memset(p, 0x42, PH_DEK_LEN);
    char flags[512];
    assert_int_equal(vmflags_of(p, flags, sizeof flags), 0);
    assert_non_null(strstr(flags, " dd")); /* MADV_DONTDUMP: never in a core dump */
#ifndef __SANITIZE_ADDRESS__               /* ASan turns mlock into a no-op that reports success */
    if (!ph_secure_mlock_failed())
        assert_non_null(strstr(flags, " lo")); /* locked in RAM */
#endif
    ph_secure_free(p, PH_DEK_LEN);
    assert_null(ph_secure_alloc(0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_flight),
        cmocka_unit_test(test_single_flight_failure),
        cmocka_unit_test(test_ttl_expiry_reloads),
        cmocka_unit_test(test_failing_provider),
        cmocka_unit_test(test_unknown_and_retired),
        cmocka_unit_test(test_audit_failure_fails_load),
        cmocka_unit_test(test_capacity_and_deferred_eviction),
        cmocka_unit_test(test_secure_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
