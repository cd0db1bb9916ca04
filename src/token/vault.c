/*
 * vault.c — opening the configured token vault; see vault.h.
 */
#include "token/vault.h"

#include "common/err.h"
#include "token/token_config.h"

ph_vault *ph_vault_open(const ph_token_config *c, char *err, size_t errlen)
{
    if (!c) {
        ph_errf(err, errlen, "no token vault is configured");
        return NULL;
    }
    if (c->vault == PH_VAULT_POSTGRES)
        return ph_vault_pg_open(c->dsn, 0, err, errlen);
    return ph_vault_sqlite_open(c->path, err, errlen);
}

void ph_vault_close(ph_vault *v)
{
    if (v)
        v->ops->close(v);
}
