// test-libs: llorch_net PkgConfig::JANSSON llorch_engine_cuda
/* pool-managerd on a real GPU (issue 5, acceptance 8): the NVML inventory
 * (dlopen'd, read-only) shows the card with real total/free memory, and
 * starting worker-orcd (bespoke-cuda, the default adapter the pool picks
 * itself when worker-orcd sits beside it and NVML sees a GPU) on a synthetic
 * Qwen2.5-0.5B (made by `llorch gguf make --preset qwen2.5-0.5b`) lowers the
 * NVML free memory by about what the worker reports; stopping it gives the
 * memory back. Exits 77 where NVML or a GPU is missing. (llorch_engine_cuda is
 * listed only so this test is built where the CUDA pieces are, like the
 * other GPU tests; nothing of it is used.)
 *
 * Run on the GPU machine from a bundle (the machine lacks our Debian libs):
 * build pool-managerd, worker-orcd, llorch and this test with CUDA, copy them
 * to <bundle>/bin and the libraries ldd lists (minus libc/libm/libdl/
 * libpthread/librt/ld-linux/libgcc_s/libstdc++/libcuda/libnvidia-ml) to
 * <bundle>/lib, then there: LD_LIBRARY_PATH=<bundle>/lib LLORCH_BUILD_DIR=<bundle>/bin
 * <bundle>/bin/test_pool_nvml.
 * Result 2026-11-27 (commit 567b462, NVIDIA H200): total 150754820096, free
 * 150109880320; worker-orcd reported 642223616 bytes, NVML free dropped by
 * 1210908672 (the other 568685056 bytes: the CUDA context); after the stop
 * free was back to 150109880320 exactly. */
#include "integration/test_pool_util.h"

#include <dlfcn.h>

static json_t *gpu0(tp_pool *p, json_t **state) {
    *state = tp_state(p);
    return tp_device(*state, 0);
}

static void test_nvml_inventory_and_worker(void **st) {
    (void)st;
    char dir[] = "/tmp/llorch-pool-gpu-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char model[300], llorch[1024], cmd[2048];
    snprintf(model, sizeof model, "%s/qwen2.5-0.5b-q4_k_m.gguf", dir);
    TU_BUILD(llorch, "llorch");
    snprintf(cmd, sizeof cmd, "%s gguf make --preset qwen2.5-0.5b --type Q4_K_M -o %s >%s/make.log 2>&1", llorch, model,
             dir);
    assert_int_equal(system(cmd), 0);

    const char *args[] = { "--inventory", "nvml", "--stop-grace-ms", "5000", NULL };
    tp_pool pool;
    tp_pool_start(&pool, args, NULL);
    json_t *s;
    json_t *g = gpu0(&pool, &s);
    assert_string_equal(tp_str(s, "inventory"), "nvml");
    assert_non_null(g);
    json_int_t total = tp_int(g, "total_bytes"), free0 = tp_int(g, "free_bytes");
    print_message("GPU 0: %s uuid %s cc %s total %lld free %lld used %lld util %lld%% temp %lldC\n", tp_str(g, "name"),
                  tp_str(g, "uuid"), tp_str(g, "compute_capability"), (long long)total, (long long)free0,
                  (long long)tp_int(g, "used_bytes"), (long long)tp_int(g, "utilization_pct"),
                  (long long)tp_int(g, "temperature_c"));
    assert_true(total > (1ll << 30));
    assert_true(free0 > 0 && free0 <= total);
    assert_true(strncmp(tp_str(g, "uuid"), "GPU-", 4) == 0);
    json_decref(s);

    char body[600];
    snprintf(body, sizeof body, "{\"model_ref\":\"file:%s\",\"gpu_id\":0,\"ctx_size\":4096}", model);
    char id[64];
    snprintf(id, sizeof id, "%s", tp_start_worker(&pool, body));
    assert_true(tp_wait_status(&pool, id, "ready", 120000));
    usleep(300 * 1000); /* past the 100 ms inventory cache */
    g = gpu0(&pool, &s);
    json_t *w = tp_worker(s, id);
    json_int_t mem = tp_int(w, "memory_bytes"), free1 = tp_int(g, "free_bytes");
    json_int_t drop = free0 - free1;
    print_message("worker %s (%s, %s) reports %lld bytes; NVML free dropped by %lld (difference %lld: CUDA context)\n", id,
                  tp_str(w, "worker_type"), tp_str(w, "memory_architecture"), (long long)mem, (long long)drop,
                  (long long)(drop - mem));
    assert_string_equal(tp_str(w, "worker_type"), "bespoke-cuda");
    assert_string_equal(tp_str(w, "memory_architecture"), "vram-only");
    assert_true(mem > (200ll << 20));
    /* about what the worker reports: at least it, plus at most 1 GiB of CUDA context */
    assert_true(drop >= mem - (16ll << 20));
    assert_true(drop <= mem + (1ll << 30));
    assert_int_equal(tp_int(g, "allocated_bytes"), mem);
    json_decref(s);

    char path[128];
    snprintf(path, sizeof path, "/v2/workers/%s/stop", id);
    assert_int_equal(tp_call(pool.url, "POST", path, "{}", NULL), 202);
    assert_true(tp_wait_status(&pool, id, "gone", 20000));
    usleep(300 * 1000);
    g = gpu0(&pool, &s);
    json_int_t free2 = tp_int(g, "free_bytes");
    print_message("after stop: free %lld (before start %lld)\n", (long long)free2, (long long)free0);
    assert_true(free2 >= free0 - (64ll << 20));
    assert_int_equal(tp_int(g, "allocated_bytes"), 0);
    json_decref(s);
    assert_int_equal(tp_pool_stop(&pool), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
}

int main(void) {
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    if (!h) h = dlopen("/usr/local/nvidia/lib64/libnvidia-ml.so.1", RTLD_NOW);
    if (!h) {
        fprintf(stderr, "no NVML: skipped\n");
        return 77;
    }
    dlclose(h);
    char orcd[1024];
    TU_BUILD(orcd, "worker-orcd");
    if (access(orcd, X_OK) != 0) {
        fprintf(stderr, "no worker-orcd beside pool-managerd: skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nvml_inventory_and_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
