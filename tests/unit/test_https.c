/*
 * HTTPS sink tests: the plugin (compiled in) driven through a fake host
 * against a real TLS receiver on loopback (tests/peers/https/server.py, a
 * throwaway CA made by mkcerts.sh). The receiver checks the Standard
 * Webhooks signatures with Python's hmac, not with the plugin's code.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "eventstream/plugin.h"
#include "../../plugins/sinks/https/https.h"

const es_plugin_t *es_plugin_entry(uint32_t host_abi);

static char certs[256];
static int port, mtls_port;
static pid_t server_pid;
static const es_plugin_t *plugin;

/* ------------------------------------------------------------ fake host */

#define MAX_DONE 4096
typedef struct done_s {
    uint64_t token;
    es_status_t status;
    char reason[512];
} done_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static done_t dones[MAX_DONE];
static size_t ndone;
static char logs[65536];
static size_t logs_len;

static void fake_log(const es_host_t *h, es_log_level_t lvl, const char *fmt,
                     ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&mu);
    int n = snprintf(logs + logs_len, sizeof(logs) - logs_len, "%d %s\n",
                     (int)lvl, line);
    if (n > 0 && logs_len + (size_t)n < sizeof(logs))
        logs_len += (size_t)n;
    pthread_mutex_unlock(&mu);
}

static void fake_counter(const es_host_t *h, const char *name, uint64_t d)
{
}

static void fake_complete(const es_host_t *h, uint64_t token, es_status_t st,
                          const char *reason)
{
    pthread_mutex_lock(&mu);
    ck_assert_uint_lt(ndone, MAX_DONE);
    dones[ndone].token = token;
    dones[ndone].status = st;
    snprintf(dones[ndone].reason, sizeof(dones[ndone].reason), "%s",
             reason ? reason : "");
    ndone++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static es_host_t host = {
    .abi = ES_PLUGIN_ABI_VERSION,
    .size = sizeof(es_host_t),
    .instance_name = "test-https",
    .state_dir = "/tmp",
    .log = fake_log,
    .counter_add = fake_counter,
    .complete = fake_complete,
    .free = free,
};

/* ------------------------------------------------------- receiver control */

static cJSON *ctl(const char *method, const char *path, const char *body)
{
    char url[128];
    hs_buf_t resp = {0};
    snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", port, path);
    CURL *e = curl_easy_init();
    char ca[300];
    snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CAINFO, ca);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, hs_buf_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &resp);
    ck_assert_int_eq(curl_easy_perform(e), CURLE_OK);
    curl_easy_cleanup(e);
    cJSON *doc = resp.data ? cJSON_Parse(resp.data) : NULL;
    hs_buf_free(&resp);
    return doc;
}

static void server_config(const char *json)
{
    cJSON_Delete(ctl("POST", "/_ctl/config", json));
}

static cJSON *server_state(void)
{
    cJSON *s = ctl("GET", "/_ctl/state", NULL);
    ck_assert_ptr_nonnull(s);
    return s;
}

static int accepted_count(cJSON *state, const char *id)
{
    cJSON *a = cJSON_GetObjectItem(cJSON_GetObjectItem(state, "accepted"), id);
    return a ? a->valueint : 0;
}

static cJSON *request_n(cJSON *state, int i)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItem(state, "requests"), i);
}

static const char *req_header(cJSON *req, const char *name)
{
    cJSON *h = cJSON_GetObjectItem(cJSON_GetObjectItem(req, "headers"), name);
    return h ? h->valuestring : NULL;
}

static int n_requests(cJSON *state)
{
    return cJSON_GetArraySize(cJSON_GetObjectItem(state, "requests"));
}

/* ---------------------------------------------------------------- events */

typedef struct tev_s {
    es_event_t ev;
    char *json;
    cJSON *ce;
} tev_t;

static uint64_t next_token = 1;

static tev_t *tev_new(const char *json)
{
    tev_t *t = calloc(1, sizeof(*t));
    t->json = strdup(json);
    t->ce = cJSON_Parse(json);
    ck_assert_ptr_nonnull(t->ce);
    t->ev.json = t->json;
    t->ev.json_len = strlen(json);
    t->ev.ce = t->ce;
    t->ev.id = cJSON_GetObjectItem(t->ce, "id")->valuestring;
    t->ev.source = cJSON_GetObjectItem(t->ce, "source")->valuestring;
    t->ev.type = cJSON_GetObjectItem(t->ce, "type")->valuestring;
    t->ev.topic = "t";
    t->ev.route = "r";
    t->ev.token = next_token++;
    t->ev.attempt = 1;
    return t;
}

static tev_t *tev_simple(int i, const char *extra)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"specversion\":\"1.0\",\"id\":\"ev-%d\",\"source\":\"/t\","
             "\"type\":\"com.example.test\",\"data\":{\"n\":%d%s}}",
             i, i, extra ? extra : "");
    return tev_new(json);
}

static void tev_free(tev_t *t)
{
    cJSON_Delete(t->ce);
    free(t->json);
    free(t);
}

static void *inst_new(const char *config_json)
{
    char err[256] = "";
    void *inst = NULL;
    cJSON *cfg = cJSON_Parse(config_json);
    ck_assert_ptr_nonnull(cfg);
    int rc = plugin->init(&host, cfg, &inst, err, sizeof(err));
    cJSON_Delete(cfg);
    ck_assert_msg(rc == 0, "init failed: %s", err);
    return inst;
}

static char *init_error(const char *config_json)
{
    static char err[768];
    void *inst = NULL;
    cJSON *cfg = cJSON_Parse(config_json);
    int rc = plugin->init(&host, cfg, &inst, err, sizeof(err));
    cJSON_Delete(cfg);
    ck_assert_int_ne(rc, 0);
    return err;
}

/* Waits until the plugin completed `token`; returns its done_t copy. */
static done_t wait_done(uint64_t token, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&mu);
    for (;;) {
        for (size_t i = 0; i < ndone; i++)
            if (dones[i].token == token) {
                done_t d = dones[i];
                pthread_mutex_unlock(&mu);
                return d;
            }
        if (pthread_cond_timedwait(&cv, &mu, &dl) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&mu);
    ck_abort_msg("event token %llu not completed in %d ms",
                 (unsigned long long)token, timeout_ms);
    return (done_t){0};
}

