/*
 * health.c — the target reachability probe; see health.h.
 */
#include "ops/health.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* One address: 0 connected, else an errno value (ETIMEDOUT past deadline). */
static int try_connect(const struct addrinfo *a, uint64_t deadline)
{
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0)
        return errno;
    int err = 0;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
        err = errno;
        while (err == EINPROGRESS || err == EINTR) {
            uint64_t now = now_ms();
            if (now >= deadline) {
                err = ETIMEDOUT;
                break;
            }
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int r = poll(&pfd, 1, (int)(deadline - now));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                err = r == 0 ? ETIMEDOUT : errno;
                break;
            }
            socklen_t sl = sizeof err;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0)
                err = errno;
        }
    }
    close(fd);
    return err;
}

static int probe(const char *host, const char *port, unsigned timeout_ms, char *why, size_t n)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        snprintf(why, n, "cannot resolve %s: %s", host, gai_strerror(gai));
        return -1;
    }
    uint64_t deadline = now_ms() + timeout_ms;
    int err = ENOENT;
    for (const struct addrinfo *a = res; a && err != 0; a = a->ai_next)
        err = try_connect(a, deadline);
    freeaddrinfo(res);
    if (err == 0)
        return 0;
    if (err == ETIMEDOUT)
        snprintf(why, n, "no answer within %u ms", timeout_ms);
    else
        snprintf(why, n, "%s", strerror(err));
    return -1;
}

int ph_target_probe_check(ph_target_probe *p, const char *host, const char *port,
                          unsigned timeout_ms, char *why, size_t n)
{
    char target[sizeof p->target];
    snprintf(target, sizeof target, "%s:%s", host, port);
    uint64_t now = now_ms();
    if (!p->valid || strcmp(p->target, target) != 0 || now - p->at_ms >= PH_PROBE_CACHE_MS) {
        p->ok = probe(host, port, timeout_ms, p->why, sizeof p->why) == 0;
        p->valid = 1;
        p->at_ms = now_ms();
        snprintf(p->target, sizeof p->target, "%s", target);
    }
    if (!p->ok)
        snprintf(why, n, "%s", p->why);
    return p->ok ? 0 : -1;
}
