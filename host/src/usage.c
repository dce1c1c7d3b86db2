#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "internal/es_json_int.h"
#include "log.h"
#include "usage.h"

#define BUCKETS 4096
#define PRUNE_INTERVAL_S 60

/* Counts not yet in the database, per minute and key. */
typedef struct entry_s {
    int64_t minute; /* bucket start, seconds since the epoch */
    char *tenant;   /* NULL: no tenant found */
    char *topic;
    char *dest; /* NULL: the consumed row */
    uint64_t events, bytes;
    struct entry_s *next;
} entry_t;

struct es_usage_s {
    char *path;
    es_usage_retention_t retention;
    pthread_mutex_t lock; /* the pending counts */
    entry_t *b[BUCKETS];
    size_t n;
    pthread_mutex_t db_lock; /* the database and the statements */
    sqlite3 *db;
    sqlite3_stmt *update, *insert;
    int64_t last_prune;
};

static const int grans[] = {60, 3600, 86400, 0}; /* 0: the totals */

static int same(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

static uint64_t hash(int64_t minute, const char *tenant, const char *topic,
                     const char *dest)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)minute;
    const char *parts[] = {tenant ? tenant : "", topic, dest ? dest : ""};
    for (int i = 0; i < 3; i++) {
        for (const char *s = parts[i]; *s; s++)
            h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return h;
}

/* Caller holds the lock. */
static entry_t *entry(es_usage_t *u, int64_t minute, const char *tenant,
                      const char *topic, const char *dest)
{
    entry_t **b = &u->b[hash(minute, tenant, topic, dest) % BUCKETS];
    for (entry_t *e = *b; e; e = e->next)
        if (e->minute == minute && same(e->tenant, tenant) &&
            !strcmp(e->topic, topic) && same(e->dest, dest))
            return e;
    entry_t *e = calloc(1, sizeof *e);
    e->minute = minute;
    e->tenant = tenant ? strdup(tenant) : NULL;
    e->topic = strdup(topic);
    e->dest = dest ? strdup(dest) : NULL;
    e->next = *b;
    *b = e;
    u->n++;
    return e;
}

static void entry_free(entry_t *e)
{
    free(e->tenant);
    free(e->topic);
    free(e->dest);
    free(e);
}

void es_usage_add_at(es_usage_t *u, int64_t when, const char *tenant,
                     const char *topic, const char *destination, size_t bytes)
{
    if (!u)
        return;
    int64_t minute = when - (when % 60 + 60) % 60;
    pthread_mutex_lock(&u->lock);
    entry_t *e = entry(u, minute, tenant, topic, destination);
    e->events++;
    e->bytes += bytes;
    pthread_mutex_unlock(&u->lock);
}

void es_usage_add(es_usage_t *u, const char *tenant, const char *topic,
                  const char *destination, size_t bytes)
{
    es_usage_add_at(u, (int64_t)time(NULL), tenant, topic, destination, bytes);
}

/* ------------------------------------------------------------- database */

