/*
 * schema_internal.h — helpers shared by the schema model (schema.c) and its
 * YAML loader (schema_yaml.c); not part of the public API.
 */
#ifndef PHANTOM_SCHEMA_INTERNAL_H
#define PHANTOM_SCHEMA_INTERNAL_H

#include "schema/schema.h"

/* Recomputes the fast-path index (first_byte, max_name_len). */
void ph_schema_index(ph_schema *s);

void ph_schema_table_free(ph_schema_table *t);

#endif
