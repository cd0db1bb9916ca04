/*
 * config.c — phantom.yaml and command-line settings.
 *
 * Owns: the table of settings (name, type, range), parsing one value into
 * the typed ph_config, walking a YAML document (libyaml's composer) into
 * those settings with "FILE:LINE: reason" errors, and final validation.
 * The YAML file and the command line share ph_config_set, so a value means
 * the same thing wherever it is written.
 */
#include "config/config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/err.h"
#include "common/file.h"
#include "common/yaml_doc.h"

/* ---- value parsers --------------------------------------------------------- */

/* Parses a run of decimal digits; rejects signs, blanks and overflow. */
static int parse_digits(const char *s, const char **end, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *end = p;
    *out = v;
    return 0;
}

typedef struct {
    const char *suffix;
    uint64_t mul;
} unit;

/* Digits, optional blanks, then one of the n unit suffixes (multiplied in,
 * overflow rejected). */
static int parse_with_units(const char *s, const unit *units, size_t n, uint64_t *out)
{
    const char *end;
    uint64_t v;
    if (!s || parse_digits(s, &end, &v) != 0)
        return -1;
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < n; i++)
        if (strcmp(end, units[i].suffix) == 0) {
            if (units[i].mul && v > UINT64_MAX / units[i].mul)
                return -1;
            *out = v * units[i].mul;
            return 0;
        }
    return -1;
}

int ph_parse_size(const char *s, uint64_t *out)
{
    static const unit units[] = {
        {"", 1},          {"B", 1},          {"kB", 1u << 10}, {"KB", 1u << 10},  {"KiB", 1u << 10},
        {"MB", 1u << 20}, {"MiB", 1u << 20}, {"GB", 1u << 30}, {"GiB", 1u << 30},
    };
    return parse_with_units(s, units, sizeof units / sizeof units[0], out);
}

int ph_parse_duration_ms(const char *s, uint64_t *out)
{
    static const unit units[] = {{"", 1},      {"ms", 1},      {"s", 1000},
                                 {"m", 60000}, {"min", 60000}, {"h", 3600000}};
    return parse_with_units(s, units, sizeof units / sizeof units[0], out);
}

static const char *const sslmode_names[] = {"disable", "prefer", "require", "verify-ca",
                                            "verify-full"};

int ph_parse_sslmode(const char *s, ph_sslmode *out)
{
    for (size_t i = 0; s && i < sizeof sslmode_names / sizeof sslmode_names[0]; i++)
        if (strcmp(s, sslmode_names[i]) == 0) {
            *out = (ph_sslmode)i;
            return 0;
        }
    return -1;
}

const char *ph_sslmode_name(ph_sslmode m)
{
    return (unsigned)m < sizeof sslmode_names / sizeof sslmode_names[0] ? sslmode_names[m] : "?";
}

int ph_split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
    if (!s || !*s)
        return -1;
    const char *h = s, *colon;
    size_t hlen;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return -1; /* bare IPv6 needs brackets */
        hlen = (size_t)(colon - s);
    }
    const char *p = colon + 1;
    size_t plen = strlen(p);
    if (hlen == 0 || hlen >= hostlen || plen == 0 || plen >= portlen)
        return -1;
    uint64_t pv;
    const char *end;
    if (parse_digits(p, &end, &pv) != 0 || *end || pv == 0 || pv > 65535)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memcpy(port, p, plen + 1);
    return 0;
}

/* ---- the settings table ---------------------------------------------------- */

typedef enum {
    T_STR,
    T_HOSTPORT,
    T_UINT,
    T_SIZE,
    T_DURATION,
    T_SSLMODE,
    T_LEVEL,
    T_FORMAT
} st_type;

typedef struct {
    const char *name;
    st_type type;
    size_t off;
    uint64_t min, max;
} setting;

#define F(field) offsetof(ph_config, field)

