/*
 * S3 sink: batches events per (topic, partition, tenant) into JSON-lines
 * objects (optionally gzip) and uploads them from worker threads (upload.c).
 *
 * Exactly once: an object's key is built from its topic, tenant, partition
 * and offset range and created with If-None-Match: *, so a redelivery after
 * a crash finds the object already there (412) instead of writing a second
 * one. To make a redelivery cut the same batches again, each sealed batch's
 * offset range (its "plan") is kept in the host's durable state before the
 * upload starts, and a batch opened at an offset inside a recorded plan ends
 * exactly where the plan ended.
 */
#include "s3.h"
#include "internal/es_file_check.h"
#include "internal/es_json_int.h"

#include <ctype.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#define S3_DEFAULT_TEMPLATE                                                    \
    "{topic}/{tenant}/%Y/%m/%d/%H/{partition}-{start_offset}-{end_offset}"     \
    ".jsonl.gz"

/* ---------------------------------------------------------------- config */

typedef enum { OPT_STR, OPT_BOOL, OPT_LONG, OPT_TIME_SOURCE } opt_type_t;

typedef struct opt_s {
    const char *name;
    opt_type_t type;
    size_t offset;
    long min, max;
} opt_t;

#define OFF(f) offsetof(s3_config_t, f)
static const opt_t options[] = {
    {"bucket", OPT_STR, OFF(bucket), 0, 0},
    {"region", OPT_STR, OFF(region), 0, 0},
    {"endpoint", OPT_STR, OFF(endpoint), 0, 0},
    {"path_style", OPT_BOOL, OFF(path_style), 0, 0},
    {"key_template", OPT_STR, OFF(key_template), 0, 0},
    {"time_source", OPT_TIME_SOURCE, OFF(time_from_event), 0, 0},
    {"gzip", OPT_BOOL, OFF(gzip), 0, 0},
    {"gzip_level", OPT_LONG, OFF(gzip_level), 1, 12},
    {"max_object_bytes", OPT_LONG, OFF(max_object_bytes), 1024, 1L << 32},
    {"max_object_events", OPT_LONG, OFF(max_object_events), 1, 100000000},
    {"max_object_age_ms", OPT_LONG, OFF(max_object_age_ms), 10, 86400000},
    {"max_buffer_bytes", OPT_LONG, OFF(max_buffer_bytes), 4096, 1L << 36},
    {"part_size", OPT_LONG, OFF(part_size), 1024, 5L << 30},
    {"upload_threads", OPT_LONG, OFF(upload_threads), 1, 64},
    {"timeout_ms", OPT_LONG, OFF(timeout_ms), 100, 3600000},
    {"access_key_id", OPT_STR, OFF(access_key_id), 0, 0},
    {"secret_access_key", OPT_STR, OFF(secret_access_key), 0, 0},
    {"session_token", OPT_STR, OFF(session_token), 0, 0},
    {"profile", OPT_STR, OFF(profile), 0, 0},
    {"ca_file", OPT_STR, OFF(ca_file), 0, 0},
};

static void config_defaults(s3_config_t *c)
{
    c->time_from_event = 1;
    c->gzip = 1;
    c->gzip_level = 1;
    c->max_object_bytes = 8L << 20;
    c->max_object_events = 1000000;
    c->max_object_age_ms = 60000;
    c->max_buffer_bytes = 256L << 20;
    c->part_size = 8L << 20;
    c->upload_threads = 2;
    c->timeout_ms = 30000;
}

static void config_free(s3_config_t *c)
{
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
        if (options[i].type == OPT_STR)
            free(*(char **)((char *)c + options[i].offset));
}

