/*
 * fuzz_copy.c — libFuzzer target for the streaming COPY codec.
 *
 * Input: 3 configuration bytes (format, column count, which columns are
 * transformed; delimiter / NULL string / quote and escape / HEADER; a seed
 * for the payload cuts), then the COPY data. With an identity callback:
 *   - no crash, UB or leak, in both directions, on arbitrary data;
 *   - cutting the data into payloads (at seeded points) never changes the
 *     outcome or a byte of the output;
 *   - whenever "encrypt" accepts the data (giving E), "decrypt" accepts E
 *     (giving D), and for data shaped like COPY TO output (see
 *     server_shaped) "encrypt" of D gives E again: the encoders write what
 *     the parsers read back to the same values; in binary format E is the
 *     input itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/copy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int identity(void *ud, int column, const uint8_t *in, size_t len, bool is_null, ph_buf *out,
                    bool *out_null, char *err, size_t errlen)
{
    (void)ud;
    (void)column;
    (void)err;
    (void)errlen;
    if (!in || *out_null != is_null)
        abort();
    return is_null ? 0 : ph_buf_append(out, in, len);
}

typedef struct {
    ph_copy_options o;
    int ncols;
    bool tr[4];
    uint32_t seed;
} config;

static void configure(const uint8_t *c, config *cf)
{
    static const char *const nulls[] = {NULL, "NULL", "\\\\x", ""};
    ph_copy_format fmt = (c[0] & 3) == 1   ? PH_COPY_CSV
                         : (c[0] & 3) == 2 ? PH_COPY_BINARY
                                           : PH_COPY_TEXT;
    ph_copy_options_default(&cf->o, fmt);
    cf->ncols = 1 + ((c[0] >> 2) & 3);
    for (int i = 0; i < 4; i++)
        cf->tr[i] = (c[0] >> (4 + i)) & 1;
    cf->o.header = c[1] & 1;
    switch ((c[1] >> 1) & 3) {
    case 1:
        cf->o.delimiter = '|';
        break;
    case 2:
        cf->o.delimiter = fmt == PH_COPY_CSV ? '4' : 'A';
        break;
    case 3:
        cf->o.delimiter = ';';
        break;
    default:
        break;
    }
    if (nulls[(c[1] >> 3) & 3])
        cf->o.null_s = nulls[(c[1] >> 3) & 3];
    switch ((c[1] >> 5) & 3) {
    case 1:
        cf->o.quote = '\'';
        cf->o.escape = '\\';
        break;
    case 2:
        cf->o.escape = '\\';
        break;
    case 3:
        cf->o.quote = '|';
        cf->o.escape = '|';
        break;
    default:
        break;
    }
    cf->seed = c[2] * 2654435761u + 1;
}

/* Runs the codec over in[0..len): whole when seed is 0, else in seeded
 * pieces of 1..16 bytes. Returns 0/-1 and the output in out. */
static int run(const config *cf, ph_copy_direction dir, const uint8_t *in, size_t len,
               uint32_t seed, ph_buf *out)
{
    char err[256];
    ph_copy_xform *x = ph_copy_xform_new(&cf->o, dir, cf->ncols, cf->tr, identity, NULL);
    if (!x)
        return -2;
    int rc = 0;
    size_t at = 0;
    while (rc == 0 && at < len) {
        size_t n = len - at;
        if (seed) {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            size_t k = 1 + seed % 16;
            if (k < n)
                n = k;
        }
        size_t before = out->len;
        rc = ph_copy_xform_feed(x, in + at, n, out, err, sizeof err);
        if (rc != 0 && out->len != before)
            abort(); /* a failing call emits nothing */
        at += n;
    }
    if (rc == 0)
        rc = ph_copy_xform_finish(x, out, err, sizeof err);
    if (rc != 0 && !memchr(err, '\0', sizeof err))
        abort();
    ph_copy_xform_free(x);
    return rc;
}

static bool same(const ph_buf *a, const ph_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Whole and cut runs agree; returns the outcome, output in out. */
static int run_both(const config *cf, ph_copy_direction dir, const uint8_t *in, size_t len,
                    ph_buf *out)
{
    ph_buf cut = {0};
    int rc = run(cf, dir, in, len, 0, out);
    int rc2 = run(cf, dir, in, len, cf->seed, &cut);
    if (rc != rc2 || (rc == 0 && !same(out, &cut)))
        abort();
    ph_buf_free(&cut);
    return rc;
}

/* Text/CSV shaped like COPY TO output: every row ends with a line end and
 * there is no end marker; in text format the NULL string is \N. Otherwise
 * PostgreSQL's own ambiguities show: a last row (or one cut by \.) whose
 * value is empty reads back as no row at all, and a value equal to a custom
 * NULL string is written as it is (COPY TO does the same) and reads back as
 * NULL. */
static bool server_shaped(const config *cf, const uint8_t *in, size_t len)
{
    if (cf->o.format == PH_COPY_BINARY)
        return true;
    if (cf->o.format == PH_COPY_TEXT && strcmp(cf->o.null_s, "\\N") != 0)
        return false;
    return len && (in[len - 1] == '\n' || in[len - 1] == '\r') && !memmem(in, len, "\\.", 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3 || size > 4096)
        return 0;
    config cf;
    configure(data, &cf);
    const uint8_t *in = data + 3;
    size_t len = size - 3;
    ph_buf e = {0}, d = {0}, e2 = {0}, raw = {0};
    /* decrypting arbitrary data: only robustness and cut invariance */
    int rc = run_both(&cf, PH_COPY_DECRYPT, in, len, &raw);
    if (rc == -2)
        goto done; /* options PostgreSQL rejects */
    if (run_both(&cf, PH_COPY_ENCRYPT, in, len, &e) != 0)
        goto done;
    if (cf.o.format == PH_COPY_BINARY && (e.len != len || (len && memcmp(e.data, in, len) != 0)))
        abort();
    if (run_both(&cf, PH_COPY_DECRYPT, e.data, e.len, &d) != 0)
        abort();
    if (!server_shaped(&cf, in, len))
        goto done;
    if (run_both(&cf, PH_COPY_ENCRYPT, d.data, d.len, &e2) != 0 || !same(&e, &e2))
        abort();
done:
    ph_buf_free(&e);
    ph_buf_free(&d);
    ph_buf_free(&e2);
    ph_buf_free(&raw);
    return 0;
}
