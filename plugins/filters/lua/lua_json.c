/*
 * JSON <-> Lua conversion for the Lua filter.
 *
 * We parse the event's JSON text ourselves instead of walking the host's
 * cJSON tree: cJSON 1.7 keeps numbers only as double, so 2^53+1 or -2^63
 * would already be rounded. Integer literals that fit in int64 become Lua
 * integers, every other number becomes a Lua float (and is written back
 * with a fraction or exponent, so 1.0 stays 1.0).
 *
 * Ordinary objects (es.copy of an event object) remember their key order in
 * their metatable: { __jsontype = "object", "k1", "k2", ... }. Arrays share
 * one metatable { __jsontype = "array" }. The encoder writes the remembered
 * keys first, then keys the script added, sorted, so output order is stable.
 *
 * Objects are not decoded here: they reach the script as lazy objects
 * (lua_lazy.c), which decode a member through lf_json_push_lazy when it is
 * first used; lf_json_skip finds where values end without decoding them.
 */
#include "lua_filter.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

void lf_buf_grow(lua_State *L, lf_buf_t *b, size_t extra)
{
    size_t cap = b->cap ? b->cap : 1024;
    while (cap - b->len < extra)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        luaL_error(L, "out of memory encoding JSON");
    b->data = p;
    b->cap = cap;
}

static const char lf_kind_key = 'k';

static void enc_string(lua_State *L, int idx, lf_buf_t *b);

/* Registry key of the weak set of tables that may hold added keys. */
static const char lf_added_key = 'a';

void lf_mark_added(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &lf_added_key) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_newtable(L);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &lf_added_key);
    }
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

static int has_added(lua_State *L, int idx)
{
    int marked = 0;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &lf_added_key) == LUA_TTABLE) {
        lua_pushvalue(L, idx);
        marked = lua_rawget(L, -2) != LUA_TNIL;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return marked;
}

/* __newindex of decoded objects: t[k] = v for a key t does not hold. */
int lf_newindex(lua_State *L)
{
    lua_settop(L, 3);
    lua_rawset(L, 1);
    lf_mark_added(L, 1);
    return 0;
}

void lf_mark_kind(lua_State *L, int kind)
{
    lua_pushstring(L, kind == 'a' ? "array" : "object");
    lua_setfield(L, -2, LF_KIND_FIELD);
    lua_pushinteger(L, kind);
    lua_rawsetp(L, -2, &lf_kind_key);
}