static int set_option(s3_config_t *c, const opt_t *o, const cJSON *v,
                      char *errstr, size_t errstr_size)
{
    void *field = (char *)c + o->offset;
    switch (o->type) {
    case OPT_STR:
        if (!cJSON_IsString(v) || !*v->valuestring) {
            snprintf(errstr, errstr_size, "%s: must be a non-empty string",
                     o->name);
            return -1;
        }
        free(*(char **)field);
        *(char **)field = strdup(v->valuestring);
        return 0;
    case OPT_BOOL:
        if (!cJSON_IsBool(v)) {
            snprintf(errstr, errstr_size, "%s: must be true or false", o->name);
            return -1;
        }
        *(int *)field = cJSON_IsTrue(v);
        return 0;
    case OPT_LONG:
        if (!es_json_int_in(v, (double)o->min, (double)o->max)) {
            snprintf(errstr, errstr_size,
                     "%s: must be an integer from %ld to %ld", o->name, o->min,
                     o->max);
            return -1;
        }
        *(long *)field = (long)v->valuedouble;
        return 0;
    case OPT_TIME_SOURCE:
        if (!cJSON_IsString(v) || (strcmp(v->valuestring, "event") != 0 &&
                                   strcmp(v->valuestring, "processing") != 0)) {
            snprintf(errstr, errstr_size,
                     "%s: must be \"event\" or \"processing\"", o->name);
            return -1;
        }
        *(int *)field = strcmp(v->valuestring, "event") == 0;
        return 0;
    }
    return -1;
}

/* A key must name its topic, tenant, partition and offset range: that is
 * what makes it deterministic and unique, hence exactly-once. */
static int check_template(const char *t, char *errstr, size_t errstr_size)
{
    static const char *const needed[] = {"{topic}", "{tenant}", "{partition}",
                                         "{start_offset}", "{end_offset}"};
    for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
        if (!strstr(t, needed[i])) {
            snprintf(errstr, errstr_size,
                     "key_template: must contain %s (keys must be unique "
                     "and deterministic per offset range)",
                     needed[i]);
            return -1;
        }
    }
    for (const char *p = strchr(t, '{'); p; p = strchr(p + 1, '{')) {
        static const char *const known[] = {"{topic}",      "{tenant}",
                                            "{partition}",  "{start_offset}",
                                            "{end_offset}", "{count}"};
        int ok = 0;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            ok |= strncmp(p, known[i], strlen(known[i])) == 0;
        if (!ok) {
            snprintf(errstr, errstr_size,
                     "key_template: unknown field at \"%.20s\"", p);
            return -1;
        }
    }
    if (t[0] == '/') {
        snprintf(errstr, errstr_size, "key_template: must not start with /");
        return -1;
    }
    return 0;
}

/* The region goes into the host name, the signing scope and the
 * Authorization header as written ("evil.example#" sent the signed request
 * to s3.evil.example). Not only AWS names: S3-compatible stores use others
 * ("auto" for Cloudflare R2, "default" for Ceph). */
static int region_ok(const char *region)
{
    size_t len = strlen(region);
    if (len == 0 || len > 63)
        return 0;
    for (const char *p = region; *p; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
            *p != '-')
            return 0;
    return 1;
}

/* The store's CA (MinIO, Ceph behind a private CA): the config's, else
 * AWS_CA_BUNDLE as the AWS SDKs read it. libcurl opens it only when it
 * sends, so it is checked here. */
static int check_ca_file(s3_config_t *c, char *errstr, size_t errstr_size)
{
    const char *env = getenv("AWS_CA_BUNDLE");
    int from_env = !c->ca_file && env && *env;
    if (from_env && !(c->ca_file = strdup(env))) {
        snprintf(errstr, errstr_size, "ca_file: out of memory");
        return -1;
    }
    return c->ca_file ? es_file_check_readable(from_env ? "ca_file "
                                                          "(AWS_CA_BUNDLE)"
                                                        : "ca_file",
                                               c->ca_file, errstr, errstr_size)
                      : 0;
}

