/*
 * verify.h — `phantom verify`: proving, over a direct connection, that every
 * protected column holds only envelopes the proxy can open.
 *
 * Owns: classifying one stored value (a phantom envelope of the column's
 * mode, sealed under a live key of the column's key domain, and with --deep
 * one that decrypts to a value of the column's type), scanning every
 * configured table by primary key and counting, per column, rows, NULLs,
 * values per key version and invalid values; listing the primary key of
 * each invalid value with the reason (never the value); and recording, per
 * key domain whose columns were all scanned completely, how many values each
 * DEK version still encrypts (keyring "usage", read by `keys retire`).
 * Shared with reencrypt.c, which records usage the same way after its run.
 */
#ifndef PHANTOM_TOOLS_VERIFY_H
#define PHANTOM_TOOLS_VERIFY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/keysource.h"
#include "keys/audit.h"
#include "schema/schema.h"
#include "tools/db.h"

/* What a stored value is. */
typedef enum ph_vstatus {
    PH_V_OK = 0,
    PH_V_NOT_ENVELOPE,  /* not a phantom envelope (e.g. plaintext written directly) */
    PH_V_WRONG_MODE,    /* an envelope of another mode than the column's */
    PH_V_UNKNOWN_KEY,   /* key id not a live key of the column's key domain */
    PH_V_UNDECRYPTABLE, /* (deep) authentication or decoding failed */
    PH_V_NSTATUS
} ph_vstatus;

/* A fixed, value-free reason ("not a phantom envelope", ...). */
const char *ph_vstatus_str(ph_vstatus st);

/* The envelope mode byte of a column mode. */
uint8_t ph_verify_env_mode(ph_enc_mode m);

/*
 * Classifies v[0..len) of column col. *key_id is set to the envelope's key
 * id whenever the value parses as an envelope (0 otherwise). With deep, a
 * value that passes the header checks is decrypted fully (and formatted as
 * the column's type); the plaintext is wiped. Token columns are checked up to
 * the key id (no deep check: tokens are not opened here).
 */
ph_vstatus ph_verify_value(const ph_keysource *ks, const ph_schema_column *col, const uint8_t *v,
                           size_t len, int deep, uint32_t *key_id);

/* What the tools need from the loaded configuration (cli/setup.h). */
typedef struct ph_tool_env {
    const ph_schema *schema;
    const ph_keysource *keys;
    const char *keyring_path;
    ph_audit *audit; /* usage records are audited here (NULL: not audited) */
} ph_tool_env;

/* Count of values under one key id. */
typedef struct ph_kcount {
    uint32_t key_id;
    int64_t rows;
} ph_kcount;

/* The outcome for one configured column. */
typedef struct ph_vcol {
    const ph_schema_column *col;
    char *table;   /* schema.table */
    char *type;    /* its current type (NULL: the column or table is missing) */
    int scanned;   /* its table was scanned to the end in this run */
    int plaintext; /* not bytea: the column is not encrypted */
    int64_t rows, nulls, invalid, listed;
    int64_t by_status[PH_V_NSTATUS];
    ph_kcount *keys;
    size_t nkeys;
} ph_vcol;

typedef struct ph_vreport {
    ph_vcol *cols;
    size_t ncols;
    int errors; /* tables that could not be scanned */
} ph_vreport;

typedef struct ph_verify_opts {
    int deep;
    const char *table; /* only this table ("name" or "schema.name"); NULL = all */
    int batch;
    int max_listed; /* invalid values listed per column (then a count) */
    FILE *out;      /* the listing of invalid values */
    int progress;   /* a progress bar on stderr */
} ph_verify_opts;

/* Adds one value under key_id to c's counts; 0 or -1 (OOM). */
int ph_vcol_count_key(ph_vcol *c, uint32_t key_id);

/*
 * Scans every selected table and fills rep (one entry per configured column
 * of the selected tables, in config order; ph_vreport_free it). Invalid
 * values are listed on o->out as they are found. A table that cannot be
 * loaded or scanned is reported on stderr and counted in rep->errors; the
 * others are still scanned. Returns 0, or -1 with err when no report could
 * be made at all (out of memory, connection lost).
 */
int ph_verify_scan(ph_db *db, const ph_tool_env *env, const ph_verify_opts *o, ph_vreport *rep,
                   char *err, size_t errlen);
void ph_vreport_free(ph_vreport *rep);

/* The per-column table (key ids shown as DEK versions via the keyring). */
void ph_verify_print(const ph_vreport *rep, const ph_tool_env *env, FILE *out);

/* 1 when every scanned column is bytea and every value valid. */
int ph_verify_clean(const ph_vreport *rep);

/*
 * Records in the keyring (lock, load, record, save; one audit record
 * "keys.usage" per version) the rows per live DEK version of every key
 * domain whose columns — every column of the schema that uses it — were all
 * scanned completely and are bytea; a version with no value gets 0 rows.
 * `by` names the tool in the audit detail. Prints what it recorded on out.
 * 0, or -1 with err.
 */
int ph_verify_record_usage(const ph_vreport *rep, const ph_tool_env *env, const char *by, FILE *out,
                           char *err, size_t errlen);

#endif
