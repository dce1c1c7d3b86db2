/*
 * The filter stage: the config's routes run their filters on a thread of
 * their own, so a script's work overlaps with decoding, routing and
 * delivering on the pipeline thread instead of adding to it.
 *
 * The pipeline thread hands a job (record, route, the event the filter
 * sees, which filter) to the stage and goes on; the stage thread calls the
 * filter and queues the job back with its verdict and outputs; the pipeline
 * thread applies the verdict (pl_filter_verdict), which may deliver, hand
 * the next filter of the chain back to the stage, or dead-letter.
 *
 * Ownership: all bookkeeping stays with the pipeline thread. A job holds a
 * reference on its record and on its event (taken and dropped there); the
 * stage thread only reads the decoded event, which nothing changes while a
 * reference is held. One stage thread and FIFO queues keep each route's
 * events in their consumed order (a route without filters, delivering to
 * the same destination, may now get ahead of a filtered one). Subscriptions'
 * filters stay inline: a subscription's filter instance is freed as soon as it
 * is removed.
 *
 * Jobs cross in batches, both ways: a lock, a wake-up and a thread switch
 * per event cost as much as a small script.
 */
#include "pipeline_int.h"

typedef struct job_s job_t;
struct job_s {
    job_t *next;
    record_t *rec;
    route_t *route;
    output_t *out; /* NULL: the record's own event */
    route_t *target;
    size_t fi;
    es_filter_verdict_t verdict;
    collector_t c;
    char err[512];
};

typedef struct queue_s {
    job_t *head, **tail;
} queue_t;

struct pl_stage_s {
    es_pipeline_t *p;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    queue_t outbox; /* the pipeline thread's, handed over in batches */
    queue_t todo;   /* for the stage thread */
    queue_t done;   /* back to the pipeline thread */
    int stop;
    int wake[2]; /* written when done goes from empty to not */
};

static void queue_init(queue_t *q)
{
    q->head = NULL;
    q->tail = &q->head;
}

/* Appends; says whether the queue was empty. */
static int queue_push(queue_t *q, job_t *j)
{
    int was_empty = q->head == NULL;
    j->next = NULL;
    *q->tail = j;
    q->tail = &j->next;
    return was_empty;
}

/* Moves all of from to the end of q; says whether q was empty. */
static int queue_append(queue_t *q, queue_t *from)
{
    int was_empty = q->head == NULL;
    if (from->head) {
        *q->tail = from->head;
        q->tail = from->tail;
        queue_init(from);
    }
    return was_empty;
}

static job_t *queue_take_all(queue_t *q)
{
    job_t *j = q->head;
    queue_init(q);
    return j;
}

/* ------------------------------------------------------- stage thread */

#define DONE_BATCH 64 /* jobs handed back at a time */

static void hand_back(pl_stage_t *s, queue_t *done)
{
    pthread_mutex_lock(&s->lock);
    int was_empty = queue_append(&s->done, done);
    pthread_mutex_unlock(&s->lock);
    if (was_empty)
        pl_wake(s->wake[1]);
}

/* Runs a batch taken off the queue; on stop, puts back what it did not
 * run (pl_stage_destroy releases it). Called and returns with the lock. */
static void run_batch(pl_stage_t *s, job_t *j)
{
    queue_t done;
    queue_init(&done);
    size_t n = 0;
    pthread_mutex_unlock(&s->lock);
    while (j && !__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
        job_t *next = j->next;
        j->verdict = pl_filter_call(s->p, j->rec, j->route, j->out, j->fi,
                                    &j->c, j->err, sizeof j->err);
        queue_push(&done, j);
        if (++n % DONE_BATCH == 0)
            hand_back(s, &done);
        j = next;
    }
    hand_back(s, &done);
    pthread_mutex_lock(&s->lock);
    while (j) {
        job_t *next = j->next;
        queue_push(&s->todo, j);
        j = next;
    }
}

