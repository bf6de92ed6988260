// test-libs: llorch_engine_cuda llorch_engine llorch_quant llorch_tok llorch_gguf llorch_core
/* test_cuda_ops — every CUDA backend op against the CPU backend (the
 * reference) on fresh random inputs of several shapes, odd sizes included,
 * every block format quant.c can quantize. Device outputs are poisoned with
 * NaN before each run; a NaN or Inf anywhere fails.
 *
 * Bounds (relative L2 error ||gpu - ref|| / ||ref||):
 *   TOL_ATT       attention: the CPU reference is llama.cpp's CPU flash
 *                 attention (fp16 q, one fp16 rounding of the accumulator
 *                 per key), the CUDA kernels accumulate in fp32: 3e-3 up to
 *                 150 keys, growing as sqrt(keys) beyond (H200: 6.6e-3 at
 *                 2001 keys, bound 1.1e-2).
 *   TOL_F32 1e-4  fp32-accumulated paths: elementwise, norm, rope,
 *                 the mat-vec (rows <= 8: it runs the CPU's own integer dot
 *                 on the same q8 activations, so only summation order differs)
 *                 and the fp32 tiled matmul of F32/F16/BF16 weights.
 *   TOL_EXACT 1e-6 get_rows (pure dequantization).
 *   TOL_ORDER 1e-5 two CUDA paths with the same fp32 terms summed in
 *                 another order (attn_rope against attention).
 *   gpt-oss ops: moe_route's ids must equal the CPU's exactly (same
 *                 comparisons), its weights TOL_F32; matmul_id TOL_F32 (the
 *                 mat-vec's integer dot on the same q8 activations, for every
 *                 row count); swiglu_oai, moe_sum TOL_F32; attention_ext
 *                 TOL_ATT of the keys inside the window.
 *   TOL_KV16 1e-3 fp16 K/V cache rows written from fp32 values that are
 *                 within TOL_F32 of the CPU's (one half-ulp flip is 4.9e-4).
 *   TOL_MM16 2e-3 prefill matmul of quantized weights (tensor cores): both
 *                 operands are rounded to fp16 (relative 2^-11 each), checked
 *                 against the exact product of the dequantized weights in
 *                 double. Against the CPU backend the same result differs by
 *                 the CPU's own q8 activation rounding (~0.5% per element,
 *                 ~4e-3 on a dot): TOL_MM16_CPU 2e-2 there.
 * Exits 77 (CTest skip) where no CUDA device exists. */
#include <errno.h>
#include <math.h>
#include <time.h>

#include "engine/backend.h"
#include "engine/quant.h"
#include "engine/sampler.h"
#include "testutil.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define TOL_EXACT 1e-6
/* the same fp32 terms summed in another order (attn_rope's lane groups
 * against attention's one key per warp): a few ulps of the output */
#define TOL_ORDER 1e-5
#define TOL_F32 1e-4
#define TOL_ATT(keys) (3e-3 * sqrt((keys) > 150 ? (keys) / 150.0 : 1.0))
#define TOL_MM16 2e-3
#define TOL_MM16_CPU 2e-2
#define TOL_KV16 1e-3
/* A whole decoder block (decode_block / decode_layers) quantizes its
 * activations to int8 four times. Two CUDA paths that differ only in fp32
 * summation order produce the same integers until one value lands on the
 * other side of a rounding boundary; from then on the difference is that of
 * a different activation, not a summation error: observed on H100 between
 * the persistent kernel and the CUDA composition (and between the
 * composition and the CPU at position 0, where attention is exact) at
 * 2.5e-3 .. 1.3e-2 in x, on inputs that depend on the random stream (the
 * full test run vs a filtered one). Blocks are bounded by this, the q/k/v/att
 * intermediates (before any flip can matter much) by TOL_BLOCK_PRE. */
#define TOL_BLOCK_FLIP 2e-2
/* fp32 activations (pkw.cu) against Q8_1/Q8_K activations: the activation
 * quantization's error on one layer's outputs (~0.5% expected, 4x margin),
 * and on x after test_decode_layers' three random layers, where the blocks
 * amplify it as they amplify rounding flips (3.0e-2 seen at position 0,
 * where the two Q8 paths agree to 3e-7; H100) */
#define TOL_PKW_ACT 2e-2
#define TOL_PKW_X 6e-2
#define TOL_BLOCK_PRE 1e-3

static eng_backend G, C;
static uint64_t g_seed = 0x5eed1234abcdull;

/* ---- helpers --------------------------------------------------------------------- */
static float *rnd(size_t n, float scale) {
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = tu_randf(&g_seed) * scale;
    return p;
}

static void *gdup(const void *src, size_t bytes) {
    void *d = NULL;
    assert_int_equal(G.ops->alloc(G.ctx, bytes, &d), 0);
    assert_int_equal(G.ops->upload(G.ctx, d, src, bytes), 0);
    return d;
}

/* device buffer of n floats filled with NaN */
static float *gpoison(size_t n) {
    float *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = NAN;
    float *d = gdup(h, n * sizeof *h);
    free(h);
    return d;
}
static void gpoison_again(float *d, size_t n) {
    float *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = NAN;
    assert_int_equal(G.ops->upload(G.ctx, d, h, n * sizeof *h), 0);
    free(h);
}

static float *gget(const float *d, size_t n) {
    float *h = malloc(n * sizeof *h);
    assert_int_equal(G.ops->download(G.ctx, h, d, n * sizeof *h), 0);
    return h;
}

static double rel_err(const float *got, const float *ref, size_t n, const char *what) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]) || !isfinite(ref[i])) {
            fail_msg("%s: non-finite at %zu: gpu %g ref %g", what, i, got[i], ref[i]);
        }
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void check(const float *got, const float *ref, size_t n, double tol, const char *what) {
    double e = rel_err(got, ref, n, what);
    if (!(e <= tol)) fail_msg("%s: relative error %.3g > %.3g", what, e, tol);
}

static void check_d(const float *got, const double *ref, size_t n, double tol, const char *what) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) fail_msg("%s: non-finite at %zu", what, i);
        double d = got[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    double e = sqrt(num / (den > 0 ? den : 1));
    if (!(e <= tol)) fail_msg("%s: relative error %.3g > %.3g", what, e, tol);
}

static const int k_types[] = {QT_F32, QT_F16, QT_BF16, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_Q8_0,
                              QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_MXFP4};

/* a random weight matrix [ne1][ne0] quantized to type t (host bytes) */
static void *make_weights(int t, int64_t ne0, int64_t ne1, size_t *nb1) {
    *nb1 = qt_row_bytes(t, ne0);
    assert_true(*nb1 > 0);
    uint8_t *w = malloc(*nb1 * (size_t)ne1);
    float *row = rnd((size_t)ne0, 1.0f);
    for (int64_t r = 0; r < ne1; r++) {
        for (int64_t i = 0; i < ne0; i++) row[i] = tu_randf(&g_seed);
        assert_int_equal(qt_quantize_row(t, row, w + (size_t)r * *nb1, ne0), 0);
    }
    free(row);
    return w;
}

static int usable(int t) {
    const qt_info_t *qi = qt_info(t);
    return qi && qi->can_quantize;
}

/* LLORCH_TEST_QUICK=1 (sanitizer passes, tests/gpu/sanitize.sh): the
 * shapes that reach every kernel body in few launches. test_fused_matmul:
 * rows 1 only (3 and 9 compose test_matmul's kernels), each format at its
 * shortest length plus the Q4_0 lengths; the mixed-type case only at the
 * shortest length (the one-type case is the one that sends matmul_add and
 * SwiGLU through the Q4_0 bodies). test_matmul_prefill: the shapes {33, 9}
 * and {9, 100} (one and two 64-row tiles, few and many outputs), the second
 * K (partial 64-wide step) on the first; every variant still runs. */
static int quick(void) {
    const char *q = getenv("LLORCH_TEST_QUICK");
    return q && *q && strcmp(q, "0");
}

/* row lengths to test per type: odd where the format allows */
static int lengths(int t, int64_t out[3]) {
    int bl = qt_info(t)->blck;
    if (bl == 1) { out[0] = 67; out[1] = 896; out[2] = 1001; return 3; }
    if (bl == 32) { out[0] = 32; out[1] = 224; out[2] = 896; return 3; }
    out[0] = 256; out[1] = 768; out[2] = 2048; return 3;
}

/* ---- tests --------------------------------------------------------------------------- */
static void test_memory(void **st) {
    (void)st;
    eng_backend b;
    char err[256];
    assert_int_equal(eng_backend_cuda_new(0, 1 << 20, &b, err, sizeof err), 0);
    assert_string_equal(b.ops->memory_architecture, "vram-only");
    void *p = NULL, *q = NULL;
    assert_int_equal(b.ops->alloc(b.ctx, 1000, &p), 0);
    assert_true(((uintptr_t)p & 255) == 0);
    assert_int_equal(b.ops->mem_used(b.ctx), 1000);
    char why[256] = "";
    assert_int_equal(b.ops->is_resident(b.ctx, p, why, sizeof why), 1);
    int local = 0;
    assert_int_equal(b.ops->is_resident(b.ctx, &local, why, sizeof why), 0);
    assert_true(strlen(why) > 0);
    /* the limit: 1 MiB in all */
    assert_int_equal(b.ops->alloc(b.ctx, (1 << 20), &q), -ENOMEM);
    assert_null(q);
    assert_int_equal(b.ops->alloc(b.ctx, (1 << 20) - 1000, &q), 0);
    assert_int_equal(b.ops->mem_used(b.ctx), 1 << 20);
    b.ops->free(b.ctx, p);
    assert_int_equal(b.ops->mem_used(b.ctx), (1 << 20) - 1000);
    b.ops->free(b.ctx, q);
    b.ops->free(b.ctx, NULL);
    assert_int_equal(b.ops->mem_used(b.ctx), 0);
    /* a real device OOM is -ENOMEM and the backend stays usable */
    eng_backend u;
    assert_int_equal(eng_backend_cuda_new(0, 0, &u, err, sizeof err), 0);
    void *huge = NULL;
    assert_int_equal(u.ops->alloc(u.ctx, (size_t)1 << 44, &huge), -ENOMEM);
    assert_int_equal(u.ops->alloc(u.ctx, 4096, &huge), 0);
    assert_int_equal(u.ops->zero(u.ctx, huge, 4096), 0);
    assert_int_equal(u.ops->sync(u.ctx), 0);
    u.ops->free(u.ctx, huge);
    u.ops->destroy(u.ctx);
    int sm = 0, rt = 0;
    char name[128] = "";
    uint64_t tot = 0, fr = 0;
    b.ops->device_info(b.ctx, &sm, &rt, name, sizeof name, &tot, &fr);
    assert_true(sm >= 70 && rt > 0 && tot > 0 && fr > 0 && name[0]);
    print_message("device: %s sm %d runtime %d, %.1f GiB total\n", name, sm, rt, tot / 1073741824.0);
    b.ops->destroy(b.ctx);
}

static void test_error_latch(void **st) {
    (void)st;
    eng_backend b;
    char err[256];
    assert_int_equal(eng_backend_cuda_new(0, 0, &b, err, sizeof err), 0);
    float *x = NULL, *y = NULL;
    assert_int_equal(b.ops->alloc(b.ctx, 64 * 4, (void **)&x), 0);
    assert_int_equal(b.ops->alloc(b.ctx, 64 * 4, (void **)&y), 0);
    eng_w w = {x, QT_I32, 16, 4, 1, 64, 256}; /* no matmul for I32 */
    b.ops->matmul(b.ctx, &w, x, y, 1);
    assert_int_equal(b.ops->sync(b.ctx), -EIO);
    float h[4];
    assert_int_equal(b.ops->download(b.ctx, h, y, sizeof h), -EIO);
    b.ops->destroy(b.ctx);
}

static void test_get_rows(void **st) {
    (void)st;
    for (size_t ti = 0; ti < NELEM(k_types); ti++) {
        const int t = k_types[ti];
        if (!usable(t)) continue;
        int64_t ls[3];
        int nl = lengths(t, ls);
        for (int li = 0; li < nl; li++) {
            const int64_t ne0 = ls[li], ne1 = 37;
            size_t nb1;
            void *wh = make_weights(t, ne0, ne1, &nb1);
            const int n = 7;
            int32_t ids[7] = {0, 36, 5, 5, 17, 1, 30};
            eng_w wg = {gdup(wh, nb1 * ne1), t, ne0, ne1, 1, nb1, nb1 * ne1};
            eng_w wc = {wh, t, ne0, ne1, 1, nb1, nb1 * ne1};
            int32_t *idg = gdup(ids, sizeof ids);
            float *og = gpoison((size_t)n * ne0);
            float *oc = malloc((size_t)n * ne0 * 4);
            G.ops->get_rows(G.ctx, &wg, idg, n, og);
            C.ops->get_rows(C.ctx, &wc, ids, n, oc);
            float *h = gget(og, (size_t)n * ne0);
            char what[64];
            snprintf(what, sizeof what, "get_rows %s ne0=%lld", qt_info(t)->name, (long long)ne0);
            check(h, oc, (size_t)n * ne0, TOL_EXACT, what);
            free(h);
            free(oc);
            G.ops->free(G.ctx, og);
            G.ops->free(G.ctx, idg);
            G.ops->free(G.ctx, (void *)wg.data);
            free(wh);
        }
    }
}

/* prefill matmul variants: auto tile, each forced tile of mm_tc.cu, the
 * previous WMMA kernel (the MM_PASSES test_matmul runs), then the
 * fp16-activation variant of mm_xh.cu (LLORCH_CUDA_MM_XH=1: K steps of 32,
 * =2: K steps of 64) at its two tiles (test_matmul_prefill runs all
 * MM_PASSES_ALL) */
#define MM_PASSES 6
#define MM_PASSES_ALL 10
static const char *const k_mm_pass[MM_PASSES_ALL] = {"default", "L", "X", "M", "S", "old",
                                                     "xh X", "xh S", "xh64 X", "xh64 S"};
static void set_mm_pass(int pass) {
    unsetenv("LLORCH_CUDA_MM");
    unsetenv("LLORCH_CUDA_MM_TILE");
    unsetenv("LLORCH_CUDA_MM_XH");
    const char *n = k_mm_pass[pass];
    if (pass >= 1 && pass < MM_PASSES - 1) {
        setenv("LLORCH_CUDA_MM_XH", "0", 1); /* mm_tc.cu's own tiles */
        setenv("LLORCH_CUDA_MM_TILE", n, 1);
    }
    if (pass == MM_PASSES - 1) setenv("LLORCH_CUDA_MM", "1", 1);
    if (pass >= MM_PASSES) {
        setenv("LLORCH_CUDA_MM_XH", strncmp(n, "xh64", 4) == 0 ? "2" : "1", 1);
        setenv("LLORCH_CUDA_MM_TILE", n + strlen(n) - 1, 1); /* "xh X" -> "X" */
    }
}
/* the pass of mm_tc.cu at the same tile as an mm_xh.cu pass ("X" or "S") */
static int mm_pass_same_tile(int pass) {
    const char *n = k_mm_pass[pass];
    return n[strlen(n) - 1] == 'X' ? 2 : 4;
}

static void test_matmul(void **st) {
    (void)st;
    const int rows_list[] = {1, 2, 3, 8, 9, 33, 71};
    for (size_t ti = 0; ti < NELEM(k_types); ti++) {
        const int t = k_types[ti];
        if (!usable(t)) continue;
        const int is_float = qt_info(t)->blck == 1;
        int64_t ls[3];
        int nl = lengths(t, ls);
        for (int li = 0; li < nl; li++) {
            const int64_t ne0 = ls[li];
            /* li 0 of a quantized type: 4224 outputs x 200 rows, enough tiles
             * for the prefill's 64x128 variant (the others take 64x64) */
            const int big = li == 0 && !is_float;
            const int64_t ne1 = big ? 4224 : li == 1 ? 130 : 37;
            size_t nb1;
            void *wh = make_weights(t, ne0, ne1, &nb1);
            eng_w wg = {gdup(wh, nb1 * ne1), t, ne0, ne1, 1, nb1, nb1 * ne1};
            eng_w wc = {wh, t, ne0, ne1, 1, nb1, nb1 * ne1};
            /* exact dequantized weights for the double reference */
            float *wf = malloc((size_t)ne0 * ne1 * 4);
            for (int64_t r = 0; r < ne1; r++) qt_dequant_row(t, (uint8_t *)wh + r * nb1, wf + r * ne0, ne0);
            for (size_t ri = 0; ri < (big ? 2 : NELEM(rows_list)); ri++) {
                const int rows = big ? (ri ? 200 : 1) : rows_list[ri];
                float *x = rnd((size_t)rows * ne0, 2.0f);
                float *xg = gdup(x, (size_t)rows * ne0 * 4);
                float *yg = gpoison((size_t)rows * ne1);
                float *yc = malloc((size_t)rows * ne1 * 4);
                /* the big prefill case runs once per tile shape (mm_tc.cu)
                 * and once on the previous kernel (mm.cu, LLORCH_CUDA_MM=1) */
                const int passes = big && rows > 8 ? MM_PASSES : 1;
                for (int pass = 0; pass < passes; pass++) {
                    if (passes > 1) set_mm_pass(pass);
                    if (pass > 0) gpoison_again(yg, (size_t)rows * ne1);
                    G.ops->matmul(G.ctx, &wg, xg, yg, rows);
                    if (pass == 0) C.ops->matmul(C.ctx, &wc, x, yc, rows);
                    assert_int_equal(C.ops->sync(C.ctx), 0);
                    float *h = gget(yg, (size_t)rows * ne1);
                    char what[96];
                    snprintf(what, sizeof what, "matmul %s ne0=%lld ne1=%lld rows=%d tile=%s", qt_info(t)->name,
                             (long long)ne0, (long long)ne1, rows, k_mm_pass[pass]);
                    if (rows <= 8 || is_float) {
                        check(h, yc, (size_t)rows * ne1, TOL_F32, what);
                    } else {
                        check(h, yc, (size_t)rows * ne1, TOL_MM16_CPU, what);
                        double *ref = malloc((size_t)rows * ne1 * sizeof *ref);
                        for (int r = 0; r < rows; r++)
                            for (int64_t o = 0; o < ne1; o++) {
                                double s = 0;
                                for (int64_t i = 0; i < ne0; i++) s += (double)wf[o * ne0 + i] * x[(size_t)r * ne0 + i];
                                ref[(size_t)r * ne1 + o] = s;
                            }
                        check_d(h, ref, (size_t)rows * ne1, TOL_MM16, what);
                        free(ref);
                    }
                    free(h);
                }
                set_mm_pass(0);
                free(yc);
                free(x);
                G.ops->free(G.ctx, xg);
                G.ops->free(G.ctx, yg);
            }
            free(wf);
            G.ops->free(G.ctx, (void *)wg.data);
            free(wh);
        }
    }
}

