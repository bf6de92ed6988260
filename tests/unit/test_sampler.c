// test-libs: llorch_engine llorch_quant llorch_tok llorch_gguf llorch_core
/* sampler: each SPEC §3.4 stage against hand-computed expectations, the
 * draw against the documented rule (first survivor in id order whose running
 * mass exceeds u*Z), determinism per seed, and the edge cases. */
#include "testutil.h"

#include <math.h>

#include "engine/sampler.h"

static eng_sampler *mk(float temp, int top_k, float top_p, float min_p, float rep, uint64_t seed, int n) {
    eng_sampling_params p;
    eng_sampling_params_default(&p);
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repeat_penalty = rep;
    p.seed = seed;
    eng_sampler *s = eng_sampler_new(&p, n);
    assert_non_null(s);
    return s;
}

/* What the documented draw must return for weights wt[] (0 = filtered out)
 * and the uniform u. */
static int expect_draw(const double *wt, int n, double u) {
    double z = 0;
    for (int i = 0; i < n; i++) z += wt[i];
    double cum = 0, t = u * z;
    int last = -1;
    for (int i = 0; i < n; i++) {
        if (wt[i] <= 0) continue;
        last = i;
        cum += wt[i];
        if (cum > t) return i;
    }
    return last;
}

/* the uniforms a sampler with this seed will draw */
static void uniforms(uint64_t seed, double *u, int n) {
    eng_sampler *s = mk(1, 0, 1, 0, 1, seed, 4);
    for (int i = 0; i < n; i++) u[i] = eng_sampler_next_uniform(s);
    eng_sampler_free(s);
}

/* ndraws samples from logits l[n] by a sampler with these settings (repeat
 * penalty off) are each what the documented draw gives for the weights wt[n]
 * (0 = filtered out) and the uniforms of the same seed */
static void assert_draws(float temp, int top_k, float top_p, float min_p, uint64_t seed, const float *l, int n,
                         const double *wt, int ndraws) {
    double u[300];
    assert_true(ndraws <= (int)(sizeof u / sizeof u[0]));
    uniforms(seed, u, ndraws);
    eng_sampler *s = mk(temp, top_k, top_p, min_p, 1, seed, n);
    for (int i = 0; i < ndraws; i++) assert_int_equal(eng_sampler_sample(s, l), expect_draw(wt, n, u[i]));
    eng_sampler_free(s);
}

static void test_defaults(void **st) {
    (void)st;
    eng_sampling_params p;
    eng_sampling_params_default(&p);
    assert_true(p.temperature == 1.0f && p.top_p == 1.0f && p.top_k == 0 && p.min_p == 0.0f &&
                p.repeat_penalty == 1.0f);
    assert_null(eng_sampler_new(&p, 0));
}

