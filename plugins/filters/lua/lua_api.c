/*
 * The sandbox a filter script runs in, and the `es` helper table.
 *
 * A state gets base, string, table, math and utf8, plus os.clock. Nothing
 * that reaches the outside world is opened (io, os, package, debug,
 * coroutine), and the base functions that load code or files (load,
 * loadfile, dofile), collectgarbage and warn are removed; string.dump goes
 * too. setmetatable refuses __gc, because a finalizer would run outside the
 * instruction budget of any call.
 */
#include "lua_filter.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#define LF_REDACTED "[REDACTED]"

/*
 * Small blocks come from per-state free lists carved out of 64 KB chunks:
 * a filter allocates and frees thousands of small strings and tables per
 * event, and going to malloc for each (with its bin consolidation for
 * ~1 KB table parts) cost more than the script itself. The chunks go back
 * to the system when the state is closed; the memory cap counts what the
 * script holds, so free blocks kept in the lists are bounded by it.
 */
#define POOL_CHUNK (64 * 1024)

static int size_class(size_t n)
{
    if (n <= 256)
        return (int)((n + 15) / 16) - 1; /* 0..15: 16-byte steps */
    int c = 16;
    size_t sz = 512;
    while (sz < n) {
        sz <<= 1;
        c++;
    }
    return c; /* 16: 512, 17: 1024, 18: 2048, 19: 4096 */
}

static size_t class_size(int c)
{
    return c < 16 ? (size_t)(c + 1) * 16 : (size_t)512 << (c - 16);
}

static void *pool_get(lf_pool_t *p, int c)
{
    void *b = p->free[c];
    if (b) {
        p->free[c] = *(void **)b;
        return b;
    }
    size_t sz = class_size(c);
    if (p->left < sz) {
        char *chunk = malloc(POOL_CHUNK);
        if (!chunk)
            return NULL;
        *(char **)chunk = p->chunks; /* chunks are linked by their head */
        p->chunks = chunk;
        p->next = chunk + 16;
        p->left = POOL_CHUNK - 16;
    }
    b = p->next;
    p->next += sz;
    p->left -= sz;
    return b;
}

static void pool_put(lf_pool_t *p, int c, void *b)
{
    *(void **)b = p->free[c];
    p->free[c] = b;
}

void lf_pool_free(lf_pool_t *p)
{
    while (p->chunks) {
        char *next = *(char **)p->chunks;
        free(p->chunks);
        p->chunks = next;
    }
}

static void *block_alloc(lf_pool_t *p, size_t n)
{
    return n <= LF_POOL_MAX ? pool_get(p, size_class(n)) : malloc(n);
}

static void block_free(lf_pool_t *p, void *b, size_t n)
{
    if (n <= LF_POOL_MAX)
        pool_put(p, size_class(n), b);
    else
        free(b);
}

static void *block_realloc(lf_pool_t *p, void *b, size_t old, size_t n)
{
    if (old > LF_POOL_MAX && n > LF_POOL_MAX)
        return realloc(b, n);
    if (old <= LF_POOL_MAX && n <= LF_POOL_MAX &&
        size_class(old) == size_class(n))
        return b;
    void *nb = block_alloc(p, n);
    if (!nb)
        return NULL;
    memcpy(nb, b, old < n ? old : n);
    block_free(p, b, old);
    return nb;
}

/* Allocator with a cap: growing past mem_limit fails (Lua then raises a
 * memory error after an emergency collection); shrinking never fails. */
static void *lf_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    lf_script_t *s = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        if (ptr)
            block_free(&s->pool, ptr, old);
        s->mem_used -= old;
        return NULL;
    }
    if (nsize > old && s->mem_used - old + nsize > s->mem_limit) {
        s->mem_refused = 1;
        return NULL;
    }
    void *p = ptr ? block_realloc(&s->pool, ptr, old, nsize)
                  : block_alloc(&s->pool, nsize);
    if (!p)
        return NULL;
    s->mem_used = s->mem_used - old + nsize;
    return p;
}

