/* Subscriptions (host/src/subscriptions.c): validation errors name the
 * key, secrets are masked in every view but the state file, a PUT's masks
 * keep the stored secrets, and the state file round-trips. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "subscriptions.h"

#define VALID                                                                  \
    "{\"tenant\": \"acme\", \"topics\": [\"a\", \"b\"],"                       \
    " \"destination\": {\"type\": \"https\", \"config\": {"                    \
    "\"url\": \"https://x\", \"auth\": {\"type\": \"bearer\", \"token\": "     \
    "\"T0K\"}, \"headers\": {\"X-Api-Key\": \"K3Y\", \"X-Plain\": \"p\"},"     \
    " \"signing\": {\"secrets\": [\"whsec_A\", \"whsec_B\"]}}}}"

static es_sub_t *parse(const char *text, int from_store, char *err, size_t size)
{
    cJSON *j = cJSON_Parse(text);
    ck_assert_ptr_nonnull(j);
    es_sub_t *s = es_sub_parse(j, from_store, err, size);
    cJSON_Delete(j);
    return s;
}

static void expect_error(const char *text, const char *message)
{
    char err[512] = "";
    es_sub_t *s = parse(text, 0, err, sizeof err);
    ck_assert_ptr_null(s);
    ck_assert_str_eq(err, message);
}

START_TEST(validation_names_the_key)
{
    expect_error("[]", "a subscription must be a JSON object");
    expect_error("{\"tenant\": \"a\", \"topic\": []}", "topic: unknown key");
    expect_error("{\"topics\": [\"a\"], \"destination\": {\"type\": "
                 "\"kafka\", \"config\": {}}}",
                 "tenant: is required");
    expect_error("{\"tenant\": \"\"}", "tenant: must not be empty");
    expect_error("{\"tenant\": \"a\", \"topics\": []}",
                 "topics: must be a non-empty array of topic names");
    expect_error("{\"tenant\": \"a\", \"topics\": [\"x\", 3]}",
                 "topics[1]: must be a topic name (1 to 249 of letters, "
                 "digits, '.', '_' and '-')");
    expect_error("{\"tenant\": \"a\", \"topics\": [\"x\", \"y z\"]}",
                 "topics[1]: must be a topic name (1 to 249 of letters, "
                 "digits, '.', '_' and '-')");
    expect_error("{\"tenant\": \"a\", \"topics\": [\"x\", \"x\"]}",
                 "topics[1]: is listed twice");
    expect_error("{\"tenant\": \"a\", \"topics\": [\"x\"], \"destination\": "
                 "{\"type\": \"ftp\", \"config\": {}}}",
                 "destination.type: must be \"https\", \"kafka\" or \"s3\"");
    expect_error("{\"tenant\": \"a\", \"topics\": [\"x\"], \"destination\": "
                 "{\"type\": \"s3\", \"config\": {}, \"extra\": 1}}",
                 "destination.extra: unknown key");
    expect_error("{\"tenant\": \"a\", \"topics\": [\"x\"], \"destination\": "
                 "{\"type\": \"s3\"}}",
                 "destination.config: is required");
    expect_error("{\"id\": \"a b\"}",
                 "id: must be 1-64 characters of letters, digits, '.', '_' "
                 "or '-'");
    expect_error("{\"enabled\": \"yes\"}", "enabled: must be true or false");
    expect_error("{\"tenant\": \"a\", \"topics\": [\"x\"], \"destination\": "
                 "{\"type\": \"s3\", \"config\": {}}, \"filter\": {\"type\": "
                 "\"lua\", \"config\": {\"source\": \"x\", \"script\": "
                 "\"y\"}}}",
                 "filter.config.source: give either \"source\" or "
                 "\"script\", not both");
    /* the last destination was parsed, the first leaked; a lookup took
     * the first tenant */
    expect_error("{\"tenant\": \"a\", \"topics\": [\"x\"], \"destination\": "
                 "{\"type\": \"s3\", \"config\": {}}, \"destination\": "
                 "{\"type\": \"kafka\", \"config\": {}}}",
                 "destination: is given twice in its object");
    expect_error("{\"tenant\": \"a\", \"topics\": [\"x\"], \"destination\": "
                 "{\"type\": \"https\", \"config\": {\"url\": \"https://a\", "
                 "\"url\": \"https://b\"}}}",
                 "destination.config.url: is given twice in its object");
}
END_TEST

