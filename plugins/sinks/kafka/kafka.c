/*
 * kafka sink: re-publishes events to a Kafka cluster (which may differ from
 * the source cluster) through an idempotent librdkafka producer with
 * acks=all. deliver() never blocks: each event is produced with its token as
 * the message opaque and answered ES_PENDING; a thread the instance owns
 * polls the producer and completes each event from its delivery report, so
 * ES_OK means the broker acknowledged it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>

#include <eventstream/plugin.h>

#include "binding.h"
#include "msk_iam.h"
#include "internal/es_clock.h"
#include "internal/es_json_int.h"

_Static_assert(sizeof(void *) >= sizeof(uint64_t),
               "tokens travel as the librdkafka message opaque");

typedef enum ks_mode_e { KS_STRUCTURED = 0, KS_BINARY } ks_mode_t;
typedef enum ks_key_e {
    KS_KEY_TENANT = 0,
    KS_KEY_PARTITIONKEY,
    KS_KEY_NONE
} ks_key_t;

#define KS_STRUCTURED_CT "application/cloudevents+json"

typedef struct ks_sink_s {
    const es_host_t *host;

    /* configuration */
    char *brokers;
    ks_template_t topic;
    char *topic_src;
    int compression;
    ks_key_t key;
    ks_mode_t mode;
    int keep_headers;
    int flush_timeout_ms;
    int close_timeout_ms;
    const cJSON *properties;    /* borrowed during init only */
    es_msk_iam_opts_t msk_opts; /* MSK IAM switch, from `properties` */
    es_msk_iam_t *msk;          /* its token signer, when switched on */

    /* KAFKA_ENABLED=false: publishes are counted no-ops */
    int disabled;
    atomic_int disabled_logged;

    /* producer; swapped by the poller after a fatal error */
    pthread_mutex_t lock;
    rd_kafka_conf_t *conf; /* template for re-creating the producer */
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt; /* fixed topic only */
    pthread_t poller;
    int poller_started;
    atomic_int stop;
    atomic_int fatal;
    atomic_int closing;
    /* Re-creations wait from KS_RESTART_MIN_MS, doubling to
     * KS_RESTART_MAX_MS while new producers keep failing (the poller's). */
    int64_t restart_at_ms, restarted_ms;
    uint32_t restarts;

    /* outstanding deliveries; waiters sleep on idle */
    atomic_long outstanding;
    pthread_mutex_t idle_lock;
    pthread_cond_t idle;

    /* counter deltas pushed to the host by the poller */
    atomic_ullong n_delivered, n_retry, n_failed, n_queue_full;
} ks_sink_t;

static const char *const ks_compressions[] = {"none",   "gzip", "lz4",
                                              "snappy", "zstd", NULL};
static const char *const ks_keys[] = {"tenant", "partitionkey", "none", NULL};
static const char *const ks_modes[] = {"structured", "binary", NULL};

/* ---------------------------------------------------------------- config */

static int ks_enum(const cJSON *v, const char *key, const char *const *names,
                   int *out, char *errstr, size_t errstr_size)
{
    if (cJSON_IsString(v)) {
        for (int i = 0; names[i]; i++) {
            if (strcmp(v->valuestring, names[i]) == 0) {
                *out = i;
                return 0;
            }
        }
    }
    char allowed[128] = "";
    for (int i = 0; names[i]; i++) {
        strncat(allowed, i ? ", " : "", sizeof(allowed) - strlen(allowed) - 1);
        strncat(allowed, names[i], sizeof(allowed) - strlen(allowed) - 1);
    }
    snprintf(errstr, errstr_size, "%s: must be one of %s", key, allowed);
    return -1;
}

static int ks_string(const cJSON *v, const char *key, char **out, char *errstr,
                     size_t errstr_size)
{
    if (!cJSON_IsString(v) || !*v->valuestring) {
        snprintf(errstr, errstr_size, "%s: must be a non-empty string", key);
        return -1;
    }
    free(*out);
    *out = strdup(v->valuestring);
    return *out ? 0 : -1;
}

