/*
 * hex.c — the hex codec declared in hex.h.
 */
#include "common/hex.h"

/* Digit values, 16 for "not a hex digit" (a table: bytea results decode
 * every byte of every protected field through here). */
static const uint8_t hexval[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
}; /* value + 1; 0 = not a digit */

int ph_hex_val(int c)
{
    return c >= 0 && c < 256 ? (int)hexval[c] - 1 : -1;
}

void ph_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
}

int ph_hex_decode(const char *s, size_t len, uint8_t *out)
{
    if (len % 2)
        return -1;
    const unsigned char *u = (const unsigned char *)s;
    unsigned bad = 0;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned hi = hexval[u[2 * i]], lo = hexval[u[2 * i + 1]];
        bad |= (hi == 0) | (lo == 0);
        out[i] = (uint8_t)((hi - 1) << 4 | ((lo - 1) & 15));
    }
    return bad ? -1 : 0;
}
