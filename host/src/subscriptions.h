/*
 * Subscriptions (endpoint configuration, docs/api.md): a tenant's
 * destination for some topics, created through the admin API. This module
 * parses and validates one subscription, masks its secrets for output and
 * keeps the set on disk (one JSON file, replaced atomically). Applying a
 * subscription to the running pipeline is host/src/pipeline_subs.c.
 * Nothing here is thread-aware: the pipeline thread owns the set.
 */
#ifndef ES_SUBSCRIPTIONS_H
#define ES_SUBSCRIPTIONS_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "internal/es_url_mask.h"

#define ES_SUB_MASK ES_URL_MASK /* what GET shows in place of a secret */
#define ES_SUB_ID_MAX 64

typedef struct es_sub_s {
    char *id;
    char *tenant;
    es_strv_t topics;
    char *type;         /* destination plugin: https | kafka | s3 */
    cJSON *dest_config; /* the plugin's own config object, owned */
    char *filter_type;  /* filter plugin (lua) or NULL */
    cJSON *filter_config;
    int enabled;
    char *description;
    char *created_at, *updated_at; /* RFC 3339, UTC */
    /* {"topic": {"partition": first offset}}: where the subscription
     * started on each partition (recorded when it was activated); owned. */
    cJSON *start_offsets;
    /* The subscription's own park policy (docs/parking.md), validated;
     * NULL: the daemon's subscriptions.park applies. Owned. */
    cJSON *park;
} es_sub_t;

/*
 * Validates a subscription object. With from_store the server-kept fields
 * (id, created_at, updated_at, start_offsets) are taken as they are;
 * otherwise id is optional and the others are ignored (so a GET body can
 * be PUT back). Returns NULL with errstr "key: problem".
 */
es_sub_t *es_sub_parse(const cJSON *json, int from_store, char *errstr,
                       size_t errstr_size);
void es_sub_destroy(es_sub_t *s);
es_sub_t *es_sub_dup(const es_sub_t *s);

/* The subscription as JSON; secrets replaced by ES_SUB_MASK unless
 * reveal_secrets (only for the state file). */
cJSON *es_sub_json(const es_sub_t *s, int reveal_secrets);

/* Whether a config key names a secret (docs/api.md lists the rule). */
int es_sub_secret_key(const char *key);
/* Replaces, in place, every string or number under a secret key of node
 * (any depth) with ES_SUB_MASK: for showing configs. */
void es_sub_mask(cJSON *node);

/* Masks the credentials of every string of node (any depth) that is a
 * URL, as es_url_mask does (internal/es_url_mask.h): for showing the
 * running config (GET /v1/config). */
void es_sub_mask_urls(cJSON *node);

/* A PUT may send ES_SUB_MASK back for a secret it did not change: each
 * such value in `s` is replaced by the one at the same place in `old`. */
void es_sub_keep_secrets(es_sub_t *s, const es_sub_t *old);

/* A fresh id: "sub-" and 16 hex digits. */
void es_sub_new_id(char *out, size_t size);
int es_sub_valid_id(const char *id);

/* The current time as RFC 3339 UTC into out. */
void es_sub_now(char *out, size_t size);

/* The state file: {"version": 1, "subscriptions": [...]}, written to a
 * temporary file, fsync'd and renamed over the old one (mode 0600: it
 * holds secrets). A missing file loads as an empty set. */
int es_subs_load(const char *path, es_sub_t ***subs, size_t *n, char *errstr,
                 size_t errstr_size);
int es_subs_save(const char *path, es_sub_t *const *subs, size_t n,
                 char *errstr, size_t errstr_size);

#endif
