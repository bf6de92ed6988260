// test-libs: llorch_orchcore llorch_core
/* sched: each built-in policy's choice on crafted registries; start,
 * placement, eviction, wait and reject paths; Lua policies: a valid choice
 * is used; an endless loop is stopped within the budget and falls back; os /
 * io / require / load / pcall are absent; unbounded allocation hits the cap. */
#include "testutil.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "orch/core/sched.h"

#include <errno.h>
#include <unistd.h>

#define GiB (1ull << 30)

static struct registry *R;

static void add_pool(const char *id, int ngpu, uint64_t free0, uint64_t free1) {
    struct reg_pool f;
    memset(&f, 0, sizeof f);
    snprintf(f.id, sizeof f.id, "%s", id);
    snprintf(f.endpoint, sizeof f.endpoint, "http://127.0.0.1:1");
    f.ndev = ngpu;
    for (int i = 0; i < ngpu; i++)
        f.dev[i] = (struct reg_device){ .gpu_id = i, .total_bytes = 24 * GiB, .free_bytes = i ? free1 : free0 };
    char err[128];
    assert_int_equal(reg_pool_register(R, &f, 1000, err, sizeof err), 0);
}

static void add_worker(const char *id, const char *pool, const char *model, enum reg_worker_status st, int gpu,
                       int64_t last_used, unsigned caps) {
    struct reg_worker w;
    memset(&w, 0, sizeof w);
    snprintf(w.id, sizeof w.id, "%s", id);
    snprintf(w.pool_id, sizeof w.pool_id, "%s", pool);
    snprintf(w.model_ref, sizeof w.model_ref, "%s", model);
    w.caps = caps;
    w.status = st;
    w.memory_bytes = 6 * GiB;
    w.gpu_ids[0] = gpu;
    w.ngpu = 1;
    w.last_used_ms = last_used;
    assert_int_equal(reg_worker_upsert(R, &w, 1000), 0);
    if (st == REG_W_BUSY) {
        struct reg_worker *x = reg_worker_get(R, id);
        x->status = REG_W_READY;
        assert_int_equal(reg_worker_acquire(R, id, last_used), 0);
    }
}

static int setup(void **s) {
    (void)s;
    log_set_level(LOG_ERROR); /* decisions log at INFO; keep test output readable */
    struct reg_opts o = { .heartbeat_interval_ms = 1000, .missed_threshold = 3, .max_clock_skew_ms = 500 };
    return reg_new(&o, &R);
}
static int teardown(void **s) {
    (void)s;
    reg_free(R);
    R = NULL;
    return 0;
}

static struct sched *mk(const char *policy, int eviction) {
    struct sched_opts o = { .policy = policy, .eviction = eviction, .lua_budget_ms = 50 };
    struct sched *s = NULL;
    char err[256];
    int rc = sched_new(&o, &s, err, sizeof err);
    if (rc) fail_msg("sched_new: %s", err);
    return s;
}

static struct sched_job J = { .job_id = "job-1", .model_ref = "qwen", .capability = CAP_TEXT_GEN,
                              .est_bytes = 5 * GiB, .prio = JOB_PRIO_INTERACTIVE };

static void decide(struct sched *s, struct sched_decision *d) {
    assert_int_equal(sched_decide(s, R, &J, 2000, d), 0);
}

