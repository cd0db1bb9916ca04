/*
 * kek_pkcs11.c — the `pkcs11` KEK provider (an AES KEK inside an HSM).
 *
 * Owns: the process-wide registry of loaded PKCS#11 modules (dlopen,
 * C_GetFunctionList, C_Initialize once, C_Finalize + dlclose with the last
 * user), the provider's logged-in session and its recovery, finding KEK
 * versions by label, AES-GCM wrapping on the token, generating KEK versions,
 * and naming CK_RV codes in errors. The PIN is kept (for session recovery)
 * and wiped on destroy; unwrapped DEK buffers are wiped after use.
 */
#include "keys/kek_pkcs11.h"

#include "common/bytes.h"
#include "common/err.h"

#include <dlfcn.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

#define TOKEN_LABEL_LEN 32
#define MAX_KEY_LABEL   120
#define MAX_LABEL_ATTR  256
#define MAX_PIN_LEN     256
#define FORMAT_V1       0x01
#define HDR_LEN         5
#define IV_LEN          12
#define TAG_LEN         16
#define SEALED_LEN      (PH_DEK_LEN + TAG_LEN)
#define AAD_CTX         "phantom/pkcs11/v1"
#define AAD_CTX_LEN     (sizeof(AAD_CTX) - 1)
#define MAX_VERSION     1000000u

_Static_assert(HDR_LEN + IV_LEN + SEALED_LEN == PH_PKCS11_BLOB_LEN, "blob layout");

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

