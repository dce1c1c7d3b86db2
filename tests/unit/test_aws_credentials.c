/*
 * Tests for the AWS credentials chain: every source, against local files and
 * a loopback Python server (aws_creds_server.py) playing STS, the container
 * endpoint and IMDSv2.
 */
#include "es_aws_credentials.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int server_port, server_tls_port;
static char server_cert[256];
static pid_t server_pid;
static int server_stdin = -1;
static char tmpdir[256];
static char base_url[64];

static const char *const aws_env[] = {"AWS_ACCESS_KEY_ID",
                                      "AWS_SECRET_ACCESS_KEY",
                                      "AWS_SESSION_TOKEN",
                                      "AWS_WEB_IDENTITY_TOKEN_FILE",
                                      "AWS_ROLE_ARN",
                                      "AWS_ROLE_SESSION_NAME",
                                      "AWS_SHARED_CREDENTIALS_FILE",
                                      "AWS_CONFIG_FILE",
                                      "AWS_PROFILE",
                                      "AWS_DEFAULT_PROFILE",
                                      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                      "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                      "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                                      "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                                      "AWS_EC2_METADATA_DISABLED",
                                      "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                                      "AWS_ENDPOINT_URL_STS",
                                      "AWS_ENDPOINT_URL_SSO",
                                      "AWS_REGION",
                                      "AWS_DEFAULT_REGION",
                                      "AWS_CA_BUNDLE",
                                      NULL};

static void start_server(void)
{
    int in[2], out[2];
    char script[512], line[512];
    snprintf(script, sizeof(script), "%s/tests/unit/aws_creds_server.py",
             ES_TEST_SRCDIR);
    if (pipe(in) || pipe(out))
        abort();
    server_pid = fork();
    if (server_pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execlp("python3", "python3", script, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    server_stdin = in[1];
    FILE *f = fdopen(out[0], "r");
    if (!f || !fgets(line, sizeof(line), f) ||
        sscanf(line, "port=%d tls_port=%d cert=%255s", &server_port,
               &server_tls_port, server_cert) != 3) {
        fprintf(stderr, "aws_creds_server.py did not start\n");
        exit(1);
    }
    fclose(f);
    snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d", server_port);
}

static void stop_server(void)
{
    if (server_pid > 0) {
        close(server_stdin);
        kill(server_pid, SIGTERM);
        waitpid(server_pid, NULL, 0);
    }
}

/* Every test starts from a clean environment with HOME pointing at an empty
 * directory, so the developer's own ~/.aws never leaks in. */
static void setup(void)
{
    for (size_t i = 0; aws_env[i]; i++)
        unsetenv(aws_env[i]);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/es-aws-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    setenv("HOME", tmpdir, 1);
    /* IMDS on by default would try 169.254.169.254: keep tests local. */
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1", 1);
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", tmpdir);
}

static char *write_file(const char *name, const char *content)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    fclose(f);
    return path;
}

static es_aws_provider_t *provider(void)
{
    char err[256];
    es_aws_provider_opts_t o = {0};
    char sts[96];
    snprintf(sts, sizeof(sts), "%s/sts", base_url);
    o.sts_endpoint = sts;
    o.container_host = base_url;
    o.timeout_ms = 2000;
    es_aws_provider_t *p = es_aws_provider_new(&o, err, sizeof(err));
    ck_assert_msg(p != NULL, "%s", err);
    return p;
}

static int stat_count(const char *key)
{
    char cmd[256], buf[2048];
    snprintf(cmd, sizeof(cmd), "curl -s %s/stats", base_url);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    pclose(f);
    buf[n] = '\0';
    char pat[160];
    snprintf(pat, sizeof(pat), "\"%s\": ", key);
    const char *s = strstr(buf, pat);
    return s ? atoi(s + strlen(pat)) : 0;
}

START_TEST(test_env)
{
    es_aws_credentials_t c;
    char err[512];
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    setenv("AWS_SESSION_TOKEN", "envtoken", 1);
    es_aws_provider_t *p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.access_key_id, "AKIAENV");
    ck_assert_str_eq(c.secret_access_key, "envsecret");
    ck_assert_str_eq(c.session_token, "envtoken");
    ck_assert_str_eq(c.source, "environment");
    ck_assert_int_eq(c.expiration, 0);
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_static_opts_win)
{
    es_aws_credentials_t c;
    char err[512];
    es_aws_provider_opts_t o = {0};
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    o.access_key_id = "AKIACONF";
    o.secret_access_key = "confsecret";
    es_aws_provider_t *p = es_aws_provider_new(&o, err, sizeof(err));
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.access_key_id, "AKIACONF");
    ck_assert_str_eq(c.session_token, "");
    ck_assert_str_eq(c.source, "config");
    es_aws_provider_destroy(p);

    o.secret_access_key = NULL;
    ck_assert_ptr_null(es_aws_provider_new(&o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "secret_access_key"));
}
END_TEST

