/*
 * counting_sink: a complete third-party sink plugin, built outside the
 * eventstream tree against the installed header (see docs/plugins.md):
 *
 *   cc -std=c11 -shared -fPIC $(pkg-config --cflags eventstream-plugin) \
 *      -o counting.so counting_sink.c $(pkg-config --libs libcjson)
 *
 * Config: {"every": N} logs a line every N events (default 1000).
 * It acknowledges every event and counts them by type through the host's
 * counters (exposed as es_plugin_<name>_total metrics).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <eventstream/plugin.h>

typedef struct counting_s {
    const es_host_t *host;
    unsigned long every, seen;
} counting_t;

static int counting_init(const es_host_t *host, const struct cJSON *config,
                         void **instance, char *errstr, size_t errstr_size)
{
    unsigned long every = 1000;
    const cJSON *it;
    cJSON_ArrayForEach(it, config)
    {
        if (!strcmp(it->string, "every") && cJSON_IsNumber(it) &&
            it->valuedouble >= 1) {
            every = (unsigned long)it->valuedouble;
        } else {
            snprintf(errstr, errstr_size, "%s: unknown key or bad value",
                     it->string);
            return -1;
        }
    }
    counting_t *c = calloc(1, sizeof *c);
    c->host = host;
    c->every = every;
    *instance = c;
    return 0;
}

static void counting_deliver(void *instance, const es_event_t *const *events,
                             size_t count, es_result_t *results)
{
    counting_t *c = instance;
    for (size_t i = 0; i < count; i++) {
        c->host->counter_add(c->host, "events", 1);
        if (++c->seen % c->every == 0)
            c->host->log(c->host, ES_LOG_INFO, "counted %lu events, last %s",
                         c->seen, events[i]->type);
        results[i].status = ES_OK;
    }
}

static void counting_destroy(void *instance)
{
    free(instance);
}

static const es_plugin_t counting_plugin = {
    .abi = ES_PLUGIN_ABI_VERSION,
    .size = sizeof(es_plugin_t),
    .name = "counting",
    .version = "1.0",
    .kind = ES_KIND_SINK,
    .init = counting_init,
    .deliver = counting_deliver,
    .destroy = counting_destroy,
};

ES_PLUGIN_DEFINE(counting_plugin)
