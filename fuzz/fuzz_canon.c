/*
 * fuzz_canon.c — libFuzzer target for the canonical encodings
 * (src/crypto/encode*.c). The first input byte picks the logical type and
 * whether the rest is PostgreSQL text or binary format. Whatever parses must
 * round-trip: canonical → text → canonical and canonical → binary →
 * canonical give the same bytes, and OPE-capable values survive the int64
 * bridge. Also: no crash, UB or leak, and nothing appended on error.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/encode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_or_die(const ph_buf *a, const ph_buf *b)
{
    if (a->len != b->len || (a->len && memcmp(a->data, b->data, a->len) != 0))
        abort();
}

static void roundtrip(ph_ltype t, const ph_buf *c, const ph_enc_opts *o)
{
    ph_buf txt = {0}, bin = {0}, c2 = {0}, c3 = {0};
    if (ph_canon_to_text(t, c->data, c->len, o, &txt) != PH_ENC_OK ||
        ph_canon_from_text(t, (const char *)txt.data, txt.len, o, &c2) != PH_ENC_OK)
        abort();
    same_or_die(c, &c2);
    if (ph_canon_to_binary(t, c->data, c->len, o, &bin) != PH_ENC_OK ||
        ph_canon_from_binary(t, bin.data, bin.len, o, &c3) != PH_ENC_OK)
        abort();
    same_or_die(c, &c3);
    if (ph_ltype_ope_ok(t)) {
        int64_t v;
        bool inexact = false;
        ph_buf c4 = {0};
        if (ph_canon_to_ope(t, c->data, c->len, o, &v, &inexact) == PH_ENC_OK && !inexact) {
            if (ph_canon_from_ope(t, v, o, &c4) != PH_ENC_OK)
                abort();
            same_or_die(c, &c4);
        }
        ph_buf_free(&c4);
    }
    ph_buf_free(&txt);
    ph_buf_free(&bin);
    ph_buf_free(&c2);
    ph_buf_free(&c3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    ph_ltype t = (ph_ltype)(PH_LT_TEXT + (data[0] & 0x0F) % (PH_LT_JSONB - PH_LT_TEXT + 1));
    int binary = data[0] & 0x80;
    ph_enc_opts o = PH_ENC_OPTS_DEFAULT;
    o.tz_fixed = true; /* UTC session: timestamptz without a zone parses */
    o.numeric_scale = (data[0] & 0x40) ? 2 : -1;
    ph_buf c = {0};
    ph_enc_status st = binary ? ph_canon_from_binary(t, data + 1, size - 1, &o, &c)
                              : ph_canon_from_text(t, (const char *)data + 1, size - 1, &o, &c);
    if (st != PH_ENC_OK && c.len != 0)
        abort();
    if (st == PH_ENC_OK)
        roundtrip(t, &c, &o);
    ph_buf_free(&c);
    return 0;
}