START_TEST(test_env_half_set_is_error)
{
    es_aws_credentials_t c;
    char err[1024];
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    es_aws_provider_t *p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "AWS_SECRET_ACCESS_KEY"));
    ck_assert_ptr_null(strstr(err, "AKIAENV")); /* values never echoed */
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_profile_credentials_file)
{
    es_aws_credentials_t c;
    char err[512];
    setenv("AWS_SHARED_CREDENTIALS_FILE",
           write_file("credentials",
                      "[default]\naws_access_key_id = AKIADEF\n"
                      "aws_secret_access_key = defsecret\n\n"
                      "[ops]\n# comment\naws_access_key_id=AKIAOPS\n"
                      "aws_secret_access_key=opssecret\n"
                      "aws_session_token = opstoken\n"),
           1);
    setenv("AWS_PROFILE", "ops", 1);
    es_aws_provider_t *p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.access_key_id, "AKIAOPS");
    ck_assert_str_eq(c.secret_access_key, "opssecret");
    ck_assert_str_eq(c.session_token, "opstoken");
    ck_assert_str_eq(c.source, "profile");
    es_aws_provider_destroy(p);

    unsetenv("AWS_PROFILE");
    p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.access_key_id, "AKIADEF");
    es_aws_provider_destroy(p);

    /* A line longer than 4 KiB is read whole (a 4,090-byte token was cut
     * at 4,096 bytes of line, the rest read as a line of its own). */
    char token[4091], text[4400];
    memset(token, 'T', sizeof token - 1);
    token[sizeof token - 1] = '\0';
    token[sizeof token - 2] = '=';
    snprintf(text, sizeof text,
             "[default]\naws_access_key_id = AKIALONG\n"
             "aws_session_token = %s\naws_secret_access_key = s\n",
             token);
    setenv("AWS_SHARED_CREDENTIALS_FILE", write_file("credentials", text), 1);
    p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), 0);
    ck_assert_uint_eq(strlen(c.session_token), strlen(token));
    ck_assert(strcmp(c.session_token, token) == 0); /* too long to print */
    ck_assert_str_eq(c.secret_access_key, "s");
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_profile_home_and_config_file)
{
    es_aws_credentials_t c;
    char err[512];
    /* ~/.aws/config with "[profile NAME]" sections, found through HOME. */
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/.aws", tmpdir);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    write_file(".aws/config", "[profile dev]\nregion = eu-west-1\n"
                              "aws_access_key_id = AKIADEV\n"
                              "aws_secret_access_key = devsecret\n");
    setenv("AWS_PROFILE", "dev", 1);
    es_aws_provider_t *p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.access_key_id, "AKIADEV");
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_web_identity)
{
    es_aws_credentials_t c;
    char err[512];
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE",
           write_file("token", "web-identity-token-123\n"), 1);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/es-test", 1);
    setenv("AWS_ROLE_SESSION_NAME", "sess1", 1);
    int before = stat_count("POST /sts");
    es_aws_provider_t *p = provider();
    ck_assert_msg(es_aws_provider_get(p, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.access_key_id, "WEBAKID-sess1");
    ck_assert_str_eq(c.secret_access_key, "WEBSECRET");
    ck_assert_str_eq(c.session_token, "WEBTOKEN");
    ck_assert_str_eq(c.source, "web-identity");
    ck_assert_int_gt(c.expiration, time(NULL) + 3000);
    /* Cached: a second get does not call STS again. */
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), 0);
    ck_assert_int_eq(stat_count("POST /sts") - before, 1);
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_web_identity_rejected)
{
    es_aws_credentials_t c;
    char err[1024];
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", write_file("token", "wrong-token"),
           1);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/es-test", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    es_aws_provider_t *p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "HTTP 403 AccessDenied") != NULL, "%s", err);
    ck_assert_ptr_null(strstr(err, "wrong-token"));
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_web_identity_from_profile)
{
    es_aws_credentials_t c;
    char err[512];
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "[profile wi]\nrole_arn = arn:aws:iam::123456789012:role/es-test"
             "\nweb_identity_token_file = %s/token\n"
             "role_session_name = fromprofile\n",
             tmpdir);
    write_file("token", "web-identity-token-123");
    setenv("AWS_CONFIG_FILE", write_file("config", cfg), 1);
    setenv("AWS_PROFILE", "wi", 1);
    es_aws_provider_t *p = provider();
    ck_assert_msg(es_aws_provider_get(p, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.access_key_id, "WEBAKID-fromprofile");
    ck_assert_str_eq(c.source, "profile");
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_container_relative)
{
    es_aws_credentials_t c;
    char err[512];
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/long", 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer container-secret", 1);
    es_aws_provider_t *p = provider();
    ck_assert_msg(es_aws_provider_get(p, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.access_key_id, "CONTAINERAKID");
    ck_assert_str_eq(c.session_token, "CONTAINERTOKEN");
    ck_assert_str_eq(c.source, "container");
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_container_full_uri_token_file_refresh)
{
    es_aws_credentials_t c;
    char err[512], url[128];
    snprintf(url, sizeof(url), "%s/v2/credentials/short", base_url);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
           write_file("auth", "Bearer container-secret\n"), 1);
    int before = stat_count("GET /v2/credentials/short");
    es_aws_provider_t *p = provider();
    ck_assert_msg(es_aws_provider_get(p, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.access_key_id, "CONTAINERAKID");
    /* The endpoint hands out credentials valid for 60 s, inside the
     * five-minute refresh margin: every get refreshes them. */
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), 0);
    ck_assert_int_eq(stat_count("GET /v2/credentials/short") - before, 2);
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_container_wrong_token)
{
    es_aws_credentials_t c;
    char err[1024];
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/long", 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer nope", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    es_aws_provider_t *p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "container: endpoint answered HTTP 401") != NULL,
                  "%s", err);
    es_aws_provider_destroy(p);
}
END_TEST

