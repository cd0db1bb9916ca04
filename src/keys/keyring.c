/*
 * keyring.c — the wrapped-DEK store: strict JSON parsing, serialisation,
 * atomic save, locking and version rules (format in keyring.h).
 */
#include "keys/keyring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/err.h"
#include "common/mem.h"
#include "keys/atomic_file.h"

/* ---- memory -------------------------------------------------------------- */

static void wrapped_clear(ph_wrapped_dek *w)
{
    free(w->kek);
    if (w->blob)
        OPENSSL_cleanse(w->blob, w->blob_len);
    free(w->blob);
    memset(w, 0, sizeof *w);
}

static void version_clear(ph_dek_version *v)
{
    for (size_t i = 0; i < v->n_wrapped; i++)
        wrapped_clear(&v->wrapped[i]);
    free(v->wrapped);
    v->wrapped = NULL;
    v->n_wrapped = 0;
}

static void domain_clear(ph_key_domain *d)
{
    for (size_t i = 0; i < d->n_versions; i++)
        version_clear(&d->versions[i]);
    free(d->versions);
    free(d->name);
    memset(d, 0, sizeof *d);
}

ph_keyring *ph_keyring_new(void)
{
    ph_keyring *kr = ph_calloc(1, sizeof *kr);
    if (kr)
        kr->next_key_id = 1;
    return kr;
}

void ph_keyring_free(ph_keyring *kr)
{
    if (!kr)
        return;
    for (size_t i = 0; i < kr->n_domains; i++)
        domain_clear(&kr->domains[i]);
    free(kr->domains);
    free(kr);
}

/* ---- small helpers ---------------------------------------------------------- */

int ph_keyring_valid_domain(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > PH_KEYRING_MAX_DOMAIN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || !strchr("_.:/@-", c)))
            return 0;
    }
    return 1;
}

static int valid_kek_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > PH_KEYRING_MAX_KEK_ID)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

void ph_keyring_format_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "1970-01-01T00:00:00Z");
}

int ph_keyring_parse_time(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, se;
    char z;
    int n = 0;
    if (!s || strlen(s) != 20 ||
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c%n", &y, &mo, &d, &h, &mi, &se, &z, &n) != 7 ||
        n != 20 || z != 'Z' || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':')
        return -1;
    for (int i = 0; i < 19; i++)
        if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && (s[i] < '0' || s[i] > '9'))
            return -1;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return -1;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = se};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = (int64_t)t;
    return 0;
}

/* Strict standard base64 with padding; returns a heap buffer or NULL. */
static uint8_t *b64_decode(const char *s, size_t *out_len)
{
    size_t n = strlen(s);
    if (n == 0 || n % 4 != 0 || n / 4 * 3 > PH_KEYRING_MAX_BLOB + 2)
        return NULL;
    size_t pad = s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    for (size_t i = 0; i < n - pad; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return NULL;
    }
    uint8_t *out = malloc(n / 4 * 3 + 1);
    if (!out)
        return NULL;
    int m = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
    if (m < 0 || (size_t)m < pad || (size_t)m - pad == 0 || (size_t)m - pad > PH_KEYRING_MAX_BLOB) {
        free(out);
        return NULL;
    }
    *out_len = (size_t)m - pad;
    return out;
}

