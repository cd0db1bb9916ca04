/*
 * keys_config.c — loads the `keys:` section of phantom.yaml with libyaml's
 * document API (format and semantics in keys_config.h).
 */
#include "keys/keys_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <yaml.h>

#include "common/err.h"
#include "common/file.h"
#include "common/yaml_doc.h"

static void free_str(char **s)
{
    free(*s);
    *s = NULL;
}

static void free_secret(char **s)
{
    if (*s)
        OPENSSL_cleanse(*s, strlen(*s));
    free_str(s);
}

static int set_str(char **dst, const char *v)
{
    char *c = v ? strdup(v) : NULL;
    if (v && !c)
        return -1;
    free(*dst);
    *dst = c;
    return 0;
}

static int set_secret(char **dst, const char *v)
{
    char *c = v ? strdup(v) : NULL;
    if (v && !c)
        return -1;
    free_secret(dst);
    *dst = c;
    return 0;
}

static void provider_defaults(ph_keys_provider_cfg *p)
{
    memset(p, 0, sizeof *p);
    p->kind = PH_KEK_KIND_FILE;
    p->openbao.timeout_ms = PH_KEYS_DEFAULT_TIMEOUT_MS;
}

/* Fills the default strings that must never be NULL after a load. */
static int provider_fill(ph_keys_provider_cfg *p)
{
    ph_keys_openbao_cfg *o = &p->openbao;
    if ((!o->mount && set_str(&o->mount, PH_KEYS_DEFAULT_MOUNT) != 0) ||
        (!o->kubernetes_jwt_path &&
         set_str(&o->kubernetes_jwt_path, PH_KEYS_DEFAULT_K8S_JWT_PATH) != 0) ||
        (!o->kubernetes_auth_path &&
         set_str(&o->kubernetes_auth_path, PH_KEYS_DEFAULT_K8S_AUTH_PATH) != 0))
        return -1;
    return 0;
}

static void provider_free(ph_keys_provider_cfg *p)
{
    free_str(&p->file.path);
    ph_keys_openbao_cfg *o = &p->openbao;
    free_str(&o->address);
    free_str(&o->mount);
    free_str(&o->key_name);
    free_secret(&o->token);
    free_str(&o->token_file);
    free_str(&o->ca_file);
    free_str(&o->kubernetes_role);
    free_str(&o->kubernetes_jwt_path);
    free_str(&o->kubernetes_auth_path);
    free_str(&o->tenant_key_prefix);
    ph_keys_pkcs11_cfg *k = &p->pkcs11;
    free_str(&k->module);
    free_str(&k->token_label);
    free_secret(&k->pin);
    free_str(&k->pin_file);
    free_str(&k->key_label);
}

void ph_keys_config_defaults(ph_keys_config *kc)
{
    memset(kc, 0, sizeof *kc);
    kc->cache_ttl_s = PH_KEYS_DEFAULT_CACHE_TTL_S;
    provider_defaults(&kc->primary);
    provider_defaults(&kc->escrow);
    kc->escrow.kind = PH_KEK_KIND_NONE;
}

void ph_keys_config_free(ph_keys_config *kc)
{
    if (!kc)
        return;
    free_str(&kc->keyring);
    free_str(&kc->audit_log);
    free_str(&kc->source_path);
    provider_free(&kc->primary);
    provider_free(&kc->escrow);
    memset(kc, 0, sizeof *kc);
}

const char *ph_kek_kind_name(ph_kek_kind kind)
{
    switch (kind) {
    case PH_KEK_KIND_FILE:
        return "file";
    case PH_KEK_KIND_OPENBAO:
        return "openbao";
    case PH_KEK_KIND_PKCS11:
        return "pkcs11";
    default:
        return "none";
    }
}

/* ---- YAML ---------------------------------------------------------------- */

typedef struct {
    ph_keys_config *kc;
    yaml_document_t *doc;
    ph_yaml_src src;
} loader;

