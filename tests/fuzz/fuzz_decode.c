/*
 * Fuzz target for the host's decoder (host/src/decode.c), which reads every
 * record from Kafka: untrusted bytes.
 *
 * Besides "no crash, no sanitizer report", it checks the decoder against
 * cJSON, its reference, on the same bytes:
 *  - es_json_parse gives exactly cJSON_ParseWithLengthOpts's tree and end;
 *  - es_decode_record gives the same verdict, reason and attributes with
 *    and without the index of members, and its tree, made whole, equals
 *    cJSON's;
 *  - the index it builds names, for each of the event's own members, the
 *    bytes of that member's key and value;
 *  - es_decode_output takes the event's text es_decode_record gave (a
 *    filter may hand an event on unchanged) and gives the same attributes.
 *
 * Built with libFuzzer by scripts/fuzz, and replayed over
 * tests/fuzz/corpus/decode/ by `make check` (tests/fuzz/replay.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "internal/es_json_edit.h"
#include "fuzz.h"

#define MAX_BYTES (1024 * 1024)

static void same_str(const char *what, const char *a, const char *b)
{
    if (!a && !b)
        return;
    FUZZ_CHECK(a && b && strcmp(a, b) == 0, "%s differs: \"%s\" vs \"%s\"",
               what, a ? a : "(null)", b ? b : "(null)");
}

static void same_attributes(const es_decoded_t *a, const es_decoded_t *b)
{
    same_str("id", a->id, b->id);
    same_str("source", a->source, b->source);
    same_str("type", a->type, b->type);
    same_str("subject", a->subject, b->subject);
    same_str("time", a->time, b->time);
}

/* The arena parser against cJSON on the same bytes. */
static void check_parse(const char *text, size_t len)
{
    const char *end_ref = NULL, *end = NULL;
    cJSON *ref = cJSON_ParseWithLengthOpts(text, len, &end_ref, 0);
    void *arena = NULL;
    cJSON *got = es_json_parse(text, len, &end, &arena);
    FUZZ_CHECK(!ref == !got, "es_json_parse %s what cJSON %s",
               got ? "accepts" : "refuses", ref ? "accepts" : "refuses");
    if (ref) {
        FUZZ_CHECK(end == end_ref, "parse ends at %td, cJSON at %td",
                   end - text, end_ref - text);
        FUZZ_CHECK(fuzz_same_value(ref, got), "tree differs from cJSON's");
    }
    if (got)
        es_json_tree_free(got, arena);
    cJSON_Delete(ref);
}

/* Each of the event's own members in the index names its key's and its
 * value's bytes in the text. */
static void check_index(const es_decoded_t *d)
{
    const es_json_index_t *ix = d->index;
    if (!ix)
        return;
    FUZZ_CHECK(ix->root >= 1 && ix->root - 1 + ix->nroot <= ix->count,
               "index root %u+%u outside %u members", ix->root, ix->nroot,
               ix->count);
    const cJSON *it = d->ce->child;
    for (uint32_t i = 0; i < ix->nroot; i++, it = it ? it->next : NULL) {
        const es_json_member_t *m = &ix->members[ix->root - 1 + i];
        FUZZ_CHECK(m->key_start < m->key_end && m->key_end <= d->json_len &&
                       m->value_start < m->value_end &&
                       m->value_end <= d->json_len,
                   "member %u outside the text", i);
        FUZZ_CHECK(it, "index has more members than the tree");
        size_t key_len = m->key_end - m->key_start - 2; /* the quotes */
        if (!(m->flags & ES_JSON_KEY_ESCAPED))
            FUZZ_CHECK(strlen(it->string) == key_len &&
                           memcmp(d->json + m->key_start + 1, it->string,
                                  key_len) == 0,
                       "member %u key is not \"%s\"", i, it->string);
        cJSON *v = cJSON_ParseWithLength(d->json + m->value_start,
                                         m->value_end - m->value_start);
        FUZZ_CHECK(v && fuzz_same_value(v, it),
                   "member %u value bytes are not its value", i);
        cJSON_Delete(v);
    }
    FUZZ_CHECK(!it, "the tree has more members than the index");
}

/* A tenant looked up through each member of the event and of its data
 * (what a route's "tenant" spec reads): a unique string member is found as
 * it is, and any scalar is found without a sanitizer report (a number
 * tenant of 1e300 was cast to long long). */
static void check_lookups(const cJSON *ce)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(ce, "data");
    const cJSON *scopes[2] = {ce, cJSON_IsObject(data) ? data : NULL};
    for (int s = 0; s < 2 && scopes[s]; s++) {
        int n = 0;
        for (const cJSON *m = scopes[s]->child; m && n < 64; m = m->next, n++) {
            char path[256];
            if (!m->string[0] || strlen(m->string) >= 128 || /* its limit */
                strchr(m->string, '.') ||
                (!s && !strcmp(m->string, "key"))) /* "key": the record's */
                continue;
            snprintf(path, sizeof path, "%s%s", s ? "data." : "", m->string);
            char *t = es_decode_lookup(ce, NULL, 0, path);
            int twice = 0;
            for (const cJSON *o = scopes[s]->child; o; o = o->next)
                twice += o != m && !strcmp(o->string, m->string);
            if (cJSON_IsString(m) && m->valuestring[0] && !twice)
                FUZZ_CHECK(t && !strcmp(t, m->valuestring),
                           "tenant %s: \"%s\", not the member's \"%s\"", path,
                           t ? t : "(none)", m->valuestring);
            if (twice)
                FUZZ_CHECK(!t, "tenant %s found through a repeated key", path);
            free(t);
        }
    }
}

