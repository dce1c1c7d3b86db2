/* The daemon's JSON config: parsed, validated, every error naming the file,
 * the key path and what is wrong. Unknown keys are errors. */
#ifndef ES_CONFIG_H
#define ES_CONFIG_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "internal/es_topic_name.h"
#include "log.h"

typedef struct es_strv_s {
    char **v;
    size_t n;
} es_strv_t;

/* Parking a failing destination (docs/parking.md); enabled when the
 * instance has a "park" object. */
typedef struct es_park_conf_s {
    int enabled;
    int after_ms;       /* failing this long without a success; 0 = off */
    int after_attempts; /* one event failed this often; 0 = off */
    char *topic;        /* default eventstream.park.<instance> */
    char *group;        /* NULL: <kafka.group_id>.park.<instance> */
} es_park_conf_t;

typedef struct es_instance_conf_s {
    char *name;
    char *plugin;
    cJSON *config;     /* borrowed from es_config_t.root; NULL when absent */
    int test_endpoint; /* the topic testing API may deliver to it */
    cJSON *park_obj;   /* borrowed; parsed into `park` */
    es_park_conf_t park;
} es_instance_conf_t;

typedef struct es_route_conf_s {
    char *name;
    es_strv_t topics;
    char *group;      /* consumer group id; NULL = kafka.group_id */
    es_strv_t tenant; /* where the tenant is found, tried in order */
    int require_tenant;
    es_strv_t filters;
    es_strv_t destinations;
    char *format;        /* "json" (default) or "avro": see host/avro */
    cJSON *avro_schemas; /* {topic: local .avsc path}, borrowed; or NULL */
} es_route_conf_t;

typedef struct es_config_s {
    char *path;
    cJSON *root;    /* string values with ${NAME} expanded */
    cJSON *written; /* the same as written in the file, before expansion */
    /* The text's SHA-256 (hex) and when it was parsed (RFC 3339 UTC): what
     * GET /v1/config shows, to tell the running config from the file's. */
    char sha256[65];
    char loaded_at[32];

    char *brokers; /* "embedded" or a bootstrap list */
    char *group_id;
    cJSON *kafka_properties; /* object of string values, borrowed */
    char *plugin_dir;
    char *state_dir;
    char *dead_letter_topic;
    char *topics_dir; /* service-teams-topics/; NULL: no onboarding */
    es_log_level_t log_level;
    es_log_format_t log_format;

    int retry_initial_backoff_ms;
    int retry_max_backoff_ms;
    int retry_max_attempts; /* 0 = retry forever */

    int max_inflight;
    int max_event_bytes;
    int batch_size;
    int commit_interval_ms;
    int shutdown_timeout_ms;
    int reload_check_timeout_ms; /* a SIGHUP's --check-config child */
    int filter_thread; /* the config's routes' filters on their own thread
                          (off by default: docs/config.md) */
    int dry_run;       /* not from the file: set by --dry-run, which builds only
                          filters and test endpoints (pipeline.c, stand_in) */

    /* admin API; disabled when api_listen is NULL */
    char *api_listen; /* "host:port" */
    char *api_token;
    char *api_token_file;
    char *api_tls_cert; /* PEM files: HTTPS when both are set */
    char *api_tls_key;

    es_instance_conf_t *instances;
    size_t instance_count;
    es_route_conf_t *routes;
    size_t route_count;

    cJSON *schema_registry; /* Avro registry settings, borrowed; or NULL */

    /* regions (host/src/region.h); off when region_name is NULL */
    char *region_name;
    char *region_map; /* tenant -> region map: a file or an http(s) URL */
    int region_refresh_ms;
    int region_timeout_ms;
    char *region_unknown; /* "forward" or "skip" */
    char *region_ca_file;

    /* usage over time windows (host/src/usage.h): retention per bucket */
    int usage_minute_hours;
    int usage_hour_days;
    int usage_day_days;

    /* "subscriptions.park": the default park policy of subscriptions'
     * destinations (topic and group stay NULL: per subscription). */
    es_park_conf_t sub_park;
    /* "subscriptions.scripts_dir": the only place a subscription's filter
     * may name a script file by path; NULL: only inline "source". */
    char *sub_scripts_dir;
} es_config_t;

/* Loads and validates FILE. Returns NULL with errstr "FILE: key: what". */
es_config_t *es_config_load(const char *path, char *errstr, size_t errstr_size);
/* Same, from a string; `path` only names the source in messages. */
es_config_t *es_config_parse(const char *text, const char *path, char *errstr,
                             size_t errstr_size);
void es_config_destroy(es_config_t *conf);

/* Park policies: the defaults (enabled, after_ms 30000, after_attempts 5)
 * and a "park" object parsed over *pc (only the keys it has change). A
 * string field given replaces (frees) the one in *pc. Returns -1 with
 * errstr "PATH.key: what". */
void es_park_conf_defaults(es_park_conf_t *pc);
int es_park_conf_parse(const cJSON *obj, const char *path, es_park_conf_t *pc,
                       char *errstr, size_t errstr_size);

const es_instance_conf_t *es_config_instance(const es_config_t *conf,
                                             const char *name);
const es_route_conf_t *es_config_route(const es_config_t *conf,
                                       const char *name);

#endif