/* The scalar value of n, NULL for null; *ok = 0 on a non-scalar or NUL byte. */
static const char *value_of(loader *ld, const yaml_node_t *n, const char *key, int *ok)
{
    const char *v = ph_yaml_scalar(n);
    *ok = 0;
    if (!v)
        return (void)ph_yaml_fail(&ld->src, n, "keys: \"%s\" expects a single value", key), NULL;
    if (n->data.scalar.length != strlen(v))
        return (void)ph_yaml_fail(&ld->src, n, "keys: \"%s\" contains a NUL byte", key), NULL;
    *ok = 1;
    return ph_yaml_is_null(n) ? NULL : v;
}

static int load_string(loader *ld, const yaml_node_t *vn, const char *key, char **dst, int secret)
{
    int ok;
    const char *v = value_of(ld, vn, key, &ok);
    if (!ok)
        return -1;
    if ((secret ? set_secret(dst, v) : set_str(dst, v)) != 0)
        return ph_errf(ld->src.err, ld->src.errlen, "out of memory");
    return 0;
}

static int parse_uint(const char *v, unsigned long max, unsigned long mult, unsigned *out)
{
    char *end;
    errno = 0;
    if (!v || *v < '0' || *v > '9')
        return -1;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || *end || n > max / mult)
        return -1;
    *out = (unsigned)(n * mult);
    return 0;
}

/* "300", "300s", "5m", "1h" → seconds (at most one day). */
static int parse_ttl(const char *v, unsigned *out)
{
    char tmp[32];
    size_t n = v ? strlen(v) : 0;
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, v, n + 1);
    unsigned long mult = 1;
    char last = tmp[n - 1];
    if (last == 's' || last == 'm' || last == 'h') {
        mult = last == 's' ? 1 : last == 'm' ? 60 : 3600;
        tmp[n - 1] = '\0';
    }
    return parse_uint(tmp, 86400, mult, out);
}

static int parse_kind(const char *v, ph_kek_kind *kind)
{
    if (v && strcmp(v, "file") == 0)
        *kind = PH_KEK_KIND_FILE;
    else if (v && strcmp(v, "openbao") == 0)
        *kind = PH_KEK_KIND_OPENBAO;
    else if (v && strcmp(v, "pkcs11") == 0)
        *kind = PH_KEK_KIND_PKCS11;
    else
        return -1;
    return 0;
}

/* Iterates a mapping, refusing duplicate and non-scalar keys. */
typedef int (*pair_fn)(loader *ld, void *target, const char *key, yaml_node_t *kn, yaml_node_t *vn);

static int each_pair(loader *ld, yaml_node_t *map, const char *what, pair_fn fn, void *target)
{
    if (map->type != YAML_MAPPING_NODE)
        return ph_yaml_fail(&ld->src, map, "keys: \"%s\" must be a mapping", what);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(ld->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(ld->doc, p->value);
        const char *k = ph_yaml_scalar(kn);
        if (!k || !vn)
            return ph_yaml_fail(&ld->src, kn ? kn : map, "keys: expected a setting name in \"%s\"",
                                what);
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            const char *other = ph_yaml_scalar(yaml_document_get_node(ld->doc, q->key));
            if (other && strcmp(other, k) == 0)
                return ph_yaml_fail(&ld->src, kn, "keys: duplicate setting \"%.60s\" in \"%s\"", k,
                                    what);
        }
        if (fn(ld, target, k, kn, vn) != 0)
            return -1;
    }
    return 0;
}

static int unknown(loader *ld, yaml_node_t *kn, const char *k, const char *what)
{
    return ph_yaml_fail(&ld->src, kn, "keys: unknown setting \"%.60s\" in \"%s\"", k, what);
}

static int file_pair(loader *ld, void *t, const char *k, yaml_node_t *kn, yaml_node_t *vn)
{
    ph_keys_file_cfg *f = t;
    if (strcmp(k, "path") == 0)
        return load_string(ld, vn, "file.path", &f->path, 0);
    return unknown(ld, kn, k, "file");
}

