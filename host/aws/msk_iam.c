/*
 * Amazon MSK IAM SASL/OAUTHBEARER tokens (see msk_iam.h for the layers).
 */
#include "msk_iam.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

/* The Go signer sends "<lib>/<version>/<runtime>"; ours names librdkafka. */
#define ES_MSK_IAM_USER_AGENT_PREFIX "eventstream/librdkafka-"
#define ES_MSK_IAM_PRINCIPAL "aws_msk_iam"
/* sasl.oauthbearer.config value carrying the signer id and the region. */
#define ES_MSK_IAM_CONF_TAG "es_msk_iam"

static const char EMPTY_SHA256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/* ---- growable string ----------------------------------------------------- */

typedef struct sb_s {
    char *s;
    size_t len, cap;
    int oom;
} sb_t;

static void sb_reserve(sb_t *b, size_t extra)
{
    if (b->oom || b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = 1;
        return;
    }
    b->s = s;
    b->cap = cap;
}

static void sb_putn(sb_t *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_put(sb_t *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

static int is_unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

static void sb_put_enc(sb_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (is_unreserved(c) && c < 0x80) {
            sb_putn(b, (const char *)&c, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            sb_putn(b, e, 3);
        }
    }
}

/* ---- SigV4 --------------------------------------------------------------- */

long es_sigv4_uri_encode(const char *in, char *out, size_t out_size)
{
    sb_t b = {0};
    long n = -1;
    sb_put_enc(&b, in);
    if (!b.oom && b.len < out_size) {
        memcpy(out, b.s ? b.s : "", b.len + 1);
        n = (long)b.len;
    }
    free(b.s);
    return n;
}

typedef struct enc_pair_s {
    char *name;
    char *value;
} enc_pair_t;

static int enc_pair_cmp(const void *a, const void *b)
{
    const enc_pair_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static char *enc_dup(const char *s)
{
    sb_t b = {0};
    sb_put_enc(&b, s ? s : "");
    sb_put(&b, "");
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* Appends the canonical query of params to b. */
static void sb_put_canonical_query(sb_t *b, const es_sigv4_param_t *params,
                                   size_t n)
{
    enc_pair_t *pairs = calloc(n ? n : 1, sizeof(*pairs));
    if (!pairs) {
        b->oom = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        pairs[i].name = enc_dup(params[i].name);
        pairs[i].value = enc_dup(params[i].value);
        if (!pairs[i].name || !pairs[i].value)
            b->oom = 1;
    }
    if (!b->oom) {
        qsort(pairs, n, sizeof(*pairs), enc_pair_cmp);
        for (size_t i = 0; i < n; i++) {
            if (i)
                sb_put(b, "&");
            sb_put(b, pairs[i].name);
            sb_put(b, "=");
            sb_put(b, pairs[i].value);
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(pairs[i].name);
        free(pairs[i].value);
    }
    free(pairs);
}

long es_sigv4_canonical_query(const es_sigv4_param_t *params, size_t n,
                              char *out, size_t out_size)
{
    sb_t b = {0};
    long len = -1;
    sb_put(&b, "");
    sb_put_canonical_query(&b, params, n);
    if (!b.oom && b.len < out_size) {
        memcpy(out, b.s, b.len + 1);
        len = (long)b.len;
    }
    free(b.s);
    return len;
}

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) || md_len != 32)
        return -1;
    to_hex(md, 32, out);
    return 0;
}

static int hmac256(const unsigned char *key, size_t key_len, const char *msg,
                   unsigned char out[32])
{
    unsigned int out_len = 0;
    if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg,
              strlen(msg), out, &out_len) ||
        out_len != 32)
        return -1;
    return 0;
}

