/*
 * test_common.c — unit tests for the small shared modules in src/common/:
 * err.h (formatting, truncation, NULL buffers, "NAME:LINE: " prefix),
 * hex.h (round trip, both cases, rejects), file.h (whole-file reads, the
 * size cap at exactly max bytes, missing files, secret reads, ph_write_all)
 * yaml_doc.h (load errors with FILE:LINE, scalars, null, node lines,
 * "NAME:LINE: " errors for a node) and tslot.h (a fixed slot per thread, one
 * object per slot made once even when threads of a slot race, all torn down).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <unistd.h>

#include "common/err.h"
#include "common/file.h"
#include "common/hex.h"
#include "common/tslot.h"
#include "common/yaml_doc.h"

#include "test_keys_fixture.h"

/* ---- err.h ------------------------------------------------------------------- */

static void test_errf(void **state)
{
    (void)state;
    char err[16];
    assert_int_equal(ph_errf(err, sizeof err, "%s=%d", "x", 42), -1);
    assert_string_equal(err, "x=42");
    assert_int_equal(ph_errf(err, sizeof err, "%s", "0123456789abcdefghij"), -1);
    assert_string_equal(err, "0123456789abcde"); /* truncated, NUL-terminated */
    assert_int_equal(ph_errf(NULL, 0, "dropped %d", 1), -1);
    err[0] = 'k';
    assert_int_equal(ph_errf(err, 0, "not written"), -1);
    assert_int_equal(err[0], 'k');

    char at[64];
    assert_int_equal(ph_errf_at(at, sizeof at, "phantom.yaml", 7, "bad %s", "value"), -1);
    assert_string_equal(at, "phantom.yaml:7: bad value");
    assert_int_equal(ph_errf_at(at, 10, "phantom.yaml", 7, "bad"), -1);
    assert_string_equal(at, "phantom.y"); /* the prefix alone is cut, still terminated */
    assert_int_equal(ph_errf_at(NULL, 0, "f", 1, "x"), -1);
}

/* ---- hex.h ------------------------------------------------------------------- */

static void test_hex(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char text[2 * sizeof bytes + 1];
    ph_hex_encode(bytes, sizeof bytes, text);
    text[2 * sizeof bytes] = '\0';
    assert_string_equal(text, "00017f80abff");

    uint8_t back[sizeof bytes];
    assert_int_equal(ph_hex_decode(text, strlen(text), back), 0);
    assert_memory_equal(back, bytes, sizeof bytes);
    assert_int_equal(ph_hex_decode("00017F80ABFF", 12, back), 0); /* either case */
    assert_memory_equal(back, bytes, sizeof bytes);
    assert_int_equal(ph_hex_decode("", 0, back), 0);

    assert_int_equal(ph_hex_decode("abc", 3, back), -1);  /* odd length */
    assert_int_equal(ph_hex_decode("0g", 2, back), -1);   /* not a digit */
    assert_int_equal(ph_hex_decode("0 1f", 4, back), -1); /* no separators */
    assert_int_equal(ph_hex_val('9'), 9);
    assert_int_equal(ph_hex_val('a'), 10);
    assert_int_equal(ph_hex_val('F'), 15);
    assert_int_equal(ph_hex_val('x'), -1);
    assert_int_equal(ph_hex_val(0x100 | 'a'), -1);

    /* every byte value, alone in a long text at every position: a digit
     * decodes to its value, anything else is refused */
    int digits = 0;
    for (int c = 0; c < 256; c++) {
        int v = ph_hex_val(c);
        digits += v >= 0;
        char t[40];
        memset(t, 'a', sizeof t);
        for (size_t pos = 0; pos < sizeof t; pos++) {
            uint8_t out[20];
            t[pos] = (char)c;
            int rc = ph_hex_decode(t, sizeof t, out);
            assert_int_equal(rc, v >= 0 ? 0 : -1);
            if (rc == 0)
                assert_int_equal(pos % 2 ? out[pos / 2] & 15 : out[pos / 2] >> 4, v);
            t[pos] = 'a';
        }
    }
    assert_int_equal(digits, 22); /* 0-9, a-f, A-F */

    /* every byte value round trip, lower and upper case, at every length
     * (whole 16-digit blocks and the rest) */
    uint8_t all[256], dec[256];
    char enc[512];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)(i * 37 + 11);
    /* every length and offset (whole 16-byte blocks and the rest) against
     * the digits written one byte at a time, and nothing past 2 * n */
    for (size_t off = 0; off < 16; off++)
        for (size_t n = 0; off + n <= sizeof all; n++) {
            char got[514], want[514];
            memset(got, '#', sizeof got);
            memset(want, '#', sizeof want);
            for (size_t i = 0; i < n; i++)
                snprintf(want + 2 * i, 3, "%02x", all[off + i]);
            want[2 * n] = '#';
            ph_hex_encode(all + off, n, got);
            assert_memory_equal(got, want, sizeof got);
        }
    ph_hex_encode(all, sizeof all, enc);
    for (size_t n = 0; n <= sizeof all; n++) {
        memset(dec, 0, sizeof dec);
        assert_int_equal(ph_hex_decode(enc, 2 * n, dec), 0);
        assert_memory_equal(dec, all, n);
    }
    for (size_t i = 0; i < sizeof enc; i++)
        enc[i] = (char)toupper((unsigned char)enc[i]);
    assert_int_equal(ph_hex_decode(enc, sizeof enc, dec), 0);
    assert_memory_equal(dec, all, sizeof all);
}

