#!/usr/bin/python3
"""Test vectors for the Avro decoder, encoded by an independent producer
(Debian's python3-avro), never by the decoder under test.

    avro_fixtures.py OUTDIR
    avro_fixtures.py --e2e OUTDIR   (also OUTDIR/e2e/*.bin for tests/e2e/avro.sh)

writes OUTDIR/registry/{id}.avsc (served by avro_registry.py),
OUTDIR/local/*.avsc (topics' local schemas) and OUTDIR/cases.json: a list of
{name, topic, hex, headers, status ("ok" | "fail" | "retry"), expect (the
JSON the decoder must produce, for "ok"), reason (a substring of the reason,
otherwise), mode ("event" or "value")}. Expected JSON is written out by
hand here, following docs/avro.md, not computed from the decoder.
"""
import datetime
import decimal
import io
import json
import os
import struct
import sys
import warnings

import avro.io
import avro.schema

UTC = datetime.timezone.utc
# python3-avro warns about logical types it does not know (duration) or
# that are invalid on purpose; the encoding is right either way.
warnings.simplefilter("ignore")

ITEM = {
    "type": "record",
    "name": "Item",
    "namespace": "com.example.shop",
    "fields": [
        {"name": "sku", "type": "string"},
        {"name": "qty", "type": "int"},
    ],
}

ALL_TYPES = {
    "type": "record",
    "name": "AllTypes",
    "namespace": "com.example.shop",
    "fields": [
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "big", "type": "long"},
        {"name": "neg", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "s", "type": "string"},
        {"name": "by", "type": "bytes"},
        {"name": "e", "type": {"type": "enum", "name": "Color",
                               "symbols": ["RED", "GREEN", "BLUE"]}},
        {"name": "fx", "type": {"type": "fixed", "name": "Tag", "size": 4}},
        {"name": "items", "type": {"type": "array", "items": ITEM}},
        {"name": "empty", "type": {"type": "array", "items": "long"}},
        {"name": "m", "type": {"type": "map", "values": "long"}},
        {"name": "nested", "type": {
            "type": "record", "name": "Outer", "namespace": "com.example.other",
            "fields": [
                {"name": "inner", "type": {
                    "type": "record", "name": "Inner",
                    "fields": [{"name": "depth", "type": "int"},
                               {"name": "color", "type": "com.example.shop.Color"}]}},
                {"name": "again", "type": "Inner"},
                {"name": "item", "type": "com.example.shop.Item"},
            ]}},
        {"name": "u_null", "type": ["null", "string"]},
        {"name": "u_str", "type": ["null", "string"]},
        {"name": "u_rec", "type": ["null", "Item"]},
        {"name": "u_int", "type": ["string", "int", "null"]},
        {"name": "u_map", "type": ["null", {"type": "map", "values": ["null", "double"]}]},
        {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal",
                                 "precision": 10, "scale": 2}},
        {"name": "dec_small", "type": {"type": "bytes", "logicalType": "decimal",
                                       "precision": 5, "scale": 4}},
        {"name": "dec_fixed", "type": {"type": "fixed", "name": "Money", "size": 8,
                                       "logicalType": "decimal",
                                       "precision": 18, "scale": 4}},
        {"name": "ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "ts_old", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "t_ms", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "t_us", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
    ],
}

