/*
 * test_tools_common.c — the building blocks of the direct-to-database tools
 * that need no server: array literals for batched statements (quoting,
 * NULLs, bytea in hex, wiping) and progress lines outside a terminal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tools/pgarray.h"
#include "tools/progress.h"

static void test_pgarray(void **state)
{
    (void)state;
    ph_pgarray a = {0};
    assert_string_equal(ph_pgarray_str(&a), "{}");
    assert_int_equal(ph_pgarray_text(&a, "plain", 5), 0);
    assert_int_equal(ph_pgarray_text(&a, "q\"uo\\te,{x}", 11), 0);
    assert_int_equal(ph_pgarray_null(&a), 0);
    assert_int_equal(ph_pgarray_text(&a, "", 0), 0);
    assert_int_equal(ph_pgarray_text(&a, "NULL", 4), 0); /* quoted: the string, not NULL */
    assert_string_equal(ph_pgarray_str(&a), "{\"plain\",\"q\\\"uo\\\\te,{x}\",NULL,\"\",\"NULL\"}");
    /* more elements after a str() call continue the same array */
    assert_int_equal(ph_pgarray_text(&a, "z", 1), 0);
    assert_string_equal(ph_pgarray_str(&a),
                        "{\"plain\",\"q\\\"uo\\\\te,{x}\",NULL,\"\",\"NULL\",\"z\"}");
    ph_pgarray_wipe(&a);
    assert_null(a.b.data);
    assert_int_equal(a.n, 0);

    ph_pgarray b = {0};
    const uint8_t env[] = {0x01, 0x02, 0x00, 0xff};
    assert_int_equal(ph_pgarray_bytea(&b, env, sizeof env), 0);
    assert_int_equal(ph_pgarray_bytea(&b, env, 0), 0);
    assert_int_equal(ph_pgarray_null(&b), 0);
    /* element text \x010200ff, the backslash escaped inside the quotes */
    assert_string_equal(ph_pgarray_str(&b), "{\"\\\\x010200ff\",\"\\\\x\",NULL}");
    ph_pgarray_wipe(&b);
}

static void test_progress_lines(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    ph_progress p;
    ph_progress_begin(&p, f, "encrypt public.t", 1000, 100);
    assert_int_equal(p.tty, 0);
    ph_progress_update(&p, 150); /* the first update prints at once */
    ph_progress_update(&p, 200); /* the next only after a few seconds */
    double secs = ph_progress_end(&p);
    assert_true(secs >= 0);
    char buf[512] = "";
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_memory_equal(buf, "encrypt public.t: 150/1000 rows (15%), ", 38);
    char *second = strchr(buf, '\n') + 1;
    assert_memory_equal(second, "encrypt public.t: 200/1000 rows (20%), ", 38);
    assert_non_null(strstr(second, "rows/s, ETA 0:00:00\n"));
    assert_int_equal(strchr(second, '\n') - buf + 1, (long)n); /* two lines in all */
    assert_null(strchr(buf, '\r'));                            /* no redraws in a log */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pgarray),
        cmocka_unit_test(test_progress_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
