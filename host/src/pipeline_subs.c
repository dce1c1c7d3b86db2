/*
 * Subscriptions on the pipeline. Each active subscription is a bundle: a
 * destination instance named after its id (so the per-destination metrics
 * are per subscription), an optional filter instance, and one route per
 * consumer group it reads through: the daemon's group for multi-tenant
 * topics, "<group_id>.<tenant>" for single-tenant ones (seed 002). A route
 * takes only its tenant's records at or past the offsets recorded when the
 * subscription was activated. A replaced or deleted bundle is detached at
 * once and freed when its last in-flight delivery is done.
 */
#include "pipeline_subs_int.h"

/* ------------------------------------------------------------ routes */

int64_t pl_sub_start(const route_t *r, const char *topic, int32_t partition)
{
    if (!r->sub)
        return -1;
    for (size_t i = 0; i < r->sub->nstarts; i++)
        if (r->sub->starts[i].partition == partition &&
            !strcmp(r->sub->starts[i].topic, topic))
            return r->sub->starts[i].offset;
    return 0; /* the partition is newer than the subscription */
}

int pl_sub_tenant_is(const route_t *r, const char *tenant)
{
    return tenant && !strcmp(tenant, r->sub->tenant);
}

int pl_sub_admits(const route_t *r, const record_t *rec, const char *tenant)
{
    return pl_sub_tenant_is(r, tenant) &&
           rec->msg->offset >= pl_sub_start(r,
                                            rd_kafka_topic_name(rec->msg->rkt),
                                            rec->msg->partition);
}

/* --------------------------------------------------------- instances */

static instance_t *instance_new(es_pipeline_t *p, es_instance_conf_t *ic,
                                es_plugin_kind_t kind, const char *key,
                                char *errstr, size_t errstr_size)
{
    char err[1024] = "";
    instance_t *inst = calloc(1, sizeof *inst);
    inst->p = p;
    inst->conf = ic;
    pthread_mutex_init(&inst->state_lock, NULL);
    inst->plugin = es_loader_find(p->loader, ic->plugin);
    if (!inst->plugin || inst->plugin->kind != kind) {
        snprintf(errstr, errstr_size,
                 "%s.type: no %s plugin named \"%s\" is "
                 "loaded",
                 key, es_plugin_kind_name(kind), ic->plugin);
        inst->plugin = NULL;
        goto fail;
    }
    pl_host_init(inst);
    if (inst->plugin->init(&inst->host, ic->config, &inst->handle, err,
                           sizeof err)) {
        snprintf(errstr, errstr_size, "%s.config: %s", key,
                 err[0] ? err : "init failed");
        inst->plugin = NULL;
        goto fail;
    }
    pl_instance_metrics(inst);
    return inst;
fail:
    pl_instance_destroy(inst);
    free(inst);
    return NULL;
}

static void instance_free(instance_t *inst)
{
    if (!inst)
        return;
    pl_park_free(inst);
    pl_instance_destroy(inst);
    free(inst);
}

void pl_subs_dir(const es_pipeline_t *p, char *out, size_t size)
{
    snprintf(out, size, "%s/subscriptions", p->conf->state_dir);
}

/* An inline filter ("source") goes to a file of its own in the state
 * directory, which the Lua plugin loads as its "script". */
static int write_script(es_pipeline_t *p, bundle_t *b, cJSON *fc, char *errstr,
                        size_t errstr_size)
{
    cJSON *src = cJSON_DetachItemFromObjectCaseSensitive(fc, "source");
    if (!src)
        return 0;
    char dir[4200], rnd[40];
    pl_subs_dir(p, dir, sizeof dir);
    mkdir(dir, 0700);
    es_sub_new_id(rnd, sizeof rnd);
    size_t n = strlen(dir) + strlen(b->def->id) + 64;
    b->script = malloc(n);
    snprintf(b->script, n, "%s/%s.%s.lua", dir, b->def->id, rnd + 4);
    FILE *f = fopen(b->script, "w");
    int ok = f && fputs(src->valuestring, f) >= 0;
    if (f && fclose(f))
        ok = 0;
    cJSON_Delete(src);
    if (!ok) {
        snprintf(errstr, errstr_size, "filter.config.source: cannot write %s",
                 b->script);
        return -1;
    }
    cJSON_AddStringToObject(fc, "script", b->script);
    return 0;
}

