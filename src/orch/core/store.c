/* store — see store.h. Sections: open/migrate, helpers, job transitions,
 * recovery, checkpoints/quotas/config. */
#include "orch/core/store.h"

#include "common/log.h"
#include "common/util.h"
#include "orch/core/store_schema.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_BODY_MAX (8u << 20) /* a queued request body larger than this is refused */

enum stmt_id {
    S_INSERT_JOB,
    S_INSERT_QUEUE,
    S_DISPATCH,
    S_DEL_QUEUE,
    S_STARTED,
    S_REQUEUE,
    S_FINISH,
    S_GET,
    S_BODY,
    S_CKPT_PUT,
    S_CKPT_GET,
    S_QUOTA_SET,
    S_QUOTA_GET,
    S_QUOTA_ADD,
    S_CFG_PUT,
    S_CFG_GET,
    S_COUNT,
    S_PL_PUT,
    S_PL_DEL,
    S_PL_LIST,
    S__N
};

static const char *const stmt_sql[S__N] = {
    [S_INSERT_JOB] = "INSERT INTO jobs (id, tenant, session, status, priority, model_ref, prompt_hash, params, seed,"
                     " created_ms, queued_ms) VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    [S_INSERT_QUEUE] = "INSERT INTO queue (job_id, priority, enqueued_ms, body) VALUES (?1, ?2, ?3, ?4)",
    [S_DISPATCH] = "UPDATE jobs SET status = 'dispatched', worker_id = ?2, pool_id = ?3, dispatched_ms = ?4"
                   " WHERE id = ?1 AND status = 'queued'",
    [S_DEL_QUEUE] = "DELETE FROM queue WHERE job_id = ?1",
    [S_STARTED] = "UPDATE jobs SET status = 'running', started_ms = ?2, tokens_in = ?3"
                  " WHERE id = ?1 AND status = 'dispatched'",
    [S_REQUEUE] = "UPDATE jobs SET status = 'queued', queued_ms = ?2, retry_count = retry_count + 1,"
                  " last_error = ?3, worker_id = NULL, pool_id = NULL, dispatched_ms = NULL, started_ms = NULL"
                  " WHERE id = ?1 AND status IN ('dispatched', 'running')",
    [S_FINISH] = "UPDATE jobs SET status = ?2, outcome = ?2, error_code = ?3, last_error = coalesce(?4, last_error),"
                 " tokens_in = max(tokens_in, ?5), tokens_out = ?6, completed_ms = ?7"
                 " WHERE id = ?1 AND status IN ('queued', 'dispatched', 'running')",
    [S_GET] = "SELECT id, tenant, session, status, priority, model_ref, prompt_hash, params, seed, worker_id, pool_id,"
              " created_ms, queued_ms, dispatched_ms, started_ms, completed_ms, outcome, error_code, tokens_in,"
              " tokens_out, retry_count, last_error FROM jobs WHERE id = ?1",
    [S_BODY] = "SELECT body FROM queue WHERE job_id = ?1 AND body IS NOT NULL",
    [S_CKPT_PUT] = "INSERT INTO sse_checkpoints (job_id, last_event_id, terminal_event, terminal_data)"
                   " VALUES (?1, ?2, ?3, ?4) ON CONFLICT(job_id) DO UPDATE SET last_event_id = excluded.last_event_id,"
                   " terminal_event = coalesce(excluded.terminal_event, terminal_event),"
                   " terminal_data = coalesce(excluded.terminal_data, terminal_data)",
    [S_CKPT_GET] = "SELECT last_event_id, terminal_event, terminal_data FROM sse_checkpoints WHERE job_id = ?1",
    [S_QUOTA_SET] = "INSERT INTO tenant_quotas (tenant, max_concurrent, daily_tokens) VALUES (?1, ?2, ?3)"
                    " ON CONFLICT(tenant) DO UPDATE SET max_concurrent = excluded.max_concurrent,"
                    " daily_tokens = excluded.daily_tokens",
    [S_QUOTA_GET] = "SELECT max_concurrent, daily_tokens, CASE WHEN day = ?2 THEN tokens_today ELSE 0 END"
                    " FROM tenant_quotas WHERE tenant = ?1",
    [S_QUOTA_ADD] = "UPDATE tenant_quotas SET tokens_today = CASE WHEN day = ?2 THEN tokens_today + ?3 ELSE ?3 END,"
                    " day = ?2 WHERE tenant = ?1",
    [S_CFG_PUT] = "INSERT INTO config (key, value) VALUES (?1, ?2)"
                  " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [S_CFG_GET] = "SELECT value FROM config WHERE key = ?1",
    [S_COUNT] = "SELECT status, count(*) FROM jobs GROUP BY status",
    [S_PL_PUT] = "INSERT INTO placements (model_ref, pool_id, gpu_id, created_ms) VALUES (?1, ?2, ?3, ?4)"
                 " ON CONFLICT DO NOTHING",
    [S_PL_DEL] = "DELETE FROM placements WHERE model_ref = ?1 AND pool_id = ?2 AND gpu_id = ?3",
    [S_PL_LIST] = "SELECT model_ref, pool_id, gpu_id FROM placements ORDER BY created_ms, rowid",
};

