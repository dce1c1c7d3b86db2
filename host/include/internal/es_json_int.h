/*
 * Integers in JSON for the in-tree modules (the host's config, decoder and
 * Avro reader, the bundled plugins' configs and binary modes). Not part of
 * the plugin SDK.
 *
 * cJSON keeps every number as a double. Casting a double outside the
 * target type's range (1e300 to long) is undefined behaviour, so the
 * bounds are checked in double before the cast, here, once, instead of in
 * each reader (they did it in the wrong order, one after another).
 */
#ifndef ES_JSON_INT_H
#define ES_JSON_INT_H

#include <cjson/cJSON.h>

/* Beyond ±9e18 a double is no longer certain to fit a long long. */
#define ES_JSON_INT_LIMIT 9e18

/* 1 when v is a JSON number holding an integer from lo to hi. */
static inline int es_json_int_in(const cJSON *v, double lo, double hi)
{
    if (!cJSON_IsNumber(v))
        return 0;
    double d = v->valuedouble;
    return d >= lo && d <= hi && d >= -ES_JSON_INT_LIMIT &&
           d <= ES_JSON_INT_LIMIT && d == (double)(long long)d;
}

/* 1 when v is a JSON number holding an integer a long long keeps. */
static inline int es_json_is_int(const cJSON *v)
{
    return es_json_int_in(v, -ES_JSON_INT_LIMIT, ES_JSON_INT_LIMIT);
}

#endif
