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

/* GET /v1/{mount}/keys/{key}: version information of the Transit key. */
typedef struct ph_openbao_key_info {
    unsigned long long latest_version;
    unsigned long long min_decryption_version;
    unsigned long long min_encryption_version;
} ph_openbao_key_info;

/* Returns 0, or -1 with a reason (also when k is not an openbao provider). */
int ph_kek_openbao_key_info(ph_kek *k, ph_openbao_key_info *out, char *err, size_t errlen);

#endif
