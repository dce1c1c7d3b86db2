#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

#include "config.h"
#include "internal/es_file_check.h"
#include "internal/es_json_int.h"
#include "internal/es_json_keys.h"

/* Table-driven parsing: each JSON object the config contains is described
 * by a field table; keys not in the table are errors. */
typedef enum field_kind_e {
    F_STRING = 1,
    F_INT,
    F_BOOL,
    F_STRV,      /* array of non-empty strings */
    F_OBJ_REF,   /* any object, kept as a borrowed cJSON pointer */
    F_LOG_LEVEL, /* "error" | "warn" | "info" | "debug" */
    F_LOG_FORMAT /* "logfmt" | "json" */
} field_kind_t;

typedef struct field_s {
    const char *key;
    field_kind_t kind;
    size_t offset;
    int required;
    long min, max; /* F_INT bounds */
} field_t;

typedef struct parse_ctx_s {
    const char *path;
    char *errstr;
    size_t errstr_size;
} parse_ctx_t;

static int fail(parse_ctx_t *ctx, const char *key_path, const char *fmt, ...)
    ES_PRINTF(3, 4);

/* The key path as an error shows it: control characters as '?' (a key is
 * any JSON string, and the error goes to a terminal), and a long one cut
 * so that what is wrong still fits after it. */
