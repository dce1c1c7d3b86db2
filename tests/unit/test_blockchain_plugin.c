/*
 * The blockchain handler through its vtable with a fake host and a fake
 * chain: a loopback JSON-RPC server (libmicrohttpd) that behaves like
 * TicketNFT on ganache for the calls the handler makes (ownerOf, mint and
 * burn simulated and sent, receipts) and answers with ganache's own revert
 * data. Covers config errors, wallet lookup, quota, idempotent redelivery,
 * permanent reverts and an unreachable chain.
 */
#include <arpa/inet.h>
#include <check.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bc.h"
#include "bc_fake_host.h"
#include "eventstream/plugin.h"

const es_plugin_t *es_plugin_entry(uint32_t host_abi);

#define MINTER "0x90f8bf6a479f320ead074411a4b0e7944ea8c9c1"
#define BUYER "0xffcf8fdee72ac11b5c542428b35eef5769c409f0"
#define CONTRACT "0xe78a0f7e598cc8b0bb87894b0f60dd2a88d6a8ab"

/* ganache 7.9.2's revert data for TicketNFT's two require()s we hit */
#define DATA_INVALID_TOKEN                                                     \
    "0x08c379a000000000000000000000000000000000000000000000000000000000000"    \
    "00020000000000000000000000000000000000000000000000000000000000000001b"    \
    "5469636b65744e46543a20696e76616c696420746f6b656e2049440000000000"
#define DATA_NOT_MINTER                                                        \
    "0x08c379a000000000000000000000000000000000000000000000000000000000000"    \
    "000200000000000000000000000000000000000000000000000000000000000000023"    \
    "5469636b65744e46543a2063616c6c6572206973206e6f7420746865206d696e7465"     \
    "720000000000000000000000000000000000000000000000000000000000"

/* ------------------------------------------------------- fake chain */

typedef struct chain_s {
    struct MHD_Daemon *d;
    pthread_mutex_t mu;
    char owners[64][BC_ADDR_SIZE]; /* by slot; token ids in `tokens` */
    uint64_t tokens[64];
    int ntokens;
    int sends; /* eth_sendTransaction calls */
    int down;  /* answer 503 to everything */
    int hold;  /* sent transactions stay pending (no receipt) */
    char url[64];
} chain_t;

static chain_t chain;

static int find_token(uint64_t t)
{
    for (int i = 0; i < chain.ntokens; i++)
        if (chain.tokens[i] == t && chain.owners[i][0])
            return i;
    return -1;
}

static uint64_t word_u64(const char *w)
{
    return strtoull(w + 48, NULL, 16);
}

static cJSON *revert(const char *data)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "code", -32000);
    cJSON_AddStringToObject(e, "message",
                            "VM Exception while processing transaction: "
                            "revert");
    cJSON_AddStringToObject(e, "data", data);
    return e;
}

/* Runs TicketNFT's logic for data from `from`; *err set on a revert. */
static char *execute(const char *from, const char *data, int apply, cJSON **err)
{
    const char *args = data + 10;
    if (strncmp(data + 2, BC_SEL_OWNER_OF, 8) == 0) {
        int i = find_token(word_u64(args));
        if (i < 0) {
            *err = revert(DATA_INVALID_TOKEN);
            return NULL;
        }
        char *out = malloc(67);
        snprintf(out, 67, "0x%024x%s", 0, chain.owners[i] + 2);
        return out;
    }
    if (!from || strcmp(from, MINTER) != 0) {
        *err = revert(DATA_NOT_MINTER);
        return NULL;
    }
    if (strncmp(data + 2, BC_SEL_MINT, 8) == 0) {
        uint64_t t = word_u64(args + 64);
        if (apply) {
            int i = chain.ntokens++;
            chain.tokens[i] = t;
            snprintf(chain.owners[i], BC_ADDR_SIZE, "0x%.40s", args + 24);
        }
    } else if (strncmp(data + 2, BC_SEL_BURN, 8) == 0) {
        int i = find_token(word_u64(args));
        if (i < 0) {
            *err = revert(DATA_INVALID_TOKEN);
            return NULL;
        }
        if (apply)
            chain.owners[i][0] = '\0';
    }
    return strdup("0x");
}

