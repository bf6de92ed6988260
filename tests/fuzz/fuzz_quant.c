// test-libs: llorch_quant llorch_core
/* libFuzzer target: every byte of a weight block is outside input. Byte 0
 * picks a format; the rest is a row of blocks (whole blocks only), which is
 * dequantized and dotted (SIMD and scalar reference) against a fixed
 * activation row; the same bytes read as floats (NaN, inf, subnormals
 * included) go through every quantizer. ASan/UBSan see every read and
 * conversion; where the decoded weights are finite and modest, the SIMD and
 * reference dots must agree, and the SIMD quantizers (K-quant scale search,
 * activations) must write the scalar ones' bytes even for NaN/inf input. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant.h"
#include "engine/quant_impl.h" /* scalar twins of the SIMD quantizers */

static const int k_types[] = {QT_F32,  QT_F16,  QT_BF16, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_Q8_0, QT_Q8_1,
                              QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_Q8_K, QT_I8,   QT_I16,  QT_I32,
                              QT_MXFP4};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const int t = k_types[data[0] % (sizeof k_types / sizeof k_types[0])];
    const qt_info_t *in = qt_info(t);
    data++;
    size--;
    int64_t nblk = (int64_t)(size / (size_t)in->bytes);
    if (nblk > 64) nblk = 64;
    const int64_t n = nblk * in->blck;
    if (n > 0) {
        /* aligned private copy: rows are 2-byte aligned in GGUF, Q8_K needs 4 */
        uint8_t *w = malloc((size_t)(nblk * in->bytes));
        float *wd = malloc((size_t)n * 4), *x = malloc((size_t)n * 4), *xd = malloc((size_t)n * 4);
        memcpy(w, data, (size_t)(nblk * in->bytes));
        qt_dequant_row(t, w, wd, n);
        if (in->vec_dot_type >= 0) {
            for (int64_t i = 0; i < n; i++) x[i] = (float)((i * 37) % 19 - 9) * 0.25f;
            void *xq = malloc(qt_row_bytes(in->vec_dot_type, n));
            qt_quantize_act(in->vec_dot_type, x, xq, n);
            qt_dequant_row(in->vec_dot_type, xq, xd, n);
            const float fast = qt_vec_dot(t, w, xq, n), slow = qt_vec_dot_ref(t, w, xq, n);
            double mag = 0;
            int finite = 1;
            for (int64_t i = 0; i < n; i++) {
                finite &= isfinite(wd[i]) && fabsf(wd[i]) < 1e30f;
                mag += fabs((double)wd[i] * xd[i]);
            }
            if (finite && mag < 1e30 && fabs((double)fast - slow) > 1e-4 * mag + 1e-30) abort();
            free(xq);
        }
        free(w);
        free(wd);
        free(x);
        free(xd);
    }
    /* the same bytes as floats through every quantizer */
    int64_t nf = (int64_t)(size / 4) / 32 * 32;
    if (nf > 2048) nf = 2048;
    if (nf >= 32) {
        float *f = malloc((size_t)nf * 4), *back = malloc((size_t)nf * 4);
        memcpy(f, data, (size_t)nf * 4);
        int moderate = 1;
        for (int64_t i = 0; i < nf; i++)
            moderate &= f[i] == 0.0f || (fabsf(f[i]) >= 1e-20f && fabsf(f[i]) <= 1e9f);
        void *q = malloc((size_t)nf * 4), *q2 = malloc((size_t)nf * 4);
        for (size_t k = 0; k < sizeof k_types / sizeof k_types[0]; k++) {
            const int qt = k_types[k];
            const qt_info_t *qi = qt_info(qt);
            if (!qi->can_quantize || nf % qi->blck) continue;
            if (qt_quantize_row(qt, f, q, nf) != 0) abort();
            qt_dequant_row(qt, q, back, nf);
            /* SIMD == scalar bytes only where no inf/NaN can arise inside the
             * search (x^3 sums, 1/(max-min)): with NaNs the result depends on
             * which operand's NaN the hardware propagates, i.e. on operand
             * order the compiler may swap */
            if (moderate && qt__kquant_scalar(qt, f, q2, nf) == 0 && memcmp(q, q2, qt_row_bytes(qt, nf))) abort();
        }
        static const int acts[] = {QT_Q8_0, QT_Q8_1, QT_Q8_K, QT_F16};
        for (size_t k = 0; k < sizeof acts / sizeof acts[0]; k++) {
            if (nf % qt_info(acts[k])->blck) continue;
            qt_quantize_act(acts[k], f, q, nf);
            qt__act_ref(acts[k], f, q2, nf);
            if (memcmp(q, q2, qt_row_bytes(acts[k], nf))) abort();
        }
        free(f);
        free(back);
        free(q);
        free(q2);
    }
    return 0;
}
