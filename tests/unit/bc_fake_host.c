#include "bc_fake_host.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FH(h) ((fake_host_t *)(h))

static void fh_log(const es_host_t *h, es_log_level_t level, const char *fmt,
                   ...)
{
    if (!FH(h)->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%d] ", (int)level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void fh_counter_add(const es_host_t *h, const char *name, uint64_t delta)
{
    (void)h;
    (void)name;
    (void)delta;
}

static void fh_complete(const es_host_t *h, uint64_t token, es_status_t status,
                        const char *reason)
{
    fake_host_t *fh = FH(h);
    pthread_mutex_lock(&fh->mu);
    fh->done = realloc(fh->done, (fh->ndone + 1) * sizeof(*fh->done));
    fh_completion_t *c = &fh->done[fh->ndone++];
    c->token = token;
    c->status = status;
    snprintf(c->reason, sizeof(c->reason), "%s", reason ? reason : "");
    if (fh->verbose)
        fprintf(stderr, "complete %llu status=%d %s\n",
                (unsigned long long)token, (int)status, c->reason);
    pthread_cond_broadcast(&fh->cv);
    pthread_mutex_unlock(&fh->mu);
}

static int fh_emit(const es_host_t *h, uint64_t parent, const char *topic,
                   const void *key, size_t key_len, const char *json,
                   size_t json_len, char *errstr, size_t errstr_size)
{
    fake_host_t *fh = FH(h);
    pthread_mutex_lock(&fh->mu);
    if (fh->fail_emit) {
        pthread_mutex_unlock(&fh->mu);
        snprintf(errstr, errstr_size, "producer queue full (fake)");
        return -1;
    }
    fh->emits = realloc(fh->emits, (fh->nemits + 1) * sizeof(*fh->emits));
    fh_emit_t *e = &fh->emits[fh->nemits++];
    e->parent = parent;
    e->topic = strdup(topic);
    e->key = strndup(key, key_len);
    e->json = strndup(json, json_len);
    pthread_mutex_unlock(&fh->mu);
    return 0;
}

static fh_kv_t *find(fh_kv_t *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0)
            return &kv[i];
    return NULL;
}

static void kv_free(fh_kv_t *kv, size_t n)
{
    if (!kv)
        return;
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

static fh_kv_t *kv_copy(const fh_kv_t *kv, size_t n)
{
    fh_kv_t *c = calloc(n + 1, sizeof(*c));
    for (size_t i = 0; i < n; i++) {
        c[i].key = strdup(kv[i].key);
        c[i].value = malloc(kv[i].len + 1);
        memcpy(c[i].value, kv[i].value, kv[i].len + 1);
        c[i].len = kv[i].len;
    }
    return c;
}

/* One "key\tvalue" line per entry; the handler's keys and values are
 * single-line text. */
static void save(fake_host_t *fh)
{
    if (!fh->path || fh->in_tx)
        return;
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s.tmp", fh->path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    for (size_t i = 0; i < fh->nkv; i++)
        fprintf(f, "%s\t%s\n", fh->kv[i].key, fh->kv[i].value);
    fclose(f);
    rename(tmp, fh->path);
}

static void put_locked(fake_host_t *fh, const char *key, const void *v,
                       size_t len)
{
    fh_kv_t *e = find(fh->kv, fh->nkv, key);
    if (!e) {
        fh->kv = realloc(fh->kv, (fh->nkv + 1) * sizeof(*fh->kv));
        e = &fh->kv[fh->nkv++];
        e->key = strdup(key);
    } else {
        free(e->value);
    }
    e->value = malloc(len + 1);
    memcpy(e->value, v, len);
    e->value[len] = '\0';
    e->len = len;
}

static void load(fake_host_t *fh)
{
    FILE *f = fh->path ? fopen(fh->path, "r") : NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    if (!f)
        return;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        char *tab = strchr(line, '\t');
        if (tab) {
            *tab = '\0';
            put_locked(fh, line, tab + 1, strlen(tab + 1));
        }
    }
    free(line);
    fclose(f);
}

static int fh_get(const es_host_t *h, const char *key, char **value,
                  size_t *len)
{
    fake_host_t *fh = FH(h);
    int rc = 0;
    pthread_mutex_lock(&fh->mu);
    fh_kv_t *e = find(fh->kv, fh->nkv, key);
    if (fh->fail_state)
        rc = -1;
    else if (e) {
        *value = malloc(e->len + 1);
        memcpy(*value, e->value, e->len + 1);
        *len = e->len;
        rc = 1;
    }
    pthread_mutex_unlock(&fh->mu);
    return rc;
}

static int fh_put(const es_host_t *h, const char *key, const void *value,
                  size_t len)
{
    fake_host_t *fh = FH(h);
    pthread_mutex_lock(&fh->mu);
    int rc = fh->fail_state ? -1 : 0;
    if (rc == 0) {
        put_locked(fh, key, value, len);
        save(fh);
    }
    pthread_mutex_unlock(&fh->mu);
    return rc;
}