static int ks_ms(const cJSON *v, const char *key, int *out, char *errstr,
                 size_t errstr_size)
{
    if (!es_json_int_in(v, 0, 3600000)) {
        snprintf(errstr, errstr_size,
                 "%s: must be an integer number of milliseconds (0 to "
                 "3600000)",
                 key);
        return -1;
    }
    *out = v->valueint;
    return 0;
}

static int ks_set_brokers(ks_sink_t *s, const cJSON *v, char *e, size_t n)
{
    return ks_string(v, "brokers", &s->brokers, e, n);
}

static int ks_set_topic(ks_sink_t *s, const cJSON *v, char *e, size_t n)
{
    if (ks_string(v, "topic", &s->topic_src, e, n) != 0)
        return -1;
    ks_template_free(&s->topic);
    return ks_template_parse(&s->topic, s->topic_src, e, n);
}

static int ks_set_compression(ks_sink_t *s, const cJSON *v, char *e, size_t n)
{
    return ks_enum(v, "compression", ks_compressions, &s->compression, e, n);
}

static int ks_set_key(ks_sink_t *s, const cJSON *v, char *e, size_t n)
{
    int k;
    if (ks_enum(v, "key", ks_keys, &k, e, n) != 0)
        return -1;
    s->key = (ks_key_t)k;
    return 0;
}

static int ks_set_mode(ks_sink_t *s, const cJSON *v, char *e, size_t n)
{
    int m;
    if (ks_enum(v, "content_mode", ks_modes, &m, e, n) != 0)
        return -1;
    s->mode = (ks_mode_t)m;
    return 0;
}

static int ks_set_keep_headers(ks_sink_t *s, const cJSON *v, char *e, size_t n)
{
    if (!cJSON_IsBool(v)) {
        snprintf(e, n, "keep_headers: must be true or false");
        return -1;
    }
    s->keep_headers = cJSON_IsTrue(v);
    return 0;
}

static int ks_set_flush_timeout(ks_sink_t *s, const cJSON *v, char *e, size_t n)
{
    return ks_ms(v, "flush_timeout_ms", &s->flush_timeout_ms, e, n);
}

static int ks_set_close_timeout(ks_sink_t *s, const cJSON *v, char *e, size_t n)
{
    return ks_ms(v, "close_timeout_ms", &s->close_timeout_ms, e, n);
}

static int ks_set_properties(ks_sink_t *s, const cJSON *v, char *e, size_t n)
{
    if (!cJSON_IsObject(v)) {
        snprintf(e, n,
                 "properties: must be an object of librdkafka "
                 "properties");
        return -1;
    }
    s->properties = v;
    return 0;
}

static const struct {
    const char *key;
    int (*set)(ks_sink_t *s, const cJSON *v, char *errstr, size_t errstr_size);
} ks_config_table[] = {
    {"brokers", ks_set_brokers},
    {"topic", ks_set_topic},
    {"compression", ks_set_compression},
    {"key", ks_set_key},
    {"content_mode", ks_set_mode},
    {"keep_headers", ks_set_keep_headers},
    {"flush_timeout_ms", ks_set_flush_timeout},
    {"close_timeout_ms", ks_set_close_timeout},
    {"properties", ks_set_properties},
};

