/*
 * Pipeline glue for Avro topics: config (top-level `schema_registry`, per
 * route `format: "avro"` and `avro_schemas: {topic: path.avsc}`, onboarded
 * `format: "avro"` topics with their .avsc) and the
 * conversion of a decoded event into the pipeline's es_decoded_t.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/config.h"
#include "../src/decode.h"
#include "es_avro.h"
#include "es_avro_hook.h"

struct es_avro_hook_s {
    es_avro_t *avro;
    es_strv_t topics; /* topics whose records are Avro */
};

static int topic_listed(const es_strv_t *v, const char *topic)
{
    for (size_t i = 0; i < v->n; i++)
        if (!strcmp(v->v[i], topic))
            return 1;
    return 0;
}

static int route_is_avro(const es_config_t *conf, size_t ri, int *is_avro,
                         char *errstr, size_t errstr_size)
{
    const es_route_conf_t *r = &conf->routes[ri];
    *is_avro = r->format && !strcmp(r->format, "avro");
    if (r->format && !*is_avro && strcmp(r->format, "json") != 0) {
        snprintf(errstr, errstr_size,
                 "%s: routes[%zu].format: must be \"json\" or \"avro\"",
                 conf->path, ri);
        return -1;
    }
    if (r->avro_schemas && !*is_avro) {
        snprintf(errstr, errstr_size,
                 "%s: routes[%zu].avro_schemas: needs \"format\": \"avro\"",
                 conf->path, ri);
        return -1;
    }
    return 0;
}

/* A topic is decoded once for every route that reads it, so all routes
 * must agree on its format. */
static int check_same_format(const es_config_t *conf, size_t ri, int is_avro,
                             char *errstr, size_t errstr_size)
{
    const es_route_conf_t *r = &conf->routes[ri];
    for (size_t j = 0; j < ri; j++) {
        const es_route_conf_t *o = &conf->routes[j];
        int other_avro = o->format && !strcmp(o->format, "avro");
        if (other_avro == is_avro)
            continue;
        for (size_t t = 0; t < r->topics.n; t++) {
            if (!topic_listed(&o->topics, r->topics.v[t]))
                continue;
            snprintf(errstr, errstr_size,
                     "%s: routes[%zu].format: topic \"%s\" is %s here but "
                     "%s in route \"%s\"",
                     conf->path, ri, r->topics.v[t], is_avro ? "avro" : "json",
                     other_avro ? "avro" : "json", o->name);
            return -1;
        }
    }
    return 0;
}

static int add_schemas(es_avro_hook_t *h, const es_config_t *conf, size_t ri,
                       char *errstr, size_t errstr_size)
{
    const es_route_conf_t *r = &conf->routes[ri];
    const cJSON *s;
    char err[512];
    cJSON_ArrayForEach(s, r->avro_schemas)
    {
        if (!topic_listed(&r->topics, s->string)) {
            snprintf(errstr, errstr_size,
                     "%s: routes[%zu].avro_schemas.%s: not one of the "
                     "route's topics",
                     conf->path, ri, s->string);
            return -1;
        }
        if (!cJSON_IsString(s) ||
            es_avro_add_local_schema(h->avro, s->string, s->valuestring, err,
                                     sizeof err) != 0) {
            snprintf(errstr, errstr_size, "%s: routes[%zu].avro_schemas.%s: %s",
                     conf->path, ri, s->string,
                     cJSON_IsString(s) ? err : "must be a path to an .avsc");
            return -1;
        }
    }
    return 0;
}

static int add_topics(es_avro_hook_t *h, const es_route_conf_t *r)
{
    for (size_t t = 0; t < r->topics.n; t++) {
        if (topic_listed(&h->topics, r->topics.v[t]))
            continue;
        char **v = realloc(h->topics.v, (h->topics.n + 1) * sizeof *v);
        if (!v)
            return -1;
        h->topics.v = v;
        if (!(v[h->topics.n] = strdup(r->topics.v[t])))
            return -1;
        h->topics.n++;
    }
    return 0;
}

static int hook_create(es_avro_hook_t **h, const es_config_t *conf,
                       char *errstr, size_t errstr_size)
{
    char err[512];
    if (*h)
        return 0;
    if (!(*h = calloc(1, sizeof **h))) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    if (!((*h)->avro = es_avro_new(conf->schema_registry, err, sizeof err))) {
        snprintf(errstr, errstr_size, "%s: %s", conf->path, err);
        return -1;
    }
    return 0;
}

static int add_topic_name(es_avro_hook_t *h, const char *topic)
{
    char *one[] = {(char *)topic};
    es_route_conf_t r = {.topics = {one, 1}};
    return add_topics(h, &r);
}

