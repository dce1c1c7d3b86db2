/*
 * MSK IAM signer: SigV4 known-answer tests (AWS's published test suite),
 * tokens checked field by field by an independent Python recomputation,
 * expiry rules, region parsing, the property switch, and the librdkafka
 * wiring observed on the wire through a fake broker on loopback.
 */
#include <check.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "msk_iam.h"

#ifndef ES_TEST_SRCDIR
#define ES_TEST_SRCDIR "."
#endif
#define PY_CHECKER ES_TEST_SRCDIR "/tests/unit/test_msk_iam_token.py"

/* The suite's fixed inputs (aws-sig-v4-test-suite / aws-c-auth v4). */
#define SUITE_AK "AKIDEXAMPLE"
#define SUITE_SK "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_DATE "20150830T123600Z"
#define SUITE_TIME ((time_t)1440938160) /* 2015-08-30T12:36:00Z */
#define UNRESERVED                                                             \
    "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

typedef struct kat_s {
    const char *name;
    es_sigv4_param_t params[2];
    size_t n;
    const char *header_sig; /* signed headers host;x-amz-date */
    const char *query_sig;  /* presigned, X-Amz-Expires=3600 (or NULL) */
} kat_t;

static const kat_t kats[] = {
    {"get-vanilla-query",
     {{0}},
     0,
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
     "e93c787ed7f371d5c6b165c1b38ede9550f4dce4144713e844b25b7192d3865d"},
    {"get-vanilla-empty-query-key",
     {{"Param1", "value1"}},
     1,
     "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
     "49096700cbbaa5753443850f40df10f904fc2fdb544dc9512203cc77c471a9de"},
    {"get-vanilla-query-order-key-case",
     {{"Param2", "value2"}, {"Param1", "value1"}},
     2,
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
     "86012e2c9ad4d77369f5d81c11f75158aae4f895a085212cc6d3f923d300bed5"},
    {"get-vanilla-query-order-key",
     {{"Param1", "value2"}, {"Param1", "value1"}},
     2,
     "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
     NULL},
    {"get-vanilla-query-order-value",
     {{"Param1", "value2"}, {"Param1", "Value1"}},
     2,
     "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
     NULL},
    {"get-vanilla-query-unreserved",
     {{UNRESERVED, UNRESERVED}},
     1,
     "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
     "8e76a88a7433637b12778d5592799b29ad21ecd6cf6325051c21d86f0acda2bf"},
    {"get-vanilla-utf8-query",
     {{"\xe1\x88\xb4", "bar"}},
     1,
     "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
     "0bdd809b1519ac4f0c1dc3540e2cc46bd0c7f778eda408b2ebf3b913d21ff600"},
};
#define N_KATS (sizeof(kats) / sizeof(kats[0]))

START_TEST(sigv4_header_form_vectors)
{
    const kat_t *k = &kats[_i];
    char query[1024], sig[65], creq_hash[65];
    ck_assert_int_ge(
        es_sigv4_canonical_query(k->params, k->n, query, sizeof(query)), 0);
    es_sigv4_request_t req = {
        .method = "GET",
        .canonical_uri = "/",
        .canonical_query = query,
        .canonical_headers =
            "host:example.amazonaws.com\nx-amz-date:" SUITE_DATE "\n",
        .signed_headers = "host;x-amz-date",
        .payload_hash =
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    };
    ck_assert_int_eq(es_sigv4_sign(&req, SUITE_SK, SUITE_DATE, "us-east-1",
                                   "service", sig, creq_hash),
                     0);
    ck_assert_msg(!strcmp(sig, k->header_sig), "%s: %s", k->name, sig);
    if (k->n == 0) /* the suite's .sts for get-vanilla(-query) */
        ck_assert_str_eq(creq_hash, "bb579772317eb040ac9ed261061d46c1f17a81"
                                    "33879d6129b6e1c25292927e63");
}
END_TEST

