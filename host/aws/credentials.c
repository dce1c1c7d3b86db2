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
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "internal/es_curlbuf.h"

#define ES_AWS_REFRESH_MARGIN 300 /* refresh this many seconds early */
#define ES_AWS_MAX_RESPONSE (256 * 1024)
#define ES_AWS_MAX_CHAIN 5 /* source_profile hops */
#define ES_AWS_PROCESS_TIMEOUT_MS 30000
#define ES_AWS_PROCESS_MAX_OUTPUT (64 * 1024)

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

/*
 * One small HTTP exchange. Returns the HTTP status (>0) with the body in
 * *body (malloc'd, NUL-terminated), or -1 with the transport error in
 * errstr.
 */
static long http_call_signed(const es_aws_provider_t *p, const char *method,
                             const char *url, const char *const *headers,
                             const char *body, const es_aws_credentials_t *sign,
                             const char *sigv4, char **resp, char *errstr,
                             size_t errstr_size)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    es_curlbuf_t b = {.max = ES_AWS_MAX_RESPONSE};
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

static long http_call(const es_aws_provider_t *p, const char *method,
                      const char *url, const char *const *headers,
                      const char *body, char **resp, char *errstr,
                      size_t errstr_size)
{
    return http_call_signed(p, method, url, headers, body, NULL, NULL, resp,
                            errstr, errstr_size);
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

/* The Credentials element of an STS answer (AssumeRole and
 * AssumeRoleWithWebIdentity share it). */
static int sts_parse(const char *resp, const char *source,
                     es_aws_credentials_t *out)
{
    char *akid = xml_value(resp, "AccessKeyId");
    char *secret = xml_value(resp, "SecretAccessKey");
    char *token = xml_value(resp, "SessionToken");
    char *exp = xml_value(resp, "Expiration");
    time_t expiration = exp ? parse_iso8601(exp) : (time_t)-1;
    int rc = expiration == (time_t)-1 ||
                     fill_creds(out, source, akid, secret, token, expiration)
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

static const char *sts_endpoint(const es_aws_provider_t *p)
{
    return p->sts_endpoint               ? p->sts_endpoint
           : env("AWS_ENDPOINT_URL_STS") ? env("AWS_ENDPOINT_URL_STS")
                                         : NULL;
}

static int web_identity(es_aws_provider_t *p, const char *token_file,
                        const char *role_arn, const char *session_name,
                        es_aws_credentials_t *out, notes_t *n)
{
    char *token = NULL, *e_token = NULL, *e_role = NULL, *e_sess = NULL;
    char *body = NULL, *resp = NULL;
    char err[256];
    int rc = SRC_FAILED;
    const char *endpoint =
        sts_endpoint(p) ? sts_endpoint(p) : "https://sts.amazonaws.com";
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
    if (sts_parse(resp, "web-identity", out)) {
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

/* Values of one profile (or sso-session section) from the INI files. */
typedef struct profile_s {
    char *akid, *secret, *token, *role_arn, *token_file, *session_name;
    char *source_profile, *credential_source, *external_id, *duration;
    char *mfa_serial, *process, *region;
    char *sso_session, *sso_start_url, *sso_region, *sso_account_id,
        *sso_role_name;
} profile_t;

#define PKEY(name, field)                                                      \
    {                                                                          \
        name, offsetof(profile_t, field)                                       \
    }
static const struct {
    const char *name;
    size_t offset;
} profile_keys[] = {
    PKEY("aws_access_key_id", akid),
    PKEY("aws_secret_access_key", secret),
    PKEY("aws_session_token", token),
    PKEY("role_arn", role_arn),
    PKEY("web_identity_token_file", token_file),
    PKEY("role_session_name", session_name),
    PKEY("source_profile", source_profile),
    PKEY("credential_source", credential_source),
    PKEY("external_id", external_id),
    PKEY("duration_seconds", duration),
    PKEY("mfa_serial", mfa_serial),
    PKEY("credential_process", process),
    PKEY("region", region),
    PKEY("sso_session", sso_session),
    PKEY("sso_start_url", sso_start_url),
    PKEY("sso_region", sso_region),
    PKEY("sso_account_id", sso_account_id),
    PKEY("sso_role_name", sso_role_name),
};

static void profile_clear(profile_t *pr)
{
    for (size_t i = 0; i < sizeof(profile_keys) / sizeof(profile_keys[0]);
         i++) {
        char **v = (char **)((char *)pr + profile_keys[i].offset);
        if (*v)
            memset(*v, 0, strlen(*v)); /* some are secrets */
        free(*v);
    }
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
 * Reads the section named `sec` (or `alt`, when not NULL) from an INI file;
 * keys already set are kept (the first file read wins, key by key). Returns
 * 1 when the section exists, 0 when not, -1 when the file cannot be read.
 */
static int ini_read(const char *path, const char *sec, const char *alt,
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
            /* "[profile  x]" and "[profile x]" are the same section */
            if (strncmp(name, "profile ", 8) == 0 && strcmp(sec, name) != 0 &&
                strncmp(sec, "profile ", 8) == 0)
                in = strcmp(trim(name + 8), sec + 8) == 0;
            else
                in = strcmp(name, sec) == 0 || (alt && strcmp(name, alt) == 0);
            found |= in;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!in || !eq)
            continue;
        *eq = '\0';
        char *k = trim(s), *v = trim(eq + 1);
        for (size_t i = 0; i < sizeof(profile_keys) / sizeof(profile_keys[0]);
             i++) {
            char **slot = (char **)((char *)pr + profile_keys[i].offset);
            if (strcmp(k, profile_keys[i].name) == 0 && !*slot)
                *slot = strdup(v);
        }
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

typedef struct aws_files_s {
    char *cred, *conf;
} aws_files_t;

/* A profile's keys: the credentials file wins over the config file. */
static int profile_load(const aws_files_t *f, const char *name, profile_t *pr)
{
    char sec[512];
    snprintf(sec, sizeof(sec), "profile %s", name);
    int in_cred = f->cred ? ini_read(f->cred, name, NULL, pr) : -1;
    int in_conf = f->conf ? ini_read(f->conf, sec, name, pr) : -1;
    if (in_cred < 0 && in_conf < 0)
        return -1;
    return in_cred > 0 || in_conf > 0;
}

static const char *profile_region(const profile_t *pr)
{
    return pr->region                  ? pr->region
           : env("AWS_REGION")         ? env("AWS_REGION")
           : env("AWS_DEFAULT_REGION") ? env("AWS_DEFAULT_REGION")
                                       : NULL;
}

/* ------------------------------------------------------ sts:AssumeRole */

static int assume_role(es_aws_provider_t *p, const char *name,
                       const profile_t *pr, const es_aws_credentials_t *src,
                       es_aws_credentials_t *out, notes_t *n)
{
    const char *region = profile_region(pr);
    char *endpoint = NULL, *body = NULL, *resp = NULL, *tok_hdr = NULL;
    char *e_role = url_encode(pr->role_arn);
    char *e_sess =
        url_encode(pr->session_name ? pr->session_name : "eventstreamd");
    char *e_ext = pr->external_id ? url_encode(pr->external_id) : NULL;
    char sigv4[96], err[256], dur[32] = "";
    const char *headers[4] = {"Content-Type: application/x-www-form-urlencoded",
                              "Accept: application/xml", NULL, NULL};
    int rc = SRC_FAILED;

    if (pr->duration) {
        char *end;
        long d = strtol(pr->duration, &end, 10);
        if (*end || d < 900 || d > 43200) {
            note(n,
                 "profile %s: duration_seconds: must be an integer from 900 "
                 "to 43200",
                 name);
            goto done;
        }
        snprintf(dur, sizeof(dur), "&DurationSeconds=%ld", d);
    }
    /* The global endpoint signs as us-east-1; a profile with a region
     * talks to that region's STS. */
    if (sts_endpoint(p))
        endpoint = strdup(sts_endpoint(p));
    else if (region &&
             asprintf(&endpoint, "https://sts.%s.amazonaws.com", region) < 0)
        endpoint = NULL;
    else if (!region)
        endpoint = strdup("https://sts.amazonaws.com");
    if (!endpoint || !e_role || !e_sess || (pr->external_id && !e_ext) ||
        asprintf(&body,
                 "Action=AssumeRole%s%s%s&RoleArn=%s&RoleSessionName=%s"
                 "&Version=2011-06-15",
                 dur, e_ext ? "&ExternalId=" : "", e_ext ? e_ext : "", e_role,
                 e_sess) < 0) {
        body = NULL;
        note(n, "profile %s: out of memory", name);
        goto done;
    }
    if (src->session_token[0]) {
        if (asprintf(&tok_hdr, "x-amz-security-token: %s", src->session_token) <
            0) {
            tok_hdr = NULL;
            goto done;
        }
        headers[2] = tok_hdr;
    }
    snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:sts",
             region ? region : "us-east-1");
    long status = http_call_signed(p, "POST", endpoint, headers, body, src,
                                   sigv4, &resp, err, sizeof(err));
    if (status < 0) {
        note(n, "profile %s: AssumeRole at %s: %s", name, endpoint, err);
        goto done;
    }
    if (status != 200) {
        char *code = xml_value(resp, "Code");
        char *msg = xml_value(resp, "Message");
        note(n,
             "profile %s: role_arn: AssumeRole of %.200s (credentials from "
             "%s) at %s answered HTTP %ld%s%.64s%s%.160s%s",
             name, pr->role_arn, src->source, endpoint, status, code ? " " : "",
             code ? code : "", msg ? " (" : "", msg ? msg : "", msg ? ")" : "");
        free(code);
        free(msg);
        goto done;
    }
    if (sts_parse(resp, "assume-role", out)) {
        note(n, "profile %s: AssumeRole response lacks credentials", name);
        goto done;
    }
    rc = SRC_OK;
done:
    free(endpoint);
    free(body);
    free(resp);
    if (tok_hdr)
        memset(tok_hdr, 0, strlen(tok_hdr));
    free(tok_hdr);
    free(e_role);
    free(e_sess);
    free(e_ext);
    return rc;
}

/* ------------------------------------------------- credential_process */

/*
 * Runs `cmd` through /bin/sh with stdin from /dev/null and reads its
 * stdout (at most ES_AWS_PROCESS_MAX_OUTPUT bytes, ES_AWS_PROCESS_TIMEOUT_MS
 * in all). stderr is left to the daemon's. Returns the output or NULL with
 * `why` set.
 */
static char *run_process(const char *cmd, char *why, size_t why_size)
{
    int fds[2];
    char *buf = NULL;
    size_t len = 0;
    if (pipe(fds)) {
        snprintf(why, why_size, "pipe: %s", strerror(errno));
        return NULL;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, why_size, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return NULL;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0)
            dup2(null, 0);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    buf = malloc(ES_AWS_PROCESS_MAX_OUTPUT + 1);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int timed_out = 0, too_big = 0;
    while (buf) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left =
            ES_AWS_PROCESS_TIMEOUT_MS - ((t.tv_sec - t0.tv_sec) * 1000 +
                                         (t.tv_nsec - t0.tv_nsec) / 1000000);
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
            timed_out = 1;
            break;
        }
        if (len == ES_AWS_PROCESS_MAX_OUTPUT) {
            too_big = 1;
            break;
        }
        ssize_t r = read(fds[0], buf + len, ES_AWS_PROCESS_MAX_OUTPUT - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fds[0]);
    if (timed_out || too_big || !buf)
        kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!buf || timed_out || too_big ||
        !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        if (!buf)
            snprintf(why, why_size, "out of memory");
        else if (timed_out)
            snprintf(why, why_size, "timed out after %d ms (killed)",
                     ES_AWS_PROCESS_TIMEOUT_MS);
        else if (too_big)
            snprintf(why, why_size, "output larger than %d bytes",
                     ES_AWS_PROCESS_MAX_OUTPUT);
        else if (WIFEXITED(st))
            snprintf(why, why_size, "exited with status %d", WEXITSTATUS(st));
        else
            snprintf(why, why_size, "killed by signal %d",
                     WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        if (buf)
            memset(buf, 0, len);
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* The process's stdout, JSON "Version": 1 (the AWS CLI's contract). */
static int process_parse(const char *body, es_aws_credentials_t *out, char *why,
                         size_t why_size)
{
    cJSON *j = cJSON_Parse(body);
    int rc = -1;
    if (!cJSON_IsObject(j)) {
        snprintf(why, why_size, "output is not a JSON object");
        goto done;
    }
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "Version");
    if (!cJSON_IsNumber(ver) || ver->valuedouble != 1) {
        snprintf(why, why_size, "output: Version must be 1");
        goto done;
    }
    const char *akid = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(j, "AccessKeyId"));
    const char *secret = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(j, "SecretAccessKey"));
    const char *token = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(j, "SessionToken"));
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(j, "Expiration");
    time_t expiration = 0; /* absent: the credentials do not expire */
    if (exp && !cJSON_IsNull(exp)) {
        expiration =
            cJSON_IsString(exp) ? parse_iso8601(exp->valuestring) : (time_t)-1;
        if (expiration == (time_t)-1) {
            snprintf(why, why_size,
                     "output: Expiration must be an ISO 8601 time");
            goto done;
        }
        if (expiration <= time(NULL)) {
            snprintf(why, why_size,
                     "output: Expiration is in the past (expired "
                     "credentials)");
            goto done;
        }
    }
    if (fill_creds(out, "credential-process", akid, secret, token,
                   expiration)) {
        snprintf(why, why_size,
                 "output lacks AccessKeyId or SecretAccessKey (or one is "
                 "too long)");
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(j);
    return rc;
}

static int credential_process(const char *name, const char *cmd,
                              es_aws_credentials_t *out, notes_t *n)
{
    char why[160];
    char *body = run_process(cmd, why, sizeof(why));
    int rc = SRC_FAILED;
    if (!body) {
        note(n, "profile %s: credential_process: %s", name, why);
        return SRC_FAILED;
    }
    if (process_parse(body, out, why, sizeof(why)))
        note(n, "profile %s: credential_process: %s", name, why);
    else
        rc = SRC_OK;
    memset(body, 0, strlen(body));
    free(body);
    return rc;
}

/* ------------------------------------------------------------------ SSO */

/* ~/.aws/sso/cache/<sha1 hex of the session name or start URL>.json */
static char *sso_cache_path(const char *key)
{
    unsigned char md[20];
    unsigned int mdlen = 0;
    char hex[41], rel[128];
    if (!EVP_Digest(key, strlen(key), md, &mdlen, EVP_sha1(), NULL) ||
        mdlen != 20)
        return NULL;
    for (int i = 0; i < 20; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(rel, sizeof(rel), ".aws/sso/cache/%s.json", hex);
    return home_path(rel);
}

/* The cached access token, or NULL with a note saying what is wrong. */
static char *sso_token(const char *name, const char *key, notes_t *n)
{
    char *path = sso_cache_path(key), *body = NULL, *token = NULL;
    cJSON *j = NULL;
    if (!path || !(body = read_small_file(path, 65536))) {
        note(n,
             "profile %s: no cached SSO token %s (%s); run `aws sso login "
             "--profile %s`",
             name, path ? path : "", strerror(errno), name);
        goto done;
    }
    j = cJSON_Parse(body);
    const char *tok = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(j, "accessToken"));
    const char *exp =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "expiresAt"));
    time_t expires = exp ? parse_iso8601(exp) : (time_t)-1;
    if (!tok || !*tok || expires == (time_t)-1) {
        note(n, "profile %s: SSO token cache %s lacks accessToken/expiresAt",
             name, path);
        goto done;
    }
    if (expires <= time(NULL)) {
        note(n,
             "profile %s: the cached SSO token expired at %s; run `aws sso "
             "login --profile %s`",
             name, exp, name);
        goto done;
    }
    token = strdup(tok);
