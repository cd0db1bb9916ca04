/*
 * cmd_keys.c — `phantom keys`: administration of the KEK -> DEK hierarchy
 * (init-master, init-kek, create, list, rotate, rotate-kek, rewrap, retire,
 * escrow, recover, check; shred and probe are in cmd_keys_tenant.c).
 *
 * Every mutating command: loads the `keys:` config, opens the audit log (and
 * makes it the process-wide sink so each KEK call is recorded), takes the
 * keyring lock, loads the keyring, changes it in memory, saves it atomically
 * once (all or nothing) and records one administrative audit event per
 * DEK version touched (fsync'ed). Plaintext DEKs exist only in
 * ph_secure_alloc memory for the duration of one wrap and are wiped.
 * Exit status: 0 done, 1 refused or failed, 2 usage or configuration error.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "cli/cli.h"
#include "cli/cmd_keys_internal.h"
#include "common/err.h"
#include "common/file.h"
#include "common/hex.h"
#include "common/mem.h"
#include "keys/audit.h"
#include "keys/kek.h"
#include "keys/kek_factory.h"
#include "keys/kek_file.h"
#include "keys/kek_openbao.h"
#include "keys/kek_pkcs11.h"
#include "keys/kek_tenant.h"
#include "keys/keyring.h"
#include "keys/keys_config.h"
#include "keys/secmem.h"
#include "schema/schema.h"

void ph_cmd_keys_usage(void *stream)
{
    fprintf((FILE *)stream,
            "usage: phantom keys COMMAND [options]\n"
            "\n"
            "Manages the key hierarchy: a KEK (file, openbao or pkcs11 provider) wraps the\n"
            "DEKs of each key domain; only wrapped DEKs are stored, in the keyring file.\n"
            "\n"
            "commands:\n"
            "  init-master --out FILE       create a new master-key file (mode 0600; never\n"
            "                               overwrites) for the file provider or escrow;\n"
            "                               audited when --config is given\n"
            "  init-kek [--escrow]          create the configured KEK (--escrow: the escrow\n"
            "                               KEK) in its provider, then check that it wraps:\n"
            "                                 file     a new master-key file at file.path\n"
            "                                          (mode 0600; refused if it exists)\n"
            "                                 openbao  the Transit key, type aes256-gcm96\n"
            "                                          (POST /v1/MOUNT/keys/KEY), unless it\n"
            "                                          exists: then it is left unchanged\n"
            "                                          (token, token_file or Kubernetes auth)\n"
            "                                 pkcs11   an AES-256 key labelled key_label on\n"
            "                                          the token, sensitive and\n"
            "                                          non-extractable (refused if it exists)\n"
            "  create [DOMAIN...]           create version 1 of each domain's DEK (no\n"
            "                               domain: every key domain of the config's\n"
            "                               encrypt: section that has no key yet)\n"
            "  list [--json]                domains, versions, states, creation times and\n"
            "                               the KEKs wrapping each (never key material)\n"
            "  rotate DOMAIN...             add a new DEK version: new writes use it, every\n"
            "                               active version still decrypts\n"
            "  rotate-kek                   add a new KEK version (file: appends a key to the\n"
            "                               master-key file); then run rewrap\n"
            "  rewrap [DOMAIN...]           re-wrap every active DEK under the KEK's newest\n"
            "                               version (no data changes)\n"
            "  retire DOMAIN VERSION        destroy a DEK version; refused unless a scan\n"
            "        [--force]              recorded that no row uses it (--force: do it\n"
            "                               anyway; data under it becomes unreadable)\n"
            "  escrow [DOMAIN...]           add a wrapping of every active DEK under the\n"
            "                               recovery KEK (keys.escrow in the config)\n"
            "  recover [DOMAIN...]          restore the primary wrapping from the escrow copy\n"
            "                               (after the primary KEK was lost or replaced)\n"
            "  check [DOMAIN...]            unwrap every active DEK with the primary KEK and\n"
            "                               print a key check value (kcv) per version\n"
            "  shred --tenant T [--yes]     crypto-shredding: destroy every DEK version of\n"
            "                               tenant T (domains tenant:T/...), primary and\n"
            "                               escrow wrappings, and its OpenBao Transit key if\n"
            "                               one per tenant is configured; asks for the\n"
            "                               tenant id as confirmation unless --yes\n"
            "  probe                        read envelopes (hex, one per line) on stdin and\n"
            "                               try to open each with every live DEK under every\n"
            "                               key domain name of the keyring; exit 0 when none\n"
            "                               opens, 1 when some did (listed)\n"
            "\n"
            "options:\n"
            "  -c, --config FILE            phantom.yaml with a keys: section (required\n"
            "                               except for init-master)\n"
            "      --out FILE               init-master: the file to create\n"
            "      --json                   list: machine-readable output\n"
            "      --force                  retire: retire a version that may be in use\n"
            "      --escrow                 init-kek: create the escrow KEK (keys.escrow)\n"
            "      --tenant T               shred: the tenant\n"
            "      --yes                    shred: do not ask for confirmation\n"
            "      --no-escrow              create/rotate: skip the escrow wrapping even\n"
            "                               if keys.escrow is configured\n"
            "  -h, --help                   this help\n");
}

int errorf(const kctx *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "phantom keys %s: ", c->cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* ---- setup / teardown ---------------------------------------------------- */

