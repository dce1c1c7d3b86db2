/*
 * Schema shapes: our own tree of an Avro schema (with logical types) and
 * the bounds-checking pre-validation of a value's bytes against it, so that
 * libavro only ever reads input that is known to be well formed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_int.h"
#include "internal/es_json_int.h"

/* Decimals longer than this are refused: converting the two's complement
 * bytes to digits is quadratic in their length. 128 bytes hold 308 digits. */
#define EA_MAX_DECIMAL_BYTES 128

/* ------------------------------------------------------------- parsing */

typedef struct parse_ctx_s {
    es_avro_shape_t *shape;
    char *err;
    size_t errn;
    int depth;
} parse_ctx_t;

static es_avro_node_t *node_new(parse_ctx_t *c, es_avro_kind_t kind)
{
    es_avro_node_t *n = calloc(1, sizeof(*n));
    if (!n) {
        snprintf(c->err, c->errn, "out of memory");
        return NULL;
    }
    n->kind = kind;
    n->min_size = -1;
    n->next_alloc = c->shape->all;
    c->shape->all = n;
    return n;
}

static const struct {
    const char *name;
    es_avro_kind_t kind;
} primitives[] = {
    {"null", EA_NULL},   {"boolean", EA_BOOLEAN}, {"int", EA_INT},
    {"long", EA_LONG},   {"float", EA_FLOAT},     {"double", EA_DOUBLE},
    {"bytes", EA_BYTES}, {"string", EA_STRING},
};

static int primitive_kind(const char *name)
{
    for (size_t i = 0; i < sizeof(primitives) / sizeof(primitives[0]); i++)
        if (strcmp(name, primitives[i].name) == 0)
            return (int)primitives[i].kind;
    return 0;
}

static char *full_name(const char *name, const char *ns)
{
    char *s;
    if (strchr(name, '.') || !ns || !*ns)
        return strdup(name);
    if (asprintf(&s, "%s.%s", ns, name) < 0)
        return NULL;
    return s;
}

static es_avro_node_t *find_named(parse_ctx_t *c, const char *name,
                                  const char *ns)
{
    char *full = full_name(name, ns);
    es_avro_node_t *found = NULL;
    for (es_avro_node_t *n = c->shape->all; n && full; n = n->next_alloc) {
        if (!n->fullname)
            continue;
        if (strcmp(n->fullname, full) == 0) {
            found = n;
            break;
        }
    }
    /* A bare name may also refer to a type in the null namespace. */
    for (es_avro_node_t *n = c->shape->all; !found && n; n = n->next_alloc)
        if (n->fullname && strcmp(n->fullname, name) == 0)
            found = n;
    free(full);
    return found;
}

static es_avro_node_t *parse_type(parse_ctx_t *c, const cJSON *j,
                                  const char *ns);

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void apply_logical(es_avro_node_t *n, const cJSON *j)
{
    static const struct {
        const char *name;
        es_avro_logical_t logical;
        es_avro_kind_t kind;
    } table[] = {
        {"date", EL_DATE, EA_INT},
        {"time-millis", EL_TIME_MILLIS, EA_INT},
        {"time-micros", EL_TIME_MICROS, EA_LONG},
        {"timestamp-millis", EL_TS_MILLIS, EA_LONG},
        {"timestamp-micros", EL_TS_MICROS, EA_LONG},
        {"local-timestamp-millis", EL_LOCAL_TS_MILLIS, EA_LONG},
        {"local-timestamp-micros", EL_LOCAL_TS_MICROS, EA_LONG},
        {"decimal", EL_DECIMAL, EA_BYTES},
        {"decimal", EL_DECIMAL, EA_FIXED},
        {"duration", EL_DURATION, EA_FIXED},
    };
    const char *lt = jstr(j, "logicalType");
    if (!lt)
        return;
    /* The spec says a logical type that does not fit its underlying type
     * is ignored, not an error. */
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcmp(lt, table[i].name) != 0 || n->kind != table[i].kind)
            continue;
        if (table[i].logical == EL_DECIMAL) {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "precision");
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "scale");
            int prec = cJSON_IsNumber(p) ? p->valueint : 0;
            int scale = cJSON_IsNumber(s) ? s->valueint : 0;
            if (prec <= 0 || scale < 0 || scale > prec)
                return;
            n->precision = prec;
            n->scale = scale;
        }
        if (table[i].logical == EL_DURATION && n->size != 12)
            return;
        n->logical = table[i].logical;
        return;
    }
}

