/*
 * Drives the blockchain handler through the real plugin loader path
 * (dlopen + es_plugin_entry) with the fake host, one event at a time, the
 * way the daemon would: RETRY is redelivered with exponential backoff up to
 * a number of attempts, FAIL is "dead-lettered" (printed). Used by
 * tests/e2e/blockchain.sh against a real ganache.
 *
 * usage: bc_driver PLUGIN.so CONFIG.json STATE_FILE EVENTS.jsonl OUT
 *                  [MAX_ATTEMPTS [BACKOFF_MS]]
 * OUT gets one line per emitted event ("emit TAB topic TAB key TAB json")
 * and per input event ("result TAB id TAB OK|FAIL|GAVEUP TAB reason").
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "bc_fake_host.h"
#include "eventstream/plugin.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr,
                "usage: %s PLUGIN CONFIG STATE EVENTS OUT "
                "[MAX_ATTEMPTS [BACKOFF_MS]]\n",
                argv[0]);
        return 2;
    }
    int max_attempts = argc > 6 ? atoi(argv[6]) : 10;
    long backoff0 = argc > 7 ? atol(argv[7]) : 200;
    void *dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    es_plugin_entry_fn entry =
        (es_plugin_entry_fn)dlsym(dl, ES_PLUGIN_ENTRY_SYMBOL);
    const es_plugin_t *p = entry ? entry(ES_PLUGIN_ABI_VERSION) : NULL;
    if (!p || p->abi != ES_PLUGIN_ABI_VERSION || p->kind != ES_KIND_HANDLER) {
        fprintf(stderr, "%s: not a handler plugin\n", argv[1]);
        return 1;
    }
    char *conf_text = slurp(argv[2]);
    cJSON *conf = conf_text ? cJSON_Parse(conf_text) : NULL;
    fake_host_t *fh = fh_new(argv[3]);
    fh->verbose = getenv("BC_VERBOSE") != NULL;
    char err[512] = "";
    void *inst = NULL;
    if (!conf || p->init(&fh->host, conf, &inst, err, sizeof(err)) != 0) {
        fprintf(stderr, "init: %s\n", conf ? err : "bad config file");
        return 1;
    }
    FILE *in = fopen(argv[4], "r");
    FILE *out = fopen(argv[5], "a");
    if (!in || !out) {
        perror("events/out");
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    uint64_t token = 0;
    int failures = 0;
    while (getline(&line, &cap, in) > 0) {
        cJSON *ce = cJSON_Parse(line);
        if (!ce)
            continue;
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(ce, "data");
        es_event_t ev = {0};
        ev.json = line;
        ev.json_len = strlen(line);
        ev.ce = ce;
        ev.id = str(ce, "id");
        ev.type = str(ce, "type");
        ev.source = str(ce, "source");
        ev.subject = str(ce, "subject");
        ev.time = str(ce, "time");
        ev.tenant = str(data, "tenantId");
        ev.topic = "ticketing-events";
        ev.route = "chain";
        const char *verdict = "GAVEUP";
        char reason[256] = "";
        long backoff = backoff0;
        size_t emitted_before = fh->nemits;
        for (int attempt = 1; attempt <= max_attempts; attempt++) {
            es_result_t r = {0};
            const es_event_t *evs[] = {&ev};
            ev.token = ++token;
            ev.attempt = (uint32_t)attempt;
            size_t before = fh->ndone;
            p->deliver(inst, evs, 1, &r);
            es_status_t st = r.status;
            snprintf(reason, sizeof(reason), "%s", r.reason);
            if (st == ES_PENDING) {
                if (fh_wait_completions(fh, before + 1, 300000) != 0) {
                    fprintf(stderr, "no completion for %s\n", ev.id);
                    return 1;
                }
                const fh_completion_t *c = fh_completion(fh, ev.token);
                st = c->status;
                snprintf(reason, sizeof(reason), "%s", c->reason);
            }
            if (st == ES_OK) {
                verdict = "OK";
                break;
            }
            if (st == ES_FAIL) {
                verdict = "FAIL";
                break;
            }
            /* Events emitted by a retried attempt would not be acked as
             * part of a completed parent in the daemon: drop them. */
            fh_truncate_emits(fh, emitted_before);
            if (attempt < max_attempts)
                sleep_ms(backoff);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
        }
        for (size_t i = emitted_before; i < fh->nemits; i++)
            fprintf(out, "emit\t%s\t%s\t%s\n", fh->emits[i].topic,
                    fh->emits[i].key, fh->emits[i].json);
        fprintf(out, "result\t%s\t%s\t%s\n", ev.id, verdict, reason);
        fflush(out);
        failures += strcmp(verdict, "OK") != 0;
        cJSON_Delete(ce);
    }
    free(line);
    fclose(in);
    fclose(out);
    p->destroy(inst);
    cJSON_Delete(conf);
    free(conf_text);
    fh_destroy(fh);
    dlclose(dl);
    fprintf(stderr, "bc_driver: %llu deliveries, %d not OK\n",
            (unsigned long long)token, failures);
    return 0;
}
