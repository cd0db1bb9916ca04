/*
 * rewrite.h — query analysis and rewriting for protected columns.
 *
 * Owns: deciding, with the real PostgreSQL grammar (libpg_query), what a
 * statement does with protected columns, and either refusing it (fail
 * closed, with a message naming table, column, mode and operation) or
 * producing the SQL to send upstream plus a plan for the proxy:
 *
 *   - every literal bound to a protected column is replaced in the original
 *     text by its ciphertext, '\x<hex>'::bytea (the text is spliced, never
 *     deparsed, so everything else — comments, spacing, casing — is kept);
 *   - every $n bound to a protected column stays in place; the plan says
 *     which column's policy encrypts it (the proxy rewrites Parse, Bind and
 *     ParameterDescription);
 *   - DDL (CREATE TABLE, ALTER TABLE ADD COLUMN) declares protected columns
 *     as bytea (token columns as text: they hold tokens, spliced as '...').
 *
 * The crypto operation is a callback, so this module has no key material.
 * Thread-safe: no global state (libpg_query keeps per-thread memory).
 */
#ifndef PHANTOM_REWRITE_H
#define PHANTOM_REWRITE_H

#include <stddef.h>
#include <sys/types.h>

#include "common/bytes.h"
#include "protocol/pg/copyopts.h"
#include "schema/schema.h"

/*
 * Encrypts one value for column col. text_value is the literal's value as
 * PostgreSQL would read it in text form (quotes removed, E'' escapes and ''
 * doubling resolved; numbers as written, booleans as "true"/"false"),
 * text_value[len] == '\0'. Appends the ciphertext (envelope) bytes to out.
 * Returns 0, or -1 with a message in err (which must not contain the value).
 */
typedef int (*ph_rw_encrypt_fn)(void *ud, const ph_schema_column *col, const char *text_value,
                                size_t len, ph_buf *out_ciphertext, char *err, size_t errlen);

/*
 * Key rotation (optional; both or neither). During a DEK rotation a
 * deterministic value has one ciphertext per live key version of its key
 * domain, and a lookup must match every one of them. eq_versions answers how
 * many ciphertexts a value compared for equality with col has (<= 1: one,
 * and the rewriter behaves exactly as without these callbacks). For such a
 * column (N > 1) every compared literal and parameter is rewritten so that
 * it matches all N: `col = v` -> `col = ANY (ARRAY[c1, ..., cN])`, `col <> v`
 * -> `col <> ALL (ARRAY[...])`, each element of IN (...) / NOT IN (...) /
 * = ANY (ARRAY[...]) / <> ALL (ARRAY[...]) -> `c1, ..., cN`, a value on the
 * left (`v = col`) is moved to the right; a parameter becomes `ANY ($n)`,
 * `ALL ($n)` or `$n[1], ..., $n[N]` and is reported in param_multi (the
 * proxy binds it as a bytea[] of its N ciphertexts). Any other comparison
 * of a value with such a column (IS [NOT] DISTINCT FROM, row comparisons,
 * subqueries, a parameter that is also stored) is refused. Stored values
 * (INSERT, UPDATE SET) keep using encrypt (the active version).
 *
 * encrypt_eq encrypts one value for an equality use: appends its N
 * ciphertexts to out, one after the other, sets lens[i] to the length of
 * the i-th (at most max), and returns N (>= 1), or -1 with a message in err
 * (which must not contain the value). Both get encrypt_ud.
 */
typedef int (*ph_rw_eq_versions_fn)(void *ud, const ph_schema_column *col);
typedef int (*ph_rw_encrypt_eq_fn)(void *ud, const ph_schema_column *col, const char *text_value,
                                   size_t len, ph_buf *out_ciphertexts, size_t *lens, size_t max,
                                   char *err, size_t errlen);

/* The most live versions of one key domain a lookup is expanded to. */
#define PH_RW_MAX_VERSIONS 16

