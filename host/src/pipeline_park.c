/*
 * Parking a failing destination (docs/parking.md). When a destination with
 * a "park" policy keeps answering RETRY, its waiting deliveries (oldest
 * first) and every new one are produced to its own park topic instead; a
 * delivery counts as done once the produce is acknowledged, so the main
 * offsets move on and other destinations on the same topics are not held
 * back. A drainer (a consumer group of its own on the park topic) replays
 * the parked events one at a time, in order, with the host's backoff;
 * when it has replayed everything this process parked (and every backlog it
 * found at start or on assignment), the destination is unparked.
 */
#include "internal/es_clock.h"
#include "pipeline_int.h"

#include <inttypes.h>

#define HELD_MAX 500     /* park records fetched ahead; above it, pause */
#define POLL_MAX 1000    /* records taken from the drain consumer per turn */
#define KAFKA_WAIT 10000 /* ms for start-up metadata, commits, watermarks */
#define HOLD_MAX 30000   /* ms the park waits for answers from the plugin */

typedef struct backlog_s {
    int32_t partition;
    int64_t end; /* drained when the drain group is done up to here */
} backlog_t;

struct park_s {
    es_pipeline_t *p;
    instance_t *inst;
    const es_park_conf_t *conf;
    char *group;
    int parked;
    int64_t first_fail_ms; /* 0: no failure since the last success */
    int64_t hold_until_ms; /* park_flush waits for the plugin until then */

    delivery_t **outq; /* diverted, not yet queued in the producer */
    size_t outq_n, outq_cap;
    size_t producing; /* queued in the producer, not yet acknowledged */
    /* Sends the producer failed (the park topic refused, the cluster
     * gone): sent again after the retry.* backoff, not every loop turn. */
    uint32_t send_failures;
    int64_t send_again_ms;
    fail_streak_t send_streak;
    uint64_t run; /* this process's id in es_park_run */
    uint64_t next_seq, last_sent_seq, done_seq;

    rd_kafka_t *rk; /* the drainer */
    partition_t *parts;
    rd_kafka_message_t **held; /* fetched, not yet replayed (FIFO) */
    size_t held_head, held_n, held_cap;
    int held_paused;
    int busy; /* a replayed record is in flight */
    int closing;
    backlog_t *backlog;
    size_t nbacklog;
    uint64_t stall_seq; /* done_seq when the drain last stood still */
    int64_t stall_since_ms, next_shared_check_ms;

    es_counter_t *gauge, *parked_total, *drained_total, *send_retries;
};

const char *pl_rec_topic(const record_t *rec)
{
    return rec->origin ? rec->origin->topic
                       : rd_kafka_topic_name(rec->msg->rkt);
}

/* ------------------------------------------------------------ pure parts */

int pl_park_due(const park_policy_t *pol, uint32_t attempt,
                int64_t first_fail_ms, int64_t now)
{
    if (pol->after_attempts && attempt >= (uint32_t)pol->after_attempts)
        return 1;
    if (pol->after_ms && first_fail_ms > 0 &&
        now - first_fail_ms >= pol->after_ms)
        return 1;
    /* Parking beats dead-lettering an event that is only waiting. */
    return pol->max_attempts && attempt >= (uint32_t)pol->max_attempts;
}

static void hdr_str(rd_kafka_headers_t *h, const char *name, const char *v)
{
    rd_kafka_header_add(h, name, -1, v, -1);
}

static void hdr_num(rd_kafka_headers_t *h, const char *name, long long v)
{
    char num[32];
    snprintf(num, sizeof num, "%lld", v);
    hdr_str(h, name, num);
}

/* Ours first, the record's own headers last, counted by es_park_headers:
 * a record may carry any header name, even one of ours. */
rd_kafka_headers_t *pl_park_headers(const park_origin_t *o,
                                    const char *destination,
                                    const es_header_t *orig, size_t norig)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(norig + 12);
    char run[32];
    hdr_str(h, "es_park_destination", destination);
    hdr_str(h, "es_park_route", o->route);
    if (o->tenant)
        hdr_str(h, "es_park_tenant", o->tenant);
    hdr_str(h, "es_park_topic", o->topic);
    hdr_num(h, "es_park_partition", o->partition);
    hdr_num(h, "es_park_offset", o->offset);
    hdr_num(h, "es_park_timestamp", o->timestamp_ms);
    if (o->key)
        rd_kafka_header_add(h, "es_park_key", -1, o->key, (ssize_t)o->key_len);
    snprintf(run, sizeof run, "%016" PRIx64, o->run);
    hdr_str(h, "es_park_run", run);
    hdr_num(h, "es_park_seq", (long long)o->seq);
    hdr_num(h, "es_park_headers", (long long)norig);
    for (size_t i = 0; i < norig; i++)
        rd_kafka_header_add(h, orig[i].name, -1, orig[i].value,
                            orig[i].value ? (ssize_t)orig[i].value_len : 0);
    return h;
}

