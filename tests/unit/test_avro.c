/*
 * Unit tests of the Avro decoder against values encoded by Debian's
 * python3-avro (tests/unit/avro_fixtures.py) and a loopback schema-registry
 * stand-in (tests/unit/avro_registry.py).
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "es_avro.h"

#ifndef ES_AVRO_TEST_SRCDIR
#define ES_AVRO_TEST_SRCDIR "."
#endif

static char workdir[256];
static cJSON *fixtures; /* cases.json */
static int reg_port, slow_port, tls_port;
static pid_t reg_pid, slow_pid, tls_pid;

static const char *python(void)
{
    const char *p = getenv("ES_PYTHON");
    return p ? p : "/usr/bin/python3";
}

static void script_path(char *buf, size_t n, const char *name)
{
    const char *src = getenv("srcdir");
    snprintf(buf, n, "%s/tests/unit/%s", src ? src : ES_AVRO_TEST_SRCDIR, name);
    if (access(buf, R_OK) != 0)
        snprintf(buf, n, "%s/tests/unit/%s", ES_AVRO_TEST_SRCDIR, name);
}

/* Starts avro_registry.py and returns its port (its pid in *pid). */
static int start_registry(const char *extra1, const char *extra2,
                          const char *extra3, pid_t *pid)
{
    char script[512], dir[300], line[64] = "";
    int fds[2];
    script_path(script, sizeof(script), "avro_registry.py");
    snprintf(dir, sizeof(dir), "%s/registry", workdir);
    if (pipe(fds) != 0)
        abort();
    *pid = fork();
    if (*pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execl(python(), python(), script, dir, extra1, extra2, extra3,
              (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    if (!f || !fgets(line, sizeof(line), f) || strncmp(line, "port=", 5)) {
        fprintf(stderr, "registry stand-in did not start\n");
        exit(1);
    }
    fclose(f);
    return atoi(line + 5);
}

static void url_of(char *buf, size_t n, int port)
{
    snprintf(buf, n, "http://127.0.0.1:%d/", port);
}

static es_avro_t *decoder(int port, const char *password, const char *extra)
{
    char json[512], url[64], err[256];
    url_of(url, sizeof(url), port);
    snprintf(json, sizeof(json),
             "{\"url\": \"%s\", \"username\": \"user\", \"password\": \"%s\", "
             "\"timeout_ms\": 3000 %s}",
             url, password, extra ? extra : "");
    cJSON *cfg = cJSON_Parse(json);
    ck_assert_ptr_nonnull(cfg);
    es_avro_t *a = es_avro_new(cfg, err, sizeof(err));
    cJSON_Delete(cfg);
    ck_assert_msg(a != NULL, "es_avro_new: %s", err);
    const cJSON *local = cJSON_GetObjectItem(fixtures, "local"), *t;
    cJSON_ArrayForEach(t, local)
    {
        ck_assert_msg(es_avro_add_local_schema(a, t->string, t->valuestring,
                                               err, sizeof(err)) == 0,
                      "%s", err);
    }
    return a;
}

static unsigned char *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    unsigned char *out = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
    *len = n;
    return out;
}

static long hits(int port, int id)
{
    char url[128];
    FILE *mem;
    char *body = NULL;
    size_t len = 0;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_hits/%d", port, id);
    mem = open_memstream(&body, &len);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, mem);
    ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
    curl_easy_cleanup(h);
    fclose(mem);
    cJSON *j = cJSON_Parse(body);
    long n = (long)cJSON_GetObjectItem(j, "hits")->valuedouble;
    cJSON_Delete(j);
    free(body);
    return n;
}

static const char *status_name(es_avro_status_t st)
{
    return st == ES_AVRO_OK ? "ok" : st == ES_AVRO_RETRY ? "retry" : "fail";
}

/* One case of cases.json per loop iteration. */
START_TEST(test_case)
{
    const cJSON *c =
        cJSON_GetArrayItem(cJSON_GetObjectItem(fixtures, "cases"), _i);
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    const char *topic = cJSON_GetObjectItem(c, "topic")->valuestring;
    const char *want = cJSON_GetObjectItem(c, "status")->valuestring;
    const cJSON *expect = cJSON_GetObjectItem(c, "expect");
    const cJSON *reason = cJSON_GetObjectItem(c, "reason");
    int event_mode =
        strcmp(cJSON_GetObjectItem(c, "mode")->valuestring, "event") == 0;
    es_header_t hdrs[16];
    size_t nh = 0;
    const cJSON *h;
    cJSON_ArrayForEach(h, cJSON_GetObjectItem(c, "headers"))
    {
        hdrs[nh].name = h->string;
        hdrs[nh].value = h->valuestring;
        hdrs[nh].value_len = strlen(h->valuestring);
        nh++;
    }
    size_t len;
    unsigned char *value =
        unhex(cJSON_GetObjectItem(c, "hex")->valuestring, &len);
    es_avro_t *a = decoder(reg_port, "secret", NULL);
    cJSON *out = NULL;
    char why[256];
    es_avro_status_t st = event_mode
                              ? es_avro_decode(a, topic, value, len, hdrs, nh,
                                               &out, why, sizeof(why))
                              : es_avro_decode_value(a, topic, value, len, &out,
                                                     why, sizeof(why));
    ck_assert_msg(strcmp(status_name(st), want) == 0,
                  "%s: status %s, want %s (%s)", name, status_name(st), want,
                  st == ES_AVRO_OK ? "" : why);
    if (st == ES_AVRO_OK) {
        char *text = cJSON_PrintUnformatted(out);
        /* Compare as JSON text re-parsed, so big integers printed exactly
         * by the decoder compare like the expectation's. */
        cJSON *again = cJSON_Parse(text);
        ck_assert_msg(cJSON_Compare(again, expect, 1), "%s: got %s", name,
                      text);
        if (strcmp(name, "all_types") == 0) {
            ck_assert_msg(strstr(text, "\"big\":9007199254740993"), "%s", text);
            ck_assert_msg(strstr(text, "\"neg\":-9223372036854775808"), "%s",
                          text);
        }
        cJSON_Delete(again);
        free(text);
    } else {
        ck_assert_ptr_null(out);
        ck_assert_msg(strstr(why, reason->valuestring), "%s: reason \"%s\"",
                      name, why);
    }
    cJSON_Delete(out);
    es_avro_destroy(a);
    free(value);
}
END_TEST

static es_avro_status_t decode_hex(es_avro_t *a, const char *topic,
                                   const char *case_name, char *why, size_t n)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(fixtures, "cases"))
    {
        if (strcmp(cJSON_GetObjectItem(c, "name")->valuestring, case_name))
            continue;
        size_t len;
        unsigned char *v =
            unhex(cJSON_GetObjectItem(c, "hex")->valuestring, &len);
        cJSON *out = NULL;
        es_avro_status_t st =
            es_avro_decode_value(a, topic, v, len, &out, why, n);
        cJSON_Delete(out);
        free(v);
        return st;
    }
    ck_abort_msg("no case %s", case_name);
    return ES_AVRO_FAIL;
}

