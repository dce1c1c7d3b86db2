/*
 * blockchain: a handler that turns ticket purchases into ERC-721 tickets on
 * an EVM chain and publishes the eventzr.blockchain.* events of seed 000.
 *
 * Chain calls are slow (a mint waits for its receipt), so deliver() only
 * validates and queues; one worker thread owned by the instance talks to the
 * node and answers each queued event with host->complete. One worker keeps
 * the chain operations of an instance in order and needs no nonce handling:
 * the node-managed account signs one transaction at a time.
 *
 * Idempotency rests on three things: the token id is a function of the
 * ticket id, ownerOf is read before minting, and every finished operation is
 * recorded in the host's state store before its events are emitted, so a
 * redelivery re-emits the recorded events (same CloudEvent ids) and sends
 * nothing to the chain.
 */
#include "bc.h"
#include "internal/es_json_keys.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "eventstream/plugin.h"

/* The input event types (documented in docs/blockchain-handler.md). */
static const struct {
    const char *type;
    bc_op_t op;
} input_types[] = {
    {"eventzr.ticketing.ticket.purchased.v1", BC_OP_PURCHASE},
    {"eventzr.ticketing.ticket.cancelled.v1", BC_OP_CANCEL},
    {"eventzr.user.tier.changed.v1", BC_OP_TIER},
    {"eventzr.billing.subscription.renewed.v1", BC_OP_RENEW},
    {"eventzr.wallet.wallet.created.v1", BC_OP_WALLET},
    {"eventzr.wallet.wallet.linked.v1", BC_OP_WALLET},
};

/* -------------------------------------------------------------- helpers */

int64_t bc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *bc_jstr(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

/* State keys are "kind:len(a):a:b" so that no two (a, b) pairs collide
 * whatever characters tenant or ticket ids contain. */
char *bc_state_key(const char *kind, const char *a, const char *b)
{
    size_t n = strlen(kind) + strlen(a) + strlen(b) + 32;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s:%zu:%s:%s", kind, strlen(a), a, b);
    return k;
}

/* 1 with a NUL-terminated malloc'd copy in *out, 0 if absent, -1 on error. */
int bc_st_get(bc_t *bc, const char *key, char **out)
{
    char *v = NULL;
    size_t len = 0;
    *out = NULL;
    if (!key)
        return -1;
    int rc = bc->host->state_get(bc->host, key, &v, &len);
    if (rc != 1)
        return rc;
    *out = malloc(len + 1);
    if (*out) {
        memcpy(*out, v, len);
        (*out)[len] = '\0';
    }
    bc->host->free(v);
    return *out ? 1 : -1;
}

int bc_st_put(bc_t *bc, const char *key, const char *value)
{
    return key ? bc->host->state_put(bc->host, key, value, strlen(value)) : -1;
}

void bc_set_reason(char *reason, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, n, fmt, ap);
    va_end(ap);
}

/* Publishes one event through the host; -1 (reason set) if it cannot. */
int bc_emit_one(bc_t *bc, uint64_t token, const char *type,
                const char *input_id, const char *tenant, const char *time,
                cJSON *data, char *reason, size_t n)
{
    char err[256] = "";
    char *json =
        bc_envelope(type, bc->cfg.source, input_id, tenant, time, data);
    if (!json) {
        bc_set_reason(reason, n, "%s: cannot build the event", type);
        return -1;
    }
    int rc = bc->host->emit(bc->host, token, type, tenant, strlen(tenant), json,
                            strlen(json), err, sizeof(err));
    free(json);
    if (rc != 0)
        bc_set_reason(reason, n, "emit %s: %s", type, err);
    return rc;
}

/* Emits the events of a recorded chain operation (mint or burn). */
int bc_emit_record(bc_t *bc, uint64_t token, const char *input_id,
                   const cJSON *rec, char *reason, size_t n)
{
    const char *tenant = bc_jstr(rec, "tenantId");
    const char *time = bc_jstr(rec, "time");
    const char *op = bc_jstr(rec, "operation");
    int burn = op && strcmp(op, "burn") == 0;
    if (!tenant || !time) {
        bc_set_reason(reason, n, "stored record is incomplete");
        return -1;
    }
    if (bc_emit_one(bc, token, burn ? BC_TYPE_REVOKED : BC_TYPE_MINTED,
                    input_id, tenant, time,
                    burn ? bc_revoked_data(rec) : bc_minted_data(rec), reason,
                    n) ||
        bc_emit_one(bc, token, BC_TYPE_NFT, input_id, tenant, time,
                    bc_nft_data(rec), reason, n) ||
        bc_emit_one(bc, token, BC_TYPE_TX, input_id, tenant, time,
                    bc_tx_data(rec), reason, n))
        return -1;
    return 0;
}

/* Looks up a finished operation by key and re-emits it. 1 when found and
 * re-emitted, 0 when absent, -1 (reason set) on error. */