static const char schema_sql[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS usage("
    " gran INTEGER NOT NULL,"  /* 60, 3600, 86400; 0 for the totals */
    " start INTEGER NOT NULL," /* bucket start, epoch seconds */
    " tenant TEXT, topic TEXT NOT NULL, dest TEXT,"
    " events INTEGER NOT NULL, bytes INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS usage_key ON usage(gran, start, topic, tenant,"
    " dest);"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);";

static void format_time(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int exec(es_usage_t *u, const char *sql, char *errstr, size_t n)
{
    char *msg = NULL;
    if (sqlite3_exec(u->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    snprintf(errstr, n, "usage: %s: %s", u->path, msg ? msg : "error");
    sqlite3_free(msg);
    return -1;
}

static int db_init(es_usage_t *u, char *errstr, size_t n)
{
    if (sqlite3_open_v2(u->path, &u->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(errstr, n, "usage: cannot open %s: %s", u->path,
                 u->db ? sqlite3_errmsg(u->db) : "out of memory");
        return -1;
    }
    sqlite3_busy_timeout(u->db, 5000);
    if (exec(u, schema_sql, errstr, n))
        return -1;
    char since[32];
    format_time((int64_t)time(NULL), since, sizeof since);
    char sql[200];
    snprintf(sql, sizeof sql,
             "INSERT OR IGNORE INTO meta VALUES('since', '%s');", since);
    if (exec(u, sql, errstr, n))
        return -1;
    if (sqlite3_prepare_v2(u->db,
                           "UPDATE usage SET events = events + ?1, bytes = "
                           "bytes + ?2 WHERE gran = ?3 AND start = ?4 AND "
                           "topic = ?5 AND tenant IS ?6 AND dest IS ?7",
                           -1, &u->update, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(u->db,
                           "INSERT INTO usage(events, bytes, gran, start, "
                           "topic, tenant, dest) VALUES(?1, ?2, ?3, ?4, ?5, "
                           "?6, ?7)",
                           -1, &u->insert, NULL) != SQLITE_OK) {
        snprintf(errstr, n, "usage: %s: %s", u->path, sqlite3_errmsg(u->db));
        return -1;
    }
    return 0;
}

static void db_close(es_usage_t *u)
{
    sqlite3_finalize(u->update);
    sqlite3_finalize(u->insert);
    sqlite3_close(u->db);
    u->update = u->insert = NULL;
    u->db = NULL;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

/* Adds one count to one bucket; caller holds db_lock. */
static int db_add(es_usage_t *u, int gran, int64_t start, const char *tenant,
                  const char *topic, const char *dest, uint64_t events,
                  uint64_t bytes)
{
    sqlite3_stmt *stmts[] = {u->update, u->insert};
    for (int k = 0; k < 2; k++) {
        sqlite3_stmt *s = stmts[k];
        sqlite3_reset(s);
        sqlite3_bind_int64(s, 1, (sqlite3_int64)events);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)bytes);
        sqlite3_bind_int(s, 3, gran);
        sqlite3_bind_int64(s, 4, start);
        bind_text(s, 5, topic);
        bind_text(s, 6, tenant);
        bind_text(s, 7, dest);
        if (sqlite3_step(s) != SQLITE_DONE)
            return -1;
        if (k == 0 && sqlite3_changes(u->db) > 0)
            return 0;
    }
    return 0;
}

static int db_add_entry(es_usage_t *u, const entry_t *e)
{
    for (size_t g = 0; g < sizeof grans / sizeof grans[0]; g++) {
        int64_t start = grans[g] ? e->minute - e->minute % grans[g] : 0;
        if (db_add(u, grans[g], start, e->tenant, e->topic, e->dest, e->events,
                   e->bytes))
            return -1;
    }
    return 0;
}

/* A usage.json of an older version holds the totals: import it once. */
static void import_json(es_usage_t *u, const char *state_dir)
{
    char path[4200], done_path[4300];
    snprintf(path, sizeof path, "%s/usage.json", state_dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    size_t cap = 1 << 16, len = 0, n;
    char *text = malloc(cap), *grown;
    while (text && (n = fread(text + len, 1, cap - len - 1, f)) > 0)
        if ((len += n) + 1 >= cap) {
            grown = realloc(text, cap *= 2);
            if (!grown)
                free(text);
            text = grown;
        }
    fclose(f);
    if (!text)
        return; /* out of memory: the old totals are not migrated now */
    text[len] = '\0';
    cJSON *o = cJSON_Parse(text);
    free(text);
    const char *parts[] = {"consumed", "delivered"};
    char err[512];
    exec(u, "BEGIN", err, sizeof err);
    for (int k = 0; k < 2; k++) {
        const cJSON *r;
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(o, parts[k]))
        {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "tenant"),
                        *tp = cJSON_GetObjectItemCaseSensitive(r, "topic"),
                        *d = cJSON_GetObjectItemCaseSensitive(r, "destination"),
                        *ev = cJSON_GetObjectItemCaseSensitive(r, "events"),
                        *by = cJSON_GetObjectItemCaseSensitive(r, "bytes");
            /* counts beyond a long long (hand-edited) are skipped, not
             * cast: that would be undefined */
            if (!cJSON_IsString(tp) ||
                !es_json_int_in(ev, 0, ES_JSON_INT_LIMIT) ||
                !es_json_int_in(by, 0, ES_JSON_INT_LIMIT) ||
                (k == 1 && !cJSON_IsString(d)))
                continue;
            db_add(u, 0, 0, cJSON_IsString(t) ? t->valuestring : NULL,
                   tp->valuestring, k ? d->valuestring : NULL,
                   (uint64_t)ev->valuedouble, (uint64_t)by->valuedouble);
        }
    }
    const cJSON *since = cJSON_GetObjectItemCaseSensitive(o, "since");
    if (cJSON_IsString(since)) {
        sqlite3_stmt *s = NULL;
        sqlite3_prepare_v2(u->db,
                           "UPDATE meta SET value = ?1 WHERE key = 'since'", -1,
                           &s, NULL);
        sqlite3_bind_text(s, 1, since->valuestring, -1, SQLITE_STATIC);
        sqlite3_step(s);
        sqlite3_finalize(s);
    }
    exec(u, "COMMIT", err, sizeof err);
    cJSON_Delete(o);
    snprintf(done_path, sizeof done_path, "%s.imported", path);
    rename(path, done_path);
    es_info("usage: imported the totals of %s into %s", path, u->path);
}

es_usage_t *es_usage_open(const char *state_dir,
                          const es_usage_retention_t *retention, char *errstr,
                          size_t errstr_size)
{
    es_usage_t *u = calloc(1, sizeof *u);
    char path[4200];
    snprintf(path, sizeof path, "%s/usage.sqlite", state_dir);
    u->path = strdup(path);
    u->retention = *retention;
    pthread_mutex_init(&u->lock, NULL);
    pthread_mutex_init(&u->db_lock, NULL);
    char err[1024];
    if (db_init(u, err, sizeof err)) {
        db_close(u);
        char aside[4300];
        snprintf(aside, sizeof aside, "%s.corrupt", u->path);
        if (rename(u->path, aside) == 0)
            es_err("%s; moved to %s, counting starts again", err, aside);
        if (db_init(u, errstr, errstr_size)) {
            es_usage_destroy(u);
            return NULL;
        }
    }
    import_json(u, state_dir);
    return u;
}

/* Takes the pending counts; the caller owns the list (next-linked). */
static entry_t *take_pending(es_usage_t *u)
{
    entry_t *list = NULL;
    pthread_mutex_lock(&u->lock);
    for (size_t b = 0; b < BUCKETS; b++) {
        for (entry_t *e = u->b[b], *next; e; e = next) {
            next = e->next;
            e->next = list;
            list = e;
        }
        u->b[b] = NULL;
    }
    u->n = 0;
    pthread_mutex_unlock(&u->lock);
    return list;
}

/* After a failed write: the counts go back to pending. */
static void give_back(es_usage_t *u, entry_t *list)
{
    pthread_mutex_lock(&u->lock);
    for (entry_t *e = list, *next; e; e = next) {
        next = e->next;
        entry_t *p = entry(u, e->minute, e->tenant, e->topic, e->dest);
        p->events += e->events;
        p->bytes += e->bytes;
        entry_free(e);
    }
    pthread_mutex_unlock(&u->lock);
}

static void prune(es_usage_t *u, int64_t now)
{
    if (now - u->last_prune < PRUNE_INTERVAL_S)
        return;
    u->last_prune = now;
    int64_t keep[] = {(int64_t)u->retention.minute_hours * 3600,
                      (int64_t)u->retention.hour_days * 86400,
                      (int64_t)u->retention.day_days * 86400};
    for (int g = 0; g < 3; g++) {
        char sql[200], err[512];
        snprintf(sql, sizeof sql,
                 "DELETE FROM usage WHERE gran = %d AND start < %lld", grans[g],
                 (long long)(now - keep[g]));
        if (exec(u, sql, err, sizeof err))
            es_warn("%s", err);
    }
}

int es_usage_save(es_usage_t *u, char *errstr, size_t errstr_size)
{
    if (!u)
        return 0;
    pthread_mutex_lock(&u->db_lock);
    entry_t *list = take_pending(u);
    int rc = 0;
    if (list) {
        rc = exec(u, "BEGIN", errstr, errstr_size);
        for (entry_t *e = list; e && rc == 0; e = e->next)
            if (db_add_entry(u, e)) {
                snprintf(errstr, errstr_size, "usage: cannot write %s: %s",
                         u->path, sqlite3_errmsg(u->db));
                rc = -1;
            }
        if (rc == 0)
            rc = exec(u, "COMMIT", errstr, errstr_size);
        if (rc) {
            char ignored[256];
            exec(u, "ROLLBACK", ignored, sizeof ignored);
            give_back(u, list);
        } else {
            for (entry_t *e = list, *next; e; e = next) {
                next = e->next;
                entry_free(e);
            }
        }
    }
    if (rc == 0)
        prune(u, (int64_t)time(NULL));
    pthread_mutex_unlock(&u->db_lock);
    return rc;
}

void es_usage_destroy(es_usage_t *u)
{
    if (!u)
        return;
    char err[512];
    if (u->db && es_usage_save(u, err, sizeof err))
        es_err("%s", err);
    for (entry_t *e = take_pending(u), *next; e; e = next) {
        next = e->next;
        entry_free(e);
    }
    db_close(u);
    pthread_mutex_destroy(&u->lock);
    pthread_mutex_destroy(&u->db_lock);
    free(u->path);
    free(u);
}

/* --------------------------------------------------------------- queries */

static cJSON *row_json(sqlite3_stmt *s, int col)
{
    cJSON *o = cJSON_CreateObject();
    const char *tenant = (const char *)sqlite3_column_text(s, col);
    const char *dest = (const char *)sqlite3_column_text(s, col + 2);
    if (tenant)
        cJSON_AddStringToObject(o, "tenant", tenant);
    else
        cJSON_AddNullToObject(o, "tenant");
    cJSON_AddStringToObject(o, "topic",
                            (const char *)sqlite3_column_text(s, col + 1));
    if (dest)
        cJSON_AddStringToObject(o, "destination", dest);
    cJSON_AddNumberToObject(o, "events",
                            (double)sqlite3_column_int64(s, col + 3));
    cJSON_AddNumberToObject(o, "bytes",
                            (double)sqlite3_column_int64(s, col + 4));
    return o;
}

/* Rows of `s` (tenant, topic, dest, events, bytes from column `col`) into
 * o's "consumed" and "delivered" arrays. */
static void add_rows(cJSON *o, sqlite3_stmt *s, int col)
{
    cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "consumed");
    cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "delivered");
    cJSON_AddItemToArray(sqlite3_column_type(s, col + 2) == SQLITE_NULL ? c : d,
                         row_json(s, col));
}

#define FILTERS                                                                \
    " AND (?3 IS NULL OR tenant = ?3) AND (?4 IS NULL OR topic = ?4)"          \
    " AND (?5 IS NULL OR dest = ?5)"

static sqlite3_stmt *prepare(es_usage_t *u, const char *sql,
                             const es_usage_query_t *q, char *errstr,
                             size_t errstr_size)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(u->db, sql, -1, &s, NULL) != SQLITE_OK) {
        snprintf(errstr, errstr_size, "usage: %s", sqlite3_errmsg(u->db));
        return NULL;
    }
    sqlite3_bind_int(s, 1, q->granularity);
    bind_text(s, 3, q->tenant);
    bind_text(s, 4, q->topic);
    bind_text(s, 5, q->destination);
    return s;
}