/* ------------------------------------------------------------- logging */

static void push_joined(lua_State *L, int from, const char *sep)
{
    luaL_Buffer b;
    int top = lua_gettop(L);
    luaL_buffinit(L, &b);
    for (int i = from; i <= top; i++) {
        if (i > from)
            luaL_addstring(&b, sep);
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
}

static int api_print(lua_State *L)
{
    lf_script_t *s = lf_script_of(L);
    push_joined(L, 1, "\t");
    s->host->log(s->host, ES_LOG_INFO, "script: %s", lua_tostring(L, -1));
    return 0;
}

static int api_log(lua_State *L)
{
    static const char *const names[] = {"error", "warn", "info", "debug", NULL};
    static const es_log_level_t levels[] = {ES_LOG_ERROR, ES_LOG_WARN,
                                            ES_LOG_INFO, ES_LOG_DEBUG};
    lf_script_t *s = lf_script_of(L);
    int lvl = luaL_checkoption(L, 1, NULL, names);
    push_joined(L, 2, " ");
    s->host->log(s->host, levels[lvl], "script: %s", lua_tostring(L, -1));
    return 0;
}

/* ------------------------------------------------------ kinds and copy */

static int set_kind(lua_State *L, const char *mt_name)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if (lf_lazy_of(L, 1)) { /* its members stay without the lazy metatable */
        lf_lazy_materialise(L, 1);
        lf_lazy_forget(L, 1);
        if (!strcmp(mt_name, LF_OBJECT_MT)) { /* and so does their order */
            lf_lazy_push_order_mt(L, 1);
            lua_setmetatable(L, 1);
            lf_mark_added(L, 1); /* keys set before this call count */
            return 1;
        }
    }
    luaL_getmetatable(L, mt_name);
    lua_setmetatable(L, 1);
    return 1;
}

static int api_array(lua_State *L)
{
    return set_kind(L, LF_ARRAY_MT);
}

static int api_object(lua_State *L)
{
    return set_kind(L, LF_OBJECT_MT);
}

static void copy_value(lua_State *L, int idx, int depth)
{
    if (lua_type(L, idx) != LUA_TTABLE) {
        lua_pushvalue(L, idx);
        return;
    }
    if (depth > LF_MAX_DEPTH)
        luaL_error(L, "es.copy: nesting too deep (a cycle?)");
    luaL_checkstack(L, 6, "es.copy");
    int lazy = lf_lazy_of(L, idx) != NULL;
    if (lazy)
        lf_lazy_materialise(L, idx);
    lua_createtable(L, (int)lua_rawlen(L, idx), 0);
    int dst = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pushvalue(L, -2);
        copy_value(L, lua_gettop(L) - 1, depth + 1);
        lua_rawset(L, dst);
        lua_pop(L, 1);
    }
    if (lazy) { /* an ordinary object with the same key order */
        lf_lazy_push_order_mt(L, idx);
        lua_setmetatable(L, dst);
        lf_mark_added(L, dst);
    } else if (lua_getmetatable(L, idx)) { /* share kind and key order */
        lua_setmetatable(L, dst);
        lf_mark_added(L, dst); /* it has every key the source had */
    }
}

static int api_copy(lua_State *L)
{
    luaL_checkany(L, 1);
    copy_value(L, 1, 0);
    return 1;
}

static int api_encode(lua_State *L)
{
    lf_script_t *s = lf_script_of(L);
    luaL_checkany(L, 1);
    s->enc_scratch.len = 0;
    lf_json_encode(L, 1, &s->enc_scratch);
    lua_pushlstring(L, s->enc_scratch.data, s->enc_scratch.len);
    return 1;
}

/* ---------------------------------------------------- dotted-path edits */

enum { OP_REMOVE, OP_REDACT };

