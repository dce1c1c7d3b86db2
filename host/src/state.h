/* Durable key-value state for handler instances: one SQLite database per
 * instance in the state directory, WAL journal, synchronous=FULL so a
 * committed put survives a crash. */
#ifndef ES_STATE_H
#define ES_STATE_H

#include <stddef.h>

typedef struct es_state_s es_state_t;

es_state_t *es_state_open(const char *state_dir, const char *instance,
                          char *errstr, size_t errstr_size);
void es_state_close(es_state_t *s);

int es_state_get(es_state_t *s, const char *key, char **value, size_t *len);
int es_state_put(es_state_t *s, const char *key, const void *value, size_t len);
int es_state_delete(es_state_t *s, const char *key);
int es_state_begin(es_state_t *s);
int es_state_commit(es_state_t *s);
int es_state_rollback(es_state_t *s);
/* Last SQLite error message, for logs. */
const char *es_state_error(es_state_t *s);

#endif
