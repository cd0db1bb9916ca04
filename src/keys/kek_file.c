/*
 * kek_file.c — the `file` KEK provider (formats and checks in kek_file.h).
 * Key versions live in one ph_secure_alloc region (locked, not dumped,
 * wiped on free); a mutex guards them against a concurrent rotate.
 */
#include "keys/kek_file.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/bytes.h"
#include "common/err.h"
#include "common/file.h"
#include "common/hex.h"
#include "common/mem.h"
#include "keys/atomic_file.h"
#include "keys/secmem.h"

#define BLOB_MAGIC   "PHKF"
#define BLOB_FORMAT  1
#define HDR_LEN      9
#define NONCE_LEN    12
#define TAG_LEN      16
#define MAX_VERSIONS 1024
#define MAX_VERSION  2147483647u

/* Parsed key versions: versions[i] names keys[i*32 .. i*32+31]. */
typedef struct {
    uint32_t versions[MAX_VERSIONS];
    size_t n;
    uint8_t *keys; /* ph_secure_alloc(MAX_VERSIONS * PH_DEK_LEN) */
} keyset;

typedef struct {
    ph_kek base; /* first: ph_kek * <-> file_kek * */
    pthread_mutex_t mu;
    char *path; /* NULL for a buffer-backed provider (no rotate) */
    keyset ks;
} file_kek;

/* ---- key set ------------------------------------------------------------- */

static int keyset_init(keyset *ks)
{
    ks->n = 0;
    ks->keys = ph_secure_alloc(MAX_VERSIONS * PH_DEK_LEN);
    return ks->keys ? 0 : -1;
}

static void keyset_free(keyset *ks)
{
    ph_secure_free(ks->keys, MAX_VERSIONS * PH_DEK_LEN);
    ks->keys = NULL;
    ks->n = 0;
}

static int keyset_add(keyset *ks, uint32_t version, const uint8_t *key)
{
    if (ks->n == MAX_VERSIONS || version == 0 || version > MAX_VERSION ||
        (ks->n > 0 && version <= ks->versions[ks->n - 1]))
        return -1;
    ks->versions[ks->n] = version;
    memcpy(ks->keys + ks->n * PH_DEK_LEN, key, PH_DEK_LEN);
    ks->n++;
    return 0;
}

static const uint8_t *keyset_find(const keyset *ks, uint32_t version)
{
    for (size_t i = 0; i < ks->n; i++)
        if (ks->versions[i] == version)
            return ks->keys + i * PH_DEK_LEN;
    return NULL;
}

/* ---- parsing ------------------------------------------------------------- */

static int decode_hex32(const char *s, size_t len, uint8_t *out)
{
    return len == 2 * PH_DEK_LEN ? ph_hex_decode(s, len, out) : -1;
}

