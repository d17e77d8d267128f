"""Line-protocol codec: exact encodings, every refusal, decoder errors with line and column, round trips."""

from __future__ import annotations

import gzip
import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dcim.errors import LineProtocolError
from dcim.lineprotocol.encode import encode, encode_record
from dcim.lineprotocol.decode import decode, decode_line, decode_report
from dcim.record import Record, UInt

# --- encoder: exact output ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (Record("gpu", {"node": "n1"}, {"temp_c": 45.5}, 1), "gpu,node=n1 temp_c=45.5 1"),
        (Record("gpu", {}, {"x": 3}, None), "gpu x=3i"),
        (Record("gpu", {}, {"x": UInt(3)}, None), "gpu x=3u"),
        (Record("gpu", {}, {"ok": True, "bad": False}, None), "gpu ok=true,bad=false"),
        (Record("gpu", {}, {"f": 1.0}, None), "gpu f=1.0"),
        (Record("gpu", {}, {"f": -0.5e-9}, None), "gpu f=-5e-10"),
        (Record("my meas,x", {}, {"f": 1.0}, None), "my\\ meas\\,x f=1.0"),
        (Record("m", {"k y": "v=1,2 3"}, {"f k": 1.0}, None), "m,k\\ y=v\\=1\\,2\\ 3 f\\ k=1.0"),
        (Record("m", {}, {"s": 'say "hi" \\o/'}, None), 'm s="say \\"hi\\" \\\\o/"'),
        (Record("m", {}, {"s": ""}, None), 'm s=""'),
        (Record("m=eq", {}, {"f": 1.0}, None), "m=eq f=1.0"),
        (Record("m", {"b": "2", "a": "1"}, {"f": 1.0}, None), "m,a=1,b=2 f=1.0"),  # tags sorted
        (Record("m", {}, {"v": 2**63 - 1}, None), f"m v={2**63 - 1}i"),
        (Record("m", {}, {"v": UInt(2**64 - 1)}, None), f"m v={2**64 - 1}u"),
        (Record("m", {}, {"v": 1.0}, -1), "m v=1.0 -1"),
        (Record("m", {"t": "a\\b"}, {"v": 1.0}, None), "m,t=a\\b v=1.0"),
        # InfluxDB unescapes \, \" \= and \space in names: a backslash before them in the text
        # is written so that it survives (checked against the corpus and a real server)
        (Record("m", {"t": "a\\,b"}, {"v": 1.0}, None), "m,t=a\\\\,b v=1.0"),
        (Record("m", {"t\\ k": "x"}, {"v": 1.0}, None), "m,t\\\\ k=x v=1.0"),
        (Record("m", {}, {'f\\"k': 1.0}, None), 'm f\\\\"k=1.0'),
        (Record("m", {}, {"s": "carriage\rreturn"}, None), 'm s="carriage\rreturn"'),
        (Record("m", {"t": "tab\there"}, {"v": 1.0}, 9223372036854775806), "m,t=tab\there v=1.0 9223372036854775806"),
        (Record("m", {"t": "ü€"}, {"v": 1.0}, None), "m,t=ü€ v=1.0"),
    ],
)
def test_encode_exact(record: Record, expected: str) -> None:
    assert encode_record(record) == expected
    assert decode_line(expected) == record


def test_encode_precisions() -> None:
    r = Record("m", {}, {"v": 1.0}, 1_700_000_000_123_456_789)
    assert encode_record(r, "s").endswith(" 1700000000")
    assert encode_record(r, "ms").endswith(" 1700000000123")
    assert encode_record(r, "us").endswith(" 1700000000123456")
    assert decode("m v=1.0 1700000000", precision="s")[0].time_ns == 1_700_000_000_000_000_000
    assert decode("m v=1.0 1700000000123", precision="ms")[0].time_ns == 1_700_000_000_123_000_000
    with pytest.raises(ValueError, match="unknown precision"):
        encode_record(r, "h")


