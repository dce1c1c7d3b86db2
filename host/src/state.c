#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

struct es_state_s {
    sqlite3 *db;
    sqlite3_stmt *get, *put, *del;
};

static int prepare(es_state_t *s, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v2(s->db, sql, -1, st, NULL) == SQLITE_OK ? 0 : -1;
}

es_state_t *es_state_open(const char *state_dir, const char *instance,
                          char *errstr, size_t errstr_size)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.sqlite", state_dir, instance);
    es_state_t *s = calloc(1, sizeof *s);
    int flags =
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_busy_timeout(s->db, 5000);
    if (sqlite3_exec(s->db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                     "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, "
                     "v BLOB NOT NULL)",
                     NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    if (prepare(s, "SELECT v FROM kv WHERE k = ?1", &s->get) ||
        prepare(s, "INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)",
                &s->put) ||
        prepare(s, "DELETE FROM kv WHERE k = ?1", &s->del))
        goto fail;
    return s;
fail:
    snprintf(errstr, errstr_size, "state %s: %s", path,
             s->db ? sqlite3_errmsg(s->db) : "cannot open");
    es_state_close(s);
    return NULL;
}

void es_state_close(es_state_t *s)
{
    if (!s)
        return;
    sqlite3_finalize(s->get);
    sqlite3_finalize(s->put);
    sqlite3_finalize(s->del);
    sqlite3_close(s->db);
    free(s);
}

/* The FULLMUTEX connection serialises calls, but a prepared statement is
 * shared state across bind/step/reset, so each use holds the db mutex. */
int es_state_get(es_state_t *s, const char *key, char **value, size_t *len)
{
    int rc = -1;
    sqlite3_mutex_enter(sqlite3_db_mutex(s->db));
    sqlite3_bind_text(s->get, 1, key, -1, SQLITE_STATIC);
    int step = sqlite3_step(s->get);
    if (step == SQLITE_ROW) {
        int n = sqlite3_column_bytes(s->get, 0);
        *value = malloc((size_t)n + 1);
        memcpy(*value, sqlite3_column_blob(s->get, 0), (size_t)n);
        (*value)[n] = '\0';
        if (len)
            *len = (size_t)n;
        rc = 1;
    } else if (step == SQLITE_DONE) {
        rc = 0;
    }
    sqlite3_reset(s->get);
    sqlite3_clear_bindings(s->get);
    sqlite3_mutex_leave(sqlite3_db_mutex(s->db));
    return rc;
}

int es_state_put(es_state_t *s, const char *key, const void *value, size_t len)
{
    sqlite3_mutex_enter(sqlite3_db_mutex(s->db));
    sqlite3_bind_text(s->put, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s->put, 2, len ? value : "", (int)len, SQLITE_STATIC);
    int rc = sqlite3_step(s->put) == SQLITE_DONE ? 0 : -1;
    sqlite3_reset(s->put);
    sqlite3_clear_bindings(s->put);
    sqlite3_mutex_leave(sqlite3_db_mutex(s->db));
    return rc;
}

int es_state_delete(es_state_t *s, const char *key)
{
    sqlite3_mutex_enter(sqlite3_db_mutex(s->db));
    sqlite3_bind_text(s->del, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s->del) == SQLITE_DONE ? 0 : -1;
    sqlite3_reset(s->del);
    sqlite3_clear_bindings(s->del);
    sqlite3_mutex_leave(sqlite3_db_mutex(s->db));
    return rc;
}

static int exec(es_state_t *s, const char *sql)
{
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

int es_state_begin(es_state_t *s)
{
    return exec(s, "BEGIN IMMEDIATE");
}

int es_state_commit(es_state_t *s)
{
    return exec(s, "COMMIT");
}

int es_state_rollback(es_state_t *s)
{
    return exec(s, "ROLLBACK");
}

const char *es_state_error(es_state_t *s)
{
    return sqlite3_errmsg(s->db);
}
