/* es-broker: librdkafka's mock cluster as a standalone Kafka broker on
 * loopback, for tests, benchmarks and the demo. Prints
 * "bootstrap=HOST:PORT" on stdout once it listens, then serves until
 * SIGINT/SIGTERM. It speaks the real Kafka protocol (kcat works).
 * SIGUSR1 takes every broker down (an outage: connections dropped and
 * refused, the data kept), SIGUSR2 brings them back; each change is
 * confirmed on stdout ("down" / "up") once made. SIGHUP reads the control
 * file given with -c: each line "API ERROR [COUNT [DELAY_MS]]" makes the
 * next COUNT (default 1) requests of that protocol API to each broker fail
 * with that Kafka error, answered DELAY_MS late, e.g. "Produce
 * TOPIC_AUTHORIZATION_FAILED 5"; confirmed with "pushed N" (N lines
 * applied) or "push failed: why". */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka.h"

static volatile sig_atomic_t stop, want_down, want_push;

static void on_signal(int sig)
{
    if (sig == SIGUSR1 || sig == SIGUSR2)
        want_down = sig == SIGUSR1;
    else if (sig == SIGHUP)
        want_push = 1;
    else
        stop = 1;
}

/* The mock cluster's calls are not async-signal-safe: the handler only
 * records what is wanted, the main loop makes the change. */
static void apply_outage(es_mock_broker_t *b, int *down)
{
    int want = want_down;
    if (want == *down)
        return;
    if (es_mock_broker_set_down(b, want)) {
        fprintf(stderr, "es-broker: cannot take the brokers %s\n",
                want ? "down" : "up");
        return;
    }
    *down = want;
    printf("%s\n", want ? "down" : "up");
    fflush(stdout);
}

static int push_line(es_mock_broker_t *b, char *line, char *err, size_t n)
{
    char api[64], error[128];
    int count = 1, delay_ms = 0;
    int got = sscanf(line, "%63s %127s %d %d", api, error, &count, &delay_ms);
    if (got < 2 || count < 1 || delay_ms < 0) {
        snprintf(err, n,
                 "expected \"API ERROR [COUNT [DELAY_MS]]\", got \"%s\"", line);
        return -1;
    }
    return es_mock_broker_push_errors(b, api, error, count, delay_ms, err, n);
}

/* Blank lines and lines starting with # are skipped. */
static void apply_control_file(es_mock_broker_t *b, const char *path)
{
    char line[256], err[512] = "";
    int applied = 0, failed = 0;
    want_push = 0;
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) {
        snprintf(err, sizeof err, "cannot open the control file %s",
                 path ? path : "(none given with -c)");
        failed = 1;
    }
    while (f && !failed && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[strspn(line, " \t")] || line[strspn(line, " \t")] == '#')
            continue;
        if (push_line(b, line, err, sizeof err))
            failed = 1;
        else
            applied++;
    }
    if (f)
        fclose(f);
    if (failed)
        printf("push failed: %s\n", err);
    else
        printf("pushed %d\n", applied);
    fflush(stdout);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: es-broker [-b BROKERS] [-p PARTITIONS] [-t TOPIC[:N]]... "
            "[-c CONTROL]\n"
            "  -b  number of brokers in the cluster (default 1)\n"
            "  -p  partitions of topics created with -t (default 4)\n"
            "  -t  create TOPIC now, with N (or -p) partitions\n"
            "  -c  control file read on SIGHUP: lines "
            "\"API ERROR [COUNT [DELAY_MS]]\"\n"
            "Topics not created with -t are created on first use with 4 "
            "partitions.\n"
            "SIGUSR1 takes every broker down (data kept), SIGUSR2 brings "
            "them back. SIGHUP makes the next COUNT requests of API fail\n"
            "with ERROR, as the control file says (e.g. \"Produce "
            "TOPIC_AUTHORIZATION_FAILED 3\").\n");
}

int main(int argc, char **argv)
{
    int brokers = 1, partitions = 4, opt;
    char err[512];
    char *topics[256];
    int ntopics = 0;
    const char *control = NULL;
    while ((opt = getopt(argc, argv, "b:p:t:c:h")) != -1) {
        if (opt == 'b')
            brokers = atoi(optarg);
        else if (opt == 'p')
            partitions = atoi(optarg);
        else if (opt == 't' && ntopics < 256)
            topics[ntopics++] = optarg;
        else if (opt == 'c')
            control = optarg;
        else {
            usage();
            return opt == 'h' ? 0 : 2;
        }
    }
    /* Blocked except while waiting, so a signal that comes while the loop
     * works is not lost until the next one; blocked before the cluster's
     * threads start (they inherit the mask), so only this one takes them. */
    sigset_t handled, waiting;
    sigemptyset(&handled);
    int sigs[] = {SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        sigaddset(&handled, sigs[i]);
        signal(sigs[i], on_signal);
    }
    pthread_sigmask(SIG_BLOCK, &handled, &waiting);
    es_mock_broker_t *b = es_mock_broker_start(brokers, err, sizeof err);
    if (!b) {
        fprintf(stderr, "es-broker: %s\n", err);
        return 1;
    }
    for (int i = 0; i < ntopics; i++) {
        char *colon = strrchr(topics[i], ':');
        int n = partitions;
        if (colon) {
            *colon = '\0';
            n = atoi(colon + 1);
        }
        if (es_mock_broker_create_topic(b, topics[i], n))
            fprintf(stderr, "es-broker: cannot create topic %s\n", topics[i]);
    }
    printf("bootstrap=%s\n", es_mock_broker_bootstrap(b));
    fflush(stdout);
    int down = 0;
    while (!stop) {
        sigsuspend(&waiting);
        apply_outage(b, &down);
        if (want_push)
            apply_control_file(b, control);
    }
    es_mock_broker_stop(b);
    return 0;
}