done:
    if (j) {
        cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "accessToken");
        if (cJSON_IsString(t))
            memset(t->valuestring, 0, strlen(t->valuestring));
    }
    cJSON_Delete(j);
    if (body)
        memset(body, 0, strlen(body));
    free(body);
    free(path);
    return token;
}

static int sso_parse(const char *body, es_aws_credentials_t *out)
{
    cJSON *j = cJSON_Parse(body);
    const cJSON *rc = cJSON_GetObjectItemCaseSensitive(j, "roleCredentials");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(rc, "expiration");
    int ret = -1;
    if (cJSON_IsNumber(exp) && exp->valuedouble > 0)
        ret = fill_creds(out, "sso",
                         cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                             rc, "accessKeyId")),
                         cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                             rc, "secretAccessKey")),
                         cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                             rc, "sessionToken")),
                         (time_t)(exp->valuedouble / 1000));
    cJSON_Delete(j);
    return ret;
}

static int sso_creds(es_aws_provider_t *p, const aws_files_t *f,
                     const char *name, const profile_t *pr,
                     es_aws_credentials_t *out, notes_t *n)
{
    profile_t sess = {0};
    const char *start_url = pr->sso_start_url, *region = pr->sso_region;
    const char *key = pr->sso_start_url;
    char *token = NULL, *url = NULL, *hdr = NULL, *resp = NULL;
    char *e_role = NULL, *e_acct = NULL, *base = NULL;
    char err[256];
    int rc = SRC_FAILED;

    if (pr->sso_session) {
        char sec[512];
        snprintf(sec, sizeof(sec), "sso-session %s", pr->sso_session);
        if (!f->conf || ini_read(f->conf, sec, NULL, &sess) <= 0) {
            note(n,
                 "profile %s: sso_session: no [sso-session %s] section "
                 "in the config file",
                 name, pr->sso_session);
            goto done;
        }
        start_url = sess.sso_start_url;
        region = sess.sso_region ? sess.sso_region : pr->sso_region;
        key = pr->sso_session;
    }
    static const struct {
        const char *key;
        size_t off;
    } need[] = {{"sso_account_id", offsetof(profile_t, sso_account_id)},
                {"sso_role_name", offsetof(profile_t, sso_role_name)}};
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
        if (!*(char *const *)((const char *)pr + need[i].off)) {
            note(n, "profile %s: %s: missing (needed for SSO)", name,
                 need[i].key);
            goto done;
        }
    }
    if (!start_url || !region) {
        note(n, "profile %s: %s: missing (needed for SSO)", name,
             !start_url ? "sso_start_url" : "sso_region");
        goto done;
    }
    token = sso_token(name, key, n);
    if (!token)
        goto done;
    if (env("AWS_ENDPOINT_URL_SSO"))
        base = strdup(env("AWS_ENDPOINT_URL_SSO"));
    else if (asprintf(&base, "https://portal.sso.%s.amazonaws.com", region) < 0)
        base = NULL;
    e_role = url_encode(pr->sso_role_name);
    e_acct = url_encode(pr->sso_account_id);
    if (!base || !e_role || !e_acct ||
        asprintf(&url, "%s/federation/credentials?role_name=%s&account_id=%s",
                 base, e_role, e_acct) < 0 ||
        asprintf(&hdr, "x-amz-sso_bearer_token: %s", token) < 0) {
        note(n, "profile %s: out of memory", name);
        goto done;
    }
    const char *headers[] = {hdr, "Accept: application/json", NULL};
    long status =
        http_call(p, "GET", url, headers, NULL, &resp, err, sizeof(err));
    if (status < 0) {
        note(n, "profile %s: SSO GetRoleCredentials at %s: %s", name, base,
             err);
        goto done;
    }
    if (status != 200) {
        note(n,
             "profile %s: SSO GetRoleCredentials (sso_account_id %s, "
             "sso_role_name %s) at %s answered HTTP %ld%s",
             name, pr->sso_account_id, pr->sso_role_name, base, status,
             status == 401 ? "; run `aws sso login` again" : "");
        goto done;
    }
    if (sso_parse(resp, out)) {
        note(n, "profile %s: SSO response lacks roleCredentials", name);
        goto done;
    }
    rc = SRC_OK;