def test_encode_many_is_newline_terminated() -> None:
    rs = [Record("m", {}, {"v": float(i)}, i) for i in range(3)]
    text = encode(rs)
    assert text == "m v=0.0 0\nm v=1.0 1\nm v=2.0 2\n"
    assert decode(text) == rs
    assert encode([]) == ""


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (Record("m", {}, {"v": math.nan}, None), "NaN and Inf"),
        (Record("m", {}, {"v": math.inf}, None), "NaN and Inf"),
        (Record("m", {}, {"v": -math.inf}, None), "NaN and Inf"),
        (Record("m", {"t": ""}, {"v": 1.0}, None), "tag value must not be empty"),
        (Record("m", {}, {}, None), "at least one field"),
        (Record("", {}, {"v": 1.0}, None), "measurement must not be empty"),
        (Record("m", {"": "x"}, {"v": 1.0}, None), "key must not be empty"),
        (Record("m", {}, {"": 1.0}, None), "key must not be empty"),
        (Record("m", {"t": "a\nb"}, {"v": 1.0}, None), "newline"),
        (Record("m", {}, {"s": "a\nb"}, None), "newline"),
        (Record("m", {"t": "ends\\"}, {"v": 1.0}, None), "ends in a backslash"),
        (Record("m", {}, {"a\\,b": 1.0}, None), "backslash before ','"),
        (Record("m", {}, {"a\\=b": 1.0}, None), "backslash before '='"),
        (Record('m\\"q', {}, {"v": 1.0}, None), "backslash before '\"'"),
        (Record("m\\=q", {}, {"v": 1.0}, None), "backslash before '='"),
        (Record("m\\ q", {}, {"v": 1.0}, None), "backslash before ' '"),
        (Record("m", {}, {"\tf": 1.0}, None), "skips as blank"),
        (Record("\x00m", {}, {"v": 1.0}, None), "indentation"),
        (Record("m", {}, {"v": 1.0}, 2**63 - 1), "outside the range"),
        (Record("m", {}, {"v": 1.0}, -(2**63) + 1), "outside the range"),
        (Record("m", {"t": "x" * 40_000}, {"v" * 30_000: 1.0}, None), "longer than"),
        (Record("m", {}, {"v": 2**63}, None), "signed 64-bit"),
        (Record("m", {}, {"v": UInt(2**64)}, None), "unsigned 64-bit"),
        (Record("m", {}, {"v": [1]}, None), "unsupported type"),
        (Record("m", {"t": 5}, {"v": 1.0}, None), "must be a string"),
        (Record("#m", {}, {"v": 1.0}, None), "comment"),
        (Record("\tm", {}, {"v": 1.0}, None), "indentation"),
        (Record("m", {}, {"time": 1.0}, None), "reserved"),
    ],
)
def test_encode_refuses_with_clear_error(record: Record, message: str) -> None:
    with pytest.raises(LineProtocolError, match=message) as info:
        encode_record(record)
    assert repr(record.measurement) in str(info.value)


def test_uint_refuses_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        UInt(-1)


# --- decoder ---------------------------------------------------------------------------------


def test_decode_all_value_types_and_comments() -> None:
    text = (
        "# a comment\n"
        "\n"
        "   \n"
        "m,a=1 f=1.5,i=-2i,u=3u,t=t,T=TRUE,F=False,s=\"x y\" 10\n"
        "  m   f=2e3  \n"
        "\t# indented comment\n"
    )
    recs = decode(text)
    assert recs[0] == Record(
        "m", {"a": "1"}, {"f": 1.5, "i": -2, "u": UInt(3), "t": True, "T": True, "F": False, "s": "x y"}, 10
    )
    assert type(recs[0].fields["u"]) is UInt
    assert recs[1] == Record("m", {}, {"f": 2000.0}, None)
    assert decode("m f=1", default_time_ns=99)[0].time_ns == 99


def test_decode_accepts_bytes_and_names_bad_utf8_line() -> None:
    assert decode(b"m f=1 5") == [Record("m", {}, {"f": 1.0}, 5)]
    with pytest.raises(LineProtocolError, match="UTF-8") as info:
        decode(b"m f=1 5\nm f=\xff 6\n")
    assert info.value.line == 2
    report = decode_report(b"m f=1 5\nm f=\xff 6\nm f=3 7\n")
    assert [r.time_ns for r in report.records] == [5, 7]
    assert [e.line for e in report.errors] == [2]


