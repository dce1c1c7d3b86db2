/*
 * HTTPS sink: delivers CloudEvents to one customer endpoint per instance.
 *
 * deliver() only copies the events into a queue and answers ES_PENDING; a
 * worker thread owned by the instance runs a libcurl multi handle (keep-alive
 * connection cache, HTTP/2 multiplexing when offered), forms requests
 * (one event, or a batch), and completes every event of a request with that
 * request's outcome through host->complete. An event is completed ES_OK
 * only after its own request got a 2xx.
 *
 * Retrying is the host's job (ES_RETRY -> jittered backoff -> redeliver);
 * the sink only adds what needs knowledge of the endpoint: a Retry-After
 * holds the endpoint (no request before that time, new events answered
 * ES_RETRY at once), a 410 disables it for the life of the instance, and a
 * batch rejected with a permanent 4xx is resent one event per request so
 * that only the guilty events are dead-lettered.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "https.h"

typedef struct hs_event_s hs_event_t;
struct hs_event_s {
    hs_event_t *next;
    uint64_t token;
    char *id;
    char *body; /* structured JSON, or the data in binary mode */
    size_t body_len;
    struct curl_slist *ce_headers; /* binary mode */
    int64_t enq_ms;
    int isolate;        /* send alone: its batch was rejected */
    int own;            /* id and body are separate allocations */
    char inline_data[]; /* id and body, in one allocation with the event */
};

typedef struct hs_sink_s hs_sink_t;

typedef struct hs_req_s hs_req_t;
struct hs_req_s {
    hs_req_t *next;          /* resend list */
    hs_req_t *iprev, *inext; /* in-flight list */
    hs_sink_t *sink;
    CURL *easy;
    hs_event_t **events;
    size_t count;
    struct curl_slist *headers;
    char *payload; /* what is signed: the uncompressed body */
    size_t payload_len;
    int payload_owned;
    size_t payload_cap;
    char *body; /* what is sent (== payload unless gzip) */
    size_t body_len;
    char *msg_id;
    hs_buf_t resp;
    char retry_after[64];
    char location_seen;
    char errbuf[CURL_ERROR_SIZE];
    int auth_retried;
};

struct hs_sink_s {
    const es_host_t *host;
    hs_conf_t conf;
    char *safe_url;

    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    /* protected by mu */
    hs_event_t *head, *tail;
    size_t pending; /* queued + in flight */
    int stop;
    int64_t hold_until_ms;
    char hold_reason[200];
    int disabled;
    char disabled_reason[200];

    /* worker thread only */
    CURLM *multi;
    size_t inflight;
    hs_req_t *reqs; /* in flight */
    CURL *pool[64]; /* idle easy handles, reset, for reuse */
    size_t npool;
    /* batch payload buffers keep their capacity: allocating and freeing
     * half a megabyte per request costs more than the TLS (mmap/munmap) */
    hs_buf_t bufs[16];
    size_t nbufs;
    double tokens;
    int64_t tokens_ms;
    /* Requests per second the tokens come at: rate_limit.requests_per_s,
     * lowered to the receiver's WebHook-Allowed-Rate; 0: unlimited. */
    double rate_rps;
    char *oauth_token;
    int64_t oauth_refresh_ms;
    int64_t oauth_next_try_ms; /* after a failed fetch: not before */
    char oauth_error[256];
    int consented;
    int64_t next_handshake_ms;
    char handshake_reason[200];
    hs_req_t *resend;
    int64_t last_tls_log_ms;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void event_free(hs_event_t *e)
{
    if (!e)
        return;
    if (e->own) {
        free(e->id);
        free(e->body);
    }
    curl_slist_free_all(e->ce_headers);
    free(e);
}

static void complete(hs_sink_t *s, hs_event_t *e, es_status_t st,
                     const char *reason)
{
    static const char *const counters[] = {
        [ES_OK] = "events_delivered",
        [ES_RETRY] = "events_retried",
        [ES_FAIL] = "events_failed",
    };
    s->host->complete(s->host, e->token, st, reason);
    s->host->counter_add(s->host, counters[st], 1);
}

/* Completes the whole queue (hold, 410, refused handshake or token). */
static void drain_queue(hs_sink_t *s, es_status_t st, const char *reason)
{
    pthread_mutex_lock(&s->mu);
    hs_event_t *e = s->head;
    s->head = s->tail = NULL;
    pthread_mutex_unlock(&s->mu);
    size_t n = 0;
    while (e) {
        hs_event_t *next = e->next;
        complete(s, e, st, reason);
        event_free(e);
        e = next;
        n++;
    }
    pthread_mutex_lock(&s->mu);
    s->pending -= n;
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------ curl setup */

static size_t discard_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

static size_t body_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    hs_req_t *r = ud;
    size_t n = size * nmemb;
    size_t room = (size_t)r->sink->conf.response_excerpt_bytes + 1;
    if (r->resp.len < room)
        hs_buf_append(&r->resp, ptr,
                      n < room - r->resp.len ? n : room - r->resp.len);
    return n;
}

static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    hs_req_t *r = ud;
    size_t n = size * nmemb;
    if (n > 12 && strncasecmp(ptr, "retry-after:", 12) == 0) {
        size_t skip = 12;
        while (skip < n && (ptr[skip] == ' ' || ptr[skip] == '\t'))
            skip++;
        size_t len = n - skip < sizeof(r->retry_after) - 1
                         ? n - skip
                         : sizeof(r->retry_after) - 1;
        memcpy(r->retry_after, ptr + skip, len);
        r->retry_after[len] = '\0';
        r->retry_after[strcspn(r->retry_after, "\r\n")] = '\0';
    }
    return n;
}

