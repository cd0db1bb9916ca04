/*
 * ctr.c — AES counter mode with a 32-bit counter over AES-ECB; see ctr.h.
 */
#include "crypto/ctr.h"

#include <string.h>

#include <openssl/crypto.h>

#include "common/bytes.h"

#define BLK   16
#define CHUNK 64 /* counter blocks encrypted per ECB call */

int ph_ctr32_xor(EVP_CIPHER_CTX *ecb, const uint8_t iv[BLK], const uint8_t *in, uint8_t *out,
                 size_t len)
{
    uint8_t ks[CHUNK * BLK];
    size_t used = 0; /* bytes of ks that held key stream */
    int rc = 0;
    if (len / BLK >= (size_t)1 << 31)
        rc = -1;
    uint32_t c = ph_get_u32(iv + 12);
    for (size_t done = 0; rc == 0 && done < len;) {
        size_t n = (len - done + BLK - 1) / BLK, l = 0;
        if (n > CHUNK)
            n = CHUNK;
        for (size_t j = 0; j < n; j++, c++) {
            memcpy(ks + j * BLK, iv, 12);
            ph_put_u32(ks + j * BLK + 12, c);
        }
        int got = 0;
        used = n * BLK > used ? n * BLK : used;
        if (EVP_EncryptUpdate(ecb, ks, &got, ks, (int)(n * BLK)) != 1 || (size_t)got != n * BLK) {
            rc = -1;
            break;
        }
        l = len - done < n * BLK ? len - done : n * BLK;
        for (size_t b = 0; b < l; b++)
            out[done + b] = in[done + b] ^ ks[b];
        done += l;
    }
    OPENSSL_cleanse(ks, used);
    if (rc != 0 && len > 0)
        OPENSSL_cleanse(out, len);
    return rc;
}
