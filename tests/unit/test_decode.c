#include <check.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"

#define MAX (1024 * 1024)

static int decode_str(const char *s, es_decoded_t *d, char *reason, size_t size)
{
    return es_decode_record(s, strlen(s), NULL, 0, MAX, 0, d, reason, size);
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
    /* refused at the door, not by one binary-mode sink of several (and a
     * '=' inside is what libcrypto's block decoder reads as 'A') */
    expect_reason("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
                  "\"type\":\"t\",\"data_base64\":\"Q=JD\"}",
                  "\"data_base64\" is not base64: character 2 follows the '=' "
                  "padding");
    expect_reason("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
                  "\"type\":\"t\",\"data_base64\":[1]}",
                  "\"data_base64\" must be a string");
    /* Readers disagree on which of two counts: none is taken. */
    expect_reason("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
                  "\"type\":\"t\",\"source\":\"other\"}",
                  "attribute \"source\" appears twice");
    expect_reason(
        "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
        "\"tenantid\":\"a\",\"type\":\"t\",\"x\":1,\"tenantid\":\"b\"}",
        "attribute \"tenantid\" appears twice");
    expect_reason("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
                  "\"type\":\"t\",\"data\":1,\"data\":2}",
                  "attribute \"data\" appears twice");
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
    ck_assert_int_eq(es_decode_record(v, strlen(v), NULL, 0, 10, 0, &d, reason,
                                      sizeof reason),
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
        es_decode_record(v, strlen(v), h, 6, MAX, 0, &d, reason, sizeof reason),
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

/* The event's text carries JSON data as its own bytes: cJSON's reprint
 * turned 12345678901234567891 into 1.2345678901234567e+19 and 1.0 into 1. */
START_TEST(binary_mode_json_data_keeps_its_bytes)
{
    es_header_t h[] = {
        {"ce_specversion", "1.0", 3},
        {"ce_id", "b1", 2},
        {"ce_source", "s", 1},
        {"ce_type", "t", 1},
        {"content-type", "application/json", 16},
    };
    const char *v = "\xef\xbb\xbf {\"n\": 12345678901234567891, \"f\":1.0, "
                    "\"s\":\"\\u00e9\"} \n";
    es_decoded_t d;
    char reason[256];
    ck_assert_int_eq(
        es_decode_record(v, strlen(v), h, 5, MAX, 0, &d, reason, sizeof reason),
        0);
    ck_assert_str_eq(d.json,
                     "{\"specversion\":\"1.0\",\"id\":\"b1\",\"source\":"
                     "\"s\",\"type\":\"t\",\"datacontenttype\":"
                     "\"application/json\",\"data\": {\"n\": "
                     "12345678901234567891, \"f\":1.0, \"s\":"
                     "\"\\u00e9\"}}");
    ck_assert_uint_eq(d.json_len, strlen(d.json));
    /* The text is an event the decoder takes, with the same tree. */
    es_decoded_t again;
    ck_assert_int_eq(
        es_decode_output(d.json, d.json_len, &again, reason, sizeof reason), 0);
    es_decode_full(&again);
    char *a = cJSON_PrintUnformatted(d.ce),
         *b = cJSON_PrintUnformatted(again.ce);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    es_decoded_clear(&again);
    es_decoded_clear(&d);
    /* A ce_data header is no second data member. */
    es_header_t h2[] = {
        {"ce_specversion", "1.0", 3}, {"ce_id", "b1", 2},
        {"ce_source", "s", 1},        {"ce_type", "t", 1},
        {"ce_data", "x", 1},          {"content-type", "application/json", 16},
    };
    ck_assert_int_eq(
        es_decode_record("{}", 2, h2, 6, MAX, 0, &d, reason, sizeof reason),
        -1);
    ck_assert_msg(strstr(reason, "\"data\""), "%s", reason);
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
        es_decode_record(v, 3, h, 5, MAX, 0, &d, reason, sizeof reason), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(d.ce, "data_base64")->valuestring,
                     "AP8Q");
    es_decoded_clear(&d);
}
END_TEST

/* What a binary-mode sink decodes: base64 with or without its padding,
 * line-wrapped; null is as good as absent. */
START_TEST(structured_data_base64_taken)
{
    static const char *const values[] = {
        "\"AP8Q\"", "\"AP8=\"", "\"AP8\"", "\"AP8Q\\nAP8Q\"", "null", "\"\""};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        char v[256];
        snprintf(v, sizeof v,
                 "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
                 "\"type\":\"t\",\"data_base64\":%s}",
                 values[i]);
        es_decoded_t d;
        char reason[256] = "";
        ck_assert_msg(decode_str(v, &d, reason, sizeof reason) == 0,
                      "%s refused: %s", values[i], reason);
        es_decoded_clear(&d);
    }
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
        es_decode_record("{nope", 5, h, 4, MAX, 0, &d, reason, sizeof reason),
        -1);
    ck_assert_msg(strstr(reason, "binary mode: data is not valid JSON"), "%s",
                  reason);
    es_header_t h2[] = {{"ce_specversion", "1.0", 3}, {"ce_source", "s", 1}};
    ck_assert_int_eq(
        es_decode_record("{}", 2, h2, 2, MAX, 0, &d, reason, sizeof reason),
        -1);
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

/* A number tenant prints as an integer when it is one, else as a double
 * (1e300 was cast to long long first: undefined). */
START_TEST(tenant_from_a_number)
{
    cJSON *ce = cJSON_Parse("{\"a\":42,\"b\":1.5,\"c\":1e300,\"d\":-7}");
    static const char *const want[][2] = {{"a", "42"},
                                          {"b", "1.5"},
                                          {"c", "1.0000000000000001e+300"},
                                          {"d", "-7"}};
    for (size_t i = 0; i < 4; i++) {
        char *t = es_decode_lookup(ce, NULL, 0, want[i][0]);
        ck_assert_str_eq(t, want[i][1]);
        free(t);
    }
    cJSON_Delete(ce);
}
END_TEST

/* A tenant found through a key written twice would be a guess (readers
 * differ on which counts): there is none, and require_tenant dead-letters
 * the event. A repeated key elsewhere does not matter. */
START_TEST(tenant_through_a_repeated_key_is_none)
{
    cJSON *ce = cJSON_Parse("{\"data\":{\"tenantId\":\"a\",\"x\":1,"
                            "\"tenantId\":\"b\",\"o\":{\"t\":\"c\"},"
                            "\"o\":{\"t\":\"d\"},\"p\":{\"t\":\"e\"}},"
                            "\"x\":1,\"x\":2}");
    ck_assert_ptr_null(es_decode_lookup(ce, NULL, 0, "data.tenantId"));
    ck_assert_ptr_null(es_decode_lookup(ce, NULL, 0, "data.o.t"));
    char *t = es_decode_lookup(ce, NULL, 0, "data.p.t");
    ck_assert_str_eq(t, "e");
    free(t);
    cJSON_Delete(ce);
}
END_TEST

/* A path's segments are matched whole, of any length (a 128-byte buffer
 * made a longer one find nothing). */
