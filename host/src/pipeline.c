/*
 * The pipeline's core: deliveries and their tokens, the retry heap, dead
 * letters, plugin results and completions, dispatch to instances, set-up,
 * the main loop and shutdown. See pipeline_int.h for the other files.
 */
#include "internal/es_clock.h"
#include "pipeline_int.h"

void pl_make_wake_pipe(int fds[2])
{
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        fds[0] = fds[1] = -1;
}

static void drain_fd(int fd)
{
    char buf[256];
    while (fd >= 0 && read(fd, buf, sizeof buf) > 0)
        ;
}

void pl_wake(int fd)
{
    ssize_t n = write(fd, "x", 1);
    (void)n; /* a full pipe is already a pending wake-up */
}

/* ----------------------------------------------------------------- tokens */

static void token_register(es_pipeline_t *p, delivery_t *d)
{
    pthread_mutex_lock(&p->token_lock);
    d->token = ++p->next_token;
    size_t b = d->token % TOKEN_BUCKETS;
    d->next_in_bucket = p->tokens[b];
    p->tokens[b] = d;
    pthread_mutex_unlock(&p->token_lock);
}

delivery_t *pl_token_lookup(es_pipeline_t *p, uint64_t token)
{
    pthread_mutex_lock(&p->token_lock);
    delivery_t *d = p->tokens[token % TOKEN_BUCKETS];
    while (d && d->token != token)
        d = d->next_in_bucket;
    pthread_mutex_unlock(&p->token_lock);
    return d;
}

static void token_unregister(es_pipeline_t *p, delivery_t *d)
{
    pthread_mutex_lock(&p->token_lock);
    delivery_t **pp = &p->tokens[d->token % TOKEN_BUCKETS];
    while (*pp && *pp != d)
        pp = &(*pp)->next_in_bucket;
    if (*pp)
        *pp = d->next_in_bucket;
    pthread_mutex_unlock(&p->token_lock);
}

/* ------------------------------------------------------------ retry heap */

static void heap_swap(es_pipeline_t *p, size_t a, size_t b)
{
    delivery_t *t = p->heap[a];
    p->heap[a] = p->heap[b];
    p->heap[b] = t;
}

