/*
 * marketplace: the order side of marketplace-svc as a handler plugin.
 *
 * Each input event runs in one host state transaction: the duplicate check,
 * the order record, the "event processed" marker and the emits. Emits are
 * queued before the commit and before ES_OK, so the input's offset is only
 * committed once the emitted events are acknowledged; a failure anywhere
 * rolls back and answers ES_RETRY, and the retry emits the same ids again.
 * See docs/marketplace-handler.md.
 */
#include "marketplace.h"
#include "internal/es_json_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <eventstream/plugin.h>

#define MKT_REASON_MAX 256

typedef struct mkt_conf_s {
    char *source;
    char *topic_prefix;
    char *topics[MKT_OUT_COUNT]; /* per-type override; NULL: prefix + type */
    int64_t wait_timeout_ms;
    int64_t wait_max_attempts;
} mkt_conf_t;

typedef struct mkt_s {
    const es_host_t *host;
    mkt_conf_t conf;
    int64_t epoch; /* incarnation number of this instance, see on_duplicate */
} mkt_t;

/* One event being handled: what every step needs. */
typedef struct mkt_ctx_s {
    mkt_t *m;
    const es_event_t *ev;
    const char *tenant;
    mkt_input_t in;
    char *order_key;
    char *seen_key;
    char *wait_key;
    char *reason;
    size_t reason_size;
} mkt_ctx_t;

/* ---------------------------------------------------------------- config */

typedef enum { CONF_STR, CONF_INT, CONF_TOPICS } mkt_conf_type_t;

static const struct {
    const char *key;
    mkt_conf_type_t type;
    size_t offset;
    int64_t min, max;
} conf_keys[] = {
    {"source", CONF_STR, offsetof(mkt_conf_t, source), 1, 0},
    {"topic_prefix", CONF_STR, offsetof(mkt_conf_t, topic_prefix), 0, 0},
    {"topics", CONF_TOPICS, 0, 0, 0},
    {"wait_timeout_ms", CONF_INT, offsetof(mkt_conf_t, wait_timeout_ms), 0,
     INT64_C(31536000000)},
    {"wait_max_attempts", CONF_INT, offsetof(mkt_conf_t, wait_max_attempts), 0,
     1000000},
};

static void conf_free(mkt_conf_t *c)
{
    free(c->source);
    free(c->topic_prefix);
    for (int i = 0; i < MKT_OUT_COUNT; i++)
        free(c->topics[i]);
    memset(c, 0, sizeof(*c));
}

static int conf_topics(mkt_conf_t *c, const cJSON *obj, char *e, size_t n)
{
    const cJSON *it;

    if (!cJSON_IsObject(obj)) {
        snprintf(e, n, "topics: must be an object of event type to topic");
        return -1;
    }
    cJSON_ArrayForEach(it, obj)
    {
        int k;
        for (k = 0; k < MKT_OUT_COUNT; k++)
            if (strcmp(it->string, mkt_output_type(k)) == 0)
                break;
        if (k == MKT_OUT_COUNT) {
            snprintf(e, n,
                     "topics: unknown event type \"%s\" (the handler emits "
                     "eventzr.marketplace.{order.created,order.completed,"
                     "order.cancelled,dispute.opened,dispute.resolved}.v1)",
                     it->string);
            return -1;
        }
        if (!cJSON_IsString(it) || it->valuestring[0] == '\0') {
            snprintf(e, n, "topics.%s: must be a non-empty string", it->string);
            return -1;
        }
        free(c->topics[k]);
        c->topics[k] = strdup(it->valuestring);
        if (!c->topics[k]) {
            snprintf(e, n, "out of memory");
            return -1;
        }
    }
    return 0;
}

static int conf_item(mkt_conf_t *c, const cJSON *it, char *e, size_t n)
{
    for (size_t i = 0; i < sizeof(conf_keys) / sizeof(*conf_keys); i++) {
        char *field = (char *)c + conf_keys[i].offset;

        if (strcmp(it->string, conf_keys[i].key) != 0)
            continue;
        switch (conf_keys[i].type) {
        case CONF_TOPICS:
            return conf_topics(c, it, e, n);
        case CONF_STR:
            if (!cJSON_IsString(it) ||
                strlen(it->valuestring) < (size_t)conf_keys[i].min) {
                snprintf(e, n, "%s: must be a%s string", it->string,
                         conf_keys[i].min ? " non-empty" : "");
                return -1;
            }
            free(*(char **)field);
            *(char **)field = strdup(it->valuestring);
            return 0;
        case CONF_INT:
            if (!es_json_int_in(it, (double)conf_keys[i].min,
                                (double)conf_keys[i].max)) {
                snprintf(e, n,
                         "%s: must be an integer from %" PRId64 " to %" PRId64,
                         it->string, conf_keys[i].min, conf_keys[i].max);
                return -1;
            }
            *(int64_t *)field = (int64_t)it->valuedouble;
            return 0;
        }
    }
    snprintf(e, n, "unknown config key \"%s\"", it->string);
    return -1;
}

