/* util — see util.h */
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void util_assert_fail(const char *file, int line, const char *expr) {
    fprintf(stderr, "llorch: assertion failed at %s:%d: %s\n", file, line, expr);
    abort();
}

int util_fail(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- string builder ------------------------------------------------------- */

void util_sb_init_fixed(struct util_sb *sb, char *buf, size_t cap) {
    LLORCH_ASSERT(buf && cap > 0);
    sb->buf = buf;
    sb->cap = cap;
    sb->len = 0;
    sb->fixed = 1;
    sb->trunc = sb->oom = 0;
    buf[0] = 0;
}

void util_sb_init(struct util_sb *sb) {
    memset(sb, 0, sizeof *sb);
}

void util_sb_free(struct util_sb *sb) {
    if (sb && !sb->fixed) free(sb->buf);
    if (sb) memset(sb, 0, sizeof *sb);
}

/* ensures room for n more bytes plus NUL; returns bytes that fit */
static size_t sb_reserve(struct util_sb *sb, size_t n) {
    if (sb->len + n + 1 <= sb->cap) return n;
    if (sb->fixed || sb->oom) {
        size_t room = sb->cap > sb->len + 1 ? sb->cap - sb->len - 1 : 0;
        if (room < n) sb->trunc = 1;
        return room < n ? room : n;
    }
    size_t want = sb->cap ? sb->cap : 256;
    while (want < sb->len + n + 1) want *= 2;
    char *nb = realloc(sb->buf, want);
    if (!nb) {
        sb->oom = 1;
        return sb_reserve(sb, n);
    }
    sb->buf = nb;
    sb->cap = want;
    return n;
}

void util_sb_putn(struct util_sb *sb, const char *s, size_t n) {
    size_t k = sb_reserve(sb, n);
    if (sb->cap == 0) return;
    memcpy(sb->buf + sb->len, s, k);
    sb->len += k;
    sb->buf[sb->len] = 0;
}

void util_sb_puts(struct util_sb *sb, const char *s) { util_sb_putn(sb, s, strlen(s)); }
void util_sb_putc(struct util_sb *sb, char c) { util_sb_putn(sb, &c, 1); }

void util_sb_vprintf(struct util_sb *sb, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return;
    size_t k = sb_reserve(sb, (size_t)n);
    if (sb->cap == 0) return;
    if (k == (size_t)n) {
        vsnprintf(sb->buf + sb->len, k + 1, fmt, ap);
        sb->len += k;
    } else if (k > 0) {
        char *tmp = malloc((size_t)n + 1);
        if (tmp) {
            vsnprintf(tmp, (size_t)n + 1, fmt, ap);
            memcpy(sb->buf + sb->len, tmp, k);
            sb->len += k;
            free(tmp);
        }
        sb->buf[sb->len] = 0;
    }
}

void util_sb_printf(struct util_sb *sb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    util_sb_vprintf(sb, fmt, ap);
    va_end(ap);
}

void util_sb_json_strn(struct util_sb *sb, const char *s, size_t n) {
    util_sb_putc(sb, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            uint32_t cp;
            int k = util_utf8_decode(s + i, n - i, &cp);
            if (k == 0) {
                util_sb_puts(sb, "\\ufffd");
                i++;
            } else {
                util_sb_putn(sb, s + i, (size_t)k);
                i += (size_t)k;
            }
            continue;
        }
        switch (c) {
        case '"': util_sb_puts(sb, "\\\""); break;
        case '\\': util_sb_puts(sb, "\\\\"); break;
        case '\n': util_sb_puts(sb, "\\n"); break;
        case '\r': util_sb_puts(sb, "\\r"); break;
        case '\t': util_sb_puts(sb, "\\t"); break;
        default:
            if (c < 0x20) util_sb_printf(sb, "\\u%04x", c);
            else util_sb_putc(sb, (char)c);
        }
        i++;
    }
    util_sb_putc(sb, '"');
}

void util_sb_json_str(struct util_sb *sb, const char *s) { util_sb_json_strn(sb, s, strlen(s)); }

/* ---- time ----------------------------------------------------------------- */

uint64_t util_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t util_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

void util_time_rfc3339_from_ms(uint64_t ms, char *out, size_t cap) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

void util_time_rfc3339_ms(char *out, size_t cap) { util_time_rfc3339_from_ms(util_wall_ms(), out, cap); }

/* ---- UTF-8 ---------------------------------------------------------------- */

int util_utf8_decode(const char *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    const unsigned char *u = (const unsigned char *)s;
    uint32_t c = u[0];
    int len;
    uint32_t min;
    if (c < 0x80) { *cp = c; return 1; }
    else if ((c & 0xE0) == 0xC0) { len = 2; c &= 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; c &= 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; c &= 0x07; min = 0x10000; }
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (u[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

int util_utf8_encode(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12)); o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F)); return 3;
    }
    if (cp <= 0x10FFFF) {
        o[0] = (unsigned char)(0xF0 | (cp >> 18)); o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (unsigned char)(0x80 | (cp & 0x3F)); return 4;
    }
    return 0;
}

size_t util_utf8_valid_prefix(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int k = util_utf8_decode(s + i, n - i, &cp);
        if (!k) break;
        i += (size_t)k;
    }
    return i;
}

int util_utf8_valid(const char *s, size_t n) { return util_utf8_valid_prefix(s, n) == n; }

/* ---- misc ----------------------------------------------------------------- */

int util_read_file(const char *path, size_t cap, char **out, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return util_fail(err, errlen, -errno, "cannot open %s: %s", path, strerror(errno));
    struct util_sb sb;
    util_sb_init(&sb);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        if (sb.len + n > cap) {
            fclose(f);
            util_sb_free(&sb);
            return util_fail(err, errlen, -EFBIG, "%s is larger than %zu bytes", path, cap);
        }
        util_sb_putn(&sb, buf, n);
        if (sb.oom) break;
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr || sb.oom) {
        util_sb_free(&sb);
        return util_fail(err, errlen, rerr ? -EIO : -ENOMEM, "cannot read %s", path);
    }
    if (!sb.buf) { /* empty file */
        sb.buf = calloc(1, 1);
        if (!sb.buf) return util_fail(err, errlen, -ENOMEM, "out of memory");
    }
    *out = sb.buf;
    if (len) *len = sb.len;
    return 0;
}
