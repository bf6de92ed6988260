// test-libs: llorch_net llorch_core PkgConfig::JANSSON PkgConfig::SQLITE
/* Issue 6, acceptance points 8, 9 and 10 with REAL processes on loopback:
 * orchestratord + pool-managerd + the worker-cpud processes the pool spawns.
 *
 *  8. test_placements_and_lru_on_simulated_gpus — two simulated GPUs
 *     (pool-managerd `inventory: simulated`, the documented test double);
 *     an adapter of type bespoke-cuda whose binary is worker-cpud, so the pool
 *     spawns CPU workers but accounts them on the simulated GPU it was asked
 *     for (pool-managerd has no dedicated "cpu worker on a simulated GPU"
 *     mapping; this is the one its adapter table allows, as
 *     test_pool_preflight.c does). Two pinned models, three unpinned ones;
 *     the unpinned ones start on demand and the LRU idle unpinned one is
 *     evicted when room is needed, never a pinned one (which are older).
 *  9. test_lua_last_worker_obeyed / test_lua_infinite_loop_falls_back /
 *     test_lua_os_execute_refused — scheduling.policy: lua:<path> in the
 *     running service; two ready workers of the real pool.
 * 10. test_lab_auth_no_state_change — `lab`: registration and heartbeats
 *     without (or with a wrong) pool token get 401 and /v2/pools and
 *     /v2/workers are byte-for-byte unchanged; real pools with no or a wrong
 *     token never appear.
 *
 * The harness is test_orch_util.h. Every process is tracked by pid and ended in teardown, also after a failed
 * assertion (pools get SIGTERM first so they stop their own workers). Polls,
 * not sleeps, with generous limits for ASan on a loaded 2-core box. KEEP=1
 * keeps the scratch directory (logs). */
#include "test_orch_util.h"

/* ---- files ----------------------------------------------------------------------- */
static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) assert_int_equal(fwrite(buf, 1, n, b), n);
    fclose(a);
    fclose(b);
}

static int model_abs(char *out) {
    char m[PATH_MAX];
    TU_MODEL(m, "stories260K.gguf");
    if (access(m, R_OK) != 0 || !realpath(m, out)) return -1;
    return 0;
}

/* ---- jobs ------------------------------------------------------------------------- */
/* waits until no worker in the orchestrator is busy: a job's end event can
 * reach the client just before its relay releases the worker */
static void settle(const struct proc *o) {
    for (uint64_t t0 = now_ms(); now_ms() - t0 < 30000;) {
        char *b = NULL;
        long st = req("GET", o->base, "/v2/workers", NULL, &b);
        int busy = st != 200 || (b && strstr(b, "\"status\":\"busy\""));
        free(b);
        if (!busy) return;
        usleep(20000);
    }
    fail_msg("workers stayed busy");
}

/* submits, follows the SSE stream to its end, returns the worker that ran it
 * (malloc'd) or fails the test with the orchestrator log */
static char *run_job(const struct proc *o, const char *model) {
    settle(o);
    char body[256], *resp = NULL;
    snprintf(body, sizeof body, "{\"model\":\"%s\",\"prompt\":\"Once upon a time\",\"max_tokens\":2,\"temperature\":0}",
             model);
    long st = req("POST", o->base, "/v2/tasks", body, &resp);
    char *id = jstr(resp, "job_id");
    free(resp);
    if (st != 202 || !id) { dump_file(o->log); fail_msg("submit %s: %ld", model, st); }
    struct evlist v = { 0 };
    events(o->base, id, -1, &v);
    if (strcmp(last_name(&v), "end") != 0) { dump_file(o->log); fail_msg("job for %s ended '%s' %s", model, last_name(&v), v.code); }
    ev_free(&v);
    char path[128];
    snprintf(path, sizeof path, "/v2/tasks/%s", id);
    json_t *j = get_json(o->base, path);
    char *w = strdup(js(j, "worker_id"));
    json_decref(j);
    free(id);
    assert_true(w[0] != 0);
    settle(o);
    return w;
}

/* the orchestrator's view of a worker (new reference) or NULL */
static json_t *orch_worker(const struct proc *o, const char *id) {
    json_t *all = get_json(o->base, "/v2/workers"), *found = NULL;
    json_t *ws = json_object_get(all, "workers");
    for (size_t i = 0; i < json_array_size(ws); i++)
        if (strcmp(js(json_array_get(ws, i), "worker_id"), id) == 0) found = json_incref(json_array_get(ws, i));
    json_decref(all);
    return found;
}