static int conf_parse(mkt_conf_t *c, const cJSON *config, char *e, size_t n)
{
    const cJSON *it;

    c->source = strdup("marketplace-svc");
    c->topic_prefix = strdup("");
    c->wait_timeout_ms = 30000;
    c->wait_max_attempts = 0;
    if (config && !cJSON_IsObject(config)) {
        snprintf(e, n, "config must be a JSON object");
        return -1;
    }
    cJSON_ArrayForEach(it, config)
    {
        if (conf_item(c, it, e, n) != 0)
            return -1;
    }
    if (!c->source || !c->topic_prefix) {
        snprintf(e, n, "out of memory");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ state keys */

/* Length-prefixed parts keep keys unambiguous whatever the ids contain. */
static char *key_make(char tag, const char *a, const char *b, const char *c)
{
    char *key = NULL;
    int rc;

    if (c)
        rc = asprintf(&key, "%c:%zu:%s:%zu:%s:%s", tag, strlen(a), a, strlen(b),
                      b, c);
    else
        rc = asprintf(&key, "%c:%zu:%s:%s", tag, strlen(a), a, b);
    return rc < 0 ? NULL : key;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static cJSON *state_get_json(mkt_ctx_t *x, const char *key, int *rc)
{
    const es_host_t *h = x->m->host;
    char *val = NULL;
    size_t len = 0;
    cJSON *json = NULL;

    *rc = h->state_get(h, key, &val, &len);
    if (*rc == 1) {
        json = cJSON_ParseWithLength(val, len);
        if (!json)
            *rc = -1;
    }
    h->free(val);
    return json;
}

static int state_put_json(mkt_ctx_t *x, const char *key, const cJSON *json)
{
    const es_host_t *h = x->m->host;
    char *s = cJSON_PrintUnformatted(json);
    int rc = s ? h->state_put(h, key, s, strlen(s)) : -1;

    free(s);
    return rc;
}

/* --------------------------------------------------------------- outputs */

static const char *out_topic(mkt_t *m, mkt_output_kind_t k, char *buf, size_t n)
{
    if (m->conf.topics[k])
        return m->conf.topics[k];
    snprintf(buf, n, "%s%s", m->conf.topic_prefix, mkt_output_type(k));
    return buf;
}

/* Builds the seed 001 envelope around out->data (which it takes). */
static char *envelope(mkt_ctx_t *x, mkt_output_t *out, const char *time)
{
    const es_event_t *ev = x->ev;
    const char *type = mkt_output_type(out->kind);
    char *name = NULL, *subject = NULL, *json = NULL, id[37];
    cJSON *ce = NULL;
    int len;

    /* Ids are UUIDv5 of the input's identity and the output type, so a
     * retry or replay of the input emits the same ids. */
    len = asprintf(&name, "%s\n%s\n%s\n%s", x->tenant,
                   ev->source ? ev->source : "", ev->id, type);
    if (len < 0 || mkt_uuid5(name, (size_t)len, id) != 0 ||
        asprintf(&subject, "order:%s", x->in.order_id) < 0)
        goto done;
    ce = cJSON_CreateObject();
    cJSON_AddStringToObject(ce, "specversion", "1.0");
    cJSON_AddStringToObject(ce, "id", id);
    cJSON_AddStringToObject(ce, "type", type);
    cJSON_AddStringToObject(ce, "source", x->m->conf.source);
    cJSON_AddStringToObject(ce, "time", time);
    cJSON_AddStringToObject(ce, "datacontenttype", "application/json");
    cJSON_AddStringToObject(ce, "subject", subject);
    cJSON_AddStringToObject(ce, "tenantid", x->tenant);
    cJSON_AddItemToObject(ce, "data", out->data);
    out->data = NULL;
    json = cJSON_PrintUnformatted(ce);
done:
    free(name);
    free(subject);
    cJSON_Delete(ce);
    return json;
}

static int emit_all(mkt_ctx_t *x, const cJSON *emitted)
{
    const es_host_t *h = x->m->host;
    const cJSON *it;
    char err[256];

    cJSON_ArrayForEach(it, emitted)
    {
        const char *topic =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "topic"));
        const char *json =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "event"));

        if (!topic || !json) {
            snprintf(x->reason, x->reason_size, "corrupt processed marker");
            return -1;
        }
        err[0] = '\0';
        if (h->emit(h, x->ev->token, topic, x->tenant, strlen(x->tenant), json,
                    strlen(json), err, sizeof(err)) != 0) {
            snprintf(x->reason, x->reason_size, "emit to %s failed: %s", topic,
                     err);
            return -1;
        }
        h->counter_add(h, "emitted", 1);
    }
    return 0;
}

