/* The admin API's /v1/subscriptions endpoints (docs/api.md). */
#ifndef ES_API_SUBSCRIPTIONS_H
#define ES_API_SUBSCRIPTIONS_H

#include <stddef.h>

#include "pipeline.h"

/*
 * Serves one request: method GET/POST/PUT/DELETE, id NULL for the
 * collection, `tenant` the ?tenant= filter of a list (or NULL). Returns
 * the HTTP status and sets *json to the response body (malloc'd; NULL for
 * 204). Errors are {"error": "..."}.
 */
unsigned es_api_subscriptions(es_pipeline_t *p, const char *method,
                              const char *id, const char *tenant,
                              const char *body, size_t body_len, char **json);

#endif
