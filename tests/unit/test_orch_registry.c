// test-libs: llorch_orchcore llorch_core
/* registry: availability windows, heartbeat validation (id match, identity,
 * replay/stale/future timestamps), conflicting re-registration, worker
 * reconciliation, acquire/release, placements, device room. */
#include "testutil.h"

#include "orch/core/registry.h"

#include <errno.h>

static struct registry *mk(void) {
    struct reg_opts o = { .heartbeat_interval_ms = 1000, .missed_threshold = 3, .max_clock_skew_ms = 500 };
    struct registry *r;
    assert_int_equal(reg_new(&o, &r), 0);
    return r;
}

static void pool_facts(struct reg_pool *p, const char *id, const char *fp) {
    memset(p, 0, sizeof *p);
    snprintf(p->id, sizeof p->id, "%s", id);
    snprintf(p->endpoint, sizeof p->endpoint, "http://127.0.0.1:9200");
    snprintf(p->token_fp, sizeof p->token_fp, "%s", fp);
    p->ndev = 2;
    p->dev[0] = (struct reg_device){ .gpu_id = 0, .total_bytes = 80ull << 30, .free_bytes = 70ull << 30 };
    p->dev[1] = (struct reg_device){ .gpu_id = REG_HOST_DEVICE, .total_bytes = 64ull << 30, .free_bytes = 32ull << 30 };
}

/* mk() with pool p1 (pool_facts into f, token fingerprint fp) registered at now_ms */
static struct registry *mk_p1(struct reg_pool *f, const char *fp, int64_t now_ms) {
    struct registry *r = mk();
    char err[256];
    pool_facts(f, "p1", fp);
    assert_int_equal(reg_pool_register(r, f, now_ms, err, sizeof err), 0);
    return r;
}

static struct reg_worker wk(const char *id, const char *pool, const char *model, enum reg_worker_status st, int gpu) {
    struct reg_worker w;
    memset(&w, 0, sizeof w);
    snprintf(w.id, sizeof w.id, "%s", id);
    snprintf(w.pool_id, sizeof w.pool_id, "%s", pool);
    snprintf(w.model_ref, sizeof w.model_ref, "%s", model);
    w.caps = CAP_TEXT_GEN;
    w.status = st;
    w.memory_bytes = 4ull << 30;
    if (gpu >= 0) { w.gpu_ids[0] = gpu; w.ngpu = 1; }
    return w;
}

static void test_register_and_availability(void **s) {
    (void)s;
    struct reg_pool f;
    char err[256];
    struct registry *r = mk_p1(&f, "abc123", 10000);
    const struct reg_pool *p = reg_pool_get(r, "p1");
    assert_non_null(p);
    assert_true(reg_pool_available(r, p, 10000));
    assert_true(reg_pool_available(r, p, 13000));   /* 3 intervals: still in */
    assert_false(reg_pool_available(r, p, 13001));  /* missed the threshold */
    assert_int_equal(reg_pools_available(r, 13001), 0);
    /* another identity cannot take the id */
    pool_facts(&f, "p1", "ffffff");
    assert_int_equal(reg_pool_register(r, &f, 10500, err, sizeof err), -EEXIST);
    assert_string_equal(reg_pool_get(r, "p1")->token_fp, "abc123");
    /* the same identity can (pool restarted on a new port) */
    pool_facts(&f, "p1", "abc123");
    snprintf(f.endpoint, sizeof f.endpoint, "http://127.0.0.1:9300");
    assert_int_equal(reg_pool_register(r, &f, 20000, err, sizeof err), 0);
    assert_string_equal(reg_pool_get(r, "p1")->endpoint, "http://127.0.0.1:9300");
    assert_true(reg_pool_available(r, reg_pool_get(r, "p1"), 20000));
    /* hostile input */
    pool_facts(&f, "bad id!", "");
    assert_int_equal(reg_pool_register(r, &f, 1, err, sizeof err), -EINVAL);
    pool_facts(&f, "p2", "");
    f.dev[0].free_bytes = f.dev[0].total_bytes + 1;
    assert_int_equal(reg_pool_register(r, &f, 1, err, sizeof err), -EINVAL);
    pool_facts(&f, "p2", "");
    f.dev[1].gpu_id = 0;
    assert_int_equal(reg_pool_register(r, &f, 1, err, sizeof err), -EINVAL);
    assert_int_equal(reg_pool_count(r), 1);
    reg_free(r);
}