/* ---- tslot.h ------------------------------------------------------------------ */

#define TS_THREADS (3 * PH_TSLOTS) /* three threads per slot */

static atomic_int g_inits, g_finis;
static ph_tslots g_slots;
static pthread_barrier_t g_start;

typedef struct ts_obj {
    int magic;
    unsigned slot;
} ts_obj;

static int ts_init(void *obj)
{
    atomic_fetch_add(&g_inits, 1);
    ((ts_obj *)obj)->magic = 0x5107;
    return 0;
}

static void ts_fini(void *obj)
{
    assert_int_equal(((ts_obj *)obj)->magic, 0x5107);
    atomic_fetch_add(&g_finis, 1);
}

static const ph_tslot_kind ts_kind = {sizeof(ts_obj), ts_init, ts_fini};

typedef struct ts_seen {
    unsigned slot, again;
    ts_obj *obj, *obj_again;
} ts_seen;

static void *ts_thread(void *arg)
{
    ts_seen *r = arg;
    pthread_barrier_wait(&g_start); /* all at once: threads of a slot race for it */
    r->slot = ph_tslot();
    r->obj = ph_tslots_mine(&g_slots, &ts_kind);
    r->again = ph_tslot();
    r->obj_again = ph_tslots_mine(&g_slots, &ts_kind);
    return NULL;
}

static void test_tslot(void **state)
{
    (void)state;
    pthread_t t[TS_THREADS];
    ts_seen r[TS_THREADS];
    memset(r, 0, sizeof r);
    assert_int_equal(pthread_barrier_init(&g_start, NULL, TS_THREADS), 0);
    for (int i = 0; i < TS_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, ts_thread, &r[i]), 0);
    for (int i = 0; i < TS_THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&g_start);
    int per_slot[PH_TSLOTS] = {0};
    ts_obj *of_slot[PH_TSLOTS] = {0};
    for (int i = 0; i < TS_THREADS; i++) {
        assert_true(r[i].slot < PH_TSLOTS);
        assert_int_equal(r[i].again, r[i].slot); /* fixed for the thread */
        assert_non_null(r[i].obj);
        assert_ptr_equal(r[i].obj_again, r[i].obj);
        if (of_slot[r[i].slot])
            assert_ptr_equal(r[i].obj, of_slot[r[i].slot]); /* one object per slot */
        of_slot[r[i].slot] = r[i].obj;
        per_slot[r[i].slot]++;
    }
    for (int k = 0; k < PH_TSLOTS; k++)
        assert_int_equal(per_slot[k], 3); /* round-robin */
    /* losers of a race were set up and torn down at once: what is left is one per slot */
    assert_int_equal(atomic_load(&g_inits) - atomic_load(&g_finis), PH_TSLOTS);
    ph_tslots_free(&g_slots, &ts_kind);
    assert_int_equal(atomic_load(&g_inits), atomic_load(&g_finis));
    for (int k = 0; k < PH_TSLOTS; k++)
        assert_null(atomic_load(&g_slots.slot[k]));
}

/* ---- file.h ------------------------------------------------------------------ */

static char g_dir[64];

static int setup_dir(void **state)
{
    (void)state;
    return fx_mkdtemp(g_dir, sizeof g_dir, "ph-common");
}

static int teardown_dir(void **state)
{
    (void)state;
    fx_rm_rf(g_dir);
    return 0;
}