static int parse_num(const void *v, size_t len, long long *out)
{
    char buf[32], *end;
    if (!v || len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, v, len);
    buf[len] = '\0';
    errno = 0;
    *out = strtoll(buf, &end, 10);
    return errno || *end ? -1 : 0;
}

static int origin_field(park_origin_t *o, const char *name, const void *v,
                        size_t len)
{
    long long n = 0;
    if (!strcmp(name, "es_park_route"))
        o->route = strndup(v ? v : "", len);
    else if (!strcmp(name, "es_park_tenant"))
        o->tenant = strndup(v ? v : "", len);
    else if (!strcmp(name, "es_park_topic"))
        o->topic = strndup(v ? v : "", len);
    else if (!strcmp(name, "es_park_key")) {
        o->key = v ? v : "";
        o->key_len = len;
    } else if (!strcmp(name, "es_park_run")) {
        char buf[32];
        if (!v || len >= sizeof buf)
            return -1;
        memcpy(buf, v, len);
        buf[len] = '\0';
        o->run = strtoull(buf, NULL, 16);
    } else if (parse_num(v, len, &n) == 0) {
        if (!strcmp(name, "es_park_partition"))
            o->partition = (int32_t)n;
        else if (!strcmp(name, "es_park_offset"))
            o->offset = n;
        else if (!strcmp(name, "es_park_timestamp"))
            o->timestamp_ms = n;
        else if (!strcmp(name, "es_park_seq"))
            o->seq = (uint64_t)n;
    } else if (strcmp(name, "es_park_destination"))
        return -1;
    return 0;
}

static void origin_clear(park_origin_t *o)
{
    free(o->topic);
    free(o->route);
    free(o->tenant);
    o->topic = o->route = o->tenant = NULL;
}

int pl_park_parse_headers(const rd_kafka_headers_t *h, park_origin_t *o,
                          es_header_t **orig, size_t *norig, char *errstr,
                          size_t errstr_size)
{
    memset(o, 0, sizeof *o);
    o->offset = o->timestamp_ms = -1;
    o->partition = -1;
    *orig = NULL;
    *norig = 0;
    size_t cnt = h ? rd_kafka_header_cnt(h) : 0, i;
    long long n = -1;
    for (i = 0; i < cnt; i++) {
        const char *name;
        const void *v;
        size_t len;
        if (rd_kafka_header_get_all(h, i, &name, &v, &len))
            break;
        if (!strcmp(name, "es_park_headers")) {
            if (parse_num(v, len, &n) || n < 0)
                n = -1;
            break;
        }
        if (strncmp(name, "es_park_", 8) || origin_field(o, name, v, len)) {
            snprintf(errstr, errstr_size, "bad park header \"%s\"", name);
            goto fail;
        }
    }
    if (n < 0 || cnt - (i + 1) != (size_t)n) {
        snprintf(errstr, errstr_size,
                 "es_park_headers is missing or does not count the record's "
                 "headers");
        goto fail;
    }
    const char *missing = !o->route          ? "es_park_route"
                          : !o->topic        ? "es_park_topic"
                          : o->partition < 0 ? "es_park_partition"
                          : o->offset < 0    ? "es_park_offset"
                                             : NULL;
    if (missing) {
        snprintf(errstr, errstr_size, "park header %s is missing", missing);
        goto fail;
    }
    *orig = calloc((size_t)n + 1, sizeof **orig);
    for (size_t k = i + 1; k < cnt; k++) {
        es_header_t *e = &(*orig)[*norig];
        if (rd_kafka_header_get_all(h, k, &e->name, &e->value, &e->value_len) ==
            0)
            (*norig)++;
    }
    return 0;
fail:
    origin_clear(o);
    return -1;
}

/* -------------------------------------------------------------- producing */

static void outq_push(park_t *pk, delivery_t *d)
{
    if (pk->outq_n == pk->outq_cap) {
        pk->outq_cap = pk->outq_cap ? 2 * pk->outq_cap : 64;
        pk->outq = realloc(pk->outq, pk->outq_cap * sizeof *pk->outq);
    }
    pk->outq[pk->outq_n++] = d;
    pk->p->more_work = 1; /* flushed, in order, at the next loop turn */
}

static rd_kafka_headers_t *delivery_headers(park_t *pk, const delivery_t *d)
{
    const rd_kafka_message_t *m = d->rec->msg;
    rd_kafka_timestamp_type_t type;
    park_origin_t o = {
        .topic = (char *)rd_kafka_topic_name(m->rkt),
        .route = (char *)d->route->conf->name,
        .tenant = d->tenant,
        .partition = m->partition,
        .offset = m->offset,
        .timestamp_ms = rd_kafka_message_timestamp(m, &type),
        .key = m->key,
        .key_len = m->key_len,
        .run = pk->run,
        .seq = pk->next_seq,
    };
    return pl_park_headers(&o, pk->inst->conf->name, d->rec->headers,
                           d->rec->nh);
}

