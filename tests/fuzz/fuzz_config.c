/*
 * Fuzz target for the daemon's config parser (host/src/config.c): an
 * operator's file, where a mistake must stop startup with the file, the
 * key and what is wrong, never with a crash (a "park" array under
 * "subscriptions" was one).
 *
 * Besides "no crash, no sanitizer report": a refusal names the file and
 * then a key and what is wrong, or the line and column of a JSON error; a
 * config taken has no key given twice in any object.
 *
 * Built with libFuzzer by scripts/fuzz, and replayed over
 * tests/fuzz/corpus/config/ by `make check` (tests/fuzz/replay.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    char err[1024] = "";
    es_config_t *c = es_config_parse(text, "conf.json", err, sizeof err);
    if (!c) {
        FUZZ_CHECK(!strncmp(err, "conf.json: ", 11) && strchr(err + 11, ':'),
                   "refused without naming file, key and problem: \"%s\"", err);
    } else {
        FUZZ_CHECK(!fuzz_has_repeated_key(c->root),
                   "a key given twice was taken");
        es_config_destroy(c);
    }
    free(text);
    return 0;
}
