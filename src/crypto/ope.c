/*
 * ope.c — the order-preserving map described in ope.h: domain bisection over
 * 64 levels, a PRF-driven split of the range at each node, a uniform leaf.
 */
#include "crypto/ope.h"

#include <string.h>

#include <openssl/crypto.h>

typedef unsigned __int128 u128;

#define DOMAIN_BITS 64
#define RANGE_BITS  96
#define LEVELS      (DOMAIN_BITS + 1) /* 64 inner levels and the leaf */
#define PARAM_SET   0x01
#define BLOCK       16
#define SQRT3_Q16   113512u /* round(sqrt(3) * 2^16) */
#define RSQRT2_Q16  46341u  /* round(2^16 / sqrt(2)) */
#define U30_MASK    0x3FFFFFFFu

int ph_ope_init(ph_ope *o, const uint8_t key[PH_OPE_KEY_LEN])
{
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, "AES-256-ECB", NULL);
    o->prf = EVP_CIPHER_CTX_new();
    int ok = c && o->prf && EVP_EncryptInit_ex2(o->prf, c, key, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_set_padding(o->prf, 0) == 1;
    EVP_CIPHER_free(c);
    if (!ok) {
        ph_ope_clear(o);
        return -1;
    }
    return 0;
}

void ph_ope_clear(ph_ope *o)
{
    EVP_CIPHER_CTX_free(o->prf);
    o->prf = NULL;
}

/* The identity of the node at depth d whose domain starts with prefix (the
 * top d bits of x). Unique per node, hence PRF inputs never repeat. */
static void node_id(uint8_t out[BLOCK], unsigned d, uint64_t prefix)
{
    memset(out, 0, BLOCK);
    out[0] = (uint8_t)d;
    for (int i = 0; i < 8; i++)
        out[1 + i] = (uint8_t)(prefix >> (56 - 8 * i));
    out[9] = PARAM_SET;
}

/* coins[i] = AES_k(in[i]) for n blocks, in one EVP call on a private copy. */
static int prf_blocks(const ph_ope *o, const uint8_t *in, uint8_t *coins, size_t n)
{
    if (!o->prf)
        return -1;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0;
    int ok = c && EVP_CIPHER_CTX_copy(c, o->prf) == 1 &&
             EVP_EncryptUpdate(c, coins, &len, in, (int)(n * BLOCK)) == 1 &&
             len == (int)(n * BLOCK);
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* The left child's share of the G spare codes of a node with M = 2^k points
 * (k >= 1): G/2 + Z * G / (2 sqrt(M)), Z ~ Irwin–Hall(4) scaled to unit
 * variance, clamped to [0, G]. Integer arithmetic only; no overflow since
 * G < 2^96 and |S| < 2^31. */
static u128 split_gap(u128 g, unsigned k, const uint8_t coins[BLOCK])
{
    u128 sigma = g >> (1 + k / 2);
    if (k & 1)
        sigma = (sigma * RSQRT2_Q16) >> 16;
    int64_t s = 0;
    for (int i = 0; i < 4; i++)
        s += be32(coins + 4 * i) & U30_MASK;
    s -= 2 * (int64_t)U30_MASK; /* centre: mean of the sum is 2 * (2^30 - 1) */
    u128 mag = (u128)(s < 0 ? -s : s);
    /* |S| has standard deviation 2^30 / sqrt(3): offset = S * sigma * sqrt(3) / 2^30 */
    u128 off = (((mag * sigma) >> 30) * SQRT3_Q16) >> 16;
    u128 mu = g / 2;
    if (s < 0)
        return off >= mu ? 0 : mu - off;
    return off >= g - mu ? g : mu + off;
}

static u128 coin128(const uint8_t coins[BLOCK])
{
    u128 r = 0;
    for (int i = 0; i < BLOCK; i++)
        r = (r << 8) | coins[i];
    return r;
}

static void put_code(uint8_t out[PH_OPE_CODE_LEN], u128 c)
{
    for (int i = PH_OPE_CODE_LEN - 1; i >= 0; i--) {
        out[i] = (uint8_t)c;
        c >>= 8;
    }
}

/* Moves from a node to the child selected by bit (0 = left). */
static void descend(u128 *rlo, u128 *n, unsigned d, const uint8_t coins[BLOCK], int bit)
{
    unsigned k = DOMAIN_BITS - d; /* the node has M = 2^k points */
    u128 m = (u128)1 << k;
    u128 left = m / 2 + split_gap(*n - m, k, coins);
    if (bit) {
        *rlo += left;
        *n -= left;
    } else {
        *n = left;
    }
}

int ph_ope_encrypt(const ph_ope *o, int64_t v, uint8_t code[PH_OPE_CODE_LEN])
{
    uint64_t x = (uint64_t)v ^ ((uint64_t)1 << 63);
    uint8_t ids[LEVELS * BLOCK], coins[LEVELS * BLOCK];
    for (unsigned d = 0; d < LEVELS; d++)
        node_id(ids + d * BLOCK, d, d == 0 ? 0 : x >> (DOMAIN_BITS - d));
    int rc = prf_blocks(o, ids, coins, LEVELS);
    if (rc == 0) {
        u128 rlo = 0, n = (u128)1 << RANGE_BITS;
        for (unsigned d = 0; d < DOMAIN_BITS; d++)
            descend(&rlo, &n, d, coins + d * BLOCK, (int)((x >> (DOMAIN_BITS - 1 - d)) & 1));
        put_code(code, rlo + coin128(coins + DOMAIN_BITS * BLOCK) % n);
    }
    OPENSSL_cleanse(ids, sizeof ids); /* the ids spell out the plaintext */
    OPENSSL_cleanse(coins, sizeof coins);
    return rc;
}

int ph_ope_decrypt(const ph_ope *o, const uint8_t code[PH_OPE_CODE_LEN], int64_t *v)
{
    u128 c = 0, rlo = 0, n = (u128)1 << RANGE_BITS;
    uint64_t pre = 0;
    uint8_t id[BLOCK], coins[BLOCK] = {0};
    int rc = 0;
    for (int i = 0; i < PH_OPE_CODE_LEN; i++)
        c = (c << 8) | code[i];
    for (unsigned d = 0; d < DOMAIN_BITS && rc == 0; d++) {
        node_id(id, d, pre);
        rc = prf_blocks(o, id, coins, 1);
        if (rc != 0)
            break;
        u128 lo0 = rlo, n0 = n;
        descend(&rlo, &n, d, coins, 0); /* try the left child */
        int bit = c >= lo0 + n;
        if (bit) {
            rlo = lo0;
            n = n0;
            descend(&rlo, &n, d, coins, 1);
        }
        pre = (pre << 1) | (uint64_t)bit;
    }
    if (rc == 0) {
        node_id(id, DOMAIN_BITS, pre);
        rc = prf_blocks(o, id, coins, 1);
    }
    if (rc == 0 && c != rlo + coin128(coins) % n)
        rc = -1; /* not the image of any value */
    if (rc == 0)
        *v = (int64_t)(pre ^ ((uint64_t)1 << 63));
    OPENSSL_cleanse(coins, sizeof coins);
    OPENSSL_cleanse(id, sizeof id);
    return rc;
}
