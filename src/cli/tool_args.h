/*
 * tool_args.h — the command line shared by the direct-to-database tools
 * (`phantom migrate`, `verify`, `reencrypt`): -c/--config, --dsn, --table,
 * --batch and each tool's own flags, parsed in one place.
 */
#ifndef PHANTOM_CLI_TOOL_ARGS_H
#define PHANTOM_CLI_TOOL_ARGS_H

/* Flags a tool accepts besides the common options. */
enum {
    PH_TA_DEEP = 1 << 0,        /* --deep */
    PH_TA_MAX_LISTED = 1 << 1,  /* --max-listed N */
    PH_TA_RESTART = 1 << 2,     /* --restart */
    PH_TA_DRY_RUN = 1 << 3,     /* --dry-run */
    PH_TA_DECRYPT = 1 << 4,     /* --decrypt */
    PH_TA_VACUUM_FULL = 1 << 5, /* --vacuum-full */
};

typedef struct ph_tool_args {
    const char *config, *dsn, *table;
    int batch, max_listed; /* keep the caller's defaults unless given */
    int deep, restart, dry_run, decrypt, vacuum_full;
} ph_tool_args;

/* Parses argv (argv[0] is the command's name) accepting the common options
 * and the flags in `allowed`; --config and --dsn are required. 0 run, 1 help
 * was asked, -1 usage error (a one-line reason printed to stderr). */
int ph_tool_args_parse(int argc, char **argv, unsigned allowed, ph_tool_args *a);

#endif
