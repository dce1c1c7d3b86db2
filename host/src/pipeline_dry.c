/*
 * Topic testing (POST /v1/topics/{topic}/test): the routing of one sample
 * event, step by step, and optionally a real delivery of the result to a
 * test endpoint through a fresh, short-lived instance of its plugin. Also
 * the Avro decoder set-up shared with the pipeline (onboarded Avro topics).
 */
#include "pipeline_int.h"

es_topics_t *es_pipeline_topics(es_pipeline_t *p)
{
    return p->topics;
}

es_usage_t *es_pipeline_usage(es_pipeline_t *p)
{
    return p->usage;
}

/* ------------------------------------------------------------ Avro set-up */

/* The routes' Avro topics plus the onboarded ones (all, or only_topic). */
int pl_avro_hook_build(es_pipeline_t *p, const char *only_topic,
                       es_avro_hook_t **out, char *errstr, size_t errstr_size)
{
    es_topic_avro_t *v = NULL;
    size_t n = es_topics_avro(p->topics, only_topic, &v);
    es_avro_topic_t *t = calloc(n + 1, sizeof *t);
    for (size_t i = 0; i < n; i++)
        t[i] = (es_avro_topic_t){v[i].topic, v[i].avsc_path, v[i].file};
    int rc = es_avro_hook_new_with(p->conf, t, n, out, errstr, errstr_size);
    free(t);
    es_topics_avro_free(v, n);
    if (!only_topic && rc == 0)
        p->avro_stamp = es_topics_avro_stamp(p->topics);
    return rc;
}

/* After a topics rescan (pipeline thread): when the onboarded Avro topics
 * or their folders changed, the decoder is rebuilt and swapped in; on an
 * error the old one stays. Records waiting for a re-decode use the new one.
 * A rebuild that would leave no Avro topic at all keeps the old decoder
 * (a restart drops it). */
void pl_avro_rebuild(es_pipeline_t *p)
{
    unsigned long long stamp = es_topics_avro_stamp(p->topics);
    if (stamp == p->avro_stamp)
        return;
    es_avro_hook_t *h = NULL;
    char err[1024];
    if (pl_avro_hook_build(p, NULL, &h, err, sizeof err)) {
        es_err("Avro decoder not rebuilt, the previous one stays: %s", err);
        p->avro_stamp = stamp; /* logged once per change */
        return;
    }
    p->avro_stamp = stamp;
    if (!h) {
        es_warn("no Avro topic left; the Avro decoder stays until a restart");
        return;
    }
    pthread_mutex_lock(&p->avro_lock);
    es_avro_hook_t *old = p->avro;
    p->avro = h;
    pthread_mutex_unlock(&p->avro_lock);
    es_avro_hook_destroy(old);
    es_info("Avro decoder rebuilt for the onboarded Avro topics");
}

/* --------------------------------------------------------------- dry run */

/* An event a test would deliver, kept until the delivery. */
typedef struct pending_s {
    output_t *out;
    char *tenant;
    const char *route; /* NULL: no route consumes the topic */
} pending_t;

typedef struct dry_s {
    es_pipeline_t *p;
    const es_dry_run_t *q;
    cJSON *steps, *outputs;
    pending_t *pend; /* only with deliver_to */
    size_t npend;
} dry_t;

static const char *verdict_name(es_filter_verdict_t v)
{
    switch (v) {
    case ES_FILTER_KEEP:
        return "keep";
    case ES_FILTER_DROP:
        return "drop";
    case ES_FILTER_REPLACE:
        return "replace";
    case ES_FILTER_FAIL:
        break;
    }
    return "fail";
}

static void dry_event(const es_dry_run_t *q, es_event_t *ev,
                      const es_decoded_t *dec, const es_plugin_t *reader,
                      const char *tenant, const char *route)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    *ev = pl_event_view(dec, reader, tenant, route);
    ev->topic = q->topic;
    ev->partition = -1;
    ev->offset = -1;
    ev->timestamp_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    ev->key = q->key;
    ev->key_len = q->key_len;
    ev->headers = q->headers;
    ev->header_count = q->nh;
}

