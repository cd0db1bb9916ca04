/*
 * schema.h — the encryption schema: which columns of which tables are
 * protected, with which mode, logical type and key domain.
 *
 * Owns: the in-memory model of the `encrypt:` section of phantom.yaml (also
 * the `phantom.cloudcondom.io/db-encrypt` annotation document), its loader
 * (schema_yaml.c) and lookups by (schema, table, column). A schema is
 * immutable once loaded and may be shared by every worker thread; reload
 * builds a new one.
 *
 * Names follow SQL identifier rules: an unquoted name in the config is folded
 * to lower case, a name written in double quotes ("Customers") is kept as is,
 * so every name stored here is the name as the catalog spells it. A table
 * without a schema is in `public`.
 */
#ifndef PHANTOM_SCHEMA_H
#define PHANTOM_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#define PH_SCHEMA_DEFAULT_SCHEMA "public"
#define PH_SCHEMA_MAX_IDENT      63 /* NAMEDATALEN - 1 */

typedef enum {
    PH_MODE_RANDOMIZED = 0, /* AES-256-GCM: store and fetch, IS [NOT] NULL */
    PH_MODE_DETERMINISTIC,  /* AES-256-SIV: + equality, GROUP BY, DISTINCT, equi-join */
    PH_MODE_OPE,            /* order-preserving: + ranges, ORDER BY */
    PH_MODE_TOKEN,          /* token vault: equality via token lookup */
} ph_enc_mode;

/* The column's type as the application sees it (stored upstream as bytea). */
typedef enum {
    PH_TYPE_TEXT = 0,
    PH_TYPE_VARCHAR,
    PH_TYPE_INT2,
    PH_TYPE_INT4,
    PH_TYPE_INT8,
    PH_TYPE_NUMERIC,
    PH_TYPE_DATE,
    PH_TYPE_TIMESTAMP,
    PH_TYPE_TIMESTAMPTZ,
    PH_TYPE_BOOL,
    PH_TYPE_JSON,
    PH_TYPE_JSONB,
    PH_TYPE_BYTEA,
} ph_logical_type;
/* char(n) is not offered (its blank-padding semantics would differ once
 * encrypted), nor types the crypto layer has no canonical encoding for. */

/* Token formats (mode token only); src/token/format.h makes the tokens. */
typedef enum {
    PH_TOKEN_OPAQUE = 0, /* "tok_" + 22 base62 characters (default) */
    PH_TOKEN_DIGITS,     /* same length, digits only */
    PH_TOKEN_ALNUM,      /* same length and character classes */
    PH_TOKEN_CARD,       /* card number: keep last 4 digits, Luhn-valid */
    PH_TOKEN_EMAIL,      /* random local part, the domain kept */
} ph_token_format;
#define PH_TOKEN_RANDOM PH_TOKEN_OPAQUE /* "random", the name of the first release */

struct ph_schema_table;

typedef struct ph_schema_column {
    char *name;
    ph_enc_mode mode;
    ph_logical_type type;
    int32_t typmod_a; /* varchar length, numeric precision or timestamp precision; -1 if none */
    int32_t typmod_b; /* numeric scale; -1 if none */
    ph_token_format format;
    char *key_domain; /* "table.column" (or "schema.table.column" outside public) of the
                         column whose key this one shares; its own name by default */
    char *qualified;  /* display name: "table.column", or "schema.table.column" */
    const struct ph_schema_table *table;
    size_t line; /* 1-based line in the config, for diagnostics */
} ph_schema_column;

typedef struct ph_schema_table {
    char *schema; /* "public" when the config names none */
    char *name;
    ph_schema_column **columns;
    size_t ncolumns;
    size_t line;
    /* Tenants (the `tenants:` section, schema_tenants.c): a tenant-keyed
     * table's protected values are encrypted under the DEKs of the row's
     * tenant (key domains "tenant:<T>/<key_domain>", keys/keyring.h). */
    int tenant_keyed;
    char *tenant_column; /* plaintext column naming the row's tenant, or NULL */
    size_t tenant_line;  /* where the tenants: section names the table */
} ph_schema_table;

/* What a session reads from another tenant's value of a tenant-keyed column. */
typedef enum {
    PH_FOREIGN_ERROR = 0, /* an error (default) */
    PH_FOREIGN_NULL,      /* NULL */
} ph_foreign_values;

struct ph_token_config;

