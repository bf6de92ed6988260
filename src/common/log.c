/* log — see log.h. Lines are assembled in a stack buffer and written with one
 * fwrite under a mutex so concurrent threads never interleave within a line. */
#include "common/log.h"
#include "common/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int log_level_current = LOG_INFO;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};

int log_level_parse(const char *name) {
    if (!name) return -1;
    for (int i = 0; i <= LOG_TRACE; i++)
        if (strcasecmp(name, level_names[i]) == 0) return i;
    if (strcasecmp(name, "warning") == 0) return LOG_WARN;
    return -1;
}

void log_set_level(int level) {
    if (level >= LOG_ERROR && level <= LOG_TRACE) log_level_current = level;
}

void log_init(void) {
    int l = log_level_parse(getenv("LLORCH_LOG_LEVEL"));
    if (l >= 0) log_level_current = l;
}

static void emit_line(int level, const char *component, const char *event, const char *cid,
                      const char *kv, const char *msg) {
    char line[8192];
    struct util_sb sb;
    util_sb_init_fixed(&sb, line, sizeof line);
    char ts[40];
    util_time_rfc3339_ms(ts, sizeof ts);
    util_sb_printf(&sb, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", ts,
                   level_names[level < 0 ? 0 : level > LOG_TRACE ? LOG_TRACE : level]);
    util_sb_json_str(&sb, component ? component : "-");
    util_sb_puts(&sb, ",\"event\":");
    util_sb_json_str(&sb, event ? event : "log");
    if (cid && *cid) {
        util_sb_puts(&sb, ",\"correlation_id\":");
        util_sb_json_str(&sb, cid);
    }
    if (msg && *msg) {
        util_sb_puts(&sb, ",\"msg\":");
        util_sb_json_str(&sb, msg);
    }
    if (kv && *kv) {
        util_sb_puts(&sb, ",");
        util_sb_puts(&sb, kv);
    }
    util_sb_puts(&sb, "}\n");
    pthread_mutex_lock(&log_mu);
    fwrite(line, 1, sb.len, stderr);
    fflush(stderr);
    pthread_mutex_unlock(&log_mu);
}

void log_emit(int level, const char *component, const char *event, const char *cid,
              const char *kv, const char *fmt, ...) {
    char msg[4096];
    msg[0] = 0;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    emit_line(level, component, event, cid, kv, msg);
}

void log_emit_kv(int level, const char *component, const char *event, const char *cid,
                 const char *kvfmt, ...) {
    char kv[4096];
    kv[0] = 0;
    va_list ap;
    va_start(ap, kvfmt);
    vsnprintf(kv, sizeof kv, kvfmt, ap);
    va_end(ap);
    emit_line(level, component, event, cid, kv, NULL);
}
