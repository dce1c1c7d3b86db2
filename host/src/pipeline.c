#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "decode.h"
#include "../avro/es_avro_hook.h"
#include "kafka.h"
#include "msk_iam.h"
#include "log.h"
#include "metrics.h"
#include "offsets.h"
#include "pipeline.h"
#include "state.h"
#include "topics.h"
#include "usage.h"

typedef struct instance_s instance_t;
typedef struct route_s route_t;
typedef struct consumer_s consumer_t;
typedef struct partition_s partition_t;
typedef struct record_s record_t;
typedef struct output_s output_t;
typedef struct delivery_s delivery_t;

struct instance_s {
    es_pipeline_t *p;
    const es_instance_conf_t *conf;
    const es_plugin_t *plugin;
    void *handle;
    es_host_t host;
    es_state_t *state; /* opened on first use */
    pthread_mutex_t state_lock;
    delivery_t **batch;
    size_t batch_n, batch_cap;
    /* Reused between dispatches: a fresh 200 KB array per batch meant an
     * mmap, page faults and munmap every loop turn. */
    delivery_t **spare;
    size_t spare_cap;
    es_event_t *evs;
    const es_event_t **ptrs;
    es_result_t *res;
    size_t scratch_cap;
    es_counter_t *delivered, *retried, *dead_lettered;
    es_histogram_t *latency;
};

struct route_s {
    const es_route_conf_t *conf;
    instance_t **filters;
    instance_t **dests;
    es_counter_t *consumed, *filtered, *tenantless;
};

struct partition_s {
    consumer_t *c;
    char *topic;
    int32_t partition;
    es_offsets_t *offsets;
    int64_t committed;
    int revoked;
    size_t inflight;
    int64_t last_offset; /* last consumed, for the lag gauge */
    es_counter_t *lag;
    partition_t *next;
};

struct consumer_s {
    es_pipeline_t *p;
    const char *group;
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    int wake[2];
    route_t **routes;
    size_t nroutes;
    partition_t *parts;
    int joined;
    int start_at_end; /* auto.offset.reset is latest (the default) */
};

/* One consumed Kafka record, alive until every delivery of it is done. */
struct record_s {
    rd_kafka_message_t *msg;
    partition_t *part;
    es_header_t *headers;
    size_t nh;
    es_decoded_t dec;
    int pending; /* deliveries not done, plus one while being routed */
};

/* An event a filter produced in place of (or in addition to) the input. */
struct output_s {
    es_decoded_t dec;
    int refs;
};

/* One event at one destination (or on its way to the dead-letter topic). */
struct delivery_s {
    uint64_t token;
    delivery_t *next_in_bucket;
    record_t *rec;
    output_t *out; /* NULL: the record's own event */
    route_t *route;
    instance_t *dest; /* NULL for record-level dead letters */
    const char *dlq_plugin;
    char *tenant;
    uint32_t attempt;
    int awaiting_plugin;
    int plugin_done;
    int dlq;
    int redecode; /* Avro: waiting for the schema registry */
    int64_t due_ms;
    atomic_int children;
    atomic_int child_failed;
    char reason[256];
};

typedef struct completion_s {
    uint64_t token;
    es_status_t status;
    char reason[256];
} completion_t;

#define TOKEN_BUCKETS 65536
#define FLUSH_INTERVAL_MS 100
#define HOUSEKEEPING_INTERVAL_MS 2000 /* topics rescan, usage save */

struct es_pipeline_s {
    const es_config_t *conf;
    es_loader_t *loader;
    instance_t *instances;
    size_t ninstances;
    route_t *routes;
    size_t nroutes;
    consumer_t *consumers;
    size_t nconsumers;
    es_producer_t *producer;
    rd_kafka_queue_t *prod_queue;
    int prod_wake[2];

    pthread_mutex_t token_lock;
    delivery_t **tokens;
    uint64_t next_token;

    pthread_mutex_t comp_lock;
    completion_t *comp;
    size_t comp_n, comp_cap;
    int comp_wake[2];

    delivery_t **heap; /* retry timers, min-heap on due_ms */
    size_t heap_n, heap_cap;

    size_t inflight;
    int paused;
    int more_work;
    atomic_size_t joined_consumers;
    int64_t last_flush_ms, last_commit_ms;
    es_counter_t *consumed, *decode_failed, *dead_lettered;
    es_avro_hook_t *avro; /* NULL when no route reads Avro */

