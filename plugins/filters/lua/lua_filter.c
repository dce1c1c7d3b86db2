/*
 * Lua filter plugin: runs one Lua 5.4 script per instance on every event
 * of the routes that list the instance in their "filters".
 *
 * The script's function gets (event, topic, tenant, key) and answers keep,
 * drop, a modified event, several events, and optionally a route name; see
 * docs/lua-filters.md for the contract. An event the script did not change
 * is never re-serialised: "keep" hands the host its original bytes.
 */
#include "lua_filter.h"
#include "internal/es_json_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <lauxlib.h>

#define LF_DEFAULT_INSTR_LIMIT 1000000
#define LF_DEFAULT_MEMORY_KB (32 * 1024)
#define LF_DEFAULT_RELOAD_MS 1000
/* A script's top level (run once at load) may use this many budgets. */
#define LF_LOAD_BUDGETS 10
/* Repeated errors are logged once per this window, with a count. */
#define LF_LOG_WINDOW_MS 10000

enum { ON_ERROR_PASS, ON_ERROR_DROP, ON_ERROR_DEAD_LETTER };

/* Counters, flushed to host->counter_add from flush(). */
enum {
    C_KEPT,
    C_DROPPED,
    C_REPLACED,
    C_OUTPUTS,
    C_ERRORS,
    C_INSTR_LIMIT,
    C_MEMORY_LIMIT,
    C_RELOADS,
    C_RELOAD_FAILURES,
    C_COUNT
};
static const char *const counter_names[C_COUNT] = {
    "lua_kept",         "lua_dropped", "lua_replaced",
    "lua_outputs",      "lua_errors",  "lua_instruction_limit",
    "lua_memory_limit", "lua_reloads", "lua_reload_failures"};

typedef struct lf_conf_s {
    char *script;
    char *function;
    int on_error;
    long long instruction_limit;
    long long memory_limit_kb;
    long long reload_check_ms;
} lf_conf_t;

typedef struct lf_file_id_s {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} lf_file_id_t;

typedef struct lf_output_s {
    size_t off, len;
    size_t route_off;            /* SIZE_MAX: no route */
    size_t copy_first, copy_end; /* its items of the script's copies */
} lf_output_t;

typedef struct lf_instance_s {
    const es_host_t *host;
    int host_index;  /* the host's events have `index` (ES_EVENT_HAS_INDEX) */
    int host_copies; /* the host has filter_add_copies */
    lf_conf_t conf;
    lf_script_t *script;
    lf_file_id_t loaded_id, failed_id;
    int have_failed_id;
    uint64_t last_check_ms;

    uint64_t counters[C_COUNT];
    uint64_t log_window_ms; /* start of the current error-log window */
    uint64_t suppressed;    /* errors not logged in this window */

    /* Outputs of the current call: JSON texts and route names in obuf. */
    lf_buf_t obuf;
    lf_output_t *outs;
    size_t nout, outs_cap;
    es_filter_verdict_t verdict;
    size_t keep_route_off;
} lf_instance_t;

typedef struct lf_call_s {
    lf_instance_t *in;
    const es_event_t *ev;
} lf_call_t;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---------------------------------------------------------------- config */

static int conf_string(const cJSON *v, char **dst, const char *key,
                       char *errstr, size_t n)
{
    if (!cJSON_IsString(v) || !v->valuestring[0]) {
        snprintf(errstr, n, "%s: must be a non-empty string", key);
        return -1;
    }
    free(*dst);
    *dst = strdup(v->valuestring);
    if (!*dst) {
        snprintf(errstr, n, "%s: out of memory", key);
        return -1;
    }
    return 0;
}

static int conf_int(const cJSON *v, long long *dst, long long min,
                    long long max, const char *key, char *errstr, size_t n)
{
    if (!es_json_int_in(v, (double)min, (double)max)) {
        snprintf(errstr, n, "%s: must be an integer from %lld to %lld", key,
                 min, max);
        return -1;
    }
    *dst = (long long)v->valuedouble;
    return 0;
}

static int set_script(lf_conf_t *c, const cJSON *v, char *e, size_t n)
{
    return conf_string(v, &c->script, "script", e, n);
}

static int set_function(lf_conf_t *c, const cJSON *v, char *e, size_t n)
{
    return conf_string(v, &c->function, "function", e, n);
}

