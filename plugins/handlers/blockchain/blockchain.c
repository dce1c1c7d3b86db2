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

#define BC_TYPE_MINTED "eventzr.blockchain.ticket.minted.v1"
#define BC_TYPE_REVOKED "eventzr.blockchain.ticket.revoked.v1"
#define BC_TYPE_TIER "eventzr.blockchain.loyalty.tier_changed.v1"
#define BC_TYPE_NFT "eventzr.blockchain.nft.events.v1"
#define BC_TYPE_TX "eventzr.blockchain.transaction.events.v1"
#define BC_TYPE_QUOTA "eventzr.blockchain.quota.events.v1"

#define BC_ZERO_ADDRESS "0x0000000000000000000000000000000000000000"

typedef enum bc_op_e {
    BC_OP_IGNORE = 0,
    BC_OP_PURCHASE,
    BC_OP_CANCEL,
    BC_OP_TIER,
    BC_OP_RENEW,
    BC_OP_WALLET,
} bc_op_t;

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

typedef enum bc_period_e {
    BC_PERIOD_TOTAL = 0,
    BC_PERIOD_DAY,
    BC_PERIOD_MONTH,
} bc_period_t;

typedef struct bc_config_s {
    char *rpc_url;
    char *rpc_bearer_token;
    char *rpc_ca_file;
    char contract[BC_ADDR_SIZE];
    char from[BC_ADDR_SIZE];
    char *chain_id;
    char *source;
    double native_token_usd;
    long rpc_timeout_ms;
    long receipt_timeout_ms;
    long receipt_poll_ms;
    long wallet_wait_s;
    long gas_limit;
    long queue_max;
    long mint_quota;
    bc_period_t quota_period;
    cJSON *tenant_quotas;
    long logs_from_block;
} bc_config_t;

typedef struct bc_job_s {
    struct bc_job_s *next;
    bc_op_t op;
    uint64_t token;
    char *id;
    char *tenant;
    char *time;
    cJSON *data;
} bc_job_t;

typedef struct bc_s {
    const es_host_t *host;
    bc_config_t cfg;
    bc_rpc_t *rpc;
    pthread_t worker;
    int worker_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bc_job_t *head, *tail;
    long queued;
    atomic_int stop;
} bc_t;

/* ------------------------------------------------------------- config */

typedef enum cfg_type_e {
    CFG_STRING,
    CFG_ADDRESS,
    CFG_LONG,
    CFG_DOUBLE,
    CFG_PERIOD,
    CFG_QUOTAS,
} cfg_type_t;

static const struct cfg_key {
    const char *name;
    cfg_type_t type;
    size_t off;
    int required;
    long min, max;
} cfg_keys[] = {
    {"rpc_url", CFG_STRING, offsetof(bc_config_t, rpc_url), 1, 0, 0},
    {"rpc_bearer_token", CFG_STRING, offsetof(bc_config_t, rpc_bearer_token), 0,
     0, 0},
    {"rpc_ca_file", CFG_STRING, offsetof(bc_config_t, rpc_ca_file), 0, 0, 0},
    {"contract_address", CFG_ADDRESS, offsetof(bc_config_t, contract), 1, 0, 0},
    {"from_address", CFG_ADDRESS, offsetof(bc_config_t, from), 1, 0, 0},
    {"chain_id", CFG_STRING, offsetof(bc_config_t, chain_id), 0, 0, 0},
    {"source", CFG_STRING, offsetof(bc_config_t, source), 0, 0, 0},
    {"native_token_usd", CFG_DOUBLE, offsetof(bc_config_t, native_token_usd), 0,
     0, 0},
    {"rpc_timeout_ms", CFG_LONG, offsetof(bc_config_t, rpc_timeout_ms), 0, 100,
     600000},
    {"receipt_timeout_ms", CFG_LONG, offsetof(bc_config_t, receipt_timeout_ms),
     0, 100, 3600000},
    {"receipt_poll_interval_ms", CFG_LONG,
     offsetof(bc_config_t, receipt_poll_ms), 0, 10, 60000},
    {"wallet_wait_s", CFG_LONG, offsetof(bc_config_t, wallet_wait_s), 0, 0,
     30L * 86400},
    {"gas_limit", CFG_LONG, offsetof(bc_config_t, gas_limit), 0, 0, 100000000},
    {"queue_max", CFG_LONG, offsetof(bc_config_t, queue_max), 0, 1, 1000000},
    {"mint_quota", CFG_LONG, offsetof(bc_config_t, mint_quota), 0, 0,
     1000000000},
    {"quota_period", CFG_PERIOD, offsetof(bc_config_t, quota_period), 0, 0, 0},
    {"tenant_quotas", CFG_QUOTAS, offsetof(bc_config_t, tenant_quotas), 0, 0,
     0},
    {"logs_from_block", CFG_LONG, offsetof(bc_config_t, logs_from_block), 0, 0,
     1000000000000L},
};

static void config_defaults(bc_config_t *c)
{
    c->rpc_timeout_ms = 10000;
    c->receipt_timeout_ms = 60000;
    c->receipt_poll_ms = 250;
    c->wallet_wait_s = 600;
    c->queue_max = 10000;
}

static void config_free(bc_config_t *c)
{
    free(c->rpc_url);
    free(c->rpc_bearer_token);
    free(c->rpc_ca_file);
    free(c->chain_id);
    free(c->source);
    cJSON_Delete(c->tenant_quotas);
}

static int set_quotas(cJSON **dst, const cJSON *v, const char *name,
                      char *errstr, size_t n)
{
    const cJSON *q;
    if (!cJSON_IsObject(v)) {
        snprintf(errstr, n, "%s: must be an object of tenant: quota", name);
        return -1;
    }
    cJSON_ArrayForEach(q, v)
    {
        if (!cJSON_IsNumber(q) || q->valuedouble < 0 ||
            q->valuedouble != (double)(long)q->valuedouble) {
            snprintf(errstr, n, "%s.%s: must be a non-negative integer", name,
                     q->string);
            return -1;
        }
    }
    *dst = cJSON_Duplicate(v, 1);
    return *dst ? 0 : -1;
}