static int config_parse(s3_config_t *c, const cJSON *json, char *errstr,
                        size_t errstr_size)
{
    const cJSON *item;
    config_defaults(c);
    if (!cJSON_IsObject(json)) {
        snprintf(errstr, errstr_size,
                 "config: must be an object with at "
                 "least \"bucket\"");
        return -1;
    }
    cJSON_ArrayForEach(item, json)
    {
        const opt_t *o = NULL;
        for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
            if (strcmp(options[i].name, item->string) == 0)
                o = &options[i];
        if (!o) {
            snprintf(errstr, errstr_size, "%s: unknown key", item->string);
            return -1;
        }
        if (set_option(c, o, item, errstr, errstr_size))
            return -1;
    }
    if (!c->bucket) {
        snprintf(errstr, errstr_size, "bucket: required");
        return -1;
    }
    for (const char *p = c->bucket; *p; p++) {
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
            *p != '-' && *p != '.') {
            snprintf(errstr, errstr_size,
                     "bucket: only lowercase letters, digits, '-' and '.'");
            return -1;
        }
    }
    int region_given = c->region != NULL;
    if (!c->region) {
        const char *r = getenv("AWS_REGION");
        if (!r || !*r)
            r = getenv("AWS_DEFAULT_REGION");
        c->region = strdup(r && *r ? r : "us-east-1");
    }
    if (!region_ok(c->region)) {
        snprintf(errstr, errstr_size,
                 "region: \"%.64s\"%s: only lowercase letters, digits and "
                 "'-' (eu-west-1; auto for R2), at most 63",
                 c->region, region_given ? "" : " (from the environment)");
        return -1;
    }
    if (!c->key_template)
        c->key_template = strdup(S3_DEFAULT_TEMPLATE);
    if (check_template(c->key_template, errstr, errstr_size))
        return -1;
    if (c->endpoint && strncmp(c->endpoint, "http://", 7) != 0 &&
        strncmp(c->endpoint, "https://", 8) != 0) {
        snprintf(errstr, errstr_size,
                 "endpoint: must start with http:// or https://");
        return -1;
    }
    if (check_ca_file(c, errstr, errstr_size))
        return -1;
    if (!!c->access_key_id != !!c->secret_access_key) {
        snprintf(errstr, errstr_size,
                 "access_key_id, secret_access_key: set both or neither");
        return -1;
    }
    if (c->part_size > c->max_buffer_bytes ||
        c->max_object_bytes > c->max_buffer_bytes) {
        snprintf(errstr, errstr_size,
                 "max_buffer_bytes: must be at least max_object_bytes and "
                 "part_size");
        return -1;
    }
    return 0;
}

/* Builds scheme://[bucket.]host[:port] and the path prefix. */
static int make_urls(s3_sink_t *s, char *errstr, size_t errstr_size)
{
    const s3_config_t *c = &s->cfg;
    char *ep = c->endpoint ? strdup(c->endpoint) : NULL;
    int rc = -1;
    if (!ep && asprintf(&ep, "https://s3.%s.amazonaws.com", c->region) < 0)
        ep = NULL;
    if (!ep)
        goto done;
    size_t len = strlen(ep);
    while (len > 0 && ep[len - 1] == '/')
        ep[--len] = '\0';
    if (c->path_style) {
        s->host_url = strdup(ep);
        if (asprintf(&s->path_prefix, "/%s", c->bucket) < 0)
            s->path_prefix = NULL;
    } else {
        char *sep = strstr(ep, "://");
        *sep = '\0';
        if (asprintf(&s->host_url, "%s://%s.%s", ep, c->bucket, sep + 3) < 0)
            s->host_url = NULL;
        s->path_prefix = strdup("");
    }
    if (!s->host_url || !s->path_prefix)
        goto done;
    rc = 0;
done:
    if (rc)
        snprintf(errstr, errstr_size, "endpoint: out of memory");
    free(ep);
    return rc;
}

