/*
 * outq.h — the queue of bytes waiting to be written in one relay direction.
 *
 * Owns: an ordered list of segments that are either references into the
 * relay's receive buffer (zero-copy pass-through: the bytes are written from
 * where they were read) or heap chunks the proxy built itself (replaced or
 * injected messages), which the queue frees once written. No I/O here: the
 * caller turns the head of the queue into an iovec array and reports how many
 * bytes the socket took.
 */
#ifndef PHANTOM_OUTQ_H
#define PHANTOM_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct pg_seg {
    const uint8_t *ptr;
    size_t len;
    uint8_t *owned; /* non-NULL: freed when consumed */
} pg_seg;

typedef struct pg_outq {
    pg_seg *v;
    size_t head, n, cap; /* live segments are v[head .. n) */
    size_t bytes;        /* total unwritten bytes */
} pg_outq;

/* Appends a reference (merged with the tail if contiguous). 0 ok, -1 OOM. */
int pg_outq_ref(pg_outq *q, const uint8_t *p, size_t len);
/* Appends an owned chunk; the queue frees it — also when this call fails. */
int pg_outq_own(pg_outq *q, uint8_t *p, size_t len);
/* Fills up to max iovecs from the head; returns how many. */
size_t pg_outq_iov(const pg_outq *q, struct iovec *iov, size_t max);
/* Drops n written bytes from the head. */
void pg_outq_consume(pg_outq *q, size_t n);
/* True if any queued segment references memory in [lo, hi). */
bool pg_outq_refs_range(const pg_outq *q, const uint8_t *lo, const uint8_t *hi);
void pg_outq_clear(pg_outq *q);

static inline bool pg_outq_empty(const pg_outq *q)
{
    return q->bytes == 0;
}

#endif