static void teardown(kctx *c)
{
    ph_audit_set_global(NULL);
    ph_kek_set_free(c->tenant_keks);
    ph_kek_destroy(c->primary);
    ph_kek_destroy(c->escrow);
    ph_keyring_free(c->kr);
    if (c->lock_fd >= 0)
        close(c->lock_fd);
    ph_audit_close(c->audit);
    if (c->kc_loaded)
        ph_keys_config_free(&c->kc);
}

static int load_config(kctx *c)
{
    char err[512];
    if (!c->config_path)
        return errorf(c, "--config FILE is required") + 1;
    ph_keys_config_defaults(&c->kc);
    c->kc_loaded = 1;
    if (ph_keys_config_load_file(&c->kc, c->config_path, err, sizeof err) != 0 ||
        ph_keys_config_validate(&c->kc, err, sizeof err) != 0)
        return errorf(c, "%s", err) + 1;
    return 0;
}

int setup(kctx *c, int need)
{
    char err[512];
    int rc = load_config(c);
    if (rc != 0)
        return rc;
    if (!(c->audit = ph_audit_open(c->kc.audit_log, err, sizeof err)))
        return errorf(c, "audit log: %s", err);
    ph_audit_set_global(c->audit);
    if ((need & WRITE) &&
        (c->lock_fd = ph_keyring_lock(c->kc.keyring, LOCK_TIMEOUT_MS, err, sizeof err)) < 0)
        return errorf(c, "%s", err);
    if (ph_keyring_load(c->kc.keyring, (need & KEYRING_MAY_BE_MISSING) != 0, &c->kr, err,
                        sizeof err) != 0)
        return errorf(c, "%s", err);
    if ((need & NEED_PRIMARY) && !(c->primary = ph_kek_open(&c->kc, err, sizeof err)))
        return errorf(c, "primary KEK: %s", err);
    if ((need & ESCROW_IF_CONFIGURED) && c->kc.has_escrow && !c->no_escrow)
        need |= NEED_ESCROW;
    if ((need & NEED_ESCROW) && !(c->escrow = ph_kek_open_escrow(&c->kc, err, sizeof err)))
        return errorf(c, "escrow KEK: %s", err);
    return 0;
}

ph_kek *kek_for(kctx *c, const char *domain, int create, char *err, size_t errlen)
{
    if (!c->tenant_keks && !(c->tenant_keks = ph_kek_set_new(&c->kc))) {
        ph_errf(err, errlen, "out of memory");
        return NULL;
    }
    return ph_kek_set_for(c->tenant_keks, c->primary, domain, create, err, errlen);
}

/* One administrative audit record (fsync'ed); prints a warning on failure. */
int audit_admin(kctx *c, const char *outcome, const char *kek, const char *domain,
                const ph_dek_version *v, const char *reason, const char *detail)
{
    char event[64], err[256];
    snprintf(event, sizeof event, "keys.%s", c->cmd);
    ph_audit_event ev = {
        .event = event,
        .outcome = outcome,
        .kek = kek,
        .domain = domain,
        .version = v ? v->version : 0,
        .key_id = v ? v->key_id : 0,
        .reason = reason,
        .detail = detail,
    };
    if (ph_audit_write(c->audit, &ev, 1, err, sizeof err) != 0) {
        errorf(c, "audit log: %s", err);
        return -1;
    }
    return 0;
}

/* Saves the keyring; on failure records the failed action and reports it. */
int save(kctx *c)
{
    char err[512];
    if (ph_keyring_save(c->kr, c->kc.keyring, err, sizeof err) == 0)
        return 0;
    audit_admin(c, "error", NULL, NULL, NULL, err, "keyring not saved");
    return errorf(c, "%s (keyring unchanged)", err);
}

/* ---- DEK helpers ------------------------------------------------------------ */

/* A buffer for one plaintext DEK (ph_secure_alloc), or NULL with a reason. */
static uint8_t *dek_buffer(char *err, size_t errlen)
{
    uint8_t *dek = ph_secure_alloc(PH_DEK_LEN);
    if (!dek)
        ph_errf(err, errlen, "out of memory");
    return dek;
}

/* The wrapping of v in role, or NULL with "no ROLE wrapping" + hint. */
static const ph_wrapped_dek *wrapping_of(const ph_dek_version *v, ph_wrap_role role,
                                         const char *hint, char *err, size_t errlen)
{
    const ph_wrapped_dek *w = ph_keyring_wrapping(v, role);
    if (!w)
        ph_errf(err, errlen, "no %s wrapping%s", role == PH_WRAP_ESCROW ? "escrow" : "primary",
                hint);
    return w;
}