static int fh_delete(const es_host_t *h, const char *key)
{
    fake_host_t *fh = FH(h);
    pthread_mutex_lock(&fh->mu);
    int rc = fh->fail_state ? -1 : 0;
    fh_kv_t *e = rc == 0 ? find(fh->kv, fh->nkv, key) : NULL;
    if (e) {
        free(e->key);
        free(e->value);
        *e = fh->kv[--fh->nkv];
        save(fh);
    }
    pthread_mutex_unlock(&fh->mu);
    return rc;
}

/* Transactions snapshot the store; the mutex is not held in between, which
 * is enough for the handler (one writer thread per instance). */
static int fh_begin(const es_host_t *h)
{
    fake_host_t *fh = FH(h);
    pthread_mutex_lock(&fh->mu);
    int rc = fh->fail_state || fh->in_tx ? -1 : 0;
    if (rc == 0) {
        fh->saved = kv_copy(fh->kv, fh->nkv);
        fh->nsaved = fh->nkv;
        fh->in_tx = 1;
    }
    pthread_mutex_unlock(&fh->mu);
    return rc;
}

static int fh_end(const es_host_t *h, int commit)
{
    fake_host_t *fh = FH(h);
    pthread_mutex_lock(&fh->mu);
    if (!fh->in_tx) {
        pthread_mutex_unlock(&fh->mu);
        return -1;
    }
    if (commit) {
        kv_free(fh->saved, fh->nsaved);
    } else {
        kv_free(fh->kv, fh->nkv);
        fh->kv = fh->saved;
        fh->nkv = fh->nsaved;
    }
    fh->saved = NULL;
    fh->in_tx = 0;
    save(fh);
    pthread_mutex_unlock(&fh->mu);
    return 0;
}

static int fh_commit(const es_host_t *h)
{
    return fh_end(h, 1);
}

static int fh_rollback(const es_host_t *h)
{
    return fh_end(h, 0);
}

fake_host_t *fh_new(const char *state_file)
{
    fake_host_t *fh = calloc(1, sizeof(*fh));
    pthread_mutex_init(&fh->mu, NULL);
    pthread_cond_init(&fh->cv, NULL);
    snprintf(fh->state_dir, sizeof(fh->state_dir), "/tmp");
    fh->host.abi = ES_PLUGIN_ABI_VERSION;
    fh->host.size = sizeof(es_host_t);
    fh->host.instance_name = "chain";
    fh->host.state_dir = fh->state_dir;
    fh->host.log = fh_log;
    fh->host.counter_add = fh_counter_add;
    fh->host.complete = fh_complete;
    fh->host.emit = fh_emit;
    fh->host.state_get = fh_get;
    fh->host.state_put = fh_put;
    fh->host.state_delete = fh_delete;
    fh->host.state_begin = fh_begin;
    fh->host.state_commit = fh_commit;
    fh->host.state_rollback = fh_rollback;
    fh->host.free = free;
    fh->host.opaque = fh;
    if (state_file) {
        fh->path = strdup(state_file);
        load(fh);
    }
    return fh;
}

void fh_destroy(fake_host_t *fh)
{
    if (!fh)
        return;
    kv_free(fh->kv, fh->nkv);
    kv_free(fh->saved, fh->nsaved);
    for (size_t i = 0; i < fh->nemits; i++) {
        free(fh->emits[i].topic);
        free(fh->emits[i].key);
        free(fh->emits[i].json);
    }
    free(fh->emits);
    free(fh->done);
    free(fh->path);
    pthread_cond_destroy(&fh->cv);
    pthread_mutex_destroy(&fh->mu);
    free(fh);
}

int fh_wait_completions(fake_host_t *fh, size_t n, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    int rc = 0;
    pthread_mutex_lock(&fh->mu);
    while (fh->ndone < n && rc == 0)
        rc = pthread_cond_timedwait(&fh->cv, &fh->mu, &dl);
    int ok = fh->ndone >= n;
    pthread_mutex_unlock(&fh->mu);
    return ok ? 0 : -1;
}

const fh_completion_t *fh_completion(fake_host_t *fh, uint64_t token)
{
    const fh_completion_t *c = NULL;
    pthread_mutex_lock(&fh->mu);
    for (size_t i = fh->ndone; i-- > 0;)
        if (fh->done[i].token == token) {
            c = &fh->done[i];
            break;
        }
    pthread_mutex_unlock(&fh->mu);
    return c;
}

size_t fh_count_topic(fake_host_t *fh, const char *topic)
{
    size_t n = 0;
    pthread_mutex_lock(&fh->mu);
    for (size_t i = 0; i < fh->nemits; i++)
        n += strcmp(fh->emits[i].topic, topic) == 0;
    pthread_mutex_unlock(&fh->mu);
    return n;
}

void fh_truncate_emits(fake_host_t *fh, size_t n)
{
    pthread_mutex_lock(&fh->mu);
    while (fh->nemits > n) {
        fh_emit_t *e = &fh->emits[--fh->nemits];
        free(e->topic);
        free(e->key);
        free(e->json);
    }
    pthread_mutex_unlock(&fh->mu);
}

char *fh_state(fake_host_t *fh, const char *key)
{
    char *v = NULL;
    pthread_mutex_lock(&fh->mu);
    fh_kv_t *e = find(fh->kv, fh->nkv, key);
    if (e)
        v = strdup(e->value);
    pthread_mutex_unlock(&fh->mu);
    return v;
}
