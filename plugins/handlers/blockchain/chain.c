/* The chain operations of the handler over JSON-RPC: ownerOf, simulate,
 * send, wait for the receipt, find a past Transfer, and the durable record
 * of a confirmed operation. */
#include "bc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

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
            bc_set_reason(reason, n, "eth_call: result is not a string");
            st = BC_RPC_TRANSIENT;
        }
    }
    cJSON_Delete(res);
    return st;
}

/* ownerOf(token): OK with the owner, REVERT when it does not exist. */
bc_rpc_status_t bc_chain_owner_of(bc_t *bc, uint64_t token,
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
        bc_set_reason(reason, n,
                      "ownerOf returned %.80s: is %s the ERC-721 contract?",
                      out, bc->cfg.contract);
        st = BC_RPC_TRANSIENT;
    }
    free(out);
    return st;
}

/* Hash of the latest Transfer(from, to, token) log of the contract, so an
 * operation whose transaction was sent but not recorded (crash in between)
 * is recognised. from/to NULL match any. 1 found, 0 none, -1 error. */
int bc_chain_find_transfer(bc_t *bc, const char *from, const char *to,
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
    const char *h = count > 0 ? bc_jstr(cJSON_GetArrayItem(res, count - 1),
                                        "transactionHash")
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
    int64_t deadline = bc_now_ms() + bc->cfg.receipt_timeout_ms;
    *receipt = NULL;
    for (;;) {
        cJSON *params = cJSON_CreateArray();
        cJSON_AddItemToArray(params, cJSON_CreateString(hash));
        if (bc_rpc_call(bc->rpc, "eth_getTransactionReceipt", params, receipt,
                        reason, n) != BC_RPC_OK)
            return -1;
        if (cJSON_IsObject(*receipt) && bc_jstr(*receipt, "blockNumber"))
            return 1;
        cJSON_Delete(*receipt);
        *receipt = NULL;
        if (bc_now_ms() >= deadline || atomic_load(&bc->stop))
            break;
        struct timespec ts = {bc->cfg.receipt_poll_ms / 1000,
                              (bc->cfg.receipt_poll_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    bc_set_reason(reason, n, "transaction %s not mined after %ld ms", hash,
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
    const char *s = bc_jstr(receipt, "status");
    return s && strcmp(s, "0x1") == 0;
}

/*
 * Resumes an operation whose transaction hash was kept under pending_key
 * ("hash owner"). 1: mined successfully (*receipt, owner filled); 0: nothing
 * pending any more (dropped or reverted: key removed, send again);
 * -1: try later (reason set).
 */
int bc_resume_pending(bc_t *bc, const char *pending_key, cJSON **receipt,
                      char owner[BC_ADDR_SIZE], char *reason, size_t n)
{
    char *val = NULL, hash[BC_HASH_SIZE];
    int rc = bc_st_get(bc, pending_key, &val);
    *receipt = NULL;
    if (rc <= 0) {
        if (rc < 0)
            bc_set_reason(reason, n, "state read failed");
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
        bc_set_reason(reason, n, "state delete failed");
        return -1;
    }
    return 0;
}

/*
 * Simulates data with eth_call (a revert there is final: it is reported
 * with its reason), sends it with eth_sendTransaction from the node-managed
 * account, keeps the hash under pending_key and waits for the receipt.
 */
es_status_t bc_send_and_wait(bc_t *bc, const char *pending_key,
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
            bc_set_reason(reason, n, "eth_sendTransaction: bad result");
        cJSON_Delete(res);
        return ES_RETRY;
    }
    snprintf(val, sizeof(val), "%s %s", res->valuestring, owner);
    char hash[BC_HASH_SIZE];
    snprintf(hash, sizeof(hash), "%s", res->valuestring);
    cJSON_Delete(res);
    if (bc_st_put(bc, pending_key, val) != 0)
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
        bc_set_reason(reason, n, "transaction %s reverted", hash);
        return ES_RETRY;
    }
    return ES_OK;
}

es_status_t bc_fetch_receipt(bc_t *bc, const char *hash, cJSON **receipt,
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
cJSON *bc_make_record(bc_t *bc, const char *op, const bc_job_t *j,
                      const char *ticket, uint64_t token, const char *owner,
                      const cJSON *receipt, char *reason, size_t n)
{
    uint64_t block = 0, gas = 0, price = 0;
    char num[24], t[32];
    const char *price_hex = bc_jstr(receipt, "effectiveGasPrice");
    cJSON *gp = NULL;
    if (!price_hex) {
        /* Pre-London nodes: the price the node asks now. */
        if (bc_rpc_call(bc->rpc, "eth_gasPrice", cJSON_CreateArray(), &gp,
                        reason, n) != BC_RPC_OK)
            return NULL;
        price_hex = cJSON_IsString(gp) ? gp->valuestring : NULL;
    }
    if (bc_quantity_parse(bc_jstr(receipt, "blockNumber"), &block) ||
        bc_quantity_parse(bc_jstr(receipt, "gasUsed"), &gas) || !price_hex ||
        bc_quantity_parse(price_hex, &price)) {
        bc_set_reason(reason, n, "receipt has bad blockNumber/gasUsed/price");
        cJSON_Delete(gp);
        return NULL;
    }
    cJSON_Delete(gp);
    const char *from = bc_jstr(receipt, "from");
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "operation", op);
    cJSON_AddStringToObject(r, "tenantId", j->tenant);
    cJSON_AddStringToObject(r, "ticketId", ticket);
    cJSON_AddStringToObject(r, "contractAddress", bc->cfg.contract);
    add_uint(r, "tokenId", token);
    cJSON_AddStringToObject(r, "chainId", bc->cfg.chain_id);
    cJSON_AddStringToObject(r, "ownerAddress", owner);
    cJSON_AddStringToObject(r, "transactionHash",
                            bc_jstr(receipt, "transactionHash"));
    add_uint(r, "blockNumber", block);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)gas);
    cJSON_AddStringToObject(r, "gasUsed", num);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)price);
    cJSON_AddStringToObject(r, "effectiveGasPrice", num);
    cJSON_AddNumberToObject(r, "costUsd",
                            bc_cost_usd(gas, price, bc->cfg.native_token_usd));
    cJSON_AddStringToObject(r, "fromAddress", from ? from : bc->cfg.from);
    cJSON_AddStringToObject(r, "status", "confirmed");
    bc_time_format(bc_now_ms(), t);
    cJSON_AddStringToObject(r, "time", t);
    if (strcmp(op, "burn") == 0) {
        const char *why = bc_jstr(j->data, "reason");
        cJSON_AddStringToObject(r, "reason", why ? why : "ticket cancelled");
    }
    return r;
}
