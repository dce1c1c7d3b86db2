/*
 * Lazy objects: how the event reaches a filter script.
 *
 * Decoding a whole ~1 KB event into Lua tables, and encoding it all back,
 * cost more than most scripts do with it: a redaction reads a handful of
 * fields of a few dozen. So a JSON object reaches the script as an empty
 * table with a shared metatable, and an index of its members' spans in the
 * event text (kept alive with it). A member is decoded the first time the
 * script reads or writes it (__index / __newindex), and stored in the table
 * from then on, so later reads are plain table reads. Nested objects are
 * lazy in turn; arrays are decoded when first touched, elements included.
 *
 * On output, a member the script never touched is copied as the bytes it
 * came as (a run of them as one span, with the separators between them);
 * a touched one is encoded from the table (absent: removed). Keys the
 * script added follow, sorted, as for other objects.
 *
 * Raw access (next, rawget, rawset, lua_next) would miss members not yet
 * decoded, so pairs/next/rawget decode the whole object first, and the
 * sandbox's rawset records the write (lua_api.c).
 *
 * The object state is a full userdata found through a weak-keyed map
 * table -> state, so the table itself holds nothing but the script's view.
 *
 * When the script's last call read a nested object, one pass indexes the
 * event and every object nested in it as members of objects (those in
 * arrays are indexed when their array is decoded): a script that reads
 * ev.data.shipping then finds data's and shipping's members already known,
 * instead of skipping data's text once to find where it ends and reading it
 * again to index it. The outermost object's state holds the index of all of
 * them; a nested one's state points into it and keeps it alive. A script
 * that reads only attributes keeps the cheaper skip.
 */
#include "lua_filter.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

struct lf_member_s {
    uint32_t ks, ke; /* the key as written, with its quotes: src[ks..ke) */
    uint32_t vs, ve; /* the value as written */
    uint32_t kd, kn; /* the decoded key: src + kd, or keys + kd (LM_ESC) */
    uint32_t flags;
    uint32_t child, nchild; /* an object value's members: the outermost
                               state's m[child - 1 ..]; child 0: not indexed */
};

/* The key hash of an object's members (see merge_repeats and find). */
#define DUP_SLOTS 128
/* Objects with more members than this keep their hash. */
#define LF_HASH_MIN 8
/* Every member of an object up to this size is in the hash. */
#define LF_HASH_MAX (DUP_SLOTS / 4 * 3)

enum {
    LM_TOUCHED = 1, /* the table holds the member's value (nil: removed) */
    LM_DEAD = 2,    /* a later member has the same key (the last wins) */
    LM_ESC = 4,     /* the key has escapes; decoded into the key bytes */
    LM_MOVED = 8,   /* its value is a later member's (a repeated key) */
    /* Edits es.redact/es.remove made to the members of an object nobody
     * decoded (see lf_lazy_nested_edit): */
    LM_HAS_EDITS = 16, /* the object value has members edited in place */
    LM_EDIT = 32,      /* the value is the one in the owner's edits table */
    LM_EDIT_GONE = 64, /* removed */
};

struct lf_lazy_s {
    const char *src;  /* the event text, anchored by the user value */
    lf_member_t *m;   /* this object's members */
    lf_member_t *all; /* the outermost object's index: every object's */
    const char *keys; /* the decoded escaped keys */
    uint16_t *hash;   /* LF_HASH_SLOTS: member index + 1 by key, 0: free;
                         NULL: few or very many members, found by a scan */
    uint32_t n;
    uint16_t added;    /* the script set keys the source did not have */
    uint16_t complete; /* every member is in the table (or removed) */
    uint16_t outer;    /* the index follows (user value: the text); else the
                          user value is the outermost object's state */
};

/* The state map and the metatable are at lf_script_t.lazy_map_ref and
 * lazy_mt_ref in the registry: an integer key is an array slot there,
 * cheaper than a light-userdata key's hash lookup on every member read. */

static const char *key_of(const lf_lazy_t *z, const lf_member_t *m)
{
    return m->flags & LM_ESC ? z->keys + m->kd : z->src + m->kd;
}

static uint32_t key_hash(const char *k, uint32_t n);

/*
 * A member by its decoded key. Scripts read and write an object's members
 * by name all the time (every field access, every es.redact path), so an
 * object of more than a few members keeps the hash merge_repeats builds
 * anyway; the smallest ones, and those past the hash's reach, are
 * scanned.
 */
static lf_member_t *find(lf_lazy_t *z, const char *k, size_t n)
{
    if (z->hash) {
        for (uint32_t h = key_hash(k, (uint32_t)n);; h = (h + 1) % DUP_SLOTS) {
            uint16_t at = z->hash[h];
            if (!at)
                return NULL;
            lf_member_t *m = &z->m[at - 1];
            if (m->kn == n && memcmp(key_of(z, m), k, n) == 0)
                return m;
        }
    }
    for (uint32_t i = 0; i < z->n; i++) {
        lf_member_t *m = &z->m[i];
        if (m->kn == n && !(m->flags & LM_DEAD) &&
            memcmp(key_of(z, m), k, n) == 0)
            return m;
    }
    return NULL;
}

