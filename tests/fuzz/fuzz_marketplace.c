/*
 * Fuzz target for the marketplace order handler
 * (plugins/handlers/marketplace): the order state machine fed events whose
 * data nobody checked, in any order.
 *
 * The input is up to 16 lines, each one record's value; a value the host's
 * decoder refuses never reaches a handler and is skipped. The others are
 * delivered in order, one per call, to one instance over one in-memory
 * state store (a key-value map with an undo log for transactions), so a
 * run is an order's history. The checks:
 *  - every event gets a status from ok to fail, a failure has a reason;
 *  - every transaction the handler begins is committed or rolled back
 *    before deliver returns, none nested;
 *  - every event it emits is a CloudEvent the host's decoder takes;
 *  - the order records it stores are JSON objects.
 *
 * Built with libFuzzer by scripts/fuzz (the plugin's sources linked in),
 * and replayed over tests/fuzz/corpus/marketplace/ by `make check`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "eventstream/plugin.h"
#include "fuzz.h"

const es_plugin_t *es_plugin_entry(uint32_t host_abi);

#define MAX_KEYS 256
#define MAX_UNDO 64

typedef struct kv_s {
    char *key, *val; /* val NULL: absent (in an undo record) */
    size_t len;
} kv_t;

typedef struct store_s {
    kv_t kv[MAX_KEYS];
    size_t n;
    kv_t undo[MAX_UNDO];
    size_t nundo;
    int in_txn;
} store_t;

static store_t store;
static size_t emitted; /* events the handler emitted, all calls */

static kv_t *kv_find(const char *key)
{
    for (size_t i = 0; i < store.n; i++)
        if (!strcmp(store.kv[i].key, key))
            return &store.kv[i];
    return NULL;
}

static char *copy_bytes(const void *v, size_t len)
{
    char *c = malloc(len + 1);
    memcpy(c, v, len);
    c[len] = '\0';
    return c;
}

/* Sets (val non-NULL) or removes key, with no undo record. */
static void kv_set(const char *key, const void *val, size_t len)
{
    kv_t *e = kv_find(key);
    if (!val) {
        if (e) {
            free(e->key);
            free(e->val);
            *e = store.kv[--store.n];
        }
        return;
    }
    if (!e) {
        FUZZ_CHECK(store.n < MAX_KEYS, "more than %d keys", MAX_KEYS);
        e = &store.kv[store.n++];
        e->key = strdup(key);
    } else {
        free(e->val);
    }
    e->val = copy_bytes(val, len);
    e->len = len;
}

static void undo_note(const char *key)
{
    if (!store.in_txn)
        return;
    FUZZ_CHECK(store.nundo < MAX_UNDO, "more than %d writes in a transaction",
               MAX_UNDO);
    kv_t *e = kv_find(key), *u = &store.undo[store.nundo++];
    u->key = strdup(key);
    u->val = e ? copy_bytes(e->val, e->len) : NULL;
    u->len = e ? e->len : 0;
}

static void undo_forget(void)
{
    for (size_t i = 0; i < store.nundo; i++) {
        free(store.undo[i].key);
        free(store.undo[i].val);
    }
    store.nundo = 0;
}

static int st_get(const es_host_t *h, const char *key, char **value,
                  size_t *len)
{
    (void)h;
    kv_t *e = kv_find(key);
    *value = e ? copy_bytes(e->val, e->len) : NULL;
    if (e)
        *len = e->len;
    return e ? 1 : 0;
}

static int st_put(const es_host_t *h, const char *key, const void *value,
                  size_t len)
{
    (void)h;
    undo_note(key);
    kv_set(key, value, len);
    return 0;
}

static int st_delete(const es_host_t *h, const char *key)
{
    (void)h;
    undo_note(key);
    kv_set(key, NULL, 0);
    return 0;
}

static int st_begin(const es_host_t *h)
{
    (void)h;
    FUZZ_CHECK(!store.in_txn, "a transaction begun inside another");
    store.in_txn = 1;
    return 0;
}

static int st_commit(const es_host_t *h)
{
    (void)h;
    FUZZ_CHECK(store.in_txn, "commit without a transaction");
    undo_forget();
    store.in_txn = 0;
    return 0;
}

static int st_rollback(const es_host_t *h)
{
    (void)h;
    FUZZ_CHECK(store.in_txn, "rollback without a transaction");
    while (store.nundo > 0) {
        kv_t *u = &store.undo[--store.nundo];
        kv_set(u->key, u->val, u->len);
        free(u->key);
        free(u->val);
    }
    store.in_txn = 0;
    return 0;
}

