/*
 * Internal declarations of the HTTPS sink plugin (not part of the ABI).
 * https_conf.c parses the instance config, https_body.c builds request
 * bodies and headers (CloudEvents HTTP binding, gzip, Standard Webhooks
 * signatures), https.c owns the worker thread and the libcurl multi handle.
 */
#ifndef ES_HTTPS_SINK_H
#define ES_HTTPS_SINK_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "eventstream/plugin.h"

/* The longest handshake.origin: a DNS name is at most 253 characters. */
#define HS_ORIGIN_MAX 253

typedef enum hs_mode_e {
    HS_MODE_STRUCTURED = 0,
    HS_MODE_BINARY = 1,
    HS_MODE_BATCH = 2,
} hs_mode_t;

typedef enum hs_auth_type_e {
    HS_AUTH_NONE = 0,
    HS_AUTH_BASIC = 1,
    HS_AUTH_BEARER = 2,
    HS_AUTH_OAUTH2 = 3,
} hs_auth_type_t;

typedef struct hs_key_s {
    unsigned char *key;
    size_t len;
} hs_key_t;

typedef struct hs_conf_s {
    char *url;
    char *mode_name;
    hs_mode_t mode;
    int64_t batch_max_events;
    int64_t batch_max_bytes;
    int64_t batch_max_wait_ms;
    int gzip;
    int64_t gzip_level;
    int64_t max_concurrency;
    int64_t rate_limit_rps; /* requests per second, 0 = unlimited */
    int64_t rate_limit_burst;
    int64_t connect_timeout_ms;
    int64_t timeout_ms;
    int http2;
    int64_t max_pending_events;
    int64_t response_excerpt_bytes;
    int64_t retry_after_max_s;

    char *ca_file;
    char *ca_path;
    char *client_cert;
    char *client_key;
    char *client_key_password;
    char *tls_min_version;
    int tls_insecure_skip_verify;

    char *auth_type_name;
    hs_auth_type_t auth_type;
    char *username;
    char *password;
    char *bearer_token;
    char *token_url;
    char *client_id;
    char *client_secret;
    char *scope;
    char *audience;
    int64_t token_refresh_margin_s;

    struct curl_slist *headers; /* "Name: value" from the headers object */
    char **secrets;             /* signing.secrets as configured */
    size_t secret_count;
    hs_key_t *keys;         /* decoded whsec_ keys, same order */
    char *handshake_origin; /* at most HS_ORIGIN_MAX bytes */
    int64_t handshake_interval_ms;
    int64_t handshake_rate; /* WebHook-Request-Rate to ask for; 0: none */
} hs_conf_t;

/* https_conf.c */
int hs_conf_parse(const struct cJSON *config, hs_conf_t *conf, char *errstr,
                  size_t errstr_size);
void hs_conf_free(hs_conf_t *conf);
/* "https://host:port/path" without userinfo, query or fragment, and a
 * key-like path segment masked (es_url_mask): for log lines. */
char *hs_safe_url(const char *url);

/* https_body.c */
typedef struct hs_buf_s {
    char *data;
    size_t len;
    size_t cap;
} hs_buf_t;

int hs_buf_append(hs_buf_t *b, const void *data, size_t len);
void hs_buf_free(hs_buf_t *b);
/* CURLOPT_WRITEFUNCTION appending to the hs_buf_t in userdata. */
size_t hs_buf_write_cb(char *ptr, size_t size, size_t nmemb, void *ud);

/* Percent-encodes a header value as the CloudEvents HTTP binding asks:
 * space, '"', '%' and bytes outside 0x21..0x7E. Returns malloc'd string. */
char *hs_pct_encode(const char *s, size_t len);

/* Binary mode: fills the ce- headers (with Content-Type) and the body (the
 * event's data) from a CloudEvent. Returns 0 or -1 with errstr. */
int hs_binary_encode(const struct cJSON *ce, const char *json, size_t json_len,
                     struct curl_slist **headers, char **body, size_t *body_len,
                     char *errstr, size_t errstr_size);

/* Standard Webhooks: "v1,<b64> v1,<b64>..." for each key. malloc'd. */
char *hs_sign(const hs_key_t *keys, size_t key_count, const char *msg_id,
              long long timestamp, const char *body, size_t body_len);

/* Decodes a "whsec_<base64>" (or bare base64) secret. */
int hs_decode_secret(const char *secret, hs_key_t *out);

/* gzip (RFC 1952) of in. Returns 0 or -1. */
int hs_gzip(const char *in, size_t in_len, int level, char **out,
            size_t *out_len);

/* Retry-After: delta-seconds or HTTP-date; returns seconds from now (>= 0)
 * or -1 when unparsable. */
long long hs_parse_retry_after(const char *value, long long now_epoch_s);

/* Copies at most max bytes of s into a printable single-line excerpt. */
void hs_excerpt(const char *s, size_t len, size_t max, char *out,
                size_t out_size);

#endif