    es_topics_t *topics; /* NULL when no topics_dir */
    es_usage_t *usage;
    int64_t last_housekeeping_ms;
    /* Filter plugin calls on one instance must not overlap: the pipeline
     * thread and the admin API's dry runs both take this lock. */
    pthread_mutex_t filter_lock;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void make_wake_pipe(int fds[2])
{
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        fds[0] = fds[1] = -1;
}

static void drain_fd(int fd)
{
    char buf[256];
    while (fd >= 0 && read(fd, buf, sizeof buf) > 0)
        ;
}

static void wake(int fd)
{
    ssize_t n = write(fd, "x", 1);
    (void)n; /* a full pipe is already a pending wake-up */
}

/* ----------------------------------------------------------------- tokens */

static void token_register(es_pipeline_t *p, delivery_t *d)
{
    pthread_mutex_lock(&p->token_lock);
    d->token = ++p->next_token;
    size_t b = d->token % TOKEN_BUCKETS;
    d->next_in_bucket = p->tokens[b];
    p->tokens[b] = d;
    pthread_mutex_unlock(&p->token_lock);
}

static delivery_t *token_lookup(es_pipeline_t *p, uint64_t token)
{
    pthread_mutex_lock(&p->token_lock);
    delivery_t *d = p->tokens[token % TOKEN_BUCKETS];
    while (d && d->token != token)
        d = d->next_in_bucket;
    pthread_mutex_unlock(&p->token_lock);
    return d;
}

static void token_unregister(es_pipeline_t *p, delivery_t *d)
{
    pthread_mutex_lock(&p->token_lock);
    delivery_t **pp = &p->tokens[d->token % TOKEN_BUCKETS];
    while (*pp && *pp != d)
        pp = &(*pp)->next_in_bucket;
    if (*pp)
        *pp = d->next_in_bucket;
    pthread_mutex_unlock(&p->token_lock);
}

/* ------------------------------------------------------------ retry heap */

static void heap_swap(es_pipeline_t *p, size_t a, size_t b)
{
    delivery_t *t = p->heap[a];
    p->heap[a] = p->heap[b];
    p->heap[b] = t;
}

static void heap_push(es_pipeline_t *p, delivery_t *d)
{
    if (p->heap_n == p->heap_cap) {
        p->heap_cap = p->heap_cap ? 2 * p->heap_cap : 256;
        p->heap = realloc(p->heap, p->heap_cap * sizeof *p->heap);
    }
    size_t i = p->heap_n++;
    p->heap[i] = d;
    while (i && p->heap[(i - 1) / 2]->due_ms > p->heap[i]->due_ms) {
        heap_swap(p, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static delivery_t *heap_pop(es_pipeline_t *p)
{
    delivery_t *top = p->heap[0];
    p->heap[0] = p->heap[--p->heap_n];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < p->heap_n && p->heap[l]->due_ms < p->heap[m]->due_ms)
            m = l;
        if (r < p->heap_n && p->heap[r]->due_ms < p->heap[m]->due_ms)
            m = r;
        if (m == i)
            break;
        heap_swap(p, i, m);
        i = m;
    }
    return top;
}

/* -------------------------------------------------------- records, offsets */

static void record_done(es_pipeline_t *p, record_t *rec)
{
    partition_t *part = rec->part;
    es_offsets_done(part->offsets, rec->msg->offset);
    part->inflight--;
    p->inflight--;
    rd_kafka_message_destroy(rec->msg);
    es_decoded_clear(&rec->dec);
    free(rec->headers);
    free(rec);
    if (part->revoked && part->inflight == 0) {
        es_offsets_destroy(part->offsets);
        free(part->topic);
        free(part);
    }
}

static void record_release(es_pipeline_t *p, record_t *rec)
{
    if (--rec->pending == 0)
        record_done(p, rec);
}

static void output_release(output_t *o)
{
    if (o && --o->refs == 0) {
        es_decoded_clear(&o->dec);
        free(o);
    }
}

static delivery_t *delivery_new(es_pipeline_t *p, record_t *rec, output_t *out,
                                route_t *route, instance_t *dest,
                                const char *tenant)
{
    delivery_t *d = calloc(1, sizeof *d);
    d->rec = rec;
    d->out = out;
    d->route = route;
    d->dest = dest;
    d->tenant = tenant ? strdup(tenant) : NULL;
    d->attempt = 1;
    if (out)
        out->refs++;
    rec->pending++;
    token_register(p, d);
    return d;
}

static void delivery_done(es_pipeline_t *p, delivery_t *d)
{
    token_unregister(p, d);
    record_t *rec = d->rec;
    output_release(d->out);
    free(d->tenant);
    free(d);
    record_release(p, rec);
}

/* ------------------------------------------------------------ dead letters */

static void add_header(rd_kafka_headers_t *h, const char *name,
                       const char *value)
{
    rd_kafka_header_add(h, name, -1, value ? value : "", -1);
}

static rd_kafka_headers_t *dead_letter_headers(const delivery_t *d)
{
    const rd_kafka_message_t *m = d->rec->msg;
    rd_kafka_headers_t *h = rd_kafka_headers_new(d->rec->nh + 8);
    char num[32];
    add_header(h, "es_reason", d->reason);
    add_header(h, "es_route", d->route ? d->route->conf->name : "");
    add_header(h, "es_destination", d->dest ? d->dest->conf->name : "");
    add_header(h, "es_plugin", d->dest ? d->dest->plugin->name : d->dlq_plugin);
    add_header(h, "es_topic", rd_kafka_topic_name(m->rkt));
    snprintf(num, sizeof num, "%d", (int)m->partition);
    add_header(h, "es_partition", num);
    snprintf(num, sizeof num, "%lld", (long long)m->offset);
    add_header(h, "es_offset", num);
    snprintf(num, sizeof num, "%u", d->attempt);
    add_header(h, "es_attempts", num);
    for (size_t i = 0; i < d->rec->nh; i++) /* the original headers too */
        rd_kafka_header_add(h, d->rec->headers[i].name, -1,
                            d->rec->headers[i].value,
                            (ssize_t)d->rec->headers[i].value_len);
    return h;
}

static int64_t backoff_ms(const es_config_t *c, uint32_t attempt)
{
    int64_t b = c->retry_initial_backoff_ms;
    for (uint32_t i = 1; i < attempt && b < c->retry_max_backoff_ms; i++)
        b *= 2;
    if (b > c->retry_max_backoff_ms)
        b = c->retry_max_backoff_ms;
    /* Full jitter on the upper half spreads retries of a burst apart. */
    return b / 2 + (b > 1 ? random() % (b - b / 2) : 0);
}

static void dead_letter_send(es_pipeline_t *p, delivery_t *d)
{
    const rd_kafka_message_t *m = d->rec->msg;
    char err[512];
    int rc = es_producer_send(p->producer, p->conf->dead_letter_topic, m->key,
                              m->key_len, m->payload, m->len,
                              dead_letter_headers(d), d, err, sizeof err);
    if (rc == 0)
        return;
    if (rc == 1) { /* publishing disabled: the reason is all we can keep */
        es_warn("dead letter skipped (KAFKA_ENABLED=false) topic=%s "
                "partition=%d offset=%lld reason=\"%s\"",
                rd_kafka_topic_name(m->rkt), (int)m->partition,
                (long long)m->offset, d->reason);
        delivery_done(p, d);
        return;
    }
    es_warn("dead-letter produce failed, will retry: %s", err);
    d->due_ms = now_ms() + backoff_ms(p->conf, 1);
    heap_push(p, d);
}

static void dead_letter(es_pipeline_t *p, delivery_t *d, const char *reason)
{
    d->dlq = 1;
    snprintf(d->reason, sizeof d->reason, "%s", reason);
    es_counter_add(p->dead_lettered, 1);
    if (d->dest)
        es_counter_add(d->dest->dead_lettered, 1);
    es_log(ES_LOG_WARN, d->dest ? d->dest->conf->name : "host",
           "dead-lettering topic=%s partition=%d offset=%lld route=%s: %s",
           rd_kafka_topic_name(d->rec->msg->rkt), (int)d->rec->msg->partition,
           (long long)d->rec->msg->offset,
           d->route ? d->route->conf->name : "-", reason);
    dead_letter_send(p, d);
}

/* A record-level failure (undecodable, filter error, no tenant). */
static void dead_letter_record(es_pipeline_t *p, record_t *rec, route_t *route,
                               const char *plugin, const char *reason)
{
    delivery_t *d = delivery_new(p, rec, NULL, route, NULL, NULL);
    d->dlq_plugin = plugin;
    dead_letter(p, d, reason);
}

/* ------------------------------------------------------ delivery results */

static void enqueue(instance_t *inst, delivery_t *d)
{
    if (inst->batch_n == inst->batch_cap) {
        inst->batch_cap = inst->batch_cap ? 2 * inst->batch_cap : 64;
        inst->batch =
            realloc(inst->batch, inst->batch_cap * sizeof *inst->batch);
    }
    inst->batch[inst->batch_n++] = d;
}

static void schedule_retry(es_pipeline_t *p, delivery_t *d, const char *reason)
{
    es_counter_add(d->dest->retried, 1);
    int max = p->conf->retry_max_attempts;
    if (max && d->attempt >= (uint32_t)max) {
        char why[300];
        snprintf(why, sizeof why, "gave up after %u attempts: %s", d->attempt,
                 reason && *reason ? reason : "retry");
        dead_letter(p, d, why);
        return;
    }
    es_log(ES_LOG_DEBUG, d->dest->conf->name, "retry attempt=%u reason=\"%s\"",
           d->attempt, reason ? reason : "");
    d->due_ms = now_ms() + backoff_ms(p->conf, d->attempt);
    d->attempt++;
    d->plugin_done = 0;
    atomic_store(&d->child_failed, 0);
    heap_push(p, d);
}

/* From the record's Kafka timestamp (producer or broker time) to the
 * destination's acknowledgement. */
static void observe_latency(delivery_t *d)
{
    rd_kafka_timestamp_type_t type;
    int64_t ts = rd_kafka_message_timestamp(d->rec->msg, &type);
    if (ts <= 0)
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - ts;
    es_histogram_observe(d->dest->latency, ms > 0 ? (uint64_t)ms : 0);
}

/* The plugin is done with the event; emitted children may still be in
 * flight, and a failed child means the handler must run again. */
static void settle(es_pipeline_t *p, delivery_t *d)
{
    if (!d->plugin_done || atomic_load(&d->children) > 0)
        return;
    if (atomic_load(&d->child_failed)) {
        schedule_retry(p, d, "an emitted event was not acknowledged");
        return;
    }
    es_counter_add(d->dest->delivered, 1);
    observe_latency(d);
    es_usage_add(p->usage, d->tenant, rd_kafka_topic_name(d->rec->msg->rkt),
                 d->dest->conf->name,
                 d->out ? d->out->dec.json_len : d->rec->dec.json_len);
    delivery_done(p, d);
}

static void apply_result(es_pipeline_t *p, delivery_t *d, es_status_t status,
                         const char *reason)
{
    switch (status) {
    case ES_OK:
        d->plugin_done = 1;
        settle(p, d);
        return;
    case ES_PENDING:
        d->awaiting_plugin = 1;
        return;
    case ES_RETRY:
        if (atomic_load(&d->children) > 0) { /* wait for them first */
            atomic_store(&d->child_failed, 1);
            d->plugin_done = 1;
            return;
        }
        schedule_retry(p, d, reason);
        return;
    case ES_FAIL:
        dead_letter(p, d, reason && *reason ? reason : "failed");
        return;
    }
    es_log(ES_LOG_ERROR, d->dest->conf->name,
           "plugin bug: invalid status %d for an event; retrying it",
           (int)status);
    schedule_retry(p, d, "invalid status from plugin");
}

/* ------------------------------------------------------------ host services */

static instance_t *instance_of(const es_host_t *h)
{
    return h->opaque;
}

static void host_log(const es_host_t *h, es_log_level_t level, const char *fmt,
                     ...)
{
    va_list ap;
    va_start(ap, fmt);
    es_logv(level, h->instance_name, fmt, ap);
    va_end(ap);
}

static void host_counter_add(const es_host_t *h, const char *name,
                             uint64_t delta)
{
    char metric[256], labels[256], esc[200];
    snprintf(metric, sizeof metric, "es_plugin_%s_total", name);
    es_metrics_label_escape(esc, sizeof esc, h->instance_name);
    snprintf(labels, sizeof labels, "instance=\"%s\"", esc);
    es_counter_add(es_metrics_counter(metric, labels), delta);
}

static void host_complete(const es_host_t *h, uint64_t token,
                          es_status_t status, const char *reason)
{
    es_pipeline_t *p = instance_of(h)->p;
    pthread_mutex_lock(&p->comp_lock);
    if (p->comp_n == p->comp_cap) {
        p->comp_cap = p->comp_cap ? 2 * p->comp_cap : 256;
        p->comp = realloc(p->comp, p->comp_cap * sizeof *p->comp);
    }
    completion_t *c = &p->comp[p->comp_n++];
    c->token = token;
    c->status = status;
    snprintf(c->reason, sizeof c->reason, "%s", reason ? reason : "");
    pthread_mutex_unlock(&p->comp_lock);
    wake(p->comp_wake[1]);
}

#define EMIT_TAG ((uintptr_t)1)

static int host_emit(const es_host_t *h, uint64_t parent_token,
                     const char *topic, const void *key, size_t key_len,
                     const char *json, size_t json_len, char *errstr,
                     size_t errstr_size)
{
    es_pipeline_t *p = instance_of(h)->p;
    es_decoded_t dec;
    char reason[256];
    cJSON *ce = cJSON_ParseWithLength(json, json_len);
    if (!ce || es_decode_validate(ce, &dec, reason, sizeof reason)) {
        snprintf(errstr, errstr_size, "emit to %s: not a valid CloudEvent: %s",
                 topic, ce ? reason : "invalid JSON");
        cJSON_Delete(ce);
        return -1;
    }
    cJSON_Delete(ce);
    delivery_t *parent = parent_token ? token_lookup(p, parent_token) : NULL;
    if (parent_token && !parent) {
        snprintf(errstr, errstr_size, "emit: unknown parent token");
        return -1;
    }
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(1);
    rd_kafka_header_add(hdrs, "content-type", -1,
                        "application/cloudevents+json", -1);
    if (parent)
        atomic_fetch_add(&parent->children, 1);
    void *opaque =
        parent ? (void *)((uintptr_t)parent | EMIT_TAG) : (void *)EMIT_TAG;
    int rc = es_producer_send(p->producer, topic, key, key_len, json, json_len,
                              hdrs, opaque, errstr, errstr_size);
    if (rc != 0 && parent)
        atomic_fetch_sub(&parent->children, 1);
    if (rc == 0)
        wake(p->prod_wake[1]);
    return rc < 0 ? -1 : 0;
}

static es_state_t *instance_state(instance_t *inst)
{
    pthread_mutex_lock(&inst->state_lock);
    if (!inst->state) {
        char err[512];
        inst->state = es_state_open(inst->p->conf->state_dir, inst->conf->name,
                                    err, sizeof err);
        if (!inst->state)
            es_log(ES_LOG_ERROR, inst->conf->name, "%s", err);
    }
    pthread_mutex_unlock(&inst->state_lock);
    return inst->state;
}

static int host_state_get(const es_host_t *h, const char *key, char **value,
                          size_t *len)
{
    es_state_t *s = instance_state(instance_of(h));
    return s ? es_state_get(s, key, value, len) : -1;
}

static int host_state_put(const es_host_t *h, const char *key,
                          const void *value, size_t len)
{
    es_state_t *s = instance_state(instance_of(h));
    return s ? es_state_put(s, key, value, len) : -1;
}

static int host_state_delete(const es_host_t *h, const char *key)
{
    es_state_t *s = instance_state(instance_of(h));
    return s ? es_state_delete(s, key) : -1;
}

static int host_state_begin(const es_host_t *h)
{
    es_state_t *s = instance_state(instance_of(h));
    return s ? es_state_begin(s) : -1;
}

static int host_state_commit(const es_host_t *h)
{
    es_state_t *s = instance_state(instance_of(h));
    return s ? es_state_commit(s) : -1;
}

static int host_state_rollback(const es_host_t *h)
{
    es_state_t *s = instance_state(instance_of(h));
    return s ? es_state_rollback(s) : -1;
}

static void host_free(void *ptr)
{
    free(ptr);
}

static void host_init(instance_t *inst)
{
    es_host_t *h = &inst->host;
    h->abi = ES_PLUGIN_ABI_VERSION;
    h->size = sizeof *h;
    h->instance_name = inst->conf->name;
    h->state_dir = inst->p->conf->state_dir;
    h->log = host_log;
    h->counter_add = host_counter_add;
    h->complete = host_complete;
    h->emit = host_emit;
    h->state_get = host_state_get;
    h->state_put = host_state_put;
    h->state_delete = host_state_delete;
    h->state_begin = host_state_begin;
    h->state_commit = host_state_commit;
    h->state_rollback = host_state_rollback;
    h->free = host_free;
    h->opaque = inst;
}

/* -------------------------------------------- producer reports, completions */

static void on_produced(void *opaque, rd_kafka_resp_err_t err, void *ud)
{
    es_pipeline_t *p = ud;
    if ((uintptr_t)opaque & EMIT_TAG) {
        delivery_t *parent = (delivery_t *)((uintptr_t)opaque & ~EMIT_TAG);
        if (err)
            es_warn("emitted event not acknowledged: %s",
                    rd_kafka_err2str(err));
        if (!parent)
            return;
        if (err)
            atomic_store(&parent->child_failed, 1);
        atomic_fetch_sub(&parent->children, 1);
        settle(p, parent);
        return;
    }
    delivery_t *d = opaque; /* a dead letter */
    if (!err) {
        delivery_done(p, d);
        return;
    }
    es_warn("dead letter not acknowledged (%s), will retry",
            rd_kafka_err2str(err));
    d->due_ms = now_ms() + backoff_ms(p->conf, 2);
    heap_push(p, d);
}

static void process_completions(es_pipeline_t *p)
{
    pthread_mutex_lock(&p->comp_lock);
    completion_t *batch = p->comp;
    size_t n = p->comp_n;
    p->comp = NULL;
    p->comp_n = p->comp_cap = 0;
    pthread_mutex_unlock(&p->comp_lock);
    for (size_t i = 0; i < n; i++) {
        delivery_t *d = token_lookup(p, batch[i].token);
        if (!d || !d->awaiting_plugin || batch[i].status == ES_PENDING) {
            es_err("plugin bug: completion for a token that is not pending "
                   "(token=%llu status=%d); ignored",
                   (unsigned long long)batch[i].token, (int)batch[i].status);
            continue;
        }
        d->awaiting_plugin = 0;
        apply_result(p, d, batch[i].status, batch[i].reason);
    }
    free(batch);
}

/* ---------------------------------------------------------------- routing */

/* The fields every event view takes from its decoded CloudEvent; callers
 * fill in where the event came from. */
static es_event_t event_view(const es_decoded_t *dec, const char *tenant,
                             const char *route)
{
    return (es_event_t){
        .json = dec->json,
        .json_len = dec->json_len,
        .ce = dec->ce,
        .id = dec->id,
        .source = dec->source,
        .type = dec->type,
        .subject = dec->subject,
        .time = dec->time,
        .tenant = tenant,
        .route = route,
        .attempt = 1,
    };
}

static void build_event(es_event_t *ev, const record_t *rec,
                        const es_decoded_t *dec, const char *tenant,
                        const char *route, uint64_t token, uint32_t attempt)
{
    const rd_kafka_message_t *m = rec->msg;
    rd_kafka_timestamp_type_t tstype;
    *ev = event_view(dec, tenant, route);
    ev->topic = rd_kafka_topic_name(m->rkt);
    ev->partition = m->partition;
    ev->offset = m->offset;
    ev->timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
    ev->key = m->key;
    ev->key_len = m->key_len;
    ev->headers = rec->headers;
    ev->header_count = rec->nh;
    ev->token = token;
    ev->attempt = attempt;
}

/* The route's tenant spec; else the onboarded topic's; else the default
 * one. `r` NULL: no route (usage of consumed events). */
static char *lookup_tenant(es_pipeline_t *p, const route_t *r,
                           const char *topic, const void *key, size_t key_len,
                           const es_decoded_t *dec)
{
    static char *defaults[] = {"tenantid", "data.tenantId", "key"};
    static const es_strv_t default_spec = {defaults, 3};
    const es_strv_t *spec = r && r->conf->tenant.n ? &r->conf->tenant : NULL;
    char *t = NULL;
    es_topics_lock(p->topics);
    if (!spec) {
        const es_topic_t *ot = es_topics_find(p->topics, topic);
        spec = ot ? &ot->tenant : &default_spec;
    }
    for (size_t i = 0; i < spec->n && !t; i++)
        t = es_decode_lookup(dec->ce, key, key_len, spec->v[i]);
    es_topics_unlock(p->topics);
    return t;
}

static char *find_tenant(es_pipeline_t *p, const route_t *r,
                         const record_t *rec, const es_decoded_t *dec)
{
    return lookup_tenant(p, r, rd_kafka_topic_name(rec->msg->rkt),
                         rec->msg->key, rec->msg->key_len, dec);
}

/* The onboarded topic's PII fields, removed after the filter chain and
 * before every destination. NULL when the event holds none (nothing is
 * re-serialised then); *bad set when the result is not a CloudEvent. */
static output_t *strip_pii(es_pipeline_t *p, const char *topic,
                           const es_decoded_t *dec, cJSON *removed, int *bad)
{
    output_t *o = NULL;
    es_topics_lock(p->topics);
    const es_topic_t *t = es_topics_find(p->topics, topic);
    if (t && es_topic_has_pii(t, dec->ce)) {
        cJSON *ce = cJSON_Duplicate(dec->ce, 1);
        es_topic_strip_pii(t, ce, removed);
        o = calloc(1, sizeof *o);
        char reason[256];
        if (es_decode_validate(ce, &o->dec, reason, sizeof reason)) {
            cJSON_Delete(ce);
            free(o);
            o = NULL;
            *bad = 1;
        } else {
            o->dec.ce = ce;
            o->dec.owned_json = cJSON_PrintUnformatted(ce);
            o->dec.json = o->dec.owned_json;
            o->dec.json_len = strlen(o->dec.owned_json);
            o->refs = 1;
        }
    }
    es_topics_unlock(p->topics);
    return o;
}

static route_t *route_by_name(es_pipeline_t *p, const char *name)
{
    for (size_t i = 0; i < p->nroutes; i++)
        if (!strcmp(p->routes[i].conf->name, name))
            return &p->routes[i];
    return NULL;
}

typedef struct collected_s {
    output_t *out;
    char *route;
} collected_t;

typedef struct collector_s {
    es_filter_out_t base;
    collected_t *items;
    size_t n;
    char *route; /* set_route for KEEP */
} collector_t;

static int collect_add(es_filter_out_t *o, const char *json, size_t len,
                       const char *route, char *errstr, size_t errstr_size)
{
    collector_t *c = (collector_t *)o;
    output_t *out = calloc(1, sizeof *out);
    out->dec.owned_json = strndup(json, len);
    cJSON *ce = cJSON_ParseWithLength(json, len);
    if (!ce || es_decode_validate(ce, &out->dec, errstr, errstr_size)) {
        if (!ce)
            snprintf(errstr, errstr_size, "filter output is not valid JSON");
        cJSON_Delete(ce);
        free(out->dec.owned_json);
        free(out);
        return -1;
    }
    out->dec.json = out->dec.owned_json;
    out->dec.json_len = len;
    out->refs = 1; /* the collector's reference */
    c->items = realloc(c->items, (c->n + 1) * sizeof *c->items);
    c->items[c->n++] = (collected_t){out, route ? strdup(route) : NULL};
    return 0;
}

static void collect_set_route(es_filter_out_t *o, const char *route)
{
    collector_t *c = (collector_t *)o;
    free(c->route);
    c->route = route ? strdup(route) : NULL;
}

static void collector_clear(collector_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        output_release(c->items[i].out);
        free(c->items[i].route);
    }
    free(c->items);
    free(c->route);
}

static void route_event(es_pipeline_t *p, record_t *rec, route_t *route,
                        output_t *out, size_t fi, route_t *target);

static void deliver_to_destinations(es_pipeline_t *p, record_t *rec,
                                    route_t *route, output_t *out,
                                    route_t *target)
{
    const es_decoded_t *dec = out ? &out->dec : &rec->dec;
    char *tenant = find_tenant(p, route, rec, dec);
    if (!tenant && route->conf->require_tenant) {
        es_counter_add(route->tenantless, 1);
        dead_letter_record(p, rec, route, "route",
                           "no tenant found where the route looks for it");
        return;
    }
    int bad = 0;
    output_t *clean =
        strip_pii(p, rd_kafka_topic_name(rec->msg->rkt), dec, NULL, &bad);
    if (bad) {
        dead_letter_record(p, rec, route, "host",
                           "stripping PII fields left an invalid CloudEvent");
        free(tenant);
        return;
    }
    route_t *r = target ? target : route;
    for (size_t i = 0; i < r->conf->destinations.n; i++)
        enqueue(r->dests[i], delivery_new(p, rec, clean ? clean : out, r,
                                          r->dests[i], tenant));
    output_release(clean); /* the deliveries hold their own references */
    free(tenant);
}

/* A KEEP verdict may name a route; REPLACE outputs may each name one. */
static int resolve_target(es_pipeline_t *p, record_t *rec, route_t *route,
                          instance_t *f, const char *name, route_t **target)
{
    if (!name)
        return 0;
    *target = route_by_name(p, name);
    if (*target)
        return 0;
    char why[256];
    snprintf(why, sizeof why,
             "filter routed the event to unknown route "
             "\"%.100s\"",
             name);
    dead_letter_record(p, rec, route, f->plugin->name, why);
    return -1;
}

static void run_replacements(es_pipeline_t *p, record_t *rec, route_t *route,
                             instance_t *f, collector_t *c, size_t fi,
                             route_t *target)
{
    for (size_t i = 0; i < c->n; i++) {
        route_t *t = target;
        if (resolve_target(p, rec, route, f, c->items[i].route, &t) == 0)
            route_event(p, rec, route, c->items[i].out, fi + 1, t);
    }
}

static void route_event(es_pipeline_t *p, record_t *rec, route_t *route,
                        output_t *out, size_t fi, route_t *target)
{
    if (fi == route->conf->filters.n) {
        deliver_to_destinations(p, rec, route, out, target);
        return;
    }
    instance_t *f = route->filters[fi];
    const es_decoded_t *dec = out ? &out->dec : &rec->dec;
    char *tenant = find_tenant(p, route, rec, dec);
    es_event_t ev;
    build_event(&ev, rec, dec, tenant, route->conf->name, 0, 1);
    collector_t c = {{collect_add, collect_set_route, NULL}, NULL, 0, NULL};
    char err[512] = "";
    pthread_mutex_lock(&p->filter_lock);
    es_filter_verdict_t v =
        f->plugin->filter(f->handle, &ev, &c.base, err, sizeof err);
    pthread_mutex_unlock(&p->filter_lock);
    free(tenant);
    switch (v) {
    case ES_FILTER_KEEP:
        if (resolve_target(p, rec, route, f, c.route, &target) == 0)
            route_event(p, rec, route, out, fi + 1, target);
        break;
    case ES_FILTER_DROP:
        es_counter_add(route->filtered, 1);
        break;
    case ES_FILTER_REPLACE:
        if (c.n == 0)
            es_counter_add(route->filtered, 1);
        run_replacements(p, rec, route, f, &c, fi, target);
        break;
    case ES_FILTER_FAIL:
    default:
        dead_letter_record(p, rec, route, f->plugin->name,
                           err[0] ? err : "filter failed");
        break;
    }
    collector_clear(&c);
}

/* ---------------------------------------------------------------- dispatch */

static void ensure_scratch(instance_t *inst, size_t n)
{
    if (n <= inst->scratch_cap)
        return;
    inst->evs = realloc(inst->evs, n * sizeof *inst->evs);
    inst->ptrs = realloc(inst->ptrs, n * sizeof *inst->ptrs);
    inst->res = realloc(inst->res, n * sizeof *inst->res);
    inst->scratch_cap = n;
}

/* Hands up to one pipeline batch of deliveries to the plugin. */
static void deliver_chunk(es_pipeline_t *p, instance_t *inst,
                          delivery_t **batch, size_t n)
{
    ensure_scratch(inst, n);
    for (size_t i = 0; i < n; i++) {
        delivery_t *d = batch[i];
        build_event(&inst->evs[i], d->rec, d->out ? &d->out->dec : &d->rec->dec,
                    d->tenant, d->route->conf->name, d->token, d->attempt);
        inst->ptrs[i] = &inst->evs[i];
        inst->res[i].status = 0; /* unset: caught as a plugin bug */
        inst->res[i].reason[0] = '\0';
    }
    inst->plugin->deliver(inst->handle, inst->ptrs, n, inst->res);
    for (size_t i = 0; i < n; i++)
        apply_result(p, batch[i], inst->res[i].status, inst->res[i].reason);
}

static void dispatch_instance(es_pipeline_t *p, instance_t *inst)
{
    size_t n = inst->batch_n, max = (size_t)p->conf->batch_size;
    delivery_t **batch = inst->batch;
    size_t cap = inst->batch_cap;
    /* Results may enqueue retries into the instance: give it the spare. */
    inst->batch = inst->spare;
    inst->batch_cap = inst->spare_cap;
    inst->batch_n = 0;
    for (size_t off = 0; off < n; off += max)
        deliver_chunk(p, inst, batch + off, n - off < max ? n - off : max);
    inst->spare = batch;
    inst->spare_cap = cap;
}

static void dispatch_all(es_pipeline_t *p)
{
    for (size_t i = 0; i < p->ninstances; i++)
        if (p->instances[i].batch_n)
            dispatch_instance(p, &p->instances[i]);
}

static int route_wants(const route_t *r, const char *topic);

static void route_record(es_pipeline_t *p, record_t *rec)
{
    consumer_t *c = rec->part->c;
    const char *topic = rd_kafka_topic_name(rec->msg->rkt);
    char *tenant = lookup_tenant(p, NULL, topic, rec->msg->key,
                                 rec->msg->key_len, &rec->dec);
    es_usage_add(p->usage, tenant, topic, NULL, rec->msg->len);
    free(tenant);
    for (size_t i = 0; i < c->nroutes; i++) {
        if (!route_wants(c->routes[i], topic))
            continue;
        es_counter_add(c->routes[i]->consumed, 1);
        route_event(p, rec, c->routes[i], NULL, 0, NULL);
    }
}

/* Avro: the schema registry cannot answer now. The record waits in the
 * retry heap (later records go on; the offset is not committed past it)
 * and is decoded again with the host's backoff and attempt limit. */
static void avro_retry_later(es_pipeline_t *p, delivery_t *d,
                             const char *reason)
{
    int max = p->conf->retry_max_attempts;
    d->redecode = 1;
    d->dlq_plugin = "avro";
    if (max && d->attempt >= (uint32_t)max) {
        char why[300];
        snprintf(why, sizeof why, "gave up after %u attempts: %s", d->attempt,
                 reason);
        es_counter_add(p->decode_failed, 1);
        dead_letter(p, d, why);
        return;
    }
    es_log(d->attempt == 1 ? ES_LOG_WARN : ES_LOG_DEBUG, "host",
           "avro decode will be retried topic=%s offset=%lld attempt=%u: %s",
           rd_kafka_topic_name(d->rec->msg->rkt),
           (long long)d->rec->msg->offset, d->attempt, reason);
    d->due_ms = now_ms() + backoff_ms(p->conf, d->attempt);
    d->attempt++;
    heap_push(p, d);
}

static void avro_redecode(es_pipeline_t *p, delivery_t *d)
{
    record_t *rec = d->rec;
    const char *topic = rd_kafka_topic_name(rec->msg->rkt);
    char reason[256];
    es_status_t st = es_avro_hook_decode(p->avro, topic, rec->msg->payload,
                                         rec->msg->len, rec->headers, rec->nh,
                                         &rec->dec, reason, sizeof reason);
    if (st == ES_RETRY) {
        avro_retry_later(p, d, reason);
    } else if (st == ES_FAIL) {
        es_counter_add(p->decode_failed, 1);
        dead_letter(p, d, reason);
    } else {
        route_record(p, rec);
        delivery_done(p, d);
    }
}

static void fire_due_retries(es_pipeline_t *p)
{
    int64_t now = now_ms();
    while (p->heap_n && p->heap[0]->due_ms <= now) {
        delivery_t *d = heap_pop(p);
        if (d->dlq)
            dead_letter_send(p, d);
        else if (d->redecode)
            avro_redecode(p, d);
        else
            enqueue(d->dest, d);
    }
}

static void flush_instances(es_pipeline_t *p)
{
    for (size_t i = 0; i < p->ninstances; i++)
        if (p->instances[i].plugin->flush)
            p->instances[i].plugin->flush(p->instances[i].handle);
}

/* --------------------------------------------------------------- consuming */

static partition_t *find_partition(consumer_t *c, const char *topic,
                                   int32_t partition)
{
    for (partition_t *pt = c->parts; pt; pt = pt->next)
        if (pt->partition == partition && !strcmp(pt->topic, topic))
            return pt;
    return NULL;
}

static void parse_headers(record_t *rec)
{
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(rec->msg, &h) || !h)
        return;
    size_t n = rd_kafka_header_cnt(h);
    rec->headers = calloc(n ? n : 1, sizeof *rec->headers);
    for (size_t i = 0; i < n; i++) {
        es_header_t *e = &rec->headers[rec->nh];
        if (rd_kafka_header_get_all(h, i, &e->name, &e->value, &e->value_len) ==
            0)
            rec->nh++;
    }
}

