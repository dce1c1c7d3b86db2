/*
 * Unit tests of the marketplace order handler through its plugin vtable,
 * with a fake host: an in-memory key-value state with undo-log transactions
 * (checked: no nesting, every call ends its transaction), recorded emits
 * and injectable emit/commit/put failures.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <eventstream/plugin.h>

const es_plugin_t *es_plugin_entry(uint32_t host_abi);

/* ------------------------------------------------------------ fake host */

typedef struct kv_s {
    char *key;
    char *val;
    size_t len;
} kv_t;

typedef struct undo_s {
    char *key;
    char *val; /* NULL: key did not exist */
    size_t len;
} undo_t;

typedef struct emit_s {
    char *topic;
    char *key;
    char *json;
    uint64_t parent;
} emit_t;

typedef struct fake_s {
    es_host_t host;
    kv_t kv[512];
    size_t n_kv;
    undo_t undo[64];
    size_t n_undo;
    int in_txn;
    int violations; /* nested begin, commit/rollback without begin */
    emit_t emits[256];
    size_t n_emits;
    int fail_emits;   /* fail the next N emits */
    size_t fail_at;   /* fail once the emit that would be number fail_at */
    int fail_commits; /* fail the next N commits */
    int fail_puts;    /* fail the next N puts */
    char last_log[1024];
    struct {
        char name[32];
        uint64_t v;
    } counters[32];
} fake_t;

static fake_t *F(const es_host_t *h)
{
    return h->opaque;
}

static kv_t *kv_find(fake_t *f, const char *key)
{
    for (size_t i = 0; i < f->n_kv; i++)
        if (strcmp(f->kv[i].key, key) == 0)
            return &f->kv[i];
    return NULL;
}

/* Raw write with no undo record. */
static void kv_set(fake_t *f, const char *key, const char *val, size_t len)
{
    kv_t *e = kv_find(f, key);

    if (!val) {
        if (e) {
            free(e->key);
            free(e->val);
            *e = f->kv[--f->n_kv];
        }
        return;
    }
    if (!e) {
        ck_assert_uint_lt(f->n_kv, 512);
        e = &f->kv[f->n_kv++];
        e->key = strdup(key);
    } else {
        free(e->val);
    }
    e->val = malloc(len + 1);
    memcpy(e->val, val, len);
    e->val[len] = '\0';
    e->len = len;
}

static void undo_record(fake_t *f, const char *key)
{
    kv_t *e = kv_find(f, key);
    undo_t *u;

    if (!f->in_txn)
        return;
    ck_assert_uint_lt(f->n_undo, 64);
    u = &f->undo[f->n_undo++];
    u->key = strdup(key);
    u->val = e ? strndup(e->val, e->len) : NULL;
    u->len = e ? e->len : 0;
}

static void undo_clear(fake_t *f)
{
    for (size_t i = 0; i < f->n_undo; i++) {
        free(f->undo[i].key);
        free(f->undo[i].val);
    }
    f->n_undo = 0;
}

static int fh_get(const es_host_t *h, const char *key, char **value,
                  size_t *len)
{
    kv_t *e = kv_find(F(h), key);

    *value = NULL;
    if (!e)
        return 0;
    *value = malloc(e->len + 1);
    memcpy(*value, e->val, e->len + 1);
    *len = e->len;
    return 1;
}

static int fh_put(const es_host_t *h, const char *key, const void *value,
                  size_t len)
{
    fake_t *f = F(h);

    if (f->fail_puts > 0) {
        f->fail_puts--;
        return -1;
    }
    undo_record(f, key);
    kv_set(f, key, value, len);
    return 0;
}

static int fh_delete(const es_host_t *h, const char *key)
{
    fake_t *f = F(h);

    undo_record(f, key);
    kv_set(f, key, NULL, 0);
    return 0;
}

static int fh_begin(const es_host_t *h)
{
    fake_t *f = F(h);

    if (f->in_txn) {
        f->violations++;
        return -1;
    }
    f->in_txn = 1;
    return 0;
}

static int fh_rollback(const es_host_t *h)
{
    fake_t *f = F(h);

    if (!f->in_txn) {
        f->violations++;
        return -1;
    }
    while (f->n_undo > 0) {
        undo_t *u = &f->undo[--f->n_undo];
        kv_set(f, u->key, u->val, u->len);
        free(u->key);
        free(u->val);
    }
    f->in_txn = 0;
    return 0;
}

static int fh_commit(const es_host_t *h)
{
    fake_t *f = F(h);

    if (!f->in_txn) {
        f->violations++;
        return -1;
    }
    if (f->fail_commits > 0) {
        /* Like SQLite: the transaction stays open; the caller rolls back. */
        f->fail_commits--;
        return -1;
    }
    undo_clear(f);
    f->in_txn = 0;
    return 0;
}

static int fh_emit(const es_host_t *h, uint64_t parent, const char *topic,
                   const void *key, size_t key_len, const char *json,
                   size_t json_len, char *errstr, size_t errstr_size)
{
    fake_t *f = F(h);
    emit_t *e;

    if (f->fail_at && f->n_emits + 1 == f->fail_at) {
        f->fail_at = 0;
        f->fail_emits = 1;
    }
    if (f->fail_emits > 0) {
        f->fail_emits--;
        snprintf(errstr, errstr_size, "queue full");
        return -1;
    }
    ck_assert_uint_lt(f->n_emits, 256);
    e = &f->emits[f->n_emits++];
    e->topic = strdup(topic);
    e->key = strndup(key, key_len);
    e->json = strndup(json, json_len);
    e->parent = parent;
    return 0;
}

static void fh_log(const es_host_t *h, es_log_level_t level, const char *fmt,
                   ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(F(h)->last_log, sizeof(F(h)->last_log), fmt, ap);
    va_end(ap);
}

static void fh_counter(const es_host_t *h, const char *name, uint64_t d)
{
    fake_t *f = F(h);

    for (int i = 0; i < 32; i++) {
        if (f->counters[i].name[0] == '\0')
            snprintf(f->counters[i].name, sizeof(f->counters[i].name), "%s",
                     name);
        if (strcmp(f->counters[i].name, name) == 0) {
            f->counters[i].v += d;
            return;
        }
    }
}

static uint64_t counter(fake_t *f, const char *name)
{
    for (int i = 0; i < 32; i++)
        if (strcmp(f->counters[i].name, name) == 0)
            return f->counters[i].v;
    return 0;
}

static void fh_complete(const es_host_t *h, uint64_t t, es_status_t s,
                        const char *r)
{
    ck_abort_msg("the handler never answers ES_PENDING");
}

static fake_t *fake_new(void)
{
    fake_t *f = calloc(1, sizeof(*f));

    f->host.abi = ES_PLUGIN_ABI_VERSION;
    f->host.size = sizeof(es_host_t);
    f->host.instance_name = "orders";
    f->host.state_dir = "/nonexistent";
    f->host.log = fh_log;
    f->host.counter_add = fh_counter;
    f->host.complete = fh_complete;
    f->host.emit = fh_emit;
    f->host.state_get = fh_get;
    f->host.state_put = fh_put;
    f->host.state_delete = fh_delete;
    f->host.state_begin = fh_begin;
    f->host.state_commit = fh_commit;
    f->host.state_rollback = fh_rollback;
    f->host.free = free;
    f->host.opaque = f;
    return f;
}

static void fake_destroy(fake_t *f)
{
    for (size_t i = 0; i < f->n_kv; i++) {
        free(f->kv[i].key);
        free(f->kv[i].val);
    }
    for (size_t i = 0; i < f->n_emits; i++) {
        free(f->emits[i].topic);
        free(f->emits[i].key);
        free(f->emits[i].json);
    }
    undo_clear(f);
    free(f);
}

/* ----------------------------------------------------- plugin + events */

typedef struct fx_s {
    fake_t *f;
    const es_plugin_t *p;
    void *inst;
    int64_t next_offset;
} fx_t;

