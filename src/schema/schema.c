/*
 * schema.c — the encryption schema model: lookups, mode and type names,
 * type spellings, and freeing. The YAML loader lives in schema_yaml.c.
 */
#include "schema/schema.h"
#include "schema/schema_internal.h"
#include "token/token_config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/mem.h"

static const char *const mode_names[] = {"randomized", "deterministic", "ope", "token"};

const char *ph_enc_mode_name(ph_enc_mode m)
{
    return (unsigned)m < sizeof mode_names / sizeof mode_names[0] ? mode_names[m] : "?";
}

static const char *const type_names[] = {
    "text",      "varchar",     "int2", "int4", "int8",  "numeric", "date",
    "timestamp", "timestamptz", "bool", "json", "jsonb", "bytea",
};

const char *ph_logical_type_name(ph_logical_type t)
{
    return (unsigned)t < sizeof type_names / sizeof type_names[0] ? type_names[t] : "?";
}

/* Every spelling the config accepts, and the catalog names (pg_type.typname
 * and the pg_catalog.* names the parser produces for SQL-standard types). */
static const struct {
    const char *name;
    ph_logical_type type;
} type_spellings[] = {
    {"text", PH_TYPE_TEXT},
    {"varchar", PH_TYPE_VARCHAR},
    {"character varying", PH_TYPE_VARCHAR},
    {"int2", PH_TYPE_INT2},
    {"smallint", PH_TYPE_INT2},
    {"int4", PH_TYPE_INT4},
    {"int", PH_TYPE_INT4},
    {"integer", PH_TYPE_INT4},
    {"int8", PH_TYPE_INT8},
    {"bigint", PH_TYPE_INT8},
    {"numeric", PH_TYPE_NUMERIC},
    {"decimal", PH_TYPE_NUMERIC},
    {"date", PH_TYPE_DATE},
    {"timestamp", PH_TYPE_TIMESTAMP},
    {"timestamp without time zone", PH_TYPE_TIMESTAMP},
    {"timestamptz", PH_TYPE_TIMESTAMPTZ},
    {"timestamp with time zone", PH_TYPE_TIMESTAMPTZ},
    {"bool", PH_TYPE_BOOL},
    {"boolean", PH_TYPE_BOOL},
    {"json", PH_TYPE_JSON},
    {"jsonb", PH_TYPE_JSONB},
    {"bytea", PH_TYPE_BYTEA},
};

/* Parses "(n)" or "(p,s)" with optional blanks; returns 0 on success. */
static int parse_typmods(const char *p, int32_t *a, int32_t *b)
{
    long v[2] = {-1, -1};
    int n = 0;
    if (*p++ != '(')
        return -1;
    for (;;) {
        while (*p == ' ')
            p++;
        if (!isdigit((unsigned char)*p) || n == 2)
            return -1;
        char *end;
        v[n] = strtol(p, &end, 10);
        if (v[n] > 1000 || end - p > 4)
            return -1;
        n++;
        p = end;
        while (*p == ' ')
            p++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == ')' && p[1] == '\0')
            break;
        return -1;
    }
    *a = (int32_t)v[0];
    *b = (int32_t)v[1];
    return 0;
}

int ph_logical_type_parse(const char *s, ph_logical_type *type, int32_t *typmod_a,
                          int32_t *typmod_b)
{
    char buf[64];
    size_t n = 0;
    const char *paren = NULL;
    int space = 0;
    /* Collapse blanks, fold case, split off the "(...)" modifier. */
    for (const char *p = s; *p; p++) {
        if (*p == '(') {
            paren = p;
            break;
        }
        if (*p == ' ' || *p == '\t') {
            space = n > 0;
            continue;
        }
        if (n + 2 >= sizeof buf)
            return -1;
        if (space)
            buf[n++] = ' ';
        space = 0;
        buf[n++] = (char)tolower((unsigned char)*p);
    }
    buf[n] = '\0';
    int32_t a = -1, b = -1;
    if (paren && parse_typmods(paren, &a, &b) != 0)
        return -1;
    for (size_t i = 0; i < sizeof type_spellings / sizeof type_spellings[0]; i++) {
        if (strcmp(buf, type_spellings[i].name) != 0)
            continue;
        ph_logical_type t = type_spellings[i].type;
        int mods_ok = t == PH_TYPE_NUMERIC                                   ? 1
                      : t == PH_TYPE_VARCHAR                                 ? b < 0
                      : (t == PH_TYPE_TIMESTAMP || t == PH_TYPE_TIMESTAMPTZ) ? b < 0 && a <= 6
                                                                             : a < 0;
        if (!mods_ok || (t == PH_TYPE_NUMERIC && (a == 0 || (b >= 0 && b > a))))
            return -1;
        *type = t;
        *typmod_a = a;
        *typmod_b = b;
        return 0;
    }
    return -1;
}

