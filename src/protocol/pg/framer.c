/*
 * framer.c — message boundary tracking for one stream direction; see framer.h.
 */
#include "protocol/pg/framer.h"

#include "protocol/pg/pgproto.h"

#include <stdlib.h>

void pgf_init(pg_framer *f, uint32_t max_msg)
{
    f->max_msg = max_msg;
    f->skip = 0;
    f->held = 0;
    f->type = 0;
    f->bad_len = 0;
}

/* Hands a hook's replacement to the queue, after the bytes before it. */
static pgf_status splice(pg_outq *out, const uint8_t *run, size_t runlen, ph_buf *rep, int verdict)
{
    if (pg_outq_ref(out, run, runlen) != 0) {
        ph_buf_free(rep);
        return PGF_ERR_NOMEM;
    }
    if (verdict == PGF_DROP || rep->len == 0) {
        ph_buf_free(rep);
        return PGF_OK;
    }
    size_t n;
    uint8_t *bytes = ph_buf_steal(rep, &n);
    return pg_outq_own(out, bytes, n) == 0 ? PGF_OK : PGF_ERR_NOMEM;
}

pgf_status pgf_feed(pg_framer *f, const uint8_t *buf, size_t len, const pgf_hooks *h, void *ud,
                    pg_outq *out, size_t *used, size_t *need)
{
    size_t pos = 0, run = 0; /* buf[run..pos) is kept as-is, not yet queued */
    pgf_status st = PGF_OK;
    *need = 0;
    if (len == 0) { /* nothing to frame (buf may be NULL: no pointer arithmetic on it) */
        *used = 0;
        return PGF_OK;
    }
    while (pos < len) {
        if (f->skip) {
            size_t k = len - pos < f->skip ? len - pos : f->skip;
            pos += k;
            f->skip -= (uint32_t)k;
            continue;
        }
        uint32_t total = f->held;
        if (!total) {
            uint8_t type;
            pgp_status ps = pgp_parse_header(buf + pos, len - pos, f->max_msg, &type, &total);
            if (ps == PGP_NEED_MORE)
                break;
            if (ps != PGP_OK) {
                f->type = buf[pos];
                f->bad_len = ph_get_u32(buf + pos + 1);
                st = PGF_ERR_LENGTH;
                break;
            }
            f->type = type;
            if (!h || !h->on_header || h->on_header(ud, type, total) == PGF_PASS) {
                f->skip = total;
                continue;
            }
        }
        if (len - pos < total) {
            f->held = total; /* header already reported: don't report it again */
            *need = total;
            break;
        }
        f->held = 0;
        ph_buf rep = {0};
        int v = h->on_message(ud, buf + pos, total, &rep);
        if (v < 0) {
            ph_buf_free(&rep);
            st = PGF_ERR_HOOK;
            break;
        }
        if (v == PGF_KEEP) {
            ph_buf_free(&rep); /* a hook that began a replacement and kept the message */
        } else {
            pgf_status s2 = splice(out, buf + run, pos - run, &rep, v);
            if (s2 != PGF_OK) {
                *used = pos;
                return s2;
            }
            run = pos + total;
        }
        pos += total;
    }
    if (pg_outq_ref(out, buf + run, pos - run) != 0)
        st = PGF_ERR_NOMEM;
    *used = pos;
    return st;
}
