/*
 * schema_yaml.c — loads the `encrypt:` section (or the db-encrypt annotation
 * document) into a ph_schema with libyaml's document API.
 *
 * Owns: both spellings of a protected column (seed short form: `- email`,
 * `- email: deterministic`; long form: `- column: x` with mode/type/key/
 * format), SQL identifier rules for names, key-domain resolution, and
 * "NAME:LINE: reason" diagnostics for every rejected entry.
 */
#include "schema/schema.h"

#include "common/bytes.h"
#include "common/err.h"
#include "common/yaml_doc.h"
#include "schema/schema_internal.h"
#include "token/token_config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "common/mem.h"

typedef struct {
    yaml_document_t *doc;
    ph_yaml_src src;
    ph_schema *s;
} loader;

/* One column as written, before validation. */
typedef struct {
    const yaml_node_t *at; /* node the column is reported at */
    const char *name;
    const yaml_node_t *name_node;
    const char *mode, *type, *key, *format;
    const yaml_node_t *mode_node, *type_node, *key_node, *format_node;
} col_spec;

/* Key references are resolved after every table is loaded. */
typedef struct {
    ph_schema_column *col;
    char *ref;
    size_t line;
} key_ref;

typedef struct {
    key_ref *v;
    size_t n, cap;
} key_refs;

/* The scalar text of n; NULL also for text with an embedded NUL. */
static const char *scalar(const yaml_node_t *n)
{
    const char *v = ph_yaml_scalar(n);
    return v && n->data.scalar.length == strlen(v) ? v : NULL;
}

/* ---- SQL identifiers -------------------------------------------------------- */

static int ident_start(unsigned char c)
{
    return isalpha(c) || c == '_' || c >= 0x80;
}

static int ident_char(unsigned char c)
{
    return ident_start(c) || isdigit(c) || c == '$';
}

/* Parses one identifier at *p into out (catalog spelling); advances *p. */
static int parse_ident(const char **pp, char *out, size_t outlen)
{
    const char *p = *pp;
    size_t n = 0;
    if (*p == '"') {
        for (p++;; p++) {
            if (!*p)
                return -1;
            if (*p == '"') {
                if (p[1] != '"')
                    break;
                p++;
            }
            if (n + 1 >= outlen)
                return -1;
            out[n++] = *p;
        }
        p++;
    } else {
        if (!ident_start((unsigned char)*p))
            return -1;
        for (; ident_char((unsigned char)*p); p++) {
            if (n + 1 >= outlen)
                return -1;
            out[n++] = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
        }
    }
    if (n == 0 || n > PH_SCHEMA_MAX_IDENT)
        return -1;
    out[n] = '\0';
    *pp = p;
    return 0;
}

/* Splits "a", "a.b" or "a.b.c" (each part quoted or not) into parts. */
static int parse_qualified(const char *s, char parts[3][PH_SCHEMA_MAX_IDENT + 2], int *nparts)
{
    int n = 0;
    const char *p = s;
    while (*p == ' ')
        p++;
    for (;;) {
        if (n == 3 || parse_ident(&p, parts[n], sizeof parts[n]) != 0)
            return -1;
        n++;
        if (*p != '.')
            break;
        p++;
    }
    while (*p == ' ')
        p++;
    if (*p)
        return -1;
    *nparts = n;
    return 0;
}

/* ---- building the model ----------------------------------------------------- */

static char *qualified_name(const char *schema, const char *table, const char *column)
{
    int pub = strcmp(schema, PH_SCHEMA_DEFAULT_SCHEMA) == 0;
    size_t n = strlen(schema) + strlen(table) + strlen(column) + 3;
    char *q = malloc(n);
    if (!q)
        return NULL;
    if (pub)
        snprintf(q, n, "%s.%s", table, column);
    else
        snprintf(q, n, "%s.%s.%s", schema, table, column);
    return q;
}