static const setting settings[] = {
    {"listen", T_HOSTPORT, F(listen), 0, 0},
    {"target", T_HOSTPORT, F(target), 0, 0},
    {"db-target", T_HOSTPORT, F(target), 0, 0},
    {"workers", T_UINT, F(workers), 0, 64},
    {"upstream_tls.sslmode", T_SSLMODE, F(sslmode), 0, 0},
    {"upstream_tls.sslrootcert", T_STR, F(sslrootcert), 0, 0},
    {"upstream_tls.sslcert", T_STR, F(sslcert), 0, 0},
    {"upstream_tls.sslkey", T_STR, F(sslkey), 0, 0},
    {"client_tls.cert", T_STR, F(client_tls_cert), 0, 0},
    {"client_tls.key", T_STR, F(client_tls_key), 0, 0},
    {"limits.max_message_size", T_SIZE, F(max_message_size), 1024, PH_DEFAULT_MAX_MESSAGE},
    {"limits.max_connections", T_UINT, F(max_connections), 1, 1000000},
    {"limits.buffer_size", T_SIZE, F(buffer_size), 4096, 16u * 1024 * 1024},
    {"limits.connect_timeout", T_DURATION, F(connect_timeout_ms), 1, 3600000},
    {"limits.shutdown_timeout", T_DURATION, F(shutdown_timeout_ms), 0, 86400000},
    {"limits.startup_timeout", T_DURATION, F(startup_timeout_ms), 100, 3600000},
    {"log.level", T_LEVEL, F(log_level), 0, 0},
    {"log.format", T_FORMAT, F(log_format), 0, 0},
    {"metrics.listen", T_HOSTPORT, F(metrics_listen), 0, 0},
};

/* Sections other layers own (encryption schema, keys, tenants, token vault):
 * accepted here so one phantom.yaml serves every version of the proxy. */
static const char *const reserved_sections[] = {"encrypt", "keys", "tenants", "audit", "tokens"};

static const setting *find_setting(const char *key)
{
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (strcmp(settings[i].name, key) == 0)
            return &settings[i];
    return NULL;
}

static int is_section(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (strncmp(settings[i].name, name, n) == 0 && settings[i].name[n] == '.')
            return 1;
    return 0;
}

static int is_reserved(const char *name)
{
    for (size_t i = 0; i < sizeof reserved_sections / sizeof reserved_sections[0]; i++)
        if (strcmp(reserved_sections[i], name) == 0)
            return 1;
    return 0;
}

int ph_config_set_str(char **slot, const char *value)
{
    char *copy = NULL;
    if (value && !(copy = strdup(value)))
        return -1;
    free(*slot);
    *slot = copy;
    return 0;
}

static int set_number(const setting *st, ph_config *cfg, uint64_t v, char *err, size_t errlen)
{
    if (v < st->min || v > st->max)
        return ph_errf(err, errlen, "%s must be between %llu and %llu", st->name,
                       (unsigned long long)st->min, (unsigned long long)st->max);
    char *base = (char *)cfg + st->off;
    if (st->type == T_SIZE)
        *(uint32_t *)(void *)base = (uint32_t)v;
    else
        *(unsigned *)(void *)base = (unsigned)v;
    return 0;
}

static int set_enum(const setting *st, ph_config *cfg, const char *value, char *err, size_t errlen)
{
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    if (st->type == T_SSLMODE) {
        if (ph_parse_sslmode(value, &cfg->sslmode) == 0)
            return 0;
        return ph_errf(err, errlen, "%s must be disable, prefer, require, verify-ca or verify-full",
                       st->name);
    }
    if (st->type == T_LEVEL) {
        for (int i = 0; i < 4; i++)
            if (strcmp(value, levels[i]) == 0) {
                cfg->log_level = (ph_log_level)i;
                return 0;
            }
        return ph_errf(err, errlen, "%s must be error, warn, info or debug", st->name);
    }
    if (strcmp(value, "text") == 0 || strcmp(value, "json") == 0) {
        cfg->log_format = value[0] == 'j' ? PH_LOG_JSON : PH_LOG_TEXT;
        return 0;
    }
    return ph_errf(err, errlen, "%s must be text or json", st->name);
}

