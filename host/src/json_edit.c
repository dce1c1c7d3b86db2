/*
 * Members removed from JSON text by editing the text, not by printing a
 * tree: cJSON keeps every number as a double and prints it from there, so
 * a reprint turns 12345678901234567891 into 1.2345678901234567e+19 and 1.0
 * into 1. Everything not removed is copied as the bytes it came as.
 */
#include <stdlib.h>
#include <string.h>

#include "internal/es_json_edit.h"

typedef struct out_s {
    char *buf;
    size_t len, cap;
    int failed;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = (o->cap ? o->cap : 256);
        while (cap < o->len + n + 1)
            cap *= 2;
        char *b = realloc(o->buf, cap);
        if (!b) {
            o->failed = 1;
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at the opening quote: past the closing one. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end && *p != '"'; p++)
        if (*p == '\\')
            p++;
    return p < end ? p + 1 : end;
}

/* p at a value: past it. Brackets are counted outside strings. */
static const char *skip_value(const char *p, const char *end)
{
    if (*p == '"')
        return skip_string(p, end);
    if (*p != '{' && *p != '[') {
        while (p < end && !strchr(",]} \t\r\n", *p))
            p++;
        return p;
    }
    int depth = 0;
    for (; p < end; p++) {
        if (*p == '"') {
            p = skip_string(p, end) - 1;
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if ((*p == '}' || *p == ']') && --depth == 0) {
            return p + 1;
        }
    }
    return end;
}

static int hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16)
            return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One escape at s (after the backslash) decoded into out: its length, and
 * *used the bytes it took. */
static size_t unescape(const char *s, const char *e, char *out, size_t *used)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *m = s < e ? strchr(from, *s) : NULL;
    unsigned cp, lo;
    *used = 1;
    if (m && *s) {
        out[0] = to[m - from];
        return 1;
    }
    if (e - s < 5 || *s != 'u' || hex4(s + 1, &cp))
        return 0;
    *used = 5;
    if (cp >= 0xD800 && cp < 0xDC00 && e - s >= 11 && s[5] == '\\' &&
        s[6] == 'u' && !hex4(s + 7, &lo) && lo >= 0xDC00 && lo < 0xE000) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        *used = 11;
    }
    return put_utf8(out, cp);
}

/* Whether the key text k[0..kn) (inside its quotes, escapes and all)
 * names exactly seg[0..sn). */
static int key_is(const char *k, size_t kn, const char *seg, size_t sn)
{
    if (!memchr(k, '\\', kn))
        return kn == sn && memcmp(k, seg, sn) == 0;
    const char *e = k + kn;
    size_t at = 0;
    while (k < e) {
        char one[4];
        size_t n = 1, used = 1;
        one[0] = *k;
        if (*k == '\\') {
            n = unescape(k + 1, e, one, &used);
            used++; /* the backslash */
        }
        if (n == 0 || at + n > sn || memcmp(seg + at, one, n) != 0)
            return 0;
        at += n;
        k += used;
    }
    return at == sn;
}

/* What the paths say of one member: removed, edited below (its object's
 * paths in sub[0..*nsub)) or copied. */
static int member_fate(const char *k, size_t kn, const char *const *paths,
                       size_t n, const char **sub, size_t *nsub)
{
    int removed = 0;
    *nsub = 0;
    for (size_t i = 0; i < n; i++) {
        size_t sl = strcspn(paths[i], ".");
        if (!key_is(k, kn, paths[i], sl))
            continue;
        if (paths[i][sl] == '\0')
            removed = 1;
        else
            sub[(*nsub)++] = paths[i] + sl + 1;
    }
    return removed;
}

static const char *copy_object(out_t *o, const char *p, const char *end,
                               const char *const *paths, size_t n);

/* One member at p (at its key's quote): copied, edited or left out. */
static const char *copy_member(out_t *o, const char *p, const char *end,
                               const char *const *paths, size_t n, int *first)
{
    const char *key = p, *kend = skip_string(p, end);
    const char *val = skip_ws(kend, end);
    val = skip_ws(val + 1, end); /* past the colon */
    /* A topic's PII paths are few: the heap only past 16. */
    const char *few[16], **sub = n <= 16 ? few : malloc(n * sizeof *sub);
    size_t nsub = 0;
    if (!sub) {
        o->failed = 1;
        return skip_value(val, end);
    }
    int removed =
        member_fate(key + 1, (size_t)(kend - key - 2), paths, n, sub, &nsub);
    int edited = !removed && nsub && *val == '{';
    const char *vend;
    if (!removed) {
        if (!*first)
            put(o, ",", 1);
        *first = 0;
        put(o, key, (size_t)(val - key));
    }
    if (edited) {
        vend = copy_object(o, val, end, sub, nsub);
    } else {
        vend = skip_value(val, end);
        if (!removed)
            put(o, val, (size_t)(vend - val));
    }
    if (sub != few)
        free(sub);
    return vend;
}

/* The object at p ('{') with the members the paths name left out: past
 * it. Members are separated by a bare comma; the rest is as it came. */
static const char *copy_object(out_t *o, const char *p, const char *end,
                               const char *const *paths, size_t n)
{
    int first = 1;
    put(o, "{", 1);
    p = skip_ws(p + 1, end);
    while (p < end && *p == '"') {
        p = skip_ws(copy_member(o, p, end, paths, n, &first), end);
        if (p < end && *p == ',')
            p = skip_ws(p + 1, end);
    }
    put(o, "}", 1);
    return p < end ? p + 1 : end;
}

char *es_json_without(const char *json, size_t len, const char *const *paths,
                      size_t npaths, size_t *out_len)
{
    out_t o = {0};
    const char *end = json + len, *p = skip_ws(json, end);
    if (p < end && *p == '{')
        copy_object(&o, p, end, paths, npaths);
    else
        put(&o, p, (size_t)(end - p));
    put(&o, "", 1); /* the NUL */
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    *out_len = o.len - 1;
    return o.buf;
}

int es_json_member_text(const char *json, size_t len, const char *key,
                        const char **at, size_t *n)
{
    const char *end = json + len, *p = skip_ws(json, end);
    if (p >= end || *p != '{')
        return -1;
    for (p = skip_ws(p + 1, end); p < end && *p == '"';) {
        const char *kend = skip_string(p, end);
        const char *val = skip_ws(skip_ws(kend, end) + 1, end);
        const char *vend = skip_value(val, end);
        if (key_is(p + 1, (size_t)(kend - p - 2), key, strlen(key))) {
            *at = val;
            *n = (size_t)(vend - val);
            return 0;
        }
        p = skip_ws(vend, end);
        if (p < end && *p == ',')
            p = skip_ws(p + 1, end);
    }
    return -1;
}
