/*
 * audit.c — append-only hash-chained JSON-lines audit log: writer, global
 * sink and verifier (format in audit.h).
 */
#include "keys/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "common/err.h"
#include "common/file.h"
#include "common/hex.h"
#include "common/mem.h"

#define HASH_HEX    64
#define HASH_SUFFIX ",\"hash\":\""
#define SUFFIX_LEN  (sizeof HASH_SUFFIX - 1 + HASH_HEX + 2) /* ,"hash":"<64>"} */
#define MAX_FIELD   512

struct ph_audit {
    pthread_mutex_t mu;
    int fd;
    char *path;
    char user[64];
    /* Chain state after our last append (valid while the file size matches). */
    int have_state;
    off_t known_size;
    uint64_t seq;
    char last_hash[HASH_HEX + 1];
};

static void sha256_hex(const void *data, size_t len, char out[HASH_HEX + 1])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        memset(md, 0, sizeof md); /* cannot happen with the default provider */
    ph_hex_encode(md, sizeof md, out);
    out[HASH_HEX] = '\0';
}

static void genesis_hash(char out[HASH_HEX + 1])
{
    sha256_hex(PH_AUDIT_GENESIS, strlen(PH_AUDIT_GENESIS), out);
}

/* ---- writer ------------------------------------------------------------- */

static void lookup_user(char *buf, size_t len)
{
    struct passwd pw, *res = NULL;
    char tmp[1024];
    if (getpwuid_r(getuid(), &pw, tmp, sizeof tmp, &res) == 0 && res && res->pw_name)
        snprintf(buf, len, "%s", res->pw_name);
    else
        snprintf(buf, len, "?");
}

