// test-libs: llorch_engine_cuda llorch_engine llorch_quant llorch_tok llorch_gguf llorch_core
/* test_cuda_perf — kernel benchmarks of the CUDA backend (not a timed test:
 * it asserts only correctness of what it times, and reports numbers). Runs
 * only with LLORCH_CUDA_BENCH=1 (tools/gpu-run.sh sets it); otherwise, and
 * where no GPU exists, it exits 77 (CTest skip).
 *
 * Method (docs/PERF.md): device-to-device copy bandwidth measured first as the
 * ceiling; each kernel timed with CUDA events over many launches, median of
 * 7 batches; weights rotated over enough copies to exceed the 50 MB L2 so the
 * mat-vec reads HBM as in a real decode step. */
#include <cuda_runtime.h>
#include <errno.h>
#include <math.h>

#include "common/util.h"
#include "engine/backend.h"
#include "engine/engine.h"
#include "engine/quant.h"
#include "testutil.h"

extern const int llorch_cuda_backend_linked;

static eng_backend G;
static uint64_t g_seed = 42;

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmpf(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

#define CK(x)                                                                                          \
    do {                                                                                               \
        cudaError_t e_ = (x);                                                                          \
        if (e_ != cudaSuccess) {                                                                       \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));         \
            exit(1);                                                                                   \
        }                                                                                              \
    } while (0)

static double copy_bw(void) {
    const size_t n = (size_t)1 << 30;
    void *a, *b;
    CK(cudaMalloc(&a, n));
    CK(cudaMalloc(&b, n));
    CK(cudaMemset(a, 1, n));
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    CK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
    float ms[5];
    for (int i = 0; i < 5; i++) {
        cudaEventRecord(e0, 0);
        CK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&ms[i], e0, e1);
    }
    qsort(ms, 5, sizeof ms[0], cmpf);
    cudaFree(a);
    cudaFree(b);
    return 2.0 * n / (ms[2] * 1e-3) / 1e9; /* read + write */
}

/* times op over `copies` weight copies; returns the median µs per call */
typedef struct {
    int type;
    int64_t ne0, ne1;
    int rows;
    const char *what;
    int op; /* 0 matmul; fused ops (backend.h): 1 matmul_add, 2 matmul_swiglu (2 matrices), 3 matmul_n (3 matrices) */
} mm_case;

