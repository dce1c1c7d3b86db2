/* es-broker: librdkafka's mock cluster as a standalone Kafka broker on
 * loopback, for tests, benchmarks and the demo. Prints
 * "bootstrap=HOST:PORT" on stdout once it listens, then serves until
 * SIGINT/SIGTERM. It speaks the real Kafka protocol (kcat works). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: es-broker [-b BROKERS] [-p PARTITIONS] [-t TOPIC[:N]]...\n"
            "  -b  number of brokers in the cluster (default 1)\n"
            "  -p  partitions of topics created with -t (default 4)\n"
            "  -t  create TOPIC now, with N (or -p) partitions\n"
            "Topics not created with -t are created on first use with 4 "
            "partitions.\n");
}

int main(int argc, char **argv)
{
    int brokers = 1, partitions = 4, opt;
    char err[512];
    char *topics[256];
    int ntopics = 0;
    while ((opt = getopt(argc, argv, "b:p:t:h")) != -1) {
        if (opt == 'b')
            brokers = atoi(optarg);
        else if (opt == 'p')
            partitions = atoi(optarg);
        else if (opt == 't' && ntopics < 256)
            topics[ntopics++] = optarg;
        else {
            usage();
            return opt == 'h' ? 0 : 2;
        }
    }
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
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("bootstrap=%s\n", es_mock_broker_bootstrap(b));
    fflush(stdout);
    while (!stop)
        pause();
    es_mock_broker_stop(b);
    return 0;
}
