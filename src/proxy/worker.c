/*
 * worker.c — event-loop thread: accept, run connections, drain; see worker.h.
 */
#include "proxy/worker.h"

#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "common/bytes.h"
#include "common/log.h"
#include "common/mem.h"
#include "ops/metrics.h"
#include "protocol/pg/pgproto.h"
#include "proxy/conn.h"
#include "proxy/io.h"

#define ACCEPT_BATCH 64
/* Out of file descriptors (or socket memory): the listening socket stays
 * readable, so accepting again at once would spin; wait this long. */
#define ACCEPT_PAUSE_MS 100
/* How often the event loop proves it runs (rt->beat_ms, read by /healthz). */
#define HEARTBEAT_MS 1000

struct ph_worker {
    ph_worker_ctx ctx;
    int id;
    pthread_t thread;
    int listen_fd;
    struct event *accept_ev;
    struct event *accept_pause; /* re-enables accept_ev after a resource shortage */
    bool accept_paused;
    bool accept_short; /* paused since the last successful accept (logged once) */
    int ctl[2];        /* control pipe: 'd' drain, 'k' kill */
    struct event *ctl_ev;
    struct event *drain_timer;
    struct event *heartbeat;
    ph_conn *conns;
    unsigned nconns;
    unsigned trim_mark; /* connection count the heap was last sized for */
    bool draining;
};

static void maybe_exit(ph_worker *w)
{
    if (w->draining && w->nconns == 0)
        event_base_loopexit(w->ctx.base, NULL);
}

/*
 * Gives the memory of connections that are gone back to the system once the
 * count has halved since its high-water mark: glibc keeps freed chunks in the
 * middle of a thread's heap, so after a burst of connections the RSS would
 * otherwise stay at (and, with fragmentation, creep above) the burst's peak.
 * At most about log2(peak) trims per decline; each takes a few milliseconds.
 */
static void trim_heap(ph_worker *w)
{
    if (w->nconns >= w->trim_mark / 2 || w->trim_mark < 16)
        return;
    w->trim_mark = w->nconns;
#ifdef __GLIBC__
    (void)malloc_trim(0);
#endif
}

static void on_conn_gone(void *owner, ph_conn *c)
{
    ph_worker *w = owner;
    ph_conn_unlink(&w->conns, c);
    w->nconns--;
    atomic_fetch_sub(&w->ctx.rt->connections, 1);
    trim_heap(w);
    maybe_exit(w);
}

static void peer_string(const struct sockaddr_storage *ss, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
    }
    snprintf(out, n, "%s:%u", host, port);
}

/* Over the connection limit: answer like PostgreSQL does, then close. */
static void refuse(int fd)
{
    ph_buf b = {0};
    pgp_error e = {.severity = "FATAL",
                   .sqlstate = "53300",
                   .message = "phantom: too many connections (max_connections reached)"};
    if (pgp_build_error(&b, &e) == 0) {
        ph_ep ep = {.fd = fd};
        (void)ph_ep_write_small(&ep, b.data, b.len);
    }
    ph_buf_free(&b);
    close(fd);
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    ph_worker *w = arg;
    (void)fd;
    (void)what;
    w->accept_paused = false;
    if (w->accept_ev && !w->draining && event_add(w->accept_ev, NULL) != 0)
        ph_log_error("cannot resume accepting connections");
}

/* Stops accepting for ACCEPT_PAUSE_MS: the pending connections wait in the
 * listen backlog until descriptors are free again. Logged once per shortage. */
static void pause_accept(ph_worker *w, int err)
{
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    if (w->accept_paused || !w->accept_pause)
        return;
    if (!w->accept_short)
        ph_log_warn("accept paused", "error", strerror(err), "hint",
                    err == EMFILE ? "raise the open file limit (ulimit -n) or lower "
                                    "limits.max_connections"
                                  : "system resources exhausted");
    w->accept_short = true;
    if (event_del(w->accept_ev) == 0 && evtimer_add(w->accept_pause, &tv) == 0)
        w->accept_paused = true;
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    ph_worker *w = arg;
    (void)what;
    for (int i = 0; i < ACCEPT_BATCH && !w->draining; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_accept(w, errno);
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                     errno != ECONNABORTED)
                ph_log_warn("accept failed", "error", strerror(errno));
            return;
        }
        if (w->accept_short) {
            w->accept_short = false;
            ph_log_info("accepting connections again");
        }
        ph_sock_tune(fd);
        unsigned n = atomic_fetch_add(&w->ctx.rt->connections, 1) + 1;
        if (n > atomic_load_explicit(&w->ctx.rt->max_connections, memory_order_relaxed)) {
            atomic_fetch_sub(&w->ctx.rt->connections, 1);
            ph_metrics_inc(PH_CTR_CONN_REJECTED);
            refuse(fd);
            continue;
        }
        char peer[64];
        peer_string(&ss, peer, sizeof peer);
        ph_conn *c = ph_conn_new(&w->ctx, fd, peer, on_conn_gone, w);
        if (!c) {
            atomic_fetch_sub(&w->ctx.rt->connections, 1);
            continue;
        }
        ph_metrics_inc(PH_CTR_CONN_ACCEPTED);
        ph_conn_link(&w->conns, c);
        w->nconns++;
        if (w->nconns > w->trim_mark)
            w->trim_mark = w->nconns;
        ph_log_debug("client connected", "peer", peer);
    }
}

