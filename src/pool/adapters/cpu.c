/* cpu adapter — worker-cpud, the engine on the CPU (memory_architecture host). */
#include <string.h>

#include "pool/adapters/adapter.h"

static int cpu_platform_ok(char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    return 0;
}

/* the engine also runs gpt-oss, on the CPU and on the CUDA backend (both
 * implement the MoE and sink ops of backend.h) */
static int cpu_arch(const char *arch) { return pool_adapter_engine_arch(arch) || !strcmp(arch, "gpt-oss"); }

/* worker-cpud --worker-id ID --model PATH --port 0 --callback-url URL
 *            --model-ref REF --spawn-token T [--ctx-size N] */
static int cpu_spawn(const struct pool_adapter *a, const struct pool_spawn_args *s, struct pool_argv *o, char *err,
                     size_t errlen) {
    int rc = 0;
    rc |= pool_argv_add(o, "%s", a->binary);
    rc |= pool_argv_add(o, "--worker-id");
    rc |= pool_argv_add(o, "%s", s->worker_id);
    rc |= pool_argv_add(o, "--model");
    rc |= pool_argv_add(o, "%s", s->model_path);
    rc |= pool_argv_add(o, "--port");
    rc |= pool_argv_add(o, "0");
    rc |= pool_argv_add(o, "--callback-url");
    rc |= pool_argv_add(o, "%s", s->callback_url);
    rc |= pool_argv_add(o, "--model-ref");
    rc |= pool_argv_add(o, "%s", s->model_ref);
    rc |= pool_argv_add(o, "--spawn-token");
    rc |= pool_argv_add(o, "%s", s->spawn_token);
    if (s->ctx > 0) {
        rc |= pool_argv_add(o, "--ctx-size");
        rc |= pool_argv_add(o, "%lld", (long long)s->ctx);
    }
    if (a->ops->uses_gpu && s->ngpu > 0) {
        rc |= pool_argv_add(o, "--gpu-device");
        rc |= pool_argv_add(o, "%d", s->gpu_ids[0]);
    }
    return rc ? util_fail(err, errlen, -7, "command line too long") : 0;
}

const struct pool_adapter_ops pool_adapter_cpu = {
    .type = "cpu",
    .memory_architecture = "host",
    .default_binary = "worker-cpud",
    .uses_gpu = 0,
    .platform_ok = cpu_platform_ok,
    .arch_supported = cpu_arch,
    .spawn = cpu_spawn,
    POOL_ADAPTER_ENGINE_WORKER_SLOTS,
};

/* bespoke-cuda — worker-orcd: the same command line plus --gpu-device; VRAM only. */
const struct pool_adapter_ops pool_adapter_bespoke_cuda = {
    .type = "bespoke-cuda",
    .memory_architecture = "vram-only",
    .default_binary = "worker-orcd",
    .uses_gpu = 1,
    .platform_ok = cpu_platform_ok,
    .arch_supported = cpu_arch,
    .spawn = cpu_spawn,
    POOL_ADAPTER_ENGINE_WORKER_SLOTS,
};
