/*
 * cli.h — the `phantom` subcommands.
 *
 * Owns: command-line parsing and help text for each subcommand; each
 * returns the process exit status.
 */
#ifndef PHANTOM_CLI_H
#define PHANTOM_CLI_H

int ph_cmd_proxy(int argc, char **argv);
void ph_cmd_proxy_usage(void *stream);

#endif
