/*
 * version.h — the release version, for `phantom version` and the
 * phantom_build_info metric.
 */
#ifndef PHANTOM_OPS_VERSION_H
#define PHANTOM_OPS_VERSION_H

#ifndef PHANTOM_VERSION
#define PHANTOM_VERSION "0.1.0"
#endif

#endif