static int set_key(bc_config_t *c, const struct cfg_key *k, const cJSON *v,
                   char *errstr, size_t n)
{
    char *field = (char *)c + k->off;
    switch (k->type) {
    case CFG_STRING:
        if (!cJSON_IsString(v) || !*v->valuestring) {
            snprintf(errstr, n, "%s: must be a non-empty string", k->name);
            return -1;
        }
        free(*(char **)field);
        return (*(char **)field = strdup(v->valuestring)) ? 0 : -1;
    case CFG_ADDRESS:
        if (!cJSON_IsString(v) || bc_address_parse(v->valuestring, field)) {
            snprintf(errstr, n, "%s: must be a 0x-prefixed 20-byte hex address",
                     k->name);
            return -1;
        }
        return 0;
    case CFG_LONG:
        if (!cJSON_IsNumber(v) || v->valuedouble < (double)k->min ||
            v->valuedouble > (double)k->max ||
            v->valuedouble != (double)(long)v->valuedouble) {
            snprintf(errstr, n, "%s: must be an integer from %ld to %ld",
                     k->name, k->min, k->max);
            return -1;
        }
        *(long *)field = (long)v->valuedouble;
        return 0;
    case CFG_DOUBLE:
        if (!cJSON_IsNumber(v) || v->valuedouble < 0) {
            snprintf(errstr, n, "%s: must be a non-negative number", k->name);
            return -1;
        }
        *(double *)field = v->valuedouble;
        return 0;
    case CFG_PERIOD: {
        static const char *const names[] = {"total", "day", "month"};
        for (int i = 0; cJSON_IsString(v) && i < 3; i++)
            if (strcmp(v->valuestring, names[i]) == 0) {
                *(bc_period_t *)field = (bc_period_t)i;
                return 0;
            }
        snprintf(errstr, n, "%s: must be \"total\", \"day\" or \"month\"",
                 k->name);
        return -1;
    }
    case CFG_QUOTAS:
        return set_quotas((cJSON **)field, v, k->name, errstr, n);
    }
    return -1;
}

static int config_parse(bc_config_t *c, const cJSON *config, char *errstr,
                        size_t n)
{
    const size_t nkeys = sizeof(cfg_keys) / sizeof(cfg_keys[0]);
    const cJSON *item;
    config_defaults(c);
    if (!cJSON_IsObject(config)) {
        snprintf(errstr, n,
                 "config: must be an object with rpc_url, "
                 "contract_address and from_address");
        return -1;
    }
    cJSON_ArrayForEach(item, config)
    {
        size_t i = 0;
        while (i < nkeys && strcmp(cfg_keys[i].name, item->string) != 0)
            i++;
        if (i == nkeys) {
            snprintf(errstr, n, "%s: unknown key", item->string);
            return -1;
        }
        if (set_key(c, &cfg_keys[i], item, errstr, n) != 0) {
            if (!*errstr)
                snprintf(errstr, n, "%s: out of memory", item->string);
            return -1;
        }
    }
    for (size_t i = 0; i < nkeys; i++)
        if (cfg_keys[i].required &&
            !cJSON_HasObjectItem(config, cfg_keys[i].name)) {
            snprintf(errstr, n, "%s: required", cfg_keys[i].name);
            return -1;
        }
    if (!c->chain_id && !(c->chain_id = strdup("ETHEREUM")))
        return -1;
    if (!c->source && !(c->source = strdup("blockchain-svc")))
        return -1;
    return 0;
}

/* -------------------------------------------------------------- helpers */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *jstr(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

/* State keys are "kind:len(a):a:b" so that no two (a, b) pairs collide
 * whatever characters tenant or ticket ids contain. */
static char *state_key(const char *kind, const char *a, const char *b)
{
    size_t n = strlen(kind) + strlen(a) + strlen(b) + 32;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s:%zu:%s:%s", kind, strlen(a), a, b);
    return k;
}

/* 1 with a NUL-terminated malloc'd copy in *out, 0 if absent, -1 on error. */
static int st_get(bc_t *bc, const char *key, char **out)
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

static int st_put(bc_t *bc, const char *key, const char *value)
{
    return key ? bc->host->state_put(bc->host, key, value, strlen(value)) : -1;
}

static void set_reason(char *reason, size_t n, const char *fmt, ...)
    ES_PRINTF(3, 4);
static void set_reason(char *reason, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, n, fmt, ap);
    va_end(ap);
}

/* Publishes one event through the host; -1 (reason set) if it cannot. */
static int emit_one(bc_t *bc, uint64_t token, const char *type,
                    const char *input_id, const char *tenant, const char *time,
                    cJSON *data, char *reason, size_t n)
{
    char err[256] = "";
    char *json =
        bc_envelope(type, bc->cfg.source, input_id, tenant, time, data);
    if (!json) {
        set_reason(reason, n, "%s: cannot build the event", type);
        return -1;
    }
    int rc = bc->host->emit(bc->host, token, type, tenant, strlen(tenant), json,
                            strlen(json), err, sizeof(err));
    free(json);
    if (rc != 0)
        set_reason(reason, n, "emit %s: %s", type, err);
    return rc;
}

/* Emits the events of a recorded chain operation (mint or burn). */
static int emit_record(bc_t *bc, uint64_t token, const char *input_id,
                       const cJSON *rec, char *reason, size_t n)
{
    const char *tenant = jstr(rec, "tenantId");
    const char *time = jstr(rec, "time");
    const char *op = jstr(rec, "operation");
    int burn = op && strcmp(op, "burn") == 0;
    if (!tenant || !time) {
        set_reason(reason, n, "stored record is incomplete");
        return -1;
    }
    if (emit_one(bc, token, burn ? BC_TYPE_REVOKED : BC_TYPE_MINTED, input_id,
                 tenant, time,
                 burn ? bc_revoked_data(rec) : bc_minted_data(rec), reason,
                 n) ||
        emit_one(bc, token, BC_TYPE_NFT, input_id, tenant, time,
                 bc_nft_data(rec), reason, n) ||
        emit_one(bc, token, BC_TYPE_TX, input_id, tenant, time, bc_tx_data(rec),
                 reason, n))
        return -1;
    return 0;
}

