/*
 * kek_factory.c — picks the KEK provider constructor by kind, and the
 * provider's way of creating its KEK (see kek_factory.h).
 */
#include "keys/kek_factory.h"

#include <string.h>

#include "common/err.h"
#include "keys/kek_file.h"
#include "keys/kek_openbao.h"
#include "keys/kek_pkcs11.h"

ph_kek *ph_kek_open_provider(const ph_keys_provider_cfg *p, char *err, size_t errlen)
{
    switch (p->kind) {
    case PH_KEK_KIND_FILE:
        if (!p->file.path) {
            ph_errf(err, errlen, "keys: file provider needs file.path");
            return NULL;
        }
        return ph_kek_file_open(p->file.path, err, errlen);
    case PH_KEK_KIND_OPENBAO:
        return ph_kek_openbao_open(&p->openbao, err, errlen);
    case PH_KEK_KIND_PKCS11:
        return ph_kek_pkcs11_open(&p->pkcs11, err, errlen);
    default:
        ph_errf(err, errlen, "keys: no KEK provider configured");
        return NULL;
    }
}

ph_kek *ph_kek_open(const ph_keys_config *kc, char *err, size_t errlen)
{
    return ph_kek_open_provider(&kc->primary, err, errlen);
}

ph_kek *ph_kek_open_escrow(const ph_keys_config *kc, char *err, size_t errlen)
{
    if (!kc->has_escrow) {
        ph_errf(err, errlen, "keys: no escrow KEK configured (keys: escrow: ...)");
        return NULL;
    }
    return ph_kek_open_provider(&kc->escrow, err, errlen);
}

int ph_kek_create_key(const ph_keys_provider_cfg *p, ph_kek_created *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    switch (p->kind) {
    case PH_KEK_KIND_FILE:
        if (!p->file.path)
            return ph_errf(err, errlen, "keys: file provider needs file.path");
        out->version = 1;
        return ph_kek_file_create(p->file.path, err, errlen);
    case PH_KEK_KIND_OPENBAO:
        return ph_kek_openbao_create_key(&p->openbao, out, err, errlen);
    case PH_KEK_KIND_PKCS11:
        out->version = 1;
        return ph_kek_pkcs11_create_key(&p->pkcs11, err, errlen);
    default:
        return ph_errf(err, errlen, "keys: no KEK provider configured");
    }
}