int bc_replay_record(bc_t *bc, const bc_job_t *j, const char *key, char *reason,
                     size_t n)
{
    char *val = NULL;
    int rc = bc_st_get(bc, key, &val);
    if (rc < 0)
        bc_set_reason(reason, n, "state read failed");
    if (rc != 1)
        return rc;
    cJSON *rec = cJSON_Parse(val);
    free(val);
    rc = rec ? bc_emit_record(bc, j->token, j->id, rec, reason, n)
             : (bc_set_reason(reason, n, "stored record is not JSON"), -1);
    cJSON_Delete(rec);
    return rc == 0 ? 1 : -1;
}

/* ------------------------------------------------------------- worker */

static void job_free(bc_job_t *j)
{
    if (!j)
        return;
    free(j->id);
    free(j->tenant);
    free(j->time);
    cJSON_Delete(j->data);
    free(j);
}

static void *worker_main(void *arg)
{
    bc_t *bc = arg;
    for (;;) {
        pthread_mutex_lock(&bc->mu);
        while (!bc->head && !atomic_load(&bc->stop))
            pthread_cond_wait(&bc->cv, &bc->mu);
        if (atomic_load(&bc->stop)) {
            pthread_mutex_unlock(&bc->mu);
            break;
        }
        bc_job_t *j = bc->head;
        bc->head = j->next;
        if (!bc->head)
            bc->tail = NULL;
        bc->queued--;
        pthread_mutex_unlock(&bc->mu);

        char reason[256] = "";
        es_status_t st =
            j->op == BC_OP_PURCHASE
                ? bc_do_purchase(bc, j, reason, sizeof(reason))
            : j->op == BC_OP_CANCEL
                ? bc_do_cancel(bc, j, reason, sizeof(reason))
                : bc_do_wallet(bc, j->tenant, j->data, reason, sizeof(reason));
        if (atomic_load(&bc->stop) && st != ES_OK) {
            /* Shutting down mid-operation: leave it pending; the host
             * redelivers after restart and the state resumes it. */
            job_free(j);
            break;
        }
        if (st != ES_OK) {
            if (!*reason)
                bc_set_reason(reason, sizeof(reason), "out of memory");
            bc->host->counter_add(bc->host,
                                  st == ES_FAIL ? "failed" : "retried", 1);
            bc->host->log(bc->host, st == ES_FAIL ? ES_LOG_WARN : ES_LOG_INFO,
                          "event=%s %s: %s", j->id,
                          st == ES_FAIL ? "fails" : "retries", reason);
        }
        bc->host->complete(bc->host, j->token, st, st == ES_OK ? NULL : reason);
        job_free(j);
    }
    return NULL;
}

static es_status_t enqueue(bc_t *bc, const es_event_t *ev, bc_op_t op,
                           const char *tenant, const cJSON *data, char *reason,
                           size_t n)
{
    bc_job_t *j = calloc(1, sizeof(*j));
    if (!j || !(j->id = strdup(ev->id)) || !(j->tenant = strdup(tenant)) ||
        (ev->time && !(j->time = strdup(ev->time))) ||
        !(j->data = cJSON_Duplicate(data, 1))) {
        job_free(j);
        bc_set_reason(reason, n, "out of memory");
        return ES_RETRY;
    }
    j->op = op;
    j->token = ev->token;
    pthread_mutex_lock(&bc->mu);
    if (bc->queued >= bc->cfg.queue_max) {
        pthread_mutex_unlock(&bc->mu);
        job_free(j);
        bc_set_reason(reason, n, "queue full (%ld operations)",
                      bc->cfg.queue_max);
        return ES_RETRY;
    }
    if (bc->tail)
        bc->tail->next = j;
    else
        bc->head = j;
    bc->tail = j;
    bc->queued++;
    pthread_cond_signal(&bc->cv);
    pthread_mutex_unlock(&bc->mu);
    return ES_PENDING;
}

/* ------------------------------------------------------------- vtable */

static bc_op_t classify(const char *type)
{
    for (size_t i = 0; type && i < sizeof(input_types) / sizeof(*input_types);
         i++)
        if (strcmp(input_types[i].type, type) == 0)
            return input_types[i].op;
    return BC_OP_IGNORE;
}