static void filter_free(bundle_t *b)
{
    instance_free(b->filter);
    b->filter = NULL;
    if (b->script)
        unlink(b->script);
    free(b->script);
    b->script = NULL;
}

void pl_bundle_free(bundle_t *b)
{
    if (!b)
        return;
    filter_free(b);
    instance_free(b->dest);
    for (size_t i = 0; i < b->nparts; i++) {
        part_t *pt = &b->parts[i];
        free(pt->route.filters);
        free(pt->route.dests);
        free(pt->conf.topics.v); /* the strings are b->def's */
        free(pt->conf.destinations.v);
        free(pt->conf.filters.v);
        for (size_t k = 0; k < pt->ext.nstarts; k++)
            free(pt->ext.starts[k].topic);
        free(pt->ext.starts);
        free(pt->group);
    }
    free(b->fconf.name);
    cJSON_Delete(b->fconf.config);
    free(b->dconf.park.topic);
    free(b->dconf.park.group);
    es_sub_destroy(b->def);
    free(b);
}

/* The destination's park policy: the daemon's subscriptions.park, then
 * the subscription's own "park" (which cannot name a topic or group);
 * topic eventstream.park.<id>, group <group_id>.park.<id> (docs/parking.md). */
static int park_policy(es_pipeline_t *p, bundle_t *b, char *errstr,
                       size_t errstr_size)
{
    es_park_conf_t *pc = &b->dconf.park;
    const es_sub_t *s = b->def;
    *pc = p->conf->sub_park;
    pc->topic = pc->group = NULL; /* never set at the daemon level */
    if (s->park && es_park_conf_parse(s->park, "park", pc, errstr, errstr_size))
        return -1;
    if (asprintf(&pc->topic, "eventstream.park.%s", s->id) < 0)
        pc->topic = NULL;
    if (pc->enabled && pc->topic &&
        !strcmp(pc->topic, p->conf->dead_letter_topic)) {
        snprintf(errstr, errstr_size,
                 "id: its park topic \"%s\" is the dead-letter topic",
                 pc->topic);
        return -1;
    }
    return 0;
}

/* Builds the instances on the calling thread; routes come later, on the
 * pipeline thread. */
bundle_t *pl_bundle_new(es_pipeline_t *p, const es_sub_t *def, char *errstr,
                        size_t errstr_size)
{
    bundle_t *b = calloc(1, sizeof *b);
    b->def = es_sub_dup(def);
    b->dconf = (es_instance_conf_t){.name = b->def->id,
                                    .plugin = b->def->type,
                                    .config = b->def->dest_config};
    if (park_policy(p, b, errstr, errstr_size))
        goto fail;
    b->dest = instance_new(p, &b->dconf, ES_KIND_SINK, "destination", errstr,
                           errstr_size);
    if (!b->dest)
        goto fail;
    if (b->def->filter_type) {
        size_t n = strlen(b->def->id) + 8;
        b->fconf.name = malloc(n);
        snprintf(b->fconf.name, n, "%s.filter", b->def->id);
        b->fconf.plugin = b->def->filter_type;
        b->fconf.config = cJSON_Duplicate(b->def->filter_config, 1);
        if (write_script(p, b, b->fconf.config, errstr, errstr_size))
            goto fail;
        b->filter = instance_new(p, &b->fconf, ES_KIND_FILTER, "filter", errstr,
                                 errstr_size);
        if (!b->filter)
            goto fail;
    }
    return b;
fail:
    pl_bundle_free(b);
    return NULL;
}

/* ---------------------------------------------------- start offsets */

/* {"0": offset, ...}: each partition's end now. An unknown topic has no
 * entries (everything it will hold is newer than the subscription). */
