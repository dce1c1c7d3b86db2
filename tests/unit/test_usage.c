/* Usage (host/src/usage.c): totals persist across reopen, time windows
 * split counts into the right minute/hour/day buckets, filters, retention,
 * a usage.json of an older version is imported, a corrupt database is set
 * aside, RFC 3339 and epoch times parse. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "usage.h"

static char dir[256];
static const es_usage_retention_t keep = {48, 90, 1100};

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/es-usage-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static es_usage_t *open_usage(void)
{
    char err[512];
    es_usage_t *u = es_usage_open(dir, &keep, err, sizeof err);
    ck_assert_msg(u != NULL, "%s", err);
    return u;
}

static char *print(const cJSON *o, const char *key)
{
    return cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(o, key));
}

static void assert_json(const cJSON *o, const char *key, const char *want)
{
    char *s = print(o, key);
    ck_assert_str_eq(s, want);
    free(s);
}

START_TEST(totals_persist)
{
    char err[256];
    es_usage_t *u = open_usage();
    es_usage_add(u, "t1", "topic", NULL, 100);
    es_usage_add(u, "t1", "topic", NULL, 50);
    es_usage_add(u, "t1", "topic", "out", 40);
    es_usage_add(u, NULL, "topic", NULL, 7);
    es_usage_add(u, "t2", "other", "out", 1);
    ck_assert_int_eq(es_usage_save(u, err, sizeof err), 0);
    es_usage_destroy(u);
    u = open_usage();
    es_usage_add(u, "t1", "topic", "out", 2); /* pending: queries see it */
    cJSON *o = es_usage_json(u, "t1", "topic", NULL);
    assert_json(o, "consumed",
                "[{\"tenant\":\"t1\",\"topic\":\"topic\",\"events\":2,"
                "\"bytes\":150}]");
    assert_json(o, "delivered",
                "[{\"tenant\":\"t1\",\"topic\":\"topic\",\"destination\":"
                "\"out\",\"events\":2,\"bytes\":42}]");
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(o, "since")));
    cJSON_Delete(o);
    o = es_usage_json(u, NULL, NULL, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "consumed")), 2);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "delivered")),
                     2);
    assert_json(o, "consumed",
                "[{\"tenant\":null,\"topic\":\"topic\",\"events\":1,\"bytes\":"
                "7},{\"tenant\":\"t1\",\"topic\":\"topic\",\"events\":2,"
                "\"bytes\":150}]");
    cJSON_Delete(o);
    o = es_usage_json(u, NULL, NULL, "out");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "consumed")), 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "delivered")),
                     2);
    cJSON_Delete(o);
    es_usage_destroy(u);
}
END_TEST

static int64_t hour_ago(int hours)
{
    int64_t now = (int64_t)time(NULL);
    return now - now % 3600 - (int64_t)hours * 3600;
}

