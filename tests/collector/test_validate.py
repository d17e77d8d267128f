"""Decode and validate: every bad line is refused with its reason, the good ones always go on."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings

from dcim.collector.validate import REASONS, Validator
from dcim.lineprotocol.encode import encode_record
from dcim.lineprotocol.decode import decode, decode_line, measurement_and_time
from dcim.record import Record, UInt
from dcim.schema import MEASUREMENTS

NOW = 1_800_000_000 * 10**9
V = Validator(max_future_s=600, max_past_s=86400)


def good_line(i: int = 0, t: int = NOW) -> str:
    return f"gpu,site=dc1,node=n1,gpu={i} power_w=300.5,temp_c=55,mem_used_bytes=12i,throttle_hw_slowdown=false {t}"


def reasons(payload: bytes) -> list[str]:
    return [r.reason for r in V.lines(payload, NOW)[1]]


def test_plain_lines_pass_through_unchanged():
    payload = "\n".join(good_line(i) for i in range(3)).encode()
    lines, rejects = V.lines(payload, NOW)
    assert rejects == []
    assert lines == [good_line(i) for i in range(3)]


def test_each_bad_line_is_refused_alone_with_its_reason():
    payload = "\n".join([
        good_line(0),
        "nosuch,node=n1 x=1 %d" % NOW,
        "gpu,node=n1 power_w=1,bogus_field=2 %d" % NOW,
        "gpu,node=n1 power_w=\"hot\" %d" % NOW,
        "gpu,node=n1 throttle_hw_slowdown=1.5 %d" % NOW,
        "gpu,node=n1 power_w=1 %d" % (NOW + 3600 * 10**9),
        "gpu,node=n1 power_w=1 %d" % (NOW - 2 * 86400 * 10**9),
        "gpu,node=n1 power_w=",
        "this is not line protocol at all",
        good_line(1),
    ]).encode()
    lines, rejects = V.lines(payload, NOW)
    assert lines == [good_line(0), good_line(1)]
    assert [(r.reason, r.line) for r in rejects] == [
        ("unknown_measurement", 2), ("unknown_field", 3), ("wrong_type", 4), ("wrong_type", 5),
        ("time_future", 6), ("time_past", 7), ("parse_error", 8), ("parse_error", 9),
    ]
    assert all(r.reason in REASONS for r in rejects)
    assert "bogus_field" in rejects[1].detail and rejects[1].text.startswith("gpu,node=n1 power_w=1,bogus")


def test_careful_path_coerces_and_stamps():
    # an int for a float field would conflict in InfluxDB: it is written as a float
    lines, rejects = V.lines(b"gpu,node=n1 power_w=300i,temp_c=50\n", NOW)
    assert rejects == []
    (rec,) = decode(lines[0])
    assert rec.fields == {"power_w": 300.0, "temp_c": 50.0} and type(rec.fields["power_w"]) is float
    assert rec.time_ns == NOW  # no timestamp: the arrival time
    # strings, escapes and unsigned integers take the careful path and come out equal
    src = Record("agent", {"component": "gpu", "host": "h 1"}, {"message": 'say "hi"', "errors_total": 3}, NOW)
    lines, rejects = V.lines(encode_record(src).encode(), NOW)
    assert rejects == [] and decode(lines[0]) == [src]
    lines, rejects = V.lines(f"netif,switch=s1 rx_bytes_total=5u {NOW}".encode(), NOW)
    assert rejects == [] and decode(lines[0])[0].fields == {"rx_bytes_total": UInt(5)}


def test_comments_blank_lines_and_crlf():
    payload = f"# a comment\n\n{good_line(0)}\r\n\r\n{good_line(1)}\r\n".encode()
    lines, rejects = V.lines(payload, NOW)
    assert rejects == [] and lines == [good_line(0), good_line(1)]


def test_invalid_utf8_costs_only_its_line():
    payload = good_line(0).encode() + b"\ngpu,node=\xff\xfe power_w=1\n" + good_line(1).encode()
    lines, rejects = V.lines(payload, NOW)
    assert lines == [good_line(0), good_line(1)]
    assert [r.reason for r in rejects] == ["parse_error"]


def test_nan_and_odd_numbers_are_not_passed_through():
    assert reasons(f"gpu,node=n1 power_w=nan {NOW}".encode()) == ["parse_error"]
    assert reasons(f"gpu,node=n1 power_w=1_000 {NOW}".encode()) == ["parse_error"]
    assert reasons(f"gpu,node=n1 mem_used_bytes=+1i {NOW}".encode()) == ["parse_error"]
    assert reasons(f"gpu,node=n1 power_w=1 +{NOW}".encode()) == ["parse_error"]
    assert reasons(f"gpu,node=n1,time=x power_w=1 {NOW}".encode()) == ["parse_error"]
    assert reasons(f"gpu,node=n1,node=n2 power_w=1 {NOW}".encode()) == ["parse_error"]  # duplicate tag
    assert reasons(f"gpu,node=n1 power_w=1\t {NOW}".encode()) == ["parse_error"]  # float() would strip it
    assert reasons(f"gpu,node=n1 power_w=1\u0661 {NOW}".encode()) == ["parse_error"]  # a non-ASCII digit
    assert reasons(f"gpu,node=n1 power_w=1e999 {NOW}".encode()) == ["parse_error"]
    # InfluxDB reads "node==n1" as the tag value "=n1"; so does the collector
    lines, rejects = V.lines(f"gpu,node==n1 power_w=1 {NOW}".encode(), NOW)
    assert rejects == [] and decode(lines[0])[0].tags == {"node": "=n1"}


@given(st.binary(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_random_bytes_never_raise(data):
    lines, rejects = V.lines(data, NOW)
    for line in lines:  # whatever got through is valid line protocol that fits the schema
        (rec,) = decode(line)
        assert rec.measurement in MEASUREMENTS


_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def schema_records(draw):
    meas = draw(st.sampled_from(sorted(MEASUREMENTS)))
    m = MEASUREMENTS[meas]
    names = draw(st.lists(st.sampled_from(sorted(m.fields)), min_size=1, max_size=6, unique=True))
    fields = {}
    for n in names:
        t = m.fields[n].type
        fields[n] = draw({"float": _finite, "int": st.integers(-(2**63), 2**63 - 1),
                          "uint": st.integers(0, 2**64 - 1).map(UInt), "bool": st.booleans(),
                          "str": st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
                                         max_size=20)}[t])
    tags = draw(st.dictionaries(st.sampled_from(m.tags), st.text(
        st.characters(blacklist_characters="\r\n\\", blacklist_categories=("Cs",)), min_size=1, max_size=8), max_size=4))
    t = draw(st.integers(NOW - 86400 * 10**9, NOW + 600 * 10**9))
    return Record(meas, tags, fields, t)


@given(st.lists(schema_records(), min_size=1, max_size=8))
@settings(max_examples=200, deadline=None)
def test_valid_records_survive_exactly(records):
    payload = "\n".join(encode_record(r) for r in records).encode()
    lines, rejects = V.lines(payload, NOW)
    assert rejects == []
    assert [decode(line)[0] for line in lines] == records


@given(st.lists(schema_records(), min_size=1, max_size=8))
@settings(max_examples=200, deadline=None)
def test_the_records_beside_the_lines_are_what_the_lines_say(records):
    payload = "\n".join(encode_record(r) for r in records).encode()
    for _ in range(2):  # and again from the layout cache
        lines, got, rejects = V.read(payload, NOW)
        assert rejects == [] and got == records
        assert decode("\n".join(lines)) == records


_RAW_VALUES = ["1", "-2.5", ".5", "1e3", "7i", "-7i", "7u", "0u", "t", "FALSE", "true", '"x"', '"a b"',
               '"a\\"b"', '"a,b=c"', "nan", "1_0", "+1i", ""]


@st.composite
def odd_lines(draw):
    """Lines as other writers send them: values of any type in any field, escapes, blanks, CRLF,
    comments, a timestamp or none (or one in seconds), an unknown measurement now and then."""
    meas = draw(st.sampled_from([*sorted(MEASUREMENTS), "nosuch"]))
    m = MEASUREMENTS.get(meas)
    tag_names = list(m.tags) if m is not None else ["t"]
    field_names = sorted(m.fields) if m is not None else ["f"]
    tags = draw(st.dictionaries(st.sampled_from(tag_names),
                                st.sampled_from(["n1", "a\\ b", "a\\,b", "x=y", "h\\=1"]), max_size=3))
    names = draw(st.lists(st.sampled_from(field_names), min_size=1, max_size=4))
    values = [draw(st.sampled_from(_RAW_VALUES)) for _ in names]
    key = ",".join([meas, *(f"{k}={v}" for k, v in tags.items())])
    fields = ",".join(f"{n}={v}" for n, v in zip(names, values))
    ts = draw(st.sampled_from(["", f" {NOW}", f"  {NOW}", f" {NOW // 10**9}", f" {NOW} ", " -1"]))
    lead = draw(st.sampled_from(["", " ", "\t"]))
    tail = draw(st.sampled_from(["", "\r", " # note"]))
    return f"{lead}{key} {fields}{ts}{tail}"


@given(st.lists(st.one_of(odd_lines(), st.sampled_from(["", "# c", "junk"])), min_size=1, max_size=6))
@settings(max_examples=400, deadline=None)
def test_every_line_passed_on_means_exactly_its_record_in_the_schemas_types(texts):
    """Whatever a payload holds, each line that goes on decodes to exactly the record beside it, with
    the schema's types and a timestamp (so a line passed on as it arrived is never one the schema
    coerces, or one without its time); every refused line is named by its line number."""
    lines, records, rejects = V.read("\r\n".join(texts).encode(), NOW)
    assert len(lines) == len(records)
    assert decode("\n".join(lines)) == records  # and read back together, as a segment of the store
    want = {"float": float, "int": int, "uint": UInt, "bool": bool, "str": str}
    for line, rec in zip(lines, records):
        assert decode_line(line) == rec
        assert rec.time_ns is not None
        assert measurement_and_time(line) in (None, (rec.measurement, rec.time_ns))
        meas = MEASUREMENTS[rec.measurement]
        assert all(type(v) is want[meas.fields[k].type] for k, v in rec.fields.items()), rec
    assert all(r.line is not None and r.reason in REASONS for r in rejects)
    assert [r.line for r in rejects] == sorted(r.line for r in rejects)


def test_records_beside_lines_with_escaped_keys_and_strings():
    src = [Record("gpu", {"model": "NVIDIA H100 80GB HBM3", "node": "n,1"}, {"power_w": 1.5, "lost": False}, NOW),
           Record("pdu", {"pdu": "p=1"}, {"load_state": "normal", "power_w": 2.0}, NOW),
           Record("agent", {"host": "h"}, {"message": "a, b = c", "errors_total": -3}, NOW)]
    lines, got, rejects = V.read("\n".join(encode_record(r) for r in src).encode(), NOW)
    assert rejects == []
    assert got == src and decode("\n".join(lines)) == src


# --- admission: tags from the schema, tags against the topic, the series budget ---------------

from dcim.collector.validate import Admission, TopicLayout  # noqa: E402


def _filter(adm: Admission, lines: list[str], topic: str | None) -> tuple[list[str], list]:
    """(lines admitted, rejects), the records beside the lines decoded as the validator does."""
    good, records, rejects = adm.admit(lines, decode("\n".join(lines)), topic)
    assert decode("\n".join(good)) == records
    return good, rejects


def _line(node: str, gpu: str = "0", extra: str = "") -> str:
    return f"gpu,gpu={gpu},node={node},rack=A01,site=dc1{extra} power_w=1 {NOW}"


def test_unknown_tag_keys_are_refused():
    adm = Admission(max_series=100)
    good, rejects = _filter(adm, [_line("n1"), _line("n1", extra=",colour=red")], "dcim/dc1/A01/n1/gpu")
    assert good == [_line("n1")]
    assert [r.reason for r in rejects] == ["unknown_tag"] and "'colour'" in rejects[0].detail


def test_device_tags_must_agree_with_the_topic_unless_turned_off():
    layouts = ["+/{site}/{rack}/{node}/gpu", "+/{site}/{rack}/{device}/snmp"]
    adm = Admission(max_series=100, topic_layouts=layouts)
    good, rejects = _filter(adm, [_line("n1"), _line("n2")], "dcim/dc1/A01/n1/gpu")
    assert good == [_line("n1")]
    assert [r.reason for r in rejects] == ["topic_mismatch"] and "node='n2'" in rejects[0].detail
    # a topic no layout fits, or a tag the line does not carry, is not checked
    assert _filter(adm, [_line("n2")], "elsewhere/x")[0] == [_line("n2")]
    health = f"agent,component=snmp,device=pdu-a,site=dc1 up=true {NOW}"
    assert _filter(adm, [health], "dcim/dc1/A01/pdu-a/snmp")[0] == [health]
    assert _filter(adm, [health], "dcim/dc1/A01/pdu-b/snmp")[1][0].reason == "topic_mismatch"
    off = Admission(max_series=100, topic_layouts=layouts, check_topic=False)
    assert _filter(off, [_line("n2")], "dcim/dc1/A01/n1/gpu")[0] == [_line("n2")]


def test_topic_layout_reads_its_levels():
    layout = TopicLayout("+/{site}/{rack}/{node}/gpu")
    assert layout.tags_of("dcim/dc1/A01/n7/gpu") == {"site": "dc1", "rack": "A01", "node": "n7"}
    assert layout.tags_of("dcim/dc1/A01/n7/snmp") is None
    assert layout.tags_of("dcim/dc1/n7/gpu") is None


def test_series_budget_refuses_new_series_and_keeps_the_old_ones():
    adm = Admission(max_series=3)
    first = [_line("n1", g) for g in "012"]
    assert _filter(adm, first, None) == (first, [])
    flood = [_line("n1", g) for g in "3456"]
    good, rejects = _filter(adm, [*flood, *first], None)
    assert good == first  # every series admitted before goes on
    assert [r.reason for r in rejects] == ["series_budget"] * 4 and "max_series 3" in rejects[0].detail
    assert adm.series == 3


def test_admission_verdicts_hold_when_a_series_comes_again():
    """The verdicts are cached per series and topic: a series admitted on its own topic is still
    checked against any other topic, and a refused series is refused again, with or without one."""
    layouts = ["+/{site}/{rack}/{node}/gpu"]
    adm = Admission(max_series=2, topic_layouts=layouts)
    own, other = "dcim/dc1/A01/n1/gpu", "dcim/dc1/A01/n2/gpu"
    bad_tag = _line("n1", extra=",colour=red")
    for _ in range(3):
        assert _filter(adm, [_line("n1")], own) == ([_line("n1")], [])
        good, rejects = _filter(adm, [_line("n1")], other)
        assert good == [] and [r.reason for r in rejects] == ["topic_mismatch"]
        for topic in (own, None):
            good, rejects = _filter(adm, [bad_tag], topic)
            assert good == [] and [r.reason for r in rejects] == ["unknown_tag"]
    # a series refused for its topic first is admitted on its own topic later, and counts then
    assert _filter(adm, [_line("n2")], own)[1][0].reason == "topic_mismatch"
    assert adm.series == 1
    assert _filter(adm, [_line("n2")], other) == ([_line("n2")], [])
    assert adm.series == 2
    # past the budget a new series is refused on every topic; the admitted ones go on
    assert _filter(adm, [_line("n3")], None)[1][0].reason == "series_budget"
    assert _filter(adm, [_line("n1"), _line("n2")], None) == ([_line("n1"), _line("n2")], [])
