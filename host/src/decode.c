#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "internal/es_base64.h"
#include "internal/es_json_int.h"

/* Fills the caller's reason buffer and evaluates to -1. */
#define REASON(...) (snprintf(reason, reason_size, __VA_ARGS__), -1)

/* CloudEvents attribute names: lower-case ASCII letters and digits. */
static int valid_attribute_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
            return 0;
    return 1;
}

static const char *string_of(const cJSON *it)
{
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* Attributes the spec types as String (or URI-reference/Timestamp, which
 * are strings in JSON) must be strings when present. */
static const char *const string_typed[] = {
    "id",         "source",  "specversion", "type", "datacontenttype",
    "dataschema", "subject", "time",        NULL};
enum { A_ID, A_SOURCE, A_SPECVERSION, A_TYPE, A_NTYPED = 8 };

/* Index in string_typed of a member name, or -1. */
static int typed_index(const char *name)
{
    for (int i = 0; string_typed[i]; i++)
        if (name[0] == string_typed[i][0] && !strcmp(name, string_typed[i]))
            return i;
    return -1;
}

/* Whether the extension attribute `it` of ce came before: a bit of *seen
 * per name hash, and a look back only when its bit is already set (an
 * event has a handful of extensions). */
static int extension_seen(const cJSON *ce, const cJSON *it, uint64_t *seen)
{
    size_t n = strlen(it->string);
    unsigned h = ((unsigned char)it->string[0] * 31u + (unsigned)n +
                  (n ? (unsigned char)it->string[n - 1] * 7u : 0)) &
                 63u;
    if (!(*seen >> h & 1)) {
        *seen |= 1ull << h;
        return 0;
    }
    for (const cJSON *e = ce->child; e != it; e = e->next)
        if (!strcmp(e->string, it->string))
            return 1;
    return 0;
}

/* The JSON event format's data_base64: a string of base64 (or null, as
 * good as absent), which every sink that decodes it (binary modes) then
 * reads the same way. */
static int data_base64_invalid(const cJSON *b64, char *reason,
                               size_t reason_size)
{
    char why[96];
    if (cJSON_IsNull(b64))
        return 0;
    if (!cJSON_IsString(b64))
        return REASON("\"data_base64\" must be a string%s", "");
    if (es_base64_check(b64->valuestring, strlen(b64->valuestring), why,
                        sizeof why))
        return REASON("\"data_base64\" is not base64: %s", why);
    return 0;
}

/*
 * One pass over the members (events are validated twice when a filter
 * rewrites them, and a lookup per attribute was a strcmp per member
 * each), then the checks in their documented order: the first occurrence
 * of a name is the one that counts, as with cJSON's lookups.
 */
int es_decode_validate(cJSON *ce, es_decoded_t *out, char *reason,
                       size_t reason_size)
{
    if (!cJSON_IsObject(ce))
        return REASON("not a CloudEvent: the value is JSON but not an "
                      "object%s",
                      "");
    const cJSON *attr[A_NTYPED] = {NULL}, *it, *bad_name = NULL, *twice = NULL;
    const cJSON *data = NULL, *data_base64 = NULL;
    uint64_t seen = 0; /* a bit per extension name's hash */
    cJSON_ArrayForEach(it, ce)
    {
        int i = typed_index(it->string);
        if (i >= 0) {
            if (!attr[i])
                attr[i] = it;
            else if (!twice)
                twice = it;
            continue;
        }
        if (!strcmp(it->string, "data") || !strcmp(it->string, "data_base64")) {
            const cJSON **slot = it->string[4] ? &data_base64 : &data;
            if (*slot && !twice)
                twice = it;
            *slot = it;
            continue;
        }
        if (!bad_name && !valid_attribute_name(it->string))
            bad_name = it;
        if (!twice && extension_seen(ce, it, &seen))
            twice = it;
    }
    const cJSON *sv = attr[A_SPECVERSION];
    if (!sv)
        return REASON("not a CloudEvent: missing required attribute "
                      "\"specversion\"%s",
                      "");
    if (!cJSON_IsString(sv) || strcmp(sv->valuestring, "1.0") != 0)
        return REASON("unsupported specversion (expected \"1.0\")%s", "");
    for (int i = 0; i < A_NTYPED; i++)
        if (attr[i] && !cJSON_IsString(attr[i]) && !cJSON_IsNull(attr[i]))
            return REASON("attribute \"%s\" must be a string", string_typed[i]);
    static const int required[] = {A_ID, A_SOURCE, A_TYPE};
    for (size_t i = 0; i < 3; i++) {
        const char *v = string_of(attr[required[i]]);
        if (!v || !*v)
            return REASON("missing required attribute \"%s\"",
                          string_typed[required[i]]);
    }
    /* Readers disagree on which of two members counts (cJSON and the
     * host: the first; the Lua filter and most JSON readers: the last). */
    if (twice)
        return REASON("attribute \"%.64s\" appears twice", twice->string);
    if (data && data_base64)
        return REASON("both \"data\" and \"data_base64\" are "
                      "present%s",
                      "");
    if (bad_name)
        return REASON("invalid attribute name \"%.64s\" (only a-z "
                      "and 0-9 are allowed)",
                      bad_name->string);
    if (data_base64 && data_base64_invalid(data_base64, reason, reason_size))
        return -1;
    out->ce = ce;
    out->id = string_of(attr[A_ID]);
    out->source = string_of(attr[A_SOURCE]);
    out->type = string_of(attr[A_TYPE]);
    out->subject = string_of(attr[6]);
    out->time = string_of(attr[7]);
    return 0;
}

static const es_header_t *find_header(const es_header_t *h, size_t n,
                                      const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(h[i].name, name))
            return &h[i];
    return NULL;
}

static int is_json_media_type(const char *ct)
{
    if (!ct)
        return 1; /* the binding says JSON when no content type is given */
    size_t n = strcspn(ct, ";");
    if (n == 16 && !strncmp(ct, "application/json", 16))
        return 1;
    for (size_t i = 0; i + 5 <= n; i++)
        if (!strncmp(ct + i, "+json", 5) && i + 5 == n)
            return 1;
    return !strncmp(ct, "text/json", 9);
}

static char *header_string(const es_header_t *h)
{
    char *s = malloc(h->value_len + 1);
    memcpy(s, h->value ? h->value : "", h->value_len);
    s[h->value_len] = '\0';
    return s;
}

static int utf8_text(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80         ? 1
                     : (c >> 5) == 6  ? 2
                     : (c >> 4) == 14 ? 3
                     : (c >> 3) == 30 ? 4
                                      : 0;
        if (!len || i + len > n || c == 0)
            return 0;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        i += len;
    }
    return 1;
}

/* JSON's whitespace: space, tab, line feed, carriage return (cJSON also
 * skips every other byte up to 0x20, NUL included). */
static inline int is_json_ws(char c)
{
    const uint64_t ws =
        1ull << ' ' | 1ull << '\t' | 1ull << '\n' | 1ull << '\r';
    return (unsigned char)c <= ' ' && (ws >> (unsigned char)c & 1);
}

static int is_hex_digit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

/* What cJSON takes into a number (and hands to strtod). */
static int is_num_char(char c)
{
    return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == 'e' ||
           c == 'E' || c == '.';
}