static void *instance_new(fake_t *f, const char *config_json)
{
    const es_plugin_t *p = es_plugin_entry(ES_PLUGIN_ABI_VERSION);
    cJSON *conf = config_json ? cJSON_Parse(config_json) : NULL;
    char err[256] = "";
    void *inst = NULL;

    ck_assert_int_eq(p->init(&f->host, conf, &inst, err, sizeof(err)), 0);
    cJSON_Delete(conf);
    return inst;
}

static fx_t fx_new(const char *config_json)
{
    fx_t fx = {.f = fake_new(), .p = es_plugin_entry(ES_PLUGIN_ABI_VERSION)};

    fx.inst = instance_new(fx.f, config_json ? config_json
                                             : "{\"wait_timeout_ms\":60000}");
    return fx;
}

static void fx_destroy(fx_t *fx)
{
    fx->p->destroy(fx->inst);
    fake_destroy(fx->f);
}

typedef struct tev_s {
    es_event_t ev;
    cJSON *ce;
    char *json;
} tev_t;

static const char *source_of(const char *type)
{
    return strstr(type, ".wallet.") ? "wallet-svc" : "marketplace-svc";
}

/* An input event as the host would hand it over. */
static tev_t *tev_new(fx_t *fx, const char *tenant, const char *type,
                      const char *id, const char *data)
{
    tev_t *t = calloc(1, sizeof(*t));
    char *json = NULL;

    ck_assert_int_ge(
        asprintf(&json,
                 "{\"specversion\":\"1.0\",\"id\":\"%s\",\"type\":\"%s\","
                 "\"source\":\"%s\",\"time\":\"2026-03-02T12:00:00.000Z\","
                 "\"datacontenttype\":\"application/json\","
                 "\"tenantid\":\"%s\",\"data\":%s}",
                 id, type, source_of(type), tenant, data),
        0);
    t->json = json;
    t->ce = cJSON_Parse(json);
    ck_assert_msg(t->ce != NULL, "bad test event %s", json);
    t->ev.json = json;
    t->ev.json_len = strlen(json);
    t->ev.ce = t->ce;
    t->ev.id = cJSON_GetObjectItem(t->ce, "id")->valuestring;
    t->ev.type = cJSON_GetObjectItem(t->ce, "type")->valuestring;
    t->ev.source = cJSON_GetObjectItem(t->ce, "source")->valuestring;
    t->ev.time = cJSON_GetObjectItem(t->ce, "time")->valuestring;
    t->ev.tenant = cJSON_GetObjectItem(t->ce, "tenantid")->valuestring;
    t->ev.topic = t->ev.type;
    t->ev.partition = 0;
    t->ev.offset = fx->next_offset++;
    t->ev.token = (uint64_t)t->ev.offset + 1000;
    t->ev.attempt = 1;
    t->ev.route = "orders";
    return t;
}

static void tev_free(tev_t *t)
{
    if (!t)
        return;
    cJSON_Delete(t->ce);
    free(t->json);
    free(t);
}

static es_status_t deliver(fx_t *fx, tev_t *t, char reason[256])
{
    const es_event_t *evs[1] = {&t->ev};
    es_result_t res[1];

    memset(res, 0, sizeof(res));
    fx->p->deliver(fx->inst, evs, 1, res);
    ck_assert_msg(!fx->f->in_txn, "handler left a transaction open");
    ck_assert_int_eq(fx->f->violations, 0);
    ck_assert_msg(res[0].status >= ES_OK && res[0].status <= ES_FAIL,
                  "bad status %d", res[0].status);
    if (res[0].status == ES_FAIL)
        ck_assert_msg(res[0].reason[0] != '\0', "FAIL without a reason");
    if (reason)
        memcpy(reason, res[0].reason, 256);
    return res[0].status;
}

/* Builds, delivers and frees one event. */
static es_status_t send(fx_t *fx, const char *tenant, const char *type,
                        const char *id, const char *data, char reason[256])
{
    tev_t *t = tev_new(fx, tenant, type, id, data);
    es_status_t st = deliver(fx, t, reason);

    tev_free(t);
    return st;
}

#define T_QUOTE "eventzr.marketplace.quote.accepted.v1"
#define T_PAY "eventzr.wallet.payment.completed.v1"
#define T_ESCROW "eventzr.wallet.escrow.released.v1"
#define T_CANCEL "eventzr.marketplace.order.cancel.requested.v1"
#define T_DOPEN "eventzr.marketplace.dispute.open.requested.v1"
#define T_DRES "eventzr.marketplace.dispute.resolve.requested.v1"

#define O_CREATED "eventzr.marketplace.order.created.v1"
#define O_COMPLETED "eventzr.marketplace.order.completed.v1"
#define O_CANCELLED "eventzr.marketplace.order.cancelled.v1"
#define O_DOPENED "eventzr.marketplace.dispute.opened.v1"
#define O_DRESOLVED "eventzr.marketplace.dispute.resolved.v1"

#define D_QUOTE(ord)                                                           \
    "{\"id\":\"quote-1\",\"listingId\":\"listing-1\",\"buyerId\":\"buyer-"     \
    "1\",\"sellerId\":\"seller-1\",\"amount\":5000,\"currency\":\"USD\","      \
    "\"orderId\":\"" ord "\"}"
#define D_PAY(ord)                                                             \
    "{\"id\":\"pay-1\",\"orderId\":\"" ord "\",\"amount\":5000,"               \
    "\"currency\":\"USD\",\"method\":\"card\"}"
#define D_ESCROW(ord)                                                          \
    "{\"id\":\"esc-1\",\"orderId\":\"" ord "\",\"amount\":4500,"               \
    "\"currency\":\"USD\",\"paymentId\":\"pay-1\"}"
#define D_CANCEL(ord)                                                          \
    "{\"orderId\":\"" ord "\",\"reason\":\"buyer_request\","                   \
    "\"requestedBy\":\"buyer-1\"}"
#define D_DOPEN(ord)                                                           \
    "{\"id\":\"dsp-1\",\"orderId\":\"" ord "\",\"reason\":\"not_"              \
    "delivered\",\"evidence\":[\"https://x/1.png\"],\"openedBy\":\"buyer-"     \
    "1\"}"
#define D_DRES(ord, outcome)                                                   \
    "{\"id\":\"dsp-1\",\"orderId\":\"" ord "\",\"outcome\":\"" outcome         \
    "\",\"notes\":\"checked\",\"resolvedBy\":\"admin-1\"}"

/* The stored order record, parsed (NULL when there is none). */
static cJSON *order_record(fx_t *fx, const char *tenant, const char *id)
{
    char key[512];
    kv_t *e;

    snprintf(key, sizeof(key), "o:%zu:%s:%s", strlen(tenant), tenant, id);
    e = kv_find(fx->f, key);
    return e ? cJSON_Parse(e->val) : NULL;
}

static const char *order_status(fx_t *fx, const char *tenant, const char *id)
{
    static char buf[32];
    cJSON *o = order_record(fx, tenant, id);

    snprintf(buf, sizeof(buf), "%s",
             o ? cJSON_GetObjectItem(o, "status")->valuestring : "unknown");
    cJSON_Delete(o);
    return buf;
}

static cJSON *emitted(fx_t *fx, size_t i)
{
    ck_assert_uint_lt(i, fx->f->n_emits);
    return cJSON_Parse(fx->f->emits[i].json);
}

static const char *emitted_type(fx_t *fx, size_t i)
{
    static char buf[128];
    cJSON *ce = emitted(fx, i);

    snprintf(buf, sizeof(buf), "%s",
             cJSON_GetObjectItem(ce, "type")->valuestring);
    cJSON_Delete(ce);
    return buf;
}

static size_t count_keys(fx_t *fx, char tag)
{
    size_t n = 0;
    for (size_t i = 0; i < fx->f->n_kv; i++)
        n += fx->f->kv[i].key[0] == tag && fx->f->kv[i].key[1] == ':';
    return n;
}

/* ------------------------------------------------------------------ tests */