static void add_tenant(cJSON *o, const char *tenant)
{
    if (tenant)
        cJSON_AddStringToObject(o, "tenant", tenant);
    else
        cJSON_AddNullToObject(o, "tenant");
}

/* A copy of the event that outlives the filter chain's outputs. */
static output_t *own_copy(const es_decoded_t *dec)
{
    output_t *o = calloc(1, sizeof *o);
    cJSON *ce = cJSON_Duplicate(dec->ce, 1);
    char reason[256];
    if (es_decode_validate(ce, &o->dec, reason, sizeof reason)) {
        cJSON_Delete(ce);
        free(o);
        return NULL;
    }
    o->dec.ce = ce;
    o->dec.owned_json = strndup(dec->json, dec->json_len); /* not a reprint */
    o->dec.json = o->dec.owned_json;
    o->dec.json_len = dec->json_len;
    o->refs = 1;
    return o;
}

/* The event's text, as it is delivered, for the report: cJSON's tree
 * printed would show 12345678901234567891 as 1.2345678901234567e+19. */
static cJSON *event_json(const es_decoded_t *dec)
{
    const char *p = dec->json, *end = p + dec->json_len;
    while (p < end && strchr(" \t\r\n", *p))
        p++;
    while (end > p && strchr(" \t\r\n", end[-1]))
        end--;
    char *text = strndup(p, (size_t)(end - p));
    cJSON *raw = cJSON_CreateRaw(text);
    free(text);
    return raw;
}

static void keep_pending(dry_t *t, output_t *clean, const es_decoded_t *dec,
                         const char *tenant, const char *route)
{
    output_t *o = clean ? clean : own_copy(dec);
    if (!o)
        return;
    if (clean)
        clean->refs++;
    t->pend = realloc(t->pend, (t->npend + 1) * sizeof *t->pend);
    t->pend[t->npend++] = (pending_t){o, tenant ? strdup(tenant) : NULL, route};
}

/* What the end of the chain would deliver, after the region check and PII
 * stripping. */
static void dry_output(dry_t *t, route_t *route, const es_decoded_t *dec,
                       route_t *target)
{
    dec = pl_dec_whole(dec); /* the result shows it */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(t->outputs, o);
    char *tenant = pl_lookup_tenant(t->p, route, t->q->topic, t->q->key,
                                    t->q->key_len, dec);
    add_tenant(o, tenant);
    const char *region;
    cJSON *removed = NULL;
    output_t *clean = NULL;
    int bad = 0;
    if (!tenant && route->conf->require_tenant) {
        char why[256];
        pl_no_tenant_reason(t->p, route, t->q->topic, dec, why, sizeof why);
        cJSON_AddStringToObject(o, "dead_letter", why);
        goto done;
    }
    if (es_region_skip(t->p->region, tenant, &region)) {
        cJSON_AddStringToObject(o, "region_skipped", region);
        goto done;
    }
    removed = cJSON_CreateArray();
    clean = pl_strip_pii(t->p, t->q->topic, dec, removed, &bad);
    if (bad) {
        cJSON_AddStringToObject(
            o, "dead_letter",
            "stripping PII fields left an invalid CloudEvent");
        goto done;
    }
    cJSON_AddItemToObject(o, "event", event_json(clean ? &clean->dec : dec));
    cJSON_AddItemToObject(o, "pii_stripped", removed);
    removed = NULL;
    route_t *r = target ? target : route;
    cJSON_AddStringToObject(o, "route", r->conf->name);
    cJSON *dests = cJSON_AddArrayToObject(o, "destinations");
    for (size_t i = 0; i < r->conf->destinations.n; i++)
        cJSON_AddItemToArray(dests,
                             cJSON_CreateString(r->conf->destinations.v[i]));
    if (t->q->deliver_to)
        keep_pending(t, clean, dec, tenant, r->conf->name);
done:
    cJSON_Delete(removed);
    pl_output_release(clean);
    free(tenant);
}

static void dry_route(dry_t *t, route_t *route, const es_decoded_t *dec,
                      size_t fi, route_t *target);