int es_sigv4_sign(const es_sigv4_request_t *req, const char *secret,
                  const char *amz_date, const char *region, const char *service,
                  char sig_hex[65], char creq_hash_hex[65])
{
    sb_t creq = {0}, sts = {0};
    char hash[65], date[9], *kinit = NULL;
    unsigned char k[32];
    int rc = -1;

    if (strlen(amz_date) != 16)
        goto done;
    memcpy(date, amz_date, 8);
    date[8] = '\0';

    sb_put(&creq, req->method);
    sb_put(&creq, "\n");
    sb_put(&creq, req->canonical_uri);
    sb_put(&creq, "\n");
    sb_put(&creq, req->canonical_query);
    sb_put(&creq, "\n");
    sb_put(&creq, req->canonical_headers);
    sb_put(&creq, "\n");
    sb_put(&creq, req->signed_headers);
    sb_put(&creq, "\n");
    sb_put(&creq, req->payload_hash);
    if (creq.oom || sha256_hex(creq.s, creq.len, hash) != 0)
        goto done;
    if (creq_hash_hex)
        memcpy(creq_hash_hex, hash, 65);

    sb_put(&sts, "AWS4-HMAC-SHA256\n");
    sb_put(&sts, amz_date);
    sb_put(&sts, "\n");
    sb_put(&sts, date);
    sb_put(&sts, "/");
    sb_put(&sts, region);
    sb_put(&sts, "/");
    sb_put(&sts, service);
    sb_put(&sts, "/aws4_request\n");
    sb_put(&sts, hash);
    if (sts.oom)
        goto done;

    /* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region),
     * service), "aws4_request") */
    size_t kinit_len = 4 + strlen(secret);
    kinit = malloc(kinit_len + 1);
    if (!kinit)
        goto done;
    memcpy(kinit, "AWS4", 4);
    memcpy(kinit + 4, secret, kinit_len - 4 + 1);
    if (hmac256((unsigned char *)kinit, kinit_len, date, k) ||
        hmac256(k, 32, region, k) || hmac256(k, 32, service, k) ||
        hmac256(k, 32, "aws4_request", k) || hmac256(k, 32, sts.s, k))
        goto done;
    to_hex(k, 32, sig_hex);
    rc = 0;
done:
    if (kinit) {
        OPENSSL_cleanse(kinit, kinit_len);
        free(kinit);
    }
    OPENSSL_cleanse(k, sizeof(k));
    free(creq.s);
    free(sts.s);
    return rc;
}

static void amz_dates(time_t t, char amz_date[17], char date[9])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(amz_date, 17, "%Y%m%dT%H%M%SZ", &tm);
    memcpy(date, amz_date, 8);
    date[8] = '\0';
}

static void fmt_err(char *errstr, size_t errstr_size, const char *fmt, ...)
{
    va_list ap;
    if (!errstr || !errstr_size)
        return;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
}

char *es_sigv4_presign_query(const es_sigv4_presign_t *p, char *errstr,
                             size_t errstr_size)
{
    sb_t cred = {0}, host = {0}, q = {0};
    char amz_date[17], date[9], expires[24], sig[65];
    es_sigv4_param_t *all = NULL;
    char *out = NULL;
    size_t n = 0;
    int has_token = p->session_token && *p->session_token;

    if (!p->access_key_id || !*p->access_key_id || !p->secret_access_key ||
        !*p->secret_access_key) {
        fmt_err(errstr, errstr_size, "empty AWS access key id or secret");
        goto done;
    }
    amz_dates(p->sign_time, amz_date, date);
    snprintf(expires, sizeof(expires), "%ld", p->expires);
    sb_put(&cred, p->access_key_id);
    sb_put(&cred, "/");
    sb_put(&cred, date);
    sb_put(&cred, "/");
    sb_put(&cred, p->region);
    sb_put(&cred, "/");
    sb_put(&cred, p->service);
    sb_put(&cred, "/aws4_request");

    all = calloc(p->n_params + 6, sizeof(*all));
    if (!all || cred.oom)
        goto oom;
    for (size_t i = 0; i < p->n_params; i++)
        all[n++] = p->params[i];
    all[n++] = (es_sigv4_param_t){"X-Amz-Algorithm", "AWS4-HMAC-SHA256"};
    all[n++] = (es_sigv4_param_t){"X-Amz-Credential", cred.s};
    all[n++] = (es_sigv4_param_t){"X-Amz-Date", amz_date};
    all[n++] = (es_sigv4_param_t){"X-Amz-Expires", expires};
    if (has_token)
        all[n++] = (es_sigv4_param_t){"X-Amz-Security-Token", p->session_token};
    all[n++] = (es_sigv4_param_t){"X-Amz-SignedHeaders", "host"};
    sb_put(&q, "");
    sb_put_canonical_query(&q, all, n);

    sb_put(&host, "host:");
    sb_put(&host, p->host);
    sb_put(&host, "\n");
    if (q.oom || host.oom)
        goto oom;

    es_sigv4_request_t req = {
        .method = p->method,
        .canonical_uri = p->canonical_uri,
        .canonical_query = q.s,
        .canonical_headers = host.s,
        .signed_headers = "host",
        .payload_hash = EMPTY_SHA256,
    };
    if (es_sigv4_sign(&req, p->secret_access_key, amz_date, p->region,
                      p->service, sig, NULL) != 0) {
        fmt_err(errstr, errstr_size, "SigV4 signing failed (libcrypto)");
        goto done;
    }
    sb_put(&q, "&X-Amz-Signature=");
    sb_put(&q, sig);
    if (q.oom)
        goto oom;
    out = q.s;
    q.s = NULL;
    goto done;
oom:
    fmt_err(errstr, errstr_size, "out of memory");
done:
    free(all);
    free(cred.s);
    free(host.s);
    free(q.s);
    return out;
}

