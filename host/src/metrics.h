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

/* Calls fn for each counter in creation order. */
void es_metrics_foreach(void (*fn)(const char *name, const char *labels,
                                   uint64_t value, void *ud),
                        void *ud);
void es_metrics_reset(void);

/* Escapes a label value per the Prometheus text format into out. */
void es_metrics_label_escape(char *out, size_t size, const char *value);

#endif
