/* Test harness for the kafka sink (see kafka_sink_harness.h). */
#include "kafka_sink_harness.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

/* ------------------------------------------------------------- fake host */

static void th_log(const es_host_t *host, es_log_level_t level, const char *fmt,
                   ...)
{
    th_host_t *h = (th_host_t *)host;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&h->mu);
    char **logs = realloc(h->logs, (h->nlogs + 1) * sizeof(*logs));
    if (logs) {
        h->logs = logs;
        h->logs[h->nlogs++] = strdup(buf);
    }
    pthread_mutex_unlock(&h->mu);
    if (getenv("TH_VERBOSE"))
        fprintf(stderr, "[%d] %s\n", (int)level, buf);
}

static void th_counter_add(const es_host_t *host, const char *name,
                           uint64_t delta)
{
    th_host_t *h = (th_host_t *)host;
    pthread_mutex_lock(&h->mu);
    size_t i;
    for (i = 0; i < h->ncounters; i++)
        if (strcmp(h->counters[i].name, name) == 0)
            break;
    if (i == h->ncounters && i < 32) {
        snprintf(h->counters[i].name, sizeof(h->counters[i].name), "%s", name);
        h->counters[i].value = 0;
        h->ncounters++;
    }
    if (i < 32)
        h->counters[i].value += delta;
    pthread_mutex_unlock(&h->mu);
}

static void th_complete(const es_host_t *host, uint64_t token,
                        es_status_t status, const char *reason)
{
    th_host_t *h = (th_host_t *)host;
    pthread_mutex_lock(&h->mu);
    if (token == 0 || token >= h->cap) {
        h->bad++;
    } else {
        th_done_t *d = &h->done[token];
        if (d->count++ > 0)
            h->bad++; /* completed twice: a plugin bug */
        d->status = status;
        snprintf(d->reason, sizeof(d->reason), "%s", reason ? reason : "");
        h->completed++;
        if (status == ES_OK)
            h->ok++;
        else if (status == ES_RETRY)
            h->retry++;
        else if (status == ES_FAIL)
            h->fail++;
        else
            h->bad++;
    }
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static int th_emit(const es_host_t *host, uint64_t parent, const char *topic,
                   const void *key, size_t key_len, const char *json,
                   size_t json_len, char *errstr, size_t errstr_size)
{
    snprintf(errstr, errstr_size, "emit is not for sinks");
    return -1;
}

th_host_t *th_host_new(size_t max_tokens)
{
    th_host_t *h = calloc(1, sizeof(*h));
    ck_assert_ptr_nonnull(h);
    h->cap = max_tokens + 1;
    h->done = calloc(h->cap, sizeof(*h->done));
    ck_assert_ptr_nonnull(h->done);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->host.abi = ES_PLUGIN_ABI_VERSION;
    h->host.size = sizeof(es_host_t);
    h->host.instance_name = "kafka-test";
    h->host.state_dir = "/tmp";
    h->host.log = th_log;
    h->host.counter_add = th_counter_add;
    h->host.complete = th_complete;
    h->host.emit = th_emit;
    h->host.free = free;
    return h;
}

void th_host_free(th_host_t *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->nlogs; i++)
        free(h->logs[i]);
    free(h->logs);
    free(h->done);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

size_t th_wait_completed(th_host_t *h, size_t n, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&h->mu);
    while (h->completed < n)
        if (pthread_cond_timedwait(&h->cv, &h->mu, &until) == ETIMEDOUT)
            break;
    size_t done = h->completed;
    pthread_mutex_unlock(&h->mu);
    return done;
}

size_t th_completed(th_host_t *h)
{
    pthread_mutex_lock(&h->mu);
    size_t n = h->completed;
    pthread_mutex_unlock(&h->mu);
    return n;
}

uint64_t th_counter(th_host_t *h, const char *name)
{
    uint64_t v = 0;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->ncounters; i++)
        if (strcmp(h->counters[i].name, name) == 0)
            v = h->counters[i].value;
    pthread_mutex_unlock(&h->mu);
    return v;
}

size_t th_log_count(th_host_t *h, const char *substr)
{
    size_t n = 0;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->nlogs; i++)
        if (h->logs[i] && strstr(h->logs[i], substr))
            n++;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* ---------------------------------------------------------------- plugin */