static int parse_mode(const char *v, ph_enc_mode *m)
{
    static const struct {
        const char *name;
        ph_enc_mode mode;
    } modes[] = {
        {"randomized", PH_MODE_RANDOMIZED},
        {"deterministic", PH_MODE_DETERMINISTIC},
        {"ope", PH_MODE_OPE},
        {"order-preserving", PH_MODE_OPE},
        {"token", PH_MODE_TOKEN},
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcasecmp(v, modes[i].name) == 0) {
            *m = modes[i].mode;
            return 0;
        }
    return -1;
}

static int parse_format(const char *v, ph_token_format *f)
{
    static const struct {
        const char *name;
        ph_token_format format;
    } formats[] = {
        {"opaque", PH_TOKEN_OPAQUE}, {"random", PH_TOKEN_OPAQUE}, {"digits", PH_TOKEN_DIGITS},
        {"alnum", PH_TOKEN_ALNUM},   {"card", PH_TOKEN_CARD},     {"email", PH_TOKEN_EMAIL},
    };
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (strcasecmp(v, formats[i].name) == 0) {
            *f = formats[i].format;
            return 0;
        }
    return -1;
}

static int add_column_ptr(ph_schema_table *t, ph_schema_column *c)
{
    ph_schema_column **grown = realloc(t->columns, (t->ncolumns + 1) * sizeof *grown);
    if (!grown)
        return -1;
    grown[t->ncolumns++] = c;
    t->columns = grown;
    return 0;
}

static int add_table_ptr(ph_schema *s, ph_schema_table *t)
{
    ph_schema_table **grown = realloc(s->tables, (s->ntables + 1) * sizeof *grown);
    if (!grown)
        return -1;
    grown[s->ntables++] = t;
    s->tables = grown;
    return 0;
}

static int push_key_ref(key_refs *kr, ph_schema_column *col, const char *ref, size_t line)
{
    key_ref *grown = ph_array_grow(kr->v, kr->n, &kr->cap, sizeof *grown, 8);
    if (!grown)
        return -1;
    kr->v = grown;
    char *copy = strdup(ref);
    if (!copy)
        return -1;
    key_ref *r = &kr->v[kr->n++];
    r->col = col;
    r->ref = copy;
    r->line = line;
    return 0;
}

static int check_mode_type(loader *ld, const col_spec *cs, const ph_schema_column *c)
{
    if (c->mode == PH_MODE_OPE && !ph_schema_ope_supports(c))
        return ph_yaml_fail(&ld->src, cs->type_node ? cs->type_node : cs->at,
                            "%s: mode ope needs an integer, date, timestamp or numeric(p,s) type, "
                            "not %s (set `type:`)",
                            c->qualified, ph_logical_type_name(c->type));
    if (c->mode == PH_MODE_TOKEN && !ph_logical_type_compatible(c->type, PH_TYPE_TEXT))
        return ph_yaml_fail(&ld->src, cs->at, "%s: mode token needs a text type, not %s",
                            c->qualified, ph_logical_type_name(c->type));
    if (cs->format && c->mode != PH_MODE_TOKEN)
        return ph_yaml_fail(&ld->src, cs->format_node, "%s: `format` applies to mode token only",
                            c->qualified);
    return 0;
}

static int fill_column(loader *ld, const col_spec *cs, ph_schema_column *c)
{
    c->mode = PH_MODE_RANDOMIZED;
    c->type = PH_TYPE_TEXT;
    c->typmod_a = c->typmod_b = -1;
    if (cs->mode && parse_mode(cs->mode, &c->mode) != 0)
        return ph_yaml_fail(
            &ld->src, cs->mode_node,
            "%s: unknown mode \"%.40s\" (expected randomized, deterministic, ope or "
            "token)",
            c->qualified, cs->mode);
    if (cs->type && ph_logical_type_parse(cs->type, &c->type, &c->typmod_a, &c->typmod_b) != 0)
        return ph_yaml_fail(&ld->src, cs->type_node,
                            "%s: unknown type \"%.40s\" (expected text, varchar, int2, int4, int8, "
                            "numeric(p,s), date, timestamp, timestamptz, bool, json, jsonb or "
                            "bytea)",
                            c->qualified, cs->type);
    if (cs->format && parse_format(cs->format, &c->format) != 0)
        return ph_yaml_fail(&ld->src, cs->format_node,
                            "%s: unknown token format \"%.40s\" (expected opaque, digits, alnum, "
                            "card or email)",
                            c->qualified, cs->format);
    return check_mode_type(ld, cs, c);
}

