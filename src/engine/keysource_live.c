/*
 * keysource_live.c — the proxy's live key source (see keysource.h).
 *
 * Owns: the current key table behind a mutex (published with one reference
 * of its own; every user holds another while it uses it), its time to live,
 * the refresh thread (re-loads at TTL/2, retries a failure after 1 s
 * doubling up to min(30 s, TTL/2), drops the table once it has expired so
 * that its keys are wiped as soon as the last user releases it), the
 * client-facing "keys are unavailable" refusal, and the log lines of an
 * outage (provider down, keys expired and wiped, provider back). Never logs
 * or returns key material.
 *
 * Locking: mu guards the state; the loader runs without it, under load_mu
 * (one attempt at a time), so workers never wait for the KEK provider.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/mem.h"
#include "engine/keysource_internal.h"
#include "ops/metrics.h"

#define NEVER          UINT64_MAX
#define BACKOFF_MIN_MS 1000u
#define BACKOFF_CAP_MS 30000u
#define MAX_WAIT_MS    3600000u /* the thread wakes at least hourly */

struct ks_live {
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* wakes the refresh thread (stop) */
    pthread_mutex_t load_mu; /* one load attempt at a time; guards pin */
    ph_keysource_live_opts o;
    ph_keysource *cur;               /* the current table (one reference), or NULL */
    atomic_int ready;                /* cur != NULL, readable without mu */
    atomic_uint_fast64_t expires_ms; /* cur's end of life */
    ph_keysource *pin;               /* skeleton of the first table: what refreshes load */
    uint64_t next_ms;                /* next load attempt */
    unsigned backoff_ms;             /* delay after the next failure */
    int down;                        /* an outage: the last attempt failed, or keys expired */
    int cause;                       /* PH_KS_FAIL_* of the last failure */
    time_t down_since;               /* wall clock of the outage's first failure */
    char last_err[512];              /* reason of the last failed attempt (no key material) */
    uint64_t down_since_ms;
    ph_keysource_stats st;
    atomic_uint_fast64_t tables_freed;
    pthread_t thread;
    int running, stop;
};

/* The default clock. Coarse (a few ms of resolution, which a TTL of seconds
 * does not mind): it is read on every acquire, and CLOCK_MONOTONIC costs
 * several times more where it cannot be read in user space. */
static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* "12:34:56 UTC" */
static void format_clock(time_t t, char *buf, size_t len)
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(buf, len, "%H:%M:%S UTC", &tm) == 0)
        snprintf(buf, len, "?");
}

static void format_secs(uint64_t ms, char *buf, size_t len)
{
    snprintf(buf, len, "%llus", (unsigned long long)((ms + 999) / 1000));
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static void set_defaults(ph_keysource_live_opts *o)
{
    if (!o->now_ms)
        o->now_ms = mono_ms;
    if (!o->backoff_min_ms)
        o->backoff_min_ms = BACKOFF_MIN_MS;
    if (!o->backoff_max_ms) {
        unsigned half = o->ttl_ms / 2;
        unsigned cap = half < o->backoff_min_ms ? o->backoff_min_ms : half;
        o->backoff_max_ms = cap > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : cap;
    }
    if (o->backoff_max_ms < o->backoff_min_ms)
        o->backoff_max_ms = o->backoff_min_ms;
}

static int init_sync(ks_live *l)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    int rc =
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 || pthread_cond_init(&l->cv, &ca) != 0;
    pthread_condattr_destroy(&ca);
    if (rc)
        return -1;
    if (pthread_mutex_init(&l->mu, NULL) != 0) {
        pthread_cond_destroy(&l->cv);
        return -1;
    }
    if (pthread_mutex_init(&l->load_mu, NULL) != 0) {
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        return -1;
    }
    return 0;
}