static int ks_config(ks_sink_t *s, const cJSON *config, char *errstr,
                     size_t errstr_size)
{
    if (!cJSON_IsObject(config)) {
        snprintf(errstr, errstr_size,
                 "config: must be an object with at least brokers and topic");
        return -1;
    }
    for (const cJSON *item = config->child; item; item = item->next) {
        size_t i, n = sizeof(ks_config_table) / sizeof(ks_config_table[0]);
        for (i = 0; i < n; i++)
            if (strcmp(item->string, ks_config_table[i].key) == 0)
                break;
        if (i == n) {
            snprintf(errstr, errstr_size, "unknown key \"%s\"", item->string);
            return -1;
        }
        if (ks_config_table[i].set(s, item, errstr, errstr_size) != 0)
            return -1;
    }
    if (!s->brokers) {
        snprintf(errstr, errstr_size, "brokers: required (host:port,...)");
        return -1;
    }
    if (!s->topic_src) {
        snprintf(errstr, errstr_size,
                 "topic: required (a name or a "
                 "template with {type}, {topic}, "
                 "{tenant})");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------ producer config */

/* Properties the sink owns: setting them in `properties` would break the
 * delivery guarantee or contradict a dedicated key. */
static const struct {
    const char *name;
    const char *required; /* allowed value, NULL: never allowed */
    const char *use;
} ks_reserved[] = {
    {"bootstrap.servers", NULL, "brokers"},
    {"metadata.broker.list", NULL, "brokers"},
    {"compression.type", NULL, "compression"},
    {"compression.codec", NULL, "compression"},
    {"enable.idempotence", "true", NULL},
    {"acks", "all", NULL},
    {"request.required.acks", "all", NULL},
};

static int ks_is_secret(const char *name)
{
    return strstr(name, "password") || strstr(name, "secret") ||
           strstr(name, "sasl.oauthbearer.config") || strstr(name, "ssl.key") ||
           strstr(name, "ssl_key");
}

static int ks_conf_set(rd_kafka_conf_t *conf, const char *name,
                       const char *value, char *errstr, size_t errstr_size)
{
    char err[512];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) ==
        RD_KAFKA_CONF_OK)
        return 0;
    if (ks_is_secret(name))
        snprintf(errstr, errstr_size,
                 "properties.%s: rejected by librdkafka (value not shown)",
                 name);
    else
        snprintf(errstr, errstr_size, "properties.%s: %s", name, err);
    return -1;
}

static int ks_check_reserved(const char *name, const char *value, char *errstr,
                             size_t errstr_size)
{
    for (size_t i = 0; i < sizeof(ks_reserved) / sizeof(ks_reserved[0]); i++) {
        if (strcmp(name, ks_reserved[i].name) != 0)
            continue;
        if (ks_reserved[i].required &&
            (strcmp(value, ks_reserved[i].required) == 0 ||
             (strcmp(ks_reserved[i].required, "all") == 0 &&
              strcmp(value, "-1") == 0)))
            return 0;
        if (ks_reserved[i].use)
            snprintf(errstr, errstr_size,
                     "properties.%s: set it with the "
                     "\"%s\" key instead",
                     name, ks_reserved[i].use);
        else
            snprintf(errstr, errstr_size,
                     "properties.%s: must be %s (the "
                     "sink acknowledges only what every replica has)",
                     name, ks_reserved[i].required);
        return -1;
    }
    return 0;
}

static int ks_apply_properties(ks_sink_t *s, const cJSON *props,
                               rd_kafka_conf_t *conf, char *errstr,
                               size_t errstr_size)
{
    for (const cJSON *p = props ? props->child : NULL; p; p = p->next) {
        char num[64];
        const char *value;
        if (cJSON_IsString(p)) {
            value = p->valuestring;
        } else if (cJSON_IsBool(p)) {
            value = cJSON_IsTrue(p) ? "true" : "false";
        } else if (es_json_is_int(p)) {
            snprintf(num, sizeof(num), "%lld", (long long)p->valuedouble);
            value = num;
        } else {
            snprintf(errstr, errstr_size,
                     "properties.%s: must be a string, "
                     "an integer or a boolean",
                     p->string);
            return -1;
        }
        /* sasl.oauthbearer.method=aws_msk_iam and aws_msk_iam.* are the
         * daemon's MSK IAM switch, not librdkafka properties */
        int msk = es_msk_iam_opts_set(&s->msk_opts, p->string, value, errstr,
                                      errstr_size);
        if (msk < 0)
            return -1;
        if (msk == 1)
            continue;
        if (ks_check_reserved(p->string, value, errstr, errstr_size) != 0 ||
            ks_conf_set(conf, p->string, value, errstr, errstr_size) != 0)
            return -1;
    }
    return 0;
}