static void test_greedy_lowest_id_on_ties(void **st) {
    (void)st;
    float l[5] = {1, 3, 3, 2, -5};
    eng_sampler *s = mk(0, 0, 1, 0, 1, 1, 5);
    assert_int_equal(eng_sampler_sample(s, l), 1);
    float eq[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    eng_sampler_free(s);
    s = mk(0, 0, 1, 0, 1, 1, 4);
    assert_int_equal(eng_sampler_sample(s, eq), 0);
    eng_sampler_free(s);
}

static void test_repetition_penalty(void **st) {
    (void)st;
    /* window {0, 1, 0}: w0 = 2.0/2 = 1.0, w1 = -1*2 = -2, others untouched;
     * applied once per distinct token even though 0 appears twice */
    float l[4] = {2.0f, -1.0f, 1.9f, 0.5f};
    eng_sampler *s = mk(0, 0, 1, 0, 2.0f, 1, 4);
    eng_sampler_accept(s, 0);
    eng_sampler_accept(s, 1);
    eng_sampler_accept(s, 0);
    assert_int_equal(eng_sampler_sample(s, l), 2);
    eng_sampler_free(s);
    /* without the penalty token 0 wins */
    s = mk(0, 0, 1, 0, 1.0f, 1, 4);
    eng_sampler_accept(s, 0);
    assert_int_equal(eng_sampler_sample(s, l), 0);
    eng_sampler_free(s);
    /* only the last 64 count: token 0 accepted, then 64 others → no penalty */
    s = mk(0, 0, 1, 0, 2.0f, 1, 4);
    eng_sampler_accept(s, 0);
    for (int i = 0; i < 64; i++) eng_sampler_accept(s, 3);
    assert_int_equal(eng_sampler_sample(s, l), 0);
    eng_sampler_free(s);
    /* negative logits get more negative: {-1, -1.5}: penalize 0 by 2 → -2 < -1.5 */
    float neg[2] = {-1.0f, -1.5f};
    s = mk(0, 0, 1, 0, 2.0f, 1, 2);
    eng_sampler_accept(s, 0);
    assert_int_equal(eng_sampler_sample(s, neg), 1);
    eng_sampler_free(s);
}

static void test_history_ring(void **st) {
    (void)st;
    eng_sampler *s = mk(1, 0, 1, 0, 1, 1, 100);
    int32_t h[ENG_REPEAT_LAST_N];
    assert_int_equal(eng_sampler_history(s, h), 0);
    for (int i = 0; i < 70; i++) eng_sampler_accept(s, i);
    assert_int_equal(eng_sampler_history(s, h), 64);
    for (int i = 0; i < 64; i++) assert_int_equal(h[i], 6 + i);
    eng_sampler_free(s);
}

/* temperature 1 and 0.5 on logits {0, ln 3}: p = {1/4, 3/4} and {1/10, 9/10} */
static void test_temperature_draw(void **st) {
    (void)st;
    enum { N = 200 };
    double u[N];
    uniforms(42, u, N);
    float l[2] = {0.0f, logf(3.0f)};
    eng_sampler *s = mk(1.0f, 0, 1, 0, 1, 42, 2);
    eng_sampler *h = mk(0.5f, 0, 1, 0, 1, 42, 2);
    double w1[2] = {1, 3}, w2[2] = {1, 9};
    int ones = 0;
    for (int i = 0; i < N; i++) {
        int a = eng_sampler_sample(s, l), b = eng_sampler_sample(h, l);
        assert_int_equal(a, expect_draw(w1, 2, u[i]));
        assert_int_equal(b, expect_draw(w2, 2, u[i]));
        ones += a;
    }
    assert_true(ones > 120 && ones < 180); /* ~150 */
    eng_sampler_free(s);
    eng_sampler_free(h);
}

static void test_uniform_range_and_determinism(void **st) {
    (void)st;
    double a[1000], b[1000], c[1000];
    uniforms(7, a, 1000);
    uniforms(7, b, 1000);
    uniforms(8, c, 1000);
    int diff = 0;
    double mean = 0;
    for (int i = 0; i < 1000; i++) {
        assert_true(a[i] >= 0.0 && a[i] < 1.0);
        assert_true(a[i] == b[i]);
        diff += a[i] != c[i];
        mean += a[i];
        /* top 53 bits: u * 2^53 is an integer */
        double k = a[i] * 9007199254740992.0;
        assert_true(k == floor(k));
    }
    assert_int_equal(diff, 1000);
    mean /= 1000;
    assert_true(mean > 0.45 && mean < 0.55);
}

static void test_top_k(void **st) {
    (void)st;
    /* logits ln{1,4,2,3}: top-2 keeps ids 1 and 3 with weights 4 and 3 */
    float l[4] = {0, logf(4), logf(2), logf(3)};
    double wt[4] = {0, 4, 0, 3};
    assert_draws(1, 2, 1, 0, 3, l, 4, wt, 300);
    /* top_k = 1 → argmax whatever the draw */
    eng_sampler *s = mk(1, 1, 1, 0, 1, 5, 4);
    for (int i = 0; i < 50; i++) assert_int_equal(eng_sampler_sample(s, l), 1);
    eng_sampler_free(s);
    /* ties at the boundary: equal logits, top-2 keeps the two lowest ids */
    float eq[5] = {1, 1, 1, 1, 1};
    s = mk(1, 2, 1, 0, 1, 9, 5);
    int seen[5] = {0};
    for (int i = 0; i < 200; i++) seen[eng_sampler_sample(s, eq)]++;
    assert_true(seen[0] > 0 && seen[1] > 0);
    assert_int_equal(seen[2] + seen[3] + seen[4], 0);
    eng_sampler_free(s);
    /* top_k > vocab: off */
    double all[4] = {1, 4, 2, 3};
    assert_draws(1, 100, 1, 0, 11, l, 4, all, 300);
}

static void test_top_p(void **st) {
    (void)st;
    /* p = {0.5, 0.3, 0.15, 0.05} at ids {2, 0, 3, 1} */
    float l[4] = {logf(0.3f), logf(0.05f), logf(0.5f), logf(0.15f)};
    /* top_p 0.75: prefix {2 (0.5), 0 (0.8)} */
    double wt[4] = {0.3, 0, 0.5, 0};
    assert_draws(1, 0, 0.75f, 0, 4, l, 4, wt, 300);
    /* top_p 0.9: {2, 0, 3} */
    double wt2[4] = {0.3, 0, 0.5, 0.15};
    assert_draws(1, 0, 0.9f, 0, 5, l, 4, wt2, 300);
    /* top_p 0 keeps exactly one token: the most probable */
    eng_sampler *s = mk(1, 0, 0.0f, 0, 1, 6, 4);
    for (int i = 0; i < 50; i++) assert_int_equal(eng_sampler_sample(s, l), 2);
    eng_sampler_free(s);
    /* top-k then top-p: top-3 = {2,0,3} renormalised {0.526,0.316,0.158}; p 0.8 → {2,0} */
    assert_draws(1, 3, 0.8f, 0, 8, l, 4, wt, 300);
}

/* a large vocabulary exercises the bucketed top-p path */
static void test_top_p_large_vocab(void **st) {
    (void)st;
    enum { V = 5000, N = 200 };
    float *l = malloc(V * sizeof *l);
    double *wt = calloc(V, sizeof *wt);
    uint64_t r = 99;
    for (int i = 0; i < V; i++) l[i] = tu_randf(&r) * 8.0f;
    /* reference: full sort by (logit desc, id asc), prefix with mass >= 0.6 */
    int *idx = malloc(V * sizeof *idx);
    for (int i = 0; i < V; i++) idx[i] = i;
    for (int i = 1; i < V; i++) { /* insertion sort, fine for a test */
        int k = idx[i], j = i - 1;
        while (j >= 0 && (l[idx[j]] < l[k] || (l[idx[j]] == l[k] && idx[j] > k))) {
            idx[j + 1] = idx[j];
            j--;
        }
        idx[j + 1] = k;
    }
    double mx = l[idx[0]], z = 0;
    for (int i = 0; i < V; i++) z += exp(l[i] - mx);
    double cum = 0;
    int kept = 0;
    for (int i = 0; i < V; i++) {
        double e = exp(l[idx[i]] - mx);
        cum += e;
        wt[idx[i]] = e;
        kept++;
        if (cum >= 0.6 * z) break;
    }
    assert_true(kept > 10 && kept < V / 2);
    assert_draws(1, 0, 0.6f, 0, 21, l, V, wt, N);
    free(l);
    free(wt);
    free(idx);
}

static void test_min_p(void **st) {
    (void)st;
    float l[4] = {logf(0.3f), logf(0.05f), logf(0.5f), logf(0.15f)};
    /* min_p 0.4: keep p >= 0.2 → ids 2 and 0 */
    double wt[4] = {0.3, 0, 0.5, 0};
    assert_draws(1, 0, 1, 0.4f, 12, l, 4, wt, 300);
    /* min_p 1: only the max */
    eng_sampler *s = mk(1, 0, 1, 1.0f, 1, 13, 4);
    for (int i = 0; i < 50; i++) assert_int_equal(eng_sampler_sample(s, l), 2);
    eng_sampler_free(s);
    /* min_p 1 with two equal maxima keeps both */
    float two[3] = {2, 1, 2};
    s = mk(1, 0, 1, 1.0f, 1, 14, 3);
    int seen[3] = {0};
    for (int i = 0; i < 200; i++) seen[eng_sampler_sample(s, two)]++;
    assert_true(seen[0] > 50 && seen[2] > 50 && seen[1] == 0);
    eng_sampler_free(s);
}

static void test_inf_logits(void **st) {
    (void)st;
    float l[4] = {-INFINITY, 0, -INFINITY, 0};
    eng_sampler *s = mk(1, 0, 1, 0, 1, 15, 4);
    int seen[4] = {0};
    for (int i = 0; i < 200; i++) seen[eng_sampler_sample(s, l)]++;
    assert_int_equal(seen[0] + seen[2], 0);
    assert_true(seen[1] > 50 && seen[3] > 50);
    eng_sampler_free(s);
    /* with top-k and top-p too */
    s = mk(1, 3, 0.99f, 0.01f, 1, 16, 4);
    for (int i = 0; i < 100; i++) {
        int t = eng_sampler_sample(s, l);
        assert_true(t == 1 || t == 3);
    }
    eng_sampler_free(s);
    /* all -inf: token 0 (documented) */
    float all[3] = {-INFINITY, -INFINITY, -INFINITY};
    s = mk(1, 0, 0.5f, 0, 1, 17, 3);
    assert_int_equal(eng_sampler_sample(s, all), 0);
    eng_sampler_free(s);
    /* greedy ignores NaN */
    float nan[3] = {NAN, 1, 2};
    s = mk(0, 0, 1, 0, 1, 18, 3);
    assert_int_equal(eng_sampler_sample(s, nan), 2);
    eng_sampler_free(s);
}

static void test_all_equal_uniform(void **st) {
    (void)st;
    enum { N = 300 };
    double u[N];
    uniforms(19, u, N);
    float l[6] = {0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f};
    eng_sampler *s = mk(0.7f, 0, 1, 0, 1, 19, 6);
    for (int i = 0; i < N; i++) assert_int_equal(eng_sampler_sample(s, l), (int)(u[i] * 6));
    eng_sampler_free(s);
}

static void test_same_seed_same_tokens(void **st) {
    (void)st;
    enum { V = 1000 };
    float *l = malloc(V * sizeof *l);
    uint64_t r = 5;
    for (int i = 0; i < V; i++) l[i] = tu_randf(&r) * 3.0f;
    eng_sampler *a = mk(0.8f, 40, 0.95f, 0.05f, 1.1f, 1234, V);
    eng_sampler *b = mk(0.8f, 40, 0.95f, 0.05f, 1.1f, 1234, V);
    eng_sampler *c = mk(0.8f, 40, 0.95f, 0.05f, 1.1f, 1235, V);
    int differ = 0;
    for (int i = 0; i < 100; i++) {
        int32_t x = eng_sampler_sample(a, l), y = eng_sampler_sample(b, l), z = eng_sampler_sample(c, l);
        assert_int_equal(x, y);
        differ += x != z;
        eng_sampler_accept(a, x);
        eng_sampler_accept(b, y);
        eng_sampler_accept(c, z);
    }
    assert_true(differ > 10);
    eng_sampler_free(a);
    eng_sampler_free(b);
    eng_sampler_free(c);
    free(l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_greedy_lowest_id_on_ties),
        cmocka_unit_test(test_repetition_penalty),
        cmocka_unit_test(test_history_ring),
        cmocka_unit_test(test_temperature_draw),
        cmocka_unit_test(test_uniform_range_and_determinism),
        cmocka_unit_test(test_top_k),
        cmocka_unit_test(test_top_p),
        cmocka_unit_test(test_top_p_large_vocab),
        cmocka_unit_test(test_min_p),
        cmocka_unit_test(test_inf_logits),
        cmocka_unit_test(test_all_equal_uniform),
        cmocka_unit_test(test_same_seed_same_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
