"""The recording format: header, canonical order, round trip, and clear errors for damaged files."""

from __future__ import annotations

import gzip
import random
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcim.alerts.recording import (
    MAGIC,
    Header,
    RecordingReader,
    format_time,
    parse_duration_s,
    parse_time,
    read_recording,
    write_recording,
)
from dcim.errors import DcimError, RecordingError
from dcim.record import Record

T0 = 1_767_225_600 * 10**9


def sample(n: int = 40) -> list[Record]:
    out = []
    for i in range(n):
        t = T0 + (i // 4) * 10**9
        out.append(Record("gpu", {"site": "dc1", "rack": "A01", "gpu": str(i % 4)}, {"temp_c": 60.0 + i, "util_pct": 99.5}, t))
    out.append(Record("coolant_loop", {"site": "dc1", "loop": "loop-a"}, {"flow_lpm": 600.0, "leak": False}, T0))
    return out


def canon(r: Record) -> tuple:
    return r.key()


def write(tmp_path: Path, records: list[Record], name: str = "r.lp.gz", **kw) -> Path:
    p = tmp_path / name
    write_recording(p, records, Header(source="test", topology="embedded", **kw))
    return p


def lines_of(path: Path) -> list[str]:
    with gzip.open(path, "rt") as f:
        return f.read().split("\n")


def test_round_trip_keeps_records_and_header(tmp_path: Path) -> None:
    recs = sample()
    p = write(tmp_path, recs)
    header, got, problems = read_recording(p)
    assert problems == []
    assert header.source == "test" and header.topology == "embedded"
    assert header.start_ns == T0 and header.end_ns == T0 + 9 * 10**9
    assert header.extra["records"] == str(len(recs))
    assert sorted(got, key=lambda r: (r.time_ns, r.measurement, sorted(r.tags.items()))) == got
    assert sorted(got, key=canon) == sorted(recs, key=canon)
    assert lines_of(p)[0] == MAGIC


def test_file_imports_as_plain_line_protocol_after_the_comment_header(tmp_path: Path) -> None:
    p = write(tmp_path, sample(8))
    text = lines_of(p)
    header = [ln for ln in text if ln.startswith("#")]
    body = [ln for ln in text if ln and not ln.startswith("#")]
    assert text[: len(header)] == header  # all comments first, as InfluxDB's importer expects
    assert len(body) == 9 and all(" " in ln for ln in body)


def test_same_data_in_any_order_with_duplicates_gives_the_same_bytes(tmp_path: Path) -> None:
    recs = sample()
    shuffled = recs[:]
    random.Random(7).shuffle(shuffled)
    shuffled += shuffled[:5]  # at-least-once delivery repeats points
    a = write(tmp_path, recs, "a.gz")
    b = write(tmp_path, shuffled, "b.gz")
    assert a.read_bytes() == b.read_bytes()


def test_reading_in_small_chunks_gives_the_same_records(tmp_path: Path) -> None:
    p = write(tmp_path, sample(400))
    whole = RecordingReader(p).records()
    small = RecordingReader(p, chunk_bytes=97)
    batches = list(small.batches())
    assert len(batches) > 3
    assert [r for b in batches for r in b] == whole


def test_truncated_gzip_names_the_line_and_skip_bad_keeps_the_good_part(tmp_path: Path) -> None:
    p = write(tmp_path, sample(400))
    data = p.read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(RecordingError) as exc:
        RecordingReader(cut).records()
    assert "truncated" in str(exc.value) and "--skip-bad" in str(exc.value)
    assert exc.value.line is not None and exc.value.line > 10
    reader = RecordingReader(cut, skip_bad=True)
    got = reader.records()
    whole = RecordingReader(p).records()
    assert 0 < len(got) < len(whole)
    assert got == whole[: len(got)]
    # the error's line number is the first line that did not come back whole
    assert reader.problems[0].line == len(got) + len(reader.header.lines()) + 1


def test_corrupt_gzip_data_is_an_error_not_garbage(tmp_path: Path) -> None:
    p = write(tmp_path, sample(400))
    data = bytearray(p.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 40):
        data[i] ^= 0x5A
    bad = tmp_path / "corrupt.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match="corrupt|truncated|line"):
        RecordingReader(bad).records()


def test_bad_line_names_its_file_line_and_column(tmp_path: Path) -> None:
    p = write(tmp_path, sample(12))
    text = lines_of(p)
    n_header = sum(1 for ln in text if ln.startswith("#"))
    text[n_header + 3] = text[n_header + 3].replace("temp_c=", "temp_c=oops")
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress("\n".join(text).encode()))
    with pytest.raises(RecordingError) as exc:
        read_recording(bad)
    assert exc.value.line == n_header + 4
    assert "column" in str(exc.value) and "temp_c" in str(exc.value) and "bad.gz line" in str(exc.value)
    header, got, problems = read_recording(bad, skip_bad=True)
    assert len(got) == 12 and [e.line for e in problems] == [n_header + 4]


