/* json_util — see json_util.h. */
#include "common/json_util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/http_server.h"
#include "common/util.h"

int ju_fail(ju_err *e, const char *field, const char *fmt, ...) {
    if (!e) return -1;
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

void ju_err_details(const ju_err *e, char *out, size_t cap) {
    struct util_sb sb;
    util_sb_init_fixed(&sb, out, cap);
    util_sb_puts(&sb, "{\"field\":");
    util_sb_json_str(&sb, e->field);
    util_sb_putc(&sb, '}');
}

json_t *ju_parse_object(const char *body, size_t len, ju_err *e) {
    json_error_t je;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        ju_fail(e, "body", "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        ju_fail(e, "body", "the body must be a JSON object");
        return NULL;
    }
    return o;
}

json_t *ju_parse_body(const struct http_req *r, ju_err *e) {
    size_t len;
    const char *body = http_req_body(r, &len);
    return ju_parse_object(body, len, e);
}

static json_t *get(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_null(v) ? NULL : v;
}

int ju_string(json_t *o, const char *k, int required, size_t max_bytes, const char **out, size_t *len, ju_err *e) {
    json_t *v = get(o, k);
    if (!v) return required ? ju_fail(e, k, "'%s' is required", k) : 0;
    if (!json_is_string(v)) return ju_fail(e, k, "'%s' must be a string", k);
    size_t n = json_string_length(v);
    if (max_bytes && n > max_bytes) return ju_fail(e, k, "'%s' is longer than %zu bytes", k, max_bytes);
    *out = json_string_value(v);
    if (len) *len = n;
    return 1;
}

int ju_int(json_t *o, const char *k, int required, int64_t min, int64_t max, int64_t *out, ju_err *e) {
    json_t *v = get(o, k);
    if (!v) return required ? ju_fail(e, k, "'%s' is required", k) : 0;
    int64_t x;
    if (json_is_integer(v)) {
        x = (int64_t)json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
               fabs(json_real_value(v)) < 9e15) {
        x = (int64_t)json_real_value(v); /* 2.0 is an integer written as a float */
    } else {
        return ju_fail(e, k, "'%s' must be an integer", k);
    }
    if (x < min || x > max)
        return ju_fail(e, k, "'%s' must be between %lld and %lld", k, (long long)min, (long long)max);
    *out = x;
    return 1;
}

int ju_uint64(json_t *o, const char *k, int required, uint64_t *out, ju_err *e) {
    json_t *v = get(o, k);
    if (!v) return required ? ju_fail(e, k, "'%s' is required", k) : 0;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0) return ju_fail(e, k, "'%s' must be a non-negative integer", k);
        *out = (uint64_t)json_integer_value(v);
        return 1;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (n == 0 || n > 20) return ju_fail(e, k, "'%s' must be a uint64", k);
        for (size_t i = 0; i < n; i++)
            if (s[i] < '0' || s[i] > '9') return ju_fail(e, k, "'%s' must be a uint64", k);
        errno = 0;
        unsigned long long x = strtoull(s, NULL, 10);
        if (errno) return ju_fail(e, k, "'%s' must be a uint64", k);
        *out = x;
        return 1;
    }
    return ju_fail(e, k, "'%s' must be a non-negative integer", k);
}

int ju_number(json_t *o, const char *k, int required, double min, double max, int min_open, double *out, ju_err *e) {
    json_t *v = get(o, k);
    if (!v) return required ? ju_fail(e, k, "'%s' is required", k) : 0;
    if (!json_is_number(v)) return ju_fail(e, k, "'%s' must be a number", k);
    double x = json_number_value(v);
    if (!isfinite(x) || x > max || x < min || (min_open && x == min))
        return ju_fail(e, k, "'%s' must be in %s%g, %g]", k, min_open ? "(" : "[", min, max);
    *out = x;
    return 1;
}

int ju_bool(json_t *o, const char *k, int required, int *out, ju_err *e) {
    json_t *v = get(o, k);
    if (!v) return required ? ju_fail(e, k, "'%s' is required", k) : 0;
    if (!json_is_boolean(v)) return ju_fail(e, k, "'%s' must be true or false", k);
    *out = json_is_true(v);
    return 1;
}

int ju_array(json_t *o, const char *k, int required, size_t max_items, json_t **out, ju_err *e) {
    json_t *v = get(o, k);
    if (!v) return required ? ju_fail(e, k, "'%s' is required", k) : 0;
    if (!json_is_array(v)) return ju_fail(e, k, "'%s' must be an array", k);
    if (json_array_size(v) > max_items) return ju_fail(e, k, "'%s' has more than %zu items", k, max_items);
    *out = v;
    return 1;
}
