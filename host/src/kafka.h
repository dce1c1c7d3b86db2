/* librdkafka client set-up shared by the consumers and the host producer,
 * the embedded mock broker, and the host's own producer (dead-letter topic
 * and handler emits). */
#ifndef ES_KAFKA_H
#define ES_KAFKA_H

#include <librdkafka/rdkafka.h>

#include <cjson/cJSON.h>

/* A conf with bootstrap.servers = brokers and every property from `props`
 * (an object of strings, may be NULL) applied. NULL + errstr naming the
 * property on failure. */
rd_kafka_conf_t *es_kafka_conf_new(const char *brokers, const cJSON *props,
                                   char *errstr, size_t errstr_size);
int es_kafka_conf_set(rd_kafka_conf_t *conf, const char *name,
                      const char *value, char *errstr, size_t errstr_size);
/* Whether librdkafka (and the MSK IAM options) take every property of
 * `props`, without making a client or asking for credentials: 0, or -1
 * with "FILE: kafka.properties.NAME: what" (for --check-config, and at
 * startup before anything starts). */
int es_kafka_props_check(const cJSON *props, const char *file, char *errstr,
                         size_t errstr_size);

/* ---- embedded broker (librdkafka's mock cluster) */
typedef struct es_mock_broker_s es_mock_broker_t;
es_mock_broker_t *es_mock_broker_start(int brokers, char *errstr,
                                       size_t errstr_size);
const char *es_mock_broker_bootstrap(const es_mock_broker_t *b);
/* Creates a topic with `partitions` partitions now (not on first use). */
int es_mock_broker_create_topic(es_mock_broker_t *b, const char *topic,
                                int partitions);
/* Takes every broker of the cluster down (connections closed, new ones
 * refused; the data is kept) or brings them back up: an outage. */
int es_mock_broker_set_down(es_mock_broker_t *b, int down);
/* The next `count` requests of protocol API `api` (e.g. "Produce",
 * "InitProducerId") to each broker, from any client, fail with the Kafka
 * error named `error` (e.g. "TOPIC_AUTHORIZATION_FAILED"), answered
 * delay_ms late: a failure no outage makes.
 * -1 with errstr set for an unknown name. */
int es_mock_broker_push_errors(es_mock_broker_t *b, const char *api,
                               const char *error, int count, int delay_ms,
                               char *errstr, size_t errstr_size);
void es_mock_broker_stop(es_mock_broker_t *b);

/* ---- the host's producer */
typedef struct es_producer_s es_producer_t;
/* Called on the thread that calls es_producer_poll, once per send. */
typedef void (*es_producer_dr_fn)(void *opaque, rd_kafka_resp_err_t err,
                                  void *ud);

/* enabled = 0 makes every send a counted no-op (KAFKA_ENABLED=false). */
es_producer_t *es_producer_new(const char *brokers, const cJSON *props,
                               int enabled, es_producer_dr_fn dr, void *ud,
                               char *errstr, size_t errstr_size);
/*
 * Queues one record; takes ownership of `headers` (may be NULL) in every
 * case. Returns 0 when queued (the callback will report), 1 when
 * publishing is disabled (nothing sent, no callback), -1 when it cannot be
 * queued now (queue full: retry later) with errstr, -2 when it is larger
 * than the producer takes (message.max.bytes: sending it again cannot
 * work) with errstr.
 */
int es_producer_send(es_producer_t *p, const char *topic, const void *key,
                     size_t key_len, const void *value, size_t value_len,
                     rd_kafka_headers_t *headers, void *opaque, char *errstr,
                     size_t errstr_size);
/* Serves delivery reports; returns how many were served. */
int es_producer_poll(es_producer_t *p);
/* The handle, for calls made on the thread that polls (it changes only
 * there, in es_producer_replace). */
rd_kafka_t *es_producer_handle(es_producer_t *p);
/* 1 (with why) once the handle hit a fatal error: it produces nothing
 * more (e.g. the idempotent producer fenced, or refused its producer id). */
int es_producer_fatal(es_producer_t *p, char *why, size_t why_size);
/* Swaps in a new handle made from the same settings and returns the old
 * one, or NULL with errstr when none can be made (the old one stays).
 * Sends on any thread go to the new one from then on. */
rd_kafka_t *es_producer_replace(es_producer_t *p, char *errstr,
                                size_t errstr_size);
/* Fails what the old handle still holds, serving its reports (up to 5 s),
 * then destroys it. On the thread that polls. */
void es_producer_retire(rd_kafka_t *old);
int es_producer_enabled(const es_producer_t *p);
/* Waits up to timeout_ms for outstanding records, then frees. NULL ok. */
void es_producer_destroy(es_producer_t *p, int timeout_ms);

/* Frees what the Kafka clients shared (the MSK IAM signer); call after the
 * last rd_kafka_destroy(). */
void es_kafka_global_cleanup(void);

/* Parses KAFKA_ENABLED: unset or "true"/"1"/"yes" = enabled. */
int es_kafka_enabled_from_env(void);

#endif