START_TEST(sigv4_query_form_vectors)
{
    const kat_t *k = &kats[_i];
    char err[256], tail[128];
    if (!k->query_sig)
        return;
    es_sigv4_presign_t p = {
        .method = "GET",
        .host = "example.amazonaws.com",
        .canonical_uri = "/",
        .params = k->params,
        .n_params = k->n,
        .access_key_id = SUITE_AK,
        .secret_access_key = SUITE_SK,
        .region = "us-east-1",
        .service = "service",
        .sign_time = SUITE_TIME,
        .expires = 3600,
    };
    char *q = es_sigv4_presign_query(&p, err, sizeof(err));
    ck_assert_msg(q != NULL, "%s", err);
    snprintf(tail, sizeof(tail), "&X-Amz-Signature=%s", k->query_sig);
    size_t ql = strlen(q), tl = strlen(tail);
    ck_assert_msg(ql > tl && !strcmp(q + ql - tl, tail), "%s: %s", k->name, q);
    ck_assert_ptr_nonnull(strstr(
        q, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%"
           "2F20150830%2Fus-east-1%2Fservice%2Faws4_request&X-Amz-Date="
           "20150830T123600Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&"));
    free(q);
}
END_TEST

START_TEST(sigv4_encoding)
{
    char out[128];
    ck_assert_int_eq(
        es_sigv4_uri_encode("kafka-cluster:Connect", out, sizeof(out)), 23);
    ck_assert_str_eq(out, "kafka-cluster%3AConnect");
    es_sigv4_uri_encode("a+b/c=d e~", out, sizeof(out));
    ck_assert_str_eq(out, "a%2Bb%2Fc%3Dd%20e~");
    ck_assert_int_eq(es_sigv4_uri_encode("abcdef", out, 4), -1);
}
END_TEST

/* ---- running the Python checker ------------------------------------------ */

static int run_checker(const char *token, const char *region,
                       const char *mode_flag, const char *mode_value,
                       const char *ua)
{
    pid_t pid = fork();
    if (pid == 0) {
        const char *argv[10] = {"python3", PY_CHECKER, token,
                                region,    mode_flag,  mode_value};
        int n = 6;
        if (ua) {
            argv[n++] = "--user-agent";
            argv[n++] = ua;
        }
        argv[n] = NULL;
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void set_test_creds(es_aws_credentials_t *c, const char *ak,
                           const char *sk, const char *st)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->access_key_id, sizeof(c->access_key_id), "%s", ak);
    snprintf(c->secret_access_key, sizeof(c->secret_access_key), "%s", sk);
    snprintf(c->session_token, sizeof(c->session_token), "%s", st ? st : "");
    setenv("MSK_TEST_ACCESS_KEY", ak, 1);
    setenv("MSK_TEST_SECRET_KEY", sk, 1);
    if (st)
        setenv("MSK_TEST_SESSION_TOKEN", st, 1);
    else
        unsetenv("MSK_TEST_SESSION_TOKEN");
}

static const char *session_tokens[] = {
    NULL,
    "AQoDYXdzEXAMPLE+TOKEN/value==",
    /* long, with every base64 character, as STS hands out */
    "FwoGZXIvYXdzEJr//////////wEaDH3+Kx9yZ3Q0bWFzay1pYW0iLDAqhkiG9w0BAQsFAD"
    "CBizELMAkGA1UEBhMCVVMxEzARBgNVBAgTCldhc2hpbmd0b24xEDAOBgNVBAcTB1NlYXR0"
    "bGUxDzANBgNVBAoTBkFtYXpvbjEUMBIGA1UECxMLSUFNIENvbnNvbGUxEjAQBgNVBAMTCU"
    "Rlc3RDaWxhYzEfMB0GCSqGSIb3DQEJARYQbm9vbmVAYW1hem9uLmNvbQ==",
};

START_TEST(token_checked_by_python)
{
    es_aws_credentials_t c;
    es_msk_iam_token_t tok;
    char err[256], when[32];
    set_test_creds(&c, SUITE_AK, SUITE_SK, session_tokens[_i]);
    ck_assert_msg(es_msk_iam_token_build(&c, "ap-south-1", SUITE_TIME,
                                         "eventstream-test/1.0", &tok, err,
                                         sizeof(err)) == 0,
                  "%s", err);
    snprintf(when, sizeof(when), "%lld", (long long)SUITE_TIME);
    ck_assert_int_eq(run_checker(tok.value, "ap-south-1", "--sign-time", when,
                                 "eventstream-test/1.0"),
                     0);
    /* and the checker is not a rubber stamp: a one-character change fails */
    tok.value[strlen(tok.value) / 2] ^= 1;
    ck_assert_int_ne(
        run_checker(tok.value, "ap-south-1", "--sign-time", when, NULL), 0);
    es_msk_iam_token_clear(&tok);
}
END_TEST

