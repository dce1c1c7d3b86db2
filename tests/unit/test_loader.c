#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"

static char plugin_path[1024];

static const char *test_plugin(const char *name)
{
    const char *dir = getenv("ES_TEST_PLUGIN_DIR");
    snprintf(plugin_path, sizeof plugin_path, "%s/%s.so",
             dir ? dir : "tests/unit/plugins/.libs", name);
    return plugin_path;
}

static void expect_refused(const char *name, const char *why)
{
    es_loader_t l = {0};
    char err[1024] = "";
    ck_assert_int_eq(
        es_loader_load_file(&l, test_plugin(name), err, sizeof err), -1);
    ck_assert_msg(strstr(err, name), "message names the file: %s", err);
    ck_assert_msg(strstr(err, why), "expected \"%s\" in: %s", why, err);
    ck_assert_uint_eq(l.count, 0);
    es_loader_clear(&l);
}

/* Loads one test plugin that must load, and checks the flags the host
 * reads from its descriptor. */
static void expect_loaded(const char *file, const char *name, uint32_t flags)
{
    es_loader_t l = {0};
    char err[1024] = "";
    ck_assert_msg(es_loader_load_file(&l, test_plugin(file), err, sizeof err) ==
                      0,
                  "%s", err);
    const es_plugin_t *d = es_loader_find(&l, name);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(d->kind, ES_KIND_SINK);
    ck_assert_uint_eq(es_plugin_flags(d), flags);
    es_loader_clear(&l);
}

START_TEST(good_plugin_loads)
{
    expect_loaded("tp_good", "good", ES_PLUGIN_TEXT_ONLY);
}
END_TEST

/* A plugin built against the ABI 1 header before `flags` was added loads;
 * its descriptor has no flags, whatever lies past its end. */
START_TEST(older_descriptor_loads)
{
    expect_loaded("tp_older", "older", 0);
}
END_TEST

START_TEST(wrong_abi_refused)
{
    expect_refused("tp_wrongabi", "ABI 8, this daemon speaks ABI 1");
}
END_TEST

START_TEST(small_descriptor_refused)
{
    expect_refused("tp_small", "descriptor size 16 is smaller");
}
END_TEST

START_TEST(missing_callback_refused)
{
    expect_refused("tp_nodeliver", "has no deliver callback");
}
END_TEST

START_TEST(duplicate_name_refused)
{
    es_loader_t l = {0};
    char err[1024] = "";
    ck_assert_int_eq(
        es_loader_load_file(&l, test_plugin("tp_good"), err, sizeof err), 0);
    ck_assert_int_eq(
        es_loader_load_file(&l, test_plugin("tp_dup"), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "tp_dup.so") &&
                      strstr(err, "duplicate plugin name \"good\""),
                  "%s", err);
    ck_assert_uint_eq(l.count, 1);
    es_loader_clear(&l);
}
END_TEST

START_TEST(not_a_plugin_refused)
{
    es_loader_t l = {0};
    char err[1024] = "";
    ck_assert_int_eq(
        es_loader_load_file(&l, "/nonexistent/x.so", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "/nonexistent/x.so: cannot load"), "%s", err);
    es_loader_clear(&l);
}
END_TEST

START_TEST(directory_keeps_the_good_ones)
{
    es_loader_t l = {0};
    char err[1024] = "";
    const char *dir = getenv("ES_TEST_PLUGIN_DIR");
    int n = es_loader_load_dir(&l, dir ? dir : "tests/unit/plugins/.libs", err,
                               sizeof err);
    /* Sorted by file name: tp_dup (named "good") loads first, then tp_good
     * is the duplicate; the three broken ones are refused; tp_older loads. */
    ck_assert_int_eq(n, 2);
    ck_assert_uint_eq(l.refused, 4);
    ck_assert_ptr_nonnull(es_loader_find(&l, "good"));
    es_loader_clear(&l);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loader");
    TCase *tc = tcase_create("loader");
    tcase_add_test(tc, good_plugin_loads);
    tcase_add_test(tc, wrong_abi_refused);
    tcase_add_test(tc, small_descriptor_refused);
    tcase_add_test(tc, older_descriptor_loads);
    tcase_add_test(tc, missing_callback_refused);
    tcase_add_test(tc, duplicate_name_refused);
    tcase_add_test(tc, not_a_plugin_refused);
    tcase_add_test(tc, directory_keeps_the_good_ones);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
