/*
 * migrate_internal.h — shared internals of `phantom migrate`
 * (migrate_plan.c: what to change and whether it can be done;
 * migrate.c: doing it). Not a public API.
 */
#ifndef PHANTOM_TOOLS_MIGRATE_INTERNAL_H
#define PHANTOM_TOOLS_MIGRATE_INTERNAL_H

#include <stdint.h>

#include "tools/db.h"
#include "tools/migrate.h"
#include "tools/table.h"

/* An index on a converted column, rebuilt on the shadow columns. */
typedef struct mg_index {
    char *name;       /* quoted name of the existing index */
    char *tmp;        /* quoted name of the one built on the shadow columns */
    char *create_sql; /* CREATE [UNIQUE] INDEX CONCURRENTLY tmp ON t USING am (...) */
    char *constraint; /* quoted UNIQUE constraint name it backs, or NULL */
} mg_index;

/* A foreign key between two protected deterministic columns of one key
 * domain: equal plaintexts have equal ciphertexts, so it holds on the
 * encrypted columns too. Dropped at the swap, added back once both sides
 * are in the same form (phantom.fkeys keeps it in between). */
typedef struct mg_fkey {
    char *name;  /* quoted constraint name */
    char *child; /* the referencing table, as regclass text */
    char *def;   /* pg_get_constraintdef() */
} mg_fkey;

typedef struct mg_col {
    ph_tcol *tc;
    char *shadow;     /* quoted shadow column name */
    char *new_type;   /* the shadow's type: bytea, or the plaintext type when decrypting */
    char *check_name; /* quoted name of the envelope CHECK constraint */
    int notnull;      /* the result column is NOT NULL */
    double avg_width; /* dry run: average plaintext bytes */
} mg_col;

typedef struct mg_table {
    ph_table t;
    mg_col *cols; /* the columns to convert */
    size_t ncols;
    mg_index *idx;
    size_t nidx;
    mg_fkey *fk;
    size_t nfk;
    char *fn;      /* the trigger function, phantom.log_<oid> */
    char *tbl_lit; /* t.display as a quoted SQL literal */
    int64_t rows;  /* estimate */
    int refused;   /* a check failed: nothing is changed for this table */
} mg_table;

/* migrate_plan.c: loads t and decides what to convert; checks that it can be
 * done (prints each refusal to o->out and sets refused). 0, or -1 with err. */
int mg_plan(ph_db *db, const ph_schema *schema, const ph_schema_table *st, const ph_migrate_opts *o,
            mg_table *m, char *err, size_t errlen);
/* The dry run's estimates: average plaintext width per column (samples). */
void mg_measure(ph_db *db, mg_table *m);
void mg_print_plan(const mg_table *m, const ph_migrate_opts *o);
void mg_free(mg_table *m);

#endif
