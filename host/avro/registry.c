/*
 * Confluent-compatible schema registry client: GET {url}/schemas/ids/{id},
 * answer {"schema": "<schema JSON as a string>", "schemaType": "AVRO"}.
 * Only a 404 (or a non-Avro schema) is permanent; anything else the
 * registry or the network does is transient, so events wait for the
 * registry instead of being dead-lettered.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "avro_int.h"
#include "internal/es_curlbuf.h"
#include "es_avro.h"

/* A schema document larger than this is not a schema. */
#define EA_MAX_RESPONSE (8u << 20)

static int parse_answer(const es_curlbuf_t *b, int32_t id, char **schema_json,
                        char *reason, size_t reason_size)
{
    int rc = ES_AVRO_FAIL;
    cJSON *j = cJSON_ParseWithLength(b->data ? b->data : "", b->len);
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(j, "schema");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "schemaType");
    if (!cJSON_IsString(schema)) {
        /* A proxy's error page or a half-written answer: try again. */
        snprintf(reason, reason_size,
                 "schema registry answer for id %" PRId32
                 " has no \"schema\" string",
                 id);
        rc = ES_AVRO_RETRY;
        goto done;
    }
    if (cJSON_IsString(type) && strcmp(type->valuestring, "AVRO") != 0) {
        snprintf(reason, reason_size,
                 "schema id %" PRId32 " is a %.32s schema, not Avro", id,
                 type->valuestring);
        goto done;
    }
    if (!(*schema_json = strdup(schema->valuestring))) {
        snprintf(reason, reason_size, "out of memory");
        rc = ES_AVRO_RETRY;
        goto done;
    }
    rc = ES_AVRO_OK;
done:
    cJSON_Delete(j);
    return rc;
}

int es_avro_registry_fetch(const es_avro_registry_t *reg, int32_t id,
                           char **schema_json, char *reason, size_t reason_size)
{
    int rc = ES_AVRO_RETRY;
    char url[2048];
    char curl_err[CURL_ERROR_SIZE] = "";
    es_curlbuf_t body = {.max = EA_MAX_RESPONSE};
    long status = 0;
    struct curl_slist *hdrs = NULL;
    CURL *h = curl_easy_init();
    *schema_json = NULL;
    if (!h) {
        snprintf(reason, reason_size, "cannot create a curl handle");
        goto done;
    }
    snprintf(url, sizeof(url), "%s/schemas/ids/%" PRId32, reg->url, id);
    hdrs = curl_slist_append(hdrs,
                             "Accept: application/vnd.schemaregistry.v1+json, "
                             "application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, reg->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, reg->timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, es_curlbuf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    if (reg->username) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, reg->username);
        curl_easy_setopt(h, CURLOPT_PASSWORD,
                         reg->password ? reg->password : "");
    }
    if (reg->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, reg->ca_file);
    if (!reg->verify) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        snprintf(reason, reason_size,
                 "schema registry unreachable fetching id %" PRId32 ": %s", id,
                 body.overflow ? "answer too large"
                 : curl_err[0] ? curl_err
                               : curl_easy_strerror(cc));
        goto done;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status == 404) {
        snprintf(reason, reason_size,
                 "unknown schema id %" PRId32 " (schema registry answered "
                 "404)",
                 id);
        rc = ES_AVRO_FAIL;
        goto done;
    }
    if (status != 200) {
        snprintf(reason, reason_size,
                 "schema registry answered HTTP %ld fetching id %" PRId32,
                 status, id);
        goto done;
    }
    rc = parse_answer(&body, id, schema_json, reason, reason_size);
done:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    free(body.data);
    return rc;
}
