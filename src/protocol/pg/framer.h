/*
 * framer.h — splits one direction of a PostgreSQL v3 byte stream into
 * messages (no sockets, no I/O).
 *
 * Owns: message boundaries. It reads each type+length header, asks a hook
 * whether anyone needs the whole message; if not, the message's bytes are
 * queued for writing as they arrive — a 100 MB DataRow streams through a
 * small buffer without ever being held whole. A message someone inspects is
 * handed over complete and may be kept, replaced or dropped. Lengths over
 * the configured maximum are rejected before anything is allocated.
 */
#ifndef PHANTOM_FRAMER_H
#define PHANTOM_FRAMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "protocol/pg/outq.h"

typedef enum { PGF_PASS = 0, PGF_INSPECT = 1 } pgf_want;

/* Verdicts of on_message; a negative value is an error that stops the feed. */
typedef enum { PGF_KEEP = 0, PGF_REPLACED = 1, PGF_DROP = 2 } pgf_verdict;

typedef struct pgf_hooks {
    /* Called once per message header. NULL = pass everything. */
    pgf_want (*on_header)(void *ud, uint8_t type, uint32_t total);
    /* Called with a whole inspected message. To replace it, append the new
     * bytes (zero or more whole messages) to *rep and return PGF_REPLACED. */
    int (*on_message)(void *ud, const uint8_t *msg, uint32_t total, ph_buf *rep);
} pgf_hooks;

typedef enum {
    PGF_OK = 0,
    PGF_ERR_LENGTH = -1, /* a length word below 4 or above max_msg */
    PGF_ERR_HOOK = -2,   /* on_message returned an error */
    PGF_ERR_NOMEM = -3,
} pgf_status;

typedef struct pg_framer {
    uint32_t max_msg; /* largest accepted length word */
    uint32_t skip;    /* bytes of the current passed-through message still to come */
    uint32_t held;    /* size of an inspected message whose header was reported
                         but whose body is incomplete (it starts the next feed) */
    uint8_t type;     /* type of the last message whose header was read */
    uint32_t bad_len; /* on PGF_ERR_LENGTH: the offending length word */
} pg_framer;

void pgf_init(pg_framer *f, uint32_t max_msg);

/*
 * Feeds buf[0..len). Bytes that may be written now are appended to out (as
 * references into buf, or as owned replacements); *used tells how many input
 * bytes were dealt with — the rest (an incomplete header or inspected
 * message) must be presented again with more data after it. *need is the
 * size of the incomplete inspected message waiting at buf + *used (0 if
 * none), so the caller can make its buffer large enough.
 * On an error, *used covers the messages before the bad one (already queued).
 */
pgf_status pgf_feed(pg_framer *f, const uint8_t *buf, size_t len, const pgf_hooks *h, void *ud,
                    pg_outq *out, size_t *used, size_t *need);

/* True when no message is partially passed through. */
static inline bool pgf_at_boundary(const pg_framer *f)
{
    return f->skip == 0;
}

#endif
