/* log — JSON-lines logging on stderr.
 *
 * One object per line: {"ts","level","component","event","correlation_id"?,"msg",...}.
 * The macros test the level before evaluating their arguments, so a DEBUG line
 * in a hot loop costs one integer compare when DEBUG is off.
 *
 *   LOG_INFO("worker", "execute_start", cid, "job %s tokens_in=%d", id, n);
 *   LOG_KV_INFO("worker", "model_load_progress", NULL, "\"percent\":%d", pct);
 *
 * The _KV variants take a format that produces extra JSON members (without
 * braces) that are appended verbatim; the caller owns their validity.
 */
#ifndef LLORCH_LOG_H
#define LLORCH_LOG_H

#include <stdarg.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3, LOG_TRACE = 4 };

extern int log_level_current; /* default LOG_INFO; LLORCH_LOG_LEVEL env read by log_init */

/* Reads LLORCH_LOG_LEVEL (error|warn|info|debug|trace). Safe to call twice. */
void log_init(void);
/* Returns -1 for an unknown name. */
int log_level_parse(const char *name);
void log_set_level(int level);

/* msg is printf-style and JSON-escaped; kv (may be NULL) is raw JSON members. */
void log_emit(int level, const char *component, const char *event, const char *correlation_id,
              const char *kv, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* printf into a raw JSON-members string, then emit */
void log_emit_kv(int level, const char *component, const char *event, const char *correlation_id,
                 const char *kvfmt, ...) __attribute__((format(printf, 5, 6)));

#define LOG_AT(lvl, comp, ev, cid, ...) \
    do { if ((lvl) <= log_level_current) log_emit((lvl), (comp), (ev), (cid), NULL, __VA_ARGS__); } while (0)
#define LOG_ERROR(comp, ev, cid, ...) LOG_AT(LOG_ERROR, comp, ev, cid, __VA_ARGS__)
#define LOG_WARN(comp, ev, cid, ...)  LOG_AT(LOG_WARN, comp, ev, cid, __VA_ARGS__)
#define LOG_INFO(comp, ev, cid, ...)  LOG_AT(LOG_INFO, comp, ev, cid, __VA_ARGS__)
#define LOG_DEBUG(comp, ev, cid, ...) LOG_AT(LOG_DEBUG, comp, ev, cid, __VA_ARGS__)
#define LOG_TRACE(comp, ev, cid, ...) LOG_AT(LOG_TRACE, comp, ev, cid, __VA_ARGS__)

#define LOG_KV(lvl, comp, ev, cid, ...) \
    do { if ((lvl) <= log_level_current) log_emit_kv((lvl), (comp), (ev), (cid), __VA_ARGS__); } while (0)

#endif