/* Credentials that come already expired are not taken: the error says when
 * they expired, and the next source in the chain (IMDS here) answers. */
START_TEST(test_container_expired_on_arrival)
{
    es_aws_credentials_t c;
    char err[1024];
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/expired",
           1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer container-secret", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    es_aws_provider_t *p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "container: the credentials it gave expired at "
                              "20") != NULL &&
                      strstr(err, " s ago by this host's clock") != NULL,
                  "%s", err);
    es_aws_provider_destroy(p);

    unsetenv("AWS_EC2_METADATA_DISABLED");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", base_url, 1);
    p = provider();
    ck_assert_msg(es_aws_provider_get(p, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.access_key_id, "IMDSAKID");
    ck_assert_str_eq(c.source, "imds");
    es_aws_provider_destroy(p);
}
END_TEST

/* An endpoint behind a private CA: refused by the system store, taken with
 * AWS_CA_BUNDLE (as the AWS SDKs do). */
START_TEST(test_container_https_with_aws_ca_bundle)
{
    es_aws_credentials_t c;
    char err[1024], url[128];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/v2/credentials/long",
             server_tls_port);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer container-secret", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    es_aws_provider_t *p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "container: SSL certificate problem: "
                              "self-signed certificate") != NULL,
                  "%s", err);
    es_aws_provider_destroy(p);

    setenv("AWS_CA_BUNDLE", server_cert, 1);
    p = provider();
    ck_assert_msg(es_aws_provider_get(p, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.access_key_id, "CONTAINERAKID");
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_container_full_uri_must_be_local_or_https)
{
    es_aws_credentials_t c;
    char err[1024];
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.com/creds", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    es_aws_provider_t *p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "must be https") != NULL, "%s", err);
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_imds)
{
    es_aws_credentials_t c;
    char err[512];
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", base_url, 1);
    int before = stat_count("PUT /latest/api/token");
    es_aws_provider_t *p = provider();
    ck_assert_msg(es_aws_provider_get(p, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.access_key_id, "IMDSAKID");
    ck_assert_str_eq(c.secret_access_key, "IMDSSECRET");
    ck_assert_str_eq(c.session_token, "IMDSTOKEN");
    ck_assert_str_eq(c.source, "imds");
    ck_assert_int_gt(c.expiration, time(NULL) + 3000);
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), 0);
    ck_assert_int_eq(stat_count("PUT /latest/api/token") - before, 1);
    es_aws_provider_destroy(p);
}
END_TEST