/* A route name from a filter; unknown names would dead-letter. */
static int dry_target(dry_t *t, cJSON *step, const char *name, route_t **target)
{
    if (!name)
        return 0;
    *target = pl_route_by_name(t->p, name);
    if (*target)
        return 0;
    char why[256];
    snprintf(why, sizeof why,
             "filter routed the event to unknown route \"%.100s\"", name);
    cJSON_AddStringToObject(step, "dead_letter", why);
    return -1;
}

static void dry_route(dry_t *t, route_t *route, const es_decoded_t *dec,
                      size_t fi, route_t *target)
{
    if (fi == route->conf->filters.n) {
        dry_output(t, route, dec, target);
        return;
    }
    instance_t *f = route->filters[fi];
    char *tenant = pl_lookup_tenant(t->p, route, t->q->topic, t->q->key,
                                    t->q->key_len, dec);
    es_event_t ev;
    dry_event(t->q, &ev, dec, f->plugin, tenant, route->conf->name);
    collector_t c = {
        {pl_collect_add, pl_collect_set_route, NULL}, NULL, 0, NULL, dec};
    char err[512] = "";
    pthread_mutex_lock(&t->p->filter_lock);
    es_filter_verdict_t v =
        f->plugin->filter(f->handle, &ev, &c.base, err, sizeof err);
    pthread_mutex_unlock(&t->p->filter_lock);
    free(tenant);
    cJSON *step = cJSON_CreateObject();
    cJSON_AddItemToArray(t->steps, step);
    cJSON_AddStringToObject(step, "filter", f->conf->name);
    cJSON_AddStringToObject(step, "event_id", dec->id);
    cJSON_AddStringToObject(step, "verdict", verdict_name(v));
    if (v == ES_FILTER_KEEP) {
        if (dry_target(t, step, c.route, &target) == 0)
            dry_route(t, route, dec, fi + 1, target);
    } else if (v == ES_FILTER_REPLACE) {
        cJSON_AddNumberToObject(step, "outputs", (double)c.n);
        for (size_t i = 0; i < c.n; i++) {
            route_t *tt = target;
            if (dry_target(t, step, c.items[i].route, &tt) == 0)
                dry_route(t, route, &c.items[i].out->dec, fi + 1, tt);
        }
    } else if (v != ES_FILTER_DROP) {
        cJSON_AddStringToObject(step, "dead_letter",
                                err[0] ? err : "filter failed");
    }
    pl_collector_clear(&c);
}

/* Decodes the sample like the pipeline would: Avro for Avro topics (with a
 * decoder of its own: the pipeline's may be rebuilt under it), else JSON. */
static int dry_decode(es_pipeline_t *p, const es_dry_run_t *q,
                      es_decoded_t *dec, cJSON *res)
{
    es_avro_hook_t *h = NULL;
    char reason[600];
    if (pl_avro_hook_build(p, q->topic, &h, reason, sizeof reason)) {
        cJSON_AddStringToObject(res, "decode_error", reason);
        return -1;
    }
    int avro = es_avro_hook_wants(h, q->topic);
    cJSON_AddStringToObject(res, "format", avro ? "avro" : "json");
    int rc = 0;
    if (avro) {
        es_status_t st =
            es_avro_hook_decode(h, q->topic, q->value, q->len, q->headers,
                                q->nh, dec, reason, sizeof reason);
        if (st != ES_OK) {
            if (st == ES_RETRY)
                strncat(reason, " (transient: the pipeline would retry)",
                        sizeof reason - strlen(reason) - 1);
            rc = -1;
        }
    } else if (es_decode_record(q->value, q->len, q->headers, q->nh,
                                (size_t)p->conf->max_event_bytes, 1, dec,
                                reason, sizeof reason)) {
        rc = -1;
    }
    es_avro_hook_destroy(h);
    if (rc)
        cJSON_AddStringToObject(res, "decode_error", reason);
    return rc;
}

/* ---------------------------------------------------- real test delivery */

/* Host services of a test instance: completions wake the API thread; no
 * emit; a state store of its own (<name>.topic-test). */
typedef struct test_host_s {
    es_host_t host;
    es_pipeline_t *p;
    char name[300];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    es_result_t *res;
    int *done;
    size_t n;
    es_state_t *state;
} test_host_t;

static test_host_t *test_of(const es_host_t *h)
{
    return h->opaque;
}

