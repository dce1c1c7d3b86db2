/* What each input event does: purchase (mint), cancellation (burn), the
 * per-tenant quota, wallet links and loyalty tiers. */
#include "bc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

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
    char *k = bc_state_key("quota", tenant, period), *v = NULL;
    int rc = bc_st_get(bc, k, &v);
    free(k);
    long used = rc == 1 ? strtol(v, NULL, 10) : rc == 0 ? 0 : -1;
    free(v);
    return used;
}

static int quota_add(bc_t *bc, const char *tenant, const char *period)
{
    long used = quota_used(bc, tenant, period);
    char *k = bc_state_key("quota", tenant, period), v[24];
    snprintf(v, sizeof(v), "%ld", used + 1);
    int rc = used < 0 ? -1 : bc_st_put(bc, k, v);
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
        bc_time_format(bc_now_ms(), t);
    if (bc_emit_one(bc, j->token, BC_TYPE_QUOTA, j->id, j->tenant,
                    j->time ? j->time : t, d, reason, n))
        return ES_RETRY;
    bc->host->counter_add(bc->host, "quota_exceeded", 1);
    bc_set_reason(reason, n,
                  "mint quota exceeded: tenant %s used %ld of %ld (%s)",
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
    const char *w = bc_jstr(j->data, "walletAddress");
    const char *user = bc_jstr(j->data, "userId");
    char *val = NULL, *k;
    if (w) {
        if (bc_address_parse(w, owner) == 0)
            return ES_OK;
        bc_set_reason(reason, n, "walletAddress: not a 20-byte hex address");
        return ES_FAIL;
    }
    k = bc_state_key("wallet", j->tenant, user);
    int rc = bc_st_get(bc, k, &val);
    free(k);
    if (rc == 1 && bc_address_parse(val, owner) == 0) {
        free(val);
        return ES_OK;
    }
    free(val);
    if (rc < 0) {
        bc_set_reason(reason, n, "state read failed");
        return ES_RETRY;
    }
    /* Not linked yet: wait (the wallet event may be late) for a bounded
     * time counted from the first attempt, kept durably. */
    char first[24];
    int64_t t0 = bc_now_ms();
    k = bc_state_key("wait", j->tenant, j->id);
    if (bc_st_get(bc, k, &val) == 1)
        t0 = strtoll(val, NULL, 10);
    else {
        snprintf(first, sizeof(first), "%lld", (long long)t0);
        bc_st_put(bc, k, first);
    }
    free(val);
    long waited = (long)((bc_now_ms() - t0) / 1000);
    if (waited >= bc->cfg.wallet_wait_s) {
        bc_set_reason(reason, n, "no wallet linked for user %s after %ld s",
                      user, waited);
        bc->host->state_delete(bc->host, k);
        free(k);
        return ES_FAIL;
    }
    free(k);
    bc_set_reason(reason, n, "no wallet linked for user %s yet", user);
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
    *claim_key = bc_state_key("token", "", tk);
    *claim = bc_state_key("", j->tenant, ticket);
    if (!*claim_key || !*claim)
        return ES_RETRY;
    int rc = bc_st_get(bc, *claim_key, &val);
    es_status_t st = ES_OK;
    if (rc < 0) {
        bc_set_reason(reason, n, "state read failed");
        st = ES_RETRY;
    } else if (rc == 1 && strcmp(val, *claim) != 0) {
        bc_set_reason(reason, n, "token id %s of ticket %s is taken by %s", tk,
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
        bc_make_record(bc, "mint", j, ticket, token, owner, receipt, reason, n);
    char *json = rec ? cJSON_PrintUnformatted(rec) : NULL;
    char *wait_key = bc_state_key("wait", j->tenant, j->id);
    es_status_t st = ES_RETRY;
    if (!json || !wait_key)
        goto done;
    quota_period_key(bc->cfg.quota_period, bc_now_ms(), period);
    if (h->state_begin(h) != 0)
        goto state_failed;
    if (bc_st_put(bc, mint_key, json) || bc_st_put(bc, claim_key, claim) ||
        quota_add(bc, j->tenant, period) || h->state_delete(h, pending_key) ||
        h->state_delete(h, wait_key) || h->state_commit(h)) {
        h->state_rollback(h);
        goto state_failed;
    }
    h->counter_add(h, "minted", 1);
    h->log(h, ES_LOG_INFO, "minted ticket=%s token=%llu owner=%s tx=%s", ticket,
           (unsigned long long)token, owner, bc_jstr(rec, "transactionHash"));
    st = bc_emit_record(bc, j->token, j->id, rec, reason, n) ? ES_RETRY : ES_OK;
    goto done;
state_failed:
    bc_set_reason(reason, n, "state write failed");
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

es_status_t bc_do_purchase(bc_t *bc, const bc_job_t *j, char *reason, size_t n)
{
    const char *ticket = bc_jstr(j->data, "ticketId");
    keys_t k = {bc_state_key("mint", j->tenant, ticket),
                bc_state_key("mtx", j->tenant, ticket), NULL, NULL,
                bc_state_key("cancel", j->tenant, ticket)};
    char owner[BC_ADDR_SIZE], chain_owner[BC_ADDR_SIZE], hash[BC_HASH_SIZE];
    char period[16], *val = NULL;
    cJSON *receipt = NULL;
    es_status_t st = ES_RETRY;
    uint64_t token = bc_token_id(ticket);
    int rc;

    if (!k.done || !k.pending || !k.cancel)
        goto done;
    if ((rc = bc_replay_record(bc, j, k.done, reason, n)) != 0) {
        st = rc > 0 ? ES_OK : ES_RETRY;
        goto done;
    }
    if ((rc = bc_st_get(bc, k.cancel, &val)) != 0) {
        /* Cancelled before it could be minted: nothing to do. */
        st = rc > 0 ? ES_OK : ES_RETRY;
        if (rc < 0)
            bc_set_reason(reason, n, "state read failed");
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
    rc = bc_resume_pending(bc, k.pending, &receipt, chain_owner, reason, n);
    if (rc < 0)
        goto done;
    if (rc == 1)
        goto finish;

    switch (bc_chain_owner_of(bc, token, chain_owner, reason, n)) {
    case BC_RPC_TRANSIENT:
        goto done;
    case BC_RPC_OK:
        if (strcmp(chain_owner, owner) != 0) {
            bc_set_reason(reason, n, "token %llu of ticket %s is owned by %s",
                          (unsigned long long)token, ticket, chain_owner);
            st = ES_FAIL;
            goto done;
        }
        /* Minted before (a crash before recording it): adopt that mint. */
        rc = bc_chain_find_transfer(bc, BC_ZERO_ADDRESS, owner, token, hash,
                                    reason, n);
        if (rc == 0) {
            bc_set_reason(reason, n,
                          "token %llu is owned by %s but its mint "
                          "transaction is not in the logs",
                          (unsigned long long)token, owner);
            st = ES_FAIL;
        }
        if (rc != 1 ||
            (st = bc_fetch_receipt(bc, hash, &receipt, reason, n)) != ES_OK)
            goto done;
        goto finish;
    case BC_RPC_REVERT:
        break; /* not minted yet */
    }

    long limit = quota_limit(bc, j->tenant);
    quota_period_key(bc->cfg.quota_period, bc_now_ms(), period);
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
    st = data
             ? bc_send_and_wait(bc, k.pending, data, owner, &receipt, reason, n)
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
        bc_make_record(bc, "burn", j, ticket, token, owner, receipt, reason, n);
    char *json = rec ? cJSON_PrintUnformatted(rec) : NULL;
    es_status_t st = ES_RETRY;
    if (!json)
        goto done;
    if (h->state_begin(h) != 0 || bc_st_put(bc, k->done, json) ||
        h->state_delete(h, k->pending) || h->state_commit(h)) {
        h->state_rollback(h);
        bc_set_reason(reason, n, "state write failed");
        goto done;
    }
    h->counter_add(h, "revoked", 1);
    h->log(h, ES_LOG_INFO, "revoked ticket=%s token=%llu owner=%s tx=%s",
           ticket, (unsigned long long)token, owner,
           bc_jstr(rec, "transactionHash"));
    st = bc_emit_record(bc, j->token, j->id, rec, reason, n) ? ES_RETRY : ES_OK;
done:
    free(json);
    cJSON_Delete(rec);
    return st;
}

es_status_t bc_do_cancel(bc_t *bc, const bc_job_t *j, char *reason, size_t n)
{
    const char *ticket = bc_jstr(j->data, "ticketId");
    keys_t k = {bc_state_key("revoke", j->tenant, ticket),
                bc_state_key("btx", j->tenant, ticket), NULL, NULL,
                bc_state_key("cancel", j->tenant, ticket)};
    char owner[BC_ADDR_SIZE], hash[BC_HASH_SIZE];
    cJSON *receipt = NULL;
    es_status_t st = ES_RETRY;
    uint64_t token = bc_token_id(ticket);
    int rc;

    if (!k.done || !k.pending || !k.cancel)
        goto done;
    if ((rc = bc_replay_record(bc, j, k.done, reason, n)) != 0) {
        st = rc > 0 ? ES_OK : ES_RETRY;
        goto done;
    }
    /* From now on a purchase still being retried will not mint. */
    if (bc_st_put(bc, k.cancel, j->id) != 0) {
        bc_set_reason(reason, n, "state write failed");
        goto done;
    }
    rc = bc_resume_pending(bc, k.pending, &receipt, owner, reason, n);
    if (rc < 0)
        goto done;
    if (rc == 1)
        goto finish;
    switch (bc_chain_owner_of(bc, token, owner, reason, n)) {
    case BC_RPC_TRANSIENT:
        goto done;
    case BC_RPC_REVERT:
        /* Not on chain: never minted, or burned before we recorded it. */
        rc = bc_chain_find_transfer(bc, NULL, BC_ZERO_ADDRESS, token, hash,
                                    reason, n);
        if (rc < 0)
            goto done;
        if (rc == 0) {
            bc->host->log(bc->host, ES_LOG_INFO,
                          "ticket=%s cancelled before it was minted", ticket);
            bc->host->counter_add(bc->host, "cancelled_unminted", 1);
            st = ES_OK;
            goto done;
        }
        if ((st = bc_fetch_receipt(bc, hash, &receipt, reason, n)) != ES_OK)
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
    st = data
             ? bc_send_and_wait(bc, k.pending, data, owner, &receipt, reason, n)
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

es_status_t bc_do_wallet(bc_t *bc, const char *tenant, const cJSON *data,
                         char *reason, size_t n)
{
    char addr[BC_ADDR_SIZE];
    const char *user = bc_jstr(data, "userId");
    if (bc_address_parse(bc_jstr(data, "walletAddress"), addr) != 0) {
        bc_set_reason(
            reason, n,
            "data.walletAddress: missing or not a 20-byte hex address");
        return ES_FAIL;
    }
    char *k = bc_state_key("wallet", tenant, user);
    int rc = bc_st_put(bc, k, addr);
    free(k);
    if (rc != 0) {
        bc_set_reason(reason, n, "state write failed");
        return ES_RETRY;
    }
    bc->host->counter_add(bc->host, "wallets_linked", 1);
    return ES_OK;
}

es_status_t bc_do_tier(bc_t *bc, const es_event_t *ev, bc_op_t op,
                       const char *tenant, const cJSON *data, char *reason,
                       size_t n)
{
    const char *user = bc_jstr(data, "userId");
    const char *prev =
        bc_jstr(data, op == BC_OP_TIER ? "previousTier" : "tier");
    const char *next = bc_jstr(data, op == BC_OP_TIER ? "newTier" : "tier");
    char *k = bc_state_key("wallet", tenant, user), *wallet = NULL, t[32];
    if (!next) {
        bc_set_reason(reason, n, "data.%s: required",
                      op == BC_OP_TIER ? "newTier" : "tier");
        free(k);
        return ES_FAIL;
    }
    int rc = bc_st_get(bc, k, &wallet);
    free(k);
    if (rc < 0) {
        bc_set_reason(reason, n, "state read failed");
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
        bc_time_format(bc_now_ms(), t);
    if (bc_emit_one(bc, ev->token, BC_TYPE_TIER, ev->id, tenant,
                    ev->time ? ev->time : t, d, reason, n))
        return ES_RETRY;
    bc->host->counter_add(bc->host, "tier_changes", 1);
    return ES_OK;
}