static void test_least_loaded(void **st) {
    (void)st;
    add_pool("pa", 2, 20 * GiB, 20 * GiB);
    add_pool("pb", 1, 20 * GiB, 0);
    add_worker("a-busy", "pa", "qwen", REG_W_BUSY, 0, 100, CAP_TEXT_GEN);
    add_worker("a-idle", "pa", "qwen", REG_W_READY, 1, 100, CAP_TEXT_GEN);
    add_worker("b-idle", "pb", "qwen", REG_W_READY, 0, 900, CAP_TEXT_GEN);
    add_worker("b-other", "pb", "tiny", REG_W_READY, 0, 50, CAP_TEXT_GEN);
    add_worker("b-embed", "pb", "qwen", REG_W_READY, 0, 10, CAP_EMBEDDING); /* wrong capability */
    struct sched *s = mk("least-loaded", 1);
    struct sched_decision d;
    decide(s, &d);
    assert_int_equal(d.action, SCHED_DISPATCH);
    assert_string_equal(d.worker_id, "b-idle"); /* pool pb has 0 of 3 busy; pa 1 of 2 */
    assert_int_equal(d.n_candidates, 2);
    /* equal load: least recently used wins */
    assert_int_equal(reg_worker_acquire(R, "b-other", 100), 0);
    assert_int_equal(reg_worker_acquire(R, "b-embed", 100), 0);
    /* pa: 1/2 busy, pb: 2/3 busy -> pa */
    decide(s, &d);
    assert_string_equal(d.worker_id, "a-idle");
    sched_free(s);
}

static void test_most_vram_free(void **st) {
    (void)st;
    add_pool("pa", 2, 3 * GiB, 18 * GiB);
    add_pool("pb", 1, 9 * GiB, 0);
    add_worker("w0", "pa", "qwen", REG_W_READY, 0, 1, CAP_TEXT_GEN);
    add_worker("w1", "pa", "qwen", REG_W_READY, 1, 1, CAP_TEXT_GEN);
    add_worker("w2", "pb", "qwen", REG_W_READY, 0, 1, CAP_TEXT_GEN);
    struct sched *s = mk("most-vram-free", 1);
    struct sched_decision d;
    decide(s, &d);
    assert_int_equal(d.action, SCHED_DISPATCH);
    assert_string_equal(d.worker_id, "w1");
    assert_int_equal(d.gpu_id, 1);
    sched_free(s);
}

static void test_round_robin(void **st) {
    (void)st;
    add_pool("pa", 1, 20 * GiB, 0);
    add_worker("w2", "pa", "qwen", REG_W_READY, 0, 1, CAP_TEXT_GEN);
    add_worker("w1", "pa", "qwen", REG_W_READY, 0, 1, CAP_TEXT_GEN);
    add_worker("w3", "pa", "qwen", REG_W_READY, 0, 1, CAP_TEXT_GEN);
    struct sched *s = mk("round-robin", 1);
    struct sched_decision d;
    const char *want[] = { "w1", "w2", "w3", "w1", "w2" };
    for (int i = 0; i < 5; i++) {
        decide(s, &d);
        assert_string_equal(d.worker_id, want[i]);
    }
    sched_free(s);
}

static void test_unavailable_pool_and_wait(void **st) {
    (void)st;
    add_pool("pa", 1, 20 * GiB, 0);
    add_worker("w1", "pa", "qwen", REG_W_READY, 0, 1, CAP_TEXT_GEN);
    struct sched *s = mk("least-loaded", 1);
    struct sched_decision d;
    /* pool last seen at 1000; window 3000 -> gone at 4001 */
    assert_int_equal(sched_decide(s, R, &J, 4001, &d), 0);
    assert_int_equal(d.action, SCHED_WAIT);
    assert_int_equal(d.error_code, ERR_POOL_UNAVAILABLE);
    /* a starting worker for the model: wait for it rather than start another */
    add_worker("w2", "pa", "qwen", REG_W_STARTING, 0, 1, CAP_TEXT_GEN);
    assert_int_equal(reg_worker_acquire(R, "w1", 1500), 0);
    decide(s, &d);
    assert_int_equal(d.action, SCHED_WAIT);
    assert_non_null(strstr(d.reason, "starting"));
    sched_free(s);
}

