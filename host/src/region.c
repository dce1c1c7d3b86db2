#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "internal/es_curlbuf.h"
#include "internal/es_json_keys.h"
#include "log.h"
#include "metrics.h"
#include "region.h"

#define MAX_MAP_BYTES (64u << 20)

/* One loaded map: open addressing, tenant -> interned region string. */
typedef struct map_s {
    char **tenants;
    const char **regions;
    size_t cap, n;
} map_t;

/* Region names ever seen, kept until destroy so the strings es_region_skip
 * hands out stay valid across refreshes. */
typedef struct intern_s {
    char *name;
    struct intern_s *next;
} intern_t;

struct es_region_s {
    char *config_path;
    char *name;
    char *source;
    char *ca_file;
    int refresh_ms, timeout_ms;
    int skip_unknown;
    int curl_inited;

    pthread_rwlock_t map_lock;
    map_t *map;

    pthread_mutex_t intern_lock;
    intern_t *interned;

    uint64_t text_hash; /* of the last good text: log only real changes */
    int failing;        /* in a streak of failed refreshes */

    pthread_t thread;
    int started, stop;
    pthread_mutex_t lock;
    pthread_cond_t cond;

    es_counter_t *refreshed, *refresh_failed, *tenants_gauge;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static uint64_t hash_mem(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static const char *intern(es_region_t *r, const char *name)
{
    pthread_mutex_lock(&r->intern_lock);
    intern_t *i;
    for (i = r->interned; i; i = i->next)
        if (!strcmp(i->name, name))
            break;
    if (!i) {
        i = calloc(1, sizeof *i);
        i->name = strdup(name);
        i->next = r->interned;
        r->interned = i;
    }
    pthread_mutex_unlock(&r->intern_lock);
    return i->name;
}

static void map_free(map_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++)
        free(m->tenants[i]);
    free(m->tenants);
    free(m->regions);
    free(m);
}

static const char *map_get(const map_t *m, const char *tenant)
{
    if (!m || !m->cap)
        return NULL;
    for (size_t i = hash_str(tenant) & (m->cap - 1);;
         i = (i + 1) & (m->cap - 1)) {
        if (!m->tenants[i])
            return NULL;
        if (!strcmp(m->tenants[i], tenant))
            return m->regions[i];
    }
}

/* Parses {"tenant": "region", ...}; NULL with errstr on a bad map. */
static map_t *map_parse(es_region_t *r, const char *text, size_t len,
                        char *errstr, size_t errstr_size)
{
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    map_t *m = NULL;
    if (!o || !cJSON_IsObject(o)) {
        if (!o)
            snprintf(errstr, errstr_size, "invalid JSON at byte %zu",
                     end ? (size_t)(end - text) : (size_t)0);
        else
            snprintf(errstr, errstr_size,
                     "must be a JSON object of \"tenant\": \"region\"");
        goto done;
    }
    size_t n = (size_t)cJSON_GetArraySize(o), cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    m = calloc(1, sizeof *m);
    m->cap = cap;
    m->tenants = calloc(cap, sizeof *m->tenants);
    m->regions = calloc(cap, sizeof *m->regions);
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        if (!cJSON_IsString(it) || !it->valuestring[0]) {
            snprintf(errstr, errstr_size,
                     "tenant \"%.200s\": the region must be a non-empty "
                     "string",
                     it->string);
            map_free(m);
            m = NULL;
            goto done;
        }
        size_t i = hash_str(it->string) & (cap - 1);
        while (m->tenants[i] && strcmp(m->tenants[i], it->string))
            i = (i + 1) & (cap - 1);
        if (!m->tenants[i]) {
            m->tenants[i] = strdup(it->string);
            m->n++;
        }
        m->regions[i] = intern(r, it->valuestring);
    }
    char twice[256]; /* the values are strings: a top-level key */
    if (m->n < (size_t)cJSON_GetArraySize(o) &&
        es_json_repeated_key(o, "", twice, sizeof twice)) {
        snprintf(errstr, errstr_size,
                 "tenant \"%.200s\" is given twice (which region?)", twice);
        map_free(m);
        m = NULL;
    }
done:
    cJSON_Delete(o);
    return m;
}

/* ----------------------------------------------------------- fetching */

static int is_url(const char *s)
{
    return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

static int fetch_url(es_region_t *r, es_curlbuf_t *b, char *errstr,
                     size_t errstr_size)
{
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(errstr, errstr_size, "cannot create a libcurl handle");
        return -1;
    }
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, r->source);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, es_curlbuf_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    if (r->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, r->ca_file);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (b->overflow) {
        snprintf(errstr, errstr_size, "larger than %u bytes", MAX_MAP_BYTES);
        return -1;
    }
    if (rc != CURLE_OK) {
        snprintf(errstr, errstr_size, "%s",
                 cerr[0] ? cerr : curl_easy_strerror(rc));
        return -1;
    }
    if (status != 200) {
        snprintf(errstr, errstr_size, "HTTP status %ld", status);
        return -1;
    }
    return 0;
}

static int read_file(const char *path, es_curlbuf_t *b, char *errstr,
                     size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, errstr_size, "cannot read: %s", strerror(errno));
        return -1;
    }
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (es_curlbuf_write(chunk, 1, n, b) != n) {
            snprintf(errstr, errstr_size, "larger than %u bytes",
                     MAX_MAP_BYTES);
            rc = -1;
            break;
        }
    fclose(f);
    return rc;
}