static int token_completions(uint64_t token)
{
    int n = 0;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < ndone; i++)
        n += dones[i].token == token;
    pthread_mutex_unlock(&mu);
    return n;
}

/* Delivers once; returns the final status of each event (sync or async). */
static void deliver_once(void *inst, tev_t **t, size_t n, done_t *out,
                         int timeout_ms)
{
    const es_event_t **evs = calloc(n, sizeof(*evs));
    es_result_t *res = calloc(n, sizeof(*res));
    for (size_t i = 0; i < n; i++)
        evs[i] = &t[i]->ev;
    plugin->deliver(inst, evs, n, res);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_ne(res[i].status, 0);
        if (res[i].status == ES_PENDING) {
            out[i] = wait_done(t[i]->ev.token, timeout_ms);
        } else {
            out[i].token = t[i]->ev.token;
            out[i].status = res[i].status;
            snprintf(out[i].reason, sizeof(out[i].reason), "%s", res[i].reason);
        }
    }
    free(evs);
    free(res);
}

/* Plays the host: redelivers ES_RETRY (new token, attempt+1) with a short
 * backoff until every event is OK or FAIL or attempts run out. */
static void host_deliver(void *inst, tev_t **t, size_t n, done_t *final,
                         int max_attempts)
{
    done_t *d = calloc(n, sizeof(*d));
    tev_t **todo = calloc(n, sizeof(*todo));
    size_t *idx = calloc(n, sizeof(*idx));
    for (int attempt = 1; attempt <= max_attempts; attempt++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (attempt == 1 || final[i].status == ES_RETRY) {
                if (attempt > 1) {
                    t[i]->ev.token = next_token++;
                    t[i]->ev.attempt = (uint32_t)attempt;
                }
                todo[m] = t[i];
                idx[m++] = i;
            }
        if (!m)
            break;
        deliver_once(inst, todo, m, d, 10000);
        for (size_t j = 0; j < m; j++)
            final[idx[j]] = d[j];
        usleep(100000);
    }
    free(d);
    free(todo);
    free(idx);
}

/* ------------------------------------------------------------------ tests */

#define URL_FMT                                                                \
    "\"url\":\"https://127.0.0.1:%d/hook\",\"tls\":{\"ca_file\":\"%s/"         \
    "ca.pem\"}"

static char *cfg(const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "{" URL_FMT "%s%s}", port, certs,
             extra && *extra ? "," : "", extra ? extra : "");
    return buf;
}

START_TEST(config_errors)
{
    ck_assert_str_eq(init_error("{\"url\":\"https://x\",\"bogus\":1}"),
                     "bogus: unknown key");
    ck_assert_str_eq(init_error("{\"url\":\"https://x\",\"tls\":{\"cafile\":"
                                "\"x\"}}"),
                     "tls.cafile: unknown key");
    ck_assert_str_eq(init_error("{}"), "url: required");
    ck_assert_str_eq(init_error("{\"url\":\"ftp://x\"}"),
                     "url: must start with https:// (or http://)");
    ck_assert_ptr_nonnull(strstr(
        init_error("{\"url\":\"https://x\",\"mode\":\"zip\"}"), "mode:"));
    ck_assert_ptr_nonnull(
        strstr(init_error("{\"url\":\"https://x\",\"max_concurrency\":0}"),
               "max_concurrency: must be an integer from 1"));
    ck_assert_str_eq(init_error("{\"url\":\"https://x\",\"auth\":{\"type\":"
                                "\"oauth2\",\"client_id\":\"a\"}}"),
                     "auth.token_url: required for auth.type \"oauth2\"");
    char *e = init_error("{\"url\":\"https://x\",\"signing\":{\"secrets\":"
                         "[\"whsec_SECRETVALUE!!\"]}}");
    ck_assert_ptr_nonnull(strstr(e, "signing.secrets[0]"));
    ck_assert_ptr_null(strstr(e, "SECRETVALUE"));
    /* libcrypto's block decoder alone read a '=' inside as 'A' */
    ck_assert_ptr_nonnull(
        strstr(init_error("{\"url\":\"https://x\",\"signing\":{\"secrets\":"
                          "[\"whsec_b3=RoZXI\"]}}"),
               "signing.secrets[0]: must be a string \"whsec_<base64 key>\""));
    ck_assert_ptr_nonnull(strstr(
        init_error("{\"url\":\"https://x\",\"headers\":{\"X-A\":\"a\\r\\nB: "
                   "c\"}}"),
        "headers.X-A"));
    e = init_error("{\"url\":\"https://x\",\"auth\":{\"type\":\"bearer\","
                   "\"token\":\"SECRETVALUE\\r\\nX-Evil: 1\"}}");
    ck_assert_str_eq(e, "auth.token: must not hold a line break");
    /* Files libcurl would open only when it sends are checked at init. */
    ck_assert_str_eq(
        init_error("{\"url\":\"https://x\",\"tls\":{\"ca_file\":"
                   "\"/nonexistent/ca.pem\"}}"),
        "tls.ca_file: /nonexistent/ca.pem: No such file or directory");
    ck_assert_str_eq(init_error("{\"url\":\"https://x\",\"tls\":{"
                                "\"ca_file\":\"/tmp\"}}"),
                     "tls.ca_file: /tmp: Is a directory");
    ck_assert_str_eq(init_error("{\"url\":\"https://x\",\"tls\":{"
                                "\"ca_path\":\"/nonexistent\"}}"),
                     "tls.ca_path: /nonexistent: No such file or directory");
    ck_assert_str_eq(
        init_error("{\"url\":\"https://x\",\"tls\":{\"client_cert\":"
                   "\"/nonexistent/c.pem\",\"client_key\":\"/dev/null\"}}"),
        "tls.client_cert: /nonexistent/c.pem: No such file or directory");
    ck_assert_str_eq(
        init_error("{\"url\":\"https://x\",\"tls\":{\"client_cert\":"
                   "\"/dev/null\",\"client_key\":\"/nonexistent/k.pem\"}}"),
        "tls.client_key: /nonexistent/k.pem: No such file or directory");
    /* The origin goes into a header line and is compared with the
     * receiver's answer: a CR/LF, a space or 300 bytes are refused. */
    char cfgtext[512], longname[301];
    memset(longname, 'a', 300);
    longname[300] = '\0';
    const char *origins[] = {"a\\r\\nX-Evil: 1", "a b", "", longname};
    for (size_t i = 0; i < 4; i++) {
        snprintf(cfgtext, sizeof cfgtext,
                 "{\"url\":\"https://x\",\"handshake\":{\"origin\":\"%s\"}}",
                 origins[i]);
        ck_assert_str_eq(init_error(cfgtext),
                         "handshake.origin: must be a host name of 1 to 253 "
                         "printable ASCII characters, no spaces");
    }
}
END_TEST

