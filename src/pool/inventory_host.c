/* inventory_host — the host device (RAM) that cpu workers use: total and
 * available memory from /proc/meminfo (MemAvailable, the kernel's estimate of
 * what can be allocated without swapping). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pool/pool.h"

int pool_host_read(struct pool_device *x) {
    memset(x, 0, sizeof *x);
    x->gpu_id = POOL_HOST_DEVICE;
    snprintf(x->name, sizeof x->name, "host");
    snprintf(x->uuid, sizeof x->uuid, "host");
    x->util_pct = -1;
    x->temp_c = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -errno;
    char line[256];
    unsigned long long total = 0, avail = 0, v;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "MemTotal: %llu kB", &v) == 1) total = v * 1024ull;
        else if (sscanf(line, "MemAvailable: %llu kB", &v) == 1) avail = v * 1024ull;
    }
    fclose(f);
    if (!total) return -EIO;
    if (avail > total) avail = total;
    x->total_bytes = total;
    x->free_bytes = avail;
    x->used_bytes = total - avail;
    return 0;
}
