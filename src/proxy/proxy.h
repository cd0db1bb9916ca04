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

/* Returns the process exit status. */
int ph_proxy_run(const ph_config *cfg);

#endif
