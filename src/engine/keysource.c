/*
 * keysource.c — the table of field keys the proxy encrypts and decrypts with.
 *
 * Owns: loading every live DEK version of the schema's key domains once (via
 * the keyring, the KEK provider and the audited DEK loader of dek_cache.h),
 * turning each into a ph_field_key, and lock-free lookups afterwards. The
 * plaintext DEKs exist only for the moment of derivation and are wiped.
 */
#include "engine/keysource.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "keys/dek_cache.h"
#include "keys/kek_factory.h"
#include "keys/keyring.h"
#include "keys/keys_config.h"
#include "schema/schema.h"

typedef struct ks_entry {
    char *domain;
    uint32_t key_id;
    int active;
    ph_field_key *key;
} ks_entry;

struct ph_keysource {
    ks_entry *v;
    size_t n, cap;
};

ph_keysource *ph_keysource_new(void)
{
    return calloc(1, sizeof(ph_keysource));
}

void ph_keysource_free(ph_keysource *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; i < ks->n; i++) {
        free(ks->v[i].domain);
        ph_field_key_free(ks->v[i].key);
    }
    free(ks->v);
    free(ks);
}

int ph_keysource_add(ph_keysource *ks, const char *domain, uint32_t key_id,
                     const uint8_t dek[PH_FIELD_DEK_LEN], int active)
{
    if (!ks || !domain || !dek)
        return -1;
    ks_entry *v = ph_array_grow(ks->v, ks->n, &ks->cap, sizeof *v, 8);
    if (!v)
        return -1;
    ks->v = v;
    ks_entry e = {strdup(domain), key_id, active, ph_field_key_new(dek, key_id, domain)};
    if (!e.domain || !e.key) {
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

/* ---- loading from the keyring ---------------------------------------------- */

static int has_domain(const ph_keysource *ks, const char *domain)
{
    for (size_t i = 0; i < ks->n; i++)
        if (strcmp(ks->v[i].domain, domain) == 0)
            return 1;
    return 0;
}

/* Loads every live version of one key domain. */
static int load_domain(ph_keysource *ks, ph_dek_source *src, const ph_keyring *kr,
                       const char *domain, const char *cfg, char *err, size_t errlen)
{
    const ph_key_domain *d = ph_keyring_domain(kr, domain);
    if (!d) {
        snprintf(err, errlen,
                 "no key for key domain \"%s\" in the keyring: run `phantom keys create "
                 "--config %s %s`",
                 domain, cfg, domain);
        return -1;
    }
    for (size_t i = 0; i < d->n_versions; i++) {
        const ph_dek_version *v = &d->versions[i];
        if (v->state != PH_DEK_ACTIVE)
            continue;
        uint8_t dek[PH_FIELD_DEK_LEN];
        char why[256];
        int rc = ph_dek_source_load(src, domain, v->version, dek, why, sizeof why);
        if (rc == 0)
            rc = ph_keysource_add(ks, domain, v->key_id, dek, v->version == d->active);
        OPENSSL_cleanse(dek, sizeof dek);
        if (rc != 0) {
            snprintf(err, errlen, "cannot load key domain \"%s\" version %u: %s", domain,
                     v->version, rc == -1 && why[0] ? why : "out of memory");
            return -1;
        }
    }
    if (!ph_keysource_write_key(ks, domain)) {
        snprintf(err, errlen, "key domain \"%s\" has no active version", domain);
        return -1;
    }
    return 0;
}

static int load_all(ph_keysource *ks, ph_dek_source *src, const ph_schema *schema, const char *cfg,
                    char *err, size_t errlen)
{
    for (size_t t = 0; t < schema->ntables; t++) {
        const ph_schema_table *tab = schema->tables[t];
        for (size_t c = 0; c < tab->ncolumns; c++) {
            const char *domain = tab->columns[c]->key_domain;
            if (tab->columns[c]->mode == PH_MODE_TOKEN || has_domain(ks, domain))
                continue;
            if (load_domain(ks, src, src->keyring, domain, cfg, err, errlen) != 0)
                return -1;
        }
    }
    return 0;
}

ph_keysource *ph_keysource_open(const ph_keys_config *kc, const ph_schema *schema, char *err,
                                size_t errlen)
{
    const char *cfg = kc->source_path ? kc->source_path : "phantom.yaml";
    if (!kc->keyring) {
        snprintf(err, errlen, "%s: the encrypt section needs a keys: section with a keyring", cfg);
        return NULL;
    }
    ph_keyring *kr = NULL;
    if (ph_keyring_load(kc->keyring, 1, &kr, err, errlen) != 0) /* missing: no keys yet */
        return NULL;
    ph_kek *kek = ph_kek_open(kc, err, errlen);
    if (!kek) {
        ph_keyring_free(kr);
        return NULL;
    }
    ph_dek_source src;
    if (ph_dek_source_init(&src, kr, kek) != 0) { /* takes kr */
        snprintf(err, errlen, "cannot set up the key loader");
        ph_kek_destroy(kek);
        return NULL;
    }
    ph_keysource *ks = ph_keysource_new();
    if (!ks || load_all(ks, &src, schema, cfg, err, errlen) != 0) {
        if (!ks)
            snprintf(err, errlen, "out of memory");
        ph_keysource_free(ks);
        ks = NULL;
    }
    ph_dek_source_destroy(&src);
    ph_kek_destroy(kek);
    return ks;
}
