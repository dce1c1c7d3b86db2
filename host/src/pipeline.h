/*
 * The daemon's pipeline: consumers (one rd_kafka_t per consumer group),
 * decode, routes with their filter chains, delivery to plugin instances,
 * retries with backoff, dead-lettering, and per-partition offset commits.
 * Everything here runs on the thread that calls es_pipeline_run, except
 * what plugins do on their own threads, which reaches the pipeline only
 * through the thread-safe host services (complete, emit).
 */
#ifndef ES_PIPELINE_H
#define ES_PIPELINE_H

#include <signal.h>

#include "config.h"
#include "loader.h"

typedef struct es_pipeline_s es_pipeline_t;

/* Builds instances (plugin init), consumers and the host producer. The
 * loader must outlive the pipeline. Returns NULL with errstr. */
es_pipeline_t *es_pipeline_new(const es_config_t *conf, es_loader_t *loader,
                               const char *brokers, char *errstr,
                               size_t errstr_size);

/* Runs until *stop becomes non-zero, then drains in-flight events (up to
 * the shutdown timeout), commits and leaves the groups. Returns 0. */
int es_pipeline_run(es_pipeline_t *p, volatile sig_atomic_t *stop);

void es_pipeline_destroy(es_pipeline_t *p);

/* Only creates and destroys every instance: for --check-config. */
int es_pipeline_check_instances(const es_config_t *conf, es_loader_t *loader,
                                char *errstr, size_t errstr_size);

#endif
