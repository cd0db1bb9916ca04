/*
 * upstream.c — asynchronous connect to the target database; see upstream.h.
 *
 * Steps: resolve (numeric hosts at once, names through evdns) → for each
 * address, non-blocking connect → if sslmode asks for it, SSLRequest and the
 * TLS handshake → hand the endpoint to the caller. One timer bounds it all.
 */
#include "proxy/upstream.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/util.h>

#include "common/bytes.h"
#include "common/mem.h"
#include "protocol/pg/pgproto.h"
#include "proxy/gen.h"
#include "proxy/tls.h"

typedef enum { UP_RESOLVING, UP_CONNECTING, UP_SSL_REPLY, UP_HANDSHAKE } up_state;

struct ph_upstream {
    ph_worker_ctx *w;
    ph_gen *g; /* a reference: target, TLS context and timeouts */
    ph_upstream_cb cb;
    void *ud;
    up_state state;
    struct evutil_addrinfo *addrs, *cur;
    struct evdns_getaddrinfo_request *dnsreq;
    bool aborted;
    bool starting;     /* inside ph_upstream_connect: never call back now */
    bool failed_early; /* a failure is waiting for the deferred callback */
    ph_ep ep;
    struct event *ev;
    struct event *timer;
    char err[256];
};

static void step(ph_upstream *u);
static void try_next_address(ph_upstream *u);

static void up_free(ph_upstream *u)
{
    if (u->ev)
        event_free(u->ev);
    if (u->timer)
        event_free(u->timer);
    if (u->addrs)
        evutil_freeaddrinfo(u->addrs);
    ph_ep_close(&u->ep);
    ph_gen_release(u->g);
    free(u);
}

static void finish_err(ph_upstream *u)
{
    ph_upstream_cb cb = u->cb;
    void *ud = u->ud;
    char err[sizeof u->err];
    memcpy(err, u->err, sizeof err);
    up_free(u);
    cb(ud, NULL, err);
}

static void finish_ok(ph_upstream *u)
{
    ph_upstream_cb cb = u->cb;
    void *ud = u->ud;
    ph_ep ep = u->ep;
    u->ep.fd = -1;
    u->ep.ssl = NULL;
    up_free(u);
    ph_ep *out = malloc(sizeof *out);
    if (!out) {
        ph_ep_close(&ep);
        cb(ud, NULL, "out of memory");
        return;
    }
    *out = ep;
    cb(ud, out, NULL);
}

/* Reports u->err: now, or from the event loop if still inside connect. */
static void fail(ph_upstream *u)
{
    if (u->starting) {
        u->failed_early = true;
        event_active(u->timer, EV_TIMEOUT, 1);
        return;
    }
    finish_err(u);
}

static void on_fd(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    step(arg);
}

static void arm(ph_upstream *u, short what)
{
    if (u->ev)
        event_free(u->ev);
    u->ev = event_new(u->w->base, u->ep.fd, what, on_fd, u);
    if (!u->ev || event_add(u->ev, NULL) != 0) {
        snprintf(u->err, sizeof u->err, "cannot register event");
        fail(u);
    }
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    ph_upstream *u = arg;
    (void)fd;
    (void)what;
    if (u->failed_early) {
        finish_err(u);
        return;
    }
    snprintf(u->err, sizeof u->err, "timeout after %u ms", u->g->cfg.connect_timeout_ms);
    if (u->dnsreq) {
        u->aborted = true; /* the DNS callback frees us */
        u->cb(u->ud, NULL, u->err);
        evdns_getaddrinfo_cancel(u->dnsreq);
        return;
    }
    finish_err(u);
}

static void start_tls(ph_upstream *u)
{
    const ph_gen *g = u->g;
    u->ep.ssl = ph_tls_upstream_new(g->upstream_tls, &g->cfg, g->target_host, u->ep.fd);
    if (!u->ep.ssl) {
        snprintf(u->err, sizeof u->err, "cannot set up TLS");
        finish_err(u);
        return;
    }
    u->state = UP_HANDSHAKE;
    step(u);
}

static void on_ssl_reply(ph_upstream *u)
{
    uint8_t c;
    ssize_t r = recv(u->ep.fd, &c, 1, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        arm(u, EV_READ);
        return;
    }
    if (r <= 0) {
        snprintf(u->err, sizeof u->err, "server closed the connection during SSL negotiation");
        finish_err(u);
        return;
    }
    if (c == 'S') {
        start_tls(u);
    } else if (c == 'N' && u->g->cfg.sslmode == PH_SSLMODE_PREFER) {
        finish_ok(u);
    } else if (c == 'N') {
        snprintf(u->err, sizeof u->err, "server does not support SSL, but sslmode is %s",
                 ph_sslmode_name(u->g->cfg.sslmode));
        finish_err(u);
    } else {
        snprintf(u->err, sizeof u->err, "unexpected reply to SSLRequest");
        finish_err(u);
    }
}