/* sets name=value for a test, restores the previous value (or unsets) */
typedef struct {
    const char *name;
    char old[32];
    int had;
} env_save;
static void env_push(env_save *e, const char *name, const char *value) {
    const char *v = getenv(name);
    e->name = name;
    e->had = v != NULL;
    snprintf(e->old, sizeof e->old, "%s", v ? v : "");
    setenv(name, value, 1);
}
static void env_pop(env_save *e) {
    if (e->had) setenv(e->name, e->old, 1);
    else unsetenv(e->name);
}

/* The one-row mat-vec of tall matrices (>= 32768 rows: vocabulary
 * projections), which mmv_tall.cu streams through shared memory in chunks
 * of whole rows: formats with rows of 952 (Q8_0 x 896, the Qwen2.5 output),
 * 616 (Q5_0: rows only 8-byte aligned, so chunk starts and ends fall inside
 * 16-byte lines) and 840 bytes (Q6_K x 1024, the K-quant activation), rows
 * not a multiple of the grid, against the CPU within TOL_F32 (the same
 * integer dots, fp32 sums in another order), through mmv.cu's v1, the
 * opt-in mmv_tall.cu (LLORCH_CUDA_MMV_TALL=1) and mmv_tall_reg.cu (=2, =3;
 * Q8_0 only, the others fall back to v1), which must all agree bit for bit
 * with v1. Q8_0 x 1024 (8 units per lane in mmv_tall_reg.cu) and the real
 * Qwen2.5 output shape too. */
static void test_matmul_tall(void **st) {
    (void)st;
    const struct { int t; int64_t ne0, ne1; } cs[] = {
        {QT_Q8_0, 896, 40009}, {QT_Q5_0, 896, 32771}, {QT_Q6_K, 1024, 33013}, {QT_Q4_0, 896, 151936},
        {QT_Q8_0, 1024, 32869}, {QT_Q8_0, 896, 151936}};
    static const char *const tname[] = {"v1", "mmv_tall", "mmv_tall_reg shfl", "mmv_tall_reg dup"};
    for (size_t ci = 0; ci < NELEM(cs); ci++) {
        const int t = cs[ci].t;
        const int64_t ne0 = cs[ci].ne0, ne1 = cs[ci].ne1;
        size_t nb1;
        void *wh = make_weights(t, ne0, ne1, &nb1);
        eng_w wg = {gdup(wh, nb1 * ne1), t, ne0, ne1, 1, nb1, nb1 * ne1};
        eng_w wc = {wh, t, ne0, ne1, 1, nb1, nb1 * ne1};
        float *x = rnd((size_t)ne0, 2.0f);
        float *xg = gdup(x, (size_t)ne0 * 4), *yg = gpoison((size_t)ne1), *yc = malloc((size_t)ne1 * 4);
        C.ops->matmul(C.ctx, &wc, x, yc, 1);
        assert_int_equal(C.ops->sync(C.ctx), 0);
        float *hv[4];
        for (int tall = 0; tall < 4; tall++) { /* v1, then LLORCH_CUDA_MMV_TALL=1..3 (opt-in, read per call) */
            env_save e;
            const char val[2] = {(char)('0' + tall), 0};
            env_push(&e, "LLORCH_CUDA_MMV_TALL", val);
            gpoison_again(yg, (size_t)ne1);
            G.ops->matmul(G.ctx, &wg, xg, yg, 1);
            hv[tall] = gget(yg, (size_t)ne1);
            env_pop(&e);
            char what[96];
            snprintf(what, sizeof what, "matmul tall %s ne0=%lld ne1=%lld %s", qt_info(t)->name, (long long)ne0,
                     (long long)ne1, tname[tall]);
            check(hv[tall], yc, (size_t)ne1, TOL_F32, what);
            /* the same integer dots, lane order and warp reduction: equal */
            if (tall && memcmp(hv[0], hv[tall], (size_t)ne1 * 4)) {
                size_t i = 0;
                while (!memcmp(&hv[0][i], &hv[tall][i], 4)) i++;
                fprintf(stderr, "%s: differs from v1 at row %zu: %.9g vs %.9g\n", what, i, hv[tall][i], hv[0][i]);
            }
            assert_memory_equal(hv[0], hv[tall], (size_t)ne1 * 4);
        }
        for (int tall = 0; tall < 4; tall++) free(hv[tall]);
        free(yc);
        free(x);
        free(wh);
        G.ops->free(G.ctx, xg);
        G.ops->free(G.ctx, yg);
        G.ops->free(G.ctx, (void *)wg.data);
    }
}

/* the greedy choice over logits h [n]: the highest, the lowest id among
 * equals, NaN skipped, 0 when none (k_argmax's and the head's function) */
static int host_choice(const float *h, int64_t n) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++)
        if (!isnan(h[i]) && (best < 0 || h[i] > h[best])) best = i;
    return best < 0 ? 0 : (int)best;
}

/* One head call (backend.h head) on x [ne0] with ints = {tok_next, ring[2],
 * pos_io[3]} poisoned to -7 except pos_io = {p, p + 1, p + 2}; asserts the
 * logits equal ref bit for bit, the choice is host_choice of them in
 * tok_next and ring[pos & 1] (pos = p + pos_i), the other ring slot still
 * -7, pos_io[0] = pos + 1 and pos_io[1..2] unchanged. Returns the choice. */
int llorch_cuda_head_amax(void *ctx, int on);
static int head_once_mode(const eng_w *wg, const float *xg, const float *gg, const float *ref, int p, int pos_i,
                          const char *what);
/* head_once_mode with the choice by the 64-bit maximum (the default) and by
 * the per-block pairs (LLORCH_CUDA_HEAD_AMAX=0): the same answer */
static int head_once(const eng_w *wg, const float *xg, const float *gg, const float *ref, int p, int pos_i,
                     const char *what) {
    const int was = llorch_cuda_head_amax(G.ctx, 1);
    const int a = head_once_mode(wg, xg, gg, ref, p, pos_i, what);
    llorch_cuda_head_amax(G.ctx, 0);
    const int b = head_once_mode(wg, xg, gg, ref, p, pos_i, what);
    llorch_cuda_head_amax(G.ctx, was);
    assert_int_equal(a, b);
    return a;
}
static int head_once_mode(const eng_w *wg, const float *xg, const float *gg, const float *ref, int p, int pos_i,
                          const char *what) {
    const int64_t ne1 = wg->ne1;
    int32_t ih[6] = {-7, -7, -7, p, p + 1, p + 2};
    int32_t *ig = gdup(ih, sizeof ih);
    float *yg = gpoison((size_t)ne1);
    assert_int_equal(G.ops->head(G.ctx, xg, gg, 1e-6f, wg, yg, ig, ig + 1, ig + 3, pos_i), 0);
    float *h = gget(yg, (size_t)ne1);
    assert_int_equal(G.ops->download(G.ctx, ih, ig, sizeof ih), 0);
    if (memcmp(h, ref, (size_t)ne1 * 4)) {
        int64_t i = 0;
        while (!memcmp(&h[i], &ref[i], 4)) i++;
        fail_msg("%s: head logits differ from rmsnorm + matmul at %lld: %.9g vs %.9g", what, (long long)i, h[i],
                 ref[i]);
    }
    const int want = host_choice(h, ne1), pos = p + pos_i;
    if (ih[0] != want) fail_msg("%s: head chose %d, the logits' argmax is %d", what, ih[0], want);
    assert_int_equal(ih[1 + (pos & 1)], want);
    assert_int_equal(ih[1 + ((pos + 1) & 1)], -7);
    assert_int_equal(ih[3], pos + 1);
    assert_int_equal(ih[4], p + 1);
    assert_int_equal(ih[5], p + 2);
    free(h);
    G.ops->free(G.ctx, yg);
    G.ops->free(G.ctx, ig);
    return want;
}

/* The decode head (backend.h head: output norm, vocabulary mat-vec and
 * greedy choice in one op) on every shape class it covers (Q8_0, K 896 /
 * 1024 / 2048, tall: from 32,771 rows, a partial last sweep, to Qwen's
 * 151,936):
 * logits bit for bit those of rmsnorm + matmul on this backend and within
 * TOL_F32 of the CPU's; the choice, the ring slot and the advanced position
 * as head_once asserts, twice (the grid counter resets), at an odd and an
 * even position (pos_i 0 and 2). Then ties and NaN: the winning row copied
 * to a lower id must move the choice there (equal logits: the lower id);
 * that copy's scale set to NaN (its logit NaN, skipped) must move it back.
 * Shapes it does not cover (Q4_0; K = 64; 1,000 rows, where matmul runs
 * another mat-vec) return -1 and leave the output untouched. */
static void test_head(void **st) {
    (void)st;
    const struct { int64_t ne0, ne1; } cs[] = {{896, 32771}, {896, 151936}, {1024, 40009}, {2048, 33013}};
    for (size_t ci = 0; ci < NELEM(cs); ci++) {
        const int64_t ne0 = cs[ci].ne0, ne1 = cs[ci].ne1;
        if (quick() && ne1 > 50000) continue;
        size_t nb1;
        uint8_t *wh = make_weights(QT_Q8_0, ne0, ne1, &nb1);
        eng_w wg = {gdup(wh, nb1 * ne1), QT_Q8_0, ne0, ne1, 1, nb1, nb1 * ne1};
        eng_w wc = {wh, QT_Q8_0, ne0, ne1, 1, nb1, nb1 * ne1};
        float *x = rnd((size_t)ne0, 3.0f), *g = rnd((size_t)ne0, 1.0f);
        float *xg = gdup(x, (size_t)ne0 * 4), *gg = gdup(g, (size_t)ne0 * 4), *xbg = gpoison((size_t)ne0);
        float *yg = gpoison((size_t)ne1), *xbc = malloc((size_t)ne0 * 4), *yc = malloc((size_t)ne1 * 4);
        char what[96];
        snprintf(what, sizeof what, "head Q8_0 %lldx%lld", (long long)ne0, (long long)ne1);
        /* the composition on both backends */
        G.ops->rmsnorm(G.ctx, xg, gg, xbg, 1, (int)ne0, 1e-6f);
        G.ops->matmul(G.ctx, &wg, xbg, yg, 1);
        float *ref = gget(yg, (size_t)ne1);
        C.ops->rmsnorm(C.ctx, x, g, xbc, 1, (int)ne0, 1e-6f);
        C.ops->matmul(C.ctx, &wc, xbc, yc, 1);
        assert_int_equal(C.ops->sync(C.ctx), 0);
        check(ref, yc, (size_t)ne1, TOL_F32, what);
        const int win = head_once(&wg, xg, gg, ref, 7, 0, what);
        assert_int_equal(head_once(&wg, xg, gg, ref, 8, 2, what), win);
        if (win > 0) {
            /* ties: the winner's bytes at a lower id give the same logit there */
            const int lo = win / 2;
            memcpy(wh + (size_t)lo * nb1, wh + (size_t)win * nb1, nb1);
            assert_int_equal(G.ops->upload(G.ctx, (void *)wg.data, wh, nb1 * ne1), 0);
            ref[lo] = ref[win];
            assert_int_equal(head_once(&wg, xg, gg, ref, 10, 0, what), lo);
            /* NaN: that copy's first block scale (fp16 NaN) makes its logit NaN: skipped */
            wh[(size_t)lo * nb1] = 0x00;
            wh[(size_t)lo * nb1 + 1] = 0x7e;
            assert_int_equal(G.ops->upload(G.ctx, (void *)wg.data, wh, nb1 * ne1), 0);
            G.ops->rmsnorm(G.ctx, xg, gg, xbg, 1, (int)ne0, 1e-6f);
            G.ops->matmul(G.ctx, &wg, xbg, yg, 1);
            free(ref);
            ref = gget(yg, (size_t)ne1);
            assert_true(isnan(ref[lo]));
            assert_int_equal(head_once(&wg, xg, gg, ref, 10, 0, what), win);
        }
        free(ref);
        free(yc);
        free(xbc);
        free(x);
        free(g);
        free(wh);
        G.ops->free(G.ctx, xg);
        G.ops->free(G.ctx, gg);
        G.ops->free(G.ctx, xbg);
        G.ops->free(G.ctx, yg);
        G.ops->free(G.ctx, (void *)wg.data);
    }
    /* not covered: nothing enqueued, the output keeps its poison */
    const struct { int t; int64_t ne0, ne1; } no[] = {
        {QT_Q4_0, 896, 40000}, {QT_Q8_0, 64, 40000}, {QT_Q8_0, 896, 1000}};
    for (size_t ci = 0; ci < NELEM(no); ci++) {
        size_t nb1;
        void *wh = make_weights(no[ci].t, no[ci].ne0, no[ci].ne1, &nb1);
        eng_w wg = {gdup(wh, nb1 * no[ci].ne1), no[ci].t, no[ci].ne0, no[ci].ne1, 1, nb1, nb1 * no[ci].ne1};
        float *x = rnd((size_t)no[ci].ne0, 1.0f);
        float *xg = gdup(x, (size_t)no[ci].ne0 * 4), *yg = gpoison((size_t)no[ci].ne1);
        int32_t ih[6] = {-7, -7, -7, 3, 4, 5};
        int32_t *ig = gdup(ih, sizeof ih);
        assert_int_equal(G.ops->head(G.ctx, xg, NULL, 1e-6f, &wg, yg, ig, ig + 1, ig + 3, 0), -1);
        float *h = gget(yg, (size_t)no[ci].ne1);
        for (int64_t i = 0; i < no[ci].ne1; i++) assert_true(isnan(h[i]));
        assert_int_equal(G.ops->download(G.ctx, ih, ig, sizeof ih), 0);
        assert_int_equal(ih[0], -7);
        assert_int_equal(ih[3], 3);
        free(h);
        free(x);
        free(wh);
        G.ops->free(G.ctx, xg);
        G.ops->free(G.ctx, yg);
        G.ops->free(G.ctx, ig);
        G.ops->free(G.ctx, (void *)wg.data);
    }
}

/* The prefill matmul of every block format at odd shapes: few and many
 * outputs (9, 33, 1000), rows 9..513, K crossing several 256-element raw
 * chunks with a partial last one (32-element formats: 17 blocks, so rows of
 * 2-byte-aligned formats start at odd multiples of 2; then 18 blocks, a
 * partial last chunk of one 64-wide step, on the first three shapes). Every
 * variant against the exact product of the dequantized weights
 * (TOL_MM16), the automatic choice also against the CPU backend
 * (TOL_MM16_CPU). The mm_xh.cu variants must equal mm_tc.cu at the same
 * tile (same fp16 roundings, same mma order per output: bit for bit,
 * asserted within 1e-6); at K = 544 the 64-step variant falls back to
 * 32-wide steps. */
static void test_matmul_prefill(void **st) {
    (void)st;
    static const struct {
        int ne1, rows;
    } shapes[] = {{33, 9}, {1000, 17}, {9, 100}, {1000, 513}};
    for (size_t ti = 0; ti < NELEM(k_types); ti++) {
        const int t = k_types[ti];
        if (!usable(t) || qt_info(t)->blck == 1) continue;
        for (size_t si = 0; si < NELEM(shapes) + (qt_info(t)->blck == 32 ? 3 : 0); si++) {
            if (quick() && si != 0 && si != 2 && si != NELEM(shapes)) continue;
            const int64_t ne0 = qt_info(t)->blck == 32 ? (si < NELEM(shapes) ? 544 : 576) : 768;
            const int64_t ne1 = shapes[si % NELEM(shapes)].ne1;
            const int rows = shapes[si % NELEM(shapes)].rows;
            size_t nb1;
            void *wh = make_weights(t, ne0, ne1, &nb1);
            eng_w wg = {gdup(wh, nb1 * ne1), t, ne0, ne1, 1, nb1, nb1 * ne1};
            eng_w wc = {wh, t, ne0, ne1, 1, nb1, nb1 * ne1};
            float *wf = malloc((size_t)ne0 * ne1 * 4);
            for (int64_t r = 0; r < ne1; r++) qt_dequant_row(t, (uint8_t *)wh + r * nb1, wf + r * ne0, ne0);
            float *x = rnd((size_t)rows * ne0, 2.0f);
            float *xg = gdup(x, (size_t)rows * ne0 * 4);
            float *yg = gpoison((size_t)rows * ne1);
            double *ref = malloc((size_t)rows * ne1 * sizeof *ref);
            for (int r = 0; r < rows; r++)
                for (int64_t o = 0; o < ne1; o++) {
                    double s = 0;
                    for (int64_t i = 0; i < ne0; i++) s += (double)wf[o * ne0 + i] * x[(size_t)r * ne0 + i];
                    ref[(size_t)r * ne1 + o] = s;
                }
            float *hp[MM_PASSES_ALL] = {0};
            for (int pass = 0; pass < MM_PASSES_ALL; pass++) {
                set_mm_pass(pass);
                if (pass > 0) gpoison_again(yg, (size_t)rows * ne1);
                G.ops->matmul(G.ctx, &wg, xg, yg, rows);
                float *h = gget(yg, (size_t)rows * ne1);
                char what[96];
                snprintf(what, sizeof what, "prefill matmul %s ne0=%lld ne1=%lld rows=%d tile=%s", qt_info(t)->name,
                         (long long)ne0, (long long)ne1, rows, k_mm_pass[pass]);
                check_d(h, ref, (size_t)rows * ne1, TOL_MM16, what);
                if (pass == 0) {
                    float *yc = malloc((size_t)rows * ne1 * 4);
                    C.ops->matmul(C.ctx, &wc, x, yc, rows);
                    assert_int_equal(C.ops->sync(C.ctx), 0);
                    check(h, yc, (size_t)rows * ne1, TOL_MM16_CPU, what);
                    free(yc);
                }
                if (pass >= MM_PASSES) {
                    /* expected bit-identical; asserted within 1e-6 (relative
                     * L2) so that a different fp32 contraction of a generic
                     * deq cannot fail it, while any stale or misplaced
                     * operand (>= 1e-3) does; bit differences are printed */
                    const float *same = hp[mm_pass_same_tile(pass)];
                    size_t diff = 0, first = 0;
                    double num = 0, den = 0;
                    for (size_t i = (size_t)rows * ne1; i-- > 0;) {
                        if (memcmp(&h[i], &same[i], sizeof h[i])) diff++, first = i;
                        num += ((double)h[i] - same[i]) * ((double)h[i] - same[i]);
                        den += (double)same[i] * same[i];
                    }
                    if (diff)
                        print_message("%s: %zu of %zu outputs not bit-identical to mm_tc.cu at the same tile (first at "
                                      "%zu: %.9g vs %.9g, rel L2 %.3g)\n",
                                      what, diff, (size_t)rows * ne1, first, h[first], same[first], sqrt(num / den));
                    if (!(num <= 1e-12 * den))
                        fail_msg("%s: differs from mm_tc.cu at the same tile: rel L2 %.3g", what, sqrt(num / den));
                }
                hp[pass] = h;
            }
            for (int pass = 0; pass < MM_PASSES_ALL; pass++) free(hp[pass]);
            set_mm_pass(0);
            free(ref);
            free(x);
            free(wf);
            G.ops->free(G.ctx, xg);
            G.ops->free(G.ctx, yg);
            G.ops->free(G.ctx, (void *)wg.data);
            free(wh);
        }
    }
}