int lf_lazy_is(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return 0;
    int lazy = lua_topointer(L, -1) == lf_script_of(L)->lazy_mt;
    lua_pop(L, 1);
    return lazy;
}

/*
 * Finding a table's state in the weak map is a hash lookup in a table the
 * collector keeps pruning, and a call looks up the few objects of its
 * event many times (every es.redact path, every output member). The
 * objects a call makes are also listed in `recent`, and held by strong
 * references in the array at recent_ref: a table there cannot be
 * collected, so its address names it alone and a pointer compare finds its
 * state (which the weak map keeps alive while its table lives). The next
 * calls' objects overwrite those references (lf_lazy_new_call only
 * restarts the list), so at most LF_RECENT_OBJECTS objects outlive their
 * event that way. A lazy table loses its metatable only through
 * setmetatable or es.object/es.array, which decode it first and take it
 * off the list (lf_lazy_forget).
 */
static int recent_slot(const lf_script_t *s, const void *table)
{
    for (int i = 0; i < s->nrecent; i++)
        if (s->recent[i].table == table)
            return i;
    return -1;
}

void lf_lazy_new_call(lua_State *L)
{
    lf_script_of(L)->nrecent = 0;
}

void lf_lazy_forget(lua_State *L, int idx)
{
    lf_script_t *s = lf_script_of(L);
    int i = recent_slot(s, lua_topointer(L, idx));
    if (i >= 0)
        s->recent[i].table = NULL; /* the reference goes with the next call */
}

/* Pushes the state of the lazy table at idx (the userdata), or nothing. */
static lf_lazy_t *push_state(lua_State *L, int idx)
{
    if (!lf_lazy_is(L, idx))
        return NULL;
    idx = lua_absindex(L, idx);
    lua_rawgeti(L, LUA_REGISTRYINDEX, lf_script_of(L)->lazy_map_ref);
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    lf_lazy_t *z = lua_touserdata(L, -1);
    if (!z) /* a table the script gave the lazy metatable itself */
        lua_pop(L, 1);
    return z;
}

/* The same for a metamethod, whose first upvalue is the map and whose
 * first argument is known to be a lazy table. */
static lf_lazy_t *push_state_mm(lua_State *L)
{
    lua_pushvalue(L, 1);
    lua_rawget(L, lua_upvalueindex(1));
    return lua_touserdata(L, -1);
}

lf_lazy_t *lf_lazy_recent(lua_State *L, int idx)
{
    lf_script_t *s = lf_script_of(L);
    if (!s->nrecent || lua_type(L, idx) != LUA_TTABLE)
        return NULL;
    int i = recent_slot(s, lua_topointer(L, idx));
    return i >= 0 ? s->recent[i].z : NULL;
}

lf_lazy_t *lf_lazy_of(lua_State *L, int idx)
{
    lf_lazy_t *z = lf_lazy_recent(L, idx);
    if (z)
        return z;
    z = push_state(L, idx);
    if (z)
        lua_pop(L, 1); /* the map keeps it while the table lives */
    return z;
}

/* ------------------------------------------------------------ indexing */

/* Decodes an escaped key through the JSON decoder (rare). */
static void add_escaped_key(lua_State *L, const char *src, lf_member_t *m,
                            lf_buf_t *keys)
{
    lua_pushlstring(L, src + m->ks, m->ke - m->ks);
    lf_json_push_lazy(L, lua_gettop(L), 0, m->ke - m->ks);
    size_t n;
    const char *k = lua_tolstring(L, -1, &n);
    m->kd = (uint32_t)keys->len;
    m->kn = (uint32_t)n;
    m->flags |= LM_ESC;
    lf_buf_add(L, keys, k, n);
    lua_pop(L, 2);
}

static void bad_object(lua_State *L, const char *src, const char *p)
{
    luaL_error(L, "invalid JSON object in the event at byte %d",
               (int)(p - src));
}

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/*
 * A repeated key keeps its first place and takes the last value, as the
 * eager decoder does: the first member gets the later span, the later one
 * is marked dead. Keys are found through a small hash of the first ones
 * (the first 96 members of an object); later members, rare, are compared
 * with all before them.
 */
typedef struct dupset_s {
    uint16_t slot[DUP_SLOTS]; /* member index + 1; 0: free */
} dupset_t;

static const char *key_text(const lf_member_t *m, const char *src,
                            const char *keys)
{
    return m->flags & LM_ESC ? keys + m->kd : src + m->kd;
}

static uint32_t key_hash(const char *k, uint32_t n)
{
    uint64_t a = 0;
    memcpy(&a, k, n < 8 ? n : 8);
    a = (a ^ ((uint64_t)n << 56)) * 0x9E3779B97F4A7C15u;
    return (uint32_t)(a >> 57); /* 0..127 */
}

