/* moe.cu — gpt-oss's mixture-of-experts ops (backend.h, gpt-oss block):
 * routing, the expert matmul (matmul_id), the clamped SwiGLU and the
 * weighted sum of the selected experts. The CPU reference is cpu/cpu_moe.c;
 * these follow its arithmetic where it is cheap to:
 *   - moe_route: one thread per row, the CPU's insertion into a sorted list
 *     of k (ties to the lower index, so the ids are exactly the CPU's), the
 *     softmax over the k selected with expf(x - max), the sum in double and
 *     one scale by (float)(1 / sum);
 *   - matmul_id: the mat-vec of mmv.cu restricted to the selected experts:
 *     the activation rows are quantized once to the weight's vec_dot_type
 *     (the mmv scratch: at most CU_MMV_MAX_ROWS activation rows per launch,
 *     so more rows run as a loop of chunks), then one block per (output
 *     row, slot) takes the integer qfmt<T>::dot over the row of expert
 *     ids[slot]; F32/F16/BF16 experts read x directly (fp16-rounded for F16,
 *     as the CPU's vec_dot type). The bias is added after the dot, as the
 *     CPU does. An id outside [0, n_expert) writes NaN (the CPU latches
 *     -EINVAL; a kernel cannot, and NaN makes the fault visible).
 *     Cost: every slot reads its expert's whole matrix, so a prefill of R
 *     rows reads R*k expert matrices (from L2 where slots share experts)
 *     instead of at most n_expert: correct first; an expert-grouped tiled
 *     path is the next step (docs/ARCHITECTURE.md, gpt-oss).
 *   - swiglu_oai, moe_sum: elementwise; moe_sum adds the slots in order
 *     with separate roundings (__fmul_rn/__fadd_rn: no contraction) as the
 *     CPU does.
 * Nothing here allocates; every dynamic input (ids, weights) is read on the
 * device, so all of it is safe inside the decode graph. */
#include <math.h>

#include "quants.cuh"

#define MOE_MAX_K 64 /* as cpu_moe.c */
#define MOEV_THREADS 128

/* ---- routing ------------------------------------------------------------------------- */
__global__ void k_moe_route(const float *logits, int rows, int n_expert, int k, int32_t *ids, float *w) {
    cu_pdl_begin();
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float *l = logits + (int64_t)r * n_expert;
    int id[MOE_MAX_K];
    int n = 0;
    for (int e = 0; e < n_expert; e++) {
        const float v = l[e];
        if (n == k && !(v > l[id[k - 1]])) continue;
        int i = n < k ? n++ : k - 1;
        while (i > 0 && v > l[id[i - 1]]) {
            id[i] = id[i - 1];
            i--;
        }
        id[i] = e;
    }
    float mx = -INFINITY;
    for (int j = 0; j < k; j++) mx = fmaxf(mx, l[id[j]]);
    float p[MOE_MAX_K];
    double sum = 0.0;
    for (int j = 0; j < k; j++) {
        p[j] = expf(l[id[j]] - mx);
        sum += (double)p[j];
    }
    const float inv = (float)(1.0 / sum);
    for (int j = 0; j < k; j++) {
        ids[(int64_t)r * k + j] = id[j];
        w[(int64_t)r * k + j] = __fmul_rn(p[j], inv);
    }
}

void cu_moe_route(cu_ctx *c, const float *logits, int rows, int n_expert, int k, int32_t *ids, float *w) {
    if (rows <= 0) return;
    if (k < 1 || k > MOE_MAX_K || k > n_expert) {
        cu_latch(c, cudaErrorInvalidValue, "moe_route: k out of range", __FILE__, __LINE__);
        return;
    }
    cu_launch(c, cu_div_up(rows, 64), 64, 0, k_moe_route, logits, rows, n_expert, k, ids, w);
    LAUNCH_CHECK(c, "moe_route");
}

/* ---- clamped SwiGLU and the weighted sum ------------------------------------------- */
__global__ void k_swiglu_oai(const float *gate, const float *up, float *out, int64_t n, float alpha, float limit) {
    cu_pdl_begin();
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const float g = fminf(gate[i], limit);
        const float u = fminf(fmaxf(up[i], -limit), limit);
        const float glu = __fdiv_rn(g, __fadd_rn(1.0f, expf(__fmul_rn(alpha, -g))));
        out[i] = __fmul_rn(glu, __fadd_rn(u, 1.0f));
    }
}

