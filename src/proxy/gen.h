/*
 * gen.h — configuration generations of a running proxy (see runtime.h).
 *
 * Owns: making a generation from a loaded configuration (parsing the target,
 * building the TLS contexts), making it the current one, the reference
 * counts that keep it alive while sessions (and connection attempts) started
 * under it run, and freeing it — on the main thread (ph_gen_reap), never on a
 * worker: freeing stops the keys' refresh thread, which may wait for a KEK
 * call in progress.
 */
#ifndef PHANTOM_PROXY_GEN_H
#define PHANTOM_PROXY_GEN_H

#include <stddef.h>

#include "proxy/proxy.h"
#include "proxy/runtime.h"

/* Sets up rt's lock and counters (no generation yet). */
int ph_runtime_init(ph_runtime *rt);
/* Drops the current generation and frees every generation (all users gone). */
void ph_runtime_destroy(ph_runtime *rt);

/* Takes *c (its contents are owned by the generation, or freed on failure:
 * *c is zeroed either way). NULL with a reason in err. */
ph_gen *ph_gen_new(ph_runtime *rt, ph_proxy_conf *c, char *err, size_t errlen);
/* Frees a generation that was never installed. */
void ph_gen_discard(ph_gen *g);

/* Makes g the current generation (with the reference it was created with);
 * the previous one is released. */
void ph_gen_install(ph_runtime *rt, ph_gen *g);

/* The current generation, with a reference for the caller. */
ph_gen *ph_gen_acquire(ph_runtime *rt);
/* Another reference to g. */
ph_gen *ph_gen_hold(ph_gen *g);
/* Drops a reference; the last one retires g (freed by ph_gen_reap). */
void ph_gen_release(ph_gen *g);

/* Main thread: frees retired generations; returns how many. */
unsigned ph_gen_reap(ph_runtime *rt);

#endif