/* A file of n bytes 'a'..'z' repeating at dir/name; its path in path. */
static void make_file(char *path, size_t plen, const char *name, size_t n)
{
    snprintf(path, plen, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        fputc('a' + (int)(i % 26), f);
    assert_int_equal(fclose(f), 0);
}

static void test_file_read(void **state)
{
    (void)state;
    char path[128], err[256];
    char *data = (char *)"untouched";
    size_t len = 99;

    /* Larger than the first buffer: the growth path; NUL-terminated. */
    make_file(path, sizeof path, "big", 10000);
    assert_int_equal(ph_file_read(path, 0, 0, &data, &len, err, sizeof err), 0);
    assert_int_equal(len, 10000);
    assert_int_equal(data[0], 'a');
    assert_int_equal(data[9999], 'a' + 9999 % 26);
    assert_int_equal(data[10000], '\0');
    free(data);

    /* Exactly max bytes is accepted; one more is refused. */
    assert_int_equal(ph_file_read(path, 10000, PH_FILE_SECRET, &data, &len, err, sizeof err), 0);
    assert_int_equal(len, 10000);
    free(data);
    assert_int_equal(ph_file_read(path, 9999, PH_FILE_SECRET, &data, &len, err, sizeof err), -1);
    assert_null(data);
    assert_int_equal(len, 0);
    char want[192];
    snprintf(want, sizeof want, "%s: file too large (9999 bytes at most)", path);
    assert_string_equal(err, want);

    make_file(path, sizeof path, "empty", 0);
    assert_int_equal(ph_file_read(path, 16, 0, &data, &len, err, sizeof err), 0);
    assert_int_equal(len, 0);
    assert_string_equal(data, "");
    free(data);

    snprintf(path, sizeof path, "%s/missing", g_dir);
    assert_int_equal(ph_file_read(path, 16, 0, &data, &len, err, sizeof err), -1);
    assert_int_equal(errno, ENOENT);
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    assert_string_equal(err, want);

    /* A directory opens but cannot be read. */
    assert_int_equal(ph_file_read(g_dir, 16, 0, &data, &len, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: read error", g_dir);
    assert_string_equal(err, want);
}

static void test_file_read_mib_message(void **state)
{
    (void)state;
    char path[128], err[256], want[192];
    char *data;
    size_t len;
    make_file(path, sizeof path, "two-mib", (2u << 20) + 1);
    assert_int_equal(ph_file_read(path, 2u << 20, 0, &data, &len, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: file too large (2 MiB at most)", path);
    assert_string_equal(err, want);
}

static void test_write_all(void **state)
{
    (void)state;
    char path[128], err[128];
    snprintf(path, sizeof path, "%s/written", g_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    static const char text[] = "all of it\n";
    assert_int_equal(ph_write_all(fd, text, sizeof text - 1), 0);
    assert_int_equal(ph_write_all(fd, text, 0), 0);
    assert_int_equal(close(fd), 0);
    char *data;
    size_t len;
    assert_int_equal(ph_file_read(path, 64, 0, &data, &len, err, sizeof err), 0);
    assert_string_equal(data, text);
    free(data);

    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    errno = 0;
    assert_int_equal(ph_write_all(fd, text, sizeof text - 1), -1); /* not open for writing */
    assert_int_equal(errno, EBADF);
    close(fd);
}

/* ---- yaml_doc.h -------------------------------------------------------------- */

static void test_yaml(void **state)
{
    (void)state;
    static const char text[] = "a: 1\n"
                               "b: ~\n"
                               "c: null\n"
                               "d:\n"
                               "e: ''\n"
                               "f: \"null\"\n"
                               "g: [1]\n";
    char err[128];
    yaml_document_t doc;
    assert_int_equal(ph_yaml_load(&doc, text, sizeof text - 1, "t.yaml", err, sizeof err), 0);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    assert_non_null(root);
    assert_int_equal(root->type, YAML_MAPPING_NODE);
    static const int nulls[] = {0, 1, 1, 1, 0, 0, 0}; /* quoted '' and "null" are strings */
    size_t i = 0;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++, i++) {
        yaml_node_t *kn = yaml_document_get_node(&doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(&doc, p->value);
        char key[2] = {(char)('a' + i), '\0'};
        assert_string_equal(ph_yaml_scalar(kn), key);
        assert_int_equal(ph_yaml_line(kn), i + 1);
        assert_int_equal(ph_yaml_is_null(vn), nulls[i]);
    }
    assert_int_equal(i, 7);
    yaml_node_t *last = yaml_document_get_node(&doc, root->data.mapping.pairs.top[-1].value);
    assert_null(ph_yaml_scalar(last)); /* a sequence */
    assert_null(ph_yaml_scalar(NULL));
    assert_int_equal(ph_yaml_line(NULL), 1);

    ph_yaml_src src = {"t.yaml", err, sizeof err};
    assert_int_equal(ph_yaml_fail(&src, last, "bad %s", "list"), -1);
    assert_string_equal(err, "t.yaml:7: bad list");
    assert_int_equal(ph_yaml_fail_line(&src, 42, "late"), -1);
    assert_string_equal(err, "t.yaml:42: late");
    yaml_document_delete(&doc);

    static const char broken[] = "a: 1\nb: [1, 2\n";
    assert_int_equal(ph_yaml_load(&doc, broken, sizeof broken - 1, "x.yaml", err, sizeof err), -1);
    assert_true(strncmp(err, "x.yaml:3: ", 10) == 0);

    assert_int_equal(ph_yaml_load(&doc, "", 0, "empty.yaml", err, sizeof err), 0);
    assert_null(yaml_document_get_root_node(&doc));
    yaml_document_delete(&doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errf),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_tslot),
        cmocka_unit_test_setup_teardown(test_file_read, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_file_read_mib_message, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_write_all, setup_dir, teardown_dir),
        cmocka_unit_test(test_yaml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
