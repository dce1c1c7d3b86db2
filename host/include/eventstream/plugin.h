/*
 * eventstream plugin ABI.
 *
 * A plugin is a shared object in the daemon's plugin directory that exports
 * exactly one symbol, ES_PLUGIN_ENTRY_SYMBOL ("es_plugin_entry"), of type
 * es_plugin_entry_fn. The daemon loads it with dlopen(RTLD_NOW | RTLD_LOCAL),
 * calls the entry with its own ABI version and checks the returned descriptor:
 *
 *   - descriptor->abi must equal ES_PLUGIN_ABI_VERSION,
 *   - descriptor->size must reach at least `destroy`; fields after it
 *     (`flags`) were added later and are read only when size covers them,
 *     so plugins built against an older header of ABI 1 still load,
 *   - name must be non-empty and unique among loaded plugins,
 *   - every callback the kind needs must be non-NULL.
 *
 * A plugin that fails a check is refused with a message naming the file; the
 * daemon keeps running with the plugins that loaded.
 *
 * Kinds:
 *   ES_KIND_SINK     delivers events somewhere (https, kafka, s3, file).
 *   ES_KIND_HANDLER  reacts to events and may emit new CloudEvents through
 *                    es_host_t.emit; same vtable shape as a sink.
 *   ES_KIND_FILTER   inspects one event and keeps, drops, modifies, splits or
 *                    reroutes it (the Lua filter is one).
 *
 * Plugins need no host symbols: everything they call comes through the
 * es_host_t struct handed to init. Build against this header with
 * `pkg-config --cflags eventstream-plugin` and link with libtool
 * `-module -avoid-version`, exporting only es_plugin_entry.
 *
 * Threading: the host calls init, deliver/handle/filter, flush and destroy of
 * one instance from one thread at a time (calls on an instance are
 * serialised). Different instances may be called from different threads.
 * es_host_t.complete, emit, log, counter_add and the state calls are
 * thread-safe and may be called from threads the plugin creates.
 */
#ifndef EVENTSTREAM_PLUGIN_H
#define EVENTSTREAM_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change to the structs or callbacks below. */
#define ES_PLUGIN_ABI_VERSION 1u
#define ES_PLUGIN_ENTRY_SYMBOL "es_plugin_entry"

#if defined(__GNUC__)
#define ES_PRINTF(fmt_idx, args_idx)                                           \
    __attribute__((format(printf, fmt_idx, args_idx)))
#define ES_EXPORT __attribute__((visibility("default")))
#else
#define ES_PRINTF(fmt_idx, args_idx)
#define ES_EXPORT
#endif

/*
 * Outcome of one event at one destination. Zero is deliberately not a valid
 * status, so a result array the plugin forgot to fill is caught by the host
 * (an unset status is treated as RETRY and logged as a plugin bug).
 */
typedef enum es_status_e {
    ES_OK = 1,      /* done: the destination has it durably */
    ES_RETRY = 2,   /* transient: the host backs off and redelivers */
    ES_FAIL = 3,    /* permanent: the host dead-letters it with the reason */
    ES_PENDING = 4, /* accepted; the plugin calls host->complete later */
} es_status_t;

typedef enum es_plugin_kind_e {
    ES_KIND_SINK = 1,
    ES_KIND_FILTER = 2,
    ES_KIND_HANDLER = 3,
} es_plugin_kind_t;

typedef enum es_log_level_e {
    ES_LOG_ERROR = 1,
    ES_LOG_WARN = 2,
    ES_LOG_INFO = 3,
    ES_LOG_DEBUG = 4,
} es_log_level_t;

/* A Kafka record header. Borrowed; value may contain NUL bytes. */
typedef struct es_header_s {
    const char *name;
    const void *value; /* NULL for a null header value */
    size_t value_len;
} es_header_t;

struct cJSON; /* cJSON 1.7 tree, see <cjson/cJSON.h> */

/*
 * Where the members of an event's JSON objects are in its text, from the
 * host's own parse, so that a plugin with a JSON reader of its own (the Lua
 * filter) need not read the text a second time. Offsets are bytes into
 * es_event_t.json. The members of one object are contiguous in `members`,
 * in the order written (a repeated key appears each time). A member whose
 * value is an object names that object's members with `child` (their
 * index + 1) and `nchild`; child is 0 when the value is not an object, and
 * for objects inside arrays, which the host does not index.
 */
