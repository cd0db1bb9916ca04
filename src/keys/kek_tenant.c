/*
 * kek_tenant.c — per-tenant KEKs (see kek_tenant.h).
 */
#include "keys/kek_tenant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/mem.h"
#include "keys/kek_openbao.h"
#include "keys/keyring.h"

int ph_kek_tenant_separate(const ph_keys_config *kc)
{
    return kc && kc->primary.kind == PH_KEK_KIND_OPENBAO && kc->primary.openbao.tenant_key_prefix;
}

int ph_kek_tenant_key_name(const ph_keys_config *kc, const char *tenant, char *buf, size_t len)
{
    if (!ph_kek_tenant_separate(kc) || !ph_tenant_valid(tenant))
        return -1;
    int n = snprintf(buf, len, "%s%s", kc->primary.openbao.tenant_key_prefix, tenant);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* kc's openbao settings naming tenant's Transit key (name in buf). */
static int tenant_cfg(const ph_keys_config *kc, const char *tenant, char *buf, size_t len,
                      ph_keys_openbao_cfg *out, char *err, size_t errlen)
{
    if (ph_kek_tenant_key_name(kc, tenant, buf, len) != 0)
        return ph_errf(err, errlen, "no per-tenant Transit key for tenant %s", tenant);
    *out = kc->primary.openbao; /* shallow: the strings stay kc's */
    out->key_name = buf;
    return 0;
}

ph_kek *ph_kek_open_tenant(const ph_keys_config *kc, const char *tenant, int create, char *err,
                           size_t errlen)
{
    char name[160];
    ph_keys_openbao_cfg cfg;
    if (tenant_cfg(kc, tenant, name, sizeof name, &cfg, err, errlen) != 0)
        return NULL;
    ph_kek_created made;
    if (create && ph_kek_openbao_create_key(&cfg, &made, err, errlen) != 0)
        return NULL;
    return ph_kek_openbao_open(&cfg, err, errlen);
}

int ph_kek_delete_tenant(const ph_keys_config *kc, const char *tenant, int *missing, char *name,
                         size_t namelen, char *err, size_t errlen)
{
    ph_keys_openbao_cfg cfg;
    *missing = 0;
    if (tenant_cfg(kc, tenant, name, namelen, &cfg, err, errlen) != 0)
        return -1;
    return ph_kek_openbao_delete_key(&cfg, missing, err, errlen);
}

/* ---- the set ---------------------------------------------------------------------- */

typedef struct {
    char tenant[PH_TENANT_MAX + 1];
    ph_kek *kek;
} tenant_kek;

struct ph_kek_set {
    const ph_keys_config *kc;
    tenant_kek *v;
    size_t n;
};

ph_kek_set *ph_kek_set_new(const ph_keys_config *kc)
{
    ph_kek_set *s = ph_calloc(1, sizeof *s);
    if (s)
        s->kc = kc;
    return s;
}

ph_kek *ph_kek_set_for(ph_kek_set *s, ph_kek *primary, const char *domain, int create, char *err,
                       size_t errlen)
{
    char tenant[PH_TENANT_MAX + 1];
    if (!s || !ph_kek_tenant_separate(s->kc) ||
        !ph_keyring_domain_tenant(domain, tenant, sizeof tenant, NULL)) {
        if (!primary)
            ph_errf(err, errlen, "no KEK provider open");
        return primary;
    }
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].tenant, tenant) == 0)
            return s->v[i].kek;
    ph_kek *k = ph_kek_open_tenant(s->kc, tenant, create, err, errlen);
    if (!k)
        return NULL;
    tenant_kek *g = realloc(s->v, (s->n + 1) * sizeof *g);
    if (!g) {
        ph_kek_destroy(k);
        ph_errf(err, errlen, "out of memory");
        return NULL;
    }
    s->v = g;
    memcpy(g[s->n].tenant, tenant, sizeof tenant);
    g[s->n].kek = k;
    s->n++;
    return k;
}

void ph_kek_set_clear(ph_kek_set *s)
{
    for (size_t i = 0; s && i < s->n; i++)
        ph_kek_destroy(s->v[i].kek);
    if (s) {
        free(s->v);
        s->v = NULL;
        s->n = 0;
    }
}

void ph_kek_set_free(ph_kek_set *s)
{
    ph_kek_set_clear(s);
    free(s);
}
