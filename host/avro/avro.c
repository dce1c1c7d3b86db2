/*
 * Avro decoder: configuration, the schema cache (fetched once per id even
 * under concurrency), wire format handling and CloudEvent assembly.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "avro_int.h"
#include "es_avro.h"
#include "internal/es_file_check.h"
#include "internal/es_json_int.h"

#define EA_MAX_IDS_PER_TOPIC 16

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef enum { SCHEMA_FETCHING, SCHEMA_READY, SCHEMA_FAILED } schema_state_t;

typedef struct schema_s schema_t;
struct schema_s {
    int refs; /* under es_avro_t.lock */
    int32_t id;
    schema_state_t state;
    es_avro_status_t fail_status;
    int64_t retry_at_ms; /* SCHEMA_FAILED: ask the registry again after */
    char fail_reason[256];
    avro_schema_t schema;
    avro_value_iface_t *iface;
    es_avro_shape_t *shape;
    char *name; /* full name of the top type */
    char *path; /* local schemas */
    schema_t *prev, *next;
    /* One decoded value kept for reuse: building libavro's generic value
     * tree costs more than reading into it. */
    pthread_mutex_t spare_lock;
    avro_value_t spare;
    int has_spare;
};

typedef struct topic_s topic_t;
struct topic_s {
    char *name;
    schema_t *local; /* set during configuration only */
    int32_t ids[EA_MAX_IDS_PER_TOPIC];
    size_t nids;
    topic_t *next;
};

struct es_avro_s {
    es_avro_registry_t reg;
    int has_registry;
    int cache_size;
    long max_message_bytes;
    long retry_hold_ms;
    es_avro_limits_t lim;

    pthread_mutex_t lock;
    pthread_cond_t fetched;
    schema_t *cache; /* most recently used first */
    int cached;
    topic_t *topics;
};

/* -------------------------------------------------------------- config */

typedef enum { OPT_STRING, OPT_BOOL, OPT_INT } opt_type_t;

static const struct {
    const char *key;
    opt_type_t type;
    size_t offset;
    long min, max;
} options[] = {
    {"url", OPT_STRING, offsetof(es_avro_t, reg.url), 0, 0},
    {"username", OPT_STRING, offsetof(es_avro_t, reg.username), 0, 0},
    {"password", OPT_STRING, offsetof(es_avro_t, reg.password), 0, 0},
    {"ca_file", OPT_STRING, offsetof(es_avro_t, reg.ca_file), 0, 0},
    {"verify", OPT_BOOL, offsetof(es_avro_t, reg.verify), 0, 1},
    {"connect_timeout_ms", OPT_INT, offsetof(es_avro_t, reg.connect_timeout_ms),
     1, 600000},
    {"timeout_ms", OPT_INT, offsetof(es_avro_t, reg.timeout_ms), 1, 600000},
    {"cache_size", OPT_INT, offsetof(es_avro_t, cache_size), 1, 1000000},
    {"max_message_bytes", OPT_INT, offsetof(es_avro_t, max_message_bytes), 5,
     1L << 30},
    {"max_items", OPT_INT, offsetof(es_avro_t, lim.max_items), 1, 100000000},
    {"max_depth", OPT_INT, offsetof(es_avro_t, lim.max_depth), 1, 1000},
    {"retry_hold_ms", OPT_INT, offsetof(es_avro_t, retry_hold_ms), 0, 3600000},
};