/* An explicit "format": "json" cannot read an onboarded Avro topic. */
static int check_onboarded(const es_config_t *conf, const es_avro_topic_t *t,
                           char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < conf->route_count; i++) {
        const es_route_conf_t *r = &conf->routes[i];
        if (r->format && !strcmp(r->format, "json") &&
            topic_listed(&r->topics, t->topic)) {
            snprintf(errstr, errstr_size,
                     "%s: routes[%zu].format: topic \"%s\" is onboarded as "
                     "avro by %s",
                     conf->path, i, t->topic, t->file);
            return -1;
        }
    }
    return 0;
}

static int add_onboarded(es_avro_hook_t **h, const es_config_t *conf,
                         const es_avro_topic_t *topics, size_t n, char *errstr,
                         size_t errstr_size)
{
    char err[512];
    for (size_t i = 0; i < n; i++) {
        if (check_onboarded(conf, &topics[i], errstr, errstr_size) ||
            hook_create(h, conf, errstr, errstr_size))
            return -1;
        if (es_avro_add_local_schema((*h)->avro, topics[i].topic,
                                     topics[i].avsc_path, err, sizeof err)) {
            snprintf(errstr, errstr_size, "%s: %s: schema: %s", conf->path,
                     topics[i].file, err);
            return -1;
        }
        if (add_topic_name(*h, topics[i].topic)) {
            snprintf(errstr, errstr_size, "out of memory");
            return -1;
        }
    }
    return 0;
}

int es_avro_hook_new_with(const es_config_t *conf,
                          const es_avro_topic_t *topics, size_t n,
                          es_avro_hook_t **out, char *errstr,
                          size_t errstr_size)
{
    es_avro_hook_t *h = NULL;
    *out = NULL;
    if (add_onboarded(&h, conf, topics, n, errstr, errstr_size))
        goto fail;
    for (size_t i = 0; i < conf->route_count; i++) {
        int is_avro;
        if (route_is_avro(conf, i, &is_avro, errstr, errstr_size) ||
            check_same_format(conf, i, is_avro, errstr, errstr_size))
            goto fail;
        if (!is_avro)
            continue;
        if (hook_create(&h, conf, errstr, errstr_size))
            goto fail;
        if (add_schemas(h, conf, i, errstr, errstr_size))
            goto fail;
        if (add_topics(h, &conf->routes[i]))
            goto oom;
    }
    if (!h && conf->schema_registry) {
        snprintf(errstr, errstr_size,
                 "%s: schema_registry: no route has \"format\": \"avro\" "
                 "and no onboarded topic is Avro",
                 conf->path);
        return -1;
    }
    *out = h;
    return 0;
oom:
    snprintf(errstr, errstr_size, "out of memory");
fail:
    es_avro_hook_destroy(h);
    return -1;
}

int es_avro_hook_new(const es_config_t *conf, es_avro_hook_t **out,
                     char *errstr, size_t errstr_size)
{
    return es_avro_hook_new_with(conf, NULL, 0, out, errstr, errstr_size);
}

void es_avro_hook_destroy(es_avro_hook_t *h)
{
    if (!h)
        return;
    es_avro_destroy(h->avro);
    for (size_t i = 0; i < h->topics.n; i++)
        free(h->topics.v[i]);
    free(h->topics.v);
    free(h);
}

int es_avro_hook_wants(const es_avro_hook_t *h, const char *topic)
{
    return h && topic_listed(&h->topics, topic);
}

es_status_t es_avro_hook_decode(es_avro_hook_t *h, const char *topic,
                                const void *value, size_t len,
                                const es_header_t *headers, size_t nh,
                                es_decoded_t *out, char *reason,
                                size_t reason_size)
{
    cJSON *ev = NULL;
    memset(out, 0, sizeof *out);
    es_avro_status_t st = es_avro_decode(h->avro, topic, value, len, headers,
                                         nh, &ev, reason, reason_size);
    if (st != ES_AVRO_OK)
        return st == ES_AVRO_RETRY ? ES_RETRY : ES_FAIL;
    /* Outgoing is JSON: the pipeline hands plugins this text. */
    if (!(out->owned_json = cJSON_PrintUnformatted(ev))) {
        cJSON_Delete(ev);
        snprintf(reason, reason_size, "out of memory");
        return ES_RETRY;
    }
    out->json = out->owned_json;
    out->json_len = strlen(out->owned_json);
    if (es_decode_validate(ev, out, reason, reason_size) != 0) {
        cJSON_Delete(ev);
        free(out->owned_json);
        memset(out, 0, sizeof *out);
        return ES_FAIL;
    }
    return ES_OK;
}

cJSON *es_avro_hook_schemas(es_avro_hook_t *h)
{
    return h ? es_avro_schemas(h->avro) : cJSON_CreateObject();
}
