#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "usage.h"

#define BUCKETS 4096

typedef struct entry_s {
    char *tenant; /* NULL: no tenant found */
    char *topic;
    char *dest; /* NULL: the consumed row */
    uint64_t events, bytes;
    struct entry_s *next;
} entry_t;

struct es_usage_s {
    char *path;
    pthread_mutex_t lock;
    entry_t *b[BUCKETS];
    size_t n;
    int dirty;
    char since[32]; /* when counting started (UTC, RFC 3339) */
};

static int same(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

static uint64_t hash(const char *tenant, const char *topic, const char *dest)
{
    uint64_t h = 1469598103934665603ULL;
    const char *parts[] = {tenant ? tenant : "", topic, dest ? dest : ""};
    for (int i = 0; i < 3; i++) {
        for (const char *s = parts[i]; *s; s++)
            h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return h;
}

/* Caller holds the lock. */
static entry_t *entry(es_usage_t *u, const char *tenant, const char *topic,
                      const char *dest)
{
    entry_t **b = &u->b[hash(tenant, topic, dest) % BUCKETS];
    for (entry_t *e = *b; e; e = e->next)
        if (same(e->tenant, tenant) && !strcmp(e->topic, topic) &&
            same(e->dest, dest))
            return e;
    entry_t *e = calloc(1, sizeof *e);
    e->tenant = tenant ? strdup(tenant) : NULL;
    e->topic = strdup(topic);
    e->dest = dest ? strdup(dest) : NULL;
    e->next = *b;
    *b = e;
    u->n++;
    return e;
}

void es_usage_add(es_usage_t *u, const char *tenant, const char *topic,
                  const char *destination, size_t bytes)
{
    if (!u)
        return;
    pthread_mutex_lock(&u->lock);
    entry_t *e = entry(u, tenant, topic, destination);
    e->events++;
    e->bytes += bytes;
    u->dirty = 1;
    pthread_mutex_unlock(&u->lock);
}

static const char *str_or_null(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static uint64_t num(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(it) && it->valuedouble > 0 ? (uint64_t)it->valuedouble
                                                     : 0;
}

static int load_rows(es_usage_t *u, const cJSON *rows, int delivered)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, rows)
    {
        const char *topic = str_or_null(r, "topic");
        const char *dest = str_or_null(r, "destination");
        if (!topic || (delivered && !dest))
            return -1;
        entry_t *e =
            entry(u, str_or_null(r, "tenant"), topic, delivered ? dest : NULL);
        e->events += num(r, "events");
        e->bytes += num(r, "bytes");
    }
    return 0;
}

static void load(es_usage_t *u)
{
    FILE *f = fopen(u->path, "rb");
    if (!f)
        return;
    size_t cap = 1 << 16, len = 0, n;
    char *text = malloc(cap);
    while ((n = fread(text + len, 1, cap - len - 1, f)) > 0)
        if ((len += n) + 1 >= cap)
            text = realloc(text, cap *= 2);
    fclose(f);
    text[len] = '\0';
    cJSON *o = cJSON_Parse(text);
    free(text);
    const char *since = str_or_null(o, "since");
    if (!cJSON_IsObject(o) || !since ||
        load_rows(u, cJSON_GetObjectItemCaseSensitive(o, "consumed"), 0) ||
        load_rows(u, cJSON_GetObjectItemCaseSensitive(o, "delivered"), 1)) {
        char aside[4200];
        snprintf(aside, sizeof aside, "%s.corrupt", u->path);
        rename(u->path, aside);
        es_err("usage: %s is not a usage file; moved to %s, counting "
               "starts again",
               u->path, aside);
    } else {
        snprintf(u->since, sizeof u->since, "%s", since);
    }
    cJSON_Delete(o);
}

es_usage_t *es_usage_new(const char *path)
{
    es_usage_t *u = calloc(1, sizeof *u);
    u->path = strdup(path);
    pthread_mutex_init(&u->lock, NULL);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(u->since, sizeof u->since, "%Y-%m-%dT%H:%M:%SZ", &tm);
    load(u);
    return u;
}

static cJSON *row(const entry_t *e)
{
    cJSON *o = cJSON_CreateObject();
    if (e->tenant)
        cJSON_AddStringToObject(o, "tenant", e->tenant);
    else
        cJSON_AddNullToObject(o, "tenant");
    cJSON_AddStringToObject(o, "topic", e->topic);
    if (e->dest)
        cJSON_AddStringToObject(o, "destination", e->dest);
    cJSON_AddNumberToObject(o, "events", (double)e->events);
    cJSON_AddNumberToObject(o, "bytes", (double)e->bytes);
    return o;
}

static int cmp_row(const void *a, const void *b)
{
    const entry_t *x = *(entry_t *const *)a, *y = *(entry_t *const *)b;
    int c = strcmp(x->tenant ? x->tenant : "", y->tenant ? y->tenant : "");
    if (!c)
        c = strcmp(x->topic, y->topic);
    if (!c)
        c = strcmp(x->dest ? x->dest : "", y->dest ? y->dest : "");
    return c;
}

/* Caller holds the lock. */
static cJSON *to_json(es_usage_t *u, const char *tenant, const char *topic)
{
    entry_t **all = malloc((u->n + 1) * sizeof *all);
    size_t n = 0;
    for (size_t b = 0; b < BUCKETS; b++)
        for (entry_t *e = u->b[b]; e; e = e->next)
            if ((!tenant || (e->tenant && !strcmp(e->tenant, tenant))) &&
                (!topic || !strcmp(e->topic, topic)))
                all[n++] = e;
    qsort(all, n, sizeof *all, cmp_row);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "since", u->since);
    cJSON *consumed = cJSON_AddArrayToObject(o, "consumed");
    cJSON *delivered = cJSON_AddArrayToObject(o, "delivered");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(all[i]->dest ? delivered : consumed, row(all[i]));
    free(all);
    return o;
}