typedef struct ph_schema {
    ph_schema_table **tables;
    size_t ntables;
    int has_tenants; /* some table is tenant-keyed */
    ph_foreign_values foreign_values;
    /* The `tokens:` section (src/token/token_config.h) of the document the
     * schema came from, NULL when it has none; owned by the schema. */
    struct ph_token_config *tokens;
    /* Fast-path index: bytes that can start a protected table name (ASCII
     * folded to lower case), and the longest name. */
    uint8_t first_byte[256];
    size_t max_name_len;
} ph_schema;

/*
 * Loads the `encrypt:` section of a whole phantom.yaml document held in
 * data[0..len). A document without `encrypt:` (or with an empty one) yields
 * an empty schema. On error returns -1, *out is NULL and err holds
 * "NAME:LINE: reason" (always NUL-terminated).
 */
int ph_schema_load_buffer(ph_schema **out, const char *data, size_t len, const char *name,
                          char *err, size_t errlen);

struct yaml_document_s;
struct yaml_node_s;

/*
 * The `tenants:` section of a whole phantom.yaml (called by
 * ph_schema_load_buffer once the encrypt: section is loaded into s):
 *
 *   tenants:
 *     foreign_values: error        # error (default) | null: what a session
 *                                  # reads from another tenant's value
 *     tables:
 *       customers:
 *         column: tenant_id        # the row's tenant: a plaintext column
 *       notes:
 *         tenant: required         # no tenant column: the session's tenant
 *       orders: tenant_id          # short for {column: tenant_id}
 *
 * Every table named must be in the encrypt: section; a tenant column must
 * not be a protected column; columns sharing a key domain must be all
 * tenant-keyed or all not. Marks the tables (tenant_keyed, tenant_column)
 * and sets s->has_tenants / s->foreign_values. 0, or -1 with
 * "NAME:LINE: reason".
 */
int ph_schema_load_tenants(ph_schema *s, struct yaml_document_s *doc,
                           const struct yaml_node_s *root, const char *name, char *err,
                           size_t errlen);

/* 1 when the column's values use its tenant's keys: a column of a
 * tenant-keyed table, except a token column (its token vault records keep
 * the table's key domain). */
int ph_schema_column_tenant_keyed(const ph_schema_column *c);

/* Same for a document that *is* the encrypt section (the db-encrypt
 * annotation: a mapping of table -> columns). */
int ph_schema_load_section_buffer(ph_schema **out, const char *data, size_t len, const char *name,
                                  char *err, size_t errlen);

/* Same for a node of an already composed libyaml document (the value of the
 * `encrypt:` key); NULL node = empty schema. */
struct yaml_document_s;
struct yaml_node_s;
int ph_schema_load_node(ph_schema **out, struct yaml_document_s *doc,
                        const struct yaml_node_s *node, const char *name, char *err, size_t errlen);

/* An empty schema (no protected column); NULL on OOM. */
ph_schema *ph_schema_new_empty(void);

void ph_schema_free(ph_schema *s);

/*
 * Finds a protected table. schema NULL means "unqualified in SQL": the table
 * must then be unique by name among all configured schemas (returns NULL and
 * sets *ambiguous when two schemas configure that name). Names are compared
 * exactly (callers pass catalog spelling).
 */
const ph_schema_table *ph_schema_find_table(const ph_schema *s, const char *schema,
                                            const char *name, int *ambiguous);

const ph_schema_column *ph_schema_find_column(const ph_schema_table *t, const char *column);

/* Lookup by (schema, table, column); schema NULL means public. */
const ph_schema_column *ph_schema_lookup(const ph_schema *s, const char *schema, const char *table,
                                         const char *column);

const char *ph_enc_mode_name(ph_enc_mode m);
const char *ph_logical_type_name(ph_logical_type t);

/* Parses a type spelling ("int8", "bigint", "numeric(12,2)", "timestamp with
 * time zone", ...), case-insensitive. Returns 0 or -1. */
int ph_logical_type_parse(const char *s, ph_logical_type *type, int32_t *typmod_a,
                          int32_t *typmod_b);

/* Maps a catalog type name (the last component of a parsed TypeName:
 * "int4", "varchar", "timestamptz", ...) to a logical type; -1 if unknown. */
int ph_logical_type_from_catalog(const char *typname, ph_logical_type *type);

/* 1 when two logical types share one canonical encoding (text and varchar
 * are one family; every other type only matches itself). */
int ph_logical_type_compatible(ph_logical_type a, ph_logical_type b);

/* 1 when mode ope can encrypt this type (integers, date, timestamps and
 * numeric with a declared scale of 0..18). */
int ph_schema_ope_supports(const ph_schema_column *c);

#endif
