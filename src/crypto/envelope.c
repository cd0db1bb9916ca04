/*
 * envelope.c — strict parser and writer for the field envelope layout
 * documented in envelope.h. Pure byte handling, no cryptography.
 */
#include "crypto/envelope.h"

#include "common/bytes.h"

void ph_envelope_put_header(uint8_t *out, ph_env_mode mode, uint32_t key_id)
{
    out[0] = PH_ENV_VERSION;
    out[1] = (uint8_t)mode;
    ph_put_u32(out + 2, key_id);
}

size_t ph_envelope_len(ph_env_mode mode, size_t n)
{
    if (n > PH_ENV_MAX_PLAINTEXT)
        return 0;
    switch (mode) {
    case PH_ENV_RANDOMIZED:
        return PH_ENV_RANDOMIZED_OVERHEAD + n;
    case PH_ENV_DETERMINISTIC:
        return PH_ENV_DETERMINISTIC_OVERHEAD + n;
    case PH_ENV_OPE:
        return n == PH_ENV_OPE_VALUE_LEN ? PH_ENV_OPE_LEN : 0;
    case PH_ENV_TOKEN:
        break;
    }
    return 0;
}

static ph_env_status parse_body(const uint8_t *body, size_t len, ph_envelope *e)
{
    switch (e->mode) {
    case PH_ENV_RANDOMIZED:
        if (len < PH_ENV_NONCE_LEN + PH_ENV_TAG_LEN)
            return PH_ENV_ETRUNCATED;
        e->nonce = body;
        e->ct = body + PH_ENV_NONCE_LEN;
        e->ct_len = len - PH_ENV_NONCE_LEN - PH_ENV_TAG_LEN;
        e->tag = e->ct + e->ct_len;
        break;
    case PH_ENV_DETERMINISTIC:
        if (len < PH_ENV_TAG_LEN + PH_ENV_DET_PAD_LEN)
            return PH_ENV_ETRUNCATED;
        e->tag = body;
        e->ct = body + PH_ENV_TAG_LEN;
        e->ct_len = len - PH_ENV_TAG_LEN;
        break;
    case PH_ENV_OPE:
        if (len != PH_ENV_OPE_LEN - PH_ENV_HEADER_LEN)
            return len < PH_ENV_OPE_LEN - PH_ENV_HEADER_LEN ? PH_ENV_ETRUNCATED : PH_ENV_ELENGTH;
        e->code = body;
        e->tag = body + PH_ENV_OPE_CODE_LEN;
        e->ct = e->tag + PH_ENV_TAG_LEN;
        e->ct_len = PH_ENV_OPE_VALUE_LEN;
        break;
    case PH_ENV_TOKEN:
        e->ct = body;
        e->ct_len = len;
        break;
    default:
        return PH_ENV_EMODE;
    }
    return PH_ENV_OK;
}

ph_env_status ph_envelope_parse(const uint8_t *buf, size_t len, ph_envelope *out)
{
    ph_envelope e = {0};
    if (!buf || len < PH_ENV_HEADER_LEN)
        return PH_ENV_ETRUNCATED;
    if (buf[0] != PH_ENV_VERSION)
        return PH_ENV_EVERSION;
    if (buf[1] < PH_ENV_RANDOMIZED || buf[1] > PH_ENV_TOKEN)
        return PH_ENV_EMODE;
    if (len - PH_ENV_HEADER_LEN > PH_ENV_MAX_PLAINTEXT + PH_ENV_OPE_LEN)
        return PH_ENV_ELENGTH;
    e.version = buf[0];
    e.mode = (ph_env_mode)buf[1];
    e.key_id = ph_get_u32(buf + 2);
    e.header = buf;
    ph_env_status st = parse_body(buf + PH_ENV_HEADER_LEN, len - PH_ENV_HEADER_LEN, &e);
    if (st != PH_ENV_OK)
        return st;
    *out = e;
    return PH_ENV_OK;
}

const char *ph_env_status_str(ph_env_status st)
{
    switch (st) {
    case PH_ENV_OK:
        return "ok";
    case PH_ENV_ETRUNCATED:
        return "envelope truncated";
    case PH_ENV_EVERSION:
        return "unknown envelope version";
    case PH_ENV_EMODE:
        return "unknown envelope mode";
    case PH_ENV_ELENGTH:
        return "envelope length invalid for its mode";
    }
    return "invalid envelope";
}
