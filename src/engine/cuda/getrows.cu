/* getrows.cu — embedding lookup: out[i][0..ne0) = dequant(row ids[i] of w).
 * ids live in device memory (graph replay reads the new token each step).
 * An id outside [0, ne1) writes NaN to its row: it can only come from a bug
 * upstream, and NaN makes it visible instead of reading foreign memory. */
#include "quants.cuh"

/* quantized: one thread per sub (8 elements); grid (n, subs/256) */
template <int T>
__global__ void k_get_rows_q(const uint8_t *w, size_t nb1, int64_t ne1, int nblk, const int32_t *ids, float *out,
                             int64_t ne0) {
    cu_pdl_begin();
    typedef qfmt<T> F;
    const int i = blockIdx.x;
    const int u = blockIdx.y * blockDim.x + threadIdx.x;
    if (u >= nblk * F::NSUB) return;
    const int blk = u / F::NSUB, s = u % F::NSUB;
    const int32_t id = ids[i];
    float *o = out + (int64_t)i * ne0 + (int64_t)blk * F::QK;
    if (id < 0 || id >= ne1) {
        for (int j = 0; j < 4; j++) o[F::e0(s) + j] = o[F::e1(s) + j] = __int_as_float(0x7fc00000);
        return;
    }
    float v[8];
    F::deq(w + (size_t)id * nb1 + (size_t)blk * F::BYTES, s, v);
    *(float4 *)(o + F::e0(s)) = make_float4(v[0], v[1], v[2], v[3]);
    *(float4 *)(o + F::e1(s)) = make_float4(v[4], v[5], v[6], v[7]);
}

/* F32 / F16 / BF16: one thread per element */
template <int T>
__global__ void k_get_rows_f(const uint8_t *w, size_t nb1, int64_t ne1, const int32_t *ids, float *out, int64_t ne0) {
    cu_pdl_begin();
    const int i = blockIdx.x;
    const int64_t j = (int64_t)blockIdx.y * blockDim.x + threadIdx.x;
    if (j >= ne0) return;
    const int32_t id = ids[i];
    float v;
    if (id < 0 || id >= ne1) v = __int_as_float(0x7fc00000);
    else {
        const uint8_t *r = w + (size_t)id * nb1;
        if (T == QT_F32) v = ((const float *)r)[j];
        else if (T == QT_F16) v = h2f(((const uint16_t *)r)[j]);
        else v = bf2f(((const uint16_t *)r)[j]);
    }
    out[(int64_t)i * ne0 + j] = v;
}

void cu_get_rows(cu_ctx *c, const eng_w *w, const int32_t *ids, int n, float *out) {
    if (n <= 0) return;
    const uint8_t *wd = (const uint8_t *)w->data;
    if (w->type == QT_F32 || w->type == QT_F16 || w->type == QT_BF16) {
        dim3 grid((unsigned)n, cu_div_up(w->ne0, 256));
        if (w->type == QT_F32) cu_launch(c, grid, 256, 0, k_get_rows_f<QT_F32>, wd, w->nb1, w->ne1, ids, out, w->ne0);
        else if (w->type == QT_F16) cu_launch(c, grid, 256, 0, k_get_rows_f<QT_F16>, wd, w->nb1, w->ne1, ids, out, w->ne0);
        else cu_launch(c, grid, 256, 0, k_get_rows_f<QT_BF16>, wd, w->nb1, w->ne1, ids, out, w->ne0);
        LAUNCH_CHECK(c, "get_rows_f");
        return;
    }
    int handled = 1;
#define GR(T)                                                                                            \
    {                                                                                                    \
        const int nblk = (int)(w->ne0 / qfmt<T>::QK);                                                    \
        dim3 grid((unsigned)n, cu_div_up((int64_t)nblk * qfmt<T>::NSUB, 256));                           \
        cu_launch(c, grid, 256, 0, k_get_rows_q<T>, wd, w->nb1, w->ne1, nblk, ids, out, w->ne0);        \
    }
    QFMT_DISPATCH(w->type, GR)
#undef GR
    if (!handled) {
        cu_latch(c, cudaErrorNotSupported, "get_rows: unsupported tensor type", __FILE__, __LINE__);
        return;
    }
    LAUNCH_CHECK(c, "get_rows_q");
}