static void test_heartbeat_rules(void **s) {
    (void)s;
    struct reg_pool f;
    char err[256];
    struct registry *r = mk_p1(&f, "abc123", 10000);
    struct reg_worker ws[2] = { wk("w1", "p1", "m", REG_W_READY, 0), wk("w2", "p1", "m", REG_W_STARTING, 0) };
    struct reg_heartbeat hb = { .pool_id = "p1", .ts_ms = 10100, .token_fp = "abc123", .dev = f.dev, .ndev = 2,
                                .workers = ws, .nworkers = 2 };
    assert_int_equal(reg_pool_heartbeat(r, "p2", &hb, 10100, err, sizeof err), -EINVAL); /* URL != payload */
    assert_non_null(strstr(err, "URL"));
    hb.pool_id = "p9";
    assert_int_equal(reg_pool_heartbeat(r, "p9", &hb, 10100, err, sizeof err), -ENOENT);
    hb.pool_id = "p1";
    hb.token_fp = "000000";
    assert_int_equal(reg_pool_heartbeat(r, "p1", &hb, 10100, err, sizeof err), -EPERM);
    hb.token_fp = "abc123";
    hb.ts_ms = 20000; /* in the future beyond the skew */
    assert_int_equal(reg_pool_heartbeat(r, "p1", &hb, 10100, err, sizeof err), -ESTALE);
    hb.ts_ms = 10100 - 500 - 3000 - 1; /* older than skew + window */
    assert_int_equal(reg_pool_heartbeat(r, "p1", &hb, 10100, err, sizeof err), -ESTALE);
    assert_int_equal(reg_worker_count(r), 0); /* nothing applied by refused heartbeats */
    hb.ts_ms = 10100;
    assert_int_equal(reg_pool_heartbeat(r, "p1", &hb, 10100, err, sizeof err), 0);
    assert_int_equal(reg_worker_count(r), 2);
    assert_int_equal(reg_pool_heartbeat(r, "p1", &hb, 10200, err, sizeof err), -ESTALE); /* replay */
    assert_non_null(strstr(err, "replayed"));
    hb.ts_ms = 10050;
    assert_int_equal(reg_pool_heartbeat(r, "p1", &hb, 10200, err, sizeof err), -ESTALE); /* older */

    /* a heartbeat keeps the pool available */
    hb.ts_ms = 13500;
    assert_int_equal(reg_pool_heartbeat(r, "p1", &hb, 13500, err, sizeof err), 0);
    assert_true(reg_pool_available(r, reg_pool_get(r, "p1"), 16000));

    /* the orchestrator's busy state survives a heartbeat that says ready */
    assert_int_equal(reg_worker_acquire(r, "w1", 13600), 0);
    assert_int_equal(reg_worker_acquire(r, "w1", 13600), -EBUSY);
    hb.ts_ms = 13700;
    assert_int_equal(reg_pool_heartbeat(r, "p1", &hb, 13700, err, sizeof err), 0);
    assert_int_equal(reg_worker_get(r, "w1")->status, REG_W_BUSY);
    assert_int_equal(reg_worker_release(r, "w1", 14000), 0);
    assert_int_equal(reg_worker_get(r, "w1")->status, REG_W_READY);
    assert_int_equal(reg_worker_get(r, "w1")->last_used_ms, 14000);
    /* draining (being stopped) survives a heartbeat that still says ready */
    assert_int_equal(reg_worker_set_status(r, "w1", REG_W_DRAINING), 0);
    hb.ts_ms = 13800;
    assert_int_equal(reg_pool_heartbeat(r, "p1", &hb, 13800, err, sizeof err), 0);
    assert_int_equal(reg_worker_get(r, "w1")->status, REG_W_DRAINING);
    assert_int_equal(reg_worker_acquire(r, "w1", 13900), -EBUSY);
    assert_int_equal(reg_worker_set_status(r, "w1", REG_W_READY), 0);

    /* full state: w2 no longer listed -> removed; a worker we just commanded
     * (starting, created now) survives one heartbeat that does not list it */
    struct reg_worker cmd = wk("w3", "p1", "m2", REG_W_STARTING, 0);
    assert_int_equal(reg_worker_upsert(r, &cmd, 14000), 0);
    hb.nworkers = 1;
    hb.ts_ms = 14100;
    assert_int_equal(reg_pool_heartbeat(r, "p1", &hb, 14100, err, sizeof err), 0);
    assert_null(reg_worker_get(r, "w2"));
    assert_non_null(reg_worker_get(r, "w3"));
    hb.ts_ms = 18000; /* long after: the start evidently failed */
    assert_int_equal(reg_pool_heartbeat(r, "p1", &hb, 18000, err, sizeof err), 0);
    assert_null(reg_worker_get(r, "w3"));
    assert_int_equal(reg_worker_count(r), 1);

    /* a worker claiming another pool in this pool's heartbeat is refused */
    struct reg_worker foreign = wk("w9", "p2", "m", REG_W_READY, 0);
    hb.workers = &foreign;
    hb.ts_ms = 18100;
    assert_int_equal(reg_pool_heartbeat(r, "p1", &hb, 18100, err, sizeof err), -EINVAL);
    reg_free(r);
}

