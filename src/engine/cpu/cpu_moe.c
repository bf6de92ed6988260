/* cpu_moe — gpt-oss's mixture-of-experts ops on the CPU (backend.h):
 * routing, the expert matmul, the clamped SwiGLU and the weighted sum of
 * the selected experts, with llama.cpp's CPU numerics where they are
 * cheap to follow:
 *   - routing: the k largest logits in descending order (ggml_top_k; ties
 *     to the lower index), softmax over them as ggml_soft_max does it
 *     (expf(x - max), sum in double, scaled by (float)(1 / sum));
 *   - expert matmul: llama.cpp's mul_mat_id quantizes the activations to
 *     the weight type's vec_dot_type and takes one vec_dot per output, as
 *     cpu_matmul does; rows routed to one expert are gathered and run as one
 *     cpu_matmul (one pass over that expert's weights), then scattered;
 *     the bias is added after (ggml_add_id);
 *   - swiglu_oai: ggml's formula, x / (1 + expf(-alpha x)) * (y + 1);
 *   - the expert outputs are weighted (ggml_mul) and added slot after slot.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu_int.h"

/* no fused multiply-adds beyond those written (ggml's ops round each step) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define MOE_MAX_K 64

void cpu_moe_route(void *ctx, const float *logits, int rows, int n_expert, int k, int32_t *ids, float *w) {
    cpu_ctx *c = ctx;
    if (k < 1 || k > MOE_MAX_K || k > n_expert) {
        c->err = -EINVAL;
        return;
    }
    for (int r = 0; r < rows; r++) {
        const float *l = logits + (int64_t)r * n_expert;
        int32_t *id = ids + (int64_t)r * k;
        float *wr = w + (int64_t)r * k;
        /* insertion into a sorted list of k: n_expert is small (32) */
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
        float max = -INFINITY;
        for (int j = 0; j < k; j++)
            if (l[id[j]] > max) max = l[id[j]];
        double sum = 0.0;
        for (int j = 0; j < k; j++) {
            wr[j] = expf(l[id[j]] - max);
            sum += (double)wr[j];
        }
        const float inv = (float)(1.0 / sum);
        for (int j = 0; j < k; j++) wr[j] *= inv;
    }
}

void cpu_matmul_id(void *ctx, const eng_w *w, const float *x, int n_x, const int32_t *ids, int k, const float *b,
                   float *y, int rows) {
    cpu_ctx *c = ctx;
    if (rows <= 0 || k < 1 || (n_x != 1 && n_x != k) || w->ne2 < 1) {
        c->err = -EINVAL;
        return;
    }
    const int64_t n = (int64_t)rows * k, ne0 = w->ne0, ne1 = w->ne1;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= w->ne2) {
            c->err = -EINVAL;
            return;
        }
    /* scratch: gathered inputs [n][ne0], outputs [n][ne1], slot map [n] */
    const size_t need = (size_t)n * (size_t)(ne0 + ne1) * sizeof(float) + (size_t)n * sizeof(int32_t);
    if (need > c->mbuf_cap) {
        void *nb = NULL;
        if (posix_memalign(&nb, 64, need) != 0) {
            c->err = -ENOMEM;
            return;
        }
        free(c->mbuf);
        c->mbuf = nb;
        c->mbuf_cap = need;
    }
    float *xg = c->mbuf, *yg = xg + n * ne0;
    int32_t *slot = (int32_t *)(yg + n * ne1);
    for (int64_t e = 0; e < w->ne2; e++) {
        int cnt = 0;
        for (int64_t i = 0; i < n; i++) {
            if (ids[i] != e) continue;
            const int64_t r = i / k, j = i % k;
            memcpy(xg + (int64_t)cnt * ne0, x + (r * n_x + (n_x == 1 ? 0 : j)) * ne0, (size_t)ne0 * sizeof(float));
            slot[cnt++] = (int32_t)i;
        }
        if (!cnt) continue;
        eng_w we = *w;
        we.data = (const char *)w->data + (size_t)e * w->nb2;
        we.ne2 = 1;
        cpu_matmul(c, &we, xg, yg, cnt);
        const float *be = b ? b + e * ne1 : NULL;
        for (int i = 0; i < cnt; i++) {
            float *dst = y + (int64_t)slot[i] * ne1;
            const float *src = yg + (int64_t)i * ne1;
            if (be)
                for (int64_t o = 0; o < ne1; o++) dst[o] = src[o] + be[o];
            else
                memcpy(dst, src, (size_t)ne1 * sizeof(float));
        }
    }
}

typedef struct {
    const float *gate, *up;
    float *out;
    int64_t n;
    float alpha, limit;
} oai_args;

static void oai_task(void *ap, int ith, int nth) {
    oai_args *a = ap;
    int64_t lo, hi;
    cpu_split(a->n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        const float g = a->gate[i] < a->limit ? a->gate[i] : a->limit;
        const float u = a->up[i] < -a->limit ? -a->limit : a->up[i] > a->limit ? a->limit : a->up[i];
        const float glu = g / (1.0f + expf(a->alpha * (-g)));
        a->out[i] = glu * (u + 1.0f);
    }
}

void cpu_swiglu_oai(void *ctx, const float *gate, const float *up, float *out, int64_t n, float alpha, float limit) {
    cpu_ctx *c = ctx;
    oai_args a = {gate, up, out, n, alpha, limit};
    cpu_pool_run(c->pool, oai_task, &a, cpu_nth_rows(c, n / 256 + 1, n * 8));
}

void cpu_moe_sum(void *ctx, const float *e, const float *w, int rows, int k, int dim, float *out) {
    (void)ctx;
    for (int r = 0; r < rows; r++) {
        const float *er = e + (int64_t)r * k * dim, *wr = w + (int64_t)r * k;
        float *o = out + (int64_t)r * dim;
        for (int i = 0; i < dim; i++) o[i] = er[i] * wr[0];
        for (int j = 1; j < k; j++) {
            const float *ej = er + (int64_t)j * dim;
            for (int i = 0; i < dim; i++) {
                const float p = ej[i] * wr[j];
                o[i] = o[i] + p;
            }
        }
    }
}
