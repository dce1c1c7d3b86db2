/*
 * file sink: writes each event as one line of JSON (the CloudEvent in
 * structured form) to a file or to stdout. Used by the demo, the tests
 * and for local debugging.
 *
 * Config: {"path": "/var/log/events.jsonl" | "-", "fsync": "never" |
 *          "batch" | "always"}
 * An event is acknowledged once written (and fsynced per the policy).
 * A file moved away (rotated) is opened again at the next batch.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "eventstream/plugin.h"

typedef enum fsync_policy_e {
    FSYNC_NEVER = 1,
    FSYNC_BATCH = 2,
    FSYNC_ALWAYS = 3
} fsync_policy_t;

typedef struct file_sink_s {
    const es_host_t *host;
    FILE *out;
    int owns_out;
    fsync_policy_t fsync;
    char *path; /* NULL for stdout */
    dev_t dev;  /* the file open now, to see it was moved away */
    ino_t ino;
    int warned; /* a failed reopen was logged */
} file_sink_t;

static int parse_fsync(const cJSON *v, fsync_policy_t *out)
{
    static const char *const names[] = {"never", "batch", "always"};
    for (int i = 0; i < 3; i++)
        if (cJSON_IsString(v) && !strcmp(v->valuestring, names[i])) {
            *out = (fsync_policy_t)(i + 1);
            return 0;
        }
    return -1;
}

/* Opens s->path for appending and notes which file that is. */
static int open_out(file_sink_t *s)
{
    struct stat st;
    FILE *f = fopen(s->path, "a");
    if (!f)
        return -1;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        errno = e;
        return -1;
    }
    s->out = f;
    s->owns_out = 1;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    return 0;
}

static int file_init(const es_host_t *host, const cJSON *config,
                     void **instance, char *errstr, size_t errstr_size)
{
    const char *path = NULL;
    fsync_policy_t policy = FSYNC_NEVER;
    const cJSON *it;
    cJSON_ArrayForEach(it, config)
    {
        if (!strcmp(it->string, "path") && cJSON_IsString(it) &&
            it->valuestring[0])
            path = it->valuestring;
        else if (!strcmp(it->string, "fsync")) {
            if (parse_fsync(it, &policy)) {
                snprintf(errstr, errstr_size,
                         "fsync: must be \"never\", \"batch\" or \"always\"");
                return -1;
            }
        } else if (!strcmp(it->string, "path")) {
            snprintf(errstr, errstr_size, "path: must be a non-empty string");
            return -1;
        } else {
            snprintf(errstr, errstr_size, "%s: unknown key", it->string);
            return -1;
        }
    }
    if (!path) {
        snprintf(errstr, errstr_size,
                 "path: is required (a file, or \"-\" "
                 "for stdout)");
        return -1;
    }
    file_sink_t *s = calloc(1, sizeof *s);
    if (!s || (strcmp(path, "-") && !(s->path = strdup(path)))) {
        snprintf(errstr, errstr_size, "out of memory");
        free(s);
        return -1;
    }
    s->host = host;
    s->fsync = policy;
    if (!s->path) {
        s->out = stdout;
    } else if (open_out(s)) {
        snprintf(errstr, errstr_size, "path: cannot open %s: %s", path,
                 strerror(errno));
        free(s->path);
        free(s);
        return -1;
    }
    *instance = s;
    return 0;
}

/* Rotation (logrotate's default `create`, or a plain mv): the path no
 * longer names the file open. The rest of the open file is flushed, and
 * the path opened anew; if that fails, events still go to the old file
 * (nothing is lost), and the next batch tries again. copytruncate needs
 * nothing: appends follow the truncation. */
static void reopen_if_moved(file_sink_t *s)
{
    struct stat st;
    if (!s->owns_out ||
        (stat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino))
        return;
    FILE *old = s->out;
    fflush(old);
    if (open_out(s)) {
        s->out = old;
        if (!s->warned++)
            s->host->log(s->host, ES_LOG_WARN,
                         "file sink: %s was moved and cannot be opened again "
                         "(%s); writing to the file that was open",
                         s->path, strerror(errno));
        return;
    }
    if (s->fsync != FSYNC_NEVER)
        fsync(fileno(old));
    fclose(old);
    s->warned = 0;
    s->host->log(s->host, ES_LOG_INFO, "file sink: %s reopened (rotated)",
                 s->path);
}

static int sync_out(file_sink_t *s)
{
    if (fflush(s->out) != 0)
        return -1;
    if (s->fsync != FSYNC_NEVER && s->owns_out && fsync(fileno(s->out)) != 0)
        return -1;
    return 0;
}

static void fail_all(es_result_t *results, size_t from, size_t count, int err)
{
    for (size_t i = from; i < count; i++) {
        results[i].status = ES_RETRY;
        snprintf(results[i].reason, sizeof results[i].reason, "write: %s",
                 strerror(err));
    }
}

static void file_deliver(void *instance, const es_event_t *const *events,
                         size_t count, es_result_t *results)
{
    file_sink_t *s = instance;
    reopen_if_moved(s);
    for (size_t i = 0; i < count; i++) {
        const es_event_t *ev = events[i];
        if (fwrite(ev->json, 1, ev->json_len, s->out) != ev->json_len ||
            fputc('\n', s->out) == EOF ||
            (s->fsync == FSYNC_ALWAYS && sync_out(s))) {
            fail_all(results, i, count, errno);
            return;
        }
        results[i].status = ES_OK;
    }
    /* Nothing is acknowledged before it has left our buffer. */
    if (s->fsync != FSYNC_ALWAYS && sync_out(s))
        fail_all(results, 0, count, errno);
}

static void file_destroy(void *instance)
{
    file_sink_t *s = instance;
    if (!s)
        return;
    if (s->owns_out)
        fclose(s->out);
    else
        fflush(s->out);
    free(s->path);
    free(s);
}

static const es_plugin_t file_plugin = {
    .abi = ES_PLUGIN_ABI_VERSION,
    .size = sizeof(es_plugin_t),
    .name = "file",
    .version = "1.0",
    .kind = ES_KIND_SINK,
    .init = file_init,
    .deliver = file_deliver,
    .destroy = file_destroy,
    .flags = ES_PLUGIN_TEXT_ONLY, /* reads ev->json, never ev->ce */
};

ES_PLUGIN_DEFINE(file_plugin)