/* A string setting: its name, where it goes, whether it is a secret. */
typedef struct {
    const char *name;
    char **dst;
    int secret;
} str_setting;

/* Loads setting k into its entry of strs[n]; 1 when k is none of them. */
static int load_named(loader *ld, const yaml_node_t *vn, const char *k, const str_setting *strs,
                      size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(k, strs[i].name) == 0)
            return load_string(ld, vn, k, strs[i].dst, strs[i].secret);
    return 1;
}

/* A Transit key name prefix (the tenant id, which ends with a letter or
 * digit, completes a valid name). NULL (unset) is valid. */
static int valid_key_prefix(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (!s)
        return 1;
    if (n == 0 || n > 64 || !(isalnum((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
            return 0;
    return 1;
}

static int openbao_pair(loader *ld, void *t, const char *k, yaml_node_t *kn, yaml_node_t *vn)
{
    ph_keys_openbao_cfg *o = t;
    const str_setting strs[] = {
        {"address", &o->address, 0},
        {"mount", &o->mount, 0},
        {"key", &o->key_name, 0},
        {"key_name", &o->key_name, 0},
        {"token", &o->token, 1},
        {"token_file", &o->token_file, 0},
        {"ca_file", &o->ca_file, 0},
        {"kubernetes_role", &o->kubernetes_role, 0},
        {"kubernetes_jwt_path", &o->kubernetes_jwt_path, 0},
        {"kubernetes_auth_path", &o->kubernetes_auth_path, 0},
        {"tenant_key_prefix", &o->tenant_key_prefix, 0},
    };
    int rc = load_named(ld, vn, k, strs, sizeof strs / sizeof strs[0]);
    if (rc == 0 && strcmp(k, "tenant_key_prefix") == 0 && !valid_key_prefix(o->tenant_key_prefix))
        return ph_yaml_fail(&ld->src, vn,
                            "keys: openbao.tenant_key_prefix must be 1..64 of A-Z a-z 0-9 _ . -, "
                            "starting with a letter, digit or _");
    if (rc != 1)
        return rc;
    if (strcmp(k, "timeout_ms") == 0) {
        int ok;
        const char *v = value_of(ld, vn, k, &ok);
        if (!ok)
            return -1;
        if (!v)
            o->timeout_ms = PH_KEYS_DEFAULT_TIMEOUT_MS;
        else if (parse_uint(v, 3600000, 1, &o->timeout_ms) != 0 || o->timeout_ms == 0)
            return ph_yaml_fail(&ld->src, vn, "keys: openbao.timeout_ms must be 1..3600000");
        return 0;
    }
    return unknown(ld, kn, k, "openbao");
}

static int pkcs11_pair(loader *ld, void *t, const char *k, yaml_node_t *kn, yaml_node_t *vn)
{
    ph_keys_pkcs11_cfg *p = t;
    const str_setting strs[] = {
        {"module", &p->module, 0},     {"token_label", &p->token_label, 0}, {"pin", &p->pin, 1},
        {"pin_file", &p->pin_file, 0}, {"key_label", &p->key_label, 0},
    };
    int rc = load_named(ld, vn, k, strs, sizeof strs / sizeof strs[0]);
    return rc != 1 ? rc : unknown(ld, kn, k, "pkcs11");
}

/* Settings shared by `keys:` and `keys.escrow:`; 1 = not a provider key. */
static int provider_pair(loader *ld, ph_keys_provider_cfg *p, const char *k, yaml_node_t *vn)
{
    if (strcmp(k, "provider") == 0) {
        int ok;
        const char *v = value_of(ld, vn, k, &ok);
        if (!ok)
            return -1;
        if (parse_kind(v, &p->kind) != 0)
            return ph_yaml_fail(&ld->src, vn, "keys: provider must be file, openbao or pkcs11");
        return 0;
    }
    if (strcmp(k, "file") == 0)
        return each_pair(ld, vn, "file", file_pair, &p->file);
    if (strcmp(k, "openbao") == 0)
        return each_pair(ld, vn, "openbao", openbao_pair, &p->openbao);
    if (strcmp(k, "pkcs11") == 0)
        return each_pair(ld, vn, "pkcs11", pkcs11_pair, &p->pkcs11);
    return 1;
}

/* "refuse" | "serve-unprotected" (null: the default, refuse). */
static int load_policy(loader *ld, yaml_node_t *vn, ph_keys_unavailable_policy *out)
{
    int ok;
    const char *v = value_of(ld, vn, "when_unavailable", &ok);
    if (!ok)
        return -1;
    if (!v || strcmp(v, "refuse") == 0)
        *out = PH_KEYS_UNAVAILABLE_REFUSE;
    else if (strcmp(v, "serve-unprotected") == 0)
        *out = PH_KEYS_UNAVAILABLE_SERVE_UNPROTECTED;
    else
        return ph_yaml_fail(&ld->src, vn,
                            "keys: when_unavailable must be refuse or serve-unprotected");
    return 0;
}

static int escrow_pair(loader *ld, void *t, const char *k, yaml_node_t *kn, yaml_node_t *vn)
{
    int rc = provider_pair(ld, t, k, vn);
    return rc == 1 ? unknown(ld, kn, k, "escrow") : rc;
}

static int keys_pair(loader *ld, void *t, const char *k, yaml_node_t *kn, yaml_node_t *vn)
{
    ph_keys_config *kc = t;
    if (strcmp(k, "keyring") == 0)
        return load_string(ld, vn, k, &kc->keyring, 0);
    if (strcmp(k, "audit_log") == 0)
        return load_string(ld, vn, k, &kc->audit_log, 0);
    if (strcmp(k, "cache_ttl") == 0) {
        int ok;
        const char *v = value_of(ld, vn, k, &ok);
        if (!ok)
            return -1;
        if (parse_ttl(v, &kc->cache_ttl_s) != 0 || kc->cache_ttl_s == 0)
            return ph_yaml_fail(&ld->src, vn, "keys: cache_ttl must be 1s..24h (N, Ns, Nm or Nh)");
        return 0;
    }
    if (strcmp(k, "when_unavailable") == 0)
        return load_policy(ld, vn, &kc->when_unavailable);
    if (strcmp(k, "escrow") == 0) {
        if (ph_yaml_is_null(vn))
            return 0;
        kc->has_escrow = 1;
        kc->escrow.kind = PH_KEK_KIND_FILE;
        return each_pair(ld, vn, "escrow", escrow_pair, &kc->escrow);
    }
    int rc = provider_pair(ld, &kc->primary, k, vn);
    return rc == 1 ? unknown(ld, kn, k, "keys") : rc;
}

static int load_root(loader *ld, yaml_node_t *root)
{
    if (root->type != YAML_MAPPING_NODE)
        return 0; /* src/config reports a malformed top level */
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(ld->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(ld->doc, p->value);
        const char *k = ph_yaml_scalar(kn);
        if (!k || !vn || strcmp(k, "keys") != 0)
            continue;
        if (ld->kc->present)
            return ph_yaml_fail(&ld->src, kn, "duplicate \"keys\" section");
        ld->kc->present = 1;
        ld->kc->line = ph_yaml_line(kn);
        if (ph_yaml_is_null(vn))
            continue;
        if (each_pair(ld, vn, "keys", keys_pair, ld->kc) != 0)
            return -1;
    }
    return 0;
}

static int finish(ph_keys_config *kc, char *err, size_t errlen)
{
    if (provider_fill(&kc->primary) != 0 || provider_fill(&kc->escrow) != 0)
        return ph_errf(err, errlen, "out of memory");
    if (kc->keyring && !kc->audit_log) {
        size_t n = strlen(kc->keyring) + sizeof ".audit.jsonl";
        kc->audit_log = malloc(n);
        if (!kc->audit_log)
            return ph_errf(err, errlen, "out of memory");
        snprintf(kc->audit_log, n, "%s.audit.jsonl", kc->keyring);
    }
    return 0;
}

int ph_keys_config_load_string(ph_keys_config *kc, const char *name, const char *doc, size_t len,
                               char *err, size_t errlen)
{
    yaml_document_t ydoc;
    if (ph_yaml_load(&ydoc, doc, len, name, err, errlen) != 0)
        return -1;
    loader ld = {kc, &ydoc, {name, err, errlen}};
    yaml_node_t *root = yaml_document_get_root_node(&ydoc);
    int rc = root ? load_root(&ld, root) : 0;
    yaml_document_delete(&ydoc);
    if (rc == 0)
        rc = finish(kc, err, errlen);
    if (rc == 0 && set_str(&kc->source_path, name) != 0)
        rc = ph_errf(err, errlen, "out of memory");
    return rc;
}

int ph_keys_config_load_file(ph_keys_config *kc, const char *path, char *err, size_t errlen)
{
    char *data;
    size_t len;
    /* The file may hold a token or PIN: every copy of it is wiped. */
    if (ph_file_read(path, PH_YAML_FILE_MAX, PH_FILE_SECRET, &data, &len, err, errlen) != 0)
        return -1;
    int rc = ph_keys_config_load_string(kc, path, data, len, err, errlen);
    OPENSSL_cleanse(data, len);
    free(data);
    return rc;
}

/* ---- validation ---------------------------------------------------------- */

/* "FILE:LINE: keys: <pre><what> is required" unless v is set. */
static int need(const ph_keys_config *kc, const char *pre, const char *what, const char *v,
                char *err, size_t errlen)
{
    if (v && *v)
        return 0;
    return ph_errf(err, errlen, "%s:%zu: keys: %s%s is required",
                   kc->source_path ? kc->source_path : "-", kc->line, pre, what);
}

static int validate_provider(const ph_keys_config *kc, const ph_keys_provider_cfg *p,
                             const char *pre, char *err, size_t errlen)
{
    const char *src = kc->source_path ? kc->source_path : "-";
    const ph_keys_openbao_cfg *o = &p->openbao;
    const ph_keys_pkcs11_cfg *k = &p->pkcs11;
    switch (p->kind) {
    case PH_KEK_KIND_FILE:
        return need(kc, pre, "file.path", p->file.path, err, errlen);
    case PH_KEK_KIND_OPENBAO:
        if (need(kc, pre, "openbao.address", o->address, err, errlen) != 0 ||
            need(kc, pre, "openbao.key", o->key_name, err, errlen) != 0)
            return -1;
        if (!o->token && !o->token_file && !o->kubernetes_role)
            return ph_errf(err, errlen,
                           "%s:%zu: keys: %sopenbao needs token, token_file or kubernetes_role",
                           src, kc->line, pre);
        return 0;
    case PH_KEK_KIND_PKCS11:
        if (need(kc, pre, "pkcs11.module", k->module, err, errlen) != 0 ||
            need(kc, pre, "pkcs11.token_label", k->token_label, err, errlen) != 0 ||
            need(kc, pre, "pkcs11.key_label", k->key_label, err, errlen) != 0)
            return -1;
        if (!k->pin && !k->pin_file)
            return ph_errf(err, errlen, "%s:%zu: keys: %spkcs11 needs pin or pin_file", src,
                           kc->line, pre);
        return 0;
    default:
        return ph_errf(err, errlen, "%s:%zu: keys: no %sprovider selected", src, kc->line, pre);
    }
}

int ph_keys_config_validate(const ph_keys_config *kc, char *err, size_t errlen)
{
    if (!kc->present)
        return ph_errf(err, errlen, "%s: no \"keys:\" section",
                       kc->source_path ? kc->source_path : "-");
    if (need(kc, "", "keyring", kc->keyring, err, errlen) != 0)
        return -1;
    if (validate_provider(kc, &kc->primary, "", err, errlen) != 0)
        return -1;
    if (kc->has_escrow && validate_provider(kc, &kc->escrow, "escrow.", err, errlen) != 0)
        return -1;
    return 0;
}
