/*
 * Upload workers: each takes a sealed batch, compresses it as it streams it
 * out (one part buffer, never the whole compressed object) and writes it
 * with a single PUT or, when it outgrows part_size, a multipart upload.
 *
 * Compression is libdeflate's whole-buffer gzip (3-4x zlib's speed at the
 * same level): every chunk of at most S3_GZIP_CHUNK bytes of JSON lines, cut
 * after a newline, becomes its own gzip member. Concatenated members are one
 * valid .gz file (RFC 1952 2.2) that gzip -d, zcat, Python's gzip, Spark and
 * Athena read as the whole text; cutting on lines keeps every member a run
 * of complete events.
 * Every request is signed by libcurl's CURLOPT_AWS_SIGV4, which in curl
 * 7.88 needs help: it signs every header we add and uses our
 * x-amz-content-sha256 value, takes the query string verbatim (so we build
 * it canonical), and must never see an empty-valued header.
 */
#include "s3.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <libdeflate.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "internal/es_curlbuf.h"

#define S3_MAX_RESPONSE (1 << 20)

typedef struct s3_worker_s {
    s3_sink_t *s;
    CURL *curl;
    es_aws_credentials_t creds;
    char *part; /* gzip output for the current part */
    size_t part_cap;
    struct libdeflate_compressor *gz;
} s3_worker_t;

typedef struct s3_resp_s {
    long status;
    es_curlbuf_t buf; /* the body: buf.data, NUL-terminated, or NULL */
    char etag[128];
} s3_resp_t;

typedef struct s3_outcome_s {
    es_status_t status;
    char reason[256];
    int existed; /* the object was already there (412) */
} s3_outcome_t;

static void resp_clear(s3_resp_t *r)
{
    free(r->buf.data);
    memset(r, 0, sizeof(*r));
}

