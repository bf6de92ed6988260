/* sched_lua — see sched_lua.h. The sandbox is built from a whitelist: the
 * script's _ENV is a fresh table holding copies of the allowed functions, so
 * nothing not named below is reachable (the real globals of the state are
 * never visible to the chunk). */
#include "orch/core/sched_lua.h"

#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#define SLUA_HOOK_EVERY 1000          /* VM instructions between clock checks */
#define SLUA_DEFAULT_CAP (8u << 20)
#define SLUA_SCRIPT_MAX (1u << 20)

struct slua {
    lua_State *L;
    size_t used, cap;
    uint64_t deadline_ns;
    int64_t budget_ms;                /* per call, and for the initial chunk */
    int env_ref;                      /* registry ref of the sandbox _ENV */
};

/* ---- limits ------------------------------------------------------------ */
static void *slua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    struct slua *l = ud;
    size_t old = ptr ? osize : 0;     /* for a new block osize is a type tag */
    if (nsize == 0) {
        free(ptr);
        l->used -= old;
        return NULL;
    }
    if (nsize > old && l->used - old + nsize > l->cap) return NULL; /* Lua raises "not enough memory" */
    void *n = realloc(ptr, nsize);
    if (n) l->used = l->used - old + nsize;
    return n;
}

static void slua_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    struct slua *l = *(struct slua **)lua_getextraspace(L);
    if (util_now_ns() > l->deadline_ns) luaL_error(L, "policy time budget exceeded");
}

/* ---- sandbox ----------------------------------------------------------- */
/* no pcall/xpcall: a script could otherwise catch the budget/memory errors
 * raised by the hook and the allocator and keep running */
static const char *const base_ok[] = {
    "assert", "error", "ipairs", "next", "pairs", "select", "tonumber", "tostring", "type",
    "rawequal", "rawget", "rawlen", NULL,
};
/* no string.dump (bytecode), no find/match/gmatch/gsub (C-side backtracking
 * is invisible to the instruction hook) */
static const char *const string_ok[] = { "byte", "char", "format", "len", "lower", "upper", "rep", "reverse",
                                         "sub", NULL };
static const char *const table_ok[] = { "concat", "insert", "remove", "sort", "unpack", "pack", "move", NULL };
static const char *const math_ok[] = { "abs", "ceil", "floor", "fmod", "huge", "log", "max", "maxinteger", "min",
                                       "mininteger", "modf", "pi", "sqrt", "tointeger", "type", "ult", "exp",
                                       "random", NULL };

/* copies the named fields of the table at src (absolute index) into a new table left on the stack */
static void copy_fields(lua_State *L, int src, const char *const *names) {
    lua_newtable(L);
    for (; *names; names++) {
        lua_getfield(L, src, *names);
        lua_setfield(L, -2, *names);
    }
}