/* ------------------------------------------------------------- the steps */

static es_status_t fail(mkt_ctx_t *x, const char *counter)
{
    const es_host_t *h = x->m->host;

    h->counter_add(h, counter, 1);
    h->log(h, ES_LOG_WARN, "event %s dead-lettered: %s", x->ev->id, x->reason);
    return ES_FAIL;
}

/* Ends the transaction; a failed commit is a retry like any state error. */
static es_status_t finish(mkt_ctx_t *x, es_status_t st)
{
    const es_host_t *h = x->m->host;

    if (h->state_commit(h) != 0) {
        h->state_rollback(h);
        snprintf(x->reason, x->reason_size, "state: commit failed");
        return ES_RETRY;
    }
    return st;
}

/*
 * Whether the events recorded for an input may never have reached the
 * broker. The host runs a handler again for a record it already delivered
 * (attempt > 1) when an emitted event was not acknowledged. A fresh
 * redelivery (attempt 1, after a restart or a rebalance) of a record handled
 * by an earlier incarnation is safe to skip only if that incarnation was
 * shut down cleanly (destroy marks it): the host drains in-flight events,
 * whose emits are acknowledged, before destroying plugins. After a crash the
 * producer's queue is gone, so the events are published again.
 */
static int outputs_may_be_lost(mkt_ctx_t *x, const cJSON *seen)
{
    const es_host_t *h = x->m->host;
    const cJSON *ep = cJSON_GetObjectItemCaseSensitive(seen, "epoch");
    char key[32], *val = NULL;
    size_t len = 0;
    int rc;

    if (x->ev->attempt > 1)
        return 1;
    if (!es_json_is_int(ep)) /* our own record: unreadable means unsure */
        return 1;
    if ((int64_t)ep->valuedouble == x->m->epoch)
        return 0; /* our own producer still holds them */
    snprintf(key, sizeof(key), "x:%" PRId64, (int64_t)ep->valuedouble);
    rc = h->state_get(h, key, &val, &len);
    h->free(val);
    return rc != 1;
}

/*
 * A duplicate never changes state and never emits anything new. A copy of
 * the event at another position is a no-op. A redelivery of the very same
 * record (same topic, partition and offset: its offset was never
 * committed) re-publishes the recorded events byte for byte, same ids,
 * when they may have been lost (see outputs_may_be_lost).
 */
static es_status_t on_duplicate(mkt_ctx_t *x, const cJSON *seen)
{
    const es_host_t *h = x->m->host;
    const es_event_t *ev = x->ev;
    const char *topic =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(seen, "topic"));
    const cJSON *part = cJSON_GetObjectItemCaseSensitive(seen, "partition");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(seen, "offset");

    h->state_rollback(h);
    if (topic && ev->topic && strcmp(topic, ev->topic) == 0 &&
        cJSON_IsNumber(part) && part->valuedouble == ev->partition &&
        cJSON_IsNumber(off) && off->valuedouble == (double)ev->offset &&
        outputs_may_be_lost(x, seen)) {
        if (emit_all(x, cJSON_GetObjectItemCaseSensitive(seen, "emitted")))
            return ES_RETRY;
        h->counter_add(h, "republished", 1);
        h->log(h, ES_LOG_DEBUG, "event %s redelivered: republished", ev->id);
        return ES_OK;
    }
    h->counter_add(h, "duplicates", 1);
    h->log(h, ES_LOG_DEBUG, "event %s already processed: no-op", ev->id);
    return ES_OK;
}

