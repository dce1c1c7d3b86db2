/* Base64 (host/include/internal/es_base64.h): RFC 4648's test vectors,
 * round trips of every length and byte, what the decoder takes beyond
 * libcrypto (whitespace, no padding) and what it refuses, with its reason,
 * where libcrypto alone would not ('=' inside, a '-'). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "internal/es_base64.h"

static const char *const vectors[][2] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

/* Decodes `text`, which must be base64 of `want` (`want_len` bytes). */
static void assert_decodes(const char *text, const void *want, size_t want_len)
{
    char why[96] = "";
    size_t n = 12345;
    unsigned char *got =
        es_base64_decode(text, strlen(text), &n, why, sizeof why);
    ck_assert_msg(got != NULL, "\"%s\" refused: %s", text, why);
    ck_assert_uint_eq(n, want_len);
    ck_assert_mem_eq(got, want, want_len);
    ck_assert_int_eq(got[n], '\0');
    ck_assert_int_eq(es_base64_check(text, strlen(text), why, sizeof why), 0);
    free(got);
}

/* `text` is refused by both the decoder and the check, with `reason`. */
static void assert_refused(const char *text, const char *reason)
{
    char why[96] = "", why_check[96] = "";
    size_t n = 0;
    unsigned char *got =
        es_base64_decode(text, strlen(text), &n, why, sizeof why);
    ck_assert_msg(got == NULL, "\"%s\" was taken (%zu bytes)", text, n);
    ck_assert_str_eq(why, reason);
    ck_assert_int_eq(
        es_base64_check(text, strlen(text), why_check, sizeof why_check), -1);
    ck_assert_str_eq(why_check, reason);
}

START_TEST(rfc4648_vectors)
{
    for (size_t i = 0; i < sizeof vectors / sizeof *vectors; i++) {
        char *text = es_base64_encode(vectors[i][0], strlen(vectors[i][0]));
        ck_assert_str_eq(text, vectors[i][1]);
        free(text);
        assert_decodes(vectors[i][1], vectors[i][0], strlen(vectors[i][0]));
    }
}
END_TEST

START_TEST(round_trip_every_length_and_byte)
{
    unsigned char bytes[300];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (unsigned char)(255 - i * 7);
    for (size_t len = 0; len <= sizeof bytes; len++) {
        char *text = es_base64_encode(bytes, len);
        ck_assert_uint_eq(strlen(text), (len + 2) / 3 * 4);
        assert_decodes(text, bytes, len);
        /* and without its padding */
        size_t t = strlen(text);
        while (t && text[t - 1] == '=')
            text[--t] = '\0';
        assert_decodes(text, bytes, len);
        free(text);
    }
}
END_TEST

START_TEST(whitespace_and_missing_padding_are_taken)
{
    assert_decodes("Zm9v\nYmFy\r\n", "foobar", 6);
    assert_decodes(" Zm9v\tYg", "foob", 4);
    assert_decodes("Zm8 =", "fo", 2);
    assert_decodes("AAEC/w==", "\x00\x01\x02\xff", 4);
    assert_decodes("+/+/", "\xfb\xff\xbf", 3);
}
END_TEST

START_TEST(what_is_not_base64_is_refused_with_its_reason)
{
    assert_refused("Zm9v!", "character 4 is not base64 (byte 0x21)");
    /* EVP_DecodeUpdate ends the input at a '-' and says nothing */
    assert_refused("Zm9-YmFy", "character 3 is not base64 (byte 0x2d)");
    assert_refused("Zm9v_w", "character 4 is not base64 (byte 0x5f)");
    /* EVP_DecodeBlock reads a '=' inside as 'A' */
    assert_refused("Q=JD", "character 2 follows the '=' padding");
    assert_refused("Zg==Zg==", "character 4 follows the '=' padding");
    assert_refused("Z", "its last group of four has one character (6 bits, "
                        "not a byte)");
    assert_refused("Zm9vY", "its last group of four has one character (6 "
                            "bits, not a byte)");
    assert_refused("Zg=", "the '=' padding does not end a group of four");
    assert_refused("Zm9v====", "the '=' padding does not end a group of four");
    assert_refused("=", "the '=' padding does not end a group of four");
    char nul[] = "Zm\0v";
    char why[96];
    size_t n;
    ck_assert_ptr_null(es_base64_decode(nul, 4, &n, why, sizeof why));
    ck_assert_str_eq(why, "character 2 is not base64 (byte 0x00)");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("base64");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, rfc4648_vectors);
    tcase_add_test(tc, round_trip_every_length_and_byte);
    tcase_add_test(tc, whitespace_and_missing_padding_are_taken);
    tcase_add_test(tc, what_is_not_base64_is_refused_with_its_reason);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