static void easy_common(hs_sink_t *s, CURL *e, const char *url)
{
    const hs_conf_t *c = &s->conf;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* small transfer buffers: curl's 64 KB upload buffer per request makes
     * glibc grow and trim the worker's heap on every request */
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     c->http2 ? (long)CURL_HTTP_VERSION_2TLS
                              : (long)CURL_HTTP_VERSION_1_1);
    if (c->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
    if (c->ca_path)
        curl_easy_setopt(e, CURLOPT_CAPATH, c->ca_path);
    if (c->client_cert) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, c->client_cert);
        curl_easy_setopt(e, CURLOPT_SSLKEY, c->client_key);
        if (c->client_key_password)
            curl_easy_setopt(e, CURLOPT_KEYPASSWD, c->client_key_password);
    }
    if (c->tls_min_version) {
        long v =
            strcmp(c->tls_min_version, "1.3") == 0   ? CURL_SSLVERSION_TLSv1_3
            : strcmp(c->tls_min_version, "1.2") == 0 ? CURL_SSLVERSION_TLSv1_2
            : strcmp(c->tls_min_version, "1.1") == 0 ? CURL_SSLVERSION_TLSv1_1
                                                     : CURL_SSLVERSION_TLSv1_0;
        curl_easy_setopt(e, CURLOPT_SSLVERSION, v);
    }
    if (c->tls_insecure_skip_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

/* Appends "Name: value" lines that every request to the endpoint carries. */
static int add_auth_headers(hs_sink_t *s, CURL *e, struct curl_slist **h)
{
    for (struct curl_slist *l = s->conf.headers; l; l = l->next)
        if (!(*h = curl_slist_append(*h, l->data)))
            return -1;
    const char *bearer = s->conf.auth_type == HS_AUTH_BEARER
                             ? s->conf.bearer_token
                             : s->oauth_token;
    if (s->conf.auth_type == HS_AUTH_BASIC) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, s->conf.username);
        curl_easy_setopt(e, CURLOPT_PASSWORD, s->conf.password);
    } else if (bearer && (s->conf.auth_type == HS_AUTH_BEARER ||
                          s->conf.auth_type == HS_AUTH_OAUTH2)) {
        size_t len = strlen(bearer) + 32;
        char *line = malloc(len);
        if (!line)
            return -1;
        snprintf(line, len, "Authorization: Bearer %s", bearer);
        *h = curl_slist_append(*h, line);
        memset(line, 0, len);
        free(line);
        if (!*h)
            return -1;
    }
    return 0;
}

/* --------------------------------------------- OAuth2 and the handshake */

static int fetch_token(hs_sink_t *s, char *err, size_t n)
{
    hs_conf_t *c = &s->conf;
    CURL *e = curl_easy_init();
    hs_buf_t form = {0}, resp = {0};
    cJSON *doc = NULL;
    int rc = -1;
    if (!e)
        goto done;
    char *v;
    hs_buf_append(&form, "grant_type=client_credentials", 29);
    const char *extra[][2] = {{"scope", c->scope}, {"audience", c->audience}};
    for (size_t i = 0; i < 2; i++) {
        if (!extra[i][1])
            continue;
        v = curl_easy_escape(e, extra[i][1], 0);
        hs_buf_append(&form, "&", 1);
        hs_buf_append(&form, extra[i][0], strlen(extra[i][0]));
        hs_buf_append(&form, "=", 1);
        hs_buf_append(&form, v, strlen(v));
        curl_free(v);
    }
    easy_common(s, e, c->token_url);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(e, CURLOPT_USERNAME, c->client_id);
    curl_easy_setopt(e, CURLOPT_PASSWORD, c->client_secret);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, form.data);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, hs_buf_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &resp);
    CURLcode cc = curl_easy_perform(e);
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    if (cc != CURLE_OK) {
        snprintf(err, n, "oauth2 token request failed: %s",
                 curl_easy_strerror(cc));
        goto done;
    }
    if (code / 100 != 2) {
        snprintf(err, n, "oauth2 token endpoint answered HTTP %ld", code);
        goto done;
    }
    doc = cJSON_ParseWithLength(resp.data ? resp.data : "", resp.len);
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(doc, "access_token");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(doc, "expires_in");
    if (!cJSON_IsString(tok) || !*tok->valuestring ||
        strpbrk(tok->valuestring, "\r\n")) {
        snprintf(err, n, "oauth2 token endpoint: no access_token in answer");
        goto done;
    }
    /* a year at most: the server's number, and a cast of 1e300 is
     * undefined */
    int64_t life_s = !cJSON_IsNumber(exp) || exp->valuedouble <= 0 ? 3600
                     : exp->valuedouble > 31536000.0
                         ? 31536000
                         : (int64_t)exp->valuedouble;
    int64_t margin = c->token_refresh_margin_s;
    if (margin > life_s / 2)
        margin = life_s / 2;
    free(s->oauth_token);
    s->oauth_token = strdup(tok->valuestring);
    s->oauth_refresh_ms = mono_ms() + (life_s - margin) * 1000;
    s->host->counter_add(s->host, "oauth2_token_fetches", 1);
    rc = s->oauth_token ? 0 : -1;