static void test_placements_and_room(void **s) {
    (void)s;
    struct reg_pool f;
    struct registry *r = mk_p1(&f, "", 0);
    struct reg_worker a = wk("wa", "p1", "qwen", REG_W_READY, 0);
    struct reg_worker b = wk("wb", "p1", "qwen", REG_W_STARTING, 0);
    b.memory_bytes = 10ull << 30;
    struct reg_worker c = wk("wc", "p1", "tiny", REG_W_READY, -1);
    assert_int_equal(reg_worker_upsert(r, &a, 0), 0);
    assert_int_equal(reg_worker_upsert(r, &b, 0), 0);
    assert_int_equal(reg_worker_upsert(r, &c, 0), 0);
    struct reg_worker orphan = wk("wo", "nopool", "m", REG_W_READY, 0);
    assert_int_equal(reg_worker_upsert(r, &orphan, 0), -ENOENT);
    const struct reg_pool *p = reg_pool_get(r, "p1");
    assert_true(reg_device_room(r, p, 0) == (60ull << 30)); /* 70 free - 10 starting */
    assert_true(reg_device_room(r, p, 1) == (32ull << 30));
    uint64_t room[REG_MAX_DEVICES];
    int nwk[REG_MAX_DEVICES];
    reg_device_stats(r, room, nwk); /* one pool: indices 0..15 */
    assert_true(room[0] == reg_device_room(r, p, 0));
    assert_true(room[1] == reg_device_room(r, p, 1));
    assert_int_equal(nwk[0], 2);  /* wa, wb on gpu 0 */
    assert_int_equal(nwk[1], 1);  /* wc on the host device */

    assert_false(reg_worker_pinned(r, reg_worker_get(r, "wa")));
    assert_int_equal(reg_placement_add(r, "qwen", "p1", 0), 0);
    assert_int_equal(reg_placement_add(r, "qwen", "p1", 0), -EEXIST);
    assert_int_equal(reg_placement_add(r, "tiny", "p1", REG_HOST_DEVICE), 0);
    assert_true(reg_worker_pinned(r, reg_worker_get(r, "wa")));
    assert_true(reg_worker_pinned(r, reg_worker_get(r, "wc")));
    assert_true(reg_placement_served(r, reg_placement_at(r, 0)));
    for (size_t i = 0; i < reg_placement_count(r); i++) assert_int_equal(reg_placement_at(r, i)->last_start_ms, 0);
    assert_int_equal(reg_placement_add(r, "qwen", "p1", REG_HOST_DEVICE), 0); /* no qwen worker on the host */
    assert_false(reg_placement_served(r, reg_placement_at(r, 2)));
    assert_int_equal(reg_placement_remove(r, "qwen", "p1", REG_HOST_DEVICE), 0);
    assert_true(reg_model_has_placement(r, "qwen"));
    assert_false(reg_model_has_placement(r, "other"));
    assert_int_equal(reg_placement_remove(r, "qwen", "p1", 0), 0);
    assert_int_equal(reg_placement_remove(r, "qwen", "p1", 0), -ENOENT);
    assert_false(reg_worker_pinned(r, reg_worker_get(r, "wa")));

    size_t counts[5];
    reg_worker_counts(r, counts);
    assert_int_equal(counts[REG_W_READY], 2);
    assert_int_equal(counts[REG_W_STARTING], 1);
    assert_int_equal(reg_pool_remove(r, "p1"), 0);
    assert_int_equal(reg_worker_count(r), 0);
    assert_int_equal(reg_worker_status_parse("draining"), REG_W_DRAINING);
    assert_int_equal(reg_worker_status_parse("zombie"), -1);
    reg_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_and_availability),
        cmocka_unit_test(test_heartbeat_rules),
        cmocka_unit_test(test_placements_and_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