static void send_ssl_request(ph_upstream *u)
{
    uint8_t req[8];
    ph_put_u32(req, 8);
    ph_put_u32(req + 4, PGP_SSL_REQUEST);
    if (send(u->ep.fd, req, sizeof req, MSG_NOSIGNAL) != (ssize_t)sizeof req) {
        snprintf(u->err, sizeof u->err, "cannot send SSLRequest: %s", strerror(errno));
        finish_err(u);
        return;
    }
    u->state = UP_SSL_REPLY;
    arm(u, EV_READ);
}

static void connected(ph_upstream *u)
{
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(u->ep.fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
        soerr = errno;
    if (soerr != 0) {
        snprintf(u->err, sizeof u->err, "%s", strerror(soerr));
        close(u->ep.fd);
        u->ep.fd = -1;
        u->cur = u->cur->ai_next;
        try_next_address(u);
        return;
    }
    ph_sock_tune(u->ep.fd);
    if (u->g->upstream_tls)
        send_ssl_request(u);
    else
        finish_ok(u);
}

static void try_next_address(ph_upstream *u)
{
    for (; u->cur; u->cur = u->cur->ai_next) {
        int fd = socket(u->cur->ai_family, u->cur->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        u->cur->ai_protocol);
        if (fd < 0) {
            snprintf(u->err, sizeof u->err, "%s", strerror(errno));
            continue;
        }
        u->ep.fd = fd;
        if (connect(fd, u->cur->ai_addr, u->cur->ai_addrlen) == 0 || errno == EINPROGRESS) {
            u->state = UP_CONNECTING;
            arm(u, EV_WRITE);
            return;
        }
        snprintf(u->err, sizeof u->err, "%s", strerror(errno));
        close(fd);
        u->ep.fd = -1;
    }
    if (!u->err[0])
        snprintf(u->err, sizeof u->err, "no usable address");
    fail(u);
}

static void handshake(ph_upstream *u)
{
    char why[200] = "";
    switch (ph_tls_handshake(u->ep.ssl, why, sizeof why)) {
    case PH_HS_DONE:
        finish_ok(u);
        return;
    case PH_HS_WANT_READ:
        arm(u, EV_READ);
        return;
    case PH_HS_WANT_WRITE:
        arm(u, EV_WRITE);
        return;
    case PH_HS_FAILED:
        snprintf(u->err, sizeof u->err, "TLS handshake failed: %s", why);
        finish_err(u);
        return;
    }
}

static void step(ph_upstream *u)
{
    switch (u->state) {
    case UP_RESOLVING:
        return;
    case UP_CONNECTING:
        connected(u);
        return;
    case UP_SSL_REPLY:
        on_ssl_reply(u);
        return;
    case UP_HANDSHAKE:
        handshake(u);
        return;
    }
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    ph_upstream *u = arg;
    u->dnsreq = NULL;
    if (u->aborted) {
        if (res)
            evutil_freeaddrinfo(res);
        up_free(u);
        return;
    }
    if (result != 0) {
        snprintf(u->err, sizeof u->err, "cannot resolve \"%.200s\": %s", u->g->target_host,
                 evutil_gai_strerror(result));
        fail(u);
        return;
    }
    u->addrs = u->cur = res;
    try_next_address(u);
}

ph_upstream *ph_upstream_connect(ph_worker_ctx *w, ph_gen *g, ph_upstream_cb cb, void *ud)
{
    ph_upstream *u = ph_calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->w = w;
    u->g = ph_gen_hold(g);
    u->cb = cb;
    u->ud = ud;
    u->ep.fd = -1;
    u->state = UP_RESOLVING;
    u->timer = evtimer_new(w->base, on_timeout, u);
    struct timeval tv = {g->cfg.connect_timeout_ms / 1000,
                         (g->cfg.connect_timeout_ms % 1000) * 1000};
    if (!u->timer || evtimer_add(u->timer, &tv) != 0) {
        up_free(u);
        return NULL;
    }
    struct evutil_addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
    u->starting = true;
    /* May call on_resolved before returning (numeric hosts, /etc/hosts). */
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(w->dns, g->target_host, g->target_port, &hints, on_resolved, u);
    u->starting = false;
    if (req && u->state == UP_RESOLVING && !u->addrs && !u->failed_early)
        u->dnsreq = req;
    return u;
}

void ph_upstream_abort(ph_upstream *u)
{
    if (!u)
        return;
    if (u->dnsreq) {
        u->aborted = true;
        evdns_getaddrinfo_cancel(u->dnsreq); /* on_resolved frees u */
        return;
    }
    up_free(u);
}
