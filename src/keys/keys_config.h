/*
 * keys_config.h — the `keys:` section of phantom.yaml.
 *
 * Owns: the typed key-management settings (keyring path, KEK provider and
 * its settings, optional escrow/recovery KEK, audit log, DEK cache TTL) and
 * loading them with libyaml from the same YAML file the proxy config comes
 * from (src/config/ ignores the `keys:` section; this module reads only it).
 * Every error is "FILE:LINE: reason" (never a secret value).
 *
 * Accepted YAML (every key optional unless marked; unknown keys are errors):
 *
 *   keys:
 *     keyring: /var/lib/phantom/keyring.json   # required for `phantom keys`
 *     audit_log: /var/log/phantom/audit.jsonl  # default: <keyring>.audit.jsonl
 *     cache_ttl: 300                           # key TTL: N, Ns, Nm or Nh (default 300s); the
 *                                              # proxy re-unwraps its keys every TTL/2 and
 *                                              # wipes them when none succeeded for a TTL
 *     when_unavailable: refuse                 # refuse (default) | serve-unprotected
 *     provider: file                           # file | openbao | pkcs11 (default file)
 *     file: { path: /etc/phantom/master.key }
 *     openbao:
 *       address: https://bao:8200              # required for openbao
 *       mount: transit                         # default "transit"
 *       key: phantom                           # Transit key name (alias: key_name), required
 *       token: s.xxxx                          # or token_file, or kubernetes_role
 *       token_file: /run/secrets/bao-token
 *       ca_file: /etc/phantom/bao-ca.pem
 *       kubernetes_role: phantom
 *       kubernetes_jwt_path: /var/run/secrets/kubernetes.io/serviceaccount/token
 *       kubernetes_auth_path: kubernetes       # default "kubernetes"
 *       timeout_ms: 10000                      # default 10000
 *       tenant_key_prefix: phantom-tenant-     # optional: each tenant's DEKs are wrapped
 *                                              # by its own Transit key <prefix><tenant>,
 *                                              # made on first use and deleted by
 *                                              # `phantom keys shred` (1..64 of
 *                                              # [A-Za-z0-9_.-], starting with one of
 *                                              # [A-Za-z0-9_])
 *     pkcs11:
 *       module: /usr/lib/softhsm/libsofthsm2.so
 *       token_label: phantom
 *       pin: "1234"                            # or pin_file
 *       pin_file: /run/secrets/hsm-pin
 *       key_label: phantom-kek
 *     escrow:                                  # optional recovery KEK (seed 001)
 *       provider: file                         # same sub-keys as above
 *       file: { path: /etc/phantom/recovery.key }
 *
 * Only the settings block of the selected provider is validated for required
 * fields; other blocks may be present (e.g. kept for a later switch). A
 * null value (~) means "unset". Duplicate keys are errors. After a successful
 * load, openbao.mount / kubernetes_jwt_path / kubernetes_auth_path are never
 * NULL (defaults below) and audit_log is set whenever keyring is.
 *
 * Constructors of the network/HSM providers (implemented in
 * src/keys/kek_openbao.c and src/keys/kek_pkcs11.c, declared in
 * kek_openbao.h / kek_pkcs11.h) take these structs:
 *   ph_kek *ph_kek_openbao_open(const ph_keys_openbao_cfg *cfg, char *err, size_t errlen);
 *   ph_kek *ph_kek_pkcs11_open(const ph_keys_pkcs11_cfg *cfg, char *err, size_t errlen);
 */
#ifndef PHANTOM_KEYS_CONFIG_H
#define PHANTOM_KEYS_CONFIG_H

#include <stddef.h>

#define PH_KEYS_DEFAULT_MOUNT         "transit"
#define PH_KEYS_DEFAULT_K8S_JWT_PATH  "/var/run/secrets/kubernetes.io/serviceaccount/token"
#define PH_KEYS_DEFAULT_K8S_AUTH_PATH "kubernetes"
#define PH_KEYS_DEFAULT_TIMEOUT_MS    10000u
#define PH_KEYS_DEFAULT_CACHE_TTL_S   300u

/* What the proxy serves while its keys are unavailable (keysource.h). */
typedef enum {
    PH_KEYS_UNAVAILABLE_REFUSE = 0,        /* every statement is refused */
    PH_KEYS_UNAVAILABLE_SERVE_UNPROTECTED, /* statements naming no protected table still run */
} ph_keys_unavailable_policy;

