/*
 * Consuming: one rd_kafka_t per consumer group, records in, offsets
 * committed per partition once every delivery of a record is done, and
 * rebalances.
 */
#include "internal/es_clock.h"
#include "pipeline_int.h"

/* --------------------------------------------------------------- consuming */

static partition_t *find_partition(consumer_t *c, const char *topic,
                                   int32_t partition)
{
    for (partition_t *pt = c->parts; pt; pt = pt->next)
        if (pt->partition == partition && !strcmp(pt->topic, topic))
            return pt;
    return NULL;
}

static void parse_headers(record_t *rec)
{
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(rec->msg, &h) || !h)
        return;
    size_t n = rd_kafka_header_cnt(h);
    rec->headers = calloc(n ? n : 1, sizeof *rec->headers);
    for (size_t i = 0; i < n; i++) {
        es_header_t *e = &rec->headers[rec->nh];
        if (rd_kafka_header_get_all(h, i, &e->name, &e->value, &e->value_len) ==
            0)
            rec->nh++;
    }
}

static void handle_message(consumer_t *c, rd_kafka_message_t *m)
{
    es_pipeline_t *p = c->p;
    if (m->err) {
        /* A fatal one is logged by check_fatal_consumers, as it stops. */
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF &&
            m->err != RD_KAFKA_RESP_ERR__FATAL)
            es_warn("consumer group=%s: %s", c->group,
                    rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    const char *topic = rd_kafka_topic_name(m->rkt);
    partition_t *part = find_partition(c, topic, m->partition);
    if (!part || es_offsets_track(part->offsets, m->offset)) {
        rd_kafka_message_destroy(m); /* not ours any more */
        return;
    }
    part->last_offset = m->offset;
    record_t *rec = calloc(1, sizeof *rec);
    rec->msg = m;
    rec->part = part;
    rec->pending = 1;
    part->inflight++;
    c->inflight++;
    p->inflight++;
    es_counter_add(p->consumed, 1);
    parse_headers(rec);
    char reason[256];
    es_status_t st = ES_OK;
    if (es_avro_hook_wants(p->avro, topic))
        st = es_avro_hook_decode(p->avro, topic, m->payload, m->len,
                                 rec->headers, rec->nh, &rec->dec, reason,
                                 sizeof reason);
    else if (es_decode_record(m->payload, m->len, rec->headers, rec->nh,
                              (size_t)p->conf->max_event_bytes,
                              pl_index_events(p), &rec->dec, reason,
                              sizeof reason))
        st = ES_FAIL;
    if (st == ES_OK)
        pl_route_record(p, rec);
    else if (st == ES_RETRY)
        pl_avro_retry_later(p, pl_delivery_new(p, rec, NULL, NULL, NULL, NULL),
                            reason);
    else {
        es_counter_add(p->decode_failed, 1);
        pl_dead_letter_record(
            p, rec, NULL,
            es_avro_hook_wants(p->avro, topic) ? "avro" : "decode", reason);
    }
    pl_record_release(p, rec);
}

int pl_consume_some(consumer_t *c)
{
    size_t max = (size_t)c->p->conf->batch_size;
    /* Kept between calls: a fresh 8 KB array every loop turn is a large
     * request that makes glibc consolidate its fast bins each time. */
    if (!c->msgs)
        c->msgs = malloc(max * sizeof *c->msgs);
    rd_kafka_message_t **msgs = c->msgs;
    ssize_t n = rd_kafka_consume_batch_queue(c->queue, 0, msgs, max);
    for (ssize_t i = 0; i < n; i++)
        handle_message(c, msgs[i]);
    return n == (ssize_t)max; /* more may be waiting */
}

/*
 * rd_kafka_poll() may not be called once the main queue is redirected to
 * the consumer's, so shutdown serves the consumer queue itself. Records
 * already fetched before the pause are let go untracked: their offsets are
 * past the commit point, so they are redelivered after restart.
 */
void pl_consume_serve_only(consumer_t *c)
{
    size_t max = (size_t)c->p->conf->batch_size;
    if (!c->msgs)
        c->msgs = malloc(max * sizeof *c->msgs);
    ssize_t n = rd_kafka_consume_batch_queue(c->queue, 0, c->msgs, max);
    for (ssize_t i = 0; i < n; i++)
        rd_kafka_message_destroy(c->msgs[i]);
}

/* ---------------------------------------------------------------- commits */

static void commit_consumer(consumer_t *c, int sync)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (partition_t *pt = c->parts; pt; pt = pt->next) {
        int64_t cp = es_offsets_commit_point(pt->offsets);
        if (pt->revoked || cp < 0 || cp <= pt->committed)
            continue;
        rd_kafka_topic_partition_list_add(l, pt->topic, pt->partition)->offset =
            cp;
        pt->committed = cp;
    }
    if (l->cnt) {
        rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, l, !sync);
        /* A sync commit's result also reaches on_commit, which logs it. */
        if (err && !sync && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
            es_warn("commit group=%s: %s", c->group, rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* A failed commit forgets what it committed so the next tick retries.
 * One that met a rebalance in progress holds the periodic commits until
 * the rebalance's callback: sent meanwhile they fail too, and a
 * cooperative rebalance's member whose commit comes back "illegal
 * generation" loses its whole assignment. The revoke callback's commit
 * and the one at shutdown are still made. */
static void commit_failed(consumer_t *c, rd_kafka_resp_err_t err)
{
    uint64_t since = 0; /* stays 0 when this failure is not logged */
    int64_t secs = 0;
    es_counter_add(c->commit_failures, 1);
    if (pl_streak_fail(&c->commit_streak, es_now_ms(), &since, &secs) && !since)
        es_warn("commit group=%s failed: %s; retried at every commit "
                "interval, failures counted (es_commit_failures_total) and "
                "logged once a minute until one succeeds; a restart "
                "meanwhile redelivers what was not committed",
                c->group, rd_kafka_err2str(err));
    else if (since)
        es_warn("commit group=%s still failing: %llu failure(s) in the last "
                "%lld s, the last: %s",
                c->group, (unsigned long long)since, (long long)secs,
                rd_kafka_err2str(err));
}

static void commit_succeeded(consumer_t *c)
{
    uint64_t n = pl_streak_end(&c->commit_streak);
    if (n)
        es_info("commit group=%s: commits succeed again after %llu "
                "failure(s)",
                c->group, (unsigned long long)n);
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    consumer_t *c = opaque;
    if (!err)
        commit_succeeded(c);
    if (!err || !offsets)
        return;
    for (int i = 0; i < offsets->cnt; i++) {
        partition_t *pt = find_partition(c, offsets->elems[i].topic,
                                         offsets->elems[i].partition);
        if (pt)
            pt->committed = -1;
    }
    if (err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS) {
        if (!c->commit_held)
            es_info("commit group=%s: a rebalance is in progress; commits "
                    "wait for it",
                    c->group);
        c->commit_held = 1;
        return;
    }
    commit_failed(c, err);
}

/* Lag from librdkafka's cached high watermark: no broker round trip. */
static void update_lag(consumer_t *c)
{
    for (partition_t *pt = c->parts; pt; pt = pt->next) {
        int64_t lo, hi;
        if (rd_kafka_get_watermark_offsets(c->rk, pt->topic, pt->partition, &lo,
                                           &hi) ||
            hi < 0)
            continue;
        int64_t next = pt->last_offset < 0 ? lo : pt->last_offset + 1;
        es_gauge_set(pt->lag, hi > next ? (uint64_t)(hi - next) : 0);
    }
}

void pl_commit_all(es_pipeline_t *p, int sync)
{
    for (size_t i = 0; i < p->nconsumers; i++) {
        consumer_t *c = p->consumers[i];
        if (!c->joined)
            continue;
        if (sync || !c->commit_held)
            commit_consumer(c, sync);
        update_lag(c);
    }
}

/* -------------------------------------------------------------- rebalance */

void pl_set_paused(consumer_t *c, int pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(c->rk, &l) || !l)
        return;
    if (pause)
        rd_kafka_pause_partitions(c->rk, l);
    else
        rd_kafka_resume_partitions(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* The earliest start of the subscription routes that read this partition
 * (INT64_MAX: none), and whether a config route reads it too. */
static int64_t subs_start(consumer_t *c, const char *topic, int32_t partition,
                          int *plain)
{
    int64_t min = INT64_MAX;
    *plain = 0;
    for (size_t i = 0; i < c->nroutes; i++) {
        if (!pl_route_wants(c->routes[i], topic))
            continue;
        int64_t s = pl_sub_start(c->routes[i], topic, partition);
        if (s < 0)
            *plain = 1;
        else if (s < min)
            min = s;
    }
    return min;
}

/*
 * A partition the group never committed starts at its current end, looked
 * up now rather than left to auto.offset.reset: then "consumer joined" in
 * the log means every event produced after it is seen, which is what a new
 * subscription promises (and what tests and operators rely on). A
 * subscription recorded where it started when it was created: a partition
 * that only subscriptions read starts there (never earlier than needed,
 * and nothing produced after the subscription's creation is skipped).
 */
static void resolve_start_offsets(consumer_t *c,
                                  rd_kafka_topic_partition_list_t *l)
{
    if (rd_kafka_committed(c->rk, l, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    rd_kafka_topic_partition_list_t *fresh =
        rd_kafka_topic_partition_list_new(l->cnt);
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &l->elems[i];
        int64_t lo, hi;
        int plain;
        int64_t start = subs_start(c, tp->topic, tp->partition, &plain);
        if (tp->offset >= 0) {
            if (!plain && start != INT64_MAX && tp->offset < start)
                tp->offset = start; /* all before it would be skipped */
            continue;
        }
        if (start != INT64_MAX) {
            tp->offset = start;
            rd_kafka_topic_partition_list_add(fresh, tp->topic, tp->partition)
                ->offset = start;
            continue;
        }
        if (!c->start_at_end)
            continue;
        if (rd_kafka_query_watermark_offsets(c->rk, tp->topic, tp->partition,
                                             &lo, &hi, 10000) == 0) {
            tp->offset = hi;
            rd_kafka_topic_partition_list_add(fresh, tp->topic, tp->partition)
                ->offset = hi;
        }
    }
    /* Commit the starting point at once: if the first event is still in
     * flight when the daemon stops, a restart must resume here, not at the
     * (by then later) end of the partition. */
    if (fresh->cnt && rd_kafka_commit(c->rk, fresh, 0))
        es_warn("group=%s: could not commit the starting offsets", c->group);
    rd_kafka_topic_partition_list_destroy(fresh);
}

/* With partition.assignment.strategy=cooperative-sticky (KIP-429) a
 * rebalance hands out and takes back only the partitions that move, and
 * the consumer keeps the rest flowing; the changes must then be made with
 * the incremental calls. */
static int cooperative(const consumer_t *c)
{
    return !strcmp(rd_kafka_rebalance_protocol(c->rk), "COOPERATIVE");
}

static void assignment_change(consumer_t *c, rd_kafka_topic_partition_list_t *l,
                              int add)
{
    if (!cooperative(c)) {
        rd_kafka_assign(c->rk, add ? l : NULL);
        return;
    }
    rd_kafka_error_t *e = add ? rd_kafka_incremental_assign(c->rk, l)
                              : rd_kafka_incremental_unassign(c->rk, l);
    if (e) {
        es_warn("group=%s: cannot %s %d partition(s): %s", c->group,
                add ? "take" : "let go of", l->cnt, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

static size_t parts_count(const consumer_t *c)
{
    size_t n = 0;
    for (const partition_t *pt = c->parts; pt; pt = pt->next)
        n++;
    return n;
}

static void partitions_assign(consumer_t *c, rd_kafka_topic_partition_list_t *l)
{
    resolve_start_offsets(c, l);
    for (int i = 0; i < l->cnt; i++) {
        partition_t *pt = calloc(1, sizeof *pt);
        pt->c = c;
        pt->topic = strdup(l->elems[i].topic);
        pt->partition = l->elems[i].partition;
        pt->offsets = es_offsets_new();
        pt->committed = -1;
        pt->last_offset = -1;
        char labels[600], t[256], g[256];
        es_metrics_label_escape(t, sizeof t, pt->topic);
        es_metrics_label_escape(g, sizeof g, c->group);
        snprintf(labels, sizeof labels,
                 "group=\"%s\",topic=\"%s\",partition=\"%d\"", g, t,
                 (int)pt->partition);
        pt->lag = es_metrics_gauge("es_consumer_lag", labels);
        pt->next = c->parts;
        c->parts = pt;
    }
    assignment_change(c, l, 1);
    if (c->p->paused)
        pl_set_paused(c, 1);
    es_info("partitions assigned group=%s count=%d total=%zu", c->group, l->cnt,
            parts_count(c));
    if (!c->joined) {
        es_info("consumer %s group=%s", c->ever_joined ? "rejoined" : "joined",
                c->group);
        c->joined = c->ever_joined = 1;
        atomic_fetch_add(&c->p->joined_consumers, 1);
    }
}

/* A consumer whose assignment was lost (its session with the group's
 * coordinator timed out: the cluster unreachable, or the consumer stalled)
 * is no member until it is assigned again, and /ready says so. A plain
 * rebalance's revoke keeps it a member. */
static void membership_lost(consumer_t *c)
{
    if (!c->joined)
        return;
    c->joined = 0;
    atomic_fetch_sub(&c->p->joined_consumers, 1);
    es_warn("consumer lost its group membership group=%s; not ready until it "
            "rejoins",
            c->group);
}

static int in_list(const rd_kafka_topic_partition_list_t *l,
                   const partition_t *pt)
{
    return rd_kafka_topic_partition_list_find(l, pt->topic, pt->partition) !=
           NULL;
}

/* Revoked partitions commit what is done now; events still in flight
 * finish but commit nothing (the new owner redelivers them). Lost ones
 * (the group went on without this consumer) commit nothing either: the
 * partitions may have a new owner already. An eager rebalance revokes
 * them all, a cooperative one those in l. */
static void partitions_revoke(consumer_t *c, rd_kafka_topic_partition_list_t *l,
                              int lost)
{
    if (!lost)
        commit_consumer(c, 1);
    int all = !cooperative(c);
    partition_t **link = &c->parts;
    while (*link) {
        partition_t *pt = *link;
        if (!all && !in_list(l, pt)) {
            link = &pt->next;
            continue;
        }
        *link = pt->next;
        pt->revoked = 1;
        es_gauge_set(pt->lag, 0);
        if (pt->inflight == 0) {
            es_offsets_destroy(pt->offsets);
            free(pt->topic);
            free(pt);
        }
    }
    assignment_change(c, l, 0);
    es_info("partitions revoked group=%s count=%d total=%zu", c->group, l->cnt,
            parts_count(c));
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    consumer_t *c = opaque;
    c->commit_held = 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        partitions_assign(c, parts);
    else if (!rd_kafka_assignment_lost(rk))
        partitions_revoke(c, parts, 0);
    else {
        partitions_revoke(c, parts, 1);
        membership_lost(c);
    }
}

static const char *group_of(const es_pipeline_t *p, const route_t *r)
{
    return r->conf->group ? r->conf->group : p->conf->group_id;
}

/* Sets a consumer default unless the operator set it in kafka.properties. */
static int conf_default(rd_kafka_conf_t *conf, const cJSON *props,
                        const char *name, const char *value, char *errstr,
                        size_t errstr_size)
{
    if (props && cJSON_GetObjectItemCaseSensitive(props, name))
        return 0;
    return es_kafka_conf_set(conf, name, value, errstr, errstr_size);
}

static int consumer_create(es_pipeline_t *p, consumer_t *c, const char *brokers,
                           int embedded, char *errstr, size_t errstr_size)
{
    const cJSON *props = p->conf->kafka_properties;
    rd_kafka_conf_t *conf =
        es_kafka_conf_new(brokers, props, errstr, errstr_size);
    if (!conf)
        return -1;
    if (es_kafka_conf_set(conf, "group.id", c->group, errstr, errstr_size) ||
        es_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
                          errstr_size) ||
        conf_default(conf, props, "auto.offset.reset", "latest", errstr,
                     errstr_size) ||
        conf_default(conf, props, "allow.auto.create.topics",
                     embedded ? "true" : "false", errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    const cJSON *reset =
        props ? cJSON_GetObjectItemCaseSensitive(props, "auto.offset.reset")
              : NULL;
    c->start_at_end = !reset || !strcmp(reset->valuestring, "latest") ||
                      !strcmp(reset->valuestring, "largest") ||
                      !strcmp(reset->valuestring, "end");
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    rd_kafka_conf_set_opaque(conf, c);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!c->rk) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    if (es_msk_iam_start(c->rk, errstr, errstr_size))
        return -1;
    rd_kafka_poll_set_consumer(c->rk);
    c->queue = rd_kafka_queue_get_consumer(c->rk);
    pl_make_wake_pipe(c->wake);
    rd_kafka_queue_io_event_enable(c->queue, c->wake[1], "c", 1);
    return 0;
}

/* The topics of its routes, sorted and "\n"-joined (to compare). */
static char *route_topics(consumer_t *c, rd_kafka_topic_partition_list_t *l)
{
    for (size_t i = 0; i < c->nroutes; i++)
        for (size_t t = 0; t < c->routes[i]->conf->topics.n; t++) {
            const char *name = c->routes[i]->conf->topics.v[t];
            if (!rd_kafka_topic_partition_list_find(l, name,
                                                    RD_KAFKA_PARTITION_UA))
                rd_kafka_topic_partition_list_add(l, name,
                                                  RD_KAFKA_PARTITION_UA);
        }
    rd_kafka_topic_partition_list_sort(l, NULL, NULL);
    size_t len = 1;
    for (int i = 0; i < l->cnt; i++)
        len += strlen(l->elems[i].topic) + 1;
    char *s = calloc(1, len);
    for (int i = 0; i < l->cnt; i++) {
        strcat(s, l->elems[i].topic);
        strcat(s, "\n");
    }
    return s;
}

/* Subscribes to the union of its routes' topics when that changed (a
 * rebalance of the group follows). */
int pl_consumer_resubscribe(consumer_t *c, char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *topics =
        rd_kafka_topic_partition_list_new(4);
    char *joined = route_topics(c, topics);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (!c->subscribed || strcmp(joined, c->subscribed)) {
        err = topics->cnt ? rd_kafka_subscribe(c->rk, topics)
                          : rd_kafka_unsubscribe(c->rk);
        free(c->subscribed);
        c->subscribed = joined;
        joined = NULL;
    }
    free(joined);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        snprintf(errstr, errstr_size, "subscribe group=%s: %s", c->group,
                 rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

static consumer_t *consumer_alloc(es_pipeline_t *p, const char *group)
{
    consumer_t *c = calloc(1, sizeof *c);
    c->p = p;
    c->group = group;
    c->wake[0] = c->wake[1] = -1;
    char labels[300], g[256];
    es_metrics_label_escape(g, sizeof g, group);
    snprintf(labels, sizeof labels, "group=\"%s\"", g);
    c->commit_failures = es_metrics_counter("es_commit_failures_total", labels);
    if (p->nconsumers == p->consumers_cap) {
        p->consumers_cap = p->consumers_cap ? 2 * p->consumers_cap : 8;
        p->consumers =
            realloc(p->consumers, p->consumers_cap * sizeof *p->consumers);
    }
    p->consumers[p->nconsumers++] = c;
    atomic_store(&p->live_consumers, p->nconsumers);
    return c;
}

void pl_consumer_add_route(consumer_t *c, route_t *r)
{
    if (c->nroutes == c->routes_cap) {
        c->routes_cap = c->routes_cap ? 2 * c->routes_cap : 8;
        c->routes = realloc(c->routes, c->routes_cap * sizeof *c->routes);
    }
    c->routes[c->nroutes++] = r;
}

void pl_consumer_remove_route(consumer_t *c, route_t *r)
{
    for (size_t i = 0; i < c->nroutes; i++)
        if (c->routes[i] == r) {
            memmove(&c->routes[i], &c->routes[i + 1],
                    (c->nroutes - i - 1) * sizeof *c->routes);
            c->nroutes--;
            return;
        }
}

/* A consumer for another group, created while running (subscriptions):
 * not subscribed to anything until pl_consumer_resubscribe. `group` must
 * outlive it. */
consumer_t *pl_consumer_new(es_pipeline_t *p, const char *group, char *errstr,
                            size_t errstr_size)
{
    consumer_t *c = consumer_alloc(p, group);
    c->group = c->own_group = strdup(group);
    if (consumer_create(p, c, p->brokers, !strcmp(p->conf->brokers, "embedded"),
                        errstr, errstr_size)) {
        atomic_store(&p->live_consumers, --p->nconsumers);
        pl_consumer_destroy(c);
        return NULL;
    }
    es_info("consumer started group=%s", c->group);
    return c;
}

int pl_consumers_init(es_pipeline_t *p, const char *brokers, char *errstr,
                      size_t errstr_size)
{
    int embedded = !strcmp(p->conf->brokers, "embedded");
    for (size_t i = 0; i < p->nroutes; i++) {
        const char *g = group_of(p, &p->routes[i]);
        consumer_t *c = NULL;
        for (size_t k = 0; k < p->nconsumers && !c; k++)
            if (!strcmp(p->consumers[k]->group, g))
                c = p->consumers[k];
        if (!c)
            c = consumer_alloc(p, g);
        pl_consumer_add_route(c, &p->routes[i]);
    }
    for (size_t k = 0; k < p->nconsumers; k++) {
        consumer_t *c = p->consumers[k];
        if (consumer_create(p, c, brokers, embedded, errstr, errstr_size) ||
            pl_consumer_resubscribe(c, errstr, errstr_size))
            return -1;
        es_info("consumer started group=%s routes=%zu", c->group, c->nroutes);
    }
    return 0;
}

void pl_consumer_destroy(consumer_t *c)
{
    if (c->queue)
        rd_kafka_queue_destroy(c->queue);
    if (c->rk)
        rd_kafka_destroy(c->rk);
    for (partition_t *pt = c->parts, *next; pt; pt = next) {
        next = pt->next;
        es_offsets_destroy(pt->offsets);
        free(pt->topic);
        free(pt);
    }
    free(c->routes);
    free(c->msgs);
    free(c->subscribed);
    free(c->own_group);
    for (int i = 0; i < 2; i++)
        if (c->wake[i] >= 0)
            close(c->wake[i]);
    free(c);
}
