/*
 * migrate.h — `phantom migrate`: turning existing plaintext columns into
 * their encrypted bytea form in place, online and resumably (and back, with
 * decrypt), over a direct connection to the database.
 *
 * Per table: a shadow column per protected column; a trigger logging the
 * primary key of every row the application writes meanwhile; chunked
 * batches by primary key, each in its own transaction together with the
 * progress record (a killed run resumes after the last committed batch);
 * indexes rebuilt concurrently on the shadow columns; catch-up passes over
 * the logged rows; then one short ACCESS EXCLUSIVE transaction that drains
 * the log and swaps the columns (its duration is printed).
 */
#ifndef PHANTOM_TOOLS_MIGRATE_H
#define PHANTOM_TOOLS_MIGRATE_H

#include <stdio.h>

#include "engine/keysource.h"
#include "schema/schema.h"

typedef struct ph_migrate_opts {
    const char *dsn;
    int batch;         /* rows per batch (default 1000) */
    int dry_run;       /* print the plan only */
    int decrypt;       /* reverse a migration */
    int restart;       /* forget an interrupted run's state and start over */
    int vacuum_full;   /* rewrite the table afterwards (drops the old values' bytes) */
    const char *table; /* only this configured table (schema.table or table), or NULL */
    FILE *out;         /* plan, progress and summary */
} ph_migrate_opts;

/* 0 when every table is done (or, dry run, the plan is feasible); 1 when a
 * table is refused (nothing changed for it); -1 with err on failure. */
int ph_migrate_run(const ph_schema *schema, const ph_keysource *keys, const ph_migrate_opts *o,
                   char *err, size_t errlen);

#endif
