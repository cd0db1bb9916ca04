/*
 * ctr.h — AES in counter mode with a 32-bit counter, over an AES-ECB EVP
 * context the caller keyed once.
 *
 * Owns: the key stream AES(iv), AES(iv + 1), ... where only the last 32 bits
 * of the counter block count (big-endian, wrapping), as GCM's inc32 (SP
 * 800-38D) and AES-SIV's CTR (RFC 5297 §2.5: Q has bit 31 cleared, so
 * counting in 32 bits is exact below 2^31 blocks) define it. AES is
 * OpenSSL's; this is only the counter glue, used where EVP's CTR mode would
 * need a provider re-initialisation (and the IV length looked up by name)
 * for every message.
 */
#ifndef PHANTOM_CRYPTO_CTR_H
#define PHANTOM_CRYPTO_CTR_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* out = in ^ key stream from counter block iv, len bytes (the last block may
 * be partial; in and out may be the same). ecb: AES-ECB, padding off, used by
 * this thread alone. 0, or -1 when AES failed or len is 2^31 blocks or more
 * (out is then wiped). */
int ph_ctr32_xor(EVP_CIPHER_CTX *ecb, const uint8_t iv[16], const uint8_t *in, uint8_t *out,
                 size_t len);

#endif