static es_status_t deliver_one(bc_t *bc, const es_event_t *ev, char *reason,
                               size_t n)
{
    bc_op_t op = classify(ev->type);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(ev->ce, "data");
    if (op == BC_OP_IGNORE) {
        bc->host->counter_add(bc->host, "ignored", 1);
        return ES_OK;
    }
    const char *tenant = ev->tenant && *ev->tenant   ? ev->tenant
                         : bc_jstr(data, "tenantId") ? bc_jstr(data, "tenantId")
                                                     : ev->subject;
    if (!cJSON_IsObject(data) || !tenant || !*tenant || !ev->id) {
        bc_set_reason(reason, n, "%s: needs an id, a tenant and a data object",
                      ev->type);
        return ES_FAIL;
    }
    /* The Lua filter reads a repeated key's last value, cJSON's lookups
     * here the first: minting on either would be a guess. */
    char twice[128];
    if (es_json_repeated_key(data, "data", twice, sizeof(twice))) {
        bc_set_reason(reason, n,
                      "%s: %s is given twice in its object (which one is "
                      "meant would be a guess)",
                      ev->type, twice);
        return ES_FAIL;
    }
    const char *need =
        (op == BC_OP_PURCHASE || op == BC_OP_CANCEL) ? "ticketId" : "userId";
    if (!bc_jstr(data, need) ||
        (op == BC_OP_PURCHASE && !bc_jstr(data, "userId") &&
         !bc_jstr(data, "walletAddress"))) {
        bc_set_reason(reason, n, "%s: data.%s is required", ev->type,
                      bc_jstr(data, need) ? "userId" : need);
        return ES_FAIL;
    }
    char addr[BC_ADDR_SIZE];
    if (op == BC_OP_WALLET &&
        bc_address_parse(bc_jstr(data, "walletAddress"), addr) != 0) {
        bc_set_reason(
            reason, n,
            "data.walletAddress: missing or not a 20-byte hex address");
        return ES_FAIL;
    }
    switch (op) {
    case BC_OP_TIER:
    case BC_OP_RENEW:
        return bc_do_tier(bc, ev, op, tenant, data, reason, n);
    default:
        return enqueue(bc, ev, op, tenant, data, reason, n);
    }
}

static void bc_deliver(void *instance, const es_event_t *const *events,
                       size_t count, es_result_t *results)
{
    bc_t *bc = instance;
    for (size_t i = 0; i < count; i++) {
        results[i].reason[0] = '\0';
        results[i].status = deliver_one(bc, events[i], results[i].reason,
                                        sizeof(results[i].reason));
    }
}

static void bc_destroy(void *instance)
{
    bc_t *bc = instance;
    if (!bc)
        return;
    if (bc->worker_started) {
        pthread_mutex_lock(&bc->mu);
        atomic_store(&bc->stop, 1);
        pthread_cond_broadcast(&bc->cv);
        pthread_mutex_unlock(&bc->mu);
        pthread_join(bc->worker, NULL);
    }
    /* Queued events are abandoned: the host redelivers them later. */
    while (bc->head) {
        bc_job_t *j = bc->head;
        bc->head = j->next;
        job_free(j);
    }
    bc_rpc_destroy(bc->rpc);
    bc_config_free(&bc->cfg);
    pthread_cond_destroy(&bc->cv);
    pthread_mutex_destroy(&bc->mu);
    free(bc);
    curl_global_cleanup();
}

static int bc_init(const es_host_t *host, const cJSON *config, void **instance,
                   char *errstr, size_t errstr_size)
{
    bc_t *bc = calloc(1, sizeof(*bc));
    errstr[0] = '\0';
    *instance = NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!bc) {
        snprintf(errstr, errstr_size, "out of memory");
        curl_global_cleanup();
        return -1;
    }
    bc->host = host;
    pthread_mutex_init(&bc->mu, NULL);
    pthread_cond_init(&bc->cv, NULL);
    if (bc_config_parse(&bc->cfg, config, errstr, errstr_size) != 0) {
        if (!*errstr)
            snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    bc_rpc_opts_t o = {bc->cfg.rpc_url, bc->cfg.rpc_bearer_token,
                       bc->cfg.rpc_ca_file, bc->cfg.rpc_timeout_ms};
    if (!(bc->rpc = bc_rpc_new(&o, errstr, errstr_size)))
        goto fail;
    int err = pthread_create(&bc->worker, NULL, worker_main, bc);
    if (err != 0) {
        snprintf(errstr, errstr_size, "cannot start the worker thread: %s",
                 strerror(err));
        goto fail;
    }
    bc->worker_started = 1;
    /* Only scheme and host of the URL: providers put API keys in paths. */
    const char *u = bc->cfg.rpc_url, *h = strstr(u, "://");
    h = h ? h + 3 : u;
    const char *at = strchr(h, '@'), *end = h + strcspn(h, "/?#");
    if (at && at < end)
        h = at + 1;
    host->log(host, ES_LOG_INFO,
              "blockchain handler: rpc=%.*s%.*s contract=%s from=%s chain=%s",
              (int)(strstr(u, "://") ? strstr(u, "://") + 3 - u : 0), u,
              (int)(end - h), h, bc->cfg.contract, bc->cfg.from,
              bc->cfg.chain_id);
    *instance = bc;
    return 0;
fail:
    bc_destroy(bc);
    return -1;
}

static const es_plugin_t bc_plugin = {
    .abi = ES_PLUGIN_ABI_VERSION,
    .size = sizeof(es_plugin_t),
    .name = "blockchain",
    .version = "0.1.0",
    .kind = ES_KIND_HANDLER,
    .init = bc_init,
    .deliver = bc_deliver,
    .filter = NULL,
    .flush = NULL,
    .destroy = bc_destroy,
};

ES_PLUGIN_DEFINE(bc_plugin)