static int worker_gpu(json_t *w) {
    json_t *g = json_object_get(w, "gpu_ids");
    return json_array_size(g) ? (int)json_integer_value(json_array_get(g, 0)) : -1;
}

/* ready workers of model_ref in the orchestrator's registry, in its order;
 * ids into out[] (up to 8) */
static int ready_workers(const struct proc *o, const char *model_ref, char out[8][64]) {
    json_t *all = get_json(o->base, "/v2/workers");
    json_t *ws = json_object_get(all, "workers");
    int n = 0;
    for (size_t i = 0; i < json_array_size(ws) && n < 8; i++) {
        json_t *w = json_array_get(ws, i);
        if (strcmp(js(w, "model_ref"), model_ref) == 0 && strcmp(js(w, "status"), "ready") == 0)
            snprintf(out[n++], 64, "%s", js(w, "worker_id"));
    }
    json_decref(all);
    return n;
}

/* waits until the orchestrator lists n ready workers of model_ref */
static int wait_ready(const struct proc *o, const char *model_ref, int n, char out[8][64]) {
    for (uint64_t t0 = now_ms(); now_ms() - t0 < 60000;) {
        if (ready_workers(o, model_ref, out) >= n) return 1;
        usleep(50000);
    }
    return 0;
}

/* the pool's own state: the worker's status ("gone" when absent) and gpu */
static const char *pool_worker(const struct pool *p, const char *id, int *gpu) {
    static char st[32];
    json_t *s = get_json(p->url, "/v2/state");
    json_t *ws = json_object_get(s, "workers");
    snprintf(st, sizeof st, "gone");
    for (size_t i = 0; i < json_array_size(ws); i++) {
        json_t *w = json_array_get(ws, i);
        if (strcmp(js(w, "worker_id"), id) != 0) continue;
        snprintf(st, sizeof st, "%s", js(w, "status"));
        if (gpu) {
            json_t *g = json_object_get(w, "gpu_ids");
            *gpu = json_array_size(g) ? (int)json_integer_value(json_array_get(g, 0)) : -1;
        }
    }
    json_decref(s);
    return st;
}

static int setup(void **s) {
    (void)s;
    return orch_util_setup("orch-pol");
}
static int teardown(void **s) {
    (void)s;
    return orch_util_teardown();
}

/* ====================================================================================
 * 8. placements on simulated GPUs, on-demand start, LRU eviction of unpinned only
 * ================================================================================== */

/* the memory a worker-cpud reports for stories260K at ctx 256 (its /health):
 * the sizes below are multiples of it, so the test follows the engine */
static uint64_t probe_worker_memory(const char *model) {
    char bin[PATH_MAX];
    if (build_bin(bin, sizeof bin, "worker-cpud") < 0) return 0;
    const char *argv[] = { bin, "--worker-id", "probe", "--model", model, "--port", "0", "--threads", "1",
                           "--ctx-size", "256", NULL };
    struct proc w;
    if (spawn(&w, argv, "probe.log") != 0) return 0;
    json_t *h = get_json(w.base, "/health");
    uint64_t mem = (uint64_t)json_integer_value(json_object_get(h, "memory_bytes"));
    json_decref(h);
    end_pid(w.pid);
    return mem;
}

static uint64_t host_mem_total(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) break;
    if (f) fclose(f);
    return (uint64_t)kb * 1024;
}