static int set_option(es_avro_t *a, const cJSON *item, char *errstr,
                      size_t errstr_size)
{
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
        char *field = (char *)a + options[i].offset;
        if (strcmp(item->string, options[i].key) != 0)
            continue;
        switch (options[i].type) {
        case OPT_STRING:
            if (!cJSON_IsString(item) || !item->valuestring[0]) {
                snprintf(errstr, errstr_size,
                         "schema_registry.%s: must be a non-empty string",
                         item->string);
                return -1;
            }
            free(*(char **)field);
            if (!(*(char **)field = strdup(item->valuestring)))
                return -1;
            return 0;
        case OPT_BOOL:
            if (!cJSON_IsBool(item)) {
                snprintf(errstr, errstr_size,
                         "schema_registry.%s: must be true or false",
                         item->string);
                return -1;
            }
            *(int *)field = cJSON_IsTrue(item);
            return 0;
        case OPT_INT:
            if (!es_json_int_in(item, (double)options[i].min,
                                (double)options[i].max)) {
                snprintf(errstr, errstr_size,
                         "schema_registry.%s: must be an integer from %ld to "
                         "%ld",
                         item->string, options[i].min, options[i].max);
                return -1;
            }
            /* Each int option's field has its own width. */
            if (options[i].offset == offsetof(es_avro_t, lim.max_items))
                *(size_t *)field = (size_t)item->valuedouble;
            else if (options[i].offset == offsetof(es_avro_t, cache_size) ||
                     options[i].offset == offsetof(es_avro_t, lim.max_depth))
                *(int *)field = (int)item->valuedouble;
            else
                *(long *)field = (long)item->valuedouble;
            return 0;
        }
    }
    snprintf(errstr, errstr_size, "schema_registry.%s: unknown key",
             item->string);
    return -1;
}

static int check_url(es_avro_t *a, char *errstr, size_t errstr_size)
{
    if (!a->reg.url) {
        if (a->reg.username || a->reg.password || a->reg.ca_file) {
            snprintf(errstr, errstr_size,
                     "schema_registry.url: required with username, "
                     "password or ca_file");
            return -1;
        }
        return 0;
    }
    if (a->reg.ca_file &&
        es_file_check_readable("schema_registry.ca_file", a->reg.ca_file,
                               errstr, errstr_size))
        return -1;
    if (strncmp(a->reg.url, "http://", 7) != 0 &&
        strncmp(a->reg.url, "https://", 8) != 0) {
        snprintf(errstr, errstr_size,
                 "schema_registry.url: must start with http:// or https://");
        return -1;
    }
    size_t n = strlen(a->reg.url);
    while (n > 0 && a->reg.url[n - 1] == '/')
        a->reg.url[--n] = '\0';
    if (n > 1500) {
        snprintf(errstr, errstr_size, "schema_registry.url: too long");
        return -1;
    }
    a->has_registry = 1;
    return 0;
}

es_avro_t *es_avro_new(const cJSON *config, char *errstr, size_t errstr_size)
{
    es_avro_t *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    a->reg.verify = 1;
    a->reg.connect_timeout_ms = 2000;
    a->reg.timeout_ms = 5000;
    a->cache_size = 1000;
    a->max_message_bytes = 1L << 20;
    a->retry_hold_ms = 1000;
    a->lim.max_items = 100000;
    a->lim.max_depth = 64;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->fetched, NULL);
    if (config && !cJSON_IsObject(config) && !cJSON_IsNull(config)) {
        snprintf(errstr, errstr_size, "schema_registry: must be an object");
        goto fail;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, config)
    {
        if (set_option(a, item, errstr, errstr_size) < 0)
            goto fail;
    }
    if (check_url(a, errstr, errstr_size) < 0)
        goto fail;
    if (a->has_registry && curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        snprintf(errstr, errstr_size, "curl_global_init failed");
        goto fail;
    }
    return a;
fail:
    es_avro_destroy(a);
    return NULL;
}

static void schema_free(schema_t *s)
{
    if (!s)
        return;
    if (s->has_spare)
        avro_value_decref(&s->spare);
    pthread_mutex_destroy(&s->spare_lock);
    if (s->iface)
        avro_value_iface_decref(s->iface);
    if (s->schema)
        avro_schema_decref(s->schema);
    es_avro_shape_destroy(s->shape);
    free(s->name);
    free(s->path);
    free(s);
}

/* Call with the lock held. */
static void schema_unref(schema_t *s)
{
    if (s && --s->refs == 0)
        schema_free(s);
}

