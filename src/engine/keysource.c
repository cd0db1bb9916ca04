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
#include "common/mem.h"
#include "engine/keysource_internal.h"
#include "keys/dek_cache.h"
#include "keys/kek_factory.h"
#include "keys/kek_tenant.h"
#include "keys/keyring.h"
#include "keys/keys_config.h"
#include "ops/metrics.h"
#include "schema/schema.h"

/* ---- tables ---------------------------------------------------------------------- */

ph_keysource *ph_keysource_new(void)
{
    return ph_calloc(1, sizeof(ph_keysource));
}

static void key_drop(ks_key *k)
{
    if (k && atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) == 1) {
        ph_field_key_free(k->key); /* wipes */
        free(k);
    }
}

void ph_keysource_free(ph_keysource *ks)
{
    if (!ks)
        return;
    if (ks->live)
        ks_live_free(ks->live);
    for (size_t i = 0; i < ks->n; i++) {
        free(ks->v[i].domain);
        key_drop(ks->v[i].key);
    }
    free(ks->v);
    free(ks->by_domain);
    free(ks->by_id);
    free(ks->meta);
    if (ks->freed)
        atomic_fetch_add(ks->freed, 1);
    free(ks);
}

/* Room for one more entry in v and both indices. */
static int grow(ph_keysource *ks)
{
    if (ks->n < ks->cap)
        return 0;
    size_t cap = ks->cap ? ks->cap * 2 : 8;
    if (cap > UINT32_MAX)
        return -1;
    ks_entry *v = realloc(ks->v, cap * sizeof *v);
    if (!v)
        return -1;
    ks->v = v;
    uint32_t *a = realloc(ks->by_domain, cap * sizeof *a);
    if (!a)
        return -1;
    ks->by_domain = a;
    uint32_t *b = realloc(ks->by_id, cap * sizeof *b);
    if (!b)
        return -1;
    ks->by_id = b;
    ks->cap = cap;
    return 0;
}

/* The first position in by_domain whose entry's domain is >= domain (sorted
 * by domain, then by the order added: equal domains keep their order). */
