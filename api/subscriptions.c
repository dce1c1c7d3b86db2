/*
 * /v1/subscriptions: JSON in and out; the work (validation, plugin init,
 * applying on the pipeline thread, persisting) is host/src/pipeline_subs.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "pipeline_subs.h"
#include "subscriptions.h"

static unsigned reply(unsigned status, cJSON *body, char **json)
{
    *json = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    return status;
}

static unsigned error(unsigned status, const char *message, char **json)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", message);
    return reply(status, o, json);
}

static cJSON *parse_body(const char *body, size_t len, char *errstr,
                         size_t errstr_size)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!j)
        snprintf(errstr, errstr_size,
                 "request body is not valid JSON (at byte %zu)",
                 end ? (size_t)(end - body) : (size_t)0);
    return j;
}

unsigned es_api_subscriptions(es_pipeline_t *p, const char *method,
                              const char *id, const char *tenant,
                              const char *body, size_t body_len, char **json)
{
    char err[1024] = "";
    cJSON *out = NULL;
    int st;
    if (!strcmp(method, "GET")) {
        st = es_pipeline_sub_get(p, id, tenant, &out, err, sizeof err);
    } else if (!strcmp(method, "DELETE")) {
        st = es_pipeline_sub_delete(p, id, err, sizeof err);
    } else {
        cJSON *in = parse_body(body, body_len, err, sizeof err);
        if (!in)
            return error(400, err, json);
        st = es_pipeline_sub_put(p, id, in, &out, err, sizeof err);
        cJSON_Delete(in);
    }
    if (st >= 300) {
        cJSON_Delete(out);
        return error((unsigned)st, err[0] ? err : "failed", json);
    }
    return reply((unsigned)st, out, json);
}