START_TEST(test_descriptor)
{
    const es_plugin_t *p = es_plugin_entry(ES_PLUGIN_ABI_VERSION);

    ck_assert_uint_eq(p->abi, ES_PLUGIN_ABI_VERSION);
    ck_assert_uint_eq(p->size, sizeof(es_plugin_t));
    ck_assert_str_eq(p->name, "marketplace");
    ck_assert_int_eq(p->kind, ES_KIND_HANDLER);
    ck_assert_ptr_nonnull(p->init);
    ck_assert_ptr_nonnull(p->deliver);
    ck_assert_ptr_nonnull(p->destroy);
    ck_assert_ptr_null(p->filter);
    p->destroy(NULL);
}
END_TEST

static void expect_config_error(const char *json, const char *needle)
{
    const es_plugin_t *p = es_plugin_entry(ES_PLUGIN_ABI_VERSION);
    fake_t *f = fake_new();
    cJSON *conf = cJSON_Parse(json);
    char err[256] = "";
    void *inst = NULL;

    ck_assert_ptr_nonnull(conf);
    ck_assert_int_ne(p->init(&f->host, conf, &inst, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, needle), "config %s: error \"%s\" lacks \"%s\"",
                  json, err, needle);
    cJSON_Delete(conf);
    fake_destroy(f);
}

START_TEST(test_config)
{
    fake_t *f = fake_new();
    const es_plugin_t *p = es_plugin_entry(ES_PLUGIN_ABI_VERSION);
    void *inst = NULL;
    char err[256];

    /* No config at all is fine: every key has a default. */
    ck_assert_int_eq(p->init(&f->host, NULL, &inst, err, sizeof(err)), 0);
    p->destroy(inst);
    fake_destroy(f);

    expect_config_error("{\"sauce\":1}", "unknown config key \"sauce\"");
    expect_config_error("{\"source\":\"\"}", "source");
    expect_config_error("{\"source\":5}", "source");
    expect_config_error("{\"topic_prefix\":[]}", "topic_prefix");
    expect_config_error("{\"wait_timeout_ms\":-1}", "wait_timeout_ms");
    expect_config_error("{\"wait_timeout_ms\":1.5}", "wait_timeout_ms");
    expect_config_error("{\"wait_max_attempts\":\"3\"}", "wait_max_attempts");
    expect_config_error("{\"topics\":[]}", "topics");
    expect_config_error("{\"topics\":{\"order.created\":\"x\"}}",
                        "unknown event type \"order.created\"");
    expect_config_error("{\"topics\":{\"" O_CREATED "\":1}}", O_CREATED);
    expect_config_error("[1]", "object");
}
END_TEST

/* The full happy path, with every envelope field of the first emit. */
START_TEST(test_lifecycle)
{
    fx_t fx = fx_new(NULL);
    cJSON *ce, *data;
    char reason[256];

    ck_assert_int_eq(send(&fx, "t1", T_QUOTE, "ev-q1",
                          "{\"id\":\"quote-1\",\"listingId\":\"listing-1\","
                          "\"buyerId\":\"buyer-1\",\"sellerId\":\"seller-1\","
                          "\"amount\":5000,\"currency\":\"USD\"}",
                          reason),
                     ES_OK);
    ck_assert_uint_eq(fx.f->n_emits, 1);
    ck_assert_str_eq(fx.f->emits[0].topic, O_CREATED);
    ck_assert_str_eq(fx.f->emits[0].key, "t1");
    ck_assert_uint_eq(fx.f->emits[0].parent, 1000);
    ce = emitted(&fx, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(ce, "specversion")->valuestring,
                     "1.0");
    /* uuid.uuid5(ns, "t1\nmarketplace-svc\nev-q1\n<type>") in Python. */
    ck_assert_str_eq(cJSON_GetObjectItem(ce, "id")->valuestring,
                     "06e5e12a-881d-5bee-b46e-a6d851593ab0");
    ck_assert_str_eq(cJSON_GetObjectItem(ce, "type")->valuestring, O_CREATED);
    ck_assert_str_eq(cJSON_GetObjectItem(ce, "source")->valuestring,
                     "marketplace-svc");
    ck_assert_str_eq(cJSON_GetObjectItem(ce, "time")->valuestring,
                     "2026-03-02T12:00:00.000Z");
    ck_assert_str_eq(cJSON_GetObjectItem(ce, "datacontenttype")->valuestring,
                     "application/json");
    ck_assert_str_eq(cJSON_GetObjectItem(ce, "tenantid")->valuestring, "t1");
    /* The order id is derived from the quote: uuid5(ns, "order\nt1\n..."). */
    ck_assert_str_eq(cJSON_GetObjectItem(ce, "subject")->valuestring,
                     "order:5b1be13f-f4e4-5109-a822-acce9647cf99");
    data = cJSON_GetObjectItem(ce, "data");
    ck_assert_str_eq(cJSON_GetObjectItem(data, "id")->valuestring,
                     "5b1be13f-f4e4-5109-a822-acce9647cf99");
    ck_assert_str_eq(cJSON_GetObjectItem(data, "quoteId")->valuestring,
                     "quote-1");
    ck_assert_str_eq(cJSON_GetObjectItem(data, "buyerId")->valuestring,
                     "buyer-1");
    ck_assert_str_eq(cJSON_GetObjectItem(data, "sellerId")->valuestring,
                     "seller-1");
    ck_assert_int_eq(cJSON_GetObjectItem(data, "amount")->valueint, 5000);
    ck_assert_str_eq(cJSON_GetObjectItem(data, "currency")->valuestring, "USD");
    ck_assert_ptr_nonnull(strstr(fx.f->emits[0].json, "\"amount\":5000,"));
    cJSON_Delete(ce);

    ck_assert_int_eq(send(&fx, "t1", T_PAY, "ev-p1",
                          D_PAY("5b1be13f-f4e4-5109-a822-acce9647cf99"),
                          reason),
                     ES_OK);
    ck_assert_uint_eq(fx.f->n_emits, 1); /* payment emits nothing */
    ck_assert_str_eq(
        order_status(&fx, "t1", "5b1be13f-f4e4-5109-a822-acce9647cf99"),
        "paid");
    ck_assert_int_eq(send(&fx, "t1", T_ESCROW, "ev-e1",
                          D_ESCROW("5b1be13f-f4e4-5109-a822-acce9647cf99"),
                          reason),
                     ES_OK);
    ck_assert_uint_eq(fx.f->n_emits, 2);
    ck_assert_str_eq(fx.f->emits[1].topic, O_COMPLETED);
    ce = emitted(&fx, 1);
    data = cJSON_GetObjectItem(ce, "data");
    ck_assert_str_eq(cJSON_GetObjectItem(data, "status")->valuestring,
                     "completed");
    ck_assert_int_eq(cJSON_GetObjectItem(data, "finalAmount")->valueint, 4500);
    ck_assert_str_eq(cJSON_GetObjectItem(data, "completedAt")->valuestring,
                     "2026-03-02T12:00:00.000Z");
    ck_assert_str_eq(cJSON_GetObjectItem(data, "paymentId")->valuestring,
                     "pay-1");
    ck_assert_str_eq(cJSON_GetObjectItem(data, "escrowId")->valuestring,
                     "esc-1");
    cJSON_Delete(ce);
    ck_assert_str_eq(
        order_status(&fx, "t1", "5b1be13f-f4e4-5109-a822-acce9647cf99"),
        "completed");
    ck_assert_uint_eq(count_keys(&fx, 'w'), 0);
    ck_assert_uint_eq(counter(fx.f, "transitions"), 3);
    fx_destroy(&fx);
}
END_TEST

/*
 * Every (state, input) pair against an expectation table written here
 * independently of the plugin's own table.
 */
enum { S_NONE, S_CREATED, S_PAID, S_DISPUTED, S_COMPLETED, S_CANCELLED, S_N };
enum { I_QUOTE, I_PAY, I_ESCROW, I_CANCEL, I_DOPEN, I_DREL, I_DREF, I_N };

static const char *const s_names[S_N] = {"unknown",  "created",   "paid",
                                         "disputed", "completed", "cancelled"};