const es_plugin_t *th_plugin(void)
{
    static const es_plugin_t *plugin;
    if (plugin)
        return plugin;
    char path[1024];
    const char *dir = getenv("ES_BUILD_DIR");
    snprintf(path, sizeof(path), "%s/build-plugins/kafka.so",
             dir ? dir : ES_TOP_BUILDDIR);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        snprintf(path, sizeof(path), "%s/plugins/sinks/kafka/.libs/kafka.so",
                 dir ? dir : ES_TOP_BUILDDIR);
        dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    ck_assert_msg(dl != NULL, "dlopen %s: %s", path, dlerror());
    es_plugin_entry_fn entry =
        (es_plugin_entry_fn)dlsym(dl, ES_PLUGIN_ENTRY_SYMBOL);
    ck_assert_ptr_nonnull(entry);
    plugin = entry(ES_PLUGIN_ABI_VERSION);
    ck_assert_ptr_nonnull(plugin);
    ck_assert_uint_eq(plugin->abi, ES_PLUGIN_ABI_VERSION);
    ck_assert_str_eq(plugin->name, "kafka");
    ck_assert_int_eq(plugin->kind, ES_KIND_SINK);
    return plugin;
}

void *th_init(th_host_t *h, const char *config_json, char *errstr,
              size_t errstr_size)
{
    cJSON *config = cJSON_Parse(config_json);
    ck_assert_msg(config != NULL, "bad test config: %s", config_json);
    void *inst = NULL;
    errstr[0] = '\0';
    int rc = th_plugin()->init(&h->host, config, &inst, errstr, errstr_size);
    cJSON_Delete(config);
    return rc == 0 ? inst : NULL;
}

/* ---------------------------------------------------------- mock cluster */

void th_cluster_start(th_cluster_t *c, int brokers)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
    c->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    ck_assert_msg(c->rk != NULL, "%s", err);
    c->mc = rd_kafka_mock_cluster_new(c->rk, brokers);
    ck_assert_ptr_nonnull(c->mc);
    snprintf(c->bootstraps, sizeof(c->bootstraps), "%s",
             rd_kafka_mock_cluster_bootstraps(c->mc));
}

void th_cluster_stop(th_cluster_t *c)
{
    if (c->mc)
        rd_kafka_mock_cluster_destroy(c->mc);
    if (c->rk)
        rd_kafka_destroy(c->rk);
    memset(c, 0, sizeof(*c));
}