struct store {
    sqlite3 *db;
    sqlite3_stmt *st[S__N];
    pthread_mutex_t mu;   /* recursive: recovery callbacks may call back in */
    int persist_prompts;
    int version;
};

/* ======================================================================
 * helpers
 * ==================================================================== */
static int db_fail(struct store *s, char *err, size_t errlen, const char *what) {
    int ext = sqlite3_extended_errcode(s->db);
    int code = (ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE) ? -EEXIST
               : (ext & 0xff) == SQLITE_FULL                                              ? -ENOSPC
                                                                                          : -EIO;
    return util_fail(err, errlen, code, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

static int exec(struct store *s, const char *sql, char *err, size_t errlen) {
    char *m = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &m) != SQLITE_OK) {
        const int code = (sqlite3_errcode(s->db) & 0xff) == SQLITE_FULL ? -ENOSPC : -EIO; /* e.g. COMMIT */
        int rc = util_fail(err, errlen, code, "store: %s: %s", sql, m ? m : "?");
        sqlite3_free(m);
        return rc;
    }
    return 0;
}

static sqlite3_stmt *stmt(struct store *s, enum stmt_id id) {
    sqlite3_stmt *st = s->st[id];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

static void bind_str(sqlite3_stmt *st, int i, const char *v) {
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, i);
}

/* runs a write statement to completion; returns changes() or <0 */
static int step_write(struct store *s, sqlite3_stmt *st, char *err, size_t errlen, const char *what) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return db_fail(s, err, errlen, what);
    return sqlite3_changes(s->db);
}

