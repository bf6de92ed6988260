// test-libs: llorch_engine_cuda llorch_engine llorch_quant llorch_tok llorch_gguf llorch_core
/* test_cuda_e2e — the whole engine on the CUDA backend against the CPU
 * backend on a real model (stories260K, F32): greedy decoding of 64 tokens
 * must give the same ids, and the first step's logits must agree to 1e-3
 * relative (fp32 paths only: F32 weights take the fp32 mat-vec / tiled
 * matmul; but the CPU's attention is llama.cpp's CPU flash attention, with
 * fp16 q and an fp16 accumulator: llama.cpp's own logits with and without
 * it differ by 1.4e-4 relative on this model, so 1e-4 is too tight). Decode steps run through the CUDA graph (record/replay) and the
 * device sampler, so this also checks both against the host path.
 * Exits 77 where no CUDA device exists. */
#include <errno.h>
#include <math.h>

#include "engine/backend.h"
#include "engine/engine.h"
#include "gpu/cuda_probe.h"
#include "testutil.h"


#define N_GEN 64

static int run(int backend, const char *path, int32_t *out, float *logits0, int *n_vocab, char *err, size_t errlen) {
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.backend = backend;
    o.n_ctx = 256;
    eng_model *m = NULL;
    int rc = eng_model_load(path, &o, &m, err, errlen);
    if (rc) return rc;
    const eng_model_info *in = eng_model_get_info(m);
    *n_vocab = in->n_vocab;
    if (backend == ENG_BACKEND_CUDA) {
        char why[256];
        assert_int_equal(eng_model_check_residency(m, why, sizeof why), 1);
        print_message("cuda: %s, %.1f MiB of weights, memory %s\n", in->device_name, in->weight_bytes / 1048576.0,
                      in->memory_architecture);
        assert_string_equal(in->memory_architecture, "vram-only");
    }
    eng_session *s = NULL;
    assert_int_equal(eng_session_new(m, &s, err, errlen), 0);
    eng_sampling_params p;
    eng_sampling_params_default(&p);
    p.temperature = 0.0f;
    eng_sampler *sp = eng_sampler_new(&p, in->n_vocab);
    const int32_t prompt[] = {1, 403, 407, 261, 1919 % 512, 365, 292};
    const int np = (int)(sizeof prompt / sizeof prompt[0]);
    for (int i = 0; i < np; i++) eng_sampler_accept(sp, prompt[i]);
    assert_int_equal(eng_eval(s, prompt, np, ENG_LOGITS_LAST, err, errlen), 0);
    const float *l = eng_logits(s, -1);
    assert_non_null(l);
    memcpy(logits0, l, (size_t)in->n_vocab * sizeof(float));
    for (int i = 0; i < N_GEN; i++) {
        int32_t t;
        assert_int_equal(eng_sample(s, sp, &t), 0);
        out[i] = t;
        assert_int_equal(eng_eval(s, &t, 1, ENG_LOGITS_LAST, err, errlen), 0);
    }
    eng_sampler_free(sp);
    eng_session_free(s);
    eng_model_free(m);
    return 0;
}

static void test_greedy_stories(void **st) {
    (void)st;
    char path[1024], err[512] = "";
    TU_MODEL(path, "stories260K.gguf");
    int32_t ids_cpu[N_GEN], ids_gpu[N_GEN];
    static float l_cpu[1 << 16], l_gpu[1 << 16];
    int nv_c = 0, nv_g = 0;
    for (int i = 0; i < N_GEN; i++) ids_gpu[i] = ids_cpu[i] = -1;
    if (run(ENG_BACKEND_CPU, path, ids_cpu, l_cpu, &nv_c, err, sizeof err)) fail_msg("cpu: %s", err);
    if (run(ENG_BACKEND_CUDA, path, ids_gpu, l_gpu, &nv_g, err, sizeof err)) fail_msg("cuda: %s", err);
    assert_int_equal(nv_c, nv_g);
    double num = 0, den = 0;
    for (int i = 0; i < nv_c; i++) {
        if (!isfinite(l_gpu[i])) fail_msg("cuda logit %d not finite", i);
        num += ((double)l_gpu[i] - l_cpu[i]) * ((double)l_gpu[i] - l_cpu[i]);
        den += (double)l_cpu[i] * l_cpu[i];
    }
    const double rel = sqrt(num / den);
    print_message("first-step logits: relative difference %.3g\n", rel);
    assert_true(rel <= 1e-3);
    char line[N_GEN * 6 + 1];
    int k = 0;
    for (int i = 0; i < N_GEN; i++) k += snprintf(line + k, sizeof line - k, " %d", ids_gpu[i]);
    print_message("cuda greedy ids:%s\n", line);
    assert_memory_equal(ids_cpu, ids_gpu, sizeof ids_cpu);
}

int main(void) {
    const int probe = tc_cuda_probe("test_cuda_e2e");
    if (probe) return probe;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_greedy_stories)};
    return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