static void bench_matmul(const mm_case *mc, double hbm_gbs) {
    const size_t nb1 = qt_row_bytes(mc->type, mc->ne0);
    const size_t wbytes = nb1 * (size_t)mc->ne1;
    int copies = (int)(200e6 / (double)wbytes) + 1;
    if (copies > 16) copies = 16;
    uint8_t *wh = malloc(wbytes);
    float *row = malloc((size_t)mc->ne0 * 4);
    for (int64_t r = 0; r < mc->ne1; r++) {
        for (int64_t i = 0; i < mc->ne0; i++) row[i] = tu_randf(&g_seed);
        if (qt_quantize_row(mc->type, row, wh + (size_t)r * nb1, mc->ne0)) {
            printf("  %s: cannot quantize\n", mc->what);
            free(wh);
            free(row);
            return;
        }
    }
    eng_w w[16];
    for (int c = 0; c < copies; c++) {
        void *d;
        if (G.ops->alloc(G.ctx, wbytes, &d)) {
            printf("  %s: OOM\n", mc->what);
            exit(1);
        }
        G.ops->upload(G.ctx, d, wh, wbytes);
        w[c] = (eng_w){d, mc->type, mc->ne0, mc->ne1, 1, nb1, wbytes};
    }
    const int nmat = mc->op == 3 ? 3 : mc->op == 2 ? 2 : 1;
    if (copies < nmat + 1) copies = nmat + 1;
    const size_t xn = (size_t)mc->rows * mc->ne0, yn = (size_t)mc->rows * mc->ne1;
    float *xh = malloc(xn * 4);
    for (size_t i = 0; i < xn; i++) xh[i] = tu_randf(&g_seed);
    float *x, *y;
    G.ops->alloc(G.ctx, xn * 4, (void **)&x);
    G.ops->alloc(G.ctx, 3 * yn * 4, (void **)&y);
    float *tmp = NULL;
    G.ops->alloc(G.ctx, 2 * yn * 4, (void **)&tmp);
    G.ops->upload(G.ctx, x, xh, xn * 4);
    /* prefill cases (rows > 8) run every variant of the quantized prefill
     * matmul in this process: the automatic tile (the default), each forced
     * tile of mm_tc.cu, the previous WMMA kernel (LLORCH_CUDA_MM=1), the
     * fp16-activation variant of mm_xh.cu (LLORCH_CUDA_MM_XH=1: K steps of
     * 32, =2: of 64; conversion kernel included in its time) at its two
     * tiles and with its own tile choice */
    static const char *const var[] = {"",       "default",  "tile L",   "tile X",   "tile M",   "tile S",
                                      "old WMMA", "xh X",   "xh S",     "xh64 X",   "xh64 S",   "xh64 auto",
                                      "xh64 auto noconv"};
    const int nvar = (int)(sizeof var / sizeof var[0]);
    const int quant = qt_info(mc->type)->blck > 1 && mc->rows > 8;
    float *yh = malloc(yn * 4);
    for (int vi = quant ? 1 : 0; vi < (quant ? nvar : 1); vi++) {
        unsetenv("LLORCH_CUDA_MM");
        unsetenv("LLORCH_CUDA_MM_TILE");
        unsetenv("LLORCH_CUDA_MM_XH");
        if (vi >= 2 && vi <= 5) {
            setenv("LLORCH_CUDA_MM_XH", "0", 1); /* mm_tc.cu's own tiles */
            setenv("LLORCH_CUDA_MM_TILE", var[vi] + 5, 1); /* "tile L" -> "L" */
        }
        if (vi == 6) setenv("LLORCH_CUDA_MM", "1", 1);
        unsetenv("LLORCH_CUDA_MM_XH_NOCONV");
        if (vi >= 7) {
            setenv("LLORCH_CUDA_MM_XH", vi >= 9 ? "2" : "1", 1);
            if (vi <= 10) setenv("LLORCH_CUDA_MM_TILE", var[vi] + strlen(var[vi]) - 1, 1); /* "xh X" -> "X" */
        }
        /* the matmul alone: the correctness call below still converts (the
         * scratch then holds this x), the timed calls skip the conversion */
        const int noconv = vi == 12;
        char what[96];
        snprintf(what, sizeof what, "%s%s%s", mc->what, vi ? " " : "", var[vi]);
        /* correctness of what we time: row 0 against the dequantized weights */
        G.ops->matmul(G.ctx, &w[0], x, y, mc->rows);
        if (G.ops->download(G.ctx, yh, y, yn * 4)) {
            printf("  %s: device error\n", what);
            exit(1);
        }
        {
            float *wf = malloc((size_t)mc->ne0 * 4);
            double num = 0, den = 0;
            for (int64_t o = 0; o < mc->ne1; o += 97) {
                qt_dequant_row(mc->type, wh + (size_t)o * nb1, wf, mc->ne0);
                double s = 0;
                for (int64_t i = 0; i < mc->ne0; i++) s += (double)wf[i] * xh[i];
                num += (yh[o] - s) * (yh[o] - s);
                den += s * s;
            }
            free(wf);
            double rel = sqrt(num / den);
            if (!(rel < 3e-2)) {
                printf("  %s: WRONG (rel %.3g vs exact)\n", what, rel);
                exit(1);
            }
        }
        if (noconv) setenv("LLORCH_CUDA_MM_XH_NOCONV", "1", 1);
        cudaEvent_t e0, e1;
        cudaEventCreate(&e0);
        cudaEventCreate(&e1);
        const int per = 50;
        float ms[7];
        /* the backend's stream is private: time with host sync around event pairs
         * recorded on the legacy stream after a backend sync */
        /* the 50 calls are recorded once as a CUDA graph (the backend's
         * record_begin/record_end) and replayed: GPU time without launch gaps,
         * as in a decode step */
        static int key = 1000;
        key++;
        for (int b = 0; b < 8; b++) {
            G.ops->sync(G.ctx);
            uint64_t t0 = util_now_ns();
            if (!G.ops->record_begin(G.ctx, key)) {
                for (int i = 0; i < per; i++) {
                    const eng_w *wi[3] = {&w[i % copies], &w[(i + 1) % copies], &w[(i + 2) % copies]};
                    if (mc->op == 1) G.ops->matmul_add(G.ctx, wi[0], x, y, tmp, mc->rows);
                    else if (mc->op == 2) G.ops->matmul_swiglu(G.ctx, wi[0], wi[1], x, y, tmp, mc->rows);
                    else if (mc->op == 3) {
                        const float *bs[3] = {NULL, NULL, NULL};
                        float *ys[3] = {y, y + yn, y + 2 * yn};
                        G.ops->matmul_n(G.ctx, 3, wi, bs, x, ys, mc->rows);
                    } else G.ops->matmul(G.ctx, wi[0], x, y, mc->rows);
                }
                G.ops->record_end(G.ctx, key);
            }
            if (G.ops->sync(G.ctx)) {
                printf("  %s: device error\n", what);
                exit(1);
            }
            uint64_t t1 = util_now_ns();
            if (b > 0) ms[b - 1] = (float)((t1 - t0) / 1e6);
        }
        qsort(ms, 7, sizeof ms[0], cmpf);
        const double us = ms[3] * 1e3 / per, spread = (ms[6] - ms[0]) * 1e3 / per;
        const double bytes = (double)nmat * ((double)wbytes + yn * 4) + xn * 4;
        const double floor_us = bytes / (hbm_gbs * 1e3);
        const double tflops = 2.0 * mc->ne0 * mc->ne1 * mc->rows / (us * 1e-6) / 1e12;
        printf("  %-44s %9.2f us (spread %.2f)  %7.1f GB/s  floor %.2f us (%.0f%%)  %.2f TFLOP/s\n", what, us, spread,
               bytes / (us * 1e3), floor_us, 100.0 * floor_us / us, tflops);
        fflush(stdout);
    }
    unsetenv("LLORCH_CUDA_MM");
    unsetenv("LLORCH_CUDA_MM_TILE");
    unsetenv("LLORCH_CUDA_MM_XH");
    unsetenv("LLORCH_CUDA_MM_XH_NOCONV");
    for (int c = 0; c < copies; c++) G.ops->free(G.ctx, (void *)w[c].data);
    G.ops->free(G.ctx, x);
    G.ops->free(G.ctx, y);
    G.ops->free(G.ctx, tmp);
    free(wh);
    free(row);
    free(xh);
    free(yh);
}



