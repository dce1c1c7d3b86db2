/*
 * AWS credentials provider chain (see es_aws_credentials.h); the shared
 * files' profiles are in profile.c.
 *
 * Each source answers "not configured" (skipped, noted), "failed" (noted,
 * the chain goes on) or credentials. The notes of every source tried make up
 * the error message, so an operator sees at once why nothing was found.
 */
#include "aws_int.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "internal/es_curlbuf.h"

void es_aws_note(notes_t *n, const char *fmt, ...)
{
    va_list ap;
    if (n->len >= sizeof(n->buf) - 1)
        return;
    if (n->len > 0)
        n->len +=
            (size_t)snprintf(n->buf + n->len, sizeof(n->buf) - n->len, "; ");
    if (n->len >= sizeof(n->buf) - 1)
        return;
    va_start(ap, fmt);
    int w = vsnprintf(n->buf + n->len, sizeof(n->buf) - n->len, fmt, ap);
    va_end(ap);
    if (w > 0)
        n->len += (size_t)w;
    if (n->len > sizeof(n->buf) - 1)
        n->len = sizeof(n->buf) - 1;
}

const char *es_aws_env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

int es_aws_copy_field(char *dst, size_t size, const char *src)
{
    size_t len = src ? strlen(src) : 0;
    if (len >= size)
        return -1;
    memcpy(dst, src ? src : "", len);
    dst[len] = '\0';
    return 0;
}

int es_aws_fill_creds(es_aws_credentials_t *out, const char *source,
                      const char *akid, const char *secret, const char *token,
                      time_t expiration)
{
    memset(out, 0, sizeof(*out));
    if (!akid || !*akid || !secret || !*secret)
        return -1;
    if (es_aws_copy_field(out->access_key_id, sizeof(out->access_key_id),
                          akid) ||
        es_aws_copy_field(out->secret_access_key,
                          sizeof(out->secret_access_key), secret) ||
        es_aws_copy_field(out->session_token, sizeof(out->session_token),
                          token) ||
        es_aws_copy_field(out->source, sizeof(out->source), source))
        return -1;
    out->expiration = expiration;
    return 0;
}

/* "2026-11-23T10:20:30Z", optionally with fractional seconds; -1 for
 * anything else, a time before 1970 included (an expiry there read as a
 * negative time, and 1969-12-31T23:59:59Z as this -1). */
time_t es_aws_parse_iso8601(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
        return (time_t)-1;
    time_t t = timegm(&tm);
    return t < 0 ? (time_t)-1 : t;
}

char *es_aws_read_small_file(const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0;
    if (!f)
        return NULL;
    buf = malloc(max + 1);
    if (buf)
        len = fread(buf, 1, max, f);
    fclose(f);
    if (!buf)
        return NULL;
    buf[len] = '\0';
    while (len > 0 && isspace((unsigned char)buf[len - 1]))
        buf[--len] = '\0';
    return buf;
}

char *es_aws_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    return s;
}

/* ------------------------------------------------------------------ HTTP */

/*
 * One small HTTP exchange. Returns the HTTP status (>0) with the body in
 * *body (malloc'd, NUL-terminated), or -1 with the transport error in
 * errstr.
 */
long es_aws_http_call_signed(const es_aws_provider_t *p, const char *method,
                             const char *url, const char *const *headers,
                             const char *body, const es_aws_credentials_t *sign,
                             const char *sigv4, char **resp, char *errstr,
                             size_t errstr_size)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    es_curlbuf_t b = {.max = ES_AWS_MAX_RESPONSE};
    char detail[CURL_ERROR_SIZE] = "";
    long status = -1;
    *resp = NULL;
    if (!c) {
        snprintf(errstr, errstr_size, "curl_easy_init failed");
        return -1;
    }
    for (size_t i = 0; headers && headers[i]; i++) {
        struct curl_slist *n = curl_slist_append(hl, headers[i]);
        if (!n)
            goto done;
        hl = n;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, es_curlbuf_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, p->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, p->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Which TLS problem, where curl_easy_strerror only says "SSL peer
     * certificate ... was not OK". */
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
    /* As the AWS SDKs do: a private CA for STS, SSO or the container
     * endpoint behind TLS. */
    if (es_aws_env("AWS_CA_BUNDLE"))
        curl_easy_setopt(c, CURLOPT_CAINFO, es_aws_env("AWS_CA_BUNDLE"));
    if (sign) {
        curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4);
        curl_easy_setopt(c, CURLOPT_USERNAME, sign->access_key_id);
        curl_easy_setopt(c, CURLOPT_PASSWORD, sign->secret_access_key);
    }
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        snprintf(errstr, errstr_size, "%s",
                 b.overflow  ? "response too large"
                 : detail[0] ? detail
                             : curl_easy_strerror(rc));
        goto done;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    *resp = b.data ? b.data : strdup("");
    b.data = NULL;
