/*
 * proxy.h — running the PostgreSQL proxy until it is told to stop.
 *
 * Owns: turning a validated configuration into listening sockets, TLS
 * contexts and worker threads, and the process's signal handling
 * (SIGTERM/SIGINT: drain; a second one: stop now).
 */
#ifndef PHANTOM_PROXY_H
#define PHANTOM_PROXY_H

#include "config/config.h"
#include "engine/session.h"

/* Returns the process exit status. engine: NULL for pure pass-through. */
int ph_proxy_run(const ph_config *cfg, const ph_engine *engine);

#endif