static void shown_key(char *out, size_t size, const char *key_path)
{
    enum { MAX_SHOWN = 160 };
    size_t n = 0;
    for (; n < MAX_SHOWN && n < size - 4 && key_path[n]; n++) {
        unsigned char c = (unsigned char)key_path[n];
        out[n] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    out[n] = '\0';
    if (key_path[n])
        memcpy(out + n, "...", 4);
}

static int fail(parse_ctx_t *ctx, const char *key_path, const char *fmt, ...)
{
    char what[512], key[168];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    shown_key(key, sizeof key, key_path);
    if (!ctx->path[0]) /* a fragment (es_park_conf_parse): no file */
        snprintf(ctx->errstr, ctx->errstr_size, "%s: %s", key, what);
    else
        snprintf(ctx->errstr, ctx->errstr_size, "%s: %s: %s", ctx->path,
                 key[0] ? key : "(top level)", what);
    return -1;
}

static void join_path(char *out, size_t size, const char *parent,
                      const char *key)
{
    snprintf(out, size, "%s%s%s", parent, parent[0] ? "." : "", key);
}

static int parse_strv(parse_ctx_t *ctx, const cJSON *item, const char *path,
                      es_strv_t *out)
{
    if (!cJSON_IsArray(item))
        return fail(ctx, path, "must be an array of strings");
    size_t n = (size_t)cJSON_GetArraySize(item);
    out->v = calloc(n + 1, sizeof(char *));
    out->n = 0;
    const cJSON *el;
    cJSON_ArrayForEach(el, item)
    {
        char el_path[256];
        snprintf(el_path, sizeof el_path, "%s[%zu]", path, out->n);
        if (!cJSON_IsString(el) || !el->valuestring[0])
            return fail(ctx, el_path, "must be a non-empty string");
        out->v[out->n++] = strdup(el->valuestring);
    }
    return 0;
}

static int parse_field(parse_ctx_t *ctx, const field_t *f, const cJSON *item,
                       const char *path, void *base)
{
    char *slot = (char *)base + f->offset;
    switch (f->kind) {
    case F_STRING:
        if (!cJSON_IsString(item) || !item->valuestring[0])
            return fail(ctx, path, "must be a non-empty string");
        free(*(char **)slot);
        *(char **)slot = strdup(item->valuestring);
        return 0;
    case F_INT: {
        double d = item->valuedouble;
        if (!cJSON_IsNumber(item))
            return fail(ctx, path, "must be an integer");
        if (!(d >= (double)f->min && d <= (double)f->max))
            return fail(ctx, path, "must be between %ld and %ld, not %g",
                        f->min, f->max, d);
        if (!es_json_int_in(item, (double)f->min, (double)f->max))
            return fail(ctx, path, "must be an integer");
        *(int *)slot = (int)d;
        return 0;
    }
    case F_BOOL:
        if (!cJSON_IsBool(item))
            return fail(ctx, path, "must be true or false");
        *(int *)slot = cJSON_IsTrue(item);
        return 0;
    case F_STRV:
        return parse_strv(ctx, item, path, (es_strv_t *)slot);
    case F_OBJ_REF:
        if (!cJSON_IsObject(item))
            return fail(ctx, path, "must be an object");
        *(const cJSON **)slot = item;
        return 0;
    case F_LOG_LEVEL:
        if (!cJSON_IsString(item) ||
            es_log_level_parse(item->valuestring, (es_log_level_t *)slot))
            return fail(ctx, path,
                        "must be one of \"error\", \"warn\", \"info\", "
                        "\"debug\"");
        return 0;
    case F_LOG_FORMAT:
        if (cJSON_IsString(item) && !strcmp(item->valuestring, "logfmt"))
            *(es_log_format_t *)slot = ES_LOG_LOGFMT;
        else if (cJSON_IsString(item) && !strcmp(item->valuestring, "json"))
            *(es_log_format_t *)slot = ES_LOG_JSON;
        else
            return fail(ctx, path, "must be \"logfmt\" or \"json\"");
        return 0;
    }
    return fail(ctx, path, "internal: unknown field kind");
}

static int parse_object(parse_ctx_t *ctx, const cJSON *obj,
                        const char *obj_path, const field_t *fields,
                        size_t nfields, void *base)
{
    if (!cJSON_IsObject(obj))
        return fail(ctx, obj_path, "must be an object");
    const cJSON *item;
    cJSON_ArrayForEach(item, obj)
    {
        char path[256];
        join_path(path, sizeof path, obj_path, item->string);
        size_t i;
        for (i = 0; i < nfields; i++)
            if (!strcmp(fields[i].key, item->string))
                break;
        if (i == nfields)
            return fail(ctx, path, "unknown key");
        if (parse_field(ctx, &fields[i], item, path, base))
            return -1;
    }
    for (size_t i = 0; i < nfields; i++) {
        if (fields[i].required &&
            !cJSON_GetObjectItemCaseSensitive(obj, fields[i].key)) {
            char path[256];
            join_path(path, sizeof path, obj_path, fields[i].key);
            return fail(ctx, path, "is required");
        }
    }
    return 0;
}

#define FIELD(type, member, key, kind, req)                                    \
    {                                                                          \
        key, kind, offsetof(type, member), req, 0, 0                           \
    }
#define INT_FIELD(type, member, key, lo, hi)                                   \
    {                                                                          \
        key, F_INT, offsetof(type, member), 0, lo, hi                          \
    }

/* Sub-objects of the top level are parsed into the same es_config_t. */
static const field_t kafka_fields[] = {
    FIELD(es_config_t, brokers, "brokers", F_STRING, 1),
    FIELD(es_config_t, group_id, "group_id", F_STRING, 0),
    FIELD(es_config_t, kafka_properties, "properties", F_OBJ_REF, 0),
};
static const field_t log_fields[] = {
    FIELD(es_config_t, log_level, "level", F_LOG_LEVEL, 0),
    FIELD(es_config_t, log_format, "format", F_LOG_FORMAT, 0),
};
static const field_t retry_fields[] = {
    INT_FIELD(es_config_t, retry_initial_backoff_ms, "initial_backoff_ms", 1,
              3600000),
    INT_FIELD(es_config_t, retry_max_backoff_ms, "max_backoff_ms", 1, 86400000),
    INT_FIELD(es_config_t, retry_max_attempts, "max_attempts", 0, 1000000),
};
static const field_t pipeline_fields[] = {
    INT_FIELD(es_config_t, max_inflight, "max_inflight", 1, 10000000),
    INT_FIELD(es_config_t, max_event_bytes, "max_event_bytes", 64,
              100 * 1024 * 1024),
    INT_FIELD(es_config_t, batch_size, "batch_size", 1, 100000),
    INT_FIELD(es_config_t, commit_interval_ms, "commit_interval_ms", 10,
              600000),
    INT_FIELD(es_config_t, shutdown_timeout_ms, "shutdown_timeout_ms", 0,
              3600000),
    INT_FIELD(es_config_t, reload_check_timeout_ms, "reload_check_timeout_ms",
              100, 3600000),
    FIELD(es_config_t, filter_thread, "filter_thread", F_BOOL, 0),
};
static const field_t api_fields[] = {
    FIELD(es_config_t, api_listen, "listen", F_STRING, 1),
    FIELD(es_config_t, api_token, "token", F_STRING, 0),
    FIELD(es_config_t, api_token_file, "token_file", F_STRING, 0),
    FIELD(es_config_t, api_tls_cert, "tls_cert", F_STRING, 0),
    FIELD(es_config_t, api_tls_key, "tls_key", F_STRING, 0),
};
static const field_t route_fields[] = {
    FIELD(es_route_conf_t, name, "name", F_STRING, 1),
    FIELD(es_route_conf_t, topics, "topics", F_STRV, 1),
    FIELD(es_route_conf_t, group, "group", F_STRING, 0),
    FIELD(es_route_conf_t, tenant, "tenant", F_STRV, 0),
    FIELD(es_route_conf_t, require_tenant, "require_tenant", F_BOOL, 0),
    FIELD(es_route_conf_t, filters, "filters", F_STRV, 0),
    FIELD(es_route_conf_t, destinations, "destinations", F_STRV, 1),
    /* Avro input; checked further by host/avro/hook.c. */
    FIELD(es_route_conf_t, format, "format", F_STRING, 0),
    FIELD(es_route_conf_t, avro_schemas, "avro_schemas", F_OBJ_REF, 0),
};
static const field_t instance_fields[] = {
    FIELD(es_instance_conf_t, plugin, "plugin", F_STRING, 1),
    FIELD(es_instance_conf_t, config, "config", F_OBJ_REF, 0),
    FIELD(es_instance_conf_t, park_obj, "park", F_OBJ_REF, 0),
    FIELD(es_instance_conf_t, test_endpoint, "test_endpoint", F_BOOL, 0),
};
static const field_t park_fields[] = {
    FIELD(es_park_conf_t, enabled, "enabled", F_BOOL, 0),
    INT_FIELD(es_park_conf_t, after_ms, "after_ms", 0, 86400000),
    INT_FIELD(es_park_conf_t, after_attempts, "after_attempts", 0, 1000000),
    FIELD(es_park_conf_t, topic, "topic", F_STRING, 0),
    FIELD(es_park_conf_t, group, "group", F_STRING, 0),
};
/* Checked further (the map itself) by host/src/region.c. */
static const field_t region_fields[] = {
    FIELD(es_config_t, region_name, "name", F_STRING, 1),
    FIELD(es_config_t, region_map, "tenant_regions", F_STRING, 1),
    INT_FIELD(es_config_t, region_refresh_ms, "refresh_ms", 100, 86400000),
    INT_FIELD(es_config_t, region_timeout_ms, "timeout_ms", 100, 600000),
    FIELD(es_config_t, region_unknown, "unknown_tenant", F_STRING, 0),
    FIELD(es_config_t, region_ca_file, "ca_file", F_STRING, 0),
};
static const field_t usage_fields[] = {
    INT_FIELD(es_config_t, usage_minute_hours, "minute_retention_hours", 1,
              24 * 366),
    INT_FIELD(es_config_t, usage_hour_days, "hour_retention_days", 1, 3660),
    INT_FIELD(es_config_t, usage_day_days, "day_retention_days", 1, 36600),
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

void es_park_conf_defaults(es_park_conf_t *pc)
{
    *pc =
        (es_park_conf_t){.enabled = 1, .after_ms = 30000, .after_attempts = 5};
}

static int park_never(parse_ctx_t *ctx, const char *path,
                      const es_park_conf_t *pc)
{
    if (pc->enabled && !pc->after_ms && !pc->after_attempts)
        return fail(ctx, path,
                    "after_ms and after_attempts are both 0: the destination "
                    "would never be parked (set \"enabled\": false instead)");
    return 0;
}

int es_park_conf_parse(const cJSON *obj, const char *path, es_park_conf_t *pc,
                       char *errstr, size_t errstr_size)
{
    parse_ctx_t ctx = {"", errstr, errstr_size};
    return parse_object(&ctx, obj, path, park_fields, N(park_fields), pc) ||
           park_never(&ctx, path, pc);
}

/* "subscriptions.scripts_dir": a readable directory. */
static int parse_scripts_dir(parse_ctx_t *ctx, es_config_t *conf,
                             const cJSON *v)
{
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return fail(ctx, "subscriptions.scripts_dir",
                    "must be a directory's path");
    int unreadable = es_dir_unreadable(v->valuestring);
    if (unreadable)
        return fail(ctx, "subscriptions.scripts_dir", "%s: %s", v->valuestring,
                    strerror(unreadable));
    free(conf->sub_scripts_dir);
    conf->sub_scripts_dir = strdup(v->valuestring);
    return 0;
}

/* "subscriptions": {"park": {...}, "scripts_dir": DIR}: the park policy
 * of every subscription's destination unless its own "park" says
 * otherwise. Topic and group are per subscription (one park topic per
 * destination). */
static int parse_subscriptions(parse_ctx_t *ctx, es_config_t *conf,
                               const cJSON *obj)
{
    if (!cJSON_IsObject(obj))
        return fail(ctx, "subscriptions", "must be an object");
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        char path[300];
        join_path(path, sizeof path, "subscriptions", it->string);
        if (!strcmp(it->string, "scripts_dir")) {
            if (parse_scripts_dir(ctx, conf, it))
                return -1;
            continue;
        }
        if (strcmp(it->string, "park"))
            return fail(ctx, path, "unknown key");
        if (!cJSON_IsObject(it)) /* an array's elements have no names */
            return fail(ctx, path, "must be an object");
        const cJSON *f;
        cJSON_ArrayForEach(f, it)
        {
            char fpath[400];
            join_path(fpath, sizeof fpath, path, f->string);
            if (!strcmp(f->string, "topic") || !strcmp(f->string, "group"))
                return fail(ctx, fpath,
                            "is per subscription "
                            "(eventstream.park.<id> and "
                            "<group_id>.park.<id>)");
        }
        if (parse_object(ctx, it, path, park_fields, N(park_fields),
                         &conf->sub_park) ||
            park_never(ctx, path, &conf->sub_park))
            return -1;
    }
    return 0;
}

/* "park": {...} switches parking on with these defaults. */
static int parse_park(parse_ctx_t *ctx, es_instance_conf_t *inst,
                      const char *inst_path)
{
    if (!inst->park_obj)
        return 0;
    char path[300], topic[300];
    snprintf(path, sizeof path, "%s.park", inst_path);
    es_park_conf_t *pc = &inst->park;
    es_park_conf_defaults(pc);
    if (parse_object(ctx, inst->park_obj, path, park_fields, N(park_fields),
                     pc))
        return -1;
    if (!pc->topic) {
        snprintf(topic, sizeof topic, "eventstream.park.%s", inst->name);
        pc->topic = strdup(topic);
    }
    return park_never(ctx, path, pc);
}

static int parse_instances(parse_ctx_t *ctx, es_config_t *conf,
                           const cJSON *obj)
{
    if (!cJSON_IsObject(obj))
        return fail(ctx, "instances",
                    "must be an object of name: {plugin, "
                    "config}");
    conf->instance_count = (size_t)cJSON_GetArraySize(obj);
    conf->instances = calloc(conf->instance_count + 1, sizeof *conf->instances);
    size_t i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, obj)
    {
        char path[256];
        es_instance_conf_t *inst = &conf->instances[i++];
        inst->name = strdup(item->string);
        join_path(path, sizeof path, "instances", item->string);
        if (!item->string[0])
            return fail(ctx, path, "instance name must not be empty");
        if (parse_object(ctx, item, path, instance_fields, N(instance_fields),
                         inst) ||
            parse_park(ctx, inst, path))
            return -1;
    }
    return 0;
}