done:
    if (token)
        memset(token, 0, strlen(token));
    if (hdr)
        memset(hdr, 0, strlen(hdr));
    if (resp)
        memset(resp, 0, strlen(resp));
    free(token);
    free(hdr);
    free(resp);
    free(url);
    free(base);
    free(e_role);
    free(e_acct);
    profile_clear(&sess);
    return rc;
}

/* ------------------------------------------------------------- profiles */

static int src_env(es_aws_provider_t *p, es_aws_credentials_t *out, notes_t *n);
static int src_container(es_aws_provider_t *p, es_aws_credentials_t *out,
                         notes_t *n);
static int src_imds(es_aws_provider_t *p, es_aws_credentials_t *out,
                    notes_t *n);

/* credential_source: where a role's base credentials come from instead of
 * a source_profile. */
static int credential_source(es_aws_provider_t *p, const char *name,
                             const char *v, es_aws_credentials_t *out,
                             notes_t *n)
{
    int rc = strcmp(v, "Environment") == 0           ? src_env(p, out, n)
             : strcmp(v, "EcsContainer") == 0        ? src_container(p, out, n)
             : strcmp(v, "Ec2InstanceMetadata") == 0 ? src_imds(p, out, n)
                                                     : -2;
    if (rc == -2)
        note(n,
             "profile %s: credential_source: must be Environment, "
             "EcsContainer or Ec2InstanceMetadata",
             name);
    else if (rc != SRC_OK)
        note(n, "profile %s: credential_source %s gave no credentials", name,
             v);
    return rc == SRC_OK ? SRC_OK : SRC_FAILED;
}