static char *b64_encode(const uint8_t *p, size_t n)
{
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

/* ---- look-ups -------------------------------------------------------------- */

ph_key_domain *ph_keyring_domain(const ph_keyring *kr, const char *name)
{
    size_t lo = 0, hi = kr->n_domains;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(kr->domains[mid].name, name);
        if (c == 0)
            return &kr->domains[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

ph_dek_version *ph_keyring_version(const ph_key_domain *d, uint32_t version)
{
    for (size_t i = 0; d && i < d->n_versions; i++)
        if (d->versions[i].version == version)
            return &d->versions[i];
    return NULL;
}

ph_dek_version *ph_keyring_active(const ph_key_domain *d)
{
    return d ? ph_keyring_version(d, d->active) : NULL;
}

int ph_keyring_by_key_id(const ph_keyring *kr, uint32_t key_id, ph_key_domain **d,
                         ph_dek_version **v)
{
    for (size_t i = 0; i < kr->n_domains; i++)
        for (size_t j = 0; j < kr->domains[i].n_versions; j++)
            if (kr->domains[i].versions[j].key_id == key_id) {
                if (d)
                    *d = &kr->domains[i];
                if (v)
                    *v = &kr->domains[i].versions[j];
                return 0;
            }
    return -1;
}

const ph_wrapped_dek *ph_keyring_wrapping(const ph_dek_version *v, ph_wrap_role role)
{
    for (size_t i = 0; v && i < v->n_wrapped; i++)
        if (v->wrapped[i].role == role)
            return &v->wrapped[i];
    return NULL;
}

/* Inserts a new domain at its sorted position; returns it or NULL (OOM). */
static ph_key_domain *insert_domain(ph_keyring *kr, const char *name)
{
    size_t pos = 0;
    while (pos < kr->n_domains && strcmp(kr->domains[pos].name, name) < 0)
        pos++;
    char *copy = strdup(name);
    ph_key_domain *g = copy ? realloc(kr->domains, (kr->n_domains + 1) * sizeof *g) : NULL;
    if (!g) {
        free(copy);
        return NULL;
    }
    kr->domains = g;
    memmove(&g[pos + 1], &g[pos], (kr->n_domains - pos) * sizeof *g);
    memset(&g[pos], 0, sizeof *g);
    g[pos].name = copy;
    kr->n_domains++;
    return &g[pos];
}

static void remove_domain(ph_keyring *kr, ph_key_domain *d)
{
    size_t pos = (size_t)(d - kr->domains);
    domain_clear(d);
    memmove(d, d + 1, (kr->n_domains - pos - 1) * sizeof *d);
    kr->n_domains--;
}

/* ---- parsing ------------------------------------------------------------------ */

typedef struct {
    char *err;
    size_t errlen;
    const char *where; /* domain name for messages */
} pctx;

static int only_keys(pctx *c, json_t *o, const char *what, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= strcmp(*a, k) == 0;
        if (!ok)
            return ph_errf(c->err, c->errlen, "%s: unknown key \"%.40s\"", what, k);
    }
    return 0;
}

static int get_u32(json_t *o, const char *key, uint32_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > (json_int_t)UINT32_MAX)
        return -1;
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

static int get_time(json_t *o, const char *key, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? ph_keyring_parse_time(json_string_value(v), out) : -1;
}

static int parse_wrapped(pctx *c, json_t *w, ph_wrapped_dek *out)
{
    static const char *const keys[] = {"kek", "role", "blob", NULL};
    if (!json_is_object(w))
        return ph_errf(c->err, c->errlen, "%s: a \"wrapped\" entry must be an object", c->where);
    if (only_keys(c, w, c->where, keys) != 0)
        return -1;
    json_t *kek = json_object_get(w, "kek"), *role = json_object_get(w, "role"),
           *blob = json_object_get(w, "blob");
    if (!json_is_string(kek) || !valid_kek_id(json_string_value(kek)))
        return ph_errf(c->err, c->errlen, "%s: \"kek\" must be a KEK id of 1..%u bytes", c->where,
                       PH_KEYRING_MAX_KEK_ID);
    const char *r = json_is_string(role) ? json_string_value(role) : "";
    if (strcmp(r, "primary") == 0)
        out->role = PH_WRAP_PRIMARY;
    else if (strcmp(r, "escrow") == 0)
        out->role = PH_WRAP_ESCROW;
    else
        return ph_errf(c->err, c->errlen, "%s: \"role\" must be primary or escrow", c->where);
    if (!json_is_string(blob) || !(out->blob = b64_decode(json_string_value(blob), &out->blob_len)))
        return ph_errf(c->err, c->errlen, "%s: \"blob\" must be base64 of 1..%u bytes", c->where,
                       PH_KEYRING_MAX_BLOB);
    if (!(out->kek = strdup(json_string_value(kek))))
        return ph_errf(c->err, c->errlen, "out of memory");
    return 0;
}

static int parse_usage(pctx *c, json_t *u, ph_dek_version *v)
{
    static const char *const keys[] = {"rows", "checked", NULL};
    if (!json_is_object(u) || only_keys(c, u, c->where, keys) != 0)
        return ph_errf(c->err, c->errlen, "%s: \"usage\" must be {\"rows\": N, \"checked\": TIME}",
                       c->where);
    json_t *rows = json_object_get(u, "rows");
    if (!json_is_integer(rows) || json_integer_value(rows) < 0 ||
        get_time(u, "checked", &v->usage_checked) != 0)
        return ph_errf(c->err, c->errlen, "%s: \"usage\" must be {\"rows\": N, \"checked\": TIME}",
                       c->where);
    v->usage_known = 1;
    v->usage_rows = (uint64_t)json_integer_value(rows);
    return 0;
}

static int parse_version(pctx *c, json_t *j, ph_dek_version *v)
{
    static const char *const keys[] = {"version", "key_id", "state",   "created",
                                       "retired", "usage",  "wrapped", NULL};
    if (!json_is_object(j))
        return ph_errf(c->err, c->errlen, "%s: a version must be an object", c->where);
    if (only_keys(c, j, c->where, keys) != 0)
        return -1;
    if (get_u32(j, "version", &v->version) != 0 || get_u32(j, "key_id", &v->key_id) != 0)
        return ph_errf(c->err, c->errlen, "%s: \"version\" and \"key_id\" must be 1..4294967295",
                       c->where);
    json_t *st = json_object_get(j, "state");
    const char *s = json_is_string(st) ? json_string_value(st) : "";
    if (strcmp(s, "active") == 0)
        v->state = PH_DEK_ACTIVE;
    else if (strcmp(s, "retired") == 0)
        v->state = PH_DEK_RETIRED;
    else
        return ph_errf(c->err, c->errlen, "%s v%u: \"state\" must be active or retired", c->where,
                       (unsigned)v->version);
    if (get_time(j, "created", &v->created) != 0)
        return ph_errf(c->err, c->errlen, "%s v%u: \"created\" must be YYYY-MM-DDTHH:MM:SSZ",
                       c->where, (unsigned)v->version);
    json_t *ret = json_object_get(j, "retired");
    if ((v->state == PH_DEK_RETIRED) != (ret != NULL) ||
        (ret && get_time(j, "retired", &v->retired) != 0))
        return ph_errf(c->err, c->errlen, "%s v%u: \"retired\" (a time) is required iff retired",
                       c->where, (unsigned)v->version);
    json_t *u = json_object_get(j, "usage");
    if (u && parse_usage(c, u, v) != 0)
        return -1;
    json_t *w = json_object_get(j, "wrapped");
    if (!json_is_array(w))
        return ph_errf(c->err, c->errlen, "%s v%u: \"wrapped\" must be an array", c->where,
                       (unsigned)v->version);
    size_t n = json_array_size(w);
    if ((v->state == PH_DEK_RETIRED) != (n == 0))
        return ph_errf(c->err, c->errlen,
                       "%s v%u: an active version needs a wrapping, a retired one has none",
                       c->where, (unsigned)v->version);
    if (n > 64)
        return ph_errf(c->err, c->errlen, "%s v%u: too many wrappings", c->where,
                       (unsigned)v->version);
    if (n && !(v->wrapped = ph_calloc(n, sizeof *v->wrapped)))
        return ph_errf(c->err, c->errlen, "out of memory");
    for (size_t i = 0; i < n; i++) {
        v->n_wrapped = i + 1;
        if (parse_wrapped(c, json_array_get(w, i), &v->wrapped[i]) != 0)
            return -1;
    }
    return 0;
}

/* A shredded domain: a time, and every version retired. */
static int parse_shredded(pctx *c, json_t *j, ph_key_domain *d)
{
    json_t *sh = json_object_get(j, "shredded");
    if (!sh)
        return 0;
    if (get_time(j, "shredded", &d->shredded) != 0)
        return ph_errf(c->err, c->errlen, "%s: \"shredded\" must be YYYY-MM-DDTHH:MM:SSZ", d->name);
    for (size_t i = 0; i < d->n_versions; i++)
        if (d->versions[i].state != PH_DEK_RETIRED)
            return ph_errf(c->err, c->errlen, "%s: shredded, but version %u is not retired",
                           d->name, (unsigned)d->versions[i].version);
    return 0;
}

static int parse_domain(pctx *c, ph_keyring *kr, const char *name, json_t *j)
{
    static const char *const keys[] = {"active", "versions", "shredded", NULL};
    c->where = name;
    if (!ph_keyring_valid_domain(name))
        return ph_errf(c->err, c->errlen, "invalid key domain name \"%.60s\"", name);
    if (!json_is_object(j) || only_keys(c, j, name, keys) != 0)
        return ph_errf(c->err, c->errlen, "%s: must be {\"active\": N, \"versions\": [...]}", name);
    ph_key_domain *d = insert_domain(kr, name);
    if (!d)
        return ph_errf(c->err, c->errlen, "out of memory");
    json_t *vs = json_object_get(j, "versions");
    if (get_u32(j, "active", &d->active) != 0 || !json_is_array(vs) || json_array_size(vs) == 0)
        return ph_errf(c->err, c->errlen, "%s: needs \"active\" and a non-empty \"versions\"",
                       name);
    size_t n = json_array_size(vs);
    if (!(d->versions = ph_calloc(n, sizeof *d->versions)))
        return ph_errf(c->err, c->errlen, "out of memory");
    for (size_t i = 0; i < n; i++) {
        d->n_versions = i + 1;
        if (parse_version(c, json_array_get(vs, i), &d->versions[i]) != 0)
            return -1;
        if (i > 0 && d->versions[i].version <= d->versions[i - 1].version)
            return ph_errf(c->err, c->errlen, "%s: versions must be strictly increasing", name);
    }
    if (parse_shredded(c, j, d) != 0)
        return -1;
    ph_dek_version *act = ph_keyring_version(d, d->active);
    if (!act || (act->state != PH_DEK_ACTIVE && !d->shredded))
        return ph_errf(c->err, c->errlen, "%s: \"active\" must name a version in state active",
                       name);
    return 0;
}

static int check_key_ids(pctx *c, const ph_keyring *kr)
{
    for (size_t i = 0; i < kr->n_domains; i++)
        for (size_t j = 0; j < kr->domains[i].n_versions; j++) {
            uint32_t id = kr->domains[i].versions[j].key_id;
            ph_key_domain *d;
            ph_dek_version *v;
            if (id >= kr->next_key_id)
                return ph_errf(c->err, c->errlen, "key id %u is not below next_key_id",
                               (unsigned)id);
            if (ph_keyring_by_key_id(kr, id, &d, &v) == 0 && v != &kr->domains[i].versions[j])
                return ph_errf(c->err, c->errlen, "key id %u is used twice", (unsigned)id);
        }
    return 0;
}

static int parse_root(pctx *c, json_t *root, ph_keyring *kr)
{
    static const char *const keys[] = {"format",      "version", "generation",
                                       "next_key_id", "domains", NULL};
    if (!json_is_object(root))
        return ph_errf(c->err, c->errlen, "not a keyring (expected a JSON object)");
    json_t *fmt = json_object_get(root, "format"), *ver = json_object_get(root, "version");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), PH_KEYRING_FORMAT) != 0)
        return ph_errf(c->err, c->errlen, "not a keyring (\"format\" is not \"%s\")",
                       PH_KEYRING_FORMAT);
    if (!json_is_integer(ver) || json_integer_value(ver) != PH_KEYRING_VERSION)
        return ph_errf(c->err, c->errlen, "unsupported keyring version (this build reads %d)",
                       PH_KEYRING_VERSION);
    if (only_keys(c, root, "keyring", keys) != 0)
        return -1;
    json_t *gen = json_object_get(root, "generation"), *doms = json_object_get(root, "domains");
    if (!json_is_integer(gen) || json_integer_value(gen) < 0 ||
        json_integer_value(gen) >= INT64_MAX || /* room for the next save */
        get_u32(root, "next_key_id", &kr->next_key_id) != 0 || !json_is_object(doms))
        return ph_errf(c->err, c->errlen, "needs \"generation\", \"next_key_id\" and \"domains\"");
    kr->generation = (uint64_t)json_integer_value(gen);
    const char *name;
    json_t *d;
    json_object_foreach(doms, name, d)
    {
        if (parse_domain(c, kr, name, d) != 0)
            return -1;
    }
    return check_key_ids(c, kr);
}