ALL_DATUM = {
    "b": True, "i": -42, "l": 1234567890123, "big": 9007199254740993,
    "neg": -9223372036854775808, "f": 1.5, "d": -0.25,
    "s": "h\u00e9llo \u2713 \"quoted\"", "by": b"\x00\x01\xfe\xff",
    "e": "GREEN", "fx": b"ab\x00c",
    "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 0}],
    "empty": [], "m": {"x": 1, "y": -2},
    "nested": {"inner": {"depth": 1, "color": "BLUE"},
               "again": {"depth": 2, "color": "RED"},
               "item": {"sku": "C", "qty": 7}},
    "u_null": None, "u_str": "x", "u_rec": {"sku": "D", "qty": 1}, "u_int": 5,
    "u_map": {"p": None, "q": 2.5},
    "dec": decimal.Decimal("-1234.56"), "dec_small": decimal.Decimal("0.0123"),
    "dec_fixed": decimal.Decimal("12.3400"),
    "ts_ms": datetime.datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=UTC),
    "ts_us": datetime.datetime(2024, 2, 29, 12, 34, 56, 123456, tzinfo=UTC),
    "ts_old": datetime.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    "day": datetime.date(2024, 2, 29),
    "t_ms": datetime.time(12, 34, 56, 789000),
    "t_us": datetime.time(23, 59, 59, 999999),
    "uid": "6f1c2d1e-3b0a-4c55-9a8e-2f4b7d1e0c11",
}

# What docs/avro.md says the decoder makes of ALL_DATUM.
ALL_EXPECT = {
    "b": True, "i": -42, "l": 1234567890123, "big": 9007199254740993,
    "neg": -9223372036854775808, "f": 1.5, "d": -0.25,
    "s": "h\u00e9llo \u2713 \"quoted\"", "by": "AAH+/w==",
    "e": "GREEN", "fx": "YWIAYw==",
    "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 0}],
    "empty": [], "m": {"x": 1, "y": -2},
    "nested": {"inner": {"depth": 1, "color": "BLUE"},
               "again": {"depth": 2, "color": "RED"},
               "item": {"sku": "C", "qty": 7}},
    "u_null": None, "u_str": "x", "u_rec": {"sku": "D", "qty": 1}, "u_int": 5,
    "u_map": {"p": None, "q": 2.5},
    "dec": "-1234.56", "dec_small": "0.0123", "dec_fixed": "12.3400",
    "ts_ms": "2024-02-29T12:34:56.789Z", "ts_us": "2024-02-29T12:34:56.123456Z",
    "ts_old": "1969-12-31T23:59:59.999Z",
    "day": "2024-02-29", "t_ms": "12:34:56.789", "t_us": "23:59:59.999999",
    "uid": "6f1c2d1e-3b0a-4c55-9a8e-2f4b7d1e0c11",
}

CLOUDEVENT = {
    "type": "record", "name": "OrderCreated", "namespace": "com.eventzr",
    "fields": [
        {"name": "specversion", "type": "string"},
        {"name": "id", "type": "string"},
        {"name": "source", "type": "string"},
        {"name": "type", "type": "string"},
        {"name": "subject", "type": ["null", "string"], "default": None},
        {"name": "time", "type": ["null", "string"], "default": None},
        {"name": "tenantid", "type": "string"},
        {"name": "data", "type": {"type": "record", "name": "Order", "fields": [
            {"name": "orderId", "type": "string"},
            {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal",
                                        "precision": 9, "scale": 2}},
            {"name": "lines", "type": {"type": "array", "items": {
                "type": "record", "name": "Line", "fields": [
                    {"name": "sku", "type": "string"},
                    {"name": "qty", "type": "int"}]}}},
        ]}},
    ],
}

CE_DATUM = {
    "specversion": "1.0", "id": "evt-1", "source": "/marketplace",
    "type": "eventzr.marketplace.order.created.v1", "subject": None,
    "time": "2026-11-23T10:00:00Z", "tenantid": "t-42",
    "data": {"orderId": "o-1", "amount": decimal.Decimal("99.95"),
             "lines": [{"sku": "S1", "qty": 3}]},
}

CE_EXPECT = {
    "specversion": "1.0", "id": "evt-1", "source": "/marketplace",
    "type": "eventzr.marketplace.order.created.v1",
    "time": "2026-11-23T10:00:00Z", "tenantid": "t-42",
    "data": {"orderId": "o-1", "amount": "99.95",
             "lines": [{"sku": "S1", "qty": 3}]},
}

