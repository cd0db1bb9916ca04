/*
 * keysource.c — key tables, loading them from the keyring through the KEK
 * provider, and the calls that serve key tables and live sources alike (see
 * keysource.h; live sources themselves are in keysource_live.c).
 *
 * Owns: the table of field keys (one per key domain and key id, lock-free
 * lookups), its reference count once a live source publishes it, and the
 * loader: keyring -> which DEK versions (every live one of the schema's key
 * domains, or exactly a refresh's pin) -> unwrap each through the KEK
 * provider with the audited DEK loader of dek_cache.h -> derive its field
 * key. The plaintext DEKs exist only for the moment of derivation and are
 * wiped.
 */
#include "engine/keysource.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "engine/keysource_internal.h"
#include "keys/dek_cache.h"
#include "keys/kek_factory.h"
#include "keys/keyring.h"
#include "keys/keys_config.h"
#include "schema/schema.h"

/* ---- tables ---------------------------------------------------------------------- */

ph_keysource *ph_keysource_new(void)
{
    return calloc(1, sizeof(ph_keysource));
}

void ph_keysource_free(ph_keysource *ks)
{
    if (!ks)
        return;
    if (ks->live)
        ks_live_free(ks->live);
    for (size_t i = 0; i < ks->n; i++) {
        free(ks->v[i].domain);
        ph_field_key_free(ks->v[i].key); /* wipes */
    }
    free(ks->v);
    if (ks->freed)
        atomic_fetch_add(ks->freed, 1);
    free(ks);
}

/* Adds an entry; dek NULL makes a skeleton entry (no key). */
static int add_entry(ph_keysource *ks, const char *domain, uint32_t version, uint32_t key_id,
                     const uint8_t *dek, int active)
{
    if (!ks || !domain || ks->live)
        return -1;
    ks_entry *v = ph_array_grow(ks->v, ks->n, &ks->cap, sizeof *v, 8);
    if (!v)
        return -1;
    ks->v = v;
    ks_entry e = {strdup(domain), version, key_id, active,
                  dek ? ph_field_key_new(dek, key_id, domain) : NULL};
    if (!e.domain || (dek && !e.key)) {
        free(e.domain);
        ph_field_key_free(e.key);
        return -1;
    }
    if (active) /* one active key per domain: the latest added wins */
        for (size_t i = 0; i < ks->n; i++)
            if (strcmp(ks->v[i].domain, domain) == 0)
                ks->v[i].active = 0;
    ks->v[ks->n++] = e;
    return 0;
}

int ph_keysource_add(ph_keysource *ks, const char *domain, uint32_t key_id,
                     const uint8_t dek[PH_FIELD_DEK_LEN], int active)
{
    return dek ? add_entry(ks, domain, 0, key_id, dek, active) : -1;
}

int ph_keysource_add_version(ph_keysource *ks, const char *domain, uint32_t version,
                             uint32_t key_id, const uint8_t dek[PH_FIELD_DEK_LEN], int active)
{
    return dek ? add_entry(ks, domain, version, key_id, dek, active) : -1;
}

const ph_field_key *ph_keysource_write_key(const ph_keysource *ks, const char *domain)
{
    for (size_t i = 0; ks && domain && i < ks->n; i++)
        if (ks->v[i].active && strcmp(ks->v[i].domain, domain) == 0)
            return ks->v[i].key;
    return NULL;
}

const ph_field_key *ph_keysource_key_by_id(const ph_keysource *ks, const char *domain,
                                           uint32_t key_id)
{
    for (size_t i = 0; ks && domain && i < ks->n; i++)
        if (ks->v[i].key_id == key_id && strcmp(ks->v[i].domain, domain) == 0)
            return ks->v[i].key;
    return NULL;
}

size_t ph_keysource_domain_keys(const ph_keysource *ks, const char *domain,
                                const ph_field_key **out, size_t max)
{
    const ph_field_key *active = ph_keysource_write_key(ks, domain);
    size_t n = 0;
    if (!active)
        return 0;
    if (max > 0)
        out[0] = active;
    n = 1;
    for (size_t i = 0; i < ks->n; i++) {
        if (ks->v[i].key == active || strcmp(ks->v[i].domain, domain) != 0)
            continue;
        if (n < max)
            out[n] = ks->v[i].key;
        n++;
    }
    return n;
}

size_t ph_keysource_count(const ph_keysource *ks)
{
    return ks ? ks->n : 0;
}

