/* Ethereum ABI encoding of the few calls the handler makes, and the
 * deterministic ids (token id, CloudEvent id). */
#include "bc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static const char *skip0x(const char *s)
{
    if (s && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        return s + 2;
    return s;
}

int bc_address_parse(const char *s, char out[BC_ADDR_SIZE])
{
    if (!s || strlen(s) != 42 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return -1;
    out[0] = '0';
    out[1] = 'x';
    for (int i = 2; i < 42; i++) {
        if (hexval((unsigned char)s[i]) < 0)
            return -1;
        out[i] = (char)tolower((unsigned char)s[i]);
    }
    out[42] = '\0';
    return 0;
}

void bc_word_u64(uint64_t v, char out[65])
{
    snprintf(out, 65, "%048x%016llx", 0u, (unsigned long long)v);
}

void bc_word_address(const char *addr, char out[65])
{
    snprintf(out, 65, "%024x%s", 0u, skip0x(addr));
}

char *bc_abi_call(const char *selector, const char *const *words, size_t n)
{
    size_t len = 2 + 8 + n * 64 + 1;
    char *s = malloc(len);
    if (!s)
        return NULL;
    char *p = s;
    p += snprintf(p, len, "0x%.8s", selector);
    for (size_t i = 0; i < n; i++) {
        memcpy(p, words[i], 64);
        p += 64;
    }
    *p = '\0';
    return s;
}

/* Reads the 32-byte word at hex-digit offset `at`; 0 on success. */
static int word_at(const char *hex, size_t at, const char **w)
{
    if (strlen(hex) < at + 64)
        return -1;
    for (size_t i = 0; i < 64; i++)
        if (hexval((unsigned char)hex[at + i]) < 0)
            return -1;
    *w = hex + at;
    return 0;
}

/* A word as u64; -1 when it does not fit. */
static int word_u64(const char *w, uint64_t *v)
{
    for (int i = 0; i < 48; i++)
        if (w[i] != '0')
            return -1;
    *v = 0;
    for (int i = 48; i < 64; i++)
        *v = (*v << 4) | (uint64_t)hexval((unsigned char)w[i]);
    return 0;
}

int bc_abi_decode_address(const char *hex, char out[BC_ADDR_SIZE])
{
    const char *w;
    hex = skip0x(hex);
    if (!hex || strlen(hex) != 64 || word_at(hex, 0, &w) != 0)
        return -1;
    for (int i = 0; i < 24; i++)
        if (w[i] != '0')
            return -1;
    out[0] = '0';
    out[1] = 'x';
    for (int i = 0; i < 40; i++)
        out[2 + i] = (char)tolower((unsigned char)w[24 + i]);
    out[42] = '\0';
    return 0;
}

/* Error(string): selector, offset word, length word, bytes. */
static int decode_error_string(const char *h, char *out, size_t out_size)
{
    const char *w;
    uint64_t off, len;
    if (word_at(h, 8, &w) || word_u64(w, &off) || off > 1u << 20)
        return -1;
    size_t at = 8 + (size_t)off * 2;
    if (word_at(h, at, &w) || word_u64(w, &len) || len > 1u << 20)
        return -1;
    at += 64;
    if (strlen(h) < at + len * 2)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < out_size; i++) {
        int hi = hexval((unsigned char)h[at + 2 * i]);
        int lo = hexval((unsigned char)h[at + 2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        int c = hi << 4 | lo;
        /* A reason goes into logs and Kafka headers: keep it printable. */
        out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[o] = '\0';
    if (len == 0) /* require(cond, "") */
        snprintf(out, out_size, "reverted with an empty reason");
    return 0;
}

void bc_abi_decode_revert(const char *hex, char *out, size_t out_size)
{
    const char *h = skip0x(hex);
    const char *w;
    uint64_t code;
    if (!h || !*h) {
        snprintf(out, out_size, "reverted without a reason");
        return;
    }
    if (strncmp(h, BC_SEL_ERROR, 8) == 0 &&
        decode_error_string(h, out, out_size) == 0)
        return;
    if (strncmp(h, BC_SEL_PANIC, 8) == 0 && word_at(h, 8, &w) == 0 &&
        word_u64(w, &code) == 0) {
        snprintf(out, out_size, "panic 0x%02llx", (unsigned long long)code);
        return;
    }
    /* The selector of a custom error; the node's bytes go into the
     * reason only when they are hex digits. */
    size_t sel = 0;
    while (sel < 8 && hexval((unsigned char)h[sel]) >= 0)
        sel++;
    if (h[sel] && sel < 8)
        snprintf(out, out_size, "reverted (the revert data is not hex)");
    else
        snprintf(out, out_size, "custom error 0x%.8s", h);
}

int bc_quantity_parse(const char *hex, uint64_t *out)
{
    const char *h = skip0x(hex);
    if (!hex || h == hex || !*h || strlen(h) > 16)
        return -1;
    uint64_t v = 0;
    for (; *h; h++) {
        int d = hexval((unsigned char)*h);
        if (d < 0)
            return -1;
        v = (v << 4) | (uint64_t)d;
    }
    *out = v;
    return 0;
}

void bc_quantity_format(uint64_t v, char out[19])
{
    snprintf(out, 19, "0x%llx", (unsigned long long)v);
}

uint64_t bc_token_id(const char *ticket_id)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)ticket_id, strlen(ticket_id), md);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | md[i];
    return v >> (64 - BC_TOKEN_ID_BITS);
}

int bc_event_id(const char *input_id, const char *type,
                char out[BC_EVENT_ID_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
        EVP_DigestUpdate(c, input_id, strlen(input_id)) &&
        EVP_DigestUpdate(c, "\n", 1) &&
        EVP_DigestUpdate(c, type, strlen(type)) &&
        EVP_DigestFinal_ex(c, md, &mdlen) && mdlen >= 16)
        ok = 1;
    EVP_MD_CTX_free(c);
    if (!ok)
        return -1;
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x80); /* version 8 */
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80); /* RFC variant */
    char *p = out + snprintf(out, BC_EVENT_ID_SIZE, "evt-");
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        p += sprintf(p, "%02x", md[i]);
    }
    return 0;
}

double bc_cost_usd(uint64_t gas_used, uint64_t gas_price_wei,
                   double usd_per_native)
{
    double native = (double)gas_used * (double)gas_price_wei / 1e18;
    return native * usd_per_native;
}

void bc_time_format(int64_t epoch_ms, char out[32])
{
    time_t s = (time_t)(epoch_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(epoch_ms % 1000));
}
