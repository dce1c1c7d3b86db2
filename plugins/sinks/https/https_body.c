/*
 * Request payloads: CloudEvents HTTP binding (binary mode headers and body),
 * gzip, Standard Webhooks signatures and small parsing helpers.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zlib.h>

#include "https.h"
#include "internal/es_base64.h"
#include "internal/es_json_edit.h"
#include "internal/es_json_int.h"

int hs_buf_append(hs_buf_t *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

size_t hs_buf_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    return hs_buf_append(ud, ptr, size * nmemb) == 0 ? size * nmemb : 0;
}

void hs_buf_free(hs_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *hs_pct_encode(const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(len * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '%') {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    *o = '\0';
    return out;
}

int hs_decode_secret(const char *secret, hs_key_t *out)
{
    if (strncmp(secret, "whsec_", 6) == 0)
        secret += 6;
    char why[96]; /* not shown: it could quote the secret */
    out->key =
        es_base64_decode(secret, strlen(secret), &out->len, why, sizeof why);
    if (!out->key || out->len == 0) {
        free(out->key);
        out->key = NULL;
        return -1;
    }
    return 0;
}

char *hs_sign(const hs_key_t *keys, size_t key_count, const char *msg_id,
              long long timestamp, const char *body, size_t body_len)
{
    char prefix[64];
    int plen = snprintf(prefix, sizeof(prefix), ".%lld.", timestamp);
    size_t id_len = strlen(msg_id);
    hs_buf_t msg = {0};
    char *out = malloc(key_count * 48 + 1);
    if (!out || hs_buf_append(&msg, msg_id, id_len) != 0 ||
        hs_buf_append(&msg, prefix, (size_t)plen) != 0 ||
        hs_buf_append(&msg, body, body_len) != 0) {
        free(out);
        hs_buf_free(&msg);
        return NULL;
    }
    char *o = out;
    for (size_t i = 0; i < key_count; i++) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        HMAC(EVP_sha256(), keys[i].key, (int)keys[i].len,
             (const unsigned char *)msg.data, msg.len, mac, &mac_len);
        if (i)
            *o++ = ' ';
        memcpy(o, "v1,", 3);
        o += 3;
        o += EVP_EncodeBlock((unsigned char *)o, mac, (int)mac_len);
    }
    *o = '\0';
    hs_buf_free(&msg);
    return out;
}

int hs_gzip(const char *in, size_t in_len, int level, char **out,
            size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    /* 15 window bits + 16 selects the gzip wrapper */
    if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return -1;
    size_t cap = deflateBound(&zs, (uLong)in_len) + 32;
    char *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&zs);
        return -1;
    }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)in_len;
    zs.next_out = (Bytef *)buf;
    zs.avail_out = (uInt)cap;
    int rc = deflate(&zs, Z_FINISH);
    *out_len = zs.total_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}