static void col_copy(sqlite3_stmt *st, int c, char *out, size_t cap) {
    const unsigned char *t = sqlite3_column_text(st, c);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

static int too_long(const char *v, size_t max) { return v && strnlen(v, max + 1) > max; }

static void lock(struct store *s) { pthread_mutex_lock(&s->mu); }
static void unlock(struct store *s) { pthread_mutex_unlock(&s->mu); }

/* One write statement, alone, under the lock: binds ?1, ?2, ... from sig, one
 * letter an argument ('s' const char *, NULL binds NULL; 'i' int; 'I'
 * int64_t), runs it and returns step_write's changes() or <0. As with
 * json_pack, the letters must match the arguments' types (the compiler cannot
 * check them). */
static int write_locked(struct store *s, enum stmt_id id, const char *what, char *err, size_t errlen,
                        const char *sig, ...) {
    lock(s);
    sqlite3_stmt *st = stmt(s, id);
    va_list ap;
    va_start(ap, sig);
    for (int i = 1; sig[i - 1]; i++) {
        switch (sig[i - 1]) {
        case 's': bind_str(st, i, va_arg(ap, const char *)); break;
        case 'i': sqlite3_bind_int(st, i, va_arg(ap, int)); break;
        case 'I': sqlite3_bind_int64(st, i, (sqlite3_int64)va_arg(ap, int64_t)); break;
        default: LLORCH_ASSERT(!"write_locked: unknown bind letter");
        }
    }
    va_end(ap);
    int rc = step_write(s, st, err, errlen, what);
    unlock(s);
    return rc;
}

static int begin(struct store *s, char *err, size_t errlen) { return exec(s, "BEGIN IMMEDIATE", err, errlen); }
static int commit(struct store *s, char *err, size_t errlen) { return exec(s, "COMMIT", err, errlen); }
static void rollback(struct store *s) {
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* a write transaction under the store's lock: tx_begin locks and begins
 * (0, or <0 with err set: the caller skips its writes); tx_end commits when
 * rc >= 0, rolls back otherwise (also after a failed BEGIN or COMMIT) and
 * unlocks; it returns 0 or the negative code */
static int tx_begin(struct store *s, char *err, size_t errlen) {
    lock(s);
    return begin(s, err, errlen);
}
static int tx_end(struct store *s, int rc, char *err, size_t errlen) {
    if (rc >= 0) rc = commit(s, err, errlen);
    if (rc < 0) rollback(s);
    unlock(s);
    return rc < 0 ? rc : 0;
}

/* ======================================================================
 * open / migrate / close
 * ==================================================================== */
static int migrate(struct store *s, char *err, size_t errlen) {
    int rc = begin(s, err, errlen);
    if (rc < 0) return rc;
    rc = exec(s, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                 " summary TEXT NOT NULL, applied_ms INTEGER NOT NULL)", err, errlen);
    int cur = 0;
    if (rc == 0) {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(s->db, "SELECT coalesce(max(version), 0) FROM schema_version", -1, &q, NULL) != SQLITE_OK ||
            sqlite3_step(q) != SQLITE_ROW)
            rc = db_fail(s, err, errlen, "read schema_version");
        else
            cur = sqlite3_column_int(q, 0);
        sqlite3_finalize(q);
    }
    size_t n;
    const struct store_migration *m = store_migrations(&n);
    if (rc == 0 && cur > m[n - 1].version)
        rc = util_fail(err, errlen, -EPROTO, "store: database schema version %d is newer than this binary's %d", cur,
                       m[n - 1].version);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (m[i].version <= cur) continue;
        rc = exec(s, m[i].sql, err, errlen);
        if (rc < 0) break;
        sqlite3_stmt *ins = NULL;
        if (sqlite3_prepare_v2(s->db, "INSERT INTO schema_version (version, summary, applied_ms) VALUES (?1, ?2, ?3)",
                               -1, &ins, NULL) != SQLITE_OK) {
            rc = db_fail(s, err, errlen, "prepare schema_version");
            break;
        }
        sqlite3_bind_int(ins, 1, m[i].version);
        sqlite3_bind_text(ins, 2, m[i].summary, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 3, (sqlite3_int64)util_wall_ms());
        if (sqlite3_step(ins) != SQLITE_DONE) rc = db_fail(s, err, errlen, "record migration");
        sqlite3_finalize(ins);
        cur = m[i].version;
    }
    if (rc < 0) { rollback(s); return rc; }
    if ((rc = commit(s, err, errlen)) < 0) { rollback(s); return rc; }
    s->version = cur;
    return 0;
}