/* The event may be early: retry until it has waited wait_timeout_ms since
 * it was first seen (kept in state, so restarts do not reset the clock). */
static es_status_t on_wait(mkt_ctx_t *x, mkt_state_t st)
{
    const es_host_t *h = x->m->host;
    const mkt_conf_t *c = &x->m->conf;
    int64_t now = now_ms(), first = now, waited;
    char *val = NULL, buf[24];
    size_t len = 0;
    int rc = h->state_get(h, x->wait_key, &val, &len);

    if (rc < 0) {
        h->state_rollback(h);
        snprintf(x->reason, x->reason_size, "state: read failed");
        return ES_RETRY;
    }
    if (rc == 1 && len > 0 && len < sizeof(buf)) {
        memcpy(buf, val, len);
        buf[len] = '\0';
        first = strtoll(buf, NULL, 10);
    }
    h->free(val);
    waited = now - first;
    if (waited >= c->wait_timeout_ms ||
        (c->wait_max_attempts > 0 && x->ev->attempt >= c->wait_max_attempts)) {
        h->state_delete(h, x->wait_key);
        if (st == MKT_ST_NONE)
            snprintf(x->reason, x->reason_size,
                     "unknown order %s: %s event %s waited %" PRId64
                     " ms (attempt %u) for the order to be created",
                     x->in.order_id, x->ev->type, x->ev->id, waited,
                     x->ev->attempt);
        else
            snprintf(x->reason, x->reason_size,
                     "order %s is still %s: %s event %s waited %" PRId64
                     " ms (attempt %u) for its payment",
                     x->in.order_id, mkt_state_name(st), x->ev->type, x->ev->id,
                     waited, x->ev->attempt);
        return finish(x, ES_FAIL) == ES_FAIL ? fail(x, "wait_expired")
                                             : ES_RETRY;
    }
    if (rc == 0) {
        snprintf(buf, sizeof(buf), "%" PRId64, now);
        if (h->state_put(h, x->wait_key, buf, strlen(buf)) != 0) {
            h->state_rollback(h);
            snprintf(x->reason, x->reason_size, "state: write failed");
            return ES_RETRY;
        }
    }
    if (st == MKT_ST_NONE)
        snprintf(x->reason, x->reason_size,
                 "unknown order %s: %s event %s may be early, waiting "
                 "(%" PRId64 " of %" PRId64 " ms)",
                 x->in.order_id, x->ev->type, x->ev->id, waited,
                 c->wait_timeout_ms);
    else
        snprintf(x->reason, x->reason_size,
                 "order %s is %s: %s event %s may be early, waiting "
                 "(%" PRId64 " of %" PRId64 " ms)",
                 x->in.order_id, mkt_state_name(st), x->ev->type, x->ev->id,
                 waited, c->wait_timeout_ms);
    h->counter_add(h, "waits", 1);
    return finish(x, ES_RETRY);
}

static es_status_t on_illegal(mkt_ctx_t *x, mkt_state_t st)
{
    const es_host_t *h = x->m->host;

    h->state_delete(h, x->wait_key);
    snprintf(x->reason, x->reason_size,
             "illegal transition: order %s is %s, %s event %s is not "
             "allowed there (tenant %s)",
             x->in.order_id, mkt_state_name(st), x->ev->type, x->ev->id,
             x->tenant);
    return finish(x, ES_FAIL) == ES_FAIL ? fail(x, "illegal") : ES_RETRY;
}

static cJSON *seen_record(mkt_ctx_t *x, mkt_state_t next)
{
    const es_event_t *ev = x->ev;
    cJSON *seen = cJSON_CreateObject();

    cJSON_AddStringToObject(seen, "topic", ev->topic ? ev->topic : "");
    cJSON_AddNumberToObject(seen, "partition", ev->partition);
    cJSON_AddNumberToObject(seen, "offset", (double)ev->offset);
    cJSON_AddStringToObject(seen, "order", x->in.order_id);
    cJSON_AddStringToObject(seen, "state", mkt_state_name(next));
    cJSON_AddNumberToObject(seen, "epoch", (double)x->m->epoch);
    cJSON_AddItemToObject(seen, "emitted", cJSON_CreateArray());
    return seen;
}