START_TEST(tenant_path_segments_match_whole)
{
    char name[301], spec[320], text[400];
    memset(name, 'k', 300);
    name[300] = '\0';
    snprintf(spec, sizeof spec, "data.%s", name);
    snprintf(text, sizeof text,
             "{\"data\":{\"%s\":\"long\",\"ten\":\"p\","
             "\"tenantId\":\"t\"}}",
             name);
    cJSON *ce = cJSON_Parse(text);
    char *t = es_decode_lookup(ce, NULL, 0, spec);
    ck_assert_str_eq(t, "long");
    free(t);
    spec[strlen(spec) - 1] = '\0'; /* one short of the key: not it */
    ck_assert_ptr_null(es_decode_lookup(ce, NULL, 0, spec));
    t = es_decode_lookup(ce, NULL, 0, "data.ten");
    ck_assert_str_eq(t, "p");
    free(t);
    ck_assert_ptr_null(es_decode_lookup(ce, NULL, 0, "data.tenantIdX"));
    ck_assert_ptr_null(es_decode_lookup(ce, NULL, 0, "data.tenant"));
    cJSON_Delete(ce);
}
END_TEST

/* Why a lookup found nothing: a repeated key on the way, or nothing. */
START_TEST(tenant_lookup_says_when_a_key_is_repeated)
{
    cJSON *ce = cJSON_Parse("{\"tenantid\":\"a\",\"tenantid\":\"b\","
                            "\"data\":{\"c\":{\"org\":1,\"org\":2},\"x\":1},"
                            "\"data2\":{\"c\":{}},\"data2\":{}}");
    ck_assert_ptr_null(es_decode_lookup(ce, NULL, 0, "tenantid"));
    ck_assert_int_eq(es_decode_lookup_repeated(ce, "tenantid"), 1);
    ck_assert_int_eq(es_decode_lookup_repeated(ce, "data.c.org"), 1);
    ck_assert_int_eq(es_decode_lookup_repeated(ce, "data2.c.org"), 1);
    ck_assert_int_eq(es_decode_lookup_repeated(ce, "data.x"), 0);
    ck_assert_int_eq(es_decode_lookup_repeated(ce, "data.nope.org"), 0);
    ck_assert_int_eq(es_decode_lookup_repeated(ce, "key"), 0);
    cJSON_Delete(ce);
}
END_TEST

/* ------------------------------------------- es_json_parse against cJSON */

/* Same shape, types, names, strings and numbers (bit for bit), and the
 * same links (prev of a first child is the last one, as cJSON has it). */
static void same_tree(const cJSON *a, const cJSON *b)
{
    ck_assert_int_eq(a->type, b->type);
    ck_assert_int_eq(a->valueint, b->valueint);
    ck_assert_mem_eq(&a->valuedouble, &b->valuedouble, sizeof(double));
    ck_assert_int_eq(!a->string, !b->string);
    if (a->string)
        ck_assert_str_eq(a->string, b->string);
    ck_assert_int_eq(!a->valuestring, !b->valuestring);
    if (a->valuestring)
        ck_assert_str_eq(a->valuestring, b->valuestring);
    ck_assert_int_eq(!a->child, !b->child);
    if (!a->child)
        return;
    ck_assert_int_eq(!a->child->prev, !b->child->prev);
    const cJSON *x = a->child, *y = b->child;
    for (; x && y; x = x->next, y = y->next) {
        same_tree(x, y);
        if (x != a->child)
            ck_assert_ptr_eq(x->prev->next, x);
        if (!x->next) {
            ck_assert_ptr_eq(a->child->prev, x);
            ck_assert_ptr_null(y->next);
        }
    }
    ck_assert_int_eq(!x, !y);
}

/* Parses with both; both fail, or both succeed with the same tree and the
 * same end. Returns whether the fast path was taken. */
static int parse_both(const char *json, size_t len)
{
    const char *end_a = NULL, *end_b = NULL;
    void *arena = NULL;
    cJSON *a = es_json_parse(json, len, &end_a, &arena);
    cJSON *b = cJSON_ParseWithLengthOpts(json, len, &end_b, 0);
    ck_assert_msg(!a == !b, "parse differs on \"%.*s\"", (int)len, json);
    if (a) {
        same_tree(a, b);
        ck_assert_ptr_eq(end_a, end_b);
    }
    es_json_tree_free(a, arena);
    cJSON_Delete(b);
    return arena != NULL;
}

/* Whether only JSON whitespace is left from p to end. */
static int only_whitespace(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p == end;
}

/*
 * Whether the decoder's refusal of text cJSON takes ("invalid JSON at byte
 * N: ...") names a real departure from JSON at that byte: a control
 * character, a \u escape without 4 hex digits, a number that RFC 8259's
 * grammar (a regular expression here, not the decoder's code) does not
 * match, or one beyond a double.
 */
static int refusal_is_justified(const char *json, size_t len,
                                const char *reason)
{
    const char *u = strstr(reason, "unsupported JSON at byte ");
    if (u) {
        size_t at = strtoul(u + 25, NULL, 10);
        return at + 6 <= len && !memcmp(json + at, "\\u0000", 6);
    }
    const char *p = strstr(reason, "invalid JSON at byte ");
    size_t at = p ? strtoul(p + 21, NULL, 10) : len;
    if (at >= len)
        return 0;
    if ((unsigned char)json[at] < 0x20)
        return 1;
    if (json[at] == '\\') {
        size_t hex = 0;
        while (hex < 4 && at + 2 + hex < len &&
               strchr("0123456789abcdefABCDEF", json[at + 2 + hex]) &&
               json[at + 2 + hex])
            hex++;
        return at + 1 < len && json[at + 1] == 'u' && hex < 4;
    }
    char number[64];
    size_t n = 0;
    while (at + n < len && n < sizeof number - 1 &&
           strchr("0123456789+-eE.", json[at + n]) && json[at + n])
        number[n] = json[at + n], n++;
    number[n] = '\0';
    regex_t re;
    ck_assert_int_eq(
        regcomp(&re, "^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?$",
                REG_EXTENDED | REG_NOSUB),
        0);
    int is_json_number = regexec(&re, number, 0, NULL, 0) == 0;
    regfree(&re);
    return n > 0 && (!is_json_number || !isfinite(strtod(number, NULL)));
}

/* A filter's output decoded shallow, then whole: cJSON's verdict, but
 * nothing after the value (cJSON ignores it) and none of what cJSON takes
 * and JSON does not (refusal_is_justified), and cJSON's tree and
 * attributes once whole. */
static void output_both(const char *json, size_t len)
{
    es_decoded_t d, v = {0};
    char reason[256], why_cjson[256];
    int rc = es_decode_output(json, len, &d, reason, sizeof reason);
    const char *end = NULL;
    cJSON *b = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    int ok = b && only_whitespace(end, json + len) &&
             es_decode_validate(b, &v, why_cjson, sizeof why_cjson) == 0;
    if (ok && rc != 0)
        ck_assert_msg(refusal_is_justified(json, len, reason),
                      "output refused (%s) but JSON: \"%.*s\"", reason,
                      (int)len, json);
    else
        ck_assert_msg((rc == 0) == ok, "output verdict differs on \"%.*s\"",
                      (int)len, json);
    if (rc == 0) {
        for (const cJSON *m = d.shallow ? d.ce->child : NULL; m; m = m->next)
            ck_assert_msg(!cJSON_IsObject(m) && !cJSON_IsArray(m),
                          "shallow tree has a built container");
        es_decode_full(&d);
        ck_assert_int_eq(d.shallow, 0);
        same_tree(d.ce, b);
        ck_assert_str_eq(d.id, v.id);
        ck_assert_str_eq(d.type, v.type);
        ck_assert_str_eq(d.source, v.source);
        ck_assert_int_eq(!d.time, !v.time);
        es_decoded_clear(&d);
    }
    cJSON_Delete(b);
}

