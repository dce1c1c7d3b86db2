#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"

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

static const char *string_attr(const cJSON *ce, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(ce, name);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* Attributes the spec types as String (or URI-reference/Timestamp, which
 * are strings in JSON) must be strings when present. */
static const char *const string_typed[] = {
    "id",         "source",  "specversion", "type", "datacontenttype",
    "dataschema", "subject", "time",        NULL};

int es_decode_validate(cJSON *ce, es_decoded_t *out, char *reason,
                       size_t reason_size)
{
    if (!cJSON_IsObject(ce))
        return REASON("not a CloudEvent: the value is JSON but not an "
                      "object%s",
                      "");
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(ce, "specversion");
    if (!sv)
        return REASON("not a CloudEvent: missing required attribute "
                      "\"specversion\"%s",
                      "");
    if (!cJSON_IsString(sv) || strcmp(sv->valuestring, "1.0") != 0)
        return REASON("unsupported specversion (expected \"1.0\")%s", "");
    for (const char *const *a = string_typed; *a; a++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(ce, *a);
        if (it && !cJSON_IsString(it) && !cJSON_IsNull(it))
            return REASON("attribute \"%s\" must be a string", *a);
    }
    static const char *const required[] = {"id", "source", "type"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = string_attr(ce, required[i]);
        if (!v || !*v)
            return REASON("missing required attribute \"%s\"", required[i]);
    }
    const cJSON *it;
    int has_data = 0;
    cJSON_ArrayForEach(it, ce)
    {
        if (!strcmp(it->string, "data") || !strcmp(it->string, "data_base64")) {
            if (has_data++)
                return REASON("both \"data\" and \"data_base64\" are "
                              "present%s",
                              "");
            continue;
        }
        if (!valid_attribute_name(it->string))
            return REASON("invalid attribute name \"%.64s\" (only a-z "
                          "and 0-9 are allowed)",
                          it->string);
    }
    out->ce = ce;
    out->id = string_attr(ce, "id");
    out->source = string_attr(ce, "source");
    out->type = string_attr(ce, "type");
    out->subject = string_attr(ce, "subject");
    out->time = string_attr(ce, "time");
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

static char *base64_encode(const unsigned char *in, size_t n)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((n + 2) / 3) + 1), *p = out;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        *p++ = tbl[v >> 18 & 63];
        *p++ = tbl[v >> 12 & 63];
        *p++ = i + 1 < n ? tbl[v >> 6 & 63] : '=';
        *p++ = i + 2 < n ? tbl[v & 63] : '=';
    }
    *p = '\0';
    return out;
}

static int add_binary_data(cJSON *ce, const void *value, size_t len,
                           const char *ct, char *reason, size_t reason_size)
{
    if (!value)
        return 0;
    if (is_json_media_type(ct)) {
        cJSON *data = cJSON_ParseWithLength(value, len);
        if (!data)
            return REASON("binary mode: data is not valid JSON although "
                          "the content type is %s",
                          ct ? ct : "(none, meaning JSON)");
        cJSON_AddItemToObject(ce, "data", data);
    } else if (!strncmp(ct, "text/", 5) && utf8_text(value, len)) {
        char *s = strndup(value, len);
        cJSON_AddStringToObject(ce, "data", s);
        free(s);
    } else {
        char *b64 = base64_encode(value, len);
        cJSON_AddStringToObject(ce, "data_base64", b64);
        free(b64);
    }
    return 0;
}

static int decode_binary(const void *value, size_t len,
                         const es_header_t *headers, size_t nh,
                         es_decoded_t *out, char *reason, size_t reason_size)
{
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
    if (add_binary_data(ce, value, len, ct, reason, reason_size))
        goto done;
    if (es_decode_validate(ce, out, reason, reason_size))
        goto done;
    out->owned_json = cJSON_PrintUnformatted(ce);
    out->json = out->owned_json;
    out->json_len = strlen(out->owned_json);
    ce = NULL;
    rc = 0;
done:
    free(ct);
    cJSON_Delete(ce);
    return rc;
}

int es_decode_record(const void *value, size_t len, const es_header_t *headers,
                     size_t header_count, size_t max_bytes, es_decoded_t *out,
                     char *reason, size_t reason_size)
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
    if (!value || len == 0)
        return REASON("empty value and no ce_specversion header: not a "
                      "CloudEvent%s",
                      "");
    const char *end = NULL;
    cJSON *ce = cJSON_ParseWithLengthOpts(value, len, &end, 0);
    if (!ce) {
        size_t at = end ? (size_t)(end - (const char *)value) : 0;
        snprintf(reason, reason_size, "invalid JSON at byte %zu", at);
        return -1;
    }
    const char *tail = end, *stop = (const char *)value + len;
    while (tail < stop &&
           (*tail == ' ' || *tail == '\n' || *tail == '\r' || *tail == '\t'))
        tail++;
    if (tail < stop) {
        snprintf(reason, reason_size,
                 "trailing data after the JSON value at "
                 "byte %zu",
                 (size_t)(end - (const char *)value));
        cJSON_Delete(ce);
        return -1;
    }
    if (es_decode_validate(ce, out, reason, reason_size)) {
        cJSON_Delete(ce);
        return -1;
    }
    out->json = value;
    out->json_len = len;
    return 0;
}

void es_decoded_clear(es_decoded_t *d)
{
    cJSON_Delete(d->ce);
    free(d->owned_json);
    memset(d, 0, sizeof *d);
}

static char *scalar_string(const cJSON *it)
{
    char buf[64];
    if (cJSON_IsString(it))
        return it->valuestring[0] ? strdup(it->valuestring) : NULL;
    if (cJSON_IsNumber(it)) {
        double d = it->valuedouble;
        if (d == (double)(long long)d)
            snprintf(buf, sizeof buf, "%lld", (long long)d);
        else
            snprintf(buf, sizeof buf, "%.17g", d);
        return strdup(buf);
    }
    return NULL;
}

char *es_decode_lookup(const cJSON *ce, const void *key, size_t key_len,
                       const char *spec)
{
    if (!strcmp(spec, "key"))
        return key && key_len ? strndup(key, key_len) : NULL;
    const cJSON *it = ce;
    char part[128];
    const char *p = spec;
    while (it && *p) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof part)
            return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        it = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, part)
                                : NULL;
        p += n;
        if (*p == '.')
            p++;
    }
    return it && it != ce ? scalar_string(it) : NULL;
}
