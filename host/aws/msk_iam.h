/*
 * Amazon MSK IAM authentication for librdkafka: SASL/OAUTHBEARER tokens that
 * are SigV4-presigned `GET https://kafka.<region>.amazonaws.com/?Action=
 * kafka-cluster%3AConnect` URLs, built exactly as AWS's own signer libraries
 * (aws-msk-iam-sasl-signer-go/-python/-js) build them, and the librdkafka
 * wiring that hands them to every Kafka client the daemon creates.
 *
 * Layers, bottom up:
 *   1. es_sigv4_*: pure SigV4 (canonical query, signature, query presign).
 *      No clock, no I/O: what goes in fixes what comes out, so AWS's
 *      published test vectors check it.
 *   2. es_msk_iam_token_build(): credentials + region + sign time -> token
 *      and its lifetime. Pure as well.
 *   3. es_msk_iam_t and es_msk_iam_configure()/_start()/_check(): the
 *      credentials chain (es_aws_credentials.h), the clock and librdkafka.
 *
 * Switch (per Kafka client, in its librdkafka property map; these keys are
 * consumed by es_msk_iam_opts_set() and never reach librdkafka):
 *   sasl.oauthbearer.method = aws_msk_iam    switches MSK IAM on
 *   aws_msk_iam             = true | false   the same, as a boolean
 *   aws_msk_iam.region      = us-east-1      signing region (default: parsed
 *       from the first bootstrap broker host name, then AWS_REGION, then
 *       AWS_DEFAULT_REGION)
 * and the client must also say sasl.mechanisms=OAUTHBEARER (and, for MSK,
 * security.protocol=SASL_SSL).
 *
 * HMAC-SHA256 and SHA-256 come from OpenSSL's libcrypto.
 */
#ifndef ES_MSK_IAM_H
#define ES_MSK_IAM_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "es_aws_credentials.h"

/* ---- 1. SigV4 ------------------------------------------------------------ */

/* One query parameter, raw (not yet percent-encoded). */
typedef struct es_sigv4_param_s {
    const char *name;
    const char *value;
} es_sigv4_param_t;

/*
 * AWS URI encoding: every byte outside A-Z a-z 0-9 - _ . ~ becomes %XY
 * (upper-case hex). Returns the length written (excluding the NUL), or -1
 * when `out` is too small.
 */
long es_sigv4_uri_encode(const char *in, char *out, size_t out_size);

/*
 * Canonical query string: each name and value URI-encoded, pairs sorted by
 * encoded name then encoded value, joined with '&'. Returns the length or -1
 * when `out` is too small.
 */
long es_sigv4_canonical_query(const es_sigv4_param_t *params, size_t n,
                              char *out, size_t out_size);

/* A request already in canonical form. */
typedef struct es_sigv4_request_s {
    const char *method;            /* "GET" */
    const char *canonical_uri;     /* "/" */
    const char *canonical_query;   /* from es_sigv4_canonical_query() */
    const char *canonical_headers; /* "host:h\nx-amz-date:d\n" (sorted) */
    const char *signed_headers;    /* "host;x-amz-date" */
    const char *payload_hash;      /* hex SHA-256 of the body */
} es_sigv4_request_t;

/*
 * Signs `req` for `amz_date` ("20150830T123600Z"), region and service with
 * `secret`: writes the 64-hex-digit signature and NUL into sig_hex[65].
 * When creq_hash_hex is not NULL it receives the hex SHA-256 of the
 * canonical request (the last line of the string to sign), for tests.
 * Returns 0, or -1 on a libcrypto failure or an oversized request.
 */
int es_sigv4_sign(const es_sigv4_request_t *req, const char *secret,
                  const char *amz_date, const char *region, const char *service,
                  char sig_hex[65], char creq_hash_hex[65]);

/* A query-string presign (signature in the URL, only `host` signed). */
typedef struct es_sigv4_presign_s {
    const char *method;             /* "GET" */
    const char *host;               /* the Host header value */
    const char *canonical_uri;      /* "/" */
    const es_sigv4_param_t *params; /* the request's own query parameters */
    size_t n_params;
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL or "": none; else signed in query */
    const char *region;
    const char *service;
    time_t sign_time; /* UTC seconds; gives X-Amz-Date */
    long expires;     /* X-Amz-Expires, seconds */
} es_sigv4_presign_t;

/*
 * Builds the presigned query: the canonical query of the request parameters
 * plus X-Amz-Algorithm, -Credential, -Date, -Expires, -Security-Token (when
 * there is one) and -SignedHeaders=host, then "&X-Amz-Signature=<hex>" last.
 * Returns a malloc()ed string (free() it), or NULL with errstr filled.
 */
char *es_sigv4_presign_query(const es_sigv4_presign_t *p, char *errstr,
                             size_t errstr_size);

/* ---- 2. MSK IAM token ------------------------------------------------------
 */

