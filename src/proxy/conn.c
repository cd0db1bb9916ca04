/*
 * conn.c — the client connection state machine; see conn.h.
 *
 *   STARTUP ──SSLRequest──> CLIENT_TLS ──> STARTUP
 *      │ CancelRequest: forward to target, close
 *      │ StartupMessage
 *      v
 *   CONNECTING ──(upstream ready)──> RELAY ──(EOF, error, drain)──> CLOSING
 *
 * In RELAY both directions run through relay.c; the hooks below see message
 * headers (to track requests in flight and the transaction status) and a few
 * whole messages (authentication, ReadyForQuery).
 */
#include "proxy/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "common/mem.h"
#include "engine/session.h"
#include "ops/metrics.h"
#include "protocol/pg/pgproto.h"
#include "proxy/gen.h"
#include "proxy/relay.h"
#include "proxy/tls.h"
#include "proxy/upstream.h"

#define CLOSE_TIMEOUT_MS 5000 /* how long a closing client may take to read */

typedef enum {
    CS_STARTUP,
    CS_CLIENT_TLS,
    CS_CONNECTING,
    CS_RELAY,
    CS_CLOSING,
    CS_DEAD, /* closed; freed from the event loop */
} conn_state;

struct ph_conn {
    ph_worker_ctx *w;
    ph_gen *g; /* the configuration this session runs under (a reference) */
    ph_conn *prev, *next;
    ph_conn_gone_cb gone;
    void *owner;
    conn_state state;
    ph_ep client;
    ph_ep *server;
    struct event *cev, *sev;
    short cev_flags, sev_flags;
    struct event *timer;
    ph_dir c2s, s2c;
    ph_upstream *up;
    uint8_t startup[PGP_MAX_STARTUP_PACKET];
    size_t startup_len;
    bool tls_done;
    /* Session facts, from message headers. */
    unsigned pending;   /* Query/Sync/FunctionCall sent, ReadyForQuery not yet seen */
    bool tail_activity; /* messages sent after the last Sync/Query */
    uint8_t txn;        /* last ReadyForQuery status; 0 before the first */
    bool terminated;    /* the client sent Terminate: the server will hang up */
    bool logged_in;     /* the first ReadyForQuery came: the startup timeout is off */
    bool draining;
    char peer[64];
    ph_session *sess; /* the encryption engine of this session, or NULL */
};

static void update_events(ph_conn *c);
static void conn_close(ph_conn *c);
static void conn_destroy(ph_conn *c);
static void enter_closing(ph_conn *c);
static void on_server(evutil_socket_t fd, short what, void *arg);

/* ---- list links ---------------------------------------------------------- */

ph_conn *ph_conn_next(const ph_conn *c)
{
    return c->next;
}

