/*
 * cmd_check.c — `phantom check-config`: validate a phantom.yaml without
 * starting the proxy.
 *
 * Checks the proxy settings, the encrypt: section and the keys: section
 * exactly as `phantom proxy --config` reads them; with --keys it also loads
 * every key the encrypt section needs (keyring + KEK provider), as the proxy
 * does at start. Exit 0 when valid, 1 when not, 2 on usage errors.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/setup.h"
#include "config/config.h"

void ph_cmd_check_usage(void *stream)
{
    fprintf((FILE *)stream,
            "usage: phantom check-config [--keys] FILE\n"
            "\n"
            "Validates FILE (phantom.yaml) without starting the proxy: the proxy settings,\n"
            "the encrypt: section and the keys: section. Errors name the file, the line and\n"
            "the reason. Exit status 0 when valid, 1 when not.\n"
            "\n"
            "  --keys      also load every key the encrypt section needs (keyring and KEK\n"
            "              provider), as the proxy does when it starts\n"
            "  -h, --help  this help\n");
}

static int check(const char *path, int keys)
{
    ph_config cfg;
    char err[512];
    ph_config_defaults(&cfg);
    if (ph_config_load_file(&cfg, path, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        ph_config_free(&cfg);
        return 1;
    }
    int no_target = cfg.target == NULL;
    if (no_target)
        (void)ph_config_set(&cfg, "target", "localhost:5432", err, sizeof err);
    int rc = ph_config_validate(&cfg, err, sizeof err);
    ph_config_free(&cfg);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", path, err);
        return 1;
    }
    ph_setup s;
    if (ph_setup_load(&s, path, keys, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("%s: OK — %zu protected column%s in %zu table%s%s%s\n", path, s.ncolumns,
           s.ncolumns == 1 ? "" : "s", s.schema->ntables, s.schema->ntables == 1 ? "" : "s",
           keys && s.ncolumns ? ", every key loaded" : "",
           no_target ? " (no target: give --target when starting)" : "");
    ph_setup_free(&s);
    return 0;
}

int ph_cmd_check(int argc, char **argv)
{
    int keys = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--keys") == 0) {
            keys = 1;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            ph_cmd_check_usage(stdout);
            return 0;
        } else if (!path && argv[i][0] != '-') {
            path = argv[i];
        } else {
            ph_cmd_check_usage(stderr);
            return 2;
        }
    }
    if (!path) {
        ph_cmd_check_usage(stderr);
        return 2;
    }
    return check(path, keys);
}
