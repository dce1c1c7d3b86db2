/* eventstreamd --dry-run TOPIC: topic tests from the command line. */
#ifndef ES_DRY_RUN_CLI_H
#define ES_DRY_RUN_CLI_H

#include <stdio.h>

#include "config.h"
#include "loader.h"

/*
 * Each non-blank line of `in` is a test of `topic`, as the body of
 * POST /v1/topics/{topic}/test (api/topic_test.h); its report, the API's
 * answer, is written to `out` as one line of JSON ({"line", "error"} for
 * a line that is not a test). The pipeline is built from `conf` against an
 * in-process broker and a temporary state_dir (changed in `conf`), so no
 * consumer group, broker or state of the config is touched. Returns the
 * exit status: 0 when every line decoded (and any real delivery was
 * taken), 1 otherwise.
 */
int es_dry_run_cli(es_config_t *conf, es_loader_t *loader, const char *topic,
                   FILE *in, FILE *out);

#endif