/* A PII path to the member `name` (one without dots) under prefix. */
static void add_path(char bufs[][160], const char **paths, size_t *n,
                     const char *prefix, const char *name)
{
    if (strchr(name, '.') || strlen(name) >= 128)
        return;
    snprintf(bufs[*n], sizeof bufs[*n], "%s%s", prefix, name);
    paths[*n] = bufs[*n];
    (*n)++;
}

/* es_json_without (the PII strip) on the event's text, with paths made of
 * its own keys: the same tree as deleting them from the parsed one. */
static void check_without(const es_decoded_t *d)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(d->ce, "data");
    char bufs[8][160];
    const char *paths[8];
    size_t n = 0;
    for (const cJSON *m = d->ce->child; m && n < 4; m = m->next)
        add_path(bufs, paths, &n, "", m->string);
    for (const cJSON *m = cJSON_IsObject(data) ? data->child : NULL; m && n < 8;
         m = m->next)
        add_path(bufs, paths, &n, "data.", m->string);
    for (size_t first = 0; first < n; first += 3) {
        size_t k = n - first < 3 ? n - first : 3, out_len = 0;
        char *out =
            es_json_without(d->json, d->json_len, paths + first, k, &out_len);
        FUZZ_CHECK(out && strlen(out) == out_len, "es_json_without failed");
        cJSON *got = cJSON_ParseWithLength(out, out_len);
        cJSON *want = cJSON_ParseWithLength(d->json, d->json_len);
        for (size_t i = first; i < first + k; i++)
            fuzz_delete_path(want, paths[i]);
        FUZZ_CHECK(got && fuzz_same_value(got, want),
                   "without %s...: %s is not the tree's deletion", paths[first],
                   out);
        cJSON_Delete(got);
        cJSON_Delete(want);
        free(out);
    }
}

/* es_json_member_text (binary-mode sinks, the topic test) finds each
 * member's own bytes: they parse to the member cJSON's lookup finds. */
static void check_member_text(const es_decoded_t *d)
{
    int n = 0;
    for (const cJSON *m = d->ce->child; m && n < 16; m = m->next, n++) {
        const char *at = NULL;
        size_t len = 0;
        FUZZ_CHECK(es_json_member_text(d->json, d->json_len, m->string, &at,
                                       &len) == 0,
                   "member %s not found in the text", m->string);
        cJSON *got = cJSON_ParseWithLength(at, len);
        FUZZ_CHECK(got && fuzz_same_value(got, cJSON_GetObjectItemCaseSensitive(
                                                   d->ce, m->string)),
                   "member %s: %.*s is not its value", m->string, (int)len, at);
        cJSON_Delete(got);
    }
}

static void check_record(const char *text, size_t len)
{
    es_decoded_t plain, indexed;
    char why_plain[256] = "", why_indexed[256] = "";
    int rc = es_decode_record(text, len, NULL, 0, MAX_BYTES, 0, &plain,
                              why_plain, sizeof why_plain);
    int rc_ix = es_decode_record(text, len, NULL, 0, MAX_BYTES, 1, &indexed,
                                 why_indexed, sizeof why_indexed);
    FUZZ_CHECK(rc == rc_ix, "verdict differs with the index: %d vs %d", rc,
               rc_ix);
    if (rc != 0) {
        same_str("reason", why_plain, why_indexed);
        FUZZ_CHECK(why_plain[0], "refused without a reason");
        return;
    }
    same_attributes(&plain, &indexed);
    es_decode_full(&indexed);
    check_index(&indexed);
    cJSON *ref = cJSON_ParseWithLength(text, len);
    FUZZ_CHECK(ref, "decoded, but cJSON refuses the text");
    FUZZ_CHECK(fuzz_same_value(ref, indexed.ce), "whole tree differs");
    cJSON_Delete(ref);
    check_lookups(indexed.ce);
    check_without(&indexed);
    check_member_text(&indexed);

    /* The event's text (a byte order mark skipped) as a filter's output. */
    FUZZ_CHECK(plain.json_len == indexed.json_len && plain.json_len <= len &&
                   plain.json == text + (len - plain.json_len),
               "the event's text is not the value's end");
    es_decoded_t out;
    char why_out[256] = "";
    int rc_out = es_decode_output(plain.json, plain.json_len, &out, why_out,
                                  sizeof why_out);
    FUZZ_CHECK(rc_out == 0, "es_decode_output refuses a decoded event: %s",
               why_out);
    same_attributes(&plain, &out);
    FUZZ_CHECK(out.json_len == plain.json_len &&
                   memcmp(out.json, plain.json, plain.json_len) == 0,
               "output text differs from its input");
    es_decoded_clear(&out);
    es_decoded_clear(&plain);
    es_decoded_clear(&indexed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The decoder reads exactly len bytes: a copy of that size makes a
     * read past them an ASan report. */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    check_parse(text, size);
    check_record(text, size);
    free(text);
    return 0;
}
