/*
 * bytes.h — big-endian integer access and a tiny growable byte buffer.
 *
 * Owns: the byte-order helpers every codec uses, and ph_buf, a length-tracked
 * heap buffer (in the spirit of Redis' sds, but explicit: callers own it and
 * free it with ph_buf_free). Appends report OOM instead of aborting.
 */
#ifndef PHANTOM_BYTES_H
#define PHANTOM_BYTES_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

static inline uint32_t ph_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint16_t ph_get_u16(const uint8_t *p)
{
    return (uint16_t)(((unsigned)p[0] << 8) | p[1]);
}

static inline void ph_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void ph_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

typedef struct ph_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} ph_buf;

/* All return 0 on success, -1 on allocation failure (buffer unchanged). */
int ph_buf_reserve(ph_buf *b, size_t extra);
int ph_buf_append(ph_buf *b, const void *p, size_t n);
int ph_buf_append_u8(ph_buf *b, uint8_t v);
int ph_buf_append_u16(ph_buf *b, uint16_t v);
int ph_buf_append_u32(ph_buf *b, uint32_t v);
int ph_buf_append_cstr(ph_buf *b, const char *s); /* includes the NUL */
/* Appends printf-style text; a NUL follows it in memory but not in len, so
 * b->data is a C string while only text is appended. */
int ph_buf_printf(ph_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ph_buf_vprintf(ph_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/*
 * Growing arrays: room for one more element in an array v of n used and *cap
 * allocated elements of elem bytes (doubling, from `first`). Returns the
 * array (v itself when there is room, or the reallocated one, *cap updated),
 * or NULL on allocation failure or overflow (v is then unchanged and valid).
 */
void *ph_array_grow(void *v, size_t n, size_t *cap, size_t elem, size_t first);

/* Hands the bytes to the caller (who frees them with free()); b becomes empty. */
uint8_t *ph_buf_steal(ph_buf *b, size_t *len);
void ph_buf_free(ph_buf *b);

#endif
