/*
 * Editing and reading JSON text in place of reprinting a cJSON tree, for
 * the host and the bundled sinks (host/src/json_edit.c, compiled into
 * each). Not part of the plugin SDK.
 */
#ifndef ES_JSON_EDIT_H
#define ES_JSON_EDIT_H

#include <stddef.h>

/*
 * A copy of `json` (len bytes of valid JSON, as the decoder took it)
 * without the members the dotted object paths name ("data.email"), every
 * one of them where a key is repeated: what deleting them from the parsed
 * tree and printing it would give, except that every byte not removed is
 * as it came (number spellings, escapes, whitespace inside values). A
 * member's key is compared unescaped. NUL-terminated, its length in
 * *out_len; NULL when out of memory. The caller frees it.
 */
char *es_json_without(const char *json, size_t len, const char *const *paths,
                      size_t npaths, size_t *out_len);

/*
 * The text of the first member named `key` of the object `json` (len
 * bytes of valid JSON; the first, as cJSON's lookups find): 0 with its
 * value's bytes in *at, *n; -1 when there is none (or json is not an
 * object).
 */
int es_json_member_text(const char *json, size_t len, const char *key,
                        const char **at, size_t *n);

#endif
