/*
 * Standard base64 (RFC 4648 section 4) for the in-tree modules that carry
 * bytes in JSON: CloudEvents' data_base64 (the host's decoder, the kafka
 * sink's binary mode), Avro bytes and fixed, the admin API's value_base64.
 * Not part of the plugin SDK. Link libcrypto: it does the coding.
 *
 *     char *text = es_base64_encode(bytes, n);         free(text)
 *     char why[96];
 *     unsigned char *b = es_base64_decode(s, len, &n, why, sizeof why);
 *
 * What a decoder takes is this file's, not libcrypto's: EVP_DecodeBlock
 * reads '=' anywhere as 'A' and needs the padding; EVP_DecodeUpdate stops
 * without a word at a '-'. Here ASCII whitespace is skipped (base64(1)
 * wraps its lines), the padding may be left out, and anything else is
 * refused with what is wrong: a byte outside the alphabet, anything after
 * the padding, a padding that does not end a group of four, a lone last
 * character (6 bits are not a byte).
 */
#ifndef ES_BASE64_H
#define ES_BASE64_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* NUL-terminated, malloc()ed; NULL when out of memory. */
static inline char *es_base64_encode(const void *in, size_t n)
{
    if (n > (size_t)INT_MAX / 4 * 3)
        return NULL;
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    return out;
}

static inline int es_base64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* The alphabet's characters of `in` into `out`, when not NULL (whitespace
 * skipped, the padding counted and checked): how many, or -1 with `why`
 * filled. */
static inline long es_base64_scan(const char *in, size_t len, char *out,
                                  char *why, size_t why_size)
{
    size_t n = 0, pad = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad || !es_base64_char(c)) {
            if (pad)
                snprintf(why, why_size, "character %zu follows the '=' padding",
                         i);
            else
                snprintf(why, why_size,
                         "character %zu is not base64 (byte 0x%02x)", i, c);
            return -1;
        }
        if (out)
            out[n] = (char)c;
        n++;
    }
    if (n % 4 == 1) {
        snprintf(why, why_size,
                 "its last group of four has one character "
                 "(6 bits, not a byte)");
        return -1;
    }
    if (pad && (pad > 2 || (n + pad) % 4)) {
        snprintf(why, why_size, "the '=' padding does not end a group of four");
        return -1;
    }
    return (long)n;
}

/* 0 when `len` bytes of `in` are base64 (what es_base64_decode takes),
 * else -1 with `why` filled. */
static inline int es_base64_check(const char *in, size_t len, char *why,
                                  size_t why_size)
{
    return es_base64_scan(in, len, NULL, why, why_size) < 0 ? -1 : 0;
}

/*
 * Decodes `len` bytes of `in` into a malloc()ed buffer (one byte longer
 * than *out_len, NUL there) and its length in *out_len; NULL with `why`
 * filled when `in` is not base64 (or out of memory).
 */
static inline unsigned char *es_base64_decode(const char *in, size_t len,
                                              size_t *out_len, char *why,
                                              size_t why_size)
{
    if (len > (size_t)INT_MAX - 4) { /* libcrypto counts in int */
        snprintf(why, why_size, "longer than %d characters", INT_MAX - 4);
        return NULL;
    }
    snprintf(why, why_size, "out of memory");
    char *text = malloc(len + 4);
    unsigned char *out = malloc(len / 4 * 3 + 4);
    long n = text && out ? es_base64_scan(in, len, text, why, why_size) : -1;
    if (n < 0) {
        free(text);
        free(out);
        return NULL;
    }
    size_t whole = (size_t)n;
    while (whole % 4)
        text[whole++] = '='; /* EVP_DecodeBlock wants whole groups */
    EVP_DecodeBlock(out, (const unsigned char *)text, (int)whole);
    OPENSSL_cleanse(text, whole); /* it may be a secret (webhook keys) */
    free(text);
    *out_len = (size_t)n * 3 / 4; /* the padding's zero bytes are not data */
    out[*out_len] = '\0';
    return out;
}

#endif