static const char *rv_name(CK_RV rv)
{
    static const struct {
        CK_RV rv;
        const char *name;
    } names[] = {
        {CKR_OK, "CKR_OK"},
        {CKR_HOST_MEMORY, "CKR_HOST_MEMORY"},
        {CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID"},
        {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"},
        {CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED"},
        {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"},
        {CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE"},
        {CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID"},
        {CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID"},
        {CKR_DATA_INVALID, "CKR_DATA_INVALID"},
        {CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE"},
        {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"},
        {CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY"},
        {CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED"},
        {CKR_ENCRYPTED_DATA_INVALID, "CKR_ENCRYPTED_DATA_INVALID"},
        {CKR_ENCRYPTED_DATA_LEN_RANGE, "CKR_ENCRYPTED_DATA_LEN_RANGE"},
        {CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID"},
        {CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT"},
        {CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED"},
        {CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID"},
        {CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID"},
        {CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE"},
        {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"},
        {CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE"},
        {CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED"},
        {CKR_PIN_LOCKED, "CKR_PIN_LOCKED"},
        {CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED"},
        {CKR_SESSION_COUNT, "CKR_SESSION_COUNT"},
        {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"},
        {CKR_SESSION_READ_ONLY, "CKR_SESSION_READ_ONLY"},
        {CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE"},
        {CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT"},
        {CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT"},
        {CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED"},
        {CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED"},
        {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"},
        {CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED"},
        {CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID"},
        {CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"},
        {CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED"},
        {CKR_CRYPTOKI_ALREADY_INITIALIZED, "CKR_CRYPTOKI_ALREADY_INITIALIZED"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].rv == rv)
            return names[i].name;
    return "unknown CK_RV";
}

/* "C_Login: CKR_PIN_INCORRECT (0xa0)" */
static void rv_err(char *err, size_t errlen, const char *what, const char *fn, CK_RV rv)
{
    ph_errf(err, errlen, "pkcs11 %s: %s failed: %s (0x%lx)", what, fn, rv_name(rv),
            (unsigned long)rv);
}

/* ------------------------------------------------------------------------ */
/* Module registry (process-wide)                                            */

typedef struct p11_module {
    struct p11_module *next;
    char *path; /* realpath of the .so */
    void *dl;
    CK_FUNCTION_LIST_PTR fl;
    int refs;
    int we_initialized; /* 0: someone else in the process called C_Initialize */
} p11_module;

static pthread_mutex_t g_mods_mu = PTHREAD_MUTEX_INITIALIZER;
static p11_module *g_mods;

static p11_module *module_load(const char *real, char *err, size_t errlen)
{
    dlerror();
    void *dl = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *why = dlerror();
        ph_errf(err, errlen, "pkcs11: cannot load module %s: %s", real, why ? why : "dlopen");
        return NULL;
    }
    CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
    CK_FUNCTION_LIST_PTR fl = NULL;
    CK_RV rv = gfl ? gfl(&fl) : CKR_FUNCTION_FAILED;
    if (rv != CKR_OK || !fl) {
        dlclose(dl);
        ph_errf(err, errlen, "pkcs11: %s is not a PKCS#11 module (C_GetFunctionList)", real);
        return NULL;
    }
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK;
    rv = fl->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        dlclose(dl);
        rv_err(err, errlen, "open", "C_Initialize", rv);
        return NULL;
    }
    p11_module *m = ph_calloc(1, sizeof(*m));
    char *p = strdup(real);
    if (!m || !p) {
        if (rv == CKR_OK)
            fl->C_Finalize(NULL);
        dlclose(dl);
        free(m);
        free(p);
        ph_errf(err, errlen, "out of memory");
        return NULL;
    }
    m->path = p;
    m->dl = dl;
    m->fl = fl;
    m->refs = 1;
    m->we_initialized = rv == CKR_OK;
    return m;
}

static p11_module *module_acquire(const char *path, char *err, size_t errlen)
{
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        ph_errf(err, errlen, "pkcs11: cannot load module %s: %m", path);
        return NULL;
    }
    pthread_mutex_lock(&g_mods_mu);
    p11_module *m;
    for (m = g_mods; m; m = m->next)
        if (strcmp(m->path, real) == 0)
            break;
    if (m) {
        m->refs++;
    } else {
        m = module_load(real, err, errlen);
        if (m) {
            m->next = g_mods;
            g_mods = m;
        }
    }
    pthread_mutex_unlock(&g_mods_mu);
    return m;
}

static void module_release(p11_module *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&g_mods_mu);
    if (--m->refs == 0) {
        for (p11_module **pp = &g_mods; *pp; pp = &(*pp)->next)
            if (*pp == m) {
                *pp = m->next;
                break;
            }
        if (m->we_initialized)
            m->fl->C_Finalize(NULL);
        dlclose(m->dl);
        free(m->path);
        free(m);
    }
    pthread_mutex_unlock(&g_mods_mu);
}

/* ------------------------------------------------------------------------ */
/* Provider state and session                                                */

typedef struct p11_kek {
    ph_kek base; /* first: the dispatchers see a ph_kek */
    pthread_mutex_t mu;
    p11_module *mod;
    CK_FUNCTION_LIST_PTR fl;
    char token_label[TOKEN_LABEL_LEN + 1];
    char key_label[MAX_KEY_LABEL + 1];
    char *pin; /* secret */
    size_t pin_len;
    CK_SESSION_HANDLE sess;
    int has_sess;
} p11_kek;

static const ph_kek_ops p11_ops;

static int find_slot(p11_kek *k, CK_SLOT_ID *out, char *err, size_t errlen)
{
    CK_ULONG n = 0;
    CK_SLOT_ID *slots = NULL;
    CK_RV rv;
    for (int tries = 0; tries < 3; tries++) {
        rv = k->fl->C_GetSlotList(CK_TRUE, NULL, &n);
        if (rv != CKR_OK)
            break;
        free(slots);
        slots = ph_calloc(n ? n : 1, sizeof(*slots));
        if (!slots) {
            ph_errf(err, errlen, "out of memory");
            return -1;
        }
        rv = k->fl->C_GetSlotList(CK_TRUE, slots, &n);
        if (rv != CKR_BUFFER_TOO_SMALL)
            break;
    }
    if (rv != CKR_OK) {
        free(slots);
        rv_err(err, errlen, "open", "C_GetSlotList", rv);
        return -1;
    }
    unsigned char want[TOKEN_LABEL_LEN];
    memset(want, ' ', sizeof(want));
    memcpy(want, k->token_label, strlen(k->token_label));
    int found = 0;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (k->fl->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
            continue;
        if (memcmp(ti.label, want, sizeof(want)) == 0) {
            if (found++ == 0)
                *out = slots[i];
        }
    }
    free(slots);
    if (found == 0) {
        ph_errf(err, errlen, "pkcs11: no token labelled '%s' in %s", k->token_label, k->mod->path);
        return -1;
    }
    if (found > 1) {
        ph_errf(err, errlen, "pkcs11: %d tokens are labelled '%s'", found, k->token_label);
        return -1;
    }
    return 0;
}

static void session_close(p11_kek *k)
{
    if (k->has_sess) {
        /* No C_Logout: login state is shared by every session of the
         * process on this token; closing the last session logs out. */
        k->fl->C_CloseSession(k->sess);
        k->has_sess = 0;
    }
}

static int session_open(p11_kek *k, char *err, size_t errlen)
{
    CK_SLOT_ID slot;
    if (find_slot(k, &slot, err, errlen) != 0)
        return -1;
    CK_RV rv =
        k->fl->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &k->sess);
    if (rv != CKR_OK) {
        rv_err(err, errlen, "open", "C_OpenSession", rv);
        return -1;
    }
    k->has_sess = 1;
    rv = k->fl->C_Login(k->sess, CKU_USER, (CK_UTF8CHAR_PTR)k->pin, k->pin_len);
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        session_close(k);
        if (rv == CKR_PIN_INCORRECT)
            ph_errf(err, errlen, "pkcs11: login to token '%s' failed: wrong PIN (%s)",
                    k->token_label, rv_name(rv));
        else
            rv_err(err, errlen, "login", "C_Login", rv);
        return -1;
    }
    return 0;
}

static int session_lost(CK_RV rv)
{
    return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
           rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_DEVICE_REMOVED ||
           rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_DEVICE_ERROR;
}

/* ------------------------------------------------------------------------ */
/* Key versions                                                              */

static void version_label(const p11_kek *k, unsigned v, char *out, size_t n)
{
    if (v == 1)
        snprintf(out, n, "%s", k->key_label);
    else
        snprintf(out, n, "%s#%u", k->key_label, v);
}

/* 0 = not one of our labels; else the version it names. */
static unsigned label_version(const p11_kek *k, const char *label, size_t len)
{
    size_t kl = strlen(k->key_label);
    if (len < kl || memcmp(label, k->key_label, kl) != 0)
        return 0;
    if (len == kl)
        return 1;
    if (label[kl] != '#' || len == kl + 1 || label[kl + 1] == '0' || len - kl - 1 > 7)
        return 0;
    unsigned v = 0;
    for (size_t i = kl + 1; i < len; i++) {
        if (label[i] < '0' || label[i] > '9')
            return 0;
        v = v * 10 + (unsigned)(label[i] - '0');
    }
    return v >= 2 ? v : 0;
}

/* Collects the handles of every AES secret key (optionally with a label). */
static CK_RV find_aes_keys(p11_kek *k, const char *label, CK_OBJECT_HANDLE **out, size_t *n)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_ATTRIBUTE tmpl[3] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_LABEL, (void *)label, label ? strlen(label) : 0},
    };
    *out = NULL;
    *n = 0;
    CK_RV rv = k->fl->C_FindObjectsInit(k->sess, tmpl, label ? 3 : 2);
    if (rv != CKR_OK)
        return rv;
    size_t cap = 0;
    for (;;) {
        CK_OBJECT_HANDLE *nh = ph_array_grow(*out, *n, &cap, sizeof **out, 16);
        if (!nh) {
            rv = CKR_HOST_MEMORY;
            break;
        }
        *out = nh;
        CK_ULONG got = 0;
        rv = k->fl->C_FindObjects(k->sess, *out + *n, cap - *n, &got);
        if (rv != CKR_OK || got == 0)
            break;
        *n += got;
    }
    CK_RV frv = k->fl->C_FindObjectsFinal(k->sess);
    if (rv == CKR_OK)
        rv = frv;
    if (rv != CKR_OK) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rv;
}

/* The KEK must stay inside the token: sensitive and never extractable. */
static int key_attrs_ok(p11_kek *k, CK_OBJECT_HANDLE h, const char *label, const char *what,
                        CK_RV *rvp, char *err, size_t errlen)
{
    CK_BBOOL sensitive = CK_FALSE, extractable = CK_TRUE;
    CK_ATTRIBUTE a[2] = {
        {CKA_SENSITIVE, &sensitive, sizeof(sensitive)},
        {CKA_EXTRACTABLE, &extractable, sizeof(extractable)},
    };
    CK_RV rv = k->fl->C_GetAttributeValue(k->sess, h, a, 2);
    *rvp = rv;
    if (rv != CKR_OK) {
        rv_err(err, errlen, what, "C_GetAttributeValue", rv);
        return -1;
    }
    if (sensitive != CK_TRUE || extractable != CK_FALSE) {
        ph_errf(err, errlen,
                "pkcs11 %s: key '%s' is extractable or not sensitive; refusing it as a KEK", what,
                label);
        return -1;
    }
    return 0;
}

static int find_version(p11_kek *k, unsigned v, CK_OBJECT_HANDLE *h, const char *what, CK_RV *rvp,
                        char *err, size_t errlen)
{
    char label[MAX_KEY_LABEL + 16];
    version_label(k, v, label, sizeof(label));
    CK_OBJECT_HANDLE *hs = NULL;
    size_t n = 0;
    CK_RV rv = find_aes_keys(k, label, &hs, &n);
    *rvp = rv;
    if (rv != CKR_OK) {
        rv_err(err, errlen, what, "C_FindObjects", rv);
        return -1;
    }
    if (n != 1) {
        free(hs);
        ph_errf(err, errlen,
                n ? "pkcs11 %s: several AES keys are labelled '%s'"
                  : "pkcs11 %s: no AES key labelled '%s' on the token",
                what, label);
        return -1;
    }
    *h = hs[0];
    free(hs);
    return key_attrs_ok(k, *h, label, what, rvp, err, errlen);
}

typedef struct versions {
    unsigned latest;
    unsigned count;
    CK_OBJECT_HANDLE latest_h;
    int latest_dup;
} versions;

static CK_RV read_label(p11_kek *k, CK_OBJECT_HANDLE h, char *buf, size_t cap, size_t *len)
{
    CK_ATTRIBUTE a = {CKA_LABEL, NULL, 0};
    CK_RV rv = k->fl->C_GetAttributeValue(k->sess, h, &a, 1);
    if (rv != CKR_OK)
        return rv;
    if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen >= cap) {
        *len = 0; /* not one of ours */
        return CKR_OK;
    }
    a.pValue = buf;
    rv = k->fl->C_GetAttributeValue(k->sess, h, &a, 1);
    *len = rv == CKR_OK ? a.ulValueLen : 0;
    return rv;
}

static int scan_versions(p11_kek *k, versions *vs, const char *what, CK_RV *rvp, char *err,
                         size_t errlen)
{
    CK_OBJECT_HANDLE *hs = NULL;
    size_t n = 0;
    memset(vs, 0, sizeof(*vs));
    CK_RV rv = find_aes_keys(k, NULL, &hs, &n);
    for (size_t i = 0; rv == CKR_OK && i < n; i++) {
        char label[MAX_LABEL_ATTR];
        size_t len = 0;
        rv = read_label(k, hs[i], label, sizeof(label), &len);
        unsigned v = rv == CKR_OK ? label_version(k, label, len) : 0;
        if (v == 0)
            continue;
        vs->count++;
        if (v > vs->latest) {
            vs->latest = v;
            vs->latest_h = hs[i];
            vs->latest_dup = 0;
        } else if (v == vs->latest) {
            vs->latest_dup = 1;
        }
    }
    free(hs);
    *rvp = rv;
    if (rv != CKR_OK) {
        rv_err(err, errlen, what, "C_FindObjects", rv);
        return -1;
    }
    return 0;
}

static int latest_version(p11_kek *k, unsigned *v, CK_OBJECT_HANDLE *h, const char *what,
                          CK_RV *rvp, char *err, size_t errlen)
{
    versions vs;
    if (scan_versions(k, &vs, what, rvp, err, errlen) != 0)
        return -1;
    if (vs.latest == 0) {
        ph_errf(err, errlen, "pkcs11 %s: no AES key labelled '%s' on token '%s'", what,
                k->key_label, k->token_label);
        return -1;
    }
    char label[MAX_KEY_LABEL + 16];
    version_label(k, vs.latest, label, sizeof(label));
    if (vs.latest_dup) {
        ph_errf(err, errlen, "pkcs11 %s: several AES keys are labelled '%s'", what, label);
        return -1;
    }
    *v = vs.latest;
    *h = vs.latest_h;
    return key_attrs_ok(k, *h, label, what, rvp, err, errlen);
}

static int generate_version(p11_kek *k, unsigned v, CK_RV *rvp, char *err, size_t errlen)
{
    char label[MAX_KEY_LABEL + 16];
    version_label(k, v, label, sizeof(label));
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_ULONG vlen = PH_DEK_LEN;
    CK_BBOOL t = CK_TRUE, f = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},       {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_VALUE_LEN, &vlen, sizeof(vlen)}, {CKA_TOKEN, &t, sizeof(t)},
        {CKA_PRIVATE, &t, sizeof(t)},         {CKA_SENSITIVE, &t, sizeof(t)},
        {CKA_EXTRACTABLE, &f, sizeof(f)},     {CKA_ENCRYPT, &t, sizeof(t)},
        {CKA_DECRYPT, &t, sizeof(t)},         {CKA_WRAP, &f, sizeof(f)},
        {CKA_UNWRAP, &f, sizeof(f)},          {CKA_SIGN, &f, sizeof(f)},
        {CKA_VERIFY, &f, sizeof(f)},          {CKA_DERIVE, &f, sizeof(f)},
        {CKA_LABEL, label, strlen(label)},    {CKA_ID, label, strlen(label)},
    };
    CK_MECHANISM mech = {CKM_AES_KEY_GEN, NULL, 0};
    CK_OBJECT_HANDLE h;
    CK_RV rv = k->fl->C_GenerateKey(k->sess, &mech, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &h);
    *rvp = rv;
    if (rv != CKR_OK) {
        rv_err(err, errlen, "rotate", "C_GenerateKey", rv);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* AES-GCM on the token                                                      */

static void gcm_params(CK_GCM_PARAMS *p, uint8_t *iv, uint8_t *aad, const uint8_t *hdr)
{
    memcpy(aad, AAD_CTX, AAD_CTX_LEN);
    memcpy(aad + AAD_CTX_LEN, hdr, HDR_LEN);
    memset(p, 0, sizeof(*p));
    p->pIv = iv;
    p->ulIvLen = IV_LEN;
    p->ulIvBits = IV_LEN * 8;
    p->pAAD = aad;
    p->ulAADLen = AAD_CTX_LEN + HDR_LEN;
    p->ulTagBits = TAG_LEN * 8;
}

typedef struct op_ctx {
    const uint8_t *in; /* DEK (wrap) or blob (unwrap) */
    uint8_t *dek_out;  /* unwrap */
    uint8_t *blob_out; /* wrap: PH_PKCS11_BLOB_LEN bytes */
} op_ctx;

static int wrap_once(p11_kek *k, op_ctx *c, CK_RV *rvp, char *err, size_t errlen)
{
    unsigned v;
    CK_OBJECT_HANDLE h;
    if (latest_version(k, &v, &h, "wrap", rvp, err, errlen) != 0)
        return -1;
    uint8_t *b = c->blob_out, aad[AAD_CTX_LEN + HDR_LEN];
    b[0] = FORMAT_V1;
    ph_put_u32(b + 1, v);
    if (RAND_bytes(b + HDR_LEN, IV_LEN) != 1) {
        ph_errf(err, errlen, "pkcs11 wrap: RAND_bytes failed");
        return -1;
    }
    CK_GCM_PARAMS p;
    gcm_params(&p, b + HDR_LEN, aad, b);
    CK_MECHANISM mech = {CKM_AES_GCM, &p, sizeof(p)};
    CK_RV rv = k->fl->C_EncryptInit(k->sess, &mech, h);
    CK_ULONG outlen = SEALED_LEN;
    if (rv == CKR_OK)
        rv = k->fl->C_Encrypt(k->sess, (CK_BYTE_PTR)c->in, PH_DEK_LEN, b + HDR_LEN + IV_LEN,
                              &outlen);
    *rvp = rv;
    if (rv != CKR_OK || outlen != SEALED_LEN) {
        if (rv == CKR_OK)
            ph_errf(err, errlen, "pkcs11 wrap: token returned %lu bytes, want %d",
                    (unsigned long)outlen, SEALED_LEN);
        else
            rv_err(err, errlen, "wrap", "C_Encrypt", rv);
        return -1;
    }
    return 0;
}

static int unwrap_once(p11_kek *k, op_ctx *c, CK_RV *rvp, char *err, size_t errlen)
{
    const uint8_t *b = c->in;
    uint32_t v = ph_get_u32(b + 1);
    CK_OBJECT_HANDLE h;
    if (v == 0 || v > MAX_VERSION) {
        ph_errf(err, errlen, "pkcs11 unwrap: wrapped key names KEK version %u", (unsigned)v);
        return -1;
    }
    if (find_version(k, v, &h, "unwrap", rvp, err, errlen) != 0)
        return -1;
    uint8_t iv[IV_LEN], aad[AAD_CTX_LEN + HDR_LEN], sealed[SEALED_LEN], out[SEALED_LEN];
    memcpy(iv, b + HDR_LEN, IV_LEN);
    memcpy(sealed, b + HDR_LEN + IV_LEN, SEALED_LEN);
    CK_GCM_PARAMS p;
    gcm_params(&p, iv, aad, b);
    CK_MECHANISM mech = {CKM_AES_GCM, &p, sizeof(p)};
    CK_RV rv = k->fl->C_DecryptInit(k->sess, &mech, h);
    CK_ULONG outlen = sizeof(out);
    if (rv == CKR_OK)
        rv = k->fl->C_Decrypt(k->sess, sealed, SEALED_LEN, out, &outlen);
    *rvp = rv;
    int rc = -1;
    if (rv == CKR_OK && outlen == PH_DEK_LEN) {
        memcpy(c->dek_out, out, PH_DEK_LEN);
        rc = 0;
    } else if (rv == CKR_OK) {
        ph_errf(err, errlen, "pkcs11 unwrap: token returned %lu bytes, want %d",
                (unsigned long)outlen, PH_DEK_LEN);
    } else if (session_lost(rv)) {
        rv_err(err, errlen, "unwrap", "C_Decrypt", rv);
    } else {
        ph_errf(err, errlen,
                "pkcs11 unwrap: authentication failed (wrapped key altered or made under "
                "another KEK): %s",
                rv_name(rv));
    }
    OPENSSL_cleanse(out, sizeof(out));
    return rc;
}

static int rotate_once(p11_kek *k, op_ctx *c, CK_RV *rvp, char *err, size_t errlen)
{
    versions vs;
    if (scan_versions(k, &vs, "rotate", rvp, err, errlen) != 0)
        return -1;
    if (vs.latest == 0) {
        ph_errf(err, errlen, "pkcs11 rotate: no AES key labelled '%s' to rotate", k->key_label);
        return -1;
    }
    if (vs.latest >= MAX_VERSION) {
        ph_errf(err, errlen, "pkcs11 rotate: too many versions");
        return -1;
    }
    return generate_version(k, vs.latest + 1, rvp, err, errlen);
}

typedef int (*op_fn)(p11_kek *k, op_ctx *c, CK_RV *rvp, char *err, size_t errlen);

/* Runs op under the lock; reopens a lost session once and retries. */
static int run_op(p11_kek *k, op_fn fn, op_ctx *c, char *err, size_t errlen)
{
    pthread_mutex_lock(&k->mu);
    CK_RV rv = CKR_OK;
    int rc = -1;
    if (!k->has_sess && session_open(k, err, errlen) != 0)
        goto out;
    rc = fn(k, c, &rv, err, errlen);
    if (rc != 0 && session_lost(rv)) {
        session_close(k);
        if (session_open(k, err, errlen) == 0)
            rc = fn(k, c, &rv, err, errlen);
    }
out:
    pthread_mutex_unlock(&k->mu);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Operations                                                                */

static int p11_wrap(ph_kek *base, const uint8_t *dek, uint8_t **out, size_t *out_len, char *err,
                    size_t errlen)
{
    uint8_t *b = malloc(PH_PKCS11_BLOB_LEN);
    if (!b) {
        ph_errf(err, errlen, "pkcs11 wrap: out of memory");
        return -1;
    }
    op_ctx c = {.in = dek, .blob_out = b};
    if (run_op((p11_kek *)base, wrap_once, &c, err, errlen) != 0) {
        free(b);
        return -1;
    }
    *out = b;
    *out_len = PH_PKCS11_BLOB_LEN;
    return 0;
}

static int p11_unwrap(ph_kek *base, const uint8_t *wrapped, size_t len, uint8_t *dek_out, char *err,
                      size_t errlen)
{
    if (len != PH_PKCS11_BLOB_LEN || wrapped[0] != FORMAT_V1) {
        ph_errf(err, errlen, "pkcs11 unwrap: not a pkcs11-wrapped key (%zu bytes)", len);
        return -1;
    }
    op_ctx c = {.in = wrapped, .dek_out = dek_out};
    return run_op((p11_kek *)base, unwrap_once, &c, err, errlen);
}

static int p11_rotate(ph_kek *base, char *err, size_t errlen)
{
    op_ctx c = {0};
    return run_op((p11_kek *)base, rotate_once, &c, err, errlen);
}

static void p11_destroy(ph_kek *base)
{
    p11_kek *k = (p11_kek *)base;
    if (!k)
        return;
    if (k->mod) {
        session_close(k);
        module_release(k->mod);
    }
    if (k->pin) {
        OPENSSL_cleanse(k->pin, k->pin_len);
        free(k->pin);
    }
    pthread_mutex_destroy(&k->mu);
    OPENSSL_cleanse(k, sizeof(*k));
    free(k);
}

static const ph_kek_ops p11_ops = {
    .kind = "pkcs11",
    .wrap = p11_wrap,
    .unwrap = p11_unwrap,
    .generate = NULL, /* CSPRNG + wrap */
    .rewrap = NULL,   /* unwrap + wrap: the DEK passes through process memory */
    .rotate = p11_rotate,
    .destroy = p11_destroy,
};

int ph_kek_pkcs11_key_info(ph_kek *base, ph_pkcs11_key_info *out, char *err, size_t errlen)
{
    if (!base || base->ops != &p11_ops || !out) {
        ph_errf(err, errlen, "pkcs11 key info: not a pkcs11 provider");
        return -1;
    }
    p11_kek *k = (p11_kek *)base;
    versions vs;
    CK_RV rv = CKR_OK;
    pthread_mutex_lock(&k->mu);
    int rc = k->has_sess || session_open(k, err, errlen) == 0 ? 0 : -1;
    if (rc == 0)
        rc = scan_versions(k, &vs, "key info", &rv, err, errlen);
    pthread_mutex_unlock(&k->mu);
    if (rc == 0) {
        out->latest_version = vs.latest;
        out->versions = vs.count;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Construction                                                              */

static int read_pin(p11_kek *k, const ph_keys_pkcs11_cfg *cfg, char *err, size_t errlen)
{
    if ((cfg->pin != NULL) == (cfg->pin_file != NULL)) {
        ph_errf(err, errlen, "pkcs11: set exactly one of pin, pin_file");
        return -1;
    }
    char buf[MAX_PIN_LEN + 2];
    size_t n = 0;
    if (cfg->pin) {
        n = strlen(cfg->pin);
        if (n > MAX_PIN_LEN) {
            ph_errf(err, errlen, "pkcs11: pin is longer than %d bytes", MAX_PIN_LEN);
            return -1;
        }
        memcpy(buf, cfg->pin, n);
    } else {
        FILE *f = fopen(cfg->pin_file, "rb");
        if (!f) {
            ph_errf(err, errlen, "pkcs11: cannot read pin_file %s: %m", cfg->pin_file);
            return -1;
        }
        n = fread(buf, 1, sizeof(buf), f);
        int bad = ferror(f);
        fclose(f);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            n--;
        if (bad || n > MAX_PIN_LEN) {
            OPENSSL_cleanse(buf, sizeof(buf));
            ph_errf(err, errlen, "pkcs11: pin_file %s is unreadable or too long", cfg->pin_file);
            return -1;
        }
    }
    if (n == 0) {
        ph_errf(err, errlen, "pkcs11: the PIN is empty");
        return -1;
    }
    k->pin = malloc(n);
    if (k->pin) {
        memcpy(k->pin, buf, n);
        k->pin_len = n;
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    if (!k->pin) {
        ph_errf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int check_names(const ph_keys_pkcs11_cfg *cfg, char *err, size_t errlen)
{
    if (!cfg->module || !cfg->module[0]) {
        ph_errf(err, errlen, "pkcs11: module (path of the PKCS#11 library) is required");
        return -1;
    }
    size_t tl = cfg->token_label ? strlen(cfg->token_label) : 0;
    if (tl == 0 || tl > TOKEN_LABEL_LEN) {
        ph_errf(err, errlen, "pkcs11: token_label is required (1-%d bytes)", TOKEN_LABEL_LEN);
        return -1;
    }
    size_t kl = cfg->key_label ? strlen(cfg->key_label) : 0;
    if (kl == 0 || kl > MAX_KEY_LABEL || strchr(cfg->key_label, '#')) {
        ph_errf(err, errlen, "pkcs11: key_label is required (1-%d bytes, no '#')", MAX_KEY_LABEL);
        return -1;
    }
    return 0;
}

/* Loads the module, finds the token and logs in. */
static p11_kek *p11_connect(const ph_keys_pkcs11_cfg *cfg, char *err, size_t errlen)
{
    if (!cfg) {
        ph_errf(err, errlen, "pkcs11: no settings");
        return NULL;
    }
    if (check_names(cfg, err, errlen) != 0)
        return NULL;
    p11_kek *k = ph_calloc(1, sizeof(*k));
    if (!k) {
        ph_errf(err, errlen, "out of memory");
        return NULL;
    }
    k->base.ops = &p11_ops;
    if (pthread_mutex_init(&k->mu, NULL) != 0) {
        free(k);
        ph_errf(err, errlen, "pkcs11: mutex init failed");
        return NULL;
    }
    snprintf(k->token_label, sizeof(k->token_label), "%s", cfg->token_label);
    snprintf(k->key_label, sizeof(k->key_label), "%s", cfg->key_label);
    snprintf(k->base.id, sizeof(k->base.id), "pkcs11:%.32s/%.80s", k->token_label, k->key_label);
    if (read_pin(k, cfg, err, errlen) != 0)
        goto fail;
    k->mod = module_acquire(cfg->module, err, errlen);
    if (!k->mod)
        goto fail;
    k->fl = k->mod->fl;
    if (session_open(k, err, errlen) != 0)
        goto fail;
    return k;
fail:
    p11_destroy(&k->base);
    return NULL;
}

ph_kek *ph_kek_pkcs11_open(const ph_keys_pkcs11_cfg *cfg, char *err, size_t errlen)
{
    p11_kek *k = p11_connect(cfg, err, errlen);
    if (!k)
        return NULL;
    unsigned v;
    CK_OBJECT_HANDLE h;
    CK_RV rv;
    if (latest_version(k, &v, &h, "open", &rv, err, errlen) != 0) {
        p11_destroy(&k->base);
        return NULL;
    }
    return &k->base;
}

int ph_kek_pkcs11_create_key(const ph_keys_pkcs11_cfg *cfg, char *err, size_t errlen)
{
    p11_kek *k = p11_connect(cfg, err, errlen);
    if (!k)
        return -1;
    versions vs;
    CK_RV rv;
    int rc = scan_versions(k, &vs, "create", &rv, err, errlen);
    if (rc == 0 && vs.count > 0) {
        ph_errf(err, errlen, "pkcs11 create: key '%s' already exists on token '%s'", k->key_label,
                k->token_label);
        rc = -1;
    }
    if (rc == 0) {
        rc = generate_version(k, 1, &rv, err, errlen);
        if (rc != 0)
            rv_err(err, errlen, "create", "C_GenerateKey", rv);
    }
    p11_destroy(&k->base);
    return rc;
}