#define ES_MSK_IAM_SERVICE "kafka-cluster"
#define ES_MSK_IAM_ACTION "kafka-cluster:Connect"
#define ES_MSK_IAM_EXPIRES_S 900

typedef struct es_msk_iam_token_s {
    char *value;         /* base64url, no padding; malloc()ed */
    int64_t lifetime_ms; /* absolute, ms since the epoch */
} es_msk_iam_token_t;

/*
 * The token for `creds` in `region`, signed at `sign_time`: the presigned
 * URL https://kafka.<region>.amazonaws.com/?<query>&User-Agent=<ua>, the
 * User-Agent added after signing, base64url-encoded without padding.
 * lifetime_ms = min(sign_time + 900 s, creds->expiration when non-zero).
 * Fails when the credentials are empty or already expired at sign_time, or
 * the region is not a valid region name. `user_agent` NULL = the default
 * ("eventstream/librdkafka-<version>"). Free with es_msk_iam_token_clear().
 */
int es_msk_iam_token_build(const es_aws_credentials_t *creds,
                           const char *region, time_t sign_time,
                           const char *user_agent, es_msk_iam_token_t *out,
                           char *errstr, size_t errstr_size);
void es_msk_iam_token_clear(es_msk_iam_token_t *token);

/* 1 when `region` looks like an AWS region name ("ap-south-1"). */
int es_msk_iam_region_valid(const char *region);

/*
 * Region of an MSK broker list ("b-1.x.ap-south-1.amazonaws.com:9098,...",
 * "boot-x.c2.kafka-serverless.us-east-1.amazonaws.com:9098"): the label
 * before "amazonaws.com" of the first broker. Returns 0, or -1 when the
 * first broker's host name carries no region.
 */
int es_msk_iam_region_from_brokers(const char *brokers, char *region,
                                   size_t region_size);

/* ---- 3. librdkafka wiring ---------------------------------------------------
 */

/*
 * Signer: owns a credentials provider (es_aws_provider_new(popts)); shared
 * by every Kafka client of the process, thread-safe. Destroy it only after
 * every rd_kafka_t configured with it has been destroyed (a refresh that
 * finds it gone fails the token with a clear message; it never crashes).
 */
typedef struct es_msk_iam_s es_msk_iam_t;

es_msk_iam_t *es_msk_iam_new(const es_aws_provider_opts_t *popts, char *errstr,
                             size_t errstr_size);
void es_msk_iam_destroy(es_msk_iam_t *msk);

/* Tokens handed to librdkafka and refresh failures so far (for metrics). */
void es_msk_iam_stats(es_msk_iam_t *msk, uint64_t *tokens, uint64_t *failures);

/* The per-client switch, filled from that client's property map. */
typedef struct es_msk_iam_opts_s {
    int enabled;
    char region[32]; /* "" = from bootstrap.servers / the environment */
} es_msk_iam_opts_t;

/*
 * Offers one property to the switch. Returns 1 when the key is ours and was
 * stored (do NOT pass it to rd_kafka_conf_set()), 0 when it is not ours
 * (pass it on), -1 when it is ours but the value is bad (errstr names the
 * key and what was wrong).
 */
int es_msk_iam_opts_set(es_msk_iam_opts_t *opts, const char *key,
                        const char *value, char *errstr, size_t errstr_size);

/*
 * Call on every rd_kafka_conf_t, after all properties are set and before
 * rd_kafka_new(). When opts->enabled is 0 it does nothing and returns 0.
 * Otherwise it requires sasl.mechanisms=OAUTHBEARER and a SASL
 * security.protocol, resolves the region, installs the token refresh
 * callback (sasl.oauthbearer.config is taken over to carry the signer and
 * region to the callback: the conf's opaque stays the caller's), and
 * enables the SASL queue so that es_msk_iam_start() can move refreshes to
 * librdkafka's background thread. Returns 0, or -1 with errstr.
 */
int es_msk_iam_configure(rd_kafka_conf_t *conf, const es_msk_iam_opts_t *opts,
                         es_msk_iam_t *msk, char *errstr, size_t errstr_size);

/* 1 when es_msk_iam_configure() installed MSK IAM on this conf. */
int es_msk_iam_configured(const rd_kafka_conf_t *conf);

/*
 * Call right after every rd_kafka_new(): for a client configured for MSK
 * IAM it enables background SASL callbacks (token refresh no longer
 * depends on the poll loop); for any other client it does nothing.
 * Returns 0, or -1 with errstr.
 */
int es_msk_iam_start(rd_kafka_t *rk, char *errstr, size_t errstr_size);

/*
 * Startup check for a conf es_msk_iam_configure() has set up: resolves
 * credentials through the chain and signs one token, so that missing
 * credentials fail at startup (errstr lists every source tried) instead of
 * as endless broker reconnects. Returns 0 (also for confs without MSK IAM),
 * or -1 with errstr.
 */
int es_msk_iam_check(const rd_kafka_conf_t *conf, char *errstr,
                     size_t errstr_size);

#endif