static void test_placements_and_lru_on_simulated_gpus(void **s) {
    (void)s;
    char model[PATH_MAX], wbin[PATH_MAX], pbin[PATH_MAX];
    if (model_abs(model) < 0 || build_bin(wbin, sizeof wbin, "worker-cpud") < 0 ||
        build_bin(pbin, sizeof pbin, "pool-managerd") < 0)
        skip();
    uint64_t r = probe_worker_memory(model);
    assert_true(r > 0);
    /* Sizes. need(m) = 1.1 m (orchestrator: estimate + 10 %). The catalog says
     * m = r for every model. The orchestrator's headroom H is larger than the
     * host's RAM, so the host device (always reported) has no room and every
     * start goes to a simulated GPU; each GPU has H + 2.6 r: room for its
     * pinned worker plus exactly one more (2.6 r - r = 1.6 r >= 1.1 r, but
     * 2.6 r - 2 r = 0.6 r < 1.1 r). The pool itself keeps no headroom, so it
     * never refuses a start the orchestrator sends. */
    uint64_t H = host_mem_total() + (1ull << 30);
    uint64_t G = H + r * 26 / 10;
    /* five distinct model files (the registry keys on model_ref) */
    const char *names[] = { "a", "b", "c", "d", "e" };
    char refs[5][PATH_MAX + 8];
    for (int i = 0; i < 5; i++) {
        char p[200];
        snprintf(p, sizeof p, "%s/%s.gguf", DIR_, names[i]);
        copy_file(model, p);
        snprintf(refs[i], sizeof refs[i], "file:%s", p);
    }
    char yaml[8192];
    int n = snprintf(yaml, sizeof yaml, "models:\n");
    for (int i = 0; i < 5; i++) {
        n += snprintf(yaml + n, sizeof yaml - (size_t)n,
                      "  %s:\n    model_ref: '%s'\n    context_length: 256\n    memory_bytes: %llu\n", names[i],
                      refs[i], (unsigned long long)r);
        if (i < 2) n += snprintf(yaml + n, sizeof yaml - (size_t)n, "    placements: [{pool_id: sim1, gpu_id: %d}]\n", i);
    }
    snprintf(yaml + n, sizeof yaml - (size_t)n,
             "scheduling: {headroom_bytes: %llu}\nheartbeat: {interval_ms: 1000}\n"
             "retry: {initial_delay_ms: 100, max_delay_ms: 500}\n", (unsigned long long)H);
    write_text(CFGF, yaml);
    struct proc o;
    int rc = start_orch(&o, "orch.log", NULL);
    if (rc == 77) skip();
    assert_int_equal(rc, 0);

    char pcfg[300], pyaml[2 * PATH_MAX + 512];
    snprintf(pcfg, sizeof pcfg, "%s/pool.yaml", DIR_);
    snprintf(pyaml, sizeof pyaml,
             "inventory: simulated\n"
             "inventory_simulated_devices: [\"SimGPU-0:%llu\", \"SimGPU-1:%llu\"]\n"
             "adapters:\n"
             "  - name: simgpu\n    type: bespoke-cuda\n    binary_path: %s\n    default: true\n"
             "  - name: cpu\n    type: cpu\n    binary_path: %s\n",
             (unsigned long long)G, (unsigned long long)G, wbin, wbin);
    write_text(pcfg, pyaml);
    struct pool pool;
    start_pool(&pool, "pool", (const char *[]){ "--config", pcfg, "--pool-id", "sim1", "--orchestrator-url", o.base,
                                                "--heartbeat-interval-ms", "200", NULL });

    /* the placements alone bring the pinned models up, each on its GPU */
    char wa[8][64], wb[8][64], wc[8][64], wd[8][64], we[8][64];
    if (!wait_ready(&o, refs[0], 1, wa) || !wait_ready(&o, refs[1], 1, wb)) {
        dump_file(o.log);
        dump_file(pool.log);
        fail_msg("pinned workers never became ready");
    }
    json_t *x = orch_worker(&o, wa[0]);
    assert_int_equal(worker_gpu(x), 0);
    assert_true(json_is_true(json_object_get(x, "pinned")));
    json_decref(x);
    x = orch_worker(&o, wb[0]);
    assert_int_equal(worker_gpu(x), 1);
    assert_true(json_is_true(json_object_get(x, "pinned")));
    json_decref(x);
    int g = -2;
    assert_string_equal(pool_worker(&pool, wa[0], &g), "ready");
    assert_int_equal(g, 0); /* the pool accounts it on simulated GPU 0 */
    assert_string_equal(pool_worker(&pool, wb[0], &g), "ready");
    assert_int_equal(g, 1);

    /* jobs land on the pinned GPU's worker */
    for (int i = 0; i < 2; i++) {
        char *w = run_job(&o, "a");
        assert_string_equal(w, wa[0]);
        free(w);
        w = run_job(&o, "b");
        assert_string_equal(w, wb[0]);
        free(w);
    }

    /* an unpinned model: no worker yet; the job starts one on demand */
    assert_int_equal(ready_workers(&o, refs[2], wc), 0);
    char *w = run_job(&o, "c");
    assert_int_equal(ready_workers(&o, refs[2], wc), 1);
    assert_string_equal(w, wc[0]);
    free(w);
    x = orch_worker(&o, wc[0]);
    int gc = worker_gpu(x);
    assert_false(json_is_true(json_object_get(x, "pinned")));
    json_decref(x);
    assert_true(gc == 0 || gc == 1);
    /* the second unpinned model does not fit beside c: it goes to the other GPU */
    w = run_job(&o, "d");
    assert_int_equal(ready_workers(&o, refs[3], wd), 1);
    assert_string_equal(w, wd[0]);
    free(w);
    x = orch_worker(&o, wd[0]);
    int gd = worker_gpu(x);
    json_decref(x);
    assert_int_equal(gd, 1 - gc);
    /* c used again: d is now the least recently used unpinned worker (the
     * pinned ones, last used before both, are older still) */
    w = run_job(&o, "c");
    assert_string_equal(w, wc[0]);
    free(w);
    /* no GPU has room for e: d is evicted (not c, not a pinned one) */
    w = run_job(&o, "e");
    assert_int_equal(ready_workers(&o, refs[4], we), 1);
    assert_string_equal(w, we[0]);
    free(w);
    x = orch_worker(&o, we[0]);
    assert_int_equal(worker_gpu(x), gd);
    json_decref(x);
    int evicted = 0;
    for (uint64_t t0 = now_ms(); now_ms() - t0 < 30000 && !evicted;) {
        evicted = strcmp(pool_worker(&pool, wd[0], NULL), "gone") == 0;
        if (!evicted) usleep(50000);
    }
    if (!evicted) { dump_file(o.log); dump_file(pool.log); }
    assert_true(evicted);
    char evict_kv[128];
    snprintf(evict_kv, sizeof evict_kv, "\"event\":\"evict\",\"worker_id\":\"%s\"", wd[0]);
    assert_true(file_has(o.log, evict_kv));
    /* one eviction only, and never of a pinned worker */
    for (int i = 0; i < 3; i++) {
        const char *keep = i == 0 ? wa[0] : i == 1 ? wb[0] : wc[0];
        char kv[160];
        snprintf(kv, sizeof kv, "\"event\":\"evict\",\"worker_id\":\"%s\"", keep);
        assert_false(file_has(o.log, kv));
    }
    assert_string_equal(pool_worker(&pool, wa[0], &g), "ready");
    assert_int_equal(g, 0);
    assert_string_equal(pool_worker(&pool, wb[0], &g), "ready");
    assert_int_equal(g, 1);
    assert_string_equal(pool_worker(&pool, wc[0], &g), "ready");
    assert_int_equal(g, gc);
    assert_string_equal(pool_worker(&pool, we[0], &g), "ready");
    assert_int_equal(g, gd);
    /* the pinned ones still serve on their GPUs */
    w = run_job(&o, "a");
    assert_string_equal(w, wa[0]);
    free(w);
    w = run_job(&o, "b");
    assert_string_equal(w, wb[0]);
    free(w);
}