static int route_wants(const route_t *r, const char *topic)
{
    for (size_t i = 0; i < r->conf->topics.n; i++)
        if (!strcmp(r->conf->topics.v[i], topic))
            return 1;
    return 0;
}

static void handle_message(consumer_t *c, rd_kafka_message_t *m)
{
    es_pipeline_t *p = c->p;
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            es_warn("consumer group=%s: %s", c->group,
                    rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    const char *topic = rd_kafka_topic_name(m->rkt);
    partition_t *part = find_partition(c, topic, m->partition);
    if (!part || es_offsets_track(part->offsets, m->offset)) {
        rd_kafka_message_destroy(m); /* not ours any more */
        return;
    }
    part->last_offset = m->offset;
    record_t *rec = calloc(1, sizeof *rec);
    rec->msg = m;
    rec->part = part;
    rec->pending = 1;
    part->inflight++;
    p->inflight++;
    es_counter_add(p->consumed, 1);
    parse_headers(rec);
    char reason[256];
    es_status_t st = ES_OK;
    if (es_avro_hook_wants(p->avro, topic))
        st = es_avro_hook_decode(p->avro, topic, m->payload, m->len,
                                 rec->headers, rec->nh, &rec->dec, reason,
                                 sizeof reason);
    else if (es_decode_record(m->payload, m->len, rec->headers, rec->nh,
                              (size_t)p->conf->max_event_bytes, &rec->dec,
                              reason, sizeof reason))
        st = ES_FAIL;
    if (st == ES_OK)
        route_record(p, rec);
    else if (st == ES_RETRY)
        avro_retry_later(p, delivery_new(p, rec, NULL, NULL, NULL, NULL),
                         reason);
    else {
        es_counter_add(p->decode_failed, 1);
        dead_letter_record(
            p, rec, NULL,
            es_avro_hook_wants(p->avro, topic) ? "avro" : "decode", reason);
    }
    record_release(p, rec);
}

static int consume_some(consumer_t *c)
{
    size_t max = (size_t)c->p->conf->batch_size;
    rd_kafka_message_t **msgs = malloc(max * sizeof *msgs);
    ssize_t n = rd_kafka_consume_batch_queue(c->queue, 0, msgs, max);
    for (ssize_t i = 0; i < n; i++)
        handle_message(c, msgs[i]);
    free(msgs);
    return n == (ssize_t)max; /* more may be waiting */
}

/* ---------------------------------------------------------------- commits */

static void commit_consumer(consumer_t *c, int sync)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (partition_t *pt = c->parts; pt; pt = pt->next) {
        int64_t cp = es_offsets_commit_point(pt->offsets);
        if (pt->revoked || cp < 0 || cp <= pt->committed)
            continue;
        rd_kafka_topic_partition_list_add(l, pt->topic, pt->partition)->offset =
            cp;
        pt->committed = cp;
    }
    if (l->cnt) {
        rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, l, !sync);
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
            es_warn("commit group=%s: %s", c->group, rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* A failed commit forgets what it committed so the next tick retries. */
static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    consumer_t *c = opaque;
    if (!err || !offsets)
        return;
    for (int i = 0; i < offsets->cnt; i++) {
        partition_t *pt = find_partition(c, offsets->elems[i].topic,
                                         offsets->elems[i].partition);
        if (pt)
            pt->committed = -1;
    }
    es_warn("commit group=%s failed: %s (will retry)", c->group,
            rd_kafka_err2str(err));
}

/* Lag from librdkafka's cached high watermark: no broker round trip. */
static void update_lag(consumer_t *c)
{
    for (partition_t *pt = c->parts; pt; pt = pt->next) {
        int64_t lo, hi;
        if (rd_kafka_get_watermark_offsets(c->rk, pt->topic, pt->partition, &lo,
                                           &hi) ||
            hi < 0)
            continue;
        int64_t next = pt->last_offset < 0 ? lo : pt->last_offset + 1;
        es_gauge_set(pt->lag, hi > next ? (uint64_t)(hi - next) : 0);
    }
}

static void commit_all(es_pipeline_t *p, int sync)
{
    for (size_t i = 0; i < p->nconsumers; i++)
        if (p->consumers[i].joined) {
            commit_consumer(&p->consumers[i], sync);
            update_lag(&p->consumers[i]);
        }
}

/* -------------------------------------------------------------- rebalance */

static void set_paused(consumer_t *c, int pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(c->rk, &l) || !l)
        return;
    if (pause)
        rd_kafka_pause_partitions(c->rk, l);
    else
        rd_kafka_resume_partitions(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/*
 * A partition the group never committed starts at its current end, looked
 * up now rather than left to auto.offset.reset: then "consumer joined" in
 * the log means every event produced after it is seen, which is what a new
 * subscription promises (and what tests and operators rely on).
 */
static void resolve_start_offsets(consumer_t *c,
                                  rd_kafka_topic_partition_list_t *l)
{
    if (!c->start_at_end ||
        rd_kafka_committed(c->rk, l, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    rd_kafka_topic_partition_list_t *fresh =
        rd_kafka_topic_partition_list_new(l->cnt);
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &l->elems[i];
        int64_t lo, hi;
        if (tp->offset >= 0)
            continue;
        if (rd_kafka_query_watermark_offsets(c->rk, tp->topic, tp->partition,
                                             &lo, &hi, 10000) == 0) {
            tp->offset = hi;
            rd_kafka_topic_partition_list_add(fresh, tp->topic, tp->partition)
                ->offset = hi;
        }
    }
    /* Commit the starting point at once: if the first event is still in
     * flight when the daemon stops, a restart must resume here, not at the
     * (by then later) end of the partition. */
    if (fresh->cnt && rd_kafka_commit(c->rk, fresh, 0))
        es_warn("group=%s: could not commit the starting offsets", c->group);
    rd_kafka_topic_partition_list_destroy(fresh);
}

static void partitions_assign(consumer_t *c, rd_kafka_topic_partition_list_t *l)
{
    resolve_start_offsets(c, l);
    for (int i = 0; i < l->cnt; i++) {
        partition_t *pt = calloc(1, sizeof *pt);
        pt->c = c;
        pt->topic = strdup(l->elems[i].topic);
        pt->partition = l->elems[i].partition;
        pt->offsets = es_offsets_new();
        pt->committed = -1;
        pt->last_offset = -1;
        char labels[600], t[256], g[256];
        es_metrics_label_escape(t, sizeof t, pt->topic);
        es_metrics_label_escape(g, sizeof g, c->group);
        snprintf(labels, sizeof labels,
                 "group=\"%s\",topic=\"%s\",partition=\"%d\"", g, t,
                 (int)pt->partition);
        pt->lag = es_metrics_gauge("es_consumer_lag", labels);
        pt->next = c->parts;
        c->parts = pt;
    }
    rd_kafka_assign(c->rk, l);
    if (c->p->paused)
        set_paused(c, 1);
    es_info("partitions assigned group=%s count=%d", c->group, l->cnt);
    if (!c->joined++) {
        es_info("consumer joined group=%s", c->group);
        atomic_fetch_add(&c->p->joined_consumers, 1);
    }
}

/* Revoked partitions commit what is done now; events still in flight
 * finish but commit nothing (the new owner redelivers them). */
static void partitions_revoke(consumer_t *c)
{
    commit_consumer(c, 1);
    partition_t *pt = c->parts;
    c->parts = NULL;
    while (pt) {
        partition_t *next = pt->next;
        pt->revoked = 1;
        es_gauge_set(pt->lag, 0);
        if (pt->inflight == 0) {
            es_offsets_destroy(pt->offsets);
            free(pt->topic);
            free(pt);
        }
        pt = next;
    }
    rd_kafka_assign(c->rk, NULL);
    es_info("partitions revoked group=%s", c->group);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    consumer_t *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        partitions_assign(c, parts);
    else
        partitions_revoke(c);
}

static void apply_backpressure(es_pipeline_t *p)
{
    size_t max = (size_t)p->conf->max_inflight;
    int want = p->paused ? p->inflight > max / 2 : p->inflight >= max;
    if (want == p->paused)
        return;
    p->paused = want;
    for (size_t i = 0; i < p->nconsumers; i++)
        set_paused(&p->consumers[i], want);
    es_dbg("%s consumption: %zu events in flight",
           want ? "pausing" : "resuming", p->inflight);
}

/* ------------------------------------------------------------------ set-up */

static int instance_init(es_pipeline_t *p, instance_t *inst,
                         const es_instance_conf_t *ic, char *errstr,
                         size_t errstr_size)
{
    char err[1024] = "";
    inst->p = p;
    inst->conf = ic;
    pthread_mutex_init(&inst->state_lock, NULL);
    inst->plugin = es_loader_find(p->loader, ic->plugin);
    if (!inst->plugin) {
        snprintf(errstr, errstr_size,
                 "%s: instances.%s.plugin: no plugin named \"%s\" was loaded "
                 "from %s",
                 p->conf->path, ic->name, ic->plugin, p->conf->plugin_dir);
        return -1;
    }
    host_init(inst);
    if (inst->plugin->init(&inst->host, ic->config, &inst->handle, err,
                           sizeof err)) {
        snprintf(errstr, errstr_size, "%s: instances.%s.config: %s",
                 p->conf->path, ic->name, err[0] ? err : "init failed");
        inst->plugin = NULL;
        return -1;
    }
    char labels[300], esc[200];
    es_metrics_label_escape(esc, sizeof esc, ic->name);
    snprintf(labels, sizeof labels, "destination=\"%s\"", esc);
    inst->delivered = es_metrics_counter("es_delivered_total", labels);
    inst->retried = es_metrics_counter("es_retried_total", labels);
    inst->dead_lettered = es_metrics_counter("es_dead_lettered_total", labels);
    inst->latency = es_metrics_histogram("es_delivery_latency_seconds", labels);
    return 0;
}

static instance_t *instance_by_name(es_pipeline_t *p, const char *name)
{
    for (size_t i = 0; i < p->ninstances; i++)
        if (!strcmp(p->instances[i].conf->name, name))
            return &p->instances[i];
    return NULL;
}

static int bind_list(es_pipeline_t *p, size_t ri, const char *key,
                     const es_strv_t *names, int want_filter, instance_t ***out,
                     char *errstr, size_t errstr_size)
{
    *out = calloc(names->n + 1, sizeof **out);
    for (size_t i = 0; i < names->n; i++) {
        instance_t *inst = instance_by_name(p, names->v[i]);
        int is_filter = inst->plugin->kind == ES_KIND_FILTER;
        if (is_filter != want_filter) {
            snprintf(errstr, errstr_size,
                     "%s: routes[%zu].%s[%zu]: instance \"%s\" is a %s, not "
                     "a %s",
                     p->conf->path, ri, key, i, names->v[i],
                     es_plugin_kind_name(inst->plugin->kind),
                     want_filter ? "filter" : "sink or handler");
            return -1;
        }
        (*out)[i] = inst;
    }
    return 0;
}

static int routes_init(es_pipeline_t *p, char *errstr, size_t errstr_size)
{
    p->nroutes = p->conf->route_count;
    p->routes = calloc(p->nroutes + 1, sizeof *p->routes);
    for (size_t i = 0; i < p->nroutes; i++) {
        route_t *r = &p->routes[i];
        r->conf = &p->conf->routes[i];
        if (bind_list(p, i, "filters", &r->conf->filters, 1, &r->filters,
                      errstr, errstr_size) ||
            bind_list(p, i, "destinations", &r->conf->destinations, 0,
                      &r->dests, errstr, errstr_size))
            return -1;
        char labels[300], esc[200];
        es_metrics_label_escape(esc, sizeof esc, r->conf->name);
        snprintf(labels, sizeof labels, "route=\"%s\"", esc);
        r->consumed = es_metrics_counter("es_route_consumed_total", labels);
        r->filtered = es_metrics_counter("es_filtered_total", labels);
        r->tenantless = es_metrics_counter("es_tenantless_total", labels);
    }
    return 0;
}

static const char *group_of(const es_pipeline_t *p, const route_t *r)
{
    return r->conf->group ? r->conf->group : p->conf->group_id;
}

/* Sets a consumer default unless the operator set it in kafka.properties. */
static int conf_default(rd_kafka_conf_t *conf, const cJSON *props,
                        const char *name, const char *value, char *errstr,
                        size_t errstr_size)
{
    if (props && cJSON_GetObjectItemCaseSensitive(props, name))
        return 0;
    return es_kafka_conf_set(conf, name, value, errstr, errstr_size);
}

static int consumer_start(es_pipeline_t *p, consumer_t *c, const char *brokers,
                          int embedded, char *errstr, size_t errstr_size)
{
    const cJSON *props = p->conf->kafka_properties;
    rd_kafka_conf_t *conf =
        es_kafka_conf_new(brokers, props, errstr, errstr_size);
    if (!conf)
        return -1;
    if (es_kafka_conf_set(conf, "group.id", c->group, errstr, errstr_size) ||
        es_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
                          errstr_size) ||
        conf_default(conf, props, "auto.offset.reset", "latest", errstr,
                     errstr_size) ||
        conf_default(conf, props, "allow.auto.create.topics",
                     embedded ? "true" : "false", errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    const cJSON *reset =
        props ? cJSON_GetObjectItemCaseSensitive(props, "auto.offset.reset")
              : NULL;
    c->start_at_end = !reset || !strcmp(reset->valuestring, "latest") ||
                      !strcmp(reset->valuestring, "largest") ||
                      !strcmp(reset->valuestring, "end");
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    rd_kafka_conf_set_opaque(conf, c);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!c->rk) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    if (es_msk_iam_start(c->rk, errstr, errstr_size))
        return -1;
    rd_kafka_poll_set_consumer(c->rk);
    rd_kafka_topic_partition_list_t *topics =
        rd_kafka_topic_partition_list_new(4);
    for (size_t i = 0; i < c->nroutes; i++)
        for (size_t t = 0; t < c->routes[i]->conf->topics.n; t++) {
            const char *name = c->routes[i]->conf->topics.v[t];
            if (!rd_kafka_topic_partition_list_find(topics, name,
                                                    RD_KAFKA_PARTITION_UA))
                rd_kafka_topic_partition_list_add(topics, name,
                                                  RD_KAFKA_PARTITION_UA);
        }
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        snprintf(errstr, errstr_size, "subscribe group=%s: %s", c->group,
                 rd_kafka_err2str(err));
        return -1;
    }
    c->queue = rd_kafka_queue_get_consumer(c->rk);
    make_wake_pipe(c->wake);
    rd_kafka_queue_io_event_enable(c->queue, c->wake[1], "c", 1);
    es_info("consumer started group=%s routes=%zu", c->group, c->nroutes);
    return 0;
}

static int consumers_init(es_pipeline_t *p, const char *brokers, char *errstr,
                          size_t errstr_size)
{
    int embedded = !strcmp(p->conf->brokers, "embedded");
    p->consumers = calloc(p->nroutes + 1, sizeof *p->consumers);
    for (size_t i = 0; i < p->nroutes; i++) {
        const char *g = group_of(p, &p->routes[i]);
        consumer_t *c = NULL;
        for (size_t k = 0; k < p->nconsumers && !c; k++)
            if (!strcmp(p->consumers[k].group, g))
                c = &p->consumers[k];
        if (!c) {
            c = &p->consumers[p->nconsumers++];
            c->p = p;
            c->group = g;
            c->routes = calloc(p->nroutes, sizeof *c->routes);
            c->wake[0] = c->wake[1] = -1;
        }
        c->routes[c->nroutes++] = &p->routes[i];
    }
    for (size_t k = 0; k < p->nconsumers; k++)
        if (consumer_start(p, &p->consumers[k], brokers, embedded, errstr,
                           errstr_size))
            return -1;
    return 0;
}

static int make_dirs(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        mkdir(tmp, 0755);
        *s = '/';
    }
    return mkdir(tmp, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

static int instances_init(es_pipeline_t *p, char *errstr, size_t errstr_size)
{
    p->ninstances = p->conf->instance_count;
    p->instances = calloc(p->ninstances + 1, sizeof *p->instances);
    for (size_t i = 0; i < p->ninstances; i++)
        if (instance_init(p, &p->instances[i], &p->conf->instances[i], errstr,
                          errstr_size))
            return -1;
    return 0;
}

static int topics_init(es_pipeline_t *p, char *errstr, size_t errstr_size)
{
    if (!p->conf->topics_dir)
        return 0;
    char err[1024];
    p->topics = es_topics_load(p->conf->topics_dir, err, sizeof err);
    if (!p->topics) {
        snprintf(errstr, errstr_size, "%s: %s", p->conf->path, err);
        return -1;
    }
    return 0;
}

static es_pipeline_t *pipeline_alloc(const es_config_t *conf,
                                     es_loader_t *loader)
{
    es_pipeline_t *p = calloc(1, sizeof *p);
    p->conf = conf;
    p->loader = loader;
    pthread_mutex_init(&p->token_lock, NULL);
    pthread_mutex_init(&p->comp_lock, NULL);
    pthread_mutex_init(&p->filter_lock, NULL);
    p->tokens = calloc(TOKEN_BUCKETS, sizeof *p->tokens);
    make_wake_pipe(p->comp_wake);
    make_wake_pipe(p->prod_wake);
    p->consumed = es_metrics_counter("es_consumed_total", "");
    p->decode_failed = es_metrics_counter("es_decode_failed_total", "");
    p->dead_lettered = es_metrics_counter("es_dead_letters_total", "");
    return p;
}

es_pipeline_t *es_pipeline_new(const es_config_t *conf, es_loader_t *loader,
                               const char *brokers, char *errstr,
                               size_t errstr_size)
{
    es_pipeline_t *p = pipeline_alloc(conf, loader);
    if (make_dirs(conf->state_dir)) {
        snprintf(errstr, errstr_size, "%s: state_dir: cannot create %s: %s",
                 conf->path, conf->state_dir, strerror(errno));
        goto fail;
    }
    if (topics_init(p, errstr, errstr_size))
        goto fail;
    p->producer = es_producer_new(brokers, conf->kafka_properties,
                                  es_kafka_enabled_from_env(), on_produced, p,
                                  errstr, errstr_size);
    if (!p->producer)
        goto fail;
    if (es_producer_handle(p->producer)) {
        p->prod_queue =
            rd_kafka_queue_get_main(es_producer_handle(p->producer));
        rd_kafka_queue_io_event_enable(p->prod_queue, p->prod_wake[1], "p", 1);
    }
    char usage_path[4200];
    snprintf(usage_path, sizeof usage_path, "%s/usage.json", conf->state_dir);
    p->usage = es_usage_new(usage_path);
    if (es_avro_hook_new(conf, &p->avro, errstr, errstr_size) ||
        instances_init(p, errstr, errstr_size) ||
        routes_init(p, errstr, errstr_size) ||
        consumers_init(p, brokers, errstr, errstr_size))
        goto fail;
    return p;
fail:
    es_pipeline_destroy(p);
    return NULL;
}

/* --------------------------------------------------------------- main loop */

static int wait_timeout_ms(es_pipeline_t *p)
{
    if (p->more_work)
        return 0;
    int64_t now = now_ms();
    int64_t t = p->last_flush_ms + FLUSH_INTERVAL_MS - now;
    if (p->heap_n && p->heap[0]->due_ms - now < t)
        t = p->heap[0]->due_ms - now;
    return t < 0 ? 0 : (int)t;
}

static void wait_for_work(es_pipeline_t *p)
{
    struct pollfd fds[64];
    nfds_t n = 0;
    fds[n++] = (struct pollfd){.fd = p->comp_wake[0], .events = POLLIN};
    fds[n++] = (struct pollfd){.fd = p->prod_wake[0], .events = POLLIN};
    for (size_t i = 0; i < p->nconsumers && n < 64; i++)
        fds[n++] =
            (struct pollfd){.fd = p->consumers[i].wake[0], .events = POLLIN};
    if (poll(fds, n, wait_timeout_ms(p)) > 0)
        for (nfds_t i = 0; i < n; i++)
            if (fds[i].revents)
                drain_fd(fds[i].fd);
}

/* Picks up added or changed topic folders, saves the usage counters. */
static void housekeeping(es_pipeline_t *p)
{
    char err[512];
    es_topics_rescan(p->topics);
    if (es_usage_save(p->usage, err, sizeof err))
        es_warn("%s", err);
}

static void iterate(es_pipeline_t *p, int consume)
{
    wait_for_work(p);
    process_completions(p);
    es_producer_poll(p->producer);
    p->more_work = 0;
    if (consume)
        for (size_t i = 0; i < p->nconsumers; i++)
            p->more_work |= consume_some(&p->consumers[i]);
    else /* still serve rebalances and errors while draining */
        for (size_t i = 0; i < p->nconsumers; i++)
            rd_kafka_poll(p->consumers[i].rk, 0);
    fire_due_retries(p);
    dispatch_all(p);
    int64_t now = now_ms();
    if (now - p->last_flush_ms >= FLUSH_INTERVAL_MS) {
        flush_instances(p);
        p->last_flush_ms = now;
    }
    if (now - p->last_commit_ms >= p->conf->commit_interval_ms) {
        commit_all(p, 0);
        p->last_commit_ms = now;
    }
    if (now - p->last_housekeeping_ms >= HOUSEKEEPING_INTERVAL_MS) {
        housekeeping(p);
        p->last_housekeeping_ms = now;
    }
    apply_backpressure(p);
}

static void drain(es_pipeline_t *p)
{
    es_info("shutting down: %zu event(s) in flight, waiting up to %d ms",
            p->inflight, p->conf->shutdown_timeout_ms);
    for (size_t i = 0; i < p->nconsumers; i++)
        set_paused(&p->consumers[i], 1);
    int64_t deadline = now_ms() + p->conf->shutdown_timeout_ms;
    while (p->inflight > 0 && now_ms() < deadline) {
        iterate(p, 0);
        flush_instances(p);
    }
    if (p->inflight)
        es_warn("shutdown timeout: %zu event(s) not delivered; their offsets "
                "are not committed and they will be redelivered",
                p->inflight);
    commit_all(p, 1);
}

int es_pipeline_run(es_pipeline_t *p, volatile sig_atomic_t *stop)
{
    p->last_flush_ms = p->last_commit_ms = now_ms();
    while (!*stop)
        iterate(p, 1);
    drain(p);
    for (size_t i = 0; i < p->nconsumers; i++) {
        rd_kafka_consumer_close(p->consumers[i].rk);
        p->consumers[i].joined = 0;
    }
    es_info("stopped");
    return 0;
}

static void consumer_destroy(consumer_t *c)
{
    if (c->queue)
        rd_kafka_queue_destroy(c->queue);
    if (c->rk)
        rd_kafka_destroy(c->rk);
    for (partition_t *pt = c->parts, *next; pt; pt = next) {
        next = pt->next;
        es_offsets_destroy(pt->offsets);
        free(pt->topic);
        free(pt);
    }
    free(c->routes);
    for (int i = 0; i < 2; i++)
        if (c->wake[i] >= 0)
            close(c->wake[i]);
}

static void instance_destroy(instance_t *inst)
{
    if (inst->plugin) {
        if (inst->plugin->flush)
            inst->plugin->flush(inst->handle);
        inst->plugin->destroy(inst->handle);
    }
    es_state_close(inst->state);
    free(inst->batch);
    free(inst->spare);
    free(inst->evs);
    free(inst->ptrs);
    free(inst->res);
    pthread_mutex_destroy(&inst->state_lock);
}

/* Frees what is still in flight: librdkafka handles cannot be destroyed
 * while their messages are alive. Nothing is committed for these. */
static void abandon_deliveries(es_pipeline_t *p)
{
    size_t n = 0;
    for (size_t b = 0; b < TOKEN_BUCKETS; b++)
        while (p->tokens[b]) {
            delivery_done(p, p->tokens[b]);
            n++;
        }
    if (n)
        es_warn("%zu delivery(ies) abandoned at exit; they will be "
                "redelivered after restart",
                n);
}

/*
 * Plugins are destroyed first (they may still complete or emit), then the
 * producer is flushed. Records still in flight at this point are abandoned:
 * their offsets were never committed, so they are redelivered on restart.
 */
void es_pipeline_destroy(es_pipeline_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->ninstances; i++)
        instance_destroy(&p->instances[i]);
    if (p->producer && es_producer_handle(p->producer))
        rd_kafka_flush(es_producer_handle(p->producer), 5000);
    abandon_deliveries(p);
    if (p->prod_queue)
        rd_kafka_queue_destroy(p->prod_queue);
    es_producer_destroy(p->producer, 0);
    for (size_t i = 0; i < p->nconsumers; i++)
        consumer_destroy(&p->consumers[i]);
    es_avro_hook_destroy(p->avro);
    for (size_t i = 0; i < p->nroutes; i++) {
        free(p->routes[i].filters);
        free(p->routes[i].dests);
    }
    free(p->routes);
    free(p->consumers);
    free(p->instances);
    free(p->tokens);
    free(p->comp);
    free(p->heap);
    es_usage_destroy(p->usage);
    es_topics_destroy(p->topics);
    pthread_mutex_destroy(&p->filter_lock);
    int *fds[] = {p->comp_wake, p->prod_wake};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 2; i++)
            if (fds[k][i] >= 0)
                close(fds[k][i]);
    free(p);
}

int es_pipeline_check_instances(const es_config_t *conf, es_loader_t *loader,
                                char *errstr, size_t errstr_size)
{
    es_pipeline_t *p = pipeline_alloc(conf, loader);
    int rc = topics_init(p, errstr, errstr_size) ||
                     es_avro_hook_new(conf, &p->avro, errstr, errstr_size) ||
                     instances_init(p, errstr, errstr_size) ||
                     routes_init(p, errstr, errstr_size)
                 ? -1
                 : 0;
    for (size_t i = 0; i < p->ninstances; i++)
        instance_destroy(&p->instances[i]);
    p->ninstances = 0;
    es_pipeline_destroy(p);
    return rc;
}

cJSON *es_pipeline_avro_schemas(es_pipeline_t *p)
{
    return es_avro_hook_schemas(p->avro);
}

int es_pipeline_ready(es_pipeline_t *p)
{
    return atomic_load(&p->joined_consumers) == p->nconsumers;
}

/* ------------------------------------------------ topic testing (dry run) */

es_topics_t *es_pipeline_topics(es_pipeline_t *p)
{
    return p->topics;
}

es_usage_t *es_pipeline_usage(es_pipeline_t *p)
{
    return p->usage;
}

typedef struct dry_s {
    es_pipeline_t *p;
    const char *topic;
    const void *key;
    size_t key_len;
    const es_header_t *headers;
    size_t nh;
    cJSON *steps, *outputs;
} dry_t;

static const char *verdict_name(es_filter_verdict_t v)
{
    switch (v) {
    case ES_FILTER_KEEP:
        return "keep";
    case ES_FILTER_DROP:
        return "drop";
    case ES_FILTER_REPLACE:
        return "replace";
    case ES_FILTER_FAIL:
        break;
    }
    return "fail";
}

static void dry_event(const dry_t *t, es_event_t *ev, const es_decoded_t *dec,
                      const char *tenant, const char *route)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    *ev = event_view(dec, tenant, route);
    ev->topic = t->topic;
    ev->partition = -1;
    ev->offset = -1;
    ev->timestamp_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    ev->key = t->key;
    ev->key_len = t->key_len;
    ev->headers = t->headers;
    ev->header_count = t->nh;
}

