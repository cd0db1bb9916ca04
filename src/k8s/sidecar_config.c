/*
 * sidecar_config.c — the operator's base config and the per-pod
 * phantom.yaml of the sidecar (see sidecar_config.h).
 */
#include "k8s/sidecar_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <yaml.h>

#include "common/bytes.h"
#include "common/err.h"
#include "common/file.h"
#include "common/yaml_doc.h"
#include "config/config.h"
#include "keys/keys_config.h"

/* A sample annotation for the start-up self test of the base config. */
static const char sample_encrypt[] = "probe_table:\n  - probe_column: deterministic\n";

/* ---- schema comparison ------------------------------------------------------ */

static int str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int column_same(const ph_schema_column *a, const ph_schema_column *b)
{
    return str_eq(a->name, b->name) && a->mode == b->mode && a->type == b->type &&
           a->typmod_a == b->typmod_a && a->typmod_b == b->typmod_b && a->format == b->format &&
           str_eq(a->key_domain, b->key_domain);
}

int ph_k8s_schema_same(const ph_schema *a, const ph_schema *b)
{
    if (a->ntables != b->ntables)
        return 0;
    for (size_t i = 0; i < a->ntables; i++) {
        const ph_schema_table *ta = a->tables[i], *tb = b->tables[i];
        if (!str_eq(ta->schema, tb->schema) || !str_eq(ta->name, tb->name) ||
            ta->ncolumns != tb->ncolumns)
            return 0;
        for (size_t j = 0; j < ta->ncolumns; j++)
            if (!column_same(ta->columns[j], tb->columns[j]))
                return 0;
    }
    return 1;
}

/* ---- the base config -------------------------------------------------------- */

/* Top-level keys the webhook sets per pod. */
static const char *const per_pod_keys[] = {"encrypt", "listen", "target", "db-target", "metrics"};

static int check_top_keys(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
    yaml_document_t doc;
    if (ph_yaml_load(&doc, text, len, name, err, errlen) != 0)
        return -1;
    ph_yaml_src src = {name, err, errlen};
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    int rc = 0;
    if (root && !ph_yaml_is_null(root) &&
        (root->type != YAML_MAPPING_NODE || root->data.mapping.style == YAML_FLOW_MAPPING_STYLE))
        rc = ph_yaml_fail(&src, root, "the proxy config must be a block mapping of settings");
    for (yaml_node_pair_t *p = rc == 0 && root && root->type == YAML_MAPPING_NODE
                                   ? root->data.mapping.pairs.start
                                   : NULL;
         p && p < root->data.mapping.pairs.top && rc == 0; p++) {
        const yaml_node_t *kn = yaml_document_get_node(&doc, p->key);
        const char *k = ph_yaml_scalar(kn);
        for (size_t i = 0; k && i < sizeof per_pod_keys / sizeof per_pod_keys[0]; i++)
            if (strcmp(k, per_pod_keys[i]) == 0)
                rc = ph_yaml_fail(&src, kn,
                                  "\"%s\" is set per pod by the webhook (annotations, "
                                  "--proxy-port, --health-port); remove it from the proxy config",
                                  k);
    }
    yaml_document_delete(&doc);
    return rc;
}

static int check_proxy_settings(const char *text, size_t len, const char *name, char *err,
                                size_t errlen)
{
    ph_config cfg;
    ph_config_defaults(&cfg);
    int rc = ph_config_load_buffer(&cfg, text, len, name, err, errlen);
    char why[256];
    if (rc == 0 && (ph_config_set(&cfg, "target", "database.invalid:5432", why, sizeof why) != 0 ||
                    ph_config_validate(&cfg, why, sizeof why) != 0))
        rc = ph_errf(err, errlen, "%s: %s", name, why);
    ph_config_free(&cfg);
    return rc;
}

static int check_provider(const ph_keys_provider_cfg *p, const char *which, const char *name,
                          char *err, size_t errlen)
{
    if (p->kind == PH_KEK_KIND_OPENBAO && p->openbao.token)
        return ph_errf(err, errlen,
                       "%s: keys%s.openbao.token: a literal token would be copied into every "
                       "pod's annotations; use token_file (from --keys-secret) or "
                       "kubernetes_role",
                       name, which);
    if (p->kind == PH_KEK_KIND_PKCS11 && p->pkcs11.pin)
        return ph_errf(err, errlen,
                       "%s: keys%s.pkcs11.pin: a literal PIN would be copied into every pod's "
                       "annotations; use pin_file (from --keys-secret)",
                       name, which);
    return 0;
}