/* ------------------------------------------ role chaining (AssumeRole) */

static const char *const base_creds = "[base]\naws_access_key_id = AKIASOURCE\n"
                                      "aws_secret_access_key = sourcesecret\n";

static void use_config(const char *config, const char *profile)
{
    setenv("AWS_SHARED_CREDENTIALS_FILE", write_file("credentials", base_creds),
           1);
    setenv("AWS_CONFIG_FILE", write_file("config", config), 1);
    setenv("AWS_PROFILE", profile, 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

START_TEST(test_assume_role_source_profile)
{
    es_aws_credentials_t c;
    char err[1024];
    use_config("[profile app]\nrole_arn = arn:aws:iam::123456789012:role/app\n"
               "source_profile = base\nregion = us-west-2\n"
               "role_session_name = es-app\n",
               "app");
    int before = stat_count("assumed app");
    es_aws_provider_t *p = provider();
    ck_assert_msg(es_aws_provider_get(p, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(strncmp(c.access_key_id, "ASIAAPP", 7) == 0, "%s",
                  c.access_key_id);
    ck_assert_int_eq(strlen(c.session_token), 48);
    ck_assert_str_eq(c.source, "assume-role");
    ck_assert_int_gt(c.expiration, time(NULL) + 3000);
    /* Cached until close to expiry. */
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), 0);
    ck_assert_int_eq(stat_count("assumed app") - before, 1);
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_assume_role_chain_two_hops)
{
    es_aws_credentials_t c;
    char err[1024];
    /* ops <- app <- base: the second AssumeRole is signed with the first
     * one's temporary keys and session token (the fake checks both). */
    use_config("[profile app]\nrole_arn = arn:aws:iam::123456789012:role/app\n"
               "source_profile = base\n"
               "[profile ops]\nrole_arn = arn:aws:iam::123456789012:role/ops\n"
               "source_profile = app\n",
               "ops");
    int app0 = stat_count("assumed app"), ops0 = stat_count("assumed ops");
    es_aws_provider_t *p = provider();
    ck_assert_msg(es_aws_provider_get(p, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(strncmp(c.access_key_id, "ASIAOPS", 7) == 0, "%s",
                  c.access_key_id);
    ck_assert_int_eq(stat_count("assumed app") - app0, 1);
    ck_assert_int_eq(stat_count("assumed ops") - ops0, 1);
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_assume_role_bad_signature)
{
    es_aws_credentials_t c;
    char err[1024];
    setenv("AWS_SHARED_CREDENTIALS_FILE",
           write_file("credentials", "[base]\naws_access_key_id = AKIASOURCE\n"
                                     "aws_secret_access_key = wrongsecret\n"),
           1);
    setenv("AWS_CONFIG_FILE",
           write_file("config", "[profile app]\nrole_arn = "
                                "arn:aws:iam::123456789012:role/app\n"
                                "source_profile = base\n"),
           1);
    setenv("AWS_PROFILE", "app", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    es_aws_provider_t *p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "profile app: role_arn: AssumeRole of "
                              "arn:aws:iam::123456789012:role/app") != NULL,
                  "%s", err);
    ck_assert_msg(strstr(err, "HTTP 403 SignatureDoesNotMatch") != NULL, "%s",
                  err);
    ck_assert_ptr_null(strstr(err, "wrongsecret"));
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_assume_role_options)
{
    es_aws_credentials_t c;
    char err[1024];
    use_config("[profile x]\nrole_arn = "
               "arn:aws:iam::123456789012:role/needs-external-id\n"
               "source_profile = base\nexternal_id = ext-123\n"
               "duration_seconds = 900\n",
               "x");
    es_aws_provider_t *p = provider();
    ck_assert_msg(es_aws_provider_get(p, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_le(c.expiration, time(NULL) + 901);
    ck_assert_int_gt(c.expiration, time(NULL) + 800);
    es_aws_provider_destroy(p);

    use_config("[profile x]\nrole_arn = "
               "arn:aws:iam::123456789012:role/needs-external-id\n"
               "source_profile = base\n",
               "x");
    p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "HTTP 403 AccessDenied") != NULL, "%s", err);
    es_aws_provider_destroy(p);

    use_config("[profile x]\nrole_arn = arn:aws:iam::123456789012:role/app\n"
               "source_profile = base\nduration_seconds = 10h\n",
               "x");
    p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "profile x: duration_seconds: must be an "
                              "integer from 900 to 43200") != NULL,
                  "%s", err);
    es_aws_provider_destroy(p);

    use_config("[profile x]\nrole_arn = arn:aws:iam::123456789012:role/app\n"
               "source_profile = base\nmfa_serial = arn:aws:iam::1:mfa/u\n",
               "x");
    p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "profile x: mfa_serial:") != NULL, "%s", err);
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_assume_role_loops_and_sources)
{
    es_aws_credentials_t c;
    char err[1024];
    use_config("[profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\n"
               "source_profile = b\n"
               "[profile b]\nrole_arn = arn:aws:iam::123456789012:role/b\n"
               "source_profile = a\n",
               "a");
    es_aws_provider_t *p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "source_profile: chain longer than") != NULL,
                  "%s", err);
    es_aws_provider_destroy(p);

    use_config("[profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\n"
               "source_profile = nowhere\n",
               "a");
    p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "profile nowhere: no such profile (named by "
                              "source_profile)") != NULL,
                  "%s", err);
    ck_assert_msg(strstr(err, "profile a: source_profile nowhere gave no "
                              "credentials") != NULL,
                  "%s", err);
    es_aws_provider_destroy(p);

    /* A profile that is its own source uses its own static keys. */
    use_config("[profile self]\nrole_arn = arn:aws:iam::123456789012:role/s\n"
               "source_profile = self\naws_access_key_id = AKIASOURCE\n"
               "aws_secret_access_key = sourcesecret\n",
               "self");
    p = provider();
    ck_assert_msg(es_aws_provider_get(p, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(strncmp(c.access_key_id, "ASIAS", 5) == 0, "%s",
                  c.access_key_id);
    es_aws_provider_destroy(p);

    /* credential_source = EcsContainer: the base keys (and session token)
     * come from the container endpoint; the profile source comes before
     * the container source in the chain, so this is the role. */
    use_config("[profile ecsrole]\nrole_arn = "
               "arn:aws:iam::123456789012:role/ecsrole\n"
               "credential_source = EcsContainer\n",
               "ecsrole");
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/long", 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer container-secret", 1);
    p = provider();
    ck_assert_msg(es_aws_provider_get(p, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(strncmp(c.access_key_id, "ASIAECSROLE", 11) == 0, "%s",
                  c.access_key_id);
    es_aws_provider_destroy(p);

    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    use_config("[profile bad]\nrole_arn = arn:aws:iam::123456789012:role/b\n"
               "credential_source = Laptop\n",
               "bad");
    p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "profile bad: credential_source: must be") !=
                      NULL,
                  "%s", err);
    es_aws_provider_destroy(p);
}
END_TEST

