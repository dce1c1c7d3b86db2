/*
 * The order state machine: input shapes, the transition table, the order
 * record and the events each transition emits. No host calls here: this
 * file is pure so that the table can be read (and tested) on its own.
 * docs/marketplace-handler.md describes every shape with examples.
 */
#include "marketplace.h"
#include "internal/es_json_int.h"
#include "internal/es_json_keys.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

/* JSON numbers above 2^53 - 1 cannot be told apart as doubles. */
#define MKT_AMOUNT_MAX 9007199254740991LL
/* Ids and free text longer than this are refused: they end up in keys. */
#define MKT_ID_MAX 200
#define MKT_TEXT_MAX 2000

static const char *const state_names[MKT_ST_COUNT] = {
    [MKT_ST_NONE] = "unknown",        [MKT_ST_CREATED] = "created",
    [MKT_ST_PAID] = "paid",           [MKT_ST_DISPUTED] = "disputed",
    [MKT_ST_COMPLETED] = "completed", [MKT_ST_CANCELLED] = "cancelled",
};

static const char *const output_types[MKT_OUT_COUNT] = {
    [MKT_OUT_ORDER_CREATED] = "eventzr.marketplace.order.created.v1",
    [MKT_OUT_ORDER_COMPLETED] = "eventzr.marketplace.order.completed.v1",
    [MKT_OUT_ORDER_CANCELLED] = "eventzr.marketplace.order.cancelled.v1",
    [MKT_OUT_DISPUTE_OPENED] = "eventzr.marketplace.dispute.opened.v1",
    [MKT_OUT_DISPUTE_RESOLVED] = "eventzr.marketplace.dispute.resolved.v1",
};

static const struct {
    const char *type;
    mkt_input_kind_t kind;
} input_types[] = {
    {"eventzr.marketplace.quote.accepted.v1", MKT_IN_QUOTE_ACCEPTED},
    {"eventzr.wallet.payment.completed.v1", MKT_IN_PAYMENT_COMPLETED},
    {"eventzr.wallet.escrow.released.v1", MKT_IN_ESCROW_RELEASED},
    {"eventzr.marketplace.order.cancel.requested.v1", MKT_IN_CANCEL_REQUESTED},
    {"eventzr.marketplace.dispute.open.requested.v1", MKT_IN_DISPUTE_OPEN},
    /* Parsing picks RELEASE or REFUND from data.outcome. */
    {"eventzr.marketplace.dispute.resolve.requested.v1",
     MKT_IN_DISPUTE_RELEASE},
};

static const char *const input_names[MKT_IN_COUNT] = {
    [MKT_IN_QUOTE_ACCEPTED] = "quote.accepted",
    [MKT_IN_PAYMENT_COMPLETED] = "payment.completed",
    [MKT_IN_ESCROW_RELEASED] = "escrow.released",
    [MKT_IN_CANCEL_REQUESTED] = "order.cancel.requested",
    [MKT_IN_DISPUTE_OPEN] = "dispute.open.requested",
    [MKT_IN_DISPUTE_RELEASE] = "dispute.resolve.requested(release_to_seller)",
    [MKT_IN_DISPUTE_REFUND] = "dispute.resolve.requested(refund_buyer)",
};

/*
 * The transition table: rules[input][current state]. WAIT marks events that
 * can legitimately overtake the event they depend on (they come from other
 * services on other topics): the order does not exist yet, or the payment
 * has not been seen yet. Everything else that is not APPLY is illegal.
 */
/* clang-format off */
#define A(st) {MKT_APPLY, MKT_ST_##st}
#define W {MKT_WAIT, MKT_ST_NONE}
#define X {MKT_ILLEGAL, MKT_ST_NONE}
static const mkt_rule_t rules[MKT_IN_COUNT][MKT_ST_COUNT] = {
    /*                           none        created       paid
                                 disputed      completed  cancelled */
    [MKT_IN_QUOTE_ACCEPTED]    = {A(CREATED), X,            X,
                                  X,            X,         X},
    [MKT_IN_PAYMENT_COMPLETED] = {W,          A(PAID),      X,
                                  X,            X,         X},
    [MKT_IN_ESCROW_RELEASED]   = {W,          W,            A(COMPLETED),
                                  X,            X,         X},
    [MKT_IN_CANCEL_REQUESTED]  = {W,          A(CANCELLED), A(CANCELLED),
                                  X,            X,         X},
    [MKT_IN_DISPUTE_OPEN]      = {W,          W,            A(DISPUTED),
                                  X,            X,         X},
    [MKT_IN_DISPUTE_RELEASE]   = {W,          X,            X,
                                  A(PAID),      X,         X},
    [MKT_IN_DISPUTE_REFUND]    = {W,          X,            X,
                                  A(CANCELLED), X,         X},
};
/* clang-format on */
#undef A
#undef W
#undef X

