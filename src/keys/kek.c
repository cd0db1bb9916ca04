/*
 * kek.c — the KEK dispatchers (see kek.h): fill in the optional operations'
 * defaults (generate: a DEK from the OS CSPRNG, then wrap), normalise error reporting, and write
 * one audit record per call to the process-wide audit sink (audit.h). A call whose audit record
 * cannot be written fails (its outputs are wiped and freed): fail closed.
 */
#include "keys/kek.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/err.h"
#include "keys/audit.h"
#include "keys/secmem.h"

static int check_kek(ph_kek *k, char *err, size_t errlen)
{
    if (!k || !k->ops) {
        ph_errf(err, errlen, "no KEK provider");
        return -1;
    }
    return 0;
}

/* Records the call (sync: fsync'ed); a failed audit write turns success into
 * failure, reported as "<lost><audit error>". */
static int audit_sync(ph_kek *k, const char *event, int sync, const char *lost, int rc, char *err,
                      size_t errlen)
{
    ph_audit_event ev = {
        .event = event,
        .outcome = rc == 0 ? "ok" : "error",
        .kek = k->id,
        .reason = rc == 0 ? NULL : err,
    };
    char aerr[200];
    if (ph_audit_record(&ev, sync, aerr, sizeof aerr) != 0) {
        if (rc == 0)
            snprintf(err, errlen, "%s%s", lost, aerr);
        return -1;
    }
    return rc;
}

/* The data-path calls: audited without fsync. */
static int audit_call(ph_kek *k, const char *event, int rc, char *err, size_t errlen)
{
    return audit_sync(k, event, 0, "audit log: ", rc, err, errlen);
}

static void drop_blob(uint8_t **out, size_t *out_len)
{
    free(*out);
    *out = NULL;
    *out_len = 0;
}

/* audit_call for the calls that return a blob: a failed call returns none. */
static int audit_blob_call(ph_kek *k, const char *event, int rc, uint8_t **out, size_t *out_len,
                           char *err, size_t errlen)
{
    rc = audit_call(k, event, rc, err, errlen);
    if (rc != 0)
        drop_blob(out, out_len);
    return rc;
}

int ph_kek_wrap(ph_kek *k, const uint8_t *dek, uint8_t **out, size_t *out_len, char *err,
                size_t errlen)
{
    *out = NULL;
    *out_len = 0;
    if (check_kek(k, err, errlen) != 0)
        return -1;
    int rc = k->ops->wrap(k, dek, out, out_len, err, errlen);
    return audit_blob_call(k, "kek.wrap", rc, out, out_len, err, errlen);
}

int ph_kek_unwrap(ph_kek *k, const uint8_t *wrapped, size_t len, uint8_t *dek_out, char *err,
                  size_t errlen)
{
    if (check_kek(k, err, errlen) != 0)
        return -1;
    int rc = k->ops->unwrap(k, wrapped, len, dek_out, err, errlen);
    rc = audit_call(k, "kek.unwrap", rc, err, errlen);
    if (rc != 0)
        OPENSSL_cleanse(dek_out, PH_DEK_LEN);
    return rc;
}

static int generate_default(ph_kek *k, uint8_t *dek_out, uint8_t **wrapped, size_t *wrapped_len,
                            char *err, size_t errlen)
{
    if (ph_os_random(dek_out, PH_DEK_LEN) != 0) {
        ph_errf(err, errlen, "the OS random generator failed");
        return -1;
    }
    return k->ops->wrap(k, dek_out, wrapped, wrapped_len, err, errlen);
}

int ph_kek_generate(ph_kek *k, uint8_t *dek_out, uint8_t **wrapped, size_t *wrapped_len, char *err,
                    size_t errlen)
{
    *wrapped = NULL;
    *wrapped_len = 0;
    if (check_kek(k, err, errlen) != 0)
        return -1;
    int rc = k->ops->generate ? k->ops->generate(k, dek_out, wrapped, wrapped_len, err, errlen)
                              : generate_default(k, dek_out, wrapped, wrapped_len, err, errlen);
    rc = audit_blob_call(k, "kek.generate", rc, wrapped, wrapped_len, err, errlen);
    if (rc != 0)
        OPENSSL_cleanse(dek_out, PH_DEK_LEN);
    return rc;
}

static int rewrap_default(ph_kek *k, const uint8_t *wrapped, size_t len, uint8_t **out,
                          size_t *out_len, char *err, size_t errlen)
{
    uint8_t dek[PH_DEK_LEN];
    int rc = k->ops->unwrap(k, wrapped, len, dek, err, errlen);
    if (rc == 0)
        rc = k->ops->wrap(k, dek, out, out_len, err, errlen);
    OPENSSL_cleanse(dek, sizeof dek);
    return rc;
}

int ph_kek_rewrap(ph_kek *k, const uint8_t *wrapped, size_t len, uint8_t **out, size_t *out_len,
                  char *err, size_t errlen)
{
    *out = NULL;
    *out_len = 0;
    if (check_kek(k, err, errlen) != 0)
        return -1;
    int rc = k->ops->rewrap ? k->ops->rewrap(k, wrapped, len, out, out_len, err, errlen)
                            : rewrap_default(k, wrapped, len, out, out_len, err, errlen);
    return audit_blob_call(k, "kek.rewrap", rc, out, out_len, err, errlen);
}

int ph_kek_rotate(ph_kek *k, char *err, size_t errlen)
{
    if (check_kek(k, err, errlen) != 0)
        return -1;
    int rc;
    if (!k->ops->rotate) {
        ph_errf(err, errlen, "the %s KEK provider does not support rotation",
                k->ops->kind ? k->ops->kind : "?");
        rc = -1;
    } else {
        rc = k->ops->rotate(k, err, errlen);
    }
    /* Sync: a KEK rotation is an administrative action. */
    return audit_sync(k, "kek.rotate", 1, "the KEK was rotated but the audit log failed: ", rc, err,
                      errlen);
}

void ph_kek_destroy(ph_kek *k)
{
    if (k && k->ops && k->ops->destroy)
        k->ops->destroy(k);
}