START_TEST(token_wrong_secret_rejected_by_python)
{
    es_aws_credentials_t c;
    es_msk_iam_token_t tok;
    char err[256];
    set_test_creds(&c, SUITE_AK, SUITE_SK, NULL);
    ck_assert_int_eq(es_msk_iam_token_build(&c, "us-east-1", SUITE_TIME, NULL,
                                            &tok, err, sizeof(err)),
                     0);
    setenv("MSK_TEST_SECRET_KEY", "not-the-secret", 1);
    ck_assert_int_ne(
        run_checker(tok.value, "us-east-1", "--sign-time", "1440938160", NULL),
        0);
    es_msk_iam_token_clear(&tok);
}
END_TEST

START_TEST(token_known_answer)
{
    /* Fixed inputs give a fixed token; the URL inside is the reference one
     * (its signature recomputed independently by token_checked_by_python). */
    es_aws_credentials_t c;
    es_msk_iam_token_t tok;
    char err[256];
    set_test_creds(&c, SUITE_AK, SUITE_SK, NULL);
    ck_assert_int_eq(es_msk_iam_token_build(&c, "us-east-1", SUITE_TIME, "ua/1",
                                            &tok, err, sizeof(err)),
                     0);
    ck_assert_ptr_null(strchr(tok.value, '='));
    ck_assert_ptr_null(strchr(tok.value, '+'));
    ck_assert_ptr_null(strchr(tok.value, '/'));
    /* base64url of https://kafka.us-east-1.amazonaws.com/?Action=kafka-
     * cluster%3AConnect&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=
     * AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fkafka-cluster%2Faws4_request&
     * X-Amz-Date=20150830T123600Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host
     * &X-Amz-Signature=c413a83bc64a339e31a5e5e9ed99d778ff843206b427540cafa51
     * 22c01e3e993&User-Agent=ua%2F1, computed with Python's hmac/hashlib. */
    ck_assert_str_eq(
        tok.value,
        "aHR0cHM6Ly9rYWZrYS51cy1lYXN0LTEuYW1hem9uYXdzLmNvbS8_QWN0aW9uPWth"
        "ZmthLWNsdXN0ZXIlM0FDb25uZWN0JlgtQW16LUFsZ29yaXRobT1BV1M0LUhNQUMt"
        "U0hBMjU2JlgtQW16LUNyZWRlbnRpYWw9QUtJREVYQU1QTEUlMkYyMDE1MDgzMCUy"
        "RnVzLWVhc3QtMSUyRmthZmthLWNsdXN0ZXIlMkZhd3M0X3JlcXVlc3QmWC1BbXot"
        "RGF0ZT0yMDE1MDgzMFQxMjM2MDBaJlgtQW16LUV4cGlyZXM9OTAwJlgtQW16LVNp"
        "Z25lZEhlYWRlcnM9aG9zdCZYLUFtei1TaWduYXR1cmU9YzQxM2E4M2JjNjRhMzM5"
        "ZTMxYTVlNWU5ZWQ5OWQ3NzhmZjg0MzIwNmI0Mjc1NDBjYWZhNTEyMmMwMWUzZTk5"
        "MyZVc2VyLUFnZW50PXVhJTJGMQ");
    ck_assert_int_eq(tok.lifetime_ms, (SUITE_TIME + 900) * 1000LL);
    es_msk_iam_token_clear(&tok);
}
END_TEST

/* ---- expiry rules ----------------------------------------------------------
 */

START_TEST(expiry_rules)
{
    es_aws_credentials_t c;
    es_msk_iam_token_t tok;
    char err[256];
    const time_t t = SUITE_TIME;
    set_test_creds(&c, SUITE_AK, SUITE_SK, "tok");

    c.expiration = 0; /* long-term keys: the token's own 900 s */
    ck_assert_int_eq(
        es_msk_iam_token_build(&c, "us-east-1", t, NULL, &tok, err, 256), 0);
    ck_assert_int_eq(tok.lifetime_ms, (t + 900) * 1000LL);
    es_msk_iam_token_clear(&tok);

    c.expiration = t + 3600; /* later than 900 s: 900 s */
    ck_assert_int_eq(
        es_msk_iam_token_build(&c, "us-east-1", t, NULL, &tok, err, 256), 0);
    ck_assert_int_eq(tok.lifetime_ms, (t + 900) * 1000LL);
    es_msk_iam_token_clear(&tok);

    c.expiration = t + 300; /* earlier than 900 s: the credentials' expiry */
    ck_assert_int_eq(
        es_msk_iam_token_build(&c, "us-east-1", t, NULL, &tok, err, 256), 0);
    ck_assert_int_eq(tok.lifetime_ms, (t + 300) * 1000LL);
    es_msk_iam_token_clear(&tok);

    c.expiration = t + 900; /* the same instant */
    ck_assert_int_eq(
        es_msk_iam_token_build(&c, "us-east-1", t, NULL, &tok, err, 256), 0);
    ck_assert_int_eq(tok.lifetime_ms, (t + 900) * 1000LL);
    es_msk_iam_token_clear(&tok);

    c.expiration = t; /* expired: no token */
    ck_assert_int_eq(
        es_msk_iam_token_build(&c, "us-east-1", t, NULL, &tok, err, 256), -1);
    ck_assert_ptr_nonnull(strstr(err, "expired"));
    ck_assert_ptr_null(tok.value);
}
END_TEST

