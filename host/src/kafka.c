#include <errno.h>
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
 * broker connection's failure ("FAIL") is also reported to on_kafka_error,
 * which logs it once. */
static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac,
                         const char *buf)
{
    es_log_level_t l = level <= 3   ? ES_LOG_ERROR
                       : level == 4 ? ES_LOG_WARN
                       : level <= 6 ? ES_LOG_INFO
                                    : ES_LOG_DEBUG;
    if ((!strcmp(fac, "CONFWARN") && strstr(buf, "will be ignored by this")) ||
        !strcmp(fac, "FAIL"))
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
    es_producer_dr_fn dr;
    void *ud;
    int warned_disabled;
    es_counter_t *skipped;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    es_producer_t *p = opaque;
    p->dr(m->_private, m->err, p->ud);
}

es_producer_t *es_producer_new(const char *brokers, const cJSON *props,
                               int enabled, es_producer_dr_fn dr, void *ud,
                               char *errstr, size_t errstr_size)
{
    es_producer_t *p = calloc(1, sizeof *p);
    p->dr = dr;
    p->ud = ud;
    p->skipped = es_metrics_counter("es_kafka_publish_skipped_total", "");
    if (!enabled)
        return p;
    rd_kafka_conf_t *conf =
        es_kafka_conf_new(brokers, props, errstr, errstr_size);
    if (!conf)
        goto fail;
    /* The host producer must never lose a dead letter or an emit. */
    if (es_kafka_conf_set(conf, "enable.idempotence", "true", errstr,
                          errstr_size) ||
        es_kafka_conf_set(conf, "acks", "all", errstr, errstr_size) ||
        es_kafka_conf_set(conf, "linger.ms", "5", errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, p);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!p->rk) { /* rd_kafka_new frees conf only on success */
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    if (es_msk_iam_start(p->rk, errstr, errstr_size)) {
        rd_kafka_destroy(p->rk);
        goto fail;
    }
    return p;
fail:
    free(p);
    return NULL;
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
    rd_kafka_resp_err_t err = rd_kafka_producev(
        p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_VALUE((void *)value, value_len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
        RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
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
    free(p);
}

void es_kafka_global_cleanup(void)
{
    es_msk_iam_destroy(msk_signer);
    msk_signer = NULL;
}
