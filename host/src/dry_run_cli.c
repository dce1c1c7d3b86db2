#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "dry_run_cli.h"
#include "kafka.h"
#include "log.h"
#include "pipeline.h"
#include "topic_test.h"

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* SIGINT and SIGTERM end the read (no SA_RESTART: a waiting getline
 * returns), and a reader that goes away (`| head`) ends it at the next
 * write, so the run's state directory is still removed. */
static void catch_interrupts(void)
{
    struct sigaction sa = {.sa_handler = on_interrupt};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The config's state stays untouched: the pipeline's handler state, usage
 * database and subscriptions go to a directory of this run's own. */
static char *private_state_dir(es_config_t *conf)
{
    const char *tmp = getenv("TMPDIR");
    char *dir = NULL;
    if (asprintf(&dir, "%s/eventstreamd-dry-run-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp") < 0)
        return NULL;
    if (!mkdtemp(dir)) {
        es_err("dry run: cannot make a state directory %s: %s", dir,
               strerror(errno));
        free(dir);
        return NULL;
    }
    free(conf->state_dir);
    conf->state_dir = strdup(dir);
    return dir;
}

static int blank(const char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    return !*s;
}

static void print_json(FILE *out, cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    fprintf(out, "%s\n", s ? s : "{\"error\":\"out of memory\"}");
    fflush(out);
    free(s);
}

static void print_error(FILE *out, size_t line, const char *why)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "line", (double)line);
    cJSON_AddStringToObject(j, "error", why);
    print_json(out, j);
    cJSON_Delete(j);
    es_err("dry run: line %zu: %s", line, why);
}

/* The first "dead_letter" of a route's filter steps or outputs. */
static const char *dead_letter_in(const cJSON *route)
{
    static const char *const lists[] = {"filters", "outputs"};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *it;
        cJSON_ArrayForEach(it,
                           cJSON_GetObjectItemCaseSensitive(route, lists[i]))
        {
            const cJSON *why =
                cJSON_GetObjectItemCaseSensitive(it, "dead_letter");
            if (cJSON_IsString(why))
                return why->valuestring;
        }
    }
    return NULL;
}

/* What made a report a failure (in `why`), or NULL: the value did not
 * decode, the pipeline would dead-letter an event, or a real delivery was
 * not taken. */
static const char *report_failure(const cJSON *res, char *why, size_t size)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(res, "decode_error");
    if (cJSON_IsString(d)) {
        snprintf(why, size, "not decoded: %s", d->valuestring);
        return why;
    }
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(res, "routes"))
    {
        const char *dl = dead_letter_in(r);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(r, "route");
        if (dl) {
            snprintf(why, size, "route %s: would be dead-lettered: %s",
                     cJSON_IsString(name) ? name->valuestring : "?", dl);
            return why;
        }
    }
    /* A delivery fails when init did or an event was not taken; nothing
     * to deliver (the filter dropped it) is no failure. */
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(res, "delivery");
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(dv, "ok");
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(dv, "events");
    if (dv && (!cJSON_IsNumber(ok) || !cJSON_IsNumber(events) ||
               ok->valuedouble != events->valuedouble)) {
        snprintf(why, size,
                 "the test delivery was not taken (see \"delivery\")");
        return why;
    }
    return NULL;
}

/* One line: 0 when it decoded (and any delivery was taken). */
static int test_line(es_pipeline_t *p, const char *topic, const char *text,
                     size_t len, size_t line, FILE *out)
{
    es_topic_test_t t;
    char err[1024];
    int bad = es_topic_test_parse(&t, topic, text, len, NULL, err, sizeof err);
    if (!bad && t.q.deliver_to)
        bad = es_pipeline_test_endpoint(p, t.q.deliver_to, err, sizeof err);
    if (bad) {
        print_error(out, line, err);
        es_topic_test_clear(&t);
        return -1;
    }
    es_dry_pending_t *pending = NULL;
    cJSON *res = es_pipeline_dry_run(p, &t.q, &pending);
    if (pending)
        es_pipeline_dry_deliver(pending, res);
    print_json(out, res);
    const char *why = report_failure(res, err, sizeof err);
    if (why)
        es_err("dry run: line %zu: %s", line, why);
    cJSON_Delete(res);
    es_topic_test_clear(&t);
    return why ? -1 : 0;
}

static int test_lines(es_pipeline_t *p, const char *topic, FILE *in, FILE *out)
{
    char *text = NULL;
    size_t cap = 0, line = 0, tests = 0, failed = 0;
    ssize_t n;
    while (!interrupted && (n = getline(&text, &cap, in)) >= 0) {
        line++;
        if (blank(text))
            continue;
        tests++;
        failed += test_line(p, topic, text, (size_t)n, line, out) != 0;
        if (ferror(out)) {
            es_err("dry run: cannot write the reports: %s", strerror(errno));
            free(text);
            return 1;
        }
    }
    free(text);
    if (interrupted) {
        es_err("dry run: interrupted after %zu test(s)", tests);
        return 1;
    }
    es_info("dry run: topic=%s tests=%zu failed=%zu", topic, tests, failed);
    return failed ? 1 : 0;
}

int es_dry_run_cli(es_config_t *conf, es_loader_t *loader, const char *topic,
                   FILE *in, FILE *out)
{
    char err[2048];
    catch_interrupts();
    char *state = private_state_dir(conf);
    if (!state)
        return 1;
    /* Not the config's brokers: building the pipeline subscribes its
     * consumers, which would join (and rebalance) the live groups. Their
     * properties (security, timeouts) are for those brokers only. */
    conf->kafka_properties = NULL;
    free(conf->brokers);
    conf->brokers = strdup("embedded");
    conf->dry_run = 1;
    int rc = 1;
    es_pipeline_t *p = NULL;
    es_mock_broker_t *mock = es_mock_broker_start(1, err, sizeof err);
    if (!mock)
        es_err("dry run: in-process broker: %s", err);
    else if (!(p = es_pipeline_new(conf, loader, es_mock_broker_bootstrap(mock),
                                   err, sizeof err)))
        es_err("%s", err);
    else
        rc = test_lines(p, topic, in, out);
    es_pipeline_destroy(p);
    es_kafka_global_cleanup();
    es_mock_broker_stop(mock);
    nftw(state, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(state);
    return rc;
}
