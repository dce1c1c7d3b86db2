/*
 * Unit tests of the Lua filter plugin, loaded with dlopen() from the build
 * tree and driven through its vtable with a fake host.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_lua_host.h"

#ifndef LUA_EXAMPLES_DIR
#define LUA_EXAMPLES_DIR "plugins/filters/lua/examples"
#endif

static const es_plugin_t *plugin;
static fake_host_t host;
static fake_out_t out;
static void *inst;
static char script_path[64];
static char errstr[512];

#define ENVELOPE                                                               \
    "\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"marketplace-svc\","    \
    "\"type\":\"eventzr.marketplace.order.created.v1\""

static void setup(void)
{
    plugin = fake_load_plugin();
    ck_assert_ptr_nonnull(plugin);
    fake_host_init(&host);
    fake_out_init(&out);
    inst = NULL;
    snprintf(script_path, sizeof script_path, "/tmp/test_lua_%d_XXXXXX",
             (int)getpid());
    int fd = mkstemp(script_path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    errstr[0] = '\0';
}

/* The same, with the host offering its index of each event's members
 * (as the daemon does): every group below runs both ways. */
static void setup_indexed(void)
{
    setup();
    fake_host_offer_index(&host, 1);
}

static void teardown(void)
{
    /* Every copy an output listed, in every test, was what it said. */
    ck_assert_uint_eq(fake_copy_errors(), 0);
    plugin->destroy(inst);
    fake_out_reset(&out);
    unlink(script_path);
    fake_host_offer_index(&host, 0);
}

static void write_script(const char *text)
{
    FILE *f = fopen(script_path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Initialises an instance on `path` with extra config keys (JSON members,
 * may be ""); returns init's result. */
static int init_path(const char *path, const char *extra)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"script\":\"%s\"%s%s}", path,
             extra[0] ? "," : "", extra);
    cJSON *c = cJSON_Parse(cfg);
    ck_assert_ptr_nonnull(c);
    int rc = plugin->init(&host.host, c, &inst, errstr, sizeof errstr);
    cJSON_Delete(c);
    return rc;
}

static void init_script(const char *text, const char *extra)
{
    write_script(text);
    int rc = init_path(script_path, extra);
    ck_assert_msg(rc == 0, "init failed: %s", errstr);
}

static es_filter_verdict_t run_tt(const char *json, const char *topic,
                                  const char *tenant)
{
    fake_event_t e;
    fake_out_reset(&out);
    ck_assert_int_eq(fake_event_init(&e, json, topic, tenant), 0);
    errstr[0] = '\0';
    es_filter_verdict_t v =
        plugin->filter(inst, &e.ev, &out.out, errstr, sizeof errstr);
    fake_event_free(&e);
    return v;
}

static es_filter_verdict_t run(const char *json)
{
    return run_tt(json, "eventzr.marketplace.order.created.v1", "t1");
}

/* Runs the script on json and checks the output is exactly `expect`. It
 * runs twice: a script that read a nested object in its first call gets
 * the event with its nested objects indexed in one pass in the second. */
static void check_output(const char *json, const char *expect, int call)
{
    es_filter_verdict_t v = run(json);
    ck_assert_msg(v == ES_FILTER_REPLACE, "call %d: verdict %d: %s", call, v,
                  errstr);
    ck_assert_int_eq(out.n, 1);
    ck_assert_msg(strcmp(out.json[0], expect) == 0,
                  "call %d: got %s, expected %s", call, out.json[0], expect);
}

static void check_roundtrip(const char *json, const char *expect)
{
    check_output(json, expect, 1);
    check_output(json, expect, 2);
}

/* ---------------------------------------------------------- verdicts */

START_TEST(test_verdicts)
{
    init_script("function filter(ev, topic, tenant, key)\n"
                "  local a = ev.data.action\n"
                "  if a == 'nil' then return nil end\n"
                "  if a == 'true' then return true end\n"
                "  if a == 'false' then return false end\n"
                "  if a == 'ctx' then ev.data.ctx = topic .. '/' .. tenant;"
                " return ev end\n"
                "  return a\n"
                "end\n",
                "");
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"action\":\"nil\"}}"),
                     ES_FILTER_KEEP);
    ck_assert_int_eq(out.n, 0);
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"action\":\"true\"}}"),
                     ES_FILTER_KEEP);
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"action\":\"keep\"}}"),
                     ES_FILTER_KEEP);
    ck_assert_str_eq(out.keep_route, "");
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"action\":\"false\"}}"),
                     ES_FILTER_DROP);
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"action\":\"drop\"}}"),
                     ES_FILTER_DROP);
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"action\":\"ctx\"}}"),
                     ES_FILTER_REPLACE);
    ck_assert_ptr_nonnull(strstr(
        out.json[0], "\"ctx\":\"eventzr.marketplace.order.created.v1/t1\""));
    /* An unknown verdict string is a script error: dead-lettered. */
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"action\":\"maybe\"}}"),
                     ES_FILTER_FAIL);
    ck_assert_ptr_nonnull(strstr(errstr, "maybe"));
    plugin->flush(inst);
    ck_assert_uint_eq(fake_counter(&host, "lua_kept"), 3);
    ck_assert_uint_eq(fake_counter(&host, "lua_dropped"), 2);
    ck_assert_uint_eq(fake_counter(&host, "lua_replaced"), 1);
    ck_assert_uint_eq(fake_counter(&host, "lua_errors"), 1);
}
END_TEST

START_TEST(test_routes_and_multi)
{
    init_script("function filter(ev)\n"
                "  local m = ev.data.mode\n"
                "  if m == 'keep' then return 'keep', 'other' end\n"
                "  if m == 'mod' then ev.data.x = 1; return ev, 'other' end\n"
                "  if m == 'multi' then\n"
                "    local b = es.copy(ev); b.id = 'e2'\n"
                "    return { ev, { event = b, route = 'audit' } }, 'main'\n"
                "  end\n"
                "  if m == 'none' then return es.array() end\n"
                "  if m == 'badroute' then return 'keep', 42 end\n"
                "end\n",
                "");
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"mode\":\"keep\"}}"),
                     ES_FILTER_KEEP);
    ck_assert_str_eq(out.keep_route, "other");
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"mode\":\"mod\"}}"),
                     ES_FILTER_REPLACE);
    ck_assert_int_eq(out.n, 1);
    ck_assert_str_eq(out.route[0], "other");
    ck_assert_str_eq(out.json[0],
                     "{" ENVELOPE ",\"data\":{\"mode\":\"mod\",\"x\":1}}");
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"mode\":\"multi\"}}"),
                     ES_FILTER_REPLACE);
    ck_assert_int_eq(out.n, 2);
    ck_assert_str_eq(out.route[0], "main");
    ck_assert_str_eq(out.route[1], "audit");
    ck_assert_ptr_nonnull(strstr(out.json[1], "\"id\":\"e2\""));
    ck_assert_ptr_nonnull(strstr(out.json[0], "\"id\":\"e1\""));
    /* An empty list of outputs drops the event. */
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"mode\":\"none\"}}"),
                     ES_FILTER_DROP);
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"mode\":\"badroute\"}}"),
                     ES_FILTER_FAIL);
    ck_assert_ptr_nonnull(strstr(errstr, "route name"));
}
END_TEST

