/*
 * fuzz_config.c — libFuzzer target for the phantom.yaml loader.
 *
 * Feeds arbitrary bytes to ph_config_load_buffer over a default config and
 * validates the result. Checks: no crash/UB/leak, every failure leaves a
 * NUL-terminated "t.yaml:" error, and a loaded config can be freed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ph_config cfg;
    char err[256];
    memset(err, 'x', sizeof err);
    ph_config_defaults(&cfg);
    if (ph_config_load_buffer(&cfg, (const char *)data, size, "t.yaml", err, sizeof err) != 0) {
        if (!memchr(err, '\0', sizeof err) || strncmp(err, "t.yaml", 6) != 0)
            abort();
    } else {
        (void)ph_config_validate(&cfg, err, sizeof err);
    }
    ph_config_free(&cfg);
    return 0;
}