static int set_name(parse_ctx_t *c, es_avro_node_t *n, const cJSON *j,
                    const char *ns, const char **child_ns)
{
    const char *name = jstr(j, "name");
    const char *own_ns = jstr(j, "namespace");
    if (!name) {
        snprintf(c->err, c->errn, "a named type has no \"name\"");
        return -1;
    }
    n->fullname = full_name(name, own_ns ? own_ns : ns);
    if (!n->fullname) {
        snprintf(c->err, c->errn, "out of memory");
        return -1;
    }
    /* Names declared inside take the namespace of the enclosing name. */
    const char *dot = strrchr(n->fullname, '.');
    *child_ns = dot ? NULL : own_ns ? own_ns : ns;
    return 0;
}

static int parse_record(parse_ctx_t *c, es_avro_node_t *n, const cJSON *j,
                        const char *ns)
{
    const char *child_ns;
    char *nsbuf = NULL;
    int rc = -1;
    if (set_name(c, n, j, ns, &child_ns) < 0)
        return -1;
    const char *dot = strrchr(n->fullname, '.');
    if (dot) {
        nsbuf = strndup(n->fullname, (size_t)(dot - n->fullname));
        child_ns = nsbuf;
    }
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(j, "fields");
    if (!cJSON_IsArray(fields)) {
        snprintf(c->err, c->errn, "record %s has no \"fields\" array",
                 n->fullname);
        goto done;
    }
    n->count = (size_t)cJSON_GetArraySize(fields);
    n->child = calloc(n->count + 1, sizeof(*n->child));
    n->names = calloc(n->count + 1, sizeof(*n->names));
    if (!n->child || !n->names)
        goto done;
    size_t i = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, fields)
    {
        const char *fname = jstr(f, "name");
        const cJSON *ft = cJSON_GetObjectItemCaseSensitive(f, "type");
        if (!fname || !ft) {
            snprintf(c->err, c->errn,
                     "record %s: field %zu needs \"name\" and \"type\"",
                     n->fullname, i);
            goto done;
        }
        n->names[i] = strdup(fname);
        n->child[i] = parse_type(c, ft, child_ns);
        if (!n->names[i] || !n->child[i])
            goto done;
        i++;
    }
    rc = 0;
done:
    free(nsbuf);
    return rc;
}

static int parse_enum(parse_ctx_t *c, es_avro_node_t *n, const cJSON *j,
                      const char *ns)
{
    const char *child_ns;
    if (set_name(c, n, j, ns, &child_ns) < 0)
        return -1;
    const cJSON *syms = cJSON_GetObjectItemCaseSensitive(j, "symbols");
    if (!cJSON_IsArray(syms)) {
        snprintf(c->err, c->errn, "enum %s has no \"symbols\" array",
                 n->fullname);
        return -1;
    }
    n->count = (size_t)cJSON_GetArraySize(syms);
    n->names = calloc(n->count + 1, sizeof(*n->names));
    if (!n->names)
        return -1;
    size_t i = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, syms)
    {
        if (!cJSON_IsString(s) || !(n->names[i++] = strdup(s->valuestring)))
            return -1;
    }
    return 0;
}