static void take_later_value(lf_member_t *first, lf_member_t *later)
{
    first->vs = later->vs;
    first->ve = later->ve;
    first->child = later->child;
    first->nchild = later->nchild;
    first->flags |= LM_MOVED;
    later->flags |= LM_DEAD;
}

static void merge_repeat(dupset_t *ds, lf_member_t *ms, uint32_t n,
                         const char *src, const char *keys)
{
    lf_member_t *last = &ms[n];
    const char *lk = key_text(last, src, keys);
    if (n >= LF_HASH_MAX) {
        for (uint32_t i = 0; i < n; i++)
            if (ms[i].kn == last->kn && !(ms[i].flags & LM_DEAD) &&
                memcmp(key_text(&ms[i], src, keys), lk, last->kn) == 0) {
                take_later_value(&ms[i], last);
                return;
            }
        return;
    }
    for (uint32_t h = key_hash(lk, last->kn);; h = (h + 1) % DUP_SLOTS) {
        if (!ds->slot[h]) {
            ds->slot[h] = (uint16_t)(n + 1);
            return;
        }
        lf_member_t *m = &ms[ds->slot[h] - 1];
        if (m->kn == last->kn &&
            memcmp(key_text(m, src, keys), lk, last->kn) == 0) {
            take_later_value(m, last);
            return;
        }
    }
}

/* Resolves repeated keys among an object's members: when it gets its
 * state, so nested objects a script never reads are spared it. The hash
 * it builds stays with the state when the state has room for it. */
static void merge_repeats(lf_lazy_t *z)
{
    if (z->n < 2)
        return;
    dupset_t local, *ds = z->hash ? (dupset_t *)z->hash : &local;
    memset(ds, 0, sizeof *ds);
    for (uint32_t i = 0; i < z->n; i++)
        merge_repeat(ds, z->m, i, z->src, z->keys);
}

/* Room a state of an object of n members takes for its hash. */
static size_t hash_room(uint32_t n)
{
    return n > LF_HASH_MIN && n <= LF_HASH_MAX ? sizeof(dupset_t) : 0;
}

/* Reads one member's key at p (a quote); returns the byte after it. */
static const char *scan_key(lua_State *L, const char *src, const char *p,
                            const char *e, lf_member_t *m, lf_buf_t *keys)
{
    const char *q = lf_skip_plain(p + 1, e);
    m->ks = (uint32_t)(p - src);
    m->kd = m->ks + 1;
    if (q < e && *q == '"') {
        m->ke = (uint32_t)(q + 1 - src);
        m->kn = m->ke - m->kd - 1;
        return q + 1;
    }
    const char *after = lf_json_skip(p, e);
    if (!after)
        bad_object(L, src, p);
    m->ke = (uint32_t)(after - src);
    add_escaped_key(L, src, m, keys);
    return after;
}

/* Where one indexing pass is: members of the objects still open are on
 * `open`, and move to `done` as one block when their object closes. */
typedef struct scan_s {
    lua_State *L;
    const char *src, *end;
    lf_buf_t *open, *done, *keys;
    int max_depth; /* objects nested deeper are skipped, indexed when read */
} scan_t;

static const char *scan_object(scan_t *sc, const char *p, lf_member_t *obj,
                               int depth);

/* Reads one member at p (a quote) onto the open members; returns the byte
 * after its value. */
static const char *scan_member(scan_t *sc, const char *p, int depth)
{
    /* Written in place: a nested object's members go after it, and may
     * move the buffer, so the member is found again by its offset. */
    size_t at = sc->open->len;
    lf_buf_reserve(sc->L, sc->open, sizeof(lf_member_t));
    sc->open->len += sizeof(lf_member_t);
    lf_member_t *m = (lf_member_t *)(sc->open->data + at);
    m->flags = m->child = m->nchild = 0;
    p = skip_ws(scan_key(sc->L, sc->src, p, sc->end, m, sc->keys), sc->end);
    if (p >= sc->end || *p != ':')
        bad_object(sc->L, sc->src, p);
    const char *v = skip_ws(p + 1, sc->end);
    lf_member_t obj = {0};
    const char *ve = v < sc->end && *v == '{' && depth < sc->max_depth
                         ? scan_object(sc, v, &obj, depth + 1)
                         : lf_json_skip(v, sc->end);
    if (!ve)
        bad_object(sc->L, sc->src, v);
    m = (lf_member_t *)(sc->open->data + at);
    m->child = obj.child;
    m->nchild = obj.nchild;
    m->vs = (uint32_t)(v - sc->src);
    m->ve = (uint32_t)(ve - sc->src);
    return ve;
}

/* Indexes the object at p (its '{') and the objects in it; its members go
 * to sc->done as one block, which obj->child/nchild then name. Returns
 * the byte after its closing brace. */