def test_missing_header_is_an_error_on_line_1_unless_skip_bad(tmp_path: Path) -> None:
    bad = tmp_path / "plain.lp.gz"
    body = "gpu,rack=A01 temp_c=70.0 1000000000\ngpu,rack=A01 temp_c=71.0 2000000000\n"
    bad.write_bytes(gzip.compress(body.encode()))
    with pytest.raises(RecordingError) as exc:
        RecordingReader(bad)
    assert exc.value.line == 1 and "missing header" in str(exc.value)
    reader = RecordingReader(bad, skip_bad=True)
    assert [r.fields["temp_c"] for r in reader.records()] == [70.0, 71.0]
    assert not reader.header.present and "missing header" in str(reader.problems[0])


def test_plain_uncompressed_recording_is_read_too(tmp_path: Path) -> None:
    p = write(tmp_path, sample(8))
    plain = tmp_path / "plain.lp"
    plain.write_bytes(gzip.decompress(p.read_bytes()))
    assert RecordingReader(plain).records() == RecordingReader(p).records()


def test_time_going_backwards_is_named(tmp_path: Path) -> None:
    p = write(tmp_path, sample(12))
    text = [ln for ln in lines_of(p) if ln]
    text[-1], text[-5] = text[-5], text[-1]  # a later point moved before earlier ones
    bad = tmp_path / "order.gz"
    bad.write_bytes(gzip.compress(("\n".join(text) + "\n").encode()))
    with pytest.raises(RecordingError, match="time goes backwards") as exc:
        RecordingReader(bad).records()
    assert exc.value.line is not None and exc.value.line > 1


def test_a_record_without_time_cannot_be_written(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="no timestamp"):
        write_recording(tmp_path / "x.gz", [Record("gpu", {"rack": "A01"}, {"temp_c": 1.0}, None)], Header())


def test_unknown_version_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "v9.gz"
    p.write_bytes(gzip.compress(b"# dcim-recording v9\ngpu temp_c=1.0 1\n"))
    with pytest.raises(RecordingError, match="version"):
        RecordingReader(p)


def test_times_and_durations_parse() -> None:
    assert parse_time("2026-01-01T00:00:00Z") == T0
    assert parse_time("2026-01-01T01:00:00+01:00") == T0
    assert parse_time("2026-01-01T00:00:00.5Z") == T0 + 500_000_000
    assert parse_time(str(T0 // 10**9)) == T0
    assert parse_time(str(T0)) == T0
    assert format_time(T0 + 250_000_000) == "2026-01-01T00:00:00.25Z"
    assert parse_time(format_time(T0 + 123)) == T0 + 123
    assert parse_duration_s("1h30m") == 5400 and parse_duration_s("90") == 90 and parse_duration_s("500ms") == 0.5
    with pytest.raises(DcimError):
        parse_duration_s("ten minutes")
    with pytest.raises(DcimError):
        parse_time("yesterday")


_names = st.sampled_from(["A01", "B 02", "x,y", "a=b", "rack\\1"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), _names, st.floats(-1e6, 1e6, allow_nan=False)), min_size=1, max_size=30))
def test_any_records_round_trip(tmp_path_factory: pytest.TempPathFactory, rows: list) -> None:
    recs = [Record("gpu", {"rack": r}, {"temp_c": v}, T0 + t) for t, r, v in rows]
    p = tmp_path_factory.mktemp("rt") / "r.gz"
    write_recording(p, recs, Header())
    got = RecordingReader(p).records()
    last = {}
    for r in recs:
        last[r.key()] = r
    assert sorted(got, key=canon) == sorted(last.values(), key=canon)


def test_zlib_is_what_checks_the_crc(tmp_path: Path) -> None:
    # A file whose CRC trailer is wrong decompresses fully but must still be refused.
    p = write(tmp_path, sample(8))
    data = bytearray(p.read_bytes())
    data[-8] ^= 0xFF
    bad = tmp_path / "crc.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match="corrupt"):
        RecordingReader(bad).records()
    assert zlib  # the reader uses zlib's gzip mode (wbits=31), which verifies the trailer


def test_escaped_series_keys_decode_like_the_codec_and_errors_keep_their_column(tmp_path: Path) -> None:
    from dcim.lineprotocol.decode import decode_report

    recs = [Record("gpu", {"model": "NVIDIA H100 80GB", "node": f"n{i % 3}", "odd": "a,b=c"},
                   {"temp_c": 50.0 + i, "processes": i}, T0 + i) for i in range(30)]
    p = write(tmp_path, recs)
    assert RecordingReader(p).records() == decode_report(gzip.decompress(p.read_bytes())).records
    text = lines_of(p)
    n = next(i for i, ln in enumerate(text) if ln.startswith("gpu"))
    text[n + 2] = text[n + 2].replace("processes=2i", "processes=2x")
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress("\n".join(text).encode()))
    with pytest.raises(RecordingError) as exc:
        RecordingReader(bad).records()
    expected = decode_report(text[n + 2]).errors[0].column  # what the codec says on the original line
    assert exc.value.line == n + 3 and f"column {expected}:" in str(exc.value)


