/*
 * cmd_keys_tenant.c — `phantom keys shred` (crypto-shredding a tenant) and
 * `phantom keys probe` (which keys, if any, still open given envelopes).
 *
 * shred: under the keyring lock, every DEK version of every domain
 * "tenant:<T>/..." is retired with every wrapping wiped (primary and
 * escrow) and the domains are kept as tombstones (key ids never reused, the
 * tenant never re-created); saved atomically once; one "keys.shred" audit
 * record per destroyed version and one "tenant.shred" summary. Asks for the
 * tenant id as confirmation unless --yes. A running proxy drops the keys at
 * its next refresh (keys.cache_ttl / 2).
 *
 * probe: the erasure check. Each envelope read on stdin is tried against
 * every live DEK of the keyring under every key domain name the keyring and
 * the config know (the domain is part of the authenticated data), with the
 * envelope's own key id — i.e. every key that remains, whatever the
 * envelope's header says. Plaintext never printed; keys never printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "cli/cmd_keys_internal.h"
#include "common/err.h"
#include "common/file.h"
#include "common/hex.h"
#include "common/mem.h"
#include "crypto/field.h"
#include "keys/kek_tenant.h"
#include "keys/secmem.h"
#include "schema/schema.h"

/* ---- shred --------------------------------------------------------------------------------- */

/* One destroyed version, remembered for its audit record. */
typedef struct {
    char domain[PH_KEYRING_MAX_DOMAIN + 1];
    ph_dek_version v; /* version and key id only */
} shred_item;

/* The tenant's live versions (before shredding): heap array, count in *n. */
static shred_item *tenant_versions(const ph_keyring *kr, const char *tenant, size_t *n)
{
    *n = 0;
    shred_item *items = NULL;
    for (size_t i = 0; i < kr->n_domains; i++) {
        const ph_key_domain *d = &kr->domains[i];
        char t[PH_TENANT_MAX + 1];
        if (!ph_keyring_domain_tenant(d->name, t, sizeof t, NULL) || strcmp(t, tenant) != 0)
            continue;
        for (size_t j = 0; j < d->n_versions; j++) {
            if (d->versions[j].state != PH_DEK_ACTIVE)
                continue;
            shred_item *g = realloc(items, (*n + 1) * sizeof *g);
            if (!g) {
                free(items);
                *n = 0;
                return NULL;
            }
            items = g;
            memset(&items[*n], 0, sizeof items[*n]);
            snprintf(items[*n].domain, sizeof items[*n].domain, "%s", d->name);
            items[*n].v.version = d->versions[j].version;
            items[*n].v.key_id = d->versions[j].key_id;
            (*n)++;
        }
    }
    return items;
}

/* The operator types the tenant id (or --yes). 0 confirmed, 1 not. */
static int confirm(const kctx *c, size_t nversions)
{
    fprintf(stderr,
            "Crypto-shredding tenant %s destroys %zu DEK version(s) (every primary and escrow "
            "wrapping).\nEvery value encrypted under them - in the database, its replicas and "
            "every backup - becomes permanently unreadable. This cannot be undone.\n",
            c->tenant, nversions);
    if (c->yes)
        return 0;
    fprintf(stderr, "Type the tenant id to confirm: ");
    fflush(stderr);
    char line[PH_TENANT_MAX + 8];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    line[strcspn(line, "\r\n")] = '\0';
    return strcmp(line, c->tenant) == 0 ? 0 : 1;
}

static int audit_shredded(kctx *c, const shred_item *items, size_t n, const ph_shred_result *r)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        rc |= audit_admin(c, "ok", NULL, items[i].domain, &items[i].v, NULL, "crypto-shred") != 0;
    char detail[160], err[256];
    snprintf(detail, sizeof detail, "tenant=%s domains=%zu versions=%zu wrappings=%zu", c->tenant,
             r->domains, r->versions, r->wrappings);
    ph_audit_event ev = {.event = "tenant.shred", .outcome = "ok", .detail = detail};
    if (ph_audit_write(c->audit, &ev, 1, err, sizeof err) != 0) {
        errorf(c, "audit log: %s", err);
        rc = 1;
    }
    return rc;
}

/* With per-tenant Transit keys: the tenant's key is deleted too (after
 * the keyring no longer holds any wrapping of its DEKs). 0 or 1. */
