/*
 * yaml_doc.c — the YAML helpers declared in yaml_doc.h.
 */
#include "common/yaml_doc.h"

#include <stdarg.h>
#include <string.h>

#include "common/err.h"

int ph_yaml_load(yaml_document_t *doc, const char *data, size_t len, const char *name, char *err,
                 size_t errlen)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return ph_errf(err, errlen, "%s: out of memory", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    int rc = 0;
    if (!yaml_parser_load(&parser, doc))
        rc = ph_errf_at(err, errlen, name, parser.problem_mark.line + 1, "%s",
                        parser.problem ? parser.problem : "invalid YAML");
    yaml_parser_delete(&parser);
    return rc;
}

size_t ph_yaml_line(const yaml_node_t *n)
{
    return n ? n->start_mark.line + 1 : 1;
}

int ph_yaml_fail_line(const ph_yaml_src *src, size_t line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ph_verrf_at(src->err, src->errlen, src->name, line, fmt, ap);
    va_end(ap);
    return -1;
}

int ph_yaml_fail(const ph_yaml_src *src, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ph_verrf_at(src->err, src->errlen, src->name, ph_yaml_line(n), fmt, ap);
    va_end(ap);
    return -1;
}

const char *ph_yaml_scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

int ph_yaml_is_null(const yaml_node_t *n)
{
    const char *v = ph_yaml_scalar(n);
    return v && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0);
}