static const char *const corpus[] = {
    "{}",
    "[]",
    "{ }",
    " [ ] ",
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1",
    "-1",
    "12",
    "123456789012345",
    "1234567890123456",
    "-9007199254740993",
    "9223372036854775807",
    "1e3",
    "1E+3",
    "1.5e-3",
    "0.1",
    "1.0",
    "-0.0",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "1e400",
    "\"\"",
    "\"abc\"",
    "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"",
    "\"\\u00e9\"",
    "\"\\ud83d\\ude00\"",
    "\"\\udc00\"",
    "\"\\q\"",
    "\"tab\there\"",
    "\"\xc3\xa9t\xc3\xa9\"",
    "\"\xff\xfe\"",
    "{\"a\":1,\"a\":2}",
    "{\"a\":{\"b\":[1,2,{\"c\":null}]},\"d\":[]}",
    "[1,[2,[3,[4,[]]]]]",
    "[1,]",
    "[,1]",
    "{\"a\"}",
    "{\"a\":}",
    "{a:1}",
    "{\"a\":1,}",
    "[1 2]",
    "01",
    "-",
    "1.",
    ".5",
    "+1",
    "1e",
    "1e+",
    "0x10",
    "1-2",
    "[1-2]",
    "[01]",
    "[1.]",
    "nul",
    "tru",
    "[true false]",
    "\"unterminated",
    "[",
    "{",
    "{\"a\":1",
    "\xef\xbb\xbf{}",
    "\x01[1]\x01",
    "\t\n\r {\"k\" \t:\n \"v\" , \"n\":-12.5e2 }  trailing",
    "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\","
    "\"data\":{\"n\":9007199254740993,\"f\":1.0,\"z\":null,\"e\":[],"
    "\"o\":{},\"u\":\"\xe2\x82\xac\"}}",
};

START_TEST(fast_parse_matches_cjson)
{
    int fast = 0;
    for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
        fast += parse_both(corpus[i], strlen(corpus[i]));
        output_both(corpus[i], strlen(corpus[i]));
    }
    ck_assert_int_gt(fast, 30); /* most of the corpus takes the fast path */
    /* A length that stops inside a value. */
    parse_both("[1,2,3]", 4);
    parse_both("\"abc\"", 3);
    parse_both("true", 3);
    /* Deep nesting falls back to cJSON (and its limit). */
    char deep[2 * 1100 + 1];
    for (int n = 150; n <= 1100; n += 950) {
        memset(deep, '[', (size_t)n);
        memset(deep + n, ']', (size_t)n);
        parse_both(deep, 2 * (size_t)n);
    }
}
END_TEST

/* Random mutations of a real event: insertions, deletions and changes of
 * JSON's own characters, so most results are near misses. */
START_TEST(fast_parse_matches_cjson_mutated)
{
    static const char base[] =
        "{\"specversion\":\"1.0\",\"id\":\"a-1\",\"type\":\"t.v1\","
        "\"source\":\"svc\",\"tenantid\":\"t-1\",\"data\":{\"n\":-12,"
        "\"f\":1.25e3,\"s\":\"x\\ny\",\"a\":[1,[true,false,null],{}],"
        "\"o\":{\"k\":\"v\"}}}";
    static const char alphabet[] = "{}[]\",:.-+eE0123456789 \\ntfu";
    char buf[sizeof base + 8];
    srand(42);
    for (int i = 0; i < 2000; i++) {
        size_t n = sizeof base - 1;
        memcpy(buf, base, n);
        for (int m = 0, nm = 1 + rand() % 3; m < nm; m++) {
            size_t at = (size_t)rand() % n;
            char c = alphabet[rand() % (int)(sizeof alphabet - 1)];
            switch (rand() % 3) {
            case 0:
                buf[at] = c;
                break;
            case 1:
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
                break;
            default:
                if (n + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = c;
                    n++;
                }
            }
        }
        parse_both(buf, n);
        output_both(buf, n);
    }
}
END_TEST

START_TEST(output_is_copied_and_validated)
{
    static const char ev[] = "{\"specversion\":\"1.0\",\"id\":\"1\","
                             "\"source\":\"s\",\"type\":\"t\",\"data\":1}";
    char text[sizeof ev];
    memcpy(text, ev, sizeof ev);
    es_decoded_t d;
    char reason[256];
    ck_assert_int_eq(
        es_decode_output(text, strlen(text), &d, reason, sizeof reason), 0);
    memset(text, 'x', sizeof text - 1); /* the caller's buffer is reused */
    ck_assert_ptr_nonnull(d.arena);
    ck_assert_int_eq((int)d.json_len, (int)strlen(ev));
    ck_assert_int_eq(memcmp(d.json, ev, d.json_len), 0);
    ck_assert_str_eq(d.type, "t");
    es_decoded_clear(&d);
    /* The fallback (a \u escape) owns its copy the usual way. */
    static const char esc[] = "{\"specversion\":\"1.0\",\"id\":\"\\u0031\","
                              "\"source\":\"s\",\"type\":\"t\"}";
    ck_assert_int_eq(
        es_decode_output(esc, strlen(esc), &d, reason, sizeof reason), 0);
    ck_assert_ptr_null(d.arena);
    ck_assert_str_eq(d.id, "1");
    ck_assert_str_eq(d.json, esc);
    es_decoded_clear(&d);
    ck_assert_int_eq(
        es_decode_output("{\"id\":1}", 8, &d, reason, sizeof reason), -1);
    ck_assert_int_eq(es_decode_output("{\"id\"", 5, &d, reason, sizeof reason),
                     -1);
    ck_assert_str_eq(reason, "filter output is not valid JSON");
}
END_TEST

/* JSON wants control characters escaped in strings, and only space, tab,
 * line feed and carriage return between tokens; cJSON takes any byte
 * below 0x20 in both places (a raw NUL cut the string short in the tree
 * while the text kept it), bad \u hex digits and strtod's numbers.
 * Records and outputs with them are refused with the byte, and so is
 * anything after an output's value. */
