#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

typedef struct entry_s {
    char *name;
    char *labels;
    es_counter_t counter;
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

es_counter_t *es_metrics_counter(const char *name, const char *labels)
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
        e->next_in_bucket = buckets[h];
        buckets[h] = e;
        if (last)
            last->next_in_order = e;
        else
            first = e;
        last = e;
    }
    pthread_mutex_unlock(&lock);
    return &e->counter;
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