START_TEST(windows_split)
{
    es_usage_t *u = open_usage();
    int64_t base = hour_ago(3);
    es_usage_add_at(u, base + 10, "a", "t", NULL, 1);
    es_usage_add_at(u, base + 59, "a", "t", NULL, 2);
    es_usage_add_at(u, base + 60, "a", "t", NULL, 4);
    es_usage_add_at(u, base + 3599, "a", "t", "out", 8);
    es_usage_add_at(u, base + 3600, "a", "t", "out", 16);
    es_usage_add_at(u, base + 3600, "b", "t", "out", 32);
    es_usage_add_at(u, base + 7200, "a", "t", NULL, 64); /* after the window */
    char err[256];
    es_usage_query_t q = {base, base + 7200, 60, NULL, NULL, NULL};
    cJSON *o = es_usage_window_json(u, &q, err, sizeof err);
    ck_assert_ptr_nonnull(o);
    cJSON *b = cJSON_GetObjectItem(o, "buckets");
    ck_assert_int_eq(cJSON_GetArraySize(b), 4); /* minutes 0, 1, 59, 60 */
    assert_json(
        cJSON_GetArrayItem(b, 0), "consumed",
        "[{\"tenant\":\"a\",\"topic\":\"t\",\"events\":2,\"bytes\":3}]");
    assert_json(
        cJSON_GetArrayItem(b, 1), "consumed",
        "[{\"tenant\":\"a\",\"topic\":\"t\",\"events\":1,\"bytes\":4}]");
    assert_json(cJSON_GetArrayItem(b, 2), "delivered",
                "[{\"tenant\":\"a\",\"topic\":\"t\",\"destination\":\"out\","
                "\"events\":1,\"bytes\":8}]");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(
                         cJSON_GetArrayItem(b, 3), "delivered")),
                     2);
    /* bucket starts are RFC 3339, one minute apart */
    char want[32];
    time_t t = (time_t)(base + 60);
    strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    ck_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetArrayItem(b, 1), "start")->valuestring,
        want);
    /* the window's sums */
    assert_json(
        o, "consumed",
        "[{\"tenant\":\"a\",\"topic\":\"t\",\"events\":3,\"bytes\":7}]");
    cJSON_Delete(o);

    q.granularity = 3600; /* two hours, the second only deliveries */
    o = es_usage_window_json(u, &q, err, sizeof err);
    b = cJSON_GetObjectItem(o, "buckets");
    ck_assert_int_eq(cJSON_GetArraySize(b), 2);
    assert_json(
        cJSON_GetArrayItem(b, 0), "consumed",
        "[{\"tenant\":\"a\",\"topic\":\"t\",\"events\":3,\"bytes\":7}]");
    assert_json(cJSON_GetArrayItem(b, 1), "delivered",
                "[{\"tenant\":\"a\",\"topic\":\"t\",\"destination\":\"out\","
                "\"events\":1,\"bytes\":16},{\"tenant\":\"b\",\"topic\":"
                "\"t\",\"destination\":\"out\",\"events\":1,\"bytes\":32}]");
    cJSON_Delete(o);

    q.tenant = "b"; /* filters */
    o = es_usage_window_json(u, &q, err, sizeof err);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "buckets")), 1);
    cJSON_Delete(o);
    q.tenant = NULL;
    q.destination = "out";
    q.from = base + 1800; /* widened to the hour */
    o = es_usage_window_json(u, &q, err, sizeof err);
    assert_json(o, "delivered",
                "[{\"tenant\":\"a\",\"topic\":\"t\",\"destination\":\"out\","
                "\"events\":2,\"bytes\":24},{\"tenant\":\"b\",\"topic\":\"t\","
                "\"destination\":\"out\",\"events\":1,\"bytes\":32}]");
    assert_json(o, "consumed", "[]");
    cJSON_Delete(o);

    q = (es_usage_query_t){base, base + 3 * 3600, 86400, NULL, NULL, NULL};
    o = es_usage_window_json(u, &q, err, sizeof err);
    b = cJSON_GetObjectItem(o, "buckets");
    int64_t d0 = base - base % 86400,
            d1 = (base + 7200) - (base + 7200) % 86400;
    ck_assert_int_eq(cJSON_GetArraySize(b), d0 == d1 ? 1 : 2);
    assert_json(o, "consumed",
                "[{\"tenant\":\"a\",\"topic\":\"t\",\"events\":4,\"bytes\":"
                "71}]");
    cJSON_Delete(o);
    es_usage_destroy(u);
}
END_TEST

START_TEST(retention_prunes_old_buckets)
{
    es_usage_t *u = open_usage();
    int64_t old = hour_ago(24 * 3); /* beyond 48 h of minute buckets */
    es_usage_add_at(u, old, "a", "t", NULL, 5);
    char err[256];
    ck_assert_int_eq(es_usage_save(u, err, sizeof err), 0);
    es_usage_query_t q = {old, old + 3600, 60, NULL, NULL, NULL};
    cJSON *o = es_usage_window_json(u, &q, err, sizeof err);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "buckets")), 0);
    cJSON_Delete(o);
    q.granularity = 3600;
    o = es_usage_window_json(u, &q, err, sizeof err);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "buckets")), 1);
    cJSON_Delete(o);
    o = es_usage_json(u, NULL, NULL, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "consumed")), 1);
    cJSON_Delete(o);
    es_usage_destroy(u);
}
END_TEST

