/*
 * encode_text.c — canonical encodings of the string types: text/varchar and
 * json (UTF-8 bytes), jsonb (its text as jsonb_out prints it, see
 * encode_jsonb.c; binary format = version byte 1 + text)
 * and bytea (raw bytes; text input in hex or escape format, output hex).
 */
#include "crypto/encode_impl.h"

#include <string.h>

#include <openssl/crypto.h>

#include "common/hex.h"

#define JSONB_VERSION 1

/* Strict UTF-8 (RFC 3629: no overlongs, surrogates or > U+10FFFF) and no NUL,
 * which PostgreSQL text cannot hold. */
static int valid_utf8(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* eight ASCII bytes without NUL at a time: the common case */
        if (len - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            const uint64_t lo7 = 0x7F7F7F7F7F7F7F7Full;
            /* bit 7 of a byte set: non-ASCII; (b & 0x7F) + 0x7F sets bit 7 unless b is NUL */
            if (!(w & ~lo7) && (((w & lo7) + lo7) & ~lo7) == ~lo7) {
                i += 8;
                continue;
            }
        }
        uint8_t c = p[i];
        size_t n;
        uint32_t cp, min;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (len - i - 1 < n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

static ph_enc_status append_utf8(const uint8_t *p, size_t len, ph_buf *out)
{
    if (!valid_utf8(p, len))
        return PH_ENC_ESYNTAX;
    return ph_buf_append(out, p, len) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
}

ph_enc_status ph_enc_text_from_text(ph_ltype t, const char *s, size_t len, ph_buf *out)
{
    if (t == PH_LT_BYTEA)
        return ph_enc_bytea_from_text(s, len, out);
    if (t == PH_LT_JSONB) /* stored as jsonb_out prints it */
        return valid_utf8((const uint8_t *)s, len) ? ph_enc_jsonb_canonical(s, len, out)
                                                   : PH_ENC_ESYNTAX;
    return append_utf8((const uint8_t *)s, len, out);
}

ph_enc_status ph_enc_text_from_binary(ph_ltype t, const uint8_t *p, size_t len, ph_buf *out)
{
    if (t == PH_LT_BYTEA)
        return ph_buf_append(out, p, len) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
    if (t == PH_LT_JSONB) {
        if (len < 1 || p[0] != JSONB_VERSION || !valid_utf8(p + 1, len - 1))
            return PH_ENC_ESYNTAX;
        return ph_enc_jsonb_canonical((const char *)p + 1, len - 1, out);
    }
    return append_utf8(p, len, out);
}

ph_enc_status ph_enc_text_check(ph_ltype t, const uint8_t *c, size_t len)
{
    return t == PH_LT_BYTEA || valid_utf8(c, len) ? PH_ENC_OK : PH_ENC_EINVAL;
}

ph_enc_status ph_enc_text_to_text(ph_ltype t, const uint8_t *c, size_t len, ph_buf *out)
{
    if (t == PH_LT_BYTEA)
        return ph_enc_bytea_to_text(c, len, out);
    if (!valid_utf8(c, len))
        return PH_ENC_EINVAL;
    return ph_buf_append(out, c, len) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
}

ph_enc_status ph_enc_text_to_binary(ph_ltype t, const uint8_t *c, size_t len, ph_buf *out)
{
    if (t != PH_LT_BYTEA && !valid_utf8(c, len))
        return PH_ENC_EINVAL;
    if (t == PH_LT_JSONB && ph_buf_append_u8(out, JSONB_VERSION) != 0)
        return PH_ENC_ENOMEM;
    return ph_buf_append(out, c, len) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
}

/* ---- bytea ------------------------------------------------------------------ */

/* "\x" format: pairs of hex digits, whitespace allowed between pairs. */
static ph_enc_status bytea_hex(const char *s, size_t len, ph_buf *out)
{
    size_t i = 0;
    while (i < len) {
        if (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
            i++;
            continue;
        }
        if (i + 1 >= len)
            return PH_ENC_ESYNTAX;
        int hi = ph_hex_val((unsigned char)s[i]), lo = ph_hex_val((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0)
            return PH_ENC_ESYNTAX;
        if (ph_buf_append_u8(out, (uint8_t)(hi << 4 | lo)) != 0)
            return PH_ENC_ENOMEM;
        i += 2;
    }
    return PH_ENC_OK;
}

/* Escape format: "\\" is a backslash, "\ooo" (first digit 0-3) an octal byte,
 * anything else literal. */
static ph_enc_status bytea_escape(const char *s, size_t len, ph_buf *out)
{
    size_t i = 0;
    while (i < len) {
        uint8_t b = (uint8_t)s[i];
        if (s[i] != '\\') {
            i++;
        } else if (i + 1 < len && s[i + 1] == '\\') {
            i += 2;
        } else if (i + 3 < len && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
                   s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
            b = (uint8_t)(((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) | (s[i + 3] - '0'));
            i += 4;
        } else {
            return PH_ENC_ESYNTAX;
        }
        if (ph_buf_append_u8(out, b) != 0)
            return PH_ENC_ENOMEM;
    }
    return PH_ENC_OK;
}

ph_enc_status ph_enc_bytea_from_text(const char *s, size_t len, ph_buf *out)
{
    size_t mark = out->len;
    ph_enc_status st;
    if (len >= 2 && s[0] == '\\' && s[1] == 'x')
        st = bytea_hex(s + 2, len - 2, out);
    else
        st = bytea_escape(s, len, out);
    if (st != PH_ENC_OK && out->len > mark) { /* roll back what was appended */
        OPENSSL_cleanse(out->data + mark, out->len - mark);
        out->len = mark;
    }
    return st;
}

ph_enc_status ph_enc_bytea_to_text(const uint8_t *c, size_t len, ph_buf *out)
{
    if (len > (SIZE_MAX - 2) / 2 || ph_buf_reserve(out, 2 + 2 * len) != 0)
        return PH_ENC_ENOMEM;
    out->data[out->len++] = '\\';
    out->data[out->len++] = 'x';
    ph_hex_encode(c, len, (char *)out->data + out->len);
    out->len += 2 * len;
    return PH_ENC_OK;
}
