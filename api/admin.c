#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "admin.h"
#include "log.h"
#include "metrics.h"

struct es_admin_s {
    struct MHD_Daemon *mhd;
    es_pipeline_t *pipeline;
    char *token; /* NULL: no authentication */
    char *cert, *key;
};

typedef struct route_s {
    const char *method;
    const char *path;
    int public; /* no token needed: liveness and readiness probes */
    enum MHD_Result (*handle)(es_admin_t *a, struct MHD_Connection *c);
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

static enum MHD_Result get_health(es_admin_t *a, struct MHD_Connection *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    return send_json(c, MHD_HTTP_OK, o);
}

static enum MHD_Result get_ready(es_admin_t *a, struct MHD_Connection *c)
{
    int ready = es_pipeline_ready(a->pipeline);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ready", ready);
    cJSON_AddStringToObject(o, "reason",
                            ready ? "all consumer groups joined"
                                  : "waiting for consumer groups to join");
    return send_json(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, o);
}

static enum MHD_Result get_metrics(es_admin_t *a, struct MHD_Connection *c)
{
    return send_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4",
                     es_metrics_prometheus());
}

static enum MHD_Result get_schemas(es_admin_t *a, struct MHD_Connection *c)
{
    cJSON *topics = es_pipeline_avro_schemas(a->pipeline);
    if (!topics)
        return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return send_json(c, MHD_HTTP_OK, topics);
}

static const route_t routes[] = {
    {"GET", "/health", 1, get_health},
    {"GET", "/ready", 1, get_ready},
    {"GET", "/metrics", 0, get_metrics},
    {"GET", "/schemas", 0, get_schemas},
};

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
    int path_known = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(routes[i].path, url) != 0)
            continue;
        path_known = 1;
        if (strcmp(routes[i].method, method) != 0)
            continue;
        if (!routes[i].public && !authorised(a, c))
            return send_error(c, MHD_HTTP_UNAUTHORIZED,
                              "missing or wrong bearer token");
        return routes[i].handle(a, c);
    }
    if (path_known)
        return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                          "method not allowed on this path");
    return send_error(c, MHD_HTTP_NOT_FOUND, "no such endpoint");
}

static char *read_file(const char *path, char *errstr, size_t errstr_size,
                       const char *key)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, errstr_size, "%s: cannot read %s: %s", key, path,
                 strerror(errno));
        return NULL;
    }
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
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
    if (conf->api_token)
        a->token = strdup(conf->api_token);
    if (conf->api_token_file) {
        a->token = read_file(conf->api_token_file, errstr, errstr_size,
                             "api.token_file");
        if (!a->token)
            return -1;
        a->token[strcspn(a->token, "\r\n")] = '\0';
    }
    if (conf->api_tls_cert) {
        a->cert =
            read_file(conf->api_tls_cert, errstr, errstr_size, "api.tls_cert");
        a->key = a->cert ? read_file(conf->api_tls_key, errstr, errstr_size,
                                     "api.tls_key")
                         : NULL;
        if (!a->key)
            return -1;
    }
    return 0;
}

es_admin_t *es_admin_start(const es_config_t *conf, es_pipeline_t *p,
                           char *errstr, size_t errstr_size)
{
    struct sockaddr_in sa;
    if (parse_listen(conf->api_listen, &sa)) {
        snprintf(errstr, errstr_size,
                 "%s: api.listen: \"%s\" is not IPv4-address:port", conf->path,
                 conf->api_listen);
        return NULL;
    }
    es_admin_t *a = calloc(1, sizeof *a);
    a->pipeline = p;
    char err[512];
    if (load_secrets(a, conf, err, sizeof err)) {
        snprintf(errstr, errstr_size, "%s: %s", conf->path, err);
        es_admin_stop(a);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (a->cert)
        flags |= MHD_USE_TLS;
    a->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, a, MHD_OPTION_SOCK_ADDR, &sa,
        a->cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, a->cert,
        MHD_OPTION_HTTPS_MEM_KEY, a->key, MHD_OPTION_END);
    if (!a->mhd) {
        snprintf(errstr, errstr_size, "%s: api.listen: cannot listen on %s",
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
    free(a->token);
    free(a->cert);
    free(a->key);
    free(a);
}
