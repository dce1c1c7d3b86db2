/*
 * Drives the S3 sink plugin as the daemon would (deliver batches, flush
 * every 100 ms, redeliver what was answered RETRY) with ~1 KB CloudEvents,
 * and reports events/s until every event is durable, plus peak RSS.
 *
 *   bench-s3-driver PLUGIN.so CONFIG_JSON EVENTS TENANTS PARTITIONS
 *
 * Events are spread round-robin over TENANTS x PARTITIONS slots. Used by
 * scripts/bench-s3.
 */
#include <eventstream/plugin.h>

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

static atomic_long ok_count, retry_count, fail_count;
static unsigned char *settled; /* per token: 0 waiting, 1 ok, 2 redeliver */

static void h_log(const es_host_t *h, es_log_level_t l, const char *fmt, ...)
{
    va_list ap;
    if (l > ES_LOG_WARN)
        return;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void h_counter(const es_host_t *h, const char *n, uint64_t d)
{
}

static void h_complete(const es_host_t *h, uint64_t token, es_status_t st,
                       const char *reason)
{
    if (st == ES_OK) {
        settled[token] = 1;
        atomic_fetch_add(&ok_count, 1);
    } else {
        settled[token] = 2;
        atomic_fetch_add(st == ES_RETRY ? &retry_count : &fail_count, 1);
    }
}

static int h_state_get(const es_host_t *h, const char *k, char **v, size_t *l)
{
    return 0;
}

static int h_state_put(const es_host_t *h, const char *k, const void *v,
                       size_t l)
{
    return 0;
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

static const char *const words[] = {
    "order",  "ticket", "wallet", "seat",     "venue",   "price", "amount",
    "USD",    "EUR",    "status", "created",  "pending", "paid",  "shipped",
    "tenant", "user",   "item",   "quantity", "section", "row",   "gate"};

/* A ~1 KB CloudEvent with realistic variety (ids, numbers, words). */
static size_t make_event(char *buf, size_t size, long i, const char *tenant,
                         uint64_t *rng)
{
    size_t n = (size_t)snprintf(
        buf, size,
        "{\"specversion\":\"1.0\",\"id\":\"%08lx-%04lx-4%03lx-a%03lx-%012lx\","
        "\"source\":\"/marketplace-svc\",\"type\":\"eventzr.marketplace.order."
        "created.v1\",\"time\":\"2026-11-23T10:%02ld:%02ld.%03ldZ\","
        "\"tenantid\":\"%s\",\"datacontenttype\":\"application/json\","
        "\"data\":{\"orderId\":\"ord-%ld\",\"amount\":%ld.%02ld,\"lines\":[",
        (long)(*rng & 0xffffffff), i & 0xffff, (i >> 4) & 0xfff,
        (i >> 8) & 0xfff, (long)((*rng >> 16) & 0xffffffffffff), (i / 60) % 60,
        i % 60, i % 1000, tenant, i, i % 997, i % 100);
    while (n < 960) {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        n += (size_t)snprintf(buf + n, size - n,
                              "{\"sku\":\"%s-%lu\",\"qty\":%lu},",
                              words[*rng % (sizeof(words) / sizeof(words[0]))],
                              (unsigned long)((*rng >> 8) % 100000),
                              (unsigned long)((*rng >> 32) % 9 + 1));
    }
    n--; /* drop the trailing comma */
    n += (size_t)snprintf(buf + n, size - n, "]}}");
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr,
                "usage: %s PLUGIN.so CONFIG_JSON EVENTS TENANTS "
                "PARTITIONS\n",
                argv[0]);
        return 2;
    }
    long total = atol(argv[3]), tenants = atol(argv[4]),
         partitions = atol(argv[5]);
    void *dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    es_plugin_entry_fn entry =
        (es_plugin_entry_fn)dlsym(dl, ES_PLUGIN_ENTRY_SYMBOL);
    const es_plugin_t *p = entry(ES_PLUGIN_ABI_VERSION);
    es_host_t host = {.abi = ES_PLUGIN_ABI_VERSION,
                      .size = sizeof(es_host_t),
                      .instance_name = "bench",
                      .state_dir = "/tmp",
                      .log = h_log,
                      .counter_add = h_counter,
                      .complete = h_complete,
                      .state_get = h_state_get,
                      .state_put = h_state_put,
                      .free = free};
    cJSON *cfg = cJSON_Parse(argv[2]);
    void *inst = NULL;
    char err[512];
    if (!cfg || p->init(&host, cfg, &inst, err, sizeof(err))) {
        fprintf(stderr, "init: %s\n", cfg ? err : "bad JSON");
        return 1;
    }
    cJSON_Delete(cfg);
    settled = calloc((size_t)total, 1);
    long *offsets = calloc((size_t)(tenants * partitions), sizeof(long));
    char(*tnames)[32] = calloc((size_t)tenants, 32);
    for (long t = 0; t < tenants; t++)
        snprintf(tnames[t], 32, "tenant-%04ld", t);

    enum { BATCH = 500 };
    /* Events are made before the clock starts (a pool larger than gzip's
     * 32 KiB window, so repeats do not help compression): the run measures
     * the sink, not the generator. */
    enum { POOL = 4096 };
    static char pool[POOL][1200];
    static size_t pool_len[POOL];
    es_event_t evs[BATCH];
    const es_event_t *ptrs[BATCH];
    es_result_t res[BATCH];
    long *slot_of = malloc(sizeof(long) * (size_t)total);
    long *off_of = malloc(sizeof(long) * (size_t)total);
    uint64_t rng = 88172645463325252ull;
    long bytes = 0, rejected = 0;
    for (long i = 0; i < POOL; i++)
        pool_len[i] =
            make_event(pool[i], sizeof(pool[i]), i, tnames[i % tenants], &rng);
    double t0 = now_s(), last_flush = t0, deliver_cpu = 0;
    /* Steady rate: events made durable between the first completion and
     * the moment the last event was accepted. Throughout that window the
     * uploads are fully loaded (the offered events are ahead of them or
     * held back by back-pressure); the end-to-end rate also includes the
     * age cut of the last, partial objects. */
    double t_first_ok = 0, t_offered = 0;
    long ok_first = 0, ok_offered = 0;
    /* Tokens to (re)deliver, in order; redelivered ones go round again. */
    long next = 0;
    long *again = malloc(sizeof(long) * (size_t)total);
    long nagain = 0, again_head = 0; /* ring FIFO: keeps offsets in order */
    for (long i = 0; i < total; i++) {
        slot_of[i] = i % (tenants * partitions);
        off_of[i] = offsets[slot_of[i]]++;
    }
    while (atomic_load(&ok_count) + atomic_load(&fail_count) < total) {
        int m = 0;
        /* Redeliveries first (the host retries RETRY answers). */
        for (long i = 0; i < total && nagain == 0 && next >= total; i++)
            if (settled[i] == 2) {
                settled[i] = 0;
                again[(again_head + nagain++) % total] = i;
            }
        while (m < BATCH && (nagain > 0 || next < total)) {
            long i = next++;
            if (nagain > 0) {
                next--;
                i = again[again_head];
                again_head = (again_head + 1) % total;
                nagain--;
            }
            long slot = slot_of[i];
            const char *tenant = tnames[slot % tenants];
            size_t len = pool_len[i % POOL];
            memset(&evs[m], 0, sizeof(evs[m]));
            evs[m].json = pool[i % POOL];
            evs[m].json_len = len;
            evs[m].tenant = tenant;
            evs[m].topic = "eventzr.marketplace.order.created.v1";
            evs[m].partition = (int32_t)(slot / tenants);
            evs[m].offset = off_of[i] * partitions + slot / tenants;
            evs[m].time = "2026-11-23T10:20:30Z";
            evs[m].timestamp_ms = -1;
            evs[m].token = (uint64_t)i;
            ptrs[m] = &evs[m];
            bytes += (long)len;
            m++;
        }
        if (m > 0) {
            double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
            p->deliver(inst, ptrs, (size_t)m, res);
            deliver_cpu += clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
            int backoff = 0;
            for (int k = 0; k < m; k++) {
                if (res[k].status == ES_RETRY) {
                    again[(again_head + nagain++) % total] = (long)evs[k].token;
                    rejected++;
                    backoff = 1;
                } else if (res[k].status == ES_FAIL) {
                    fprintf(stderr, "FAIL: %s\n", res[k].reason);
                    return 1;
                }
            }
            if (backoff)
                usleep(10000); /* the host backs off 100 ms and more */
        } else {
            usleep(5000);
        }
        double t = now_s();
        long ok = atomic_load(&ok_count);
        if (!t_first_ok && ok > 0) {
            t_first_ok = t;
            ok_first = ok;
        }
        if (!t_offered && next >= total && nagain == 0 && m == 0) {
            t_offered = t;
            ok_offered = ok;
        }
        if (t - last_flush >= 0.1) {
            p->flush(inst);
            last_flush = t;
        }
    }
    double dt = now_s() - t0;
    p->destroy(inst);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    double steady =
        t_offered > t_first_ok && ok_offered > ok_first
            ? (double)(ok_offered - ok_first) / (t_offered - t_first_ok)
            : 0;
    printf("events=%ld bytes=%ld seconds=%.2f events_per_s=%.0f "
           "steady_events_per_s=%.0f MB_per_s=%.1f backpressure_retries=%ld "
           "upload_retries=%ld peak_rss_mb=%.1f cpu_s=%.2f "
           "cpu_us_per_event=%.2f deliver_cpu_us_per_event=%.2f "
           "page_faults=%ld\n",
           total, bytes, dt, (double)total / dt, steady,
           (double)bytes / dt / 1e6, rejected, (long)atomic_load(&retry_count),
           (double)ru.ru_maxrss / 1024.0, cpu, cpu * 1e6 / (double)total,
           deliver_cpu * 1e6 / (double)total, ru.ru_minflt);
    free(settled);
    free(offsets);
    free(tnames);
    free(slot_of);
    free(off_of);
    free(again);
    return 0;
}
