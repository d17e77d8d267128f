"""Adversarial names and strings written to a real InfluxDB 1.6.7 come back exactly as encoded."""

from __future__ import annotations

import uuid

import pytest

from dcim.lineprotocol.encode import encode

from dcim.lineprotocol.decode import decode
from dcim.record import Record

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000_000_000

ADVERSARIAL = [
    Record("m with space", {"tag,comma": "v=eq", "t space": "a b"}, {"f=eq": 1.5}, T0 + 1),
    Record("m,comma", {"t": "x\\y"}, {"s": 'quote " and backslash \\ and \\"'}, T0 + 2),
    Record("m=eq#hash", {"t": "two\\\\backslashes"}, {"s": "trailing backslash \\"}, T0 + 3),
    Record("ünïcødé", {"emoji": "🔥 hot", "cjk": "機架"}, {"s": "température 85 °C", "f": -0.0}, T0 + 4),
    Record("types", {"t": "1"}, {"i": -(2**63), "big": 2**63 - 1, "b": True, "f": 1e-300, "s": ""}, T0 + 5),
    Record("types", {"t": "2"}, {"i": 0, "big": 1, "b": False, "f": 1.7976931348623157e308, "s": "x"}, T0 + 6),
    Record("m", {"t": "tab\there", "u": "{json: [1,2]}"}, {"s": "new\\nline escaped stays literal"}, T0 + 7),
]


def test_adversarial_records_round_trip_through_influxdb(influxdb) -> None:
    db = f"lp_{uuid.uuid4().hex[:8]}"
    influxdb.create_database(db)
    text = encode(ADVERSARIAL)
    assert decode(text) == ADVERSARIAL  # our own reader agrees before the server is asked
    influxdb.write(text, db)

    # SELECT * FROM /.*/ returns every measurement; tags come back as columns
    rows = influxdb.points('SELECT * FROM /.*/ GROUP BY *', db)
    got = []
    for row in rows:
        meas = row.pop("_measurement")
        t = row.pop("time")
        rec = next(r for r in ADVERSARIAL if r.measurement == meas and r.time_ns == t)
        tags = {k: row.pop(k) for k in rec.tags}
        fields = {k: v for k, v in row.items() if v is not None and k in rec.fields}
        got.append(Record(meas, tags, fields, t))
    assert len(got) == len(ADVERSARIAL)
    for rec in ADVERSARIAL:
        back = next(g for g in got if g.measurement == rec.measurement and g.time_ns == rec.time_ns)
        assert back.tags == rec.tags, rec
        for k, v in rec.fields.items():
            # InfluxDB's JSON has no int/float distinction for whole numbers; compare values
            assert back.fields[k] == v, (rec.measurement, k)
            if isinstance(v, bool):
                assert isinstance(back.fields[k], bool)
            if isinstance(v, str):
                assert back.fields[k] == v

    # the field types InfluxDB stored are the ones we encoded
    types = {(r["_measurement"], r["fieldKey"]): r["fieldType"] for r in influxdb.points("SHOW FIELD KEYS", db, epoch=None)}
    assert types[("types", "i")] == "integer"
    assert types[("types", "b")] == "boolean"
    assert types[("types", "f")] == "float"
    assert types[("types", "s")] == "string"


def test_influxdb_accepts_all_precisions(influxdb) -> None:
    db = f"lp_{uuid.uuid4().hex[:8]}"
    influxdb.create_database(db)
    rec = Record("p", {"t": "x"}, {"v": 1.0}, 1_767_225_600_123_456_789)
    for precision, expected in (("s", 1_767_225_600_000_000_000), ("ms", 1_767_225_600_123_000_000),
                                ("us", 1_767_225_600_123_456_000), ("ns", 1_767_225_600_123_456_789)):
        # InfluxDB 1.x spells microseconds "u" on /write
        influxdb.write(encode([Record("p", {"t": precision}, rec.fields, rec.time_ns)], precision=precision), db,
                       precision={"us": "u"}.get(precision, precision))
        rows = influxdb.points(f"SELECT v FROM p WHERE t = '{precision}'", db)
        assert [r["time"] for r in rows] == [expected]


def _nasty_records(n: int, seed: int) -> list[Record]:
    """Random records built from the characters line protocol escapes or InfluxDB treats specially."""
    import random

    from dcim.errors import LineProtocolError
    from dcim.lineprotocol.encode import encode_record
    from dcim.record import UInt

    rng = random.Random(seed)
    alphabet = 'ab,= "\\\t\r#é🔥'

    def name() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))

    out: list[Record] = []
    while len(out) < n:
        i = len(out)
        value_kind = rng.randrange(5)
        value = [rng.uniform(-1e6, 1e6), rng.randint(-(2**63), 2**63 - 1), rng.choice([True, False]),
                 "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))), UInt(rng.randint(0, 2**63 - 1))][value_kind]
        # keys unique per record: one query reads every measurement, and a field name shared by
        # two measurements with two types would be one column of one type
        rec = Record(f"{i:03d}{name()}", {f"t{i:03d}{name()}": name() for _ in range(rng.randint(0, 3))},
                     {f"f{i:03d}{name()}": value}, T0 + i)
        try:
            encode_record(rec)
        except LineProtocolError:
            continue  # refused with a reason: nothing is written, so nothing can be stored differently
        out.append(rec)
    return out


def test_encoder_output_is_stored_exactly_as_given(influxdb) -> None:
    """Property: whatever the encoder writes, InfluxDB 1.6.7 stores unchanged (names, tags, values)."""
    db = f"lp_{uuid.uuid4().hex[:8]}"
    influxdb.create_database(db)
    records = [r for r in _nasty_records(150, seed=7) if not any(type(v).__name__ == "UInt" for v in r.fields.values())]
    text = encode(records)
    assert decode(text) == records
    influxdb.write(text, db)
    rows = influxdb.points("SELECT * FROM /.*/ GROUP BY *", db)
    by_time = {}
    for row in rows:
        meas = row.pop("_measurement")
        t = row.pop("time")
        by_time[t] = (meas, row)
    assert len(by_time) == len(records)
    for rec in records:
        meas, row = by_time[rec.time_ns]
        assert meas == rec.measurement
        tags = {k: row.pop(k) for k in list(row) if k.startswith("t") and row[k] is not None and k in rec.tags}
        assert tags == rec.tags, (rec, row)
        fields = {k: v for k, v in row.items() if v is not None and k in rec.fields}
        assert fields == rec.fields, (rec, row)
