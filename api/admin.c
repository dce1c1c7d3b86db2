#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "admin.h"
#include "internal/es_tls_check.h"
#include "log.h"
#include "metrics.h"
#include "subscriptions.h"
#include "topic_test.h"
/* The host's subscriptions module (es_sub_mask), not api/'s of that name. */
#include "../host/src/subscriptions.h"

struct es_admin_s {
    struct MHD_Daemon *mhd;
    es_pipeline_t *pipeline;
    const es_config_t *conf; /* the running config, fixed */
    char *token;             /* NULL: no authentication */
    char *cert, *key;
    /* Each connection has a thread; the handlers (but the probes) take
     * this lock, so they run one at a time as they were written to. */
    pthread_mutex_t lock;
    es_admin_reload_fn reload;
};

/* Connections served at once (each has a thread). */
#define MAX_CONNECTIONS 64

#define MAX_BODY (1 << 20)

/* One request: the uploaded body, gathered across callbacks. */
typedef struct request_s {
    char *body;
    size_t len;
    int too_large;
} request_t;

/* What a handler gets: the path parameter ({topic}) and the body. */
typedef struct call_s {
    const char *param;
    const char *body;
    size_t body_len;
    const char *method;
} call_t;

typedef struct route_s {
    const char *method;
    const char *path; /* a segment "{x}" matches one non-empty segment */
    int public;       /* no token needed: liveness and readiness probes */
    /* Not run under the lock the other calls take: handlers that touch
     * nothing but thread-safe state (an atomic, the metrics' own lock),
     * and the topic test, which takes it for all but the wait of a real
     * delivery (up to its timeout_ms, a minute at most). */
    int concurrent;
    enum MHD_Result (*handle)(es_admin_t *a, struct MHD_Connection *c,
                              const call_t *call);
} route_t;

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status,
                                 const char *type, char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status,
                                 cJSON *body)
{
    char *s = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    return send_text(c, status, "application/json", s);
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status,
                                  const char *message)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", message);
    return send_json(c, status, o);
}

static enum MHD_Result get_health(es_admin_t *a, struct MHD_Connection *c,
                                  const call_t *call)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    return send_json(c, MHD_HTTP_OK, o);
}

static enum MHD_Result get_ready(es_admin_t *a, struct MHD_Connection *c,
                                 const call_t *call)
{
    int ready = es_pipeline_ready(a->pipeline);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ready", ready);
    cJSON_AddStringToObject(
        o, "reason",
        ready ? "all consumer groups joined"
              : "waiting for consumer groups to join or rejoin");
    return send_json(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, o);
}

static enum MHD_Result get_metrics(es_admin_t *a, struct MHD_Connection *c,
                                   const call_t *call)
{
    return send_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4",
                     es_metrics_prometheus());
}

static enum MHD_Result get_topics(es_admin_t *a, struct MHD_Connection *c,
                                  const call_t *call)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "topics",
                          es_topics_list_json(es_pipeline_topics(a->pipeline)));
    return send_json(c, MHD_HTTP_OK, o);
}

static enum MHD_Result get_schemas(es_admin_t *a, struct MHD_Connection *c,
                                   const call_t *call)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(
        o, "schemas", es_topics_schemas_json(es_pipeline_topics(a->pipeline)));
    return send_json(c, MHD_HTTP_OK, o);
}

static enum MHD_Result get_schema(es_admin_t *a, struct MHD_Connection *c,
                                  const call_t *call)
{
    cJSON *s =
        es_topics_schema_json(es_pipeline_topics(a->pipeline), call->param);
    if (!s)
        return send_error(c, MHD_HTTP_NOT_FOUND,
                          "no onboarded Avro topic of that name");
    return send_json(c, MHD_HTTP_OK, s);
}

static const char *query_arg(struct MHD_Connection *c, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    return v && *v ? v : NULL;
}

/*
 * Totals without from/to/granularity; otherwise the buckets of a window:
 * granularity minute|hour|day (default hour), to default now, from default
 * to minus one day.
 */
