#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/es_base64.h"
#include "internal/es_json_edit.h"
#include "topic_test.h"

/* Headers of the sample record: {"name": "string value", ...}. */
static const char *parse_headers(es_topic_test_t *t, const cJSON *h)
{
    if (!h)
        return NULL;
    if (!cJSON_IsObject(h))
        return "\"headers\" must be an object of string values";
    t->headers = calloc((size_t)cJSON_GetArraySize(h) + 1, sizeof *t->headers);
    if (!t->headers)
        return "out of memory";
    const cJSON *it;
    cJSON_ArrayForEach(it, h)
    {
        if (!cJSON_IsString(it))
            return "\"headers\" must be an object of string values";
        t->headers[t->q.nh++] =
            (es_header_t){it->string, it->valuestring, strlen(it->valuestring)};
    }
    t->q.headers = t->headers;
    return NULL;
}

/* The wrapped form's options: key, deliver_to, timeout_ms. */
static const char *parse_options(es_topic_test_t *t)
{
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(t->body, "key");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(t->body, "deliver_to");
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(t->body, "timeout_ms");
    if (key && !cJSON_IsString(key))
        return "\"key\" must be a string";
    if (key) {
        t->q.key = key->valuestring;
        t->q.key_len = strlen(key->valuestring);
    }
    if (to && !cJSON_IsString(to))
        return "\"deliver_to\" must be an instance name";
    if (to)
        t->q.deliver_to = to->valuestring;
    if (tm &&
        (!cJSON_IsNumber(tm) || tm->valuedouble < 1 || tm->valuedouble > 60000))
        return "\"timeout_ms\" must be a number from 1 to 60000";
    if (tm)
        t->q.timeout_ms = (int)tm->valuedouble;
    return parse_headers(t,
                         cJSON_GetObjectItemCaseSensitive(t->body, "headers"));
}

static int is_wrapped(const cJSON *body)
{
    return cJSON_IsObject(body) &&
           !cJSON_GetObjectItemCaseSensitive(body, "specversion") &&
           (cJSON_GetObjectItemCaseSensitive(body, "value") ||
            cJSON_GetObjectItemCaseSensitive(body, "value_base64"));
}

static const char *own_bytes(es_topic_test_t *t, const char *at, size_t n)
{
    if (!(t->value = malloc(n + 1)))
        return "out of memory";
    memcpy(t->value, at, n);
    t->value[n] = '\0';
    t->q.value = t->value;
    t->q.len = n;
    return NULL;
}

/* The record value: "value_base64" (binary, e.g. Avro), "value" (a string
 * as is, else the JSON text), or the whole body. `err` holds a reason
 * that is not a constant. */
static const char *parse_value(es_topic_test_t *t, const char *body, size_t len,
                               int wrapped, char *err, size_t err_size)
{
    const cJSON *b64 =
        cJSON_GetObjectItemCaseSensitive(t->body, "value_base64");
    const cJSON *value =
        wrapped ? cJSON_GetObjectItemCaseSensitive(t->body, "value") : t->body;
    if (wrapped && b64) {
        char why[96];
        size_t n = 0;
        if (value)
            return "give either \"value\" or \"value_base64\", not both";
        if (!cJSON_IsString(b64))
            return "\"value_base64\" must be a base64 string";
        t->value = (char *)es_base64_decode(
            b64->valuestring, strlen(b64->valuestring), &n, why, sizeof why);
        if (!t->value) {
            snprintf(err, err_size, "\"value_base64\" is not base64: %s", why);
            return err;
        }
        t->q.value = t->value;
        t->q.len = n;
        return NULL;
    }
    if (cJSON_IsString(value))
        return own_bytes(t, value->valuestring, strlen(value->valuestring));
    /* The bytes as sent, not cJSON's reprint (its numbers are doubles):
     * the whole body, or the wrapped value's own bytes. */
    const char *at = body;
    size_t n = len;
    if (wrapped && es_json_member_text(body, len, "value", &at, &n) != 0)
        return "\"value\" not found in the body text";
    return own_bytes(t, at, n);
}

int es_topic_test_parse(es_topic_test_t *t, const char *topic, const char *body,
                        size_t len, const char *deliver_to, char *err,
                        size_t err_size)
{
    memset(t, 0, sizeof *t);
    t->q.topic = topic;
    t->q.deliver_to = deliver_to;
    t->q.timeout_ms = 10000;
    const char *end = NULL;
    t->body = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!t->body) {
        snprintf(err, err_size, "request body is not valid JSON (at byte %zu)",
                 end ? (size_t)(end - body) : (size_t)0);
        return -1;
    }
    int wrapped = is_wrapped(t->body);
    const char *why = wrapped ? parse_options(t) : NULL;
    if (!why)
        why = parse_value(t, body, len, wrapped, err, err_size);
    if (why && why != err)
        snprintf(err, err_size, "%s", why);
    return why ? -1 : 0;
}

void es_topic_test_clear(es_topic_test_t *t)
{
    cJSON_Delete(t->body);
    free(t->value);
    free(t->headers);
    memset(t, 0, sizeof *t);
}