const char *mkt_state_name(mkt_state_t st)
{
    return st < MKT_ST_COUNT ? state_names[st] : "invalid";
}

int mkt_state_parse(const char *name, mkt_state_t *st)
{
    for (int i = MKT_ST_CREATED; name && i < MKT_ST_COUNT; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *st = (mkt_state_t)i;
            return 0;
        }
    }
    return -1;
}

const char *mkt_input_name(mkt_input_kind_t kind)
{
    return kind < MKT_IN_COUNT ? input_names[kind] : "invalid";
}

const char *mkt_output_type(mkt_output_kind_t kind)
{
    return kind < MKT_OUT_COUNT ? output_types[kind] : NULL;
}

const mkt_rule_t *mkt_rule(mkt_input_kind_t kind, mkt_state_t st)
{
    if (kind >= MKT_IN_COUNT || st >= MKT_ST_COUNT)
        return NULL;
    return &rules[kind][st];
}

int mkt_input_kind_of_type(const char *type, mkt_input_kind_t *kind)
{
    for (size_t i = 0; type && i < sizeof(input_types) / sizeof(*input_types);
         i++) {
        if (strcmp(type, input_types[i].type) == 0) {
            *kind = input_types[i].kind;
            return 0;
        }
    }
    return -1;
}

/* ------------------------------------------------------------ uuid, time */

int mkt_uuid5(const char *name, size_t name_len, char out[37])
{
    /* The handler's namespace; RFC 4122 byte order. */
    static const unsigned char ns[16] = {0x74, 0xb8, 0x4e, 0xce, 0xfe, 0x89,
                                         0x4e, 0xd5, 0xb8, 0xeb, 0x35, 0x09,
                                         0xc6, 0xd1, 0x52, 0xae};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int rc = -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, ns, sizeof(ns)) != 1 ||
        EVP_DigestUpdate(ctx, name, name_len) != 1 ||
        EVP_DigestFinal_ex(ctx, md, &md_len) != 1 || md_len < 16)
        goto done;
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8],
             md[9], md[10], md[11], md[12], md[13], md[14], md[15]);
    rc = 0;
done:
    EVP_MD_CTX_free(ctx);
    return rc;
}

void mkt_time_now(char out[32])
{
    struct timespec ts;
    struct tm tm;
    size_t len;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    len = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + len, 32 - len, ".%03ldZ", ts.tv_nsec / 1000000L);
}

/* --------------------------------------------------------------- parsing */

static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static int get_str(const cJSON *data, const char *key, int required, size_t max,
                   const char **out, char *errstr, size_t n)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(data, key);

    *out = NULL;
    if (!it || cJSON_IsNull(it)) {
        if (!required)
            return 0;
        snprintf(errstr, n, "data.%s is required", key);
        return -1;
    }
    if (!cJSON_IsString(it) || it->valuestring[0] == '\0') {
        snprintf(errstr, n, "data.%s must be a non-empty string", key);
        return -1;
    }
    if (strlen(it->valuestring) > max) {
        snprintf(errstr, n, "data.%s is longer than %zu bytes", key, max);
        return -1;
    }
    *out = it->valuestring;
    return 0;
}

/* Amounts are integers in minor units (cents); a fraction is an error,
 * never rounded. */
static int get_amount(const cJSON *data, int64_t *out, char *errstr, size_t n)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(data, "amount");
    double d;

    if (!it) {
        snprintf(errstr, n, "data.amount is required");
        return -1;
    }
    if (!cJSON_IsNumber(it)) {
        snprintf(errstr, n,
                 "data.amount must be an integer number of minor units "
                 "(a JSON number, not a string)");
        return -1;
    }
    d = it->valuedouble;
    if (!es_json_int_in(it, 0, (double)MKT_AMOUNT_MAX)) {
        snprintf(errstr, n,
                 "data.amount must be an integer number of minor units "
                 "between 0 and %lld, got %.17g",
                 (long long)MKT_AMOUNT_MAX, d);
        return -1;
    }
    *out = (int64_t)d;
    return 0;
}

