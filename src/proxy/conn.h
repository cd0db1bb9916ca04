/*
 * conn.h — one client connection and its upstream connection.
 *
 * Owns: the per-connection state machine (startup packet, SSLRequest/
 * GSSENCRequest answers, client TLS, CancelRequest forwarding, upstream
 * connect, relaying, draining, closing), the startup timeout
 * (limits.startup_timeout: from accept to the first ReadyForQuery, TLS
 * handshake and authentication included) and the session facts the proxy
 * tracks on the way through (pending requests, transaction status). The two
 * relay directions carry the bytes; the message hooks here are where
 * rewriting plugs in.
 */
#ifndef PHANTOM_CONN_H
#define PHANTOM_CONN_H

#include "proxy/runtime.h"

typedef struct ph_conn ph_conn;

/* Called when a connection is gone (freed); the worker unlinks it. */
typedef void (*ph_conn_gone_cb)(void *owner, ph_conn *c);

/* Takes ownership of fd (an accepted, non-blocking socket). NULL on OOM (fd closed). */
ph_conn *ph_conn_new(ph_worker_ctx *w, int fd, const char *peer, ph_conn_gone_cb gone, void *owner);

/* Shutdown: close at the next idle point (now, if idle). */
void ph_conn_drain(ph_conn *c);
/* Shutdown timeout: tell the client and close now. */
void ph_conn_kill(ph_conn *c, const char *why);

/* Intrusive list links for the owning worker. */
ph_conn *ph_conn_next(const ph_conn *c);
void ph_conn_link(ph_conn **head, ph_conn *c);
void ph_conn_unlink(ph_conn **head, ph_conn *c);

/* Forwards a CancelRequest packet to the target (fire and forget). */
void ph_cancel_forward(ph_worker_ctx *w, const uint8_t packet[16]);

#endif
