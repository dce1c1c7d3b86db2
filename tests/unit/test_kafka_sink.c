/*
 * Unit tests of the kafka sink plugin against librdkafka's in-process mock
 * cluster: each content mode and compression, keys, headers, topic
 * templates, fault injection and KAFKA_ENABLED=false. Everything produced is
 * consumed back with a librdkafka consumer and compared.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "internal/es_clock.h"
#include "kafka_sink_harness.h"

#define N_PER_MODE 1000
#define BATCH 100
#define TENANTS 7

static const char *const compressions[] = {"none", "gzip", "lz4", "snappy",
                                           "zstd"};

typedef struct fx_s {
    th_cluster_t cluster;
    th_host_t *host;
    void *inst;
    th_event_t *events;
    size_t nevents;
} fx_t;

static void *fx_init(fx_t *fx, const char *config)
{
    char err[512];
    fx->inst = th_init(fx->host, config, err, sizeof(err));
    ck_assert_msg(fx->inst != NULL, "init failed: %s", err);
    return fx->inst;
}

static void fx_start(fx_t *fx, size_t max_tokens)
{
    memset(fx, 0, sizeof(*fx));
    th_cluster_start(&fx->cluster, 1);
    fx->host = th_host_new(max_tokens);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fx_stop(fx_t *fx)
{
    double t0 = now_s();
    if (fx->inst)
        th_plugin()->destroy(fx->inst);
    double t1 = now_s();
    for (size_t i = 0; i < fx->nevents; i++)
        th_event_free(&fx->events[i]);
    free(fx->events);
    th_host_free(fx->host);
    th_cluster_stop(&fx->cluster);
    if (getenv("TH_DEBUG"))
        fprintf(stderr, "destroy %.3f cluster stop %.3f\n", t1 - t0,
                now_s() - t1);
}

static char *fx_config(fx_t *fx, const char *extra)
{
    char *buf = malloc(2048);
    snprintf(buf, 2048, "{\"brokers\":\"%s\",%s}", fx->cluster.bootstraps,
             extra);
    return buf;
}

/* Makes n sample events with tokens 1..n; event i has tenant i % TENANTS. */
static void fx_make_events(fx_t *fx, size_t n)
{
    static char tenants[TENANTS][16];
    for (int t = 0; t < TENANTS; t++)
        snprintf(tenants[t], sizeof(tenants[t]), "tenant-%d", t);
    fx->events = calloc(n, sizeof(th_event_t));
    fx->nevents = n;
    for (size_t i = 0; i < n; i++) {
        char *json = th_sample_json((int)i, TENANTS);
        th_event_init(&fx->events[i], json, tenants[i % TENANTS], i + 1);
        free(json);
    }
}

/* Delivers events [from, to) in batches; every result must be PENDING. */
static void fx_deliver(fx_t *fx, size_t from, size_t to)
{
    const es_event_t *batch[BATCH];
    es_result_t results[BATCH];
    for (size_t i = from; i < to; i += BATCH) {
        size_t n = to - i < BATCH ? to - i : BATCH;
        for (size_t j = 0; j < n; j++)
            batch[j] = &fx->events[i + j].ev;
        memset(results, 0, sizeof(results));
        th_plugin()->deliver(fx->inst, batch, n, results);
        for (size_t j = 0; j < n; j++)
            ck_assert_msg(results[j].status == ES_PENDING,
                          "event %zu: status %d (%s)", i + j, results[j].status,
                          results[j].reason);
    }
}

static es_status_t fx_deliver_one(fx_t *fx, th_event_t *e, char *reason,
                                  size_t reason_size)
{
    const es_event_t *batch[1] = {&e->ev};
    es_result_t r;
    memset(&r, 0, sizeof(r));
    th_plugin()->deliver(fx->inst, batch, 1, &r);
    snprintf(reason, reason_size, "%s", r.reason);
    return r.status;
}

/* Does what the host does with ES_RETRY: delivers those events again
 * (same token) until none is left or the rounds run out. */
static void fx_redeliver_retries(fx_t *fx, size_t n)
{
    th_host_t *h = fx->host;
    for (int round = 0; round < 5; round++) {
        size_t again = 0;
        pthread_mutex_lock(&h->mu);
        for (size_t i = 0; i < n; i++) {
            th_done_t *d = &h->done[i + 1];
            if (d->count == 1 && d->status == ES_RETRY) {
                d->count = 0;
                d->status = 0;
                h->completed--;
                h->retry--;
                again++;
            }
        }
        pthread_mutex_unlock(&h->mu);
        if (!again)
            return;
        for (size_t i = 0; i < n; i++)
            if (h->done[i + 1].count == 0)
                fx_deliver(fx, i, i + 1);
        ck_assert_uint_eq(th_wait_completed(h, n, 30000), n);
    }
}

/* Index of the event a consumed message carries, from its id. */
static long msg_event_index(const th_msg_t *m, int binary)
{
    const char *id = NULL;
    char buf[64];
    if (binary) {
        id = th_msg_header(m, "ce_id", NULL, NULL);
    } else {
        cJSON *ce = cJSON_ParseWithLength(m->value, m->value_len);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(ce, "id");
        if (cJSON_IsString(v)) {
            snprintf(buf, sizeof(buf), "%s", v->valuestring);
            id = buf;
        }
        cJSON_Delete(ce);
    }
    if (!id || strncmp(id, "evt-", 4) != 0)
        return -1;
    return strtol(id + 4, NULL, 10);
}