static int by_token(const void *a, const void *b);

/* Deliveries to the destination still inside its plugin (asynchronous)
 * when it was parked are older than some of those diverted since: their
 * answers are waited for (up to HOLD_MAX) so that the park topic holds
 * the events in consumption order. Alive and not diverted, produced or
 * being replayed: in the plugin (or on the dead-letter path, briefly). */
static int in_plugin(park_t *pk)
{
    size_t mine = pk->outq_n + pk->producing + (pk->busy ? 1 : 0);
    if (pk->inst->live <= mine)
        return 0;
    return es_now_ms() < pk->hold_until_ms;
}

/* An event larger than the producer takes (message.max.bytes) can never
 * be parked: sent again it would fail for ever and hold back every event
 * queued behind it. It is dead-lettered instead. */
static void too_large_to_park(es_pipeline_t *p, park_t *pk, delivery_t *d,
                              const char *err)
{
    char why[700];
    snprintf(why, sizeof why, "cannot be parked to %s: %s", pk->conf->topic,
             err);
    pl_dead_letter(p, d, why);
}

/* A send the producer refused at once (the topic unknown or refused, the
 * queue full) or failed later: the queue waits for the backoff. */
static void park_send_failed(park_t *pk, const char *why)
{
    const char *name = pk->inst->conf->name;
    uint64_t since = 0; /* stays 0 when this failure is not logged */
    int64_t secs = 0, now = es_now_ms();
    es_counter_add(pk->send_retries, 1);
    if (pl_streak_fail(&pk->send_streak, now, &since, &secs) && !since)
        es_log(ES_LOG_WARN, name,
               "park: not written to %s (%s); sent again, up to every "
               "retry.max_backoff_ms; until one is, failures are counted "
               "(es_park_send_retries_total) and logged once a minute",
               pk->conf->topic, why);
    else if (since)
        es_log(ES_LOG_WARN, name,
               "park: still not written to %s: %llu failure(s) in the last "
               "%lld s, the last: %s",
               pk->conf->topic, (unsigned long long)since, (long long)secs,
               why);
    /* One failed request fails many events: a round counts once. */
    if (now >= pk->send_again_ms)
        pk->send_again_ms =
            now + pl_backoff_ms(pk->p->conf, ++pk->send_failures);
}

static void park_send_acked(park_t *pk)
{
    uint64_t n = pl_streak_end(&pk->send_streak);
    pk->send_failures = 0;
    if (n)
        es_log(ES_LOG_INFO, pk->inst->conf->name,
               "park: written to %s again after %llu failure(s)",
               pk->conf->topic, (unsigned long long)n);
}

/* Queues the diverted deliveries oldest first. They are collected over a
 * loop turn and sorted: a batch handed to a plugin mixes retries (in the
 * order they fell due) with new events, so the order in which their RETRYs
 * arrive is not the order they were consumed in. A full producer queue
 * keeps the rest for the next turn. */
static void park_flush(es_pipeline_t *p, park_t *pk)
{
    const char *name = pk->inst->conf->name;
    size_t i;
    if (!pk->outq_n || in_plugin(pk) || es_now_ms() < pk->send_again_ms)
        return;
    if (pk->outq_n > 1)
        qsort(pk->outq, pk->outq_n, sizeof *pk->outq, by_token);
    for (i = 0; i < pk->outq_n; i++) {
        delivery_t *d = pk->outq[i];
        const es_decoded_t *dec = d->out ? &d->out->dec : &d->rec->dec;
        char err[512];
        int rc = es_producer_send(
            p->producer, pk->conf->topic, name, strlen(name), dec->json,
            dec->json_len, delivery_headers(pk, d),
            (void *)((uintptr_t)d | PARK_TAG), err, sizeof err);
        if (rc == -2) {
            too_large_to_park(p, pk, d, err);
            continue;
        }
        if (rc) { /* this one and the rest wait for the backoff */
            park_send_failed(pk, err);
            break;
        }
        pk->last_sent_seq = pk->next_seq++;
        pk->producing++;
    }
    if (i && i < pk->outq_n)
        memmove(pk->outq, pk->outq + i, (pk->outq_n - i) * sizeof *pk->outq);
    pk->outq_n -= i;
}

