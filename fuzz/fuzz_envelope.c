/*
 * fuzz_envelope.c — libFuzzer target for the field envelope decoder and the
 * decryption paths (src/crypto/envelope.c, field.c) under a fixed key.
 *
 * The first input byte picks the mode the "column" expects (any or one of
 * the three); the rest is treated as an envelope. Checks: no crash, UB or
 * leak; the parser's view stays inside the input; decryption into a buffer
 * of exactly the peeked plaintext length (heap, so ASan sees any overrun);
 * anything that does decrypt re-encrypts to the same bytes (deterministic,
 * ope) or re-opens (randomized) — i.e. only genuine envelopes open.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/envelope.h"
#include "crypto/field.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ph_field_key *fixed_key(void)
{
    static ph_field_key *k;
    if (!k) {
        uint8_t dek[PH_FIELD_DEK_LEN];
        for (int i = 0; i < PH_FIELD_DEK_LEN; i++)
            dek[i] = (uint8_t)(0xA0 + i);
        k = ph_field_key_new(dek, 0x01020304u, "public.customers.email");
        if (!k)
            abort();
    }
    return k;
}

static void check_parse(const uint8_t *env, size_t len)
{
    ph_envelope e;
    if (ph_envelope_parse(env, len, &e) != PH_ENV_OK)
        return;
    const uint8_t *end = env + len;
    if (e.ct + e.ct_len > end || (e.tag && e.tag + 16 > end) || (e.nonce && e.nonce + 12 > end) ||
        (e.code && e.code + 12 > end) || e.header != env)
        abort();
}

/* A successfully opened envelope must be genuine. */
static void check_reseal(const ph_field_key *k, const uint8_t *env, size_t len, const uint8_t *pt,
                         size_t pl, ph_env_mode mode)
{
    if (mode == PH_ENV_RANDOMIZED)
        return; /* fresh nonce: covered by the second open below */
    size_t need = ph_field_envelope_len((ph_field_mode)mode, pl), n = 0;
    uint8_t *again = malloc(need ? need : 1);
    if (!again)
        return;
    if (ph_field_encrypt(k, (ph_field_mode)mode, pt, pl, again, need, &n) != PH_FIELD_OK ||
        n != len || memcmp(again, env, len) != 0)
        abort();
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    ph_field_mode expect = (ph_field_mode)(data[0] % 4);
    const uint8_t *env = data + 1;
    size_t len = size - 1;
    const ph_field_key *k = fixed_key();
    check_parse(env, len);

    ph_field_info info;
    if (ph_field_peek(env, len, &info) != PH_FIELD_OK)
        return 0;
    if (info.plaintext_len > len)
        abort();
    uint8_t *pt = malloc(info.plaintext_len ? info.plaintext_len : 1);
    if (!pt)
        return 0;
    size_t pl = 0;
    ph_field_status st = ph_field_decrypt(k, expect, env, len, pt, info.plaintext_len, &pl);
    if (st == PH_FIELD_OK) {
        if (pl != info.plaintext_len)
            abort();
        check_reseal(k, env, len, pt, pl, info.mode);
    }
    ph_buf b = {0};
    ph_field_status st2 = ph_field_decrypt_buf(k, expect, env, len, &b);
    if (st2 != st || (st2 == PH_FIELD_OK && (b.len != pl || memcmp(b.data, pt, pl) != 0)))
        abort();
    ph_buf_free(&b);
    free(pt);
    return 0;
}
