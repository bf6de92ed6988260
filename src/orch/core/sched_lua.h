/* sched_lua — a sandboxed Lua 5.4 policy (internal to sched.c).
 *
 * The script is text only (binary chunks refused) and runs in a fresh state
 * whose environment is a whitelist: base functions without load/loadfile/
 * dofile/require/collectgarbage/print/pcall/xpcall/setmetatable (no way to
 * catch the limit errors, no __gc finalisers), plus string (without
 * dump and the pattern functions, whose C backtracking the instruction hook
 * cannot interrupt), table and math (random seeded by us). No io, os,
 * package, debug, coroutine.
 *
 * Limits: every call (and the initial chunk) runs under a wall-clock budget
 * checked by a count hook every 1000 VM instructions; a custom lua_Alloc
 * refuses allocations beyond the memory cap. Either limit raises a Lua error
 * that the caller treats as a failure of the policy.
 *
 * Contract: the script defines
 *     function choose(job, candidates) ... return index end
 * job = {id, model, capability, priority, est_bytes, kind}; kind is "dispatch"
 * (candidates are workers: {id, pool_id, model, active_jobs, last_used_ms,
 * room_bytes, gpu_id}) or "start" (candidates are devices: {pool_id, gpu_id,
 * room_bytes, total_bytes, workers}). It returns a 1-based index into
 * candidates.
 */
#ifndef LLORCH_ORCH_SCHED_LUA_H
#define LLORCH_ORCH_SCHED_LUA_H

#include <stddef.h>
#include <stdint.h>

struct slua;

struct slua_cand {           /* one candidate, flattened for Lua */
    const char *id;          /* worker id (dispatch) or NULL */
    const char *pool_id;
    const char *model;
    int gpu_id;
    int active_jobs;
    int workers;             /* start: workers already on the device */
    int64_t last_used_ms;
    uint64_t room_bytes, total_bytes;
};

struct slua_job {
    const char *id, *model, *capability, *priority, *kind;
    uint64_t est_bytes;
};

int slua_new(const char *path, int64_t budget_ms, size_t mem_cap, struct slua **out, char *err, size_t errlen);
/* Same, from text (tests). */
int slua_new_text(const char *name, const char *text, size_t len, int64_t budget_ms, size_t mem_cap,
                  struct slua **out, char *err, size_t errlen);
void slua_free(struct slua *l);
/* Returns the 0-based chosen index, or <0 with err set (error, timeout, OOM,
 * out of range). */
int slua_choose(struct slua *l, const struct slua_job *job, const struct slua_cand *c, size_t n, char *err,
                size_t errlen);
size_t slua_mem_used(const struct slua *l);

#endif
