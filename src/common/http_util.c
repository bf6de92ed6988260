/* http_util — small helpers every service uses with http_server.h:
 * correlation-id validation, UUIDv4, and the time formats of X-Deadline. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/http_server.h"
#include "common/util.h"

/* ---- helpers ------------------------------------------------------------------- */

int http_valid_correlation_id(const char *s) {
    if (!s) return 0;
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= 64 || !(isalnum((unsigned char)s[n]) || s[n] == '-')) return 0;
    return n >= 1;
}

void http_uuid4(char out[37]) {
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t r = getrandom(b + got, sizeof b - got, 0);
        if (r <= 0) { /* fall back on the clock: ids must exist, not be secret */
            uint64_t t = util_now_ns() ^ ((uint64_t)getpid() << 32);
            for (; got < sizeof b; got++) b[got] = (unsigned char)(t >> (8 * (got % 8))) ^ (unsigned char)got;
            break;
        }
        got += (size_t)r;
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static int digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int http_parse_time_ms(const char *s, uint64_t *epoch_ms) {
    if (!s || !*s) return -1;
    size_t n = strlen(s);
    int all_digits = 1;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) all_digits = 0;
    if (all_digits) {
        if (n > 16) return -1;
        *epoch_ms = strtoull(s, NULL, 10);
        return 0;
    }
    /* YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM) */
    int Y, M, D, h, m, sec;
    if (n < 20 || digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) || s[7] != '-' ||
        digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s + 11, 2, &h) ||
        s[13] != ':' || digits(s + 14, 2, &m) || s[16] != ':' || digits(s + 17, 2, &sec))
        return -1;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return -1;
    const char *p = s + 19;
    int ms = 0;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (isdigit((unsigned char)*p)) {
            if (nd < 3) ms = ms * 10 + (*p - '0');
            nd++;
            p++;
        }
        if (nd == 0) return -1;
        for (; nd < 3; nd++) ms *= 10;
    }
    int off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59) return -1;
        off = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p) return -1;
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t < 0) return -1;
    *epoch_ms = ((uint64_t)t - (int64_t)off * 60) * 1000 + (uint64_t)ms;
    return 0;
}

