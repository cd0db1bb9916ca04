/*
 * test_config.c — unit tests for the configuration module: value parsers
 * (sizes, durations, sslmode, host:port), the settings table shared by the
 * command line and phantom.yaml, YAML loading with FILE:LINE errors, and
 * final validation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"

static int load(ph_config *cfg, const char *yaml, char *err, size_t errlen)
{
    return ph_config_load_buffer(cfg, yaml, strlen(yaml), "t.yaml", err, errlen);
}

static void test_sizes(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(ph_parse_size("1024", &v), 0);
    assert_int_equal(v, 1024);
    assert_int_equal(ph_parse_size("64KiB", &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(ph_parse_size("16MB", &v), 0);
    assert_int_equal(v, 16u << 20);
    assert_int_equal(ph_parse_size("1 GiB", &v), 0);
    assert_int_equal(v, 1u << 30);
    assert_int_equal(ph_parse_size("", &v), -1);
    assert_int_equal(ph_parse_size("-1", &v), -1);
    assert_int_equal(ph_parse_size("12XB", &v), -1);
    assert_int_equal(ph_parse_size("99999999999999999999", &v), -1);
    assert_int_equal(ph_parse_size("18446744073709551615GiB", &v), -1);
}

static void test_durations(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(ph_parse_duration_ms("250", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(ph_parse_duration_ms("500ms", &v), 0);
    assert_int_equal(v, 500);
    assert_int_equal(ph_parse_duration_ms("30s", &v), 0);
    assert_int_equal(v, 30000);
    assert_int_equal(ph_parse_duration_ms("2m", &v), 0);
    assert_int_equal(v, 120000);
    assert_int_equal(ph_parse_duration_ms("1h", &v), 0);
    assert_int_equal(v, 3600000);
    assert_int_equal(ph_parse_duration_ms("s", &v), -1);
    assert_int_equal(ph_parse_duration_ms("3 days", &v), -1);
}

static void test_sslmode(void **state)
{
    (void)state;
    ph_sslmode m;
    const char *names[] = {"disable", "prefer", "require", "verify-ca", "verify-full"};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ph_parse_sslmode(names[i], &m), 0);
        assert_int_equal(m, i);
        assert_string_equal(ph_sslmode_name(m), names[i]);
    }
    assert_int_equal(ph_parse_sslmode("allow-ish", &m), -1);
    assert_int_equal(ph_parse_sslmode("VERIFY-FULL", &m), -1);
}

static void test_hostport(void **state)
{
    (void)state;
    char h[64], p[8];
    assert_int_equal(ph_split_hostport("db.example.com:5432", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "db.example.com");
    assert_string_equal(p, "5432");
    assert_int_equal(ph_split_hostport("[::1]:6432", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "::1");
    assert_string_equal(p, "6432");
    const char *bad[] = {"",        "host",  "host:",     ":5432", "::1:5432", "h:0",
                         "h:65536", "h:12a", "[::1]5432", "[::1",  "h:-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ph_split_hostport(bad[i], h, sizeof h, p, sizeof p), -1);
    char tiny[4];
    assert_int_equal(ph_split_hostport("longhost:1", tiny, sizeof tiny, p, sizeof p), -1);
}

static void test_defaults_and_validate(void **state)
{
    (void)state;
    ph_config c;
    char err[256];
    ph_config_defaults(&c);
    assert_string_equal(c.listen, PH_DEFAULT_LISTEN);
    assert_int_equal(c.sslmode, PH_SSLMODE_PREFER);
    assert_int_equal(c.max_message_size, PH_DEFAULT_MAX_MESSAGE);
    assert_int_equal(ph_config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "no target"));
    assert_int_equal(ph_config_set(&c, "target", "127.0.0.1:5433", err, sizeof err), 0);
    assert_int_equal(ph_config_validate(&c, err, sizeof err), 0);
    assert_int_equal(ph_config_set(&c, "client_tls.cert", "/x.crt", err, sizeof err), 0);
    assert_int_equal(ph_config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "both a certificate and a key"));
    ph_config_free(&c);
    assert_null(c.listen);
}

static void test_set_ranges(void **state)
{
    (void)state;
    ph_config c;
    char err[256];
    ph_config_defaults(&c);
    assert_int_equal(ph_config_set(&c, "limits.max_message_size", "1MiB", err, sizeof err), 0);
    assert_int_equal(c.max_message_size, 1u << 20);
    assert_int_equal(ph_config_set(&c, "limits.max_message_size", "12", err, sizeof err), -1);
    assert_non_null(strstr(err, "between 1024 and"));
    assert_int_equal(c.max_message_size, 1u << 20); /* unchanged on error */
    assert_int_equal(ph_config_set(&c, "limits.max_message_size", "2GiB", err, sizeof err), -1);
    assert_int_equal(ph_config_set(&c, "workers", "4", err, sizeof err), 0);
    assert_int_equal(c.workers, 4);
    assert_int_equal(ph_config_set(&c, "workers", "four", err, sizeof err), -1);
    assert_int_equal(ph_config_set(&c, "workers", "65", err, sizeof err), -1);
    assert_int_equal(ph_config_set(&c, "limits.connect_timeout", "0", err, sizeof err), -1);
    assert_int_equal(ph_config_set(&c, "limits.shutdown_timeout", "2s", err, sizeof err), 0);
    assert_int_equal(c.shutdown_timeout_ms, 2000);
    assert_int_equal(c.startup_timeout_ms, 60000); /* the default, like authentication_timeout */
    assert_int_equal(ph_config_set(&c, "limits.startup_timeout", "2s", err, sizeof err), 0);
    assert_int_equal(c.startup_timeout_ms, 2000);
    assert_int_equal(ph_config_set(&c, "limits.startup_timeout", "50ms", err, sizeof err), -1);
    assert_int_equal(c.startup_timeout_ms, 2000);
    assert_int_equal(ph_config_set(&c, "log.level", "debug", err, sizeof err), 0);
    assert_int_equal(c.log_level, PH_LOG_DEBUG);
    assert_int_equal(ph_config_set(&c, "log.format", "xml", err, sizeof err), -1);
    assert_int_equal(ph_config_set(&c, "listen", "nohost", err, sizeof err), -1);
    assert_int_equal(ph_config_set(&c, "nonsense", "1", err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown setting"));
    ph_config_free(&c);
}

static void test_yaml_full(void **state)
{
    (void)state;
    const char *y = "# a full example\n"
                    "listen: 0.0.0.0:6432\n"
                    "db-target: db.internal:5432\n"
                    "workers: 2\n"
                    "upstream_tls:\n"
                    "  sslmode: verify-full\n"
                    "  sslrootcert: /etc/ssl/ca.pem\n"
                    "client_tls:\n"
                    "  cert: /etc/phantom/tls.crt\n"
                    "  key: /etc/phantom/tls.key\n"
                    "limits:\n"
                    "  max_message_size: 64MiB\n"
                    "  max_connections: 500\n"
                    "  buffer_size: 32KiB\n"
                    "  connect_timeout: 5s\n"
                    "  shutdown_timeout: 1m\n"
                    "log: {level: warn, format: json}\n"
                    "encrypt:\n"
                    "  customers:\n"
                    "    - email: deterministic\n";
    ph_config c;
    char err[256];
    ph_config_defaults(&c);
    assert_int_equal(load(&c, y, err, sizeof err), 0);
    assert_string_equal(c.listen, "0.0.0.0:6432");
    assert_string_equal(c.target, "db.internal:5432");
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.sslmode, PH_SSLMODE_VERIFY_FULL);
    assert_string_equal(c.sslrootcert, "/etc/ssl/ca.pem");
    assert_string_equal(c.client_tls_cert, "/etc/phantom/tls.crt");
    assert_string_equal(c.client_tls_key, "/etc/phantom/tls.key");
    assert_int_equal(c.max_message_size, 64u << 20);
    assert_int_equal(c.max_connections, 500);
    assert_int_equal(c.buffer_size, 32u << 10);
    assert_int_equal(c.connect_timeout_ms, 5000);
    assert_int_equal(c.shutdown_timeout_ms, 60000);
    assert_int_equal(c.log_level, PH_LOG_WARN);
    assert_int_equal(c.log_format, PH_LOG_JSON);
    assert_int_equal(ph_config_validate(&c, err, sizeof err), 0);
    ph_config_free(&c);
}