/* The i-th entry of v given before it: its first index, else -1. */
static long listed_before(const es_strv_t *v, size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (!strcmp(v->v[k], v->v[i]))
            return (long)k;
    return -1;
}

/* Topics that are Kafka topic names, each once; destinations each once
 * (twice would deliver every event twice to the same instance). */
static int check_route_lists(parse_ctx_t *ctx, const es_route_conf_t *r,
                             size_t ri)
{
    char path[256];
    for (size_t k = 0; k < r->topics.n; k++) {
        snprintf(path, sizeof path, "routes[%zu].topics[%zu]", ri, k);
        if (!es_topic_name_valid(r->topics.v[k]))
            return fail(ctx, path, "\"%.64s\" %s", r->topics.v[k],
                        ES_TOPIC_NAME_RULE);
        long first = listed_before(&r->topics, k);
        if (first >= 0)
            return fail(ctx, path, "\"%s\" is listed twice (also topics[%ld])",
                        r->topics.v[k], first);
    }
    for (size_t k = 0; k < r->destinations.n; k++) {
        long first = listed_before(&r->destinations, k);
        snprintf(path, sizeof path, "routes[%zu].destinations[%zu]", ri, k);
        if (first >= 0)
            return fail(ctx, path,
                        "\"%s\" is listed twice (also destinations[%ld]): "
                        "every event would be delivered to it twice",
                        r->destinations.v[k], first);
    }
    return 0;
}

