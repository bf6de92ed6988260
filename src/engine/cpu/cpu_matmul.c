/* cpu_matmul — y[rows][ne1] = x[rows][ne0] · w^T on quantized weights.
 *
 * As ggml does: the activation rows are quantized once per matmul into the
 * weight type's vec_dot_type (Q8_0, Q8_1, Q8_K, F16; F32 weights use x as
 * is) into a scratch buffer the backend keeps (grown to the largest use, so
 * steady-state decoding allocates nothing), then each output element is one
 * qt_vec_dot of a weight row with an activation row. Output rows are split
 * across the pool; for several activation rows (prompt processing) the
 * weight rows are walked in blocks of MM_BLOCK so a block stays in cache
 * while every activation row passes over it.
 */
#include <errno.h>
#include <stdlib.h>

#include "engine/cpu/cpu_int.h"
#include "engine/quant.h"

#define MM_BLOCK 16

typedef struct {
    const eng_w *w;
    const float *x;
    char *xq;          /* [rows][rb] quantized activations (or x itself for F32) */
    size_t rb;         /* bytes per quantized row */
    int vdt;           /* vec_dot_type */
    float *y;
    int rows;
} mm_args;

static void quant_task(void *ap, int ith, int nth) {
    mm_args *a = ap;
    int64_t lo, hi;
    cpu_split(a->rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) qt_quantize_act(a->vdt, a->x + r * a->w->ne0, a->xq + r * a->rb, a->w->ne0);
}

static void mm_task(void *ap, int ith, int nth) {
    mm_args *a = ap;
    const eng_w *w = a->w;
    const int64_t ne0 = w->ne0, ne1 = w->ne1;
    const char *wd = w->data;
    int64_t lo, hi;
    cpu_split(ne1, ith, nth, &lo, &hi);
    if (a->rows == 1) {
        for (int64_t o = lo; o < hi; o++) a->y[o] = qt_vec_dot(w->type, wd + o * w->nb1, a->xq, ne0);
        return;
    }
    for (int64_t ob = lo; ob < hi; ob += MM_BLOCK) {
        const int64_t oe = ob + MM_BLOCK < hi ? ob + MM_BLOCK : hi;
        for (int r = 0; r < a->rows; r++) {
            const char *xr = a->xq + (size_t)r * a->rb;
            float *yr = a->y + (int64_t)r * ne1;
            for (int64_t o = ob; o < oe; o++) yr[o] = qt_vec_dot(w->type, wd + o * w->nb1, xr, ne0);
        }
    }
}

void cpu_matmul(void *ctx, const eng_w *w, const float *x, float *y, int rows) {
    cpu_ctx *c = ctx;
    const qt_info_t *ti = qt_info(w->type);
    if (!ti || ti->vec_dot_type < 0 || rows <= 0) {
        c->err = -EINVAL;
        return;
    }
    mm_args a = {w, x, NULL, 0, ti->vec_dot_type, y, rows};
    if (a.vdt == QT_F32) {
        a.xq = (char *)x;
        a.rb = (size_t)w->ne0 * sizeof(float);
    } else {
        a.rb = qt_row_bytes(a.vdt, w->ne0);
        size_t need = a.rb * (size_t)rows;
        if (a.rb == 0) {
            c->err = -EINVAL;
            return;
        }
        if (need > c->qbuf_cap) {
            void *nb = NULL;
            if (posix_memalign(&nb, 64, need) != 0) {
                c->err = -ENOMEM;
                return;
            }
            free(c->qbuf);
            c->qbuf = nb;
            c->qbuf_cap = need;
        }
        a.xq = c->qbuf;
        cpu_pool_run(c->pool, quant_task, &a, cpu_nth_rows(c, rows, (int64_t)rows * w->ne0 * 4));
    }
    const int64_t work = w->ne0 * w->ne1 * (int64_t)rows;
    int nth = cpu_nth_for(c, work);
    if (nth > w->ne1) nth = (int)w->ne1;
    cpu_pool_run(c->pool, mm_task, &a, nth);
}
