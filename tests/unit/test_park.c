/* Parking's pure parts: when a destination is due to be parked, the park
 * record headers (round trip and refusals), the "park" config keys, and
 * the failure streak and backoff its writes share with dead letters. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "pipeline_int.h"

START_TEST(due_by_attempts_time_or_max)
{
    park_policy_t pol = {
        .after_ms = 1000, .after_attempts = 3, .max_attempts = 10};
    ck_assert(!pl_park_due(&pol, 1, 5000, 5000));
    ck_assert(!pl_park_due(&pol, 2, 5000, 5999));
    ck_assert(pl_park_due(&pol, 3, 5000, 5000));  /* attempts */
    ck_assert(pl_park_due(&pol, 1, 5000, 6000));  /* failing 1 s */
    ck_assert(!pl_park_due(&pol, 1, 0, 1000000)); /* no failure on record */
    park_policy_t only_time = {.after_ms = 500};
    ck_assert(!pl_park_due(&only_time, 1000, 100, 599));
    ck_assert(pl_park_due(&only_time, 1, 100, 600));
    /* Reaching retry.max_attempts parks rather than dead-letters. */
    park_policy_t late = {.after_attempts = 50, .max_attempts = 4};
    ck_assert(!pl_park_due(&late, 3, 1, 1));
    ck_assert(pl_park_due(&late, 4, 1, 1));
}
END_TEST

static rd_kafka_headers_t *sample(const es_header_t *orig, size_t n,
                                  const char *tenant, const char *key)
{
    park_origin_t o = {.topic = "orders",
                       .route = "r1",
                       .tenant = (char *)tenant,
                       .partition = 3,
                       .offset = 12345,
                       .timestamp_ms = 1700000000123LL,
                       .key = key,
                       .key_len = key ? strlen(key) : 0,
                       .run = 0xabcdef0123456789ULL,
                       .seq = 42};
    o.topic = strdup("orders");
    o.route = strdup("r1");
    rd_kafka_headers_t *h = pl_park_headers(&o, "dest", orig, n);
    free(o.topic);
    free(o.route);
    return h;
}

START_TEST(headers_round_trip)
{
    /* An original header named like ours stays an original header. */
    es_header_t orig[] = {{"traceparent", "00-abc", 6},
                          {"es_park_route", "evil", 4},
                          {"nullval", NULL, 0}};
    rd_kafka_headers_t *h = sample(orig, 3, "t-1", "k\0ey");
    park_origin_t o;
    es_header_t *back;
    size_t n;
    char err[256];
    ck_assert_int_eq(pl_park_parse_headers(h, &o, &back, &n, err, sizeof err),
                     0);
    ck_assert_str_eq(o.topic, "orders");
    ck_assert_str_eq(o.route, "r1");
    ck_assert_str_eq(o.tenant, "t-1");
    ck_assert_int_eq(o.partition, 3);
    ck_assert_int_eq(o.offset, 12345);
    ck_assert_int_eq(o.timestamp_ms, 1700000000123LL);
    ck_assert_uint_eq(o.key_len, 1); /* strlen("k") */
    ck_assert(!memcmp(o.key, "k", 1));
    ck_assert(o.run == 0xabcdef0123456789ULL);
    ck_assert_uint_eq(o.seq, 42);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(back[0].name, "traceparent");
    ck_assert_uint_eq(back[0].value_len, 6);
    ck_assert(!memcmp(back[0].value, "00-abc", 6));
    ck_assert_str_eq(back[1].name, "es_park_route");
    ck_assert_str_eq(back[2].name, "nullval");
    ck_assert_ptr_null(back[2].value);
    free(back);
    free(o.topic);
    free(o.route);
    free(o.tenant);
    rd_kafka_headers_destroy(h);
}
END_TEST

START_TEST(headers_without_tenant_or_key)
{
    rd_kafka_headers_t *h = sample(NULL, 0, NULL, NULL);
    park_origin_t o;
    es_header_t *back;
    size_t n;
    char err[256];
    ck_assert_int_eq(pl_park_parse_headers(h, &o, &back, &n, err, sizeof err),
                     0);
    ck_assert_ptr_null(o.tenant);
    ck_assert_ptr_null(o.key);
    ck_assert_uint_eq(n, 0);
    free(back);
    free(o.topic);
    free(o.route);
    rd_kafka_headers_destroy(h);
}
END_TEST

static void expect_refused(rd_kafka_headers_t *h, const char *why)
{
    park_origin_t o;
    es_header_t *back = (es_header_t *)1;
    size_t n = 7;
    char err[256] = "";
    ck_assert_int_eq(pl_park_parse_headers(h, &o, &back, &n, err, sizeof err),
                     -1);
    ck_assert_msg(strstr(err, why), "expected \"%s\" in \"%s\"", why, err);
    ck_assert_ptr_null(back);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(o.topic);
    ck_assert_ptr_null(o.route);
}

START_TEST(headers_refused)
{
    expect_refused(NULL, "es_park_headers is missing");
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "es_park_route", -1, "r", -1);
    rd_kafka_header_add(h, "es_park_headers", -1, "0", -1);
    expect_refused(h, "es_park_topic is missing");
    rd_kafka_headers_destroy(h);
    h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "es_park_route", -1, "r", -1);
    rd_kafka_header_add(h, "es_park_topic", -1, "t", -1);
    rd_kafka_header_add(h, "es_park_partition", -1, "0", -1);
    rd_kafka_header_add(h, "es_park_offset", -1, "5", -1);
    rd_kafka_header_add(h, "es_park_headers", -1, "2", -1);
    rd_kafka_header_add(h, "only-one", -1, "x", -1);
    expect_refused(h, "does not count");
    rd_kafka_headers_destroy(h);
    h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "es_park_offset", -1, "12x", -1);
    expect_refused(h, "bad park header \"es_park_offset\"");
    rd_kafka_headers_destroy(h);
    h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "traceparent", -1, "x", -1);
    expect_refused(h, "bad park header \"traceparent\"");
    rd_kafka_headers_destroy(h);
}
END_TEST