long long hs_parse_retry_after(const char *value, long long now_epoch_s)
{
    while (*value == ' ' || *value == '\t')
        value++;
    if (isdigit((unsigned char)*value)) {
        char *end;
        long long v = strtoll(value, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        return *end ? -1 : v;
    }
    time_t t = curl_getdate(value, NULL);
    if (t == (time_t)-1)
        return -1;
    return t > now_epoch_s ? (long long)t - now_epoch_s : 0;
}

void hs_excerpt(const char *s, size_t len, size_t max, char *out,
                size_t out_size)
{
    size_t n = 0;
    for (size_t i = 0; i < len && i < max && n + 1 < out_size; i++) {
        unsigned char c = (unsigned char)s[i];
        out[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : ' ';
    }
    if (len > max && n + 4 < out_size) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

static int add_header(struct curl_slist **list, const char *name,
                      const char *value, size_t value_len, int encode)
{
    char *v =
        encode ? hs_pct_encode(value, value_len) : strndup(value, value_len);
    if (!v)
        return -1;
    size_t len = strlen(name) + strlen(v) + 3;
    char *line = malloc(len);
    if (!line) {
        free(v);
        return -1;
    }
    /* "Name:" with nothing after the colon makes curl drop that header */
    snprintf(line, len, *v ? "%s: %s" : "%s:%s", name, v);
    free(v);
    struct curl_slist *nl = curl_slist_append(*list, line);
    free(line);
    if (!nl)
        return -1;
    *list = nl;
    return 0;
}

/* The data member as HTTP body bytes, per the JSON event format rules. */
static int binary_body(const cJSON *ce, const char *json, size_t json_len,
                       const char *content_type, char **body, size_t *body_len,
                       char *errstr, size_t n)
{
    const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(ce, "data_base64");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(ce, "data");
    *body = NULL;
    *body_len = 0;
    if (cJSON_IsString(b64)) {
        char why[96];
        *body =
            (char *)es_base64_decode(b64->valuestring, strlen(b64->valuestring),
                                     body_len, why, sizeof why);
        if (!*body) {
            snprintf(errstr, n, "data_base64 is not base64: %s", why);
            return -1;
        }
        return 0;
    }
    if (!data || cJSON_IsNull(data)) {
        *body = strdup("");
        return *body ? 0 : -1;
    }
    int json_ct = !content_type || strstr(content_type, "json") != NULL;
    if (cJSON_IsString(data) && !json_ct) {
        *body = strdup(data->valuestring);
        *body_len = strlen(data->valuestring);
        return *body ? 0 : -1;
    }
    /* The data's own bytes: cJSON's reprint holds numbers as doubles. */
    const char *text;
    size_t text_len;
    if (es_json_member_text(json, json_len, "data", &text, &text_len) != 0) {
        snprintf(errstr, n, "the event's text has no data member");
        return -1;
    }
    *body = malloc(text_len + 1);
    if (!*body)
        return -1;
    memcpy(*body, text, text_len);
    (*body)[text_len] = '\0';
    *body_len = text_len;
    return 0;
}

int hs_binary_encode(const cJSON *ce, const char *json, size_t json_len,
                     struct curl_slist **headers, char **body, size_t *body_len,
                     char *errstr, size_t errstr_size)
{
    const cJSON *a;
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(ce, "datacontenttype");
    const char *content_type = cJSON_IsString(ct) ? ct->valuestring : NULL;
    cJSON_ArrayForEach(a, ce)
    {
        char name[160], num[64];
        const char *v = NULL;
        if (strcmp(a->string, "data") == 0 ||
            strcmp(a->string, "data_base64") == 0 ||
            strcmp(a->string, "datacontenttype") == 0)
            continue;
        if (cJSON_IsString(a)) {
            v = a->valuestring;
        } else if (cJSON_IsBool(a)) {
            v = cJSON_IsTrue(a) ? "true" : "false";
        } else if (cJSON_IsNumber(a)) {
            if (es_json_is_int(a))
                snprintf(num, sizeof(num), "%lld", (long long)a->valuedouble);
            else
                snprintf(num, sizeof(num), "%.17g", a->valuedouble);
            v = num;
        } else if (cJSON_IsNull(a)) {
            continue;
        } else {
            snprintf(errstr, errstr_size,
                     "attribute %.64s is not a scalar: binary mode cannot "
                     "carry it",
                     a->string);
            return -1;
        }
        snprintf(name, sizeof(name), "ce-%s", a->string);
        if (add_header(headers, name, v, strlen(v), 1) != 0)
            goto oom;
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(ce, "data");
    if (!content_type && data && !cJSON_IsNull(data))
        content_type = "application/json";
    if (content_type && strpbrk(content_type, "\r\n")) {
        snprintf(errstr, errstr_size, "datacontenttype contains CR or LF");
        return -1;
    }
    /* without a Content-Type, curl would claim a form upload */
    if (add_header(headers, "Content-Type", content_type ? content_type : "",
                   content_type ? strlen(content_type) : 0, 0) != 0)
        goto oom;
    return binary_body(ce, json, json_len, content_type, body, body_len, errstr,
                       errstr_size);
oom:
    snprintf(errstr, errstr_size, "out of memory");
    return -1;
}