static cJSON *rpc(const char *method, cJSON *params, cJSON **err)
{
    cJSON *p0 = cJSON_GetArrayItem(params, 0);
    const char *from = cJSON_GetStringValue(cJSON_GetObjectItem(p0, "from"));
    const char *data = cJSON_GetStringValue(cJSON_GetObjectItem(p0, "data"));
    char buf[80];
    if (strcmp(method, "eth_call") == 0 ||
        strcmp(method, "eth_sendTransaction") == 0) {
        int send = method[4] == 's';
        char *out = execute(from, data, send, err);
        if (!out)
            return NULL;
        if (!send) {
            cJSON *r = cJSON_CreateString(out);
            free(out);
            return r;
        }
        free(out);
        snprintf(buf, sizeof(buf), "0x%064x", ++chain.sends);
        return cJSON_CreateString(buf);
    }
    if (strcmp(method, "eth_getTransactionReceipt") == 0 ||
        strcmp(method, "eth_getTransactionByHash") == 0) {
        const char *h = cJSON_GetStringValue(p0);
        int n = (int)strtol(h + 2, NULL, 16);
        if (n < 1 || n > chain.sends ||
            (chain.hold && strstr(method, "Receipt"))) /* pending */
            return cJSON_CreateNull();
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "transactionHash", h);
        snprintf(buf, sizeof(buf), "0x%x", 100 + n);
        cJSON_AddStringToObject(r, "blockNumber", buf);
        cJSON_AddStringToObject(r, "gasUsed", "0xd203"); /* 53763 */
        cJSON_AddStringToObject(r, "effectiveGasPrice", "0x3b9aca00");
        cJSON_AddStringToObject(r, "status", "0x1");
        cJSON_AddStringToObject(r, "from", MINTER);
        cJSON_AddItemToObject(r, "logs", cJSON_CreateArray());
        return r;
    }
    if (strcmp(method, "eth_getLogs") == 0)
        return cJSON_CreateArray();
    if (strcmp(method, "eth_gasPrice") == 0)
        return cJSON_CreateString("0x3b9aca00");
    *err = cJSON_CreateObject();
    cJSON_AddNumberToObject(*err, "code", -32601);
    cJSON_AddStringToObject(*err, "message", "method not found");
    return NULL;
}

typedef struct upload_s {
    char *body;
    size_t len;
} upload_t;