/* Each broken document must name the right line and say why. */
static void test_yaml_errors(void **state)
{
    (void)state;
    static const struct {
        const char *yaml, *expect;
    } cases[] = {
        {"target: a:1\nbogus: 1\n", "t.yaml:2: unknown setting \"bogus\""},
        {"target: a:1\nlimits:\n  max_connections: 0\n", "t.yaml:3: limits.max_connections"},
        {"limits:\n  nope: 1\n", "t.yaml:2: unknown setting \"nope\" in \"limits\""},
        {"limits: 5\n", "t.yaml:1: \"limits\" must be a mapping"},
        {"target: [a, b]\n", "t.yaml:1: expected a single value"},
        {"- a\n- b\n", "t.yaml:1: the configuration must be a mapping"},
        {"target: a:1\nlisten: [\n", "t.yaml:3:"},
        {"upstream_tls:\n  sslmode: maybe\n", "t.yaml:2: upstream_tls.sslmode must be"},
        {"\n\nworkers: -3\n", "t.yaml:3: workers must be a whole number"},
        {"target: \"a:1\\0\"\n", "t.yaml:1: value contains a NUL byte"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ph_config c;
        char err[256] = "";
        ph_config_defaults(&c);
        assert_int_equal(load(&c, cases[i].yaml, err, sizeof err), -1);
        if (!strstr(err, cases[i].expect))
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, cases[i].expect);
        ph_config_free(&c);
    }
}

static void test_yaml_empty_and_null(void **state)
{
    (void)state;
    ph_config c;
    char err[256];
    ph_config_defaults(&c);
    assert_int_equal(load(&c, "", err, sizeof err), 0);
    assert_string_equal(c.listen, PH_DEFAULT_LISTEN);
    assert_int_equal(load(&c, "upstream_tls:\n  sslrootcert: /a\n", err, sizeof err), 0);
    assert_string_equal(c.sslrootcert, "/a");
    assert_int_equal(load(&c, "upstream_tls:\n  sslrootcert: ~\n", err, sizeof err), 0);
    assert_null(c.sslrootcert);
    ph_config_free(&c);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/phantom-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *y = "target: 10.0.0.5:5432\nlimits:\n  max_message_size: 2KiB\n";
    assert_int_equal(write(fd, y, strlen(y)), (ssize_t)strlen(y));
    close(fd);
    ph_config c;
    char err[256];
    ph_config_defaults(&c);
    assert_int_equal(ph_config_load_file(&c, path, err, sizeof err), 0);
    assert_string_equal(c.target, "10.0.0.5:5432");
    assert_int_equal(c.max_message_size, 2048);
    assert_string_equal(c.source_path, path);
    unlink(path);
    assert_int_equal(ph_config_load_file(&c, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "No such file"));
    ph_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sslmode),
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_defaults_and_validate),
        cmocka_unit_test(test_set_ranges),
        cmocka_unit_test(test_yaml_full),
        cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_yaml_empty_and_null),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
