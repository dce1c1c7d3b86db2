/*
 * switch sink, for the end-to-end tests of parking: appends one line per
 * event to `path` ("ID<TAB>TOPIC<TAB>PARTITION<TAB>OFFSET<TAB>TENANT<TAB>
 * ROUTE<TAB>KEY<TAB>ATTEMPT<TAB>REALTIME_NS") and answers OK, except while the
 * file `fail_file` exists: then every event answers RETRY ("down"). Events
 * whose id starts with `poison` (if set) always answer FAIL. `delay_ms`
 * (default 0) is slept per delivered event, to make a drain last a while.
 * Config: {"path": "/tmp/out.tsv", "fail_file": "/tmp/down",
 *          "poison": "poison-", "delay_ms": 2}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "eventstream/plugin.h"

typedef struct sw_s {
    FILE *out;
    char *fail_file;
    char *poison;
    int delay_ms;
} sw_t;

static char *opt_string(const cJSON *config, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, key);
    return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

static void sw_destroy(void *instance)
{
    sw_t *s = instance;
    if (!s)
        return;
    if (s->out)
        fclose(s->out);
    free(s->fail_file);
    free(s->poison);
    free(s);
}

static int sw_init(const es_host_t *host, const cJSON *config, void **instance,
                   char *errstr, size_t errstr_size)
{
    (void)host;
    sw_t *s = calloc(1, sizeof *s);
    char *path = opt_string(config, "path");
    s->fail_file = opt_string(config, "fail_file");
    s->poison = opt_string(config, "poison");
    const cJSON *delay = cJSON_GetObjectItemCaseSensitive(config, "delay_ms");
    s->delay_ms = cJSON_IsNumber(delay) ? delay->valueint : 0;
    if (!path || !s->fail_file) {
        snprintf(errstr, errstr_size, "path and fail_file are required");
        goto fail;
    }
    s->out = fopen(path, "a");
    if (!s->out) {
        snprintf(errstr, errstr_size, "path: cannot open %s", path);
        goto fail;
    }
    free(path);
    *instance = s;
    return 0;
fail:
    free(path);
    sw_destroy(s);
    return -1;
}

static void sw_one(sw_t *s, int down, const es_event_t *ev, es_result_t *res)
{
    if (s->poison && !strncmp(ev->id, s->poison, strlen(s->poison))) {
        res->status = ES_FAIL;
        snprintf(res->reason, sizeof res->reason, "poison event");
        return;
    }
    if (down) {
        res->status = ES_RETRY;
        snprintf(res->reason, sizeof res->reason, "down");
        return;
    }
    if (s->delay_ms)
        usleep((useconds_t)s->delay_ms * 1000);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(s->out, "%s\t%s\t%d\t%lld\t%s\t%s\t%.*s\t%u\t%lld%09ld\n", ev->id,
            ev->topic, (int)ev->partition, (long long)ev->offset,
            ev->tenant ? ev->tenant : "-", ev->route,
            ev->key ? (int)ev->key_len : 1,
            ev->key ? (const char *)ev->key : "-", ev->attempt,
            (long long)ts.tv_sec, ts.tv_nsec);
    res->status = ES_OK;
}

static void sw_deliver(void *instance, const es_event_t *const *events,
                       size_t count, es_result_t *results)
{
    sw_t *s = instance;
    int down = access(s->fail_file, F_OK) == 0;
    for (size_t i = 0; i < count; i++)
        sw_one(s, down, events[i], &results[i]);
    fflush(s->out);
}

static const es_plugin_t sw_plugin = {
    .abi = ES_PLUGIN_ABI_VERSION,
    .size = sizeof(es_plugin_t),
    .name = "switch",
    .version = "test",
    .kind = ES_KIND_SINK,
    .init = sw_init,
    .deliver = sw_deliver,
    .destroy = sw_destroy,
};

ES_PLUGIN_DEFINE(sw_plugin)