int store_open(const char *path, int persist_prompts, struct store **out, char *err, size_t errlen) {
    *out = NULL;
    if (!path || !*path) return util_fail(err, errlen, -EINVAL, "store: empty state path");
    /* Create the file ourselves so it is born 0600 whatever the umask; tighten
     * an existing one. SQLite gives -wal/-shm the database file's mode. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return util_fail(err, errlen, -errno, "store: cannot open %s: %s", path, strerror(errno));
    struct stat stt;
    if (fstat(fd, &stt) < 0 || !S_ISREG(stt.st_mode)) {
        close(fd);
        return util_fail(err, errlen, -EINVAL, "store: %s is not a regular file", path);
    }
    if ((stt.st_mode & 0777) != 0600 && fchmod(fd, 0600) < 0) {
        int e = errno;
        close(fd);
        return util_fail(err, errlen, -e, "store: cannot chmod 0600 %s: %s", path, strerror(e));
    }
    close(fd);

    struct store *s = calloc(1, sizeof *s);
    if (!s) return util_fail(err, errlen, -ENOMEM, "store: out of memory");
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->mu, &a);
    pthread_mutexattr_destroy(&a);
    s->persist_prompts = persist_prompts;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW, NULL) !=
        SQLITE_OK) {
        int rc = util_fail(err, errlen, -EIO, "store: sqlite open %s: %s", path,
                           s->db ? sqlite3_errmsg(s->db) : "out of memory");
        store_close(s);
        return rc;
    }
    sqlite3_busy_timeout(s->db, 5000);
    sqlite3_extended_result_codes(s->db, 1);
    /* WAL: readers never block the writer. synchronous=NORMAL in WAL keeps the
     * database consistent across a process crash; the last commits may be lost
     * only on power loss (acceptable: jobs are retried by clients). */
    int rc = exec(s, "PRAGMA journal_mode=WAL", err, errlen);
    if (rc == 0) rc = exec(s, "PRAGMA synchronous=NORMAL", err, errlen);
    if (rc == 0) rc = exec(s, "PRAGMA foreign_keys=ON", err, errlen);
    if (rc == 0) rc = exec(s, "PRAGMA secure_delete=ON", err, errlen); /* deleted bodies are zeroed on disk */
    if (rc == 0) rc = migrate(s, err, errlen);
    for (int i = 0; rc == 0 && i < S__N; i++)
        if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) != SQLITE_OK)
            rc = db_fail(s, err, errlen, "prepare");
    if (rc < 0) { store_close(s); return rc; }
    *out = s;
    return 0;
}

