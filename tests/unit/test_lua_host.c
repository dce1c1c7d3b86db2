#include "test_lua_host.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void fake_log(const es_host_t *host, es_log_level_t level,
                     const char *fmt, ...)
{
    fake_host_t *h = (fake_host_t *)host;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (getenv("FAKE_HOST_VERBOSE"))
        fprintf(stderr, "log[%d] %s\n", (int)level, line);
    size_t room = sizeof h->logs - h->logs_len;
    int n = snprintf(h->logs + h->logs_len, room, "%d %s\n", (int)level, line);
    if (n > 0 && (size_t)n < room)
        h->logs_len += (size_t)n;
    h->log_lines++;
}

static void fake_counter_add(const es_host_t *host, const char *name,
                             uint64_t delta)
{
    fake_host_t *h = (fake_host_t *)host;
    for (int i = 0; i < h->ncounters; i++)
        if (strcmp(h->counters[i].name, name) == 0) {
            h->counters[i].value += delta;
            return;
        }
    if (h->ncounters < 32) {
        snprintf(h->counters[h->ncounters].name, 64, "%s", name);
        h->counters[h->ncounters++].value = delta;
    }
}

/* Whether fake_event_init builds the host's index (one host at a time). */
static int offer_index;
/* The event being filtered (the last one made), which copies name. */
static const fake_event_t *current_event;
static unsigned long copies_seen, copy_errors;
static int verify_copies = 1;

static int fake_add(es_filter_out_t *out, const char *json, size_t len,
                    const char *route, char *errstr, size_t n);

/* Whether each copy is what it says: in output order, inside both texts,
 * the same bytes; the shape (member boundaries) is the decoder's to
 * check, and it must give the output the same verdict as without them. */
static void check_copies(const char *json, size_t len, const es_json_copy_t *c,
                         size_t n)
{
    const es_event_t *ev = current_event ? &current_event->ev : NULL;
    uint64_t behind = 0;
    for (size_t i = 0; i < n; i++, copies_seen++) {
        uint64_t out_end = (uint64_t)c[i].out_start + c[i].len;
        if (!ev || c[i].len == 0 || c[i].out_start < behind || out_end > len ||
            (uint64_t)c[i].in_start + c[i].len > ev->json_len ||
            memcmp(json + c[i].out_start, ev->json + c[i].in_start, c[i].len) !=
                0)
            copy_errors++;
        behind = out_end;
    }
    if (!ev)
        return;
    es_output_copies_t from = {ev->json, ev->json_len, ev->index, c, n, NULL};
    es_decoded_t with, without;
    char r1[256], r2[256];
    int rc_with = es_decode_output_copies(json, len, &from, &with, r1, 256);
    int rc_without = es_decode_output(json, len, &without, r2, 256);
    if (rc_with != rc_without)
        copy_errors++;
    es_decoded_clear(&with);
    es_decoded_clear(&without);
}

static int fake_add_copies(es_filter_out_t *out, const char *json, size_t len,
                           const char *route, const es_json_copy_t *copies,
                           size_t ncopies, char *errstr, size_t n)
{
    if (fake_add(out, json, len, route, errstr, n) != 0)
        return -1;
    if (!verify_copies)
        return 0;
    check_copies(json, len, copies, ncopies);
    fake_out_t *o = (fake_out_t *)out;
    size_t size = 1;
    for (size_t i = 0; i < ncopies; i++)
        size += copies[i].len + 3;
    char *t = o->copied[o->n - 1] = calloc(1, size);
    for (size_t i = 0, at = 0; t && i < ncopies; i++) {
        if ((uint64_t)copies[i].out_start + copies[i].len > len)
            continue; /* a copy error, counted above */
        at += (size_t)snprintf(t + at, size - at, "%s%.*s", at ? " | " : "",
                               (int)copies[i].len, json + copies[i].out_start);
    }
    return 0;
}

void fake_host_offer_index(fake_host_t *h, int on)
{
    h->host.event_size = on ? sizeof(es_event_t) : 0;
    h->host.filter_add_copies = on ? fake_add_copies : NULL;
    offer_index = on;
}

void fake_host_verify_copies(int on)
{
    verify_copies = on;
}

unsigned long fake_copies_seen(void)
{
    return copies_seen;
}

unsigned long fake_copy_errors(void)
{
    return copy_errors;
}