done:
    if (resp.data)
        memset(resp.data, 0, resp.len);
    hs_buf_free(&resp);
    hs_buf_free(&form);
    cJSON_Delete(doc);
    curl_easy_cleanup(e);
    return rc;
}

/* What the receiver's answer to the handshake says. */
typedef struct hs_consent_s {
    char allowed[256]; /* WebHook-Allowed-Origin */
    char rate[32];     /* WebHook-Allowed-Rate; "" when absent */
} hs_consent_t;

/* Copies the value of header line `ptr` into out when it is `name`. */
static void header_value(const char *ptr, size_t n, const char *name, char *out,
                         size_t out_size)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(ptr, name, nl) != 0)
        return;
    const char *v = ptr + nl;
    size_t len = n - nl;
    while (len && (*v == ' ' || *v == '\t'))
        v++, len--;
    while (len && strchr(" \t\r\n", v[len - 1]))
        len--;
    if (len >= out_size)
        len = out_size - 1;
    memcpy(out, v, len);
    out[len] = '\0';
}

static size_t consent_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    hs_consent_t *o = ud;
    size_t n = size * nmemb;
    header_value(ptr, n, "webhook-allowed-origin:", o->allowed,
                 sizeof o->allowed);
    header_value(ptr, n, "webhook-allowed-rate:", o->rate, sizeof o->rate);
    return n;
}

/*
 * WebHook-Allowed-Rate: "*" (any rate) or the requests per minute the
 * receiver grants; sending faster only earns 429s, so the token rate comes
 * down to it (and stays at requests_per_s when that is lower). A value
 * that is neither is logged and left out: the receiver consented, and its
 * 429s with Retry-After still hold us back.
 */
static void take_allowed_rate(hs_sink_t *s, const char *rate)
{
    char *end;
    long long per_min = strtoll(rate, &end, 10);
    double configured = (double)s->conf.rate_limit_rps;
    if (!*rate)
        return;
    if (strcmp(rate, "*") == 0) {
        s->rate_rps = configured;
        s->host->log(s->host, ES_LOG_INFO,
                     "webhook handshake: the receiver allows any rate url=%s",
                     s->safe_url);
        return;
    }
    if (end == rate || *end || per_min < 1) {
        s->host->log(s->host, ES_LOG_WARN,
                     "webhook handshake: ignoring WebHook-Allowed-Rate "
                     "\"%.31s\" (not \"*\" or a number of requests per "
                     "minute) url=%s",
                     rate, s->safe_url);
        return;
    }
    double granted = (double)per_min / 60.0;
    s->rate_rps = configured > 0 && configured < granted ? configured : granted;
    s->host->log(s->host, ES_LOG_INFO,
                 "webhook handshake: the receiver allows %lld requests per "
                 "minute; sending at most %.3g per second url=%s",
                 per_min, s->rate_rps, s->safe_url);
}

/* CloudEvents webhook spec, abuse protection: OPTIONS with
 * WebHook-Request-Origin; deliver only when WebHook-Allowed-Origin names us
 * (or is "*"). */
static void handshake(hs_sink_t *s)
{
    CURL *e = curl_easy_init();
    struct curl_slist *h = NULL;
    hs_consent_t o = {{0}, {0}};
    char line[300];
    if (!e)
        return;
    snprintf(line, sizeof(line), "WebHook-Request-Origin: %s",
             s->conf.handshake_origin);
    h = curl_slist_append(h, line);
    if (s->conf.handshake_rate) {
        snprintf(line, sizeof(line), "WebHook-Request-Rate: %lld",
                 (long long)s->conf.handshake_rate);
        h = curl_slist_append(h, line);
    }
    add_auth_headers(s, e, &h);
    easy_common(s, e, s->conf.url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "OPTIONS");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, consent_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &o);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_cb);
    CURLcode cc = curl_easy_perform(e);
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    s->host->counter_add(s->host, "handshakes", 1);
    if (cc != CURLE_OK)
        snprintf(s->handshake_reason, sizeof(s->handshake_reason),
                 "webhook handshake failed: %s", curl_easy_strerror(cc));
    else if (code / 100 != 2)
        snprintf(s->handshake_reason, sizeof(s->handshake_reason),
                 "webhook handshake: OPTIONS answered HTTP %ld", code);
    else if (strcmp(o.allowed, "*") != 0 &&
             strcmp(o.allowed, s->conf.handshake_origin) != 0)
        snprintf(s->handshake_reason, sizeof(s->handshake_reason),
                 "webhook handshake: endpoint did not consent "
                 "(WebHook-Allowed-Origin \"%.64s\")",
                 o.allowed);
    else
        s->consented = 1;
    if (s->consented) {
        s->host->log(s->host, ES_LOG_INFO, "webhook handshake accepted url=%s",
                     s->safe_url);
        take_allowed_rate(s, o.rate);
    } else
        s->host->log(s->host, ES_LOG_WARN, "%s url=%s", s->handshake_reason,
                     s->safe_url);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
}

/* ------------------------------------------------------------- requests */

static void req_free(hs_req_t *r)
{
    if (!r)
        return;
    if (r->easy && r->sink->npool < sizeof(r->sink->pool) / sizeof(CURL *)) {
        /* no reset: every request sets all its options again */
        r->sink->pool[r->sink->npool++] = r->easy;
    } else if (r->easy) {
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->headers);
    if (r->body != r->payload)
        free(r->body);
    if (r->payload_owned && r->sink->nbufs < 16)
        r->sink->bufs[r->sink->nbufs++] =
            (hs_buf_t){r->payload, 0, r->payload_cap};
    else if (r->payload_owned)
        free(r->payload);
    free(r->msg_id);
    hs_buf_free(&r->resp);
    free(r->events);
    free(r);
}