static int check_route_refs(parse_ctx_t *ctx, const es_config_t *conf,
                            size_t ri)
{
    const es_route_conf_t *r = &conf->routes[ri];
    char path[256];
    for (size_t j = 0; j < ri; j++) {
        if (!strcmp(conf->routes[j].name, r->name)) {
            snprintf(path, sizeof path, "routes[%zu].name", ri);
            return fail(ctx, path, "duplicate route name \"%s\"", r->name);
        }
    }
    const es_strv_t *lists[] = {&r->filters, &r->destinations};
    const char *keys[] = {"filters", "destinations"};
    for (size_t l = 0; l < 2; l++) {
        for (size_t k = 0; k < lists[l]->n; k++) {
            if (es_config_instance(conf, lists[l]->v[k]))
                continue;
            snprintf(path, sizeof path, "routes[%zu].%s[%zu]", ri, keys[l], k);
            return fail(ctx, path,
                        "instance \"%s\" is not defined in "
                        "\"instances\"",
                        lists[l]->v[k]);
        }
    }
    if (r->destinations.n == 0) {
        snprintf(path, sizeof path, "routes[%zu].destinations", ri);
        return fail(ctx, path, "needs at least one destination");
    }
    return check_route_lists(ctx, r, ri);
}

static int parse_routes(parse_ctx_t *ctx, es_config_t *conf, const cJSON *arr)
{
    if (!cJSON_IsArray(arr))
        return fail(ctx, "routes", "must be an array of route objects");
    conf->route_count = (size_t)cJSON_GetArraySize(arr);
    conf->routes = calloc(conf->route_count + 1, sizeof *conf->routes);
    size_t i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, arr)
    {
        char path[64];
        snprintf(path, sizeof path, "routes[%zu]", i);
        if (parse_object(ctx, item, path, route_fields, N(route_fields),
                         &conf->routes[i]))
            return -1;
        i++;
    }
    for (i = 0; i < conf->route_count; i++)
        if (check_route_refs(ctx, conf, i))
            return -1;
    return 0;
}

