/* cli_http — what the network commands of llorch (run, status, pull, place)
 * share: where the orchestrator is, the bearer token, JSON requests, and
 * turning an error answer into one line for the user.
 *
 * Endpoint resolution: --url flag > LLORCH_ORCH_URL > http://127.0.0.1:8080
 * (pool commands: --pool > LLORCH_POOL_URL > http://127.0.0.1:9200).
 * Token: LLORCH_TOKEN, sent as "Authorization: Bearer <token>" when set.
 */
#ifndef LLORCH_CLI_HTTP_H
#define LLORCH_CLI_HTTP_H

#include <jansson.h>
#include <stddef.h>

#include "common/http_client.h"

#define CLI_DEFAULT_ORCH_URL "http://127.0.0.1:8080"
#define CLI_DEFAULT_POOL_URL "http://127.0.0.1:9200"

/* flag value, else the env variable, else def; trailing '/' removed into out */
void cli_endpoint(const char *flag, const char *env, const char *def, char *out, size_t cap);

/* headers for a request: the bearer line when LLORCH_TOKEN is set, plus the
 * optional extra line (e.g. Last-Event-ID). hdrs needs 3 slots, auth 600 bytes. */
void cli_headers(const char *extra, char auth[600], const char *hdrs[3]);

/* One request: method (NULL = GET, or POST with a body), base + path, an
 * optional JSON body. On a transport failure returns < 0 and writes why into
 * err; otherwise 0 with *status and, when the body parses as JSON, *out (new
 * reference; NULL otherwise). *raw (when raw != NULL) gets the malloc'd body. */
int cli_request(const char *method, const char *base, const char *path, const char *body, long *status, json_t **out,
                char **raw, char *err, size_t errlen);

/* Prints "llorch <cmd>: CODE: message" for a SPEC §7 error body, else the
 * HTTP status and body text, to stderr. */
void cli_print_error(const char *cmd, long status, json_t *body, const char *raw);

/* "12.3 MiB" style */
void cli_fmt_bytes(double b, char *out, size_t cap);

/* percent-encodes s for a URL query value */
void cli_urlencode(const char *s, char *out, size_t cap);

/* strtol/strtod wrappers: 0 ok, -1 malformed */
int cli_parse_long(const char *s, long long *v);
int cli_parse_double(const char *s, double *v);

#endif