static void test_start_and_placement(void **st) {
    (void)st;
    add_pool("pa", 2, 4 * GiB, 12 * GiB);  /* gpu1 fits 5.5 GiB */
    add_pool("pb", 1, 20 * GiB, 0);
    struct sched *s = mk("most-vram-free", 1);
    struct sched_decision d;
    decide(s, &d);
    assert_int_equal(d.action, SCHED_START);
    assert_string_equal(d.pool_id, "pb");
    assert_int_equal(d.gpu_id, 0);
    assert_true(d.need_bytes == sched_need_bytes(5 * GiB));
    assert_true(d.need_bytes >= 5 * GiB + GiB / 2);
    assert_string_equal(d.evict_worker_id, "");
    assert_int_equal(d.n_busy, 0);
    /* a placement restricts starts to its device */
    assert_int_equal(reg_placement_add(R, "qwen", "pa", 1), 0);
    decide(s, &d);
    assert_int_equal(d.action, SCHED_START);
    assert_string_equal(d.pool_id, "pa");
    assert_int_equal(d.gpu_id, 1);
    /* a starting worker's estimate counts against the device */
    sched_free(s);
}

static void test_scale_out_and_busy_wait(void **st) {
    (void)st;
    add_pool("pa", 1, 20 * GiB, 0);
    add_worker("w1", "pa", "qwen", REG_W_BUSY, 0, 1, CAP_TEXT_GEN);
    struct sched *s = mk("least-loaded", 1);
    struct sched_decision d;
    decide(s, &d); /* busy, but room for a replica: start one */
    assert_int_equal(d.action, SCHED_START);
    assert_int_equal(d.n_busy, 1);
    /* no room for a replica: wait for the busy worker (never evict for it) */
    add_worker("other", "pa", "tiny", REG_W_READY, 0, 1, CAP_TEXT_GEN);
    struct reg_pool *p = (struct reg_pool *)reg_pool_get(R, "pa");
    p->dev[0].free_bytes = 1 * GiB;
    decide(s, &d);
    assert_int_equal(d.action, SCHED_WAIT);
    assert_non_null(strstr(d.reason, "busy"));
    sched_free(s);
}

static void test_eviction(void **st) {
    (void)st;
    add_pool("pa", 1, 1 * GiB, 0);
    add_worker("old", "pa", "tiny", REG_W_READY, 0, 100, CAP_TEXT_GEN);
    add_worker("new", "pa", "tiny2", REG_W_READY, 0, 900, CAP_TEXT_GEN);
    add_worker("oldest-pinned", "pa", "pinned", REG_W_READY, 0, 1, CAP_TEXT_GEN);
    add_worker("busy", "pa", "busy", REG_W_BUSY, 0, 0, CAP_TEXT_GEN);
    assert_int_equal(reg_placement_add(R, "pinned", "pa", 0), 0);
    struct sched *s = mk("least-loaded", 1);
    struct sched_decision d;
    decide(s, &d);
    assert_int_equal(d.action, SCHED_START);
    assert_string_equal(d.evict_worker_id, "old"); /* LRU among idle unpinned */
    assert_string_equal(d.pool_id, "pa");
    sched_free(s);
    s = mk("least-loaded", 0); /* eviction off */
    decide(s, &d);
    assert_int_equal(d.action, SCHED_WAIT);
    assert_int_equal(d.error_code, ERR_NO_CAPACITY);
    sched_free(s);
}

static void test_reject(void **st) {
    (void)st;
    add_pool("pa", 1, 20 * GiB, 0); /* total 24 GiB */
    struct sched *s = mk("least-loaded", 1);
    struct sched_job big = J;
    big.est_bytes = 30 * GiB;
    struct sched_decision d;
    assert_int_equal(sched_decide(s, R, &big, 2000, &d), 0);
    assert_int_equal(d.action, SCHED_REJECT);
    assert_int_equal(d.error_code, ERR_NO_CAPACITY);
    sched_free(s);
}

