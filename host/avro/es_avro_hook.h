/*
 * Glue between the daemon's pipeline and the Avro decoder: reads the
 * `schema_registry` object and the routes' `format` / `avro_schemas`
 * settings, and decodes the records of Avro topics into the same
 * es_decoded_t the JSON decoder fills. Used only by host/src/pipeline.c.
 *
 * Threading: es_avro_hook_decode may be called from several threads.
 */
#ifndef ES_AVRO_HOOK_H
#define ES_AVRO_HOOK_H

#include <cjson/cJSON.h>

#include "eventstream/plugin.h"

/* From host/src/config.h and host/src/decode.h; declared, not included,
 * so this header does not drag the host's internals into its users. */
struct es_config_s;
struct es_decoded_s;

typedef struct es_avro_hook_s es_avro_hook_t;

/*
 * Builds the hook from the config. Sets *out to NULL when no route uses
 * Avro (nothing to do). Returns 0, or -1 with errstr "FILE: key: what".
 */
int es_avro_hook_new(const struct es_config_s *conf, es_avro_hook_t **out,
                     char *errstr, size_t errstr_size);

/* An Avro topic declared outside the routes: an onboarded topic-details.json
 * with "format": "avro" and its .avsc (docs/onboarding.md). */
typedef struct es_avro_topic_s {
    const char *topic;
    const char *avsc_path; /* its local schema */
    const char *file;      /* the topic-details.json, for messages */
} es_avro_topic_t;

/* es_avro_hook_new, plus `n` onboarded Avro topics: their records are
 * decoded as Avro whatever route reads them, with their .avsc as the local
 * schema (a route's own avro_schemas entry for the topic wins). A route that
 * says "format": "json" for one of them is an error. */
int es_avro_hook_new_with(const struct es_config_s *conf,
                          const es_avro_topic_t *topics, size_t n,
                          es_avro_hook_t **out, char *errstr,
                          size_t errstr_size);
void es_avro_hook_destroy(es_avro_hook_t *hook);

/* 1 when records of `topic` are Avro. Accepts a NULL hook. */
int es_avro_hook_wants(const es_avro_hook_t *hook, const char *topic);

/* Decodes an Avro record into *out (cleared by es_decoded_clear). Returns
 * ES_OK, ES_RETRY (schema registry unavailable: try later) or ES_FAIL,
 * with the reason filled for the last two. */
es_status_t es_avro_hook_decode(es_avro_hook_t *hook, const char *topic,
                                const void *value, size_t len,
                                const es_header_t *headers, size_t nh,
                                struct es_decoded_s *out, char *reason,
                                size_t reason_size);

/* The schemas in use per topic (see es_avro_schemas). Caller owns it. */
cJSON *es_avro_hook_schemas(es_avro_hook_t *hook);

#endif