START_TEST(test_invalid_output)
{
    init_script("function filter(ev)\n"
                "  if ev.data.kind == 'noid' then ev.id = nil end\n"
                "  if ev.data.kind == 'fn' then ev.data.f = print end\n"
                "  if ev.data.kind == 'nan' then ev.data.f = 0/0 end\n"
                "  if ev.data.kind == 'cycle' then\n"
                "    local t = {}; t.event = t; return { t }\n"
                "  end\n"
                "  return ev\n"
                "end\n",
                "\"on_error\":\"drop\"");
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"kind\":\"noid\"}}"),
                     ES_FILTER_DROP);
    ck_assert_ptr_nonnull(strstr(errstr, "'id'"));
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"kind\":\"fn\"}}"),
                     ES_FILTER_DROP);
    ck_assert_ptr_nonnull(strstr(errstr, "function"));
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"kind\":\"nan\"}}"),
                     ES_FILTER_DROP);
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"kind\":\"cycle\"}}"),
                     ES_FILTER_DROP);
    ck_assert_ptr_nonnull(strstr(errstr, "'specversion'"));
    /* The host refusing an output dead-letters the event. */
    out.reject = 1;
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"kind\":\"ok\"}}"),
                     ES_FILTER_FAIL);
    ck_assert_ptr_nonnull(strstr(errstr, "rejected"));
    out.reject = 0;
}
END_TEST

/* ---------------------------------------------------------- fidelity */

START_TEST(test_integers)
{
    init_script("function filter(ev)\n"
                "  local d = ev.data\n"
                "  assert(math.type(d.a) == 'integer', 'a not integer')\n"
                "  assert(d.a == 9007199254740993, 'a changed')\n"
                "  assert(d.a ~= 9007199254740992, 'a rounded')\n"
                "  assert(d.min == math.mininteger, 'min')\n"
                "  assert(d.max == math.maxinteger, 'max')\n"
                "  assert(math.type(d.f) == 'float', 'f not float')\n"
                "  d.b = d.a + 1\n"
                "  return ev\n"
                "end\n",
                "");
    check_roundtrip("{" ENVELOPE ",\"data\":{\"a\":9007199254740993,"
                    "\"min\":-9223372036854775808,"
                    "\"max\":9223372036854775807,\"f\":1.0}}",
                    "{" ENVELOPE ",\"data\":{\"a\":9007199254740993,"
                    "\"min\":-9223372036854775808,"
                    "\"max\":9223372036854775807,\"f\":1.0,"
                    "\"b\":9007199254740994}}");
}
END_TEST

START_TEST(test_numbers_roundtrip)
{
    /* Reading data decodes it, so it is encoded again on output. */
    init_script("function filter(ev) local _ = ev.data; return ev end\n", "");
    /* Beyond int64 becomes a float (documented), floats keep a fraction
     * or exponent, and print in their shortest exact form. */
    check_roundtrip("{" ENVELOPE ",\"data\":[1.0,0.1,-2.5,1e300,1E2,0.002,"
                    "12345678,18446744073709551616,-0.0,3.141592653589793]}",
                    "{" ENVELOPE ",\"data\":[1.0,0.1,-2.5,1e+300,100.0,0.002,"
                    "12345678,1.8446744073709552e+19,-0.0,3.141592653589793]"
                    "}");
}
END_TEST

START_TEST(test_kinds_null_order)
{
    init_script("function filter(ev)\n"
                "  local d = ev.data\n"
                "  assert(d.n == es.null, 'null lost')\n"
                "  assert(getmetatable(d.ea).__jsontype == 'array')\n"
                "  assert(getmetatable(d.eo).__jsontype == 'object')\n"
                "  d.zz = 1; d.aa = es.array(); d.mm = es.object()\n"
                "  d.plain = {}; d.seq = {1, 2, 'x'}\n"
                "  d.nested = { b = 1, a = { 1, es.null } }\n"
                "  d.gone = nil\n"
                "  return ev\n"
                "end\n",
                "");
    check_roundtrip(
        "{" ENVELOPE ",\"data\":{\"z\":1,\"gone\":2,\"a\":2,\"n\":null,"
        "\"ea\":[],\"eo\":{},\"arr\":[null,{}, []]}}",
        "{" ENVELOPE ",\"data\":{\"z\":1,\"a\":2,\"n\":null,\"ea\":[],"
        "\"eo\":{},\"arr\":[null,{}, []],\"aa\":[],\"mm\":{},"
        "\"nested\":{\"a\":[1,null],\"b\":1},\"plain\":{},"
        "\"seq\":[1,2,\"x\"],\"zz\":1}}");
}
END_TEST

START_TEST(test_kind_of_event_object)
{
    /* es.object / es.array on one of the event's own objects keeps the
     * members the script has not read yet. */
    init_script("function filter(ev)\n"
                "  local d = ev.data\n"
                "  if d.mode == 'object' then d.yy = 2; es.object(d)\n"
                "  else es.array(d.list) end\n"
                "  d.zz = 1\n"
                "  return ev\n"
                "end\n",
                "");
    check_roundtrip("{" ENVELOPE ",\"data\":{\"mode\":\"object\",\"a\":1,"
                    "\"b\":{\"c\":2}}}",
                    "{" ENVELOPE ",\"data\":{\"mode\":\"object\",\"a\":1,"
                    "\"b\":{\"c\":2},\"yy\":2,\"zz\":1}}");
    check_roundtrip("{" ENVELOPE ",\"data\":{\"mode\":\"array\",\"a\":1,"
                    "\"list\":[1,{\"x\":2}]}}",
                    "{" ENVELOPE ",\"data\":{\"mode\":\"array\",\"a\":1,"
                    "\"list\":[1,{\"x\":2}],\"zz\":1}}");
}
END_TEST

START_TEST(test_added_keys_every_way)
{
    /* The encoder looks for keys outside an object's order list only in
     * tables that may have them; each way of adding keys must count. */
    init_script("function filter(ev)\n"
                "  local d, m = ev.data, ev.data.mode\n"
                "  if m == 'assign' then d.zz = 1\n"
                "  elseif m == 'nested' then d.sub.zz = 1\n"
                "  elseif m == 'rawset' then rawset(d, 'zz', 1)\n"
                "  elseif m == 'readd' then d.a = nil; d.a = 3\n"
                "  elseif m == 'setmt' then\n"
                "    ev.data = setmetatable({mode = m, b = 1, zz = 1},\n"
                "                           getmetatable(d))\n"
                "  elseif m == 'copy' then d.zz = 1; ev.data = es.copy(d)\n"
                "  elseif m == 'insert' then table.insert(d, 5)\n"
                "  end\n"
                "  return ev\n"
                "end\n",
                "");
    static const struct {
        const char *mode, *data;
    } cases[] = {
        {"none", "{\"mode\":\"none\",\"a\":1,\"b\":2,\"sub\":{\"x\":1}}"},
        {"assign",
         "{\"mode\":\"assign\",\"a\":1,\"b\":2,\"sub\":{\"x\":1},\"zz\":1}"},
        {"nested",
         "{\"mode\":\"nested\",\"a\":1,\"b\":2,\"sub\":{\"x\":1,\"zz\":1}}"},
        {"rawset",
         "{\"mode\":\"rawset\",\"a\":1,\"b\":2,\"sub\":{\"x\":1},\"zz\":1}"},
        {"readd", "{\"mode\":\"readd\",\"a\":3,\"b\":2,\"sub\":{\"x\":1}}"},
        /* getmetatable(d) carries no key order of d: sorted keys */
        {"setmt", "{\"b\":1,\"mode\":\"setmt\",\"zz\":1}"},
        {"copy",
         "{\"mode\":\"copy\",\"a\":1,\"b\":2,\"sub\":{\"x\":1},\"zz\":1}"},
        {"none", "{\"mode\":\"none\",\"a\":1,\"b\":2,\"sub\":{\"x\":1}}"},
    };
    char in[512], expect[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(in, sizeof in,
                 "{" ENVELOPE ",\"data\":{\"mode\":\"%s\",\"a\":1,\"b\":2,"
                 "\"sub\":{\"x\":1}}}",
                 cases[i].mode);
        snprintf(expect, sizeof expect, "{" ENVELOPE ",\"data\":%s}",
                 cases[i].data);
        check_roundtrip(in, expect);
    }
    snprintf(in, sizeof in,
             "{" ENVELOPE ",\"data\":{\"mode\":\"insert\",\"a\":1,\"b\":2,"
             "\"sub\":{\"x\":1}}}");
    ck_assert_int_eq(run(in), ES_FILTER_FAIL);
    ck_assert_ptr_nonnull(strstr(errstr, "object keys must be strings"));
}
END_TEST