/* ====================================================================================
 * 9. Lua policies in the running orchestrator
 * ================================================================================== */
static char g_ref[PATH_MAX + 8];

/* orchestrator with policy_text as its Lua policy, a real pool (host
 * inventory) and two ready workers of the real model; wids in registry order */
static int lua_setup(struct proc *o, struct pool *p, const char *policy_text, char wids[8][64]) {
    char model[PATH_MAX], wbin[PATH_MAX];
    if (model_abs(model) < 0 || build_bin(wbin, sizeof wbin, "worker-cpud") < 0) return 77;
    snprintf(g_ref, sizeof g_ref, "file:%s", model);
    char lua[200], yaml[1024 + PATH_MAX];
    snprintf(lua, sizeof lua, "%s/policy.lua", DIR_);
    write_text(lua, policy_text);
    snprintf(yaml, sizeof yaml,
             "models:\n  stories:\n    model_ref: '%s'\n    context_length: 256\n"
             "scheduling: {policy: 'lua:%s', lua_budget_ms: 50}\nheartbeat: {interval_ms: 1000}\n", g_ref, lua);
    write_text(CFGF, yaml);
    int rc = start_orch(o, "orch.log", NULL);
    if (rc) return rc;
    start_pool(p, "pool", (const char *[]){ "--inventory", "host", "--pool-id", "lp", "--orchestrator-url", o->base,
                                            "--heartbeat-interval-ms", "200", NULL });
    char body[PATH_MAX + 128];
    snprintf(body, sizeof body, "{\"model_ref\":\"%s\",\"worker_type\":\"cpu\",\"ctx_size\":256}", g_ref);
    for (int i = 0; i < 2; i++) { /* one at a time: the pool refuses a second start of a starting model */
        char *resp = NULL;
        long st = req("POST", p->url, "/v2/workers/start", body, &resp);
        if (st != 202) { dump_file(p->log); fail_msg("pool start %d: %ld %s", i, st, resp ? resp : ""); }
        char *id = jstr(resp, "worker_id");
        free(resp);
        int ok = 0;
        for (uint64_t t0 = now_ms(); now_ms() - t0 < 60000 && !ok;) {
            ok = strcmp(pool_worker(p, id, NULL), "ready") == 0;
            if (!ok) usleep(50000);
        }
        free(id);
        assert_true(ok);
    }
    if (!wait_ready(o, g_ref, 2, wids)) { dump_file(o->log); fail_msg("the orchestrator never saw 2 ready workers"); }
    return 0;
}