START_TEST(helpers)
{
    char *p = hs_pct_encode("a b\"%\xc3\xa9~", 8);
    ck_assert_str_eq(p, "a%20b%22%25%C3%A9~");
    free(p);
    ck_assert_int_eq(hs_parse_retry_after(" 7", 0), 7);
    ck_assert_int_eq(
        hs_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470), 10);
    ck_assert_int_eq(hs_parse_retry_after("soon", 0), -1);
    char *u = hs_safe_url("https://user:pw@host:8443/p/a?token=s#f");
    ck_assert_str_eq(u, "https://host:8443/p/a");
    free(u);
    /* a key in the path (a node provider's, a chat webhook's token) */
    u = hs_safe_url("https://hooks.example/services/T0AAA1234/"
                    "Xk2dK9sQ3mZ8pL1wR7tY4vN6/in?sig=s");
    ck_assert_str_eq(u, "https://hooks.example/services/T0AAA1234/********/in");
    free(u);
}
END_TEST

static const char *const secret1 = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
static const char *const secret2 = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";

START_TEST(structured_signed)
{
    server_config("{\"reset\":true,\"secrets\":[\"whsec_MfKQ9r8GKYqrTwjUPD8IL"
                  "PZIo2LaLaSw\",\"whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24="
                  "\"]}");
    char extra[256];
    snprintf(extra, sizeof(extra),
             "\"signing\":{\"secrets\":[\"%s\",\"%s\"]},"
             "\"headers\":{\"X-Tenant\":\"acme\"}",
             secret1, secret2);
    void *inst = inst_new(cfg(extra));
    tev_t *t[3];
    done_t d[3];
    for (int i = 0; i < 3; i++)
        t[i] = tev_simple(i, ",\"s\":\"caf\\u00e9 \\\"q\\\"\"");
    deliver_once(inst, t, 3, d, 5000);
    cJSON *st = server_state();
    ck_assert_int_eq(n_requests(st), 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(d[i].status, ES_OK);
        cJSON *r = NULL;
        for (int k = 0; k < 3; k++)
            if (strcmp(req_header(request_n(st, k), "webhook-id"),
                       t[i]->ev.id) == 0)
                r = request_n(st, k);
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(cJSON_GetObjectItem(r, "body")->valuestring,
                         t[i]->json);
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "sig_ok")));
        ck_assert_str_eq(req_header(r, "content-type"),
                         "application/cloudevents+json; charset=UTF-8");
        ck_assert_str_eq(req_header(r, "x-tenant"), "acme");
        ck_assert_ptr_nonnull(
            strstr(req_header(r, "webhook-signature"), " v1,"));
        ck_assert_int_eq(accepted_count(st, t[i]->ev.id), 1);
    }
    cJSON_Delete(st);
    /* a receiver that knows another secret refuses the signature */
    server_config("{\"secrets\":[\"whsec_b3RoZXI=\"]}");
    tev_t *u = tev_simple(9, NULL);
    deliver_once(inst, &u, 1, d, 5000);
    ck_assert_int_eq(d[0].status, ES_FAIL);
    ck_assert_ptr_nonnull(strstr(d[0].reason, "HTTP 403: bad signature"));
    plugin->destroy(inst);
    ck_assert_ptr_null(strstr(logs, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    ck_assert_ptr_null(strstr(logs, "c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24"));
    for (int i = 0; i < 3; i++)
        tev_free(t[i]);
    tev_free(u);
}
END_TEST

START_TEST(binary_mode)
{
    server_config("{\"reset\":true}");
    void *inst = inst_new(cfg("\"mode\":\"binary\""));
    tev_t *t[2];
    done_t d[2];
    t[0] =
        tev_new("{\"specversion\":\"1.0\",\"id\":\"b-1\",\"source\":"
                "\"/caf\\u00e9 \\\"x\\\" 100%\",\"type\":\"t.v1\","
                "\"tenantid\":\"acme\",\"seq\":42,\"big\":1e300,\"flag\":true,"
                "\"datacontenttype\":\"application/json\","
                "\"data\":{\"a\":[1,2],\"b\":\"\\u00e9\",\"n\":"
                "12345678901234567891,\"f\":1.0}}");
    t[1] = tev_new("{\"specversion\":\"1.0\",\"id\":\"b-2\",\"source\":\"/s\","
                   "\"type\":\"t.v1\",\"datacontenttype\":\"text/plain\","
                   "\"data_base64\":\"aGVsbG8gd29ybGQ=\"}");
    deliver_once(inst, t, 2, d, 5000);
    ck_assert_int_eq(d[0].status, ES_OK);
    ck_assert_int_eq(d[1].status, ES_OK);
    cJSON *st = server_state();
    for (int k = 0; k < 2; k++) {
        cJSON *r = request_n(st, k);
        const char *body = cJSON_GetObjectItem(r, "body")->valuestring;
        if (strcmp(req_header(r, "ce-id"), "b-1") == 0) {
            ck_assert_str_eq(req_header(r, "ce-source"),
                             "/caf%C3%A9%20%22x%22%20100%25");
            ck_assert_str_eq(req_header(r, "ce-specversion"), "1.0");
            ck_assert_str_eq(req_header(r, "ce-tenantid"), "acme");
            ck_assert_str_eq(req_header(r, "ce-seq"), "42");
            /* beyond a long long: printed as a double, not cast (UB) */
            ck_assert_str_eq(req_header(r, "ce-big"),
                             "1.0000000000000001e+300");
            ck_assert_str_eq(req_header(r, "ce-flag"), "true");
            ck_assert_str_eq(req_header(r, "content-type"), "application/json");
            /* The data's own bytes: a reprint of cJSON's tree gave
             * "\xc3\xa9", 1.2345678901234567e+19 and 1. */
            ck_assert_str_eq(body, "{\"a\":[1,2],\"b\":\"\\u00e9\",\"n\":"
                                   "12345678901234567891,\"f\":1.0}");
            ck_assert_ptr_null(req_header(r, "ce-data"));
        } else {
            ck_assert_str_eq(req_header(r, "ce-id"), "b-2");
            ck_assert_str_eq(req_header(r, "content-type"), "text/plain");
            ck_assert_str_eq(body, "hello world");
        }
    }
    cJSON_Delete(st);
    plugin->destroy(inst);
    tev_free(t[0]);
    tev_free(t[1]);
}
END_TEST

START_TEST(batch_gzip_limits)
{
    server_config("{\"reset\":true,\"secrets\":[\"whsec_MfKQ9r8GKYqrTwjUPD8IL"
                  "PZIo2LaLaSw\"]}");
    char extra[300];
    snprintf(extra, sizeof(extra),
             "\"mode\":\"batch\",\"gzip\":true,\"batch\":{\"max_events\":4,"
             "\"max_wait_ms\":200},\"max_concurrency\":1,"
             "\"signing\":{\"secrets\":[\"%s\"]}",
             secret1);
    void *inst = inst_new(cfg(extra));
    tev_t *t[10];
    done_t d[10];
    for (int i = 0; i < 10; i++)
        t[i] = tev_simple(100 + i, NULL);
    deliver_once(inst, t, 10, d, 5000);
    cJSON *st = server_state();
    ck_assert_int_eq(n_requests(st), 3);
    int first = 0;
    for (int k = 0; k < 3; k++) {
        cJSON *r = request_n(st, k);
        int n = k < 2 ? 4 : 2;
        char want[4096] = "[";
        for (int i = first; i < first + n; i++) {
            strcat(want, t[i]->json);
            strcat(want, i + 1 < first + n ? "," : "]");
        }
        ck_assert_str_eq(cJSON_GetObjectItem(r, "body")->valuestring, want);
        ck_assert_str_eq(req_header(r, "content-type"),
                         "application/cloudevents-batch+json; charset=UTF-8");
        ck_assert_str_eq(req_header(r, "content-encoding"), "gzip");
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "sig_ok")));
        ck_assert_int_lt(cJSON_GetObjectItem(r, "raw_len")->valueint,
                         (int)strlen(want));
        first += n;
    }
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(d[i].status, ES_OK);
        ck_assert_int_eq(accepted_count(st, t[i]->ev.id), 1);
        tev_free(t[i]);
    }
    cJSON_Delete(st);
    plugin->destroy(inst);
}
END_TEST