static void heap_push(es_pipeline_t *p, delivery_t *d)
{
    if (p->heap_n == p->heap_cap) {
        p->heap_cap = p->heap_cap ? 2 * p->heap_cap : 256;
        p->heap = realloc(p->heap, p->heap_cap * sizeof *p->heap);
    }
    size_t i = p->heap_n++;
    p->heap[i] = d;
    while (i && p->heap[(i - 1) / 2]->due_ms > p->heap[i]->due_ms) {
        heap_swap(p, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static delivery_t *heap_pop(es_pipeline_t *p)
{
    delivery_t *top = p->heap[0];
    p->heap[0] = p->heap[--p->heap_n];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < p->heap_n && p->heap[l]->due_ms < p->heap[m]->due_ms)
            m = l;
        if (r < p->heap_n && p->heap[r]->due_ms < p->heap[m]->due_ms)
            m = r;
        if (m == i)
            break;
        heap_swap(p, i, m);
        i = m;
    }
    return top;
}

/* -------------------------------------------------------- records, offsets */

static void record_done(es_pipeline_t *p, record_t *rec)
{
    partition_t *part = rec->part;
    if (rec->origin)
        pl_park_record_done(rec);
    es_offsets_done(part->offsets, rec->msg->offset);
    part->inflight--;
    if (part->c) /* a park drainer's partitions have no consumer_t */
        part->c->inflight--;
    p->inflight--;
    rd_kafka_message_destroy(rec->msg);
    es_decoded_clear(&rec->dec);
    free(rec->headers);
    free(rec->tenant);
    free(rec);
    if (part->revoked && part->inflight == 0) {
        es_offsets_destroy(part->offsets);
        free(part->topic);
        free(part);
    }
}

void pl_record_release(es_pipeline_t *p, record_t *rec)
{
    if (--rec->pending == 0)
        record_done(p, rec);
}

void pl_output_release(output_t *o)
{
    if (o && --o->refs == 0) {
        es_decoded_clear(&o->dec);
        free(o);
    }
}

delivery_t *pl_delivery_new(es_pipeline_t *p, record_t *rec, output_t *out,
                            route_t *route, instance_t *dest,
                            const char *tenant)
{
    delivery_t *d = calloc(1, sizeof *d);
    d->rec = rec;
    d->out = out;
    d->route = route;
    d->dest = dest;
    d->tenant = tenant ? strdup(tenant) : NULL;
    d->attempt = 1;
    if (dest)
        dest->live++;
    if (route)
        route->live++;
    if (out)
        out->refs++;
    rec->pending++;
    token_register(p, d);
    return d;
}

static void delivery_done(es_pipeline_t *p, delivery_t *d)
{
    token_unregister(p, d);
    if (d->dest)
        d->dest->live--;
    if (d->route)
        d->route->live--;
    record_t *rec = d->rec;
    pl_output_release(d->out);
    free(d->tenant);
    free(d);
    pl_record_release(p, rec);
}

void pl_delivery_done(es_pipeline_t *p, delivery_t *d)
{
    delivery_done(p, d);
}

/* ------------------------------------------------------------ dead letters */

static void add_header(rd_kafka_headers_t *h, const char *name,
                       const char *value)
{
    rd_kafka_header_add(h, name, -1, value ? value : "", -1);
}

/* A dead letter too large for the producer (its record near
 * pipeline.max_event_bytes, the producer's or the broker's
 * message.max.bytes smaller) would fail every time and hold its
 * partition's commits for ever. It is written bare instead: the reason
 * and where the record is, which its source topic keeps. */
static const char *bare_reason(const delivery_t *d, char *buf, size_t n)
{
    const rd_kafka_message_t *m = d->rec->msg;
    const park_origin_t *o = d->rec->origin;
    snprintf(buf, n,
             "%zu-byte value, %zu-byte key and %zu header(s) left out: too "
             "large for the producer (message.max.bytes); the record is at "
             "es_topic/es_partition/es_offset",
             m->len, o ? o->key_len : m->key_len, d->rec->nh);
    return buf;
}

static rd_kafka_headers_t *dead_letter_headers(const delivery_t *d)
{
    const rd_kafka_message_t *m = d->rec->msg;
    const park_origin_t *o = d->rec->origin; /* replayed: where it came from */
    rd_kafka_headers_t *h = rd_kafka_headers_new(d->rec->nh + 8);
    char num[32];
    add_header(h, "es_reason", d->reason);
    add_header(h, "es_route", d->route ? d->route->conf->name : "");
    add_header(h, "es_destination", d->dest ? d->dest->conf->name : "");
    add_header(h, "es_plugin", d->dest ? d->dest->plugin->name : d->dlq_plugin);
    add_header(h, "es_topic", pl_rec_topic(d->rec));
    snprintf(num, sizeof num, "%d", (int)(o ? o->partition : m->partition));
    add_header(h, "es_partition", num);
    snprintf(num, sizeof num, "%lld", (long long)(o ? o->offset : m->offset));
    add_header(h, "es_offset", num);
    snprintf(num, sizeof num, "%u", d->attempt);
    add_header(h, "es_attempts", num);
    if (d->dlq_bare) {
        char why[256];
        add_header(h, "es_left_out", bare_reason(d, why, sizeof why));
        return h;
    }
    for (size_t i = 0; i < d->rec->nh; i++) /* the original headers too */
        rd_kafka_header_add(h, d->rec->headers[i].name, -1,
                            d->rec->headers[i].value,
                            (ssize_t)d->rec->headers[i].value_len);
    return h;
}

int64_t pl_backoff_ms(const es_config_t *c, uint32_t attempt)
{
    int64_t b = es_backoff_doubled(c->retry_initial_backoff_ms,
                                   c->retry_max_backoff_ms, attempt);
    /* Full jitter on the upper half spreads retries of a burst apart. */
    return b / 2 + (b > 1 ? random() % (b - b / 2) : 0);
}

#define STREAK_LOG_INTERVAL_MS 60000

int pl_streak_fail(fail_streak_t *s, int64_t now, uint64_t *since,
                   int64_t *secs)
{
    if (s->n++ == 0) {
        *since = 0;
        s->logged_ms = now;
        return 1;
    }
    s->since_log++;
    if (now - s->logged_ms < STREAK_LOG_INTERVAL_MS)
        return 0;
    *since = s->since_log;
    *secs = (now - s->logged_ms) / 1000;
    s->since_log = 0;
    s->logged_ms = now;
    return 1;
}

uint64_t pl_streak_end(fail_streak_t *s)
{
    uint64_t n = s->n;
    s->n = s->since_log = 0;
    return n;
}

/* A write that failed is retried with the retry.* backoff, the streak of
 * failures (the cluster unreachable, the topic refused) logged as above. */
static void dead_letter_failed(es_pipeline_t *p, delivery_t *d, const char *why)
{
    uint64_t since = 0; /* stays 0 when this failure is not logged */
    int64_t secs = 0, now = es_now_ms();
    es_counter_add(p->dlq_retries, 1);
    if (pl_streak_fail(&p->dlq_streak, now, &since, &secs) && !since)
        es_warn("dead letter not written (%s); it is retried, up to every "
                "retry.max_backoff_ms, and its offset not committed; until one "
                "is written, failures are counted "
                "(es_dead_letter_retries_total) and logged once a minute",
                why);
    else if (since)
        es_warn("dead letters still not written: %llu failure(s) in the "
                "last %lld s, the last: %s",
                (unsigned long long)since, (long long)secs, why);
    d->due_ms = now + pl_backoff_ms(p->conf, ++d->dlq_attempt);
    heap_push(p, d);
}

static void dead_letter_written(es_pipeline_t *p, delivery_t *d)
{
    uint64_t n = pl_streak_end(&p->dlq_streak);
    if (n)
        es_info("dead letters written again after %llu failure(s)",
                (unsigned long long)n);
    delivery_done(p, d);
}

static void dead_letter_send(es_pipeline_t *p, delivery_t *d);

static void dead_letter_bare(es_pipeline_t *p, delivery_t *d)
{
    const rd_kafka_message_t *m = d->rec->msg;
    const park_origin_t *o = d->rec->origin;
    char why[256];
    es_warn("dead letter of topic=%s partition=%d offset=%lld written bare: "
            "%s",
            pl_rec_topic(d->rec), (int)(o ? o->partition : m->partition),
            (long long)(o ? o->offset : m->offset),
            bare_reason(d, why, sizeof why));
    d->dlq_bare = 1;
    dead_letter_send(p, d);
}

static void dead_letter_send(es_pipeline_t *p, delivery_t *d)
{
    const rd_kafka_message_t *m = d->rec->msg;
    const park_origin_t *o = d->rec->origin;
    const void *key = NULL, *value = NULL;
    size_t key_len = 0, len = 0;
    if (!d->dlq_bare) {
        key = o ? o->key : m->key;
        key_len = o ? o->key_len : m->key_len;
        value = m->payload;
        len = m->len;
    }
    char err[512];
    int rc = es_producer_send(p->producer, p->conf->dead_letter_topic, key,
                              key_len, value, len, dead_letter_headers(d), d,
                              err, sizeof err);
    if (rc == 0)
        return;
    if (rc == 1) { /* publishing disabled: the reason is all we can keep */
        es_warn("dead letter skipped (KAFKA_ENABLED=false) topic=%s "
                "partition=%d offset=%lld reason=\"%s\"",
                rd_kafka_topic_name(m->rkt), (int)m->partition,
                (long long)m->offset, d->reason);
        delivery_done(p, d);
        return;
    }
    if (rc == -2 && !d->dlq_bare)
        dead_letter_bare(p, d);
    else
        dead_letter_failed(p, d, err);
}

void pl_dead_letter(es_pipeline_t *p, delivery_t *d, const char *reason)
{
    d->dlq = 1;
    snprintf(d->reason, sizeof d->reason, "%s", reason);
    es_counter_add(p->dead_lettered, 1);
    if (d->dest)
        es_counter_add(d->dest->dead_lettered, 1);
    es_log(ES_LOG_WARN, d->dest ? d->dest->conf->name : "host",
           "dead-lettering topic=%s partition=%d offset=%lld route=%s: %s",
           rd_kafka_topic_name(d->rec->msg->rkt), (int)d->rec->msg->partition,
           (long long)d->rec->msg->offset,
           d->route ? d->route->conf->name : "-", reason);
    dead_letter_send(p, d);
}

/* A record-level failure (undecodable, filter error, no tenant). */
void pl_dead_letter_record(es_pipeline_t *p, record_t *rec, route_t *route,
                           const char *plugin, const char *reason)
{
    delivery_t *d = pl_delivery_new(p, rec, NULL, route, NULL, NULL);
    d->dlq_plugin = plugin;
    pl_dead_letter(p, d, reason);
}

/* ------------------------------------------------------ delivery results */

static void enqueue(instance_t *inst, delivery_t *d)
{
    if (inst->batch_n == inst->batch_cap) {
        inst->batch_cap = inst->batch_cap ? 2 * inst->batch_cap : 64;
        inst->batch =
            realloc(inst->batch, inst->batch_cap * sizeof *inst->batch);
    }
    inst->batch[inst->batch_n++] = d;
}

void pl_enqueue(instance_t *inst, delivery_t *d)
{
    if (!inst->park || !pl_park_divert(inst->p, d))
        enqueue(inst, d);
}

static void schedule_retry(es_pipeline_t *p, delivery_t *d, const char *reason)
{
    es_counter_add(d->dest->retried, 1);
    if (d->dest->park && pl_park_on_retry(p, d))
        return; /* on its way to the park topic */
    int max = p->conf->retry_max_attempts;
    /* A replayed event is never given up on while it can be retried. */
    if (max && d->attempt >= (uint32_t)max && !d->rec->origin) {
        char why[300];
        snprintf(why, sizeof why, "gave up after %u attempts: %s", d->attempt,
                 reason && *reason ? reason : "retry");
        pl_dead_letter(p, d, why);
        return;
    }
    es_log(ES_LOG_DEBUG, d->dest->conf->name, "retry attempt=%u reason=\"%s\"",
           d->attempt, reason ? reason : "");
    d->due_ms = es_now_ms() + pl_backoff_ms(p->conf, d->attempt);
    d->attempt++;
    d->plugin_done = 0;
    atomic_store(&d->child_failed, 0);
    heap_push(p, d);
}

/* From the record's Kafka timestamp (producer or broker time) to the
 * destination's acknowledgement. */
static void observe_latency(delivery_t *d)
{
    rd_kafka_timestamp_type_t type;
    int64_t ts = d->rec->origin
                     ? d->rec->origin->timestamp_ms
                     : rd_kafka_message_timestamp(d->rec->msg, &type);
    if (ts <= 0)
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - ts;
    es_histogram_observe(d->dest->latency, ms > 0 ? (uint64_t)ms : 0);
}

/* The plugin is done with the event; emitted children may still be in
 * flight, and a failed child means the handler must run again. */
static void settle(es_pipeline_t *p, delivery_t *d)
{
    if (!d->plugin_done || atomic_load(&d->children) > 0)
        return;
    if (atomic_load(&d->child_failed)) {
        schedule_retry(p, d, "an emitted event was not acknowledged");
        return;
    }
    es_counter_add(d->dest->delivered, 1);
    if (d->dest->park)
        pl_park_on_ok(d);
    observe_latency(d);
    es_usage_add(p->usage, d->tenant, pl_rec_topic(d->rec), d->dest->conf->name,
                 d->out ? d->out->dec.json_len : d->rec->dec.json_len);
    delivery_done(p, d);
}

static void apply_result(es_pipeline_t *p, delivery_t *d, es_status_t status,
                         const char *reason)
{
    switch (status) {
    case ES_OK:
        d->plugin_done = 1;
        settle(p, d);
        return;
    case ES_PENDING:
        d->awaiting_plugin = 1;
        return;
    case ES_RETRY:
        if (atomic_load(&d->children) > 0) { /* wait for them first */
            atomic_store(&d->child_failed, 1);
            d->plugin_done = 1;
            return;
        }
        schedule_retry(p, d, reason);
        return;
    case ES_FAIL:
        pl_dead_letter(p, d, reason && *reason ? reason : "failed");
        return;
    }
    es_log(ES_LOG_ERROR, d->dest->conf->name,
           "plugin bug: invalid status %d for an event; retrying it",
           (int)status);
    schedule_retry(p, d, "invalid status from plugin");
}

/* -------------------------------------------- producer reports, completions */

static void on_produced(void *opaque, rd_kafka_resp_err_t err, void *ud)
{
    es_pipeline_t *p = ud;
    if ((uintptr_t)opaque & EMIT_TAG) {
        delivery_t *parent = (delivery_t *)((uintptr_t)opaque & ~EMIT_TAG);
        if (err)
            es_warn("emitted event not acknowledged: %s",
                    rd_kafka_err2str(err));
        if (!parent)
            return;
        if (err)
            atomic_store(&parent->child_failed, 1);
        atomic_fetch_sub(&parent->children, 1);
        settle(p, parent);
        return;
    }
    if ((uintptr_t)opaque & PARK_TAG) {
        pl_park_produced(p, (delivery_t *)((uintptr_t)opaque & ~PARK_TAG), err);
        return;
    }
    delivery_t *d = opaque; /* a dead letter */
    if (!err)
        dead_letter_written(p, d);
    else if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && !d->dlq_bare)
        dead_letter_bare(p, d); /* the broker's limit is lower */
    else
        dead_letter_failed(p, d, rd_kafka_err2str(err));
}