static int query_starts(es_pipeline_t *p, consumer_t *c, const char *topic,
                        cJSON *out, char *errstr, size_t errstr_size)
{
    /* Through the host producer when there is one: a consumer's connection
     * carries long-polling fetches, and a ListOffsets request queued behind
     * one waits up to fetch.wait.max.ms (measured: 0.5 s per partition). */
    rd_kafka_t *rk = es_producer_handle(p->producer)
                         ? es_producer_handle(p->producer)
                         : c->rk;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_resp_err_t err =
        rd_kafka_metadata(rk, 0, rkt, &md, KAFKA_TIMEOUT_MS);
    int rc = 0;
    if (!err && md->topic_cnt == 1)
        err = md->topics[0].err;
    if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        goto done;
    if (!err) { /* one ListOffsets request: "latest" for every partition */
        l = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
            rd_kafka_topic_partition_list_add(l, topic,
                                              md->topics[0].partitions[i].id)
                ->offset = RD_KAFKA_OFFSET_END;
        err = rd_kafka_offsets_for_times(rk, l, KAFKA_TIMEOUT_MS);
    }
    for (int i = 0; !err && l && i < l->cnt; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", (int)l->elems[i].partition);
        err = l->elems[i].err;
        if (!err && l->elems[i].offset < 0)
            err = RD_KAFKA_RESP_ERR__BAD_MSG; /* no end offset given */
        if (!err)
            cJSON_AddNumberToObject(out, key, (double)l->elems[i].offset);
    }
    if (err) {
        snprintf(errstr, errstr_size,
                 "cannot read the end offsets of topic %s: %s", topic,
                 rd_kafka_err2str(err));
        rc = -1;
    }
done:
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return rc;
}

/* offsets: {"partition": offset} from query_starts or a definition's
 * start_offsets, which es_sub_parse has checked (start_offsets_invalid). */
static void add_starts(part_t *pt, const char *topic, const cJSON *offsets)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, offsets)
    {
        pt->ext.starts = realloc(pt->ext.starts, (pt->ext.nstarts + 1) *
                                                     sizeof *pt->ext.starts);
        pt->ext.starts[pt->ext.nstarts++] =
            (start_t){strdup(topic), (int32_t)strtol(it->string, NULL, 10),
                      (int64_t)it->valuedouble};
    }
}

/* ------------------------------------------------------------ groups */

static char *group_for(es_pipeline_t *p, const es_sub_t *s, const char *topic)
{
    es_topics_lock(p->topics);
    const es_topic_t *t = es_topics_find(p->topics, topic);
    int single = t && t->single_tenant;
    es_topics_unlock(p->topics);
    if (!single)
        return strdup(p->conf->group_id);
    size_t n = strlen(p->conf->group_id) + strlen(s->tenant) + 2;
    char *g = malloc(n);
    snprintf(g, n, "%s.%s", p->conf->group_id, s->tenant);
    return g;
}

static consumer_t *consumer_of(es_pipeline_t *p, const char *group)
{
    for (size_t i = 0; i < p->nconsumers; i++)
        if (!strcmp(p->consumers[i]->group, group))
            return p->consumers[i];
    return NULL;
}

static int part_has_topic(const part_t *pt, const char *topic)
{
    for (size_t i = 0; i < pt->conf.topics.n; i++)
        if (!strcmp(pt->conf.topics.v[i], topic))
            return 1;
    return 0;
}

/* The old bundle read `topic` through `group`: its start carries over. */
static const cJSON *inherited_start(const bundle_t *old, const char *group,
                                    const char *topic)
{
    if (!old)
        return NULL;
    for (size_t i = 0; i < old->nparts; i++)
        if (!strcmp(old->parts[i].group, group) &&
            part_has_topic(&old->parts[i], topic))
            return cJSON_GetObjectItemCaseSensitive(old->def->start_offsets,
                                                    topic);
    return NULL;
}

static part_t *part_for(bundle_t *b, char *group)
{
    for (size_t i = 0; i < b->nparts; i++)
        if (!strcmp(b->parts[i].group, group)) {
            free(group);
            return &b->parts[i];
        }
    part_t *pt = &b->parts[b->nparts++];
    pt->group = group;
    pt->conf.topics.v = calloc(b->def->topics.n + 1, sizeof(char *));
    return pt;
}