# --- the columnar format ----------------------------------------------------------------------


def test_columnar_round_trip_is_lossless_to_the_byte(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from dcim.app.cli import cli
    from dcim.record import UInt

    recs = sample(60) + [Record("netif", {"switch": "sw 1", "ifname": "eth0"},
                                {"rx_bytes_total": UInt(2**63 + 5), "oper_up": True, "speed_bps": 1e11}, T0),
                         Record("pdu", {"pdu": "pdu-a"}, {"load_state": 'near "overload", 90%', "power_w": 30.0,
                                                          "energy_j": 5.0e-324}, T0 + 1)]
    lp = write(tmp_path, recs, "a.lp.gz")
    runner = CliRunner()
    col, back = tmp_path / "a.col.gz", tmp_path / "b.lp.gz"
    for src, dst, fmt in ((lp, col, "columnar"), (col, back, "lp")):
        res = runner.invoke(cli, ["record", "--from-recording", str(src), "--format", fmt, "-o", str(dst)])
        assert res.exit_code == 0, res.output
    assert back.read_bytes() == lp.read_bytes()
    reader = RecordingReader(col)
    assert reader.columnar and reader.header.source == "test" and reader.header.topology == "embedded"
    got = reader.records()
    assert got == RecordingReader(lp).records()
    netif = next(r for r in got if r.measurement == "netif")
    assert type(netif.fields["rx_bytes_total"]) is UInt and netif.fields["oper_up"] is True
    pdu = next(r for r in got if r.measurement == "pdu")
    assert type(pdu.fields["power_w"]) is float and pdu.fields["energy_j"] == 5.0e-324



def test_the_columnar_format_is_the_default_unless_the_name_says_line_protocol(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from dcim.app.cli import cli

    recs = sample(20)
    write_recording(tmp_path / "plain.rec.gz", recs, Header(source="t"))
    assert RecordingReader(tmp_path / "plain.rec.gz").columnar
    write_recording(tmp_path / "named.lp.gz", recs, Header(source="t"))  # an interchange name keeps its format
    assert not RecordingReader(tmp_path / "named.lp.gz").columnar
    assert lines_of(tmp_path / "named.lp.gz")[0] == MAGIC
    runner = CliRunner()
    for name, args, columnar in (("a.col.gz", [], True), ("b.gz", [], True), ("c.lp.gz", [], False),
                                 ("d.gz", ["--format", "lp"], False), ("e.lp.gz", ["--format", "columnar"], True)):
        out = tmp_path / name
        res = runner.invoke(cli, ["record", "--from-recording", str(tmp_path / "named.lp.gz"), *args, "-o", str(out)])
        assert res.exit_code == 0, res.output
        assert RecordingReader(out).columnar is columnar, name
        assert RecordingReader(out).records() == RecordingReader(tmp_path / "named.lp.gz").records()

@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), _names,
                          st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-2**63, 2**63 - 1),
                                    st.booleans(), st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                                                                   blacklist_characters="\r\n")))),
                min_size=1, max_size=25))
def test_columnar_keeps_every_value_and_type(tmp_path_factory: pytest.TempPathFactory, rows: list) -> None:
    recs = [Record("gpu", {"rack": r}, {"v": v}, T0 + t) for t, r, v in rows]
    d = tmp_path_factory.mktemp("col")
    write_recording(d / "a.lp.gz", recs, Header())
    write_recording(d / "a.col.gz", recs, Header(), fmt="columnar")
    a, b = RecordingReader(d / "a.lp.gz").records(), RecordingReader(d / "a.col.gz").records()
    assert a == b
    assert [type(r.fields["v"]) for r in a] == [type(r.fields["v"]) for r in b]


def test_damaged_columnar_blocks_name_their_line(tmp_path: Path) -> None:
    p = tmp_path / "c.col.gz"
    write_recording(p, sample(40), Header(source="t"), fmt="columnar")
    lines = gzip.decompress(p.read_bytes()).split(b"\n")
    assert len([ln for ln in lines if ln]) == 2  # header and one block
    extra = b'{"s":[],"r":[[0,' + str(T0 + 10**10).encode() + b',1.0,2.0]]}'
    bad = tmp_path / "bad.col.gz"
    bad.write_bytes(gzip.compress(b"\n".join([lines[0], lines[1], b'{"s":[],"r":[[99,1,2]]}', extra]) + b"\n"))
    with pytest.raises(RecordingError) as exc:
        RecordingReader(bad).records()
    assert exc.value.line == 3 and "bad columnar block" in str(exc.value)
    reader = RecordingReader(bad, skip_bad=True)
    got = reader.records()
    assert len(got) == 41 + 1 and [e.line for e in reader.problems] == [3]  # sample(40) is 41 records, then the extra row
    cut = tmp_path / "cut.col.gz"
    cut.write_bytes(p.read_bytes()[:-30])
    with pytest.raises(RecordingError, match="truncated"):
        RecordingReader(cut).records()