static void test_lua_last_worker_obeyed(void **s) {
    (void)s;
    struct proc o;
    struct pool p;
    char wids[8][64];
    int rc = lua_setup(&o, &p, "function choose(job, candidates)\n  return #candidates\nend\n", wids);
    if (rc == 77) skip();
    assert_int_equal(rc, 0);
    /* least-loaded would alternate (LRU); the policy picks the last candidate
     * (the registry's order, as /v2/workers lists it) every time */
    for (int i = 0; i < 3; i++) {
        char *w = run_job(&o, "stories");
        if (strcmp(w, wids[1]) != 0) dump_file(o.log);
        assert_string_equal(w, wids[1]);
        free(w);
    }
    assert_false(file_has(o.log, "policy_fallback"));
    assert_true(file_has(o.log, "\"policy\":\"lua\""));
}

static void test_lua_infinite_loop_falls_back(void **s) {
    (void)s;
    struct proc o;
    struct pool p;
    char wids[8][64];
    int rc = lua_setup(&o, &p, "function choose(job, candidates)\n  while true do end\nend\n", wids);
    if (rc == 77) skip();
    assert_int_equal(rc, 0);
    /* each decision is cut off (50 ms budget) and least-loaded decides: the
     * jobs complete promptly and alternate between the two workers (LRU) */
    char *used[3];
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = now_ms();
        used[i] = run_job(&o, "stories");
        uint64_t dt = now_ms() - t0;
        print_message("job %d on %s in %llu ms\n", i, used[i], (unsigned long long)dt);
        assert_true(dt < 5000); /* a policy that is not cut off never returns */
    }
    assert_string_not_equal(used[0], used[1]);
    assert_string_equal(used[0], used[2]);
    for (int i = 0; i < 3; i++) free(used[i]);
    /* reported: a WARN policy_fallback line naming the budget, and the
     * decision log says fallback */
    if (!file_has(o.log, "policy_fallback")) dump_file(o.log);
    assert_true(file_has(o.log, "policy_fallback"));
    assert_true(file_has(o.log, "time budget exceeded"));
    assert_true(file_has(o.log, "\"fallback\":true"));
    /* and counted in /metrics (every one of the three decisions fell back;
     * a job may take more than one decision while it waits) */
    char *m = NULL;
    assert_int_equal(req("GET", o.base, "/metrics", NULL, &m), 200);
    const char *line = strstr(m, "\norchd_policy_fallbacks_total{");
    assert_non_null(line);
    const char *val = strchr(line, '}');
    assert_non_null(val);
    assert_true(atof(val + 1) >= 3.0);
    free(m);
    /* the service is still healthy */
    assert_int_equal(req("GET", o.base, "/health", NULL, NULL), 200);
}

