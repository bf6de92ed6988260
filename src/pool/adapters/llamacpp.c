/* llamacpp adapter — llama-server behind a translating proxy (SPEC §5).
 * Not implemented yet: its platform check refuses, so preflight answers
 * PLATFORM_UNSUPPORTED and nothing spawns. */
#include "pool/adapters/adapter.h"

#include <errno.h>

static int lcpp_platform_ok(char *err, size_t errlen) {
    return util_fail(err, errlen, -ENOTSUP, "the llamacpp adapter's proxy is not implemented yet");
}

static int lcpp_arch(const char *arch) {
    (void)arch;
    return 1;
}

static int lcpp_spawn(const struct pool_adapter *a, const struct pool_spawn_args *s, struct pool_argv *o, char *err,
                      size_t errlen) {
    (void)a;
    (void)s;
    (void)o;
    return util_fail(err, errlen, -ENOTSUP, "llamacpp: not implemented");
}

const struct pool_adapter_ops pool_adapter_llamacpp = {
    .type = "llamacpp",
    .memory_architecture = "host",
    .default_binary = "llama-server",
    .uses_gpu = 0,
    .platform_ok = lcpp_platform_ok,
    .arch_supported = lcpp_arch,
    .spawn = lcpp_spawn,
    .started = NULL,
    .health = pool_adapter_http_health,
    .stop = pool_adapter_sig_stop,
    .kill = pool_adapter_sig_kill,
    .state = pool_adapter_no_state,
    .metadata = pool_adapter_metadata,
    .cleanup = NULL,
};
