/*
 * Fuzz target for the Avro input (host/avro/): Kafka record values decoded
 * with a topic's local schema into CloudEvents, from untrusted bytes.
 *
 * The input's first byte picks the topic: "ce" (the record is a CloudEvent,
 * its data a record of every Avro type) or "data" (that record is the
 * event's data, the attributes come from ce_ headers). The rest is the
 * value, plain Avro binary or the wire format (0x00, a schema id, Avro).
 * Besides "no crash, no sanitizer report, a reason for every refusal":
 *  - a decoded event the daemon takes (es_decode_validate, as
 *    host/avro/hook.c does) is handed on as its JSON text
 *    (cJSON_PrintUnformatted): a CloudEvent the host's own decoder takes,
 *    with the same attributes;
 *  - es_avro_decode_value agrees with es_avro_decode on the verdict.
 *
 * Built with libFuzzer by scripts/fuzz, and replayed over
 * tests/fuzz/corpus/avro/ by `make check`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "decode.h"
#include "es_avro.h"
#include "fuzz.h"

/* Every Avro type and logical type docs/avro.md maps. */
#define ALL_TYPES                                                              \
    "{\"type\":\"record\",\"name\":\"All\",\"fields\":["                       \
    "{\"name\":\"b\",\"type\":\"boolean\"},"                                   \
    "{\"name\":\"i\",\"type\":\"int\"},"                                       \
    "{\"name\":\"l\",\"type\":\"long\"},"                                      \
    "{\"name\":\"f\",\"type\":\"float\"},"                                     \
    "{\"name\":\"d\",\"type\":\"double\"},"                                    \
    "{\"name\":\"s\",\"type\":\"string\"},"                                    \
    "{\"name\":\"by\",\"type\":\"bytes\"},"                                    \
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"Color\","          \
    "\"symbols\":[\"RED\",\"GREEN\"]}},"                                       \
    "{\"name\":\"fx\",\"type\":{\"type\":\"fixed\",\"name\":\"Tag\","          \
    "\"size\":4}},"                                                            \
    "{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"long\"}},"       \
    "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"      \
    "{\"name\":\"u\",\"type\":[\"null\",\"string\",\"double\"]},"              \
    "{\"name\":\"dec\",\"type\":{\"type\":\"bytes\",\"logicalType\":"          \
    "\"decimal\",\"precision\":9,\"scale\":2}},"                               \
    "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":"            \
    "\"timestamp-micros\"}},"                                                  \
    "{\"name\":\"day\",\"type\":{\"type\":\"int\",\"logicalType\":\"date\"}}," \
    "{\"name\":\"t\",\"type\":{\"type\":\"int\",\"logicalType\":"              \
    "\"time-millis\"}},"                                                       \
    "{\"name\":\"dur\",\"type\":{\"type\":\"fixed\",\"name\":\"Dur\","         \
    "\"size\":12,\"logicalType\":\"duration\"}}]}"

static const char CE_SCHEMA[] =
    "{\"type\":\"record\",\"name\":\"Event\",\"fields\":["
    "{\"name\":\"specversion\",\"type\":\"string\"},"
    "{\"name\":\"id\",\"type\":\"string\"},"
    "{\"name\":\"source\",\"type\":\"string\"},"
    "{\"name\":\"type\",\"type\":\"string\"},"
    "{\"name\":\"subject\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"tenantid\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"data\",\"type\":[\"null\"," ALL_TYPES "]}]}";
static const char DATA_SCHEMA[] = ALL_TYPES;

static es_avro_t *avro;

static void add_schema(const char *topic, const char *schema)
{
    char path[] = "/tmp/es-fuzz-avro-XXXXXX";
    int fd = mkstemp(path);
    size_t n = strlen(schema);
    FUZZ_CHECK(fd >= 0 && write(fd, schema, n) == (ssize_t)n,
               "cannot write the schema");
    close(fd);
    char err[512];
    FUZZ_CHECK(es_avro_add_local_schema(avro, topic, path, err, sizeof err) ==
                   0,
               "schema: %s", err);
    unlink(path);
}

static void stop(void)
{
    es_avro_destroy(avro); /* what it holds is then no leak */
}

static void start(void)
{
    char err[512];
    cJSON *conf = cJSON_Parse("{\"max_items\":1000,\"max_depth\":16}");
    avro = es_avro_new(conf, err, sizeof err);
    cJSON_Delete(conf);
    FUZZ_CHECK(avro, "es_avro_new: %s", err);
    add_schema("ce", CE_SCHEMA);
    add_schema("data", DATA_SCHEMA);
    atexit(stop);
}

static const char *attr(const cJSON *ev, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void same_attr(const char *name, const char *a, const char *b)
{
    FUZZ_CHECK((!a && !b) || (a && b && !strcmp(a, b)),
               "attribute %s differs after the text's decode", name);
}

/* The event as the daemon hands it on (host/avro/hook.c): validated as a
 * CloudEvent, then its text, which the host's decoder must take as it is. */
static void check_event(cJSON *ev)
{
    FUZZ_CHECK(cJSON_IsObject(ev), "the event is not an object");
    es_decoded_t d;
    char why[256];
    if (es_decode_validate(ev, &d, why, sizeof why) != 0)
        return; /* dead-lettered by the hook, with the reason */
    char *text = cJSON_PrintUnformatted(ev);
    FUZZ_CHECK(text, "the event does not print");
    int rc = es_decode_record(text, strlen(text), NULL, 0, SIZE_MAX, 1, &d, why,
                              sizeof why);
    FUZZ_CHECK(rc == 0, "the host refuses the event's text: %s: %s", why, text);
    same_attr("id", d.id, attr(ev, "id"));
    same_attr("source", d.source, attr(ev, "source"));
    same_attr("type", d.type, attr(ev, "type"));
    es_decoded_clear(&d);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!avro)
        start();
    const char *topic = data[0] & 1 ? "data" : "ce";
    static const es_header_t headers[] = {
        {"ce_specversion", "1.0", 3}, {"ce_id", "h-1", 3},
        {"ce_source", "fuzz", 4},     {"ce_type", "fuzz.avro.v1", 12},
        {"ce_tenantid", "t1", 2},
    };
    size_t len = size - 1;
    void *value = malloc(len ? len : 1); /* exactly its size, for ASan */
    memcpy(value, data + 1, len);
    cJSON *ev = NULL, *v = NULL;
    char why[256] = "", why_value[256] = "";
    es_avro_status_t st = es_avro_decode(avro, topic, value, len, headers, 5,
                                         &ev, why, sizeof why);
    es_avro_status_t st_value = es_avro_decode_value(
        avro, topic, value, len, &v, why_value, sizeof why_value);
    FUZZ_CHECK(st != ES_AVRO_RETRY, "retry without a registry: %s", why);
    if (st == ES_AVRO_OK)
        check_event(ev);
    else
        FUZZ_CHECK(!ev && why[0], "refused without a reason");
    /* A value that decodes may still fail as an event (a "ce" record with
     * specversion "2.0"); one that does not decode fails both ways. */
    if (st_value != ES_AVRO_OK)
        FUZZ_CHECK(st != ES_AVRO_OK, "the value fails (%s), the event not",
                   why_value);
    cJSON_Delete(ev);
    cJSON_Delete(v);
    free(value);
    return 0;
}