static int get_currency(const cJSON *data, const char **out, char *errstr,
                        size_t n)
{
    const char *c;

    if (get_str(data, "currency", 1, 3, &c, errstr, n) != 0)
        return -1;
    for (int i = 0; i < 3; i++) {
        if (c[i] < 'A' || c[i] > 'Z') {
            snprintf(errstr, n,
                     "data.currency must be an ISO 4217 code of three "
                     "upper-case letters, got \"%s\"",
                     c);
            return -1;
        }
    }
    *out = c;
    return 0;
}

static int parse_money(const cJSON *data, mkt_input_t *in, char *errstr,
                       size_t n)
{
    if (get_amount(data, &in->amount, errstr, n) != 0 ||
        get_currency(data, &in->currency, errstr, n) != 0)
        return -1;
    in->has_amount = 1;
    return 0;
}

static int parse_quote(const char *tenant, const cJSON *d, mkt_input_t *in,
                       char *e, size_t n)
{
    const char *quote, *s, *order;
    char name[2 * MKT_ID_MAX + 64];
    int len;

    if (get_str(d, "id", 1, MKT_ID_MAX, &quote, e, n) ||
        get_str(d, "listingId", 1, MKT_ID_MAX, &s, e, n) ||
        get_str(d, "buyerId", 1, MKT_ID_MAX, &s, e, n) ||
        get_str(d, "sellerId", 1, MKT_ID_MAX, &s, e, n) ||
        get_str(d, "orderId", 0, MKT_ID_MAX, &order, e, n) ||
        parse_money(d, in, e, n))
        return -1;
    if (order) {
        in->order_id = order;
        return 0;
    }
    /* No order id given: derive it from the quote, so the same quote always
     * names the same order. */
    len = snprintf(name, sizeof(name), "order\n%s\n%s", tenant, quote);
    if (len < 0 || (size_t)len >= sizeof(name) ||
        mkt_uuid5(name, (size_t)len, in->order_id_buf) != 0) {
        snprintf(e, n, "cannot derive an order id from quote %s", quote);
        return -1;
    }
    in->order_id = in->order_id_buf;
    return 0;
}

static int parse_wallet(const cJSON *d, mkt_input_t *in, char *e, size_t n)
{
    const char *s;

    return get_str(d, "id", 1, MKT_ID_MAX, &s, e, n) ||
                   get_str(d, "orderId", 1, MKT_ID_MAX, &in->order_id, e, n) ||
                   parse_money(d, in, e, n)
               ? -1
               : 0;
}

static int parse_cancel(const cJSON *d, mkt_input_t *in, char *e, size_t n)
{
    const char *s;

    return get_str(d, "orderId", 1, MKT_ID_MAX, &in->order_id, e, n) ||
                   get_str(d, "reason", 1, MKT_TEXT_MAX, &s, e, n) ||
                   get_str(d, "requestedBy", 0, MKT_ID_MAX, &s, e, n)
               ? -1
               : 0;
}

static int parse_dispute_open(const cJSON *d, mkt_input_t *in, char *e,
                              size_t n)
{
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(d, "evidence");
    const char *s;

    if (get_str(d, "id", 1, MKT_ID_MAX, &s, e, n) ||
        get_str(d, "orderId", 1, MKT_ID_MAX, &in->order_id, e, n) ||
        get_str(d, "reason", 1, MKT_TEXT_MAX, &s, e, n) ||
        get_str(d, "openedBy", 0, MKT_ID_MAX, &s, e, n))
        return -1;
    if (ev && !cJSON_IsArray(ev) && !cJSON_IsNull(ev)) {
        snprintf(e, n, "data.evidence must be an array");
        return -1;
    }
    return 0;
}

static int parse_dispute_resolve(const cJSON *d, mkt_input_t *in, char *e,
                                 size_t n)
{
    const char *s, *outcome;

    if (get_str(d, "id", 1, MKT_ID_MAX, &s, e, n) ||
        get_str(d, "orderId", 1, MKT_ID_MAX, &in->order_id, e, n) ||
        get_str(d, "outcome", 1, MKT_ID_MAX, &outcome, e, n) ||
        get_str(d, "notes", 0, MKT_TEXT_MAX, &s, e, n) ||
        get_str(d, "resolvedBy", 0, MKT_ID_MAX, &s, e, n))
        return -1;
    if (strcmp(outcome, "release_to_seller") == 0) {
        in->kind = MKT_IN_DISPUTE_RELEASE;
    } else if (strcmp(outcome, "refund_buyer") == 0) {
        in->kind = MKT_IN_DISPUTE_REFUND;
    } else {
        snprintf(e, n,
                 "data.outcome must be \"release_to_seller\" or "
                 "\"refund_buyer\", got \"%s\"",
                 outcome);
        return -1;
    }
    return 0;
}