/* prefill attention at one shape: `rows` queries at positions 0..rows-1 (a
 * pp from an empty context), the tensor-core kernel and then the older tiled
 * kernel (LLORCH_CUDA_ATTN_TILED=1) in the same process, each as a graph of
 * 50 calls like bench_matmul. The two outputs must agree (relative L2 < 1e-2)
 * or the bench fails. The inputs stay in L2 across the 50 calls (Qwen ~4 MB,
 * Llama ~25 MB), so the HBM floor printed is what a cold call would need. */
static void bench_attention(int nh, int nkv, int hd, int rows, const char *what, double hbm_gbs) {
    const int kv_dim = nkv * hd, ldq = nh * hd;
    const size_t cn = (size_t)rows * kv_dim, qn = (size_t)rows * ldq;
    uint16_t *kh = malloc(cn * 2), *vh = malloc(cn * 2);
    for (size_t i = 0; i < cn; i++) {
        kh[i] = qt_f32_to_f16(tu_randf(&g_seed) * 2.0f);
        vh[i] = qt_f32_to_f16(tu_randf(&g_seed));
    }
    float *qh = malloc(qn * 4);
    for (size_t i = 0; i < qn; i++) qh[i] = tu_randf(&g_seed) * 2.0f;
    int32_t *ph = malloc((size_t)rows * 4);
    for (int i = 0; i < rows; i++) ph[i] = i;
    void *k, *v, *q, *p, *o;
    if (G.ops->alloc(G.ctx, cn * 2, &k) || G.ops->alloc(G.ctx, cn * 2, &v) || G.ops->alloc(G.ctx, qn * 4, &q) ||
        G.ops->alloc(G.ctx, (size_t)rows * 4, &p) || G.ops->alloc(G.ctx, qn * 4, &o)) {
        printf("  %s: OOM\n", what);
        exit(1);
    }
    G.ops->upload(G.ctx, k, kh, cn * 2);
    G.ops->upload(G.ctx, v, vh, cn * 2);
    G.ops->upload(G.ctx, q, qh, qn * 4);
    G.ops->upload(G.ctx, p, ph, (size_t)rows * 4);
    const float scale = 1.0f / sqrtf((float)hd);
    float *out[2] = {malloc(qn * 4), malloc(qn * 4)};
    double us[2], spread[2];
    static int key = 2000;
    for (int var = 0; var < 2; var++) {
        if (var == 1) setenv("LLORCH_CUDA_ATTN_TILED", "1", 1);
        /* one plain call first: the output to compare, and no first-call
         * setup (shared-memory opt-in) inside the capture */
        G.ops->attention(G.ctx, q, ldq, k, v, p, rows, nh, nkv, hd, scale, o);
        if (G.ops->download(G.ctx, out[var], o, qn * 4)) {
            printf("  %s: device error\n", what);
            exit(1);
        }
        const int per = 50;
        float ms[7];
        key++;
        for (int b = 0; b < 8; b++) {
            G.ops->sync(G.ctx);
            uint64_t t0 = util_now_ns();
            if (!G.ops->record_begin(G.ctx, key)) {
                for (int i = 0; i < per; i++) G.ops->attention(G.ctx, q, ldq, k, v, p, rows, nh, nkv, hd, scale, o);
                G.ops->record_end(G.ctx, key);
            }
            if (G.ops->sync(G.ctx)) {
                printf("  %s: device error\n", what);
                exit(1);
            }
            uint64_t t1 = util_now_ns();
            if (b > 0) ms[b - 1] = (float)((t1 - t0) / 1e6);
        }
        unsetenv("LLORCH_CUDA_ATTN_TILED");
        qsort(ms, 7, sizeof ms[0], cmpf);
        us[var] = ms[3] * 1e3 / per;
        spread[var] = (ms[6] - ms[0]) * 1e3 / per;
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < qn; i++) {
        if (!isfinite(out[0][i])) {
            printf("  %s: WRONG (non-finite at %zu)\n", what, i);
            exit(1);
        }
        num += ((double)out[0][i] - out[1][i]) * ((double)out[0][i] - out[1][i]);
        den += (double)out[1][i] * out[1][i];
    }
    const double rel = sqrt(num / den);
    if (!(rel < 1e-2)) {
        printf("  %s: WRONG (mma vs tiled rel %.3g)\n", what, rel);
        exit(1);
    }
    /* causal: row i sees i+1 keys; 2 flops per multiply-add in q.k and p.v */
    const double flops = 4.0 * hd * nh * ((double)rows * (rows + 1) / 2);
    const double bytes = 2.0 * cn * 2 + 2.0 * qn * 4; /* K, V once; q in, out */
    printf("  %-44s mma %8.2f us (spread %.2f)  tiled %8.2f us (spread %.2f)  %.2fx  mma %.1f TFLOP/s  "
           "floor %.2f us HBM, %.2f us at 989 TFLOP/s  (mma vs tiled rel %.2g)\n",
           what, us[0], spread[0], us[1], spread[1], us[1] / us[0], flops / (us[0] * 1e-6) / 1e12,
           bytes / (hbm_gbs * 1e3), flops / 989e12 * 1e6, rel);
    fflush(stdout);
    G.ops->free(G.ctx, k); G.ops->free(G.ctx, v); G.ops->free(G.ctx, q); G.ops->free(G.ctx, p);
    G.ops->free(G.ctx, o);
    free(kh); free(vh); free(qh); free(ph); free(out[0]); free(out[1]);
}