# Starts with an int, so a value whose first field is 0 begins with 0x00.
LOCAL = {
    "type": "record", "name": "Reading", "namespace": "com.example.iot",
    "fields": [
        {"name": "seq", "type": "int"},
        {"name": "sensor", "type": "string"},
        {"name": "values", "type": {"type": "array", "items": "double"}},
    ],
}

# A recursive type: a linked list.
LIST = {
    "type": "record", "name": "Node", "fields": [
        {"name": "v", "type": "int"},
        {"name": "next", "type": ["null", "Node"]},
    ],
}

NULLS = {"type": "record", "name": "Nulls", "fields": [
    {"name": "n", "type": {"type": "array", "items": "null"}}]}

STRS = {"type": "record", "name": "Strs", "fields": [
    {"name": "a", "type": "string"},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "c", "type": ["null", "string"]},
]}

ENUM = {"type": "record", "name": "E", "fields": [
    {"name": "ok", "type": "boolean"},
    {"name": "c", "type": {"type": "enum", "name": "C2", "symbols": ["A", "B"]}}]}

def dec_field(name, precision, scale):
    return {"name": name, "type": {"type": "bytes", "logicalType": "decimal",
                                   "precision": precision, "scale": scale}}


DECIMALS = {"type": "record", "name": "Decimals", "fields": [
    dec_field("neg_small", 6, 4), dec_field("zero", 4, 2), dec_field("int", 5, 0),
    dec_field("minus128", 3, 0), dec_field("huge", 40, 2),
    # Not a valid decimal (scale > precision): the spec says ignore it.
    {"name": "ignored", "type": {"type": "bytes", "logicalType": "decimal",
                                 "precision": 2, "scale": 3}},
    {"name": "dur", "type": {"type": "fixed", "name": "Dur", "size": 12,
                             "logicalType": "duration"}},
]}

REGISTRY = {1: ALL_TYPES, 2: CLOUDEVENT, 3: LOCAL, 4: LIST, 5: NULLS, 6: STRS,
            7: ITEM, 8: ENUM, 9: DECIMALS, 10: CLOUDEVENT}
CE_HEADERS = {"ce_specversion": "1.0", "ce_id": "hdr-1", "ce_source": "/shop",
              "ce_type": "com.example.shop.all", "ce_subject": "sub",
              "ce_tenantid": "t-7", "content-type": "application/avro"}


def encode(schema, datum):
    buf = io.BytesIO()
    avro.io.DatumWriter(avro.schema.parse(json.dumps(schema))).write(
        datum, avro.io.BinaryEncoder(buf))
    return buf.getvalue()


def wire(sid, body):
    return b"\x00" + struct.pack(">i", sid) + body


def zigzag(n):
    z = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def case(cases, name, topic, value, status, expect=None, reason=None,
         headers=None, mode="value"):
    cases.append({"name": name, "topic": topic, "hex": value.hex(),
                  "status": status, "expect": expect, "reason": reason,
                  "headers": headers or {}, "mode": mode})


