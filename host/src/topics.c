#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal/es_json_keys.h"
#include "internal/es_json_edit.h"
#include "log.h"
#include "topics.h"

#define DETAILS "topic-details.json"
#define MAX_DEPTH 3 /* <team>/<topic folder>/topic-details.json at most */

struct es_topics_s {
    char *dir;
    pthread_mutex_t lock;
    es_topic_t **v;
    size_t n;
    /* files that failed to parse, with the stamp seen, so one bad edit is
     * logged once and not at every scan */
    char **bad;
    unsigned long long *bad_stamp;
    size_t nbad;
};

static int fail(char *errstr, size_t errstr_size, const char *file,
                const char *key, const char *fmt, ...) ES_PRINTF(5, 6);

static int fail(char *errstr, size_t errstr_size, const char *file,
                const char *key, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(errstr, errstr_size, "%s: %s: %s", file,
             key[0] ? key : "(top level)", what);
    return -1;
}

static char *slurp(const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(max + 1);
    size_t n = fread(buf, 1, max, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void strv_clear(es_strv_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

void es_topic_destroy(es_topic_t *t)
{
    if (!t)
        return;
    free(t->name);
    free(t->team);
    free(t->file);
    free(t->schema_name);
    cJSON_Delete(t->schema);
    strv_clear(&t->tenant);
    strv_clear(&t->pii);
    free(t->description);
    free(t);
}

static int get_string(const cJSON *o, const char *key, int required, char **out,
                      const char *file, char *errstr, size_t errstr_size)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it)
        return required ? fail(errstr, errstr_size, file, key, "is required")
                        : 0;
    if (!cJSON_IsString(it) || !it->valuestring[0])
        return fail(errstr, errstr_size, file, key,
                    "must be a non-empty string");
    *out = strdup(it->valuestring);
    return 0;
}

static int get_strv(const cJSON *o, const char *key, int required,
                    es_strv_t *out, const char *file, char *errstr,
                    size_t errstr_size)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it)
        return required ? fail(errstr, errstr_size, file, key, "is required")
                        : 0;
    if (!cJSON_IsArray(it))
        return fail(errstr, errstr_size, file, key,
                    "must be an array of strings");
    out->v = calloc((size_t)cJSON_GetArraySize(it) + 1, sizeof(char *));
    const cJSON *el;
    cJSON_ArrayForEach(el, it)
    {
        if (!cJSON_IsString(el) || !el->valuestring[0]) {
            char k[64];
            snprintf(k, sizeof k, "%s[%zu]", key, out->n);
            return fail(errstr, errstr_size, file, k,
                        "must be a non-empty string");
        }
        out->v[out->n++] = strdup(el->valuestring);
    }
    return 0;
}

static int one_of(const cJSON *o, const char *key, const char *a, const char *b,
                  int *is_b, const char *file, char *errstr, size_t errstr_size)
{
    char *s = NULL;
    if (get_string(o, key, 1, &s, file, errstr, errstr_size))
        return -1;
    int rc = 0;
    if (!strcmp(s, b))
        *is_b = 1;
    else if (strcmp(s, a))
        rc = fail(errstr, errstr_size, file, key,
                  "must be \"%s\" or \"%s\", not \"%s\"", a, b, s);
    free(s);
    return rc;
}

static int check_keys(const cJSON *o, const char *file, char *errstr,
                      size_t errstr_size)
{
    static const char *const known[] = {"topic",  "team",       "tenancy",
                                        "format", "schema",     "tenant",
                                        "pii",    "description"};
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        size_t i;
        for (i = 0; i < sizeof known / sizeof known[0]; i++)
            if (!strcmp(known[i], it->string))
                break;
        if (i == sizeof known / sizeof known[0])
            return fail(errstr, errstr_size, file, it->string, "unknown key");
    }
    return 0;
}