START_TEST(token_input_errors)
{
    es_aws_credentials_t c;
    es_msk_iam_token_t tok;
    char err[256];
    set_test_creds(&c, SUITE_AK, SUITE_SK, NULL);
    ck_assert_int_eq(es_msk_iam_token_build(&c, "localhost", SUITE_TIME, NULL,
                                            &tok, err, sizeof(err)),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "region"));
    c.secret_access_key[0] = '\0';
    ck_assert_int_eq(es_msk_iam_token_build(&c, "us-east-1", SUITE_TIME, NULL,
                                            &tok, err, sizeof(err)),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "empty"));
    ck_assert_ptr_null(strstr(err, SUITE_AK)); /* names nothing secret */
}
END_TEST

/* ---- region ------------------------------------------------------------- */

START_TEST(region_from_brokers)
{
    static const struct {
        const char *brokers, *region;
    } cases[] = {
        {"boot-gpm4u49z.c2.kafka-serverless.us-east-1.amazonaws.com:9098",
         "us-east-1"},
        {"b-1.eventzr-msk-prod.ap-south-1.amazonaws.com:9098,"
         "b-2.eventzr-msk-prod.ap-south-1.amazonaws.com:9098",
         "ap-south-1"},
        {"b-1.demo.abc123.c3.kafka.eu-west-1.amazonaws.com:9098", "eu-west-1"},
        {"SASL_SSL://b-2.x.y.c2.kafka.eu-central-2.amazonaws.com:9098",
         "eu-central-2"},
        {"B-1.X.KAFKA.US-GOV-WEST-1.AMAZONAWS.COM:9098", "us-gov-west-1"},
        {"b-1.x.kafka.cn-north-1.amazonaws.com.cn:9098", "cn-north-1"},
        {"127.0.0.1:9092", NULL},
        {"localhost", NULL},
        {"kafka.example.com:9092,b-1.x.us-east-1.amazonaws.com:9098", NULL},
        {"b-1.x.amazonaws.com:9098", NULL},
        {"b-1.us-east-1.amazonaws.com.evil.example:9098", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char region[32] = "";
        int rc = es_msk_iam_region_from_brokers(cases[i].brokers, region,
                                                sizeof(region));
        if (cases[i].region) {
            ck_assert_msg(rc == 0, "%s", cases[i].brokers);
            ck_assert_str_eq(region, cases[i].region);
        } else {
            ck_assert_msg(rc == -1, "%s -> %s", cases[i].brokers, region);
        }
    }
    ck_assert(es_msk_iam_region_valid("ap-southeast-2"));
    ck_assert(!es_msk_iam_region_valid("us-east"));
    ck_assert(!es_msk_iam_region_valid("us--east-1"));
    ck_assert(!es_msk_iam_region_valid("us-east-1/x"));
}
END_TEST

/* ---- switch and configure -------------------------------------------------
 */

START_TEST(opts_switch)
{
    es_msk_iam_opts_t o = {0};
    char err[256];
    ck_assert_int_eq(es_msk_iam_opts_set(&o, "sasl.oauthbearer.method", "oidc",
                                         err, sizeof(err)),
                     0);
    ck_assert_int_eq(o.enabled, 0);
    ck_assert_int_eq(es_msk_iam_opts_set(&o, "sasl.oauthbearer.method",
                                         "aws_msk_iam", err, sizeof(err)),
                     1);
    ck_assert_int_eq(o.enabled, 1);
    ck_assert_int_eq(
        es_msk_iam_opts_set(&o, "aws_msk_iam", "false", err, sizeof(err)), 1);
    ck_assert_int_eq(o.enabled, 0);
    ck_assert_int_eq(
        es_msk_iam_opts_set(&o, "aws_msk_iam", "true", err, sizeof(err)), 1);
    ck_assert_int_eq(o.enabled, 1);
    ck_assert_int_eq(
        es_msk_iam_opts_set(&o, "aws_msk_iam", "yes!", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "aws_msk_iam"));
    ck_assert_int_eq(
        es_msk_iam_opts_set(&o, "aws_msk_iam.region", "mars", err, sizeof(err)),
        -1);
    ck_assert_ptr_nonnull(strstr(err, "aws_msk_iam.region"));
    ck_assert_int_eq(es_msk_iam_opts_set(&o, "aws_msk_iam.region", "ap-south-1",
                                         err, sizeof(err)),
                     1);
    ck_assert_str_eq(o.region, "ap-south-1");
    ck_assert_int_eq(
        es_msk_iam_opts_set(&o, "aws_msk_iam.regoin", "x", err, sizeof(err)),
        -1);
    ck_assert_ptr_nonnull(strstr(err, "aws_msk_iam.regoin"));
    ck_assert_int_eq(
        es_msk_iam_opts_set(&o, "linger.ms", "5", err, sizeof(err)), 0);
}
END_TEST

/* Credentials only from the environment; every network source on loopback
 * ports nothing listens on, so no test ever reaches a real AWS address. */
static es_msk_iam_t *new_signer(void)
{
    char err[512];
    es_aws_provider_opts_t po = {
        .sts_endpoint = "http://127.0.0.1:9",
        .imds_endpoint = "http://127.0.0.1:9",
        .container_host = "http://127.0.0.1:9",
        .timeout_ms = 500,
    };
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
    unsetenv("AWS_ROLE_ARN");
    unsetenv("AWS_PROFILE");
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    es_msk_iam_t *msk = es_msk_iam_new(&po, err, sizeof(err));
    ck_assert_msg(msk != NULL, "%s", err);
    return msk;
}

static rd_kafka_conf_t *kconf(const char *brokers, const char *proto,
                              const char *mech)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    ck_assert_int_eq(
        rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err)),
        RD_KAFKA_CONF_OK);
    ck_assert_int_eq(
        rd_kafka_conf_set(conf, "security.protocol", proto, err, sizeof(err)),
        RD_KAFKA_CONF_OK);
    ck_assert_int_eq(
        rd_kafka_conf_set(conf, "sasl.mechanisms", mech, err, sizeof(err)),
        RD_KAFKA_CONF_OK);
    return conf;
}

