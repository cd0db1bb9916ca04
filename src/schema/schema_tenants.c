/*
 * schema_tenants.c — the `tenants:` section of phantom.yaml (see
 * ph_schema_load_tenants in schema.h).
 *
 * Owns: which protected tables are tenant-keyed and which plaintext column
 * names a row's tenant, what a session reads from another tenant's value
 * (foreign_values), and the checks that keep the tenant model consistent:
 * every table named is configured in encrypt:, a tenant column is never a
 * protected column, and columns sharing a key domain are all tenant-keyed
 * or all not (a join across them must compare ciphertexts of one key).
 * Errors are "NAME:LINE: reason".
 */
#include "schema/schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "common/err.h"
#include "common/yaml_doc.h"

typedef struct {
    yaml_document_t *doc;
    ph_yaml_src src;
    ph_schema *s;
} tloader;

static const char *scalar_of(const yaml_node_t *n)
{
    const char *v = ph_yaml_scalar(n);
    return v && n->data.scalar.length == strlen(v) ? v : NULL;
}

/* An identifier as the catalog spells it: unquoted folded to lower case,
 * "quoted" kept. */
static int ident(const char *in, char *out, size_t outlen)
{
    size_t n = 0;
    if (*in == '"') {
        for (in++; *in && !(in[0] == '"' && in[1] != '"'); in++) {
            if (in[0] == '"')
                in++;
            if (n + 1 >= outlen)
                return -1;
            out[n++] = *in;
        }
        if (*in != '"' || in[1])
            return -1;
    } else {
        for (; *in; in++) {
            unsigned char c = (unsigned char)*in;
            int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80 ||
                     (n > 0 && ((c >= '0' && c <= '9') || c == '$'));
            if (!ok || n + 1 >= outlen)
                return -1;
            out[n++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
    }
    if (n == 0 || n > PH_SCHEMA_MAX_IDENT)
        return -1;
    out[n] = '\0';
    return 0;
}

/* The configured table a `tables:` key names ("t" or "schema.t"). */
static ph_schema_table *find_named(tloader *ld, const yaml_node_t *kn)
{
    const char *k = scalar_of(kn);
    char a[PH_SCHEMA_MAX_IDENT + 2], b[PH_SCHEMA_MAX_IDENT + 2], first[2 * PH_SCHEMA_MAX_IDENT + 8];
    const char *dot = k ? strchr(k, '.') : NULL;
    int ambiguous = 0;
    const ph_schema_table *t = NULL;
    if (k && dot && (size_t)(dot - k) < sizeof first) {
        memcpy(first, k, (size_t)(dot - k));
        first[dot - k] = '\0';
        if (ident(first, a, sizeof a) == 0 && ident(dot + 1, b, sizeof b) == 0)
            t = ph_schema_find_table(ld->s, a, b, &ambiguous);
    } else if (k && ident(k, b, sizeof b) == 0) {
        t = ph_schema_find_table(ld->s, NULL, b, &ambiguous);
    }
    if (!t)
        ph_yaml_fail(&ld->src, kn,
                     ambiguous ? "tenants: table \"%.64s\" is ambiguous (name its schema)"
                               : "tenants: table \"%.64s\" is not in the encrypt section",
                     k ? k : "");
    return (ph_schema_table *)t;
}

static int set_column(tloader *ld, ph_schema_table *t, const yaml_node_t *vn)
{
    char name[PH_SCHEMA_MAX_IDENT + 2];
    const char *v = scalar_of(vn);
    if (!v || ident(v, name, sizeof name) != 0)
        return ph_yaml_fail(&ld->src, vn, "tenants: %s: invalid tenant column name \"%.64s\"",
                            t->name, v ? v : "");
    const ph_schema_column *c = ph_schema_find_column(t, name);
    if (c)
        return ph_yaml_fail(&ld->src, vn,
                            "tenants: %s: the tenant column %s is protected (line %zu); it must be "
                            "a plaintext column",
                            t->name, name, c->line);
    if (!(t->tenant_column = strdup(name)))
        return ph_errf(ld->src.err, ld->src.errlen, "%s: out of memory", ld->src.name);
    return 0;
}

/* `{column: x}`, `{tenant: required}` or both. */
static int table_options(tloader *ld, ph_schema_table *t, const yaml_node_t *map)
{
    int required = 0;
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *kn = yaml_document_get_node(ld->doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(ld->doc, pr->value);
        const char *k = scalar_of(kn), *v = scalar_of(vn);
        if (k && strcmp(k, "column") == 0) {
            if (t->tenant_column)
                return ph_yaml_fail(&ld->src, kn, "tenants: %s: `column` given twice", t->name);
            if (set_column(ld, t, vn) != 0)
                return -1;
        } else if (k && strcmp(k, "tenant") == 0) {
            if (!v || strcasecmp(v, "required") != 0)
                return ph_yaml_fail(&ld->src, vn ? vn : kn,
                                    "tenants: %s: `tenant` must be `required`", t->name);
            required = 1;
        } else {
            return ph_yaml_fail(&ld->src, kn ? kn : map,
                                "tenants: %s: unknown option \"%.40s\" (expected column or tenant)",
                                t->name, k ? k : "");
        }
    }
    if (!required && !t->tenant_column)
        return ph_yaml_fail(&ld->src, map,
                            "tenants: %s: expected `column: NAME` or `tenant: required`", t->name);
    return 0;
}

static int load_tables(tloader *ld, const yaml_node_t *node)
{
    if (node->type != YAML_MAPPING_NODE)
        return ph_yaml_fail(&ld->src, node, "tenants: `tables` must map table names to options");
    for (yaml_node_pair_t *pr = node->data.mapping.pairs.start; pr < node->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *kn = yaml_document_get_node(ld->doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(ld->doc, pr->value);
        ph_schema_table *t = find_named(ld, kn);
        if (!t)
            return -1;
        if (t->tenant_keyed)
            return ph_yaml_fail(&ld->src, kn, "tenants: table %s is listed twice (line %zu)",
                                t->name, t->tenant_line);
        t->tenant_keyed = 1;
        t->tenant_line = ph_yaml_line(kn);
        int rc;
        if (vn && vn->type == YAML_MAPPING_NODE)
            rc = table_options(ld, t, vn);
        else if (vn && vn->type == YAML_SCALAR_NODE && !ph_yaml_is_null(vn))
            rc = set_column(ld, t, vn);
        else
            rc = ph_yaml_fail(&ld->src, vn ? vn : kn,
                              "tenants: %s: expected a tenant column name or a mapping "
                              "({column: NAME} or {tenant: required})",
                              t->name);
        if (rc != 0)
            return -1;
        ld->s->has_tenants = 1;
    }
    return 0;
}

/* Columns sharing a key domain are all tenant-keyed or all not. */
static int check_domains(tloader *ld)
{
    const ph_schema *s = ld->s;
    for (size_t i = 0; i < s->ntables; i++)
        for (size_t j = 0; j < s->tables[i]->ncolumns; j++) {
            const ph_schema_column *a = s->tables[i]->columns[j];
            for (size_t k = 0; k < s->ntables; k++)
                for (size_t m = 0; m < s->tables[k]->ncolumns; m++) {
                    const ph_schema_column *b = s->tables[k]->columns[m];
                    if (s->tables[i]->tenant_keyed && !s->tables[k]->tenant_keyed &&
                        strcmp(a->key_domain, b->key_domain) == 0)
                        return ph_yaml_fail_line(
                            &ld->src, s->tables[i]->tenant_line,
                            "tenants: %s is tenant-keyed but %s (line %zu) shares its key domain "
                            "%s and is not; make both tables tenant-keyed or give them separate "
                            "keys",
                            a->qualified, b->qualified, b->line, a->key_domain);
                }
        }
    return 0;
}

static int foreign_values(tloader *ld, const yaml_node_t *vn)
{
    const char *v = scalar_of(vn);
    if (v && strcasecmp(v, "error") == 0)
        ld->s->foreign_values = PH_FOREIGN_ERROR;
    else if (v && strcasecmp(v, "null") == 0) /* plain or quoted */
        ld->s->foreign_values = PH_FOREIGN_NULL;
    else
        return ph_yaml_fail(&ld->src, vn, "tenants: foreign_values must be error or null");
    return 0;
}

static int load_section(tloader *ld, const yaml_node_t *node)
{
    if (node->type != YAML_MAPPING_NODE)
        return ph_yaml_fail(&ld->src, node,
                            "the tenants section must be a mapping (foreign_values, tables)");
    const yaml_node_t *tables = NULL;
    for (yaml_node_pair_t *pr = node->data.mapping.pairs.start; pr < node->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *kn = yaml_document_get_node(ld->doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(ld->doc, pr->value);
        const char *k = scalar_of(kn);
        if (k && strcmp(k, "tables") == 0 && vn && !tables) {
            tables = vn;
        } else if (k && strcmp(k, "foreign_values") == 0 && vn) {
            if (foreign_values(ld, vn) != 0)
                return -1;
        } else {
            return ph_yaml_fail(&ld->src, kn ? kn : node,
                                "tenants: unknown or repeated setting \"%.40s\" (expected "
                                "foreign_values or tables)",
                                k ? k : "");
        }
    }
    if (tables && !ph_yaml_is_null(tables) && load_tables(ld, tables) != 0)
        return -1;
    return check_domains(ld);
}

int ph_schema_load_tenants(ph_schema *s, struct yaml_document_s *doc,
                           const struct yaml_node_s *root, const char *name, char *err,
                           size_t errlen)
{
    tloader ld = {doc, {name ? name : "<config>", err, errlen}, s};
    if (!root || root->type != YAML_MAPPING_NODE)
        return 0;
    const yaml_node_t *section = NULL;
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *kn = yaml_document_get_node(doc, pr->key);
        const char *k = scalar_of(kn);
        if (!k || strcmp(k, "tenants") != 0)
            continue;
        if (section)
            return ph_yaml_fail(&ld.src, kn, "`tenants` is given twice");
        section = yaml_document_get_node(doc, pr->value);
    }
    if (!section || ph_yaml_is_null(section))
        return 0;
    return load_section(&ld, section);
}

int ph_schema_column_tenant_keyed(const ph_schema_column *c)
{
    /* token columns too: their vault records are keyed by the tenant's domain */
    return c && c->table && c->table->tenant_keyed;
}
