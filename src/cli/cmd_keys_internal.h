/*
 * cmd_keys_internal.h — what the `phantom keys` commands share
 * (cmd_keys.c: the command line, setup and the key-version commands;
 * cmd_keys_tenant.c: shred and probe); not an API.
 */
#ifndef PHANTOM_CLI_CMD_KEYS_INTERNAL_H
#define PHANTOM_CLI_CMD_KEYS_INTERNAL_H

#include "keys/audit.h"
#include "keys/kek.h"
#include "keys/keyring.h"
#include "keys/keys_config.h"

#define LOCK_TIMEOUT_MS 10000u

struct ph_kek_set;

typedef struct {
    const char *cmd;
    const char *config_path;
    const char *out;
    const char *tenant; /* shred: --tenant */
    int json, force, no_escrow, escrow_kek, yes;
    char **args;
    int nargs;
    /* resources */
    ph_keys_config kc;
    int kc_loaded;
    ph_audit *audit;
    int lock_fd;
    ph_keyring *kr;
    ph_kek *primary;
    ph_kek *escrow;
    struct ph_kek_set *tenant_keks; /* tenants' own KEKs (kek_tenant.h), opened on demand */
} kctx;

/* What setup() opens. */
enum {
    NEED_PRIMARY = 1,
    NEED_ESCROW = 2,
    KEYRING_MAY_BE_MISSING = 4,
    WRITE = 8,
    ESCROW_IF_CONFIGURED = 16, /* open the escrow KEK when configured, unless --no-escrow */
};

/* "phantom keys CMD: message" on stderr; returns 1. */
int errorf(const kctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Config, audit log (the process-wide sink), keyring lock (WRITE), keyring,
 * KEKs as asked: 0, or the exit status of the failure (reported). */
int setup(kctx *c, int need);
/* One administrative audit record "keys.<cmd>" (fsync'ed): 0 or -1 (reported). */
int audit_admin(kctx *c, const char *outcome, const char *kek, const char *domain,
                const ph_dek_version *v, const char *reason, const char *detail);
/* The KEK that wraps key domain `domain`'s DEKs: the primary, or the
 * tenant's own (create=1: made when missing). NULL + err. */
ph_kek *kek_for(kctx *c, const char *domain, int create, char *err, size_t errlen);
/* Saves the keyring: 0, or 1 (reported and audited; the keyring unchanged). */
int save(kctx *c);

/* cmd_keys_tenant.c */
int cmd_shred(kctx *c);
int cmd_probe(kctx *c);

#endif
