/* inventory_nvml — GPU facts from NVML, loaded with dlopen at run time so the
 * pool never links CUDA or the driver. Read-only calls only (no settings).
 * The handful of NVML types used are declared here with their documented
 * layouts (nvml.h: nvmlMemory_t, nvmlUtilization_t). */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "pool/pool.h"

typedef int nvml_ret;                  /* nvmlReturn_t: 0 = NVML_SUCCESS */
typedef void *nvml_dev;                /* nvmlDevice_t (opaque pointer) */
struct nvml_memory { unsigned long long total, free, used; };
struct nvml_util { unsigned int gpu, memory; };
#define NVML_TEMPERATURE_GPU 0

struct pool_nvml {
    void *lib;
    nvml_ret (*init)(void);
    nvml_ret (*shutdown)(void);
    nvml_ret (*count)(unsigned int *);
    nvml_ret (*by_index)(unsigned int, nvml_dev *);
    nvml_ret (*mem)(nvml_dev, struct nvml_memory *);
    nvml_ret (*uuid)(nvml_dev, char *, unsigned int);
    nvml_ret (*name)(nvml_dev, char *, unsigned int);
    nvml_ret (*cc)(nvml_dev, int *, int *);
    nvml_ret (*util)(nvml_dev, struct nvml_util *);
    nvml_ret (*temp)(nvml_dev, int, unsigned int *);
};

int pool_nvml_open(struct pool_nvml **out, char *err, size_t errlen) {
    *out = NULL;
    const char *names[] = { getenv("LLORCH_NVML_LIB"), "libnvidia-ml.so.1", "/usr/local/nvidia/lib64/libnvidia-ml.so.1" };
    void *lib = NULL;
    for (size_t i = 0; i < 3 && !lib; i++)
        if (names[i] && *names[i]) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) return util_fail(err, errlen, -ENOENT, "NVML not found (libnvidia-ml.so.1)");
    struct pool_nvml *n = calloc(1, sizeof *n);
    if (!n) {
        dlclose(lib);
        return util_fail(err, errlen, -ENOMEM, "out of memory");
    }
    n->lib = lib;
#define SYM(field, name) *(void **)&n->field = dlsym(lib, name)
    SYM(init, "nvmlInit_v2");
    SYM(shutdown, "nvmlShutdown");
    SYM(count, "nvmlDeviceGetCount_v2");
    SYM(by_index, "nvmlDeviceGetHandleByIndex_v2");
    SYM(mem, "nvmlDeviceGetMemoryInfo");
    SYM(uuid, "nvmlDeviceGetUUID");
    SYM(name, "nvmlDeviceGetName");
    SYM(cc, "nvmlDeviceGetCudaComputeCapability");
    SYM(util, "nvmlDeviceGetUtilizationRates");
    SYM(temp, "nvmlDeviceGetTemperature");
#undef SYM
    if (!n->init || !n->shutdown || !n->count || !n->by_index || !n->mem) {
        dlclose(lib);
        free(n);
        return util_fail(err, errlen, -ENOSYS, "NVML lacks the v2 entry points");
    }
    nvml_ret r = n->init();
    if (r != 0) {
        dlclose(lib);
        free(n);
        return util_fail(err, errlen, -EIO, "nvmlInit_v2 failed (%d)", r);
    }
    *out = n;
    return 0;
}

/* Fills up to cap devices; returns the count (0 when no GPU) or <0. */
int pool_nvml_read(struct pool_nvml *n, struct pool_device *out, int cap) {
    unsigned int cnt = 0;
    if (n->count(&cnt) != 0) return -EIO;
    int k = 0;
    for (unsigned int i = 0; i < cnt && k < cap; i++) {
        nvml_dev d;
        if (n->by_index(i, &d) != 0) continue;
        struct pool_device *x = &out[k];
        memset(x, 0, sizeof *x);
        x->gpu_id = (int)i;
        x->util_pct = -1;
        x->temp_c = -1;
        struct nvml_memory m;
        if (n->mem(d, &m) != 0) continue;
        x->total_bytes = m.total;
        x->free_bytes = m.free;
        x->used_bytes = m.used;
        if (n->uuid) n->uuid(d, x->uuid, sizeof x->uuid);
        if (n->name) n->name(d, x->name, sizeof x->name);
        x->uuid[sizeof x->uuid - 1] = x->name[sizeof x->name - 1] = 0;
        if (n->cc) n->cc(d, &x->cc_major, &x->cc_minor);
        struct nvml_util u;
        if (n->util && n->util(d, &u) == 0) x->util_pct = (int)u.gpu;
        unsigned int t;
        if (n->temp && n->temp(d, NVML_TEMPERATURE_GPU, &t) == 0) x->temp_c = (int)t;
        k++;
    }
    return k;
}

void pool_nvml_close(struct pool_nvml *n) {
    if (!n) return;
    n->shutdown();
    dlclose(n->lib);
    free(n);
}