static const char *scan_object(scan_t *sc, const char *p, lf_member_t *obj,
                               int depth)
{
    size_t base = sc->open->len / sizeof(lf_member_t);
    uint32_t n = 0;
    p = skip_ws(p + 1, sc->end);
    while (p < sc->end && *p != '}') {
        if (n && *p == ',')
            p = skip_ws(p + 1, sc->end);
        if (p >= sc->end || *p != '"')
            bad_object(sc->L, sc->src, p);
        p = skip_ws(scan_member(sc, p, depth), sc->end);
        n++;
        if (p < sc->end && *p != ',' && *p != '}')
            bad_object(sc->L, sc->src, p);
    }
    if (p >= sc->end)
        bad_object(sc->L, sc->src, p);
    size_t bytes = (size_t)n * sizeof(lf_member_t);
    obj->child = (uint32_t)(sc->done->len / sizeof(lf_member_t)) + 1;
    obj->nchild = n;
    lf_buf_add(sc->L, sc->done, sc->open->data + base * sizeof(lf_member_t),
               bytes);
    sc->open->len = base * sizeof(lf_member_t);
    return p + 1;
}

/* Makes the table and state of an object whose members are m[0..n) and
 * pushes the table; the state's user value (at anchor) keeps them. */
static lf_lazy_t *new_object(lua_State *L, uint32_t n, size_t extra, int anchor)
{
    /* Room for the members a script typically reads or writes, so the
     * first few do not each grow the table. */
    lua_createtable(L, 0, n < 8 ? (int)n : 8);
    lua_rawgeti(L, LUA_REGISTRYINDEX, lf_script_of(L)->lazy_mt_ref);
    lua_setmetatable(L, -2);
    /* User values: 1 the anchor, 2 the edits table (lf_lazy_nested_edit) */
    lf_lazy_t *z = lua_newuserdatauv(L, sizeof *z + extra, 2);
    memset(z, 0, sizeof *z);
    lua_pushvalue(L, anchor);
    lua_setiuservalue(L, -2, 1);
    return z;
}

/* Registers the state on top for the table below it (both stay). */
static void map_state(lua_State *L)
{
    lf_script_t *s = lf_script_of(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->lazy_map_ref);
    lua_pushvalue(L, -3); /* table */
    lua_pushvalue(L, -3); /* state */
    lua_rawset(L, -3);
    lua_pop(L, 1);
    if (s->nrecent == LF_RECENT_OBJECTS)
        return;
    int i = s->nrecent++;
    s->recent[i].table = lua_topointer(L, -2);
    s->recent[i].z = lua_touserdata(L, -1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->recent_ref);
    lua_pushvalue(L, -3);
    lua_rawseti(L, -2, i + 1);
    lua_pop(L, 1);
}

/* Pushes the table of the outermost object, whose members are
 * m[child - 1 ..][0..n) of the index in s->lazy_index (keys in
 * s->lazy_keys), over the text src at src_idx. */
static void push_outer(lua_State *L, int src_idx, const char *src,
                       uint32_t child, uint32_t n)
{
    lf_script_t *s = lf_script_of(L);
    size_t msize = s->lazy_index.len;
    /* After the members (4-byte fields), the keys, then the hash. */
    size_t hash_at = (msize + s->lazy_keys.len + 1) & ~(size_t)1;
    lf_lazy_t *z = new_object(L, n, hash_at + hash_room(n), src_idx);
    z->src = src;
    z->all = (lf_member_t *)(z + 1);
    z->m = z->all + child - 1;
    z->n = n;
    z->keys = (const char *)z->all + msize;
    z->hash = hash_room(n) ? (uint16_t *)((char *)z->all + hash_at) : NULL;
    z->outer = 1;
    memcpy(z->all, s->lazy_index.data, msize);
    if (s->lazy_keys.len)
        memcpy((char *)z->all + msize, s->lazy_keys.data, s->lazy_keys.len);
    merge_repeats(z);
    map_state(L);
    lua_pop(L, 1);
}

void lf_lazy_push(lua_State *L, int src_idx, size_t start, size_t end)
{
    lf_script_t *s = lf_script_of(L);
    src_idx = lua_absindex(L, src_idx);
    const char *src = lua_tostring(L, src_idx);
    if (end - start < 2 || src[start] != '{' || src[end - 1] != '}' ||
        end > UINT32_MAX)
        bad_object(L, src, src + start);
    luaL_checkstack(L, 6, "JSON");
    s->lazy_scratch.len = s->lazy_index.len = s->lazy_keys.len = 0;
    scan_t sc = {L,
                 src,
                 src + end,
                 &s->lazy_scratch,
                 &s->lazy_index,
                 &s->lazy_keys,
                 s->lazy_deep ? LF_MAX_DEPTH : 0};
    lf_member_t top = {0};
    if (scan_object(&sc, src + start, &top, 0) != src + end)
        bad_object(L, src, src + start);
    push_outer(L, src_idx, src, top.child, top.nchild);
}

