/* Process-wide counters and histograms, exposed by the admin API in
 * Prometheus text format. Lookup is by name + label string; hot paths keep
 * the returned pointer and add to it without locking. */
#ifndef ES_METRICS_H
#define ES_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct es_counter_s {
    _Atomic uint64_t value;
} es_counter_t;

/* Returns the counter `name{labels}`, creating it at 0. `labels` is
 * Prometheus label syntax without braces (`route="a",destination="b"`) or
 * "". The pointer stays valid until es_metrics_reset. */
es_counter_t *es_metrics_counter(const char *name, const char *labels);
static inline void es_counter_add(es_counter_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}
uint64_t es_metrics_value(const char *name, const char *labels);

/* A gauge is a counter whose value is set, not added to. */
es_counter_t *es_metrics_gauge(const char *name, const char *labels);
static inline void es_gauge_set(es_counter_t *g, uint64_t v)
{
    atomic_store_explicit(&g->value, v, memory_order_relaxed);
}

/* Latency histogram in milliseconds with fixed buckets. */
#define ES_HIST_BUCKETS 12
typedef struct es_histogram_s {
    _Atomic uint64_t buckets[ES_HIST_BUCKETS]; /* cumulative at export */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ms;
} es_histogram_t;
extern const double es_hist_bounds_ms[ES_HIST_BUCKETS];
es_histogram_t *es_metrics_histogram(const char *name, const char *labels);
void es_histogram_observe(es_histogram_t *h, uint64_t ms);

/* Writes every metric in Prometheus text format (families sorted by name,
 * with # TYPE lines) into a malloc'd string. */
char *es_metrics_prometheus(void);

/* Calls fn for each counter in creation order. */
void es_metrics_foreach(void (*fn)(const char *name, const char *labels,
                                   uint64_t value, void *ud),
                        void *ud);
void es_metrics_reset(void);

/* Escapes a label value per the Prometheus text format into out. */
void es_metrics_label_escape(char *out, size_t size, const char *value);

#endif
