/* Plugins for the loader tests. One source, built several times with a
 * different TEST_VARIANT each, so every .so is a real shared object that
 * goes through dlopen like an operator's plugin would. */
#include <stddef.h>
#include <stdlib.h>

#include "eventstream/plugin.h"

static int t_init(const es_host_t *host, const struct cJSON *config,
                  void **instance, char *errstr, size_t errstr_size)
{
    *instance = NULL;
    return 0;
}

__attribute__((unused)) static void t_deliver(void *instance,
                                              const es_event_t *const *events,
                                              size_t count,
                                              es_result_t *results)
{
    for (size_t i = 0; i < count; i++)
        results[i].status = ES_OK;
}

static void t_destroy(void *instance)
{
}

#if TEST_VARIANT == 1 /* good */
#define T_ABI ES_PLUGIN_ABI_VERSION
#define T_SIZE sizeof(es_plugin_t)
#define T_NAME "good"
#define T_DELIVER t_deliver
#elif TEST_VARIANT == 2 /* wrong abi */
#define T_ABI (ES_PLUGIN_ABI_VERSION + 7)
#define T_SIZE sizeof(es_plugin_t)
#define T_NAME "wrongabi"
#define T_DELIVER t_deliver
#elif TEST_VARIANT == 3 /* descriptor too small */
#define T_ABI ES_PLUGIN_ABI_VERSION
#define T_SIZE 16
#define T_NAME "small"
#define T_DELIVER t_deliver
#elif TEST_VARIANT == 4 /* sink without deliver */
#define T_ABI ES_PLUGIN_ABI_VERSION
#define T_SIZE sizeof(es_plugin_t)
#define T_NAME "nodeliver"
#define T_DELIVER NULL
#elif TEST_VARIANT == 5 /* same name as the good one */
#define T_ABI ES_PLUGIN_ABI_VERSION
#define T_SIZE sizeof(es_plugin_t)
#define T_NAME "good"
#define T_DELIVER t_deliver
#elif TEST_VARIANT == 6 /* built against the header before `flags` */
#define T_ABI ES_PLUGIN_ABI_VERSION
#define T_SIZE offsetof(es_plugin_t, flags)
#define T_NAME "older"
#define T_DELIVER t_deliver
#endif

static const es_plugin_t desc = {
    .abi = T_ABI,
    .size = T_SIZE,
    .name = T_NAME,
    .version = "test",
    .kind = ES_KIND_SINK,
    .init = t_init,
    .deliver = T_DELIVER,
    .destroy = t_destroy,
    /* Read by the host for "good" only: "older"'s size does not cover it. */
    .flags = ES_PLUGIN_TEXT_ONLY,
};

ES_PLUGIN_DEFINE(desc)