/* Copies member h of the host's index, whose offsets count from `shift`
 * bytes before src (src_len bytes), into m; 0, or -1 when it does not fit
 * the text or an index of count members. */
static int take_member(lua_State *L, lf_member_t *m, const es_json_member_t *h,
                       const char *src, uint32_t shift, uint32_t src_len,
                       uint32_t count, lf_buf_t *keys)
{
    if (h->key_start < shift || h->key_start + 2 > h->key_end ||
        h->key_end > h->value_start || h->value_start >= h->value_end ||
        h->value_end - shift > src_len || h->child > count ||
        (h->child && h->nchild > count - h->child + 1))
        return -1;
    m->ks = h->key_start - shift;
    m->ke = h->key_end - shift;
    m->vs = h->value_start - shift;
    m->ve = h->value_end - shift;
    m->kd = m->ks + 1;
    m->kn = m->ke - m->ks - 2;
    m->flags = 0;
    m->child = h->child;
    m->nchild = h->nchild;
    if (h->flags & ES_JSON_KEY_ESCAPED)
        add_escaped_key(L, src, m, keys);
    return 0;
}

int lf_lazy_push_indexed(lua_State *L, int src_idx, const es_json_index_t *ix,
                         size_t shift)
{
    lf_script_t *s = lf_script_of(L);
    src_idx = lua_absindex(L, src_idx);
    size_t len;
    const char *src = lua_tolstring(L, src_idx, &len);
    uint32_t count = ix->count;
    if (len > UINT32_MAX || shift > UINT32_MAX || !ix->root ||
        ix->root > count || ix->nroot > count - ix->root + 1)
        return -1;
    luaL_checkstack(L, 6, "JSON");
    s->lazy_index.len = s->lazy_keys.len = 0;
    lf_buf_reserve(L, &s->lazy_index, (size_t)count * sizeof(lf_member_t));
    lf_member_t *m = (lf_member_t *)s->lazy_index.data;
    for (uint32_t i = 0; i < count; i++)
        if (take_member(L, &m[i], &ix->members[i], src, (uint32_t)shift,
                        (uint32_t)len, count, &s->lazy_keys))
            return -1;
    s->lazy_index.len = (size_t)count * sizeof(lf_member_t);
    push_outer(L, src_idx, src, ix->root, ix->nroot);
    return 0;
}

/* ------------------------------------------------------ pending edits */

/*
 * es.redact and es.remove reach most nested fields through an object the
 * script never read ("data.shipping.street"). Making that object lazy
 * (its table, state and map entry) only to change two of its members cost
 * more than the rest of the path; instead the members of such an object
 * are changed in place in the index: the member takes LM_EDIT (its new
 * value in the edits table of the state whose object holds the nested
 * one, user value 2, by the member's place in the index) or LM_EDIT_GONE,
 * and the nested object's member LM_HAS_EDITS. Whoever decodes the nested
 * object later gets a table with the edits in it (apply_edits); the
 * encoder writes the object from its text with the edits spliced in
 * (encode_edited). Only objects indexed with their parent, one level under
 * a decoded lazy object, are edited this way.
 */

static int peek_member(const lf_lazy_t *z, const lf_member_t *m);

/* Pushes the edits table of the state at zi (nil when it has none). */
static void push_edits(lua_State *L, int zi, int create)
{
    if (lua_getiuservalue(L, zi, 2) == LUA_TTABLE || !create)
        return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, zi, 2);
}

/* The new state c (its table on top) of an object with edits, whose
 * parent's state is at zi: the table gets the edited members. */
static void apply_edits(lua_State *L, int zi, lf_lazy_t *c)
{
    int t = lua_gettop(L);
    push_edits(L, zi, 0);
    int edits = lua_gettop(L);
    for (uint32_t i = 0; i < c->n; i++) {
        lf_member_t *e = &c->m[i];
        if (!(e->flags & (LM_EDIT | LM_EDIT_GONE)))
            continue;
        if (e->flags & LM_EDIT) {
            lua_pushlstring(L, key_of(c, e), e->kn);
            lua_rawgeti(L, edits, (lua_Integer)(e - c->all) + 1);
            lua_rawset(L, t);
        }
        e->flags =
            (e->flags & ~(uint32_t)(LM_EDIT | LM_EDIT_GONE)) | LM_TOUCHED;
    }
    lua_settop(L, t);
}

lf_member_t *lf_lazy_nested(lf_lazy_t *z, const char *k, size_t n)
{
    lf_member_t *m = z ? find(z, k, n) : NULL;
    if (!m || (m->flags & LM_TOUCHED) || !m->child || z->src[m->vs] != '{')
        return NULL;
    if (!(m->flags & LM_HAS_EDITS)) { /* repeated keys, as a state would */
        lf_lazy_t view = {z->src, z->all + m->child - 1,
                          z->all, z->keys,
                          NULL,   m->nchild,
                          0,      0,
                          0};
        merge_repeats(&view);
    }
    return m;
}