static int add_column(loader *ld, ph_schema_table *t, const col_spec *cs, key_refs *kr)
{
    char name[PH_SCHEMA_MAX_IDENT + 2];
    const char *p = cs->name;
    if (!p || parse_ident(&p, name, sizeof name) != 0 || *p)
        return ph_yaml_fail(&ld->src, cs->name_node ? cs->name_node : cs->at,
                            "invalid column name \"%.64s\" in %s", cs->name ? cs->name : "",
                            t->name);
    const ph_schema_column *dup = ph_schema_find_column(t, name);
    if (dup)
        return ph_yaml_fail(&ld->src, cs->at, "duplicate column %s (first at line %zu)",
                            dup->qualified, dup->line);
    ph_schema_column *c = ph_calloc(1, sizeof *c);
    if (!c || !(c->name = strdup(name)) ||
        !(c->qualified = qualified_name(t->schema, t->name, name))) {
        if (c) {
            free(c->name);
            free(c);
        }
        return ph_errf(ld->src.err, ld->src.errlen, "%s: out of memory", ld->src.name);
    }
    c->table = t;
    c->line = ph_yaml_line(cs->at);
    if (add_column_ptr(t, c) != 0) {
        free(c->qualified);
        free(c->name);
        free(c);
        return ph_errf(ld->src.err, ld->src.errlen, "%s: out of memory", ld->src.name);
    }
    if (fill_column(ld, cs, c) != 0)
        return -1;
    if (cs->key && push_key_ref(kr, c, cs->key, ph_yaml_line(cs->key_node)) != 0)
        return ph_errf(ld->src.err, ld->src.errlen, "%s: out of memory", ld->src.name);
    return 0;
}

/* Reads the attributes of a long-form mapping (column/mode/type/key/format). */
static int read_attrs(loader *ld, const yaml_node_t *map, col_spec *cs, int allow_column)
{
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *kn = yaml_document_get_node(ld->doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(ld->doc, pr->value);
        const char *k = scalar(kn), *v = scalar(vn);
        if (!k)
            return ph_yaml_fail(&ld->src, kn ? kn : map, "expected an attribute name");
        if (!v || ph_yaml_is_null(vn))
            return ph_yaml_fail(&ld->src, vn ? vn : kn, "attribute \"%.40s\" needs a value", k);
        const char **slot = NULL;
        const yaml_node_t **slot_node = NULL;
        if (allow_column && strcmp(k, "column") == 0) {
            slot = &cs->name;
            slot_node = &cs->name_node;
        } else if (strcmp(k, "mode") == 0) {
            slot = &cs->mode;
            slot_node = &cs->mode_node;
        } else if (strcmp(k, "type") == 0) {
            slot = &cs->type;
            slot_node = &cs->type_node;
        } else if (strcmp(k, "key") == 0) {
            slot = &cs->key;
            slot_node = &cs->key_node;
        } else if (strcmp(k, "format") == 0) {
            slot = &cs->format;
            slot_node = &cs->format_node;
        } else {
            return ph_yaml_fail(&ld->src, kn,
                                "unknown column attribute \"%.40s\" (expected %smode, type, key or "
                                "format)",
                                k, allow_column ? "column, " : "");
        }
        if (*slot)
            return ph_yaml_fail(&ld->src, kn, "attribute \"%.40s\" given twice", k);
        *slot = v;
        *slot_node = vn;
    }
    return 0;
}

