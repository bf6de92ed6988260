/* sampler — the host reference of the SPEC §3.4 sampling pipeline.
 *
 * Order (llama.cpp's sampler chain, so outputs can be diffed):
 *   1. repetition penalty: every distinct token among the last 64 accepted
 *      (prompt + output) has its logit divided by the penalty when > 0 and
 *      multiplied by it when <= 0 (applied once per distinct token);
 *   2. temperature: t <= 0 → argmax of the penalized logits (lowest id on
 *      ties) and stop; else logits /= t;
 *   3. top-k (k <= 0 or k >= vocab: off);
 *   4. top-p: softmax over the survivors, smallest prefix of the sorted
 *      distribution whose mass >= p (always >= 1 token; p >= 1: off);
 *   5. min-p: keep logit >= max_logit + log(min_p) (min_p <= 0: off);
 *   6. softmax over the survivors and one draw.
 *
 * "Sorted" always means the total order (logit descending, id ascending), so
 * ties are resolved the same way on every device. Each filter keeps a prefix
 * of that order, so the surviving set is represented by its last member, the
 * cut (cut_w, cut_id): token i survives iff its logit is finite and
 * (w[i] > cut_w || (w[i] == cut_w && i <= cut_id)). -inf and NaN logits never
 * survive (unless every logit is, then token 0... see pick_argmax).
 *
 * The draw: Z = sum over survivors of exp(w - max) in ascending id order
 * (double); target = u * Z; the token is the first survivor, in ascending id
 * order, where the running sum exceeds target (the last survivor if rounding
 * leaves none).
 *
 * PRNG: xoshiro256** (Blackman & Vigna, 2018), its 256-bit state seeded from
 * the 64-bit seed by four successive splitmix64 outputs. A uniform in [0, 1)
 * is (next() >> 11) * 2^-53 (the top 53 bits). Every eng_sampler_sample call
 * consumes exactly one uniform, greedy included, so a device sampler that
 * takes its uniform from eng_sampler_next_uniform stays in lockstep.
 *
 * Memory: the work arrays for n_vocab are allocated in eng_sampler_new;
 * sampling allocates nothing.
 */
#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float w;
    int32_t id;
} cand_t;

struct eng_sampler {
    eng_sampling_params p;
    int n_vocab;
    uint64_t rng[4];               /* xoshiro256** state */
    int32_t hist[ENG_REPEAT_LAST_N]; /* ring of accepted tokens */
    int hist_n, hist_head;         /* count (<= 64), next write slot */
    float *w;                      /* [n_vocab] working logits */
    cand_t *cand;                  /* [n_vocab] candidates (heap / sorted prefix) */
};

void eng_sampling_params_default(eng_sampling_params *p) {
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    p->top_k = 0;
    p->min_p = 0.0f;
    p->repeat_penalty = 1.0f;
    p->seed = 0;
}