START_TEST(strict_json_text)
{
    static const struct {
        const char *text;
        size_t len;
        const char *why;
    } bad[] = {
#define EV(mid) "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\"," mid
        {EV("\"type\":\"a\tb\"}"), 0,
         "at byte 52: control character 0x09 "
         "written raw in a string"},
        {EV("\"type\":\"a\0b\"}"), 56,
         "at byte 52: control character 0x00 "
         "written raw in a string"},
        {EV("\"type\":\"t\",\"data\":\x01{}}"), 0,
         "at byte 61: control character 0x01 outside a string"},
        {EV("\"type\":\"t\",\"data\":\0\0{}}"), 66,
         "at byte 61: control character 0x00 outside a string"},
        {EV("\"type\":\"t\",\"data\":{\"k\":\"\x1f\"}}"), 0,
         "at byte 67: control character 0x1f written raw"},
        /* cJSON reads a bad hex digit as U+0000, and numbers strtod reads */
        {EV("\"type\":\"\\u00/9\"}"), 0,
         "at byte 51: \\u escape without 4 hex digits"},
        {EV("\"type\":\"t\",\"data\":012}"), 0,
         "at byte 61: \"012\" is not a JSON number"},
        {EV("\"type\":\"t\",\"data\":[1.,-.5]}"), 0,
         "at byte 62: \"1.\" is not a JSON number"},
        {EV("\"type\":\"t\",\"data\":[1e308,-2E+400]}"), 0,
         "at byte 68: \"-2E+400\" is out of a double's range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].text);
        for (int index = 0; index <= 1; index++) {
            es_decoded_t d;
            char reason[256] = "";
            ck_assert_int_eq(es_decode_record(bad[i].text, len, NULL, 0, MAX,
                                              index, &d, reason, sizeof reason),
                             -1);
            ck_assert_msg(strstr(reason, bad[i].why), "%zu: %s", i, reason);
            ck_assert_msg(strncmp(reason, "invalid JSON at byte", 20) == 0,
                          "%s", reason);
        }
        es_decoded_t d;
        char reason[256] = "";
        ck_assert_int_eq(
            es_decode_output(bad[i].text, len, &d, reason, sizeof reason), -1);
        ck_assert_msg(strstr(reason, bad[i].why), "%zu: %s", i, reason);
    }
    /* At every byte lane of the 8-byte scan and in its byte-wise tail
     * (the last bytes of the text): refused raw, taken otherwise. */
    for (int pad = 0; pad < 20; pad++) {
        char text[128], reason[256];
        for (int raw = 0; raw <= 1; raw++) {
            snprintf(text, sizeof text, EV("\"type\":\"%.*s%c\"}"), pad,
                     "xxxxxxxxxxxxxxxxxxxx", raw ? '\x01' : 'y');
            es_decoded_t d;
            int rc = es_decode_record(text, strlen(text), NULL, 0, MAX, 0, &d,
                                      reason, sizeof reason);
            ck_assert_int_eq(rc, raw ? -1 : 0);
            if (raw)
                ck_assert_msg(strstr(reason, "control character 0x01"), "%s",
                              reason);
            else
                es_decoded_clear(&d);
        }
    }
    /* Escaped, they are fine; so is whitespace between tokens. */
    static const char good[] = EV("\"type\":\"a\\tb\\u0001\",\r\n\t\"data\""
                                  " : {\"k\":\"\\u001f\"}}\n");
#undef EV
    es_decoded_t d;
    char reason[256];
    ck_assert_int_eq(es_decode_record(good, strlen(good), NULL, 0, MAX, 1, &d,
                                      reason, sizeof reason),
                     0);
    es_decoded_clear(&d);
    ck_assert_int_eq(
        es_decode_output(good, strlen(good), &d, reason, sizeof reason), 0);
    es_decoded_clear(&d);
    /* After an output's value: whitespace only. */
    static const char tail[] = "{\"specversion\":\"1.0\",\"id\":\"1\","
                               "\"source\":\"s\",\"type\":\"t\"} x";
    ck_assert_int_eq(
        es_decode_output(tail, strlen(tail), &d, reason, sizeof reason), -1);
    ck_assert_str_eq(reason, "filter output: trailing data after the JSON "
                             "value at byte 54");
    /* The output's fallback parse (a \u escape) copies all of it, a NUL
     * after the value included, before refusing the NUL. */
    static const char nul_tail[] =
        "{\"specversion\":\"1.0\",\"id\":\"\\u0031\","
        "\"source\":\"s\",\"type\":\"t\"}\0x";
    ck_assert_int_eq(es_decode_output(nul_tail, sizeof nul_tail - 1, &d, reason,
                                      sizeof reason),
                     -1);
    ck_assert_msg(strstr(reason, "trailing data"), "%s", reason);
}
END_TEST

/* A byte order mark before a record's value is skipped (RFC 8259 lets
 * readers ignore it): the event's text starts after it, so the index and
 * the Lua filter's reader never see it. A second one, or one before a
 * filter's output, is refused. */
START_TEST(byte_order_mark)
{
    static const char ev[] =
        "\xEF\xBB\xBF{\"specversion\":\"1.0\",\"id\":\"1\","
        "\"source\":\"s\",\"type\":\"t\",\"data\":{}}";
    es_decoded_t d;
    char reason[256];
    for (int index = 0; index <= 1; index++) {
        ck_assert_int_eq(es_decode_record(ev, strlen(ev), NULL, 0, MAX, index,
                                          &d, reason, sizeof reason),
                         0);
        ck_assert_ptr_eq(d.json, ev + 3);
        ck_assert_uint_eq(d.json_len, strlen(ev) - 3);
        ck_assert_int_eq(!d.index, !index);
        es_decoded_clear(&d);
    }
    static const char twice[] =
        "\xEF\xBB\xBF\xEF\xBB\xBF{\"specversion\":"
        "\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\"}";
    ck_assert_int_eq(es_decode_record(twice, strlen(twice), NULL, 0, MAX, 1, &d,
                                      reason, sizeof reason),
                     -1);
    ck_assert_str_eq(
        reason, "invalid JSON at byte 3: byte order mark inside the value");
    ck_assert_int_eq(
        es_decode_output(ev, strlen(ev), &d, reason, sizeof reason), -1);
    ck_assert_str_eq(reason, "filter output: invalid JSON at byte 0: byte "
                             "order mark inside the value");
    es_header_t h[] = {{"ce_specversion", "1.0", 3},
                       {"ce_id", "b5", 2},
                       {"ce_source", "s", 1},
                       {"ce_type", "t", 1}};
    ck_assert_int_eq(es_decode_record("\xEF\xBB\xBF{\"a\":1}", 10, h, 4, MAX, 0,
                                      &d, reason, sizeof reason),
                     0);
    ck_assert_int_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(d.ce, "data"), "a")->valueint,
        1);
    es_decoded_clear(&d);
    /* Offsets in reasons are into the record as it is, the mark counted:
     * the raw tab is byte 9 of the record, 6 of the text after the mark. */
    ck_assert_int_eq(es_decode_record("\xEF\xBB\xBF{\"a\":\"\t\"}", 12, h, 4,
                                      MAX, 0, &d, reason, sizeof reason),
                     -1);
    ck_assert_msg(strstr(reason, "binary mode: data: invalid JSON at byte 9: "),
                  "%s", reason);
    static const char tab[] =
        "\xEF\xBB\xBF{\"specversion\":\"1.0\",\"id\":\"\t\"}";
    ck_assert_int_eq(es_decode_record(tab, strlen(tab), NULL, 0, MAX, 0, &d,
                                      reason, sizeof reason),
                     -1);
    ck_assert_msg(strstr(reason, "invalid JSON at byte 30: "), "%s", reason);
    /* Where cJSON gives up: byte 27 of the text, 30 of the record. */
    static const char cut[] = "\xEF\xBB\xBF{\"specversion\":\"1.0\",\"id\":1,";
    ck_assert_int_eq(es_decode_record(cut, strlen(cut), NULL, 0, MAX, 0, &d,
                                      reason, sizeof reason),
                     -1);
    ck_assert_str_eq(reason, "invalid JSON at byte 30");
}
END_TEST

