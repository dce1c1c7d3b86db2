/* Topic onboarding: every `<team>/.../topic-details.json` under the
 * config's topics_dir (docs/onboarding.md). Loaded at start (a bad file
 * stops the daemon), re-scanned by the pipeline loop so added or changed
 * folders apply without a restart (a bad changed file keeps the old
 * definition). The pipeline thread is the only writer; readers on other
 * threads (the admin API) hold the lock while they use a topic. */
#ifndef ES_TOPICS_H
#define ES_TOPICS_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "config.h"

typedef struct es_topic_s {
    char *name;
    char *team;
    char *file; /* path of its topic-details.json */
    int single_tenant;
    int avro;
    char *schema_name; /* file name beside topic-details.json (Avro) */
    cJSON *schema;     /* the parsed .avsc (Avro), owned */
    es_strv_t tenant;  /* tenant spec, as a route's "tenant" */
    es_strv_t pii;     /* dotted paths stripped before delivery */
    char *description;
    unsigned long long stamp; /* of the folder's files, for change checks */
} es_topic_t;

typedef struct es_topics_s es_topics_t;

/* Loads every topic-details.json under dir. Returns NULL with errstr
 * "FILE: key: problem" on the first bad file. */
es_topics_t *es_topics_load(const char *dir, char *errstr, size_t errstr_size);

/* Re-scans the folder: new and changed folders are parsed (errors logged,
 * the old definition kept), vanished ones dropped. Returns the number of
 * topics added, changed or removed. */
int es_topics_rescan(es_topics_t *t);

void es_topics_destroy(es_topics_t *t);

/* Readers on other threads than the pipeline's hold this lock while they
 * use what es_topics_find returns. A NULL registry is accepted. */
void es_topics_lock(es_topics_t *t);
void es_topics_unlock(es_topics_t *t);
const es_topic_t *es_topics_find(const es_topics_t *t, const char *name);

/* JSON views for the admin API (they lock). */
cJSON *es_topics_list_json(es_topics_t *t);
cJSON *es_topics_schemas_json(es_topics_t *t);
/* The .avsc of an onboarded Avro topic, or NULL. */
cJSON *es_topics_schema_json(es_topics_t *t, const char *name);
cJSON *es_topic_json(const es_topic_t *topic);

/* Whether the event holds any of the topic's PII paths. */
int es_topic_has_pii(const es_topic_t *topic, const cJSON *ce);
/* Removes the topic's PII paths from ce; appends each removed path to
 * `removed` (an array) when non-NULL. Returns how many were removed. */
int es_topic_strip_pii(const es_topic_t *topic, cJSON *ce, cJSON *removed);
/* The event's text with the same fields removed, every other byte as it
 * came (a reprint of the stripped tree would change numbers: 2^64 - 1
 * printed from a double, 1.0 as 1). */
char *es_topic_strip_pii_text(const es_topic_t *topic, const char *json,
                              size_t len, size_t *out_len);

/* Copies of the onboarded Avro topics (all, or only the one named `only`):
 * name, the path of the .avsc beside topic-details.json, and that file. */
typedef struct es_topic_avro_s {
    char *topic;
    char *avsc_path;
    char *file;
} es_topic_avro_t;
size_t es_topics_avro(es_topics_t *t, const char *only, es_topic_avro_t **out);
void es_topics_avro_free(es_topic_avro_t *v, size_t n);
/* Changes when the set of Avro topics or any of their folders changes. */
unsigned long long es_topics_avro_stamp(es_topics_t *t);

/* Parses one topic-details.json (for tests and the loader): NULL with
 * errstr "FILE: key: problem". `team` is the folder's team name. */
es_topic_t *es_topic_parse_file(const char *file, const char *team,
                                char *errstr, size_t errstr_size);
void es_topic_destroy(es_topic_t *topic);

#endif