/* A broker connection's failure ("FAIL") and a fatal error ("FATAL") are
 * also reported to ks_error_cb, which logs each once. */
static void ks_log_cb(const rd_kafka_t *rk, int level, const char *fac,
                      const char *buf)
{
    ks_sink_t *s = rd_kafka_opaque(rk);
    es_log_level_t l = level <= 3   ? ES_LOG_ERROR
                       : level == 4 ? ES_LOG_WARN
                       : level <= 6 ? ES_LOG_INFO
                                    : ES_LOG_DEBUG;
    if (!strcmp(fac, "FAIL") || !strcmp(fac, "FATAL"))
        l = ES_LOG_DEBUG;
    s->host->log(s->host, l, "librdkafka %s: %s", fac, buf);
}

static void ks_error_cb(rd_kafka_t *rk, int err, const char *reason,
                        void *opaque)
{
    ks_sink_t *s = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof(why));
        s->host->log(s->host, ES_LOG_ERROR,
                     "kafka producer fatal error: %s; re-creating it", why);
        atomic_store(&s->fatal, 1);
        return;
    }
    s->host->log(s->host, ES_LOG_WARN, "kafka producer: %s: %s",
                 rd_kafka_err2name(err), reason);
}

static void ks_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

/* MSK IAM: this sink's own token signer (the sink may target another
 * cluster, region or role than the daemon's consumers). Missing
 * credentials fail init, naming the sources tried. */
static int ks_msk_setup(ks_sink_t *s, rd_kafka_conf_t *conf, char *errstr,
                        size_t errstr_size)
{
    if (!s->msk && !(s->msk = es_msk_iam_new(NULL, errstr, errstr_size)))
        return -1;
    return es_msk_iam_configure(conf, &s->msk_opts, s->msk, errstr,
                                errstr_size) ||
                   es_msk_iam_check(conf, errstr, errstr_size)
               ? -1
               : 0;
}

