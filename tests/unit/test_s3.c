/*
 * S3 sink through a fake host against a real local store: s3rver behind
 * tests/e2e/s3_front.py, which checks every SigV4 signature with botocore and
 * implements If-None-Match. The plugin is loaded with dlopen like the daemon
 * does.
 */
#include <eventstream/plugin.h>

#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define AKID "AKIDS3TEST"
#define SECRET "s3-test-secret"
#define TOKEN "s3-session-token"
#define MAXTOK 20000

static const es_plugin_t *plugin;
static int front_port;
static pid_t front_pid;
static char data_dir[256];

/* ------------------------------------------------------------ fake host */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static es_status_t done_status[MAXTOK];
static char done_reason[MAXTOK][256];
static int ndone;
static char logbuf[65536];
static size_t loglen;
static char state_keys[64][256];
static char state_vals[64][2048];
static int nstate;

static void fh_log(const es_host_t *h, es_log_level_t lvl, const char *fmt, ...)
{
    va_list ap;
    char line[1024];
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&mu);
    if (loglen + strlen(line) + 2 < sizeof(logbuf))
        loglen += (size_t)sprintf(logbuf + loglen, "%s\n", line);
    pthread_mutex_unlock(&mu);
}

static void fh_counter(const es_host_t *h, const char *name, uint64_t d)
{
}

static void fh_complete(const es_host_t *h, uint64_t token, es_status_t st,
                        const char *reason)
{
    pthread_mutex_lock(&mu);
    if (token >= MAXTOK || done_status[token] != 0) {
        fprintf(stderr, "token %llu completed twice\n",
                (unsigned long long)token);
        abort();
    }
    done_status[token] = st;
    snprintf(done_reason[token], sizeof(done_reason[0]), "%s",
             reason ? reason : "");
    ndone++;
    pthread_mutex_unlock(&mu);
}

static int fh_state_get(const es_host_t *h, const char *key, char **value,
                        size_t *len)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < nstate; i++) {
        if (strcmp(state_keys[i], key) == 0) {
            *value = strdup(state_vals[i]);
            *len = strlen(state_vals[i]);
            pthread_mutex_unlock(&mu);
            return 1;
        }
    }
    pthread_mutex_unlock(&mu);
    return 0;
}

static int fh_state_put(const es_host_t *h, const char *key, const void *v,
                        size_t len)
{
    pthread_mutex_lock(&mu);
    int i = 0;
    while (i < nstate && strcmp(state_keys[i], key) != 0)
        i++;
    if (i == nstate)
        nstate++;
    snprintf(state_keys[i], sizeof(state_keys[0]), "%s", key);
    snprintf(state_vals[i], sizeof(state_vals[0]), "%.*s", (int)len,
             (const char *)v);
    pthread_mutex_unlock(&mu);
    return 0;
}

static es_host_t host = {
    .abi = ES_PLUGIN_ABI_VERSION,
    .size = sizeof(es_host_t),
    .instance_name = "s3-test",
    .state_dir = "/tmp",
    .log = fh_log,
    .counter_add = fh_counter,
    .complete = fh_complete,
    .state_get = fh_state_get,
    .state_put = fh_state_put,
    .free = free,
};

static int count_done(void)
{
    pthread_mutex_lock(&mu);
    int n = ndone;
    pthread_mutex_unlock(&mu);
    return n;
}

/* ---------------------------------------------------------------- peers */