/* `name`, `name: mode`, `name: {mode: ..}` or `{column: name, mode: ..}`. */
static int load_item(loader *ld, ph_schema_table *t, const yaml_node_t *item, key_refs *kr)
{
    col_spec cs = {.at = item};
    if (item->type == YAML_SCALAR_NODE) {
        cs.name = scalar(item);
        cs.name_node = item;
        return add_column(ld, t, &cs, kr);
    }
    if (item->type != YAML_MAPPING_NODE)
        return ph_yaml_fail(&ld->src, item, "a column entry must be a name or a mapping");
    yaml_node_pair_t *first = item->data.mapping.pairs.start;
    size_t npairs = (size_t)(item->data.mapping.pairs.top - first);
    yaml_node_t *k0 = npairs ? yaml_document_get_node(ld->doc, first->key) : NULL;
    const char *k0s = scalar(k0);
    int long_form = 0;
    for (yaml_node_pair_t *pr = first; pr < item->data.mapping.pairs.top; pr++) {
        const char *k = scalar(yaml_document_get_node(ld->doc, pr->key));
        if (k && strcmp(k, "column") == 0)
            long_form = 1;
    }
    if (long_form) {
        if (read_attrs(ld, item, &cs, 1) != 0)
            return -1;
        return add_column(ld, t, &cs, kr);
    }
    if (npairs != 1 || !k0s)
        return ph_yaml_fail(&ld->src, item,
                            "a column entry is `name`, `name: mode` or a mapping with `column:`");
    yaml_node_t *vn = yaml_document_get_node(ld->doc, first->value);
    cs.name = k0s;
    cs.name_node = k0;
    if (vn && vn->type == YAML_MAPPING_NODE) {
        if (read_attrs(ld, vn, &cs, 0) != 0)
            return -1;
    } else if (vn && !ph_yaml_is_null(vn)) {
        if (!(cs.mode = scalar(vn)))
            return ph_yaml_fail(&ld->src, vn, "expected a mode for column \"%.64s\"", k0s);
        cs.mode_node = vn;
    }
    return add_column(ld, t, &cs, kr);
}

static int new_table(loader *ld, const yaml_node_t *kn, ph_schema_table **out)
{
    char parts[3][PH_SCHEMA_MAX_IDENT + 2];
    int n;
    const char *k = scalar(kn);
    if (!k || parse_qualified(k, parts, &n) != 0 || n > 2)
        return ph_yaml_fail(&ld->src, kn,
                            "invalid table name \"%.64s\" (expected table or schema.table)",
                            k ? k : "");
    const char *schema = n == 2 ? parts[0] : PH_SCHEMA_DEFAULT_SCHEMA;
    const char *table = parts[n - 1];
    const ph_schema_table *dup = ph_schema_find_table(ld->s, schema, table, NULL);
    if (dup)
        return ph_yaml_fail(&ld->src, kn, "table %s.%s is listed twice (first at line %zu)", schema,
                            table, dup->line);
    ph_schema_table *t = ph_calloc(1, sizeof *t);
    if (!t || !(t->schema = strdup(schema)) || !(t->name = strdup(table)) ||
        add_table_ptr(ld->s, t) != 0) {
        ph_schema_table_free(t);
        return ph_errf(ld->src.err, ld->src.errlen, "%s: out of memory", ld->src.name);
    }
    t->line = ph_yaml_line(kn);
    *out = t;
    return 0;
}

static int load_table(loader *ld, const yaml_node_t *kn, const yaml_node_t *vn, key_refs *kr)
{
    ph_schema_table *t = NULL;
    if (new_table(ld, kn, &t) != 0)
        return -1;
    if (!vn || ph_yaml_is_null(vn))
        return ph_yaml_fail(&ld->src, kn, "table %s lists no columns", t->name);
    if (vn->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top;
             it++) {
            yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
            if (!item || load_item(ld, t, item, kr) != 0)
                return item ? -1 : ph_yaml_fail(&ld->src, vn, "invalid column entry");
        }
    } else if (vn->type == YAML_MAPPING_NODE) {
        /* `table: {email: deterministic, full_name: randomized}` */
        for (yaml_node_pair_t *pr = vn->data.mapping.pairs.start; pr < vn->data.mapping.pairs.top;
             pr++) {
            yaml_node_t *cn = yaml_document_get_node(ld->doc, pr->key);
            yaml_node_t *cv = yaml_document_get_node(ld->doc, pr->value);
            col_spec cs = {.at = cn, .name = scalar(cn), .name_node = cn};
            if (cv && cv->type == YAML_MAPPING_NODE) {
                if (read_attrs(ld, cv, &cs, 0) != 0)
                    return -1;
            } else if (cv && !ph_yaml_is_null(cv)) {
                if (!(cs.mode = scalar(cv)))
                    return ph_yaml_fail(&ld->src, cv, "expected a mode");
                cs.mode_node = cv;
            }
            if (add_column(ld, t, &cs, kr) != 0)
                return -1;
        }
    } else {
        return ph_yaml_fail(&ld->src, vn, "table %s: expected a list of columns", t->name);
    }
    if (t->ncolumns == 0)
        return ph_yaml_fail(&ld->src, kn, "table %s lists no columns", t->name);
    return 0;
}