@pytest.mark.parametrize(
    ("line", "column", "message"),
    [
        ("m", 2, "missing fields"),
        ("m ", 3, "missing fields"),
        ("m,t=1 ", 7, "missing fields"),
        (",t=1 f=1", 1, "missing measurement"),
        ("m,=1 f=1", 3, "missing tag key"),
        ("m,t f=1", 4, "has no '='"),
        ("m,t= f=1", 5, "empty value"),
        ("m,a=1,a=2 f=1", 7, "appears twice"),
        ("m f=", 5, "empty value"),
        ("m f", 3, "invalid field format"),
        ("m =1", 3, "empty field key"),
        ("m f=1,", 3, "invalid field format"),
        ("m f=nan", 5, "NaN and Inf"),
        ("m f=-Inf", 5, "NaN and Inf"),
        ("m f=1_000", 5, "invalid value"),
        ("m f=abc", 5, "invalid value"),
        ("m f=+1", 5, "invalid value"),
        ("m f=1.5i", 5, "invalid number"),
        ("m f=-1u", 5, "invalid number"),
        ("m f=99999999999999999999i", 5, "64-bit"),
        ("m f=1e999", 5, "invalid float"),
        ("m f=1\t", 5, "invalid value"),
        ("m f=1 12a", 9, "not an integer"),
        ("m f=1 1 2", 9, "after the timestamp"),
        ("m f=1 9223372036854775807", 7, "outside the range"),
        ("m f=1 5\r", 8, "not an integer"),  # InfluxDB reads a CR before the newline as part of the line
        ("m time=1", 3, "reserved"),
        ("m,time=x f=1", 3, "reserved"),
        ("  m f=x", 7, "invalid value"),  # columns count the stripped indentation
    ],
)
def test_decode_error_names_line_and_column(line: str, column: int, message: str) -> None:
    text = "ok v=1 1\n" + line + "\nok v=2 2\n"
    with pytest.raises(LineProtocolError, match=message) as info:
        decode(text)
    err = info.value
    assert (err.line, err.column) == (2, column)
    assert str(err).startswith(f"line 2, column {column}: ")
    # the lenient decoder keeps every other line
    report = decode_report(text)
    assert [r.fields["v"] for r in report.records] == [1.0, 2.0]
    assert len(report.errors) == 1


def test_decode_escapes_like_influxdb() -> None:
    # a backslash before a character that needs no escape is kept, together with that character
    rec = decode_line(r"m\ 1,t\,k=a\=b\ c\d f\=x=1")
    assert rec == Record("m 1", {"t,k": "a=b c\\d"}, {"f=x": 1.0}, None)
    rec = decode_line(r'm s="a\"b\\c\d"')
    assert rec.fields["s"] == 'a"b\\c\\d'


def test_gzip_payload_is_not_mistaken_for_text() -> None:
    with pytest.raises(LineProtocolError):
        decode(gzip.compress(b"m f=1 1\n"))


# --- round trip (property) -------------------------------------------------------------------

_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), min_size=1, max_size=12
)
_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=0, max_value=2**64 - 1).map(UInt),
    st.booleans(),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=20),
)


def _encodable(rec: Record) -> bool:
    try:
        encode_record(rec)
    except LineProtocolError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(
    meas=_names,
    tags=st.dictionaries(_names, _names, max_size=4),
    fields=st.dictionaries(_names, _values, min_size=1, max_size=5),
    ts=st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
)
def test_round_trip(meas: str, tags: dict, fields: dict, ts: int | None) -> None:
    rec = Record(meas, tags, fields, ts)
    assume(_encodable(rec))
    line = encode_record(rec)
    back = decode_line(line)
    assert back == rec
    assert [type(v) for v in back.fields.values()] == [type(v) for v in rec.fields.values()]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_decoder_never_crashes_on_garbage(text: str) -> None:
    report = decode_report(text)
    for err in report.errors:
        assert isinstance(err, LineProtocolError)
        assert err.line is not None and err.line >= 1
    for rec in report.records:  # whatever it accepts, it can write back
        assert decode_line(encode_record(rec)) == rec


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_decoder_never_crashes_on_bytes(data: bytes) -> None:
    report = decode_report(data)
    assert all(isinstance(e, LineProtocolError) for e in report.errors)


def test_line_ends_and_quotes_are_read_as_influxdb_reads_them() -> None:
    # InfluxDB 1.x cuts lines at "\n" only: a CR before it is part of the line (and no timestamp)
    report = decode_report("gpu v=1 1\r\ngpu v=2 2\n")
    assert [r.fields["v"] for r in report.records] == [2.0]
    assert (report.errors[0].line, report.errors[0].column) == (1, 10)
    # a newline or CR inside a quoted string is part of the value, not the end of the line
    recs = decode('m s="two\nlines",t="cr\rhere" 5\nm v=1 6\n')
    assert recs == [Record("m", {}, {"s": "two\nlines", "t": "cr\rhere"}, 5), Record("m", {}, {"v": 1.0}, 6)]
    # an unterminated string swallows the rest of the payload, as it does in InfluxDB
    report = decode_report('m s="open 5\nm v=1 6\n')
    assert report.records == [] and "unterminated" in report.errors[0].reason