/* Wraps a fresh DEK under escrow too when configured (and not --no-escrow). */
static int add_escrow_copy(kctx *c, ph_dek_version *v, const uint8_t *dek, char *err, size_t errlen)
{
    if (!c->escrow)
        return 0;
    uint8_t *blob = NULL;
    size_t len = 0;
    int rc = ph_kek_wrap(c->escrow, dek, &blob, &len, err, errlen);
    if (rc == 0)
        rc = ph_keyring_set_wrapping(v, PH_WRAP_ESCROW, c->escrow->id, blob, len, err, errlen);
    free(blob);
    return rc;
}

/* create (create=1) or rotate (create=0) one domain. */
static int new_version(kctx *c, const char *domain, int create, ph_dek_version **out, char *err,
                       size_t errlen)
{
    uint8_t *dek = dek_buffer(err, errlen);
    uint8_t *blob = NULL;
    size_t len = 0;
    if (!dek)
        return -1;
    ph_kek *kek = kek_for(c, domain, 1, err, errlen);
    int rc = kek ? ph_kek_generate(kek, dek, &blob, &len, err, errlen) : -1;
    if (rc == 0)
        rc = ph_keyring_add_version(c->kr, domain, create, kek->id, blob, len, out, err, errlen);
    if (rc == 0)
        rc = add_escrow_copy(c, *out, dek, err, errlen);
    free(blob);
    ph_secure_free(dek, PH_DEK_LEN);
    return rc;
}

/* Moves a DEK from one wrapping (`from` role, unwrapped by src) to a new
 * wrapping (`to` role) under dst. */
static int transfer(ph_dek_version *v, ph_kek *src, ph_wrap_role from, ph_kek *dst, ph_wrap_role to,
                    char *err, size_t errlen)
{
    const ph_wrapped_dek *w = wrapping_of(v, from, "", err, errlen);
    uint8_t *dek = w ? dek_buffer(err, errlen) : NULL;
    uint8_t *blob = NULL;
    size_t len = 0;
    if (!dek)
        return -1;
    int rc = ph_kek_unwrap(src, w->blob, w->blob_len, dek, err, errlen);
    if (rc == 0)
        rc = ph_kek_wrap(dst, dek, &blob, &len, err, errlen);
    if (rc == 0)
        rc = ph_keyring_set_wrapping(v, to, dst->id, blob, len, err, errlen);
    free(blob);
    ph_secure_free(dek, PH_DEK_LEN);
    return rc;
}

/* The version of a KEK recorded in a wrapped blob, 0 if unknown. */
static uint32_t blob_kek_version(const ph_wrapped_dek *w)
{
    uint32_t v = ph_kek_file_blob_version(w->blob, w->blob_len);
    if (v == 0 && w->blob_len == PH_PKCS11_BLOB_LEN && w->blob[0] == 0x01 &&
        strncmp(w->kek, "pkcs11:", 7) == 0) /* kek_pkcs11.h: format 0x01, version BE */
        v = (uint32_t)w->blob[1] << 24 | (uint32_t)w->blob[2] << 16 | (uint32_t)w->blob[3] << 8 |
            w->blob[4];
    if (v == 0 && w->blob_len > 7 && memcmp(w->blob, "vault:v", 7) == 0) /* Transit */
        for (size_t i = 7;
             i < w->blob_len && w->blob[i] >= '0' && w->blob[i] <= '9' && v < 100000000u; i++)
            v = v * 10 + (uint32_t)(w->blob[i] - '0');
    return v;
}

/* ---- selection of domains ---------------------------------------------------- */

typedef int (*version_fn)(kctx *c, ph_key_domain *d, ph_dek_version *v, char *err, size_t errlen);

/* Runs fn on every active version of the named domains (all when none):
 * stops at the first failure (reported and audited); 0 or 1. */
static int for_each_active(kctx *c, version_fn fn, size_t *count)
{
    for (int i = 0; i < c->nargs; i++)
        if (!ph_keyring_domain(c->kr, c->args[i]))
            return errorf(c, "no key domain %s", c->args[i]);
    *count = 0;
    for (size_t i = 0; i < c->kr->n_domains; i++) {
        ph_key_domain *d = &c->kr->domains[i];
        int selected = c->nargs == 0;
        for (int a = 0; a < c->nargs; a++)
            selected |= strcmp(c->args[a], d->name) == 0;
        for (size_t j = 0; selected && j < d->n_versions; j++) {
            ph_dek_version *v = &d->versions[j];
            char err[512];
            if (v->state != PH_DEK_ACTIVE)
                continue;
            if (fn(c, d, v, err, sizeof err) != 0) {
                audit_admin(c, "error", NULL, d->name, v, err, NULL);
                return errorf(c, "%s version %u: %s%s", d->name, (unsigned)v->version, err,
                              c->lock_fd >= 0 ? " (nothing changed)" : "");
            }
            (*count)++;
        }
    }
    return 0;
}