done:
    free(b.data);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return status;
}

long es_aws_http_call(const es_aws_provider_t *p, const char *method,
                      const char *url, const char *const *headers,
                      const char *body, char **resp, char *errstr,
                      size_t errstr_size)
{
    return es_aws_http_call_signed(p, method, url, headers, body, NULL, NULL,
                                   resp, errstr, errstr_size);
}

char *es_aws_url_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = strlen(s);
    char *out = malloc(len * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/* Text between <tag> and </tag>, copied into a malloc'd string. */
char *es_aws_xml_value(const char *xml, const char *tag)
{
    char open[64], close[64];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    const char *s = strstr(xml, open);
    if (!s)
        return NULL;
    s += strlen(open);
    const char *e = strstr(s, close);
    if (!e)
        return NULL;
    return strndup(s, (size_t)(e - s));
}

/* Credentials in the JSON shape the container endpoint and IMDS return. */
int es_aws_json_creds_parse(const char *body, const char *source,
                            es_aws_credentials_t *out, char *why,
                            size_t why_size)
{
    cJSON *j = cJSON_Parse(body);
    int rc = -1;
    if (!j) {
        snprintf(why, why_size, "response is not JSON");
        return -1;
    }
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "Code");
    const char *akid = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(j, "AccessKeyId"));
    const char *secret = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(j, "SecretAccessKey"));
    const char *token =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "Token"));
    const char *exp =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "Expiration"));
    time_t expiration = exp ? es_aws_parse_iso8601(exp) : 0;
    if (cJSON_IsString(code) && strcmp(code->valuestring, "Success") != 0) {
        snprintf(why, why_size, "Code %.64s", code->valuestring);
        goto done;
    }
    if (expiration == (time_t)-1) {
        snprintf(why, why_size, "bad Expiration");
        goto done;
    }
    if (es_aws_fill_creds(out, source, akid, secret, token, expiration)) {
        snprintf(why, why_size, "response lacks AccessKeyId/SecretAccessKey");
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(j);
    return rc;
}

/* --------------------------------------------------------------- sources */

static int src_static(es_aws_provider_t *p, es_aws_credentials_t *out,
                      notes_t *n)
{
    if (!p->access_key_id && !p->secret_access_key)
        return SRC_NONE;
    if (es_aws_fill_creds(out, "config", p->access_key_id, p->secret_access_key,
                          p->session_token, 0)) {
        es_aws_note(n,
                    "config: access_key_id and secret_access_key must both be "
                    "set");
        return SRC_FAILED;
    }
    return SRC_OK;
}

