/*
 * Secrets in names and URLs, for showing a config or logging a URL: the
 * host (GET /v1/config, the subscriptions' masking) and the https sink's
 * log lines. Not part of the plugin SDK.
 *
 *     es_secret_name("sasl.password", 13)          -> 1
 *     char *m = es_url_mask(url);                  NULL: nothing to mask
 *
 * es_url_mask masks what commonly carries a credential in a URL
 * ("scheme://..."): the password of "user:password@", the value of a
 * query parameter named as a secret (es_secret_name, or key, sig, code,
 * auth), and a path segment that looks like a generated key (20 or more
 * letters, digits, '-' and '_', with both letters and digits): a node
 * provider's /v3/KEY, a chat webhook's token.
 */
#ifndef ES_URL_MASK_H
#define ES_URL_MASK_H

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ES_URL_MASK "********"

/* Whether a config key, header or parameter name (n bytes) names a
 * secret: it holds one of these, in any case. */
static inline int es_secret_name(const char *name, size_t n)
{
    static const char *const words[] = {
        "secret",  "password",   "passwd",    "token",         "passphrase",
        "apikey",  "api_key",    "api-key",   "authorization", "cookie",
        "private", "credential", "signature", "ssl.key.pem",   "sasl.jaas",
    };
    char low[256];
    if (n >= sizeof low)
        n = sizeof low - 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    low[n] = '\0';
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strstr(low, words[i]))
            return 1;
    return 0;
}

/* A query parameter that carries a credential: a secret's name, or one of
 * the short names signed and keyed URLs use (Azure's sig and code). */
static inline int es_url_secret_param(const char *name, size_t n)
{
    static const char *const short_names[] = {"key", "sig", "code", "auth"};
    for (size_t i = 0; i < sizeof short_names / sizeof *short_names; i++)
        if (strlen(short_names[i]) == n &&
            !strncasecmp(name, short_names[i], n))
            return 1;
    return es_secret_name(name, n);
}

static inline int es_url_key_like(const char *s, size_t n)
{
    int letters = 0, digits = 0;
    if (n < 20)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isdigit(c))
            digits = 1;
        else if (isalpha(c))
            letters = 1;
        else if (c != '-' && c != '_')
            return 0;
    }
    return letters && digits;
}

/* Where "scheme://" ends, or NULL when v does not start with one. */
static inline const char *es_url_after_scheme(const char *v)
{
    if (!isalpha((unsigned char)*v))
        return NULL;
    const char *p = v + 1;
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
        p++;
    return strncmp(p, "://", 3) ? NULL : p + 3;
}

/* "user:password@host" with the password masked. */
static inline const char *es_url_put_authority(FILE *f, const char *p,
                                               int *changed)
{
    size_t n = strcspn(p, "/?#");
    /* The last '@': a password may hold one, the host cannot. */
    const char *at = memrchr(p, '@', n);
    const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
    if (colon) {
        fprintf(f, "%.*s:" ES_URL_MASK, (int)(colon - p), p);
        *changed = 1;
        n -= (size_t)(at - p);
        p = at;
    }
    fwrite(p, 1, n, f);
    return p + n;
}

static inline const char *es_url_put_path(FILE *f, const char *p, int *changed)
{
    while (*p == '/') {
        size_t n = strcspn(++p, "/?#");
        fputc('/', f);
        if (es_url_key_like(p, n)) {
            fputs(ES_URL_MASK, f);
            *changed = 1;
        } else {
            fwrite(p, 1, n, f);
        }
        p += n;
    }
    return p;
}

static inline const char *es_url_put_query(FILE *f, const char *p, int *changed)
{
    if (*p != '?')
        return p;
    fputc(*p++, f);
    while (*p && *p != '#') {
        size_t n = strcspn(p, "&#");
        const char *eq = memchr(p, '=', n);
        if (eq && es_url_secret_param(p, (size_t)(eq - p))) {
            fprintf(f, "%.*s" ES_URL_MASK, (int)(eq + 1 - p), p);
            *changed = 1;
        } else {
            fwrite(p, 1, n, f);
        }
        p += n;
        if (*p == '&')
            fputc(*p++, f);
    }
    return p;
}

/* The URL with its credentials masked (malloc()ed), or NULL when it is
 * not a URL, has none, or memory ran out. */
static inline char *es_url_mask(const char *url)
{
    const char *p = es_url_after_scheme(url);
    char *out = NULL;
    size_t len = 0;
    int changed = 0;
    FILE *f = p ? open_memstream(&out, &len) : NULL;
    if (!f)
        return NULL;
    fwrite(url, 1, (size_t)(p - url), f);
    p = es_url_put_authority(f, p, &changed);
    p = es_url_put_path(f, p, &changed);
    p = es_url_put_query(f, p, &changed);
    fputs(p, f);
    if (fclose(f) != 0 || !changed) {
        free(out);
        return NULL;
    }
    return out;
}

#endif
