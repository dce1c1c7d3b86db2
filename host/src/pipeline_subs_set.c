/*
 * The set of subscriptions: applied on the pipeline thread (create,
 * replace, delete), saved to state_dir/subscriptions.json before anything
 * changes, restored at start; and the calls the admin API makes from its
 * own thread (pipeline_subs.h).
 */
#include <dirent.h>

#include "pipeline_subs_int.h"

/* ------------------------------------------------------- the set */

/* es_subscriptions{status="active|disabled|error"}: how many there are. */
static void count_metrics(pl_subs_t *s)
{
    uint64_t n[3] = {0, 0, 0};
    for (size_t i = 0; i < s->n; i++)
        n[s->v[i].b ? 0 : s->v[i].def->enabled ? 2 : 1]++;
    static const char *const labels[3] = {
        "status=\"active\"", "status=\"disabled\"", "status=\"error\""};
    for (int k = 0; k < 3; k++)
        es_gauge_set(es_metrics_gauge("es_subscriptions", labels[k]), n[k]);
}

static entry_t *entry_find(pl_subs_t *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].def->id, id))
            return &s->v[i];
    return NULL;
}

/* Saves the set with `def` in place of (or added as) its id's entry. */
static int save_with(es_pipeline_t *p, const es_sub_t *def, const char *drop,
                     char *errstr, size_t errstr_size)
{
    pl_subs_t *s = p->subs;
    const es_sub_t **v = calloc(s->n + 2, sizeof *v);
    size_t n = 0;
    int replaced = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (drop && !strcmp(s->v[i].def->id, drop))
            continue;
        if (def && !strcmp(s->v[i].def->id, def->id)) {
            v[n++] = def;
            replaced = 1;
        } else {
            v[n++] = s->v[i].def;
        }
    }
    if (def && !replaced)
        v[n++] = def;
    int rc =
        es_subs_save(s->path, (es_sub_t *const *)v, n, errstr, errstr_size);
    free(v);
    return rc;
}

typedef struct put_s {
    es_sub_t *def; /* becomes the entry's */
    bundle_t *b;   /* NULL when disabled */
    int create, status, restore;
    char err[1024];
} put_t;

static void undo_created(es_pipeline_t *p, consumer_t **created, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pl_consumer_retire(p, created[i]);
}

static int apply_put(es_pipeline_t *p, void *arg)
{
    put_t *a = arg;
    pl_subs_t *s = p->subs;
    entry_t *e = entry_find(s, a->def->id);
    if (a->create && e && !a->restore) {
        snprintf(a->err, sizeof a->err, "id: a subscription \"%s\" exists",
                 a->def->id);
        return a->status = 409;
    }
    if (!a->create && !e) {
        snprintf(a->err, sizeof a->err, "no subscription \"%s\"", a->def->id);
        return a->status = 404;
    }
    bundle_t *old = e ? e->b : NULL;
    consumer_t *created[4];
    size_t ncreated = 0;
    if (a->b) {
        if (pl_bundle_plan(p, a->b, old, a->restore, created, &ncreated, a->err,
                           sizeof a->err)) {
            undo_created(p, created, ncreated);
            return a->status = 503;
        }
        cJSON_Delete(a->def->start_offsets);
        a->def->start_offsets = cJSON_Duplicate(a->b->def->start_offsets, 1);
    }
    /* (restoring: saved once all are back, never with some missing) */
    if (!a->restore && save_with(p, a->def, NULL, a->err, sizeof a->err)) {
        es_err("%s", a->err);
        undo_created(p, created, ncreated);
        return a->status = 500;
    }
    if (old)
        pl_bundle_detach(p, old);
    if (a->b)
        pl_bundle_attach(p, a->b);
    pl_settle_consumers(p, old, a->b);
    if (!e) {
        s->v = realloc(s->v, (s->n + 1) * sizeof *s->v);
        e = &s->v[s->n++];
        *e = (entry_t){0};
    } else {
        es_sub_destroy(e->def);
        free(e->error);
        e->error = NULL;
    }
    e->def = a->def;
    e->b = a->b;
    a->def = NULL;
    a->b = NULL;
    es_info("subscription %s id=%s tenant=%s type=%s topics=%zu enabled=%s",
            a->restore  ? "restored"
            : a->create ? "created"
                        : "updated",
            e->def->id, e->def->tenant, e->def->type, e->def->topics.n,
            e->def->enabled ? "true" : "false");
    count_metrics(s);
    return a->status = a->create ? 201 : 200;
}