START_TEST(test_similar_keys)
{
    /* Keys with the same length, first and last 8 bytes (and the same
     * first 8, which the repeated-key hash looks at) are told apart by
     * their middles. */
    init_script("function filter(ev) return ev end\n", "");
    static const char *const evs[] = {
        "{" ENVELOPE ",\"data\":{\"abcdefgh-MIDDLE1-stuvwxyz\":1,"
        "\"abcdefgh-MIDDLE2-stuvwxyz\":2,\"short\":3,\"shorT\":4,"
        "\"exactly16bytes!!\":5,\"exactly16bytes!?\":6}}",
        "{" ENVELOPE ",\"data\":{\"abcdefgh-MIDDLE2-stuvwxyz\":2,"
        "\"abcdefgh-MIDDLE1-stuvwxyz\":1,\"shorT\":4,\"short\":3,"
        "\"exactly16bytes!?\":6,\"exactly16bytes!!\":5}}",
    };
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < 2; i++)
            check_roundtrip(evs[i], evs[i]);
}
END_TEST

START_TEST(test_strings)
{
    init_script("function filter(ev)\n"
                "  assert(ev.data.e == '\\u{e9}', 'escape not decoded')\n"
                "  assert(utf8.len(ev.data.u) == 4, 'utf8 length')\n"
                "  assert(ev.data.s == '\\u{1F600}', 'surrogate pair')\n"
                "  assert(#ev.data.q == 9, 'escapes')\n"
                "  return ev\n"
                "end\n",
                "");
    check_roundtrip("{" ENVELOPE ",\"data\":{\"u\":\"h\xc3\xa9\xe2\x9c\x93"
                    "\xf0\x9f\x98\x80\",\"e\":\"\\u00e9\","
                    "\"s\":\"\\ud83d\\ude00\",\"q\":\"a\\\"b\\\\c\\n\\t"
                    "\\u0001\\/\"}}",
                    "{" ENVELOPE ",\"data\":{\"u\":\"h\xc3\xa9\xe2\x9c\x93"
                    "\xf0\x9f\x98\x80\",\"e\":\"\xc3\xa9\","
                    "\"s\":\"\xf0\x9f\x98\x80\",\"q\":\"a\\\"b\\\\c\\n\\t"
                    "\\u0001/\"}}");
}
END_TEST

START_TEST(test_dup_keys_and_whitespace)
{
    init_script("function filter(ev) assert(ev.data.a == 2); return ev end\n",
                "");
    check_roundtrip(" {" ENVELOPE " , \"data\" : { \"a\" : 1 , \"a\" : 2 } "
                    "}\n",
                    "{" ENVELOPE ",\"data\":{\"a\":2}}");
}
END_TEST

START_TEST(test_string_boundaries)
{
    /* Escapes at every position of strings around the 8-byte scan width:
     * canonical escapes come back exactly as they went in. */
    init_script("function filter(ev) return ev end\n", "");
    static const char *const escs[] = {"\\\"", "\\\\", "\\u0001", "\\n"};
    for (int len = 0; len < 20; len++)
        for (int pos = 0; pos <= len; pos++)
            for (size_t e = 0; e < sizeof escs / sizeof escs[0]; e++) {
                char str[64] = "", json[256];
                for (int i = 0; i < len; i++) {
                    if (i == pos)
                        strcat(str, escs[e]);
                    strcat(str, "x");
                }
                if (pos == len)
                    strcat(str, escs[e]);
                snprintf(json, sizeof json, "{" ENVELOPE ",\"data\":\"%s\"}",
                         str);
                check_roundtrip(json, json);
            }
}
END_TEST

START_TEST(test_untouched_verbatim)
{
    /* What the script never reads leaves as it came: number spellings,
     * escapes, whitespace inside values and repeated keys. */
    init_script("function filter(ev) ev.data.seen = ev.data.a; return ev end\n",
                "");
    check_roundtrip("{" ENVELOPE ",\"data\":{\"a\":1E2,\"b\":[ 1.50, 2e0 ],"
                    "\"c\":\"\\u00e9\\/\",\"d\":{ \"x\" : 1 , \"x\" : 2 }}}",
                    "{" ENVELOPE ",\"data\":{\"a\":100.0,\"b\":[ 1.50, 2e0 ],"
                    "\"c\":\"\\u00e9\\/\",\"d\":{ \"x\" : 1 , \"x\" : 2 },"
                    "\"seen\":100.0}}");
}
END_TEST

START_TEST(test_nested_index)
{
    /* Nested objects indexed with the event (the second call) and on their
     * own (the first) agree: repeated keys whose values are objects, and
     * escaped keys at two levels. */
    init_script("function filter(ev)\n"
                "  local d = ev.data\n"
                "  d.sum = d.o.x + d.o.z.w + d.k1.y2\n"
                "  return ev\n"
                "end\n",
                "");
    check_roundtrip("{" ENVELOPE ",\"data\":{\"o\":{\"x\":1},"
                    "\"k\\u0031\":{\"y\\u0032\":2,\"y2\":3},"
                    "\"o\":{\"x\":5,\"z\":{\"w\":1}}}}",
                    "{" ENVELOPE ",\"data\":{\"o\":{\"x\":5,\"z\":{\"w\":1}},"
                    "\"k\\u0031\":{\"y\\u0032\":3},\"sum\":9}}");
}
END_TEST

START_TEST(test_untouched_runs)
{
    /* Members the script never touched are copied as one span with what
     * separates them in the source; a repeated key's first place (which
     * takes the later value) is not part of a span. */
    init_script("function filter(ev) ev.data.n = 2; return ev end\n", "");
    check_roundtrip("{ \"specversion\":\"1.0\" ,\n \"id\" : \"e1\","
                    "\"source\":\"marketplace-svc\",\"type\":\"t\",\"x\":1,"
                    "\"y\":2,\"x\":3,\"data\":{\"n\":1} }",
                    "{\"specversion\":\"1.0\" ,\n \"id\" : \"e1\","
                    "\"source\":\"marketplace-svc\",\"type\":\"t\",\"x\":3,"
                    "\"y\":2,\"data\":{\"n\":2}}");
}
END_TEST

START_TEST(test_lazy_raw_access)
{
    /* pairs, next and rawget see members the script has not read yet;
     * escaped keys are found by their text. */
    init_script(
        "function filter(ev)\n"
        "  local d, keys = ev.data, {}\n"
        "  for k in pairs(d) do keys[#keys + 1] = k end\n"
        "  table.sort(keys)\n"
        "  assert(table.concat(keys, ',') == 'a,ab,b,n', 'pairs')\n"
        "  assert(rawget(ev, 'id') == 'e1', 'rawget')\n"
        "  local k1 = next(ev.data.n)\n"
        "  local k2 = next(ev.data.n, k1)\n"
        "  assert(k1 and k2 and k1 ~= k2 and not next(ev.data.n, k2), 'next')\n"
        "  assert(d.ab == 3, 'escaped key')\n"
        "  local x = d.a; d.a = nil; d.b = nil; d.b = x\n"
        "  rawset(d, 'z', true)\n"
        "  local c = es.copy(d.n)\n"
        "  c.new = 1\n"
        "  d.c = c\n"
        "  return ev\n"
        "end\n",
        "");
    check_roundtrip("{" ENVELOPE ",\"data\":{\"b\":0,\"a\":1,\"a\\u0062\":3,"
                    "\"n\":{\"k\":1,\"j\":[2]}}}",
                    "{" ENVELOPE ",\"data\":{\"b\":1,\"a\\u0062\":3,"
                    "\"n\":{\"k\":1,\"j\":[2]},\"c\":{\"k\":1,\"j\":[2],"
                    "\"new\":1},\"z\":true}}");
}
END_TEST

