/*
 * Internals of the Lua filter plugin shared by its four source files:
 * lua_filter.c (plugin vtable, config, reload), lua_json.c (JSON <-> Lua),
 * lua_lazy.c (the event as lazy objects) and lua_api.c (sandbox and the
 * `es` helper table).
 */
#ifndef ES_LUA_FILTER_H
#define ES_LUA_FILTER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <lua.h>

#include "eventstream/plugin.h"

/* Metatable field that marks a table as a JSON array or object. */
#define LF_KIND_FIELD "__jsontype"
/* Registry keys of the shared metatables. */
#define LF_ARRAY_MT "es.array"
#define LF_OBJECT_MT "es.object"
/* Deepest nesting decoded or encoded; deeper is an error (or a cycle). */
#define LF_MAX_DEPTH 128

/* A growable byte buffer; lf_buf_* raise a Lua error when out of memory. */
typedef struct lf_buf_s {
    char *data;
    size_t len;
    size_t cap;
} lf_buf_t;

/* Free lists of small blocks for a state's allocator (lua_api.c). */
#define LF_POOL_MAX 4096
#define LF_POOL_CLASSES 20
typedef struct lf_pool_s {
    void *free[LF_POOL_CLASSES];
    char *chunks; /* list of 64 KB chunks */
    char *next;   /* unused part of the newest chunk */
    size_t left;
} lf_pool_t;

void lf_pool_free(lf_pool_t *p);

/* One Lua state running one script. */
#define LF_ANCHOR_SLOTS 256
#define LF_RECENT_OBJECTS 16
#define LF_SEG_SLOTS 64
/* Lua 5.4 interns strings up to this length (LUAI_MAXSHORTLEN, not in
 * its public headers). */
#define LF_SHORT_STRING_MAX 40

typedef struct lf_script_s {
    lua_State *L;
    const es_host_t *host;
    int fn_ref;           /* registry ref of the filter function */
    size_t mem_used;      /* bytes held by the state */
    size_t mem_limit;     /* cap enforced by the allocator */
    int mem_refused;      /* the allocator refused a request */
    int budget_hit;       /* the instruction hook stopped the script */
    int instr_limit;      /* instructions per call */
    lf_buf_t dec_scratch; /* unescaped strings while decoding */
    lf_buf_t enc_scratch; /* es.encode output */
    int array_mt_ref;     /* registry ref of the shared array metatable */
    lf_pool_t pool;
    const void *lazy_mt;           /* the shared metatable of lazy objects */
    int lazy_map_ref, lazy_mt_ref; /* registry refs: see lua_lazy.c */
    lf_buf_t lazy_scratch;         /* members of the objects being indexed */
    lf_buf_t lazy_index; /* members of the objects indexed, per object */
    lf_buf_t lazy_keys;  /* their escaped keys, decoded */
    /* The lazy objects this call made, for a lookup of table -> state
     * without the weak map (see lua_lazy.c); the tables are held by the
     * array at recent_ref. */
    struct {
        const void *table;
        struct lf_lazy_s *z;
    } recent[LF_RECENT_OBJECTS];
    int nrecent;
    int recent_ref;
    int lazy_deep;        /* index nested objects with the event */
    int lazy_nested_read; /* this call read a nested object */
    /* The spans of the event's text an output's encode copies, for
     * host->filter_add_copies: recorded while the encode writes to
     * copy_buf, from copy_src (the event's text in this state, which
     * starts copy_shift bytes into es_event_t.json), at offsets from
     * copy_base; es_json_copy_t items. */
    const lf_buf_t *copy_buf;
    const char *copy_src;
    size_t copy_shift, copy_base;
    lf_buf_t copies;
    /* Short strings the state pushes on every call (path segments of
     * es.redact/es.remove, the topic and tenant) are kept alive in the
     * table at anchor_ref, one per slot, the slot's string content
     * pointer in anchor_ptr: see lf_anchor_top. */
    int anchor_ref;
    const char *anchor_ptr[LF_ANCHOR_SLOTS];
    /* The strings of es.redact/es.remove path segments by where their
     * bytes are in the path: see push_segment in lua_api.c. */
    struct {
        const char *seg, *str;
        size_t n;
    } segs[LF_SEG_SLOTS];
} lf_script_t;