/* PII paths must not remove what makes the event a CloudEvent. */
static int check_pii(const es_topic_t *t, const char *file, char *errstr,
                     size_t errstr_size)
{
    static const char *const required[] = {"specversion", "id", "source",
                                           "type"};
    for (size_t i = 0; i < t->pii.n; i++) {
        char key[64];
        snprintf(key, sizeof key, "pii[%zu]", i);
        const char *p = t->pii.v[i];
        if (p[0] == '.' || p[strlen(p) - 1] == '.' || strstr(p, ".."))
            return fail(errstr, errstr_size, file, key,
                        "\"%s\" is not a dotted path such as data.email", p);
        for (size_t k = 0; k < 4; k++)
            if (!strcmp(p, required[k]))
                return fail(errstr, errstr_size, file, key,
                            "\"%s\" is a required CloudEvents attribute", p);
    }
    return 0;
}

static int load_schema(es_topic_t *t, const char *file, char *errstr,
                       size_t errstr_size)
{
    if (!t->avro) {
        if (t->schema_name)
            return fail(errstr, errstr_size, file, "schema",
                        "only allowed with \"format\": \"avro\"");
        return 0;
    }
    if (!t->schema_name)
        return fail(errstr, errstr_size, file, "schema",
                    "is required with \"format\": \"avro\" (the .avsc file "
                    "name beside topic-details.json)");
    if (strchr(t->schema_name, '/'))
        return fail(errstr, errstr_size, file, "schema",
                    "must be a file name in the same folder, not a path");
    char path[8192];
    snprintf(path, sizeof path, "%.*s%s",
             (int)(strrchr(file, '/') ? strrchr(file, '/') - file + 1 : 0),
             file, t->schema_name);
    char *text = slurp(path, 4 << 20);
    if (!text)
        return fail(errstr, errstr_size, file, "schema", "cannot read %s: %s",
                    path, strerror(errno));
    t->schema = cJSON_Parse(text);
    free(text);
    if (!t->schema || !(cJSON_IsObject(t->schema) || cJSON_IsArray(t->schema) ||
                        cJSON_IsString(t->schema)))
        return fail(errstr, errstr_size, file, "schema",
                    "%s is not an Avro schema (JSON object, array or name)",
                    path);
    return 0;
}

es_topic_t *es_topic_parse_file(const char *file, const char *team,
                                char *errstr, size_t errstr_size)
{
    es_topic_t *t = calloc(1, sizeof *t);
    t->file = strdup(file);
    char *text = slurp(file, 1 << 20);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    if (!text) {
        fail(errstr, errstr_size, file, "", "cannot read: %s", strerror(errno));
        goto fail;
    }
    if (!o || !cJSON_IsObject(o)) {
        fail(errstr, errstr_size, file, "",
             o ? "must be a JSON object" : "invalid JSON");
        goto fail;
    }
    char twice[256];
    if (es_json_repeated_key(o, "", twice, sizeof twice)) {
        fail(errstr, errstr_size, file, twice, "is given twice in its object");
        goto fail;
    }
    if (check_keys(o, file, errstr, errstr_size) ||
        get_string(o, "topic", 1, &t->name, file, errstr, errstr_size) ||
        get_string(o, "team", 1, &t->team, file, errstr, errstr_size) ||
        one_of(o, "tenancy", "multi", "single", &t->single_tenant, file, errstr,
               errstr_size) ||
        one_of(o, "format", "json", "avro", &t->avro, file, errstr,
               errstr_size) ||
        get_string(o, "schema", 0, &t->schema_name, file, errstr,
                   errstr_size) ||
        get_strv(o, "tenant", 1, &t->tenant, file, errstr, errstr_size) ||
        get_strv(o, "pii", 0, &t->pii, file, errstr, errstr_size) ||
        get_string(o, "description", 0, &t->description, file, errstr,
                   errstr_size))
        goto fail;
    if (!es_topic_name_valid(t->name)) {
        fail(errstr, errstr_size, file, "topic", "\"%.64s\" %s", t->name,
             ES_TOPIC_NAME_RULE);
        goto fail;
    }
    if (t->tenant.n == 0) {
        fail(errstr, errstr_size, file, "tenant",
             "needs at least one place to look for the tenant id");
        goto fail;
    }
    if (team && strcmp(team, t->team)) {
        fail(errstr, errstr_size, file, "team",
             "\"%s\" is not the team folder it is in (\"%s\")", t->team, team);
        goto fail;
    }
    if (check_pii(t, file, errstr, errstr_size) ||
        load_schema(t, file, errstr, errstr_size))
        goto fail;
    cJSON_Delete(o);
    free(text);
    return t;
fail:
    cJSON_Delete(o);
    free(text);
    es_topic_destroy(t);
    return NULL;
}

