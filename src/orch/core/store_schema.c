/* store_schema — the versioned migrations of the orchestrator's SQLite file.
 * Embedded as C strings so the binary is self-contained (no migrations folder
 * to ship). Rule: never edit a released migration; append a new version.
 * Each entry runs inside the transaction store_open() holds, together with
 * the row recording it in schema_version, so a crash mid-migration leaves
 * the previous version intact. */
#include "orch/core/store_schema.h"

#include <stddef.h>

static const char m001[] =
    /* one row per job, kept after it ends (no prompt, no output: SPEC §6) */
    "CREATE TABLE jobs ("
    "  id TEXT PRIMARY KEY,"
    "  tenant TEXT NOT NULL DEFAULT '',"
    "  session TEXT NOT NULL DEFAULT '',"
    "  status TEXT NOT NULL CHECK (status IN"
    "    ('queued','dispatched','running','completed','failed','cancelled')),"
    "  priority TEXT NOT NULL CHECK (priority IN ('interactive','batch')),"
    "  model_ref TEXT NOT NULL,"
    "  prompt_hash TEXT NOT NULL DEFAULT '',"
    "  params TEXT NOT NULL DEFAULT '{}',"
    "  seed INTEGER NOT NULL DEFAULT 0,"            /* uint64 stored as its int64 bit pattern */
    "  worker_id TEXT, pool_id TEXT,"
    "  created_ms INTEGER NOT NULL,"
    "  queued_ms INTEGER, dispatched_ms INTEGER, started_ms INTEGER, completed_ms INTEGER,"
    "  outcome TEXT, error_code TEXT,"
    "  tokens_in INTEGER NOT NULL DEFAULT 0, tokens_out INTEGER NOT NULL DEFAULT 0,"
    "  retry_count INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT);"
    "CREATE INDEX jobs_by_status ON jobs(status);"
    "CREATE INDEX jobs_by_tenant ON jobs(tenant, status);"
    /* queue order; body only while the job is queued (privacy rule) */
    "CREATE TABLE queue ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  job_id TEXT NOT NULL UNIQUE REFERENCES jobs(id) ON DELETE CASCADE,"
    "  priority TEXT NOT NULL,"
    "  enqueued_ms INTEGER NOT NULL,"
    "  body BLOB);"
    "CREATE TABLE sse_checkpoints ("
    "  job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,"
    "  last_event_id INTEGER NOT NULL,"
    "  terminal_event TEXT, terminal_data TEXT);"
    "CREATE TABLE tenant_quotas ("
    "  tenant TEXT PRIMARY KEY,"
    "  max_concurrent INTEGER NOT NULL DEFAULT -1,"
    "  daily_tokens INTEGER NOT NULL DEFAULT -1,"
    "  tokens_today INTEGER NOT NULL DEFAULT 0,"
    "  day INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL);";

static const char m002[] =
    /* placements made through POST /v2/placements (catalog placements are
     * read from the config at every start and are not stored) */
    "CREATE TABLE placements ("
    "  model_ref TEXT NOT NULL,"
    "  pool_id TEXT NOT NULL,"
    "  gpu_id INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (model_ref, pool_id, gpu_id));";

static const struct store_migration migrations[] = {
    { 1, "initial schema: jobs, queue, sse_checkpoints, tenant_quotas, config", m001 },
    { 2, "placements made through the API", m002 },
};

const struct store_migration *store_migrations(size_t *n) {
    *n = sizeof migrations / sizeof migrations[0];
    return migrations;
}