typedef struct path_op_s {
    int op;
    int repl; /* stack index of the replacement (OP_REDACT) */
    lua_Integer count;
} path_op_t;

static int is_array(lua_State *L, int t)
{
    return lf_table_kind(L, t) == 'a';
}

/* t[key] and t[key] = value (key, value on top, popped) as raw access,
 * except that a lazy object decodes (or records) the member. z is t's lazy
 * state (NULL: not lazy); m, for set_member, the undecoded lazy member
 * lf_lazy_peek found for key, if any. */
static int get_member(lua_State *L, int t, lf_lazy_t *z)
{
    return z ? lua_gettable(L, t) : lua_rawget(L, t);
}

static void set_member(lua_State *L, int t, lf_lazy_t *z, lf_member_t *m)
{
    if (m) { /* a lazy member not decoded yet: record it here */
        lf_lazy_touch(m);
        lua_rawset(L, t);
    } else if (z)
        lua_settable(L, t);
    else
        lua_rawset(L, t);
}

/*
 * Lua interns short strings, and frees one when nothing refers to it: a
 * path segment such as "shipping" lived only while the event's tables did,
 * so each call made it again (an allocation, and the collector's work to
 * free it). The anchor table keeps the last such strings alive, one per
 * slot by the address of their text; a slot's old string is let go when
 * another takes the slot, so the table stays small whatever the script
 * passes. A slot whose address matches holds this very string: an
 * anchored string is alive, and no other string shares its address.
 */
void lf_anchor_top(lua_State *L)
{
    size_t n;
    const char *p = lua_tolstring(L, -1, &n);
    if (!p || n > LF_SHORT_STRING_MAX)
        return; /* long strings are not interned: nothing to keep */
    lf_script_t *s = lf_script_of(L);
    uint32_t slot =
        (uint32_t)(((uintptr_t)p >> 3) * 0x9E3779B97F4A7C15u >> 56) %
        LF_ANCHOR_SLOTS;
    if (s->anchor_ptr[slot] == p)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->anchor_ref);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, (lua_Integer)slot + 1);
    lua_pop(L, 1);
    s->anchor_ptr[slot] = p;
}

/* Pushes a table of `slots` array slots. */
static void push_slots(lua_State *L, int slots)
{
    lua_createtable(L, slots, 0);
    for (int i = 1; i <= slots; i++) { /* all in the array part */
        lua_pushboolean(L, 0);
        lua_rawseti(L, -2, i);
    }
}

