/*
 * kek_pkcs11.h — the `pkcs11` KEK provider: an AES KEK inside an HSM.
 *
 * Owns: a ph_kek whose KEK is a non-extractable AES-256 secret key on a
 * PKCS#11 token (tested with SoftHSM2). The module is dlopen'ed from the
 * configured path; the token is found by label, the user logs in with the
 * PIN (pin or pin_file), and the key is found by CKA_LABEL.
 *
 * Wrapping is CKM_AES_GCM through C_Encrypt / C_Decrypt on the token, with a
 * 96-bit random IV (OpenSSL RAND_bytes) and a 128-bit tag. Wrapped blob
 * (PH_PKCS11_BLOB_LEN = 65 bytes):
 *   [0]      format 0x01
 *   [1..4]   KEK version, big-endian
 *   [5..16]  IV
 *   [17..64] AES-GCM(DEK) || tag
 * with AAD = "phantom/pkcs11/v1" || blob[0..4] (format and version are
 * authenticated).
 *
 * Versions: version 1 is the object labelled key_label, version N >= 2 the
 * object labelled "key_label#N". wrap uses the highest version present,
 * unwrap the version named in the blob, rotate generates version max+1 on
 * the token; removing an old version object retires it. Only keys with
 * CKA_SENSITIVE true and CKA_EXTRACTABLE false are accepted.
 *
 * Thread-safe: one logged-in session per provider, used under a mutex; a
 * lost session (CKR_SESSION_HANDLE_INVALID, CKR_USER_NOT_LOGGED_IN, ...) is
 * reopened once. Modules are loaded and C_Initialize'd once per process and
 * finalised when the last provider using them is destroyed.
 */
#ifndef PHANTOM_KEYS_KEK_PKCS11_H
#define PHANTOM_KEYS_KEK_PKCS11_H

#include "keys/kek.h"
#include "keys/keys_config.h"

#define PH_PKCS11_BLOB_LEN 65

ph_kek *ph_kek_pkcs11_open(const ph_keys_pkcs11_cfg *cfg, char *err, size_t errlen);

/*
 * Generates version 1 of the KEK on the token: an AES-256 key labelled
 * cfg->key_label (CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE true; CKA_EXTRACTABLE
 * false; CKA_ENCRYPT/CKA_DECRYPT only). Fails if any version already exists.
 * Returns 0, or -1 with a reason.
 */
int ph_kek_pkcs11_create_key(const ph_keys_pkcs11_cfg *cfg, char *err, size_t errlen);

typedef struct ph_pkcs11_key_info {
    unsigned latest_version; /* highest version present */
    unsigned versions;       /* number of version objects present */
} ph_pkcs11_key_info;

/* Returns 0, or -1 with a reason (also when k is not a pkcs11 provider). */
int ph_kek_pkcs11_key_info(ph_kek *k, ph_pkcs11_key_info *out, char *err, size_t errlen);

#endif
