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

#if defined(__SSE2__)
#include <emmintrin.h>

/* 16 nibbles (0-15 per byte) to their lowercase digits. */
static __m128i digits16(__m128i n)
{
    __m128i over9 = _mm_cmpgt_epi8(n, _mm_set1_epi8(9));
    __m128i add =
        _mm_add_epi8(_mm_set1_epi8('0'), _mm_and_si128(over9, _mm_set1_epi8('a' - '0' - 10)));
    return _mm_add_epi8(n, add);
}

/* 16 bytes to 32 digits. */
static void encode16(const uint8_t *in, char *out)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)in);
    __m128i lo = _mm_and_si128(v, _mm_set1_epi8(0x0F));
    __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(0x0F));
    /* the first digit of each byte is its high nibble */
    _mm_storeu_si128((__m128i *)(void *)out, digits16(_mm_unpacklo_epi8(hi, lo)));
    _mm_storeu_si128((__m128i *)(void *)(out + 16), digits16(_mm_unpackhi_epi8(hi, lo)));
}
#endif

void ph_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    if (n == 0)
        return; /* in may be NULL */
    const uint8_t *end = in + n;
#if defined(__SSE2__)
    for (; end - in >= 16; in += 16, out += 32)
        encode16(in, out);
#endif
    for (; in < end; in++) {
        *out++ = digits[*in >> 4];
        *out++ = digits[*in & 15];
    }
}

#if defined(__SSE2__)

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
