/* metrics — a small Prometheus registry: counters, gauges and histograms,
 * each a family of series keyed by label values, rendered in the Prometheus
 * text exposition format 0.0.4.
 *
 * Ownership: the registry owns its families and series; metrics_family
 * pointers stay valid until metrics_free. All updates and the rendering take
 * one registry mutex for a few hundred nanoseconds: fine for per-request and
 * per-token updates, not meant for millions of updates per second.
 *
 * Labels: a family has fixed label names (e.g. {"outcome"}) and optional
 * constant labels rendered on every series (e.g. component="worker"). Updates
 * pass the label values in the same order; values are escaped on output.
 */
#ifndef LLORCH_METRICS_H
#define LLORCH_METRICS_H

#include <stddef.h>

#include "common/util.h"

typedef struct metrics_registry metrics_registry;
typedef struct metrics_family metrics_family;

#define METRICS_MAX_LABELS 4

/* const_labels: raw Prometheus label pairs text without braces, e.g.
 * `component="worker"` (the caller owns its validity), or NULL. */
metrics_registry *metrics_new(const char *const_labels);
void metrics_free(metrics_registry *r); /* NULL ok */

/* label_names: NULL-terminated list (may be NULL for no labels). Returns NULL
 * on a bad name or OOM. */
metrics_family *metrics_counter(metrics_registry *r, const char *name, const char *help,
                                const char *const *label_names);
metrics_family *metrics_gauge(metrics_registry *r, const char *name, const char *help,
                              const char *const *label_names);
/* bounds: ascending upper bounds (the +Inf bucket is implicit). */
metrics_family *metrics_histogram(metrics_registry *r, const char *name, const char *help,
                                  const char *const *label_names, const double *bounds, int n_bounds);

/* label_values: as many as the family's label names (NULL when none). */
void metrics_add(metrics_family *f, const char *const *label_values, double v);   /* counter/gauge */
void metrics_set(metrics_family *f, const char *const *label_values, double v);   /* gauge */
void metrics_observe(metrics_family *f, const char *const *label_values, double v); /* histogram */
/* Current value of a counter/gauge series (0 when absent); for tests. */
double metrics_value(metrics_family *f, const char *const *label_values);

/* Renders every family into sb (text/plain; version=0.0.4). */
void metrics_render(metrics_registry *r, struct util_sb *sb);

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Checks that text is well-formed exposition text: every sample line is
 * `name{labels} value`, names valid, labels well quoted, values parse, every
 * sample's family has a # TYPE line before it, histogram buckets are
 * cumulative and end with le="+Inf" equal to _count. Returns the number of
 * samples, or -1 with a message naming the line. For tests of all services. */
int metrics_text_validate(const char *text, char *err, size_t errlen);

#endif
