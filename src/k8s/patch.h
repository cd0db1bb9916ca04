/*
 * patch.h — building an RFC 6902 JSON Patch for an admission response.
 *
 * Owns: JSON Pointer escaping (RFC 6901: `~` -> `~0`, `/` -> `~1`, so an
 * annotation key such as phantom.cloudcondom.io/db-proxy-config becomes one
 * reference token), the "add" operations the webhook emits, the rule that
 * appending to an array that does not exist yet must add the whole array
 * (RFC 6902 `add` needs the parent to exist; `/-` needs the array), and the
 * base64 encoding of the finished patch for AdmissionResponse.patch.
 *
 * A patch is a jansson array of operation objects owned by the caller.
 */
#ifndef PHANTOM_K8S_PATCH_H
#define PHANTOM_K8S_PATCH_H

#include <jansson.h>

/* Appends the escaped reference token of key to the path "parent/"; returns
 * a new heap string "parent/escaped" or NULL on OOM. */
char *ph_patch_path(const char *parent, const char *key);

/* Adds {"op":"add","path":path,"value":value}; steals value (also on
 * failure). 0 or -1 (OOM). */
int ph_patch_add(json_t *ops, const char *path, json_t *value);

/*
 * Adds the items of array `items` (borrowed) to the array at `path` of the
 * document, whose current value there is `existing` (borrowed; NULL when the
 * member is absent). A missing (or null) array is added whole, in one
 * operation; an existing one gets one `add` per item, at the front
 * (`path/0`, keeping items' order) when at_front, else at the end
 * (`path/-`). Fails (-1) when `existing` is neither absent, null nor an
 * array, or on OOM.
 */
int ph_patch_add_items(json_t *ops, const char *path, const json_t *existing, const json_t *items,
                       int at_front);

/* The compact JSON text of ops, base64-encoded (no line breaks); heap
 * string or NULL on OOM. */
char *ph_patch_encode(const json_t *ops);

#endif
