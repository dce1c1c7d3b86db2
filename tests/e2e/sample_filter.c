/*
 * A small filter for the onboarding e2e test (tests/e2e/onboarding.sh):
 * drops events whose type is config "drop_type"; every other event is
 * replaced by a copy with the extension attribute "filtered": "yes", so a
 * test can see the filter's effect in a dry run and at the sink. Config
 * "init_sleep_ms" makes its init take that long (tests/e2e/reload.sh: a
 * reload's check that hangs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <eventstream/plugin.h>

typedef struct sample_s {
    char *drop_type;
} sample_t;

static int sample_init(const es_host_t *host, const struct cJSON *config,
                       void **instance, char *errstr, size_t errstr_size)
{
    (void)host;
    const cJSON *it;
    const char *drop = "";
    cJSON_ArrayForEach(it, config)
    {
        if (!strcmp(it->string, "drop_type") && cJSON_IsString(it)) {
            drop = it->valuestring;
        } else if (!strcmp(it->string, "init_sleep_ms") && cJSON_IsNumber(it)) {
            struct timespec ts = {it->valueint / 1000,
                                  (it->valueint % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        } else {
            snprintf(errstr, errstr_size, "%s: unknown key or bad value",
                     it->string);
            return -1;
        }
    }
    sample_t *s = calloc(1, sizeof *s);
    s->drop_type = strdup(drop);
    *instance = s;
    return 0;
}

static es_filter_verdict_t sample_filter(void *instance,
                                         const es_event_t *event,
                                         es_filter_out_t *out, char *errstr,
                                         size_t errstr_size)
{
    sample_t *s = instance;
    if (!strcmp(event->type, s->drop_type))
        return ES_FILTER_DROP;
    cJSON *copy = cJSON_Duplicate(event->ce, 1);
    cJSON_AddStringToObject(copy, "filtered", "yes");
    char *json = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    int rc = out->add(out, json, strlen(json), NULL, errstr, errstr_size);
    free(json);
    return rc ? ES_FILTER_FAIL : ES_FILTER_REPLACE;
}

static void sample_destroy(void *instance)
{
    sample_t *s = instance;
    free(s->drop_type);
    free(s);
}

static const es_plugin_t sample_plugin = {
    .abi = ES_PLUGIN_ABI_VERSION,
    .size = sizeof(es_plugin_t),
    .name = "samplefilter",
    .version = "1.0",
    .kind = ES_KIND_FILTER,
    .init = sample_init,
    .filter = sample_filter,
    .destroy = sample_destroy,
};

ES_PLUGIN_DEFINE(sample_plugin)
