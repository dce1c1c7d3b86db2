/*
 * Test harness for the kafka sink: a fake host-services struct that records
 * completions, counters and logs; an in-process librdkafka mock cluster; a
 * consumer that reads a topic back; and CloudEvent builders.
 */
#ifndef KAFKA_SINK_HARNESS_H
#define KAFKA_SINK_HARNESS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <eventstream/plugin.h>

#define TH_APIKEY_PRODUCE 0

typedef struct th_done_s {
    es_status_t status;
    int count;
    char reason[256];
} th_done_t;

typedef struct th_host_s {
    es_host_t host; /* first: the plugin's host pointer is ours */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    th_done_t *done; /* indexed by token */
    size_t cap;
    size_t completed, ok, retry, fail, bad;
    struct {
        char name[64];
        uint64_t value;
    } counters[32];
    size_t ncounters;
    char **logs;
    size_t nlogs;
} th_host_t;

th_host_t *th_host_new(size_t max_tokens);
void th_host_free(th_host_t *h);
/* Waits until at least n completions arrived; returns how many did. */
size_t th_wait_completed(th_host_t *h, size_t n, int timeout_ms);
size_t th_completed(th_host_t *h);
uint64_t th_counter(th_host_t *h, const char *name);
size_t th_log_count(th_host_t *h, const char *substr);

/* The built plugin, loaded with dlopen like the daemon does. */
const es_plugin_t *th_plugin(void);
/* init with a JSON config text; NULL on failure with errstr filled. */
void *th_init(th_host_t *h, const char *config_json, char *errstr,
              size_t errstr_size);

typedef struct th_cluster_s {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    char bootstraps[256];
} th_cluster_t;

void th_cluster_start(th_cluster_t *c, int brokers);
void th_cluster_stop(th_cluster_t *c);
void th_topic_create(th_cluster_t *c, const char *topic, int partitions);

typedef struct th_event_s {
    es_event_t ev;
    cJSON *ce;
    char *json;
    es_header_t headers[8];
} th_event_t;

/* Builds an event from structured JSON text (copied); tenant may be NULL. */
void th_event_init(th_event_t *e, const char *json, const char *tenant,
                   uint64_t token);
void th_event_free(th_event_t *e);
/* A marketplace-style event number i with tenant "tenant-<i % tenants>". */
char *th_sample_json(int i, int tenants);

typedef struct th_msg_s {
    char *topic;
    int32_t partition;
    char *key; /* NULL for a null key */
    size_t key_len;
    char *value;
    size_t value_len;
    size_t nheaders;
    char **hnames;
    char **hvalues; /* NULL for a null header value */
    size_t *hlens;
} th_msg_t;

/* Reads `topic` (a comma-separated list; all `partitions` of each) from the
 * beginning until `want` messages arrived (then 150 ms more, to see
 * duplicates) or timeout. */
size_t th_consume(const char *bootstraps, const char *topic, int partitions,
                  size_t want, int timeout_ms, th_msg_t **out);
void th_msgs_free(th_msg_t *msgs, size_t n);
/* The value of header `name` (first occurrence), or NULL; *found is set
 * when the header exists (even with a null value). */
const char *th_msg_header(const th_msg_t *m, const char *name, size_t *len,
                          int *found);

void th_sleep_ms(int ms);

#endif
