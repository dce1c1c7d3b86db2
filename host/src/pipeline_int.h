/*
 * The pipeline's internals, shared by its files: pipeline.c (deliveries,
 * retries, dead letters, dispatch, set-up and the main loop),
 * pipeline_consume.c (consumers, commits, rebalances), pipeline_route.c
 * (tenant lookup, filter chains, PII stripping), pipeline_host.c (the host
 * services plugins call) and pipeline_dry.c (topic testing). Nothing here
 * is for use outside host/src/pipeline*.c.
 */
#ifndef ES_PIPELINE_INT_H
#define ES_PIPELINE_INT_H

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
#include "loader.h"
#include "../avro/es_avro_hook.h"
#include "kafka.h"
#include "msk_iam.h"
#include "log.h"
#include "metrics.h"
#include "offsets.h"
#include "pipeline.h"
#include "region.h"
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
typedef struct park_s park_t;

/* A run of failures of one kind (writes the producer does not take),
 * logged when it starts, then once a minute, then when it ends: a warning
 * per failure, a few a second, filled the log. pl_streak_fail returns 1
 * when this failure is to be logged: the first (*since = 0) or the first
 * a minute after the last line (*since = failures in between, *secs = how
 * long that was). pl_streak_end returns the streak's length (0: none) and
 * ends it. */
typedef struct fail_streak_s {
    uint64_t n, since_log;
    int64_t logged_ms;
} fail_streak_t;
int pl_streak_fail(fail_streak_t *s, int64_t now, uint64_t *since,
                   int64_t *secs);
uint64_t pl_streak_end(fail_streak_t *s);
/* The retry.* backoff before attempt `attempt` (from 1), with jitter. */
int64_t pl_backoff_ms(const es_config_t *c, uint32_t attempt);
typedef struct park_origin_s park_origin_t;
typedef struct sub_route_s sub_route_t; /* pipeline_subs.c */
typedef struct pl_subs_s pl_subs_t;     /* pipeline_subs.c */
typedef struct pl_call_s pl_call_t;     /* pipeline_call.c */
typedef struct pl_stage_s pl_stage_t;   /* pipeline_stage.c */

struct instance_s {
    es_pipeline_t *p;
    const es_instance_conf_t *conf;
    const es_plugin_t *plugin;
    void *handle;
    es_plugin_t stand_in; /* a dry run's unbuilt sink or handler (pipeline.c) */
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
    park_t *park; /* NULL: parking is off (pipeline_park.c) */
    size_t live;  /* deliveries to it not done: a retired subscription's
                     instance is destroyed when this reaches 0 */
};

struct route_s {
    const es_route_conf_t *conf;
    instance_t **filters;
    instance_t **dests;
    es_counter_t *consumed, *filtered, *tenantless;
    const sub_route_t *sub; /* a subscription's route (tenant, start
                               offsets); NULL for the config's routes */
    size_t live;            /* deliveries naming it not done */
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
    char *own_group; /* group's storage for consumers made while running */
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    int wake[2];
    route_t **routes;
    size_t nroutes, routes_cap;
    partition_t *parts;
    size_t inflight;  /* records of its partitions not done */
    char *subscribed; /* the topic list last subscribed, "\n"-joined */
    int joined;       /* a member of its group: counted in joined_consumers */
    int ever_joined;  /* for the log: joined, or joined again */
    int commit_held;  /* a commit met a rebalance in progress: the periodic
                         ones wait for its callback (pipeline_consume.c) */
    fail_streak_t commit_streak; /* commits refused, for the log */
    es_counter_t *commit_failures;
    int start_at_end;          /* auto.offset.reset is latest (the default) */
    rd_kafka_message_t **msgs; /* batch_size slots, reused by consume_some */
};

/* One consumed Kafka record, alive until every delivery of it is done. */
struct record_s {
    rd_kafka_message_t *msg;
    partition_t *part;
    es_header_t *headers;
    size_t nh;
    es_decoded_t dec;
    int pending; /* deliveries not done, plus one while being routed */
    park_origin_t *origin; /* replayed from a park topic; else NULL */
    /* dec's tenant as a route with no tenant spec of its own finds it
     * (pl_route_record looks it up once, before any route runs, so the
     * filter stage only reads it); NULL with tenant_known: none. */
    char *tenant;
    int tenant_known;
};