void cu_swiglu_oai(cu_ctx *c, const float *gate, const float *up, float *out, int64_t n, float alpha, float limit) {
    if (n <= 0) return;
    const int64_t nb = (n + 255) / 256;
    cu_launch(c, (unsigned)(nb < 65536 ? nb : 65536), 256, 0, k_swiglu_oai, gate, up, out, n, alpha, limit);
    LAUNCH_CHECK(c, "swiglu_oai");
}

/* grid (dim blocks of 256, rows) */
__global__ void k_moe_sum(const float *e, const float *w, int k, int dim, float *out) {
    cu_pdl_begin();
    const int r = blockIdx.y, i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= dim) return;
    const float *er = e + (int64_t)r * k * dim, *wr = w + (int64_t)r * k;
    float o = __fmul_rn(er[i], wr[0]);
    for (int j = 1; j < k; j++) o = __fadd_rn(o, __fmul_rn(er[(int64_t)j * dim + i], wr[j]));
    out[(int64_t)r * dim + i] = o;
}

void cu_moe_sum(cu_ctx *c, const float *e, const float *w, int rows, int k, int dim, float *out) {
    if (rows <= 0 || dim <= 0) return;
    if (k < 1 || rows > 65535) {
        cu_latch(c, cudaErrorInvalidValue, "moe_sum: k < 1 or too many rows", __FILE__, __LINE__);
        return;
    }
    cu_launch(c, dim3(cu_div_up(dim, 256), (unsigned)rows), 256, 0, k_moe_sum, e, w, k, dim, out);
    LAUNCH_CHECK(c, "moe_sum");
}

/* ---- expert matmul ---------------------------------------------------------------------
 * Slots i = r*k + j. An activation row serves spa = k / n_x consecutive
 * slots (k when all slots of a row share x, 1 when each has its own). A
 * launch covers activation rows [a0, a0 + na), i.e. slots
 * [a0*spa, (a0 + na)*spa); blockIdx.y is the slot within the launch. */
template <int T>
__global__ void __launch_bounds__(MOEV_THREADS)
k_mmv_id_q(const uint8_t *w, size_t nb1, size_t nb2, int n_mat, int nblk, int ne1, const int32_t *ids, int spa,
           int a0, const int8_t *aq, const float *ad, const float *as, int K, const float *b, float *y) {
    typedef qfmt<T> F;
    cu_pdl_begin();
    const int o = blockIdx.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int64_t slot = (int64_t)a0 * spa + blockIdx.y;
    const int a = (int)(slot / spa) - a0; /* activation row in the scratch */
    const int e = ids[slot];
    if (e < 0 || e >= n_mat) {
        if (tid == 0) y[slot * ne1 + o] = NAN;
        return;
    }
    const uint8_t *wr = w + (size_t)e * nb2 + (size_t)o * nb1;
    const int K32 = K / 32;
    const int8_t *xq = aq + (int64_t)a * K;
    const float *xd = ad + (int64_t)a * K32, *xs = as + (int64_t)a * K32;
    float acc = 0.0f;
    const int units = nblk * F::NSUB;
#pragma unroll 2
    for (int u = tid; u < units; u += MOEV_THREADS) {
        const int blk = u / F::NSUB, s = u % F::NSUB;
        const int g = blk * (F::QK / 32);
        acc += F::dot(wr + (size_t)blk * F::BYTES, s, xq + (int64_t)blk * F::QK, xd + g, xs + g);
    }
    __shared__ float red[MOEV_THREADS / 32];
    acc = warp_sum(acc);
    if (lane == 0) red[warp] = acc;
    __syncthreads();
    if (tid == 0) {
        float v = 0.0f;
#pragma unroll
        for (int wi = 0; wi < MOEV_THREADS / 32; wi++) v += red[wi];
        y[slot * ne1 + o] = b ? __fadd_rn(v, b[(int64_t)e * ne1 + o]) : v;
    }
}

/* F32/F16/BF16 experts: one warp per output row, 4 rows per block; grid
 * (ne1/4, slots of this launch starting at slot0) */