/* Looks up a finished operation by key and re-emits it. 1 when found and
 * re-emitted, 0 when absent, -1 (reason set) on error. */
static int replay_record(bc_t *bc, const bc_job_t *j, const char *key,
                         char *reason, size_t n)
{
    char *val = NULL;
    int rc = st_get(bc, key, &val);
    if (rc < 0)
        set_reason(reason, n, "state read failed");
    if (rc != 1)
        return rc;
    cJSON *rec = cJSON_Parse(val);
    free(val);
    rc = rec ? emit_record(bc, j->token, j->id, rec, reason, n)
             : (set_reason(reason, n, "stored record is not JSON"), -1);
    cJSON_Delete(rec);
    return rc == 0 ? 1 : -1;
}

/* ------------------------------------------------------------- chain */

static cJSON *call_object(const bc_t *bc, const char *data, int with_from)
{
    cJSON *o = cJSON_CreateObject();
    if (with_from)
        cJSON_AddStringToObject(o, "from", bc->cfg.from);
    cJSON_AddStringToObject(o, "to", bc->cfg.contract);
    cJSON_AddStringToObject(o, "data", data);
    return o;
}

/* eth_call; on success *out is the returned hex (malloc'd). */
static bc_rpc_status_t chain_call(bc_t *bc, const char *data, int with_from,
                                  char **out, char *reason, size_t n)
{
    cJSON *params = cJSON_CreateArray();
    cJSON *res = NULL;
    cJSON_AddItemToArray(params, call_object(bc, data, with_from));
    cJSON_AddItemToArray(params, cJSON_CreateString("latest"));
    bc_rpc_status_t st =
        bc_rpc_call(bc->rpc, "eth_call", params, &res, reason, n);
    if (st == BC_RPC_OK) {
        *out = cJSON_IsString(res) ? strdup(res->valuestring) : NULL;
        if (!*out) {
            set_reason(reason, n, "eth_call: result is not a string");
            st = BC_RPC_TRANSIENT;
        }
    }
    cJSON_Delete(res);
    return st;
}

/* ownerOf(token): OK with the owner, REVERT when it does not exist. */
static bc_rpc_status_t chain_owner_of(bc_t *bc, uint64_t token,
                                      char owner[BC_ADDR_SIZE], char *reason,
                                      size_t n)
{
    char w[65];
    const char *words[] = {w};
    char *out = NULL;
    bc_word_u64(token, w);
    char *data = bc_abi_call(BC_SEL_OWNER_OF, words, 1);
    if (!data)
        return BC_RPC_TRANSIENT;
    bc_rpc_status_t st = chain_call(bc, data, 0, &out, reason, n);
    free(data);
    if (st == BC_RPC_OK && bc_abi_decode_address(out, owner) != 0) {
        /* "0x" is what a call to an address without code returns. */
        set_reason(reason, n,
                   "ownerOf returned %.80s: is %s the ERC-721 contract?", out,
                   bc->cfg.contract);
        st = BC_RPC_TRANSIENT;
    }
    free(out);
    return st;
}

/* Hash of the latest Transfer(from, to, token) log of the contract, so an
 * operation whose transaction was sent but not recorded (crash in between)
 * is recognised. from/to NULL match any. 1 found, 0 none, -1 error. */
static int chain_find_transfer(bc_t *bc, const char *from, const char *to,
                               uint64_t token, char hash[BC_HASH_SIZE],
                               char *reason, size_t n)
{
    char wf[67] = "0x", wt[67] = "0x", wk[67] = "0x", fb[19];
    cJSON *params = cJSON_CreateArray(), *res = NULL;
    cJSON *filter = cJSON_CreateObject(), *topics = cJSON_CreateArray();
    bc_quantity_format((uint64_t)bc->cfg.logs_from_block, fb);
    cJSON_AddStringToObject(filter, "fromBlock", fb);
    cJSON_AddStringToObject(filter, "toBlock", "latest");
    cJSON_AddStringToObject(filter, "address", bc->cfg.contract);
    cJSON_AddItemToArray(topics, cJSON_CreateString(BC_TOPIC_TRANSFER));
    if (from)
        bc_word_address(from, wf + 2);
    cJSON_AddItemToArray(topics,
                         from ? cJSON_CreateString(wf) : cJSON_CreateNull());
    if (to)
        bc_word_address(to, wt + 2);
    cJSON_AddItemToArray(topics,
                         to ? cJSON_CreateString(wt) : cJSON_CreateNull());
    bc_word_u64(token, wk + 2);
    cJSON_AddItemToArray(topics, cJSON_CreateString(wk));
    cJSON_AddItemToObject(filter, "topics", topics);
    cJSON_AddItemToArray(params, filter);
    if (bc_rpc_call(bc->rpc, "eth_getLogs", params, &res, reason, n) !=
        BC_RPC_OK)
        return -1;
    int found = 0;
    int count = cJSON_GetArraySize(res);
    const char *h =
        count > 0 ? jstr(cJSON_GetArrayItem(res, count - 1), "transactionHash")
                  : NULL;
    if (h && strlen(h) < BC_HASH_SIZE) {
        snprintf(hash, BC_HASH_SIZE, "%s", h);
        found = 1;
    }
    cJSON_Delete(res);
    return found;
}

/* Polls for the receipt of hash. 1 with *receipt, 0 not mined before the
 * timeout, -1 on error (reason set). */