int lf_table_kind(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return 0;
    int kind = 0;
    if (lua_rawgetp(L, -1, &lf_kind_key) == LUA_TNUMBER) {
        kind = (int)lua_tointeger(L, -1);
    } else if (lua_getfield(L, -2, LF_KIND_FIELD) == LUA_TSTRING) {
        const char *k = lua_tostring(L, -1);
        kind = strcmp(k, "array") == 0    ? 'a'
               : strcmp(k, "object") == 0 ? 'o'
                                          : 0;
        lua_pop(L, 1);
    } else {
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return kind;
}

/* ------------------------------------------------------------- decoding */

typedef struct dec_s {
    lua_State *L;
    const char *p;
    const char *end;
    const char *start;
    lf_buf_t *tmp; /* scratch for unescaped strings, owned by the caller */
    int lazy_src;  /* objects become lazy ones over the string here */
} dec_t;

static void dec_fail(dec_t *d, const char *what)
{
    luaL_error(d->L, "invalid JSON at byte %d: %s", (int)(d->p - d->start),
               what);
}

static void skip_ws(dec_t *d)
{
    while (d->p < d->end &&
           (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

static int hex4(dec_t *d, const char *p)
{
    int v = 0;
    if (d->end - p < 4)
        dec_fail(d, "short \\u escape");
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            dec_fail(d, "bad \\u escape");
    }
    return v;
}

static void put_utf8(dec_t *d, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    lf_buf_add(d->L, d->tmp, u, n);
}

/* Handles one escape starting after the backslash; returns the new p. */
static const char *unescape(dec_t *d, const char *p)
{
    static const char from[] = "\"\\/bfnrt";
    static const char to[] = "\"\\/\b\f\n\r\t";
    const char *hit = p < d->end && *p ? strchr(from, *p) : NULL;
    if (hit) {
        lf_buf_add(d->L, d->tmp, &to[hit - from], 1);
        return p + 1;
    }
    if (p >= d->end || *p != 'u')
        dec_fail(d, "bad escape");
    unsigned cp = (unsigned)hex4(d, p + 1);
    p += 5;
    if (cp >= 0xD800 && cp < 0xDC00 && d->end - p >= 6 && p[0] == '\\' &&
        p[1] == 'u') {
        unsigned lo = (unsigned)hex4(d, p + 2);
        if (lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
    }
    if (cp >= 0xD800 && cp < 0xE000)
        cp = 0xFFFD; /* a lone surrogate has no UTF-8 form */
    put_utf8(d, cp);
    return p;
}

static void dec_string(dec_t *d)
{
    const char *s = ++d->p, *p = lf_skip_plain(s, d->end);
    if (p < d->end && *p == '"') { /* common case: nothing to unescape */
        lua_pushlstring(d->L, s, (size_t)(p - s));
        d->p = p + 1;
        return;
    }
    if (p < d->end && (unsigned char)*p < 0x20)
        dec_fail(d, "control character in string");
    d->tmp->len = 0;
    lf_buf_add(d->L, d->tmp, s, (size_t)(p - s));
    while (p < d->end && *p != '"') {
        if (*p == '\\') {
            p = unescape(d, p + 1);
            continue;
        }
        if ((unsigned char)*p < 0x20)
            dec_fail(d, "control character in string");
        const char *q = lf_skip_plain(p, d->end);
        lf_buf_add(d->L, d->tmp, p, (size_t)(q - p));
        p = q;
    }
    if (p >= d->end)
        dec_fail(d, "unterminated string");
    lua_pushlstring(d->L, d->tmp->data ? d->tmp->data : "", d->tmp->len);
    d->p = p + 1;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static void dec_number(dec_t *d)
{
    const char *s = d->p, *p = s;
    int neg = 0, is_float = 0, exp = 0, digits = 0, frac = 0;
    if (p < d->end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= d->end || !is_digit(*p))
        dec_fail(d, "bad number");
    uint64_t u = 0;
    int overflow = 0;
    for (; p < d->end && is_digit(*p); p++, digits++) {
        unsigned dg = (unsigned)(*p - '0');
        if (u > (UINT64_MAX - dg) / 10)
            overflow = 1;
        else
            u = u * 10 + dg;
    }
    if (p < d->end && *p == '.') {
        is_float = 1;
        if (++p >= d->end || !is_digit(*p))
            dec_fail(d, "bad fraction");
        for (; p < d->end && is_digit(*p); p++, frac++)
            u = u * 10 + (unsigned)(*p - '0');
    }
    if (p < d->end && (*p == 'e' || *p == 'E')) {
        is_float = exp = 1;
        p++;
        if (p < d->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= d->end || !is_digit(*p))
            dec_fail(d, "bad exponent");
        while (p < d->end && is_digit(*p))
            p++;
    }
    d->p = p;
    if (!is_float && !overflow) {
        if (!neg && u <= (uint64_t)INT64_MAX) {
            lua_pushinteger(d->L, (lua_Integer)u);
            return;
        }
        if (neg && u <= (uint64_t)INT64_MAX + 1) {
            lua_pushinteger(d->L, (lua_Integer)(0 - u));
            return;
        }
    }
    /* Up to 15 digits and no exponent: u / 10^frac with both exact doubles
     * is the correctly rounded value, which strtod gives too. */
    static const double pow10[] = {1,    1e1,  1e2,  1e3, 1e4,  1e5,
                                   1e6,  1e7,  1e8,  1e9, 1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15};
    if (is_float && !exp && !overflow && digits + frac <= 15) {
        double v = (double)u / pow10[frac];
        lua_pushnumber(d->L, neg ? -v : v);
        return;
    }
    /* Floats, and integers beyond int64, go through strtod on a copy:
     * the event text is not NUL-terminated. */
    char small[64], *txt = small;
    size_t n = (size_t)(p - s);
    if (n >= sizeof small) {
        d->tmp->len = 0;
        lf_buf_reserve(d->L, d->tmp, n + 1);
        txt = d->tmp->data;
    }
    memcpy(txt, s, n);
    txt[n] = '\0';
    lua_pushnumber(d->L, strtod(txt, NULL));
}

static int dec_literal(dec_t *d, const char *word, size_t n)
{
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
        return 0;
    d->p += n;
    return 1;
}

static void dec_value(dec_t *d, int depth);

static void dec_array(dec_t *d, int depth)
{
    lua_State *L = d->L;
    d->p++;
    if (!lua_checkstack(L, 8))
        dec_fail(d, "nesting too deep");
    lua_createtable(L, 4, 0);
    lua_Integer i = 0;
    skip_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        goto done;
    }
    for (;;) {
        dec_value(d, depth + 1);
        lua_rawseti(L, -2, ++i);
        skip_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if (d->p < d->end && *d->p == ']') {
            d->p++;
            break;
        }
        dec_fail(d, "expected ',' or ']'");
    }
done:
    lua_rawgeti(L, LUA_REGISTRYINDEX, lf_script_of(L)->array_mt_ref);
    lua_setmetatable(L, -2);
}

static void dec_value(dec_t *d, int depth)
{
    if (depth > LF_MAX_DEPTH)
        dec_fail(d, "nesting too deep");
    skip_ws(d);
    if (d->p >= d->end)
        dec_fail(d, "unexpected end");
    switch (*d->p) {
    case '{': {
        const char *e = lf_json_skip(d->p, d->end);
        if (!e)
            dec_fail(d, "bad object");
        lf_lazy_push(d->L, d->lazy_src, (size_t)(d->p - d->start),
                     (size_t)(e - d->start));
        d->p = e;
        return;
    }
    case '[':
        dec_array(d, depth);
        return;
    case '"':
        dec_string(d);
        return;
    case 't':
        if (dec_literal(d, "true", 4)) {
            lua_pushboolean(d->L, 1);
            return;
        }
        break;
    case 'f':
        if (dec_literal(d, "false", 5)) {
            lua_pushboolean(d->L, 0);
            return;
        }
        break;
    case 'n':
        if (dec_literal(d, "null", 4)) {
            lua_pushlightuserdata(d->L, NULL);
            return;
        }
        break;
    default:
        dec_number(d);
        return;
    }
    dec_fail(d, "unexpected literal");
}

void lf_json_push_lazy(lua_State *L, int src_idx, size_t start, size_t end)
{
    lf_script_t *s = lf_script_of(L);
    const char *src = lua_tostring(L, src_idx);
    luaL_checkstack(L, 8, "JSON");
    dec_t d = {L,   src + start,     src + end,
               src, &s->dec_scratch, lua_absindex(L, src_idx)};
    dec_value(&d, 0);
}

/* ------------------------------------------------------------- skipping */

static const char *skip_ws_at(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* After the opening quote; returns past the closing one, or NULL. */
static const char *skip_string(const char *p, const char *end)
{
    for (;;) {
        p = lf_skip_plain(p, end);
        if (p >= end || (unsigned char)*p < 0x20)
            return NULL;
        if (*p == '"')
            return p + 1;
        if (++p >= end) /* a backslash: skip what it escapes */
            return NULL;
        p++;
    }
}

/*
 * Finds where a value ends without decoding it: a lazy object records its
 * members' spans this way. The host has parsed and validated the event
 * already, so this only follows strings and bracket depth (a few
 * instructions per byte outside strings, 8 bytes a step inside them); the
 * members a script reads are decoded, and checked, by the decoder.
 */
const char *lf_json_skip(const char *p, const char *end)
{
    p = skip_ws_at(p, end);
    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p + 1, end);
    if (*p != '{' && *p != '[') { /* a number or literal */
        const char *s = p;
        while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' &&
               *p != '\t' && *p != '\n' && *p != '\r')
            p++;
        return p > s ? p : NULL;
    }
    /* 1: a string starts, 2: a container opens, 3: one closes. */
    static const unsigned char kind[256] = {
        ['"'] = 1, ['{'] = 2, ['['] = 2, ['}'] = 3, [']'] = 3};
    int open = 0;
    while (p < end) {
        switch (kind[(unsigned char)*p++]) {
        case 0:
            continue;
        case 1:
            if (!(p = skip_string(p, end)))
                return NULL;
            continue;
        case 2:
            if (++open > LF_MAX_DEPTH)
                return NULL;
            continue;
        default:
            if (--open == 0)
                return p;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------- encoding */

/* 1 for the bytes a JSON string must escape: controls, '"' and '\\'. */
static const unsigned char needs_escape[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, ['\\'] = 1};

static void enc_string(lua_State *L, int idx, lf_buf_t *b)
{
    static const char hexd[] = "0123456789abcdef";
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    lf_buf_reserve(L, b, n + 2);
    b->data[b->len++] = '"';
    size_t run = 0;
    for (size_t i = (size_t)(lf_skip_plain(s, s + n) - s); i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!needs_escape[c])
            continue;
        lf_buf_add(L, b, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0};
        size_t en = 2;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hexd[c >> 4];
            esc[5] = hexd[c & 15];
            en = 6;
        }
        lf_buf_add(L, b, esc, en);
    }
    lf_buf_add(L, b, s + run, n - run);
    lf_buf_add(L, b, "\"", 1);
}

static int fmt_int(char *out, lua_Integer v)
{
    char rev[24];
    int n = 0, len = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        rev[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        out[len++] = '-';
    while (n)
        out[len++] = rev[--n];
    out[len] = '\0';
    return len;
}

/*
 * Most floats in events are prices and the like: a few decimals. When v is
 * the double nearest m / 10^k for an integer m and k <= 6, that decimal is
 * the text (snprintf + strtod cost ~3000 instructions). The test is exact:
 * m and 10^k are exact doubles, so m / 10^k rounds as strtod would. Only
 * the range where "%.15g" writes plain digits is taken, so the text is
 * the one the general path gives. Returns the length, or 0.
 */
static int fmt_short_float(char *out, double v)
{
    static const double pow10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6};
    double a = v < 0 ? -v : v;
    if (!(a >= 1e-4 && a < 1e9))
        return 0;
    for (int k = 0; k <= 6; k++) {
        double m = a * pow10[k];
        if (m != (double)(int64_t)m)
            continue;
        if (m / pow10[k] != a)
            return 0;
        uint64_t u = (uint64_t)m, ip = u / (uint64_t)pow10[k];
        uint64_t fp = u % (uint64_t)pow10[k];
        int len = v < 0 ? (out[0] = '-', 1) : 0;
        len += fmt_int(out + len, (lua_Integer)ip);
        out[len++] = '.';
        if (k == 0) {
            out[len++] = '0';
        } else {
            for (int d = k - 1; d >= 0; d--, fp /= 10)
                out[len + d] = (char)('0' + fp % 10);
            len += k;
            while (out[len - 1] == '0')
                len--;
        }
        out[len] = '\0';
        return len;
    }
    return 0;
}

static void enc_number(lua_State *L, int idx, lf_buf_t *b)
{
    char tmp[40];
    int n;
    if (lua_isinteger(L, idx)) {
        n = fmt_int(tmp, lua_tointeger(L, idx));
    } else {
        double v = lua_tonumber(L, idx);
        if (!isfinite(v))
            luaL_error(L, "cannot encode %f as JSON", v);
        if ((n = fmt_short_float(tmp, v)) > 0) {
            lf_buf_add(L, b, tmp, (size_t)n);
            return;
        }
        /* Shortest text that reads back as the same double. */
        for (int prec = 15; prec <= 17; prec++) {
            n = snprintf(tmp, sizeof tmp, "%.*g", prec, v);
            if (strtod(tmp, NULL) == v)
                break;
        }
        if (!strpbrk(tmp, ".eE")) { /* keep it a float: 1.0, not 1 */
            memcpy(tmp + n, ".0", 3);
            n += 2;
        }
    }
    lf_buf_add(L, b, tmp, (size_t)n);
}

static void enc_array(lua_State *L, int idx, lf_buf_t *b, int depth)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    lf_buf_add(L, b, "[", 1);
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1)
            lf_buf_add(L, b, ",", 1);
        lua_rawgeti(L, idx, i);
        lf_enc_value(L, lua_gettop(L), b, depth + 1);
        lua_pop(L, 1);
    }
    lf_buf_add(L, b, "]", 1);
}

static void enc_member(lua_State *L, int key, int val, lf_buf_t *b, int *first,
                       int depth)
{
    if (!*first)
        lf_buf_add(L, b, ",", 1);
    *first = 0;
    enc_string(L, key, b);
    lf_buf_add(L, b, ":", 1);
    lf_enc_value(L, val, b, depth + 1);
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Writes the keys of the table at idx that are not in the set at `seen`
 * (a table, or 0 for none), sorted. Non-string keys are an error.
 */
void lf_enc_extra_keys(lua_State *L, int idx, int seen, lf_buf_t *b, int *first,
                       int depth)
{
    lua_newtable(L); /* the extra keys as a sequence, to sort */
    int list = lua_gettop(L);
    lua_Integer n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "object keys must be strings (found a %s key)",
                       luaL_typename(L, -1));
        if (seen) {
            lua_pushvalue(L, -1);
            int known = lua_rawget(L, seen) != LUA_TNIL;
            lua_pop(L, 1);
            if (known)
                continue;
        }
        lua_pushvalue(L, -1);
        lua_rawseti(L, list, ++n);
    }
    if (n == 0)
        goto done;
    const char **keys = lua_newuserdatauv(L, (size_t)n * sizeof *keys, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, list, i);
        keys[i - 1] = lua_tostring(L, -1); /* anchored by `list` */
        lua_pop(L, 1);
    }
    qsort(keys, (size_t)n, sizeof *keys, cmp_keys);
    for (lua_Integer i = 0; i < n; i++) {
        lua_pushstring(L, keys[i]);
        lua_pushvalue(L, -1);
        lua_rawget(L, idx);
        enc_member(L, lua_gettop(L) - 1, lua_gettop(L), b, first, depth);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
done:
    lua_pop(L, 1);
}