START_TEST(test_registry_unreachable_is_retry)
{
    char why[256];
    /* Port 1 on loopback: nothing listens there. */
    es_avro_t *a = decoder(1, "secret", ", \"connect_timeout_ms\": 500");
    ck_assert_int_eq(decode_hex(a, "shop", "all_types", why, sizeof(why)),
                     ES_AVRO_RETRY);
    ck_assert_msg(strstr(why, "schema registry unreachable fetching id 1"),
                  "%s", why);
    es_avro_destroy(a);
}
END_TEST

START_TEST(test_wrong_password_is_retry)
{
    char why[256];
    es_avro_t *a = decoder(reg_port, "wrong", NULL);
    ck_assert_int_eq(
        decode_hex(a, "shop", "item_by_other_id", why, sizeof(why)),
        ES_AVRO_RETRY);
    ck_assert_msg(strstr(why, "HTTP 401"), "%s", why);
    ck_assert_msg(!strstr(why, "wrong"), "password leaked: %s", why);
    es_avro_destroy(a);
}
END_TEST

typedef struct {
    es_avro_t *a;
    pthread_barrier_t *go;
    es_avro_status_t st;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    char why[256];
    pthread_barrier_wait(w->go);
    w->st = decode_hex(w->a, "shop", "item_by_other_id", why, sizeof(why));
    return NULL;
}

