/*
 * The daemon's pipeline: consumers (one rd_kafka_t per consumer group),
 * decode, routes with their filter chains, delivery to plugin instances,
 * retries with backoff, dead-lettering, and per-partition offset commits.
 * Everything here runs on the thread that calls es_pipeline_run, except
 * what plugins do on their own threads, which reaches the pipeline only
 * through the thread-safe host services (complete, emit).
 */
#ifndef ES_PIPELINE_H
#define ES_PIPELINE_H

#include <signal.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "loader.h"
#include "topics.h"
#include "usage.h"

typedef struct es_pipeline_s es_pipeline_t;

/* Builds instances (plugin init), consumers and the host producer. The
 * loader must outlive the pipeline. Returns NULL with errstr. */
es_pipeline_t *es_pipeline_new(const es_config_t *conf, es_loader_t *loader,
                               const char *brokers, char *errstr,
                               size_t errstr_size);

/* Runs until *stop becomes non-zero, or a consumer hits a fatal error,
 * then drains in-flight events (up to the shutdown timeout), commits and
 * leaves the groups. Returns 0, or 1 after a consumer's fatal error. */
int es_pipeline_run(es_pipeline_t *p, volatile sig_atomic_t *stop);

void es_pipeline_destroy(es_pipeline_t *p);

/* Every consumer group has joined (safe from any thread). */
int es_pipeline_ready(es_pipeline_t *p);

/* Avro schemas in use per topic (host/avro); a new object the caller owns.
 * Safe from any thread. */
cJSON *es_pipeline_avro_schemas(es_pipeline_t *p);

/* Only creates and destroys every instance: for --check-config. */
int es_pipeline_check_instances(const es_config_t *conf, es_loader_t *loader,
                                char *errstr, size_t errstr_size);

/* The onboarded topics (NULL without topics_dir) and the usage counters,
 * for the admin API. */
es_topics_t *es_pipeline_topics(es_pipeline_t *p);
es_usage_t *es_pipeline_usage(es_pipeline_t *p);

/* One topic test (POST /v1/topics/{topic}/test). Everything is borrowed. */
typedef struct es_dry_run_s {
    const char *topic;
    const void *value; /* the record value: JSON, or Avro for Avro topics */
    size_t len;
    const void *key;
    size_t key_len;
    const es_header_t *headers;
    size_t nh;
    const char *deliver_to; /* NULL: dry run only; else a test endpoint */
    int timeout_ms;         /* how long a real delivery may take */
} es_dry_run_t;

/*
 * Topic testing, on the calling thread: decodes the value as a record of
 * the topic (Avro for onboarded Avro topics and routes' Avro topics, with a
 * decoder of its own), finds the tenant, runs every route's filter chain
 * (filter calls serialised with the pipeline thread), strips the topic's
 * PII and applies the region check. With deliver_to, the resulting events
 * are then really delivered to a fresh instance of that endpoint's plugin
 * (same config, own host services), never to the pipeline's instance, and
 * each event's status is reported. Nothing else is delivered or produced.
 * Returns a JSON report (see api/openapi.yaml).
 *
 * With deliver_to, *pending is set (NULL otherwise, or when the value did
 * not decode): hand it and the report to es_pipeline_dry_deliver, which
 * may wait up to req->timeout_ms and so can be called without the lock
 * the caller ran the dry run under (it reads only the config, the loaded
 * plugins and its own copies of the events; `req` must still be valid).
 * Test deliveries run one at a time.
 */
typedef struct dry_s es_dry_pending_t;
cJSON *es_pipeline_dry_run(es_pipeline_t *p, const es_dry_run_t *req,
                           es_dry_pending_t **pending);
void es_pipeline_dry_deliver(es_dry_pending_t *pending, cJSON *report);

/* Whether instance `name` may receive topic-test deliveries: 0, or an HTTP
 * status with errstr (404: no such instance, 403: not marked
 * "test_endpoint": true, 400: a filter). */
int es_pipeline_test_endpoint(es_pipeline_t *p, const char *name, char *errstr,
                              size_t errstr_size);

#endif