static int chain_wait_receipt(bc_t *bc, const char *hash, cJSON **receipt,
                              char *reason, size_t n)
{
    int64_t deadline = now_ms() + bc->cfg.receipt_timeout_ms;
    *receipt = NULL;
    for (;;) {
        cJSON *params = cJSON_CreateArray();
        cJSON_AddItemToArray(params, cJSON_CreateString(hash));
        if (bc_rpc_call(bc->rpc, "eth_getTransactionReceipt", params, receipt,
                        reason, n) != BC_RPC_OK)
            return -1;
        if (cJSON_IsObject(*receipt) && jstr(*receipt, "blockNumber"))
            return 1;
        cJSON_Delete(*receipt);
        *receipt = NULL;
        if (now_ms() >= deadline || atomic_load(&bc->stop))
            break;
        struct timespec ts = {bc->cfg.receipt_poll_ms / 1000,
                              (bc->cfg.receipt_poll_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    set_reason(reason, n, "transaction %s not mined after %ld ms", hash,
               bc->cfg.receipt_timeout_ms);
    return 0;
}

/* 1 if the node knows the transaction (pending or mined), 0 if not. */
static int chain_tx_known(bc_t *bc, const char *hash, char *reason, size_t n)
{
    cJSON *params = cJSON_CreateArray(), *res = NULL;
    cJSON_AddItemToArray(params, cJSON_CreateString(hash));
    if (bc_rpc_call(bc->rpc, "eth_getTransactionByHash", params, &res, reason,
                    n) != BC_RPC_OK)
        return -1;
    int known = cJSON_IsObject(res);
    cJSON_Delete(res);
    return known;
}

static int receipt_ok(const cJSON *receipt)
{
    const char *s = jstr(receipt, "status");
    return s && strcmp(s, "0x1") == 0;
}

/*
 * Resumes an operation whose transaction hash was kept under pending_key
 * ("hash owner"). 1: mined successfully (*receipt, owner filled); 0: nothing
 * pending any more (dropped or reverted: key removed, send again);
 * -1: try later (reason set).
 */
static int resume_pending(bc_t *bc, const char *pending_key, cJSON **receipt,
                          char owner[BC_ADDR_SIZE], char *reason, size_t n)
{
    char *val = NULL, hash[BC_HASH_SIZE];
    int rc = st_get(bc, pending_key, &val);
    *receipt = NULL;
    if (rc <= 0) {
        if (rc < 0)
            set_reason(reason, n, "state read failed");
        return rc;
    }
    rc = sscanf(val, "%66s %42s", hash, owner) == 2 ? 0 : -2;
    free(val);
    if (rc == 0)
        rc = chain_wait_receipt(bc, hash, receipt, reason, n);
    if (rc == 1 && receipt_ok(*receipt))
        return 1;
    if (rc == 0 && chain_tx_known(bc, hash, reason, n) != 0)
        return -1; /* still pending (or node unreachable): wait more */
    if (rc == -1)
        return -1;
    /* Reverted when mined, dropped, or a corrupt entry: forget it. */
    cJSON_Delete(*receipt);
    *receipt = NULL;
    if (bc->host->state_delete(bc->host, pending_key) != 0) {
        set_reason(reason, n, "state delete failed");
        return -1;
    }
    return 0;
}

/*
 * Simulates data with eth_call (a revert there is final: it is reported
 * with its reason), sends it with eth_sendTransaction from the node-managed
 * account, keeps the hash under pending_key and waits for the receipt.
 */
static es_status_t send_and_wait(bc_t *bc, const char *pending_key,
                                 const char *data, const char *owner,
                                 cJSON **receipt, char *reason, size_t n)
{
    char *out = NULL, val[BC_HASH_SIZE + BC_ADDR_SIZE + 1];
    cJSON *params, *tx, *res = NULL;
    bc_rpc_status_t st = chain_call(bc, data, 1, &out, reason, n);
    free(out);
    if (st == BC_RPC_REVERT)
        return ES_FAIL;
    if (st != BC_RPC_OK)
        return ES_RETRY;
    params = cJSON_CreateArray();
    tx = call_object(bc, data, 1);
    if (bc->cfg.gas_limit > 0) {
        char g[19];
        bc_quantity_format((uint64_t)bc->cfg.gas_limit, g);
        cJSON_AddStringToObject(tx, "gas", g);
    }
    cJSON_AddItemToArray(params, tx);
    st = bc_rpc_call(bc->rpc, "eth_sendTransaction", params, &res, reason, n);
    if (st == BC_RPC_REVERT)
        return ES_FAIL;
    if (st != BC_RPC_OK || !cJSON_IsString(res) ||
        strlen(res->valuestring) >= BC_HASH_SIZE) {
        if (st == BC_RPC_OK)
            set_reason(reason, n, "eth_sendTransaction: bad result");
        cJSON_Delete(res);
        return ES_RETRY;
    }
    snprintf(val, sizeof(val), "%s %s", res->valuestring, owner);
    char hash[BC_HASH_SIZE];
    snprintf(hash, sizeof(hash), "%s", res->valuestring);
    cJSON_Delete(res);
    if (st_put(bc, pending_key, val) != 0)
        bc->host->log(bc->host, ES_LOG_WARN,
                      "cannot keep pending transaction %s; a retry finds it "
                      "through its Transfer log",
                      hash);
    int rc = chain_wait_receipt(bc, hash, receipt, reason, n);
    if (rc != 1)
        return ES_RETRY;
    if (!receipt_ok(*receipt)) {
        /* Mined but reverted (state changed after the simulation): the
         * retry simulates again and reports the reason if it is final. */
        cJSON_Delete(*receipt);
        *receipt = NULL;
        bc->host->state_delete(bc->host, pending_key);
        set_reason(reason, n, "transaction %s reverted", hash);
        return ES_RETRY;
    }
    return ES_OK;
}

static es_status_t fetch_receipt(bc_t *bc, const char *hash, cJSON **receipt,
                                 char *reason, size_t n)
{
    int rc = chain_wait_receipt(bc, hash, receipt, reason, n);
    return rc == 1 ? ES_OK : ES_RETRY;
}

/* Integers as raw digits: cJSON would print 2891986158693390 as the
 * approximate 2.89198615869339e+15. */
static void add_uint(cJSON *o, const char *name, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    cJSON_AddRawToObject(o, name, buf);
}

/* The durable record of a finished mint or burn, from its receipt. */
static cJSON *make_record(bc_t *bc, const char *op, const bc_job_t *j,
                          const char *ticket, uint64_t token, const char *owner,
                          const cJSON *receipt, char *reason, size_t n)
{
    uint64_t block = 0, gas = 0, price = 0;
    char num[24], t[32];
    const char *price_hex = jstr(receipt, "effectiveGasPrice");
    cJSON *gp = NULL;
    if (!price_hex) {
        /* Pre-London nodes: the price the node asks now. */
        if (bc_rpc_call(bc->rpc, "eth_gasPrice", cJSON_CreateArray(), &gp,
                        reason, n) != BC_RPC_OK)
            return NULL;
        price_hex = cJSON_IsString(gp) ? gp->valuestring : NULL;
    }
    if (bc_quantity_parse(jstr(receipt, "blockNumber"), &block) ||
        bc_quantity_parse(jstr(receipt, "gasUsed"), &gas) || !price_hex ||
        bc_quantity_parse(price_hex, &price)) {
        set_reason(reason, n, "receipt has bad blockNumber/gasUsed/price");
        cJSON_Delete(gp);
        return NULL;
    }
    cJSON_Delete(gp);
    const char *from = jstr(receipt, "from");
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "operation", op);
    cJSON_AddStringToObject(r, "tenantId", j->tenant);
    cJSON_AddStringToObject(r, "ticketId", ticket);
    cJSON_AddStringToObject(r, "contractAddress", bc->cfg.contract);
    add_uint(r, "tokenId", token);
    cJSON_AddStringToObject(r, "chainId", bc->cfg.chain_id);
    cJSON_AddStringToObject(r, "ownerAddress", owner);
    cJSON_AddStringToObject(r, "transactionHash",
                            jstr(receipt, "transactionHash"));
    add_uint(r, "blockNumber", block);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)gas);
    cJSON_AddStringToObject(r, "gasUsed", num);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)price);
    cJSON_AddStringToObject(r, "effectiveGasPrice", num);
    cJSON_AddNumberToObject(r, "costUsd",
                            bc_cost_usd(gas, price, bc->cfg.native_token_usd));
    cJSON_AddStringToObject(r, "fromAddress", from ? from : bc->cfg.from);
    cJSON_AddStringToObject(r, "status", "confirmed");
    bc_time_format(now_ms(), t);
    cJSON_AddStringToObject(r, "time", t);
    if (strcmp(op, "burn") == 0) {
        const char *why = jstr(j->data, "reason");
        cJSON_AddStringToObject(r, "reason", why ? why : "ticket cancelled");
    }
    return r;
}

