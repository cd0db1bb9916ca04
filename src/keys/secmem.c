/*
 * secmem.c — locked, non-dumpable, wiped-on-free memory for key material
 * (see secmem.h).
 */
#include "keys/secmem.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/log.h"

static atomic_int g_mlock_warned;
static atomic_int g_dontdump_warned;

static void warn_once(atomic_int *flag, const char *event, int err)
{
    if (atomic_exchange(flag, 1) == 0)
        ph_log_warn(event, "reason", strerror(err), "effect",
                    "key memory may be swapped or dumped; continuing");
}

static size_t page_round(size_t n)
{
    long ps = sysconf(_SC_PAGESIZE);
    size_t page = ps > 0 ? (size_t)ps : 4096u;
    return (n + page - 1) / page * page;
}

void *ph_secure_alloc(size_t n)
{
    if (n == 0 || n > ((size_t)1 << 30))
        return NULL;
    size_t len = page_round(n);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_DONTDUMP
    if (madvise(p, len, MADV_DONTDUMP) != 0)
        warn_once(&g_dontdump_warned, "madvise_dontdump_failed", errno);
#endif
    if (mlock(p, len) != 0)
        warn_once(&g_mlock_warned, "mlock_failed", errno);
    return p; /* anonymous mappings are zero-filled */
}

void ph_secure_free(void *p, size_t n)
{
    if (!p)
        return;
    size_t len = page_round(n);
    OPENSSL_cleanse(p, len);
    munlock(p, len); /* fails harmlessly when mlock had failed */
    munmap(p, len);
}

int ph_secure_process_init(void)
{
    int rc = 0;
    struct rlimit rl = {0, 0};
    if (setrlimit(RLIMIT_CORE, &rl) != 0) {
        ph_log_warn("core_limit_failed", "reason", strerror(errno));
        rc = -1;
    }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        ph_log_warn("set_dumpable_failed", "reason", strerror(errno));
        rc = -1;
    }
    return rc;
}

int ph_os_random(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int ph_secure_mlock_failed(void)
{
    return atomic_load(&g_mlock_warned);
}