/* ----------------------------------------------------------------- slots */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t slot_hash(const char *topic, int32_t partition,
                          const char *tenant)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = topic; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ (uint32_t)partition) * 1099511628211ull;
    for (const char *p = tenant; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

static void plans_state_key(const s3_slot_t *sl, char *buf, size_t size)
{
    snprintf(buf, size, "plans/%s/%d/%s", sl->topic, (int)sl->partition,
             sl->tenant);
}

static void plans_load(s3_sink_t *s, s3_slot_t *sl)
{
    char key[512], *val = NULL;
    size_t len = 0;
    plans_state_key(sl, key, sizeof(key));
    if (!s->host->state_get ||
        s->host->state_get(s->host, key, &val, &len) != 1)
        return;
    char *text = strndup(val, len), *save = NULL;
    s->host->free(val);
    if (!text)
        return;
    for (char *l = strtok_r(text, "\n", &save); l && sl->nplans < S3_MAX_PLANS;
         l = strtok_r(NULL, "\n", &save)) {
        long long a, b;
        if (sscanf(l, "%lld %lld", &a, &b) == 2) {
            sl->plan_s[sl->nplans] = a;
            sl->plan_e[sl->nplans] = b;
            sl->nplans++;
        }
    }
    free(text);
}

/* Records a sealed batch's range, newest last, keeping the last
 * S3_MAX_PLANS: older ones are long committed. */
static void plans_add(s3_sink_t *s, s3_slot_t *sl, int64_t start, int64_t end)
{
    char key[512], text[S3_MAX_PLANS * 44];
    size_t len = 0;
    for (int i = 0; i < sl->nplans; i++)
        if (sl->plan_s[i] == start && sl->plan_e[i] == end)
            return;
    if (sl->nplans == S3_MAX_PLANS) {
        memmove(sl->plan_s, sl->plan_s + 1,
                sizeof(int64_t) * (S3_MAX_PLANS - 1));
        memmove(sl->plan_e, sl->plan_e + 1,
                sizeof(int64_t) * (S3_MAX_PLANS - 1));
        sl->nplans--;
    }
    sl->plan_s[sl->nplans] = start;
    sl->plan_e[sl->nplans] = end;
    sl->nplans++;
    for (int i = 0; i < sl->nplans; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%lld %lld\n",
                                (long long)sl->plan_s[i],
                                (long long)sl->plan_e[i]);
    plans_state_key(sl, key, sizeof(key));
    if (s->host->state_put && s->host->state_put(s->host, key, text, len) != 0)
        s->host->log(s->host, ES_LOG_WARN,
                     "cannot record batch plan for %s/%d (redelivery after a "
                     "crash may write overlapping objects)",
                     sl->topic, (int)sl->partition);
}

static s3_slot_t *slot_get(s3_sink_t *s, const char *topic, int32_t partition,
                           const char *tenant)
{
    uint64_t h = slot_hash(topic, partition, tenant);
    size_t i = h & (s->nbuckets - 1);
    for (s3_slot_t *sl = s->buckets[i]; sl; sl = sl->hnext)
        if (sl->hash == h && sl->partition == partition &&
            strcmp(sl->topic, topic) == 0 && strcmp(sl->tenant, tenant) == 0)
            return sl;
    s3_slot_t *sl = calloc(1, sizeof(*sl));
    if (!sl)
        return NULL;
    sl->topic = strdup(topic);
    sl->tenant = strdup(tenant);
    if (!sl->topic || !sl->tenant) {
        free(sl->topic);
        free(sl->tenant);
        free(sl);
        return NULL;
    }
    sl->partition = partition;
    sl->hash = h;
    sl->blocked_at = -1;
    plans_load(s, sl);
    sl->hnext = s->buckets[i];
    s->buckets[i] = sl;
    sl->lnext = s->slots;
    s->slots = sl;
    return sl;
}

/* ------------------------------------------------------------------ keys */

/* Tenant and topic become path segments: keep them to a safe alphabet. */
static void append_safe(char **o, char *end, const char *v)
{
    for (; *v && *o < end; v++) {
        unsigned char ch = (unsigned char)*v;
        *(*o)++ =
            (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '=')
                ? (char)ch
                : '_';
    }
}

static char *render_key(const s3_sink_t *s, const s3_batch_t *b, int64_t start,
                        int64_t end)
{
    char pre[2048], out[2048];
    char *o = pre, *lim = pre + sizeof(pre) - 32;
    const char *t = s->cfg.key_template;
    while (*t && o < lim) {
        char num[32];
        const char *val = NULL;
        size_t skip = 0;
        if (*t == '{') {
            const struct {
                const char *name;
                int which;
            } f[] = {{"{topic}", 0},      {"{tenant}", 1},
                     {"{partition}", 2},  {"{start_offset}", 3},
                     {"{end_offset}", 4}, {"{count}", 5}};
            for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
                if (strncmp(t, f[i].name, strlen(f[i].name)) != 0)
                    continue;
                skip = strlen(f[i].name);
                switch (f[i].which) {
                case 0:
                    append_safe(&o, lim, b->slot->topic);
                    break;
                case 1:
                    append_safe(&o, lim, b->slot->tenant);
                    break;
                case 2:
                    snprintf(num, sizeof(num), "%d", (int)b->slot->partition);
                    val = num;
                    break;
                case 3:
                    snprintf(num, sizeof(num), "%020lld", (long long)start);
                    val = num;
                    break;
                case 4:
                    snprintf(num, sizeof(num), "%020lld", (long long)end);
                    val = num;
                    break;
                default:
                    snprintf(num, sizeof(num), "%zu", b->count);
                    val = num;
                }
            }
        }
        if (skip) {
            for (; val && *val && o < lim; val++)
                *o++ = *val;
            t += skip;
        } else {
            *o++ = *t++;
        }
    }
    *o = '\0';
    struct tm tm;
    gmtime_r(&b->key_time, &tm);
    /* The template is operator configuration, checked at init. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    size_t n = strftime(out, sizeof(out), pre, &tm);
#pragma GCC diagnostic pop
    if (n == 0)
        return NULL;
    return strdup(out);
}

/* RFC 3339 "2026-11-23T10:20:30.123+02:00" to a UTC time_t. */
static time_t parse_rfc3339(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *p = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!p)
        return (time_t)-1;
    time_t t = timegm(&tm);
    if (*p == '.')
        while (isdigit((unsigned char)*++p))
            ;
    if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1])) {
        int hh = 0, mm = 0;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) >= 1)
            t -= (*p == '+' ? 1 : -1) * (hh * 3600 + mm * 60);
    }
    return t;
}

