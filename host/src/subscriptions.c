/*
 * Subscriptions: parsing, validation, secret masking and the state file.
 * See subscriptions.h and docs/api.md.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal/es_json_int.h"
#include "internal/es_json_keys.h"
#include "internal/es_url_mask.h"
#include "subscriptions.h"

/* "key: what", the key cut at 200 bytes so that what is wrong is always
 * said (a body's keys are anyone's). */
static int fail(char *errstr, size_t size, const char *key, const char *what)
{
    snprintf(errstr, size, "%.200s%s: %s", key, strlen(key) > 200 ? "..." : "",
             what);
    return -1;
}

static const char *const destination_types[] = {"https", "kafka", "s3"};

/* ------------------------------------------------------------- secrets */

int es_sub_secret_key(const char *key)
{
    return es_secret_name(key, strlen(key));
}

/* A secret's value as GET shows it: strings and numbers alike (a kafka
 * property such as "sasl.password": 123456 is taken as a number). */
static int maskable(const cJSON *it)
{
    return cJSON_IsString(it) || cJSON_IsNumber(it);
}

/* Puts `with` in place of `it` in `parent`, under its key; returns what
 * now stands there (`it` when out of memory). */
static cJSON *replace_item(cJSON *parent, cJSON *it, cJSON *with)
{
    if (with) {
        free(with->string); /* cJSON's default hooks: malloc and free */
        with->string = it->string ? strdup(it->string) : NULL;
    }
    if (!with || (it->string && !with->string) ||
        !cJSON_ReplaceItemViaPointer(parent, it, with)) {
        cJSON_Delete(with);
        return it;
    }
    return with;
}

/* Replaces every string or number (in an array too) under a secret key. */
static void mask(cJSON *node, int secret)
{
    for (cJSON *it = node ? node->child : NULL; it; it = it->next) {
        int s = secret || (it->string && es_sub_secret_key(it->string));
        if (maskable(it) && s)
            it = replace_item(node, it, cJSON_CreateString(ES_SUB_MASK));
        else if (cJSON_IsObject(it) || cJSON_IsArray(it))
            mask(it, s);
    }
}

void es_sub_mask(cJSON *node)
{
    mask(node, 0);
}

void es_sub_mask_urls(cJSON *node)
{
    for (cJSON *it = node ? node->child : NULL; it; it = it->next) {
        if (cJSON_IsObject(it) || cJSON_IsArray(it)) {
            es_sub_mask_urls(it);
            continue;
        }
        char *masked = cJSON_IsString(it) ? es_url_mask(it->valuestring) : NULL;
        if (masked)
            cJSON_SetValuestring(it, masked);
        free(masked);
    }
}

/* Where node has the mask and old, at the same place, a secret's value,
 * puts a copy of that value back. */
static void keep_secrets(cJSON *node, const cJSON *old)
{
    if (!node || !old)
        return;
    int i = 0;
    for (cJSON *it = node->child; it; it = it->next) {
        const cJSON *o = cJSON_IsObject(node)
                             ? cJSON_GetObjectItemCaseSensitive(old, it->string)
                             : cJSON_GetArrayItem(old, i);
        i++;
        if (!o)
            continue;
        if (cJSON_IsString(it) && !strcmp(it->valuestring, ES_SUB_MASK) &&
            maskable(o))
            it = replace_item(node, it, cJSON_Duplicate(o, 0));
        else if (cJSON_IsObject(it) || cJSON_IsArray(it))
            keep_secrets(it, o);
    }
}

void es_sub_keep_secrets(es_sub_t *s, const es_sub_t *old)
{
    if (!strcmp(s->type, old->type))
        keep_secrets(s->dest_config, old->dest_config);
    if (s->filter_type && old->filter_type &&
        !strcmp(s->filter_type, old->filter_type))
        keep_secrets(s->filter_config, old->filter_config);
}

