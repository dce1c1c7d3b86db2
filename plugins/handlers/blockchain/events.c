/* The CloudEvents the handler emits: the seed 000 envelope and the data of
 * each event type, built from the durable record of a chain operation so a
 * redelivery re-emits byte-identical events. */
#include "bc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

char *bc_envelope(const char *type, const char *source, const char *input_id,
                  const char *tenant, const char *time, cJSON *data)
{
    char id[BC_EVENT_ID_SIZE];
    char *out = NULL;
    cJSON *ev = cJSON_CreateObject();
    if (!ev || !data || bc_event_id(input_id, type, id) != 0) {
        cJSON_Delete(data);
        goto done;
    }
    if (!cJSON_AddStringToObject(ev, "specversion", "1.0") ||
        !cJSON_AddStringToObject(ev, "type", type) ||
        !cJSON_AddStringToObject(ev, "source", source) ||
        !cJSON_AddStringToObject(ev, "id", id) ||
        !cJSON_AddStringToObject(ev, "time", time) ||
        !cJSON_AddStringToObject(ev, "datacontenttype", "application/json") ||
        !cJSON_AddStringToObject(ev, "subject", tenant)) {
        cJSON_Delete(data);
        goto done;
    }
    cJSON_AddItemToObject(ev, "data", data);
    out = cJSON_PrintUnformatted(ev);
done:
    cJSON_Delete(ev);
    return out;
}

/* cJSON prints a double with 15 significant digits when that round-trips,
 * so 2891986158693390 would come out as 2.89198615869339e+15; integers
 * (token ids, block numbers) are written as integers instead. */
static cJSON *copy_value(const cJSON *v)
{
    char buf[32];
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 &&
        v->valuedouble <= 9007199254740992.0 &&
        v->valuedouble == (double)(uint64_t)v->valuedouble) {
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v->valuedouble);
        return cJSON_CreateRaw(buf);
    }
    return cJSON_Duplicate(v, 1);
}

/* Copies the named members of rec, in this order, into a new object. */
static cJSON *pick(const cJSON *rec, const char *const *names)
{
    cJSON *d = cJSON_CreateObject();
    for (size_t i = 0; d && names[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, names[i]);
        cJSON *copy = v ? copy_value(v) : cJSON_CreateNull();
        if (!copy || !cJSON_AddItemToObject(d, names[i], copy)) {
            cJSON_Delete(copy);
            cJSON_Delete(d);
            return NULL;
        }
    }
    return d;
}

/* Exactly the fields seed 000 lists for ticket.minted, in its order. */
static const char *const minted_fields[] = {
    "tenantId",        "ticketId",    "contractAddress",
    "tokenId",         "chainId",     "ownerAddress",
    "transactionHash", "blockNumber", "gasUsed",
    "costUsd",         NULL};

cJSON *bc_minted_data(const cJSON *rec)
{
    return pick(rec, minted_fields);
}

cJSON *bc_revoked_data(const cJSON *rec)
{
    static const char *const f[] = {
        "tenantId", "ticketId",     "contractAddress", "tokenId",
        "chainId",  "ownerAddress", "transactionHash", "blockNumber",
        "gasUsed",  "costUsd",      "reason",          NULL};
    return pick(rec, f);
}

cJSON *bc_nft_data(const cJSON *rec)
{
    static const char *const f[] = {
        "tenantId",    "operation", "ticketId",     "contractAddress",
        "tokenId",     "chainId",   "ownerAddress", "transactionHash",
        "blockNumber", NULL};
    return pick(rec, f);
}

cJSON *bc_tx_data(const cJSON *rec)
{
    static const char *const f[] = {
        "tenantId",    "operation",         "chainId",     "transactionHash",
        "fromAddress", "contractAddress",   "blockNumber", "status",
        "gasUsed",     "effectiveGasPrice", "costUsd",     NULL};
    return pick(rec, f);
}