int ph_config_set(ph_config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
    const setting *st = find_setting(key);
    if (!st)
        return ph_errf(err, errlen, "unknown setting \"%s\"", key);
    if (!value)
        value = "";
    uint64_t v;
    char host[256], port[16];
    switch (st->type) {
    case T_HOSTPORT:
        if (ph_split_hostport(value, host, sizeof host, port, sizeof port) != 0)
            return ph_errf(err, errlen, "%s must be HOST:PORT (IPv6 as [ADDR]:PORT)", st->name);
        /* fall through */
    case T_STR:
        if (ph_config_set_str((char **)(void *)((char *)cfg + st->off), *value ? value : NULL))
            return ph_errf(err, errlen, "out of memory");
        return 0;
    case T_UINT: {
        const char *end;
        if (parse_digits(value, &end, &v) != 0 || *end)
            return ph_errf(err, errlen, "%s must be a whole number", st->name);
        return set_number(st, cfg, v, err, errlen);
    }
    case T_SIZE:
        if (ph_parse_size(value, &v) != 0)
            return ph_errf(err, errlen, "%s must be a size such as 65536, 64KiB or 16MiB",
                           st->name);
        return set_number(st, cfg, v, err, errlen);
    case T_DURATION:
        if (ph_parse_duration_ms(value, &v) != 0)
            return ph_errf(err, errlen, "%s must be a duration such as 500ms, 30s or 2m", st->name);
        return set_number(st, cfg, v, err, errlen);
    default:
        return set_enum(st, cfg, value, err, errlen);
    }
}

/* ---- defaults, validation, free -------------------------------------------- */

void ph_config_defaults(ph_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = strdup(PH_DEFAULT_LISTEN); /* NULL on OOM: validate reports it */
    cfg->sslmode = PH_SSLMODE_PREFER;
    cfg->max_message_size = PH_DEFAULT_MAX_MESSAGE;
    cfg->max_connections = PH_DEFAULT_MAX_CONNECTIONS;
    cfg->buffer_size = PH_DEFAULT_BUFFER_SIZE;
    cfg->shutdown_timeout_ms = PH_DEFAULT_SHUTDOWN_TIMEOUT_MS;
    cfg->connect_timeout_ms = PH_DEFAULT_CONNECT_TIMEOUT_MS;
    cfg->startup_timeout_ms = PH_DEFAULT_STARTUP_TIMEOUT_MS;
    cfg->log_level = PH_LOG_INFO;
    cfg->log_format = PH_LOG_TEXT;
}

int ph_config_validate(const ph_config *cfg, char *err, size_t errlen)
{
    char host[256], port[16];
    if (!cfg->target)
        return ph_errf(err, errlen, "no target: set --target HOST:PORT or `target:` in the config");
    if (ph_split_hostport(cfg->target, host, sizeof host, port, sizeof port) != 0)
        return ph_errf(err, errlen, "target must be HOST:PORT");
    if (!cfg->listen || ph_split_hostport(cfg->listen, host, sizeof host, port, sizeof port) != 0)
        return ph_errf(err, errlen, "listen must be HOST:PORT");
    if (!cfg->client_tls_cert != !cfg->client_tls_key)
        return ph_errf(err, errlen, "client TLS needs both a certificate and a key");
    if (!cfg->sslcert != !cfg->sslkey)
        return ph_errf(err, errlen, "sslcert and sslkey must be given together");
    if (cfg->sslcert && cfg->sslmode == PH_SSLMODE_DISABLE)
        return ph_errf(err, errlen, "sslcert is set but sslmode is disable");
    if (cfg->metrics_listen &&
        ph_split_hostport(cfg->metrics_listen, host, sizeof host, port, sizeof port) != 0)
        return ph_errf(err, errlen, "metrics.listen must be HOST:PORT");
    if (cfg->metrics_listen && strcmp(cfg->metrics_listen, cfg->listen) == 0)
        return ph_errf(err, errlen, "metrics.listen must differ from listen");
    return 0;
}