/* Checks that every one of n events arrived exactly once and that every
 * OK completion is for an event that is really on the topic. */
static void check_exactly_once(fx_t *fx, th_msg_t *msgs, size_t got, size_t n,
                               int binary)
{
    int *seen = calloc(n, sizeof(int));
    for (size_t i = 0; i < got; i++) {
        long idx = msg_event_index(&msgs[i], binary);
        ck_assert_msg(idx >= 0 && (size_t)idx < n, "unknown message %zu", i);
        seen[idx]++;
    }
    if (getenv("TH_DEBUG")) {
        size_t missing = 0;
        for (size_t i = 0; i < n; i++)
            if (seen[i] != 1) {
                missing++;
                fprintf(stderr, "event %zu seen %d status %d %s\n", i, seen[i],
                        fx->host->done[i + 1].status,
                        fx->host->done[i + 1].reason);
            }
        fprintf(stderr, "got %zu missing %zu\n", got, missing);
    }
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(seen[i] == 1, "event %zu arrived %d times", i, seen[i]);
        ck_assert_int_eq(fx->host->done[i + 1].count, 1);
        ck_assert_int_eq(fx->host->done[i + 1].status, ES_OK);
    }
    ck_assert_uint_eq(got, n);
    ck_assert_uint_eq(fx->host->bad, 0);
    free(seen);
}

/* Expected binary-mode value: the data member's text, verbatim. */
static void expected_data(const char *json, const char **p, size_t *len)
{
    const char *d = strstr(json, "\"data\":");
    ck_assert_ptr_nonnull(d);
    *p = d + 7;
    *len = strlen(*p) - 1; /* the event's closing brace */
}

static void check_message(fx_t *fx, const th_msg_t *m, int binary)
{
    long idx = msg_event_index(m, binary);
    const th_event_t *e = &fx->events[idx];
    size_t len;
    ck_assert_ptr_nonnull(m->key);
    ck_assert_str_eq(m->key, e->ev.tenant);
    if (!binary) {
        ck_assert_uint_eq(m->value_len, e->ev.json_len);
        ck_assert_mem_eq(m->value, e->ev.json, m->value_len);
        ck_assert_str_eq(th_msg_header(m, "content-type", NULL, NULL),
                         "application/cloudevents+json");
        ck_assert_uint_eq(m->nheaders, 1);
        return;
    }
    const char *data;
    expected_data(e->json, &data, &len);
    ck_assert_uint_eq(m->value_len, len);
    ck_assert_mem_eq(m->value, data, len);
    ck_assert_str_eq(th_msg_header(m, "content-type", NULL, NULL),
                     "application/json");
    static const char *const attrs[] = {"specversion", "id",          "type",
                                        "source",      "time",        "subject",
                                        "tenantid",    "partitionkey"};
    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
        char name[64];
        snprintf(name, sizeof(name), "ce_%s", attrs[i]);
        const char *v = th_msg_header(m, name, NULL, NULL);
        ck_assert_msg(v != NULL, "missing header %s", name);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(e->ce, attrs[i]);
        ck_assert_str_eq(v, a->valuestring);
    }
    ck_assert_uint_eq(m->nheaders, 9); /* 8 attributes + content-type */
    ck_assert_ptr_null(th_msg_header(m, "ce_data", NULL, NULL));
    ck_assert_ptr_null(th_msg_header(m, "ce_datacontenttype", NULL, NULL));
}

/* ------------------------------------------------------ modes x codecs */

START_TEST(test_modes_and_compression)
{
    int binary = _i / 5;
    const char *codec = compressions[_i % 5];
    const char *topic = "out.orders";
    char extra[256];
    fx_t fx;
    fx_start(&fx, N_PER_MODE);
    th_topic_create(&fx.cluster, topic, 4);
    snprintf(extra, sizeof(extra),
             "\"topic\":\"%s\",\"compression\":\"%s\","
             "\"content_mode\":\"%s\"",
             topic, codec, binary ? "binary" : "structured");
    char *config = fx_config(&fx, extra);
    fx_init(&fx, config);
    free(config);
    double t0 = now_s();
    fx_make_events(&fx, N_PER_MODE);
    double t1 = now_s();
    fx_deliver(&fx, 0, N_PER_MODE);
    th_plugin()->flush(fx.inst);
    ck_assert_uint_eq(th_wait_completed(fx.host, N_PER_MODE, 20000),
                      N_PER_MODE);
    if (getenv("TH_DEBUG"))
        fprintf(stderr, "make %.3f deliver+ack %.3f\n", t1 - t0, now_s() - t1);

    th_msg_t *msgs;
    size_t got =
        th_consume(fx.cluster.bootstraps, topic, 4, N_PER_MODE, 20000, &msgs);
    check_exactly_once(&fx, msgs, got, N_PER_MODE, binary);
    int tenant_partition[TENANTS];
    for (int t = 0; t < TENANTS; t++)
        tenant_partition[t] = -1;
    for (size_t i = 0; i < got; i++) {
        check_message(&fx, &msgs[i], binary);
        /* The tenant key keeps a tenant on one partition. */
        int t = atoi(msgs[i].key + strlen("tenant-"));
        if (tenant_partition[t] < 0)
            tenant_partition[t] = msgs[i].partition;
        ck_assert_int_eq(tenant_partition[t], msgs[i].partition);
    }
    th_msgs_free(msgs, got);
    th_plugin()->destroy(fx.inst);
    fx.inst = NULL;
    ck_assert_uint_eq(th_counter(fx.host, "delivered"), N_PER_MODE);
    fx_stop(&fx);
}
END_TEST