int ph_keysource_entry(const ph_keysource *ks, size_t i, const char **domain, uint32_t *version,
                       uint32_t *key_id, int *active)
{
    if (!ks || i >= ks->n)
        return -1;
    *domain = ks->v[i].domain;
    *version = ks->v[i].version;
    *key_id = ks->v[i].key_id;
    *active = ks->v[i].active;
    return 0;
}

void ks_table_hold(const ph_keysource *t)
{
    atomic_fetch_add_explicit(&((ph_keysource *)t)->refs, 1, memory_order_relaxed);
}

void ks_table_drop(const ph_keysource *t)
{
    if (atomic_fetch_sub_explicit(&((ph_keysource *)t)->refs, 1, memory_order_acq_rel) == 1)
        ph_keysource_free((ph_keysource *)t);
}

ph_keysource *ks_skeleton(const ph_keysource *t)
{
    ph_keysource *s = ph_keysource_new();
    for (size_t i = 0; s && i < t->n; i++) {
        const ks_entry *e = &t->v[i];
        if (add_entry(s, e->domain, e->version, e->key_id, NULL, e->active) != 0) {
            ph_keysource_free(s);
            s = NULL;
        }
    }
    return s;
}

ph_keysource *ks_wrap_live(ks_live *l)
{
    ph_keysource *ks = ph_keysource_new();
    if (ks)
        ks->live = l;
    return ks;
}

/* ---- using keys ---------------------------------------------------------------------- */

const ph_keysource *ph_keysource_acquire(const ph_keysource *ks)
{
    return ks && ks->live ? ks_live_acquire(ks->live) : ks;
}

void ph_keysource_release(const ph_keysource *ks, const ph_keysource *table)
{
    if (ks && ks->live && table)
        ks_table_drop(table);
}

int ph_keysource_refusal(const ph_keysource *ks, int needs_keys, char *msg, size_t msglen)
{
    return ks && ks->live ? ks_live_refusal(ks->live, needs_keys, msg, msglen) : 0;
}

void ph_keysource_unavailable_message(const ph_keysource *ks, int needs_keys, char *msg,
                                      size_t msglen)
{
    if (ks && ks->live)
        ks_live_message(ks->live, needs_keys, msg, msglen);
    else
        snprintf(msg, msglen, "phantom: encryption keys are unavailable");
}

void ph_keysource_get_stats(const ph_keysource *ks, ph_keysource_stats *st)
{
    memset(st, 0, sizeof *st);
    if (ks && ks->live)
        ks_live_stats(ks->live, st);
}

/* ---- loading from the keyring ------------------------------------------------------- */

typedef struct ks_loader {
    const ph_keys_config *kc;
    const ph_schema *schema;
    ph_kek *kek;        /* kept between attempts; dropped after a provider failure */
    uint64_t noted_gen; /* keyring generation whose changes were logged */
    int noted;
} ks_loader;

static const char *cfg_name(const ph_keys_config *kc)
{
    return kc->source_path ? kc->source_path : "phantom.yaml";
}

static int has_domain(const ph_keysource *ks, const char *domain)
{
    for (size_t i = 0; i < ks->n; i++)
        if (strcmp(ks->v[i].domain, domain) == 0)
            return 1;
    return 0;
}

static int has_active_entry(const ph_keysource *ks, const char *domain)
{
    for (size_t i = 0; i < ks->n; i++)
        if (ks->v[i].active && strcmp(ks->v[i].domain, domain) == 0)
            return 1;
    return 0;
}

/* Plans every live version of one key domain. */
static int plan_domain(ph_keysource *plan, const ph_keyring *kr, const char *domain,
                       const char *cfg, char *err, size_t errlen)
{
    const ph_key_domain *d = ph_keyring_domain(kr, domain);
    if (!d) {
        snprintf(err, errlen,
                 "no key for key domain \"%s\" in the keyring: run `phantom keys create "
                 "--config %s %s`",
                 domain, cfg, domain);
        return PH_KS_FAIL_KEYRING;
    }
    for (size_t i = 0; i < d->n_versions; i++) {
        const ph_dek_version *v = &d->versions[i];
        if (v->state == PH_DEK_ACTIVE &&
            add_entry(plan, domain, v->version, v->key_id, NULL, v->version == d->active) != 0) {
            snprintf(err, errlen, "out of memory");
            return PH_KS_FAIL_PROVIDER;
        }
    }
    if (!has_active_entry(plan, domain)) {
        snprintf(err, errlen, "key domain \"%s\" has no active version", domain);
        return PH_KS_FAIL_KEYRING;
    }
    return 0;
}