static enum MHD_Result answer(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    upload_t *u = *con_cls;
    if (!u) {
        *con_cls = calloc(1, sizeof(upload_t));
        return MHD_YES;
    }
    if (*upload_size) {
        u->body = realloc(u->body, u->len + *upload_size + 1);
        memcpy(u->body + u->len, upload, *upload_size);
        u->len += *upload_size;
        u->body[u->len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&chain.mu);
    unsigned status = MHD_HTTP_OK;
    char *text = NULL;
    if (chain.down) {
        status = MHD_HTTP_SERVICE_UNAVAILABLE;
        text = strdup("");
    } else {
        cJSON *req = cJSON_ParseWithLength(u->body ? u->body : "", u->len);
        cJSON *res = cJSON_CreateObject(), *err = NULL;
        cJSON_AddStringToObject(res, "jsonrpc", "2.0");
        cJSON_AddItemToObject(
            res, "id", cJSON_Duplicate(cJSON_GetObjectItem(req, "id"), 1));
        cJSON *r = rpc(cJSON_GetStringValue(cJSON_GetObjectItem(req, "method")),
                       cJSON_GetObjectItem(req, "params"), &err);
        if (err)
            cJSON_AddItemToObject(res, "error", err);
        else
            cJSON_AddItemToObject(res, "result", r);
        text = cJSON_PrintUnformatted(res);
        cJSON_Delete(res);
        cJSON_Delete(req);
    }
    pthread_mutex_unlock(&chain.mu);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        strlen(text), text, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    upload_t *u = *con_cls;
    if (u) {
        free(u->body);
        free(u);
    }
    *con_cls = NULL;
}

static void chain_start(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    memset(&chain, 0, sizeof(chain));
    pthread_mutex_init(&chain.mu, NULL);
    chain.d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        answer, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
        MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
    ck_assert_ptr_nonnull(chain.d);
    const union MHD_DaemonInfo *i =
        MHD_get_daemon_info(chain.d, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(chain.url, sizeof(chain.url), "http://127.0.0.1:%u/",
             (unsigned)i->port);
}

static void chain_stop(void)
{
    MHD_stop_daemon(chain.d);
}

/* ------------------------------------------------------------ harness */

static const es_plugin_t *plugin;
static fake_host_t *fh;
static void *inst;
static uint64_t next_token;

static void setup(void)
{
    plugin = es_plugin_entry(ES_PLUGIN_ABI_VERSION);
    fh = fh_new(NULL);
    fh->verbose = getenv("BC_VERBOSE") != NULL;
    inst = NULL;
    chain_start();
}

static void teardown(void)
{
    plugin->destroy(inst);
    fh_destroy(fh);
    chain_stop();
}

/* Starts an instance with the base config plus `extra` members. */
static void start(const char *extra)
{
    char text[1024], err[256] = "";
    snprintf(text, sizeof(text),
             "{\"rpc_url\":\"%s\",\"contract_address\":\"" CONTRACT "\","
             "\"from_address\":\"" MINTER "\",\"chain_id\":\"GANACHE\","
             "\"native_token_usd\":2000,\"receipt_timeout_ms\":2000,"
             "\"receipt_poll_interval_ms\":10,\"rpc_timeout_ms\":2000%s%s}",
             chain.url, extra ? "," : "", extra ? extra : "");
    cJSON *conf = cJSON_Parse(text);
    ck_assert_ptr_nonnull(conf);
    ck_assert_msg(plugin->init(&fh->host, conf, &inst, err, sizeof(err)) == 0,
                  "init: %s", err);
    cJSON_Delete(conf);
}

/* Delivers one event; waits for its completion when PENDING. */
static es_status_t deliver(const char *type, const char *id,
                           const char *data_json, char *reason)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"specversion\":\"1.0\",\"type\":\"%s\",\"source\":\"t\","
             "\"id\":\"%s\",\"time\":\"2026-02-28T12:00:00.000Z\","
             "\"data\":%s}",
             type, id, data_json);
    cJSON *ce = cJSON_Parse(text);
    ck_assert_ptr_nonnull(ce);
    es_event_t ev = {.json = text,
                     .json_len = strlen(text),
                     .ce = ce,
                     .id = id,
                     .type = type,
                     .source = "t",
                     .time = "2026-02-28T12:00:00.000Z",
                     .tenant = "tenant-a",
                     .topic = "ticketing-events",
                     .token = ++next_token,
                     .attempt = 1};
    const es_event_t *evs[] = {&ev};
    es_result_t r = {0};
    size_t before = fh->ndone;
    plugin->deliver(inst, evs, 1, &r);
    cJSON_Delete(ce);
    es_status_t st = r.status;
    if (reason)
        strcpy(reason, r.reason);
    if (st == ES_PENDING) {
        ck_assert_int_eq(fh_wait_completions(fh, before + 1, 10000), 0);
        const fh_completion_t *c = fh_completion(fh, ev.token);
        ck_assert_ptr_nonnull(c);
        st = c->status;
        if (reason)
            strcpy(reason, c->reason);
    }
    return st;
}

#define PURCHASED "eventzr.ticketing.ticket.purchased.v1"
#define CANCELLED "eventzr.ticketing.ticket.cancelled.v1"
#define LINKED "eventzr.wallet.wallet.linked.v1"
#define TIER "eventzr.user.tier.changed.v1"
#define MINTED "eventzr.blockchain.ticket.minted.v1"

static void link_wallet(const char *user, const char *addr)
{
    char data[256], reason[256];
    snprintf(data, sizeof(data),
             "{\"tenantId\":\"tenant-a\",\"userId\":\"%s\","
             "\"walletAddress\":\"%s\"}",
             user, addr);
    ck_assert_int_eq(deliver(LINKED, "w-1", data, reason), ES_OK);
}

static es_status_t purchase(const char *id, const char *ticket,
                            const char *user, char *reason)
{
    char data[256];
    snprintf(data, sizeof(data),
             "{\"tenantId\":\"tenant-a\",\"ticketId\":\"%s\","
             "\"userId\":\"%s\",\"orderId\":\"o-1\"}",
             ticket, user);
    return deliver(PURCHASED, id, data, reason);
}

/* -------------------------------------------------------------- tests */