/* llama-bench style on a GGUF model through the engine: load rate, pp512
 * (one 512-token eval from an empty context), tg128 (128 greedy decode
 * steps, device sampling + graph replay, after a 1-token prompt). */
static void bench_model(const char *path, double hbm_gbs) {
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.backend = ENG_BACKEND_CUDA;
    o.n_ctx = 1024;
    char err[512] = "";
    eng_model *m = NULL;
    uint64_t t0 = util_now_ns();
    if (eng_model_load(path, &o, &m, err, sizeof err)) {
        printf("model %s: load failed: %s\n", path, err);
        return;
    }
    const double load_s = (util_now_ns() - t0) / 1e9;
    const eng_model_info *in = eng_model_get_info(m);
    printf("model %s: %s %s, %.1f MiB weights, load %.2f s = %.2f GB/s\n", path, in->name, in->quant_kind,
           in->weight_bytes / 1048576.0, load_s, in->weight_bytes / load_s / 1e9);
    eng_session *s = NULL;
    if (eng_session_new(m, &s, err, sizeof err)) {
        printf("  session: %s\n", err);
        eng_model_free(m);
        return;
    }
    int32_t toks[512];
    for (int i = 0; i < 512; i++) toks[i] = (int32_t)(tu_rng(&g_seed) % (uint64_t)in->n_vocab);
    double pp[6];
    for (int r = 0; r < 6; r++) {
        eng_session_reset(s);
        uint64_t a = util_now_ns();
        if (eng_eval(s, toks, 512, ENG_LOGITS_LAST, err, sizeof err)) {
            printf("  pp512: %s\n", err);
            goto out;
        }
        if (!eng_logits(s, -1)) { printf("  pp512: no logits\n"); goto out; }
        pp[r] = 512.0 / ((util_now_ns() - a) / 1e9);
    }
    qsort(pp + 1, 5, sizeof pp[0], cmpd);
    /* LLORCH_BENCH_MM_XH="1 2": pp512 again with each LLORCH_CUDA_MM_XH value
     * (mm_xh.cu), same process and model, right after the default; prefill
     * is not graph-recorded, so the variable takes effect per call */
    const char *xhl = getenv("LLORCH_BENCH_MM_XH");
    for (const char *v = xhl; v && *v; v++) {
        if (*v != '1' && *v != '2') continue;
        const char val[2] = {*v, 0};
        setenv("LLORCH_CUDA_MM_XH", val, 1);
        double px[6];
        for (int r = 0; r < 6; r++) {
            eng_session_reset(s);
            uint64_t a = util_now_ns();
            if (eng_eval(s, toks, 512, ENG_LOGITS_LAST, err, sizeof err)) {
                printf("  pp512 LLORCH_CUDA_MM_XH=%s: %s\n", val, err);
                unsetenv("LLORCH_CUDA_MM_XH");
                goto out;
            }
            if (!eng_logits(s, -1)) { printf("  pp512 LLORCH_CUDA_MM_XH=%s: no logits\n", val); unsetenv("LLORCH_CUDA_MM_XH"); goto out; }
            px[r] = 512.0 / ((util_now_ns() - a) / 1e9);
        }
        qsort(px + 1, 5, sizeof px[0], cmpd);
        printf("  pp512 LLORCH_CUDA_MM_XH=%s: %.0f tok/s (min %.0f max %.0f, 5 runs; default %.0f)\n", val, px[3], px[1],
               px[5], pp[3]);
        unsetenv("LLORCH_CUDA_MM_XH");
    }
    eng_sampling_params sp;
    eng_sampling_params_default(&sp);
    sp.temperature = 0.0f;
    double tg[4];
    for (int r = 0; r < 4; r++) {
        eng_sampler *smp = eng_sampler_new(&sp, in->n_vocab);
        eng_session_reset(s);
        if (eng_eval(s, toks, 1, ENG_LOGITS_LAST, err, sizeof err)) { printf("  tg: %s\n", err); goto out; }
        uint64_t a = util_now_ns();
        for (int i = 0; i < 128; i++) {
            int32_t t;
            if (eng_sample(s, smp, &t) || eng_eval(s, &t, 1, ENG_LOGITS_LAST, err, sizeof err)) {
                printf("  tg128: failed %s\n", err);
                eng_sampler_free(smp);
                goto out;
            }
        }
        tg[r] = 128.0 / ((util_now_ns() - a) / 1e9);
        eng_sampler_free(smp);
    }
    qsort(tg + 1, 3, sizeof tg[0], cmpd);
    printf("  pp512 %.0f tok/s (min %.0f max %.0f, 5 runs)   tg128 %.1f tok/s (min %.1f max %.1f, 3 runs)\n", pp[3],
           pp[1], pp[5], tg[2], tg[1], tg[3]);
    printf("  decode floor: %.1f MiB weights per token / %.0f GB/s = %.0f tok/s upper bound\n",
           in->weight_bytes / 1048576.0, hbm_gbs, hbm_gbs * 1e9 / in->weight_bytes);
out:
    eng_session_free(s);
    eng_model_free(m);
}