/* ------------------------------------------------------------- parsing */

int es_sub_valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > ES_SUB_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && !strchr("._-", id[i]))
            return 0;
    return 1;
}

static int parse_topics(const cJSON *v, es_strv_t *out, char *errstr,
                        size_t size)
{
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        return fail(errstr, size, "topics",
                    "must be a non-empty array of topic names");
    out->v = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof *out->v);
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        char key[64];
        snprintf(key, sizeof key, "topics[%zu]", out->n);
        if (!cJSON_IsString(it) || !es_topic_name_valid(it->valuestring))
            return fail(errstr, size, key,
                        "must be a topic name (1 to 249 of letters, digits, "
                        "'.', '_' and '-')");
        for (size_t k = 0; k < out->n; k++)
            if (!strcmp(out->v[k], it->valuestring))
                return fail(errstr, size, key, "is listed twice");
        out->v[out->n++] = strdup(it->valuestring);
    }
    return 0;
}

/* {"type": ..., "config": {...}}: the only two keys. */
static int parse_plugin_ref(const cJSON *v, const char *name, char **type,
                            cJSON **config, char *errstr, size_t size)
{
    char key[64];
    if (!cJSON_IsObject(v))
        return fail(errstr, size, name,
                    "must be an object {\"type\": ..., \"config\": {...}}");
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        snprintf(key, sizeof key, "%s.%s", name, it->string);
        if (strcmp(it->string, "type") && strcmp(it->string, "config"))
            return fail(errstr, size, key, "unknown key");
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, "type");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "config");
    snprintf(key, sizeof key, "%s.type", name);
    if (!t)
        return fail(errstr, size, key, "is required");
    if (!cJSON_IsString(t) || !t->valuestring[0])
        return fail(errstr, size, key, "must be a string");
    snprintf(key, sizeof key, "%s.config", name);
    if (!c)
        return fail(errstr, size, key, "is required");
    if (!cJSON_IsObject(c))
        return fail(errstr, size, key, "must be an object");
    *type = strdup(t->valuestring);
    *config = cJSON_Duplicate(c, 1);
    return 0;
}

static int parse_destination(const cJSON *v, es_sub_t *s, char *errstr,
                             size_t size)
{
    if (parse_plugin_ref(v, "destination", &s->type, &s->dest_config, errstr,
                         size))
        return -1;
    for (size_t i = 0; i < sizeof destination_types / sizeof(char *); i++)
        if (!strcmp(s->type, destination_types[i]))
            return 0;
    return fail(errstr, size, "destination.type",
                "must be \"https\", \"kafka\" or \"s3\"");
}

static int parse_filter(const cJSON *v, es_sub_t *s, char *errstr, size_t size)
{
    if (cJSON_IsNull(v))
        return 0;
    if (parse_plugin_ref(v, "filter", &s->filter_type, &s->filter_config,
                         errstr, size))
        return -1;
    if (strcmp(s->filter_type, "lua"))
        return fail(errstr, size, "filter.type", "must be \"lua\"");
    const cJSON *src =
        cJSON_GetObjectItemCaseSensitive(s->filter_config, "source");
    const cJSON *script =
        cJSON_GetObjectItemCaseSensitive(s->filter_config, "script");
    if (src && script)
        return fail(errstr, size, "filter.config.source",
                    "give either \"source\" or \"script\", not both");
    if (src && (!cJSON_IsString(src) || !src->valuestring[0]))
        return fail(errstr, size, "filter.config.source",
                    "must be the Lua script's text");
    return 0;
}

static int parse_string(const cJSON *v, const char *key, char **out,
                        char *errstr, size_t size)
{
    if (!cJSON_IsString(v))
        return fail(errstr, size, key, "must be a string");
    free(*out);
    *out = strdup(v->valuestring);
    return 0;
}

/* A partition's number as the state file writes it: decimal, no sign, no
 * leading zero (and fewer than a billion). */
