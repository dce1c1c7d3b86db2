/*
 * Maps a decoded libavro value to JSON for a JSON consumer: unions as the
 * plain value, bytes and fixed as base64, enums as their symbol, maps as
 * objects, timestamps as RFC 3339, dates as YYYY-MM-DD, decimals as decimal
 * strings, longs as exact integers. docs/avro.md has the full table.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "avro_int.h"
#include "internal/es_base64.h"

/* Integers beyond 2^53 do not survive a double; cJSON keeps them as raw
 * number text instead so they are printed exactly. */
#define EA_MAX_EXACT_DOUBLE 9007199254740992LL

static cJSON *exact_integer(int64_t v)
{
    char buf[24];
    if (v >= -EA_MAX_EXACT_DOUBLE && v <= EA_MAX_EXACT_DOUBLE)
        return cJSON_CreateNumber((double)v);
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    return cJSON_CreateRaw(buf);
}

static cJSON *base64(const uint8_t *p, size_t n)
{
    char *text = es_base64_encode(p, n);
    cJSON *item = text ? cJSON_CreateString(text) : NULL;
    free(text);
    return item;
}

/* Two's complement big-endian unscaled value and a scale → "-123.45". */
static cJSON *decimal(const uint8_t *p, size_t n, int scale)
{
    uint8_t mag[128];
    char digits[512], out[520];
    size_t nd = 0, o = 0;
    int neg = n > 0 && (p[0] & 0x80);
    if (n > sizeof(mag))
        return NULL;
    memcpy(mag, p, n);
    if (neg) { /* magnitude = ~x + 1 */
        int carry = 1;
        for (size_t i = n; i-- > 0;) {
            int v = (uint8_t)~mag[i] + carry;
            mag[i] = (uint8_t)v;
            carry = v >> 8;
        }
    }
    for (;;) { /* repeated division by 10, least significant digit first */
        int rem = 0, nonzero = 0;
        for (size_t i = 0; i < n; i++) {
            int cur = rem * 256 + mag[i];
            mag[i] = (uint8_t)(cur / 10);
            rem = cur % 10;
            nonzero |= mag[i];
        }
        digits[nd++] = (char)('0' + rem);
        if (!nonzero)
            break;
    }
    while ((size_t)scale >= nd) /* pad so one digit precedes the point */
        digits[nd++] = '0';
    if (neg && !(nd == 1 && digits[0] == '0'))
        out[o++] = '-';
    for (size_t i = nd; i-- > 0;) {
        out[o++] = digits[i];
        if (scale > 0 && i == (size_t)scale)
            out[o++] = '.';
    }
    out[o] = '\0';
    return cJSON_CreateString(out);
}

static void floor_divmod(int64_t v, int64_t d, int64_t *q, int64_t *r)
{
    *q = v / d;
    *r = v % d;
    if (*r < 0) {
        *r += d;
        (*q)--;
    }
}

/* Epoch milli/microseconds → RFC 3339 in UTC; out-of-range years (before
 * 0000 or after 9999) stay numbers. */
static cJSON *timestamp(int64_t v, int64_t per_sec, int local)
{
    int64_t secs, frac;
    struct tm tm;
    char buf[48];
    floor_divmod(v, per_sec, &secs, &frac);
    time_t t = (time_t)secs;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
        return exact_integer(v);
    int n = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
    if (per_sec == 1000)
        snprintf(buf + n, sizeof(buf) - (size_t)n, ".%03lld%s", (long long)frac,
                 local ? "" : "Z");
    else
        snprintf(buf + n, sizeof(buf) - (size_t)n, ".%06lld%s", (long long)frac,
                 local ? "" : "Z");
    return cJSON_CreateString(buf);
}

static cJSON *date_string(int32_t days)
{
    struct tm tm;
    char buf[24];
    time_t t = (time_t)days * 86400;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
        return cJSON_CreateNumber(days);
    snprintf(buf, sizeof(buf), "%04d-%02d-%02d", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday);
    return cJSON_CreateString(buf);
}