void store_close(struct store *s) {
    if (!s) return;
    for (int i = 0; i < S__N; i++) sqlite3_finalize(s->st[i]);
    if (s->db) sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int store_schema_version(struct store *s) { return s->version; }

/* ======================================================================
 * job transitions
 * ==================================================================== */
static int queue_row(struct store *s, const char *id, const char *prio, const char *body, size_t body_len,
                     int64_t now_ms, char *err, size_t errlen) {
    sqlite3_stmt *st = stmt(s, S_INSERT_QUEUE);
    bind_str(st, 1, id);
    bind_str(st, 2, prio);
    sqlite3_bind_int64(st, 3, now_ms);
    if (s->persist_prompts && body) sqlite3_bind_blob(st, 4, body, (int)body_len, SQLITE_STATIC);
    else sqlite3_bind_null(st, 4);
    int rc = step_write(s, st, err, errlen, "insert queue");
    return rc < 0 ? rc : 0;
}

/* the job's queue row goes (and its body, the prompt, with it) */
static int dequeue(struct store *s, const char *id, char *err, size_t errlen) {
    sqlite3_stmt *st = stmt(s, S_DEL_QUEUE);
    bind_str(st, 1, id);
    return step_write(s, st, err, errlen, "dequeue");
}

int store_job_insert(struct store *s, const struct store_job *j, const char *body, size_t body_len, char *err,
                     size_t errlen) {
    if (!job_id_valid(j->id, JOB_ID_MAX) || too_long(j->tenant, JOB_TENANT_MAX) ||
        too_long(j->session, JOB_SESSION_MAX) || !j->model_ref[0] || too_long(j->model_ref, JOB_MODEL_REF_MAX) ||
        (unsigned)j->priority >= JOB__PRIO_COUNT || body_len > STORE_BODY_MAX)
        return util_fail(err, errlen, -EINVAL, "store: invalid job fields");
    int rc = tx_begin(s, err, errlen);
    if (rc == 0) {
        sqlite3_stmt *st = stmt(s, S_INSERT_JOB);
        bind_str(st, 1, j->id);
        bind_str(st, 2, j->tenant);
        bind_str(st, 3, j->session);
        bind_str(st, 4, job_prio_name(j->priority));
        bind_str(st, 5, j->model_ref);
        bind_str(st, 6, j->prompt_hash);
        bind_str(st, 7, j->params[0] ? j->params : "{}");
        sqlite3_bind_int64(st, 8, (sqlite3_int64)j->seed);
        sqlite3_bind_int64(st, 9, j->created_ms);
        rc = step_write(s, st, err, errlen, "insert job");
        if (rc >= 0)
            rc = queue_row(s, j->id, job_prio_name(j->priority), body, body_len, j->created_ms, err, errlen);
    }
    return tx_end(s, rc, err, errlen);
}

int store_job_dispatch(struct store *s, const char *id, const char *worker_id, const char *pool_id, int64_t now_ms,
                       char *err, size_t errlen) {
    if (too_long(worker_id, JOB_WORKER_ID_MAX) || too_long(pool_id, JOB_POOL_ID_MAX))
        return util_fail(err, errlen, -EINVAL, "store: worker/pool id too long");
    int rc = tx_begin(s, err, errlen);
    if (rc == 0) {
        sqlite3_stmt *st = stmt(s, S_DISPATCH);
        bind_str(st, 1, id);
        bind_str(st, 2, worker_id);
        bind_str(st, 3, pool_id);
        sqlite3_bind_int64(st, 4, now_ms);
        rc = step_write(s, st, err, errlen, "dispatch");
        if (rc == 0) rc = util_fail(err, errlen, -ESTALE, "store: job %s is not queued", id);
        if (rc > 0) rc = dequeue(s, id, err, errlen); /* the prompt leaves the disk with the dispatch */
    }
    return tx_end(s, rc, err, errlen);
}

int store_job_started(struct store *s, const char *id, int64_t tokens_in, int64_t now_ms, char *err, size_t errlen) {
    int rc = write_locked(s, S_STARTED, "started", err, errlen, "sII", id, now_ms, tokens_in);
    if (rc == 0) rc = util_fail(err, errlen, -ESTALE, "store: job %s is not dispatched", id);
    return rc < 0 ? rc : 0;
}

int store_job_requeue(struct store *s, const char *id, const char *body, size_t body_len, const char *last_error,
                      int64_t now_ms, char *err, size_t errlen) {
    if (body_len > STORE_BODY_MAX) return util_fail(err, errlen, -EINVAL, "store: body too large");
    int rc = tx_begin(s, err, errlen);
    if (rc == 0) {
        sqlite3_stmt *st = stmt(s, S_REQUEUE);
        bind_str(st, 1, id);
        sqlite3_bind_int64(st, 2, now_ms);
        bind_str(st, 3, last_error);
        rc = step_write(s, st, err, errlen, "requeue");
        if (rc == 0) rc = util_fail(err, errlen, -ESTALE, "store: job %s is not dispatched or running", id);
        if (rc > 0) {
            struct store_job j;
            rc = store_job_get(s, id, &j);
            if (rc == 0) rc = queue_row(s, id, job_prio_name(j.priority), body, body_len, now_ms, err, errlen);
        }
    }
    return tx_end(s, rc, err, errlen);
}

int store_job_finish(struct store *s, const char *id, enum job_status final, const char *error_code,
                     const char *last_error, int64_t tokens_in, int64_t tokens_out, int64_t now_ms, char *err,
                     size_t errlen) {
    LLORCH_ASSERT(job_status_terminal(final));
    int rc = tx_begin(s, err, errlen);
    if (rc == 0) {
        sqlite3_stmt *st = stmt(s, S_FINISH);
        bind_str(st, 1, id);
        bind_str(st, 2, job_status_name(final));
        bind_str(st, 3, error_code);
        bind_str(st, 4, last_error);
        sqlite3_bind_int64(st, 5, tokens_in);
        sqlite3_bind_int64(st, 6, tokens_out);
        sqlite3_bind_int64(st, 7, now_ms);
        rc = step_write(s, st, err, errlen, "finish");
        if (rc == 0) rc = util_fail(err, errlen, -ESTALE, "store: job %s already ended or unknown", id);
        if (rc > 0) rc = dequeue(s, id, err, errlen);
    }
    return tx_end(s, rc, err, errlen);
}

static void row_to_job(sqlite3_stmt *st, struct store_job *j) {
    memset(j, 0, sizeof *j);
    col_copy(st, 0, j->id, sizeof j->id);
    col_copy(st, 1, j->tenant, sizeof j->tenant);
    col_copy(st, 2, j->session, sizeof j->session);
    int v = job_status_parse((const char *)sqlite3_column_text(st, 3));
    j->status = v < 0 ? JOB_FAILED : (enum job_status)v;
    v = job_prio_parse((const char *)sqlite3_column_text(st, 4));
    j->priority = v < 0 ? JOB_PRIO_BATCH : (enum job_prio)v;
    col_copy(st, 5, j->model_ref, sizeof j->model_ref);
    col_copy(st, 6, j->prompt_hash, sizeof j->prompt_hash);
    col_copy(st, 7, j->params, sizeof j->params);
    j->seed = (uint64_t)sqlite3_column_int64(st, 8);
    col_copy(st, 9, j->worker_id, sizeof j->worker_id);
    col_copy(st, 10, j->pool_id, sizeof j->pool_id);
    j->created_ms = sqlite3_column_int64(st, 11);
    j->queued_ms = sqlite3_column_int64(st, 12);
    j->dispatched_ms = sqlite3_column_int64(st, 13);
    j->started_ms = sqlite3_column_int64(st, 14);
    j->completed_ms = sqlite3_column_int64(st, 15);
    col_copy(st, 16, j->outcome, sizeof j->outcome);
    col_copy(st, 17, j->error_code, sizeof j->error_code);
    j->tokens_in = sqlite3_column_int64(st, 18);
    j->tokens_out = sqlite3_column_int64(st, 19);
    j->retry_count = sqlite3_column_int(st, 20);
    col_copy(st, 21, j->last_error, sizeof j->last_error);
}

int store_job_get(struct store *s, const char *id, struct store_job *out) {
    lock(s);
    sqlite3_stmt *st = stmt(s, S_GET);
    bind_str(st, 1, id);
    int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -ENOENT;
    if (rc == 0) row_to_job(st, out);
    sqlite3_reset(st);
    unlock(s);
    return rc;
}

int store_queue_body(struct store *s, const char *id, char **body, size_t *len) {
    *body = NULL;
    *len = 0;
    lock(s);
    sqlite3_stmt *st = stmt(s, S_BODY);
    bind_str(st, 1, id);
    int rc = -ENOENT;
    if (sqlite3_step(st) == SQLITE_ROW) {
        int n = sqlite3_column_bytes(st, 0);
        const void *b = sqlite3_column_blob(st, 0);
        char *c = malloc((size_t)n + 1);
        if (!c) rc = -ENOMEM;
        else {
            if (n) memcpy(c, b, (size_t)n);
            c[n] = 0;
            *body = c;
            *len = (size_t)n;
            rc = 0;
        }
    }
    sqlite3_reset(st);
    unlock(s);
    return rc;
}

/* ======================================================================
 * recovery
 * ==================================================================== */
int store_recover(struct store *s, int64_t now_ms, store_recover_cb cb, void *ctx, int *n_requeued, int *n_failed,
                  char *err, size_t errlen) {
    *n_requeued = *n_failed = 0;
    lock(s);
    int rc = begin(s, err, errlen);
    sqlite3_stmt *q = NULL, *f = NULL;
    if (rc == 0) {
        /* 1. jobs the previous process had handed to workers: their streams are gone */
        const char *fail_sql =
            "UPDATE jobs SET status = 'failed', outcome = 'failed', error_code = 'ORCHESTRATOR_RESTARTED',"
            " last_error = ?2, completed_ms = ?1 WHERE status IN ('dispatched', 'running')";
        if (sqlite3_prepare_v2(s->db, fail_sql, -1, &f, NULL) != SQLITE_OK) rc = db_fail(s, err, errlen, "prepare");
        else {
            sqlite3_bind_int64(f, 1, now_ms);
            bind_str(f, 2, "the orchestrator restarted while the job was on a worker");
            rc = step_write(s, f, err, errlen, "fail in-flight");
            if (rc >= 0) *n_failed += rc;
            sqlite3_finalize(f);
            f = NULL;
        }
    }
    if (rc >= 0) {
        /* 2. queued jobs that cannot be resumed: no stored body (persist_prompts
         *    never, now or then) or no queue row at all */
        if (!s->persist_prompts) rc = exec(s, "UPDATE queue SET body = NULL", err, errlen);
        const char *fail_q =
            "UPDATE jobs SET status = 'failed', outcome = 'failed', error_code = 'ORCHESTRATOR_RESTARTED',"
            " last_error = ?2, completed_ms = ?1 WHERE status = 'queued'"
            " AND id NOT IN (SELECT job_id FROM queue WHERE body IS NOT NULL)";
        if (rc >= 0 && sqlite3_prepare_v2(s->db, fail_q, -1, &f, NULL) != SQLITE_OK) rc = db_fail(s, err, errlen, "prepare");
        else if (rc >= 0) {
            sqlite3_bind_int64(f, 1, now_ms);
            bind_str(f, 2, "the orchestrator restarted and the queued request was not persisted");
            rc = step_write(s, f, err, errlen, "fail queued");
            if (rc >= 0) *n_failed += rc;
            sqlite3_finalize(f);
        }
        if (rc >= 0) rc = exec(s, "DELETE FROM queue WHERE body IS NULL OR job_id NOT IN"
                                  " (SELECT id FROM jobs WHERE status = 'queued')", err, errlen);
    }
    if (rc >= 0) rc = commit(s, err, errlen);
    if (rc < 0) { rollback(s); unlock(s); return rc; }

    /* 3. hand back the resumable jobs in queue order */
    if (sqlite3_prepare_v2(s->db, "SELECT job_id, body FROM queue ORDER BY seq", -1, &q, NULL) != SQLITE_OK) {
        rc = db_fail(s, err, errlen, "prepare");
        unlock(s);
        return rc;
    }
    rc = 0;
    while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
        struct store_job *j = malloc(sizeof *j);
        if (!j) { rc = -ENOMEM; break; }
        if (store_job_get(s, (const char *)sqlite3_column_text(q, 0), j) == 0) {
            int r = cb ? cb(ctx, j, (const char *)sqlite3_column_blob(q, 1), (size_t)sqlite3_column_bytes(q, 1)) : 0;
            if (r < 0) rc = util_fail(err, errlen, r, "store: recovery callback refused job %s", j->id);
            else (*n_requeued)++;
        }
        free(j);
    }
    sqlite3_finalize(q);
    unlock(s);
    return rc;
}

