/*
 * kek_factory.h — creating the configured KEK provider.
 *
 * Owns: mapping a ph_keys_provider_cfg (keys_config.h) to a provider
 * constructor: file (kek_file.h), openbao (kek_openbao.h) or pkcs11
 * (kek_pkcs11.h).
 */
#ifndef PHANTOM_KEYS_KEK_FACTORY_H
#define PHANTOM_KEYS_KEK_FACTORY_H

#include <stddef.h>

#include "keys/kek.h"
#include "keys/keys_config.h"

/* Opens the provider described by p. NULL + err on failure. */
ph_kek *ph_kek_open_provider(const ph_keys_provider_cfg *p, char *err, size_t errlen);

/* The primary KEK of kc (keys: provider ...). */
ph_kek *ph_kek_open(const ph_keys_config *kc, char *err, size_t errlen);

/* The escrow/recovery KEK of kc (keys: escrow: ...); NULL + err if none. */
ph_kek *ph_kek_open_escrow(const ph_keys_config *kc, char *err, size_t errlen);

#endif
