/*
 * HTTPS sink configuration: a table per JSON object, so every key, its type,
 * bounds and default live in one place and unknown keys are refused with
 * their full dotted name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "https.h"
#include "internal/es_file_check.h"
#include "internal/es_json_int.h"
#include "internal/es_tls_check.h"
#include "internal/es_url_mask.h"

typedef enum hs_opt_type_e {
    OPT_STRING,
    OPT_BOOL,
    OPT_INT,
    OPT_OBJECT,  /* nested table */
    OPT_HEADERS, /* object of string -> string */
    OPT_STRINGS, /* array of strings */
} hs_opt_type_t;

typedef struct hs_opt_s hs_opt_t;
struct hs_opt_s {
    const char *name;
    hs_opt_type_t type;
    size_t offset;
    int64_t min, max;
    const hs_opt_t *sub;
};

#define OFF(f) offsetof(hs_conf_t, f)
#define END                                                                    \
    {                                                                          \
        NULL, OPT_STRING, 0, 0, 0, NULL                                        \
    }

static const hs_opt_t batch_opts[] = {
    {"max_events", OPT_INT, OFF(batch_max_events), 1, 100000, NULL},
    {"max_bytes", OPT_INT, OFF(batch_max_bytes), 1024, 256 << 20, NULL},
    {"max_wait_ms", OPT_INT, OFF(batch_max_wait_ms), 0, 600000, NULL},
    END,
};

static const hs_opt_t rate_opts[] = {
    {"requests_per_s", OPT_INT, OFF(rate_limit_rps), 0, 1000000, NULL},
    {"burst", OPT_INT, OFF(rate_limit_burst), 1, 1000000, NULL},
    END,
};

static const hs_opt_t tls_opts[] = {
    {"ca_file", OPT_STRING, OFF(ca_file), 0, 0, NULL},
    {"ca_path", OPT_STRING, OFF(ca_path), 0, 0, NULL},
    {"client_cert", OPT_STRING, OFF(client_cert), 0, 0, NULL},
    {"client_key", OPT_STRING, OFF(client_key), 0, 0, NULL},
    {"client_key_password", OPT_STRING, OFF(client_key_password), 0, 0, NULL},
    {"min_version", OPT_STRING, OFF(tls_min_version), 0, 0, NULL},
    {"insecure_skip_verify", OPT_BOOL, OFF(tls_insecure_skip_verify), 0, 0,
     NULL},
    END,
};

static const hs_opt_t auth_opts[] = {
    {"type", OPT_STRING, OFF(auth_type_name), 0, 0, NULL},
    {"username", OPT_STRING, OFF(username), 0, 0, NULL},
    {"password", OPT_STRING, OFF(password), 0, 0, NULL},
    {"token", OPT_STRING, OFF(bearer_token), 0, 0, NULL},
    {"token_url", OPT_STRING, OFF(token_url), 0, 0, NULL},
    {"client_id", OPT_STRING, OFF(client_id), 0, 0, NULL},
    {"client_secret", OPT_STRING, OFF(client_secret), 0, 0, NULL},
    {"scope", OPT_STRING, OFF(scope), 0, 0, NULL},
    {"audience", OPT_STRING, OFF(audience), 0, 0, NULL},
    {"refresh_margin_s", OPT_INT, OFF(token_refresh_margin_s), 0, 86400, NULL},
    END,
};

static const hs_opt_t signing_opts[] = {
    {"secrets", OPT_STRINGS, 0, 0, 0, NULL},
    END,
};

static const hs_opt_t handshake_opts[] = {
    {"origin", OPT_STRING, OFF(handshake_origin), 0, 0, NULL},
    {"interval_ms", OPT_INT, OFF(handshake_interval_ms), 100, 3600000, NULL},
    {"rate", OPT_INT, OFF(handshake_rate), 1, 60000000, NULL},
    END,
};

static const hs_opt_t top_opts[] = {
    {"url", OPT_STRING, OFF(url), 0, 0, NULL},
    {"mode", OPT_STRING, OFF(mode_name), 0, 0, NULL},
    {"batch", OPT_OBJECT, 0, 0, 0, batch_opts},
    {"gzip", OPT_BOOL, OFF(gzip), 0, 0, NULL},
    {"gzip_level", OPT_INT, OFF(gzip_level), 1, 9, NULL},
    {"max_concurrency", OPT_INT, OFF(max_concurrency), 1, 1024, NULL},
    {"rate_limit", OPT_OBJECT, 0, 0, 0, rate_opts},
    {"connect_timeout_ms", OPT_INT, OFF(connect_timeout_ms), 1, 600000, NULL},
    {"timeout_ms", OPT_INT, OFF(timeout_ms), 1, 3600000, NULL},
    {"http2", OPT_BOOL, OFF(http2), 0, 0, NULL},
    {"max_pending_events", OPT_INT, OFF(max_pending_events), 1, 10000000, NULL},
    {"response_excerpt_bytes", OPT_INT, OFF(response_excerpt_bytes), 0, 200,
     NULL},
    {"retry_after_max_s", OPT_INT, OFF(retry_after_max_s), 0, 86400, NULL},
    {"tls", OPT_OBJECT, 0, 0, 0, tls_opts},
    {"auth", OPT_OBJECT, 0, 0, 0, auth_opts},
    {"headers", OPT_HEADERS, OFF(headers), 0, 0, NULL},
    {"signing", OPT_OBJECT, 0, 0, 0, signing_opts},
    {"handshake", OPT_OBJECT, 0, 0, 0, handshake_opts},
    END,
};