static int delete_tenant_kek(kctx *c)
{
    if (!ph_kek_tenant_separate(&c->kc))
        return 0;
    char name[160] = "", why[512] = "", detail[PH_TENANT_MAX + 32];
    int missing = 0;
    int rc = ph_kek_delete_tenant(&c->kc, c->tenant, &missing, name, sizeof name, why, sizeof why);
    snprintf(detail, sizeof detail, "tenant=%s%s", c->tenant, missing ? " (no such key)" : "");
    ph_audit_event ev = {.event = "kek.delete",
                         .outcome = rc == 0 ? "ok" : "error",
                         .kek = name[0] ? name : NULL,
                         .reason = rc == 0 ? NULL : why,
                         .detail = detail};
    char aerr[256];
    int arc = ph_audit_write(c->audit, &ev, 1, aerr, sizeof aerr);
    if (arc != 0)
        errorf(c, "audit log: %s", aerr);
    if (rc != 0)
        return errorf(c,
                      "the keyring holds no wrapping of tenant %s's DEKs any more, but deleting "
                      "its Transit key %s failed: %s (delete it in OpenBao)",
                      c->tenant, name, why);
    printf(missing ? "OpenBao Transit key %s was not there\n" : "deleted OpenBao Transit key %s\n",
           name);
    return arc != 0;
}

int cmd_shred(kctx *c)
{
    if (!c->tenant || c->nargs != 0)
        return errorf(c, "usage: phantom keys shred --config FILE --tenant T [--yes]") + 1;
    if (!ph_tenant_valid(c->tenant))
        return errorf(c, "invalid tenant id \"%.70s\"", c->tenant) + 1;
    int rc = setup(c, WRITE);
    if (rc != 0)
        return rc;
    size_t n = 0;
    shred_item *items = tenant_versions(c->kr, c->tenant, &n);
    if (n > 0 && !items)
        return errorf(c, "out of memory");
    if (n > 0 && confirm(c, n) != 0) {
        free(items);
        audit_admin(c, "refused", NULL, NULL, NULL, "not confirmed", c->tenant);
        return errorf(c, "not confirmed: nothing was destroyed");
    }
    char err[512];
    ph_shred_result r;
    if (ph_keyring_shred_tenant(c->kr, c->tenant, (int64_t)time(NULL), &r, err, sizeof err) != 0) {
        free(items);
        audit_admin(c, "refused", NULL, NULL, NULL, err, c->tenant);
        return errorf(c, "%s", err);
    }
    if (r.versions > 0 && save(c) != 0) {
        free(items);
        return 1;
    }
    rc = audit_shredded(c, items, n, &r);
    free(items);
    if (r.versions == 0)
        printf("tenant %s was crypto-shredded already (%zu key domain(s)); nothing left to "
               "destroy\n",
               c->tenant, r.domains);
    else
        printf("crypto-shredded tenant %s: %zu DEK version(s) in %zu key domain(s) destroyed "
               "(%zu wrapping(s), primary and escrow); its key ids stay reserved\n",
               c->tenant, r.versions, r.domains, r.wrappings);
    fflush(stdout);
    return rc | delete_tenant_kek(c);
}

/* ---- probe --------------------------------------------------------------------------------- */

typedef struct {
    char **names; /* key domain names to try (the field keys' authenticated data) */
    size_t n;
} name_set;

static int name_add(name_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return 0;
    char **g = realloc(s->names, (s->n + 1) * sizeof *g);
    if (!g)
        return -1;
    s->names = g;
    if (!(s->names[s->n] = strdup(name)))
        return -1;
    s->n++;
    return 0;
}

static void names_free(name_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->names[i]);
    free(s->names);
}

/* Every domain name of the keyring and of the config's encrypt: section. */
static int collect_names(const kctx *c, name_set *s)
{
    for (size_t i = 0; i < c->kr->n_domains; i++)
        if (name_add(s, c->kr->domains[i].name) != 0)
            return -1;
    char *doc = NULL, err[256];
    size_t len = 0;
    ph_schema *schema = NULL;
    if (ph_file_read(c->config_path, 16u << 20, 0, &doc, &len, err, sizeof err) == 0 &&
        ph_schema_load_buffer(&schema, doc, len, c->config_path, err, sizeof err) == 0) {
        for (size_t t = 0; t < schema->ntables; t++)
            for (size_t k = 0; k < schema->tables[t]->ncolumns; k++)
                if (name_add(s, schema->tables[t]->columns[k]->key_domain) != 0) {
                    ph_schema_free(schema);
                    free(doc);
                    return -1;
                }
    }
    ph_schema_free(schema);
    free(doc);
    return 0;
}

/* The live DEKs, unwrapped (secure memory, PH_DEK_LEN each). */
typedef struct {
    uint8_t *keys;
    size_t n, cap;
    const char **owner; /* the domain of each (for the report) */
} dek_set;

static void deks_free(dek_set *d)
{
    if (d->keys)
        ph_secure_free(d->keys, d->cap * PH_DEK_LEN); /* wipes */
    free(d->owner);
    memset(d, 0, sizeof *d);
}

