/*
 * token_config.c — loads the `tokens:` section; see token_config.h.
 */
#include "token/token_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <yaml.h>

#include "common/err.h"
#include "common/mem.h"
#include "common/yaml_doc.h"

const char *ph_vault_kind_name(ph_vault_kind k)
{
    return k == PH_VAULT_POSTGRES ? "postgres" : "sqlite";
}

void ph_token_config_free(ph_token_config *c)
{
    if (!c)
        return;
    free(c->path);
    if (c->dsn) {
        OPENSSL_cleanse(c->dsn, strlen(c->dsn));
        free(c->dsn);
    }
    free(c);
}

/* The scalar text of n; NULL also for text with an embedded NUL. */
static const char *scalar(const yaml_node_t *n)
{
    const char *v = ph_yaml_scalar(n);
    return v && n->data.scalar.length == strlen(v) ? v : NULL;
}

static int set_string(const ph_yaml_src *src, const yaml_node_t *kn, const yaml_node_t *vn,
                      const char *v, char **slot)
{
    if (*slot)
        return ph_yaml_fail(src, kn, "tokens: \"%s\" is given twice", scalar(kn));
    if (!v || !*v)
        return ph_yaml_fail(src, vn, "tokens: \"%s\" needs a value", scalar(kn));
    if (!(*slot = strdup(v)))
        return ph_errf(src->err, src->errlen, "%s: out of memory", src->name);
    return 0;
}

static int set_cache(const ph_yaml_src *src, const yaml_node_t *vn, const char *v, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long n = v ? strtoul(v, &end, 10) : 0;
    if (!v || !*v || *end || errno || v[0] == '-' || n > PH_TOKEN_MAX_CACHE)
        return ph_yaml_fail(src, vn, "tokens: cache_size must be a number from 0 to %u",
                            PH_TOKEN_MAX_CACHE);
    *out = (unsigned)n;
    return 0;
}

static int set_vault(const ph_yaml_src *src, const yaml_node_t *vn, const char *v,
                     ph_vault_kind *out)
{
    if (v && strcmp(v, "sqlite") == 0)
        *out = PH_VAULT_SQLITE;
    else if (v && (strcmp(v, "postgres") == 0 || strcmp(v, "postgresql") == 0))
        *out = PH_VAULT_POSTGRES;
    else
        return ph_yaml_fail(
            src, vn, "tokens: unknown vault \"%.40s\" (expected sqlite or postgres)", v ? v : "");
    return 0;
}

static int load_pair(const ph_yaml_src *src, ph_token_config *c, const yaml_node_t *kn,
                     const yaml_node_t *vn, int *have_vault)
{
    const char *k = scalar(kn), *v = vn && !ph_yaml_is_null(vn) ? scalar(vn) : NULL;
    if (!k)
        return ph_yaml_fail(src, kn, "tokens: expected a setting name");
    if (strcmp(k, "vault") == 0) {
        if ((*have_vault)++)
            return ph_yaml_fail(src, kn, "tokens: \"vault\" is given twice");
        return set_vault(src, vn, v, &c->vault);
    }
    if (strcmp(k, "path") == 0)
        return set_string(src, kn, vn, v, &c->path);
    if (strcmp(k, "dsn") == 0)
        return set_string(src, kn, vn, v, &c->dsn);
    if (strcmp(k, "cache_size") == 0)
        return set_cache(src, vn, v, &c->cache_size);
    return ph_yaml_fail(src, kn,
                        "tokens: unknown setting \"%.40s\" (expected vault, path, dsn or "
                        "cache_size)",
                        k);
}

/* The chosen vault has what it needs; a DSN libpq parses (never quoted). */
static int validate(const ph_yaml_src *src, const ph_token_config *c)
{
    if (c->vault == PH_VAULT_SQLITE && !c->path)
        return ph_yaml_fail_line(src, c->line,
                                 "tokens: vault sqlite needs `path:` (the vault file)");
    if (c->vault != PH_VAULT_POSTGRES)
        return 0;
    if (!c->dsn)
        return ph_yaml_fail_line(src, c->line,
                                 "tokens: vault postgres needs `dsn:` (a libpq connection string)");
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(c->dsn, &perr);
    if (opts) {
        PQconninfoFree(opts);
        return 0;
    }
    PQfreemem(perr); /* libpq's message quotes the DSN, which may hold a password */
    return ph_yaml_fail_line(src, c->line, "tokens: `dsn` is not a valid libpq connection string");
}

int ph_token_config_load_node(ph_token_config **out, struct yaml_document_s *doc,
                              const struct yaml_node_s *key, const struct yaml_node_s *node,
                              const char *name, char *err, size_t errlen)
{
    ph_yaml_src src = {name ? name : "<config>", err, errlen};
    *out = NULL;
    if (!node || node->type != YAML_MAPPING_NODE)
        return ph_yaml_fail(&src, node ? node : key,
                            "tokens: expected a mapping (vault, path, dsn, cache_size)");
    ph_token_config *c = ph_calloc(1, sizeof *c);
    if (!c)
        return ph_errf(err, errlen, "%s: out of memory", src.name);
    c->vault = PH_VAULT_SQLITE;
    c->cache_size = PH_TOKEN_DEFAULT_CACHE;
    c->line = ph_yaml_line(key);
    int have_vault = 0, rc = 0;
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
         rc == 0 && p < node->data.mapping.pairs.top; p++)
        rc = load_pair(&src, c, yaml_document_get_node(doc, p->key),
                       yaml_document_get_node(doc, p->value), &have_vault);
    if (rc == 0)
        rc = validate(&src, c);
    if (rc != 0) {
        ph_token_config_free(c);
        return -1;
    }
    *out = c;
    return 0;
}
