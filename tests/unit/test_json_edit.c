/* es_json_without: members removed from JSON text, the rest byte for byte
 * (host/src/json_edit.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../fuzz/fuzz.h" /* fuzz_delete_path, the reference */
#include "internal/es_json_edit.h"

static char *without(const char *json, const char *const *paths, size_t n)
{
    size_t len = 0;
    char *out = es_json_without(json, strlen(json), paths, n, &len);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(len, strlen(out));
    return out;
}

START_TEST(numbers_and_escapes_are_kept)
{
    const char *paths[] = {"data.email"};
    char *out = without("{\"id\":\"a\\u00e9\",\"data\":{\"n\":"
                        "12345678901234567891,\"f\":1.0,\"z\":-0,\"e\":1E2,"
                        "\"email\":\"x@y\",\"s\":\"\\/\\n\"}}",
                        paths, 1);
    ck_assert_str_eq(out, "{\"id\":\"a\\u00e9\",\"data\":{\"n\":"
                          "12345678901234567891,\"f\":1.0,\"z\":-0,\"e\":1E2,"
                          "\"s\":\"\\/\\n\"}}");
    free(out);
}
END_TEST

START_TEST(first_middle_last_and_only_members)
{
    const char *a[] = {"a"}, *b[] = {"b"}, *c[] = {"c"};
    const char *doc = "{ \"a\" : 1 , \"b\" : [1, {\"x\": \"}\"}] , \"c\" : "
                      "{ \"k\" : null } }";
    char *out = without(doc, a, 1);
    ck_assert_str_eq(out, "{\"b\" : [1, {\"x\": \"}\"}],\"c\" : "
                          "{ \"k\" : null }}");
    free(out);
    out = without(doc, b, 1);
    ck_assert_str_eq(out, "{\"a\" : 1,\"c\" : { \"k\" : null }}");
    free(out);
    out = without(doc, c, 1);
    ck_assert_str_eq(out, "{\"a\" : 1,\"b\" : [1, {\"x\": \"}\"}]}");
    free(out);
    const char *only[] = {"c.k"};
    out = without(doc, only, 1);
    ck_assert_str_eq(out, "{\"a\" : 1,\"b\" : [1, {\"x\": \"}\"}],\"c\" : {}}");
    free(out);
}
END_TEST

START_TEST(keys_are_compared_unescaped)
{
    const char *paths[] = {"em\xc3\xa9il", "d.\xf0\x9f\x98\x80"};
    char *out = without("{\"em\\u00e9il\":1,\"em\\u00e9ilx\":2,\"d\":{"
                        "\"\\ud83d\\ude00\":3,\"\\\"\":4}}",
                        paths, 2);
    ck_assert_str_eq(out, "{\"em\\u00e9ilx\":2,\"d\":{\"\\\"\":4}}");
    free(out);
}
END_TEST

/* The same tree as deleting the members from cJSON's, for documents and
 * paths that cover repeated keys, paths through non-objects, nesting and
 * a path that is a prefix of another. */
START_TEST(same_tree_as_deleting_from_the_parsed_one)
{
    static const char *docs[] = {
        "{}",
        "{\"a\":1,\"a\":2,\"b\":{\"a\":3,\"c\":{\"a\":4}},\"b\":{\"c\":5}}",
        "{\"a\":[{\"b\":1}],\"b\":\"a.b\",\"c\":{\"c\":{\"c\":{}}}}",
        " {\n\t\"data\" :\r{ \"x\" : \"\\\\\" , \"y\":[\"]\"] } } ",
        "{\"data\":{\"x\":{\"y\":1,\"z\":2},\"x\":{\"y\":3}},\"q\":true}",
    };
    static const char *paths[] = {"a",   "b.a",      "b.c.a", "c.c.c", "data.x",
                                  "a.b", "data.x.y", "q",     "nope",  "b.c"};
    size_t np = sizeof paths / sizeof *paths;
    for (size_t d = 0; d < sizeof docs / sizeof *docs; d++) {
        for (size_t i = 0; i < np; i++) {
            for (size_t j = i; j < np; j++) {
                const char *two[] = {paths[i], paths[j]};
                char *out = without(docs[d], two, 2);
                cJSON *got = cJSON_Parse(out), *want = cJSON_Parse(docs[d]);
                ck_assert_msg(got != NULL, "doc %zu, %s + %s: %s", d, paths[i],
                              paths[j], out);
                fuzz_delete_path(want, paths[i]);
                fuzz_delete_path(want, paths[j]);
                /* Printed, not cJSON_Compare: that looks a repeated key
                 * up, and finds the first for both. */
                char *g = cJSON_PrintUnformatted(got);
                char *w = cJSON_PrintUnformatted(want);
                ck_assert_msg(!strcmp(g, w), "doc %zu, %s + %s: %s, want %s", d,
                              paths[i], paths[j], g, w);
                free(g);
                free(w);
                cJSON_Delete(got);
                cJSON_Delete(want);
                free(out);
            }
        }
    }
}
END_TEST

START_TEST(nothing_named_copies_the_text)
{
    const char *doc = "{\"a\" : 1.50, \"b\":[ ]}";
    char *out = without(doc, NULL, 0);
    ck_assert_str_eq(out, "{\"a\" : 1.50,\"b\":[ ]}");
    free(out);
    out = without("[1, 2]", NULL, 0);
    ck_assert_str_eq(out, "[1, 2]");
    free(out);
    /* More paths than fit on the stack (16). */
    const char *many[20];
    for (int i = 0; i < 19; i++)
        many[i] = "a.none";
    many[19] = "a.x";
    out = without("{\"a\":{\"x\":1,\"y\":2},\"b\":3}", many, 20);
    ck_assert_str_eq(out, "{\"a\":{\"y\":2},\"b\":3}");
    free(out);
}
END_TEST

START_TEST(member_text_is_the_first_members_bytes)
{
    const char *doc =
        " { \"a\" : {\"data\": 1}, \"d\\u0061ta\" : [1.0, \"]\"] ,"
        "\"data\": 2 }";
    const char *at = NULL;
    size_t n = 0;
    /* The escaped name is data: found first, as cJSON's lookup does. */
    ck_assert_int_eq(es_json_member_text(doc, strlen(doc), "data", &at, &n), 0);
    ck_assert_uint_eq(n, strlen("[1.0, \"]\"]"));
    ck_assert_int_eq(memcmp(at, "[1.0, \"]\"]", n), 0);
    ck_assert_int_eq(es_json_member_text(doc, strlen(doc), "a", &at, &n), 0);
    ck_assert_int_eq(memcmp(at, "{\"data\": 1}", n), 0);
    /* Members of nested objects are not the object's. */
    ck_assert_int_eq(es_json_member_text("{\"a\":{\"b\":1}}", 13, "b", &at, &n),
                     -1);
    ck_assert_int_eq(es_json_member_text("[1]", 3, "a", &at, &n), -1);
    ck_assert_int_eq(es_json_member_text("{}", 2, "a", &at, &n), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json_edit");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, numbers_and_escapes_are_kept);
    tcase_add_test(tc, first_middle_last_and_only_members);
    tcase_add_test(tc, keys_are_compared_unescaped);
    tcase_add_test(tc, same_tree_as_deleting_from_the_parsed_one);
    tcase_add_test(tc, nothing_named_copies_the_text);
    tcase_add_test(tc, member_text_is_the_first_members_bytes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