typedef struct expect_s {
    es_status_t st;
    int next;            /* for ES_OK */
    const char *emit[2]; /* types emitted, in order */
} expect_t;

/* clang-format off */
#define OK(n, ...) {ES_OK, n, {__VA_ARGS__}}
#define WAIT {ES_RETRY, -1, {NULL}}
#define ILL {ES_FAIL, -1, {NULL}}
static const expect_t expect[S_N][I_N] = {
    /*             quote  pay   escrow  cancel  dispute.open  release refund */
    [S_NONE]      = {OK(S_CREATED, O_CREATED), WAIT, WAIT, WAIT, WAIT, WAIT,
                     WAIT},
    [S_CREATED]   = {ILL, OK(S_PAID, NULL), WAIT,
                     OK(S_CANCELLED, O_CANCELLED), WAIT, ILL, ILL},
    [S_PAID]      = {ILL, ILL, OK(S_COMPLETED, O_COMPLETED),
                     OK(S_CANCELLED, O_CANCELLED), OK(S_DISPUTED, O_DOPENED),
                     ILL, ILL},
    [S_DISPUTED]  = {ILL, ILL, ILL, ILL, ILL, OK(S_PAID, O_DRESOLVED),
                     OK(S_CANCELLED, O_DRESOLVED, O_CANCELLED)},
    [S_COMPLETED] = {ILL, ILL, ILL, ILL, ILL, ILL, ILL},
    [S_CANCELLED] = {ILL, ILL, ILL, ILL, ILL, ILL, ILL},
};
/* clang-format on */

static const struct {
    const char *type;
    const char *data;
} inputs[I_N] = {
    [I_QUOTE] = {T_QUOTE, D_QUOTE("ord-1")},
    [I_PAY] = {T_PAY, D_PAY("ord-1")},
    [I_ESCROW] = {T_ESCROW, D_ESCROW("ord-1")},
    [I_CANCEL] = {T_CANCEL, D_CANCEL("ord-1")},
    [I_DOPEN] = {T_DOPEN, D_DOPEN("ord-1")},
    [I_DREL] = {T_DRES, D_DRES("ord-1", "release_to_seller")},
    [I_DREF] = {T_DRES, D_DRES("ord-1", "refund_buyer")},
};

/* The inputs that bring a new order to each state. */
static const int paths[S_N][4] = {
    [S_NONE] = {-1},
    [S_CREATED] = {I_QUOTE, -1},
    [S_PAID] = {I_QUOTE, I_PAY, -1},
    [S_DISPUTED] = {I_QUOTE, I_PAY, I_DOPEN, -1},
    [S_COMPLETED] = {I_QUOTE, I_PAY, I_ESCROW, -1},
    [S_CANCELLED] = {I_QUOTE, I_CANCEL, -1},
};

START_TEST(test_every_transition)
{
    int s = _i / I_N, in = _i % I_N;
    const expect_t *x = &expect[s][in];
    fx_t fx = fx_new(NULL);
    char reason[256], id[32];
    size_t before;

    for (int k = 0; paths[s][k] >= 0; k++) {
        snprintf(id, sizeof(id), "setup-%d", k);
        ck_assert_int_eq(send(&fx, "t1", inputs[paths[s][k]].type, id,
                              inputs[paths[s][k]].data, reason),
                         ES_OK);
    }
    ck_assert_str_eq(order_status(&fx, "t1", "ord-1"), s_names[s]);
    before = fx.f->n_emits;
    ck_assert_int_eq(send(&fx, "t1", inputs[in].type, "ev-under-test",
                          inputs[in].data, reason),
                     x->st);
    if (x->st == ES_OK) {
        size_t n = (x->emit[0] != NULL) + (x->emit[1] != NULL);

        ck_assert_str_eq(order_status(&fx, "t1", "ord-1"), s_names[x->next]);
        ck_assert_uint_eq(fx.f->n_emits, before + n);
        for (size_t k = 0; k < n; k++) {
            ck_assert_str_eq(emitted_type(&fx, before + k), x->emit[k]);
            ck_assert_str_eq(fx.f->emits[before + k].topic, x->emit[k]);
            ck_assert_str_eq(fx.f->emits[before + k].key, "t1");
        }
    } else {
        /* Nothing emitted, nothing changed. */
        ck_assert_uint_eq(fx.f->n_emits, before);
        ck_assert_str_eq(order_status(&fx, "t1", "ord-1"), s_names[s]);
    }
    if (x->st == ES_FAIL) {
        /* The reason names the order, its state and the event. */
        ck_assert_msg(strstr(reason, "ord-1") && strstr(reason, s_names[s]) &&
                          strstr(reason, inputs[in].type) &&
                          strstr(reason, "ev-under-test"),
                      "reason: %s", reason);
        ck_assert_ptr_nonnull(strstr(reason, "illegal transition"));
    }
    if (x->st == ES_RETRY)
        ck_assert_ptr_nonnull(strstr(reason, "ord-1"));
    fx_destroy(&fx);
}
END_TEST

START_TEST(test_wait_expires)
{
    fx_t fx = fx_new("{\"wait_timeout_ms\":150}");
    tev_t *t = tev_new(&fx, "t1", T_PAY, "ev-p1", D_PAY("ord-9"));
    char reason[256];

    ck_assert_int_eq(deliver(&fx, t, reason), ES_RETRY);
    ck_assert_ptr_nonnull(strstr(reason, "ord-9"));
    ck_assert_uint_eq(count_keys(&fx, 'w'), 1);
    t->ev.attempt = 2;
    ck_assert_int_eq(deliver(&fx, t, reason), ES_RETRY);
    nanosleep(&(struct timespec){0, 200 * 1000000L}, NULL);
    t->ev.attempt = 3;
    ck_assert_int_eq(deliver(&fx, t, reason), ES_FAIL);
    ck_assert_msg(strncmp(reason, "unknown order ord-9", 19) == 0, "%s",
                  reason);
    ck_assert_ptr_nonnull(strstr(reason, "ev-p1"));
    ck_assert_uint_eq(count_keys(&fx, 'w'), 0);
    ck_assert_uint_eq(fx.f->n_emits, 0);
    tev_free(t);
    fx_destroy(&fx);

    /* The first-seen time is durable: a new instance keeps the clock. */
    fx = fx_new("{\"wait_timeout_ms\":150}");
    t = tev_new(&fx, "t1", T_ESCROW, "ev-e1", D_ESCROW("ord-8"));
    ck_assert_int_eq(deliver(&fx, t, reason), ES_RETRY);
    fx.p->destroy(fx.inst);
    fx.inst = instance_new(fx.f, "{\"wait_timeout_ms\":150}");
    nanosleep(&(struct timespec){0, 200 * 1000000L}, NULL);
    ck_assert_int_eq(deliver(&fx, t, reason), ES_FAIL);
    ck_assert_ptr_nonnull(strstr(reason, "unknown order ord-8"));
    tev_free(t);
    fx_destroy(&fx);
}
END_TEST

START_TEST(test_wait_max_attempts)
{
    fx_t fx = fx_new("{\"wait_timeout_ms\":600000,\"wait_max_attempts\":3}");
    tev_t *t = tev_new(&fx, "t1", T_ESCROW, "ev-e1", D_ESCROW("ord-1"));
    char reason[256];

    ck_assert_int_eq(send(&fx, "t1", T_QUOTE, "ev-q", D_QUOTE("ord-1"), NULL),
                     ES_OK);
    ck_assert_int_eq(deliver(&fx, t, reason), ES_RETRY);
    t->ev.attempt = 2;
    ck_assert_int_eq(deliver(&fx, t, reason), ES_RETRY);
    t->ev.attempt = 3;
    ck_assert_int_eq(deliver(&fx, t, reason), ES_FAIL);
    ck_assert_msg(strstr(reason, "order ord-1 is still created") &&
                      strstr(reason, "attempt 3"),
                  "%s", reason);
    tev_free(t);
    fx_destroy(&fx);
}
END_TEST

