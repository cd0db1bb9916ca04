/*
 * dek_cache.c — TTL cache of plaintext DEKs with single-flight loading and
 * fail-closed errors, plus the keyring-backed loader (see dek_cache.h).
 */
#include "keys/dek_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "common/err.h"
#include "common/mem.h"
#include "keys/audit.h"
#include "keys/secmem.h"

#define DEFAULT_CAPACITY 1024u
#define MAX_CAPACITY     (1u << 20)
#define NO_SLOT          ((size_t)-1)

enum { E_LOADING, E_READY, E_FAILED };

typedef struct entry {
    struct entry *next; /* hash chain (only while in the table) */
    char *domain;
    uint32_t version;
    int state;
    int detached;        /* out of the table; freed when refs reaches 0 */
    unsigned refs;       /* references + waiters + the loading thread */
    uint64_t expires_ms; /* READY: TTL end; FAILED: negative-cache end */
    size_t slot;         /* key slot, NO_SLOT if none */
    uint8_t *key;        /* the slot's PH_DEK_LEN bytes, NULL if none */
    char errmsg[160];    /* FAILED: the loader's reason */
} entry;

struct ph_dek_cache {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ph_dek_cache_opts o;
    entry **buckets;
    size_t nbuckets;
    uint8_t *keys; /* capacity * PH_DEK_LEN, secure */
    size_t *free_slots;
    size_t n_free;
    size_t n_entries;
    ph_dek_cache_stats st;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t hash_key(const char *domain, uint32_t version)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)domain; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    for (int i = 0; i < 4; i++)
        h = (h ^ ((version >> (8 * i)) & 0xff)) * 1099511628211ull;
    return h;
}

ph_dek_cache *ph_dek_cache_new(const ph_dek_cache_opts *o, char *err, size_t errlen)
{
    if (!o || !o->load || o->ttl_ms == 0) {
        ph_errf(err, errlen, "DEK cache: a loader and a TTL are required");
        return NULL;
    }
    size_t cap = o->capacity ? o->capacity : DEFAULT_CAPACITY;
    if (cap > MAX_CAPACITY) {
        ph_errf(err, errlen, "DEK cache: capacity above %u", MAX_CAPACITY);
        return NULL;
    }
    ph_dek_cache *c = ph_calloc(1, sizeof *c);
    if (!c) {
        ph_errf(err, errlen, "out of memory");
        return NULL;
    }
    c->o = *o;
    c->o.capacity = cap;
    if (!c->o.now_ms)
        c->o.now_ms = mono_ms;
    c->nbuckets = cap;
    c->buckets = ph_calloc(cap, sizeof *c->buckets);
    c->free_slots = malloc(cap * sizeof *c->free_slots);
    c->keys = ph_secure_alloc(cap * PH_DEK_LEN);
    if (!c->buckets || !c->free_slots || !c->keys) {
        free(c->buckets);
        free(c->free_slots);
        ph_secure_free(c->keys, cap * PH_DEK_LEN);
        free(c);
        ph_errf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cap; i++)
        c->free_slots[i] = cap - 1 - i;
    c->n_free = cap;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    return c;
}

static uint8_t *slot_key(ph_dek_cache *c, size_t slot)
{
    return c->keys + slot * PH_DEK_LEN;
}

static void release_slot(ph_dek_cache *c, entry *e)
{
    if (e->slot == NO_SLOT)
        return;
    OPENSSL_cleanse(slot_key(c, e->slot), PH_DEK_LEN);
    c->free_slots[c->n_free++] = e->slot;
    e->slot = NO_SLOT;
    e->key = NULL;
}

static void free_entry(ph_dek_cache *c, entry *e)
{
    release_slot(c, e);
    free(e->domain);
    free(e);
    c->n_entries--;
}

/* Unlinks e from its bucket; frees it now if nobody holds it. */
static void detach(ph_dek_cache *c, entry *e)
{
    if (e->detached)
        return;
    entry **pp = &c->buckets[hash_key(e->domain, e->version) % c->nbuckets];
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp)
        *pp = e->next;
    e->next = NULL;
    e->detached = 1;
    if (e->refs == 0)
        free_entry(c, e);
}