static void test_lua_os_execute_refused(void **s) {
    (void)s;
    char model[PATH_MAX], bin[PATH_MAX];
    if (model_abs(model) < 0 || build_bin(bin, sizeof bin, "orchestratord") < 0) skip();
    char lua[200], marker[200], text[512], yaml[1024 + PATH_MAX];
    snprintf(lua, sizeof lua, "%s/evil.lua", DIR_);
    snprintf(marker, sizeof marker, "%s/pwned", DIR_);
    snprintf(text, sizeof text,
             "os.execute('touch %s')\nfunction choose(job, candidates) return 1 end\n", marker);
    write_text(lua, text);
    snprintf(yaml, sizeof yaml,
             "models:\n  stories:\n    model_ref: 'file:%s'\n    context_length: 256\n"
             "scheduling: {policy: 'lua:%s'}\n", model, lua);
    write_text(CFGF, yaml);
    char log[300];
    snprintf(log, sizeof log, "%s/orch-evil.log", DIR_);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(bin, bin, "--config", CFGF, "--bind", "127.0.0.1:0", "--state", DB, (char *)NULL);
        _exit(127);
    }
    track(pid);
    int st = 0, done = 0;
    for (uint64_t t0 = now_ms(); now_ms() - t0 < 30000 && !done;) {
        done = waitpid(pid, &st, WNOHANG) == pid;
        if (!done) usleep(20000);
    }
    if (!done) dump_file(log);
    assert_true(done); /* it does not start */
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2); /* a configuration error */
    assert_int_equal(access(marker, F_OK), -1); /* and nothing ran */
    if (!file_has(log, "lua policy")) dump_file(log);
    assert_true(file_has(log, "lua policy"));
}

/* ====================================================================================
 * 10. lab: pool calls without the token are refused and change nothing
 * ================================================================================== */