static int host_emit(const es_host_t *h, uint64_t parent, const char *topic,
                     const void *key, size_t key_len, const char *json,
                     size_t json_len, char *errstr, size_t errstr_size)
{
    (void)h, (void)parent, (void)key, (void)key_len, (void)errstr;
    (void)errstr_size;
    FUZZ_CHECK(topic && topic[0], "emit without a topic");
    es_decoded_t d;
    char why[256];
    FUZZ_CHECK(es_decode_record(json, json_len, NULL, 0, SIZE_MAX, 0, &d, why,
                                sizeof why) == 0,
               "emitted event refused: %s: %.*s", why, (int)json_len, json);
    es_decoded_clear(&d);
    emitted++;
    return 0;
}

static void host_complete(const es_host_t *h, uint64_t token, es_status_t st,
                          const char *reason)
{
    (void)h, (void)token, (void)st, (void)reason;
    FUZZ_CHECK(0, "the handler never answers ES_PENDING");
}

static es_host_t host = {
    .abi = ES_PLUGIN_ABI_VERSION,
    .size = sizeof(es_host_t),
    .instance_name = "orders",
    .state_dir = "/nonexistent",
    .log = fuzz_host_log,
    .counter_add = fuzz_counter_add,
    .complete = host_complete,
    .emit = host_emit,
    .state_get = st_get,
    .state_put = st_put,
    .state_delete = st_delete,
    .state_begin = st_begin,
    .state_commit = st_commit,
    .state_rollback = st_rollback,
    .free = free,
};

static void store_clear(void)
{
    FUZZ_CHECK(!store.in_txn, "a transaction left open");
    for (size_t i = 0; i < store.n; i++) {
        cJSON *v = cJSON_ParseWithLength(store.kv[i].val, store.kv[i].len);
        FUZZ_CHECK(!strncmp(store.kv[i].key, "o:", 2) ? cJSON_IsObject(v) : 1,
                   "order record %s is not a JSON object", store.kv[i].key);
        cJSON_Delete(v);
        free(store.kv[i].key);
        free(store.kv[i].val);
    }
    store.n = 0;
}

static const char *attr(const cJSON *ce, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ce, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Order records in the store (the epoch is written on a first delivery,
 * whatever it is). */
static size_t order_keys(void)
{
    size_t n = 0;
    for (size_t i = 0; i < store.n; i++)
        n += !strncmp(store.kv[i].key, "o:", 2);
    return n;
}

/* One record: decoded as the host does, then delivered. */
static void deliver_one(const es_plugin_t *p, void *inst, const char *text,
                        size_t len, int64_t offset)
{
    fuzz_event_t e;
    if (fuzz_event_decode(&e, text, len, 0) != 0)
        return; /* dead-lettered by the host: never delivered */
    es_event_t ev = e.ev;
    ev.tenant = attr(ev.ce, "tenantid");
    ev.topic = ev.type;
    ev.offset = offset;
    ev.timestamp_ms = 1767225600000 + offset;
    ev.route = "orders";
    ev.token = (uint64_t)offset + 1;
    const es_event_t *evs[1] = {&ev};
    es_result_t res[1];
    memset(res, 0, sizeof res);
    size_t orders_before = order_keys(), emitted_before = emitted;
    p->deliver(inst, evs, 1, res);
    FUZZ_CHECK(!store.in_txn, "deliver left a transaction open");
    FUZZ_CHECK(res[0].status >= ES_OK && res[0].status <= ES_FAIL, "status %d",
               (int)res[0].status);
    FUZZ_CHECK(res[0].status != ES_FAIL || res[0].reason[0],
               "failed without a reason");
    /* Readers disagree on a repeated key: refused, nothing done. */
    if (fuzz_has_repeated_key(
            cJSON_GetObjectItemCaseSensitive(ev.ce, "data"))) {
        FUZZ_CHECK(res[0].status == ES_FAIL, "a repeated key in data taken");
        FUZZ_CHECK(order_keys() == orders_before && emitted == emitted_before,
                   "a repeated key in data wrote an order or emitted");
    }
    fuzz_event_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const es_plugin_t *p = es_plugin_entry(ES_PLUGIN_ABI_VERSION);
    cJSON *conf = cJSON_Parse("{\"wait_timeout_ms\":60000}");
    void *inst = NULL;
    char err[256];
    FUZZ_CHECK(p->init(&host, conf, &inst, err, sizeof err) == 0, "init: %s",
               err);
    cJSON_Delete(conf);
    const char *s = (const char *)data, *end = s + size;
    for (int64_t line = 0; s < end && line < 16; line++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t len = (size_t)((nl ? nl : end) - s);
        deliver_one(p, inst, s, len, line);
        s += len + 1;
    }
    p->destroy(inst);
    store_clear();
    return 0;
}
