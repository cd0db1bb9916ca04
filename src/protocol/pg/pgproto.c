/*
 * pgproto.c — PostgreSQL v3 codec: startup packets, message headers, and the
 * messages the proxy builds or rewrites itself. See pgproto.h.
 */
#include "protocol/pg/pgproto.h"

#include <string.h>

pgp_status pgp_parse_startup(const uint8_t *p, size_t n, pgp_startup *out)
{
    if (n < 4)
        return PGP_NEED_MORE;
    uint32_t len = ph_get_u32(p);
    if (len < 8 || len > PGP_MAX_STARTUP_PACKET)
        return PGP_ERR_LENGTH; /* the length word alone says so: don't wait */
    if (n < 8)
        return PGP_NEED_MORE;
    uint32_t code = ph_get_u32(p + 4);
    memset(out, 0, sizeof *out);
    out->len = len;
    out->code = code;
    switch (code) {
    case PGP_SSL_REQUEST:
    case PGP_GSSENC_REQUEST:
        if (len != 8)
            return PGP_ERR_LENGTH;
        out->kind = code == PGP_SSL_REQUEST ? PGP_PKT_SSL : PGP_PKT_GSSENC;
        return PGP_OK;
    case PGP_CANCEL_REQUEST:
        if (len != 16)
            return PGP_ERR_LENGTH;
        if (n < 16)
            return PGP_NEED_MORE;
        out->kind = PGP_PKT_CANCEL;
        out->cancel_pid = ph_get_u32(p + 8);
        out->cancel_key = ph_get_u32(p + 12);
        return PGP_OK;
    default:
        break;
    }
    if ((code >> 16) != 3)
        return PGP_ERR_VERSION;
    if (n < len)
        return PGP_NEED_MORE;
    /* Parameters: pairs of NUL-terminated strings ending with one more NUL. */
    const uint8_t *params = p + 8;
    size_t plen = len - 8;
    if (plen == 0 || params[plen - 1] != '\0')
        return PGP_ERR_FORMAT;
    out->kind = PGP_PKT_STARTUP;
    out->params = params;
    out->params_len = plen;
    return PGP_OK;
}

const char *pgp_startup_param(const pgp_startup *s, const char *name)
{
    const char *p = (const char *)s->params;
    const char *end = p + s->params_len;
    while (p < end && *p) {
        const char *key = p;
        const char *val = memchr(key, '\0', (size_t)(end - key));
        if (!val || ++val >= end)
            return NULL;
        const char *next = memchr(val, '\0', (size_t)(end - val));
        if (!next)
            return NULL;
        if (strcmp(key, name) == 0)
            return val;
        p = next + 1;
    }
    return NULL;
}

pgp_status pgp_parse_header(const uint8_t *p, size_t n, uint32_t max, uint8_t *type,
                            uint32_t *total)
{
    if (n < 5)
        return PGP_NEED_MORE;
    uint32_t len = ph_get_u32(p + 1);
    if (len < 4 || len > max)
        return PGP_ERR_LENGTH;
    *type = p[0];
    *total = len + 1;
    return PGP_OK;
}

static int put_field(ph_buf *b, char code, const char *value)
{
    if (!value)
        return 0;
    if (ph_buf_append_u8(b, (uint8_t)code) != 0 || ph_buf_append_cstr(b, value) != 0)
        return -1;
    return 0;
}

int pgp_build_error(ph_buf *out, const pgp_error *e)
{
    size_t start = out->len;
    if (ph_buf_append_u8(out, PGP_B_ERROR) != 0 || ph_buf_append_u32(out, 0) != 0)
        return -1;
    if (put_field(out, 'S', e->severity) != 0 || put_field(out, 'V', e->severity) != 0 ||
        put_field(out, 'C', e->sqlstate) != 0 || put_field(out, 'M', e->message) != 0 ||
        put_field(out, 'D', e->detail) != 0 || put_field(out, 'H', e->hint) != 0 ||
        ph_buf_append_u8(out, 0) != 0) {
        out->len = start;
        return -1;
    }
    ph_put_u32(out->data + start + 1, (uint32_t)(out->len - start - 1));
    return 0;
}

int pgp_auth_strip_scram_plus(const uint8_t *msg, size_t len, ph_buf *out)
{
    static const char plus[] = "SCRAM-SHA-256-PLUS";
    if (len < 9 || msg[0] != PGP_B_AUTH || ph_get_u32(msg + 1) + 1 != len)
        return -1;
    if (ph_get_u32(msg + 5) != PGP_AUTH_SASL)
        return 0;
    /* Body after the sub-code: mechanism names, each NUL-terminated, then NUL. */
    const uint8_t *p = msg + 9, *end = msg + len;
    int found = 0;
    while (p < end && *p) {
        const uint8_t *z = memchr(p, '\0', (size_t)(end - p));
        if (!z)
            return -1;
        if ((size_t)(z - p) == sizeof plus - 1 && memcmp(p, plus, sizeof plus - 1) == 0)
            found = 1;
        p = z + 1;
    }
    if (p >= end || p + 1 != end)
        return -1; /* missing terminator or trailing bytes */
    if (!found)
        return 0;
    size_t start = out->len;
    if (ph_buf_append(out, msg, 9) != 0)
        return -1;
    for (p = msg + 9; *p;) {
        size_t n = strlen((const char *)p);
        if (!(n == sizeof plus - 1 && memcmp(p, plus, n) == 0) &&
            ph_buf_append(out, p, n + 1) != 0) {
            out->len = start;
            return -1;
        }
        p += n + 1;
    }
    if (ph_buf_append_u8(out, 0) != 0) {
        out->len = start;
        return -1;
    }
    ph_put_u32(out->data + start + 1, (uint32_t)(out->len - start - 1));
    return 1;
}

uint8_t pgp_ready_status(const uint8_t *msg, size_t len)
{
    if (len != 6 || msg[0] != PGP_B_READY || ph_get_u32(msg + 1) != 5)
        return 0;
    return msg[5];
}