static int set_on_error(lf_conf_t *c, const cJSON *v, char *e, size_t n)
{
    static const char *const names[] = {"pass", "drop", "dead-letter"};
    for (int i = 0; i < 3; i++)
        if (cJSON_IsString(v) && strcmp(v->valuestring, names[i]) == 0) {
            c->on_error = i;
            return 0;
        }
    snprintf(e, n, "on_error: must be \"pass\", \"drop\" or \"dead-letter\"");
    return -1;
}

static int set_instr(lf_conf_t *c, const cJSON *v, char *e, size_t n)
{
    return conf_int(v, &c->instruction_limit, 1000, 1000000000,
                    "instruction_limit", e, n);
}

static int set_memory(lf_conf_t *c, const cJSON *v, char *e, size_t n)
{
    return conf_int(v, &c->memory_limit_kb, 256, 16 * 1024 * 1024,
                    "memory_limit_kb", e, n);
}

static int set_reload(lf_conf_t *c, const cJSON *v, char *e, size_t n)
{
    return conf_int(v, &c->reload_check_ms, 0, 86400000, "reload_check_ms", e,
                    n);
}

static const struct {
    const char *key;
    int (*set)(lf_conf_t *c, const cJSON *v, char *errstr, size_t n);
} conf_keys[] = {
    {"script", set_script},          {"function", set_function},
    {"on_error", set_on_error},      {"instruction_limit", set_instr},
    {"memory_limit_kb", set_memory}, {"reload_check_ms", set_reload},
};

static int conf_parse(lf_conf_t *c, const cJSON *config, char *errstr, size_t n)
{
    c->on_error = ON_ERROR_DEAD_LETTER;
    c->instruction_limit = LF_DEFAULT_INSTR_LIMIT;
    c->memory_limit_kb = LF_DEFAULT_MEMORY_KB;
    c->reload_check_ms = LF_DEFAULT_RELOAD_MS;
    if (config && !cJSON_IsObject(config)) {
        snprintf(errstr, n, "config: must be an object");
        return -1;
    }
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, config)
    {
        size_t i = 0;
        while (i < sizeof conf_keys / sizeof conf_keys[0] &&
               strcmp(conf_keys[i].key, item->string) != 0)
            i++;
        if (i == sizeof conf_keys / sizeof conf_keys[0]) {
            snprintf(errstr, n, "%s: unknown key", item->string);
            return -1;
        }
        if (conf_keys[i].set(c, item, errstr, n) != 0)
            return -1;
    }
    if (!c->script) {
        snprintf(errstr, n, "script: required (path of the Lua file)");
        return -1;
    }
    if (!c->function && !(c->function = strdup("filter"))) {
        snprintf(errstr, n, "function: out of memory");
        return -1;
    }
    return 0;
}

static void conf_free(lf_conf_t *c)
{
    free(c->script);
    free(c->function);
}

/* ---------------------------------------------------------------- script */

/* Fires once the budget is spent; then on every instruction, so a script
 * that catches the error with pcall is stopped again straight away. */
static void lf_hook(lua_State *L, lua_Debug *ar)
{
    lf_script_t *s = lf_script_of(L);
    s->budget_hit = 1;
    lua_sethook(L, lf_hook, LUA_MASKCOUNT, 1);
    if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
        lua_pushfstring(L, "%s:%d: instruction limit (%d) exceeded",
                        ar->short_src, ar->currentline, s->instr_limit);
    else
        lua_pushfstring(L, "instruction limit (%d) exceeded", s->instr_limit);
    lua_error(L);
}

