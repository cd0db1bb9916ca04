/*
 * main.c — the `phantom` binary: dispatches to a subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "ops/version.h"

static void usage(FILE *f)
{
    fprintf(f,
            "phantom %s — field-level encryption proxy for PostgreSQL\n"
            "\n"
            "usage: phantom COMMAND [options]\n"
            "\n"
            "commands:\n"
            "  proxy         run the PostgreSQL proxy (see: phantom proxy --help)\n"
            "  keys          manage keys: init-master, init-kek, create, list, rotate,\n"
            "                rotate-kek, rewrap, retire, escrow, recover, check\n"
            "                (see: phantom keys --help)\n"
            "  check-config  validate a phantom.yaml (phantom check-config [--keys] FILE)\n"
            "  migrate       encrypt existing plaintext columns in place, online and\n"
            "                resumable (--decrypt reverses it)\n"
            "  verify        prove every protected column holds only valid envelopes\n"
            "  reencrypt     move every value to the newest key version after a rotation\n"
            "  webhook       Kubernetes admission webhook injecting the proxy sidecar\n"
            "  audit         verify an audit log (phantom audit verify FILE)\n"
            "  version       print the version\n"
            "  help          this help\n"
            "\n"
            "Run `phantom COMMAND --help` for the options of a command.\n",
            PHANTOM_VERSION);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "proxy") == 0)
        return ph_cmd_proxy(argc - 1, argv + 1);
    if (strcmp(cmd, "keys") == 0)
        return ph_cmd_keys(argc - 1, argv + 1);
    if (strcmp(cmd, "check-config") == 0)
        return ph_cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "audit") == 0)
        return ph_cmd_audit(argc - 1, argv + 1);
    if (strcmp(cmd, "migrate") == 0)
        return ph_cmd_migrate(argc - 1, argv + 1);
    if (strcmp(cmd, "verify") == 0)
        return ph_cmd_verify(argc - 1, argv + 1);
    if (strcmp(cmd, "reencrypt") == 0)
        return ph_cmd_reencrypt(argc - 1, argv + 1);
    if (strcmp(cmd, "webhook") == 0)
        return ph_cmd_webhook(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("phantom %s\n", PHANTOM_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "phantom: unknown command \"%s\"\n\n", cmd);
    usage(stderr);
    return 2;
}