/* ---- Lua ---------------------------------------------------------------- */
static struct sched *mk_lua(const char *text, size_t cap, char *err, size_t errlen, int *rc) {
    /* a memory-cap test gets a long time budget so the cap, not the clock, stops it */
    struct sched_opts o = { .policy = "least-loaded", .eviction = 1, .lua_budget_ms = cap ? 5000 : 50,
                            .lua_mem_cap = cap };
    struct sched *s = NULL;
    assert_int_equal(sched_new(&o, &s, err, errlen), 0);
    *rc = sched_set_lua_text(s, text, err, errlen);
    return s;
}

static void three_workers(void) {
    add_pool("pa", 1, 20 * GiB, 0);
    add_pool("pb", 1, 20 * GiB, 0);
    add_worker("w1", "pa", "qwen", REG_W_BUSY, 0, 1, CAP_TEXT_GEN);
    add_worker("w2", "pa", "qwen", REG_W_READY, 0, 5, CAP_TEXT_GEN);
    add_worker("w3", "pb", "qwen", REG_W_READY, 0, 7, CAP_TEXT_GEN);
}

static void test_lua_valid_choice(void **st) {
    (void)st;
    three_workers();
    char err[256];
    int rc;
    /* picks the most recently used candidate: the opposite of least-loaded's LRU tie-break */
    struct sched *s = mk_lua("function choose(job, c)\n"
                             "  assert(job.kind == 'dispatch' and job.model == 'qwen')\n"
                             "  local best = 1\n"
                             "  for i, w in ipairs(c) do if w.last_used_ms < c[best].last_used_ms then best = i end end\n"
                             "  for i, w in ipairs(c) do if w.pool_id == 'pa' then return i end end\n"
                             "  return best\n"
                             "end\n",
                             0, err, sizeof err, &rc);
    assert_int_equal(rc, 0);
    struct sched_decision d;
    decide(s, &d);
    assert_int_equal(d.action, SCHED_DISPATCH);
    assert_string_equal(d.worker_id, "w2"); /* least-loaded would pick w3 (pool pb idle) */
    assert_int_equal(d.used_fallback, 0);
    struct sched_stats stt;
    sched_get_stats(s, &stt);
    assert_int_equal(stt.lua_calls, 1);
    assert_int_equal(stt.lua_fallbacks, 0);
    sched_free(s);
}

static void test_lua_endless_loop(void **st) {
    (void)st;
    three_workers();
    char err[256];
    int rc;
    struct sched *s = mk_lua("function choose(job, c) while true do end end", 0, err, sizeof err, &rc);
    assert_int_equal(rc, 0);
    struct sched_decision d;
    uint64_t t0 = util_now_ns();
    decide(s, &d);
    uint64_t ms = (util_now_ns() - t0) / 1000000;
    assert_true(ms < 2000); /* stopped (budget 50 ms; generous bound for loaded CI) */
    assert_int_equal(d.action, SCHED_DISPATCH);
    assert_int_equal(d.used_fallback, 1);
    assert_string_equal(d.worker_id, "w3"); /* least-loaded's choice */
    struct sched_stats stt;
    sched_get_stats(s, &stt);
    assert_int_equal(stt.lua_fallbacks, 1);
    assert_non_null(strstr(stt.last_fallback, "time budget"));
    /* the state still works for the next decision (and fails the same way) */
    decide(s, &d);
    sched_get_stats(s, &stt);
    assert_int_equal(stt.lua_fallbacks, 2);
    sched_free(s);

    /* an endless loop at load time is a load error, not a hang */
    s = mk_lua("while true do end", 0, err, sizeof err, &rc);
    assert_true(rc < 0);
    assert_non_null(strstr(err, "time budget"));
    sched_free(s);
}