/* The length of the JSON number (RFC 8259's grammar) at s[0..n), or 0. */
static size_t json_number_len(const char *s, size_t n)
{
    size_t i = s[0] == '-';
    size_t int_start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == int_start || (s[int_start] == '0' && i - int_start > 1))
        return 0; /* no digits, or a leading zero */
    if (i < n && s[i] == '.') {
        size_t frac = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == frac)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        if (++i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t exp = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == exp)
            return 0;
    }
    return i;
}

/* Whether the JSON number s[0..n) is within a double's range (cJSON makes
 * 1e400 infinity, which no JSON writer can write back). */
static int number_is_finite(const char *s, size_t n)
{
    char small[64], *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf)
        return 1; /* cannot tell: cJSON's value stands */
    char dp = localeconv()->decimal_point[0];
    for (size_t i = 0; i < n; i++) /* as cJSON does, for strtod */
        buf[i] = s[i] == '.' ? dp : s[i];
    buf[n] = '\0';
    int finite = isfinite(strtod(buf, NULL));
    if (buf != small)
        free(buf);
    return finite;
}

/*
 * Where text cJSON has parsed, s[0..len), departs from JSON (RFC 8259), or
 * -1; `why` says how. cJSON takes any byte below 0x20 raw in a string and
 * between tokens (a raw NUL then cuts a string short in the tree while the
 * text keeps it), a \u escape with a bad hex digit (as U+0000), numbers
 * strtod reads ("01", "1.", "-.5"), numbers beyond a double (1e400, as
 * infinity) and a byte order mark (after the one skip_bom took). Other
 * readers (the Lua filter's, those behind the sinks) refuse them: the
 * decoder refuses such text first. Its fast parser never takes them (see
 * find_quote, number_end); this check runs on the text it left to cJSON.
 * Since cJSON took the text, its quotes pair up and each run of number
 * characters is one number.
 *
 * It also refuses a \u0000 escape, which is JSON: cJSON's strings end at
 * NUL, so every path that writes the tree back as text (a topic's PII strip,
 * binary-mode data, the handlers' fields) would cut the string there
 * without a word. The Avro decoder refuses U+0000 for the same reason.
 */
#define NUL_ESCAPE_WHY                                                         \
    "\\u0000 (U+0000) in a string, which eventstream cannot carry (its "       \
    "JSON strings end at NUL)"
static long lenient_json_at(const char *s, size_t len, char *why,
                            size_t why_size)
{
    if (len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) { /* cJSON skips it */
        snprintf(why, why_size, "byte order mark inside the value");
        return 0;
    }
    int in = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 && (in || !is_json_ws((char)c))) {
            snprintf(why, why_size, "control character 0x%02x %s", c,
                     in ? "written raw in a string (JSON needs it escaped)"
                        : "outside a string");
            return (long)i;
        }
        if (in && c == '\\' && i + 1 < len && s[i + 1] == 'u') {
            size_t hex = 0;
            while (hex < 4 && i + 2 + hex < len && is_hex_digit(s[i + 2 + hex]))
                hex++;
            if (hex < 4) {
                snprintf(why, why_size, "\\u escape without 4 hex digits");
                return (long)i;
            }
            if (!memcmp(s + i + 2, "0000", 4)) {
                snprintf(why, why_size, "%s", NUL_ESCAPE_WHY);
                return (long)i;
            }
            i += 5;
        } else if (in && c == '\\') {
            i++;
        } else if (c == '"') {
            in = !in;
        } else if (!in && (c == '-' || (c >= '0' && c <= '9'))) {
            size_t n = 0;
            while (i + n < len && is_num_char(s[i + n]))
                n++;
            int grammar = json_number_len(s + i, n) == n;
            if (!grammar || !number_is_finite(s + i, n)) {
                snprintf(why, why_size, "\"%.*s\" is %s",
                         (int)(n < 40 ? n : 40), s + i,
                         grammar ? "out of a double's range"
                                 : "not a JSON number");
                return (long)i;
            }
            i += n - 1;
        }
    }
    return -1;
}

/* Past the whitespace from p to stop. */
static const char *skip_ws(const char *p, const char *stop)
{
    while (p < stop && is_json_ws(*p))
        p++;
    return p;
}

/*
 * What makes a JSON value parsed from text[0..len), ending at end,
 * unacceptable as an event: more than whitespace after it, or (when cJSON
 * parsed it: `lenient`) what lenient_json_at finds. Returns 0, or -1 with
 * the reason, after `prefix` ("" for a record, "filter output: " for a
 * filter's output). Offsets count `base` bytes more: a skipped byte order
 * mark, so that they are offsets into the record as it is in Kafka (and in
 * the dead letter).
 */
static int strict_json_check(const char *text, size_t len, const char *end,
                             size_t base, int lenient, const char *prefix,
                             char *reason, size_t reason_size)
{
    size_t at = (size_t)(end - text);
    if (skip_ws(end, text + len) < text + len)
        return REASON("%strailing data after the JSON value at byte %zu",
                      prefix, base + at);
    char why[128];
    long bad = lenient ? lenient_json_at(text, at, why, sizeof why) : -1;
    if (bad >= 0)
        return REASON("%s%s at byte %zu: %s", prefix,
                      strcmp(why, NUL_ESCAPE_WHY) ? "invalid JSON"
                                                  : "unsupported JSON",
                      base + (size_t)bad, why);
    return 0;
}

/* Past a UTF-8 byte order mark at the start of a value: the bytes skipped.
 * RFC 8259 forbids writing one and lets readers ignore it: the event's text
 * is what follows, so no reader downstream sees it (offsets in reasons
 * still count it). A second one is refused (lenient_json_at). */
static size_t skip_bom(const void **value, size_t *len)
{
    if (*len < 3 || memcmp(*value, "\xEF\xBB\xBF", 3))
        return 0;
    *value = (const char *)*value + 3;
    *len -= 3;
    return 3;
}

/* *text, *text_len: JSON data's own bytes (NULL for other data). */
static int add_binary_data(cJSON *ce, const void *value, size_t len,
                           const char *ct, const char **text, size_t *text_len,
                           char *reason, size_t reason_size)
{
    *text = NULL;
    if (!value)
        return 0;
    if (is_json_media_type(ct)) {
        size_t bom = skip_bom(&value, &len);
        const char *end = NULL;
        cJSON *data = cJSON_ParseWithLengthOpts(value, len, &end, 0);
        if (!data)
            return REASON("binary mode: data is not valid JSON although "
                          "the content type is %s",
                          ct ? ct : "(none, meaning JSON)");
        if (strict_json_check(value, len, end, bom, 1,
                              "binary mode: data: ", reason, reason_size)) {
            cJSON_Delete(data);
            return -1;
        }
        cJSON_AddItemToObject(ce, "data", data);
        *text = value;
        *text_len = (size_t)(end - (const char *)value);
    } else if (!strncmp(ct, "text/", 5) && utf8_text(value, len)) {
        char *s = strndup(value, len);
        cJSON_AddStringToObject(ce, "data", s);
        free(s);
    } else {
        char *b64 = es_base64_encode(value, len);
        if (!b64)
            return REASON("binary mode: data of %zu bytes is too large to "
                          "carry as data_base64",
                          len);
        cJSON_AddStringToObject(ce, "data_base64", b64);
        free(b64);
    }
    return 0;
}