START_TEST(test_config_errors)
{
    static const struct {
        const char *json, *expect;
    } cases[] = {
        {"{\"contract_address\":\"" CONTRACT "\",\"from_address\":\"" MINTER
         "\"}",
         "rpc_url: required"},
        {"{\"rpc_url\":\"http://x\",\"contract_address\":\"0x12\","
         "\"from_address\":\"" MINTER "\"}",
         "contract_address: must be a 0x-prefixed 20-byte hex address"},
        {"{\"rpc_url\":\"http://x\",\"colour\":1}", "colour: unknown key"},
        {"{\"rpc_url\":\"http://x\",\"quota_period\":\"week\"}",
         "quota_period: must be \"total\", \"day\" or \"month\""},
        {"{\"rpc_url\":\"http://x\",\"tenant_quotas\":{\"a\":-1}}",
         "tenant_quotas.a: must be a non-negative integer"},
        /* out of range of a long: refused before the cast (UBSan) */
        {"{\"rpc_url\":\"http://x\",\"tenant_quotas\":{\"a\":1e300}}",
         "tenant_quotas.a: must be a non-negative integer"},
        {"{\"rpc_url\":\"http://x\",\"receipt_timeout_ms\":5}",
         "receipt_timeout_ms: must be an integer from 100 to 3600000"},
        {"[]", "config: must be an object"},
        {"{\"rpc_url\":\"http://x\",\"contract_address\":\"" CONTRACT
         "\",\"from_address\":\"" MINTER
         "\",\"rpc_bearer_token\":\"t\\r\\nX-Evil: 1\"}",
         "rpc_bearer_token: must not hold a line break"},
        {"{\"rpc_url\":\"https://x\",\"contract_address\":\"" CONTRACT
         "\",\"from_address\":\"" MINTER
         "\",\"rpc_ca_file\":\"/nonexistent/ca.pem\"}",
         "rpc_ca_file: /nonexistent/ca.pem: No such file or directory"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        void *x = NULL;
        cJSON *c = cJSON_Parse(cases[i].json);
        ck_assert_int_ne(plugin->init(&fh->host, c, &x, err, sizeof(err)), 0);
        ck_assert_ptr_null(x);
        ck_assert_msg(strncmp(err, cases[i].expect, strlen(cases[i].expect)) ==
                          0,
                      "case %zu: got \"%s\"", i, err);
        cJSON_Delete(c);
    }
}
END_TEST

START_TEST(test_ignored_and_invalid)
{
    char reason[256];
    start(NULL);
    ck_assert_int_eq(deliver("eventzr.wallet.balance.updated.v1", "b-1",
                             "{\"userId\":\"u\"}", reason),
                     ES_OK);
    ck_assert_int_eq(deliver(PURCHASED, "p-0", "{\"userId\":\"u\"}", reason),
                     ES_FAIL);
    ck_assert_str_eq(reason, PURCHASED ": data.ticketId is required");
    ck_assert_int_eq(deliver(LINKED, "w-0",
                             "{\"userId\":\"u\",\"walletAddress\":\"0x1\"}",
                             reason),
                     ES_FAIL);
    ck_assert_ptr_nonnull(strstr(reason, "walletAddress"));
    /* Two wallets in one purchase: a Lua filter checking the address sees
     * the last, a lookup here the first; nothing is minted to either. */
    ck_assert_int_eq(
        deliver(
            PURCHASED, "p-dup",
            "{\"ticketId\":\"t-1\",\"userId\":\"u\",\"walletAddress\":"
            "\"0x1111111111111111111111111111111111111111\",\"walletAddress\":"
            "\"0x2222222222222222222222222222222222222222\"}",
            reason),
        ES_FAIL);
    ck_assert_str_eq(reason, PURCHASED ": data.walletAddress is given twice in "
                                       "its object (which one is meant would "
                                       "be a guess)");
    ck_assert_int_eq(chain.sends, 0);
}
END_TEST

START_TEST(test_wallet_lookup_and_mint)
{
    char reason[256];
    start(NULL);
    /* unknown wallet: retried, nothing sent */
    ck_assert_int_eq(purchase("p-1", "ticket-1", "user-1", reason), ES_RETRY);
    ck_assert_str_eq(reason, "no wallet linked for user user-1 yet");
    ck_assert_int_eq(chain.sends, 0);
    /* linked (mixed case in, lower case stored) */
    link_wallet("user-1", "0xFFcf8FDEE72ac11b5c542428B35EEF5769C409f0");
    char *w = fh_state(fh, "wallet:8:tenant-a:user-1");
    ck_assert_str_eq(w, BUYER);
    free(w);
    ck_assert_int_eq(purchase("p-1", "ticket-1", "user-1", reason), ES_OK);
    ck_assert_int_eq(chain.sends, 1);
    ck_assert_str_eq(chain.owners[0], BUYER);
    ck_assert_uint_eq(chain.tokens[0], bc_token_id("ticket-1"));
    ck_assert_int_eq(fh->nemits, 3);
    ck_assert_str_eq(fh->emits[0].topic, MINTED);
    ck_assert_str_eq(fh->emits[1].topic, "eventzr.blockchain.nft.events.v1");
    ck_assert_str_eq(fh->emits[2].topic,
                     "eventzr.blockchain.transaction.events.v1");
    ck_assert_str_eq(fh->emits[0].key, "tenant-a");
    ck_assert_uint_eq(fh->emits[0].parent, next_token);
    cJSON *ev = cJSON_Parse(fh->emits[0].json);
    cJSON *d = cJSON_GetObjectItem(ev, "data");
    ck_assert_str_eq(cJSON_GetObjectItem(ev, "id")->valuestring,
                     "evt-0849ebb4-fe26-8af0-83c5-9815e595028e");
    ck_assert_str_eq(cJSON_GetObjectItem(ev, "subject")->valuestring,
                     "tenant-a");
    ck_assert_str_eq(cJSON_GetObjectItem(d, "ownerAddress")->valuestring,
                     BUYER);
    ck_assert_str_eq(cJSON_GetObjectItem(d, "contractAddress")->valuestring,
                     CONTRACT);
    ck_assert_str_eq(cJSON_GetObjectItem(d, "chainId")->valuestring, "GANACHE");
    ck_assert_str_eq(cJSON_GetObjectItem(d, "gasUsed")->valuestring, "53763");
    ck_assert_int_eq(cJSON_GetObjectItem(d, "blockNumber")->valueint, 101);
    ck_assert_double_eq_tol(cJSON_GetObjectItem(d, "costUsd")->valuedouble,
                            53763 * 1e9 / 1e18 * 2000, 1e-12);
    ck_assert_double_eq(cJSON_GetObjectItem(d, "tokenId")->valuedouble,
                        (double)bc_token_id("ticket-1"));
    cJSON_Delete(ev);
}
END_TEST

START_TEST(test_redelivery_is_idempotent)
{
    char reason[256];
    start(NULL);
    link_wallet("user-1", BUYER);
    ck_assert_int_eq(purchase("p-1", "ticket-1", "user-1", reason), ES_OK);
    char *first = strdup(fh->emits[0].json);
    /* the same event again (a redelivery after a restart) */
    ck_assert_int_eq(purchase("p-1", "ticket-1", "user-1", reason), ES_OK);
    ck_assert_int_eq(chain.sends, 1);
    ck_assert_int_eq(fh->nemits, 6);
    ck_assert_str_eq(fh->emits[3].json, first);
    free(first);
    /* lost state, token already on chain for the same owner: adopted only
     * if its mint is in the logs; the fake chain has no logs, so it is
     * reported instead of minted twice */
    plugin->destroy(inst);
    fh_destroy(fh);
    fh = fh_new(NULL);
    start(NULL);
    link_wallet("user-1", BUYER);
    ck_assert_int_eq(purchase("p-1", "ticket-1", "user-1", reason), ES_FAIL);
    ck_assert_ptr_nonnull(strstr(reason, "not in the logs"));
    ck_assert_int_eq(chain.sends, 1);
}
END_TEST

/* A transaction not mined within receipt_timeout_ms: RETRY, and the next
 * attempt waits for the same transaction instead of sending another. */
START_TEST(test_pending_transaction_resumed)
{
    char reason[256];
    start("\"receipt_timeout_ms\":100");
    link_wallet("user-1", BUYER);
    chain.hold = 1;
    ck_assert_int_eq(purchase("p-1", "ticket-1", "user-1", reason), ES_RETRY);
    ck_assert_str_eq(reason, "transaction 0x"
                             "0000000000000000000000000000000000000000000000000"
                             "000000000000001 not mined after 100 ms");
    ck_assert_int_eq(purchase("p-1", "ticket-1", "user-1", reason), ES_RETRY);
    chain.hold = 0;
    ck_assert_int_eq(purchase("p-1", "ticket-1", "user-1", reason), ES_OK);
    ck_assert_int_eq(chain.sends, 1);
    cJSON *ev = cJSON_Parse(fh->emits[0].json);
    ck_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "data"), "transactionHash")
            ->valuestring,
        "0x0000000000000000000000000000000000000000000000000000000000000001");
    cJSON_Delete(ev);
    char *pending = fh_state(fh, "mtx:8:tenant-a:ticket-1");
    ck_assert_ptr_null(pending);
}
END_TEST