static int check_kafka_properties(parse_ctx_t *ctx, const cJSON *props)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, props)
    {
        char path[256];
        join_path(path, sizeof path, "kafka.properties", p->string);
        if (!cJSON_IsString(p))
            return fail(ctx, path, "librdkafka properties must be strings");
    }
    return 0;
}

static void set_defaults(es_config_t *conf)
{
    conf->group_id = strdup("eventstreamd");
    conf->plugin_dir = strdup(ES_PLUGIN_DIR);
    conf->state_dir = strdup("/var/lib/eventstream");
    conf->dead_letter_topic = strdup("eventstream.dlq");
    conf->log_level = ES_LOG_INFO;
    conf->log_format = ES_LOG_LOGFMT;
    conf->retry_initial_backoff_ms = 100;
    conf->retry_max_backoff_ms = 30000;
    conf->retry_max_attempts = 10;
    conf->max_inflight = 50000;
    conf->max_event_bytes = 1024 * 1024;
    conf->batch_size = 1000;
    conf->commit_interval_ms = 1000;
    conf->shutdown_timeout_ms = 10000;
    conf->reload_check_timeout_ms = 60000;
    conf->region_refresh_ms = 60000;
    conf->region_timeout_ms = 5000;
    conf->usage_minute_hours = 48;
    conf->usage_hour_days = 90;
    conf->usage_day_days = 1100;
    es_park_conf_defaults(&conf->sub_park);
}

/* Top-level keys that hold objects parsed by their own table or function. */
static int parse_top(parse_ctx_t *ctx, es_config_t *conf)
{
    static const field_t top_fields[] = {
        FIELD(es_config_t, plugin_dir, "plugin_dir", F_STRING, 0),
        FIELD(es_config_t, state_dir, "state_dir", F_STRING, 0),
        FIELD(es_config_t, dead_letter_topic, "dead_letter_topic", F_STRING, 0),
        FIELD(es_config_t, topics_dir, "topics_dir", F_STRING, 0),
        FIELD(es_config_t, schema_registry, "schema_registry", F_OBJ_REF, 0),
    };
    const cJSON *item;
    cJSON_ArrayForEach(item, conf->root)
    {
        const char *k = item->string;
        int rc;
        if (!strcmp(k, "kafka"))
            rc =
                parse_object(ctx, item, k, kafka_fields, N(kafka_fields), conf);
        else if (!strcmp(k, "log"))
            rc = parse_object(ctx, item, k, log_fields, N(log_fields), conf);
        else if (!strcmp(k, "retry"))
            rc =
                parse_object(ctx, item, k, retry_fields, N(retry_fields), conf);
        else if (!strcmp(k, "pipeline"))
            rc = parse_object(ctx, item, k, pipeline_fields, N(pipeline_fields),
                              conf);
        else if (!strcmp(k, "api"))
            rc = parse_object(ctx, item, k, api_fields, N(api_fields), conf);
        else if (!strcmp(k, "region"))
            rc = parse_object(ctx, item, k, region_fields, N(region_fields),
                              conf);
        else if (!strcmp(k, "usage"))
            rc =
                parse_object(ctx, item, k, usage_fields, N(usage_fields), conf);
        else if (!strcmp(k, "instances"))
            rc = parse_instances(ctx, conf, item);
        else if (!strcmp(k, "subscriptions"))
            rc = parse_subscriptions(ctx, conf, item);
        else if (!strcmp(k, "routes"))
            rc = 0; /* after instances, whatever the key order */
        else {
            size_t i;
            for (i = 0; i < N(top_fields); i++)
                if (!strcmp(top_fields[i].key, k))
                    break;
            if (i == N(top_fields))
                return fail(ctx, k, "unknown key");
            rc = parse_field(ctx, &top_fields[i], item, k, conf);
        }
        if (rc)
            return -1;
    }
    return 0;
}

