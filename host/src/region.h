/*
 * Regions (seed 002: "Event Stream periodically checks if the tenant is in
 * the correct primary region when processing and forwarding events").
 *
 * The daemon knows its own region (config `region.name`) and a tenant ->
 * primary-region map, a JSON object {"tenant": "region", ...} read from a
 * file or fetched from an http(s) URL (`region.tenant_regions`). The map is
 * loaded when the daemon starts (a bad map is a config error) and refreshed
 * every `region.refresh_ms` by a thread of its own, never on the pipeline
 * thread. A failed refresh keeps the last good map, is counted
 * (es_region_refresh_failed_total) and logged once per streak of failures.
 *
 * Threading: es_region_skip may be called from any thread at any time
 * between es_region_new and es_region_destroy.
 */
#ifndef ES_REGION_H
#define ES_REGION_H

#include <stddef.h>

#include "config.h"

typedef struct es_region_s es_region_t;

/* Loads the map of conf->region_* now. Sets *out to NULL when the config
 * has no "region" (every event is forwarded). Returns 0, or -1 with errstr
 * "CONFIG: region.tenant_regions: SOURCE: what was wrong". */
int es_region_new(const es_config_t *conf, es_region_t **out, char *errstr,
                  size_t errstr_size);

/* Starts the refresh thread. Returns 0 or -1 with errstr. */
int es_region_start(es_region_t *r, char *errstr, size_t errstr_size);

/* Stops the thread (if started) and frees everything. Accepts NULL. */
void es_region_destroy(es_region_t *r);

/*
 * 1 when events of `tenant` must not be forwarded by this daemon: the
 * tenant's primary region is another one, or the tenant (or NULL: no
 * tenant found) is not in the map and `unknown_tenant` is "skip". *region
 * is then the tenant's primary region, or "unknown"; the string stays valid
 * until es_region_destroy. 0 otherwise, and always for a NULL r.
 */
int es_region_skip(es_region_t *r, const char *tenant, const char **region);

/* Reloads the map once, on the calling thread. Returns 0, or -1 with
 * errstr (the previous map stays in force). The refresh thread calls it. */
int es_region_refresh(es_region_t *r, char *errstr, size_t errstr_size);

/* This daemon's region, and the number of tenants in the current map. */
const char *es_region_name(const es_region_t *r);
size_t es_region_tenants(es_region_t *r);

#endif
