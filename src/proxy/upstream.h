/*
 * upstream.h — opening a connection to the target database, asynchronously.
 *
 * Owns: resolving the target (without blocking the event loop), trying each
 * address, the connect timeout, and the SSLRequest + TLS handshake that
 * sslmode asks for. It hands back a ready endpoint or a one-line reason.
 */
#ifndef PHANTOM_UPSTREAM_H
#define PHANTOM_UPSTREAM_H

#include <event2/event.h>

#include "proxy/io.h"
#include "proxy/runtime.h"

typedef struct ph_upstream ph_upstream;

/* On success ep is the connected endpoint (ownership passes to the callee)
 * and err is NULL; on failure ep is NULL and err says why. Called once. */
typedef void (*ph_upstream_cb)(void *ud, ph_ep *ep, const char *err);

/* Starts connecting to g's target with g's settings (holding a reference to
 * g until done); the callback may run before this returns. */
ph_upstream *ph_upstream_connect(ph_worker_ctx *w, ph_gen *g, ph_upstream_cb cb, void *ud);

/* Abandons a connection attempt; the callback will not be called. */
void ph_upstream_abort(ph_upstream *u);

#endif