/* Wallet events overtaking the order, and escrow overtaking payment. */
START_TEST(test_out_of_order)
{
    fx_t fx = fx_new(NULL);
    tev_t *pay = tev_new(&fx, "t1", T_PAY, "ev-p", D_PAY("ord-1"));
    tev_t *esc = tev_new(&fx, "t1", T_ESCROW, "ev-e", D_ESCROW("ord-1"));
    tev_t *dsp = tev_new(&fx, "t1", T_DOPEN, "ev-d", D_DOPEN("ord-1"));

    ck_assert_int_eq(deliver(&fx, esc, NULL), ES_RETRY);
    ck_assert_int_eq(deliver(&fx, pay, NULL), ES_RETRY);
    ck_assert_int_eq(send(&fx, "t1", T_QUOTE, "ev-q", D_QUOTE("ord-1"), NULL),
                     ES_OK);
    ck_assert_int_eq(deliver(&fx, esc, NULL), ES_RETRY); /* not paid yet */
    ck_assert_int_eq(deliver(&fx, dsp, NULL), ES_RETRY);
    ck_assert_str_eq(order_status(&fx, "t1", "ord-1"), "created");
    pay->ev.attempt++;
    ck_assert_int_eq(deliver(&fx, pay, NULL), ES_OK);
    esc->ev.attempt++;
    ck_assert_int_eq(deliver(&fx, esc, NULL), ES_OK);
    ck_assert_str_eq(order_status(&fx, "t1", "ord-1"), "completed");
    /* The dispute that waited is now illegal: the order completed. */
    ck_assert_int_eq(deliver(&fx, dsp, NULL), ES_FAIL);
    ck_assert_uint_eq(fx.f->n_emits, 2);
    ck_assert_str_eq(emitted_type(&fx, 0), O_CREATED);
    ck_assert_str_eq(emitted_type(&fx, 1), O_COMPLETED);
    ck_assert_uint_eq(count_keys(&fx, 'w'), 0);
    tev_free(pay);
    tev_free(esc);
    tev_free(dsp);
    fx_destroy(&fx);
}
END_TEST

START_TEST(test_duplicates)
{
    fx_t fx = fx_new(NULL);
    tev_t *q = tev_new(&fx, "t1", T_QUOTE, "ev-q", D_QUOTE("ord-1"));
    tev_t *p = tev_new(&fx, "t1", T_PAY, "ev-p", D_PAY("ord-1"));
    tev_t *e = tev_new(&fx, "t1", T_ESCROW, "ev-e", D_ESCROW("ord-1"));
    cJSON *before, *after;
    char reason[256];

    ck_assert_int_eq(deliver(&fx, q, NULL), ES_OK);
    ck_assert_int_eq(deliver(&fx, p, NULL), ES_OK);
    ck_assert_int_eq(deliver(&fx, e, NULL), ES_OK);
    ck_assert_uint_eq(fx.f->n_emits, 2);
    before = order_record(&fx, "t1", "ord-1");

    /* The same events again at other offsets (a producer retry upstream):
     * no-ops, even though as transitions they would now be illegal. */
    for (int round = 0; round < 2; round++) {
        tev_t *dups[3] = {
            tev_new(&fx, "t1", T_QUOTE, "ev-q", D_QUOTE("ord-1")),
            tev_new(&fx, "t1", T_PAY, "ev-p", D_PAY("ord-1")),
            tev_new(&fx, "t1", T_ESCROW, "ev-e", D_ESCROW("ord-1")),
        };
        for (int i = 0; i < 3; i++) {
            ck_assert_int_eq(deliver(&fx, dups[i], reason), ES_OK);
            tev_free(dups[i]);
        }
    }
    ck_assert_uint_eq(fx.f->n_emits, 2);
    ck_assert_uint_eq(counter(fx.f, "duplicates"), 6);
    after = order_record(&fx, "t1", "ord-1");
    ck_assert_msg(cJSON_Compare(before, after, 1), "duplicate changed state");
    cJSON_Delete(before);
    cJSON_Delete(after);

    /* A fresh redelivery of the same record in the same incarnation: our
     * producer still holds its events, nothing is emitted. */
    ck_assert_int_eq(deliver(&fx, e, NULL), ES_OK);
    ck_assert_uint_eq(fx.f->n_emits, 2);
    /* The host running the handler again for a delivered record (attempt
     * 2: an emitted event was not acknowledged) re-publishes exactly the
     * recorded event: same id, same bytes. */
    e->ev.token = 77;
    e->ev.attempt = 2;
    ck_assert_int_eq(deliver(&fx, e, NULL), ES_OK);
    ck_assert_uint_eq(fx.f->n_emits, 3);
    ck_assert_str_eq(fx.f->emits[2].json, fx.f->emits[1].json);
    ck_assert_str_eq(fx.f->emits[2].topic, fx.f->emits[1].topic);
    ck_assert_uint_eq(fx.f->emits[2].parent, 77);
    ck_assert_uint_eq(counter(fx.f, "republished"), 1);
    p->ev.attempt = 2;
    ck_assert_int_eq(deliver(&fx, p, NULL), ES_OK); /* it emitted nothing */
    ck_assert_uint_eq(fx.f->n_emits, 3);

    /* The same event id in another tenant is another event. */
    ck_assert_int_eq(send(&fx, "t2", T_QUOTE, "ev-q", D_QUOTE("ord-1"), NULL),
                     ES_OK);
    ck_assert_uint_eq(fx.f->n_emits, 4);
    ck_assert_str_ne(fx.f->emits[3].json, fx.f->emits[0].json);
    tev_free(q);
    tev_free(p);
    tev_free(e);
    fx_destroy(&fx);
}
END_TEST

/* A new instance on the same state: keeps orders, re-emits nothing. */
START_TEST(test_restart)
{
    fx_t fx = fx_new(NULL);
    const char *order = "ord-1";
    tev_t *q = tev_new(&fx, "t1", T_QUOTE, "ev-q", D_QUOTE("ord-1"));
    char reason[256];

    ck_assert_int_eq(deliver(&fx, q, NULL), ES_OK);
    ck_assert_int_eq(send(&fx, "t1", T_PAY, "ev-p", D_PAY("ord-1"), NULL),
                     ES_OK);
    ck_assert_int_eq(send(&fx, "t2", T_QUOTE, "ev-q", D_QUOTE("ord-1"), NULL),
                     ES_OK);
    fx.p->destroy(fx.inst); /* clean shutdown */
    fx.inst = instance_new(fx.f, "{}");

    /* The uncommitted tail redelivered after a clean restart (same
     * records), and replays at other offsets: nothing emitted twice. */
    ck_assert_int_eq(deliver(&fx, q, NULL), ES_OK);
    ck_assert_int_eq(send(&fx, "t1", T_QUOTE, "ev-q", D_QUOTE("ord-1"), NULL),
                     ES_OK);
    ck_assert_int_eq(send(&fx, "t1", T_PAY, "ev-p", D_PAY("ord-1"), NULL),
                     ES_OK);
    ck_assert_int_eq(send(&fx, "t2", T_QUOTE, "ev-q", D_QUOTE("ord-1"), NULL),
                     ES_OK);
    ck_assert_uint_eq(fx.f->n_emits, 2);
    ck_assert_uint_eq(counter(fx.f, "duplicates"), 4);
    ck_assert_str_eq(order_status(&fx, "t1", order), "paid");
    ck_assert_str_eq(order_status(&fx, "t2", order), "created");
    /* And carries on where it stopped. */
    ck_assert_int_eq(
        send(&fx, "t1", T_ESCROW, "ev-e", D_ESCROW("ord-1"), reason), ES_OK);
    ck_assert_int_eq(
        send(&fx, "t2", T_ESCROW, "ev-e", D_ESCROW("ord-1"), reason),
        ES_RETRY); /* t2's order is not paid */
    ck_assert_uint_eq(fx.f->n_emits, 3);
    ck_assert_str_eq(emitted_type(&fx, 2), O_COMPLETED);
    ck_assert_str_eq(fx.f->emits[2].key, "t1");
    tev_free(q);
    fx_destroy(&fx);
}
END_TEST