/* Binary mode's JSON data is held to the same rules. */
START_TEST(binary_mode_strict_json_data)
{
    es_header_t h[] = {{"ce_specversion", "1.0", 3},
                       {"ce_id", "b4", 2},
                       {"ce_source", "s", 1},
                       {"ce_type", "t", 1}};
    es_decoded_t d;
    char reason[256];
    ck_assert_int_eq(es_decode_record("{\"a\":1} x", 10, h, 4, MAX, 0, &d,
                                      reason, sizeof reason),
                     -1);
    ck_assert_str_eq(reason, "binary mode: data: trailing data after the JSON "
                             "value at byte 7");
    ck_assert_int_eq(es_decode_record("{\"a\":\"\x02\"}", 9, h, 4, MAX, 0, &d,
                                      reason, sizeof reason),
                     -1);
    ck_assert_msg(strstr(reason, "binary mode: data: invalid JSON at byte 6: "
                                 "control character 0x02"),
                  "%s", reason);
    ck_assert_int_eq(es_decode_record("{\"a\":1}\n", 8, h, 4, MAX, 0, &d,
                                      reason, sizeof reason),
                     0);
    es_decoded_clear(&d);
}
END_TEST

/* \u0000 is JSON, but cJSON's strings end at NUL: a PII strip or a
 * binary-mode sink writing the tree back would cut the string there. It is
 * refused at the door, with its offset, wherever a text comes from; an
 * escaped backslash before "u0000" is not it. */
START_TEST(nul_escape_is_refused)
{
#define NUL_WHY                                                                \
    "unsupported JSON at byte 68: \\u0000 (U+0000) in a string, which "        \
    "eventstream cannot carry (its JSON strings end at NUL)"
    static const char rec[] =
        "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\","
        "\"data\":{\"n\":\"a\\u0000b\"}}";
    es_decoded_t d;
    char reason[256];
    ck_assert_int_eq(decode_str(rec, &d, reason, sizeof reason), -1);
    ck_assert_str_eq(reason, NUL_WHY);
    ck_assert_int_eq(
        es_decode_output(rec, strlen(rec), &d, reason, sizeof reason), -1);
    ck_assert_str_eq(reason, "filter output: " NUL_WHY);
#undef NUL_WHY
    es_header_t h[] = {{"ce_specversion", "1.0", 3},
                       {"ce_id", "b5", 2},
                       {"ce_source", "s", 1},
                       {"ce_type", "t", 1}};
    static const char data[] = "[\"\\u0000\"]";
    ck_assert_int_eq(es_decode_record(data, strlen(data), h, 4, MAX, 0, &d,
                                      reason, sizeof reason),
                     -1);
    ck_assert_msg(strstr(reason, "binary mode: data: unsupported JSON at byte "
                                 "2: \\u0000 (U+0000)"),
                  "%s", reason);
    /* One further on is found; "a\\u0000" (a backslash, then the letters)
     * is not one, and U+0001 is carried. */
    static const char late[] =
        "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\","
        "\"data\":{\"n\":\"a\\\\u0000\",\"m\":\"\\u0001\\u00000\"}}";
    ck_assert_int_eq(decode_str(late, &d, reason, sizeof reason), -1);
    ck_assert_msg(strstr(reason, "at byte 88: \\u0000"), "%s", reason);
    static const char escaped[] =
        "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\","
        "\"data\":{\"n\":\"a\\\\u0000\",\"m\":\"\\u0001\"}}";
    ck_assert_int_eq(decode_str(escaped, &d, reason, sizeof reason), 0);
    const cJSON *data_n = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(d.ce, "data"), "n");
    ck_assert_str_eq(data_n->valuestring, "a\\u0000");
    es_decoded_clear(&d);
    /* A header's NUL byte would cut the attribute the same way: the id's
     * (entry 1) or the content type's (entry 4). */
    for (int at = 1; at <= 4; at += 3) {
        es_header_t nul_h[] = {
            {"ce_specversion", "1.0", 3},
            {"ce_id", at == 1 ? "b\0x" : "b6", at == 1 ? 3 : 2},
            {"ce_source", "s", 1},
            {"ce_type", "t", 1},
            {"content-type", "text/plain\0x", at == 4 ? 12 : 10}};
        ck_assert_int_eq(es_decode_record("hi", 2, nul_h, 5, MAX, 0, &d, reason,
                                          sizeof reason),
                         -1);
        char want[128];
        snprintf(want, sizeof want,
                 "binary mode: header \"%s\" holds a NUL byte, which an "
                 "attribute cannot",
                 nul_h[at].name);
        ck_assert_str_eq(reason, want);
    }
}
END_TEST

/* An output's data is checked but not built until es_decode_full: a bad
 * byte deep in it still fails the output. */
START_TEST(output_tree_is_built_on_demand)
{
    static const char ev[] =
        "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
        "\"type\":\"t\",\"time\":\"2026\",\"tenantid\":\"a\","
        "\"data\":{\"x\":[1,{\"y\":\"z\"}],\"e\":\"q\\\"\"},\"n\":[]}";
    es_decoded_t d;
    char reason[256];
    ck_assert_int_eq(
        es_decode_output(ev, strlen(ev), &d, reason, sizeof reason), 0);
    ck_assert_int_eq(d.shallow, 1);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(d.ce, "data");
    ck_assert(cJSON_IsRaw(data));
    ck_assert(cJSON_IsRaw(cJSON_GetObjectItemCaseSensitive(d.ce, "n")));
    ck_assert_str_eq(
        cJSON_GetObjectItemCaseSensitive(d.ce, "tenantid")->valuestring, "a");
    ck_assert_str_eq(d.time, "2026");
    es_decode_full(&d);
    ck_assert_int_eq(d.shallow, 0);
    ck_assert_ptr_nonnull(d.tree_arena);
    data = cJSON_GetObjectItemCaseSensitive(d.ce, "data");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(data, "e")->valuestring,
                     "q\"");
    ck_assert_str_eq(d.id, "1");
    ck_assert_str_eq(d.time, "2026");
    es_decode_full(&d); /* whole already: nothing */
    es_decoded_clear(&d);
    static const char bad[] =
        "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
        "\"type\":\"t\",\"data\":{\"x\":[1,{\"y\":tru}]}}";
    ck_assert_int_eq(
        es_decode_output(bad, strlen(bad), &d, reason, sizeof reason), -1);
    ck_assert_str_eq(reason, "filter output is not valid JSON");
}
END_TEST

/* ------------------------------------------------- the index of members */

/* The text of member m's key and value, "key=value". */
static void member_text(const char *json, const es_json_member_t *m, char *out,
                        size_t size)
{
    snprintf(out, size, "%.*s=%.*s", (int)(m->key_end - m->key_start),
             json + m->key_start, (int)(m->value_end - m->value_start),
             json + m->value_start);
}

/* The members of the object block child/n, "k=v k=v ...". */
static void block_text(const char *json, const es_json_index_t *x,
                       uint32_t child, uint32_t n, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    ck_assert_uint_ge(child, 1);
    ck_assert_uint_le(child - 1 + n, x->count);
    for (uint32_t i = 0; i < n; i++) {
        char one[256];
        member_text(json, &x->members[child - 1 + i], one, sizeof one);
        len +=
            (size_t)snprintf(out + len, size - len, "%s%s", i ? " " : "", one);
    }
}

