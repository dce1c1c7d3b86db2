/*
 * The shared credentials/config files' profiles (see es_aws_credentials.h):
 * role chaining through source_profile or credential_source (sts:AssumeRole),
 * role_arn + web_identity_token_file, SSO (the `aws sso login` token cache and
 * the portal's GetRoleCredentials), static keys and credential_process.
 */
#include "aws_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

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

/*
 * Reads the section named `sec` (or `alt`, when not NULL) from an INI file;
 * keys already set are kept (the first file read wins, key by key). Returns
 * 1 when the section exists, 0 when not, -1 when the file cannot be read.
 */
static int ini_read(const char *path, const char *sec, const char *alt,
                    profile_t *pr)
{
    FILE *f = fopen(path, "r");
    char *line = NULL; /* whole lines: a session token can be long */
    size_t cap = 0;
    int in = 0, found = 0;
    if (!f)
        return -1;
    while (getline(&line, &cap, f) >= 0) {
        char *s = es_aws_trim(line);
        if (*s == '#' || *s == ';' || !*s)
            continue;
        if (*s == '[') {
            char *e = strchr(s, ']');
            if (!e)
                continue;
            *e = '\0';
            char *name = es_aws_trim(s + 1);
            /* "[profile  x]" and "[profile x]" are the same section */
            if (strncmp(name, "profile ", 8) == 0 && strcmp(sec, name) != 0 &&
                strncmp(sec, "profile ", 8) == 0)
                in = strcmp(es_aws_trim(name + 8), sec + 8) == 0;
            else
                in = strcmp(name, sec) == 0 || (alt && strcmp(name, alt) == 0);
            found |= in;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!in || !eq)
            continue;
        *eq = '\0';
        char *k = es_aws_trim(s), *v = es_aws_trim(eq + 1);
        for (size_t i = 0; i < sizeof(profile_keys) / sizeof(profile_keys[0]);
             i++) {
            char **slot = (char **)((char *)pr + profile_keys[i].offset);
            if (strcmp(k, profile_keys[i].name) == 0 && !*slot)
                *slot = strdup(v);
        }
    }
    if (line)
        memset(line, 0, cap); /* it held secrets */
    free(line);
    fclose(f);
    return found;
}

static char *home_path(const char *rel)
{
    const char *home = es_aws_env("HOME");
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
    return pr->region                         ? pr->region
           : es_aws_env("AWS_REGION")         ? es_aws_env("AWS_REGION")
           : es_aws_env("AWS_DEFAULT_REGION") ? es_aws_env("AWS_DEFAULT_REGION")
                                              : NULL;
}

/* ------------------------------------------------------ sts:AssumeRole */