/* Audits (ok) every active version of the selected domains after a save. */
static int audit_selected(kctx *c, const char *kek)
{
    int rc = 0;
    for (size_t i = 0; i < c->kr->n_domains; i++) {
        ph_key_domain *d = &c->kr->domains[i];
        int selected = c->nargs == 0;
        for (int a = 0; a < c->nargs; a++)
            selected |= strcmp(c->args[a], d->name) == 0;
        for (size_t j = 0; selected && j < d->n_versions; j++)
            if (d->versions[j].state == PH_DEK_ACTIVE &&
                audit_admin(c, "ok", kek, d->name, &d->versions[j], NULL, NULL) != 0)
                rc = 1;
    }
    return rc;
}

/* ---- commands ---------------------------------------------------------------- */

static int cmd_init_master(kctx *c)
{
    char err[512];
    if (!c->out || c->nargs != 0)
        return errorf(c, "usage: phantom keys init-master --out FILE [--config FILE]") + 1;
    /* With --config the creation is audited in the configured log. */
    if (c->config_path) {
        int rc = load_config(c);
        if (rc != 0)
            return rc;
        if (!(c->audit = ph_audit_open(c->kc.audit_log, err, sizeof err)))
            return errorf(c, "audit log: %s", err);
    }
    int rc = ph_kek_file_create(c->out, err, sizeof err);
    if (c->audit && audit_admin(c, rc == 0 ? "ok" : "error", NULL, NULL, NULL, rc == 0 ? NULL : err,
                                c->out) != 0)
        rc = -1;
    if (rc != 0)
        return errorf(c, "%s", err);
    printf("created master key %s (mode 0600); back it up offline\n", c->out);
    return 0;
}

/* Wraps and unwraps a random DEK with the new KEK: proves the provider can
 * be opened and used with the configured credentials. */
static int kek_self_test(ph_kek *k, char *err, size_t errlen)
{
    uint8_t *dek = ph_secure_alloc(2 * PH_DEK_LEN);
    uint8_t *blob = NULL;
    size_t len = 0;
    if (!dek) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = RAND_bytes(dek, PH_DEK_LEN) == 1 ? 0 : -1;
    if (rc != 0)
        snprintf(err, errlen, "no random bytes from the OS");
    if (rc == 0)
        rc = ph_kek_wrap(k, dek, &blob, &len, err, errlen);
    if (rc == 0)
        rc = ph_kek_unwrap(k, blob, len, dek + PH_DEK_LEN, err, errlen);
    if (rc == 0 && CRYPTO_memcmp(dek, dek + PH_DEK_LEN, PH_DEK_LEN) != 0) {
        snprintf(err, errlen, "a wrapped test key did not unwrap to itself");
        rc = -1;
    }
    free(blob);
    ph_secure_free(dek, 2 * PH_DEK_LEN);
    return rc;
}

static void print_created(const ph_keys_provider_cfg *p, const ph_kek_created *made, const char *id)
{
    switch (p->kind) {
    case PH_KEK_KIND_FILE:
        printf("created master key %s (mode 0600); back it up offline\n", p->file.path);
        break;
    case PH_KEK_KIND_OPENBAO:
        printf("%s Transit key %s (type %s, version %llu)%s\n",
               made->existed ? "found existing" : "created", id, made->type, made->version,
               made->existed ? "; left unchanged" : "");
        break;
    default:
        printf("created KEK %s (AES-256, sensitive, non-extractable) on token %s\n",
               p->pkcs11.key_label, p->pkcs11.token_label);
        break;
    }
}

/* init-kek: creates the KEK in its provider (kek_factory.h), then opens the
 * provider and wraps/unwraps a test key with it; one audit record. */
static int cmd_init_kek(kctx *c)
{
    char err[512], detail[96];
    if (c->nargs != 0)
        return errorf(c, "usage: phantom keys init-kek --config FILE [--escrow]") + 1;
    int rc = load_config(c);
    if (rc != 0)
        return rc;
    if (c->escrow_kek && !c->kc.has_escrow)
        return errorf(c, "--escrow: no escrow KEK configured (keys: escrow: ...)") + 1;
    const ph_keys_provider_cfg *p = c->escrow_kek ? &c->kc.escrow : &c->kc.primary;
    const char *role = c->escrow_kek ? "escrow" : "primary";
    if (!(c->audit = ph_audit_open(c->kc.audit_log, err, sizeof err)))
        return errorf(c, "audit log: %s", err);
    ph_audit_set_global(c->audit);
    ph_kek_created made;
    if (ph_kek_create_key(p, &made, err, sizeof err) != 0) {
        snprintf(detail, sizeof detail, "%s %s", role, ph_kek_kind_name(p->kind));
        audit_admin(c, "error", NULL, NULL, NULL, err, detail);
        return errorf(c, "%s KEK (%s): %s", role, ph_kek_kind_name(p->kind), err);
    }
    ph_kek *k = ph_kek_open_provider(p, err, sizeof err);
    rc = k ? kek_self_test(k, err, sizeof err) : -1;
    snprintf(detail, sizeof detail, "%s %s, %s, version %llu", role, ph_kek_kind_name(p->kind),
             made.existed ? "existed" : "created", made.version);
    int arc = audit_admin(c, rc == 0 ? "ok" : "error", k ? k->id : NULL, NULL, NULL,
                          rc == 0 ? NULL : err, detail);
    if (rc != 0)
        errorf(c, "%s KEK %s but cannot be used: %s", role, made.existed ? "exists" : "was created",
               err);
    else if (arc == 0)
        print_created(p, &made, k->id);
    ph_kek_destroy(k);
    return rc == 0 && arc == 0 ? 0 : 1;
}

