/* Loads plugins from a directory with dlopen(RTLD_NOW | RTLD_LOCAL) and
 * refuses, naming the file and the reason, any that fail the ABI checks. */
#ifndef ES_LOADER_H
#define ES_LOADER_H

#include <stddef.h>

#include "eventstream/plugin.h"

typedef struct es_loaded_plugin_s {
    const es_plugin_t *desc;
    char *path;
    void *handle;
} es_loaded_plugin_t;

typedef struct es_loader_s {
    es_loaded_plugin_t *plugins;
    size_t count;
    size_t refused;
} es_loader_t;

/* Loads one file; returns 0, or -1 with errstr "FILE: reason". */
int es_loader_load_file(es_loader_t *l, const char *path, char *errstr,
                        size_t errstr_size);
/* Loads every *.so in dir (sorted by name), logging each refusal. Returns
 * the number loaded, or -1 when the directory cannot be read. */
int es_loader_load_dir(es_loader_t *l, const char *dir, char *errstr,
                       size_t errstr_size);
const es_plugin_t *es_loader_find(const es_loader_t *l, const char *name);

/* The smallest descriptor of ABI 1: the fields up to `destroy`. */
#define ES_PLUGIN_MIN_SIZE                                                     \
    (offsetof(es_plugin_t, destroy) + sizeof(void (*)(void *)))

/* A descriptor's flags; 0 when it predates them. */
static inline uint32_t es_plugin_flags(const es_plugin_t *d)
{
    return d->size >= offsetof(es_plugin_t, flags) + sizeof d->flags ? d->flags
                                                                     : 0;
}
const char *es_plugin_kind_name(es_plugin_kind_t kind);
/* dlcloses everything; the struct itself is the caller's. */
void es_loader_clear(es_loader_t *l);

#endif