/* Object with a key-order metatable: known keys in order, then the rest. */
static void enc_object(lua_State *L, int idx, lf_buf_t *b, int depth)
{
    lf_lazy_t *z = lf_lazy_of(L, idx);
    if (z) {
        lf_lazy_encode(L, idx, z, b, depth);
        return;
    }
    int first = 1;
    lf_buf_add(L, b, "{", 1);
    lua_getmetatable(L, idx);
    int mt = lua_gettop(L);
    lua_Integer nord = (lua_Integer)lua_rawlen(L, mt), present = 0;
    for (lua_Integer i = 1; i <= nord; i++) {
        lua_rawgeti(L, mt, i);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, idx) != LUA_TNIL) {
            present++;
            enc_member(L, lua_gettop(L) - 1, lua_gettop(L), b, &first, depth);
        }
        lua_pop(L, 2);
    }
    /* Keys outside the order list: only a table that got keys added can
     * have them, and counting its keys costs a lua_next per key. */
    lua_pushliteral(L, "__newindex");
    int tracked = lua_rawget(L, mt) == LUA_TFUNCTION &&
                  lua_tocfunction(L, -1) == lf_newindex;
    lua_pop(L, 1);
    lua_Integer total = present;
    if (!tracked || has_added(L, idx)) {
        total = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            total++;
        }
    }
    if (total != present) { /* the script added keys: build the known set */
        lua_createtable(L, 0, (int)nord);
        for (lua_Integer i = 1; i <= nord; i++) {
            lua_rawgeti(L, mt, i);
            lua_pushboolean(L, 1);
            lua_rawset(L, -3);
        }
        lf_enc_extra_keys(L, idx, lua_gettop(L), b, &first, depth);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lf_buf_add(L, b, "}", 1);
}

