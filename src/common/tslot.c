/*
 * tslot.c — per-thread slot numbers and per-slot objects (see tslot.h).
 */
#include "common/tslot.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "common/mem.h"

static atomic_uint g_next;
static _Thread_local unsigned t_slot; /* slot + 1; 0 = not assigned yet */

unsigned ph_tslot(void)
{
    if (!t_slot)
        t_slot = atomic_fetch_add_explicit(&g_next, 1, memory_order_relaxed) % PH_TSLOTS + 1;
    return t_slot - 1;
}

static void drop(void *obj, const ph_tslot_kind *k)
{
    if (obj && k->fini)
        k->fini(obj);
    free(obj);
}

void *ph_tslots_mine(ph_tslots *t, const ph_tslot_kind *k)
{
    void *_Atomic *at = &t->slot[ph_tslot()];
    void *obj = atomic_load_explicit(at, memory_order_acquire);
    if (obj)
        return obj;
    if (!(obj = ph_calloc(1, k->size)))
        return NULL;
    if (k->init && k->init(obj) != 0) {
        free(obj);
        return NULL;
    }
    void *first = NULL; /* another thread of this slot may have been first */
    if (!atomic_compare_exchange_strong_explicit(at, &first, obj, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        drop(obj, k);
        return first;
    }
    return obj;
}

void ph_tslots_free(ph_tslots *t, const ph_tslot_kind *k)
{
    for (unsigned i = 0; i < PH_TSLOTS; i++)
        drop(atomic_exchange_explicit(&t->slot[i], NULL, memory_order_acq_rel), k);
}
