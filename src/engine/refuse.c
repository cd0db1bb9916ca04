/*
 * refuse.c — turning a refusal into messages that make the server raise it.
 *
 * Owns: the DO statement that raises a chosen SQLSTATE and message, and the
 * replacements of a client message by it: for a simple Query one Query; for
 * an extended-protocol message (Parse, Bind) the sequence
 *   Close(S "phantom_refusal") Parse("phantom_refusal", DO) Bind("" <- it)
 *   Execute("")
 * whose Execute raises the error exactly where the client's message would
 * have failed (the server then skips to Sync as usual); the ParseComplete,
 * BindComplete and CloseComplete it also produces are swallowed. The
 * client's original text (which may hold plaintext) never goes upstream, and
 * the transaction state stays the server's. A named statement is used so
 * the client's unnamed statement is left alone.
 */
#include "engine/engine_internal.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "engine/wire.h"

static const char do_head[] = "DO $phantom$ BEGIN RAISE EXCEPTION USING ERRCODE = '";
static const char do_mid[] = "', MESSAGE = E'";
static const char do_tail[] = "'; END $phantom$";

static bool valid_sqlstate(const char *s)
{
    if (strlen(s) != 5)
        return false;
    for (int i = 0; i < 5; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
            return false;
    return strncmp(s, "00", 2) != 0;
}

int eng_refusal_sql(ph_buf *out, const char *sqlstate, const char *message)
{
    const char *code = valid_sqlstate(sqlstate) ? sqlstate : "XX000";
    if (ph_buf_append(out, do_head, strlen(do_head)) || ph_buf_append(out, code, 5) ||
        ph_buf_append(out, do_mid, strlen(do_mid)))
        return -1;
    for (const char *p = message; *p; p++) {
        char ch = *p;
        int rc;
        if (ch == '\'' || ch == '\\')
            rc = ph_buf_append_u8(out, (uint8_t)ch) || ph_buf_append_u8(out, (uint8_t)ch);
        else if (ch == '$' && strncmp(p + 1, "phantom$", 8) == 0)
            rc = ph_buf_append_u8(out, '?'); /* can't close the dollar quote */
        else
            rc = ph_buf_append_u8(out, (uint8_t)ch);
        if (rc)
            return -1;
    }
    return ph_buf_append(out, do_tail, strlen(do_tail)) || ph_buf_append_u8(out, 0) ? -1 : 0;
}

void eng_refusal_message(const ph_rw_result *r, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", r->message[0] ? r->message : "phantom: statement refused");
    if (r->status != PH_RW_PARSE_ERROR)
        return;
    /* PostgreSQL's syntax errors quote the offending token, which may be a
     * protected literal: keep the reason and the position only. */
    char *near = strstr(out, " at or near ");
    if (near)
        *near = '\0';
    size_t l = strlen(out);
    if (r->position > 0 && l < outlen)
        snprintf(out + l, outlen - l, " at character %d", r->position);
}

int eng_refuse_query(ph_session *s, ph_buf *rep, const char *sqlstate, const char *message)
{
    ph_buf sql = {0};
    int rc = eng_refusal_sql(&sql, sqlstate, message);
    if (rc == 0)
        rc = eng_put_query(rep, (const char *)sql.data, sql.len - 1);
    ph_buf_free(&sql);
    if (rc != 0)
        return -1;
    if (s->skip_till_sync)
        return 0;
    eng_ex *x = eng_ex_push(s, EX_QUERY);
    if (!x)
        return -1;
    x->gen = ++s->gen;
    x->refusal = true;
    return 0;
}

/* The fields of an ErrorResponse body are NUL-terminated and end with a 0. */
static bool well_formed_error(const uint8_t *msg, uint32_t total)
{
    uint32_t i = 5;
    while (i < total && msg[i] != 0) {
        const uint8_t *end = memchr(msg + i + 1, 0, total - i - 1);
        if (!end)
            return false;
        i = (uint32_t)(end - msg) + 1;
    }
    return i + 1 == total;
}

int eng_refusal_error(const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    if (total < 6 || !well_formed_error(msg, total))
        return PGF_KEEP; /* not ours to fix: pass the server's message as it is */
    size_t start = rep->len;
    if (ph_buf_append_u8(rep, 'E') || ph_buf_append_u32(rep, 0))
        return -1;
    for (uint32_t i = 5; msg[i] != 0;) {
        size_t n = strlen((const char *)msg + i) + 1;
        if (msg[i] != 'W' && ph_buf_append(rep, msg + i, n))
            return -1;
        i += (uint32_t)n;
    }
    if (ph_buf_append_u8(rep, 0))
        return -1;
    ph_put_u32(rep->data + start + 1, (uint32_t)(rep->len - start - 1));
    return PGF_REPLACED;
}

int eng_refuse_extended(ph_session *s, ph_buf *rep, const char *sqlstate, const char *message)
{
    ph_buf sql = {0};
    int rc = eng_refusal_sql(&sql, sqlstate, message);
    if (rc == 0)
        rc = eng_put_close(rep, 'S', ENG_REFUSAL_STMT) ||
             eng_put_parse(rep, ENG_REFUSAL_STMT, (const char *)sql.data, sql.len - 1, 0, NULL) ||
             eng_put_bind_empty(rep, "", ENG_REFUSAL_STMT) || eng_put_execute(rep, "", 0);
    ph_buf_free(&sql);
    if (rc != 0)
        return -1;
    s->ext_open = true;
    s->discard_till_sync = true;
    if (s->skip_till_sync)
        return 0;
    if (!eng_ex_push(s, EX_INJ_CLOSE) || !eng_ex_push(s, EX_INJ_PARSE) ||
        !eng_ex_push(s, EX_INJ_BIND) || !eng_ex_push(s, EX_REFUSE_EXEC))
        return -1;
    return 0;
}
