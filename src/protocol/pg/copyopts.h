/*
 * copyopts.h — the options of a COPY statement that shape its data stream.
 *
 * Owns: the format (text, CSV, binary) and the delimiter, quote, escape,
 * NULL string and HEADER of a COPY, with PostgreSQL's defaults. Shared by
 * the rewriter (src/rewrite/, which reads them from the statement) and the
 * COPY codec (src/engine/copy.h, which parses and writes the stream), so
 * neither depends on the other.
 */
#ifndef PHANTOM_COPYOPTS_H
#define PHANTOM_COPYOPTS_H

#include <stdbool.h>

typedef enum { PH_COPY_TEXT = 0, PH_COPY_CSV, PH_COPY_BINARY } ph_copy_format;

/* The statement's options (PostgreSQL defaults when not given). */
typedef struct ph_copy_options {
    ph_copy_format format;
    char delimiter;     /* text: '\t', csv: ',' */
    char quote;         /* csv: '"' */
    char escape;        /* csv: same as quote */
    const char *null_s; /* text: "\\N", csv: "" (unquoted empty); not owned */
    bool header;        /* csv/text HEADER (true or MATCH): the first line is passed through */
    /* FORCE_QUOTE / FORCE_NOT_NULL / FORCE_NULL are accepted by PostgreSQL
     * for CSV; fields this codec re-encodes are written quoted when needed. */
} ph_copy_options;

/* Fills o with PostgreSQL's defaults for format. */
static inline void ph_copy_options_default(ph_copy_options *o, ph_copy_format format)
{
    o->format = format;
    o->delimiter = format == PH_COPY_CSV ? ',' : '\t';
    o->quote = '"';
    o->escape = '"';
    o->null_s = format == PH_COPY_CSV ? "" : "\\N";
    o->header = false;
}

#endif
