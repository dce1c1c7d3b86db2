/*
 * Avro input for eventstreamd: decodes Kafka record values written in the
 * Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro
 * binary) or, for a topic with a local .avsc, plain Avro binary, and turns
 * them into CloudEvents JSON (cJSON trees) for the rest of the pipeline.
 *
 * Schemas come from a Confluent-compatible schema registry
 * (GET {url}/schemas/ids/{id}), cached per id and fetched once even when
 * many threads ask for the same id at the same time, or from local .avsc
 * files registered per topic.
 *
 * Threading: es_avro_decode and es_avro_schemas may be called from any
 * number of threads at once. es_avro_add_local_schema must be called before
 * the decoder is shared (during configuration). es_avro_destroy must be the
 * last call.
 *
 * See docs/avro.md for the JSON mapping of Avro types and the event rules.
 */
#ifndef ES_AVRO_H
#define ES_AVRO_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "eventstream/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_avro_s es_avro_t;

typedef enum es_avro_status_e {
    ES_AVRO_OK = 1,
    ES_AVRO_RETRY = 2, /* transient (registry unreachable, 5xx): back off */
    ES_AVRO_FAIL = 3,  /* permanent: dead-letter with the reason */
} es_avro_status_t;

/*
 * Creates a decoder. `config` (borrowed; may be NULL for local schemas only)
 * is the `schema_registry` object:
 *   url                 registry base URL (http or https); optional
 *   username, password  HTTP basic auth; optional
 *   ca_file             CA bundle for https; optional
 *   verify              verify the registry's TLS certificate (default true)
 *   connect_timeout_ms  default 2000
 *   timeout_ms          whole request, default 5000
 *   cache_size          schemas kept in memory, default 1000
 *   max_message_bytes   larger values are dead-lettered, default 1048576
 *   max_items           array/map elements per value, default 100000
 *   max_depth           nesting depth per value, default 64
 *   retry_hold_ms       after a transient registry failure for an id,
 *                       answer RETRY for it without asking again for this
 *                       long, default 1000 (0: ask every time)
 * Unknown keys and wrong types are errors naming the key. Returns NULL with
 * errstr filled on error.
 */
es_avro_t *es_avro_new(const cJSON *config, char *errstr, size_t errstr_size);

/* Frees the decoder and every cached schema. Accepts NULL. */
void es_avro_destroy(es_avro_t *avro);

/*
 * Declares `avsc_path` (an Avro schema JSON file) as the local schema of
 * `topic`. Values on that topic are then accepted both in the wire format
 * and as plain Avro binary (see docs/avro.md for how they are told apart).
 * Returns 0, or -1 with errstr naming the file and what is wrong.
 */
int es_avro_add_local_schema(es_avro_t *avro, const char *topic,
                             const char *avsc_path, char *errstr,
                             size_t errstr_size);

/* 1 when `topic` has a local schema, else 0. */
int es_avro_has_local_schema(const es_avro_t *avro, const char *topic);

/*
 * Decodes one Kafka record value of `topic` into a CloudEvent. On ES_AVRO_OK
 * *event_out is a new cJSON object the caller owns (cJSON_Delete). On
 * ES_AVRO_RETRY or ES_AVRO_FAIL *event_out is NULL and `reason` says what
 * went wrong (unknown magic byte, unknown schema id, registry unreachable,
 * truncated, trailing bytes, oversize length, ...). `headers` (borrowed, may
 * be NULL when header_count is 0) supply the ce_ attributes when the record
 * itself is not a CloudEvent.
 */
es_avro_status_t es_avro_decode(es_avro_t *avro, const char *topic,
                                const void *value, size_t len,
                                const es_header_t *headers, size_t header_count,
                                cJSON **event_out, char *reason,
                                size_t reason_size);

/*
 * Decodes only the Avro value (no CloudEvent assembly): *value_out is the
 * value mapped to JSON. Same statuses and reasons as es_avro_decode.
 */
es_avro_status_t es_avro_decode_value(es_avro_t *avro, const char *topic,
                                      const void *value, size_t len,
                                      cJSON **value_out, char *reason,
                                      size_t reason_size);

/*
 * The schemas in use per topic, for the admin API:
 *   {"topic": [{"source": "registry", "id": 7, "name": "ns.Order"},
 *              {"source": "local", "path": "/x/order.avsc", "name": ...}]}
 * A registry schema is listed under a topic once a value of that topic was
 * decoded with it. Returns a new object the caller owns, NULL on ENOMEM.
 */
cJSON *es_avro_schemas(es_avro_t *avro);

#ifdef __cplusplus
}
#endif

#endif /* ES_AVRO_H */