/*
 * Tokenization (mode token, optional): a literal that is only compared with
 * a token column (WHERE col = 'v', IN (...)), never stored, goes to lookup
 * instead of encrypt, so that looking a value up never creates a vault
 * entry (a value never tokenized gets a token that matches no row). For
 * token columns both callbacks append the token's text, which is spliced as
 * a string literal '...' (token columns are stored as text, not bytea).
 * Without lookup, encrypt serves both uses.
 */

/*
 * Optional: the table's column names in attribute order (the proxy answers
 * from its catalog cache), so that INSERT without a column list can be
 * analyzed. Returns the count and sets *names (owned by the callee, valid
 * until ph_rewrite returns), or -1 when unknown.
 */
typedef ssize_t (*ph_rw_columns_fn)(void *ud, const ph_schema_table *table,
                                    const char *const **names);

/* A statement's shape: its analysis with the literal values left out (see
 * "Statement shapes" below). Immutable; owned by whoever got it. */
typedef struct ph_rw_shape ph_rw_shape;

/* One text scanned for its shape key (ph_rw_scan), handed on to the rewrite
 * of that text so that it is not scanned twice. */
typedef struct ph_rw_scanned ph_rw_scanned;

typedef struct ph_rw_options {
    ph_rw_encrypt_fn encrypt; /* required when literals must be encrypted */
    void *encrypt_ud;
    ph_rw_eq_versions_fn eq_versions; /* optional, see "Key rotation" above */
    ph_rw_encrypt_eq_fn encrypt_eq;
    ph_rw_encrypt_fn lookup;        /* optional, see "Tokenization" above */
    ph_rw_columns_fn table_columns; /* optional */
    void *columns_ud;
    /* The session's standard_conforming_strings is off: plain '...' strings
     * then treat backslashes as escapes, which this analyzer does not model;
     * statements that reach the analyzer and contain a backslash are refused. */
    int standard_conforming_strings_off;
    /* The session's client_encoding (ParameterStatus), so that COPY ... ENCODING
     * naming it is allowed on a protected table (the codec reads the stream
     * in the client's encoding); NULL: any ENCODING option there is refused. */
    const char *client_encoding;
    /* Optional: when non-NULL and the analysis depends only on the statement's
     * shape, *shape_out receives a new shape (free with ph_rw_shape_free);
     * otherwise it is set to NULL. */
    ph_rw_shape **shape_out;
    /* Optional (tenants): an INSERT into a table with a tenant column
     * (schema.h) whose row gives that column as a literal encrypts the row's
     * protected literals under that tenant's keys: tenant(ud, T) is called
     * with the literal's text before they are encrypted, and tenant(ud, NULL)
     * once the row's values are done (back to the session's tenant). Returns
     * 0, or -1 with a message in err (never a protected value): the rewrite
     * then fails with it. Without the callback rows are not told apart. */
    int (*tenant)(void *ud, const char *tenant, char *err, size_t errlen);
    /* Optional: ph_rw_scan's scan of this very text. Replaying a shape (and
     * capturing one) then uses its literals instead of scanning the text
     * again; a scan of another text is ignored (the text is compared). */
    const ph_rw_scanned *scanned;
} ph_rw_options;

typedef enum {
    PH_RW_OK = 0,         /* forward (rewritten SQL if sql != NULL), apply the plan */
    PH_RW_REFUSED,        /* do not forward: answer ErrorResponse(sqlstate, message) */
    PH_RW_PARSE_ERROR,    /* not valid SQL (see below); do not forward */
    PH_RW_INTERNAL_ERROR, /* out of memory or the encrypt callback failed; do not forward */
} ph_rw_status;

typedef enum {
    PH_RW_STMT_OTHER = 0,
    PH_RW_STMT_SELECT,
    PH_RW_STMT_INSERT,
    PH_RW_STMT_UPDATE,
    PH_RW_STMT_DELETE,
    PH_RW_STMT_DDL,
    PH_RW_STMT_EXPLAIN,
    PH_RW_STMT_COPY,
} ph_rw_stmt_kind;