/* The key domains of the config's encrypt: section that have no key yet
 * (into a heap array of pointers into *schema, which the caller frees). */
static int missing_domains(kctx *c, ph_schema **schema, char ***out, int *n)
{
    char *doc = NULL, err[512];
    size_t len = 0;
    if (ph_file_read(c->config_path, 16u << 20, 0, &doc, &len, err, sizeof err) != 0 ||
        ph_schema_load_buffer(schema, doc, len, c->config_path, err, sizeof err) != 0) {
        free(doc);
        return errorf(c, "%s", err);
    }
    free(doc);
    const ph_schema *s = *schema;
    size_t cap = 0;
    for (size_t t = 0; t < s->ntables; t++)
        cap += s->tables[t]->ncolumns;
    *out = ph_calloc(cap ? cap : 1, sizeof **out);
    if (!*out)
        return errorf(c, "out of memory");
    for (size_t t = 0; t < s->ntables; t++)
        for (size_t k = 0; k < s->tables[t]->ncolumns; k++) {
            const ph_schema_column *col = s->tables[t]->columns[k];
            /* a tenant-keyed column's keys are the tenants' (made on first use) */
            /* token domains key the token vault: only with a tokens: section */
            int seen = (col->mode == PH_MODE_TOKEN && !s->tokens) ||
                       ph_schema_column_tenant_keyed(col) ||
                       ph_keyring_domain(c->kr, col->key_domain);
            for (int i = 0; i < *n && !seen; i++)
                seen = strcmp((*out)[i], col->key_domain) == 0;
            if (!seen)
                (*out)[(*n)++] = col->key_domain;
        }
    return 0;
}

/* create with no domains: every key domain of the encrypt: section lacking one. */
static int cmd_create_all(kctx *c)
{
    int rc = setup(c, NEED_PRIMARY | WRITE | ESCROW_IF_CONFIGURED | KEYRING_MAY_BE_MISSING);
    if (rc != 0)
        return rc;
    ph_schema *schema = NULL;
    char **domains = NULL;
    int n = 0;
    rc = missing_domains(c, &schema, &domains, &n);
    if (rc == 0 && n == 0)
        printf("every key domain of the encrypt section has a key already\n");
    for (int i = 0; rc == 0 && i < n; i++) {
        char err[512];
        ph_dek_version *made;
        if (new_version(c, domains[i], 1, &made, err, sizeof err) != 0) {
            audit_admin(c, "error", c->primary->id, domains[i], NULL, err, NULL);
            rc = errorf(c, "%s: %s (nothing changed)", domains[i], err);
        }
    }
    if (rc == 0 && n > 0 && save(c) != 0)
        rc = 1;
    for (int i = 0; rc == 0 && i < n; i++) {
        ph_dek_version *v = ph_keyring_active(ph_keyring_domain(c->kr, domains[i]));
        rc |= audit_admin(c, "ok", c->primary->id, domains[i], v, NULL,
                          c->escrow ? "with escrow" : NULL) != 0;
        printf("created %s version %u (key id %u)%s\n", domains[i], (unsigned)v->version,
               (unsigned)v->key_id, c->escrow ? ", escrowed" : "");
    }
    free(domains);
    ph_schema_free(schema);
    return rc ? 1 : 0;
}

static int cmd_create_or_rotate(kctx *c, int create)
{
    if (c->nargs == 0 && create)
        return cmd_create_all(c);
    if (c->nargs == 0)
        return errorf(c, "name at least one key domain") + 1;
    for (int i = 0; i < c->nargs; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(c->args[i], c->args[j]) == 0)
                return errorf(c, "key domain %s named twice", c->args[i]) + 1;
    int rc = setup(c, NEED_PRIMARY | WRITE | ESCROW_IF_CONFIGURED |
                          (create ? KEYRING_MAY_BE_MISSING : 0));
    if (rc != 0)
        return rc;
    for (int i = 0; i < c->nargs; i++) {
        char err[512];
        ph_dek_version *made;
        if (new_version(c, c->args[i], create, &made, err, sizeof err) != 0) {
            audit_admin(c, "error", c->primary->id, c->args[i], NULL, err, NULL);
            return errorf(c, "%s: %s (nothing changed)", c->args[i], err);
        }
    }
    if (save(c) != 0)
        return 1;
    for (int i = 0; i < c->nargs; i++) {
        ph_dek_version *v = ph_keyring_active(ph_keyring_domain(c->kr, c->args[i]));
        rc |= audit_admin(c, "ok", c->primary->id, c->args[i], v, NULL,
                          c->escrow ? "with escrow" : NULL) != 0;
        printf("%s %s version %u (key id %u)%s\n", create ? "created" : "rotated", c->args[i],
               (unsigned)v->version, (unsigned)v->key_id, c->escrow ? ", escrowed" : "");
    }
    return rc;
}