def build_cases():
    c = []
    all_body = encode(ALL_TYPES, ALL_DATUM)
    all_wire = wire(1, all_body)
    case(c, "all_types", "shop", all_wire, "ok", ALL_EXPECT)
    case(c, "all_types_binary_mode_event", "shop", all_wire, "ok",
         {"specversion": "1.0", "id": "hdr-1", "source": "/shop",
          "type": "com.example.shop.all", "subject": "sub", "tenantid": "t-7",
          "datacontenttype": "application/json", "data": ALL_EXPECT},
         headers=CE_HEADERS, mode="event")
    case(c, "cloudevent_record", "orders", wire(2, encode(CLOUDEVENT, CE_DATUM)),
         "ok", CE_EXPECT, headers=CE_HEADERS, mode="event")
    lst = {"v": 1, "next": {"v": 2, "next": {"v": 3, "next": None}}}
    case(c, "recursive", "shop", wire(4, encode(LIST, lst)), "ok", lst)
    case(c, "item_by_other_id", "shop", wire(7, encode(ITEM, {"sku": "Z", "qty": 9})),
         "ok", {"sku": "Z", "qty": 9})
    # Local schema topic: plain Avro, plain starting with 0x00, and wire format.
    reading0 = {"seq": 0, "sensor": "t1", "values": [1.0, 2.5]}
    reading7 = {"seq": 7, "sensor": "t2", "values": []}
    case(c, "local_plain", "iot", encode(LOCAL, reading7), "ok", reading7)
    case(c, "local_plain_leading_zero", "iot", encode(LOCAL, reading0), "ok",
         reading0)
    case(c, "local_wire", "iot", wire(3, encode(LOCAL, reading7)), "ok",
         reading7)
    case(c, "local_plain_truncated", "iot", encode(LOCAL, reading7)[:-1], "fail",
         reason="truncated")
    case(c, "local_plain_trailing", "iot", encode(LOCAL, reading7) + b"\x02",
         "fail", reason="trailing bytes: 1 bytes after the value ends at byte")
    # Bad inputs.
    case(c, "unknown_magic", "shop", b"\x01" + all_wire[1:], "fail",
         reason="unknown magic byte 0x01")
    case(c, "json_on_avro_topic", "shop", b'{"id":1}', "fail",
         reason="unknown magic byte 0x7b")
    case(c, "short_header", "shop", b"\x00\x00\x01", "fail",
         reason="shorter than the 5-byte wire-format header")
    case(c, "empty", "shop", b"", "fail", reason="empty value")
    case(c, "unknown_schema_id", "shop", wire(999, all_body), "fail",
         reason="unknown schema id 999 (schema registry answered 404)")
    case(c, "registry_5xx", "shop", wire(500, all_body), "retry",
         reason="schema registry answered HTTP 503 fetching id 500")
    case(c, "truncated", "shop", all_wire[:-3], "fail", reason="truncated: ")
    case(c, "truncated_mid_string", "shop", wire(7, encode(ITEM, {"sku": "abcdef", "qty": 1}))[:8],
         "fail", reason="truncated: string at byte 6 needs 6 bytes, 2 left (in sku)")
    case(c, "trailing", "shop", all_wire + b"\x00\x00", "fail",
         reason="trailing bytes: 2 bytes after the value ends at byte %d" % len(all_wire))
    huge = wire(7, zigzag(1 << 40) + b"abc")
    case(c, "oversize_string_length", "shop", huge, "fail",
         reason="oversize string length 1099511627776 at byte 5")
    case(c, "negative_length", "shop", wire(7, zigzag(-3) + b"abc\x02"), "fail",
         reason="negative string length -3 at byte 5")
    case(c, "oversize_array_count", "shop",
         wire(6, zigzag(1) + b"a" + zigzag(1 << 50) + b"\x02b" + b"\x00\x00"), "fail",
         reason="oversize array block count 1125899906842624 at byte 7")
    case(c, "array_of_nulls_over_limit", "shop", wire(5, zigzag(200001) + b"\x00"),
         "fail", reason="limit 100000 items per value")
    case(c, "array_of_nulls_ok", "shop", wire(5, zigzag(3) + b"\x00"), "ok",
         {"n": [None, None, None]})
    case(c, "bad_union_index", "shop", wire(4, zigzag(1) + zigzag(5)), "fail",
         reason="union index 5 at byte 6 is out of range (2 branches) (in next)")
    dec = {"neg_small": decimal.Decimal("-0.0050"), "zero": decimal.Decimal("0.00"),
           "int": decimal.Decimal("255"), "minus128": decimal.Decimal("-128"),
           "huge": decimal.Decimal("-12345678901234567890123456789012345678.90"),
           "ignored": b"\xff", "dur": struct.pack("<III", 1, 2, 3)}
    case(c, "decimals", "shop", wire(9, encode(DECIMALS, dec)), "ok",
         {"neg_small": "-0.0050", "zero": "0.00", "int": "255", "minus128": "-128",
          "huge": "-12345678901234567890123456789012345678.90", "ignored": "/w==",
          "dur": {"months": 1, "days": 2, "milliseconds": 3}})
    case(c, "enum_ok", "shop", wire(8, encode(ENUM, {"ok": False, "c": "B"})), "ok",
         {"ok": False, "c": "B"})
    case(c, "bad_enum_index", "shop", wire(8, b"\x01" + zigzag(2)), "fail",
         reason="enum index 2 at byte 6 is out of range (C2 has 2 symbols) (in c)")
    case(c, "bad_boolean", "shop", wire(8, b"\x02" + zigzag(0)), "fail",
         reason="boolean at byte 5 is 2, not 0 or 1 (in ok)")
    case(c, "bad_utf8", "shop", wire(7, zigzag(2) + b"\xc3\x28" + zigzag(1)),
         "fail", reason="not valid UTF-8")
    case(c, "nul_in_string", "shop", wire(7, zigzag(2) + b"a\x00" + zigzag(1)),
         "fail", reason="U+0000")
    case(c, "bad_varint", "shop", wire(7, zigzag(1) + b"a" + b"\xff" * 11), "fail",
         reason="malformed varint")
    case(c, "int_out_of_range", "shop", wire(7, zigzag(1) + b"a" + zigzag(1 << 40)),
         "fail", reason="int at byte 7 is out of the int range (in qty)")
    case(c, "not_a_cloudevent_no_headers", "shop", wire(7, encode(ITEM, {"sku": "Z", "qty": 9})),
         "fail", reason="header ce_specversion is missing", mode="event")
    return c


