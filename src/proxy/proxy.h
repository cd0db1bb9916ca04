/*
 * proxy.h — running the PostgreSQL proxy until it is told to stop.
 *
 * Owns: turning a validated configuration into listening sockets, TLS
 * contexts and worker threads, the operations endpoint (metrics.listen:
 * /metrics, /healthz, /readyz), and the process's signal handling:
 * SIGTERM/SIGINT drain (a second one: stop now); SIGHUP reloads — the
 * loader builds a whole new configuration (settings, schema, keys); if it
 * fails the running one stays; if it succeeds new sessions use it while
 * sessions already open keep the one they started with until they end.
 * Settings that cannot change at run time (listen, workers, metrics.listen,
 * log.level, log.format) are logged as needing a restart and kept.
 */
#ifndef PHANTOM_PROXY_H
#define PHANTOM_PROXY_H

#include <stddef.h>

#include "config/config.h"
#include "engine/keysource.h"
#include "engine/session.h"

/* One loaded configuration, as the loader hands it over. */
typedef struct ph_proxy_conf {
    ph_config cfg;            /* validated; owned */
    const ph_engine *engine;  /* NULL: pure pass-through */
    const ph_keysource *keys; /* the engine's keys (started), or NULL */
    size_t ncolumns;          /* protected columns */
    void *owner;              /* owns engine and keys: freed with owner_free */
    void (*owner_free)(void *owner);
    /* Called once a reloaded configuration is in use (NULL = nothing to do). */
    void (*owner_activate)(void *owner);
} ph_proxy_conf;

/* Builds a configuration from scratch (defaults, file, command line) for a
 * reload: 0 with *out filled, or -1 with a one-line reason (never a secret). */
typedef int (*ph_proxy_loader)(void *arg, ph_proxy_conf *out, char *err, size_t errlen);

/* Runs the proxy with the configuration *first (taken over: zeroed); reload
 * (may be NULL: SIGHUP is then only logged) builds the next ones. Returns
 * the process exit status. */
int ph_proxy_run(ph_proxy_conf *first, ph_proxy_loader reload, void *reload_arg);

/* Frees a configuration that was not handed over. */
void ph_proxy_conf_free(ph_proxy_conf *c);

#endif