START_TEST(read_only_fields_are_ignored_unless_stored)
{
    char err[512];
    const char *text = "{\"tenant\": \"a\", \"topics\": [\"x\"], "
                       "\"destination\": {\"type\": \"s3\", \"config\": {}},"
                       " \"status\": \"active\", \"created_at\": \"then\","
                       " \"start_offsets\": {\"x\": {\"0\": 5}}}";
    es_sub_t *s = parse(text, 0, err, sizeof err);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_null(s->created_at);
    ck_assert_ptr_null(s->start_offsets);
    ck_assert_int_eq(s->enabled, 1);
    es_sub_destroy(s);
}
END_TEST

START_TEST(secrets_are_masked)
{
    char err[512];
    es_sub_t *s = parse(VALID, 0, err, sizeof err);
    ck_assert_ptr_nonnull(s);
    cJSON *v = es_sub_json(s, 0);
    char *text = cJSON_PrintUnformatted(v);
    ck_assert_ptr_null(strstr(text, "T0K"));
    ck_assert_ptr_null(strstr(text, "K3Y"));
    ck_assert_ptr_null(strstr(text, "whsec_"));
    ck_assert_ptr_nonnull(strstr(text, "\"X-Plain\":\"p\""));
    ck_assert_ptr_nonnull(strstr(text, "\"url\":\"https://x\""));
    ck_assert_ptr_nonnull(strstr(text, "\"token\":\"********\""));
    free(text);
    cJSON_Delete(v);
    v = es_sub_json(s, 1);
    text = cJSON_PrintUnformatted(v);
    ck_assert_ptr_nonnull(strstr(text, "T0K"));
    free(text);
    cJSON_Delete(v);
    es_sub_destroy(s);
}
END_TEST