typedef struct es_json_member_s {
    uint32_t key_start, key_end;     /* the key with its quotes */
    uint32_t value_start, value_end; /* the value as written */
    uint32_t child, nchild;
    uint32_t flags; /* ES_JSON_KEY_ESCAPED */
} es_json_member_t;

/* The key has backslash escapes: its text is not its name. */
#define ES_JSON_KEY_ESCAPED 1u

typedef struct es_json_index_s {
    const es_json_member_t *members;
    uint32_t count;
    uint32_t root, nroot; /* the event's own members: members[root - 1 ..] */
} es_json_index_t;

/*
 * A byte range of a filter's output that is a copy of the text of the event
 * it was given: output[out_start, out_start + len) equals
 * es_event_t.json[in_start, in_start + len), and the range is either one
 * member's value or a run of whole members (first key to last value) of
 * one object in the event's index. See host->filter_add_copies.
 */
typedef struct es_json_copy_s {
    uint32_t out_start, in_start, len;
} es_json_copy_t;

/*
 * One CloudEvent, borrowed for the duration of the call that receives it.
 * Every pointer is owned by the host and valid only until that call returns;
 * a plugin that keeps anything (for an asynchronous completion, say) copies
 * it. The only value that outlives the call is `token`.
 *
 * `json` is the event in CloudEvents structured JSON form (specversion, id,
 * source, type, optional attributes and data), UTF-8, not NUL-terminated in
 * general (use json_len). `ce` is the same event as a parsed cJSON object,
 * read-only: plugins must not modify or free it. It is NULL for a plugin
 * that declares ES_PLUGIN_TEXT_ONLY when the host has not built the tree
 * for another reason.
 */
typedef struct es_event_s {
    const char *json;
    size_t json_len;
    const struct cJSON *ce;

    /* Required and common attributes, NUL-terminated; NULL when absent. */
    const char *id;
    const char *source;
    const char *type;
    const char *subject;
    const char *time;

    /* The tenant the host extracted per the route's tenant setting. */
    const char *tenant;

    /* Where the record came from. */
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /* Kafka record timestamp, -1 if unknown */
    const void *key;      /* Kafka key, NULL if none */
    size_t key_len;
    const es_header_t *headers;
    size_t header_count;

    /* The route and destination instance this delivery belongs to. */
    const char *route;

    /*
     * Identifies this event at this destination. Pass it to host->complete
     * when a deliver/handle call returned ES_PENDING for the event, and as
     * the parent of events emitted because of this one. Valid until the
     * delivery is completed.
     */
    uint64_t token;
    /* 1 on the first delivery, incremented on each host retry. */
    uint32_t attempt;

    /*
     * Added to ABI 1 later: read it only when ES_EVENT_HAS_INDEX(host).
     * The members of the event's objects, for a plugin that declares
     * ES_PLUGIN_JSON_INDEX; NULL when the host has no index of this text (a
     * binary-mode record, a filter's output, text with \u escapes, which
     * the host leaves to cJSON). Borrowed like `json`.
     */
    const es_json_index_t *index;
} es_event_t;

/* Per-event result of deliver/handle. `reason` is copied by the host before
 * the call returns; it is required for ES_FAIL and useful for ES_RETRY. */
typedef struct es_result_s {
    es_status_t status;
    char reason[256];
} es_result_t;

typedef struct es_host_s es_host_t;
struct es_filter_out_s; /* see below */

/*
 * Services the host offers to plugin instances. Handed to init; valid until
 * destroy returns. All functions are thread-safe.
 */
struct es_host_s {
    uint32_t abi;  /* ES_PLUGIN_ABI_VERSION of the host */
    uint32_t size; /* sizeof(es_host_t) in the host */

    /* Name of this instance as configured ("orders-webhook"). */
    const char *instance_name;
    /* Directory the instance may keep files in (exists, writable). */
    const char *state_dir;

