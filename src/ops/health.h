/*
 * health.h — the reachability check behind /readyz: does the target accept
 * TCP connections?
 *
 * Owns: one probe (resolve, non-blocking connect under a deadline, close
 * without sending anything — PostgreSQL logs nothing for such a
 * connection) and its cached answer, so that probes arriving more often
 * than every PH_PROBE_CACHE_MS do not reach the database. Not thread-safe:
 * one probe state per caller thread (the ops HTTP thread).
 */
#ifndef PHANTOM_OPS_HEALTH_H
#define PHANTOM_OPS_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#define PH_PROBE_CACHE_MS 1000u

typedef struct ph_target_probe {
    char target[300]; /* "host:port" of the cached answer */
    uint64_t at_ms;   /* when it was made (monotonic) */
    int valid, ok;
    char why[200];
} ph_target_probe;

/* 0 when host:port accepted a TCP connection within timeout_ms, else -1
 * with a one-line reason in why. Reuses an answer for the same target
 * younger than PH_PROBE_CACHE_MS. Blocks for up to timeout_ms (plus name
 * resolution). */
int ph_target_probe_check(ph_target_probe *p, const char *host, const char *port,
                          unsigned timeout_ms, char *why, size_t n);

#endif