static void add_tenant(cJSON *o, const char *tenant)
{
    if (tenant)
        cJSON_AddStringToObject(o, "tenant", tenant);
    else
        cJSON_AddNullToObject(o, "tenant");
}

/* What the end of the chain would deliver, after PII stripping. */
static void dry_output(dry_t *t, route_t *route, const es_decoded_t *dec,
                       route_t *target)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(t->outputs, o);
    char *tenant =
        lookup_tenant(t->p, route, t->topic, t->key, t->key_len, dec);
    add_tenant(o, tenant);
    free(tenant);
    if (!tenant && route->conf->require_tenant) {
        cJSON_AddStringToObject(o, "dead_letter",
                                "no tenant found where the route looks for it");
        return;
    }
    cJSON *removed = cJSON_CreateArray();
    int bad = 0;
    output_t *clean = strip_pii(t->p, t->topic, dec, removed, &bad);
    if (bad) {
        cJSON_Delete(removed);
        cJSON_AddStringToObject(
            o, "dead_letter",
            "stripping PII fields left an invalid CloudEvent");
        return;
    }
    cJSON_AddItemToObject(o, "event",
                          cJSON_Duplicate(clean ? clean->dec.ce : dec->ce, 1));
    cJSON_AddItemToObject(o, "pii_stripped", removed);
    route_t *r = target ? target : route;
    cJSON_AddStringToObject(o, "route", r->conf->name);
    cJSON *dests = cJSON_AddArrayToObject(o, "destinations");
    for (size_t i = 0; i < r->conf->destinations.n; i++)
        cJSON_AddItemToArray(dests,
                             cJSON_CreateString(r->conf->destinations.v[i]));
    output_release(clean);
}