static void anchor_setup(lua_State *L)
{
    push_slots(L, LF_ANCHOR_SLOTS);
    lf_script_of(L)->anchor_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/*
 * Pushes the string of a path segment. A script passes the same paths on
 * every call, often as constants, so a segment is found again by the
 * address of its bytes in the path and its length, and checked against
 * the string kept for it: an equal string is the right one whatever made
 * the address come back. Cheaper than Lua's hashing of the bytes, and the
 * kept strings are not made again for each event. They are held by the
 * table that is the first upvalue of the es functions (an upvalue, not a
 * registry ref, to save a lookup per segment): only those call this.
 */
static void push_segment(lua_State *L, const char *seg, size_t n)
{
    lf_script_t *s = lf_script_of(L);
    uint32_t slot =
        (uint32_t)((((uintptr_t)seg + n) * 0x9E3779B97F4A7C15u) >> 58) %
        LF_SEG_SLOTS;
    if (s->segs[slot].seg == seg && s->segs[slot].n == n &&
        memcmp(s->segs[slot].str, seg, n) == 0) {
        lua_rawgeti(L, lua_upvalueindex(1), (lua_Integer)slot + 1);
        return;
    }
    lua_pushlstring(L, seg, n);
    lua_pushvalue(L, -1);
    lua_rawseti(L, lua_upvalueindex(1), (lua_Integer)slot + 1);
    s->segs[slot].seg = seg;
    s->segs[slot].n = n;
    s->segs[slot].str = lua_tostring(L, -1);
}

/* Pushes the key for segment seg of table t: an integer when the segment
 * is all digits and t has that index, else the string. */
static void push_key(lua_State *L, int t, const char *seg, size_t n)
{
    lua_Integer v = 0;
    size_t i = 0;
    for (; i < n && i < 18 && seg[i] >= '0' && seg[i] <= '9'; i++)
        v = v * 10 + (seg[i] - '0');
    if (n > 0 && i == n) {
        if (lua_rawgeti(L, t, v) != LUA_TNIL) {
            lua_pop(L, 1);
            lua_pushinteger(L, v);
            return;
        }
        lua_pop(L, 1);
    }
    push_segment(L, seg, n);
}

/* Applies the op to t[key], key on top of the stack (popped). */
static void apply_leaf(lua_State *L, int t, lf_lazy_t *z, path_op_t *po)
{
    int key = lua_gettop(L);
    int present, is_null;
    lf_member_t *m;
    int peek = lf_lazy_peek(L, z, key, &m);
    if (peek != LF_PEEK_DECODED) { /* a lazy member: no need to decode it */
        present = peek != LF_PEEK_ABSENT;
        is_null = peek == LF_PEEK_NULL;
    } else {
        lua_pushvalue(L, key);
        get_member(L, t, z);
        present = !lua_isnil(L, -1);
        is_null = lua_islightuserdata(L, -1) && !lua_touserdata(L, -1);
        lua_pop(L, 1);
    }
    if (!present || (po->op == OP_REDACT && is_null)) {
        lua_settop(L, key - 1);
        return;
    }
    po->count++;
    if (po->op == OP_REMOVE && lua_isinteger(L, key) && is_array(L, t)) {
        lua_Integer i = lua_tointeger(L, key),
                    n = (lua_Integer)lua_rawlen(L, t);
        for (; i < n; i++) {
            lua_rawgeti(L, t, i + 1);
            lua_rawseti(L, t, i);
        }
        lua_pushnil(L);
        lua_rawseti(L, t, n);
    } else if (po->op == OP_REMOVE) {
        lua_pushvalue(L, key);
        lua_pushnil(L);
        set_member(L, t, z, m);
    } else {
        lua_pushvalue(L, key);
        if (lua_isfunction(L, po->repl)) {
            lua_pushvalue(L, po->repl);
            lua_pushvalue(L, key);
            get_member(L, t, z);
            lua_call(L, 1, 1);
        } else {
            lua_pushvalue(L, po->repl);
        }
        set_member(L, t, z, m);
    }
    lua_settop(L, key - 1);
}

static void walk(lua_State *L, int t, const char *path, size_t len,
                 path_op_t *po, int depth);

/* Continues the walk into t[key] (key on top, popped). */
static void descend(lua_State *L, int t, lf_lazy_t *z, const char *rest,
                    size_t len, path_op_t *po, int depth)
{
    get_member(L, t, z);
    if (lua_type(L, -1) == LUA_TTABLE)
        walk(L, lua_gettop(L), rest, len, po, depth + 1);
    lua_pop(L, 1);
}

static void walk_all(lua_State *L, int t, lf_lazy_t *z, const char *rest,
                     size_t len, int leaf, path_op_t *po, int depth)
{
    /* Collect the keys first: the op may remove entries. */
    lf_lazy_materialise(L, t);
    lua_newtable(L);
    int keys = lua_gettop(L);
    lua_Integer n = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++n);
    }
    /* Backwards, so removing array elements does not shift the rest. */
    for (lua_Integer i = n; i >= 1; i--) {
        lua_rawgeti(L, keys, i);
        if (leaf)
            apply_leaf(L, t, z, po);
        else
            descend(L, t, z, rest, len, po, depth);
    }
    lua_pop(L, 1);
}

