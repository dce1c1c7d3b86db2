/*
 * Fuzz target for subscriptions (host/src/subscriptions.c): the body of a
 * POST or PUT /v1/subscriptions, which anyone holding the API token sends.
 *
 * Besides "no crash, no sanitizer report", for a JSON body:
 *  - a refusal has a reason, "key: what" (or that it is not an object);
 *  - a subscription taken prints (secrets revealed, as in the state file)
 *    to JSON that is taken again as it stands, and prints the same;
 *  - what GET shows (secrets masked) has ES_SUB_MASK for every string
 *    and number under a secret key of the destination's or the filter's
 *    config;
 *  - that GET body PUT back (masks and all) and given the stored secrets
 *    (es_sub_keep_secrets) is the subscription it was: a client that
 *    changes nothing loses no secret;
 *  - a body with a key given twice in some object is refused.
 *
 * Built with libFuzzer by scripts/fuzz, and replayed over
 * tests/fuzz/corpus/subs/ by `make check` (tests/fuzz/replay.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "subscriptions.h"

/* Every string or number at or under a secret key is the mask. */
static void assert_masked(const cJSON *node, int secret, const char *where)
{
    FUZZ_CHECK(!secret || !cJSON_IsNumber(node), "%s: a secret is shown: %g",
               where, node->valuedouble);
    if (cJSON_IsString(node)) {
        FUZZ_CHECK(!secret || !strcmp(node->valuestring, ES_SUB_MASK),
                   "%s: a secret is shown: \"%s\"", where, node->valuestring);
        return;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, node)
    {
        assert_masked(
            it, secret || (it->string && es_sub_secret_key(it->string)), where);
    }
}

static void assert_configs_masked(const cJSON *shown)
{
    static const char *const typed[] = {"destination", "filter"};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(shown, typed[i]);
        assert_masked(cJSON_GetObjectItemCaseSensitive(t, "config"), 0,
                      typed[i]);
    }
}

static char *print(const es_sub_t *s, int reveal)
{
    cJSON *j = es_sub_json(s, reveal);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return text;
}

/* Stored: printed with its secrets and taken back, it prints the same. */
static void check_round_trip(const es_sub_t *s)
{
    char err[512] = "";
    cJSON *stored = es_sub_json(s, 1);
    es_sub_t *back = es_sub_parse(stored, 1, err, sizeof err);
    FUZZ_CHECK(back, "its own state-file form is refused: %s", err);
    char *a = cJSON_PrintUnformatted(stored), *b = print(back, 1);
    FUZZ_CHECK(!strcmp(a, b), "prints differently once stored:\n%s\n%s", a, b);
    free(a);
    free(b);
    cJSON_Delete(stored);
    es_sub_destroy(back);
}

/* GET shows it masked; PUT back unchanged, it keeps every secret. */
static void check_get_put(const es_sub_t *s)
{
    char err[512] = "";
    cJSON *shown = es_sub_json(s, 0);
    assert_configs_masked(shown);
    es_sub_t *put = es_sub_parse(shown, 0, err, sizeof err);
    FUZZ_CHECK(put, "its own GET body is refused: %s", err);
    es_sub_keep_secrets(put, s);
    /* the server-kept fields are not the client's to send */
    free(put->id);
    put->id = s->id ? strdup(s->id) : NULL;
    free(put->created_at);
    put->created_at = s->created_at ? strdup(s->created_at) : NULL;
    free(put->updated_at);
    put->updated_at = s->updated_at ? strdup(s->updated_at) : NULL;
    cJSON_Delete(put->start_offsets);
    put->start_offsets = cJSON_Duplicate(s->start_offsets, 1);
    char *a = print(s, 1), *b = print(put, 1);
    FUZZ_CHECK(!strcmp(a, b),
               "GET, PUT back, secrets kept: not the same:\n%s\n%s", a, b);
    free(a);
    free(b);
    cJSON_Delete(shown);
    es_sub_destroy(put);
}

static void check_body(const cJSON *body, int from_store)
{
    char err[512] = "";
    es_sub_t *s = es_sub_parse(body, from_store, err, sizeof err);
    if (!s) {
        FUZZ_CHECK(strstr(err, ": ") || !cJSON_IsObject(body),
                   "refused without \"key: what\": \"%s\"", err);
        return;
    }
    FUZZ_CHECK(!fuzz_has_repeated_key(body), "a key given twice was taken");
    if (!s->id)
        s->id = strdup("fuzz-sub"); /* the API gives one before storing */
    check_round_trip(s);
    check_get_put(s);
    es_sub_destroy(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024)
        return 0;
    /* the first byte: a body from the API, or the state file's form */
    cJSON *body = cJSON_ParseWithLength((const char *)data + 1, size - 1);
    if (body)
        check_body(body, data[0] & 1);
    cJSON_Delete(body);
    return 0;
}