/* -------------------------------------------------------------- quota */

static long quota_limit(const bc_t *bc, const char *tenant)
{
    const cJSON *q =
        cJSON_GetObjectItemCaseSensitive(bc->cfg.tenant_quotas, tenant);
    return cJSON_IsNumber(q) ? (long)q->valuedouble : bc->cfg.mint_quota;
}

static void quota_period_key(bc_period_t p, int64_t ms, char out[16])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    if (p == BC_PERIOD_DAY)
        strftime(out, 16, "%Y-%m-%d", &tm);
    else if (p == BC_PERIOD_MONTH)
        strftime(out, 16, "%Y-%m", &tm);
    else
        snprintf(out, 16, "total");
}

/* Mints counted for tenant in the current period, -1 on error. */
static long quota_used(bc_t *bc, const char *tenant, const char *period)
{
    char *k = state_key("quota", tenant, period), *v = NULL;
    int rc = st_get(bc, k, &v);
    free(k);
    long used = rc == 1 ? strtol(v, NULL, 10) : rc == 0 ? 0 : -1;
    free(v);
    return used;
}

static int quota_add(bc_t *bc, const char *tenant, const char *period)
{
    long used = quota_used(bc, tenant, period);
    char *k = state_key("quota", tenant, period), v[24];
    snprintf(v, sizeof(v), "%ld", used + 1);
    int rc = used < 0 ? -1 : st_put(bc, k, v);
    free(k);
    return rc;
}

static es_status_t quota_exceeded(bc_t *bc, const bc_job_t *j,
                                  const char *ticket, long limit, long used,
                                  const char *period, char *reason, size_t n)
{
    char t[32];
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "tenantId", j->tenant);
    cJSON_AddStringToObject(d, "ticketId", ticket);
    cJSON_AddStringToObject(d, "operation", "mint");
    cJSON_AddNumberToObject(d, "quota", (double)limit);
    cJSON_AddNumberToObject(d, "used", (double)used);
    cJSON_AddStringToObject(d, "period", period);
    cJSON_AddStringToObject(d, "reason", "mint quota exceeded");
    if (!j->time)
        bc_time_format(now_ms(), t);
    if (emit_one(bc, j->token, BC_TYPE_QUOTA, j->id, j->tenant,
                 j->time ? j->time : t, d, reason, n))
        return ES_RETRY;
    bc->host->counter_add(bc->host, "quota_exceeded", 1);
    set_reason(reason, n, "mint quota exceeded: tenant %s used %ld of %ld (%s)",
               j->tenant, used, limit, period);
    return ES_FAIL;
}

/* ---------------------------------------------------------- purchase */

/* The buyer's wallet: from the event, or linked earlier by a wallet
 * event. ES_OK with owner filled; otherwise a status with the reason. */