START_TEST(test_lazy_unread_object)
{
    /* An object the script never reads into: its members are decoded
     * only by pairs, and its text is kept when nothing changed. */
    init_script("function filter(ev)\n"
                "  local n = 0\n"
                "  for _ in pairs(ev.data.o) do n = n + 1 end\n"
                "  ev.data.count = n\n"
                "  return ev\n"
                "end\n",
                "");
    check_roundtrip("{" ENVELOPE ",\"data\":{\"o\":{\"x\" :1,\"y\":[1, 2]}}}",
                    "{" ENVELOPE ",\"data\":{\"o\":{\"x\":1,\"y\":[1,2]},"
                    "\"count\":2}}");
}
END_TEST

START_TEST(test_event_kept_across_calls)
{
    /* A script may keep an event table: it stays readable after the
     * call, whatever became of the host's copy of the text. */
    init_script("function filter(ev)\n"
                "  local prev = last\n"
                "  last = ev\n"
                "  if not prev then return 'drop' end\n"
                "  ev.data.prev = prev.data.v\n"
                "  ev.data.prev_id = prev.id\n"
                "  return ev\n"
                "end\n",
                "");
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"v\":\"first\"}}"),
                     ES_FILTER_DROP);
    check_output("{" ENVELOPE ",\"data\":{\"v\":\"second\"}}",
                 "{" ENVELOPE ",\"data\":{\"v\":\"second\","
                 "\"prev\":\"first\",\"prev_id\":\"e1\"}}",
                 2);
    /* The second call read ev.data: this one indexes the nested objects
     * with the event, and the kept event's are read from its own index. */
    check_output("{" ENVELOPE ",\"data\":{\"v\":\"third\"}}",
                 "{" ENVELOPE ",\"data\":{\"v\":\"third\","
                 "\"prev\":\"second\",\"prev_id\":\"e1\"}}",
                 3);
}
END_TEST

START_TEST(test_repeated_keys_many_members)
{
    /* Members past an object's 96th find their earlier namesakes by
     * comparison (earlier ones by hash, as in test_dup_keys_and_whitespace);
     * either way the key keeps its first place and takes the last value. */
    init_script("function filter(ev)\n"
                "  local d = ev.data\n"
                "  d.k001 = d.k001; d.k099 = d.k099\n"
                "  return ev\n"
                "end\n",
                "");
    char json[4096], expect[4096];
    int n = snprintf(json, sizeof json, "{" ENVELOPE ",\"data\":{");
    int m = snprintf(expect, sizeof expect, "{" ENVELOPE ",\"data\":{");
    for (int i = 0; i < 100; i++) {
        int v = i == 1 ? 1001 : i == 99 ? 1099 : i;
        n += snprintf(json + n, sizeof json - (size_t)n, "\"k%03d\":%d,", i, i);
        m += snprintf(expect + m, sizeof expect - (size_t)m, "%s\"k%03d\":%d",
                      i ? "," : "", i, v);
    }
    snprintf(json + n, sizeof json - (size_t)n,
             "\"k001\":1001,\"k099\":1099}}");
    snprintf(expect + m, sizeof expect - (size_t)m, "}}");
    check_roundtrip(json, expect);
}
END_TEST

START_TEST(test_members_found_by_hash)
{
    /* An object of more than eight members keeps a hash of its keys:
     * repeated ones, reads, writes, removals and absent keys through it. */
    init_script("function filter(ev)\n"
                "  local d = ev.data\n"
                "  assert(d.k03 == 1003, 'the last of a repeated key wins')\n"
                "  assert(d.nope == nil and d.k1 == nil and d.k031 == nil)\n"
                "  d.k07 = d.k07 + 100; d.k11 = nil; d.new = d.k19\n"
                "  es.redact(d, {'k05', 'k13', 'absent'})\n"
                "  return ev\n"
                "end\n",
                "");
    char json[2048], expect[2048];
    int n = snprintf(json, sizeof json, "{" ENVELOPE ",\"data\":{");
    int m = snprintf(expect, sizeof expect, "{" ENVELOPE ",\"data\":{");
    for (int i = 0; i < 20; i++) {
        n += snprintf(json + n, sizeof json - (size_t)n, "\"k%02d\":%d,", i, i);
        if (i == 11)
            continue;
        char v[32];
        snprintf(v, sizeof v, "%d", i);
        if (i == 3)
            snprintf(v, sizeof v, "1003");
        if (i == 7)
            snprintf(v, sizeof v, "107");
        if (i == 5 || i == 13)
            snprintf(v, sizeof v, "\"[REDACTED]\"");
        m += snprintf(expect + m, sizeof expect - (size_t)m, "%s\"k%02d\":%s",
                      i ? "," : "", i, v);
    }
    snprintf(json + n, sizeof json - (size_t)n, "\"k03\":1003}}");
    snprintf(expect + m, sizeof expect - (size_t)m, ",\"new\":19}}");
    check_roundtrip(json, expect);
}
END_TEST

START_TEST(test_big_and_long_keys)
{
    /* Many keys, and keys longer than Lua's interned strings, repeated. */
    init_script("function filter(ev) ev.data.added = es.encode({1, 'a'})\n"
                "  return ev end\n",
                "");
    char json[8192], expect[8192 + 256];
    int n = snprintf(json, sizeof json, "{" ENVELOPE ",\"data\":{");
    for (int i = 0; i < 70; i++)
        n += snprintf(json + n, sizeof json - (size_t)n, "\"k%02d\":%d,", i, i);
    const char *longk = "\"a-key-longer-than-forty-characters-xxxxxxxxxxxx\"";
    snprintf(expect, sizeof expect, "%s%s:2,\"added\":\"[1,\\\"a\\\"]\"}}",
             json, longk);
    n += snprintf(json + n, sizeof json - (size_t)n, "%s:1,%s:2}}", longk,
                  longk);
    check_roundtrip(json, expect);
    check_roundtrip(json, expect); /* nothing is left over from the first */
}
END_TEST

/* ---------------------------------------------------------- helpers */

START_TEST(test_redact_remove)
{
    init_script(
        "function filter(ev)\n"
        "  local n = es.redact(ev, {'data.email', 'data.users.*.phone',\n"
        "                           'data.missing.x', 'data.nul'})\n"
        "  n = n + es.remove(ev, 'data.users.2')\n"
        "  n = n + es.remove(ev, {'data.secret', 'data.tags.1'})\n"
        "  n = n + es.redact(ev, 'data.wallet', function(v)\n"
        "      return v:sub(1, 4) .. '...' end)\n"
        "  ev.data.count = n\n"
        "  return ev\n"
        "end\n",
        "");
    check_roundtrip(
        "{" ENVELOPE ",\"data\":{\"email\":\"a@b.c\",\"nul\":null,"
        "\"users\":[{\"phone\":\"1\"},{\"phone\":\"2\"},{\"name\":\"x\"}],"
        "\"secret\":\"s\",\"tags\":[\"t1\",\"t2\"],\"wallet\":\"0xabcdef\"}}",
        "{" ENVELOPE ",\"data\":{\"email\":\"[REDACTED]\",\"nul\":null,"
        "\"users\":[{\"phone\":\"[REDACTED]\"},{\"name\":\"x\"}],"
        "\"tags\":[\"t2\"],\"wallet\":\"0xab...\",\"count\":7}}");
}
END_TEST

/* Paths under one parent resolve it once; an op on the parent's own
 * ancestors (a path with fewer segments) must not leave it cut off. */
