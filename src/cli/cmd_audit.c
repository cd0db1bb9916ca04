/*
 * cmd_audit.c — `phantom audit verify FILE`: checks the hash chain of an
 * audit log (format in keys/audit.h). Exit 0 and "OK ..." when intact; 1
 * with the first bad line number when a line was changed, removed, inserted
 * or reordered; 2 on a usage or read error.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "keys/audit.h"

void ph_cmd_audit_usage(void *stream)
{
    fprintf((FILE *)stream,
            "usage: phantom audit verify FILE\n"
            "\n"
            "Verifies the hash chain of a Phantom audit log (JSON lines). Prints\n"
            "\"OK: N lines, head <sha256>\" and exits 0 when intact; prints the number of\n"
            "the first bad line and exits 1 when a line was changed, removed, inserted or\n"
            "reordered. Record the head hash elsewhere: a truncated tail or a rewritten\n"
            "chain can only be detected against it.\n");
}

int ph_cmd_audit(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        ph_cmd_audit_usage(stdout);
        return 0;
    }
    if (argc != 3 || strcmp(argv[1], "verify") != 0) {
        ph_cmd_audit_usage(stderr);
        return 2;
    }
    const char *path = argv[2];
    ph_audit_verify_result res;
    int rc = ph_audit_verify_file(path, &res);
    if (rc < 0) {
        fprintf(stderr, "phantom audit verify: %s\n", res.reason);
        return 2;
    }
    if (rc > 0) {
        printf("FAIL: %s:%llu: %s\n", path, (unsigned long long)res.bad_line, res.reason);
        return 1;
    }
    printf("OK: %llu lines, head %s\n", (unsigned long long)res.lines, res.head);
    return 0;
}