static void start_front(void)
{
    int out[2];
    char script[512], s3rver[512], line[64];
    snprintf(script, sizeof(script), "%s/tests/e2e/s3_front.py",
             ES_TEST_SRCDIR);
    /* s3rver comes from scripts/install-deps (npm) in the source tree; a
     * tree without it (a `make distcheck` copy) names it in ES_S3RVER. */
    const char *env_s3rver = getenv("ES_S3RVER");
    if (env_s3rver)
        snprintf(s3rver, sizeof(s3rver), "%s", env_s3rver);
    else
        snprintf(s3rver, sizeof(s3rver),
                 "%s/tests/peers/s3rver/node_modules/.bin/s3rver",
                 ES_TEST_SRCDIR);
    if (access(s3rver, X_OK) != 0) {
        fprintf(stderr,
                "SKIP: s3rver not found at %s (run scripts/install-deps or "
                "set ES_S3RVER)\n",
                s3rver);
        exit(77);
    }
    snprintf(data_dir, sizeof(data_dir), "/tmp/es-s3-unit-XXXXXX");
    if (!mkdtemp(data_dir) || pipe(out))
        abort();
    front_pid = fork();
    if (front_pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        execlp("python3", "python3", script, "--s3rver", s3rver, "--data",
               data_dir, "--bucket", "unit", "--access-key", AKID,
               "--secret-key", SECRET, "--session-token", TOKEN, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    FILE *f = fdopen(out[0], "r");
    while (f && fgets(line, sizeof(line), f) &&
           sscanf(line, "port=%d", &front_port) != 1)
        ;
    if (!f || front_port == 0) {
        fprintf(stderr, "s3_front.py did not start (is s3rver installed? "
                        "run scripts/install-deps)\n");
        exit(1);
    }
    fclose(f);
}

static void stop_front(void)
{
    char cmd[300];
    kill(front_pid, SIGTERM);
    waitpid(front_pid, NULL, 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", data_dir);
}

static void load_plugin(void)
{
    char path[600];
    const char *bd = getenv("ES_BUILD_DIR");
    snprintf(path, sizeof(path), "%s/build-plugins/s3.so",
             bd ? bd : ES_TEST_BUILDDIR);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        fprintf(stderr, "%s\n", dlerror());
        exit(1);
    }
    es_plugin_entry_fn entry =
        (es_plugin_entry_fn)dlsym(dl, ES_PLUGIN_ENTRY_SYMBOL);
    plugin = entry ? entry(ES_PLUGIN_ABI_VERSION) : NULL;
    if (!plugin || plugin->kind != ES_KIND_SINK ||
        strcmp(plugin->name, "s3") != 0)
        exit(1);
}

/* --------------------------------------------------------------- helpers */

static void setup(void)
{
    memset(done_status, 0, sizeof(done_status));
    ndone = 0;
    loglen = 0;
    logbuf[0] = '\0';
    nstate = 0;
}

/* Config with the test defaults; `extra` is a JSON object merged in. */
static void *make(const char *extra, char *err, size_t errsize)
{
    char json[2048];
    void *inst = NULL;
    snprintf(json, sizeof(json),
             "{\"bucket\":\"unit\",\"endpoint\":\"http://127.0.0.1:%d\","
             "\"path_style\":true,\"access_key_id\":\"" AKID "\","
             "\"secret_access_key\":\"" SECRET "\",\"session_token\":\"" TOKEN
             "\",\"timeout_ms\":5000}",
             front_port);
    cJSON *cfg = cJSON_Parse(json);
    cJSON *more = extra ? cJSON_Parse(extra) : NULL;
    cJSON *it;
    ck_assert_ptr_nonnull(cfg);
    cJSON_ArrayForEach(it, more)
    {
        cJSON_DeleteItemFromObject(cfg, it->string);
        cJSON_AddItemToObject(cfg, it->string, cJSON_Duplicate(it, 1));
    }
    int rc = plugin->init(&host, cfg, &inst, err, errsize);
    cJSON_Delete(cfg);
    cJSON_Delete(more);
    return rc == 0 ? inst : NULL;
}

static void *make_ok(const char *extra)
{
    char err[512];
    void *inst = make(extra, err, sizeof(err));
    ck_assert_msg(inst != NULL, "init failed: %s", err);
    return inst;
}

/* Delivers `n` events of one tenant on one partition, tokens = offsets. */
static void deliver_range(void *inst, const char *topic, const char *tenant,
                          int partition, int64_t first, int n, size_t pad,
                          es_result_t *res)
{
    static char bodies[64][70000];
    for (int k = 0; k < n; k += 64) {
        es_event_t evs[64];
        const es_event_t *ptrs[64];
        int m = n - k < 64 ? n - k : 64;
        for (int i = 0; i < m; i++) {
            int64_t off = first + k + i;
            char padding[65536];
            size_t p = pad < sizeof(padding) - 1 ? pad : sizeof(padding) - 1;
            /* Varying, poorly compressible padding so gzip output is big. */
            uint64_t x = (uint64_t)off * 2654435761u + 88172645463325252ull;
            for (size_t j = 0; j < p; j++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                padding[j] = (char)('a' + x % 26);
            }
            padding[p] = '\0';
            snprintf(bodies[i], sizeof(bodies[0]),
                     "{\"specversion\":\"1.0\",\"id\":\"e%lld\",\"source\":"
                     "\"t\",\"type\":\"x\",\"time\":\"2026-11-23T10:20:30Z\","
                     "\"data\":{\"n\":%lld,\n \"pad\":\"%s\"}}",
                     (long long)off, (long long)off, padding);
            memset(&evs[i], 0, sizeof(evs[i]));
            evs[i].json = bodies[i];
            evs[i].json_len = strlen(bodies[i]);
            evs[i].id = "x";
            evs[i].time = "2026-11-23T10:20:30Z";
            evs[i].tenant = tenant;
            evs[i].topic = topic;
            evs[i].partition = partition;
            evs[i].offset = off;
            evs[i].timestamp_ms = -1;
            evs[i].token = (uint64_t)off;
            evs[i].attempt = 1;
            ptrs[i] = &evs[i];
        }
        plugin->deliver(inst, ptrs, (size_t)m, res + k);
    }
}

static void wait_done(void *inst, int want, int seconds)
{
    for (int i = 0; i < seconds * 20 && count_done() < want; i++) {
        plugin->flush(inst);
        usleep(50000);
    }
    ck_assert_msg(count_done() == want, "%d of %d completed; log:\n%s",
                  count_done(), want, logbuf);
}

/* Object files s3rver keeps for `bucket`, key prefix `prefix`. */
static int list_objects(const char *prefix, char names[][512], int max)
{
    char cmd[800];
    int n = 0;
    snprintf(cmd, sizeof(cmd),
             "cd '%s/unit' 2>/dev/null && find . -name '*._S3rver_object' | "
             "sed 's|^\\./||; s|\\._S3rver_object$||' | grep '^%s' | sort",
             data_dir, prefix);
    FILE *f = popen(cmd, "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f) && n < max) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(names[n++], 512, "%s", line);
    }
    if (f)
        pclose(f);
    return n;
}

/* Reads an object (gunzipping if needed) into a malloc'd string. */
static char *read_object(const char *key)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/unit/%s._S3rver_object", data_dir, key);
    gzFile g = gzopen(path, "rb");
    ck_assert_ptr_nonnull(g);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    int n;
    while ((n = gzread(g, buf + len, (unsigned)(cap - len - 1))) > 0) {
        len += (size_t)n;
        if (cap - len < 4096)
            buf = realloc(buf, cap *= 2);
    }
    gzclose(g);
    buf[len] = '\0';
    return buf;
}

/*
 * Counts the gzip members of an object, checking that each one inflates to
 * whole JSON lines (its text ends with a newline). -1 on a corrupt member.
 */
static int gzip_members(const char *key)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/unit/%s._S3rver_object", data_dir, key);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static unsigned char in[1 << 22], out[1 << 16];
    size_t n = fread(in, 1, sizeof(in), f);
    fclose(f);
    z_stream z;
    memset(&z, 0, sizeof(z));
    ck_assert_int_eq(inflateInit2(&z, 16 + 15), Z_OK);
    z.next_in = in;
    z.avail_in = (uInt)n;
    int members = 0, zr;
    unsigned char last = 0;
    while (z.avail_in > 0) {
        z.next_out = out;
        z.avail_out = sizeof(out);
        zr = inflate(&z, Z_NO_FLUSH);
        if (z.avail_out < sizeof(out))
            last = out[sizeof(out) - z.avail_out - 1];
        if (zr == Z_STREAM_END) {
            if (last != '\n')
                members = -1000;
            members++;
            inflateReset(&z);
        } else if (zr != Z_OK) {
            members = -1;
            break;
        }
    }
    inflateEnd(&z);
    return members;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static int front_stat(const char *name)
{
    char cmd[256], buf[1024];
    snprintf(cmd, sizeof(cmd), "curl -s http://127.0.0.1:%d/__front/stats",
             front_port);
    FILE *f = popen(cmd, "r");
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    pclose(f);
    buf[n] = '\0';
    cJSON *j = cJSON_Parse(buf);
    int v = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, name));
    cJSON_Delete(j);
    return v;
}