/* ---- PRNG ------------------------------------------------------------------ */
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4]) {
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double eng_sampler_next_uniform(eng_sampler *s) {
    return (double)(xoshiro_next(s->rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- lifetime ------------------------------------------------------------------ */
eng_sampler *eng_sampler_new(const eng_sampling_params *p, int n_vocab) {
    if (n_vocab <= 0) return NULL;
    eng_sampler *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (p) s->p = *p;
    else eng_sampling_params_default(&s->p);
    s->n_vocab = n_vocab;
    s->w = malloc((size_t)n_vocab * sizeof *s->w);
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    if (!s->w || !s->cand) {
        eng_sampler_free(s);
        return NULL;
    }
    uint64_t sm = s->p.seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&sm);
    return s;
}

void eng_sampler_free(eng_sampler *s) {
    if (!s) return;
    free(s->w);
    free(s->cand);
    free(s);
}

void eng_sampler_accept(eng_sampler *s, int32_t tok) {
    s->hist[s->hist_head] = tok;
    s->hist_head = (s->hist_head + 1) % ENG_REPEAT_LAST_N;
    if (s->hist_n < ENG_REPEAT_LAST_N) s->hist_n++;
}

const eng_sampling_params *eng_sampler_params(const eng_sampler *s) { return &s->p; }

int eng_sampler_history(const eng_sampler *s, int32_t *out) {
    int start = (s->hist_head - s->hist_n + ENG_REPEAT_LAST_N) % ENG_REPEAT_LAST_N;
    for (int i = 0; i < s->hist_n; i++) out[i] = s->hist[(start + i) % ENG_REPEAT_LAST_N];
    return s->hist_n;
}

/* ---- the pipeline ---------------------------------------------------------------- */
/* a precedes b in the total order (logit desc, id asc) */
static inline int better(float wa, int32_t ia, float wb, int32_t ib) {
    return wa > wb || (wa == wb && ia < ib);
}

static int cand_cmp(const void *a, const void *b) {
    const cand_t *x = a, *y = b;
    if (better(x->w, x->id, y->w, y->id)) return -1;
    if (better(y->w, y->id, x->w, x->id)) return 1;
    return 0;
}

typedef struct {
    float w;
    int32_t id;
} cut_t;

static inline int survives(const float *w, int32_t i, cut_t c) {
    float v = w[i];
    if (!(v > -INFINITY)) return 0; /* -inf and NaN */
    return v > c.w || (v == c.w && i <= c.id);
}

/* the shorter of two prefixes of the total order */
static cut_t cut_min(cut_t a, cut_t b) {
    if (a.w != b.w) return a.w > b.w ? a : b;
    return a.id < b.id ? a : b;
}

/* min-heap on the total order: root = the worst kept candidate */
static void heap_down(cand_t *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && better(h[m].w, h[m].id, h[l].w, h[l].id)) m = l;
        if (r < n && better(h[m].w, h[m].id, h[r].w, h[r].id)) m = r;
        if (m == i) return;
        cand_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_up(cand_t *h, int i) {
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!better(h[p].w, h[p].id, h[i].w, h[i].id)) return;
        cand_t t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* argmax, lowest id on ties; NaN ignored; 0 when nothing is comparable */
static int32_t pick_argmax(const float *w, int n) {
    int32_t best = -1;
    for (int32_t i = 0; i < n; i++) {
        if (w[i] != w[i]) continue;
        if (best < 0 || w[i] > w[best]) best = i;
    }
    return best < 0 ? 0 : best;
}

/* Top-k: fills s->cand[0..k) sorted; returns the count (< k when fewer finite). */
static int top_k_sorted(eng_sampler *s, int k) {
    const float *w = s->w;
    cand_t *h = s->cand;
    int n = 0;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        float v = w[i];
        if (!(v > -INFINITY)) continue;
        if (n < k) {
            h[n].w = v;
            h[n].id = i;
            heap_up(h, n);
            n++;
        } else if (better(v, i, h[0].w, h[0].id)) {
            h[0].w = v;
            h[0].id = i;
            heap_down(h, n, 0);
        }
    }
    qsort(h, (size_t)n, sizeof *h, cand_cmp);
    return n;
}

/* Top-p over the current survivors. When sorted_n > 0, s->cand[0..sorted_n)
 * holds exactly the survivors in order. Otherwise a superset of the needed
 * prefix is collected by bucketing (max - w) in steps of 0.5 and sorted. */
static cut_t top_p_cut(eng_sampler *s, cut_t cut, float maxw, int sorted_n) {
    const float *w = s->w;
    const int n = s->n_vocab;
    double z = 0.0;
    for (int32_t i = 0; i < n; i++)
        if (survives(w, i, cut)) z += exp((double)w[i] - maxw);
    const double target = (double)s->p.top_p * z;
    int m = sorted_n;
    if (m == 0) {
        enum { NB = 64 };
        double mass[NB] = {0};
        for (int32_t i = 0; i < n; i++) {
            if (!survives(w, i, cut)) continue;
            double d = ((double)maxw - w[i]) * 2.0;
            int b = d >= NB - 1 ? NB - 1 : (int)d;
            mass[b] += exp((double)w[i] - maxw);
        }
        int bmax = NB - 1;
        double acc = 0.0;
        for (int b = 0; b < NB; b++) {
            acc += mass[b];
            if (acc >= target) {
                bmax = b;
                break;
            }
        }
        for (int32_t i = 0; i < n; i++) {
            if (!survives(w, i, cut)) continue;
            double d = ((double)maxw - w[i]) * 2.0;
            int b = d >= NB - 1 ? NB - 1 : (int)d;
            if (b > bmax) continue;
            s->cand[m].w = w[i];
            s->cand[m].id = i;
            m++;
        }
        qsort(s->cand, (size_t)m, sizeof *s->cand, cand_cmp);
    }
    if (m == 0) return cut;
    double cum = 0.0;
    for (int i = 0; i < m; i++) {
        cum += exp((double)s->cand[i].w - maxw);
        if (cum >= target) return (cut_t){s->cand[i].w, s->cand[i].id};
    }
    return (cut_t){s->cand[m - 1].w, s->cand[m - 1].id};
}

int32_t eng_sampler_sample(eng_sampler *s, const float *logits) {
    const int n = s->n_vocab;
    const eng_sampling_params *p = &s->p;
    float *w = s->w;
    const double u = eng_sampler_next_uniform(s); /* one draw per call, always */

    memcpy(w, logits, (size_t)n * sizeof *w);

    /* 1. repetition penalty, once per distinct token of the window */
    if (p->repeat_penalty != 1.0f && p->repeat_penalty > 0.0f) {
        int32_t h[ENG_REPEAT_LAST_N];
        int nh = eng_sampler_history(s, h);
        for (int i = 0; i < nh; i++) {
            int32_t t = h[i];
            if (t < 0 || t >= n) continue;
            int seen = 0;
            for (int j = 0; j < i && !seen; j++) seen = h[j] == t;
            if (seen) continue;
            if (w[t] <= 0) w[t] *= p->repeat_penalty;
            else w[t] /= p->repeat_penalty;
        }
    }

    /* 2. temperature */
    if (!(p->temperature > 0.0f)) return pick_argmax(w, n);
    for (int i = 0; i < n; i++) w[i] /= p->temperature;

    cut_t cut = {-INFINITY, INT32_MAX};
    int sorted_n = 0;

    /* 3. top-k */
    if (p->top_k > 0 && p->top_k < n) {
        sorted_n = top_k_sorted(s, p->top_k);
        if (sorted_n == 0) return pick_argmax(w, n);
        if (sorted_n == p->top_k) cut = (cut_t){s->cand[sorted_n - 1].w, s->cand[sorted_n - 1].id};
    }

    float maxw = -INFINITY;
    for (int i = 0; i < n; i++)
        if (w[i] > maxw) maxw = w[i];
    if (!(maxw > -INFINITY)) return pick_argmax(w, n); /* nothing finite */
    if (maxw == INFINITY) return pick_argmax(w, n);     /* +inf dominates */

    /* 4. top-p */
    if (p->top_p < 1.0f) cut = top_p_cut(s, cut, maxw, sorted_n);

    /* 5. min-p, relative to the most probable survivor (always maxw) */
    if (p->min_p > 0.0f) {
        float thr = maxw + logf(p->min_p);
        if (thr > maxw) thr = maxw; /* min_p > 1 keeps the top token(s) */
        cut = cut_min(cut, (cut_t){thr, INT32_MAX});
    }

    /* 6. softmax over survivors and the draw, in ascending id order */
    double z = 0.0;
    int32_t last = -1;
    for (int32_t i = 0; i < n; i++) {
        if (!survives(w, i, cut)) continue;
        z += exp((double)w[i] - maxw);
        last = i;
    }
    if (last < 0) return pick_argmax(w, n);
    const double target = u * z;
    double cum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        if (!survives(w, i, cut)) continue;
        cum += exp((double)w[i] - maxw);
        if (cum > target) return i;
    }
    return last;
}