static enum MHD_Result get_usage(es_admin_t *a, struct MHD_Connection *c,
                                 const call_t *call)
{
    es_usage_t *u = es_pipeline_usage(a->pipeline);
    const char *from = query_arg(c, "from"), *to = query_arg(c, "to");
    const char *gran = query_arg(c, "granularity");
    es_usage_query_t q = {0};
    q.tenant = query_arg(c, "tenant");
    q.topic = query_arg(c, "topic");
    q.destination = query_arg(c, "endpoint");
    if (!q.destination)
        q.destination = query_arg(c, "destination");
    if (!from && !to && !gran)
        return send_json(c, MHD_HTTP_OK,
                         es_usage_json(u, q.tenant, q.topic, q.destination));
    q.granularity = es_usage_granularity(gran ? gran : "hour");
    if (q.granularity < 0)
        return send_error(c, MHD_HTTP_BAD_REQUEST,
                          "granularity: must be minute, hour or day");
    q.to = (int64_t)time(NULL);
    if (to && es_usage_parse_time(to, &q.to))
        return send_error(c, MHD_HTTP_BAD_REQUEST,
                          "to: not an RFC 3339 time or epoch seconds");
    q.from = q.to - 86400;
    if (from && es_usage_parse_time(from, &q.from))
        return send_error(c, MHD_HTTP_BAD_REQUEST,
                          "from: not an RFC 3339 time or epoch seconds");
    if (q.from >= q.to)
        return send_error(c, MHD_HTTP_BAD_REQUEST, "from: must be before to");
    char err[512];
    cJSON *o = es_usage_window_json(u, &q, err, sizeof err);
    if (!o)
        return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, err);
    return send_json(c, MHD_HTTP_OK, o);
}

/* The body: see topic_test.h. The dry run under the lock other calls
 * take; the real delivery's wait (up to timeout_ms) without it, so they
 * are not held back. */
static enum MHD_Result post_test(es_admin_t *a, struct MHD_Connection *c,
                                 const call_t *call)
{
    es_topic_test_t t;
    char err[512];
    unsigned status = MHD_HTTP_BAD_REQUEST;
    int bad = es_topic_test_parse(&t, call->param, call->body, call->body_len,
                                  query_arg(c, "deliver_to"), err, sizeof err);
    pthread_mutex_lock(&a->lock);
    int st = !bad && t.q.deliver_to
                 ? es_pipeline_test_endpoint(a->pipeline, t.q.deliver_to, err,
                                             sizeof err)
                 : 0;
    if (st)
        status = (unsigned)st;
    cJSON *res = NULL;
    es_dry_pending_t *pending = NULL;
    if (!bad && !st)
        res = es_pipeline_dry_run(a->pipeline, &t.q, &pending);
    pthread_mutex_unlock(&a->lock);
    if (pending)
        es_pipeline_dry_deliver(pending, res);
    enum MHD_Result ret =
        res ? send_json(c, MHD_HTTP_OK, res) : send_error(c, status, err);
    es_topic_test_clear(&t);
    return ret;
}

/* The Avro schemas the routes' decoders use (docs/avro.md). */
static enum MHD_Result get_avro_schemas(es_admin_t *a, struct MHD_Connection *c,
                                        const call_t *call)
{
    cJSON *topics = es_pipeline_avro_schemas(a->pipeline);
    if (!topics)
        return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return send_json(c, MHD_HTTP_OK, topics);
}

/* /v1/subscriptions (api/subscriptions.c). */
static enum MHD_Result subscriptions(es_admin_t *a, struct MHD_Connection *c,
                                     const char *method, const char *id,
                                     const call_t *call)
{
    char *json = NULL;
    const char *tenant =
        MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "tenant");
    unsigned st = es_api_subscriptions(a->pipeline, method, id, tenant,
                                       call->body, call->body_len, &json);
    return send_text(c, st, "application/json", json ? json : strdup(""));
}

static enum MHD_Result subs_all(es_admin_t *a, struct MHD_Connection *c,
                                const call_t *call)
{
    return subscriptions(a, c, call->method, NULL, call);
}

static enum MHD_Result subs_one(es_admin_t *a, struct MHD_Connection *c,
                                const call_t *call)
{
    return subscriptions(a, c, call->method, call->param, call);
}

/* GET /v1/config: the running config as written (before ${NAME}
 * expansion: the environment's values are not shown), secrets masked, with the
 * file's digest (compare with sha256sum of the file on disk: a change not
 * yet reloaded, or a reload that was refused, shows as a difference). */
static enum MHD_Result get_config(es_admin_t *a, struct MHD_Connection *c,
                                  const call_t *call)
{
    (void)call;
    cJSON *o = cJSON_CreateObject();
    cJSON *copy =
        cJSON_Duplicate(a->conf->written ? a->conf->written : a->conf->root, 1);
    if (!o || !copy) {
        cJSON_Delete(o);
        cJSON_Delete(copy);
        return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    es_sub_mask(copy);
    es_sub_mask_urls(copy);
    cJSON_AddStringToObject(o, "path", a->conf->path);
    cJSON_AddStringToObject(o, "sha256", a->conf->sha256);
    cJSON_AddStringToObject(o, "loaded_at", a->conf->loaded_at);
    cJSON_AddItemToObject(o, "config", copy);
    return send_json(c, MHD_HTTP_OK, o);
}

/* POST /v1/reload: as SIGHUP (docs/config.md#signals), answered with what
 * the check found. The check is a child process of a second or so. */
static enum MHD_Result post_reload(es_admin_t *a, struct MHD_Connection *c,
                                   const call_t *call)
{
    (void)call;
    if (!a->reload)
        return send_error(c, MHD_HTTP_NOT_FOUND, "no reload in this process");
    char msg[1200];
    unsigned st = a->reload(msg, sizeof msg);
    if (st != MHD_HTTP_ACCEPTED)
        return send_error(c, st, msg);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "reloading", 1);
    cJSON_AddStringToObject(o, "message", msg);
    return send_json(c, st, o);
}

