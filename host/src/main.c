/* eventstreamd: consumes Kafka, decodes CloudEvents, filters and routes
 * them to plugin sinks and handlers with at-least-once delivery. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "build-config.h"
#include "admin.h"
#include "internal/es_clock.h"
#include "config.h"
#include "dry_run_cli.h"
#include "kafka.h"
#include "loader.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"

static volatile sig_atomic_t stop_requested;
/* Set with stop_requested by a SIGHUP whose config passed the check: once
 * drained and committed, main starts this binary again in place. */
static volatile sig_atomic_t reload_requested;

/* The first signal asks for a graceful stop; a second one means "now":
 * exit without committing anything more. A SIGTERM during a reload's
 * drain turns it into a plain stop, and the next one exits now. */
static void on_signal(int sig)
{
    if (stop_requested && !reload_requested)
        _exit(128 + sig);
    stop_requested = 1;
    reload_requested = 0;
}

/* What a reload (SIGHUP, POST /v1/reload) needs: the config path from the
 * arguments, and whether the broker is the embedded one (known once the
 * config loaded). */
static struct {
    sigset_t set;
    const char *config;
    volatile sig_atomic_t embedded;
    volatile sig_atomic_t check_timeout_ms; /* the running config's
                                               reload_check_timeout_ms */
} hup = {.check_timeout_ms = 60000};

/* Reads fd to its end (a child's stderr must be drained, or it blocks
 * writing and is never reaped), keeping the last size - 1 bytes in buf,
 * NUL-terminated, or until deadline_ms (monotonic) passes. Returns how
 * many are kept; *late is set when the deadline cut it short. */