START_TEST(configure_rules)
{
    es_msk_iam_t *msk = new_signer();
    es_msk_iam_opts_t off = {0}, on = {.enabled = 1};
    char err[512], val[256];
    size_t vs = sizeof(val);
    rd_kafka_conf_t *conf;

    /* switched off: untouched */
    conf = kconf("127.0.0.1:9092", "SASL_SSL", "OAUTHBEARER");
    ck_assert_int_eq(es_msk_iam_configure(conf, &off, msk, err, sizeof(err)),
                     0);
    ck_assert(!es_msk_iam_configured(conf));
    rd_kafka_conf_destroy(conf);

    conf = kconf("b-1.x.ap-south-1.amazonaws.com:9098", "SASL_SSL", "PLAIN");
    ck_assert_int_eq(es_msk_iam_configure(conf, &on, msk, err, sizeof(err)),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "sasl.mechanisms=OAUTHBEARER"));
    rd_kafka_conf_destroy(conf);

    conf = kconf("b-1.x.ap-south-1.amazonaws.com:9098", "SSL", "OAUTHBEARER");
    ck_assert_int_eq(es_msk_iam_configure(conf, &on, msk, err, sizeof(err)),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "security.protocol"));
    rd_kafka_conf_destroy(conf);

    conf =
        kconf("b-1.x.ap-south-1.amazonaws.com:9098", "SASL_SSL", "OAUTHBEARER");
    /* Debian's librdkafka 2.0.2 is built without OIDC: then there is
     * nothing to conflict with */
    if (rd_kafka_conf_set(conf, "sasl.oauthbearer.method", "oidc", err,
                          sizeof(err)) == RD_KAFKA_CONF_OK) {
        ck_assert_int_eq(es_msk_iam_configure(conf, &on, msk, err, sizeof(err)),
                         -1);
        ck_assert_ptr_nonnull(strstr(err, "oidc"));
    }
    rd_kafka_conf_destroy(conf);

    /* no region anywhere */
    conf = kconf("127.0.0.1:9092", "SASL_SSL", "OAUTHBEARER");
    ck_assert_int_eq(es_msk_iam_configure(conf, &on, msk, err, sizeof(err)),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "aws_msk_iam.region"));
    /* ... then from the environment */
    setenv("AWS_REGION", "eu-west-3", 1);
    ck_assert_int_eq(es_msk_iam_configure(conf, &on, msk, err, sizeof(err)), 0);
    ck_assert_int_eq(
        rd_kafka_conf_get(conf, "sasl.oauthbearer.config", val, &vs),
        RD_KAFKA_CONF_OK);
    ck_assert_ptr_nonnull(strstr(val, "region=eu-west-3"));
    ck_assert(es_msk_iam_configured(conf));
    rd_kafka_conf_destroy(conf);

    /* from the broker host name, which beats the environment */
    conf = kconf("b-1.eventzr-msk-prod.ap-south-1.amazonaws.com:9098",
                 "SASL_SSL", "OAUTHBEARER");
    ck_assert_int_eq(es_msk_iam_configure(conf, &on, msk, err, sizeof(err)), 0);
    vs = sizeof(val);
    rd_kafka_conf_get(conf, "sasl.oauthbearer.config", val, &vs);
    ck_assert_ptr_nonnull(strstr(val, "region=ap-south-1"));
    rd_kafka_conf_destroy(conf);

    /* explicit region beats both */
    snprintf(on.region, sizeof(on.region), "us-west-2");
    conf = kconf("b-1.eventzr-msk-prod.ap-south-1.amazonaws.com:9098",
                 "SASL_SSL", "OAUTHBEARER");
    ck_assert_int_eq(es_msk_iam_configure(conf, &on, msk, err, sizeof(err)), 0);
    vs = sizeof(val);
    rd_kafka_conf_get(conf, "sasl.oauthbearer.config", val, &vs);
    ck_assert_ptr_nonnull(strstr(val, "region=us-west-2"));
    rd_kafka_conf_destroy(conf);
    es_msk_iam_destroy(msk);
}
END_TEST