ph_keysource *ph_keysource_live_new(const ph_keysource_live_opts *o, char *err, size_t errlen)
{
    if (!o || !o->load || o->ttl_ms == 0) {
        snprintf(err, errlen, "live key source: a loader and a TTL are required");
        return NULL;
    }
    ks_live *l = ph_calloc(1, sizeof *l);
    if (!l || init_sync(l) != 0) {
        free(l);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->o = *o;
    set_defaults(&l->o);
    l->backoff_ms = l->o.backoff_min_ms;
    l->next_ms = 0; /* the first attempt is due at once */
    ph_keysource *ks = ks_wrap_live(l);
    if (!ks) {
        l->o.load_arg_free = NULL; /* the caller still owns load_arg */
        ks_live_free(l);
        snprintf(err, errlen, "out of memory");
    }
    return ks;
}

static void stop_thread(ks_live *l)
{
    if (!l->running)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    l->running = 0;
}

void ks_live_free(ks_live *l)
{
    if (!l)
        return;
    stop_thread(l);
    if (l->cur)
        ks_table_drop(l->cur);
    ph_keysource_free(l->pin);
    if (l->o.load_arg_free)
        l->o.load_arg_free(l->o.load_arg);
    pthread_mutex_destroy(&l->load_mu);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

/* ---- the current table ------------------------------------------------------------------ */

/* With mu held: takes cur out once it has expired (the caller drops it
 * after unlocking, see wipe_expired). */
static ph_keysource *expire_locked(ks_live *l, uint64_t now)
{
    if (!l->cur || now < atomic_load(&l->expires_ms))
        return NULL;
    ph_keysource *old = l->cur;
    l->cur = NULL;
    atomic_store(&l->ready, 0);
    l->st.expiries++;
    if (!l->down) { /* no failure seen yet (the loader is still busy): down from now */
        l->down = 1;
        l->cause = PH_KS_FAIL_PROVIDER;
        l->down_since = time(NULL);
        l->down_since_ms = now;
    }
    return old;
}

/* Drops the expired table's own reference: wiped now, or by the last user. */
static void wipe_expired(ks_live *l, ph_keysource *old)
{
    if (!old)
        return;
    char since[32];
    pthread_mutex_lock(&l->mu);
    format_clock(l->down_since, since, sizeof since);
    pthread_mutex_unlock(&l->mu);
    ks_table_drop(old);
    ph_log_error("encryption keys expired and wiped", "key_provider_down_since", since, "effect",
                 "statements on protected tables are refused until the key provider is back");
}

const ph_keysource *ks_live_acquire(ks_live *l)
{
    pthread_mutex_lock(&l->mu);
    ph_keysource *old = expire_locked(l, l->o.now_ms());
    const ph_keysource *t = l->cur;
    if (t)
        ks_table_hold(t);
    pthread_mutex_unlock(&l->mu);
    wipe_expired(l, old);
    ph_metrics_inc(t ? PH_CTR_KEYS_HIT : PH_CTR_KEYS_MISS);
    return t;
}

void ks_live_message(ks_live *l, int needs_keys, char *msg, size_t msglen)
{
    pthread_mutex_lock(&l->mu);
    int down = l->down, cause = l->cause;
    time_t since = l->down_since;
    pthread_mutex_unlock(&l->mu);
    char when[80] = "";
    if (down) {
        char hms[32];
        format_clock(since, hms, sizeof hms);
        snprintf(when, sizeof when, "%s since %s",
                 cause == PH_KS_FAIL_KEYRING ? "keyring unusable" : "key provider unreachable",
                 hms);
    }
    snprintf(msg, msglen, "phantom: encryption keys are unavailable (%s); %s",
             down ? when : "not loaded yet",
             needs_keys ? "statements on protected tables are refused"
                        : "every statement is refused until they are back "
                          "(keys.when_unavailable: refuse)");
}

int ks_live_refusal(ks_live *l, int needs_keys, char *msg, size_t msglen)
{
    if (atomic_load_explicit(&l->ready, memory_order_acquire) &&
        l->o.now_ms() < atomic_load(&l->expires_ms))
        return 0;
    if (!needs_keys && !l->o.refuse_all)
        return 0;
    if (needs_keys) /* a statement that needed keys found none in memory */
        ph_metrics_inc(PH_CTR_KEYS_MISS);
    ks_live_message(l, needs_keys, msg, msglen);
    return 1;
}

void ks_live_last_error(ks_live *l, char *buf, size_t len)
{
    pthread_mutex_lock(&l->mu);
    snprintf(buf, len, "%s", l->down ? l->last_err : "");
    pthread_mutex_unlock(&l->mu);
}

void ks_live_stats(ks_live *l, ph_keysource_stats *st)
{
    pthread_mutex_lock(&l->mu);
    *st = l->st;
    st->available = l->cur != NULL;
    pthread_mutex_unlock(&l->mu);
    st->tables_freed = atomic_load(&l->tables_freed);
}

/* ---- load attempts ----------------------------------------------------------------------- */

/* Makes t (fresh from the loader) the current table. */
static void publish(ks_live *l, ph_keysource *t, uint64_t now)
{
    t->freed = &l->tables_freed;
    atomic_store(&t->refs, 1);
    unsigned half = l->o.ttl_ms / 2 ? l->o.ttl_ms / 2 : 1;
    pthread_mutex_lock(&l->mu);
    ph_keysource *old = l->cur;
    l->cur = t;
    atomic_store(&l->expires_ms, now + l->o.ttl_ms);
    atomic_store_explicit(&l->ready, 1, memory_order_release);
    l->next_ms = now + half;
    l->backoff_ms = l->o.backoff_min_ms;
    int was_down = l->down, first = l->st.loads_ok == 0;
    uint64_t outage = now - l->down_since_ms;
    l->down = 0;
    l->st.loads_ok++;
    pthread_mutex_unlock(&l->mu);
    if (old)
        ks_table_drop(old);
    char n[24], ttl[24];
    snprintf(n, sizeof n, "%zu", ph_keysource_count(t));
    format_secs(l->o.ttl_ms, ttl, sizeof ttl);
    if (was_down) {
        char d[24];
        format_secs(outage, d, sizeof d);
        ph_log_info("key provider is back: encryption keys loaded", "keys", n, "outage", d);
    } else if (first) {
        ph_log_info("encryption keys loaded", "keys", n, "ttl", ttl);
    } else {
        ph_log_debug("encryption keys refreshed", "keys", n);
    }
}

/* Records a failed attempt and schedules the next. */
static void failed(ks_live *l, int cause, const char *why, uint64_t now)
{
    pthread_mutex_lock(&l->mu);
    l->st.loads_failed++;
    int first = !l->down;
    if (first) {
        l->down = 1;
        l->down_since = time(NULL);
        l->down_since_ms = now;
    }
    l->cause = cause;
    snprintf(l->last_err, sizeof l->last_err, "%s", why);
    uint64_t retry = l->backoff_ms;
    l->next_ms = now + retry;
    l->backoff_ms =
        l->backoff_ms > l->o.backoff_max_ms / 2 ? l->o.backoff_max_ms : l->backoff_ms * 2;
    uint64_t exp = atomic_load(&l->expires_ms);
    uint64_t left = l->cur && exp > now ? exp - now : 0;
    pthread_mutex_unlock(&l->mu);
    char r[24], keys[80];
    format_secs(retry, r, sizeof r);
    if (left) {
        char s[24];
        format_secs(left, s, sizeof s);
        snprintf(keys, sizeof keys, "still served for %s at most", s);
    } else {
        snprintf(keys, sizeof keys, "none: statements on protected tables are refused");
    }
    if (first)
        ph_log_warn("key provider unavailable", "reason", why, "keys", keys, "retry_in", r);
    else
        ph_log_debug("key provider still unavailable", "reason", why, "retry_in", r);
}

int ph_keysource_refresh_now(ph_keysource *ks, char *err, size_t errlen)
{
    ks_live *l = ks ? ks->live : NULL;
    if (!l)
        return 0; /* a key table: nothing to refresh */
    pthread_mutex_lock(&l->load_mu);
    char why[512] = "";
    ph_keysource *t = NULL;
    int rc = l->o.load(l->o.load_arg, l->pin, &t, why, sizeof why);
    if (rc == 0 && (!t || t->live)) {
        snprintf(why, sizeof why, "the key loader returned no key table");
        rc = PH_KS_FAIL_PROVIDER;
    }
    if (rc != 0 && rc != PH_KS_FAIL_KEYRING)
        rc = PH_KS_FAIL_PROVIDER;
    uint64_t now = l->o.now_ms();
    ph_metrics_inc(rc == 0 ? PH_CTR_KEY_LOAD_OK : PH_CTR_KEY_LOAD_ERROR);
    if (rc == 0) {
        /* later refreshes load exactly these versions (minus those retired
         * meanwhile, plus tenants added meanwhile) */
        ph_keysource *pin = ks_skeleton(t);
        if (pin || !l->pin) {
            ph_keysource_free(l->pin);
            l->pin = pin;
        }
        publish(l, t, now);
    } else {
        if (t && !t->live)
            ph_keysource_free(t);
        failed(l, rc, why[0] ? why : "unknown error", now);
    }
    pthread_mutex_unlock(&l->load_mu);
    if (err && errlen)
        snprintf(err, errlen, "%s", rc == 0 ? "" : why);
    return rc;
}

/* ---- tenants added at run time --------------------------------------------------------- */

/* Publishes m (the current table plus a tenant's keys) in place of the
 * current table, which it extends: same end of life, no change to the
 * refresh schedule. With mu held; the old table goes to *old. */
static void publish_merged_locked(ks_live *l, ph_keysource *m, ph_keysource **old)
{
    m->freed = &l->tables_freed;
    atomic_store(&m->refs, 1);
    *old = l->cur;
    l->cur = m;
    atomic_store_explicit(&l->ready, 1, memory_order_release);
}

/* What the current table says about the tenant domain `name`, or -2 when
 * it does not know (-1 while the keys are unavailable, with the message). */
static int tenant_in_current(ks_live *l, const char *tenant, const char *name, char *err,
                             size_t errlen)
{
    const ph_keysource *t = ks_live_acquire(l);
    if (!t) {
        ks_live_message(l, 1, err, errlen);
        return PH_KS_TENANT_FAILED;
    }
    int rc = ph_keysource_write_key(t, name)           ? PH_KS_TENANT_READY
             : ph_keysource_tenant_shredded(t, tenant) ? PH_KS_TENANT_SHREDDED
                                                       : -2;
    ks_table_drop(t);
    return rc;
}

int ks_live_tenant(ks_live *l, const char *tenant, const char *name, int create, char *err,
                   size_t errlen)
{
    int rc = tenant_in_current(l, tenant, name, err, errlen);
    if (rc != -2)
        return rc;
    if (!l->o.tenant_load)
        return PH_KS_TENANT_ABSENT;
    pthread_mutex_lock(&l->load_mu); /* one load at a time: the single flight */
    rc = tenant_in_current(l, tenant, name, err, errlen); /* loaded while we waited? */
    ph_keysource *add = NULL;
    if (rc == -2)
        rc = l->o.tenant_load(l->o.load_arg, tenant, create, &add, err, errlen);
    if (rc == PH_KS_TENANT_READY && add) {
        ph_keysource *old = NULL, *m = NULL;
        pthread_mutex_lock(&l->mu);
        if (l->cur && (m = ks_merge(l->cur, add)))
            publish_merged_locked(l, m, &old);
        pthread_mutex_unlock(&l->mu);
        if (!m) {
            snprintf(err, errlen, l->cur ? "out of memory" : "encryption keys are unavailable");
            rc = PH_KS_TENANT_FAILED;
        } else if (l->pin && ks_pin_add(l->pin, add) != 0) {
            ph_log_warn("tenant keys loaded but not pinned (out of memory)", "tenant", tenant);
        }
        if (old)
            ks_table_drop(old);
    }
    ph_keysource_free(add);
    pthread_mutex_unlock(&l->load_mu);
    return rc == -2 ? PH_KS_TENANT_FAILED : rc;
}

static uint64_t tick_live(ks_live *l, ph_keysource *ks)
{
    uint64_t now = l->o.now_ms();
    pthread_mutex_lock(&l->mu);
    int due = now >= l->next_ms;
    pthread_mutex_unlock(&l->mu);
    if (due) {
        (void)ph_keysource_refresh_now(ks, NULL, 0);
        now = l->o.now_ms();
    }
    pthread_mutex_lock(&l->mu);
    ph_keysource *old = expire_locked(l, now);
    uint64_t at = l->next_ms;
    uint64_t exp = atomic_load(&l->expires_ms);
    if (l->cur && exp < at)
        at = exp;
    pthread_mutex_unlock(&l->mu);
    wipe_expired(l, old);
    return at > now ? at - now : 0;
}

uint64_t ph_keysource_tick(ph_keysource *ks)
{
    return ks && ks->live ? tick_live(ks->live, ks) : NEVER;
}

/* ---- the refresh thread --------------------------------------------------------------------- */

static void *refresh_main(void *arg)
{
    ph_keysource *ks = arg;
    ks_live *l = ks->live;
    for (;;) {
        uint64_t wait = tick_live(l, ks);
        if (wait > MAX_WAIT_MS)
            wait = MAX_WAIT_MS;
        pthread_mutex_lock(&l->mu);
        if (!l->stop && wait > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += (time_t)(wait / 1000);
            ts.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            (void)pthread_cond_timedwait(&l->cv, &l->mu, &ts);
        }
        int stop = l->stop;
        pthread_mutex_unlock(&l->mu);
        if (stop)
            return NULL;
    }
}

int ph_keysource_start(ph_keysource *ks)
{
    ks_live *l = ks ? ks->live : NULL;
    if (!l || l->running)
        return 0;
    l->stop = 0;
    /* The proxy takes its signals with sigwait in the main thread: this
     * thread must never be the one they are delivered to. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&l->thread, NULL, refresh_main, ks);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -1;
    l->running = 1;
    return 0;
}

void ph_keysource_stop(ph_keysource *ks)
{
    if (ks && ks->live)
        stop_thread(ks->live);
}
