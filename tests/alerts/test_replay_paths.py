"""The replay paths agree: a recording replayed as line protocol, as columnar records and as columnar
blocks (rows straight into the engine, no record per row) gives the same transitions, byte for byte."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from dcim.alerts.engine import Engine
from dcim.alerts.rulefile import DEFAULT_RULES_DIR, load_rules
from dcim.alerts.recording import Block, Header, RecordingReader, resolve_topology, write_columnar
from dcim.alerts.replay import format_json, replay
from dcim.errors import RecordingError
from dcim.record import Record, UInt

RACKS = 4
MINUTES = 5


@pytest.fixture(scope="module")
def hall(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A pump failure on the first loop of a generated 4-rack hall, as the replay bench records it."""
    from dcim.simulators.hall import Hall
    from dcim.simulators.scenarios import SCENARIO_DIR, parse_scenario
    from dcim.sites import make_site

    d = tmp_path_factory.mktemp("paths")
    site = make_site(RACKS)
    text = (SCENARIO_DIR / "pump-degradation.yaml").read_text().replace("loop-a", site.loops[0].name)
    sim = Hall(site, seed=7, scenario=parse_scenario(text))
    header = Header(source="test", topology=f"generated:racks={RACKS}")
    header.start_ns = sim.time_ns + 1_000_000_000
    header.end_ns = sim.time_ns + MINUTES * 60 * 1_000_000_000
    lp = d / "hall.lp.gz"
    with gzip.open(lp, "wb") as gz:
        gz.write(("\n".join(header.lines()) + "\n").encode())
        for _ in range(MINUTES * 60):
            sim.advance(1.0)
            gz.write(sim.lines().encode())
    col = d / "hall.col.gz"
    reader = RecordingReader(lp)
    write_columnar(col, reader.batches(), reader.header)
    return lp, col


def _replay(path: Path, *, blocks: bool) -> tuple[str, tuple]:
    reader = RecordingReader(path)
    site = resolve_topology(reader.header.topology)
    engine = Engine(load_rules([DEFAULT_RULES_DIR]), site=site,
                    evaluation_interval_s=site.alerts.evaluation_interval_s)
    source = reader.blocks() if blocks else reader.batches()
    result = replay(source, engine, end_ns=reader.header.end_ns)
    s = result.stats
    return format_json(result.transitions), (s.records, s.field_values, s.first_ns, s.last_ns)


def test_line_protocol_columnar_records_and_blocks_give_the_same_timeline(hall: tuple[Path, Path]) -> None:
    lp, col = hall
    assert all(isinstance(b, Block) for b in RecordingReader(col).blocks())
    lp_text, lp_stats = _replay(lp, blocks=True)  # line protocol comes as records either way
    rec_text, rec_stats = _replay(col, blocks=False)
    block_text, block_stats = _replay(col, blocks=True)
    # the pump failure gives the rules work: pending, firing and inhibited alerts
    assert '"state":"firing"' in lp_text
    assert '"inhibited":true' in lp_text
    assert lp_text == rec_text == block_text
    assert lp_stats == rec_stats == block_stats


def test_blocks_hold_the_records_of_the_batches(hall: tuple[Path, Path]) -> None:
    _, col = hall
    from_blocks = [r for b in RecordingReader(col).blocks() for r in b.records()]
    assert from_blocks == RecordingReader(col).records()
    assert sum(b.field_values for b in RecordingReader(col).blocks()) == sum(len(r.fields) for r in from_blocks)


def test_a_block_out_of_time_order_is_processed_as_its_records_are(hall: tuple[Path, Path]) -> None:
    """Rows given out of order are sorted by time first, as ``Engine.process`` sorts records."""
    _, col = hall
    reader = RecordingReader(col)
    site = resolve_topology(reader.header.topology)
    rules = load_rules([DEFAULT_RULES_DIR])
    first = [b for _, b in zip(range(3), reader.blocks(), strict=False)]
    a = Engine(rules, site=site)
    b = Engine(rules, site=site)
    out_a, out_b = [], []
    for block in first:
        order = list(range(len(block.rows)))[::-1]  # newest first
        shuffled = Block(block.series, [block.rows[i] for i in order], [block.times[i] for i in order])
        out_a += a.process_block(shuffled)
        out_b += b.process(shuffled.records())
    end = first[-1].times[-1] + 600 * 10**9
    out_a += a.advance(end)
    out_b += b.advance(end)
    assert format_json(out_a) == format_json(out_b)
    assert a.ctx.store.latest == b.ctx.store.latest
    assert a.ctx.store.seen == b.ctx.store.seen


