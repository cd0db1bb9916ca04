/*
 * session.h — the encryption engine of one client session (no sockets).
 *
 * Owns: everything the proxy does to the message stream of one session so
 * that protected columns are encrypted on the way in and decrypted on the
 * way out: rewriting Query/Parse/Bind (via src/rewrite/), refusing what a
 * column's mode cannot do, the plans of prepared statements and portals,
 * ParameterDescription/RowDescription/DataRow rewriting, COPY streams, and
 * the catalog map (table OID + attribute number -> protected column) that
 * it keeps by injecting its own catalog query into the session's upstream
 * stream and swallowing the answer.
 *
 * The proxy (src/proxy/conn.c) calls these four functions from the framer
 * hooks of each direction (framer.h): the *_header functions decide which
 * messages the engine must see whole; the *_message functions may keep,
 * replace (with zero or more whole messages for the same direction) or drop
 * a message, exactly like pgf_hooks.on_message. Every reaction stays within
 * one direction: an error the engine must report is produced by replacing
 * the client's message with one that makes the server raise it, so it
 * arrives in order and the transaction state stays the server's.
 *
 * A session is used by one thread at a time. The engine (schema + keys) is
 * immutable and shared by every session of every worker.
 */
#ifndef PHANTOM_ENGINE_SESSION_H
#define PHANTOM_ENGINE_SESSION_H

#include <stdint.h>

#include "common/bytes.h"
#include "protocol/pg/framer.h"

struct ph_schema;
struct ph_keysource;
struct ph_tokens;

typedef struct ph_engine ph_engine;
typedef struct ph_session ph_session;

/* Neither argument is owned; both must outlive the engine. When the schema
 * has token columns and a tokens: section, the engine opens the token vault
 * (src/token/) and owns it. ph_engine_open says why it failed (a vault that
 * cannot be opened; the reason never holds the DSN); ph_engine_new logs that
 * reason and returns NULL. */
ph_engine *ph_engine_open(const struct ph_schema *schema, const struct ph_keysource *keys,
                          char *err, size_t errlen);
ph_engine *ph_engine_new(const struct ph_schema *schema, const struct ph_keysource *keys);
/* Replaces the engine's token service (taking it; NULL: none): tests and
 * benchmarks inject a vault or a random source. */
void ph_engine_set_tokens(ph_engine *e, struct ph_tokens *t);
void ph_engine_free(ph_engine *e);

/* A session starts before authentication (the proxy creates it when the
 * client's StartupMessage is forwarded). */
ph_session *ph_session_new(const ph_engine *e);
void ph_session_free(ph_session *s);

/*
 * The client's StartupMessage pkt[0..*len), before it goes upstream: takes
 * the session's tenant from it (`options` holding `-c phantom.tenant=T` or
 * `--phantom.tenant=T`, or a phantom.tenant parameter of its own) and
 * removes that setting, so the tenant id stays out of the server's view
 * (*len shrinks; the packet stays well-formed). s NULL (no engine): the
 * setting is removed all the same. 0, or -1 with a FATAL-worthy message
 * (an invalid tenant id) in err.
 */
int ph_session_startup(ph_session *s, uint8_t *pkt, size_t *len, char *err, size_t errlen);

/* client -> server */
pgf_want ph_session_c2s_header(void *s, uint8_t type, uint32_t total);
int ph_session_c2s_message(void *s, const uint8_t *msg, uint32_t total, ph_buf *rep);
/*
 * Called by the proxy with each ReadyForQuery from the server, before the
 * hooks see it, when nothing from the client is buffered or half relayed.
 * At the first one (authentication done, the client has asked nothing yet)
 * the engine may want its catalog query sent upstream right away, so the
 * client's first statement already finds the catalog loaded: it appends the
 * query to *up and returns 1 (the proxy sends it); that ReadyForQuery is
 * then dropped and the catalog answer's own one reaches the client instead.
 * Returns 0 when there is nothing to send, -1 when out of memory.
 */
int ph_session_startup_inject(ph_session *s, ph_buf *up);

/* server -> client */
pgf_want ph_session_s2c_header(void *s, uint8_t type, uint32_t total);
int ph_session_s2c_message(void *s, const uint8_t *msg, uint32_t total, ph_buf *rep);

#endif