static es_status_t purchase_owner(bc_t *bc, const bc_job_t *j,
                                  char owner[BC_ADDR_SIZE], char *reason,
                                  size_t n)
{
    const char *w = jstr(j->data, "walletAddress");
    const char *user = jstr(j->data, "userId");
    char *val = NULL, *k;
    if (w) {
        if (bc_address_parse(w, owner) == 0)
            return ES_OK;
        set_reason(reason, n, "walletAddress: not a 20-byte hex address");
        return ES_FAIL;
    }
    k = state_key("wallet", j->tenant, user);
    int rc = st_get(bc, k, &val);
    free(k);
    if (rc == 1 && bc_address_parse(val, owner) == 0) {
        free(val);
        return ES_OK;
    }
    free(val);
    if (rc < 0) {
        set_reason(reason, n, "state read failed");
        return ES_RETRY;
    }
    /* Not linked yet: wait (the wallet event may be late) for a bounded
     * time counted from the first attempt, kept durably. */
    char first[24];
    int64_t t0 = now_ms();
    k = state_key("wait", j->tenant, j->id);
    if (st_get(bc, k, &val) == 1)
        t0 = strtoll(val, NULL, 10);
    else {
        snprintf(first, sizeof(first), "%lld", (long long)t0);
        st_put(bc, k, first);
    }
    free(val);
    long waited = (long)((now_ms() - t0) / 1000);
    if (waited >= bc->cfg.wallet_wait_s) {
        set_reason(reason, n, "no wallet linked for user %s after %ld s", user,
                   waited);
        bc->host->state_delete(bc->host, k);
        free(k);
        return ES_FAIL;
    }
    free(k);
    set_reason(reason, n, "no wallet linked for user %s yet", user);
    return ES_RETRY;
}

/* Checks that no other ticket maps to the same token id (a 53-bit hash
 * can collide; failing loudly beats emitting another ticket's mint). */
static es_status_t token_claim_check(bc_t *bc, const bc_job_t *j,
                                     const char *ticket, uint64_t token,
                                     char **claim_key, char **claim,
                                     char *reason, size_t n)
{
    char tk[24], *val = NULL;
    snprintf(tk, sizeof(tk), "%llu", (unsigned long long)token);
    *claim_key = state_key("token", "", tk);
    *claim = state_key("", j->tenant, ticket);
    if (!*claim_key || !*claim)
        return ES_RETRY;
    int rc = st_get(bc, *claim_key, &val);
    es_status_t st = ES_OK;
    if (rc < 0) {
        set_reason(reason, n, "state read failed");
        st = ES_RETRY;
    } else if (rc == 1 && strcmp(val, *claim) != 0) {
        set_reason(reason, n, "token id %s of ticket %s is taken by %s", tk,
                   ticket, val);
        st = ES_FAIL;
    }
    free(val);
    return st;
}

/* Records the mint (and counts it against the quota) atomically, then
 * emits its events. */
static es_status_t finish_mint(bc_t *bc, const bc_job_t *j, const char *ticket,
                               uint64_t token, const char *owner,
                               const cJSON *receipt, const char *mint_key,
                               const char *pending_key, const char *claim_key,
                               const char *claim, char *reason, size_t n)
{
    char period[16];
    const es_host_t *h = bc->host;
    cJSON *rec =
        make_record(bc, "mint", j, ticket, token, owner, receipt, reason, n);
    char *json = rec ? cJSON_PrintUnformatted(rec) : NULL;
    char *wait_key = state_key("wait", j->tenant, j->id);
    es_status_t st = ES_RETRY;
    if (!json || !wait_key)
        goto done;
    quota_period_key(bc->cfg.quota_period, now_ms(), period);
    if (h->state_begin(h) != 0)
        goto state_failed;
    if (st_put(bc, mint_key, json) || st_put(bc, claim_key, claim) ||
        quota_add(bc, j->tenant, period) || h->state_delete(h, pending_key) ||
        h->state_delete(h, wait_key) || h->state_commit(h)) {
        h->state_rollback(h);
        goto state_failed;
    }
    h->counter_add(h, "minted", 1);
    h->log(h, ES_LOG_INFO, "minted ticket=%s token=%llu owner=%s tx=%s", ticket,
           (unsigned long long)token, owner, jstr(rec, "transactionHash"));
    st = emit_record(bc, j->token, j->id, rec, reason, n) ? ES_RETRY : ES_OK;
    goto done;
state_failed:
    set_reason(reason, n, "state write failed");
done:
    free(wait_key);
    free(json);
    cJSON_Delete(rec);
    return st;
}

typedef struct keys_s {
    char *done;    /* finished operation record */
    char *pending; /* "hash owner" of a sent transaction */
    char *claim_key, *claim;
    char *cancel;
} keys_t;

static void keys_free(keys_t *k)
{
    free(k->done);
    free(k->pending);
    free(k->claim_key);
    free(k->claim);
    free(k->cancel);
}

