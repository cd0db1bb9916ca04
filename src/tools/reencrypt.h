/*
 * reencrypt.h — `phantom reencrypt`: after `keys rotate`, moving every stored
 * value to its key domain's active DEK version, online, over a direct
 * connection.
 *
 * Owns: re-encrypting one envelope (open with the key its key id names, seal
 * the same plaintext with the domain's active key, same mode; OPE through
 * the integer functions, so order is kept), and the table job: the chunked,
 * resumable scan (scan.h, job "reencrypt"), one transaction per batch that
 * writes back with a compare-and-set (a row changed since it was read — a
 * concurrent write through the proxy — is left alone) and records the
 * position, a progress bar, and at the end a verify pass (verify.h) whose
 * counts are recorded as keyring usage. Plaintext is wiped after each value
 * and never appears in messages.
 */
#ifndef PHANTOM_TOOLS_REENCRYPT_H
#define PHANTOM_TOOLS_REENCRYPT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/bytes.h"
#include "tools/verify.h"

typedef enum ph_re_status {
    PH_RE_MOVED = 0, /* out holds the value re-encrypted under the active key */
    PH_RE_CURRENT,   /* already under the active key: nothing to do */
    PH_RE_INVALID,   /* not a valid envelope of the column (left alone; verify lists it) */
    PH_RE_ERROR,     /* no active key, crypto failure or out of memory */
} ph_re_status;

/*
 * Re-encrypts env[0..len) of column col under the active key of its key
 * domain, appending the new envelope to out (only on PH_RE_MOVED). Token
 * columns are not handled (PH_RE_INVALID).
 */
ph_re_status ph_reencrypt_value(const ph_keysource *ks, const ph_schema_column *col,
                                const uint8_t *env, size_t len, ph_buf *out);

typedef struct ph_reencrypt_opts {
    const char *table; /* only this table; NULL = all */
    int batch;         /* rows per batch (and per transaction) */
    int restart;       /* forget the progress records first */
    FILE *out;         /* the summary */
} ph_reencrypt_opts;

/*
 * Runs the job over every selected table, then a verify pass over the same
 * tables (printing its table, a note for values still under an older
 * version — written meanwhile by a proxy that still used it — and recording
 * usage from its counts). Returns 0 when the verify pass found every value
 * valid, 1 when it found invalid values or plaintext columns (listed), -1
 * with err on failure (the progress records let a new run resume).
 */
int ph_reencrypt_run(ph_db *db, const ph_tool_env *env, const ph_reencrypt_opts *o, char *err,
                     size_t errlen);

#endif
