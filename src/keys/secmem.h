/*
 * secmem.h — memory for plaintext key material, and process hardening.
 *
 * Owns: random key bytes from the OS CSPRNG, page-granular allocations that are locked in RAM
 * (mlock, so keys are never swapped; a failure is not fatal and is logged once per process),
 * excluded from core dumps (madvise MADV_DONTDUMP, also logged once on
 * failure), and wiped with OPENSSL_cleanse before being returned to the
 * system; plus ph_secure_process_init(), which disables core dumps for the
 * whole process (RLIMIT_CORE 0 and prctl(PR_SET_DUMPABLE, 0)).
 *
 * Keys elsewhere (stack copies, EVP contexts) must still be cleansed by
 * their owners; this module only guarantees the long-lived copies.
 */
#ifndef PHANTOM_KEYS_SECMEM_H
#define PHANTOM_KEYS_SECMEM_H

#include <stddef.h>

/* Returns zeroed, page-aligned memory of at least n bytes (n > 0), or NULL. */
void *ph_secure_alloc(size_t n);

/* Wipes and releases memory from ph_secure_alloc (same n). NULL allowed. */
void ph_secure_free(void *p, size_t n);

/*
 * Disables core dumps of this process: RLIMIT_CORE soft and hard limit 0
 * and PR_SET_DUMPABLE 0 (which also stops same-uid ptrace attaches and
 * makes /proc/self/ files root-owned). Call once, early, in every process
 * that will hold plaintext keys (the `keys` CLI does; the proxy should call
 * it before it loads the first key). Returns 0, or -1 if either call failed
 * (logged; not fatal).
 */
int ph_secure_process_init(void);

/* Fills buf with n bytes from the kernel CSPRNG (getrandom(2), blocking
 * until it is seeded): the source of every DEK and master key. 0 or -1. */
int ph_os_random(void *buf, size_t n);

/* For tests and diagnostics: 1 once an mlock failure has been seen. */
int ph_secure_mlock_failed(void);

#endif