static void print_wrappings(const ph_dek_version *v)
{
    if (v->n_wrapped == 0)
        printf("-");
    for (size_t i = 0; i < v->n_wrapped; i++) {
        const ph_wrapped_dek *w = &v->wrapped[i];
        printf("%s%s=%s", i ? " " : "", w->role == PH_WRAP_ESCROW ? "escrow" : "primary", w->kek);
        uint32_t kv = blob_kek_version(w);
        if (kv)
            printf("(v%u)", (unsigned)kv);
    }
}

static void usage_text(const ph_dek_version *v, char *buf, size_t len)
{
    if (!v->usage_known) {
        snprintf(buf, len, "unknown");
        return;
    }
    char when[32];
    ph_keyring_format_time(v->usage_checked, when, sizeof when);
    snprintf(buf, len, "%llu@%s", (unsigned long long)v->usage_rows, when);
}

static void list_text(const ph_keyring *kr)
{
    printf("%-28s %7s %6s %-8s %-5s %-20s %-24s %s\n", "DOMAIN", "VERSION", "KEY_ID", "STATE",
           "USE", "CREATED", "ROWS(SCANNED)", "WRAPPED BY");
    for (size_t i = 0; i < kr->n_domains; i++) {
        const ph_key_domain *d = &kr->domains[i];
        for (size_t j = 0; j < d->n_versions; j++) {
            const ph_dek_version *v = &d->versions[j];
            char created[32], usage[64];
            ph_keyring_format_time(v->created, created, sizeof created);
            usage_text(v, usage, sizeof usage);
            const char *use = v->state == PH_DEK_RETIRED ? "-"
                              : d->active == v->version  ? "rw"
                                                         : "r";
            printf("%-28s %7u %6u %-8s %-5s %-20s %-24s ", d->name, (unsigned)v->version,
                   (unsigned)v->key_id,
                   d->shredded                  ? "shredded"
                   : v->state == PH_DEK_RETIRED ? "retired"
                                                : "active",
                   use, created, usage);
            print_wrappings(v);
            printf("\n");
        }
    }
}

static int list_json(const ph_keyring *kr)
{
    /* Same content as the text form, as one JSON object per version. */
    printf("[");
    int first = 1;
    for (size_t i = 0; i < kr->n_domains; i++) {
        const ph_key_domain *d = &kr->domains[i];
        for (size_t j = 0; j < d->n_versions; j++) {
            const ph_dek_version *v = &d->versions[j];
            char created[32];
            ph_keyring_format_time(v->created, created, sizeof created);
            printf("%s\n  {\"domain\":\"%s\",\"version\":%u,\"key_id\":%u,\"state\":\"%s\","
                   "\"writes\":%s,\"created\":\"%s\",",
                   first ? "" : ",", d->name, (unsigned)v->version, (unsigned)v->key_id,
                   d->shredded                  ? "shredded"
                   : v->state == PH_DEK_RETIRED ? "retired"
                                                : "active",
                   d->active == v->version ? "true" : "false", created);
            if (v->usage_known)
                printf("\"rows\":%llu,", (unsigned long long)v->usage_rows);
            printf("\"wrapped\":[");
            for (size_t k = 0; k < v->n_wrapped; k++) {
                const ph_wrapped_dek *w = &v->wrapped[k];
                /* KEK ids are printable (validated on load); escape quotes/backslashes. */
                printf("%s{\"role\":\"%s\",\"kek\":\"", k ? "," : "",
                       w->role == PH_WRAP_ESCROW ? "escrow" : "primary");
                for (const char *p = w->kek; *p; p++)
                    printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
                printf("\",\"kek_version\":%u}", (unsigned)blob_kek_version(w));
            }
            printf("]}");
            first = 0;
        }
    }
    printf("\n]\n");
    return 0;
}

static int cmd_list(kctx *c)
{
    int rc = setup(c, KEYRING_MAY_BE_MISSING);
    if (rc != 0)
        return rc;
    if (c->json)
        return list_json(c->kr);
    list_text(c->kr);
    return 0;
}

static int rewrap_one(kctx *c, ph_key_domain *d, ph_dek_version *v, char *err, size_t errlen)
{
    const ph_wrapped_dek *w = wrapping_of(v, PH_WRAP_PRIMARY, " (run keys recover)", err, errlen);
    if (!w)
        return -1;
    uint8_t *blob = NULL;
    size_t len = 0;
    ph_kek *kek = kek_for(c, d->name, 0, err, errlen);
    int rc = kek ? ph_kek_rewrap(kek, w->blob, w->blob_len, &blob, &len, err, errlen) : -1;
    if (rc == 0)
        rc = ph_keyring_set_wrapping(v, PH_WRAP_PRIMARY, kek->id, blob, len, err, errlen);
    free(blob);
    return rc;
}

static int escrow_one(kctx *c, ph_key_domain *d, ph_dek_version *v, char *err, size_t errlen)
{
    ph_kek *kek = kek_for(c, d->name, 0, err, errlen);
    return kek ? transfer(v, kek, PH_WRAP_PRIMARY, c->escrow, PH_WRAP_ESCROW, err, errlen) : -1;
}

