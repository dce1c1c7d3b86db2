/* Unit tests of the blockchain handler's pure parts: ABI encoding and
 * decoding, token and event ids, cost, and the emitted event shapes. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bc.h"

/* Revert data ganache 7.9.2 returned for TicketNFT's require() messages. */
#define REVERT_INVALID_TOKEN                                                   \
    "0x08c379a0"                                                               \
    "0000000000000000000000000000000000000000000000000000000000000020"         \
    "000000000000000000000000000000000000000000000000000000000000001b"         \
    "5469636b65744e46543a20696e76616c696420746f6b656e2049440000000000"

START_TEST(test_address_parse)
{
    char a[BC_ADDR_SIZE];
    ck_assert_int_eq(
        bc_address_parse("0xFFcf8FDEE72ac11b5c542428B35EEF5769C409f0", a), 0);
    ck_assert_str_eq(a, "0xffcf8fdee72ac11b5c542428b35eef5769c409f0");
    ck_assert_int_eq(
        bc_address_parse("0xffcf8fdee72ac11b5c542428b35eef5769c409f", a),
        -1); /* 39 digits */
    ck_assert_int_eq(
        bc_address_parse("ffcf8fdee72ac11b5c542428b35eef5769c409f0aa", a), -1);
    ck_assert_int_eq(
        bc_address_parse("0xgfcf8fdee72ac11b5c542428b35eef5769c409f0", a), -1);
    ck_assert_int_eq(bc_address_parse(NULL, a), -1);
}
END_TEST

START_TEST(test_encode_mint)
{
    char w1[65], w2[65];
    const char *words[] = {w1, w2};
    bc_word_address("0xffcf8fdee72ac11b5c542428b35eef5769c409f0", w1);
    bc_word_u64(1, w2);
    char *data = bc_abi_call(BC_SEL_MINT, words, 2);
    /* The calldata sent by hand to ganache that minted token 1. */
    ck_assert_str_eq(
        data,
        "0x40c10f19"
        "000000000000000000000000ffcf8fdee72ac11b5c542428b35eef5769c409f0"
        "0000000000000000000000000000000000000000000000000000000000000001");
    free(data);
    bc_word_u64(0x1fffffffffffffULL, w1);
    data = bc_abi_call(BC_SEL_OWNER_OF, words, 1);
    ck_assert_str_eq(
        data,
        "0x6352211e"
        "000000000000000000000000000000000000000000000000001fffffffffffff");
    free(data);
}
END_TEST

/* The selectors are constants; check them against solc's method
 * identifiers for TicketNFT.sol (committed as TicketNFT.hashes and
 * regenerated from the compiler by tests/e2e/blockchain.sh). */
START_TEST(test_selectors_match_solc)
{
    char path[1024];
    const char *src = getenv("SRC_DIR") ? getenv("SRC_DIR") : BC_TOP_SRCDIR;
    snprintf(path, sizeof(path), "%s/tests/peers/chain/TicketNFT.hashes", src);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char line[256];
    int found = 0;
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, ": mint(address,uint256)"))
            found += strncmp(line, BC_SEL_MINT, 8) == 0;
        if (strstr(line, ": burn(uint256)"))
            found += strncmp(line, BC_SEL_BURN, 8) == 0;
        if (strstr(line, ": ownerOf(uint256)"))
            found += strncmp(line, BC_SEL_OWNER_OF, 8) == 0;
    }
    fclose(f);
    ck_assert_int_eq(found, 3);
}
END_TEST

START_TEST(test_decode_address)
{
    char a[BC_ADDR_SIZE];
    ck_assert_int_eq(bc_abi_decode_address("0x000000000000000000000000FFcf8FDEE"
                                           "72ac11b5c542428B35EEF5769C409f0",
                                           a),
                     0);
    ck_assert_str_eq(a, "0xffcf8fdee72ac11b5c542428b35eef5769c409f0");
    /* "0x" is what a call to an address without code returns */
    ck_assert_int_eq(bc_abi_decode_address("0x", a), -1);
    /* dirty high bytes are not an address */
    ck_assert_int_eq(bc_abi_decode_address("0x010000000000000000000000ffcf8fdee"
                                           "72ac11b5c542428b35eef5769c409f0",
                                           a),
                     -1);
}
END_TEST