static time_t event_time(const s3_sink_t *s, const es_event_t *ev)
{
    if (s->cfg.time_from_event) {
        time_t t = parse_rfc3339(ev->time);
        if (t != (time_t)-1)
            return t;
        if (ev->timestamp_ms >= 0)
            return (time_t)(ev->timestamp_ms / 1000);
    }
    return time(NULL);
}

/* --------------------------------------------------------------- batches */

void s3_batch_free(s3_batch_t *b)
{
    if (!b)
        return;
    free(b->buf);
    free(b->tokens);
    free(b->key);
    free(b->alt_key);
    free(b->topic);
    free(b);
}

static void seal(s3_sink_t *s, s3_slot_t *sl)
{
    s3_batch_t *b = sl->open;
    if (!b)
        return;
    sl->open = NULL;
    s->open_bytes -= b->len;
    /*
     * The key always names the batch's own offset range, so an object under
     * a key holds every event of that range. A redelivered batch that ends
     * where a recorded plan ended but starts later (its first events were
     * committed) may already be inside the plan's object: the worker looks
     * for that object first (alt_key) and writes nothing if it is there.
     */
    if (b->plan_end >= 0 && b->end_offset == b->plan_end &&
        b->start_offset > b->plan_start)
        b->alt_key = render_key(s, b, b->plan_start, b->plan_end);
    if (b->plan_start != b->start_offset || b->plan_end != b->end_offset)
        plans_add(s, sl, b->start_offset, b->end_offset);
    b->key = render_key(s, b, b->start_offset, b->end_offset);
    b->topic = strdup(sl->topic);
    if (!b->key || !b->topic) {
        for (size_t i = 0; i < b->count; i++)
            s->host->complete(s->host, b->tokens[i], ES_RETRY,
                              "s3: cannot build object key");
        s3_batch_free(b);
        return;
    }
    pthread_mutex_lock(&s->lock);
    s->queued_bytes += b->len;
    if (s->q_tail)
        s->q_tail->next = b;
    else
        s->q_head = b;
    s->q_tail = b;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static s3_batch_t *batch_open(s3_sink_t *s, s3_slot_t *sl, const es_event_t *ev)
{
    s3_batch_t *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->slot = sl;
    b->start_offset = b->end_offset = ev->offset;
    b->plan_start = b->plan_end = -1;
    /* The newest recorded plan that covers this offset decides the cut. */
    for (int i = sl->nplans - 1; i >= 0; i--) {
        if (sl->plan_s[i] <= ev->offset && ev->offset <= sl->plan_e[i]) {
            b->plan_start = sl->plan_s[i];
            b->plan_end = sl->plan_e[i];
            break;
        }
    }
    b->key_time = event_time(s, ev);
    b->opened_ms = now_ms();
    sl->open = b;
    return b;
}

void s3_batch_recycle(s3_sink_t *s, s3_batch_t *b)
{
    pthread_mutex_lock(&s->lock);
    if (b->cap == (size_t)s->cfg.max_object_bytes && s->nspare < s->max_spare) {
        s->spare[s->nspare++] = b->buf;
        b->buf = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    s3_batch_free(b);
}

/* A full-size buffer: a kept one, or a new one on huge pages when the
 * kernel offers them (one fault per 2 MiB instead of per 4 KiB). */
static char *full_buffer(s3_sink_t *s)
{
    size_t full = (size_t)s->cfg.max_object_bytes;
    char *buf = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->nspare > 0)
        buf = s->spare[--s->nspare];
    pthread_mutex_unlock(&s->lock);
    if (buf)
        return buf;
    if (full < (2u << 20) || posix_memalign((void **)&buf, 2u << 20, full))
        return malloc(full);
    madvise(buf, full, MADV_HUGEPAGE);
    return buf;
}

static int batch_append(s3_sink_t *s, s3_batch_t *b, const es_event_t *ev)
{
    size_t need = b->len + ev->json_len + 1;
    size_t full = (size_t)s->cfg.max_object_bytes;
    if (need > b->cap && need <= full && b->cap < full &&
        (need > S3_BIG_BATCH || b->slot->hot)) {
        char *big = full_buffer(s);
        if (big) {
            if (b->len)
                memcpy(big, b->buf, b->len);
            free(b->buf);
            b->buf = big;
            b->cap = full;
        }
    }
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need)
            cap *= 2;
        if (cap > (size_t)s->cfg.max_object_bytes &&
            need <= (size_t)s->cfg.max_object_bytes)
            cap = (size_t)s->cfg.max_object_bytes;
        char *nb = realloc(b->buf, cap);
        if (!nb)
            return -1;
        b->buf = nb;
        b->cap = cap;
    }
    if (b->count == b->tokens_cap) {
        size_t cap = b->tokens_cap ? b->tokens_cap * 2 : 64;
        uint64_t *nt = realloc(b->tokens, cap * sizeof(*nt));
        if (!nt)
            return -1;
        b->tokens = nt;
        b->tokens_cap = cap;
    }
    char *dst = b->buf + b->len;
    memcpy(dst, ev->json, ev->json_len);
    /* JSON lines: a pretty-printed event's raw newlines are whitespace
     * between tokens (inside strings they are escaped), so blank them. */
    for (char *p = memchr(dst, '\n', ev->json_len); p;
         p = memchr(p, '\n', (size_t)(dst + ev->json_len - p)))
        *p = ' ';
    for (char *p = memchr(dst, '\r', ev->json_len); p;
         p = memchr(p, '\r', (size_t)(dst + ev->json_len - p)))
        *p = ' ';
    dst[ev->json_len] = '\n';
    b->len = need;
    b->tokens[b->count++] = ev->token;
    b->end_offset = ev->offset;
    s->open_bytes += ev->json_len + 1;
    return 0;
}