START_TEST(check_missing_credentials_fails_naming_sources)
{
    es_msk_iam_t *msk = new_signer();
    es_msk_iam_opts_t on = {.enabled = 1, .region = "us-east-1"};
    char err[2048];
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    rd_kafka_conf_t *conf = kconf("127.0.0.1:9", "SASL_SSL", "OAUTHBEARER");
    ck_assert_int_eq(es_msk_iam_configure(conf, &on, msk, err, sizeof(err)), 0);
    ck_assert_int_eq(es_msk_iam_check(conf, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "no AWS credentials"));
    ck_assert_ptr_nonnull(strstr(err, "environment"));
    ck_assert_ptr_nonnull(strstr(err, "web identity"));
    ck_assert_ptr_nonnull(strstr(err, "container"));
    ck_assert_ptr_nonnull(strstr(err, "imds"));

    setenv("AWS_ACCESS_KEY_ID", "AKIDCHECK", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret-check", 1);
    ck_assert_msg(es_msk_iam_check(conf, err, sizeof(err)) == 0, "%s", err);
    rd_kafka_conf_destroy(conf);
    es_msk_iam_destroy(msk);
}
END_TEST

/* ---- the librdkafka wiring, observed on the wire ----------------------------
 */

/*
 * A fake broker that speaks just enough Kafka for the SASL step: it answers
 * ApiVersions (offering only SaslHandshake and SaslAuthenticate) and
 * SaslHandshake (OAUTHBEARER), then captures the client-first message
 * "n,,\x01auth=Bearer <token>\x01\x01". librdkafka only connects once it
 * holds a token, so the token seen here is the one the refresh callback
 * handed it.
 */
typedef struct fake_broker_s {
    int lfd;
    int port;
    pthread_t thr;
    char token[16384];
    int got;
} fake_broker_t;

static int read_full(int fd, void *buf, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t r = read(fd, (char *)buf + off, n - off);
        if (r <= 0)
            return -1;
        off += (size_t)r;
    }
    return 0;
}