static rd_kafka_conf_t *ks_make_conf(ks_sink_t *s, char *errstr,
                                     size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char client_id[256];
    snprintf(client_id, sizeof(client_id), "eventstreamd-%s",
             s->host->instance_name ? s->host->instance_name : "kafka");
    /* Defaults a user may override: Java-compatible partitioning, so a
     * tenant lands where the services' own producers put it. */
    if (ks_conf_set(conf, "client.id", client_id, errstr, errstr_size) ||
        ks_conf_set(conf, "partitioner", "murmur2_random", errstr,
                    errstr_size) ||
        ks_apply_properties(s, s->properties, conf, errstr, errstr_size) ||
        ks_conf_set(conf, "bootstrap.servers", s->brokers, errstr,
                    errstr_size) ||
        ks_conf_set(conf, "enable.idempotence", "true", errstr, errstr_size) ||
        ks_conf_set(conf, "acks", "all", errstr, errstr_size) ||
        ks_conf_set(conf, "compression.type", ks_compressions[s->compression],
                    errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (s->msk_opts.enabled && ks_msk_setup(s, conf, errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_dr_msg_cb(conf, ks_dr_cb);
    rd_kafka_conf_set_log_cb(conf, ks_log_cb);
    rd_kafka_conf_set_error_cb(conf, ks_error_cb);
    return conf;
}

static int ks_producer_new(ks_sink_t *s, char *errstr, size_t errstr_size)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(s->conf);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(errstr, errstr_size, "kafka producer: %s", err);
        return -1;
    }
    if (es_msk_iam_start(rk, errstr, errstr_size)) {
        rd_kafka_destroy(rk);
        return -1;
    }
    s->rk = rk;
    s->rkt = NULL;
    if (!s->topic.has_vars)
        s->rkt = rd_kafka_topic_new(rk, s->topic_src, NULL);
    return 0;
}

static void ks_producer_destroy(ks_sink_t *s)
{
    if (s->rkt)
        rd_kafka_topic_destroy(s->rkt);
    if (s->rk)
        rd_kafka_destroy(s->rk);
    s->rkt = NULL;
    s->rk = NULL;
}

/* -------------------------------------------------------------- delivery */

/* Errors that will not go away by sending the same record again. */
static const rd_kafka_resp_err_t ks_permanent[] = {
    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
    RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE,
    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
    RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED,
    RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION,
    RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS,
    RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP,
    RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT,
    RD_KAFKA_RESP_ERR_POLICY_VIOLATION,
    RD_KAFKA_RESP_ERR_INVALID_RECORD,
    RD_KAFKA_RESP_ERR__INVALID_ARG,
    RD_KAFKA_RESP_ERR__BAD_MSG,
    RD_KAFKA_RESP_ERR__FATAL,
};

static es_status_t ks_classify(rd_kafka_resp_err_t err)
{
    for (size_t i = 0; i < sizeof(ks_permanent) / sizeof(ks_permanent[0]); i++)
        if (err == ks_permanent[i])
            return ES_FAIL;
    /* Everything else (timeouts, transport, leader changes, queue full,
     * purges) may succeed later: the host backs off and redelivers, and
     * dead-letters after its own attempt limit. */
    return ES_RETRY;
}

static void ks_done_one(ks_sink_t *s)
{
    if (atomic_fetch_sub(&s->outstanding, 1) == 1) {
        pthread_mutex_lock(&s->idle_lock);
        pthread_cond_broadcast(&s->idle);
        pthread_mutex_unlock(&s->idle_lock);
    }
}

static void ks_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    ks_sink_t *s = opaque;
    uint64_t token = (uint64_t)(uintptr_t)m->_private;
    if (atomic_load(&s->closing)) {
        /* Abandoned at destroy: the host redelivers after restart. */
        ks_done_one(s);
        return;
    }
    if (!m->err) {
        s->host->complete(s->host, token, ES_OK, NULL);
        atomic_fetch_add(&s->n_delivered, 1);
        ks_done_one(s);
        return;
    }
    char reason[256], fatal[160] = "";
    es_status_t st = ks_classify(m->err);
    /* An error that made the idempotent producer fatal is of the fatal
     * class (FAIL); what the purge before re-creation took back was
     * never in doubt (RETRY). */
    if (m->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE &&
        m->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT &&
        rd_kafka_fatal_error(rk, fatal, sizeof(fatal)))
        st = ES_FAIL;
    snprintf(reason, sizeof(reason), "kafka delivery to %s failed: %s: %s%s%s",
             rd_kafka_topic_name(m->rkt), rd_kafka_err2name(m->err),
             rd_kafka_err2str(m->err), *fatal ? " (fatal: " : "", fatal);
    if (*fatal)
        strncat(reason, ")", sizeof(reason) - strlen(reason) - 1);
    s->host->complete(s->host, token, st, reason);
    atomic_fetch_add(st == ES_FAIL ? &s->n_failed : &s->n_retry, 1);
    ks_done_one(s);
}

static void ks_push_counter(ks_sink_t *s, const char *name, atomic_ullong *c)
{
    unsigned long long d = atomic_exchange(c, 0);
    if (d)
        s->host->counter_add(s->host, name, d);
}

static void ks_push_counters(ks_sink_t *s)
{
    ks_push_counter(s, "delivered", &s->n_delivered);
    ks_push_counter(s, "delivery_retry", &s->n_retry);
    ks_push_counter(s, "delivery_failed", &s->n_failed);
    ks_push_counter(s, "queue_full", &s->n_queue_full);
}

static int ks_wait_idle(ks_sink_t *s, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->idle_lock);
    while (atomic_load(&s->outstanding) > 0)
        if (pthread_cond_timedwait(&s->idle, &s->idle_lock, &until) ==
            ETIMEDOUT)
            break;
    pthread_mutex_unlock(&s->idle_lock);
    return atomic_load(&s->outstanding) == 0 ? 0 : -1;
}