static void kill_all(ph_worker *w)
{
    for (ph_conn *c = w->conns; c; c = ph_conn_next(c))
        ph_conn_kill(c, "phantom: terminating connection: proxy shutdown timeout reached");
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kill_all(arg);
}

static void start_drain(ph_worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    if (w->accept_ev) {
        event_free(w->accept_ev);
        w->accept_ev = NULL;
    }
    if (w->accept_pause)
        evtimer_del(w->accept_pause);
    if (w->listen_fd >= 0) {
        close(w->listen_fd);
        w->listen_fd = -1;
    }
    for (ph_conn *c = w->conns; c; c = ph_conn_next(c))
        ph_conn_drain(c);
    unsigned ms = atomic_load(&w->ctx.rt->shutdown_timeout_ms);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    w->drain_timer = evtimer_new(w->ctx.base, on_drain_timeout, w);
    if (w->drain_timer)
        evtimer_add(w->drain_timer, &tv);
    maybe_exit(w);
}

static void on_ctl(evutil_socket_t fd, short what, void *arg)
{
    ph_worker *w = arg;
    char cmd[16];
    (void)what;
    ssize_t n = read(fd, cmd, sizeof cmd);
    for (ssize_t i = 0; i < n; i++) {
        start_drain(w);
        if (cmd[i] == 'k')
            kill_all(w);
    }
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ph_worker_clock_ms(void)
{
    return mono_ms();
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    ph_worker *w = arg;
    (void)fd;
    (void)what;
    atomic_store_explicit(&w->ctx.rt->beat_ms[w->id], mono_ms(), memory_order_relaxed);
}

ph_worker *ph_worker_new(ph_runtime *rt, int id, int listen_fd)
{
    ph_worker *w = ph_calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->id = id;
    w->listen_fd = listen_fd;
    w->ctl[0] = w->ctl[1] = -1;
    w->ctx.rt = rt;
    struct event_config *ec = event_config_new();
    if (ec) {
        event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
        w->ctx.base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    if (!w->ctx.base || pipe2(w->ctl, O_NONBLOCK | O_CLOEXEC) != 0)
        goto fail;
    w->ctx.dns = evdns_base_new(w->ctx.base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                                 EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!w->ctx.dns) /* no resolv.conf: numeric targets and /etc/hosts still work */
        w->ctx.dns = evdns_base_new(w->ctx.base, 0);
    if (w->ctx.dns)
        evdns_base_load_hosts(w->ctx.dns, NULL);
    w->accept_ev = event_new(w->ctx.base, listen_fd, EV_READ | EV_PERSIST, on_accept, w);
    w->accept_pause = evtimer_new(w->ctx.base, on_accept_resume, w);
    w->ctl_ev = event_new(w->ctx.base, w->ctl[0], EV_READ | EV_PERSIST, on_ctl, w);
    w->heartbeat = event_new(w->ctx.base, -1, EV_PERSIST, on_heartbeat, w);
    struct timeval beat = {HEARTBEAT_MS / 1000, (HEARTBEAT_MS % 1000) * 1000};
    atomic_store(&rt->beat_ms[id], mono_ms());
    if (!w->ctx.dns || !w->accept_ev || !w->accept_pause || !w->ctl_ev || !w->heartbeat ||
        event_add(w->accept_ev, NULL) != 0 || event_add(w->ctl_ev, NULL) != 0 ||
        event_add(w->heartbeat, &beat) != 0)
        goto fail;
    return w;
fail:
    ph_log_error("cannot create worker");
    w->thread = 0;
    ph_worker_join(w);
    return NULL;
}

static void *worker_main(void *arg)
{
    ph_worker *w = arg;
    event_base_dispatch(w->ctx.base);
    atomic_store(&w->ctx.rt->loop_done[w->id], true);
    atomic_fetch_sub(&w->ctx.rt->workers_running, 1);
    return NULL;
}

int ph_worker_start(ph_worker *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

static void send_ctl(ph_worker *w, char cmd)
{
    ssize_t r = write(w->ctl[1], &cmd, 1);
    (void)r;
}

void ph_worker_drain(ph_worker *w)
{
    send_ctl(w, 'd');
}

void ph_worker_kill(ph_worker *w)
{
    send_ctl(w, 'k');
}

void ph_worker_join(ph_worker *w)
{
    if (w->thread)
        pthread_join(w->thread, NULL);
    if (w->accept_ev)
        event_free(w->accept_ev);
    if (w->accept_pause)
        event_free(w->accept_pause);
    if (w->ctl_ev)
        event_free(w->ctl_ev);
    if (w->drain_timer)
        event_free(w->drain_timer);
    if (w->heartbeat)
        event_free(w->heartbeat);
    if (w->ctx.dns)
        evdns_base_free(w->ctx.dns, 0);
    if (w->ctx.base)
        event_base_free(w->ctx.base);
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    if (w->ctl[0] >= 0)
        close(w->ctl[0]);
    if (w->ctl[1] >= 0)
        close(w->ctl[1]);
    free(w);
}