static void walk(lua_State *L, int t, const char *path, size_t len,
                 path_op_t *po, int depth)
{
    if (depth > LF_MAX_DEPTH)
        return;
    luaL_checkstack(L, 8, "path");
    const char *dot = memchr(path, '.', len);
    size_t n = dot ? (size_t)(dot - path) : len;
    const char *rest = dot ? dot + 1 : path + len;
    size_t rlen = dot ? len - n - 1 : 0;
    lf_lazy_t *z = lf_lazy_of(L, t);
    if (n == 1 && path[0] == '*') {
        walk_all(L, t, z, rest, rlen, !dot, po, depth);
        return;
    }
    push_key(L, t, path, n);
    if (!dot)
        apply_leaf(L, t, z, po);
    else
        descend(L, t, z, rest, rlen, po, depth);
}

/*
 * A list of paths often shares its parents ("data.email", "data.phone"):
 * the table the last path's parent segments led to is kept (at stack slot
 * `slot`) with those segments, and a path under the same parent starts
 * there. A path's op only changes a member of its parent table, which
 * becomes the memo, so the memo stays where its path leads; a path with no
 * parent, or with a wildcard, may cut it off and clears it. A replacement
 * function could change anything, so with one every path starts at the
 * root.
 */
typedef struct parent_memo_s {
    int slot;  /* stack slot of the parent table */
    int valid; /* the slot holds the table prefix[0..len) leads to */
    int depth; /* its depth under the root */
    lf_lazy_t *z, *root_z; /* the lazy states of it and of the root */
    /* Non-NULL: the parent is this undecoded object member of the slot's
     * lazy table, edited in place (lf_lazy_nested_edit). */
    lf_member_t *nested;
    size_t len;
    char prefix[256];
} parent_memo_t;

/* Resolves the parent segments p[0..plen) into the memo's slot (its lazy
 * state into mm->z): from the memo's table when they extend its path, else
 * from the root. Returns -1 when a segment is not a table (nothing to
 * apply). */
static int resolve_parent(lua_State *L, parent_memo_t *mm, const char *p,
                          size_t plen)
{
    size_t at = 0;
    int t = 1, depth = 0;
    lf_lazy_t *z = mm->root_z;
    if (mm->valid && plen >= mm->len && memcmp(p, mm->prefix, mm->len) == 0 &&
        (plen == mm->len || p[mm->len] == '.') &&
        (!mm->nested ||
         (plen == mm->len && !lf_lazy_nested_touched(mm->nested)))) {
        if (plen == mm->len)
            return 0;
        t = mm->slot;
        at = mm->len + 1;
        depth = mm->depth;
        z = mm->z;
    }
    mm->valid = 0;
    mm->nested = NULL;
    for (;;) {
        const char *seg = p + at, *e = memchr(seg, '.', plen - at);
        size_t n = e ? (size_t)(e - seg) : plen - at;
        /* A segment of digits may name an integer key (see push_key). */
        lf_member_t *nested = e || strspn(seg, "0123456789") >= n
                                  ? NULL
                                  : lf_lazy_nested(z, seg, n);
        if (nested) { /* edited in place, not decoded: see lua_lazy.c */
            if (++depth > LF_MAX_DEPTH)
                return -1;
            if (t != mm->slot) {
                lua_pushvalue(L, t);
                lua_replace(L, mm->slot);
            }
            mm->nested = nested;
            break;
        }
        push_key(L, t, seg, n);
        get_member(L, t, z);
        if (lua_type(L, -1) != LUA_TTABLE || ++depth > LF_MAX_DEPTH)
            return -1;
        lua_replace(L, mm->slot); /* intermediate tables are not kept */
        t = mm->slot;
        z = lf_lazy_of(L, t);
        if (!e)
            break;
        at += n + 1;
    }
    mm->z = z; /* the slot's state, memo or not */
    if (plen < sizeof mm->prefix) {
        memcpy(mm->prefix, p, plen);
        mm->len = plen;
        mm->depth = depth;
        mm->valid = 1;
    }
    return 0;
}

