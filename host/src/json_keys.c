/* Repeated keys in a JSON tree (see internal/es_json_keys.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/es_json_keys.h"

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const cJSON *const *)a)->string,
                  (*(const cJSON *const *)b)->string);
}

/* The object's members sorted by name (a body can have many: no n²). */
static const cJSON *repeated_member(const cJSON *obj)
{
    size_t n = (size_t)cJSON_GetArraySize(obj), i = 0;
    if (n < 2)
        return NULL;
    const cJSON **v = malloc(n * sizeof *v), *it, *twice = NULL;
    if (!v)
        return NULL;
    cJSON_ArrayForEach(it, obj)
    {
        v[i++] = it;
    }
    qsort(v, n, sizeof *v, by_name);
    for (i = 1; i < n && !twice; i++)
        if (!strcmp(v[i - 1]->string, v[i]->string))
            twice = v[i];
    free(v);
    return twice;
}

/* Appends a member's name or an element's index to the path in
 * path[0..len): the new length (the path is cut at the buffer's end). */
static size_t path_append(char *path, size_t size, size_t len,
                          const cJSON *parent, const cJSON *it, size_t i)
{
    int n = cJSON_IsObject(parent)
                ? snprintf(path + len, size - len, "%s%s", len ? "." : "",
                           it->string)
                : snprintf(path + len, size - len, "[%zu]", i);
    return n < 0 || (size_t)n >= size - len ? size - 1 : len + (size_t)n;
}

/* One path buffer for the whole walk: the nesting can be deep. */
static int repeated_under(const cJSON *node, char *path, size_t size,
                          size_t len)
{
    if (!cJSON_IsObject(node) && !cJSON_IsArray(node))
        return 0;
    const cJSON *twice = cJSON_IsObject(node) ? repeated_member(node) : NULL;
    if (twice) {
        path_append(path, size, len, node, twice, 0);
        return 1;
    }
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, node)
    {
        size_t n = path_append(path, size, len, node, it, i++);
        if (repeated_under(it, path, size, n))
            return 1;
        path[len] = '\0';
    }
    return 0;
}

int es_json_repeated_key(const cJSON *node, const char *base, char *path,
                         size_t path_size)
{
    if (path_size < 2)
        return 0;
    snprintf(path, path_size, "%s", base);
    size_t len = strlen(path);
    int found = repeated_under(node, path, path_size, len);
    if (!found)
        path[len] = '\0';
    return found;
}