template <int T>
__global__ void __launch_bounds__(128)
k_mmv_id_f(const uint8_t *w, size_t nb1, size_t nb2, int n_mat, int ne0, int ne1, const int32_t *ids, int spa,
           int64_t slot0, const float *x, const float *b, float *y) {
    cu_pdl_begin();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int o = blockIdx.x * 4 + warp;
    if (o >= ne1) return;
    const int64_t slot = slot0 + blockIdx.y;
    const int e = ids[slot];
    if (e < 0 || e >= n_mat) {
        if (lane == 0) y[slot * ne1 + o] = NAN;
        return;
    }
    const uint8_t *wr = w + (size_t)e * nb2 + (size_t)o * nb1;
    const float *xr = x + (slot / spa) * ne0;
    float acc = 0.0f;
#pragma unroll 4
    for (int i = lane; i < ne0; i += 32) {
        float wv, xv = xr[i];
        if (T == QT_F32) wv = ((const float *)wr)[i];
        else if (T == QT_F16) {
            wv = h2f(((const uint16_t *)wr)[i]);
            xv = __half2float(__float2half_rn(xv));
        } else wv = bf2f(((const uint16_t *)wr)[i]);
        acc += wv * xv;
    }
    acc = warp_sum(acc);
    if (lane == 0) y[slot * ne1 + o] = b ? __fadd_rn(acc, b[(int64_t)e * ne1 + o]) : acc;
}

template <int T>
static void launch_id_q(cu_ctx *c, const eng_w *w, const int32_t *ids, int spa, int a0, int na, const float *b,
                        float *y) {
    const dim3 grid((unsigned)w->ne1, (unsigned)(na * spa));
    cu_launch(c, grid, MOEV_THREADS, 0, k_mmv_id_q<T>, (const uint8_t *)w->data, w->nb1, w->nb2, (int)w->ne2,
              (int)(w->ne0 / qfmt<T>::QK), (int)w->ne1, ids, spa, a0, (const int8_t *)c->act_q, (const float *)c->act_d,
              (const float *)c->act_s, (int)w->ne0, b, y);
}

void cu_matmul_id(cu_ctx *c, const eng_w *w, const float *x, int n_x, const int32_t *ids, int k, const float *b,
                  float *y, int rows) {
    if (rows <= 0 || w->ne1 <= 0) return;
    if (k < 1 || (n_x != 1 && n_x != k) || w->ne2 < 1 || w->ne1 > 65535 * 4) {
        cu_latch(c, cudaErrorInvalidValue, "matmul_id: bad k / n_x / shape", __FILE__, __LINE__);
        return;
    }
    const int spa = k / n_x;
    const int64_t n_act = (int64_t)rows * n_x, n_slot = (int64_t)rows * k;
    const uint8_t *wd = (const uint8_t *)w->data;
    if (w->type == QT_F32 || w->type == QT_F16 || w->type == QT_BF16) {
        /* x is read directly: all slots, in launches of at most 65535 */
        for (int64_t s0 = 0; s0 < n_slot; s0 += 65535) {
            const int64_t ns = n_slot - s0 < 65535 ? n_slot - s0 : 65535;
            const dim3 grid(cu_div_up(w->ne1, 4), (unsigned)ns);
#define LF(T) cu_launch(c, grid, 128, 0, k_mmv_id_f<T>, wd, w->nb1, w->nb2, (int)w->ne2, (int)w->ne0, (int)w->ne1, ids, spa, s0, x, b, y)
            if (w->type == QT_F32) LF(QT_F32);
            else if (w->type == QT_F16) LF(QT_F16);
            else LF(QT_BF16);
#undef LF
            if (LAUNCH_CHECK(c, "matmul_id_f")) return;
        }
        return;
    }
    const qt_info_t *qi = qt_info(w->type);
    if (!qi || w->ne0 > CU_ACT_MAX_K || w->ne0 % 32) {
        cu_latch(c, cudaErrorNotSupported, "matmul_id: unsupported type or shape", __FILE__, __LINE__);
        return;
    }
    /* chunks of at most CU_MMV_MAX_ROWS activation rows: quantize, then the dot */
    for (int64_t a0 = 0; a0 < n_act; a0 += CU_MMV_MAX_ROWS) {
        const int na = (int)(n_act - a0 < CU_MMV_MAX_ROWS ? n_act - a0 : CU_MMV_MAX_ROWS);
        /* no cache: the scratch now holds this chunk (backend.cu cleared c->aq_x) */
        if (cu_act_quant(c, NULL, x + a0 * w->ne0, na, (int)w->ne0, cu_vdt_of(w->type)) < 0) return;
        int handled = 1;
#define MV(T) launch_id_q<T>(c, w, ids, spa, (int)a0, na, b, y)
        QFMT_DISPATCH(w->type, MV)
#undef MV
        if (!handled) {
            cu_latch(c, cudaErrorNotSupported, "matmul_id: unsupported tensor type", __FILE__, __LINE__);
            return;
        }
        if (LAUNCH_CHECK(c, "matmul_id_q")) return;
    }
}
