/*
 * tslot.h — a small number for the calling thread.
 *
 * Owns: spreading per-key pools (crypto/aead.c, crypto/siv.c) over slots so
 * that worker threads on different cores do not take the same mutex and pass
 * the same cipher contexts back and forth for every value: each thread gets
 * a slot number on its first call, round-robin, and keeps it.
 */
#ifndef PHANTOM_COMMON_TSLOT_H
#define PHANTOM_COMMON_TSLOT_H

#define PH_TSLOTS 8

/* 0 .. PH_TSLOTS - 1, the same for every call on one thread. */
unsigned ph_tslot(void);

#endif