static int load_main(lua_State *L)
{
    const char *path = lua_tostring(L, 1);
    const char *fn = lua_tostring(L, 2);
    lf_script_t *s = lf_script_of(L);
    if (luaL_loadfilex(L, path, "t") != LUA_OK)
        return lua_error(L);
    lua_sethook(L, lf_hook, LUA_MASKCOUNT, s->instr_limit * LF_LOAD_BUDGETS);
    lua_call(L, 0, 0);
    lua_sethook(L, NULL, 0, 0);
    if (lua_getglobal(L, fn) != LUA_TFUNCTION)
        return luaL_error(L, "%s: no function '%s' defined", path, fn);
    s->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static void script_destroy(lf_script_t *s)
{
    if (!s)
        return;
    if (s->L)
        lua_close(s->L);
    lf_pool_free(&s->pool);
    free(s->dec_scratch.data);
    free(s->enc_scratch.data);
    free(s->lazy_scratch.data);
    free(s->lazy_index.data);
    free(s->lazy_keys.data);
    free(s->copies.data);
    free(s);
}

static lf_script_t *script_load(const lf_instance_t *in, char *errstr, size_t n)
{
    lf_script_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(errstr, n, "script: out of memory");
        return NULL;
    }
    s->host = in->host;
    s->mem_limit = (size_t)in->conf.memory_limit_kb * 1024u;
    s->instr_limit = (int)in->conf.instruction_limit;
    s->L = lf_sandbox_new(s);
    if (!s->L) {
        snprintf(errstr, n, "memory_limit_kb: too small to create a Lua state");
        goto fail;
    }
    lua_pushcfunction(s->L, load_main);
    lua_pushstring(s->L, in->conf.script);
    lua_pushstring(s->L, in->conf.function);
    if (lua_pcall(s->L, 2, 0, 0) != LUA_OK) {
        const char *msg = lua_tostring(s->L, -1);
        snprintf(errstr, n, "script: %s", msg ? msg : "load failed");
        goto fail;
    }
    lua_sethook(s->L, NULL, 0, 0);
    lua_gc(s->L, LUA_GCCOLLECT);
    return s;
fail:
    script_destroy(s);
    return NULL;
}

static int file_id(const char *path, lf_file_id_t *id)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = st.st_size;
    id->mtime = st.st_mtim;
    return 0;
}

static int same_file(const lf_file_id_t *a, const lf_file_id_t *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* ---------------------------------------------------------- per event */

static void outs_push(lua_State *L, lf_instance_t *in, size_t off,
                      size_t route_off, size_t copy_first)
{
    if (in->nout == in->outs_cap) {
        size_t cap = in->outs_cap ? in->outs_cap * 2 : 8;
        lf_output_t *o = realloc(in->outs, cap * sizeof *o);
        if (!o)
            luaL_error(L, "out of memory");
        in->outs = o;
        in->outs_cap = cap;
    }
    size_t copy_end = in->script->copies.len / sizeof(es_json_copy_t);
    in->outs[in->nout++] =
        (lf_output_t){off, in->obuf.len - off, route_off, copy_first, copy_end};
}

/* Copies the route name at idx (a string or nil) into obuf. */
static size_t save_route(lua_State *L, lf_instance_t *in, int idx)
{
    if (lua_isnil(L, idx))
        return SIZE_MAX;
    size_t len;
    const char *r = lua_tolstring(L, idx, &len);
    size_t off = in->obuf.len;
    lf_buf_add(L, &in->obuf, r, len + 1);
    return off;
}

static void check_route(lua_State *L, int idx, const char *what)
{
    int t = lua_type(L, idx);
    if (t != LUA_TNIL && t != LUA_TSTRING)
        luaL_error(L, "%s must be a route name (string), not a %s", what,
                   lua_typename(L, t));
}

/* Validates and encodes one output event (or {event=, route=} pair). */
static void add_output(lua_State *L, lf_instance_t *in, int idx, int route,
                       int n, int allow_pair)
{
    static const char *const required[] = {"specversion", "id", "source",
                                           "type"};
    idx = lua_absindex(L, idx);
    int top = lua_gettop(L);
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L, "output %d is a %s, not an event table", n,
                   luaL_typename(L, idx));
    if (allow_pair && lua_getfield(L, idx, "event") == LUA_TTABLE &&
        lua_getfield(L, idx, "specversion") == LUA_TNIL) {
        lua_pop(L, 1);
        lua_getfield(L, idx, "route");
        check_route(L, -1, "route");
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushvalue(L, route);
        }
        add_output(L, in, -2, lua_gettop(L), n, 0);
        lua_pop(L, 2);
        return;
    }
    lua_settop(L, top);
    lf_lazy_t *z = lf_lazy_of(L, idx); /* looked up once for the four */
    for (int i = 0; i < 4; i++) {
        /* Untouched members of a lazy object are checked in the text. */
        if (z && lf_lazy_peek_name(z, required[i], strlen(required[i])) ==
                     LF_PEEK_STRING)
            continue;
        if (lua_getfield(L, idx, required[i]) != LUA_TSTRING ||
            lua_rawlen(L, -1) == 0)
            luaL_error(L,
                       "output %d: attribute '%s' must be a non-empty "
                       "string",
                       n, required[i]);
        lua_pop(L, 1);
    }
    size_t route_off = save_route(L, in, route);
    size_t off = in->obuf.len;
    lf_script_t *s = in->script;
    size_t copy_first = s->copies.len / sizeof(es_json_copy_t);
    if (s->copy_src) {
        s->copy_buf = &in->obuf;
        s->copy_base = off;
    }
    lf_json_encode(L, idx, &in->obuf);
    s->copy_buf = NULL;
    outs_push(L, in, off, route_off, copy_first);
}