START_TEST(batch_partial_failure)
{
    /* one bad event in a batch: the batch is split, the guilty event is
     * dead-lettered with the endpoint's answer, the others flow once */
    server_config("{\"reset\":true,\"reject_marker\":\"POISON\"}");
    void *inst = inst_new(cfg("\"mode\":\"batch\",\"batch\":{\"max_events\":"
                              "5,\"max_wait_ms\":50}"));
    tev_t *t[5];
    done_t d[5];
    for (int i = 0; i < 5; i++)
        t[i] = tev_simple(200 + i, i == 2 ? ",\"x\":\"POISON\"" : NULL);
    host_deliver(inst, t, 5, d, 3);
    cJSON *st = server_state();
    for (int i = 0; i < 5; i++) {
        if (i == 2) {
            ck_assert_int_eq(d[i].status, ES_FAIL);
            ck_assert_str_eq(d[i].reason, "HTTP 400: rejected: marked event");
            ck_assert_int_eq(accepted_count(st, t[i]->ev.id), 0);
        } else {
            ck_assert_int_eq(d[i].status, ES_OK);
            ck_assert_int_eq(accepted_count(st, t[i]->ev.id), 1);
        }
        ck_assert_int_eq(token_completions(t[i]->ev.token), 1);
        tev_free(t[i]);
    }
    ck_assert_int_eq(n_requests(st), 6); /* the batch + 5 singles */
    cJSON_Delete(st);
    plugin->destroy(inst);
}
END_TEST

START_TEST(retry_503_burst)
{
    server_config("{\"reset\":true,\"script\":[{\"status\":503},{\"status\":"
                  "503},{\"status\":503},{\"status\":502}]}");
    void *inst = inst_new(cfg("\"max_concurrency\":2"));
    tev_t *t[6];
    done_t d[6];
    for (int i = 0; i < 6; i++)
        t[i] = tev_simple(300 + i, NULL);
    host_deliver(inst, t, 6, d, 5);
    cJSON *st = server_state();
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(d[i].status, ES_OK);
        ck_assert_int_eq(accepted_count(st, t[i]->ev.id), 1);
        tev_free(t[i]);
    }
    ck_assert_int_eq(n_requests(st), 10);
    cJSON_Delete(st);
    plugin->destroy(inst);
}
END_TEST

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(retry_after_holds)
{
    server_config("{\"reset\":true,\"script\":[{\"status\":429,\"headers\":"
                  "{\"Retry-After\":\"2\"}}]}");
    void *inst = inst_new(cfg(NULL));
    tev_t *t = tev_simple(400, NULL);
    done_t d;
    deliver_once(inst, &t, 1, &d, 5000);
    double held_at = now_s();
    ck_assert_int_eq(d.status, ES_RETRY);
    ck_assert_ptr_nonnull(strstr(d.reason, "HTTP 429, Retry-After 2"));
    /* while held: answered at once, nothing sent */
    tev_t *u = tev_simple(401, NULL);
    deliver_once(inst, &u, 1, &d, 5000);
    ck_assert_int_eq(d.status, ES_RETRY);
    ck_assert_ptr_nonnull(strstr(d.reason, "held for 2s by Retry-After"));
    /* the host keeps retrying with its own backoff; the first request
     * after the 429 goes out only once the 2 s passed */
    tev_t *both[2] = {t, u};
    done_t fin[2];
    fin[0].status = fin[1].status = ES_RETRY;
    for (int i = 0;
         i < 40 && (fin[0].status == ES_RETRY || fin[1].status == ES_RETRY);
         i++) {
        for (int k = 0; k < 2; k++)
            if (fin[k].status == ES_RETRY) {
                both[k]->ev.token = next_token++;
                deliver_once(inst, &both[k], 1, &fin[k], 5000);
            }
        usleep(100000);
    }
    ck_assert_int_eq(fin[0].status, ES_OK);
    ck_assert_int_eq(fin[1].status, ES_OK);
    ck_assert(now_s() - held_at >= 1.9);
    cJSON *st = server_state();
    ck_assert_int_eq(n_requests(st), 3);
    double t429 = cJSON_GetObjectItem(request_n(st, 0), "t")->valuedouble;
    double t1 = cJSON_GetObjectItem(request_n(st, 1), "t")->valuedouble;
    ck_assert_msg(t1 - t429 >= 1.95, "resent after %.3fs", t1 - t429);
    ck_assert_int_eq(accepted_count(st, "ev-400"), 1);
    ck_assert_int_eq(accepted_count(st, "ev-401"), 1);
    cJSON_Delete(st);
    plugin->destroy(inst);
    tev_free(t);
    tev_free(u);
}
END_TEST

