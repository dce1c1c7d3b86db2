/*
 * Benchmark driver for the HTTPS sink: loads the built plugin with dlopen,
 * gives it a minimal host and pushes ~1.1 KB CloudEvents through it.
 *
 *   driver PLUGIN.so CONFIG.json throughput N
 *       delivers N events as fast as the sink takes them (a full queue
 *       answers ES_RETRY: the driver waits a little and redelivers), prints
 *       events/s and CPU microseconds per event of this process.
 *   driver PLUGIN.so CONFIG.json latency RATE SECONDS
 *       delivers RATE events/s for SECONDS, prints p50/p99/max of the time
 *       from deliver() to host->complete() (the latency the sink adds,
 *       receiver included).
 */
#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "eventstream/plugin.h"

static atomic_ulong ok_count, bad_count;
static double *sent_at, *done_at;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void h_log(const es_host_t *h, es_log_level_t l, const char *fmt, ...)
{
    va_list ap;
    (void)h;
    if (l > ES_LOG_WARN)
        return;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void h_counter(const es_host_t *h, const char *n, uint64_t d)
{
    (void)h, (void)n, (void)d;
}

static void h_complete(const es_host_t *h, uint64_t token, es_status_t st,
                       const char *reason)
{
    (void)h;
    done_at[token - 1] = now_s();
    if (st == ES_OK) {
        atomic_fetch_add(&ok_count, 1);
    } else {
        if (atomic_fetch_add(&bad_count, 1) < 5)
            fprintf(stderr, "event %llu: status %d: %s\n",
                    (unsigned long long)token, (int)st, reason);
    }
}

static es_host_t host = {
    .abi = ES_PLUGIN_ABI_VERSION,
    .size = sizeof(es_host_t),
    .instance_name = "bench",
    .state_dir = "/tmp",
    .log = h_log,
    .counter_add = h_counter,
    .complete = h_complete,
    .free = free,
};

typedef struct bev_s {
    es_event_t ev;
    char *json;
    cJSON *ce;
} bev_t;

static bev_t *make_events(size_t n)
{
    char pad[901];
    memset(pad, 'x', 900);
    pad[900] = '\0';
    bev_t *b = calloc(n, sizeof(*b));
    for (size_t i = 0; i < n; i++) {
        char json[1400];
        snprintf(json, sizeof(json),
                 "{\"specversion\":\"1.0\",\"id\":\"bench-%zu\",\"source\":"
                 "\"/marketplace-svc\",\"type\":\"eventzr.marketplace.order."
                 "created.v1\",\"time\":\"2026-11-23T10:00:00Z\","
                 "\"tenantid\":\"acme\",\"datacontenttype\":"
                 "\"application/json\",\"data\":{\"orderId\":%zu,"
                 "\"note\":\"%s\"}}",
                 i, i, pad);
        b[i].json = strdup(json);
        b[i].ce = cJSON_Parse(json);
        b[i].ev.json = b[i].json;
        b[i].ev.json_len = strlen(json);
        b[i].ev.ce = b[i].ce;
        b[i].ev.id = cJSON_GetObjectItem(b[i].ce, "id")->valuestring;
        b[i].ev.source = "/marketplace-svc";
        b[i].ev.type = "eventzr.marketplace.order.created.v1";
        b[i].ev.topic = "bench";
        b[i].ev.route = "bench";
        b[i].ev.token = i + 1;
        b[i].ev.attempt = 1;
    }
    return b;
}

/* Events the sink refused with a full queue, to deliver again. */
static size_t *redo;
static size_t nredo;

/* Delivers up to 500 of the given events; refused ones go to redo. */
static void push(const es_plugin_t *p, void *inst, bev_t *b, const size_t *idx,
                 size_t n)
{
    const es_event_t *evs[500] = {0};
    es_result_t res[500];
    for (size_t i = 0; i < n; i++) {
        evs[i] = &b[idx[i]].ev;
        if (sent_at[idx[i]] == 0)
            sent_at[idx[i]] = now_s();
    }
    p->deliver(inst, evs, n, res);
    for (size_t i = 0; i < n; i++) {
        if (res[i].status == ES_PENDING)
            continue;
        if (res[i].status == ES_RETRY)
            redo[nredo++] = idx[i]; /* the host would redeliver it later */
        else
            h_complete(&host, b[idx[i]].ev.token, res[i].status, res[i].reason);
    }
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: driver SO CONFIG throughput N | latency "
                        "RATE SECONDS\n");
        return 2;
    }
    void *so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    es_plugin_entry_fn entry =
        so ? (es_plugin_entry_fn)dlsym(so, ES_PLUGIN_ENTRY_SYMBOL) : NULL;
    if (!entry) {
        fprintf(stderr, "cannot load %s: %s\n", argv[1], dlerror());
        return 1;
    }
    const es_plugin_t *p = entry(ES_PLUGIN_ABI_VERSION);
    cJSON *cfg = cJSON_Parse(argv[2]);
    char err[256];
    void *inst = NULL;
    if (!cfg || p->init(&host, cfg, &inst, err, sizeof(err)) != 0) {
        fprintf(stderr, "init: %s\n", cfg ? err : "bad JSON");
        return 1;
    }
    int latency = strcmp(argv[3], "latency") == 0;
    double rate = latency ? atof(argv[4]) : 0;
    size_t n =
        latency ? (size_t)(rate * atof(argv[5])) : strtoul(argv[4], 0, 10);
    bev_t *b = make_events(n);
    sent_at = calloc(n, sizeof(double));
    done_at = calloc(n, sizeof(double));
    double t0 = now_s(), c0 = cpu_s(), last_flush = t0;
    size_t next = 0, idx[500];
    redo = calloc(n, sizeof(size_t));
    while (next < n || nredo) {
        size_t to = n, k = 0;
        if (latency) {
            to = (size_t)((now_s() - t0) * rate) + 1;
            to = to > n ? n : to;
        }
        while (nredo && k < 500)
            idx[k++] = redo[--nredo];
        while (next < to && k < 500)
            idx[k++] = next++;
        size_t before = nredo;
        if (k)
            push(p, inst, b, idx, k);
        if (now_s() - last_flush > 0.1) {
            p->flush(inst);
            last_flush = now_s();
        }
        if (latency || nredo > before)
            usleep(latency ? 200 : 100);
    }
    while (atomic_load(&ok_count) + atomic_load(&bad_count) < n &&
           now_s() - t0 < 600) {
        usleep(200);
        if (now_s() - last_flush > 0.1) {
            p->flush(inst);
            last_flush = now_s();
        }
    }
    double el = now_s() - t0, cpu = cpu_s() - c0;
    p->destroy(inst);
    if (latency) {
        /* the first second warms connections up (TLS handshakes) */
        size_t warm = (size_t)rate < n / 2 ? (size_t)rate : 0;
        double *lat = calloc(n, sizeof(double));
        for (size_t i = warm; i < n; i++)
            lat[i - warm] = (done_at[i] - sent_at[i]) * 1e3;
        n -= warm;
        qsort(lat, n, sizeof(double), cmp_double);
        printf(
            "latency rate=%.0f/s measured_events=%zu p50_ms=%.2f p99_ms=%.2f "
            "max_ms=%.2f ok=%lu failed=%lu cpu_us_per_event=%.1f\n",
            rate, n, lat[n / 2], lat[n * 99 / 100], lat[n - 1],
            atomic_load(&ok_count), atomic_load(&bad_count),
            cpu * 1e6 / (double)(n + warm));
        free(lat);
    } else {
        printf("throughput events=%zu seconds=%.2f events_per_s=%.0f ok=%lu "
               "failed=%lu cpu_us_per_event=%.1f\n",
               n, el, (double)n / el, atomic_load(&ok_count),
               atomic_load(&bad_count), cpu * 1e6 / (double)n);
    }
    return atomic_load(&bad_count) ? 1 : 0;
}