/* ------------------------------------------------- credential_process */

static void process_profile(const char *script)
{
    char cfg[1024];
    char *path = write_file("proc.sh", script);
    chmod(path, 0700);
    snprintf(cfg, sizeof(cfg), "[profile proc]\ncredential_process = %s\n",
             path);
    setenv("AWS_CONFIG_FILE", write_file("config", cfg), 1);
    setenv("AWS_PROFILE", "proc", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

static char *iso_in(long seconds)
{
    static char buf[32];
    time_t t = time(NULL) + seconds;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

START_TEST(test_credential_process)
{
    es_aws_credentials_t c;
    char err[1024], script[1024];
    snprintf(script, sizeof(script),
             "#!/bin/sh\necho run >> %s/runs\n"
             "echo '{\"Version\": 1, \"AccessKeyId\": \"AKIAPROC\", "
             "\"SecretAccessKey\": \"procsecret\", \"SessionToken\": "
             "\"proctoken\", \"Expiration\": \"%s\"}'\n",
             tmpdir, iso_in(3600));
    process_profile(script);
    es_aws_provider_t *p = provider();
    ck_assert_msg(es_aws_provider_get(p, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.access_key_id, "AKIAPROC");
    ck_assert_str_eq(c.secret_access_key, "procsecret");
    ck_assert_str_eq(c.session_token, "proctoken");
    ck_assert_str_eq(c.source, "credential-process");
    ck_assert_int_gt(c.expiration, time(NULL) + 3500);
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), 0);
    es_aws_provider_destroy(p);
    char runs[300];
    snprintf(runs, sizeof(runs), "wc -l < %s/runs", tmpdir);
    FILE *f = popen(runs, "r");
    int n = 0;
    ck_assert_int_eq(fscanf(f, "%d", &n), 1);
    pclose(f);
    ck_assert_int_eq(n, 1); /* cached while valid */
}
END_TEST

START_TEST(test_credential_process_expiration)
{
    es_aws_credentials_t c;
    char err[1024], script[1024];
    /* Valid for 60 s: inside the refresh margin, so every get runs the
     * process again; without Expiration it runs once for good. */
    snprintf(script, sizeof(script),
             "#!/bin/sh\necho run >> %s/runs\n"
             "echo '{\"Version\": 1, \"AccessKeyId\": \"AKIAPROC\", "
             "\"SecretAccessKey\": \"procsecret\", \"Expiration\": \"%s\"}'\n",
             tmpdir, iso_in(60));
    process_profile(script);
    es_aws_provider_t *p = provider();
    for (int i = 0; i < 3; i++)
        ck_assert_msg(es_aws_provider_get(p, &c, err, sizeof(err)) == 0, "%s",
                      err);
    ck_assert_str_eq(c.session_token, "");
    es_aws_provider_destroy(p);
    char runs[300];
    snprintf(runs, sizeof(runs), "wc -l < %s/runs", tmpdir);
    FILE *f = popen(runs, "r");
    int n = 0;
    ck_assert_int_eq(fscanf(f, "%d", &n), 1);
    pclose(f);
    ck_assert_int_eq(n, 3);

    process_profile("#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": "
                    "\"AKIAPROC\", \"SecretAccessKey\": \"procsecret\"}'\n");
    p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), 0);
    ck_assert_int_eq(c.expiration, 0);
    es_aws_provider_destroy(p);

    snprintf(script, sizeof(script),
             "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": "
             "\"AKIAPROC\", \"SecretAccessKey\": \"procsecret\", "
             "\"Expiration\": \"%s\"}'\n",
             iso_in(-10));
    process_profile(script);
    p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "profile proc: credential_process: output: "
                              "Expiration is in the past") != NULL,
                  "%s", err);
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_credential_process_errors)
{
    es_aws_credentials_t c;
    char err[1024];
    static const struct {
        const char *script, *want;
    } cases[] = {
        {"#!/bin/sh\necho '{\"AccessKeyId\": \"AKIAPROC\"}'\nexit 3\n",
         "profile proc: credential_process: exited with status 3"},
        {"#!/bin/sh\necho 'not json procsecret'\n",
         "profile proc: credential_process: output is not a JSON object"},
        {"#!/bin/sh\necho '{\"Version\": 2, \"AccessKeyId\": \"A\", "
         "\"SecretAccessKey\": \"procsecret\"}'\n",
         "profile proc: credential_process: output: Version must be 1"},
        {"#!/bin/sh\necho '{\"Version\": 1, \"SecretAccessKey\": "
         "\"procsecret\"}'\n",
         "profile proc: credential_process: output lacks AccessKeyId"},
        {"#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"A\", "
         "\"SecretAccessKey\": \"procsecret\", \"Expiration\": \"soon\"}'\n",
         "profile proc: credential_process: output: Expiration must be"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        process_profile(cases[i].script);
        es_aws_provider_t *p = provider();
        ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "case %zu: %s", i,
                      err);
        ck_assert_msg(strstr(err, "procsecret") == NULL, "%s", err);
        es_aws_provider_destroy(p);
    }
}
END_TEST

