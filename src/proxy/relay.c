/*
 * relay.c — one relay direction: read, frame, write; see relay.h.
 */
#include "proxy/relay.h"

#include <stdlib.h>
#include <string.h>

#define IOV_MAX_BATCH 64

int ph_dir_init(ph_dir *d, ph_ep *src, ph_ep *dst, size_t bufsize, uint32_t max_msg,
                const pgf_hooks *hooks, void *ud)
{
    memset(d, 0, sizeof *d);
    d->buf = malloc(bufsize);
    if (!d->buf)
        return -1;
    d->src = src;
    d->dst = dst;
    d->cap = d->base_cap = bufsize;
    d->hooks = hooks;
    d->ud = ud;
    pgf_init(&d->fr, max_msg);
    return 0;
}

void ph_dir_free(ph_dir *d)
{
    pg_outq_clear(&d->out);
    free(d->buf);
    d->buf = NULL;
}

/*
 * The buffer size for the next read. An incomplete inspected message of
 * d->need bytes is grown towards as its bytes arrive, doubling when the
 * buffer is full, never to the size its length word announces at once: a
 * five-byte header must not reserve up to max_message_size (with 1000
 * connections, a terabyte of address space and commit charge).
 */
static size_t next_cap(const ph_dir *d)
{
    if (d->need <= d->base_cap)
        return d->base_cap;
    if (d->len < d->cap && d->cap <= d->need)
        return d->cap; /* room left for this message's next bytes */
    size_t grown = d->cap * 2;
    return grown < d->need ? grown : d->need;
}

/* Moves the unframed tail to the front and sizes the buffer for what comes next. */
static int compact(ph_dir *d)
{
    if (d->done) {
        memmove(d->buf, d->buf + d->done, d->len - d->done);
        d->len -= d->done;
        d->done = 0;
    }
    size_t want = next_cap(d);
    if (want != d->cap && d->len <= want) {
        uint8_t *nb = realloc(d->buf, want);
        if (!nb)
            return want > d->cap ? -1 : 0; /* failing to shrink is harmless */
        d->buf = nb;
        d->cap = want;
    }
    return 0;
}

int ph_dir_preload(ph_dir *d, const uint8_t *p, size_t n)
{
    if (n > d->cap - d->len) {
        uint8_t *nb = realloc(d->buf, d->len + n);
        if (!nb)
            return -1;
        d->buf = nb;
        d->cap = d->len + n;
    }
    memcpy(d->buf + d->len, p, n);
    d->len += n;
    return 0;
}

ph_dir_status ph_dir_flush(ph_dir *d)
{
    struct iovec iov[IOV_MAX_BATCH];
    while (!pg_outq_empty(&d->out)) {
        size_t k = pg_outq_iov(&d->out, iov, IOV_MAX_BATCH);
        ssize_t r = ph_ep_writev(d->dst, iov, (int)k);
        if (r == PH_IO_AGAIN)
            return PH_DIR_OK;
        if (r < 0)
            return PH_DIR_ERR_WRITE;
        pg_outq_consume(&d->out, (size_t)r);
    }
    if (d->done == d->len) /* everything framed and written: rewind for free */
        d->done = d->len = 0;
    return PH_DIR_OK;
}

ph_dir_status ph_dir_process(ph_dir *d)
{
    size_t used, need;
    pgf_status st = pgf_feed(&d->fr, d->buf + d->done, d->len - d->done, d->hooks, d->ud, &d->out,
                             &used, &need);
    d->done += used;
    d->need = need;
    ph_dir_status fs = ph_dir_flush(d);
    switch (st) {
    case PGF_OK:
        return fs;
    case PGF_ERR_LENGTH:
        return PH_DIR_ERR_LENGTH;
    case PGF_ERR_HOOK:
        return PH_DIR_ERR_HOOK;
    default:
        return PH_DIR_ERR_NOMEM;
    }
}

ph_dir_status ph_dir_read(ph_dir *d)
{
    if (!pg_outq_empty(&d->out))
        return PH_DIR_OK; /* backpressure: dst has not taken the last batch */
    if (compact(d) != 0)
        return PH_DIR_ERR_NOMEM;
    ssize_t r = ph_ep_read(d->src, d->buf + d->len, d->cap - d->len);
    if (r == PH_IO_AGAIN)
        return PH_DIR_OK;
    if (r == 0) {
        d->eof = true;
        return PH_DIR_EOF;
    }
    if (r < 0)
        return PH_DIR_ERR_READ;
    d->len += (size_t)r;
    return ph_dir_process(d);
}

bool ph_dir_idle(const ph_dir *d)
{
    return pg_outq_empty(&d->out) && d->done == d->len && pgf_at_boundary(&d->fr) &&
           d->fr.held == 0;
}
