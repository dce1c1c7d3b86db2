#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"

#define MAX (1024 * 1024)

static int decode_str(const char *s, es_decoded_t *d, char *reason, size_t size)
{
    return es_decode_record(s, strlen(s), NULL, 0, MAX, d, reason, size);
}

static void expect_reason(const char *value, const char *why)
{
    es_decoded_t d;
    char reason[256] = "";
    ck_assert_int_eq(decode_str(value, &d, reason, sizeof reason), -1);
    ck_assert_msg(strstr(reason, why), "expected \"%s\", got \"%s\"", why,
                  reason);
    es_decoded_clear(&d);
}

START_TEST(structured_valid_is_not_copied)
{
    const char *v = "{\"specversion\":\"1.0\",\"id\":\"a1\",\"source\":\"s\","
                    "\"type\":\"eventzr.marketplace.order.created.v1\","
                    "\"tenantid\":\"t1\",\"subject\":\"order:1\","
                    "\"data\":{\"price\":5000}}";
    es_decoded_t d;
    char reason[256];
    ck_assert_int_eq(decode_str(v, &d, reason, sizeof reason), 0);
    ck_assert_ptr_eq(d.json, v); /* parse once, never re-serialise */
    ck_assert_uint_eq(d.json_len, strlen(v));
    ck_assert_str_eq(d.id, "a1");
    ck_assert_str_eq(d.type, "eventzr.marketplace.order.created.v1");
    ck_assert_str_eq(d.subject, "order:1");
    char *t = es_decode_lookup(d.ce, NULL, 0, "tenantid");
    ck_assert_str_eq(t, "t1");
    free(t);
    t = es_decode_lookup(d.ce, NULL, 0, "data.price");
    ck_assert_str_eq(t, "5000");
    free(t);
    es_decoded_clear(&d);
}
END_TEST

START_TEST(structured_invalid_reasons)
{
    expect_reason("{\"specversion\":\"1.0\",\"source\":\"s\",\"type\":\"t\"}",
                  "missing required attribute \"id\"");
    expect_reason("{\"specversion\":\"1.0\",\"id\":\"\",\"source\":\"s\","
                  "\"type\":\"t\"}",
                  "missing required attribute \"id\"");
    expect_reason("{\"specversion\":\"0.3\",\"id\":\"1\",\"source\":\"s\","
                  "\"type\":\"t\"}",
                  "unsupported specversion");
    expect_reason("{\"id\":\"1\",\"source\":\"s\",\"type\":\"t\"}",
                  "missing required attribute \"specversion\"");
    expect_reason("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
                  "\"type\":\"t\",\"Bad-Name\":1}",
                  "invalid attribute name \"Bad-Name\"");
    expect_reason("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
                  "\"type\":\"t\",\"data\":1,\"data_base64\":\"AA==\"}",
                  "both \"data\" and \"data_base64\"");
    expect_reason("{\"specversion\":\"1.0\",\"id\":7,\"source\":\"s\","
                  "\"type\":\"t\"}",
                  "attribute \"id\" must be a string");
    expect_reason("{\"specversion\": \"1.0\", oops}", "invalid JSON at byte");
    expect_reason("[1,2]", "not an object");
    expect_reason("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
                  "\"type\":\"t\"} trailing",
                  "trailing data");
    expect_reason("", "not a CloudEvent");
}
END_TEST

START_TEST(oversized_is_refused_before_parsing)
{
    es_decoded_t d;
    char reason[256];
    const char *v = "{\"specversion\":\"1.0\"}";
    ck_assert_int_eq(
        es_decode_record(v, strlen(v), NULL, 0, 10, &d, reason, sizeof reason),
        -1);
    ck_assert_msg(strstr(reason, "over the limit of 10"), "%s", reason);
}
END_TEST

START_TEST(binary_mode_json_data)
{
    es_header_t h[] = {
        {"ce_specversion", "1.0", 3},
        {"ce_id", "b1", 2},
        {"ce_source", "wallet-svc", 10},
        {"ce_type", "eventzr.wallet.payment.completed.v1", 35},
        {"ce_tenantid", "t9", 2},
        {"content-type", "application/json", 16},
    };
    const char *v = "{\"orderId\":\"o1\",\"amount\":5000}";
    es_decoded_t d;
    char reason[256];
    ck_assert_int_eq(
        es_decode_record(v, strlen(v), h, 6, MAX, &d, reason, sizeof reason),
        0);
    ck_assert_str_eq(d.id, "b1");
    ck_assert_ptr_nonnull(d.owned_json);
    cJSON *data = cJSON_GetObjectItem(d.ce, "data");
    ck_assert_int_eq(cJSON_GetObjectItem(data, "amount")->valueint, 5000);
    ck_assert_str_eq(cJSON_GetObjectItem(d.ce, "datacontenttype")->valuestring,
                     "application/json");
    char *t = es_decode_lookup(d.ce, NULL, 0, "tenantid");
    ck_assert_str_eq(t, "t9");
    free(t);
    es_decoded_clear(&d);
}
END_TEST

START_TEST(binary_mode_binary_data_is_base64)
{
    es_header_t h[] = {
        {"ce_specversion", "1.0", 3},
        {"ce_id", "b2", 2},
        {"ce_source", "s", 1},
        {"ce_type", "t", 1},
        {"content-type", "application/octet-stream", 24},
    };
    const unsigned char v[] = {0x00, 0xff, 0x10};
    es_decoded_t d;
    char reason[256];
    ck_assert_int_eq(
        es_decode_record(v, 3, h, 5, MAX, &d, reason, sizeof reason), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(d.ce, "data_base64")->valuestring,
                     "AP8Q");
    es_decoded_clear(&d);
}
END_TEST

START_TEST(binary_mode_bad_json_data)
{
    es_header_t h[] = {{"ce_specversion", "1.0", 3},
                       {"ce_id", "b3", 2},
                       {"ce_source", "s", 1},
                       {"ce_type", "t", 1}};
    es_decoded_t d;
    char reason[256];
    ck_assert_int_eq(
        es_decode_record("{nope", 5, h, 4, MAX, &d, reason, sizeof reason), -1);
    ck_assert_msg(strstr(reason, "binary mode: data is not valid JSON"), "%s",
                  reason);
    es_header_t h2[] = {{"ce_specversion", "1.0", 3}, {"ce_source", "s", 1}};
    ck_assert_int_eq(
        es_decode_record("{}", 2, h2, 2, MAX, &d, reason, sizeof reason), -1);
    ck_assert_msg(strstr(reason, "missing required attribute \"id\""), "%s",
                  reason);
}
END_TEST

START_TEST(tenant_from_key)
{
    char *t = es_decode_lookup(NULL, "tenant-7", 8, "key");
    ck_assert_str_eq(t, "tenant-7");
    free(t);
    ck_assert_ptr_null(es_decode_lookup(NULL, NULL, 0, "key"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("decode");
    TCase *tc = tcase_create("decode");
    tcase_add_test(tc, structured_valid_is_not_copied);
    tcase_add_test(tc, structured_invalid_reasons);
    tcase_add_test(tc, oversized_is_refused_before_parsing);
    tcase_add_test(tc, binary_mode_json_data);
    tcase_add_test(tc, binary_mode_binary_data_is_base64);
    tcase_add_test(tc, binary_mode_bad_json_data);
    tcase_add_test(tc, tenant_from_key);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