/* ------------------------------------------------------------- scanning */

typedef struct found_s {
    char **files;
    size_t n;
} found_t;

static void find_details(const char *dir, int depth, found_t *out)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[8192];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st))
            continue;
        if (S_ISDIR(st.st_mode) && depth < MAX_DEPTH)
            find_details(path, depth + 1, out);
        else if (S_ISREG(st.st_mode) && depth >= 2 &&
                 !strcmp(e->d_name, DETAILS)) {
            out->files = realloc(out->files, (out->n + 1) * sizeof(char *));
            out->files[out->n++] = strdup(path);
        }
    }
    closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Changes when any file in the topic's folder changes (the details or the
 * .avsc beside it). */
static unsigned long long folder_stamp(const char *file)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", file);
    *strrchr(dir, '/') = '\0';
    unsigned long long h = 1469598103934665603ULL;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[8192];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_name[0] == '.' || stat(path, &st) || !S_ISREG(st.st_mode))
            continue;
        unsigned long long v =
            (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL +
            (unsigned long long)st.st_mtim.tv_nsec +
            (unsigned long long)st.st_size;
        for (const char *s = e->d_name; *s; s++)
            v = v * 31 + (unsigned char)*s;
        h += v * 1099511628211ULL; /* order-independent sum */
    }
    closedir(d);
    return h;
}

/* The team is the first folder below topics_dir. */
static void team_of(const char *dir, const char *file, char *team, size_t n)
{
    const char *rel = file + strlen(dir) + 1;
    snprintf(team, n, "%.*s", (int)strcspn(rel, "/"), rel);
}

static es_topic_t *find_by_file(const es_topics_t *t, const char *file,
                                size_t *idx)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->v[i]->file, file)) {
            if (idx)
                *idx = i;
            return t->v[i];
        }
    return NULL;
}

static int check_duplicate(const es_topics_t *t, const es_topic_t *nt,
                           char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i]->file, nt->file) && !strcmp(t->v[i]->name, nt->name))
            return fail(errstr, errstr_size, nt->file, "topic",
                        "\"%s\" is already onboarded by %s", nt->name,
                        t->v[i]->file);
    return 0;
}

static es_topic_t *parse_in(const es_topics_t *t, const char *file,
                            char *errstr, size_t errstr_size)
{
    char team[256];
    team_of(t->dir, file, team, sizeof team);
    unsigned long long stamp = folder_stamp(file);
    es_topic_t *nt = es_topic_parse_file(file, team, errstr, errstr_size);
    if (nt && check_duplicate(t, nt, errstr, errstr_size)) {
        es_topic_destroy(nt);
        return NULL;
    }
    if (nt)
        nt->stamp = stamp;
    return nt;
}

