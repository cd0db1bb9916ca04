/*
 * tslot.h — a small number for the calling thread, and storage per number.
 *
 * Owns: spreading per-key pools (crypto/aead.c, crypto/siv.c) over slots so
 * that worker threads on different cores do not take the same mutex and pass
 * the same cipher contexts back and forth for every value: each thread gets
 * a slot number on its first call, round-robin, and keeps it. A key's slot
 * is allocated only when a thread of that slot first uses the key, so a key
 * costs PH_TSLOTS pointers until then (there may be many tenant keys).
 */
#ifndef PHANTOM_COMMON_TSLOT_H
#define PHANTOM_COMMON_TSLOT_H

#include <stddef.h>

#define PH_TSLOTS 8

/* 0 .. PH_TSLOTS - 1, the same for every call on one thread. */
unsigned ph_tslot(void);

/* Per-slot objects, all NULL until used (a zeroed ph_tslots is empty). */
typedef struct ph_tslots {
    void *_Atomic slot[PH_TSLOTS];
} ph_tslots;

/* What a slot object is: its size, and how it is set up (0 ok) and torn down. */
typedef struct ph_tslot_kind {
    size_t size;
    int (*init)(void *obj);
    void (*fini)(void *obj);
} ph_tslot_kind;

/* This thread's slot object: on first use k->size zeroed bytes, set up by
 * k->init and published for the slot's other threads. NULL when it cannot
 * be made. */
void *ph_tslots_mine(ph_tslots *t, const ph_tslot_kind *k);
/* Single-threaded teardown: k->fini on every object made, then frees it. */
void ph_tslots_free(ph_tslots *t, const ph_tslot_kind *k);

#endif
