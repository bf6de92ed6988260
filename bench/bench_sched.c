/* bench_sched — scheduling decision latency with 100 pools x 8 workers
 * (SPEC §8 target: < 1 ms). Prints the median and p99 in µs per policy for
 * three situations: dispatch to an idle worker, start on a device (no worker
 * serves the model), and evict (every device full). Not a test: numbers only.
 *   build-<x>/bench_sched [iterations]                                      */
#include "common/log.h"
#include "common/util.h"
#include "orch/core/sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GiB (1ull << 30)

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static struct registry *build(uint64_t free_per_gpu) {
    struct reg_opts o = { .heartbeat_interval_ms = 15000, .missed_threshold = 3, .max_clock_skew_ms = 30000 };
    struct registry *r;
    if (reg_new(&o, &r)) exit(1);
    char err[128];
    for (int p = 0; p < 100; p++) {
        struct reg_pool f;
        memset(&f, 0, sizeof f);
        snprintf(f.id, sizeof f.id, "pool-%03d", p);
        snprintf(f.endpoint, sizeof f.endpoint, "http://10.0.%d.%d:9200", p / 250, p % 250);
        f.ndev = 8;
        for (int g = 0; g < 8; g++)
            f.dev[g] = (struct reg_device){ .gpu_id = g, .total_bytes = 80 * GiB, .free_bytes = free_per_gpu };
        if (reg_pool_register(r, &f, 0, err, sizeof err)) { fprintf(stderr, "%s\n", err); exit(1); }
        for (int w = 0; w < 8; w++) {
            struct reg_worker k;
            memset(&k, 0, sizeof k);
            snprintf(k.id, sizeof k.id, "w-%03d-%d", p, w);
            snprintf(k.pool_id, sizeof k.pool_id, "%s", f.id);
            snprintf(k.model_ref, sizeof k.model_ref, "hf:org/model-%02d::file=m.gguf", (p * 8 + w) % 40);
            k.caps = CAP_TEXT_GEN;
            k.status = REG_W_READY;
            k.memory_bytes = 20 * GiB;
            k.gpu_ids[0] = w;
            k.ngpu = 1;
            k.last_used_ms = p * 8 + w;
            if (reg_worker_upsert(r, &k, 0)) exit(1);
        }
    }
    return r;
}

static void run(const char *label, const char *policy, struct registry *r, const char *model, int iters) {
    struct sched_opts o = { .policy = policy, .eviction = 1, .lua_budget_ms = 50 };
    struct sched *s;
    char err[256];
    if (sched_new(&o, &s, err, sizeof err)) { fprintf(stderr, "%s\n", err); exit(1); }
    struct sched_job j = { .job_id = "bench", .model_ref = model, .capability = CAP_TEXT_GEN, .est_bytes = 10 * GiB };
    uint64_t *t = malloc((size_t)iters * sizeof *t);
    struct sched_decision d;
    for (int i = 0; i < iters; i++) {
        uint64_t t0 = util_now_ns();
        sched_decide(s, r, &j, 1000, &d);
        t[i] = util_now_ns() - t0;
    }
    qsort(t, (size_t)iters, sizeof *t, cmp_u64);
    printf("%-9s %-15s action=%-8s median_us=%.1f p99_us=%.1f\n", label, policy, sched_action_name(d.action),
           t[iters / 2] / 1e3, t[(size_t)iters * 99 / 100] / 1e3);
    free(t);
    sched_free(s);
}

int main(int argc, char **argv) {
    int iters = argc > 1 ? atoi(argv[1]) : 2000;
    if (iters < 10) iters = 10;
    log_set_level(LOG_WARN); /* decisions log at INFO */
    const char *pol[] = { "least-loaded", "most-vram-free", "round-robin" };
    struct registry *roomy = build(60 * GiB), *full = build(1 * GiB);
    printf("bench_sched: 100 pools x 8 GPUs x 8 workers (800 workers), %d decisions each\n", iters);
    for (int i = 0; i < 3; i++) {
        run("dispatch", pol[i], roomy, "hf:org/model-07::file=m.gguf", iters);
        run("start", pol[i], roomy, "hf:org/unserved::file=m.gguf", iters);
        run("evict", pol[i], full, "hf:org/unserved::file=m.gguf", iters);
    }
    reg_free(roomy);
    reg_free(full);
    return 0;
}
