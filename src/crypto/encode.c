/*
 * encode.c — dispatch of the canonical-encoding API (encode.h) to the
 * per-family encoders, logical type names and OIDs, and the OPE bridge.
 */
#include "crypto/encode_impl.h"

#include <string.h>
#include <strings.h>

static const ph_enc_opts default_opts = {.numeric_scale = -1, .tz_fixed = false};

static const struct {
    const char *name;
    ph_ltype type;
} type_names[] = {
    {"text", PH_LT_TEXT},
    {"varchar", PH_LT_TEXT},
    {"character varying", PH_LT_TEXT},
    {"bytea", PH_LT_BYTEA},
    {"bool", PH_LT_BOOL},
    {"boolean", PH_LT_BOOL},
    {"int2", PH_LT_INT2},
    {"smallint", PH_LT_INT2},
    {"int4", PH_LT_INT4},
    {"int", PH_LT_INT4},
    {"integer", PH_LT_INT4},
    {"int8", PH_LT_INT8},
    {"bigint", PH_LT_INT8},
    {"numeric", PH_LT_NUMERIC},
    {"decimal", PH_LT_NUMERIC},
    {"date", PH_LT_DATE},
    {"timestamp", PH_LT_TIMESTAMP},
    {"timestamp without time zone", PH_LT_TIMESTAMP},
    {"timestamptz", PH_LT_TIMESTAMPTZ},
    {"timestamp with time zone", PH_LT_TIMESTAMPTZ},
    {"json", PH_LT_JSON},
    {"jsonb", PH_LT_JSONB},
};

int ph_ltype_from_name(const char *name, ph_ltype *out)
{
    if (!name || !out)
        return -1;
    size_t len = strcspn(name, "(");
    while (len && name[len - 1] == ' ')
        len--;
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++) {
        if (strlen(type_names[i].name) == len && strncasecmp(type_names[i].name, name, len) == 0) {
            *out = type_names[i].type;
            return 0;
        }
    }
    return -1;
}

const char *ph_ltype_name(ph_ltype t)
{
    switch (t) {
    case PH_LT_TEXT:
        return "text";
    case PH_LT_BYTEA:
        return "bytea";
    case PH_LT_BOOL:
        return "bool";
    case PH_LT_INT2:
        return "int2";
    case PH_LT_INT4:
        return "int4";
    case PH_LT_INT8:
        return "int8";
    case PH_LT_NUMERIC:
        return "numeric";
    case PH_LT_DATE:
        return "date";
    case PH_LT_TIMESTAMP:
        return "timestamp";
    case PH_LT_TIMESTAMPTZ:
        return "timestamptz";
    case PH_LT_JSON:
        return "json";
    case PH_LT_JSONB:
        return "jsonb";
    }
    return "unknown";
}

uint32_t ph_ltype_oid(ph_ltype t)
{
    switch (t) {
    case PH_LT_TEXT:
        return 25;
    case PH_LT_BYTEA:
        return 17;
    case PH_LT_BOOL:
        return 16;
    case PH_LT_INT2:
        return 21;
    case PH_LT_INT4:
        return 23;
    case PH_LT_INT8:
        return 20;
    case PH_LT_NUMERIC:
        return 1700;
    case PH_LT_DATE:
        return 1082;
    case PH_LT_TIMESTAMP:
        return 1114;
    case PH_LT_TIMESTAMPTZ:
        return 1184;
    case PH_LT_JSON:
        return 114;
    case PH_LT_JSONB:
        return 3802;
    }
    return 0;
}

static int is_int(ph_ltype t)
{
    return t == PH_LT_INT2 || t == PH_LT_INT4 || t == PH_LT_INT8;
}

static int is_time(ph_ltype t)
{
    return t == PH_LT_DATE || t == PH_LT_TIMESTAMP || t == PH_LT_TIMESTAMPTZ;
}

static int is_string(ph_ltype t)
{
    return t == PH_LT_TEXT || t == PH_LT_BYTEA || t == PH_LT_JSON || t == PH_LT_JSONB;
}

bool ph_ltype_ope_ok(ph_ltype t)
{
    return is_int(t) || is_time(t) || t == PH_LT_NUMERIC;
}

ph_enc_status ph_canon_from_text(ph_ltype t, const char *s, size_t len, const ph_enc_opts *o,
                                 ph_buf *out)
{
    if ((!s && len) || !out)
        return PH_ENC_EINVAL;
    if (!s)
        s = "";
    o = o ? o : &default_opts;
    if (is_int(t))
        return ph_enc_int_from_text(t, s, len, out);
    if (t == PH_LT_BOOL)
        return ph_enc_bool_from_text(s, len, out);
    if (is_time(t))
        return ph_enc_time_from_text(t, s, len, o, out);
    if (t == PH_LT_NUMERIC)
        return ph_enc_numeric_from_text(s, len, out);
    if (is_string(t))
        return ph_enc_text_from_text(t, s, len, out);
    return PH_ENC_EINVAL;
}

/* Checks the (bytes, len, out) arguments every conversion takes; a NULL
 * pointer is allowed for an empty value and becomes a valid empty one. */
static bool bytes_arg(const uint8_t **p, size_t len, const ph_buf *out)
{
    static const uint8_t empty[1] = {0};
    if ((!*p && len) || !out)
        return false;
    if (!*p)
        *p = empty;
    return true;
}