/* ------------------------------------------------------ binary details */

START_TEST(test_binary_data_kinds)
{
    fx_t fx;
    fx_start(&fx, 8);
    th_topic_create(&fx.cluster, "bin", 1);
    char *config = fx_config(&fx, "\"topic\":\"bin\","
                                  "\"content_mode\":\"binary\"");
    fx_init(&fx, config);
    free(config);
    /* "AAEC/w==" is the bytes 00 01 02 ff. */
    static const char *const jsons[] = {
        "{\"specversion\":\"1.0\",\"id\":\"evt-0\",\"source\":\"s\","
        "\"type\":\"t\",\"datacontenttype\":\"application/octet-stream\","
        "\"data_base64\":\"AAEC/w==\"}",
        "{\"specversion\":\"1.0\",\"id\":\"evt-1\",\"source\":\"s\","
        "\"type\":\"t\",\"datacontenttype\":\"text/plain\","
        "\"data\":\"hello \\\"world\\\"\",\"count\":42,\"flag\":true}",
        "{\"specversion\":\"1.0\",\"id\":\"evt-2\",\"source\":\"s\","
        "\"type\":\"t\"}",
        "{\"specversion\":\"1.0\",\"id\":\"evt-3\",\"source\":\"s\","
        "\"type\":\"t\",\"data\":\"just a json string\"}",
    };
    fx.events = calloc(4, sizeof(th_event_t));
    fx.nevents = 4;
    for (int i = 0; i < 4; i++)
        th_event_init(&fx.events[i], jsons[i], "t1", (uint64_t)i + 1);
    fx_deliver(&fx, 0, 4);
    ck_assert_uint_eq(th_wait_completed(fx.host, 4, 10000), 4);
    th_msg_t *msgs;
    size_t got = th_consume(fx.cluster.bootstraps, "bin", 1, 4, 10000, &msgs);
    check_exactly_once(&fx, msgs, got, 4, 1);
    for (size_t i = 0; i < got; i++) {
        const th_msg_t *m = &msgs[i];
        long idx = msg_event_index(m, 1);
        size_t len;
        if (idx == 0) {
            ck_assert_uint_eq(m->value_len, 4);
            ck_assert_mem_eq(m->value, "\x00\x01\x02\xff", 4);
            ck_assert_str_eq(th_msg_header(m, "content-type", NULL, NULL),
                             "application/octet-stream");
            ck_assert_ptr_null(th_msg_header(m, "ce_data_base64", NULL, NULL));
        } else if (idx == 1) {
            ck_assert_str_eq(m->value, "hello \"world\"");
            ck_assert_str_eq(th_msg_header(m, "ce_count", &len, NULL), "42");
            ck_assert_str_eq(th_msg_header(m, "ce_flag", NULL, NULL), "true");
        } else if (idx == 2) {
            ck_assert_uint_eq(m->value_len, 0);
            ck_assert_ptr_null(th_msg_header(m, "content-type", NULL, NULL));
            ck_assert_str_eq(th_msg_header(m, "ce_type", NULL, NULL), "t");
        } else {
            /* No datacontenttype means JSON: the value is JSON text. */
            ck_assert_str_eq(m->value, "\"just a json string\"");
        }
    }
    th_msgs_free(msgs, got);
    fx_stop(&fx);
}
END_TEST

START_TEST(test_binary_bad_base64_fails)
{
    fx_t fx;
    fx_start(&fx, 2);
    char *config = fx_config(&fx, "\"topic\":\"bin\","
                                  "\"content_mode\":\"binary\"");
    fx_init(&fx, config);
    free(config);
    th_event_t e;
    th_event_init(&e,
                  "{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"s\","
                  "\"type\":\"t\",\"data_base64\":\"!!!\"}",
                  "t", 1);
    char reason[256];
    ck_assert_int_eq(fx_deliver_one(&fx, &e, reason, sizeof(reason)), ES_FAIL);
    ck_assert_msg(strstr(reason, "data_base64 is not base64: character 0 is "
                                 "not base64 (byte 0x21)"),
                  "%s", reason);
    th_event_free(&e);
    fx_stop(&fx);
}
END_TEST

/* ------------------------------------------------------- keys, headers */