void fake_host_init(fake_host_t *h)
{
    memset(h, 0, sizeof *h);
    h->host.abi = ES_PLUGIN_ABI_VERSION;
    h->host.size = sizeof(es_host_t);
    h->host.instance_name = "test-lua";
    h->host.state_dir = "/tmp";
    h->host.log = fake_log;
    h->host.counter_add = fake_counter_add;
    h->host.free = free;
}

unsigned long long fake_counter(const fake_host_t *h, const char *name)
{
    for (int i = 0; i < h->ncounters; i++)
        if (strcmp(h->counters[i].name, name) == 0)
            return h->counters[i].value;
    return 0;
}

static int fake_add(es_filter_out_t *out, const char *json, size_t len,
                    const char *route, char *errstr, size_t n)
{
    fake_out_t *o = (fake_out_t *)out;
    if (o->reject || o->n == FAKE_MAX_OUT) {
        snprintf(errstr, n, "rejected by the fake host");
        return -1;
    }
    o->json[o->n] = strndup(json, len);
    o->route[o->n] = route ? strdup(route) : NULL;
    o->n++;
    return 0;
}

static void fake_set_route(es_filter_out_t *out, const char *route)
{
    fake_out_t *o = (fake_out_t *)out;
    snprintf(o->keep_route, sizeof o->keep_route, "%s", route);
}

void fake_out_init(fake_out_t *o)
{
    memset(o, 0, sizeof *o);
    o->out.add = fake_add;
    o->out.set_route = fake_set_route;
}

void fake_out_reset(fake_out_t *o)
{
    for (int i = 0; i < o->n; i++) {
        free(o->json[i]);
        free(o->route[i]);
        free(o->copied[i]);
    }
    int reject = o->reject;
    fake_out_init(o);
    o->reject = reject;
}

static const char *attr(const cJSON *ce, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ce, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int fake_event_init(fake_event_t *e, const char *json, const char *topic,
                    const char *tenant)
{
    memset(e, 0, sizeof *e);
    current_event = e;
    e->json = strdup(json);
    e->ce = cJSON_Parse(json);
    if (!e->json || !e->ce)
        return -1;
    e->ev.json = e->json;
    e->ev.json_len = strlen(json);
    e->ev.ce = e->ce;
    e->ev.id = attr(e->ce, "id");
    e->ev.source = attr(e->ce, "source");
    e->ev.type = attr(e->ce, "type");
    e->ev.subject = attr(e->ce, "subject");
    e->ev.time = attr(e->ce, "time");
    e->ev.tenant = tenant;
    e->ev.topic = topic;
    e->ev.timestamp_ms = -1;
    e->ev.route = "test-route";
    e->ev.token = 1;
    e->ev.attempt = 1;
    char reason[256];
    /* Text the host would dead-letter never reaches a filter: such an
     * event goes without the index. */
    if (offer_index &&
        es_decode_record(e->json, e->ev.json_len, NULL, 0, SIZE_MAX, 1, &e->dec,
                         reason, sizeof reason) == 0)
        e->ev.index = e->dec.index;
    return 0;
}

void fake_event_free(fake_event_t *e)
{
    if (current_event == e)
        current_event = NULL;
    es_decoded_clear(&e->dec);
    cJSON_Delete(e->ce);
    free(e->json);
}

const es_plugin_t *fake_load_plugin(void)
{
    char path[PATH_MAX + 64];
    const char *dir = getenv("ES_BUILD_DIR");
    if (dir) {
        snprintf(path, sizeof path, "%s/build-plugins/lua.so", dir);
    } else if (access("build-plugins/lua.so", R_OK) == 0) {
        snprintf(path, sizeof path, "build-plugins/lua.so");
    } else {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n < 0)
            return NULL;
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        /* tests/unit/ or plugins/filters/lua/ */
        snprintf(path, sizeof path, "%s/../../build-plugins/lua.so", exe);
        if (access(path, R_OK) != 0)
            snprintf(path, sizeof path, "%s/../../../build-plugins/lua.so",
                     exe);
    }
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        fprintf(stderr, "cannot load %s: %s\n", path, dlerror());
        return NULL;
    }
    es_plugin_entry_fn entry =
        (es_plugin_entry_fn)dlsym(dl, ES_PLUGIN_ENTRY_SYMBOL);
    return entry ? entry(ES_PLUGIN_ABI_VERSION) : NULL;
}