char *s3_uri_encode(const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
            (keep_slash && *p == '/')) {
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

static char *xml_value(const char *xml, const char *tag)
{
    char open[64], close[64];
    if (!xml)
        return NULL;
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    const char *a = strstr(xml, open);
    if (!a)
        return NULL;
    a += strlen(open);
    const char *e = strstr(a, close);
    return e ? strndup(a, (size_t)(e - a)) : NULL;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    s3_resp_t *r = ud;
    size_t n = size * nmemb;
    if (n > 5 && strncasecmp(ptr, "ETag:", 5) == 0) {
        const char *v = ptr + 5;
        size_t len = n - 5;
        while (len && (*v == ' ' || *v == '\t'))
            v++, len--;
        while (len && isspace((unsigned char)v[len - 1]))
            len--;
        if (len < sizeof(r->etag)) {
            memcpy(r->etag, v, len);
            r->etag[len] = '\0';
        }
    }
    return n;
}

static void hex_encode(const unsigned char *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/*
 * One signed S3 request on `key` with an optional canonical `query`.
 * Returns 0 when an HTTP answer arrived (any status, in r), -1 with errstr
 * on a transport error.
 */
static int s3_call(s3_worker_t *w, const char *method, const char *key,
                   const char *query, const char *ctype, const char *body,
                   size_t len, int send_md5, int if_none_match, s3_resp_t *r,
                   char *errstr, size_t errstr_size)
{
    s3_sink_t *s = w->s;
    const es_aws_credentials_t *c = &w->creds;
    unsigned char sha[SHA256_DIGEST_LENGTH], md5[16];
    char hdr[6][4200], sigv4[128], hexsha[2 * SHA256_DIGEST_LENGTH + 1];
    char detail[CURL_ERROR_SIZE] = "";
    char *ekey = s3_uri_encode(key, 1), *url = NULL;
    struct curl_slist *hl = NULL;
    int nh = 0, rc = -1;

    memset(r, 0, sizeof(*r));
    r->buf.max = S3_MAX_RESPONSE;
    if (!ekey || asprintf(&url, "%s%s/%s%s%s", s->host_url, s->path_prefix,
                          ekey, query ? "?" : "", query ? query : "") < 0) {
        url = NULL;
        snprintf(errstr, errstr_size, "out of memory");
        goto done;
    }
    SHA256((const unsigned char *)(body ? body : ""), len, sha);
    hex_encode(sha, sizeof(sha), hexsha);
    snprintf(hdr[nh++], sizeof(hdr[0]), "x-amz-content-sha256: %s", hexsha);
    if (c->session_token[0])
        snprintf(hdr[nh++], sizeof(hdr[0]), "x-amz-security-token: %s",
                 c->session_token);
    if (ctype)
        snprintf(hdr[nh++], sizeof(hdr[0]), "Content-Type: %s", ctype);
    if (send_md5) {
        char b64[32];
        unsigned int mlen = 0;
        EVP_Digest(body, len, md5, &mlen, EVP_md5(), NULL);
        EVP_EncodeBlock((unsigned char *)b64, md5, 16);
        snprintf(hdr[nh++], sizeof(hdr[0]), "Content-MD5: %s", b64);
    }
    if (if_none_match)
        snprintf(hdr[nh++], sizeof(hdr[0]), "If-None-Match: *");
    for (int i = 0; i < nh; i++) {
        struct curl_slist *n = curl_slist_append(hl, hdr[i]);
        if (!n) {
            snprintf(errstr, errstr_size, "out of memory");
            goto done;
        }
        hl = n;
    }
    snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:s3", s->cfg.region);

    CURL *h = w->curl;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, c->access_key_id);
    curl_easy_setopt(h, CURLOPT_PASSWORD, c->secret_access_key);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, es_curlbuf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->buf);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->cfg.timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* curl_easy_strerror only says "SSL peer certificate ... was not OK";
     * the buffer says which problem (unknown issuer, expired, host name). */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, detail);
    if (s->cfg.ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, s->cfg.ca_file);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (body || strcmp(method, "POST") == 0 ||
             strcmp(method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    CURLcode cr = curl_easy_perform(h);
    if (cr != CURLE_OK) {
        snprintf(errstr, errstr_size, "%s %s: %s", method, s->host_url,
                 detail[0] ? detail : curl_easy_strerror(cr));
        goto done;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    if (send_md5 && r->status == 200 && r->etag[0]) {
        /* A plain (non-KMS) ETag is the MD5 of what was stored. */
        char want[35], got[33];
        hex_encode(md5, 16, got);
        snprintf(want, sizeof(want), "\"%s\"", got);
        if (strlen(r->etag) == 34 && strcasecmp(r->etag, want) != 0) {
            snprintf(errstr, errstr_size,
                     "%s: ETag %s does not match the MD5 of what was sent",
                     method, r->etag);
            goto done;
        }
    }
    rc = 0;
done:
    /* `detail` goes with this frame: the handle must not keep it. */
    curl_easy_setopt(w->curl, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hl);
    free(ekey);
    free(url);
    return rc;
}

/* 5xx, throttling, auth and missing-bucket answers are worth retrying; other
 * client errors will not get better. */
static es_status_t classify(long status)
{
    if (status >= 500 || status == 403 || status == 404 || status == 408 ||
        status == 409 || status == 429 || status == 400)
        return ES_RETRY;
    return ES_FAIL;
}

static void fail_http(s3_outcome_t *o, const char *what, const s3_resp_t *r,
                      const char *source)
{
    char *code = xml_value(r->buf.data, "Code");
    char *msg = xml_value(r->buf.data, "Message");
    o->status = classify(r->status);
    snprintf(o->reason, sizeof(o->reason),
             "s3: %s answered HTTP %ld %s%s%.120s%s", what, r->status,
             code ? code : "", msg ? " (" : "", msg ? msg : "", msg ? ")" : "");
    if (r->status == 403 && source) {
        size_t l = strlen(o->reason);
        snprintf(o->reason + l, sizeof(o->reason) - l,
                 "; check the credentials (from %s) and region", source);
    }
    free(code);
    free(msg);
}

static void fail_text(s3_outcome_t *o, es_status_t st, const char *text)
{
    o->status = st;
    snprintf(o->reason, sizeof(o->reason), "s3: %.250s", text);
}

/* ------------------------------------------------------------- producers */

typedef struct producer_s {
    s3_worker_t *w;
    const s3_batch_t *b;
    int gzip;
    size_t off; /* bytes of the batch handed out (raw) or compressed (gzip) */
} producer_t;

/* Raw bytes for the next gzip member: at most S3_GZIP_CHUNK (or part_size,
 * when smaller), cut after the last newline in range when there is one. */
static size_t member_len(const producer_t *p)
{
    size_t left = p->b->len - p->off, max = S3_GZIP_CHUNK;
    if ((size_t)p->w->s->cfg.part_size < max)
        max = (size_t)p->w->s->cfg.part_size;
    if (left <= max)
        return left;
    const char *base = p->b->buf + p->off;
    const char *nl = memrchr(base, '\n', max);
    return nl ? (size_t)(nl - base) + 1 : max;
}

/* Next chunk of the object: at least part_size bytes, or the last one. */
static int produce(producer_t *p, const char **data, size_t *len, int *last)
{
    size_t part = (size_t)p->w->s->cfg.part_size;
    if (!p->gzip) {
        size_t n = p->b->len - p->off;
        *data = p->b->buf + p->off;
        *len = n > part ? part : n;
        p->off += *len;
        *last = p->off == p->b->len;
        return 0;
    }
    /* The part buffer holds part_size plus one member's bound, so a part
     * is cut once it reaches part_size and every part but the last is at
     * least that big (S3's 5 MiB minimum applies to those). */
    size_t out = 0;
    while (p->off < p->b->len && out < part) {
        size_t n = member_len(p);
        size_t z =
            libdeflate_gzip_compress(p->w->gz, p->b->buf + p->off, n,
                                     p->w->part + out, p->w->part_cap - out);
        if (z == 0)
            return -1;
        out += z;
        p->off += n;
    }
    *data = p->w->part;
    *len = out;
    *last = p->off == p->b->len;
    return 0;
}

static char *complete_xml(const char (*etags)[128], int nparts)
{
    size_t cap = 128 + (size_t)nparts * 200, len = 0;
    char *x = malloc(cap);
    if (!x)
        return NULL;
    len += (size_t)snprintf(x, cap, "<CompleteMultipartUpload>");
    for (int i = 0; i < nparts; i++)
        len += (size_t)snprintf(x + len, cap - len,
                                "<Part><PartNumber>%d</PartNumber><ETag>%s"
                                "</ETag></Part>",
                                i + 1, etags[i]);
    snprintf(x + len, cap - len, "</CompleteMultipartUpload>");
    return x;
}

static void abort_upload(s3_worker_t *w, const char *key, const char *qid)
{
    s3_resp_t r;
    char q[1200], err[256];
    snprintf(q, sizeof(q), "uploadId=%s", qid);
    if (s3_call(w, "DELETE", key, q, NULL, NULL, 0, 0, 0, &r, err,
                sizeof(err)) == 0 &&
        (r.status == 204 || r.status == 200 || r.status == 404))
        w->s->host->counter_add(w->s->host, "multipart_aborted", 1);
    else
        w->s->host->log(w->s->host, ES_LOG_WARN,
                        "s3: abort of multipart upload for %s failed (a "
                        "bucket lifecycle rule should clean it up)",
                        key);
    resp_clear(&r);
}

typedef struct multipart_s {
    char *upload_id; /* percent-encoded, as it goes in queries */
    char (*etags)[128];
    int nparts, cap;
} multipart_t;

static int mp_initiate(s3_worker_t *w, const char *key, const char *ctype,
                       multipart_t *mp, s3_outcome_t *o)
{
    s3_resp_t r;
    char err[256];
    if (s3_call(w, "POST", key, "uploads=", ctype, NULL, 0, 0, 0, &r, err,
                sizeof(err))) {
        fail_text(o, ES_RETRY, err);
        return -1;
    }
    char *id = r.status == 200 ? xml_value(r.buf.data, "UploadId") : NULL;
    if (!id) {
        fail_http(o, "CreateMultipartUpload", &r, w->creds.source);
        resp_clear(&r);
        return -1;
    }
    mp->upload_id = s3_uri_encode(id, 0);
    free(id);
    resp_clear(&r);
    return mp->upload_id ? 0 : -1;
}

static int mp_part(s3_worker_t *w, const char *key, multipart_t *mp,
                   const char *data, size_t len, s3_outcome_t *o)
{
    s3_resp_t r;
    char q[1300], err[256];
    if (mp->nparts == mp->cap) {
        int cap = mp->cap ? mp->cap * 2 : 16;
        void *n = realloc(mp->etags, sizeof(*mp->etags) * (size_t)cap);
        if (!n) {
            fail_text(o, ES_RETRY, "out of memory");
            return -1;
        }
        mp->etags = n;
        mp->cap = cap;
    }
    /* Canonical order: partNumber sorts before uploadId. */
    snprintf(q, sizeof(q), "partNumber=%d&uploadId=%s", mp->nparts + 1,
             mp->upload_id);
    if (s3_call(w, "PUT", key, q, NULL, data, len, 1, 0, &r, err,
                sizeof(err))) {
        fail_text(o, ES_RETRY, err);
        return -1;
    }
    if (r.status != 200 || !r.etag[0]) {
        if (r.status == 200)
            fail_text(o, ES_RETRY, "UploadPart answered without an ETag");
        else
            fail_http(o, "UploadPart", &r, w->creds.source);
        resp_clear(&r);
        return -1;
    }
    snprintf(mp->etags[mp->nparts++], sizeof(mp->etags[0]), "%s", r.etag);
    resp_clear(&r);
    return 0;
}

static int mp_complete(s3_worker_t *w, const char *key, multipart_t *mp,
                       s3_outcome_t *o)
{
    s3_resp_t r;
    char q[1200], err[256];
    char *xml = complete_xml((const char(*)[128])mp->etags, mp->nparts);
    if (!xml) {
        fail_text(o, ES_RETRY, "out of memory");
        return -1;
    }
    snprintf(q, sizeof(q), "uploadId=%s", mp->upload_id);
    int rc = s3_call(w, "POST", key, q, "application/xml", xml, strlen(xml), 0,
                     1, &r, err, sizeof(err));
    free(xml);
    if (rc) {
        fail_text(o, ES_RETRY, err);
        return -1;
    }
    rc = -1;
    if (r.status == 412) {
        o->existed = 1;
        rc = 0;
    } else if (r.status != 200) {
        fail_http(o, "CompleteMultipartUpload", &r, w->creds.source);
    } else if (r.buf.data && strstr(r.buf.data, "<Error>")) {
        /* S3 may answer 200 and report the failure in the body. */
        r.status = 500;
        fail_http(o, "CompleteMultipartUpload (200 with Error body)", &r,
                  w->creds.source);
    } else {
        rc = 0;
    }
    resp_clear(&r);
    return rc;
}

static int put_object(s3_worker_t *w, const char *key, const char *ctype,
                      const char *data, size_t len, s3_outcome_t *o)
{
    s3_resp_t r;
    char err[256];
    if (s3_call(w, "PUT", key, NULL, ctype, data, len, 1, 1, &r, err,
                sizeof(err))) {
        fail_text(o, ES_RETRY, err);
        return -1;
    }
    int rc = 0;
    if (r.status == 412)
        o->existed = 1;
    else if (r.status != 200) {
        fail_http(o, "PutObject", &r, w->creds.source);
        rc = -1;
    }
    resp_clear(&r);
    return rc;
}

static int plan_object_exists(s3_worker_t *w, const char *key)
{
    s3_resp_t r;
    char err[256];
    int rc = s3_call(w, "HEAD", key, NULL, NULL, NULL, 0, 0, 0, &r, err,
                     sizeof(err)) == 0 &&
             r.status == 200;
    resp_clear(&r);
    return rc;
}

static void upload(s3_worker_t *w, const s3_batch_t *b, s3_outcome_t *o)
{
    s3_sink_t *s = w->s;
    const char *ctype =
        s->cfg.gzip ? "application/gzip" : "application/x-ndjson";
    producer_t p = {.w = w, .b = b, .gzip = s->cfg.gzip};
    multipart_t mp = {0};
    char err[1024];

    o->status = ES_OK;
    if (es_aws_provider_get(s->creds, &w->creds, err, sizeof(err))) {
        fail_text(o, ES_RETRY, err);
        goto done;
    }
    if (b->alt_key && plan_object_exists(w, b->alt_key)) {
        o->existed = 1;
        goto done;
    }
    for (;;) {
        const char *data;
        size_t len;
        int last;
        if (produce(&p, &data, &len, &last)) {
            fail_text(o, ES_RETRY, "gzip failed");
            goto done;
        }
        if (last && !mp.upload_id) {
            put_object(w, b->key, ctype, data, len, o);
            break;
        }
        if (!mp.upload_id && mp_initiate(w, b->key, ctype, &mp, o))
            goto done;
        if (mp_part(w, b->key, &mp, data, len, o))
            goto done;
        if (last) {
            mp_complete(w, b->key, &mp, o);
            break;
        }
    }
done:
    if (mp.upload_id && (o->status != ES_OK || o->existed))
        abort_upload(w, b->key, mp.upload_id);
    free(mp.upload_id);
    free(mp.etags);
    memset(&w->creds, 0, sizeof(w->creds));
}

static void finish(s3_worker_t *w, s3_batch_t *b, const s3_outcome_t *o)
{
    s3_sink_t *s = w->s;
    const es_host_t *h = s->host;
    if (o->status == ES_OK) {
        h->counter_add(
            h, o->existed ? "objects_already_present" : "objects_uploaded", 1);
        h->counter_add(h, "events_uploaded", b->count);
        h->log(h, ES_LOG_DEBUG, "s3: %s s3://%s/%s (%zu events)",
               o->existed ? "already present" : "uploaded", s->cfg.bucket,
               b->key, b->count);
    } else {
        h->counter_add(h, "upload_errors", 1);
        h->log(h, ES_LOG_ERROR,
               "s3: upload of s3://%s/%s (%zu events) "
               "failed, events %s: %s",
               s->cfg.bucket, b->key, b->count,
               o->status == ES_RETRY ? "will be retried" : "dead-lettered",
               o->reason);
    }
    for (size_t i = 0; i < b->count; i++)
        h->complete(h, b->tokens[i], o->status,
                    o->status == ES_OK ? NULL : o->reason);
}

static void worker_free(s3_worker_t *w)
{
    if (!w)
        return;
    curl_easy_cleanup(w->curl);
    libdeflate_free_compressor(w->gz);
    free(w->part);
    free(w);
}

static s3_worker_t *worker_new(s3_sink_t *s)
{
    s3_worker_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->s = s;
    w->curl = curl_easy_init();
    if (!w->curl)
        goto fail;
    if (s->cfg.gzip) {
        w->gz = libdeflate_alloc_compressor((int)s->cfg.gzip_level);
        if (!w->gz)
            goto fail;
        w->part_cap = (size_t)s->cfg.part_size +
                      libdeflate_gzip_compress_bound(w->gz, S3_GZIP_CHUNK);
        w->part = malloc(w->part_cap);
        if (!w->part)
            goto fail;
    }
    return w;
fail:
    worker_free(w);
    return NULL;
}

static void *worker_main(void *arg)
{
    s3_worker_t *w = arg;
    s3_sink_t *s = w->s;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->q_head && !s->stopping)
            pthread_cond_wait(&s->cond, &s->lock);
        if (s->stopping) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        s3_batch_t *b = s->q_head;
        s->q_head = b->next;
        if (!s->q_head)
            s->q_tail = NULL;
        pthread_mutex_unlock(&s->lock);

        s3_outcome_t o = {0};
        upload(w, b, &o);
        finish(w, b, &o);

        pthread_mutex_lock(&s->lock);
        s->queued_bytes -= b->len;
        pthread_mutex_unlock(&s->lock);
        s3_batch_recycle(s, b);
    }
    worker_free(w);
    return NULL;
}

int s3_workers_start(s3_sink_t *s, char *errstr, size_t errstr_size)
{
    s->workers = calloc((size_t)s->cfg.upload_threads, sizeof(pthread_t));
    if (!s->workers) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (long i = 0; i < s->cfg.upload_threads; i++) {
        s3_worker_t *w = worker_new(s);
        if (!w || pthread_create(&s->workers[i], NULL, worker_main, w) != 0) {
            worker_free(w);
            snprintf(errstr, errstr_size, "cannot start upload thread");
            return -1;
        }
        s->nworkers++;
    }
    return 0;
}

void s3_workers_stop(s3_sink_t *s)
{
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    for (long i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    free(s->workers);
    s->workers = NULL;
    s->nworkers = 0;
    /* Queued batches are abandoned: the host redelivers their events. */
    while (s->q_head) {
        s3_batch_t *b = s->q_head;
        s->q_head = b->next;
        s3_batch_free(b);
    }
    s->q_tail = NULL;
}
