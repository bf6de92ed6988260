/* memory.cu — the device allocator of the CUDA backend (SPEC §3.5).
 *
 * cudaMalloc only (its pointers are 256-byte aligned; checked anyway).
 * Every allocation is recorded (pointer, bytes) so mem_used is exact, free()
 * of a foreign pointer is caught, and the residency check can walk them.
 * mem_limit (test knob) makes an allocation that would exceed it fail with
 * -ENOMEM without touching the device; a real out-of-memory from the driver
 * is also -ENOMEM, and its (non-sticky) error is cleared so the process
 * carries on (SPEC: VRAM_OOM is retriable). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

int cu_latch(cu_ctx *c, cudaError_t e, const char *what, const char *file, int line) {
    if (e == cudaSuccess) return 0;
    if (!c->err) {
        c->err = (int)e;
        snprintf(c->errmsg, sizeof c->errmsg, "%s: %s (%s:%d)", what, cudaGetErrorString(e), file, line);
    }
    return 1;
}

int cu_mem_alloc(cu_ctx *c, size_t bytes, void **out) {
    *out = NULL;
    if (bytes == 0) bytes = 256; /* a distinct, freeable pointer */
    if (c->mem_limit && c->mem_used + bytes > c->mem_limit) return -ENOMEM;
    if (c->n_allocs == c->cap_allocs) {
        int cap = c->cap_allocs ? 2 * c->cap_allocs : 256;
        cu_alloc_rec *a = (cu_alloc_rec *)realloc(c->allocs, (size_t)cap * sizeof *a);
        if (!a) return -ENOMEM;
        c->allocs = a;
        c->cap_allocs = cap;
    }
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* out-of-memory is not sticky: clear it */
        return -ENOMEM;
    }
    if (((uintptr_t)p & 255u) != 0) { /* never seen; the contract says 256-aligned */
        cudaFree(p);
        return -ENOMEM;
    }
    c->allocs[c->n_allocs].p = p;
    c->allocs[c->n_allocs].bytes = bytes;
    c->n_allocs++;
    c->mem_used += bytes;
    *out = p;
    return 0;
}

void cu_mem_free(cu_ctx *c, void *p) {
    if (!p) return;
    for (int i = c->n_allocs - 1; i >= 0; i--) {
        if (c->allocs[i].p != p) continue;
        c->mem_used -= c->allocs[i].bytes;
        c->allocs[i] = c->allocs[--c->n_allocs];
        /* cudaFree synchronizes the device: the memory may still be in use by
         * queued work, which cudaFree waits for. */
        CUDA_CHECK(c, cudaFree(p));
        return;
    }
    /* not ours: a programmer bug in the caller; latch it rather than free */
    if (!c->err) {
        c->err = (int)cudaErrorInvalidDevicePointer;
        snprintf(c->errmsg, sizeof c->errmsg, "free of a pointer this backend did not allocate (%p)", p);
    }
}

int cu_mem_internal(cu_ctx *c, size_t bytes, void **out) {
    *out = NULL;
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        return -ENOMEM;
    }
    c->internal_bytes += bytes;
    *out = p;
    return 0;
}

/* Resident = the driver says device memory and there is no host mapping. */
int cu_mem_is_resident(cu_ctx *c, const void *p, char *why, size_t whylen) {
    (void)c;
    cudaPointerAttributes a;
    memset(&a, 0, sizeof a);
    cudaError_t e = cudaPointerGetAttributes(&a, p);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        if (why && whylen) snprintf(why, whylen, "cudaPointerGetAttributes(%p): %s", p, cudaGetErrorString(e));
        return 0;
    }
    if (a.type != cudaMemoryTypeDevice) {
        if (why && whylen) snprintf(why, whylen, "%p is not device memory (type %d)", p, (int)a.type);
        return 0;
    }
    if (a.hostPointer != NULL) {
        if (why && whylen) snprintf(why, whylen, "%p has a host mapping %p", p, a.hostPointer);
        return 0;
    }
    if (a.device != c->device) {
        if (why && whylen) snprintf(why, whylen, "%p lives on device %d, not %d", p, a.device, c->device);
        return 0;
    }
    return 1;
}

void cu_mem_release_all(cu_ctx *c) {
    for (int i = 0; i < c->n_allocs; i++) cudaFree(c->allocs[i].p);
    c->n_allocs = 0;
    c->mem_used = 0;
    free(c->allocs);
    c->allocs = NULL;
    c->cap_allocs = 0;
}
