"""`dcim replay` and `dcim record` on the command line: damaged recordings, --skip-bad, options, sources."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dcim.alerts.recording import Header, RecordingReader, write_recording
from dcim.app.cli import cli
from dcim.record import Record

T0 = 1_767_225_600 * 10**9
RULE = """rules:
  - name: GpuHot
    kind: threshold
    measurement: gpu
    field: temp_c
    op: ">"
    threshold: 80
    for: 2s
"""


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(RULE)
    recs = [Record("gpu", {"site": "dc1", "room": "hall1", "row": "A", "rack": "A01", "node": "A01-n01", "gpu": "0"},
                   {"temp_c": 70.0 + (15 if 10 <= t < 30 else 0)}, T0 + t * 10**9) for t in range(40)]
    rec = tmp_path / "r.lp.gz"
    write_recording(rec, recs, Header(source="cli test", topology="embedded"))
    return rec, rules


def run(*args: str) -> subprocess.CompletedProcess:
    """The real entry point in a subprocess: DcimError must print `error: ...` and exit 2."""
    return subprocess.run([sys.executable, "-m", "dcim.app.cli", *args], capture_output=True, text=True, timeout=120)


def test_timeline_text(setup: tuple[Path, Path]) -> None:
    rec, rules = setup
    res = CliRunner().invoke(cli, ["replay", str(rec), "--rules", str(rules)])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == [
        "2026-01-01T00:00:10Z  pending   GpuHot  row=A rack=A01 loop=loop-a node=A01-n01 gpu=0  value=85",
        "2026-01-01T00:00:12Z  firing    GpuHot  row=A rack=A01 loop=loop-a node=A01-n01 gpu=0  value=85",
        "2026-01-01T00:00:30Z  resolved  GpuHot  row=A rack=A01 loop=loop-a node=A01-n01 gpu=0  value=70",
    ]
    assert res.stderr == ""  # no progress bar when stderr is not a terminal


def test_damaged_recording_errors_name_the_line_and_skip_bad_replays_the_rest(setup: tuple[Path, Path]) -> None:
    rec, rules = setup
    text = gzip.decompress(rec.read_bytes()).decode().split("\n")
    n = next(i for i, ln in enumerate(text) if ln.startswith("gpu"))
    text[n + 20] = text[n + 20][:25]  # a line cut short
    bad = rec.with_name("bad.lp.gz")
    bad.write_bytes(gzip.compress("\n".join(text).encode()))
    res = run("replay", str(bad), "--rules", str(rules))
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith(f"error: {bad} line {n + 21}: ") and "--skip-bad" in res.stderr
    res = run("replay", str(bad), "--rules", str(rules), "--skip-bad")
    assert res.returncode == 0
    assert f"warning: skipped: {bad} line {n + 21}" in res.stderr
    assert len(res.stdout.splitlines()) == 3

    cut = rec.with_name("cut.lp.gz")
    cut.write_bytes(rec.read_bytes()[:-40])
    res = run("replay", str(cut), "--rules", str(rules))
    assert res.returncode == 2 and "truncated" in res.stderr and " line " in res.stderr

    plain = rec.with_name("noheader.lp.gz")
    plain.write_bytes(gzip.compress("\n".join(ln for ln in text if not ln.startswith("#")).encode()))
    res = run("replay", str(plain), "--rules", str(rules))
    assert res.returncode == 2 and "line 1: missing header" in res.stderr


def test_speed_and_bad_options(setup: tuple[Path, Path]) -> None:
    rec, rules = setup
    res = CliRunner().invoke(cli, ["replay", str(rec), "--rules", str(rules), "--speed", "fast"])
    assert res.exit_code != 0 and "--speed" in str(res.exception)
    res = CliRunner().invoke(cli, ["replay", str(rec), "--rules", str(rules), "--speed", "400x"])
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 3  # 39 s of event time at 400x: ~0.1 s
    res = CliRunner().invoke(cli, ["replay", str(rec), "--to-influx", "http://127.0.0.1:1"])
    assert res.exit_code != 0 and "--db" in res.output


def test_report_option_writes_html_and_png(setup: tuple[Path, Path], tmp_path: Path) -> None:
    rec, rules = setup
    out = tmp_path / "out" / "incident.html"
    out.parent.mkdir()
    res = CliRunner().invoke(cli, ["replay", str(rec), "--rules", str(rules), "--report", str(out)])
    assert res.exit_code == 0, res.output
    assert out.exists() and (out.parent / "incident-incident-1.png").exists()
    assert "GpuHot" in out.read_text()


def test_record_from_store_with_a_rack_filter(tmp_path: Path) -> None:
    from dcim.collector.store import EmbeddedStore

    store = tmp_path / "store"
    recs = [Record("gpu", {"rack": rack, "gpu": "0"}, {"temp_c": float(t)}, T0 + t * 10**9)
            for t in range(20) for rack in ("A01", "B01")]
    recs += [Record("coolant_loop", {"loop": "loop-a"}, {"flow_lpm": 600.0}, T0 + t * 10**9) for t in range(20)]
    with EmbeddedStore(store) as s:
        s.write(recs)
    out = tmp_path / "s.lp.gz"
    res = CliRunner().invoke(cli, ["record", "--from-store", str(store), "--start", "2026-01-01T00:00:05Z",
                                   "--end", "2026-01-01T00:00:09Z", "--rack", "A01", "-o", str(out)])
    assert res.exit_code == 0, res.output
    reader = RecordingReader(out)
    got = reader.records()
    assert {(r.measurement, r.tags.get("rack")) for r in got} == {("gpu", "A01"), ("coolant_loop", None)}
    assert sorted({r.time_ns for r in got}) == [T0 + t * 10**9 for t in range(5, 10)]
    assert reader.header.start_ns == T0 + 5 * 10**9 and "rack=A01" in reader.header.source


def test_record_needs_exactly_one_source(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["record", "-o", str(tmp_path / "x.gz")])
    assert res.exit_code == 2 and "exactly one source" in res.output
    res = CliRunner().invoke(cli, ["record", "--scenario", "x", "--from-store", str(tmp_path), "-o", str(tmp_path / "x.gz")])
    assert res.exit_code == 2 and "--from-store" in res.output


def test_progress_bar_only_on_a_terminal(setup: tuple[Path, Path]) -> None:
    import os
    import pty

    rec, rules = setup
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "dcim.app.cli", "replay", str(rec), "--rules", str(rules)],
                              stdout=subprocess.PIPE, stderr=slave, timeout=120, env={**os.environ, "TERM": "xterm"})
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert proc.returncode == 0
    assert len(proc.stdout.splitlines()) == 3 and b"\x1b[" not in proc.stdout  # the timeline stays clean
    assert b"\x1b[" in seen and b"replay" in seen  # the bar drew (and cleared itself) on the terminal


def test_the_recordings_evaluation_interval_is_used(setup: tuple[Path, Path], tmp_path: Path) -> None:
    rec, rules = setup
    records = RecordingReader(rec).records()
    slow = tmp_path / "slow.lp.gz"
    write_recording(slow, records, Header(source="t", topology="embedded", extra={"evaluation_interval_s": "5"}))
    res = CliRunner().invoke(cli, ["replay", str(slow), "--rules", str(rules)])
    assert res.exit_code == 0, res.output
    # evaluations only every 5 s: pending at 10 s, firing at 15 s (2 s `for` rounds up), resolved at 30 s
    assert [line.split()[0][-9:-1] for line in res.stdout.splitlines()] == ["00:00:10", "00:00:15", "00:00:30"]
