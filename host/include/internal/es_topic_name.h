/*
 * Kafka's rule for a topic name, for the host's config, topic files,
 * subscriptions and emit, and the kafka sink's topic templates (header
 * only). Not part of the plugin SDK.
 */
#ifndef ES_TOPIC_NAME_H
#define ES_TOPIC_NAME_H

#include <stddef.h>
#include <string.h>

/* Kafka's own limit (a longer name is refused by the broker). */
#define ES_TOPIC_NAME_MAX 249

#define ES_TOPIC_NAME_RULE                                                     \
    "is not a Kafka topic name (1 to 249 of letters, digits, '.', '_' and "    \
    "'-')"

/* 1 when name[0..len) is a topic name the broker takes: 1 to 249 of a-z,
 * A-Z, 0-9, '.', '_' and '-', not "." or "..". A name outside it fails at
 * run time, so it is refused where it is configured. */
static inline int es_topic_name_valid_n(const char *name, size_t len)
{
    if (len == 0 || len > ES_TOPIC_NAME_MAX ||
        (name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.'))))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
            !(c >= '0' && c <= '9') && c != '.' && c != '_' && c != '-')
            return 0;
    }
    return 1;
}

static inline int es_topic_name_valid(const char *name)
{
    return es_topic_name_valid_n(name, strlen(name));
}

#endif