static void process_completions(es_pipeline_t *p)
{
    pthread_mutex_lock(&p->comp_lock);
    completion_t *batch = p->comp;
    size_t n = p->comp_n;
    p->comp = NULL;
    p->comp_n = p->comp_cap = 0;
    pthread_mutex_unlock(&p->comp_lock);
    for (size_t i = 0; i < n; i++) {
        delivery_t *d = pl_token_lookup(p, batch[i].token);
        if (!d || !d->awaiting_plugin || batch[i].status == ES_PENDING) {
            es_err("plugin bug: completion for a token that is not pending "
                   "(token=%llu status=%d); ignored",
                   (unsigned long long)batch[i].token, (int)batch[i].status);
            continue;
        }
        d->awaiting_plugin = 0;
        apply_result(p, d, batch[i].status, batch[i].reason);
    }
    free(batch);
}

/* ---------------------------------------------------------------- dispatch */

static void ensure_scratch(instance_t *inst, size_t n)
{
    if (n <= inst->scratch_cap)
        return;
    inst->evs = realloc(inst->evs, n * sizeof *inst->evs);
    inst->ptrs = realloc(inst->ptrs, n * sizeof *inst->ptrs);
    inst->res = realloc(inst->res, n * sizeof *inst->res);
    inst->scratch_cap = n;
}