/* One result column of a statement's output (SELECT list or RETURNING). */
typedef struct ph_rw_output {
    const ph_schema_column *col; /* the protected column the value comes from, or NULL */
    int star;                    /* a `*` expansion: resolve through RowDescription */
} ph_rw_output;

typedef struct ph_rw_stmt {
    ph_rw_stmt_kind kind;
    int touches_protected; /* reads or writes at least one protected column */
    ph_rw_output *outputs; /* NULL when the statement returns no rows */
    size_t noutputs;
    /* COPY on a protected table (kind PH_RW_STMT_COPY): the proxy encrypts or
     * decrypts the data stream itself; the statement text is not changed. */
    const ph_schema_table *copy_table;
    int copy_from; /* COPY ... FROM (else TO) */
    /* Its options: FORMAT, DELIMITER, NULL, HEADER, QUOTE, ESCAPE from WITH (...)
     * or the legacy syntax, PostgreSQL's defaults for the rest. copy_opts.null_s
     * points into this result (valid until ph_rw_result_free). FREEZE and an
     * ENCODING equal to the client's are accepted; FORCE_QUOTE / FORCE_NOT_NULL /
     * FORCE_NULL naming a protected column, other encodings and unknown options
     * are refused. */
    ph_copy_options copy_opts;
    char *copy_null; /* owned storage behind copy_opts.null_s when NULL was given */
    /* The COPY's column list resolved: copy_cols[i] is the protected column of
     * the i-th listed column, NULL for a plaintext one. Without a column list
     * copy_cols is NULL and copy_ncols is -1: the columns are the table's, in
     * attribute order (the proxy resolves them from its catalog). */
    const ph_schema_column **copy_cols;
    int copy_ncols;
    /* COPY on a table with a tenant column (schema.h) with a column list:
     * the tenant column's position in it, -1 when not listed (without a
     * column list, -1 too: the proxy finds it among the catalog's). */
    int copy_tenant;
} ph_rw_stmt;

typedef struct ph_rw_result {
    ph_rw_status status;
    /* PH_RW_OK: the text to send upstream, NUL-terminated, or NULL when the
     * original text can be sent unchanged. */
    char *sql;
    size_t sql_len;
    /* Per parameter $n (index n-1): the column whose policy encrypts it, or
     * NULL for a plain parameter. nparams is the highest $n referenced. */
    const ph_schema_column **params;
    int nparams;
    /* Per parameter (NULL when none is): 1 when $n is compared with a column
     * whose key domain has several live versions (see "Key rotation"): Parse
     * declares it bytea[] upstream and Bind sends the one-dimensional array
     * of its ciphertexts under every live version, the active one first. */
    unsigned char *param_multi;
    /* Per parameter (both NULL when no parameter needs them): a parameter
     * stored in a row of an INSERT into a table with a tenant column takes
     * that row's tenant: param_tenant_ref[i] = k when the row gives it as
     * $k, param_tenant_lit[i] = the text when as a literal (owned); 0 / NULL:
     * the session's tenant. */
    int *param_tenant_ref;
    char **param_tenant_lit;
    /* Per parameter (NULL when none is): 1 when $n is bound to a token column
     * and only compared, never stored: Bind looks its token up without
     * creating one. Token parameters are declared text upstream. */
    unsigned char *param_lookup;
    ph_rw_stmt *stmts; /* one per statement of the string */
    size_t nstmts;
    int touches_protected; /* any statement does */
    /* The result depends only on the text and the schema (no literal was
     * encrypted): the proxy may cache it by statement text, e.g. for
     * repeated unnamed Parse messages, until the schema changes. */
    int cacheable;
    /* REFUSED / PARSE_ERROR / INTERNAL_ERROR: what to tell the client. */
    char sqlstate[6];
    char message[384];
    int position; /* 1-based character position in the statement text, 0 if none */
} ph_rw_result;

