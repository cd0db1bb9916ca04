/*
 * cmd_reencrypt.c — `phantom reencrypt`: option parsing and help text; the
 * work is in src/tools/reencrypt.c.
 *
 * Exit status: 0 every value is now a valid envelope (the verify pass shows
 * the key versions in use); 1 the verify pass found invalid values or
 * plaintext columns (listed); 2 usage, configuration, connection or
 * database errors (a new run resumes after the last committed batch).
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/setup.h"
#include "cli/tool_args.h"
#include "tools/db.h"
#include "tools/reencrypt.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: phantom reencrypt -c FILE --dsn DSN [--batch N] [--table T] [--restart]\n"
               "\n"
               "After `phantom keys rotate` (and a restart of every proxy, so that new writes\n"
               "use the new DEK version), moves every protected value to its key domain's\n"
               "active version, over a direct connection and while the application runs:\n"
               "each batch of rows (by primary key) is re-encrypted and written back in one\n"
               "transaction with a compare-and-set, so a value changed meanwhile through the\n"
               "proxy is left as written. The position is saved with each batch (table\n"
               "phantom.progress): a stopped run resumes where it stopped. A verify pass\n"
               "follows; its counts are recorded in the keyring, so that `phantom keys retire\n"
               "DOMAIN OLD_VERSION` succeeds once no value uses the old version.\n"
               "\n"
               "options:\n"
               "  -c, --config FILE   phantom.yaml (encrypt: and keys: sections)\n"
               "      --dsn DSN       libpq connection string or URI of the database itself\n"
               "      --batch N       rows per batch and transaction (default 1000)\n"
               "      --table T       only table T (name or schema.name)\n"
               "      --restart       ignore the saved position and start from the beginning\n"
               "  -h, --help          this help\n");
}

int ph_cmd_reencrypt(int argc, char **argv)
{
    ph_tool_args a = {.batch = 1000};
    int p = ph_tool_args_parse(argc, argv, PH_TA_RESTART, &a);
    if (p != 0) {
        usage(p > 0 ? stdout : stderr);
        return p > 0 ? 0 : 2;
    }
    ph_reencrypt_opts o = {.batch = a.batch, .table = a.table, .restart = a.restart, .out = stdout};
    const char *config = a.config, *dsn = a.dsn;
    ph_setup s;
    char err[512];
    if (ph_setup_load(&s, config, 1, err, sizeof err) != 0) {
        fprintf(stderr, "phantom reencrypt: %s\n", err);
        return 2;
    }
    ph_tool_env env = {
        .schema = s.schema, .keys = s.keys, .keyring_path = s.kc.keyring, .audit = s.audit};
    ph_db db;
    int rc = 2;
    if (ph_db_connect(&db, dsn, err, sizeof err) != 0) {
        fprintf(stderr, "phantom reencrypt: %s\n", err);
    } else {
        rc = ph_reencrypt_run(&db, &env, &o, err, sizeof err);
        if (rc < 0)
            fprintf(stderr, "phantom reencrypt: %s\n", err);
        printf("%s\n", rc == 0   ? "reencrypt: OK"
                       : rc == 1 ? "reencrypt: done, but the verify pass found invalid values"
                                 : "reencrypt: INCOMPLETE (run again to resume)");
        rc = rc < 0 ? 2 : rc;
        ph_db_close(&db);
    }
    ph_setup_free(&s);
    return rc;
}