int ph_logical_type_from_catalog(const char *typname, ph_logical_type *type)
{
    for (size_t i = 0; i < sizeof type_spellings / sizeof type_spellings[0]; i++)
        if (strcmp(typname, type_spellings[i].name) == 0 && !strchr(typname, ' ')) {
            *type = type_spellings[i].type;
            return 0;
        }
    return -1;
}

static int text_family(ph_logical_type t)
{
    return t == PH_TYPE_TEXT || t == PH_TYPE_VARCHAR;
}

int ph_logical_type_compatible(ph_logical_type a, ph_logical_type b)
{
    return a == b || (text_family(a) && text_family(b));
}

int ph_schema_ope_supports(const ph_schema_column *c)
{
    switch (c->type) {
    case PH_TYPE_INT2:
    case PH_TYPE_INT4:
    case PH_TYPE_INT8:
    case PH_TYPE_DATE:
    case PH_TYPE_TIMESTAMP:
    case PH_TYPE_TIMESTAMPTZ:
        return 1;
    case PH_TYPE_NUMERIC:
        return c->typmod_b >= 0 && c->typmod_b <= 18;
    default:
        return 0;
    }
}

const ph_schema_table *ph_schema_find_table(const ph_schema *s, const char *schema,
                                            const char *name, int *ambiguous)
{
    const ph_schema_table *found = NULL;
    if (ambiguous)
        *ambiguous = 0;
    if (!s || !name)
        return NULL;
    for (size_t i = 0; i < s->ntables; i++) {
        const ph_schema_table *t = s->tables[i];
        if (strcmp(t->name, name) != 0 || (schema && strcmp(t->schema, schema) != 0))
            continue;
        if (found) {
            if (ambiguous)
                *ambiguous = 1;
            return NULL;
        }
        found = t;
    }
    return found;
}

const ph_schema_column *ph_schema_find_column(const ph_schema_table *t, const char *column)
{
    if (!t || !column)
        return NULL;
    for (size_t i = 0; i < t->ncolumns; i++)
        if (strcmp(t->columns[i]->name, column) == 0)
            return t->columns[i];
    return NULL;
}

const ph_schema_column *ph_schema_lookup(const ph_schema *s, const char *schema, const char *table,
                                         const char *column)
{
    const ph_schema_table *t =
        ph_schema_find_table(s, schema ? schema : PH_SCHEMA_DEFAULT_SCHEMA, table, NULL);
    return ph_schema_find_column(t, column);
}

ph_schema *ph_schema_new_empty(void)
{
    return ph_calloc(1, sizeof(ph_schema));
}

void ph_schema_index(ph_schema *s)
{
    memset(s->first_byte, 0, sizeof s->first_byte);
    s->max_name_len = 0;
    for (size_t i = 0; i < s->ntables; i++) {
        const char *n = s->tables[i]->name;
        s->first_byte[(unsigned char)tolower((unsigned char)n[0])] = 1;
        s->first_byte[(unsigned char)toupper((unsigned char)n[0])] = 1;
        if (strlen(n) > s->max_name_len)
            s->max_name_len = strlen(n);
    }
}

static void column_free(ph_schema_column *c)
{
    if (!c)
        return;
    free(c->name);
    free(c->key_domain);
    free(c->qualified);
    free(c);
}

void ph_schema_table_free(ph_schema_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->ncolumns; i++)
        column_free(t->columns[i]);
    free(t->columns);
    free(t->schema);
    free(t->name);
    free(t->tenant_column);
    free(t);
}

void ph_schema_free(ph_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->ntables; i++)
        ph_schema_table_free(s->tables[i]);
    free(s->tables);
    ph_token_config_free(s->tokens);
    free(s);
}