START_TEST(test_key_modes)
{
    static const char *const modes[] = {"partitionkey", "none", "tenant"};
    fx_t fx;
    fx_start(&fx, 30);
    th_topic_create(&fx.cluster, "keys", 2);
    char extra[128];
    snprintf(extra, sizeof(extra), "\"topic\":\"keys\",\"key\":\"%s\"",
             modes[_i]);
    char *config = fx_config(&fx, extra);
    fx_init(&fx, config);
    free(config);
    fx_make_events(&fx, 30);
    if (_i == 2) /* no tenant: no key rather than an empty one */
        for (int i = 0; i < 30; i++)
            fx.events[i].ev.tenant = NULL;
    fx_deliver(&fx, 0, 30);
    ck_assert_uint_eq(th_wait_completed(fx.host, 30, 10000), 30);
    th_msg_t *msgs;
    size_t got = th_consume(fx.cluster.bootstraps, "keys", 2, 30, 10000, &msgs);
    check_exactly_once(&fx, msgs, got, 30, 0);
    for (size_t i = 0; i < got; i++) {
        long idx = msg_event_index(&msgs[i], 0);
        if (_i == 0) {
            char want[16];
            snprintf(want, sizeof(want), "pk-%ld", idx % 3);
            ck_assert_ptr_nonnull(msgs[i].key);
            ck_assert_str_eq(msgs[i].key, want);
        } else {
            ck_assert_ptr_null(msgs[i].key);
        }
    }
    th_msgs_free(msgs, got);
    fx_stop(&fx);
}
END_TEST

START_TEST(test_keep_headers)
{
    int keep = _i;
    fx_t fx;
    fx_start(&fx, 4);
    th_topic_create(&fx.cluster, "hdrs", 1);
    char *config =
        fx_config(&fx, keep ? "\"topic\":\"hdrs\",\"keep_headers\":true,"
                              "\"content_mode\":\"binary\""
                            : "\"topic\":\"hdrs\",\"content_mode\":\"binary\"");
    fx_init(&fx, config);
    free(config);
    fx_make_events(&fx, 1);
    es_header_t *h = fx.events[0].headers;
    h[0] = (es_header_t){"traceparent", "00-abc-def-01", 13};
    h[1] = (es_header_t){"x-bin", "a\0b", 3};
    h[2] = (es_header_t){"x-null", NULL, 0};
    h[3] = (es_header_t){"content-type", "text/old", 8};
    h[4] = (es_header_t){"ce_id", "old-id", 6};
    fx.events[0].ev.headers = h;
    fx.events[0].ev.header_count = 5;
    fx_deliver(&fx, 0, 1);
    ck_assert_uint_eq(th_wait_completed(fx.host, 1, 10000), 1);
    th_msg_t *msgs;
    size_t got = th_consume(fx.cluster.bootstraps, "hdrs", 1, 1, 10000, &msgs);
    check_exactly_once(&fx, msgs, got, 1, 1);
    const th_msg_t *m = &msgs[0];
    size_t len;
    int found;
    ck_assert_str_eq(th_msg_header(m, "content-type", NULL, NULL),
                     "application/json");
    ck_assert_str_eq(th_msg_header(m, "ce_id", NULL, NULL), "evt-0");
    const char *tp = th_msg_header(m, "traceparent", NULL, &found);
    if (keep) {
        ck_assert_str_eq(tp, "00-abc-def-01");
        const char *bin = th_msg_header(m, "x-bin", &len, NULL);
        ck_assert_uint_eq(len, 3);
        ck_assert_mem_eq(bin, "a\0b", 3);
        ck_assert_ptr_null(th_msg_header(m, "x-null", NULL, &found));
        ck_assert_int_eq(found, 1);
        /* Ours win: one content-type, one ce_id. */
        ck_assert_uint_eq(m->nheaders, 9 + 3);
    } else {
        ck_assert_int_eq(found, 0);
        ck_assert_uint_eq(m->nheaders, 9);
    }
    th_msgs_free(msgs, got);
    fx_stop(&fx);
}
END_TEST

/* ------------------------------------------------------- topic template */

START_TEST(test_topic_template)
{
    fx_t fx;
    fx_start(&fx, 20);
    char *config = fx_config(&fx, "\"topic\":\"fwd.{tenant}.{type}\"");
    fx_init(&fx, config);
    free(config);
    fx_make_events(&fx, 14);
    for (int t = 0; t < TENANTS; t++) {
        char topic[128];
        snprintf(topic, sizeof(topic),
                 "fwd.tenant-%d.eventzr.marketplace.order.created.v1", t);
        th_topic_create(&fx.cluster, topic, 1);
    }
    fx_deliver(&fx, 0, 14);
    ck_assert_uint_eq(th_wait_completed(fx.host, 14, 10000), 14);
    ck_assert_uint_eq(fx.host->ok, 14);
    char topics[1024] = "";
    for (int t = 0; t < TENANTS; t++) {
        char topic[128];
        snprintf(topic, sizeof(topic),
                 "%sfwd.tenant-%d.eventzr.marketplace.order.created.v1",
                 t ? "," : "", t);
        strcat(topics, topic);
    }
    th_msg_t *msgs;
    size_t got = th_consume(fx.cluster.bootstraps, topics, 1, 14, 10000, &msgs);
    check_exactly_once(&fx, msgs, got, 14, 0);
    for (size_t i = 0; i < got; i++) {
        char want[128];
        snprintf(want, sizeof(want),
                 "fwd.tenant-%ld.eventzr.marketplace.order.created.v1",
                 msg_event_index(&msgs[i], 0) % TENANTS);
        ck_assert_str_eq(msgs[i].topic, want);
    }
    th_msgs_free(msgs, got);

    /* No tenant, or one that makes an illegal topic name: FAIL now. */
    char reason[256];
    th_event_t e;
    char *json = th_sample_json(99, TENANTS);
    th_event_init(&e, json, NULL, 15);
    ck_assert_int_eq(fx_deliver_one(&fx, &e, reason, sizeof(reason)), ES_FAIL);
    ck_assert_ptr_nonnull(strstr(reason, "no tenant"));
    e.ev.tenant = "a/b";
    ck_assert_int_eq(fx_deliver_one(&fx, &e, reason, sizeof(reason)), ES_FAIL);
    ck_assert_ptr_nonnull(strstr(reason, "not a valid Kafka topic name"));
    th_event_free(&e);
    free(json);
    fx_stop(&fx);
}
END_TEST