/* Where a replayed record was first consumed (pipeline_park.c). */
struct park_origin_s {
    park_t *park;
    char *topic, *route, *tenant;
    int32_t partition;
    int64_t offset, timestamp_ms;
    const void *key; /* NULL when the record had none */
    size_t key_len;
    uint64_t run, seq;
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
    uint32_t dlq_attempt; /* the dead letter's failed writes (backoff) */
    int dlq_bare;         /* written without the record's key, value and
                             headers: it was too large for the producer */
    int redecode;         /* Avro: waiting for the schema registry */
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
    consumer_t **consumers;
    size_t nconsumers, consumers_cap;
    char *brokers;
    es_producer_t *producer;
    rd_kafka_queue_t *prod_queue;
    int prod_wake[2];
    /* Re-creating the producer after fatal errors: not before
     * producer_retry_at, the wait growing while they keep coming. */
    int64_t producer_retry_at, producer_replaced_ms;
    uint32_t producer_attempt;
    es_counter_t *producer_replaced;
    int fatal; /* a consumer hit a fatal error: the run ends, exit 1 */

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
    /* nconsumers, for the admin API's threads (es_pipeline_ready): the
     * array and its count belong to the pipeline thread. */
    atomic_size_t live_consumers;
    int64_t last_flush_ms, last_commit_ms;
    es_counter_t *consumed, *decode_failed, *dead_lettered;
    /* Dead letters the producer did not take: retries, and their log's
     * streak (pipeline.c, dead_letter_failed). */
    es_counter_t *dlq_retries;
    fail_streak_t dlq_streak;
    es_avro_hook_t *avro; /* NULL when no route reads Avro */
    /* Rebuilt when onboarded Avro topics change (pipeline_dry.c); the API
     * thread's readers of p->avro hold avro_lock. */
    pthread_mutex_t avro_lock;
    unsigned long long avro_stamp;

    es_topics_t *topics; /* NULL when no topics_dir */
    es_usage_t *usage;
    es_region_t *region; /* NULL: no "region" in the config */
    int64_t last_housekeeping_ms;
    /* Filter plugin calls on one instance must not overlap: the pipeline
     * thread and the admin API's dry runs both take this lock. */
    pthread_mutex_t filter_lock;
    /* The config's routes' filters run on this stage's thread; NULL: on
     * the pipeline thread (pipeline.filter_thread off, or no filters). */
    pl_stage_t *stage;

    /* Subscriptions (pipeline_subs.c): their destination instances, which
     * dispatch and flush like the config's; the set itself. */
    instance_t **dyn;
    size_t ndyn, dyn_cap;
    pl_subs_t *subs;
    /* Calls from other threads run on the pipeline thread (pl_call). */
    pthread_mutex_t call_lock;
    pthread_cond_t call_cond;
    pl_call_t *calls;
    int call_wake[2];
    int stopped;
    /* A route uses a filter that takes the host's index of an event's
     * members (ES_PLUGIN_JSON_INDEX): records are decoded with it. Set on
     * the pipeline thread, read by the threads that decode. */
    atomic_int index_events;
};

/* Notes that a route now uses filter instance f. */
void pl_note_filter(es_pipeline_t *p, const instance_t *f);
static inline int pl_index_events(es_pipeline_t *p)
{
    return atomic_load_explicit(&p->index_events, memory_order_relaxed);
}

#define EMIT_TAG ((uintptr_t)1) /* producer opaque of an emitted event */
#define PARK_TAG ((uintptr_t)2) /* producer opaque of a parked delivery */

typedef struct collected_s {
    output_t *out;
    char *route;
} collected_t;

typedef struct collector_s {
    es_filter_out_t base;
    collected_t *items;
    size_t n;
    char *route; /* set_route for KEEP */
    /* The event the filter read, which its outputs may copy from. */
    const es_decoded_t *input;
} collector_t;

/* pipeline.c */
void pl_make_wake_pipe(int fds[2]);
void pl_wake(int fd);
delivery_t *pl_token_lookup(es_pipeline_t *p, uint64_t token);
void pl_record_release(es_pipeline_t *p, record_t *rec);
void pl_output_release(output_t *o);
delivery_t *pl_delivery_new(es_pipeline_t *p, record_t *rec, output_t *out,
                            route_t *route, instance_t *dest,
                            const char *tenant);
