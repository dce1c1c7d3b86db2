#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kafka.h"
#include "internal/es_file_check.h"
#include <librdkafka/rdkafka_mock.h>
#include "log.h"
#include "metrics.h"
#include "msk_iam.h"

/* MSK IAM token signer shared by every client that switches it on; made on
 * first use, freed by es_kafka_global_cleanup() after the last client. */
static es_msk_iam_t *msk_signer;

int es_kafka_conf_set(rd_kafka_conf_t *conf, const char *name,
                      const char *value, char *errstr, size_t errstr_size)
{
    char err[512];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof err) ==
        RD_KAFKA_CONF_OK)
        return 0;
    snprintf(errstr, errstr_size, "kafka property \"%s\": %s", name, err);
    return -1;
}

/* Applies props to conf, the MSK IAM ones (sasl.oauthbearer.method=
 * aws_msk_iam, aws_msk_iam(.region): ours, not librdkafka's) to *msk: NULL,
 * or the property refused, with what is wrong in err. */
static const cJSON *apply_props(rd_kafka_conf_t *conf, const cJSON *props,
                                es_msk_iam_opts_t *msk, char *err, size_t n)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, props)
    {
        int r = es_msk_iam_opts_set(msk, p->string, p->valuestring, err, n);
        if (r < 0 ||
            (r == 0 && rd_kafka_conf_set(conf, p->string, p->valuestring, err,
                                         n) != RD_KAFKA_CONF_OK))
            return p;
    }
    return NULL;
}

/* Files librdkafka reads only when a client is made (--check-config
 * makes none): checked here, so a typo names the property. */
static const cJSON *unreadable_file_prop(const cJSON *props, char *err,
                                         size_t n)
{
    static const char *const file_props[] = {
        "ssl.ca.location",  "ssl.crl.location",      "ssl.certificate.location",
        "ssl.key.location", "ssl.keystore.location", "sasl.kerberos.keytab"};
    const cJSON *p;
    cJSON_ArrayForEach(p, props)
    {
        for (size_t i = 0; i < sizeof file_props / sizeof file_props[0]; i++) {
            if (strcmp(p->string, file_props[i]) || !cJSON_IsString(p) ||
                !strcmp(p->valuestring, "probe"))
                continue;
            int e = es_file_unreadable(p->valuestring);
            /* ssl.ca.location may name a directory of CA certificates */
            if (e == EISDIR && !strcmp(file_props[i], "ssl.ca.location"))
                e = es_dir_unreadable(p->valuestring);
            if (e) {
                snprintf(err, n, "%s: %s", p->valuestring, strerror(e));
                return p;
            }
        }
    }
    return NULL;
}

int es_kafka_props_check(const cJSON *props, const char *file, char *errstr,
                         size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    es_msk_iam_opts_t msk = {0};
    char err[512];
    const cJSON *bad = apply_props(conf, props, &msk, err, sizeof err);
    if (!bad)
        bad = unreadable_file_prop(props, err, sizeof err);
    if (bad)
        snprintf(errstr, errstr_size, "%s: kafka.properties.%s: %s", file,
                 bad->string, err);
    rd_kafka_conf_destroy(conf);
    return bad ? -1 : 0;
}

/* librdkafka's own log lines go through ours, at matching levels. The
 * warning that a shared property does not apply to a producer (or a
 * consumer) is expected: one kafka.properties object serves both. A
 * broker connection's failure ("FAIL") and a fatal error ("FATAL") are also
 * reported to on_kafka_error, which logs each once. */
static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac,
                         const char *buf)
{
    es_log_level_t l = level <= 3   ? ES_LOG_ERROR
                       : level == 4 ? ES_LOG_WARN
                       : level <= 6 ? ES_LOG_INFO
                                    : ES_LOG_DEBUG;
    if ((!strcmp(fac, "CONFWARN") && strstr(buf, "will be ignored by this")) ||
        !strcmp(fac, "FAIL") || !strcmp(fac, "FATAL"))
        l = ES_LOG_DEBUG;
    es_log(l, rd_kafka_name(rk), "%s: %s", fac, buf);
}

/* Without it librdkafka logs each error itself, a second line beside its
 * "FAIL" one. Errors here are ones the client retries on its own (a broker
 * down, a timeout): warnings. A fatal one leaves the handle unusable. */
static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason,
                           void *opaque)
{
    (void)opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof why);
        es_log(ES_LOG_ERROR, rd_kafka_name(rk), "fatal error: %s", why);
        return;
    }
    es_log(ES_LOG_WARN, rd_kafka_name(rk), "%s: %s", rd_kafka_err2name(err),
           reason);
}

