/*
 * worker.h — one event-loop thread of the proxy.
 *
 * Owns: a libevent base, its own SO_REUSEPORT listening socket (the kernel
 * spreads new connections across workers), the connections it accepted,
 * and its part of a graceful shutdown.
 */
#ifndef PHANTOM_WORKER_H
#define PHANTOM_WORKER_H

#include <pthread.h>

#include "proxy/runtime.h"

typedef struct ph_worker ph_worker;

/* Creates a worker listening on an already-bound, listening fd. */
ph_worker *ph_worker_new(ph_runtime *rt, int id, int listen_fd);
int ph_worker_start(ph_worker *w);
/* Thread-safe: ask the worker to stop accepting and drain (or kill). */
void ph_worker_drain(ph_worker *w);
void ph_worker_kill(ph_worker *w);
/* Waits for the thread and frees the worker. */
void ph_worker_join(ph_worker *w);

#endif
