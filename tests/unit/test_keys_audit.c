/*
 * test_keys_audit.c — unit tests for the hash-chained audit log
 * (keys/audit.h): the chain and line format, verification catching a
 * changed, deleted, reordered, inserted or re-hashed line, two writers
 * sharing one file, concurrent writers, and KEK calls recorded through the
 * process-wide sink.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "keys/audit.h"
#include "keys/kek.h"
#include "keys/kek_file.h"

static char g_path[64];

static int setup_file(void **state)
{
    snprintf(g_path, sizeof g_path, "/tmp/ph-audit-XXXXXX");
    int fd = mkstemp(g_path);
    assert_true(fd >= 0);
    close(fd);
    unlink(g_path); /* ph_audit_open creates it */
    return 0;
}

static int teardown_file(void **state)
{
    unlink(g_path);
    return 0;
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[32];
    EVP_Digest(p, n, md, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

static void write_events(ph_audit *a, int n, const char *tag)
{
    char err[256], detail[64];
    for (int i = 0; i < n; i++) {
        snprintf(detail, sizeof detail, "%s-%d", tag, i);
        ph_audit_event ev = {.event = "keys.create",
                             .outcome = i % 3 ? "ok" : "error",
                             .kek = "file:/m.key",
                             .domain = "customers.email",
                             .version = (uint32_t)i + 1,
                             .key_id = (uint32_t)i + 10,
                             .reason = i % 3 ? NULL : "boom \"quoted\"\n",
                             .detail = detail};
        if (ph_audit_write(a, &ev, i % 2, err, sizeof err) != 0)
            fail_msg("audit write: %s", err);
    }
}

/* Reads the file as an array of lines (without '\n'). */
static int read_lines(char lines[][PH_AUDIT_MAX_LINE + 1], int max)
{
    FILE *f = fopen(g_path, "r");
    assert_non_null(f);
    int n = 0;
    while (n < max && fgets(lines[n], PH_AUDIT_MAX_LINE + 1, f)) {
        lines[n][strcspn(lines[n], "\n")] = '\0';
        n++;
    }
    fclose(f);
    return n;
}

static void write_lines(char lines[][PH_AUDIT_MAX_LINE + 1], int n)
{
    FILE *f = fopen(g_path, "w");
    assert_non_null(f);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s\n", lines[i]);
    fclose(f);
}

static char g_lines[16][PH_AUDIT_MAX_LINE + 1];
static char g_work[16][PH_AUDIT_MAX_LINE + 1];

static void make_log(int n)
{
    char err[256];
    ph_audit *a = ph_audit_open(g_path, err, sizeof err);
    assert_non_null(a);
    write_events(a, n, "x");
    ph_audit_close(a);
    assert_int_equal(read_lines(g_lines, 16), n);
    memcpy(g_work, g_lines, sizeof g_lines);
}

static void expect_bad(int n, uint64_t line, const char *needle)
{
    write_lines(g_work, n);
    ph_audit_verify_result res;
    assert_int_equal(ph_audit_verify_file(g_path, &res), 1);
    if (res.bad_line != line || !strstr(res.reason, needle))
        fail_msg("expected line %llu (%s), got line %llu: %s", (unsigned long long)line, needle,
                 (unsigned long long)res.bad_line, res.reason);
    memcpy(g_work, g_lines, sizeof g_lines);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_chain_format(void **state)
{
    make_log(5);
    struct stat st;
    assert_int_equal(stat(g_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char prev[65], want[80];
    sha256_hex(PH_AUDIT_GENESIS, strlen(PH_AUDIT_GENESIS), prev);
    for (int i = 0; i < 5; i++) {
        const char *l = g_lines[i];
        snprintf(want, sizeof want, "{\"seq\":%d,", i + 1);
        assert_true(strncmp(l, want, strlen(want)) == 0);
        snprintf(want, sizeof want, "\"prev\":\"%s\"", prev);
        assert_non_null(strstr(l, want));
        /* "hash" covers the bytes before ,"hash":" */
        const char *h = strstr(l, ",\"hash\":\"");
        assert_non_null(h);
        char self[65];
        sha256_hex(l, (size_t)(h - l), self);
        assert_memory_equal(h + 9, self, 64);
        assert_non_null(strstr(l, "\"user\":"));
        assert_non_null(strstr(l, "\"uid\":"));
        assert_non_null(strstr(l, "\"ts\":\"20"));
        sha256_hex(l, strlen(l), prev);
    }
    assert_non_null(strstr(g_lines[0], "\"reason\":\"boom \\\"quoted\\\"\\n\"")); /* escaped */
    ph_audit_verify_result res;
    assert_int_equal(ph_audit_verify_file(g_path, &res), 0);
    assert_int_equal(res.lines, 5);
    assert_string_equal(res.head, prev);
}

static void test_verify_detects_tampering(void **state)
{
    make_log(6);
    /* A changed value in the middle. */
    char *p = strstr(g_work[2], "\"outcome\":\"ok\"");
    assert_non_null(p);
    memcpy(p + 11, "no", 2);
    expect_bad(6, 3, "content changed");
    /* A changed last line (no later line to catch it: its own hash does). */
    p = strstr(g_work[5], "customers");
    p[0] = 'C';
    expect_bad(6, 6, "content changed");
    /* A deleted line. */
    memmove(g_work[1], g_work[2], sizeof g_work[0] * 4);
    expect_bad(5, 2, "removed");
    /* Two lines swapped. */
    memcpy(g_work[3], g_lines[4], sizeof g_work[0]);
    memcpy(g_work[4], g_lines[3], sizeof g_work[0]);
    expect_bad(6, 4, "sequence");
    /* A line duplicated (inserted). */
    memmove(g_work[3], g_work[2], sizeof g_work[0] * 4);
    expect_bad(7, 4, "sequence");
    /* The first line removed. */
    memmove(g_work[0], g_work[1], sizeof g_work[0] * 5);
    expect_bad(5, 1, "sequence");
    /* An edit with a recomputed self hash is caught by the next line's prev. */
    p = strstr(g_work[2], "\"outcome\":\"ok\"");
    memcpy(p + 11, "no", 2);
    char *h = strstr(g_work[2], ",\"hash\":\"");
    char self[65];
    sha256_hex(g_work[2], (size_t)(h - g_work[2]), self);
    memcpy(h + 9, self, 64);
    expect_bad(6, 4, "chain broken");
    /* Garbage and a torn last line. */
    snprintf(g_work[3], sizeof g_work[3], "not json");
    expect_bad(6, 4, "malformed");
    write_lines(g_work, 6);
    FILE *f = fopen(g_path, "a");
    fputs("{\"seq\":7", f);
    fclose(f);
    ph_audit_verify_result res;
    assert_int_equal(ph_audit_verify_file(g_path, &res), 1);
    assert_int_equal(res.bad_line, 7);
    /* The untouched log still verifies. */
    write_lines(g_lines, 6);
    assert_int_equal(ph_audit_verify_file(g_path, &res), 0);
    assert_int_equal(res.lines, 6);
    /* Empty log: OK with 0 lines; unreadable: -1. */
    assert_int_equal(ph_audit_verify_buffer("", 0, &res), 0);
    assert_int_equal(res.lines, 0);
    assert_int_equal(ph_audit_verify_file("/nonexistent/audit.jsonl", &res), -1);
}

/* Two handles (e.g. proxy and CLI) appending alternately keep one chain. */
static void test_two_writers(void **state)
{
    char err[256];
    ph_audit *a = ph_audit_open(g_path, err, sizeof err);
    ph_audit *b = ph_audit_open(g_path, err, sizeof err);
    assert_non_null(a);
    assert_non_null(b);
    for (int i = 0; i < 4; i++) {
        write_events(a, 2, "a");
        write_events(b, 1, "b");
    }
    ph_audit_close(a);
    ph_audit_close(b);
    ph_audit_verify_result res;
    assert_int_equal(ph_audit_verify_file(g_path, &res), 0);
    assert_int_equal(res.lines, 12);
    /* Reopening continues the chain. */
    a = ph_audit_open(g_path, err, sizeof err);
    write_events(a, 1, "c");
    ph_audit_close(a);
    assert_int_equal(ph_audit_verify_file(g_path, &res), 0);
    assert_int_equal(res.lines, 13);
}

static void *writer_thread(void *p)
{
    write_events(p, 25, "t");
    return NULL;
}

static void test_concurrent_writers(void **state)
{
    char err[256];
    ph_audit *a = ph_audit_open(g_path, err, sizeof err);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, writer_thread, a), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ph_audit_close(a);
    ph_audit_verify_result res;
    assert_int_equal(ph_audit_verify_file(g_path, &res), 0);
    assert_int_equal(res.lines, 100);
}

/* KEK calls through the dispatchers are recorded when a global sink is set;
 * no line carries the DEK or the wrapped blob. */
static void test_kek_calls_recorded(void **state)
{
    static const uint8_t key[32] = {1, 2, 3};
    char err[256];
    ph_audit *a = ph_audit_open(g_path, err, sizeof err);
    ph_audit_set_global(a);
    ph_kek *k = ph_kek_file_from_buffer(key, sizeof key, "file:/test.key", err, sizeof err);
    uint8_t dek[PH_DEK_LEN], back[PH_DEK_LEN], *blob;
    size_t len;
    assert_int_equal(ph_kek_generate(k, dek, &blob, &len, err, sizeof err), 0);
    assert_int_equal(ph_kek_unwrap(k, blob, len, back, err, sizeof err), 0);
    blob[len - 1] ^= 1;
    assert_int_equal(ph_kek_unwrap(k, blob, len, back, err, sizeof err), -1);
    ph_audit_set_global(NULL);
    ph_audit_close(a);
    ph_kek_destroy(k);

    int n = read_lines(g_lines, 16);
    assert_int_equal(n, 3);
    assert_non_null(strstr(g_lines[0], "\"event\":\"kek.generate\",\"outcome\":\"ok\""));
    assert_non_null(strstr(g_lines[0], "\"kek\":\"file:/test.key\""));
    assert_non_null(strstr(g_lines[1], "\"event\":\"kek.unwrap\",\"outcome\":\"ok\""));
    assert_non_null(strstr(g_lines[2], "\"event\":\"kek.unwrap\",\"outcome\":\"error\""));
    assert_non_null(strstr(g_lines[2], "\"reason\":"));
    /* Neither the DEK nor the blob appears, in hex or base64. */
    char hex[2 * PH_DEK_LEN + 1], b64[128];
    for (int i = 0; i < PH_DEK_LEN; i++)
        sprintf(hex + 2 * i, "%02x", dek[i]);
    EVP_EncodeBlock((unsigned char *)b64, dek, PH_DEK_LEN);
    b64[20] = '\0';
    for (int i = 0; i < n; i++) {
        assert_null(strstr(g_lines[i], hex));
        assert_null(strstr(g_lines[i], b64));
    }
    ph_audit_verify_result res;
    assert_int_equal(ph_audit_verify_file(g_path, &res), 0);
    free(blob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chain_format, setup_file, teardown_file),
        cmocka_unit_test_setup_teardown(test_verify_detects_tampering, setup_file, teardown_file),
        cmocka_unit_test_setup_teardown(test_two_writers, setup_file, teardown_file),
        cmocka_unit_test_setup_teardown(test_concurrent_writers, setup_file, teardown_file),
        cmocka_unit_test_setup_teardown(test_kek_calls_recorded, setup_file, teardown_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