/* -------------------------------------------------------- fault injection */

START_TEST(test_retriable_errors_recovered)
{
    const size_t n = 500;
    fx_t fx;
    fx_start(&fx, n);
    th_topic_create(&fx.cluster, "faults", 4);
    char *config = fx_config(&fx, "\"topic\":\"faults\","
                                  "\"compression\":\"lz4\"");
    fx_init(&fx, config);
    free(config);
    fx_make_events(&fx, n);
    rd_kafka_mock_push_request_errors(
        fx.cluster.mc, TH_APIKEY_PRODUCE, 6,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION);
    fx_deliver(&fx, 0, n);
    ck_assert_uint_eq(th_wait_completed(fx.host, n, 30000), n);
    /* Errors librdkafka does not retry itself come back as RETRY. */
    fx_redeliver_retries(&fx, n);
    th_msg_t *msgs;
    size_t got =
        th_consume(fx.cluster.bootstraps, "faults", 4, n, 20000, &msgs);
    check_exactly_once(&fx, msgs, got, n, 0);
    th_msgs_free(msgs, got);
    fx_stop(&fx);
}
END_TEST

START_TEST(test_broker_down_then_up)
{
    const size_t n = 500;
    fx_t fx;
    fx_start(&fx, n);
    th_topic_create(&fx.cluster, "downup", 4);
    char *config = fx_config(&fx, "\"topic\":\"downup\"");
    fx_init(&fx, config);
    free(config);
    fx_make_events(&fx, n);
    /* A first delivery so the producer knows the cluster. */
    fx_deliver(&fx, 0, 1);
    ck_assert_uint_eq(th_wait_completed(fx.host, 1, 10000), 1);

    rd_kafka_mock_broker_set_down(fx.cluster.mc, 1);
    fx_deliver(&fx, 1, n);
    th_plugin()->flush(fx.inst); /* bounded: returns though nothing acks */
    th_sleep_ms(1500);
    ck_assert_uint_eq(th_completed(fx.host), 1); /* nothing OK before ack */

    rd_kafka_mock_broker_set_up(fx.cluster.mc, 1);
    ck_assert_uint_eq(th_wait_completed(fx.host, n, 30000), n);
    th_msg_t *msgs;
    size_t got =
        th_consume(fx.cluster.bootstraps, "downup", 4, n, 20000, &msgs);
    check_exactly_once(&fx, msgs, got, n, 0);
    th_msgs_free(msgs, got);
    fx_stop(&fx);
}
END_TEST

START_TEST(test_timeout_is_retry)
{
    const size_t n = 20;
    fx_t fx;
    fx_start(&fx, n);
    th_topic_create(&fx.cluster, "slow", 1);
    char *config = fx_config(&fx, "\"topic\":\"slow\",\"properties\":"
                                  "{\"message.timeout.ms\":800}");
    fx_init(&fx, config);
    free(config);
    fx_make_events(&fx, n);
    rd_kafka_mock_broker_set_down(fx.cluster.mc, 1);
    fx_deliver(&fx, 0, n);
    ck_assert_uint_eq(th_wait_completed(fx.host, n, 10000), n);
    ck_assert_uint_eq(fx.host->retry, n);
    ck_assert_uint_eq(fx.host->ok, 0);
    ck_assert_ptr_nonnull(strstr(fx.host->done[1].reason, "TIMED_OUT"));
    th_plugin()->destroy(fx.inst);
    fx.inst = NULL;
    ck_assert_uint_eq(th_counter(fx.host, "delivery_retry"), n);
    fx_stop(&fx);
}
END_TEST