/* A park topic consumed by a route, shared by two destinations or used for
 * dead letters would mix events that must stay apart. */
static int check_park_topics(parse_ctx_t *ctx, const es_config_t *conf)
{
    for (size_t i = 0; i < conf->instance_count; i++) {
        const es_instance_conf_t *ic = &conf->instances[i];
        if (!ic->park.enabled)
            continue;
        char path[300];
        snprintf(path, sizeof path, "instances.%s.park.topic", ic->name);
        const char *t = ic->park.topic;
        if (!es_topic_name_valid(t))
            return fail(ctx, path, "\"%.64s\" %s", t, ES_TOPIC_NAME_RULE);
        if (!strcmp(t, conf->dead_letter_topic))
            return fail(ctx, path, "\"%s\" is the dead-letter topic", t);
        for (size_t k = 0; k < i; k++)
            if (conf->instances[k].park.enabled &&
                !strcmp(conf->instances[k].park.topic, t))
                return fail(ctx, path,
                            "\"%s\" is also instance %s's park "
                            "topic",
                            t, conf->instances[k].name);
        for (size_t r = 0; r < conf->route_count; r++)
            for (size_t k = 0; k < conf->routes[r].topics.n; k++)
                if (!strcmp(conf->routes[r].topics.v[k], t))
                    return fail(ctx, path, "\"%s\" is consumed by route \"%s\"",
                                t, conf->routes[r].name);
    }
    return 0;
}

static int validate(parse_ctx_t *ctx, es_config_t *conf)
{
    if (!conf->brokers)
        return fail(ctx, "kafka.brokers",
                    "is required (\"embedded\" or host:port,...)");
    if (!es_topic_name_valid(conf->dead_letter_topic))
        return fail(ctx, "dead_letter_topic", "\"%.64s\" %s",
                    conf->dead_letter_topic, ES_TOPIC_NAME_RULE);
    if (conf->kafka_properties &&
        check_kafka_properties(ctx, conf->kafka_properties))
        return -1;
    if (!conf->api_tls_cert != !conf->api_tls_key)
        return fail(ctx, conf->api_tls_cert ? "api.tls_key" : "api.tls_cert",
                    "is required when the other TLS file is set");
    if (conf->api_token && conf->api_token_file)
        return fail(ctx, "api.token_file",
                    "give either api.token or api.token_file, not both");
    int unreadable =
        conf->region_ca_file ? es_file_unreadable(conf->region_ca_file) : 0;
    if (unreadable)
        return fail(ctx, "region.ca_file", "%s: %s", conf->region_ca_file,
                    strerror(unreadable));
    if (conf->region_unknown && strcmp(conf->region_unknown, "forward") &&
        strcmp(conf->region_unknown, "skip"))
        return fail(ctx, "region.unknown_tenant",
                    "must be \"forward\" or \"skip\", not \"%s\"",
                    conf->region_unknown);
    if (conf->retry_max_backoff_ms < conf->retry_initial_backoff_ms)
        return fail(ctx, "retry.max_backoff_ms",
                    "must not be below retry.initial_backoff_ms");
    const cJSON *routes =
        cJSON_GetObjectItemCaseSensitive(conf->root, "routes");
    if (!routes)
        return fail(ctx, "routes", "is required");
    return parse_routes(ctx, conf, routes) || check_park_topics(ctx, conf);
}

