/* bench_quant — throughput of qt_vec_dot (SIMD) vs qt_vec_dot_ref (scalar)
 * per weight format: a matrix-vector product of R rows x N columns, reported
 * as ns per row and weight GB/s; then qt_quantize_row and qt_quantize_act
 * speeds (CPU time, so a busy machine skews less). Not part of the build; run with:
 *   cmake --build build --target llorch_quant
 *   cc -O2 -Isrc bench/bench_quant.c build/libllorch_quant.a build/libllorch_core.a -lm -lpthread -o /tmp/bq
 *   /tmp/bq [N] [R] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/quant.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const int64_t n = argc > 1 ? atoll(argv[1]) : 4096;
    const int rows = argc > 2 ? atoi(argv[2]) : 1024;
    static const int types[] = {QT_F32,  QT_F16,  QT_BF16, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1,
                                QT_Q8_0, QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_MXFP4};
    float *w = malloc(n * 4), *x = malloc(n * 4);
    uint64_t s = 1;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        w[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
        x[i] = w[(i * 7) % n];
    }
    printf("%-6s %10s %10s %9s %8s\n", "type", "simd ns/r", "ref ns/r", "GB/s", "speedup");
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const int t = types[k], vdt = qt_info(t)->vec_dot_type;
        const size_t rb = qt_row_bytes(t, n);
        if (!rb) continue;
        uint8_t *m = malloc(rb * rows);
        void *xq = malloc(qt_row_bytes(vdt, n));
        for (int r = 0; r < rows; r++) qt_quantize_row(t, w, m + rb * r, n);
        qt_quantize_act(vdt, x, xq, n);
        volatile float sink = 0;
        double best[2] = {1e9, 1e9};
        for (int pass = 0; pass < 3; pass++)
            for (int which = 0; which < 2; which++) {
                double t0 = now();
                for (int r = 0; r < rows; r++)
                    sink += which ? qt_vec_dot_ref(t, m + rb * r, xq, n) : qt_vec_dot(t, m + rb * r, xq, n);
                double dt = now() - t0;
                if (dt < best[which]) best[which] = dt;
            }
        printf("%-6s %10.0f %10.0f %9.2f %7.1fx\n", qt_info(t)->name, best[0] / rows * 1e9, best[1] / rows * 1e9,
               (double)rb * rows / best[0] / 1e9, best[1] / best[0]);
        (void)sink;
        free(m);
        free(xq);
    }
    /* quantizers, 1M elements each, CPU time */
    const int64_t nq = 1 << 20;
    float *src = malloc(nq * 4);
    void *dst = malloc(nq * 4);
    for (int64_t i = 0; i < nq; i++) src[i] = w[i % n] * (float)(1 + i % 5);
    memset(dst, 0, nq * 4);
    printf("\n%-6s %12s\n", "type", "quantize M/s");
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        if (!qt_info(types[k])->can_quantize || types[k] == QT_F32) continue;
        struct timespec a, b;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
        qt_quantize_row(types[k], src, dst, nq);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
        printf("%-6s %12.1f\n", qt_info(types[k])->name, nq / ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9) / 1e6);
    }
    static const int acts[] = {QT_Q8_0, QT_Q8_1, QT_Q8_K, QT_F16};
    for (size_t k = 0; k < sizeof acts / sizeof acts[0]; k++) {
        struct timespec a, b;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
        qt_quantize_act(acts[k], src, dst, nq);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
        printf("act %-4s %10.1f\n", qt_info(acts[k])->name, nq / ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9) / 1e6);
    }
    free(src);
    free(dst);
    free(w);
    free(x);
    return 0;
}