static es_status_t do_purchase(bc_t *bc, const bc_job_t *j, char *reason,
                               size_t n)
{
    const char *ticket = jstr(j->data, "ticketId");
    keys_t k = {state_key("mint", j->tenant, ticket),
                state_key("mtx", j->tenant, ticket), NULL, NULL,
                state_key("cancel", j->tenant, ticket)};
    char owner[BC_ADDR_SIZE], chain_owner[BC_ADDR_SIZE], hash[BC_HASH_SIZE];
    char period[16], *val = NULL;
    cJSON *receipt = NULL;
    es_status_t st = ES_RETRY;
    uint64_t token = bc_token_id(ticket);
    int rc;

    if (!k.done || !k.pending || !k.cancel)
        goto done;
    if ((rc = replay_record(bc, j, k.done, reason, n)) != 0) {
        st = rc > 0 ? ES_OK : ES_RETRY;
        goto done;
    }
    if ((rc = st_get(bc, k.cancel, &val)) != 0) {
        /* Cancelled before it could be minted: nothing to do. */
        st = rc > 0 ? ES_OK : ES_RETRY;
        if (rc > 0)
            bc->host->log(bc->host, ES_LOG_INFO,
                          "ticket=%s was cancelled before minting", ticket);
        goto done;
    }
    if ((st = purchase_owner(bc, j, owner, reason, n)) != ES_OK)
        goto done;
    st = token_claim_check(bc, j, ticket, token, &k.claim_key, &k.claim, reason,
                           n);
    if (st != ES_OK)
        goto done;
    st = ES_RETRY;
    rc = resume_pending(bc, k.pending, &receipt, chain_owner, reason, n);
    if (rc < 0)
        goto done;
    if (rc == 1)
        goto finish;

    switch (chain_owner_of(bc, token, chain_owner, reason, n)) {
    case BC_RPC_TRANSIENT:
        goto done;
    case BC_RPC_OK:
        if (strcmp(chain_owner, owner) != 0) {
            set_reason(reason, n, "token %llu of ticket %s is owned by %s",
                       (unsigned long long)token, ticket, chain_owner);
            st = ES_FAIL;
            goto done;
        }
        /* Minted before (a crash before recording it): adopt that mint. */
        rc = chain_find_transfer(bc, BC_ZERO_ADDRESS, owner, token, hash,
                                 reason, n);
        if (rc == 0) {
            set_reason(reason, n,
                       "token %llu is owned by %s but its mint "
                       "transaction is not in the logs",
                       (unsigned long long)token, owner);
            st = ES_FAIL;
        }
        if (rc != 1 ||
            (st = fetch_receipt(bc, hash, &receipt, reason, n)) != ES_OK)
            goto done;
        goto finish;
    case BC_RPC_REVERT:
        break; /* not minted yet */
    }

    long limit = quota_limit(bc, j->tenant);
    quota_period_key(bc->cfg.quota_period, now_ms(), period);
    long used = limit > 0 ? quota_used(bc, j->tenant, period) : 0;
    if (used < 0)
        goto done;
    if (limit > 0 && used >= limit) {
        st = quota_exceeded(bc, j, ticket, limit, used, period, reason, n);
        goto done;
    }
    char w1[65], w2[65];
    const char *words[] = {w1, w2};
    bc_word_address(owner, w1);
    bc_word_u64(token, w2);
    char *data = bc_abi_call(BC_SEL_MINT, words, 2);
    st = data ? send_and_wait(bc, k.pending, data, owner, &receipt, reason, n)
              : ES_RETRY;
    free(data);
    if (st != ES_OK)
        goto done;
    snprintf(chain_owner, sizeof(chain_owner), "%s", owner);
finish:
    st = finish_mint(bc, j, ticket, token, chain_owner, receipt, k.done,
                     k.pending, k.claim_key, k.claim, reason, n);
done:
    free(val);
    cJSON_Delete(receipt);
    keys_free(&k);
    return st;
}

/* ------------------------------------------------------------ cancel */

static es_status_t finish_burn(bc_t *bc, const bc_job_t *j, const char *ticket,
                               uint64_t token, const char *owner,
                               const cJSON *receipt, const keys_t *k,
                               char *reason, size_t n)
{
    const es_host_t *h = bc->host;
    cJSON *rec =
        make_record(bc, "burn", j, ticket, token, owner, receipt, reason, n);
    char *json = rec ? cJSON_PrintUnformatted(rec) : NULL;
    es_status_t st = ES_RETRY;
    if (!json)
        goto done;
    if (h->state_begin(h) != 0 || st_put(bc, k->done, json) ||
        h->state_delete(h, k->pending) || h->state_commit(h)) {
        h->state_rollback(h);
        set_reason(reason, n, "state write failed");
        goto done;
    }
    h->counter_add(h, "revoked", 1);
    h->log(h, ES_LOG_INFO, "revoked ticket=%s token=%llu owner=%s tx=%s",
           ticket, (unsigned long long)token, owner,
           jstr(rec, "transactionHash"));
    st = emit_record(bc, j->token, j->id, rec, reason, n) ? ES_RETRY : ES_OK;
done:
    free(json);
    cJSON_Delete(rec);
    return st;
}

static es_status_t do_cancel(bc_t *bc, const bc_job_t *j, char *reason,
                             size_t n)
{
    const char *ticket = jstr(j->data, "ticketId");
    keys_t k = {state_key("revoke", j->tenant, ticket),
                state_key("btx", j->tenant, ticket), NULL, NULL,
                state_key("cancel", j->tenant, ticket)};
    char owner[BC_ADDR_SIZE], hash[BC_HASH_SIZE];
    cJSON *receipt = NULL;
    es_status_t st = ES_RETRY;
    uint64_t token = bc_token_id(ticket);
    int rc;

    if (!k.done || !k.pending || !k.cancel)
        goto done;
    if ((rc = replay_record(bc, j, k.done, reason, n)) != 0) {
        st = rc > 0 ? ES_OK : ES_RETRY;
        goto done;
    }
    /* From now on a purchase still being retried will not mint. */
    if (st_put(bc, k.cancel, j->id) != 0) {
        set_reason(reason, n, "state write failed");
        goto done;
    }
    rc = resume_pending(bc, k.pending, &receipt, owner, reason, n);
    if (rc < 0)
        goto done;
    if (rc == 1)
        goto finish;
    switch (chain_owner_of(bc, token, owner, reason, n)) {
    case BC_RPC_TRANSIENT:
        goto done;
    case BC_RPC_REVERT:
        /* Not on chain: never minted, or burned before we recorded it. */
        rc = chain_find_transfer(bc, NULL, BC_ZERO_ADDRESS, token, hash, reason,
                                 n);
        if (rc < 0)
            goto done;
        if (rc == 0) {
            bc->host->log(bc->host, ES_LOG_INFO,
                          "ticket=%s cancelled before it was minted", ticket);
            bc->host->counter_add(bc->host, "cancelled_unminted", 1);
            st = ES_OK;
            goto done;
        }
        if ((st = fetch_receipt(bc, hash, &receipt, reason, n)) != ES_OK)
            goto done;
        /* The burn's Transfer log names the previous owner (topic 1). */
        {
            const cJSON *logs =
                cJSON_GetObjectItemCaseSensitive(receipt, "logs");
            const cJSON *topics = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetArrayItem(logs, 0), "topics");
            const cJSON *from = cJSON_GetArrayItem(topics, 1);
            if (!cJSON_IsString(from) ||
                bc_abi_decode_address(from->valuestring, owner) != 0)
                snprintf(owner, sizeof(owner), "%s", BC_ZERO_ADDRESS);
        }
        goto finish;
    case BC_RPC_OK:
        break;
    }
    char w[65];
    const char *words[] = {w};
    bc_word_u64(token, w);
    char *data = bc_abi_call(BC_SEL_BURN, words, 1);
    st = data ? send_and_wait(bc, k.pending, data, owner, &receipt, reason, n)
              : ES_RETRY;
    free(data);
    if (st != ES_OK)
        goto done;