/* A batch's webhook-id: stable for the same events, so a receiver can
 * de-duplicate a resent batch; events inside keep their own ids. */
static char *batch_id(hs_event_t **ev, size_t n)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char *out = malloc(6 + 33);
    if (!md || !out) {
        EVP_MD_CTX_free(md);
        free(out);
        return NULL;
    }
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (size_t i = 0; i < n; i++)
        EVP_DigestUpdate(md, ev[i]->id, strlen(ev[i]->id) + 1);
    EVP_DigestFinal_ex(md, dig, &len);
    EVP_MD_CTX_free(md);
    memcpy(out, "batch_", 6);
    for (int i = 0; i < 16; i++)
        snprintf(out + 6 + 2 * i, 3, "%02x", dig[i]);
    return out;
}

static int build_payload(hs_sink_t *s, hs_req_t *r)
{
    if (s->conf.mode != HS_MODE_BATCH) {
        r->payload = r->events[0]->body;
        r->payload_len = r->events[0]->body_len;
        r->msg_id = strdup(r->events[0]->id);
        return r->msg_id ? 0 : -1;
    }
    hs_buf_t b = {0};
    size_t total = 3;
    for (size_t i = 0; i < r->count; i++)
        total += r->events[i]->body_len + 1;
    if (s->nbufs)
        b = s->bufs[--s->nbufs];
    b.len = 0;
    if (b.cap < total) {
        char *d = realloc(b.data, total);
        if (!d) {
            free(b.data);
            return -1;
        }
        b.data = d;
        b.cap = total;
    }
    hs_buf_append(&b, "[", 1);
    for (size_t i = 0; i < r->count; i++) {
        if (i)
            hs_buf_append(&b, ",", 1);
        hs_buf_append(&b, r->events[i]->body, r->events[i]->body_len);
    }
    if (hs_buf_append(&b, "]", 1) != 0) {
        hs_buf_free(&b);
        return -1;
    }
    r->payload = b.data;
    r->payload_len = b.len;
    r->payload_cap = b.cap;
    r->payload_owned = 1;
    /* a one-event batch keeps the event's id as webhook-id */
    r->msg_id = r->count == 1 ? strdup(r->events[0]->id)
                              : batch_id(r->events, r->count);
    return r->msg_id ? 0 : -1;
}

/* Appends "name: value" ("name:" when value is empty, which makes curl
 * drop a header it would add by itself). */
static int add_line(struct curl_slist **h, const char *name, const char *v)
{
    size_t len = strlen(name) + strlen(v) + 3;
    char *line = malloc(len);
    if (!line)
        return -1;
    snprintf(line, len, *v ? "%s: %s" : "%s:%s", name, v);
    struct curl_slist *nl = curl_slist_append(*h, line);
    free(line);
    if (!nl)
        return -1;
    *h = nl;
    return 0;
}

/* Headers are rebuilt on a 401 resend, so they live apart from the body. */
static int build_headers(hs_sink_t *s, hs_req_t *r)
{
    const hs_conf_t *c = &s->conf;
    struct curl_slist *h = NULL;
    int rc = -1;
    if (c->mode == HS_MODE_BINARY) {
        for (struct curl_slist *l = r->events[0]->ce_headers; l; l = l->next)
            if (!(h = curl_slist_append(h, l->data)))
                goto done;
    } else if (add_line(&h, "Content-Type",
                        c->mode == HS_MODE_BATCH
                            ? "application/cloudevents-batch+json; "
                              "charset=UTF-8"
                            : "application/cloudevents+json; "
                              "charset=UTF-8") != 0) {
        goto done;
    }
    if (c->gzip && add_line(&h, "Content-Encoding", "gzip") != 0)
        goto done;
    if (add_line(&h, "Expect", "") != 0 ||
        add_auth_headers(s, r->easy, &h) != 0)
        goto done;
    if (c->secret_count) {
        char ts[32];
        long long now = (long long)time(NULL);
        snprintf(ts, sizeof(ts), "%lld", now);
        char *sig = hs_sign(c->keys, c->secret_count, r->msg_id, now,
                            r->payload, r->payload_len);
        if (!sig)
            goto done;
        int bad = add_line(&h, "webhook-id", r->msg_id) != 0 ||
                  add_line(&h, "webhook-timestamp", ts) != 0 ||
                  add_line(&h, "webhook-signature", sig) != 0;
        free(sig);
        if (bad)
            goto done;
    }
    curl_slist_free_all(r->headers);
    r->headers = h;
    h = NULL;
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
    rc = 0;
done:
    curl_slist_free_all(h);
    return rc;
}

static hs_req_t *req_new(hs_sink_t *s, hs_event_t **ev, size_t n)
{
    hs_req_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->sink = s;
    r->events = ev;
    r->count = n;
    r->easy = s->npool ? s->pool[--s->npool] : curl_easy_init();
    if (!r->easy || build_payload(s, r) != 0)
        goto fail;
    r->body = r->payload;
    r->body_len = r->payload_len;
    if (s->conf.gzip &&
        hs_gzip(r->payload, r->payload_len, (int)s->conf.gzip_level, &r->body,
                &r->body_len) != 0)
        goto fail;
    easy_common(s, r->easy, s->conf.url);
    curl_easy_setopt(r->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)r->body_len);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    if (build_headers(s, r) != 0)
        goto fail;
    return r;