static void test_rmsnorm(void **st) {
    (void)st;
    const int dims[] = {64, 896, 1001};
    for (int di = 0; di < 3; di++) {
        const int dim = dims[di], rows = 5;
        for (int with_g = 0; with_g < 2; with_g++) {
            for (int inplace = 0; inplace < 2; inplace++) {
                float *x = rnd((size_t)rows * dim, 3.0f), *g = rnd(dim, 1.0f);
                float *xg = gdup(x, (size_t)rows * dim * 4), *gg = gdup(g, (size_t)dim * 4);
                float *yg = inplace ? xg : gpoison((size_t)rows * dim);
                float *yc = malloc((size_t)rows * dim * 4);
                G.ops->rmsnorm(G.ctx, xg, with_g ? gg : NULL, yg, rows, dim, 1e-6f);
                C.ops->rmsnorm(C.ctx, x, with_g ? g : NULL, yc, rows, dim, 1e-6f);
                float *h = gget(yg, (size_t)rows * dim);
                check(h, yc, (size_t)rows * dim, TOL_F32, "rmsnorm");
                free(h);
                free(yc);
                free(x);
                free(g);
                if (!inplace) G.ops->free(G.ctx, yg);
                G.ops->free(G.ctx, xg);
                G.ops->free(G.ctx, gg);
            }
        }
    }
}

static void test_elementwise(void **st) {
    (void)st;
    const int rows = 3, dim = 333, ld = 400;
    /* add_bias on a column slice (ld > dim) */
    float *y = rnd((size_t)rows * ld, 1.0f), *b = rnd(dim, 1.0f);
    float *yg = gdup(y, (size_t)rows * ld * 4), *bg = gdup(b, (size_t)dim * 4);
    G.ops->add_bias(G.ctx, yg, ld, bg, rows, dim);
    C.ops->add_bias(C.ctx, y, ld, b, rows, dim);
    float *h = gget(yg, (size_t)rows * ld);
    check(h, y, (size_t)rows * ld, TOL_F32, "add_bias");
    free(h);
    /* add */
    float *a = rnd((size_t)rows * ld, 1.0f);
    float *ag = gdup(a, (size_t)rows * ld * 4);
    G.ops->add(G.ctx, yg, ag, (int64_t)rows * ld - 7);
    C.ops->add(C.ctx, y, a, (int64_t)rows * ld - 7);
    h = gget(yg, (size_t)rows * ld);
    check(h, y, (size_t)rows * ld, TOL_F32, "add");
    free(h);
    /* swiglu reading gate/up from one [rows][2*ld] buffer */
    float *gu = rnd((size_t)rows * 2 * ld, 4.0f);
    float *gug = gdup(gu, (size_t)rows * 2 * ld * 4);
    float *og = gpoison((size_t)rows * dim), *oc = malloc((size_t)rows * dim * 4);
    G.ops->swiglu(G.ctx, gug, gug + ld, 2 * ld, og, rows, dim);
    C.ops->swiglu(C.ctx, gu, gu + ld, 2 * ld, oc, rows, dim);
    h = gget(og, (size_t)rows * dim);
    check(h, oc, (size_t)rows * dim, TOL_F32, "swiglu");
    free(h);
    free(y); free(b); free(a); free(gu); free(oc);
    G.ops->free(G.ctx, yg); G.ops->free(G.ctx, bg); G.ops->free(G.ctx, ag);
    G.ops->free(G.ctx, gug); G.ops->free(G.ctx, og);
}

static void test_rope(void **st) {
    (void)st;
    struct { int neox, n_rot, head_dim, ff, yarn; } cases[] = {
        {0, 64, 64, 0, 0}, {1, 64, 64, 0, 0}, {1, 32, 96, 1, 0}, {0, 8, 8, 0, 0}, {1, 64, 64, 0, 1}, {1, 128, 128, 1, 0},
    };
    for (size_t ci = 0; ci < NELEM(cases); ci++) {
        const int rows = 4, n_head = 5, hd = cases[ci].head_dim, ld = n_head * hd + 32;
        float *x = rnd((size_t)rows * ld, 1.0f);
        int32_t pos[4] = {0, 1, 777, 4095};
        float *ff = rnd((size_t)cases[ci].n_rot / 2, 1.0f);
        for (int i = 0; i < cases[ci].n_rot / 2; i++) ff[i] = 1.0f + fabsf(ff[i]) * 3.0f;
        eng_rope p = {cases[ci].n_rot, cases[ci].neox, 10000.0f, 1.0f, NULL, 0.0f, 1.0f, 32.0f, 1.0f, 4096};
        if (cases[ci].yarn) {
            p.freq_scale = 1.0f / 32.0f;
            p.ext_factor = 1.0f;
            p.freq_base = 150000.0f;
        }
        float *xg = gdup(x, (size_t)rows * ld * 4);
        int32_t *pg = gdup(pos, sizeof pos);
        float *ffg = gdup(ff, (size_t)cases[ci].n_rot / 2 * 4);
        eng_rope pgp = p, pcp = p;
        if (cases[ci].ff) {
            pgp.freq_factors = ffg;
            pcp.freq_factors = ff;
        }
        G.ops->rope(G.ctx, xg, ld, pg, rows, n_head, hd, &pgp);
        C.ops->rope(C.ctx, x, ld, pos, rows, n_head, hd, &pcp);
        float *h = gget(xg, (size_t)rows * ld);
        char what[64];
        snprintf(what, sizeof what, "rope case %zu", ci);
        check(h, x, (size_t)rows * ld, TOL_F32, what);
        free(h); free(x); free(ff);
        G.ops->free(G.ctx, xg); G.ops->free(G.ctx, pg); G.ops->free(G.ctx, ffg);
    }
}

/* kv_store then attention, decode (1 row, long context: split path) and
 * prefill. Prefill with head_dim 64/80/96/128 runs the tensor-core kernel
 * (attn_prefill.cu); every prefill case is run a second time with
 * LLORCH_CUDA_ATTN_TILED=1 (the older tiled kernel, kept for comparison).
 * shuffle: the query positions are random in [0, n_past + rows) instead of
 * consecutive (the backend contract allows any pos[r] whose cache rows are
 * written), repeats and descending runs included. */
static void test_attention(void **st) {
    (void)st;
    struct { int n_head, n_kv, hd, n_past, rows, shuffle; } cases[] = {
        {8, 4, 8, 0, 9, 0},      /* stories260K shape, prefill from 0 */
        {14, 2, 64, 300, 1, 0},  /* qwen2 decode */
        {14, 2, 64, 2000, 1, 0}, /* long context decode (splits) */
        {32, 32, 128, 57, 3, 0}, /* llama decode, 3 rows */
        {4, 1, 96, 10, 40, 0},   /* phi3-ish head dim, prefill (mma) */
        {2, 2, 256, 5, 2, 0},
        {14, 2, 64, 100, 37, 0},   /* qwen2 prefill after a prefix */
        {32, 32, 128, 0, 70, 0},   /* llama prefill */
        {2, 1, 256, 3, 6, 0},      /* head_dim 256 prefill: per-row kernel */
        {12, 4, 48, 20, 30, 0},    /* head_dim 48 prefill: tiled kernel */
        /* tensor-core prefill: GQA 7:1 and 1:1, rows 9/64/100/512, queries
         * starting mid-context, lengths not multiples of 64 */
        {14, 2, 64, 0, 512, 0},    /* qwen2 pp512 */
        {32, 32, 128, 0, 512, 0},  /* llama pp512 */
        {14, 2, 64, 130, 9, 0},    /* 9 rows, one block, 55 padding rows */
        {28, 4, 128, 61, 64, 0},   /* GQA 7:1, hd 128, 64 rows straddling two key tiles */
        {8, 8, 64, 200, 100, 0},   /* 1:1, hd 64, 100 rows from mid-context */
        {7, 1, 128, 999, 100, 0},  /* 7:1 hd 128, ~1100 keys */
        {4, 2, 80, 70, 33, 0},     /* hd 80 */
        {6, 3, 96, 0, 65, 0},      /* hd 96, 65 rows: a second block with one row */
        {14, 2, 64, 150, 100, 1},  /* arbitrary positions */
        {32, 32, 128, 30, 77, 1},
    };
    for (size_t ci = 0; ci < NELEM(cases); ci++) {
        const int nh = cases[ci].n_head, nkv = cases[ci].n_kv, hd = cases[ci].hd;
        const int kv_dim = nkv * hd, n_ctx = cases[ci].n_past + cases[ci].rows + 3;
        const int total = cases[ci].n_past + cases[ci].rows;
        const size_t cbytes = (size_t)n_ctx * kv_dim * 2;
        uint16_t *kc = calloc(1, cbytes), *vc = calloc(1, cbytes);
        uint16_t *kcg = gdup(kc, cbytes), *vcg = gdup(vc, cbytes);
        /* fill the whole history with kv_store, in chunks of at most 64 rows */
        const int ld = kv_dim + 16;
        for (int p0 = 0; p0 < total; p0 += 64) {
            int n = total - p0 < 64 ? total - p0 : 64;
            float *k = rnd((size_t)n * ld, 2.0f), *v = rnd((size_t)n * ld, 1.0f);
            int32_t pos[64];
            for (int i = 0; i < n; i++) pos[i] = p0 + i;
            float *kg = gdup(k, (size_t)n * ld * 4), *vg = gdup(v, (size_t)n * ld * 4);
            int32_t *pg = gdup(pos, sizeof pos);
            G.ops->kv_store(G.ctx, kcg, vcg, kg, vg, ld, pg, n, kv_dim);
            C.ops->kv_store(C.ctx, kc, vc, k, v, ld, pos, n, kv_dim);
            free(k); free(v);
            G.ops->free(G.ctx, kg); G.ops->free(G.ctx, vg); G.ops->free(G.ctx, pg);
        }
        uint16_t *kh = malloc(cbytes);
        assert_int_equal(G.ops->download(G.ctx, kh, kcg, cbytes), 0);
        assert_memory_equal(kh, kc, cbytes);
        assert_int_equal(G.ops->download(G.ctx, kh, vcg, cbytes), 0);
        assert_memory_equal(kh, vc, cbytes);
        free(kh);
        const int rows = cases[ci].rows, ldq = nh * hd + 8;
        float *q = rnd((size_t)rows * ldq, 2.0f);
        int32_t *pos = malloc((size_t)rows * sizeof *pos);
        for (int i = 0; i < rows; i++)
            pos[i] = cases[ci].shuffle ? (int)(tu_rng(&g_seed) % (uint64_t)total) : cases[ci].n_past + i;
        if (cases[ci].shuffle) {
            pos[0] = pos[1] = total - 1; /* a repeat, and the last cache row */
            pos[rows - 1] = 0;           /* a row that sees one key */
        }
        float *qg = gdup(q, (size_t)rows * ldq * 4);
        int32_t *pg = gdup(pos, (size_t)rows * sizeof *pos);
        float *og = gpoison((size_t)rows * nh * hd), *oc = malloc((size_t)rows * nh * hd * 4);
        const float scale = 1.0f / sqrtf((float)hd);
        C.ops->attention(C.ctx, q, ldq, kc, vc, pos, rows, nh, nkv, hd, scale, oc);
        assert_int_equal(C.ops->sync(C.ctx), 0);
        for (int pass = 0; pass < (rows > 4 ? 2 : 1); pass++) {
            if (pass == 1) {
                setenv("LLORCH_CUDA_ATTN_TILED", "1", 1);
                gpoison_again(og, (size_t)rows * nh * hd);
            }
            G.ops->attention(G.ctx, qg, ldq, kcg, vcg, pg, rows, nh, nkv, hd, scale, og);
            unsetenv("LLORCH_CUDA_ATTN_TILED");
            float *h = gget(og, (size_t)rows * nh * hd);
            char what[128];
            snprintf(what, sizeof what, "attention%s nh=%d nkv=%d hd=%d past=%d rows=%d%s", pass ? " (tiled)" : "",
                     nh, nkv, hd, cases[ci].n_past, rows, cases[ci].shuffle ? " shuffled pos" : "");
            check(h, oc, (size_t)rows * nh * hd, TOL_ATT(total), what);
            free(h);
        }
        free(oc); free(q); free(kc); free(vc); free(pos);
        G.ops->free(G.ctx, og); G.ops->free(G.ctx, qg); G.ops->free(G.ctx, pg);
        G.ops->free(G.ctx, kcg); G.ops->free(G.ctx, vcg);
    }
}

/* ---- gpt-oss ops ------------------------------------------------------------------------ */
/* routing: the ids exactly the CPU's (ties included: logits on a coarse grid
 * make many), the weights to TOL_F32 */
static void test_moe_route(void **st) {
    (void)st;
    const int rows_list[] = {1, 3, 77}, nex_list[] = {4, 32};
    for (size_t ri = 0; ri < NELEM(rows_list); ri++)
        for (size_t ei = 0; ei < NELEM(nex_list); ei++)
            for (int k = 1; k <= 4; k++)
                for (int ties = 0; ties < 2; ties++) {
                    const int rows = rows_list[ri], nex = nex_list[ei];
                    float *l = rnd((size_t)rows * nex, 4.0f);
                    if (ties)
                        for (int i = 0; i < rows * nex; i++) l[i] = roundf(l[i]); /* ~9 distinct values */
                    float *lg = gdup(l, (size_t)rows * nex * 4);
                    int32_t *idc = malloc((size_t)rows * k * 4), *idh = malloc((size_t)rows * k * 4);
                    float *wc = malloc((size_t)rows * k * 4);
                    int32_t *idg = (int32_t *)gpoison((size_t)rows * k);
                    float *wg = gpoison((size_t)rows * k);
                    G.ops->moe_route(G.ctx, lg, rows, nex, k, idg, wg);
                    C.ops->moe_route(C.ctx, l, rows, nex, k, idc, wc);
                    assert_int_equal(C.ops->sync(C.ctx), 0);
                    assert_int_equal(G.ops->download(G.ctx, idh, idg, (size_t)rows * k * 4), 0);
                    char what[96];
                    snprintf(what, sizeof what, "moe_route rows=%d n_expert=%d k=%d ties=%d", rows, nex, k, ties);
                    if (memcmp(idh, idc, (size_t)rows * k * 4)) fail_msg("%s: ids differ from the CPU's", what);
                    float *h = gget(wg, (size_t)rows * k);
                    check(h, wc, (size_t)rows * k, TOL_F32, what);
                    free(h); free(l); free(idc); free(idh); free(wc);
                    G.ops->free(G.ctx, lg); G.ops->free(G.ctx, idg); G.ops->free(G.ctx, wg);
                }
}

/* distinct random experts per row (as routing gives) */
static void rand_ids(int32_t *ids, int rows, int k, int nex) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < k; j++) {
            int e, dup;
            do {
                e = (int)(tu_rng(&g_seed) % (uint64_t)nex);
                dup = 0;
                for (int jj = 0; jj < j; jj++) dup |= ids[r * k + jj] == e;
            } while (dup);
            ids[r * k + j] = e;
        }
}

/* the expert matmul: decode rows (one chunk) and prefill rows (several
 * chunks of the 8-row activation scratch), shared and per-slot inputs,
 * with and without bias; every vec_dot_type family (Q8_0: MXFP4/Q8_0,
 * Q8_1: Q5_1, Q8_K: Q4_K) and F16/F32 */
