/*
 * setup.c — see setup.h.
 */
#include "cli/setup.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys/secmem.h"

#define MAX_CONFIG_FILE (16u * 1024u * 1024u)

/* Reads a whole (small) file; NULL with a reason. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *data = malloc(MAX_CONFIG_FILE + 1);
    size_t n = data ? fread(data, 1, MAX_CONFIG_FILE + 1, f) : 0;
    int bad = !data || ferror(f) || n > MAX_CONFIG_FILE;
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: %s", path,
                 data ? "unreadable or larger than 16 MiB" : "out of memory");
        free(data);
        return NULL;
    }
    data[n] = '\0';
    *len = n;
    return data;
}

/* The audit log installed as the process's sink by a setup (audit.c has no
 * getter): a setup freed while another one's log is the sink leaves it. */
static _Atomic(ph_audit *) g_active_audit;

static void activate_audit(ph_audit *a)
{
    atomic_store(&g_active_audit, a);
    ph_audit_set_global(a);
}

static size_t count_columns(const ph_schema *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->ntables; i++)
        n += s->tables[i]->ncolumns;
    return n;
}

static int open_keys(ph_setup *s, int mode, char *err, size_t errlen)
{
    if (!s->kc.present) {
        snprintf(err, errlen,
                 "%s: the encrypt section needs a keys: section (keyring and KEK provider)",
                 s->kc.source_path ? s->kc.source_path : "config");
        return -1;
    }
    if (ph_keys_config_validate(&s->kc, err, errlen) != 0)
        return -1;
    (void)ph_secure_process_init(); /* no core dumps of a process holding keys */
    char why[256];
    s->audit = ph_audit_open(s->kc.audit_log, why, sizeof why);
    if (!s->audit) {
        snprintf(err, errlen, "audit log: %s", why);
        return -1;
    }
    if (mode != PH_SETUP_KEYS_STAGED)
        activate_audit(s->audit);
    int live = mode == PH_SETUP_KEYS_LIVE || mode == PH_SETUP_KEYS_STAGED;
    s->keys = live ? ph_keysource_open_live(&s->kc, s->schema, err, errlen)
                   : ph_keysource_open(&s->kc, s->schema, err, errlen);
    if (!s->keys)
        return -1;
    /* ph_engine_open says why (a token vault that cannot be opened, or OOM) */
    s->engine = ph_engine_open(s->schema, s->keys, err, errlen);
    if (!s->engine)
        return -1;
    return 0;
}

int ph_setup_load(ph_setup *s, const char *path, int with_keys, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    ph_keys_config_defaults(&s->kc);
    size_t len = 0;
    char *doc = read_file(path, &len, err, errlen);
    int rc = doc ? ph_schema_load_buffer(&s->schema, doc, len, path, err, errlen) : -1;
    free(doc);
    if (rc == 0)
        rc = ph_keys_config_load_file(&s->kc, path, err, errlen);
    if (rc == 0) {
        s->ncolumns = count_columns(s->schema);
        if (s->ncolumns > 0 && with_keys)
            rc = open_keys(s, with_keys, err, errlen);
        else if (s->ncolumns > 0 && s->kc.present)
            rc = ph_keys_config_validate(&s->kc, err, errlen);
    }
    if (rc != 0)
        ph_setup_free(s);
    return rc;
}

void ph_setup_activate(ph_setup *s)
{
    if (s->audit)
        activate_audit(s->audit);
}

void ph_setup_free(ph_setup *s)
{
    ph_engine_free(s->engine);
    ph_keysource_free(s->keys);
    if (s->audit) {
        ph_audit *mine = s->audit;
        if (atomic_compare_exchange_strong(&g_active_audit, &mine, NULL))
            ph_audit_set_global(NULL);
        ph_audit_close(s->audit);
    }
    ph_schema_free(s->schema);
    ph_keys_config_free(&s->kc);
    memset(s, 0, sizeof *s);
}