/* Hands up to one pipeline batch of deliveries to the plugin. */
static void deliver_chunk(es_pipeline_t *p, instance_t *inst,
                          delivery_t **batch, size_t n)
{
    ensure_scratch(inst, n);
    for (size_t i = 0; i < n; i++) {
        delivery_t *d = batch[i];
        pl_build_event(&inst->evs[i], d->rec,
                       d->out ? &d->out->dec : &d->rec->dec, inst->plugin,
                       d->tenant, d->route->conf->name, d->token, d->attempt);
        if (d->rec->origin)
            pl_park_fix_event(&inst->evs[i], d->rec);
        inst->ptrs[i] = &inst->evs[i];
        inst->res[i].status = 0; /* unset: caught as a plugin bug */
        inst->res[i].reason[0] = '\0';
    }
    inst->plugin->deliver(inst->handle, inst->ptrs, n, inst->res);
    for (size_t i = 0; i < n; i++)
        apply_result(p, batch[i], inst->res[i].status, inst->res[i].reason);
}

static void dispatch_instance(es_pipeline_t *p, instance_t *inst)
{
    size_t n = inst->batch_n, max = (size_t)p->conf->batch_size;
    delivery_t **batch = inst->batch;
    size_t cap = inst->batch_cap;
    /* Results may enqueue retries into the instance: give it the spare. */
    inst->batch = inst->spare;
    inst->batch_cap = inst->spare_cap;
    inst->batch_n = 0;
    for (size_t off = 0; off < n; off += max)
        deliver_chunk(p, inst, batch + off, n - off < max ? n - off : max);
    inst->spare = batch;
    inst->spare_cap = cap;
}

static void dispatch_all(es_pipeline_t *p)
{
    for (size_t i = 0; i < p->ninstances; i++)
        if (p->instances[i].batch_n)
            dispatch_instance(p, &p->instances[i]);
    for (size_t i = 0; i < p->ndyn; i++)
        if (p->dyn[i]->batch_n)
            dispatch_instance(p, p->dyn[i]);
}

/* Avro: the schema registry cannot answer now. The record waits in the
 * retry heap (later records go on; the offset is not committed past it)
 * and is decoded again with the host's backoff and attempt limit. */
void pl_avro_retry_later(es_pipeline_t *p, delivery_t *d, const char *reason)
{
    int max = p->conf->retry_max_attempts;
    d->redecode = 1;
    d->dlq_plugin = "avro";
    if (max && d->attempt >= (uint32_t)max) {
        char why[300];
        snprintf(why, sizeof why, "gave up after %u attempts: %s", d->attempt,
                 reason);
        es_counter_add(p->decode_failed, 1);
        pl_dead_letter(p, d, why);
        return;
    }
    es_log(d->attempt == 1 ? ES_LOG_WARN : ES_LOG_DEBUG, "host",
           "avro decode will be retried topic=%s offset=%lld attempt=%u: %s",
           rd_kafka_topic_name(d->rec->msg->rkt),
           (long long)d->rec->msg->offset, d->attempt, reason);
    d->due_ms = es_now_ms() + pl_backoff_ms(p->conf, d->attempt);
    d->attempt++;
    heap_push(p, d);
}