static void test_matmul_id(void **st) {
    (void)st;
    const int types[] = {QT_MXFP4, QT_Q8_0, QT_F16, QT_F32, QT_Q5_1, QT_Q4_K};
    const int rows_list[] = {1, 2, 5, 37}, nex_list[] = {4, 32};
    for (size_t ti = 0; ti < NELEM(types); ti++) {
        const int t = types[ti];
        if (!usable(t)) continue;
        const int bl = qt_info(t)->blck;
        const int64_t ne0 = bl == 1 ? 67 : bl == 32 ? 224 : 512, ne1 = t == QT_MXFP4 ? 40 : 37;
        for (size_t ei = 0; ei < NELEM(nex_list); ei++) {
            const int nex = nex_list[ei];
            size_t nb1;
            void *wh = make_weights(t, ne0, ne1 * nex, &nb1);
            eng_w wg = {gdup(wh, nb1 * ne1 * nex), t, ne0, ne1, nex, nb1, nb1 * ne1};
            eng_w wc = {wh, t, ne0, ne1, nex, nb1, nb1 * ne1};
            float *b = rnd((size_t)nex * ne1, 1.0f);
            float *bg = gdup(b, (size_t)nex * ne1 * 4);
            for (size_t ri = 0; ri < NELEM(rows_list); ri++)
                for (int k = 1; k <= 4; k++)
                    for (int nxi = 0; nxi < 2; nxi++) {
                        const int rows = rows_list[ri], n_x = nxi ? k : 1, use_b = (k + nxi + (int)ri) & 1;
                        if (nxi && k == 1) continue; /* n_x == k == 1 is the shared case */
                        int32_t *ids = malloc((size_t)rows * k * 4);
                        rand_ids(ids, rows, k, nex);
                        int32_t *idg = gdup(ids, (size_t)rows * k * 4);
                        float *x = rnd((size_t)rows * n_x * ne0, 2.0f);
                        float *xg = gdup(x, (size_t)rows * n_x * ne0 * 4);
                        const size_t ny = (size_t)rows * k * ne1;
                        float *yg = gpoison(ny), *yc = malloc(ny * 4);
                        G.ops->matmul_id(G.ctx, &wg, xg, n_x, idg, k, use_b ? bg : NULL, yg, rows);
                        C.ops->matmul_id(C.ctx, &wc, x, n_x, ids, k, use_b ? b : NULL, yc, rows);
                        assert_int_equal(C.ops->sync(C.ctx), 0);
                        float *h = gget(yg, ny);
                        char what[128];
                        snprintf(what, sizeof what, "matmul_id %s %lldx%lld n_expert=%d rows=%d k=%d n_x=%d bias=%d",
                                 qt_info(t)->name, (long long)ne0, (long long)ne1, nex, rows, k, n_x, use_b);
                        check(h, yc, ny, TOL_F32, what);
                        free(h); free(yc); free(x); free(ids);
                        G.ops->free(G.ctx, yg); G.ops->free(G.ctx, xg); G.ops->free(G.ctx, idg);
                    }
            free(b); free(wh);
            G.ops->free(G.ctx, bg); G.ops->free(G.ctx, (void *)wg.data);
        }
    }
}

/* clamped SwiGLU (inputs beyond the limit on both sides) and the weighted sum */
static void test_swiglu_oai_moe_sum(void **st) {
    (void)st;
    const int64_t n = 3 * 1001;
    float *g = rnd((size_t)n, 12.0f), *u = rnd((size_t)n, 12.0f);
    float *gg = gdup(g, n * 4), *ug = gdup(u, n * 4), *og = gpoison((size_t)n), *oc = malloc(n * 4);
    G.ops->swiglu_oai(G.ctx, gg, ug, og, n, 1.702f, 7.0f);
    C.ops->swiglu_oai(C.ctx, g, u, oc, n, 1.702f, 7.0f);
    assert_int_equal(C.ops->sync(C.ctx), 0);
    float *h = gget(og, (size_t)n);
    check(h, oc, (size_t)n, TOL_F32, "swiglu_oai");
    free(h); free(g); free(u); free(oc);
    G.ops->free(G.ctx, gg); G.ops->free(G.ctx, ug); G.ops->free(G.ctx, og);
    const int rows_list[] = {1, 9}, dim = 67;
    for (size_t ri = 0; ri < NELEM(rows_list); ri++)
        for (int k = 1; k <= 4; k++) {
            const int rows = rows_list[ri];
            float *e = rnd((size_t)rows * k * dim, 3.0f), *w = rnd((size_t)rows * k, 1.0f);
            float *eg = gdup(e, (size_t)rows * k * dim * 4), *wg = gdup(w, (size_t)rows * k * 4);
            float *sg = gpoison((size_t)rows * dim), *sc = malloc((size_t)rows * dim * 4);
            G.ops->moe_sum(G.ctx, eg, wg, rows, k, dim, sg);
            C.ops->moe_sum(C.ctx, e, w, rows, k, dim, sc);
            assert_int_equal(C.ops->sync(C.ctx), 0);
            float *hs = gget(sg, (size_t)rows * dim);
            char what[64];
            snprintf(what, sizeof what, "moe_sum rows=%d k=%d", rows, k);
            check(hs, sc, (size_t)rows * dim, TOL_F32, what);
            free(hs); free(e); free(w); free(sc);
            G.ops->free(G.ctx, eg); G.ops->free(G.ctx, wg); G.ops->free(G.ctx, sg);
        }
}

/* attention with sinks and a sliding window: decode (split-K, fused merge)
 * and prefill (tiled kernel; head_dim 256: the per-row kernel), windows
 * smaller and larger than the context, window 1, sinks NULL and not (some
 * far above the scores, so the sink dominates) */
static void test_attention_ext(void **st) {
    (void)st;
    struct { int n_head, n_kv, hd, n_past, rows, window, sinks; } cases[] = {
        {64, 8, 64, 300, 1, 128, 1},  /* gpt-oss decode, window slid */
        {64, 8, 64, 300, 1, 0, 1},    /* gpt-oss decode, full layer */
        {64, 8, 64, 2000, 1, 128, 0}, /* long context, window only */
        {64, 8, 64, 50, 2, 128, 1},   /* window larger than the context */
        {8, 2, 64, 40, 3, 1, 1},      /* window 1: the own key only */
        {64, 8, 64, 0, 40, 16, 1},    /* prefill from 0, window 16 */
        {64, 8, 64, 200, 100, 128, 1},/* prefill mid-context, window 128 */
        {64, 8, 64, 0, 77, 0, 1},     /* prefill, sinks only */
        {14, 2, 64, 10, 37, 1000, 0}, /* prefill, window beyond the context */
        {12, 4, 48, 20, 30, 7, 1},    /* head_dim 48, window 7 */
        {2, 1, 256, 30, 6, 5, 1},     /* head_dim 256 prefill: per-row kernel */
    };
    for (size_t ci = 0; ci < NELEM(cases); ci++) {
        const int nh = cases[ci].n_head, nkv = cases[ci].n_kv, hd = cases[ci].hd, win = cases[ci].window;
        const int kv_dim = nkv * hd, total = cases[ci].n_past + cases[ci].rows, n_ctx = total + 3;
        const size_t cbytes = (size_t)n_ctx * kv_dim * 2;
        uint16_t *kc = calloc(1, cbytes), *vc = calloc(1, cbytes);
        float *k = rnd((size_t)total * kv_dim, 2.0f), *v = rnd((size_t)total * kv_dim, 1.0f);
        int32_t *allpos = malloc((size_t)total * 4);
        for (int i = 0; i < total; i++) allpos[i] = i;
        C.ops->kv_store(C.ctx, kc, vc, k, v, kv_dim, allpos, total, kv_dim);
        uint16_t *kcg = gdup(kc, cbytes), *vcg = gdup(vc, cbytes);
        const int rows = cases[ci].rows, ldq = nh * hd + 8;
        float *q = rnd((size_t)rows * ldq, 2.0f);
        int32_t *pos = allpos + cases[ci].n_past;
        float *sk = rnd((size_t)nh, 4.0f);
        sk[0] = 40.0f; /* above every score: the sink dominates head 0 */
        float *skg = gdup(sk, (size_t)nh * 4);
        float *qg = gdup(q, (size_t)rows * ldq * 4);
        int32_t *pg = gdup(pos, (size_t)rows * 4);
        float *og = gpoison((size_t)rows * nh * hd), *oc = malloc((size_t)rows * nh * hd * 4);
        const float scale = 1.0f / sqrtf((float)hd);
        const float *sc = cases[ci].sinks ? sk : NULL, *scg = cases[ci].sinks ? skg : NULL;
        C.ops->attention_ext(C.ctx, q, ldq, kc, vc, pos, rows, nh, nkv, hd, scale, sc, win, oc);
        G.ops->attention_ext(G.ctx, qg, ldq, kcg, vcg, pg, rows, nh, nkv, hd, scale, scg, win, og);
        assert_int_equal(C.ops->sync(C.ctx), 0);
        float *h = gget(og, (size_t)rows * nh * hd);
        char what[128];
        snprintf(what, sizeof what, "attention_ext nh=%d nkv=%d hd=%d past=%d rows=%d window=%d sinks=%d", nh, nkv, hd,
                 cases[ci].n_past, rows, win, cases[ci].sinks);
        const int keys = win > 0 && win < total ? win : total;
        check(h, oc, (size_t)rows * nh * hd, TOL_ATT(keys), what);
        free(h); free(oc); free(q); free(k); free(v); free(kc); free(vc); free(allpos); free(sk);
        G.ops->free(G.ctx, og); G.ops->free(G.ctx, qg); G.ops->free(G.ctx, pg); G.ops->free(G.ctx, skg);
        G.ops->free(G.ctx, kcg); G.ops->free(G.ctx, vcg);
    }
}

/* device sampling = the host reference, token for token */
/* Logit patterns of sample_cases (trial % 8; pattern 0 is the plain random
 * one, 1 a tie for the argmax). The many-block sampler's regimes (sample.cu):
 * its histogram levels, the compacted prefix, the one-block fallback (massive
 * ties at the cut, prefixes above 16,384), the plain draw. */
static void sample_logits(float *l, int n, int trial) {
    switch (trial % 8) {
    case 1: /* a tie for the argmax */
        l[17] = l[n - 1] = 50.0f;
        break;
    case 2: /* two of three logits tied (top-k cuts inside the tie) */
        for (int i = 0; i < n; i++)
            if (i % 3) l[i] = 2.5f;
        break;
    case 3: /* -inf except every 50th */
        for (int i = 0; i < n; i++)
            if (i % 50) l[i] = -INFINITY;
        break;
    case 4: /* two values only, and a NaN */
        for (int i = 0; i < n; i++) l[i] = (i % 7) ? 1.0f : 0.0f;
        l[5] = NAN;
        break;
    case 5: /* three finite logits (fewer than top-k), a tied pair */
        for (int i = 0; i < n; i++) l[i] = -INFINITY;
        l[n / 2] = l[n / 3] = 3.0f;
        l[7] = 1.0f;
        break;
    case 6: /* a narrow bulk and a few far above it (a peaked model) */
        for (int i = 0; i < n; i++) l[i] = l[i] * 0.05f + ((i % 997) == 0 ? 8.0f : 0.0f);
        break;
    default:
        break;
    }
}

/* LLORCH_TEST_SAMPLE_QUICK=1 (sanitizer runs, pkw-validate.sh "sampsan"):
 * sample_cases makes 2 draws per size and parameter set instead of 16, the
 * logit pattern rotated by the set and the size (pattern (trial + 2 (set +
 * size index)) % 8) so each size still sees all 8 patterns and each set all
 * 8 across the 4 sizes, and the timing loops are skipped: 240 sampler calls
 * over both backends instead of ~2,430 */