/* ------------------------------------------------------------------ SSO */

static void sso_cache(const char *key, const char *expires_at)
{
    char cmd[512], hex[64] = "", dir[300], body[512], name[128];
    snprintf(cmd, sizeof(cmd), "printf %%s '%s' | sha1sum", key);
    FILE *f = popen(cmd, "r");
    ck_assert_int_eq(fscanf(f, "%40s", hex), 1);
    pclose(f);
    snprintf(dir, sizeof(dir), "mkdir -p %s/.aws/sso/cache", tmpdir);
    ck_assert_int_eq(system(dir), 0);
    snprintf(body, sizeof(body),
             "{\"startUrl\": \"https://corp.awsapps.com/start\", "
             "\"region\": \"eu-west-1\", \"accessToken\": "
             "\"sso-access-token-abc\", \"expiresAt\": \"%s\"}",
             expires_at);
    snprintf(name, sizeof(name), ".aws/sso/cache/%s.json", hex);
    write_file(name, body);
}

static void sso_env(const char *config, const char *profile)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/sso", base_url);
    setenv("AWS_ENDPOINT_URL_SSO", url, 1);
    setenv("AWS_CONFIG_FILE", write_file("config", config), 1);
    setenv("AWS_PROFILE", profile, 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

START_TEST(test_sso_session)
{
    es_aws_credentials_t c;
    char err[1024];
    sso_env("[profile dev]\nsso_session = corp\n"
            "sso_account_id = 111122223333\nsso_role_name = ReadOnly\n"
            "[sso-session corp]\nsso_start_url = "
            "https://corp.awsapps.com/start\nsso_region = eu-west-1\n",
            "dev");
    sso_cache("corp", iso_in(3600));
    es_aws_provider_t *p = provider();
    ck_assert_msg(es_aws_provider_get(p, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.access_key_id, "SSOAKID");
    ck_assert_str_eq(c.secret_access_key, "SSOSECRET");
    ck_assert_str_eq(c.session_token, "SSOTOKEN");
    ck_assert_str_eq(c.source, "sso");
    ck_assert_int_gt(c.expiration, time(NULL) + 3000);
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_sso_legacy_start_url)
{
    es_aws_credentials_t c;
    char err[1024];
    sso_env("[profile old]\nsso_start_url = https://corp.awsapps.com/start\n"
            "sso_region = eu-west-1\nsso_account_id = 111122223333\n"
            "sso_role_name = ReadOnly\n",
            "old");
    sso_cache("https://corp.awsapps.com/start", iso_in(3600));
    es_aws_provider_t *p = provider();
    ck_assert_msg(es_aws_provider_get(p, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.access_key_id, "SSOAKID");
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_sso_errors)
{
    es_aws_credentials_t c;
    char err[1024];
#define SSO_CFG(role)                                                          \
    "[profile dev]\nsso_session = corp\n"                                      \
    "sso_account_id = 111122223333\nsso_role_name = " role "\n"                \
    "[sso-session corp]\nsso_start_url = "                                     \
    "https://corp.awsapps.com/start\nsso_region = eu-west-1\n"
    const char *buf = SSO_CFG("ReadOnly");
    sso_env(buf, "dev");
    es_aws_provider_t *p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "profile dev: no cached SSO token") != NULL, "%s",
                  err);
    ck_assert_msg(strstr(err, "aws sso login") != NULL, "%s", err);
    es_aws_provider_destroy(p);

    sso_cache("corp", "2020-01-01T00:00:00Z");
    p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "profile dev: the cached SSO token expired") !=
                      NULL,
                  "%s", err);
    es_aws_provider_destroy(p);

    sso_cache("corp", iso_in(3600));
    buf = SSO_CFG("Admin");
    sso_env(buf, "dev");
    p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "sso_role_name Admin) at") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "answered HTTP 403") != NULL, "%s", err);
    ck_assert_ptr_null(strstr(err, "sso-access-token-abc"));
    es_aws_provider_destroy(p);

    sso_env("[profile dev]\nsso_session = corp\nsso_role_name = ReadOnly\n"
            "[sso-session corp]\nsso_start_url = https://x/start\n"
            "sso_region = eu-west-1\n",
            "dev");
    p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "profile dev: sso_account_id: missing") != NULL,
                  "%s", err);
    es_aws_provider_destroy(p);

    sso_env("[profile dev]\nsso_session = gone\nsso_account_id = 1\n"
            "sso_role_name = ReadOnly\n",
            "dev");
    p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "profile dev: sso_session: no [sso-session "
                              "gone] section") != NULL,
                  "%s", err);
    es_aws_provider_destroy(p);
}
END_TEST

