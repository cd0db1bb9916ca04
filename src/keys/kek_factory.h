/*
 * kek_factory.h — creating the configured KEK provider, and creating the KEK
 * itself inside the provider (`phantom keys init-kek`).
 *
 * Owns: mapping a ph_keys_provider_cfg (keys_config.h) to a provider
 * constructor: file (kek_file.h), openbao (kek_openbao.h) or pkcs11
 * (kek_pkcs11.h); and mapping it to the provider's way of creating its KEK.
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

/*
 * Creates the KEK of provider p inside the provider:
 *   file     a new master-key file at file.path (ph_kek_file_create: mode
 *            0600, never overwrites: refused when the file exists);
 *   openbao  the Transit key (ph_kek_openbao_create_key: POST
 *            /v1/{mount}/keys/{key} {"type":"aes256-gcm96"}; an existing key
 *            is left unchanged, out->existed = 1; one of another type than
 *            aes256-gcm96 or chacha20-poly1305 is refused), with any of the
 *            provider's authentications (token, token_file, Kubernetes);
 *   pkcs11   version 1 of the KEK on the token (ph_kek_pkcs11_create_key:
 *            AES-256, sensitive, non-extractable; refused if any version
 *            exists).
 * Returns 0 with *out filled, or -1 with a one-line reason in err (never a
 * token, PIN or key).
 */
int ph_kek_create_key(const ph_keys_provider_cfg *p, ph_kek_created *out, char *err, size_t errlen);

#endif