ph_enc_status ph_canon_from_binary(ph_ltype t, const uint8_t *p, size_t len, const ph_enc_opts *o,
                                   ph_buf *out)
{
    if (!bytes_arg(&p, len, out))
        return PH_ENC_EINVAL;
    if (is_int(t))
        return ph_enc_int_from_binary(t, p, len, out);
    if (t == PH_LT_BOOL)
        return ph_enc_bool_from_binary(p, len, out);
    if (is_time(t))
        return ph_enc_time_from_binary(t, p, len, out);
    if (t == PH_LT_NUMERIC)
        return ph_enc_numeric_from_binary(p, len, out);
    if (is_string(t))
        return ph_enc_text_from_binary(t, p, len, out);
    return PH_ENC_EINVAL;
}

ph_enc_status ph_canon_to_text(ph_ltype t, const uint8_t *c, size_t len, const ph_enc_opts *o,
                               ph_buf *out)
{
    if (!bytes_arg(&c, len, out))
        return PH_ENC_EINVAL;
    o = o ? o : &default_opts;
    if (is_int(t))
        return ph_enc_int_to_text(t, c, len, out);
    if (t == PH_LT_BOOL)
        return ph_enc_bool_to_text(c, len, out);
    if (is_time(t))
        return ph_enc_time_to_text(t, c, len, o, out);
    if (t == PH_LT_NUMERIC)
        return ph_enc_numeric_to_text(c, len, o->numeric_scale, out);
    if (is_string(t))
        return ph_enc_text_to_text(t, c, len, out);
    return PH_ENC_EINVAL;
}

ph_enc_status ph_canon_to_binary(ph_ltype t, const uint8_t *c, size_t len, const ph_enc_opts *o,
                                 ph_buf *out)
{
    if (!bytes_arg(&c, len, out))
        return PH_ENC_EINVAL;
    o = o ? o : &default_opts;
    if (is_int(t))
        return ph_enc_int_to_binary(t, c, len, out);
    if (t == PH_LT_BOOL)
        return ph_enc_bool_to_binary(c, len, out);
    if (is_time(t))
        return ph_enc_time_to_binary(t, c, len, out);
    if (t == PH_LT_NUMERIC)
        return ph_enc_numeric_to_binary(c, len, o->numeric_scale, out);
    if (is_string(t))
        return ph_enc_text_to_binary(t, c, len, out);
    return PH_ENC_EINVAL;
}

bool ph_canon_is_output(ph_ltype t, int binary)
{
    if (t == PH_LT_TEXT || t == PH_LT_JSON)
        return true;
    return binary ? t == PH_LT_BYTEA : t == PH_LT_JSONB;
}

ph_enc_status ph_canon_check_output(ph_ltype t, const uint8_t *c, size_t len)
{
    if ((!c && len) || !is_string(t))
        return PH_ENC_EINVAL;
    return ph_enc_text_check(t, c ? c : (const uint8_t *)"", len);
}

ph_enc_status ph_canon_to_ope(ph_ltype t, const uint8_t *c, size_t len, const ph_enc_opts *o,
                              int64_t *v, bool *inexact)
{
    if (!c || !v)
        return PH_ENC_EINVAL;
    o = o ? o : &default_opts;
    if (inexact)
        *inexact = false;
    if (t == PH_LT_NUMERIC)
        return ph_enc_numeric_to_fixed(c, len, o->numeric_scale, v, inexact);
    if (!is_int(t) && !is_time(t))
        return PH_ENC_EINVAL;
    if (len != PH_CANON_I64_LEN)
        return PH_ENC_EINVAL;
    *v = ph_enc_get_i64(c);
    return PH_ENC_OK;
}

ph_enc_status ph_canon_from_ope(ph_ltype t, int64_t v, const ph_enc_opts *o, ph_buf *out)
{
    if (!out)
        return PH_ENC_EINVAL;
    o = o ? o : &default_opts;
    if (t == PH_LT_NUMERIC)
        return ph_enc_numeric_from_fixed(v, o->numeric_scale, out);
    if (is_int(t)) {
        int64_t lo = t == PH_LT_INT2 ? INT16_MIN : t == PH_LT_INT4 ? INT32_MIN : INT64_MIN;
        int64_t hi = t == PH_LT_INT2 ? INT16_MAX : t == PH_LT_INT4 ? INT32_MAX : INT64_MAX;
        if (v < lo || v > hi)
            return PH_ENC_ERANGE;
        return ph_enc_append_i64(out, v);
    }
    if (is_time(t)) {
        ph_enc_status st = ph_enc_time_check(t, v);
        return st == PH_ENC_OK ? ph_enc_append_i64(out, v) : st;
    }
    return PH_ENC_EINVAL;
}

const char *ph_enc_strerror(ph_enc_status st)
{
    switch (st) {
    case PH_ENC_OK:
        return "ok";
    case PH_ENC_ESYNTAX:
        return "invalid input syntax for the column's type";
    case PH_ENC_ERANGE:
        return "value out of range for the column's type";
    case PH_ENC_EINVAL:
        return "invalid argument or value";
    case PH_ENC_ENOMEM:
        return "out of memory";
    case PH_ENC_ETZ:
        return "time zone not supported (use a numeric UTC offset)";
    }
    return "unknown error";
}