static entry *find(ph_dek_cache *c, const char *domain, uint32_t version)
{
    for (entry *e = c->buckets[hash_key(domain, version) % c->nbuckets]; e; e = e->next)
        if (e->version == version && strcmp(e->domain, domain) == 0)
            return e;
    return NULL;
}

static void unref(ph_dek_cache *c, entry *e)
{
    if (--e->refs == 0 && e->detached)
        free_entry(c, e);
}

static int expired(const entry *e, uint64_t now)
{
    return now >= e->expires_ms;
}

static size_t sweep_locked(ph_dek_cache *c, uint64_t now)
{
    size_t n = 0;
    for (size_t b = 0; b < c->nbuckets; b++) {
        entry *e = c->buckets[b];
        while (e) {
            entry *next = e->next;
            if (e->state != E_LOADING && e->refs == 0 && expired(e, now)) {
                detach(c, e);
                n++;
            }
            e = next;
        }
    }
    return n;
}

/* Frees a slot by evicting the idle entry closest to expiry, if any. */
static int evict_one(ph_dek_cache *c)
{
    entry *victim = NULL;
    for (size_t b = 0; b < c->nbuckets; b++)
        for (entry *e = c->buckets[b]; e; e = e->next)
            if (e->state == E_READY && e->refs == 0 &&
                (!victim || e->expires_ms < victim->expires_ms))
                victim = e;
    if (!victim)
        return -1;
    detach(c, victim);
    return 0;
}

static size_t take_slot(ph_dek_cache *c, uint64_t now)
{
    if (c->n_free == 0)
        sweep_locked(c, now);
    if (c->n_free == 0 && evict_one(c) != 0)
        return NO_SLOT;
    return c->free_slots[--c->n_free];
}

/* Waits for another thread's load of e; returns with e's outcome. */
static int wait_for_load(ph_dek_cache *c, entry *e, ph_dek_ref **ref, char *err, size_t errlen)
{
    e->refs++;
    c->st.waits++;
    while (e->state == E_LOADING)
        pthread_cond_wait(&c->cv, &c->mu);
    if (e->state == E_READY) {
        c->st.hits++;
        *ref = (ph_dek_ref *)e; /* keeps the waiter's reference */
        return 0;
    }
    ph_errf(err, errlen, "%s", e->errmsg);
    unref(c, e);
    return -1;
}

/* Runs the loader for a new entry; called with the lock held, returns with
 * it held (dropped around the load). */
static int load_entry(ph_dek_cache *c, const char *domain, uint32_t version, ph_dek_ref **ref,
                      char *err, size_t errlen)
{
    uint64_t now = c->o.now_ms();
    size_t slot = take_slot(c, now);
    if (slot == NO_SLOT)
        return ph_errf(err, errlen, "DEK cache full (%zu keys in use)", c->o.capacity);
    entry *e = ph_calloc(1, sizeof *e);
    char *dom = strdup(domain);
    if (!e || !dom) {
        free(e);
        free(dom);
        c->free_slots[c->n_free++] = slot;
        return ph_errf(err, errlen, "out of memory");
    }
    e->domain = dom;
    e->version = version;
    e->state = E_LOADING;
    e->refs = 1; /* the loading thread's */
    e->slot = slot;
    e->key = slot_key(c, slot);
    size_t b = hash_key(domain, version) % c->nbuckets;
    e->next = c->buckets[b];
    c->buckets[b] = e;
    c->n_entries++;
    c->st.misses++;
    pthread_mutex_unlock(&c->mu);

    char reason[sizeof e->errmsg];
    reason[0] = '\0';
    /* The slot is this thread's alone while the entry is LOADING. */
    int rc = c->o.load(c->o.load_arg, domain, version, e->key, reason, sizeof reason);

    pthread_mutex_lock(&c->mu);
    now = c->o.now_ms();
    if (rc == 0) {
        e->state = E_READY;
        e->expires_ms = now + c->o.ttl_ms;
        *ref = (ph_dek_ref *)e;
    } else {
        release_slot(c, e); /* wipes whatever the loader left */
        e->state = E_FAILED;
        e->expires_ms = now + c->o.neg_ttl_ms;
        snprintf(e->errmsg, sizeof e->errmsg, "%s", reason[0] ? reason : "DEK load failed");
        ph_errf(err, errlen, "%s", e->errmsg);
        c->st.loads_failed++;
        if (c->o.neg_ttl_ms == 0)
            detach(c, e);
        unref(c, e);
    }
    pthread_cond_broadcast(&c->cv);
    return rc == 0 ? 0 : -1;
}

