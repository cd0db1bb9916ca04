/*
 * pgarray.c — see pgarray.h.
 */
#include "tools/pgarray.h"

#include <openssl/crypto.h>
#include <string.h>

#include "common/hex.h"

static int sep(ph_pgarray *a)
{
    int rc = ph_buf_append(&a->b, a->n ? "," : "{", 1);
    a->n++;
    return rc;
}

int ph_pgarray_text(ph_pgarray *a, const char *s, size_t len)
{
    if (sep(a) || ph_buf_reserve(&a->b, 2 * len + 2))
        return -1;
    a->b.data[a->b.len++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            a->b.data[a->b.len++] = '\\';
        a->b.data[a->b.len++] = (uint8_t)s[i];
    }
    a->b.data[a->b.len++] = '"';
    return 0;
}

int ph_pgarray_bytea(ph_pgarray *a, const uint8_t *p, size_t len)
{
    /* element text \x<hex>; inside quotes the backslash is escaped */
    if (sep(a) || ph_buf_reserve(&a->b, 2 * len + 6))
        return -1;
    memcpy(a->b.data + a->b.len, "\"\\\\x", 4);
    a->b.len += 4;
    ph_hex_encode(p, len, (char *)a->b.data + a->b.len);
    a->b.len += 2 * len;
    a->b.data[a->b.len++] = '"';
    return 0;
}

int ph_pgarray_null(ph_pgarray *a)
{
    return sep(a) || ph_buf_append(&a->b, "NULL", 4);
}

const char *ph_pgarray_str(ph_pgarray *a)
{
    if (a->n == 0)
        return "{}";
    /* close, terminate, then reopen logically (len excludes the "}\0") */
    if (ph_buf_reserve(&a->b, 2))
        return NULL;
    a->b.data[a->b.len] = '}';
    a->b.data[a->b.len + 1] = '\0';
    return (const char *)a->b.data;
}

void ph_pgarray_wipe(ph_pgarray *a)
{
    if (a->b.data)
        OPENSSL_cleanse(a->b.data, a->b.cap);
    ph_buf_free(&a->b);
    a->n = 0;
}