static es_avro_node_t *parse_object(parse_ctx_t *c, const cJSON *j,
                                    const char *ns)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
    es_avro_node_t *n = NULL;
    if (!cJSON_IsString(t)) {
        if (cJSON_IsObject(t) || cJSON_IsArray(t))
            return parse_type(c, t, ns);
        snprintf(c->err, c->errn, "a schema object has no \"type\"");
        return NULL;
    }
    const char *type = t->valuestring;
    int prim = primitive_kind(type);
    if (prim) {
        if (!(n = node_new(c, (es_avro_kind_t)prim)))
            return NULL;
    } else if (strcmp(type, "record") == 0 || strcmp(type, "error") == 0) {
        if (!(n = node_new(c, EA_RECORD)) || parse_record(c, n, j, ns) < 0)
            return NULL;
    } else if (strcmp(type, "enum") == 0) {
        if (!(n = node_new(c, EA_ENUM)) || parse_enum(c, n, j, ns) < 0)
            return NULL;
    } else if (strcmp(type, "array") == 0 || strcmp(type, "map") == 0) {
        int is_array = type[0] == 'a';
        const cJSON *items =
            cJSON_GetObjectItemCaseSensitive(j, is_array ? "items" : "values");
        if (!(n = node_new(c, is_array ? EA_ARRAY : EA_MAP)))
            return NULL;
        n->child = calloc(1, sizeof(*n->child));
        if (!n->child || !items) {
            snprintf(c->err, c->errn, "%s has no \"%s\"", type,
                     is_array ? "items" : "values");
            return NULL;
        }
        if (!(n->child[0] = parse_type(c, items, ns)))
            return NULL;
    } else if (strcmp(type, "fixed") == 0) {
        const char *child_ns;
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(j, "size");
        if (!(n = node_new(c, EA_FIXED)) ||
            set_name(c, n, j, ns, &child_ns) < 0)
            return NULL;
        if (!es_json_int_in(size, 0, INT32_MAX)) {
            snprintf(c->err, c->errn, "fixed %s has no valid \"size\"",
                     n->fullname);
            return NULL;
        }
        n->size = (int64_t)size->valuedouble;
    } else {
        es_avro_node_t *ref = find_named(c, type, ns);
        if (!ref)
            snprintf(c->err, c->errn, "unknown type \"%s\"", type);
        return ref;
    }
    apply_logical(n, j);
    return n;
}

static es_avro_node_t *parse_type(parse_ctx_t *c, const cJSON *j,
                                  const char *ns)
{
    es_avro_node_t *n = NULL;
    if (++c->depth > 256) {
        snprintf(c->err, c->errn, "schema nested too deeply");
        goto done;
    }
    if (cJSON_IsString(j)) {
        int prim = primitive_kind(j->valuestring);
        if (prim)
            n = node_new(c, (es_avro_kind_t)prim);
        else if (!(n = find_named(c, j->valuestring, ns)))
            snprintf(c->err, c->errn, "unknown type \"%s\"", j->valuestring);
    } else if (cJSON_IsObject(j)) {
        n = parse_object(c, j, ns);
    } else if (cJSON_IsArray(j)) {
        if (!(n = node_new(c, EA_UNION)))
            goto done;
        n->count = (size_t)cJSON_GetArraySize(j);
        n->child = calloc(n->count + 1, sizeof(*n->child));
        if (!n->child) {
            n = NULL;
            goto done;
        }
        size_t i = 0;
        const cJSON *b;
        cJSON_ArrayForEach(b, j)
        {
            if (!(n->child[i++] = parse_type(c, b, ns))) {
                n = NULL;
                goto done;
            }
        }
    } else {
        snprintf(c->err, c->errn,
                 "a schema must be a string, object or "
                 "array");
    }
done:
    c->depth--;
    return n;
}

/* Fewest bytes one value can take. Used to bound a block's item count by
 * the bytes left; a record met again while computing itself is recursive
 * and so holds at least a union (one byte) on the way. */