START_TEST(slow_response_times_out)
{
    server_config("{\"reset\":true,\"script\":[{\"delay_ms\":1500}]}");
    void *inst = inst_new(cfg("\"timeout_ms\":300"));
    tev_t *t = tev_simple(500, NULL);
    done_t d;
    double t0 = now_s();
    deliver_once(inst, &t, 1, &d, 5000);
    ck_assert_int_eq(d.status, ES_RETRY);
    ck_assert_ptr_nonnull(strstr(d.reason, "(timeout)"));
    ck_assert(now_s() - t0 < 1.2);
    host_deliver(inst, &t, 1, &d, 3);
    ck_assert_int_eq(d.status, ES_OK);
    plugin->destroy(inst);
    tev_free(t);
}
END_TEST

START_TEST(refused_connection)
{
    char c[512];
    /* the port of a socket that was just closed: nothing listens there */
    snprintf(c, sizeof(c),
             "{\"url\":\"https://127.0.0.1:1/hook\",\"tls\":{\"ca_file\":"
             "\"%s/ca.pem\"}}",
             certs);
    void *inst = inst_new(c);
    tev_t *t = tev_simple(600, NULL);
    done_t d;
    deliver_once(inst, &t, 1, &d, 5000);
    ck_assert_int_eq(d.status, ES_RETRY);
    ck_assert_ptr_nonnull(strstr(d.reason, "network error"));
    plugin->destroy(inst);
    tev_free(t);
}
END_TEST

START_TEST(bad_ca_refused)
{
    server_config("{\"reset\":true}");
    char c[512];
    snprintf(c, sizeof(c),
             "{\"url\":\"https://127.0.0.1:%d/hook\",\"tls\":{\"ca_file\":"
             "\"%s/other-ca.pem\"}}",
             port, certs);
    void *inst = inst_new(c);
    tev_t *t = tev_simple(700, NULL);
    done_t d;
    deliver_once(inst, &t, 1, &d, 5000);
    ck_assert_int_eq(d.status, ES_RETRY);
    ck_assert_msg(strstr(d.reason, "TLS error") &&
                      strstr(d.reason, "certificate"),
                  "reason: %s", d.reason);
    ck_assert_ptr_nonnull(strstr(logs, "TLS error"));
    plugin->destroy(inst);
    cJSON *st = server_state();
    ck_assert_int_eq(n_requests(st), 0);
    cJSON_Delete(st);
    tev_free(t);
}
END_TEST

#define MTLS_FMT                                                               \
    "{\"url\":\"https://localhost:%d/m\",\"tls\":{"                            \
    "\"ca_file\":\"%s/ca.pem\",\"client_cert\":\"%s/%s\","                     \
    "\"client_key\":\"%s/%s\"%s}}"

/* The client certificate and key are read at init: a mismatch, a key that
 * is not PEM, an encrypted key without (or with the wrong) password stop
 * it with the file; the right password gives a working mTLS delivery. */
START_TEST(mtls_key_checked_at_init)
{
    char c[1024], cmd[1024], want[768];
    snprintf(cmd, sizeof(cmd),
             "openssl pkey -in %s/client.key -aes256 -passout pass:pw "
             "-out %s/client-enc.key 2>/dev/null",
             certs, certs);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(c, sizeof(c), MTLS_FMT, mtls_port, certs, certs, "client.pem",
             certs, "server.key", "");
    snprintf(want, sizeof(want),
             "tls.client_key: %s/server.key is not the key of the "
             "certificate in %s/client.pem",
             certs, certs);
    ck_assert_str_eq(init_error(c), want);
    snprintf(c, sizeof(c), MTLS_FMT, mtls_port, certs, certs, "client.key",
             certs, "client.key", "");
    snprintf(want, sizeof(want),
             "tls.client_cert: %s/client.key holds no PEM certificate", certs);
    ck_assert_str_eq(init_error(c), want);
    snprintf(c, sizeof(c), MTLS_FMT, mtls_port, certs, certs, "client.pem",
             certs, "client-enc.key", "");
    snprintf(want, sizeof(want),
             "tls.client_key: %s/client-enc.key is encrypted: "
             "tls.client_key_password is required",
             certs);
    ck_assert_str_eq(init_error(c), want);
    snprintf(c, sizeof(c), MTLS_FMT, mtls_port, certs, certs, "client.pem",
             certs, "client-enc.key", ",\"client_key_password\":\"nope\"");
    snprintf(want, sizeof(want),
             "tls.client_key: %s/client-enc.key cannot be decrypted with "
             "tls.client_key_password",
             certs);
    ck_assert_str_eq(init_error(c), want);

    server_config("{\"reset\":true}");
    snprintf(c, sizeof(c), MTLS_FMT, mtls_port, certs, certs, "client.pem",
             certs, "client-enc.key", ",\"client_key_password\":\"pw\"");
    void *inst = inst_new(c);
    tev_t *t = tev_simple(810, NULL);
    done_t d;
    deliver_once(inst, &t, 1, &d, 5000);
    ck_assert_msg(d.status == ES_OK, "reason: %s", d.reason);
    plugin->destroy(inst);
    cJSON *st = server_state();
    ck_assert_int_eq(n_requests(st), 1);
    cJSON_Delete(st);
    tev_free(t);
}
END_TEST