START_TEST(test_fetched_once_under_concurrency)
{
    enum { N = 8 };
    pthread_t t[N];
    worker_t w[N];
    pthread_barrier_t go;
    char why[256];
    es_avro_t *a = decoder(slow_port, "x", NULL);
    long before = hits(slow_port, 7);
    pthread_barrier_init(&go, NULL, N);
    for (int i = 0; i < N; i++) {
        w[i] = (worker_t){a, &go, 0};
        pthread_create(&t[i], NULL, worker, &w[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(w[i].st, ES_AVRO_OK);
    }
    ck_assert_int_eq(hits(slow_port, 7) - before, 1);
    ck_assert_int_eq(
        decode_hex(a, "shop", "item_by_other_id", why, sizeof(why)),
        ES_AVRO_OK);
    ck_assert_int_eq(hits(slow_port, 7) - before, 1);
    pthread_barrier_destroy(&go);
    es_avro_destroy(a);
}
END_TEST

START_TEST(test_failed_fetch_is_not_cached)
{
    char why[256];
    es_avro_t *a = decoder(reg_port, "secret", NULL);
    long before = hits(reg_port, 999);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(
            decode_hex(a, "shop", "unknown_schema_id", why, sizeof(why)),
            ES_AVRO_FAIL);
    ck_assert_int_eq(hits(reg_port, 999) - before, 2);
    es_avro_destroy(a);
}
END_TEST

/* A transient failure is held for retry_hold_ms: one request per id per
 * hold period while the registry is down, then it asks again. */
START_TEST(test_retry_is_held)
{
    char why[256];
    es_avro_t *a = decoder(reg_port, "secret", ", \"retry_hold_ms\": 400");
    long before = hits(reg_port, 500);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(
            decode_hex(a, "shop", "registry_5xx", why, sizeof(why)),
            ES_AVRO_RETRY);
    ck_assert_int_eq(hits(reg_port, 500) - before, 1);
    ck_assert_msg(strstr(why, "HTTP 503"), "%s", why);
    usleep(500 * 1000);
    ck_assert_int_eq(decode_hex(a, "shop", "registry_5xx", why, sizeof(why)),
                     ES_AVRO_RETRY);
    ck_assert_int_eq(hits(reg_port, 500) - before, 2);
    es_avro_destroy(a);
}
END_TEST

START_TEST(test_cache_size_evicts)
{
    char why[256];
    es_avro_t *a = decoder(reg_port, "secret", ", \"cache_size\": 1");
    long before = hits(reg_port, 7);
    ck_assert_int_eq(
        decode_hex(a, "shop", "item_by_other_id", why, sizeof(why)),
        ES_AVRO_OK);
    ck_assert_int_eq(decode_hex(a, "shop", "enum_ok", why, sizeof(why)),
                     ES_AVRO_OK);
    ck_assert_int_eq(
        decode_hex(a, "shop", "item_by_other_id", why, sizeof(why)),
        ES_AVRO_OK);
    ck_assert_int_eq(hits(reg_port, 7) - before, 2);
    es_avro_destroy(a);
}
END_TEST

START_TEST(test_schemas_listing)
{
    char why[256];
    es_avro_t *a = decoder(reg_port, "secret", NULL);
    ck_assert_int_eq(
        decode_hex(a, "shop", "item_by_other_id", why, sizeof(why)),
        ES_AVRO_OK);
    ck_assert_int_eq(decode_hex(a, "shop", "enum_ok", why, sizeof(why)),
                     ES_AVRO_OK);
    ck_assert_int_eq(decode_hex(a, "iot", "local_wire", why, sizeof(why)),
                     ES_AVRO_OK);
    cJSON *list = es_avro_schemas(a);
    char *text = cJSON_PrintUnformatted(list);
    cJSON *shop = cJSON_GetObjectItem(list, "shop");
    cJSON *iot = cJSON_GetObjectItem(list, "iot");
    ck_assert_int_eq(cJSON_GetArraySize(shop), 2);
    ck_assert_msg(strstr(text, "{\"source\":\"registry\",\"id\":7,\"name\":"
                               "\"com.example.shop.Item\"}"),
                  "%s", text);
    ck_assert_int_eq(cJSON_GetArraySize(iot), 2);
    ck_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetArrayItem(iot, 0), "source")->valuestring,
        "local");
    ck_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetArrayItem(iot, 0), "name")->valuestring,
        "com.example.iot.Reading");
    free(text);
    cJSON_Delete(list);
    es_avro_destroy(a);
}
END_TEST

