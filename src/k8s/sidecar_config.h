/*
 * sidecar_config.h — the phantom.yaml each injected proxy reads.
 *
 * Owns: loading and checking the operator's base config (`phantom webhook
 * --proxy-config FILE`: keys:, upstream_tls:, log:, limits: ... — everything
 * that is the same for every pod), and composing, per pod, the sidecar's
 * file: the base text, `metrics: {listen: 0.0.0.0:HEALTH_PORT}` (the
 * address of /healthz and /readyz, section reserved for the health and
 * metrics listener) and the pod's db-encrypt annotation under `encrypt:`.
 * The composed text is parsed again with the proxy's own readers, and must
 * give exactly the schema the annotation gave alone, so what the webhook
 * validated is what the proxy will run.
 *
 * The base config must not hold what is per pod (encrypt, listen, target,
 * db-target, metrics) nor literal secrets (keys.openbao.token,
 * keys.pkcs11.pin): the composed file travels in a pod annotation that
 * anyone who can read the pod can read. Its keys.audit_log must be under
 * PH_K8S_STATE_DIR, the sidecar's only writable directory.
 */
#ifndef PHANTOM_K8S_SIDECAR_CONFIG_H
#define PHANTOM_K8S_SIDECAR_CONFIG_H

#include <stddef.h>

#include "k8s/sidecar.h"
#include "schema/schema.h"

/* The largest --proxy-config: it is copied into every pod's annotations,
 * which the API server limits to 256 KiB in all. */
#define PH_K8S_BASE_MAX (128u * 1024u)

/* Loads, checks and keeps (o->base_config) the base config at path; sets
 * o->base_has_keys. 0, or -1 with "PATH: reason" / "PATH:LINE: reason". */
int ph_sidecar_load_base(ph_sidecar_opts *o, const char *path, char *err, size_t errlen);

/* Same for an in-memory document (tests); name stands for the file. */
int ph_sidecar_set_base(ph_sidecar_opts *o, const char *text, size_t len, const char *name,
                        char *err, size_t errlen);

/*
 * Composes the sidecar's phantom.yaml for a pod whose db-encrypt annotation
 * is encrypt[0..len) (NULL when absent), already parsed into `expected`
 * (NULL when absent). Returns a heap string, or NULL with a reason in err
 * (OOM, or a document that does not survive being embedded unchanged).
 */
char *ph_sidecar_config(const ph_sidecar_opts *o, const char *encrypt, size_t len,
                        const ph_schema *expected, char *err, size_t errlen);

/* 1 when two schemas protect the same columns the same way (tables and
 * columns in order; mode, type, type modifiers, token format, key domain). */
int ph_k8s_schema_same(const ph_schema *a, const ph_schema *b);

#endif