static size_t used_bytes(s3_sink_t *s)
{
    pthread_mutex_lock(&s->lock);
    size_t q = s->queued_bytes;
    pthread_mutex_unlock(&s->lock);
    return q + s->open_bytes;
}

/* Memory is full: if the uploads have little to do, the open batches are
 * what holds the memory, so seal them all to let it drain. */
static void relieve_pressure(s3_sink_t *s)
{
    pthread_mutex_lock(&s->lock);
    size_t q = s->queued_bytes;
    pthread_mutex_unlock(&s->lock);
    if (q > (size_t)s->cfg.max_buffer_bytes / 4)
        return;
    for (s3_slot_t *sl = s->slots; sl; sl = sl->lnext)
        seal(s, sl);
}

static void set_result(es_result_t *r, es_status_t st, const char *reason)
{
    r->status = st;
    snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
}

static void deliver_one(s3_sink_t *s, const es_event_t *ev, es_result_t *r)
{
    const s3_config_t *c = &s->cfg;
    size_t line = ev->json_len + 1;
    s3_slot_t *sl = slot_get(s, ev->topic ? ev->topic : "unknown",
                             ev->partition, ev->tenant ? ev->tenant : "none");
    if (!sl) {
        set_result(r, ES_RETRY, "s3: out of memory");
        return;
    }
    if (line > (size_t)c->max_buffer_bytes) {
        set_result(r, ES_FAIL, "s3: event larger than max_buffer_bytes");
        return;
    }
    if (sl->blocked_at >= 0) {
        uint64_t now = now_ms();
        if (ev->offset > sl->blocked_at && now - sl->blocked_ms < S3_BLOCK_MS) {
            set_result(r, ES_RETRY,
                       "s3: waiting for an earlier event of this "
                       "partition (buffer was full)");
            return;
        }
        /* The rejected event is back, or it is not coming (dead-lettered):
         * in that case the hole ends the open batch. */
        if (ev->offset > sl->blocked_at)
            seal(s, sl);
        sl->blocked_at = -1;
    }
    s3_batch_t *b = sl->open;
    /* Batches hold increasing offsets only (a retried event comes back
     * behind later ones), and never run past a replayed plan's end. */
    if (b && b->len + line > (size_t)c->max_object_bytes) {
        sl->hot = 1;
        seal(s, sl);
    } else if (b && (ev->offset <= b->end_offset ||
                     (b->plan_end >= 0 && ev->offset > b->plan_end))) {
        seal(s, sl);
    }
    if (used_bytes(s) + line > (size_t)c->max_buffer_bytes) {
        relieve_pressure(s);
        sl->blocked_at = ev->offset;
        sl->blocked_ms = now_ms();
        set_result(r, ES_RETRY,
                   "s3: buffer full (max_buffer_bytes), "
                   "uploads behind");
        s->host->counter_add(s->host, "backpressure", 1);
        return;
    }
    b = sl->open ? sl->open : batch_open(s, sl, ev);
    if (!b || batch_append(s, b, ev)) {
        set_result(r, ES_RETRY, "s3: out of memory");
        return;
    }
    set_result(r, ES_PENDING, NULL);
    if (b->count >= (size_t)c->max_object_events ||
        b->len >= (size_t)c->max_object_bytes) {
        sl->hot = b->len >= S3_BIG_BATCH;
        seal(s, sl);
    } else if (b->plan_end >= 0 && ev->offset >= b->plan_end) {
        seal(s, sl);
    }
}

