/*
 * Fuzz target for the Lua filter plugin's boundary (plugins/filters/lua):
 * an event the host would accept, read into Lua through the host's index
 * of members, changed by a script and written back as JSON.
 *
 * The input's first byte picks a script (below) and whether the host
 * offers its index of members (the daemon does; without it, the plugin
 * reads the text with its own reader), the rest is the record's value. A value
 * the host's decoder refuses never reaches a filter and is skipped. The event
 * is then built as the daemon builds it (the decoder's index and whole tree,
 * the text in a block of exactly its size, so a read past it is an ASan report)
 * and the checks are:
 *  - no script fails on a valid event;
 *  - every output is a CloudEvent the host's decoder takes, and takes the
 *    same with and without the copies the plugin lists, and each copy is
 *    the input's bytes;
 *  - reading every member ("walk") or writing every member back as it was
 *    ("rewrite") gives the input's tree again, members in order: integers,
 *    floats, null, empty arrays and objects, strings as they were;
 *  - es.redact and es.remove ("redact") redact and remove what they name
 *    and leave the other attributes as they were.
 *
 * Built with libFuzzer by scripts/fuzz (the plugin's sources linked in),
 * and replayed over tests/fuzz/corpus/lua/ by `make check`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "decode.h"
#include "eventstream/plugin.h"
#include "fuzz.h"

const es_plugin_t *es_plugin_entry(uint32_t host_abi);

static const char SCRIPT[] =
    "local function walk(t)\n"
    "  for _, v in pairs(t) do if type(v) == 'table' then walk(v) end end\n"
    "end\n"
    "local function rewrite(t)\n"
    "  for k, v in pairs(t) do\n"
    "    if type(v) == 'table' then rewrite(v) end\n"
    "    t[k] = v\n"
    "  end\n"
    "end\n"
    "function walk_all(ev) walk(ev) return ev end\n"
    "function rewrite_all(ev) rewrite(ev) ev.fuzzmark = true\n"
    "  ev.fuzzmark = nil return ev end\n"
    "function redact(ev)\n"
    "  es.redact(ev, { 'data.email', 'data.shipping.phone', 'data.*.x',\n"
    "                  'data.items.1.sku', 'subject' })\n"
    "  es.remove(ev, { 'data.a.b', 'data.notes' })\n"
    "  return ev\n"
    "end\n"
    "function split(ev)\n"
    "  local copy = {}\n"
    "  for k, v in pairs(ev) do copy[k] = v end\n"
    "  copy.id = ev.id .. '-copy'\n"
    "  return { ev, copy }\n"
    "end\n";

enum { WALK, REWRITE, REDACT, SPLIT, NSCRIPTS };
static const char *const FUNCTIONS[NSCRIPTS] = {"walk_all", "rewrite_all",
                                                "redact", "split"};

typedef struct out_s {
    es_filter_out_t out; /* first */
    const es_event_t *in;
    int n;
    cJSON *trees[8];
} out_t;

/* An output as the daemon takes it: decoded whole, kept for the checks. */
static int take(out_t *o, const char *json, size_t len,
                const es_output_copies_t *copies)
{
    es_decoded_t d;
    char why[256];
    int rc = es_decode_output_copies(json, len, copies, &d, why, sizeof why);
    FUZZ_CHECK(rc == 0, "output %d is not a valid CloudEvent: %s: %.*s", o->n,
               why, (int)len, json);
    FUZZ_CHECK(o->n < 8, "too many outputs");
    o->trees[o->n++] = cJSON_ParseWithLength(d.json, d.json_len);
    es_decoded_clear(&d);
    return 0;
}

static int add(es_filter_out_t *out, const char *json, size_t len,
               const char *route, char *errstr, size_t n)
{
    (void)route, (void)errstr, (void)n;
    return take((out_t *)out, json, len, NULL);
}

static int add_copies(es_filter_out_t *out, const char *json, size_t len,
                      const char *route, const es_json_copy_t *copies,
                      size_t ncopies, char *errstr, size_t n)
{
    (void)route, (void)errstr, (void)n;
    out_t *o = (out_t *)out;
    const es_event_t *in = o->in;
    uint64_t behind = 0;
    for (size_t i = 0; i < ncopies; i++) {
        const es_json_copy_t *c = &copies[i];
        uint64_t out_end = (uint64_t)c->out_start + c->len;
        FUZZ_CHECK(c->len > 0 && c->out_start >= behind && out_end <= len &&
                       (uint64_t)c->in_start + c->len <= in->json_len &&
                       memcmp(json + c->out_start, in->json + c->in_start,
                              c->len) == 0,
                   "copy %zu is not the input's bytes", i);
        behind = out_end;
    }
    es_decoded_t plain;
    char why[256];
    int rc = es_decode_output(json, len, &plain, why, sizeof why);
    es_decoded_clear(&plain);
    FUZZ_CHECK(rc == 0, "output is not a valid CloudEvent: %s", why);
    es_output_copies_t from = {in->json, in->json_len, in->index,
                               copies,   ncopies,      in->ce};
    return take(o, json, len, &from);
}

static void set_route(es_filter_out_t *out, const char *route)
{
    (void)out, (void)route;
}