START_TEST(index_of_members)
{
    /* Whitespace, a nested object, an empty one, an object in an array
     * (not indexed), a repeated key and an escaped key. */
    const char *v =
        " {\"specversion\":\"1.0\", \"id\" : \"a1\",\"source\":\"s\","
        "\"type\":\"t\",\"data\":{\"a\\\"b\":1,\"s\":{\"x\":[{\"q\":1}],"
        "\"y\":{}},\"arr\":[1,{\"z\":2}],\"a\\\"b\":2}}\n";
    es_decoded_t d;
    char reason[256], got[1024];
    ck_assert_int_eq(es_decode_record(v, strlen(v), NULL, 0, MAX, 1, &d, reason,
                                      sizeof reason),
                     0);
    const es_json_index_t *x = d.index;
    ck_assert_ptr_nonnull(x);
    block_text(v, x, x->root, x->nroot, got, sizeof got);
    ck_assert_str_eq(got, "\"specversion\"=\"1.0\" \"id\"=\"a1\" "
                          "\"source\"=\"s\" \"type\"=\"t\" "
                          "\"data\"={\"a\\\"b\":1,\"s\":{\"x\":[{\"q\":1}],"
                          "\"y\":{}},\"arr\":[1,{\"z\":2}],\"a\\\"b\":2}");
    const es_json_member_t *data = &x->members[x->root - 1 + 4];
    block_text(v, x, data->child, data->nchild, got, sizeof got);
    ck_assert_str_eq(got, "\"a\\\"b\"=1 \"s\"={\"x\":[{\"q\":1}],\"y\":{}} "
                          "\"arr\"=[1,{\"z\":2}] \"a\\\"b\"=2");
    const es_json_member_t *dm = &x->members[data->child - 1];
    ck_assert_uint_eq(dm[0].flags, ES_JSON_KEY_ESCAPED);
    ck_assert_uint_eq(dm[1].flags, 0);
    ck_assert_uint_eq(dm[2].child, 0); /* an array: not an object */
    block_text(v, x, dm[1].child, dm[1].nchild, got, sizeof got);
    ck_assert_str_eq(got, "\"x\"=[{\"q\":1}] \"y\"={}");
    const es_json_member_t *y = &x->members[dm[1].child - 1 + 1];
    ck_assert_uint_ne(y->child, 0); /* indexed, with no members */
    ck_assert_uint_eq(y->nchild, 0);
    /* Every object reached through objects, nothing inside the arrays. */
    ck_assert_uint_eq(x->count, 5 + 4 + 2);
    es_decoded_clear(&d);

    /* Not asked for, and where the fast parser leaves the text to cJSON. */
    ck_assert_int_eq(es_decode_record(v, strlen(v), NULL, 0, MAX, 0, &d, reason,
                                      sizeof reason),
                     0);
    ck_assert_ptr_null(d.index);
    es_decoded_clear(&d);
    const char *u = "{\"specversion\":\"1.0\",\"id\":\"\\u00e9\","
                    "\"source\":\"s\",\"type\":\"t\"}";
    ck_assert_int_eq(es_decode_record(u, strlen(u), NULL, 0, MAX, 1, &d, reason,
                                      sizeof reason),
                     0);
    ck_assert_ptr_null(d.index);
    ck_assert_str_eq(d.id, "\xc3\xa9");
    es_decoded_clear(&d);
}
END_TEST

/* An index as large as the event allows, past what the parser keeps on its
 * stack: every member of a wide and a deep event is there. */
START_TEST(index_of_many_members)
{
    char *v = malloc(64 * 1024);
    size_t n = (size_t)sprintf(v, "{\"specversion\":\"1.0\",\"id\":\"1\","
                                  "\"source\":\"s\",\"type\":\"t\",\"data\":{");
    for (int i = 0; i < 500; i++)
        n += (size_t)sprintf(v + n, "%s\"k%d\":{\"v\":%d}", i ? "," : "", i, i);
    n += (size_t)sprintf(v + n, "}}");
    es_decoded_t d;
    char reason[256], got[256];
    ck_assert_int_eq(
        es_decode_record(v, n, NULL, 0, MAX, 1, &d, reason, sizeof reason), 0);
    const es_json_index_t *x = d.index;
    ck_assert_ptr_nonnull(x);
    ck_assert_uint_eq(x->count, 5 + 500 + 500);
    const es_json_member_t *data = &x->members[x->root - 1 + 4];
    ck_assert_uint_eq(data->nchild, 500);
    const es_json_member_t *k = &x->members[data->child - 1 + 499];
    member_text(v, k, got, sizeof got);
    ck_assert_str_eq(got, "\"k499\"={\"v\":499}");
    block_text(v, x, k->child, k->nchild, got, sizeof got);
    ck_assert_str_eq(got, "\"v\"=499");
    es_decoded_clear(&d);
    free(v);
}
END_TEST

/* ------------------------------------------ an output's copies of its input */

/* The event a filter read (decoded with its index, as the daemon does for
 * a filter that asks for it) and what the tests below make of it. */
#define COPY_IN                                                                \
    "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\","   \
    "\"data\":{\"email\":\"a@b\",\"keep\":{\"x\":[1,2],\"y\":\"z\"},"          \
    "\"n\":5}}"
#define KEEP_RUN "\"keep\":{\"x\":[1,2],\"y\":\"z\"},\"n\":5"
#define KEEP_VALUE "{\"x\":[1,2],\"y\":\"z\"}"

static char copy_buf[sizeof COPY_IN];
static char *copy_in; /* the input the copies below are of */
static es_decoded_t copy_dec;

/* Decodes `text` (size bytes with its NUL) from buf as the input. */
static void decode_input(char *buf, const char *text, size_t size, int index)
{
    char reason[256];
    memcpy(buf, text, size);
    copy_in = buf;
    ck_assert_int_eq(es_decode_record(copy_in, strlen(copy_in), NULL, 0, MAX,
                                      index, &copy_dec, reason, sizeof reason),
                     0);
    ck_assert_ptr_eq(copy_dec.json, copy_in); /* not copied: see below */
}

static void copy_input(int index)
{
    decode_input(copy_buf, COPY_IN, sizeof COPY_IN, index);
}

/* The copy of `text`, at its first place in both out and the input. */
static es_json_copy_t copy_of(const char *out, const char *text)
{
    const char *o = strstr(out, text), *i = strstr(copy_in, text);
    ck_assert_ptr_nonnull(o);
    ck_assert_ptr_nonnull(i);
    return (es_json_copy_t){(uint32_t)(o - out), (uint32_t)(i - copy_in),
                            (uint32_t)strlen(text)};
}

/* Whether decode_copies passes the input's tree (as the daemon does). */
static int copies_with_tree = 1;

static int decode_copies(const char *out, const es_json_copy_t *c, size_t n,
                         es_decoded_t *d)
{
    es_output_copies_t from = {copy_dec.json,
                               copy_dec.json_len,
                               copy_dec.index,
                               c,
                               n,
                               copies_with_tree ? copy_dec.ce : NULL};
    char reason[256];
    return es_decode_output_copies(out, strlen(out), &from, d, reason,
                                   sizeof reason);
}

