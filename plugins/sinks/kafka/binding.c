/* CloudEvents Kafka protocol binding helpers for the kafka sink. */
#include "binding.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "internal/es_base64.h"
#include "internal/es_json_edit.h"

/* ------------------------------------------------------- topic templates */

static const struct {
    const char *name;
    ks_var_t var;
} ks_vars[] = {
    {"type", KS_VAR_TYPE},
    {"topic", KS_VAR_TOPIC},
    {"tenant", KS_VAR_TENANT},
};

int ks_topic_valid(const char *name, size_t len)
{
    return es_topic_name_valid_n(name, len);
}

static int ks_template_add(ks_template_t *t, ks_var_t var, const char *lit,
                           size_t len)
{
    ks_seg_t *segs = realloc(t->segs, (t->count + 1) * sizeof(*segs));
    if (!segs)
        return -1;
    t->segs = segs;
    ks_seg_t *s = &segs[t->count];
    s->var = var;
    s->lit = NULL;
    s->len = len;
    if (var == KS_VAR_LITERAL) {
        s->lit = strndup(lit, len);
        if (!s->lit)
            return -1;
    } else {
        t->has_vars = 1;
    }
    t->count++;
    return 0;
}

static int ks_template_var(const char *name, size_t len, ks_var_t *var)
{
    for (size_t i = 0; i < sizeof(ks_vars) / sizeof(ks_vars[0]); i++) {
        if (strlen(ks_vars[i].name) == len &&
            memcmp(ks_vars[i].name, name, len) == 0) {
            *var = ks_vars[i].var;
            return 0;
        }
    }
    return -1;
}

int ks_template_parse(ks_template_t *t, const char *src, char *errstr,
                      size_t errstr_size)
{
    memset(t, 0, sizeof(*t));
    const char *p = src;
    while (*p) {
        const char *open = strchr(p, '{');
        size_t litlen = open ? (size_t)(open - p) : strlen(p);
        if (litlen && ks_template_add(t, KS_VAR_LITERAL, p, litlen) != 0)
            goto oom;
        if (!open)
            break;
        const char *close = strchr(open, '}');
        if (!close) {
            snprintf(errstr, errstr_size, "topic: unterminated '{' in \"%s\"",
                     src);
            goto fail;
        }
        ks_var_t var;
        size_t nlen = (size_t)(close - open - 1);
        if (ks_template_var(open + 1, nlen, &var) != 0) {
            snprintf(errstr, errstr_size,
                     "topic: unknown placeholder {%.*s} (use {type}, "
                     "{topic} or {tenant})",
                     (int)nlen, open + 1);
            goto fail;
        }
        if (ks_template_add(t, var, NULL, 0) != 0)
            goto oom;
        p = close + 1;
    }
    if (!t->has_vars && !ks_topic_valid(src, strlen(src))) {
        snprintf(errstr, errstr_size,
                 "topic: \"%s\" is not a valid Kafka topic name "
                 "([A-Za-z0-9._-], 1 to %d characters)",
                 src, KS_TOPIC_MAX);
        goto fail;
    }
    return 0;
oom:
    snprintf(errstr, errstr_size, "topic: out of memory");
fail:
    ks_template_free(t);
    return -1;
}

void ks_template_free(ks_template_t *t)
{
    for (size_t i = 0; i < t->count; i++)
        free(t->segs[i].lit);
    free(t->segs);
    memset(t, 0, sizeof(*t));
}

static const char *ks_var_value(ks_var_t var, const es_event_t *ev,
                                const char **what)
{
    switch (var) {
    case KS_VAR_TYPE:
        *what = "type";
        return ev->type;
    case KS_VAR_TOPIC:
        *what = "topic";
        return ev->topic;
    case KS_VAR_TENANT:
        *what = "tenant";
        return ev->tenant;
    default:
        *what = "literal";
        return NULL;
    }
}

int ks_template_expand(const ks_template_t *t, const es_event_t *ev, char *out,
                       size_t out_size, char *errstr, size_t errstr_size)
{
    size_t n = 0;
    for (size_t i = 0; i < t->count; i++) {
        const ks_seg_t *s = &t->segs[i];
        const char *v = s->lit;
        size_t len = s->len;
        if (s->var != KS_VAR_LITERAL) {
            const char *what;
            v = ks_var_value(s->var, ev, &what);
            if (!v || !*v) {
                snprintf(errstr, errstr_size,
                         "topic template: the event has no %s", what);
                return -1;
            }
            len = strlen(v);
        }
        if (n + len >= out_size || n + len > KS_TOPIC_MAX) {
            snprintf(errstr, errstr_size,
                     "topic template: the topic name is longer than %d",
                     KS_TOPIC_MAX);
            return -1;
        }
        memcpy(out + n, v, len);
        n += len;
    }
    out[n] = '\0';
    if (!ks_topic_valid(out, n)) {
        snprintf(errstr, errstr_size,
                 "topic template: \"%s\" is not a valid Kafka topic name", out);
        return -1;
    }
    return 0;
}

