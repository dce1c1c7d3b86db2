#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "internal/es_json_keys.h"

#define BASE_HEAD                                                              \
    "{\n  \"kafka\": {\"brokers\": \"embedded\"},\n"                           \
    "  \"instances\": {\"out\": {\"plugin\": \"file\", \"config\": "           \
    "{\"path\": \"-\"}},\n  \"lua\": {\"plugin\": \"lua\"}},\n"

static void expect_error(const char *text, const char *why)
{
    char err[1024] = "";
    es_config_t *c = es_config_parse(text, "conf.json", err, sizeof err);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err, why), "expected \"%s\" in \"%s\"", why, err);
    ck_assert_msg(!strncmp(err, "conf.json: ", 11), "names the file: %s", err);
}

START_TEST(valid_config_parses)
{
    char err[1024] = "";
    es_config_t *c = es_config_parse(
        BASE_HEAD "  \"retry\": {\"max_attempts\": 3},\n"
                  "  \"routes\": [{\"name\": \"r\", \"topics\": [\"a\", "
                  "\"b\"], \"filters\": [\"lua\"], \"destinations\": "
                  "[\"out\"], \"tenant\": [\"data.tenantId\"]}]}",
        "conf.json", err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(c->brokers, "embedded");
    ck_assert_str_eq(c->group_id, "eventstreamd");
    ck_assert_int_eq(c->retry_max_attempts, 3);
    ck_assert_int_eq(c->retry_initial_backoff_ms, 100);
    ck_assert_uint_eq(c->route_count, 1);
    ck_assert_uint_eq(c->routes[0].topics.n, 2);
    ck_assert_str_eq(c->routes[0].tenant.v[0], "data.tenantId");
    ck_assert_ptr_nonnull(es_config_instance(c, "out"));
    ck_assert_str_eq(es_config_instance(c, "out")->plugin, "file");
    ck_assert_int_eq(c->filter_thread, 0); /* filters inline by default */
    es_config_destroy(c);

    c = es_config_parse(BASE_HEAD "  \"pipeline\": {\"filter_thread\": "
                                  "true},\n  \"routes\": []}",
                        "conf.json", err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(c->filter_thread, 1);
    es_config_destroy(c);
}
END_TEST

START_TEST(errors_name_key_and_problem)
{
    expect_error(BASE_HEAD "\"routes\": [], \"bogus\": 1}",
                 "conf.json: bogus: unknown key");
    /* a key's control characters are not sent to the terminal, and a long
     * key is cut so that the problem is still said (a fuzz find) */
    expect_error(BASE_HEAD "\"routes\": [], \"a\\u001b[31mb\": 1}",
                 "conf.json: a?[31mb: unknown key");
    char long_key[600];
    memset(long_key, 'k', sizeof long_key);
    long_key[sizeof long_key - 1] = '\0';
    char text[1024], want[256];
    snprintf(text, sizeof text, BASE_HEAD "\"routes\": [], \"%s\": 1}",
             long_key);
    snprintf(want, sizeof want, "conf.json: %.160s...: unknown key", long_key);
    expect_error(text, want);
    expect_error(BASE_HEAD "\"routes\": [{\"name\": \"r\", \"topics\": "
                           "[\"a\"], \"destinations\": [\"nope\"]}]}",
                 "routes[0].destinations[0]: instance \"nope\" is not "
                 "defined");
    expect_error(BASE_HEAD "\"routes\": [{\"name\": \"r\", \"topics\": "
                           "[\"a\"], \"destinations\": [\"out\"], "
                           "\"colour\": \"red\"}]}",
                 "routes[0].colour: unknown key");
    expect_error(BASE_HEAD "\"routes\": [{\"name\": \"r\", \"destinations\": "
                           "[\"out\"]}]}",
                 "routes[0].topics: is required");
    expect_error(BASE_HEAD "\"retry\": {\"max_attempts\": -1}, \"routes\": "
                           "[]}",
                 "retry.max_attempts: must be between 0 and");
    /* out of range of a long: refused before the cast (UBSan) */
    expect_error(BASE_HEAD "\"retry\": {\"max_attempts\": 1e300}, \"routes\": "
                           "[]}",
                 "retry.max_attempts: must be between 0 and 1000000, not "
                 "1e+300");
    expect_error(BASE_HEAD "\"retry\": {\"max_attempts\": 1.5}, \"routes\": "
                           "[]}",
                 "retry.max_attempts: must be an integer");
    expect_error(BASE_HEAD "\"log\": {\"level\": \"loud\"}, \"routes\": []}",
                 "log.level: must be one of");
    expect_error("{\"kafka\": {\"brokers\": \"x\", \"properties\": "
                 "{\"acks\": 1}}, \"routes\": []}",
                 "kafka.properties.acks: librdkafka properties must be "
                 "strings");
    expect_error("{\"routes\": []}", "kafka.brokers: is required");
    expect_error(BASE_HEAD "\"pipeline\": {\"filter_thread\": 1}, "
                           "\"routes\": []}",
                 "pipeline.filter_thread: must be true or false");
    expect_error(BASE_HEAD "\"routes\": [{\"name\": \"r\", \"topics\": "
                           "[\"a\"], \"destinations\": [\"out\"]}, "
                           "{\"name\": \"r\", \"topics\": [\"b\"], "
                           "\"destinations\": [\"out\"]}]}",
                 "routes[1].name: duplicate route name \"r\"");
    expect_error(BASE_HEAD "\"routes\": [{\"name\": \"r\", \"topics\": [1], "
                           "\"destinations\": [\"out\"]}]}",
                 "routes[0].topics[0]: must be a non-empty string");
}
END_TEST

/* Names the broker would refuse at run time, and lists that name one
 * thing twice, are refused at startup. */
START_TEST(topic_names_and_repeats)
{
    expect_error(BASE_HEAD "\"routes\": [{\"name\": \"r\", \"topics\": "
                           "[\"orders\", \"bad topic!\"], \"destinations\": "
                           "[\"out\"]}]}",
                 "routes[0].topics[1]: \"bad topic!\" is not a Kafka topic "
                 "name (1 to 249 of letters, digits, '.', '_' and '-')");
    expect_error(BASE_HEAD "\"routes\": [{\"name\": \"r\", \"topics\": "
                           "[\"..\"], \"destinations\": [\"out\"]}]}",
                 "routes[0].topics[0]: \"..\" is not a Kafka topic name");
    expect_error(BASE_HEAD "\"routes\": [{\"name\": \"r\", \"topics\": "
                           "[\"a\", \"b\", \"a\"], \"destinations\": "
                           "[\"out\"]}]}",
                 "routes[0].topics[2]: \"a\" is listed twice (also topics[0])");
    expect_error(BASE_HEAD "\"routes\": [{\"name\": \"r\", \"topics\": "
                           "[\"a\"], \"destinations\": [\"out\", \"out\"]}]}",
                 "routes[0].destinations[1]: \"out\" is listed twice (also "
                 "destinations[0]): every event would be delivered to it "
                 "twice");
    expect_error(BASE_HEAD "\"dead_letter_topic\": \"dlq#1\", \"routes\": []}",
                 "dead_letter_topic: \"dlq#1\" is not a Kafka topic name");
    char name[260], text[1024];
    memset(name, 'a', 250);
    name[250] = '\0';
    snprintf(text, sizeof text,
             BASE_HEAD "\"routes\": [{\"name\": \"r\", \"topics\": "
                       "[\"%s\"], \"destinations\": [\"out\"]}]}",
             name);
    expect_error(text, "routes[0].topics[0]: ");
    ck_assert(es_topic_name_valid("eventzr.user.profile-updated_v1"));
    ck_assert(es_topic_name_valid(name + 1)); /* 249 */
    ck_assert(!es_topic_name_valid(name));    /* 250 */
    ck_assert(!es_topic_name_valid("a/b") && !es_topic_name_valid(""));
}
END_TEST

/* cJSON keeps both members and this parser's loops took the last, its
 * lookups the first: two instances named "out" were both created. */
START_TEST(repeated_keys_are_errors)
{
    expect_error("{\"kafka\": {\"brokers\": \"embedded\", \"brokers\": "
                 "\"x:9092\"}, \"routes\": []}",
                 "conf.json: kafka.brokers: is given twice in its object");
    expect_error(BASE_HEAD "\"routes\": [], \"kafka\": {\"brokers\": \"b\"}}",
                 "conf.json: kafka: is given twice in its object");
    expect_error("{\"kafka\": {\"brokers\": \"embedded\"}, \"instances\": "
                 "{\"out\": {\"plugin\": \"file\"}, \"out\": {\"plugin\": "
                 "\"file\"}}, \"routes\": []}",
                 "conf.json: instances.out: is given twice in its object");
    /* a plugin's config and an element of an array are walked too */
    expect_error("{\"kafka\": {\"brokers\": \"embedded\"}, \"instances\": "
                 "{\"out\": {\"plugin\": \"file\", \"config\": {\"path\": "
                 "\"a\", \"path\": \"b\"}}}, \"routes\": []}",
                 "conf.json: instances.out.config.path: is given twice");
    expect_error(BASE_HEAD "\"routes\": [{\"name\": \"r\", \"topics\": "
                           "[\"a\"], \"destinations\": [\"out\"], "
                           "\"name\": \"s\"}]}",
                 "conf.json: routes[0].name: is given twice in its object");
}
END_TEST

/* The loop for park.topic/park.group read an array's elements' names
 * (NULL: a crash at startup). */
START_TEST(subscriptions_park_must_be_an_object)
{
    expect_error(BASE_HEAD "\"routes\": [], \"subscriptions\": {\"park\": "
                           "[\"topic\"]}}",
                 "conf.json: subscriptions.park: must be an object");
}
END_TEST

START_TEST(subscriptions_scripts_dir_is_checked)
{
    expect_error(BASE_HEAD "\"routes\": [], \"subscriptions\": "
                           "{\"scripts_dir\": \"/nonexistent/filters\"}}",
                 "conf.json: subscriptions.scripts_dir: /nonexistent/filters: "
                 "No such file or directory");
    expect_error(BASE_HEAD "\"routes\": [], \"subscriptions\": "
                           "{\"scripts_dir\": 7}}",
                 "conf.json: subscriptions.scripts_dir: must be a "
                 "directory's path");
    char err[1024] = "";
    es_config_t *c = es_config_parse(
        BASE_HEAD "\"routes\": [], \"subscriptions\": {\"scripts_dir\": "
                  "\"/tmp\", \"park\": {\"enabled\": false}}}",
        "conf.json", err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(c->sub_scripts_dir, "/tmp");
    es_config_destroy(c);
}
END_TEST

/* ${NAME} in string values: the environment's value, a default, a
 * literal, and errors naming the key; the text as written is kept. */
START_TEST(environment_references)
{
    setenv("ES_TEST_BROKERS", "k1:9092,k2:9092", 1);
    setenv("ES_TEST_EMPTY", "", 1);
    unsetenv("ES_TEST_UNSET");
    char err[1024] = "";
    es_config_t *c = es_config_parse(
        "{\"kafka\": {\"brokers\": \"${ES_TEST_BROKERS}\", \"group_id\": "
        "\"g-${ES_TEST_UNSET:-dflt}-${ES_TEST_EMPTY:-e}-$${x}-$5\"},\n"
        "  \"instances\": {\"out\": {\"plugin\": \"file\", \"config\": "
        "{\"path\": \"/tmp/${ES_TEST_UNSET:-}x\"}}},\n"
        "  \"routes\": []}",
        "conf.json", err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(c->brokers, "k1:9092,k2:9092");
    ck_assert_str_eq(c->group_id, "g-dflt-e-${x}-$5");
    const cJSON *path = cJSON_GetObjectItem(
        cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(c->root, "instances"),
                                "out"),
            "config"),
        "path");
    ck_assert_str_eq(path->valuestring, "/tmp/x");
    ck_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(c->written, "kafka"), "brokers")
            ->valuestring,
        "${ES_TEST_BROKERS}");
    es_config_destroy(c);

    expect_error(BASE_HEAD "\"routes\": [{\"name\": \"r\", \"topics\": "
                           "[\"a\", \"${ES_TEST_UNSET}\"], "
                           "\"destinations\": [\"out\"]}]}",
                 "conf.json: routes[0].topics[1]: ${ES_TEST_UNSET} is not set "
                 "in the environment");
    expect_error(BASE_HEAD "\"routes\": [], \"group_id\": \"x${ES_TEST\"}",
                 "conf.json: group_id: \"${ES_TEST\": \"${\" without a "
                 "closing \"}\"");
    expect_error(BASE_HEAD "\"routes\": [], \"group_id\": \"${1X}\"}",
                 "conf.json: group_id: ${1X}: not an environment variable's "
                 "name");
    expect_error(BASE_HEAD "\"routes\": [], \"group_id\": \"${A-B}\"}",
                 "conf.json: group_id: ${A-B}: not an environment variable's "
                 "name");
}
END_TEST

