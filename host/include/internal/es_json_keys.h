/*
 * Repeated keys in a JSON tree, for the host's readers of files and bodies
 * an operator wrote and for the bundled handlers' reading of event data
 * (host/src/json_keys.c, compiled into each). Not part of the plugin SDK.
 */
#ifndef ES_JSON_KEYS_H
#define ES_JSON_KEYS_H

#include <stddef.h>

#include <cjson/cJSON.h>

/*
 * A key given twice in one object, anywhere under `node`: 1 with its path
 * ("instances.out", "routes[0].name"; `base` first, may be "") in `path`,
 * else 0. cJSON keeps both members and readers disagree on which counts
 * (lookups the first, loops over the members and the Lua filter the last),
 * so a repeated key is an error, not a guess.
 */
int es_json_repeated_key(const cJSON *node, const char *base, char *path,
                         size_t path_size);

#endif