static int is_output_list(lua_State *L, int idx)
{
    /* The event the script got back is the common case: a lazy object. */
    if (!lf_lazy_recent(L, idx) && lf_table_kind(L, idx) == 'a')
        return 1;
    int list = lua_rawgeti(L, idx, 1) != LUA_TNIL;
    lua_pop(L, 1);
    return list;
}

/* Turns the script's return values (at r, r+1) into a verdict. */
static void interpret(lua_State *L, lf_instance_t *in, int r)
{
    int route = r + 1;
    check_route(L, route, "the second return value");
    switch (lua_type(L, r)) {
    case LUA_TNIL:
        in->verdict = ES_FILTER_KEEP;
        break;
    case LUA_TBOOLEAN:
        in->verdict = lua_toboolean(L, r) ? ES_FILTER_KEEP : ES_FILTER_DROP;
        break;
    case LUA_TSTRING: {
        const char *v = lua_tostring(L, r);
        if (strcmp(v, "keep") == 0)
            in->verdict = ES_FILTER_KEEP;
        else if (strcmp(v, "drop") == 0)
            in->verdict = ES_FILTER_DROP;
        else
            luaL_error(L,
                       "returned \"%s\"; expected \"keep\", \"drop\", a "
                       "boolean, an event or a list of events",
                       v);
        break;
    }
    case LUA_TTABLE:
        in->verdict = ES_FILTER_REPLACE;
        if (!is_output_list(L, r)) {
            add_output(L, in, r, route, 1, 0);
            break;
        }
        for (lua_Integer i = 1, n = (lua_Integer)lua_rawlen(L, r); i <= n;
             i++) {
            lua_rawgeti(L, r, i);
            add_output(L, in, -1, route, (int)i, 1);
            lua_pop(L, 1);
        }
        break;
    default:
        luaL_error(L,
                   "returned a %s; expected \"keep\", \"drop\", a boolean, "
                   "an event or a list of events",
                   luaL_typename(L, r));
    }
    if (in->verdict == ES_FILTER_KEEP)
        in->keep_route_off = save_route(L, in, route);
}

static void push_opt(lua_State *L, const char *s)
{
    if (s) {
        lua_pushstring(L, s);
        lf_anchor_top(L); /* the same few topics and tenants every call */
    } else {
        lua_pushnil(L);
    }
}

/* Pushes the event as a lazy object over a copy of its text (a script may
 * keep the table after the call; the host's text is gone by then), from
 * the host's index of it when there is one. */
