/*
 * Topic testing (POST /v1/topics/{topic}/test): the routing of one sample
 * event, step by step, without delivering anything.
 */
#include "pipeline_int.h"

/* ------------------------------------------------ topic testing (dry run) */

es_topics_t *es_pipeline_topics(es_pipeline_t *p)
{
    return p->topics;
}

es_usage_t *es_pipeline_usage(es_pipeline_t *p)
{
    return p->usage;
}

typedef struct dry_s {
    es_pipeline_t *p;
    const char *topic;
    const void *key;
    size_t key_len;
    const es_header_t *headers;
    size_t nh;
    cJSON *steps, *outputs;
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

static void dry_event(const dry_t *t, es_event_t *ev, const es_decoded_t *dec,
                      const char *tenant, const char *route)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    *ev = pl_event_view(dec, tenant, route);
    ev->topic = t->topic;
    ev->partition = -1;
    ev->offset = -1;
    ev->timestamp_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    ev->key = t->key;
    ev->key_len = t->key_len;
    ev->headers = t->headers;
    ev->header_count = t->nh;
}

static void add_tenant(cJSON *o, const char *tenant)
{
    if (tenant)
        cJSON_AddStringToObject(o, "tenant", tenant);
    else
        cJSON_AddNullToObject(o, "tenant");
}

/* What the end of the chain would deliver, after PII stripping. */
static void dry_output(dry_t *t, route_t *route, const es_decoded_t *dec,
                       route_t *target)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(t->outputs, o);
    char *tenant =
        pl_lookup_tenant(t->p, route, t->topic, t->key, t->key_len, dec);
    add_tenant(o, tenant);
    free(tenant);
    if (!tenant && route->conf->require_tenant) {
        cJSON_AddStringToObject(o, "pl_dead_letter",
                                "no tenant found where the route looks for it");
        return;
    }
    cJSON *removed = cJSON_CreateArray();
    int bad = 0;
    output_t *clean = pl_strip_pii(t->p, t->topic, dec, removed, &bad);
    if (bad) {
        cJSON_Delete(removed);
        cJSON_AddStringToObject(
            o, "pl_dead_letter",
            "stripping PII fields left an invalid CloudEvent");
        return;
    }
    cJSON_AddItemToObject(o, "event",
                          cJSON_Duplicate(clean ? clean->dec.ce : dec->ce, 1));
    cJSON_AddItemToObject(o, "pii_stripped", removed);
    route_t *r = target ? target : route;
    cJSON_AddStringToObject(o, "route", r->conf->name);
    cJSON *dests = cJSON_AddArrayToObject(o, "destinations");
    for (size_t i = 0; i < r->conf->destinations.n; i++)
        cJSON_AddItemToArray(dests,
                             cJSON_CreateString(r->conf->destinations.v[i]));
    pl_output_release(clean);
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
    cJSON_AddStringToObject(step, "pl_dead_letter", why);
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
    char *tenant =
        pl_lookup_tenant(t->p, route, t->topic, t->key, t->key_len, dec);
    es_event_t ev;
    dry_event(t, &ev, dec, tenant, route->conf->name);
    collector_t c = {
        {pl_collect_add, pl_collect_set_route, NULL}, NULL, 0, NULL};
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
        cJSON_AddStringToObject(step, "pl_dead_letter",
                                err[0] ? err : "filter failed");
    }
    pl_collector_clear(&c);
}

cJSON *es_pipeline_dry_run(es_pipeline_t *p, const char *topic,
                           const void *value, size_t len, const void *key,
                           size_t key_len, const es_header_t *headers,
                           size_t nh)
{
    cJSON *res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "topic", topic);
    es_topics_lock(p->topics);
    const es_topic_t *ot = es_topics_find(p->topics, topic);
    if (ot)
        cJSON_AddItemToObject(res, "onboarded", es_topic_json(ot));
    else
        cJSON_AddNullToObject(res, "onboarded");
    es_topics_unlock(p->topics);
    cJSON_AddFalseToObject(res, "delivered");
    es_decoded_t dec = {0};
    char reason[256];
    if (es_decode_record(value, len, headers, nh,
                         (size_t)p->conf->max_event_bytes, &dec, reason,
                         sizeof reason)) {
        cJSON_AddStringToObject(res, "decode_error", reason);
        return res;
    }
    cJSON_AddItemToObject(res, "decoded", cJSON_Duplicate(dec.ce, 1));
    char *tenant = pl_lookup_tenant(p, NULL, topic, key, key_len, &dec);
    add_tenant(res, tenant);
    free(tenant);
    cJSON *routes = cJSON_AddArrayToObject(res, "routes");
    for (size_t i = 0; i < p->nroutes; i++) {
        if (!pl_route_wants(&p->routes[i], topic))
            continue;
        cJSON *r = cJSON_CreateObject();
        cJSON_AddItemToArray(routes, r);
        cJSON_AddStringToObject(r, "route", p->routes[i].conf->name);
        dry_t t = {p,
                   topic,
                   key,
                   key_len,
                   headers,
                   nh,
                   cJSON_AddArrayToObject(r, "filters"),
                   cJSON_AddArrayToObject(r, "outputs")};
        dry_route(&t, &p->routes[i], &dec, 0, NULL);
    }
    es_decoded_clear(&dec);
    return res;
}
