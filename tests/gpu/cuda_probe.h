/* cuda_probe — the start of a CUDA test's main(): is the CUDA backend linked
 * in, and is there a device to run on? Header-only. */
#ifndef CUDA_PROBE_H
#define CUDA_PROBE_H

#include <errno.h>
#include <stdio.h>

#include "engine/backend.h"

extern const int llorch_cuda_backend_linked;

/* 0 when a CUDA backend can be created on device 0 (it is destroyed again);
 * 77 (CTest's skip) when no device exists, said on stderr under name; 1 when
 * the backend is not linked in or fails otherwise */
static inline int tc_cuda_probe(const char *name) {
    if (!llorch_cuda_backend_linked) return 1;
    eng_backend b;
    char err[256];
    int rc = eng_backend_cuda_new(0, 0, &b, err, sizeof err);
    if (rc == -ENODEV) {
        fprintf(stderr, "%s: skipped: %s\n", name, err);
        return 77;
    }
    if (rc) return 1;
    b.ops->destroy(b.ctx);
    return 0;
}

#endif
