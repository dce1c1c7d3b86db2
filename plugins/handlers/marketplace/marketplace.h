/*
 * Marketplace order handler: internals shared by its source files.
 *
 * order.c holds the pure part (input parsing, the transition table, the
 * order record and the events a transition emits); marketplace.c holds the
 * plugin glue (config, host state transactions, idempotency, emit).
 */
#ifndef ES_MARKETPLACE_H
#define ES_MARKETPLACE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Order states. NONE is "no record for this order id in this tenant". */
typedef enum mkt_state_e {
    MKT_ST_NONE = 0,
    MKT_ST_CREATED,
    MKT_ST_PAID,
    MKT_ST_DISPUTED,
    MKT_ST_COMPLETED,
    MKT_ST_CANCELLED,
    MKT_ST_COUNT
} mkt_state_t;

/*
 * Logical input events. A dispute resolution is two logical events, one per
 * outcome, so that the transition table alone decides the next state.
 */
typedef enum mkt_input_kind_e {
    MKT_IN_QUOTE_ACCEPTED = 0,
    MKT_IN_PAYMENT_COMPLETED,
    MKT_IN_ESCROW_RELEASED,
    MKT_IN_CANCEL_REQUESTED,
    MKT_IN_DISPUTE_OPEN,
    MKT_IN_DISPUTE_RELEASE, /* resolved in favour of the seller */
    MKT_IN_DISPUTE_REFUND,  /* resolved in favour of the buyer */
    MKT_IN_COUNT
} mkt_input_kind_t;

/* Events the handler emits. */
typedef enum mkt_output_kind_e {
    MKT_OUT_ORDER_CREATED = 0,
    MKT_OUT_ORDER_COMPLETED,
    MKT_OUT_ORDER_CANCELLED,
    MKT_OUT_DISPUTE_OPENED,
    MKT_OUT_DISPUTE_RESOLVED,
    MKT_OUT_COUNT
} mkt_output_kind_t;

typedef enum mkt_verdict_e {
    MKT_APPLY = 1,   /* legal: apply, emit, move to `next` */
    MKT_WAIT = 2,    /* may be early (out of order): retry for a bounded time */
    MKT_ILLEGAL = 3, /* dead-letter with a reason */
} mkt_verdict_t;

typedef struct mkt_rule_s {
    mkt_verdict_t verdict;
    mkt_state_t next;
} mkt_rule_t;

/* A parsed, validated input event. Strings point into the event's cJSON. */
typedef struct mkt_input_s {
    mkt_input_kind_t kind;
    const char *order_id; /* data.orderId, or order_id_buf */
    char order_id_buf[37];
    const cJSON *data;
    int64_t amount; /* minor units; valid when has_amount */
    int has_amount;
    const char *currency; /* ISO 4217, NULL when absent */
} mkt_input_t;

/* One event a transition emits: its kind and its `data` object (owned). */
typedef struct mkt_output_s {
    mkt_output_kind_t kind;
    cJSON *data;
} mkt_output_t;

#define MKT_MAX_OUTPUTS 2

const char *mkt_state_name(mkt_state_t st);
int mkt_state_parse(const char *name, mkt_state_t *st);
const char *mkt_input_name(mkt_input_kind_t kind);
const char *mkt_output_type(mkt_output_kind_t kind);
const mkt_rule_t *mkt_rule(mkt_input_kind_t kind, mkt_state_t st);

/*
 * Maps a CloudEvents type to its input kind. Returns 0, or -1 when the type
 * is not one the handler consumes.
 */
int mkt_input_kind_of_type(const char *type, mkt_input_kind_t *kind);

/*
 * Validates `data` of an event of `type` for `tenant` and fills `in`.
 * Returns 0, or -1 with the reason in errstr.
 */
int mkt_input_parse(const char *type, const char *tenant, const cJSON *data,
                    mkt_input_t *in, char *errstr, size_t errstr_size);

/*
 * Applies a legal transition: updates (or, for an order that does not exist
 * yet, creates) the order record *order, and fills out[] with the events to
 * emit (*n_out of them). `time` is the transition's timestamp. Returns 0, or
 * -1 with the reason in errstr when the event contradicts the order (amount,
 * currency or dispute id mismatch); then nothing is changed.
 */
int mkt_apply(const mkt_input_t *in, const mkt_rule_t *rule, cJSON **order,
              const char *event_id, const char *time, mkt_output_t *out,
              size_t *n_out, char *errstr, size_t errstr_size);

void mkt_outputs_free(mkt_output_t *out, size_t n);

/* State of an order record (MKT_ST_NONE for NULL or a malformed record). */
mkt_state_t mkt_order_state(const cJSON *order);

/* Name-based UUID (RFC 4122 version 5, SHA-1) in the handler's namespace
 * over `name`; writes 36 characters and a NUL into out. */
int mkt_uuid5(const char *name, size_t name_len, char out[37]);

/* Current UTC time as RFC 3339 with milliseconds ("...T12:00:00.000Z"). */
void mkt_time_now(char out[32]);

#endif