static void test_lua_sandbox(void **st) {
    (void)st;
    three_workers();
    const char *bad[] = {
        "function choose(j, c) os.execute('touch /tmp/llorch-pwned') return 1 end",
        "function choose(j, c) io.open('/etc/passwd') return 1 end",
        "function choose(j, c) require('os') return 1 end",
        "function choose(j, c) load('return 1')() return 1 end",
        "function choose(j, c) dofile('/etc/passwd') return 1 end",
        "function choose(j, c) return pcall(function() return 1 end) and 1 end",
        "function choose(j, c) return debug.getinfo(1) and 1 end",
        "function choose(j, c) return string.find('a', 'a') end",
        "function choose(j, c) return ('a'):find('a') end",
        "function choose(j, c) return string.dump(choose) and 1 end",
        "function choose(j, c) return setmetatable({}, {__gc = function() end}) and 1 end",
        "function choose(j, c) return 0 end",
        "function choose(j, c) return #c + 1 end",
        "function choose(j, c) return 'w2' end",
        "function choose(j, c) error('policy says no') end",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256];
        int rc;
        struct sched *s = mk_lua(bad[i], 0, err, sizeof err, &rc);
        assert_int_equal(rc, 0);
        struct sched_decision d;
        decide(s, &d);
        if (!d.used_fallback) fail_msg("script %zu was not rejected: %s", i, bad[i]);
        assert_int_equal(d.action, SCHED_DISPATCH);
        assert_string_equal(d.worker_id, "w3");
        sched_free(s);
    }
    assert_int_equal(access("/tmp/llorch-pwned", F_OK), -1);
    /* a precompiled (binary) chunk is refused at load */
    char err[256];
    int rc;
    struct sched *s = mk_lua("\x1bLua\x54", 0, err, sizeof err, &rc);
    assert_true(rc < 0);
    sched_free(s);
    /* no choose() */
    s = mk_lua("x = 1", 0, err, sizeof err, &rc);
    assert_true(rc < 0);
    assert_non_null(strstr(err, "choose"));
    sched_free(s);
}

static void test_lua_memory_cap(void **st) {
    (void)st;
    three_workers();
    char err[256];
    int rc;
    struct sched *s = mk_lua("t = {}\n"
                             "function choose(j, c)\n"
                             "  local i = 0\n"
                             "  while true do i = i + 1; t[i] = string.rep('x', 1024) .. i end\n"
                             "end\n",
                             1u << 20, err, sizeof err, &rc);
    assert_int_equal(rc, 0);
    struct sched_decision d;
    decide(s, &d);
    assert_int_equal(d.used_fallback, 1);
    struct sched_stats stt;
    sched_get_stats(s, &stt);
    if (!strstr(stt.last_fallback, "memory")) fail_msg("fallback reason: %s", stt.last_fallback);
    sched_free(s);
}

static void test_lua_file_and_start(void **st) {
    (void)st;
    add_pool("pa", 2, 10 * GiB, 20 * GiB);
    char path[] = "/tmp/llorch-policy-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *script = "function choose(job, c)\n"
                         "  if job.kind ~= 'start' then return 1 end\n"
                         "  for i, d in ipairs(c) do if d.gpu_id == 0 then return i end end\n"
                         "  return 1\n"
                         "end\n";
    assert_int_equal(write(fd, script, strlen(script)), (ssize_t)strlen(script));
    close(fd);
    char pol[64];
    snprintf(pol, sizeof pol, "lua:%s", path);
    struct sched *s = mk(pol, 1);
    assert_int_equal(sched_policy(s), SCHED_LUA);
    struct sched_decision d;
    decide(s, &d);
    assert_int_equal(d.action, SCHED_START);
    assert_int_equal(d.gpu_id, 0); /* most room would be gpu 1 */
    assert_int_equal(d.used_fallback, 0);
    sched_free(s);
    unlink(path);
    /* unknown policy and missing file are configuration errors */
    struct sched_opts o = { .policy = "fastest" };
    char err[256];
    assert_true(sched_new(&o, &s, err, sizeof err) < 0);
    o.policy = "lua:/nonexistent/p.lua";
    assert_true(sched_new(&o, &s, err, sizeof err) < 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_least_loaded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_most_vram_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_robin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unavailable_pool_and_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_and_placement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scale_out_and_busy_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lua_valid_choice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lua_endless_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lua_sandbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lua_memory_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lua_file_and_start, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