typedef struct del_s {
    const char *id;
    int status;
    char err[1024];
} del_t;

static int apply_delete(es_pipeline_t *p, void *arg)
{
    del_t *a = arg;
    pl_subs_t *s = p->subs;
    entry_t *e = entry_find(s, a->id);
    if (!e) {
        snprintf(a->err, sizeof a->err, "no subscription \"%s\"", a->id);
        return a->status = 404;
    }
    if (save_with(p, NULL, a->id, a->err, sizeof a->err)) {
        es_err("%s", a->err);
        return a->status = 500;
    }
    if (e->b) {
        pl_bundle_detach(p, e->b);
        pl_settle_consumers(p, e->b, NULL);
    }
    es_info("subscription deleted id=%s", a->id);
    es_sub_destroy(e->def);
    free(e->error);
    *e = s->v[--s->n];
    count_metrics(s);
    return a->status = 204;
}

typedef struct get_s {
    const char *id, *tenant;
    es_sub_t *copy; /* one */
    cJSON *list;    /* all */
} get_t;

static cJSON *view(const es_sub_t *def, const entry_t *e)
{
    cJSON *o = es_sub_json(def, 0);
    const char *status = e->error       ? "error"
                         : e->b         ? "active"
                         : def->enabled ? "error"
                                        : "disabled";
    cJSON_AddStringToObject(o, "status", status);
    if (e->error)
        cJSON_AddStringToObject(o, "error", e->error);
    return o;
}

static int apply_get(es_pipeline_t *p, void *arg)
{
    get_t *a = arg;
    pl_subs_t *s = p->subs;
    if (a->id) {
        entry_t *e = entry_find(s, a->id);
        if (!e)
            return 404;
        a->copy = es_sub_dup(e->def);
        a->list = view(e->def, e);
        return 200;
    }
    a->list = cJSON_CreateArray();
    for (size_t i = 0; i < s->n; i++)
        if (!a->tenant || !strcmp(a->tenant, s->v[i].def->tenant))
            cJSON_AddItemToArray(a->list, view(s->v[i].def, &s->v[i]));
    return 200;
}

/* ------------------------------------------------------- public calls */

/* (result by pointer: it is read after pl_call has filled it) */
static int call_status(int rc, const int *result, char *errstr,
                       size_t errstr_size)
{
    if (rc == -1) {
        snprintf(errstr, errstr_size,
                 "the pipeline did not take the change within %d ms; nothing "
                 "was changed",
                 CALL_TIMEOUT_MS);
        return 503;
    }
    if (rc == -2) {
        snprintf(errstr, errstr_size, "the daemon is shutting down");
        return 503;
    }
    return *result;
}

int es_pipeline_sub_get(es_pipeline_t *p, const char *id, const char *tenant,
                        cJSON **out, char *errstr, size_t errstr_size)
{
    get_t a = {id, tenant, NULL, NULL};
    int result = 0;
    int st = call_status(pl_call(p, apply_get, &a, CALL_TIMEOUT_MS, &result),
                         &result, errstr, errstr_size);
    es_sub_destroy(a.copy);
    if (st == 404)
        snprintf(errstr, errstr_size, "no subscription \"%s\"", id);
    if (st != 200) {
        cJSON_Delete(a.list);
        return st;
    }
    if (id) {
        *out = a.list;
    } else {
        *out = cJSON_CreateObject();
        cJSON_AddItemToObject(*out, "subscriptions", a.list);
    }
    return 200;
}

/* The stored definition, for a PUT that sends masked secrets back. */
static es_sub_t *stored(es_pipeline_t *p, const char *id, int *st, char *errstr,
                        size_t errstr_size)
{
    get_t a = {id, NULL, NULL, NULL};
    int result = 0;
    *st = call_status(pl_call(p, apply_get, &a, CALL_TIMEOUT_MS, &result),
                      &result, errstr, errstr_size);
    cJSON_Delete(a.list);
    if (*st == 404)
        snprintf(errstr, errstr_size, "no subscription \"%s\"", id);
    return a.copy;
}

