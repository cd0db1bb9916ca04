/*
 * fuzz_msgcheck.h — the "whole messages only" check of the stream fuzz
 * targets (fuzz_server, fuzz_conversation).
 *
 * Owns: following an output stream of PostgreSQL typed messages as its
 * bytes arrive, in any cuts, and aborting on a length word no framer
 * accepts; msgcheck_at_boundary() says whether the stream ends between two
 * messages.
 */
#ifndef PHANTOM_FUZZ_MSGCHECK_H
#define PHANTOM_FUZZ_MSGCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/bytes.h"

typedef struct msgcheck {
    uint8_t hdr[5];
    size_t have;   /* header bytes of the current message seen */
    uint64_t left; /* body bytes of the current message still to come */
} msgcheck;

static inline void msgcheck_bytes(msgcheck *m, const uint8_t *p, size_t n)
{
    while (n) {
        if (m->left) {
            size_t k = n < m->left ? n : (size_t)m->left;
            m->left -= k;
            p += k;
            n -= k;
            continue;
        }
        m->hdr[m->have++] = *p++;
        n--;
        if (m->have == 5) {
            uint32_t l = ph_get_u32(m->hdr + 1);
            if (l < 4)
                abort(); /* a length word no framer accepts */
            m->left = l - 4;
            m->have = 0;
        }
    }
}

static inline bool msgcheck_at_boundary(const msgcheck *m)
{
    return m->have == 0 && m->left == 0;
}

#endif
