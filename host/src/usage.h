/* Usage tracking: events and bytes consumed per (tenant, topic) and
 * delivered per (tenant, topic, destination). Thread-safe; persisted as
 * JSON in the state dir (usage.json) so the numbers survive restarts. */
#ifndef ES_USAGE_H
#define ES_USAGE_H

#include <stddef.h>

#include <cjson/cJSON.h>

typedef struct es_usage_s es_usage_t;

/* Loads PATH when it exists (a corrupt file is logged and set aside as
 * PATH.corrupt, counting starts again). */
es_usage_t *es_usage_new(const char *path);
void es_usage_destroy(es_usage_t *u); /* saves first */

/* destination NULL: consumed; tenant NULL: no tenant found. */
void es_usage_add(es_usage_t *u, const char *tenant, const char *topic,
                  const char *destination, size_t bytes);

/* Writes the file (atomically) when something changed since the last save.
 * Returns 0, or -1 with errstr. */
int es_usage_save(es_usage_t *u, char *errstr, size_t errstr_size);

/* {"since": ..., "consumed": [...], "delivered": [...]}, optionally only
 * one tenant and/or topic (NULL: all). */
cJSON *es_usage_json(es_usage_t *u, const char *tenant, const char *topic);

#endif