static void s3_deliver(void *instance, const es_event_t *const *events,
                       size_t count, es_result_t *results)
{
    s3_sink_t *s = instance;
    for (size_t i = 0; i < count; i++)
        deliver_one(s, events[i], &results[i]);
}

static void s3_flush(void *instance)
{
    s3_sink_t *s = instance;
    uint64_t now = now_ms();
    for (s3_slot_t *sl = s->slots; sl; sl = sl->lnext)
        if (sl->open &&
            now - sl->open->opened_ms >= (uint64_t)s->cfg.max_object_age_ms) {
            sl->hot = 0; /* a quiet slot starts small again */
            seal(s, sl);
        }
}

static void s3_destroy(void *instance)
{
    s3_sink_t *s = instance;
    if (!s)
        return;
    s3_workers_stop(s);
    s3_slot_t *sl = s->slots;
    while (sl) {
        s3_slot_t *next = sl->lnext;
        s3_batch_free(sl->open);
        free(sl->topic);
        free(sl->tenant);
        free(sl);
        sl = next;
    }
    free(s->buckets);
    for (int i = 0; i < s->nspare; i++)
        free(s->spare[i]);
    es_aws_provider_destroy(s->creds);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    config_free(&s->cfg);
    free(s->host_url);
    free(s->path_prefix);
    free(s);
}

