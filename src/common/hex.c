/*
 * hex.c — the hex codec declared in hex.h.
 */
#include "common/hex.h"

/* Digit values; X (0x80) for "not a hex digit". A table, a decode loop
 * without branches, and 16 digits at a time with SSE2 where the compiler
 * targets it: bytea results decode every byte of every protected field
 * through here. */
#define X 0x80
static const uint8_t hexval[256] = {
    X, X, X, X, X, X, X, X,  X,  X,  X,  X,  X,  X,  X,  X,  X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X,  X,  X,  X,  X,  X,  X,  X,  X,  X, X, X, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
    X, X, X, X, X, X, X, 10, 11, 12, 13, 14, 15, X,  X,  X,  X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X,  X,  X,  10, 11, 12, 13, 14, 15, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X,  X,  X,  X,  X,  X,  X,  X,  X,  X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X,  X,  X,  X,  X,  X,  X,  X,  X,  X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X,  X,  X,  X,  X,  X,  X,  X,  X,  X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X,  X,  X,  X,  X,  X,  X,  X,  X,  X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X,  X,  X,  X,  X,  X,  X,  X,  X,  X, X, X, X, X, X, X, X,
};
#undef X

int ph_hex_val(int c)
{
    return c >= 0 && c < 256 && hexval[c] < 16 ? (int)hexval[c] : -1;
}

void ph_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* a <= k for each unsigned byte: all ones, else zero. */
static __m128i le_u8(__m128i a, unsigned char k)
{
    __m128i kk = _mm_set1_epi8((char)k);
    return _mm_cmpeq_epi8(_mm_max_epu8(a, kk), kk);
}

/* 16 hex digits to 8 bytes: 0, or -1 when one is not a digit (out is then
 * written with garbage, as the scalar loop does). */
static int decode16(const unsigned char *in, uint8_t *out)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)in);
    __m128i d = _mm_sub_epi8(v, _mm_set1_epi8('0')); /* '0'-'9' */
    __m128i l = _mm_sub_epi8(_mm_or_si128(v, _mm_set1_epi8(0x20)), _mm_set1_epi8('a')); /* a-f */
    __m128i isd = le_u8(d, 9), isl = le_u8(l, 5);
    if (_mm_movemask_epi8(_mm_or_si128(isd, isl)) != 0xFFFF)
        return -1;
    __m128i val =
        _mm_or_si128(_mm_and_si128(isd, d), _mm_and_si128(isl, _mm_add_epi8(l, _mm_set1_epi8(10))));
    /* each 16-bit lane holds (first digit, second digit): first << 4 | second */
    __m128i hi = _mm_slli_epi16(_mm_and_si128(val, _mm_set1_epi16(0x00FF)), 4);
    __m128i lo = _mm_srli_epi16(val, 8);
    __m128i bytes = _mm_packus_epi16(_mm_or_si128(hi, lo), _mm_setzero_si128());
    _mm_storel_epi64((__m128i *)(void *)out, bytes);
    return 0;
}
#endif

int ph_hex_decode(const char *s, size_t len, uint8_t *out)
{
    if (len % 2)
        return -1;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
#if defined(__SSE2__)
    for (; i + 16 <= len; i += 16)
        if (decode16(u + i, out + i / 2) != 0)
            return -1;
#endif
    unsigned bad = 0;
    for (; i < len; i += 2) {
        unsigned hi = hexval[u[i]], lo = hexval[u[i + 1]];
        bad |= hi | lo;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return bad & 0x80 ? -1 : 0;
}