START_TEST(test_decode_revert)
{
    char r[128];
    bc_abi_decode_revert(REVERT_INVALID_TOKEN, r, sizeof(r));
    ck_assert_str_eq(r, "TicketNFT: invalid token ID");
    bc_abi_decode_revert("0x", r, sizeof(r));
    ck_assert_str_eq(r, "reverted without a reason");
    bc_abi_decode_revert(
        "0x4e487b71"
        "0000000000000000000000000000000000000000000000000000000000000011",
        r, sizeof(r));
    ck_assert_str_eq(r, "panic 0x11");
    bc_abi_decode_revert("0xdeadbeef", r, sizeof(r));
    ck_assert_str_eq(r, "custom error 0xdeadbeef");
    /* a length running past the data falls back, never reads beyond */
    bc_abi_decode_revert(
        "0x08c379a0"
        "0000000000000000000000000000000000000000000000000000000000000020"
        "00000000000000000000000000000000000000000000000000000000000000ff"
        "41",
        r, sizeof(r));
    ck_assert_str_eq(r, "custom error 0x08c379a0");
    /* require(cond, ""): an Error(string) of length 0 */
    bc_abi_decode_revert(
        "0x08c379a0"
        "0000000000000000000000000000000000000000000000000000000000000020"
        "0000000000000000000000000000000000000000000000000000000000000000",
        r, sizeof(r));
    ck_assert_str_eq(r, "reverted with an empty reason");
    /* a reason's bytes that are not hex digits are refused, not shifted */
    bc_abi_decode_revert(
        "0x08c379a0"
        "0000000000000000000000000000000000000000000000000000000000000020"
        "0000000000000000000000000000000000000000000000000000000000000001"
        "zz",
        r, sizeof(r));
    ck_assert_str_eq(r, "custom error 0x08c379a0");
    /* a node's non-hex revert data never reaches the reason */
    bc_abi_decode_revert("0x{\"9\x01", r, sizeof(r));
    ck_assert_str_eq(r, "reverted (the revert data is not hex)");
    bc_abi_decode_revert("0xabc", r, sizeof(r));
    ck_assert_str_eq(r, "custom error 0xabc");
    /* truncated to the buffer */
    char small[8];
    bc_abi_decode_revert(REVERT_INVALID_TOKEN, small, sizeof(small));
    ck_assert_str_eq(small, "TicketN");
}
END_TEST

START_TEST(test_quantity)
{
    uint64_t v;
    char s[19];
    ck_assert_int_eq(bc_quantity_parse("0x5208", &v), 0);
    ck_assert_uint_eq(v, 21000);
    ck_assert_int_eq(bc_quantity_parse("0xffffffffffffffff", &v), 0);
    ck_assert_uint_eq(v, UINT64_MAX);
    ck_assert_int_eq(bc_quantity_parse("0x10000000000000000", &v), -1);
    ck_assert_int_eq(bc_quantity_parse("5208", &v), -1);
    ck_assert_int_eq(bc_quantity_parse("0x", &v), -1);
    ck_assert_int_eq(bc_quantity_parse("0xz", &v), -1);
    ck_assert_int_eq(bc_quantity_parse(NULL, &v), -1);
    bc_quantity_format(3000000, s);
    ck_assert_str_eq(s, "0x2dc6c0");
}
END_TEST

START_TEST(test_token_id)
{
    /* python3: int.from_bytes(sha256(b"ticket-1").digest()[:8], "big") >> 11 */
    ck_assert_uint_eq(bc_token_id("ticket-1"), 4063368733892411ULL);
    ck_assert_uint_eq(bc_token_id("ticket-1"), bc_token_id("ticket-1"));
    ck_assert_uint_ne(bc_token_id("ticket-1"), bc_token_id("ticket-2"));
    for (int i = 0; i < 1000; i++) {
        char t[32];
        snprintf(t, sizeof(t), "t-%d", i);
        ck_assert_uint_lt(bc_token_id(t), 1ULL << BC_TOKEN_ID_BITS);
    }
}
END_TEST

START_TEST(test_event_id)
{
    char a[BC_EVENT_ID_SIZE], b[BC_EVENT_ID_SIZE];
    ck_assert_int_eq(
        bc_event_id("p-1", "eventzr.blockchain.ticket.minted.v1", a), 0);
    /* python3: sha256(b"p-1\neventzr.blockchain.ticket.minted.v1") with the
     * version (8) and variant bits set, shaped 8-4-4-4-12 */
    ck_assert_str_eq(a, "evt-0849ebb4-fe26-8af0-83c5-9815e595028e");
    bc_event_id("p-1", "eventzr.blockchain.nft.events.v1", b);
    ck_assert_str_ne(a, b);
    bc_event_id("p-2", "eventzr.blockchain.ticket.minted.v1", b);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(strlen(a), 40);
}
END_TEST

START_TEST(test_cost_and_time)
{
    /* 53763 gas at 1 gwei, native token at 2000 USD */
    ck_assert_double_eq_tol(bc_cost_usd(53763, 1000000000ULL, 2000.0), 0.107526,
                            1e-9);
    ck_assert_double_eq(bc_cost_usd(21000, 0, 2000.0), 0.0);
    char t[32];
    bc_time_format(1772280000000LL, t);
    ck_assert_str_eq(t, "2026-02-28T12:00:00.000Z");
    bc_time_format(1772280000042LL, t);
    ck_assert_str_eq(t, "2026-02-28T12:00:00.042Z");
}
END_TEST

