/*
 * wire.h — bounds-checked reading and building of PostgreSQL v3 messages
 * for the engine (no sockets).
 *
 * Owns: a cursor over one whole message (type byte + length word + body)
 * whose reads never leave the message and latch an error flag instead, and
 * builders that append whole messages (the length word patched at the end)
 * to a ph_buf.
 */
#ifndef PHANTOM_ENGINE_WIRE_H
#define PHANTOM_ENGINE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"

typedef struct eng_rd {
    const uint8_t *p; /* the body (after type and length) */
    size_t n, off;
    bool bad;
} eng_rd;

/* Starts reading the body of msg[0..total) (total >= 5). */
void eng_rd_init(eng_rd *r, const uint8_t *msg, size_t total);
uint8_t eng_rd_u8(eng_rd *r);
uint16_t eng_rd_u16(eng_rd *r);
uint32_t eng_rd_u32(eng_rd *r);
/* A NUL-terminated string in place; *len without the NUL. "" when bad. */
const char *eng_rd_cstr(eng_rd *r, size_t *len);
/* n bytes in place; NULL when bad (or n == 0 at the end: a valid pointer). */
const uint8_t *eng_rd_bytes(eng_rd *r, size_t n);
static inline bool eng_rd_done(const eng_rd *r)
{
    return !r->bad && r->off == r->n;
}

/* Begins a message of the given type; returns its start offset in b. */
int eng_msg_begin(ph_buf *b, uint8_t type, size_t *start);
/* Patches the length word of the message begun at start. -1 if too long. */
int eng_msg_end(ph_buf *b, size_t start);
/* Appends a whole message with body[0..n). */
int eng_msg_put(ph_buf *b, uint8_t type, const void *body, size_t n);

/* Frontend messages the engine originates. */
int eng_put_query(ph_buf *b, const char *sql, size_t len);
int eng_put_parse(ph_buf *b, const char *name, const char *sql, size_t len, uint16_t ntypes,
                  const uint32_t *types);
int eng_put_bind_empty(ph_buf *b, const char *portal, const char *stmt);
int eng_put_execute(ph_buf *b, const char *portal, uint32_t max_rows);
int eng_put_describe(ph_buf *b, uint8_t what, const char *name);
int eng_put_close(ph_buf *b, uint8_t what, const char *name);
int eng_put_copy_data(ph_buf *b, const uint8_t *p, size_t n);
int eng_put_copy_fail(ph_buf *b, const char *msg);
/* Backend ErrorResponse (severity ERROR). */
int eng_put_error(ph_buf *b, const char *sqlstate, const char *message);

#endif