static void test_lab_auth_no_state_change(void **s) {
    (void)s;
    char model[PATH_MAX], wbin[PATH_MAX], pbin[PATH_MAX];
    if (model_abs(model) < 0 || build_bin(wbin, sizeof wbin, "worker-cpud") < 0 ||
        build_bin(pbin, sizeof pbin, "pool-managerd") < 0)
        skip();
    char yaml[1024 + PATH_MAX];
    /* long heartbeat interval: the real pool's state stays put while the test compares */
    snprintf(yaml, sizeof yaml,
             "deployment: lab\nauth: {pool_tokens: [pool-secret]}\n"
             "models:\n  stories:\n    model_ref: 'file:%s'\n    context_length: 256\n"
             "    placements: [{pool_id: good, gpu_id: -1}]\n"
             "heartbeat: {interval_ms: 60000}\n", model);
    write_text(CFGF, yaml);
    struct proc o;
    int rc = start_orch(&o, "orch.log", NULL);
    if (rc == 77) skip();
    assert_int_equal(rc, 0);
    /* real pools without the token and with a wrong one: never admitted */
    struct pool bad1, bad2, good;
    start_pool(&bad1, "pool-notoken", (const char *[]){ "--inventory", "host", "--pool-id", "evil1",
                                                        "--orchestrator-url", o.base, "--heartbeat-interval-ms",
                                                        "200", NULL });
    start_pool(&bad2, "pool-badtoken", (const char *[]){ "--inventory", "host", "--pool-id", "evil2",
                                                         "--orchestrator-url", o.base, "--orchestrator-token", "guess",
                                                         "--heartbeat-interval-ms", "200", NULL });
    /* the right one registers and gets the pinned model started */
    start_pool(&good, "pool-good", (const char *[]){ "--inventory", "host", "--pool-id", "good", "--orchestrator-url",
                                                     o.base, "--orchestrator-token", "pool-secret",
                                                     "--heartbeat-interval-ms", "60000", NULL });
    char model_ref[PATH_MAX + 8], wids[8][64];
    snprintf(model_ref, sizeof model_ref, "file:%s", model);
    /* the good pool's next heartbeat is 60 s away: the worker it starts shows
     * up in the orchestrator only as "starting"; that is the state to keep */
    int up = 0;
    for (uint64_t t0 = now_ms(); now_ms() - t0 < 30000 && !up;) {
        char *d = NULL;
        req("GET", o.base, "/v2/pools", NULL, &d);
        up = d && strstr(d, "\"pool_id\":\"good\"") && strstr(d, "\"available\":true");
        free(d);
        if (!up) usleep(50000);
    }
    if (!up) { dump_file(o.log); dump_file(good.log); }
    assert_true(up);
    /* the refused pools have tried by now (they retry; give them a moment) */
    for (uint64_t t0 = now_ms(); now_ms() - t0 < 20000;) {
        if (file_has(bad1.log, "401") && file_has(bad2.log, "401")) break;
        usleep(50000);
    }
    usleep(500000); /* the start the placement asked for settles into the registry */
    char *pools0 = NULL, *workers0 = NULL;
    assert_int_equal(req("GET", o.base, "/v2/pools", NULL, &pools0), 200);
    assert_int_equal(req("GET", o.base, "/v2/workers", NULL, &workers0), 200);
    assert_null(strstr(pools0, "evil1"));
    assert_null(strstr(pools0, "evil2"));
    assert_non_null(strstr(pools0, "\"pool_id\":\"good\""));
    (void)wids;

    /* forged calls by the test */
    char body[1024];
    snprintf(body, sizeof body, "{\"pool_id\":\"evil3\",\"endpoint\":\"http://127.0.0.1:9\",\"devices\":[{\"gpu_id\":-1,"
                                "\"total_bytes\":8000000000,\"free_bytes\":6000000000}]}");
    const char *tokens[] = { NULL, "Authorization: Bearer wrong", "Authorization: Basic cG9vbC1zZWNyZXQ=",
                             "Authorization: Bearer pool-secretX", "Authorization: Bearer " };
    for (size_t t = 0; t < sizeof tokens / sizeof *tokens; t++) {
        g_auth = tokens[t];
        /* a new pool */
        assert_int_equal(req("POST", o.base, "/v2/pools/register", body, NULL), 401);
        /* taking over the good pool's id with another endpoint */
        char take[512];
        snprintf(take, sizeof take, "{\"pool_id\":\"good\",\"endpoint\":\"http://127.0.0.1:9\",\"devices\":[]}");
        assert_int_equal(req("POST", o.base, "/v2/pools/register", take, NULL), 401);
        /* a heartbeat for it that would empty its devices and workers */
        char hb[512];
        snprintf(hb, sizeof hb, "{\"pool_id\":\"good\",\"ts\":%llu,\"devices\":[],\"workers\":[]}",
                 (unsigned long long)util_wall_ms());
        assert_int_equal(req("POST", o.base, "/v2/pools/good/heartbeat", hb, NULL), 401);
        /* and for a pool that does not exist */
        assert_int_equal(req("POST", o.base, "/v2/pools/evil3/heartbeat", hb, NULL), 401);
        /* a worker-failed report */
        assert_int_equal(req("POST", o.base, "/v2/internal/workers/failed", "{\"worker_id\":\"x\"}", NULL), 401);
    }
    g_auth = NULL;
    char *pools1 = NULL, *workers1 = NULL;
    assert_int_equal(req("GET", o.base, "/v2/pools", NULL, &pools1), 200);
    assert_int_equal(req("GET", o.base, "/v2/workers", NULL, &workers1), 200);
    if (strcmp(pools0, pools1) || strcmp(workers0, workers1))
        fail_msg("state changed:\n%s\n%s\n%s\n%s", pools0, pools1, workers0, workers1);
    /* the refusals are logged with a token fingerprint, never the token */
    assert_true(file_has(o.log, "\"token_fp\""));
    assert_false(file_has(o.log, "pool-secretX"));
    assert_false(file_has(o.log, "guess"));
    /* the same heartbeat with the token is accepted (the refusals were about the token) */
    g_auth = "Authorization: Bearer pool-secret";
    char hb[512];
    snprintf(hb, sizeof hb, "{\"pool_id\":\"good\",\"ts\":%llu,\"devices\":[],\"workers\":[]}",
             (unsigned long long)util_wall_ms() + 1000);
    assert_int_equal(req("POST", o.base, "/v2/pools/good/heartbeat", hb, NULL), 200);
    g_auth = NULL;
    char *pools2 = NULL; /* and it does change what the forged ones could not */
    assert_int_equal(req("GET", o.base, "/v2/pools", NULL, &pools2), 200);
    assert_string_not_equal(pools0, pools2);
    free(pools2);
    free(pools0);
    free(pools1);
    free(workers0);
    free(workers1);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_placements_and_lru_on_simulated_gpus, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lua_last_worker_obeyed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lua_infinite_loop_falls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lua_os_execute_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lab_auth_no_state_change, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