static void test_counter_add(const es_host_t *h, const char *name,
                             uint64_t delta)
{
    (void)h, (void)name, (void)delta; /* tests do not touch the metrics */
}

static void test_complete(const es_host_t *h, uint64_t token,
                          es_status_t status, const char *reason)
{
    test_host_t *t = test_of(h);
    pthread_mutex_lock(&t->lock);
    if (token >= 1 && token <= t->n && !t->done[token - 1]) {
        t->res[token - 1].status = status;
        snprintf(t->res[token - 1].reason, sizeof t->res[token - 1].reason,
                 "%s", reason ? reason : "");
        t->done[token - 1] = 1;
        pthread_cond_broadcast(&t->cond);
    }
    pthread_mutex_unlock(&t->lock);
}

static int test_emit(const es_host_t *h, uint64_t parent_token,
                     const char *topic, const void *key, size_t key_len,
                     const char *json, size_t json_len, char *errstr,
                     size_t errstr_size)
{
    snprintf(errstr, errstr_size,
             "emit is not available to topic-test deliveries");
    return -1;
}

static es_state_t *test_state(const es_host_t *h)
{
    test_host_t *t = test_of(h);
    if (!t->state) {
        char err[512];
        t->state =
            es_state_open(t->p->conf->state_dir, t->name, err, sizeof err);
        if (!t->state)
            es_log(ES_LOG_ERROR, t->name, "%s", err);
    }
    return t->state;
}

static int test_state_get(const es_host_t *h, const char *key, char **value,
                          size_t *len)
{
    es_state_t *s = test_state(h);
    return s ? es_state_get(s, key, value, len) : -1;
}

static int test_state_put(const es_host_t *h, const char *key,
                          const void *value, size_t len)
{
    es_state_t *s = test_state(h);
    return s ? es_state_put(s, key, value, len) : -1;
}

static int test_state_delete(const es_host_t *h, const char *key)
{
    es_state_t *s = test_state(h);
    return s ? es_state_delete(s, key) : -1;
}

static int test_state_begin(const es_host_t *h)
{
    es_state_t *s = test_state(h);
    return s ? es_state_begin(s) : -1;
}

static int test_state_commit(const es_host_t *h)
{
    es_state_t *s = test_state(h);
    return s ? es_state_commit(s) : -1;
}

static int test_state_rollback(const es_host_t *h)
{
    es_state_t *s = test_state(h);
    return s ? es_state_rollback(s) : -1;
}

static void test_free(void *ptr)
{
    free(ptr);
}

static void test_host_init(test_host_t *t, es_pipeline_t *p, const char *name,
                           size_t n)
{
    es_host_t *h = &t->host;
    t->p = p;
    snprintf(t->name, sizeof t->name, "%s.topic-test", name);
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    t->n = n;
    t->res = calloc(n + 1, sizeof *t->res);
    t->done = calloc(n + 1, sizeof *t->done);
    h->abi = ES_PLUGIN_ABI_VERSION;
    h->size = sizeof *h;
    h->event_size = sizeof(es_event_t);
    h->filter_add_copies = pl_collect_add_copies;
    h->instance_name = t->name;
    h->state_dir = p->conf->state_dir;
    h->log = pl_host_log;
    h->counter_add = test_counter_add;
    h->complete = test_complete;
    h->emit = test_emit;
    h->state_get = test_state_get;
    h->state_put = test_state_put;
    h->state_delete = test_state_delete;
    h->state_begin = test_state_begin;
    h->state_commit = test_state_commit;
    h->state_rollback = test_state_rollback;
    h->free = test_free;
    h->opaque = t;
}

static void test_host_clear(test_host_t *t)
{
    es_state_close(t->state);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
    free(t->res);
    free(t->done);
}

static const char *status_name(es_status_t s)
{
    switch (s) {
    case ES_OK:
        return "ok";
    case ES_RETRY:
        return "retry";
    case ES_FAIL:
        return "fail";
    case ES_PENDING:
        break;
    }
    return "invalid";
}