static int check_topics(es_pipeline_t *p, const es_sub_t *s, char *errstr,
                        size_t errstr_size)
{
    if (!p->topics)
        return 0;
    int rc = 0;
    es_topics_lock(p->topics);
    for (size_t i = 0; i < s->topics.n && !rc; i++)
        if (!es_topics_find(p->topics, s->topics.v[i])) {
            snprintf(errstr, errstr_size,
                     "topics[%zu]: \"%s\" is not an onboarded topic (see "
                     "GET /v1/topics)",
                     i, s->topics.v[i]);
            rc = -1;
        }
    es_topics_unlock(p->topics);
    return rc;
}

/* A subscription's id names its instance and routes: it may not be the
 * name of one of the config's. */
static int check_id(es_pipeline_t *p, const char *id, char *errstr,
                    size_t errstr_size)
{
    if (!es_config_instance(p->conf, id) && !es_config_route(p->conf, id))
        return 0;
    snprintf(errstr, errstr_size,
             "id: \"%s\" is the name of an instance or route of the config",
             id);
    return -1;
}

/*
 * A filter's "script" is a file on the daemon's host, which the Lua
 * plugin would read (and whose first bad token its error would quote):
 * through the API it is taken only inside subscriptions.scripts_dir,
 * after symlinks and "..", so a caller can name the operator's vetted
 * scripts but not /etc. Inline "source" is always taken.
 */
static int check_script(es_pipeline_t *p, const es_sub_t *s, char *errstr,
                        size_t errstr_size)
{
    const cJSON *script =
        s->filter_config
            ? cJSON_GetObjectItemCaseSensitive(s->filter_config, "script")
            : NULL;
    const char *dir = p->conf->sub_scripts_dir;
    if (!script)
        return 0;
    if (!dir) {
        snprintf(errstr, errstr_size,
                 "filter.config.script: a path is taken only under "
                 "subscriptions.scripts_dir, which the config does not set; "
                 "give the script's text in \"source\"");
        return -1;
    }
    if (!cJSON_IsString(script)) {
        snprintf(errstr, errstr_size,
                 "filter.config.script: must be a file's path");
        return -1;
    }
    char *real_dir = realpath(dir, NULL);
    char *real = realpath(script->valuestring, NULL);
    size_t n = real_dir ? strlen(real_dir) : 0;
    int inside = real && real_dir && !strncmp(real, real_dir, n) &&
                 (real[n] == '/' || (n == 1 && real[0] == '/'));
    if (!real)
        snprintf(errstr, errstr_size, "filter.config.script: %s: %s",
                 script->valuestring, strerror(errno));
    else if (!inside)
        snprintf(errstr, errstr_size,
                 "filter.config.script: %s is not under "
                 "subscriptions.scripts_dir (%s)",
                 script->valuestring, dir);
    free(real);
    free(real_dir);
    return inside ? 0 : -1;
}

int es_pipeline_sub_put(es_pipeline_t *p, const char *id, const cJSON *body,
                        cJSON **out, char *errstr, size_t errstr_size)
{
    put_t a = {0};
    a.create = id == NULL;
    a.def = es_sub_parse(body, 0, errstr, errstr_size);
    if (!a.def)
        return 400;
    int st = 400;
    char now[40];
    es_sub_now(now, sizeof now);
    if (id && a.def->id && strcmp(id, a.def->id)) {
        snprintf(errstr, errstr_size, "id: \"%s\" differs from the path's",
                 a.def->id);
        goto done;
    }
    if (!a.def->id) {
        char fresh[40];
        es_sub_new_id(fresh, sizeof fresh);
        a.def->id = strdup(id ? id : fresh);
    }
    if (check_id(p, a.def->id, errstr, errstr_size) ||
        check_topics(p, a.def, errstr, errstr_size) ||
        check_script(p, a.def, errstr, errstr_size))
        goto done;
    if (!a.create) {
        es_sub_t *old = stored(p, id, &st, errstr, errstr_size);
        if (!old)
            goto done;
        es_sub_keep_secrets(a.def, old);
        a.def->created_at = old->created_at ? strdup(old->created_at) : NULL;
        es_sub_destroy(old);
    } else {
        a.def->created_at = strdup(now);
    }
    a.def->updated_at = strdup(now);
    st = 400;
    if (a.def->enabled && !(a.b = pl_bundle_new(p, a.def, errstr, errstr_size)))
        goto done;
    char sid[ES_SUB_ID_MAX + 1];
    snprintf(sid, sizeof sid, "%s", a.def->id);
    int result = 0;
    st = call_status(pl_call(p, apply_put, &a, CALL_TIMEOUT_MS, &result),
                     &result, errstr, errstr_size);
    if (st >= 300 && a.err[0])
        snprintf(errstr, errstr_size, "%s", a.err);
    /* The set owns the definition now: answer with what GET shows. */
    if (st < 300 &&
        es_pipeline_sub_get(p, sid, NULL, out, errstr, errstr_size) != 200) {
        *out = cJSON_CreateObject();
        cJSON_AddStringToObject(*out, "id", sid);
    }
done:
    pl_bundle_free(a.b);
    es_sub_destroy(a.def);
    return st;
}

