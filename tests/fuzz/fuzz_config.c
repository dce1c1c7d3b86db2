/*
 * Fuzz target for the daemon's config parser (host/src/config.c): an
 * operator's file, where a mistake must stop startup with the file, the
 * key and what is wrong, never with a crash (a "park" array under
 * "subscriptions" was one).
 *
 * Besides "no crash, no sanitizer report": a refusal names the file and
 * then a key and what is wrong, or the line and column of a JSON error; a
 * config taken has no key given twice in any object. The input is also
 * taken as a URL for GET /v1/config's masking (es_url_mask): a masked URL
 * keeps its scheme and has nothing left to mask (masking it again changes
 * nothing).
 *
 * Built with libFuzzer by scripts/fuzz, and replayed over
 * tests/fuzz/corpus/config/ by `make check` (tests/fuzz/replay.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "internal/es_url_mask.h"

static void check_url_mask(const char *url)
{
    char *m = es_url_mask(url);
    if (!m)
        return;
    const char *rest = es_url_after_scheme(url);
    FUZZ_CHECK(rest && !strncmp(m, url, (size_t)(rest - url)),
               "the scheme changed: \"%s\" -> \"%s\"", url, m);
    char *again = es_url_mask(m);
    FUZZ_CHECK(!again || !strcmp(again, m),
               "something left to mask: \"%s\" -> \"%s\" -> \"%s\"", url, m,
               again);
    free(again);
    free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    check_url_mask(text);
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
