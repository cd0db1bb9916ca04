/*
 * tslot.c — per-thread slot numbers (see tslot.h).
 */
#include "common/tslot.h"

#include <stdatomic.h>

static atomic_uint g_next;
static _Thread_local unsigned t_slot; /* slot + 1; 0 = not assigned yet */

unsigned ph_tslot(void)
{
    if (!t_slot)
        t_slot = atomic_fetch_add_explicit(&g_next, 1, memory_order_relaxed) % PH_TSLOTS + 1;
    return t_slot - 1;
}