static int static_keys(const char *name, const profile_t *pr,
                       es_aws_credentials_t *out, notes_t *n)
{
    if (fill_creds(out, "profile", pr->akid, pr->secret, pr->token, 0)) {
        note(n,
             "profile %s: aws_access_key_id and aws_secret_access_key must "
             "both be set",
             name);
        return SRC_FAILED;
    }
    return SRC_OK;
}

/*
 * Credentials of one profile, following source_profile links (depth counts
 * the hops). Precedence as in the AWS SDKs: role_arn with source_profile or
 * credential_source, role_arn with web_identity_token_file, SSO, static
 * keys, credential_process.
 */
static int profile_resolve(es_aws_provider_t *p, const aws_files_t *f,
                           const char *name, int depth,
                           es_aws_credentials_t *out, notes_t *n)
{
    profile_t pr = {0};
    es_aws_credentials_t base;
    int rc = SRC_FAILED;
    int found = profile_load(f, name, &pr);
    memset(&base, 0, sizeof(base));
    if (found <= 0) {
        if (depth == 0)
            note(n, "profile %s: %s", name,
                 found < 0 ? "no credentials or config file"
                           : "no such profile");
        else
            note(n, "profile %s: no such profile (named by source_profile)",
                 name);
        rc = depth == 0 ? SRC_NONE : SRC_FAILED;
        goto done;
    }
    if (pr.role_arn && (pr.source_profile || pr.credential_source)) {
        if (pr.source_profile && pr.credential_source) {
            note(n,
                 "profile %s: source_profile, credential_source: set only "
                 "one",
                 name);
            goto done;
        }
        if (pr.mfa_serial) {
            note(n,
                 "profile %s: mfa_serial: roles that need an MFA code cannot "
                 "be assumed by a daemon",
                 name);
            goto done;
        }
        if (pr.credential_source) {
            if (credential_source(p, name, pr.credential_source, &base, n) !=
                SRC_OK)
                goto done;
        } else if (strcmp(pr.source_profile, name) == 0) {
            /* A profile may name itself: its own static keys. */
            if (static_keys(name, &pr, &base, n) != SRC_OK)
                goto done;
        } else if (depth + 1 >= ES_AWS_MAX_CHAIN) {
            note(n,
                 "profile %s: source_profile: chain longer than %d profiles "
                 "(a loop?)",
                 name, ES_AWS_MAX_CHAIN);
            goto done;
        } else if (profile_resolve(p, f, pr.source_profile, depth + 1, &base,
                                   n) != SRC_OK) {
            note(n, "profile %s: source_profile %s gave no credentials", name,
                 pr.source_profile);
            goto done;
        }
        rc = assume_role(p, name, &pr, &base, out, n);
    } else if (pr.role_arn && pr.token_file) {
        rc = web_identity(p, pr.token_file, pr.role_arn,
                          pr.session_name ? pr.session_name : "eventstreamd",
                          out, n);
        if (rc == SRC_OK)
            copy_field(out->source, sizeof(out->source), "profile");
    } else if (pr.sso_session || pr.sso_start_url || pr.sso_account_id ||
               pr.sso_role_name) {
        rc = sso_creds(p, f, name, &pr, out, n);
    } else if (pr.akid || pr.secret) {
        rc = static_keys(name, &pr, out, n);
    } else if (pr.process) {
        rc = credential_process(name, pr.process, out, n);
    } else if (pr.role_arn) {
        note(n,
             "profile %s: role_arn: needs source_profile, credential_source "
             "or web_identity_token_file",
             name);
    } else {
        note(n,
             "profile %s: no credentials in it (static keys, role_arn, "
             "sso_*, credential_process)",
             name);
    }
done:
    memset(&base, 0, sizeof(base));
    profile_clear(&pr);
    return rc;
}

static int src_profile(es_aws_provider_t *p, es_aws_credentials_t *out,
                       notes_t *n)
{
    const char *profile = p->profile           ? p->profile
                          : env("AWS_PROFILE") ? env("AWS_PROFILE")
                          : env("AWS_DEFAULT_PROFILE")
                              ? env("AWS_DEFAULT_PROFILE")
                              : "default";
    aws_files_t f;
    f.cred = env("AWS_SHARED_CREDENTIALS_FILE")
                 ? strdup(env("AWS_SHARED_CREDENTIALS_FILE"))
                 : home_path(".aws/credentials");
    f.conf = env("AWS_CONFIG_FILE") ? strdup(env("AWS_CONFIG_FILE"))
                                    : home_path(".aws/config");
    int rc = profile_resolve(p, &f, profile, 0, out, n);
    free(f.cred);
    free(f.conf);
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