int es_aws_src_env(es_aws_provider_t *p, es_aws_credentials_t *out, notes_t *n)
{
    const char *akid = es_aws_env("AWS_ACCESS_KEY_ID");
    const char *secret = es_aws_env("AWS_SECRET_ACCESS_KEY");
    (void)p;
    if (!akid && !secret) {
        es_aws_note(n, "environment: AWS_ACCESS_KEY_ID not set");
        return SRC_NONE;
    }
    if (es_aws_fill_creds(out, "environment", akid, secret,
                          es_aws_env("AWS_SESSION_TOKEN"), 0)) {
        es_aws_note(n,
                    "environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                    "must both be set");
        return SRC_FAILED;
    }
    return SRC_OK;
}

/* The Credentials element of an STS answer (AssumeRole and
 * AssumeRoleWithWebIdentity share it). */
int es_aws_sts_parse(const char *resp, const char *source,
                     es_aws_credentials_t *out)
{
    char *akid = es_aws_xml_value(resp, "AccessKeyId");
    char *secret = es_aws_xml_value(resp, "SecretAccessKey");
    char *token = es_aws_xml_value(resp, "SessionToken");
    char *exp = es_aws_xml_value(resp, "Expiration");
    time_t expiration = exp ? es_aws_parse_iso8601(exp) : (time_t)-1;
    int rc =
        expiration == (time_t)-1 ||
                es_aws_fill_creds(out, source, akid, secret, token, expiration)
            ? -1
            : 0;
    if (secret)
        memset(secret, 0, strlen(secret));
    free(akid);
    free(secret);
    free(token);
    free(exp);
    return rc;
}

const char *es_aws_sts_endpoint(const es_aws_provider_t *p)
{
    return p->sts_endpoint ? p->sts_endpoint
           : es_aws_env("AWS_ENDPOINT_URL_STS")
               ? es_aws_env("AWS_ENDPOINT_URL_STS")
               : NULL;
}

int es_aws_web_identity(es_aws_provider_t *p, const char *token_file,
                        const char *role_arn, const char *session_name,
                        es_aws_credentials_t *out, notes_t *n)
{
    char *token = NULL, *e_token = NULL, *e_role = NULL, *e_sess = NULL;
    char *body = NULL, *resp = NULL;
    char err[256];
    int rc = SRC_FAILED;
    const char *endpoint = es_aws_sts_endpoint(p) ? es_aws_sts_endpoint(p)
                                                  : "https://sts.amazonaws.com";
    static const char *const headers[] = {
        "Content-Type: application/x-www-form-urlencoded",
        "Accept: application/xml", NULL};

    token = es_aws_read_small_file(token_file, 16384);
    if (!token || !*token) {
        es_aws_note(n, "web identity: cannot read token file %s: %s",
                    token_file, token ? "empty" : strerror(errno));
        goto done;
    }
    e_token = es_aws_url_encode(token);
    e_role = es_aws_url_encode(role_arn);
    e_sess = es_aws_url_encode(session_name);
    if (!e_token || !e_role || !e_sess ||
        asprintf(&body,
                 "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
                 "&RoleArn=%s&RoleSessionName=%s&WebIdentityToken=%s",
                 e_role, e_sess, e_token) < 0) {
        body = NULL;
        es_aws_note(n, "web identity: out of memory");
        goto done;
    }
    long status = es_aws_http_call(p, "POST", endpoint, headers, body, &resp,
                                   err, sizeof(err));
    if (status < 0) {
        es_aws_note(n, "web identity: STS %s: %s", endpoint, err);
        goto done;
    }
    if (status != 200) {
        char *code = es_aws_xml_value(resp, "Code");
        es_aws_note(n, "web identity: STS %s answered HTTP %ld%s%.128s",
                    endpoint, status, code ? " " : "", code ? code : "");
        free(code);
        goto done;
    }
    if (es_aws_sts_parse(resp, "web-identity", out)) {
        es_aws_note(
            n, "web identity: STS response lacks credentials or Expiration");
        goto done;
    }
    rc = SRC_OK;
done:
    free(token);
    free(e_token);
    free(e_role);
    free(e_sess);
    free(body);
    free(resp);
    return rc;
}

static int src_web_identity(es_aws_provider_t *p, es_aws_credentials_t *out,
                            notes_t *n)
{
    const char *file = es_aws_env("AWS_WEB_IDENTITY_TOKEN_FILE");
    const char *role = es_aws_env("AWS_ROLE_ARN");
    const char *sess = es_aws_env("AWS_ROLE_SESSION_NAME");
    if (!file || !role) {
        es_aws_note(
            n, "web identity: AWS_WEB_IDENTITY_TOKEN_FILE/AWS_ROLE_ARN not "
               "set");
        return SRC_NONE;
    }
    return es_aws_web_identity(p, file, role, sess ? sess : "eventstreamd", out,
                               n);
}

/* Plain http is only acceptable to a loopback or the ECS/EKS link-local
 * agents; anything else must be https. */
static int container_url_ok(const char *url)
{
    static const char *const ok[] = {"https://",
                                     "http://127.",
                                     "http://localhost",
                                     "http://[::1]",
                                     "http://169.254.170.2",
                                     "http://169.254.170.23",
                                     "http://[fd00:ec2::23]"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strncmp(url, ok[i], strlen(ok[i])) == 0)
            return 1;
    return 0;
}

int es_aws_src_container(es_aws_provider_t *p, es_aws_credentials_t *out,
                         notes_t *n)
{
    const char *rel = es_aws_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = es_aws_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    const char *tok_file = es_aws_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *tok = es_aws_env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    char *url = NULL, *auth = NULL, *file_tok = NULL, *resp = NULL;
    char err[256], why[128];
    const char *headers[3] = {"Accept: application/json", NULL, NULL};
    int rc = SRC_FAILED;

    if (!rel && !full) {
        es_aws_note(
            n, "container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI "
               "not set");
        return SRC_NONE;
    }
    if (rel) {
        const char *host =
            p->container_host ? p->container_host : "http://169.254.170.2";
        if (asprintf(&url, "%s%s", host, rel) < 0)
            url = NULL;
    } else {
        url = strdup(full);
    }
    if (!url) {
        es_aws_note(n, "container: out of memory");
        goto done;
    }
    if (!rel && !container_url_ok(url)) {
        es_aws_note(
            n, "container: AWS_CONTAINER_CREDENTIALS_FULL_URI must be https "
               "or a loopback/container-agent address");
        goto done;
    }
    if (tok_file) {
        file_tok = es_aws_read_small_file(tok_file, 8192);
        if (!file_tok) {
            es_aws_note(n, "container: cannot read %s: %s", tok_file,
                        strerror(errno));
            goto done;
        }
        tok = file_tok;
    }
    if (tok) {
        if (strpbrk(tok, "\r\n")) {
            es_aws_note(n, "container: authorization token contains a newline");
            goto done;
        }
        if (asprintf(&auth, "Authorization: %s", tok) < 0) {
            auth = NULL;
            goto done;
        }
        headers[1] = auth;
    }
    long status =
        es_aws_http_call(p, "GET", url, headers, NULL, &resp, err, sizeof(err));
    if (status < 0) {
        es_aws_note(n, "container: %s", err);
        goto done;
    }
    if (status != 200) {
        es_aws_note(n, "container: endpoint answered HTTP %ld", status);
        goto done;
    }
    if (es_aws_json_creds_parse(resp, "container", out, why, sizeof(why))) {
        es_aws_note(n, "container: %s", why);
        goto done;
    }
    rc = SRC_OK;
done:
    free(url);
    free(auth);
    free(file_tok);
    free(resp);
    return rc;
}

int es_aws_src_imds(es_aws_provider_t *p, es_aws_credentials_t *out, notes_t *n)
{
    const char *dis = es_aws_env("AWS_EC2_METADATA_DISABLED");
    const char *base = p->imds_endpoint ? p->imds_endpoint
                       : es_aws_env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                           ? es_aws_env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                           : "http://169.254.169.254";
    char *url = NULL, *token = NULL, *role = NULL, *resp = NULL,
         *tok_hdr = NULL;
    char err[256], why[128];
    int rc = SRC_FAILED;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    static const char *const put_headers[] = {
        "X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL};

    if (dis && strcasecmp(dis, "true") == 0) {
        es_aws_note(n, "imds: disabled by AWS_EC2_METADATA_DISABLED");
        return SRC_NONE;
    }
    if (asprintf(&url, "%.*s/latest/api/token", (int)blen, base) < 0) {
        url = NULL;
        goto done;
    }
    long status = es_aws_http_call(p, "PUT", url, put_headers, NULL, &token,
                                   err, sizeof(err));
    if (status != 200) {
        if (status < 0)
            es_aws_note(n, "imds: token request to %.*s: %s", (int)blen, base,
                        err);
        else
            es_aws_note(n, "imds: token request answered HTTP %ld", status);
        goto done;
    }
    if (asprintf(&tok_hdr, "X-aws-ec2-metadata-token: %s", es_aws_trim(token)) <
        0) {
        tok_hdr = NULL;
        goto done;
    }
    const char *get_headers[] = {tok_hdr, NULL};
    free(url);
    if (asprintf(&url, "%.*s/latest/meta-data/iam/security-credentials/",
                 (int)blen, base) < 0) {
        url = NULL;
        goto done;
    }
    status = es_aws_http_call(p, "GET", url, get_headers, NULL, &role, err,
                              sizeof(err));
    if (status != 200) {
        es_aws_note(n, "imds: role lookup answered %s%ld",
                    status < 0 ? "error " : "HTTP ", status);
        goto done;
    }
    char *r = es_aws_trim(role);
    r[strcspn(r, "\r\n")] = '\0';
    if (!*r) {
        es_aws_note(n, "imds: no instance role attached");
        goto done;
    }
    free(url);
    if (asprintf(&url, "%.*s/latest/meta-data/iam/security-credentials/%s",
                 (int)blen, base, r) < 0) {
        url = NULL;
        goto done;
    }
    status = es_aws_http_call(p, "GET", url, get_headers, NULL, &resp, err,
                              sizeof(err));
    if (status != 200) {
        es_aws_note(n, "imds: credentials request answered %s%ld",
                    status < 0 ? "error " : "HTTP ", status);
        goto done;
    }
    if (es_aws_json_creds_parse(resp, "imds", out, why, sizeof(why))) {
        es_aws_note(n, "imds: %s", why);
        goto done;
    }
    rc = SRC_OK;
done:
    free(url);
    free(token);
    free(role);
    free(resp);
    free(tok_hdr);
    return rc;
}

/* ------------------------------------------------------------------- API */

es_aws_provider_t *es_aws_provider_new(const es_aws_provider_opts_t *opts,
                                       char *errstr, size_t errstr_size)
{
    es_aws_provider_opts_t none = {0};
    es_aws_provider_t *p = calloc(1, sizeof(*p));
    if (!opts)
        opts = &none;
    if (!p) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    p->profile = dup_or_null(opts->profile);
    p->access_key_id = dup_or_null(opts->access_key_id);
    p->secret_access_key = dup_or_null(opts->secret_access_key);
    p->session_token = dup_or_null(opts->session_token);
    p->sts_endpoint = dup_or_null(opts->sts_endpoint);
    p->imds_endpoint = dup_or_null(opts->imds_endpoint);
    p->container_host = dup_or_null(opts->container_host);
    p->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 2000;
    if (!!p->access_key_id != !!p->secret_access_key) {
        snprintf(errstr, errstr_size,
                 "access_key_id and secret_access_key must be set together");
        es_aws_provider_destroy(p);
        return NULL;
    }
    return p;
}

void es_aws_provider_destroy(es_aws_provider_t *p)
{
    if (!p)
        return;
    pthread_mutex_destroy(&p->lock);
    free(p->profile);
    free(p->access_key_id);
    if (p->secret_access_key)
        memset(p->secret_access_key, 0, strlen(p->secret_access_key));
    free(p->secret_access_key);
    free(p->session_token);
    free(p->sts_endpoint);
    free(p->imds_endpoint);
    free(p->container_host);
    memset(&p->cached, 0, sizeof(p->cached));
    free(p);
}

static int fresh(const es_aws_credentials_t *c, time_t now)
{
    return c->expiration == 0 || c->expiration - now > ES_AWS_REFRESH_MARGIN;
}

/* Credentials a source hands out already expired (a stale cache behind the
 * endpoint, or this host's clock ahead) would be signed with, rejected by
 * AWS with ExpiredToken, and fetched again on every use; refusing them
 * here says why, and lets the next source answer. */
static int expired_on_arrival(const es_aws_credentials_t *c, time_t now,
                              notes_t *n)
{
    char when[32];
    struct tm tm;
    if (c->expiration == 0 || c->expiration > now)
        return 0;
    if (!gmtime_r(&c->expiration, &tm) ||
        !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(when, sizeof(when), "%lld", (long long)c->expiration);
    es_aws_note(n,
                "%s: the credentials it gave expired at %s, %lld s ago by "
                "this host's clock",
                c->source, when, (long long)(now - c->expiration));
    return 1;
}

int es_aws_provider_get(es_aws_provider_t *p, es_aws_credentials_t *out,
                        char *errstr, size_t errstr_size)
{
    typedef int (*source_fn)(es_aws_provider_t *, es_aws_credentials_t *,
                             notes_t *);
    static const source_fn chain[] = {src_static,           es_aws_src_env,
                                      src_web_identity,     es_aws_src_profile,
                                      es_aws_src_container, es_aws_src_imds};
    es_aws_credentials_t got;
    notes_t n = {{0}, 0};
    int rc = -1;
    time_t now = time(NULL);

    pthread_mutex_lock(&p->lock);
    if (p->have_cached && fresh(&p->cached, now)) {
        *out = p->cached;
        rc = 0;
        goto done;
    }
    for (size_t i = 0; i < sizeof(chain) / sizeof(chain[0]); i++) {
        if (chain[i](p, &got, &n) == SRC_OK &&
            !expired_on_arrival(&got, now, &n)) {
            p->cached = got;
            p->have_cached = 1;
            *out = got;
            rc = 0;
            goto done;
        }
    }
    /* A failed early refresh keeps using credentials that still work. */
    if (p->have_cached && p->cached.expiration > now + 10) {
        *out = p->cached;
        rc = 0;
        goto done;
    }
    snprintf(errstr, errstr_size, "no AWS credentials found (tried: %s)",
             n.buf);
done:
    memset(&got, 0, sizeof(got));
    pthread_mutex_unlock(&p->lock);
    return rc;
}
