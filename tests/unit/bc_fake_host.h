/* A fake es_host_t for driving the blockchain handler without the daemon:
 * records logs, counters, emitted events and completions, and keeps the
 * key-value state in memory (optionally mirrored to a file so a "restart"
 * of the plugin sees what it stored). Thread-safe like the real host. */
#ifndef BC_FAKE_HOST_H
#define BC_FAKE_HOST_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "eventstream/plugin.h"

typedef struct fh_emit_s {
    uint64_t parent;
    char *topic;
    char *key;
    char *json;
} fh_emit_t;

typedef struct fh_completion_s {
    uint64_t token;
    es_status_t status;
    char reason[256];
} fh_completion_t;

typedef struct fh_kv_s {
    char *key;
    char *value;
    size_t len;
} fh_kv_t;

typedef struct fake_host_s {
    es_host_t host; /* first: callbacks cast the host pointer back */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fh_kv_t *kv, *saved;
    size_t nkv, nsaved;
    int in_tx;
    fh_emit_t *emits;
    size_t nemits;
    fh_completion_t *done;
    size_t ndone;
    int fail_emit;  /* emit returns -1 while set */
    int fail_state; /* state calls return -1 while set */
    int verbose;    /* print log lines to stderr */
    char *path;     /* state mirror file, or NULL */
    char state_dir[256];
} fake_host_t;

fake_host_t *fh_new(const char *state_file);
void fh_destroy(fake_host_t *fh);
/* Waits until at least n completions were recorded; 0, or -1 on timeout. */
int fh_wait_completions(fake_host_t *fh, size_t n, int timeout_ms);
/* The completion recorded for token, or NULL. */
const fh_completion_t *fh_completion(fake_host_t *fh, uint64_t token);
/* Number of emitted events with this topic. */
size_t fh_count_topic(fake_host_t *fh, const char *topic);
/* Forgets the emitted events after the first n. */
void fh_truncate_emits(fake_host_t *fh, size_t n);
/* The value of a key as a string (malloc'd), or NULL. */
char *fh_state(fake_host_t *fh, const char *key);

#endif
