/*
 * io.h — one side of a proxied connection: a non-blocking socket, optionally
 * wrapped in TLS.
 *
 * Owns: reading and writing bytes without blocking, with one result
 * convention for plain sockets and OpenSSL (which may need to write in order
 * to read, or the reverse). No protocol knowledge.
 */
#ifndef PHANTOM_IO_H
#define PHANTOM_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <openssl/ssl.h>

#define PH_IO_AGAIN (-2) /* would block: wait for the events ph_ep says */
#define PH_IO_ERR   (-1) /* connection broken: see ph_ep.err */

typedef struct ph_ep {
    int fd;
    SSL *ssl;
    bool rd_wants_write; /* TLS: the last read needs the socket writable */
    bool wr_wants_read;  /* TLS: the last write needs the socket readable */
    int err;             /* errno of the last PH_IO_ERR (0 for TLS errors) */
} ph_ep;

/* >0 bytes read, 0 orderly EOF, PH_IO_AGAIN, PH_IO_ERR. */
ssize_t ph_ep_read(ph_ep *ep, void *buf, size_t len);
/* >0 bytes written (possibly fewer than offered), PH_IO_AGAIN, PH_IO_ERR. */
ssize_t ph_ep_writev(ph_ep *ep, const struct iovec *iov, int iovcnt);
/* Writes all of buf on a fresh socket that can take it (tiny control replies). */
int ph_ep_write_small(ph_ep *ep, const void *buf, size_t len);
/* Bytes OpenSSL has already decrypted and buffered (invisible to epoll). */
bool ph_ep_pending(const ph_ep *ep);
/* Frees the TLS state and closes the socket. */
void ph_ep_close(ph_ep *ep);

/* Socket helpers. */
int ph_sock_nonblock(int fd);
void ph_sock_tune(int fd); /* TCP_NODELAY + keepalive */

#endif