static char *read_frame(int fd, uint32_t *len)
{
    uint32_t be;
    if (read_full(fd, &be, 4))
        return NULL;
    *len = ntohl(be);
    if (*len > 1 << 20)
        return NULL;
    char *buf = calloc(1, *len + 1);
    if (buf && read_full(fd, buf, *len)) {
        free(buf);
        return NULL;
    }
    return buf;
}

static int send_resp(int fd, const char *corr, const unsigned char *body,
                     size_t n)
{
    unsigned char buf[256];
    uint32_t len = htonl((uint32_t)(4 + n));
    memcpy(buf, &len, 4);
    memcpy(buf + 4, corr, 4);
    memcpy(buf + 8, body, n);
    return write(fd, buf, 8 + n) == (ssize_t)(8 + n) ? 0 : -1;
}

/* ApiVersions v3 (flexible): error 0, SaslHandshake 0..1, SaslAuthenticate
 * 0..1, throttle 0, no tagged fields. */
static const unsigned char api_versions_v3[] = {
    0, 0, 3, 0, 17, 0, 0, 0, 1, 0, 0, 36, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
};
/* ApiVersions v0: the same two APIs. */
static const unsigned char api_versions_v0[] = {
    0, 0, 0, 0, 0, 2, 0, 17, 0, 0, 0, 1, 0, 36, 0, 0, 0, 1,
};
/* SaslHandshake v0/v1: error 0, mechanisms ["OAUTHBEARER"]. */
static const unsigned char handshake[] = {0,   0,   0,   0,   0,   1,   0,
                                          11,  'O', 'A', 'U', 'T', 'H', 'B',
                                          'E', 'A', 'R', 'E', 'R'};

static void *fake_broker_main(void *arg)
{
    fake_broker_t *fb = arg;
    int fd = accept(fb->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    for (int step = 0; step < 4 && !fb->got; step++) {
        uint32_t len;
        char *req = read_frame(fd, &len);
        if (!req || len < 8) {
            free(req);
            break;
        }
        uint16_t key = ntohs(*(uint16_t *)req),
                 ver = ntohs(*(uint16_t *)(req + 2));
        char *b = memmem(req, len, "auth=Bearer ", 12);
        int rc = 0;
        if (b) {
            b += 12;
            size_t n = strcspn(b, "\x01");
            if (n < sizeof(fb->token)) {
                memcpy(fb->token, b, n);
                fb->token[n] = '\0';
                __atomic_store_n(&fb->got, 1, __ATOMIC_SEQ_CST);
            }
        } else if (key == 18) {
            rc = ver >= 3 ? send_resp(fd, req + 4, api_versions_v3,
                                      sizeof(api_versions_v3))
                          : send_resp(fd, req + 4, api_versions_v0,
                                      sizeof(api_versions_v0));
        } else if (key == 17) {
            rc = send_resp(fd, req + 4, handshake, sizeof(handshake));
        }
        free(req);
        if (rc)
            break;
    }
    close(fd);
    return NULL;
}

static void fake_broker_start(fake_broker_t *fb)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t al = sizeof(a);
    memset(fb, 0, sizeof(*fb));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fb->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fb->lfd, 0);
    ck_assert_int_eq(bind(fb->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fb->lfd, 4), 0);
    getsockname(fb->lfd, (struct sockaddr *)&a, &al);
    fb->port = ntohs(a.sin_port);
    pthread_create(&fb->thr, NULL, fake_broker_main, fb);
}

static char last_kafka_error[2048];

static void record_error(rd_kafka_t *rk, int err, const char *reason,
                         void *opaque)
{
    (void)rk;
    (void)err;
    (void)opaque;
    if (strstr(reason, "OAUTHBEARER"))
        snprintf(last_kafka_error, sizeof(last_kafka_error), "%s", reason);
}

