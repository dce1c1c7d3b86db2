/* CloudEvents 1.0 decoding of Kafka records: structured mode (a JSON
 * CloudEvent as the value) and binary mode (ce_ headers + data as value). */
#ifndef ES_DECODE_H
#define ES_DECODE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "eventstream/plugin.h"

typedef struct es_decoded_s {
    cJSON *ce;   /* owned: the event as a tree */
    void *arena; /* non-NULL: ce lives in it (es_json_parse) */
    /* A shallow tree (es_decode_output): the event's attributes are built,
     * but a member whose value is an object or array (data) is a
     * cJSON_Raw node with no text. es_decode_full builds the whole tree. */
    int shallow;
    void *tree_arena; /* the whole tree es_decode_full built */
    const char *json; /* the event as structured JSON */
    size_t json_len;
    char *owned_json; /* non-NULL when json was built (binary mode) */
    const char *id, *source, *type, *subject, *time; /* point into ce */
    /* Where the text's objects have their members (in arena), when the
     * decode was asked for it and the fast parser took the text. */
    const es_json_index_t *index;
} es_decoded_t;

/*
 * Decodes one record. In structured mode `json` points at `value` itself
 * (no copy, no re-serialisation), so value must outlive the result. With
 * `index`, a structured record also gets the index of its members
 * (es_decoded_t.index) from the same parse.
 * Returns 0, or -1 with a precise reason ("missing required attribute
 * \"id\"", "invalid JSON at byte 12", ...).
 */
int es_decode_record(const void *value, size_t len, const es_header_t *headers,
                     size_t header_count, size_t max_bytes, int index,
                     es_decoded_t *out, char *reason, size_t reason_size);

/* Validates a parsed CloudEvent object and fills the attribute pointers. */
int es_decode_validate(cJSON *ce, es_decoded_t *out, char *reason,
                       size_t reason_size);

void es_decoded_clear(es_decoded_t *d);

/*
 * Parses like cJSON_ParseWithLengthOpts(json, len, end, 0) and gives the
 * same tree, but usually inside one block (*arena non-NULL) instead of a
 * malloc per value. Free the result with es_json_tree_free(tree, *arena),
 * never with cJSON_Delete; treat the tree as read-only (its strings are
 * not separately allocated). NULL when the text is not valid JSON.
 */
cJSON *es_json_parse(const char *json, size_t len, const char **end,
                     void **arena);
void es_json_tree_free(cJSON *ce, void *arena);

/*
 * Decodes a filter's output (a structured CloudEvent): a copy of the text,
 * checked whole, and a shallow tree of it (see es_decoded_t), in one block
 * when it can. Destinations that read only the text and the attributes
 * never need more; es_decode_full builds the rest for those that read
 * `ce`. Returns 0, or -1 with the reason (nothing to clear then).
 */
int es_decode_output(const char *json, size_t len, es_decoded_t *out,
                     char *reason, size_t reason_size);
/* What a filter's output copied from the event it read (see
 * es_json_copy_t), with that event's text and index to check them against. */
typedef struct es_output_copies_s {
    const char *in;
    size_t in_len;
    const es_json_index_t *index;
    const es_json_copy_t *copies;
    size_t n;
    /* The tree the parse that made `index` built (es_decoded_t.ce), or
     * NULL: the output's attributes copied from the input are then taken
     * from it instead of being parsed again. */
    const cJSON *in_tree;
} es_output_copies_t;

/* es_decode_output for an output that lists its copies: the check steps
 * over those that match the input (the input's parse took those bytes),
 * and ignores the rest. Same result as es_decode_output. */
int es_decode_output_copies(const char *json, size_t len,
                            const es_output_copies_t *copies, es_decoded_t *out,
                            char *reason, size_t reason_size);
/* Builds the whole tree of a shallow decode (nothing when it is whole).
 * The attribute pointers move to the new tree. Called by the one thread
 * that owns the event at the time. */
void es_decode_full(es_decoded_t *d);
void es_json_arena_free(void *arena);

/*
 * Finds a value by a tenant-source spec: "key" (the Kafka key), "data.a.b"
 * (a path into the event), or a top-level attribute/extension name such as
 * "tenantid". Strings are returned as is; integers are formatted. Returns a
 * malloc'd string, or NULL when absent or when a key on the way appears
 * twice in its object (which one counts is up to the reader).
 */
char *es_decode_lookup(const cJSON *ce, const void *key, size_t key_len,
                       const char *spec);
/* 1 when es_decode_lookup found nothing for `spec` because a key on the
 * way appears twice in its object. */
int es_decode_lookup_repeated(const cJSON *ce, const char *spec);

#endif