es_topics_t *es_topics_load(const char *dir, char *errstr, size_t errstr_size)
{
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
        snprintf(errstr, errstr_size, "topics_dir: %s is not a directory", dir);
        return NULL;
    }
    es_topics_t *t = calloc(1, sizeof *t);
    t->dir = strdup(dir);
    size_t len = strlen(t->dir);
    while (len > 1 && t->dir[len - 1] == '/')
        t->dir[--len] = '\0';
    pthread_mutex_init(&t->lock, NULL);
    found_t f = {0};
    find_details(t->dir, 1, &f);
    qsort(f.files, f.n, sizeof *f.files, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < f.n && rc == 0; i++) {
        es_topic_t *nt = parse_in(t, f.files[i], errstr, errstr_size);
        if (!nt) {
            rc = -1;
            break;
        }
        t->v = realloc(t->v, (t->n + 1) * sizeof *t->v);
        t->v[t->n++] = nt;
    }
    for (size_t i = 0; i < f.n; i++)
        free(f.files[i]);
    free(f.files);
    if (rc) {
        es_topics_destroy(t);
        return NULL;
    }
    es_info("topics onboarded dir=%s count=%zu", t->dir, t->n);
    return t;
}

static int bad_seen(es_topics_t *t, const char *file, unsigned long long stamp)
{
    for (size_t i = 0; i < t->nbad; i++)
        if (!strcmp(t->bad[i], file)) {
            if (t->bad_stamp[i] == stamp)
                return 1;
            t->bad_stamp[i] = stamp;
            return 0;
        }
    t->bad = realloc(t->bad, (t->nbad + 1) * sizeof *t->bad);
    t->bad_stamp = realloc(t->bad_stamp, (t->nbad + 1) * sizeof *t->bad_stamp);
    t->bad[t->nbad] = strdup(file);
    t->bad_stamp[t->nbad++] = stamp;
    return 0;
}

static void bad_forget(es_topics_t *t, const char *file)
{
    for (size_t i = 0; i < t->nbad; i++)
        if (!strcmp(t->bad[i], file)) {
            free(t->bad[i]);
            t->bad[i] = t->bad[--t->nbad];
            t->bad_stamp[i] = t->bad_stamp[t->nbad];
            return;
        }
}

/* One file found by a scan: parse it when new or changed. */
static int rescan_file(es_topics_t *t, const char *file)
{
    size_t idx = 0;
    es_topic_t *old = find_by_file(t, file, &idx);
    unsigned long long stamp = folder_stamp(file);
    if ((old && old->stamp == stamp) || bad_seen(t, file, stamp))
        return 0;
    char err[1024];
    es_topic_t *nt = parse_in(t, file, err, sizeof err);
    if (!nt) {
        es_err("topic onboarding: %s%s", err,
               old ? " (keeping the previous definition)" : "");
        return 0;
    }
    bad_forget(t, file);
    pthread_mutex_lock(&t->lock);
    if (old) {
        t->v[idx] = nt;
    } else {
        t->v = realloc(t->v, (t->n + 1) * sizeof *t->v);
        t->v[t->n++] = nt;
    }
    pthread_mutex_unlock(&t->lock);
    es_info("topic %s topic=%s team=%s file=%s", old ? "changed" : "onboarded",
            nt->name, nt->team, file);
    es_topic_destroy(old);
    return 1;
}

int es_topics_rescan(es_topics_t *t)
{
    if (!t)
        return 0;
    found_t f = {0};
    find_details(t->dir, 1, &f);
    qsort(f.files, f.n, sizeof *f.files, cmp_str);
    int changes = 0;
    for (size_t i = 0; i < f.n; i++)
        changes += rescan_file(t, f.files[i]);
    for (size_t i = 0; i < t->n;) { /* folders that went away */
        if (bsearch(&t->v[i]->file, f.files, f.n, sizeof *f.files, cmp_str)) {
            i++;
            continue;
        }
        es_topic_t *gone = t->v[i];
        pthread_mutex_lock(&t->lock);
        t->v[i] = t->v[--t->n];
        pthread_mutex_unlock(&t->lock);
        es_info("topic removed topic=%s file=%s", gone->name, gone->file);
        es_topic_destroy(gone);
        changes++;
    }
    for (size_t i = 0; i < f.n; i++)
        free(f.files[i]);
    free(f.files);
    return changes;
}

