#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eventstream/plugin.h"
#include "metrics.h"

typedef enum kind_e { K_COUNTER = 1, K_GAUGE, K_HISTOGRAM } kind_t;

typedef struct entry_s {
    char *name;
    char *labels;
    kind_t kind;
    es_counter_t counter;
    es_histogram_t *hist;
    struct entry_s *next_in_bucket;
    struct entry_s *next_in_order;
} entry_t;

#define BUCKETS 1024
static entry_t *buckets[BUCKETS];
static entry_t *first, *last;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned hash(const char *a, const char *b)
{
    unsigned h = 2166136261u;
    for (; *a; a++)
        h = (h ^ (unsigned char)*a) * 16777619u;
    h = (h ^ '{') * 16777619u;
    for (; *b; b++)
        h = (h ^ (unsigned char)*b) * 16777619u;
    return h % BUCKETS;
}

static entry_t *lookup(const char *name, const char *labels, kind_t kind);

es_counter_t *es_metrics_counter(const char *name, const char *labels)
{
    return &lookup(name, labels, K_COUNTER)->counter;
}

es_counter_t *es_metrics_gauge(const char *name, const char *labels)
{
    return &lookup(name, labels, K_GAUGE)->counter;
}

es_histogram_t *es_metrics_histogram(const char *name, const char *labels)
{
    return lookup(name, labels, K_HISTOGRAM)->hist;
}

const double es_hist_bounds_ms[ES_HIST_BUCKETS] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 30000};

void es_histogram_observe(es_histogram_t *h, uint64_t ms)
{
    for (int i = 0; i < ES_HIST_BUCKETS; i++)
        if ((double)ms <= es_hist_bounds_ms[i]) {
            atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
            break;
        }
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ms, ms, memory_order_relaxed);
}

static entry_t *lookup(const char *name, const char *labels, kind_t kind)
{
    if (!labels)
        labels = "";
    unsigned h = hash(name, labels);
    pthread_mutex_lock(&lock);
    entry_t *e;
    for (e = buckets[h]; e; e = e->next_in_bucket)
        if (!strcmp(e->name, name) && !strcmp(e->labels, labels))
            break;
    if (!e) {
        e = calloc(1, sizeof *e);
        e->name = strdup(name);
        e->labels = strdup(labels);
        e->kind = kind;
        if (kind == K_HISTOGRAM)
            e->hist = calloc(1, sizeof *e->hist);
        e->next_in_bucket = buckets[h];
        buckets[h] = e;
        if (last)
            last->next_in_order = e;
        else
            first = e;
        last = e;
    }
    pthread_mutex_unlock(&lock);
    return e;
}

uint64_t es_metrics_value(const char *name, const char *labels)
{
    return atomic_load(&es_metrics_counter(name, labels)->value);
}

void es_metrics_foreach(void (*fn)(const char *, const char *, uint64_t,
                                   void *),
                        void *ud)
{
    /* fn must not create counters: the lock is held. */
    pthread_mutex_lock(&lock);
    for (entry_t *e = first; e; e = e->next_in_order)
        fn(e->name, e->labels, atomic_load(&e->counter.value), ud);
    pthread_mutex_unlock(&lock);
}

void es_metrics_reset(void)
{
    pthread_mutex_lock(&lock);
    entry_t *e = first;
    while (e) {
        entry_t *next = e->next_in_order;
        free(e->name);
        free(e->labels);
        free(e->hist);
        free(e);
        e = next;
    }
    memset(buckets, 0, sizeof buckets);
    first = last = NULL;
    pthread_mutex_unlock(&lock);
}

void es_metrics_label_escape(char *out, size_t size, const char *value)
{
    size_t o = 0;
    for (const char *p = value; *p && o + 3 < size; p++) {
        if (*p == '\\' || *p == '"') {
            out[o++] = '\\';
            out[o++] = *p;
        } else if (*p == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

/* ------------------------------------------------------ Prometheus export */

typedef struct buf_s {
    char *s;
    size_t n, cap;
} buf_t;

static void put(buf_t *b, const char *fmt, ...) ES_PRINTF(2, 3);

static void put(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int w = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (w >= 0 && (size_t)w < b->cap - b->n) {
            b->n += (size_t)w;
            return;
        }
        b->cap = b->cap * 2 + (size_t)w + 64;
        b->s = realloc(b->s, b->cap);
    }
}

static int by_name(const void *a, const void *b)
{
    const entry_t *x = *(entry_t *const *)a, *y = *(entry_t *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->labels, y->labels);
}

static void put_histogram(buf_t *b, const entry_t *e)
{
    const char *sep = e->labels[0] ? "," : "";
    uint64_t cum = 0;
    for (int i = 0; i < ES_HIST_BUCKETS; i++) {
        cum += atomic_load(&e->hist->buckets[i]);
        put(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", e->name, e->labels, sep,
            es_hist_bounds_ms[i] / 1000.0, (unsigned long long)cum);
    }
    put(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", e->name, e->labels, sep,
        (unsigned long long)atomic_load(&e->hist->count));
    const char *open = e->labels[0] ? "{" : "",
               *close = e->labels[0] ? "}" : "";
    put(b, "%s_sum%s%s%s %g\n", e->name, open, e->labels, close,
        (double)atomic_load(&e->hist->sum_ms) / 1000.0);
    put(b, "%s_count%s%s%s %llu\n", e->name, open, e->labels, close,
        (unsigned long long)atomic_load(&e->hist->count));
}

char *es_metrics_prometheus(void)
{
    static const char *const types[] = {"", "counter", "gauge", "histogram"};
    buf_t b = {malloc(4096), 0, 4096};
    b.s[0] = '\0';
    pthread_mutex_lock(&lock);
    size_t n = 0;
    for (entry_t *e = first; e; e = e->next_in_order)
        n++;
    entry_t **all = malloc((n + 1) * sizeof *all);
    n = 0;
    for (entry_t *e = first; e; e = e->next_in_order)
        all[n++] = e;
    qsort(all, n, sizeof *all, by_name);
    for (size_t i = 0; i < n; i++) {
        const entry_t *e = all[i];
        if (i == 0 || strcmp(all[i - 1]->name, e->name))
            put(&b, "# TYPE %s %s\n", e->name, types[e->kind]);
        if (e->kind == K_HISTOGRAM)
            put_histogram(&b, e);
        else if (e->labels[0])
            put(&b, "%s{%s} %llu\n", e->name, e->labels,
                (unsigned long long)atomic_load(&e->counter.value));
        else
            put(&b, "%s %llu\n", e->name,
                (unsigned long long)atomic_load(&e->counter.value));
    }
    pthread_mutex_unlock(&lock);
    free(all);
    return b.s;
}
