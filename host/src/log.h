/* One line per record, logfmt (default) or JSON, to stderr. */
#ifndef ES_LOG_H
#define ES_LOG_H

#include <stdarg.h>

#include "eventstream/plugin.h"

typedef enum es_log_format_e {
    ES_LOG_LOGFMT = 1,
    ES_LOG_JSON = 2
} es_log_format_t;

void es_log_setup(es_log_level_t level, es_log_format_t format);
int es_log_level_parse(const char *s, es_log_level_t *out);
int es_log_enabled(es_log_level_t level);

/* `component` tags the line ("host", "loader", or an instance name). */
void es_log(es_log_level_t level, const char *component, const char *fmt, ...)
    ES_PRINTF(3, 4);
void es_logv(es_log_level_t level, const char *component, const char *fmt,
             va_list ap);

#define es_err(...) es_log(ES_LOG_ERROR, "host", __VA_ARGS__)
#define es_warn(...) es_log(ES_LOG_WARN, "host", __VA_ARGS__)
#define es_info(...) es_log(ES_LOG_INFO, "host", __VA_ARGS__)
#define es_dbg(...) es_log(ES_LOG_DEBUG, "host", __VA_ARGS__)

#endif
