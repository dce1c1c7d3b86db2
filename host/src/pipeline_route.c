/*
 * Routing a record: its tenant, the route's filter chain (with the routes
 * filters name), PII stripping, and one delivery per destination.
 */
#include "pipeline_int.h"

/* ---------------------------------------------------------------- routing */

void pl_note_filter(es_pipeline_t *p, const instance_t *f)
{
    if (es_plugin_flags(f->plugin) & ES_PLUGIN_JSON_INDEX)
        atomic_store_explicit(&p->index_events, 1, memory_order_relaxed);
}

/* The tree is a cache of the text, built on first need by the one thread
 * that has the event at the time: hence the cast. */
const es_decoded_t *pl_dec_whole(const es_decoded_t *dec)
{
    if (dec->shallow)
        es_decode_full((es_decoded_t *)dec);
    return dec;
}

/* The fields every event view takes from its decoded CloudEvent; callers
 * fill in where the event came from. */
es_event_t pl_event_view(const es_decoded_t *dec, const es_plugin_t *reader,
                         const char *tenant, const char *route)
{
    if (!(es_plugin_flags(reader) & ES_PLUGIN_TEXT_ONLY))
        dec = pl_dec_whole(dec);
    return (es_event_t){
        .json = dec->json,
        .json_len = dec->json_len,
        .ce = dec->shallow ? NULL : dec->ce,
        .id = dec->id,
        .source = dec->source,
        .type = dec->type,
        .subject = dec->subject,
        .time = dec->time,
        .tenant = tenant,
        .route = route,
        .attempt = 1,
        .index =
            es_plugin_flags(reader) & ES_PLUGIN_JSON_INDEX ? dec->index : NULL,
    };
}

void pl_build_event(es_event_t *ev, const record_t *rec,
                    const es_decoded_t *dec, const es_plugin_t *reader,
                    const char *tenant, const char *route, uint64_t token,
                    uint32_t attempt)
{
    const rd_kafka_message_t *m = rec->msg;
    rd_kafka_timestamp_type_t tstype;
    *ev = pl_event_view(dec, reader, tenant, route);
    ev->topic = rd_kafka_topic_name(m->rkt);
    ev->partition = m->partition;
    ev->offset = m->offset;
    ev->timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
    ev->key = m->key;
    ev->key_len = m->key_len;
    ev->headers = rec->headers;
    ev->header_count = rec->nh;
    ev->token = token;
    ev->attempt = attempt;
}

/* Where route r looks for the tenant of topic's events: its own spec, the
 * onboarded topic's, else the default. `r` NULL: no route (usage of
 * consumed events). Under the topics lock. */
static const es_strv_t *tenant_spec(es_pipeline_t *p, const route_t *r,
                                    const char *topic)
{
    static char *defaults[] = {"tenantid", "data.tenantId", "key"};
    static const es_strv_t default_spec = {defaults, 3};
    if (r && r->conf->tenant.n)
        return &r->conf->tenant;
    const es_topic_t *ot = es_topics_find(p->topics, topic);
    return ot ? &ot->tenant : &default_spec;
}

void pl_no_tenant_reason(es_pipeline_t *p, const route_t *r, const char *topic,
                         const es_decoded_t *dec, char *out, size_t size)
{
    es_topics_lock(p->topics);
    const es_strv_t *spec = tenant_spec(p, r, topic);
    const char *twice = NULL;
    dec = pl_dec_whole(dec);
    for (size_t i = 0; i < spec->n && !twice; i++)
        if (es_decode_lookup_repeated(dec->ce, spec->v[i]))
            twice = spec->v[i];
    if (twice)
        snprintf(out, size,
                 "no tenant found where the route looks for it: a key on the "
                 "way to %.128s is given twice (which one is meant would be a "
                 "guess)",
                 twice);
    else
        snprintf(out, size, "no tenant found where the route looks for it");
    es_topics_unlock(p->topics);
}