static int partition_name(const char *s)
{
    size_t n = strspn(s, "0123456789");
    return n > 0 && n <= 9 && !s[n] && (n == 1 || s[0] != '0');
}

/* The state file's {"topic": {"partition": offset}}; a hand-edited one is
 * refused naming the member, rather than read as partition 0 or cast from
 * any double. */
static int start_offsets_invalid(const cJSON *it, char *errstr, size_t size)
{
    if (!cJSON_IsObject(it))
        return fail(errstr, size, "start_offsets", "must be an object");
    const cJSON *topic, *part;
    cJSON_ArrayForEach(topic, it)
    {
        char key[300];
        snprintf(key, sizeof key, "start_offsets.%.200s", topic->string);
        if (!cJSON_IsObject(topic))
            return fail(errstr, size, key, "must be an object");
        cJSON_ArrayForEach(part, topic)
        {
            snprintf(key, sizeof key, "start_offsets.%.200s.%.40s",
                     topic->string, part->string);
            if (!partition_name(part->string))
                return fail(errstr, size, key, "is not a partition number");
            if (!es_json_int_in(part, 0, ES_JSON_INT_LIMIT))
                return fail(errstr, size, key,
                            "must be an offset, an integer from 0");
        }
    }
    return 0;
}

static int parse_key(const cJSON *it, es_sub_t *s, int from_store, char *errstr,
                     size_t size)
{
    const char *k = it->string;
    if (!strcmp(k, "id")) {
        if (parse_string(it, k, &s->id, errstr, size))
            return -1;
        if (!es_sub_valid_id(s->id))
            return fail(errstr, size, k,
                        "must be 1-64 characters of letters, digits, "
                        "'.', '_' or '-'");
        return 0;
    }
    if (!strcmp(k, "tenant")) {
        if (parse_string(it, k, &s->tenant, errstr, size))
            return -1;
        return s->tenant[0] ? 0 : fail(errstr, size, k, "must not be empty");
    }
    if (!strcmp(k, "topics"))
        return parse_topics(it, &s->topics, errstr, size);
    if (!strcmp(k, "destination"))
        return parse_destination(it, s, errstr, size);
    if (!strcmp(k, "filter"))
        return parse_filter(it, s, errstr, size);
    if (!strcmp(k, "enabled")) {
        if (!cJSON_IsBool(it))
            return fail(errstr, size, k, "must be true or false");
        s->enabled = cJSON_IsTrue(it);
        return 0;
    }
    if (!strcmp(k, "description"))
        return parse_string(it, k, &s->description, errstr, size);
    if (!strcmp(k, "created_at") || !strcmp(k, "updated_at")) {
        if (!from_store)
            return 0; /* read-only: a GET body can be sent back */
        return parse_string(
            it, k, k[0] == 'c' ? &s->created_at : &s->updated_at, errstr, size);
    }
    if (!from_store && (!strcmp(k, "status") || !strcmp(k, "error")))
        return 0; /* read-only, shown by GET */
    if (!strcmp(k, "park")) {
        /* Topic and group are the daemon's: another tenant's park topic or
         * the main group named here would leak or steal events. */
        if (!cJSON_IsObject(it)) /* an array's elements have no names */
            return fail(errstr, size, k, "must be an object");
        const cJSON *f;
        cJSON_ArrayForEach(f, it)
        {
            if (strcmp(f->string, "topic") && strcmp(f->string, "group"))
                continue;
            snprintf(errstr, size,
                     "park.%s: is set by the daemon for a subscription "
                     "(%s)",
                     f->string,
                     f->string[0] == 't' ? "eventstream.park.<id>"
                                         : "<group_id>.park.<id>");
            return -1;
        }
        es_park_conf_t pc;
        es_park_conf_defaults(&pc);
        int rc = es_park_conf_parse(it, "park", &pc, errstr, size);
        free(pc.topic);
        free(pc.group);
        if (rc)
            return -1;
        cJSON_Delete(s->park);
        s->park = cJSON_Duplicate(it, 1);
        return 0;
    }
    if (!strcmp(k, "start_offsets")) {
        if (!from_store)
            return 0;
        if (start_offsets_invalid(it, errstr, size))
            return -1;
        s->start_offsets = cJSON_Duplicate(it, 1);
        return 0;
    }
    return fail(errstr, size, k, "unknown key");
}

