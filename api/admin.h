/* The admin HTTP API (libmicrohttpd): /health, /ready, /metrics, the /v1
 * calls and POST /v1/reload. Its
 * contract is api/openapi.yaml; docs/api.md has examples. */
#ifndef ES_ADMIN_H
#define ES_ADMIN_H

#include <stddef.h>

#include "config.h"
#include "pipeline.h"

typedef struct es_admin_s es_admin_t;

/* What POST /v1/reload calls (main.c): checks the config and, when it
 * passes, starts the reload. Returns the answer's HTTP status (202: the
 * reload has begun; 400: the config failed the check; 409: no reload now)
 * with its message in msg. */
typedef unsigned (*es_admin_reload_fn)(char *msg, size_t msg_size);

/* Starts serving on conf->api_listen in libmicrohttpd's own thread;
 * reload may be NULL (then POST /v1/reload answers 404). Returns NULL
 * with errstr naming the config key on failure. */
es_admin_t *es_admin_start(const es_config_t *conf, es_pipeline_t *p,
                           es_admin_reload_fn reload, char *errstr,
                           size_t errstr_size);
void es_admin_stop(es_admin_t *a);
/* What es_admin_start would refuse, found without serving: the listen
 * address, the token, the TLS files (read, parsed, the key the
 * certificate's). 0, or -1 with errstr naming the file and the key. */
int es_admin_check(const es_config_t *conf, char *errstr, size_t errstr_size);

#endif
