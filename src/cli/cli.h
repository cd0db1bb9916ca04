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

/* `phantom keys ...` (cmd_keys.c) and `phantom audit ...` (cmd_audit.c). */
int ph_cmd_keys(int argc, char **argv);
void ph_cmd_keys_usage(void *stream);
int ph_cmd_audit(int argc, char **argv);
int ph_cmd_check(int argc, char **argv);
void ph_cmd_check_usage(void *stream);
void ph_cmd_audit_usage(void *stream);

/* Direct-to-database tools (src/tools/): cmd_migrate.c, cmd_verify.c,
 * cmd_reencrypt.c. */
int ph_cmd_migrate(int argc, char **argv);
int ph_cmd_verify(int argc, char **argv);
int ph_cmd_reencrypt(int argc, char **argv);

/* `phantom webhook`: the Kubernetes admission webhook (cmd_webhook.c, src/k8s/). */
int ph_cmd_webhook(int argc, char **argv);
void ph_cmd_webhook_usage(void *stream);

#endif