static int unwrap_all(kctx *c, dek_set *d)
{
    size_t n = 0;
    for (size_t i = 0; i < c->kr->n_domains; i++)
        for (size_t j = 0; j < c->kr->domains[i].n_versions; j++)
            n += c->kr->domains[i].versions[j].state == PH_DEK_ACTIVE;
    d->keys = n ? ph_secure_alloc(n * PH_DEK_LEN) : NULL;
    d->cap = d->keys ? n : 0;
    d->owner = ph_calloc(n + 1, sizeof *d->owner);
    if ((n && !d->keys) || !d->owner)
        return errorf(c, "out of memory");
    for (size_t i = 0; i < c->kr->n_domains; i++) {
        const ph_key_domain *dom = &c->kr->domains[i];
        for (size_t j = 0; j < dom->n_versions; j++) {
            const ph_dek_version *v = &dom->versions[j];
            const ph_wrapped_dek *w = ph_keyring_wrapping(v, PH_WRAP_PRIMARY);
            char err[256] = "";
            if (v->state != PH_DEK_ACTIVE)
                continue;
            ph_kek *kek = w ? kek_for(c, dom->name, 0, err, sizeof err) : NULL;
            if (!kek || ph_kek_unwrap(kek, w->blob, w->blob_len, d->keys + d->n * PH_DEK_LEN, err,
                                      sizeof err) != 0)
                return errorf(c, "%s version %u: %s", dom->name, (unsigned)v->version,
                              w ? err : "no primary wrapping");
            d->owner[d->n++] = dom->name;
        }
    }
    return 0;
}

/* Decodes one input line (hex, optional \x prefix); -1 if not hex. */
static int decode_line(char *line, ph_buf *env)
{
    line[strcspn(line, "\r\n")] = '\0';
    const char *h = line;
    if (h[0] == '\\' && h[1] == 'x')
        h += 2;
    size_t l = strlen(h);
    env->len = 0;
    if (l == 0 || l % 2 || ph_buf_reserve(env, l / 2) != 0 || ph_hex_decode(h, l, env->data) != 0)
        return -1;
    env->len = l / 2;
    return 0;
}

/* 1 when some key opens env (reported), 0 when none, -1 on error. */
static int try_all(const dek_set *d, const name_set *names, const ph_buf *env, size_t lineno)
{
    ph_field_info info;
    if (ph_field_peek(env->data, env->len, &info) != PH_FIELD_OK || info.plaintext_len > (1u << 26))
        return -1;
    uint8_t *out = malloc(info.plaintext_len + 1);
    if (!out)
        return -1;
    int opened = 0;
    for (size_t k = 0; k < d->n && !opened; k++)
        for (size_t m = 0; m < names->n && !opened; m++) {
            ph_field_key *fk =
                ph_field_key_new(d->keys + k * PH_DEK_LEN, info.key_id, names->names[m]);
            size_t ol = 0;
            if (fk && ph_field_decrypt(fk, PH_FIELD_ANY, env->data, env->len, out,
                                       info.plaintext_len + 1, &ol) == PH_FIELD_OK) {
                printf("line %zu: OPENED by a DEK of %s under key domain %s\n", lineno, d->owner[k],
                       names->names[m]);
                opened = 1;
            }
            ph_field_key_free(fk);
        }
    OPENSSL_cleanse(out, info.plaintext_len + 1);
    free(out);
    return opened;
}

int cmd_probe(kctx *c)
{
    if (c->nargs != 0)
        return errorf(c, "usage: phantom keys probe --config FILE < envelopes.hex") + 1;
    int rc = setup(c, NEED_PRIMARY | KEYRING_MAY_BE_MISSING);
    if (rc != 0)
        return rc;
    name_set names = {0};
    dek_set d = {0};
    size_t lineno = 0, total = 0, opened = 0, bad = 0;
    ph_buf env = {0};
    if (collect_names(c, &names) != 0)
        rc = errorf(c, "out of memory");
    else
        rc = unwrap_all(c, &d);
    char *line = NULL;
    size_t cap = 0;
    while (rc == 0 && getline(&line, &cap, stdin) > 0) {
        lineno++;
        if (decode_line(line, &env) != 0) {
            if (line[0])
                bad++;
            continue;
        }
        total++;
        int r = try_all(&d, &names, &env, lineno);
        if (r < 0)
            bad++;
        else
            opened += (size_t)r;
    }
    free(line);
    ph_buf_free(&env);
    size_t nkeys = d.n, nnames = names.n;
    deks_free(&d);
    names_free(&names);
    if (rc != 0)
        return rc;
    char detail[160];
    snprintf(detail, sizeof detail, "envelopes=%zu opened=%zu keys=%zu domains=%zu", total, opened,
             nkeys, nnames);
    audit_admin(c, "ok", c->primary->id, NULL, NULL, NULL, detail);
    printf("%zu envelope(s) tried against %zu live DEK(s) x %zu key domain name(s): %zu opened, "
           "%zu not envelopes\n",
           total, nkeys, nnames, opened, bad);
    return opened ? 1 : 0;
}
