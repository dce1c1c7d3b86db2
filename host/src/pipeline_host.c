/*
 * The host services each plugin instance gets (es_host_t): logging,
 * counters, asynchronous completion, emit, and the SQLite state store.
 * complete and emit may be called from any thread.
 */
#include "pipeline_int.h"

/* ------------------------------------------------------------ host services */

static instance_t *instance_of(const es_host_t *h)
{
    return h->opaque;
}

void pl_host_log(const es_host_t *h, es_log_level_t level, const char *fmt, ...)
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
    pl_wake(p->comp_wake[1]);
}

static int host_emit(const es_host_t *h, uint64_t parent_token,
                     const char *topic, const void *key, size_t key_len,
                     const char *json, size_t json_len, char *errstr,
                     size_t errstr_size)
{
    es_pipeline_t *p = instance_of(h)->p;
    es_decoded_t dec;
    char reason[256];
    if (!topic || !es_topic_name_valid(topic)) {
        snprintf(errstr, errstr_size, "emit: \"%.64s\" %s",
                 topic ? topic : "(null)", ES_TOPIC_NAME_RULE);
        return -1;
    }
    cJSON *ce = cJSON_ParseWithLength(json, json_len);
    if (!ce || es_decode_validate(ce, &dec, reason, sizeof reason)) {
        snprintf(errstr, errstr_size, "emit to %s: not a valid CloudEvent: %s",
                 topic, ce ? reason : "invalid JSON");
        cJSON_Delete(ce);
        return -1;
    }
    cJSON_Delete(ce);
    delivery_t *parent = parent_token ? pl_token_lookup(p, parent_token) : NULL;
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
        pl_wake(p->prod_wake[1]);
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

void pl_host_init(instance_t *inst)
{
    es_host_t *h = &inst->host;
    h->abi = ES_PLUGIN_ABI_VERSION;
    h->size = sizeof *h;
    h->event_size = sizeof(es_event_t);
    h->filter_add_copies = pl_collect_add_copies;
    h->instance_name = inst->conf->name;
    h->state_dir = inst->p->conf->state_dir;
    h->log = pl_host_log;
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