static int recover_one(kctx *c, ph_key_domain *d, ph_dek_version *v, char *err, size_t errlen)
{
    ph_kek *kek = kek_for(c, d->name, 0, err, errlen);
    return kek ? transfer(v, c->escrow, PH_WRAP_ESCROW, kek, PH_WRAP_PRIMARY, err, errlen) : -1;
}

/* rewrap / escrow / recover: change every selected version, save once. */
static int cmd_bulk(kctx *c, int need, version_fn fn, const char *verb, int audit_escrow_kek)
{
    int rc = setup(c, need | WRITE);
    if (rc != 0)
        return rc;
    size_t n = 0;
    if ((rc = for_each_active(c, fn, &n)) != 0)
        return rc;
    if (save(c) != 0)
        return 1;
    rc = audit_selected(c, (audit_escrow_kek ? c->escrow : c->primary)->id);
    printf("%s %zu DEK version(s)\n", verb, n);
    return rc;
}

/* The newest version of a KEK (asking the provider), 0 if it cannot say. */
static unsigned long long current_kek_version(ph_kek *k)
{
    char err[256];
    ph_openbao_key_info ob;
    ph_pkcs11_key_info p11;
    if (strcmp(k->ops->kind, "openbao") == 0)
        return ph_kek_openbao_key_info(k, &ob, err, sizeof err) == 0 ? ob.latest_version : 0;
    if (strcmp(k->ops->kind, "pkcs11") == 0)
        return ph_kek_pkcs11_key_info(k, &p11, err, sizeof err) == 0 ? p11.latest_version : 0;
    return ph_kek_file_current_version(k);
}

static int cmd_rotate_kek(kctx *c)
{
    char err[512];
    int rc = setup(c, NEED_PRIMARY | WRITE);
    if (rc != 0)
        return rc;
    if (ph_kek_rotate(c->primary, err, sizeof err) != 0) {
        audit_admin(c, "error", c->primary->id, NULL, NULL, err, NULL);
        return errorf(c, "%s", err);
    }
    unsigned long long v = current_kek_version(c->primary);
    char detail[64];
    snprintf(detail, sizeof detail, "kek version %llu", v);
    if (audit_admin(c, "ok", c->primary->id, NULL, NULL, NULL, v ? detail : NULL) != 0)
        return 1;
    if (v)
        printf("rotated %s to KEK version %llu; run `phantom keys rewrap` next\n", c->primary->id,
               v);
    else
        printf("rotated %s; run `phantom keys rewrap` next\n", c->primary->id);
    return 0;
}

static int parse_version_arg(const char *s, uint32_t *out)
{
    char *end;
    unsigned long v = s && *s >= '0' && *s <= '9' ? strtoul(s, &end, 10) : 0;
    if (v == 0 || *end || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int cmd_retire(kctx *c)
{
    uint32_t version;
    if (c->nargs != 2 || parse_version_arg(c->args[1], &version) != 0)
        return errorf(c, "usage: phantom keys retire DOMAIN VERSION [--force]") + 1;
    int rc = setup(c, WRITE);
    if (rc != 0)
        return rc;
    const char *domain = c->args[0];
    char why[512];
    ph_retire_check chk = ph_keyring_retire_check(c->kr, domain, version, why, sizeof why);
    ph_dek_version *v = ph_keyring_version(ph_keyring_domain(c->kr, domain), version);
    uint32_t key_id = v ? v->key_id : 0;
    if (chk == PH_RETIRE_IMPOSSIBLE) {
        audit_admin(c, "refused", NULL, domain, v, why, NULL);
        return errorf(c, "%s", why);
    }
    if (chk != PH_RETIRE_OK) {
        fprintf(stderr,
                "%s: %s.\nRetiring destroys every wrapping of this DEK: any value still "
                "encrypted under %s version %u (key id %u) becomes permanently unreadable.\n",
                c->force ? "WARNING" : "refused", why, domain, (unsigned)version, (unsigned)key_id);
        if (!c->force) {
            fprintf(stderr, "Re-run with --force to retire it anyway.\n");
            audit_admin(c, "refused", NULL, domain, v, why, NULL);
            return 1;
        }
    }
    ph_dek_version snapshot = *v; /* version/key id for the audit record */
    if (ph_keyring_retire(c->kr, domain, version, c->force, why, sizeof why) != 0)
        return errorf(c, "%s", why);
    if (save(c) != 0)
        return 1;
    if (audit_admin(c, "ok", NULL, domain, &snapshot, NULL, c->force ? "force" : NULL) != 0)
        return 1;
    printf("retired %s version %u (key id %u)\n", domain, (unsigned)version, (unsigned)key_id);
    return 0;
}

/* Key check value: first 4 bytes of HMAC-SHA256(DEK, "phantom kcv"), hex. */
static int kcv(const uint8_t *dek, char out[9])
{
    unsigned char mac[32];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), dek, PH_DEK_LEN, (const unsigned char *)"phantom kcv", 11, mac, &len))
        return -1;
    ph_hex_encode(mac, 4, out);
    out[8] = '\0';
    OPENSSL_cleanse(mac, sizeof mac);
    return 0;
}

