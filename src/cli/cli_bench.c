/* cli_bench — `llorch bench`: llama-bench-style throughput of the engine.
 *
 *   llorch bench --model FILE [-p 512] [-n 128] [-r 5] [--backend cpu|cuda] [--threads N]
 *
 * pp<P>: prompt processing, P random valid token ids (fixed seed) evaluated
 *        in one eng_eval (n_batch = P) from an empty context; tokens/s = P / time.
 * tg<N>: generation, one BOS-less start token then N single-token steps, each
 *        eng_eval + greedy eng_sample (what a worker does per token), with
 *        decode pipelining on (eng_session_set_pipeline; off for the last
 *        sample, which has no next step; LLORCH_PIPELINE=0 turns it off for
 *        A/B runs and adds a line "pipeline: off"); tokens/s = N / time.
 * Each test: one untimed warm-up, then R timed repetitions; median, min and
 * max tokens/s. Also printed: model, file type, backend, device, threads and
 * the git commit (`git rev-parse` at run time, "unknown" without git).
 * Exit: 0 ok, 1 runtime failure, 2 bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "engine/engine.h"

int cli_bench(int argc, char **argv);

static void usage(FILE *f) {
    fprintf(f, "usage: llorch bench --model FILE [-p 512] [-n 128] [-r 5] [--backend cpu|cuda] [--threads N]\n");
}

static int parse_int(const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The commit the binary was configured from (CMake), else the checkout's. */
static void git_commit(char *out, size_t cap) {
#ifdef LLORCH_GIT_COMMIT
    snprintf(out, cap, "%s", LLORCH_GIT_COMMIT);
    return;
#endif
    snprintf(out, cap, "unknown");
    FILE *p = popen("git rev-parse --short=12 HEAD 2>/dev/null", "r");
    if (!p) return;
    char buf[64];
    if (fgets(buf, sizeof buf, p)) {
        buf[strcspn(buf, "\r\n")] = 0;
        if (buf[0]) snprintf(out, cap, "%s", buf);
    }
    pclose(p);
}