/* ======================================================================
 * checkpoints, quotas, config, counts
 * ==================================================================== */
int store_checkpoint_put(struct store *s, const char *job_id, int64_t last_event_id, const char *terminal_event,
                         const char *terminal_data, char *err, size_t errlen) {
    int rc = write_locked(s, S_CKPT_PUT, "checkpoint", err, errlen, "sIss", job_id, last_event_id, terminal_event,
                          terminal_data);
    return rc < 0 ? rc : 0;
}

int store_checkpoint_get(struct store *s, const char *job_id, int64_t *last_event_id, char *event, size_t ecap,
                         char *data, size_t dcap) {
    lock(s);
    sqlite3_stmt *st = stmt(s, S_CKPT_GET);
    bind_str(st, 1, job_id);
    int rc = -ENOENT;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *last_event_id = sqlite3_column_int64(st, 0);
        if (event && ecap) col_copy(st, 1, event, ecap);
        if (data && dcap) col_copy(st, 2, data, dcap);
        rc = 0;
    }
    sqlite3_reset(st);
    unlock(s);
    return rc;
}

int store_quota_set(struct store *s, const char *tenant, int64_t max_concurrent, int64_t daily_tokens) {
    if (too_long(tenant, JOB_TENANT_MAX)) return -EINVAL;
    int rc = write_locked(s, S_QUOTA_SET, "quota", NULL, 0, "sII", tenant, max_concurrent, daily_tokens);
    return rc < 0 ? rc : 0;
}