static void push_event(lua_State *L, const es_event_t *ev, int host_index,
                       int host_copies)
{
    const char *j = ev->json, *e = j + ev->json_len;
    while (j < e && (*j == ' ' || *j == '\t' || *j == '\n' || *j == '\r'))
        j++;
    while (e > j &&
           (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        e--;
    size_t n = (size_t)(e - j);
    /* Without the host's index: a script that read ev.data last time does
     * so again, so index the objects in the event in the same pass then.
     * One that looks at the attributes only never pays for indexing
     * data's members. */
    lf_script_t *s = lf_script_of(L);
    s->lazy_deep = s->lazy_nested_read;
    s->lazy_nested_read = 0;
    lf_lazy_new_call(L);
    lua_pushlstring(L, j, n);
    const es_json_index_t *ix = host_index ? ev->index : NULL;
    int indexed =
        ix && lf_lazy_push_indexed(L, -1, ix, (size_t)(j - ev->json)) == 0;
    /* The host checks copies against its index: without one, or without
     * filter_add_copies, recording them is wasted. */
    s->copy_src = host_copies && indexed ? lua_tostring(L, -2) : NULL;
    s->copy_shift = (size_t)(j - ev->json);
    if (!indexed && n >= 2 && *j == '{' && e[-1] == '}') /* the host's way */
        lf_lazy_push(L, -1, 0, n);
    else if (!indexed)
        lf_json_push_lazy(L, -1, 0, n);
    lua_remove(L, -2);
}

/* Runs in protected mode: decode, call the script, encode its outputs. */
static int lf_run(lua_State *L)
{
    lf_call_t *c = lua_touserdata(L, 1);
    lf_script_t *s = c->in->script;
    const es_event_t *ev = c->ev;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->fn_ref);
    push_event(L, ev, c->in->host_index, c->in->host_copies);
    push_opt(L, ev->topic);
    push_opt(L, ev->tenant);
    if (ev->key)
        lua_pushlstring(L, ev->key, ev->key_len);
    else
        lua_pushnil(L);
    lua_sethook(L, lf_hook, LUA_MASKCOUNT, s->instr_limit);
    lua_call(L, 4, 2);
    lua_sethook(L, NULL, 0, 0);
    interpret(L, c->in, 2);
    return 0;
}

static void log_error(lf_instance_t *in, const char *kind, const char *msg)
{
    uint64_t now = mono_ms();
    if (in->log_window_ms && now - in->log_window_ms < LF_LOG_WINDOW_MS) {
        in->suppressed++;
        return;
    }
    if (in->suppressed)
        in->host->log(in->host, ES_LOG_WARN,
                      "%llu more script errors in the last %d s were not "
                      "logged",
                      (unsigned long long)in->suppressed,
                      LF_LOG_WINDOW_MS / 1000);
    in->host->log(in->host, ES_LOG_WARN, "%s: %s (event handled per on_error)",
                  kind, msg);
    in->log_window_ms = now ? now : 1;
    in->suppressed = 0;
}

static es_filter_verdict_t on_error(lf_instance_t *in, int rc, char *errstr,
                                    size_t n)
{
    lf_script_t *s = in->script;
    lua_State *L = s->L;
    const char *msg = lua_type(L, -1) == LUA_TSTRING
                          ? lua_tostring(L, -1)
                          : "error object is not a string";
    const char *kind = "script error";
    in->counters[C_ERRORS]++;
    if (s->budget_hit) {
        kind = "instruction limit";
        in->counters[C_INSTR_LIMIT]++;
    } else if (rc == LUA_ERRMEM || s->mem_refused) {
        kind = "memory limit";
        in->counters[C_MEMORY_LIMIT]++;
    }
    snprintf(errstr, n, "lua %s: %s", kind, msg);
    log_error(in, kind, msg);
    lua_settop(L, 0);
    if (s->mem_refused)
        lua_gc(L, LUA_GCCOLLECT);
    switch (in->conf.on_error) {
    case ON_ERROR_PASS:
        in->counters[C_KEPT]++;
        return ES_FILTER_KEEP;
    case ON_ERROR_DROP:
        in->counters[C_DROPPED]++;
        return ES_FILTER_DROP;
    default:
        return ES_FILTER_FAIL;
    }
}

static es_filter_verdict_t
deliver_outputs(lf_instance_t *in, es_filter_out_t *out, char *errstr, size_t n)
{
    if (in->nout == 0) {
        in->counters[C_DROPPED]++;
        return ES_FILTER_DROP;
    }
    for (size_t i = 0; i < in->nout; i++) {
        const lf_output_t *o = &in->outs[i];
        const char *route =
            o->route_off == SIZE_MAX ? NULL : in->obuf.data + o->route_off;
        char why[200] = "";
        const es_json_copy_t *copies =
            (const es_json_copy_t *)in->script->copies.data;
        size_t ncopies = o->copy_end - o->copy_first;
        int rc = in->host_copies
                     ? in->host->filter_add_copies(
                           out, in->obuf.data + o->off, o->len, route,
                           ncopies ? copies + o->copy_first : NULL, ncopies,
                           why, sizeof why)
                     : out->add(out, in->obuf.data + o->off, o->len, route, why,
                                sizeof why);
        if (rc != 0) {
            snprintf(errstr, n, "lua: output %zu rejected: %s", i + 1, why);
            in->counters[C_ERRORS]++;
            log_error(in, "output rejected", errstr);
            return ES_FILTER_FAIL;
        }
    }
    in->counters[C_REPLACED]++;
    in->counters[C_OUTPUTS] += in->nout;
    return ES_FILTER_REPLACE;
}

static es_filter_verdict_t lf_filter(void *instance, const es_event_t *ev,
                                     es_filter_out_t *out, char *errstr,
                                     size_t errstr_size)
{
    lf_instance_t *in = instance;
    lf_script_t *s = in->script;
    lua_State *L = s->L;
    lf_call_t call = {in, ev};
    in->obuf.len = 0;
    in->nout = 0;
    s->copies.len = 0;
    s->copy_src = NULL;
    s->copy_buf = NULL;
    in->keep_route_off = SIZE_MAX;
    s->budget_hit = 0;
    s->mem_refused = 0;
    lua_settop(L, 0);
    lua_pushcfunction(L, lf_run);
    lua_pushlightuserdata(L, &call);
    int rc = lua_pcall(L, 1, 0, 0);
    lua_sethook(L, NULL, 0, 0);
    if (rc != LUA_OK)
        return on_error(in, rc, errstr, errstr_size);
    switch (in->verdict) {
    case ES_FILTER_KEEP:
        if (in->keep_route_off != SIZE_MAX)
            out->set_route(out, in->obuf.data + in->keep_route_off);
        in->counters[C_KEPT]++;
        return ES_FILTER_KEEP;
    case ES_FILTER_DROP:
        in->counters[C_DROPPED]++;
        return ES_FILTER_DROP;
    default:
        return deliver_outputs(in, out, errstr, errstr_size);
    }
}

/* ------------------------------------------------------------- lifecycle */

static void check_reload(lf_instance_t *in)
{
    uint64_t now = mono_ms();
    if (in->conf.reload_check_ms <= 0 ||
        now - in->last_check_ms < (uint64_t)in->conf.reload_check_ms)
        return;
    in->last_check_ms = now;
    lf_file_id_t id;
    if (file_id(in->conf.script, &id) != 0 || same_file(&id, &in->loaded_id) ||
        (in->have_failed_id && same_file(&id, &in->failed_id)))
        return;
    char err[512];
    lf_script_t *s = script_load(in, err, sizeof err);
    if (!s) {
        in->failed_id = id;
        in->have_failed_id = 1;
        in->counters[C_RELOAD_FAILURES]++;
        in->host->log(in->host, ES_LOG_ERROR,
                      "reload failed, the previous version keeps running: %s",
                      err);
        return;
    }
    script_destroy(in->script);
    in->script = s;
    in->loaded_id = id;
    in->have_failed_id = 0;
    in->counters[C_RELOADS]++;
    in->host->log(in->host, ES_LOG_INFO, "reloaded %s", in->conf.script);
}

static void lf_flush(void *instance)
{
    lf_instance_t *in = instance;
    check_reload(in);
    for (int i = 0; i < C_COUNT; i++)
        if (in->counters[i]) {
            in->host->counter_add(in->host, counter_names[i], in->counters[i]);
            in->counters[i] = 0;
        }
}

static void lf_destroy(void *instance)
{
    lf_instance_t *in = instance;
    if (!in)
        return;
    script_destroy(in->script);
    conf_free(&in->conf);
    free(in->obuf.data);
    free(in->outs);
    free(in);
}

static int lf_init(const es_host_t *host, const cJSON *config, void **instance,
                   char *errstr, size_t errstr_size)
{
    int rc = -1;
    lf_instance_t *in = calloc(1, sizeof *in);
    if (!in) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    in->host = host;
    in->host_index = ES_EVENT_HAS_INDEX(host);
    in->host_copies =
        ES_HOST_HAS(host, filter_add_copies) && host->filter_add_copies != NULL;
    if (conf_parse(&in->conf, config, errstr, errstr_size) != 0)
        goto done;
    /* Identify the file before loading it: a change made while we load is
     * then seen by the next check. */
    if (file_id(in->conf.script, &in->loaded_id) != 0) {
        snprintf(errstr, errstr_size, "script: cannot open %s: %s",
                 in->conf.script, strerror(errno));
        goto done;
    }
    in->script = script_load(in, errstr, errstr_size);
    if (!in->script)
        goto done;
    in->last_check_ms = mono_ms();
    *instance = in;
    rc = 0;
done:
    if (rc != 0)
        lf_destroy(in);
    return rc;
}

static const es_plugin_t lf_plugin = {
    .abi = ES_PLUGIN_ABI_VERSION,
    .size = sizeof(es_plugin_t),
    .name = "lua",
    .version = "1.0.0 (" LUA_RELEASE ")",
    .kind = ES_KIND_FILTER,
    .init = lf_init,
    .deliver = NULL,
    .filter = lf_filter,
    .flush = lf_flush,
    .destroy = lf_destroy,
    /* Reads ev->json (with the host's index of it), never ev->ce. */
    .flags = ES_PLUGIN_TEXT_ONLY | ES_PLUGIN_JSON_INDEX,
};

ES_PLUGIN_DEFINE(lf_plugin)