es_sub_t *es_sub_parse(const cJSON *json, int from_store, char *errstr,
                       size_t errstr_size)
{
    if (!cJSON_IsObject(json)) {
        snprintf(errstr, errstr_size, "a subscription must be a JSON object");
        return NULL;
    }
    char twice[256];
    if (es_json_repeated_key(json, "", twice, sizeof twice)) {
        fail(errstr, errstr_size, twice, "is given twice in its object");
        return NULL;
    }
    es_sub_t *s = calloc(1, sizeof *s);
    s->enabled = 1;
    const cJSON *it;
    cJSON_ArrayForEach(it, json)
    {
        if (parse_key(it, s, from_store, errstr, errstr_size))
            goto fail;
    }
    static const char *const required[] = {"tenant", "topics", "destination"};
    for (size_t i = 0; i < 3; i++)
        if (!cJSON_GetObjectItemCaseSensitive(json, required[i])) {
            fail(errstr, errstr_size, required[i], "is required");
            goto fail;
        }
    if (from_store && !s->id) {
        fail(errstr, errstr_size, "id", "is required");
        goto fail;
    }
    return s;
fail:
    es_sub_destroy(s);
    return NULL;
}

void es_sub_destroy(es_sub_t *s)
{
    if (!s)
        return;
    free(s->id);
    free(s->tenant);
    for (size_t i = 0; i < s->topics.n; i++)
        free(s->topics.v[i]);
    free(s->topics.v);
    free(s->type);
    cJSON_Delete(s->dest_config);
    free(s->filter_type);
    cJSON_Delete(s->filter_config);
    free(s->description);
    free(s->created_at);
    free(s->updated_at);
    cJSON_Delete(s->start_offsets);
    cJSON_Delete(s->park);
    free(s);
}

es_sub_t *es_sub_dup(const es_sub_t *s)
{
    cJSON *j = es_sub_json(s, 1);
    char err[256];
    es_sub_t *d = es_sub_parse(j, 1, err, sizeof err);
    cJSON_Delete(j);
    return d;
}

/* -------------------------------------------------------------- output */

static void add_opt_string(cJSON *o, const char *key, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, key, v);
}

/* {"type": type, "config": config} under key, secrets masked unless
 * revealed (the destination and the filter have this shape). */
static void add_typed(cJSON *o, const char *key, const char *type,
                      const cJSON *config, int reveal_secrets)
{
    cJSON *t = cJSON_AddObjectToObject(o, key);
    cJSON_AddStringToObject(t, "type", type);
    cJSON *c = cJSON_Duplicate(config, 1);
    if (!reveal_secrets)
        mask(c, 0);
    cJSON_AddItemToObject(t, "config", c);
}

cJSON *es_sub_json(const es_sub_t *s, int reveal_secrets)
{
    cJSON *o = cJSON_CreateObject();
    add_opt_string(o, "id", s->id);
    cJSON_AddStringToObject(o, "tenant", s->tenant);
    cJSON *t = cJSON_AddArrayToObject(o, "topics");
    for (size_t i = 0; i < s->topics.n; i++)
        cJSON_AddItemToArray(t, cJSON_CreateString(s->topics.v[i]));
    add_typed(o, "destination", s->type, s->dest_config, reveal_secrets);
    if (s->filter_type)
        add_typed(o, "filter", s->filter_type, s->filter_config,
                  reveal_secrets);
    cJSON_AddBoolToObject(o, "enabled", s->enabled);
    add_opt_string(o, "description", s->description);
    if (s->park)
        cJSON_AddItemToObject(o, "park", cJSON_Duplicate(s->park, 1));
    add_opt_string(o, "created_at", s->created_at);
    add_opt_string(o, "updated_at", s->updated_at);
    if (s->start_offsets)
        cJSON_AddItemToObject(o, "start_offsets",
                              cJSON_Duplicate(s->start_offsets, 1));
    return o;
}