START_TEST(test_no_registry)
{
    char err[256], why[256];
    es_avro_t *a = es_avro_new(NULL, err, sizeof(err));
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(
        decode_hex(a, "shop", "item_by_other_id", why, sizeof(why)),
        ES_AVRO_FAIL);
    ck_assert_msg(strstr(why, "no schema_registry is configured"), "%s", why);
    es_avro_destroy(a);
}
END_TEST

START_TEST(test_max_message_bytes)
{
    char why[256];
    es_avro_t *a = decoder(reg_port, "secret", ", \"max_message_bytes\": 10");
    ck_assert_int_eq(decode_hex(a, "shop", "all_types", why, sizeof(why)),
                     ES_AVRO_FAIL);
    ck_assert_msg(strstr(why, "oversize value:"), "%s", why);
    ck_assert_msg(strstr(why, "max_message_bytes is 10"), "%s", why);
    es_avro_destroy(a);
}
END_TEST

static void config_error(const char *json, const char *want)
{
    char err[256] = "";
    cJSON *cfg = cJSON_Parse(json);
    es_avro_t *a = es_avro_new(cfg, err, sizeof(err));
    ck_assert_msg(a == NULL, "%s accepted", json);
    ck_assert_msg(strstr(err, want), "%s: got \"%s\", want \"%s\"", json, err,
                  want);
    cJSON_Delete(cfg);
}

START_TEST(test_config_errors)
{
    config_error("{\"urll\": \"http://x\"}", "schema_registry.urll: unknown "
                                             "key");
    config_error("{\"url\": 5}", "schema_registry.url: must be a non-empty "
                                 "string");
    config_error("{\"url\": \"ftp://x\"}", "schema_registry.url: must start");
    config_error("{\"url\": \"http://x\", \"verify\": 1}",
                 "schema_registry.verify: must be true or false");
    config_error("{\"url\": \"http://x\", \"timeout_ms\": 0}",
                 "schema_registry.timeout_ms: must be an integer");
    config_error("{\"url\": \"http://x\", \"cache_size\": 1.5}",
                 "schema_registry.cache_size: must be an integer");
    /* out of range of a long: refused before the cast (UBSan) */
    config_error("{\"url\": \"http://x\", \"cache_size\": 1e300}",
                 "schema_registry.cache_size: must be an integer");
    config_error("{\"password\": \"p\"}", "schema_registry.url: required");
    config_error("{\"url\": \"https://x\", \"ca_file\": \"/nonexistent.pem\"}",
                 "schema_registry.ca_file: /nonexistent.pem: No such file or "
                 "directory");
    config_error("[]", "schema_registry: must be an object");
    config_error("{\"retry_hold_ms\": -1}",
                 "schema_registry.retry_hold_ms: must be an integer");
}
END_TEST