/* A directory named as the config opens but reads nothing: said so, not
 * "invalid JSON at line 1". */
START_TEST(config_path_is_a_directory)
{
    char err[1024] = "";
    ck_assert_ptr_null(es_config_load("/tmp", err, sizeof err));
    ck_assert_str_eq(err, "/tmp: cannot read: Is a directory");
}
END_TEST

START_TEST(repeated_key_paths)
{
    char path[64] = "untouched";
    cJSON *j = cJSON_Parse("{\"a\": [1, {\"b\": {\"c\": 1, \"d\": 2}}], "
                           "\"e\": {\"f\": [{}, {\"g\": 1, \"g\": 2}]}}");
    ck_assert_int_eq(es_json_repeated_key(j, "", path, sizeof path), 1);
    ck_assert_str_eq(path, "e.f[1].g");
    ck_assert_int_eq(es_json_repeated_key(j, "body", path, sizeof path), 1);
    ck_assert_str_eq(path, "body.e.f[1].g");
    cJSON_Delete(j);
    j = cJSON_Parse("{\"a\": [1, {\"b\": {\"c\": 1, \"d\": 2}}], \"A\": 3}");
    ck_assert_int_eq(es_json_repeated_key(j, "", path, sizeof path), 0);
    ck_assert_str_eq(path, "");
    cJSON_Delete(j);
    /* many members (sorted, not compared pairwise), the repeat at the end */
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < 5000; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        cJSON_AddNumberToObject(o, k, i);
    }
    ck_assert_int_eq(es_json_repeated_key(o, "", path, sizeof path), 0);
    cJSON_AddNumberToObject(o, "k17", 0);
    ck_assert_int_eq(es_json_repeated_key(o, "", path, sizeof path), 1);
    ck_assert_str_eq(path, "k17");
    cJSON_Delete(o);
    /* a path longer than the buffer is cut, not overrun */
    char tiny[8];
    j = cJSON_Parse("{\"abcdefghij\": {\"x\": 1, \"x\": 2}}");
    ck_assert_int_eq(es_json_repeated_key(j, "", tiny, sizeof tiny), 1);
    ck_assert_str_eq(tiny, "abcdefg");
    cJSON_Delete(j);
}
END_TEST

START_TEST(json_syntax_error_has_line_and_column)
{
    expect_error("{\n  \"kafka\": {\"brokers\": \"x\"},\n  oops\n}",
                 "line 3, column ");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, valid_config_parses);
    tcase_add_test(tc, errors_name_key_and_problem);
    tcase_add_test(tc, topic_names_and_repeats);
    tcase_add_test(tc, repeated_keys_are_errors);
    tcase_add_test(tc, repeated_key_paths);
    tcase_add_test(tc, subscriptions_park_must_be_an_object);
    tcase_add_test(tc, subscriptions_scripts_dir_is_checked);
    tcase_add_test(tc, environment_references);
    tcase_add_test(tc, config_path_is_a_directory);
    tcase_add_test(tc, json_syntax_error_has_line_and_column);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
