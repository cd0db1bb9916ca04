/*
 * bytes.c — ph_buf, the growable byte buffer declared in bytes.h.
 */
#include "common/bytes.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include <stdlib.h>
#include <string.h>

int ph_buf_reserve(ph_buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return -1;
    size_t want = b->len + extra;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < want)
        ncap *= 2;
    uint8_t *p = realloc(b->data, ncap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = ncap;
    return 0;
}

int ph_buf_append(ph_buf *b, const void *p, size_t n)
{
    if (ph_buf_reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int ph_buf_append_u8(ph_buf *b, uint8_t v)
{
    return ph_buf_append(b, &v, 1);
}

int ph_buf_append_u16(ph_buf *b, uint16_t v)
{
    uint8_t t[2];
    ph_put_u16(t, v);
    return ph_buf_append(b, t, 2);
}

int ph_buf_append_u32(ph_buf *b, uint32_t v)
{
    uint8_t t[4];
    ph_put_u32(t, v);
    return ph_buf_append(b, t, 4);
}

int ph_buf_vprintf(ph_buf *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (n < 0 || ph_buf_reserve(b, (size_t)n + 1) != 0) {
        va_end(again);
        return -1;
    }
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, again);
    va_end(again);
    b->len += (size_t)n;
    return 0;
}

int ph_buf_printf(ph_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = ph_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int ph_buf_append_cstr(ph_buf *b, const char *s)
{
    return ph_buf_append(b, s, strlen(s) + 1);
}

void *ph_array_grow(void *v, size_t n, size_t *cap, size_t elem, size_t first)
{
    if (n < *cap)
        return v;
    size_t ncap = *cap ? *cap * 2 : first;
    if (ncap <= *cap || ncap > SIZE_MAX / elem)
        return NULL;
    void *g = realloc(v, ncap * elem);
    if (g)
        *cap = ncap;
    return g;
}

uint8_t *ph_buf_steal(ph_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void ph_buf_free(ph_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
