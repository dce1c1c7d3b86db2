/* Regions (host/src/region.c): config errors name file and key, a bad map
 * at start names the source and the problem, the skip decision, refreshes
 * from a file and from an HTTP server on loopback (a failed refresh keeps
 * the last good map and is counted). */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "metrics.h"
#include "region.h"

static char dir[256];
static char map_path[512];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/es-region-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(map_path, sizeof map_path, "%s/map.json", dir);
}

static void teardown(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void write_map(const char *text)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", map_path);
    FILE *f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(rename(tmp, map_path), 0);
}

static es_config_t *config(const char *region_json, char *err, size_t n)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"kafka\": {\"brokers\": \"embedded\"}, \"routes\": [], "
             "\"region\": %s}",
             region_json);
    return es_config_parse(text, "conf.json", err, n);
}

static es_config_t *config_for(const char *source, const char *unknown)
{
    char region[1024], err[512];
    snprintf(region, sizeof region,
             "{\"name\": \"eu-west-1\", \"tenant_regions\": \"%s\"%s%s%s}",
             source, unknown ? ", \"unknown_tenant\": \"" : "",
             unknown ? unknown : "", unknown ? "\"" : "");
    es_config_t *c = config(region, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    return c;
}

START_TEST(config_errors_name_file_and_key)
{
    char err[512];
    ck_assert_ptr_null(config("{\"tenant_regions\": \"/x\"}", err, sizeof err));
    ck_assert_str_eq(err, "conf.json: region.name: is required");
    ck_assert_ptr_null(config("{\"name\": \"a\"}", err, sizeof err));
    ck_assert_str_eq(err, "conf.json: region.tenant_regions: is required");
    ck_assert_ptr_null(config("{\"name\": \"a\", \"tenant_regions\": \"/x\", "
                              "\"unknown_tenant\": \"drop\"}",
                              err, sizeof err));
    ck_assert_str_eq(err, "conf.json: region.unknown_tenant: must be "
                          "\"forward\" or \"skip\", not \"drop\"");
    ck_assert_ptr_null(config("{\"name\": \"a\", \"tenant_regions\": \"/x\", "
                              "\"refresh_ms\": 5}",
                              err, sizeof err));
    ck_assert_str_eq(err, "conf.json: region.refresh_ms: must be between 100 "
                          "and 86400000, not 5");
    ck_assert_ptr_null(config("{\"name\": \"a\", \"tenant_regions\": \"/x\", "
                              "\"colour\": 1}",
                              err, sizeof err));
    ck_assert_str_eq(err, "conf.json: region.colour: unknown key");
    ck_assert_ptr_null(config("{\"name\": \"a\", \"tenant_regions\": "
                              "\"https://x/map\", \"ca_file\": \"/nope.pem\"}",
                              err, sizeof err));
    ck_assert_str_eq(err, "conf.json: region.ca_file: /nope.pem: No such file "
                          "or directory");
}
END_TEST

START_TEST(bad_map_at_start_names_source)
{
    char err[1024], want[1024];
    es_region_t *r = NULL;
    es_config_t *c = config_for(map_path, NULL);
    ck_assert_int_eq(es_region_new(c, &r, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "conf.json: region.tenant_regions: %s: cannot read: No such "
             "file or directory",
             map_path);
    ck_assert_str_eq(err, want);
    write_map("{\"a\": \"eu-west-1\", \"b\": 7}");
    ck_assert_int_eq(es_region_new(c, &r, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "conf.json: region.tenant_regions: %s: tenant \"b\": the region "
             "must be a non-empty string",
             map_path);
    ck_assert_str_eq(err, want);
    write_map(
        "{\"a\": \"eu-west-1\", \"b\": \"us-east-1\", \"a\": \"us-east-1\"}");
    ck_assert_int_eq(es_region_new(c, &r, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "conf.json: region.tenant_regions: %s: tenant \"a\" is given "
             "twice (which region?)",
             map_path);
    ck_assert_str_eq(err, want);
    write_map("[\"a\"]");
    ck_assert_int_eq(es_region_new(c, &r, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "must be a JSON object"));
    write_map("{\"a\": ");
    ck_assert_int_eq(es_region_new(c, &r, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "invalid JSON at byte"));
    ck_assert_ptr_null(r);
    es_config_destroy(c);
}
END_TEST

START_TEST(no_region_config_forwards_everything)
{
    char err[256];
    es_config_t *c = es_config_parse(
        "{\"kafka\": {\"brokers\": \"embedded\"}, \"routes\": []}", "c.json",
        err, sizeof err);
    es_region_t *r = (es_region_t *)1;
    ck_assert_int_eq(es_region_new(c, &r, err, sizeof err), 0);
    ck_assert_ptr_null(r);
    const char *region = NULL;
    ck_assert_int_eq(es_region_skip(NULL, "t", &region), 0);
    es_config_destroy(c);
}
END_TEST

START_TEST(skip_decision)
{
    char err[512];
    write_map("{\"home\": \"eu-west-1\", \"away\": \"us-east-1\", \"x\": "
              "\"ap-south-1\"}");
    for (int skip_unknown = 0; skip_unknown < 2; skip_unknown++) {
        es_config_t *c = config_for(map_path, skip_unknown ? "skip" : NULL);
        es_region_t *r = NULL;
        ck_assert_int_eq(es_region_new(c, &r, err, sizeof err), 0);
        ck_assert_str_eq(es_region_name(r), "eu-west-1");
        ck_assert_uint_eq(es_region_tenants(r), 3);
        const char *region = NULL;
        ck_assert_int_eq(es_region_skip(r, "home", &region), 0);
        ck_assert_int_eq(es_region_skip(r, "away", &region), 1);
        ck_assert_str_eq(region, "us-east-1");
        ck_assert_int_eq(es_region_skip(r, "nobody", &region), skip_unknown);
        ck_assert_str_eq(region, "unknown");
        ck_assert_int_eq(es_region_skip(r, NULL, &region), skip_unknown);
        es_region_destroy(r);
        es_config_destroy(c);
    }
}
END_TEST

START_TEST(file_refresh_flips_and_keeps_last_good)
{
    char err[512];
    write_map("{\"t\": \"eu-west-1\"}");
    es_config_t *c = config_for(map_path, NULL);
    es_region_t *r = NULL;
    ck_assert_int_eq(es_region_new(c, &r, err, sizeof err), 0);
    const char *region;
    ck_assert_int_eq(es_region_skip(r, "t", &region), 0);
    write_map("{\"t\": \"us-east-1\", \"u\": \"eu-west-1\"}");
    ck_assert_int_eq(es_region_refresh(r, err, sizeof err), 0);
    ck_assert_int_eq(es_region_skip(r, "t", &region), 1);
    ck_assert_str_eq(region, "us-east-1");
    uint64_t failed =
        es_metrics_value("es_region_map_refresh_failed_total", "");
    write_map("{\"t\": ");
    ck_assert_int_eq(es_region_refresh(r, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, map_path));
    ck_assert_int_eq(es_region_refresh(r, err, sizeof err), -1);
    ck_assert_uint_eq(
        es_metrics_value("es_region_map_refresh_failed_total", ""), failed + 2);
    /* the last good map is still in force, region strings still valid */
    ck_assert_int_eq(es_region_skip(r, "t", &region), 1);
    ck_assert_str_eq(region, "us-east-1");
    ck_assert_uint_eq(es_region_tenants(r), 2);
    write_map("{\"t\": \"eu-west-1\"}");
    ck_assert_int_eq(es_region_refresh(r, err, sizeof err), 0);
    ck_assert_int_eq(es_region_skip(r, "t", &region), 0);
    es_region_destroy(r);
    es_config_destroy(c);
}
END_TEST

/* ------------------------------------------- an HTTP server on loopback */

typedef struct server_s {
    int fd;
    int port;
    pthread_mutex_t lock;
    char status[64];
    char body[1024];
    int requests;
} server_t;

static void *serve(void *arg)
{
    server_t *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char req[4096];
        ssize_t n = recv(c, req, sizeof req, 0);
        (void)n;
        char resp[2048];
        pthread_mutex_lock(&s->lock);
        int len = snprintf(resp, sizeof resp,
                           "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                           "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                           s->status, strlen(s->body), s->body);
        s->requests++;
        pthread_mutex_unlock(&s->lock);
        ssize_t w = send(c, resp, (size_t)len, 0);
        (void)w;
        close(c);
    }
}

static void set_answer(server_t *s, const char *status, const char *body)
{
    pthread_mutex_lock(&s->lock);
    snprintf(s->status, sizeof s->status, "%s", status);
    snprintf(s->body, sizeof s->body, "%s", body);
    pthread_mutex_unlock(&s->lock);
}

START_TEST(http_map_and_refresh)
{
    server_t s = {0};
    pthread_mutex_init(&s.lock, NULL);
    s.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(s.fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    getsockname(s.fd, (struct sockaddr *)&sa, &sl);
    ck_assert_int_eq(listen(s.fd, 8), 0);
    set_answer(&s, "200 OK", "{\"t\": \"eu-west-1\", \"v\": \"us-east-1\"}");
    pthread_t th;
    pthread_create(&th, NULL, serve, &s);

    char url[128], err[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/regions.json",
             ntohs(sa.sin_port));
    es_config_t *c = config_for(url, NULL);
    es_region_t *r = NULL;
    ck_assert_msg(es_region_new(c, &r, err, sizeof err) == 0, "%s", err);
    const char *region;
    ck_assert_int_eq(es_region_skip(r, "t", &region), 0);
    ck_assert_int_eq(es_region_skip(r, "v", &region), 1);

    set_answer(&s, "200 OK", "{\"t\": \"us-east-1\"}");
    ck_assert_int_eq(es_region_refresh(r, err, sizeof err), 0);
    ck_assert_int_eq(es_region_skip(r, "t", &region), 1);
    ck_assert_int_eq(es_region_skip(r, "v", &region), 0); /* unknown now */

    set_answer(&s, "503 Service Unavailable", "{}");
    ck_assert_int_eq(es_region_refresh(r, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "HTTP status 503"));
    ck_assert_int_eq(es_region_skip(r, "t", &region), 1); /* kept */

    /* at start, an unreachable map is a config error naming the URL */
    set_answer(&s, "404 Not Found", "{}");
    es_region_t *r2 = NULL;
    ck_assert_int_eq(es_region_new(c, &r2, err, sizeof err), -1);
    char want[300];
    snprintf(want, sizeof want,
             "conf.json: region.tenant_regions: %s: HTTP status 404", url);
    ck_assert_str_eq(err, want);

    es_region_destroy(r);
    es_config_destroy(c);
    shutdown(s.fd, SHUT_RDWR);
    close(s.fd);
    pthread_join(th, NULL);
    ck_assert_int_ge(s.requests, 4);
}
END_TEST

START_TEST(refresh_thread_picks_up_changes)
{
    char err[512];
    write_map("{\"t\": \"eu-west-1\"}");
    es_config_t *c = es_config_parse(
        "{\"kafka\": {\"brokers\": \"embedded\"}, \"routes\": [], "
        "\"region\": {\"name\": \"eu-west-1\", \"refresh_ms\": 100, "
        "\"tenant_regions\": \"PLACEHOLDER\"}}",
        "c.json", err, sizeof err);
    ck_assert_ptr_nonnull(c);
    free(c->region_map);
    c->region_map = strdup(map_path);
    es_region_t *r = NULL;
    ck_assert_int_eq(es_region_new(c, &r, err, sizeof err), 0);
    ck_assert_int_eq(es_region_start(r, err, sizeof err), 0);
    const char *region;
    ck_assert_int_eq(es_region_skip(r, "t", &region), 0);
    write_map("{\"t\": \"us-east-1\"}");
    int flipped = 0;
    for (int i = 0; i < 50 && !flipped; i++) {
        usleep(50000);
        flipped = es_region_skip(r, "t", &region);
    }
    ck_assert_int_eq(flipped, 1);
    es_region_destroy(r);
    es_config_destroy(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("region");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, config_errors_name_file_and_key);
    tcase_add_test(tc, bad_map_at_start_names_source);
    tcase_add_test(tc, no_region_config_forwards_everything);
    tcase_add_test(tc, skip_decision);
    tcase_add_test(tc, file_refresh_flips_and_keeps_last_good);
    tcase_add_test(tc, http_map_and_refresh);
    tcase_add_test(tc, refresh_thread_picks_up_changes);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