static cJSON *time_of_day(int64_t v, int64_t per_sec)
{
    char buf[32];
    int64_t secs, frac;
    if (v < 0 || v >= 86400 * per_sec)
        return exact_integer(v);
    floor_divmod(v, per_sec, &secs, &frac);
    snprintf(buf, sizeof(buf),
             per_sec == 1000 ? "%02d:%02d:%02d.%03lld"
                             : "%02d:%02d:%02d.%06lld",
             (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60),
             (long long)frac);
    return cJSON_CreateString(buf);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static cJSON *duration(const uint8_t *p)
{
    cJSON *o = cJSON_CreateObject();
    if (o && (!cJSON_AddNumberToObject(o, "months", le32(p)) ||
              !cJSON_AddNumberToObject(o, "days", le32(p + 4)) ||
              !cJSON_AddNumberToObject(o, "milliseconds", le32(p + 8)))) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

static cJSON *binary(const es_avro_node_t *n, const void *buf, size_t size)
{
    if (n->logical == EL_DECIMAL)
        return decimal(buf, size, n->scale);
    if (n->logical == EL_DURATION && size == 12)
        return duration(buf);
    return base64(buf, size);
}

static cJSON *from_long(const es_avro_node_t *n, int64_t v)
{
    switch (n->logical) {
    case EL_TS_MILLIS:
        return timestamp(v, 1000, 0);
    case EL_TS_MICROS:
        return timestamp(v, 1000000, 0);
    case EL_LOCAL_TS_MILLIS:
        return timestamp(v, 1000, 1);
    case EL_LOCAL_TS_MICROS:
        return timestamp(v, 1000000, 1);
    case EL_TIME_MICROS:
        return time_of_day(v, 1000000);
    default:
        return exact_integer(v);
    }
}

static cJSON *from_int(const es_avro_node_t *n, int32_t v)
{
    if (n->logical == EL_DATE)
        return date_string(v);
    if (n->logical == EL_TIME_MILLIS)
        return time_of_day(v, 1000);
    return cJSON_CreateNumber(v);
}

static cJSON *real(double d)
{
    /* JSON has no NaN or infinities. */
    return isfinite(d) ? cJSON_CreateNumber(d) : cJSON_CreateNull();
}

static cJSON *compound(const es_avro_node_t *n, avro_value_t *v, char *reason,
                       size_t reason_size)
{
    int is_record = n->kind == EA_RECORD, is_map = n->kind == EA_MAP;
    cJSON *out =
        is_record || is_map ? cJSON_CreateObject() : cJSON_CreateArray();
    size_t count = n->count;
    if (!out)
        return NULL;
    if (!is_record && avro_value_get_size(v, &count) != 0)
        goto fail;
    for (size_t i = 0; i < count; i++) {
        avro_value_t child;
        const char *key = NULL;
        cJSON *item;
        if (avro_value_get_by_index(v, i, &child, &key) != 0)
            goto fail;
        item = es_avro_to_json(is_record ? n->child[i] : n->child[0], &child,
                               reason, reason_size);
        if (!item)
            goto fail;
        if (is_record)
            key = n->names[i];
        if (key ? !cJSON_AddItemToObject(out, key, item)
                : !cJSON_AddItemToArray(out, item)) {
            cJSON_Delete(item);
            goto fail;
        }
    }
    return out;
fail:
    cJSON_Delete(out);
    return NULL;
}

cJSON *es_avro_to_json(const es_avro_node_t *n, avro_value_t *v, char *reason,
                       size_t reason_size)
{
    int32_t i32;
    int64_t i64;
    int b;
    float f;
    double d;
    const void *buf;
    const char *str;
    size_t size;
    int disc;
    avro_value_t branch;

    switch (n->kind) {
    case EA_NULL:
        return cJSON_CreateNull();
    case EA_BOOLEAN:
        return avro_value_get_boolean(v, &b) ? NULL : cJSON_CreateBool(b);
    case EA_INT:
        return avro_value_get_int(v, &i32) ? NULL : from_int(n, i32);
    case EA_LONG:
        return avro_value_get_long(v, &i64) ? NULL : from_long(n, i64);
    case EA_FLOAT:
        return avro_value_get_float(v, &f) ? NULL : real(f);
    case EA_DOUBLE:
        return avro_value_get_double(v, &d) ? NULL : real(d);
    case EA_STRING:
        return avro_value_get_string(v, &str, &size) ? NULL
                                                     : cJSON_CreateString(str);
    case EA_BYTES:
        return avro_value_get_bytes(v, &buf, &size) ? NULL
                                                    : binary(n, buf, size);
    case EA_FIXED:
        return avro_value_get_fixed(v, &buf, &size) ? NULL
                                                    : binary(n, buf, size);
    case EA_ENUM:
        if (avro_value_get_enum(v, &disc) || disc < 0 ||
            (size_t)disc >= n->count)
            return NULL;
        return cJSON_CreateString(n->names[disc]);
    case EA_UNION:
        if (avro_value_get_discriminant(v, &disc) ||
            avro_value_get_current_branch(v, &branch) || disc < 0 ||
            (size_t)disc >= n->count)
            return NULL;
        return es_avro_to_json(n->child[disc], &branch, reason, reason_size);
    case EA_RECORD:
    case EA_ARRAY:
    case EA_MAP:
        return compound(n, v, reason, reason_size);
    }
    snprintf(reason, reason_size, "unknown Avro type %d", (int)n->kind);
    return NULL;
}