static void front_ctl(const char *q)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "curl -s -X POST 'http://127.0.0.1:%d/__front/fail?%s' >/dev/null",
             front_port, q);
    ck_assert_int_eq(system(cmd), 0);
}

static void assert_all(int first, int n, es_status_t st)
{
    for (int i = first; i < first + n; i++)
        ck_assert_msg(done_status[i] == st, "token %d: status %d (%s)", i,
                      done_status[i], done_reason[i]);
}

/* ----------------------------------------------------------------- tests */

START_TEST(test_config_errors)
{
    char err[512];
    ck_assert_ptr_null(make("{\"bogus\":1}", err, sizeof(err)));
    ck_assert_str_eq(err, "bogus: unknown key");
    ck_assert_ptr_null(make("{\"key_template\":\"{topic}/{tenant}/{partition}-"
                            "{start_offset}.jsonl\"}",
                            err, sizeof(err)));
    ck_assert_msg(strstr(err, "key_template: must contain {end_offset}"), "%s",
                  err);
    ck_assert_ptr_null(make("{\"gzip_level\":13}", err, sizeof(err)));
    ck_assert_msg(strstr(err, "gzip_level: must be an integer"), "%s", err);
    /* out of range of a long: refused before the cast (UBSan) */
    ck_assert_ptr_null(make("{\"gzip_level\":1e300}", err, sizeof(err)));
    ck_assert_msg(strstr(err, "gzip_level: must be an integer"), "%s", err);
    ck_assert_ptr_null(make("{\"time_source\":\"wall\"}", err, sizeof(err)));
    ck_assert_msg(strstr(err, "time_source:"), "%s", err);
    ck_assert_ptr_null(make("{\"endpoint\":\"ftp://x\"}", err, sizeof(err)));
    ck_assert_msg(strstr(err, "endpoint:"), "%s", err);
    /* The region is part of the host name and of a header line. */
    const char *regions[] = {"evil.example#", "eu-west-1\\r\\nX: y", "a b",
                             "EU-WEST-1"};
    for (size_t i = 0; i < 4; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"region\":\"%s\"}", regions[i]);
        ck_assert_ptr_null(make(text, err, sizeof(err)));
        ck_assert_msg(strstr(err, "region: ") &&
                          strstr(err, ": only lowercase letters, digits and "
                                      "'-' (eu-west-1; auto for R2), at most "
                                      "63"),
                      "%s", err);
    }
    void *inst = NULL;
    ck_assert_int_ne(plugin->init(&host, NULL, &inst, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, "bucket"), "%s", err);
}
END_TEST