    /* Writes one log line tagged with the instance name. */
    void (*log)(const es_host_t *host, es_log_level_t level, const char *fmt,
                ...) ES_PRINTF(3, 4);

    /* Adds delta to the counter `name` of this instance; exposed as a
     * metric "es_plugin_<name>_total{instance=...}". */
    void (*counter_add)(const es_host_t *host, const char *name,
                        uint64_t delta);

    /*
     * Completes an event a deliver/handle call answered with ES_PENDING.
     * reason may be NULL for ES_OK; it is copied. Calling it twice for one
     * token, or for a token that was not pending, is a plugin bug the host
     * logs and ignores.
     */
    void (*complete)(const es_host_t *host, uint64_t token, es_status_t status,
                     const char *reason);

    /*
     * Publishes a new CloudEvent (structured JSON, `json_len` bytes) to
     * `topic` with the given Kafka key through the host's producer. When
     * parent_token is non-zero the input event counts as done only once
     * this emitted event is acknowledged by the broker: call emit before
     * completing the parent. Returns 0 when queued; -1 with errstr filled
     * when it cannot be (the plugin should answer RETRY for the parent).
     * With KAFKA_ENABLED=false the call succeeds and publishes nothing.
     */
    int (*emit)(const es_host_t *host, uint64_t parent_token, const char *topic,
                const void *key, size_t key_len, const char *json,
                size_t json_len, char *errstr, size_t errstr_size);

    /*
     * Small durable key-value state per instance (SQLite in the state
     * directory). state_get returns 1 and a malloc'd copy of the value in
     * *value (free it with host->free) when the key exists, 0 when it does
     * not, -1 on error. state_put/state_delete return 0 or -1. A
     * begin/commit pair makes the puts and deletes in between atomic;
     * rollback discards them. Transactions do not nest and belong to the
     * calling thread's instance connection.
     */
    int (*state_get)(const es_host_t *host, const char *key, char **value,
                     size_t *value_len);
    int (*state_put)(const es_host_t *host, const char *key, const void *value,
                     size_t value_len);
    int (*state_delete)(const es_host_t *host, const char *key);
    int (*state_begin)(const es_host_t *host);
    int (*state_commit)(const es_host_t *host);
    int (*state_rollback)(const es_host_t *host);
    void (*free)(void *ptr);

    void *opaque; /* host-private */

    /* Added to ABI 1 later, present when `size` covers it: sizeof(es_event_t)
     * in the host. A field of es_event_t beyond it is not there. */
    uint32_t event_size;

    /*
     * Added to ABI 1 later (ES_HOST_HAS(host, filter_add_copies)): out->add
     * for an output that copies parts of the event being filtered, with
     * those parts listed in output order. The host compares each with the
     * event's text and its index and then does not check that text's
     * grammar a second time; a copy that does not match is ignored (its
     * bytes are checked like the rest), never trusted. Same result and
     * errors as out->add.
     */
    int (*filter_add_copies)(struct es_filter_out_s *out, const char *json,
                             size_t json_len, const char *route,
                             const es_json_copy_t *copies, size_t ncopies,
                             char *errstr, size_t errstr_size);
};

/* Whether the host's es_host_t has `field` (an older host's is shorter). */
#define ES_HOST_HAS(host, field)                                               \
    ((host)->size >= offsetof(es_host_t, field) + sizeof((host)->field))
/* Whether the host's events have `index` (see ES_PLUGIN_JSON_INDEX). */
#define ES_EVENT_HAS_INDEX(host)                                               \
    (ES_HOST_HAS(host, event_size) &&                                          \
     (host)->event_size >=                                                     \
         offsetof(es_event_t, index) + sizeof(const es_json_index_t *))

/* ---------------------------------------------------------------- filters */

typedef enum es_filter_verdict_e {
    ES_FILTER_KEEP = 1,    /* deliver the event unchanged */
    ES_FILTER_DROP = 2,    /* deliver nothing; the event counts as done */
    ES_FILTER_REPLACE = 3, /* deliver the events given to out->add instead */
    ES_FILTER_FAIL = 4,    /* dead-letter the event with reason */
} es_filter_verdict_t;

