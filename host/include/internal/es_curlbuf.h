/*
 * A bounded response buffer for libcurl's CURLOPT_WRITEFUNCTION, shared by
 * the in-tree modules that talk HTTP (schema registry, AWS credentials, the
 * blockchain JSON-RPC client, the S3 sink). Not part of the plugin SDK.
 *
 *     es_curlbuf_t b = {.max = 8u << 20};
 *     curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, es_curlbuf_write);
 *     curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
 *     ... b.data is NUL-terminated (or NULL when empty); free(b.data)
 *
 * An answer longer than `max` aborts the transfer (CURLE_WRITE_ERROR) and
 * sets `overflow`, so a misbehaving peer cannot make us allocate without
 * bound.
 */
#ifndef ES_CURLBUF_H
#define ES_CURLBUF_H

#include <stdlib.h>
#include <string.h>

typedef struct es_curlbuf_s {
    char *data;
    size_t len;
    size_t max;
    int overflow;
} es_curlbuf_t;

static inline size_t es_curlbuf_write(char *ptr, size_t size, size_t nmemb,
                                      void *userdata)
{
    es_curlbuf_t *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > b->max) {
        b->overflow = 1;
        return 0;
    }
    char *p = realloc(b->data, b->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + b->len, ptr, n);
    b->data = p;
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

#endif