int ph_dek_cache_get(ph_dek_cache *c, const char *domain, uint32_t version, ph_dek_ref **ref,
                     char *err, size_t errlen)
{
    *ref = NULL;
    if (!c || !domain)
        return ph_errf(err, errlen, "no DEK cache");
    pthread_mutex_lock(&c->mu);
    int rc;
    entry *e = find(c, domain, version);
    uint64_t now = c->o.now_ms();
    if (e && e->state == E_READY && !expired(e, now)) {
        e->refs++;
        c->st.hits++;
        *ref = (ph_dek_ref *)e;
        rc = 0;
    } else if (e && e->state == E_LOADING) {
        rc = wait_for_load(c, e, ref, err, errlen);
    } else if (e && e->state == E_FAILED && !expired(e, now)) {
        rc = ph_errf(err, errlen, "%s", e->errmsg);
    } else {
        if (e)
            detach(c, e); /* expired: wiped now, or when its last user releases it */
        rc = load_entry(c, domain, version, ref, err, errlen);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

const uint8_t *ph_dek_ref_key(const ph_dek_ref *ref)
{
    return ((const entry *)ref)->key;
}

void ph_dek_cache_release(ph_dek_cache *c, ph_dek_ref *ref)
{
    if (!ref)
        return;
    pthread_mutex_lock(&c->mu);
    unref(c, (entry *)ref);
    pthread_mutex_unlock(&c->mu);
}

void ph_dek_cache_invalidate(ph_dek_cache *c, const char *domain)
{
    pthread_mutex_lock(&c->mu);
    for (size_t b = 0; b < c->nbuckets; b++) {
        entry *e = c->buckets[b];
        while (e) {
            entry *next = e->next;
            /* A LOADING entry stays: its waiters need it; it expires normally. */
            if (e->state != E_LOADING && (!domain || strcmp(e->domain, domain) == 0))
                detach(c, e);
            e = next;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

size_t ph_dek_cache_sweep(ph_dek_cache *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = sweep_locked(c, c->o.now_ms());
    pthread_mutex_unlock(&c->mu);
    return n;
}

void ph_dek_cache_get_stats(ph_dek_cache *c, ph_dek_cache_stats *st)
{
    pthread_mutex_lock(&c->mu);
    *st = c->st;
    st->entries = c->n_entries;
    pthread_mutex_unlock(&c->mu);
}

void ph_dek_cache_free(ph_dek_cache *c)
{
    if (!c)
        return;
    for (size_t b = 0; b < c->nbuckets; b++) {
        entry *e = c->buckets[b];
        while (e) {
            entry *next = e->next;
            free(e->domain);
            free(e);
            e = next;
        }
    }
    /* Detached entries still referenced would be a caller bug; their slots
     * are wiped with the region below either way. */
    ph_secure_free(c->keys, c->o.capacity * PH_DEK_LEN);
    free(c->free_slots);
    free(c->buckets);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* ---- keyring-backed loader -------------------------------------------------- */

int ph_dek_source_init(ph_dek_source *s, ph_keyring *keyring, ph_kek *kek)
{
    memset(s, 0, sizeof *s);
    if (pthread_rwlock_init(&s->lock, NULL) != 0)
        return -1;
    s->keyring = keyring;
    s->kek = kek;
    return 0;
}

ph_keyring *ph_dek_source_replace(ph_dek_source *s, ph_keyring *keyring)
{
    pthread_rwlock_wrlock(&s->lock);
    ph_keyring *old = s->keyring;
    s->keyring = keyring;
    pthread_rwlock_unlock(&s->lock);
    return old;
}

void ph_dek_source_destroy(ph_dek_source *s)
{
    ph_keyring_free(s->keyring);
    s->keyring = NULL;
    pthread_rwlock_destroy(&s->lock);
}

int ph_dek_source_active(ph_dek_source *s, const char *domain, uint32_t *version, uint32_t *key_id)
{
    pthread_rwlock_rdlock(&s->lock);
    ph_dek_version *v =
        s->keyring ? ph_keyring_active(ph_keyring_domain(s->keyring, domain)) : NULL;
    if (v) {
        *version = v->version;
        *key_id = v->key_id;
    }
    pthread_rwlock_unlock(&s->lock);
    return v ? 0 : -1;
}

/* The KEK that unwraps domain's DEKs: s->kek, or what kek_for says. */
static ph_kek *source_kek(ph_dek_source *s, const char *domain, char *err, size_t errlen)
{
    ph_kek *k = s->kek_for ? s->kek_for(s->kek_for_arg, domain, err, errlen) : s->kek;
    if (!k && err && !err[0])
        ph_errf(err, errlen, "no KEK for key domain %s", domain);
    return k;
}

/* Unwraps domain/version under the read lock; fills *key_id and *kek_id. */
static int source_unwrap(ph_dek_source *s, const char *domain, uint32_t version, uint8_t *dek_out,
                         uint32_t *key_id, ph_kek **used, char *err, size_t errlen)
{
    ph_key_domain *d = s->keyring ? ph_keyring_domain(s->keyring, domain) : NULL;
    ph_dek_version *v = ph_keyring_version(d, version);
    if (!v)
        return ph_errf(err, errlen, "no DEK %s version %u in the keyring", domain,
                       (unsigned)version);
    *key_id = v->key_id;
    if (v->state == PH_DEK_RETIRED)
        return ph_errf(err, errlen, "DEK %s version %u is retired (destroyed)", domain,
                       (unsigned)version);
    const ph_wrapped_dek *w = ph_keyring_wrapping(v, PH_WRAP_PRIMARY);
    if (!w)
        return ph_errf(err, errlen, "DEK %s version %u has no primary wrapping (run keys recover)",
                       domain, (unsigned)version);
    ph_kek *k = source_kek(s, domain, err, errlen);
    *used = k;
    return k ? ph_kek_unwrap(k, w->blob, w->blob_len, dek_out, err, errlen) : -1;
}

int ph_dek_source_load(void *arg, const char *domain, uint32_t version, uint8_t *dek_out, char *err,
                       size_t errlen)
{
    ph_dek_source *s = arg;
    uint32_t key_id = 0;
    ph_kek *used = s->kek;
    if (err && errlen)
        err[0] = '\0';
    pthread_rwlock_rdlock(&s->lock);
    int rc = source_unwrap(s, domain, version, dek_out, &key_id, &used, err, errlen);
    pthread_rwlock_unlock(&s->lock);
    ph_audit_event ev = {
        .event = "dek.load",
        .outcome = rc == 0 ? "ok" : "error",
        .kek = used ? used->id : NULL,
        .domain = domain,
        .version = version,
        .key_id = key_id,
        .reason = rc == 0 ? NULL : err,
    };
    char aerr[160];
    if (ph_audit_record(&ev, 0, aerr, sizeof aerr) != 0) {
        if (rc == 0)
            ph_errf(err, errlen, "audit log: %s", aerr);
        rc = -1;
    }
    if (rc != 0)
        OPENSSL_cleanse(dek_out, PH_DEK_LEN);
    return rc;
}
