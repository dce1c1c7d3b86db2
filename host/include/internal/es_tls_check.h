/*
 * Whether a PEM certificate file and a PEM private key file go together,
 * read with OpenSSL at init (header only). The TLS libraries that use them
 * later (libcurl for the https sink's mTLS, libmicrohttpd for the admin
 * API) only say that they failed, and only when a connection is made; this
 * names the file and what is wrong with it at startup and in
 * --check-config. Not part of the plugin SDK.
 */
#ifndef ES_TLS_CHECK_H
#define ES_TLS_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "internal/es_file_check.h"

/* The password given, or none: OpenSSL's default would ask on the
 * terminal, and a daemon has none. */
static inline int es_tls_password_cb(char *buf, int size, int rwflag, void *u)
{
    const char *password = u;
    size_t len = password ? strlen(password) : 0;
    (void)rwflag;
    if (!password || len > (size_t)size)
        return -1;
    memcpy(buf, password, len);
    return (int)len;
}

/* 1 when the PEM file at path holds an encrypted private key. */
static inline int es_tls_key_is_encrypted(const char *path)
{
    char line[256];
    int encrypted = 0;
    FILE *f = es_fopen_read(path);
    while (f && !encrypted && fgets(line, sizeof line, f))
        encrypted = strstr(line, "ENCRYPTED") != NULL;
    if (f)
        fclose(f);
    return encrypted;
}

typedef struct es_tls_pair_s {
    const char *cert_key, *cert; /* config key and path of the certificate */
    const char *key_key, *key;   /* of the private key */
    const char *password_key;    /* NULL: encrypted keys are not taken */
    const char *password;
} es_tls_pair_t;

static inline void es_tls_key_error(const es_tls_pair_t *p, char *errstr,
                                    size_t n)
{
    if (!es_tls_key_is_encrypted(p->key))
        snprintf(errstr, n, "%s: %s holds no PEM private key", p->key_key,
                 p->key);
    else if (!p->password_key)
        snprintf(errstr, n,
                 "%s: %s is encrypted; give an unencrypted key (the daemon "
                 "cannot type a password)",
                 p->key_key, p->key);
    else if (!p->password)
        snprintf(errstr, n, "%s: %s is encrypted: %s is required", p->key_key,
                 p->key, p->password_key);
    else
        snprintf(errstr, n, "%s: %s cannot be decrypted with %s", p->key_key,
                 p->key, p->password_key);
}

/* 0, or -1 with "KEY: PATH what is wrong" in errstr: the certificate is
 * not PEM, the key is not PEM (or encrypted without the right password),
 * or the key is not the certificate's. */
static inline int es_tls_pair_check(const es_tls_pair_t *p, char *errstr,
                                    size_t n)
{
    FILE *cf = es_fopen_read(p->cert);
    int cert_errno = cf ? 0 : errno;
    FILE *kf = cf ? es_fopen_read(p->key) : NULL;
    int key_errno = kf ? 0 : errno;
    X509 *x = cf ? PEM_read_X509(cf, NULL, es_tls_password_cb, NULL) : NULL;
    EVP_PKEY *k = kf ? PEM_read_PrivateKey(kf, NULL, es_tls_password_cb,
                                           (void *)p->password)
                     : NULL;
    int rc = -1;
    if (!cf || !kf)
        snprintf(errstr, n, "%s: %s: %s", !cf ? p->cert_key : p->key_key,
                 !cf ? p->cert : p->key,
                 strerror(!cf ? cert_errno : key_errno));
    else if (!x)
        snprintf(errstr, n, "%s: %s holds no PEM certificate", p->cert_key,
                 p->cert);
    else if (!k)
        es_tls_key_error(p, errstr, n);
    else if (X509_check_private_key(x, k) != 1)
        snprintf(errstr, n, "%s: %s is not the key of the certificate in %s",
                 p->key_key, p->key, p->cert);
    else
        rc = 0;
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(k);
    if (cf)
        fclose(cf);
    if (kf)
        fclose(kf);
    return rc;
}

#endif
