/* stamps.cu — the host side of stamps.cuh: the ring's allocation
 * (LLORCH_CUDA_STAMPS=1) and, at context destruction, the medians over the
 * decode steps of where each step's time went. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"
#include "stamps.cuh"

int cu_stamps_init(cu_ctx *c) {
    const char *e = getenv("LLORCH_CUDA_STAMPS");
    if (!e || strcmp(e, "1")) return 0;
    void *p;
    if (cu_mem_internal(c, sizeof(cu_stamps), &p)) return -1;
    c->stamps = (cu_stamps *)p;
    if (cudaMemsetAsync(c->stamps->mn, 0xff, sizeof c->stamps->mn, c->stream) != cudaSuccess ||
        cudaMemsetAsync(c->stamps->mx, 0, sizeof c->stamps->mx + sizeof(unsigned), c->stream) != cudaSuccess ||
        cudaStreamSynchronize(c->stream) != cudaSuccess)
        return -1;
    return 0;
}

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* median (p10-p90) of v[0..n) in us, sorted in place */
static void pr(const char *what, double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    fprintf(stderr, "  %-44s %8.2f us (p10 %.2f, p90 %.2f)\n", what, v[n / 2], v[n / 10], v[n * 9 / 10]);
}

void cu_stamps_report(cu_ctx *c) {
    if (!c->stamps) return;
    cu_stamps *h = (cu_stamps *)malloc(sizeof *h);
    if (!h || cudaMemcpy(h, c->stamps, sizeof *h, cudaMemcpyDeviceToHost) != cudaSuccess) {
        free(h);
        return;
    }
    enum { NV = 13 };
    static const char *const names[NV] = {
        "head end (t-1) to layers entry (graph boundary)", "layers entry to past its PDL wait",
        "layers past the wait to the last block out",       "layers out to head entry",
        "head entry to past its PDL wait",                  "head past the wait to its end",
        "step (head end to head end)",                      "layers: first to last block entry",
        "layers entry to its PDL wait (prologue)",
        "head: past the wait to the 1st block's x ready", "head: past the wait to the last block's x ready",
        "head: first to last block out of its loop",      "head: last block out of its loop to its end"};
    double *v[NV];
    int n = 0;
    const unsigned steps = h->step < CU_ST_STEPS ? h->step : CU_ST_STEPS;
    int ok = 1;
    for (int k = 0; k < NV; k++) ok &= (v[k] = (double *)malloc((steps + 1) * sizeof(double))) != NULL;
    for (unsigned t = 1; ok && t < steps; t++) {
        const unsigned long long *m = h->mn[t], *x = h->mx[t], pe = h->mx[t - 1][CU_ST_HD_END];
        /* a decode step: both kernels stamped, the previous step's head too */
        if (m[CU_ST_PW_IN] == ~0ull || m[CU_ST_HD_IN] == ~0ull || !x[CU_ST_PW_END] || !x[CU_ST_HD_END] || !pe ||
            pe > m[CU_ST_PW_IN] || x[CU_ST_HD_END] - pe > 5000000ull)
            continue;
        const double d[NV] = {(double)(long long)(m[CU_ST_PW_IN] - pe), (double)(m[CU_ST_PW_GO] - m[CU_ST_PW_IN]),
                              (double)(x[CU_ST_PW_END] - m[CU_ST_PW_GO]), (double)(long long)(m[CU_ST_HD_IN] - x[CU_ST_PW_END]),
                              (double)(m[CU_ST_HD_GO] - m[CU_ST_HD_IN]), (double)(x[CU_ST_HD_END] - m[CU_ST_HD_GO]),
                              (double)(x[CU_ST_HD_END] - pe),
                              (double)(long long)(x[CU_ST_PW_IN_LAST] - m[CU_ST_PW_IN]),
                              (double)(long long)(m[CU_ST_PW_PRE] - m[CU_ST_PW_IN]),
                              (double)(long long)(m[CU_ST_HD_NORM] - m[CU_ST_HD_GO]),
                              (double)(long long)(x[CU_ST_HD_NORM_LAST] - m[CU_ST_HD_GO]),
                              (double)(long long)(x[CU_ST_HD_LOOP_LAST] - m[CU_ST_HD_LOOP]),
                              (double)(long long)(x[CU_ST_HD_END] - x[CU_ST_HD_LOOP_LAST])};
        for (int k = 0; k < NV; k++) v[k][n] = d[k] / 1e3;
        n++;
    }
    fprintf(stderr, "cuda step stamps (LLORCH_CUDA_STAMPS=1): %d decode steps of %u stamped\n", n, h->step);
    for (int k = 0; n > 0 && k < NV; k++) pr(names[k], v[k], n);
    for (int k = 0; k < NV; k++) free(v[k]);
    free(h);
}
