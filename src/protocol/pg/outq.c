/*
 * outq.c — segment queue for zero-copy relaying; see outq.h.
 */
#include "protocol/pg/outq.h"

#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"

static int grow(pg_outq *q)
{
    if (q->head > 0 && q->head == q->n) {
        q->head = q->n = 0; /* empty: rewind */
    }
    if (q->n < q->cap)
        return 0;
    if (q->head > 0) { /* slide live segments to the front */
        memmove(q->v, q->v + q->head, (q->n - q->head) * sizeof *q->v);
        q->n -= q->head;
        q->head = 0;
        return 0;
    }
    pg_seg *nv = ph_array_grow(q->v, q->n, &q->cap, sizeof *nv, 8);
    if (!nv)
        return -1;
    q->v = nv;
    return 0;
}

int pg_outq_ref(pg_outq *q, const uint8_t *p, size_t len)
{
    if (len == 0)
        return 0;
    if (q->n > q->head) {
        pg_seg *t = &q->v[q->n - 1];
        if (!t->owned && t->ptr + t->len == p) {
            t->len += len;
            q->bytes += len;
            return 0;
        }
    }
    if (grow(q) != 0)
        return -1;
    q->v[q->n++] = (pg_seg){p, len, NULL};
    q->bytes += len;
    return 0;
}

int pg_outq_own(pg_outq *q, uint8_t *p, size_t len)
{
    if (len == 0) {
        free(p);
        return 0;
    }
    if (grow(q) != 0) {
        free(p);
        return -1;
    }
    q->v[q->n++] = (pg_seg){p, len, p};
    q->bytes += len;
    return 0;
}

size_t pg_outq_iov(const pg_outq *q, struct iovec *iov, size_t max)
{
    size_t k = 0;
    for (size_t i = q->head; i < q->n && k < max; i++, k++) {
        iov[k].iov_base = (void *)(uintptr_t)q->v[i].ptr;
        iov[k].iov_len = q->v[i].len;
    }
    return k;
}

void pg_outq_consume(pg_outq *q, size_t n)
{
    while (n > 0 && q->head < q->n) {
        pg_seg *s = &q->v[q->head];
        if (n < s->len) {
            s->ptr += n;
            s->len -= n;
            q->bytes -= n;
            return;
        }
        n -= s->len;
        q->bytes -= s->len;
        free(s->owned);
        q->head++;
    }
    if (q->head == q->n)
        q->head = q->n = 0;
}

bool pg_outq_refs_range(const pg_outq *q, const uint8_t *lo, const uint8_t *hi)
{
    for (size_t i = q->head; i < q->n; i++)
        if (!q->v[i].owned && q->v[i].ptr < hi && q->v[i].ptr + q->v[i].len > lo)
            return true;
    return false;
}

void pg_outq_clear(pg_outq *q)
{
    for (size_t i = q->head; i < q->n; i++)
        free(q->v[i].owned);
    free(q->v);
    memset(q, 0, sizeof *q);
}