static int min_size(es_avro_node_t *n)
{
    switch (n->kind) {
    case EA_NULL:
        return 0;
    case EA_FLOAT:
        return 4;
    case EA_DOUBLE:
        return 8;
    case EA_FIXED:
        return n->size > 1 ? 1 : (int)n->size;
    case EA_RECORD: {
        if (n->min_size >= 0)
            return n->min_size;
        if (n->min_size == -2)
            return 1;
        n->min_size = -2;
        int sum = 0;
        for (size_t i = 0; i < n->count && sum == 0; i++)
            sum += min_size(n->child[i]);
        n->min_size = sum ? 1 : 0;
        return n->min_size;
    }
    default:
        return 1;
    }
}

int es_avro_shape_parse(const char *json, size_t len, es_avro_shape_t **out,
                        char *errstr, size_t errstr_size)
{
    int rc = -1;
    cJSON *j = cJSON_ParseWithLength(json, len);
    es_avro_shape_t *shape = calloc(1, sizeof(*shape));
    parse_ctx_t c = {shape, errstr, errstr_size, 0};
    *out = NULL;
    if (!shape)
        goto done;
    if (!j) {
        snprintf(errstr, errstr_size, "schema is not valid JSON");
        goto done;
    }
    snprintf(errstr, errstr_size, "out of memory");
    if (!(shape->root = parse_type(&c, j, NULL)))
        goto done;
    for (es_avro_node_t *n = shape->all; n; n = n->next_alloc)
        if (n->kind == EA_RECORD)
            min_size(n);
    *out = shape;
    shape = NULL;
    rc = 0;
done:
    cJSON_Delete(j);
    es_avro_shape_destroy(shape);
    return rc;
}

void es_avro_shape_destroy(es_avro_shape_t *shape)
{
    if (!shape)
        return;
    es_avro_node_t *n = shape->all;
    while (n) {
        es_avro_node_t *next = n->next_alloc;
        if (n->names)
            for (size_t i = 0; i < n->count; i++)
                free(n->names[i]);
        free(n->names);
        free(n->child);
        free(n->fullname);
        free(n);
        n = next;
    }
    free(shape);
}

/* ---------------------------------------------------------- validation */

typedef struct check_s {
    const uint8_t *start, *p, *end;
    size_t base;
    size_t items;
    int depth;
    const es_avro_limits_t *lim;
    char *reason;
    size_t reason_size;
    char path[160]; /* filled while unwinding from a failure */
} check_t;

static size_t off(const check_t *k)
{
    return k->base + (size_t)(k->p - k->start);
}

static size_t left(const check_t *k)
{
    return (size_t)(k->end - k->p);
}

static int fail(check_t *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(check_t *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->reason, k->reason_size, fmt, ap);
    va_end(ap);
    return -1;
}