START_TEST(test_redact_shared_parents)
{
    init_script(
        "function filter(ev)\n"
        "  local n = es.remove(ev, {'data.a.x', 'data', 'data.a.y'})\n"
        "  n = n * 10 + es.redact(ev, {'meta.s.street', 'meta.s.phone',\n"
        "    'meta.name', 'meta.s', 'meta.s.zip', 'meta..k', 'meta.n.1'})\n"
        "  ev.count = n\n"
        "  return ev\n"
        "end\n",
        "");
    check_roundtrip(
        "{" ENVELOPE ",\"data\":{\"a\":{\"x\":1,\"y\":2}},"
        "\"meta\":{\"s\":{\"street\":\"st\",\"phone\":\"p\","
        "\"zip\":\"z\"},\"name\":\"n\",\"\":{\"k\":1},\"n\":[7,8]}}",
        "{" ENVELOPE ",\"meta\":{\"s\":\"[REDACTED]\","
        "\"name\":\"[REDACTED]\",\"\":{\"k\":\"[REDACTED]\"},"
        "\"n\":[\"[REDACTED]\",8]},\"count\":26}");
}
END_TEST

START_TEST(test_redact_paths_made_per_call)
{
    /* Paths built on each call: the strings of their segments are found
     * again by where their bytes are, and a path whose bytes land where
     * another's were must still get its own segments. */
    init_script("function filter(ev)\n"
                "  local p = {}\n"
                "  for w in ev.data.which:gmatch('[^,]+') do\n"
                "    p[#p + 1] = 'data.' .. w\n"
                "  end\n"
                "  es.redact(ev, p)\n"
                "  es.remove(ev, 'data.' .. ev.data.drop)\n"
                "  return ev\n"
                "end\n",
                "");
    static const struct {
        const char *which, *drop, *expect;
    } calls[] = {
        {"aa,bb", "cc", "\"aa\":\"[REDACTED]\",\"bb\":\"[REDACTED]\""},
        {"cc,aa", "bb", "\"aa\":\"[REDACTED]\",\"cc\":\"[REDACTED]\""},
        {"bb,cc", "aa", "\"bb\":\"[REDACTED]\",\"cc\":\"[REDACTED]\""},
        {"ab,ba", "cc", "\"aa\":1,\"bb\":2"},
    };
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
            char json[512], expect[512];
            snprintf(json, sizeof json,
                     "{" ENVELOPE ",\"data\":{\"which\":\"%s\",\"drop\":"
                     "\"%s\",\"aa\":1,\"bb\":2,\"cc\":3}}",
                     calls[i].which, calls[i].drop);
            snprintf(expect, sizeof expect,
                     "{" ENVELOPE ",\"data\":{\"which\":\"%s\",\"drop\":"
                     "\"%s\",%s}}",
                     calls[i].which, calls[i].drop, calls[i].expect);
            check_roundtrip(json, expect);
        }
}
END_TEST

START_TEST(test_redact_nested_unread)
{
    /* Paths into an object the script never read ("s") change its members
     * in place; whatever then reads, copies, iterates, replaces or encodes
     * it must see what a decoded object would have shown. The same test
     * passes with that shortcut turned off. */
    init_script(
        "function filter(ev)\n"
        "  local d = ev.data\n"
        "  local m, n = d.mode, 0\n"
        "  if m == 'redact' then\n"
        "    n = es.redact(ev, {'data.s.street', 'data.s.phone', 'data.s.n',\n"
        "                       'data.s.zz'})\n"
        "  elseif m == 'read' then\n"
        "    n = es.redact(ev, {'data.s.street'})\n"
        "    local s = d.s\n"
        "    d.got = s.street .. '/' .. s.city; s.city = nil\n"
        "  elseif m == 'remove' then\n"
        "    n = es.remove(ev, {'data.s.phone', 'data.s.nope'})\n"
        "    n = n + es.redact(ev, {'data.s.phone'})\n"
        "  elseif m == 'whole' then\n"
        "    n = es.redact(ev, {'data.s.street', 'data.s'})\n"
        "  elseif m == 'table' then\n"
        "    n = es.redact(ev, {'data.s.city'}, {masked = true})\n"
        "  elseif m == 'copy' then\n"
        "    n = es.redact(ev, {'data.s.street'}); d.c = es.copy(d.s)\n"
        "  elseif m == 'pairs' then\n"
        "    n = es.remove(ev, {'data.s.city'})\n"
        "    local keys = {}\n"
        "    for k, v in pairs(d.s) do\n"
        "      if v ~= es.null then keys[#keys + 1] = k .. '=' .. v end\n"
        "    end\n"
        "    table.sort(keys); d.keys = table.concat(keys, ',')\n"
        "  elseif m == 'twice' then\n"
        "    n = es.redact(ev, {'data.s.street', 'data.s.street'})\n"
        "  elseif m == 'dup' then\n"
        "    n = es.redact(ev, {'data.s.a'})\n"
        "  elseif m == 'rooted' then\n"
        "    n = es.redact(d, {'s.street', 's.phone'})\n"
        "  end\n"
        "  d.count = n\n"
        "  return ev\n"
        "end\n",
        "");
#define NESTED_IN(mode)                                                        \
    "{" ENVELOPE ",\"data\":{\"mode\":\"" mode "\",\"s\":{\"street\":\"st\","  \
    "\"city\":\"c\", \"phone\":\"p\",\"n\":null,\"a\":1,\"a\":3},\"k\":1}}"
#define NESTED_OUT(mode, s, tail)                                              \
    "{" ENVELOPE ",\"data\":{\"mode\":\"" mode "\",\"s\":" s ",\"k\":1" tail   \
    "}}"
#define RED "\"[REDACTED]\""
    check_roundtrip(NESTED_IN("redact"),
                    NESTED_OUT("redact",
                               "{\"street\":" RED
                               ",\"city\":\"c\",\"phone\":" RED
                               ",\"n\":null,\"a\":3}",
                               ",\"count\":2"));
    check_roundtrip(NESTED_IN("read"),
                    NESTED_OUT("read",
                               "{\"street\":" RED ",\"phone\":\"p\",\"n\":null,"
                               "\"a\":3}",
                               ",\"count\":1,\"got\":\"[REDACTED]/c\""));
    check_roundtrip(NESTED_IN("remove"),
                    NESTED_OUT("remove",
                               "{\"street\":\"st\",\"city\":\"c\",\"n\":null,"
                               "\"a\":3}",
                               ",\"count\":1"));
    check_roundtrip(NESTED_IN("whole"),
                    NESTED_OUT("whole", RED, ",\"count\":2"));
    check_roundtrip(NESTED_IN("table"),
                    NESTED_OUT("table",
                               "{\"street\":\"st\",\"city\":{\"masked\":true},"
                               "\"phone\":\"p\",\"n\":null,\"a\":3}",
                               ",\"count\":1"));
    check_roundtrip(
        NESTED_IN("copy"),
        NESTED_OUT("copy",
                   "{\"street\":" RED ",\"city\":\"c\",\"phone\":\"p\","
                   "\"n\":null,\"a\":3}",
                   ",\"c\":{\"street\":" RED ",\"city\":\"c\",\"phone\":\"p\","
                   "\"n\":null,\"a\":3},\"count\":1"));
    check_roundtrip(
        NESTED_IN("pairs"),
        NESTED_OUT("pairs",
                   "{\"street\":\"st\",\"phone\":\"p\",\"n\":null,"
                   "\"a\":3}",
                   ",\"count\":1,\"keys\":\"a=3,phone=p,street=st\""));
    /* a run of members is copied as written, its space too */
    check_roundtrip(NESTED_IN("twice"),
                    NESTED_OUT("twice",
                               "{\"street\":" RED
                               ",\"city\":\"c\", \"phone\":\"p\","
                               "\"n\":null,\"a\":3}",
                               ",\"count\":2"));
    check_roundtrip(
        NESTED_IN("dup"),
        NESTED_OUT("dup",
                   "{\"street\":\"st\",\"city\":\"c\", \"phone\":\"p\","
                   "\"n\":null,\"a\":" RED "}",
                   ",\"count\":1"));
    check_roundtrip(NESTED_IN("rooted"),
                    NESTED_OUT("rooted",
                               "{\"street\":" RED
                               ",\"city\":\"c\",\"phone\":" RED
                               ",\"n\":null,\"a\":3}",
                               ",\"count\":2"));
#undef NESTED_IN
#undef NESTED_OUT
#undef RED
}
END_TEST