int mkt_input_parse(const char *type, const char *tenant, const cJSON *data,
                    mkt_input_t *in, char *errstr, size_t errstr_size)
{
    memset(in, 0, sizeof(*in));
    if (mkt_input_kind_of_type(type, &in->kind) != 0) {
        snprintf(errstr, errstr_size, "unsupported event type %s",
                 type ? type : "(none)");
        return -1;
    }
    if (!cJSON_IsObject(data)) {
        snprintf(errstr, errstr_size, "%s event has no JSON object in data",
                 type);
        return -1;
    }
    /* The Lua filter reads a repeated key's last value, cJSON's lookups
     * here the first: acting on either would be a guess. */
    char twice[128];
    if (es_json_repeated_key(data, "data", twice, sizeof(twice))) {
        snprintf(errstr, errstr_size,
                 "%s is given twice in its object (which one is meant would "
                 "be a guess)",
                 twice);
        return -1;
    }
    in->data = data;
    switch (in->kind) {
    case MKT_IN_QUOTE_ACCEPTED:
        return parse_quote(tenant, data, in, errstr, errstr_size);
    case MKT_IN_PAYMENT_COMPLETED:
    case MKT_IN_ESCROW_RELEASED:
        return parse_wallet(data, in, errstr, errstr_size);
    case MKT_IN_CANCEL_REQUESTED:
        return parse_cancel(data, in, errstr, errstr_size);
    case MKT_IN_DISPUTE_OPEN:
        return parse_dispute_open(data, in, errstr, errstr_size);
    default:
        return parse_dispute_resolve(data, in, errstr, errstr_size);
    }
}

/* ---------------------------------------------------------- order record */

mkt_state_t mkt_order_state(const cJSON *order)
{
    mkt_state_t st;

    if (mkt_state_parse(json_str(order, "status"), &st) != 0)
        return MKT_ST_NONE;
    return st;
}

static int64_t json_int(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return es_json_is_int(it) ? (int64_t)it->valuedouble : -1;
}

/* Integers go out as raw JSON digits so that no double formatting is ever
 * involved in an amount. */
static void add_int(cJSON *obj, const char *key, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    cJSON_AddRawToObject(obj, key, buf);
}

static void add_str(cJSON *obj, const char *key, const char *v)
{
    if (v)
        cJSON_AddStringToObject(obj, key, v);
}

static void set_item(cJSON *obj, const char *key, cJSON *item)
{
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    cJSON_AddItemToObject(obj, key, item);
}

static void set_str(cJSON *obj, const char *key, const char *v)
{
    set_item(obj, key, cJSON_CreateString(v));
}

static void set_int(cJSON *obj, const char *key, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    set_item(obj, key, cJSON_CreateRaw(buf));
}

static void copy_str(cJSON *dst, const char *dkey, const cJSON *src,
                     const char *skey)
{
    add_str(dst, dkey, json_str(src, skey));
}

static cJSON *new_output(mkt_output_t *out, size_t *n_out,
                         mkt_output_kind_t kind)
{
    out[*n_out].kind = kind;
    out[*n_out].data = cJSON_CreateObject();
    return out[(*n_out)++].data;
}

static int check_currency(const mkt_input_t *in, const cJSON *order,
                          const char *what, char *e, size_t n)
{
    const char *cur = json_str(order, "currency");

    if (cur && strcmp(cur, in->currency) == 0)
        return 0;
    snprintf(e, n, "%s %s is in %s but order %s is in %s", what,
             json_str(in->data, "id"), in->currency, in->order_id,
             cur ? cur : "(none)");
    return -1;
}