finish:
    st = finish_burn(bc, j, ticket, token, owner, receipt, &k, reason, n);
done:
    cJSON_Delete(receipt);
    keys_free(&k);
    return st;
}

/* --------------------------------------------- wallets and loyalty tiers */

/* Wallet links are written by the worker too: the host's state is one
 * SQLite connection per instance, and a put from another thread while the
 * worker holds a transaction would join (and could roll back with) it. */

static es_status_t do_wallet(bc_t *bc, const char *tenant, const cJSON *data,
                             char *reason, size_t n)
{
    char addr[BC_ADDR_SIZE];
    const char *user = jstr(data, "userId");
    if (bc_address_parse(jstr(data, "walletAddress"), addr) != 0) {
        set_reason(reason, n,
                   "data.walletAddress: missing or not a 20-byte hex address");
        return ES_FAIL;
    }
    char *k = state_key("wallet", tenant, user);
    int rc = st_put(bc, k, addr);
    free(k);
    if (rc != 0) {
        set_reason(reason, n, "state write failed");
        return ES_RETRY;
    }
    bc->host->counter_add(bc->host, "wallets_linked", 1);
    return ES_OK;
}

static es_status_t do_tier(bc_t *bc, const es_event_t *ev, bc_op_t op,
                           const char *tenant, const cJSON *data, char *reason,
                           size_t n)
{
    const char *user = jstr(data, "userId");
    const char *prev = jstr(data, op == BC_OP_TIER ? "previousTier" : "tier");
    const char *next = jstr(data, op == BC_OP_TIER ? "newTier" : "tier");
    char *k = state_key("wallet", tenant, user), *wallet = NULL, t[32];
    if (!next) {
        set_reason(reason, n, "data.%s: required",
                   op == BC_OP_TIER ? "newTier" : "tier");
        free(k);
        return ES_FAIL;
    }
    int rc = st_get(bc, k, &wallet);
    free(k);
    if (rc < 0) {
        set_reason(reason, n, "state read failed");
        return ES_RETRY;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "tenantId", tenant);
    cJSON_AddStringToObject(d, "userId", user);
    cJSON_AddItemToObject(d, "walletAddress",
                          wallet ? cJSON_CreateString(wallet)
                                 : cJSON_CreateNull());
    cJSON_AddItemToObject(d, "previousTier",
                          prev ? cJSON_CreateString(prev) : cJSON_CreateNull());
    cJSON_AddStringToObject(d, "newTier", next);
    cJSON_AddStringToObject(d, "trigger",
                            op == BC_OP_TIER ? "tier_changed"
                                             : "subscription_renewed");
    cJSON_AddStringToObject(d, "sourceEventId", ev->id);
    free(wallet);
    if (!ev->time)
        bc_time_format(now_ms(), t);
    if (emit_one(bc, ev->token, BC_TYPE_TIER, ev->id, tenant,
                 ev->time ? ev->time : t, d, reason, n))
        return ES_RETRY;
    bc->host->counter_add(bc->host, "tier_changes", 1);
    return ES_OK;
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
            j->op == BC_OP_PURCHASE ? do_purchase(bc, j, reason, sizeof(reason))
            : j->op == BC_OP_CANCEL
                ? do_cancel(bc, j, reason, sizeof(reason))
                : do_wallet(bc, j->tenant, j->data, reason, sizeof(reason));
        if (atomic_load(&bc->stop) && st != ES_OK) {
            /* Shutting down mid-operation: leave it pending; the host
             * redelivers after restart and the state resumes it. */
            job_free(j);
            break;
        }
        if (st != ES_OK) {
            if (!*reason)
                set_reason(reason, sizeof(reason), "out of memory");
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
        set_reason(reason, n, "out of memory");
        return ES_RETRY;
    }
    j->op = op;
    j->token = ev->token;
    pthread_mutex_lock(&bc->mu);
    if (bc->queued >= bc->cfg.queue_max) {
        pthread_mutex_unlock(&bc->mu);
        job_free(j);
        set_reason(reason, n, "queue full (%ld operations)", bc->cfg.queue_max);
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
    const char *tenant = ev->tenant && *ev->tenant ? ev->tenant
                         : jstr(data, "tenantId")  ? jstr(data, "tenantId")
                                                   : ev->subject;
    if (!cJSON_IsObject(data) || !tenant || !*tenant || !ev->id) {
        set_reason(reason, n, "%s: needs an id, a tenant and a data object",
                   ev->type);
        return ES_FAIL;
    }
    const char *need =
        (op == BC_OP_PURCHASE || op == BC_OP_CANCEL) ? "ticketId" : "userId";
    if (!jstr(data, need) || (op == BC_OP_PURCHASE && !jstr(data, "userId") &&
                              !jstr(data, "walletAddress"))) {
        set_reason(reason, n, "%s: data.%s is required", ev->type,
                   jstr(data, need) ? "userId" : need);
        return ES_FAIL;
    }
    char addr[BC_ADDR_SIZE];
    if (op == BC_OP_WALLET &&
        bc_address_parse(jstr(data, "walletAddress"), addr) != 0) {
        set_reason(reason, n,
                   "data.walletAddress: missing or not a 20-byte hex address");
        return ES_FAIL;
    }
    switch (op) {
    case BC_OP_TIER:
    case BC_OP_RENEW:
        return do_tier(bc, ev, op, tenant, data, reason, n);
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
    config_free(&bc->cfg);
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
    if (config_parse(&bc->cfg, config, errstr, errstr_size) != 0) {
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