rd_kafka_conf_t *es_kafka_conf_new(const char *brokers, const cJSON *props,
                                   char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, on_kafka_log);
    rd_kafka_conf_set_error_cb(conf, on_kafka_error);
    if (es_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr,
                          errstr_size))
        goto fail;
    es_msk_iam_opts_t msk = {0};
    char err[512];
    const cJSON *bad = apply_props(conf, props, &msk, err, sizeof err);
    if (bad) {
        snprintf(errstr, errstr_size, "kafka property \"%s\": %s", bad->string,
                 err);
        goto fail;
    }
    if (msk.enabled) {
        if (!msk_signer &&
            !(msk_signer = es_msk_iam_new(NULL, errstr, errstr_size)))
            goto fail;
        /* missing credentials fail here, at startup, naming the sources */
        if (es_msk_iam_configure(conf, &msk, msk_signer, errstr, errstr_size) ||
            es_msk_iam_check(conf, errstr, errstr_size))
            goto fail;
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

int es_kafka_enabled_from_env(void)
{
    const char *v = getenv("KAFKA_ENABLED");
    if (!v || !*v)
        return 1;
    return !strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes");
}

/* ------------------------------------------------------------ mock broker */

struct es_mock_broker_s {
    rd_kafka_t *rk; /* the mock cluster lives inside this handle */
    rd_kafka_mock_cluster_t *mcluster;
    int brokers;
};

es_mock_broker_t *es_mock_broker_start(int brokers, char *errstr,
                                       size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* No bootstrap: this handle only hosts the cluster. */
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!rk)
        return NULL;
    es_mock_broker_t *b = calloc(1, sizeof *b);
    b->rk = rk;
    b->mcluster = rd_kafka_mock_cluster_new(rk, brokers);
    b->brokers = brokers;
    if (!b->mcluster) {
        snprintf(errstr, errstr_size, "cannot start the mock cluster");
        es_mock_broker_stop(b);
        return NULL;
    }
    return b;
}

const char *es_mock_broker_bootstrap(const es_mock_broker_t *b)
{
    return rd_kafka_mock_cluster_bootstraps(b->mcluster);
}

int es_mock_broker_create_topic(es_mock_broker_t *b, const char *topic,
                                int partitions)
{
    return rd_kafka_mock_topic_create(b->mcluster, topic, partitions, 1) ==
                   RD_KAFKA_RESP_ERR_NO_ERROR
               ? 0
               : -1;
}

int es_mock_broker_set_down(es_mock_broker_t *b, int down)
{
    /* The mock cluster numbers its brokers from 1. */
    for (int id = 1; id <= b->brokers; id++) {
        rd_kafka_resp_err_t err =
            down ? rd_kafka_mock_broker_set_down(b->mcluster, id)
                 : rd_kafka_mock_broker_set_up(b->mcluster, id);
        if (err)
            return -1;
    }
    return 0;
}

/* The protocol's API keys, by the names Kafka's documentation uses. */
static int api_key_named(const char *name)
{
    static const struct {
        const char *name;
        int key;
    } apis[] = {
        {"Produce", 0},          {"Fetch", 1},        {"ListOffsets", 2},
        {"Metadata", 3},         {"OffsetCommit", 8}, {"OffsetFetch", 9},
        {"FindCoordinator", 10}, {"JoinGroup", 11},   {"Heartbeat", 12},
        {"LeaveGroup", 13},      {"SyncGroup", 14},   {"ApiVersions", 18},
        {"InitProducerId", 22}};
    for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++)
        if (!strcmp(apis[i].name, name))
            return apis[i].key;
    return -1;
}

static int error_code_named(const char *name, rd_kafka_resp_err_t *err)
{
    const struct rd_kafka_err_desc *descs;
    size_t n;
    rd_kafka_get_err_descs(&descs, &n);
    for (size_t i = 0; i < n; i++)
        if (descs[i].name && !strcmp(descs[i].name, name)) {
            *err = descs[i].code;
            return 0;
        }
    return -1;
}

int es_mock_broker_push_errors(es_mock_broker_t *b, const char *api,
                               const char *error, int count, int delay_ms,
                               char *errstr, size_t errstr_size)
{
    int key = api_key_named(api);
    rd_kafka_resp_err_t err;
    if (key < 0) {
        snprintf(errstr, errstr_size, "unknown protocol API \"%s\"", api);
        return -1;
    }
    if (error_code_named(error, &err) || err <= 0) {
        snprintf(errstr, errstr_size, "unknown Kafka error \"%s\"", error);
        return -1;
    }
    /* Per broker only: the mock checks the cluster's errors only when a
     * broker never had any for that API, so the two kinds do not mix. */
    for (int i = 0; i < count; i++)
        for (int id = 1; id <= b->brokers; id++)
            rd_kafka_mock_broker_push_request_error_rtts(
                b->mcluster, id, (int16_t)key, 1, err, delay_ms);
    return 0;
}

void es_mock_broker_stop(es_mock_broker_t *b)
{
    if (!b)
        return;
    if (b->mcluster)
        rd_kafka_mock_cluster_destroy(b->mcluster);
    rd_kafka_destroy(b->rk);
    free(b);
}

/* --------------------------------------------------------------- producer */

struct es_producer_s {
    rd_kafka_t *rk; /* NULL when publishing is disabled */
    /* Held to read rk (senders on any thread), and to swap it. */
    pthread_rwlock_t swap;
    es_producer_dr_fn dr;
    void *ud;
    int warned_disabled;
    es_counter_t *skipped;
    char *brokers; /* what a replacement handle is made from */
    cJSON *props;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    es_producer_t *p = opaque;
    p->dr(m->_private, m->err, p->ud);
}