void pl_park_produced(es_pipeline_t *p, delivery_t *d, rd_kafka_resp_err_t err)
{
    park_t *pk = d->dest->park;
    pk->producing--;
    if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) { /* the broker's limit */
        too_large_to_park(p, pk, d, rd_kafka_err2str(err));
        return;
    }
    if (err) { /* back in the queue, in its place (park_flush sorts it) */
        char why[300];
        snprintf(why, sizeof why, "produce to %s not acknowledged: %s",
                 pk->conf->topic, rd_kafka_err2str(err));
        park_send_failed(pk, why);
        outq_push(pk, d);
        return;
    }
    park_send_acked(pk);
    es_counter_add(pk->parked_total, 1);
    pl_delivery_done(p, d); /* the main offset may move on */
}

/* ---------------------------------------------------------------- parking */

static int by_token(const void *a, const void *b)
{
    uint64_t x = (*(delivery_t *const *)a)->token;
    uint64_t y = (*(delivery_t *const *)b)->token;
    return x < y ? -1 : x > y;
}

static int by_due(const void *a, const void *b)
{
    int64_t x = (*(delivery_t *const *)a)->due_ms;
    int64_t y = (*(delivery_t *const *)b)->due_ms;
    return x < y ? -1 : x > y;
}

static int waiting_for(const delivery_t *d, const instance_t *inst)
{
    return d->dest == inst && !d->dlq && !d->redecode && !d->rec->origin &&
           !d->awaiting_plugin;
}

/* Takes the instance's deliveries out of the retry heap and its batch and
 * diverts them oldest first (tokens grow with consumption order). */
static void take_waiting(es_pipeline_t *p, park_t *pk, delivery_t *trigger)
{
    instance_t *inst = pk->inst;
    delivery_t **v = NULL;
    size_t n = 0, k = 0;
    v = malloc((p->heap_n + inst->batch_n + 1) * sizeof *v);
    for (size_t i = 0; i < p->heap_n; i++)
        if (waiting_for(p->heap[i], inst))
            v[n++] = p->heap[i];
        else
            p->heap[k++] = p->heap[i];
    p->heap_n = k;
    /* A sorted array is a valid min-heap. */
    if (p->heap_n > 1)
        qsort(p->heap, p->heap_n, sizeof *p->heap, by_due);
    k = 0;
    for (size_t i = 0; i < inst->batch_n; i++)
        if (!inst->batch[i]->rec->origin)
            v[n++] = inst->batch[i];
        else
            inst->batch[k++] = inst->batch[i];
    inst->batch_n = k;
    if (trigger)
        v[n++] = trigger;
    qsort(v, n, sizeof *v, by_token);
    for (size_t i = 0; i < n; i++)
        outq_push(pk, v[i]);
    free(v);
}

static void park_start(es_pipeline_t *p, park_t *pk, delivery_t *trigger,
                       const char *why)
{
    pk->parked = 1;
    pk->hold_until_ms = es_now_ms() + HOLD_MAX;
    es_gauge_set(pk->gauge, 1);
    es_log(ES_LOG_WARN, pk->inst->conf->name,
           "destination parked: %s; its events go to %s until it answers "
           "again",
           why, pk->conf->topic);
    take_waiting(p, pk, trigger);
}

int pl_park_on_retry(es_pipeline_t *p, delivery_t *d)
{
    park_t *pk = d->dest->park;
    if (d->rec->origin && pk->closing) {
        /* Its subscription is gone and the drainer has left without
         * committing it: the park topic keeps it for a subscription
         * re-created with the same id. */
        pl_delivery_done(p, d);
        return 1;
    }
    if (d->rec->origin)
        return 0; /* a replay: retried in place, never skipped */
    if (pk->parked) {
        outq_push(pk, d);
        return 1;
    }
    int64_t now = es_now_ms();
    if (!pk->first_fail_ms)
        pk->first_fail_ms = now;
    park_policy_t pol = {pk->conf->after_ms, pk->conf->after_attempts,
                         p->conf->retry_max_attempts};
    if (!pl_park_due(&pol, d->attempt, pk->first_fail_ms, now))
        return 0;
    char why[128];
    snprintf(why, sizeof why, "an event failed %u time(s), failing for %lld ms",
             d->attempt, (long long)(now - pk->first_fail_ms));
    park_start(p, pk, d, why);
    return 1;
}

int pl_park_divert(es_pipeline_t *p, delivery_t *d)
{
    park_t *pk = d->dest->park;
    if (!pk->parked || d->rec->origin)
        return 0;
    (void)p;
    outq_push(pk, d);
    return 1;
}

void pl_park_on_ok(delivery_t *d)
{
    if (!d->rec->origin)
        d->dest->park->first_fail_ms = 0;
}

/* --------------------------------------------------------------- draining */

static partition_t *find_part(park_t *pk, int32_t partition)
{
    for (partition_t *pt = pk->parts; pt; pt = pt->next)
        if (pt->partition == partition)
            return pt;
    return NULL;
}

void pl_park_fix_event(es_event_t *ev, const record_t *rec)
{
    const park_origin_t *o = rec->origin;
    ev->topic = o->topic;
    ev->partition = o->partition;
    ev->offset = o->offset;
    ev->timestamp_ms = o->timestamp_ms;
    ev->key = o->key;
    ev->key_len = o->key_len;
}