/* After a crash (no destroy) a redelivered record re-publishes its events,
 * identical, because the dead producer may have lost them. */
START_TEST(test_crash_restart)
{
    fx_t fx = fx_new(NULL);
    tev_t *q = tev_new(&fx, "t1", T_QUOTE, "ev-q", D_QUOTE("ord-1"));
    void *crashed = fx.inst;

    ck_assert_int_eq(deliver(&fx, q, NULL), ES_OK);
    fx.inst = instance_new(fx.f, "{}"); /* the old one never destroyed */
    ck_assert_int_eq(deliver(&fx, q, NULL), ES_OK);
    ck_assert_uint_eq(fx.f->n_emits, 2);
    ck_assert_str_eq(fx.f->emits[0].json, fx.f->emits[1].json);
    ck_assert_str_eq(fx.f->emits[0].key, fx.f->emits[1].key);
    /* A copy at another offset is still a no-op. */
    ck_assert_int_eq(send(&fx, "t1", T_QUOTE, "ev-q", D_QUOTE("ord-1"), NULL),
                     ES_OK);
    ck_assert_uint_eq(fx.f->n_emits, 2);
    ck_assert_str_eq(order_status(&fx, "t1", "ord-1"), "created");
    fx.p->destroy(crashed);
    tev_free(q);
    fx_destroy(&fx);
}
END_TEST

/* Without a working state store nothing is handled. */
START_TEST(test_state_unavailable)
{
    fx_t fx = fx_new(NULL);
    char reason[256];

    fx.f->fail_puts = 1;
    ck_assert_int_eq(send(&fx, "t1", T_QUOTE, "ev-q", D_QUOTE("ord-1"), reason),
                     ES_RETRY);
    ck_assert_ptr_nonnull(strstr(reason, "state"));
    ck_assert_uint_eq(fx.f->n_emits, 0);
    ck_assert_int_eq(send(&fx, "t1", T_QUOTE, "ev-q", D_QUOTE("ord-1"), reason),
                     ES_OK);
    ck_assert_uint_eq(fx.f->n_emits, 1);
    fx_destroy(&fx);
}
END_TEST

/* A failed emit or commit leaves no trace in state; the retry emits the
 * same deterministic id. */
START_TEST(test_atomicity)
{
    fx_t fx = fx_new(NULL);
    tev_t *q = tev_new(&fx, "t1", T_QUOTE, "ev-q", D_QUOTE("ord-1"));
    char reason[256];

    fx.f->fail_emits = 1;
    ck_assert_int_eq(deliver(&fx, q, reason), ES_RETRY);
    ck_assert_ptr_nonnull(strstr(reason, "queue full"));
    ck_assert_uint_eq(count_keys(&fx, 'o') + count_keys(&fx, 'e'), 0);
    ck_assert_uint_eq(fx.f->n_emits, 0);

    fx.f->fail_commits = 1;
    q->ev.attempt = 2;
    ck_assert_int_eq(deliver(&fx, q, reason), ES_RETRY);
    ck_assert_uint_eq(count_keys(&fx, 'o') + count_keys(&fx, 'e'),
                      0); /* rolled back */
    ck_assert_uint_eq(fx.f->n_emits, 1);

    fx.f->fail_puts = 1;
    q->ev.attempt = 3;
    ck_assert_int_eq(deliver(&fx, q, reason), ES_RETRY);
    ck_assert_uint_eq(count_keys(&fx, 'o') + count_keys(&fx, 'e'), 0);
    ck_assert_uint_eq(fx.f->n_emits, 1);

    q->ev.attempt = 4;
    ck_assert_int_eq(deliver(&fx, q, reason), ES_OK);
    ck_assert_uint_eq(fx.f->n_emits, 2);
    ck_assert_str_eq(fx.f->emits[0].json, fx.f->emits[1].json);
    ck_assert_str_eq(order_status(&fx, "t1", "ord-1"), "created");

    /* A two-event transition whose second emit fails emits both again. */
    ck_assert_int_eq(send(&fx, "t1", T_PAY, "ev-p", D_PAY("ord-1"), NULL),
                     ES_OK);
    ck_assert_int_eq(send(&fx, "t1", T_DOPEN, "ev-d", D_DOPEN("ord-1"), NULL),
                     ES_OK);
    {
        tev_t *r =
            tev_new(&fx, "t1", T_DRES, "ev-r", D_DRES("ord-1", "refund_buyer"));
        size_t n = fx.f->n_emits;

        fx.f->fail_at = n + 2; /* the second emit fails */
        ck_assert_int_eq(deliver(&fx, r, NULL), ES_RETRY);
        ck_assert_uint_eq(fx.f->n_emits, n + 1);
        ck_assert_str_eq(order_status(&fx, "t1", "ord-1"), "disputed");
        ck_assert_int_eq(deliver(&fx, r, NULL), ES_OK);
        ck_assert_uint_eq(fx.f->n_emits, n + 3);
        ck_assert_str_eq(fx.f->emits[n].json, fx.f->emits[n + 1].json);
        ck_assert_str_eq(emitted_type(&fx, n + 2), O_CANCELLED);
        ck_assert_str_eq(order_status(&fx, "t1", "ord-1"), "cancelled");
        tev_free(r);
    }
    tev_free(q);
    fx_destroy(&fx);
}
END_TEST

static void expect_invalid(const char *type, const char *data,
                           const char *needle)
{
    fx_t fx = fx_new(NULL);
    char reason[256];

    ck_assert_int_eq(send(&fx, "t1", T_QUOTE, "ev-q", D_QUOTE("ord-1"), NULL),
                     ES_OK);
    ck_assert_int_eq(send(&fx, "t1", T_PAY, "ev-p0",
                          "{\"id\":\"pay-0\",\"orderId\":\"ord-1\","
                          "\"amount\":5000,\"currency\":\"USD\"}",
                          NULL),
                     ES_OK);
    ck_assert_int_eq(send(&fx, "t1", type, "ev-x", data, reason), ES_FAIL);
    ck_assert_msg(strstr(reason, needle), "reason \"%s\" lacks \"%s\"", reason,
                  needle);
    ck_assert_str_eq(order_status(&fx, "t1", "ord-1"), "paid");
    fx_destroy(&fx);
}