/*
 * Pipeline thread: splits the topics by group, finds or starts each
 * group's consumer and records each partition's start: kept from the old
 * bundle (same group), else from the stored definition (restart), else
 * the partition's end now. New consumers go to *created (for undo).
 */
int pl_bundle_plan(es_pipeline_t *p, bundle_t *b, const bundle_t *old,
                   int use_stored, consumer_t **created, size_t *ncreated,
                   char *errstr, size_t errstr_size)
{
    es_sub_t *s = b->def;
    cJSON *starts = cJSON_CreateObject();
    for (size_t i = 0; i < s->topics.n; i++) {
        const char *topic = s->topics.v[i];
        part_t *pt = part_for(b, group_for(p, s, topic));
        pt->conf.topics.v[pt->conf.topics.n++] = s->topics.v[i];
        if (!pt->c && !(pt->c = consumer_of(p, pt->group))) {
            pt->c = pl_consumer_new(p, pt->group, errstr, errstr_size);
            if (!pt->c)
                goto fail;
            created[(*ncreated)++] = pt->c;
        }
        const cJSON *from = inherited_start(old, pt->group, topic);
        if (!from && use_stored)
            from = cJSON_GetObjectItemCaseSensitive(s->start_offsets, topic);
        cJSON *offs = from ? cJSON_Duplicate(from, 1) : cJSON_CreateObject();
        if (!from && query_starts(p, pt->c, topic, offs, errstr, errstr_size)) {
            cJSON_Delete(offs);
            goto fail;
        }
        add_starts(pt, topic, offs);
        cJSON_AddItemToObject(starts, topic, offs);
    }
    cJSON_Delete(s->start_offsets);
    s->start_offsets = starts;
    return 0;
fail:
    cJSON_Delete(starts);
    return -1;
}

static void strv_one(es_strv_t *v, char *s)
{
    v->v = calloc(2, sizeof(char *));
    v->v[0] = s;
    v->n = 1;
}

static void route_init(bundle_t *b, part_t *pt)
{
    route_t *r = &pt->route;
    pt->conf.name = b->def->id;
    pt->conf.group = pt->group;
    strv_one(&pt->conf.destinations, b->def->id);
    r->conf = &pt->conf;
    r->dests = calloc(2, sizeof *r->dests);
    r->dests[0] = b->dest;
    r->filters = calloc(2, sizeof *r->filters);
    if (b->filter) {
        strv_one(&pt->conf.filters, b->fconf.name);
        r->filters[0] = b->filter;
    }
    pt->ext.tenant = b->def->tenant;
    r->sub = &pt->ext;
    char labels[300], esc[200];
    es_metrics_label_escape(esc, sizeof esc, b->def->id);
    snprintf(labels, sizeof labels, "route=\"%s\"", esc);
    r->consumed = es_metrics_counter("es_route_consumed_total", labels);
    r->filtered = es_metrics_counter("es_filtered_total", labels);
    r->tenantless = es_metrics_counter("es_tenantless_total", labels);
}

static void dyn_add(es_pipeline_t *p, instance_t *inst)
{
    if (p->ndyn == p->dyn_cap) {
        p->dyn_cap = p->dyn_cap ? 2 * p->dyn_cap : 16;
        p->dyn = realloc(p->dyn, p->dyn_cap * sizeof *p->dyn);
    }
    p->dyn[p->ndyn++] = inst;
}

static void dyn_remove(es_pipeline_t *p, instance_t *inst)
{
    for (size_t i = 0; i < p->ndyn; i++)
        if (p->dyn[i] == inst) {
            p->dyn[i] = p->dyn[--p->ndyn];
            return;
        }
}

/* A consumer left without routes leaves its group (committing what is
 * done) and is freed once its last record is done. */