fail:
    if (r->body == r->payload)
        r->body = NULL;
    r->events = NULL; /* the caller still owns them */
    r->count = 0;
    req_free(r);
    return NULL;
}

/* ------------------------------------------------------- batching, rate */

/* Takes the next request's events off the queue when they are ready to go.
 * Called with mu held. */
static size_t take_batch(hs_sink_t *s, int64_t now, hs_event_t ***out)
{
    const hs_conf_t *c = &s->conf;
    hs_event_t *e = s->head;
    size_t n = 0;
    if (!e)
        return 0;
    if (c->mode != HS_MODE_BATCH || e->isolate) {
        n = 1;
        e = e->next;
    } else {
        size_t bytes = 2;
        while (
            e && !e->isolate && n < (size_t)c->batch_max_events &&
            (n == 0 || bytes + e->body_len + 1 <= (size_t)c->batch_max_bytes)) {
            bytes += e->body_len + 1;
            n++;
            e = e->next;
        }
        /* e != NULL: a limit cut the batch, so it is full */
        if (!e && now - s->head->enq_ms < c->batch_max_wait_ms)
            return 0;
    }
    hs_event_t **ev = malloc(n * sizeof(*ev));
    if (!ev)
        return 0;
    for (size_t i = 0; i < n; i++) {
        ev[i] = s->head;
        s->head = s->head->next;
        ev[i]->next = NULL;
    }
    if (!s->head)
        s->tail = NULL;
    *out = ev;
    return n;
}

static int rate_allows(hs_sink_t *s, int64_t now)
{
    const hs_conf_t *c = &s->conf;
    if (s->rate_rps <= 0)
        return 1;
    s->tokens += (double)(now - s->tokens_ms) * s->rate_rps / 1000.0;
    s->tokens_ms = now;
    if (s->tokens > (double)c->rate_limit_burst)
        s->tokens = (double)c->rate_limit_burst;
    return s->tokens >= 1.0;
}

/* Answers the events of requests waiting for a 401 resend. */
static void drain_resend(hs_sink_t *s, es_status_t st, const char *reason)
{
    while (s->resend) {
        hs_req_t *r = s->resend;
        s->resend = r->next;
        for (size_t i = 0; i < r->count; i++) {
            complete(s, r->events[i], st, reason);
            event_free(r->events[i]);
        }
        pthread_mutex_lock(&s->mu);
        s->pending -= r->count;
        pthread_mutex_unlock(&s->mu);
        req_free(r);
    }
}

/* Returns 0 when requests may go out; otherwise has already answered the
 * queued events. */