void es_topics_destroy(es_topics_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        es_topic_destroy(t->v[i]);
    for (size_t i = 0; i < t->nbad; i++)
        free(t->bad[i]);
    free(t->bad);
    free(t->bad_stamp);
    free(t->v);
    free(t->dir);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

void es_topics_lock(es_topics_t *t)
{
    if (t)
        pthread_mutex_lock(&t->lock);
}

void es_topics_unlock(es_topics_t *t)
{
    if (t)
        pthread_mutex_unlock(&t->lock);
}

const es_topic_t *es_topics_find(const es_topics_t *t, const char *name)
{
    for (size_t i = 0; t && i < t->n; i++)
        if (!strcmp(t->v[i]->name, name))
            return t->v[i];
    return NULL;
}

/* ------------------------------------------------------------ JSON views */

static cJSON *strv_json(const es_strv_t *s)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < s->n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(s->v[i]));
    return a;
}

cJSON *es_topic_json(const es_topic_t *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "topic", t->name);
    cJSON_AddStringToObject(o, "team", t->team);
    cJSON_AddStringToObject(o, "tenancy",
                            t->single_tenant ? "single" : "multi");
    cJSON_AddStringToObject(o, "format", t->avro ? "avro" : "json");
    if (t->schema_name)
        cJSON_AddStringToObject(o, "schema", t->schema_name);
    cJSON_AddItemToObject(o, "tenant", strv_json(&t->tenant));
    cJSON_AddItemToObject(o, "pii", strv_json(&t->pii));
    if (t->description)
        cJSON_AddStringToObject(o, "description", t->description);
    cJSON_AddStringToObject(o, "file", t->file);
    return o;
}

static int cmp_topic(const void *a, const void *b)
{
    return strcmp((*(es_topic_t *const *)a)->name,
                  (*(es_topic_t *const *)b)->name);
}

/* A sorted copy of the pointer array; the caller holds the lock. */
static es_topic_t **sorted(const es_topics_t *t)
{
    es_topic_t **v = malloc((t->n + 1) * sizeof *v);
    if (t->n)
        memcpy(v, t->v, t->n * sizeof *v);
    qsort(v, t->n, sizeof *v, cmp_topic);
    return v;
}

cJSON *es_topics_list_json(es_topics_t *t)
{
    cJSON *a = cJSON_CreateArray();
    if (!t)
        return a;
    pthread_mutex_lock(&t->lock);
    es_topic_t **v = sorted(t);
    for (size_t i = 0; i < t->n; i++)
        cJSON_AddItemToArray(a, es_topic_json(v[i]));
    pthread_mutex_unlock(&t->lock);
    free(v);
    return a;
}

cJSON *es_topics_schemas_json(es_topics_t *t)
{
    cJSON *a = cJSON_CreateArray();
    if (!t)
        return a;
    pthread_mutex_lock(&t->lock);
    es_topic_t **v = sorted(t);
    for (size_t i = 0; i < t->n; i++) {
        if (!v[i]->avro)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "topic", v[i]->name);
        cJSON_AddStringToObject(o, "file", v[i]->schema_name);
        cJSON_AddItemToObject(o, "schema", cJSON_Duplicate(v[i]->schema, 1));
        cJSON_AddItemToArray(a, o);
    }
    pthread_mutex_unlock(&t->lock);
    free(v);
    return a;
}

cJSON *es_topics_schema_json(es_topics_t *t, const char *name)
{
    cJSON *s = NULL;
    if (!t)
        return NULL;
    pthread_mutex_lock(&t->lock);
    const es_topic_t *topic = es_topics_find(t, name);
    if (topic && topic->avro)
        s = cJSON_Duplicate(topic->schema, 1);
    pthread_mutex_unlock(&t->lock);
    return s;
}