static int sample_quick(void) {
    const char *q = getenv("LLORCH_TEST_SAMPLE_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

/* every SPEC §3.4 pipeline case on backend B against the host sampler */
static void sample_cases(eng_backend Gb) {
    /* 100 and 1000: one block of the many-block kernels; 2049: a one-logit
     * last block; 151,936: Qwen's vocabulary */
    const int nv[] = {100, 1000, 2049, 151936};
    struct { float temp, top_p, min_p, pen; int top_k; } ps[] = {
        {0.0f, 1.0f, 0.0f, 1.0f, 0},  {0.0f, 1.0f, 0.0f, 1.3f, 0}, {1.0f, 1.0f, 0.0f, 1.0f, 0},
        {0.8f, 0.9f, 0.0f, 1.1f, 40}, {1.0f, 0.5f, 0.0f, 1.0f, 0}, {1.5f, 1.0f, 0.05f, 1.0f, 0},
        {0.7f, 0.95f, 0.1f, 1.2f, 100}, {1.0f, 1.0f, 0.0f, 1.0f, 1},
        {0.8f, 0.95f, 0.0f, 1.0f, 40},   /* the common chat setting */
        {1.0f, 0.95f, 0.0f, 1.0f, 0},    /* top-p alone */
        {1.0f, 1.0f, 0.2f, 1.3f, 0},     /* min-p alone (the plain many-block draw) */
        {1.0f, 1.0f, 0.0f, 1.0f, 3000},  /* top-k alone, a prefix the levels narrow */
        {1.0f, 0.9f, 0.0f, 1.0f, 20000}, /* top-k above the 16,384 compaction bound */
        {0.5f, 0.99f, 0.02f, 1.0f, 5},   /* all four filters */
        {2.0f, 0.3f, 0.0f, 1.0f, 0},     /* flat: a top-p set of thousands */
    };
    const int quick = sample_quick(), ntrial = quick ? 2 : 16;
    int mismatches = 0, total = 0;
    for (int vi = 0; vi < (int)NELEM(nv); vi++) {
        const int n = nv[vi];
        float *lg = NULL;
        int32_t *dtok = NULL;
        assert_int_equal(Gb.ops->alloc(Gb.ctx, (size_t)n * 4, (void **)&lg), 0);
        assert_int_equal(Gb.ops->alloc(Gb.ctx, 4, (void **)&dtok), 0);
        for (size_t pi = 0; pi < NELEM(ps); pi++) {
            eng_sampling_params p;
            eng_sampling_params_default(&p);
            p.temperature = ps[pi].temp;
            p.top_p = ps[pi].top_p;
            p.min_p = ps[pi].min_p;
            p.repeat_penalty = ps[pi].pen;
            p.top_k = ps[pi].top_k;
            p.seed = 1000 + pi;
            eng_sampler *ref = eng_sampler_new(&p, n), *dev = eng_sampler_new(&p, n);
            for (int trial = 0; trial < ntrial; trial++) {
                float *l = rnd((size_t)n, 6.0f);
                sample_logits(l, n, quick ? trial + 2 * ((int)pi + vi) : trial);
                assert_int_equal(Gb.ops->upload(Gb.ctx, lg, l, (size_t)n * 4), 0);
                int32_t hist[ENG_REPEAT_LAST_N];
                eng_sample_args a;
                a.p = p;
                a.n_history = eng_sampler_history(dev, hist);
                a.history = hist;
                a.uniform = eng_sampler_next_uniform(dev);
                int32_t tg = -1;
                assert_int_equal(Gb.ops->sample(Gb.ctx, lg, n, &a, dtok, &tg), 0);
                int32_t tc = eng_sampler_sample(ref, l);
                int32_t back = -2;
                assert_int_equal(Gb.ops->download(Gb.ctx, &back, dtok, 4), 0);
                assert_int_equal(back, tg);
                if (tg != tc) {
                    mismatches++;
                    print_message("sample mismatch n=%d case %zu trial %d: gpu %d cpu %d\n", n, pi, trial, tg, tc);
                }
                total++;
                eng_sampler_accept(ref, tc);
                eng_sampler_accept(dev, tc);
                free(l);
            }
            eng_sampler_free(ref);
            eng_sampler_free(dev);
        }
        Gb.ops->free(Gb.ctx, lg);
        Gb.ops->free(Gb.ctx, dtok);
    }
    print_message("sampling%s: %d/%d device draws equal the host reference\n", quick ? " (quick)" : "",
                  total - mismatches, total);
    assert_int_equal(mismatches, 0);
}

/* host-timed sample() calls on 151,936 random logits (enqueue + the 4-byte
 * read back), printed only: the many-block sampler's cost per setting */
static void sample_timing(eng_backend Gb, const char *what) {
    if (sample_quick()) return;
    const int n = 151936, reps = 50;
    struct { const char *name; float temp, top_p, min_p; int top_k; } ps[] = {
        {"greedy", 0.0f, 1.0f, 0.0f, 0},          {"temp 1", 1.0f, 1.0f, 0.0f, 0},
        {"top-k 40 + top-p 0.95", 0.8f, 0.95f, 0.0f, 40}, {"top-p 0.95", 1.0f, 0.95f, 0.0f, 0},
        {"min-p 0.05", 1.0f, 1.0f, 0.05f, 0},
    };
    float *lg = NULL;
    int32_t *dtok = NULL;
    assert_int_equal(Gb.ops->alloc(Gb.ctx, (size_t)n * 4, (void **)&lg), 0);
    assert_int_equal(Gb.ops->alloc(Gb.ctx, 4, (void **)&dtok), 0);
    float *l = rnd((size_t)n, 6.0f);
    assert_int_equal(Gb.ops->upload(Gb.ctx, lg, l, (size_t)n * 4), 0);
    for (size_t pi = 0; pi < NELEM(ps); pi++) {
        eng_sample_args a;
        memset(&a, 0, sizeof a);
        eng_sampling_params_default(&a.p);
        a.p.temperature = ps[pi].temp;
        a.p.top_p = ps[pi].top_p;
        a.p.min_p = ps[pi].min_p;
        a.p.top_k = ps[pi].top_k;
        a.uniform = 0.37;
        int32_t tg;
        assert_int_equal(Gb.ops->sample(Gb.ctx, lg, n, &a, dtok, &tg), 0); /* warm-up */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int r = 0; r < reps; r++) assert_int_equal(Gb.ops->sample(Gb.ctx, lg, n, &a, dtok, &tg), 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        const double us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / reps;
        print_message("sample timing (%s) n=%d %s: %.1f us per call\n", what, n, ps[pi].name, us);
    }
    free(l);
    Gb.ops->free(Gb.ctx, lg);
    Gb.ops->free(Gb.ctx, dtok);
}

/* greedy cases go through the many-block k_argmax by default and sampled
 * ones through the many-block sampler (sample.cu); a second backend made
 * with LLORCH_CUDA_ARGMAX=0 checks the one-block k_sample path for all of
 * them too, so both stay equal to the host sampler */
static void test_sample(void **st) {
    (void)st;
    sample_cases(G);
    sample_timing(G, "many-block");
    char err[256];
    eng_backend b;
    const char *was = getenv("LLORCH_CUDA_ARGMAX");
    setenv("LLORCH_CUDA_ARGMAX", "0", 1);
    assert_int_equal(eng_backend_cuda_new(0, 0, &b, err, sizeof err), 0);
    if (was) setenv("LLORCH_CUDA_ARGMAX", was, 1);
    else unsetenv("LLORCH_CUDA_ARGMAX");
    sample_cases(b);
    sample_timing(b, "one-block, LLORCH_CUDA_ARGMAX=0");
    b.ops->destroy(b.ctx);
}

/* a recorded step replays with new ids and positions read from device memory */
static void test_graph(void **st) {
    (void)st;
    const int ne0 = 128, ne1 = 50, rows = 1, n_head = 2, hd = 64;
    size_t nb1;
    void *wh = make_weights(QT_Q8_0, ne0, ne1, &nb1);
    eng_w wg = {gdup(wh, nb1 * ne1), QT_Q8_0, ne0, ne1, 1, nb1, nb1 * ne1};
    eng_w wc = {wh, QT_Q8_0, ne0, ne1, 1, nb1, nb1 * ne1};
    int32_t *idg = NULL, *posg = NULL;
    assert_int_equal(G.ops->alloc(G.ctx, 4, (void **)&idg), 0);
    assert_int_equal(G.ops->alloc(G.ctx, 4, (void **)&posg), 0);
    float *xg = gpoison(ne0), *xc = malloc(ne0 * 4);
    eng_rope rp = {hd, 1, 10000.0f, 1.0f, NULL, 0.0f, 1.0f, 32.0f, 1.0f, 4096};
    for (int step = 0; step < 4; step++) {
        int32_t id = (step * 13 + 5) % ne1, pos = step * 100 + 3;
        assert_int_equal(G.ops->upload(G.ctx, idg, &id, 4), 0);
        assert_int_equal(G.ops->upload(G.ctx, posg, &pos, 4), 0);
        gpoison_again(xg, ne0);
        int replayed = G.ops->record_begin(G.ctx, 7);
        assert_int_equal(replayed, step == 0 ? 0 : 1);
        if (!replayed) {
            G.ops->get_rows(G.ctx, &wg, idg, rows, xg);
            G.ops->rope(G.ctx, xg, ne0, posg, rows, n_head, hd, &rp);
            assert_int_equal(G.ops->record_end(G.ctx, 7), 0);
        }
        C.ops->get_rows(C.ctx, &wc, &id, rows, xc);
        C.ops->rope(C.ctx, xc, ne0, &pos, rows, n_head, hd, &rp);
        float *h = gget(xg, ne0);
        check(h, xc, ne0, TOL_F32, "graph replay");
        free(h);
    }
    free(xc);
    free(wh);
    G.ops->free(G.ctx, xg); G.ops->free(G.ctx, idg); G.ops->free(G.ctx, posg);
    G.ops->free(G.ctx, (void *)wg.data);
}

/* ---- fused ops (backend.h optional block) -------------------------------------------------
 * Each CUDA fused op against the CPU's fused op (= its primitives' composition),
 * every format: rows 1 takes the one-launch kernels (fused.cu; Q4_0 with
 * K % 256 == 0 the warppf body up to K 4096, above it the p1 body for
 * matmul_add and the pair body for matmul_n and SwiGLU,
 * LLORCH_CUDA_FUSED_Q40=warp|pair|staged|auto|generic|stream,
 * LLORCH_CUDA_FUSED_Q40_LONG=pair|pairpf|w6|w5|p2|p1|q1 (K > 4096) and
 * LLORCH_CUDA_FUSED_Q40_O=p1|w8 (matmul_add at K <= 4096) select another), rows 3 and 9 the CUDA fallbacks (mat-vec and prefill
 * matmul compositions). Same bounds as the primitives: TOL_F32 for
 * rows <= 8, TOL_MM16_CPU above. */
static double fused_tol(int t, int rows) { return rows <= 8 || qt_info(t)->blck == 1 ? TOL_F32 : TOL_MM16_CPU; }

typedef struct {
    void *wh;  /* host bytes */
    eng_w wg;  /* device copy */
    eng_w wc;  /* host view */
} fw;

static void fw_make(fw *f, int t, int64_t ne0, int64_t ne1) {
    size_t nb1;
    f->wh = make_weights(t, ne0, ne1, &nb1);
    f->wg = (eng_w){gdup(f->wh, nb1 * ne1), t, ne0, ne1, 1, nb1, nb1 * ne1};
    f->wc = (eng_w){f->wh, t, ne0, ne1, 1, nb1, nb1 * ne1};
}

static void fw_free(fw *f) {
    G.ops->free(G.ctx, (void *)f->wg.data);
    free(f->wh);
}

static void fused_case(int t, int t2, int64_t ne0, int rows) {
    char what[128];
    const int64_t ne1[3] = {37, 13, 130};
    fw w[3];
    fw_make(&w[0], t, ne0, ne1[0]);
    fw_make(&w[1], t, ne0, ne1[1]);
    fw_make(&w[2], t2, ne0, ne1[2]);
    float *x = rnd((size_t)rows * ne0, 2.0f);
    float *xg = gdup(x, (size_t)rows * ne0 * 4);
    /* matmul_n: biases on 0 and 2, none on 1 */
    float *b[3] = {rnd((size_t)ne1[0], 1.0f), NULL, rnd((size_t)ne1[2], 1.0f)};
    float *bg[3] = {gdup(b[0], (size_t)ne1[0] * 4), NULL, gdup(b[2], (size_t)ne1[2] * 4)};
    float *yg[3], *yc[3];
    const eng_w *wgp[3], *wcp[3];
    for (int j = 0; j < 3; j++) {
        yg[j] = gpoison((size_t)rows * ne1[j]);
        yc[j] = malloc((size_t)rows * ne1[j] * 4);
        wgp[j] = &w[j].wg;
        wcp[j] = &w[j].wc;
    }
    G.ops->matmul_n(G.ctx, 3, wgp, (const float *const *)bg, xg, yg, rows);
    C.ops->matmul_n(C.ctx, 3, wcp, (const float *const *)b, x, yc, rows);
    for (int j = 0; j < 3; j++) {
        float *h = gget(yg[j], (size_t)rows * ne1[j]);
        snprintf(what, sizeof what, "matmul_n %s/%s ne0=%lld rows=%d matrix %d", qt_info(t)->name, qt_info(t2)->name,
                 (long long)ne0, rows, j);
        check(h, yc[j], (size_t)rows * ne1[j], fused_tol(t, rows), what);
        free(h);
    }
    /* matmul_add: y starts random */
    float *y0 = rnd((size_t)rows * ne1[2], 3.0f);
    float *ya = gdup(y0, (size_t)rows * ne1[2] * 4);
    float *tg = gpoison((size_t)2 * rows * ne1[2]), *tc = malloc((size_t)2 * rows * ne1[2] * 4);
    G.ops->matmul_add(G.ctx, &w[2].wg, xg, ya, tg, rows);
    C.ops->matmul_add(C.ctx, &w[2].wc, x, y0, tc, rows);
    float *h = gget(ya, (size_t)rows * ne1[2]);
    snprintf(what, sizeof what, "matmul_add %s ne0=%lld rows=%d", qt_info(t2)->name, (long long)ne0, rows);
    check(h, y0, (size_t)rows * ne1[2], fused_tol(t2, rows), what);
    free(h);
    /* matmul_swiglu: gate = w[2], up = a second matrix of t2 and the same shape */
    fw u;
    fw_make(&u, t2, ne0, ne1[2]);
    float *og = gpoison((size_t)rows * ne1[2]), *oc = malloc((size_t)rows * ne1[2] * 4);
    G.ops->matmul_swiglu(G.ctx, &w[2].wg, &u.wg, xg, og, tg, rows);
    C.ops->matmul_swiglu(C.ctx, &w[2].wc, &u.wc, x, oc, tc, rows);
    assert_int_equal(C.ops->sync(C.ctx), 0);
    h = gget(og, (size_t)rows * ne1[2]);
    snprintf(what, sizeof what, "matmul_swiglu %s ne0=%lld rows=%d", qt_info(t2)->name, (long long)ne0, rows);
    check(h, oc, (size_t)rows * ne1[2], fused_tol(t2, rows), what);
    free(h);
    fw_free(&u);
    free(oc);
    G.ops->free(G.ctx, og);
    for (int j = 0; j < 3; j++) {
        G.ops->free(G.ctx, yg[j]);
        free(yc[j]);
        free(b[j]);
        G.ops->free(G.ctx, bg[j]);
        fw_free(&w[j]);
    }
    free(y0);
    free(tc);
    free(x);
    G.ops->free(G.ctx, ya);
    G.ops->free(G.ctx, tg);
    G.ops->free(G.ctx, xg);
}

static void test_fused_matmul(void **st) {
    (void)st;
    const int rows_list[] = {1, 3, 9};
    const int nrows = quick() ? 1 : (int)NELEM(rows_list);
    for (size_t ti = 0; ti < NELEM(k_types); ti++) {
        const int t = k_types[ti];
        if (!usable(t)) continue;
        /* the third matrix: another type of the same block length when one exists (Qwen: q/k Q5_0, v Q8_0) */
        const int bl = qt_info(t)->blck;
        const int t2 = bl == 32 && t != QT_Q8_0 ? QT_Q8_0 : bl == 256 && t != QT_Q6_K ? QT_Q6_K : t;
        int64_t ls[6];
        int nl = lengths(t, ls);
        /* Q4_0 4096, 11008 and 16384: the warppf body (4096), the p1 body
         * (matmul_add) and the pair body (11008, 16384); forced staged, 4 rows per block at 4096 and 1 row
         * per block for SwiGLU at 16384; forced stream, every ring shape it
         * picks: 4 warps x 4 slots (4096), 2 x 4 (SwiGLU 4096), 2 x 3
         * (11008), 1 x 4 / 1 x 2 (16384, SwiGLU 16384), with
         * LLORCH_CUDA_FUSED_BLOCKS=3 every slot reused; pf bodies (warppf,
         * Q40_LONG=pairpf, w6): all pairs prefetched (4096, 11008) and the
         * loop after them (16384; p1, p2, w5, q1: at 11008 too) */
        if (quick()) nl = 1;
        if (qt_info(t)->blck > 1) ls[nl++] = 4096;
        if (t == QT_Q4_0) ls[nl++] = 11008;
        if (t == QT_Q4_0) ls[nl++] = 16384;
        for (int li = 0; li < nl; li++)
            for (int ri = 0; ri < nrows; ri++) {
                if (!quick() || li == 0) fused_case(t, t2, ls[li], rows_list[ri]);
                fused_case(t, t, ls[li], rows_list[ri]); /* one type: a single launch */
            }
    }
}

/* rmsnorm then matmul, the decode pattern: split rmsnorm (norm.cu) and,
 * under LLORCH_CUDA_NORM_Q=1 (opt-in; gpu runs repeat this binary with it),
 * rmsnorm arming the mat-vec activation cache: the matmul that
 * follows must give the CPU's result, for a weight that hits the cache
 * (Q5_0, Q8_0, Q4_0: Q8_1) and one that misses it (Q4_K: Q8_K), for dims
 * the fused quantization takes (896, 4096) and one it does not (1001). */
static void test_fused_norm_quant(void **st) {
    (void)st;
    const struct { int t; int dim; } cases[] = {
        {QT_Q5_0, 896}, {QT_Q8_0, 896}, {QT_Q4_0, 4096}, {QT_Q4_K, 4096}, {QT_F32, 1001}, {QT_Q8_0, 1024},
    };
    for (size_t ci = 0; ci < NELEM(cases); ci++)
        for (int rows = 1; rows <= 2; rows++) {
            const int t = cases[ci].t, dim = cases[ci].dim;
            const int64_t ne1 = 77;
            fw w;
            fw_make(&w, t, dim, ne1);
            float *x = rnd((size_t)rows * dim, 3.0f), *g = rnd(dim, 1.0f);
            float *xg = gdup(x, (size_t)rows * dim * 4), *gg = gdup(g, (size_t)dim * 4);
            float *ng = gpoison((size_t)rows * dim), *nc = malloc((size_t)rows * dim * 4);
            float *yg = gpoison((size_t)rows * ne1), *yc = malloc((size_t)rows * ne1 * 4);
            G.ops->rmsnorm(G.ctx, xg, gg, ng, rows, dim, 1e-6f);
            G.ops->matmul(G.ctx, &w.wg, ng, yg, rows);
            C.ops->rmsnorm(C.ctx, x, g, nc, rows, dim, 1e-6f);
            C.ops->matmul(C.ctx, &w.wc, nc, yc, rows);
            float *h = gget(yg, (size_t)rows * ne1);
            char what[96];
            snprintf(what, sizeof what, "rmsnorm then matmul %s dim=%d rows=%d", qt_info(t)->name, dim, rows);
            check(h, yc, (size_t)rows * ne1, TOL_F32, what);
            free(h);
            /* the norm output itself is still the plain rmsnorm */
            h = gget(ng, (size_t)rows * dim);
            check(h, nc, (size_t)rows * dim, TOL_F32, what);
            free(h);
            free(x); free(g); free(nc); free(yc);
            G.ops->free(G.ctx, xg); G.ops->free(G.ctx, gg); G.ops->free(G.ctx, ng); G.ops->free(G.ctx, yg);
            fw_free(&w);
        }
}

/* rope_kv_store vs the CPU's rope, rope, kv_store: q, k (rotated in place)
 * and both fp16 caches; partial rotation, both orderings, GQA, strided rows */
static void test_fused_rope_kv(void **st) {
    (void)st;
    struct { int neox, n_rot, head_dim, n_head, n_kv, rows; } cases[] = {
        {1, 64, 64, 14, 2, 1},   /* qwen2 decode */
        {0, 128, 128, 32, 32, 1}, /* llama decode */
        {1, 32, 96, 5, 1, 4},    /* partial rotation, rows > 1 */
        {0, 8, 8, 8, 4, 3},
    };
    const int n_ctx = 4096;
    for (size_t ci = 0; ci < NELEM(cases); ci++) {
        const int rows = cases[ci].rows, hd = cases[ci].head_dim, nh = cases[ci].n_head, nkv = cases[ci].n_kv;
        const int Q = nh * hd, KV = nkv * hd, ld = Q + 2 * KV; /* one fused q|k|v row, as phi3's */
        float *qkv = rnd((size_t)rows * ld, 1.0f);
        float *qkv0 = malloc((size_t)rows * ld * 4);
        memcpy(qkv0, qkv, (size_t)rows * ld * 4);
        /* row 0 (the one-row cases) at 777: the rope itself (not the fusion)
         * differs from the CPU's by ~1.6e-4 at position 4095 with 128 rotated
         * dims (float vs double angles), which test_rope averages over rows */
        int32_t pos[4] = {777, 1, 4095, 0};
        eng_rope p = {cases[ci].n_rot, cases[ci].neox, 10000.0f, 1.0f, NULL, 0.0f, 1.0f, 32.0f, 1.0f, 4096};
        float *qg = gdup(qkv, (size_t)rows * ld * 4);
        int32_t *pg = gdup(pos, sizeof pos);
        const size_t cache = (size_t)n_ctx * KV * 2;
        uint16_t *kcg = NULL, *vcg = NULL;
        assert_int_equal(G.ops->alloc(G.ctx, cache, (void **)&kcg), 0);
        assert_int_equal(G.ops->alloc(G.ctx, cache, (void **)&vcg), 0);
        assert_int_equal(G.ops->zero(G.ctx, kcg, cache), 0);
        assert_int_equal(G.ops->zero(G.ctx, vcg, cache), 0);
        uint16_t *kcc = calloc(1, cache), *vcc = calloc(1, cache);
        G.ops->rope_kv_store(G.ctx, qg, ld, qg + Q, qg + Q + KV, ld, pg, rows, nh, nkv, hd, &p, kcg, vcg);
        C.ops->rope_kv_store(C.ctx, qkv, ld, qkv + Q, qkv + Q + KV, ld, pos, rows, nh, nkv, hd, &p, kcc, vcc);
        char what[64];
        snprintf(what, sizeof what, "rope_kv_store case %zu q|k|v", ci);
        float *h = gget(qg, (size_t)rows * ld);
        check(h, qkv, (size_t)rows * ld, TOL_F32, what);
        free(h);
        uint16_t *hk = malloc(cache), *hv = malloc(cache);
        assert_int_equal(G.ops->download(G.ctx, hk, kcg, cache), 0);
        assert_int_equal(G.ops->download(G.ctx, hv, vcg, cache), 0);
        const size_t ne = (size_t)n_ctx * KV;
        float *fk = malloc(ne * 4), *fkc = malloc(ne * 4), *fv = malloc(ne * 4), *fvc = malloc(ne * 4);
        for (size_t i = 0; i < ne; i++) {
            fk[i] = qt_f16_to_f32(hk[i]);
            fkc[i] = qt_f16_to_f32(kcc[i]);
            fv[i] = qt_f16_to_f32(hv[i]);
            fvc[i] = qt_f16_to_f32(vcc[i]);
        }
        /* the caches are fp16: a value within TOL_F32 of the CPU's can round
         * to the neighbouring half (2^-11 relative), so TOL_KV16 there */
        snprintf(what, sizeof what, "rope_kv_store case %zu k cache", ci);
        check(fk, fkc, ne, TOL_KV16, what);
        snprintf(what, sizeof what, "rope_kv_store case %zu v cache", ci);
        check(fv, fvc, ne, TOL_KV16, what);
        /* and against this backend's own rope, rope, kv_store: the fusion
         * itself must not change a value (TOL_EXACT) */
        {
            float *q2 = gdup(qkv0, (size_t)rows * ld * 4);
            uint16_t *kc2 = NULL, *vc2 = NULL;
            assert_int_equal(G.ops->alloc(G.ctx, cache, (void **)&kc2), 0);
            assert_int_equal(G.ops->alloc(G.ctx, cache, (void **)&vc2), 0);
            assert_int_equal(G.ops->zero(G.ctx, kc2, cache), 0);
            assert_int_equal(G.ops->zero(G.ctx, vc2, cache), 0);
            G.ops->rope(G.ctx, q2, ld, pg, rows, nh, hd, &p);
            G.ops->rope(G.ctx, q2 + Q, ld, pg, rows, nkv, hd, &p);
            G.ops->kv_store(G.ctx, kc2, vc2, q2 + Q, q2 + Q + KV, ld, pg, rows, KV);
            float *h2 = gget(q2, (size_t)rows * ld), *h1 = gget(qg, (size_t)rows * ld);
            snprintf(what, sizeof what, "rope_kv_store case %zu vs unfused q|k|v", ci);
            check(h1, h2, (size_t)rows * ld, TOL_EXACT, what);
            uint16_t *hk2 = malloc(cache), *hv2 = malloc(cache);
            assert_int_equal(G.ops->download(G.ctx, hk2, kc2, cache), 0);
            assert_int_equal(G.ops->download(G.ctx, hv2, vc2, cache), 0);
            float *f2 = malloc(ne * 4);
            for (size_t i = 0; i < ne; i++) f2[i] = qt_f16_to_f32(hk2[i]);
            snprintf(what, sizeof what, "rope_kv_store case %zu vs unfused k cache", ci);
            check(fk, f2, ne, TOL_EXACT, what);
            for (size_t i = 0; i < ne; i++) f2[i] = qt_f16_to_f32(hv2[i]);
            snprintf(what, sizeof what, "rope_kv_store case %zu vs unfused v cache", ci);
            check(fv, f2, ne, TOL_EXACT, what);
            free(f2); free(hk2); free(hv2); free(h1); free(h2);
            G.ops->free(G.ctx, q2); G.ops->free(G.ctx, kc2); G.ops->free(G.ctx, vc2);
        }
        /* every stored row is non-zero (the check above cannot pass on two empty caches) */
        for (int r = 0; r < rows; r++) {
            int nz = 0;
            for (int i = 0; i < KV; i++) nz += fk[(size_t)pos[r] * KV + i] != 0.0f && fv[(size_t)pos[r] * KV + i] != 0.0f;
            assert_true(nz > KV / 2);
        }
        free(fk); free(fkc); free(fv); free(fvc); free(hk); free(hv); free(kcc); free(vcc); free(qkv); free(qkv0);
        G.ops->free(G.ctx, qg); G.ops->free(G.ctx, pg); G.ops->free(G.ctx, kcg); G.ops->free(G.ctx, vcg);
    }
}

/* ---- decode attention with rope + KV store (attn_rope.cu) ---------------------------------
 * The fused launch decode_block uses (rope of q and k, k/v rows into the
 * caches, attention, optionally the output as Q8_1 for the o mat-vec)
 * against (a) the CPU's rope_kv_store + attention: output TOL_ATT, cache
 * row pos TOL_KV16, every other cache row exactly the CPU's (history
 * unchanged, zero above); (b) this backend's own rope_kv_store + attention
 * on the same inputs: both caches equal (bytes), the output TOL_ORDER
 * (head_dim 64/128 give a key 8/16 lanes, attention a whole warp: the
 * same fp32 terms, summed in another order);
 * (c) quant: the activation cache holds the output and its Q8_1 integers,
 * scales and sums equal k_quant_act's on the same floats. Both rope
 * orderings, partial rotation, GQA 1/4/7/9, head_dim 64/128, positions 0,
 * 1 and long (split path), S == 1 (288 heads); output poisoned each run. */
int llorch_cuda_attn_rope(void *ctx, const float *q, const float *k, const float *v, const int32_t *pos, int n_head,
                          int n_head_kv, int head_dim, const eng_rope *p, float scale, uint16_t *kc, uint16_t *vc,
                          float *out, int quant);
int llorch_cuda_act_q8(void *ctx, const float *x, int K, int requant, int8_t *q, float *d, float *s);

static void test_attn_rope(void **st) {
    (void)st;
    struct { int neox, n_rot, hd, nh, nkv, pos; } cases[] = {
        {1, 64, 64, 14, 2, 0},       /* qwen2, first token */
        {0, 128, 128, 32, 32, 1},    /* llama, second token */
        {1, 64, 64, 14, 2, 1500},    /* qwen2, long (split) */
        {0, 128, 128, 32, 32, 700},  /* llama, long */
        {1, 32, 128, 16, 4, 1},      /* partial rotation, GQA 4 */
        {0, 32, 64, 8, 2, 333},      /* partial, pairs, GQA 4 */
        {1, 128, 128, 28, 4, 2001},  /* GQA 7, hd 128 */
        {0, 64, 64, 288, 32, 9},     /* 288 heads: S == 1 */
        {1, 64, 64, 288, 32, 0},
    };
    for (size_t ci = 0; ci < NELEM(cases); ci++) {
        const int nh = cases[ci].nh, nkv = cases[ci].nkv, hd = cases[ci].hd, P = cases[ci].pos;
        const int Q = nh * hd, KV = nkv * hd, n_ctx = P + 4;
        const size_t ce = (size_t)n_ctx * KV, cb = ce * 2;
        uint16_t *kc = calloc(1, cb), *vc = calloc(1, cb);
        for (size_t i = 0; i < (size_t)P * KV; i++) {
            kc[i] = qt_f32_to_f16(tu_randf(&g_seed) * 2.0f);
            vc[i] = qt_f32_to_f16(tu_randf(&g_seed));
        }
        float *q = rnd(Q, 1.5f), *k = rnd(KV, 1.5f), *v = rnd(KV, 1.0f);
        float *ff = rnd(hd / 2, 0.5f);
        for (int i = 0; i < hd / 2; i++) ff[i] += 1.0f;
        float *ffg = gdup(ff, (size_t)hd / 2 * 4);
        /* freq_factors on the odd cases (ggml's rope_freqs) */
        eng_rope rp = {cases[ci].n_rot, cases[ci].neox, 10000.0f, 1.0f, NULL, 0.0f, 1.0f, 32.0f, 1.0f, 4096};
        eng_rope rg = rp;
        if (ci % 2) { rp.freq_factors = ff; rg.freq_factors = ffg; }
        const float scale = 1.0f / sqrtf((float)hd);
        int32_t pos = P;
        int32_t *pg = gdup(&pos, 4);
        float *qg = gdup(q, Q * 4), *kg = gdup(k, KV * 4), *vg = gdup(v, KV * 4);
        /* the CPU composition (in place on host copies) */
        float *qc = malloc(Q * 4), *kcp = malloc(KV * 4), *oc = malloc(Q * 4);
        memcpy(qc, q, Q * 4);
        memcpy(kcp, k, KV * 4);
        C.ops->rope_kv_store(C.ctx, qc, Q, kcp, v, KV, &pos, 1, nh, nkv, hd, &rp, kc, vc);
        C.ops->attention(C.ctx, qc, Q, kc, vc, &pos, 1, nh, nkv, hd, scale, oc);
        assert_int_equal(C.ops->sync(C.ctx), 0);
        /* this backend's composition on its own copies */
        uint16_t *kc0 = calloc(1, cb), *vc0 = calloc(1, cb);
        memcpy(kc0, kc, (size_t)P * KV * 2); /* the history only */
        memcpy(vc0, vc, (size_t)P * KV * 2);
        uint16_t *kg2 = gdup(kc0, cb), *vg2 = gdup(vc0, cb);
        float *qg2 = gdup(q, Q * 4), *kgg2 = gdup(k, KV * 4), *og2 = gpoison(Q);
        G.ops->rope_kv_store(G.ctx, qg2, Q, kgg2, vg, KV, pg, 1, nh, nkv, hd, &rg, kg2, vg2);
        G.ops->attention(G.ctx, qg2, Q, kg2, vg2, pg, 1, nh, nkv, hd, scale, og2);
        float *o2 = gget(og2, Q);
        uint16_t *kh2 = malloc(cb), *vh2 = malloc(cb);
        assert_int_equal(G.ops->download(G.ctx, kh2, kg2, cb), 0);
        assert_int_equal(G.ops->download(G.ctx, vh2, vg2, cb), 0);
        /* the fused launch, without and with the quantized output */
        uint16_t *kgf = gdup(kc0, cb), *vgf = gdup(vc0, cb);
        float *og = gpoison(Q);
        for (int quant = 0; quant < 2; quant++) {
            gpoison_again(og, Q);
            assert_int_equal(llorch_cuda_attn_rope(G.ctx, qg, kg, vg, pg, nh, nkv, hd, &rg, scale, kgf, vgf, og, quant), 0);
            assert_int_equal(G.ops->sync(G.ctx), 0);
            float *o = gget(og, Q);
            char what[160];
            snprintf(what, sizeof what, "attn_rope nh=%d nkv=%d hd=%d n_rot=%d neox=%d ff=%d pos=%d quant=%d vs cpu", nh,
                     nkv, hd, cases[ci].n_rot, cases[ci].neox, (int)(ci % 2), P, quant);
            check(o, oc, Q, TOL_ATT(P + 1), what);
            snprintf(what, sizeof what, "attn_rope nh=%d hd=%d pos=%d quant=%d vs cuda composition", nh, hd, P, quant);
            check(o, o2, Q, TOL_ORDER, what);
            uint16_t *kh = malloc(cb), *vh = malloc(cb);
            assert_int_equal(G.ops->download(G.ctx, kh, kgf, cb), 0);
            assert_int_equal(G.ops->download(G.ctx, vh, vgf, cb), 0);
            assert_memory_equal(kh, kh2, cb);
            assert_memory_equal(vh, vh2, cb);
            /* vs the CPU: all rows but pos exact, row pos TOL_KV16 and non-zero */
            for (int r = 0; r < n_ctx; r++) {
                if (r == P) continue;
                assert_memory_equal(kh + (size_t)r * KV, kc + (size_t)r * KV, (size_t)KV * 2);
                assert_memory_equal(vh + (size_t)r * KV, vc + (size_t)r * KV, (size_t)KV * 2);
            }
            float *f1 = malloc(4 * KV * 4);
            int nz = 0;
            for (int i = 0; i < KV; i++) {
                f1[i] = qt_f16_to_f32(kh[(size_t)P * KV + i]);
                f1[KV + i] = qt_f16_to_f32(kc[(size_t)P * KV + i]);
                f1[2 * KV + i] = qt_f16_to_f32(vh[(size_t)P * KV + i]);
                f1[3 * KV + i] = qt_f16_to_f32(vc[(size_t)P * KV + i]);
                nz += f1[i] != 0.0f && f1[2 * KV + i] != 0.0f;
            }
            assert_true(nz > KV / 2);
            snprintf(what, sizeof what, "attn_rope nh=%d hd=%d pos=%d k row", nh, hd, P);
            check(f1, f1 + KV, KV, TOL_KV16, what);
            snprintf(what, sizeof what, "attn_rope nh=%d hd=%d pos=%d v row", nh, hd, P);
            check(f1 + 2 * KV, f1 + 3 * KV, KV, TOL_KV16, what);
            free(f1); free(kh); free(vh);
            if (quant) {
                int8_t *qa = malloc(Q), *qb = malloc(Q);
                float *da = malloc(Q / 32 * 4), *sa = malloc(Q / 32 * 4), *db = malloc(Q / 32 * 4), *sb = malloc(Q / 32 * 4);
                assert_int_equal(llorch_cuda_act_q8(G.ctx, og, Q, 0, qa, da, sa), 1); /* registered in the cache */
                assert_true(llorch_cuda_act_q8(G.ctx, og, Q, 1, qb, db, sb) >= 0); /* k_quant_act */
                assert_memory_equal(qa, qb, Q);
                assert_memory_equal(da, db, Q / 32 * 4);
                assert_memory_equal(sa, sb, Q / 32 * 4);
                int nzq = 0;
                for (int i = 0; i < Q; i++) nzq += qa[i] != 0;
                assert_true(nzq > Q / 2);
                for (int g = 0; g < Q / 32; g++) assert_true(isfinite(da[g]) && da[g] > 0.0f);
                free(qa); free(qb); free(da); free(sa); free(db); free(sb);
            }
            free(o);
        }
        free(kc); free(vc); free(q); free(k); free(v); free(ff); free(qc); free(kcp); free(oc); free(kc0); free(vc0);
        free(o2); free(kh2); free(vh2);
        G.ops->free(G.ctx, ffg); G.ops->free(G.ctx, pg); G.ops->free(G.ctx, qg); G.ops->free(G.ctx, kg);
        G.ops->free(G.ctx, vg); G.ops->free(G.ctx, kg2); G.ops->free(G.ctx, vg2); G.ops->free(G.ctx, qg2);
        G.ops->free(G.ctx, kgg2); G.ops->free(G.ctx, og2); G.ops->free(G.ctx, kgf); G.ops->free(G.ctx, vgf);
        G.ops->free(G.ctx, og);
    }
}

/* ---- decode_block (backend.h; persist.cu) ---------------------------------------------------
 * One whole decoder block on one row against the CPU's composition, random
 * weights of each format the persistent kernel claims (q/k/v, o, gate/up,
 * down may differ), a fallback format (F16, Q3_K: the CUDA composition),
 * Qwen2.5-0.5B's and Llama-2-7B's shapes and odd ones (partial rotation,
 * llama-style pairs, no GQA, F not a multiple of 256), positions 0 and long
 * ones (the split attention), the scratch poisoned before each run.
 * Each case runs 3 steps at positions p, p+1, p+2: the first captured into
 * a graph (record_begin/end), the next two replayed with new x and pos, so
 * the barrier words and attention counters are reused across replays.
 * Bounds: q, k, v and att within TOL_BLOCK_PRE and x (the residual after
 * the block) within TOL_BLOCK_FLIP of the same block through the CUDA
 * composition (LLORCH_CUDA_PERSIST=0: the ops tested above), and x
 * against the CPU within 1.5x the composition's own CPU error +
 * TOL_BLOCK_FLIP (and < 0.1): a whole block amplifies the attention's fp16
 * (CPU) / fp32 (CUDA) difference through its quantized activations, so a
 * fixed per-op bound does not apply; the K/V cache row of the step
 * TOL_KV16; every row no step wrote exactly the CPU's (unchanged history,
 * zero above). The persistent path must have run for the fast formats and not
 * for the fallbacks (llorch_cuda_persist_launches). */
extern unsigned long llorch_cuda_persist_launches;

typedef struct {
    const char *name;
    int E, nh, nkv, hd, F, n_rot, neox, bias;
    int tq, tv, to, tg, td;
    int pos;
    int fast;
} blk_case;

/* host time of one replay of the recorded graph `key` (20 warm-up replays,
 * then the mean of 200), microseconds: diagnostics only, never asserted */
static double replay_us(int key) {
    for (int i = 0; i < 20; i++) assert_int_equal(G.ops->record_begin(G.ctx, key), 1);
    assert_int_equal(G.ops->sync(G.ctx), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 200; i++) assert_int_equal(G.ops->record_begin(G.ctx, key), 1);
    assert_int_equal(G.ops->sync(G.ctx), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / 200;
}

static void block_case(const blk_case *bc, int key) {
    const int E = bc->E, Q = bc->nh * bc->hd, KV = bc->nkv * bc->hd, F = bc->F, hd = bc->hd;
    const int n_ctx = bc->pos + 8;
    fw wq, wk, wv, wo, wgt, wup, wdn;
    fw_make(&wq, bc->tq, E, Q);
    fw_make(&wk, bc->tq, E, KV);
    fw_make(&wv, bc->tv, E, KV);
    fw_make(&wo, bc->to, Q, E);
    fw_make(&wgt, bc->tg, E, F);
    fw_make(&wup, bc->tg, E, F);
    fw_make(&wdn, bc->td, F, E);
    /* attn_norm ~0.05..0.15 keeps q/k small: with full-scale random weights
     * q.k reaches hundreds and the softmax over two fresh keys of similar
     * score turns a 1e-4 difference into a percent (ill-conditioned data,
     * not a kernel error) */
    float *an = rnd(E, 0.05f), *fn = rnd(E, 1.0f);
    for (int i = 0; i < E; i++) { an[i] += 0.1f; fn[i] += 1.5f; }
    float *bq = bc->bias ? rnd(Q, 1.0f) : NULL, *bk = bc->bias ? rnd(KV, 1.0f) : NULL, *bv = bc->bias ? rnd(KV, 1.0f) : NULL;
    float *ang = gdup(an, E * 4), *fng = gdup(fn, E * 4);
    float *bqg = bq ? gdup(bq, Q * 4) : NULL, *bkg = bk ? gdup(bk, KV * 4) : NULL, *bvg = bv ? gdup(bv, KV * 4) : NULL;
    /* caches: random history in rows < pos, zero above */
    const size_t ce = (size_t)n_ctx * KV, cb = ce * 2;
    uint16_t *kc = calloc(1, cb), *vc = calloc(1, cb);
    for (size_t i = 0; i < (size_t)bc->pos * KV; i++) {
        kc[i] = qt_f32_to_f16(tu_randf(&g_seed) * 2.0f);
        vc[i] = qt_f32_to_f16(tu_randf(&g_seed));
    }
    uint16_t *kcg = gdup(kc, cb), *vcg = gdup(vc, cb);
    eng_rope rp = {bc->n_rot, bc->neox, 10000.0f, 1.0f, NULL, 0.0f, 1.0f, 32.0f, 1.0f, 4096};
    eng_block_w bw = {an, fn, &wq.wc, &wk.wc, &wv.wc, bq, bk, bv, &wo.wc, &wgt.wc, &wup.wc, &wdn.wc,
                      bc->nh, bc->nkv, hd, 1e-5f, 1.0f / sqrtf((float)hd), rp, kc, vc};
    eng_block_w bg = {ang, fng, &wq.wg, &wk.wg, &wv.wg, bqg, bkg, bvg, &wo.wg, &wgt.wg, &wup.wg, &wdn.wg,
                      bc->nh, bc->nkv, hd, 1e-5f, 1.0f / sqrtf((float)hd), rp, kcg, vcg};
    /* scratch: one host block, one device block (poisoned every step) */
    const size_t nt = (size_t)E + Q + KV + KV + Q + E + 2 * F + F;
    float *th = malloc(nt * 4), *tg = gpoison(nt);
    eng_block_tmp tc = {th, th + E, th + E + Q, th + E + Q + KV, th + E + Q + 2 * KV, th + E + 2 * Q + 2 * KV,
                        th + 2 * E + 2 * Q + 2 * KV, th + 2 * E + 2 * Q + 2 * KV + 2 * F};
    eng_block_tmp tgp = {tg, tg + E, tg + E + Q, tg + E + Q + KV, tg + E + Q + 2 * KV, tg + E + 2 * Q + 2 * KV,
                         tg + 2 * E + 2 * Q + 2 * KV, tg + 2 * E + 2 * Q + 2 * KV + 2 * F};
    float *xg = gpoison(E);
    int32_t *pg = NULL;
    assert_int_equal(G.ops->alloc(G.ctx, 4, (void **)&pg), 0);
    /* the same block through the CUDA composition (LLORCH_CUDA_PERSIST=0,
     * eager), on its own x, caches and scratch: the persistent kernel must
     * match it closely (same fp32 attention; only summation orders and the
     * rare q8 rounding flip differ), which separates a kernel error from
     * the CPU reference's fp16 attention rounding */
    uint16_t *kcg2 = gdup(kc, cb), *vcg2 = gdup(vc, cb);
    float *xg2 = gpoison(E), *tg2 = gpoison(nt);
    eng_block_w bg2 = bg;
    bg2.k_cache = kcg2;
    bg2.v_cache = vcg2;
    eng_block_tmp tgp2 = {tg2, tg2 + E, tg2 + E + Q, tg2 + E + Q + KV, tg2 + E + Q + 2 * KV, tg2 + E + 2 * Q + 2 * KV,
                          tg2 + 2 * E + 2 * Q + 2 * KV, tg2 + 2 * E + 2 * Q + 2 * KV + 2 * F};
    const char *pe = getenv("LLORCH_CUDA_PERSIST");
    char pe_saved[16] = "";
    if (pe) snprintf(pe_saved, sizeof pe_saved, "%s", pe);
    const unsigned long l0 = llorch_cuda_persist_launches;
    for (int step = 0; step < 3; step++) {
        int32_t pos = bc->pos + step;
        float *x = rnd(E, 1.0f);
        assert_int_equal(G.ops->upload(G.ctx, xg, x, E * 4), 0);
        assert_int_equal(G.ops->upload(G.ctx, xg2, x, E * 4), 0);
        assert_int_equal(G.ops->upload(G.ctx, pg, &pos, 4), 0);
        gpoison_again(tg, nt);
        gpoison_again(tg2, nt);
        const int replayed = G.ops->record_begin(G.ctx, key);
        assert_int_equal(replayed, step == 0 ? 0 : 1);
        if (!replayed) {
            G.ops->decode_block(G.ctx, &bg, xg, pg, &tgp);
            assert_int_equal(G.ops->record_end(G.ctx, key), 0);
        }
        setenv("LLORCH_CUDA_PERSIST", "0", 1);
        G.ops->decode_block(G.ctx, &bg2, xg2, pg, &tgp2);
        if (pe) setenv("LLORCH_CUDA_PERSIST", pe_saved, 1);
        else unsetenv("LLORCH_CUDA_PERSIST");
        C.ops->decode_block(C.ctx, &bw, x, &pos, &tc);
        assert_int_equal(C.ops->sync(C.ctx), 0);
        float *h = gget(xg, E), *h2 = gget(xg2, E), *t1 = gget(tg, nt), *t2 = gget(tg2, nt);
        char what[160];
        /* the block's intermediates (q, k roped; v; att; hb) against both
         * references: printed, so a failure shows which phase drifted */
        const size_t so[5] = {E, E + Q, E + Q + KV, E + Q + 2 * KV, 2 * E + 2 * Q + 2 * KV + 2 * F};
        const size_t sn[5] = {Q, KV, KV, Q, F};
        const char *sname[5] = {"q", "k", "v", "att", "hb"};
        double ec[5], eg[5];
        for (int j = 0; j < 5; j++) {
            ec[j] = rel_err(t1 + so[j], th + so[j], sn[j], sname[j]);
            eg[j] = rel_err(t1 + so[j], t2 + so[j], sn[j], sname[j]);
        }
        const double exc = rel_err(h, x, E, "x"), exg = rel_err(h, h2, E, "x");
        print_message("  %s pos %d: rel err vs cpu / vs cuda composition: q %.2g/%.2g k %.2g/%.2g v %.2g/%.2g "
                      "att %.2g/%.2g hb %.2g/%.2g x %.2g/%.2g\n",
                      bc->name, pos, ec[0], eg[0], ec[1], eg[1], ec[2], eg[2], ec[3], eg[3], ec[4], eg[4], exc, exg);
        /* the persistent kernel must equal the CUDA composition up to
         * summation order: q/k/v/att tightly, x up to an activation
         * rounding flip (TOL_BLOCK_FLIP); against the CPU it may differ
         * only as much as the composition does, plus one flip (each
         * primitive is tested against the CPU above; the block's quantized
         * activations amplify the attention's fp16/fp32 difference, e.g.
         * att 3e-4 -> x 1.4e-2 at Qwen's shape, H100), and never beyond a
         * sanity bound of 0.1 */
        /* q and k are checked against the CPU's scratch: the CUDA
         * composition ropes them inside its fused decode attention
         * (attn_rope.cu) and leaves them unroped in tmp, which the op's
         * contract allows (tmp is scratch); its roped k is in the cache,
         * checked below; a fallback case (!bc->fast) runs that same CUDA
         * composition, so its tmp is compared with the composition's */
        for (int j = 0; j < 4; j++) {
            const int vs_cpu = j < 2 && bc->fast;
            snprintf(what, sizeof what, "decode_block %s pos %d: %s vs the %s composition", bc->name, pos, sname[j],
                     vs_cpu ? "CPU" : "CUDA");
            check(t1 + so[j], (vs_cpu ? th : t2) + so[j], sn[j], TOL_BLOCK_PRE, what);
        }
        snprintf(what, sizeof what, "decode_block %s pos %d: x vs the CUDA composition", bc->name, pos);
        check(h, h2, E, TOL_BLOCK_FLIP, what);
        if (!(exc <= 1.5 * rel_err(h2, x, E, "x") + TOL_BLOCK_FLIP && exc <= 0.1))
            fail_msg("decode_block %s pos %d: x vs cpu %.3g, the CUDA composition's %.3g", bc->name, pos, exc,
                     rel_err(h2, x, E, "x"));
        free(h); free(h2); free(t1); free(t2);
        /* caches: row pos within TOL_KV16, every other row exactly the CPU's */
        uint16_t *hk = malloc(cb), *hv = malloc(cb);
        assert_int_equal(G.ops->download(G.ctx, hk, kcg, cb), 0);
        assert_int_equal(G.ops->download(G.ctx, hv, vcg, cb), 0);
        for (int r = 0; r < n_ctx; r++) {
            if (r >= bc->pos && r <= pos) continue; /* written by this case's steps: checked below, TOL_KV16 */
            if (memcmp(hk + (size_t)r * KV, kc + (size_t)r * KV, (size_t)KV * 2) ||
                memcmp(hv + (size_t)r * KV, vc + (size_t)r * KV, (size_t)KV * 2))
                fail_msg("decode_block %s pos %d: cache row %d differs", bc->name, pos, r);
        }
        float *f[4];
        for (int j = 0; j < 4; j++) f[j] = malloc((size_t)KV * 4);
        int nz = 0;
        for (int i = 0; i < KV; i++) {
            const size_t o = (size_t)pos * KV + i;
            f[0][i] = qt_f16_to_f32(hk[o]);
            f[1][i] = qt_f16_to_f32(kc[o]);
            f[2][i] = qt_f16_to_f32(hv[o]);
            f[3][i] = qt_f16_to_f32(vc[o]);
            nz += f[1][i] != 0.0f;
        }
        assert_true(nz > KV / 2); /* the CPU wrote the row: the comparison can fail */
        snprintf(what, sizeof what, "decode_block %s pos %d: k cache row", bc->name, pos);
        check(f[0], f[1], KV, TOL_KV16, what);
        snprintf(what, sizeof what, "decode_block %s pos %d: v cache row", bc->name, pos);
        check(f[2], f[3], KV, TOL_KV16, what);
        for (int j = 0; j < 4; j++) free(f[j]);
        free(hk); free(hv); free(x);
    }
    if (bc->fast) assert_true(llorch_cuda_persist_launches == l0 + 1); /* captured once, replayed twice */
    else assert_true(llorch_cuda_persist_launches == l0);
    /* diagnostics (LLORCH_CUDA_PERSIST_TIMING=1, read by persist.cu at
     * capture): graph replays of one layer host-timed, persistent vs the
     * composition, and the phase stamps of the last persistent launch */
    if (bc->fast && getenv("LLORCH_CUDA_PERSIST_TIMING") && bc->E <= 1024) {
        double us[2];
        for (int v = 0; v < 2; v++) {
            const int k2 = key + 500 * v;
            if (v) {
                setenv("LLORCH_CUDA_PERSIST", "0", 1);
                assert_int_equal(G.ops->record_begin(G.ctx, k2), 0);
                G.ops->decode_block(G.ctx, &bg2, xg2, pg, &tgp2);
                assert_int_equal(G.ops->record_end(G.ctx, k2), 0);
                if (pe) setenv("LLORCH_CUDA_PERSIST", pe_saved, 1);
                else unsetenv("LLORCH_CUDA_PERSIST");
            }
            us[v] = replay_us(k2);
        }
        unsigned long long ts[16];
        extern int llorch_cuda_persist_stamps(unsigned long long out[16]);
        assert_int_equal(llorch_cuda_persist_stamps(ts), 0);
        print_message("  timing %s: one layer per graph replay %.1f us persistent, %.1f us composition\n", bc->name,
                      us[0], us[1]);
        print_message("  stamps (us from entry): wait %.2f | A staged %.2f done %.2f bar %.2f | B done %.2f bar %.2f | "
                      "C staged %.2f done %.2f bar %.2f | D staged %.2f done %.2f bar %.2f | E staged %.2f done %.2f\n",
                      (ts[1] - ts[0]) / 1e3, (ts[2] - ts[0]) / 1e3, (ts[3] - ts[0]) / 1e3, (ts[4] - ts[0]) / 1e3,
                      (ts[5] - ts[0]) / 1e3, (ts[6] - ts[0]) / 1e3, (ts[7] - ts[0]) / 1e3, (ts[8] - ts[0]) / 1e3,
                      (ts[9] - ts[0]) / 1e3, (ts[10] - ts[0]) / 1e3, (ts[11] - ts[0]) / 1e3, (ts[12] - ts[0]) / 1e3,
                      (ts[13] - ts[0]) / 1e3, (ts[14] - ts[0]) / 1e3);
    }
    print_message("decode_block %s: ok (%s)\n", bc->name, bc->fast ? "persistent" : "composition");
    G.ops->free(G.ctx, kcg2); G.ops->free(G.ctx, vcg2); G.ops->free(G.ctx, xg2); G.ops->free(G.ctx, tg2);
    free(th); free(kc); free(vc); free(an); free(fn); free(bq); free(bk); free(bv);
    G.ops->free(G.ctx, tg); G.ops->free(G.ctx, xg); G.ops->free(G.ctx, pg);
    G.ops->free(G.ctx, kcg); G.ops->free(G.ctx, vcg); G.ops->free(G.ctx, ang); G.ops->free(G.ctx, fng);
    G.ops->free(G.ctx, bqg); G.ops->free(G.ctx, bkg); G.ops->free(G.ctx, bvg);
    fw_free(&wq); fw_free(&wk); fw_free(&wv); fw_free(&wo); fw_free(&wgt); fw_free(&wup); fw_free(&wdn);
}

/* persist.cu's per-layer kernel is opt-in (LLORCH_CUDA_PERSIST=1): these
 * tests turn it on, and lift the layer-size gate so Llama-2-7B's shapes run
 * it too */
static void test_decode_block(void **st) {
    (void)st;
    env_save e1, e2;
    env_push(&e1, "LLORCH_CUDA_PERSIST", "1");
    env_push(&e2, "LLORCH_CUDA_PERSIST_MAXMB", "100000");
    const blk_case cases[] = {
        /* name                 E    nh nkv hd  F     rot neox bias q        v        o        gate/up  down    pos  fast */
        {"qwen2.5-0.5b",      896, 14, 2, 64, 4864,   64, 1, 1, QT_Q5_0, QT_Q8_0, QT_Q5_0, QT_Q5_0, QT_Q4_K, 0,    1},
        {"qwen2.5-0.5b long", 896, 14, 2, 64, 4864,   64, 1, 1, QT_Q5_0, QT_Q8_0, QT_Q5_0, QT_Q5_0, QT_Q6_K, 1500, 1},
        {"llama-2-7b",       4096, 32, 32, 128, 11008, 128, 0, 0, QT_Q4_0, QT_Q4_0, QT_Q4_0, QT_Q4_0, QT_Q4_0, 0,  1},
        {"llama-2-7b long",  4096, 32, 32, 128, 11008, 128, 0, 0, QT_Q4_0, QT_Q4_0, QT_Q4_0, QT_Q4_0, QT_Q4_0, 700, 1},
        {"k-quants",          512, 8, 2, 64, 1536,    64, 1, 1, QT_Q5_K, QT_Q6_K, QT_Q4_K, QT_Q4_K, QT_Q6_K, 37,   1},
        {"odd: rot 32 llama pairs, no gqa", 192, 3, 3, 64, 160, 32, 0, 1, QT_Q4_1, QT_Q5_1, QT_Q8_0, QT_Q4_0, QT_Q5_0, 5, 1},
        {"hd 128 gqa 4",     1024, 8, 2, 128, 2816,  128, 1, 0, QT_Q8_0, QT_Q8_0, QT_Q4_0, QT_Q5_0, QT_Q8_0, 300,  1},
        {"fallback f16",      256, 4, 2, 64, 512,     64, 1, 1, QT_F16,  QT_F16,  QT_F16,  QT_F16,  QT_F16,  9,    0},
        {"fallback q3_k",     512, 8, 2, 64, 1024,    64, 1, 0, QT_Q3_K, QT_Q3_K, QT_Q3_K, QT_Q3_K, QT_Q3_K, 2,    0},
        {"fallback hd 32",    256, 8, 2, 32, 512,     32, 1, 0, QT_Q8_0, QT_Q8_0, QT_Q8_0, QT_Q8_0, QT_Q8_0, 4,    0},
    };
    for (size_t ci = 0; ci < NELEM(cases); ci++) block_case(&cases[ci], 1000 + (int)ci);
    env_pop(&e2);
    env_pop(&e1);
}

/* decode_layers: 3 Qwen-shaped layers of different formats, in ONE
 * persistent launch (LLORCH_CUDA_PERSIST_LAYERS=1) and in a persistent
 * launch per layer (=0), against the CPU's loop of decode_block and the CUDA
 * composition, positions 0.. and 700.. (split attention), captured once and
 * replayed twice; x against the CPU as test_decode_block, x against the
 * composition and the K/V rows of layers > 0 within 1.5x the composition's
 * CPU error + TOL_BLOCK_FLIP (layers compound rounding flips), layer 0's
 * rows TOL_KV16. */
extern unsigned long llorch_cuda_persist_multi_launches, llorch_cuda_pkw_launches;

/* multi: 0 a persistent launch per layer, 1 one for all layers, 2 the
 * weights-in-shared-memory kernel (LLORCH_CUDA_PERSIST=2, one launch) */
static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* wide: 0 Qwen2.5-0.5B's shape (head_dim 64, q width = E), 1 Qwen3-0.6B's
 * (E 1024, 16 heads of 128, 8 kv heads: q width 2048 != E, F 3072) */
static void layers_case(int pos0, int multi, int key, int wide) {
    enum { NL = 3 };
    const int E = wide ? 1024 : 896, nh = wide ? 16 : 14, nkv = wide ? 8 : 2, hd = wide ? 128 : 64;
    const int F = wide ? 3072 : 4864, Q = nh * hd, KV = nkv * hd;
    const int tq[NL] = {QT_Q5_0, QT_Q8_0, QT_Q5_1}, tv[NL] = {QT_Q8_0, QT_Q4_0, QT_Q8_0};
    const int to[NL] = {QT_Q5_0, QT_Q8_0, QT_Q4_1}, tg[NL] = {QT_Q5_0, QT_Q4_0, QT_Q8_0};
    const int td[NL] = {QT_Q4_K, QT_Q6_K, QT_Q5_K};
    const int n_ctx = pos0 + 8;
    const size_t ce = (size_t)n_ctx * KV, cb = ce * 2;
    fw w[NL][7];
    float *an[NL], *fn[NL], *bq[NL], *bk[NL], *bv[NL], *ang[NL], *fng[NL], *bqg[NL], *bkg[NL], *bvg[NL];
    uint16_t *kc = calloc(NL, cb), *vc = calloc(NL, cb);
    for (size_t i = 0; i < (size_t)NL * ce; i++) {
        if (i % ce >= (size_t)pos0 * KV) continue; /* history rows only */
        kc[i] = qt_f32_to_f16(tu_randf(&g_seed) * 2.0f);
        vc[i] = qt_f32_to_f16(tu_randf(&g_seed));
    }
    uint16_t *kcg = gdup(kc, NL * cb), *vcg = gdup(vc, NL * cb), *kcg2 = gdup(kc, NL * cb), *vcg2 = gdup(vc, NL * cb);
    eng_block_w bc[NL], bg[NL], bg2[NL];
    eng_rope rp = {hd, 1, 1000000.0f, 1.0f, NULL, 0.0f, 1.0f, 32.0f, 1.0f, 4096};
    for (int l = 0; l < NL; l++) {
        fw_make(&w[l][0], tq[l], E, Q);
        fw_make(&w[l][1], tq[l], E, KV);
        fw_make(&w[l][2], tv[l], E, KV);
        fw_make(&w[l][3], to[l], Q, E);
        fw_make(&w[l][4], tg[l], E, F);
        fw_make(&w[l][5], tg[l], E, F);
        fw_make(&w[l][6], td[l], F, E);
        an[l] = rnd(E, 0.05f);
        fn[l] = rnd(E, 1.0f);
        for (int i = 0; i < E; i++) { an[l][i] += 0.1f; fn[l][i] += 1.5f; }
        bq[l] = rnd(Q, 1.0f); bk[l] = rnd(KV, 1.0f); bv[l] = rnd(KV, 1.0f);
        ang[l] = gdup(an[l], E * 4); fng[l] = gdup(fn[l], E * 4);
        bqg[l] = gdup(bq[l], Q * 4); bkg[l] = gdup(bk[l], KV * 4); bvg[l] = gdup(bv[l], KV * 4);
        bc[l] = (eng_block_w){an[l], fn[l], &w[l][0].wc, &w[l][1].wc, &w[l][2].wc, bq[l], bk[l], bv[l], &w[l][3].wc,
                              &w[l][4].wc, &w[l][5].wc, &w[l][6].wc, nh, nkv, hd, 1e-6f, 0.125f, rp, kc + l * ce, vc + l * ce};
        bg[l] = (eng_block_w){ang[l], fng[l], &w[l][0].wg, &w[l][1].wg, &w[l][2].wg, bqg[l], bkg[l], bvg[l], &w[l][3].wg,
                              &w[l][4].wg, &w[l][5].wg, &w[l][6].wg, nh, nkv, hd, 1e-6f, 0.125f, rp, kcg + l * ce, vcg + l * ce};
        bg2[l] = bg[l];
        bg2[l].k_cache = kcg2 + l * ce;
        bg2[l].v_cache = vcg2 + l * ce;
    }
    const size_t nt = (size_t)E + Q + KV + KV + Q + E + 2 * F + F;
    float *th = malloc(nt * 4), *t1 = gpoison(nt), *t2 = gpoison(nt);
#define TMP(b) {b, b + E, b + E + Q, b + E + Q + KV, b + E + Q + 2 * KV, b + E + 2 * Q + 2 * KV, b + 2 * E + 2 * Q + 2 * KV, b + 2 * E + 2 * Q + 2 * KV + 2 * F}
    eng_block_tmp tc = TMP(th), tg1 = TMP(t1), tg2 = TMP(t2);
#undef TMP
    float *xg = gpoison(E), *xg2 = gpoison(E);
    int32_t *pg = NULL;
    assert_int_equal(G.ops->alloc(G.ctx, 4, (void **)&pg), 0);
    const char *pe = getenv("LLORCH_CUDA_PERSIST");
    char pe_saved[16] = "";
    if (pe) snprintf(pe_saved, sizeof pe_saved, "%s", pe);
    const unsigned long m0 = llorch_cuda_persist_multi_launches, l0 = llorch_cuda_persist_launches;
    const unsigned long w0 = llorch_cuda_pkw_launches;
    for (int step = 0; step < 3; step++) {
        int32_t pos = pos0 + step;
        float *x = rnd(E, 1.0f);
        assert_int_equal(G.ops->upload(G.ctx, xg, x, E * 4), 0);
        assert_int_equal(G.ops->upload(G.ctx, xg2, x, E * 4), 0);
        assert_int_equal(G.ops->upload(G.ctx, pg, &pos, 4), 0);
        gpoison_again(t1, nt);
        const int replayed = G.ops->record_begin(G.ctx, key);
        assert_int_equal(replayed, step == 0 ? 0 : 1);
        if (!replayed) {
            G.ops->decode_layers(G.ctx, bg, NL, xg, pg, &tg1);
            assert_int_equal(G.ops->record_end(G.ctx, key), 0);
        }
        setenv("LLORCH_CUDA_PERSIST", "0", 1);
        G.ops->decode_layers(G.ctx, bg2, NL, xg2, pg, &tg2);
        if (pe) setenv("LLORCH_CUDA_PERSIST", pe_saved, 1);
        else unsetenv("LLORCH_CUDA_PERSIST");
        C.ops->decode_layers(C.ctx, bc, NL, x, &pos, &tc);
        assert_int_equal(C.ops->sync(C.ctx), 0);
        float *h = gget(xg, E), *h2 = gget(xg2, E);
        const double exc = rel_err(h, x, E, "x"), exg = rel_err(h, h2, E, "x"), e2c = rel_err(h2, x, E, "x");
        print_message("  decode_layers pos %d: x rel err vs cpu %.2g, vs cuda composition %.2g (composition vs cpu %.2g)\n",
                      pos, exc, exg, e2c);
        char what[128];
        /* several layers compound the flips: the two CUDA paths then drift
         * apart as far as the composition drifts from the CPU (3.1e-2 vs
         * 3.6e-2 seen at pos 701, H100), so x is held to the composition
         * as it is to the CPU: 1.5x the composition's CPU error + a flip */
        snprintf(what, sizeof what, "decode_layers pos %d: x vs the CUDA composition", pos);
        const double xtol = 1.5 * e2c + TOL_BLOCK_FLIP + (multi == 2 ? TOL_PKW_X : 0.0);
        check(h, h2, E, xtol, what);
        if (!(exc <= xtol && exc <= 0.1))
            fail_msg("decode_layers pos %d: x vs cpu %.3g, the CUDA composition's %.3g", pos, exc, e2c);
        /* every layer's K/V row of the step: TOL_KV16 of the CUDA
         * composition's; against the CPU, layer 0 TOL_KV16 (its input is
         * the test's x) and the deeper layers as x above (their input is a
         * previous layer's output, which the whole-block amplification
         * already moved: 1.6e-2 seen at layer 1, H100) */
        uint16_t *hk = malloc(NL * cb), *hv = malloc(NL * cb), *hk2 = malloc(NL * cb), *hv2 = malloc(NL * cb);
        assert_int_equal(G.ops->download(G.ctx, hk, kcg, NL * cb), 0);
        assert_int_equal(G.ops->download(G.ctx, hv, vcg, NL * cb), 0);
        assert_int_equal(G.ops->download(G.ctx, hk2, kcg2, NL * cb), 0);
        assert_int_equal(G.ops->download(G.ctx, hv2, vcg2, NL * cb), 0);
        float *f[6];
        for (int j = 0; j < 6; j++) f[j] = malloc((size_t)KV * 4);
        for (int l = 0; l < NL; l++) {
            for (int i = 0; i < KV; i++) {
                const size_t o = l * ce + (size_t)pos * KV + i;
                f[0][i] = qt_f16_to_f32(hk[o]); f[1][i] = qt_f16_to_f32(kc[o]); f[4][i] = qt_f16_to_f32(hk2[o]);
                f[2][i] = qt_f16_to_f32(hv[o]); f[3][i] = qt_f16_to_f32(vc[o]); f[5][i] = qt_f16_to_f32(hv2[o]);
            }
            /* layer 0's rows come from the test's x (TOL_KV16 of both);
             * deeper layers' from block outputs, which carry the flips of
             * the layers before: as x above */
            for (int j = 0; j < 2; j++) {
                const double ep = rel_err(f[2 * j], f[2 * j + 1], KV, "cache"), ec = rel_err(f[4 + j], f[2 * j + 1], KV, "cache");
                /* the weights-in-shared-memory kernel multiplies unquantized
                 * fp32 activations: layer 0's rows differ from the Q8 paths
                 * (composition, CPU) by the activation quantization (~0.5%) */
                const double bound = l == 0 ? (multi == 2 ? TOL_PKW_ACT : TOL_KV16) : 1.5 * ec + TOL_BLOCK_FLIP + (multi == 2 ? TOL_PKW_X : 0.0);
                snprintf(what, sizeof what, "decode_layers pos %d layer %d: %s cache row vs composition", pos, l,
                         j ? "v" : "k");
                check(f[2 * j], f[4 + j], KV, bound, what);
                if (!(ep <= bound && ep <= 0.1))
                    fail_msg("decode_layers pos %d layer %d: %s cache row vs cpu %.3g (composition %.3g)", pos, l,
                             j ? "v" : "k", ep, ec);
            }
        }
        for (int j = 0; j < 6; j++) free(f[j]);
        free(hk); free(hv); free(hk2); free(hv2); free(h); free(h2); free(x);
    }
    /* diagnostics (LLORCH_CUDA_PERSIST_TIMING=1, weights-in-shared-memory
     * kernel): graph replays host-timed against the composition's, and the
     * kernel's per-step sums over the layers (persist.cu PW_T) */
    if (multi == 2 && getenv("LLORCH_CUDA_PERSIST_TIMING")) {
        double us[2];
        for (int v = 0; v < 2; v++) {
            const int k2 = v ? key + 100 : key;
            if (v) {
                setenv("LLORCH_CUDA_PERSIST", "0", 1);
                assert_int_equal(G.ops->record_begin(G.ctx, k2), 0);
                G.ops->decode_layers(G.ctx, bg2, NL, xg2, pg, &tg2);
                assert_int_equal(G.ops->record_end(G.ctx, k2), 0);
                if (pe) setenv("LLORCH_CUDA_PERSIST", pe_saved, 1);
                else unsetenv("LLORCH_CUDA_PERSIST");
            }
            us[v] = replay_us(k2);
        }
        for (int i = 0; i < 20; i++) assert_int_equal(G.ops->record_begin(G.ctx, key), 1);
        assert_int_equal(G.ops->sync(G.ctx), 0);
        extern const int llorch_cuda_pkw_nstamps;
        const int ns = llorch_cuda_pkw_nstamps;
        assert_true(ns >= 20 && ns <= 32);
        unsigned long long ts[32];
        extern int llorch_cuda_pkw_stamps(unsigned long long *out);
        extern int llorch_cuda_pkw_block_stamps(unsigned long long *out, int nblk);
        extern int llorch_cuda_pkw_last_grid;
        const int per_block = !strcmp(getenv("LLORCH_CUDA_PERSIST_TIMING"), "2");
        if (per_block) {
            /* every block's per-step sums: min / median / max over the
             * blocks, and the latest block, per step (which blocks a phase
             * waits for) */
            const int nb = llorch_cuda_pkw_last_grid;
            unsigned long long *bs = malloc((size_t)nb * ns * sizeof *bs);
            double *col = malloc((size_t)nb * sizeof *col);
            assert_int_equal(llorch_cuda_pkw_block_stamps(bs, nb), 0);
            static const char *step[20] = {"entry", "A stage", "A wait", "A dots", "A bar", "B items", "B bar",
                                           "C stage", "C dots", "C bar", "D stage", "D dots", "D bar",
                                           "E stage", "E dots", "E bar", "D own tile", "C copy wait",
                                           "D copy wait", "E copy wait"};
            print_message("  per-block step sums over %d blocks, pos %d (us): min / median / max (block)\n", nb,
                          pos0 + 2);
            for (int i = 0; i < 20; i++) {
                int arg = 0;
                for (int b = 0; b < nb; b++) {
                    col[b] = bs[(size_t)b * ns + i] / 1e3;
                    if (col[b] > col[arg]) arg = b;
                }
                const double mx = col[arg];
                qsort(col, (size_t)nb, sizeof *col, cmp_double);
                print_message("    %-13s %7.2f %7.2f %7.2f (%d)\n", step[i], col[0], col[nb / 2], mx, arg);
            }
            free(col);
            free(bs);
            /* the hand-offs of layer 1: when the last producer finished and
             * when the consumers had staged (us after the first block's end
             * of A's dots): min / median / max over the blocks */
            extern const int llorch_cuda_pkw_nabs;
            extern int llorch_cuda_pkw_block_abs(unsigned long long *out, int nblk);
            const int na = llorch_cuda_pkw_nabs;
            assert_true(na == 13);
            unsigned long long *ab = malloc((size_t)nb * na * sizeof *ab);
            double *cv = malloc((size_t)nb * sizeof *cv);
            assert_int_equal(llorch_cuda_pkw_block_abs(ab, nb), 0);
            unsigned long long t0 = ~0ull;
            for (int b = 0; b < nb; b++) t0 = ab[(size_t)b * na] < t0 ? ab[(size_t)b * na] : t0;
            static const char *pt[13] = {"A dots end", "attention end", "C staged", "C dots end", "D staged",
                                         "D dots end", "E staged", "E dots end", "next A staged",
                                         "item q/k/v in", "item merge in", "item end", "item keys done"};
            print_message("  layer 1's step ends over %d blocks (us after the first A dots end): min / median / max"
                          " (the item's: over the blocks with an attention item)\n", nb);
            for (int i = 0; i < na; i++) {
                int n = 0;
                for (int b = 0; b < nb; b++)
                    if (ab[(size_t)b * na + i]) cv[n++] = ((double)ab[(size_t)b * na + i] - (double)t0) / 1e3;
                if (!n) continue;
                qsort(cv, (size_t)n, sizeof *cv, cmp_double);
                print_message("    at %-14s %7.2f %7.2f %7.2f (%d)\n", pt[i], cv[0], cv[n / 2], cv[n - 1], n);
            }
            free(cv);
            free(ab);
        } else {
            assert_int_equal(llorch_cuda_pkw_stamps(ts), 0);
        }
        print_message("  timing pos %d: %d layers per graph replay %.1f us (shared-memory weights), %.1f us "
                      "composition\n", pos0 + 2, NL, us[0], us[1]);
        if (!per_block)
            print_message("  per-step sums over the layers (us): entry %.2f | A wait %.2f stage %.2f dots %.2f bar %.2f | "
                      "B %.2f bar %.2f | C wait+stage %.2f dots %.2f bar %.2f | D wait+stage %.2f dots %.2f bar %.2f | "
                      "E wait+stage %.2f dots %.2f bar %.2f\n",
                      ts[0] / 1e3, ts[2] / 1e3, ts[1] / 1e3, ts[3] / 1e3, ts[4] / 1e3, ts[5] / 1e3, ts[6] / 1e3,
                      ts[7] / 1e3, ts[8] / 1e3, ts[9] / 1e3, ts[10] / 1e3, ts[11] / 1e3, ts[12] / 1e3, ts[13] / 1e3,
                      ts[14] / 1e3, ts[15] / 1e3);
        if (!per_block && ts[16])
            print_message("  of D's dots, thread 0's own tile on the tensor cores: %.2f us\n", ts[16] / 1e3);
    }
    /* captured once: one all-layers launch, or NL per-layer launches */
    assert_true(llorch_cuda_persist_multi_launches == m0 + (multi == 1 ? 1 : 0));
    assert_true(llorch_cuda_persist_launches == l0 + (multi ? 1 : NL)); /* every persistent launch counts */
    assert_true(llorch_cuda_pkw_launches == w0 + (multi == 2 ? 1 : 0));
    print_message("decode_layers pos %d head_dim %d: ok (%s)\n", pos0, hd,
                  multi == 2 ? "weights in shared memory, one launch"
                  : multi    ? "one persistent launch"
                             : "a launch per layer");
    for (int l = 0; l < NL; l++) {
        for (int j = 0; j < 7; j++) fw_free(&w[l][j]);
        free(an[l]); free(fn[l]); free(bq[l]); free(bk[l]); free(bv[l]);
        G.ops->free(G.ctx, ang[l]); G.ops->free(G.ctx, fng[l]);
        G.ops->free(G.ctx, bqg[l]); G.ops->free(G.ctx, bkg[l]); G.ops->free(G.ctx, bvg[l]);
    }
    free(kc); free(vc); free(th);
    G.ops->free(G.ctx, kcg); G.ops->free(G.ctx, vcg); G.ops->free(G.ctx, kcg2); G.ops->free(G.ctx, vcg2);
    G.ops->free(G.ctx, t1); G.ops->free(G.ctx, t2); G.ops->free(G.ctx, xg); G.ops->free(G.ctx, xg2);
    G.ops->free(G.ctx, pg);
}

static void test_decode_layers(void **st) {
    (void)st;
    env_save e1, e2;
    env_push(&e1, "LLORCH_CUDA_PERSIST", "1");
    for (int multi = 1; multi >= 0; multi--) {
        env_push(&e2, "LLORCH_CUDA_PERSIST_LAYERS", multi ? "1" : "0");
        layers_case(0, multi, 2000 + 2 * multi, 0);
        layers_case(700, multi, 2001 + 2 * multi, 0);
        env_pop(&e2);
    }
    env_pop(&e1);
    /* the weights-in-shared-memory kernel: 32 warps per block (64
     * registers), then 16 (the default) */
    env_push(&e1, "LLORCH_CUDA_PERSIST", "2");
    env_push(&e2, "LLORCH_CUDA_PKW_WARPS", "32");
    layers_case(0, 2, 2004, 0);
    layers_case(700, 2, 2005, 0);
    env_pop(&e2);
    layers_case(0, 2, 2006, 0);
    layers_case(700, 2, 2007, 0);
    /* head_dim 128 (the 4-values-per-lane attention item), GQA 2, q width != E */
    layers_case(0, 2, 2008, 1);
    layers_case(700, 2, 2009, 1);
    env_pop(&e1);
}

static void test_no_leak(void **st) {
    (void)st;
    assert_int_equal(G.ops->sync(G.ctx), 0);
    assert_int_equal(G.ops->mem_used(G.ctx), 0);
}

/* pulls backend.cu out of the static library (see backend.cu) */
extern const int llorch_cuda_backend_linked;

int main(void) {
    char err[256];
    if (!llorch_cuda_backend_linked) return 1;
    int rc = eng_backend_cuda_new(0, 0, &G, err, sizeof err);
    if (rc == -ENODEV) {
        fprintf(stderr, "test_cuda_ops: skipped: %s\n", err);
        return 77;
    }
    if (rc) {
        fprintf(stderr, "test_cuda_ops: cuda backend: %s\n", err);
        return 1;
    }
    if (eng_backend_cpu_new(2, 0, &C, err, sizeof err)) {
        fprintf(stderr, "cpu backend: %s\n", err);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory),      cmocka_unit_test(test_error_latch), cmocka_unit_test(test_get_rows),
        cmocka_unit_test(test_matmul),      cmocka_unit_test(test_matmul_tall), cmocka_unit_test(test_head), cmocka_unit_test(test_matmul_prefill),      cmocka_unit_test(test_rmsnorm),     cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_rope),        cmocka_unit_test(test_attention),   cmocka_unit_test(test_sample),
        cmocka_unit_test(test_moe_route),   cmocka_unit_test(test_matmul_id),   cmocka_unit_test(test_swiglu_oai_moe_sum),
        cmocka_unit_test(test_attention_ext),
        cmocka_unit_test(test_graph),
        cmocka_unit_test(test_fused_matmul), cmocka_unit_test(test_fused_norm_quant),
        cmocka_unit_test(test_fused_rope_kv),
        cmocka_unit_test(test_attn_rope),
        cmocka_unit_test(test_decode_block),
        cmocka_unit_test(test_decode_layers),
        cmocka_unit_test(test_no_leak),
    };
    /* LLORCH_TEST_SKIP=glob skips tests (racecheck is too slow for test_sample) */
    const char *skip = getenv("LLORCH_TEST_SKIP");
    if (skip && *skip) cmocka_set_skip_filter(skip);
    /* LLORCH_TEST_ONLY=glob runs only the matching tests (a sanitizer pass over one op) */
    const char *only = getenv("LLORCH_TEST_ONLY");
    if (only && *only) cmocka_set_test_filter(only);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    G.ops->destroy(G.ctx);
    C.ops->destroy(C.ctx);
    return failed ? 1 : 0;
}