void pl_dead_letter(es_pipeline_t *p, delivery_t *d, const char *reason);
void pl_dead_letter_record(es_pipeline_t *p, record_t *rec, route_t *route,
                           const char *plugin, const char *reason);
void pl_enqueue(instance_t *inst, delivery_t *d);
void pl_instance_destroy(instance_t *inst);
void pl_instance_metrics(instance_t *inst);
void pl_avro_retry_later(es_pipeline_t *p, delivery_t *d, const char *reason);
void pl_delivery_done(es_pipeline_t *p, delivery_t *d);

/* pipeline_consume.c */
int pl_consume_some(consumer_t *c);
/* Serves the consumer's queue (rebalances, errors) without taking work:
 * for shutdown, with its partitions paused. */
void pl_consume_serve_only(consumer_t *c);
void pl_commit_all(es_pipeline_t *p, int sync);
void pl_set_paused(consumer_t *c, int pause);
int pl_consumers_init(es_pipeline_t *p, const char *brokers, char *errstr,
                      size_t errstr_size);
void pl_consumer_destroy(consumer_t *c);
consumer_t *pl_consumer_new(es_pipeline_t *p, const char *group, char *errstr,
                            size_t errstr_size);
int pl_consumer_resubscribe(consumer_t *c, char *errstr, size_t errstr_size);
void pl_consumer_add_route(consumer_t *c, route_t *r);
void pl_consumer_remove_route(consumer_t *c, route_t *r);

/* pipeline_route.c */
/* The decoded event with its whole tree: a filter's output is decoded
 * shallow (es_decode_output) until something reads its tree. */
const es_decoded_t *pl_dec_whole(const es_decoded_t *dec);
/* The event as `reader` sees it: its tree is built whole first unless the
 * plugin reads only the text (ES_PLUGIN_TEXT_ONLY). */
es_event_t pl_event_view(const es_decoded_t *dec, const es_plugin_t *reader,
                         const char *tenant, const char *route);
void pl_build_event(es_event_t *ev, const record_t *rec,
                    const es_decoded_t *dec, const es_plugin_t *reader,
                    const char *tenant, const char *route, uint64_t token,
                    uint32_t attempt);
char *pl_lookup_tenant(es_pipeline_t *p, const route_t *r, const char *topic,
                       const void *key, size_t key_len,
                       const es_decoded_t *dec);
/* Why pl_lookup_tenant found none: a path through a repeated key named. */
void pl_no_tenant_reason(es_pipeline_t *p, const route_t *r, const char *topic,
                         const es_decoded_t *dec, char *out, size_t size);
output_t *pl_strip_pii(es_pipeline_t *p, const char *topic,
                       const es_decoded_t *dec, cJSON *removed, int *bad);
route_t *pl_route_by_name(es_pipeline_t *p, const char *name);
int pl_collect_add(es_filter_out_t *o, const char *json, size_t len,
                   const char *route, char *errstr, size_t errstr_size);
int pl_collect_add_copies(es_filter_out_t *o, const char *json, size_t len,
                          const char *route, const es_json_copy_t *copies,
                          size_t ncopies, char *errstr, size_t errstr_size);
void pl_collect_set_route(es_filter_out_t *o, const char *route);
void pl_collector_clear(collector_t *c);
es_filter_verdict_t pl_filter_call(es_pipeline_t *p, record_t *rec,
                                   route_t *route, output_t *out, size_t fi,
                                   collector_t *c, char *err, size_t err_size);
void pl_filter_verdict(es_pipeline_t *p, record_t *rec, route_t *route,
                       output_t *out, size_t fi, route_t *target,
                       es_filter_verdict_t v, collector_t *c, const char *err);
void pl_route_record(es_pipeline_t *p, record_t *rec);
int pl_route_wants(const route_t *r, const char *topic);
int pl_region_skip(es_pipeline_t *p, const route_t *r, const char *tenant,
                   const char **region);

/* pipeline_stage.c */
int pl_stage_start(es_pipeline_t *p, char *errstr, size_t errstr_size);
/* Hands filter fi to the stage (1) or leaves it to the caller (0). */
int pl_stage_offer(es_pipeline_t *p, record_t *rec, route_t *route,
                   output_t *out, size_t fi, route_t *target);
