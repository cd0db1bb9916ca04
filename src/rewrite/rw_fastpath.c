/*
 * rw_fastpath.c — decides, without parsing, whether a statement may name a
 * protected table (ph_rewrite_mentions_protected).
 *
 * Owns: the conservative text scan. A table can only be reached by writing
 * its name as an identifier token, so a case-insensitive search for each
 * protected name delimited like an identifier (a longer identifier such as
 * customers_archive does not match) finds every statement that can touch
 * one. Strings and comments are not skipped (false positives only cost a
 * parse). Names of 63 bytes match as prefixes, since PostgreSQL truncates
 * longer identifiers; a Unicode-escaped identifier (U&"...") always matches.
 * What the scan cannot see — views, functions, rules or prepared statements
 * created earlier over a protected table — is a documented limitation.
 */
#include "rewrite/rewrite.h"
#include "rewrite/rw_internal.h"

#include <string.h>

static unsigned char fold(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch - 'A' + 'a') : ch;
}

static int matches_at(const char *sql, size_t len, size_t i, const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > len - i)
        return 0;
    for (size_t k = 0; k < n; k++)
        if (fold((unsigned char)sql[i + k]) != fold((unsigned char)name[k]))
            return 0;
    if (n >= PH_SCHEMA_MAX_IDENT)
        return 1;
    return i + n == len || !rw_ident_cont((unsigned char)sql[i + n]);
}

static int any_table_at(const ph_schema *s, const char *sql, size_t len, size_t i)
{
    for (size_t t = 0; t < s->ntables; t++)
        if (matches_at(sql, len, i, s->tables[t]->name))
            return 1;
    return 0;
}

/* A name is tried where a protected name's first byte stands and the byte
 * before is not a letter, _ or byte >= 0x80 (which would make it part of a
 * longer identifier; a digit or $ may end a number or parameter: no block).
 * The rest of a run of such bytes is skipped with one table lookup each. */
int ph_rewrite_mentions_protected(const ph_schema *s, const char *sql, size_t len)
{
    if (!s || s->ntables == 0 || !sql)
        return 0;
    size_t i = 0;
    while (i < len) {
        unsigned char ch = (unsigned char)sql[i];
        if (rw_ident_start(ch)) { /* the first byte of a run */
            if (s->first_byte[ch] && any_table_at(s, sql, len, i))
                return 1;
            for (i++; i < len && rw_ident_start((unsigned char)sql[i]); i++)
                ;
            continue;
        }
        if (ch == '&' && i > 0 && (sql[i - 1] | 0x20) == 'u' && i + 1 < len && sql[i + 1] == '"')
            return 1; /* U&"...": a Unicode-escaped identifier */
        if (s->first_byte[ch] && (i == 0 || !rw_ident_start((unsigned char)sql[i - 1])) &&
            any_table_at(s, sql, len, i))
            return 1; /* a name that does not start with a letter (quoted) */
        i++;
    }
    return 0;
}