START_TEST(imports_usage_json_and_sets_corrupt_aside)
{
    char path[600];
    snprintf(path, sizeof path, "%s/usage.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"since\":\"2026-01-02T03:04:05Z\",\"consumed\":[{\"tenant\":\"x\","
          "\"topic\":\"t\",\"events\":3,\"bytes\":30},{\"topic\":\"u\","
          "\"events\":1e300,\"bytes\":1},{\"topic\":\"v\",\"events\":-1,"
          "\"bytes\":1}],\"delivered\":[{"
          "\"tenant\":null,\"topic\":\"t\",\"destination\":\"d\",\"events\":"
          "1,\"bytes\":9}]}",
          f);
    fclose(f);
    es_usage_t *u = open_usage();
    /* counts no long long holds are skipped (1e300 was cast: undefined) */
    cJSON *o = es_usage_json(u, NULL, NULL, NULL);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "since")->valuestring,
                     "2026-01-02T03:04:05Z");
    assert_json(o, "consumed",
                "[{\"tenant\":\"x\",\"topic\":\"t\",\"events\":3,\"bytes\":"
                "30}]");
    assert_json(o, "delivered",
                "[{\"tenant\":null,\"topic\":\"t\",\"destination\":\"d\","
                "\"events\":1,\"bytes\":9}]");
    cJSON_Delete(o);
    es_usage_destroy(u);
    ck_assert_int_ne(access(path, F_OK), 0); /* imported once */

    char db[600];
    snprintf(db, sizeof db, "%s/usage.sqlite", dir);
    unlink(db);
    f = fopen(db, "w");
    fputs("this is not an SQLite database, not at all, no header here.....", f);
    fclose(f);
    u = open_usage();
    o = es_usage_json(u, NULL, NULL, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "consumed")), 0);
    cJSON_Delete(o);
    es_usage_destroy(u);
    snprintf(path, sizeof path, "%s/usage.sqlite.corrupt", dir);
    ck_assert_int_eq(access(path, F_OK), 0);
}
END_TEST

START_TEST(times_parse)
{
    int64_t t;
    ck_assert_int_eq(es_usage_parse_time("1700000000", &t), 0);
    ck_assert_int_eq(t, 1700000000);
    ck_assert_int_eq(es_usage_parse_time("2023-11-14T22:13:20Z", &t), 0);
    ck_assert_int_eq(t, 1700000000);
    ck_assert_int_eq(es_usage_parse_time("2023-11-14T22:13:20.75Z", &t), 0);
    ck_assert_int_eq(t, 1700000000);
    ck_assert_int_eq(es_usage_parse_time("2023-11-15T00:13:20+02:00", &t), 0);
    ck_assert_int_eq(t, 1700000000);
    ck_assert_int_eq(es_usage_parse_time("2023-11-14T21:13:20-01:00", &t), 0);
    ck_assert_int_eq(t, 1700000000);
    ck_assert_int_eq(es_usage_parse_time("2023-11-15T00:13:20 02:00", &t), 0);
    ck_assert_int_eq(t, 1700000000);
    ck_assert_int_eq(es_usage_parse_time("2023-11-14", &t), -1);
    ck_assert_int_eq(es_usage_parse_time("2023-13-14T00:00:00Z", &t), -1);
    ck_assert_int_eq(es_usage_parse_time("2023-11-14T00:00:00", &t), -1);
    ck_assert_int_eq(es_usage_parse_time("yesterday", &t), -1);
    ck_assert_int_eq(es_usage_parse_time("", &t), -1);
    ck_assert_int_eq(es_usage_granularity("hour"), 3600);
    ck_assert_int_eq(es_usage_granularity("week"), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("usage");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, totals_persist);
    tcase_add_test(tc, windows_split);
    tcase_add_test(tc, retention_prunes_old_buckets);
    tcase_add_test(tc, imports_usage_json_and_sets_corrupt_aside);
    tcase_add_test(tc, times_parse);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