START_TEST(test_log_and_print)
{
    init_script("function filter(ev)\n"
                "  es.log('warn', 'seen', ev.id, 42)\n"
                "  print('hello', true)\n"
                "  return 'keep'\n"
                "end\n",
                "");
    ck_assert_int_eq(run("{" ENVELOPE "}"), ES_FILTER_KEEP);
    ck_assert_ptr_nonnull(strstr(host.logs, "2 script: seen e1 42"));
    ck_assert_ptr_nonnull(strstr(host.logs, "3 script: hello\ttrue"));
}
END_TEST

/* ---------------------------------------------------------- sandbox */

START_TEST(test_sandbox)
{
    init_script(
        "function filter(ev)\n"
        "  local absent = { io = io, require = require, load = load,\n"
        "    loadfile = loadfile, dofile = dofile, package = package,\n"
        "    debug = debug, coroutine = coroutine,\n"
        "    execute = os.execute, getenv = os.getenv, remove = os.remove,\n"
        "    dump = string.dump, collectgarbage = collectgarbage }\n"
        "  for k, v in pairs(absent) do error(k .. ' is reachable') end\n"
        "  assert(type(os.clock()) == 'number')\n"
        "  assert(not pcall(setmetatable, {}, { __gc = print }))\n"
        "  return 'keep'\n"
        "end\n",
        "");
    ck_assert_int_eq(run("{" ENVELOPE "}"), ES_FILTER_KEEP);
}
END_TEST

START_TEST(test_sandbox_io_call_fails)
{
    init_script("function filter(ev)\n"
                "  if ev.data == 1 then io.open('/etc/passwd') end\n"
                "  if ev.data == 2 then os.execute('true') end\n"
                "  if ev.data == 3 then require('os') end\n"
                "  return 'keep'\n"
                "end\n",
                "");
    for (int i = 1; i <= 3; i++) {
        char json[256];
        snprintf(json, sizeof json, "{" ENVELOPE ",\"data\":%d}", i);
        ck_assert_int_eq(run(json), ES_FILTER_FAIL);
        ck_assert_ptr_nonnull(strstr(errstr, "nil value"));
    }
}
END_TEST

START_TEST(test_bytecode_refused)
{
    /* A precompiled chunk starts with ESC "Lua". */
    write_script("\x1bLua\x54");
    ck_assert_int_ne(init_path(script_path, ""), 0);
    ck_assert_ptr_nonnull(strstr(errstr, "binary"));
}
END_TEST

/* ---------------------------------------------------------- budgets */

static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* How much slower than native this run is: scripts/valgrind sets it, as
 * memcheck runs the same instructions some 50 times slower. */
static double time_scale(void)
{
    const char *s = getenv("ES_TEST_TIME_SCALE");
    double k = s ? atof(s) : 1.0;
    return k >= 1.0 ? k : 1.0;
}

START_TEST(test_runaway_stopped)
{
    init_script(
        "function filter(ev)\n"
        "  if ev.data == 1 then while true do end end\n"
        "  if ev.data == 2 then\n"
        "    while true do pcall(function() while true do end end) end\n"
        "  end\n"
        "  return 'keep'\n"
        "end\n",
        "");
    for (int i = 1; i <= 2; i++) {
        char json[256];
        snprintf(json, sizeof json, "{" ENVELOPE ",\"data\":%d}", i);
        double t0 = thread_cpu_ms();
        ck_assert_int_eq(run(json), ES_FILTER_FAIL);
        double spent = thread_cpu_ms() - t0;
        ck_assert_msg(spent < 100.0 * time_scale(), "runaway ran %.1f ms",
                      spent);
        ck_assert_ptr_nonnull(strstr(errstr, "instruction limit"));
    }
    /* The state is still usable. */
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":0}"), ES_FILTER_KEEP);
    plugin->flush(inst);
    ck_assert_uint_eq(fake_counter(&host, "lua_instruction_limit"), 2);
    /* Logged once per burst. */
    ck_assert_int_eq(host.log_lines, 1);
}
END_TEST

START_TEST(test_memory_bomb)
{
    init_script("function filter(ev)\n"
                "  if ev.data == 1 then local s = string.rep('x', 1e9) end\n"
                "  if ev.data == 2 then\n"
                "    local s = 'xxxxxxxxxxxxxxxx'\n"
                "    while true do s = s .. s end\n"
                "  end\n"
                "  if ev.data == 3 then\n"
                "    local keep = {}\n"
                "    for i = 1, 1e8 do keep[i] = {} end\n"
                "  end\n"
                "  return 'keep'\n"
                "end\n",
                "\"memory_limit_kb\":4096,\"on_error\":\"pass\"");
    for (int i = 1; i <= 3; i++) {
        char json[256];
        snprintf(json, sizeof json, "{" ENVELOPE ",\"data\":%d}", i);
        ck_assert_int_eq(run(json), ES_FILTER_KEEP);
        ck_assert_msg(strstr(errstr, "memory"), "errstr: %s", errstr);
    }
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":0}"), ES_FILTER_KEEP);
    plugin->flush(inst);
    ck_assert_uint_eq(fake_counter(&host, "lua_memory_limit"), 3);
}
END_TEST

START_TEST(test_on_error_policies)
{
    static const struct {
        const char *cfg;
        es_filter_verdict_t v;
    } cases[] = {{"", ES_FILTER_FAIL},
                 {"\"on_error\":\"dead-letter\"", ES_FILTER_FAIL},
                 {"\"on_error\":\"pass\"", ES_FILTER_KEEP},
                 {"\"on_error\":\"drop\"", ES_FILTER_DROP}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        init_script("function filter(ev) error('boom') end\n", cases[i].cfg);
        ck_assert_int_eq(run("{" ENVELOPE "}"), cases[i].v);
        ck_assert_ptr_nonnull(strstr(errstr, ":1: boom"));
        plugin->destroy(inst);
        inst = NULL;
    }
}
END_TEST

/* ---------------------------------------------------------- config, load */

START_TEST(test_load_errors)
{
    write_script("function filter(ev)\n  return 'keep'\nend end\n");
    ck_assert_int_ne(init_path(script_path, ""), 0);
    ck_assert_msg(strstr(errstr, script_path) && strstr(errstr, ":3:"),
                  "errstr: %s", errstr);

    write_script("local x = nil + 1\n");
    ck_assert_int_ne(init_path(script_path, ""), 0);
    ck_assert_msg(strstr(errstr, ":1:"), "errstr: %s", errstr);

    write_script("function other(ev) end\n");
    ck_assert_int_ne(init_path(script_path, ""), 0);
    ck_assert_ptr_nonnull(strstr(errstr, "'filter'"));
    ck_assert_int_eq(init_path(script_path, "\"function\":\"other\""), 0);
    plugin->destroy(inst);
    inst = NULL;

    write_script("while true do end\n");
    ck_assert_int_ne(init_path(script_path, ""), 0);
    ck_assert_ptr_nonnull(strstr(errstr, "instruction limit"));

    ck_assert_int_ne(init_path("/nonexistent/x.lua", ""), 0);
    ck_assert_ptr_nonnull(strstr(errstr, "/nonexistent/x.lua"));
}
END_TEST