/* Plans every live version of every key domain the schema uses. */
static int plan_schema(ph_keysource *plan, const ph_keyring *kr, const ph_schema *schema,
                       const char *cfg, char *err, size_t errlen)
{
    for (size_t t = 0; t < schema->ntables; t++) {
        const ph_schema_table *tab = schema->tables[t];
        for (size_t c = 0; c < tab->ncolumns; c++) {
            const char *domain = tab->columns[c]->key_domain;
            if (tab->columns[c]->mode == PH_MODE_TOKEN || has_domain(plan, domain))
                continue;
            int rc = plan_domain(plan, kr, domain, cfg, err, errlen);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* Whether the keyring now differs from what pin serves for domain: another
 * active version, or more live versions (a rotation). */
static int domain_changed(const ph_keysource *pin, const ph_key_domain *d)
{
    size_t live = 0, pinned = 0;
    for (size_t i = 0; i < d->n_versions; i++)
        live += d->versions[i].state == PH_DEK_ACTIVE;
    for (size_t i = 0; i < pin->n; i++) {
        if (strcmp(pin->v[i].domain, d->name) != 0)
            continue;
        pinned++;
        if (pin->v[i].active && pin->v[i].version != d->active)
            return 1;
    }
    return live > pinned;
}

/* Logs, once per keyring generation, what a refresh does not pick up (new
 * versions need a restart: sessions keep plans and prepared statements made
 * for the versions they know) and versions it stops loading (retired). */
static void note_changes(ks_loader *l, const ph_keyring *kr, const ph_keysource *pin)
{
    if (l->noted && l->noted_gen == kr->generation)
        return;
    l->noted = 1;
    l->noted_gen = kr->generation;
    for (size_t i = 0; i < pin->n; i++) {
        const ks_entry *e = &pin->v[i];
        const ph_key_domain *d = ph_keyring_domain(kr, e->domain);
        const ph_dek_version *v = ph_keyring_version(d, e->version);
        char ver[16];
        snprintf(ver, sizeof ver, "%u", e->version);
        if (v && v->state == PH_DEK_RETIRED)
            ph_log_warn("key version retired: no longer loaded", "key_domain", e->domain, "version",
                        ver);
        if (d && (i == 0 || strcmp(pin->v[i - 1].domain, e->domain) != 0) && domain_changed(pin, d))
            ph_log_warn("keyring has new key versions", "key_domain", e->domain, "action",
                        "restart the proxy to use them; it keeps the versions it loaded");
    }
}

/* Plans exactly the versions pin lists, minus those retired since. */
static int plan_pinned(ph_keysource *plan, const ph_keyring *kr, const ph_keysource *pin, char *err,
                       size_t errlen)
{
    for (size_t i = 0; i < pin->n; i++) {
        const ks_entry *e = &pin->v[i];
        const ph_dek_version *v = ph_keyring_version(ph_keyring_domain(kr, e->domain), e->version);
        if (!v || v->key_id != e->key_id) {
            snprintf(err, errlen,
                     "the keyring no longer holds key domain \"%s\" version %u (key id %u)",
                     e->domain, e->version, e->key_id);
            return PH_KS_FAIL_KEYRING;
        }
        if (v->state == PH_DEK_RETIRED && e->active) {
            snprintf(err, errlen, "key domain \"%s\" version %u (in use for writes) is retired",
                     e->domain, e->version);
            return PH_KS_FAIL_KEYRING;
        }
        if (v->state != PH_DEK_RETIRED &&
            add_entry(plan, e->domain, e->version, e->key_id, NULL, e->active) != 0) {
            snprintf(err, errlen, "out of memory");
            return PH_KS_FAIL_PROVIDER;
        }
    }
    return 0;
}

/* Unwraps every planned version into a new table. */
static int unwrap_plan(const ph_keysource *plan, ph_dek_source *src, ph_keysource **out, char *err,
                       size_t errlen)
{
    ph_keysource *ks = ph_keysource_new();
    if (!ks) {
        snprintf(err, errlen, "out of memory");
        return PH_KS_FAIL_PROVIDER;
    }
    for (size_t i = 0; i < plan->n; i++) {
        const ks_entry *e = &plan->v[i];
        uint8_t dek[PH_FIELD_DEK_LEN];
        char why[256];
        why[0] = '\0';
        int rc = ph_dek_source_load(src, e->domain, e->version, dek, why, sizeof why);
        if (rc == 0)
            rc = add_entry(ks, e->domain, e->version, e->key_id, dek, e->active) == 0 ? 0 : -2;
        OPENSSL_cleanse(dek, sizeof dek);
        if (rc != 0) {
            snprintf(err, errlen, "cannot load key domain \"%s\" version %u: %s", e->domain,
                     e->version, rc == -1 && why[0] ? why : "out of memory");
            ph_keysource_free(ks);
            return PH_KS_FAIL_PROVIDER;
        }
    }
    *out = ks;
    return 0;
}

/* One attempt: keyring, plan, KEK provider (opened if needed), unwrap. */
static int load_once(ks_loader *l, const ph_keysource *pin, ph_keysource **out, char *err,
                     size_t errlen)
{
    ph_keyring *kr = NULL;
    if (ph_keyring_load(l->kc->keyring, 1, &kr, err, errlen) != 0) /* missing: no keys yet */
        return PH_KS_FAIL_KEYRING;
    ph_keysource *plan = ph_keysource_new();
    int rc;
    if (!plan) {
        snprintf(err, errlen, "out of memory");
        rc = PH_KS_FAIL_PROVIDER;
    } else if (pin) {
        rc = plan_pinned(plan, kr, pin, err, errlen);
    } else {
        rc = plan_schema(plan, kr, l->schema, cfg_name(l->kc), err, errlen);
    }
    if (rc == 0 && pin)
        note_changes(l, kr, pin);
    if (rc == 0 && !l->kek && !(l->kek = ph_kek_open(l->kc, err, errlen)))
        rc = PH_KS_FAIL_PROVIDER;
    ph_dek_source src;
    if (rc == 0 && ph_dek_source_init(&src, kr, l->kek) != 0) {
        snprintf(err, errlen, "cannot set up the key loader");
        rc = PH_KS_FAIL_PROVIDER;
    }
    if (rc == 0) {
        kr = NULL; /* the source owns it */
        rc = unwrap_plan(plan, &src, out, err, errlen);
        ph_dek_source_destroy(&src);
    }
    ph_keyring_free(kr);
    ph_keysource_free(plan);
    if (rc == PH_KS_FAIL_PROVIDER) { /* the next attempt opens the provider afresh */
        ph_kek_destroy(l->kek);
        l->kek = NULL;
    }
    return rc;
}

/* ph_keysource_load_fn of the proxy's live source. */
static int loader_load(void *arg, const ph_keysource *pin, ph_keysource **out, char *err,
                       size_t errlen)
{
    ks_loader *l = arg;
    int reused = l->kek != NULL;
    int rc = load_once(l, pin, out, err, errlen);
    /* A provider opened by an earlier attempt may be stale (a file KEK that
     * `keys rotate-kek` gave a new version): once more with a fresh one. */
    if (rc == PH_KS_FAIL_PROVIDER && reused)
        rc = load_once(l, pin, out, err, errlen);
    return rc;
}

static void loader_free(void *arg)
{
    ks_loader *l = arg;
    if (!l)
        return;
    ph_kek_destroy(l->kek);
    free(l);
}

static int need_keyring(const ph_keys_config *kc, char *err, size_t errlen)
{
    if (kc->keyring)
        return 0;
    snprintf(err, errlen, "%s: the encrypt section needs a keys: section with a keyring",
             cfg_name(kc));
    return -1;
}

ph_keysource *ph_keysource_open(const ph_keys_config *kc, const ph_schema *schema, char *err,
                                size_t errlen)
{
    if (need_keyring(kc, err, errlen) != 0)
        return NULL;
    ks_loader l = {.kc = kc, .schema = schema};
    ph_keysource *ks = NULL;
    int rc = load_once(&l, NULL, &ks, err, errlen);
    ph_kek_destroy(l.kek);
    return rc == 0 ? ks : NULL;
}

ph_keysource *ph_keysource_open_live(const ph_keys_config *kc, const ph_schema *schema, char *err,
                                     size_t errlen)
{
    if (need_keyring(kc, err, errlen) != 0)
        return NULL;
    ks_loader *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->kc = kc;
    l->schema = schema;
    ph_keysource_live_opts o = {
        .ttl_ms = kc->cache_ttl_s * 1000u,
        .refuse_all = kc->when_unavailable == PH_KEYS_UNAVAILABLE_REFUSE,
        .load = loader_load,
        .load_arg = l,
        .load_arg_free = loader_free,
    };
    ph_keysource *ks = ph_keysource_live_new(&o, err, errlen);
    if (!ks) {
        loader_free(l);
        return NULL;
    }
    /* A keyring that cannot serve the schema is the operator's to fix: no
     * start. A failing provider is retried by the refresh thread. */
    if (ph_keysource_refresh_now(ks, err, errlen) == PH_KS_FAIL_KEYRING) {
        ph_keysource_free(ks);
        return NULL;
    }
    return ks;
}