START_TEST(test_amounts)
{
    fx_t fx = fx_new(NULL);
    char reason[256];

    expect_invalid(T_QUOTE,
                   "{\"id\":\"q\",\"listingId\":\"l\",\"buyerId\":\"b\","
                   "\"sellerId\":\"s\",\"amount\":50.5,\"currency\":\"USD\"}",
                   "data.amount must be an integer number of minor units");
    expect_invalid(T_ESCROW,
                   "{\"id\":\"e\",\"orderId\":\"ord-1\",\"amount\":\"4500\","
                   "\"currency\":\"USD\"}",
                   "not a string");
    expect_invalid(T_ESCROW,
                   "{\"id\":\"e\",\"orderId\":\"ord-1\",\"amount\":-1,"
                   "\"currency\":\"USD\"}",
                   "got -1");
    expect_invalid(T_ESCROW,
                   "{\"id\":\"e\",\"orderId\":\"ord-1\",\"amount\":1e16,"
                   "\"currency\":\"USD\"}",
                   "between 0 and 9007199254740991");
    expect_invalid(T_ESCROW,
                   "{\"id\":\"e\",\"orderId\":\"ord-1\",\"amount\":100,"
                   "\"currency\":\"usd\"}",
                   "ISO 4217");
    expect_invalid(T_ESCROW,
                   "{\"id\":\"e\",\"orderId\":\"ord-1\",\"amount\":100}",
                   "data.currency is required");
    expect_invalid(T_ESCROW,
                   "{\"id\":\"esc-7\",\"orderId\":\"ord-1\",\"amount\":100,"
                   "\"currency\":\"EUR\"}",
                   "escrow release esc-7 is in EUR but order ord-1 is in USD");
    expect_invalid(T_ESCROW,
                   "{\"id\":\"esc-7\",\"orderId\":\"ord-1\",\"amount\":5001,"
                   "\"currency\":\"USD\"}",
                   "exceeds the 5000 USD paid for order ord-1");

    /* A payment that does not match the order leaves it created. */
    ck_assert_int_eq(send(&fx, "t1", T_QUOTE, "ev-q", D_QUOTE("ord-1"), NULL),
                     ES_OK);
    ck_assert_int_eq(send(&fx, "t1", T_PAY, "ev-p",
                          "{\"id\":\"pay-2\",\"orderId\":\"ord-1\","
                          "\"amount\":4999,\"currency\":\"USD\"}",
                          reason),
                     ES_FAIL);
    ck_assert_str_eq(reason, "order ord-1: payment pay-2 of 4999 USD does "
                             "not match order ord-1 amount 5000 USD");
    ck_assert_str_eq(order_status(&fx, "t1", "ord-1"), "created");

    /* The largest exact amount goes through as digits. */
    ck_assert_int_eq(send(&fx, "t1", T_QUOTE, "ev-big",
                          "{\"id\":\"q-big\",\"listingId\":\"l\",\"buyerId\":"
                          "\"b\",\"sellerId\":\"s\",\"amount\":"
                          "9007199254740991,\"currency\":\"JPY\","
                          "\"orderId\":\"ord-big\"}",
                          reason),
                     ES_OK);
    ck_assert_ptr_nonnull(strstr(fx.f->emits[fx.f->n_emits - 1].json,
                                 "\"amount\":9007199254740991,"));
    fx_destroy(&fx);
}
END_TEST

START_TEST(test_invalid_events)
{
    fx_t fx = fx_new(NULL);
    tev_t *t;
    char reason[256];

    ck_assert_int_eq(send(&fx, "t1", "eventzr.marketplace.listing.created.v1",
                          "ev-l", "{}", reason),
                     ES_FAIL);
    ck_assert_ptr_nonnull(
        strstr(reason, "unsupported event type eventzr.marketplace.listing"));
    ck_assert_int_eq(send(&fx, "t1", T_PAY, "ev-p", "\"text\"", reason),
                     ES_FAIL);
    ck_assert_ptr_nonnull(strstr(reason, "no JSON object in data"));
    ck_assert_int_eq(send(&fx, "t1", T_PAY, "ev-p",
                          "{\"id\":\"p\",\"amount\":1,\"currency\":\"USD\"}",
                          reason),
                     ES_FAIL);
    ck_assert_ptr_nonnull(strstr(reason, "data.orderId is required"));
    ck_assert_int_eq(send(&fx, "t1", T_DRES, "ev-r",
                          "{\"id\":\"d\",\"orderId\":\"o\",\"outcome\":\"x\"}",
                          reason),
                     ES_FAIL);
    ck_assert_ptr_nonnull(strstr(reason, "data.outcome must be"));
    ck_assert_int_eq(send(&fx, "t1", T_DOPEN, "ev-d",
                          "{\"id\":\"d\",\"orderId\":\"o\",\"reason\":\"r\","
                          "\"evidence\":\"x\"}",
                          reason),
                     ES_FAIL);
    ck_assert_ptr_nonnull(strstr(reason, "data.evidence must be an array"));
    /* A repeated key, at the top of data or deeper, is refused before any
     * order is read or written: which value counts would be a guess. */
    ck_assert_int_eq(send(&fx, "t1", T_QUOTE, "ev-q2",
                          "{\"id\":\"q\",\"listingId\":\"l\",\"buyerId\":"
                          "\"b\",\"sellerId\":\"s\",\"amount\":5000,"
                          "\"amount\":1,\"currency\":\"USD\",\"orderId\":"
                          "\"ord-dup\"}",
                          reason),
                     ES_FAIL);
    ck_assert_ptr_nonnull(
        strstr(reason, "data.amount is given twice in its object (which one is "
                       "meant would be a guess)"));
    ck_assert_int_eq(send(&fx, "t1", T_DOPEN, "ev-d2",
                          "{\"id\":\"d\",\"orderId\":\"o\",\"reason\":\"r\","
                          "\"evidence\":[{\"u\":1,\"u\":2}]}",
                          reason),
                     ES_FAIL);
    ck_assert_ptr_nonnull(strstr(reason, "data.evidence[0].u is given twice"));
    ck_assert_int_eq(fx.f->n_emits, 0);

    /* No tenant anywhere. */
    t = tev_new(&fx, "t1", T_PAY, "ev-p", D_PAY("ord-1"));
    t->ev.tenant = NULL;
    cJSON_DeleteItemFromObject(t->ce, "tenantid");
    ck_assert_int_eq(deliver(&fx, t, reason), ES_FAIL);
    ck_assert_ptr_nonnull(strstr(reason, "has no tenant"));
    /* The tenant extension is the fallback for a host-less tenant. */
    tev_free(t);
    t = tev_new(&fx, "t9", T_QUOTE, "ev-q", D_QUOTE("ord-1"));
    t->ev.tenant = NULL;
    ck_assert_int_eq(deliver(&fx, t, reason), ES_OK);
    ck_assert_str_eq(fx.f->emits[0].key, "t9");
    tev_free(t);
    ck_assert_uint_eq(counter(fx.f, "invalid"), 8);
    fx_destroy(&fx);
}
END_TEST

START_TEST(test_disputes)
{
    fx_t fx = fx_new(NULL);
    cJSON *ce, *d;
    char reason[256];

    ck_assert_int_eq(send(&fx, "t1", T_QUOTE, "ev-q", D_QUOTE("ord-1"), NULL),
                     ES_OK);
    ck_assert_int_eq(send(&fx, "t1", T_PAY, "ev-p", D_PAY("ord-1"), NULL),
                     ES_OK);
    ck_assert_int_eq(send(&fx, "t1", T_DOPEN, "ev-d", D_DOPEN("ord-1"), NULL),
                     ES_OK);
    ce = emitted(&fx, 1);
    d = cJSON_GetObjectItem(ce, "data");
    ck_assert_str_eq(cJSON_GetObjectItem(ce, "subject")->valuestring,
                     "order:ord-1");
    ck_assert_str_eq(cJSON_GetObjectItem(d, "id")->valuestring, "dsp-1");
    ck_assert_str_eq(cJSON_GetObjectItem(d, "orderId")->valuestring, "ord-1");
    ck_assert_str_eq(cJSON_GetObjectItem(d, "reason")->valuestring,
                     "not_delivered");
    ck_assert_str_eq(
        cJSON_GetArrayItem(cJSON_GetObjectItem(d, "evidence"), 0)->valuestring,
        "https://x/1.png");
    cJSON_Delete(ce);

    /* Resolving another dispute than the open one is refused. */
    ck_assert_int_eq(send(&fx, "t1", T_DRES, "ev-r0",
                          "{\"id\":\"dsp-2\",\"orderId\":\"ord-1\","
                          "\"outcome\":\"release_to_seller\"}",
                          reason),
                     ES_FAIL);
    ck_assert_ptr_nonnull(
        strstr(reason, "dispute dsp-2 is not the open dispute dsp-1"));
    ck_assert_int_eq(send(&fx, "t1", T_DRES, "ev-r",
                          D_DRES("ord-1", "release_to_seller"), NULL),
                     ES_OK);
    ce = emitted(&fx, 2);
    d = cJSON_GetObjectItem(ce, "data");
    ck_assert_str_eq(cJSON_GetObjectItem(d, "outcome")->valuestring,
                     "release_to_seller");
    ck_assert_str_eq(cJSON_GetObjectItem(d, "orderStatus")->valuestring,
                     "paid");
    cJSON_Delete(ce);
    /* Back to paid: the escrow can now complete it. */
    ck_assert_int_eq(send(&fx, "t1", T_ESCROW, "ev-e", D_ESCROW("ord-1"), NULL),
                     ES_OK);
    ck_assert_str_eq(order_status(&fx, "t1", "ord-1"), "completed");

    /* Refund outcome: resolved, then cancelled with a pending refund. */
    ck_assert_int_eq(send(&fx, "t1", T_QUOTE, "ev-q2", D_QUOTE("ord-2"), NULL),
                     ES_OK);
    ck_assert_int_eq(send(&fx, "t1", T_PAY, "ev-p2", D_PAY("ord-2"), NULL),
                     ES_OK);
    ck_assert_int_eq(send(&fx, "t1", T_DOPEN, "ev-d2", D_DOPEN("ord-2"), NULL),
                     ES_OK);
    ck_assert_int_eq(
        send(&fx, "t1", T_DRES, "ev-r2", D_DRES("ord-2", "refund_buyer"), NULL),
        ES_OK);
    ck_assert_uint_eq(fx.f->n_emits, 8);
    ck_assert_str_eq(emitted_type(&fx, 6), O_DRESOLVED);
    ce = emitted(&fx, 7);
    d = cJSON_GetObjectItem(ce, "data");
    ck_assert_str_eq(cJSON_GetObjectItem(ce, "type")->valuestring, O_CANCELLED);
    ck_assert_str_eq(cJSON_GetObjectItem(d, "reason")->valuestring,
                     "dispute_refund");
    ck_assert_str_eq(cJSON_GetObjectItem(d, "refundStatus")->valuestring,
                     "pending");
    ck_assert_int_eq(cJSON_GetObjectItem(d, "refundAmount")->valueint, 5000);
    ck_assert_str_eq(cJSON_GetObjectItem(d, "disputeId")->valuestring, "dsp-1");
    /* Two events from one input: distinct deterministic ids. */
    d = emitted(&fx, 6);
    ck_assert_str_ne(cJSON_GetObjectItem(ce, "id")->valuestring,
                     cJSON_GetObjectItem(d, "id")->valuestring);
    cJSON_Delete(d);
    cJSON_Delete(ce);
    fx_destroy(&fx);
}
END_TEST