ph_audit *ph_audit_open(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        ph_errf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ph_errf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    ph_audit *a = ph_calloc(1, sizeof *a);
    if (!a || !(a->path = strdup(path))) {
        free(a);
        close(fd);
        ph_errf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    a->fd = fd;
    lookup_user(a->user, sizeof a->user);
    return a;
}

void ph_audit_close(ph_audit *a)
{
    if (!a)
        return;
    close(a->fd);
    pthread_mutex_destroy(&a->mu);
    free(a->path);
    free(a);
}

/* Reads the chain state (seq, hash of the last line) from the file's tail. */
static int load_tail(ph_audit *a, off_t size, char *err, size_t errlen)
{
    if (size == 0) {
        a->seq = 0;
        genesis_hash(a->last_hash);
        return 0;
    }
    int rfd = open(a->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (rfd < 0)
        return ph_errf(err, errlen, "%s: %s", a->path, strerror(errno));
    char buf[PH_AUDIT_MAX_LINE + 2];
    size_t want = (size_t)size < sizeof buf ? (size_t)size : sizeof buf;
    ssize_t n = pread(rfd, buf, want, size - (off_t)want);
    close(rfd);
    if (n != (ssize_t)want)
        return ph_errf(err, errlen, "%s: cannot read its last line", a->path);
    if (buf[want - 1] != '\n')
        return ph_errf(err, errlen, "%s: ends with an incomplete line (run phantom audit verify)",
                       a->path);
    size_t end = want - 1, start = end;
    while (start > 0 && buf[start - 1] != '\n')
        start--;
    if (start == 0 && want == sizeof buf)
        return ph_errf(err, errlen, "%s: last line is too long", a->path);
    json_t *j = json_loadb(buf + start, end - start, 0, NULL);
    json_t *seq = j ? json_object_get(j, "seq") : NULL;
    if (!json_is_integer(seq) || json_integer_value(seq) < 1) {
        json_decref(j);
        return ph_errf(err, errlen,
                       "%s: last line is not an audit record (run phantom audit verify)", a->path);
    }
    a->seq = (uint64_t)json_integer_value(seq);
    json_decref(j);
    sha256_hex(buf + start, end - start, a->last_hash);
    return 0;
}

static json_t *jstr(const char *s)
{
    char tmp[MAX_FIELD + 1];
    snprintf(tmp, sizeof tmp, "%s", s);
    json_t *v = json_string(tmp);
    return v ? v : json_string("(invalid utf-8)");
}

static int put_str(json_t *o, const char *key, const char *v)
{
    return v ? json_object_set_new(o, key, jstr(v)) : 0;
}

static void format_ts(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Serialises the record up to and including "prev" (no closing brace). */
static char *build_body(const ph_audit *a, const ph_audit_event *ev)
{
    char ts[40];
    format_ts(ts, sizeof ts);
    json_t *o = json_object();
    int rc = o ? 0 : -1;
    rc |= json_object_set_new(o, "seq", json_integer((json_int_t)(a->seq + 1)));
    rc |= json_object_set_new(o, "ts", json_string(ts));
    rc |= json_object_set_new(o, "uid", json_integer((json_int_t)getuid()));
    rc |= put_str(o, "user", a->user);
    rc |= json_object_set_new(o, "pid", json_integer((json_int_t)getpid()));
    rc |= put_str(o, "event", ev->event);
    rc |= put_str(o, "outcome", ev->outcome);
    rc |= put_str(o, "kek", ev->kek);
    rc |= put_str(o, "domain", ev->domain);
    if (ev->version)
        rc |= json_object_set_new(o, "version", json_integer(ev->version));
    if (ev->key_id)
        rc |= json_object_set_new(o, "key_id", json_integer(ev->key_id));
    rc |= put_str(o, "reason", ev->reason);
    rc |= put_str(o, "detail", ev->detail);
    rc |= put_str(o, "prev", a->last_hash);
    char *s = rc == 0 ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (s) {
        size_t n = strlen(s);
        if (n < 2 || s[n - 1] != '}') {
            free(s);
            return NULL;
        }
        s[n - 1] = '\0'; /* drop the closing brace: "hash" follows */
    }
    return s;
}

static int append_locked(ph_audit *a, const ph_audit_event *ev, int sync, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(a->fd, &st) != 0)
        return ph_errf(err, errlen, "%s: %s", a->path, strerror(errno));
    if (!a->have_state || st.st_size != a->known_size) {
        a->have_state = 0;
        if (load_tail(a, st.st_size, err, errlen) != 0)
            return -1;
    }
    char *body = build_body(a, ev);
    if (!body)
        return ph_errf(err, errlen, "cannot format the audit record");
    char hash[HASH_HEX + 1];
    size_t blen = strlen(body);
    sha256_hex(body, blen, hash);
    size_t len = blen + SUFFIX_LEN + 1;
    char *line = malloc(len + 1);
    if (!line) {
        free(body);
        return ph_errf(err, errlen, "out of memory");
    }
    snprintf(line, len + 1, "%s" HASH_SUFFIX "%s\"}\n", body, hash);
    free(body);
    int rc = 0;
    if (len > PH_AUDIT_MAX_LINE) {
        rc = ph_errf(err, errlen, "audit record too long");
    } else if (ph_write_all(a->fd, line, len) != 0) {
        rc = ph_errf(err, errlen, "%s: write: %s", a->path, strerror(errno));
        if (ftruncate(a->fd, st.st_size) != 0) { /* drop a partial line */
        }
    } else if (sync && fdatasync(a->fd) != 0) {
        rc = ph_errf(err, errlen, "%s: fsync: %s", a->path, strerror(errno));
    }
    if (rc == 0) {
        a->seq++;
        sha256_hex(line, len - 1, a->last_hash);
        a->known_size = st.st_size + (off_t)len;
        a->have_state = 1;
    }
    free(line);
    return rc;
}

int ph_audit_write(ph_audit *a, const ph_audit_event *ev, int sync, char *err, size_t errlen)
{
    if (!a || !ev || !ev->event || !ev->outcome)
        return ph_errf(err, errlen, "invalid audit event");
    pthread_mutex_lock(&a->mu);
    int rc;
    if (flock(a->fd, LOCK_EX) != 0) {
        rc = ph_errf(err, errlen, "%s: lock: %s", a->path, strerror(errno));
    } else {
        rc = append_locked(a, ev, sync, err, errlen);
        flock(a->fd, LOCK_UN);
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/* ---- global sink -------------------------------------------------------- */

static _Atomic(ph_audit *) g_sink;

void ph_audit_set_global(ph_audit *a)
{
    atomic_store(&g_sink, a);
}

int ph_audit_record(const ph_audit_event *ev, int sync, char *err, size_t errlen)
{
    ph_audit *a = atomic_load(&g_sink);
    return a ? ph_audit_write(a, ev, sync, err, errlen) : 0;
}

/* ---- verifier ----------------------------------------------------------- */

static int bad(ph_audit_verify_result *res, uint64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(ph_audit_verify_result *res, uint64_t line, const char *fmt, ...)
{
    res->bad_line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->reason, sizeof res->reason, fmt, ap);
    va_end(ap);
    return 1;
}

static int is_hex64(const char *p)
{
    for (size_t i = 0; i < HASH_HEX; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return 0;
    return 1;
}

/* Checks one line (no '\n') against the chain state; 0 or 1 (res filled). */
static int verify_line(const char *line, size_t len, uint64_t no, const char *prev,
                       ph_audit_verify_result *res)
{
    if (len > PH_AUDIT_MAX_LINE)
        return bad(res, no, "line too long");
    size_t sl = sizeof HASH_SUFFIX - 1;
    if (len < SUFFIX_LEN + 2 || memcmp(line + len - SUFFIX_LEN, HASH_SUFFIX, sl) != 0 ||
        memcmp(line + len - 2, "\"}", 2) != 0 || !is_hex64(line + len - SUFFIX_LEN + sl))
        return bad(res, no, "malformed record (no trailing \"hash\")");
    char h[HASH_HEX + 1];
    sha256_hex(line, len - SUFFIX_LEN, h);
    if (memcmp(h, line + len - SUFFIX_LEN + sl, HASH_HEX) != 0)
        return bad(res, no, "content changed (its hash does not match)");
    json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *seq = json_object_get(j, "seq");
    json_t *pv = json_object_get(j, "prev");
    int rc = 0;
    if (!json_is_object(j) || !json_is_integer(seq) || !json_is_string(pv) ||
        !json_is_string(json_object_get(j, "event")) ||
        !json_is_string(json_object_get(j, "outcome")))
        rc = bad(res, no, "malformed record");
    else if (json_integer_value(seq) != (json_int_t)no)
        rc = bad(res, no,
                 "sequence number %lld, expected %llu (a line was removed, inserted "
                 "or reordered)",
                 (long long)json_integer_value(seq), (unsigned long long)no);
    else if (strcmp(json_string_value(pv), prev) != 0)
        rc = bad(res, no,
                 "chain broken: \"prev\" does not match the line before (a line was "
                 "removed, inserted, reordered or changed)");
    json_decref(j);
    return rc;
}

int ph_audit_verify_buffer(const char *data, size_t len, ph_audit_verify_result *res)
{
    memset(res, 0, sizeof *res);
    char prev[HASH_HEX + 1];
    genesis_hash(prev);
    snprintf(res->head, sizeof res->head, "%s", prev);
    size_t pos = 0;
    uint64_t no = 0;
    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        no++;
        if (!nl)
            return bad(res, no, "incomplete last line (no newline)");
        size_t ll = (size_t)(nl - (data + pos));
        if (verify_line(data + pos, ll, no, prev, res) != 0)
            return 1;
        sha256_hex(data + pos, ll, prev);
        snprintf(res->head, sizeof res->head, "%s", prev);
        res->lines = no;
        pos += ll + 1;
    }
    return 0;
}

int ph_audit_verify_file(const char *path, ph_audit_verify_result *res)
{
    memset(res, 0, sizeof *res);
    char *data;
    size_t len;
    if (ph_file_read(path, 0, 0, &data, &len, res->reason, sizeof res->reason) != 0)
        return -1;
    int rc = ph_audit_verify_buffer(data, len, res);
    free(data);
    return rc;
}