/* --------------------------------------------------- binary content mode */

int ks_media_type_is_json(const char *mt)
{
    size_t len = strcspn(mt, ";");
    while (len > 0 && isspace((unsigned char)mt[len - 1]))
        len--;
    if ((len == 16 && strncasecmp(mt, "application/json", 16) == 0) ||
        (len == 9 && strncasecmp(mt, "text/json", 9) == 0))
        return 1;
    return len >= 5 && strncasecmp(mt + len - 5, "+json", 5) == 0;
}

/* Canonical string form of an attribute value (CloudEvents type system):
 * strings as is, booleans true/false, integers in decimal. Anything else is
 * not a valid attribute but is kept as its JSON text rather than lost. */
static const char *ks_attr_string(const cJSON *a, char *buf, size_t size,
                                  char **heap)
{
    *heap = NULL;
    if (cJSON_IsString(a))
        return a->valuestring;
    if (cJSON_IsBool(a))
        return cJSON_IsTrue(a) ? "true" : "false";
    if (cJSON_IsNumber(a)) {
        double d = a->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0)
            snprintf(buf, size, "%lld", (long long)d);
        else
            snprintf(buf, size, "%.17g", d);
        return buf;
    }
    *heap = cJSON_PrintUnformatted(a);
    return *heap;
}

static int ks_add_attr_header(rd_kafka_headers_t *hdrs, const cJSON *a,
                              char *errstr, size_t errstr_size)
{
    char name[256], num[64], *heap;
    if (snprintf(name, sizeof(name), "ce_%s", a->string) >= (int)sizeof(name)) {
        snprintf(errstr, errstr_size, "attribute name \"%.40s...\" too long",
                 a->string);
        return -1;
    }
    const char *v = ks_attr_string(a, num, sizeof(num), &heap);
    if (!v) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    rd_kafka_header_add(hdrs, name, -1, v, (ssize_t)strlen(v));
    free(heap);
    return 0;
}

static int ks_binary_data(const es_event_t *ev, const cJSON *data,
                          const cJSON *data_b64, const char *ctype,
                          const void **value, size_t *value_len,
                          void **value_buf, char *errstr, size_t errstr_size)
{
    if (data_b64 && !cJSON_IsNull(data_b64)) {
        if (!cJSON_IsString(data_b64)) {
            snprintf(errstr, errstr_size, "data_base64 is not a string");
            return -1;
        }
        size_t n = 0;
        char why[96];
        unsigned char *bytes = es_base64_decode(data_b64->valuestring,
                                                strlen(data_b64->valuestring),
                                                &n, why, sizeof why);
        if (!bytes) {
            snprintf(errstr, errstr_size, "data_base64 is not base64: %s", why);
            return -1;
        }
        *value = bytes;
        *value_len = n;
        *value_buf = bytes;
        return 0;
    }
    if (!data)
        return 0;
    if (cJSON_IsString(data) && ctype && !ks_media_type_is_json(ctype)) {
        *value = data->valuestring;
        *value_len = strlen(data->valuestring);
        return 0;
    }
    const char *span;
    size_t span_len;
    /* The data's own bytes: cJSON's reprint holds numbers as doubles. */
    if (es_json_member_text(ev->json, ev->json_len, "data", &span, &span_len) !=
        0) {
        snprintf(errstr, errstr_size, "the event's text has no data member");
        return -1;
    }
    *value = span;
    *value_len = span_len;
    return 0;
}

int ks_binary_encode(const es_event_t *ev, rd_kafka_headers_t *hdrs,
                     const void **value, size_t *value_len, void **value_buf,
                     char *errstr, size_t errstr_size)
{
    const cJSON *data = NULL, *data_b64 = NULL;
    const char *ctype = NULL;
    *value = NULL;
    *value_len = 0;
    *value_buf = NULL;
    if (!ev->ce || !cJSON_IsObject(ev->ce)) {
        snprintf(errstr, errstr_size, "event has no parsed CloudEvent");
        return -1;
    }
    for (const cJSON *a = ev->ce->child; a; a = a->next) {
        if (!a->string || cJSON_IsNull(a))
            continue;
        if (strcmp(a->string, "data") == 0) {
            data = a;
        } else if (strcmp(a->string, "data_base64") == 0) {
            data_b64 = a;
        } else if (strcmp(a->string, "datacontenttype") == 0) {
            if (cJSON_IsString(a)) {
                ctype = a->valuestring;
                rd_kafka_header_add(hdrs, "content-type", -1, ctype, -1);
            }
        } else if (ks_add_attr_header(hdrs, a, errstr, errstr_size) != 0) {
            return -1;
        }
    }
    return ks_binary_data(ev, data, data_b64, ctype, value, value_len,
                          value_buf, errstr, errstr_size);
}