static void dry_route(dry_t *t, route_t *route, const es_decoded_t *dec,
                      size_t fi, route_t *target);

/* A route name from a filter; unknown names would dead-letter. */
static int dry_target(dry_t *t, cJSON *step, const char *name, route_t **target)
{
    if (!name)
        return 0;
    *target = route_by_name(t->p, name);
    if (*target)
        return 0;
    char why[256];
    snprintf(why, sizeof why,
             "filter routed the event to unknown route \"%.100s\"", name);
    cJSON_AddStringToObject(step, "dead_letter", why);
    return -1;
}

static void dry_route(dry_t *t, route_t *route, const es_decoded_t *dec,
                      size_t fi, route_t *target)
{
    if (fi == route->conf->filters.n) {
        dry_output(t, route, dec, target);
        return;
    }
    instance_t *f = route->filters[fi];
    char *tenant =
        lookup_tenant(t->p, route, t->topic, t->key, t->key_len, dec);
    es_event_t ev;
    dry_event(t, &ev, dec, tenant, route->conf->name);
    collector_t c = {{collect_add, collect_set_route, NULL}, NULL, 0, NULL};
    char err[512] = "";
    pthread_mutex_lock(&t->p->filter_lock);
    es_filter_verdict_t v =
        f->plugin->filter(f->handle, &ev, &c.base, err, sizeof err);
    pthread_mutex_unlock(&t->p->filter_lock);
    free(tenant);
    cJSON *step = cJSON_CreateObject();
    cJSON_AddItemToArray(t->steps, step);
    cJSON_AddStringToObject(step, "filter", f->conf->name);
    cJSON_AddStringToObject(step, "event_id", dec->id);
    cJSON_AddStringToObject(step, "verdict", verdict_name(v));
    if (v == ES_FILTER_KEEP) {
        if (dry_target(t, step, c.route, &target) == 0)
            dry_route(t, route, dec, fi + 1, target);
    } else if (v == ES_FILTER_REPLACE) {
        cJSON_AddNumberToObject(step, "outputs", (double)c.n);
        for (size_t i = 0; i < c.n; i++) {
            route_t *tt = target;
            if (dry_target(t, step, c.items[i].route, &tt) == 0)
                dry_route(t, route, &c.items[i].out->dec, fi + 1, tt);
        }
    } else if (v != ES_FILTER_DROP) {
        cJSON_AddStringToObject(step, "dead_letter",
                                err[0] ? err : "filter failed");
    }
    collector_clear(&c);
}