/* Applies the op to one path without wildcards, through the memo. */
static void walk_memo(lua_State *L, parent_memo_t *mm, const char *p,
                      size_t len, path_op_t *po)
{
    const char *leaf = p + len;
    while (leaf > p && leaf[-1] != '.')
        leaf--;
    luaL_checkstack(L, 8, "path");
    int t = 1;
    lf_lazy_t *z = mm->root_z;
    if (leaf > p) {
        if (resolve_parent(L, mm, p, (size_t)(leaf - p - 1)) != 0)
            return;
        t = mm->slot;
        z = mm->z;
    } else {
        mm->valid = 0; /* the op changes the root: the memo may be cut off */
        mm->nested = NULL;
    }
    if (mm->nested) {
        po->count += lf_lazy_nested_edit(
            L, t, z, mm->nested, leaf, len - (size_t)(leaf - p),
            po->op == OP_REMOVE ? 0 : po->repl, po->op == OP_REDACT);
        return;
    }
    push_key(L, t, leaf, len - (size_t)(leaf - p));
    apply_leaf(L, t, z, po);
}

static void run_paths(lua_State *L, int paths_idx, path_op_t *po)
{
    if (lua_type(L, paths_idx) == LUA_TSTRING) {
        size_t len;
        const char *p = lua_tolstring(L, paths_idx, &len);
        walk(L, 1, p, len, po, 0);
        return;
    }
    luaL_checktype(L, paths_idx, LUA_TTABLE);
    int memo = po->op == OP_REMOVE || !lua_isfunction(L, po->repl);
    lua_pushnil(L);
    parent_memo_t mm = {lua_gettop(L),    0,    0, NULL,
                        lf_lazy_of(L, 1), NULL, 0, {0}};
    lua_Integer n = (lua_Integer)lua_rawlen(L, paths_idx);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, paths_idx, i);
        size_t len;
        const char *p = lua_tolstring(L, -1, &len);
        if (!p)
            luaL_error(L, "path %d is not a string", (int)i);
        if (memo && !memchr(p, '*', len)) {
            walk_memo(L, &mm, p, len, po);
        } else {
            walk(L, 1, p, len, po, 0);
            mm.valid = 0;
        }
        lua_settop(L, mm.slot);
    }
    lua_pop(L, 1);
}

/* es.remove(tbl, path_or_paths) -> number removed */
static int api_remove(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    path_op_t po = {OP_REMOVE, 0, 0};
    run_paths(L, 2, &po);
    lua_pushinteger(L, po.count);
    return 1;
}

/* es.redact(tbl, path_or_paths [, replacement or function(old)]) -> n */
static int api_redact(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 3);
    if (lua_isnil(L, 3)) {
        lua_pushliteral(L, LF_REDACTED);
        lua_replace(L, 3);
    }
    path_op_t po = {OP_REDACT, 3, 0};
    run_paths(L, 2, &po);
    lua_pushinteger(L, po.count);
    return 1;
}

/* ------------------------------------------------------------- sandbox */

static int api_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE && lua_getfield(L, 2, "__gc") != LUA_TNIL)
        return luaL_error(L, "__gc metamethods are not allowed in filters");
    lua_settop(L, 2);
    if (lua_type(L, 1) == LUA_TTABLE) { /* its members stay without it */
        lf_lazy_materialise(L, 1);
        lf_lazy_forget(L, 1);
    }
    if (lua_topointer(L, 2) == lf_script_of(L)->lazy_mt) {
        /* getmetatable(ev) handed on: the new table is a plain object */
        luaL_getmetatable(L, LF_OBJECT_MT);
        lua_replace(L, 2);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    if (lua_type(L, -1) == LUA_TTABLE) /* its keys predate the metatable */
        lf_mark_added(L, -1);
    return 1;
}