/* runs in protected mode: builds _ENV and stores it in the registry */
static int build_env(lua_State *L) {
    struct slua *l = lua_touserdata(L, 1);
    luaL_requiref(L, "_G", luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    int g = lua_absindex(L, -4), str = lua_absindex(L, -3), tab = lua_absindex(L, -2), mth = lua_absindex(L, -1);
    copy_fields(L, g, base_ok);       /* the env */
    int env = lua_absindex(L, -1);
    copy_fields(L, str, string_ok);
    /* method calls on strings ("x"):rep() go through the string metatable:
     * point it at the restricted table too */
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1)) {
        lua_pushvalue(L, -3);
        lua_setfield(L, -2, "__index");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_setfield(L, env, "string");
    copy_fields(L, tab, table_ok);
    lua_setfield(L, env, "table");
    copy_fields(L, mth, math_ok);
    lua_setfield(L, env, "math");
    lua_pushliteral(L, LUA_VERSION);
    lua_setfield(L, env, "_VERSION");
    lua_pushvalue(L, env);
    l->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static void arm(struct slua *l, int64_t budget_ms) {
    l->deadline_ns = util_now_ns() + (uint64_t)budget_ms * 1000000ull;
}

int slua_new_text(const char *name, const char *text, size_t len, int64_t budget_ms, size_t mem_cap,
                  struct slua **out, char *err, size_t errlen) {
    *out = NULL;
    if (budget_ms <= 0) budget_ms = 50;
    struct slua *l = calloc(1, sizeof *l);
    if (!l) return util_fail(err, errlen, -ENOMEM, "lua policy: out of memory");
    l->cap = mem_cap ? mem_cap : SLUA_DEFAULT_CAP;
    l->L = lua_newstate(slua_alloc, l);
    if (!l->L) { free(l); return util_fail(err, errlen, -ENOMEM, "lua policy: cannot create a state"); }
    *(struct slua **)lua_getextraspace(l->L) = l;
    l->budget_ms = budget_ms;
    lua_sethook(l->L, slua_hook, LUA_MASKCOUNT, SLUA_HOOK_EVERY);
    arm(l, budget_ms);
    lua_pushcfunction(l->L, build_env);
    lua_pushlightuserdata(l->L, l);
    if (lua_pcall(l->L, 1, 0, 0) != LUA_OK) {
        int rc = util_fail(err, errlen, -ENOMEM, "lua policy: sandbox setup failed: %s", lua_tostring(l->L, -1));
        slua_free(l);
        return rc;
    }
    /* text chunks only: a precompiled chunk could break the VM's invariants */
    if (luaL_loadbufferx(l->L, text, len, name, "t") != LUA_OK) {
        int rc = util_fail(err, errlen, -EINVAL, "lua policy %s: %s", name, lua_tostring(l->L, -1));
        slua_free(l);
        return rc;
    }
    lua_rawgeti(l->L, LUA_REGISTRYINDEX, l->env_ref);
    if (!lua_setupvalue(l->L, -2, 1)) lua_pop(l->L, 1);
    arm(l, budget_ms);
    if (lua_pcall(l->L, 0, 0, 0) != LUA_OK) {
        int rc = util_fail(err, errlen, -EINVAL, "lua policy %s: %s", name, lua_tostring(l->L, -1));
        slua_free(l);
        return rc;
    }
    lua_rawgeti(l->L, LUA_REGISTRYINDEX, l->env_ref);
    int t = lua_getfield(l->L, -1, "choose");
    lua_pop(l->L, 2);
    if (t != LUA_TFUNCTION) {
        slua_free(l);
        return util_fail(err, errlen, -EINVAL, "lua policy %s: no function choose(job, candidates)", name);
    }
    *out = l;
    return 0;
}

int slua_new(const char *path, int64_t budget_ms, size_t mem_cap, struct slua **out, char *err, size_t errlen) {
    char *text = NULL;
    size_t len = 0;
    char m[256];
    *out = NULL;
    if (util_read_file(path, SLUA_SCRIPT_MAX, &text, &len, m, sizeof m) < 0)
        return util_fail(err, errlen, -EINVAL, "lua policy %s: %s", path, m);
    char name[300];
    snprintf(name, sizeof name, "@%s", path);
    int rc = slua_new_text(name, text, len, budget_ms, mem_cap, out, err, errlen);
    free(text);
    return rc;
}

void slua_free(struct slua *l) {
    if (!l) return;
    if (l->L) lua_close(l->L);
    free(l);
}

size_t slua_mem_used(const struct slua *l) { return l->used; }

/* ---- one call ------------------------------------------------------------ */
struct call_args {
    const struct slua_job *job;
    const struct slua_cand *c;
    size_t n;
    int env_ref;
};

static void set_str(lua_State *L, const char *k, const char *v) {
    if (!v) return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}
static void set_int(lua_State *L, const char *k, lua_Integer v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* protected: builds the arguments (allocation may fail) and calls choose */
static int do_choose(lua_State *L) {
    const struct call_args *a = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->env_ref);
    lua_getfield(L, -1, "choose");
    lua_createtable(L, 0, 6);
    set_str(L, "id", a->job->id);
    set_str(L, "model", a->job->model);
    set_str(L, "capability", a->job->capability);
    set_str(L, "priority", a->job->priority);
    set_str(L, "kind", a->job->kind);
    set_int(L, "est_bytes", (lua_Integer)a->job->est_bytes);
    lua_createtable(L, (int)a->n, 0);
    for (size_t i = 0; i < a->n; i++) {
        const struct slua_cand *c = &a->c[i];
        lua_createtable(L, 0, 9);
        set_str(L, "id", c->id);
        set_str(L, "pool_id", c->pool_id);
        set_str(L, "model", c->model);
        set_int(L, "gpu_id", c->gpu_id);
        set_int(L, "active_jobs", c->active_jobs);
        set_int(L, "workers", c->workers);
        set_int(L, "last_used_ms", c->last_used_ms);
        set_int(L, "room_bytes", (lua_Integer)c->room_bytes);
        set_int(L, "total_bytes", (lua_Integer)c->total_bytes);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_call(L, 2, 1);
    return 1;
}

int slua_choose(struct slua *l, const struct slua_job *job, const struct slua_cand *c, size_t n, char *err,
                size_t errlen) {
    lua_State *L = l->L;
    int64_t budget = l->budget_ms;
    struct call_args a = { job, c, n, l->env_ref };
    arm(l, budget > 0 ? budget : 50);
    lua_pushcfunction(L, do_choose);
    lua_pushlightuserdata(L, &a);
    int rc = lua_pcall(L, 1, 1, 0);
    int idx = -1;
    if (rc != LUA_OK) {
        const char *m = lua_tostring(L, -1);
        util_fail(err, errlen, rc == LUA_ERRMEM ? -ENOMEM : -EINVAL, "lua policy: %s",
                  rc == LUA_ERRMEM ? "memory cap exceeded" : (m ? m : "error"));
        idx = rc == LUA_ERRMEM ? -ENOMEM : (m && strstr(m, "time budget") ? -ETIMEDOUT : -EINVAL);
    } else {
        int isint = 0;
        lua_Integer v = lua_tointegerx(L, -1, &isint);
        if (!isint || v < 1 || (size_t)v > n)
            idx = util_fail(err, errlen, -ERANGE, "lua policy: choose() returned %s, not an index in 1..%zu",
                            lua_tostring(L, -1) ? lua_tostring(L, -1) : luaL_typename(L, -1), n);
        else
            idx = (int)(v - 1);
    }
    lua_pop(L, 1);
    /* reclaim what a failed or greedy call left behind, under the same cap */
    arm(l, budget > 0 ? budget : 50);
    lua_gc(L, LUA_GCCOLLECT);
    return idx;
}