void ph_config_free(ph_config *cfg)
{
    char **strs[] = {&cfg->listen,         &cfg->target,         &cfg->sslrootcert,
                     &cfg->sslcert,        &cfg->sslkey,         &cfg->client_tls_cert,
                     &cfg->client_tls_key, &cfg->metrics_listen, &cfg->source_path};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
}

/* ---- YAML ------------------------------------------------------------------ */

typedef struct {
    ph_config *cfg;
    yaml_document_t *doc;
    ph_yaml_src src;
} loader;

/* A plain ~, null or empty scalar means "unset". */
static const char *scalar_value(const yaml_node_t *n)
{
    return ph_yaml_is_null(n) ? "" : ph_yaml_scalar(n);
}

static int load_setting(loader *ld, const char *key, yaml_node_t *vn)
{
    const char *v = scalar_value(vn);
    if (!v)
        return ph_yaml_fail(&ld->src, vn, "expected a single value");
    if (vn->data.scalar.length != strlen(ph_yaml_scalar(vn)))
        return ph_yaml_fail(&ld->src, vn, "value contains a NUL byte");
    char reason[256];
    if (ph_config_set(ld->cfg, key, v, reason, sizeof reason) != 0)
        return ph_yaml_fail(&ld->src, vn, "%s", reason);
    return 0;
}

static int load_section(loader *ld, const char *section, yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE)
        return ph_yaml_fail(&ld->src, map, "\"%s\" must be a mapping of settings", section);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(ld->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(ld->doc, p->value);
        const char *k = ph_yaml_scalar(kn);
        char full[128];
        if (!k || !vn)
            return ph_yaml_fail(&ld->src, kn ? kn : map, "expected a setting name");
        if ((size_t)snprintf(full, sizeof full, "%s.%s", section, k) >= sizeof full ||
            !find_setting(full))
            return ph_yaml_fail(&ld->src, kn, "unknown setting \"%.60s\" in \"%s\"", k, section);
        if (load_setting(ld, full, vn) != 0)
            return -1;
    }
    return 0;
}

static int load_top(loader *ld, yaml_node_t *root)
{
    if (root->type != YAML_MAPPING_NODE)
        return ph_yaml_fail(&ld->src, root, "the configuration must be a mapping of settings");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(ld->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(ld->doc, p->value);
        const char *k = ph_yaml_scalar(kn);
        if (!k || !vn)
            return ph_yaml_fail(&ld->src, kn ? kn : root, "expected a setting name");
        if (is_reserved(k))
            continue;
        int rc;
        if (is_section(k))
            rc = load_section(ld, k, vn);
        else if (find_setting(k))
            rc = load_setting(ld, k, vn);
        else
            rc = ph_yaml_fail(&ld->src, kn, "unknown setting \"%.60s\"", k);
        if (rc != 0)
            return -1;
    }
    return 0;
}

int ph_config_load_buffer(ph_config *cfg, const char *data, size_t len, const char *name, char *err,
                          size_t errlen)
{
    yaml_document_t doc;
    if (ph_yaml_load(&doc, data, len, name, err, errlen) != 0)
        return -1;
    loader ld = {cfg, &doc, {name, err, errlen}};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    int rc = root ? load_top(&ld, root) : 0; /* an empty file sets nothing */
    yaml_document_delete(&doc);
    return rc;
}

int ph_config_load_file(ph_config *cfg, const char *path, char *err, size_t errlen)
{
    char *data;
    size_t len;
    if (ph_file_read(path, PH_YAML_FILE_MAX, 0, &data, &len, err, errlen) != 0)
        return -1;
    int rc = ph_config_load_buffer(cfg, data, len, path, err, errlen);
    if (rc == 0 && ph_config_set_str(&cfg->source_path, path) != 0)
        rc = ph_errf(err, errlen, "out of memory");
    free(data);
    return rc;
}