START_TEST(mtls_required)
{
    server_config("{\"reset\":true}");
    char c[1024];
    snprintf(c, sizeof(c),
             "{\"url\":\"https://localhost:%d/m\",\"tls\":{\"ca_file\":"
             "\"%s/ca.pem\"}}",
             mtls_port, certs);
    void *inst = inst_new(c);
    tev_t *t = tev_simple(800, NULL);
    done_t d;
    deliver_once(inst, &t, 1, &d, 5000);
    ck_assert_int_eq(d.status, ES_RETRY);
    plugin->destroy(inst);
    snprintf(c, sizeof(c),
             "{\"url\":\"https://localhost:%d/m\",\"tls\":{\"ca_file\":"
             "\"%s/ca.pem\",\"client_cert\":\"%s/client.pem\",\"client_key\":"
             "\"%s/client.key\",\"min_version\":\"1.2\"}}",
             mtls_port, certs, certs, certs);
    inst = inst_new(c);
    t->ev.token = next_token++;
    deliver_once(inst, &t, 1, &d, 5000);
    ck_assert_msg(d.status == ES_OK, "reason: %s", d.reason);
    plugin->destroy(inst);
    cJSON *st = server_state();
    ck_assert_int_eq(n_requests(st), 1);
    ck_assert_int_eq(accepted_count(st, "ev-800"), 1);
    cJSON_Delete(st);
    tev_free(t);
}
END_TEST

START_TEST(gone_disables)
{
    server_config("{\"reset\":true,\"gone\":true}");
    void *inst = inst_new(cfg(NULL));
    tev_t *t = tev_simple(900, NULL);
    done_t d;
    deliver_once(inst, &t, 1, &d, 5000);
    ck_assert_int_eq(d.status, ES_FAIL);
    ck_assert_ptr_nonnull(strstr(d.reason, "HTTP 410 Gone"));
    ck_assert_ptr_nonnull(strstr(logs, "1 ENDPOINT DISABLED"));
    server_config("{\"gone\":false}");
    tev_t *u = tev_simple(901, NULL);
    deliver_once(inst, &u, 1, &d, 5000);
    ck_assert_int_eq(d.status, ES_FAIL);
    ck_assert_str_eq(d.reason, "endpoint disabled: HTTP 410 Gone");
    cJSON *st = server_state();
    ck_assert_int_eq(n_requests(st), 1);
    cJSON_Delete(st);
    plugin->destroy(inst);
    tev_free(t);
    tev_free(u);
}
END_TEST

START_TEST(redirect_not_followed)
{
    server_config("{\"reset\":true,\"script\":[{\"status\":302,\"headers\":"
                  "{\"Location\":\"https://evil.example/\"}}]}");
    void *inst = inst_new(cfg(NULL));
    tev_t *t = tev_simple(950, NULL);
    done_t d;
    deliver_once(inst, &t, 1, &d, 5000);
    ck_assert_int_eq(d.status, ES_FAIL);
    ck_assert_ptr_nonnull(strstr(d.reason, "redirects are not followed"));
    plugin->destroy(inst);
    tev_free(t);
}
END_TEST

START_TEST(oauth2_refresh_on_401)
{
    server_config("{\"reset\":true,\"bearer\":true}");
    char extra[512];
    snprintf(extra, sizeof(extra),
             "\"auth\":{\"type\":\"oauth2\",\"token_url\":\"https://"
             "127.0.0.1:%d/oauth/token\",\"client_id\":\"client-id\","
             "\"client_secret\":\"client-secret\",\"scope\":\"events:write\"}",
             port);
    void *inst = inst_new(cfg(extra));
    tev_t *t[3];
    done_t d[3];
    for (int i = 0; i < 3; i++)
        t[i] = tev_simple(1000 + i, NULL);
    deliver_once(inst, t, 2, d, 5000);
    ck_assert_int_eq(d[0].status, ES_OK);
    ck_assert_int_eq(d[1].status, ES_OK);
    cJSON_Delete(ctl("POST", "/_ctl/revoke", ""));
    deliver_once(inst, &t[2], 1, &d[2], 5000);
    ck_assert_msg(d[2].status == ES_OK, "reason: %s", d[2].reason);
    cJSON *st = server_state();
    ck_assert_int_eq(cJSON_GetObjectItem(st, "token_fetches")->valueint, 2);
    ck_assert_int_eq(n_requests(st), 4); /* 2 + a 401 + the resend */
    ck_assert_int_eq(cJSON_GetObjectItem(request_n(st, 2), "status")->valueint,
                     401);
    ck_assert_int_eq(accepted_count(st, "ev-1002"), 1);
    cJSON_Delete(st);
    plugin->destroy(inst);
    ck_assert_ptr_null(strstr(logs, "client-secret"));
    ck_assert_ptr_null(strstr(logs, "tok-"));
    for (int i = 0; i < 3; i++)
        tev_free(t[i]);
}
END_TEST

START_TEST(oauth2_refresh_before_expiry)
{
    /* a 2 s token is refreshed after half its life (margin capped) */
    server_config("{\"reset\":true,\"bearer\":true,\"token_ttl\":2}");
    char extra[512];
    snprintf(extra, sizeof(extra),
             "\"auth\":{\"type\":\"oauth2\",\"token_url\":\"https://"
             "127.0.0.1:%d/oauth/token\",\"client_id\":\"client-id\","
             "\"client_secret\":\"client-secret\"}",
             port);
    void *inst = inst_new(cfg(extra));
    tev_t *t = tev_simple(1050, NULL);
    done_t d;
    deliver_once(inst, &t, 1, &d, 5000);
    ck_assert_int_eq(d.status, ES_OK);
    usleep(1200000);
    t->ev.token = next_token++;
    deliver_once(inst, &t, 1, &d, 5000);
    ck_assert_int_eq(d.status, ES_OK);
    cJSON *st = server_state();
    ck_assert_int_eq(cJSON_GetObjectItem(st, "token_fetches")->valueint, 2);
    ck_assert_int_eq(n_requests(st), 2); /* no 401 on the way */
    cJSON_Delete(st);
    plugin->destroy(inst);
    tev_free(t);
}
END_TEST

