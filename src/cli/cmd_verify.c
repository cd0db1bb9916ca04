/*
 * cmd_verify.c — `phantom verify`: option parsing and help text; the work is
 * in src/tools/verify.c.
 *
 * Exit status: 0 every protected column is bytea and every value a valid
 * envelope; 1 a plaintext column or an invalid value was found (or a table
 * could not be checked while something invalid was found); 2 usage,
 * configuration, connection or scan errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/setup.h"
#include "cli/tool_args.h"
#include "tools/db.h"
#include "tools/verify.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: phantom verify -c FILE --dsn DSN [--deep] [--table T]\n"
               "\n"
               "Bypasses the proxy and checks, over a direct connection, every protected\n"
               "column of the encrypt: section: its type must be bytea and every non-NULL\n"
               "value a phantom envelope of the column's mode, sealed under a live DEK version\n"
               "of the column's key domain. Prints a table per column (rows, NULLs, invalid\n"
               "values, values per key version) and, for each invalid value, the primary key\n"
               "of its row and the reason - never the value. When every column of a key domain\n"
               "was checked, records in the keyring how many values each DEK version still\n"
               "encrypts (what `phantom keys retire` requires).\n"
               "\n"
               "options:\n"
               "  -c, --config FILE   phantom.yaml (encrypt: and keys: sections)\n"
               "      --dsn DSN       libpq connection string or URI of the database itself\n"
               "                      (not the proxy)\n"
               "      --deep          also decrypt every value (slower)\n"
               "      --table T       only table T (name or schema.name); usage is then\n"
               "                      recorded only for key domains no other table uses\n"
               "      --batch N       rows per query (default 5000)\n"
               "      --max-listed N  invalid values listed per column (default 1000)\n"
               "  -h, --help          this help\n"
               "\n"
               "exit status: 0 all valid, 1 a plaintext column or invalid value found,\n"
               "2 usage, configuration or connection error\n");
}

static int verify(const ph_setup *s, const char *dsn, const ph_verify_opts *o)
{
    char err[512];
    ph_tool_env env = {
        .schema = s->schema, .keys = s->keys, .keyring_path = s->kc.keyring, .audit = s->audit};
    ph_db db;
    if (ph_db_connect(&db, dsn, err, sizeof err) != 0) {
        fprintf(stderr, "phantom verify: %s\n", err);
        return 2;
    }
    ph_vreport rep;
    int rc = 2;
    if (ph_verify_scan(&db, &env, o, &rep, err, sizeof err) != 0) {
        fprintf(stderr, "phantom verify: %s\n", err);
    } else {
        ph_verify_print(&rep, &env, stdout);
        int clean = ph_verify_clean(&rep);
        int invalid = !clean && rep.errors == 0;
        for (size_t i = 0; !invalid && i < rep.ncols; i++)
            invalid = rep.cols[i].plaintext || rep.cols[i].invalid > 0;
        rc = clean ? 0 : invalid ? 1 : 2;
        if (ph_verify_record_usage(&rep, &env, "verify", stdout, err, sizeof err) != 0) {
            fprintf(stderr, "phantom verify: usage not recorded: %s\n", err);
            if (rc == 0)
                rc = 2;
        }
        printf("%s\n", rc == 0   ? "verify: OK, every protected value is a valid envelope"
                       : rc == 1 ? "verify: FAILED, invalid values or plaintext columns found"
                                 : "verify: INCOMPLETE, some tables could not be checked");
    }
    ph_vreport_free(&rep);
    ph_db_close(&db);
    return rc;
}

int ph_cmd_verify(int argc, char **argv)
{
    ph_tool_args a = {.batch = 5000, .max_listed = 1000};
    int p = ph_tool_args_parse(argc, argv, PH_TA_DEEP | PH_TA_MAX_LISTED, &a);
    if (p != 0) {
        usage(p > 0 ? stdout : stderr);
        return p > 0 ? 0 : 2;
    }
    ph_verify_opts o = {.batch = a.batch,
                        .max_listed = a.max_listed,
                        .deep = a.deep,
                        .table = a.table,
                        .out = stdout,
                        .progress = isatty(STDERR_FILENO)};
    ph_setup s;
    char err[512];
    if (ph_setup_load(&s, a.config, 1, err, sizeof err) != 0) {
        fprintf(stderr, "phantom verify: %s\n", err);
        return 2;
    }
    int rc = verify(&s, a.dsn, &o);
    ph_setup_free(&s);
    return rc;
}