/*
 * Collects a filter's output events. add() copies `json` (a CloudEvent in
 * structured JSON) and the optional route name; it returns 0, or -1 when the
 * output is not a valid CloudEvent, with the reason in errstr.
 * For ES_FILTER_KEEP the filter may set a route with set_route() to send the
 * unchanged event to another route's destinations.
 */
typedef struct es_filter_out_s es_filter_out_t;
struct es_filter_out_s {
    int (*add)(es_filter_out_t *out, const char *json, size_t json_len,
               const char *route, char *errstr, size_t errstr_size);
    void (*set_route)(es_filter_out_t *out, const char *route);
    void *opaque; /* host-private */
};

/* ----------------------------------------------------------------- vtable */

typedef struct es_plugin_s {
    uint32_t abi;     /* ES_PLUGIN_ABI_VERSION the plugin was built against */
    uint32_t size;    /* sizeof(es_plugin_t) the plugin was built against */
    const char *name; /* unique, e.g. "file", "https", "lua" */
    const char *version; /* free-form, for logs */
    es_plugin_kind_t kind;

    /*
     * Creates an instance from its JSON config (a cJSON object, borrowed for
     * the call; `config` may be NULL when none was given). On failure returns
     * non-zero and fills errstr with what is wrong, naming the key. The host
     * pointer stays valid until destroy.
     */
    int (*init)(const es_host_t *host, const struct cJSON *config,
                void **instance, char *errstr, size_t errstr_size);

    /*
     * Sinks and handlers: deliver `count` borrowed events and fill
     * results[i] for each. Statuses may differ per event; ES_PENDING defers
     * an event's result to host->complete. Must not block for long: a slow
     * destination returns ES_PENDING and completes from its own thread.
     * Unused (NULL) for filters.
     */
    void (*deliver)(void *instance, const es_event_t *const *events,
                    size_t count, es_result_t *results);

    /*
     * Filters: decide about one event. For ES_FILTER_REPLACE the outputs go
     * through out->add; for ES_FILTER_FAIL the reason goes in errstr.
     * Unused (NULL) for sinks and handlers.
     */
    es_filter_verdict_t (*filter)(void *instance, const es_event_t *event,
                                  es_filter_out_t *out, char *errstr,
                                  size_t errstr_size);

    /*
     * Called periodically (about every 100 ms) and before destroy: push out
     * what is buffered, check timers and time-based batch limits. May be
     * NULL for plugins that buffer nothing.
     */
    void (*flush)(void *instance);

    /* Frees the instance. Pending events not yet completed are abandoned
     * (the host will redeliver them after restart). Accepts NULL. */
    void (*destroy)(void *instance);

    /* ES_PLUGIN_* bits, below. */
    uint32_t flags;
} es_plugin_t;

/*
 * The plugin reads an event's `json` and the string attributes (id,
 * source, type, subject, time, tenant), never `ce`. The host then need not
 * build the tree of a filter's output for it: `ce` may be NULL. A sink
 * that forwards the text as it is (file, s3) or a filter with a parser of
 * its own (lua) saves a second parse of every event a filter rewrote.
 */
#define ES_PLUGIN_TEXT_ONLY 1u

/*
 * A filter that reads its events' JSON with a reader of its own wants the
 * host's index of it (es_event_t.index): the host then records, while it
 * parses each consumed record, where every object's members are, and the
 * filter need not scan the text again. The host builds it for every
 * record once a route uses such a filter; a filter still handles index ==
 * NULL (see es_event_t.index).
 */
#define ES_PLUGIN_JSON_INDEX 2u

/* The one exported symbol. host_abi is the host's ES_PLUGIN_ABI_VERSION;
 * a plugin may return NULL if it cannot work with that host. */
typedef const es_plugin_t *(*es_plugin_entry_fn)(uint32_t host_abi);

#define ES_PLUGIN_DEFINE(desc)                                                 \
    ES_EXPORT const es_plugin_t *es_plugin_entry(uint32_t host_abi)            \
    {                                                                          \
        (void)host_abi;                                                        \
        return &(desc);                                                        \
    }

#ifdef __cplusplus
}
#endif

#endif /* EVENTSTREAM_PLUGIN_H */
