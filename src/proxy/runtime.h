/*
 * runtime.h — state shared by all workers of one proxy process.
 *
 * Owns: the configuration generations (gen.h: what one load of the
 * configuration made — settings, TLS contexts, target, engine and keys —
 * and which one new sessions use), the settings workers read at accept and
 * drain time, the workers' heartbeats (for /healthz) and process-wide
 * counters. Each session runs under the generation that was current when it
 * was accepted, until it ends.
 */
#ifndef PHANTOM_RUNTIME_H
#define PHANTOM_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "config/config.h"
#include "engine/keysource.h"
#include "engine/session.h"

#define PH_MAX_WORKERS 64

struct ph_runtime;

/* One configuration generation; immutable after creation except refs. */
typedef struct ph_gen {
    atomic_uint refs; /* the runtime's (while current) + one per user */
    struct ph_runtime *rt;
    uint64_t id;      /* 1 at start, +1 per reload */
    double loaded_at; /* Unix time */
    ph_config cfg;    /* owned */
    char target_host[256];
    char target_port[16];
    SSL_CTX *upstream_tls;    /* NULL when sslmode = disable */
    SSL_CTX *client_tls;      /* NULL when client TLS is not configured */
    const ph_engine *engine;  /* NULL: pure pass-through (nothing is protected) */
    const ph_keysource *keys; /* the engine's keys, or NULL */
    size_t ncolumns;          /* protected columns */
    void *owner;              /* what made engine and keys; freed with owner_free */
    void (*owner_free)(void *owner);
    struct ph_gen *next;     /* in the runtime's list of retired generations */
    struct ph_gen *all_next; /* in the runtime's list of every generation */
} ph_gen;

typedef struct ph_runtime {
    pthread_mutex_t gen_mu; /* guards gen, retired, all, next_id */
    ph_gen *gen;            /* current: new sessions start under it */
    ph_gen *retired;        /* no user left: freed by the main thread */
    ph_gen *all;            /* every generation not freed yet */
    uint64_t next_id;
    atomic_uint ngens; /* generations not freed yet */
    /* Settings of the current generation that workers read at accept/drain. */
    atomic_uint max_connections;
    atomic_uint shutdown_timeout_ms;
    atomic_uint connections;
    atomic_uint workers_running; /* threads still in their event loop */
    atomic_bool draining;        /* SIGTERM/SIGINT received */
    unsigned nworkers;
    atomic_uint_fast64_t beat_ms[PH_MAX_WORKERS]; /* each worker's last heartbeat */
    atomic_bool loop_done[PH_MAX_WORKERS];        /* its event loop has ended */
} ph_runtime;

/* What a connection needs from the worker that runs it. */
typedef struct ph_worker_ctx {
    ph_runtime *rt;
    struct event_base *base;
    struct evdns_base *dns;
} ph_worker_ctx;

#endif
