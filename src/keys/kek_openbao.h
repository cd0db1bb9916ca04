/*
 * kek_openbao.h — the `openbao` KEK provider: OpenBao / Vault Transit.
 *
 * Owns: a ph_kek whose KEK is a Transit key that never leaves the server.
 *   wrap     POST /v1/{mount}/encrypt/{key}            {"plaintext": b64(DEK)}
 *   unwrap   POST /v1/{mount}/decrypt/{key}            {"ciphertext": blob}
 *   generate POST /v1/{mount}/datakey/plaintext/{key}  {"bits": 256}
 *   rewrap   POST /v1/{mount}/rewrap/{key}             (the DEK never leaves Transit)
 *   rotate   POST /v1/{mount}/keys/{key}/rotate
 * The wrapped blob is the Transit ciphertext string "vault:vN:..." (ASCII,
 * no NUL); N is the Transit key version, so every live version unwraps.
 *
 * Authentication: a token (`token`), a token file re-read when the server
 * answers 403 (an agent may have renewed it), or Kubernetes auth
 * (POST /v1/auth/{kubernetes_auth_path}/login with the service-account JWT
 * read from kubernetes_jwt_path at each login; the client token is renewed
 * by logging in again at 80% of its lease and after a 403). Exactly one of
 * token, token_file, kubernetes_role must be set.
 *
 * Transport: https:// with peer and host verification (CA bundle from
 * ca_file or the system store); plain http:// only to a loopback address
 * (an agent sidecar). Each request is bounded by timeout_ms. Nothing is
 * sent at open: the first operation authenticates, so a proxy starts while
 * the server is down and fails closed per request.
 *
 * Thread-safe: operations on one provider are serialised by a mutex (one
 * kept-alive connection).
 */
#ifndef PHANTOM_KEYS_KEK_OPENBAO_H
#define PHANTOM_KEYS_KEK_OPENBAO_H

#include "keys/kek.h"
#include "keys/keys_config.h"

ph_kek *ph_kek_openbao_open(const ph_keys_openbao_cfg *cfg, char *err, size_t errlen);

/* The Transit key type ph_kek_openbao_create_key creates, and the ones it
 * accepts when the key exists already (both 256-bit AEADs). */
#define PH_KEK_OPENBAO_KEY_TYPE "aes256-gcm96"

/*
 * Creates the Transit key of cfg: POST /v1/{mount}/keys/{key}
 * {"type":"aes256-gcm96"}, authenticated like every other call (token,
 * token_file or a Kubernetes login; that identity needs create rights on
 * the path). Transit creates the key, or answers with the existing one
 * (warning "key NAME already existed": out->existed = 1, nothing changed);
 * an older Vault's empty 204 answer is followed by a GET of the key. An
 * existing key of another type than aes256-gcm96 or chacha20-poly1305 is
 * refused. Returns 0 with out->version and out->type, or -1 with a reason
 * ("openbao create key: ...", never the token).
 */
int ph_kek_openbao_create_key(const ph_keys_openbao_cfg *cfg, ph_kek_created *out, char *err,
                              size_t errlen);

/*
 * Deletes the Transit key of cfg (with it every version of it, and so every
 * value only it wrapped): POST /v1/{mount}/keys/{key}/config
 * {"deletion_allowed":true} (Transit refuses to delete a key without it),
 * then DELETE /v1/{mount}/keys/{key} (204). A key that does not exist
 * (config: 400 "no existing key named ..."; or 404) is reported with
 * *missing = 1 and counts as done. 0, or -1 with a reason (never the token).
 */
int ph_kek_openbao_delete_key(const ph_keys_openbao_cfg *cfg, int *missing, char *err,
                              size_t errlen);

/* GET /v1/{mount}/keys/{key}: version information of the Transit key. */
typedef struct ph_openbao_key_info {
    unsigned long long latest_version;
    unsigned long long min_decryption_version;
    unsigned long long min_encryption_version;
} ph_openbao_key_info;

/* Returns 0, or -1 with a reason (also when k is not an openbao provider). */
int ph_kek_openbao_key_info(ph_kek *k, ph_openbao_key_info *out, char *err, size_t errlen);

#endif
