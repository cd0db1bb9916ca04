/*
 * test_kek_openbao.c — the `openbao` KEK provider against the Transit test
 * double (tests/doubles/openbao_transit.py; no OpenBao server can be
 * installed here).
 *
 * The group setup makes a throwaway CA and server certificate with the
 * openssl CLI, a second unrelated CA, a Kubernetes service-account JWT file,
 * and starts two doubles (HTTPS and plain HTTP on 127.0.0.1, random ports).
 * Tests talk to the doubles through the provider and steer them through the
 * double's /_double/ control endpoints (fault injection, token revocation).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "keys/http_client.h"
#include "keys/kek.h"
#include "keys/kek_openbao.h"

#include "test_keys_fixture.h"

#define ROOT_TOKEN "root-token-7f3a9c"
#define K8S_JWT    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwaGFudG9tIn0.c2lnbmF0dXJl"
#define K8S_ROLE   "phantom"

static struct {
    char dir[64];
    char ca[128], other_ca[128], cert[128], key[128], jwt[128], log[128];
    pid_t https_pid, http_pid;
    int https_port, http_port;
    char https_addr[64], http_addr[64];
} g;

/* ------------------------------------------------------------------------ */
/* Fixture                                                                   */

static int make_certs(void)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "cd %s && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
             "-out ca.crt -days 2 -subj /CN=phantom-test-ca && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "
             "other.key -out other-ca.crt -days 2 -subj /CN=someone-else && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key "
             "-out server.csr -subj /CN=localhost && "
             "printf 'subjectAltName=DNS:localhost\\n' > ext.cnf && "
             "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out server.crt -days 2 -extfile ext.cnf",
             g.dir);
    char full[4200];
    snprintf(full, sizeof(full), "(%s) >%s/openssl.log 2>&1", cmd, g.dir);
    return system(full) == 0 ? 0 : -1;
}