START_TEST(secret_key_rule)
{
    const char *yes[] = {"password",      "sasl.password",
                         "client_secret", "secret_access_key",
                         "token",         "Authorization",
                         "X-API-Key",     "tls.client_key_password",
                         "session_token", "ssl.key.pem"};
    const char *no[] = {"url", "topic",        "brokers", "bucket",
                        "key", "key_template", "region",  "mode"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        ck_assert_msg(es_sub_secret_key(yes[i]), "%s", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        ck_assert_msg(!es_sub_secret_key(no[i]), "%s", no[i]);
}
END_TEST

START_TEST(masked_values_keep_the_stored_secrets)
{
    char err[512];
    es_sub_t *old = parse(VALID, 0, err, sizeof err);
    cJSON *masked = es_sub_json(old, 0);
    /* the client changes the url and sends the masks back */
    cJSON *cfg = cJSON_GetObjectItem(cJSON_GetObjectItem(masked, "destination"),
                                     "config");
    cJSON_SetValuestring(cJSON_GetObjectItem(cfg, "url"), "https://y");
    es_sub_t *s = es_sub_parse(masked, 0, err, sizeof err);
    ck_assert_ptr_nonnull(s);
    es_sub_keep_secrets(s, old);
    cJSON *v = es_sub_json(s, 1);
    char *text = cJSON_PrintUnformatted(v);
    ck_assert_ptr_nonnull(strstr(text, "\"token\":\"T0K\""));
    ck_assert_ptr_nonnull(strstr(text, "\"X-Api-Key\":\"K3Y\""));
    ck_assert_ptr_nonnull(strstr(text, "[\"whsec_A\",\"whsec_B\"]"));
    ck_assert_ptr_nonnull(strstr(text, "https://y"));
    free(text);
    cJSON_Delete(v);
    cJSON_Delete(masked);
    es_sub_destroy(s);
    es_sub_destroy(old);
}
END_TEST

/* A number under a secret key (a kafka property may be one) is masked
 * like a string, and a PUT of the mask puts the number back. */
START_TEST(numeric_secrets_are_masked_and_kept)
{
    static const char text[] =
        "{\"tenant\": \"acme\", \"topics\": [\"a\"], \"destination\": "
        "{\"type\": \"kafka\", \"config\": {\"topic\": \"t\", \"properties\": "
        "{\"sasl.password\": 123456, \"linger.ms\": 5}, \"tokens\": [7, "
        "\"s\", true]}}}";
    char err[512];
    es_sub_t *old = parse(text, 0, err, sizeof err);
    ck_assert_ptr_nonnull(old);
    cJSON *masked = es_sub_json(old, 0);
    char *shown = cJSON_PrintUnformatted(cJSON_GetObjectItem(
        cJSON_GetObjectItem(masked, "destination"), "config"));
    ck_assert_str_eq(shown,
                     "{\"topic\":\"t\",\"properties\":{\"sasl.password\":"
                     "\"********\",\"linger.ms\":5},\"tokens\":["
                     "\"********\",\"********\",true]}");
    free(shown);
    es_sub_t *s = es_sub_parse(masked, 0, err, sizeof err);
    ck_assert_ptr_nonnull(s);
    es_sub_keep_secrets(s, old);
    cJSON *v = es_sub_json(s, 1);
    shown = cJSON_PrintUnformatted(
        cJSON_GetObjectItem(cJSON_GetObjectItem(v, "destination"), "config"));
    ck_assert_str_eq(shown,
                     "{\"topic\":\"t\",\"properties\":{\"sasl.password\":"
                     "123456,\"linger.ms\":5},\"tokens\":[7,\"s\","
                     "true]}");
    free(shown);
    cJSON_Delete(v);
    cJSON_Delete(masked);
    es_sub_destroy(s);
    es_sub_destroy(old);
}
END_TEST

/* A hand-edited state file's start offsets are refused naming the member
 * (they were read as partition atoi() and cast from any double). */
START_TEST(stored_start_offsets_are_checked)
{
#define STORED(offsets)                                                        \
    "{\"id\": \"s1\", \"tenant\": \"acme\", \"topics\": [\"a\"],"              \
    " \"destination\": {\"type\": \"kafka\", \"config\": {\"topic\": \"t\"}}," \
    " \"start_offsets\": " offsets "}"
    static const char *const bad[][2] = {
        {STORED("[]"), "start_offsets: must be an object"},
        {STORED("{\"a\": 5}"), "start_offsets.a: must be an object"},
        {STORED("{\"a\": {\"x\": 5}}"),
         "start_offsets.a.x: is not a partition number"},
        {STORED("{\"a\": {\"01\": 5}}"),
         "start_offsets.a.01: is not a partition number"},
        {STORED("{\"a\": {\"-1\": 5}}"),
         "start_offsets.a.-1: is not a partition number"},
        {STORED("{\"a\": {\"0\": -1}}"),
         "start_offsets.a.0: must be an offset, an integer from 0"},
        {STORED("{\"a\": {\"0\": 1e300}}"),
         "start_offsets.a.0: must be an offset, an integer from 0"},
        {STORED("{\"a\": {\"0\": 1.5}}"),
         "start_offsets.a.0: must be an offset, an integer from 0"},
        {STORED("{\"a\": {\"0\": \"7\"}}"),
         "start_offsets.a.0: must be an offset, an integer from 0"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        ck_assert_ptr_null(parse(bad[i][0], 1, err, sizeof err));
        ck_assert_str_eq(err, bad[i][1]);
    }
    es_sub_t *s = parse(STORED("{\"a\": {\"0\": 0, \"12\": 9007199254740992}}"),
                        1, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    es_sub_destroy(s);
#undef STORED
}
END_TEST

START_TEST(state_file_round_trips)
{
    char dir[] = "/tmp/es-subs-XXXXXX", path[64], err[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/subscriptions.json", dir);
    es_sub_t **subs;
    size_t n;
    ck_assert_int_eq(es_subs_load(path, &subs, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 0); /* missing: empty */
    free(subs);

    es_sub_t *a = parse(VALID, 0, err, sizeof err);
    a->id = strdup("one");
    a->start_offsets = cJSON_Parse("{\"a\": {\"0\": 7}}");
    a->enabled = 0;
    ck_assert_int_eq(es_subs_save(path, &a, 1, err, sizeof err), 0);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(es_subs_load(path, &subs, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(subs[0]->id, "one");
    ck_assert_int_eq(subs[0]->enabled, 0);
    ck_assert_str_eq(subs[0]->topics.v[1], "b");
    ck_assert_int_eq(cJSON_GetObjectItem(
                         cJSON_GetObjectItem(subs[0]->start_offsets, "a"), "0")
                         ->valueint,
                     7);
    es_sub_t *d = es_sub_dup(subs[0]);
    ck_assert_str_eq(d->tenant, "acme");
    es_sub_destroy(d);
    es_sub_destroy(subs[0]);
    free(subs);
    es_sub_destroy(a);

    FILE *f = fopen(path, "w");
    fputs("{\"subscriptions\": [{\"id\": \"x\", \"tenant\": \"t\"}]}", f);
    fclose(f);
    ck_assert_int_eq(es_subs_load(path, &subs, &n, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "subscriptions[0]: topics: is required"));
    unlink(path);
    rmdir(dir);
}
END_TEST

/* GET /v1/config's view of URLs: credentials masked, the rest as written. */
static void assert_url_masked(const char *url, const char *want)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "urls");
    cJSON_AddItemToArray(arr, cJSON_CreateString(url));
    cJSON_AddItemToObject(o, "nested", cJSON_CreateObject());
    cJSON_AddStringToObject(cJSON_GetObjectItem(o, "nested"), "url", url);
    es_sub_mask_urls(o);
    ck_assert_str_eq(cJSON_GetArrayItem(arr, 0)->valuestring, want);
    ck_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(o, "nested"), "url")
            ->valuestring,
        want);
    cJSON_Delete(o);
}

START_TEST(urls_show_no_credentials)
{
    static const char *const cases[][2] = {
        {"http://alice:s3cr3t@127.0.0.1:9/in",
         "http://alice:" ES_SUB_MASK "@127.0.0.1:9/in"},
        {"https://u:p@ss@host/x", "https://u:" ES_SUB_MASK "@host/x"},
        {"https://user@host/x", "https://user@host/x"},
        {"https://mainnet.infura.io/v3/9aa3d95b3bc440fa88ea12eaa4456161",
         "https://mainnet.infura.io/v3/" ES_SUB_MASK},
        {"https://hooks.slack.com/services/T0AAA1234/B0BBB5678/"
         "Xk2dK9sQ3mZ8pL1wR7tY4vN6",
         "https://hooks.slack.com/services/T0AAA1234/B0BBB5678/" ES_SUB_MASK},
        {"https://x.blob.core.windows.net/c/o?sv=2022-11-02&sig=abc%2Fdef&se=1",
         "https://x.blob.core.windows.net/c/o?sv=2022-11-02&sig=" ES_SUB_MASK
         "&se=1"},
        {"https://h/f?code=K1&Api_Key=K2&X-Amz-Signature=K3&page=2#frag",
         "https://h/f?code=" ES_SUB_MASK "&Api_Key=" ES_SUB_MASK
         "&X-Amz-Signature=" ES_SUB_MASK "&page=2#frag"},
        /* kept: words, short or all-letter or all-digit segments, ${NAME} */
        {"https://api.example.com/v1/events/ingest-endpoint-primary",
         "https://api.example.com/v1/events/ingest-endpoint-primary"},
        {"https://h/orders/12345678901234567890",
         "https://h/orders/12345678901234567890"},
        {"https://mainnet.infura.io/v3/${INFURA_KEY}",
         "https://mainnet.infura.io/v3/${INFURA_KEY}"},
        {"https://h/a?keyword=x&token", "https://h/a?keyword=x&token"},
        /* not URLs */
        {"see http://a:b@c/ for more", "see http://a:b@c/ for more"},
        {"/var/log/9aa3d95b3bc440fa88ea12eaa4456161",
         "/var/log/9aa3d95b3bc440fa88ea12eaa4456161"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_url_masked(cases[i][0], cases[i][1]);
}
END_TEST

START_TEST(ids)
{
    char a[40], b[40];
    es_sub_new_id(a, sizeof a);
    es_sub_new_id(b, sizeof b);
    ck_assert_uint_eq(strlen(a), 20);
    ck_assert_str_ne(a, b);
    ck_assert(es_sub_valid_id(a));
    ck_assert(!es_sub_valid_id(""));
    ck_assert(!es_sub_valid_id("a/b"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("subscriptions");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, validation_names_the_key);
    tcase_add_test(tc, read_only_fields_are_ignored_unless_stored);
    tcase_add_test(tc, secrets_are_masked);
    tcase_add_test(tc, secret_key_rule);
    tcase_add_test(tc, masked_values_keep_the_stored_secrets);
    tcase_add_test(tc, numeric_secrets_are_masked_and_kept);
    tcase_add_test(tc, stored_start_offsets_are_checked);
    tcase_add_test(tc, state_file_round_trips);
    tcase_add_test(tc, urls_show_no_credentials);
    tcase_add_test(tc, ids);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