/* The shallow trees of two decodes hold the same nodes. */
static void same_shallow_tree(const cJSON *a, const cJSON *b)
{
    for (a = a->child, b = b->child; a && b; a = a->next, b = b->next) {
        ck_assert_str_eq(a->string, b->string);
        ck_assert_int_eq(a->type, b->type);
        ck_assert_ptr_eq(a->child, NULL);
        ck_assert_ptr_eq(b->child, NULL);
        if (cJSON_IsString(a))
            ck_assert_str_eq(a->valuestring, b->valuestring);
        else if (!cJSON_IsRaw(a))
            ck_assert_ptr_eq(a->valuestring, NULL);
        ck_assert_int_eq(a->valueint, b->valueint);
        ck_assert(a->valuedouble == b->valuedouble);
        ck_assert_ptr_eq(a->next ? a->next->prev : NULL, a->next ? a : NULL);
    }
    ck_assert_ptr_eq(a, NULL);
    ck_assert_ptr_eq(b, NULL);
}

static void same_attribute(const char *a, const char *b)
{
    ck_assert_int_eq(a == NULL, b == NULL);
    if (a)
        ck_assert_str_eq(a, b);
}

/* With its copies, out decodes to what it decodes to without them. */
static void same_as_without(const char *out, const es_json_copy_t *c, size_t n)
{
    es_decoded_t with, without;
    char reason[256];
    int rc =
        es_decode_output(out, strlen(out), &without, reason, sizeof reason);
    ck_assert_int_eq(decode_copies(out, c, n, &with), rc);
    if (rc == 0) {
        ck_assert_str_eq(with.id, without.id);
        same_attribute(with.source, without.source);
        same_attribute(with.type, without.type);
        same_attribute(with.subject, without.subject);
        same_attribute(with.time, without.time);
        same_shallow_tree(with.ce, without.ce);
        ck_assert_ptr_eq(with.ce->prev, NULL);
        ck_assert_ptr_eq(
            with.ce->child->prev,
            cJSON_GetArrayItem(with.ce, cJSON_GetArraySize(with.ce) - 1));
        es_decode_full(&with);
        es_decode_full(&without);
        char *a = cJSON_PrintUnformatted(with.ce);
        char *b = cJSON_PrintUnformatted(without.ce);
        ck_assert_str_eq(a, b);
        free(a);
        free(b);
    }
    es_decoded_clear(&with);
    es_decoded_clear(&without);
}

/* Puts `with` (as long as `what`) where `what` is in s, in place. */
static void corrupt(char *s, const char *what, const char *with)
{
    char *at = strstr(s, what);
    ck_assert_ptr_nonnull(at);
    ck_assert_uint_eq(strlen(what), strlen(with));
    memcpy(at, with, strlen(with));
}

/* The copies are trusted on the input's parse, not read again: shown by
 * changing the input's bytes after its parse (which the host never does)
 * the same way as the output's. Such bytes pass only where a copy is
 * taken; everywhere else they are checked and fail. */
static void expect_stepped_over(const char *text, const es_json_copy_t *c,
                                size_t n, int stepped)
{
    char out[512];
    snprintf(out, sizeof out, "%s", text);
    corrupt(out, "[1,2]", "[1,,]");
    corrupt(copy_in, "[1,2]", "[1,,]");
    es_decoded_t d;
    char reason[256];
    ck_assert_int_eq(
        es_decode_output(out, strlen(out), &d, reason, sizeof reason), -1);
    int rc = decode_copies(out, c, n, &d);
    ck_assert_msg(rc == (stepped ? 0 : -1), "%s the copies in %s",
                  stepped ? "did not step over" : "stepped over", out);
    es_decoded_clear(&d);
    corrupt(copy_in, "[1,,]", "[1,2]");
}

#define ENV2 "{\"specversion\":\"1.0\",\"id\":\"2\","

START_TEST(output_copies_are_stepped_over)
{
    copy_input(1);
    /* A run of members in data, the envelope's too (its attributes are
     * built, so that one is not needed), and text the filter wrote. */
    const char *run = ENV2 "\"source\":\"s\",\"type\":\"t\",\"data\":"
                           "{" KEEP_RUN ",\"seen\":true}}";
    es_json_copy_t c[] = {copy_of(run, "\"source\":\"s\",\"type\":\"t\""),
                          copy_of(run, KEEP_RUN)};
    same_as_without(run, c, 2);
    expect_stepped_over(run, c, 2, 1);

    /* One value moved to another key at the same depth. */
    const char *moved = ENV2 "\"source\":\"s\",\"type\":\"t\",\"data\":"
                             "{\"kept\":" KEEP_VALUE ",\"arr\":[1]}}";
    es_json_copy_t v[] = {copy_of(moved, KEEP_VALUE)};
    same_as_without(moved, v, 1);
    expect_stepped_over(moved, v, 1, 1);

    /* A run of top-level members that holds data whole. */
    const char *from_source = strstr(COPY_IN, "\"source\"");
    char all[512];
    snprintf(all, sizeof all, "%s%s", ENV2, from_source);
    es_json_copy_t w = {(uint32_t)strlen(ENV2),
                        (uint32_t)(from_source - COPY_IN),
                        (uint32_t)strlen(from_source) - 1};
    same_as_without(all, &w, 1);
    expect_stepped_over(all, &w, 1, 1);
    es_decoded_clear(&copy_dec);
}
END_TEST

/* An event with attributes of every kind, some copied by the outputs
 * below, and the nodes they get from its tree instead of a parse. */
#define ATTRS_IN                                                               \
    "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\","   \
    "\"subject\":\"a \\\"quoted\\\" \\\\ one\",\"n\":-12.5,\"big\":1e300,"     \
    "\"yes\":true,\"no\":false,\"nothing\":null,\"ext\":{\"a\":[1,2]},"        \
    "\"list\":[1,{\"b\":2}],\"time\":\"2026-01-01T00:00:00Z\",\"data\":{"      \
    "\"x\":1}}"
#define ATTRS_RUN                                                              \
    "\"source\":\"s\",\"type\":\"t\",\"subject\":\"a \\\"quoted\\\" \\\\ "     \
    "one\","                                                                   \
    "\"n\":-12.5,\"big\":1e300,\"yes\":true,\"no\":false,\"nothing\":null,"    \
    "\"ext\":{\"a\":[1,2]},\"list\":[1,{\"b\":2}],\"time\":\"2026-01-01T00:"   \
    "00:00Z\""

static char attrs_buf[sizeof ATTRS_IN];