static cJSON *record(void)
{
    return cJSON_Parse(
        "{\"operation\":\"mint\",\"tenantId\":\"tenant-a\",\"ticketId\":"
        "\"ticket-1\",\"contractAddress\":\"0x1234\",\"tokenId\":"
        "2891986158693390,"
        "\"chainId\":\"POLYGON\",\"ownerAddress\":\"0xabcd\","
        "\"transactionHash\":\"0xdeadbeef\",\"blockNumber\":12345678,"
        "\"gasUsed\":\"21000\",\"effectiveGasPrice\":\"1000000000\","
        "\"costUsd\":0.002,\"fromAddress\":\"0x9999\",\"status\":"
        "\"confirmed\",\"time\":\"2026-02-28T12:00:00.000Z\"}");
}

START_TEST(test_minted_event_shape)
{
    cJSON *rec = record();
    char *json = bc_envelope("eventzr.blockchain.ticket.minted.v1",
                             "blockchain-svc", "p-1", "tenant-a",
                             "2026-02-28T12:00:00.000Z", bc_minted_data(rec));
    ck_assert_ptr_nonnull(json);
    cJSON *ev = cJSON_Parse(json);
    /* the envelope of seed 000, attribute by attribute */
    static const char *const env[][2] = {
        {"specversion", "1.0"},
        {"type", "eventzr.blockchain.ticket.minted.v1"},
        {"source", "blockchain-svc"},
        {"id", "evt-0849ebb4-fe26-8af0-83c5-9815e595028e"},
        {"time", "2026-02-28T12:00:00.000Z"},
        {"datacontenttype", "application/json"},
        {"subject", "tenant-a"}};
    for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++)
        ck_assert_str_eq(
            cJSON_GetObjectItemCaseSensitive(ev, env[i][0])->valuestring,
            env[i][1]);
    ck_assert_int_eq(cJSON_GetArraySize(ev), 8);
    /* data: exactly the seed's ten fields, in its order, with its types */
    static const char *const fields[] = {
        "tenantId", "ticketId",     "contractAddress", "tokenId",
        "chainId",  "ownerAddress", "transactionHash", "blockNumber",
        "gasUsed",  "costUsd"};
    cJSON *data = cJSON_GetObjectItemCaseSensitive(ev, "data");
    ck_assert_int_eq(cJSON_GetArraySize(data), 10);
    int i = 0;
    for (cJSON *f = data->child; f; f = f->next, i++)
        ck_assert_str_eq(f->string, fields[i]);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(data, "tokenId")));
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(data, "blockNumber")));
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(data, "gasUsed")));
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(data, "costUsd")));
    ck_assert_str_eq(cJSON_GetObjectItem(data, "gasUsed")->valuestring,
                     "21000");
    ck_assert_double_eq(cJSON_GetObjectItem(data, "tokenId")->valuedouble,
                        2891986158693390.0);
    /* integers stay integers in the text (cJSON alone would print
     * 2.89198615869339e+15) */
    ck_assert_ptr_nonnull(strstr(json, "\"tokenId\":2891986158693390,"));
    ck_assert_ptr_nonnull(strstr(json, "\"blockNumber\":12345678,"));
    cJSON_Delete(ev);
    free(json);
    cJSON_Delete(rec);
}
END_TEST

START_TEST(test_telemetry_shapes)
{
    cJSON *rec = record();
    cJSON *tx = bc_tx_data(rec), *nft = bc_nft_data(rec);
    ck_assert_str_eq(cJSON_GetObjectItem(tx, "status")->valuestring,
                     "confirmed");
    ck_assert_str_eq(cJSON_GetObjectItem(tx, "effectiveGasPrice")->valuestring,
                     "1000000000");
    ck_assert_str_eq(cJSON_GetObjectItem(nft, "operation")->valuestring,
                     "mint");
    ck_assert_ptr_null(cJSON_GetObjectItem(nft, "costUsd"));
    /* a missing member becomes null rather than vanishing */
    cJSON *rev = bc_revoked_data(rec);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(rev, "reason")));
    cJSON_Delete(rev);
    cJSON_Delete(tx);
    cJSON_Delete(nft);
    cJSON_Delete(rec);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("blockchain");
    TCase *tc = tcase_create("abi");
    tcase_add_test(tc, test_address_parse);
    tcase_add_test(tc, test_encode_mint);
    tcase_add_test(tc, test_selectors_match_solc);
    tcase_add_test(tc, test_decode_address);
    tcase_add_test(tc, test_decode_revert);
    tcase_add_test(tc, test_quantity);
    suite_add_tcase(s, tc);
    tc = tcase_create("ids");
    tcase_add_test(tc, test_token_id);
    tcase_add_test(tc, test_event_id);
    tcase_add_test(tc, test_cost_and_time);
    suite_add_tcase(s, tc);
    tc = tcase_create("events");
    tcase_add_test(tc, test_minted_event_shape);
    tcase_add_test(tc, test_telemetry_shapes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
