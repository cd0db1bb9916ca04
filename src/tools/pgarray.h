/*
 * pgarray.h — building PostgreSQL array literals (text input format) for
 * batched statements: `... FROM unnest($1::text[], $2::bytea[]) AS v(k, c)`
 * sends a whole batch in one round trip.
 *
 * Owns: quoting elements ("..." with \ and " escaped), NULL elements, and
 * bytea elements in hex form. The buffer may hold plaintext (a batch being
 * decrypted): ph_pgarray_wipe wipes and frees it.
 */
#ifndef PHANTOM_TOOLS_PGARRAY_H
#define PHANTOM_TOOLS_PGARRAY_H

#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"

typedef struct ph_pgarray {
    ph_buf b;
    size_t n; /* elements so far */
} ph_pgarray;

int ph_pgarray_text(ph_pgarray *a, const char *s, size_t len); /* 0 or -1 (OOM) */
int ph_pgarray_bytea(ph_pgarray *a, const uint8_t *p, size_t len);
int ph_pgarray_null(ph_pgarray *a);
/* The literal, NUL-terminated ("{}" when empty); NULL on OOM. Valid until
 * the next call or ph_pgarray_wipe. */
const char *ph_pgarray_str(ph_pgarray *a);
void ph_pgarray_wipe(ph_pgarray *a);

#endif