def test_block_rows_keep_unsigned_values_and_refuse_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "u.col.gz"
    recs = [Record("gpu_xid", {"node": "n1", "gpu": "0", "xid": "79"}, {"count_total": UInt(3)}, 10**18),
            Record("gpu_xid", {"node": "n1", "gpu": "0", "xid": "79"}, {"count_total": UInt(4)}, 10**18 + 10**9)]
    write_columnar(path, [recs], Header(source="t"))
    (block,) = RecordingReader(path).blocks()
    assert [type(row[2]) for row in block.rows] == [UInt, UInt]
    assert block.records() == recs


def test_decoding_in_worker_processes_gives_the_same_timeline(hall: tuple[Path, Path]) -> None:
    lp, _ = hall
    reader = RecordingReader(lp, chunk_bytes=1 << 18)  # many chunks, so several are in flight at once
    site = resolve_topology(reader.header.topology)
    engine = Engine(load_rules([DEFAULT_RULES_DIR]), site=site,
                    evaluation_interval_s=site.alerts.evaluation_interval_s)
    result = replay(reader.blocks(decode_processes=2), engine, end_ns=reader.header.end_ns)
    text, stats = _replay(lp, blocks=False)
    assert format_json(result.transitions) == text
    s = result.stats
    assert (s.records, s.field_values, s.first_ns, s.last_ns) == stats


def _damaged(tmp_path: Path) -> Path:
    """Three good seconds, a bad line, a point from the past across a chunk boundary, and a file
    cut inside its gzip data."""
    lines = [f"gpu,node=n1,gpu={g} temp_c={40 + s}.5,lost=false {10**18 + s * 10**9}" for s in range(40) for g in range(8)]
    lines[30] = "gpu,node=n1,gpu=0 temp_c=oops 1000000003000000000"
    lines[200] = f"gpu,node=n1,gpu=0 temp_c=1.5 {10**18}"  # goes back to the first second
    body = "\n".join(Header(source="t").lines() + lines) + "\n"
    full = gzip.compress(body.encode(), mtime=0)
    path = tmp_path / "bad.lp.gz"
    path.write_bytes(full[: len(full) * 3 // 4])
    return path


def test_worker_processes_report_the_same_problems_in_the_same_order(tmp_path: Path) -> None:
    path = _damaged(tmp_path)
    expect_reader = RecordingReader(path, skip_bad=True, chunk_bytes=2048)
    expect = expect_reader.records()
    reader = RecordingReader(path, skip_bad=True, chunk_bytes=2048)
    got = [r for b in reader.blocks(decode_processes=2) for r in b.records()]
    assert got == expect
    assert [str(p) for p in reader.problems] == [str(p) for p in expect_reader.problems]
    assert len(reader.problems) >= 3  # the bad value, the point from the past, the cut
    assert reader.lines_read == expect_reader.lines_read
    # without --skip-bad, the first problem is the error, after the same good records
    with pytest.raises(RecordingError) as want:
        list(RecordingReader(path, chunk_bytes=2048).batches())
    with pytest.raises(RecordingError) as exc:
        list(RecordingReader(path, chunk_bytes=2048).blocks(decode_processes=2))
    assert str(exc.value) == str(want.value)


def test_a_chunk_that_starts_in_the_past_is_decoded_again_knowing_the_time(tmp_path: Path) -> None:
    """A worker decodes a chunk without knowing where time stood; when the chunk's first point is
    older than the one before it, the reader decodes that chunk itself, as ``batches()`` does."""
    head = "\n".join(Header(source="t").lines()) + "\n"
    lines = [f"gpu,node=n1,gpu=0 temp_c={40 + s}.5 {10**18 + s * 10**9}\n" for s in range(100)]
    lines[50] = f"gpu,node=n1,gpu=0 temp_c=1.5 {10**18 + 10 * 10**9}\n"  # the first line of the second chunk
    path = tmp_path / "plain.lp"
    path.write_text(head + "".join(lines))
    chunk = len((head + "".join(lines[:50])).encode())
    expect_reader = RecordingReader(path, skip_bad=True, chunk_bytes=chunk)
    expect = expect_reader.records()
    reader = RecordingReader(path, skip_bad=True, chunk_bytes=chunk)
    got = [r for b in reader.blocks(decode_processes=2) for r in b.records()]
    assert len(got) == 99 and got == expect
    assert [str(p) for p in reader.problems] == [str(p) for p in expect_reader.problems]
    assert "time goes backwards" in str(reader.problems[0]) and reader.problems[0].line == 1 + len(head.splitlines()) + 50