/* ---- MSK IAM token --------------------------------------------------------
 */

int es_msk_iam_region_valid(const char *region)
{
    /* ll(-word)+-N: us-east-1, ap-south-1, us-gov-west-1, eu-central-2 */
    size_t len = region ? strlen(region) : 0;
    int dashes = 0;
    if (len < 6 || len >= 32 || !islower((unsigned char)region[0]))
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)region[i];
        if (c == '-') {
            if (i == 0 || region[i - 1] == '-')
                return 0;
            dashes++;
        } else if (!islower(c) && !isdigit(c)) {
            return 0;
        }
    }
    const char *last = strrchr(region, '-');
    if (dashes < 2 || !last[1])
        return 0;
    for (const char *c = last + 1; *c; c++)
        if (!isdigit((unsigned char)*c))
            return 0;
    return 1;
}

int es_msk_iam_region_from_brokers(const char *brokers, char *region,
                                   size_t region_size)
{
    char host[256];
    const char *s = brokers ? brokers : "";
    size_t n;

    while (*s == ' ' || *s == '\t')
        s++;
    /* optional "SASL_SSL://" style prefix */
    const char *scheme = strstr(s, "://");
    if (scheme && scheme < s + strcspn(s, ","))
        s = scheme + 3;
    n = strcspn(s, ",: \t");
    if (n == 0 || n >= sizeof(host))
        return -1;
    for (size_t i = 0; i < n; i++)
        host[i] = (char)tolower((unsigned char)s[i]);
    host[n] = '\0';
    while (n && host[n - 1] == '.')
        host[--n] = '\0';

    /* the label right before "amazonaws.com" (or "amazonaws.com.cn") */
    char *aws = strstr(host, ".amazonaws.com");
    if (!aws || (aws[14] && strcmp(aws + 14, ".cn")))
        return -1;
    *aws = '\0';
    char *label = strrchr(host, '.');
    label = label ? label + 1 : host;
    if (!es_msk_iam_region_valid(label) || strlen(label) >= region_size)
        return -1;
    strcpy(region, label);
    return 0;
}

void es_msk_iam_token_clear(es_msk_iam_token_t *token)
{
    if (!token)
        return;
    free(token->value);
    token->value = NULL;
    token->lifetime_ms = 0;
}

/* base64url without padding (RFC 4648 section 5), via libcrypto. */
static char *base64url(const char *in, size_t len)
{
    size_t cap = 4 * ((len + 2) / 3) + 1;
    unsigned char *out = malloc(cap);
    if (!out)
        return NULL;
    int n = EVP_EncodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0) {
        free(out);
        return NULL;
    }
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (int i = 0; i < n; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    return (char *)out;
}