void es_avro_destroy(es_avro_t *a)
{
    if (!a)
        return;
    for (schema_t *s = a->cache, *next; s; s = next) {
        next = s->next;
        schema_unref(s);
    }
    for (topic_t *t = a->topics, *next; t; t = next) {
        next = t->next;
        schema_unref(t->local);
        free(t->name);
        free(t);
    }
    free(a->reg.url);
    free(a->reg.username);
    free(a->reg.password);
    free(a->reg.ca_file);
    pthread_cond_destroy(&a->fetched);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/* ------------------------------------------------------------- schemas */

/* Builds everything a schema needs from its JSON text: libavro's schema
 * and value class, and our shape. */
static int schema_build(schema_t *s, const char *json, char *errstr,
                        size_t errstr_size)
{
    char err[200];
    /* On a parse error libavro leaves its out-parameter pointing at a
     * schema it has already freed (valgrind): only keep it on success. */
    avro_schema_t schema = NULL;
    if (avro_schema_from_json_length(json, strlen(json), &schema) != 0) {
        snprintf(errstr, errstr_size, "not a valid Avro schema: %s",
                 avro_strerror());
        return -1;
    }
    s->schema = schema;
    if (es_avro_shape_parse(json, strlen(json), &s->shape, err, sizeof(err)) <
        0) {
        snprintf(errstr, errstr_size, "not a valid Avro schema: %s", err);
        return -1;
    }
    if (!(s->iface = avro_generic_class_from_schema(s->schema))) {
        snprintf(errstr, errstr_size, "libavro cannot use the schema: %s",
                 avro_strerror());
        return -1;
    }
    const char *name = s->shape->root->fullname;
    s->name = strdup(name ? name : avro_schema_type_name(s->schema));
    if (!s->name) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    return 0;
}

static char *read_file(const char *path, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > (8L << 20) ||
        fseek(f, 0, SEEK_SET) != 0) {
        snprintf(errstr, errstr_size, "%s: cannot read (or over 8 MiB)", path);
        goto done;
    }
    if (!(buf = malloc((size_t)n + 1)) ||
        fread(buf, 1, (size_t)n, f) != (size_t)n) {
        snprintf(errstr, errstr_size, "%s: read failed", path);
        free(buf);
        buf = NULL;
        goto done;
    }
    buf[n] = '\0';
done:
    fclose(f);
    return buf;
}

/* Call with the lock held (or before the decoder is shared). */
static topic_t *topic_get(es_avro_t *a, const char *name)
{
    topic_t *t;
    for (t = a->topics; t; t = t->next)
        if (strcmp(t->name, name) == 0)
            return t;
    if (!(t = calloc(1, sizeof(*t))) || !(t->name = strdup(name))) {
        free(t);
        return NULL;
    }
    t->next = a->topics;
    a->topics = t;
    return t;
}

int es_avro_add_local_schema(es_avro_t *a, const char *topic,
                             const char *avsc_path, char *errstr,
                             size_t errstr_size)
{
    char err[256];
    int rc = -1;
    char *json = read_file(avsc_path, errstr, errstr_size);
    schema_t *s = calloc(1, sizeof(*s));
    topic_t *t;
    if (!json || !s)
        goto done;
    pthread_mutex_init(&s->spare_lock, NULL);
    s->refs = 1;
    s->id = -1;
    s->state = SCHEMA_READY;
    if (!(s->path = strdup(avsc_path)))
        goto done;
    if (schema_build(s, json, err, sizeof(err)) < 0) {
        snprintf(errstr, errstr_size, "%s: %s", avsc_path, err);
        goto done;
    }
    pthread_mutex_lock(&a->lock);
    if ((t = topic_get(a, topic))) {
        schema_unref(t->local);
        t->local = s;
        s = NULL;
    }
    pthread_mutex_unlock(&a->lock);
    if (!t) {
        snprintf(errstr, errstr_size, "out of memory");
        goto done;
    }
    rc = 0;
done:
    schema_free(s);
    free(json);
    return rc;
}

