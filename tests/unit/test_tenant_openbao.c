/*
 * test_tenant_openbao.c — per-tenant Transit keys (kek_tenant.h,
 * keys.openbao.tenant_key_prefix) against the OpenBao Transit test double
 * (tests/doubles/openbao_transit.py; no OpenBao server can be installed
 * here): a tenant's first use makes its own Transit key <prefix><tenant>
 * and wraps the tenant's DEKs with it (plain domains stay under the main
 * key); a refresh unwraps each with the right key; `phantom keys shred`
 * deletes the tenant's Transit key the way OpenBao requires (config
 * deletion_allowed, then DELETE), audited "kek.delete", and is idempotent;
 * the double refuses a DELETE without deletion_allowed, as OpenBao does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "engine/keysource.h"
#include "keys/audit.h"
#include "keys/http_client.h"
#include "keys/kek_tenant.h"
#include "keys/keyring.h"
#include "keys/keys_config.h"
#include "schema/schema.h"
#include "test_keys_fixture.h"

#define ROOT_TOKEN "root-token-5e1d"

static struct {
    char dir[64], log[128], cfg[128], keyring[128], audit[160], addr[64];
    pid_t pid;
    int port;
} g;

/* Starts the double (plain HTTP on loopback); reads "LISTENING <port>". */
static pid_t start_double(int *port)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(fds[1], 1);
        int lfd = open(g.log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (lfd >= 0)
            dup2(lfd, 2);
        close(fds[0]);
        close(fds[1]);
        const char *argv[] = {fx_python(),    fx_openbao_double(), "--token", ROOT_TOKEN,
                              "--create-key", "transit/phantom",   NULL};
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    char line[64] = {0};
    size_t n = 0;
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    while (n < sizeof line - 1 && !memchr(line, '\n', n)) {
        if (poll(&p, 1, 15000) <= 0)
            break;
        ssize_t r = read(fds[0], line + n, sizeof line - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fds[0]);
    if (sscanf(line, "LISTENING %d", port) != 1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

static long call_double(const char *method, const char *path, const char *body, char *out,
                        size_t outlen)
{
    char err[256], url[256];
    ph_http *h = ph_http_new(NULL, 5000, err, sizeof err);
    assert_non_null(h);
    snprintf(url, sizeof url, "%s%s", g.addr, path);
    ph_http_resp r;
    int rc = ph_http_request(h, method, url, ROOT_TOKEN, body, body ? strlen(body) : 0, &r, err,
                             sizeof err);
    ph_http_free(h);
    assert_int_equal(rc, 0);
    long st = r.status;
    if (out && outlen)
        snprintf(out, outlen, "%s", r.body ? r.body : "");
    ph_http_resp_free(&r);
    return st;
}

/* 1 when the double holds Transit key transit/<name>. */
static int transit_key_exists(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/transit/keys/%s", name);
    return call_double("GET", path, NULL, NULL, 0) == 200;
}

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (fx_mkdtemp(g.dir, sizeof g.dir, "phantom-tenob") != 0)
        return -1;
    snprintf(g.log, sizeof g.log, "%s/double.log", g.dir);
    snprintf(g.cfg, sizeof g.cfg, "%s/phantom.yaml", g.dir);
    snprintf(g.keyring, sizeof g.keyring, "%s/keyring.json", g.dir);
    snprintf(g.audit, sizeof g.audit, "%s/keyring.json.audit.jsonl", g.dir);
    g.pid = start_double(&g.port);
    if (g.pid < 0) {
        fprintf(stderr, "cannot start the Transit double (%s %s)\n", fx_python(),
                fx_openbao_double());
        return -1;
    }
    snprintf(g.addr, sizeof g.addr, "http://127.0.0.1:%d", g.port);
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "keys:\n"
             "  keyring: %s\n"
             "  provider: openbao\n"
             "  openbao:\n"
             "    address: %s\n"
             "    key: phantom\n"
             "    token: %s\n"
             "    tenant_key_prefix: phantom-tenant-\n"
             "encrypt:\n"
             "  customers:\n"
             "    - email: deterministic\n"
             "  plain:\n"
             "    - secret\n"
             "tenants:\n"
             "  tables:\n"
             "    customers: tenant_id\n",
             g.keyring, g.addr, ROOT_TOKEN);
    return fx_write_file(g.cfg, cfg);
}

static int teardown(void **state)
{
    (void)state;
    if (g.pid > 0) {
        kill(g.pid, SIGTERM);
        waitpid(g.pid, NULL, 0);
    }
    fx_rm_rf(g.dir);
    return 0;
}

static int keys_cmd(const char *cmd, const char *a, const char *b, const char *c)
{
    char *argv[] = {"keys", (char *)cmd, "-c", g.cfg, (char *)a, (char *)b, (char *)c, NULL};
    int argc = 4 + (a != NULL) + (b != NULL) + (c != NULL);
    return ph_cmd_keys(argc, argv);
}

/* The KEK id of the primary wrapping of the active version of domain. */
static void wrapping_kek(const char *domain, char *out, size_t len)
{
    char err[256];
    ph_keyring *kr = NULL;
    assert_int_equal(ph_keyring_load(g.keyring, 0, &kr, err, sizeof err), 0);
    const ph_wrapped_dek *w =
        ph_keyring_wrapping(ph_keyring_active(ph_keyring_domain(kr, domain)), PH_WRAP_PRIMARY);
    assert_non_null(w);
    snprintf(out, len, "%s", w->kek);
    ph_keyring_free(kr);
}

static void test_tenant_transit_keys(void **state)
{
    (void)state;
    char err[512], kek[160];
    assert_int_equal(keys_cmd("create", "plain.secret", NULL, NULL), 0);
    ph_keys_config kc;
    ph_keys_config_defaults(&kc);
    assert_int_equal(ph_keys_config_load_file(&kc, g.cfg, err, sizeof err), 0);
    assert_true(ph_kek_tenant_separate(&kc));
    char doc[2048];
    FILE *f = fopen(g.cfg, "r");
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    ph_schema *schema = NULL;
    assert_int_equal(ph_schema_load_buffer(&schema, doc, n, g.cfg, err, sizeof err), 0);
    ph_audit *audit = ph_audit_open(g.audit, err, sizeof err);
    assert_non_null(audit);
    ph_audit_set_global(audit);

    ph_keysource *ks = ph_keysource_open_live(&kc, schema, err, sizeof err);
    if (!ks)
        fail_msg("%s", err);
    assert_false(transit_key_exists("phantom-tenant-acme"));
    assert_int_equal(ph_keysource_tenant_keys(ks, "acme", "customers.email", 1, err, sizeof err),
                     PH_KS_TENANT_READY);
    assert_int_equal(ph_keysource_tenant_keys(ks, "beta", "customers.email", 1, err, sizeof err),
                     PH_KS_TENANT_READY);
    assert_true(transit_key_exists("phantom-tenant-acme")); /* made on first use */
    assert_true(transit_key_exists("phantom-tenant-beta"));
    wrapping_kek("tenant:acme/customers.email", kek, sizeof kek);
    assert_non_null(strstr(kek, "/keys/phantom-tenant-acme"));
    wrapping_kek("plain.secret", kek, sizeof kek);
    assert_non_null(strstr(kek, "/keys/phantom"));
    assert_null(strstr(kek, "tenant"));
    /* a refresh unwraps each DEK with its own Transit key */
    assert_int_equal(ph_keysource_refresh_now(ks, err, sizeof err), 0);
    const ph_keysource *t = ph_keysource_acquire(ks);
    assert_non_null(ph_keysource_write_key(t, "tenant:acme/customers.email"));
    assert_non_null(ph_keysource_write_key(t, "tenant:beta/customers.email"));
    ph_keysource_release(ks, t);
    ph_keysource_free(ks);
    ph_audit_set_global(NULL);
    ph_audit_close(audit);
    assert_int_equal(keys_cmd("check", NULL, NULL, NULL), 0); /* the CLI finds each one's KEK */

    /* the double refuses to delete a key whose deletion is not allowed (as OpenBao does) */
    char body[512];
    assert_int_equal(
        call_double("DELETE", "/v1/transit/keys/phantom-tenant-beta", NULL, body, sizeof body),
        400);
    assert_non_null(strstr(body, "deletion is not allowed for this key"));
    assert_true(transit_key_exists("phantom-tenant-beta"));

    /* shred: the keyring's wrappings, then the tenant's Transit key */
    assert_int_equal(keys_cmd("shred", "--tenant", "acme", "--yes"), 0);
    assert_false(transit_key_exists("phantom-tenant-acme"));
    assert_true(transit_key_exists("phantom-tenant-beta"));
    assert_true(transit_key_exists("phantom"));
    assert_int_equal(fx_count_lines(g.audit, "\"event\":\"kek.delete\",\"outcome\":\"ok\""), 1);
    /* again: nothing left, the missing key is fine */
    assert_int_equal(keys_cmd("shred", "--tenant", "acme", "--yes"), 0);
    assert_int_equal(fx_count_lines(g.audit, "(no such key)"), 1);
    assert_int_equal(keys_cmd("check", NULL, NULL, NULL), 0); /* beta and plain still unwrap */
    ph_schema_free(schema);
    ph_keys_config_free(&kc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_transit_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
