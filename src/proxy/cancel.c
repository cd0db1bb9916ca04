/*
 * cancel.c — forwarding a client's CancelRequest to the target.
 *
 * Owns: the short-lived upstream connection that carries one CancelRequest.
 * The proxy relays the server's BackendKeyData unchanged, so the client's
 * (pid, key) pair is already the server's: the packet goes on as-is, over
 * TLS when sslmode asks for it, and the connection is closed.
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proxy/conn.h"
#include "proxy/gen.h"
#include "proxy/upstream.h"

typedef struct {
    uint8_t packet[16];
} cancel_req;

static void on_cancel_upstream(void *ud, ph_ep *server, const char *err)
{
    cancel_req *r = ud;
    if (!server) {
        ph_log_warn("cancel request not forwarded", "reason", err);
    } else {
        if (ph_ep_write_small(server, r->packet, sizeof r->packet) != 0)
            ph_log_warn("cancel request not forwarded", "reason", "write failed");
        ph_ep_close(server);
        free(server);
    }
    memset(r->packet, 0, sizeof r->packet);
    free(r);
}

void ph_cancel_forward(ph_worker_ctx *w, const uint8_t packet[16])
{
    cancel_req *r = malloc(sizeof *r);
    if (!r)
        return;
    memcpy(r->packet, packet, sizeof r->packet);
    /* The target of the current configuration: the one the session the
     * cancel is for started under may be older (its target changed by a
     * reload), but the key pair only means something to the server it came
     * from, and a cancel sent to another server is ignored there. */
    ph_gen *g = ph_gen_acquire(w->rt);
    if (!g || !ph_upstream_connect(w, g, on_cancel_upstream, r))
        free(r);
    ph_gen_release(g);
}