static int apply_quote(const mkt_input_t *in, cJSON *o, const char *time,
                       mkt_output_t *out, size_t *n_out)
{
    const cJSON *d = in->data;
    cJSON *ev;

    set_str(o, "id", in->order_id);
    copy_str(o, "quoteId", d, "id");
    copy_str(o, "listingId", d, "listingId");
    copy_str(o, "buyerId", d, "buyerId");
    copy_str(o, "sellerId", d, "sellerId");
    add_int(o, "amount", in->amount);
    add_str(o, "currency", in->currency);
    add_str(o, "createdAt", time);

    ev = new_output(out, n_out, MKT_OUT_ORDER_CREATED);
    add_str(ev, "id", in->order_id);
    add_str(ev, "status", "created");
    copy_str(ev, "quoteId", d, "id");
    copy_str(ev, "listingId", d, "listingId");
    copy_str(ev, "buyerId", d, "buyerId");
    copy_str(ev, "sellerId", d, "sellerId");
    add_int(ev, "amount", in->amount);
    add_str(ev, "currency", in->currency);
    add_str(ev, "createdAt", time);
    return 0;
}

static int apply_payment(const mkt_input_t *in, cJSON *o, const char *time,
                         char *e, size_t n)
{
    int64_t due = json_int(o, "amount");

    if (check_currency(in, o, "payment", e, n) != 0)
        return -1;
    if (in->amount != due) {
        snprintf(e, n,
                 "payment %s of %" PRId64 " %s does not match order %s "
                 "amount %" PRId64 " %s",
                 json_str(in->data, "id"), in->amount, in->currency,
                 in->order_id, due, in->currency);
        return -1;
    }
    copy_str(o, "paymentId", in->data, "id");
    set_int(o, "paidAmount", in->amount);
    set_str(o, "paidAt", time);
    return 0;
}

static int apply_escrow(const mkt_input_t *in, cJSON *o, const char *time,
                        mkt_output_t *out, size_t *n_out, char *e, size_t n)
{
    int64_t paid = json_int(o, "paidAmount");
    cJSON *ev;

    if (check_currency(in, o, "escrow release", e, n) != 0)
        return -1;
    if (in->amount > paid) {
        snprintf(e, n,
                 "escrow release %s of %" PRId64 " %s exceeds the %" PRId64
                 " %s paid for order %s",
                 json_str(in->data, "id"), in->amount, in->currency, paid,
                 in->currency, in->order_id);
        return -1;
    }
    copy_str(o, "escrowId", in->data, "id");
    set_int(o, "finalAmount", in->amount);
    set_str(o, "completedAt", time);

    ev = new_output(out, n_out, MKT_OUT_ORDER_COMPLETED);
    add_str(ev, "id", in->order_id);
    add_str(ev, "status", "completed");
    add_str(ev, "completedAt", time);
    add_int(ev, "finalAmount", in->amount);
    add_str(ev, "currency", in->currency);
    copy_str(ev, "quoteId", o, "quoteId");
    copy_str(ev, "buyerId", o, "buyerId");
    copy_str(ev, "sellerId", o, "sellerId");
    copy_str(ev, "paymentId", o, "paymentId");
    copy_str(ev, "escrowId", in->data, "id");
    return 0;
}

/* Cancelling a paid order owes the buyer a refund; the wallet service acts
 * on refundStatus "pending". */
static void emit_cancelled(const cJSON *o, const char *order_id,
                           const char *reason, const char *by,
                           const char *dispute, const char *time,
                           mkt_output_t *out, size_t *n_out)
{
    int64_t paid = json_int(o, "paidAmount");
    int refund = json_str(o, "paymentId") != NULL && paid >= 0;
    cJSON *ev = new_output(out, n_out, MKT_OUT_ORDER_CANCELLED);

    add_str(ev, "id", order_id);
    add_str(ev, "status", "cancelled");
    add_str(ev, "reason", reason);
    add_str(ev, "refundStatus", refund ? "pending" : "not_required");
    add_int(ev, "refundAmount", refund ? paid : 0);
    copy_str(ev, "currency", o, "currency");
    add_str(ev, "cancelledAt", time);
    add_str(ev, "requestedBy", by);
    add_str(ev, "disputeId", dispute);
}

static int apply_cancel(const mkt_input_t *in, cJSON *o, const char *time,
                        mkt_output_t *out, size_t *n_out)
{
    const char *reason = json_str(in->data, "reason");

    emit_cancelled(o, in->order_id, reason, json_str(in->data, "requestedBy"),
                   NULL, time, out, n_out);
    set_str(o, "cancelReason", reason);
    set_str(o, "cancelledAt", time);
    return 0;
}