START_TEST(test_owned_by_other_fails)
{
    char reason[256];
    start(NULL);
    chain.tokens[0] = bc_token_id("ticket-9");
    strcpy(chain.owners[0], MINTER);
    chain.ntokens = 1;
    link_wallet("user-1", BUYER);
    ck_assert_int_eq(purchase("p-9", "ticket-9", "user-1", reason), ES_FAIL);
    ck_assert_ptr_nonnull(strstr(reason, "is owned by " MINTER));
    ck_assert_int_eq(chain.sends, 0);
}
END_TEST

START_TEST(test_quota)
{
    char reason[256];
    start("\"mint_quota\":1,\"tenant_quotas\":{\"tenant-b\":5}");
    link_wallet("user-1", BUYER);
    ck_assert_int_eq(purchase("p-1", "ticket-1", "user-1", reason), ES_OK);
    ck_assert_int_eq(purchase("p-2", "ticket-2", "user-1", reason), ES_FAIL);
    ck_assert_str_eq(
        reason, "mint quota exceeded: tenant tenant-a used 1 of 1 (total)");
    ck_assert_int_eq(chain.sends, 1);
    ck_assert_int_eq(fh_count_topic(fh, "eventzr.blockchain.quota.events.v1"),
                     1);
    cJSON *ev = cJSON_Parse(fh->emits[fh->nemits - 1].json);
    cJSON *d = cJSON_GetObjectItem(ev, "data");
    ck_assert_int_eq(cJSON_GetObjectItem(d, "quota")->valueint, 1);
    ck_assert_int_eq(cJSON_GetObjectItem(d, "used")->valueint, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(d, "ticketId")->valuestring,
                     "ticket-2");
    cJSON_Delete(ev);
    /* a redelivered, already minted ticket is not refused by the quota */
    ck_assert_int_eq(purchase("p-1", "ticket-1", "user-1", reason), ES_OK);
    char *used = fh_state(fh, "quota:8:tenant-a:total");
    ck_assert_str_eq(used, "1");
    free(used);
}
END_TEST

