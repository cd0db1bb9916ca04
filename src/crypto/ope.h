/*
 * ope.h — order-preserving encryption of signed 64-bit integers, in the
 * style of Boldyreva, Chenette, Lee, O'Neill (EUROCRYPT 2009): a keyed,
 * lazily sampled, strictly increasing map from the 2^64 plaintexts into a
 * range of 2^96 codes.
 *
 * Owns: the OPE map and its PRF (AES-256 used as a PRF on unique 16-byte node
 * identifiers through EVP, ECB mode without padding = the raw block cipher).
 * The key is an HKDF subkey of the DEK (field.c), never the DEK itself.
 *
 * The map (parameter set 1):
 *   - v is mapped to x = (uint64)v XOR 2^63, so signed order = unsigned order.
 *   - A node is a domain interval of M = 2^(64-d) points at depth d (its
 *     identity is (d, the top d bits of x)) with a range interval of N >= M
 *     codes. The domain is split in two halves of M/2 points; the range split
 *     gives the left half M/2 + g codes, where g is the left share of the
 *     G = N - M spare codes. Both children keep N >= M, so the map is
 *     strictly increasing whatever g is in [0, G]. At the leaf (M = 1) the
 *     code is drawn uniformly from the leaf's range (bias < 2^-32).
 *   - Coins of a node = AES_k(d | top d bits of x | parameter-set byte); they
 *     depend only on the node, so the map is a deterministic function of the
 *     key (the same in every process), and the 65 coin blocks of one value are
 *     computed in a single EVP call.
 *   - g is NOT drawn from the exact hypergeometric distribution of BCLO's
 *     random order-preserving function. For a uniformly random OPF with
 *     N >> M the left share of spare codes is about Beta(M/2, M/2)-distributed:
 *     mean G/2, standard deviation G / (2 sqrt(M)). We draw
 *     g = G/2 + Z * G / (2 sqrt(M)), Z an Irwin–Hall(4) variate (sum of four
 *     30-bit uniforms, centred and scaled to unit variance: a bell curve
 *     truncated at ±3.46), clamped to [0, G]. All arithmetic is integer
 *     (unsigned __int128), so results are identical on every platform.
 *     This matches the first two moments of the ideal split at every node;
 *     its tails differ (bounded support instead of HGD tails), so the scheme
 *     is a heuristic approximation of a random OPF, not a proof-carrying
 *     instance of the BCLO POPF-CCA definition.
 *   - Range 2^96 (12-byte codes): N/M = 2^32 spare codes per plaintext on
 *     average, so leaves hide the low ~32 bits of their position, codes never
 *     collide, every quantity fits in 128-bit integers, and each code is 4
 *     bytes shorter than a 2^128 range would give. A larger range does not
 *     reduce what a random OPF leaks (about the upper half of the plaintext
 *     bits, Boldyreva–Chenette–O'Neill, CRYPTO 2011), it only costs space.
 */
#ifndef PHANTOM_CRYPTO_OPE_H
#define PHANTOM_CRYPTO_OPE_H

#include <stdint.h>

#include <openssl/evp.h>

#define PH_OPE_KEY_LEN  32
#define PH_OPE_CODE_LEN 12 /* big-endian, < 2^96 */

typedef struct ph_ope {
    EVP_CIPHER_CTX *prf; /* keyed AES-256-ECB template, read-only after init */
} ph_ope;

/* Return 0 on success, -1 on failure. A keyed ph_ope may be used by several
 * threads at once. */
int ph_ope_init(ph_ope *o, const uint8_t key[PH_OPE_KEY_LEN]);
void ph_ope_clear(ph_ope *o);

/* code = the order-preserving image of v. */
int ph_ope_encrypt(const ph_ope *o, int64_t v, uint8_t code[PH_OPE_CODE_LEN]);

/* Inverts the map by walking the tree (64 PRF calls). Fails (-1) for a code
 * that is not the image of any value under this key. */
int ph_ope_decrypt(const ph_ope *o, const uint8_t code[PH_OPE_CODE_LEN], int64_t *v);

#endif
