/*
 * Fuzz target for what the blockchain handler reads from the node
 * (plugins/handlers/blockchain): the JSON-RPC answer (rpc.c) and the ABI
 * values inside it (abi.c): revert data, an address returned by a call,
 * the quantities of a receipt. A node, or whatever answers at rpc_url, can
 * send anything; a wrong answer must become a reason, never a crash.
 *
 * The input is one answer. Besides "no crash, no sanitizer report":
 *  - the answer's status is OK with the result detached, or a revert or
 *    a transient failure with a reason and no result; a revert only when
 *    the answer has an "error", OK only when it has a "result" and none;
 *  - a revert reason is printable ASCII, NUL-terminated inside its buffer,
 *    even in a small one (it goes into logs and Kafka headers);
 *  - every string in the answer, and the input itself, given to the ABI
 *    decoders: an address taken is "0x" + 40 lower-case hex digits that
 *    bc_address_parse takes back unchanged; a quantity taken prints back
 *    to the same number, and to the same digits save leading zeros and
 *    case.
 *
 * Built with libFuzzer by scripts/fuzz (abi.c and rpc.c linked in), and
 * replayed over tests/fuzz/corpus/chain/ by `make check`.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bc.h"
#include "fuzz.h"

static void check_printable(const char *out, size_t size, const char *what)
{
    const char *end = memchr(out, 0, size);
    FUZZ_CHECK(end != NULL, "%s is not terminated", what);
    for (const char *p = out; p < end; p++)
        FUZZ_CHECK(*p >= 0x20 && *p < 0x7f, "%s has byte 0x%02x at %zu: \"%s\"",
                   what, (unsigned char)*p, (size_t)(p - out), out);
}

static void check_revert(const char *s)
{
    char big[256], small[12];
    memset(big, 'x', sizeof big);
    memset(small, 'x', sizeof small);
    bc_abi_decode_revert(s, big, sizeof big);
    bc_abi_decode_revert(s, small, sizeof small);
    check_printable(big, sizeof big, "revert reason");
    check_printable(small, sizeof small, "revert reason (small buffer)");
    FUZZ_CHECK(big[0], "empty revert reason");
}

static void check_address(const char *s)
{
    char out[BC_ADDR_SIZE], again[BC_ADDR_SIZE];
    memset(out, 'x', sizeof out);
    if (bc_abi_decode_address(s, out) != 0)
        return;
    FUZZ_CHECK(out[0] == '0' && out[1] == 'x' && out[42] == '\0',
               "address taken is not 0x + 40 digits");
    for (int i = 2; i < 42; i++)
        FUZZ_CHECK(isdigit((unsigned char)out[i]) ||
                       (out[i] >= 'a' && out[i] <= 'f'),
                   "address taken has '%c'", out[i]);
    FUZZ_CHECK(bc_address_parse(out, again) == 0 && !strcmp(out, again),
               "address %s is not taken back", out);
}

/* The digits after 0x without leading zeros, lower-cased. */
static void canonical_digits(const char *hex, char *out, size_t size)
{
    const char *h = hex + 2;
    while (*h == '0' && h[1])
        h++;
    size_t n = 0;
    for (; *h && n + 1 < size; h++)
        out[n++] = (char)tolower((unsigned char)*h);
    out[n] = '\0';
}

static void check_quantity(const char *s)
{
    uint64_t v, again;
    char printed[19], digits[32];
    if (bc_quantity_parse(s, &v) != 0)
        return;
    bc_quantity_format(v, printed);
    FUZZ_CHECK(bc_quantity_parse(printed, &again) == 0 && again == v,
               "quantity %s prints as %s, which reads back differently", s,
               printed);
    canonical_digits(s, digits, sizeof digits);
    FUZZ_CHECK(!strcmp(printed + 2, digits), "quantity %s taken as %s", s,
               printed);
}

static void check_abi(const char *s)
{
    check_revert(s);
    check_address(s);
    check_quantity(s);
}

static void check_strings(const cJSON *node)
{
    for (; node; node = node->next) {
        if (cJSON_IsString(node))
            check_abi(node->valuestring);
        check_strings(node->child);
    }
}

static void check_answer(const char *body, size_t len)
{
    cJSON *result = (cJSON *)&result; /* must be reset either way */
    char why[512];
    memset(why, 'x', sizeof why);
    bc_rpc_status_t st =
        bc_rpc_parse_response(body, len, "eth_call", &result, why, sizeof why);
    cJSON *doc = cJSON_ParseWithLength(body, len);
    int has_error = cJSON_GetObjectItemCaseSensitive(doc, "error") != NULL;
    int has_result = cJSON_GetObjectItemCaseSensitive(doc, "result") != NULL;
    FUZZ_CHECK(st == BC_RPC_OK || st == BC_RPC_REVERT || st == BC_RPC_TRANSIENT,
               "status %d", (int)st);
    if (st == BC_RPC_OK) {
        FUZZ_CHECK(result != NULL, "OK without a result");
        FUZZ_CHECK(cJSON_IsObject(doc) && has_result && !has_error,
                   "OK for an answer without a result, or with an error");
        cJSON_Delete(result);
    } else {
        FUZZ_CHECK(result == NULL, "a result with status %d", (int)st);
        FUZZ_CHECK(memchr(why, 0, sizeof why) && why[0],
                   "status %d without a reason", (int)st);
    }
    if (st == BC_RPC_REVERT) {
        FUZZ_CHECK(has_error, "a revert for an answer without an error");
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(doc, "error"), "data");
        if (cJSON_IsString(data) && !strncmp(data->valuestring, "0x", 2))
            check_printable(why, sizeof why, "revert reason of the answer");
    }
    check_strings(doc);
    cJSON_Delete(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    check_answer(text, size);
    check_abi(text);
    free(text);
    return 0;
}
