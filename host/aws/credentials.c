/*
 * AWS credentials provider chain (see es_aws_credentials.h).
 *
 * Each source answers "not configured" (skipped, noted), "failed" (noted,
 * the chain goes on) or credentials. The notes of every source tried make up
 * the error message, so an operator sees at once why nothing was found.
 */
#include "es_aws_credentials.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#define ES_AWS_REFRESH_MARGIN 300 /* refresh this many seconds early */
#define ES_AWS_MAX_RESPONSE (256 * 1024)

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

/* Notes collected while walking the chain. */
typedef struct notes_s {
    char buf[1024];
    size_t len;
} notes_t;

static void note(notes_t *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void note(notes_t *n, const char *fmt, ...)
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

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

static int copy_field(char *dst, size_t size, const char *src)
{
    size_t len = src ? strlen(src) : 0;
    if (len >= size)
        return -1;
    memcpy(dst, src ? src : "", len);
    dst[len] = '\0';
    return 0;
}

static int fill_creds(es_aws_credentials_t *out, const char *source,
                      const char *akid, const char *secret, const char *token,
                      time_t expiration)
{
    memset(out, 0, sizeof(*out));
    if (!akid || !*akid || !secret || !*secret)
        return -1;
    if (copy_field(out->access_key_id, sizeof(out->access_key_id), akid) ||
        copy_field(out->secret_access_key, sizeof(out->secret_access_key),
                   secret) ||
        copy_field(out->session_token, sizeof(out->session_token), token) ||
        copy_field(out->source, sizeof(out->source), source))
        return -1;
    out->expiration = expiration;
    return 0;
}

/* "2026-11-23T10:20:30Z", optionally with fractional seconds. */
static time_t parse_iso8601(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
        return (time_t)-1;
    return timegm(&tm);
}

static char *read_small_file(const char *path, size_t max)
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

/* ------------------------------------------------------------------ HTTP */

typedef struct http_buf_s {
    char *data;
    size_t len;
    int overflow;
} http_buf_t;

static size_t http_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    http_buf_t *b = ud;
    size_t n = size * nmemb;
    if (b->len + n > ES_AWS_MAX_RESPONSE) {
        b->overflow = 1;
        return 0;
    }
    char *p = realloc(b->data, b->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + b->len, ptr, n);
    b->data = p;
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/*
 * One small HTTP exchange. Returns the HTTP status (>0) with the body in
 * *body (malloc'd, NUL-terminated), or -1 with the transport error in
 * errstr.
 */
static long http_call(const es_aws_provider_t *p, const char *method,
                      const char *url, const char *const *headers,
                      const char *body, char **resp, char *errstr,
                      size_t errstr_size)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    http_buf_t b = {0};
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
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, p->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, p->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
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
                 b.overflow ? "response too large" : curl_easy_strerror(rc));
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