START_TEST(test_objects_keys_and_content)
{
    es_result_t res[10];
    void *inst = make_ok("{\"gzip\":false,\"max_object_events\":4,"
                         "\"key_template\":\"plain/{topic}/{tenant}/%Y/%m/%d/"
                         "%H/{partition}-{start_offset}-{end_offset}.jsonl\"}");
    deliver_range(inst, "orders.v1", "acme", 3, 100, 10, 10, res);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(res[i].status, ES_PENDING);
    /* Two full objects now; the last two events wait for the age limit
     * (60 s default): none of them is completed before it is durable. */
    for (int i = 0; i < 100 && count_done() < 8; i++)
        usleep(50000);
    ck_assert_int_eq(count_done(), 8);
    ck_assert_int_eq(done_status[108], 0);
    plugin->destroy(inst);

    char names[16][512];
    int n = list_objects("plain/", names, 16);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(names[0], "plain/orders.v1/acme/2026/11/23/10/"
                               "3-00000000000000000100-00000000000000000103"
                               ".jsonl");
    char *body = read_object(names[1]);
    ck_assert_int_eq(count_lines(body), 4);
    /* The pretty-printed event became one line of valid JSON. */
    char *nl = strchr(body, '\n');
    *nl = '\0';
    cJSON *j = cJSON_Parse(body);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq((int)cJSON_GetNumberValue(cJSON_GetObjectItem(
                         cJSON_GetObjectItem(j, "data"), "n")),
                     104);
    cJSON_Delete(j);
    free(body);
}
END_TEST