START_TEST(oauth2_token_endpoint_refuses)
{
    server_config("{\"reset\":true,\"bearer\":true}");
    char extra[512];
    snprintf(extra, sizeof(extra),
             "\"auth\":{\"type\":\"oauth2\",\"token_url\":\"https://"
             "127.0.0.1:%d/oauth/token\",\"client_id\":\"client-id\","
             "\"client_secret\":\"wrong-secret\"}",
             port);
    void *inst = inst_new(cfg(extra));
    tev_t *t = tev_simple(1070, NULL);
    done_t d;
    deliver_once(inst, &t, 1, &d, 5000);
    ck_assert_int_eq(d.status, ES_RETRY);
    ck_assert_str_eq(d.reason, "oauth2 token endpoint answered HTTP 401");
    cJSON *st = server_state();
    ck_assert_int_eq(n_requests(st), 0); /* nothing sent without a token */
    cJSON_Delete(st);
    plugin->destroy(inst);
    ck_assert_ptr_null(strstr(logs, "wrong-secret"));
    tev_free(t);
}
END_TEST

START_TEST(rate_limited)
{
    server_config("{\"reset\":true}");
    void *inst = inst_new(cfg("\"rate_limit\":{\"requests_per_s\":10,"
                              "\"burst\":1},\"max_concurrency\":4"));
    tev_t *t[5];
    done_t d[5];
    for (int i = 0; i < 5; i++)
        t[i] = tev_simple(1060 + i, NULL);
    double t0 = now_s();
    deliver_once(inst, t, 5, d, 5000);
    double el = now_s() - t0;
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(d[i].status, ES_OK);
        tev_free(t[i]);
    }
    /* 1 at once, then one every 100 ms */
    ck_assert_msg(el >= 0.38, "5 requests at 10/s took %.3fs", el);
    cJSON *st = server_state();
    /* the receiver's clock, from the 2nd request (the 1st one also paid
     * for the TLS handshake): 3 more intervals of 100 ms, sent 300 ms
     * apart. A request on a new connection (max_concurrency 4) arrives
     * late by its own handshake, which a sanitizer build can stretch past
     * 100 ms, so the bound leaves room for that; requests let through
     * together would arrive within a few ms. */
    double second = cJSON_GetObjectItem(request_n(st, 1), "t")->valuedouble;
    double last = cJSON_GetObjectItem(request_n(st, 4), "t")->valuedouble;
    ck_assert_msg(last - second >= 0.15, "spread %.3fs", last - second);
    cJSON_Delete(st);
    plugin->destroy(inst);
}
END_TEST

START_TEST(basic_auth)
{
    server_config("{\"reset\":true,\"basic\":\"alice:s3cret\"}");
    void *inst = inst_new(cfg("\"auth\":{\"type\":\"basic\",\"username\":"
                              "\"alice\",\"password\":\"wrong\"}"));
    tev_t *t = tev_simple(1100, NULL);
    done_t d;
    deliver_once(inst, &t, 1, &d, 5000);
    ck_assert_int_eq(d.status, ES_FAIL);
    ck_assert_ptr_nonnull(strstr(d.reason, "HTTP 401"));
    plugin->destroy(inst);
    inst = inst_new(cfg("\"auth\":{\"type\":\"basic\",\"username\":"
                        "\"alice\",\"password\":\"s3cret\"}"));
    t->ev.token = next_token++;
    deliver_once(inst, &t, 1, &d, 5000);
    ck_assert_int_eq(d.status, ES_OK);
    plugin->destroy(inst);
    ck_assert_ptr_null(strstr(logs, "s3cret"));
    tev_free(t);
}
END_TEST

START_TEST(webhook_handshake)
{
    server_config("{\"reset\":true}");
    void *inst = inst_new(cfg("\"handshake\":{\"origin\":\"events.example."
                              "com\",\"interval_ms\":100}"));
    tev_t *t = tev_simple(1200, NULL);
    done_t d;
    deliver_once(inst, &t, 1, &d, 5000);
    ck_assert_int_eq(d.status, ES_RETRY);
    ck_assert_ptr_nonnull(strstr(d.reason, "webhook handshake"));
    server_config("{\"allow_origin\":\"events.example.com\"}");
    usleep(150000);
    t->ev.token = next_token++;
    deliver_once(inst, &t, 1, &d, 5000);
    ck_assert_msg(d.status == ES_OK, "reason: %s", d.reason);
    cJSON *st = server_state();
    cJSON *opt = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "options"), 1);
    ck_assert_str_eq(
        cJSON_GetObjectItem(opt, "webhook-request-origin")->valuestring,
        "events.example.com");
    ck_assert_int_eq(n_requests(st), 1);
    cJSON_Delete(st);
    plugin->destroy(inst);
    tev_free(t);
}
END_TEST

/* Five single-event requests through a fresh instance; seconds taken. */
static double five_requests(void *inst, int first_id)
{
    tev_t *t[5];
    done_t d[5];
    for (int i = 0; i < 5; i++)
        t[i] = tev_simple(first_id + i, NULL);
    double t0 = now_s();
    deliver_once(inst, t, 5, d, 10000);
    double el = now_s() - t0;
    for (int i = 0; i < 5; i++) {
        ck_assert_msg(d[i].status == ES_OK, "reason: %s", d[i].reason);
        tev_free(t[i]);
    }
    return el;
}

START_TEST(webhook_allowed_rate)
{
    /* The receiver grants 300 requests a minute (5/s) where the sink was
     * configured for 10/s: one at once, then one every 200 ms. */
    server_config("{\"reset\":true,\"allow_origin\":\"*\","
                  "\"allow_rate\":\"300\"}");
    void *inst = inst_new(cfg("\"handshake\":{\"origin\":\"events.example."
                              "com\",\"rate\":600},\"rate_limit\":{"
                              "\"requests_per_s\":10},\"max_concurrency\":4"));
    double el = five_requests(inst, 1250);
    ck_assert_msg(el >= 0.75, "5 requests at 300/min took %.3fs", el);
    ck_assert_ptr_nonnull(strstr(logs, "allows 300 requests per minute; "
                                       "sending at most 5 per second"));
    cJSON *st = server_state();
    cJSON *opt = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "options"), 0);
    ck_assert_str_eq(
        cJSON_GetObjectItem(opt, "webhook-request-rate")->valuestring, "600");
    cJSON_Delete(st);
    plugin->destroy(inst);

    /* A grant above the configured rate does not raise it. */
    server_config("{\"reset\":true,\"allow_origin\":\"*\","
                  "\"allow_rate\":\"6000\"}");
    inst = inst_new(cfg("\"handshake\":{\"origin\":\"e.example\"},"
                        "\"rate_limit\":{\"requests_per_s\":10},"
                        "\"max_concurrency\":4"));
    el = five_requests(inst, 1260);
    ck_assert_msg(el >= 0.38, "5 requests at 10/s took %.3fs", el);
    ck_assert_ptr_nonnull(strstr(logs, "sending at most 10 per second"));
    plugin->destroy(inst);

    /* "*" and a value that is not a rate leave the sink unlimited (the
     * second is logged); the request header is sent only when asked. */
    const char *grants[] = {"*", "fast"};
    const char *said[] = {"the receiver allows any rate",
                          "ignoring WebHook-Allowed-Rate \"fast\""};
    for (int i = 0; i < 2; i++) {
        char c[128];
        snprintf(c, sizeof c,
                 "{\"reset\":true,\"allow_origin\":\"*\","
                 "\"allow_rate\":\"%s\"}",
                 grants[i]);
        server_config(c);
        inst = inst_new(cfg("\"handshake\":{\"origin\":\"e.example\"}"));
        five_requests(inst, 1270 + 10 * i);
        ck_assert_ptr_nonnull(strstr(logs, said[i]));
        st = server_state();
        opt = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "options"), 0);
        ck_assert_ptr_null(cJSON_GetObjectItem(opt, "webhook-request-rate"));
        ck_assert_int_eq(n_requests(st), 5);
        cJSON_Delete(st);
        plugin->destroy(inst);
    }
}
END_TEST