void pl_park_record_done(record_t *rec)
{
    park_origin_t *o = rec->origin;
    park_t *pk = o->park;
    pk->busy = 0;
    if (o->run == pk->run && o->seq > pk->done_seq)
        pk->done_seq = o->seq;
    es_counter_add(pk->drained_total, 1);
    pk->p->more_work = 1; /* the next one can go */
    origin_clear(o);
    free(o);
    rec->origin = NULL;
}

/* The origin of a record that cannot be replayed: where it is in the park
 * topic, for the dead-letter headers. */
static void origin_of_park_record(park_origin_t *o, const rd_kafka_message_t *m)
{
    origin_clear(o);
    o->topic = strdup(rd_kafka_topic_name(m->rkt));
    o->partition = m->partition;
    o->offset = m->offset;
    o->key = m->key;
    o->key_len = m->key_len;
}

/* One parked record back into the pipeline as a delivery to its
 * destination; it is the only one in flight until it is done. */
static void replay(es_pipeline_t *p, park_t *pk, rd_kafka_message_t *m)
{
    partition_t *part = find_part(pk, m->partition);
    if (!part || es_offsets_track(part->offsets, m->offset)) {
        rd_kafka_message_destroy(m); /* not ours any more */
        return;
    }
    record_t *rec = calloc(1, sizeof *rec);
    park_origin_t *o = calloc(1, sizeof *o);
    rec->msg = m;
    rec->part = part;
    rec->pending = 1;
    rec->origin = o;
    part->inflight++;
    p->inflight++;
    pk->busy = 1;
    rd_kafka_headers_t *h = NULL;
    char why[300] = "", err[256];
    route_t *route = NULL;
    if (rd_kafka_message_headers(m, &h))
        h = NULL;
    if (pl_park_parse_headers(h, o, &rec->headers, &rec->nh, err, sizeof err)) {
        snprintf(why, sizeof why, "park record: %s", err);
        origin_of_park_record(o, m);
    } else if (es_decode_record(m->payload, m->len, NULL, 0, SIZE_MAX,
                                pl_index_events(p), &rec->dec, err,
                                sizeof err)) {
        snprintf(why, sizeof why, "park record: %s", err);
    } else if (!(route = pl_route_by_name(p, o->route)) &&
               !(route = pl_sub_route(p, pk->inst, o->route))) {
        snprintf(why, sizeof why,
                 "park record: route \"%.100s\" is not "
                 "configured any more",
                 o->route);
    }
    o->park = pk;
    delivery_t *d = pl_delivery_new(p, rec, NULL, route, pk->inst, o->tenant);
    if (why[0])
        pl_dead_letter(p, d, why);
    else
        pl_enqueue(pk->inst, d);
    pl_record_release(p, rec);
}

static size_t held_count(const park_t *pk)
{
    return pk->held_n - pk->held_head;
}

static void held_push(park_t *pk, rd_kafka_message_t *m)
{
    if (pk->held_head && pk->held_head == pk->held_n)
        pk->held_head = pk->held_n = 0;
    if (pk->held_n == pk->held_cap) {
        if (pk->held_head) { /* reuse the consumed front first */
            memmove(pk->held, pk->held + pk->held_head,
                    held_count(pk) * sizeof *pk->held);
            pk->held_n -= pk->held_head;
            pk->held_head = 0;
        } else {
            pk->held_cap = pk->held_cap ? 2 * pk->held_cap : 64;
            pk->held = realloc(pk->held, pk->held_cap * sizeof *pk->held);
        }
    }
    pk->held[pk->held_n++] = m;
}

static void drop_held(park_t *pk)
{
    while (held_count(pk))
        rd_kafka_message_destroy(pk->held[pk->held_head++]);
    pk->held_head = pk->held_n = 0;
}

