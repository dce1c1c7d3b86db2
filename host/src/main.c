/* eventstreamd: consumes Kafka, decodes CloudEvents, filters and routes
 * them to plugin sinks and handlers with at-least-once delivery. */
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build-config.h"
#include "admin.h"
#include "config.h"
#include "kafka.h"
#include "loader.h"
#include "log.h"
#include "pipeline.h"

static volatile sig_atomic_t stop_requested;

/* The first signal asks for a graceful stop; a second one means "now":
 * exit without committing anything more. */
static void on_signal(int sig)
{
    if (stop_requested)
        _exit(128 + sig);
    stop_requested = 1;
}

/*
 * SIGHUP would end the daemon without draining (its default action). There
 * is no config reload: Lua scripts and topic-details.json are re-read when
 * they change and file sinks reopen a rotated file by themselves, so a
 * SIGHUP is said to be ignored, with what to do instead. It is blocked in
 * every thread (the mask is inherited) and taken here with sigwait, where
 * logging is safe.
 */
static void *hup_thread(void *arg)
{
    sigset_t *set = arg;
    int sig;
    for (;;)
        if (sigwait(set, &sig) == 0)
            es_warn("SIGHUP ignored: the config is not reloaded (restart to "
                    "apply it; Lua scripts and topic-details.json are re-read "
                    "when they change, file sinks reopen rotated files)");
    return NULL;
}

static void take_sighup(void)
{
    static sigset_t set;
    pthread_t t;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) == 0 &&
        pthread_create(&t, NULL, hup_thread, &set) == 0)
        pthread_detach(t);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: eventstreamd -c CONFIG.json\n"
                 "       eventstreamd --check-config CONFIG.json\n"
                 "       eventstreamd --version\n"
                 "\n"
                 "  -c, --config FILE       run with this config\n"
                 "      --check-config FILE validate the config (and plugin "
                 "configs), then exit\n"
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
    if (!strcmp(brokers, "embedded")) {
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
        !(admin = es_admin_start(conf, p, err, sizeof err))) {
        es_err("%s", err);
        goto done;
    }
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
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *config = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'k':
            return check_config(optarg);
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
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    take_sighup();
    tune_malloc();
    return run(config);
}
