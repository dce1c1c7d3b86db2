/* The admin HTTP API (libmicrohttpd): /health, /ready, /metrics. Its
 * contract is api/openapi.yaml; docs/api.md has examples. */
#ifndef ES_ADMIN_H
#define ES_ADMIN_H

#include <stddef.h>

#include "config.h"
#include "pipeline.h"

typedef struct es_admin_s es_admin_t;

/* Starts serving on conf->api_listen in libmicrohttpd's own thread.
 * Returns NULL with errstr naming the config key on failure. */
es_admin_t *es_admin_start(const es_config_t *conf, es_pipeline_t *p,
                           char *errstr, size_t errstr_size);
void es_admin_stop(es_admin_t *a);
/* What es_admin_start would refuse, found without serving: the listen
 * address, the token, the TLS files (read, parsed, the key the
 * certificate's). 0, or -1 with errstr naming the file and the key. */
int es_admin_check(const es_config_t *conf, char *errstr, size_t errstr_size);

#endif