START_TEST(output_attributes_come_from_the_input_tree)
{
    decode_input(attrs_buf, ATTRS_IN, sizeof ATTRS_IN, 1);
    /* The whole envelope copied, data rewritten; a run copied after
     * attributes the filter wrote; a run that ends the object; a copy
     * that is only part of a member list's run; and no copy at all. */
    const char *whole = "{\"specversion\":\"1.0\",\"id\":\"1\"," ATTRS_RUN
                        ",\"data\":{\"x\":2}}";
    const char *after =
        "{\"specversion\":\"1.0\",\"id\":\"9\",\"added\":1," ATTRS_RUN "}";
    const char *part = "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":"
                       "\"s\",\"type\":\"t\",\"yes\":true,\"no\":false}";
    es_json_copy_t c[] = {copy_of(whole, "\"specversion\":\"1.0\",\"id\":\"1\","
                                         "\"source\""),
                          copy_of(after, ATTRS_RUN),
                          copy_of(part, "\"yes\":true,\"no\":false")};
    c[0].len =
        (uint32_t)strlen("{\"specversion\":\"1.0\",\"id\":\"1\"," ATTRS_RUN) -
        1;
    const char *outs[] = {whole, after, part};
    for (int tree = 0; tree <= 1; tree++) {
        copies_with_tree = tree;
        for (size_t i = 0; i < 3; i++)
            same_as_without(outs[i], &c[i], 1);
    }
    copies_with_tree = 1;

    /* The nodes are the tree's, not a parse of the output's bytes: a
     * change to the input's tree after its parse (which the host never
     * makes) shows in the output only where the copy is taken. */
    cJSON *type = cJSON_GetObjectItemCaseSensitive(copy_dec.ce, "type");
    type->valuestring[0] = 'X';
    es_decoded_t d;
    ck_assert_int_eq(decode_copies(after, &c[1], 1, &d), 0);
    ck_assert_str_eq(d.type, "X");
    es_decoded_clear(&d);
    ck_assert_int_eq(decode_copies(whole, &c[0], 1, &d), 0);
    ck_assert_str_eq(d.type, "X");
    es_decoded_clear(&d);
    ck_assert_int_eq(decode_copies(part, &c[2], 1, &d), 0);
    ck_assert_str_eq(d.type, "t"); /* parsed: this copy is not of "type" */
    es_decoded_clear(&d);
    copies_with_tree = 0;
    ck_assert_int_eq(decode_copies(after, &c[1], 1, &d), 0);
    ck_assert_str_eq(d.type, "t");
    es_decoded_clear(&d);
    copies_with_tree = 1;
    type->valuestring[0] = 't';
    es_decoded_clear(&copy_dec);
}
END_TEST

START_TEST(output_copies_that_do_not_hold_are_checked)
{
    copy_input(1);
    es_json_copy_t c;
    /* Deeper in the output than in the input: its depth is not known to
     * be within the limit. */
    const char *deep = ENV2 "\"source\":\"s\",\"type\":\"t\",\"data\":"
                            "{\"a\":{\"b\":{\"kept\":" KEEP_VALUE "}}}}";
    c = copy_of(deep, KEEP_VALUE);
    same_as_without(deep, &c, 1);
    expect_stepped_over(deep, &c, 1, 0);
    /* An array is a level too. */
    const char *in_array = ENV2 "\"source\":\"s\",\"type\":\"t\",\"data\":"
                                "{\"arr\":[" KEEP_VALUE "]}}";
    c = copy_of(in_array, KEEP_VALUE);
    same_as_without(in_array, &c, 1);
    expect_stepped_over(in_array, &c, 1, 0);

    const char *run = ENV2 "\"source\":\"s\",\"type\":\"t\",\"data\":"
                           "{" KEEP_RUN ",\"seen\":true}}";
    /* Not a value or a run of members of the input: from its colon, to
     * the middle of a member, past a value's end. */
    const char *bad_shapes[] = {":{\"x\":[1,2]", "\"keep\":{\"x\":[1,2]",
                                "[1,2],\"y\"", "\"x\":[1,2],\"y\"",
                                "[1,2],\"y\":\"z\"}"};
    for (size_t i = 0; i < sizeof bad_shapes / sizeof *bad_shapes; i++) {
        c = copy_of(run, bad_shapes[i]);
        same_as_without(run, &c, 1);
        expect_stepped_over(run, &c, 1, 0);
    }
    /* Not the input's bytes (the output's are wrong, the input's right). */
    char wrong[512];
    snprintf(wrong, sizeof wrong, "%s", run);
    c = copy_of(wrong, KEEP_RUN);
    corrupt(wrong, "[1,2]", "[1,,]");
    es_decoded_t d;
    ck_assert_int_eq(decode_copies(wrong, &c, 1, &d), -1);
    es_decoded_clear(&d);

    /* Overlapping, out of output order, out of either text, empty. */
    es_json_copy_t full = copy_of(run, KEEP_RUN);
    es_json_copy_t overlap[] = {copy_of(run, "\"y\":\"z\""), full};
    expect_stepped_over(run, overlap, 2, 0);
    es_json_copy_t order[] = {copy_of(run, "\"n\":5"), full};
    expect_stepped_over(run, order, 2, 0);
    uint32_t out_len = (uint32_t)strlen(run);
    uint32_t in_len = (uint32_t)strlen(copy_in);
    es_json_copy_t outside[] = {{out_len - 2, full.in_start, full.len},
                                {full.out_start, in_len - 3, full.len},
                                {UINT32_MAX - 2, full.in_start, full.len},
                                {full.out_start, full.in_start, 0}};
    expect_stepped_over(run, outside, 4, 0);

    /* Without the input's index there is nothing to check them against. */
    es_decoded_clear(&copy_dec);
    copy_input(0);
    c = copy_of(run, KEEP_RUN);
    expect_stepped_over(run, &c, 1, 0);
    es_decoded_clear(&copy_dec);

    /* Text outside the copies is checked as always. */
    copy_input(1);
    const char *tail = ENV2 "\"source\":\"s\",\"type\":\"t\",\"data\":"
                            "{" KEEP_RUN ",\"seen\":tru}}";
    c = copy_of(tail, KEEP_RUN);
    same_as_without(tail, &c, 1);
    ck_assert_int_eq(decode_copies(tail, &c, 1, &d), -1);
    es_decoded_clear(&d);
    es_decoded_clear(&copy_dec);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("decode");
    TCase *tc = tcase_create("decode");
    tcase_set_timeout(tc, 60); /* the differential tests, under ASan */
    tcase_add_test(tc, structured_valid_is_not_copied);
    tcase_add_test(tc, output_tree_is_built_on_demand);
    tcase_add_test(tc, structured_invalid_reasons);
    tcase_add_test(tc, oversized_is_refused_before_parsing);
    tcase_add_test(tc, binary_mode_json_data);
    tcase_add_test(tc, binary_mode_json_data_keeps_its_bytes);
    tcase_add_test(tc, binary_mode_binary_data_is_base64);
    tcase_add_test(tc, structured_data_base64_taken);
    tcase_add_test(tc, binary_mode_bad_json_data);
    tcase_add_test(tc, tenant_from_key);
    tcase_add_test(tc, tenant_through_a_repeated_key_is_none);
    tcase_add_test(tc, tenant_from_a_number);
    tcase_add_test(tc, tenant_path_segments_match_whole);
    tcase_add_test(tc, tenant_lookup_says_when_a_key_is_repeated);
    tcase_add_test(tc, fast_parse_matches_cjson);
    tcase_add_test(tc, fast_parse_matches_cjson_mutated);
    tcase_add_test(tc, output_is_copied_and_validated);
    tcase_add_test(tc, strict_json_text);
    tcase_add_test(tc, binary_mode_strict_json_data);
    tcase_add_test(tc, nul_escape_is_refused);
    tcase_add_test(tc, byte_order_mark);
    tcase_add_test(tc, index_of_members);
    tcase_add_test(tc, index_of_many_members);
    tcase_add_test(tc, output_copies_are_stepped_over);
    tcase_add_test(tc, output_copies_that_do_not_hold_are_checked);
    tcase_add_test(tc, output_attributes_come_from_the_input_tree);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
