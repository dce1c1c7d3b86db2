/* Milliseconds on the monotonic clock: deadlines, backoffs and intervals
 * in the host, which a change of the wall clock must not move. */
#ifndef ES_CLOCK_H
#define ES_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t es_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A backoff before attempt `attempt` (from 1): `initial`, doubled for each
 * attempt after the first, never above `max`. */
static inline int64_t es_backoff_doubled(int64_t initial, int64_t max,
                                         uint32_t attempt)
{
    int64_t b = initial;
    for (uint32_t i = 1; i < attempt && b < max; i++)
        b *= 2;
    return b > max ? max : b;
}

#endif
