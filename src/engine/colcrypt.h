/*
 * colcrypt.h — one protected column value in and out: PostgreSQL text or
 * binary format <-> canonical encoding (crypto/encode.h) <-> envelope
 * (crypto/field.h), with the column's mode, logical type and key domain.
 *
 * Owns: the mapping of schema types to the crypto layer's logical types and
 * to the type OID / typlen a client is shown, the choice of field key (the
 * domain's write key to encrypt, the key named by the envelope's key id to
 * decrypt), bytea text-format decoding of upstream values, and wiping every
 * plaintext copy it makes. Messages never contain a value.
 */
#ifndef PHANTOM_ENGINE_COLCRYPT_H
#define PHANTOM_ENGINE_COLCRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "crypto/encode.h"
#include "schema/schema.h"

struct ph_keysource;

/* Outcome of a column operation; sqlstate is what the client is told. */
typedef struct eng_cc_err {
    char sqlstate[6];
    char message[256];
} eng_cc_err;

/* Fills e (when not NULL) with a SQLSTATE and a formatted message. */
void eng_cc_errf(eng_cc_err *e, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

ph_ltype eng_col_ltype(const ph_schema_column *c);
/* The OID, typlen and typmod a client is shown for the column. */
uint32_t eng_col_type_oid(const ph_schema_column *c);
int16_t eng_col_typlen(const ph_schema_column *c);
/* As PostgreSQL encodes the declared type's modifier: varchar(n) n + 4,
 * numeric(p,s) (p << 16 | s) + 4, timestamp(p) p; -1 when none. */
int32_t eng_col_typmod(const ph_schema_column *c);
/* The session's encoding options with the column's numeric scale. */
ph_enc_opts eng_col_opts(const ph_schema_column *c, const ph_enc_opts *session);

/* Maps a type OID to a logical type the crypto layer parses; -1 if none. */
int eng_ltype_from_oid(uint32_t oid, ph_ltype *out);

/*
 * Deterministic values sealed for the statements in flight: envelope ->
 * canonical plaintext, per key domain. A result that returns the value a
 * statement looked up (SELECT * ... WHERE email = $1) carries that very
 * envelope, whose opening is then known without running AES-SIV again: the
 * same key and bytes always open to the value that was sealed. The key must
 * still be present (a retired or destroyed key fails as usual). Owned by the
 * session and wiped at every ReadyForQuery; a small ring, oldest entry
 * overwritten (and wiped) first.
 */
#define ENG_MEMO_MAX 4

typedef struct eng_memo_ent {
    const char *domain; /* the column's key domain (schema string), NULL: unused */
    uint8_t *env;       /* envelope bytes and canonical plaintext, one allocation */
    size_t env_len, canon_len;
} eng_memo_ent;

typedef struct eng_memo {
    eng_memo_ent e[ENG_MEMO_MAX];
    unsigned next;
} eng_memo;

void eng_memo_clear(eng_memo *m);

/*
 * Tenants: a tenant-keyed column's values are encrypted under the DEKs of a
 * tenant (key domain "tenant:<T>/<key_domain>", keysource.h). Who asks
 * decides which: a session passes its tenancy (the tenant of the session, or
 * of the row being written); NULL stands for a tool run by the operator
 * (no tenant to write with, and any tenant's value opens by its key id).
 *
 * Encrypting for a tenant-keyed column needs a tenant (else 42501); the
 * tenant's keys are made on first use (keysource.h); a crypto-shredded
 * tenant's are never re-made (42501). Decrypting opens only values under
 * the session tenant's own keys: another tenant's value (or any, for a
 * session without a tenant) is refused with 42501 — or, with
 * foreign_null, reads as NULL (eng_col_decrypt_t returns 1) — and a value
 * whose key was destroyed by crypto-shredding gives XX001 saying so.
 */
/*
 * One key table for the values of one message (a DataRow, a statement, a
 * Bind, a CopyData): the first value acquires it (lock, expiry check) and
 * the hold owns that reference; later values use the same table without a
 * lock or a reference count of their own, so worker threads do not fight
 * over the table for every value. eng_keyhold_end gives the reference back
 * (the session calls it after each message). A load of a tenant's keys
 * ends the hold (later values see the table with those keys); a table
 * eng_col_domain_t hands out carries a reference of its own all the same.
 */
typedef struct eng_keyhold {
    const struct ph_keysource *t; /* NULL: none held */
    unsigned uses;                /* values served from t, counted at the end */
} eng_keyhold;
void eng_keyhold_end(const struct ph_keysource *ks, eng_keyhold *h);

typedef struct eng_tenancy {
    const char *tenant; /* whose keys to use; NULL: none */
    bool foreign_null;  /* another tenant's value reads as NULL instead of an error */
    bool *load_tried;   /* optional: set once a load of tenant's keys found none, so that
                           reading many values does not re-read the keyring for each */
    eng_keyhold *hold;  /* optional: the message's held key table */
} eng_tenancy;

/*
 * Encrypts one value of column col given in format binary (0 text, 1 binary)
 * as type in_type (normally eng_col_ltype(col); a client-declared parameter
 * type of the same canonical family otherwise). Appends the envelope.
 */
int eng_col_encrypt(const struct ph_keysource *ks, const ph_schema_column *col,
                    const ph_enc_opts *session, int binary, ph_ltype in_type, const uint8_t *v,
                    size_t len, ph_buf *out, eng_memo *memo, eng_cc_err *err);
int eng_col_encrypt_t(const struct ph_keysource *ks, const eng_tenancy *who,
                      const ph_schema_column *col, const ph_enc_opts *session, int binary,
                      ph_ltype in_type, const uint8_t *v, size_t len, ph_buf *out, eng_memo *memo,
                      eng_cc_err *err);

/*
 * Key rotation: while a deterministic column's key domain has several live
 * key versions, a value written before the rotation is stored under an older
 * one, so an equality lookup must match the value's envelope under each.
 * eng_col_versions: how many envelopes a lookup of col needs (the domain's
 * live keys for a deterministic column, else 1). eng_col_encrypt_versions:
 * encrypts like eng_col_encrypt but under every one of them, the active key
 * first, appending the envelopes one after the other with their lengths in
 * lens; returns how many (at most max and ENG_MAX_VERSIONS), or -1. Every
 * envelope is remembered in memo.
 */
#define ENG_MAX_VERSIONS 16

int eng_col_versions(const struct ph_keysource *ks, const ph_schema_column *col);
int eng_col_encrypt_versions(const struct ph_keysource *ks, const ph_schema_column *col,
                             const ph_enc_opts *session, int binary, ph_ltype in_type,
                             const uint8_t *v, size_t len, ph_buf *out, size_t *lens, size_t max,
                             eng_memo *memo, eng_cc_err *err);
int eng_col_versions_t(const struct ph_keysource *ks, const eng_tenancy *who,
                       const ph_schema_column *col);
int eng_col_encrypt_versions_t(const struct ph_keysource *ks, const eng_tenancy *who,
                               const ph_schema_column *col, const ph_enc_opts *session, int binary,
                               ph_ltype in_type, const uint8_t *v, size_t len, ph_buf *out,
                               size_t *lens, size_t max, eng_memo *memo, eng_cc_err *err);

/* Decrypts an envelope of column col and appends the value in the client's
 * format (binary 0 text, 1 binary). memo (optional) is filled by
 * eng_col_encrypt and consulted by eng_col_decrypt for deterministic columns. */
int eng_col_decrypt(const struct ph_keysource *ks, const ph_schema_column *col,
                    const ph_enc_opts *session, const uint8_t *env, size_t len, int binary,
                    ph_buf *out, const eng_memo *memo, eng_cc_err *err);
/* The same for who (see "Tenants"): 0 done, 1 the value reads as NULL
 * (another tenant's, with foreign_null; nothing appended), -1 error. */
int eng_col_decrypt_t(const struct ph_keysource *ks, const eng_tenancy *who,
                      const ph_schema_column *col, const ph_enc_opts *session, const uint8_t *env,
                      size_t len, int binary, ph_buf *out, const eng_memo *memo, eng_cc_err *err);

/*
 * Token columns (coltoken.c) use the same tenancy: eng_col_domain_t acquires
 * the key table (*t, released by the caller with ph_keysource_release) and
 * names the key domain col's values use for who — the column's own, or for
 * a tenant-keyed column the tenant's "tenant:<T>/<key_domain>" (in buf),
 * made on first use when create (a value to store or to look up: as
 * eng_col_encrypt_t), else loaded when this proxy has none of its keys yet
 * (a value to read: as eng_col_decrypt_t; a shredded tenant's domain is
 * named although its keys are gone). NULL with err, nothing acquired: no
 * tenant to write with (42501), a shredded tenant (42501, create), keys
 * unavailable; reading without a tenant sets the foreign-value error
 * (NULL is returned even when foreign_null: see eng_col_foreign).
 * eng_col_foreign: another tenant's value for who — 1 (reads as NULL,
 * foreign_null) or -1 with the 42501 refusal.
 */
const char *eng_col_domain_t(const struct ph_keysource *ks, const eng_tenancy *who,
                             const ph_schema_column *col, int create, const struct ph_keysource **t,
                             char *buf, size_t len, eng_cc_err *err);
int eng_col_foreign(const eng_tenancy *who, const ph_schema_column *col, eng_cc_err *err);

/* Token columns with who's tenancy (the same rules): eng_col_tokenize_t
 * appends the token of a value (create 1: a value to store, 0: a compared
 * value), eng_col_detokenize_t the value of a token — 0, 1 (another
 * tenant's token read as NULL: nothing appended) or -1. NULL who: no
 * tenant (a tenant-keyed column's tokens are then refused with 42501). */
struct ph_engine;
int eng_col_tokenize_t(const struct ph_engine *e, const eng_tenancy *who,
                       const ph_schema_column *col, int binary, const uint8_t *v, size_t len,
                       int create, ph_buf *out, eng_cc_err *err);
int eng_col_detokenize_t(const struct ph_engine *e, const eng_tenancy *who,
                         const ph_schema_column *col, const uint8_t *tok, size_t len, int binary,
                         ph_buf *out, eng_cc_err *err);

/* Decodes a bytea in text output format (hex "\x..." or escape) into out. */
int eng_bytea_from_text(const uint8_t *s, size_t len, ph_buf *out);

/* Wipes and frees a buffer that held plaintext. */
void eng_buf_wipe(ph_buf *b);

#endif