static int check_one(kctx *c, ph_key_domain *d, ph_dek_version *v, char *err, size_t errlen)
{
    const ph_wrapped_dek *w = wrapping_of(v, PH_WRAP_PRIMARY, " (run keys recover)", err, errlen);
    uint8_t *dek = w ? dek_buffer(err, errlen) : NULL;
    if (!dek)
        return -1;
    char kv[9];
    ph_kek *kek = kek_for(c, d->name, 0, err, errlen);
    int rc = kek ? ph_kek_unwrap(kek, w->blob, w->blob_len, dek, err, errlen) : -1;
    if (rc == 0)
        rc = kcv(dek, kv);
    ph_secure_free(dek, PH_DEK_LEN);
    if (rc == 0)
        printf("ok %s version %u (key id %u) kcv=%s\n", d->name, (unsigned)v->version,
               (unsigned)v->key_id, kv);
    return rc;
}

static int cmd_check(kctx *c)
{
    int rc = setup(c, NEED_PRIMARY);
    if (rc != 0)
        return rc;
    size_t n = 0;
    rc = for_each_active(c, check_one, &n);
    audit_admin(c, rc == 0 ? "ok" : "error", c->primary->id, NULL, NULL, NULL, NULL);
    return rc;
}

/* ---- option parsing ------------------------------------------------------------ */

enum { OPT_OUT = 256, OPT_JSON, OPT_FORCE, OPT_NO_ESCROW, OPT_ESCROW, OPT_TENANT, OPT_YES };

static const struct option long_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"out", required_argument, NULL, OPT_OUT},
    {"json", no_argument, NULL, OPT_JSON},
    {"force", no_argument, NULL, OPT_FORCE},
    {"no-escrow", no_argument, NULL, OPT_NO_ESCROW},
    {"escrow", no_argument, NULL, OPT_ESCROW},
    {"tenant", required_argument, NULL, OPT_TENANT},
    {"yes", no_argument, NULL, OPT_YES},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* 0 = run, 1 = help printed, -1 = usage error. */
static int parse_opts(kctx *c, int argc, char **argv)
{
    optind = 1;
    opterr = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", long_opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            c->config_path = optarg;
            break;
        case OPT_OUT:
            c->out = optarg;
            break;
        case OPT_JSON:
            c->json = 1;
            break;
        case OPT_FORCE:
            c->force = 1;
            break;
        case OPT_NO_ESCROW:
            c->no_escrow = 1;
            break;
        case OPT_ESCROW:
            c->escrow_kek = 1;
            break;
        case OPT_TENANT:
            c->tenant = optarg;
            break;
        case OPT_YES:
            c->yes = 1;
            break;
        case 'h':
            return 1;
        default:
            return -1;
        }
    }
    c->args = argv + optind;
    c->nargs = argc - optind;
    return 0;
}

static int dispatch(kctx *c)
{
    const char *s = c->cmd;
    if (strcmp(s, "init-master") == 0)
        return cmd_init_master(c);
    if (strcmp(s, "init-kek") == 0)
        return cmd_init_kek(c);
    if (strcmp(s, "create") == 0)
        return cmd_create_or_rotate(c, 1);
    if (strcmp(s, "rotate") == 0)
        return cmd_create_or_rotate(c, 0);
    if (strcmp(s, "list") == 0)
        return cmd_list(c);
    if (strcmp(s, "rotate-kek") == 0)
        return cmd_rotate_kek(c);
    if (strcmp(s, "rewrap") == 0)
        return cmd_bulk(c, NEED_PRIMARY, rewrap_one, "rewrapped", 0);
    if (strcmp(s, "escrow") == 0)
        return cmd_bulk(c, NEED_PRIMARY | NEED_ESCROW, escrow_one, "escrowed", 1);
    if (strcmp(s, "recover") == 0)
        return cmd_bulk(c, NEED_PRIMARY | NEED_ESCROW, recover_one, "recovered", 0);
    if (strcmp(s, "retire") == 0)
        return cmd_retire(c);
    if (strcmp(s, "check") == 0)
        return cmd_check(c);
    if (strcmp(s, "shred") == 0)
        return cmd_shred(c);
    if (strcmp(s, "probe") == 0)
        return cmd_probe(c);
    fprintf(stderr, "phantom keys: unknown command \"%s\"\n\n", s);
    ph_cmd_keys_usage(stderr);
    return 2;
}

int ph_cmd_keys(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        ph_cmd_keys_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    /* Plaintext keys will be in memory: no core dumps from here on. */
    ph_secure_process_init();
    kctx c = {.cmd = argv[1], .lock_fd = -1};
    int p = parse_opts(&c, argc - 1, argv + 1);
    if (p != 0) {
        ph_cmd_keys_usage(p > 0 ? stdout : stderr);
        return p > 0 ? 0 : 2;
    }
    int rc = dispatch(&c);
    teardown(&c);
    return rc;
}