static int assume_role(es_aws_provider_t *p, const char *name,
                       const profile_t *pr, const es_aws_credentials_t *src,
                       es_aws_credentials_t *out, notes_t *n)
{
    const char *region = profile_region(pr);
    char *endpoint = NULL, *body = NULL, *resp = NULL, *tok_hdr = NULL;
    char *e_role = es_aws_url_encode(pr->role_arn);
    char *e_sess =
        es_aws_url_encode(pr->session_name ? pr->session_name : "eventstreamd");
    char *e_ext = pr->external_id ? es_aws_url_encode(pr->external_id) : NULL;
    char sigv4[96], err[256], dur[32] = "";
    const char *headers[4] = {"Content-Type: application/x-www-form-urlencoded",
                              "Accept: application/xml", NULL, NULL};
    int rc = SRC_FAILED;

    if (pr->duration) {
        char *end;
        long d = strtol(pr->duration, &end, 10);
        if (*end || d < 900 || d > 43200) {
            es_aws_note(
                n,
                "profile %s: duration_seconds: must be an integer from 900 "
                "to 43200",
                name);
            goto done;
        }
        snprintf(dur, sizeof(dur), "&DurationSeconds=%ld", d);
    }
    /* The global endpoint signs as us-east-1; a profile with a region
     * talks to that region's STS. */
    if (es_aws_sts_endpoint(p))
        endpoint = strdup(es_aws_sts_endpoint(p));
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
        es_aws_note(n, "profile %s: out of memory", name);
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
    long status = es_aws_http_call_signed(p, "POST", endpoint, headers, body,
                                          src, sigv4, &resp, err, sizeof(err));
    if (status < 0) {
        es_aws_note(n, "profile %s: AssumeRole at %s: %s", name, endpoint, err);
        goto done;
    }
    if (status != 200) {
        char *code = es_aws_xml_value(resp, "Code");
        char *msg = es_aws_xml_value(resp, "Message");
        es_aws_note(
            n,
            "profile %s: role_arn: AssumeRole of %.200s (credentials from "
            "%s) at %s answered HTTP %ld%s%.64s%s%.160s%s",
            name, pr->role_arn, src->source, endpoint, status, code ? " " : "",
            code ? code : "", msg ? " (" : "", msg ? msg : "", msg ? ")" : "");
        free(code);
        free(msg);
        goto done;
    }
    if (es_aws_sts_parse(resp, "assume-role", out)) {
        es_aws_note(n, "profile %s: AssumeRole response lacks credentials",
                    name);
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
        /* The command gets the signals a shell would: the daemon blocks
         * SIGHUP (taken by a thread) and ignores SIGPIPE, and both would
         * be inherited across exec. */
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigset_t none;
        sigemptyset(&none);
        sigaction(SIGPIPE, &dfl, NULL);
        sigprocmask(SIG_SETMASK, &none, NULL);
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
int es_aws_process_parse(const char *body, es_aws_credentials_t *out, char *why,
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
        expiration = cJSON_IsString(exp)
                         ? es_aws_parse_iso8601(exp->valuestring)
                         : (time_t)-1;
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
    if (es_aws_fill_creds(out, "credential-process", akid, secret, token,
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
        es_aws_note(n, "profile %s: credential_process: %s", name, why);
        return SRC_FAILED;
    }
    if (es_aws_process_parse(body, out, why, sizeof(why)))
        es_aws_note(n, "profile %s: credential_process: %s", name, why);
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
    if (!path || !(body = es_aws_read_small_file(path, 65536))) {
        es_aws_note(
            n,
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
    time_t expires = exp ? es_aws_parse_iso8601(exp) : (time_t)-1;
    if (!tok || !*tok || expires == (time_t)-1) {
        es_aws_note(
            n, "profile %s: SSO token cache %s lacks accessToken/expiresAt",
            name, path);
        goto done;
    }
    if (expires <= time(NULL)) {
        es_aws_note(
            n,
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

int es_aws_sso_parse(const char *body, es_aws_credentials_t *out)
{
    cJSON *j = cJSON_Parse(body);
    const cJSON *rc = cJSON_GetObjectItemCaseSensitive(j, "roleCredentials");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(rc, "expiration");
    int ret = -1;
    /* milliseconds; bounded (year 33658) before the cast to time_t */
    if (cJSON_IsNumber(exp) && exp->valuedouble > 0 && exp->valuedouble < 1e15)
        ret = es_aws_fill_creds(
            out, "sso",
            cJSON_GetStringValue(
                cJSON_GetObjectItemCaseSensitive(rc, "accessKeyId")),
            cJSON_GetStringValue(
                cJSON_GetObjectItemCaseSensitive(rc, "secretAccessKey")),
            cJSON_GetStringValue(
                cJSON_GetObjectItemCaseSensitive(rc, "sessionToken")),
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
            es_aws_note(n,
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
            es_aws_note(n, "profile %s: %s: missing (needed for SSO)", name,
                        need[i].key);
            goto done;
        }
    }
    if (!start_url || !region) {
        es_aws_note(n, "profile %s: %s: missing (needed for SSO)", name,
                    !start_url ? "sso_start_url" : "sso_region");
        goto done;
    }
    token = sso_token(name, key, n);
    if (!token)
        goto done;
    if (es_aws_env("AWS_ENDPOINT_URL_SSO"))
        base = strdup(es_aws_env("AWS_ENDPOINT_URL_SSO"));
    else if (asprintf(&base, "https://portal.sso.%s.amazonaws.com", region) < 0)
        base = NULL;
    e_role = es_aws_url_encode(pr->sso_role_name);
    e_acct = es_aws_url_encode(pr->sso_account_id);
    if (!base || !e_role || !e_acct ||
        asprintf(&url, "%s/federation/credentials?role_name=%s&account_id=%s",
                 base, e_role, e_acct) < 0 ||
        asprintf(&hdr, "x-amz-sso_bearer_token: %s", token) < 0) {
        es_aws_note(n, "profile %s: out of memory", name);
        goto done;
    }
    const char *headers[] = {hdr, "Accept: application/json", NULL};
    long status =
        es_aws_http_call(p, "GET", url, headers, NULL, &resp, err, sizeof(err));
    if (status < 0) {
        es_aws_note(n, "profile %s: SSO GetRoleCredentials at %s: %s", name,
                    base, err);
        goto done;
    }
    if (status != 200) {
        es_aws_note(n,
                    "profile %s: SSO GetRoleCredentials (sso_account_id %s, "
                    "sso_role_name %s) at %s answered HTTP %ld%s",
                    name, pr->sso_account_id, pr->sso_role_name, base, status,
                    status == 401 ? "; run `aws sso login` again" : "");
        goto done;
    }
    if (es_aws_sso_parse(resp, out)) {
        es_aws_note(n, "profile %s: SSO response lacks roleCredentials", name);
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

/* credential_source: where a role's base credentials come from instead of
 * a source_profile. */
static int credential_source(es_aws_provider_t *p, const char *name,
                             const char *v, es_aws_credentials_t *out,
                             notes_t *n)
{
    int rc = strcmp(v, "Environment") == 0    ? es_aws_src_env(p, out, n)
             : strcmp(v, "EcsContainer") == 0 ? es_aws_src_container(p, out, n)
             : strcmp(v, "Ec2InstanceMetadata") == 0
                 ? es_aws_src_imds(p, out, n)
                 : -2;
    if (rc == -2)
        es_aws_note(n,
                    "profile %s: credential_source: must be Environment, "
                    "EcsContainer or Ec2InstanceMetadata",
                    name);
    else if (rc != SRC_OK)
        es_aws_note(n, "profile %s: credential_source %s gave no credentials",
                    name, v);
    return rc == SRC_OK ? SRC_OK : SRC_FAILED;
}

static int static_keys(const char *name, const profile_t *pr,
                       es_aws_credentials_t *out, notes_t *n)
{
    if (es_aws_fill_creds(out, "profile", pr->akid, pr->secret, pr->token, 0)) {
        es_aws_note(
            n,
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
            es_aws_note(n, "profile %s: %s", name,
                        found < 0 ? "no credentials or config file"
                                  : "no such profile");
        else
            es_aws_note(n,
                        "profile %s: no such profile (named by source_profile)",
                        name);
        rc = depth == 0 ? SRC_NONE : SRC_FAILED;
        goto done;
    }
    if (pr.role_arn && (pr.source_profile || pr.credential_source)) {
        if (pr.source_profile && pr.credential_source) {
            es_aws_note(
                n,
                "profile %s: source_profile, credential_source: set only "
                "one",
                name);
            goto done;
        }
        if (pr.mfa_serial) {
            es_aws_note(
                n,
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
            es_aws_note(
                n,
                "profile %s: source_profile: chain longer than %d profiles "
                "(a loop?)",
                name, ES_AWS_MAX_CHAIN);
            goto done;
        } else if (profile_resolve(p, f, pr.source_profile, depth + 1, &base,
                                   n) != SRC_OK) {
            es_aws_note(n, "profile %s: source_profile %s gave no credentials",
                        name, pr.source_profile);
            goto done;
        }
        rc = assume_role(p, name, &pr, &base, out, n);
    } else if (pr.role_arn && pr.token_file) {
        rc = es_aws_web_identity(
            p, pr.token_file, pr.role_arn,
            pr.session_name ? pr.session_name : "eventstreamd", out, n);
        if (rc == SRC_OK)
            es_aws_copy_field(out->source, sizeof(out->source), "profile");
    } else if (pr.sso_session || pr.sso_start_url || pr.sso_account_id ||
               pr.sso_role_name) {
        rc = sso_creds(p, f, name, &pr, out, n);
    } else if (pr.akid || pr.secret) {
        rc = static_keys(name, &pr, out, n);
    } else if (pr.process) {
        rc = credential_process(name, pr.process, out, n);
    } else if (pr.role_arn) {
        es_aws_note(
            n,
            "profile %s: role_arn: needs source_profile, credential_source "
            "or web_identity_token_file",
            name);
    } else {
        es_aws_note(n,
                    "profile %s: no credentials in it (static keys, role_arn, "
                    "sso_*, credential_process)",
                    name);
    }
done:
    memset(&base, 0, sizeof(base));
    profile_clear(&pr);
    return rc;
}

int es_aws_src_profile(es_aws_provider_t *p, es_aws_credentials_t *out,
                       notes_t *n)
{
    const char *profile =
        p->profile                          ? p->profile
        : es_aws_env("AWS_PROFILE")         ? es_aws_env("AWS_PROFILE")
        : es_aws_env("AWS_DEFAULT_PROFILE") ? es_aws_env("AWS_DEFAULT_PROFILE")
                                            : "default";
    aws_files_t f;
    f.cred = es_aws_env("AWS_SHARED_CREDENTIALS_FILE")
                 ? strdup(es_aws_env("AWS_SHARED_CREDENTIALS_FILE"))
                 : home_path(".aws/credentials");
    f.conf = es_aws_env("AWS_CONFIG_FILE")
                 ? strdup(es_aws_env("AWS_CONFIG_FILE"))
                 : home_path(".aws/config");
    int rc = profile_resolve(p, &f, profile, 0, out, n);
    free(f.cred);
    free(f.conf);
    return rc;
}
