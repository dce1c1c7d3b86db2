#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

static es_log_level_t log_level = ES_LOG_INFO;
static es_log_format_t log_format = ES_LOG_LOGFMT;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"", "error", "warn", "info", "debug"};

void es_log_setup(es_log_level_t level, es_log_format_t format)
{
    log_level = level;
    log_format = format;
}

int es_log_level_parse(const char *s, es_log_level_t *out)
{
    for (int i = ES_LOG_ERROR; i <= ES_LOG_DEBUG; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (es_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

int es_log_enabled(es_log_level_t level)
{
    return level <= log_level;
}

static void format_time(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Quotes for logfmt (always, for simplicity of parsing) or JSON: both
 * escape backslash, double quote and control characters the same way. */
static void put_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

void es_logv(es_log_level_t level, const char *component, const char *fmt,
             va_list ap)
{
    if (!es_log_enabled(level))
        return;
    char ts[40], msg[2048];
    format_time(ts, sizeof ts);
    vsnprintf(msg, sizeof msg, fmt, ap);
    pthread_mutex_lock(&log_lock);
    if (log_format == ES_LOG_JSON) {
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", ts,
                level_names[level]);
        put_quoted(stderr, component);
        fputs(",\"msg\":", stderr);
        put_quoted(stderr, msg);
        fputs("}\n", stderr);
    } else {
        fprintf(stderr, "ts=%s level=%s component=", ts, level_names[level]);
        put_quoted(stderr, component);
        fputs(" msg=", stderr);
        put_quoted(stderr, msg);
        fputc('\n', stderr);
    }
    pthread_mutex_unlock(&log_lock);
}

void es_log(es_log_level_t level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    es_logv(level, component, fmt, ap);
    va_end(ap);
}
