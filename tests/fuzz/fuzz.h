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

#endif