/* Prepends one path element ("orders", "[3]", "{key}") while unwinding. */
static void path_push(check_t *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void path_push(check_t *k, const char *fmt, ...)
{
    char seg[96], tmp[sizeof(seg) + sizeof(k->path) + 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(seg, sizeof(seg), fmt, ap);
    va_end(ap);
    snprintf(tmp, sizeof(tmp), "%s%s%s", seg,
             k->path[0] && k->path[0] != '[' ? "." : "", k->path);
    size_t n = strlen(tmp);
    if (n >= sizeof(k->path))
        n = sizeof(k->path) - 1;
    memcpy(k->path, tmp, n);
    k->path[n] = '\0';
}

static int read_long(check_t *k, const char *what, int64_t *out)
{
    size_t at = off(k);
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (k->p >= k->end)
            return fail(k, "truncated: %s at byte %zu ends mid-varint", what,
                        at);
        uint8_t b = *k->p++;
        if (shift == 63 && (b & 0x7e))
            return fail(k, "malformed varint for %s at byte %zu", what, at);
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
    }
    return fail(k, "malformed varint for %s at byte %zu (over 10 bytes)", what,
                at);
}

static int read_int(check_t *k, const char *what, int64_t *out)
{
    size_t at = off(k);
    if (read_long(k, what, out) < 0)
        return -1;
    if (*out < INT32_MIN || *out > INT32_MAX)
        return fail(k, "%s at byte %zu is out of the int range", what, at);
    return 0;
}

static int need(check_t *k, const char *what, uint64_t n)
{
    if (n <= left(k))
        return 0;
    return fail(k, "truncated: %s at byte %zu needs %llu bytes, %zu left", what,
                off(k), (unsigned long long)n, left(k));
}

/* A declared length: larger than the whole value means the length itself
 * is bogus (oversize); larger than what is left means the value was cut. */
static int check_length(check_t *k, const char *what, int64_t n, size_t at)
{
    size_t total = k->base + (size_t)(k->end - k->start);
    if (n < 0)
        return fail(k, "negative %s length %lld at byte %zu", what,
                    (long long)n, at);
    if ((uint64_t)n > total)
        return fail(k,
                    "oversize %s length %lld at byte %zu (the value is %zu "
                    "bytes)",
                    what, (long long)n, at, total);
    return need(k, what, (uint64_t)n);
}

static int utf8_ok(const uint8_t *s, size_t n, size_t *bad)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp;
        if (c == 0) {
            *bad = i;
            return 0;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            *bad = i;
            return 0;
        }
        if (i + len > n) {
            *bad = i;
            return 0;
        }
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xc0) != 0x80) {
                *bad = i;
                return 0;
            }
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff)) {
            *bad = i;
            return 0;
        }
        i += len;
    }
    return 1;
}

static int check_value(check_t *k, const es_avro_node_t *n);

static int check_bytes(check_t *k, const es_avro_node_t *n)
{
    int is_string = n->kind == EA_STRING;
    const char *what = is_string ? "string" : "bytes";
    size_t at = off(k);
    int64_t len;
    if (read_long(k, is_string ? "string length" : "bytes length", &len) < 0 ||
        check_length(k, what, len, at) < 0)
        return -1;
    if (n->logical == EL_DECIMAL && len > EA_MAX_DECIMAL_BYTES)
        return fail(k, "oversize decimal of %lld bytes at byte %zu (limit %d)",
                    (long long)len, at, EA_MAX_DECIMAL_BYTES);
    size_t bad;
    /* JSON strings through cJSON cannot hold U+0000, so it is refused
     * rather than silently cut. */
    if (is_string && !utf8_ok(k->p, (size_t)len, &bad))
        return fail(k,
                    "string at byte %zu is not valid UTF-8 or holds "
                    "U+0000 (byte %zu)",
                    at, off(k) + bad);
    k->p += len;
    return 0;
}

static int check_blocks(check_t *k, const es_avro_node_t *n)
{
    int is_map = n->kind == EA_MAP;
    const es_avro_node_t *item = n->child[0];
    /* Records' minimum sizes were settled at parse time, so this only
     * reads the shape. */
    int item_min = is_map ? 1 : min_size((es_avro_node_t *)item);
    size_t index = 0;
    for (;;) {
        size_t at = off(k);
        int64_t count, block_bytes;
        if (read_long(k, "block count", &count) < 0)
            return -1;
        if (count == 0)
            return 0;
        if (count < 0) {
            if (count == INT64_MIN)
                return fail(k, "oversize block count at byte %zu", at);
            count = -count;
            size_t bat = off(k);
            if (read_long(k, "block size", &block_bytes) < 0 ||
                check_length(k, "block", block_bytes, bat) < 0)
                return -1;
        }
        if ((uint64_t)count > k->lim->max_items - k->items)
            return fail(k,
                        "oversize %s block count %lld at byte %zu (limit "
                        "%zu items per value)",
                        is_map ? "map" : "array", (long long)count, at,
                        k->lim->max_items);
        if (item_min > 0 && (uint64_t)count > left(k) / (uint64_t)item_min)
            return fail(k,
                        "oversize %s block count %lld at byte %zu (%zu "
                        "bytes left)",
                        is_map ? "map" : "array", (long long)count, at,
                        left(k));
        k->items += (size_t)count;
        for (int64_t i = 0; i < count; i++, index++) {
            if (is_map) {
                es_avro_node_t key = {.kind = EA_STRING};
                if (check_bytes(k, &key) < 0) {
                    path_push(k, "{key %zu}", index);
                    return -1;
                }
            }
            if (check_value(k, item) < 0) {
                path_push(k, "[%zu]", index);
                return -1;
            }
        }
    }
}