#define CONF(park)                                                             \
    "{\"kafka\": {\"brokers\": \"embedded\", \"group_id\": \"g\"},"            \
    " \"instances\": {\"out\": {\"plugin\": \"file\"" park "}},"               \
    " \"routes\": [{\"name\": \"r\", \"topics\": [\"in\"],"                    \
    " \"destinations\": [\"out\"]}]}"

static void expect_conf_error(const char *text, const char *why)
{
    char err[1024] = "";
    es_config_t *c = es_config_parse(text, "conf.json", err, sizeof err);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err, why), "expected \"%s\" in \"%s\"", why, err);
}

START_TEST(config_keys)
{
    char err[1024] = "";
    es_config_t *c = es_config_parse(CONF(""), "conf.json", err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(c->instances[0].park.enabled, 0);
    es_config_destroy(c);
    c = es_config_parse(CONF(", \"park\": {}"), "conf.json", err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    const es_park_conf_t *pc = &c->instances[0].park;
    ck_assert_int_eq(pc->enabled, 1);
    ck_assert_int_eq(pc->after_ms, 30000);
    ck_assert_int_eq(pc->after_attempts, 5);
    ck_assert_str_eq(pc->topic, "eventstream.park.out");
    ck_assert_ptr_null(pc->group);
    es_config_destroy(c);
    c = es_config_parse(CONF(", \"park\": {\"after_ms\": 0, \"after_attempts\":"
                             " 2, \"topic\": \"p\", \"group\": \"pg\"}"),
                        "conf.json", err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    pc = &c->instances[0].park;
    ck_assert_int_eq(pc->after_ms, 0);
    ck_assert_int_eq(pc->after_attempts, 2);
    ck_assert_str_eq(pc->topic, "p");
    ck_assert_str_eq(pc->group, "pg");
    es_config_destroy(c);
    expect_conf_error(CONF(", \"park\": {\"after\": 1}"),
                      "conf.json: instances.out.park.after: unknown key");
    expect_conf_error(CONF(", \"park\": {\"after_ms\": -1}"),
                      "instances.out.park.after_ms: must be between 0");
    expect_conf_error(CONF(", \"park\": true"),
                      "instances.out.park: must be an object");
    expect_conf_error(CONF(", \"park\": {\"after_ms\": 0, \"after_attempts\": "
                           "0}"),
                      "instances.out.park: after_ms and after_attempts are "
                      "both 0");
    expect_conf_error(CONF(", \"park\": {\"topic\": \"in\"}"),
                      "instances.out.park.topic: \"in\" is consumed by route");
    expect_conf_error(CONF(", \"park\": {\"topic\": \"eventstream.dlq\"}"),
                      "is the dead-letter topic");
}
END_TEST

/* The failure streaks of dead letters and park writes: logged at the
 * first failure, then once a minute with the count in between, ended by a
 * success with the whole count. */
START_TEST(failure_streak_logs_first_then_once_a_minute)
{
    fail_streak_t st = {0};
    uint64_t since = 99;
    int64_t secs = 0;
    ck_assert_int_eq(pl_streak_end(&st), 0); /* no streak: nothing to say */
    ck_assert(pl_streak_fail(&st, 1000, &since, &secs));
    ck_assert_uint_eq(since, 0);
    for (int64_t t = 1100; t < 61000; t += 100)
        ck_assert(!pl_streak_fail(&st, t, &since, &secs));
    ck_assert(pl_streak_fail(&st, 61000, &since, &secs));
    ck_assert_uint_eq(since, 600); /* 1100 .. 61000, every 100 ms */
    ck_assert_int_eq(secs, 60);
    ck_assert(!pl_streak_fail(&st, 61500, &since, &secs));
    ck_assert_uint_eq(pl_streak_end(&st), 602);
    since = 99;
    ck_assert(pl_streak_fail(&st, 62000, &since, &secs)); /* a new one */
    ck_assert_uint_eq(since, 0);
}
END_TEST

START_TEST(backoff_doubles_within_bounds)
{
    es_config_t c = {0};
    c.retry_initial_backoff_ms = 200;
    c.retry_max_backoff_ms = 1000;
    for (int i = 0; i < 50; i++) { /* jitter: the upper half */
        int64_t b1 = pl_backoff_ms(&c, 1), b3 = pl_backoff_ms(&c, 3);
        int64_t b9 = pl_backoff_ms(&c, 9);
        ck_assert(b1 >= 100 && b1 < 200);
        ck_assert(b3 >= 400 && b3 < 800);
        ck_assert(b9 >= 500 && b9 < 1000);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("park");
    TCase *tc = tcase_create("park");
    tcase_add_test(tc, due_by_attempts_time_or_max);
    tcase_add_test(tc, headers_round_trip);
    tcase_add_test(tc, headers_without_tenant_or_key);
    tcase_add_test(tc, headers_refused);
    tcase_add_test(tc, config_keys);
    tcase_add_test(tc, failure_streak_logs_first_then_once_a_minute);
    tcase_add_test(tc, backoff_doubles_within_bounds);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