void ph_conn_link(ph_conn **head, ph_conn *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

void ph_conn_unlink(ph_conn **head, ph_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (*head == c)
        *head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* ---- errors to the client ------------------------------------------------ */

/* Queues an ErrorResponse for the client and moves to CLOSING. */
static void close_with_error(ph_conn *c, const char *severity, const char *sqlstate,
                             const char *msg)
{
    ph_buf b = {0};
    pgp_error e = {.severity = severity, .sqlstate = sqlstate, .message = msg};
    if (c->state == CS_DEAD)
        return;
    if (c->state == CS_RELAY && !pgf_at_boundary(&c->s2c.fr)) {
        /* Mid-message towards the client: an error can't be spliced in. */
        pg_outq_clear(&c->s2c.out);
        enter_closing(c);
        return;
    }
    if (pgp_build_error(&b, &e) == 0) {
        if (c->state == CS_RELAY || c->state == CS_CLOSING) {
            size_t n;
            uint8_t *bytes = ph_buf_steal(&b, &n);
            (void)pg_outq_own(&c->s2c.out, bytes, n);
        } else {
            (void)ph_ep_write_small(&c->client, b.data, b.len);
        }
    }
    ph_buf_free(&b);
    enter_closing(c);
}

/* ---- message hooks --------------------------------------------------------- */

static pgf_want c2s_header(void *ud, uint8_t type, uint32_t total)
{
    ph_conn *c = ud;
    (void)total;
    if (type == PGP_F_TERMINATE)
        c->terminated = true; /* still tail activity: not idle for a drain */
    switch (type) {
    case PGP_F_QUERY:
    case PGP_F_SYNC:
    case 'F': /* FunctionCall */
        c->pending++;
        c->tail_activity = false;
        break;
    case 'd': /* CopyData, CopyDone, CopyFail belong to the COPY in flight */
    case 'c':
    case 'f':
    case 'p': /* password/SASL/GSS responses: part of the login, not a request */
        break;
    default:
        c->tail_activity = true;
        break;
    }
    if (c->sess)
        return ph_session_c2s_header(c->sess, type, total);
    if (type == PGP_F_QUERY || type == 'P') /* pass-through: every statement is fast */
        ph_metrics_inc(PH_CTR_QUERY_FAST);
    return PGF_PASS;
}

/* Only called when a session engine asked to see the message. */
static int c2s_message(void *ud, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    ph_conn *c = ud;
    int verdict = ph_session_c2s_message(c->sess, msg, total, rep);
    /* A request the engine drops (the server is skipping to Sync anyway)
     * will get no ReadyForQuery: it is not pending. */
    if (verdict == PGF_DROP && (msg[0] == PGP_F_QUERY || msg[0] == PGP_F_SYNC || msg[0] == 'F') &&
        c->pending > 0)
        c->pending--;
    return verdict;
}

static pgf_want s2c_header(void *ud, uint8_t type, uint32_t total)
{
    ph_conn *c = ud;
    if (type == PGP_B_READY)
        return PGF_INSPECT; /* the engine's header hook runs in s2c_message */
    if (type == PGP_B_AUTH) {
        if (c->sess)
            (void)ph_session_s2c_header(c->sess, type, total);
        return PGF_INSPECT;
    }
    return c->sess ? ph_session_s2c_header(c->sess, type, total) : PGF_PASS;
}

/* Queues what the engine wants sent upstream before the client's first
 * request (its catalog query) behind the bytes already queued for the server. */
static int inject_upstream(ph_conn *c)
{
    ph_buf up = {0};
    int rc = ph_session_startup_inject(c->sess, &up);
    if (rc == 1) {
        size_t n;
        uint8_t *bytes = ph_buf_steal(&up, &n);
        rc = pg_outq_own(&c->c2s.out, bytes, n) == 0 ? 0 : -1;
    }
    ph_buf_free(&up);
    return rc < 0 ? -1 : 0;
}

static int s2c_message(void *ud, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    ph_conn *c = ud;
    if (msg[0] == PGP_B_AUTH) {
        int r = pgp_auth_strip_scram_plus(msg, total, rep);
        return r < 0 ? -1 : r == 1 ? PGF_REPLACED : PGF_KEEP;
    }
    if (msg[0] != PGP_B_READY)
        return ph_session_s2c_message(c->sess, msg, total, rep);
    uint8_t st = pgp_ready_status(msg, total);
    if (!st)
        return -1;
    if (!c->logged_in) { /* the login is complete: stop the startup timeout */
        c->logged_in = true;
        evtimer_del(c->timer);
    }
    int verdict = PGF_KEEP;
    if (c->sess) {
        if (ph_dir_idle(&c->c2s) && pgf_at_boundary(&c->c2s.fr) && inject_upstream(c) != 0)
            return -1;
        /* The engine tells its own injected queries' ReadyForQuery apart:
         * only those the client sees answer one of its Sync/Query. */
        ph_session_s2c_header(c->sess, msg[0], total);
        verdict = ph_session_s2c_message(c->sess, msg, total, rep);
        if (verdict < 0 || verdict == PGF_DROP)
            return verdict;
    }
    c->txn = st;
    if (c->pending > 0)
        c->pending--;
    return verdict;
}

static const pgf_hooks c2s_hooks = {c2s_header, c2s_message};
static const pgf_hooks s2c_hooks = {s2c_header, s2c_message};

static bool session_idle(const ph_conn *c)
{
    return c->state == CS_RELAY && c->txn == 'I' && c->pending == 0 && !c->tail_activity &&
           ph_dir_idle(&c->c2s) && ph_dir_idle(&c->s2c);
}

static void drain_if_idle(ph_conn *c)
{
    if (!c->draining || !session_idle(c))
        return;
    static const uint8_t terminate[5] = {PGP_F_TERMINATE, 0, 0, 0, 4};
    (void)ph_ep_write_small(c->server, terminate, sizeof terminate);
    close_with_error(c, "FATAL", "57P01", "phantom: terminating connection: proxy shutting down");
}

/* ---- events ---------------------------------------------------------------- */

static short want_for(const ph_ep *ep, bool rd, bool wr)
{
    short f = 0;
    if (rd)
        f |= ep->rd_wants_write ? EV_WRITE : EV_READ;
    if (wr)
        f |= ep->wr_wants_read ? EV_READ : EV_WRITE;
    return f;
}

static void set_event(ph_conn *c, struct event *ev, short *cur, short want)
{
    if (*cur == want)
        return;
    event_del(ev);
    event_assign(ev, c->w->base, event_get_fd(ev), want | EV_PERSIST, event_get_callback(ev), c);
    if (want)
        event_add(ev, NULL);
    *cur = want;
}

static void update_events(ph_conn *c)
{
    short cw = 0, sw = 0;
    switch (c->state) {
    case CS_STARTUP:
        cw = EV_READ;
        break;
    case CS_CLIENT_TLS:
        cw = want_for(&c->client, true, false);
        break;
    case CS_CONNECTING:
        break;
    case CS_RELAY:
        cw = want_for(&c->client, ph_dir_wants_read(&c->c2s), ph_dir_wants_write(&c->s2c));
        sw = want_for(c->server, ph_dir_wants_read(&c->s2c), ph_dir_wants_write(&c->c2s));
        break;
    case CS_CLOSING:
        cw = ph_dir_wants_write(&c->s2c) ? want_for(&c->client, false, true) : 0;
        break;
    case CS_DEAD:
        break;
    }
    set_event(c, c->cev, &c->cev_flags, cw);
    if (c->sev)
        set_event(c, c->sev, &c->sev_flags, sw);
}

/* ---- relay ------------------------------------------------------------------- */

static void server_lost(ph_conn *c)
{
    if (c->terminated) {
        enter_closing(c); /* the session ended as asked: relay what is queued */
        return;
    }
    if (c->s2c.fr.type == PGP_B_ERROR && pgf_at_boundary(&c->s2c.fr)) {
        enter_closing(c); /* the server said why; relay what is queued */
        return;
    }
    ph_metrics_inc(PH_CTR_UP_LOST);
    close_with_error(c, "FATAL", "08006", "phantom: lost connection to target");
}

static void too_big(ph_conn *c, const ph_dir *d, bool from_client)
{
    char msg[200];
    if (d->fr.bad_len < 4) { /* a length word below its own size: not "too big" */
        snprintf(msg, sizeof msg, "phantom: invalid %s message length %u",
                 from_client ? "client" : "server", d->fr.bad_len);
        close_with_error(c, "FATAL", "08P01", msg);
        return;
    }
    if (!from_client)
        ph_metrics_inc(PH_CTR_UP_TOO_LARGE);
    snprintf(msg, sizeof msg, "phantom: %s message of %u bytes exceeds max_message_size (%u bytes)",
             from_client ? "client" : "server", d->fr.bad_len, d->fr.max_msg);
    ph_log_warn("message too large", "peer", c->peer, "from", from_client ? "client" : "server");
    close_with_error(c, "FATAL", "54000", msg);
}

/* Reacts to a relay status; returns false if the connection left RELAY. */
static bool on_status(ph_conn *c, ph_dir *d, ph_dir_status st)
{
    bool client_side = d == &c->c2s;
    switch (st) {
    case PH_DIR_OK:
        return true;
    case PH_DIR_EOF:
    case PH_DIR_ERR_READ:
        if (client_side) {
            conn_close(c);
        } else {
            server_lost(c);
        }
        return false;
    case PH_DIR_ERR_WRITE:
        if (client_side)
            server_lost(c);
        else
            conn_close(c);
        return false;
    case PH_DIR_ERR_LENGTH:
        too_big(c, d, client_side);
        return false;
    case PH_DIR_ERR_HOOK:
        if (!client_side)
            ph_metrics_inc(PH_CTR_UP_PROTOCOL);
        close_with_error(c, "FATAL", "08P01", "phantom: protocol violation from server");
        return false;
    case PH_DIR_ERR_NOMEM:
        close_with_error(c, "FATAL", "53200", "phantom: out of memory");
        return false;
    }
    return false;
}

static void relay_event(ph_conn *c, ph_ep *ep, short what)
{
    bool is_client = ep == &c->client;
    ph_dir *rd = is_client ? &c->c2s : &c->s2c; /* reads from ep */
    ph_dir *wr = is_client ? &c->s2c : &c->c2s; /* writes to ep */
    short rtrig = ep->rd_wants_write ? EV_WRITE : EV_READ;
    short wtrig = ep->wr_wants_read ? EV_READ : EV_WRITE;

    if ((what & wtrig) && ph_dir_wants_write(wr)) {
        if (!on_status(c, wr, ph_dir_flush(wr)))
            return;
    }
    if ((what & rtrig) && ph_dir_wants_read(rd)) {
        if (!on_status(c, rd, ph_dir_read(rd)))
            return;
        /* TLS may hold decrypted bytes epoll can't see: keep reading them. */
        while (ph_ep_pending(ep) && ph_dir_wants_read(rd))
            if (!on_status(c, rd, ph_dir_read(rd)))
                return;
    }
    if (c->draining)
        drain_if_idle(c);
    if (c->state != CS_RELAY && c->state != CS_CLOSING)
        return;
    update_events(c);
    /* Flushing towards ep may have unblocked reading from the other side,
     * whose TLS layer can already hold decrypted bytes epoll won't report. */
    ph_ep *other = is_client ? c->server : &c->client;
    if (c->state == CS_RELAY && ph_dir_wants_read(wr) && ph_ep_pending(other))
        event_active(is_client ? c->sev : c->cev, other->rd_wants_write ? EV_WRITE : EV_READ, 1);
}

static void closing_event(ph_conn *c, short what)
{
    if (ph_dir_wants_write(&c->s2c)) {
        ph_dir_status st = ph_dir_flush(&c->s2c);
        if (st == PH_DIR_OK && ph_dir_wants_write(&c->s2c)) {
            update_events(c);
            return;
        }
    }
    (void)what;
    conn_close(c);
}

/* ---- upstream ready -------------------------------------------------------- */

static void start_relay(ph_conn *c, ph_ep *server)
{
    const ph_config *cfg = &c->g->cfg;
    c->server = server;
    c->sev = event_new(c->w->base, server->fd, 0, on_server, c);
    if (!c->sev || ph_dir_init(&c->s2c, server, &c->client, cfg->buffer_size, cfg->max_message_size,
                               &s2c_hooks, c) != 0) {
        close_with_error(c, "FATAL", "53200", "phantom: out of memory");
        return;
    }
    c->c2s.dst = server;
    if (c->g->engine && !(c->sess = ph_session_new(c->g->engine))) {
        close_with_error(c, "FATAL", "53200", "phantom: out of memory");
        return;
    }
    /* phantom.tenant is the proxy's: taken out before the packet goes upstream */
    char why[200];
    if (ph_session_startup(c->sess, c->startup, &c->startup_len, why, sizeof why) != 0) {
        ph_log_info("client startup rejected", "peer", c->peer, "reason", why);
        close_with_error(c, "FATAL", "22023", why);
        return;
    }
    uint8_t *pkt = malloc(c->startup_len);
    if (!pkt) {
        close_with_error(c, "FATAL", "53200", "phantom: out of memory");
        return;
    }
    memcpy(pkt, c->startup, c->startup_len);
    c->state = CS_RELAY;
    if (pg_outq_own(&c->c2s.out, pkt, c->startup_len) != 0 ||
        !on_status(c, &c->c2s, ph_dir_process(&c->c2s)))
        return;
    update_events(c);
}

static void on_upstream(void *ud, ph_ep *server, const char *err);

/* ---- startup phase ----------------------------------------------------------- */

static void startup_failed(ph_conn *c, const char *msg)
{
    ph_log_info("client startup rejected", "peer", c->peer, "reason", msg);
    close_with_error(c, "FATAL", "08P01", msg);
}

static void begin_client_tls(ph_conn *c)
{
    c->client.ssl = SSL_new(c->g->client_tls);
    if (!c->client.ssl || SSL_set_fd(c->client.ssl, c->client.fd) != 1) {
        conn_close(c);
        return;
    }
    SSL_set_accept_state(c->client.ssl);
    c->state = CS_CLIENT_TLS;
    c->c2s.len = c->c2s.done = 0;
    update_events(c);
}

static void on_startup_packet(ph_conn *c, const pgp_startup *s, const uint8_t *raw)
{
    switch (s->kind) {
    case PGP_PKT_SSL: {
        /* Bytes after SSLRequest would be plaintext smuggled past TLS: refuse. */
        bool ok = c->g->client_tls && !c->tls_done && c->c2s.len == 8;
        if (c->c2s.len != 8) {
            startup_failed(c, "phantom: unexpected data after SSLRequest");
            return;
        }
        char reply = ok ? 'S' : 'N';
        if (ph_ep_write_small(&c->client, &reply, 1) != 0) {
            conn_close(c);
            return;
        }
        if (ok) {
            begin_client_tls(c);
            return;
        }
        c->c2s.len = 0;
        return;
    }
    case PGP_PKT_GSSENC: {
        char reply = 'N'; /* GSSAPI encryption is not offered */
        if (c->c2s.len != 8) {
            startup_failed(c, "phantom: unexpected data after GSSENCRequest");
            return;
        }
        c->c2s.len = 0;
        if (ph_ep_write_small(&c->client, &reply, 1) != 0)
            conn_close(c);
        return;
    }
    case PGP_PKT_CANCEL:
        ph_cancel_forward(c->w, raw);
        conn_close(c);
        return;
    case PGP_PKT_STARTUP:
        break;
    }
    memcpy(c->startup, raw, s->len);
    c->startup_len = s->len;
    c->c2s.done = s->len; /* the rest (if any) is framed once relaying */
    c->state = CS_CONNECTING;
    update_events(c);
    c->up = ph_upstream_connect(c->w, c->g, on_upstream, c);
    if (!c->up)
        close_with_error(c, "FATAL", "53200", "phantom: out of memory");
}

static void startup_read(ph_conn *c)
{
    ph_dir *d = &c->c2s;
    ssize_t r = ph_ep_read(&c->client, d->buf + d->len, d->cap - d->len);
    if (r == PH_IO_AGAIN)
        return;
    if (r <= 0) {
        conn_close(c); /* closed before starting: nothing to say */
        return;
    }
    d->len += (size_t)r;
    pgp_startup s;
    pgp_status st = pgp_parse_startup(d->buf, d->len, &s);
    if (st == PGP_NEED_MORE) {
        if (d->len >= PGP_MAX_STARTUP_PACKET)
            startup_failed(c, "phantom: invalid startup packet");
        return;
    }
    if (st == PGP_ERR_VERSION) {
        startup_failed(c, "phantom: unsupported frontend protocol");
        return;
    }
    if (st != PGP_OK) {
        startup_failed(c, "phantom: invalid startup packet");
        return;
    }
    on_startup_packet(c, &s, d->buf);
}

static void client_tls_step(ph_conn *c)
{
    char why[200] = "";
    switch (ph_tls_handshake(c->client.ssl, why, sizeof why)) {
    case PH_HS_DONE:
        c->tls_done = true;
        c->state = CS_STARTUP;
        c->client.rd_wants_write = false;
        update_events(c);
        return;
    case PH_HS_WANT_READ:
        c->client.rd_wants_write = false;
        update_events(c);
        return;
    case PH_HS_WANT_WRITE:
        c->client.rd_wants_write = true;
        update_events(c);
        return;
    case PH_HS_FAILED:
        ph_log_info("client TLS handshake failed", "peer", c->peer, "reason", why);
        conn_close(c);
        return;
    }
}

static void on_upstream(void *ud, ph_ep *server, const char *err)
{
    ph_conn *c = ud;
    c->up = NULL;
    if (!server) {
        char msg[400];
        ph_metrics_inc(PH_CTR_UP_CONNECT);
        snprintf(msg, sizeof msg, "phantom: could not connect to target %s:%s: %s",
                 c->g->target_host, c->g->target_port, err);
        ph_log_warn("upstream connect failed", "peer", c->peer, "reason", err);
        close_with_error(c, "FATAL", "08001", msg);
        return;
    }
    start_relay(c, server); /* the startup timeout runs on until the login is done */
}

/* ---- callbacks ----------------------------------------------------------------- */

static void on_client(evutil_socket_t fd, short what, void *arg)
{
    ph_conn *c = arg;
    (void)fd;
    switch (c->state) {
    case CS_STARTUP:
        do
            startup_read(c);
        while (c->state == CS_STARTUP && ph_ep_pending(&c->client));
        return;
    case CS_CLIENT_TLS:
        client_tls_step(c);
        return;
    case CS_CONNECTING:
        return;
    case CS_RELAY:
        relay_event(c, &c->client, what);
        return;
    case CS_CLOSING:
        closing_event(c, what);
        return;
    case CS_DEAD:
        return;
    }
}

static void on_server(evutil_socket_t fd, short what, void *arg)
{
    ph_conn *c = arg;
    (void)fd;
    if (c->state == CS_RELAY)
        relay_event(c, c->server, what);
}

/* limits.startup_timeout: the client did not complete its startup packet,
 * TLS handshake or authentication in time (PostgreSQL's
 * authentication_timeout; its SQLSTATE and wording). */
static void startup_timed_out(ph_conn *c)
{
    ph_log_info("client startup timed out", "peer", c->peer);
    if (c->state == CS_CLIENT_TLS) { /* mid-handshake: plaintext would be garbage */
        conn_close(c);
        return;
    }
    close_with_error(c, "FATAL", "57014", "phantom: canceling authentication due to timeout");
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    ph_conn *c = arg;
    (void)fd;
    (void)what;
    switch (c->state) {
    case CS_DEAD:
        conn_destroy(c);
        return;
    case CS_CLOSING:
        conn_close(c);
        return;
    case CS_STARTUP:
    case CS_CLIENT_TLS:
    case CS_CONNECTING:
        startup_timed_out(c);
        return;
    case CS_RELAY:
        if (!c->logged_in)
            startup_timed_out(c);
        return;
    }
}

/* ---- lifecycle ------------------------------------------------------------------- */

static void arm_timer(ph_conn *c, unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

ph_conn *ph_conn_new(ph_worker_ctx *w, int fd, const char *peer, ph_conn_gone_cb gone, void *owner)
{
    ph_conn *c = ph_calloc(1, sizeof *c);
    ph_gen *g = c ? ph_gen_acquire(w->rt) : NULL;
    if (!g) {
        free(c);
        close(fd);
        return NULL;
    }
    c->w = w;
    c->g = g;
    c->gone = gone;
    c->owner = owner;
    c->client.fd = fd;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->state = CS_STARTUP;
    /* The first buffer must hold a whole startup packet. */
    size_t bufsize = g->cfg.buffer_size;
    if (bufsize < PGP_MAX_STARTUP_PACKET)
        bufsize = PGP_MAX_STARTUP_PACKET;
    c->cev = event_new(w->base, fd, 0, on_client, c);
    c->timer = evtimer_new(w->base, on_timer, c);
    /* c2s reads the client from the start; its destination is set on connect. */
    if (!c->cev || !c->timer ||
        ph_dir_init(&c->c2s, &c->client, NULL, bufsize, g->cfg.max_message_size, &c2s_hooks, c) !=
            0) {
        if (c->cev)
            event_free(c->cev);
        if (c->timer)
            event_free(c->timer);
        ph_dir_free(&c->c2s);
        close(fd);
        ph_gen_release(g);
        free(c);
        return NULL;
    }
    arm_timer(c, g->cfg.startup_timeout_ms);
    update_events(c);
    return c;
}

/* Frees everything; only ever called from the timer callback. */
static void conn_destroy(ph_conn *c)
{
    if (c->up)
        ph_upstream_abort(c->up);
    if (c->cev)
        event_free(c->cev);
    if (c->sev)
        event_free(c->sev);
    if (c->timer)
        event_free(c->timer);
    ph_dir_free(&c->c2s);
    ph_dir_free(&c->s2c);
    ph_session_free(c->sess);
    if (c->server) {
        ph_ep_close(c->server);
        free(c->server);
    }
    ph_ep_close(&c->client);
    OPENSSL_cleanse(c->startup, c->startup_len);
    if (c->gone)
        c->gone(c->owner, c);
    ph_gen_release(c->g); /* after the session: it uses the generation's engine */
    free(c);
}

/*
 * Closes the connection: stops all events now and frees it from the event
 * loop, so callers up the stack may still look at c->state (CS_DEAD).
 */
static void conn_close(ph_conn *c)
{
    if (c->state == CS_DEAD)
        return;
    c->state = CS_DEAD;
    if (c->up) {
        ph_upstream_abort(c->up);
        c->up = NULL;
    }
    update_events(c);
    event_active(c->timer, EV_TIMEOUT, 1);
}

/* Stops reading; writes what is queued for the client, then closes. */
static void enter_closing(ph_conn *c)
{
    c->state = CS_CLOSING;
    if (c->up) {
        ph_upstream_abort(c->up);
        c->up = NULL;
    }
    update_events(c);
    if (!ph_dir_wants_write(&c->s2c)) {
        conn_close(c);
        return;
    }
    arm_timer(c, CLOSE_TIMEOUT_MS);
}

void ph_conn_drain(ph_conn *c)
{
    c->draining = true;
    switch (c->state) {
    case CS_STARTUP:
    case CS_CLIENT_TLS: /* not yet a session: nothing to finish */
        conn_close(c);
        return;
    case CS_RELAY:
        drain_if_idle(c);
        return;
    default:
        return;
    }
}

void ph_conn_kill(ph_conn *c, const char *why)
{
    if (c->state == CS_CLOSING || c->state == CS_DEAD) {
        conn_close(c);
        return;
    }
    close_with_error(c, "FATAL", "57P01", why);
}