START_TEST(test_gzip_age_flush)
{
    es_result_t res[5];
    void *inst = make_ok("{\"max_object_age_ms\":200,\"key_template\":"
                         "\"gz/{topic}/{tenant}/{partition}/{start_offset}-"
                         "{end_offset}.jsonl.gz\"}");
    deliver_range(inst, "quiet", "t1", 0, 7, 5, 100, res);
    /* No more events arrive: only flush()'s age check can cut it. */
    wait_done(inst, 5, 10);
    assert_all(7, 5, ES_OK);
    plugin->destroy(inst);
    char names[4][512];
    ck_assert_int_eq(list_objects("gz/", names, 4), 1);
    ck_assert_str_eq(names[0], "gz/quiet/t1/0/00000000000000000007-"
                               "00000000000000000011.jsonl.gz");
    char *body = read_object(names[0]);
    ck_assert_int_eq(count_lines(body), 5);
    ck_assert_ptr_nonnull(strstr(body, "\"id\":\"e11\""));
    free(body);
}
END_TEST

START_TEST(test_multipart_gzip)
{
    static es_result_t res[300];
    int parts0 = front_stat("parts");
    void *inst = make_ok("{\"part_size\":65536,\"max_object_bytes\":4000000,"
                         "\"max_object_age_ms\":100,\"key_template\":"
                         "\"mp/{topic}/{tenant}/{partition}-{start_offset}-"
                         "{end_offset}.gz\"}");
    deliver_range(inst, "big", "t", 1, 0, 300, 3000, res);
    wait_done(inst, 300, 30);
    assert_all(0, 300, ES_OK);
    plugin->destroy(inst);
    ck_assert_int_gt(front_stat("parts") - parts0, 3);
    char names[4][512];
    ck_assert_int_eq(list_objects("mp/", names, 4), 1);
    char *body = read_object(names[0]);
    ck_assert_int_eq(count_lines(body), 300);
    ck_assert_ptr_nonnull(strstr(body, "\"id\":\"e299\""));
    /* 900 KB of lines in gzip members of at most part_size (64 KiB) of
     * text each, every member cut after a line. */
    ck_assert_int_ge(gzip_members(names[0]), 900000 / 65536);
    free(body);
}
END_TEST

START_TEST(test_multipart_complete_error_body)
{
    static es_result_t res[100];
    int aborts0 = front_stat("aborts");
    front_ctl("complete_error=1");
    void *inst = make_ok("{\"gzip\":false,\"part_size\":32768,"
                         "\"max_object_events\":100,\"key_template\":"
                         "\"cerr/{topic}/{tenant}/{partition}-{start_offset}-"
                         "{end_offset}\"}");
    deliver_range(inst, "c", "t", 0, 0, 100, 1000, res);
    wait_done(inst, 100, 20);
    /* 200 with <Error> is a failure: retried, multipart aborted. */
    assert_all(0, 100, ES_RETRY);
    ck_assert_msg(strstr(done_reason[0], "200 with Error body"), "%s",
                  done_reason[0]);
    ck_assert_int_eq(front_stat("aborts") - aborts0, 1);
    char names[4][512];
    ck_assert_int_eq(list_objects("cerr/", names, 4), 0);
    /* The host's redelivery makes the same object, and it works now. */
    setup();
    deliver_range(inst, "c", "t", 0, 0, 100, 1000, res);
    wait_done(inst, 100, 20);
    assert_all(0, 100, ES_OK);
    plugin->destroy(inst);
    ck_assert_int_eq(list_objects("cerr/", names, 4), 1);
}
END_TEST