int store_quota_get(struct store *s, const char *tenant, int64_t day, struct store_quota *out) {
    lock(s);
    sqlite3_stmt *st = stmt(s, S_QUOTA_GET);
    bind_str(st, 1, tenant);
    sqlite3_bind_int64(st, 2, day);
    int rc = -ENOENT;
    if (sqlite3_step(st) == SQLITE_ROW) {
        out->max_concurrent = sqlite3_column_int64(st, 0);
        out->daily_tokens = sqlite3_column_int64(st, 1);
        out->tokens_today = sqlite3_column_int64(st, 2);
        out->day = day;
        rc = 0;
    }
    sqlite3_reset(st);
    unlock(s);
    return rc;
}

int store_quota_add_tokens(struct store *s, const char *tenant, int64_t day, int64_t tokens) {
    int rc = write_locked(s, S_QUOTA_ADD, "quota add", NULL, 0, "sII", tenant, day, tokens);
    return rc < 0 ? rc : rc == 0 ? -ENOENT : 0;
}

int store_config_put(struct store *s, const char *key, const char *value) {
    int rc = write_locked(s, S_CFG_PUT, "config", NULL, 0, "ss", key, value);
    return rc < 0 ? rc : 0;
}

int store_config_get(struct store *s, const char *key, char *out, size_t cap) {
    lock(s);
    sqlite3_stmt *st = stmt(s, S_CFG_GET);
    bind_str(st, 1, key);
    int rc = -ENOENT;
    if (sqlite3_step(st) == SQLITE_ROW) {
        col_copy(st, 0, out, cap);
        rc = 0;
    }
    sqlite3_reset(st);
    unlock(s);
    return rc;
}