static char *url_encode(const char *s)
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
static char *xml_value(const char *xml, const char *tag)
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
static int parse_json_creds(const char *body, const char *source,
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
    time_t expiration = exp ? parse_iso8601(exp) : 0;
    if (cJSON_IsString(code) && strcmp(code->valuestring, "Success") != 0) {
        snprintf(why, why_size, "Code %.64s", code->valuestring);
        goto done;
    }
    if (expiration == (time_t)-1) {
        snprintf(why, why_size, "bad Expiration");
        goto done;
    }
    if (fill_creds(out, source, akid, secret, token, expiration)) {
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
    if (fill_creds(out, "config", p->access_key_id, p->secret_access_key,
                   p->session_token, 0)) {
        note(n, "config: access_key_id and secret_access_key must both be "
                "set");
        return SRC_FAILED;
    }
    return SRC_OK;
}

static int src_env(es_aws_provider_t *p, es_aws_credentials_t *out, notes_t *n)
{
    const char *akid = env("AWS_ACCESS_KEY_ID");
    const char *secret = env("AWS_SECRET_ACCESS_KEY");
    (void)p;
    if (!akid && !secret) {
        note(n, "environment: AWS_ACCESS_KEY_ID not set");
        return SRC_NONE;
    }
    if (fill_creds(out, "environment", akid, secret, env("AWS_SESSION_TOKEN"),
                   0)) {
        note(n, "environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "must both be set");
        return SRC_FAILED;
    }
    return SRC_OK;
}

static int web_identity(es_aws_provider_t *p, const char *token_file,
                        const char *role_arn, const char *session_name,
                        es_aws_credentials_t *out, notes_t *n)
{
    char *token = NULL, *e_token = NULL, *e_role = NULL, *e_sess = NULL;
    char *body = NULL, *resp = NULL, *akid = NULL, *secret = NULL,
         *stoken = NULL, *exp = NULL;
    char err[256];
    int rc = SRC_FAILED;
    const char *endpoint = p->sts_endpoint ? p->sts_endpoint
                           : env("AWS_ENDPOINT_URL_STS")
                               ? env("AWS_ENDPOINT_URL_STS")
                               : "https://sts.amazonaws.com";
    static const char *const headers[] = {
        "Content-Type: application/x-www-form-urlencoded",
        "Accept: application/xml", NULL};

    token = read_small_file(token_file, 16384);
    if (!token || !*token) {
        note(n, "web identity: cannot read token file %s: %s", token_file,
             token ? "empty" : strerror(errno));
        goto done;
    }
    e_token = url_encode(token);
    e_role = url_encode(role_arn);
    e_sess = url_encode(session_name);
    if (!e_token || !e_role || !e_sess ||
        asprintf(&body,
                 "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
                 "&RoleArn=%s&RoleSessionName=%s&WebIdentityToken=%s",
                 e_role, e_sess, e_token) < 0) {
        body = NULL;
        note(n, "web identity: out of memory");
        goto done;
    }
    long status =
        http_call(p, "POST", endpoint, headers, body, &resp, err, sizeof(err));
    if (status < 0) {
        note(n, "web identity: STS %s: %s", endpoint, err);
        goto done;
    }
    if (status != 200) {
        char *code = xml_value(resp, "Code");
        note(n, "web identity: STS %s answered HTTP %ld%s%.128s", endpoint,
             status, code ? " " : "", code ? code : "");
        free(code);
        goto done;
    }
    akid = xml_value(resp, "AccessKeyId");
    secret = xml_value(resp, "SecretAccessKey");
    stoken = xml_value(resp, "SessionToken");
    exp = xml_value(resp, "Expiration");
    time_t expiration = exp ? parse_iso8601(exp) : (time_t)-1;
    if (expiration == (time_t)-1 ||
        fill_creds(out, "web-identity", akid, secret, stoken, expiration)) {
        note(n, "web identity: STS response lacks credentials or Expiration");
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
    free(akid);
    free(secret);
    free(stoken);
    free(exp);
    return rc;
}

static int src_web_identity(es_aws_provider_t *p, es_aws_credentials_t *out,
                            notes_t *n)
{
    const char *file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
    const char *role = env("AWS_ROLE_ARN");
    const char *sess = env("AWS_ROLE_SESSION_NAME");
    if (!file || !role) {
        note(n, "web identity: AWS_WEB_IDENTITY_TOKEN_FILE/AWS_ROLE_ARN not "
                "set");
        return SRC_NONE;
    }
    return web_identity(p, file, role, sess ? sess : "eventstreamd", out, n);
}

/* Values of one profile from an INI file. */
typedef struct profile_s {
    char *akid, *secret, *token, *role_arn, *token_file, *session_name;
} profile_t;

static void profile_clear(profile_t *pr)
{
    free(pr->akid);
    free(pr->secret);
    free(pr->token);
    free(pr->role_arn);
    free(pr->token_file);
    free(pr->session_name);
    memset(pr, 0, sizeof(*pr));
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    return s;
}

/*
 * Reads the section for `profile` from an INI file. In the config file the
 * section is "[profile NAME]" (or "[default]"). Returns 1 when the section
 * exists, 0 when not, -1 when the file cannot be read.
 */
static int ini_read(const char *path, const char *profile, int config_style,
                    profile_t *pr)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int in = 0, found = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        char *s = trim(line);
        if (*s == '#' || *s == ';' || !*s)
            continue;
        if (*s == '[') {
            char *e = strchr(s, ']');
            if (!e)
                continue;
            *e = '\0';
            char *name = trim(s + 1);
            if (config_style && strncmp(name, "profile ", 8) == 0)
                name = trim(name + 8);
            in = strcmp(name, profile) == 0;
            found |= in;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!in || !eq)
            continue;
        *eq = '\0';
        char *k = trim(s), *v = trim(eq + 1);
        char **slot = strcmp(k, "aws_access_key_id") == 0       ? &pr->akid
                      : strcmp(k, "aws_secret_access_key") == 0 ? &pr->secret
                      : strcmp(k, "aws_session_token") == 0     ? &pr->token
                      : strcmp(k, "role_arn") == 0              ? &pr->role_arn
                      : strcmp(k, "web_identity_token_file") == 0
                          ? &pr->token_file
                      : strcmp(k, "role_session_name") == 0 ? &pr->session_name
                                                            : NULL;
        if (slot && !*slot)
            *slot = strdup(v);
    }
    fclose(f);
    return found;
}

static char *home_path(const char *rel)
{
    const char *home = env("HOME");
    char *path = NULL;
    if (!home || asprintf(&path, "%s/%s", home, rel) < 0)
        return NULL;
    return path;
}

static int src_profile(es_aws_provider_t *p, es_aws_credentials_t *out,
                       notes_t *n)
{
    const char *profile = p->profile           ? p->profile
                          : env("AWS_PROFILE") ? env("AWS_PROFILE")
                          : env("AWS_DEFAULT_PROFILE")
                              ? env("AWS_DEFAULT_PROFILE")
                              : "default";
    char *cred_path = env("AWS_SHARED_CREDENTIALS_FILE")
                          ? strdup(env("AWS_SHARED_CREDENTIALS_FILE"))
                          : home_path(".aws/credentials");
    char *conf_path = env("AWS_CONFIG_FILE") ? strdup(env("AWS_CONFIG_FILE"))
                                             : home_path(".aws/config");
    profile_t pr = {0};
    int rc = SRC_NONE;
    /* The credentials file wins over the config file, key by key. */
    int in_cred = cred_path ? ini_read(cred_path, profile, 0, &pr) : -1;
    int in_conf = conf_path ? ini_read(conf_path, profile, 1, &pr) : -1;
    if (in_cred <= 0 && in_conf <= 0) {
        note(n, "profile %s: %s", profile,
             in_cred < 0 && in_conf < 0 ? "no credentials or config file"
                                        : "no such profile");
        goto done;
    }
    if (pr.akid || pr.secret) {
        if (fill_creds(out, "profile", pr.akid, pr.secret, pr.token, 0)) {
            note(n,
                 "profile %s: aws_access_key_id and aws_secret_access_key "
                 "must both be set",
                 profile);
            rc = SRC_FAILED;
        } else {
            rc = SRC_OK;
        }
        goto done;
    }
    if (pr.role_arn && pr.token_file) {
        rc = web_identity(p, pr.token_file, pr.role_arn,
                          pr.session_name ? pr.session_name : "eventstreamd",
                          out, n);
        if (rc == SRC_OK)
            copy_field(out->source, sizeof(out->source), "profile");
        goto done;
    }
    note(n, "profile %s: no static keys or role_arn+web_identity_token_file",
         profile);
    rc = SRC_FAILED;
done:
    profile_clear(&pr);
    free(cred_path);
    free(conf_path);
    return rc;
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

static int src_container(es_aws_provider_t *p, es_aws_credentials_t *out,
                         notes_t *n)
{
    const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    const char *tok_file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *tok = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    char *url = NULL, *auth = NULL, *file_tok = NULL, *resp = NULL;
    char err[256], why[128];
    const char *headers[3] = {"Accept: application/json", NULL, NULL};
    int rc = SRC_FAILED;

    if (!rel && !full) {
        note(n, "container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI "
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
        note(n, "container: out of memory");
        goto done;
    }
    if (!rel && !container_url_ok(url)) {
        note(n, "container: AWS_CONTAINER_CREDENTIALS_FULL_URI must be https "
                "or a loopback/container-agent address");
        goto done;
    }
    if (tok_file) {
        file_tok = read_small_file(tok_file, 8192);
        if (!file_tok) {
            note(n, "container: cannot read %s: %s", tok_file, strerror(errno));
            goto done;
        }
        tok = file_tok;
    }
    if (tok) {
        if (strpbrk(tok, "\r\n")) {
            note(n, "container: authorization token contains a newline");
            goto done;
        }
        if (asprintf(&auth, "Authorization: %s", tok) < 0) {
            auth = NULL;
            goto done;
        }
        headers[1] = auth;
    }
    long status =
        http_call(p, "GET", url, headers, NULL, &resp, err, sizeof(err));
    if (status < 0) {
        note(n, "container: %s", err);
        goto done;
    }
    if (status != 200) {
        note(n, "container: endpoint answered HTTP %ld", status);
        goto done;
    }
    if (parse_json_creds(resp, "container", out, why, sizeof(why))) {
        note(n, "container: %s", why);
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

static int src_imds(es_aws_provider_t *p, es_aws_credentials_t *out, notes_t *n)
{
    const char *dis = env("AWS_EC2_METADATA_DISABLED");
    const char *base = p->imds_endpoint ? p->imds_endpoint
                       : env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                           ? env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
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
        note(n, "imds: disabled by AWS_EC2_METADATA_DISABLED");
        return SRC_NONE;
    }
    if (asprintf(&url, "%.*s/latest/api/token", (int)blen, base) < 0) {
        url = NULL;
        goto done;
    }
    long status =
        http_call(p, "PUT", url, put_headers, NULL, &token, err, sizeof(err));
    if (status != 200) {
        if (status < 0)
            note(n, "imds: token request to %.*s: %s", (int)blen, base, err);
        else
            note(n, "imds: token request answered HTTP %ld", status);
        goto done;
    }
    if (asprintf(&tok_hdr, "X-aws-ec2-metadata-token: %s", trim(token)) < 0) {
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
    status =
        http_call(p, "GET", url, get_headers, NULL, &role, err, sizeof(err));
    if (status != 200) {
        note(n, "imds: role lookup answered %s%ld",
             status < 0 ? "error " : "HTTP ", status);
        goto done;
    }
    char *r = trim(role);
    r[strcspn(r, "\r\n")] = '\0';
    if (!*r) {
        note(n, "imds: no instance role attached");
        goto done;
    }
    free(url);
    if (asprintf(&url, "%.*s/latest/meta-data/iam/security-credentials/%s",
                 (int)blen, base, r) < 0) {
        url = NULL;
        goto done;
    }
    status =
        http_call(p, "GET", url, get_headers, NULL, &resp, err, sizeof(err));
    if (status != 200) {
        note(n, "imds: credentials request answered %s%ld",
             status < 0 ? "error " : "HTTP ", status);
        goto done;
    }
    if (parse_json_creds(resp, "imds", out, why, sizeof(why))) {
        note(n, "imds: %s", why);
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

int es_aws_provider_get(es_aws_provider_t *p, es_aws_credentials_t *out,
                        char *errstr, size_t errstr_size)
{
    typedef int (*source_fn)(es_aws_provider_t *, es_aws_credentials_t *,
                             notes_t *);
    static const source_fn chain[] = {src_static,       src_env,
                                      src_web_identity, src_profile,
                                      src_container,    src_imds};
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
        if (chain[i](p, &got, &n) == SRC_OK) {
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