cJSON *es_usage_json(es_usage_t *u, const char *tenant, const char *topic,
                     const char *destination)
{
    char err[512];
    if (es_usage_save(u, err, sizeof err))
        es_warn("%s", err);
    es_usage_query_t q = {0, 0, 0, tenant, topic, destination};
    cJSON *o = cJSON_CreateObject();
    pthread_mutex_lock(&u->db_lock);
    sqlite3_stmt *s = NULL;
    sqlite3_prepare_v2(u->db, "SELECT value FROM meta WHERE key = 'since'", -1,
                       &s, NULL);
    if (sqlite3_step(s) == SQLITE_ROW)
        cJSON_AddStringToObject(o, "since",
                                (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    cJSON_AddArrayToObject(o, "consumed");
    cJSON_AddArrayToObject(o, "delivered");
    s = prepare(u,
                "SELECT tenant, topic, dest, events, bytes FROM usage WHERE "
                "gran = ?1 AND ?2 IS NULL" FILTERS
                " ORDER BY tenant, topic, dest",
                &q, err, sizeof err);
    while (s && sqlite3_step(s) == SQLITE_ROW)
        add_rows(o, s, 0);
    sqlite3_finalize(s);
    pthread_mutex_unlock(&u->db_lock);
    return o;
}

static const char *gran_name(int g)
{
    return g == 60 ? "minute" : g == 3600 ? "hour" : "day";
}

int es_usage_granularity(const char *name)
{
    if (!strcmp(name, "minute"))
        return 60;
    if (!strcmp(name, "hour"))
        return 3600;
    if (!strcmp(name, "day"))
        return 86400;
    return -1;
}

static void add_time(cJSON *o, const char *key, int64_t t)
{
    char buf[32];
    format_time(t, buf, sizeof buf);
    cJSON_AddStringToObject(o, key, buf);
}

static int64_t retention_of(const es_usage_t *u, int g)
{
    return g == 60     ? (int64_t)u->retention.minute_hours * 3600
           : g == 3600 ? (int64_t)u->retention.hour_days * 86400
                       : (int64_t)u->retention.day_days * 86400;
}

cJSON *es_usage_window_json(es_usage_t *u, const es_usage_query_t *q,
                            char *errstr, size_t errstr_size)
{
    if (es_usage_save(u, errstr, errstr_size))
        es_warn("%s", errstr);
    int g = q->granularity;
    int64_t from = q->from - ((q->from % g) + g) % g;
    int64_t to = q->to + (g - ((q->to % g) + g) % g) % g;
    int64_t horizon = (int64_t)time(NULL) - retention_of(u, g);
    horizon -= (horizon % g + g) % g;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "granularity", gran_name(g));
    add_time(o, "from", from);
    add_time(o, "to", to);
    add_time(o, "retained_from", horizon);
    cJSON *buckets = cJSON_AddArrayToObject(o, "buckets");
    cJSON_AddArrayToObject(o, "consumed");
    cJSON_AddArrayToObject(o, "delivered");
    pthread_mutex_lock(&u->db_lock);
    sqlite3_stmt *s = prepare(u,
                              "SELECT start, tenant, topic, dest, events, "
                              "bytes FROM usage WHERE gran = ?1 AND start >= "
                              "?2 AND start < ?6" FILTERS
                              " ORDER BY start, tenant, topic, dest",
                              q, errstr, errstr_size);
    cJSON *bucket = NULL;
    int64_t cur = INT64_MIN;
    if (s) {
        sqlite3_bind_int64(s, 2, from);
        sqlite3_bind_int64(s, 6, to);
    }
    while (s && sqlite3_step(s) == SQLITE_ROW) {
        int64_t start = sqlite3_column_int64(s, 0);
        if (!bucket || start != cur) {
            bucket = cJSON_CreateObject();
            add_time(bucket, "start", start);
            cJSON_AddArrayToObject(bucket, "consumed");
            cJSON_AddArrayToObject(bucket, "delivered");
            cJSON_AddItemToArray(buckets, bucket);
            cur = start;
        }
        add_rows(bucket, s, 1);
    }
    sqlite3_finalize(s);
    sqlite3_stmt *t = s ? prepare(u,
                                  "SELECT tenant, topic, dest, SUM(events), "
                                  "SUM(bytes) FROM usage WHERE gran = ?1 AND "
                                  "start >= ?2 AND start < ?6" FILTERS
                                  " GROUP BY tenant, topic, dest"
                                  " ORDER BY tenant, topic, dest",
                                  q, errstr, errstr_size)
                        : NULL;
    if (t) {
        sqlite3_bind_int64(t, 2, from);
        sqlite3_bind_int64(t, 6, to);
    }
    while (t && sqlite3_step(t) == SQLITE_ROW)
        add_rows(o, t, 0);
    sqlite3_finalize(t);
    pthread_mutex_unlock(&u->db_lock);
    if (!s || !t) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ------------------------------------------------------------ time input */

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (!isdigit((unsigned char)**p))
            return -1;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return 0;
}

static int expect(const char **p, const char *chars)
{
    if (!**p || !strchr(chars, **p))
        return -1;
    (*p)++;
    return 0;
}

int es_usage_parse_time(const char *s, int64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long long epoch = strtoll(s, &end, 10);
    if (*end == '\0' && errno == 0 && isdigit((unsigned char)s[0])) {
        *out = epoch;
        return 0;
    }
    struct tm tm = {0};
    int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
    const char *p = s;
    if (digits(&p, 4, &y) || expect(&p, "-") || digits(&p, 2, &mo) ||
        expect(&p, "-") || digits(&p, 2, &d) || expect(&p, "Tt ") ||
        digits(&p, 2, &h) || expect(&p, ":") || digits(&p, 2, &mi) ||
        expect(&p, ":") || digits(&p, 2, &sec))
        return -1;
    if (*p == '.') /* fractions of a second are dropped */
        for (p++; isdigit((unsigned char)*p); p++)
            ;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-' || *p == ' ') {
        sign = *p == '-' ? -1 : 1; /* ' ': an unescaped '+' in a query */
        p++;
        if (digits(&p, 2, &oh) || expect(&p, ":") || digits(&p, 2, &om))
            return -1;
    } else {
        return -1;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        sec > 60 || oh > 23 || om > 59)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *out = (int64_t)timegm(&tm) - sign * (oh * 3600 + om * 60);
    return 0;
}