static void conf_defaults(hs_conf_t *c)
{
    memset(c, 0, sizeof(*c));
    c->mode = HS_MODE_STRUCTURED;
    c->batch_max_events = 100;
    c->batch_max_bytes = 1 << 20;
    c->batch_max_wait_ms = 50;
    c->gzip_level = 6;
    c->max_concurrency = 8;
    c->rate_limit_burst = 1;
    c->connect_timeout_ms = 5000;
    c->timeout_ms = 30000;
    c->http2 = 1;
    c->max_pending_events = 100000;
    c->response_excerpt_bytes = 200;
    c->retry_after_max_s = 300;
    c->token_refresh_margin_s = 60;
    c->handshake_interval_ms = 10000;
}

/* Header names are RFC 9110 tokens; values must not smuggle CR/LF. */
static int header_ok(const char *name, const char *value)
{
    if (!*name)
        return 0;
    for (const char *p = name; *p; p++)
        if (!strchr("!#$%&'*+-.^_`|~", *p) &&
            !((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z')))
            return 0;
    return strpbrk(value, "\r\n") == NULL;
}

static int parse_headers(const cJSON *obj, hs_conf_t *c, const char *key,
                         char *errstr, size_t n)
{
    const cJSON *h;
    cJSON_ArrayForEach(h, obj)
    {
        if (!cJSON_IsString(h)) {
            snprintf(errstr, n, "%s.%s: must be a string", key, h->string);
            return -1;
        }
        if (!header_ok(h->string, h->valuestring)) {
            snprintf(errstr, n, "%s.%s: invalid header name or value", key,
                     h->string);
            return -1;
        }
        size_t len = strlen(h->string) + strlen(h->valuestring) + 3;
        char *line = malloc(len);
        if (!line)
            return -1;
        snprintf(line, len, "%s: %s", h->string, h->valuestring);
        struct curl_slist *nl = curl_slist_append(c->headers, line);
        free(line);
        if (!nl) {
            snprintf(errstr, n, "%s: out of memory", key);
            return -1;
        }
        c->headers = nl;
    }
    return 0;
}

static int parse_secrets(const cJSON *arr, hs_conf_t *c, const char *key,
                         char *errstr, size_t n)
{
    int count = cJSON_GetArraySize(arr);
    if (count < 1) {
        snprintf(errstr, n, "%s: needs at least one secret", key);
        return -1;
    }
    c->secrets = calloc((size_t)count, sizeof(*c->secrets));
    c->keys = calloc((size_t)count, sizeof(*c->keys));
    if (!c->secrets || !c->keys)
        return -1;
    const cJSON *s;
    cJSON_ArrayForEach(s, arr)
    {
        size_t i = c->secret_count;
        if (!cJSON_IsString(s) ||
            hs_decode_secret(s->valuestring, &c->keys[i]) != 0) {
            /* never echo the value: it is a secret */
            snprintf(errstr, n,
                     "%s[%zu]: must be a string \"whsec_<base64 key>\"", key,
                     i);
            return -1;
        }
        c->secrets[i] = strdup(s->valuestring);
        c->secret_count++;
    }
    return 0;
}

static int parse_table(const cJSON *obj, const hs_opt_t *table,
                       const char *prefix, hs_conf_t *c, char *errstr, size_t n)
{
    if (!cJSON_IsObject(obj)) {
        snprintf(errstr, n, "%s: must be an object",
                 *prefix ? prefix : "config");
        return -1;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, obj)
    {
        char key[128];
        snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "",
                 item->string);
        const hs_opt_t *o = table;
        while (o->name && strcmp(o->name, item->string) != 0)
            o++;
        if (!o->name) {
            snprintf(errstr, n, "%s: unknown key", key);
            return -1;
        }
        void *field = (char *)c + o->offset;
        switch (o->type) {
        case OPT_STRING:
            if (!cJSON_IsString(item)) {
                snprintf(errstr, n, "%s: must be a string", key);
                return -1;
            }
            free(*(char **)field);
            *(char **)field = strdup(item->valuestring);
            break;
        case OPT_BOOL:
            if (!cJSON_IsBool(item)) {
                snprintf(errstr, n, "%s: must be true or false", key);
                return -1;
            }
            *(int *)field = cJSON_IsTrue(item);
            break;
        case OPT_INT: {
            double v = item->valuedouble;
            if (!es_json_int_in(item, (double)o->min, (double)o->max)) {
                snprintf(errstr, n, "%s: must be an integer from %lld to %lld",
                         key, (long long)o->min, (long long)o->max);
                return -1;
            }
            *(int64_t *)field = (int64_t)v;
            break;
        }
        case OPT_OBJECT:
            if (parse_table(item, o->sub, key, c, errstr, n) != 0)
                return -1;
            break;
        case OPT_HEADERS:
            if (!cJSON_IsObject(item)) {
                snprintf(errstr, n, "%s: must be an object", key);
                return -1;
            }
            if (parse_headers(item, c, key, errstr, n) != 0)
                return -1;
            break;
        case OPT_STRINGS:
            if (!cJSON_IsArray(item)) {
                snprintf(errstr, n, "%s: must be an array of strings", key);
                return -1;
            }
            if (parse_secrets(item, c, key, errstr, n) != 0)
                return -1;
            break;
        }
    }
    return 0;
}

static int check_auth(hs_conf_t *c, char *errstr, size_t n)
{
    static const struct {
        const char *name;
        hs_auth_type_t type;
    } types[] = {{"none", HS_AUTH_NONE},
                 {"basic", HS_AUTH_BASIC},
                 {"bearer", HS_AUTH_BEARER},
                 {"oauth2", HS_AUTH_OAUTH2}};
    if (!c->auth_type_name) {
        if (c->username || c->bearer_token || c->token_url) {
            snprintf(errstr, n, "auth.type: missing");
            return -1;
        }
        return 0;
    }
    size_t i;
    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(types[i].name, c->auth_type_name) == 0)
            break;
    if (i == sizeof(types) / sizeof(types[0])) {
        snprintf(errstr, n,
                 "auth.type: \"%s\" is not one of none, basic, bearer, "
                 "oauth2",
                 c->auth_type_name);
        return -1;
    }
    c->auth_type = types[i].type;
    const char *missing = NULL;
    if (c->auth_type == HS_AUTH_BASIC)
        missing = !c->username   ? "auth.username"
                  : !c->password ? "auth.password"
                                 : NULL;
    else if (c->auth_type == HS_AUTH_BEARER)
        missing = !c->bearer_token ? "auth.token" : NULL;
    else if (c->auth_type == HS_AUTH_OAUTH2)
        missing = !c->token_url       ? "auth.token_url"
                  : !c->client_id     ? "auth.client_id"
                  : !c->client_secret ? "auth.client_secret"
                                      : NULL;
    if (missing) {
        snprintf(errstr, n, "%s: required for auth.type \"%s\"", missing,
                 c->auth_type_name);
        return -1;
    }
    /* It goes into an Authorization header line as written (as an OAuth2
     * server's access_token does, which is held to the same). */
    if (c->bearer_token && strpbrk(c->bearer_token, "\r\n")) {
        snprintf(errstr, n, "auth.token: must not hold a line break");
        return -1;
    }
    return 0;
}

/* WebHook-Request-Origin is a DNS name ("eventemitter.example.com"): it
 * goes into a header line as written, and the receiver's
 * WebHook-Allowed-Origin is compared with it (kept up to 255 bytes). */
static int origin_ok(const char *origin)
{
    size_t len = strlen(origin);
    if (len == 0 || len > HS_ORIGIN_MAX)
        return 0;
    for (const char *p = origin; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return 0;
    return 1;
}

/* libcurl opens these only when it sends: checked here, a typo stops
 * startup instead of failing every delivery. */
static int check_tls_files(const hs_conf_t *c, char *errstr, size_t n)
{
    if (c->ca_file &&
        es_file_check_readable("tls.ca_file", c->ca_file, errstr, n))
        return -1;
    if (c->ca_path &&
        es_dir_check_readable("tls.ca_path", c->ca_path, errstr, n))
        return -1;
    if (c->client_cert &&
        es_file_check_readable("tls.client_cert", c->client_cert, errstr, n))
        return -1;
    if (c->client_key &&
        es_file_check_readable("tls.client_key", c->client_key, errstr, n))
        return -1;
    es_tls_pair_t pair = {"tls.client_cert",         c->client_cert,
                          "tls.client_key",          c->client_key,
                          "tls.client_key_password", c->client_key_password};
    return c->client_cert && c->client_key ? es_tls_pair_check(&pair, errstr, n)
                                           : 0;
}

static int check_conf(hs_conf_t *c, char *errstr, size_t n)
{
    if (!c->url) {
        snprintf(errstr, n, "url: required");
        return -1;
    }
    if (strncasecmp(c->url, "https://", 8) != 0 &&
        strncasecmp(c->url, "http://", 7) != 0) {
        snprintf(errstr, n, "url: must start with https:// (or http://)");
        return -1;
    }
    if (c->mode_name) {
        if (strcmp(c->mode_name, "structured") == 0)
            c->mode = HS_MODE_STRUCTURED;
        else if (strcmp(c->mode_name, "binary") == 0)
            c->mode = HS_MODE_BINARY;
        else if (strcmp(c->mode_name, "batch") == 0)
            c->mode = HS_MODE_BATCH;
        else {
            snprintf(errstr, n,
                     "mode: \"%s\" is not one of structured, binary, batch",
                     c->mode_name);
            return -1;
        }
    }
    if (c->tls_min_version && strcmp(c->tls_min_version, "1.0") != 0 &&
        strcmp(c->tls_min_version, "1.1") != 0 &&
        strcmp(c->tls_min_version, "1.2") != 0 &&
        strcmp(c->tls_min_version, "1.3") != 0) {
        snprintf(errstr, n,
                 "tls.min_version: must be \"1.2\" or \"1.3\" "
                 "(or \"1.0\", \"1.1\")");
        return -1;
    }
    if (!c->client_cert != !c->client_key) {
        snprintf(errstr, n, "%s: required with tls.%s",
                 c->client_cert ? "tls.client_key" : "tls.client_cert",
                 c->client_cert ? "client_cert" : "client_key");
        return -1;
    }
    if (check_tls_files(c, errstr, n))
        return -1;
    if (c->handshake_origin && !origin_ok(c->handshake_origin)) {
        snprintf(errstr, n,
                 "handshake.origin: must be a host name of 1 to %d printable "
                 "ASCII characters, no spaces",
                 HS_ORIGIN_MAX);
        return -1;
    }
    if (c->rate_limit_burst < 1)
        c->rate_limit_burst = 1;
    return check_auth(c, errstr, n);
}

int hs_conf_parse(const cJSON *config, hs_conf_t *conf, char *errstr,
                  size_t errstr_size)
{
    conf_defaults(conf);
    if (!config) {
        snprintf(errstr, errstr_size, "url: required");
        return -1;
    }
    if (parse_table(config, top_opts, "", conf, errstr, errstr_size) != 0 ||
        check_conf(conf, errstr, errstr_size) != 0) {
        hs_conf_free(conf);
        return -1;
    }
    return 0;
}

void hs_conf_free(hs_conf_t *c)
{
    if (!c)
        return;
    char **strs[] = {&c->url,
                     &c->mode_name,
                     &c->ca_file,
                     &c->ca_path,
                     &c->client_cert,
                     &c->client_key,
                     &c->tls_min_version,
                     &c->auth_type_name,
                     &c->username,
                     &c->bearer_token,
                     &c->token_url,
                     &c->client_id,
                     &c->scope,
                     &c->audience,
                     &c->handshake_origin};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
    /* secrets: wipe before freeing */
    char **secret_strs[] = {&c->password, &c->client_secret,
                            &c->client_key_password};
    for (size_t i = 0; i < 3; i++) {
        if (*secret_strs[i]) {
            memset(*secret_strs[i], 0, strlen(*secret_strs[i]));
            free(*secret_strs[i]);
            *secret_strs[i] = NULL;
        }
    }
    for (size_t i = 0; i < c->secret_count; i++) {
        memset(c->secrets[i], 0, strlen(c->secrets[i]));
        free(c->secrets[i]);
        memset(c->keys[i].key, 0, c->keys[i].len);
        free(c->keys[i].key);
    }
    free(c->secrets);
    free(c->keys);
    c->secrets = NULL;
    c->keys = NULL;
    c->secret_count = 0;
    curl_slist_free_all(c->headers);
    c->headers = NULL;
}

char *hs_safe_url(const char *url)
{
    const char *p = strstr(url, "://");
    const char *host = p ? p + 3 : url;
    const char *end = host + strcspn(host, "/?#");
    const char *at = memchr(host, '@', (size_t)(end - host));
    if (at)
        host = at + 1;
    size_t scheme_len = p ? (size_t)(p + 3 - url) : 0;
    size_t rest = strcspn(host, "?#");
    char *out = malloc(scheme_len + rest + 1);
    if (!out)
        return NULL;
    memcpy(out, url, scheme_len);
    memcpy(out + scheme_len, host, rest);
    out[scheme_len + rest] = '\0';
    /* Providers and chat webhooks put keys and tokens in the path too. */
    char *masked = es_url_mask(out);
    if (masked) {
        free(out);
        out = masked;
    }
    return out;
}
