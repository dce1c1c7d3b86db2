/*
 * Usage tracking: events and bytes consumed per (tenant, topic) and
 * delivered per (tenant, topic, destination), as totals and in minute, hour
 * and day buckets (UTC) of when this daemon consumed or delivered them.
 *
 * Counting is in memory (a mutex and a hash lookup per event); es_usage_save
 * (called by the pipeline's housekeeping every 2 s, and by every query)
 * adds the pending counts to an SQLite database, state_dir/usage.sqlite, in
 * one transaction, and drops buckets older than their retention. A
 * usage.json left by an older version is imported once as the totals.
 *
 * Threading: every function may be called from any thread.
 */
#ifndef ES_USAGE_H
#define ES_USAGE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

typedef struct es_usage_s es_usage_t;

typedef struct es_usage_retention_s {
    int minute_hours; /* minute buckets are kept this many hours */
    int hour_days;
    int day_days;
} es_usage_retention_t;

/* Opens (creates) state_dir/usage.sqlite. A file that is not a usage
 * database is moved aside as usage.sqlite.corrupt (logged) and counting
 * starts again. Returns NULL with errstr when the database cannot be made. */
es_usage_t *es_usage_open(const char *state_dir,
                          const es_usage_retention_t *retention, char *errstr,
                          size_t errstr_size);
void es_usage_destroy(es_usage_t *u); /* saves first; accepts NULL */

/* destination NULL: consumed; tenant NULL: no tenant found. Counted in the
 * buckets of now (es_usage_add) or of `when` (seconds since the epoch). */
void es_usage_add(es_usage_t *u, const char *tenant, const char *topic,
                  const char *destination, size_t bytes);
void es_usage_add_at(es_usage_t *u, int64_t when, const char *tenant,
                     const char *topic, const char *destination, size_t bytes);

/* Writes the pending counts and prunes expired buckets. Returns 0, or -1
 * with errstr (the counts stay pending and are written next time). */
int es_usage_save(es_usage_t *u, char *errstr, size_t errstr_size);

/* Totals: {"since": ..., "consumed": [...], "delivered": [...]}, filtered by
 * tenant, topic and destination when non-NULL (a destination filter leaves
 * "consumed" empty). Rows are sorted by tenant, topic, destination. */
cJSON *es_usage_json(es_usage_t *u, const char *tenant, const char *topic,
                     const char *destination);

typedef struct es_usage_query_s {
    int64_t from, to; /* seconds since the epoch, [from, to) */
    int granularity;  /* 60, 3600 or 86400 */
    const char *tenant, *topic, *destination; /* NULL: any */
} es_usage_query_t;

/* Buckets of a window: {"granularity", "from", "to", "retained_from",
 * "buckets": [{"start", "consumed", "delivered"}], "consumed", "delivered"}
 * (the last two: the window's sums). from/to are widened to whole buckets;
 * buckets without traffic are left out. NULL with errstr on a database
 * error. */
cJSON *es_usage_window_json(es_usage_t *u, const es_usage_query_t *q,
                            char *errstr, size_t errstr_size);

/* "minute" | "hour" | "day" -> seconds; -1 for anything else. */
int es_usage_granularity(const char *name);

/* RFC 3339 ("2026-11-23T10:00:00Z", fractions and +hh:mm offsets allowed)
 * or integer seconds since the epoch. Returns 0 or -1. */
int es_usage_parse_time(const char *s, int64_t *out);

#endif
