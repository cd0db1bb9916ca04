/*
 * relay.h — one direction of a proxied connection (client→server or
 * server→client): receive buffer, framer and output queue.
 *
 * Owns: moving bytes from src to dst with message boundaries known. Bytes
 * nobody rewrites are written from the receive buffer itself (no copy);
 * nothing more is read from src while dst has not taken what is queued, so a
 * slow reader slows the writer instead of growing memory (backpressure). The
 * buffer only grows to hold one inspected message, never past the maximum
 * message size, and shrinks back afterwards.
 */
#ifndef PHANTOM_RELAY_H
#define PHANTOM_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/pg/framer.h"
#include "protocol/pg/outq.h"
#include "proxy/io.h"

typedef enum {
    PH_DIR_OK = 0,
    PH_DIR_EOF,        /* src closed in an orderly way */
    PH_DIR_ERR_READ,   /* src broken */
    PH_DIR_ERR_WRITE,  /* dst broken */
    PH_DIR_ERR_LENGTH, /* a message length over the limit (see fr.bad_len) */
    PH_DIR_ERR_HOOK,   /* a hook refused a message */
    PH_DIR_ERR_NOMEM,
} ph_dir_status;

typedef struct ph_dir {
    ph_ep *src, *dst;
    uint8_t *buf;
    size_t cap, len, done; /* buf[done..len) not yet framed */
    size_t base_cap;       /* the size to shrink back to */
    size_t need;           /* bytes an incomplete inspected message needs */
    pg_framer fr;
    pg_outq out;
    const pgf_hooks *hooks;
    void *ud;
    bool eof;
} ph_dir;

int ph_dir_init(ph_dir *d, ph_ep *src, ph_ep *dst, size_t bufsize, uint32_t max_msg,
                const pgf_hooks *hooks, void *ud);
void ph_dir_free(ph_dir *d);

/* Seeds the buffer with bytes already read elsewhere (e.g. during startup). */
int ph_dir_preload(ph_dir *d, const uint8_t *p, size_t n);

/* One read from src, then frame and write to dst. */
ph_dir_status ph_dir_read(ph_dir *d);
/* Frames whatever is buffered (after preload) and writes it. */
ph_dir_status ph_dir_process(ph_dir *d);
/* Writes queued bytes to dst until done or dst would block. */
ph_dir_status ph_dir_flush(ph_dir *d);

static inline bool ph_dir_wants_read(const ph_dir *d)
{
    return !d->eof && pg_outq_empty(&d->out);
}

static inline bool ph_dir_wants_write(const ph_dir *d)
{
    return !pg_outq_empty(&d->out);
}

/* True when nothing is buffered or queued and no message is half-relayed. */
bool ph_dir_idle(const ph_dir *d);

#endif