/* The tenant of dec as route r finds it (see tenant_spec). */
char *pl_lookup_tenant(es_pipeline_t *p, const route_t *r, const char *topic,
                       const void *key, size_t key_len, const es_decoded_t *dec)
{
    char *t = NULL;
    es_topics_lock(p->topics);
    const es_strv_t *spec = tenant_spec(p, r, topic);
    for (size_t i = 0; i < spec->n && !t; i++) {
        if (strchr(spec->v[i], '.')) /* a path into data: the whole tree */
            dec = pl_dec_whole(dec);
        t = es_decode_lookup(dec->ce, key, key_len, spec->v[i]);
    }
    es_topics_unlock(p->topics);
    return t;
}

static int has_own_spec(const route_t *r)
{
    return r && r->conf->tenant.n;
}

/* The tenant of dec (the record's event or a filter's output) for route r;
 * the record's own, for a route without a spec of its own, was found once
 * already. */
static char *find_tenant(es_pipeline_t *p, const route_t *r,
                         const record_t *rec, const es_decoded_t *dec)
{
    if (dec == &rec->dec && rec->tenant_known && !has_own_spec(r))
        return rec->tenant ? strdup(rec->tenant) : NULL;
    return pl_lookup_tenant(p, r, rd_kafka_topic_name(rec->msg->rkt),
                            rec->msg->key, rec->msg->key_len, dec);
}

/* The onboarded topic's PII fields, removed after the filter chain and
 * before every destination. NULL when the event holds none (nothing is
 * re-serialised then); *bad set when the result is not a CloudEvent. */
output_t *pl_strip_pii(es_pipeline_t *p, const char *topic,
                       const es_decoded_t *dec, cJSON *removed, int *bad)
{
    output_t *o = NULL;
    es_topics_lock(p->topics);
    const es_topic_t *t = es_topics_find(p->topics, topic);
    if (t)
        dec = pl_dec_whole(dec);
    if (t && es_topic_has_pii(t, dec->ce)) {
        cJSON *ce = cJSON_Duplicate(dec->ce, 1);
        es_topic_strip_pii(t, ce, removed);
        o = calloc(1, sizeof *o);
        char reason[256];
        if (es_decode_validate(ce, &o->dec, reason, sizeof reason)) {
            cJSON_Delete(ce);
            free(o);
            o = NULL;
            *bad = 1;
        } else {
            o->dec.ce = ce;
            o->dec.owned_json = es_topic_strip_pii_text(
                t, dec->json, dec->json_len, &o->dec.json_len);
            if (!o->dec.owned_json) { /* as es_json_parse does */
                fprintf(stderr, "eventstreamd: out of memory stripping PII\n");
                abort();
            }
            o->dec.json = o->dec.owned_json;
            o->refs = 1;
        }
    }
    es_topics_unlock(p->topics);
    return o;
}

route_t *pl_route_by_name(es_pipeline_t *p, const char *name)
{
    for (size_t i = 0; i < p->nroutes; i++)
        if (!strcmp(p->routes[i].conf->name, name))
            return &p->routes[i];
    return NULL;
}

int pl_collect_add(es_filter_out_t *o, const char *json, size_t len,
                   const char *route, char *errstr, size_t errstr_size)
{
    return pl_collect_add_copies(o, json, len, route, NULL, 0, errstr,
                                 errstr_size);
}

int pl_collect_add_copies(es_filter_out_t *o, const char *json, size_t len,
                          const char *route, const es_json_copy_t *copies,
                          size_t ncopies, char *errstr, size_t errstr_size)
{
    collector_t *c = (collector_t *)o;
    const es_decoded_t *in = c->input;
    es_output_copies_t from = {in ? in->json : NULL,
                               in ? in->json_len : 0,
                               in ? in->index : NULL,
                               copies,
                               ncopies,
                               in && in->index ? in->ce : NULL};
    output_t *out = calloc(1, sizeof *out);
    if (es_decode_output_copies(json, len, &from, &out->dec, errstr,
                                errstr_size)) {
        free(out);
        return -1;
    }
    out->refs = 1; /* the collector's reference */
    c->items = realloc(c->items, (c->n + 1) * sizeof *c->items);
    c->items[c->n++] = (collected_t){out, route ? strdup(route) : NULL};
    return 0;
}

void pl_collect_set_route(es_filter_out_t *o, const char *route)
{
    collector_t *c = (collector_t *)o;
    free(c->route);
    c->route = route ? strdup(route) : NULL;
}