def test_decode_stores_what_influxdb_stores() -> None:
    """Names as InfluxDB keeps them, duplicates, repeated fields, time range, every bad UTF-8 line."""
    assert decode_line(r"m\=x,t\=k=v\=w f\=k=1 1") == Record("m=x", {"t=k": "v=w"}, {"f=k": 1.0}, 1)
    assert decode_line('m\\"q f\\"k=1 1') == Record('m"q', {}, {'f"k': 1.0}, 1)
    assert decode_line("\tm f=1 1") == Record("m", {}, {"f": 1.0}, 1)  # leading blanks are skipped
    with pytest.raises(LineProtocolError, match="different types"):
        decode_line("m f=1,f=2i 1")
    assert decode_line("m f=1,f=2 1").fields == {"f": 2.0}  # the last of a repeated field wins
    with pytest.raises(LineProtocolError, match="appears twice"):
        decode_line("m,a=1,a=2 f=1 1")
    with pytest.raises(LineProtocolError, match="outside the range"):
        decode_line("m f=1 -9223372036854775807")
    assert decode_line("m f=1 -9223372036854775806").time_ns == -9223372036854775806
    assert decode_line("m f=1 2", precision="h").time_ns == 2 * 3_600_000_000_000
    assert decode_line("m f=1", precision="m", default_time_ns=61_000_000_001).time_ns == 60_000_000_000
    report = decode_report(b"m f=1 1\nm,t=\xff f=2 2\nm f=3 3\nm f=\"\xfe\" 4\nm f=5 5\n")
    assert [r.time_ns for r in report.records] == [1, 3, 5]
    assert [(e.line, "UTF-8" in e.reason) for e in report.errors] == [(2, True), (4, True)]


@settings(max_examples=300, deadline=None)
@given(
    meas=_names,
    tags=st.dictionaries(_names, _names, max_size=4),
    fields=st.dictionaries(_names, _values, min_size=1, max_size=5),
    ts=st.integers(min_value=0, max_value=2**62),
)
def test_fast_reader_agrees_with_the_careful_scanner(meas: str, tags: dict, fields: dict, ts: int) -> None:
    """The fast path (split-based, cached layouts) and the scanner read every encodable line the same."""
    from dcim.lineprotocol.decode import _fast_line, _Scanner

    rec = Record(meas, tags, fields, ts)
    assume(_encodable(rec))
    line = encode_record(rec)
    careful = _Scanner(line, 1, 0).parse(1, None)
    try:
        fast = _fast_line(line, 1, None)
    except ValueError:
        return  # the fast path may decline; it must never disagree
    assert fast == careful
    assert [type(v) for v in fast.fields.values()] == [type(v) for v in careful.fields.values()]
    # the second time the cached series key and field layout are used
    assert _fast_line(line, 1, None) == careful


@settings(max_examples=300, deadline=None)
@given(
    meas=_names,
    tags=st.dictionaries(_names, _names, max_size=4),
    fields=st.dictionaries(_names, _values, min_size=1, max_size=5),
    ts=st.integers(min_value=-(2**62), max_value=2**62),
)
def test_kept_lines_and_the_text_shortcut_agree_with_the_records(meas: str, tags: dict, fields: dict, ts: int) -> None:
    """``keep_lines`` gives each record its own line; a verbatim line decodes to exactly its record;
    ``measurement_and_time`` reads the same measurement and time from the text, or declines."""
    from dcim.lineprotocol.decode import measurement_and_time

    rec = Record(meas, tags, fields, ts)
    assume(_encodable(rec))
    line = encode_record(rec)
    payload = f"# comment\n{line}\nnot a line\n{line}\n"
    report = decode_report(payload, keep_lines=True)
    assert report.records == [rec, rec] and report.lines == [line, line] and report.linenos == [2, 4]
    assert len(report.errors) == 1 and report.errors[0].line == 3
    for text, exact in zip(report.lines, report.verbatim):
        if exact:
            assert decode(text) == [rec]
    found = measurement_and_time(line)
    assert found is None or found == (meas, ts)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet='mab =,"\\\t\x0012-#\r\n.iu', max_size=30))
def test_text_shortcut_never_disagrees_with_decode_line(text: str) -> None:
    """On any text the decoder reads as one point, ``measurement_and_time`` (which the embedded
    store files lines by) gives that point's measurement and timestamp, or declines; it never
    names a measurement or time the decoder does not (escapes, quotes, blanks, trailing text)."""
    from dcim.lineprotocol.decode import measurement_and_time

    try:
        rec = decode_line(text)
    except LineProtocolError:
        return
    found = measurement_and_time(text)
    if found is not None:
        assert found == (rec.measurement, rec.time_ns)


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet='ab =,"\\\n#\t', max_size=60))
def test_line_splitting_shortcut_agrees_with_influxdbs_scanner(text: str) -> None:
    """The split that trusts plain newlines where quotes settle cuts exactly where scanLine does."""
    from dcim.lineprotocol.decode import _scan_line_end, _split

    expected = []
    pos, lineno = 0, 1
    while pos < len(text):
        end = _scan_line_end(text, pos)
        block = text[pos:end]
        expected.append((lineno, block))
        lineno += block.count("\n") + 1
        pos = end + 1
    got = [(n, b) for n, b in _split(text)]
    assert [x for x in got if x[1]] == [x for x in expected if x[1]]
