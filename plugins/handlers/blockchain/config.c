/* Configuration of a blockchain handler instance: a table of keys, each
 * with its type and bounds; unknown keys are errors. */
#include "bc.h"
#include "internal/es_file_check.h"
#include "internal/es_json_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include <stddef.h>

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

void bc_config_free(bc_config_t *c)
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
        if (!es_json_int_in(q, 0, 1e15)) {
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
        if (!es_json_int_in(v, (double)k->min, (double)k->max)) {
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

int bc_config_parse(bc_config_t *c, const cJSON *config, char *errstr, size_t n)
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
    /* It goes into an Authorization header line as written. */
    if (c->rpc_bearer_token && strpbrk(c->rpc_bearer_token, "\r\n")) {
        snprintf(errstr, n, "rpc_bearer_token: must not hold a line break");
        return -1;
    }
    if (c->rpc_ca_file &&
        es_file_check_readable("rpc_ca_file", c->rpc_ca_file, errstr, n))
        return -1;
    if (!c->chain_id && !(c->chain_id = strdup("ETHEREUM")))
        return -1;
    if (!c->source && !(c->source = strdup("blockchain-svc")))
        return -1;
    return 0;
}
