/*
 * http.h — the operations endpoint: /metrics, /healthz and /readyz over
 * HTTP/1.1 (metrics.listen).
 *
 * Owns: a listening socket, its own thread and libevent base (evhttp), so a
 * scrape or a probe never runs on, or blocks, a worker's event loop; the
 * routing (GET/HEAD on the three paths; other paths 404, other methods
 * 405); and the answers' form. What is healthy or ready, and the gauges,
 * come from the caller's hooks, which run on this thread.
 */
#ifndef PHANTOM_OPS_HTTP_H
#define PHANTOM_OPS_HTTP_H

#include <stddef.h>

#include "ops/metrics.h"

typedef struct ph_ops_hooks {
    void *arg;
    /* 0 when alive / ready, else -1 with a one-line reason (no secrets). */
    int (*live)(void *arg, char *why, size_t n);
    int (*ready)(void *arg, char *why, size_t n);
    /* Fills the gauges of a /metrics answer. */
    void (*gauges)(void *arg, ph_metrics_gauges *g);
} ph_ops_hooks;

typedef struct ph_ops_server ph_ops_server;

/* Binds listen ("host:port") and starts serving on a new thread. NULL with
 * a reason in err when the address cannot be used. */
ph_ops_server *ph_ops_server_start(const char *listen, const ph_ops_hooks *hooks, char *err,
                                   size_t errlen);
/* Stops the thread, closes the socket, frees. NULL allowed. */
void ph_ops_server_stop(ph_ops_server *s);

#endif