cJSON *es_usage_json(es_usage_t *u, const char *tenant, const char *topic)
{
    pthread_mutex_lock(&u->lock);
    cJSON *o = to_json(u, tenant, topic);
    pthread_mutex_unlock(&u->lock);
    return o;
}

int es_usage_save(es_usage_t *u, char *errstr, size_t errstr_size)
{
    if (!u)
        return 0;
    pthread_mutex_lock(&u->lock);
    if (!u->dirty) {
        pthread_mutex_unlock(&u->lock);
        return 0;
    }
    cJSON *o = to_json(u, NULL, NULL);
    u->dirty = 0;
    pthread_mutex_unlock(&u->lock);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", u->path);
    int rc = -1;
    FILE *f = fopen(tmp, "wb");
    if (f && fputs(text, f) >= 0 && fflush(f) == 0 && fclose(f) == 0) {
        f = NULL;
        rc = rename(tmp, u->path);
    }
    if (f)
        fclose(f);
    if (rc) {
        snprintf(errstr, errstr_size, "usage: cannot write %s: %s", u->path,
                 strerror(errno));
        pthread_mutex_lock(&u->lock);
        u->dirty = 1; /* try again next time */
        pthread_mutex_unlock(&u->lock);
    }
    free(text);
    return rc;
}

void es_usage_destroy(es_usage_t *u)
{
    if (!u)
        return;
    char err[512];
    if (es_usage_save(u, err, sizeof err))
        es_err("%s", err);
    for (size_t b = 0; b < BUCKETS; b++)
        for (entry_t *e = u->b[b], *next; e; e = next) {
            next = e->next;
            free(e->tenant);
            free(e->topic);
            free(e->dest);
            free(e);
        }
    pthread_mutex_destroy(&u->lock);
    free(u->path);
    free(u);
}