int ph_keyring_parse(const char *json, size_t len, ph_keyring **out, char *err, size_t errlen)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return ph_errf(err, errlen, "line %d: %s", je.line, je.text);
    ph_keyring *kr = ph_keyring_new();
    pctx c = {err, errlen, ""};
    int rc = kr ? parse_root(&c, root, kr) : ph_errf(err, errlen, "out of memory");
    json_decref(root);
    if (rc != 0) {
        ph_keyring_free(kr);
        return -1;
    }
    *out = kr;
    return 0;
}

/* ---- serialising ---------------------------------------------------------------- */

static json_t *time_json(int64_t t)
{
    char buf[32];
    ph_keyring_format_time(t, buf, sizeof buf);
    return json_string(buf);
}

static json_t *wrapped_json(const ph_wrapped_dek *w)
{
    char *b = b64_encode(w->blob, w->blob_len);
    json_t *o = json_object();
    int rc = b && o ? 0 : -1;
    rc = rc ? rc : json_object_set_new(o, "kek", json_string(w->kek));
    rc = rc ? rc
            : json_object_set_new(o, "role",
                                  json_string(w->role == PH_WRAP_ESCROW ? "escrow" : "primary"));
    rc = rc ? rc : json_object_set_new(o, "blob", json_string(b));
    free(b);
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *version_json(const ph_dek_version *v)
{
    json_t *o = json_object(), *w = json_array();
    int rc = o && w ? 0 : -1;
    rc = rc ? rc : json_object_set_new(o, "version", json_integer(v->version));
    rc = rc ? rc : json_object_set_new(o, "key_id", json_integer(v->key_id));
    rc = rc ? rc
            : json_object_set_new(o, "state",
                                  json_string(v->state == PH_DEK_RETIRED ? "retired" : "active"));
    rc = rc ? rc : json_object_set_new(o, "created", time_json(v->created));
    if (!rc && v->state == PH_DEK_RETIRED)
        rc = json_object_set_new(o, "retired", time_json(v->retired));
    if (!rc && v->usage_known) {
        json_t *u = json_object();
        rc = u ? 0 : -1;
        rc = rc ? rc : json_object_set_new(u, "rows", json_integer((json_int_t)v->usage_rows));
        rc = rc ? rc : json_object_set_new(u, "checked", time_json(v->usage_checked));
        rc = rc ? (json_decref(u), rc) : json_object_set_new(o, "usage", u);
    }
    for (size_t i = 0; !rc && i < v->n_wrapped; i++)
        rc = json_array_append_new(w, wrapped_json(&v->wrapped[i]));
    if (!rc)
        return json_object_set_new(o, "wrapped", w) == 0 ? o : (json_decref(o), NULL);
    json_decref(w);
    json_decref(o);
    return NULL;
}

static json_t *domain_json(const ph_key_domain *d)
{
    json_t *o = json_object(), *vs = json_array();
    int rc = o && vs ? 0 : -1;
    rc = rc ? rc : json_object_set_new(o, "active", json_integer(d->active));
    if (!rc && d->shredded)
        rc = json_object_set_new(o, "shredded", time_json(d->shredded));
    for (size_t i = 0; !rc && i < d->n_versions; i++)
        rc = json_array_append_new(vs, version_json(&d->versions[i]));
    if (!rc)
        return json_object_set_new(o, "versions", vs) == 0 ? o : (json_decref(o), NULL);
    json_decref(vs);
    json_decref(o);
    return NULL;
}

char *ph_keyring_serialize(const ph_keyring *kr, size_t *len)
{
    json_t *root = json_object(), *doms = json_object();
    int rc = root && doms ? 0 : -1;
    rc = rc ? rc : json_object_set_new(root, "format", json_string(PH_KEYRING_FORMAT));
    rc = rc ? rc : json_object_set_new(root, "version", json_integer(PH_KEYRING_VERSION));
    rc =
        rc ? rc : json_object_set_new(root, "generation", json_integer((json_int_t)kr->generation));
    rc = rc ? rc : json_object_set_new(root, "next_key_id", json_integer(kr->next_key_id));
    for (size_t i = 0; !rc && i < kr->n_domains; i++)
        rc = json_object_set_new(doms, kr->domains[i].name, domain_json(&kr->domains[i]));
    if (!rc)
        rc = json_object_set_new(root, "domains", doms);
    else
        json_decref(doms);
    char *s = rc ? NULL : json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    if (s && len)
        *len = strlen(s);
    return s;
}

/* ---- files -------------------------------------------------------------------- */

int ph_keyring_load(const char *path, int missing_ok, ph_keyring **out, char *err, size_t errlen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && missing_ok) {
        *out = ph_keyring_new();
        return *out ? 0 : ph_errf(err, errlen, "out of memory");
    }
    if (fd < 0)
        return ph_errf(err, errlen, "%s: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    char *data = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = ph_errf(err, errlen, "%s: not a regular file", path);
    else if (st.st_size > (off_t)PH_KEYRING_MAX_FILE)
        rc = ph_errf(err, errlen, "%s: larger than %u bytes", path, PH_KEYRING_MAX_FILE);
    else if (!(data = malloc((size_t)st.st_size + 1)))
        rc = ph_errf(err, errlen, "out of memory");
    size_t len = 0;
    while (rc == 0 && len < (size_t)st.st_size) {
        ssize_t n = read(fd, data + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = ph_errf(err, errlen, "%s: read: %s", path, n < 0 ? strerror(errno) : "short");
        else
            len += (size_t)n;
    }
    close(fd);
    if (rc == 0) {
        char reason[200];
        if (ph_keyring_parse(data, len, out, reason, sizeof reason) != 0)
            rc = ph_errf(err, errlen, "%s: %s", path, reason);
    }
    free(data);
    return rc;
}

int ph_keyring_save(ph_keyring *kr, const char *path, char *err, size_t errlen)
{
    kr->generation++;
    size_t len = 0;
    char *s = ph_keyring_serialize(kr, &len);
    int rc = s ? 0 : ph_errf(err, errlen, "out of memory");
    if (rc == 0) {
        s[len] = '\n'; /* replace the NUL: files end with a newline */
        rc = ph_atomic_write(path, s, len + 1, 0600, err, errlen);
    }
    free(s);
    if (rc != 0)
        kr->generation--;
    return rc;
}

int ph_keyring_lock(const char *path, unsigned timeout_ms, char *err, size_t errlen)
{
    size_t n = strlen(path) + sizeof ".lock";
    char *lp = malloc(n);
    if (!lp)
        return ph_errf(err, errlen, "out of memory");
    snprintf(lp, n, "%s.lock", path);
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        ph_errf(err, errlen, "%s: %s", lp, strerror(errno));
        free(lp);
        return -1;
    }
    for (unsigned waited = 0;; waited += 50) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            break;
        if ((errno != EWOULDBLOCK && errno != EINTR) || waited >= timeout_ms) {
            ph_errf(err, errlen, "%s: %s", lp,
                    errno == EWOULDBLOCK ? "locked by another process" : strerror(errno));
            close(fd);
            free(lp);
            return -1;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    free(lp);
    return fd;
}

/* ---- mutations ----------------------------------------------------------------- */

static int add_wrapping(ph_dek_version *v, ph_wrap_role role, const char *kek_id,
                        const uint8_t *blob, size_t blob_len)
{
    ph_wrapped_dek w = {.role = role, .blob_len = blob_len};
    w.kek = strdup(kek_id);
    w.blob = malloc(blob_len);
    ph_wrapped_dek *g =
        w.kek && w.blob ? realloc(v->wrapped, (v->n_wrapped + 1) * sizeof *g) : NULL;
    if (!g) {
        free(w.kek);
        free(w.blob);
        return -1;
    }
    memcpy(w.blob, blob, blob_len);
    v->wrapped = g;
    v->wrapped[v->n_wrapped++] = w;
    return 0;
}

static int check_wrapping_args(const char *kek_id, const uint8_t *blob, size_t blob_len, char *err,
                               size_t errlen)
{
    if (!valid_kek_id(kek_id))
        return ph_errf(err, errlen, "invalid KEK id");
    if (!blob || blob_len == 0 || blob_len > PH_KEYRING_MAX_BLOB)
        return ph_errf(err, errlen, "wrapped key must be 1..%u bytes", PH_KEYRING_MAX_BLOB);
    return 0;
}

int ph_keyring_add_version(ph_keyring *kr, const char *domain, int create, const char *kek_id,
                           const uint8_t *blob, size_t blob_len, ph_dek_version **out, char *err,
                           size_t errlen)
{
    if (!ph_keyring_valid_domain(domain))
        return ph_errf(err, errlen, "invalid key domain name (1..%u of A-Z a-z 0-9 _ . : / @ -)",
                       PH_KEYRING_MAX_DOMAIN);
    if (check_wrapping_args(kek_id, blob, blob_len, err, errlen) != 0)
        return -1;
    if (kr->next_key_id == 0 || kr->next_key_id == UINT32_MAX)
        return ph_errf(err, errlen, "key ids exhausted");
    ph_key_domain *d = ph_keyring_domain(kr, domain);
    if (create && d)
        return ph_errf(err, errlen, "key domain %s already exists (use rotate)", domain);
    if (!create && !d)
        return ph_errf(err, errlen, "no key domain %s (use create)", domain);
    if (d && d->shredded)
        return ph_errf(err, errlen,
                       "key domain %s was crypto-shredded; its keys are never re-created", domain);
    uint32_t version = d ? d->versions[d->n_versions - 1].version + 1 : 1;
    if (d && version == 0)
        return ph_errf(err, errlen, "%s: versions exhausted", domain);
    ph_dek_version nv = {.version = version,
                         .key_id = kr->next_key_id,
                         .state = PH_DEK_ACTIVE,
                         .created = (int64_t)time(NULL)};
    if (add_wrapping(&nv, PH_WRAP_PRIMARY, kek_id, blob, blob_len) != 0)
        return ph_errf(err, errlen, "out of memory");
    if (!d && !(d = insert_domain(kr, domain))) {
        version_clear(&nv);
        return ph_errf(err, errlen, "out of memory");
    }
    ph_dek_version *g = realloc(d->versions, (d->n_versions + 1) * sizeof *g);
    if (!g) {
        version_clear(&nv);
        if (d->n_versions == 0) /* undo the domain just inserted */
            remove_domain(kr, d);
        return ph_errf(err, errlen, "out of memory");
    }
    d->versions = g;
    g[d->n_versions++] = nv;
    d->active = version;
    kr->next_key_id++;
    if (out)
        *out = &g[d->n_versions - 1];
    return 0;
}

int ph_keyring_set_wrapping(ph_dek_version *v, ph_wrap_role role, const char *kek_id,
                            const uint8_t *blob, size_t blob_len, char *err, size_t errlen)
{
    if (v->state != PH_DEK_ACTIVE)
        return ph_errf(err, errlen, "version %u is retired", (unsigned)v->version);
    if (check_wrapping_args(kek_id, blob, blob_len, err, errlen) != 0)
        return -1;
    if (add_wrapping(v, role, kek_id, blob, blob_len) != 0)
        return ph_errf(err, errlen, "out of memory");
    /* The new wrapping (last) takes the place of the first one of its role;
     * any other of that role is dropped; the order of the rest is kept. */
    ph_wrapped_dek fresh = v->wrapped[--v->n_wrapped];
    size_t keep = 0;
    int placed = 0;
    for (size_t i = 0; i < v->n_wrapped; i++) {
        if (v->wrapped[i].role != role) {
            v->wrapped[keep++] = v->wrapped[i];
            continue;
        }
        wrapped_clear(&v->wrapped[i]);
        if (!placed) {
            v->wrapped[keep++] = fresh;
            placed = 1;
        }
    }
    if (!placed)
        v->wrapped[keep++] = fresh;
    v->n_wrapped = keep;
    return 0;
}

ph_retire_check ph_keyring_retire_check(const ph_keyring *kr, const char *domain, uint32_t version,
                                        char *err, size_t errlen)
{
    ph_key_domain *d = ph_keyring_domain(kr, domain);
    ph_dek_version *v = ph_keyring_version(d, version);
    if (!v) {
        ph_errf(err, errlen, "no version %u in key domain %s", (unsigned)version, domain);
        return PH_RETIRE_IMPOSSIBLE;
    }
    if (v->state == PH_DEK_RETIRED) {
        ph_errf(err, errlen, "%s version %u is already retired", domain, (unsigned)version);
        return PH_RETIRE_IMPOSSIBLE;
    }
    if (d->active == version) {
        ph_errf(err, errlen,
                "%s version %u is the active version (new writes use it); rotate first", domain,
                (unsigned)version);
        return PH_RETIRE_IMPOSSIBLE;
    }
    if (!v->usage_known) {
        ph_errf(err, errlen,
                "%s version %u may still encrypt data: no scan has shown it unused (run the "
                "re-encryption scanner first)",
                domain, (unsigned)version);
        return PH_RETIRE_USAGE_UNKNOWN;
    }
    if (v->usage_rows > 0) {
        char when[32];
        ph_keyring_format_time(v->usage_checked, when, sizeof when);
        ph_errf(err, errlen, "%s version %u still encrypts %llu row(s) (counted %s)", domain,
                (unsigned)version, (unsigned long long)v->usage_rows, when);
        return PH_RETIRE_IN_USE;
    }
    if (err && errlen)
        err[0] = '\0';
    return PH_RETIRE_OK;
}

int ph_keyring_retire(ph_keyring *kr, const char *domain, uint32_t version, int force, char *err,
                      size_t errlen)
{
    ph_retire_check c = ph_keyring_retire_check(kr, domain, version, err, errlen);
    if (c == PH_RETIRE_IMPOSSIBLE || (c != PH_RETIRE_OK && !force))
        return -1;
    ph_dek_version *v = ph_keyring_version(ph_keyring_domain(kr, domain), version);
    version_clear(v);
    v->state = PH_DEK_RETIRED;
    v->retired = (int64_t)time(NULL);
    return 0;
}

int ph_keyring_record_usage(ph_keyring *kr, const char *domain, uint32_t version, uint64_t rows,
                            int64_t when, char *err, size_t errlen)
{
    ph_dek_version *v = ph_keyring_version(ph_keyring_domain(kr, domain), version);
    if (!v)
        return ph_errf(err, errlen, "no version %u in key domain %s", (unsigned)version, domain);
    if (rows > (uint64_t)INT64_MAX)
        return ph_errf(err, errlen, "row count out of range");
    v->usage_known = 1;
    v->usage_rows = rows;
    v->usage_checked = when;
    return 0;
}

/* ---- tenants ------------------------------------------------------------------- */

static int tenant_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

static int alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int ph_tenant_valid_len(const char *t, size_t len)
{
    if (!t || len == 0 || len > PH_TENANT_MAX || !alnum((unsigned char)t[0]) ||
        !alnum((unsigned char)t[len - 1]))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!tenant_char((unsigned char)t[i]))
            return 0;
    return 1;
}

int ph_tenant_valid(const char *t)
{
    return t ? ph_tenant_valid_len(t, strlen(t)) : 0;
}

int ph_keyring_tenant_domain(char *buf, size_t len, const char *tenant, const char *domain)
{
    if (!ph_tenant_valid(tenant) || !domain)
        return -1;
    int n = snprintf(buf, len, PH_TENANT_PREFIX "%s/%s", tenant, domain);
    if (n < 0 || (size_t)n >= len || !ph_keyring_valid_domain(buf))
        return -1;
    return 0;
}

int ph_keyring_domain_tenant(const char *name, char *tenant, size_t tlen, const char **base)
{
    size_t pl = sizeof PH_TENANT_PREFIX - 1;
    if (!name || strncmp(name, PH_TENANT_PREFIX, pl) != 0)
        return 0;
    const char *t = name + pl, *slash = strchr(t, '/');
    if (!slash || !ph_tenant_valid_len(t, (size_t)(slash - t)) || !slash[1])
        return 0;
    if (tenant) {
        size_t n = (size_t)(slash - t);
        if (tlen <= n)
            return 0;
        memcpy(tenant, t, n);
        tenant[n] = '\0';
    }
    if (base)
        *base = slash + 1;
    return 1;
}

/* 1 when d is a domain of tenant. */
static int domain_of_tenant(const ph_key_domain *d, const char *tenant)
{
    char t[PH_TENANT_MAX + 1];
    return ph_keyring_domain_tenant(d->name, t, sizeof t, NULL) && strcmp(t, tenant) == 0;
}

int ph_keyring_tenant_shredded(const ph_keyring *kr, const char *tenant)
{
    for (size_t i = 0; kr && tenant && i < kr->n_domains; i++)
        if (kr->domains[i].shredded && domain_of_tenant(&kr->domains[i], tenant))
            return 1;
    return 0;
}

int ph_keyring_shred_tenant(ph_keyring *kr, const char *tenant, int64_t when, ph_shred_result *res,
                            char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (!ph_tenant_valid(tenant))
        return ph_errf(err, errlen,
                       "invalid tenant id (1..%d of A-Z a-z 0-9 _ . -, starting and ending with a "
                       "letter or digit)",
                       PH_TENANT_MAX);
    for (size_t i = 0; i < kr->n_domains; i++) {
        ph_key_domain *d = &kr->domains[i];
        if (!domain_of_tenant(d, tenant))
            continue;
        res->domains++;
        if (d->shredded) {
            res->already++;
            continue;
        }
        for (size_t j = 0; j < d->n_versions; j++) {
            ph_dek_version *v = &d->versions[j];
            if (v->state == PH_DEK_RETIRED)
                continue;
            res->wrappings += v->n_wrapped;
            res->versions++;
            version_clear(v); /* wipes every blob */
            v->state = PH_DEK_RETIRED;
            v->retired = when;
        }
        d->shredded = when;
    }
    if (res->domains == 0)
        return ph_errf(err, errlen, "the keyring holds no key of tenant %s", tenant);
    return 0;
}
