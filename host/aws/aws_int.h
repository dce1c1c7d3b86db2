/*
 * Internals of the AWS credentials chain shared by credentials.c (the chain,
 * HTTP, environment, web identity, container, IMDS) and profile.c (the
 * shared credentials/config files: role chaining, SSO, credential_process).
 * Not installed; every symbol is hidden, so a plugin that links libesaws
 * exports none of them.
 */
#ifndef ES_AWS_INT_H
#define ES_AWS_INT_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

#include "es_aws_credentials.h"

#define ES_AWS_REFRESH_MARGIN 300 /* refresh this many seconds early */
#define ES_AWS_MAX_RESPONSE (256 * 1024)
#define ES_AWS_MAX_CHAIN 5 /* source_profile hops */
#define ES_AWS_PROCESS_TIMEOUT_MS 30000
#define ES_AWS_PROCESS_MAX_OUTPUT (64 * 1024)

#define ES_AWS_HIDDEN __attribute__((visibility("hidden")))

/* What a source answers. */
enum { SRC_NONE = 0, SRC_OK = 1, SRC_FAILED = -1 };

struct es_aws_provider_s {
    pthread_mutex_t lock;
    char *profile;
    char *access_key_id;
    char *secret_access_key;
    char *session_token;
    char *sts_endpoint;
    char *imds_endpoint;
    char *container_host;
    long timeout_ms;
    int have_cached;
    es_aws_credentials_t cached;
};

/* Notes collected while walking the chain: the error message. */
typedef struct notes_s {
    char buf[1024];
    size_t len;
} notes_t;

ES_AWS_HIDDEN void es_aws_note(notes_t *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* getenv(), NULL when unset or empty */
ES_AWS_HIDDEN const char *es_aws_env(const char *name);
ES_AWS_HIDDEN int es_aws_copy_field(char *dst, size_t size, const char *src);
ES_AWS_HIDDEN int es_aws_fill_creds(es_aws_credentials_t *out,
                                    const char *source, const char *akid,
                                    const char *secret, const char *token,
                                    time_t expiration);
/* "2026-11-23T10:20:30Z" (fraction allowed); (time_t)-1 when not that */
ES_AWS_HIDDEN time_t es_aws_parse_iso8601(const char *s);
/* s without leading and (cut off in place) trailing whitespace */
ES_AWS_HIDDEN char *es_aws_trim(char *s);
/* at most max bytes, trailing whitespace trimmed; NULL with errno */
ES_AWS_HIDDEN char *es_aws_read_small_file(const char *path, size_t max);
/* HTTP status (>0) with the body in *resp, or -1 with errstr; SigV4-signed
 * by libcurl with `sign` when not NULL (sigv4: "aws:amz:REGION:SERVICE") */
ES_AWS_HIDDEN long es_aws_http_call_signed(const es_aws_provider_t *p,
                                           const char *method, const char *url,
                                           const char *const *headers,
                                           const char *body,
                                           const es_aws_credentials_t *sign,
                                           const char *sigv4, char **resp,
                                           char *errstr, size_t errstr_size);
ES_AWS_HIDDEN long es_aws_http_call(const es_aws_provider_t *p,
                                    const char *method, const char *url,
                                    const char *const *headers,
                                    const char *body, char **resp, char *errstr,
                                    size_t errstr_size);
ES_AWS_HIDDEN char *es_aws_url_encode(const char *s);
ES_AWS_HIDDEN char *es_aws_xml_value(const char *xml, const char *tag);
ES_AWS_HIDDEN int es_aws_sts_parse(const char *resp, const char *source,
                                   es_aws_credentials_t *out);
/* the configured or AWS_ENDPOINT_URL_STS endpoint, NULL for the default */
ES_AWS_HIDDEN const char *es_aws_sts_endpoint(const es_aws_provider_t *p);
ES_AWS_HIDDEN int es_aws_web_identity(es_aws_provider_t *p,
                                      const char *token_file,
                                      const char *role_arn,
                                      const char *session_name,
                                      es_aws_credentials_t *out, notes_t *n);

/* Sources: SRC_NONE, SRC_OK (out filled) or SRC_FAILED, noting why. */
ES_AWS_HIDDEN int es_aws_src_env(es_aws_provider_t *p,
                                 es_aws_credentials_t *out, notes_t *n);
ES_AWS_HIDDEN int es_aws_src_container(es_aws_provider_t *p,
                                       es_aws_credentials_t *out, notes_t *n);
ES_AWS_HIDDEN int es_aws_src_imds(es_aws_provider_t *p,
                                  es_aws_credentials_t *out, notes_t *n);
/* profile.c */
ES_AWS_HIDDEN int es_aws_src_profile(es_aws_provider_t *p,
                                     es_aws_credentials_t *out, notes_t *n);

/* The answers the sources parse (0, or -1 with why where there is one),
 * out in (tests/fuzz/fuzz_aws.c): the container endpoint's and IMDS's JSON
 * (credentials.c), credential_process's output and SSO's
 * GetRoleCredentials JSON (profile.c). es_aws_sts_parse is the STS XML. */
ES_AWS_HIDDEN int es_aws_json_creds_parse(const char *body, const char *source,
                                          es_aws_credentials_t *out, char *why,
                                          size_t why_size);
ES_AWS_HIDDEN int es_aws_process_parse(const char *body,
                                       es_aws_credentials_t *out, char *why,
                                       size_t why_size);
ES_AWS_HIDDEN int es_aws_sso_parse(const char *body, es_aws_credentials_t *out);

#endif