void pl_collector_clear(collector_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        pl_output_release(c->items[i].out);
        free(c->items[i].route);
    }
    free(c->items);
    free(c->route);
}

static void route_event(es_pipeline_t *p, record_t *rec, route_t *route,
                        output_t *out, size_t fi, route_t *target);

static void deliver_to_destinations(es_pipeline_t *p, record_t *rec,
                                    route_t *route, output_t *out,
                                    route_t *target)
{
    const es_decoded_t *dec = out ? &out->dec : &rec->dec;
    char *tenant = find_tenant(p, route, rec, dec);
    if (!tenant && route->conf->require_tenant) {
        char why[256];
        es_counter_add(route->tenantless, 1);
        pl_no_tenant_reason(p, route, rd_kafka_topic_name(rec->msg->rkt), dec,
                            why, sizeof why);
        pl_dead_letter_record(p, rec, route, "route", why);
        return;
    }
    if (route->sub && !pl_sub_tenant_is(route, tenant)) {
        es_counter_add(route->filtered, 1); /* a filter changed the tenant */
        free(tenant);
        return;
    }
    const char *region;
    if (pl_region_skip(p, route, tenant, &region)) {
        free(tenant);
        return; /* another region forwards it: no delivery, no dead letter */
    }
    int bad = 0;
    output_t *clean =
        pl_strip_pii(p, rd_kafka_topic_name(rec->msg->rkt), dec, NULL, &bad);
    if (bad) {
        pl_dead_letter_record(
            p, rec, route, "host",
            "stripping PII fields left an invalid CloudEvent");
        free(tenant);
        return;
    }
    route_t *r = target ? target : route;
    for (size_t i = 0; i < r->conf->destinations.n; i++)
        pl_enqueue(r->dests[i], pl_delivery_new(p, rec, clean ? clean : out, r,
                                                r->dests[i], tenant));
    pl_output_release(clean); /* the deliveries hold their own references */
    free(tenant);
}

/* A KEEP verdict may name a route; REPLACE outputs may each name one. */
static int resolve_target(es_pipeline_t *p, record_t *rec, route_t *route,
                          instance_t *f, const char *name, route_t **target)
{
    if (!name)
        return 0;
    /* A subscription's filter may not send its tenant's events elsewhere. */
    *target = route->sub ? (strcmp(name, route->conf->name) ? NULL : route)
                         : pl_route_by_name(p, name);
    if (*target)
        return 0;
    char why[256];
    snprintf(why, sizeof why,
             "filter routed the event to unknown route "
             "\"%.100s\"",
             name);
    pl_dead_letter_record(p, rec, route, f->plugin->name, why);
    return -1;
}

static void run_replacements(es_pipeline_t *p, record_t *rec, route_t *route,
                             instance_t *f, collector_t *c, size_t fi,
                             route_t *target)
{
    for (size_t i = 0; i < c->n; i++) {
        route_t *t = target;
        if (resolve_target(p, rec, route, f, c->items[i].route, &t) == 0)
            route_event(p, rec, route, c->items[i].out, fi + 1, t);
    }
}

/* Calls filter fi of the route on the event (any thread: the filter stage
 * calls it too); the outputs go to c. */
es_filter_verdict_t pl_filter_call(es_pipeline_t *p, record_t *rec,
                                   route_t *route, output_t *out, size_t fi,
                                   collector_t *c, char *err, size_t err_size)
{
    instance_t *f = route->filters[fi];
    const es_decoded_t *dec = out ? &out->dec : &rec->dec;
    char *tenant = find_tenant(p, route, rec, dec);
    es_event_t ev;
    pl_build_event(&ev, rec, dec, f->plugin, tenant, route->conf->name, 0, 1);
    *c = (collector_t){
        {pl_collect_add, pl_collect_set_route, NULL}, NULL, 0, NULL, dec};
    err[0] = '\0';
    pthread_mutex_lock(&p->filter_lock);
    es_filter_verdict_t v =
        f->plugin->filter(f->handle, &ev, &c->base, err, err_size);
    pthread_mutex_unlock(&p->filter_lock);
    free(tenant);
    return v;
}

/* What filter fi's verdict does with the event: the next filter, the
 * destinations, a dead letter or nothing. */