void th_topic_create(th_cluster_t *c, const char *topic, int partitions)
{
    ck_assert_int_eq(rd_kafka_mock_topic_create(c->mc, topic, partitions, 1),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* ---------------------------------------------------------------- events */

static const char *th_str(const cJSON *ce, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ce, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

void th_event_init(th_event_t *e, const char *json, const char *tenant,
                   uint64_t token)
{
    memset(e, 0, sizeof(*e));
    e->json = strdup(json);
    e->ce = cJSON_Parse(json);
    ck_assert_msg(e->ce != NULL, "bad test event: %s", json);
    e->ev.json = e->json;
    e->ev.json_len = strlen(json);
    e->ev.ce = e->ce;
    e->ev.id = th_str(e->ce, "id");
    e->ev.source = th_str(e->ce, "source");
    e->ev.type = th_str(e->ce, "type");
    e->ev.subject = th_str(e->ce, "subject");
    e->ev.time = th_str(e->ce, "time");
    e->ev.tenant = tenant;
    e->ev.topic = "eventzr.marketplace.order.created.v1";
    e->ev.partition = 0;
    e->ev.offset = (int64_t)token;
    e->ev.timestamp_ms = -1;
    e->ev.route = "orders";
    e->ev.token = token;
    e->ev.attempt = 1;
}

void th_event_free(th_event_t *e)
{
    cJSON_Delete(e->ce);
    free(e->json);
    memset(e, 0, sizeof(*e));
}

char *th_sample_json(int i, int tenants)
{
    char *buf = malloc(1024);
    ck_assert_ptr_nonnull(buf);
    snprintf(buf, 1024,
             "{\"specversion\":\"1.0\",\"id\":\"evt-%d\","
             "\"type\":\"eventzr.marketplace.order.created.v1\","
             "\"source\":\"marketplace-svc\","
             "\"time\":\"2026-03-02T12:00:00.000Z\","
             "\"datacontenttype\":\"application/json\","
             "\"subject\":\"order:%d\",\"tenantid\":\"tenant-%d\","
             "\"partitionkey\":\"pk-%d\",\"data\":{\"orderId\":%d,"
             "\"amount\":12345678901234567890,\"price\": 1.10,"
             "\"note\":\"caf\\u00e9 \\\"q\\\" {[\",\"tags\":[1,2,{\"a\":"
             "null}]}}",
             i, i, i % tenants, i % 3, i);
    return buf;
}

/* -------------------------------------------------------------- consumer */

static char *th_dup(const void *p, size_t n)
{
    if (!p)
        return NULL;
    char *d = malloc(n + 1);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static void th_msg_fill(th_msg_t *m, const rd_kafka_message_t *rm)
{
    memset(m, 0, sizeof(*m));
    m->topic = strdup(rd_kafka_topic_name(rm->rkt));
    m->partition = rm->partition;
    m->key = th_dup(rm->key, rm->key_len);
    m->key_len = rm->key_len;
    m->value = th_dup(rm->payload ? rm->payload : "", rm->len);
    m->value_len = rm->len;
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(rm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    size_t n = rd_kafka_header_cnt(hdrs);
    m->hnames = calloc(n + 1, sizeof(char *));
    m->hvalues = calloc(n + 1, sizeof(char *));
    m->hlens = calloc(n + 1, sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        const char *name;
        const void *val;
        size_t len;
        if (rd_kafka_header_get_all(hdrs, i, &name, &val, &len))
            break;
        m->hnames[i] = strdup(name);
        m->hvalues[i] = th_dup(val, len);
        m->hlens[i] = len;
        m->nheaders++;
    }
}

size_t th_consume(const char *bootstraps, const char *topic, int partitions,
                  size_t want, int timeout_ms, th_msg_t **out)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "kafka-sink-test", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "20", err, sizeof(err));
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    ck_assert_msg(rk != NULL, "%s", err);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(partitions);
    char *topics = strdup(topic), *save = NULL;
    for (char *t = strtok_r(topics, ",", &save); t;
         t = strtok_r(NULL, ",", &save))
        for (int p = 0; p < partitions; p++)
            rd_kafka_topic_partition_list_add(parts, t, p)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
    free(topics);
    ck_assert_int_eq(rd_kafka_assign(rk, parts), 0);
    rd_kafka_topic_partition_list_destroy(parts);

    size_t n = 0, cap = want + 16;
    th_msg_t *msgs = calloc(cap, sizeof(*msgs));
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long extra_until = -1;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long el = (now.tv_sec - start.tv_sec) * 1000 +
                  (now.tv_nsec - start.tv_nsec) / 1000000;
        if (el > timeout_ms || (extra_until >= 0 && el > extra_until))
            break;
        rd_kafka_message_t *rm = rd_kafka_consumer_poll(rk, 50);
        if (!rm)
            continue;
        if (!rm->err) {
            if (n == cap) {
                cap *= 2;
                msgs = realloc(msgs, cap * sizeof(*msgs));
            }
            th_msg_fill(&msgs[n++], rm);
            if (n >= want && extra_until < 0)
                extra_until = el + 150;
        }
        rd_kafka_message_destroy(rm);
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    double t_read =
        (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (getenv("TH_DEBUG"))
        fprintf(stderr, "consume %zu: read %.3f close %.3f\n", n, t_read,
                (now.tv_sec - start.tv_sec) +
                    (now.tv_nsec - start.tv_nsec) / 1e9 - t_read);
    *out = msgs;
    return n;
}

void th_msgs_free(th_msg_t *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        th_msg_t *m = &msgs[i];
        free(m->topic);
        free(m->key);
        free(m->value);
        for (size_t j = 0; j < m->nheaders; j++) {
            free(m->hnames[j]);
            free(m->hvalues[j]);
        }
        free(m->hnames);
        free(m->hvalues);
        free(m->hlens);
    }
    free(msgs);
}

const char *th_msg_header(const th_msg_t *m, const char *name, size_t *len,
                          int *found)
{
    if (found)
        *found = 0;
    for (size_t i = 0; i < m->nheaders; i++) {
        if (strcmp(m->hnames[i], name) == 0) {
            if (found)
                *found = 1;
            if (len)
                *len = m->hlens[i];
            return m->hvalues[i];
        }
    }
    return NULL;
}

void th_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
