/*
 * kek_tenant.h — per-tenant KEKs: each tenant's DEKs wrapped by a Transit
 * key of its own (keys.openbao.tenant_key_prefix, keys_config.h).
 *
 * Owns: the Transit key name of a tenant (<prefix><tenant>), opening that
 * KEK (creating the Transit key on first use), deleting it when the tenant
 * is crypto-shredded, and a small set of open per-tenant KEKs that answers
 * "which KEK wraps the DEKs of this key domain" (the primary KEK for every
 * domain that is not a tenant's, and for every domain when the provider
 * has no per-tenant keys). Without a prefix, or with another provider than
 * openbao, every tenant's DEKs are wrapped by the primary KEK.
 */
#ifndef PHANTOM_KEYS_KEK_TENANT_H
#define PHANTOM_KEYS_KEK_TENANT_H

#include <stddef.h>

#include "keys/kek.h"
#include "keys/keys_config.h"

/* 1 when tenants have KEKs of their own (openbao + tenant_key_prefix). */
int ph_kek_tenant_separate(const ph_keys_config *kc);

/* "<prefix><tenant>" into buf: 0, or -1 (no per-tenant keys, or too long). */
int ph_kek_tenant_key_name(const ph_keys_config *kc, const char *tenant, char *buf, size_t len);

/* Opens tenant's KEK; create=1 creates its Transit key first when missing
 * (an existing one is left as it is). NULL + err. */
ph_kek *ph_kek_open_tenant(const ph_keys_config *kc, const char *tenant, int create, char *err,
                           size_t errlen);

/* Deletes tenant's Transit key (ph_kek_openbao_delete_key): 0 with *missing
 * = 1 when there was none, or -1 with err. Its name goes to name[namelen]. */
int ph_kek_delete_tenant(const ph_keys_config *kc, const char *tenant, int *missing, char *name,
                         size_t namelen, char *err, size_t errlen);

typedef struct ph_kek_set ph_kek_set;

ph_kek_set *ph_kek_set_new(const ph_keys_config *kc); /* NULL on OOM */
/* The KEK that wraps key domain `domain`: primary, or the tenant's own
 * (opened once and kept; create as for ph_kek_open_tenant). NULL + err. */
ph_kek *ph_kek_set_for(ph_kek_set *s, ph_kek *primary, const char *domain, int create, char *err,
                       size_t errlen);
/* Closes every per-tenant KEK it opened (not the primary). NULL allowed. */
void ph_kek_set_clear(ph_kek_set *s);
void ph_kek_set_free(ph_kek_set *s);

#endif