/* rawset bypasses __newindex: mark the table as lf_newindex would. */
static int api_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    lua_settop(L, 3);
    lf_lazy_t *z = lf_lazy_of(L, 1);
    if (z)
        lf_lazy_note_write(L, z, 2);
    lua_rawset(L, 1);
    lf_mark_added(L, 1);
    return 1;
}

/* rawget (and next, lf_lazy_next) see only what a lazy object has
 * decoded: they decode it all first (pairs does the same via __pairs). */
static int api_rawget(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    lf_lazy_materialise(L, 1);
    lua_rawget(L, 1);
    return 1;
}

static void open_libs(lua_State *L)
{
    static const struct {
        const char *name;
        lua_CFunction open;
    } libs[] = {{LUA_GNAME, luaopen_base},
                {LUA_STRLIBNAME, luaopen_string},
                {LUA_TABLIBNAME, luaopen_table},
                {LUA_MATHLIBNAME, luaopen_math},
                {LUA_UTF8LIBNAME, luaopen_utf8}};
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        luaL_requiref(L, libs[i].name, libs[i].open, 1);
        lua_pop(L, 1);
    }
    static const char *const removed[] = {
        "dofile", "loadfile", "load", "collectgarbage", "warn", "require"};
    for (size_t i = 0; i < sizeof removed / sizeof removed[0]; i++) {
        lua_pushnil(L);
        lua_setglobal(L, removed[i]);
    }
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);

    /* os is opened unregistered only to take clock out of it. */
    luaopen_os(L);
    lua_getfield(L, -1, "clock");
    lua_newtable(L);
    lua_insert(L, -2);
    lua_setfield(L, -2, "clock");
    lua_setglobal(L, "os");
    lua_pop(L, 1);

    lua_getglobal(L, "setmetatable");
    lua_pushcclosure(L, api_setmetatable, 1);
    lua_setglobal(L, "setmetatable");
    lua_pushcfunction(L, api_rawset);
    lua_setglobal(L, "rawset");
    lua_pushcfunction(L, api_rawget);
    lua_setglobal(L, "rawget");
    lua_pushcfunction(L, lf_lazy_next);
    lua_setglobal(L, "next");
    lua_pushcfunction(L, api_print);
    lua_setglobal(L, "print");
}

static void make_kind_mt(lua_State *L, const char *name, int kind)
{
    luaL_newmetatable(L, name);
    lf_mark_kind(L, kind);
    lua_pop(L, 1);
}

static int sandbox_init(lua_State *L)
{
    static const luaL_Reg es_funcs[] = {
        {"remove", api_remove}, {"redact", api_redact},
        {"log", api_log},       {"array", api_array},
        {"object", api_object}, {"copy", api_copy},
        {"encode", api_encode}, {NULL, NULL}};
    open_libs(L);
    make_kind_mt(L, LF_ARRAY_MT, 'a');
    luaL_getmetatable(L, LF_ARRAY_MT);
    lf_script_of(L)->array_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    make_kind_mt(L, LF_OBJECT_MT, 'o');
    lf_lazy_setup(L);
    anchor_setup(L);
    luaL_newlibtable(L, es_funcs);
    push_slots(L, LF_SEG_SLOTS); /* see push_segment */
    luaL_setfuncs(L, es_funcs, 1);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_setglobal(L, "es");
    return 0;
}

lua_State *lf_sandbox_new(lf_script_t *s)
{
    lua_State *L = lua_newstate(lf_alloc, s);
    if (!L)
        return NULL;
    *(lf_script_t **)lua_getextraspace(L) = s;
    lua_pushcfunction(L, sandbox_init);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        lua_close(L);
        return NULL;
    }
    /* Generational mode suits a filter: most garbage dies with its event. */
    lua_gc(L, LUA_GCGEN, 0, 0);
    return L;
}