int es_avro_has_local_schema(const es_avro_t *a, const char *topic)
{
    for (const topic_t *t = a->topics; t; t = t->next)
        if (strcmp(t->name, topic) == 0)
            return t->local != NULL;
    return 0;
}

static void cache_unlink(es_avro_t *a, schema_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        a->cache = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    a->cached--;
}

static void cache_push(es_avro_t *a, schema_t *s)
{
    s->next = a->cache;
    if (a->cache)
        a->cache->prev = s;
    a->cache = s;
    a->cached++;
}

/* Drops the least recently used ready schemas beyond cache_size; those in
 * use stay alive through their references. Lock held. */
static void cache_trim(es_avro_t *a)
{
    schema_t *s = a->cache;
    while (s && s->next)
        s = s->next;
    while (s && a->cached > a->cache_size) {
        schema_t *prev = s->prev;
        if (s->state != SCHEMA_FETCHING) {
            cache_unlink(a, s);
            schema_unref(s);
        }
        s = prev;
    }
}

/* Fetches and builds schema `id` (called without the lock). */
static void fetch_schema(es_avro_t *a, schema_t *s)
{
    char *json = NULL, err[200];
    int st = es_avro_registry_fetch(&a->reg, s->id, &json, s->fail_reason,
                                    sizeof(s->fail_reason));
    s->fail_status = (es_avro_status_t)st;
    if (st == ES_AVRO_OK && schema_build(s, json, err, sizeof(err)) < 0) {
        snprintf(s->fail_reason, sizeof(s->fail_reason),
                 "schema id %" PRId32 " from the registry is %s", s->id, err);
        s->fail_status = ES_AVRO_FAIL;
    }
    free(json);
}

/*
 * Returns a referenced schema for `id`, fetching it when no thread has.
 * Threads asking for an id being fetched wait for that one fetch. A 404 is
 * not cached (the next value with that id asks again); a transient failure
 * is remembered for retry_hold_ms, so that while the registry is down each
 * id costs one request (and at most one timeout) per hold period, not one
 * per record.
 */
static es_avro_status_t registry_schema(es_avro_t *a, int32_t id,
                                        schema_t **out, char *reason,
                                        size_t reason_size)
{
    schema_t *s;
    es_avro_status_t st = ES_AVRO_OK;
    pthread_mutex_lock(&a->lock);
    for (s = a->cache; s; s = s->next)
        if (s->id == id)
            break;
    if (s && s->state == SCHEMA_FAILED && now_ms() >= s->retry_at_ms) {
        cache_unlink(a, s);
        schema_unref(s);
        s = NULL;
    }
    if (s) {
        s->refs++;
        while (s->state == SCHEMA_FETCHING)
            pthread_cond_wait(&a->fetched, &a->lock);
        if (s->state == SCHEMA_READY && s != a->cache) {
            cache_unlink(a, s);
            cache_push(a, s);
        }
    } else if ((s = calloc(1, sizeof(*s)))) {
        pthread_mutex_init(&s->spare_lock, NULL);
        s->id = id;
        s->refs = 2; /* the cache's and ours */
        s->state = SCHEMA_FETCHING;
        cache_push(a, s);
        pthread_mutex_unlock(&a->lock);
        fetch_schema(a, s);
        pthread_mutex_lock(&a->lock);
        if (s->fail_status == ES_AVRO_OK) {
            s->state = SCHEMA_READY;
            cache_trim(a);
        } else {
            s->state = SCHEMA_FAILED;
            s->retry_at_ms = now_ms() + a->retry_hold_ms;
            if (s->fail_status != ES_AVRO_RETRY || a->retry_hold_ms == 0) {
                cache_unlink(a, s);
                schema_unref(s);
            }
        }
        pthread_cond_broadcast(&a->fetched);
    }
    if (!s) {
        snprintf(reason, reason_size, "out of memory");
        st = ES_AVRO_RETRY;
    } else if (s->state == SCHEMA_FAILED) {
        snprintf(reason, reason_size, "%s", s->fail_reason);
        st = s->fail_status;
        schema_unref(s);
        s = NULL;
    }
    pthread_mutex_unlock(&a->lock);
    *out = s;
    return st;
}