static void json_error_position(const char *text, const char *at, int *line,
                                int *col)
{
    *line = 1;
    *col = 1;
    for (const char *p = text; p < at && *p; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* ----------------------------------------- ${NAME} in string values */

/* Appends n bytes of s to the growing string *out. */
static int append(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t want = (*len + n + 1) * 2;
        char *grown = realloc(*out, want);
        if (!grown)
            return -1;
        *out = grown;
        *cap = want;
    }
    memcpy(*out + *len, s, n);
    *len += n;
    (*out)[*len] = '\0';
    return 0;
}

/* The value of one reference "${...}" at ref (end at its "}"): the
 * variable, else the ":-" default (also for an empty variable), copied to
 * dflt. NULL with why when the name is not one or the variable is not
 * set. */
static const char *env_value(const char *ref, const char *end, char *dflt,
                             size_t dflt_size, char *why, size_t n)
{
    const char *name = ref + 2, *p = name;
    while (p < end &&
           (*p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
            (p > name && *p >= '0' && *p <= '9')))
        p++;
    int has_default = p + 1 < end && p[0] == ':' && p[1] == '-';
    if (p == name || (p != end && !has_default)) {
        snprintf(why, n,
                 "%.*s: not an environment variable's name (letters, digits "
                 "and _, not a digit first; \"${NAME:-default}\" for a "
                 "default; \"$${\" for a literal \"${\")",
                 (int)(end - ref + 1), ref);
        return NULL;
    }
    char var[256];
    snprintf(var, sizeof var, "%.*s", (int)(p - name), name);
    const char *v = getenv(var);
    if (has_default && (!v || !*v)) {
        if ((size_t)(end - p - 2) >= dflt_size) {
            snprintf(why, n, "${%s:-...}: the default is over %zu bytes", var,
                     dflt_size - 1);
            return NULL;
        }
        snprintf(dflt, dflt_size, "%.*s", (int)(end - p - 2), p + 2);
        return dflt;
    }
    if (!v)
        snprintf(why, n, "${%s} is not set in the environment", var);
    return v;
}

/* s with each ${NAME} (or ${NAME:-default}) replaced and "$${" made a
 * literal "${": malloc'd, or NULL with why. */
static char *expand_env(const char *s, char *why, size_t n)
{
    size_t len = 0, cap = strlen(s) + 1;
    char *out = calloc(1, cap);
    while (out && *s) {
        int literal = s[0] == '$' && s[1] == '$' && s[2] == '{';
        int ref = s[0] == '$' && s[1] == '{';
        const char *end = ref ? strchr(s, '}') : NULL;
        const char *v = NULL;
        char dflt[1024];
        if (ref && !end)
            snprintf(why, n, "\"%.20s\": \"${\" without a closing \"}\"", s);
        else if (ref)
            v = env_value(s, end, dflt, sizeof dflt, why, n);
        if (ref && !v) {
            free(out);
            return NULL;
        }
        int bad = literal ? append(&out, &len, &cap, "${", 2)
                  : ref   ? append(&out, &len, &cap, v, strlen(v))
                          : append(&out, &len, &cap, s, 1);
        if (bad) {
            snprintf(why, n, "out of memory");
            free(out);
            return NULL;
        }
        s = literal ? s + 3 : ref ? end + 1 : s + 1;
    }
    if (!out)
        snprintf(why, n, "out of memory");
    return out;
}

/* Expands the string values of node (any depth) in place; the first
 * error is a config error naming its key. */
static int expand_env_tree(parse_ctx_t *ctx, cJSON *node, const char *path)
{
    int i = 0;
    for (cJSON *it = node->child; it; it = it->next, i++) {
        char at[512], why[512];
        if (cJSON_IsArray(node))
            snprintf(at, sizeof at, "%s[%d]", path, i);
        else
            join_path(at, sizeof at, path, it->string);
        if (cJSON_IsObject(it) || cJSON_IsArray(it)) {
            if (expand_env_tree(ctx, it, at))
                return -1;
            continue;
        }
        if (!cJSON_IsString(it) || !strchr(it->valuestring, '$'))
            continue;
        char *v = expand_env(it->valuestring, why, sizeof why);
        if (!v)
            return fail(ctx, at, "%s", why);
        int ok = cJSON_SetValuestring(it, v) != NULL;
        free(v);
        if (!ok)
            return fail(ctx, at, "out of memory");
    }
    return 0;
}

/* The text's digest and the time it was loaded. */
static void stamp(es_config_t *conf, const char *text)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)text, strlen(text), md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(conf->sha256 + 2 * i, 3, "%02x", md[i]);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(conf->loaded_at, sizeof conf->loaded_at, "%Y-%m-%dT%H:%M:%SZ",
             &tm);
}