typedef enum {
    PH_KEK_KIND_NONE = 0, /* not configured */
    PH_KEK_KIND_FILE,
    PH_KEK_KIND_OPENBAO,
    PH_KEK_KIND_PKCS11,
} ph_kek_kind;

/* All strings below are heap-owned by the enclosing ph_keys_config (NULL =
 * not set) and freed by ph_keys_config_free; secrets (token, pin) are wiped
 * with OPENSSL_cleanse before being freed. */

typedef struct ph_keys_file_cfg {
    char *path; /* master-key file (see kek_file.h for its format) */
} ph_keys_file_cfg;

typedef struct ph_keys_openbao_cfg {
    char *address;              /* "https://bao:8200" (no trailing /v1) */
    char *mount;                /* Transit mount, default "transit" */
    char *key_name;             /* Transit key name */
    char *token;                /* literal token (secret) or NULL */
    char *token_file;           /* file holding the token, or NULL */
    char *ca_file;              /* CA bundle for the server, NULL = system store */
    char *kubernetes_role;      /* non-NULL = Kubernetes auth login with this role */
    char *kubernetes_jwt_path;  /* default PH_KEYS_DEFAULT_K8S_JWT_PATH */
    char *kubernetes_auth_path; /* auth mount, default "kubernetes" */
    unsigned timeout_ms;        /* per HTTP request, default 10000 */
    char *tenant_key_prefix;    /* per-tenant Transit keys <prefix><tenant>, or NULL */
} ph_keys_openbao_cfg;

typedef struct ph_keys_pkcs11_cfg {
    char *module;      /* path of the PKCS#11 module (.so) */
    char *token_label; /* token to open */
    char *pin;         /* user PIN (secret) or NULL */
    char *pin_file;    /* file holding the PIN, or NULL */
    char *key_label;   /* CKA_LABEL of the AES KEK object */
} ph_keys_pkcs11_cfg;

/* One KEK provider: the kind plus the settings of every kind (only the one
 * of `kind` is used). */
typedef struct ph_keys_provider_cfg {
    ph_kek_kind kind;
    ph_keys_file_cfg file;
    ph_keys_openbao_cfg openbao;
    ph_keys_pkcs11_cfg pkcs11;
} ph_keys_provider_cfg;

typedef struct ph_keys_config {
    char *keyring;        /* keyring file path (keyring.h) */
    char *audit_log;      /* audit log path (audit.h); default <keyring>.audit.jsonl */
    unsigned cache_ttl_s; /* DEK cache / proxy key TTL, seconds */
    ph_keys_unavailable_policy when_unavailable; /* default PH_KEYS_UNAVAILABLE_REFUSE */
    ph_keys_provider_cfg primary;                /* the KEK provider used in normal operation */
    int has_escrow;                              /* 1 if an `escrow:` block is present */
    ph_keys_provider_cfg escrow;                 /* the offline recovery KEK (seed 001) */
    int present;                                 /* 1 if the file had a `keys:` section */
    size_t line;                                 /* 1-based line of `keys:` (0 if absent) */
    char *source_path;                           /* file it was loaded from */
} ph_keys_config;

/* Defaults: provider file (no path), no keyring, TTL 300 s, when_unavailable
 * refuse, openbao defaults. */
void ph_keys_config_defaults(ph_keys_config *kc);

/*
 * Reads the `keys:` section of the YAML file at `path` into *kc (which must
 * hold defaults). A file without a `keys:` section is not an error (kc->present
 * stays 0). Returns 0, or -1 with "FILE:LINE: reason" in err; *kc is then safe
 * to free but should not be used.
 */
int ph_keys_config_load_file(ph_keys_config *kc, const char *path, char *err, size_t errlen);

/* Same for an in-memory document named `name` (used by tests). */
int ph_keys_config_load_string(ph_keys_config *kc, const char *name, const char *doc, size_t len,
                               char *err, size_t errlen);

/* Checks that a keyring is set and that the selected provider(s) have their
 * required settings. Returns 0, or -1 with "FILE:LINE: reason" in err. */
int ph_keys_config_validate(const ph_keys_config *kc, char *err, size_t errlen);

/* "file" / "openbao" / "pkcs11" / "none". */
const char *ph_kek_kind_name(ph_kek_kind kind);

/* Frees every owned string (wiping secrets); leaves *kc zeroed. NULL allowed. */
void ph_keys_config_free(ph_keys_config *kc);

#endif