static int endpoint_ready(hs_sink_t *s, int64_t now)
{
    char reason[256];
    pthread_mutex_lock(&s->mu);
    int disabled = s->disabled;
    int held = now < s->hold_until_ms;
    snprintf(reason, sizeof(reason), "%s",
             disabled ? s->disabled_reason : s->hold_reason);
    pthread_mutex_unlock(&s->mu);
    if (disabled || held) {
        drain_queue(s, disabled ? ES_FAIL : ES_RETRY, reason);
        if (disabled) /* 401 resends never go out either */
            drain_resend(s, ES_FAIL, reason);
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    int queued = s->head != NULL || s->resend;
    pthread_mutex_unlock(&s->mu);
    if (!queued)
        return -1; /* handshake and token wait for something to send */
    if (s->conf.handshake_origin && !s->consented) {
        if (now >= s->next_handshake_ms) {
            handshake(s);
            s->next_handshake_ms = now + s->conf.handshake_interval_ms;
        }
        if (!s->consented) {
            drain_queue(s, ES_RETRY, s->handshake_reason);
            return -1;
        }
    }
    if (s->conf.auth_type == HS_AUTH_OAUTH2 &&
        (!s->oauth_token || now >= s->oauth_refresh_ms)) {
        /* a failing token endpoint is asked at most once a second */
        if (now < s->oauth_next_try_ms ||
            fetch_token(s, s->oauth_error, sizeof(s->oauth_error)) != 0) {
            if (now >= s->oauth_next_try_ms) {
                s->oauth_next_try_ms = now + 1000;
                s->host->log(s->host, ES_LOG_WARN, "%s url=%s", s->oauth_error,
                             s->safe_url);
            }
            drain_queue(s, ES_RETRY, s->oauth_error);
            drain_resend(s, ES_RETRY, s->oauth_error);
            return -1;
        }
    }
    return 0;
}

static void add_request(hs_sink_t *s, hs_req_t *r)
{
    r->iprev = NULL;
    r->inext = s->reqs;
    if (s->reqs)
        s->reqs->iprev = r;
    s->reqs = r;
    curl_multi_add_handle(s->multi, r->easy);
    s->inflight++;
    s->tokens -= 1.0;
    s->host->counter_add(s->host, "requests", 1);
}

static void start_requests(hs_sink_t *s)
{
    int64_t now = mono_ms();
    if (endpoint_ready(s, now) != 0)
        return;
    while (s->resend) { /* 401 once: same events, fresh token */
        hs_req_t *r = s->resend;
        s->resend = r->next;
        r->next = NULL;
        r->resp.len = 0;
        r->retry_after[0] = '\0';
        build_headers(s, r);
        add_request(s, r);
    }
    while (s->inflight < (size_t)s->conf.max_concurrency &&
           rate_allows(s, now)) {
        hs_event_t **ev = NULL;
        pthread_mutex_lock(&s->mu);
        size_t n = take_batch(s, now, &ev);
        pthread_mutex_unlock(&s->mu);
        if (!n)
            break;
        hs_req_t *r = req_new(s, ev, n);
        if (!r) {
            for (size_t i = 0; i < n; i++) {
                complete(s, ev[i], ES_RETRY, "https sink: out of memory");
                event_free(ev[i]);
            }
            free(ev);
            pthread_mutex_lock(&s->mu);
            s->pending -= n;
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        add_request(s, r);
    }
}

/* ------------------------------------------------------------- outcomes */

static void hold_endpoint(hs_sink_t *s, hs_req_t *r, long code)
{
    long long secs =
        hs_parse_retry_after(r->retry_after, (long long)time(NULL));
    if (secs < 0)
        return;
    if (secs > s->conf.retry_after_max_s)
        secs = s->conf.retry_after_max_s;
    pthread_mutex_lock(&s->mu);
    int64_t until = mono_ms() + secs * 1000;
    if (until > s->hold_until_ms) {
        s->hold_until_ms = until;
        snprintf(s->hold_reason, sizeof(s->hold_reason),
                 "endpoint held for %llds by Retry-After (HTTP %ld)", secs,
                 code);
    }
    pthread_mutex_unlock(&s->mu);
    s->host->log(s->host, ES_LOG_WARN,
                 "endpoint asked to wait url=%s status=%ld "
                 "retry_after_s=%lld",
                 s->safe_url, code, secs);
}

static void disable_endpoint(hs_sink_t *s, hs_req_t *r)
{
    char ex[256];
    hs_excerpt(r->resp.data, r->resp.len,
               (size_t)s->conf.response_excerpt_bytes, ex, sizeof(ex));
    pthread_mutex_lock(&s->mu);
    int first = !s->disabled;
    s->disabled = 1;
    snprintf(s->disabled_reason, sizeof(s->disabled_reason),
             "endpoint disabled: HTTP 410 Gone");
    pthread_mutex_unlock(&s->mu);
    if (first) {
        s->host->log(s->host, ES_LOG_ERROR,
                     "ENDPOINT DISABLED: it answered 410 Gone; every "
                     "event for it is now dead-lettered until the instance "
                     "is restarted or reconfigured; url=%s body=\"%s\"",
                     s->safe_url, ex);
        s->host->counter_add(s->host, "endpoint_disabled", 1);
    }
}

/* Puts a rejected batch's events back at the queue's head, one per
 * request, so the endpoint's verdict is known per event. */
static void isolate_batch(hs_sink_t *s, hs_req_t *r)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = r->count; i-- > 0;) {
        hs_event_t *e = r->events[i];
        e->isolate = 1;
        e->next = s->head;
        s->head = e;
        if (!s->tail)
            s->tail = e;
    }
    pthread_mutex_unlock(&s->mu);
    r->count = 0;
    s->host->counter_add(s->host, "batches_split", 1);
}

static int is_tls_error(CURLcode cc)
{
    return cc == CURLE_PEER_FAILED_VERIFICATION ||
           cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_SSL_CERTPROBLEM ||
           cc == CURLE_SSL_CACERT_BADFILE || cc == CURLE_SSL_ISSUER_ERROR;
}

static void finish(hs_sink_t *s, hs_req_t *r, CURLcode cc)
{
    long code = 0;
    es_status_t st;
    char reason[512], ex[256];
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(s->multi, r->easy);
    s->inflight--;
    if (r->iprev)
        r->iprev->inext = r->inext;
    else
        s->reqs = r->inext;
    if (r->inext)
        r->inext->iprev = r->iprev;
    hs_excerpt(r->resp.data, r->resp.len,
               (size_t)s->conf.response_excerpt_bytes, ex, sizeof(ex));
    if (cc != CURLE_OK) {
        st = ES_RETRY;
        snprintf(reason, sizeof(reason), "%s%s: %s",
                 is_tls_error(cc) ? "TLS error" : "network error",
                 cc == CURLE_OPERATION_TIMEDOUT ? " (timeout)" : "",
                 r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc));
        int64_t now = mono_ms();
        if (is_tls_error(cc) && now - s->last_tls_log_ms > 10000) {
            s->last_tls_log_ms = now;
            s->host->log(s->host, ES_LOG_ERROR, "%s url=%s", reason,
                         s->safe_url);
        }
    } else if (code / 100 == 2) {
        st = ES_OK;
        snprintf(reason, sizeof(reason), "HTTP %ld", code);
    } else if (code == 401 && s->conf.auth_type == HS_AUTH_OAUTH2 &&
               !r->auth_retried) {
        r->auth_retried = 1;
        s->oauth_refresh_ms = 0; /* the token was refused: fetch anew */
        r->next = s->resend;
        s->resend = r;
        return;
    } else if (code == 410) {
        disable_endpoint(s, r);
        st = ES_FAIL;
        snprintf(reason, sizeof(reason),
                 "HTTP 410 Gone: endpoint disabled; body: %s", ex);
    } else if (code == 408 || code == 429 || code / 100 == 5) {
        st = ES_RETRY;
        snprintf(reason, sizeof(reason), "HTTP %ld%s%s: %s", code,
                 r->retry_after[0] ? ", Retry-After " : "", r->retry_after, ex);
        if (r->retry_after[0])
            hold_endpoint(s, r, code);
    } else if ((code == 400 || code == 413 || code == 422) && r->count > 1) {
        s->host->log(s->host, ES_LOG_WARN,
                     "batch rejected, resending its %zu events one by "
                     "one url=%s status=%ld body=\"%s\"",
                     r->count, s->safe_url, code, ex);
        isolate_batch(s, r);
        req_free(r);
        return;
    } else {
        st = ES_FAIL;
        snprintf(reason, sizeof(reason), "HTTP %ld%s: %s", code,
                 code / 100 == 3 ? " (redirects are not followed)" : "", ex);
    }
    for (size_t i = 0; i < r->count; i++) {
        complete(s, r->events[i], st, reason);
        event_free(r->events[i]);
    }
    pthread_mutex_lock(&s->mu);
    s->pending -= r->count;
    pthread_mutex_unlock(&s->mu);
    req_free(r);
}

