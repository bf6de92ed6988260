// test-libs: llorch_orchcore llorch_core
/* queue: class order, FIFO, bounds, cancel, positions (checked against a
 * naive model under random operations), predicates, threads. */
#include "testutil.h"

#include "orch/core/queue.h"

#include <errno.h>
#include <pthread.h>

static void test_order_and_bounds(void **s) {
    (void)s;
    struct queue *q;
    assert_int_equal(queue_new(4, &q), 0);
    int64_t pos;
    assert_int_equal(queue_push(q, "b1", JOB_PRIO_BATCH, NULL, &pos), 0);
    assert_int_equal(pos, 0);
    assert_int_equal(queue_push(q, "i1", JOB_PRIO_INTERACTIVE, NULL, &pos), 0);
    assert_int_equal(pos, 0); /* jumps ahead of the batch job */
    assert_int_equal(queue_push(q, "b2", JOB_PRIO_BATCH, NULL, &pos), 0);
    assert_int_equal(pos, 2);
    assert_int_equal(queue_push(q, "i2", JOB_PRIO_INTERACTIVE, NULL, &pos), 0);
    assert_int_equal(pos, 1);
    assert_int_equal(queue_position(q, "b1"), 2);
    assert_int_equal(queue_push(q, "x", JOB_PRIO_BATCH, NULL, &pos), -ENOSPC);
    assert_int_equal(queue_push(q, "i1", JOB_PRIO_BATCH, NULL, &pos), -EEXIST);
    assert_int_equal(queue_push(q, "bad id", JOB_PRIO_BATCH, NULL, &pos), -EINVAL);
    assert_int_equal(queue_len(q, JOB_PRIO_INTERACTIVE), 2);
    assert_int_equal(queue_len(q, -1), 4);
    /* cancel the middle batch job... no: the first one */
    void *d = (void *)1;
    assert_int_equal(queue_remove(q, "b1", &d), 0);
    assert_int_equal(queue_remove(q, "b1", &d), -ENOENT);
    assert_int_equal(queue_position(q, "b2"), 2);
    assert_int_equal(queue_position(q, "b1"), -ENOENT);
    /* room again */
    int tag = 7;
    assert_int_equal(queue_push(q, "b3", JOB_PRIO_BATCH, &tag, NULL), 0);
    char id[JOB_ID_MAX + 1];
    enum job_prio p;
    const char *want[] = { "i1", "i2", "b2", "b3" };
    for (int i = 0; i < 4; i++) {
        assert_int_equal(queue_pop(q, id, &d, &p), 0);
        assert_string_equal(id, want[i]);
    }
    assert_ptr_equal(d, &tag);
    assert_int_equal(p, JOB_PRIO_BATCH);
    assert_int_equal(queue_pop(q, id, &d, &p), -ENOENT);
    queue_free(q);

    assert_int_equal(queue_new(0, &q), 0); /* capacity 0: everything is full */
    assert_int_equal(queue_push(q, "a", JOB_PRIO_BATCH, NULL, NULL), -ENOSPC);
    queue_free(q);
    assert_int_equal(queue_new(-2, &q), -EINVAL);
}

static int skip_model_a(void *ctx, const char *id, enum job_prio prio, void *data) {
    (void)prio;
    (void)data;
    ++*(int *)ctx;
    return id[0] != 'a';
}

static void test_pop_first(void **s) {
    (void)s;
    struct queue *q;
    assert_int_equal(queue_new(-1, &q), 0);
    queue_push(q, "a1", JOB_PRIO_INTERACTIVE, NULL, NULL);
    queue_push(q, "b1", JOB_PRIO_BATCH, NULL, NULL);
    queue_push(q, "a2", JOB_PRIO_INTERACTIVE, NULL, NULL);
    queue_push(q, "c1", JOB_PRIO_INTERACTIVE, NULL, NULL);
    char id[JOB_ID_MAX + 1];
    int calls = 0;
    assert_int_equal(queue_pop_first(q, skip_model_a, &calls, id, NULL, NULL), 0);
    assert_string_equal(id, "c1"); /* interactive c1 before batch b1 */
    assert_int_equal(calls, 3);
    assert_int_equal(queue_pop_first(q, skip_model_a, &calls, id, NULL, NULL), 0);
    assert_string_equal(id, "b1");
    assert_int_equal(queue_pop_first(q, skip_model_a, &calls, id, NULL, NULL), -ENOENT);
    assert_int_equal(queue_position(q, "a2"), 1); /* skipped jobs kept their place */
    queue_free(q);
}