static int check_keys(ph_sidecar_opts *o, const char *text, size_t len, const char *name, char *err,
                      size_t errlen)
{
    ph_keys_config kc;
    ph_keys_config_defaults(&kc);
    int rc = ph_keys_config_load_string(&kc, name, text, len, err, errlen);
    if (rc == 0 && kc.present)
        rc = ph_keys_config_validate(&kc, err, errlen);
    if (rc == 0 && kc.present)
        rc = check_provider(&kc.primary, "", name, err, errlen);
    if (rc == 0 && kc.present && kc.has_escrow)
        rc = check_provider(&kc.escrow, ".escrow", name, err, errlen);
    if (rc == 0 && kc.present && kc.primary.kind == PH_KEK_KIND_FILE)
        rc = ph_errf(err, errlen,
                     "%s: keys.provider file: a master key mounted from a Secret is owned by root "
                     "and the proxy (uid %d) refuses a key file it does not own; use openbao "
                     "(kubernetes_role) or pkcs11",
                     name, PH_K8S_UID);
    size_t sl = strlen(PH_K8S_STATE_DIR "/");
    if (rc == 0 && kc.present &&
        (!kc.audit_log || strncmp(kc.audit_log, PH_K8S_STATE_DIR "/", sl) != 0 ||
         strstr(kc.audit_log, "/../")))
        rc = ph_errf(err, errlen,
                     "%s: keys.audit_log must be a file under " PH_K8S_STATE_DIR
                     "/ (the sidecar's only writable directory), e.g. " PH_K8S_STATE_DIR
                     "/audit.jsonl",
                     name);
    if (rc == 0)
        o->base_has_keys = kc.present;
    ph_keys_config_free(&kc);
    return rc;
}

int ph_sidecar_set_base(ph_sidecar_opts *o, const char *text, size_t len, const char *name,
                        char *err, size_t errlen)
{
    if (len > PH_K8S_BASE_MAX)
        return ph_errf(err, errlen,
                       "%s: larger than %u KiB (it is copied into every pod's annotations, "
                       "256 KiB in all)",
                       name, PH_K8S_BASE_MAX / 1024);
    json_t *utf8 = json_stringn(text, len); /* it travels in a JSON string */
    if (!utf8 || memchr(text, '\0', len)) {
        json_decref(utf8);
        return ph_errf(err, errlen, "%s: not UTF-8 text, or contains a NUL byte", name);
    }
    json_decref(utf8);
    if (check_top_keys(text, len, name, err, errlen) != 0 ||
        check_proxy_settings(text, len, name, err, errlen) != 0 ||
        check_keys(o, text, len, name, err, errlen) != 0)
        return -1;
    char *copy = malloc(len + 1);
    if (!copy)
        return ph_errf(err, errlen, "%s: out of memory", name);
    memcpy(copy, text, len);
    copy[len] = '\0';
    free(o->base_config);
    o->base_config = copy;

    /* Self test: a sample annotation must survive being appended. */
    ph_schema *sample = NULL;
    char why[512];
    int rc = ph_schema_load_section_buffer(&sample, sample_encrypt, sizeof sample_encrypt - 1,
                                           "sample", why, sizeof why);
    char *composed = rc == 0 ? ph_sidecar_config(o, sample_encrypt, sizeof sample_encrypt - 1,
                                                 sample, why, sizeof why)
                             : NULL;
    ph_schema_free(sample);
    if (!composed) {
        ph_sidecar_opts_free(o);
        return ph_errf(err, errlen, "%s: cannot be combined with a pod's settings: %s", name, why);
    }
    free(composed);
    return 0;
}

int ph_sidecar_load_base(ph_sidecar_opts *o, const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    if (ph_file_read(path, PH_K8S_BASE_MAX, 0, &text, &len, err, errlen) != 0)
        return -1;
    int rc = ph_sidecar_set_base(o, text, len, path, err, errlen);
    free(text);
    return rc;
}

/* ---- composing ---------------------------------------------------------------- */

