/*
 * cmd_migrate.c — `phantom migrate`: command line and help of the online
 * in-place migration (src/tools/migrate.c). Exit 0 when every table is done
 * (or the dry run's plan is feasible), 1 when a table was refused, 2 on
 * usage or connection errors.
 */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/setup.h"
#include "cli/tool_args.h"
#include "tools/migrate.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: phantom migrate -c phantom.yaml --dsn DSN [options]\n"
               "\n"
               "Encrypts the existing plaintext values of every column of the encrypt: section\n"
               "in place, over a direct connection (not through the proxy), while the\n"
               "application keeps writing: shadow columns filled in batches by primary key,\n"
               "each batch its own transaction; rows written meanwhile are logged by a trigger\n"
               "and converted again; indexes are rebuilt concurrently; the columns are swapped\n"
               "in one short ACCESS EXCLUSIVE transaction (its duration is printed). A killed\n"
               "run resumes where it stopped when started again.\n"
               "\n"
               "  -c, --config FILE  phantom.yaml (encrypt: and keys: sections)\n"
               "      --dsn DSN      libpq connection string or URI of the database\n"
               "      --batch N      rows per batch (default 1000)\n"
               "      --table T      only this configured table (table or schema.table)\n"
               "      --dry-run      print the plan (columns, modes, rows, indexes, size growth)\n"
               "      --decrypt      reverse a migration: back to the original plaintext types\n"
               "      --restart      drop an interrupted run's shadow columns and start over\n"
               "      --vacuum-full  rewrite the table afterwards (VACUUM FULL: removes the bytes\n"
               "                     of the dropped plaintext columns from the table's pages;\n"
               "                     takes an ACCESS EXCLUSIVE lock for the whole rewrite)\n"
               "  -h, --help         this help\n");
}

int ph_cmd_migrate(int argc, char **argv)
{
    ph_tool_args a = {.batch = 1000};
    int p = ph_tool_args_parse(
        argc, argv, PH_TA_DRY_RUN | PH_TA_DECRYPT | PH_TA_RESTART | PH_TA_VACUUM_FULL, &a);
    if (p != 0) {
        usage(p > 0 ? stdout : stderr);
        return p > 0 ? 0 : 2;
    }
    ph_migrate_opts o = {.dsn = a.dsn,
                         .batch = a.batch,
                         .dry_run = a.dry_run,
                         .decrypt = a.decrypt,
                         .restart = a.restart,
                         .vacuum_full = a.vacuum_full,
                         .table = a.table,
                         .out = stdout};
    const char *config = a.config;
    ph_setup s;
    char err[1024];
    if (ph_setup_load(&s, config, !o.dry_run, err, sizeof err) != 0) {
        fprintf(stderr, "phantom migrate: %s\n", err);
        return 2;
    }
    if (s.ncolumns == 0) {
        fprintf(stderr, "phantom migrate: %s protects no column\n", config);
        ph_setup_free(&s);
        return 2;
    }
    int rc = ph_migrate_run(s.schema, s.keys, &o, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "phantom migrate: %s\n", err);
    ph_setup_free(&s);
    return rc < 0 ? 2 : rc;
}