int lf_lazy_nested_touched(const lf_member_t *obj)
{
    return (obj->flags & LM_TOUCHED) != 0;
}

/* Member k of the nested object obj, or NULL. */
static lf_member_t *nested_member(const lf_lazy_t *z, const lf_member_t *obj,
                                  const char *k, size_t n)
{
    lf_member_t *b = z->all + obj->child - 1;
    for (uint32_t i = 0; i < obj->nchild; i++)
        if (b[i].kn == n && !(b[i].flags & (LM_DEAD | LM_EDIT_GONE)) &&
            memcmp(key_of(z, &b[i]), k, n) == 0)
            return &b[i];
    return NULL;
}

int lf_lazy_nested_edit(lua_State *L, int t, lf_lazy_t *z, lf_member_t *obj,
                        const char *k, size_t n, int value_idx, int redact)
{
    lf_member_t *e = nested_member(z, obj, k, n);
    if (!e)
        return 0;
    int top = lua_gettop(L);
    if (!push_state(L, t)) /* z is t's: never fails */
        return 0;
    int zi = lua_gettop(L);
    push_edits(L, zi, 1);
    lua_Integer at = (lua_Integer)(e - z->all) + 1;
    int is_null;
    if (e->flags & LM_EDIT) {
        lua_rawgeti(L, -1, at);
        is_null = lua_islightuserdata(L, -1) && !lua_touserdata(L, -1);
        lua_pop(L, 1);
    } else {
        is_null = peek_member(z, e) == LF_PEEK_NULL;
    }
    if (redact && is_null) {
        lua_settop(L, top);
        return 0; /* null stays null, as for a decoded member */
    }
    if (value_idx) {
        lua_pushvalue(L, value_idx);
        lua_rawseti(L, -2, at);
        e->flags |= LM_EDIT;
    } else {
        lua_pushnil(L);
        lua_rawseti(L, -2, at);
        e->flags = (e->flags & ~(uint32_t)LM_EDIT) | LM_EDIT_GONE;
    }
    obj->flags |= LM_HAS_EDITS;
    lua_settop(L, top);
    return 1;
}

/* Pushes the object value of member m of the state at zi, from the index
 * its outermost object made. */
static void push_indexed(lua_State *L, int zi, const lf_lazy_t *z,
                         const lf_member_t *m)
{
    if (!z->outer) /* the outermost state anchors all of them */
        lua_getiuservalue(L, zi, 1);
    else
        lua_pushvalue(L, zi);
    lf_lazy_t *c =
        new_object(L, m->nchild, hash_room(m->nchild), lua_gettop(L));
    c->src = z->src;
    c->all = z->all;
    c->m = z->all + m->child - 1;
    c->n = m->nchild;
    c->keys = z->keys;
    c->hash = hash_room(c->n) ? (uint16_t *)(c + 1) : NULL;
    merge_repeats(c);
    map_state(L);
    lua_pop(L, 1);
    lua_remove(L, -2);
    if (m->flags & LM_HAS_EDITS)
        apply_edits(L, zi, c);
}

/* --------------------------------------------------------- decoding */

/* Decodes member m of the lazy table at t (state z at zi) and stores it
 * under the key at key_idx; pushes the value. */
static void materialise(lua_State *L, int t, int zi, lf_lazy_t *z,
                        lf_member_t *m, int key_idx)
{
    if (z->src[m->vs] == '{')
        lf_script_of(L)->lazy_nested_read = 1;
    if (m->child) { /* indexed with its parent */
        push_indexed(L, zi, z, m);
    } else {
        lua_getiuservalue(L, zi, 1);
        if (!z->outer) { /* the text is the outermost state's user value */
            lua_getiuservalue(L, -1, 1);
            lua_remove(L, -2);
        }
        lf_json_push_lazy(L, lua_gettop(L), m->vs, m->ve);
        lua_remove(L, -2);
    }
    lua_pushvalue(L, key_idx);
    lua_pushvalue(L, -2);
    lua_rawset(L, t);
    m->flags |= LM_TOUCHED;
}

void lf_lazy_materialise(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lf_lazy_t *z = push_state(L, idx);
    if (!z)
        return;
    if (z->complete) { /* next() in a loop calls this for every key */
        lua_pop(L, 1);
        return;
    }
    int zi = lua_gettop(L);
    luaL_checkstack(L, 6, "JSON");
    for (uint32_t i = 0; i < z->n; i++) {
        lf_member_t *m = &z->m[i];
        if (m->flags & (LM_TOUCHED | LM_DEAD))
            continue;
        lua_pushlstring(L, key_of(z, m), m->kn);
        materialise(L, idx, zi, z, m, lua_gettop(L));
        lua_pop(L, 2);
    }
    z->complete = 1;
    lua_pop(L, 1);
}