/* random ops against a naive array model; exercises slot compaction */
static void test_random_model(void **s) {
    (void)s;
    struct queue *q;
    assert_int_equal(queue_new(-1, &q), 0);
    enum { N = 4000 };
    static char ids[N][16];
    static int prio[N];
    int order[N], norder = 0; /* push order of live ids */
    uint64_t rng = 42;
    int next = 0;
    for (int step = 0; step < 30000; step++) {
        int r = (int)(tu_rng(&rng) % 10);
        if (r < 5 && next < N) {
            snprintf(ids[next], sizeof ids[0], "j%d", next);
            prio[next] = (int)(tu_rng(&rng) % 2);
            int64_t pos;
            assert_int_equal(queue_push(q, ids[next], prio[next], NULL, &pos), 0);
            order[norder++] = next;
            next++;
        } else if (r < 7 && norder) {
            int k = (int)(tu_rng(&rng) % (uint64_t)norder);
            int j = order[k];
            assert_int_equal(queue_remove(q, ids[j], NULL), 0);
            memmove(order + k, order + k + 1, (size_t)(norder - k - 1) * sizeof order[0]);
            norder--;
        } else if (r < 8 && norder) {
            char id[JOB_ID_MAX + 1];
            assert_int_equal(queue_pop(q, id, NULL, NULL), 0);
            int want = -1;
            for (int pp = 0; pp < 2 && want < 0; pp++)
                for (int k = 0; k < norder; k++)
                    if (prio[order[k]] == pp) { want = k; break; }
            assert_string_equal(id, ids[order[want]]);
            memmove(order + want, order + want + 1, (size_t)(norder - want - 1) * sizeof order[0]);
            norder--;
        } else if (norder) {
            int k = (int)(tu_rng(&rng) % (uint64_t)norder);
            int j = order[k];
            int64_t expect = 0;
            for (int m = 0; m < norder; m++) {
                int o = order[m];
                if (prio[o] < prio[j] || (prio[o] == prio[j] && m < k)) expect++;
            }
            assert_int_equal(queue_position(q, ids[j]), expect);
        }
    }
    assert_int_equal(queue_len(q, -1), (size_t)norder);
    queue_free(q);
}

struct thr { struct queue *q; int base; };
static void *pusher(void *arg) {
    struct thr *t = arg;
    char id[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(id, sizeof id, "t%d-%d", t->base, i);
        if (queue_push(t->q, id, i % 2, NULL, NULL) != 0) return (void *)1;
    }
    return NULL;
}

static void test_threads(void **s) {
    (void)s;
    struct queue *q;
    assert_int_equal(queue_new(-1, &q), 0);
    pthread_t th[4];
    struct thr a[4];
    for (int i = 0; i < 4; i++) {
        a[i].q = q;
        a[i].base = i;
        pthread_create(&th[i], NULL, pusher, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        assert_null(r);
    }
    assert_int_equal(queue_len(q, -1), 8000);
    assert_int_equal(queue_len(q, JOB_PRIO_INTERACTIVE), 4000);
    char id[JOB_ID_MAX + 1];
    enum job_prio p, last = JOB_PRIO_INTERACTIVE;
    int n = 0;
    while (queue_pop(q, id, NULL, &p) == 0) {
        assert_true(p >= last);
        last = p;
        n++;
    }
    assert_int_equal(n, 8000);
    queue_free(q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_bounds),
        cmocka_unit_test(test_pop_first),
        cmocka_unit_test(test_random_model),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