int es_pipeline_test_endpoint(es_pipeline_t *p, const char *name, char *errstr,
                              size_t errstr_size)
{
    const es_instance_conf_t *ic = es_config_instance(p->conf, name);
    const es_plugin_t *pl = ic ? es_loader_find(p->loader, ic->plugin) : NULL;
    if (!ic || !pl) {
        snprintf(errstr, errstr_size, "deliver_to: no instance named \"%s\"",
                 name);
        return 404;
    }
    if (!ic->test_endpoint) {
        snprintf(errstr, errstr_size,
                 "deliver_to: instance \"%s\" is not a test endpoint (set "
                 "\"test_endpoint\": true in its config)",
                 name);
        return 403;
    }
    if (pl->kind == ES_KIND_FILTER) {
        snprintf(errstr, errstr_size,
                 "deliver_to: instance \"%s\" is a filter, not a sink or "
                 "handler",
                 name);
        return 400;
    }
    return 0;
}

/* Waits for PENDING events, flushing as the pipeline would; 0 when all
 * are done. */
static int wait_done(test_host_t *t, const es_plugin_t *pl, void *handle,
                     int timeout_ms)
{
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += timeout_ms / 1000;
    end.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (end.tv_nsec >= 1000000000L) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000L;
    }
    for (;;) {
        if (pl->flush)
            pl->flush(handle);
        pthread_mutex_lock(&t->lock);
        size_t left = 0;
        for (size_t i = 0; i < t->n; i++)
            left += !t->done[i];
        struct timespec now, tick;
        clock_gettime(CLOCK_REALTIME, &now);
        int expired = now.tv_sec > end.tv_sec ||
                      (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec);
        if (left && !expired) {
            tick = now;
            tick.tv_nsec += FLUSH_INTERVAL_MS * 1000000L;
            if (tick.tv_nsec >= 1000000000L) {
                tick.tv_sec++;
                tick.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&t->cond, &t->lock, &tick);
        }
        pthread_mutex_unlock(&t->lock);
        if (!left)
            return 0;
        if (expired)
            return -1;
    }
}

static void delivery_report(cJSON *d, const dry_t *t, test_host_t *th)
{
    cJSON *results = cJSON_AddArrayToObject(d, "results");
    size_t ok = 0;
    pthread_mutex_lock(&th->lock);
    for (size_t i = 0; i < t->npend; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddItemToArray(results, r);
        if (t->pend[i].route)
            cJSON_AddStringToObject(r, "route", t->pend[i].route);
        cJSON_AddStringToObject(r, "event_id", t->pend[i].out->dec.id);
        cJSON_AddStringToObject(r, "status",
                                th->done[i] ? status_name(th->res[i].status)
                                            : "timeout");
        if (th->done[i] && th->res[i].reason[0])
            cJSON_AddStringToObject(r, "reason", th->res[i].reason);
        ok += th->done[i] && th->res[i].status == ES_OK;
    }
    pthread_mutex_unlock(&th->lock);
    cJSON_AddNumberToObject(d, "events", (double)t->npend);
    cJSON_AddNumberToObject(d, "ok", (double)ok);
}

/* Serialises test deliveries: one fresh instance at a time. */
static pthread_mutex_t test_lock = PTHREAD_MUTEX_INITIALIZER;