cJSON *es_pipeline_dry_run(es_pipeline_t *p, const char *topic,
                           const void *value, size_t len, const void *key,
                           size_t key_len, const es_header_t *headers,
                           size_t nh)
{
    cJSON *res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "topic", topic);
    es_topics_lock(p->topics);
    const es_topic_t *ot = es_topics_find(p->topics, topic);
    if (ot)
        cJSON_AddItemToObject(res, "onboarded", es_topic_json(ot));
    else
        cJSON_AddNullToObject(res, "onboarded");
    es_topics_unlock(p->topics);
    cJSON_AddFalseToObject(res, "delivered");
    es_decoded_t dec = {0};
    char reason[256];
    if (es_decode_record(value, len, headers, nh,
                         (size_t)p->conf->max_event_bytes, &dec, reason,
                         sizeof reason)) {
        cJSON_AddStringToObject(res, "decode_error", reason);
        return res;
    }
    cJSON_AddItemToObject(res, "decoded", cJSON_Duplicate(dec.ce, 1));
    char *tenant = lookup_tenant(p, NULL, topic, key, key_len, &dec);
    add_tenant(res, tenant);
    free(tenant);
    cJSON *routes = cJSON_AddArrayToObject(res, "routes");
    for (size_t i = 0; i < p->nroutes; i++) {
        if (!route_wants(&p->routes[i], topic))
            continue;
        cJSON *r = cJSON_CreateObject();
        cJSON_AddItemToArray(routes, r);
        cJSON_AddStringToObject(r, "route", p->routes[i].conf->name);
        dry_t t = {p,
                   topic,
                   key,
                   key_len,
                   headers,
                   nh,
                   cJSON_AddArrayToObject(r, "filters"),
                   cJSON_AddArrayToObject(r, "outputs")};
        dry_route(&t, &p->routes[i], &dec, 0, NULL);
    }
    es_decoded_clear(&dec);
    return res;
}