static rd_kafka_t *producer_handle_new(es_producer_t *p, char *errstr,
                                       size_t errstr_size)
{
    rd_kafka_conf_t *conf =
        es_kafka_conf_new(p->brokers, p->props, errstr, errstr_size);
    if (!conf)
        return NULL;
    /* The host producer must never lose a dead letter or an emit. */
    if (es_kafka_conf_set(conf, "enable.idempotence", "true", errstr,
                          errstr_size) ||
        es_kafka_conf_set(conf, "acks", "all", errstr, errstr_size) ||
        es_kafka_conf_set(conf, "linger.ms", "5", errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!rk) { /* rd_kafka_new frees conf only on success */
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (es_msk_iam_start(rk, errstr, errstr_size)) {
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

static void producer_free(es_producer_t *p)
{
    pthread_rwlock_destroy(&p->swap);
    free(p->brokers);
    cJSON_Delete(p->props);
    free(p);
}

es_producer_t *es_producer_new(const char *brokers, const cJSON *props,
                               int enabled, es_producer_dr_fn dr, void *ud,
                               char *errstr, size_t errstr_size)
{
    es_producer_t *p = calloc(1, sizeof *p);
    pthread_rwlock_init(&p->swap, NULL);
    p->dr = dr;
    p->ud = ud;
    p->skipped = es_metrics_counter("es_kafka_publish_skipped_total", "");
    if (!enabled)
        return p;
    p->brokers = strdup(brokers);
    p->props = props ? cJSON_Duplicate(props, 1) : NULL;
    p->rk = producer_handle_new(p, errstr, errstr_size);
    if (!p->rk) {
        producer_free(p);
        return NULL;
    }
    return p;
}

int es_producer_fatal(es_producer_t *p, char *why, size_t why_size)
{
    return p->rk && rd_kafka_fatal_error(p->rk, why, why_size) ? 1 : 0;
}

rd_kafka_t *es_producer_replace(es_producer_t *p, char *errstr,
                                size_t errstr_size)
{
    rd_kafka_t *fresh = producer_handle_new(p, errstr, errstr_size);
    if (!fresh)
        return NULL;
    pthread_rwlock_wrlock(&p->swap);
    rd_kafka_t *old = p->rk;
    p->rk = fresh;
    pthread_rwlock_unlock(&p->swap);
    return old;
}

/* After a fatal error the handle fails what it holds by itself; the purge
 * makes sure, so every record gets its report (and is sent again by its
 * owner, on the new handle) before the handle goes. */
void es_producer_retire(rd_kafka_t *old)
{
    rd_kafka_purge(old, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 50 && rd_kafka_outq_len(old) > 0; i++)
        rd_kafka_poll(old, 100);
    if (rd_kafka_outq_len(old) > 0)
        es_warn("host producer: %d record(s) of the replaced handle had no "
                "report in 5 s; their events are redelivered after a restart",
                rd_kafka_outq_len(old));
    rd_kafka_destroy(old);
}

int es_producer_send(es_producer_t *p, const char *topic, const void *key,
                     size_t key_len, const void *value, size_t value_len,
                     rd_kafka_headers_t *headers, void *opaque, char *errstr,
                     size_t errstr_size)
{
    if (!p->rk) {
        if (headers)
            rd_kafka_headers_destroy(headers);
        es_counter_add(p->skipped, 1);
        if (!p->warned_disabled++)
            es_warn("KAFKA_ENABLED=false: Kafka publishing is off; emitted "
                    "events and dead letters are skipped (counted in "
                    "es_kafka_publish_skipped_total)");
        return 1;
    }
    pthread_rwlock_rdlock(&p->swap);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_VALUE((void *)value, value_len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
        RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    pthread_rwlock_unlock(&p->swap);
    if (err) {
        if (headers)
            rd_kafka_headers_destroy(headers);
        snprintf(errstr, errstr_size, "produce to %s: %s", topic,
                 rd_kafka_err2str(err));
        return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? -2 : -1;
    }
    return 0;
}

int es_producer_poll(es_producer_t *p)
{
    return p->rk ? rd_kafka_poll(p->rk, 0) : 0;
}

rd_kafka_t *es_producer_handle(es_producer_t *p)
{
    return p->rk;
}

int es_producer_enabled(const es_producer_t *p)
{
    return p->rk != NULL;
}

void es_producer_destroy(es_producer_t *p, int timeout_ms)
{
    if (!p)
        return;
    if (p->rk) {
        if (rd_kafka_flush(p->rk, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
            es_warn("host producer: %d record(s) not acknowledged at exit",
                    rd_kafka_outq_len(p->rk));
        rd_kafka_destroy(p->rk);
    }
    producer_free(p);
}

void es_kafka_global_cleanup(void)
{
    es_msk_iam_destroy(msk_signer);
    msk_signer = NULL;
}