/* Grows b to hold extra more bytes (raises a Lua error on failure). */
void lf_buf_grow(lua_State *L, lf_buf_t *b, size_t extra);

static inline void lf_buf_reserve(lua_State *L, lf_buf_t *b, size_t extra)
{
    if (b->cap - b->len < extra)
        lf_buf_grow(L, b, extra);
}

static inline void lf_buf_add(lua_State *L, lf_buf_t *b, const void *p,
                              size_t n)
{
    if (n == 0)
        return;
    lf_buf_reserve(L, b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

/* Kind of the table at idx: 'a' (array), 'o' (object) or 0 (plain).
 * Our metatables carry the kind under a light-userdata key (no string
 * lookup); a script's own metatable may give it as __jsontype. */
int lf_table_kind(lua_State *L, int idx);
/* Marks the metatable on top of the stack as kind 'a' or 'o'. */
void lf_mark_kind(lua_State *L, int kind);

/*
 * Key-order metatables (of es.copy's objects) carry __newindex =
 * lf_newindex, so a key added to such an object is seen: the table is then
 * marked (a weak set in the registry) and the encoder looks for keys
 * outside the order list only in marked tables. Whatever adds keys without
 * __newindex (rawset, setmetatable on a filled table, es.copy) marks the
 * table itself.
 */
int lf_newindex(lua_State *L);
void lf_mark_added(lua_State *L, int idx);

/* Appends the JSON encoding of the value at idx to b. Raises a Lua error
 * for values JSON cannot hold (functions, NaN, mixed tables, cycles). */
void lf_json_encode(lua_State *L, int idx, lf_buf_t *b);

/*
 * The first byte of a JSON string that needs attention ('"', '\\' or a
 * control character) from p on, or end; 8 bytes at a time: strings are
 * most of an event. The lowest flagged byte of these tests is always a
 * real match (false flags only sit above a real one).
 */
#define LF_ONES 0x0101010101010101u
#define LF_HIGHS 0x8080808080808080u
static inline const char *lf_skip_plain(const char *p, const char *end)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; end - p >= 8; p += 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        uint64_t q = x ^ (LF_ONES * '"'), bs = x ^ (LF_ONES * '\\');
        uint64_t hit = (((q - LF_ONES) & ~q) | ((bs - LF_ONES) & ~bs) |
                        ((x - LF_ONES * 0x20) & ~x)) &
                       LF_HIGHS;
        if (hit)
            return p + (__builtin_ctzll(hit) >> 3);
    }
#endif
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
        p++;
    return p;
}

/*
 * Lazy objects (lua_lazy.c): the event reaches the script as tables that
 * decode a member only when the script first reads or writes it; members
 * never touched are copied to the output as the bytes they came as.
 */
typedef struct lf_lazy_s lf_lazy_t;

/* Creates the lazy objects' metatable and state map (sandbox set-up). */
void lf_lazy_setup(lua_State *L);
/* Pushes the object text src[start..end) (src is the string at src_idx,
 * which the object keeps alive) as a lazy object. Raises a Lua error when
 * the text is not a JSON object. */
void lf_lazy_push(lua_State *L, int src_idx, size_t start, size_t end);
/* The same for a whole event from the host's index of its members
 * (es_event_t.index), whose offsets count from `shift` bytes before the
 * string at src_idx: no second read of the text. Returns -1, pushing
 * nothing, when the index does not fit the text (then lf_lazy_push). */
int lf_lazy_push_indexed(lua_State *L, int src_idx, const es_json_index_t *ix,
                         size_t shift);
/* Whether the value at idx is a lazy object (a metatable check). */
int lf_lazy_is(lua_State *L, int idx);
/* The lazy object state of the table at idx, or NULL for other values. */
lf_lazy_t *lf_lazy_of(lua_State *L, int idx);
/* The same for an object this call made (a pointer compare), else NULL
 * whatever the value is: a quick test before the others. */
lf_lazy_t *lf_lazy_recent(lua_State *L, int idx);
/* A filter call starts: the objects it makes are the ones looked up most
 * (see lf_script_t.recent). */