static void release(es_avro_t *a, schema_t *s)
{
    if (!s || s->id < 0)
        return; /* local schemas live as long as the decoder */
    pthread_mutex_lock(&a->lock);
    schema_unref(s);
    pthread_mutex_unlock(&a->lock);
}

/* -------------------------------------------------------------- decode */

static int value_take(schema_t *s, avro_value_t *v)
{
    int have = 0;
    pthread_mutex_lock(&s->spare_lock);
    if (s->has_spare) {
        *v = s->spare;
        s->has_spare = 0;
        have = 1;
    }
    pthread_mutex_unlock(&s->spare_lock);
    if (have && avro_value_reset(v) == 0)
        return 0;
    if (have)
        avro_value_decref(v);
    return avro_generic_value_new(s->iface, v);
}

static void value_give_back(schema_t *s, avro_value_t *v)
{
    int kept = 0;
    pthread_mutex_lock(&s->spare_lock);
    if (!s->has_spare) {
        s->spare = *v;
        s->has_spare = kept = 1;
    }
    pthread_mutex_unlock(&s->spare_lock);
    if (!kept)
        avro_value_decref(v);
}

static es_avro_status_t decode_body(es_avro_t *a, schema_t *s,
                                    const uint8_t *body, size_t len,
                                    size_t base, cJSON **out, char *reason,
                                    size_t reason_size)
{
    es_avro_status_t st = ES_AVRO_FAIL;
    avro_value_t v;
    int have_value = 0;
    avro_reader_t r = NULL;
    *out = NULL;
    if (es_avro_shape_check(s->shape, body, len, base, &a->lim, reason,
                            reason_size) < 0)
        goto done;
    /* libavro reads only bytes that were just checked to be one complete
     * value of this schema, so its allocations are bounded by the input. */
    if (!(r = avro_reader_memory((const char *)body, (int64_t)len)) ||
        value_take(s, &v) != 0) {
        snprintf(reason, reason_size, "out of memory");
        st = ES_AVRO_RETRY;
        goto done;
    }
    have_value = 1;
    if (avro_value_read(r, &v) != 0) {
        snprintf(reason, reason_size, "libavro cannot decode the value: %s",
                 avro_strerror());
        goto done;
    }
    reason[0] = '\0';
    if (!(*out = es_avro_to_json(s->shape->root, &v, reason, reason_size))) {
        if (!reason[0])
            snprintf(reason, reason_size, "out of memory");
        st = ES_AVRO_RETRY;
        goto done;
    }
    st = ES_AVRO_OK;
done:
    if (have_value)
        value_give_back(s, &v);
    if (r)
        avro_reader_free(r);
    return st;
}

static void note_use(es_avro_t *a, const char *topic, int32_t id)
{
    pthread_mutex_lock(&a->lock);
    topic_t *t = topic_get(a, topic);
    if (t) {
        size_t i = 0;
        while (i < t->nids && t->ids[i] != id)
            i++;
        if (i == t->nids && t->nids < EA_MAX_IDS_PER_TOPIC)
            t->ids[t->nids++] = id;
    }
    pthread_mutex_unlock(&a->lock);
}

static schema_t *local_schema(es_avro_t *a, const char *topic)
{
    /* Topics and their local schemas are fixed once decoding starts;
     * only registry-only topics are added later, at the list's head. */
    pthread_mutex_lock(&a->lock);
    topic_t *t = a->topics;
    pthread_mutex_unlock(&a->lock);
    for (; t; t = t->next)
        if (strcmp(t->name, topic) == 0)
            return t->local;
    return NULL;
}

