/* Shared by the fuzz targets (tests/fuzz/): libFuzzer's entry point, and a
 * check that stops the run with a message, so that a wrong result is
 * reported like a crash and its input saved. */
#ifndef ES_FUZZ_H
#define ES_FUZZ_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "decode.h"
#include "eventstream/plugin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: ", __FILE__, __LINE__);      \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* A record's value as the daemon hands it to plugins: decoded by the
 * host (with its index of members when `index`), the tree made whole,
 * the text in a block of exactly its size (a read past it is an ASan
 * report). */
typedef struct fuzz_event_s {
    es_event_t ev; /* its attributes and text; the rest is the caller's */
    es_decoded_t dec;
    char *value;
} fuzz_event_t;

/* 0, or -1 when the host refuses the value (it is dead-lettered, never
 * delivered): nothing to free then. */
static inline int fuzz_event_decode(fuzz_event_t *e, const void *data,
                                    size_t len, int index)
{
    char why[256];
    memset(e, 0, sizeof *e);
    e->value = malloc(len ? len : 1);
    memcpy(e->value, data, len);
    if (es_decode_record(e->value, len, NULL, 0, SIZE_MAX, index, &e->dec, why,
                         sizeof why) != 0) {
        free(e->value);
        return -1;
    }
    es_decode_full(&e->dec);
    e->ev.json = e->dec.json;
    e->ev.json_len = e->dec.json_len;
    e->ev.ce = e->dec.ce;
    e->ev.id = e->dec.id;
    e->ev.source = e->dec.source;
    e->ev.type = e->dec.type;
    e->ev.subject = e->dec.subject;
    e->ev.time = e->dec.time;
    e->ev.index = e->dec.index;
    e->ev.timestamp_ms = -1;
    e->ev.attempt = 1;
    return 0;
}

static inline void fuzz_event_free(fuzz_event_t *e)
{
    es_decoded_clear(&e->dec);
    free(e->value);
}

/* A key given twice in some object under `node`, found the slow way (not
 * the code's own es_json_repeated_key). */
static inline int fuzz_has_repeated_key(const cJSON *node)
{
    const cJSON *a, *b;
    for (a = node ? node->child : NULL; a; a = a->next) {
        if (cJSON_IsObject(node))
            for (b = a->next; b; b = b->next)
                if (!strcmp(a->string, b->string))
                    return 1;
        if (fuzz_has_repeated_key(a))
            return 1;
    }
    return 0;
}

/* The fake hosts' log (on stderr with FUZZ_VERBOSE set, else nowhere) and
 * counters (not kept). */
static inline void fuzz_host_log(const es_host_t *host, es_log_level_t level,
                                 const char *fmt, ...)
{
    (void)host;
    if (!getenv("FUZZ_VERBOSE"))
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "log[%d] ", (int)level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static inline void fuzz_counter_add(const es_host_t *host, const char *name,
                                    uint64_t delta)
{
    (void)host, (void)name, (void)delta;
}

/* Two values are the same: type, scalar and members in order
 * (cJSON_Compare looks members up by key, which a repeated key defeats);
 * numbers compare as doubles (-0 is 0: the Lua filter reads it as the
 * integer 0) and as cJSON's valueint. Their own keys and siblings are not
 * looked at. */
static inline int fuzz_same_list(const cJSON *a, const cJSON *b);
static inline int fuzz_same_value(const cJSON *a, const cJSON *b)
{
    if ((a->type & 0xFF) != (b->type & 0xFF))
        return 0;
    if (cJSON_IsString(a) && strcmp(a->valuestring, b->valuestring) != 0)
        return 0;
    if (cJSON_IsNumber(a) &&
        (a->valuedouble != b->valuedouble || a->valueint != b->valueint))
        return 0;
    return fuzz_same_list(a->child, b->child);
}

/* The members (keys included) or elements from a and b on. */
static inline int fuzz_same_list(const cJSON *a, const cJSON *b)
{
    for (; a && b; a = a->next, b = b->next) {
        if ((a->string || b->string) &&
            (!a->string || !b->string || strcmp(a->string, b->string) != 0))
            return 0;
        if (!fuzz_same_value(a, b))
            return 0;
    }
    return !a && !b;
}

/* The members a PII path names deleted from the tree (every one of a
 * repeated key), as topics.c's pii_walk does: the reference for
 * es_json_without (fuzz_decode, test_json_edit). */
static inline void fuzz_delete_path(cJSON *obj, const char *path)
{
    size_t len = strcspn(path, ".");
    if (!cJSON_IsObject(obj))
        return;
    for (cJSON *it = obj->child, *next; it; it = next) {
        next = it->next;
        if (strlen(it->string) != len || strncmp(it->string, path, len))
            continue;
        if (path[len])
            fuzz_delete_path(it, path + len + 1);
        else
            cJSON_Delete(cJSON_DetachItemViaPointer(obj, it));
    }
}

#endif