/* ------------------------------------------------------------------- PII */

/*
 * The members a dotted path names under obj, in every object on the way
 * that has the key: JSON lets a key repeat, and readers disagree on which
 * one counts (cJSON's lookups: the first; the Lua filter and most JSON
 * readers: the last), so a PII field is looked for, and removed, in all
 * of them. Returns how many it found; with `strip` they are deleted, else
 * it stops at the first.
 */
static int pii_walk(cJSON *obj, const char *path, int strip)
{
    if (!cJSON_IsObject(obj))
        return 0;
    size_t len = strcspn(path, ".");
    int leaf = path[len] == '\0', n = 0;
    for (cJSON *it = obj->child, *next; it; it = next) {
        next = it->next;
        if (!it->string || strncmp(it->string, path, len) != 0 ||
            it->string[len] != '\0')
            continue;
        if (!leaf) {
            n += pii_walk(it, path + len + 1, strip);
        } else {
            n++;
            if (strip)
                cJSON_Delete(cJSON_DetachItemViaPointer(obj, it));
        }
        if (n && !strip)
            break;
    }
    return n;
}

int es_topic_has_pii(const es_topic_t *t, const cJSON *ce)
{
    for (size_t i = 0; t && i < t->pii.n; i++)
        if (pii_walk((cJSON *)ce, t->pii.v[i], 0)) /* only reads it */
            return 1;
    return 0;
}

int es_topic_strip_pii(const es_topic_t *t, cJSON *ce, cJSON *removed)
{
    int n = 0;
    for (size_t i = 0; t && i < t->pii.n; i++) {
        if (!pii_walk(ce, t->pii.v[i], 1))
            continue;
        if (removed)
            cJSON_AddItemToArray(removed, cJSON_CreateString(t->pii.v[i]));
        n++;
    }
    return n;
}

char *es_topic_strip_pii_text(const es_topic_t *t, const char *json, size_t len,
                              size_t *out_len)
{
    return es_json_without(json, len, (const char *const *)t->pii.v, t->pii.n,
                           out_len);
}

/* -------------------------------------------------- Avro topics, decoder */

static char *schema_path(const es_topic_t *t)
{
    const char *slash = strrchr(t->file, '/');
    int dir = slash ? (int)(slash - t->file + 1) : 0;
    size_t n = (size_t)dir + strlen(t->schema_name) + 1;
    char *p = malloc(n);
    snprintf(p, n, "%.*s%s", dir, t->file, t->schema_name);
    return p;
}

size_t es_topics_avro(es_topics_t *t, const char *only, es_topic_avro_t **out)
{
    size_t n = 0;
    *out = NULL;
    if (!t)
        return 0;
    pthread_mutex_lock(&t->lock);
    *out = calloc(t->n + 1, sizeof **out);
    for (size_t i = 0; i < t->n; i++) {
        const es_topic_t *tp = t->v[i];
        if (!tp->avro || !tp->schema_name || (only && strcmp(only, tp->name)))
            continue;
        (*out)[n].topic = strdup(tp->name);
        (*out)[n].avsc_path = schema_path(tp);
        (*out)[n].file = strdup(tp->file);
        n++;
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}

void es_topics_avro_free(es_topic_avro_t *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].topic);
        free(v[i].avsc_path);
        free(v[i].file);
    }
    free(v);
}

unsigned long long es_topics_avro_stamp(es_topics_t *t)
{
    unsigned long long h = 1469598103934665603ULL;
    if (!t)
        return 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->n; i++) {
        if (!t->v[i]->avro)
            continue;
        unsigned long long v = t->v[i]->stamp;
        for (const char *s = t->v[i]->name; *s; s++)
            v = v * 31 + (unsigned char)*s;
        h += v * 1099511628211ULL; /* order-independent */
    }
    pthread_mutex_unlock(&t->lock);
    return h;
}
