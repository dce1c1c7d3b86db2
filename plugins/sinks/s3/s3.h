/*
 * S3 sink internals shared by s3.c (config, batching, the plugin vtable) and
 * upload.c (the upload workers: gzip, SigV4 requests, multipart).
 */
#ifndef ES_S3_H
#define ES_S3_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <eventstream/plugin.h>

#include "es_aws_credentials.h"

#define S3_MAX_PLANS 32
/* How long later events wait for a rejected one to come back. */
#define S3_BLOCK_MS 30000
/* At most this many idle full-size batch buffers are kept (and at most a
 * quarter of max_buffer_bytes' worth, at least one). */
#define S3_SPARE_BUFFERS 16
/* Batches growing past this take a full-size buffer. */
#define S3_BIG_BATCH (1u << 20)
/* JSON-lines bytes per gzip member (see upload.c). */
#define S3_GZIP_CHUNK (1u << 20)

typedef struct s3_config_s {
    char *bucket;
    char *region;
    char *endpoint; /* scheme://host[:port], no trailing slash */
    int path_style;
    char *key_template;
    int time_from_event; /* 1: event time, 0: processing time */
    int gzip;
    long gzip_level;
    long max_object_bytes;
    long max_object_events;
    long max_object_age_ms;
    long max_buffer_bytes;
    long part_size;
    long upload_threads;
    long timeout_ms;
    char *access_key_id;
    char *secret_access_key;
    char *session_token;
    char *profile;
    char *ca_file; /* CA bundle for an https endpoint; AWS_CA_BUNDLE */
} s3_config_t;

struct s3_slot_s;

/* A batch of events for one (topic, partition, tenant): open while events
 * are appended, then sealed and queued for a worker. */
typedef struct s3_batch_s {
    struct s3_slot_s *slot;
    char *buf; /* JSON lines */
    size_t len, cap;
    uint64_t *tokens;
    size_t count, tokens_cap;
    int64_t start_offset, end_offset;
    int64_t plan_start, plan_end; /* -1 when not replaying a plan */
    time_t key_time;
    uint64_t opened_ms;
    char *key;     /* object key, set when sealed */
    char *alt_key; /* a recorded plan's key that may already hold it all */
    char *topic;   /* copies for the worker's logs */
    struct s3_batch_s *next;
} s3_batch_t;

/* Everything known about one (topic, partition, tenant). */
typedef struct s3_slot_s {
    char *topic;
    char *tenant;
    int32_t partition;
    uint64_t hash;
    s3_batch_t *open;
    int64_t plan_s[S3_MAX_PLANS], plan_e[S3_MAX_PLANS];
    int nplans;
    /* Offset of an event answered RETRY for lack of memory: later events of
     * the slot wait for it, so a batch never has a hole (-1: none). */
    int64_t blocked_at;
    uint64_t blocked_ms;
    /* The last batch was cut by size: the next one starts full-size. */
    int hot;
    struct s3_slot_s *hnext;
    struct s3_slot_s *lnext; /* list of all slots, for age checks */
} s3_slot_t;

typedef struct s3_sink_s {
    const es_host_t *host;
    s3_config_t cfg;
    es_aws_provider_t *creds;
    char *host_url;    /* scheme://[bucket.]host[:port] */
    char *path_prefix; /* "/bucket" for path style, "" otherwise */

    s3_slot_t **buckets;
    size_t nbuckets;
    s3_slot_t *slots;
    size_t open_bytes;

    pthread_mutex_t lock; /* guards the queue, used_bytes, stopping */
    pthread_cond_t cond;
    s3_batch_t *q_head, *q_tail;
    size_t queued_bytes; /* sealed, not yet freed (queued or in flight) */
    int stopping;
    pthread_t *workers;
    long nworkers;
    /* Full-size batch buffers kept for reuse (guarded by lock). Fresh
     * multi-MiB buffers cost a page fault per 4 KiB, and freeing them
     * (munmap) a TLB shootdown across the upload threads: measured, that
     * made the 1 KiB copy into a batch cost 2-4 us per event here. */
    char *spare[S3_SPARE_BUFFERS];
    int nspare, max_spare;
} s3_sink_t;

/* upload.c */
int s3_workers_start(s3_sink_t *s, char *errstr, size_t errstr_size);
void s3_workers_stop(s3_sink_t *s);
void s3_batch_free(s3_batch_t *b);
/* Frees a batch, keeping its buffer for reuse when it is a full-size one. */
void s3_batch_recycle(s3_sink_t *s, s3_batch_t *b);
/* Percent-encodes per S3 rules (unreserved and, if keep_slash, '/'). */
char *s3_uri_encode(const char *s, int keep_slash);

#endif