static int decode_b64_32(const char *s, size_t len, uint8_t *out)
{
    uint8_t tmp[36];
    if (len != 44 || s[43] != '=' || s[42] == '=')
        return -1;
    for (size_t i = 0; i < 43; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return -1;
    }
    int n = EVP_DecodeBlock(tmp, (const unsigned char *)s, 44);
    int rc = n == 33 ? 0 : -1; /* 33 = 32 bytes + one padding byte */
    if (rc == 0)
        memcpy(out, tmp, PH_DEK_LEN);
    OPENSSL_cleanse(tmp, sizeof tmp);
    return rc;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Next line of [*pos, len): sets *line and *ll (without "\r\n"), advances. */
static int next_line(const char *d, size_t len, size_t *pos, const char **line, size_t *ll)
{
    if (*pos >= len)
        return 0;
    const char *s = d + *pos;
    const char *nl = memchr(s, '\n', len - *pos);
    size_t n = nl ? (size_t)(nl - s) : len - *pos;
    *pos += n + (nl ? 1 : 0);
    while (n > 0 && is_space(s[n - 1]))
        n--;
    *line = s;
    *ll = n;
    return 1;
}

static int parse_version_line(const char *s, size_t n, uint32_t *version, uint8_t *key)
{
    size_t i = 0;
    uint64_t v = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9' && v <= MAX_VERSION)
        v = v * 10 + (uint64_t)(s[i++] - '0');
    if (i == 0 || v == 0 || v > MAX_VERSION || i >= n || s[i] != ' ')
        return -1;
    while (i < n && s[i] == ' ')
        i++;
    *version = (uint32_t)v;
    return decode_hex32(s + i, n - i, key);
}

static int parse_canonical(const char *d, size_t len, keyset *ks, char *err, size_t errlen)
{
    size_t pos = 0, ll, lineno = 0;
    const char *line;
    int seen_magic = 0;
    uint8_t key[PH_DEK_LEN];
    int rc = 0;
    while (rc == 0 && next_line(d, len, &pos, &line, &ll)) {
        lineno++;
        if (ll == 0 || line[0] == '#')
            continue;
        if (!seen_magic) {
            if (ll != strlen(PH_KEK_FILE_MAGIC_LINE) ||
                memcmp(line, PH_KEK_FILE_MAGIC_LINE, ll) != 0)
                rc = ph_errf(err, errlen, "line %zu: expected \"%s\"", lineno,
                             PH_KEK_FILE_MAGIC_LINE);
            seen_magic = 1;
            continue;
        }
        uint32_t version;
        if (parse_version_line(line, ll, &version, key) != 0)
            rc = ph_errf(err, errlen, "line %zu: expected \"<version> <64 hex digits>\"", lineno);
        else if (keyset_add(ks, version, key) != 0)
            rc =
                ph_errf(err, errlen, "line %zu: versions must increase (1..2147483647, at most %d)",
                        lineno, MAX_VERSIONS);
    }
    OPENSSL_cleanse(key, sizeof key);
    if (rc == 0 && ks->n == 0)
        rc = ph_errf(err, errlen, "no key in the file");
    return rc;
}

static int parse_keyfile(const uint8_t *data, size_t len, keyset *ks, char *err, size_t errlen)
{
    if (len == PH_DEK_LEN)
        return keyset_add(ks, 1, data);
    const char *d = (const char *)data;
    size_t pos = 0, ll = 0;
    const char *line = NULL;
    /* First non-blank, non-comment line decides the encoding. */
    while (next_line(d, len, &pos, &line, &ll))
        if (ll > 0 && line[0] != '#')
            break;
    if (ll == strlen(PH_KEK_FILE_MAGIC_LINE) && memcmp(line, PH_KEK_FILE_MAGIC_LINE, ll) == 0)
        return parse_canonical(d, len, ks, err, errlen);
    size_t start = 0, end = len;
    while (start < end && is_space(d[start]))
        start++;
    while (end > start && is_space(d[end - 1]))
        end--;
    uint8_t key[PH_DEK_LEN];
    int rc = decode_hex32(d + start, end - start, key) == 0 ||
                     decode_b64_32(d + start, end - start, key) == 0
                 ? keyset_add(ks, 1, key)
                 : ph_errf(err, errlen,
                           "not a master key (expected \"%s\", 32 raw bytes, 64 hex digits or "
                           "base64 of 32 bytes)",
                           PH_KEK_FILE_MAGIC_LINE);
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

/* ---- reading the file ------------------------------------------------------ */

static int check_fd(int fd, const char *path, struct stat *st, char *err, size_t errlen)
{
    if (fstat(fd, st) != 0)
        return ph_errf(err, errlen, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st->st_mode))
        return ph_errf(err, errlen, "%s: not a regular file", path);
    if (st->st_uid != geteuid())
        return ph_errf(err, errlen,
                       "%s: owned by uid %u, not by the current user (uid %u); refusing the master "
                       "key",
                       path, (unsigned)st->st_uid, (unsigned)geteuid());
    mode_t perm = st->st_mode & 07777;
    if (perm != 0600 && perm != 0400)
        return ph_errf(err, errlen,
                       "%s: mode %04o; the master key must be mode 0600 (chmod 600 %s)", path,
                       (unsigned)perm, path);
    if (st->st_size > (off_t)PH_KEK_FILE_MAX_SIZE)
        return ph_errf(err, errlen, "%s: larger than %u bytes", path, PH_KEK_FILE_MAX_SIZE);
    return 0;
}

/* Opens, checks and parses the key file into ks (initialised by caller). */
static int load_keyfile(const char *path, keyset *ks, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return ph_errf(err, errlen, "%s: %s", path, strerror(errno));
    struct stat st;
    int rc = check_fd(fd, path, &st, err, errlen);
    uint8_t *buf = rc == 0 ? ph_secure_alloc(PH_KEK_FILE_MAX_SIZE + 1) : NULL;
    if (rc == 0 && !buf)
        rc = ph_errf(err, errlen, "out of memory");
    size_t len = 0;
    while (rc == 0) {
        ssize_t n = read(fd, buf + len, PH_KEK_FILE_MAX_SIZE + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = ph_errf(err, errlen, "%s: %s", path, strerror(errno));
        else if (n == 0)
            break;
        else if ((len += (size_t)n) > PH_KEK_FILE_MAX_SIZE)
            rc = ph_errf(err, errlen, "%s: larger than %u bytes", path, PH_KEK_FILE_MAX_SIZE);
    }
    close(fd);
    if (rc == 0) {
        char reason[160];
        if (parse_keyfile(buf, len, ks, reason, sizeof reason) != 0)
            rc = ph_errf(err, errlen, "%s: %s", path, reason);
    }
    ph_secure_free(buf, PH_KEK_FILE_MAX_SIZE + 1);
    return rc;
}

/* ---- AES-256-GCM ------------------------------------------------------------ */

static int gcm(int enc, const uint8_t *key, const uint8_t *nonce, const uint8_t *aad,
               const uint8_t *in, uint8_t *out, uint8_t *tag)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, ok = c != NULL;
    ok = ok && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1;
    ok = ok && EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc) == 1;
    ok = ok && EVP_CipherUpdate(c, NULL, &n, aad, HDR_LEN) == 1;
    ok = ok && EVP_CipherUpdate(c, out, &n, in, PH_DEK_LEN) == 1 && n == PH_DEK_LEN;
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1;
    ok = ok && EVP_CipherFinal_ex(c, out + n, &n) == 1;
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

/* ---- operations -------------------------------------------------------------- */

static int fk_wrap(ph_kek *k, const uint8_t *dek, uint8_t **out, size_t *out_len, char *err,
                   size_t errlen)
{
    file_kek *f = (file_kek *)k;
    uint8_t *b = malloc(PH_KEK_FILE_BLOB_LEN);
    if (!b)
        return ph_errf(err, errlen, "out of memory");
    memcpy(b, BLOB_MAGIC, 4);
    b[4] = BLOB_FORMAT;
    uint8_t *nonce = b + HDR_LEN, *ct = nonce + NONCE_LEN, *tag = ct + PH_DEK_LEN;
    int rc = RAND_bytes(nonce, NONCE_LEN) == 1 ? 0 : -1;
    pthread_mutex_lock(&f->mu);
    uint32_t version = f->ks.versions[f->ks.n - 1];
    ph_put_u32(b + 5, version);
    if (rc == 0)
        rc = gcm(1, keyset_find(&f->ks, version), nonce, b, dek, ct, tag);
    pthread_mutex_unlock(&f->mu);
    if (rc != 0) {
        free(b);
        return ph_errf(err, errlen, "%s: wrap failed", k->id);
    }
    *out = b;
    *out_len = PH_KEK_FILE_BLOB_LEN;
    return 0;
}

uint32_t ph_kek_file_blob_version(const uint8_t *blob, size_t len)
{
    if (len != PH_KEK_FILE_BLOB_LEN || memcmp(blob, BLOB_MAGIC, 4) != 0 || blob[4] != BLOB_FORMAT)
        return 0;
    return ph_get_u32(blob + 5);
}

static int fk_unwrap(ph_kek *k, const uint8_t *wrapped, size_t len, uint8_t *dek_out, char *err,
                     size_t errlen)
{
    file_kek *f = (file_kek *)k;
    uint32_t version = ph_kek_file_blob_version(wrapped, len);
    if (version == 0)
        return ph_errf(err, errlen, "%s: not a file-provider wrapped key", k->id);
    uint8_t tag[TAG_LEN];
    memcpy(tag, wrapped + HDR_LEN + NONCE_LEN + PH_DEK_LEN, TAG_LEN);
    pthread_mutex_lock(&f->mu);
    const uint8_t *key = keyset_find(&f->ks, version);
    int rc =
        key ? gcm(0, key, wrapped + HDR_LEN, wrapped, wrapped + HDR_LEN + NONCE_LEN, dek_out, tag)
            : -2;
    pthread_mutex_unlock(&f->mu);
    if (rc == -2)
        return ph_errf(err, errlen, "%s: KEK version %u is not in the master-key file", k->id,
                       (unsigned)version);
    if (rc != 0) {
        OPENSSL_cleanse(dek_out, PH_DEK_LEN);
        return ph_errf(err, errlen,
                       "%s: unwrap failed (wrong master key, or the wrapped key was altered)",
                       k->id);
    }
    return 0;
}

/* Canonical text of ks, in a secure buffer of `cap` bytes. */
static char *format_keyfile(const keyset *ks, size_t *len, size_t *cap)
{
    *cap = 200 + ks->n * 80;
    char *out = ph_secure_alloc(*cap);
    if (!out)
        return NULL;
    size_t n = (size_t)snprintf(out, *cap,
                                "# phantom master key (KEK). Secret: keep mode 0600, back it up "
                                "offline.\n%s\n",
                                PH_KEK_FILE_MAGIC_LINE);
    for (size_t i = 0; i < ks->n; i++) {
        n += (size_t)snprintf(out + n, *cap - n, "%u ", (unsigned)ks->versions[i]);
        ph_hex_encode(ks->keys + i * PH_DEK_LEN, PH_DEK_LEN, out + n); /* 76 bytes a line */
        n += 2 * PH_DEK_LEN;
        out[n++] = '\n';
    }
    *len = n;
    return out;
}

static int fk_rotate(ph_kek *k, char *err, size_t errlen)
{
    file_kek *f = (file_kek *)k;
    if (!f->path)
        return ph_errf(err, errlen, "%s: rotation needs a key file", k->id);
    keyset ks;
    if (keyset_init(&ks) != 0)
        return ph_errf(err, errlen, "out of memory");
    /* Start from the file as it is now (another process may have rotated). */
    int rc = load_keyfile(f->path, &ks, err, errlen);
    uint8_t key[PH_DEK_LEN];
    if (rc == 0 && (ks.versions[ks.n - 1] == MAX_VERSION || ks.n == MAX_VERSIONS))
        rc = ph_errf(err, errlen, "%s: no more key versions available", f->path);
    if (rc == 0 && ph_os_random(key, sizeof key) != 0)
        rc = ph_errf(err, errlen, "the OS random generator failed");
    if (rc == 0)
        rc = keyset_add(&ks, ks.versions[ks.n - 1] + 1, key);
    OPENSSL_cleanse(key, sizeof key);
    size_t len = 0, cap = 0;
    char *text = rc == 0 ? format_keyfile(&ks, &len, &cap) : NULL;
    if (rc == 0 && !text)
        rc = ph_errf(err, errlen, "out of memory");
    if (rc == 0)
        rc = ph_atomic_write(f->path, text, len, 0600, err, errlen);
    ph_secure_free(text, cap);
    if (rc == 0) {
        pthread_mutex_lock(&f->mu);
        keyset old = f->ks;
        f->ks = ks;
        pthread_mutex_unlock(&f->mu);
        keyset_free(&old);
    } else {
        keyset_free(&ks);
    }
    return rc;
}

static void fk_destroy(ph_kek *k)
{
    file_kek *f = (file_kek *)k;
    keyset_free(&f->ks);
    pthread_mutex_destroy(&f->mu);
    free(f->path);
    free(f);
}

static const ph_kek_ops file_ops = {
    .kind = "file",
    .wrap = fk_wrap,
    .unwrap = fk_unwrap,
    .rotate = fk_rotate,
    .destroy = fk_destroy,
};

static file_kek *fk_new(const char *id, char *err, size_t errlen)
{
    file_kek *f = ph_calloc(1, sizeof *f);
    if (!f || keyset_init(&f->ks) != 0) {
        free(f);
        ph_errf(err, errlen, "out of memory");
        return NULL;
    }
    f->base.ops = &file_ops;
    snprintf(f->base.id, sizeof f->base.id, "%s", id);
    pthread_mutex_init(&f->mu, NULL);
    return f;
}

ph_kek *ph_kek_file_open(const char *path, char *err, size_t errlen)
{
    char id[sizeof((ph_kek *)0)->id];
    snprintf(id, sizeof id, "file:%s", path);
    file_kek *f = fk_new(id, err, errlen);
    if (!f)
        return NULL;
    f->path = strdup(path);
    if (!f->path) {
        ph_errf(err, errlen, "out of memory");
        fk_destroy(&f->base);
        return NULL;
    }
    if (load_keyfile(path, &f->ks, err, errlen) != 0) {
        fk_destroy(&f->base);
        return NULL;
    }
    return &f->base;
}

ph_kek *ph_kek_file_from_buffer(const uint8_t *data, size_t len, const char *id, char *err,
                                size_t errlen)
{
    file_kek *f = fk_new(id, err, errlen);
    if (!f)
        return NULL;
    if (len > PH_KEK_FILE_MAX_SIZE) {
        ph_errf(err, errlen, "key file larger than %u bytes", PH_KEK_FILE_MAX_SIZE);
        fk_destroy(&f->base);
        return NULL;
    }
    if (parse_keyfile(data, len, &f->ks, err, errlen) != 0) {
        fk_destroy(&f->base);
        return NULL;
    }
    return &f->base;
}

uint32_t ph_kek_file_current_version(ph_kek *k)
{
    if (!k || k->ops != &file_ops)
        return 0;
    file_kek *f = (file_kek *)k;
    pthread_mutex_lock(&f->mu);
    uint32_t v = f->ks.versions[f->ks.n - 1];
    pthread_mutex_unlock(&f->mu);
    return v;
}

int ph_kek_file_create(const char *path, char *err, size_t errlen)
{
    keyset ks;
    if (keyset_init(&ks) != 0)
        return ph_errf(err, errlen, "out of memory");
    uint8_t key[PH_DEK_LEN];
    int rc = ph_os_random(key, sizeof key) == 0 ? keyset_add(&ks, 1, key)
                                                : ph_errf(err, errlen,
                                                          "the OS random generator "
                                                          "failed");
    OPENSSL_cleanse(key, sizeof key);
    size_t len = 0, cap = 0;
    char *text = rc == 0 ? format_keyfile(&ks, &len, &cap) : NULL;
    keyset_free(&ks);
    if (rc == 0 && !text)
        rc = ph_errf(err, errlen, "out of memory");
    int fd = -1;
    if (rc == 0) {
        mode_t old = umask(077);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        umask(old);
        if (fd < 0)
            rc = ph_errf(err, errlen, "%s: %s", path, strerror(errno));
    }
    if (rc == 0) {
        if (ph_write_all(fd, text, len) != 0)
            rc = ph_errf(err, errlen, "%s: write: %s", path, strerror(errno));
        if (rc == 0 && (fchmod(fd, 0600) != 0 || fsync(fd) != 0))
            rc = ph_errf(err, errlen, "%s: %s", path, strerror(errno));
        if (close(fd) != 0 && rc == 0)
            rc = ph_errf(err, errlen, "%s: close: %s", path, strerror(errno));
        if (rc != 0)
            unlink(path);
        else
            rc = ph_fsync_parent_dir(path, err, errlen);
    }
    ph_secure_free(text, cap);
    return rc;
}