static void set_paused(park_t *pk, int pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (pk->held_paused == pause || rd_kafka_assignment(pk->rk, &l) || !l)
        return;
    if (pause)
        rd_kafka_pause_partitions(pk->rk, l);
    else
        rd_kafka_resume_partitions(pk->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    pk->held_paused = pause;
}

/* Fetches what the drainer has (serving its rebalances too). */
static void drain_poll(park_t *pk)
{
    for (int i = 0; i < POLL_MAX; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(pk->rk, 0);
        if (!m)
            break;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                es_log(ES_LOG_WARN, pk->inst->conf->name, "park drainer: %s",
                       rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        held_push(pk, m);
    }
    if (held_count(pk) > HELD_MAX)
        set_paused(pk, 1);
    else if (held_count(pk) < HELD_MAX / 2)
        set_paused(pk, 0);
}

static void drain_commit(park_t *pk, int sync)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    for (partition_t *pt = pk->parts; pt; pt = pt->next) {
        int64_t cp = es_offsets_commit_point(pt->offsets);
        if (cp < 0 || cp <= pt->committed)
            continue;
        rd_kafka_topic_partition_list_add(l, pt->topic, pt->partition)->offset =
            cp;
        pt->committed = cp;
    }
    if (l->cnt) {
        rd_kafka_resp_err_t err = rd_kafka_commit(pk->rk, l, !sync);
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
            es_log(ES_LOG_WARN, pk->inst->conf->name, "park commit: %s",
                   rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* ------------------------------------------------------- backlog, unpark */

static void backlog_add(park_t *pk, int32_t partition, int64_t end)
{
    pk->backlog =
        realloc(pk->backlog, (pk->nbacklog + 1) * sizeof *pk->backlog);
    pk->backlog[pk->nbacklog++] = (backlog_t){partition, end};
}

/* Records every partition of `l` the drain group has not consumed to its
 * end. Returns how many, or -1 when Kafka could not tell. */
static int backlog_scan(park_t *pk, rd_kafka_topic_partition_list_t *l)
{
    if (rd_kafka_committed(pk->rk, l, KAFKA_WAIT))
        return -1;
    int n = 0;
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &l->elems[i];
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(pk->rk, tp->topic, tp->partition,
                                             &lo, &hi, KAFKA_WAIT))
            return -1;
        int64_t start = tp->offset >= 0 ? tp->offset : lo;
        if (hi > start) {
            backlog_add(pk, tp->partition, hi);
            n++;
        }
    }
    return n;
}

static int backlog_left(park_t *pk)
{
    size_t k = 0;
    for (size_t i = 0; i < pk->nbacklog; i++) {
        partition_t *pt = find_part(pk, pk->backlog[i].partition);
        if (!pt || es_offsets_commit_point(pt->offsets) < pk->backlog[i].end)
            pk->backlog[k++] = pk->backlog[i];
    }
    pk->nbacklog = k;
    return k > 0;
}

/* Every partition of the park topic: NULL when Kafka cannot tell. */
static rd_kafka_topic_partition_list_t *park_partitions(park_t *pk, int wait)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(pk->rk, pk->conf->topic, NULL);
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_metadata(pk->rk, 0, t, &md, wait) == 0 && md->topic_cnt == 1) {
        const struct rd_kafka_metadata_topic *mt = &md->topics[0];
        if (mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            l = rd_kafka_topic_partition_list_new(1);
        else if (!mt->err) {
            l = rd_kafka_topic_partition_list_new(mt->partition_cnt);
            for (int i = 0; i < mt->partition_cnt; i++)
                rd_kafka_topic_partition_list_add(l, pk->conf->topic,
                                                  mt->partitions[i].id);
        }
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return l;
}

/* Another process may own the partition this one parks to (several
 * processes in the same groups): then its drainer replays our events and
 * our own count never moves. After a few seconds without progress, ask
 * Kafka: once the drain group has committed every partition up to its end
 * (an end taken after our last acknowledgement), all we parked is done. */
static int drained_elsewhere(park_t *pk)
{
    int64_t now = es_now_ms();
    if (pk->done_seq != pk->stall_seq || !pk->stall_since_ms) {
        pk->stall_seq = pk->done_seq;
        pk->stall_since_ms = now;
        return 0;
    }
    if (now - pk->stall_since_ms < 5000 || now < pk->next_shared_check_ms)
        return 0;
    pk->next_shared_check_ms = now + 5000;
    rd_kafka_topic_partition_list_t *l = park_partitions(pk, 2000);
    if (!l)
        return 0;
    int drained = l->cnt > 0 && !rd_kafka_committed(pk->rk, l, 2000);
    for (int i = 0; drained && i < l->cnt; i++) {
        int64_t lo, hi;
        rd_kafka_topic_partition_t *tp = &l->elems[i];
        drained = !rd_kafka_query_watermark_offsets(
                      pk->rk, tp->topic, tp->partition, &lo, &hi, 2000) &&
                  (tp->offset >= 0 ? tp->offset : lo) >= hi;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return drained;
}

/* Unparked only when everything this process parked has been replayed and
 * nothing else waits: deliveries that go direct from now on cannot pass a
 * parked one. */
static void maybe_unpark(park_t *pk)
{
    if (!pk->parked || pk->busy || pk->outq_n || pk->producing ||
        held_count(pk))
        return;
    int here = pk->done_seq == pk->last_sent_seq && !backlog_left(pk);
    if (!here && !drained_elsewhere(pk))
        return;
    pk->parked = 0;
    pk->first_fail_ms = 0;
    pk->stall_since_ms = 0;
    pk->nbacklog = 0;
    es_gauge_set(pk->gauge, 0);
    es_log(ES_LOG_INFO, pk->inst->conf->name,
           "destination unparked: %s is drained%s; deliveries go direct again",
           pk->conf->topic, here ? "" : " (by its drain group)");
}

/* The config's instances, then the subscriptions' (p->dyn). */
static instance_t *nth_instance(es_pipeline_t *p, size_t i)
{
    if (i < p->ninstances)
        return p->instances ? &p->instances[i] : NULL;
    i -= p->ninstances;
    return i < p->ndyn ? p->dyn[i] : NULL;
}

static void park_turn(es_pipeline_t *p, park_t *pk, int consume)
{
    park_flush(p, pk);
    if (pk->closing) /* detached: only its producing is left */
        return;
    drain_poll(pk);
    if (consume && !pk->busy && held_count(pk))
        replay(p, pk, pk->held[pk->held_head++]);
    drain_commit(pk, 0);
    maybe_unpark(pk);
}

int pl_park_iterate(es_pipeline_t *p, int consume)
{
    for (size_t i = 0; i < p->ninstances + p->ndyn; i++) {
        instance_t *inst = nth_instance(p, i);
        if (inst && inst->park)
            park_turn(p, inst->park, consume);
    }
    return 0;
}

/* ------------------------------------------------------------- rebalances */

static void parts_release(park_t *pk)
{
    partition_t *pt = pk->parts;
    pk->parts = NULL;
    while (pt) {
        partition_t *next = pt->next;
        pt->revoked = 1;
        if (pt->inflight == 0) { /* else the last record frees it */
            es_offsets_destroy(pt->offsets);
            free(pt->topic);
            free(pt);
        }
        pt = next;
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *l, void *opaque)
{
    park_t *pk = opaque;
    const char *name = pk->inst->conf->name;
    if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (!pk->closing) /* at exit, abandoned records look done */
            drain_commit(pk, 1);
        parts_release(pk);
        drop_held(pk); /* the next owner replays them */
        pk->held_paused = 0;
        pk->nbacklog = 0;
        rd_kafka_assign(rk, NULL);
        return;
    }
    rd_kafka_topic_partition_list_t *copy =
        rd_kafka_topic_partition_list_copy(l);
    int n = backlog_scan(pk, copy);
    rd_kafka_topic_partition_list_destroy(copy);
    for (int i = 0; i < l->cnt; i++) {
        partition_t *pt = calloc(1, sizeof *pt);
        pt->topic = strdup(l->elems[i].topic);
        pt->partition = l->elems[i].partition;
        pt->offsets = es_offsets_new();
        pt->committed = -1;
        pt->last_offset = -1;
        pt->next = pk->parts;
        pk->parts = pt;
    }
    rd_kafka_assign(rk, l);
    es_log(ES_LOG_INFO, name, "park drainer assigned group=%s partitions=%d",
           pk->group, l->cnt);
    if (n != 0 && !pk->parked)
        park_start(pk->p, pk, NULL,
                   n < 0 ? "cannot tell whether its park topic is drained"
                         : "its park topic holds events not yet replayed");
}

/* ------------------------------------------------------------------ set-up */

static int drainer_conf(park_t *pk, const char *brokers, rd_kafka_conf_t **out,
                        char *errstr, size_t errstr_size)
{
    const cJSON *props = pk->p->conf->kafka_properties;
    rd_kafka_conf_t *conf =
        es_kafka_conf_new(brokers, props, errstr, errstr_size);
    if (!conf)
        return -1;
    /* earliest: a park topic is only ever read by its drain group, and a
     * group that never committed must replay all of it. The drainer's
     * rebalance callback takes and gives back its whole assignment, so its
     * group stays eager whatever kafka.properties choose for the others
     * (its members are all eventstreamd's drainers of this instance). */
    if (es_kafka_conf_set(conf, "group.id", pk->group, errstr, errstr_size) ||
        es_kafka_conf_set(conf, "partition.assignment.strategy",
                          "range,roundrobin", errstr, errstr_size) ||
        es_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
                          errstr_size) ||
        es_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr,
                          errstr_size) ||
        es_kafka_conf_set(conf, "enable.partition.eof", "false", errstr,
                          errstr_size) ||
        (!cJSON_GetObjectItemCaseSensitive(props, "allow.auto.create.topics") &&
         es_kafka_conf_set(conf, "allow.auto.create.topics", "true", errstr,
                           errstr_size))) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, pk);
    *out = conf;
    return 0;
}

