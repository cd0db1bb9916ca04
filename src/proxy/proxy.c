/*
 * proxy.c — process-level orchestration of the proxy; see proxy.h.
 */
#include "proxy/proxy.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "common/log.h"
#include "proxy/runtime.h"
#include "proxy/tls.h"
#include "proxy/worker.h"

#define MAX_WORKERS 64

/* A listening socket with SO_REUSEPORT so every worker can have its own. */
static int open_listener(const char *host, const char *port, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    const char *h = (strcmp(host, "*") == 0 || host[0] == '\0') ? NULL : host;
    int gai = getaddrinfo(h, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        snprintf(err, errlen, "cannot listen on %s:%s: %s", host, port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static unsigned worker_count(const ph_config *cfg)
{
    unsigned n = cfg->workers;
    if (n == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (unsigned)cores : 1;
    }
    return n > MAX_WORKERS ? MAX_WORKERS : n;
}

static int setup_runtime(ph_runtime *rt, const ph_config *cfg, const ph_engine *engine, char *err,
                         size_t errlen)
{
    memset(rt, 0, sizeof *rt);
    rt->cfg = cfg;
    rt->engine = engine;
    if (ph_split_hostport(cfg->target, rt->target_host, sizeof rt->target_host, rt->target_port,
                          sizeof rt->target_port) != 0) {
        snprintf(err, errlen, "invalid target %s", cfg->target);
        return -1;
    }
    if (cfg->sslmode != PH_SSLMODE_DISABLE) {
        rt->upstream_tls = ph_tls_upstream_ctx(cfg, err, errlen);
        if (!rt->upstream_tls)
            return -1;
    }
    if (cfg->client_tls_cert) {
        rt->client_tls = ph_tls_client_ctx(cfg, err, errlen);
        if (!rt->client_tls)
            return -1;
    }
    return 0;
}

static void free_runtime(ph_runtime *rt)
{
    SSL_CTX_free(rt->upstream_tls);
    SSL_CTX_free(rt->client_tls);
}

/* Blocks until SIGTERM/SIGINT; SIGHUP is acknowledged (reload comes later). */
static void wait_for_stop_signal(const sigset_t *set)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            ph_log_warn("reload requested", "result", "not supported yet; restart to apply");
            continue;
        }
        ph_log_info("shutting down", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM");
        return;
    }
}

/* Drains the workers and waits for them; a second stop signal kills sessions. */
static void drain_workers(ph_runtime *rt, ph_worker **workers, unsigned n, const sigset_t *set)
{
    for (unsigned i = 0; i < n; i++)
        ph_worker_drain(workers[i]);
    bool killed = false;
    while (atomic_load(&rt->workers_running) > 0) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        int sig = sigtimedwait(set, NULL, &ts);
        if ((sig == SIGTERM || sig == SIGINT) && !killed) {
            ph_log_warn("second stop signal: closing all sessions now");
            for (unsigned i = 0; i < n; i++)
                ph_worker_kill(workers[i]);
            killed = true;
        }
    }
}

/* Each session holds two descriptors (client and upstream): raise the soft
 * open-file limit towards the hard one when max_connections needs more (the
 * usual soft default, 1024, runs out near 500 sessions), and say so when even
 * the hard limit is too low. */
static void raise_fd_limit(unsigned max_connections)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max_connections * 2 + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
    if (rl.rlim_cur > old && setrlimit(RLIMIT_NOFILE, &rl) != 0)
        rl.rlim_cur = old;
    if (rl.rlim_cur < want) {
        char have[32], need[32];
        snprintf(have, sizeof have, "%llu", (unsigned long long)rl.rlim_cur);
        snprintf(need, sizeof need, "%llu", (unsigned long long)want);
        ph_log_warn("open file limit too low for max_connections", "limit", have, "needed", need);
    }
}

int ph_proxy_run(const ph_config *cfg, const ph_engine *engine)
{
    char err[512] = "";
    ph_runtime rt;
    if (setup_runtime(&rt, cfg, engine, err, sizeof err) != 0) {
        ph_log_error("cannot start", "error", err);
        free_runtime(&rt);
        return 1;
    }
    char lhost[256], lport[16];
    if (ph_split_hostport(cfg->listen, lhost, sizeof lhost, lport, sizeof lport) != 0) {
        ph_log_error("cannot start", "error", "invalid listen address");
        free_runtime(&rt);
        return 1;
    }

    /* Workers inherit a mask that blocks the signals the main thread waits for. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    raise_fd_limit(cfg->max_connections);
    unsigned n = worker_count(cfg);
    ph_worker *workers[MAX_WORKERS] = {0};
    unsigned started = 0;
    int status = 0;
    for (unsigned i = 0; i < n; i++) {
        int fd = open_listener(lhost, lport, err, sizeof err);
        if (fd < 0) {
            ph_log_error("cannot start", "error", err);
            status = 1;
            break;
        }
        workers[i] = ph_worker_new(&rt, (int)i, fd);
        atomic_fetch_add(&rt.workers_running, 1);
        if (!workers[i] || ph_worker_start(workers[i]) != 0) {
            atomic_fetch_sub(&rt.workers_running, 1);
            status = 1;
            break;
        }
        started++;
    }
    if (status == 0) {
        char nbuf[16];
        snprintf(nbuf, sizeof nbuf, "%u", n);
        ph_log_info("listening", "listen", cfg->listen, "target", cfg->target, "workers", nbuf,
                    "sslmode", ph_sslmode_name(cfg->sslmode), "client_tls",
                    rt.client_tls ? "on" : "off");
        wait_for_stop_signal(&set);
    }
    drain_workers(&rt, workers, started, &set);
    for (unsigned i = 0; i < n; i++)
        if (workers[i])
            ph_worker_join(workers[i]);
    free_runtime(&rt);
    ph_log_info("stopped");
    return status;
}