static const route_t routes[] = {
    {"GET", "/health", 1, 1, get_health},
    {"GET", "/ready", 1, 1, get_ready},
    {"GET", "/metrics", 0, 1, get_metrics},
    {"GET", "/v1/topics", 0, 0, get_topics},
    {"POST", "/v1/topics/{topic}/test", 0, 1, post_test},
    {"GET", "/v1/schemas", 0, 0, get_schemas},
    {"GET", "/v1/schemas/{topic}", 0, 0, get_schema},
    {"GET", "/v1/usage", 0, 0, get_usage},
    {"GET", "/schemas", 0, 0, get_avro_schemas},
    {"GET", "/v1/subscriptions", 0, 0, subs_all},
    {"POST", "/v1/subscriptions", 0, 0, subs_all},
    {"GET", "/v1/subscriptions/{id}", 0, 0, subs_one},
    {"PUT", "/v1/subscriptions/{id}", 0, 0, subs_one},
    {"DELETE", "/v1/subscriptions/{id}", 0, 0, subs_one},
    {"POST", "/v1/reload", 0, 1, post_reload},
    {"GET", "/v1/config", 0, 1, get_config},
};

/* Matches url against a route path; a "{x}" segment is copied to param. */
static int path_matches(const char *pattern, const char *url, char *param,
                        size_t param_size)
{
    while (*pattern && *url) {
        if (*pattern == '{') {
            size_t n = strcspn(url, "/");
            if (n == 0 || n >= param_size)
                return 0;
            memcpy(param, url, n);
            param[n] = '\0';
            url += n;
            pattern += strcspn(pattern, "}") + 1;
            continue;
        }
        if (*pattern++ != *url++)
            return 0;
    }
    return *pattern == '\0' && *url == '\0';
}

/* Compares in time that depends only on the length of `expected`. */
static int token_matches(const char *given, const char *expected)
{
    size_t n = strlen(expected), g = strlen(given);
    unsigned char diff = (unsigned char)(g != n);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(expected[i] ^ (i < g ? given[i] : 0));
    return diff == 0;
}

static int authorised(es_admin_t *a, struct MHD_Connection *c)
{
    if (!a->token)
        return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    return h && !strncmp(h, "Bearer ", 7) && token_matches(h + 7, a->token);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    es_admin_t *a = cls;
    request_t *req = *con_cls;
    if (!req) { /* first call: headers only */
        *con_cls = calloc(1, sizeof *req);
        return MHD_YES;
    }
    if (*upload_size) {
        if (req->len + *upload_size > MAX_BODY) {
            req->too_large = 1;
        } else {
            req->body = realloc(req->body, req->len + *upload_size + 1);
            memcpy(req->body + req->len, upload, *upload_size);
            req->len += *upload_size;
            req->body[req->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    int path_known = 0;
    char param[512];
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!path_matches(routes[i].path, url, param, sizeof param))
            continue;
        path_known = 1;
        if (strcmp(routes[i].method, method) != 0)
            continue;
        if (!routes[i].public && !authorised(a, c))
            return send_error(c, MHD_HTTP_UNAUTHORIZED,
                              "missing or wrong bearer token");
        if (req->too_large)
            return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE,
                              "request body larger than 1 MiB");
        call_t call = {param, req->body ? req->body : "", req->len, method};
        if (routes[i].concurrent)
            return routes[i].handle(a, c, &call);
        pthread_mutex_lock(&a->lock);
        enum MHD_Result ret = routes[i].handle(a, c, &call);
        pthread_mutex_unlock(&a->lock);
        return ret;
    }
    if (path_known)
        return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                          "method not allowed on this path");
    return send_error(c, MHD_HTTP_NOT_FOUND, "no such endpoint");
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    request_t *req = *con_cls;
    if (req) {
        free(req->body);
        free(req);
        *con_cls = NULL;
    }
}

/* A token or a PEM file: 64 KiB is far more than either needs. */
#define SECRET_FILE_MAX (64 * 1024)