/* A fatal error leaves the idempotent producer unusable: purge what it
 * holds (those events come back as RETRY), then swap in a new one. */
static void ks_restart(ks_sink_t *s)
{
    char err[256];
    /* None when the last re-creation failed. */
    if (s->rk)
        rd_kafka_purge(s->rk,
                       RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; s->rk && i < s->close_timeout_ms / 100 + 1; i++) {
        rd_kafka_poll(s->rk, 100);
        if (atomic_load(&s->outstanding) == 0)
            break;
    }
    pthread_mutex_lock(&s->lock);
    ks_producer_destroy(s);
    if (ks_producer_new(s, err, sizeof(err)) != 0)
        s->host->log(s->host, ES_LOG_ERROR, "%s", err);
    else
        atomic_store(&s->fatal, 0);
    pthread_mutex_unlock(&s->lock);
}

#define KS_RESTART_MIN_MS 100
#define KS_RESTART_MAX_MS 30000

/* A cluster that refuses the producer an id (no IdempotentWrite ACL) makes
 * every new producer fatal at once: without a wait the poller made
 * producers, and logged their errors, as fast as the broker answered. The
 * wait starts again after a minute without a re-creation. */
static void ks_restart_when_due(ks_sink_t *s)
{
    int64_t now = es_now_ms();
    if (now < s->restart_at_ms)
        return;
    if (now - s->restarted_ms > 60000)
        s->restarts = 0;
    ks_restart(s); /* takes a while: the wait counts from its end */
    s->restarted_ms = es_now_ms();
    s->restart_at_ms =
        s->restarted_ms +
        es_backoff_doubled(KS_RESTART_MIN_MS, KS_RESTART_MAX_MS, ++s->restarts);
}

static void *ks_poller(void *arg)
{
    ks_sink_t *s = arg;
    while (!atomic_load(&s->stop)) {
        if (s->rk)
            rd_kafka_poll(s->rk, 100);
        else /* none could be made: wait as a poll would */
            nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
        if (atomic_load(&s->fatal) && !atomic_load(&s->closing))
            ks_restart_when_due(s);
        ks_push_counters(s);
    }
    return NULL;
}

static const void *ks_key(const ks_sink_t *s, const es_event_t *ev, size_t *len)
{
    const char *k = NULL;
    if (s->key == KS_KEY_TENANT) {
        k = ev->tenant;
    } else if (s->key == KS_KEY_PARTITIONKEY) {
        const cJSON *pk =
            cJSON_GetObjectItemCaseSensitive((cJSON *)ev->ce, "partitionkey");
        k = cJSON_IsString(pk) ? pk->valuestring : NULL;
    }
    *len = k ? strlen(k) : 0;
    return k;
}

/* Original headers the binding does not own are copied; ours win. */
static void ks_keep_headers(const es_event_t *ev, rd_kafka_headers_t *hdrs)
{
    for (size_t i = 0; i < ev->header_count; i++) {
        const es_header_t *h = &ev->headers[i];
        if (!h->name || strncmp(h->name, "ce_", 3) == 0 ||
            strcasecmp(h->name, "content-type") == 0)
            continue;
        rd_kafka_header_add(hdrs, h->name, -1, h->value,
                            h->value ? (ssize_t)h->value_len : 0);
    }
}