START_TEST(test_cancellation_refunds)
{
    fx_t fx = fx_new(NULL);
    cJSON *ce, *d;

    ck_assert_int_eq(send(&fx, "t1", T_QUOTE, "ev-q", D_QUOTE("ord-1"), NULL),
                     ES_OK);
    ck_assert_int_eq(send(&fx, "t1", T_CANCEL, "ev-c", D_CANCEL("ord-1"), NULL),
                     ES_OK);
    ce = emitted(&fx, 1);
    d = cJSON_GetObjectItem(ce, "data");
    ck_assert_str_eq(cJSON_GetObjectItem(d, "refundStatus")->valuestring,
                     "not_required");
    ck_assert_int_eq(cJSON_GetObjectItem(d, "refundAmount")->valueint, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(d, "reason")->valuestring,
                     "buyer_request");
    ck_assert_str_eq(cJSON_GetObjectItem(d, "requestedBy")->valuestring,
                     "buyer-1");
    cJSON_Delete(ce);

    ck_assert_int_eq(send(&fx, "t1", T_QUOTE, "ev-q2", D_QUOTE("ord-2"), NULL),
                     ES_OK);
    ck_assert_int_eq(send(&fx, "t1", T_PAY, "ev-p2", D_PAY("ord-2"), NULL),
                     ES_OK);
    ck_assert_int_eq(
        send(&fx, "t1", T_CANCEL, "ev-c2", D_CANCEL("ord-2"), NULL), ES_OK);
    ce = emitted(&fx, 3);
    d = cJSON_GetObjectItem(ce, "data");
    ck_assert_str_eq(cJSON_GetObjectItem(d, "refundStatus")->valuestring,
                     "pending");
    ck_assert_int_eq(cJSON_GetObjectItem(d, "refundAmount")->valueint, 5000);
    ck_assert_str_eq(cJSON_GetObjectItem(d, "currency")->valuestring, "USD");
    cJSON_Delete(ce);
    fx_destroy(&fx);
}
END_TEST

START_TEST(test_topics_and_tenants)
{
    fx_t fx = fx_new("{\"topic_prefix\":\"dev.\",\"source\":\"mkt-eu\","
                     "\"topics\":{\"" O_COMPLETED "\":\"orders.done\"}}");
    cJSON *ce;

    ck_assert_int_eq(
        send(&fx, "tenant-a", T_QUOTE, "ev-q", D_QUOTE("ord-1"), NULL), ES_OK);
    ck_assert_int_eq(
        send(&fx, "tenant-b", T_QUOTE, "ev-q2", D_QUOTE("ord-1"), NULL), ES_OK);
    ck_assert_str_eq(fx.f->emits[0].topic, "dev." O_CREATED);
    ck_assert_str_eq(fx.f->emits[0].key, "tenant-a");
    ck_assert_str_eq(fx.f->emits[1].key, "tenant-b");
    ce = emitted(&fx, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(ce, "source")->valuestring, "mkt-eu");
    cJSON_Delete(ce);
    /* Tenant b's payment does not touch tenant a's order of the same id. */
    ck_assert_int_eq(send(&fx, "tenant-b", T_PAY, "ev-p", D_PAY("ord-1"), NULL),
                     ES_OK);
    ck_assert_str_eq(order_status(&fx, "tenant-a", "ord-1"), "created");
    ck_assert_str_eq(order_status(&fx, "tenant-b", "ord-1"), "paid");
    ck_assert_int_eq(
        send(&fx, "tenant-b", T_ESCROW, "ev-e", D_ESCROW("ord-1"), NULL),
        ES_OK);
    ck_assert_str_eq(fx.f->emits[2].topic, "orders.done");
    ck_assert_str_eq(fx.f->emits[2].key, "tenant-b");
    fx_destroy(&fx);
}
END_TEST

START_TEST(test_batch)
{
    fx_t fx = fx_new(NULL);
    tev_t *t[4] = {
        tev_new(&fx, "t1", T_QUOTE, "ev-q", D_QUOTE("ord-1")),
        tev_new(&fx, "t1", T_ESCROW, "ev-e", D_ESCROW("ord-1")),
        tev_new(&fx, "t1", T_PAY, "ev-p", D_PAY("ord-1")),
        tev_new(&fx, "t1", T_QUOTE, "ev-q2", D_QUOTE("ord-1")),
    };
    const es_event_t *evs[4] = {&t[0]->ev, &t[1]->ev, &t[2]->ev, &t[3]->ev};
    es_result_t res[4];

    memset(res, 0, sizeof(res));
    fx.p->deliver(fx.inst, evs, 4, res);
    ck_assert_int_eq(res[0].status, ES_OK);
    ck_assert_int_eq(res[1].status, ES_RETRY);
    ck_assert_int_eq(res[2].status, ES_OK);
    ck_assert_int_eq(res[3].status, ES_FAIL);
    ck_assert_msg(strstr(res[3].reason, "order ord-1 is paid"), "%s",
                  res[3].reason);
    ck_assert(!fx.f->in_txn);
    for (int i = 0; i < 4; i++)
        tev_free(t[i]);
    fx_destroy(&fx);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("marketplace");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_descriptor);
    tcase_add_test(tc, test_config);
    tcase_add_test(tc, test_lifecycle);
    tcase_add_loop_test(tc, test_every_transition, 0, S_N * I_N);
    tcase_add_test(tc, test_wait_expires);
    tcase_add_test(tc, test_wait_max_attempts);
    tcase_add_test(tc, test_out_of_order);
    tcase_add_test(tc, test_duplicates);
    tcase_add_test(tc, test_restart);
    tcase_add_test(tc, test_crash_restart);
    tcase_add_test(tc, test_state_unavailable);
    tcase_add_test(tc, test_atomicity);
    tcase_add_test(tc, test_amounts);
    tcase_add_test(tc, test_invalid_events);
    tcase_add_test(tc, test_disputes);
    tcase_add_test(tc, test_cancellation_refunds);
    tcase_add_test(tc, test_topics_and_tenants);
    tcase_add_test(tc, test_batch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