static int check_value(check_t *k, const es_avro_node_t *n)
{
    int64_t v;
    size_t at = off(k);
    int rc = -1;
    if (++k->depth > k->lim->max_depth) {
        fail(k, "value nested deeper than %d at byte %zu", k->lim->max_depth,
             at);
        goto done;
    }
    switch (n->kind) {
    case EA_NULL:
        rc = 0;
        break;
    case EA_BOOLEAN:
        if (need(k, "boolean", 1) < 0)
            break;
        if (*k->p > 1) {
            fail(k, "boolean at byte %zu is %u, not 0 or 1", at, *k->p);
            break;
        }
        k->p++;
        rc = 0;
        break;
    case EA_INT:
        rc = read_int(k, "int", &v);
        break;
    case EA_LONG:
        rc = read_long(k, "long", &v);
        break;
    case EA_FLOAT:
    case EA_DOUBLE: {
        size_t sz = n->kind == EA_FLOAT ? 4 : 8;
        if (need(k, n->kind == EA_FLOAT ? "float" : "double", sz) == 0) {
            k->p += sz;
            rc = 0;
        }
        break;
    }
    case EA_BYTES:
    case EA_STRING:
        rc = check_bytes(k, n);
        break;
    case EA_FIXED:
        if (need(k, "fixed", (uint64_t)n->size) == 0) {
            k->p += n->size;
            rc = 0;
        }
        break;
    case EA_ENUM:
        if (read_int(k, "enum index", &v) < 0)
            break;
        if (v < 0 || (uint64_t)v >= n->count) {
            fail(k,
                 "enum index %lld at byte %zu is out of range (%s has %zu "
                 "symbols)",
                 (long long)v, at, n->fullname, n->count);
            break;
        }
        rc = 0;
        break;
    case EA_UNION:
        if (read_long(k, "union index", &v) < 0)
            break;
        if (v < 0 || (uint64_t)v >= n->count) {
            fail(k,
                 "union index %lld at byte %zu is out of range (%zu "
                 "branches)",
                 (long long)v, at, n->count);
            break;
        }
        rc = check_value(k, n->child[v]);
        break;
    case EA_RECORD:
        rc = 0;
        for (size_t i = 0; i < n->count && rc == 0; i++) {
            if ((rc = check_value(k, n->child[i])) < 0)
                path_push(k, "%s", n->names[i]);
        }
        break;
    case EA_ARRAY:
    case EA_MAP:
        rc = check_blocks(k, n);
        break;
    }
done:
    k->depth--;
    return rc;
}

int es_avro_shape_check(const es_avro_shape_t *shape, const void *buf,
                        size_t len, size_t base, const es_avro_limits_t *lim,
                        char *reason, size_t reason_size)
{
    check_t k = {.start = buf,
                 .p = buf,
                 .end = (const uint8_t *)buf + len,
                 .base = base,
                 .lim = lim,
                 .reason = reason,
                 .reason_size = reason_size};
    if (check_value(&k, shape->root) < 0) {
        if (k.path[0]) {
            size_t used = strlen(reason);
            snprintf(reason + used, reason_size - used, " (in %s)", k.path);
        }
        return -1;
    }
    if (k.p != k.end)
        return fail(&k,
                    "trailing bytes: %zu bytes after the value ends at "
                    "byte %zu",
                    left(&k), off(&k));
    return 0;
}