/* The first header that becomes an attribute (ce_*, content-type) and
 * holds a NUL byte, which its cJSON string would end at. */
static const es_header_t *attribute_header_with_nul(const es_header_t *h,
                                                    size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (h[i].value &&
            (!strncmp(h[i].name, "ce_", 3) ||
             !strcmp(h[i].name, "content-type")) &&
            memchr(h[i].value, 0, h[i].value_len))
            return &h[i];
    return NULL;
}

/* The event's text: its attributes printed, then JSON data as its own
 * bytes (the last member), not cJSON's reprint of them: that holds numbers
 * as doubles (12345678901234567891 came out 1.2345678901234567e+19). */
static char *binary_event_text(cJSON *ce, const char *data, size_t n)
{
    if (!data)
        return cJSON_PrintUnformatted(ce);
    cJSON *d = cJSON_DetachItemFromObjectCaseSensitive(ce, "data");
    char *head = cJSON_PrintUnformatted(ce);
    cJSON_AddItemToObject(ce, "data", d);
    if (!head)
        return NULL;
    size_t hl = strlen(head) - 1; /* up to the closing brace */
    char *text = malloc(hl + n + sizeof(",\"data\":}"));
    if (text) {
        memcpy(text, head, hl);
        size_t at = hl;
        if (hl > 1)
            text[at++] = ',';
        memcpy(text + at, "\"data\":", 7);
        memcpy(text + at + 7, data, n);
        memcpy(text + at + 7 + n, "}", 2);
    }
    free(head);
    return text;
}

static int decode_binary(const void *value, size_t len,
                         const es_header_t *headers, size_t nh,
                         es_decoded_t *out, char *reason, size_t reason_size)
{
    const es_header_t *nul = attribute_header_with_nul(headers, nh);
    if (nul)
        return REASON("binary mode: header \"%.64s\" holds a NUL byte, which "
                      "an attribute cannot",
                      nul->name);
    cJSON *ce = cJSON_CreateObject();
    char *ct = NULL;
    int rc = -1;
    for (size_t i = 0; i < nh; i++) {
        const char *name = headers[i].name;
        if (strncmp(name, "ce_", 3) != 0 || !headers[i].value)
            continue;
        if (cJSON_GetObjectItemCaseSensitive(ce, name + 3)) {
            snprintf(reason, reason_size,
                     "binary mode: header \"%s\" appears twice", name);
            goto done;
        }
        char *v = header_string(&headers[i]);
        cJSON_AddStringToObject(ce, name + 3, v);
        free(v);
    }
    const es_header_t *cth = find_header(headers, nh, "content-type");
    if (cth && cth->value) {
        ct = header_string(cth);
        cJSON_AddStringToObject(ce, "datacontenttype", ct);
    }
    const char *data_text;
    size_t data_len = 0;
    if (add_binary_data(ce, value, len, ct, &data_text, &data_len, reason,
                        reason_size))
        goto done;
    if (es_decode_validate(ce, out, reason, reason_size))
        goto done;
    out->owned_json = binary_event_text(ce, data_text, data_len);
    out->json = out->owned_json;
    out->json_len = strlen(out->owned_json);
    ce = NULL;
    rc = 0;
done:
    free(ct);
    cJSON_Delete(ce);
    return rc;
}

/* ------------------------------------------------------ arena JSON parser */

/*
 * Every event is parsed into a cJSON tree (the ABI hands plugins `ce`),
 * most twice when a filter rewrites it. cJSON makes one malloc per value
 * and per string, ~100 for a 1 KB event, and glibc then spends more time
 * coalescing those small blocks than parsing. This parser builds the same
 * tree (same types, strings, numbers, links: cJSON's read-only functions
 * cannot tell the difference) inside a few large blocks freed at once.
 *
 * It accepts a subset of what cJSON_ParseWithLengthOpts accepts and, on
 * that subset, gives exactly its result. Anything else (a \u escape, a
 * byte-order mark, a number cJSON reads leniently, very deep nesting, a
 * syntax error) makes the caller fall back to cJSON itself, so errors and
 * their positions are cJSON's.
 */
#define ARENA_ALIGN 16
#define FAST_MAX_DEPTH 200

typedef struct arena_chunk_s {
    struct arena_chunk_s *next;
    size_t cap, used;
} arena_chunk_t;

/*
 * The index of members a parse builds for plugins that read the text with
 * a reader of their own (es_json_index_t). The members of the objects
 * still open are on `open`; when an object closes, its members move to
 * `done` as one block, so each object's members are contiguous and a
 * nested object's block comes before its parent's. The first members live
 * in the struct itself, on the parser's stack: a typical event never
 * mallocs for its index until the final copy into its arena.
 */
#define IX_INLINE 96
typedef struct ix_vec_s {
    es_json_member_t *v;
    size_t n, cap;
    es_json_member_t inl[IX_INLINE];
} ix_vec_t;

typedef struct ix_build_s {
    ix_vec_t open, done;
    uint32_t child, nchild; /* the object value just parsed: its block */
    int record; /* the value being parsed is reached through objects only */
} ix_build_t;

typedef struct fast_s {
    const char *p, *end;
    arena_chunk_t *head, *cur;
    int shallow; /* the event's object and array members are only checked */
    const char *base; /* where the text starts: index offsets count from it */
    ix_build_t *ix;   /* NULL: no index wanted */
    size_t escapes;   /* in the last string read */
    struct skips_s *skips; /* NULL: nothing of the text is known good */
} fast_t;

/*
 * Parts of a filter's output known to be good JSON: byte copies of the
 * event the filter read, whose parse took them (es_json_copy_t, checked
 * against that event's text and index by accept_copies). The check of the
 * output steps over them. Offsets count from fast_t.base.
 */
typedef struct skip_s {
    uint32_t start, end; /* in the output */
    uint32_t in;         /* where the copy starts in the input */
    int members;         /* a run of members (else one value) */
    int depth;           /* objects around it in the input */
} skip_t;

typedef struct skips_s {
    const skip_t *v;
    size_t n, next; /* next: the first not yet behind the check */
    const es_json_index_t *index;
    const cJSON *in_tree; /* the input's tree, built with index */
} skips_t;

