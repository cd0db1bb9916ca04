/*
 * fuzz_keyring.c — libFuzzer target for the keyring parser
 * (keys/keyring.h): arbitrary bytes must never crash or leak; any document
 * that parses must serialise, re-parse, and serialise to the same text
 * (the writer only produces what the reader accepts, losslessly).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keys/keyring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    ph_keyring *kr = NULL;
    if (size > (1u << 20) || ph_keyring_parse((const char *)data, size, &kr, err, sizeof err) != 0)
        return 0;
    size_t len1 = 0, len2 = 0;
    char *s1 = ph_keyring_serialize(kr, &len1);
    ph_keyring *back = NULL;
    if (!s1 || ph_keyring_parse(s1, len1, &back, err, sizeof err) != 0)
        abort(); /* the writer produced something the reader refuses */
    char *s2 = ph_keyring_serialize(back, &len2);
    if (!s2 || len1 != len2 || memcmp(s1, s2, len1) != 0)
        abort(); /* not a lossless round trip */
    /* Exercise the look-ups on what was parsed. */
    for (size_t i = 0; i < kr->n_domains; i++) {
        ph_key_domain *d = ph_keyring_domain(kr, kr->domains[i].name);
        if (d != &kr->domains[i] || !ph_keyring_active(d))
            abort();
        for (size_t j = 0; j < d->n_versions; j++) {
            ph_key_domain *fd;
            ph_dek_version *fv;
            if (ph_keyring_by_key_id(kr, d->versions[j].key_id, &fd, &fv) != 0 ||
                fv != &d->versions[j])
                abort();
        }
    }
    free(s1);
    free(s2);
    ph_keyring_free(kr);
    ph_keyring_free(back);
    return 0;
}