/* A line that is only a YAML document start ("---", maybe a comment). */
static int is_doc_start(const char *line, size_t n)
{
    if (n < 3 || memcmp(line, "---", 3) != 0)
        return 0;
    size_t i = 3;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    return i == n || line[i] == '#';
}

/* Appends text indented by two spaces under `encrypt:`; \r\n, \r and \n all
 * end a line. A leading document start line and directives are dropped. */
static int append_indented(ph_buf *b, const char *text, size_t len)
{
    int header = 1; /* before the first content line: directives and "---" */
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && text[e] != '\n' && text[e] != '\r')
            e++;
        const char *line = text + i;
        size_t n = e - i, lead = 0;
        while (lead < n && (line[lead] == ' ' || line[lead] == '\t'))
            lead++;
        int skip = 0;
        if (header && n > 0 && line[0] == '%') {
            skip = 1;
        } else if (header && is_doc_start(line, n)) {
            skip = 1;
            header = 0;
        } else if (header && lead < n && line[lead] != '#') {
            header = 0;
        }
        if (!skip && ((n && ph_buf_append(b, "  ", 2) != 0) || ph_buf_append(b, line, n) != 0 ||
                      ph_buf_append(b, "\n", 1) != 0))
            return -1;
        if (e + 1 < len && text[e] == '\r' && text[e + 1] == '\n')
            i = e + 2;
        else
            i = e < len ? e + 1 : e;
    }
    return 0;
}

static int compose(ph_buf *b, const ph_sidecar_opts *o, const char *encrypt, size_t len,
                   int with_encrypt)
{
    if (ph_buf_printf(b,
                      "# phantom.yaml of the %s sidecar, written by `phantom webhook` from the\n"
                      "# operator's proxy config and the pod's db-encrypt annotation.\n",
                      PH_K8S_CONTAINER) != 0)
        return -1;
    if (o->base_config && *o->base_config) {
        size_t n = strlen(o->base_config);
        if (ph_buf_append(b, o->base_config, n) != 0 ||
            (o->base_config[n - 1] != '\n' && ph_buf_append(b, "\n", 1) != 0))
            return -1;
    }
    if (o->health_port &&
        ph_buf_printf(b, "metrics:\n  listen: \"0.0.0.0:%u\"\n", o->health_port) != 0)
        return -1;
    if (with_encrypt &&
        (ph_buf_printf(b, "encrypt:\n") != 0 || append_indented(b, encrypt, len) != 0))
        return -1;
    return ph_buf_append(b, "", 1); /* NUL-terminate */
}

/* Parses the composed text as the proxy will, and compares. */
static int verify(const char *text, size_t len, const ph_schema *expected, char *err, size_t errlen)
{
    char why[512];
    ph_config cfg;
    ph_config_defaults(&cfg);
    int rc = ph_config_load_buffer(&cfg, text, len, "sidecar config", why, sizeof why);
    ph_config_free(&cfg);
    ph_schema *got = NULL;
    if (rc == 0)
        rc = ph_schema_load_buffer(&got, text, len, "sidecar config", why, sizeof why);
    if (rc == 0 && expected && !ph_k8s_schema_same(got, expected))
        rc = ph_errf(why, sizeof why, "it reads differently once embedded");
    if (rc == 0 && !expected && got->ntables != 0)
        rc = ph_errf(why, sizeof why, "protected columns appeared");
    ph_schema_free(got);
    if (rc != 0)
        return ph_errf(err, errlen,
                       "the document cannot be embedded in the sidecar's config unchanged (%s); "
                       "write it as a plain block mapping without document markers",
                       why);
    return 0;
}

char *ph_sidecar_config(const ph_sidecar_opts *o, const char *encrypt, size_t len,
                        const ph_schema *expected, char *err, size_t errlen)
{
    ph_buf b = {0};
    int with_encrypt = encrypt && expected && expected->ntables > 0;
    if (compose(&b, o, encrypt, len, with_encrypt) != 0) {
        ph_buf_free(&b);
        ph_errf(err, errlen, "out of memory");
        return NULL;
    }
    if (verify((const char *)b.data, b.len - 1, with_encrypt ? expected : NULL, err, errlen) != 0) {
        ph_buf_free(&b);
        return NULL;
    }
    return (char *)b.data; /* owned by the caller now */
}