void lf_lazy_new_call(lua_State *L);
/* The table at idx is getting another metatable: no longer lazy. */
void lf_lazy_forget(lua_State *L, int idx);
/* Decodes every member of the lazy object at idx into its table, so raw
 * access (next, rawget, lua_next) sees them all. */
void lf_lazy_materialise(lua_State *L, int idx);
/* The sandbox's next(t, k): decodes a lazy object whole first. */
int lf_lazy_next(lua_State *L);
/* Pushes a key-order metatable for a copy of the lazy object at idx. */
void lf_lazy_push_order_mt(lua_State *L, int idx);
/* What a lazy object holds under a key, without decoding it. */
enum {
    LF_PEEK_DECODED, /* in the table already (or not a lazy object) */
    LF_PEEK_ABSENT,
    LF_PEEK_NULL,
    LF_PEEK_STRING, /* a non-empty string */
    LF_PEEK_EMPTY_STRING,
    LF_PEEK_OTHER,
};
typedef struct lf_member_s lf_member_t;
/* For the key at key_idx of the lazy object z (LF_PEEK_DECODED when z is
 * NULL, a table that is not lazy, or the key not a string). Marks nothing.
 * For a member not yet decoded, *m (when m is not NULL) is set to it, else
 * to NULL. */
int lf_lazy_peek(lua_State *L, lf_lazy_t *z, int key_idx, lf_member_t **m);
/* Records that the caller rawsets member m (from lf_lazy_peek) itself: the
 * table's value (nil: removed) replaces the source's, without the
 * __newindex round trip or decoding the old value. */
void lf_lazy_touch(lf_member_t *m);
/* Member k of lazy object z when it is an object nobody decoded that
 * es.redact/es.remove may edit in place (see lua_lazy.c), else NULL. */
lf_member_t *lf_lazy_nested(lf_lazy_t *z, const char *k, size_t n);
/* Whether that member has been decoded or replaced since. */
int lf_lazy_nested_touched(const lf_member_t *obj);
/* Redacts (value at value_idx) or removes (value_idx 0) member k of that
 * object (obj, from lf_lazy_nested on z, the table at t's state); 1 when
 * it changed something, 0 when k is absent (or null, for a redaction). */
int lf_lazy_nested_edit(lua_State *L, int t, lf_lazy_t *z, lf_member_t *obj,
                        const char *k, size_t n, int value_idx, int redact);
/* The same for the key k[0..n) of the lazy object z. */
int lf_lazy_peek_name(lf_lazy_t *z, const char *k, size_t n);
/* Records a raw write of key (at key_idx) into the lazy object z. */
void lf_lazy_note_write(lua_State *L, lf_lazy_t *z, int key_idx);
/* Writes the lazy object at idx as JSON: untouched members verbatim. */
void lf_lazy_encode(lua_State *L, int idx, lf_lazy_t *z, lf_buf_t *b,
                    int depth);

/* Pushes the JSON value src[start..end) (src the string at src_idx) with
 * objects inside it as lazy objects. */
void lf_json_push_lazy(lua_State *L, int src_idx, size_t start, size_t end);
/* The end of the JSON value starting at p (after leading whitespace), or
 * NULL when a string or bracket does not close, or nesting passes
 * LF_MAX_DEPTH. It does not check the rest (the host has parsed the event;
 * what a script reads is checked as it is decoded). */
const char *lf_json_skip(const char *p, const char *end);

/* Encoder pieces the lazy objects share (lua_json.c). */
void lf_enc_value(lua_State *L, int idx, lf_buf_t *b, int depth);
/* Writes the string keys of the table at idx that are not keys of the
 * table at `seen` (0: none), sorted, as members. */
void lf_enc_extra_keys(lua_State *L, int idx, int seen, lf_buf_t *b, int *first,
                       int depth);

/* Creates a sandboxed state with the `es` helpers; NULL when out of
 * memory. The script pointer is kept in the state's extra space. */
lua_State *lf_sandbox_new(lf_script_t *s);

static inline lf_script_t *lf_script_of(lua_State *L)
{
    return *(lf_script_t **)lua_getextraspace(L);
}

/* Keeps the string on top of the stack (left there) alive after the call,
 * when it is short: see lua_api.c. */
void lf_anchor_top(lua_State *L);

#endif