/* A table without a kind marker: a non-empty sequence is an array,
 * anything else an object with sorted keys. */
static void enc_plain(lua_State *L, int idx, lf_buf_t *b, int depth)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
    if (n > 0) {
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            count++;
        }
        if (count == n) {
            enc_array(L, idx, b, depth);
            return;
        }
        luaL_error(L, "cannot encode a table with both array and object "
                      "keys");
    }
    int first = 1;
    lf_buf_add(L, b, "{", 1);
    lf_enc_extra_keys(L, idx, 0, b, &first, depth);
    lf_buf_add(L, b, "}", 1);
}

void lf_enc_value(lua_State *L, int idx, lf_buf_t *b, int depth)
{
    if (depth > LF_MAX_DEPTH)
        luaL_error(L, "cannot encode: nesting too deep (a cycle?)");
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        enc_string(L, idx, b);
        return;
    case LUA_TNUMBER:
        enc_number(L, idx, b);
        return;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            lf_buf_add(L, b, "true", 4);
        else
            lf_buf_add(L, b, "false", 5);
        return;
    case LUA_TNIL:
        lf_buf_add(L, b, "null", 4);
        return;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            lf_buf_add(L, b, "null", 4);
            return;
        }
        break;
    case LUA_TTABLE: { /* only tables use stack slots here */
        luaL_checkstack(L, 8, "JSON nesting");
        lf_lazy_t *z = lf_lazy_recent(L, idx); /* most of an output's */
        if (z) {
            lf_lazy_encode(L, idx, z, b, depth);
            return;
        }
        switch (lf_table_kind(L, idx)) {
        case 'a':
            enc_array(L, idx, b, depth);
            return;
        case 'o':
            enc_object(L, idx, b, depth);
            return;
        default:
            enc_plain(L, idx, b, depth);
            return;
        }
    }
    default:
        break;
    }
    luaL_error(L, "cannot encode a %s as JSON", luaL_typename(L, idx));
}

void lf_json_encode(lua_State *L, int idx, lf_buf_t *b)
{
    lf_enc_value(L, lua_absindex(L, idx), b, 0);
}
