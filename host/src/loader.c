#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"
#include "log.h"

const char *es_plugin_kind_name(es_plugin_kind_t kind)
{
    switch (kind) {
    case ES_KIND_SINK:
        return "sink";
    case ES_KIND_FILTER:
        return "filter";
    case ES_KIND_HANDLER:
        return "handler";
    }
    return "unknown";
}

const es_plugin_t *es_loader_find(const es_loader_t *l, const char *name)
{
    for (size_t i = 0; i < l->count; i++)
        if (!strcmp(l->plugins[i].desc->name, name))
            return l->plugins[i].desc;
    return NULL;
}

/* Returns the name of the first callback the plugin's kind needs but
 * lacks, or NULL when all are there. */
static const char *missing_callback(const es_plugin_t *d)
{
    if (!d->init)
        return "init";
    if (!d->destroy)
        return "destroy";
    if (d->kind == ES_KIND_FILTER && !d->filter)
        return "filter";
    if (d->kind != ES_KIND_FILTER && !d->deliver)
        return "deliver";
    return NULL;
}

static int check_descriptor(const es_loader_t *l, const es_plugin_t *d,
                            char *why, size_t why_size)
{
    const char *cb;
    if (!d)
        snprintf(why, why_size, "entry point returned no descriptor");
    else if (d->abi != ES_PLUGIN_ABI_VERSION)
        snprintf(why, why_size,
                 "built for plugin ABI %u, this daemon speaks ABI %u", d->abi,
                 ES_PLUGIN_ABI_VERSION);
    else if (d->size < ES_PLUGIN_MIN_SIZE)
        snprintf(why, why_size,
                 "descriptor size %u is smaller than %zu (not an ABI %u "
                 "descriptor?)",
                 d->size, (size_t)ES_PLUGIN_MIN_SIZE, ES_PLUGIN_ABI_VERSION);
    else if (!d->name || !d->name[0])
        snprintf(why, why_size, "descriptor has no name");
    else if (d->kind != ES_KIND_SINK && d->kind != ES_KIND_FILTER &&
             d->kind != ES_KIND_HANDLER)
        snprintf(why, why_size, "unknown plugin kind %d", (int)d->kind);
    else if ((cb = missing_callback(d)))
        snprintf(why, why_size, "%s plugin \"%s\" has no %s callback",
                 es_plugin_kind_name(d->kind), d->name, cb);
    else if (es_loader_find(l, d->name))
        snprintf(why, why_size, "duplicate plugin name \"%s\"", d->name);
    else
        return 0;
    return -1;
}

int es_loader_load_file(es_loader_t *l, const char *path, char *errstr,
                        size_t errstr_size)
{
    char why[512];
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(errstr, errstr_size, "%s: cannot load: %s", path, dlerror());
        return -1;
    }
    es_plugin_entry_fn entry;
    *(void **)&entry = dlsym(h, ES_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        snprintf(errstr, errstr_size,
                 "%s: no %s symbol (not an eventstream "
                 "plugin?)",
                 path, ES_PLUGIN_ENTRY_SYMBOL);
        dlclose(h);
        return -1;
    }
    const es_plugin_t *d = entry(ES_PLUGIN_ABI_VERSION);
    if (check_descriptor(l, d, why, sizeof why)) {
        snprintf(errstr, errstr_size, "%s: refused: %s", path, why);
        dlclose(h);
        return -1;
    }
    l->plugins = realloc(l->plugins, (l->count + 1) * sizeof *l->plugins);
    l->plugins[l->count++] = (es_loaded_plugin_t){d, strdup(path), h};
    return 0;
}

static int has_so_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 3 && !strcmp(name + n - 3, ".so");
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int es_loader_load_dir(es_loader_t *l, const char *dir, char *errstr,
                       size_t errstr_size)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(errstr, errstr_size, "plugin directory %s: cannot open", dir);
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (has_so_suffix(e->d_name)) {
            /* out of memory: the names so far are loaded */
            char **grown = realloc(names, (n + 1) * sizeof *names);
            if (!grown)
                break;
            names = grown;
            if (!(names[n] = strdup(e->d_name)))
                break;
            n++;
        }
    closedir(d);
    if (n) /* qsort(NULL, 0, ...) is undefined */
        qsort(names, n, sizeof *names, cmp_names);
    int loaded = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096], err[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (es_loader_load_file(l, path, err, sizeof err) == 0) {
            const es_plugin_t *p = l->plugins[l->count - 1].desc;
            es_info("plugin loaded name=%s kind=%s version=%s file=%s", p->name,
                    es_plugin_kind_name(p->kind), p->version ? p->version : "-",
                    path);
            loaded++;
        } else {
            es_err("%s", err);
            l->refused++;
        }
        free(names[i]);
    }
    free(names);
    return loaded;
}

void es_loader_clear(es_loader_t *l)
{
    for (size_t i = 0; i < l->count; i++) {
        dlclose(l->plugins[i].handle);
        free(l->plugins[i].path);
    }
    free(l->plugins);
    memset(l, 0, sizeof *l);
}
