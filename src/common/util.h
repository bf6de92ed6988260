/* util — small helpers every module may use: assertions for our own bugs,
 * a bounded/growable string builder, JSON string escaping, clocks, UTF-8
 * validation. libc only. */
#ifndef LLORCH_UTIL_H
#define LLORCH_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Programmer bugs only (tier 2): prints file:line and aborts. Never for
 * anything an outside byte can trigger. */
#define LLORCH_ASSERT(cond) \
    do { if (!(cond)) util_assert_fail(__FILE__, __LINE__, #cond); } while (0)
_Noreturn void util_assert_fail(const char *file, int line, const char *expr);

#define UTIL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define UTIL_MAX(a, b) ((a) > (b) ? (a) : (b))
#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Copies a formatted message into err[errlen] when err is non-NULL; returns code.
 * The usual tier-1 idiom: `return util_fail(err, errlen, -EINVAL, "bad %s", x);` */
int util_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- string builder -------------------------------------------------------
 * Fixed: writes into a caller buffer, truncates (sets .trunc) and stays
 * NUL-terminated. Growable (buf==NULL at init): heap, owned by the builder,
 * released with util_sb_free; .oom set when growth fails. */
struct util_sb {
    char *buf;
    size_t len, cap;
    int fixed, trunc, oom;
};
void util_sb_init_fixed(struct util_sb *sb, char *buf, size_t cap);
void util_sb_init(struct util_sb *sb); /* growable */
void util_sb_free(struct util_sb *sb);
void util_sb_putn(struct util_sb *sb, const char *s, size_t n);
void util_sb_puts(struct util_sb *sb, const char *s);
void util_sb_putc(struct util_sb *sb, char c);
void util_sb_printf(struct util_sb *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void util_sb_vprintf(struct util_sb *sb, const char *fmt, va_list ap);
/* appends "..." with JSON escaping; invalid UTF-8 bytes become \ufffd */
void util_sb_json_str(struct util_sb *sb, const char *s);
void util_sb_json_strn(struct util_sb *sb, const char *s, size_t n);

/* ---- time ----------------------------------------------------------------- */
uint64_t util_now_ns(void);      /* CLOCK_MONOTONIC */
uint64_t util_wall_ms(void);     /* CLOCK_REALTIME, ms since epoch */
/* "2026-11-27T03:24:32.123Z" */
void util_time_rfc3339_ms(char *out, size_t cap);
void util_time_rfc3339_from_ms(uint64_t epoch_ms, char *out, size_t cap);

/* ---- UTF-8 ---------------------------------------------------------------- */
/* Length of the longest valid UTF-8 prefix of s[0..n). */
size_t util_utf8_valid_prefix(const char *s, size_t n);
int util_utf8_valid(const char *s, size_t n);
/* Decodes one code point at s (n bytes available). Returns its byte length
 * (1..4) and stores the code point, or returns 0 for an invalid/incomplete
 * sequence (cp untouched). */
int util_utf8_decode(const char *s, size_t n, uint32_t *cp);
/* Encodes cp into out[4]; returns its length (1..4), 0 for an invalid cp. */
int util_utf8_encode(uint32_t cp, char *out);

/* ---- misc ----------------------------------------------------------------- */
/* Reads a whole file (cap bytes max); *out is malloc'd and NUL-terminated. */
int util_read_file(const char *path, size_t cap, char **out, size_t *len, char *err, size_t errlen);

#endif
