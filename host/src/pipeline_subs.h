/*
 * Subscriptions on the running pipeline (the admin API's /v1/subscriptions,
 * docs/api.md). Safe from any thread: plugin instances are built on the
 * calling thread, and every change to routes and consumers runs on the
 * pipeline thread (pl_call). Each call returns an HTTP status (200, 201,
 * 204, 400, 404, 409, 500, 503) and, for errors, a message in errstr.
 */
#ifndef ES_PIPELINE_SUBS_H
#define ES_PIPELINE_SUBS_H

#include <cjson/cJSON.h>

#include "pipeline.h"

/* Creates (id NULL: from the body or a new one) or replaces (PUT) a
 * subscription from a request body. *out: the stored subscription as
 * GET shows it. */
int es_pipeline_sub_put(es_pipeline_t *p, const char *id, const cJSON *body,
                        cJSON **out, char *errstr, size_t errstr_size);
int es_pipeline_sub_delete(es_pipeline_t *p, const char *id, char *errstr,
                           size_t errstr_size);
/* One subscription (id) or all of them ({"subscriptions": [...]}, only
 * `tenant`'s when non-NULL), secrets masked. */
int es_pipeline_sub_get(es_pipeline_t *p, const char *id, const char *tenant,
                        cJSON **out, char *errstr, size_t errstr_size);

#endif