START_TEST(test_local_schema_errors)
{
    char err[256], path[400];
    es_avro_t *a = es_avro_new(NULL, err, sizeof(err));
    ck_assert_int_eq(
        es_avro_add_local_schema(a, "t", "/nonexistent.avsc", err, sizeof(err)),
        -1);
    ck_assert_msg(strstr(err, "/nonexistent.avsc: No such file"), "%s", err);
    snprintf(path, sizeof(path), "%s/local/broken.avsc", workdir);
    ck_assert_int_eq(es_avro_add_local_schema(a, "t", path, err, sizeof(err)),
                     -1);
    ck_assert_msg(strstr(err, "broken.avsc: not a valid Avro schema"), "%s",
                  err);
    ck_assert_int_eq(es_avro_has_local_schema(a, "t"), 0);
    es_avro_destroy(a);
}
END_TEST

/* Every truncation and many single-byte corruptions of a valid value must
 * end in OK or FAIL with a reason: never a crash, a sanitizer report or an
 * allocation sized by garbage. */
START_TEST(test_mutations)
{
    const cJSON *c =
        cJSON_GetArrayItem(cJSON_GetObjectItem(fixtures, "cases"), 0);
    size_t len;
    unsigned char *orig =
        unhex(cJSON_GetObjectItem(c, "hex")->valuestring, &len);
    unsigned char *v = malloc(len);
    static const int deltas[] = {1, -1, 0x40, 0x80};
    es_avro_t *a = decoder(reg_port, "secret", NULL);
    size_t ok = 0, failed = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        cJSON *out = NULL;
        char why[256];
        es_avro_status_t st =
            es_avro_decode_value(a, "shop", orig, cut, &out, why, sizeof(why));
        ck_assert_msg(st == (cut == len ? ES_AVRO_OK : ES_AVRO_FAIL),
                      "cut %zu: %s", cut, why);
        cJSON_Delete(out);
    }
    for (size_t i = 5; i < len; i++) {
        for (size_t d = 0; d < sizeof(deltas) / sizeof(deltas[0]); d++) {
            cJSON *out = NULL;
            char why[256] = "";
            memcpy(v, orig, len);
            v[i] = (unsigned char)(v[i] + deltas[d]);
            es_avro_status_t st =
                es_avro_decode_value(a, "shop", v, len, &out, why, sizeof(why));
            ck_assert_msg(st == ES_AVRO_OK || st == ES_AVRO_FAIL, "%zu: %s", i,
                          why);
            ck_assert(st == ES_AVRO_OK ? out != NULL : why[0] != '\0');
            st == ES_AVRO_OK ? ok++ : failed++;
            cJSON_Delete(out);
        }
    }
    ck_assert_uint_gt(failed, 0);
    ck_assert_uint_gt(ok, 0);
    es_avro_destroy(a);
    free(v);
    free(orig);
}
END_TEST

/* A throwaway CA and a certificate for 127.0.0.1 signed by it. */
static int start_tls_registry(pid_t *pid)
{
    char cmd[2048], cert[300], key[300];
    snprintf(cmd, sizeof(cmd),
             "(cd '%s' && openssl req -x509 -newkey rsa:2048 -nodes -days 2 "
             "-subj /CN=test-ca -keyout ca.key -out ca.pem && "
             "openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 "
             "-keyout srv.key -out srv.csr && "
             "printf 'subjectAltName=IP:127.0.0.1' > san.ext && "
             "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
             "-CAcreateserial -days 2 -extfile san.ext -out srv.pem) "
             ">/dev/null 2>&1",
             workdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "openssl failed\n");
        exit(1);
    }
    snprintf(cert, sizeof(cert), "%s/srv.pem", workdir);
    snprintf(key, sizeof(key), "%s/srv.key", workdir);
    return start_registry("--tls", cert, key, pid);
}

static es_avro_t *tls_decoder(const char *extra)
{
    char json[700], err[256];
    snprintf(json, sizeof(json),
             "{\"url\": \"https://127.0.0.1:%d\", \"timeout_ms\": 3000 %s}",
             tls_port, extra);
    cJSON *cfg = cJSON_Parse(json);
    es_avro_t *a = es_avro_new(cfg, err, sizeof(err));
    cJSON_Delete(cfg);
    ck_assert_msg(a != NULL, "es_avro_new: %s", err);
    return a;
}