/*
 * Fast path: 0 when the text certainly does not name a protected table
 * (forward it untouched without parsing), 1 when it may. Conservative: a
 * case-insensitive scan for each protected table's name delimited as an
 * identifier, anywhere in the text (strings and comments included); any
 * U&"..." identifier answers 1. Never says 0 for a statement that names a
 * protected table. Cost: one pass over the text.
 */
int ph_rewrite_mentions_protected(const ph_schema *s, const char *sql, size_t len);

/*
 * Analyzes sql[0..len) (one or more statements) against the schema and fills
 * *res (always; free it with ph_rw_result_free). Returns res->status.
 *
 * Decision on malformed SQL: this function is only called once the fast path
 * matched, so the statement may touch protected data; it fails closed and
 * reports PH_RW_PARSE_ERROR with PostgreSQL's own syntax error text (SQLSTATE
 * 42601) instead of forwarding text it cannot analyze. Callers must not log
 * the message (it may quote a token of the statement).
 */
ph_rw_status ph_rewrite(const ph_schema *s, const char *sql, size_t len, const ph_rw_options *opt,
                        ph_rw_result *res);

void ph_rw_result_free(ph_rw_result *res);

/*
 * Statement shapes — analyzing a statement once per shape, not once per text.
 *
 * Applications send the same statements with different literals (the login
 * lookup WHERE email = '...'). A shape key is the text with every literal's
 * value masked ('' for strings, 0 / 0.0 / .0 / 0. for numbers); texts with
 * one key differ only in literal values, and the analysis of one (which
 * values to encrypt for which column, the plan) holds for all of them,
 * except where the analyzer reads a value (ORDER BY 2), in which case no
 * shape is made. ph_rewrite_shaped then rewrites a new text of that shape
 * without parsing it: it encrypts the new values and splices them in.
 *
 * The key scanner models PostgreSQL's lexer for what it masks (strings with
 * '' doubling, numbers, and the comments, quoted identifiers and parameters
 * that surround them); anything else that could change how the rest is read
 * (dollar quotes, E'' / B'' / X'' / N'' / U&'' literals, a string continued
 * on the next line, an unterminated quote or comment) makes the text
 * unshapeable, and it is analyzed in full every time. A shape is only made
 * when the scanner's literals agree with the parse tree's. Shapes are made
 * only for SELECT, INSERT, UPDATE and DELETE and only with
 * standard_conforming_strings on. A shape holds no literal value.
 *
 * The proxy scans a text once: ph_rw_scan gives the key to look the shape
 * up with, and the same scan goes to ph_rewrite_shaped (or to the full
 * rewrite that captures a new shape) in ph_rw_options.scanned.
 */

/* The shape key of sql[0..len) as a NUL-terminated string (the caller frees
 * *key), or -1 when the text is unshapeable or memory ran out. */
int ph_rw_shape_key(const char *sql, size_t len, char **key, size_t *key_len);

/* The same scan, kept for the rewrite of the text (ph_rw_options.scanned):
 * NULL when the text is unshapeable or memory ran out. The object refers to
 * sql without copying it (sql must outlive it) and holds the key and the
 * literals' offsets, never their values. */
ph_rw_scanned *ph_rw_scan(const char *sql, size_t len);
/* Its shape key, NUL-terminated (what ph_rw_shape_key gives); valid until
 * ph_rw_scanned_free. */
const char *ph_rw_scanned_key(const ph_rw_scanned *sc, size_t *key_len);
void ph_rw_scanned_free(ph_rw_scanned *sc); /* NULL allowed */

/* Rewrites sql[0..len), a text whose shape key is sh's, as ph_rewrite would
 * (same result fields; free with ph_rw_result_free). A text with another key
 * gets PH_RW_INTERNAL_ERROR. */
ph_rw_status ph_rewrite_shaped(const ph_rw_shape *sh, const char *sql, size_t len,
                               const ph_rw_options *opt, ph_rw_result *res);

/* The key the shape was made for (NUL-terminated). */
const char *ph_rw_shape_key_of(const ph_rw_shape *sh);

void ph_rw_shape_free(ph_rw_shape *sh);

#endif
