/*
 * lua-bench: runs ~1 KB seed-shaped CloudEvents through the Lua filter
 * plugin's filter() in a loop and prints events/s and CPU microseconds per
 * event. The events are parsed (cJSON, and the host's decoder for the index
 * of their members the daemon offers the plugin) before timing starts, as
 * the host has them parsed already when it calls a filter. LUA_BENCH_INDEX=0
 * offers no index: the plugin then reads the text itself.
 *
 *   lua-bench SCRIPT [EVENTS [PASSES]]
 *   lua-bench --emit EVENTS     prints the events, one per line (for the
 *                               daemon benchmark in scripts/bench-lua)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_lua_host.h"

#define DISTINCT 1000

static double now_s(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One marketplace order event of about 1 KB; every 20th is a test
 * tenant's, every 3rd has no personal fields. */
static char *make_event(int i, const char **tenant)
{
    static const char *const tenants[] = {"tenant-a", "tenant-b", "tenant-c"};
    *tenant = i % 20 == 19 ? "tenant-test" : tenants[i % 3];
    char pii[512] = "";
    if (i % 3 != 2)
        snprintf(
            pii, sizeof pii,
            "\"email\":\"buyer%d@example.com\",\"phone\":\"+1-555-01%04d\","
            "\"buyerName\":\"Buyer Number %d\",\"shipping\":{\"street\":"
            "\"%d Market Street\",\"city\":\"Springfield\",\"phone\":"
            "\"+1-555-02%04d\"},",
            i, i % 10000, i, i, i % 10000);
    char *buf = malloc(2048);
    snprintf(
        buf, 2048,
        "{\"specversion\":\"1.0\",\"id\":\"a1b2c3d4-e5f6-7890-abcd-%012d\","
        "\"type\":\"eventzr.marketplace.order.created.v1\",\"source\":"
        "\"marketplace-svc\",\"time\":\"2026-03-02T12:00:00.000Z\","
        "\"datacontenttype\":\"application/json\",\"subject\":"
        "\"order:%d\",\"tenantid\":\"%s\",\"data\":{\"id\":\"order-%d\","
        "\"quoteId\":\"quote-%d\",\"listingId\":\"listing-%d\","
        "\"buyerId\":\"buyer-%d\",\"sellerId\":\"seller-%d\",%s"
        "\"walletAddress\":\"0x%040x\",\"lane\":\"vendora\","
        "\"title\":\"Premium Catering Service for 200 guests\","
        "\"price\":%d,\"currency\":\"USD\",\"fee\":%d.25,\"items\":["
        "{\"sku\":\"cat-001\",\"qty\":2,\"unit\":1500},"
        "{\"sku\":\"cat-002\",\"qty\":1,\"unit\":2000},"
        "{\"sku\":\"svc-010\",\"qty\":4,\"unit\":250}],"
        "\"notes\":\"Deliver to the east entrance before 10:00, call on "
        "arrival. Vegetarian options for 40 guests, gluten-free for 6 and a "
        "kids "
        "menu for 12; the invoice goes to the events office.\",\"createdAt\":"
        "\"2026-03-02T11:59:59.123Z\",\"version\":%d}}",
        i, i, *tenant, i, i, i, i % 97, i % 13, pii, i, 5000 + i % 100, i % 50,
        i);
    return buf;
}

static int emit(long n)
{
    for (long i = 0; i < n; i++) {
        const char *tenant;
        char *json = make_event((int)(i % DISTINCT), &tenant);
        puts(json);
        free(json);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--emit") == 0)
        return emit(atol(argv[2]));
    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRIPT [EVENTS [PASSES]]\n", argv[0]);
        return 2;
    }
    long n = argc > 2 ? atol(argv[2]) : 200000;
    int passes = argc > 3 ? atoi(argv[3]) : 3;
    const es_plugin_t *p = fake_load_plugin();
    if (!p)
        return 1;
    static fake_host_t host;
    fake_host_init(&host);
    const char *ix = getenv("LUA_BENCH_INDEX");
    fake_host_offer_index(&host, !ix || strcmp(ix, "0") != 0);
    fake_host_verify_copies(0); /* the host's work, not the plugin's */
    char cfg[1024], err[512];
    snprintf(cfg, sizeof cfg, "{\"script\":\"%s\",\"reload_check_ms\":0}",
             argv[1]);
    cJSON *c = cJSON_Parse(cfg);
    void *inst = NULL;
    if (p->init(&host.host, c, &inst, err, sizeof err) != 0) {
        fprintf(stderr, "init: %s\n", err);
        return 1;
    }
    cJSON_Delete(c);

    static fake_event_t evs[DISTINCT];
    size_t bytes = 0;
    for (int i = 0; i < DISTINCT; i++) {
        const char *tenant;
        char *json = make_event(i, &tenant);
        fake_event_init(&evs[i], json, "eventzr.marketplace.order.created.v1",
                        tenant);
        bytes += evs[i].ev.json_len;
        free(json);
    }
    static fake_out_t out;
    fake_out_init(&out);
    printf("script=%s events=%ld avg_event_bytes=%zu host_index=%s\n", argv[1],
           n, bytes / DISTINCT, host.host.event_size ? "yes" : "no");
    for (int pass = 0; pass < passes; pass++) {
        long verdicts[5] = {0};
        double w0 = now_s(CLOCK_MONOTONIC),
               c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
        for (long i = 0; i < n; i++) {
            es_filter_verdict_t v = p->filter(inst, &evs[i % DISTINCT].ev,
                                              &out.out, err, sizeof err);
            verdicts[v]++;
            if (out.n)
                fake_out_reset(&out);
        }
        double wall = now_s(CLOCK_MONOTONIC) - w0;
        double cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        printf("pass=%d events_per_s=%.0f cpu_us_per_event=%.2f keep=%ld "
               "drop=%ld replace=%ld fail=%ld\n",
               pass + 1, n / wall, cpu * 1e6 / n, verdicts[1], verdicts[2],
               verdicts[3], verdicts[4]);
    }
    p->destroy(inst);
    for (int i = 0; i < DISTINCT; i++)
        fake_event_free(&evs[i]);
    return 0;
}