int main(void) {
    if (!llorch_cuda_backend_linked) return 1;
    const char *b = getenv("LLORCH_CUDA_BENCH");
    if (!b || strcmp(b, "1")) {
        fprintf(stderr, "test_cuda_perf: benchmark only (set LLORCH_CUDA_BENCH=1)\n");
        return 77;
    }
    char err[256];
    int rc = eng_backend_cuda_new(0, 0, &G, err, sizeof err);
    if (rc == -ENODEV) {
        fprintf(stderr, "test_cuda_perf: skipped: %s\n", err);
        return 77;
    }
    if (rc) return 1;
    int sm = 0, rt = 0;
    char name[128];
    uint64_t tot = 0, fr = 0;
    G.ops->device_info(G.ctx, &sm, &rt, name, sizeof name, &tot, &fr);
    const double bw = copy_bw();
    printf("device %s (sm %d, runtime %d); D2D copy %.0f GB/s (read+write)\n", name, sm, rt, bw);
    if (getenv("LLORCH_BENCH_SKIP_KERNELS")) goto models;
    /* LLORCH_BENCH_KERNELS=q40dec: only the one-row Q4_0 cases (Llama-2 decode), for same-run A/B of the bodies */
    const int q40dec = getenv("LLORCH_BENCH_KERNELS") && !strcmp(getenv("LLORCH_BENCH_KERNELS"), "q40dec");
    /* LLORCH_BENCH_KERNELS=q40fused: only the fused one-row Q4_0 cases (the A/B of LLORCH_CUDA_FUSED_Q40*) */
    const int q40fused = getenv("LLORCH_BENCH_KERNELS") && !strcmp(getenv("LLORCH_BENCH_KERNELS"), "q40fused");
    /* LLORCH_BENCH_KERNELS=tall: only the Qwen2.5 output projection (Q8_0
     * 896x151936, one row) through v1 and each LLORCH_CUDA_MMV_TALL variant
     * (mmv_tall.cu =1, mmv_tall_reg.cu =2 shfl / =3 dup), then v1, =2, =3
     * again (drift check); a graph of 50 calls per variant, so the switch
     * (read per call at capture) takes effect per variant */
    const int tall = getenv("LLORCH_BENCH_KERNELS") && !strcmp(getenv("LLORCH_BENCH_KERNELS"), "tall");
    if (tall) {
        static const char *const tv[] = {"v1", "mmv_tall =1", "tall_reg shfl =2", "tall_reg dup =3"};
        static const int order[] = {0, 1, 2, 3, 0, 2, 3};
        printf("tall one-row mat-vec (median of 7 graph replays of 50 calls; floor = bytes / D2D copy rate):\n");
        for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
            const int v = order[i];
            const char val[2] = {(char)('0' + v), 0};
            char what[96];
            snprintf(what, sizeof what, "Q8_0 896x151936 (qwen output) r=1 %s", tv[v]);
            setenv("LLORCH_CUDA_MMV_TALL", val, 1);
            const mm_case tc = {QT_Q8_0, 896, 151936, 1, what, 0};
            bench_matmul(&tc, bw);
        }
        unsetenv("LLORCH_CUDA_MMV_TALL");
        goto models;
    }
    /* LLORCH_BENCH_KERNELS=pwdot: pkw.cu's dot phases alone (pw_dot_bench.cu):
     * one block per SM with one block's share of a Qwen2.5-0.5B layer in
     * shared memory, 200 reps; the median block's time per rep. The
     * tensor-core gate/up (mode 1) is checked against pw_dotf's values. */
    if (getenv("LLORCH_BENCH_KERNELS") && !strcmp(getenv("LLORCH_BENCH_KERNELS"), "pwdot")) {
        extern int llorch_cuda_pwdot_bench(int mode, int two, int type, int nr, int K, int wcap, int reps,
                                           double *ns_med, float *out);
        static const struct {
            int mode, two, type, nr, K, wcap;
            const char *what;
        } pc[] = {
            {0, 0, QT_Q4_K, 7, 4864, 0, "E down Q4_K 7 x 4864, pw_dotf"},
            {9, 0, QT_Q4_K, 7, 4864, 0, "E down Q4_K 7 x 4864, int8 (pw_dot8)"},
            {0, 0, QT_Q6_K, 7, 4864, 0, "E down Q6_K 7 x 4864, pw_dotf"},
            {9, 0, QT_Q6_K, 7, 4864, 0, "E down Q6_K 7 x 4864, int8 (pw_dot8)"},
            {9, 0, QT_Q4_K, 21, 4864, 0, "E down Q4_K 21 x 4864, int8 (pw_dot8)"},
            {9, 1, QT_Q5_0, 37, 896, 0, "D gate/up Q5_0 37 pairs x 896, int8 (pw_dot8)"},
            {9, 0, QT_Q5_0, 7, 896, 0, "C o Q5_0 7 x 896, int8 (pw_dot8)"},
            {0, 0, QT_Q5_0, 7, 896, 0, "C o Q5_0 7 x 896, pw_dotf"},
            {9, 0, QT_Q8_0, 9, 896, 0, "A Q8_0 9 x 896, int8 (pw_dot8)"},
            {0, 0, QT_Q8_0, 9, 896, 0, "A Q8_0 9 x 896, pw_dotf"},
            {0, 1, QT_Q5_0, 37, 896, 0, "D gate/up Q5_0 37 pairs x 896, pw_dotf"},
            {1, 1, QT_Q5_0, 37, 896, 0, "D gate/up Q5_0 37 pairs x 896, mma"},
            {7, 1, QT_Q5_0, 37, 896, 0, "D gate/up Q5_0 37 pairs x 896, int8 mma"},
            {8, 1, QT_Q5_0, 37, 896, 0, "D gate/up Q5_0 37 pairs x 896, mma, 40 KB bulk copy landing"},
            {1, 1, QT_Q5_0, 37, 896, 0, "D gate/up Q5_0 37 pairs x 896, mma (no copy)"},
            {8, 1, QT_Q5_0, 37, 896, 0, "D gate/up Q5_0 37 pairs x 896, mma, 40 KB bulk copy landing"},
            {7, 1, QT_Q5_0, 128, 896, 0, "D gate/up Q5_0 128 pairs x 896, int8 mma"},
            {0, 1, QT_Q5_0, 16, 896, 0, "D gate/up Q5_0 16 pairs (1 round), pw_dotf"},
            {0, 1, QT_Q5_0, 32, 896, 0, "D gate/up Q5_0 32 pairs (2 rounds), pw_dotf"},
            {0, 1, QT_Q5_0, 48, 896, 0, "D gate/up Q5_0 48 pairs (3 rounds), pw_dotf"},
            {1, 1, QT_Q5_0, 16, 896, 0, "D gate/up Q5_0 16 pairs, mma"},
            {1, 1, QT_Q5_0, 48, 896, 0, "D gate/up Q5_0 48 pairs, mma"},
            {1, 1, QT_Q5_0, 128, 896, 0, "D gate/up Q5_0 128 pairs, mma"},
            {0, 1, QT_Q5_0, 128, 896, 0, "D gate/up Q5_0 128 pairs, pw_dotf"},
            {0, 0, QT_Q4_K, 7, 4864, 0, "E down Q4_K 7 x 4864"},
            {0, 0, QT_Q6_K, 7, 4864, 0, "E down Q6_K 7 x 4864"},
            {0, 0, QT_Q4_K, 1, 4864, 0, "E down Q4_K 1 x 4864"},
            {2, 0, QT_Q4_K, 7, 4864, 0, "E down Q4_K 7 x 4864, mma"},
            {2, 0, QT_Q6_K, 7, 4864, 0, "E down Q6_K 7 x 4864, mma"},
            {2, 0, QT_Q5_0, 7, 896, 0, "C o Q5_0 7 x 896, mma"},
            {2, 0, QT_Q8_0, 9, 896, 0, "A Q8_0 9 x 896, mma"},
            {2, 0, QT_Q5_0, 9, 896, 0, "A Q5_0 9 x 896, mma"},
            {0, 0, QT_Q5_0, 9, 896, 0, "A Q5_0 9 x 896"},
            {2, 0, QT_Q4_K, 21, 4864, 0, "E down Q4_K 21 x 4864, mma (3 tiles)"},
            {0, 0, QT_Q4_K, 21, 4864, 0, "E down Q4_K 21 x 4864"},
            {2, 0, QT_Q5_0, 300, 896, 0, "Q5_0 300 x 896, mma (rounds)"},
            {2, 0, QT_Q6_K, 1, 4864, 0, "E down Q6_K 1 x 4864, mma"},
            {4, 0, QT_Q5_0, 1, 896, 0, "mma alone: 1 per warp"},
            {4, 0, QT_Q5_0, 2, 896, 0, "mma alone: 2 dependent per warp"},
            {4, 0, QT_Q5_0, 8, 896, 0, "mma alone: 8 dependent per warp"},
            {4, 0, QT_Q5_0, 32, 896, 0, "mma alone: 32 dependent per warp"},
            {4, 0, QT_Q5_0, 128, 896, 0, "mma alone: 128 dependent per warp"},
            {6, 1, QT_Q5_0, 37, 896, 0, "D gate/up 37 pairs mma after a 2 us spin"},
            {5, 1, QT_Q5_0, 37, 896, 0, "D gate/up 37 pairs mma after a 2 us spin, warmed"},
            {6, 1, QT_Q5_0, 37, 896, 0, "D gate/up 37 pairs mma after a 2 us spin (again)"},
            {5, 1, QT_Q5_0, 37, 896, 0, "D gate/up 37 pairs mma after a 2 us spin, warmed (again)"},
            {2, 0, QT_Q4_K, 7, 4864, 8, "E down Q4_K 7 x 4864, mma, 8 warps (9.5 groups each)"},
            {2, 0, QT_Q4_K, 7, 4864, 4, "E down Q4_K 7 x 4864, mma, 4 warps (19)"},
            {2, 0, QT_Q4_K, 7, 4864, 2, "E down Q4_K 7 x 4864, mma, 2 warps (38)"},
            {2, 0, QT_Q4_K, 7, 4864, 1, "E down Q4_K 7 x 4864, mma, 1 warp (76)"},
            {2, 0, QT_Q5_0, 7, 896, 1, "C o Q5_0 7 x 896, mma, 1 warp (14 groups each)"},
            {2, 0, QT_Q5_0, 7, 896, 2, "C o Q5_0 7 x 896, mma, 2 warps (7)"},
            {2, 0, QT_Q5_0, 7, 896, 4, "C o Q5_0 7 x 896, mma, 4 warps (3.5)"},
            {3, 0, QT_Q4_K, 7, 4864, 0, "E down Q4_K 7 x 4864, mma inlined"},
            {3, 0, QT_Q6_K, 7, 4864, 0, "E down Q6_K 7 x 4864, mma inlined"},
            {3, 0, QT_Q5_0, 7, 896, 0, "C o Q5_0 7 x 896, mma inlined"},
            {3, 0, QT_Q6_K, 1, 4864, 0, "E down Q6_K 1 x 4864, mma inlined"},
            {0, 0, QT_Q5_0, 7, 896, 0, "C o Q5_0 7 x 896"},
            {0, 0, QT_Q5_0, 9, 896, 0, "A qkv Q5_0 9 x 896"},
            {0, 0, QT_Q8_0, 9, 896, 0, "A qkv Q8_0 9 x 896"},
            {0, 1, QT_Q5_0, 37, 896, 0, "D gate/up Q5_0 37 pairs x 896, pw_dotf (again)"},
            {1, 1, QT_Q5_0, 37, 896, 0, "D gate/up Q5_0 37 pairs x 896, mma (again)"},
        };
        static float ref[2 * 512], got[2 * 512];
        printf("pkw dot phases alone (pw_dot_bench.cu; median block, ns per phase):\n");
        /* LLORCH_PWDOT_CASE=i: only case i, without its reference run (one
         * launch, for ncu: tests/gpu/ncu-pwdot.sh) */
        const char *only = getenv("LLORCH_PWDOT_CASE");
        for (size_t i = 0; i < sizeof pc / sizeof pc[0]; i++) {
            if (only && (size_t)atoi(only) != i) continue;
            double ns = 0.0;
            if (llorch_cuda_pwdot_bench(pc[i].mode, pc[i].two, pc[i].type, pc[i].nr, pc[i].K, pc[i].wcap, 200, &ns,
                                        pc[i].mode ? got : ref)) {
                printf("  %-58s FAILED (CUDA error)\n", pc[i].what);
                return 1;
            }
            if (pc[i].mode == 4 || only) {
                printf("  %-58s %8.1f ns\n", pc[i].what, ns);
            } else if (pc[i].mode) { /* against pw_dotf on the same rows: run it for this nr */
                double ns0;
                if (llorch_cuda_pwdot_bench(0, pc[i].two, pc[i].type, pc[i].nr, pc[i].K, 0, 1, &ns0, ref)) return 1;
                double mx = 0.0, err = 0.0;
                for (int k = 0; k < 2 * pc[i].nr; k++) {
                    if (!pc[i].two && (k & 1)) continue; /* single rows: (value, 0) */
                    mx = fabs(ref[k]) > mx ? fabs(ref[k]) : mx;
                    const double e = fabs((double)got[k] - ref[k]);
                    err = e > err || e != e ? e : err;
                }
                printf("  %-58s %8.1f ns  (max |diff| %.3g of max |value| %.3g)\n", pc[i].what, ns, err, mx);
                /* fp16 activations: within 2e-3 of the largest value; the
                 * int8 paths (modes 7, 9) quantize x per 32 like Q8_0: 2e-2 */
                if (!(err <= (pc[i].mode == 7 || pc[i].mode == 9 ? 2e-2 : 2e-3) * mx)) {
                    printf("  mma DIFFERS from pw_dotf\n");
                    return 1;
                }
            } else {
                printf("  %-58s %8.1f ns\n", pc[i].what, ns);
            }
        }
        goto models;
    }
    if (q40dec || q40fused) goto kernels;
    printf("prefill attention, pp512 from an empty context (median of 7 graph replays of 50 calls):\n");
    bench_attention(14, 2, 64, 512, "attention qwen2.5-0.5b 14/2 hd64 r=512", bw);
    bench_attention(32, 32, 128, 512, "attention llama-2-7b 32/32 hd128 r=512", bw);
    /* LLORCH_BENCH_KERNELS=attn: the attention cases only */
    if (getenv("LLORCH_BENCH_KERNELS") && !strcmp(getenv("LLORCH_BENCH_KERNELS"), "attn")) goto models;
