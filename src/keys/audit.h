/*
 * audit.h — the append-only, hash-chained JSON-lines audit log.
 *
 * Owns: writing one JSON object per line for every KEK call, DEK load and
 * administrative action, and verifying a log (`phantom audit verify`).
 * Lines never contain key material: only names, ids, versions, outcomes
 * and error strings (which are key-free by the KEK interface's contract).
 *
 * Line format (exact; one line per event, '\n'-terminated, UTF-8, keys in
 * this order, optional keys omitted when unset):
 *
 *   {"seq":N,"ts":"2025-11-25T19:11:00.123Z","uid":U,"user":"name","pid":P,
 *    "event":"keys.create","outcome":"ok","kek":"file:/etc/phantom/master.key",
 *    "domain":"customers.email","version":1,"key_id":1,"reason":"...",
 *    "detail":"...","prev":"<64 hex>","hash":"<64 hex>"}
 *
 *   seq      1 for the first line, +1 per line
 *   ts       UTC wall-clock time, millisecond precision
 *   uid/user real uid of the process and its passwd name ("?" if none)
 *   pid      process id
 *   event    kek.wrap | kek.unwrap | kek.generate | kek.rewrap | kek.rotate |
 *            dek.load | dek.create (the proxy made a tenant's first DEK of a
 *            key domain "tenant:<T>/<domain>" on first use; detail names the
 *            tenant) | keys.<command> (create, rotate, rotate-kek, rewrap,
 *            retire, escrow, recover, check, init-master, shred: one line
 *            per DEK version destroyed) | tenant.shred (one line per
 *            crypto-shredded tenant: detail "tenant=T domains=N versions=M
 *            wrappings=W") | kek.delete (a tenant's OpenBao Transit key
 *            deleted) | keys.usage (rows per DEK version, counted by phantom
 *            verify / reencrypt)
 *   outcome  ok | error | refused
 *   prev     lowercase hex SHA-256 of the previous line's bytes (without its
 *            '\n'); for the first line, SHA-256 of the ASCII string
 *            "phantom-audit-v1" (PH_AUDIT_GENESIS)
 *   hash     lowercase hex SHA-256 of this line's bytes that precede
 *            `,"hash":"` (i.e. from `{` through the closing quote of prev)
 *
 * `hash` detects an edit of any line, including the last; `prev` and `seq`
 * detect a removed, inserted or reordered line. A keyless chain cannot stop
 * someone who rewrites every following line, nor a truncation of the tail:
 * verification prints the head hash and line count so they can be recorded
 * elsewhere (a SIEM) and compared later.
 *
 * Writers: the file is opened O_WRONLY|O_APPEND|O_CREAT (mode 0600); each
 * append takes flock(LOCK_EX) on it, reads the last line if another writer
 * appended since (proxy and CLI may share a log), writes the line with one
 * write(2), and fdatasyncs when asked (administrative actions). Thread-safe.
 */
#ifndef PHANTOM_KEYS_AUDIT_H
#define PHANTOM_KEYS_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#define PH_AUDIT_GENESIS  "phantom-audit-v1"
#define PH_AUDIT_MAX_LINE 4096 /* longer lines are refused by writer and verifier */

typedef struct ph_audit ph_audit;

typedef struct ph_audit_event {
    const char *event;   /* required, see above */
    const char *outcome; /* required: "ok", "error" or "refused" */
    const char *kek;     /* KEK id, or NULL */
    const char *domain;  /* key domain, or NULL */
    uint32_t version;    /* DEK version, 0 = omit */
    uint32_t key_id;     /* DEK key id, 0 = omit */
    const char *reason;  /* error text (never key material), or NULL */
    const char *detail;  /* extra text (e.g. "force"), or NULL */
} ph_audit_event;

/* Opens (creating with mode 0600) the log at path. NULL + err on failure. */
ph_audit *ph_audit_open(const char *path, char *err, size_t errlen);

/* Appends one event; sync=1 fsyncs the line before returning. 0 or -1+err. */
int ph_audit_write(ph_audit *a, const ph_audit_event *ev, int sync, char *err, size_t errlen);

void ph_audit_close(ph_audit *a); /* NULL allowed */

/*
 * Process-wide sink: the KEK dispatchers (kek.c) and the DEK cache's keyring
 * loader record their calls here when one is set (NULL = no auditing).
 * ph_audit_record returns 0 when no sink is set, else ph_audit_write's
 * result; callers fail closed on -1 (a key operation whose audit record
 * could not be written is reported as failed).
 */
void ph_audit_set_global(ph_audit *a);
int ph_audit_record(const ph_audit_event *ev, int sync, char *err, size_t errlen);

typedef struct ph_audit_verify_result {
    uint64_t lines;    /* lines verified (all of them when OK) */
    char head[65];     /* hash of the last good line (genesis hash if none) */
    uint64_t bad_line; /* 1-based line number of the first problem, 0 if OK */
    char reason[160];  /* what is wrong with bad_line */
} ph_audit_verify_result;

/* Returns 0 if the chain is intact, 1 if not (res->bad_line, res->reason),
 * -1 if the file cannot be read (reason in res->reason). */
int ph_audit_verify_file(const char *path, ph_audit_verify_result *res);
int ph_audit_verify_buffer(const char *data, size_t len, ph_audit_verify_result *res);

#endif