START_TEST(test_redelivery_is_exactly_once)
{
    es_result_t res[20];
    const char *cfg = "{\"gzip\":false,\"max_object_events\":5,"
                      "\"max_object_age_ms\":100,\"key_template\":"
                      "\"eo/{topic}/{tenant}/{partition}-{start_offset}-"
                      "{end_offset}\"}";
    void *inst = make_ok(cfg);
    deliver_range(inst, "eo", "t", 0, 0, 10, 10, res);
    wait_done(inst, 10, 10);
    assert_all(0, 10, ES_OK);
    plugin->destroy(inst);
    int pf0 = front_stat("precondition_failed");

    /* "Restart": a new instance (same durable state) gets the events again
     * with different limits; it must cut the same objects, find them there
     * (412) and write nothing new. */
    const char *cfg2 = "{\"gzip\":false,\"max_object_events\":1000,"
                       "\"max_object_age_ms\":100,\"key_template\":"
                       "\"eo/{topic}/{tenant}/{partition}-{start_offset}-"
                       "{end_offset}\"}";
    memset(done_status, 0, sizeof(done_status));
    ndone = 0;
    inst = make_ok(cfg2);
    deliver_range(inst, "eo", "t", 0, 0, 10, 10, res);
    wait_done(inst, 10, 10);
    assert_all(0, 10, ES_OK);
    plugin->destroy(inst);
    ck_assert_int_eq(front_stat("precondition_failed") - pf0, 2);

    /* Again from offset 2 (0 and 1 were committed): 2..4 are found inside
     * the object 0-4, 5..9 is the object 5-9 again. */
    memset(done_status, 0, sizeof(done_status));
    ndone = 0;
    inst = make_ok(cfg2);
    deliver_range(inst, "eo", "t", 0, 2, 8, 10, res);
    wait_done(inst, 8, 10);
    assert_all(2, 8, ES_OK);
    plugin->destroy(inst);
    ck_assert_int_eq(front_stat("precondition_failed") - pf0, 3);
    char names[8][512];
    ck_assert_int_eq(list_objects("eo/", names, 8), 2);
}
END_TEST

START_TEST(test_wrong_secret)
{
    es_result_t res[3];
    char err[512];
    void *inst = make("{\"secret_access_key\":\"not-the-secret\","
                      "\"max_object_events\":3}",
                      err, sizeof(err));
    ck_assert_ptr_nonnull(inst);
    deliver_range(inst, "ws", "t", 0, 0, 3, 10, res);
    wait_done(inst, 3, 10);
    assert_all(0, 3, ES_RETRY);
    ck_assert_msg(strstr(done_reason[0], "HTTP 403 SignatureDoesNotMatch"),
                  "%s", done_reason[0]);
    ck_assert_msg(strstr(logbuf, "will be retried"), "%s", logbuf);
    ck_assert_ptr_null(strstr(logbuf, "not-the-secret"));
    plugin->destroy(inst);
}
END_TEST

START_TEST(test_missing_session_token)
{
    es_result_t res[2];
    char err[512];
    void *inst = make("{\"max_object_events\":2}", err, sizeof(err));
    plugin->destroy(inst);
    /* Same keys without the session token the front expects. */
    char json[512];
    snprintf(json, sizeof(json),
             "{\"bucket\":\"unit\",\"endpoint\":\"http://127.0.0.1:%d\","
             "\"path_style\":true,\"access_key_id\":\"" AKID "\","
             "\"secret_access_key\":\"" SECRET "\",\"max_object_events\":2}",
             front_port);
    cJSON *cfg = cJSON_Parse(json);
    ck_assert_int_eq(plugin->init(&host, cfg, &inst, err, sizeof(err)), 0);
    cJSON_Delete(cfg);
    deliver_range(inst, "tok", "t", 0, 0, 2, 10, res);
    wait_done(inst, 2, 10);
    assert_all(0, 2, ES_RETRY);
    ck_assert_msg(strstr(done_reason[0], "InvalidToken"), "%s", done_reason[0]);
    plugin->destroy(inst);
}
END_TEST

