/* json_util — strict, typed field extraction from jansson objects for
 * request validation. Each getter returns 1 when the field is present and
 * valid, 0 when absent (and not required), or -1 with ju_err naming the field
 * and saying what is wrong. Unknown fields are never looked at (ignored);
 * present fields of the wrong type are errors. JSON null counts as absent.
 */
#ifndef LLORCH_JSON_UTIL_H
#define LLORCH_JSON_UTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char field[64];
    char message[256];
} ju_err;

/* Parses a request body: must be a JSON object, UTF-8, no duplicate keys. */
json_t *ju_parse_object(const char *body, size_t len, ju_err *e);
/* ju_parse_object on an HTTP request's body (common/http_server.h's http_req);
 * the caller owns the object. */
struct http_req;
json_t *ju_parse_body(const struct http_req *r, ju_err *e);

/* string with max_bytes (0 = no cap); *out points into the json object */
int ju_string(json_t *o, const char *k, int required, size_t max_bytes, const char **out, size_t *len, ju_err *e);
/* integer in [min, max] (floats with a fractional part and bools are rejected) */
int ju_int(json_t *o, const char *k, int required, int64_t min, int64_t max, int64_t *out, ju_err *e);
/* non-negative integer, or a decimal string for values above INT64_MAX */
int ju_uint64(json_t *o, const char *k, int required, uint64_t *out, ju_err *e);
/* number in [min, max]; min_open: min itself excluded */
int ju_number(json_t *o, const char *k, int required, double min, double max, int min_open, double *out, ju_err *e);
int ju_bool(json_t *o, const char *k, int required, int *out, ju_err *e);
/* array of at most max_items elements (returned borrowed) */
int ju_array(json_t *o, const char *k, int required, size_t max_items, json_t **out, ju_err *e);

/* Sets e (field may be NULL); returns -1. */
int ju_fail(ju_err *e, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* {"field":"<field>"} into out (JSON-escaped). */
void ju_err_details(const ju_err *e, char *out, size_t cap);

#endif