/* Before the main consumers start: a destination whose park topic holds
 * events its drain group has not replayed starts parked, so nothing new
 * passes them. */
static void startup_scan(park_t *pk)
{
    rd_kafka_topic_partition_list_t *l = park_partitions(pk, KAFKA_WAIT);
    int n = -1;
    if (l) {
        n = l->cnt ? backlog_scan(pk, l) : 0;
        rd_kafka_topic_partition_list_destroy(l);
    }
    if (n == 0)
        return;
    pk->parked = 1;
    es_gauge_set(pk->gauge, 1);
    es_log(ES_LOG_WARN, pk->inst->conf->name,
           "destination starts parked: %s %s; new events queue behind them",
           n < 0 ? "cannot tell whether nothing waits in"
                 : "events not yet replayed wait in",
           pk->conf->topic);
}

static int drainer_start(park_t *pk, const char *brokers, char *errstr,
                         size_t errstr_size)
{
    rd_kafka_conf_t *conf;
    if (drainer_conf(pk, brokers, &conf, errstr, errstr_size))
        return -1;
    pk->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!pk->rk) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    if (es_msk_iam_start(pk->rk, errstr, errstr_size))
        return -1;
    rd_kafka_poll_set_consumer(pk->rk);
    /* A record for the drainer wakes the main loop like a completion. */
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(pk->rk);
    rd_kafka_queue_io_event_enable(q, pk->p->comp_wake[1], "k", 1);
    rd_kafka_queue_destroy(q);
    startup_scan(pk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, pk->conf->topic,
                                      RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(pk->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        snprintf(errstr, errstr_size, "subscribe: %s", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

static park_t *park_new(es_pipeline_t *p, instance_t *inst)
{
    park_t *pk = calloc(1, sizeof *pk);
    const es_park_conf_t *pc = &inst->conf->park;
    pk->p = p;
    pk->inst = inst;
    pk->conf = pc;
    if (pc->group)
        pk->group = strdup(pc->group);
    else if (asprintf(&pk->group, "%s.park.%s", p->conf->group_id,
                      inst->conf->name) < 0)
        pk->group = NULL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pk->run = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
              ((uint64_t)getpid() << 16);
    pk->next_seq = 1;
    char labels[300], esc[200];
    es_metrics_label_escape(esc, sizeof esc, inst->conf->name);
    snprintf(labels, sizeof labels, "destination=\"%s\"", esc);
    pk->gauge = es_metrics_gauge("es_parked", labels);
    pk->parked_total = es_metrics_counter("es_parked_total", labels);
    pk->drained_total = es_metrics_counter("es_drained_total", labels);
    pk->send_retries = es_metrics_counter("es_park_send_retries_total", labels);
    es_gauge_set(pk->gauge, 0);
    return pk;
}

int pl_park_attach(es_pipeline_t *p, instance_t *inst, char *errstr,
                   size_t errstr_size)
{
    if (!inst->conf->park.enabled)
        return 0;
    if (!es_producer_enabled(p->producer)) {
        es_log(ES_LOG_WARN, inst->conf->name,
               "parking is off: KAFKA_ENABLED=false");
        return 0;
    }
    inst->park = park_new(p, inst);
    if (drainer_start(inst->park, p->brokers, errstr, errstr_size)) {
        pl_park_free(inst);
        return -1;
    }
    return 0;
}

int pl_park_init(es_pipeline_t *p, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < p->ninstances; i++) {
        instance_t *inst = &p->instances[i];
        char err[512] = "";
        if (pl_park_attach(p, inst, err, sizeof err)) {
            snprintf(errstr, errstr_size, "%s: instances.%s.park: %s",
                     p->conf->path, inst->conf->name, err);
            return -1;
        }
    }
    return 0;
}

/* Commits what the drainer has replayed and leaves the drain group; what
 * is in flight will look done. Deliveries on their way to the park topic
 * still go (park_turn flushes them). */
void pl_park_detach(instance_t *inst)
{
    park_t *pk = inst->park;
    if (!pk || !pk->rk || pk->closing)
        return;
    drain_commit(pk, 1);
    pk->closing = 1;
    drop_held(pk);
    rd_kafka_consumer_close(pk->rk);
}

void pl_park_close(es_pipeline_t *p)
{
    for (size_t i = 0; i < p->ninstances + p->ndyn; i++) {
        instance_t *inst = nth_instance(p, i);
        if (inst)
            pl_park_detach(inst);
    }
}

void pl_park_free(instance_t *inst)
{
    park_t *pk = inst->park;
    if (!pk)
        return;
    drop_held(pk);
    if (pk->rk) {
        if (!pk->closing) {
            pk->closing = 1;
            rd_kafka_consumer_close(pk->rk);
        }
        rd_kafka_destroy(pk->rk);
    }
    parts_release(pk);
    es_gauge_set(pk->gauge, 0); /* a deleted subscription is not parked */
    free(pk->held);
    free(pk->outq);
    free(pk->backlog);
    free(pk->group);
    free(pk);
    inst->park = NULL;
}

void pl_park_destroy(es_pipeline_t *p)
{
    for (size_t i = 0; i < p->ninstances + p->ndyn; i++) {
        instance_t *inst = nth_instance(p, i);
        if (inst)
            pl_park_free(inst);
    }
}
