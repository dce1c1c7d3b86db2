#!/bin/sh
# Makes a throwaway PKI for the HTTPS sink tests in DIR: a CA, a server
# certificate for localhost/127.0.0.1, a client certificate (mTLS) and an
# unrelated CA (the "bad CA" case). EC P-256 keys: quick to generate.
set -eu
dir=${1:?usage: mkcerts.sh DIR}
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj /CN=es-test-ca \
    2>/dev/null
key other-ca.key
openssl req -x509 -new -key other-ca.key -out other-ca.pem -days 2 \
    -subj /CN=es-other-ca 2>/dev/null
for who in server client; do
    key $who.key
    openssl req -new -key $who.key -out $who.csr -subj /CN=$who 2>/dev/null
    if [ $who = server ]; then
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >$who.ext
    else
        printf 'extendedKeyUsage=clientAuth\n' >$who.ext
    fi
    openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out $who.pem -days 2 -extfile $who.ext 2>/dev/null
done
rm -f ./*.csr ./*.ext ./*.srl