static char *read_file(const char *path, char *errstr, size_t errstr_size,
                       const char *key)
{
    FILE *f = es_fopen_read(path);
    if (!f) {
        snprintf(errstr, errstr_size, "%s: cannot read %s: %s", key, path,
                 strerror(errno));
        return NULL;
    }
    char *buf = calloc(1, SECRET_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, SECRET_FILE_MAX + 1, f) : 0;
    int failed = !buf || ferror(f);
    fclose(f);
    if (failed || n > SECRET_FILE_MAX) {
        snprintf(errstr, errstr_size, "%s: %s: %s", key, path,
                 !buf                  ? "out of memory"
                 : n > SECRET_FILE_MAX ? "is larger than 64 KiB"
                                       : "read error");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static int parse_listen(const char *listen, struct sockaddr_in *sa)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host)
        return -1;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return -1;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static int load_secrets(es_admin_t *a, const es_config_t *conf, char *errstr,
                        size_t errstr_size)
{
    if (conf->api_token && !(a->token = strdup(conf->api_token))) {
        snprintf(errstr, errstr_size, "api.token: out of memory");
        return -1;
    }
    if (conf->api_token_file) {
        a->token = read_file(conf->api_token_file, errstr, errstr_size,
                             "api.token_file");
        if (!a->token)
            return -1;
        a->token[strcspn(a->token, "\r\n")] = '\0';
        /* An empty token would let "Authorization: Bearer " in. */
        if (!a->token[0]) {
            snprintf(errstr, errstr_size,
                     "api.token_file: %s has no token on its first line",
                     conf->api_token_file);
            return -1;
        }
    }
    if (conf->api_tls_cert) {
        /* libmicrohttpd (GnuTLS) would only say it cannot start. */
        es_tls_pair_t pair = {"api.tls_cert", conf->api_tls_cert,
                              "api.tls_key",  conf->api_tls_key,
                              NULL,           NULL};
        a->cert =
            read_file(conf->api_tls_cert, errstr, errstr_size, "api.tls_cert");
        a->key = a->cert ? read_file(conf->api_tls_key, errstr, errstr_size,
                                     "api.tls_key")
                         : NULL;
        if (!a->key || es_tls_pair_check(&pair, errstr, errstr_size))
            return -1;
    }
    return 0;
}

static int check_listen(const es_config_t *conf, struct sockaddr_in *sa,
                        char *errstr, size_t errstr_size)
{
    if (parse_listen(conf->api_listen, sa) == 0)
        return 0;
    snprintf(errstr, errstr_size,
             "%s: api.listen: \"%s\" is not IPv4-address:port", conf->path,
             conf->api_listen);
    return -1;
}

/* The secrets' memory, cleared: a token and a key leave nothing behind. */
static void free_secrets(es_admin_t *a)
{
    char *secrets[] = {a->token, a->cert, a->key};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        if (secrets[i])
            OPENSSL_cleanse(secrets[i], strlen(secrets[i]));
        free(secrets[i]);
    }
    a->token = a->cert = a->key = NULL;
}

int es_admin_check(const es_config_t *conf, char *errstr, size_t errstr_size)
{
    struct sockaddr_in sa;
    es_admin_t a;
    char err[512];
    if (check_listen(conf, &sa, errstr, errstr_size))
        return -1;
    memset(&a, 0, sizeof a);
    int rc = load_secrets(&a, conf, err, sizeof err);
    if (rc)
        snprintf(errstr, errstr_size, "%s: %s", conf->path, err);
    free_secrets(&a);
    return rc;
}

es_admin_t *es_admin_start(const es_config_t *conf, es_pipeline_t *p,
                           es_admin_reload_fn reload, char *errstr,
                           size_t errstr_size)
{
    struct sockaddr_in sa;
    if (check_listen(conf, &sa, errstr, errstr_size))
        return NULL;
    es_admin_t *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(errstr, errstr_size, "%s: api: out of memory", conf->path);
        return NULL;
    }
    a->pipeline = p;
    a->conf = conf;
    a->reload = reload;
    pthread_mutex_init(&a->lock, NULL);
    char err[512];
    if (load_secrets(a, conf, err, sizeof err)) {
        snprintf(errstr, errstr_size, "%s: %s", conf->path, err);
        es_admin_stop(a);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
    if (a->cert)
        flags |= MHD_USE_TLS;
    a->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, a, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, NULL, MHD_OPTION_SOCK_ADDR, &sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
        a->cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, a->cert,
        MHD_OPTION_HTTPS_MEM_KEY, a->key, MHD_OPTION_END);
    if (!a->mhd) {
        snprintf(errstr, errstr_size,
                 "%s: api.listen: cannot listen on %s (in use, or not an "
                 "address of this host)",
                 conf->path, conf->api_listen);
        es_admin_stop(a);
        return NULL;
    }
    es_info("admin API listening on %s (%s, %s)", conf->api_listen,
            a->cert ? "https" : "http",
            a->token ? "bearer token required" : "no authentication");
    return a;
}

void es_admin_stop(es_admin_t *a)
{
    if (!a)
        return;
    if (a->mhd)
        MHD_stop_daemon(a->mhd);
    pthread_mutex_destroy(&a->lock);
    free_secrets(a);
    free(a);
}