static void deliver_for_real(es_pipeline_t *p, dry_t *t, cJSON *res)
{
    const es_dry_run_t *q = t->q;
    const es_instance_conf_t *ic = es_config_instance(p->conf, q->deliver_to);
    const es_plugin_t *pl = es_loader_find(p->loader, ic->plugin);
    cJSON *d = cJSON_AddObjectToObject(res, "delivery");
    cJSON_AddStringToObject(d, "endpoint", q->deliver_to);
    cJSON_AddStringToObject(d, "plugin", pl->name);
    test_host_t th = {0};
    test_host_init(&th, p, q->deliver_to, t->npend);
    es_event_t *evs = calloc(t->npend + 1, sizeof *evs);
    const es_event_t **ptrs = calloc(t->npend + 1, sizeof *ptrs);
    es_result_t *res_now = calloc(t->npend + 1, sizeof *res_now);
    void *handle = NULL;
    char err[1024] = "";
    pthread_mutex_lock(&test_lock);
    if (pl->init(&th.host, ic->config, &handle, err, sizeof err)) {
        cJSON_AddStringToObject(d, "error", err[0] ? err : "init failed");
        goto done;
    }
    for (size_t i = 0; i < t->npend; i++) {
        dry_event(q, &evs[i], &t->pend[i].out->dec, pl, t->pend[i].tenant,
                  t->pend[i].route);
        evs[i].token = i + 1;
        ptrs[i] = &evs[i];
    }
    if (t->npend)
        pl->deliver(handle, ptrs, t->npend, res_now);
    for (size_t i = 0; i < t->npend; i++)
        if (res_now[i].status != ES_PENDING)
            test_complete(&th.host, i + 1, res_now[i].status,
                          res_now[i].reason);
    wait_done(&th, pl, handle, q->timeout_ms);
    pl->destroy(handle); /* may still complete: th lives on */
    delivery_report(d, t, &th);
done:
    pthread_mutex_unlock(&test_lock);
    cJSON_ReplaceItemInObject(
        res, "delivered",
        cJSON_CreateBool(t->npend > 0 && cJSON_GetObjectItem(d, "ok") &&
                         cJSON_GetObjectItem(d, "ok")->valuedouble ==
                             (double)t->npend));
    free(evs);
    free(ptrs);
    free(res_now);
    test_host_clear(&th);
}

/* No route consumes the topic: a test delivery sends the decoded event,
 * PII stripped, when the region check lets it through. */
static void pending_without_route(dry_t *t, const es_decoded_t *dec,
                                  const char *tenant, cJSON *res)
{
    const char *region;
    if (es_region_skip(t->p->region, tenant, &region)) {
        cJSON_AddStringToObject(res, "region_skipped", region);
        return;
    }
    int bad = 0;
    output_t *clean = pl_strip_pii(t->p, t->q->topic, dec, NULL, &bad);
    if (!bad)
        keep_pending(t, clean, dec, tenant, NULL);
    pl_output_release(clean);
}

static void pending_free(dry_t *t)
{
    for (size_t i = 0; i < t->npend; i++) {
        pl_output_release(t->pend[i].out);
        free(t->pend[i].tenant);
    }
    free(t->pend);
}

cJSON *es_pipeline_dry_run(es_pipeline_t *p, const es_dry_run_t *q,
                           es_dry_pending_t **pending)
{
    *pending = NULL;
    cJSON *res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "topic", q->topic);
    es_topics_lock(p->topics);
    const es_topic_t *ot = es_topics_find(p->topics, q->topic);
    if (ot)
        cJSON_AddItemToObject(res, "onboarded", es_topic_json(ot));
    else
        cJSON_AddNullToObject(res, "onboarded");
    es_topics_unlock(p->topics);
    cJSON_AddFalseToObject(res, "delivered");
    es_decoded_t dec = {0};
    if (dry_decode(p, q, &dec, res))
        return res;
    cJSON_AddItemToObject(res, "decoded", event_json(&dec));
    char *tenant =
        pl_lookup_tenant(p, NULL, q->topic, q->key, q->key_len, &dec);
    add_tenant(res, tenant);
    cJSON *routes = cJSON_AddArrayToObject(res, "routes");
    dry_t t = {p, q, NULL, NULL, NULL, 0};
    for (size_t i = 0; i < p->nroutes; i++) {
        if (!pl_route_wants(&p->routes[i], q->topic))
            continue;
        cJSON *r = cJSON_CreateObject();
        cJSON_AddItemToArray(routes, r);
        cJSON_AddStringToObject(r, "route", p->routes[i].conf->name);
        t.steps = cJSON_AddArrayToObject(r, "filters");
        t.outputs = cJSON_AddArrayToObject(r, "outputs");
        dry_route(&t, &p->routes[i], &dec, 0, NULL);
    }
    if (q->deliver_to && cJSON_GetArraySize(routes) == 0)
        pending_without_route(&t, &dec, tenant, res);
    if (q->deliver_to && (*pending = malloc(sizeof **pending)))
        **pending = t; /* the outputs are its own copies */
    else
        pending_free(&t);
    free(tenant);
    es_decoded_clear(&dec);
    return res;
}

void es_pipeline_dry_deliver(es_dry_pending_t *t, cJSON *report)
{
    deliver_for_real(t->p, t, report);
    pending_free(t);
    free(t);
}
