/* health — the cached facts GET /health and /metrics serve. Refreshed at
 * startup and every --residency-interval-s (SPEC §3.5: the residency check
 * runs on a timer, never per request), so a health probe costs a mutex held
 * for a copy, never a device call. The refresh itself calls the engine, so
 * it runs under engine_mu (see worker.h). */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "worker/worker.h"

void wk_health_refresh(worker *w) {
    char msg[256] = "";
    int res = eng_model_check_residency(w->model, msg, sizeof msg);
    const eng_model_info *in = eng_model_get_info(w->model);
    uint64_t mem = in ? in->memory_bytes : 0;
    pthread_mutex_lock(&w->health_mu);
    int was = w->resident;
    w->resident = res == 1;
    w->memory_bytes = mem;
    snprintf(w->resident_msg, sizeof w->resident_msg, "%s", res == 1 ? "" : msg);
    pthread_mutex_unlock(&w->health_mu);
    if (res != 1 && was) LOG_ERROR(WK_COMPONENT, "residency_lost", NULL, "model no longer resident: %s", msg);
    LOG_KV(LOG_DEBUG, WK_COMPONENT, "health_refresh", NULL, "\"resident\":%s,\"memory_bytes\":%llu",
           res == 1 ? "true" : "false", (unsigned long long)mem);
}

void wk_health_tick(worker *w) {
    if (pthread_mutex_trylock(&w->engine_mu) == 0) {
        wk_health_refresh(w);
        pthread_mutex_unlock(&w->engine_mu);
    } else {
        atomic_store(&w->refresh_req, 1); /* a job runs: its thread refreshes between steps */
    }
}
