/*
 * Per-partition offset tracker. Records are tracked in the order they are
 * consumed (increasing offsets, gaps allowed) and marked done in any order;
 * the commit point is the offset of the first record not yet done, so a
 * commit never passes an undelivered event.
 */
#ifndef ES_OFFSETS_H
#define ES_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

typedef struct es_offsets_s es_offsets_t;

es_offsets_t *es_offsets_new(void);
void es_offsets_destroy(es_offsets_t *t);

/* Starts tracking `offset`; must exceed every offset tracked before.
 * Returns 0, or -1 for an offset that goes backwards (ignored). */
int es_offsets_track(es_offsets_t *t, int64_t offset);
/* Marks a tracked offset done; -1 if it is not tracked. */
int es_offsets_done(es_offsets_t *t, int64_t offset);

/* The offset to commit (next to consume): the first undone tracked offset,
 * or one past the last done one; -1 when nothing was ever done. */
int64_t es_offsets_commit_point(es_offsets_t *t);
/* Records tracked and not yet done. */
size_t es_offsets_pending(const es_offsets_t *t);

#endif