START_TEST(test_config_errors)
{
    static const struct {
        const char *cfg;
        const char *want;
    } cases[] = {
        {"{}", "script: required"},
        {"{\"script\":\"x\",\"bogus\":1}", "bogus: unknown key"},
        {"{\"script\":1}", "script: must be"},
        {"{\"script\":\"x\",\"on_error\":\"retry\"}", "on_error: must be"},
        {"{\"script\":\"x\",\"instruction_limit\":1.5}",
         "instruction_limit: must be"},
        {"{\"script\":\"x\",\"memory_limit_kb\":-1}",
         "memory_limit_kb: must be"},
        {"{\"script\":\"x\",\"reload_check_ms\":\"1\"}",
         "reload_check_ms: must be"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *c = cJSON_Parse(cases[i].cfg);
        ck_assert_int_ne(
            plugin->init(&host.host, c, &inst, errstr, sizeof errstr), 0);
        ck_assert_msg(strstr(errstr, cases[i].want), "%s -> %s", cases[i].cfg,
                      errstr);
        cJSON_Delete(c);
    }
    ck_assert_int_ne(
        plugin->init(&host.host, NULL, &inst, errstr, sizeof errstr), 0);
    inst = NULL;
}
END_TEST

/* ---------------------------------------------------------- reload */

static void wait_and_flush(void)
{
    usleep(20000);
    plugin->flush(inst);
}

START_TEST(test_reload)
{
    init_script("function filter(ev) return 'keep' end\n",
                "\"reload_check_ms\":10");
    ck_assert_int_eq(run("{" ENVELOPE "}"), ES_FILTER_KEEP);

    write_script("function filter(ev) return 'drop' end -- v2\n");
    wait_and_flush();
    ck_assert_int_eq(run("{" ENVELOPE "}"), ES_FILTER_DROP);
    ck_assert_uint_eq(fake_counter(&host, "lua_reloads"), 1);

    /* A broken version is refused; v2 keeps running. */
    write_script("function filter(ev) return 'keep' -- broken\n");
    wait_and_flush();
    ck_assert_int_eq(run("{" ENVELOPE "}"), ES_FILTER_DROP);
    ck_assert_uint_eq(fake_counter(&host, "lua_reload_failures"), 1);
    ck_assert_ptr_nonnull(strstr(host.logs, "reload failed"));
    /* ...and is not retried until the file changes again. */
    wait_and_flush();
    ck_assert_uint_eq(fake_counter(&host, "lua_reload_failures"), 1);

    write_script("function filter(ev) return 'keep', 'v3' end\n");
    wait_and_flush();
    ck_assert_int_eq(run("{" ENVELOPE "}"), ES_FILTER_KEEP);
    ck_assert_str_eq(out.keep_route, "v3");
    ck_assert_uint_eq(fake_counter(&host, "lua_reloads"), 2);
}
END_TEST

/* ---------------------------------------------------------- examples */

static void init_example(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", LUA_EXAMPLES_DIR, name);
    ck_assert_msg(init_path(path, "") == 0, "%s: %s", name, errstr);
}

START_TEST(test_example_drop_test_tenants)
{
    init_example("drop_test_tenants.lua");
    ck_assert_int_eq(run_tt("{" ENVELOPE "}", "t", "test-acme"),
                     ES_FILTER_DROP);
    ck_assert_int_eq(run_tt("{" ENVELOPE "}", "t", "acme"), ES_FILTER_KEEP);
    ck_assert_int_eq(
        run_tt("{" ENVELOPE ",\"tenantid\":\"tenant-test\"}", "t", NULL),
        ES_FILTER_DROP);
    ck_assert_int_eq(
        run_tt("{" ENVELOPE ",\"data\":{\"tenantId\":\"qa-1\"}}", "t", NULL),
        ES_FILTER_DROP);
    ck_assert_int_eq(run_tt("{" ENVELOPE "}", "t", NULL), ES_FILTER_KEEP);
}
END_TEST

#define PROFILE_ENV                                                            \
    "\"specversion\":\"1.0\",\"id\":\"p1\",\"source\":\"user-svc\","           \
    "\"type\":\"eventzr.user.profile.updated.v1\""

START_TEST(test_example_strip_pii)
{
    init_example("strip_pii.lua");
    ck_assert_int_eq(
        run("{" PROFILE_ENV ",\"data\":{\"userId\":\"u1\",\"email\":\"a@b.c\","
            "\"phone\":\"+1555\",\"firstName\":\"Ada\",\"lastName\":\"L\","
            "\"tier\":\"gold\",\"contacts\":[{\"email\":\"x@y.z\","
            "\"kind\":\"work\"}]}}"),
        ES_FILTER_REPLACE);
    ck_assert_str_eq(out.json[0],
                     "{" PROFILE_ENV ",\"data\":{\"userId\":\"u1\","
                     "\"tier\":\"gold\",\"contacts\":[{\"kind\":\"work\"}],"
                     "\"piiRemoved\":true}}");
    ck_assert_int_eq(run("{" PROFILE_ENV ",\"data\":{\"userId\":\"u1\"}}"),
                     ES_FILTER_KEEP);
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"email\":\"a@b.c\"}}"),
                     ES_FILTER_KEEP);
}
END_TEST

#define MINT_ENV                                                               \
    "\"specversion\":\"1.0\",\"type\":\"eventzr.blockchain.ticket.minted."     \
    "v1\",\"source\":\"blockchain-svc\",\"id\":\"m1\""

START_TEST(test_example_mask_wallets)
{
    init_example("mask_wallets.lua");
    ck_assert_int_eq(
        run("{" MINT_ENV ",\"data\":{\"tenantId\":\"t\","
            "\"contractAddress\":"
            "\"0x1234567890abcdef1234567890abcdef1234abcd\","
            "\"tokenId\":42,"
            "\"ownerAddress\":\"0xABCDEF7890abcdef1234567890abcdef12341234\","
            "\"transactionHash\":\"0xdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef"
            "deadbeefdeadbeefdeadbeef\",\"costUsd\":0.002}}"),
        ES_FILTER_REPLACE);
    ck_assert_str_eq(out.json[0],
                     "{" MINT_ENV ",\"data\":{\"tenantId\":\"t\","
                     "\"contractAddress\":\"0x1234...abcd\",\"tokenId\":42,"
                     "\"ownerAddress\":\"0xABCD...1234\","
                     "\"transactionHash\":\"0xdeadbeefdeadbeefdeadbeefdeadbee"
                     "fdeadbeefdeadbeefdeadbeefdeadbeef\",\"costUsd\":0.002}}");
    ck_assert_int_eq(run("{" MINT_ENV ",\"data\":{\"tokenId\":1}}"),
                     ES_FILTER_KEEP);
}
END_TEST

START_TEST(test_example_keep_types)
{
    init_example("keep_types.lua");
    ck_assert_int_eq(run("{" ENVELOPE "}"), ES_FILTER_KEEP);
    ck_assert_int_eq(run("{" MINT_ENV "}"), ES_FILTER_DROP);
}
END_TEST

START_TEST(test_example_route_marketplace)
{
    init_example("route_marketplace.lua");
    ck_assert_int_eq(run("{" ENVELOPE ",\"data\":{\"id\":\"o1\","
                         "\"buyerId\":\"b\",\"sellerId\":\"s\","
                         "\"amount\":5000}}"),
                     ES_FILTER_REPLACE);
    ck_assert_int_eq(out.n, 2);
    ck_assert_str_eq(out.route[0], "marketplace-orders");
    ck_assert_str_eq(out.route[1], "marketplace-audit");
    ck_assert_ptr_nonnull(strstr(out.json[0], "\"amount\":5000"));
    ck_assert_ptr_nonnull(strstr(out.json[1], "\"id\":\"e1:audit\""));
    ck_assert_ptr_null(strstr(out.json[1], "amount"));
    ck_assert_int_eq(
        run("{\"specversion\":\"1.0\",\"id\":\"d\",\"source\":\"m\","
            "\"type\":\"eventzr.marketplace.dispute.opened.v1\"}"),
        ES_FILTER_KEEP);
    ck_assert_str_eq(out.keep_route, "marketplace-disputes");
    ck_assert_int_eq(run("{" MINT_ENV "}"), ES_FILTER_KEEP);
    ck_assert_str_eq(out.keep_route, "");
}
END_TEST

