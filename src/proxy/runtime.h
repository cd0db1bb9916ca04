/*
 * runtime.h — state shared by all workers of one proxy process.
 *
 * Owns: the loaded configuration, the TLS contexts built from it, the parsed
 * target address, and process-wide counters. Read-only after start except
 * for the atomics.
 */
#ifndef PHANTOM_RUNTIME_H
#define PHANTOM_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "config/config.h"
#include "engine/session.h"

typedef struct ph_runtime {
    const ph_config *cfg;
    char target_host[256];
    char target_port[16];
    SSL_CTX *upstream_tls;   /* NULL when sslmode = disable */
    SSL_CTX *client_tls;     /* NULL when client TLS is not configured */
    const ph_engine *engine; /* NULL: pure pass-through (nothing is protected) */
    atomic_uint connections;
    atomic_uint workers_running; /* threads still in their event loop */
} ph_runtime;

/* What a connection needs from the worker that runs it. */
typedef struct ph_worker_ctx {
    ph_runtime *rt;
    struct event_base *base;
    struct evdns_base *dns;
} ph_worker_ctx;

#endif
