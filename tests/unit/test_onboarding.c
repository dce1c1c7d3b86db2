/* Topic onboarding registry (host/src/topics.c): every validation error
 * names file and key; PII stripping; live rescans; the shipped seed folders
 * load. (Usage: tests/unit/test_usage.c.) */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "topics.h"

static char dir[256];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/es-onboarding-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void write_file(const char *rel, const char *text)
{
    char path[512], cmd[600];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
    ck_assert_int_eq(system(cmd), 0);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

#define GOOD                                                                   \
    "{\"topic\": \"t1\", \"team\": \"team-a\", \"tenancy\": \"multi\", "       \
    "\"format\": \"json\", \"tenant\": [\"data.org\"], \"pii\": "              \
    "[\"data.email\", \"data.a.b\"]}"

static void expect_error(const char *details, const char *key_and_why)
{
    write_file("team-a/t1/topic-details.json", details);
    char err[1024] = "", want[1024];
    es_topics_t *t = es_topics_load(dir, err, sizeof err);
    ck_assert_ptr_null(t);
    snprintf(want, sizeof want, "%s/team-a/t1/topic-details.json: %s", dir,
             key_and_why);
    ck_assert_msg(strstr(err, want), "expected \"%s\" in \"%s\"", want, err);
}

START_TEST(errors_name_file_and_key)
{
    expect_error("{", "(top level): invalid JSON");
    expect_error("[]", "(top level): must be a JSON object");
    expect_error("{\"team\": \"team-a\"}", "topic: is required");
    expect_error("{\"topic\": \"t1\", \"tenancy\": \"multi\"}",
                 "team: is required");
    expect_error("{\"topic\": \"t1\", \"team\": \"team-b\", \"tenancy\": "
                 "\"multi\", \"format\": \"json\", \"tenant\": [\"key\"]}",
                 "team: \"team-b\" is not the team folder");
    expect_error("{\"topic\": \"t1\", \"team\": \"team-a\", \"tenancy\": "
                 "\"both\"}",
                 "tenancy: must be \"multi\" or \"single\", not \"both\"");
    expect_error("{\"topic\": \"t1\", \"team\": \"team-a\", \"tenancy\": "
                 "\"multi\", \"format\": \"xml\"}",
                 "format: must be \"json\" or \"avro\"");
    expect_error("{\"topic\": \"t1\", \"team\": \"team-a\", \"tenancy\": "
                 "\"multi\", \"format\": \"json\", \"tenant\": []}",
                 "tenant: needs at least one place");
    expect_error("{\"topic\": \"t1\", \"team\": \"team-a\", \"tenancy\": "
                 "\"multi\", \"format\": \"json\", \"tenant\": [\"key\", 3]}",
                 "tenant[1]: must be a non-empty string");
    expect_error("{\"topic\": \"t1\", \"team\": \"team-a\", \"tenancy\": "
                 "\"multi\", \"format\": \"json\", \"tenant\": [\"key\"], "
                 "\"pii\": [\"id\"]}",
                 "pii[0]: \"id\" is a required CloudEvents attribute");
    expect_error("{\"topic\": \"t1\", \"team\": \"team-a\", \"tenancy\": "
                 "\"multi\", \"format\": \"json\", \"tenant\": [\"key\"], "
                 "\"pii\": [\"data..x\"]}",
                 "pii[0]: \"data..x\" is not a dotted path");
    expect_error("{\"topic\": \"t1\", \"team\": \"team-a\", \"tenancy\": "
                 "\"multi\", \"format\": \"avro\", \"tenant\": [\"key\"]}",
                 "schema: is required with \"format\": \"avro\"");
    expect_error("{\"topic\": \"t1\", \"team\": \"team-a\", \"tenancy\": "
                 "\"multi\", \"format\": \"avro\", \"schema\": \"x.avsc\", "
                 "\"tenant\": [\"key\"]}",
                 "schema: cannot read");
    expect_error("{\"topic\": \"t1\", \"team\": \"team-a\", \"tenancy\": "
                 "\"multi\", \"format\": \"json\", \"schema\": \"x.avsc\", "
                 "\"tenant\": [\"key\"]}",
                 "schema: only allowed with \"format\": \"avro\"");
    expect_error("{\"topic\": \"t1\", \"team\": \"team-a\", \"owner\": 1}",
                 "owner: unknown key");
    /* the last list was stripped, a lookup read the first */
    expect_error("{\"topic\": \"t1\", \"team\": \"team-a\", \"tenancy\": "
                 "\"multi\", \"format\": \"json\", \"tenant\": [\"key\"], "
                 "\"pii\": [\"data.email\"], \"pii\": [\"data.phone\"]}",
                 "pii: is given twice in its object");
}
END_TEST

START_TEST(duplicate_topic_names_both_files)
{
    write_file("team-a/t1/topic-details.json", GOOD);
    write_file("team-a/t2/topic-details.json", GOOD);
    char err[1024] = "";
    ck_assert_ptr_null(es_topics_load(dir, err, sizeof err));
    ck_assert_msg(strstr(err, "t2/topic-details.json: topic: \"t1\" is "
                              "already onboarded by") &&
                      strstr(err, "t1/topic-details.json"),
                  "%s", err);
}
END_TEST

START_TEST(pii_stripped_only_when_present)
{
    write_file("team-a/t1/topic-details.json", GOOD);
    char err[1024] = "";
    es_topics_t *t = es_topics_load(dir, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    const es_topic_t *topic = es_topics_find(t, "t1");
    ck_assert_ptr_nonnull(topic);
    ck_assert_str_eq(topic->tenant.v[0], "data.org");
    cJSON *ce = cJSON_Parse("{\"id\": \"1\", \"data\": {\"org\": \"o\", "
                            "\"email\": \"e\", \"a\": {\"b\": 1, \"c\": 2}}}");
    cJSON *none = cJSON_Parse("{\"id\": \"1\", \"data\": {\"a\": 5}}");
    ck_assert(es_topic_has_pii(topic, ce));
    ck_assert(!es_topic_has_pii(topic, none));
    cJSON *removed = cJSON_CreateArray();
    ck_assert_int_eq(es_topic_strip_pii(topic, ce, removed), 2);
    char *s = cJSON_PrintUnformatted(ce);
    ck_assert_str_eq(s,
                     "{\"id\":\"1\",\"data\":{\"org\":\"o\",\"a\":{\"c\":2}}}");
    free(s);
    s = cJSON_PrintUnformatted(removed);
    ck_assert_str_eq(s, "[\"data.email\",\"data.a.b\"]");
    free(s);
    ck_assert_int_eq(es_topic_strip_pii(topic, none, NULL), 0);
    cJSON_Delete(ce);
    cJSON_Delete(none);
    cJSON_Delete(removed);
    es_topics_destroy(t);
}
END_TEST

/* A repeated key (JSON allows it; readers differ on which counts) hides
 * no PII: every occurrence of the field goes, under every occurrence of
 * its parents. Only the first went before. */
START_TEST(pii_stripped_from_repeated_keys)
{
    write_file("team-a/t1/topic-details.json", GOOD);
    char err[1024] = "";
    es_topics_t *t = es_topics_load(dir, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    const es_topic_t *topic = es_topics_find(t, "t1");
    cJSON *ce = cJSON_Parse(
        "{\"id\": \"1\", \"data\": {\"email\": \"e1\", \"n\": 1, "
        "\"email\": \"e2\", \"a\": {\"c\": 2}, \"a\": {\"b\": 1}}}");
    cJSON *late = cJSON_Parse("{\"id\": \"1\", \"data\": {\"a\": {\"c\": 2}, "
                              "\"a\": {\"b\": 1}}}");
    ck_assert(es_topic_has_pii(topic, late)); /* in the second "a" only */
    cJSON_Delete(late);
    ck_assert_int_eq(es_topic_strip_pii(topic, ce, NULL), 2);
    char *s = cJSON_PrintUnformatted(ce);
    ck_assert_str_eq(
        s, "{\"id\":\"1\",\"data\":{\"n\":1,\"a\":{\"c\":2},\"a\":{}}}");
    free(s);
    cJSON_Delete(ce);
    es_topics_destroy(t);
}
END_TEST

START_TEST(rescan_adds_changes_keeps_and_removes)
{
    write_file("team-a/t1/topic-details.json", GOOD);
    char err[1024] = "";
    es_topics_t *t = es_topics_load(dir, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    ck_assert_int_eq(es_topics_rescan(t), 0);
    write_file("team-b/t3/topic-details.json",
               "{\"topic\": \"t3\", \"team\": \"team-b\", \"tenancy\": "
               "\"single\", \"format\": \"avro\", \"schema\": \"s.avsc\", "
               "\"tenant\": [\"key\"]}");
    write_file("team-b/t3/s.avsc", "{\"type\": \"string\"}");
    ck_assert_int_eq(es_topics_rescan(t), 1);
    cJSON *schema = es_topics_schema_json(t, "t3");
    ck_assert_ptr_nonnull(schema);
    cJSON_Delete(schema);
    ck_assert_ptr_null(es_topics_schema_json(t, "t1"));
    /* a bad edit keeps the old definition */
    write_file("team-a/t1/topic-details.json", "{\"topic\": ");
    ck_assert_int_eq(es_topics_rescan(t), 0);
    ck_assert_ptr_nonnull(es_topics_find(t, "t1"));
    /* a good edit (different size, so the stamp differs) replaces it */
    write_file("team-a/t1/topic-details.json",
               "{\"topic\": \"t1\", \"team\": \"team-a\", \"tenancy\": "
               "\"multi\", \"format\": \"json\", \"tenant\": [\"key\"]}");
    ck_assert_int_eq(es_topics_rescan(t), 1);
    ck_assert_str_eq(es_topics_find(t, "t1")->tenant.v[0], "key");
    char path[512];
    snprintf(path, sizeof path, "%s/team-b/t3/topic-details.json", dir);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(es_topics_rescan(t), 1);
    ck_assert_ptr_null(es_topics_find(t, "t3"));
    es_topics_destroy(t);
}
END_TEST

START_TEST(seed_folders_load)
{
    const char *src = getenv("SRC_DIR") ? getenv("SRC_DIR") : SRCDIR;
    char path[512], err[1024] = "";
    snprintf(path, sizeof path, "%s/service-teams-topics", src);
    es_topics_t *t = es_topics_load(path, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    cJSON *list = es_topics_list_json(t);
    ck_assert_int_eq(cJSON_GetArraySize(list), 31);
    cJSON_Delete(list);
    const es_topic_t *mp =
        es_topics_find(t, "eventzr.marketplace.listing.created.v1");
    ck_assert_ptr_nonnull(mp);
    ck_assert_str_eq(mp->tenant.v[0], "tenantid");
    ck_assert_str_eq(mp->team, "marketplace-svc");
    const es_topic_t *bc =
        es_topics_find(t, "eventzr.blockchain.ticket.minted.v1");
    ck_assert_ptr_nonnull(bc);
    ck_assert_str_eq(bc->tenant.v[0], "data.tenantId");
    es_topics_destroy(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("onboarding");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, errors_name_file_and_key);
    tcase_add_test(tc, duplicate_topic_names_both_files);
    tcase_add_test(tc, pii_stripped_only_when_present);
    tcase_add_test(tc, pii_stripped_from_repeated_keys);
    tcase_add_test(tc, rescan_adds_changes_keeps_and_removes);
    tcase_add_test(tc, seed_folders_load);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
