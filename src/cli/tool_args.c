/*
 * tool_args.c — see tool_args.h.
 */
#include "cli/tool_args.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

enum {
    OPT_DSN = 256,
    OPT_TABLE,
    OPT_BATCH,
    OPT_MAX,
    OPT_DEEP,
    OPT_RESTART,
    OPT_DRY,
    OPT_DECRYPT,
    OPT_VACUUM
};

static const struct option opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"dsn", required_argument, NULL, OPT_DSN},
    {"table", required_argument, NULL, OPT_TABLE},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"max-listed", required_argument, NULL, OPT_MAX},
    {"deep", no_argument, NULL, OPT_DEEP},
    {"restart", no_argument, NULL, OPT_RESTART},
    {"dry-run", no_argument, NULL, OPT_DRY},
    {"decrypt", no_argument, NULL, OPT_DECRYPT},
    {"vacuum-full", no_argument, NULL, OPT_VACUUM},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int count(const char *name, const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end || v <= 0 || v > 1000000) {
        fprintf(stderr, "phantom: --%s must be a number from 1 to 1000000\n", name);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* The flag of option opt, or 0 for the common ones. */
static unsigned flag_of(int opt)
{
    switch (opt) {
    case OPT_DEEP:
        return PH_TA_DEEP;
    case OPT_MAX:
        return PH_TA_MAX_LISTED;
    case OPT_RESTART:
        return PH_TA_RESTART;
    case OPT_DRY:
        return PH_TA_DRY_RUN;
    case OPT_DECRYPT:
        return PH_TA_DECRYPT;
    case OPT_VACUUM:
        return PH_TA_VACUUM_FULL;
    default:
        return 0;
    }
}

static int apply(int opt, ph_tool_args *a)
{
    switch (opt) {
    case 'c':
        a->config = optarg;
        return 0;
    case OPT_DSN:
        a->dsn = optarg;
        return 0;
    case OPT_TABLE:
        a->table = optarg;
        return 0;
    case OPT_BATCH:
        return count("batch", optarg, &a->batch);
    case OPT_MAX:
        return count("max-listed", optarg, &a->max_listed);
    case OPT_DEEP:
        a->deep = 1;
        return 0;
    case OPT_RESTART:
        a->restart = 1;
        return 0;
    case OPT_DRY:
        a->dry_run = 1;
        return 0;
    case OPT_DECRYPT:
        a->decrypt = 1;
        return 0;
    case OPT_VACUUM:
        a->vacuum_full = 1;
        return 0;
    default:
        return -1;
    }
}

int ph_tool_args_parse(int argc, char **argv, unsigned allowed, ph_tool_args *a)
{
    optind = 1;
    opterr = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (opt == 'h')
            return 1;
        unsigned f = flag_of(opt);
        if (f && !(allowed & f)) {
            fprintf(stderr, "phantom %s: %s is not an option of this command\n", argv[0],
                    argv[optind - 1]);
            return -1;
        }
        if (opt == '?' || apply(opt, a) != 0)
            return -1;
    }
    if (optind != argc) {
        fprintf(stderr, "phantom %s: unexpected argument \"%s\"\n", argv[0], argv[optind]);
        return -1;
    }
    if (!a->config || !a->dsn) {
        fprintf(stderr, "phantom %s: --config and --dsn are required\n", argv[0]);
        return -1;
    }
    return 0;
}