def write_e2e(out):
    """One file per Kafka record value (kcat -P sends each file as one)."""
    d = os.path.join(out, "e2e")
    os.makedirs(d, exist_ok=True)

    def put(name, value):
        with open(os.path.join(d, name + ".bin"), "wb") as f:
            f.write(value)

    for n in range(1, 6):
        ev = dict(CE_DATUM, id="avro-%d" % n)
        put("orders_%d" % n, wire(2, encode(CLOUDEVENT, ev)))
    put("binary_mode", wire(7, encode(ITEM, {"sku": "bin-1", "qty": 4})))
    put("iot_plain", encode(LOCAL, {"seq": 0, "sensor": "plain", "values": [0.5]}))
    put("iot_wire", wire(3, encode(LOCAL, {"seq": 9, "sensor": "wire", "values": []})))
    put("late", wire(10, encode(CLOUDEVENT, dict(CE_DATUM, id="avro-late"))))
    body = encode(CLOUDEVENT, dict(CE_DATUM, id="avro-bad"))
    bad = {
        "bad_magic": (b"\x01" + wire(2, body)[1:], "unknown magic byte 0x01"),
        "bad_id": (wire(999, body), "unknown schema id 999"),
        "bad_truncated": (wire(2, body)[:-4], "truncated: "),
        "bad_trailing": (wire(2, body) + b"\x00", "trailing bytes: 1 bytes"),
        "bad_oversize": (wire(2, zigzag(1 << 40) + b"1.0"), "oversize string length"),
    }
    with open(os.path.join(d, "bad.tsv"), "w") as f:
        for name, (value, reason) in bad.items():
            put(name, value)
            f.write("%s\t%s\n" % (name, reason))


