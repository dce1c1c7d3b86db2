#include <stdlib.h>
#include <string.h>

#include "offsets.h"

typedef struct slot_s {
    int64_t offset;
    int done;
} slot_t;

/* A ring of slots in offset order; done slots at the head are retired as
 * the commit point advances, so the ring holds only the in-flight window. */
struct es_offsets_s {
    slot_t *ring;
    size_t cap, head, count;
    size_t pending;
    int64_t last_tracked;
    int64_t retired_next; /* one past the last retired offset, or -1 */
};

es_offsets_t *es_offsets_new(void)
{
    es_offsets_t *t = calloc(1, sizeof *t);
    t->cap = 256;
    t->ring = malloc(t->cap * sizeof *t->ring);
    t->last_tracked = -1;
    t->retired_next = -1;
    return t;
}

void es_offsets_destroy(es_offsets_t *t)
{
    if (!t)
        return;
    free(t->ring);
    free(t);
}

static slot_t *slot_at(es_offsets_t *t, size_t i)
{
    return &t->ring[(t->head + i) % t->cap];
}

static void grow(es_offsets_t *t)
{
    slot_t *ring = malloc(2 * t->cap * sizeof *ring);
    for (size_t i = 0; i < t->count; i++)
        ring[i] = *slot_at(t, i);
    free(t->ring);
    t->ring = ring;
    t->head = 0;
    t->cap *= 2;
}

int es_offsets_track(es_offsets_t *t, int64_t offset)
{
    if (offset <= t->last_tracked)
        return -1;
    if (t->count == t->cap)
        grow(t);
    *slot_at(t, t->count++) = (slot_t){offset, 0};
    t->last_tracked = offset;
    t->pending++;
    return 0;
}

static void retire_done_head(es_offsets_t *t)
{
    while (t->count && t->ring[t->head].done) {
        t->retired_next = t->ring[t->head].offset + 1;
        t->head = (t->head + 1) % t->cap;
        t->count--;
    }
}

int es_offsets_done(es_offsets_t *t, int64_t offset)
{
    size_t lo = 0, hi = t->count;
    while (lo < hi) { /* slots are sorted by offset */
        size_t mid = lo + (hi - lo) / 2;
        if (slot_at(t, mid)->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == t->count || slot_at(t, lo)->offset != offset ||
        slot_at(t, lo)->done)
        return -1;
    slot_at(t, lo)->done = 1;
    t->pending--;
    retire_done_head(t);
    return 0;
}

int64_t es_offsets_commit_point(es_offsets_t *t)
{
    if (t->count)
        return t->retired_next < 0 ? -1 : t->ring[t->head].offset;
    return t->retired_next;
}

size_t es_offsets_pending(const es_offsets_t *t)
{
    return t->pending;
}
