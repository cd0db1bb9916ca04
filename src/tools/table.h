/*
 * table.h — what the tools need to know about one configured table, read
 * from the catalog over a direct connection.
 *
 * Owns: resolving schema.table to its OID, its primary key (columns and
 * types, in key order: the keyset the scanners page by) and the current
 * type of each protected column. A table without a primary key is refused
 * here, for every tool, with a message that says so.
 */
#ifndef PHANTOM_TOOLS_TABLE_H
#define PHANTOM_TOOLS_TABLE_H

#include <stddef.h>

#include "common/bytes.h"
#include "schema/schema.h"
#include "tools/db.h"

typedef struct ph_tcol {
    const ph_schema_column *col; /* the configured column */
    char *ident;                 /* quoted identifier */
    char *type;                  /* format_type() of its current type; NULL if absent */
    int attnum;
    int notnull;
    int has_default;
} ph_tcol;

typedef struct ph_table {
    const ph_schema_table *st;
    char *qname;   /* "schema"."table", quoted */
    char *display; /* schema.table */
    unsigned oid;
    char **pk;       /* quoted key columns, in key order */
    char **pk_types; /* their format_type() */
    size_t npk;
    ph_tcol *cols; /* one per configured column */
    size_t ncols;
    double reltuples; /* the planner's row estimate (-1 unknown) */
} ph_table;

/* Loads t for configured table st. 0, or -1 with err (no such table, no
 * primary key, a protected column in the primary key). A configured column
 * that does not exist gets type NULL (callers decide). */
int ph_table_load(ph_db *db, const ph_schema_table *st, ph_table *t, char *err, size_t errlen);
void ph_table_free(ph_table *t);

/* Appends "id=42" / "order_id=3, line=2": the primary key of row `row` of r,
 * whose first columns are the key columns as text (the scanners' layout);
 * identifiers unquoted when unambiguous, control characters escaped (a key
 * is not a protected value, but it goes to a terminal or a log). 0 or -1. */
int ph_table_key_text(const ph_table *t, const PGresult *r, int row, ph_buf *out);

/* 1 when configured table st is the one `name` names ("t" or "schema.t");
 * a NULL name selects every table (the tools' --table option). */
int ph_table_selected(const ph_schema_table *st, const char *name);

#endif