static void reap(hs_sink_t *s)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(s->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        hs_req_t *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        finish(s, r, m->data.result);
    }
}

/* How long the worker may sleep: until the oldest batch is due, the rate
 * limiter has a token or the hold ends (curl adds its own timers). */
static int next_wait_ms(hs_sink_t *s)
{
    int64_t now = mono_ms(), wait = 1000;
    pthread_mutex_lock(&s->mu);
    if (s->head && s->inflight < (size_t)s->conf.max_concurrency) {
        wait = s->conf.mode == HS_MODE_BATCH
                   ? s->head->enq_ms + s->conf.batch_max_wait_ms - now
                   : 0;
        if (s->rate_rps > 0 && s->tokens < 1.0) {
            int64_t t = (int64_t)((1.0 - s->tokens) * 1000.0 / s->rate_rps) + 1;
            if (t > wait)
                wait = t;
        }
    }
    int held = s->hold_until_ms > now;
    if (held && s->hold_until_ms - now < wait)
        wait = s->hold_until_ms - now;
    pthread_mutex_unlock(&s->mu);
    if (s->resend && !held) /* a held resend waits for the hold's end */
        wait = 0;
    return wait < 0 ? 0 : wait > 1000 ? 1000 : (int)wait;
}

static void *worker(void *arg)
{
    hs_sink_t *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        start_requests(s);
        int running = 0;
        curl_multi_perform(s->multi, &running);
        reap(s);
        curl_multi_poll(s->multi, NULL, 0, next_wait_ms(s), NULL);
    }
    return NULL;
}

/* ----------------------------------------------------------- the plugin */

static int id_needs_encoding(const char *id)
{
    for (const char *p = id; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return 1;
    return 0;
}

static hs_event_t *event_copy(hs_sink_t *s, const es_event_t *ev, char *err,
                              size_t n)
{
    /* the id becomes the webhook-id header: no CR/LF smuggling */
    const char *id = ev->id ? ev->id : "";
    size_t id_len = strlen(id);
    hs_event_t *e = NULL;
    if (s->conf.mode != HS_MODE_BINARY && !id_needs_encoding(id)) {
        /* the common case: one allocation; structured JSON goes out as
         * the host gave it, without re-serialising */
        e = malloc(sizeof(*e) + id_len + 1 + ev->json_len + 1);
        if (!e)
            goto oom;
        memset(e, 0, sizeof(*e));
        e->id = e->inline_data;
        memcpy(e->id, id, id_len + 1);
        e->body = e->id + id_len + 1;
        memcpy(e->body, ev->json, ev->json_len);
        e->body[ev->json_len] = '\0';
        e->body_len = ev->json_len;
    } else {
        if (!(e = calloc(1, sizeof(*e))))
            goto oom;
        e->own = 1;
        e->id = id_needs_encoding(id) ? hs_pct_encode(id, id_len) : strdup(id);
        if (!e->id)
            goto oom;
        if (s->conf.mode == HS_MODE_BINARY) {
            if (hs_binary_encode(ev->ce, ev->json, ev->json_len, &e->ce_headers,
                                 &e->body, &e->body_len, err, n) != 0) {
                event_free(e);
                return NULL;
            }
        } else {
            if (!(e->body = malloc(ev->json_len + 1)))
                goto oom;
            memcpy(e->body, ev->json, ev->json_len);
            e->body[ev->json_len] = '\0';
            e->body_len = ev->json_len;
        }
    }
    e->token = ev->token;
    e->enq_ms = mono_ms();
    return e;
oom:
    event_free(e);
    snprintf(err, n, "https sink: out of memory");
    return NULL;
}

static void result_set(es_result_t *r, es_status_t st, const char *reason)
{
    r->status = st;
    snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
}

static void https_deliver(void *inst, const es_event_t *const *events,
                          size_t count, es_result_t *results)
{
    hs_sink_t *s = inst;
    char state[256] = "";
    es_status_t refuse = ES_PENDING;
    size_t room;
    /* decide and reserve room once per call, then copy without the lock */
    pthread_mutex_lock(&s->mu);
    if (s->disabled) {
        refuse = ES_FAIL;
        snprintf(state, sizeof(state), "%s", s->disabled_reason);
    } else if (mono_ms() < s->hold_until_ms) {
        refuse = ES_RETRY;
        snprintf(state, sizeof(state), "%s", s->hold_reason);
    }
    room = s->pending < (size_t)s->conf.max_pending_events
               ? (size_t)s->conf.max_pending_events - s->pending
               : 0;
    room = refuse != ES_PENDING ? 0 : room < count ? room : count;
    s->pending += room;
    pthread_mutex_unlock(&s->mu);

    hs_event_t *head = NULL, **tail = &head;
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        char err[256] = "";
        if (refuse != ES_PENDING) {
            result_set(&results[i], refuse, state);
            continue;
        }
        if (i >= room) {
            snprintf(err, sizeof(err),
                     "https sink queue full (%lld events pending)",
                     (long long)s->conf.max_pending_events);
            result_set(&results[i], ES_RETRY, err);
            continue;
        }
        hs_event_t *e = event_copy(s, events[i], err, sizeof(err));
        if (!e) {
            /* an event binary mode cannot carry will never go: dead-letter
             * it; a failed allocation may pass */
            result_set(&results[i], strstr(err, "memory") ? ES_RETRY : ES_FAIL,
                       err);
            continue;
        }
        *tail = e;
        tail = &e->next;
        used++;
        result_set(&results[i], ES_PENDING, NULL);
    }
    pthread_mutex_lock(&s->mu);
    s->pending -= room - used;
    if (head) {
        if (s->tail)
            s->tail->next = head;
        else
            s->head = head;
        for (hs_event_t *e = head; e; e = e->next)
            s->tail = e;
    }
    pthread_mutex_unlock(&s->mu);
    if (head)
        curl_multi_wakeup(s->multi);
}