/* Wire format: magic 0, schema id (big-endian int32), Avro binary. */
static es_avro_status_t decode_wire(es_avro_t *a, const char *topic,
                                    const uint8_t *p, size_t len,
                                    schema_t *local, cJSON **out, char *reason,
                                    size_t reason_size)
{
    int32_t id = (int32_t)((uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 |
                           (uint32_t)p[3] << 8 | p[4]);
    schema_t *s = NULL;
    es_avro_status_t st;
    if (a->has_registry) {
        st = registry_schema(a, id, &s, reason, reason_size);
    } else if (local) {
        s = local; /* no registry: the topic's own schema wrote it */
        st = ES_AVRO_OK;
    } else {
        snprintf(reason, reason_size,
                 "wire-format value with schema id %" PRId32
                 " but no schema_registry is configured and topic %s has no "
                 "local schema",
                 id, topic);
        return ES_AVRO_FAIL;
    }
    if (st == ES_AVRO_OK) {
        st = decode_body(a, s, p + 5, len - 5, 5, out, reason, reason_size);
        if (st == ES_AVRO_OK)
            note_use(a, topic, s == local ? -1 : id);
        release(a, s);
    }
    return st;
}

es_avro_status_t es_avro_decode_value(es_avro_t *a, const char *topic,
                                      const void *value, size_t len,
                                      cJSON **out, char *reason,
                                      size_t reason_size)
{
    const uint8_t *p = value;
    schema_t *local = local_schema(a, topic);
    es_avro_status_t st;
    *out = NULL;
    if (len > (size_t)a->max_message_bytes) {
        snprintf(reason, reason_size,
                 "oversize value: %zu bytes (max_message_bytes is %ld)", len,
                 a->max_message_bytes);
        return ES_AVRO_FAIL;
    }
    if (len >= 5 && p[0] == 0) {
        st = decode_wire(a, topic, p, len, local, out, reason, reason_size);
        if (st == ES_AVRO_OK || !local)
            return st;
        /* A plain Avro value may start with a zero byte too: with a local
         * schema, one that decodes exactly as plain Avro is taken as such. */
        char plain_reason[256];
        if (decode_body(a, local, p, len, 0, out, plain_reason,
                        sizeof(plain_reason)) == ES_AVRO_OK) {
            note_use(a, topic, -1);
            return ES_AVRO_OK;
        }
        return st;
    }
    if (local) {
        st = decode_body(a, local, p, len, 0, out, reason, reason_size);
        if (st == ES_AVRO_OK)
            note_use(a, topic, -1);
        return st;
    }
    if (len == 0)
        snprintf(reason, reason_size, "empty value on Avro topic %s", topic);
    else if (p[0] == 0)
        snprintf(reason, reason_size,
                 "truncated: %zu-byte value is shorter than the 5-byte "
                 "wire-format header",
                 len);
    else
        snprintf(reason, reason_size,
                 "unknown magic byte 0x%02x (the wire format starts with "
                 "0x00 and topic %s has no local schema)",
                 p[0], topic);
    return ES_AVRO_FAIL;
}

/* ------------------------------------------------------------ events */

static const char *const required[] = {"specversion", "id", "source", "type"};

static int is_cloudevent(const cJSON *rec)
{
    if (!cJSON_IsObject(rec))
        return 0;
    for (size_t i = 0; i < 4; i++)
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(rec, required[i])))
            return 0;
    return 1;
}

/* Optional attributes that are null were absent, as CloudEvents JSON has
 * them; `data` keeps whatever it holds. */
static void drop_null_attributes(cJSON *ev)
{
    cJSON *item = ev->child;
    while (item) {
        cJSON *next = item->next;
        if (cJSON_IsNull(item) && strcmp(item->string, "data") != 0)
            cJSON_Delete(cJSON_DetachItemViaPointer(ev, item));
        item = next;
    }
}

static int header_text(const es_header_t *h, char *reason, size_t reason_size,
                       char **out)
{
    const char *v = h->value ? h->value : "";
    if (memchr(v, '\0', h->value_len)) {
        snprintf(reason, reason_size, "header %s holds a NUL byte", h->name);
        return -1;
    }
    *out = strndup(v, h->value_len);
    return *out ? 0 : -1;
}

