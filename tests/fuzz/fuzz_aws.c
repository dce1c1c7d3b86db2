/*
 * Fuzz target for the AWS credential answers the provider chain parses
 * (host/aws): STS's XML (AssumeRole, AssumeRoleWithWebIdentity), the
 * container endpoint's and IMDS's JSON, credential_process's output and
 * SSO's GetRoleCredentials JSON. They come from the network or another
 * program; a wrong one must be refused, never crash or yield half a key.
 *
 * The first byte picks the parser, the rest is the answer. Besides "no
 * crash, no sanitizer report": credentials taken have a key id and a
 * secret, each NUL-terminated inside its field, the source named; STS's
 * are the bytes between their tags in the answer; an expiry is never
 * before 1970.
 *
 * Built with libFuzzer by scripts/fuzz, and replayed over
 * tests/fuzz/corpus/aws/ by `make check` (tests/fuzz/replay.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws_int.h"
#include "fuzz.h"

static void check_taken(const es_aws_credentials_t *c, const char *source)
{
    FUZZ_CHECK(
        memchr(c->access_key_id, 0, sizeof c->access_key_id) &&
            memchr(c->secret_access_key, 0, sizeof c->secret_access_key) &&
            memchr(c->session_token, 0, sizeof c->session_token),
        "a field is not terminated");
    FUZZ_CHECK(c->access_key_id[0] && c->secret_access_key[0],
               "taken without a key id or a secret");
    FUZZ_CHECK(!strcmp(c->source, source), "source \"%s\", not \"%s\"",
               c->source, source);
    FUZZ_CHECK(c->expiration >= 0, "expiry before 1970");
}

/* STS's values are copied from between their tags, as they are. */
static void check_sts(const char *xml, const es_aws_credentials_t *c)
{
    char want[160];
    snprintf(want, sizeof want, "<AccessKeyId>%s</AccessKeyId>",
             c->access_key_id);
    FUZZ_CHECK(strstr(xml, want), "key id \"%s\" is not between its tags",
               c->access_key_id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024)
        return 0;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    es_aws_credentials_t c;
    char why[256] = "";
    switch (data[0] % 4) {
    case 0:
        if (es_aws_sts_parse(text, "sts", &c) == 0) {
            check_taken(&c, "sts");
            check_sts(text, &c);
        }
        break;
    case 1:
        if (es_aws_json_creds_parse(text, "imds", &c, why, sizeof why) == 0)
            check_taken(&c, "imds");
        else
            FUZZ_CHECK(why[0], "refused without a reason");
        break;
    case 2:
        if (es_aws_process_parse(text, &c, why, sizeof why) == 0)
            check_taken(&c, "credential-process");
        else
            FUZZ_CHECK(why[0], "refused without a reason");
        break;
    default:
        if (es_aws_sso_parse(text, &c) == 0)
            check_taken(&c, "sso");
    }
    free(text);
    return 0;
}
