// See run.sh: a CPU emulation of sample.cu's many-block sampler, checked against the host sampler.
#include "shim.h"
#include <cstdio>
#include <random>
thread_local dim3e threadIdx;
dim3e blockIdx_g, gridDim, blockDim;
uint64_t g_xb[32][32];
std::vector<emu_fiber> g_fib;
void *g_sched_sp;
int g_cur;
long g_progress;
emu_bar g_bbar, g_wbar[32];
std::function<void()> *g_fn;
asm(R"(
.text
.globl emu_switch
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
)");
static void emu_tramp() {
    (*g_fn)();
    g_fib[g_cur].done = true;
    g_progress++;
    emu_switch(&g_fib[g_cur].sp, g_sched_sp);
    abort();
}
enum { STK = 256 * 1024 };
void emu_run_block(int nt) {
    static std::vector<char *> stacks;
    while ((int)stacks.size() < nt) stacks.push_back((char *)aligned_alloc(64, STK));
    g_fib.assign(nt, emu_fiber{});
    g_bbar = emu_bar{}; g_bbar.n = nt;
    for (int w = 0; w < 32; w++) { g_wbar[w] = emu_bar{}; g_wbar[w].n = 32; }
    for (int t = 0; t < nt; t++) {
        uintptr_t top = ((uintptr_t)(stacks[t] + STK)) & ~(uintptr_t)15;
        void **sp = (void **)top;
        *--sp = 0;                    /* alignment: rsp % 16 == 8 at tramp's entry */
        *--sp = (void *)emu_tramp;    /* ret target */
        for (int r = 0; r < 6; r++) *--sp = 0;
        g_fib[t] = emu_fiber{(void *)sp, stacks[t], false, t};
    }
    int left = nt;
    while (left > 0) {
        long before = g_progress;
        for (int t = 0; t < nt; t++) {
            if (g_fib[t].done) continue;
            g_cur = t;
            threadIdx.x = t;
            emu_switch(&g_sched_sp, g_fib[t].sp);
            if (g_fib[t].done) left--;
        }
        if (left > 0 && g_progress == before) { printf("DEADLOCK in block %u\n", blockIdx_g.x); exit(2); }
    }
}
unsigned long long g_dyn[16384];
#include "kernels.inc"
typedef struct { eng_sampling_params p; const int32_t *history; int n_history; double uniform; } eng_sample_args;

static int g_fallbacks = 0, g_path[8], g_lastm;
struct dev {
    std::vector<float> w;
    samp_ext *x;
    int32_t hist[64];
    int32_t out;
    dev(int n) : w(n) { x = (samp_ext *)calloc(1, sizeof(samp_ext)); }
};
/* cu_sample's many-block sequence; returns the token or -1 for the fallback */
static int emu_sample(dev &d, const float *logits, int n, const eng_sample_args *a) {
    samp_params p;
    p.n = n;
    p.nh = a->n_history < 0 ? 0 : (a->n_history > ENG_REPEAT_LAST_N ? ENG_REPEAT_LAST_N : a->n_history);
    p.temp = a->p.temperature; p.pen = a->p.repeat_penalty; p.top_p = a->p.top_p; p.top_k = a->p.top_k;
    p.log_min_p = a->p.min_p > 0.0f ? logf(a->p.min_p) : -INFINITY;
    p.u = a->uniform;
    if (p.nh > 0 && a->history) memcpy(d.hist, a->history + (a->n_history - p.nh), p.nh * 4); else p.nh = 0;
    const int nb = (n + SP_CH - 1) / SP_CH;
    samp_ext *x = d.x; float *w = d.w.data(); int32_t *dst = &d.out;
    d.out = -12345;
    const int cut = (p.top_k > 0 && p.top_k < n) || p.top_p < 1.0f;
    emu_launch(nb, SP_NT, [&] { k_sp_prep(logits, w, d.hist, p, x, dst); });
    if (cut) {
        for (int L = 0; L < 3; L++) {
            if (x->st.phase == PH_LEVEL && x->st.level == L) g_path[L]++;
            emu_launch(nb, SP_NT, [&] { k_sp_level(w, p, x, L); });
        }
        if (x->st.phase == PH_COMPACT) g_path[3]++;
        emu_launch(nb, SP_NT, [&] { k_sp_compact(w, p, x); });
        g_lastm = x->st.cnt;
        emu_launch(1, SP_FB, [&] { k_sp_finish(p, x, nb, dst); });
    }
    if (x->st.phase == PH_DRAW) g_path[4]++;
    emu_launch(nb, SP_NT, [&] { k_sp_draw(w, p, x, dst); });
    /* invariants: zero between calls */
    if (x->st.ctr || x->st.cnt) { printf("counter not reset ctr=%u cnt=%d\n", x->st.ctr, x->st.cnt); exit(1); }
    for (int b = 0; b < SP_NBIN; b++) if (x->hc[b] || x->hm[b]) { printf("hist not zero\n"); exit(1); }
    if (getenv("EMU_TRACE")) printf("  trace: levels %d phase %d m %d interval %d\n", x->st.level, x->st.phase, g_lastm, x->st.interval);
    if (x->st.phase == PH_FALLBACK) { g_fallbacks++; return -1; }
    if (x->st.phase != PH_DONE) { printf("phase %d at the end\n", x->st.phase); exit(1); }
    return d.out;
}

