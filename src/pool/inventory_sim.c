/* inventory_sim — TEST DOUBLE for NVML on GPU-less machines (SPEC §5,
 * `inventory: simulated`). Devices with a given name and memory; their used
 * memory is exactly what the pool has accounted on them, so placement and
 * preflight can be exercised without a GPU. /v2/state says
 * "inventory":"simulated" so nobody mistakes it for real hardware. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pool/pool.h"

/* spec: "NAME:BYTES" (BYTES with K/M/G/KiB/MiB/GiB suffixes). */
int pool_sim_parse(const char *spec, int gpu_id, struct pool_device *x, char *err, size_t errlen) {
    memset(x, 0, sizeof *x);
    const char *colon = spec ? strrchr(spec, ':') : NULL;
    if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof x->name)
        return util_fail(err, errlen, -EINVAL, "'%s' is not NAME:BYTES", spec ? spec : "");
    uint64_t bytes;
    if (cfg_parse_u64(colon + 1, &bytes) != 0 || bytes == 0)
        return util_fail(err, errlen, -EINVAL, "'%s': '%s' is not a byte count", spec, colon + 1);
    memcpy(x->name, spec, (size_t)(colon - spec));
    x->gpu_id = gpu_id;
    snprintf(x->uuid, sizeof x->uuid, "SIMULATED-GPU-%d", gpu_id);
    x->cc_major = 9;
    x->cc_minor = 0;
    x->total_bytes = bytes;
    x->free_bytes = bytes;
    x->util_pct = 0;
    x->temp_c = -1;
    return 0;
}