static void avro_redecode(es_pipeline_t *p, delivery_t *d)
{
    record_t *rec = d->rec;
    const char *topic = rd_kafka_topic_name(rec->msg->rkt);
    char reason[256];
    es_status_t st = es_avro_hook_decode(p->avro, topic, rec->msg->payload,
                                         rec->msg->len, rec->headers, rec->nh,
                                         &rec->dec, reason, sizeof reason);
    if (st == ES_RETRY) {
        pl_avro_retry_later(p, d, reason);
    } else if (st == ES_FAIL) {
        es_counter_add(p->decode_failed, 1);
        pl_dead_letter(p, d, reason);
    } else {
        pl_route_record(p, rec);
        delivery_done(p, d);
    }
}

static void fire_due_retries(es_pipeline_t *p)
{
    int64_t now = es_now_ms();
    while (p->heap_n && p->heap[0]->due_ms <= now) {
        delivery_t *d = heap_pop(p);
        if (d->dlq)
            dead_letter_send(p, d);
        else if (d->redecode)
            avro_redecode(p, d);
        else
            pl_enqueue(d->dest, d);
    }
}

static void flush_instances(es_pipeline_t *p)
{
    for (size_t i = 0; i < p->ninstances; i++)
        if (p->instances[i].plugin->flush)
            p->instances[i].plugin->flush(p->instances[i].handle);
    for (size_t i = 0; i < p->ndyn; i++)
        if (p->dyn[i]->plugin->flush)
            p->dyn[i]->plugin->flush(p->dyn[i]->handle);
}

static void apply_backpressure(es_pipeline_t *p)
{
    size_t max = (size_t)p->conf->max_inflight;
    int want = p->paused ? p->inflight > max / 2 : p->inflight >= max;
    if (want == p->paused)
        return;
    p->paused = want;
    for (size_t i = 0; i < p->nconsumers; i++)
        pl_set_paused(p->consumers[i], want);
    es_dbg("%s consumption: %zu events in flight",
           want ? "pausing" : "resuming", p->inflight);
}

/* ------------------------------------------------------------------ set-up */

/* Per-destination counters and the latency histogram, labelled with the
 * instance's name (a subscription's id for subscriptions). */
void pl_instance_metrics(instance_t *inst)
{
    char labels[300], esc[200];
    es_metrics_label_escape(esc, sizeof esc, inst->conf->name);
    snprintf(labels, sizeof labels, "destination=\"%s\"", esc);
    inst->delivered = es_metrics_counter("es_delivered_total", labels);
    inst->retried = es_metrics_counter("es_retried_total", labels);
    inst->dead_lettered = es_metrics_counter("es_dead_lettered_total", labels);
    inst->latency = es_metrics_histogram("es_delivery_latency_seconds", labels);
}

static void stand_in_deliver(void *instance, const es_event_t *const *events,
                             size_t count, es_result_t *results)
{
    (void)instance;
    (void)events;
    for (size_t i = 0; i < count; i++) {
        results[i].status = ES_FAIL;
        snprintf(results[i].reason, sizeof results[i].reason,
                 "not built in a dry run");
    }
}

static void stand_in_destroy(void *instance)
{
    (void)instance;
}

/* A dry run delivers to no sink or handler but a test endpoint, so it does
 * not build the others: where a team tries its filters, the production
 * config's files are not created, its target clusters and chain nodes not
 * contacted, and a path that exists only on the servers is no error. The
 * stand-in keeps the name and kind the routes and the report use. */
static void stand_in(instance_t *inst)
{
    const es_plugin_t *real = inst->plugin;
    es_plugin_t *s = &inst->stand_in;
    memset(s, 0, sizeof *s);
    s->abi = real->abi;
    s->size = sizeof *s;
    s->name = real->name;
    s->version = real->version;
    s->kind = real->kind;
    s->flags = es_plugin_flags(real);
    s->deliver = stand_in_deliver;
    s->destroy = stand_in_destroy;
    inst->plugin = s;
    inst->handle = NULL;
}

static int instance_init(es_pipeline_t *p, instance_t *inst,
                         const es_instance_conf_t *ic, char *errstr,
                         size_t errstr_size)
{
    char err[1024] = "";
    inst->p = p;
    inst->conf = ic;
    pthread_mutex_init(&inst->state_lock, NULL);
    inst->plugin = es_loader_find(p->loader, ic->plugin);
    if (!inst->plugin) {
        snprintf(errstr, errstr_size,
                 "%s: instances.%s.plugin: no plugin named \"%s\" was loaded "
                 "from %s",
                 p->conf->path, ic->name, ic->plugin, p->conf->plugin_dir);
        return -1;
    }
    pl_host_init(inst);
    if (p->conf->dry_run && inst->plugin->kind != ES_KIND_FILTER &&
        !ic->test_endpoint) {
        stand_in(inst);
        pl_instance_metrics(inst);
        return 0;
    }
    if (inst->plugin->init(&inst->host, ic->config, &inst->handle, err,
                           sizeof err)) {
        snprintf(errstr, errstr_size, "%s: instances.%s.config: %s",
                 p->conf->path, ic->name, err[0] ? err : "init failed");
        inst->plugin = NULL;
        return -1;
    }
    pl_instance_metrics(inst);
    return 0;
}

static instance_t *instance_by_name(es_pipeline_t *p, const char *name)
{
    for (size_t i = 0; i < p->ninstances; i++)
        if (!strcmp(p->instances[i].conf->name, name))
            return &p->instances[i];
    return NULL;
}

static int bind_list(es_pipeline_t *p, size_t ri, const char *key,
                     const es_strv_t *names, int want_filter, instance_t ***out,
                     char *errstr, size_t errstr_size)
{
    *out = calloc(names->n + 1, sizeof **out);
    for (size_t i = 0; i < names->n; i++) {
        instance_t *inst = instance_by_name(p, names->v[i]);
        int is_filter = inst->plugin->kind == ES_KIND_FILTER;
        if (is_filter != want_filter) {
            snprintf(errstr, errstr_size,
                     "%s: routes[%zu].%s[%zu]: instance \"%s\" is a %s, not "
                     "a %s",
                     p->conf->path, ri, key, i, names->v[i],
                     es_plugin_kind_name(inst->plugin->kind),
                     want_filter ? "filter" : "sink or handler");
            return -1;
        }
        (*out)[i] = inst;
    }
    return 0;
}