START_TEST(test_virtual_hosted)
{
    es_result_t res[3];
    char extra[256];
    snprintf(extra, sizeof(extra),
             "{\"path_style\":false,\"endpoint\":\"http://localhost:%d\","
             "\"max_object_events\":3,\"key_template\":\"vh/{topic}/"
             "{tenant}/{partition}-{start_offset}-{end_offset}\"}",
             front_port);
    void *inst = make_ok(extra);
    deliver_range(inst, "vh", "a b/c", 0, 0, 3, 10, res);
    wait_done(inst, 3, 10);
    assert_all(0, 3, ES_OK);
    plugin->destroy(inst);
    char names[4][512];
    ck_assert_int_eq(list_objects("vh/", names, 4), 1);
    /* Tenant characters outside the safe set become '_'. */
    ck_assert_str_eq(names[0], "vh/vh/a_b_c/0-00000000000000000000-"
                               "00000000000000000002");
}
END_TEST

START_TEST(test_backpressure)
{
    /* A store that accepts connections and never answers: uploads hang,
     * the buffer fills, and the sink must say RETRY instead of growing. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    getsockname(fd, (struct sockaddr *)&a, &al);
    char extra[256];
    snprintf(extra, sizeof(extra),
             "{\"endpoint\":\"http://127.0.0.1:%d\",\"max_buffer_bytes\":"
             "65536,\"max_object_bytes\":16384,\"part_size\":16384,"
             "\"upload_threads\":1,\"timeout_ms\":1000}",
             ntohs(a.sin_port));
    void *inst = make_ok(extra);
    static es_result_t res[200];
    deliver_range(inst, "bp", "t", 0, 0, 200, 1000, res);
    int pending = 0, retry = 0;
    for (int i = 0; i < 200; i++) {
        pending += res[i].status == ES_PENDING;
        if (res[i].status == ES_RETRY) {
            retry++;
            ck_assert_msg(strstr(res[i].reason, "buffer"), "%s", res[i].reason);
        }
    }
    ck_assert_int_eq(pending + retry, 200);
    /* The first rejected event holds back the later ones of its partition
     * (no holes in a batch), and nothing after it was accepted. */
    int first_retry = 0;
    while (res[first_retry].status != ES_RETRY)
        first_retry++;
    ck_assert_msg(strstr(res[first_retry].reason, "buffer full"), "%s",
                  res[first_retry].reason);
    ck_assert_msg(strstr(res[first_retry + 1].reason, "waiting for an earlier"),
                  "%s", res[first_retry + 1].reason);
    for (int i = first_retry; i < 200; i++)
        ck_assert_int_eq(res[i].status, ES_RETRY);
    ck_assert_int_gt(retry, 100);
    ck_assert_int_le(pending * 1100, 65536 + 1100);
    plugin->destroy(inst);
    close(fd);
}
END_TEST

int main(void)
{
    load_plugin();
    start_front();
    Suite *s = suite_create("s3");
    TCase *tc = tcase_create("sink");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_objects_keys_and_content);
    tcase_add_test(tc, test_gzip_age_flush);
    tcase_add_test(tc, test_multipart_gzip);
    tcase_add_test(tc, test_multipart_complete_error_body);
    tcase_add_test(tc, test_redelivery_is_exactly_once);
    tcase_add_test(tc, test_wrong_secret);
    tcase_add_test(tc, test_missing_session_token);
    tcase_add_test(tc, test_virtual_hosted);
    tcase_add_test(tc, test_backpressure);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    stop_front();
    return failed ? 1 : 0;
}
