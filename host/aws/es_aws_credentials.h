/*
 * AWS credentials for the daemon's AWS clients (MSK IAM token signer, S3
 * sink). One module, shared by both: it resolves the standard provider
 * chain and caches temporary credentials until shortly before they expire.
 *
 * Chain, in order (static keys given in opts come first; a source that is
 * not configured is skipped, one that fails is noted and the chain goes on;
 * the first that yields credentials wins):
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 *      AWS_SESSION_TOKEN (optional)
 *   2. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN
 *      (+ AWS_ROLE_SESSION_NAME) via STS AssumeRoleWithWebIdentity
 *   3. shared files: AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials) and
 *      AWS_CONFIG_FILE (~/.aws/config), profile AWS_PROFILE or "default",
 *      in this order of precedence within the profile:
 *      - role_arn + source_profile (or credential_source = Environment,
 *        EcsContainer or Ec2InstanceMetadata): sts:AssumeRole, SigV4-signed
 *        with the source's credentials (source profiles chain, at most 5
 *        hops; external_id, role_session_name, duration_seconds, region;
 *        mfa_serial is refused)
 *      - role_arn + web_identity_token_file
 *      - SSO: sso_session (a [sso-session NAME] section with sso_start_url
 *        and sso_region) or legacy sso_start_url + sso_region, plus
 *        sso_account_id and sso_role_name: the token cached by `aws sso
 *        login` in ~/.aws/sso/cache/<sha1(session name or start URL)>.json
 *        is traded for role credentials at the portal's GetRoleCredentials
 *      - static keys (aws_access_key_id, aws_secret_access_key,
 *        aws_session_token)
 *      - credential_process: a command whose stdout is the JSON
 *        {"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken",
 *        "Expiration"} (30 s limit; no Expiration = never expires)
 *   4. container endpoint: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or
 *      AWS_CONTAINER_CREDENTIALS_FULL_URI (+ AWS_CONTAINER_AUTHORIZATION_TOKEN
 *      or _TOKEN_FILE)
 *   5. EC2 instance metadata, IMDSv2 (token PUT then GET), unless
 *      AWS_EC2_METADATA_DISABLED=true
 *
 * Endpoint overrides from the environment (used when opts leave them NULL):
 * AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL_SSO and
 * AWS_EC2_METADATA_SERVICE_ENDPOINT. Plain-http
 * AWS_CONTAINER_CREDENTIALS_FULL_URI is accepted only for loopback and the
 * ECS/EKS agent addresses.
 *
 * Secrets are never logged; error messages name sources, never values.
 * Thread-safe: one provider may be shared by threads.
 */
#ifndef ES_AWS_CREDENTIALS_H
#define ES_AWS_CREDENTIALS_H

#include <stddef.h>
#include <time.h>

typedef struct es_aws_credentials_s {
    char access_key_id[128];
    char secret_access_key[128];
    char session_token[4096]; /* empty when none */
    time_t expiration;        /* 0 when the credentials do not expire */
    /* Which source gave them, for logs: "config", "environment",
     * "web-identity", "profile", "assume-role", "sso",
     * "credential-process", "container" or "imds". */
    char source[32];
} es_aws_credentials_t;

typedef struct es_aws_provider_s es_aws_provider_t;

/* Overrides, all optional (NULL/0 = use the environment or the default). */
typedef struct es_aws_provider_opts_s {
    const char *profile;       /* instead of AWS_PROFILE */
    const char *access_key_id; /* static credentials from config */
    const char *secret_access_key;
    const char *session_token;
    const char *sts_endpoint;   /* default https://sts.amazonaws.com */
    const char *imds_endpoint;  /* default http://169.254.169.254 */
    const char *container_host; /* default http://169.254.170.2 */
    long timeout_ms;            /* HTTP timeout per source, default 2000 */
} es_aws_provider_opts_t;

es_aws_provider_t *es_aws_provider_new(const es_aws_provider_opts_t *opts,
                                       char *errstr, size_t errstr_size);
void es_aws_provider_destroy(es_aws_provider_t *provider);

/*
 * Fills *out with valid credentials, refreshing cached temporary ones that
 * expire within five minutes. Returns 0, or -1 with errstr saying which
 * sources were tried and why each failed.
 */
int es_aws_provider_get(es_aws_provider_t *provider, es_aws_credentials_t *out,
                        char *errstr, size_t errstr_size);

#endif