static int routes_init(es_pipeline_t *p, char *errstr, size_t errstr_size)
{
    p->nroutes = p->conf->route_count;
    p->routes = calloc(p->nroutes + 1, sizeof *p->routes);
    for (size_t i = 0; i < p->nroutes; i++) {
        route_t *r = &p->routes[i];
        r->conf = &p->conf->routes[i];
        if (bind_list(p, i, "filters", &r->conf->filters, 1, &r->filters,
                      errstr, errstr_size) ||
            bind_list(p, i, "destinations", &r->conf->destinations, 0,
                      &r->dests, errstr, errstr_size))
            return -1;
        for (size_t f = 0; f < r->conf->filters.n; f++)
            pl_note_filter(p, r->filters[f]);
        char labels[300], esc[200];
        es_metrics_label_escape(esc, sizeof esc, r->conf->name);
        snprintf(labels, sizeof labels, "route=\"%s\"", esc);
        r->consumed = es_metrics_counter("es_route_consumed_total", labels);
        r->filtered = es_metrics_counter("es_filtered_total", labels);
        r->tenantless = es_metrics_counter("es_tenantless_total", labels);
    }
    return 0;
}

static int make_dirs(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        mkdir(tmp, 0755);
        *s = '/';
    }
    return mkdir(tmp, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

static int instances_init(es_pipeline_t *p, char *errstr, size_t errstr_size)
{
    p->ninstances = p->conf->instance_count;
    p->instances = calloc(p->ninstances + 1, sizeof *p->instances);
    for (size_t i = 0; i < p->ninstances; i++)
        if (instance_init(p, &p->instances[i], &p->conf->instances[i], errstr,
                          errstr_size))
            return -1;
    return 0;
}

static int topics_init(es_pipeline_t *p, char *errstr, size_t errstr_size)
{
    if (!p->conf->topics_dir)
        return 0;
    char err[1024];
    p->topics = es_topics_load(p->conf->topics_dir, err, sizeof err);
    if (!p->topics) {
        snprintf(errstr, errstr_size, "%s: %s", p->conf->path, err);
        return -1;
    }
    return 0;
}

static es_pipeline_t *pipeline_alloc(const es_config_t *conf,
                                     es_loader_t *loader)
{
    es_pipeline_t *p = calloc(1, sizeof *p);
    p->conf = conf;
    p->loader = loader;
    pthread_mutex_init(&p->token_lock, NULL);
    pthread_mutex_init(&p->comp_lock, NULL);
    pthread_mutex_init(&p->filter_lock, NULL);
    pthread_mutex_init(&p->avro_lock, NULL);
    p->tokens = calloc(TOKEN_BUCKETS, sizeof *p->tokens);
    pl_make_wake_pipe(p->comp_wake);
    pl_make_wake_pipe(p->prod_wake);
    pthread_mutex_init(&p->call_lock, NULL);
    pthread_cond_init(&p->call_cond, NULL);
    pl_make_wake_pipe(p->call_wake);
    p->consumed = es_metrics_counter("es_consumed_total", "");
    p->decode_failed = es_metrics_counter("es_decode_failed_total", "");
    p->dead_lettered = es_metrics_counter("es_dead_letters_total", "");
    p->dlq_retries = es_metrics_counter("es_dead_letter_retries_total", "");
    p->producer_replaced =
        es_metrics_counter("es_host_producer_replaced_total", "");
    return p;
}

/* Delivery reports wake the loop through prod_wake. */
static void watch_producer_queue(es_pipeline_t *p)
{
    rd_kafka_t *rk = es_producer_handle(p->producer);
    if (!rk)
        return;
    p->prod_queue = rd_kafka_queue_get_main(rk);
    rd_kafka_queue_io_event_enable(p->prod_queue, p->prod_wake[1], "p", 1);
}

/* Waits before the next re-creation: the retry.* backoff, growing while
 * fatal errors keep coming (a refused producer id fails every new handle),
 * back to the start after a minute without one. */
static void producer_backoff(es_pipeline_t *p, int64_t now)
{
    if (now - p->producer_replaced_ms > 60000)
        p->producer_attempt = 0;
    p->producer_retry_at = now + pl_backoff_ms(p->conf, ++p->producer_attempt);
}

/*
 * A fatal error leaves the host producer unable to write any dead letter,
 * emit or parked event. Each of those waits for its report, so nothing is
 * lost and nothing is committed past it, but nothing moves either: a new
 * handle takes over, and the old one's records come back failed and are
 * sent again on it by their owners.
 */
static void replace_fatal_producer(es_pipeline_t *p)
{
    char why[512], err[512];
    int64_t now = es_now_ms();
    if (now < p->producer_retry_at ||
        !es_producer_fatal(p->producer, why, sizeof why))
        return;
    producer_backoff(p, now);
    rd_kafka_t *old = es_producer_replace(p->producer, err, sizeof err);
    if (!old) {
        es_err("host producer: fatal error (%s), and no new one can be made: "
               "%s; trying again in %lld ms",
               why, err, (long long)(p->producer_retry_at - now));
        return;
    }
    es_err("host producer: fatal error: %s; replaced by a new one, which "
           "sends again what the old one held",
           why);
    rd_kafka_queue_destroy(p->prod_queue);
    watch_producer_queue(p);
    es_producer_retire(old);
    es_counter_add(p->producer_replaced, 1);
    p->producer_replaced_ms = now;
}

es_pipeline_t *es_pipeline_new(const es_config_t *conf, es_loader_t *loader,
                               const char *brokers, char *errstr,
                               size_t errstr_size)
{
    es_pipeline_t *p = pipeline_alloc(conf, loader);
    p->brokers = strdup(brokers);
    if (make_dirs(conf->state_dir)) {
        snprintf(errstr, errstr_size, "%s: state_dir: cannot create %s: %s",
                 conf->path, conf->state_dir, strerror(errno));
        goto fail;
    }
    if (topics_init(p, errstr, errstr_size) ||
        es_region_new(conf, &p->region, errstr, errstr_size) ||
        es_region_start(p->region, errstr, errstr_size))
        goto fail;
    p->producer = es_producer_new(brokers, conf->kafka_properties,
                                  es_kafka_enabled_from_env(), on_produced, p,
                                  errstr, errstr_size);
    if (!p->producer)
        goto fail;
    watch_producer_queue(p);
    es_usage_retention_t keep = {conf->usage_minute_hours,
                                 conf->usage_hour_days, conf->usage_day_days};
    p->usage = es_usage_open(conf->state_dir, &keep, errstr, errstr_size);
    if (!p->usage ||
        pl_avro_hook_build(p, NULL, &p->avro, errstr, errstr_size) ||
        instances_init(p, errstr, errstr_size) ||
        routes_init(p, errstr, errstr_size) ||
        pl_park_init(p, errstr, errstr_size) ||
        pl_consumers_init(p, brokers, errstr, errstr_size) ||
        pl_subs_init(p, errstr, errstr_size) ||
        pl_stage_start(p, errstr, errstr_size))
        goto fail;
    return p;
fail:
    es_pipeline_destroy(p);
    return NULL;
}

/* --------------------------------------------------------------- main loop */

static int wait_timeout_ms(es_pipeline_t *p)
{
    if (p->more_work)
        return 0;
    int64_t now = es_now_ms();
    int64_t t = p->last_flush_ms + FLUSH_INTERVAL_MS - now;
    if (p->heap_n && p->heap[0]->due_ms - now < t)
        t = p->heap[0]->due_ms - now;
    return t < 0 ? 0 : (int)t;
}

static void wait_for_work(es_pipeline_t *p)
{
    struct pollfd *fds = calloc(p->nconsumers + 4, sizeof *fds);
    nfds_t n = 0;
    if (p->stage)
        fds[n++] = (struct pollfd){.fd = pl_stage_fd(p), .events = POLLIN};
    fds[n++] = (struct pollfd){.fd = p->comp_wake[0], .events = POLLIN};
    fds[n++] = (struct pollfd){.fd = p->prod_wake[0], .events = POLLIN};
    fds[n++] = (struct pollfd){.fd = p->call_wake[0], .events = POLLIN};
    for (size_t i = 0; i < p->nconsumers; i++)
        fds[n++] =
            (struct pollfd){.fd = p->consumers[i]->wake[0], .events = POLLIN};
    if (poll(fds, n, wait_timeout_ms(p)) > 0)
        for (nfds_t i = 0; i < n; i++)
            if (fds[i].revents)
                drain_fd(fds[i].fd);
    free(fds);
}

/* Picks up added or changed topic folders, saves the usage counters. */
static void housekeeping(es_pipeline_t *p)
{
    char err[512];
    if (es_topics_rescan(p->topics))
        pl_avro_rebuild(p);
    if (es_usage_save(p->usage, err, sizeof err))
        es_warn("%s", err);
}

/* A consumer's fatal error (its static membership, group.instance.id,
 * fenced by another member with the same id) ends it for good: it neither
 * consumes nor commits again. A new one would fence its rival in turn, so
 * the daemon stops instead, with exit 1, for the operator to see and the
 * service manager to act on. */
static void check_fatal_consumers(es_pipeline_t *p)
{
    char why[512];
    for (size_t i = 0; i < p->nconsumers && !p->fatal; i++) {
        consumer_t *c = p->consumers[i];
        if (!rd_kafka_fatal_error(c->rk, why, sizeof why))
            continue;
        es_err("consumer group=%s: fatal error: %s; stopping (exit 1): it "
               "can neither consume nor commit again, and what it did not "
               "commit is redelivered after a restart",
               c->group, why);
        p->fatal = 1;
    }
}

static void iterate(es_pipeline_t *p, int consume)
{
    wait_for_work(p);
    pl_calls_run(p);
    pl_stage_collect(p);
    process_completions(p);
    es_producer_poll(p->producer);
    replace_fatal_producer(p);
    p->more_work = 0;
    if (consume)
        for (size_t i = 0; i < p->nconsumers; i++)
            p->more_work |= pl_consume_some(p->consumers[i]);
    else /* still serve rebalances and errors while draining */
        for (size_t i = 0; i < p->nconsumers; i++)
            pl_consume_serve_only(p->consumers[i]);
    check_fatal_consumers(p);
    pl_stage_hand_over(p); /* the filter thread starts on them at once */
    fire_due_retries(p);
    p->more_work |= pl_park_iterate(p, consume);
    dispatch_all(p);
    int64_t now = es_now_ms();
    if (now - p->last_flush_ms >= FLUSH_INTERVAL_MS) {
        flush_instances(p);
        p->last_flush_ms = now;
    }
    if (now - p->last_commit_ms >= p->conf->commit_interval_ms) {
        pl_commit_all(p, 0);
        p->last_commit_ms = now;
    }
    if (now - p->last_housekeeping_ms >= HOUSEKEEPING_INTERVAL_MS) {
        housekeeping(p);
        p->last_housekeeping_ms = now;
    }
    pl_subs_reap(p);
    pl_stage_hand_over(p); /* what retries and parking offered since */
    apply_backpressure(p);
}

static void drain(es_pipeline_t *p)
{
    es_info("shutting down: %zu event(s) in flight, waiting up to %d ms",
            p->inflight, p->conf->shutdown_timeout_ms);
    for (size_t i = 0; i < p->nconsumers; i++)
        pl_set_paused(p->consumers[i], 1);
    int64_t deadline = es_now_ms() + p->conf->shutdown_timeout_ms;
    while (p->inflight > 0 && es_now_ms() < deadline) {
        iterate(p, 0);
        flush_instances(p);
    }
    if (p->inflight)
        es_warn("shutdown timeout: %zu event(s) not delivered; their offsets "
                "are not committed and they will be redelivered",
                p->inflight);
    pl_commit_all(p, 1);
}

int es_pipeline_run(es_pipeline_t *p, volatile sig_atomic_t *stop)
{
    p->last_flush_ms = p->last_commit_ms = es_now_ms();
    while (!*stop && !p->fatal)
        iterate(p, 1);
    pl_calls_stop(p); /* no subscription changes while draining */
    drain(p);
    for (size_t i = 0; i < p->nconsumers; i++) {
        rd_kafka_consumer_close(p->consumers[i]->rk);
        p->consumers[i]->joined = 0;
    }
    es_info("stopped");
    return p->fatal ? 1 : 0;
}

void pl_instance_destroy(instance_t *inst)
{
    if (inst->plugin) {
        if (inst->plugin->flush)
            inst->plugin->flush(inst->handle);
        inst->plugin->destroy(inst->handle);
    }
    es_state_close(inst->state);
    free(inst->batch);
    free(inst->spare);
    free(inst->evs);
    free(inst->ptrs);
    free(inst->res);
    pthread_mutex_destroy(&inst->state_lock);
}

/* Frees what is still in flight: librdkafka handles cannot be destroyed
 * while their messages are alive. Nothing is committed for these. */
static void abandon_deliveries(es_pipeline_t *p)
{
    size_t n = 0;
    for (size_t b = 0; b < TOKEN_BUCKETS; b++)
        while (p->tokens[b]) {
            delivery_done(p, p->tokens[b]);
            n++;
        }
    if (n)
        es_warn("%zu delivery(ies) abandoned at exit; they will be "
                "redelivered after restart",
                n);
}

/*
 * Plugins are destroyed first (they may still complete or emit), then the
 * producer is flushed. Records still in flight at this point are abandoned:
 * their offsets were never committed, so they are redelivered on restart.
 */
void es_pipeline_destroy(es_pipeline_t *p)
{
    if (!p)
        return;
    pl_stage_stop(p); /* no filter call may outlive its instance */
    for (size_t i = 0; i < p->ninstances; i++)
        pl_instance_destroy(&p->instances[i]);
    for (size_t i = 0; i < p->ndyn; i++)
        pl_instance_destroy(p->dyn[i]);
    if (p->producer && es_producer_handle(p->producer))
        rd_kafka_flush(es_producer_handle(p->producer), 5000);
    pl_park_close(p); /* commits before abandoned records look done */
    pl_stage_destroy(p);
    abandon_deliveries(p);
    pl_park_destroy(p); /* after its records are gone */
    if (p->prod_queue)
        rd_kafka_queue_destroy(p->prod_queue);
    es_producer_destroy(p->producer, 0);
    for (size_t i = 0; i < p->nconsumers; i++)
        pl_consumer_destroy(p->consumers[i]);
    pl_subs_destroy(p);
    es_avro_hook_destroy(p->avro);
    for (size_t i = 0; i < p->nroutes; i++) {
        free(p->routes[i].filters);
        free(p->routes[i].dests);
    }
    free(p->routes);
    free(p->consumers);
    free(p->brokers);
    free(p->instances);
    free(p->tokens);
    free(p->comp);
    free(p->heap);
    es_usage_destroy(p->usage);
    es_region_destroy(p->region);
    es_topics_destroy(p->topics);
    pthread_mutex_destroy(&p->filter_lock);
    pthread_mutex_destroy(&p->avro_lock);
    pthread_mutex_destroy(&p->call_lock);
    pthread_cond_destroy(&p->call_cond);
    int *fds[] = {p->comp_wake, p->prod_wake, p->call_wake};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 2; i++)
            if (fds[k][i] >= 0)
                close(fds[k][i]);
    free(p);
}

int es_pipeline_check_instances(const es_config_t *conf, es_loader_t *loader,
                                char *errstr, size_t errstr_size)
{
    es_pipeline_t *p = pipeline_alloc(conf, loader);
    int rc =
        topics_init(p, errstr, errstr_size) ||
                es_region_new(conf, &p->region, errstr, errstr_size) ||
                pl_avro_hook_build(p, NULL, &p->avro, errstr, errstr_size) ||
                instances_init(p, errstr, errstr_size) ||
                routes_init(p, errstr, errstr_size)
            ? -1
            : 0;
    for (size_t i = 0; i < p->ninstances; i++)
        pl_instance_destroy(&p->instances[i]);
    p->ninstances = 0;
    es_pipeline_destroy(p);
    return rc;
}

cJSON *es_pipeline_avro_schemas(es_pipeline_t *p)
{
    pthread_mutex_lock(&p->avro_lock);
    cJSON *s = es_avro_hook_schemas(p->avro);
    pthread_mutex_unlock(&p->avro_lock);
    return s;
}

int es_pipeline_ready(es_pipeline_t *p)
{
    return atomic_load(&p->joined_consumers) == atomic_load(&p->live_consumers);
}
