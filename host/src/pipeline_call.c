/*
 * Calls from other threads (the admin API) onto the pipeline thread: the
 * pipeline's structures (routes, consumers, instances) are only ever
 * touched by that thread, so a change is queued here as a function and an
 * argument, the loop is woken through a pipe, runs it between two turns
 * and signals the waiting caller.
 */
#include "pipeline_int.h"

enum { CALL_QUEUED, CALL_RUNNING, CALL_DONE, CALL_CANCELLED };

struct pl_call_s {
    pl_call_fn fn;
    void *arg;
    int state, result;
    pl_call_t *next;
};

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static void unlink_call(es_pipeline_t *p, pl_call_t *c)
{
    for (pl_call_t **pp = &p->calls; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            return;
        }
}

int pl_call(es_pipeline_t *p, pl_call_fn fn, void *arg, int timeout_ms,
            int *result)
{
    pl_call_t call = {fn, arg, CALL_QUEUED, 0, NULL};
    struct timespec deadline;
    deadline_in(&deadline, timeout_ms);
    pthread_mutex_lock(&p->call_lock);
    if (p->stopped) {
        pthread_mutex_unlock(&p->call_lock);
        return -2;
    }
    pl_call_t **tail = &p->calls; /* in order of arrival */
    while (*tail)
        tail = &(*tail)->next;
    *tail = &call;
    pthread_mutex_unlock(&p->call_lock);
    pl_wake(p->call_wake[1]);

    pthread_mutex_lock(&p->call_lock);
    int rc = 0;
    while (call.state == CALL_QUEUED || call.state == CALL_RUNNING) {
        if (call.state == CALL_QUEUED &&
            pthread_cond_timedwait(&p->call_cond, &p->call_lock, &deadline) ==
                ETIMEDOUT &&
            call.state == CALL_QUEUED) {
            unlink_call(p, &call); /* never ran, never will */
            call.state = CALL_CANCELLED;
            rc = -1;
            break;
        }
        if (call.state == CALL_RUNNING) /* started: it finishes soon */
            pthread_cond_wait(&p->call_cond, &p->call_lock);
    }
    if (call.state == CALL_CANCELLED && rc == 0)
        rc = -2; /* the pipeline stopped first */
    *result = call.result;
    pthread_mutex_unlock(&p->call_lock);
    return rc;
}

/* Pipeline thread: runs what is queued now. */
void pl_calls_run(es_pipeline_t *p)
{
    for (;;) {
        pthread_mutex_lock(&p->call_lock);
        pl_call_t *c = p->calls;
        if (c) {
            p->calls = c->next;
            c->state = CALL_RUNNING;
        }
        pthread_mutex_unlock(&p->call_lock);
        if (!c)
            return;
        int r = c->fn(p, c->arg);
        pthread_mutex_lock(&p->call_lock);
        c->result = r;
        c->state = CALL_DONE;
        pthread_cond_broadcast(&p->call_cond);
        pthread_mutex_unlock(&p->call_lock);
    }
}

/* The loop has ended: what is still queued is cancelled, and later calls
 * are refused. */
void pl_calls_stop(es_pipeline_t *p)
{
    pthread_mutex_lock(&p->call_lock);
    p->stopped = 1;
    for (pl_call_t *c = p->calls; c; c = c->next)
        c->state = CALL_CANCELLED;
    p->calls = NULL;
    pthread_cond_broadcast(&p->call_cond);
    pthread_mutex_unlock(&p->call_lock);
}