/* ---- key domains ------------------------------------------------------------ */

static const ph_schema_column *find_ref(const ph_schema *s, const char *ref)
{
    char parts[3][PH_SCHEMA_MAX_IDENT + 2];
    int n;
    if (parse_qualified(ref, parts, &n) != 0 || n < 2)
        return NULL;
    const char *schema = n == 3 ? parts[0] : PH_SCHEMA_DEFAULT_SCHEMA;
    return ph_schema_lookup(s, schema, parts[n - 2], parts[n - 1]);
}

static const key_ref *ref_of(const key_refs *kr, const ph_schema_column *c)
{
    for (size_t i = 0; i < kr->n; i++)
        if (kr->v[i].col == c)
            return &kr->v[i];
    return NULL;
}

static int resolve_key(loader *ld, const key_ref *r, const key_refs *kr)
{
    /* Follow chains (a -> b -> c) to the root; a cycle has no root. */
    const ph_schema_column *target = r->col;
    for (size_t steps = 0;; steps++) {
        const key_ref *kref = ref_of(kr, target);
        if (!kref)
            break;
        const ph_schema_column *next = find_ref(ld->s, kref->ref);
        if (!next)
            return ph_yaml_fail_line(
                &ld->src, kref->line,
                "%s: key \"%.64s\" does not name a configured column (expected "
                "table.column or schema.table.column)",
                kref->col->qualified, kref->ref);
        if (next == target)
            break; /* a column naming itself */
        if (steps > kr->n)
            return ph_yaml_fail_line(&ld->src, r->line, "%s: key references form a cycle",
                                     r->col->qualified);
        target = next;
    }
    if (target->mode != r->col->mode)
        return ph_yaml_fail_line(
            &ld->src, r->line,
            "%s: key domain %s is %s but this column is %s; columns sharing a key "
            "must share a mode",
            r->col->qualified, target->qualified, ph_enc_mode_name(target->mode),
            ph_enc_mode_name(r->col->mode));
    if (!ph_logical_type_compatible(target->type, r->col->type))
        return ph_yaml_fail_line(
            &ld->src, r->line,
            "%s: key domain %s has type %s but this column is %s; columns sharing "
            "a key must share a type",
            r->col->qualified, target->qualified, ph_logical_type_name(target->type),
            ph_logical_type_name(r->col->type));
    free(r->col->key_domain);
    r->col->key_domain = strdup(target->qualified);
    if (!r->col->key_domain)
        return ph_errf(ld->src.err, ld->src.errlen, "%s: out of memory", ld->src.name);
    return 0;
}

static int resolve_keys(loader *ld, const key_refs *kr)
{
    for (size_t i = 0; i < ld->s->ntables; i++) {
        ph_schema_table *t = ld->s->tables[i];
        for (size_t j = 0; j < t->ncolumns; j++)
            if (!(t->columns[j]->key_domain = strdup(t->columns[j]->qualified)))
                return ph_errf(ld->src.err, ld->src.errlen, "%s: out of memory", ld->src.name);
    }
    for (size_t i = 0; i < kr->n; i++)
        if (resolve_key(ld, &kr->v[i], kr) != 0)
            return -1;
    return 0;
}

/* ---- entry points ----------------------------------------------------------- */

