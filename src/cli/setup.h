/*
 * setup.h — building the encryption side of the proxy from phantom.yaml.
 *
 * Owns: reading the `encrypt:` section (schema), the `keys:` section, opening
 * the audit log and the key source, and creating the engine — in that order,
 * each step failing with a "FILE:LINE: reason" or a plain reason, and
 * freeing everything it made on failure. Shared by `phantom proxy` and
 * `phantom check-config`.
 */
#ifndef PHANTOM_CLI_SETUP_H
#define PHANTOM_CLI_SETUP_H

#include <stddef.h>

#include "engine/keysource.h"
#include "engine/session.h"
#include "keys/audit.h"
#include "keys/keys_config.h"
#include "schema/schema.h"

typedef struct ph_setup {
    ph_schema *schema; /* never NULL after success (may be empty) */
    ph_keys_config kc;
    ph_audit *audit;
    ph_keysource *keys;
    ph_engine *engine; /* NULL when the schema protects nothing */
    size_t ncolumns;   /* protected columns */
} ph_setup;

/* Loads schema + keys config from path; with open_keys, also opens the
 * audit log, loads every key (fail closed) and creates the engine. */
int ph_setup_load(ph_setup *s, const char *path, int open_keys, char *err, size_t errlen);
void ph_setup_free(ph_setup *s);

#endif