/* hosts[1] offers the index of members and takes copies, as the daemon
 * does for the lua filter; hosts[0] is an older host without them (the
 * plugin then reads the text with its own reader). */
static es_host_t hosts[2] = {
    {.abi = ES_PLUGIN_ABI_VERSION,
     .size = sizeof(es_host_t),
     .instance_name = "fuzz-lua-text",
     .state_dir = "/tmp",
     .log = fuzz_host_log,
     .counter_add = fuzz_counter_add,
     .free = free},
    {.abi = ES_PLUGIN_ABI_VERSION,
     .size = sizeof(es_host_t),
     .instance_name = "fuzz-lua",
     .state_dir = "/tmp",
     .log = fuzz_host_log,
     .counter_add = fuzz_counter_add,
     .free = free,
     .event_size = sizeof(es_event_t),
     .filter_add_copies = add_copies},
};

static const es_plugin_t *plugin;
static void *instances[2][NSCRIPTS];

static void start(void)
{
    char path[] = "/tmp/es-fuzz-lua-XXXXXX";
    int fd = mkstemp(path);
    FUZZ_CHECK(fd >= 0 && write(fd, SCRIPT, sizeof SCRIPT - 1) ==
                              (ssize_t)(sizeof SCRIPT - 1),
               "cannot write the script");
    close(fd);
    plugin = es_plugin_entry(ES_PLUGIN_ABI_VERSION);
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < NSCRIPTS; i++) {
            char conf[512], err[512];
            snprintf(conf, sizeof conf,
                     "{\"script\":\"%s\",\"function\":\"%s\","
                     "\"reload_check_ms\":0}",
                     path, FUNCTIONS[i]);
            cJSON *c = cJSON_Parse(conf);
            FUZZ_CHECK(plugin->init(&hosts[h], c, &instances[h][i], err,
                                    sizeof err) == 0,
                       "init: %s", err);
            cJSON_Delete(c);
        }
    unlink(path);
}

/* The "redact" script's output: data.email redacted where it was, data.notes
 * gone, every other attribute (subject is redacted too) as it was. */
static void check_redacted(const cJSON *in, const cJSON *out)
{
    const cJSON *in_data = cJSON_GetObjectItemCaseSensitive(in, "data");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(out, "data");
    if (cJSON_IsObject(in_data)) {
        const cJSON *email = cJSON_GetObjectItemCaseSensitive(data, "email");
        FUZZ_CHECK(!cJSON_GetObjectItemCaseSensitive(in_data, "email")
                       ? !email
                       : cJSON_IsString(email) &&
                             !strcmp(email->valuestring, "[REDACTED]"),
                   "data.email not redacted");
        FUZZ_CHECK(!cJSON_GetObjectItemCaseSensitive(data, "notes"),
                   "data.notes not removed");
    }
    for (const cJSON *a = in->child; a; a = a->next) {
        if (!strcmp(a->string, "data") || !strcmp(a->string, "subject"))
            continue;
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(out, a->string);
        FUZZ_CHECK(b && fuzz_same_value(a, b), "redact changed \"%s\"",
                   a->string);
    }
}

/* What the script's outputs must be, given the input's tree. */
static void check_outputs(int script, es_filter_verdict_t v, const out_t *o,
                          const cJSON *in, const char *err)
{
    FUZZ_CHECK(v != ES_FILTER_FAIL, "%s failed: %s", FUNCTIONS[script], err);
    int exact = !fuzz_has_repeated_key(in); /* a Lua table keeps one of them */
    if (v == ES_FILTER_KEEP)
        return;
    FUZZ_CHECK(v == ES_FILTER_REPLACE, "verdict %d", (int)v);
    switch (script) {
    case WALK:
    case REWRITE:
        FUZZ_CHECK(o->n == 1, "%d outputs", o->n);
        if (exact)
            FUZZ_CHECK(fuzz_same_value(o->trees[0], in), "%s changed the event",
                       FUNCTIONS[script]);
        break;
    case REDACT:
        FUZZ_CHECK(o->n == 1, "%d outputs", o->n);
        if (exact)
            check_redacted(in, o->trees[0]);
        break;
    case SPLIT:
        FUZZ_CHECK(o->n == 2, "%d outputs", o->n);
        if (exact)
            FUZZ_CHECK(fuzz_same_value(o->trees[0], in),
                       "split changed its first event");
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!plugin)
        start();
    int script = data[0] % NSCRIPTS, with_index = data[0] / NSCRIPTS % 2 == 0;
    fuzz_event_t e;
    if (fuzz_event_decode(&e, data + 1, size - 1, 1) != 0)
        return 0; /* dead-lettered by the host: never filtered */
    es_event_t ev = e.ev;
    ev.tenant = "tenant-a";
    ev.topic = "fuzz.topic";
    ev.route = "fuzz-route";
    ev.token = 1;
    if (!with_index)
        ev.index = NULL;
    out_t o = {{add, set_route, NULL}, &ev, 0, {NULL}};
    char err[512] = "";
    es_filter_verdict_t v = plugin->filter(instances[with_index][script], &ev,
                                           &o.out, err, sizeof err);
    check_outputs(script, v, &o, ev.ce, err);
    for (int i = 0; i < o.n; i++)
        cJSON_Delete(o.trees[i]);
    fuzz_event_free(&e);
    return 0;
}