void pl_filter_verdict(es_pipeline_t *p, record_t *rec, route_t *route,
                       output_t *out, size_t fi, route_t *target,
                       es_filter_verdict_t v, collector_t *c, const char *err)
{
    instance_t *f = route->filters[fi];
    switch (v) {
    case ES_FILTER_KEEP:
        if (resolve_target(p, rec, route, f, c->route, &target) == 0)
            route_event(p, rec, route, out, fi + 1, target);
        break;
    case ES_FILTER_DROP:
        es_counter_add(route->filtered, 1);
        break;
    case ES_FILTER_REPLACE:
        if (c->n == 0)
            es_counter_add(route->filtered, 1);
        run_replacements(p, rec, route, f, c, fi, target);
        break;
    case ES_FILTER_FAIL:
    default:
        pl_dead_letter_record(p, rec, route, f->plugin->name,
                              err[0] ? err : "filter failed");
        break;
    }
}

static void route_event(es_pipeline_t *p, record_t *rec, route_t *route,
                        output_t *out, size_t fi, route_t *target)
{
    if (fi == route->conf->filters.n) {
        deliver_to_destinations(p, rec, route, out, target);
        return;
    }
    if (pl_stage_offer(p, rec, route, out, fi, target))
        return; /* the verdict comes back through pl_stage_collect */
    collector_t c;
    char err[512];
    es_filter_verdict_t v =
        pl_filter_call(p, rec, route, out, fi, &c, err, sizeof err);
    pl_filter_verdict(p, rec, route, out, fi, target, v, &c, err);
    pl_collector_clear(&c);
}

void pl_route_record(es_pipeline_t *p, record_t *rec)
{
    consumer_t *c = rec->part->c;
    const char *topic = rd_kafka_topic_name(rec->msg->rkt);
    /* Consumed usage: the tenant as the first route reading the topic
     * finds it, so it matches the delivered rows. */
    route_t *first = NULL;
    for (size_t i = 0; i < c->nroutes && !first; i++)
        if (pl_route_wants(c->routes[i], topic))
            first = c->routes[i];
    char *tenant = pl_lookup_tenant(p, first, topic, rec->msg->key,
                                    rec->msg->key_len, &rec->dec);
    es_usage_add(p->usage, tenant, topic, NULL, rec->msg->len);
    /* Subscriptions find the tenant with no spec of their own: the same
     * lookup unless the first route has one. */
    char *sub_tenant = NULL;
    int own_spec = has_own_spec(first);
    if (!own_spec && !rec->tenant_known) {
        rec->tenant = tenant ? strdup(tenant) : NULL;
        rec->tenant_known = 1;
    }
    for (size_t i = 0; i < c->nroutes; i++) {
        route_t *r = c->routes[i];
        if (!pl_route_wants(r, topic))
            continue;
        if (r->sub && own_spec && !sub_tenant)
            sub_tenant = pl_lookup_tenant(p, r, topic, rec->msg->key,
                                          rec->msg->key_len, &rec->dec);
        if (r->sub && !pl_sub_admits(r, rec, own_spec ? sub_tenant : tenant))
            continue; /* another tenant's, or older than the subscription */
        es_counter_add(r->consumed, 1);
        route_event(p, rec, r, NULL, 0, NULL);
    }
    free(sub_tenant);
    free(tenant);
}

int pl_route_wants(const route_t *r, const char *topic)
{
    for (size_t i = 0; i < r->conf->topics.n; i++)
        if (!strcmp(r->conf->topics.v[i], topic))
            return 1;
    return 0;
}

/* The tenant's primary region is elsewhere (or unknown with "unknown_tenant":
 * "skip"): counted per route and region. */
int pl_region_skip(es_pipeline_t *p, const route_t *r, const char *tenant,
                   const char **region)
{
    if (!es_region_skip(p->region, tenant, region))
        return 0;
    char labels[512], route[200], reg[200];
    es_metrics_label_escape(route, sizeof route, r->conf->name);
    es_metrics_label_escape(reg, sizeof reg, *region);
    snprintf(labels, sizeof labels, "route=\"%s\",region=\"%s\"", route, reg);
    es_counter_add(es_metrics_counter("es_region_skipped_total", labels), 1);
    return 1;
}
