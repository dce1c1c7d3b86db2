/*
 * echo handler, for the end-to-end tests of the host's emit service: for
 * every event it emits a copy with id "echo-<id>" and type "<type>.echo" to
 * the configured topic, keyed by the tenant, and answers OK.
 * Config: {"topic": "echo-out"}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "eventstream/plugin.h"

typedef struct echo_s {
    const es_host_t *host;
    char *topic;
} echo_t;

static int echo_init(const es_host_t *host, const cJSON *config,
                     void **instance, char *errstr, size_t errstr_size)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(config, "topic");
    if (!cJSON_IsString(t)) {
        snprintf(errstr, errstr_size, "topic: is required");
        return -1;
    }
    echo_t *e = calloc(1, sizeof *e);
    e->host = host;
    e->topic = strdup(t->valuestring);
    *instance = e;
    return 0;
}

static void echo_one(echo_t *e, const es_event_t *ev, es_result_t *res)
{
    cJSON *copy = cJSON_Duplicate(ev->ce, 1);
    char id[300], type[300], err[256];
    snprintf(id, sizeof id, "echo-%s", ev->id);
    snprintf(type, sizeof type, "%s.echo", ev->type);
    cJSON_ReplaceItemInObject(copy, "id", cJSON_CreateString(id));
    cJSON_ReplaceItemInObject(copy, "type", cJSON_CreateString(type));
    char *json = cJSON_PrintUnformatted(copy);
    const char *key = ev->tenant ? ev->tenant : "";
    if (e->host->emit(e->host, ev->token, e->topic, key, strlen(key), json,
                      strlen(json), err, sizeof err)) {
        res->status = ES_RETRY;
        snprintf(res->reason, sizeof res->reason, "%s", err);
    } else {
        res->status = ES_OK;
    }
    free(json);
    cJSON_Delete(copy);
}

static void echo_deliver(void *instance, const es_event_t *const *events,
                         size_t count, es_result_t *results)
{
    for (size_t i = 0; i < count; i++)
        echo_one(instance, events[i], &results[i]);
}

static void echo_destroy(void *instance)
{
    echo_t *e = instance;
    if (!e)
        return;
    free(e->topic);
    free(e);
}

static const es_plugin_t echo_plugin = {
    .abi = ES_PLUGIN_ABI_VERSION,
    .size = sizeof(es_plugin_t),
    .name = "echo",
    .version = "test",
    .kind = ES_KIND_HANDLER,
    .init = echo_init,
    .deliver = echo_deliver,
    .destroy = echo_destroy,
};

ES_PLUGIN_DEFINE(echo_plugin)