static void https_flush(void *inst)
{
    /* the worker keeps its own batch timers; a wake-up is all it needs */
    hs_sink_t *s = inst;
    curl_multi_wakeup(s->multi);
}

static void https_destroy(void *inst)
{
    hs_sink_t *s = inst;
    if (!s)
        return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_mutex_unlock(&s->mu);
        curl_multi_wakeup(s->multi);
        pthread_join(s->thread, NULL);
    }
    /* pending events are abandoned: the host redelivers them */
    while (s->reqs) {
        hs_req_t *r = s->reqs;
        s->reqs = r->inext;
        curl_multi_remove_handle(s->multi, r->easy);
        for (size_t j = 0; j < r->count; j++)
            event_free(r->events[j]);
        req_free(r);
    }
    while (s->resend) {
        hs_req_t *r = s->resend;
        s->resend = r->next;
        for (size_t j = 0; j < r->count; j++)
            event_free(r->events[j]);
        req_free(r);
    }
    while (s->head) {
        hs_event_t *e = s->head;
        s->head = e->next;
        event_free(e);
    }
    while (s->npool)
        curl_easy_cleanup(s->pool[--s->npool]);
    while (s->nbufs)
        free(s->bufs[--s->nbufs].data);
    if (s->multi)
        curl_multi_cleanup(s->multi);
    pthread_mutex_destroy(&s->mu);
    if (s->oauth_token) {
        memset(s->oauth_token, 0, strlen(s->oauth_token));
        free(s->oauth_token);
    }
    free(s->safe_url);
    hs_conf_free(&s->conf);
    free(s);
    curl_global_cleanup();
}

static int https_init(const es_host_t *host, const cJSON *config,
                      void **instance, char *errstr, size_t errstr_size)
{
    hs_sink_t *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    s->host = host;
    pthread_mutex_init(&s->mu, NULL);
    if (hs_conf_parse(config, &s->conf, errstr, errstr_size) != 0)
        goto fail;
    s->safe_url = hs_safe_url(s->conf.url);
    s->multi = curl_multi_init();
    if (!s->safe_url || !s->multi) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    curl_multi_setopt(s->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      (long)s->conf.max_concurrency);
    s->tokens = (double)s->conf.rate_limit_burst;
    s->tokens_ms = mono_ms();
    s->rate_rps = (double)s->conf.rate_limit_rps;
    if (s->conf.tls_insecure_skip_verify)
        host->log(host, ES_LOG_WARN,
                  "TLS verification is OFF "
                  "(tls.insecure_skip_verify): the endpoint is not "
                  "authenticated; url=%s",
                  s->safe_url);
    if (strncasecmp(s->conf.url, "http://", 7) == 0)
        host->log(host, ES_LOG_WARN,
                  "plain http:// endpoint: events travel unencrypted "
                  "url=%s",
                  s->safe_url);
    if (pthread_create(&s->thread, NULL, worker, s) != 0) {
        snprintf(errstr, errstr_size, "cannot start the worker thread");
        goto fail;
    }
    s->thread_started = 1;
    host->log(host, ES_LOG_INFO,
              "https sink ready url=%s mode=%s gzip=%d signing=%zu "
              "auth=%s",
              s->safe_url,
              s->conf.mode == HS_MODE_BATCH    ? "batch"
              : s->conf.mode == HS_MODE_BINARY ? "binary"
                                               : "structured",
              s->conf.gzip, s->conf.secret_count,
              s->conf.auth_type_name ? s->conf.auth_type_name : "none");
    *instance = s;
    return 0;
fail:
    https_destroy(s);
    return -1;
}

static const es_plugin_t https_plugin = {
    .abi = ES_PLUGIN_ABI_VERSION,
    .size = sizeof(es_plugin_t),
    .name = "https",
    .version = "1.0.0",
    .kind = ES_KIND_SINK,
    .init = https_init,
    .deliver = https_deliver,
    .flush = https_flush,
    .destroy = https_destroy,
};

ES_PLUGIN_DEFINE(https_plugin)