static void *stage_main(void *arg)
{
    pl_stage_t *s = arg;
    pthread_setname_np(pthread_self(), "es-filter");
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        if (!s->todo.head) {
            pthread_cond_wait(&s->cond, &s->lock);
            continue;
        }
        run_batch(s, queue_take_all(&s->todo));
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---------------------------------------------------- pipeline thread */

static int any_static_filter(const es_pipeline_t *p)
{
    for (size_t i = 0; i < p->nroutes; i++)
        if (p->routes[i].conf->filters.n)
            return 1;
    return 0;
}

static void stage_free(pl_stage_t *s)
{
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    for (int i = 0; i < 2; i++)
        if (s->wake[i] >= 0)
            close(s->wake[i]);
    free(s);
}

int pl_stage_start(es_pipeline_t *p, char *errstr, size_t errstr_size)
{
    if (!p->conf->filter_thread || !any_static_filter(p))
        return 0;
    pl_stage_t *s = calloc(1, sizeof *s);
    s->p = p;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    queue_init(&s->outbox);
    queue_init(&s->todo);
    queue_init(&s->done);
    pl_make_wake_pipe(s->wake);
    int rc =
        s->wake[0] < 0 ? -1 : pthread_create(&s->thread, NULL, stage_main, s);
    if (rc) {
        snprintf(errstr, errstr_size, "cannot start the filter thread: %s",
                 s->wake[0] < 0 ? strerror(errno) : strerror(rc));
        stage_free(s);
        return -1;
    }
    p->stage = s;
    return 0;
}

int pl_stage_offer(es_pipeline_t *p, record_t *rec, route_t *route,
                   output_t *out, size_t fi, route_t *target)
{
    pl_stage_t *s = p->stage;
    if (!s || route->sub)
        return 0;
    job_t *j = calloc(1, sizeof *j);
    j->rec = rec;
    j->route = route;
    j->out = out;
    j->target = target;
    j->fi = fi;
    rec->pending++;
    if (out)
        out->refs++;
    queue_push(&s->outbox, j);
    return 1;
}

void pl_stage_hand_over(es_pipeline_t *p)
{
    pl_stage_t *s = p->stage;
    if (!s || !s->outbox.head)
        return;
    pthread_mutex_lock(&s->lock);
    if (queue_append(&s->todo, &s->outbox))
        pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void job_release(es_pipeline_t *p, job_t *j)
{
    pl_collector_clear(&j->c);
    pl_output_release(j->out);
    pl_record_release(p, j->rec);
    free(j);
}

int pl_stage_fd(const es_pipeline_t *p)
{
    return p->stage ? p->stage->wake[0] : -1;
}

void pl_stage_collect(es_pipeline_t *p)
{
    pl_stage_t *s = p->stage;
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    job_t *j = queue_take_all(&s->done);
    pthread_mutex_unlock(&s->lock);
    while (j) {
        job_t *next = j->next;
        pl_filter_verdict(p, j->rec, j->route, j->out, j->fi, j->target,
                          j->verdict, &j->c, j->err);
        job_release(p, j);
        j = next;
    }
}

/* Jobs still queued at exit are let go: their records were never done, so
 * their offsets are not committed and they are redelivered after restart. */
static size_t release_all(es_pipeline_t *p, job_t *j)
{
    size_t n = 0;
    for (; j; n++) {
        job_t *next = j->next;
        job_release(p, j);
        j = next;
    }
    return n;
}

void pl_stage_stop(es_pipeline_t *p)
{
    pl_stage_t *s = p->stage;
    if (!s || s->stop)
        return;
    pthread_mutex_lock(&s->lock);
    __atomic_store_n(&s->stop, 1, __ATOMIC_RELAXED);
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
}

void pl_stage_destroy(es_pipeline_t *p)
{
    pl_stage_t *s = p->stage;
    if (!s)
        return;
    pl_stage_stop(p);
    size_t n = release_all(p, queue_take_all(&s->done)) +
               release_all(p, queue_take_all(&s->todo)) +
               release_all(p, queue_take_all(&s->outbox));
    if (n)
        es_warn("%zu event(s) left in the filter stage at exit; they will be "
                "redelivered after restart",
                n);
    stage_free(s);
    p->stage = NULL;
}