START_TEST(test_example_bench_redact)
{
    init_example("bench_redact.lua");
    ck_assert_int_eq(run_tt("{" ENVELOPE "}", "t", "tenant-test"),
                     ES_FILTER_DROP);
    ck_assert_int_eq(run("{" ENVELOPE
                         ",\"data\":{\"email\":\"a@b.c\",\"walletAddress\":"
                         "\"0x1234567890abcdef1234567890abcdef1234abcd\"}}"),
                     ES_FILTER_REPLACE);
    ck_assert_str_eq(out.json[0], "{" ENVELOPE ",\"data\":{\"email\":"
                                  "\"[REDACTED]\",\"walletAddress\":"
                                  "\"0x1234...abcd\"}}");
}
END_TEST

/* ------------------------------------------------- the host's index */

START_TEST(test_host_index_is_read)
{
    /* The plugin takes members from the host's index, not from a second
     * read of the text: an index whose data.a names data.b's value makes
     * the script see it. */
    fake_host_offer_index(&host, 1);
    init_script("function filter(ev) ev.data.seen = ev.data.a; return ev end\n",
                "");
    const char *json = "{" ENVELOPE ",\"data\":{\"a\":\"one\",\"b\":\"two\"}}";
    fake_event_t e;
    ck_assert_int_eq(fake_event_init(&e, json, "t", "t1"), 0);
    ck_assert_ptr_nonnull(e.ev.index);
    es_json_member_t *m = (es_json_member_t *)e.ev.index->members;
    const es_json_member_t *data = &m[e.ev.index->root - 1 + 4];
    es_json_member_t *a = &m[data->child - 1], *b = a + 1;
    a->value_start = b->value_start;
    a->value_end = b->value_end;
    fake_out_reset(&out);
    ck_assert_int_eq(
        plugin->filter(inst, &e.ev, &out.out, errstr, sizeof errstr),
        ES_FILTER_REPLACE);
    ck_assert_ptr_nonnull(strstr(out.json[0], "\"seen\":\"two\""));

    /* An index that does not fit the text is not used: the plugin reads
     * the text itself, and the output is right. */
    a->value_end = (uint32_t)e.ev.json_len + 10;
    fake_out_reset(&out);
    ck_assert_int_eq(
        plugin->filter(inst, &e.ev, &out.out, errstr, sizeof errstr),
        ES_FILTER_REPLACE);
    ck_assert_str_eq(out.json[0],
                     "{" ENVELOPE ",\"data\":{\"a\":\"one\",\"b\":\"two\","
                     "\"seen\":\"one\"}}");
    fake_event_free(&e);
}
END_TEST

START_TEST(test_host_index_with_whitespace)
{
    /* The host indexes the record as it came, leading whitespace
     * included; the plugin's copy starts at the brace. */
    fake_host_offer_index(&host, 1);
    init_script("function filter(ev) ev.data.n = ev.data.n + 1;"
                " return ev end\n",
                "");
    check_roundtrip(" \n {" ENVELOPE
                    ",\"data\":{\"n\":1,\"s\":{\"t\":[{}]}}}\n",
                    "{" ENVELOPE ",\"data\":{\"n\":2,\"s\":{\"t\":[{}]}}}");
}
END_TEST

START_TEST(test_copies_listed)
{
    /* An output lists what it copied from the event: the untouched runs of
     * members, here and in an object the script moved; a host without
     * filter_add_copies gets the same output through out->add. */
    fake_host_offer_index(&host, 1);
    init_script("function filter(ev)\n"
                "  ev.data.n = ev.data.n + 1; ev.data.again = ev.data.b\n"
                "  return ev\n"
                "end\n",
                "");
    const char *json = "{" ENVELOPE ",\"data\":{\"a\":1,\"b\":{\"c\":[2]},"
                       "\"n\":1,\"z\":\"q\"},\"tenantid\":\"t1\"}";
    const char *expect = "{" ENVELOPE ",\"data\":{\"a\":1,\"b\":{\"c\":[2]},"
                         "\"n\":2,\"z\":\"q\",\"again\":{\"c\":[2]}},"
                         "\"tenantid\":\"t1\"}";
    ck_assert_int_eq(run(json), ES_FILTER_REPLACE);
    ck_assert_str_eq(out.json[0], expect);
    ck_assert_ptr_nonnull(out.copied[0]);
    /* data.b was read, so its members are written one run at a time, as
     * the copy under `again` is. */
    ck_assert_str_eq(out.copied[0], ENVELOPE " | \"a\":1 | \"c\":[2] | "
                                             "\"z\":\"q\" | \"c\":[2] | "
                                             "\"tenantid\":\"t1\"");
    ck_assert_uint_ge(fake_copies_seen(), 5);

    /* A table the script built copies nothing. */
    plugin->destroy(inst);
    init_script("function filter(ev)\n"
                "  return { specversion = '1.0', id = 'n', source = 's',"
                " type = 't' }\n"
                "end\n",
                "");
    ck_assert_int_eq(run(json), ES_FILTER_REPLACE);
    ck_assert_str_eq(out.copied[0], "");

    /* Without the host's index there is nothing to check copies against:
     * none are listed, and out->add takes the output. */
    fake_host_offer_index(&host, 0);
    plugin->destroy(inst);
    init_script(
        "function filter(ev) ev.data.n = ev.data.n + 1; return ev end\n", "");
    ck_assert_int_eq(run(json), ES_FILTER_REPLACE);
    ck_assert_ptr_null(out.copied[0]);
}
END_TEST

static Suite *lua_suite(void)
{
    Suite *s = suite_create("lua-filter");
    struct {
        const char *name;
        const TTest *tests[20];
        int indexed; /* run again with the host's index */
    } groups[] = {
        {"verdicts",
         {test_verdicts, test_routes_and_multi, test_invalid_output, NULL},
         1},
        {"fidelity",
         {test_integers, test_numbers_roundtrip, test_kinds_null_order,
          test_added_keys_every_way, test_similar_keys, test_strings,
          test_dup_keys_and_whitespace, test_string_boundaries,
          test_big_and_long_keys, test_untouched_verbatim, test_lazy_raw_access,
          test_lazy_unread_object, test_event_kept_across_calls,
          test_nested_index, test_untouched_runs,
          test_repeated_keys_many_members, test_members_found_by_hash,
          test_kind_of_event_object, NULL},
         1},
        {"helpers",
         {test_redact_remove, test_redact_shared_parents,
          test_redact_paths_made_per_call, test_redact_nested_unread,
          test_log_and_print, NULL},
         1},
        {"sandbox",
         {test_sandbox, test_sandbox_io_call_fails, test_bytecode_refused,
          NULL},
         0},
        {"budgets",
         {test_runaway_stopped, test_memory_bomb, test_on_error_policies, NULL},
         0},
        {"load", {test_load_errors, test_config_errors, test_reload, NULL}, 0},
        {"examples",
         {test_example_drop_test_tenants, test_example_strip_pii,
          test_example_mask_wallets, test_example_keep_types,
          test_example_route_marketplace, test_example_bench_redact, NULL},
         1},
        {"host-index",
         {test_host_index_is_read, test_host_index_with_whitespace,
          test_copies_listed, NULL},
         0},
    };
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        for (int indexed = 0; indexed <= groups[g].indexed; indexed++) {
            static char names[16][64];
            snprintf(names[g], sizeof names[g], "%s%s", groups[g].name,
                     indexed ? "-indexed" : "");
            TCase *tc = tcase_create(indexed ? names[g] : groups[g].name);
            tcase_add_checked_fixture(tc, indexed ? setup_indexed : setup,
                                      teardown);
            tcase_set_timeout(tc, 30);
            for (int i = 0; groups[g].tests[i]; i++)
                tcase_add_test(tc, groups[g].tests[i]);
            suite_add_tcase(s, tc);
        }
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lua_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