/* Binary mode: the decoded value is data; attributes come from ce_ headers. */
static cJSON *binary_event(cJSON *data, const es_header_t *headers,
                           size_t count, char *reason, size_t reason_size)
{
    cJSON *ev = cJSON_CreateObject();
    if (!ev)
        return NULL;
    for (size_t i = 0; i < count; i++) {
        const char *name = headers[i].name;
        char *text = NULL;
        if (!name || strncmp(name, "ce_", 3) != 0 || !name[3] ||
            strcmp(name + 3, "data") == 0 ||
            cJSON_GetObjectItemCaseSensitive(ev, name + 3))
            continue;
        if (header_text(&headers[i], reason, reason_size, &text) < 0 ||
            !cJSON_AddStringToObject(ev, name + 3, text)) {
            free(text);
            goto fail;
        }
        free(text);
    }
    for (size_t i = 0; i < 4; i++) {
        if (!cJSON_GetObjectItemCaseSensitive(ev, required[i])) {
            snprintf(reason, reason_size,
                     "the Avro value is not a CloudEvent record (needs "
                     "specversion, id, source, type) and header ce_%s is "
                     "missing",
                     required[i]);
            goto fail;
        }
    }
    /* The data is JSON now, whatever content type the producer declared. */
    cJSON_DeleteItemFromObjectCaseSensitive(ev, "datacontenttype");
    if (!cJSON_AddStringToObject(ev, "datacontenttype", "application/json"))
        goto fail;
    cJSON_AddItemToObject(ev, "data", data);
    return ev;
fail:
    cJSON_Delete(ev);
    return NULL;
}

es_avro_status_t es_avro_decode(es_avro_t *a, const char *topic,
                                const void *value, size_t len,
                                const es_header_t *headers, size_t header_count,
                                cJSON **event_out, char *reason,
                                size_t reason_size)
{
    cJSON *rec = NULL, *ev;
    *event_out = NULL;
    reason[0] = '\0';
    es_avro_status_t st =
        es_avro_decode_value(a, topic, value, len, &rec, reason, reason_size);
    if (st != ES_AVRO_OK)
        return st;
    if (is_cloudevent(rec)) {
        drop_null_attributes(rec);
        *event_out = rec;
        return ES_AVRO_OK;
    }
    if (!(ev = binary_event(rec, headers, header_count, reason, reason_size))) {
        cJSON_Delete(rec);
        if (!reason[0])
            snprintf(reason, reason_size, "out of memory");
        return ES_AVRO_FAIL;
    }
    *event_out = ev;
    return ES_AVRO_OK;
}

/* ------------------------------------------------------------- listing */

static cJSON *describe(const schema_t *s, int32_t id)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if (s && s->id < 0) {
        cJSON_AddStringToObject(o, "source", "local");
        cJSON_AddStringToObject(o, "path", s->path);
    } else {
        cJSON_AddStringToObject(o, "source", "registry");
        cJSON_AddNumberToObject(o, "id", id);
    }
    if (s && s->name)
        cJSON_AddStringToObject(o, "name", s->name);
    return o;
}

cJSON *es_avro_schemas(es_avro_t *a)
{
    cJSON *out = cJSON_CreateObject();
    if (!out)
        return NULL;
    pthread_mutex_lock(&a->lock);
    for (const topic_t *t = a->topics; t; t = t->next) {
        cJSON *list = cJSON_AddArrayToObject(out, t->name);
        if (!list)
            continue;
        if (t->local)
            cJSON_AddItemToArray(list, describe(t->local, -1));
        for (size_t i = 0; i < t->nids; i++) {
            const schema_t *s = a->cache;
            if (t->ids[i] < 0)
                continue;
            while (s && s->id != t->ids[i])
                s = s->next;
            cJSON_AddItemToArray(list, describe(s, t->ids[i]));
        }
    }
    pthread_mutex_unlock(&a->lock);
    return out;
}