START_TEST(test_not_authorised_fails)
{
    char reason[256];
    start("\"from_address\":\"" BUYER "\"");
    link_wallet("user-1", BUYER);
    ck_assert_int_eq(purchase("p-1", "ticket-1", "user-1", reason), ES_FAIL);
    ck_assert_str_eq(reason, "TicketNFT: caller is not the minter");
    ck_assert_int_eq(chain.sends, 0);
    ck_assert_int_eq(fh->nemits, 0);
}
END_TEST

START_TEST(test_chain_down_retries)
{
    char reason[256];
    start(NULL);
    link_wallet("user-1", BUYER);
    chain.down = 1;
    ck_assert_int_eq(purchase("p-1", "ticket-1", "user-1", reason), ES_RETRY);
    ck_assert_ptr_nonnull(strstr(reason, "503"));
    chain.down = 0;
    ck_assert_int_eq(purchase("p-1", "ticket-1", "user-1", reason), ES_OK);
    ck_assert_int_eq(chain.sends, 1);
}
END_TEST

START_TEST(test_emit_failure_retries_same_ids)
{
    char reason[256];
    start(NULL);
    link_wallet("user-1", BUYER);
    fh->fail_emit = 1;
    ck_assert_int_eq(purchase("p-1", "ticket-1", "user-1", reason), ES_RETRY);
    ck_assert_ptr_nonnull(strstr(reason, "producer queue full"));
    fh->fail_emit = 0;
    ck_assert_int_eq(purchase("p-1", "ticket-1", "user-1", reason), ES_OK);
    ck_assert_int_eq(chain.sends, 1);
    ck_assert_int_eq(fh_count_topic(fh, MINTED), 1);
}
END_TEST

START_TEST(test_wallet_wait_bounded)
{
    char reason[256];
    start("\"wallet_wait_s\":0");
    ck_assert_int_eq(purchase("p-1", "ticket-1", "user-7", reason), ES_FAIL);
    ck_assert_str_eq(reason, "no wallet linked for user user-7 after 0 s");
}
END_TEST

