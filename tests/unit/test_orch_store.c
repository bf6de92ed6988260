// test-libs: llorch_orchcore llorch_core PkgConfig::SQLITE
/* store: real SQLite files in a temp dir. Rows after each transition, the
 * prompt gone after dispatch, file mode 0600, idempotent migrations, crash
 * recovery (handle dropped without cleanup, then reopened). */
#include "testutil.h"

#include "orch/core/store.h"

#include <errno.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static char dbpath[128];

static int setup(void **s) {
    (void)s;
    snprintf(dir, sizeof dir, "/tmp/llorch-store-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(dbpath, sizeof dbpath, "%s/orch.db", dir);
    return 0;
}

static int teardown(void **s) {
    (void)s;
    char p[200];
    const char *suf[] = { "", "-wal", "-shm" };
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", dbpath, suf[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}

static const char *wal_path(void) {
    static char p[200];
    snprintf(p, sizeof p, "%s-wal", dbpath);
    return p;
}

static struct store *open_ok(int persist) {
    char err[256] = "";
    struct store *st = NULL;
    int rc = store_open(dbpath, persist, &st, err, sizeof err);
    if (rc) fail_msg("store_open: %d %s", rc, err);
    return st;
}

static void mkjob(struct store_job *j, const char *id, enum job_prio p, int64_t t) {
    memset(j, 0, sizeof *j);
    snprintf(j->id, sizeof j->id, "%s", id);
    snprintf(j->tenant, sizeof j->tenant, "t1");
    snprintf(j->model_ref, sizeof j->model_ref, "hf:org/repo::file=m.gguf");
    snprintf(j->params, sizeof j->params, "{\"max_tokens\":8}");
    snprintf(j->prompt_hash, sizeof j->prompt_hash, "abc123");
    j->priority = p;
    j->seed = 0xFFFFFFFFFFFFFFF0ull; /* high bit set: stored as int64 bit pattern */
    j->created_ms = t;
}

/* independent reader: what is really in the file */
static long long q1(const char *sql) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    long long v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static int file_has(const char *path, const char *needle) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return memmem(buf, n, needle, strlen(needle)) != NULL;
}

static void test_mode_and_migrations(void **s) {
    (void)s;
    mode_t old = umask(0);  /* a permissive umask must not leak into the file mode */
    struct store *st = open_ok(1);
    umask(old);
    struct stat sb;
    assert_int_equal(stat(dbpath, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char wal[200];
    snprintf(wal, sizeof wal, "%s-wal", dbpath);
    assert_int_equal(stat(wal, &sb), 0);  /* WAL mode really on */
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(store_schema_version(st), STORE_SCHEMA_VERSION);
    store_close(st);
    assert_int_equal(q1("SELECT count(*) FROM schema_version"), STORE_SCHEMA_VERSION);
    /* reopen: nothing re-applied */
    st = open_ok(1);
    store_close(st);
    assert_int_equal(q1("SELECT count(*) FROM schema_version"), STORE_SCHEMA_VERSION);
    assert_int_equal(q1("SELECT count(*) FROM sqlite_master WHERE name IN"
                        " ('jobs','queue','sse_checkpoints','tenant_quotas','config','schema_version','placements')"),
                     7);
    /* an existing file with loose permissions is tightened */
    chmod(dbpath, 0644);
    st = open_ok(1);
    store_close(st);
    assert_int_equal(stat(dbpath, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

static void test_transitions(void **s) {
    (void)s;
    struct store *st = open_ok(1);
    char err[256];
    struct store_job j, g;
    const char *body = "{\"prompt\":\"secret prompt\"}";
    mkjob(&j, "job-1", JOB_PRIO_INTERACTIVE, 1000);
    assert_int_equal(store_job_insert(st, &j, body, strlen(body), err, sizeof err), 0);
    assert_int_equal(store_job_insert(st, &j, body, strlen(body), err, sizeof err), -EEXIST);
    assert_int_equal(store_job_get(st, "job-1", &g), 0);
    assert_int_equal(g.status, JOB_QUEUED);
    assert_true(g.seed == 0xFFFFFFFFFFFFFFF0ull);
    assert_int_equal(g.queued_ms, 1000);
    assert_true(file_has(dbpath, "secret prompt") || file_has(wal_path(), "secret prompt"));
    assert_int_equal(q1("SELECT count(*) FROM queue WHERE job_id='job-1' AND CAST(body AS TEXT) LIKE '%secret prompt%'"), 1);
    char *b;
    size_t bl;
    assert_int_equal(store_queue_body(st, "job-1", &b, &bl), 0);
    assert_int_equal(bl, strlen(body));
    assert_string_equal(b, body);
    free(b);

    /* dispatch: atomic status change + body gone */
    assert_int_equal(store_job_dispatch(st, "job-1", "w1", "p1", 2000, err, sizeof err), 0);
    assert_int_equal(q1("SELECT count(*) FROM queue"), 0);
    assert_int_equal(q1("SELECT count(*) FROM jobs WHERE id='job-1' AND status='dispatched' AND worker_id='w1'"
                        " AND pool_id='p1' AND dispatched_ms=2000"), 1);
    assert_int_equal(store_queue_body(st, "job-1", &b, &bl), -ENOENT);
    /* a second dispatch is refused and changes nothing */
    assert_int_equal(store_job_dispatch(st, "job-1", "w2", "p2", 2500, err, sizeof err), -ESTALE);
    assert_int_equal(q1("SELECT count(*) FROM jobs WHERE worker_id='w1'"), 1);

    assert_int_equal(store_job_started(st, "job-1", 12, 2100, err, sizeof err), 0);
    assert_int_equal(store_job_started(st, "job-1", 12, 2100, err, sizeof err), -ESTALE);
    assert_int_equal(store_job_finish(st, "job-1", JOB_COMPLETED, NULL, NULL, 12, 8, 3000, err, sizeof err), 0);
    assert_int_equal(store_job_finish(st, "job-1", JOB_CANCELLED, "CANCELLED", NULL, 0, 0, 3100, err, sizeof err),
                     -ESTALE);
    assert_int_equal(store_job_get(st, "job-1", &g), 0);
    assert_int_equal(g.status, JOB_COMPLETED);
    assert_int_equal(g.tokens_in, 12);
    assert_int_equal(g.tokens_out, 8);
    assert_int_equal(g.completed_ms, 3000);
    assert_string_equal(g.outcome, "completed");

    /* retry path: dispatched -> queued again, body re-stored, retry_count 1 */
    mkjob(&j, "job-2", JOB_PRIO_BATCH, 4000);
    assert_int_equal(store_job_insert(st, &j, body, strlen(body), err, sizeof err), 0);
    assert_int_equal(store_job_dispatch(st, "job-2", "w1", "p1", 4100, err, sizeof err), 0);
    assert_int_equal(store_job_requeue(st, "job-2", body, strlen(body), "worker died", 4200, err, sizeof err), 0);
    assert_int_equal(store_job_get(st, "job-2", &g), 0);
    assert_int_equal(g.status, JOB_QUEUED);
    assert_int_equal(g.retry_count, 1);
    assert_string_equal(g.last_error, "worker died");
    assert_string_equal(g.worker_id, "");
    assert_int_equal(q1("SELECT count(*) FROM queue WHERE job_id='job-2' AND body IS NOT NULL"), 1);
    /* cancel while queued: terminal + queue row gone */
    assert_int_equal(store_job_finish(st, "job-2", JOB_CANCELLED, "CANCELLED", "client", 0, 0, 4300, err, sizeof err), 0);
    assert_int_equal(q1("SELECT count(*) FROM queue"), 0);
    assert_int_equal(q1("SELECT count(*) FROM jobs WHERE id='job-2' AND status='cancelled' AND error_code='CANCELLED'"),
                     1);
    /* no prompt left anywhere in the file's tables */
    assert_int_equal(q1("SELECT count(*) FROM jobs WHERE params LIKE '%secret%' OR last_error LIKE '%secret%'"), 0);

    /* hostile ids */
    mkjob(&j, "bad id with spaces", JOB_PRIO_BATCH, 1);
    assert_int_equal(store_job_insert(st, &j, NULL, 0, err, sizeof err), -EINVAL);
    /* SQL in an id is only ever a parameter */
    assert_int_equal(store_job_get(st, "x' OR '1'='1", &g), -ENOENT);

    /* after a WAL checkpoint the prompt bytes are nowhere in the files */
    assert_int_equal(store_maintenance(st), 0);
    assert_false(file_has(dbpath, "secret prompt"));
    char walp[200];
    snprintf(walp, sizeof walp, "%s-wal", dbpath);
    assert_false(file_has(walp, "secret prompt"));

    int64_t counts[JOB__STATUS_COUNT];
    assert_int_equal(store_count_by_status(st, counts), 0);
    assert_int_equal(counts[JOB_COMPLETED], 1);
    assert_int_equal(counts[JOB_CANCELLED], 1);
    store_close(st);
}

static void test_persist_never(void **s) {
    (void)s;
    struct store *st = open_ok(0);
    char err[256];
    struct store_job j;
    mkjob(&j, "np-1", JOB_PRIO_INTERACTIVE, 1);
    assert_int_equal(store_job_insert(st, &j, "{\"prompt\":\"p\"}", 14, err, sizeof err), 0);
    assert_int_equal(q1("SELECT count(*) FROM queue WHERE job_id='np-1' AND body IS NULL"), 1);
    store_close(st);
    /* restart: the queued job cannot be resumed */
    st = open_ok(0);
    int nr, nf;
    assert_int_equal(store_recover(st, 99, NULL, NULL, &nr, &nf, err, sizeof err), 0);
    assert_int_equal(nr, 0);
    assert_int_equal(nf, 1);
    struct store_job g;
    assert_int_equal(store_job_get(st, "np-1", &g), 0);
    assert_int_equal(g.status, JOB_FAILED);
    assert_string_equal(g.error_code, "ORCHESTRATOR_RESTARTED");
    assert_int_equal(q1("SELECT count(*) FROM queue"), 0);
    store_close(st);
}

struct rec { int n; char ids[8][JOB_ID_MAX + 1]; char bodies[8][64]; };
static int rec_cb(void *ctx, const struct store_job *j, const char *body, size_t len) {
    struct rec *r = ctx;
    snprintf(r->ids[r->n], sizeof r->ids[0], "%s", j->id);
    snprintf(r->bodies[r->n], sizeof r->bodies[0], "%.*s", (int)len, body);
    r->n++;
    return 0;
}

static void test_crash_recovery(void **s) {
    (void)s;
    char err[256];
    /* a child process does the work and dies without closing anything */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *st = NULL;
        if (store_open(dbpath, 1, &st, err, sizeof err)) _exit(3);
        struct store_job j;
        const char *ids[] = { "q-a", "q-b", "q-c", "d-1", "r-1" };
        for (int i = 0; i < 5; i++) {
            mkjob(&j, ids[i], i == 1 ? JOB_PRIO_BATCH : JOB_PRIO_INTERACTIVE, 10 + i);
            char body[32];
            snprintf(body, sizeof body, "{\"n\":%d}", i);
            if (store_job_insert(st, &j, body, strlen(body), err, sizeof err)) _exit(4);
        }
        if (store_job_dispatch(st, "d-1", "w", "p", 20, err, sizeof err)) _exit(5);
        if (store_job_dispatch(st, "r-1", "w", "p", 21, err, sizeof err)) _exit(5);
        if (store_job_started(st, "r-1", 3, 22, err, sizeof err)) _exit(6);
        _exit(0); /* crash: no store_close, WAL not checkpointed */
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    struct store *st = open_ok(1);
    struct rec r = { 0 };
    int nr, nf;
    assert_int_equal(store_recover(st, 500, rec_cb, &r, &nr, &nf, err, sizeof err), 0);
    assert_int_equal(nr, 3);
    assert_int_equal(nf, 2);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.ids[0], "q-a"); /* insertion order; the queue re-sorts by class */
    assert_string_equal(r.ids[1], "q-b");
    assert_string_equal(r.ids[2], "q-c");
    assert_string_equal(r.bodies[1], "{\"n\":1}");
    struct store_job g;
    assert_int_equal(store_job_get(st, "r-1", &g), 0);
    assert_int_equal(g.status, JOB_FAILED);
    assert_string_equal(g.error_code, "ORCHESTRATOR_RESTARTED");
    assert_int_equal(g.completed_ms, 500);
    assert_int_equal(store_job_get(st, "d-1", &g), 0);
    assert_int_equal(g.status, JOB_FAILED);
    assert_int_equal(store_job_get(st, "q-b", &g), 0);
    assert_int_equal(g.status, JOB_QUEUED);
    assert_int_equal(g.priority, JOB_PRIO_BATCH);
    /* recovery is idempotent */
    r.n = 0;
    assert_int_equal(store_recover(st, 600, rec_cb, &r, &nr, &nf, err, sizeof err), 0);
    assert_int_equal(nr, 3);
    assert_int_equal(nf, 0);
    store_close(st);
}

static void test_checkpoints_quotas_config(void **s) {
    (void)s;
    struct store *st = open_ok(1);
    char err[256];
    struct store_job j;
    mkjob(&j, "c-1", JOB_PRIO_INTERACTIVE, 1);
    assert_int_equal(store_job_insert(st, &j, NULL, 0, err, sizeof err), 0);
    assert_int_equal(store_checkpoint_put(st, "c-1", 5, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(store_checkpoint_put(st, "c-1", 9, "end", "{\"tokens_out\":4}", err, sizeof err), 0);
    int64_t last;
    char ev[16], data[128];
    assert_int_equal(store_checkpoint_get(st, "c-1", &last, ev, sizeof ev, data, sizeof data), 0);
    assert_int_equal(last, 9);
    assert_string_equal(ev, "end");
    assert_string_equal(data, "{\"tokens_out\":4}");
    assert_int_equal(store_checkpoint_get(st, "nope", &last, ev, sizeof ev, data, sizeof data), -ENOENT);
    /* checkpoint for an unknown job violates the foreign key */
    assert_true(store_checkpoint_put(st, "ghost", 1, NULL, NULL, err, sizeof err) < 0);

    struct store_quota q;
    assert_int_equal(store_quota_get(st, "acme", 20261127, &q), -ENOENT);
    assert_int_equal(store_quota_set(st, "acme", 2, 1000), 0);
    assert_int_equal(store_quota_add_tokens(st, "acme", 20261127, 300), 0);
    assert_int_equal(store_quota_add_tokens(st, "acme", 20261127, 200), 0);
    assert_int_equal(store_quota_get(st, "acme", 20261127, &q), 0);
    assert_int_equal(q.max_concurrent, 2);
    assert_int_equal(q.tokens_today, 500);
    assert_int_equal(store_quota_get(st, "acme", 20261128, &q), 0); /* a new day starts at zero */
    assert_int_equal(q.tokens_today, 0);
    assert_int_equal(store_quota_add_tokens(st, "acme", 20261128, 7), 0);
    assert_int_equal(store_quota_get(st, "acme", 20261128, &q), 0);
    assert_int_equal(q.tokens_today, 7);

    char v[64];
    assert_int_equal(store_config_put(st, "instance", "a"), 0);
    assert_int_equal(store_config_put(st, "instance", "b"), 0);
    assert_int_equal(store_config_get(st, "instance", v, sizeof v), 0);
    assert_string_equal(v, "b");
    assert_int_equal(store_config_get(st, "missing", v, sizeof v), -ENOENT);
    store_close(st);
}

struct pl_rows { int n; char rows[8][200]; };
static int pl_collect(void *ctx, const char *m, const char *p, int g) {
    struct pl_rows *r = ctx;
    if (r->n < 8) snprintf(r->rows[r->n++], sizeof r->rows[0], "%s|%s|%d", m, p, g);
    return 0;
}

/* API placements: idempotent put, delete, order, kept across a reopen; a
 * version-1 file gains the table by migration 2 */
static void test_placements(void **s) {
    (void)s;
    struct store *st = open_ok(1);
    char err[256];
    assert_int_equal(store_placement_put(st, "file:/m/a.gguf", "p1", 0, 10, err, sizeof err), 0);
    assert_int_equal(store_placement_put(st, "file:/m/b.gguf", "p2", -1, 20, err, sizeof err), 0);
    assert_int_equal(store_placement_put(st, "file:/m/a.gguf", "p1", 0, 30, err, sizeof err), 0); /* again: no-op */
    assert_int_equal(store_placement_put(st, "file:/m/a.gguf", "p1", 1, 40, err, sizeof err), 0);
    assert_int_equal(store_placement_del(st, "file:/m/a.gguf", "p1", 1, err, sizeof err), 0);
    assert_int_equal(store_placement_del(st, "file:/m/a.gguf", "p1", 1, err, sizeof err), -ENOENT);
    store_close(st);
    assert_int_equal(q1("SELECT count(*) FROM placements"), 2);
    st = open_ok(1);
    struct pl_rows r = { 0 };
    assert_int_equal(store_placement_list(st, pl_collect, &r), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.rows[0], "file:/m/a.gguf|p1|0");
    assert_string_equal(r.rows[1], "file:/m/b.gguf|p2|-1");
    store_close(st);
    /* back to a version-1 file: reopening applies migration 2 only */
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TABLE placements; DELETE FROM schema_version WHERE version = 2", NULL, NULL,
                                  NULL), SQLITE_OK);
    sqlite3_close(db);
    st = open_ok(1);
    assert_int_equal(store_schema_version(st), 2);
    memset(&r, 0, sizeof r);
    assert_int_equal(store_placement_list(st, pl_collect, &r), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(store_placement_put(st, "file:/m/a.gguf", "p1", 0, 50, err, sizeof err), 0);
    store_close(st);
    assert_int_equal(q1("SELECT count(*) FROM placements"), 1);
    assert_int_equal(q1("SELECT max(version) FROM schema_version"), 2);
}

static void test_bad_path(void **s) {
    (void)s;
    char err[256] = "";
    struct store *st = NULL;
    assert_true(store_open("/nonexistent-dir/x.db", 1, &st, err, sizeof err) < 0);
    assert_null(st);
    assert_non_null(strstr(err, "/nonexistent-dir/x.db"));
    assert_true(store_open(dir, 1, &st, err, sizeof err) < 0); /* a directory */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mode_and_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persist_never, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoints_quotas_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placements, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