void pl_stage_hand_over(es_pipeline_t *p); /* what was offered this turn */
int pl_stage_fd(const es_pipeline_t *p);
void pl_stage_collect(es_pipeline_t *p); /* applies the verdicts back */
void pl_stage_stop(es_pipeline_t *p);    /* joins the thread */
void pl_stage_destroy(es_pipeline_t *p); /* lets go of what is queued */

/* pipeline_dry.c */
int pl_avro_hook_build(es_pipeline_t *p, const char *only_topic,
                       es_avro_hook_t **out, char *errstr, size_t errstr_size);
void pl_avro_rebuild(es_pipeline_t *p);

/* pipeline_park.c: parking a failing destination (docs/parking.md) */
int pl_park_init(es_pipeline_t *p, char *errstr, size_t errstr_size);
/* One instance (a subscription's, at runtime): a park per its
 * conf->park, with its drainer; detach leaves the drain group (committing
 * what is replayed), free frees it (inst->park = NULL). */
int pl_park_attach(es_pipeline_t *p, instance_t *inst, char *errstr,
                   size_t errstr_size);
void pl_park_detach(instance_t *inst);
void pl_park_free(instance_t *inst);
void pl_park_close(es_pipeline_t *p); /* commit what is done, leave */
void pl_park_destroy(es_pipeline_t *p);
int pl_park_divert(es_pipeline_t *p, delivery_t *d);   /* from pl_enqueue */
int pl_park_on_retry(es_pipeline_t *p, delivery_t *d); /* schedule_retry */
void pl_park_on_ok(delivery_t *d);                     /* settle */
void pl_park_produced(es_pipeline_t *p, delivery_t *d,
                      rd_kafka_resp_err_t err);     /* on_produced */
void pl_park_record_done(record_t *rec);            /* record_done */
int pl_park_iterate(es_pipeline_t *p, int consume); /* main loop */
void pl_park_fix_event(es_event_t *ev, const record_t *rec);
const char *pl_rec_topic(const record_t *rec);
/* Pure parts, unit-tested. */
typedef struct park_policy_s {
    int after_ms, after_attempts, max_attempts;
} park_policy_t;
int pl_park_due(const park_policy_t *pol, uint32_t attempt,
                int64_t first_fail_ms, int64_t now_ms);
rd_kafka_headers_t *pl_park_headers(const park_origin_t *o,
                                    const char *destination,
                                    const es_header_t *orig, size_t norig);
int pl_park_parse_headers(const rd_kafka_headers_t *h, park_origin_t *o,
                          es_header_t **orig, size_t *norig, char *errstr,
                          size_t errstr_size);

/* pipeline_host.c */
void pl_host_init(instance_t *inst);
/* es_host_t.log for any instance, the topic test's too: tagged with
 * h->instance_name. */
void pl_host_log(const es_host_t *h, es_log_level_t level, const char *fmt, ...)
    ES_PRINTF(3, 4);

/* pipeline_call.c: fn runs on the pipeline thread; the caller waits up to
 * timeout_ms. Returns 0 with *result = fn's value; -1 on timeout (then fn
 * has not run and never will); -2 when the pipeline is not running. */
typedef int (*pl_call_fn)(es_pipeline_t *p, void *arg);
int pl_call(es_pipeline_t *p, pl_call_fn fn, void *arg, int timeout_ms,
            int *result);
void pl_calls_run(es_pipeline_t *p);
void pl_calls_stop(es_pipeline_t *p);

/* pipeline_subs.c */
int pl_subs_init(es_pipeline_t *p, char *errstr, size_t errstr_size);
void pl_subs_reap(es_pipeline_t *p);
void pl_subs_destroy(es_pipeline_t *p);
/* Whether a subscription route takes this record: its tenant, and an
 * offset at or past where the subscription started. */
int pl_sub_admits(const route_t *r, const record_t *rec, const char *tenant);
int pl_sub_tenant_is(const route_t *r, const char *tenant);
/* Where a subscription route starts on a partition (0 when it recorded
 * none); -1 for the config's routes. */
int64_t pl_sub_start(const route_t *r, const char *topic, int32_t partition);
/* The subscription route named `name` that delivers to `dest` (a park
 * replay's route), or NULL. */
route_t *pl_sub_route(es_pipeline_t *p, const instance_t *dest,
                      const char *name);

#endif