START_TEST(test_cancel_revokes)
{
    char reason[256];
    start(NULL);
    link_wallet("user-1", BUYER);
    ck_assert_int_eq(purchase("p-1", "ticket-1", "user-1", reason), ES_OK);
    ck_assert_int_eq(deliver(CANCELLED, "c-1",
                             "{\"tenantId\":\"tenant-a\",\"ticketId\":"
                             "\"ticket-1\",\"reason\":\"refund\"}",
                             reason),
                     ES_OK);
    ck_assert_int_eq(chain.sends, 2);
    ck_assert_int_lt(find_token(bc_token_id("ticket-1")), 0);
    ck_assert_int_eq(fh_count_topic(fh, "eventzr.blockchain.ticket.revoked.v1"),
                     1);
    /* a purchase redelivered after the cancellation mints nothing */
    plugin->destroy(inst);
    inst = NULL;
    start(NULL);
    char *rec = fh_state(fh, "mint:8:tenant-a:ticket-1");
    ck_assert_ptr_nonnull(rec);
    free(rec);
    ck_assert_int_eq(purchase("p-2", "ticket-2", "user-1", reason), ES_OK);
    ck_assert_int_eq(deliver(CANCELLED, "c-3",
                             "{\"tenantId\":\"tenant-a\",\"ticketId\":"
                             "\"ticket-3\"}",
                             reason),
                     ES_OK);
    ck_assert_int_eq(purchase("p-3", "ticket-3", "user-1", reason), ES_OK);
    ck_assert_int_eq(chain.sends, 3); /* ticket-2 only */
}
END_TEST

START_TEST(test_tier_change)
{
    char reason[256];
    start(NULL);
    link_wallet("user-1", BUYER);
    ck_assert_int_eq(
        deliver(TIER, "t-1",
                "{\"tenantId\":\"tenant-a\",\"userId\":\"user-1\","
                "\"previousTier\":\"silver\",\"newTier\":\"gold\"}",
                reason),
        ES_OK);
    ck_assert_int_eq(fh->nemits, 1);
    ck_assert_str_eq(fh->emits[0].topic,
                     "eventzr.blockchain.loyalty.tier_changed.v1");
    cJSON *ev = cJSON_Parse(fh->emits[0].json);
    cJSON *d = cJSON_GetObjectItem(ev, "data");
    ck_assert_str_eq(cJSON_GetObjectItem(d, "newTier")->valuestring, "gold");
    ck_assert_str_eq(cJSON_GetObjectItem(d, "walletAddress")->valuestring,
                     BUYER);
    ck_assert_str_eq(cJSON_GetObjectItem(ev, "time")->valuestring,
                     "2026-02-28T12:00:00.000Z");
    cJSON_Delete(ev);
    ck_assert_int_eq(deliver("eventzr.billing.subscription.renewed.v1", "r-1",
                             "{\"tenantId\":\"tenant-a\",\"userId\":\"user-2\","
                             "\"subscriptionId\":\"s-1\",\"tier\":\"gold\"}",
                             reason),
                     ES_OK);
    ev = cJSON_Parse(fh->emits[1].json);
    d = cJSON_GetObjectItem(ev, "data");
    ck_assert_str_eq(cJSON_GetObjectItem(d, "trigger")->valuestring,
                     "subscription_renewed");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(d, "walletAddress")));
    cJSON_Delete(ev);
    ck_assert_int_eq(chain.sends, 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("blockchain_plugin");
    TCase *tc = tcase_create("plugin");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_ignored_and_invalid);
    tcase_add_test(tc, test_wallet_lookup_and_mint);
    tcase_add_test(tc, test_redelivery_is_idempotent);
    tcase_add_test(tc, test_pending_transaction_resumed);
    tcase_add_test(tc, test_owned_by_other_fails);
    tcase_add_test(tc, test_quota);
    tcase_add_test(tc, test_not_authorised_fails);
    tcase_add_test(tc, test_chain_down_retries);
    tcase_add_test(tc, test_emit_failure_retries_same_ids);
    tcase_add_test(tc, test_wallet_wait_bounded);
    tcase_add_test(tc, test_cancel_revokes);
    tcase_add_test(tc, test_tier_change);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