static size_t read_tail(int fd, char *buf, size_t size, int64_t deadline_ms,
                        int *late)
{
    size_t len = 0;
    *late = 0;
    for (;;) {
        if (len == size - 1) { /* full: keep the newer half */
            memmove(buf, buf + len / 2, len - len / 2);
            len -= len / 2;
        }
        int64_t left = deadline_ms - es_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int ready = left > 0 ? poll(&pfd, 1, (int)left) : 0;
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready == 0) {
            *late = 1;
            break;
        }
        ssize_t r = read(fd, buf + len, size - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    return len;
}

/*
 * Runs this same binary with --check-config on the config file and waits:
 * 0 when it passes, else -1 with its error line in why. A separate process
 * checks exactly what a start would (plugins' init included) without
 * touching the running pipeline.
 */
static int config_passes_check(const char *path, char *why, size_t n)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(why, n, "cannot run the check: pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, n, "cannot run the check: fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(fds[1], 2);
        execl("/proc/self/exe", "eventstreamd", "--check-config", path,
              (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char tail[8192];
    int late = 0;
    size_t len = read_tail(fds[0], tail, sizeof tail,
                           es_now_ms() + hup.check_timeout_ms, &late);
    close(fds[0]);
    if (late) /* a plugin's init that hangs must not hold reloads for ever */
        kill(pid, SIGKILL);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
        snprintf(why, n, "cannot run the check: %s", strerror(errno));
        return -1;
    }
    if (late) {
        snprintf(why, n,
                 "the check did not finish within %d ms "
                 "(pipeline.reload_check_timeout_ms); a plugin's init may "
                 "hang",
                 hup.check_timeout_ms);
        return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    /* The check's own error is its last line that starts "eventstreamd: "
     * (plugins log before it). */
    const char *line = NULL, *at = tail;
    while ((at = strstr(at, "eventstreamd: ")) != NULL) {
        if (at == tail || at[-1] == '\n')
            line = at + strlen("eventstreamd: ");
        at++;
    }
    if (!line && len)
        line = tail;
    snprintf(why, n, "%.*s", line ? (int)strcspn(line, "\n") : 0,
             line ? line : "");
    if (!*why && WIFEXITED(status) && WEXITSTATUS(status) == 127)
        snprintf(why, n,
                 "cannot run /proc/self/exe --check-config (is /proc "
                 "mounted?)");
    else if (!*why)
        snprintf(why, n, "the check failed with no message (status %d)",
                 status);
    return -1;
}

/* SIGHUP and POST /v1/reload may ask at once: one check at a time. */
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * A reload: the config is checked first (a bad one is refused and the
 * running one kept), then the daemon drains and commits as for SIGTERM
 * and main starts it again in place, same pid, with the new config.
 * Returns an HTTP status (202 begun, 400 the config failed the check, 409
 * not now) with what happened in msg, which is also logged after `by`.
 */
static unsigned begin_reload(const char *by, char *msg, size_t n)
{
    char why[1024];
    unsigned st = 202;
    pthread_mutex_lock(&reload_lock);
    if (stop_requested) {
        snprintf(msg, n, "already stopping, not reloading");
        st = 409;
    } else if (hup.embedded) {
        snprintf(msg, n,
                 "not reloading: the embedded broker's topics live in this "
                 "process and a reload would lose them (restart to apply a "
                 "changed config)");
        st = 409;
    } else if (config_passes_check(hup.config, why, sizeof why) != 0) {
        snprintf(msg, n, "reload refused, the running config is kept: %s", why);
        es_gauge_set(es_metrics_gauge("es_config_last_reload_successful", ""),
                     0);
        st = 400;
    } else if (stop_requested) { /* a SIGTERM came during the check */
        snprintf(msg, n, "already stopping, not reloading");
        st = 409;
    } else {
        reload_requested = 1;
        stop_requested = 1;
        snprintf(msg, n,
                 "%s passes the check; draining and committing, then "
                 "starting again with it",
                 hup.config);
    }
    pthread_mutex_unlock(&reload_lock);
    if (st == 400)
        es_err("%s: %s", by, msg);
    else if (st == 409)
        es_warn("%s: %s", by, msg);
    else
        es_info("%s: %s", by, msg);
    return st;
}

static unsigned api_reload(char *msg, size_t n)
{
    return begin_reload("POST /v1/reload", msg, n);
}

/* SIGHUP is blocked in every thread (the mask is inherited) and taken
 * here with sigwait, where logging and forking are safe. */
static void *hup_thread(void *arg)
{
    (void)arg;
    int sig;
    char msg[1200];
    for (;;)
        if (sigwait(&hup.set, &sig) == 0)
            begin_reload("SIGHUP", msg, sizeof msg);
    return NULL;
}

static void term_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
}

/* SIGHUP stays blocked in main and so in every thread made later. The
 * SIGHUP thread also blocks SIGTERM and SIGINT: it outlives the pipeline,
 * and a SIGTERM it took while main was starting again (start_again) would
 * be lost to the new process. */
static void take_sighup(const char *config)
{
    pthread_t t;
    sigset_t term, before;
    hup.config = config;
    sigemptyset(&hup.set);
    sigaddset(&hup.set, SIGHUP);
    term_signals(&term);
    if (pthread_sigmask(SIG_BLOCK, &hup.set, NULL) != 0 ||
        pthread_sigmask(SIG_BLOCK, &term, &before) != 0)
        return;
    if (pthread_create(&t, NULL, hup_thread, NULL) == 0)
        pthread_detach(t);
    pthread_sigmask(SIG_SETMASK, &before, NULL);
}

/*
 * The reload's second half, after the pipeline stopped cleanly: the same
 * binary, the same arguments. SIGTERM and SIGINT are blocked first (the
 * pipeline's threads are gone and the SIGHUP thread blocks them), so one
 * that comes now either made this a plain stop already or stays pending
 * across execv for the new process, which unblocks them once its handler
 * is set. Descriptors a library left open without close-on-exec would
 * pile up one set per reload, so all but stdio close.
 */
static int start_again(char **argv)
{
    sigset_t term;
    term_signals(&term);
    sigprocmask(SIG_BLOCK, &term, NULL);
    if (!reload_requested)
        return 0; /* a SIGTERM during the drain: a plain stop */
    es_info("reloading: starting again in place with %s", hup.config);
    fflush(NULL);
    close_range(3, ~0U, 0);
    execv("/proc/self/exe", argv);
    es_err("reload: cannot start again: %s (exiting 1 for the supervisor to "
           "restart it)",
           strerror(errno));
    return 1;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: eventstreamd -c CONFIG.json\n"
                 "       eventstreamd --check-config CONFIG.json\n"
                 "       eventstreamd -c CONFIG.json --dry-run TOPIC "
                 "< TESTS.jsonl\n"
                 "       eventstreamd --version\n"
                 "\n"
                 "  -c, --config FILE       run with this config\n"
                 "      --check-config FILE validate the config (and plugin "
                 "configs), then exit\n"
                 "      --dry-run TOPIC     test each line of standard input "
                 "(a record of TOPIC,\n"
                 "                          as POST /v1/topics/TOPIC/test "
                 "takes) and print its\n"
                 "                          report; no broker or state of the "
                 "config is used\n"
                 "  -h, --help              this text\n");
}

static int load_plugins(const es_config_t *conf, es_loader_t *loader)
{
    char err[1024];
    if (es_loader_load_dir(loader, conf->plugin_dir, err, sizeof err) < 0) {
        es_err("%s: plugin_dir: %s", conf->path, err);
        return -1;
    }
    return 0;
}

/*
 * The config, and what it names that only a client or a server would read
 * (librdkafka's properties and files, the admin API's token and TLS
 * files): --check-config and startup both stop here, before any broker or
 * consumer starts, with the file and the key. NULL after printing why.
 */
static es_config_t *load_checked_config(const char *path)
{
    char err[2048];
    es_config_t *conf = es_config_load(path, err, sizeof err);
    if (!conf) {
        fprintf(stderr, "eventstreamd: %s\n", err);
        return NULL;
    }
    es_log_setup(conf->log_level, conf->log_format);
    if (es_kafka_props_check(conf->kafka_properties, path, err, sizeof err) ||
        (conf->api_listen && es_admin_check(conf, err, sizeof err))) {
        fprintf(stderr, "eventstreamd: %s\n", err);
        es_config_destroy(conf);
        return NULL;
    }
    return conf;
}

static int dry_run(const char *path, const char *topic)
{
    es_config_t *conf = load_checked_config(path);
    if (!conf)
        return 1;
    es_loader_t loader = {0};
    int rc = load_plugins(conf, &loader) == 0
                 ? es_dry_run_cli(conf, &loader, topic, stdin, stdout)
                 : 1;
    es_loader_clear(&loader);
    es_config_destroy(conf);
    return rc;
}

static int check_config(const char *path)
{
    char err[2048];
    es_config_t *conf = load_checked_config(path);
    if (!conf)
        return 1;
    es_loader_t loader = {0};
    int rc = 1;
    if (load_plugins(conf, &loader) == 0 &&
        es_pipeline_check_instances(conf, &loader, err, sizeof err) == 0) {
        printf("%s: OK (%zu instance(s), %zu route(s))\n", path,
               conf->instance_count, conf->route_count);
        rc = 0;
    } else if (loader.count || err[0]) {
        fprintf(stderr, "eventstreamd: %s\n", err);
    }
    es_loader_clear(&loader);
    es_config_destroy(conf);
    return rc;
}

/* As Prometheus reports its own config: whether the last SIGHUP's config
 * was taken (a refused one sets it to 0 until the next reload), and when
 * the running one was loaded. A reload is a new process, so both start
 * again with it. */
static void config_metrics(void)
{
    es_gauge_set(es_metrics_gauge("es_config_last_reload_successful", ""), 1);
    es_gauge_set(
        es_metrics_gauge("es_config_last_reload_success_timestamp_seconds", ""),
        (uint64_t)time(NULL));
    es_gauge_set(
        es_metrics_gauge("es_build_info", "version=\"" PACKAGE_VERSION "\""),
        1);
}

static int run(const char *path)
{
    char err[2048];
    es_config_t *conf = load_checked_config(path);
    if (!conf)
        return 1;
    es_loader_t loader = {0};
    es_mock_broker_t *mock = NULL;
    es_pipeline_t *p = NULL;
    es_admin_t *admin = NULL;
    int rc = 1;
    const char *brokers = conf->brokers;
    hup.check_timeout_ms = conf->reload_check_timeout_ms;
    if (!strcmp(brokers, "embedded")) {
        hup.embedded = 1;
        mock = es_mock_broker_start(1, err, sizeof err);
        if (!mock) {
            es_err("embedded broker: %s", err);
            goto done;
        }
        brokers = es_mock_broker_bootstrap(mock);
        es_info("embedded broker started bootstrap=%s", brokers);
    }
    if (load_plugins(conf, &loader))
        goto done;
    p = es_pipeline_new(conf, &loader, brokers, err, sizeof err);
    if (!p) {
        es_err("%s", err);
        goto done;
    }
    if (conf->api_listen &&
        !(admin = es_admin_start(conf, p, api_reload, err, sizeof err))) {
        es_err("%s", err);
        goto done;
    }
    config_metrics();
    es_info("eventstreamd %s running config=%s", PACKAGE_VERSION, path);
    rc = es_pipeline_run(p, &stop_requested);
done:
    es_admin_stop(admin);
    es_pipeline_destroy(p);
    es_kafka_global_cleanup();
    es_loader_clear(&loader);
    es_mock_broker_stop(mock);
    es_config_destroy(conf);
    return rc;
}

/*
 * Keep freed heap instead of returning it at once. A consume batch makes
 * and frees some MB of per-event blocks (event trees, filter outputs,
 * deliveries); with glibc's default (and self-raising) trim threshold the
 * top of the heap went back to the kernel after each batch and was faulted
 * in again by the next: measured with scripts/bench-lua, a third of the
 * Lua filter's cost in the daemon (+16.5 -> +10.7 CPU us/event). The price
 * is up to 64 MB of free heap kept. MALLOC_TRIM_THRESHOLD_ in the
 * environment still wins.
 */
static void tune_malloc(void)
{
    if (getenv("MALLOC_TRIM_THRESHOLD_") || getenv("MALLOC_TOP_PAD_"))
        return;
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 16 << 20);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", required_argument, NULL, 'k'},
        {"dry-run", required_argument, NULL, 'd'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *config = NULL, *dry_topic = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'k':
            return check_config(optarg);
        case 'd':
            dry_topic = optarg;
            break;
        case 'V':
            printf("eventstreamd %s (plugin ABI %u)\n", PACKAGE_VERSION,
                   ES_PLUGIN_ABI_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!config || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (dry_topic)
        return dry_run(config, dry_topic);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigset_t term; /* blocked across a reload's execv (start_again) */
    term_signals(&term);
    sigprocmask(SIG_UNBLOCK, &term, NULL);
    signal(SIGPIPE, SIG_IGN);
    take_sighup(config);
    tune_malloc();
    int rc = run(config);
    return rc == 0 && reload_requested ? start_again(argv) : rc;
}
