/*
 * yaml_doc.h — loading one YAML document (libyaml's composer), reading its
 * scalar nodes and reporting errors against it.
 *
 * Owns: what the three readers of phantom.yaml (config/, keys/keys_config,
 * schema/) share: parsing a buffer into a yaml_document_t, the
 * "NAME:LINE: reason" errors (LINE 1-based, of the node concerned), a
 * node's scalar text and the YAML null test.
 */
#ifndef PHANTOM_COMMON_YAML_DOC_H
#define PHANTOM_COMMON_YAML_DOC_H

#include <stddef.h>
#include <yaml.h>

/* The largest phantom.yaml read (ph_file_read's max). */
#define PH_YAML_FILE_MAX (16u << 20)

/* Where a reader's errors go: "NAME:LINE: reason" into err[errlen]. */
typedef struct ph_yaml_src {
    const char *name; /* the file name, or what stands for it */
    char *err;
    size_t errlen;
} ph_yaml_src;

/* The 1-based line of n; 1 for NULL. */
size_t ph_yaml_line(const yaml_node_t *n);

/* "NAME:LINE: reason" for node n / for a line; both return -1. */
int ph_yaml_fail(const ph_yaml_src *src, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int ph_yaml_fail_line(const ph_yaml_src *src, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses the first document of data[len]. Returns 0 with *doc to be freed
 * with yaml_document_delete (an empty buffer gives a document without a
 * root node), or -1 with "NAME:LINE: problem" or "NAME: out of memory". */
int ph_yaml_load(yaml_document_t *doc, const char *data, size_t len, const char *name, char *err,
                 size_t errlen);

/* The scalar text of n, NULL when n is NULL or not a scalar. */
const char *ph_yaml_scalar(const yaml_node_t *n);

/* 1 when n is a plain scalar ~, null or empty (YAML's null). */
int ph_yaml_is_null(const yaml_node_t *n);

#endif
