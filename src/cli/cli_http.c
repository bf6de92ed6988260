/* cli_http — shared plumbing of llorch's network commands (see cli_http.h). */
#include "cli/cli_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_endpoint(const char *flag, const char *env, const char *def, char *out, size_t cap) {
    const char *v = flag && *flag ? flag : NULL;
    if (!v && env) {
        const char *e = getenv(env);
        if (e && *e) v = e;
    }
    if (!v) v = def;
    snprintf(out, cap, "%s", v);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '/') out[--n] = 0;
}

void cli_headers(const char *extra, char auth[600], const char *hdrs[3]) {
    int k = 0;
    const char *t = getenv("LLORCH_TOKEN");
    if (t && *t) {
        snprintf(auth, 600, "Authorization: Bearer %s", t);
        hdrs[k++] = auth;
    }
    if (extra) hdrs[k++] = extra;
    hdrs[k] = NULL;
}

int cli_request(const char *method, const char *base, const char *path, const char *body, long *status, json_t **out,
                char **raw, char *err, size_t errlen) {
    char url[2048], auth[600];
    const char *hdrs[3];
    if (out) *out = NULL;
    if (raw) *raw = NULL;
    *status = 0;
    if ((size_t)snprintf(url, sizeof url, "%s%s", base, path) >= sizeof url) {
        snprintf(err, errlen, "URL too long");
        return -1;
    }
    cli_headers(NULL, auth, hdrs);
    http_client_req rq = { .method = method, .url = url, .headers = hdrs, .body = body,
                           .connect_timeout_ms = 3000, .timeout_ms = 15000 };
    http_resp r;
    char e2[256] = "";
    int rc = http_client_do(&rq, &r, e2, sizeof e2);
    if (rc < 0) {
        snprintf(err, errlen, "%s", e2[0] ? e2 : "request failed");
        http_resp_free(&r);
        return rc;
    }
    *status = r.status;
    if (out && r.len) *out = json_loadb(r.body, r.len, 0, NULL);
    if (raw) {
        *raw = r.body;
        r.body = NULL;
    }
    http_resp_free(&r);
    return 0;
}

void cli_print_error(const char *cmd, long status, json_t *body, const char *raw) {
    json_t *e = body ? json_object_get(body, "error") : NULL;
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (code) {
        fprintf(stderr, "llorch %s: %s: %s", cmd, code, msg ? msg : "");
        json_t *det = json_object_get(e, "details");
        if (json_is_object(det) && json_object_size(det)) {
            char *d = json_dumps(det, JSON_COMPACT);
            if (d) fprintf(stderr, " %s", d);
            free(d);
        }
        fprintf(stderr, " (HTTP %ld)\n", status);
    } else {
        fprintf(stderr, "llorch %s: HTTP %ld%s%.300s\n", cmd, status, raw && *raw ? ": " : "", raw ? raw : "");
    }
}

void cli_fmt_bytes(double b, char *out, size_t cap) {
    static const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int i = 0;
    while (b >= 1024 && i < 4) { b /= 1024; i++; }
    if (i == 0) snprintf(out, cap, "%.0f %s", b, u[i]);
    else snprintf(out, cap, "%.1f %s", b, u[i]);
}

void cli_urlencode(const char *s, char *out, size_t cap) {
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (; *s && k + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
            c == '.' || c == '~') {
            out[k++] = (char)c;
        } else {
            out[k++] = '%';
            out[k++] = hex[c >> 4];
            out[k++] = hex[c & 15];
        }
    }
    out[k] = 0;
}

int cli_parse_long(const char *s, long long *v) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || *end) return -1;
    *v = x;
    return 0;
}

int cli_parse_double(const char *s, double *v) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || *end) return -1;
    *v = x;
    return 0;
}