void lf_lazy_note_write(lua_State *L, lf_lazy_t *z, int key_idx)
{
    if (lua_type(L, key_idx) != LUA_TSTRING) {
        z->added = 1;
        return;
    }
    size_t n;
    const char *k = lua_tolstring(L, key_idx, &n);
    lf_member_t *m = find(z, k, n);
    if (m)
        m->flags |= LM_TOUCHED;
    else
        z->added = 1;
}

/* --------------------------------------------------------- metamethods */

/* t[k] for a key the table does not hold: decode it on first use. */
static int lazy_index(lua_State *L)
{
    if (lua_type(L, 2) != LUA_TSTRING)
        return 0;
    lua_settop(L, 2);
    lf_lazy_t *z = push_state_mm(L);
    size_t n;
    const char *k = lua_tolstring(L, 2, &n);
    lf_member_t *m = z ? find(z, k, n) : NULL;
    if (!m || (m->flags & LM_TOUCHED)) /* touched and absent: removed */
        return 0;
    materialise(L, 1, 3, z, m, 2);
    return 1;
}

/* t[k] = v for a key the table does not hold. */
static int lazy_newindex(lua_State *L)
{
    lua_settop(L, 3);
    lf_lazy_t *z = push_state_mm(L);
    if (z)
        lf_lazy_note_write(L, z, 2);
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 0;
}

static int raw_next(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    if (lua_next(L, 1))
        return 2;
    lua_pushnil(L);
    return 1;
}

int lf_lazy_next(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lf_lazy_materialise(L, 1);
    return raw_next(L);
}

static int lazy_pairs(lua_State *L)
{
    lf_lazy_materialise(L, 1);
    lua_pushcfunction(L, raw_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

void lf_lazy_setup(lua_State *L)
{
    lua_newtable(L); /* the state map, weak in its keys */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lf_script_of(L)->lazy_map_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, LF_RECENT_OBJECTS, 0);
    for (int i = 1; i <= LF_RECENT_OBJECTS; i++) { /* the array part */
        lua_pushboolean(L, 0);
        lua_rawseti(L, -2, i);
    }
    lf_script_of(L)->recent_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    lua_createtable(L, 0, 6);
    lf_mark_kind(L, 'o');
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, lazy_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, lazy_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, lazy_pairs);
    lua_setfield(L, -2, "__pairs");
    lf_script_of(L)->lazy_mt = lua_topointer(L, -1);
    lf_script_of(L)->lazy_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
}

static int peek_member(const lf_lazy_t *z, const lf_member_t *m)
{
    if (!m)
        return LF_PEEK_ABSENT;
    if (m->flags & LM_TOUCHED)
        return LF_PEEK_DECODED;
    if (m->ve - m->vs == 4 && memcmp(z->src + m->vs, "null", 4) == 0)
        return LF_PEEK_NULL;
    if (z->src[m->vs] == '"')
        return m->ve - m->vs > 2 ? LF_PEEK_STRING : LF_PEEK_EMPTY_STRING;
    return LF_PEEK_OTHER;
}

int lf_lazy_peek_name(lf_lazy_t *z, const char *k, size_t n)
{
    return peek_member(z, find(z, k, n));
}

int lf_lazy_peek(lua_State *L, lf_lazy_t *z, int key_idx, lf_member_t **m)
{
    if (m)
        *m = NULL;
    if (!z || lua_type(L, key_idx) != LUA_TSTRING)
        return LF_PEEK_DECODED;
    size_t n;
    const char *k = lua_tolstring(L, key_idx, &n);
    lf_member_t *found = find(z, k, n);
    int peek = peek_member(z, found);
    if (m && peek != LF_PEEK_DECODED)
        *m = found; /* NULL when absent */
    return peek;
}

void lf_lazy_touch(lf_member_t *m)
{
    m->flags |= LM_TOUCHED;
}

/* A copy of a lazy object is an ordinary decoded object: it gets the
 * key-order metatable the eager decoder would have given it. */
void lf_lazy_push_order_mt(lua_State *L, int idx)
{
    lf_lazy_t *z = push_state(L, idx);
    if (!z) {
        lua_pushnil(L);
        return;
    }
    lua_createtable(L, (int)z->n, 4);
    lf_mark_kind(L, 'o');
    lua_pushcfunction(L, lf_newindex);
    lua_setfield(L, -2, "__newindex");
    int k = 0;
    for (uint32_t i = 0; i < z->n; i++) {
        const lf_member_t *m = &z->m[i];
        if (m->flags & LM_DEAD)
            continue;
        lua_pushlstring(L, key_of(z, m), m->kn);
        lua_rawseti(L, -2, ++k);
    }
    lua_remove(L, -2);
}

/* ---------------------------------------------------------- encoding */

static void put_member_key(lua_State *L, lf_buf_t *b, const lf_lazy_t *z,
                           const lf_member_t *m, int *first)
{
    if (!*first)
        lf_buf_add(L, b, ",", 1);
    *first = 0;
    lf_buf_add(L, b, z->src + m->ks, m->ke - m->ks);
    lf_buf_add(L, b, ":", 1);
}

