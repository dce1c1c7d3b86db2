/*
 * Decode throughput of the consume path: the same events as Avro (wire
 * format, through the daemon's Avro hook: validate, libavro decode, map to
 * JSON, print, check as a CloudEvent) and as structured JSON (the daemon's
 * es_decode_record), in one process. Input from avro_fixtures.py --bench.
 *
 *   es-bench-avro DIR [SECONDS]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/config.h"
#include "../src/decode.h"
#include "es_avro_hook.h"

typedef struct {
    char **v;
    size_t *len;
    size_t n;
    size_t bytes;
} values_t;

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) || !(buf = malloc((size_t)n + 1)) ||
        fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static void add(values_t *vs, char *p, size_t len)
{
    vs->v = realloc(vs->v, (vs->n + 1) * sizeof(*vs->v));
    vs->len = realloc(vs->len, (vs->n + 1) * sizeof(*vs->len));
    vs->v[vs->n] = p;
    vs->len[vs->n++] = len;
    vs->bytes += len;
}

static void load(const char *dir, values_t *avro, values_t *json)
{
    char path[512];
    size_t n, i;
    snprintf(path, sizeof(path), "%s/bench.avro", dir);
    char *a = slurp(path, &n);
    for (i = 0; i + 4 <= n;) {
        size_t len = (size_t)((uint8_t)a[i] << 24 | (uint8_t)a[i + 1] << 16 |
                              (uint8_t)a[i + 2] << 8 | (uint8_t)a[i + 3]);
        add(avro, a + i + 4, len);
        i += 4 + len;
    }
    snprintf(path, sizeof(path), "%s/bench.jsonl", dir);
    char *j = slurp(path, &n);
    for (char *p = j, *nl; (nl = strchr(p, '\n')); p = nl + 1)
        add(json, p, (size_t)(nl - p));
}

static es_avro_hook_t *hook_for(const char *dir, es_config_t **conf)
{
    char text[1024], err[512];
    es_avro_hook_t *h;
    snprintf(text, sizeof(text),
             "{\"kafka\": {\"brokers\": \"embedded\"}, \"instances\": {\"o\": "
             "{\"plugin\": \"file\"}}, \"routes\": [{\"name\": \"r\", "
             "\"topics\": [\"t\"], \"format\": \"avro\", \"avro_schemas\": "
             "{\"t\": \"%s/bench.avsc\"}, \"destinations\": [\"o\"]}]}",
             dir);
    if (!(*conf = es_config_parse(text, "bench", err, sizeof(err))) ||
        es_avro_hook_new(*conf, &h, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return h;
}

/* Decodes every value once; returns how many decoded. */
static size_t pass(es_avro_hook_t *h, const values_t *vs, int avro)
{
    char reason[256];
    size_t ok = 0;
    for (size_t i = 0; i < vs->n; i++) {
        es_decoded_t d;
        int rc =
            avro ? es_avro_hook_decode(h, "t", vs->v[i], vs->len[i], NULL, 0,
                                       &d, reason, sizeof(reason)) != ES_OK
                 : es_decode_record(vs->v[i], vs->len[i], NULL, 0, 1 << 20, 0,
                                    &d, reason, sizeof(reason));
        if (rc) {
            fprintf(stderr, "event %zu: %s\n", i, reason);
            exit(1);
        }
        ok++;
        es_decoded_clear(&d);
    }
    return ok;
}

static void run(const char *name, es_avro_hook_t *h, const values_t *vs,
                int avro, double seconds)
{
    size_t events = 0, passes = 0;
    double t0 = cpu_s(), t;
    do {
        events += pass(h, vs, avro);
        passes++;
    } while ((t = cpu_s() - t0) < seconds);
    printf("%-5s events=%zu cpu_s=%.3f events_per_s=%.0f us_per_event=%.3f "
           "input_bytes_per_event=%.0f\n",
           name, events, t, (double)events / t, t * 1e6 / (double)events,
           (double)vs->bytes / (double)vs->n);
}

/* The Avro path must produce the JSON events it is compared with. */
static void check_same(es_avro_hook_t *h, const values_t *a, const values_t *j)
{
    char reason[256];
    for (size_t i = 0; i < a->n && i < j->n; i++) {
        es_decoded_t da, dj;
        if (es_avro_hook_decode(h, "t", a->v[i], a->len[i], NULL, 0, &da,
                                reason, sizeof(reason)) != ES_OK ||
            es_decode_record(j->v[i], j->len[i], NULL, 0, 1 << 20, 0, &dj,
                             reason, sizeof(reason))) {
            fprintf(stderr, "event %zu: %s\n", i, reason);
            exit(1);
        }
        if (!cJSON_Compare(da.ce, dj.ce, 1)) {
            fprintf(stderr, "event %zu differs:\n%s\n%.*s\n", i, da.json,
                    (int)j->len[i], j->v[i]);
            exit(1);
        }
        es_decoded_clear(&da);
        es_decoded_clear(&dj);
    }
}

int main(int argc, char **argv)
{
    values_t avro = {0}, json = {0};
    es_config_t *conf;
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [SECONDS]\n", argv[0]);
        return 2;
    }
    double seconds = argc > 2 ? atof(argv[2]) : 2.0;
    load(argv[1], &avro, &json);
    es_avro_hook_t *h = hook_for(argv[1], &conf);
    check_same(h, &avro, &json);
    printf("same %zu events: avro and json decode to equal CloudEvents\n",
           avro.n);
    run("json", h, &json, 0, seconds);
    run("avro", h, &avro, 1, seconds);
    es_avro_hook_destroy(h);
    es_config_destroy(conf);
    return 0;
}