/* The RKT and TOPIC arguments are macro pairs, hence two calls. */
static rd_kafka_resp_err_t ks_producev(ks_sink_t *s, const char *topic,
                                       const void *value, size_t value_len,
                                       const void *key, size_t key_len,
                                       rd_kafka_headers_t *hdrs, uint64_t token)
{
    void *opaque = (void *)(uintptr_t)token;
    if (s->rkt)
        return rd_kafka_producev(s->rk, RD_KAFKA_V_RKT(s->rkt),
                                 RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_VALUE((void *)value, value_len),
                                 RD_KAFKA_V_KEY(key, key_len),
                                 RD_KAFKA_V_HEADERS(hdrs),
                                 RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    return rd_kafka_producev(s->rk, RD_KAFKA_V_TOPIC(topic),
                             RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_VALUE((void *)value, value_len),
                             RD_KAFKA_V_KEY(key, key_len),
                             RD_KAFKA_V_HEADERS(hdrs),
                             RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
}

static es_status_t ks_produce(ks_sink_t *s, const es_event_t *ev, char *reason,
                              size_t reason_size)
{
    char topic[KS_TOPIC_MAX + 1] = "";
    const void *value = ev->json;
    size_t value_len = ev->json_len, key_len;
    void *value_buf = NULL;
    es_status_t st = ES_PENDING;

    if (s->topic.has_vars &&
        ks_template_expand(&s->topic, ev, topic, sizeof(topic), reason,
                           reason_size) != 0)
        return ES_FAIL;
    const void *key = ks_key(s, ev, &key_len);
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);
    if (s->keep_headers)
        ks_keep_headers(ev, hdrs);
    if (s->mode == KS_BINARY) {
        if (ks_binary_encode(ev, hdrs, &value, &value_len, &value_buf, reason,
                             reason_size) != 0) {
            st = ES_FAIL;
            goto done;
        }
    } else {
        rd_kafka_header_add(hdrs, "content-type", -1, KS_STRUCTURED_CT, -1);
    }

    atomic_fetch_add(&s->outstanding, 1);
    rd_kafka_resp_err_t err =
        ks_producev(s, topic, value, value_len, key, key_len, hdrs, ev->token);
    if (!err) {
        hdrs = NULL; /* owned by the message now */
        goto done;
    }
    ks_done_one(s);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        atomic_fetch_add(&s->n_queue_full, 1);
        snprintf(reason, reason_size,
                 "kafka producer queue full (back-pressure)");
        st = ES_RETRY;
    } else {
        snprintf(reason, reason_size, "kafka produce to %.100s failed: %s: %s",
                 s->rkt ? s->topic_src : topic, rd_kafka_err2name(err),
                 rd_kafka_err2str(err));
        /* A fatal producer sends nothing: retry once it is re-created. */
        st = err == RD_KAFKA_RESP_ERR__FATAL ? ES_RETRY : ks_classify(err);
    }
done:
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
    free(value_buf);
    return st;
}

static void ks_deliver_disabled(ks_sink_t *s, size_t count,
                                es_result_t *results)
{
    if (!atomic_exchange(&s->disabled_logged, 1))
        s->host->log(s->host, ES_LOG_WARN,
                     "KAFKA_ENABLED=false: kafka publishes are skipped "
                     "(counted as publish_skipped)");
    s->host->counter_add(s->host, "publish_skipped", count);
    for (size_t i = 0; i < count; i++) {
        results[i].status = ES_OK;
        results[i].reason[0] = '\0';
    }
}

static void ks_deliver(void *instance, const es_event_t *const *events,
                       size_t count, es_result_t *results)
{
    ks_sink_t *s = instance;
    if (s->disabled) {
        ks_deliver_disabled(s, count, results);
        return;
    }
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < count; i++) {
        results[i].reason[0] = '\0';
        if (atomic_load(&s->fatal) || !s->rk) {
            results[i].status = ES_RETRY;
            snprintf(results[i].reason, sizeof(results[i].reason),
                     "kafka producer is being re-created after a fatal "
                     "error");
            continue;
        }
        results[i].status = ks_produce(s, events[i], results[i].reason,
                                       sizeof(results[i].reason));
    }
    pthread_mutex_unlock(&s->lock);
}