int es_pipeline_sub_delete(es_pipeline_t *p, const char *id, char *errstr,
                           size_t errstr_size)
{
    del_t a = {id, 0, ""};
    int result = 0;
    int st = call_status(pl_call(p, apply_delete, &a, CALL_TIMEOUT_MS, &result),
                         &result, errstr, errstr_size);
    if (st >= 300 && a.err[0])
        snprintf(errstr, errstr_size, "%s", a.err);
    return st;
}

/* ------------------------------------------------- start and stop */

static void clean_scripts(es_pipeline_t *p)
{
    char dir[4200];
    pl_subs_dir(p, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n > 4 && !strcmp(de->d_name + n - 4, ".lua")) {
            char path[4600];
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

/* At start, on the constructing thread (nothing else runs yet): the
 * stored subscriptions are activated again, each resuming from its
 * group's committed offsets and never before its recorded start. One
 * that cannot be (its plugin refuses the config now) is kept, marked
 * "error", and logged. */
int pl_subs_init(es_pipeline_t *p, char *errstr, size_t errstr_size)
{
    pl_subs_t *s = p->subs = calloc(1, sizeof *s);
    size_t n = strlen(p->conf->state_dir) + 32;
    s->path = malloc(n);
    snprintf(s->path, n, "%s/subscriptions.json", p->conf->state_dir);
    es_sub_t **defs;
    size_t count;
    if (es_subs_load(s->path, &defs, &count, errstr, errstr_size))
        return -1;
    clean_scripts(p);
    for (size_t i = 0; i < count; i++) {
        put_t a = {.def = defs[i], .create = 1, .restore = 1};
        char err[1024] = "";
        if (defs[i]->enabled &&
            !(a.b = pl_bundle_new(p, defs[i], err, sizeof err)))
            es_err("subscription id=%s cannot start: %s", defs[i]->id, err);
        else if (apply_put(p, &a) >= 300)
            es_err("subscription id=%s cannot start: %s", defs[i]->id, a.err);
        if (a.def) { /* not applied: kept, marked */
            s->v = realloc(s->v, (s->n + 1) * sizeof *s->v);
            s->v[s->n++] = (entry_t){a.def, NULL, strdup(err[0] ? err : a.err)};
        }
        pl_bundle_free(a.b);
    }
    free(defs);
    count_metrics(s);
    if (!count)
        return 0;
    es_info("%zu subscription(s) restored from %s", count, s->path);
    char err[1024]; /* with any start offsets recorded just now */
    if (save_with(p, NULL, NULL, err, sizeof err))
        es_err("%s", err);
    return 0;
}

void pl_subs_destroy(es_pipeline_t *p)
{
    pl_subs_t *s = p->subs;
    if (!s)
        return;
    /* Plugins were destroyed with the others (p->dyn); free the rest. */
    for (size_t i = 0; i < p->ndyn; i++)
        p->dyn[i]->plugin = NULL;
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].b) {
            s->v[i].b->dest = NULL;
            pl_bundle_free(s->v[i].b);
        }
        es_sub_destroy(s->v[i].def);
        free(s->v[i].error);
    }
    while (s->retiring) {
        bundle_t *b = s->retiring;
        s->retiring = b->next;
        b->dest = NULL;
        pl_bundle_free(b);
    }
    for (size_t i = 0; i < p->ndyn; i++)
        free(p->dyn[i]);
    for (size_t i = 0; i < s->nretired; i++)
        pl_consumer_destroy(s->retired[i]);
    free(s->retired);
    free(s->v);
    free(s->path);
    free(s);
    free(p->dyn);
    p->subs = NULL;
}