int es_msk_iam_token_build(const es_aws_credentials_t *creds,
                           const char *region, time_t sign_time,
                           const char *user_agent, es_msk_iam_token_t *out,
                           char *errstr, size_t errstr_size)
{
    sb_t host = {0}, url = {0};
    char *query = NULL;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (!es_msk_iam_region_valid(region)) {
        fmt_err(errstr, errstr_size,
                "MSK IAM: \"%s\" is not an AWS region name",
                region ? region : "");
        goto done;
    }
    if (creds->expiration && creds->expiration <= sign_time) {
        fmt_err(errstr, errstr_size,
                "MSK IAM: the AWS credentials expired %lld s ago",
                (long long)(sign_time - creds->expiration));
        goto done;
    }
    sb_put(&host, "kafka.");
    sb_put(&host, region);
    sb_put(&host, ".amazonaws.com");
    if (host.oom)
        goto oom;

    es_sigv4_param_t action = {"Action", ES_MSK_IAM_ACTION};
    es_sigv4_presign_t p = {
        .method = "GET",
        .host = host.s,
        .canonical_uri = "/",
        .params = &action,
        .n_params = 1,
        .access_key_id = creds->access_key_id,
        .secret_access_key = creds->secret_access_key,
        .session_token = creds->session_token,
        .region = region,
        .service = ES_MSK_IAM_SERVICE,
        .sign_time = sign_time,
        .expires = ES_MSK_IAM_EXPIRES_S,
    };
    char perr[256];
    query = es_sigv4_presign_query(&p, perr, sizeof(perr));
    if (!query) {
        fmt_err(errstr, errstr_size, "MSK IAM: %s", perr);
        goto done;
    }

    /* Added after signing, as AWS's signers do: the broker ignores it. */
    sb_put(&url, "https://");
    sb_put(&url, host.s);
    sb_put(&url, "/?");
    sb_put(&url, query);
    sb_put(&url, "&User-Agent=");
    if (user_agent) {
        sb_put_enc(&url, user_agent);
    } else {
        sb_put_enc(&url, ES_MSK_IAM_USER_AGENT_PREFIX);
        sb_put_enc(&url, rd_kafka_version_str());
    }
    if (url.oom)
        goto oom;
    out->value = base64url(url.s, url.len);
    if (!out->value)
        goto oom;

    int64_t until = (int64_t)sign_time + ES_MSK_IAM_EXPIRES_S;
    if (creds->expiration && (int64_t)creds->expiration < until)
        until = (int64_t)creds->expiration;
    out->lifetime_ms = until * 1000;
    rc = 0;
    goto done;
oom:
    fmt_err(errstr, errstr_size, "MSK IAM: out of memory");
done:
    if (query) {
        OPENSSL_cleanse(query, strlen(query));
        free(query);
    }
    if (url.s)
        OPENSSL_cleanse(url.s, url.len);
    free(url.s);
    free(host.s);
    return rc;
}

/* ---- signer registry ------------------------------------------------------
 */

/*
 * librdkafka passes the refresh callback only the rk, the conf's opaque
 * (which belongs to the daemon) and the sasl.oauthbearer.config string. The
 * string carries the signer's id; ids are looked up here so that a stale id
 * fails cleanly instead of dereferencing a freed signer.
 */