static void cpu_name(char *out, size_t cap) {
    snprintf(out, cap, "cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ') c++;
                c[strcspn(c, "\n")] = 0;
                snprintf(out, cap, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

static void report(const char *test, double *tps, int r) {
    qsort(tps, (size_t)r, sizeof *tps, cmp_double);
    double med = r % 2 ? tps[r / 2] : (tps[r / 2 - 1] + tps[r / 2]) / 2;
    printf("| %-8s | %12.2f | %12.2f | %12.2f |\n", test, med, tps[0], tps[r - 1]);
    fflush(stdout);
}

int cli_bench(int argc, char **argv) {
    const char *model = NULL;
    int p = 512, n = 128, r = 5, threads = 0, backend = ENG_BACKEND_CPU;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "llorch bench: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--model") || !strcmp(a, "-m")) model = v;
        else if (!strcmp(a, "-p")) bad = parse_int(v, 0, 1 << 20, &p);
        else if (!strcmp(a, "-n")) bad = parse_int(v, 0, 1 << 20, &n);
        else if (!strcmp(a, "-r")) bad = parse_int(v, 1, 1000, &r);
        else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) bad = parse_int(v, 1, 256, &threads);
        else if (!strcmp(a, "--backend")) {
            if (!strcmp(v, "cpu")) backend = ENG_BACKEND_CPU;
            else if (!strcmp(v, "cuda")) backend = ENG_BACKEND_CUDA;
            else bad = 1;
        } else {
            fprintf(stderr, "llorch bench: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "llorch bench: bad value for %s: '%s'\n", a, v);
            return 2;
        }
        i++;
    }
    if (!model || (p == 0 && n == 0)) {
        usage(stderr);
        return 2;
    }

    char err[512];
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.backend = backend;
    o.n_threads = threads;
    o.n_ctx = (p > n + 1 ? p : n + 1) + 1;
    o.n_batch = p > 0 ? p : 1;
    eng_model *m = NULL;
    if (eng_model_load(model, &o, &m, err, sizeof err)) {
        fprintf(stderr, "llorch bench: %s\n", err);
        return 1;
    }
    const eng_model_info *info = eng_model_get_info(m);
    eng_session *s = NULL;
    int32_t *toks = malloc(((size_t)p + 1) * sizeof *toks);
    double *tps = malloc((size_t)r * sizeof *tps);
    eng_sampling_params sp;
    eng_sampling_params_default(&sp);
    sp.temperature = 0;
    eng_sampler *smp = eng_sampler_new(&sp, info->n_vocab);
    int rc = 1;
    if (!toks || !tps || !smp) goto done;
    if (eng_session_new(m, &s, err, sizeof err)) {
        fprintf(stderr, "llorch bench: %s\n", err);
        goto done;
    }
    uint64_t rng = 1234;
    for (int i = 0; i < p; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((rng >> 33) % (uint64_t)info->n_vocab);
    }

    char commit[64], dev[160];
    git_commit(commit, sizeof commit);
    if (info->device_name[0]) snprintf(dev, sizeof dev, "%s", info->device_name);
    else cpu_name(dev, sizeof dev);
    printf("model: %s (%s, %s, %.2f MiB weights)\n", model, info->arch, info->quant_kind,
           info->weight_bytes / 1048576.0);
    if (threads == 0) threads = (int)sysconf(_SC_NPROCESSORS_ONLN); /* the engine's default */
    printf("backend: %s, device: %s, threads: %d, repetitions: %d, commit: %s\n", info->backend, dev,
           threads, r, commit);
    const char *pe = getenv("LLORCH_PIPELINE");
    const int pipe = !(pe && !strcmp(pe, "0"));
    if (!pipe) printf("pipeline: off (LLORCH_PIPELINE=0)\n");
    printf("| %-8s | %12s | %12s | %12s |\n", "test", "t/s median", "t/s min", "t/s max");
    printf("|----------|--------------|--------------|--------------|\n");

    if (p > 0) {
        char name[32];
        snprintf(name, sizeof name, "pp%d", p);
        for (int k = -1; k < r; k++) {
            eng_session_reset(s);
            uint64_t t0 = util_now_ns();
            if (eng_eval(s, toks, p, ENG_LOGITS_LAST, err, sizeof err)) {
                fprintf(stderr, "llorch bench: %s\n", err);
                goto done;
            }
            if (!eng_logits(s, -1)) goto done; /* includes the device → host copy */
            double dt = (util_now_ns() - t0) / 1e9;
            if (k >= 0) tps[k] = p / dt;
        }
        report(name, tps, r);
    }
    if (n > 0) {
        char name[32];
        snprintf(name, sizeof name, "tg%d", n);
        for (int k = -1; k < r; k++) {
            eng_session_reset(s);
            int32_t t = toks[0 % (p > 0 ? p : 1)];
            if (p == 0) t = 1 % info->n_vocab;
            uint64_t t0 = util_now_ns();
            for (int i = 0; i < n; i++) {
                if (eng_eval(s, &t, 1, ENG_LOGITS_LAST, err, sizeof err)) {
                    fprintf(stderr, "llorch bench: %s\n", err);
                    goto done;
                }
                /* the last token is not evaluated: no step to run ahead */
                eng_session_set_pipeline(s, pipe && i + 1 < n);
                if (eng_sample(s, smp, &t)) goto done;
            }
            double dt = (util_now_ns() - t0) / 1e9;
            if (k >= 0) tps[k] = n / dt;
        }
        report(name, tps, r);
    }
    rc = 0;
done:
    eng_sampler_free(smp);
    eng_session_free(s);
    eng_model_free(m);
    free(toks);
    free(tps);
    return rc;
}