static int load_section(loader *ld, const yaml_node_t *node)
{
    if (!node || ph_yaml_is_null(node))
        return 0;
    if (node->type != YAML_MAPPING_NODE)
        return ph_yaml_fail(&ld->src, node,
                            "the encrypt section must map table names to lists of columns");
    key_refs kr = {0};
    int rc = 0;
    for (yaml_node_pair_t *pr = node->data.mapping.pairs.start;
         rc == 0 && pr < node->data.mapping.pairs.top; pr++)
        rc = load_table(ld, yaml_document_get_node(ld->doc, pr->key),
                        yaml_document_get_node(ld->doc, pr->value), &kr);
    if (rc == 0)
        rc = resolve_keys(ld, &kr);
    for (size_t i = 0; i < kr.n; i++)
        free(kr.v[i].ref);
    free(kr.v);
    return rc;
}

int ph_schema_load_node(ph_schema **out, struct yaml_document_s *doc,
                        const struct yaml_node_s *node, const char *name, char *err, size_t errlen)
{
    *out = NULL;
    loader ld = {doc, {name ? name : "<config>", err, errlen}, ph_schema_new_empty()};
    if (!ld.s)
        return ph_errf(err, errlen, "%s: out of memory", ld.src.name);
    if (load_section(&ld, node) != 0) {
        ph_schema_free(ld.s);
        return -1;
    }
    ph_schema_index(ld.s);
    *out = ld.s;
    return 0;
}

/* The value (and in *key the key node) of the top-level section `name`. */
static const yaml_node_t *find_section(loader *ld, const yaml_node_t *root, const char *name,
                                       const yaml_node_t **key, int *bad)
{
    const yaml_node_t *found = NULL;
    *bad = 0;
    if (!root || ph_yaml_is_null(root))
        return NULL;
    if (root->type != YAML_MAPPING_NODE) {
        *bad = ph_yaml_fail(&ld->src, root, "the configuration must be a mapping of settings");
        return NULL;
    }
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *kn = yaml_document_get_node(ld->doc, pr->key);
        const char *k = scalar(kn);
        if (!k || strcmp(k, name) != 0)
            continue;
        if (found) {
            *bad = ph_yaml_fail(&ld->src, kn, "`%s` is given twice", name);
            return NULL;
        }
        found = yaml_document_get_node(ld->doc, pr->value);
        if (key)
            *key = kn;
    }
    return found;
}

/* The `tokens:` section (the vault of mode token columns) into s->tokens. */
static int load_tokens(loader *ld, const yaml_node_t *root, ph_schema *s)
{
    int bad = 0;
    const yaml_node_t *key = NULL;
    const yaml_node_t *node = find_section(ld, root, "tokens", &key, &bad);
    if (bad)
        return -1;
    if (!key)
        return 0;
    return ph_token_config_load_node(&s->tokens, ld->doc, key, node, ld->src.name, ld->src.err,
                                     ld->src.errlen);
}

static int load_buffer(ph_schema **out, const char *data, size_t len, const char *name, char *err,
                       size_t errlen, int whole_config)
{
    yaml_document_t doc;
    *out = NULL;
    name = name ? name : "<config>";
    if (ph_yaml_load(&doc, data, len, name, err, errlen) != 0)
        return -1;
    loader ld = {&doc, {name, err, errlen}, NULL};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    int bad = 0;
    const yaml_node_t *section = root;
    if (whole_config)
        section = find_section(&ld, root, "encrypt", NULL, &bad);
    int rc = bad ? -1 : ph_schema_load_node(out, &doc, section, name, err, errlen);
    if (rc == 0 && whole_config &&
        (rc = ph_schema_load_tenants(*out, &doc, root, name, err, errlen)) != 0) {
        ph_schema_free(*out);
        *out = NULL;
    }
    if (rc == 0 && whole_config && load_tokens(&ld, root, *out) != 0) {
        ph_schema_free(*out);
        *out = NULL;
        rc = -1;
    }
    yaml_document_delete(&doc);
    return rc;
}

int ph_schema_load_buffer(ph_schema **out, const char *data, size_t len, const char *name,
                          char *err, size_t errlen)
{
    return load_buffer(out, data, len, name, err, errlen, 1);
}

int ph_schema_load_section_buffer(ph_schema **out, const char *data, size_t len, const char *name,
                                  char *err, size_t errlen)
{
    return load_buffer(out, data, len, name, err, errlen, 0);
}
