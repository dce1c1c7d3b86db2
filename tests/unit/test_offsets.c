#include <check.h>
#include <stdlib.h>

#include "offsets.h"

START_TEST(nothing_done_nothing_to_commit)
{
    es_offsets_t *t = es_offsets_new();
    ck_assert_int_eq(es_offsets_commit_point(t), -1);
    es_offsets_track(t, 10);
    es_offsets_track(t, 11);
    ck_assert_int_eq(es_offsets_commit_point(t), -1);
    es_offsets_destroy(t);
}
END_TEST

START_TEST(out_of_order_acks_never_pass_a_hole)
{
    es_offsets_t *t = es_offsets_new();
    for (int64_t o = 0; o < 5; o++)
        es_offsets_track(t, o);
    es_offsets_done(t, 3);
    es_offsets_done(t, 1);
    ck_assert_int_eq(es_offsets_commit_point(t), -1); /* 0 still pending */
    es_offsets_done(t, 0);
    ck_assert_int_eq(es_offsets_commit_point(t), 2); /* 2 is the hole */
    es_offsets_done(t, 2);
    ck_assert_int_eq(es_offsets_commit_point(t), 4);
    es_offsets_done(t, 4);
    ck_assert_int_eq(es_offsets_commit_point(t), 5);
    ck_assert_uint_eq(es_offsets_pending(t), 0);
    es_offsets_destroy(t);
}
END_TEST

START_TEST(gaps_in_offsets_are_fine)
{
    es_offsets_t *t = es_offsets_new();
    es_offsets_track(t, 100);
    es_offsets_track(t, 105); /* compacted or transaction markers between */
    es_offsets_track(t, 106);
    es_offsets_done(t, 100);
    ck_assert_int_eq(es_offsets_commit_point(t), 105);
    es_offsets_done(t, 106);
    ck_assert_int_eq(es_offsets_commit_point(t), 105);
    es_offsets_done(t, 105);
    ck_assert_int_eq(es_offsets_commit_point(t), 107);
    es_offsets_destroy(t);
}
END_TEST

START_TEST(rejects_backwards_and_unknown)
{
    es_offsets_t *t = es_offsets_new();
    ck_assert_int_eq(es_offsets_track(t, 5), 0);
    ck_assert_int_eq(es_offsets_track(t, 5), -1);
    ck_assert_int_eq(es_offsets_track(t, 4), -1);
    ck_assert_int_eq(es_offsets_done(t, 6), -1);
    ck_assert_int_eq(es_offsets_done(t, 5), 0);
    ck_assert_int_eq(es_offsets_done(t, 5), -1); /* twice */
    es_offsets_destroy(t);
}
END_TEST

/* A retried event holds the commit point while thousands pass it. */
START_TEST(retry_holds_commit_across_ring_growth)
{
    es_offsets_t *t = es_offsets_new();
    for (int64_t o = 0; o < 10000; o++)
        es_offsets_track(t, o);
    for (int64_t o = 0; o < 10000; o++)
        if (o != 42)
            es_offsets_done(t, o);
    ck_assert_int_eq(es_offsets_commit_point(t), 42);
    ck_assert_uint_eq(es_offsets_pending(t), 1);
    es_offsets_done(t, 42);
    ck_assert_int_eq(es_offsets_commit_point(t), 10000);
    es_offsets_destroy(t);
}
END_TEST

/* Property: for random completion orders, the commit point is always the
 * lowest pending offset (or one past the highest when none is pending). */
START_TEST(random_orders_property)
{
    srand(12345);
    for (int round = 0; round < 200; round++) {
        es_offsets_t *t = es_offsets_new();
        int n = 1 + rand() % 300;
        int64_t *offs = malloc(n * sizeof *offs);
        char *done = calloc(n, 1);
        int64_t o = rand() % 1000;
        for (int i = 0; i < n; i++) {
            o += 1 + rand() % 3;
            offs[i] = o;
            es_offsets_track(t, o);
        }
        for (int k = 0; k < n; k++) {
            int i;
            do
                i = rand() % n;
            while (done[i]);
            done[i] = 1;
            es_offsets_done(t, offs[i]);
            int first = 0;
            while (first < n && done[first])
                first++;
            int64_t expect = first == n   ? offs[n - 1] + 1
                             : first == 0 ? -1
                                          : offs[first];
            ck_assert_int_eq(es_offsets_commit_point(t), expect);
        }
        free(offs);
        free(done);
        es_offsets_destroy(t);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("offsets");
    TCase *tc = tcase_create("offsets");
    tcase_add_test(tc, nothing_done_nothing_to_commit);
    tcase_add_test(tc, out_of_order_acks_never_pass_a_hole);
    tcase_add_test(tc, gaps_in_offsets_are_fine);
    tcase_add_test(tc, rejects_backwards_and_unknown);
    tcase_add_test(tc, retry_holds_commit_across_ring_growth);
    tcase_add_test(tc, random_orders_property);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