START_TEST(test_nothing_found_lists_sources)
{
    es_aws_credentials_t c;
    char err[1024];
    es_aws_provider_t *p = provider();
    ck_assert_int_eq(es_aws_provider_get(p, &c, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "no AWS credentials found") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "environment:") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "web identity:") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "profile default:") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "container:") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "imds:") != NULL, "%s", err);
    es_aws_provider_destroy(p);
}
END_TEST

int main(void)
{
    start_server();
    Suite *s = suite_create("aws_credentials");
    TCase *tc = tcase_create("chain");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_env);
    tcase_add_test(tc, test_static_opts_win);
    tcase_add_test(tc, test_env_half_set_is_error);
    tcase_add_test(tc, test_profile_credentials_file);
    tcase_add_test(tc, test_profile_home_and_config_file);
    tcase_add_test(tc, test_web_identity);
    tcase_add_test(tc, test_web_identity_rejected);
    tcase_add_test(tc, test_web_identity_from_profile);
    tcase_add_test(tc, test_container_relative);
    tcase_add_test(tc, test_container_full_uri_token_file_refresh);
    tcase_add_test(tc, test_container_wrong_token);
    tcase_add_test(tc, test_container_expired_on_arrival);
    tcase_add_test(tc, test_container_https_with_aws_ca_bundle);
    tcase_add_test(tc, test_container_full_uri_must_be_local_or_https);
    tcase_add_test(tc, test_imds);
    tcase_add_test(tc, test_assume_role_source_profile);
    tcase_add_test(tc, test_assume_role_chain_two_hops);
    tcase_add_test(tc, test_assume_role_bad_signature);
    tcase_add_test(tc, test_assume_role_options);
    tcase_add_test(tc, test_assume_role_loops_and_sources);
    tcase_add_test(tc, test_credential_process);
    tcase_add_test(tc, test_credential_process_expiration);
    tcase_add_test(tc, test_credential_process_errors);
    tcase_add_test(tc, test_sso_session);
    tcase_add_test(tc, test_sso_legacy_start_url);
    tcase_add_test(tc, test_sso_errors);
    tcase_add_test(tc, test_nothing_found_lists_sources);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    stop_server();
    return failed ? 1 : 0;
}
