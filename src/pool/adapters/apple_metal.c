/* apple-metal adapter — worker-aarmd on Apple Silicon (unified memory). It
 * exists so a configuration naming it is understood; on any other platform
 * its platform check refuses with PLATFORM_UNSUPPORTED and nothing spawns. */
#include "pool/adapters/adapter.h"

#include <errno.h>
#include <sys/utsname.h>
#include <string.h>

static int metal_platform_ok(char *err, size_t errlen) {
    struct utsname u;
    if (uname(&u) == 0 && !strcmp(u.sysname, "Darwin") && !strcmp(u.machine, "arm64")) return 0;
    return util_fail(err, errlen, -ENOTSUP, "apple-metal workers need macOS on Apple Silicon; this is %s/%s",
                     uname(&u) == 0 ? u.sysname : "?", uname(&u) == 0 ? u.machine : "?");
}

static int metal_spawn(const struct pool_adapter *a, const struct pool_spawn_args *s, struct pool_argv *o, char *err,
                       size_t errlen) {
    (void)a;
    (void)s;
    (void)o;
    return util_fail(err, errlen, -ENOTSUP, "apple-metal: not supported on this platform");
}

static int metal_arch(const char *arch) {
    return pool_adapter_engine_arch(arch);
}

const struct pool_adapter_ops pool_adapter_apple_metal = {
    .type = "apple-metal",
    .memory_architecture = "unified",
    .default_binary = "worker-aarmd",
    .uses_gpu = 1,
    .platform_ok = metal_platform_ok,
    .arch_supported = metal_arch,
    .spawn = metal_spawn,
    POOL_ADAPTER_ENGINE_WORKER_SLOTS,
};