START_TEST(test_tls_registry)
{
    char why[256], extra[400];
    /* Trusted through ca_file. */
    snprintf(extra, sizeof(extra), ", \"ca_file\": \"%s/ca.pem\"", workdir);
    es_avro_t *a = tls_decoder(extra);
    ck_assert_int_eq(
        decode_hex(a, "shop", "item_by_other_id", why, sizeof(why)),
        ES_AVRO_OK);
    es_avro_destroy(a);
    /* Unknown CA: not trusted, so retried (a config problem, not the
     * event's). */
    a = tls_decoder("");
    ck_assert_int_eq(
        decode_hex(a, "shop", "item_by_other_id", why, sizeof(why)),
        ES_AVRO_RETRY);
    ck_assert_msg(strstr(why, "schema registry unreachable"), "%s", why);
    es_avro_destroy(a);
    /* verify: false accepts it. */
    a = tls_decoder(", \"verify\": false");
    ck_assert_int_eq(
        decode_hex(a, "shop", "item_by_other_id", why, sizeof(why)),
        ES_AVRO_OK);
    es_avro_destroy(a);
}
END_TEST

static Suite *suite(int ncases)
{
    Suite *s = suite_create("avro");
    TCase *tc = tcase_create("vectors");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_case, 0, ncases);
    suite_add_tcase(s, tc);
    tc = tcase_create("registry");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_registry_unreachable_is_retry);
    tcase_add_test(tc, test_wrong_password_is_retry);
    tcase_add_test(tc, test_fetched_once_under_concurrency);
    tcase_add_test(tc, test_failed_fetch_is_not_cached);
    tcase_add_test(tc, test_cache_size_evicts);
    tcase_add_test(tc, test_retry_is_held);
    tcase_add_test(tc, test_schemas_listing);
    tcase_add_test(tc, test_no_registry);
    tcase_add_test(tc, test_max_message_bytes);
    tcase_add_test(tc, test_mutations);
    tcase_add_test(tc, test_tls_registry);
    suite_add_tcase(s, tc);
    tc = tcase_create("config");
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_local_schema_errors);
    suite_add_tcase(s, tc);
    return s;
}

static cJSON *load_fixtures(void)
{
    char script[512], cmd[1200], path[300];
    script_path(script, sizeof(script), "avro_fixtures.py");
    snprintf(cmd, sizeof(cmd), "'%s' '%s' '%s'", python(), script, workdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "%s failed\n", cmd);
        return NULL;
    }
    snprintf(path, sizeof(path), "%s/cases.json", workdir);
    FILE *f = fopen(path, "r");
    static char buf[1 << 20];
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return cJSON_Parse(buf);
}

int main(void)
{
    char cmd[300];
    int failed;
    snprintf(workdir, sizeof(workdir), "/tmp/es-test-avro-XXXXXX");
    if (!mkdtemp(workdir) || !(fixtures = load_fixtures()))
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    reg_port = start_registry("--auth", "user:secret", NULL, &reg_pid);
    slow_port = start_registry("--delay-ms", "300", NULL, &slow_pid);
    tls_port = start_tls_registry(&tls_pid);
    int ncases = cJSON_GetArraySize(cJSON_GetObjectItem(fixtures, "cases"));
    SRunner *sr = srunner_create(suite(ncases));
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    kill(reg_pid, SIGTERM);
    kill(slow_pid, SIGTERM);
    kill(tls_pid, SIGTERM);
    waitpid(tls_pid, NULL, 0);
    waitpid(reg_pid, NULL, 0);
    waitpid(slow_pid, NULL, 0);
    cJSON_Delete(fixtures);
    curl_global_cleanup();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", workdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", workdir);
    return failed ? 1 : 0;
}
