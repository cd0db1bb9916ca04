/*
 * admission.h — one AdmissionReview in, one answer out.
 *
 * Owns: reading an admission.k8s.io/v1 AdmissionReview (JSON bytes as the
 * API server POSTs them), deciding for the Pod it carries — inject the
 * phantom-db-proxy sidecar, leave the pod alone, or refuse it with a
 * message the user sees in `kubectl apply` — and writing the
 * AdmissionReview response (response.uid = request.uid, allowed, patchType
 * JSONPatch + base64 patch, status {code, message}, warnings). Pure: no
 * sockets, no files, no logging; unit-tested and fuzzed.
 *
 * Decisions, for request.kind Pod / resource pods / operation CREATE:
 *   - annotation phantom.cloudcondom.io/db-proxy != "enabled" -> allowed,
 *     no patch (a warning when the value looks like a typo, or when the
 *     objectSelector label is set without the annotation);
 *   - a container or init container named phantom-db-proxy already there
 *     -> allowed, no patch (idempotent: a second pass changes nothing);
 *   - db-target missing or not HOST:PORT, db-encrypt that the schema
 *     parser refuses, protected columns while the webhook has no keys:
 *     configuration, hostNetwork, a container port or volume name that
 *     collides with the sidecar's, annotations over the API server's limit
 *     -> allowed: false, status code 400, "phantom: ..." message;
 *   - otherwise allowed with a patch that adds the sidecar config
 *     annotation, the volumes and the container.
 * Anything else (another kind, resource, sub-resource or operation) is
 * allowed unchanged.
 *
 * Malformed reviews: not JSON, not an object, apiVersion/kind other than
 * admission.k8s.io/v1 AdmissionReview, no request or no request.uid ->
 * HTTP 400 with a text reason. Once the uid is known every answer is an
 * AdmissionReview with that uid (HTTP 200).
 */
#ifndef PHANTOM_K8S_ADMISSION_H
#define PHANTOM_K8S_ADMISSION_H

#include <stddef.h>

#include "k8s/sidecar.h"

#define PH_K8S_ANNOTATIONS_MAX (256u * 1024u) /* the API server's total annotation size */

typedef enum {
    PH_ADM_PATCHED = 0, /* allowed, with the sidecar patch */
    PH_ADM_UNCHANGED,   /* allowed, no patch */
    PH_ADM_REFUSED,     /* allowed: false */
    PH_ADM_BAD_REVIEW,  /* HTTP 400: not an AdmissionReview we can answer */
    PH_ADM_FAILED,      /* HTTP 500: out of memory */
} ph_adm_outcome;

typedef struct ph_admission_out {
    int http_status;          /* 200 (body is an AdmissionReview), 400 or 500 */
    char *body;               /* heap, NUL-terminated */
    const char *content_type; /* application/json or text/plain */
    ph_adm_outcome outcome;
    /* For logs (truncated, from the request; no annotation contents): */
    char uid[80];
    char pod[160];    /* namespace/name, or namespace/generateName* */
    char reason[640]; /* why refused / unchanged / bad, "" when patched */
} ph_admission_out;

/* Answers one review held in body[0..len). Never fails: OOM gives
 * http_status 500 (body may then be NULL). Free with ph_admission_out_free. */
void ph_admission_review(const ph_sidecar_opts *o, const char *body, size_t len,
                         ph_admission_out *out);

void ph_admission_out_free(ph_admission_out *out);

const char *ph_adm_outcome_name(ph_adm_outcome oc);

#endif