START_TEST(test_permanent_errors_fail)
{
    fx_t fx;
    fx_start(&fx, 8);
    /* librdkafka remembers a topic's authorization failure until its next
     * metadata refresh, so each case gets its own topic. */
    th_topic_create(&fx.cluster, "perm.authz", 1);
    th_topic_create(&fx.cluster, "perm.size", 1);
    th_topic_create(&fx.cluster, "perm.ok", 1);
    char *config = fx_config(&fx, "\"topic\":\"perm.{tenant}\","
                                  "\"properties\":"
                                  "{\"message.max.bytes\":2000}");
    fx_init(&fx, config);
    free(config);
    fx_make_events(&fx, 3);
    fx.events[0].ev.tenant = "authz";
    fx.events[1].ev.tenant = "size";
    fx.events[2].ev.tenant = "ok";
    char reason[256];

    /* Broker refuses: the delivery report carries a permanent error. */
    rd_kafka_mock_push_request_errors(
        fx.cluster.mc, TH_APIKEY_PRODUCE, 1,
        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    fx_deliver(&fx, 0, 1);
    ck_assert_uint_eq(th_wait_completed(fx.host, 1, 10000), 1);
    ck_assert_int_eq(fx.host->done[1].status, ES_FAIL);
    ck_assert_ptr_nonnull(
        strstr(fx.host->done[1].reason, "TOPIC_AUTHORIZATION_FAILED"));

    rd_kafka_mock_push_request_errors(fx.cluster.mc, TH_APIKEY_PRODUCE, 1,
                                      RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    fx_deliver(&fx, 1, 2);
    ck_assert_uint_eq(th_wait_completed(fx.host, 2, 10000), 2);
    ck_assert_int_eq(fx.host->done[2].status, ES_FAIL);
    ck_assert_ptr_nonnull(
        strstr(fx.host->done[2].reason, "MSG_SIZE_TOO_LARGE"));

    /* Too large for message.max.bytes: refused before sending. */
    char *big = malloc(4096);
    snprintf(big, 4096,
             "{\"specversion\":\"1.0\",\"id\":\"evt-9\",\"source\":\"s\","
             "\"type\":\"t\",\"data\":\"%03000d\"}",
             7);
    th_event_t e;
    th_event_init(&e, big, "ok", 7);
    ck_assert_int_eq(fx_deliver_one(&fx, &e, reason, sizeof(reason)), ES_FAIL);
    ck_assert_ptr_nonnull(strstr(reason, "MSG_SIZE_TOO_LARGE"));
    th_event_free(&e);
    free(big);

    /* The next event goes through. */
    fx_deliver(&fx, 2, 3);
    ck_assert_uint_eq(th_wait_completed(fx.host, 3, 10000), 3);
    ck_assert_int_eq(fx.host->done[3].status, ES_OK);
    fx_stop(&fx);
}
END_TEST

START_TEST(test_queue_full_is_backpressure)
{
    fx_t fx;
    fx_start(&fx, 40);
    th_topic_create(&fx.cluster, "qf", 1);
    char *config = fx_config(&fx, "\"topic\":\"qf\",\"properties\":"
                                  "{\"queue.buffering.max.messages\":10}");
    fx_init(&fx, config);
    free(config);
    fx_make_events(&fx, 30);
    rd_kafka_mock_broker_set_down(fx.cluster.mc, 1);
    const es_event_t *batch[30];
    es_result_t results[30];
    for (int i = 0; i < 30; i++)
        batch[i] = &fx.events[i].ev;
    memset(results, 0, sizeof(results));
    th_plugin()->deliver(fx.inst, batch, 30, results);
    for (int i = 0; i < 30; i++) {
        if (i < 10) {
            ck_assert_int_eq(results[i].status, ES_PENDING);
        } else {
            ck_assert_int_eq(results[i].status, ES_RETRY);
            ck_assert_ptr_nonnull(strstr(results[i].reason, "queue full"));
        }
    }
    rd_kafka_mock_broker_set_up(fx.cluster.mc, 1);
    ck_assert_uint_eq(th_wait_completed(fx.host, 10, 20000), 10);
    ck_assert_uint_eq(fx.host->ok, 10);
    th_plugin()->destroy(fx.inst);
    fx.inst = NULL;
    ck_assert_uint_eq(th_counter(fx.host, "queue_full"), 20);
    fx_stop(&fx);
}
END_TEST

START_TEST(test_fatal_error_recreates_producer)
{
    const size_t n = 200;
    fx_t fx;
    fx_start(&fx, n);
    th_topic_create(&fx.cluster, "fatal", 1);
    char *config = fx_config(&fx, "\"topic\":\"fatal\"");
    fx_init(&fx, config);
    free(config);
    fx_make_events(&fx, n);
    fx_deliver(&fx, 0, 1);
    ck_assert_uint_eq(th_wait_completed(fx.host, 1, 10000), 1);
    /* An idempotence violation is fatal for the producer. */
    rd_kafka_mock_push_request_errors(
        fx.cluster.mc, TH_APIKEY_PRODUCE, 1,
        RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    fx_deliver(&fx, 1, 2);
    ck_assert_uint_eq(th_wait_completed(fx.host, 2, 10000), 2);
    /* Fatal is a permanent error class: dead-lettered, never lost. */
    ck_assert_msg(fx.host->done[2].status == ES_FAIL, "%d %s",
                  fx.host->done[2].status, fx.host->done[2].reason);
    ck_assert_ptr_nonnull(strstr(fx.host->done[2].reason, "fatal:"));
    /* Whatever the host sends next gets through a new producer. */
    for (int i = 0; i < 50 && th_log_count(fx.host, "re-creating") == 0; i++)
        th_sleep_ms(100);
    ck_assert_uint_eq(th_log_count(fx.host, "re-creating"), 1);
    size_t base = th_completed(fx.host);
    for (size_t i = 2; i < n; i++) {
        const es_event_t *b[1] = {&fx.events[i].ev};
        es_result_t r;
        th_plugin()->deliver(fx.inst, b, 1, &r);
        if (r.status == ES_RETRY) { /* still re-creating: back off */
            th_sleep_ms(50);
            i--;
            continue;
        }
        ck_assert_int_eq(r.status, ES_PENDING);
    }
    ck_assert_uint_eq(th_wait_completed(fx.host, base + n - 2, 10000),
                      base + n - 2);
    for (size_t i = 2; i < n; i++)
        ck_assert_int_eq(fx.host->done[i + 1].status, ES_OK);
    fx_stop(&fx);
}
END_TEST

/* When the log line has been counted `n` times: polled every 10 ms. */
static int64_t when_logged(th_host_t *h, const char *what, size_t n,
                           int timeout_ms)
{
    for (int64_t end = es_now_ms() + timeout_ms; es_now_ms() < end;
         th_sleep_ms(10))
        if (th_log_count(h, what) >= n)
            return es_now_ms();
    return -1;
}

/* A cluster refusing the producer an id (no IdempotentWrite ACL) makes
 * each new producer fatal at once. After the first, the re-creations wait
 * 100, 200, 400, 800 ms: from the first fatal error to the sixth at least
 * 1.5 s, where without the waits it took ~0.5 s, and the waits keep
 * growing. Once a producer is let in, the event
 * gets through. */
START_TEST(test_refused_producer_id_backs_off)
{
    fx_t fx;
    fx_start(&fx, 4);
    th_topic_create(&fx.cluster, "refused", 1);
    for (int i = 0; i < 6; i++)
        rd_kafka_mock_push_request_errors(
            fx.cluster.mc, 22 /* InitProducerId */, 1,
            RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED);
    char *config = fx_config(&fx, "\"topic\":\"refused\"");
    fx_init(&fx, config);
    free(config);
    fx_make_events(&fx, 1);
    int64_t first = when_logged(fx.host, "re-creating", 1, 10000);
    int64_t sixth = when_logged(fx.host, "re-creating", 6, 20000);
    ck_assert(first > 0 && sixth > 0);
    ck_assert_msg(sixth - first >= 1500, "%lld ms", (long long)(sixth - first));
    es_result_t r = {.status = ES_RETRY};
    for (int i = 0; i < 200 && r.status == ES_RETRY; i++) {
        const es_event_t *b[1] = {&fx.events[0].ev};
        th_plugin()->deliver(fx.inst, b, 1, &r);
        if (r.status == ES_RETRY)
            th_sleep_ms(50);
    }
    ck_assert_int_eq(r.status, ES_PENDING);
    ck_assert_uint_eq(th_wait_completed(fx.host, 1, 10000), 1);
    ck_assert_uint_eq(fx.host->ok, 1);
    ck_assert_uint_eq(th_log_count(fx.host, "re-creating"), 6);
    fx_stop(&fx);
}
END_TEST

/* ------------------------------------------------------ flush, destroy */

START_TEST(test_destroy_waits_for_acks)
{
    const size_t n = 1000;
    fx_t fx;
    fx_start(&fx, n);
    th_topic_create(&fx.cluster, "close", 2);
    char *config = fx_config(&fx, "\"topic\":\"close\","
                                  "\"flush_timeout_ms\":5000");
    fx_init(&fx, config);
    free(config);
    fx_make_events(&fx, n);
    fx_deliver(&fx, 0, n / 2);
    th_plugin()->flush(fx.inst);
    ck_assert_uint_eq(th_completed(fx.host), n / 2);
    fx_deliver(&fx, n / 2, n);
    th_plugin()->destroy(fx.inst);
    fx.inst = NULL;
    ck_assert_uint_eq(th_completed(fx.host), n);
    ck_assert_uint_eq(fx.host->ok, n);
    fx_stop(&fx);
}
END_TEST

/* ---------------------------------------------------- KAFKA_ENABLED=false */

START_TEST(test_kafka_disabled)
{
    setenv("KAFKA_ENABLED", "false", 1);
    th_host_t *h = th_host_new(8);
    char err[256];
    /* Nothing listens there: a disabled sink never connects. */
    void *inst = th_init(h,
                         "{\"brokers\":\"127.0.0.1:1\",\"topic\":\"x\","
                         "\"compression\":\"zstd\"}",
                         err, sizeof(err));
    ck_assert_msg(inst != NULL, "%s", err);
    th_event_t e[3];
    const es_event_t *batch[3];
    for (int i = 0; i < 3; i++) {
        char *json = th_sample_json(i, 2);
        th_event_init(&e[i], json, "t", (uint64_t)i + 1);
        free(json);
        batch[i] = &e[i].ev;
    }
    for (int round = 0; round < 2; round++) {
        es_result_t r[3];
        memset(r, 0, sizeof(r));
        th_plugin()->deliver(inst, batch, 3, r);
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq(r[i].status, ES_OK);
    }
    th_plugin()->flush(inst);
    th_plugin()->destroy(inst);
    ck_assert_uint_eq(th_counter(h, "publish_skipped"), 6);
    ck_assert_uint_eq(th_log_count(h, "KAFKA_ENABLED=false: kafka"), 1);
    ck_assert_uint_eq(h->completed, 0);
    for (int i = 0; i < 3; i++)
        th_event_free(&e[i]);
    th_host_free(h);
    unsetenv("KAFKA_ENABLED");
}
END_TEST

/* ----------------------------------------------------------------- config */

START_TEST(test_config_errors)
{
    static const struct {
        const char *config;
        const char *expect;
    } cases[] = {
        {"{\"topic\":\"x\"}", "brokers"},
        {"{\"brokers\":\"h:1\"}", "topic"},
        {"{\"brokers\":\"h:1\",\"topic\":\"x\",\"bogus\":1}",
         "unknown key \"bogus\""},
        {"{\"brokers\":\"h:1\",\"topic\":\"x\",\"compression\":\"brotli\"}",
         "compression: must be one of none, gzip, lz4, snappy, zstd"},
        {"{\"brokers\":\"h:1\",\"topic\":\"x\",\"key\":\"id\"}", "key:"},
        {"{\"brokers\":\"h:1\",\"topic\":\"x\",\"content_mode\":\"avro\"}",
         "content_mode:"},
        {"{\"brokers\":\"h:1\",\"topic\":\"x\",\"keep_headers\":\"yes\"}",
         "keep_headers:"},
        {"{\"brokers\":\"h:1\",\"topic\":\"a/b\"}", "topic:"},
        {"{\"brokers\":\"h:1\",\"topic\":\"x.{id}\"}",
         "unknown placeholder {id}"},
        {"{\"brokers\":\"h:1\",\"topic\":\"x.{type\"}", "unterminated"},
        {"{\"brokers\":\"h:1\",\"topic\":\"x\",\"properties\":"
         "{\"acks\":\"1\"}}",
         "properties.acks: must be all"},
        {"{\"brokers\":\"h:1\",\"topic\":\"x\",\"properties\":"
         "{\"enable.idempotence\":false}}",
         "properties.enable.idempotence"},
        {"{\"brokers\":\"h:1\",\"topic\":\"x\",\"properties\":"
         "{\"compression.type\":\"gzip\"}}",
         "\"compression\" key"},
        {"{\"brokers\":\"h:1\",\"topic\":\"x\",\"properties\":"
         "{\"no.such.property\":\"1\"}}",
         "properties.no.such.property:"},
        {"{\"brokers\":\"h:1\",\"topic\":\"x\",\"properties\":"
         "{\"sasl.password\":{}}}",
         "properties.sasl.password: must be"},
        {"{\"brokers\":\"h:1\",\"topic\":\"x\",\"flush_timeout_ms\":-1}",
         "flush_timeout_ms:"},
    };
    th_host_t *h = th_host_new(1);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[512];
        void *inst = th_init(h, cases[i].config, err, sizeof(err));
        ck_assert_msg(inst == NULL, "accepted %s", cases[i].config);
        ck_assert_msg(strstr(err, cases[i].expect) != NULL,
                      "%s: error \"%s\" lacks \"%s\"", cases[i].config, err,
                      cases[i].expect);
    }
    /* A rejected secret is never echoed. */
    char err[512];
    ck_assert_ptr_null(th_init(h,
                               "{\"brokers\":\"h:1\",\"topic\":\"x\","
                               "\"properties\":{\"sasl.mechanism\":"
                               "\"PLAIN\",\"ssl.key.password\":\"hunter2\","
                               "\"sasl.password\":\"hunter2\",\"nope\":1}}",
                               err, sizeof(err)));
    ck_assert_ptr_null(strstr(err, "hunter2"));
    for (size_t i = 0; i < h->nlogs; i++)
        ck_assert_ptr_null(strstr(h->logs[i], "hunter2"));
    th_host_free(h);
}
END_TEST

static Suite *kafka_sink_suite(void)
{
    Suite *s = suite_create("kafka_sink");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_kafka_disabled);
    suite_add_tcase(s, tc);

    tc = tcase_create("publish");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_modes_and_compression, 0, 10);
    tcase_add_test(tc, test_binary_data_kinds);
    tcase_add_test(tc, test_binary_bad_base64_fails);
    tcase_add_loop_test(tc, test_key_modes, 0, 3);
    tcase_add_loop_test(tc, test_keep_headers, 0, 2);
    tcase_add_test(tc, test_topic_template);
    suite_add_tcase(s, tc);

    tc = tcase_create("faults");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_retriable_errors_recovered);
    tcase_add_test(tc, test_broker_down_then_up);
    tcase_add_test(tc, test_timeout_is_retry);
    tcase_add_test(tc, test_permanent_errors_fail);
    tcase_add_test(tc, test_queue_full_is_backpressure);
    tcase_add_test(tc, test_destroy_waits_for_acks);
    tcase_add_test(tc, test_fatal_error_recreates_producer);
    tcase_add_test(tc, test_refused_producer_id_backs_off);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(kafka_sink_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