/* ------------------------------------------------------------ ids, time */

void es_sub_new_id(char *out, size_t size)
{
    unsigned char b[8] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, b, sizeof b) != (ssize_t)sizeof b) {
        struct timespec ts; /* no urandom: time and pid, still unique */
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long long v = (unsigned long long)ts.tv_nsec ^
                               ((unsigned long long)ts.tv_sec << 20) ^
                               ((unsigned long long)getpid() << 44);
        memcpy(b, &v, sizeof b);
    }
    if (fd >= 0)
        close(fd);
    snprintf(out, size, "sub-%02x%02x%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7]);
}

void es_sub_now(char *out, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
}

/* ---------------------------------------------------------- state file */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, r;
    do {
        if (n + 65536 > cap) {
            char *grown = realloc(buf, cap = 2 * cap + 65536);
            if (!grown) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
    } while (r > 0);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

int es_subs_load(const char *path, es_sub_t ***subs, size_t *n, char *errstr,
                 size_t errstr_size)
{
    *subs = NULL;
    *n = 0;
    size_t len;
    char *text = slurp(path, &len);
    if (!text) {
        if (errno == ENOENT)
            return 0;
        snprintf(errstr, errstr_size, "%s: cannot read: %s", path,
                 strerror(errno));
        return -1;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "subscriptions");
    if (!cJSON_IsArray(arr)) {
        snprintf(errstr, errstr_size,
                 "%s: not a subscriptions file (no \"subscriptions\" array)",
                 path);
        cJSON_Delete(root);
        return -1;
    }
    *subs = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof **subs);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        char err[512];
        es_sub_t *s = es_sub_parse(it, 1, err, sizeof err);
        if (!s) {
            snprintf(errstr, errstr_size, "%s: subscriptions[%zu]: %s", path,
                     *n, err);
            for (size_t i = 0; i < *n; i++)
                es_sub_destroy((*subs)[i]);
            free(*subs);
            *subs = NULL;
            *n = 0;
            cJSON_Delete(root);
            return -1;
        }
        (*subs)[(*n)++] = s;
    }
    cJSON_Delete(root);
    return 0;
}

static int write_all(int fd, const char *s, size_t len)
{
    while (len) {
        ssize_t w = write(fd, s, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        len -= (size_t)w;
    }
    return 0;
}

/* The rename is made durable by syncing the directory too. */
static void sync_dir(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int es_subs_save(const char *path, es_sub_t *const *subs, size_t n,
                 char *errstr, size_t errstr_size)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON *arr = cJSON_AddArrayToObject(root, "subscriptions");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, es_sub_json(subs[i], 1));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = -1;
    if (fd < 0 || write_all(fd, text, strlen(text)) || write_all(fd, "\n", 1) ||
        fsync(fd)) {
        snprintf(errstr, errstr_size, "%s: cannot write: %s", tmp,
                 strerror(errno));
        goto done;
    }
    if (close(fd)) {
        fd = -1;
        snprintf(errstr, errstr_size, "%s: cannot write: %s", tmp,
                 strerror(errno));
        goto done;
    }
    fd = -1;
    if (rename(tmp, path)) {
        snprintf(errstr, errstr_size, "%s: cannot replace: %s", path,
                 strerror(errno));
        goto done;
    }
    sync_dir(path);
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    if (rc)
        unlink(tmp);
    free(text);
    return rc;
}
