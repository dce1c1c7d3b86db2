/*
 * Internals of the Avro decoder shared by its source files.
 *
 * libavro 1.11 parses schemas and decodes values but knows nothing of
 * logical types and allocates a string's or bytes' declared length before
 * checking it against the input. So each schema is also parsed into a
 * "shape" (our own tree of the same schema, with logical types), used to
 * pre-validate a value's bytes before libavro reads them and to map the
 * decoded libavro value to JSON.
 */
#ifndef ES_AVRO_INT_H
#define ES_AVRO_INT_H

#include <stddef.h>
#include <stdint.h>

#include <avro.h>
#include <cjson/cJSON.h>

typedef enum es_avro_kind_e {
    EA_NULL = 1,
    EA_BOOLEAN,
    EA_INT,
    EA_LONG,
    EA_FLOAT,
    EA_DOUBLE,
    EA_BYTES,
    EA_STRING,
    EA_RECORD,
    EA_ENUM,
    EA_ARRAY,
    EA_MAP,
    EA_UNION,
    EA_FIXED,
} es_avro_kind_t;

typedef enum es_avro_logical_e {
    EL_NONE = 0,
    EL_DECIMAL,
    EL_DATE,
    EL_TIME_MILLIS,
    EL_TIME_MICROS,
    EL_TS_MILLIS,
    EL_TS_MICROS,
    EL_LOCAL_TS_MILLIS,
    EL_LOCAL_TS_MICROS,
    EL_DURATION,
} es_avro_logical_t;

typedef struct es_avro_node_s es_avro_node_t;
struct es_avro_node_s {
    es_avro_kind_t kind;
    es_avro_logical_t logical;
    int precision, scale;   /* decimal */
    size_t count;           /* record fields, enum symbols, union branches */
    int64_t size;           /* fixed */
    es_avro_node_t **child; /* fields, branches, or child[0] = items/values */
    char **names;           /* field names or enum symbols */
    char *fullname;         /* named types */
    int min_size;           /* fewest bytes a value can take; -1 = unknown */
    es_avro_node_t *next_alloc;
};

typedef struct es_avro_shape_s {
    es_avro_node_t *root;
    es_avro_node_t *all; /* every node, for freeing */
} es_avro_shape_t;

typedef struct es_avro_limits_s {
    size_t max_items;
    int max_depth;
} es_avro_limits_t;

/* Parses a schema's JSON text into a shape. 0, or -1 with errstr. */
int es_avro_shape_parse(const char *json, size_t len, es_avro_shape_t **out,
                        char *errstr, size_t errstr_size);
void es_avro_shape_destroy(es_avro_shape_t *shape);

/*
 * Checks that buf[0..len) is exactly one value of the shape: no truncation,
 * no trailing bytes, lengths and counts within the input and the limits,
 * union and enum indexes in range, strings valid UTF-8. `base` is added to
 * reported byte offsets (the wire-format header length). 0 when fine, -1
 * with a precise reason.
 */
int es_avro_shape_check(const es_avro_shape_t *shape, const void *buf,
                        size_t len, size_t base, const es_avro_limits_t *lim,
                        char *reason, size_t reason_size);

/* Maps a decoded libavro value of the shape to JSON (see docs/avro.md).
 * NULL with reason on failure. */
cJSON *es_avro_to_json(const es_avro_node_t *node, avro_value_t *value,
                       char *reason, size_t reason_size);

/* Registry client. */
typedef struct es_avro_registry_s {
    char *url; /* without trailing slash */
    char *username;
    char *password;
    char *ca_file;
    int verify;
    long connect_timeout_ms;
    long timeout_ms;
} es_avro_registry_t;

/*
 * Fetches the Avro schema text of `id`. Returns 1 (OK) with *schema_json a
 * malloc'd NUL-terminated string, 2 (RETRY) when the registry cannot answer
 * now, 3 (FAIL) when it says the id does not exist or is not Avro.
 */
int es_avro_registry_fetch(const es_avro_registry_t *reg, int32_t id,
                           char **schema_json, char *reason,
                           size_t reason_size);

#endif /* ES_AVRO_INT_H */