int store_count_by_status(struct store *s, int64_t counts[JOB__STATUS_COUNT]) {
    memset(counts, 0, sizeof(int64_t) * JOB__STATUS_COUNT);
    lock(s);
    sqlite3_stmt *st = stmt(s, S_COUNT);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        int v = job_status_parse((const char *)sqlite3_column_text(st, 0));
        if (v >= 0) counts[v] = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    unlock(s);
    return r == SQLITE_DONE ? 0 : -EIO;
}

int store_maintenance(struct store *s) {
    lock(s);
    int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    unlock(s);
    return rc == SQLITE_OK ? 0 : -EIO;
}

/* ======================================================================
 * placements
 * ==================================================================== */
int store_placement_put(struct store *s, const char *model_ref, const char *pool_id, int gpu_id, int64_t now_ms,
                        char *err, size_t errlen) {
    if (too_long(model_ref, JOB_MODEL_REF_MAX) || too_long(pool_id, JOB_POOL_ID_MAX))
        return util_fail(err, errlen, -EINVAL, "store: placement field too long");
    int rc = write_locked(s, S_PL_PUT, "placement put", err, errlen, "ssiI", model_ref, pool_id, gpu_id, now_ms);
    return rc < 0 ? rc : 0;
}

int store_placement_del(struct store *s, const char *model_ref, const char *pool_id, int gpu_id, char *err,
                        size_t errlen) {
    int rc = write_locked(s, S_PL_DEL, "placement delete", err, errlen, "ssi", model_ref, pool_id, gpu_id);
    return rc < 0 ? rc : rc == 0 ? -ENOENT : 0;
}

int store_placement_list(struct store *s, store_placement_cb cb, void *ctx) {
    lock(s);
    sqlite3_stmt *st = stmt(s, S_PL_LIST);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        const char *m = (const char *)sqlite3_column_text(st, 0), *p = (const char *)sqlite3_column_text(st, 1);
        if (cb(ctx, m ? m : "", p ? p : "", sqlite3_column_int(st, 2)) != 0) {
            r = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    unlock(s);
    return r == SQLITE_DONE ? 0 : -EIO;
}