static void ks_flush(void *instance)
{
    ks_sink_t *s = instance;
    if (!s->disabled)
        ks_wait_idle(s, s->flush_timeout_ms);
}

/* ------------------------------------------------------------- lifecycle */

/* Same rule as the host's own producer: unset, empty, "true", "1" or "yes"
 * mean enabled; anything else (false, 0, no, off...) switches publishing
 * off. */
static int ks_env_disabled(void)
{
    const char *v = getenv("KAFKA_ENABLED");
    if (!v || !*v)
        return 0;
    return !(strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
             strcasecmp(v, "yes") == 0);
}

static void ks_destroy(void *instance);

static int ks_init(const es_host_t *host, const struct cJSON *config,
                   void **instance, char *errstr, size_t errstr_size)
{
    int rc = -1;
    ks_sink_t *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    s->host = host;
    s->flush_timeout_ms = 0;
    s->close_timeout_ms = 10000;
    s->compression = 0;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->idle_lock, NULL);
    pthread_cond_init(&s->idle, NULL);

    if (ks_config(s, config, errstr, errstr_size) != 0)
        goto done;
    /* Validated even when disabled, so a config error shows up early. */
    s->conf = ks_make_conf(s, errstr, errstr_size);
    s->properties = NULL;
    if (!s->conf)
        goto done;
    s->disabled = ks_env_disabled();
    if (!s->disabled) {
        if (ks_producer_new(s, errstr, errstr_size) != 0)
            goto done;
        if (pthread_create(&s->poller, NULL, ks_poller, s) != 0) {
            snprintf(errstr, errstr_size, "cannot start the poll thread");
            goto done;
        }
        s->poller_started = 1;
    }
    host->log(host, ES_LOG_INFO,
              "kafka sink to %s topic %s (%s, compression %s, key %s)%s",
              s->brokers, s->topic_src, ks_modes[s->mode],
              ks_compressions[s->compression], ks_keys[s->key],
              s->disabled ? " disabled by KAFKA_ENABLED=false" : "");
    rc = 0;
done:
    if (rc != 0)
        ks_destroy(s);
    else
        *instance = s;
    return rc;
}

static void ks_destroy(void *instance)
{
    ks_sink_t *s = instance;
    if (!s)
        return;
    if (s->poller_started) {
        if (ks_wait_idle(s, s->close_timeout_ms) != 0)
            s->host->log(s->host, ES_LOG_WARN,
                         "kafka sink closing with %ld deliveries "
                         "unacknowledged; the host redelivers them",
                         atomic_load(&s->outstanding));
        atomic_store(&s->closing, 1);
        atomic_store(&s->stop, 1);
        pthread_join(s->poller, NULL);
        ks_push_counters(s);
    }
    if (s->rk) {
        atomic_store(&s->closing, 1);
        rd_kafka_purge(s->rk,
                       RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    }
    ks_producer_destroy(s);
    if (s->conf)
        rd_kafka_conf_destroy(s->conf);
    es_msk_iam_destroy(s->msk); /* after the last client using it */
    ks_template_free(&s->topic);
    free(s->topic_src);
    free(s->brokers);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->idle_lock);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static const es_plugin_t ks_plugin = {
    .abi = ES_PLUGIN_ABI_VERSION,
    .size = sizeof(es_plugin_t),
    .name = "kafka",
    .version = "0.1.0",
    .kind = ES_KIND_SINK,
    .init = ks_init,
    .deliver = ks_deliver,
    .flush = ks_flush,
    .destroy = ks_destroy,
};

ES_PLUGIN_DEFINE(ks_plugin)