struct es_msk_iam_s {
    uint64_t id;
    es_aws_provider_t *provider;
    uint64_t tokens, failures;
    int users; /* refreshes in progress */
    struct es_msk_iam_s *next;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reg_cond = PTHREAD_COND_INITIALIZER;
static es_msk_iam_t *reg_head;
static uint64_t reg_next_id = 1;

es_msk_iam_t *es_msk_iam_new(const es_aws_provider_opts_t *popts, char *errstr,
                             size_t errstr_size)
{
    es_msk_iam_t *msk = calloc(1, sizeof(*msk));
    char perr[512];
    if (!msk) {
        fmt_err(errstr, errstr_size, "MSK IAM: out of memory");
        return NULL;
    }
    msk->provider = es_aws_provider_new(popts, perr, sizeof(perr));
    if (!msk->provider) {
        fmt_err(errstr, errstr_size, "MSK IAM: AWS credentials: %s", perr);
        free(msk);
        return NULL;
    }
    pthread_mutex_lock(&reg_lock);
    msk->id = reg_next_id++;
    msk->next = reg_head;
    reg_head = msk;
    pthread_mutex_unlock(&reg_lock);
    return msk;
}

void es_msk_iam_destroy(es_msk_iam_t *msk)
{
    if (!msk)
        return;
    pthread_mutex_lock(&reg_lock);
    for (es_msk_iam_t **pp = &reg_head; *pp; pp = &(*pp)->next) {
        if (*pp == msk) {
            *pp = msk->next;
            break;
        }
    }
    while (msk->users > 0)
        pthread_cond_wait(&reg_cond, &reg_lock);
    pthread_mutex_unlock(&reg_lock);
    es_aws_provider_destroy(msk->provider);
    free(msk);
}

void es_msk_iam_stats(es_msk_iam_t *msk, uint64_t *tokens, uint64_t *failures)
{
    pthread_mutex_lock(&reg_lock);
    if (tokens)
        *tokens = msk->tokens;
    if (failures)
        *failures = msk->failures;
    pthread_mutex_unlock(&reg_lock);
}

static es_msk_iam_t *reg_acquire(uint64_t id)
{
    es_msk_iam_t *msk;
    pthread_mutex_lock(&reg_lock);
    for (msk = reg_head; msk && msk->id != id; msk = msk->next)
        ;
    if (msk)
        msk->users++;
    pthread_mutex_unlock(&reg_lock);
    return msk;
}

typedef enum { COUNT_NONE, COUNT_TOKEN, COUNT_FAILURE } count_t;

static void reg_release(es_msk_iam_t *msk, count_t count)
{
    pthread_mutex_lock(&reg_lock);
    if (count == COUNT_TOKEN)
        msk->tokens++;
    else if (count == COUNT_FAILURE)
        msk->failures++;
    if (--msk->users == 0)
        pthread_cond_broadcast(&reg_cond);
    pthread_mutex_unlock(&reg_lock);
}

/* ---- librdkafka wiring ----------------------------------------------------
 */

int es_msk_iam_opts_set(es_msk_iam_opts_t *opts, const char *key,
                        const char *value, char *errstr, size_t errstr_size)
{
    if (!strcmp(key, "sasl.oauthbearer.method")) {
        if (strcasecmp(value, "aws_msk_iam"))
            return 0; /* librdkafka's own "default" / "oidc" */
        opts->enabled = 1;
        return 1;
    }
    if (!strcmp(key, "aws_msk_iam")) {
        if (!strcasecmp(value, "true") || !strcmp(value, "1")) {
            opts->enabled = 1;
        } else if (!strcasecmp(value, "false") || !strcmp(value, "0")) {
            opts->enabled = 0;
        } else {
            fmt_err(errstr, errstr_size,
                    "aws_msk_iam: expected true or false, got \"%s\"", value);
            return -1;
        }
        return 1;
    }
    if (!strcmp(key, "aws_msk_iam.region")) {
        if (!es_msk_iam_region_valid(value)) {
            fmt_err(errstr, errstr_size,
                    "aws_msk_iam.region: \"%s\" is not an AWS region name",
                    value);
            return -1;
        }
        snprintf(opts->region, sizeof(opts->region), "%s", value);
        return 1;
    }
    if (!strncmp(key, "aws_msk_iam.", 12)) {
        fmt_err(errstr, errstr_size,
                "%s: unknown key (known: aws_msk_iam, aws_msk_iam.region)",
                key);
        return -1;
    }
    return 0;
}

static int conf_str(const rd_kafka_conf_t *conf, const char *name, char *out,
                    size_t out_size)
{
    size_t size = out_size;
    if (rd_kafka_conf_get(conf, name, out, &size) != RD_KAFKA_CONF_OK) {
        if (out_size)
            out[0] = '\0';
        return -1;
    }
    return 0;
}

/* Parses "es_msk_iam id=<n> region=<r>" from sasl.oauthbearer.config. */
static int parse_conf_tag(const char *s, uint64_t *id, char *region,
                          size_t region_size)
{
    char r[64];
    unsigned long long n;
    if (!s || sscanf(s, ES_MSK_IAM_CONF_TAG " id=%llu region=%63s", &n, r) != 2)
        return -1;
    if (strlen(r) >= region_size)
        return -1;
    *id = n;
    strcpy(region, r);
    return 0;
}

/* Credentials from the chain, then a token signed now. */
static int issue_token(const char *conf_tag, es_msk_iam_token_t *tok,
                       es_msk_iam_t **msk_out, char *errstr, size_t errstr_size)
{
    es_aws_credentials_t creds;
    char region[64], perr[1024];
    uint64_t id;
    int rc = -1;

    *msk_out = NULL;
    if (parse_conf_tag(conf_tag, &id, region, sizeof(region)) != 0) {
        fmt_err(errstr, errstr_size,
                "MSK IAM: sasl.oauthbearer.config was not set by "
                "es_msk_iam_configure()");
        return -1;
    }
    es_msk_iam_t *msk = reg_acquire(id);
    if (!msk) {
        fmt_err(errstr, errstr_size,
                "MSK IAM: the signer of this client was destroyed");
        return -1;
    }
    *msk_out = msk;
    memset(&creds, 0, sizeof(creds));
    if (es_aws_provider_get(msk->provider, &creds, perr, sizeof(perr)) != 0) {
        fmt_err(errstr, errstr_size, "MSK IAM: %s", perr);
        goto done;
    }
    rc = es_msk_iam_token_build(&creds, region, time(NULL), NULL, tok, errstr,
                                errstr_size);
done:
    OPENSSL_cleanse(&creds, sizeof(creds));
    return rc;
}

static void refresh_cb(rd_kafka_t *rk, const char *oauthbearer_config,
                       void *opaque)
{
    es_msk_iam_token_t tok = {0};
    es_msk_iam_t *msk = NULL;
    char errstr[1024];
    int ok = 0;

    (void)opaque;
    if (issue_token(oauthbearer_config, &tok, &msk, errstr, sizeof(errstr)) ==
        0) {
        rd_kafka_resp_err_t err = rd_kafka_oauthbearer_set_token(
            rk, tok.value, tok.lifetime_ms, ES_MSK_IAM_PRINCIPAL, NULL, 0,
            errstr, sizeof(errstr));
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            ok = 1;
    }
    if (!ok)
        rd_kafka_oauthbearer_set_token_failure(rk, errstr);
    if (msk)
        reg_release(msk, ok ? COUNT_TOKEN : COUNT_FAILURE);
    if (tok.value)
        OPENSSL_cleanse(tok.value, strlen(tok.value));
    es_msk_iam_token_clear(&tok);
}

static int resolve_region(const rd_kafka_conf_t *conf,
                          const es_msk_iam_opts_t *opts, char *region,
                          size_t region_size, char *errstr, size_t errstr_size)
{
    char brokers[2048];
    const char *env;

    if (opts->region[0]) {
        snprintf(region, region_size, "%s", opts->region);
        return 0;
    }
    conf_str(conf, "bootstrap.servers", brokers, sizeof(brokers));
    if (es_msk_iam_region_from_brokers(brokers, region, region_size) == 0)
        return 0;
    if (((env = getenv("AWS_REGION")) && *env) ||
        ((env = getenv("AWS_DEFAULT_REGION")) && *env)) {
        if (!es_msk_iam_region_valid(env)) {
            fmt_err(errstr, errstr_size,
                    "MSK IAM: region \"%s\" from the environment is not an "
                    "AWS region name",
                    env);
            return -1;
        }
        snprintf(region, region_size, "%s", env);
        return 0;
    }
    fmt_err(errstr, errstr_size,
            "MSK IAM: no region: set aws_msk_iam.region (the broker host "
            "name \"%.200s\" carries none, and AWS_REGION and "
            "AWS_DEFAULT_REGION are unset)",
            brokers);
    return -1;
}

int es_msk_iam_configure(rd_kafka_conf_t *conf, const es_msk_iam_opts_t *opts,
                         es_msk_iam_t *msk, char *errstr, size_t errstr_size)
{
    char mech[64], proto[64], region[64], tag[128], kerr[512];

    if (!opts || !opts->enabled)
        return 0;
    if (!msk) {
        fmt_err(errstr, errstr_size, "MSK IAM: no signer (es_msk_iam_new)");
        return -1;
    }
    conf_str(conf, "sasl.mechanisms", mech, sizeof(mech));
    if (strcmp(mech, "OAUTHBEARER")) {
        fmt_err(errstr, errstr_size,
                "aws_msk_iam: requires sasl.mechanisms=OAUTHBEARER (it is "
                "\"%s\")",
                mech);
        return -1;
    }
    conf_str(conf, "security.protocol", proto, sizeof(proto));
    if (strncasecmp(proto, "sasl_", 5)) {
        fmt_err(errstr, errstr_size,
                "aws_msk_iam: requires security.protocol=SASL_SSL (it is "
                "\"%s\")",
                proto);
        return -1;
    }
    conf_str(conf, "sasl.oauthbearer.method", mech, sizeof(mech));
    if (!strcasecmp(mech, "oidc")) {
        fmt_err(errstr, errstr_size,
                "aws_msk_iam: conflicts with sasl.oauthbearer.method=oidc");
        return -1;
    }
    if (resolve_region(conf, opts, region, sizeof(region), errstr,
                       errstr_size) != 0)
        return -1;
    snprintf(tag, sizeof(tag), ES_MSK_IAM_CONF_TAG " id=%" PRIu64 " region=%s",
             msk->id, region);
    if (rd_kafka_conf_set(conf, "sasl.oauthbearer.config", tag, kerr,
                          sizeof(kerr)) != RD_KAFKA_CONF_OK) {
        fmt_err(errstr, errstr_size, "MSK IAM: sasl.oauthbearer.config: %s",
                kerr);
        return -1;
    }
    rd_kafka_conf_set_oauthbearer_token_refresh_cb(conf, refresh_cb);
    rd_kafka_conf_enable_sasl_queue(conf, 1);
    return 0;
}

int es_msk_iam_configured(const rd_kafka_conf_t *conf)
{
    char tag[128], region[64];
    uint64_t id;
    if (conf_str(conf, "sasl.oauthbearer.config", tag, sizeof(tag)) != 0)
        return 0;
    return parse_conf_tag(tag, &id, region, sizeof(region)) == 0;
}

int es_msk_iam_start(rd_kafka_t *rk, char *errstr, size_t errstr_size)
{
    if (!es_msk_iam_configured(rd_kafka_conf(rk)))
        return 0;
    rd_kafka_error_t *err = rd_kafka_sasl_background_callbacks_enable(rk);
    if (err) {
        fmt_err(errstr, errstr_size,
                "MSK IAM: cannot enable background SASL callbacks: %s",
                rd_kafka_error_string(err));
        rd_kafka_error_destroy(err);
        return -1;
    }
    return 0;
}

int es_msk_iam_check(const rd_kafka_conf_t *conf, char *errstr,
                     size_t errstr_size)
{
    char tag[128];
    es_msk_iam_token_t tok = {0};
    es_msk_iam_t *msk = NULL;

    if (!es_msk_iam_configured(conf))
        return 0;
    conf_str(conf, "sasl.oauthbearer.config", tag, sizeof(tag));
    int rc = issue_token(tag, &tok, &msk, errstr, errstr_size);
    if (msk) /* a check hands librdkafka nothing: count nothing */
        reg_release(msk, COUNT_NONE);
    es_msk_iam_token_clear(&tok);
    return rc;
}
