/*
 * CloudEvents Kafka protocol binding helpers for the kafka sink: topic
 * templates, the binary content mode (ce_ headers, data as the value) and
 * the small JSON reader they need. Internal to the plugin.
 */
#ifndef ES_KAFKA_SINK_BINDING_H
#define ES_KAFKA_SINK_BINDING_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include <eventstream/plugin.h>

#include "internal/es_topic_name.h"

/* ------------------------------------------------------- topic templates */

typedef enum ks_var_e {
    KS_VAR_LITERAL = 0,
    KS_VAR_TYPE,
    KS_VAR_TOPIC,
    KS_VAR_TENANT,
} ks_var_t;

typedef struct ks_seg_s {
    ks_var_t var;
    char *lit; /* KS_VAR_LITERAL only, owned */
    size_t len;
} ks_seg_t;

typedef struct ks_template_s {
    ks_seg_t *segs;
    size_t count;
    int has_vars;
} ks_template_t;

/* Kafka's own limit on topic name length. */
#define KS_TOPIC_MAX ES_TOPIC_NAME_MAX

/* Parses "orders.{tenant}.{type}"; fills errstr on an unknown placeholder,
 * an unterminated brace or (without placeholders) an invalid topic name. */
int ks_template_parse(ks_template_t *t, const char *src, char *errstr,
                      size_t errstr_size);
void ks_template_free(ks_template_t *t);

/* Expands the template for one event into out (at least KS_TOPIC_MAX + 1
 * bytes). Returns 0, or -1 with a reason naming what was missing or why
 * the result is not a valid Kafka topic name. */
int ks_template_expand(const ks_template_t *t, const es_event_t *ev, char *out,
                       size_t out_size, char *errstr, size_t errstr_size);

/* 1 when name is a legal Kafka topic name ([A-Za-z0-9._-], 1..249). */
int ks_topic_valid(const char *name, size_t len);

/* --------------------------------------------------- binary content mode */

/*
 * Adds a ce_<attr> header for every attribute of ev->ce (extensions
 * included), a content-type header from datacontenttype, and sets the record
 * value to the event's data: JSON data as its JSON text (taken verbatim from
 * ev->json, so numbers keep their exact digits), a string with a non-JSON
 * datacontenttype as its raw bytes, data_base64 decoded. *value_buf is a
 * malloc'd buffer the caller frees after producing (may be NULL when the
 * value points into the event). Returns 0, or -1 with a reason.
 */
int ks_binary_encode(const es_event_t *ev, rd_kafka_headers_t *hdrs,
                     const void **value, size_t *value_len, void **value_buf,
                     char *errstr, size_t errstr_size);

/* 1 when the media type is JSON (application/json, text/json, *+json). */
int ks_media_type_is_json(const char *media_type);

#endif