int main(int argc, char **argv) {
    /* argv: n values */
    struct { float temp, top_p, min_p, pen; int top_k; } ps[] = {
        {1.0f, 1.0f, 0.0f, 1.0f, 0},  {0.8f, 0.9f, 0.0f, 1.1f, 40}, {1.0f, 0.5f, 0.0f, 1.0f, 0},
        {1.5f, 1.0f, 0.05f, 1.0f, 0}, {0.7f, 0.95f, 0.1f, 1.2f, 100}, {1.0f, 1.0f, 0.0f, 1.0f, 1},
        {1.0f, 0.95f, 0.0f, 1.0f, 0}, {0.8f, 0.95f, 0.0f, 1.0f, 40}, {1.0f, 1.0f, 0.0f, 1.0f, 3000},
        {1.0f, 0.9f, 0.0f, 1.0f, 20000}, {1.0f, 1.0f, 0.2f, 1.3f, 0}, {0.5f, 0.99f, 0.02f, 1.0f, 5},
        {2.0f, 0.3f, 0.0f, 1.0f, 0},
    };
    const int np = sizeof ps / sizeof ps[0];
    std::vector<int> nv;
    for (int i = 1; i < argc; i++) nv.push_back(atoi(argv[i]));
    int total = 0, mism = 0;
    std::mt19937 rng(7);
    for (size_t vi = 0; vi < nv.size(); vi++) {
        const int n = nv[vi];
        dev d(n);
        for (int pi = 0; pi < np; pi++) {
            eng_sampling_params P; eng_sampling_params_default(&P);
            P.temperature = ps[pi].temp; P.top_p = ps[pi].top_p; P.min_p = ps[pi].min_p;
            P.repeat_penalty = ps[pi].pen; P.top_k = ps[pi].top_k; P.seed = 1000 + pi;
            eng_sampler *ref = eng_sampler_new(&P, n), *dv = eng_sampler_new(&P, n);
            const int trials = n >= 100000 ? 2 : n > 20000 ? 8 : 16;
            for (int trial = 0; trial < trials; trial++) {
                std::vector<float> l(n);
                std::uniform_real_distribution<float> U(-6.0f, 6.0f);
                std::normal_distribution<float> N(0.0f, 3.0f);
                const int kind = trial % 8;
                for (int i = 0; i < n; i++) l[i] = kind == 1 ? N(rng) : U(rng);
                if (kind == 2) { l[17] = l[n - 1] = 50.0f; }                       /* tied max */
                if (kind == 3) for (int i = 0; i < n; i++) if (i % 3) l[i] = 2.5f;  /* many ties */
                if (kind == 4) for (int i = 0; i < n; i++) if (i % 50) l[i] = -INFINITY; /* few finite */
                if (kind == 5) { for (int i = 0; i < n; i++) l[i] = (i % 7) ? 1.0f : 0.0f; l[5] = NAN; } /* coarse ties */
                if (kind == 6) { for (int i = 0; i < n; i++) l[i] = -INFINITY; l[n / 2] = 3.0f; l[n / 3] = 3.0f; l[7] = 1.0f; }
                if (kind == 7) for (int i = 0; i < n; i++) l[i] = N(rng) * 0.3f + ((i % 997) == 0 ? 8.0f : 0.0f);
                int32_t hist[ENG_REPEAT_LAST_N];
                eng_sample_args a;
                a.p = P;
                a.n_history = eng_sampler_history(dv, hist);
                a.history = hist;
                a.uniform = eng_sampler_next_uniform(dv);
                if (getenv("EMU_TRACE")) printf("case %d kind %d:", pi, kind);
                int tg = emu_sample(d, l.data(), n, &a);
                int tc = eng_sampler_sample(ref, l.data());
                if (tg >= 0 && tg != tc) {
                    mism++;
                    printf("MISMATCH n=%d case %d trial %d kind %d: emu %d host %d\n", n, pi, trial, kind, tg, tc);
                }
                total++;
                eng_sampler_accept(ref, tc);
                eng_sampler_accept(dv, tc);
            }
            eng_sampler_free(ref); eng_sampler_free(dv);
            fflush(stdout);
        }
        printf("n=%d done: %d/%d equal, %d fallbacks; paths L0 %d L1 %d L2 %d compact %d draw %d\n", n, total - mism,
               total, g_fallbacks, g_path[0], g_path[1], g_path[2], g_path[3], g_path[4]);
        fflush(stdout);
    }
    return mism != 0;
}