static es_status_t on_apply(mkt_ctx_t *x, cJSON **order, const mkt_rule_t *r)
{
    const es_host_t *h = x->m->host;
    mkt_output_t out[MKT_MAX_OUTPUTS];
    size_t n_out = 0;
    char time[64], err[MKT_REASON_MAX], topic[512];
    cJSON *seen = NULL, *emitted;
    es_status_t st = ES_RETRY;
    int ended = 0;

    /* The transition happened when its cause did: outputs carry the input's
     * time, so a replay produces byte-identical events. */
    if (x->ev->time && x->ev->time[0] && strlen(x->ev->time) < sizeof(time))
        snprintf(time, sizeof(time), "%s", x->ev->time);
    else
        mkt_time_now(time);
    if (mkt_apply(&x->in, r, order, x->ev->id, time, out, &n_out, err,
                  sizeof(err)) != 0) {
        snprintf(x->reason, x->reason_size, "order %s: %s", x->in.order_id,
                 err);
        h->state_delete(h, x->wait_key);
        return finish(x, ES_FAIL) == ES_FAIL ? fail(x, "invalid") : ES_RETRY;
    }
    seen = seen_record(x, r->next);
    emitted = cJSON_GetObjectItemCaseSensitive(seen, "emitted");
    for (size_t i = 0; i < n_out; i++) {
        cJSON *item = cJSON_CreateObject();
        char *json = envelope(x, &out[i], time);

        cJSON_AddItemToArray(emitted, item);
        if (!json) {
            snprintf(x->reason, x->reason_size, "out of memory");
            goto done;
        }
        cJSON_AddStringToObject(
            item, "topic", out_topic(x->m, out[i].kind, topic, sizeof(topic)));
        cJSON_AddItemToObject(item, "event", cJSON_CreateString(json));
        free(json);
    }
    if (state_put_json(x, x->order_key, *order) != 0 ||
        state_put_json(x, x->seen_key, seen) != 0 ||
        h->state_delete(h, x->wait_key) != 0) {
        snprintf(x->reason, x->reason_size, "state: write failed");
        goto done;
    }
    /* Emit before the commit: if the commit then fails, the retry emits
     * the same ids again rather than losing them. */
    if (emit_all(x, emitted) != 0)
        goto done;
    ended = 1;
    st = finish(x, ES_OK);
    if (st == ES_OK) {
        h->counter_add(h, "transitions", 1);
        h->log(h, ES_LOG_DEBUG, "order %s: %s by %s event %s", x->in.order_id,
               mkt_state_name(r->next), x->ev->type, x->ev->id);
    }
done:
    if (!ended)
        h->state_rollback(h);
    mkt_outputs_free(out, n_out);
    cJSON_Delete(seen);
    return st;
}

static const char *event_tenant(const es_event_t *ev)
{
    const char *t;

    if (ev->tenant && ev->tenant[0])
        return ev->tenant;
    t = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(ev->ce, "tenantid"));
    return t && t[0] ? t : NULL;
}

static es_status_t handle_txn(mkt_ctx_t *x)
{
    const es_host_t *h = x->m->host;
    cJSON *seen, *order;
    const mkt_rule_t *rule;
    mkt_state_t st;
    es_status_t status;
    int rc;

    if (h->state_begin(h) != 0) {
        snprintf(x->reason, x->reason_size, "state: begin failed");
        return ES_RETRY;
    }
    seen = state_get_json(x, x->seen_key, &rc);
    if (rc == 1) {
        status = on_duplicate(x, seen);
        cJSON_Delete(seen);
        return status;
    }
    order = rc == 0 ? state_get_json(x, x->order_key, &rc) : NULL;
    if (rc < 0) {
        h->state_rollback(h);
        snprintf(x->reason, x->reason_size, "state: read failed");
        return ES_RETRY;
    }
    st = mkt_order_state(order);
    rule = mkt_rule(x->in.kind, st);
    switch (rule->verdict) {
    case MKT_APPLY:
        status = on_apply(x, &order, rule);
        break;
    case MKT_WAIT:
        status = on_wait(x, st);
        break;
    default:
        status = on_illegal(x, st);
        break;
    }
    cJSON_Delete(order);
    return status;
}

