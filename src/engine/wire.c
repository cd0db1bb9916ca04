/*
 * wire.c — message cursor and builders; see wire.h.
 */
#include "engine/wire.h"

#include <stdint.h>
#include <string.h>

#include "protocol/pg/pgproto.h"

void eng_rd_init(eng_rd *r, const uint8_t *msg, size_t total)
{
    r->p = msg + 5;
    r->n = total >= 5 ? total - 5 : 0;
    r->off = 0;
    r->bad = total < 5;
}

static bool rd_has(eng_rd *r, size_t k)
{
    if (r->bad || r->n - r->off < k) {
        r->bad = true;
        return false;
    }
    return true;
}

uint8_t eng_rd_u8(eng_rd *r)
{
    if (!rd_has(r, 1))
        return 0;
    return r->p[r->off++];
}

uint16_t eng_rd_u16(eng_rd *r)
{
    if (!rd_has(r, 2))
        return 0;
    uint16_t v = ph_get_u16(r->p + r->off);
    r->off += 2;
    return v;
}

uint32_t eng_rd_u32(eng_rd *r)
{
    if (!rd_has(r, 4))
        return 0;
    uint32_t v = ph_get_u32(r->p + r->off);
    r->off += 4;
    return v;
}

const char *eng_rd_cstr(eng_rd *r, size_t *len)
{
    const uint8_t *z = r->bad ? NULL : memchr(r->p + r->off, 0, r->n - r->off);
    if (!z) {
        r->bad = true;
        if (len)
            *len = 0;
        return "";
    }
    const char *s = (const char *)(r->p + r->off);
    size_t l = (size_t)(z - (r->p + r->off));
    r->off += l + 1;
    if (len)
        *len = l;
    return s;
}

const uint8_t *eng_rd_bytes(eng_rd *r, size_t n)
{
    if (!rd_has(r, n))
        return NULL;
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

int eng_msg_begin(ph_buf *b, uint8_t type, size_t *start)
{
    *start = b->len;
    return ph_buf_append_u8(b, type) || ph_buf_append_u32(b, 0) ? -1 : 0;
}

int eng_msg_end(ph_buf *b, size_t start)
{
    size_t len = b->len - start - 1;
    if (len > 0x7FFFFFFFu)
        return -1;
    ph_put_u32(b->data + start + 1, (uint32_t)len);
    return 0;
}

int eng_msg_put(ph_buf *b, uint8_t type, const void *body, size_t n)
{
    size_t st;
    if (eng_msg_begin(b, type, &st) || ph_buf_append(b, body, n))
        return -1;
    return eng_msg_end(b, st);
}

int eng_put_query(ph_buf *b, const char *sql, size_t len)
{
    size_t st;
    if (len > SIZE_MAX - 6 || ph_buf_reserve(b, len + 6) || eng_msg_begin(b, 'Q', &st) ||
        ph_buf_append(b, sql, len) || ph_buf_append_u8(b, 0))
        return -1;
    return eng_msg_end(b, st);
}

int eng_put_parse(ph_buf *b, const char *name, const char *sql, size_t len, uint16_t ntypes,
                  const uint32_t *types)
{
    size_t st;
    if (eng_msg_begin(b, 'P', &st) || ph_buf_append_cstr(b, name) || ph_buf_append(b, sql, len) ||
        ph_buf_append_u8(b, 0) || ph_buf_append_u16(b, ntypes))
        return -1;
    for (uint16_t i = 0; i < ntypes; i++)
        if (ph_buf_append_u32(b, types[i]))
            return -1;
    return eng_msg_end(b, st);
}

int eng_put_bind_empty(ph_buf *b, const char *portal, const char *stmt)
{
    size_t st;
    if (eng_msg_begin(b, 'B', &st) || ph_buf_append_cstr(b, portal) ||
        ph_buf_append_cstr(b, stmt) || ph_buf_append_u16(b, 0) || ph_buf_append_u16(b, 0) ||
        ph_buf_append_u16(b, 0))
        return -1;
    return eng_msg_end(b, st);
}

int eng_put_execute(ph_buf *b, const char *portal, uint32_t max_rows)
{
    size_t st;
    if (eng_msg_begin(b, 'E', &st) || ph_buf_append_cstr(b, portal) ||
        ph_buf_append_u32(b, max_rows))
        return -1;
    return eng_msg_end(b, st);
}

int eng_put_describe(ph_buf *b, uint8_t what, const char *name)
{
    size_t st;
    if (eng_msg_begin(b, 'D', &st) || ph_buf_append_u8(b, what) || ph_buf_append_cstr(b, name))
        return -1;
    return eng_msg_end(b, st);
}

int eng_put_close(ph_buf *b, uint8_t what, const char *name)
{
    size_t st;
    if (eng_msg_begin(b, 'C', &st) || ph_buf_append_u8(b, what) || ph_buf_append_cstr(b, name))
        return -1;
    return eng_msg_end(b, st);
}

int eng_put_copy_data(ph_buf *b, const uint8_t *p, size_t n)
{
    return eng_msg_put(b, 'd', p, n);
}

int eng_put_copy_fail(ph_buf *b, const char *msg)
{
    size_t st;
    if (eng_msg_begin(b, 'f', &st) || ph_buf_append_cstr(b, msg))
        return -1;
    return eng_msg_end(b, st);
}

int eng_put_error(ph_buf *b, const char *sqlstate, const char *message)
{
    pgp_error e = {.severity = "ERROR", .sqlstate = sqlstate, .message = message};
    return pgp_build_error(b, &e);
}
