/* A topic test's request: the body of POST /v1/topics/{topic}/test, and
 * each input line of `eventstreamd --dry-run TOPIC`. Either the record
 * value itself (a structured CloudEvent) or {"value": event-or-string |
 * "value_base64": "...", "key": "...", "headers": {...}, "deliver_to":
 * "instance", "timeout_ms": N}. */
#ifndef ES_TOPIC_TEST_H
#define ES_TOPIC_TEST_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "pipeline.h"

typedef struct es_topic_test_s {
    es_dry_run_t q; /* what es_pipeline_dry_run takes; points into the rest */
    cJSON *body;
    char *value;
    es_header_t *headers;
} es_topic_test_t;

/* Parses `len` bytes of `body` as a test of `topic` (borrowed, as is
 * deliver_to: the default endpoint, e.g. from ?deliver_to=, or NULL).
 * 0, or -1 with the reason in err; es_topic_test_clear either way. */
int es_topic_test_parse(es_topic_test_t *t, const char *topic, const char *body,
                        size_t len, const char *deliver_to, char *err,
                        size_t err_size);
void es_topic_test_clear(es_topic_test_t *t);

#endif