static rd_kafka_t *msk_client(es_msk_iam_t *msk, int port)
{
    char brokers[64], err[512];
    es_msk_iam_opts_t opts = {0};
    snprintf(brokers, sizeof(brokers), "127.0.0.1:%d", port);
    rd_kafka_conf_t *conf = kconf(brokers, "SASL_PLAINTEXT", "OAUTHBEARER");
    rd_kafka_conf_set_error_cb(conf, record_error);
    /* the daemon's property loop: ours are consumed, the rest go on */
    static const char *props[][2] = {
        {"sasl.oauthbearer.method", "aws_msk_iam"},
        {"aws_msk_iam.region", "us-east-1"},
        {"reconnect.backoff.ms", "100"},
    };
    for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++) {
        int r = es_msk_iam_opts_set(&opts, props[i][0], props[i][1], err,
                                    sizeof(err));
        ck_assert_int_ge(r, 0);
        if (r == 0)
            ck_assert_int_eq(rd_kafka_conf_set(conf, props[i][0], props[i][1],
                                               err, sizeof(err)),
                             RD_KAFKA_CONF_OK);
    }
    ck_assert_msg(es_msk_iam_configure(conf, &opts, msk, err, sizeof(err)) == 0,
                  "%s", err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    ck_assert_msg(rk != NULL, "%s", err);
    ck_assert_msg(es_msk_iam_start(rk, err, sizeof(err)) == 0, "%s", err);
    return rk;
}

START_TEST(wiring_hands_token_to_librdkafka)
{
    fake_broker_t fb;
    uint64_t tokens = 0, failures = 0;
    es_msk_iam_t *msk = new_signer();
    set_test_creds(&(es_aws_credentials_t){0}, "AKIDWIRE", "wire/secret+key",
                   "wire-session/token==");
    setenv("AWS_ACCESS_KEY_ID", "AKIDWIRE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wire/secret+key", 1);
    setenv("AWS_SESSION_TOKEN", "wire-session/token==", 1);
    fake_broker_start(&fb);
    rd_kafka_t *rk = msk_client(msk, fb.port);

    /* No rd_kafka_poll() anywhere: the refresh runs on the background
     * thread. Wait (bounded) for the token to reach the broker. */
    for (int i = 0; i < 100 && !__atomic_load_n(&fb.got, __ATOMIC_SEQ_CST); i++)
        usleep(100 * 1000);
    ck_assert_msg(fb.got, "no SASL token reached the fake broker");
    es_msk_iam_stats(msk, &tokens, &failures);
    ck_assert_uint_ge(tokens, 1);
    ck_assert_uint_eq(failures, 0);
    ck_assert_int_eq(
        run_checker(fb.token, "us-east-1", "--max-skew", "120", NULL), 0);

    rd_kafka_destroy(rk);
    pthread_join(fb.thr, NULL);
    close(fb.lfd);
    es_msk_iam_destroy(msk);
}
END_TEST

START_TEST(wiring_failure_reported_to_librdkafka)
{
    uint64_t tokens = 0, failures = 0;
    es_msk_iam_t *msk = new_signer();
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    rd_kafka_t *rk = msk_client(msk, 9);
    for (int i = 0; i < 100 && failures == 0; i++) {
        usleep(100 * 1000);
        es_msk_iam_stats(msk, &tokens, &failures);
    }
    ck_assert_uint_ge(failures, 1);
    ck_assert_uint_eq(tokens, 0);
    /* librdkafka surfaces the reason given to set_token_failure() */
    for (int i = 0; i < 50 && !last_kafka_error[0]; i++)
        rd_kafka_poll(rk, 100);
    ck_assert_msg(strstr(last_kafka_error, "MSK IAM: no AWS credentials "
                                           "found (tried: environment") != NULL,
                  "error seen: \"%s\"", last_kafka_error);
    rd_kafka_destroy(rk);
    es_msk_iam_destroy(msk);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("msk_iam");
    TCase *tc = tcase_create("sigv4");
    tcase_add_loop_test(tc, sigv4_header_form_vectors, 0, N_KATS);
    tcase_add_loop_test(tc, sigv4_query_form_vectors, 0, N_KATS);
    tcase_add_test(tc, sigv4_encoding);
    suite_add_tcase(s, tc);

    tc = tcase_create("token");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, token_checked_by_python, 0,
                        sizeof(session_tokens) / sizeof(session_tokens[0]));
    tcase_add_test(tc, token_wrong_secret_rejected_by_python);
    tcase_add_test(tc, token_known_answer);
    tcase_add_test(tc, expiry_rules);
    tcase_add_test(tc, token_input_errors);
    tcase_add_test(tc, region_from_brokers);
    suite_add_tcase(s, tc);

    tc = tcase_create("wiring");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, opts_switch);
    tcase_add_test(tc, configure_rules);
    tcase_add_test(tc, check_missing_credentials_fails_naming_sources);
    tcase_add_test(tc, wiring_hands_token_to_librdkafka);
    tcase_add_test(tc, wiring_failure_reported_to_librdkafka);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