/* Starts the double; reads "LISTENING <port>" from its stdout. */
static pid_t start_double(int tls, int *port)
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
        const char *argv[24];
        int a = 0;
        argv[a++] = fx_python();
        argv[a++] = fx_openbao_double();
        argv[a++] = "--token";
        argv[a++] = ROOT_TOKEN;
        argv[a++] = "--k8s-role";
        argv[a++] = K8S_ROLE;
        argv[a++] = "--k8s-jwt";
        argv[a++] = K8S_JWT;
        argv[a++] = "--create-key";
        argv[a++] = "transit/phantom";
        if (tls) {
            argv[a++] = "--cert";
            argv[a++] = g.cert;
            argv[a++] = "--key";
            argv[a++] = g.key;
        }
        argv[a] = NULL;
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    char line[64] = {0};
    size_t n = 0;
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    while (n < sizeof(line) - 1 && !memchr(line, '\n', n)) {
        if (poll(&p, 1, 15000) <= 0)
            break;
        ssize_t r = read(fds[0], line + n, sizeof(line) - 1 - n);
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

static void stop_double(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (fx_mkdtemp(g.dir, sizeof(g.dir), "phantom-obt") != 0)
        return -1;
    snprintf(g.ca, sizeof(g.ca), "%s/ca.crt", g.dir);
    snprintf(g.other_ca, sizeof(g.other_ca), "%s/other-ca.crt", g.dir);
    snprintf(g.cert, sizeof(g.cert), "%s/server.crt", g.dir);
    snprintf(g.key, sizeof(g.key), "%s/server.key", g.dir);
    snprintf(g.jwt, sizeof(g.jwt), "%s/sa-token", g.dir);
    snprintf(g.log, sizeof(g.log), "%s/double.log", g.dir);
    if (make_certs() != 0 || fx_write_file(g.jwt, K8S_JWT "\n") != 0)
        return -1;
    g.https_pid = start_double(1, &g.https_port);
    g.http_pid = start_double(0, &g.http_port);
    if (g.https_pid < 0 || g.http_pid < 0) {
        fprintf(stderr, "cannot start the Transit double (%s %s)\n", fx_python(),
                fx_openbao_double());
        return -1;
    }
    snprintf(g.https_addr, sizeof(g.https_addr), "https://localhost:%d", g.https_port);
    snprintf(g.http_addr, sizeof(g.http_addr), "http://127.0.0.1:%d", g.http_port);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    stop_double(g.https_pid);
    stop_double(g.http_pid);
    fx_rm_rf(g.dir);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* One request to the HTTPS double (control or API); returns the status. */
static long call_double(const char *method, const char *path, const char *body, const char *token,
                        char *out, size_t outlen)
{
    char err[256], url[256];
    ph_http *h = ph_http_new(g.ca, 5000, err, sizeof(err));
    assert_non_null(h);
    snprintf(url, sizeof(url), "%s%s", g.https_addr, path);
    ph_http_resp r;
    int rc =
        ph_http_request(h, method, url, token, body, body ? strlen(body) : 0, &r, err, sizeof(err));
    ph_http_free(h);
    assert_int_equal(rc, 0);
    long st = r.status;
    if (out && outlen)
        snprintf(out, outlen, "%s", r.body ? r.body : "");
    ph_http_resp_free(&r);
    return st;
}

static void fault(const char *json)
{
    assert_int_equal(call_double("POST", "/_double/fault", json, NULL, NULL, 0), 204);
}

static long stat_field(const char *field)
{
    char body[2048], pat[64];
    assert_int_equal(call_double("GET", "/_double/stats", NULL, NULL, body, sizeof(body)), 200);
    snprintf(pat, sizeof(pat), "\"%s\": ", field);
    const char *p = strstr(body, pat);
    assert_non_null(p);
    return strtol(p + strlen(pat), NULL, 10);
}

static void create_transit_key(const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/transit/keys/%s", name);
    assert_int_equal(call_double("POST", path, "{}", ROOT_TOKEN, NULL, 0), 200);
}

static ph_keys_openbao_cfg base_cfg(const char *key)
{
    ph_keys_openbao_cfg c;
    memset(&c, 0, sizeof(c));
    c.address = g.https_addr;
    c.mount = "transit";
    c.key_name = (char *)key;
    c.token = ROOT_TOKEN;
    c.ca_file = g.ca;
    c.timeout_ms = 5000;
    return c;
}

static ph_kek *open_ok(const ph_keys_openbao_cfg *c)
{
    char err[256] = "";
    ph_kek *k = ph_kek_openbao_open(c, err, sizeof(err));
    if (!k)
        fail_msg("open failed: %s", err);
    assert_string_equal(k->ops->kind, "openbao");
    return k;
}

static void random_dek(uint8_t *dek)
{
    assert_int_equal(RAND_bytes(dek, PH_DEK_LEN), 1);
}

static int blob_has_prefix(const uint8_t *b, size_t n, const char *prefix)
{
    size_t pl = strlen(prefix);
    return n > pl && memcmp(b, prefix, pl) == 0;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */

/* generate (datakey/plaintext), wrap (encrypt) and unwrap (decrypt) agree. */
static void test_round_trip(void **state)
{
    (void)state;
    ph_keys_openbao_cfg c = base_cfg("phantom");
    ph_kek *k = open_ok(&c);
    char err[256];
    uint8_t dek[PH_DEK_LEN], back[PH_DEK_LEN], *blob = NULL;
    size_t blen = 0;

    assert_int_equal(ph_kek_generate(k, dek, &blob, &blen, err, sizeof(err)), 0);
    assert_true(blob_has_prefix(blob, blen, "vault:v1:"));
    assert_null(memchr(blob, 0, blen));
    assert_false(fx_all_zero(dek, sizeof(dek)));
    assert_int_equal(ph_kek_unwrap(k, blob, blen, back, err, sizeof(err)), 0);
    assert_memory_equal(dek, back, PH_DEK_LEN);
    free(blob);

    random_dek(dek);
    assert_int_equal(ph_kek_wrap(k, dek, &blob, &blen, err, sizeof(err)), 0);
    assert_true(blob_has_prefix(blob, blen, "vault:v1:"));
    memset(back, 0, sizeof(back));
    assert_int_equal(ph_kek_unwrap(k, blob, blen, back, err, sizeof(err)), 0);
    assert_memory_equal(dek, back, PH_DEK_LEN);

    /* A second wrap of the same DEK differs (random nonce) and also unwraps. */
    uint8_t *blob2 = NULL;
    size_t blen2 = 0;
    assert_int_equal(ph_kek_wrap(k, dek, &blob2, &blen2, err, sizeof(err)), 0);
    assert_false(blen == blen2 && memcmp(blob, blob2, blen) == 0);
    free(blob);
    free(blob2);
    assert_true(strstr(k->id, "openbao:") == k->id);
    ph_kek_destroy(k);
}

/* rotate: old ciphertext still unwraps, new wraps use v2, rewrap upgrades,
 * min_decryption_version retires v1. */
static void test_rotation_and_versions(void **state)
{
    (void)state;
    create_transit_key("rot");
    ph_keys_openbao_cfg c = base_cfg("rot");
    ph_kek *k = open_ok(&c);
    char err[256];
    uint8_t d1[PH_DEK_LEN], d2[PH_DEK_LEN], back[PH_DEK_LEN], *b1, *b2, *b1r;
    size_t l1, l2, l1r;
    ph_openbao_key_info info;

    random_dek(d1);
    random_dek(d2);
    assert_int_equal(ph_kek_wrap(k, d1, &b1, &l1, err, sizeof(err)), 0);
    assert_true(blob_has_prefix(b1, l1, "vault:v1:"));
    assert_int_equal(ph_kek_openbao_key_info(k, &info, err, sizeof(err)), 0);
    assert_int_equal(info.latest_version, 1);

    assert_int_equal(ph_kek_rotate(k, err, sizeof(err)), 0);
    assert_int_equal(ph_kek_openbao_key_info(k, &info, err, sizeof(err)), 0);
    assert_int_equal(info.latest_version, 2);

    assert_int_equal(ph_kek_wrap(k, d2, &b2, &l2, err, sizeof(err)), 0);
    assert_true(blob_has_prefix(b2, l2, "vault:v2:"));
    assert_int_equal(ph_kek_unwrap(k, b1, l1, back, err, sizeof(err)), 0);
    assert_memory_equal(back, d1, PH_DEK_LEN);

    assert_int_equal(ph_kek_rewrap(k, b1, l1, &b1r, &l1r, err, sizeof(err)), 0);
    assert_true(blob_has_prefix(b1r, l1r, "vault:v2:"));
    assert_int_equal(ph_kek_unwrap(k, b1r, l1r, back, err, sizeof(err)), 0);
    assert_memory_equal(back, d1, PH_DEK_LEN);

    /* Retire v1 on the server: the old blob is refused, the rewrapped one is not. */
    assert_int_equal(call_double("POST", "/v1/transit/keys/rot/config",
                                 "{\"min_decryption_version\":2}", ROOT_TOKEN, NULL, 0),
                     200);
    assert_int_equal(ph_kek_openbao_key_info(k, &info, err, sizeof(err)), 0);
    assert_int_equal(info.min_decryption_version, 2);
    memset(back, 0xAA, sizeof(back));
    assert_int_equal(ph_kek_unwrap(k, b1, l1, back, err, sizeof(err)), -1);
    fx_expect_err(err, "HTTP 400");
    fx_expect_err(err, "too old");
    assert_true(fx_all_zero(back, sizeof(back)));
    assert_int_equal(ph_kek_unwrap(k, b1r, l1r, back, err, sizeof(err)), 0);
    assert_memory_equal(back, d1, PH_DEK_LEN);
    free(b1);
    free(b2);
    free(b1r);
    ph_kek_destroy(k);
}

/* Altered or foreign blobs fail closed; malformed ones are refused locally. */
static void test_tampered_and_malformed_blobs(void **state)
{
    (void)state;
    ph_keys_openbao_cfg c = base_cfg("phantom");
    ph_kek *k = open_ok(&c);
    char err[256];
    uint8_t dek[PH_DEK_LEN], back[PH_DEK_LEN], *b;
    size_t l;
    random_dek(dek);
    assert_int_equal(ph_kek_wrap(k, dek, &b, &l, err, sizeof(err)), 0);
    size_t i = l - 6; /* inside the base64 tag, away from padding */
    b[i] = b[i] == 'A' ? 'B' : 'A';
    assert_int_equal(ph_kek_unwrap(k, b, l, back, err, sizeof(err)), -1);
    fx_expect_err(err, "message authentication failed");

    long before = stat_field("requests");
    static const char *const bad[] = {"plain", "vault:v1", "vault:vX:AAAA", "vault:v1:AA\"AA",
                                      "vault:v1:AA\nAA"};
    for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
        assert_int_equal(
            ph_kek_unwrap(k, (const uint8_t *)bad[j], strlen(bad[j]), back, err, sizeof(err)), -1);
        fx_expect_err(err, "not a Transit ciphertext");
    }
    uint8_t *out = NULL;
    size_t ol = 0;
    assert_int_equal(ph_kek_rewrap(k, (const uint8_t *)"x", 1, &out, &ol, err, sizeof(err)), -1);
    assert_null(out);
    assert_int_equal(stat_field("requests"), before); /* nothing was sent */
    free(b);
    ph_kek_destroy(k);
}

/* A wrong token is a clear 403 error that never quotes the token. */
static void test_bad_token(void **state)
{
    (void)state;
    ph_keys_openbao_cfg c = base_cfg("phantom");
    c.token = "s.not-the-right-token-91";
    ph_kek *k = open_ok(&c);
    char err[256];
    uint8_t dek[PH_DEK_LEN], *b = (uint8_t *)"junk";
    size_t l = 4;
    random_dek(dek);
    assert_int_equal(ph_kek_wrap(k, dek, &b, &l, err, sizeof(err)), -1);
    assert_null(b);
    assert_int_equal(l, 0);
    assert_string_equal(err, "openbao wrap: permission denied (HTTP 403)");
    assert_null(strstr(err, "not-the-right-token"));
    assert_int_equal(ph_kek_rotate(k, err, sizeof(err)), -1);
    fx_expect_err(err, "permission denied");
    ph_kek_destroy(k);
}

/* token_file: re-read after a 403, so a renewed token is picked up. */
static void test_token_file_reread(void **state)
{
    (void)state;
    char path[160], err[256];
    snprintf(path, sizeof(path), "%s/token", g.dir);
    assert_int_equal(fx_write_file(path, ROOT_TOKEN "\n"), 0);
    ph_keys_openbao_cfg c = base_cfg("phantom");
    c.token = NULL;
    c.token_file = path;
    ph_kek *k = open_ok(&c);
    uint8_t dek[PH_DEK_LEN], back[PH_DEK_LEN], *b;
    size_t l;
    random_dek(dek);
    assert_int_equal(ph_kek_wrap(k, dek, &b, &l, err, sizeof(err)), 0);

    /* The server now wants another token; the file still has the old one. */
    assert_int_equal(
        call_double("POST", "/_double/set_static", "{\"token\":\"s.second-token\"}", NULL, NULL, 0),
        204);
    assert_int_equal(ph_kek_unwrap(k, b, l, back, err, sizeof(err)), -1);
    fx_expect_err(err, "permission denied");
    /* The agent writes the new token: the next call succeeds after one 403. */
    assert_int_equal(fx_write_file(path, "s.second-token\n"), 0);
    assert_int_equal(ph_kek_unwrap(k, b, l, back, err, sizeof(err)), 0);
    assert_memory_equal(back, dek, PH_DEK_LEN);
    assert_int_equal(
        call_double("POST", "/_double/set_static", "{\"token\":\"" ROOT_TOKEN "\"}", NULL, NULL, 0),
        204);
    free(b);
    ph_kek_destroy(k);

    /* An empty or missing token file is an open error. */
    assert_int_equal(fx_write_file(path, "\n"), 0);
    assert_null(ph_kek_openbao_open(&c, err, sizeof(err)));
    fx_expect_err(err, "is empty");
    c.token_file = "/nonexistent/token";
    assert_null(ph_kek_openbao_open(&c, err, sizeof(err)));
    fx_expect_err(err, "/nonexistent/token");
}

static ph_keys_openbao_cfg k8s_cfg(void)
{
    ph_keys_openbao_cfg c = base_cfg("phantom");
    c.token = NULL;
    c.kubernetes_role = K8S_ROLE;
    c.kubernetes_jwt_path = g.jwt;
    return c;
}

/* Kubernetes auth: login on first use, again after a 403 (revoked token). */
static void test_kubernetes_login(void **state)
{
    (void)state;
    ph_keys_openbao_cfg c = k8s_cfg();
    long logins0 = stat_field("logins");
    ph_kek *k = open_ok(&c);
    assert_int_equal(stat_field("logins"), logins0); /* nothing sent at open */
    char err[256];
    uint8_t dek[PH_DEK_LEN], back[PH_DEK_LEN], *b;
    size_t l;
    assert_int_equal(ph_kek_generate(k, dek, &b, &l, err, sizeof(err)), 0);
    assert_int_equal(stat_field("logins"), logins0 + 1);
    assert_int_equal(ph_kek_unwrap(k, b, l, back, err, sizeof(err)), 0);
    assert_memory_equal(back, dek, PH_DEK_LEN);
    assert_int_equal(stat_field("logins"), logins0 + 1); /* token reused */

    assert_int_equal(call_double("POST", "/_double/revoke", NULL, NULL, NULL, 0), 204);
    memset(back, 0, sizeof(back));
    assert_int_equal(ph_kek_unwrap(k, b, l, back, err, sizeof(err)), 0);
    assert_memory_equal(back, dek, PH_DEK_LEN);
    assert_int_equal(stat_field("logins"), logins0 + 2);
    free(b);
    ph_kek_destroy(k);
}

/* A short lease is renewed by logging in again before it runs out. */
static void test_kubernetes_lease_renewal(void **state)
{
    (void)state;
    assert_int_equal(call_double("POST", "/_double/set_k8s_ttl", "{\"ttl\":1}", NULL, NULL, 0),
                     204);
    ph_keys_openbao_cfg c = k8s_cfg();
    ph_kek *k = open_ok(&c);
    char err[256];
    uint8_t dek[PH_DEK_LEN], *b;
    size_t l;
    long logins0 = stat_field("logins");
    assert_int_equal(ph_kek_generate(k, dek, &b, &l, err, sizeof(err)), 0);
    free(b);
    assert_int_equal(ph_kek_generate(k, dek, &b, &l, err, sizeof(err)), 0);
    free(b);
    /* lease 1 s: renewal point is "now", so each call logs in again */
    assert_int_equal(stat_field("logins"), logins0 + 2);
    assert_int_equal(call_double("POST", "/_double/set_k8s_ttl", "{\"ttl\":3600}", NULL, NULL, 0),
                     204);
    ph_kek_destroy(k);
}

/* Login failures are clear and never quote the JWT. */
static void test_kubernetes_login_errors(void **state)
{
    (void)state;
    char err[256], badjwt[160];
    uint8_t dek[PH_DEK_LEN], *b = NULL;
    size_t l = 0;
    random_dek(dek);

    ph_keys_openbao_cfg c = k8s_cfg();
    c.kubernetes_role = "intruder";
    ph_kek *k = open_ok(&c);
    assert_int_equal(ph_kek_wrap(k, dek, &b, &l, err, sizeof(err)), -1);
    fx_expect_err(err,
                  "openbao login: request rejected (HTTP 400): invalid role name \"intruder\"");
    ph_kek_destroy(k);

    snprintf(badjwt, sizeof(badjwt), "%s/bad-sa-token", g.dir);
    assert_int_equal(fx_write_file(badjwt, "eyJmb3JnZWQiOnRydWV9.eyJ4IjoxfQ.c2ln\n"), 0);
    c = k8s_cfg();
    c.kubernetes_jwt_path = badjwt;
    k = open_ok(&c);
    assert_int_equal(ph_kek_wrap(k, dek, &b, &l, err, sizeof(err)), -1);
    fx_expect_err(err, "openbao login: permission denied (HTTP 403)");
    assert_null(strstr(err, "eyJ"));
    ph_kek_destroy(k);

    c = k8s_cfg();
    c.kubernetes_jwt_path = "/nonexistent/sa-token";
    assert_null(ph_kek_openbao_open(&c, err, sizeof(err)));
    fx_expect_err(err, "kubernetes_jwt_path");
}

/* 5xx and injected 403 answers map to clear errors; the next call recovers. */
static void test_server_errors(void **state)
{
    (void)state;
    ph_keys_openbao_cfg c = base_cfg("phantom");
    ph_kek *k = open_ok(&c);
    char err[256];
    uint8_t dek[PH_DEK_LEN], back[PH_DEK_LEN], *b, *o;
    size_t l, ol;
    random_dek(dek);
    assert_int_equal(ph_kek_wrap(k, dek, &b, &l, err, sizeof(err)), 0);

    fault("{\"mode\":\"status\",\"status\":500,\"message\":\"internal error\"}");
    assert_int_equal(ph_kek_unwrap(k, b, l, back, err, sizeof(err)), -1);
    assert_string_equal(err, "openbao unwrap: server error (HTTP 500): internal error");

    fault("{\"mode\":\"status\",\"status\":503}");
    assert_int_equal(ph_kek_rewrap(k, b, l, &o, &ol, err, sizeof(err)), -1);
    assert_string_equal(err, "openbao rewrap: server error (HTTP 503): Vault is sealed");

    fault("{\"mode\":\"status\",\"status\":403}");
    assert_int_equal(ph_kek_generate(k, back, &o, &ol, err, sizeof(err)), -1);
    assert_string_equal(err, "openbao generate: permission denied (HTTP 403)");
    assert_true(fx_all_zero(back, sizeof(back)));

    assert_int_equal(ph_kek_unwrap(k, b, l, back, err, sizeof(err)), 0);
    assert_memory_equal(back, dek, PH_DEK_LEN);
    free(b);
    ph_kek_destroy(k);
}

/* A hanging server hits timeout_ms; the provider works again afterwards. */
static void test_timeout(void **state)
{
    (void)state;
    ph_keys_openbao_cfg c = base_cfg("phantom");
    c.timeout_ms = 300;
    ph_kek *k = open_ok(&c);
    char err[256];
    uint8_t dek[PH_DEK_LEN], *b = NULL;
    size_t l = 0;
    random_dek(dek);
    fault("{\"mode\":\"hang\",\"seconds\":2}");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(ph_kek_wrap(k, dek, &b, &l, err, sizeof(err)), -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(secs < 1.5);
    assert_string_equal(err, "openbao wrap: timed out after 300 ms");
    assert_int_equal(ph_kek_wrap(k, dek, &b, &l, err, sizeof(err)), 0);
    free(b);
    ph_kek_destroy(k);
}

/* Truncated JSON and answers without the expected fields fail closed. */
static void test_bad_answers(void **state)
{
    (void)state;
    ph_keys_openbao_cfg c = base_cfg("phantom");
    ph_kek *k = open_ok(&c);
    char err[256];
    uint8_t dek[PH_DEK_LEN], back[PH_DEK_LEN], *b, *o = NULL;
    size_t l, ol = 0;
    random_dek(dek);
    assert_int_equal(ph_kek_wrap(k, dek, &b, &l, err, sizeof(err)), 0);

    fault("{\"mode\":\"bad_json\"}");
    memset(back, 0x55, sizeof(back));
    assert_int_equal(ph_kek_unwrap(k, b, l, back, err, sizeof(err)), -1);
    fx_expect_err(err, "openbao unwrap: malformed answer: response is not valid JSON");
    assert_true(fx_all_zero(back, sizeof(back)));

    fault("{\"mode\":\"wrong_shape\"}");
    assert_int_equal(ph_kek_unwrap(k, b, l, back, err, sizeof(err)), -1);
    fx_expect_err(err, "no valid 32-byte data.plaintext");

    fault("{\"mode\":\"wrong_shape\"}");
    assert_int_equal(ph_kek_wrap(k, dek, &o, &ol, err, sizeof(err)), -1);
    fx_expect_err(err, "no valid data.ciphertext");
    assert_null(o);

    fault("{\"mode\":\"wrong_shape\"}");
    assert_int_equal(ph_kek_generate(k, back, &o, &ol, err, sizeof(err)), -1);
    assert_true(fx_all_zero(back, sizeof(back)));
    free(b);
    ph_kek_destroy(k);
}

/* TLS verification is always on: an unrelated CA or the system store fails. */
static void test_tls_verification(void **state)
{
    (void)state;
    char err[256];
    uint8_t dek[PH_DEK_LEN], *b = NULL;
    size_t l = 0;
    random_dek(dek);
    ph_keys_openbao_cfg c = base_cfg("phantom");
    c.ca_file = g.other_ca;
    ph_kek *k = open_ok(&c);
    assert_int_equal(ph_kek_wrap(k, dek, &b, &l, err, sizeof(err)), -1);
    fx_expect_err(err, "openbao wrap: TLS failure");
    ph_kek_destroy(k);

    c.ca_file = NULL; /* system trust store: does not know the test CA */
    k = open_ok(&c);
    assert_int_equal(ph_kek_wrap(k, dek, &b, &l, err, sizeof(err)), -1);
    fx_expect_err(err, "TLS failure");
    ph_kek_destroy(k);

    /* Host name check: the certificate names DNS:localhost only, so the same
     * server reached as 127.0.0.1 is refused even with the right CA. */
    char addr[64];
    snprintf(addr, sizeof(addr), "https://127.0.0.1:%d", g.https_port);
    c = base_cfg("phantom");
    c.address = addr;
    k = open_ok(&c);
    assert_int_equal(ph_kek_wrap(k, dek, &b, &l, err, sizeof(err)), -1);
    fx_expect_err(err, "openbao wrap: TLS failure");
    ph_kek_destroy(k);
}

/* http:// works towards loopback only; unreachable servers fail clearly. */
static void test_plain_http_and_unreachable(void **state)
{
    (void)state;
    char err[256];
    uint8_t dek[PH_DEK_LEN], back[PH_DEK_LEN], *b;
    size_t l;
    ph_keys_openbao_cfg c = base_cfg("phantom");
    c.address = g.http_addr;
    c.ca_file = NULL;
    ph_kek *k = open_ok(&c);
    assert_int_equal(ph_kek_generate(k, dek, &b, &l, err, sizeof(err)), 0);
    assert_int_equal(ph_kek_unwrap(k, b, l, back, err, sizeof(err)), 0);
    assert_memory_equal(back, dek, PH_DEK_LEN);
    free(b);
    ph_kek_destroy(k);

    static const char *const remote[] = {"http://bao.example.com:8200", "http://127.evil.example",
                                         "http://10.0.0.1:8200", "http://[::2]:8200",
                                         "http://localhost.example.com"};
    for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
        c.address = (char *)remote[i];
        assert_null(ph_kek_openbao_open(&c, err, sizeof(err)));
        fx_expect_err(err, "only allowed to a loopback address");
    }
    static const char *const local[] = {"http://localhost:8200", "http://127.0.0.53:1",
                                        "http://[::1]:8200", "http://localhost"};
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
        c.address = (char *)local[i];
        k = ph_kek_openbao_open(&c, err, sizeof(err));
        assert_non_null(k);
        ph_kek_destroy(k);
    }

    c = base_cfg("phantom");
    c.address = "https://127.0.0.1:1";
    c.timeout_ms = 2000;
    k = open_ok(&c);
    assert_int_equal(ph_kek_wrap(k, dek, &b, &l, err, sizeof(err)), -1);
    fx_expect_err(err, "openbao wrap: ");
    assert_null(strstr(err, ROOT_TOKEN));
    ph_kek_destroy(k);
}

/* Settings are validated at open, with clear errors. */
static void test_config_validation(void **state)
{
    (void)state;
    char err[256];
    ph_keys_openbao_cfg c;

    c = base_cfg("phantom");
    c.address = NULL;
    assert_null(ph_kek_openbao_open(&c, err, sizeof(err)));
    fx_expect_err(err, "address is required");

    c = base_cfg("phantom");
    c.address = "ftp://127.0.0.1";
    assert_null(ph_kek_openbao_open(&c, err, sizeof(err)));
    fx_expect_err(err, "https://");

    c = base_cfg(NULL);
    assert_null(ph_kek_openbao_open(&c, err, sizeof(err)));
    fx_expect_err(err, "key");

    c = base_cfg("a/b");
    assert_null(ph_kek_openbao_open(&c, err, sizeof(err)));
    fx_expect_err(err, "key");

    c = base_cfg("phantom");
    c.mount = "../sys";
    assert_null(ph_kek_openbao_open(&c, err, sizeof(err)));
    fx_expect_err(err, "invalid mount");

    c = base_cfg("phantom");
    c.kubernetes_role = K8S_ROLE;
    assert_null(ph_kek_openbao_open(&c, err, sizeof(err)));
    fx_expect_err(err, "exactly one of token, token_file, kubernetes_role");

    c = base_cfg("phantom");
    c.token = NULL;
    assert_null(ph_kek_openbao_open(&c, err, sizeof(err)));
    fx_expect_err(err, "exactly one");

    c = base_cfg("phantom");
    c.token = "s.abc\r\nX-Injected: 1";
    assert_null(ph_kek_openbao_open(&c, err, sizeof(err)));
    fx_expect_err(err, "invalid characters");
    assert_null(strstr(err, "s.abc"));

    c = base_cfg("phantom");
    c.ca_file = "/nonexistent/ca.pem";
    assert_null(ph_kek_openbao_open(&c, err, sizeof(err)));
    fx_expect_err(err, "ca_file");

    assert_null(ph_kek_openbao_open(NULL, err, sizeof(err)));

    /* Defaults: mount "transit", trailing '/' of the address ignored. */
    char addr[80];
    snprintf(addr, sizeof(addr), "%s/", g.https_addr);
    c = base_cfg("phantom");
    c.address = addr;
    c.mount = NULL;
    c.timeout_ms = 0;
    ph_kek *k = open_ok(&c);
    uint8_t dek[PH_DEK_LEN], *b;
    size_t l;
    assert_int_equal(ph_kek_generate(k, dek, &b, &l, err, sizeof(err)), 0);
    free(b);
    ph_openbao_key_info info;
    assert_int_equal(ph_kek_openbao_key_info(k, &info, err, sizeof(err)), 0);
    ph_kek_destroy(k);
}

/* A Transit key that does not exist is reported, not silently created. */
static void test_missing_transit_key(void **state)
{
    (void)state;
    ph_keys_openbao_cfg c = base_cfg("does-not-exist");
    ph_kek *k = open_ok(&c);
    char err[256];
    uint8_t dek[PH_DEK_LEN], *b = NULL;
    size_t l = 0;
    assert_int_equal(ph_kek_generate(k, dek, &b, &l, err, sizeof(err)), -1);
    assert_string_equal(err,
                        "openbao generate: request rejected (HTTP 400): encryption key not found");
    ph_openbao_key_info info;
    assert_int_equal(ph_kek_openbao_key_info(k, &info, err, sizeof(err)), -1);
    fx_expect_err(err, "not found (HTTP 404)");
    ph_kek_destroy(k);
    assert_int_equal(ph_kek_openbao_key_info(NULL, &info, err, sizeof(err)), -1);
}

/* ph_kek_openbao_create_key (`keys init-kek`): creates the Transit key
 * (here with a Kubernetes login), leaves an existing one unchanged, refuses
 * a weak existing type, and names server failures. */
static void test_create_key(void **state)
{
    (void)state;
    char err[256] = "";
    ph_kek_created made;
    ph_keys_openbao_cfg c = k8s_cfg();
    c.key_name = "made-by-init-kek";
    long logins0 = stat_field("logins");
    if (ph_kek_openbao_create_key(&c, &made, err, sizeof(err)) != 0)
        fail_msg("create failed: %s", err);
    assert_int_equal(made.existed, 0);
    assert_int_equal(made.version, 1);
    assert_string_equal(made.type, "aes256-gcm96");
    assert_true(stat_field("logins") > logins0); /* created under the Kubernetes login */

    ph_kek *k = open_ok(&c); /* the new key wraps */
    uint8_t dek[PH_DEK_LEN], back[PH_DEK_LEN], *b = NULL;
    size_t l = 0;
    random_dek(dek);
    assert_int_equal(ph_kek_wrap(k, dek, &b, &l, err, sizeof(err)), 0);
    assert_int_equal(ph_kek_rotate(k, err, sizeof(err)), 0);

    c = base_cfg("made-by-init-kek"); /* again, with a token: left unchanged */
    assert_int_equal(ph_kek_openbao_create_key(&c, &made, err, sizeof(err)), 0);
    assert_int_equal(made.existed, 1);
    assert_int_equal(made.version, 2);
    assert_int_equal(ph_kek_unwrap(k, b, l, back, err, sizeof(err)), 0);
    assert_memory_equal(back, dek, PH_DEK_LEN);
    free(b);
    ph_kek_destroy(k);

    assert_int_equal(call_double("POST", "/v1/transit/keys/weak-one", "{\"type\":\"aes128-gcm96\"}",
                                 ROOT_TOKEN, NULL, 0),
                     200);
    c = base_cfg("weak-one");
    assert_int_equal(ph_kek_openbao_create_key(&c, &made, err, sizeof(err)), -1);
    assert_string_equal(err, "openbao create key: Transit key weak-one exists with type "
                             "aes128-gcm96; phantom needs a 256-bit AEAD key (aes256-gcm96 or "
                             "chacha20-poly1305)");

    c = base_cfg("made-by-init-kek");
    fault("{\"mode\":\"status\",\"status\":404,\"message\":\"no handler for route\"}");
    assert_int_equal(ph_kek_openbao_create_key(&c, &made, err, sizeof(err)), -1);
    assert_string_equal(err,
                        "openbao create key: not found (is Transit mounted there?) (HTTP 404): "
                        "no handler for route");
    fault("{\"mode\":\"status\",\"status\":503}");
    assert_int_equal(ph_kek_openbao_create_key(&c, &made, err, sizeof(err)), -1);
    assert_string_equal(err, "openbao create key: server error (HTTP 503): Vault is sealed");
    fault("{\"mode\":\"wrong_shape\"}");
    assert_int_equal(ph_kek_openbao_create_key(&c, &made, err, sizeof(err)), -1);
    assert_string_equal(err, "openbao create key: answer lacks data.type / data.latest_version");

    c.token = "not-the-token"; /* a 403 never quotes the token */
    assert_int_equal(ph_kek_openbao_create_key(&c, &made, err, sizeof(err)), -1);
    fx_expect_err(err, "openbao create key: permission denied (HTTP 403)");
    assert_null(strstr(err, "not-the-token"));
    c = base_cfg("bad/name"); /* settings are checked before anything is sent */
    assert_int_equal(ph_kek_openbao_create_key(&c, &made, err, sizeof(err)), -1);
    fx_expect_err(err, "openbao: key (the Transit key name) is required");
}

/* Concurrent callers share one provider (and its connection) safely. */
static void test_threads(void **state)
{
    (void)state;
    ph_keys_openbao_cfg c = k8s_cfg();
    ph_kek *k = open_ok(&c);
    fx_kek_threads(k, 10, 1);
    ph_kek_destroy(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_rotation_and_versions),
        cmocka_unit_test(test_tampered_and_malformed_blobs),
        cmocka_unit_test(test_bad_token),
        cmocka_unit_test(test_token_file_reread),
        cmocka_unit_test(test_kubernetes_login),
        cmocka_unit_test(test_kubernetes_lease_renewal),
        cmocka_unit_test(test_kubernetes_login_errors),
        cmocka_unit_test(test_server_errors),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_bad_answers),
        cmocka_unit_test(test_tls_verification),
        cmocka_unit_test(test_plain_http_and_unreachable),
        cmocka_unit_test(test_config_validation),
        cmocka_unit_test(test_missing_transit_key),
        cmocka_unit_test(test_create_key),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