static int apply_dispute_open(const mkt_input_t *in, cJSON *o, const char *time,
                              mkt_output_t *out, size_t *n_out)
{
    const cJSON *d = in->data;
    const cJSON *evidence = cJSON_GetObjectItemCaseSensitive(d, "evidence");
    cJSON *ev;

    set_str(o, "disputeId", json_str(d, "id"));
    set_str(o, "disputedAt", time);

    ev = new_output(out, n_out, MKT_OUT_DISPUTE_OPENED);
    copy_str(ev, "id", d, "id");
    add_str(ev, "orderId", in->order_id);
    add_str(ev, "status", "open");
    copy_str(ev, "reason", d, "reason");
    cJSON_AddItemToObject(ev, "evidence",
                          cJSON_IsArray(evidence) ? cJSON_Duplicate(evidence, 1)
                                                  : cJSON_CreateArray());
    copy_str(ev, "openedBy", d, "openedBy");
    add_int(ev, "amount", json_int(o, "paidAmount"));
    copy_str(ev, "currency", o, "currency");
    add_str(ev, "openedAt", time);
    return 0;
}

static int apply_dispute_resolve(const mkt_input_t *in, cJSON *o,
                                 const char *time, mkt_state_t next,
                                 mkt_output_t *out, size_t *n_out, char *e,
                                 size_t n)
{
    const cJSON *d = in->data;
    const char *id = json_str(d, "id"), *open = json_str(o, "disputeId");
    cJSON *ev;

    if (!open || strcmp(open, id) != 0) {
        snprintf(e, n, "dispute %s is not the open dispute %s of order %s", id,
                 open ? open : "(none)", in->order_id);
        return -1;
    }
    ev = new_output(out, n_out, MKT_OUT_DISPUTE_RESOLVED);
    add_str(ev, "id", id);
    add_str(ev, "orderId", in->order_id);
    add_str(ev, "status", "resolved");
    copy_str(ev, "outcome", d, "outcome");
    copy_str(ev, "notes", d, "notes");
    copy_str(ev, "resolvedBy", d, "resolvedBy");
    add_str(ev, "resolvedAt", time);
    add_str(ev, "orderStatus", mkt_state_name(next));
    if (next == MKT_ST_CANCELLED) {
        emit_cancelled(o, in->order_id, "dispute_refund", NULL, id, time, out,
                       n_out);
        set_str(o, "cancelReason", "dispute_refund");
        set_str(o, "cancelledAt", time);
    }
    set_str(o, "disputeOutcome", json_str(d, "outcome"));
    return 0;
}

void mkt_outputs_free(mkt_output_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cJSON_Delete(out[i].data);
        out[i].data = NULL;
    }
}

int mkt_apply(const mkt_input_t *in, const mkt_rule_t *rule, cJSON **order,
              const char *event_id, const char *time, mkt_output_t *out,
              size_t *n_out, char *errstr, size_t errstr_size)
{
    /* Work on a copy: a refused event must leave the record untouched. */
    cJSON *o = *order ? cJSON_Duplicate(*order, 1) : cJSON_CreateObject();
    int64_t version = *order ? json_int(*order, "version") : 0;
    int rc = -1;

    *n_out = 0;
    if (!o) {
        snprintf(errstr, errstr_size, "out of memory");
        goto done;
    }
    switch (in->kind) {
    case MKT_IN_QUOTE_ACCEPTED:
        rc = apply_quote(in, o, time, out, n_out);
        break;
    case MKT_IN_PAYMENT_COMPLETED:
        rc = apply_payment(in, o, time, errstr, errstr_size);
        break;
    case MKT_IN_ESCROW_RELEASED:
        rc = apply_escrow(in, o, time, out, n_out, errstr, errstr_size);
        break;
    case MKT_IN_CANCEL_REQUESTED:
        rc = apply_cancel(in, o, time, out, n_out);
        break;
    case MKT_IN_DISPUTE_OPEN:
        rc = apply_dispute_open(in, o, time, out, n_out);
        break;
    default:
        rc = apply_dispute_resolve(in, o, time, rule->next, out, n_out, errstr,
                                   errstr_size);
        break;
    }
    if (rc != 0)
        goto done;
    set_str(o, "status", mkt_state_name(rule->next));
    set_str(o, "updatedAt", time);
    set_str(o, "lastEventId", event_id);
    set_int(o, "version", (version < 0 ? 0 : version) + 1);
    cJSON_Delete(*order);
    *order = o;
    o = NULL;
done:
    if (rc != 0)
        mkt_outputs_free(out, *n_out);
    cJSON_Delete(o);
    return rc;
}