static size_t domain_lower(const ph_keysource *ks, const char *domain)
{
    size_t lo = 0, hi = ks->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(ks->v[ks->by_domain[mid]].domain, domain) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The first position in by_id whose entry's key id is >= key_id. */
static size_t id_lower(const ph_keysource *ks, uint32_t key_id)
{
    size_t lo = 0, hi = ks->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ks->v[ks->by_id[mid]].key_id < key_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Inserts entry i (the last one) into both indices. */
static void index_last(ph_keysource *ks)
{
    uint32_t i = (uint32_t)ks->n;
    const char *dom = ks->v[i].domain;
    size_t pos = domain_lower(ks, dom);
    while (pos < ks->n && strcmp(ks->v[ks->by_domain[pos]].domain, dom) == 0)
        pos++; /* after the entries of its domain added before it */
    memmove(&ks->by_domain[pos + 1], &ks->by_domain[pos], (ks->n - pos) * sizeof(uint32_t));
    ks->by_domain[pos] = i;
    uint32_t id = ks->v[i].key_id;
    pos = id_lower(ks, id);
    while (pos < ks->n && ks->v[ks->by_id[pos]].key_id == id)
        pos++;
    memmove(&ks->by_id[pos + 1], &ks->by_id[pos], (ks->n - pos) * sizeof(uint32_t));
    ks->by_id[pos] = i;
}

/* Appends an entry holding key (a reference the table takes; NULL = skeleton). */
static int push_entry(ph_keysource *ks, const char *domain, uint32_t version, uint32_t key_id,
                      ks_key *key, int active)
{
    if (!ks || !domain || ks->live || grow(ks) != 0)
        return -1;
    ks_entry e = {strdup(domain), version, key_id, active, key};
    if (!e.domain)
        return -1;
    if (active) { /* one active key per domain: the latest added wins */
        for (size_t p = domain_lower(ks, domain);
             p < ks->n && strcmp(ks->v[ks->by_domain[p]].domain, domain) == 0; p++)
            ks->v[ks->by_domain[p]].active = 0;
    }
    ks->v[ks->n] = e;
    index_last(ks);
    ks->n++;
    return 0;
}

/* Adds an entry; dek NULL makes a skeleton entry (no key). */
int ks_add_entry(ph_keysource *ks, const char *domain, uint32_t version, uint32_t key_id,
                 const uint8_t *dek, int active)
{
    if (!ks || !domain || ks->live)
        return -1;
    ks_key *k = NULL;
    if (dek) {
        if (!(k = ph_calloc(1, sizeof *k)) || !(k->key = ph_field_key_new(dek, key_id, domain))) {
            free(k);
            return -1;
        }
        atomic_store(&k->refs, 1);
    }
    if (push_entry(ks, domain, version, key_id, k, active) != 0) {
        key_drop(k);
        return -1;
    }
    return 0;
}

int ph_keysource_add(ph_keysource *ks, const char *domain, uint32_t key_id,
                     const uint8_t dek[PH_FIELD_DEK_LEN], int active)
{
    return dek ? ks_add_entry(ks, domain, 0, key_id, dek, active) : -1;
}

int ph_keysource_add_version(ph_keysource *ks, const char *domain, uint32_t version,
                             uint32_t key_id, const uint8_t dek[PH_FIELD_DEK_LEN], int active)
{
    return dek ? ks_add_entry(ks, domain, version, key_id, dek, active) : -1;
}

static const ph_field_key *entry_key(const ks_entry *e)
{
    return e->key ? e->key->key : NULL;
}

const ph_field_key *ph_keysource_write_key(const ph_keysource *ks, const char *domain)
{
    if (!ks || !domain)
        return NULL;
    for (size_t p = domain_lower(ks, domain);
         p < ks->n && strcmp(ks->v[ks->by_domain[p]].domain, domain) == 0; p++)
        if (ks->v[ks->by_domain[p]].active)
            return entry_key(&ks->v[ks->by_domain[p]]);
    return NULL;
}

const ph_field_key *ph_keysource_key_by_id(const ph_keysource *ks, const char *domain,
                                           uint32_t key_id)
{
    if (!ks || !domain)
        return NULL;
    for (size_t p = id_lower(ks, key_id); p < ks->n && ks->v[ks->by_id[p]].key_id == key_id; p++)
        if (strcmp(ks->v[ks->by_id[p]].domain, domain) == 0)
            return entry_key(&ks->v[ks->by_id[p]]);
    return NULL;
}

const ph_field_key *ph_keysource_key_any(const ph_keysource *ks, uint32_t key_id,
                                         const char **domain)
{
    size_t p = ks ? id_lower(ks, key_id) : 0;
    if (!ks || p >= ks->n || ks->v[ks->by_id[p]].key_id != key_id)
        return NULL;
    if (domain)
        *domain = ks->v[ks->by_id[p]].domain;
    return entry_key(&ks->v[ks->by_id[p]]);
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
    for (size_t p = domain_lower(ks, domain);
         p < ks->n && strcmp(ks->v[ks->by_domain[p]].domain, domain) == 0; p++) {
        const ph_field_key *k = entry_key(&ks->v[ks->by_domain[p]]);
        if (k == active)
            continue;
        if (n < max)
            out[n] = k;
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
        if (ks_add_entry(s, e->domain, e->version, e->key_id, NULL, e->active) != 0) {
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

/* Copies the keyring information of src into t. */
static int copy_meta(ph_keysource *t, const ph_keysource *src)
{
    free(t->meta);
    t->meta = NULL;
    t->nmeta = 0;
    if (!src->meta)
        return 0;
    if (!(t->meta = malloc((src->nmeta + 1) * sizeof *t->meta)))
        return -1;
    if (src->nmeta)
        memcpy(t->meta, src->meta, src->nmeta * sizeof *t->meta);
    t->nmeta = src->nmeta;
    return 0;
}

/* Appends a shared (keyed) entry of another table. */
static int share_entry(ph_keysource *t, const ks_entry *e)
{
    if (e->key)
        atomic_fetch_add_explicit(&e->key->refs, 1, memory_order_relaxed);
    if (push_entry(t, e->domain, e->version, e->key_id, e->key, e->active) != 0) {
        key_drop(e->key);
        return -1;
    }
    return 0;
}

static int has_key_id(const ph_keysource *t, uint32_t key_id)
{
    size_t p = id_lower(t, key_id);
    return p < t->n && t->v[t->by_id[p]].key_id == key_id;
}

ph_keysource *ks_merge(const ph_keysource *t, const ph_keysource *add)
{
    ph_keysource *m = ph_keysource_new();
    int rc = m ? 0 : -1;
    for (size_t i = 0; rc == 0 && t && i < t->n; i++)
        rc = share_entry(m, &t->v[i]);
    for (size_t i = 0; rc == 0 && add && i < add->n; i++)
        if (!has_key_id(m, add->v[i].key_id))
            rc = share_entry(m, &add->v[i]);
    if (rc == 0 && add && add->meta)
        rc = copy_meta(m, add);
    else if (rc == 0 && t)
        rc = copy_meta(m, t);
    if (rc != 0) {
        ph_keysource_free(m);
        return NULL;
    }
    return m;
}

int ks_pin_add(ph_keysource *pin, const ph_keysource *add)
{
    for (size_t i = 0; add && i < add->n; i++) {
        const ks_entry *e = &add->v[i];
        if (!has_key_id(pin, e->key_id) &&
            ks_add_entry(pin, e->domain, e->version, e->key_id, NULL, e->active) != 0)
            return -1;
    }
    return 0;
}

static int cmp_meta(const void *a, const void *b)
{
    const ks_meta *x = a, *y = b;
    return (x->key_id > y->key_id) - (x->key_id < y->key_id);
}

int ks_set_meta(ph_keysource *t, const ph_keyring *kr)
{
    size_t n = 0;
    for (size_t i = 0; i < kr->n_domains; i++)
        if (ph_keyring_domain_tenant(kr->domains[i].name, NULL, 0, NULL))
            n += kr->domains[i].n_versions;
    ks_meta *m = malloc((n + 1) * sizeof *m);
    if (!m)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < kr->n_domains; i++) {
        const ph_key_domain *d = &kr->domains[i];
        char tenant[PH_TENANT_MAX + 1];
        if (!ph_keyring_domain_tenant(d->name, tenant, sizeof tenant, NULL))
            continue;
        for (size_t j = 0; j < d->n_versions; j++) {
            ks_meta *e = &m[k++];
            memset(e, 0, sizeof *e);
            e->key_id = d->versions[j].key_id;
            e->retired = d->versions[j].state == PH_DEK_RETIRED;
            e->shredded = d->shredded != 0;
            memcpy(e->tenant, tenant, sizeof tenant);
        }
    }
    qsort(m, k, sizeof *m, cmp_meta);
    free(t->meta);
    t->meta = m;
    t->nmeta = k;
    return 0;
}

int ph_keysource_key_owner(const ph_keysource *t, uint32_t key_id, char tenant[PH_TENANT_MAX + 1],
                           bool *destroyed)
{
    ks_meta probe = {.key_id = key_id};
    const ks_meta *m =
        t && t->meta ? bsearch(&probe, t->meta, t->nmeta, sizeof *t->meta, cmp_meta) : NULL;
    if (!m)
        return 0;
    memcpy(tenant, m->tenant, PH_TENANT_MAX + 1);
    if (destroyed)
        *destroyed = m->retired;
    return 1;
}

int ph_keysource_tenant_shredded(const ph_keysource *t, const char *tenant)
{
    for (size_t i = 0; t && t->meta && tenant && i < t->nmeta; i++)
        if (t->meta[i].shredded && strcmp(t->meta[i].tenant, tenant) == 0)
            return 1;
    return 0;
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

void ph_keysource_retain(const ph_keysource *ks, const ph_keysource *table)
{
    if (ks && ks->live && table)
        ks_table_hold(table);
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

int ph_keysource_tenant_keys(const ph_keysource *ks, const char *tenant, const char *domain,
                             int create, char *err, size_t errlen)
{
    char name[PH_KEYRING_MAX_DOMAIN + 1];
    if (ph_keyring_tenant_domain(name, sizeof name, tenant, domain) != 0) {
        snprintf(err, errlen, "invalid tenant id, or key domain too long with it");
        return PH_KS_TENANT_FAILED;
    }
    if (ks && ks->live)
        return ks_live_tenant(ks->live, tenant, name, create, err, errlen);
    if (ph_keysource_write_key(ks, name))
        return PH_KS_TENANT_READY;
    return ph_keysource_tenant_shredded(ks, tenant) ? PH_KS_TENANT_SHREDDED : PH_KS_TENANT_ABSENT;
}

void ph_keysource_get_stats(const ph_keysource *ks, ph_keysource_stats *st)
{
    memset(st, 0, sizeof *st);
    if (ks && ks->live)
        ks_live_stats(ks->live, st);
}

void ph_keysource_last_error(const ph_keysource *ks, char *buf, size_t len)
{
    if (ks && ks->live)
        ks_live_last_error(ks->live, buf, len);
    else if (len)
        buf[0] = '\0';
}

/* ---- loading from the keyring ------------------------------------------------------- */

static const char *cfg_name(const ph_keys_config *kc)
{
    return kc->source_path ? kc->source_path : "phantom.yaml";
}

static int has_domain(const ph_keysource *ks, const char *domain)
{
    size_t p = domain_lower(ks, domain);
    return p < ks->n && strcmp(ks->v[ks->by_domain[p]].domain, domain) == 0;
}

static int has_active_entry(const ph_keysource *ks, const char *domain)
{
    for (size_t p = domain_lower(ks, domain);
         p < ks->n && strcmp(ks->v[ks->by_domain[p]].domain, domain) == 0; p++)
        if (ks->v[ks->by_domain[p]].active)
            return 1;
    return 0;
}

/* Plans every live version of the keyring domain d. */
static int plan_versions(ph_keysource *plan, const ph_key_domain *d, char *err, size_t errlen)
{
    for (size_t i = 0; i < d->n_versions; i++) {
        const ph_dek_version *v = &d->versions[i];
        if (v->state == PH_DEK_ACTIVE && ks_add_entry(plan, d->name, v->version, v->key_id, NULL,
                                                      v->version == d->active) != 0) {
            snprintf(err, errlen, "out of memory");
            return PH_KS_FAIL_PROVIDER;
        }
    }
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
    int rc = plan_versions(plan, d, err, errlen);
    if (rc != 0)
        return rc;
    if (!has_active_entry(plan, domain)) {
        snprintf(err, errlen, "key domain \"%s\" has no active version", domain);
        return PH_KS_FAIL_KEYRING;
    }
    return 0;
}

/* Plans the live versions of every tenant's domain of base key domain
 * `base` ("tenant:<T>/<base>") that the plan does not have yet, except
 * shredded ones. */
static int plan_tenant_domains(ph_keysource *plan, const ph_keyring *kr, const char *base,
                               char *err, size_t errlen)
{
    for (size_t i = 0; i < kr->n_domains; i++) {
        const ph_key_domain *d = &kr->domains[i];
        const char *b;
        if (d->shredded || !ph_keyring_domain_tenant(d->name, NULL, 0, &b) ||
            strcmp(b, base) != 0 || has_domain(plan, d->name))
            continue;
        int rc = plan_versions(plan, d, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* 1 when column c is the first of the schema with its key domain. */
static int first_of_domain(const ph_schema *schema, const ph_schema_column *c)
{
    for (size_t t = 0; t < schema->ntables; t++)
        for (size_t k = 0; k < schema->tables[t]->ncolumns; k++) {
            const ph_schema_column *o = schema->tables[t]->columns[k];
            if (o == c)
                return 1;
            if (strcmp(o->key_domain, c->key_domain) == 0)
                return 0;
        }
    return 1;
}

size_t ks_tenant_bases(const ph_schema *schema, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t t = 0; schema && t < schema->ntables; t++)
        for (size_t k = 0; k < schema->tables[t]->ncolumns; k++) {
            const ph_schema_column *c = schema->tables[t]->columns[k];
            /* token domains key the token vault's records: only with a vault */
            if (!ph_schema_column_tenant_keyed(c) ||
                (c->mode == PH_MODE_TOKEN && !schema->tokens) || !first_of_domain(schema, c))
                continue;
            if (n < max)
                out[n] = c->key_domain;
            n++;
        }
    return n;
}

/* Plans every live version of every key domain the schema uses: the domain
 * itself for a column of an ordinary table (it must exist), every tenant's
 * domain of it for a tenant-keyed table (none may exist yet). */
static int plan_schema(ph_keysource *plan, const ph_keyring *kr, const ph_schema *schema,
                       const char *cfg, char *err, size_t errlen)
{
    for (size_t t = 0; t < schema->ntables; t++) {
        const ph_schema_table *tab = schema->tables[t];
        for (size_t c = 0; c < tab->ncolumns; c++) {
            const ph_schema_column *col = tab->columns[c];
            const char *domain = col->key_domain;
            /* token domains key the token vault's records: only with a vault */
            if ((col->mode == PH_MODE_TOKEN && !schema->tokens) || !first_of_domain(schema, col))
                continue;
            int rc = ph_schema_column_tenant_keyed(col)
                         ? plan_tenant_domains(plan, kr, domain, err, errlen)
                         : plan_domain(plan, kr, domain, cfg, err, errlen);
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
 * versions need a reload, SIGHUP, or a restart: sessions keep plans and
 * prepared statements made for the versions they know, so only new sessions
 * can use them) and versions it stops loading (retired, or a crypto-shredded
 * tenant's). */
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
        int first = i == 0 || strcmp(pin->v[i - 1].domain, e->domain) != 0;
        if (d && d->shredded && first)
            ph_log_warn("tenant crypto-shredded: its keys are dropped", "key_domain", e->domain);
        else if (v && v->state == PH_DEK_RETIRED)
            ph_log_warn("key version retired: no longer loaded", "key_domain", e->domain, "version",
                        ver);
        if (d && !d->shredded && first && domain_changed(pin, d))
            ph_log_warn("keyring has new key versions", "key_domain", e->domain, "action",
                        "reload the proxy (SIGHUP) to use them in new sessions; until then it "
                        "keeps the versions it loaded");
    }
}

/* Plans exactly the versions pin lists, minus those retired since (a tenant
 * domain's active version too: its tenant was crypto-shredded), plus every
 * domain of a tenant new to this proxy (made by another proxy or the CLI). */
static int plan_pinned(ph_keysource *plan, const ph_keyring *kr, const ph_keysource *pin,
                       const ph_schema *schema, char *err, size_t errlen)
{
    for (size_t i = 0; i < pin->n; i++) {
        const ks_entry *e = &pin->v[i];
        int tenant = ph_keyring_domain_tenant(e->domain, NULL, 0, NULL);
        const ph_dek_version *v = ph_keyring_version(ph_keyring_domain(kr, e->domain), e->version);
        if (!v || v->key_id != e->key_id) {
            snprintf(err, errlen,
                     "the keyring no longer holds key domain \"%s\" version %u (key id %u)",
                     e->domain, e->version, e->key_id);
            return PH_KS_FAIL_KEYRING;
        }
        if (v->state == PH_DEK_RETIRED && e->active && !tenant) {
            snprintf(err, errlen, "key domain \"%s\" version %u (in use for writes) is retired",
                     e->domain, e->version);
            return PH_KS_FAIL_KEYRING;
        }
        if (v->state != PH_DEK_RETIRED &&
            ks_add_entry(plan, e->domain, e->version, e->key_id, NULL, e->active) != 0) {
            snprintf(err, errlen, "out of memory");
            return PH_KS_FAIL_PROVIDER;
        }
    }
    for (size_t t = 0; schema && t < schema->ntables; t++)
        for (size_t c = 0; c < schema->tables[t]->ncolumns; c++) {
            const ph_schema_column *col = schema->tables[t]->columns[c];
            if (!ph_schema_column_tenant_keyed(col) || !first_of_domain(schema, col))
                continue;
            int rc = plan_tenant_domains(plan, kr, col->key_domain, err, errlen);
            if (rc != 0)
                return rc;
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
        ph_metrics_inc(rc == 0 ? PH_CTR_KEK_OK : PH_CTR_KEK_ERROR);
        if (rc == 0)
            rc = ks_add_entry(ks, e->domain, e->version, e->key_id, dek, e->active) == 0 ? 0 : -2;
        OPENSSL_cleanse(dek, sizeof dek);
        if (rc != 0) {
            snprintf(err, errlen, "cannot load key domain \"%s\" version %u: %s", e->domain,
                     e->version, rc == -1 && why[0] ? why : "out of memory");
            ph_keysource_free(ks);
            return PH_KS_FAIL_PROVIDER;
        }
    }
    if (ks_set_meta(ks, src->keyring) != 0) {
        snprintf(err, errlen, "out of memory");
        ph_keysource_free(ks);
        return PH_KS_FAIL_PROVIDER;
    }
    *out = ks;
    return 0;
}

ph_kek *ks_loader_kek(ks_loader *l, const char *domain, int create, char *err, size_t errlen)
{
    if (!l->tenant_keks && !(l->tenant_keks = ph_kek_set_new(l->kc))) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return ph_kek_set_for(l->tenant_keks, l->kek, domain, create, err, errlen);
}

/* ph_dek_source.kek_for over the loader. */
static ph_kek *kek_for(void *arg, const char *domain, char *err, size_t errlen)
{
    return ks_loader_kek(arg, domain, 0, err, errlen);
}

int ks_unwrap_keyring(ks_loader *l, ph_keyring *kr, const ph_keysource *plan, ph_keysource **out,
                      char *err, size_t errlen)
{
    int rc = 0;
    if (!l->kek && !(l->kek = ph_kek_open(l->kc, err, errlen)))
        rc = PH_KS_FAIL_PROVIDER;
    ph_dek_source src;
    if (rc == 0 && ph_dek_source_init(&src, kr, l->kek) != 0) {
        snprintf(err, errlen, "cannot set up the key loader");
        rc = PH_KS_FAIL_PROVIDER;
    }
    if (rc == 0 && ph_kek_tenant_separate(l->kc)) { /* tenants' own KEKs */
        src.kek_for = kek_for;
        src.kek_for_arg = l;
    }
    if (rc == 0) {
        kr = NULL; /* the source owns it */
        rc = unwrap_plan(plan, &src, out, err, errlen);
        ph_dek_source_destroy(&src);
    }
    ph_keyring_free(kr);
    if (rc == PH_KS_FAIL_PROVIDER) { /* the next attempt opens the provider afresh */
        ph_kek_destroy(l->kek);
        l->kek = NULL;
        ph_kek_set_clear(l->tenant_keks);
    }
    return rc;
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
        rc = plan_pinned(plan, kr, pin, l->schema, err, errlen);
    } else {
        rc = plan_schema(plan, kr, l->schema, cfg_name(l->kc), err, errlen);
    }
    if (rc == 0 && pin)
        note_changes(l, kr, pin);
    if (rc == 0) {
        rc = ks_unwrap_keyring(l, kr, plan, out, err, errlen);
        kr = NULL;
    }
    ph_keyring_free(kr);
    ph_keysource_free(plan);
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
    ph_kek_set_free(l->tenant_keks);
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
    ph_kek_set_free(l.tenant_keks);
    return rc == 0 ? ks : NULL;
}

ph_keysource *ph_keysource_open_live(const ph_keys_config *kc, const ph_schema *schema, char *err,
                                     size_t errlen)
{
    if (need_keyring(kc, err, errlen) != 0)
        return NULL;
    ks_loader *l = ph_calloc(1, sizeof *l);
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
        .tenant_load = ks_tenant_load,
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