START_TEST(queue_full_and_insecure)
{
    server_config("{\"reset\":true,\"delay_ms\":300}");
    char c[512];
    snprintf(c, sizeof(c),
             "{\"url\":\"https://127.0.0.1:%d/hook\",\"max_pending_events\":"
             "2,\"tls\":{\"insecure_skip_verify\":true}}",
             port);
    void *inst = inst_new(c);
    ck_assert_ptr_nonnull(strstr(logs, "2 TLS verification is OFF"));
    tev_t *t[3];
    const es_event_t *evs[3];
    es_result_t res[3];
    for (int i = 0; i < 3; i++) {
        t[i] = tev_simple(1300 + i, NULL);
        evs[i] = &t[i]->ev;
    }
    plugin->deliver(inst, evs, 3, res);
    ck_assert_int_eq(res[0].status, ES_PENDING);
    ck_assert_int_eq(res[1].status, ES_PENDING);
    ck_assert_int_eq(res[2].status, ES_RETRY);
    ck_assert_ptr_nonnull(strstr(res[2].reason, "queue full"));
    ck_assert_int_eq(wait_done(t[0]->ev.token, 5000).status, ES_OK);
    ck_assert_int_eq(wait_done(t[1]->ev.token, 5000).status, ES_OK);
    plugin->destroy(inst);
    for (int i = 0; i < 3; i++)
        tev_free(t[i]);
}
END_TEST

START_TEST(destroy_with_pending)
{
    /* destroy while requests are in flight abandons them (no complete) */
    server_config("{\"reset\":true,\"delay_ms\":500}");
    void *inst = inst_new(cfg("\"mode\":\"batch\""));
    tev_t *t = tev_simple(1400, NULL);
    const es_event_t *ev = &t->ev;
    es_result_t res;
    plugin->deliver(inst, &ev, 1, &res);
    ck_assert_int_eq(res.status, ES_PENDING);
    usleep(150000);
    plugin->destroy(inst);
    ck_assert_int_eq(token_completions(t->ev.token), 0);
    tev_free(t);
}
END_TEST

/* ------------------------------------------------------------------ main */

static void start_server(void)
{
    char cmd[1024];
    snprintf(certs, sizeof(certs), "/tmp/es-https-test-XXXXXX");
    if (!mkdtemp(certs))
        exit(99);
    snprintf(cmd, sizeof(cmd), "sh %s/mkcerts.sh %s", HTTPS_PEER_DIR, certs);
    if (system(cmd) != 0) {
        fprintf(stderr, "mkcerts.sh failed\n");
        exit(99);
    }
    int fds[2];
    if (pipe(fds) != 0)
        exit(99);
    server_pid = fork();
    if (server_pid == 0) {
        /* the receiver must not outlive a crashed test run */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fds[1], 1);
        close(fds[0]);
        char script[512];
        snprintf(script, sizeof(script), "%s/server.py", HTTPS_PEER_DIR);
        execlp("python3", "python3", script, certs, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[256] = "";
    FILE *f = fdopen(fds[0], "r");
    if (!fgets(line, sizeof(line), f) ||
        sscanf(line, "{\"port\": %d, \"mtls_port\": %d}", &port, &mtls_port) !=
            2) {
        fprintf(stderr, "the TLS test server did not start: %s\n", line);
        exit(99);
    }
    fclose(f);
}

static void stop_server(void)
{
    char cmd[512];
    kill(server_pid, SIGTERM);
    waitpid(server_pid, NULL, 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", certs);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", certs);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    plugin = es_plugin_entry(ES_PLUGIN_ABI_VERSION);
    start_server();
    Suite *s = suite_create("https");
    TCase *tc = tcase_create("sink");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, config_errors);
    tcase_add_test(tc, helpers);
    tcase_add_test(tc, structured_signed);
    tcase_add_test(tc, binary_mode);
    tcase_add_test(tc, batch_gzip_limits);
    tcase_add_test(tc, batch_partial_failure);
    tcase_add_test(tc, retry_503_burst);
    tcase_add_test(tc, retry_after_holds);
    tcase_add_test(tc, slow_response_times_out);
    tcase_add_test(tc, refused_connection);
    tcase_add_test(tc, bad_ca_refused);
    tcase_add_test(tc, mtls_required);
    tcase_add_test(tc, mtls_key_checked_at_init);
    tcase_add_test(tc, gone_disables);
    tcase_add_test(tc, redirect_not_followed);
    tcase_add_test(tc, oauth2_refresh_on_401);
    tcase_add_test(tc, oauth2_refresh_before_expiry);
    tcase_add_test(tc, oauth2_token_endpoint_refuses);
    tcase_add_test(tc, rate_limited);
    tcase_add_test(tc, basic_auth);
    tcase_add_test(tc, webhook_handshake);
    tcase_add_test(tc, webhook_allowed_rate);
    tcase_add_test(tc, queue_full_and_insecure);
    tcase_add_test(tc, destroy_with_pending);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    stop_server();
    curl_global_cleanup();
    return failed ? 1 : 0;
}
