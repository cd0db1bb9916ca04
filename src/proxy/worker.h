/*
 * worker.h — one event-loop thread of the proxy.
 *
 * Owns: a libevent base, its own SO_REUSEPORT listening socket (the kernel
 * spreads new connections across workers), the connections it accepted,
 * its part of a graceful shutdown, and its heartbeat (/healthz).
 */
#ifndef PHANTOM_WORKER_H
#define PHANTOM_WORKER_H

#include <pthread.h>

#include "proxy/runtime.h"

typedef struct ph_worker ph_worker;

/* The clock of the workers' heartbeats (rt->beat_ms): monotonic ms. */
uint64_t ph_worker_clock_ms(void);

/* Creates a worker listening on an already-bound, listening fd; id indexes
 * rt->beat_ms (below PH_MAX_WORKERS). Its event loop stamps rt->beat_ms[id]
 * every second, and sets rt->loop_done[id] when it ends. */
ph_worker *ph_worker_new(ph_runtime *rt, int id, int listen_fd);
int ph_worker_start(ph_worker *w);
/* Thread-safe: ask the worker to stop accepting and drain (or kill). */
void ph_worker_drain(ph_worker *w);
void ph_worker_kill(ph_worker *w);
/* Waits for the thread and frees the worker. */
void ph_worker_join(ph_worker *w);

#endif
