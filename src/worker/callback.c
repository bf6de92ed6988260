/* callback — the ready callback (SPEC §3.3), sent once the HTTP server is
 * listening. Transport errors and 5xx are retried (--callback-attempts, with
 * 0.5 s, 1 s, 2 s ... pauses); a 4xx is final (the pool refused us: wrong
 * token, unknown worker). Any failure makes main exit non-zero. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/http_client.h"
#include "common/log.h"
#include "worker/worker.h"

static void build_body(worker *w, struct util_sb *sb) {
    const eng_model_info *in = &w->info;
    uint64_t mem;
    pthread_mutex_lock(&w->health_mu);
    mem = w->memory_bytes;
    pthread_mutex_unlock(&w->health_mu);
    int vram_only = strcmp(WK_MEMORY_ARCH, "vram-only") == 0;
    util_sb_puts(sb, "{\"worker_id\":");
    util_sb_json_str(sb, w->a.worker_id);
    util_sb_puts(sb, ",\"model_ref\":");
    if (w->a.model_ref) util_sb_json_str(sb, w->a.model_ref);
    else util_sb_puts(sb, "null");
    util_sb_puts(sb, ",\"uri\":");
    util_sb_json_str(sb, w->uri);
    util_sb_puts(sb, ",\"worker_type\":\"" WK_WORKER_TYPE "\",\"memory_architecture\":\"" WK_MEMORY_ARCH "\"");
    util_sb_printf(sb, ",\"memory_bytes\":%llu,\"vram_bytes\":%llu,\"capabilities\":[\"text-gen\"],\"gpu_ids\":[",
                   (unsigned long long)mem, (unsigned long long)(vram_only ? mem : 0));
    if (vram_only && w->a.gpu_device >= 0) util_sb_printf(sb, "%d", w->a.gpu_device);
    util_sb_puts(sb, "],\"quant_kind\":");
    util_sb_json_str(sb, in->quant_kind ? in->quant_kind : "unknown");
    util_sb_printf(sb, ",\"context_length\":%d,\"spawn_token\":", eng_session_n_ctx(w->sess));
    if (w->a.spawn_token) util_sb_json_str(sb, w->a.spawn_token);
    else util_sb_puts(sb, "null");
    util_sb_putc(sb, '}');
}

int wk_ready_callback(worker *w, char *err, size_t errlen) {
    struct util_sb body;
    util_sb_init(&body);
    build_body(w, &body);
    if (body.oom) {
        util_sb_free(&body);
        return util_fail(err, errlen, -1, "out of memory");
    }
    char hdr[128];
    snprintf(hdr, sizeof hdr, "X-Worker-Id: %s", w->a.worker_id);
    const char *hdrs[] = {hdr, NULL};
    http_client_req rq = {.url = w->a.callback_url, .body = body.buf, .body_len = body.len, .headers = hdrs,
                          .timeout_ms = 5000, .max_response_bytes = 64 * 1024};
    int rc = -1;
    useconds_t pause = 500000;
    for (int attempt = 1; attempt <= w->a.callback_attempts; attempt++) {
        http_resp r;
        char e[256] = "";
        int hr = http_client_do(&rq, &r, e, sizeof e);
        if (hr == 0 && r.status >= 200 && r.status < 300) {
            LOG_KV(LOG_INFO, WK_COMPONENT, "ready_callback", NULL, "\"status\":%ld,\"attempt\":%d,\"uri\":\"%s\"",
                   r.status, attempt, w->uri);
            http_resp_free(&r);
            rc = 0;
            break;
        }
        if (hr == 0) {
            util_fail(err, errlen, -1, "ready callback to %s answered %ld", w->a.callback_url, r.status);
        } else {
            util_fail(err, errlen, -1, "ready callback to %s failed: %s", w->a.callback_url, e);
        }
        LOG_KV(LOG_WARN, WK_COMPONENT, "ready_callback_failed", NULL, "\"attempt\":%d,\"status\":%ld", attempt,
               hr == 0 ? r.status : 0L);
        int final = hr == 0 && r.status >= 400 && r.status < 500;
        http_resp_free(&r);
        if (final || attempt == w->a.callback_attempts) break;
        usleep(pause);
        pause *= 2;
    }
    util_sb_free(&body);
    return rc;
}