/* The keys the source had, as a set (to tell added keys from them). */
static void push_source_keys(lua_State *L, const lf_lazy_t *z)
{
    lua_createtable(L, 0, (int)z->n);
    for (uint32_t i = 0; i < z->n; i++) {
        if (z->m[i].flags & LM_DEAD)
            continue;
        lua_pushlstring(L, key_of(z, &z->m[i]), z->m[i].kn);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    }
}

/* Writes src[from, to) of the lazy object's text, noting it as a copy of
 * the event's text when it is one (see lf_script_t.copies). */
static void put_span(lua_State *L, lf_buf_t *b, const lf_lazy_t *z,
                     uint32_t from, uint32_t to)
{
    lf_script_t *s = lf_script_of(L);
    size_t at = b->len - s->copy_base;
    if (b == s->copy_buf && z->src == s->copy_src &&
        at + (to - from) <= UINT32_MAX && s->copy_shift + to <= UINT32_MAX) {
        es_json_copy_t c = {(uint32_t)at, (uint32_t)(from + s->copy_shift),
                            to - from};
        lf_buf_add(L, &s->copies, &c, sizeof c);
    }
    lf_buf_add(L, b, z->src + from, to - from);
}

/* The nested object obj of z (the table at idx) from its text, with the
 * edits made to its members in place (see lf_lazy_nested_edit). */
static void encode_edited(lua_State *L, int idx, lf_lazy_t *z,
                          const lf_member_t *obj, lf_buf_t *b, int depth)
{
    int top = lua_gettop(L);
    push_state(L, idx);
    push_edits(L, lua_gettop(L), 0);
    int edits = lua_gettop(L);
    const lf_member_t *blk = z->all + obj->child - 1;
    uint32_t n = obj->nchild;
    const uint32_t plain = LM_EDIT | LM_EDIT_GONE | LM_DEAD | LM_MOVED;
    int first = 1;
    lf_buf_add(L, b, "{", 1);
    for (uint32_t i = 0; i < n; i++) {
        const lf_member_t *e = &blk[i];
        if (e->flags & (LM_DEAD | LM_EDIT_GONE))
            continue;
        if (!(e->flags & plain)) { /* a run: one copy */
            uint32_t j = i;
            while (j + 1 < n && !(blk[j + 1].flags & plain))
                j++;
            if (!first)
                lf_buf_add(L, b, ",", 1);
            first = 0;
            put_span(L, b, z, e->ks, blk[j].ve);
            i = j;
            continue;
        }
        put_member_key(L, b, z, e, &first);
        if (e->flags & LM_EDIT) {
            lua_rawgeti(L, edits, (lua_Integer)(e - z->all) + 1);
            lf_enc_value(L, lua_gettop(L), b, depth + 1);
            lua_pop(L, 1);
        } else { /* a repeated key's last value */
            put_span(L, b, z, e->vs, e->ve);
        }
    }
    lf_buf_add(L, b, "}", 1);
    lua_settop(L, top);
}

void lf_lazy_encode(lua_State *L, int idx, lf_lazy_t *z, lf_buf_t *b, int depth)
{
    idx = lua_absindex(L, idx);
    int first = 1;
    luaL_checkstack(L, 6, "JSON nesting");
    lf_buf_add(L, b, "{", 1);
    for (uint32_t i = 0; i < z->n; i++) {
        const lf_member_t *m = &z->m[i];
        if (m->flags & LM_DEAD)
            continue;
        if (!(m->flags & (LM_TOUCHED | LM_MOVED | LM_HAS_EDITS))) {
            uint32_t j = i; /* a run: one copy */
            while (j + 1 < z->n &&
                   !(z->m[j + 1].flags &
                     (LM_TOUCHED | LM_DEAD | LM_MOVED | LM_HAS_EDITS)))
                j++;
            if (!first)
                lf_buf_add(L, b, ",", 1);
            first = 0;
            put_span(L, b, z, m->ks, z->m[j].ve);
            i = j;
            continue;
        }
        if (!(m->flags & LM_TOUCHED)) {
            put_member_key(L, b, z, m, &first);
            if (m->flags & LM_HAS_EDITS)
                encode_edited(L, idx, z, m, b, depth + 1);
            else
                put_span(L, b, z, m->vs, m->ve);
            continue;
        }
        lua_pushlstring(L, key_of(z, m), m->kn);
        if (lua_rawget(L, idx) != LUA_TNIL) {
            put_member_key(L, b, z, m, &first);
            lf_enc_value(L, lua_gettop(L), b, depth + 1);
        }
        lua_pop(L, 1);
    }
    if (z->added) {
        push_source_keys(L, z);
        lf_enc_extra_keys(L, idx, lua_gettop(L), b, &first, depth);
        lua_pop(L, 1);
    }
    lf_buf_add(L, b, "}", 1);
}
