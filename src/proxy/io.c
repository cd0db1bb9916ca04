/*
 * io.c — non-blocking reads and writes on plain or TLS sockets; see io.h.
 */
#include "proxy/io.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

static ssize_t tls_result(ph_ep *ep, int r, bool reading)
{
    int e = SSL_get_error(ep->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        if (reading)
            ep->rd_wants_write = false;
        else
            ep->wr_wants_read = true;
        return PH_IO_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        if (reading)
            ep->rd_wants_write = true;
        else
            ep->wr_wants_read = false;
        return PH_IO_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        ep->err = errno;
        if (reading && ep->err == 0)
            return 0; /* peer closed without close_notify: treat as EOF */
        return PH_IO_ERR;
    default:
        ep->err = 0;
        return PH_IO_ERR;
    }
}

ssize_t ph_ep_read(ph_ep *ep, void *buf, size_t len)
{
    if (!ep->ssl) {
        for (;;) {
            ssize_t r = recv(ep->fd, buf, len, 0);
            if (r >= 0)
                return r;
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return PH_IO_AGAIN;
            ep->err = errno;
            return PH_IO_ERR;
        }
    }
    ERR_clear_error();
    int n = len > INT32_MAX ? INT32_MAX : (int)len;
    int r = SSL_read(ep->ssl, buf, n);
    if (r > 0) {
        ep->rd_wants_write = false;
        return r;
    }
    return tls_result(ep, r, true);
}

static ssize_t plain_writev(ph_ep *ep, const struct iovec *iov, int iovcnt)
{
    for (;;) {
        ssize_t r;
        if (iovcnt == 1) {
            r = send(ep->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
        } else {
            struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
            r = sendmsg(ep->fd, &mh, MSG_NOSIGNAL);
        }
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return PH_IO_AGAIN;
        ep->err = errno;
        return PH_IO_ERR;
    }
}

ssize_t ph_ep_writev(ph_ep *ep, const struct iovec *iov, int iovcnt)
{
    if (!ep->ssl)
        return plain_writev(ep, iov, iovcnt);
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        size_t off = 0;
        while (off < iov[i].iov_len) {
            size_t left = iov[i].iov_len - off;
            int n = left > (1u << 30) ? (1 << 30) : (int)left;
            ERR_clear_error();
            int r = SSL_write(ep->ssl, (const char *)iov[i].iov_base + off, n);
            if (r <= 0) {
                ssize_t res = tls_result(ep, r, false);
                return total > 0 && res == PH_IO_AGAIN ? (ssize_t)total : res;
            }
            ep->wr_wants_read = false;
            off += (size_t)r;
            total += (size_t)r;
        }
    }
    return (ssize_t)total;
}

int ph_ep_write_small(ph_ep *ep, const void *buf, size_t len)
{
    struct iovec iov = {(void *)(uintptr_t)buf, len};
    size_t done = 0;
    for (int tries = 0; done < len && tries < 100; tries++) {
        iov.iov_base = (char *)(uintptr_t)buf + done;
        iov.iov_len = len - done;
        ssize_t r = ph_ep_writev(ep, &iov, 1);
        if (r > 0)
            done += (size_t)r;
        else if (r != PH_IO_AGAIN)
            return -1;
    }
    return done == len ? 0 : -1;
}

bool ph_ep_pending(const ph_ep *ep)
{
    return ep->ssl && SSL_pending(ep->ssl) > 0;
}

void ph_ep_close(ph_ep *ep)
{
    if (ep->ssl) {
        SSL_free(ep->ssl);
        ep->ssl = NULL;
    }
    if (ep->fd >= 0) {
        close(ep->fd);
        ep->fd = -1;
    }
}

int ph_sock_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL, 0);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

void ph_sock_tune(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}