static int s3_init(const es_host_t *host, const cJSON *config, void **instance,
                   char *errstr, size_t errstr_size)
{
    s3_sink_t *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    s->host = host;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (config_parse(&s->cfg, config, errstr, errstr_size) ||
        make_urls(s, errstr, errstr_size))
        goto fail;
    es_aws_provider_opts_t o = {0};
    o.profile = s->cfg.profile;
    o.access_key_id = s->cfg.access_key_id;
    o.secret_access_key = s->cfg.secret_access_key;
    o.session_token = s->cfg.session_token;
    s->creds = es_aws_provider_new(&o, errstr, errstr_size);
    if (!s->creds)
        goto fail;
    /* Kept buffers are memory outside max_buffer_bytes: a quarter of it. */
    s->max_spare = (int)(s->cfg.max_buffer_bytes / 4 / s->cfg.max_object_bytes);
    if (s->max_spare < 1)
        s->max_spare = 1;
    if (s->max_spare > S3_SPARE_BUFFERS)
        s->max_spare = S3_SPARE_BUFFERS;
    s->nbuckets = 4096;
    s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
    if (!s->buckets) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    if (s3_workers_start(s, errstr, errstr_size))
        goto fail;
    host->log(host, ES_LOG_INFO,
              "s3 sink: bucket=%s region=%s endpoint=%s addressing=%s gzip=%d",
              s->cfg.bucket, s->cfg.region, s->host_url,
              s->cfg.path_style ? "path" : "virtual-hosted", s->cfg.gzip);
    *instance = s;
    return 0;
fail:
    s3_destroy(s);
    return -1;
}

static const es_plugin_t s3_plugin = {
    .abi = ES_PLUGIN_ABI_VERSION,
    .size = sizeof(es_plugin_t),
    .name = "s3",
    .version = "0.1.0",
    .kind = ES_KIND_SINK,
    .init = s3_init,
    .deliver = s3_deliver,
    .flush = s3_flush,
    .destroy = s3_destroy,
    .flags = ES_PLUGIN_TEXT_ONLY, /* reads ev->json, never ev->ce */
};

ES_PLUGIN_DEFINE(s3_plugin)