void pl_consumer_retire(es_pipeline_t *p, consumer_t *c)
{
    /* Joined count first: the API, reading both counts from its own
     * threads, may see not-ready for a moment but never a false ready. */
    if (c->joined)
        atomic_fetch_sub(&p->joined_consumers, 1);
    c->joined = 0;
    for (size_t i = 0; i < p->nconsumers; i++)
        if (p->consumers[i] == c) {
            memmove(&p->consumers[i], &p->consumers[i + 1],
                    (p->nconsumers - i - 1) * sizeof *p->consumers);
            atomic_store(&p->live_consumers, --p->nconsumers);
            break;
        }
    rd_kafka_consumer_close(c->rk);
    es_info("consumer left group=%s (no subscription reads through it)",
            c->group);
    pl_subs_t *s = p->subs;
    s->retired = realloc(s->retired, (s->nretired + 1) * sizeof *s->retired);
    s->retired[s->nretired++] = c;
}

/* Resubscribes (or retires) every consumer the bundles touch, once. */
void pl_settle_consumers(es_pipeline_t *p, bundle_t *a, bundle_t *b)
{
    consumer_t *cs[4];
    size_t n = 0;
    bundle_t *bs[2] = {a, b};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; bs[k] && i < bs[k]->nparts; i++) {
            size_t j = 0;
            while (j < n && cs[j] != bs[k]->parts[i].c)
                j++;
            if (j == n)
                cs[n++] = bs[k]->parts[i].c;
        }
    for (size_t i = 0; i < n; i++) {
        char err[512];
        if (cs[i]->nroutes == 0)
            pl_consumer_retire(p, cs[i]);
        else if (pl_consumer_resubscribe(cs[i], err, sizeof err))
            es_err("%s", err);
    }
}

route_t *pl_sub_route(es_pipeline_t *p, const instance_t *dest,
                      const char *name)
{
    pl_subs_t *s = p->subs;
    for (size_t i = 0; s && i < s->n; i++) {
        bundle_t *b = s->v[i].b;
        if (!b || b->dest != dest || strcmp(b->def->id, name))
            continue;
        return b->nparts ? &b->parts[0].route : NULL;
    }
    return NULL;
}

void pl_bundle_attach(es_pipeline_t *p, bundle_t *b)
{
    for (size_t i = 0; i < b->nparts; i++) {
        route_init(b, &b->parts[i]);
        if (b->filter)
            pl_note_filter(p, b->filter);
        pl_consumer_add_route(b->parts[i].c, &b->parts[i].route);
    }
    /* Here, after the old bundle of the same id has left the drain group
     * (pl_bundle_detach), so the two drainers never share it. */
    char err[512] = "";
    if (pl_park_attach(p, b->dest, err, sizeof err))
        es_err("subscription id=%s: park: %s; its destination is not parked",
               b->def->id, err);
    dyn_add(p, b->dest);
}

/* Detached now: no new records reach it. Its filter goes at once (only
 * routing calls it); the rest when its deliveries are done. */
void pl_bundle_detach(es_pipeline_t *p, bundle_t *b)
{
    for (size_t i = 0; i < b->nparts; i++)
        pl_consumer_remove_route(b->parts[i].c, &b->parts[i].route);
    /* Its drain group's committed offsets stay: a subscription with the
     * same id (the replacement, or one created later) replays what is
     * still parked (docs/parking.md). */
    pl_park_detach(b->dest);
    filter_free(b);
    b->next = p->subs->retiring;
    p->subs->retiring = b;
}

static int bundle_idle(const bundle_t *b)
{
    for (size_t i = 0; i < b->nparts; i++)
        if (b->parts[i].route.live)
            return 0;
    return b->dest->live == 0 && b->dest->batch_n == 0;
}

void pl_subs_reap(es_pipeline_t *p)
{
    pl_subs_t *s = p->subs;
    if (!s)
        return;
    for (bundle_t **pp = &s->retiring; *pp;) {
        bundle_t *b = *pp;
        if (!bundle_idle(b)) {
            pp = &b->next;
            continue;
        }
        *pp = b->next;
        dyn_remove(p, b->dest);
        es_info("subscription instance released id=%s", b->def->id);
        pl_bundle_free(b);
    }
    for (size_t i = 0; i < s->nretired;)
        if (s->retired[i]->inflight == 0) {
            pl_consumer_destroy(s->retired[i]);
            s->retired[i] = s->retired[--s->nretired];
        } else {
            i++;
        }
}