#define CHUNK_HDR                                                              \
    ((sizeof(arena_chunk_t) + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN)

/*
 * Chunks of 4 to 64 KB (sizes a power of two) are kept on free lists for
 * the next event: malloc's path for blocks this size is slow (it sorts
 * and coalesces free blocks first), and the pipeline frees and makes one
 * or two per event. The lists are shared by the pipeline thread and the
 * admin API's dry runs, hence the lock (uncontended in practice).
 */
#define POOL_MIN_SHIFT 12
#define POOL_CLASSES 5
#define POOL_KEEP 256   /* chunks kept per class */
#define POOL_SMALL 2048 /* blocks up to this size are not pooled */

static struct {
    pthread_mutex_t lock;
    arena_chunk_t *free[POOL_CLASSES];
    size_t n[POOL_CLASSES];
} chunk_pool = {PTHREAD_MUTEX_INITIALIZER, {NULL}, {0}};

/* The class whose chunks hold `bytes` (header included), or -1. Small
 * events take an exact block: malloc is quick for those, and a 4 KB
 * chunk would be mostly empty. */
static int pool_class(size_t bytes)
{
    if (bytes <= POOL_SMALL)
        return -1;
    for (int c = 0; c < POOL_CLASSES; c++)
        if (bytes <= (size_t)1 << (POOL_MIN_SHIFT + c))
            return c;
    return -1;
}

static arena_chunk_t *chunk_new(size_t cap)
{
    int cls = pool_class(CHUNK_HDR + cap);
    arena_chunk_t *c = NULL;
    if (cls >= 0) {
        cap = ((size_t)1 << (POOL_MIN_SHIFT + cls)) - CHUNK_HDR;
        pthread_mutex_lock(&chunk_pool.lock);
        if ((c = chunk_pool.free[cls])) {
            chunk_pool.free[cls] = c->next;
            chunk_pool.n[cls]--;
        }
        pthread_mutex_unlock(&chunk_pool.lock);
    }
    if (!c && !(c = malloc(CHUNK_HDR + cap)))
        return NULL;
    c->next = NULL;
    c->cap = cap;
    c->used = 0;
    return c;
}

void es_json_arena_free(void *arena)
{
    for (arena_chunk_t *c = arena, *next; c; c = next) {
        next = c->next;
        int cls = pool_class(CHUNK_HDR + c->cap);
        if (cls >= 0 && CHUNK_HDR + c->cap == (size_t)1
                                                  << (POOL_MIN_SHIFT + cls)) {
            pthread_mutex_lock(&chunk_pool.lock);
            if (chunk_pool.n[cls] < POOL_KEEP) {
                c->next = chunk_pool.free[cls];
                chunk_pool.free[cls] = c;
                chunk_pool.n[cls]++;
                c = NULL;
            }
            pthread_mutex_unlock(&chunk_pool.lock);
        }
        free(c);
    }
}

/* n bytes aligned for a cJSON node (align 8) or 1 for strings; NULL when
 * out of memory. */
static inline void *fast_alloc(fast_t *f, size_t n, size_t align)
{
    arena_chunk_t *c = f->cur;
    size_t at = (c->used + align - 1) & ~(align - 1);
    if (at + n > c->cap) {
        size_t cap = c->cap * 2 > n ? c->cap * 2 : n;
        arena_chunk_t *nc = chunk_new(cap);
        if (!nc)
            return NULL;
        c->next = nc;
        f->cur = c = nc;
        at = 0;
    }
    c->used = at + n;
    return (char *)c + CHUNK_HDR + at;
}

/* Inlined: the parse makes one per value, and a call each was ~10% of it. */
static inline __attribute__((always_inline)) cJSON *fast_node(fast_t *f)
{
    cJSON *n = fast_alloc(f, sizeof *n, _Alignof(cJSON));
    if (n)
        memset(n, 0, sizeof *n);
    return n;
}

/* JSON's whitespace; another byte below 0x20 stops the fast parser (the
 * text goes to cJSON, then lenient_json_at refuses it). */
static void fast_ws(fast_t *f)
{
    while (f->p < f->end && is_json_ws(*f->p))
        f->p++;
}

/* The first '"', '\\' or raw control character (below 0x20) from p on
 * (or end), 8 bytes at a time: strings are most of an event. The lowest
 * flagged byte of each "below n" test is always a real match (false flags
 * only sit above a real one). A control character must be escaped in JSON (RFC
 * 8259): the parsers here stop at it, and the caller's fallback to cJSON,
 * which takes it, then refuses the text (lenient_json_at). */
/* The bytes find_quote stops at: one load per byte of a short string. */
static const unsigned char string_stop[256] = {
    [0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1};

static const char *find_quote(const char *p, const char *end)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    for (; end - p >= 8; p += 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        /* x ^ 0x02 maps '"' to 0x20 and the controls onto themselves:
         * one "below 0x21" test finds both, at the old cost of '"'. */
        uint64_t q = x ^ (ones * 0x02), b = x ^ (ones * '\\');
        uint64_t hit = (((q - ones * 0x21) & ~q) | ((b - ones) & ~b)) & highs;
        if (hit)
            return p + (__builtin_ctzll(hit) >> 3);
    }
#endif
    while (p < end && !string_stop[(unsigned char)*p])
        p++;
    return p;
}

/* A string at f->p (the opening quote), without raw control characters
 * (see find_quote); \u escapes are left to cJSON. */
static char *fast_string(fast_t *f)
{
    const char *s = f->p + 1, *q = find_quote(s, f->end);
    size_t escapes = 0;
    while (q < f->end && *q == '\\') {
        if (q + 1 >= f->end || q[1] == 'u')
            return NULL;
        escapes++;
        q = find_quote(q + 2, f->end);
    }
    if (q >= f->end || *q != '"')
        return NULL;
    f->escapes = escapes;
    size_t n = (size_t)(q - s) - escapes;
    char *out = fast_alloc(f, n + 1, 1), *o = out;
    if (!out)
        return NULL;
    if (!escapes) {
        memcpy(out, s, n);
        o += n;
    } else {
        for (const char *r = s; r < q; r++) {
            if (*r != '\\') {
                *o++ = *r;
                continue;
            }
            switch (*++r) {
            case 'b':
                *o++ = '\b';
                break;
            case 'f':
                *o++ = '\f';
                break;
            case 'n':
                *o++ = '\n';
                break;
            case 'r':
                *o++ = '\r';
                break;
            case 't':
                *o++ = '\t';
                break;
            case '"':
            case '\\':
            case '/':
                *o++ = *r;
                break;
            default:
                return NULL;
            }
        }
    }
    *o = '\0';
    f->p = q + 1;
    return out;
}

/* The end of a strict JSON number at s not followed by another character
 * cJSON would have taken into it (then strtod reads what cJSON's strtod
 * reads), with its digit counts; NULL for anything else. */
static inline __attribute__((always_inline)) const char *
number_end(const char *s, const char *end, int *digits, int *frac, int *exp)
{
    const char *p = s;
    *digits = *frac = *exp = 0;
    if (p < end && *p == '-')
        p++;
    if (p >= end || *p < '0' || *p > '9')
        return NULL;
    if (*p == '0')
        p++, *digits = 1;
    else
        for (; p < end && *p >= '0' && *p <= '9'; p++)
            ++*digits;
    if (p < end && *p == '.') {
        if (++p >= end || *p < '0' || *p > '9')
            return NULL;
        for (; p < end && *p >= '0' && *p <= '9'; p++)
            ++*frac;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *exp = 1;
        int negative = 0, e = 0;
        if (++p < end && (*p == '+' || *p == '-'))
            negative = *p++ == '-';
        if (p >= end || *p < '0' || *p > '9')
            return NULL;
        for (; p < end && *p >= '0' && *p <= '9'; p++)
            e = e < 10000 ? e * 10 + (*p - '0') : e;
        /* Near or past a double's largest (1e400 is none): cJSON, then
         * lenient_json_at, which tells exactly. */
        if (!negative && e + *digits > 308)
            return NULL;
    }
    if ((p < end && is_num_char(*p)) || p - s > 63)
        return NULL;
    return p;
}

static int fast_number(fast_t *f, cJSON *item)
{
    int digits, frac, exp;
    const char *s = f->p, *p = number_end(s, f->end, &digits, &frac, &exp);
    if (!p)
        return -1;
    size_t n = (size_t)(p - s);
    double d;
    /* Up to 15 digits and no exponent: m / 10^k with m and 10^k exact
     * doubles is the correctly rounded value, which strtod gives too. */
    static const double pow10[] = {1,    1e1,  1e2,  1e3, 1e4,  1e5,
                                   1e6,  1e7,  1e8,  1e9, 1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15};
    if (!exp && digits + frac <= 15) {
        int64_t v = 0;
        for (const char *q = *s == '-' ? s + 1 : s; q < p; q++)
            if (*q != '.')
                v = v * 10 + (*q - '0');
        d = (double)v / pow10[frac];
        if (*s == '-')
            d = -d;
    } else {
        char buf[64], dp = localeconv()->decimal_point[0];
        memcpy(buf, s, n);
        buf[n] = '\0';
        for (size_t i = 0; i < n; i++) /* as cJSON does, for strtod */
            if (buf[i] == '.')
                buf[i] = dp;
        char *e;
        d = strtod(buf, &e);
        if (e != buf + n)
            return -1;
    }
    item->type = cJSON_Number;
    item->valuedouble = d;
    item->valueint = d >= INT_MAX           ? INT_MAX
                     : d <= (double)INT_MIN ? INT_MIN
                                            : (int)d;
    f->p = p;
    return 0;
}

/* ------------------------------------------------- checking, not building */

static const char *check_ws(const char *p, const char *end)
{
    while (p < end && is_json_ws(*p))
        p++;
    return p;
}

/* Past the string at p (its opening quote), or NULL: the strings the
 * builder takes (no \u escape, which cJSON checks for surrogates). */
static const char *check_string(const char *p, const char *end)
{
    const char *q = find_quote(p + 1, end);
    while (q < end && *q == '\\') {
        if (q + 1 >= end || !q[1] || !strchr("bfnrt\"\\/", q[1]))
            return NULL;
        q = find_quote(q + 2, end);
    }
    return q < end && *q == '"' ? q + 1 : NULL;
}

/* Past the scalar at p, or NULL. */
static const char *check_scalar(const char *p, const char *end)
{
    int digits, frac, exp;
    switch (*p) {
    case '"':
        return check_string(p, end);
    case 't':
        return end - p >= 4 && !memcmp(p, "true", 4) ? p + 4 : NULL;
    case 'f':
        return end - p >= 5 && !memcmp(p, "false", 5) ? p + 5 : NULL;
    case 'n':
        return end - p >= 4 && !memcmp(p, "null", 4) ? p + 4 : NULL;
    default:
        return number_end(p, end, &digits, &frac, &exp);
    }
}

/*
 * The member of the index whose key or value starts at `off` (*is_key says
 * which), with its object's members (`block`, `nblock`) and how many
 * objects deep they are; NULL when no member starts there. Each object's
 * members are in text order, so a binary search per level finds it.
 */
static const es_json_member_t *ix_find(const es_json_index_t *ix, uint32_t off,
                                       const es_json_member_t **block,
                                       uint32_t *nblock, int *depth,
                                       int *is_key)
{
    uint32_t first = ix->root, n = ix->nroot;
    for (int d = 1; first && n; d++) {
        const es_json_member_t *b = ix->members + first - 1;
        uint32_t lo = 0, hi = n;
        while (lo < hi) { /* the first member whose key starts after off */
            uint32_t mid = lo + (hi - lo) / 2;
            if (b[mid].key_start <= off)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == 0)
            return NULL;
        const es_json_member_t *m = &b[lo - 1];
        if (m->key_start == off || m->value_start == off) {
            *block = b;
            *nblock = n;
            *depth = d;
            *is_key = m->key_start == off;
            return m;
        }
        if (off < m->value_start || off >= m->value_end)
            return NULL;
        first = m->child;
        n = m->nchild;
    }
    return NULL;
}

/* The input's members or value the copy at [in, in + len) is, as a skip
 * (without its output offsets); -1 when it is neither. */
static int copy_shape(const es_json_index_t *ix, uint32_t in, uint32_t len,
                      skip_t *k)
{
    const es_json_member_t *block, *m;
    uint32_t nblock, end = in + len;
    if (!(m = ix_find(ix, in, &block, &nblock, &k->depth, &k->members)))
        return -1;
    if (!k->members)
        return m->value_end == end ? 0 : -1;
    uint32_t lo = (uint32_t)(m - block), hi = nblock;
    while (lo < hi) { /* value ends grow through the block */
        uint32_t mid = lo + (hi - lo) / 2;
        if (block[mid].value_end < end)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < nblock && block[lo].value_end == end ? 0 : -1;
}

/* The copies that are what they say (see es_json_copy_t), in output order,
 * into v; the rest are left out, so their bytes are checked. */
static size_t accept_copies(const es_output_copies_t *c, const char *out,
                            size_t out_len, skip_t *v)
{
    size_t n = 0;
    uint64_t behind = 0; /* copies must not overlap */
    for (size_t i = 0; i < c->n; i++) {
        const es_json_copy_t *k = &c->copies[i];
        uint64_t out_end = (uint64_t)k->out_start + k->len;
        if (k->len == 0 || k->out_start < behind || out_end > out_len ||
            (uint64_t)k->in_start + k->len > c->in_len ||
            memcmp(out + k->out_start, c->in + k->in_start, k->len) != 0 ||
            copy_shape(c->index, k->in_start, k->len, &v[n]) != 0)
            continue;
        v[n].start = k->out_start;
        v[n].end = (uint32_t)out_end;
        v[n].in = k->in_start;
        n++;
        behind = out_end;
    }
    return n;
}

/* The first skip that does not end at or before `off`. */
static const skip_t *skip_from(skips_t *sk, uint32_t off)
{
    while (sk->next < sk->n && sk->v[sk->next].end <= off)
        sk->next++;
    return sk->next < sk->n ? &sk->v[sk->next] : NULL;
}

/* Past the skip starting at p when it is what the check expects there (a
 * run of members or a value) and no deeper in the output than it was in
 * the input (so the builder's depth limit still holds); else NULL. */
static const char *skip_at(fast_t *f, const char *p, int members, int depth)
{
    const skip_t *k = skip_from(f->skips, (uint32_t)(p - f->base));
    if (!k || k->start != (uint32_t)(p - f->base) || k->members != members ||
        depth > k->depth)
        return NULL;
    f->skips->next++;
    return f->base + k->end;
}

/* Past the value at p, a top-level member's, when a skip holds it whole:
 * the input's index says where that value ends. */
static const char *skip_value_within(fast_t *f, const char *p)
{
    uint32_t off = (uint32_t)(p - f->base);
    const skip_t *k = skip_from(f->skips, off);
    if (!k || k->start > off)
        return NULL;
    const es_json_member_t *m, *block;
    uint32_t nblock;
    int depth, is_key;
    uint32_t in = k->in + (off - k->start);
    if (!(m = ix_find(f->skips->index, in, &block, &nblock, &depth, &is_key)) ||
        is_key || m->value_end - in > k->end - off)
        return NULL;
    return p + (m->value_end - in);
}

/*
 * Past the object or array at p, checked with the builder's grammar (a
 * subset of cJSON's) but not built: a filter's output is checked whole
 * while only its attributes are built. One loop and a stack of the closing
 * brackets expected; NULL when the builder would not take it (cJSON then
 * decides). What f->skips holds is stepped over.
 */
static const char *fast_check(fast_t *f, const char *p)
{
    const char *end = f->end, *s;
    char close[FAST_MAX_DEPTH];
    int top = 0;
    if (f->skips && (s = skip_value_within(f, p)))
        return s;
    for (;;) { /* p: where a value starts */
        p = check_ws(p, end);
        if (p >= end)
            return NULL;
        if (f->skips && (s = skip_at(f, p, 0, top + 1))) {
            p = s;
        } else if (*p == '{' || *p == '[') {
            if (top == FAST_MAX_DEPTH)
                return NULL;
            close[top++] = *p == '{' ? '}' : ']';
            p = check_ws(p + 1, end);
            if (p < end && *p == close[top - 1]) {
                top--;
                p++;
            } else if (close[top - 1] == ']') {
                continue;
            } else {
                goto key;
            }
        } else if (!(p = check_scalar(p, end))) {
            return NULL;
        }
    after_value:
        for (;;) { /* a comma, or close what it was in */
            if (top == 0)
                return p;
            p = check_ws(p, end);
            if (p < end && *p == close[top - 1]) {
                top--;
                p++;
                continue;
            }
            if (p >= end || *p != ',')
                return NULL;
            p = check_ws(p + 1, end);
            if (close[top - 1] == ']')
                break;
            goto key;
        }
        continue;
    key: /* p: where an object member starts */
        if (f->skips && (s = skip_at(f, p, 1, top + 1))) {
            p = s;
            goto after_value;
        }
        if (p >= end || *p != '"' || !(p = check_string(p, end)))
            return NULL;
        p = check_ws(p, end);
        if (p >= end || *p != ':')
            return NULL;
        p++;
    }
}

static int fast_value(fast_t *f, cJSON *item, int depth);

static void ix_vec_init(ix_vec_t *v)
{
    v->v = v->inl;
    v->n = 0;
    v->cap = IX_INLINE;
}

static void ix_vec_free(ix_vec_t *v)
{
    if (v->v != v->inl)
        free(v->v);
}

static int ix_vec_grow(ix_vec_t *v, size_t extra)
{
    size_t cap = v->cap * 2 > v->n + extra ? v->cap * 2 : v->n + extra;
    es_json_member_t *nv = v->v == v->inl ? malloc(cap * sizeof *nv)
                                          : realloc(v->v, cap * sizeof *nv);
    if (!nv)
        return -1;
    if (v->v == v->inl)
        memcpy(nv, v->inl, v->n * sizeof *nv);
    v->v = nv;
    v->cap = cap;
    return 0;
}

static inline int ix_vec_reserve(ix_vec_t *v, size_t extra)
{
    return v->cap - v->n >= extra ? 0 : ix_vec_grow(v, extra);
}

/* Notes member [ks, ke): [vs, f->p) of the object being parsed; its key
 * had `escapes`. */
static inline int ix_member(fast_t *f, const char *ks, const char *ke,
                            size_t escapes, const char *vs)
{
    ix_build_t *ix = f->ix;
    if (ix_vec_reserve(&ix->open, 1))
        return -1;
    ix->open.v[ix->open.n++] = (es_json_member_t){
        (uint32_t)(ks - f->base),
        (uint32_t)(ke - f->base),
        (uint32_t)(vs - f->base),
        (uint32_t)(f->p - f->base),
        ix->child,
        ix->nchild,
        escapes ? ES_JSON_KEY_ESCAPED : 0,
    };
    return 0;
}

/* Moves the members of the object that just closed (open[base..]) to
 * done as its block. */
static int ix_close_object(ix_build_t *ix, size_t base)
{
    size_t n = ix->open.n - base;
    if (ix_vec_reserve(&ix->done, n))
        return -1;
    memcpy(ix->done.v + ix->done.n, ix->open.v + base, n * sizeof *ix->open.v);
    ix->child = (uint32_t)ix->done.n + 1;
    ix->nchild = (uint32_t)n;
    ix->done.n += n;
    ix->open.n = base;
    return 0;
}

static char *arena_strdup(fast_t *f, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = fast_alloc(f, n, 1);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* The node the shallow parse makes for the input's top-level member `in`
 * (an object or array value is a Raw node with no text), in f's arena. */
static cJSON *clone_member(fast_t *f, const cJSON *in)
{
    cJSON *c = fast_node(f);
    if (!c || !(c->string = arena_strdup(f, in->string)))
        return NULL;
    switch (in->type & 0xFF) {
    case cJSON_Object:
    case cJSON_Array:
        c->type = cJSON_Raw;
        break;
    case cJSON_String:
        c->type = cJSON_String;
        if (!(c->valuestring = arena_strdup(f, in->valuestring)))
            return NULL;
        break;
    default:
        c->type = in->type;
        c->valueint = in->valueint;
        c->valuedouble = in->valuedouble;
    }
    return c;
}

/*
 * A filter's output usually starts with the event's attributes copied as
 * they came (a run of the input's top-level members): when a copy starts
 * at f->p, their nodes are cloned from the input's tree, which the parse
 * that checked those bytes built, instead of being parsed again. Appends
 * them to head/last and moves past the copy; 0 when no such copy starts
 * here, -1 when out of memory.
 */
static int clone_copied_members(fast_t *f, cJSON **head, cJSON **last)
{
    uint32_t off = (uint32_t)(f->p - f->base);
    const skip_t *k = skip_from(f->skips, off);
    if (!k || k->start != off || !k->members || k->depth != 1)
        return 0; /* not a run of the input's own top-level members */
    const es_json_index_t *ix = f->skips->index;
    const es_json_member_t *b = ix->members + ix->root - 1;
    uint32_t j = 0, end = k->in + (k->end - k->start), n = 0;
    const cJSON *it = f->skips->in_tree->child;
    while (j < ix->nroot && b[j].key_start < k->in) { /* the tree's order */
        j++;
        it = it ? it->next : NULL;
    }
    for (const cJSON *t = it; j + n < ix->nroot && b[j + n].value_end <= end;
         n++, t = t->next)
        if (!t) /* tree and index disagree: parse the bytes instead */
            return 0;
    if (!n || b[j].key_start != k->in || b[j + n - 1].value_end != end)
        return 0;
    for (; n; n--, it = it->next) {
        cJSON *c = clone_member(f, it);
        if (!c)
            return -1;
        if (*last) {
            (*last)->next = c;
            c->prev = *last;
        } else {
            *head = c;
        }
        *last = c;
    }
    f->skips->next++;
    f->p = f->base + k->end;
    return 1;
}

/* The members of an array or object, f->p after the opening bracket;
 * with `indexing` (a constant), noted in f->ix as well; with `cloning`
 * (a constant: a filter's output whose copies come with the input's tree),
 * copied runs of the input's top-level members are cloned. */
static inline __attribute__((always_inline)) int members(fast_t *f, cJSON *item,
                                                         int object, int depth,
                                                         const int indexing,
                                                         const int cloning)
{
    char close = object ? '}' : ']';
    cJSON *head = NULL, *last = NULL;
    ix_build_t *ix = f->ix;
    /* Objects inside arrays are not indexed (see es_json_index_t). */
    int outer_record = indexing && ix->record;
    int record = outer_record && object;
    size_t base = record ? ix->open.n : 0;
    if (indexing && !object)
        ix->record = 0;
    fast_ws(f);
    if (f->p < f->end && *f->p == close)
        goto done;
    for (;;) {
        if (cloning) {
            fast_ws(f);
            int cloned = clone_copied_members(f, &head, &last);
            if (cloned < 0)
                return -1;
            if (cloned) {
                fast_ws(f);
                if (f->p < f->end && *f->p == ',') {
                    f->p++;
                    fast_ws(f);
                    continue;
                }
                break;
            }
        }
        cJSON *c = fast_node(f);
        if (!c)
            return -1;
        if (last) {
            last->next = c;
            c->prev = last;
        } else {
            head = c;
        }
        last = c;
        fast_ws(f);
        const char *ks = f->p, *ke = NULL;
        size_t escapes = 0;
        if (object) {
            if (f->p >= f->end || *f->p != '"' || !(c->string = fast_string(f)))
                return -1;
            ke = f->p;
            escapes = f->escapes;
            fast_ws(f);
            if (f->p >= f->end || *f->p != ':')
                return -1;
            f->p++;
            fast_ws(f);
        }
        const char *vs = f->p;
        if (record)
            ix->child = ix->nchild = 0;
        if (depth == 0 && f->shallow && f->p < f->end &&
            (*f->p == '{' || *f->p == '[')) {
            c->type = cJSON_Raw; /* data, say: checked, built on demand */
            if (!(f->p = fast_check(f, f->p)))
                return -1;
        } else if (fast_value(f, c, depth + 1)) {
            return -1;
        }
        if (record && ix_member(f, ks, ke, escapes, vs))
            return -1;
        fast_ws(f);
        if (f->p < f->end && *f->p == ',') {
            f->p++;
            continue;
        }
        break;
    }
    if (f->p >= f->end || *f->p != close)
        return -1;
done:
    f->p++;
    if (head)
        head->prev = last;
    item->type = object ? cJSON_Object : cJSON_Array;
    item->child = head;
    if (indexing) {
        ix->record = outer_record;
        ix->child = ix->nchild = 0;
        if (record && ix_close_object(ix, base))
            return -1;
    }
    return 0;
}

static int fast_members(fast_t *f, cJSON *item, int object, int depth)
{
    return members(f, item, object, depth, 0, 0);
}

static int fast_members_indexed(fast_t *f, cJSON *item, int object, int depth)
{
    return members(f, item, object, depth, 1, 0);
}

/* A filter's output whose copies come with the input's tree. */
static int fast_members_cloning(fast_t *f, cJSON *item, int object, int depth)
{
    return members(f, item, object, depth, 0, 1);
}

static int fast_literal(fast_t *f, const char *word, size_t n)
{
    if ((size_t)(f->end - f->p) < n || memcmp(f->p, word, n) != 0)
        return 0;
    f->p += n;
    return 1;
}

static int fast_value(fast_t *f, cJSON *item, int depth)
{
    if (f->p >= f->end || depth > FAST_MAX_DEPTH)
        return -1;
    switch (*f->p) {
    case '{':
    case '[':
        f->p++;
        return (f->ix ? fast_members_indexed
                      : fast_members)(f, item, f->p[-1] == '{', depth);
    case '"':
        item->type = cJSON_String;
        return (item->valuestring = fast_string(f)) ? 0 : -1;
    case 'n':
        item->type = cJSON_NULL;
        return fast_literal(f, "null", 4) ? 0 : -1;
    case 'f':
        item->type = cJSON_False;
        return fast_literal(f, "false", 5) ? 0 : -1;
    case 't':
        item->type = cJSON_True;
        item->valueint = 1;
        return fast_literal(f, "true", 4) ? 0 : -1;
    default:
        return fast_number(f, item);
    }
}

/* Copies the finished index into the arena; *index NULL when the event is
 * not an object. */
static int ix_finish(fast_t *f, const cJSON *root, es_json_index_t **index)
{
    ix_build_t *ix = f->ix;
    *index = NULL;
    if (!cJSON_IsObject(root))
        return 0;
    es_json_index_t *x = fast_alloc(f, sizeof *x, _Alignof(es_json_index_t));
    es_json_member_t *m =
        fast_alloc(f, ix->done.n * sizeof *m + 1, _Alignof(es_json_member_t));
    if (!x || !m)
        return -1;
    memcpy(m, ix->done.v, ix->done.n * sizeof *m);
    *x = (es_json_index_t){m, (uint32_t)ix->done.n, ix->child, ix->nchild};
    *index = x;
    return 0;
}

/* The copies of the output at f->base that it may step over; NULL when
 * none holds. */
static skips_t *make_skips(fast_t *f, const es_output_copies_t *copies,
                           skips_t *sk)
{
    skip_t *v = fast_alloc(f, copies->n * sizeof *v, _Alignof(skip_t));
    if (!v)
        return NULL;
    size_t out_len = (size_t)(f->end - f->base);
    *sk = (skips_t){v, accept_copies(copies, f->base, out_len, v), 0,
                    copies->index, copies->in_tree};
    return sk->n ? sk : NULL;
}

/* The fast parse; with `copy`, the text is first copied into the arena
 * (NUL-terminated) and parsed from there, *copy set to it. With `index`,
 * *index is the index of the event's members (in the arena). */
static cJSON *fast_parse(const char *json, size_t len, const char **end,
                         void **arena, const char **copy, int shallow,
                         es_json_index_t **index,
                         const es_output_copies_t *copies)
{
    if (len == 0 || (unsigned char)json[0] == 0xEF) /* a BOM: cJSON's */
        return NULL;
    size_t text = copy ? len + 1 : 0;
    ix_build_t ix;
    if (index) {
        ix_vec_init(&ix.open);
        ix_vec_init(&ix.done);
        ix.child = ix.nchild = 0;
        ix.record = 1;
    }
    /* Nodes and strings of a typical event fit in the first chunk; with
     * the index, its members (28 bytes each) as well. */
    fast_t f = {json,
                json + len,
                NULL,
                NULL,
                shallow,
                json,
                index && len <= UINT32_MAX ? &ix : NULL,
                0,
                NULL};
    if (!(f.head = f.cur = chunk_new(text + (f.ix ? 6 : 4) * len + 128)))
        return NULL;
    if (copy) {
        char *c = fast_alloc(&f, text, 1);
        memcpy(c, json, len);
        c[len] = '\0';
        f.p = f.base = *copy = c;
        f.end = c + len;
    }
    skips_t skips;
    if (shallow && copies && copies->n && copies->index && len <= UINT32_MAX)
        f.skips = make_skips(&f, copies, &skips);
    cJSON *root = fast_node(&f);
    fast_ws(&f);
    int failed;
    if (root && f.skips && f.skips->in_tree && f.p < f.end && *f.p == '{') {
        f.p++;
        failed = fast_members_cloning(&f, root, 1, 0) != 0;
    } else {
        failed = !root || fast_value(&f, root, 0) != 0;
    }
    if (!failed && index)
        failed = f.ix ? ix_finish(&f, root, index) : (*index = NULL, 0);
    if (f.ix) {
        ix_vec_free(&ix.open);
        ix_vec_free(&ix.done);
    }
    if (failed) {
        es_json_arena_free(f.head);
        return NULL;
    }
    if (end)
        *end = copy ? json + (f.p - *copy) : f.p;
    *arena = f.head;
    return root;
}

cJSON *es_json_parse(const char *json, size_t len, const char **end,
                     void **arena)
{
    *arena = NULL;
    cJSON *ce = fast_parse(json, len, end, arena, NULL, 0, NULL, NULL);
    return ce ? ce : cJSON_ParseWithLengthOpts(json, len, end, 0);
}

int es_decode_output(const char *json, size_t len, es_decoded_t *out,
                     char *reason, size_t reason_size)
{
    return es_decode_output_copies(json, len, NULL, out, reason, reason_size);
}

int es_decode_output_copies(const char *json, size_t len,
                            const es_output_copies_t *copies, es_decoded_t *out,
                            char *reason, size_t reason_size)
{
    memset(out, 0, sizeof *out);
    const char *copy = NULL, *end = NULL;
    cJSON *ce =
        fast_parse(json, len, &end, &out->arena, &copy, 1, NULL, copies);
    out->shallow = ce != NULL;
    if (!ce) {
        ce = cJSON_ParseWithLengthOpts(json, len, &end, 0);
        /* not strndup: the text may hold a NUL, which the check refuses */
        if (ce && (out->owned_json = malloc(len + 1))) {
            memcpy(out->owned_json, json, len);
            out->owned_json[len] = '\0';
        }
        copy = out->owned_json;
    }
    if (!ce || !copy) {
        snprintf(reason, reason_size, "%s",
                 ce ? "filter output: out of memory"
                    : "filter output is not valid JSON");
        cJSON_Delete(ce);
        return -1;
    }
    if (strict_json_check(json, len, end, 0, !out->shallow,
                          "filter output: ", reason, reason_size)) {
        es_json_tree_free(ce, out->arena);
        free(out->owned_json);
        memset(out, 0, sizeof *out);
        return -1;
    }
    if (es_decode_validate(ce, out, reason, reason_size)) {
        es_json_tree_free(ce, out->arena);
        free(out->owned_json);
        memset(out, 0, sizeof *out);
        return -1;
    }
    out->json = copy;
    out->json_len = len;
    return 0;
}

void es_decode_full(es_decoded_t *d)
{
    if (!d->shallow)
        return;
    es_decoded_t full = *d;
    char reason[256];
    /* The shallow parse checked this text with the same grammar, or took
     * a part of it as a byte copy of an input this parser built whole at
     * no less depth: only a lack of memory can make this fail. */
    cJSON *ce = fast_parse(d->json, d->json_len, NULL, &full.tree_arena, NULL,
                           0, NULL, NULL);
    if (!ce || es_decode_validate(ce, &full, reason, sizeof reason) != 0) {
        fprintf(stderr, "eventstreamd: out of memory parsing an event\n");
        abort();
    }
    full.shallow = 0;
    *d = full; /* the shallow tree stays in d->arena, with the text */
}

int es_decode_record(const void *value, size_t len, const es_header_t *headers,
                     size_t header_count, size_t max_bytes, int index,
                     es_decoded_t *out, char *reason, size_t reason_size)
{
    memset(out, 0, sizeof *out);
    if (len > max_bytes) {
        snprintf(reason, reason_size,
                 "event is %zu bytes, over the limit of %zu", len, max_bytes);
        return -1;
    }
    if (find_header(headers, header_count, "ce_specversion"))
        return decode_binary(value, len, headers, header_count, out, reason,
                             reason_size);
    size_t bom = skip_bom(&value, &len);
    if (!value || len == 0)
        return REASON("empty value and no ce_specversion header: not a "
                      "CloudEvent%s",
                      "");
    const char *end = NULL;
    void *arena = NULL;
    es_json_index_t *ix = NULL;
    cJSON *ce =
        fast_parse(value, len, &end, &arena, NULL, 0, index ? &ix : NULL, NULL);
    int lenient = !ce;
    if (lenient)
        ce = cJSON_ParseWithLengthOpts(value, len, &end, 0);
    if (!ce) {
        size_t at = end ? (size_t)(end - (const char *)value) : 0;
        snprintf(reason, reason_size, "invalid JSON at byte %zu", bom + at);
        return -1;
    }
    if (strict_json_check(value, len, end, bom, lenient, "", reason,
                          reason_size)) {
        es_json_tree_free(ce, arena);
        return -1;
    }
    if (es_decode_validate(ce, out, reason, reason_size)) {
        es_json_tree_free(ce, arena);
        return -1;
    }
    out->arena = arena;
    out->index = ix;
    out->json = value;
    out->json_len = len;
    return 0;
}

void es_json_tree_free(cJSON *ce, void *arena)
{
    if (arena)
        es_json_arena_free(arena);
    else
        cJSON_Delete(ce);
}

void es_decoded_clear(es_decoded_t *d)
{
    if (d->tree_arena)
        es_json_arena_free(d->tree_arena);
    es_json_tree_free(d->ce, d->arena);
    free(d->owned_json);
    memset(d, 0, sizeof *d);
}

static char *scalar_string(const cJSON *it)
{
    char buf[64];
    if (cJSON_IsString(it))
        return it->valuestring[0] ? strdup(it->valuestring) : NULL;
    if (cJSON_IsNumber(it)) {
        if (es_json_is_int(it))
            snprintf(buf, sizeof buf, "%lld", (long long)it->valuedouble);
        else
            snprintf(buf, sizeof buf, "%.17g", it->valuedouble);
        return strdup(buf);
    }
    return NULL;
}

/* The member `name` of obj, or NULL when there is none or more than one
 * (*twice set): readers differ on which of two counts (cJSON's lookups:
 * the first; the Lua filter and most JSON readers: the last), so a tenant
 * found through a repeated key would be a guess. */
static const cJSON *unique_member(const cJSON *obj, const char *name,
                                  size_t len, int *twice)
{
    const cJSON *found = NULL;
    for (const cJSON *it = obj->child; it; it = it->next)
        if (it->string && !strncmp(it->string, name, len) && !it->string[len]) {
            if (found) {
                *twice = 1;
                return NULL;
            }
            found = it;
        }
    return found;
}

/* The node at the dotted path spec under ce, or NULL (*twice set when a
 * key on the way is repeated). */
static const cJSON *lookup_path(const cJSON *ce, const char *spec, int *twice)
{
    const cJSON *it = ce;
    const char *p = spec;
    *twice = 0;
    while (it && *p) {
        size_t n = strcspn(p, ".");
        it = cJSON_IsObject(it) ? unique_member(it, p, n, twice) : NULL;
        p += n;
        if (*p == '.')
            p++;
    }
    return it != ce ? it : NULL;
}

int es_decode_lookup_repeated(const cJSON *ce, const char *spec)
{
    int twice = 0;
    if (strcmp(spec, "key"))
        lookup_path(ce, spec, &twice);
    return twice;
}

char *es_decode_lookup(const cJSON *ce, const void *key, size_t key_len,
                       const char *spec)
{
    if (!strcmp(spec, "key"))
        return key && key_len ? strndup(key, key_len) : NULL;
    int twice;
    const cJSON *it = lookup_path(ce, spec, &twice);
    return it ? scalar_string(it) : NULL;
}
