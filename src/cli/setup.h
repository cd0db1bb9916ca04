/*
 * setup.h — building the encryption side of the proxy from phantom.yaml.
 *
 * Owns: reading the `encrypt:` section (schema), the `keys:` section, opening
 * the audit log and the key source, and creating the engine — in that order,
 * each step failing with a "FILE:LINE: reason" or a plain reason, and
 * freeing everything it made on failure. Shared by `phantom proxy`,
 * `phantom check-config` and the tools. The tools and check-config load
 * every key or fail (a key table); the proxy gets a live key source, which
 * starts even while the KEK provider is down (keysource.h).
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
    ph_keysource *keys; /* a key table, or the proxy's live source */
    ph_engine *engine;  /* NULL when the schema protects nothing */
    size_t ncolumns;    /* protected columns */
} ph_setup;

/* What ph_setup_load does with the keys (open_keys):
 *   PH_SETUP_NO_KEYS      reads and validates the keys: section only;
 *   PH_SETUP_KEYS         loads every key, or fails (fail closed);
 *   PH_SETUP_KEYS_LIVE    the proxy's live source: fails only on a keyring
 *                         that cannot serve the schema (start its refresh
 *                         thread with ph_keysource_start);
 *   PH_SETUP_KEYS_STAGED  the same for a configuration the proxy reloads:
 *                         its audit log becomes the process's audit sink
 *                         (ph_audit_set_global) only at ph_setup_activate —
 *                         until then key loads are audited in the running
 *                         configuration's log — so a reload that is rejected
 *                         leaves the sink alone. */
#define PH_SETUP_NO_KEYS     0
#define PH_SETUP_KEYS        1
#define PH_SETUP_KEYS_LIVE   2
#define PH_SETUP_KEYS_STAGED 3

/* Loads schema + keys config from path; with open_keys, also opens the
 * audit log and the keys, and creates the engine. */
int ph_setup_load(ph_setup *s, const char *path, int open_keys, char *err, size_t errlen);
/* Makes s's audit log the process's audit sink (after PH_SETUP_KEYS_STAGED). */
void ph_setup_activate(ph_setup *s);
/* Stops a live source's refresh thread, then frees everything. Clears the
 * process's audit sink only if it is s's own log. */
void ph_setup_free(ph_setup *s);

#endif
