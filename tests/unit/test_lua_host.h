/*
 * Fake host for the Lua filter's unit tests and benchmark: an es_host_t
 * that records logs and counters in memory, an es_filter_out_t that
 * records outputs, and a loader that dlopen()s the built plugin.
 */
#ifndef TEST_LUA_HOST_H
#define TEST_LUA_HOST_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "decode.h"
#include "eventstream/plugin.h"

#define FAKE_MAX_OUT 16

typedef struct fake_host_s {
    es_host_t host; /* first: the plugin sees a pointer to this */
    char logs[16384];
    size_t logs_len;
    int log_lines;
    struct {
        char name[64];
        unsigned long long value;
    } counters[32];
    int ncounters;
} fake_host_t;

typedef struct fake_out_s {
    es_filter_out_t out; /* first */
    char *json[FAKE_MAX_OUT];
    char *route[FAKE_MAX_OUT];
    int n;
    char *copied[FAKE_MAX_OUT]; /* its copies' text, " | " between */
    char keep_route[128];
    int reject; /* make add() fail */
} fake_out_t;

typedef struct fake_event_s {
    es_event_t ev;
    cJSON *ce;
    char *json;
    es_decoded_t dec; /* the host's decode, for its index */
} fake_event_t;

void fake_host_init(fake_host_t *h);
/* Makes the host offer events with the index of their members, built by
 * the host's own decoder (es_decode_record), as the daemon does for a
 * filter that declares ES_PLUGIN_JSON_INDEX. Events made afterwards by
 * fake_event_init carry it. */
void fake_host_offer_index(fake_host_t *h, int on);
/* With the index, the host also offers filter_add_copies: every copy an
 * output lists is checked against the event being filtered (the last one
 * fake_event_init made) and counted; a copy that is not what it says, or
 * that changes the decoder's verdict on the output, is a copy error. */
unsigned long fake_copies_seen(void);
/* On by default; off (a benchmark of the plugin alone), copies are
 * neither checked, counted nor recorded in fake_out_t.copied. */
void fake_host_verify_copies(int on);
unsigned long fake_copy_errors(void);
unsigned long long fake_counter(const fake_host_t *h, const char *name);
void fake_out_init(fake_out_t *o);
void fake_out_reset(fake_out_t *o);
/* Fills an event from JSON text the way the host does (returns -1 when the
 * text does not parse). */
int fake_event_init(fake_event_t *e, const char *json, const char *topic,
                    const char *tenant);
void fake_event_free(fake_event_t *e);
/* dlopen()s build-plugins/lua.so (under $ES_BUILD_DIR, else the current
 * directory, else beside the test binary); NULL with a message on stderr. */
const es_plugin_t *fake_load_plugin(void);

#endif
