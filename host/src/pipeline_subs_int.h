/*
 * Subscriptions on the pipeline, shared by pipeline_subs.c (bundles:
 * instances, routes, consumer groups, start offsets) and
 * pipeline_subs_set.c (the set: apply, persist, restore, and the calls
 * other threads make). Nothing here is for use elsewhere.
 */
#ifndef ES_PIPELINE_SUBS_INT_H
#define ES_PIPELINE_SUBS_INT_H

#include "pipeline_int.h"
#include "pipeline_subs.h"
#include "subscriptions.h"

#define CALL_TIMEOUT_MS 30000
#define KAFKA_TIMEOUT_MS 5000

typedef struct start_s {
    char *topic;
    int32_t partition;
    int64_t offset;
} start_t;

struct sub_route_s {
    const char *tenant;
    start_t *starts;
    size_t nstarts;
};

typedef struct part_s {
    route_t route;
    es_route_conf_t conf;
    sub_route_t ext;
    consumer_t *c;
    char *group;
} part_t;

typedef struct bundle_s {
    es_sub_t *def; /* what it was built from (owned) */
    es_instance_conf_t dconf, fconf;
    instance_t *dest, *filter;
    char *script; /* an inline filter's file, removed with the filter */
    part_t parts[2];
    size_t nparts;
    struct bundle_s *next;
} bundle_t;

typedef struct entry_s {
    es_sub_t *def;
    bundle_t *b; /* NULL: disabled, or failed at start (error) */
    char *error;
} entry_t;

struct pl_subs_s {
    char *path;
    entry_t *v;
    size_t n;
    bundle_t *retiring;
    consumer_t **retired;
    size_t nretired;
};

/* pipeline_subs.c */
void pl_subs_dir(const es_pipeline_t *p, char *out, size_t size);
/* Builds the instances on the calling thread; routes come later, on the
 * pipeline thread. NULL with errstr "key: problem". */
bundle_t *pl_bundle_new(es_pipeline_t *p, const es_sub_t *def, char *errstr,
                        size_t errstr_size);
void pl_bundle_free(bundle_t *b);
int pl_bundle_plan(es_pipeline_t *p, bundle_t *b, const bundle_t *old,
                   int use_stored, consumer_t **created, size_t *ncreated,
                   char *errstr, size_t errstr_size);
void pl_bundle_attach(es_pipeline_t *p, bundle_t *b);
void pl_bundle_detach(es_pipeline_t *p, bundle_t *b);
void pl_settle_consumers(es_pipeline_t *p, bundle_t *a, bundle_t *b);
void pl_consumer_retire(es_pipeline_t *p, consumer_t *c);

#endif