static es_status_t handle(mkt_t *m, const es_event_t *ev, char *reason,
                          size_t reason_size)
{
    mkt_ctx_t x = {
        .m = m, .ev = ev, .reason = reason, .reason_size = reason_size};
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(ev->ce, "data");
    char err[MKT_REASON_MAX];
    es_status_t st = ES_RETRY;

    reason[0] = '\0';
    x.tenant = event_tenant(ev);
    if (!x.tenant || !ev->id || !ev->id[0]) {
        snprintf(reason, reason_size, "%s event %s has no %s",
                 ev->type ? ev->type : "(untyped)", ev->id ? ev->id : "",
                 x.tenant ? "id" : "tenant");
        return fail(&x, "invalid");
    }
    if (mkt_input_parse(ev->type, x.tenant, data, &x.in, err, sizeof(err))) {
        /* Long reasons are cut at the host's limit; that is intended. */
        if (snprintf(reason, reason_size, "%s event %s: %s",
                     ev->type ? ev->type : "(untyped)", ev->id,
                     err) >= (int)reason_size)
            reason[reason_size - 1] = '\0';
        return fail(&x, "invalid");
    }
    x.order_key = key_make('o', x.tenant, x.in.order_id, NULL);
    x.seen_key = key_make('e', x.tenant, ev->source ? ev->source : "", ev->id);
    x.wait_key = key_make('w', x.tenant, ev->source ? ev->source : "", ev->id);
    if (!x.order_key || !x.seen_key || !x.wait_key) {
        snprintf(reason, reason_size, "out of memory");
        goto done;
    }
    st = handle_txn(&x);
done:
    free(x.order_key);
    free(x.seen_key);
    free(x.wait_key);
    return st;
}

/* ---------------------------------------------------------------- vtable */

/* Each instance is a new incarnation, numbered on its first delivery (so
 * that --check-config touches no state); destroy marks it cleanly ended. */
static int epoch_start(mkt_t *m, char *errstr, size_t errstr_size)
{
    const es_host_t *h = m->host;
    char *val = NULL, buf[24];
    size_t len = 0;
    int rc = h->state_get(h, "epoch", &val, &len);

    if (rc == 1 && len < sizeof(buf)) {
        memcpy(buf, val, len);
        buf[len] = '\0';
        m->epoch = strtoll(buf, NULL, 10);
    }
    h->free(val);
    m->epoch++;
    snprintf(buf, sizeof(buf), "%" PRId64, m->epoch);
    if (rc < 0 || h->state_put(h, "epoch", buf, strlen(buf)) != 0) {
        snprintf(errstr, errstr_size, "state: cannot read or write the epoch");
        return -1;
    }
    return 0;
}

static int mkt_init(const es_host_t *host, const cJSON *config, void **instance,
                    char *errstr, size_t errstr_size)
{
    mkt_t *m = calloc(1, sizeof(*m));

    if (!m) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    m->host = host;
    if (conf_parse(&m->conf, config, errstr, errstr_size) != 0) {
        conf_free(&m->conf);
        free(m);
        return -1;
    }
    *instance = m;
    return 0;
}

static void mkt_deliver(void *instance, const es_event_t *const *events,
                        size_t count, es_result_t *results)
{
    mkt_t *m = instance;
    char err[MKT_REASON_MAX] = "";

    if (m->epoch == 0 && epoch_start(m, err, sizeof(err)) != 0)
        m->epoch = 0;
    for (size_t i = 0; i < count; i++) {
        if (m->epoch == 0) {
            results[i].status = ES_RETRY;
            snprintf(results[i].reason, sizeof(results[i].reason), "%s", err);
            continue;
        }
        results[i].status =
            handle(m, events[i], results[i].reason, sizeof(results[i].reason));
        m->host->counter_add(m->host, "events", 1);
    }
}

static void mkt_destroy(void *instance)
{
    mkt_t *m = instance;

    if (!m)
        return;
    if (m->epoch > 0) {
        char key[32];
        snprintf(key, sizeof(key), "x:%" PRId64, m->epoch);
        m->host->state_put(m->host, key, "clean", 5);
    }
    conf_free(&m->conf);
    free(m);
}

static const es_plugin_t mkt_plugin = {
    .abi = ES_PLUGIN_ABI_VERSION,
    .size = sizeof(es_plugin_t),
    .name = "marketplace",
    .version = "0.1.0",
    .kind = ES_KIND_HANDLER,
    .init = mkt_init,
    .deliver = mkt_deliver,
    .destroy = mkt_destroy,
};

ES_PLUGIN_DEFINE(mkt_plugin)
