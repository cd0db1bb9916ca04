/*
 * tests/valgrind/selftest.c — a program with the memory errors the valgrind
 * run must catch, so that tests/valgrind/run.sh can prove its valgrind
 * options report them: `selftest leak` loses a block (definitely lost) and
 * the block it points to (indirectly lost), `selftest read` reads past the
 * end of a heap block, `selftest clean` has no error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *volatile keep; /* makes the compiler keep the leaked pointer */

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "clean";
    if (strcmp(mode, "leak") == 0) {
        char **outer = malloc(sizeof *outer);
        if (!outer)
            return 2;
        *outer = malloc(64); /* indirectly lost through outer */
        keep = (char *)outer;
        keep = NULL; /* outer: definitely lost */
        return 0;
    }
    if (strcmp(mode, "read") == 0) {
        char *p = malloc(16);
        if (!p)
            return 2;
        memset(p, 'x', 16);
        volatile size_t end = 16;
        char c = p[end]; /* one past the end */
        printf("%d\n", c);
        free(p);
        return 0;
    }
    char *p = malloc(16);
    free(p);
    return 0;
}