BENCH = {
    "type": "record", "name": "OrderCreated", "namespace": "com.eventzr.bench",
    "fields": [
        {"name": "specversion", "type": "string"},
        {"name": "id", "type": "string"},
        {"name": "source", "type": "string"},
        {"name": "type", "type": "string"},
        {"name": "subject", "type": ["null", "string"]},
        {"name": "time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "tenantid", "type": "string"},
        {"name": "data", "type": {"type": "record", "name": "Order", "fields": [
            {"name": "orderId", "type": "string"},
            {"name": "status", "type": {"type": "enum", "name": "Status",
                                        "symbols": ["NEW", "PAID", "SHIPPED"]}},
            {"name": "total", "type": {"type": "bytes", "logicalType": "decimal",
                                       "precision": 12, "scale": 2}},
            {"name": "currency", "type": "string"},
            {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [
                {"name": "id", "type": "string"}, {"name": "email", "type": "string"},
                {"name": "name", "type": "string"},
                {"name": "phone", "type": ["null", "string"]}]}},
            {"name": "lines", "type": {"type": "array", "items": {
                "type": "record", "name": "Line", "fields": [
                    {"name": "sku", "type": "string"}, {"name": "title", "type": "string"},
                    {"name": "qty", "type": "int"},
                    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal",
                                               "precision": 10, "scale": 2}}]}}},
            {"name": "attributes", "type": {"type": "map", "values": "string"}},
            {"name": "createdAt", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        ]}},
    ],
}


def write_bench(out, n):
    """n events ~1.1 KB as JSON: bench.avsc, bench.avro (each value as a
    4-byte big-endian length + wire-format value) and bench.jsonl (the same
    events as the JSON the decoder produces)."""
    d = os.path.join(out, "bench")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "bench.avsc"), "w") as f:
        json.dump(BENCH, f)
    base = datetime.datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
    with open(os.path.join(d, "bench.avro"), "wb") as fa, \
            open(os.path.join(d, "bench.jsonl"), "w") as fj:
        for i in range(n):
            t = base + datetime.timedelta(milliseconds=i * 37)
            lines = [{"sku": "SKU-%05d-%d" % (i, k), "title": "Product number %d of order %d" % (k, i),
                      "qty": k + 1, "price": decimal.Decimal("%d.%02d" % (10 + k, i % 100))}
                     for k in range(6)]
            ev = {"specversion": "1.0", "id": "bench-%08d" % i,
                  "source": "/marketplace-svc/orders",
                  "type": "eventzr.marketplace.order.created.v1",
                  "subject": "order/%d" % i, "time": t, "tenantid": "tenant-%03d" % (i % 50),
                  "data": {"orderId": "ord-%08d" % i, "status": "PAID",
                           "total": decimal.Decimal("%d.%02d" % (100 + i % 900, i % 100)),
                           "currency": "EUR",
                           "customer": {"id": "cust-%06d" % (i % 5000),
                                        "email": "customer%d@example.com" % (i % 5000),
                                        "name": "Customer Name %d" % (i % 5000),
                                        "phone": None},
                           "lines": lines,
                           "attributes": {"channel": "web", "campaign": "winter-sale",
                                          "locale": "de-DE"},
                           "createdAt": t}}
            value = wire(1, encode(BENCH, ev))
            fa.write(struct.pack(">I", len(value)) + value)
            js = dict(ev, time=t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000))
            js["data"] = dict(ev["data"], total=str(ev["data"]["total"]),
                              createdAt=js["time"],
                              lines=[dict(l, price=str(l["price"])) for l in lines])
            fj.write(json.dumps(js, separators=(",", ":")) + "\n")


def main():
    if sys.argv[1] == "--bench":
        write_bench(sys.argv[3], int(sys.argv[2]))
        return 0
    if sys.argv[1] == "--e2e":
        write_e2e(sys.argv[2])
        sys.argv.pop(1)
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "registry"), exist_ok=True)
    os.makedirs(os.path.join(out, "local"), exist_ok=True)
    for sid, schema in REGISTRY.items():
        with open(os.path.join(out, "registry", "%d.avsc" % sid), "w") as f:
            json.dump(schema, f, indent=1)
    with open(os.path.join(out, "registry", "500.status"), "w") as f:
        f.write("503\n")
    with open(os.path.join(out, "local", "reading.avsc"), "w") as f:
        json.dump(LOCAL, f, indent=1)
    with open(os.path.join(out, "local", "broken.avsc"), "w") as f:
        f.write('{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}')
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump({"local": {"iot": os.path.join(out, "local", "reading.avsc")},
                   "cases": build_cases()}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