kernels:;
    const mm_case cases[] = {
        /* Llama-2-7B decode shapes */
        {QT_Q4_0, 4096, 11008, 1, "Q4_0 4096x11008 (ffn up/gate) r=1", 0},
        {QT_Q4_0, 11008, 4096, 1, "Q4_0 11008x4096 (ffn down) r=1", 0},
        {QT_Q4_0, 4096, 4096, 1, "Q4_0 4096x4096 (attn) r=1", 0},
        {QT_Q4_0, 4096, 32000, 1, "Q4_0 4096x32000 (output) r=1", 0},
        {QT_Q4_K, 4096, 11008, 1, "Q4_K 4096x11008 r=1", 0},
        {QT_Q6_K, 4096, 11008, 1, "Q6_K 4096x11008 r=1", 0},
        {QT_Q8_0, 4096, 11008, 1, "Q8_0 4096x11008 r=1", 0},
        {QT_F16, 4096, 11008, 1, "F16 4096x11008 r=1", 0},
        /* Qwen2.5-0.5B Q4_K_M decode shapes */
        {QT_Q5_0, 896, 4864, 1, "Q5_0 896x4864 (qwen ffn up) r=1", 0},
        {QT_Q4_K, 4864, 896, 1, "Q4_K 4864x896 (qwen ffn down) r=1", 0},
        {QT_Q6_K, 4864, 896, 1, "Q6_K 4864x896 (qwen ffn down) r=1", 0},
        {QT_Q5_0, 896, 896, 1, "Q5_0 896x896 (qwen attn q/o) r=1", 0},
        {QT_Q8_0, 896, 151936, 1, "Q8_0 896x151936 (qwen output) r=1", 0},
        {QT_Q6_K, 4864, 896, 4, "Q6_K 4864x896 r=4", 0},
        /* fused decode ops (one launch each; compare with the plain rows above x 2-3) */
        {QT_Q4_0, 4096, 4096, 1, "fused matmul_n 3x Q4_0 4096x4096 (q/k/v)", 3},
        {QT_Q4_0, 4096, 11008, 1, "fused swiglu 2x Q4_0 4096x11008 (gate/up)", 2},
        {QT_Q4_0, 11008, 4096, 1, "fused add Q4_0 11008x4096 (down)", 1},
        {QT_Q4_0, 4096, 4096, 1, "fused add Q4_0 4096x4096 (o)", 1},
        {QT_Q5_0, 896, 896, 1, "fused matmul_n 3x Q5_0 896x896", 3},
        {QT_Q5_0, 896, 4864, 1, "fused swiglu 2x Q5_0 896x4864 (qwen)", 2},
        {QT_Q4_K, 4864, 896, 1, "fused add Q4_K 4864x896 (qwen down)", 1},
        {QT_Q6_K, 4864, 896, 1, "fused add Q6_K 4864x896 (qwen down)", 1},
        /* prefill */
        {QT_Q4_0, 4096, 4096, 512, "Q4_0 4096x4096 r=512 (pp)", 0},
        {QT_Q4_0, 4096, 11008, 512, "Q4_0 4096x11008 r=512 (pp)", 0},
        {QT_Q4_0, 11008, 4096, 512, "Q4_0 11008x4096 r=512 (pp)", 0},
        {QT_Q5_0, 896, 896, 512, "Q5_0 896x896 r=512 (qwen pp)", 0},
        {QT_Q5_0, 896, 128, 512, "Q5_0 896x128 r=512 (qwen pp k/v)", 0},
        {QT_Q5_0, 896, 4864, 512, "Q5_0 896x4864 r=512 (qwen pp)", 0},
        {QT_Q4_K, 4864, 896, 512, "Q4_K 4864x896 r=512 (qwen pp)", 0},
        {QT_Q6_K, 4864, 896, 512, "Q6_K 4864x896 r=512 (qwen pp)", 0},
        {QT_Q8_0, 896, 151936, 512, "Q8_0 896x151936 r=512 (qwen LOGITS_ALL)", 0},
        {QT_F32, 4096, 4096, 512, "F32 4096x4096 r=512 (pp)", 0},
    };
    printf("matmul (median of 7 graph replays of 50 calls; host-timed around sync, so ~10 us of launch+sync per 50 calls included):\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if ((!q40dec && !q40fused) || (cases[i].type == QT_Q4_0 && cases[i].rows == 1 && (!q40fused || cases[i].op)))
            bench_matmul(&cases[i], bw / 1e0);
models:
    G.ops->destroy(G.ctx);
    const char *models = getenv("LLORCH_BENCH_MODELS");
    if (models) {
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", models);
        for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) bench_model(tok, bw);
    }
    return 0;
}
