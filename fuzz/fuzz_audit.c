/*
 * fuzz_audit.c — libFuzzer target for the audit-log verifier
 * (keys/audit.h), which reads files an attacker may have edited: arbitrary
 * bytes must never crash; a result of "intact" must report as many lines as
 * the input has, and a failure must name a line within the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keys/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ph_audit_verify_result res;
    int rc = ph_audit_verify_buffer((const char *)data, size, &res);
    uint64_t newlines = 0;
    for (size_t i = 0; i < size; i++)
        newlines += data[i] == '\n';
    if (rc == 0 && res.lines != newlines)
        abort();
    if (rc == 1 && (res.bad_line == 0 || res.bad_line > newlines + 1 || res.reason[0] == '\0'))
        abort();
    if (rc != 0 && rc != 1)
        abort();
    if (strlen(res.head) != 64)
        abort();
    return 0;
}