/* Loads and parses the source; the new map is swapped in on success. */
static int load(es_region_t *r, char *errstr, size_t errstr_size)
{
    es_curlbuf_t b = {.max = MAX_MAP_BYTES};
    char why[512] = "";
    int rc = is_url(r->source) ? fetch_url(r, &b, why, sizeof why)
                               : read_file(r->source, &b, why, sizeof why);
    map_t *m = NULL;
    if (rc == 0 &&
        !(m = map_parse(r, b.data ? b.data : "", b.len, why, sizeof why)))
        rc = -1;
    if (rc) {
        snprintf(errstr, errstr_size, "%s: %s", r->source, why);
        free(b.data);
        return -1;
    }
    uint64_t h = hash_mem(b.data ? b.data : "", b.len);
    free(b.data);
    pthread_rwlock_wrlock(&r->map_lock);
    map_t *old = r->map;
    r->map = m;
    pthread_rwlock_unlock(&r->map_lock);
    map_free(old);
    es_gauge_set(r->tenants_gauge, m->n);
    es_counter_add(r->refreshed, 1);
    if (!old || h != r->text_hash)
        es_info("region map loaded region=%s source=%s tenants=%zu", r->name,
                r->source, m->n);
    r->text_hash = h;
    return 0;
}

int es_region_refresh(es_region_t *r, char *errstr, size_t errstr_size)
{
    if (load(r, errstr, errstr_size) == 0) {
        if (r->failing)
            es_info("region map refresh recovered source=%s", r->source);
        r->failing = 0;
        return 0;
    }
    es_counter_add(r->refresh_failed, 1);
    if (!r->failing)
        es_warn("region map refresh failed, keeping the last good map (%zu "
                "tenants) until it succeeds: %s",
                es_region_tenants(r), errstr);
    r->failing = 1;
    return -1;
}

static void *refresh_thread(void *arg)
{
    es_region_t *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += r->refresh_ms / 1000;
        ts.tv_nsec += (long)(r->refresh_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!r->stop &&
               pthread_cond_timedwait(&r->cond, &r->lock, &ts) != ETIMEDOUT)
            ;
        if (r->stop)
            break;
        pthread_mutex_unlock(&r->lock);
        char err[1024];
        es_region_refresh(r, err, sizeof err);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* ------------------------------------------------------------- public */

int es_region_new(const es_config_t *conf, es_region_t **out, char *errstr,
                  size_t errstr_size)
{
    *out = NULL;
    if (!conf->region_name)
        return 0;
    es_region_t *r = calloc(1, sizeof *r);
    r->config_path = strdup(conf->path);
    r->name = strdup(conf->region_name);
    r->source = strdup(conf->region_map);
    r->ca_file = conf->region_ca_file ? strdup(conf->region_ca_file) : NULL;
    r->refresh_ms = conf->region_refresh_ms;
    r->timeout_ms = conf->region_timeout_ms;
    r->skip_unknown =
        conf->region_unknown && !strcmp(conf->region_unknown, "skip");
    pthread_rwlock_init(&r->map_lock, NULL);
    pthread_mutex_init(&r->intern_lock, NULL);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->refreshed = es_metrics_counter("es_region_map_refreshed_total", "");
    r->refresh_failed =
        es_metrics_counter("es_region_map_refresh_failed_total", "");
    r->tenants_gauge = es_metrics_gauge("es_region_map_tenants", "");
    if (is_url(r->source))
        r->curl_inited = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    char err[1024];
    if (load(r, err, sizeof err)) {
        snprintf(errstr, errstr_size, "%s: region.tenant_regions: %s",
                 conf->path, err);
        es_region_destroy(r);
        return -1;
    }
    *out = r;
    return 0;
}

int es_region_start(es_region_t *r, char *errstr, size_t errstr_size)
{
    if (!r)
        return 0;
    int rc = pthread_create(&r->thread, NULL, refresh_thread, r);
    if (rc) {
        snprintf(errstr, errstr_size, "region: cannot start a thread: %s",
                 strerror(rc));
        return -1;
    }
    r->started = 1;
    return 0;
}

void es_region_destroy(es_region_t *r)
{
    if (!r)
        return;
    if (r->started) {
        pthread_mutex_lock(&r->lock);
        r->stop = 1;
        pthread_cond_signal(&r->cond);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->thread, NULL);
    }
    map_free(r->map);
    for (intern_t *i = r->interned, *next; i; i = next) {
        next = i->next;
        free(i->name);
        free(i);
    }
    pthread_rwlock_destroy(&r->map_lock);
    pthread_mutex_destroy(&r->intern_lock);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    if (r->curl_inited)
        curl_global_cleanup();
    free(r->config_path);
    free(r->name);
    free(r->source);
    free(r->ca_file);
    free(r);
}

int es_region_skip(es_region_t *r, const char *tenant, const char **region)
{
    if (!r)
        return 0;
    pthread_rwlock_rdlock(&r->map_lock);
    const char *home = tenant ? map_get(r->map, tenant) : NULL;
    pthread_rwlock_unlock(&r->map_lock);
    if (!home) {
        *region = "unknown";
        return r->skip_unknown;
    }
    *region = home;
    return strcmp(home, r->name) != 0;
}

const char *es_region_name(const es_region_t *r)
{
    return r ? r->name : NULL;
}

size_t es_region_tenants(es_region_t *r)
{
    if (!r)
        return 0;
    pthread_rwlock_rdlock(&r->map_lock);
    size_t n = r->map ? r->map->n : 0;
    pthread_rwlock_unlock(&r->map_lock);
    return n;
}
