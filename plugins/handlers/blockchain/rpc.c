/* A small Ethereum JSON-RPC 2.0 client over HTTP(S) with libcurl. One
 * instance is used by one thread (the handler's worker). */
#include "bc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "internal/es_curlbuf.h"

/* A response larger than this is not something these calls produce. */
#define BC_RPC_MAX_RESPONSE (8u << 20)

struct bc_rpc_s {
    CURL *curl;
    struct curl_slist *headers;
    char *url;
    uint64_t next_id;
};

bc_rpc_t *bc_rpc_new(const bc_rpc_opts_t *opts, char *errstr,
                     size_t errstr_size)
{
    bc_rpc_t *rpc = calloc(1, sizeof(*rpc));
    char *auth = NULL;
    if (!rpc || !(rpc->url = strdup(opts->url)) ||
        !(rpc->curl = curl_easy_init())) {
        snprintf(errstr, errstr_size, "rpc_url: out of memory");
        goto fail;
    }
    rpc->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (opts->bearer_token) {
        size_t n = strlen(opts->bearer_token) + 32;
        auth = malloc(n);
        if (auth) {
            snprintf(auth, n, "Authorization: Bearer %s", opts->bearer_token);
            struct curl_slist *h = curl_slist_append(rpc->headers, auth);
            rpc->headers = h ? h : rpc->headers;
        }
    }
    CURL *c = rpc->curl;
    curl_easy_setopt(c, CURLOPT_URL, rpc->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, rpc->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, opts->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, opts->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, es_curlbuf_write);
    if (opts->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, opts->ca_file);
    if (auth) {
        /* The token is in the header list now; do not keep a copy. */
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    return rpc;
fail:
    bc_rpc_destroy(rpc);
    return NULL;
}

void bc_rpc_destroy(bc_rpc_t *rpc)
{
    if (!rpc)
        return;
    if (rpc->curl)
        curl_easy_cleanup(rpc->curl);
    curl_slist_free_all(rpc->headers);
    free(rpc->url);
    free(rpc);
}

/* The node's message, or `fallback` when it gave none (or an empty one):
 * a reason is never empty. */
static const char *message_or(const cJSON *msg, const char *fallback)
{
    return cJSON_IsString(msg) && msg->valuestring[0] ? msg->valuestring
                                                      : fallback;
}

/* A revert shows up as a JSON-RPC error whose data carries the revert
 * bytes: a hex string (geth, ganache 7, Web3Signer passes it through) or an
 * object with "result"/"data" (older ganache). Geth also uses code 3. */
static int error_is_revert(const cJSON *err, char *errstr, size_t n)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(err, "data");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
    const char *hex = NULL;
    if (cJSON_IsString(data))
        hex = data->valuestring;
    else if (cJSON_IsObject(data)) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(data, "result");
        if (!cJSON_IsString(r))
            r = cJSON_GetObjectItemCaseSensitive(data, "data");
        if (cJSON_IsString(r))
            hex = r->valuestring;
    }
    int revert = (hex && strncmp(hex, "0x", 2) == 0) ||
                 (cJSON_IsNumber(code) && code->valueint == 3) ||
                 (cJSON_IsString(msg) && strstr(msg->valuestring, "revert"));
    if (!revert)
        return 0;
    if (hex && strncmp(hex, "0x", 2) == 0)
        bc_abi_decode_revert(hex, errstr, n);
    else
        snprintf(errstr, n, "%s", message_or(msg, "reverted"));
    return 1;
}

bc_rpc_status_t bc_rpc_parse_response(const char *body, size_t len,
                                      const char *method, cJSON **result,
                                      char *errstr, size_t n)
{
    cJSON *doc = cJSON_ParseWithLength(body ? body : "", body ? len : 0);
    bc_rpc_status_t st = BC_RPC_TRANSIENT;
    *result = NULL;
    if (!cJSON_IsObject(doc)) {
        snprintf(errstr, n, "%s: response is not a JSON object", method);
        goto done;
    }
    cJSON *err = cJSON_GetObjectItemCaseSensitive(doc, "error");
    if (err) {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
        if (error_is_revert(err, errstr, n)) {
            st = BC_RPC_REVERT;
            goto done;
        }
        snprintf(errstr, n, "%s: node error: %s", method,
                 message_or(msg, "(no message)"));
        goto done;
    }
    /* Case-sensitive, as the detach below is: "Result" is no result. */
    if (!cJSON_GetObjectItemCaseSensitive(doc, "result")) {
        snprintf(errstr, n, "%s: response has no result", method);
        goto done;
    }
    *result = cJSON_DetachItemFromObjectCaseSensitive(doc, "result");
    st = BC_RPC_OK;
done:
    cJSON_Delete(doc);
    return st;
}

bc_rpc_status_t bc_rpc_call(bc_rpc_t *rpc, const char *method, cJSON *params,
                            cJSON **result, char *errstr, size_t errstr_size)
{
    bc_rpc_status_t st = BC_RPC_TRANSIENT;
    es_curlbuf_t body = {.max = BC_RPC_MAX_RESPONSE};
    char *req = NULL;
    cJSON *r = cJSON_CreateObject();
    *result = NULL;
    if (!r || !params || !cJSON_AddStringToObject(r, "jsonrpc", "2.0") ||
        !cJSON_AddNumberToObject(r, "id", (double)++rpc->next_id) ||
        !cJSON_AddStringToObject(r, "method", method)) {
        cJSON_Delete(params);
        snprintf(errstr, errstr_size, "%s: out of memory", method);
        goto done;
    }
    cJSON_AddItemToObject(r, "params", params);
    if (!(req = cJSON_PrintUnformatted(r))) {
        snprintf(errstr, errstr_size, "%s: out of memory", method);
        goto done;
    }
    curl_easy_setopt(rpc->curl, CURLOPT_POSTFIELDS, req);
    curl_easy_setopt(rpc->curl, CURLOPT_WRITEDATA, &body);
    CURLcode cc = curl_easy_perform(rpc->curl);
    if (cc != CURLE_OK) {
        snprintf(errstr, errstr_size, "%s: %s", method, curl_easy_strerror(cc));
        goto done;
    }
    long code = 0;
    curl_easy_getinfo(rpc->curl, CURLINFO_RESPONSE_CODE, &code);
    /* Some nodes answer a JSON-RPC error with a 4xx/5xx status: read the
     * body first, it tells a revert from an outage. */
    st = bc_rpc_parse_response(body.data, body.len, method, result, errstr,
                               errstr_size);
    if (st == BC_RPC_OK && code != 200) {
        cJSON_Delete(*result);
        *result = NULL;
        st = BC_RPC_TRANSIENT;
        snprintf(errstr, errstr_size, "%s: HTTP status %ld", method, code);
    } else if (st == BC_RPC_TRANSIENT && code != 200 && !body.len) {
        snprintf(errstr, errstr_size, "%s: HTTP status %ld", method, code);
    }
done:
    cJSON_Delete(r);
    free(req);
    free(body.data);
    return st;
}