es_config_t *es_config_parse(const char *text, const char *path, char *errstr,
                             size_t errstr_size)
{
    parse_ctx_t ctx = {path, errstr, errstr_size};
    es_config_t *conf = calloc(1, sizeof *conf);
    conf->path = strdup(path);
    set_defaults(conf);
    stamp(conf, text);
    const char *end = NULL;
    conf->root = cJSON_ParseWithOpts(text, &end, 1);
    if (!conf->root) {
        int line, col;
        json_error_position(text, end ? end : cJSON_GetErrorPtr(), &line, &col);
        snprintf(errstr, errstr_size, "%s: line %d, column %d: invalid JSON",
                 path, line, col);
        goto fail;
    }
    if (!cJSON_IsObject(conf->root)) {
        fail(&ctx, "", "the config must be a JSON object");
        goto fail;
    }
    char twice[512];
    if (es_json_repeated_key(conf->root, "", twice, sizeof twice)) {
        fail(&ctx, twice, "is given twice in its object");
        goto fail;
    }
    /* As written, for GET /v1/config; then with the environment's values */
    conf->written = cJSON_Duplicate(conf->root, 1);
    if (!conf->written) {
        fail(&ctx, "", "out of memory");
        goto fail;
    }
    if (expand_env_tree(&ctx, conf->root, "") || parse_top(&ctx, conf) ||
        validate(&ctx, conf))
        goto fail;
    return conf;
fail:
    es_config_destroy(conf);
    return NULL;
}

es_config_t *es_config_load(const char *path, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, errstr_size, "%s: cannot open: %s", path,
                 strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(errstr, errstr_size, "%s: cannot read: %s", path,
                 strerror(EISDIR));
        fclose(f);
        return NULL;
    }
    size_t cap = 65536, len = 0, n;
    char *text = malloc(cap), *grown;
    while (text && (n = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            grown = realloc(text, cap *= 2);
            if (!grown)
                free(text);
            text = grown;
        }
    }
    fclose(f);
    if (!text) {
        snprintf(errstr, errstr_size, "%s: out of memory reading it", path);
        return NULL;
    }
    text[len] = '\0';
    es_config_t *conf = es_config_parse(text, path, errstr, errstr_size);
    free(text);
    return conf;
}

static void strv_free(es_strv_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

void es_config_destroy(es_config_t *conf)
{
    if (!conf)
        return;
    for (size_t i = 0; i < conf->instance_count; i++) {
        free(conf->instances[i].name);
        free(conf->instances[i].plugin);
        free(conf->instances[i].park.topic);
        free(conf->instances[i].park.group);
    }
    free(conf->instances);
    for (size_t i = 0; i < conf->route_count; i++) {
        es_route_conf_t *r = &conf->routes[i];
        free(r->name);
        free(r->group);
        free(r->format);
        strv_free(&r->topics);
        strv_free(&r->tenant);
        strv_free(&r->filters);
        strv_free(&r->destinations);
    }
    free(conf->routes);
    free(conf->brokers);
    free(conf->group_id);
    free(conf->plugin_dir);
    free(conf->state_dir);
    free(conf->dead_letter_topic);
    free(conf->topics_dir);
    free(conf->sub_scripts_dir);
    free(conf->api_listen);
    free(conf->api_token);
    free(conf->api_token_file);
    free(conf->api_tls_cert);
    free(conf->api_tls_key);
    free(conf->region_name);
    free(conf->region_map);
    free(conf->region_unknown);
    free(conf->region_ca_file);
    free(conf->path);
    cJSON_Delete(conf->root);
    cJSON_Delete(conf->written);
    free(conf);
}

const es_instance_conf_t *es_config_instance(const es_config_t *conf,
                                             const char *name)
{
    for (size_t i = 0; i < conf->instance_count; i++)
        if (conf->instances[i].name && !strcmp(conf->instances[i].name, name))
            return &conf->instances[i];
    return NULL;
}

const es_route_conf_t *es_config_route(const es_config_t *conf,
                                       const char *name)
{
    for (size_t i = 0; i < conf->route_count; i++)
        if (!strcmp(conf->routes[i].name, name))
            return &conf->routes[i];
    return NULL;
}
