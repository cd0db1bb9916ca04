/*
 * scan.h — the chunked, resumable table scanner shared by `phantom migrate`,
 * `reencrypt` and `verify`.
 *
 * Owns: paging through a table by its primary key (keyset pagination: each
 * batch is `WHERE (pk) > (last) ORDER BY pk LIMIT n`, so a batch costs the
 * same at the end of a large table as at its start), and the progress record
 * in the database (schema `phantom`, table `progress`: one row per job and
 * table with the last key done), which a job updates in the same transaction
 * as the batch it finished — so a killed job resumes exactly after the last
 * committed batch.
 */
#ifndef PHANTOM_TOOLS_SCAN_H
#define PHANTOM_TOOLS_SCAN_H

#include <stdint.h>

#include "tools/db.h"
#include "tools/table.h"

typedef struct ph_scan {
    ph_db *db;
    const ph_table *t;
    char *job;       /* "migrate", "decrypt", "reencrypt", "verify" */
    char *first_sql; /* the first batch */
    char *next_sql;  /* later batches: $1..$n = the last key (text) */
    char **last;     /* the last key done (text forms), NULL before the first batch */
    int batch;
    int64_t done; /* rows processed (from the progress record when resuming) */
    int resumed;  /* a progress record existed */
} ph_scan;

/* Creates schema phantom and its progress table if needed (idempotent). */
int ph_scan_prepare_db(ph_db *db, char *err, size_t errlen);

/*
 * Prepares a scan of t selecting, after the key columns (as text), the
 * expressions of select_list (e.g. "col::text, col2"). With track, the
 * position is read from and saved to the progress record of (job, table)
 * (resume); without, the scan starts at the beginning.
 */
int ph_scan_init(ph_scan *sc, ph_db *db, const ph_table *t, const char *job,
                 const char *select_list, int batch, int track, char *err, size_t errlen);
void ph_scan_free(ph_scan *sc);

/* The next batch (binary results: key columns first), or NULL with *done =
 * 1 at the end, or NULL with err. The caller PQclear()s it. */
PGresult *ph_scan_next(ph_scan *sc, int *done, char *err, size_t errlen);

/* Records the last row of batch r as done (in the caller's open
 * transaction when tracking; call before COMMIT). */
int ph_scan_advance(ph_scan *sc, const PGresult *r, char *err, size_t errlen);

/* Marks (job, table) finished / removes its record. */
int ph_scan_finish(ph_scan *sc, char *err, size_t errlen);
int ph_scan_forget(ph_db *db, const char *job, const ph_table *t, char *err, size_t errlen);

/* The phase stored in the progress record ("" when none). */
int ph_scan_phase(ph_db *db, const char *job, const ph_table *t, char *phase, size_t cap, char *err,
                  size_t errlen);
int ph_scan_set_phase(ph_db *db, const char *job, const ph_table *t, const char *phase, char *err,
                      size_t errlen);

#endif
